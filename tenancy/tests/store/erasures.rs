//! Erasures on both backends: round trip (raw subjects included until cleared), newest-first
//! pages, the unfinished list, progress written only over what was read, and removal with the
//! tenant.

use tenancy::both_backends;
use tenancy::erasure::{ErasureStatus, ErasureTable, Identifier, Subject};
use tenancy::store::{Backend, ErasureRecord};

use crate::tables::{audit, tenant};

fn erasure(reason: &str) -> ErasureRecord {
    let now = tenancy::now();
    ErasureRecord {
        id: uuid::Uuid::now_v7(),
        tenant: tenant().id,
        status: ErasureStatus::Planned,
        reason: reason.into(),
        requested_by: "alice".into(),
        salt: tenancy::erasure::new_salt(),
        subject_hashes: vec![vec!["ab".repeat(32)]],
        pending_subjects: Some(vec![Subject::from([(
            "user_id".to_owned(),
            Identifier::Integer(42),
        )])]),
        tables: vec![ErasureTable {
            table_id: uuid::Uuid::now_v7(),
            zone: tenancy::role::Zone::Silver,
            name: "users".into(),
            dead_letter: false,
            delete_version: None,
            rows_deleted: None,
            vacuum_version: None,
            oldest_log_version: None,
        }],
        not_covered: vec!["gold/revenue".into()],
        old_locations: vec![],
        error: None,
        deadline: now + chrono::Duration::days(30),
        created_at: now,
        updated_at: now,
        completed_at: None,
    }
}

async fn erasures_round_trip_page_and_move_forward_once(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let first = erasure("ticket 1");
    let second = erasure("ticket 2");
    for e in [&first, &second] {
        store
            .insert_erasure(e, &audit("erasure.create"))
            .await
            .expect("insert");
    }
    let id = tenant().id;
    assert_eq!(
        store.get_erasure(&id, first.id).await.expect("get"),
        Some(first.clone()),
        "round trip"
    );
    let other = tenancy::tenant::TenantId::parse("other").expect("id");
    assert_eq!(store.get_erasure(&other, first.id).await.expect("get"), None);
    assert_eq!(
        store.list_erasures(&id, None, 1).await.expect("page"),
        vec![second.clone()],
        "newest first"
    );
    assert_eq!(
        store.list_erasures(&id, Some(second.id), 10).await.expect("page"),
        vec![first.clone()]
    );
    assert_eq!(
        store.unfinished_erasures().await.expect("unfinished"),
        vec![first.clone(), second.clone()]
    );

    // Progress: the delete is done, the raw subjects go.
    let mut deleted = first.clone();
    deleted.status = ErasureStatus::Deleted;
    deleted.pending_subjects = None;
    deleted.tables[0].delete_version = Some(3);
    deleted.tables[0].rows_deleted = Some(17);
    deleted.updated_at = tenancy::now();
    assert!(store.update_erasure(&deleted, &first).await.expect("update"));
    assert!(
        !store.update_erasure(&deleted, &first).await.expect("update"),
        "a second writer holding the old state loses"
    );
    assert_eq!(
        store.get_erasure(&id, first.id).await.expect("get"),
        Some(deleted.clone())
    );
    let mut done = deleted.clone();
    done.status = ErasureStatus::Completed;
    done.completed_at = Some(tenancy::now());
    done.old_locations = vec!["s3://lakeplane-acme/bronze/".into()];
    done.updated_at = tenancy::now();
    assert!(store.update_erasure(&done, &deleted).await.expect("update"));
    assert_eq!(
        store.get_erasure(&id, first.id).await.expect("get"),
        Some(done.clone()),
        "the old locations removed are kept with the rest"
    );
    assert_eq!(
        store.unfinished_erasures().await.expect("unfinished"),
        vec![second.clone()],
        "completed ones are not work"
    );

    // Floors only rise.
    let table = first.tables[0].table_id;
    assert_eq!(store.erasure_floor(table).await.expect("floor"), None);
    store
        .raise_erasure_floor(&id, table, 3, first.id)
        .await
        .expect("raise");
    store
        .raise_erasure_floor(&id, table, 2, second.id)
        .await
        .expect("raise");
    assert_eq!(store.erasure_floor(table).await.expect("floor"), Some(3));
    store
        .raise_erasure_floor(&id, table, 5, second.id)
        .await
        .expect("raise");
    assert_eq!(store.erasure_floor(table).await.expect("floor"), Some(5));

    let now = tenancy::now();
    store
        .delete_tenant(&id, now, now, &audit("tenant.purge"))
        .await
        .expect("purge");
    assert!(store.list_erasures(&id, None, 10).await.expect("page").is_empty());
    assert_eq!(store.erasure_floor(table).await.expect("floor"), None);
}
both_backends!(erasures_round_trip_page_and_move_forward_once);
