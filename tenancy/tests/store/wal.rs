//! SQLite's WAL is checkpointed by the store's own task, not inside commits.

use std::time::{Duration, Instant};

use sqlx::Connection;
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::store::Backend;

/// Audit events in a copy of the database file alone, without its WAL: only rows a
/// checkpoint copied into the file are there. `None` while the copy is not readable (taken in
/// the middle of a checkpoint's writes).
async fn events_in_main_file(main: &std::path::Path, scratch: &std::path::Path) -> Option<i64> {
    for stale in ["-wal", "-shm"] {
        let mut name = scratch.as_os_str().to_owned();
        name.push(stale);
        let _ = std::fs::remove_file(name);
    }
    std::fs::copy(main, scratch).ok()?;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", scratch.display()))
        .await
        .ok()?;
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'wal.test'")
        .fetch_one(&mut conn)
        .await
        .ok();
    let _ = conn.close().await;
    count
}

/// Commits reach the database file while the store stays open and idle afterwards, though
/// these commits stay far below the WAL size at which SQLite would checkpoint on commit; and
/// a closed store leaves no WAL.
#[tokio::test]
async fn the_wal_is_checkpointed_into_the_file_while_the_store_is_open() {
    let (store, db) = crate::migrated(Backend::Sqlite).await;
    let main = std::path::PathBuf::from(db.url.expose().trim_start_matches("sqlite://"));
    let scratch = tempfile::tempdir().expect("scratch dir");
    let copy = scratch.path().join("copy.db");
    let wal = main.with_extension("db-wal");
    const EVENTS: i64 = 200;
    for i in 0..EVENTS {
        let event = AuditEvent::system("wal.test", &format!("event {i}"), None, Outcome::Success);
        store.append_audit(&event).await.expect("append");
    }
    assert!(wal.exists(), "the store runs in WAL mode: {}", wal.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = events_in_main_file(&main, &copy).await;
        if seen == Some(EVENTS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen,
        Some(EVENTS),
        "every committed event is in the database file itself within 10 s, the store still open"
    );
    // A clean close leaves no WAL behind: the last connection to close (the store's own,
    // once its checkpointer's is closed) copies it into the file and removes it.
    store.close().await;
    assert!(
        !wal.exists(),
        "the WAL is gone once the store is closed: {}",
        wal.display()
    );
}
