//! Reconciler leadership on both backends: one holder at a time among processes sharing a
//! database, handed over when the holder lets go or its connection dies.

use std::time::{Duration, Instant};

use tenancy::both_backends;
use tenancy::store::{Backend, MetadataStore};

async fn second(db: &tenancy::store::testing::TestDatabase) -> std::sync::Arc<dyn MetadataStore> {
    tenancy::store::connect(&db.url, &Default::default())
        .await
        .expect("a second process's store")
}

async fn wait_for_lead(store: &dyn MetadataStore) -> tenancy::store::Leadership {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(lead) = store.try_lead().await.expect("try") {
            return lead;
        }
        assert!(Instant::now() < deadline, "leadership was never handed over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn one_leader_at_a_time(backend: Backend) {
    let (first, db) = crate::migrated(backend).await;
    let other = second(&db).await;
    let mut lead = first
        .try_lead()
        .await
        .expect("try")
        .expect("the first caller leads");
    assert!(lead.alive().await);
    assert!(
        other.try_lead().await.expect("try").is_none(),
        "a second process does not lead"
    );
    assert!(
        first.try_lead().await.expect("try").is_none(),
        "nor a second call in the same process"
    );
    drop(lead);
    let mut handed = wait_for_lead(other.as_ref()).await;
    assert!(handed.alive().await);
    assert!(first.try_lead().await.expect("try").is_none());
    drop(handed);
    wait_for_lead(first.as_ref()).await;
}
both_backends!(one_leader_at_a_time);

/// SQLite: the lock file removed under a leader (a cleanup, a restore of the data directory)
/// lets another process lock a new file at the same path, so the first must see that it no
/// longer leads.
#[tokio::test]
async fn a_sqlite_leader_whose_lock_file_is_removed_is_no_longer_alive() {
    let (first, db) = crate::migrated(Backend::Sqlite).await;
    let other = second(&db).await;
    let mut lead = first
        .try_lead()
        .await
        .expect("try")
        .expect("the first caller leads");
    assert!(lead.alive().await, "alive while its file is in place");
    assert!(other.try_lead().await.expect("try").is_none());
    let url = db.url.expose().to_owned();
    let database = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .expect("path")
        .to_owned();
    let lock_file = format!("{database}{}", tenancy::store::SQLITE_LEADER_LOCK_SUFFIX);
    std::fs::remove_file(&lock_file).unwrap_or_else(|e| panic!("remove {lock_file}: {e}"));
    let mut taken = other
        .try_lead()
        .await
        .expect("try")
        .expect("a new lock file can be locked by another process");
    assert!(!lead.alive().await, "the first holder must step down");
    assert!(taken.alive().await, "the new holder leads");
}
