//! Kafka streams against a real Kafka-protocol broker: the `tansu` broker on its SQLite engine
//! (a stand-in for Kafka, started by `scripts/test`), with librdkafka on both sides. The
//! table is judged by the Python `deltalake` reader.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, python};

const PARTITIONS: i32 = 3;

pub(crate) fn bootstrap() -> String {
    std::env::var("LAKEPLANE_TEST_KAFKA")
        .expect("LAKEPLANE_TEST_KAFKA must name the tansu broker (scripts/test starts it)")
}

pub(crate) async fn topic() -> String {
    crate::common::topic(&bootstrap(), PARTITIONS).await
}

pub(crate) fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces ids `ids` round-robin over the partitions; every 50th is malformed. Returns the
/// good ids and the number of bad records.
async fn produce(producer: &FutureProducer, topic: &str, ids: std::ops::Range<i64>) -> (Vec<i64>, usize) {
    let mut good = Vec::new();
    let mut bad = 0;
    let sends = ids.map(|id| {
        let payload = if id % 50 == 49 {
            bad += 1;
            format!("{{\"id\": {id}, \"amount\": \"not a number\"}}")
        } else {
            good.push(id);
            format!(
                "{{\"id\": {id}, \"user\": \"u{}\", \"amount\": {id}.25}}",
                id % 13
            )
        };
        let partition = i32::try_from(id % i64::from(PARTITIONS)).expect("partition");
        async move {
            producer
                .send(
                    FutureRecord::<(), String>::to(topic)
                        .payload(&payload)
                        .partition(partition),
                    Duration::from_secs(10),
                )
                .await
                .expect("delivered");
        }
    });
    futures_util::future::join_all(sends).await;
    (good, bad)
}

/// (sorted ids with duplicates kept, distinct kafka offsets, dead-letter count).
const JUDGE: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table(columns=["id", "_kafka_partition", "_kafka_offset"])
d = DeltaTable(sys.argv[2].removeprefix("file://")).to_pyarrow_table(columns=["source_position", "_kafka_offset"])
positions = set(zip(t.column("_kafka_partition").to_pylist(), t.column("_kafka_offset").to_pylist()))
print(json.dumps({"ids": sorted(t.column("id").to_pylist()), "positions": len(positions),
                  "dead": d.num_rows, "dead_positions": sorted(d.column("source_position").to_pylist())}))
"#;

/// Fast heartbeats and restarts, so killed or failed workers come back within seconds.
pub(crate) fn fast_workers(c: &mut api::config::Config) {
    c.workers.reconcile_secs = 1;
    c.workers.heartbeat_secs = 1;
    c.workers.heartbeat_timeout_secs = 2;
    c.workers.backoff_base_ms = 100;
    c.workers.backoff_cap_secs = 2;
    c.workers.max_failures = 1_000;
}

async fn stream_app() -> (TestApp, String, String) {
    stream_app_with(api::config::Launcher::InProcess).await
}

/// `External`: the reconciler records the workers and the test runs them by hand
/// (`run_by_hand`), so nothing consumes while it sets a scene up.
async fn stream_app_with(launcher: api::config::Launcher) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            c.ingest.kafka_linger_ms = 100;
            c.ingest.kafka_flush_records = 500;
            fast_workers(c);
            c.workers.launcher = launcher;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "bronze", "name": "orders", "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "user", "type": "string"},
        {"name": "amount", "type": "double"}
    ]});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table))
            .await
            .status(),
        201
    );
    let topic = topic().await;
    (app, admin, topic)
}

async fn create_stream(app: &TestApp, admin: &str, topic: &str) -> Value {
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"},
        "source": {"type": "kafka", "bootstrap_servers": bootstrap(), "topic": topic, "start": "earliest"}});
    app.expect(admin, Method::POST, "/v1/tenants/acme/streams", Some(stream), 201)
        .await
}

/// The `orders` stream as the API shows it.
async fn stream_json(app: &TestApp, admin: &str) -> Value {
    app.get_as(admin, "/v1/tenants/acme/streams/orders")
        .await
        .json()
        .await
        .expect("json")
}

async fn rows(app: &TestApp, admin: &str) -> u64 {
    let table: Value = app
        .get_as(admin, "/v1/tenants/acme/tables/bronze/orders")
        .await
        .json()
        .await
        .expect("json");
    table["num_rows"]
        .as_u64()
        .unwrap_or_else(|| panic!("the table shows its rows: {table}"))
}

async fn wait_for_rows(app: &TestApp, admin: &str, want: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let have = rows(app, admin).await;
        if have >= want {
            return;
        }
        let stream: Value = stream_json(app, admin).await;
        assert!(
            Instant::now() < deadline,
            "{have} of {want} rows; stream: {stream}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn judge(app: &TestApp) -> Value {
    let tenant = app
        .state
        .store
        .get_tenant(&tenancy::tenant::TenantId::parse("acme").expect("id"))
        .await
        .expect("store")
        .expect("tenant");
    let root = |name: &str| {
        app.state
            .catalog
            .table_root(&tenant, tenancy::role::Zone::Bronze, name)
    };
    serde_json::from_str(&python(JUDGE, &[&root("orders"), &root("orders__dlq")])).expect("json")
}

/// The ids the reader saw, sorted, duplicates kept.
fn ids(seen: &Value) -> Vec<i64> {
    seen["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_i64)
        .collect()
}

/// The id of a stream's ingest worker.
fn ingest_worker(record: &tenancy::store::StreamRecord) -> String {
    tenancy::worker::WorkerSpec::ingest(record.tenant.clone(), record.id).id()
}

/// Waits until the reconciler has recorded the worker as pending, then runs it here as
/// `lakeplane worker run` would; cancel the token to stop it.
async fn run_by_hand(
    app: &TestApp,
    id: &str,
) -> (tokio_util::sync::CancellationToken, tokio::task::JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let worker = app.state.store.get_worker(id).await.expect("store");
        if worker
            .as_ref()
            .is_some_and(|w| w.state == tenancy::worker::WorkerState::Pending)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {id} never became pending: {worker:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let (runner, id, token) = (app.state.runner.clone(), id.to_owned(), stop.clone());
    let task = tokio::spawn(async move {
        let owner = format!("test-{}", uuid::Uuid::now_v7());
        let _ = runner.run(&id, &owner, token).await;
    });
    (stop, task)
}

/// The stored `orders` stream of tenant acme.
async fn stored_stream(app: &TestApp) -> tenancy::store::StreamRecord {
    app.state
        .store
        .get_stream(&tenancy::tenant::TenantId::parse("acme").expect("id"), "orders")
        .await
        .expect("store")
        .expect("stream")
}

/// Polls the `orders` stream until `done` holds for it (failing after `within`) and returns it.
async fn wait_for_stream(
    app: &TestApp,
    admin: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let stream: Value = stream_json(app, admin).await;
        if done(&stream) {
            return stream;
        }
        assert!(Instant::now() < deadline, "the stream never got there: {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_good_record_lands_exactly_once_across_worker_kills() {
    let (app, admin, topic) = stream_app().await;
    let producer = producer();
    let (mut good, mut bad) = produce(&producer, &topic, 0..1_500).await;
    let created = create_stream(&app, &admin, &topic).await;
    assert_eq!(created["source"]["topic"], topic.as_str());
    let record = stored_stream(&app).await;
    let worker = ingest_worker(&record);
    let in_process = app.state.in_process.clone().expect("in-process launcher");
    // Kill the worker at pseudo-random points while more records arrive; each restart resumes
    // from the positions committed in the table.
    let mut seed = 0x9e37_79b9_u64;
    for wave in 0..6 {
        let start = 1_500 + wave * 500;
        let (more_good, more_bad) = produce(&producer, &topic, start..start + 500).await;
        good.extend(more_good);
        bad += more_bad;
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        tokio::time::sleep(Duration::from_millis(50 + (seed >> 33) % 600)).await;
        // As a crash would: no cancellation, nothing recorded; the reconciler finds the
        // heartbeat stale and starts the worker again.
        in_process.kill(&worker).await;
    }
    wait_for_rows(&app, &admin, good.len() as u64, Duration::from_secs(90)).await;
    // Every record is written (no lag on any partition): the worker has nothing left to
    // commit, so a duplicate would already be in the table.
    wait_for_stream(&app, &admin, Duration::from_secs(20), |stream| {
        let lag = stream["lag"].as_object().cloned().unwrap_or_default();
        stream["status"] == "running" && lag.len() == PARTITIONS as usize && lag.values().all(|v| v == 0)
    })
    .await;
    let seen = judge(&app).await;
    let ids = ids(&seen);
    good.sort_unstable();
    assert_eq!(ids.len(), good.len(), "no duplicates and nothing missing");
    assert_eq!(ids, good, "exactly the good records, once each");
    assert_eq!(
        seen["positions"].as_u64(),
        Some(good.len() as u64),
        "each from its own offset"
    );
    assert_eq!(
        seen["dead"].as_u64(),
        Some(bad as u64),
        "each bad record dead-lettered once"
    );
    let dead: BTreeSet<&str> = seen["dead_positions"]
        .as_array()
        .expect("dead")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(dead.len(), bad, "dead letters name distinct positions: {dead:?}");

    // Lag is visible in the API and in /metrics, and reaches zero.
    wait_for_stream(&app, &admin, Duration::from_secs(20), |stream| {
        let lag = stream["lag"].as_object().cloned().unwrap_or_default();
        stream["status"] == "running" && lag.len() == PARTITIONS as usize && lag.values().all(|v| v == 0)
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains(&format!(
            "lakeplane_stream_lag_records{{stream=\"{}\",partition=\"0\"}} 0",
            record.id
        )),
        "{metrics}"
    );
    let workers: Value = app
        .get_as(&admin, "/v1/tenants/acme/workers")
        .await
        .json()
        .await
        .expect("json");
    let listed = &workers["items"][0];
    assert_eq!(listed["id"], worker.as_str(), "{workers}");
    assert_eq!(listed["state"], "running", "{workers}");
    assert!(
        listed["restarts"].as_u64().is_some_and(|r| r >= 1),
        "the kills show as restarts: {workers}"
    );

    // Deleting the stream stops its worker: later records stay in Kafka.
    assert_eq!(
        app.send_as(&admin, Method::DELETE, "/v1/tenants/acme/streams/orders", None)
            .await
            .status(),
        204
    );
    let before = rows(&app, &admin).await;
    produce(&producer, &topic, 10_000..10_300).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rows(&app, &admin).await, before);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_worker_on_the_same_stream_fences_the_first_and_nothing_doubles() {
    let (app, admin, topic) = stream_app().await;
    let producer = producer();
    create_stream(&app, &admin, &topic).await;
    let record = stored_stream(&app).await;
    // A second set of workers, as a second process would run: both consume the same stream.
    let rival = std::sync::Arc::new(lake_manager::ingest::kafka::KafkaWorkers::new(
        app.state.catalog.clone(),
        lake_manager::ingest::kafka::KafkaSettings {
            linger: Duration::from_millis(100),
            flush_records: 300,
            ..Default::default()
        },
        None,
    ));
    let rival_run = {
        let (rival, record) = (rival.clone(), record.clone());
        // Restarted after each failure, as its own reconciler would.
        tokio::spawn(async move {
            loop {
                let _ = rival.run(record.clone(), "rival-process/run").await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut good = Vec::new();
    for wave in 0..5 {
        good.extend(produce(&producer, &topic, wave * 400..(wave + 1) * 400).await.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_rows(&app, &admin, good.len() as u64, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let errors = [
        rival.status(record.id).last_error,
        app.state.ingest.kafka().status(record.id).last_error,
    ];
    assert!(
        errors.iter().flatten().any(|e| e.contains("fenced")),
        "one worker was fenced by the other's commit: {errors:?}"
    );
    rival_run.abort();
    let seen = judge(&app).await;
    let ids = ids(&seen);
    good.sort_unstable();
    assert_eq!(ids, good, "two workers, still exactly once");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migrating_tenant_pauses_its_kafka_worker_until_it_is_ready() {
    let (app, admin, topic) = stream_app().await;
    let producer = producer();
    create_stream(&app, &admin, &topic).await;
    let (first, _) = produce(&producer, &topic, 0..300).await;
    wait_for_rows(&app, &admin, first.len() as u64, Duration::from_secs(60)).await;
    let id = tenancy::tenant::TenantId::parse("acme").expect("id");
    app.state
        .store
        .set_tenant_status(&id, tenancy::tenant::TenantStatus::Migrating, None)
        .await
        .expect("status");
    let (second, _) = produce(&producer, &topic, 300..600).await;
    let stream = wait_for_stream(&app, &admin, Duration::from_secs(20), |s| s["status"] == "failed").await;
    assert!(
        stream["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("migrating")),
        "{stream}"
    );
    assert_eq!(
        rows(&app, &admin).await,
        first.len() as u64,
        "nothing committed while migrating"
    );
    app.state
        .store
        .set_tenant_status(&id, tenancy::tenant::TenantStatus::Ready, None)
        .await
        .expect("status");
    wait_for_rows(
        &app,
        &admin,
        (first.len() + second.len()) as u64,
        Duration::from_secs(60),
    )
    .await;
    let seen = judge(&app).await;
    let mut want: Vec<i64> = first.into_iter().chain(second).collect();
    want.sort_unstable();
    let ids = ids(&seen);
    assert_eq!(ids, want);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn latest_starts_after_existing_records_and_a_restart_skips_nothing_new() {
    let (app, admin, topic) = stream_app_with(api::config::Launcher::External).await;
    let producer = producer();
    produce(&producer, &topic, 0..200).await; // before the stream: not wanted with `latest`
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"},
        "source": {"type": "kafka", "bootstrap_servers": bootstrap(), "topic": topic, "start": "latest"}});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants/acme/streams", Some(stream))
            .await
            .status(),
        201
    );
    let record = stored_stream(&app).await;
    let worker = ingest_worker(&record);
    let (stop, task) = run_by_hand(&app, &worker).await;
    wait_for_stream(&app, &admin, Duration::from_secs(20), |s| {
        s["status"] == "running"
    })
    .await;
    // Restart before anything new arrives: the pinned positions, not the end of the topic,
    // decide where it resumes, so records produced meanwhile are not skipped.
    stop.cancel();
    task.await.expect("stopped");
    let (good, bad) = produce(&producer, &topic, 1_000..1_300).await;
    producer
        .send(
            FutureRecord::<(), [u8]>::to(&topic).payload(&[][..]).partition(0),
            Duration::from_secs(10),
        )
        .await
        .expect("an empty record");
    // The stopped worker's heartbeat goes stale; the reconciler asks for it again.
    let (_stop, _task) = run_by_hand(&app, &worker).await;
    wait_for_rows(&app, &admin, good.len() as u64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = judge(&app).await;
    let ids = ids(&seen);
    assert_eq!(
        ids, good,
        "only records produced after the stream started, all of them"
    );
    assert_eq!(
        seen["dead"].as_u64(),
        Some(bad as u64 + 1),
        "the empty record is a dead letter too"
    );
    // The worker's commits name the stream's rows: its rate counts the good records, which
    // all landed within the last minute, and no dead letter.
    let rate = stream_json(&app, &admin).await["ingest_rate"].clone();
    assert_eq!(rate["rows"].as_u64(), Some(good.len() as u64), "{rate}");
    app.shutdown().await;
}

/// A crash between a flush's two commits leaves dead letters the table's positions do not
/// cover. Simulated here by committing one flush's dead letter (with its position) by hand
/// while the worker is stopped: the replay must not repeat it, and must not drop any other
/// record of the range.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letters_of_an_interrupted_flush_are_not_repeated() {
    use deltalake::kernel::Transaction;
    use deltalake::kernel::transaction::CommitProperties;
    use lake_manager::ingest::decode::{EventError, EventSchema, KafkaPosition, dlq_rows};

    let (app, admin, topic) = stream_app_with(api::config::Launcher::External).await;
    let producer = producer();
    let created = create_stream(&app, &admin, &topic).await;
    let id: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");
    // Produced while no worker runs. Partition 0 gets ids 0, 3, 6, ...: id 99 (malformed) is
    // its offset 33.
    let (good, _) = produce(&producer, &topic, 0..300).await;
    let tenant = app
        .state
        .store
        .get_tenant(&tenancy::tenant::TenantId::parse("acme").expect("id"))
        .await
        .expect("store")
        .expect("tenant");
    let dlq_root = app
        .state
        .catalog
        .table_root(&tenant, tenancy::role::Zone::Bronze, "orders__dlq");
    let main_root = app
        .state
        .catalog
        .table_root(&tenant, tenancy::role::Zone::Bronze, "orders");
    let delta = app.state.catalog.delta();
    let main = lake_manager::delta::tables::open(delta, &main_root)
        .await
        .expect("main");
    let main_position = main
        .snapshot()
        .expect("snapshot")
        .transaction_version(main.log_store().as_ref(), format!("{id}-0"))
        .await
        .expect("position");
    assert_eq!(main_position, None, "nothing was consumed before the stop");
    let dlq = lake_manager::delta::tables::open(delta, &dlq_root)
        .await
        .expect("dlq");
    let schema = EventSchema::new(dlq.snapshot().expect("snapshot").snapshot().arrow_schema());
    let position = KafkaPosition {
        partition: 0,
        offset: 33,
        timestamp_ms: None,
    };
    let rejected = vec![(
        EventError {
            line: 34,
            field: "amount".into(),
            message: "must be a number".into(),
        },
        "{\"id\": 99, \"amount\": \"not a number\"}".to_owned(),
    )];
    let rows = dlq_rows(
        &schema,
        &rejected,
        &["partition 0 offset 33".into()],
        0,
        Some(&[position]),
    )
    .expect("rows");
    dlq.write(vec![rows])
        .with_commit_properties(
            CommitProperties::default()
                // The flush covered offsets up to 90, which include id 249 (offset 83): it is not
                // in the dead-letter table, so the replay must dead-letter it, not drop it.
                .with_application_transactions(vec![Transaction::new(format!("{id}-0"), 90)]),
        )
        .await
        .expect("dead letter committed, table commit 'lost'");

    let record = stored_stream(&app).await;
    let (_stop, _task) = run_by_hand(&app, &ingest_worker(&record)).await;
    wait_for_rows(&app, &admin, good.len() as u64, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = judge(&app).await;
    let ids = ids(&seen);
    assert_eq!(ids, good, "every good record of the replayed range, once");
    let dead: Vec<&str> = seen["dead_positions"]
        .as_array()
        .expect("dead")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        dead.iter().filter(|p| **p == "partition 0 offset 33").count(),
        1,
        "the dead letter of the interrupted flush is not repeated: {dead:?}"
    );
    assert_eq!(
        dead.len(),
        6,
        "the other five bad records are dead-lettered: {dead:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_of_two_replicas_runs_the_worker() {
    let app = TestApp::spawn_with(Backend::Postgres, fast_workers, Default::default()).await;
    // One lake for both, as replicas share a bucket in production.
    let lake = app.data_dir.path().join("lake");
    let replica = app
        .replica(move |c| {
            fast_workers(c);
            c.storage.root = Some(lake);
        })
        .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "bronze", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table))
            .await
            .status(),
        201
    );
    let topic = topic().await;
    // Created through the replica that does not lead (the first one took the lock at start).
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"},
        "source": {"type": "kafka", "bootstrap_servers": bootstrap(), "topic": topic}});
    let created = replica
        .send_as(&admin, Method::POST, "/v1/tenants/acme/streams", Some(stream))
        .await;
    assert_eq!(created.status(), 201);
    let record = stored_stream(&app).await;
    let id = ingest_worker(&record);
    let running = |app: &TestApp| app.state.in_process.clone().expect("in-process launcher");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let on_leader = running(&app).running().await.contains(&id);
        let on_replica = running(&replica).running().await.contains(&id);
        assert!(!on_replica, "the replica that does not lead never runs a worker");
        if on_leader {
            break;
        }
        assert!(Instant::now() < deadline, "the leader never started the worker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The replica runs nothing, yet shows the stream's state from its worker's row.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown: Value = replica
            .get_as(&admin, "/v1/tenants/acme/streams/orders")
            .await
            .json()
            .await
            .expect("json");
        if shown["status"] == "running" && shown["lag"].is_object() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never showed the worker: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deleted through the replica: the leader stops it within its sync interval.
    assert_eq!(
        replica
            .send_as(&admin, Method::DELETE, "/v1/tenants/acme/streams/orders", None)
            .await
            .status(),
        204
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while running(&app).running().await.contains(&id) {
        assert!(
            Instant::now() < deadline,
            "the leader kept the worker of a deleted stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica.shutdown().await;
    app.shutdown().await;
}
