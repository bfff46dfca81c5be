//! The worker runner against a real metadata store (SQLite and PostgreSQL), with work that a
//! test controls (a test helper, never a production body): a panic is recorded as `failed`
//! with its message and does not unwind into the caller; a worker taken over by another
//! process stops; a stopped worker records nothing; a launch that is not pending is refused.

use std::sync::Arc;
use std::time::Duration;

use lake_manager::workers::in_process::InProcess;
use lake_manager::workers::runner::{Ended, Progress, Runner, Work};
use lake_manager::workers::{Launcher, WorkerSettings, WorkersError};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend, MetadataStore, WorkerRecord};
use tenancy::tenant::TenantId;
use tenancy::worker::{WorkerKind, WorkerSpec, WorkerState, WorkerTarget};
use tokio_util::sync::CancellationToken;

/// Work chosen by the spec's target table id: 1 panics, 2 fails, 3 runs until stopped
/// (reporting progress), anything else succeeds.
struct Scripted;

#[async_trait::async_trait]
impl Work for Scripted {
    async fn run(&self, spec: &WorkerSpec, _owner: &str, progress: &Progress) -> Result<(), WorkersError> {
        let WorkerTarget::Table(id) = spec.target else {
            return Ok(());
        };
        match id.as_u128() {
            1 => panic!("boom at row 7"),
            2 => Err(WorkersError::Failed("the table is gone".into())),
            3 => loop {
                progress.set(serde_json::json!({"files_done": 3}));
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            _ => Ok(()),
        }
    }
}

fn spec(n: u128) -> WorkerSpec {
    WorkerSpec {
        kind: WorkerKind::Compact,
        tenant: TenantId::parse("acme").expect("id"),
        target: WorkerTarget::Table(uuid::Uuid::from_u128(n)),
        operations: vec![tenancy::maintenance::Operation::Compact],
        run: Some(uuid::Uuid::from_u128(n + 1000)),
    }
}

async fn pending(store: &dyn MetadataStore, n: u128) -> String {
    let spec = spec(n);
    let id = spec.id();
    store
        .put_worker(&WorkerRecord::pending(spec, tenancy::now()))
        .await
        .expect("put");
    id
}

fn settings() -> WorkerSettings {
    WorkerSettings {
        heartbeat_every: Duration::from_millis(100),
        ..WorkerSettings::default()
    }
}

async fn worker(store: &dyn MetadataStore, id: &str) -> WorkerRecord {
    store.get_worker(id).await.expect("get").expect("worker")
}

async fn runner_records_outcomes_and_survives_panics(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let runner = Runner::new(store.clone(), Arc::new(Scripted), settings());

    let panics = pending(store.as_ref(), 1).await;
    let outcome = runner.run(&panics, "p1", CancellationToken::new()).await;
    assert!(
        matches!(outcome, Err(WorkersError::Panicked(ref m)) if m == "boom at row 7"),
        "{outcome:?}"
    );
    let recorded = worker(store.as_ref(), &panics).await;
    assert_eq!(recorded.state, WorkerState::Failed);
    assert_eq!(recorded.failures, 1);
    assert_eq!(
        recorded.last_error.as_deref(),
        Some("the worker panicked: boom at row 7")
    );

    let fails = pending(store.as_ref(), 2).await;
    assert!(runner.run(&fails, "p1", CancellationToken::new()).await.is_err());
    assert_eq!(
        worker(store.as_ref(), &fails).await.last_error.as_deref(),
        Some("the table is gone")
    );

    let ok = pending(store.as_ref(), 4).await;
    assert_eq!(
        runner.run(&ok, "p1", CancellationToken::new()).await.expect("ok"),
        Ended::Succeeded
    );
    assert_eq!(worker(store.as_ref(), &ok).await.state, WorkerState::Succeeded);
    assert!(
        matches!(
            runner.run(&ok, "p2", CancellationToken::new()).await,
            Err(WorkersError::NotClaimable(_))
        ),
        "a finished worker is not run again without the reconciler"
    );
    assert!(matches!(
        runner
            .run("compact-acme-nothing", "p1", CancellationToken::new())
            .await,
        Err(WorkersError::NotFound(_))
    ));

    // Runs until stopped, heartbeating its progress; a stop records nothing.
    let long = pending(store.as_ref(), 3).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (runner, long, stop) = (runner.clone(), long.clone(), stop.clone());
        async move { runner.run(&long, "p1", stop).await }
    });
    // Polled until its progress heartbeat is recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let running = loop {
        let seen = worker(store.as_ref(), &long).await;
        if seen.progress.is_some() {
            break seen;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress heartbeat: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(running.state, WorkerState::Running);
    assert_eq!(running.owner.as_deref(), Some("p1"));
    assert_eq!(running.progress.as_deref(), Some(r#"{"files_done":3}"#));
    stop.cancel();
    assert_eq!(task.await.expect("joined").expect("stopped"), Ended::Stopped);
    assert_eq!(
        worker(store.as_ref(), &long).await.state,
        WorkerState::Running,
        "nothing recorded"
    );

    // Taken over: the reconciler started it again elsewhere (pending, then claimed by p3).
    let mut again = worker(store.as_ref(), &long).await;
    again.state = WorkerState::Pending;
    again.owner = None;
    store.put_worker(&again).await.expect("pending");
    let task = tokio::spawn({
        let (runner, long) = (runner.clone(), long.clone());
        async move { runner.run(&long, "p1", CancellationToken::new()).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker(store.as_ref(), &long).await.owner.as_deref() != Some("p1") {
        assert!(
            std::time::Instant::now() < deadline,
            "p1 never claimed the worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut taken = worker(store.as_ref(), &long).await;
    taken.state = WorkerState::Pending;
    taken.owner = None;
    store.put_worker(&taken).await.expect("pending");
    assert!(
        store
            .claim_worker(&long, "p3", tenancy::now())
            .await
            .expect("claim")
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops within a few heartbeats")
        .expect("joined")
        .expect("stopped");
    assert_eq!(ended, Ended::Stopped);
    assert_eq!(
        worker(store.as_ref(), &long).await.owner.as_deref(),
        Some("p3"),
        "p1 wrote nothing after"
    );
    store.close().await;
}
tenancy::both_backends!(runner_records_outcomes_and_survives_panics);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_process_launcher_starts_stops_and_kills_tasks() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let launcher = InProcess::new(
        Runner::new(store.clone(), Arc::new(Scripted), settings()),
        "process-a".into(),
    );
    let long = pending(store.as_ref(), 3).await;
    launcher.start(&spec(3)).await.expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker(store.as_ref(), &long).await.owner.is_none() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(launcher.running().await.contains(&long));
    let owner = worker(store.as_ref(), &long).await.owner.expect("claimed");
    assert!(owner.starts_with("process-a/"), "{owner}");
    launcher.stop(&long).await.expect("stop");
    assert!(launcher.running().await.is_empty());

    let panics = pending(store.as_ref(), 1).await;
    launcher.start(&spec(1)).await.expect("start");
    // Printing the panic's backtrace can take a while on a busy machine: poll.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker(store.as_ref(), &panics).await.state != WorkerState::Failed
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        worker(store.as_ref(), &panics).await.state,
        WorkerState::Failed,
        "the server lives on"
    );

    let mut again = worker(store.as_ref(), &long).await;
    again.state = WorkerState::Pending;
    again.owner = None;
    store.put_worker(&again).await.expect("pending");
    launcher.start(&spec(3)).await.expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker(store.as_ref(), &long).await.owner.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the relaunch never claimed the worker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(launcher.kill(&long).await, "killed like a crash");
    // A heartbeat already handed to the database when the task was aborted may still land
    // (aborting drops the future, not the write SQLite is carrying out), so the heartbeat
    // is read once that write had time to finish: from then on it must never move.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = worker(store.as_ref(), &long).await.last_heartbeat;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = worker(store.as_ref(), &long).await;
    assert_eq!(
        (after.state, after.last_heartbeat),
        (WorkerState::Running, before),
        "no heartbeats after a kill (three intervals of 100 ms)"
    );
    let orphans = launcher
        .remove_orphans(&Default::default())
        .await
        .expect("orphans");
    assert_eq!(orphans, 0, "nothing runs any more");
    store.close().await;
}
