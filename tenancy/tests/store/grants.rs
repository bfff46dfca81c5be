//! Grants on both backends: a new tenant's defaults, changes with their version and audit,
//! refusals that write nothing, and grants that go with their table and tenant.

use std::collections::BTreeSet;

use tenancy::both_backends;
use tenancy::grants::{Change, Grantee, Privilege, Securable, role_defaults};
use tenancy::role::Zone;
use tenancy::store::Backend;
use tenancy::store::grants::ChangeGrantsError;

use crate::tables::{audit, tenant};

fn add(grantee: &str, p: Privilege) -> Change {
    Change {
        grantee: Grantee::parse(grantee).expect("grantee"),
        add: [p].into(),
        remove: BTreeSet::new(),
    }
}

async fn grants_change_with_their_version_and_audit(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let acme = tenant();
    store
        .insert_tenant(&acme, &audit("tenant.create"))
        .await
        .expect("tenant");
    let defaults: BTreeSet<_> = role_defaults().into_iter().collect();
    let listed: BTreeSet<_> = store
        .list_grants(&acme.id)
        .await
        .expect("list")
        .into_iter()
        .collect();
    assert_eq!(
        listed, defaults,
        "a new tenant starts with the role table as grants"
    );

    let v0 = store.grants_version().await.expect("version");
    let table = Securable::Table(Zone::Gold, "orders".into());
    // No such table: refused, nothing written, the version unmoved.
    let refused = store
        .change_grants(
            &acme.id,
            &table,
            &[add("user:bob", Privilege::Select)],
            "admin",
            &audit("grants.update"),
        )
        .await;
    assert!(matches!(refused, Err(ChangeGrantsError::NoTable)), "{refused:?}");
    // An invalid change on a zone: refused with its field.
    let refused = store
        .change_grants(
            &acme.id,
            &Securable::Zone(Zone::Gold),
            &[add("role:viewer", Privilege::Modify)],
            "admin",
            &audit("grants.update"),
        )
        .await;
    match refused {
        Err(ChangeGrantsError::Invalid(e)) => assert_eq!(e.field, "changes[0].add[0]"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.grants_version().await.expect("version"), v0);

    let zone = Securable::Zone(Zone::Silver);
    let changed = store
        .change_grants(
            &acme.id,
            &zone,
            &[add("group:finance", Privilege::Select)],
            "admin",
            &audit("grants.update"),
        )
        .await
        .expect("change");
    assert!(
        !changed
            .before
            .contains_key(&Grantee::parse("group:finance").expect("g"))
    );
    assert_eq!(
        changed.after.get(&Grantee::parse("group:finance").expect("g")),
        Some(&[Privilege::Select].into())
    );
    let v1 = store.grants_version().await.expect("version");
    assert!(v1 > v0);
    // The same change again: nothing to write, the version stays.
    let again = store
        .change_grants(
            &acme.id,
            &zone,
            &[add("group:finance", Privilege::Select)],
            "admin",
            &audit("grants.update"),
        )
        .await
        .expect("change");
    assert_eq!(again.before, again.after);
    assert_eq!(store.grants_version().await.expect("version"), v1);
    let events = store
        .list_audit(&tenancy::audit::AuditFilter {
            action: Some("grants.update".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(
        events.len(),
        2,
        "each accepted change is audited, refusals are not"
    );
    let details = events[1].details.as_ref().expect("details");
    assert_eq!(details["after"]["group:finance"], serde_json::json!(["SELECT"]));
    assert_eq!(details["securable"], "zones/silver");
}
both_backends!(grants_change_with_their_version_and_audit);
