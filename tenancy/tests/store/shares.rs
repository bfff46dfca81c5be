//! Shares and recipients on both backends: round trip, name conflicts, pagination, token
//! lookup, revocation, and removal with the share and with the tenant.

use tenancy::both_backends;
use tenancy::share::{RecipientName, ShareName, token_hash};
use tenancy::store::{Backend, RecipientRecord, ShareRecord, SharedTable, StoreError};

use crate::tables::{audit, table, tenant};

fn share(name: &str, tables: Vec<SharedTable>) -> ShareRecord {
    ShareRecord {
        id: uuid::Uuid::now_v7(),
        tenant: tenant().id,
        name: ShareName::parse(name).expect("name"),
        tables,
        created_by: "alice".into(),
        created_at: tenancy::now(),
    }
}

fn recipient(share: &ShareRecord, name: &str, token: &str) -> RecipientRecord {
    let now = tenancy::now();
    RecipientRecord {
        id: uuid::Uuid::now_v7(),
        share_id: share.id,
        tenant: share.tenant.clone(),
        name: RecipientName::parse(name).expect("name"),
        token_hash: token_hash(token),
        created_by: "alice".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
        revoked_at: None,
    }
}

async fn shares_and_recipients(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let orders = table("gold", "orders");
    store
        .insert_table(&orders, 10, &audit("table.create"))
        .await
        .expect("table");
    let pinned = SharedTable {
        table_id: orders.id,
        zone: tenancy::role::Zone::Gold,
        name: "orders".into(),
    };
    let sales = share("sales", vec![pinned.clone()]);
    store
        .insert_share(&sales, &audit("share.create"))
        .await
        .expect("insert");
    assert_eq!(
        store.get_share(&sales.tenant, "sales").await.expect("get"),
        Some(sales.clone()),
        "round trip, tables included"
    );
    assert_eq!(
        store.get_share_by_id(sales.id).await.expect("by id"),
        Some(sales.clone())
    );
    assert!(matches!(
        store
            .insert_share(&share("sales", vec![]), &audit("share.create"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let marketing = share("marketing", vec![pinned]);
    store
        .insert_share(&marketing, &audit("share.create"))
        .await
        .expect("second");
    let first = store.list_shares(&sales.tenant, None, 1).await.expect("page");
    assert_eq!(
        first.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["marketing"]
    );
    let second = store
        .list_shares(&sales.tenant, Some("marketing"), 10)
        .await
        .expect("page");
    assert_eq!(
        second.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["sales"]
    );

    let bob = recipient(&sales, "bob", "token-bob");
    store
        .insert_recipient(&bob, &audit("recipient.create"))
        .await
        .expect("bob");
    assert!(
        matches!(
            store
                .insert_recipient(
                    &recipient(&sales, "bob", "token-bob-2"),
                    &audit("recipient.create")
                )
                .await,
            Err(StoreError::Conflict(_))
        ),
        "one live recipient per name"
    );
    assert_eq!(
        store
            .recipient_by_token(&token_hash("token-bob"))
            .await
            .expect("lookup"),
        Some(bob.clone())
    );
    assert_eq!(
        store
            .recipient_by_token(&token_hash("nope"))
            .await
            .expect("lookup"),
        None
    );
    let carol = recipient(&sales, "carol", "token-carol");
    store
        .insert_recipient(&carol, &audit("recipient.create"))
        .await
        .expect("carol");
    let newest = store.list_recipients(sales.id, None, 1).await.expect("page");
    assert_eq!(newest, vec![carol.clone()], "newest first");
    let older = store
        .list_recipients(sales.id, Some(carol.id), 10)
        .await
        .expect("page");
    assert_eq!(older, vec![bob.clone()]);

    let at = tenancy::now();
    assert!(
        store
            .revoke_recipient(sales.id, bob.id, at, &audit("recipient.revoke"))
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_recipient(sales.id, bob.id, at, &audit("recipient.revoke"))
            .await
            .expect("again"),
        "revoking twice changes nothing"
    );
    assert!(
        !store
            .revoke_recipient(marketing.id, carol.id, at, &audit("recipient.revoke"))
            .await
            .expect("other share"),
        "a recipient is revoked only through its own share"
    );
    let revoked = store
        .recipient_by_token(&token_hash("token-bob"))
        .await
        .expect("lookup");
    assert_eq!(revoked.and_then(|r| r.revoked_at), Some(at));
    store
        .insert_recipient(
            &recipient(&sales, "bob", "token-bob-3"),
            &audit("recipient.create"),
        )
        .await
        .expect("the name is free again once revoked");

    assert!(
        store
            .delete_share(sales.id, &audit("share.delete"))
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .recipient_by_token(&token_hash("token-carol"))
            .await
            .expect("lookup"),
        None,
        "a deleted share takes its recipients with it"
    );
    assert!(matches!(
        store
            .insert_recipient(
                &recipient(&sales, "dave", "token-dave"),
                &audit("recipient.create")
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .insert_recipient(
            &recipient(&marketing, "erin", "token-erin"),
            &audit("recipient.create"),
        )
        .await
        .expect("erin");
    store
        .delete_tenant(
            &marketing.tenant,
            tenancy::now(),
            tenancy::now(),
            &audit("tenant.delete"),
        )
        .await
        .expect("tenant gone");
    assert_eq!(store.get_share_by_id(marketing.id).await.expect("get"), None);
    assert_eq!(
        store
            .recipient_by_token(&token_hash("token-erin"))
            .await
            .expect("lookup"),
        None,
        "a tenant's deletion removes its shares and recipients"
    );
}
both_backends!(shares_and_recipients);

/// A recipient by id, revoked or not; an unknown id is `None`.
async fn recipient_by_id_revoked_or_not(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let sales = share("sales", vec![]);
    store
        .insert_share(&sales, &audit("share.create"))
        .await
        .expect("share");
    let bob = recipient(&sales, "bob", "token-of-bob");
    let carol = recipient(&sales, "carol", "token-of-carol");
    for r in [&bob, &carol] {
        store
            .insert_recipient(r, &audit("recipient.create"))
            .await
            .expect("recipient");
    }
    assert_eq!(store.get_recipient(bob.id).await.expect("get"), Some(bob.clone()));
    let at = tenancy::now();
    assert!(
        store
            .revoke_recipient(sales.id, bob.id, at, &audit("recipient.revoke"))
            .await
            .expect("revoke")
    );
    let revoked = store.get_recipient(bob.id).await.expect("get").expect("kept");
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(
        RecipientRecord {
            revoked_at: None,
            ..revoked
        },
        bob,
        "only the revocation changed"
    );
    assert_eq!(store.get_recipient(carol.id).await.expect("get"), Some(carol));
    assert_eq!(
        store.get_recipient(uuid::Uuid::now_v7()).await.expect("unknown"),
        None
    );
}
both_backends!(recipient_by_id_revoked_or_not);
