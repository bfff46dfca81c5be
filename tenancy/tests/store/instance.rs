use tenancy::store::{self, Backend, PoolSettings};

use tenancy::both_backends;

async fn instance_identity_is_created_once_and_stable(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let first = store.ensure_instance().await.expect("create");
    assert_eq!(first.id.get_version_num(), 7, "instance ids are UUIDv7");
    let age = chrono::Utc::now() - first.created_at;
    assert!(
        age.num_seconds().abs() < 60,
        "created just now: {}",
        first.created_at
    );

    // A second replica (its own pool) sees the same identity, and so does a restart.
    let other = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    assert_eq!(other.ensure_instance().await.expect("read"), first);
    store.close().await;
    let restarted = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("reconnect");
    assert_eq!(restarted.ensure_instance().await.expect("read"), first);
    other.close().await;
    restarted.close().await;
    db.drop_database().await;
}
both_backends!(instance_identity_is_created_once_and_stable);

async fn concurrent_first_starts_agree_on_one_identity(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.ensure_instance().await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.expect("join").expect("ensure").id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all callers see one identity: {ids:?}");
    store.close().await;
    db.drop_database().await;
}
both_backends!(concurrent_first_starts_agree_on_one_identity);
