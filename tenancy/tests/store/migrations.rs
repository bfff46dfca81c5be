use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend, PoolSettings, latest_known_version};

use tenancy::both_backends;

async fn first_migration_applies_everything_then_nothing(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    assert_eq!(store.schema_version().await.expect("version"), None);

    let first = store.migrate().await.expect("first migrate");
    let latest = latest_known_version(backend);
    assert!(latest.is_some());
    assert_eq!(first.current, latest);
    assert_eq!(first.applied.last().copied(), latest);

    let second = store.migrate().await.expect("second migrate");
    assert!(second.applied.is_empty(), "nothing left to apply: {second:?}");
    assert_eq!(store.schema_version().await.expect("version"), latest);
    store.close().await;
    db.drop_database().await;
}
both_backends!(first_migration_applies_everything_then_nothing);

/// Simulates replicas starting at once: separate pools on one database, migrating together.
async fn concurrent_migrations_apply_each_version_once(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(
            store::connect(&db.url, &PoolSettings::default())
                .await
                .expect("connect"),
        );
    }
    let runs = stores.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move { s.migrate().await })
    });
    let mut applied_total = Vec::new();
    for run in runs {
        let report = run
            .await
            .expect("join")
            .expect("every concurrent migrate succeeds");
        assert_eq!(report.current, latest_known_version(backend));
        applied_total.extend(report.applied);
    }
    applied_total.sort_unstable();
    let expected: Vec<i64> = (1..=latest_known_version(backend).expect("has migrations")).collect();
    assert_eq!(
        applied_total, expected,
        "each version applied by exactly one process"
    );
    for s in &stores {
        s.close().await;
    }
    db.drop_database().await;
}
both_backends!(concurrent_migrations_apply_each_version_once);

async fn ping_and_pool_stats(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    store.ping().await.expect("ping");
    let stats = store.pool_stats();
    assert_eq!(stats.max, PoolSettings::default().max_connections);
    assert!(stats.open >= 1 && stats.idle <= stats.open, "{stats:?}");
    store.close().await;
    assert!(store.ping().await.expect_err("closed pool").is_unavailable());
    db.drop_database().await;
}
both_backends!(ping_and_pool_stats);

/// Holds the migration lock the way a second process would.
enum LockHolder {
    File(std::fs::File),
    Session(sqlx::PgConnection),
}

async fn take_migration_lock(db: &TestDatabase) -> LockHolder {
    match db.url.backend() {
        Backend::Sqlite => {
            let path = format!(
                "{}{}",
                db.url.expose().trim_start_matches("sqlite://"),
                store::SQLITE_MIGRATION_LOCK_SUFFIX
            );
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .expect("open");
            file.lock().expect("lock");
            LockHolder::File(file)
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(db.url.expose())
                .await
                .expect("connect");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(store::MIGRATION_LOCK_KEY)
                .execute(&mut conn)
                .await
                .expect("lock");
            LockHolder::Session(conn)
        }
    }
}

/// The contract that makes concurrent starts safe: a migration waits while another process
/// holds the lock, and proceeds as soon as it is released.
async fn migrate_waits_while_another_process_migrates(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &PoolSettings::default())
        .await
        .expect("connect");
    let holder = take_migration_lock(&db).await;
    let waiting = {
        let store = store.clone();
        tokio::spawn(async move { store.migrate().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "migrate must wait for the lock holder");
    assert_eq!(
        store.schema_version().await.expect("version"),
        None,
        "nothing applied meanwhile"
    );
    match holder {
        LockHolder::File(file) => drop(file),
        LockHolder::Session(conn) => {
            use sqlx::Connection;
            conn.close().await.expect("close");
        }
    }
    let report = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("proceeds once the lock is free")
        .expect("join")
        .expect("migrate");
    assert_eq!(report.current, latest_known_version(backend));
    store.close().await;
    db.drop_database().await;
}
both_backends!(migrate_waits_while_another_process_migrates);
