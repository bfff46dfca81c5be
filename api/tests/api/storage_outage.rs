//! S3 going away during ingestion, caused for real on a moto server of the test's own (the S3
//! stand-in): frozen with SIGSTOP (it accepts connections and never answers), or cut off by a
//! TCP proxy that stops listening (connections refused). Clients push batches of distinct ids,
//! retrying each refused batch with the same `Idempotency-Key` until it is acknowledged; the
//! table is then read with Python `deltalake` straight from moto. Every acknowledged event must
//! be there exactly once, no push answered "not committed" may have been committed later, and
//! the plane recovers without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::common::{PgProxy, PrivateMoto};
use crate::helpers::{TestApp, fresh_prefix, moto_storage_options, on_moto, python};

const PER_BATCH: i64 = 100;

/// What the clients saw.
#[derive(Default, Debug)]
struct Seen {
    /// Refusals by status and problem type.
    refusals: BTreeMap<String, u32>,
    /// Refusals without `Retry-After`.
    without_retry_after: Vec<String>,
    /// Acknowledged batches (client, batch).
    acked: BTreeSet<(i64, i64)>,
    /// Acknowledgements that replayed an earlier attempt's outcome.
    replayed: u32,
    /// Unkeyed batches refused as not committed.
    refused: BTreeSet<(i64, i64)>,
    /// Unkeyed batches whose outcome is unknown.
    unknown: BTreeSet<(i64, i64)>,
    /// Answers no client should get.
    unexpected: Vec<String>,
    /// While set, clients wait before their next batch...
    paused: bool,
    /// ...and say so here.
    parked: BTreeSet<i64>,
}

type Shared = Arc<Mutex<Seen>>;

/// Waits while the test holds the clients back, and then lets this client go on.
async fn gate(seen: &Shared, client: i64) {
    loop {
        {
            let mut s = lock(seen);
            if !s.paused {
                s.parked.remove(&client);
                return;
            }
            s.parked.insert(client);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ids of a batch: disjoint across clients and batches.
fn ids_of(client: i64, batch: i64) -> std::ops::Range<i64> {
    let first = (client * 10_000 + batch) * PER_BATCH;
    first..first + PER_BATCH
}

fn body_of(client: i64, batch: i64) -> String {
    ids_of(client, batch)
        .map(|id| format!("{{\"id\": {id}, \"client\": {client}}}\n"))
        .collect()
}

/// The outcome of one push as a client sees it.
enum Answer {
    Acked {
        replayed: bool,
    },
    /// Refused: retry later (`unknown`: the commit may have landed).
    Refused {
        unknown: bool,
    },
}

async fn push_once(
    app: &TestApp,
    token: &str,
    client: i64,
    batch: i64,
    key: Option<&str>,
    seen: &Shared,
) -> Answer {
    let mut request = app
        .client
        .post(app.url("/v1/tenants/acme/streams/clicks/events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        // Longer than the server's own request timeout: the server always answers first.
        .timeout(Duration::from_secs(20))
        .body(body_of(client, batch));
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            lock(seen)
                .unexpected
                .push(format!("batch {client}/{batch}: no answer: {e}"));
            return Answer::Refused { unknown: true };
        }
    };
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let retry_after = response.headers().get("retry-after").is_some();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == 200 {
        assert_eq!(body["accepted"], PER_BATCH, "batch {client}/{batch}: {body}");
        return Answer::Acked { replayed };
    }
    let kind = body["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit([':', '/'])
        .next()
        .unwrap_or_default()
        .to_owned();
    let what = format!("{status} {kind}");
    let mut s = lock(seen);
    *s.refusals.entry(what.clone()).or_default() += 1;
    if !retry_after {
        s.without_retry_after.push(format!("{what}: {body}"));
    }
    if !matches!(status, 409 | 429 | 503) {
        s.unexpected
            .push(format!("batch {client}/{batch}: {what}: {body}"));
    }
    Answer::Refused {
        unknown: kind == "commit-outcome-unknown",
    }
}

/// Pushes `batches` batches, each retried with its key until acknowledged.
async fn keyed_client(app: Arc<TestApp>, token: String, client: i64, batches: i64, seen: Shared) {
    for batch in 0..batches {
        gate(&seen, client).await;
        let key = format!("client-{client}-batch-{batch}");
        loop {
            match push_once(&app, &token, client, batch, Some(&key), &seen).await {
                Answer::Acked { replayed } => {
                    let mut s = lock(&seen);
                    s.acked.insert((client, batch));
                    s.replayed += u32::from(replayed);
                    break;
                }
                // Clients may come back sooner than Retry-After says; this one does, to keep
                // the test short.
                Answer::Refused { .. } => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

/// `clients` keyed clients of `batches` batches each, running.
fn keyed_clients(
    app: &Arc<TestApp>,
    token: &str,
    clients: i64,
    batches: i64,
    seen: &Shared,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for client in 0..clients {
        set.spawn(keyed_client(
            app.clone(),
            token.to_owned(),
            client,
            batches,
            seen.clone(),
        ));
    }
    set
}

/// Pushes each batch once without a key, `pace` apart, and records what it was told.
async fn unkeyed_client(
    app: Arc<TestApp>,
    token: String,
    client: i64,
    batches: i64,
    pace: Duration,
    seen: Shared,
) {
    for batch in 0..batches {
        gate(&seen, client).await;
        let answer = push_once(&app, &token, client, batch, None, &seen).await;
        {
            let mut s = lock(&seen);
            match answer {
                Answer::Acked { .. } => s.acked.insert((client, batch)),
                Answer::Refused { unknown: true } => s.unknown.insert((client, batch)),
                Answer::Refused { unknown: false } => s.refused.insert((client, batch)),
            };
        }
        tokio::time::sleep(pace).await;
    }
}

/// The app on `endpoint` with a short request timeout (5 s), so pushes answer within the
/// outage; tenant acme with the bronze `events` table and the HTTP stream `clicks`.
async fn app_on(
    endpoint: String,
    tweak: impl FnOnce(&mut api::config::Config) + Send + 'static,
) -> (Arc<TestApp>, String) {
    let prefix = fresh_prefix();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            on_moto(c, &endpoint, &prefix);
            c.server.request_timeout_secs = 5;
            c.ingest.ack_timeout_ms = Some(4_000);
            c.ingest.linger_ms = 50;
            tweak(c);
        },
        axum::Router::new(),
    )
    .await;
    let admin = acme_with_clicks(&app).await;
    (Arc::new(app), admin)
}

/// Tenant acme with the bronze `events` table (`id`, `client`) and its HTTP stream `clicks`;
/// returns a platform-admin token.
async fn acme_with_clicks(app: &TestApp) -> String {
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "bronze", "name": "events", "columns": [
        {"name": "id", "type": "long", "nullable": false}, {"name": "client", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
        .await;
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"}, "source": {"type": "http"}});
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
        201,
    )
    .await;
    admin
}

async fn root_of(app: &TestApp, table: &str) -> String {
    let tenant = app
        .state
        .store
        .get_tenant(&tenancy::tenant::TenantId::parse("acme").expect("id"))
        .await
        .expect("store")
        .expect("tenant");
    app.state
        .catalog
        .table_root(&tenant, tenancy::role::Zone::Bronze, table)
}

/// Every id in the table, sorted, duplicates kept: read by Python `deltalake` from moto
/// directly (not through the app, nor through the proxy).
const IDS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]))
print(json.dumps(sorted(t.to_pyarrow_table(columns=["id"]).column("id").to_pylist())))
"#;

fn table_ids(root: &str, moto: &str) -> Vec<i64> {
    let options = moto_storage_options(moto).to_string();
    serde_json::from_str(&python(IDS, &[root, &options])).expect("ids")
}

/// Polls `/readyz` until its status is `want`; returns the body.
async fn readiness(app: &TestApp, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let response = app
            .client
            .get(app.url("/readyz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("readyz answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the clients have had `n` batches acknowledged.
async fn acked_at_least(seen: &Shared, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while lock(seen).acked.len() < n {
        assert!(
            Instant::now() < deadline,
            "fewer than {n} batches acknowledged: {:?}",
            seen
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the clients have been refused `n` times in all.
async fn refused_at_least(seen: &Shared, n: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while lock(seen).refusals.values().sum::<u32>() < n {
        assert!(Instant::now() < deadline, "fewer than {n} refusals: {:?}", seen);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts each id of the table.
fn counts(ids: &[i64]) -> BTreeMap<i64, u32> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    counts
}

/// Checks that every batch of `batches` is in `counts` exactly `want` times per id.
fn batches_hold(counts: &BTreeMap<i64, u32>, batches: &BTreeSet<(i64, i64)>, want: u32) -> Vec<String> {
    let mut wrong = Vec::new();
    for (client, batch) in batches {
        let times: BTreeSet<u32> = ids_of(*client, *batch)
            .map(|id| counts.get(&id).copied().unwrap_or(0))
            .collect();
        if times != BTreeSet::from([want]) {
            wrong.push(format!(
                "batch {client}/{batch}: ids present {times:?} times, want {want}"
            ));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_retries_through_a_frozen_s3_land_every_event_exactly_once() {
    let moto = PrivateMoto::start().await;
    let (app, admin) = app_on(moto.endpoint.clone(), |_| {}).await;
    let shared: Shared = Arc::default();
    let (keyed, batches) = (4, 40);
    let mut clients = keyed_clients(&app, &admin, keyed, batches, &shared);
    // One client that does not retry, to check that nothing answered "not committed" is
    // committed afterwards.
    let unkeyed = keyed;
    clients.spawn(unkeyed_client(
        app.clone(),
        admin.clone(),
        unkeyed,
        30,
        Duration::from_millis(300),
        shared.clone(),
    ));

    acked_at_least(&shared, 12, Duration::from_secs(60)).await;
    // The clients are held back until every push under way is answered (the table's writer
    // is then idle), S3 freezes, and they all push at once: the writer takes their batches
    // into one commit, which waits on the frozen storage past the answer's deadline. So keyed
    // pushes certainly meet a commit under way, and their retries must be answered from it.
    lock(&shared).paused = true;
    let deadline = Instant::now() + Duration::from_secs(30);
    while lock(&shared).parked.len() < usize::try_from(keyed + 1).expect("clients") {
        assert!(
            Instant::now() < deadline,
            "the clients did not stop: {:?}",
            lock(&shared)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    moto.freeze();
    let frozen = Instant::now();
    lock(&shared).paused = false;
    let during = readiness(&app, 503, Duration::from_secs(20)).await;
    assert_ne!(during["checks"]["storage"], "ok", "{during}");
    assert_eq!(during["checks"]["database"], "ok", "{during}");
    refused_at_least(&shared, 8, Duration::from_secs(30)).await;
    let acked_while_frozen = lock(&shared).acked.len();
    // The fault lasts 20 s: long past the request timeout, so commits under way when it
    // began are answered while they still wait for storage.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(frozen.elapsed())).await;
    moto.thaw();
    let thawed = Instant::now();
    readiness(&app, 200, Duration::from_secs(30)).await;
    let ready_after = thawed.elapsed();

    let deadline = Instant::now() + Duration::from_secs(180);
    while let Some(done) = tokio::time::timeout_at(deadline.into(), clients.join_next())
        .await
        .expect("the clients finish within 3 minutes of the thaw")
    {
        done.expect("client");
    }
    // The clients are done: what they saw, taken out of the lock.
    let s = std::mem::take(&mut *lock(&shared));
    assert!(s.unexpected.is_empty(), "{:#?}", s.unexpected);
    assert!(s.without_retry_after.is_empty(), "{:#?}", s.without_retry_after);
    // The fault met commits under way: some answers said so, and their retries were answered
    // with the first attempt's outcome.
    assert!(
        s.refusals.contains_key("503 commit-outcome-unknown"),
        "no push met a commit under way: {:?}",
        s.refusals
    );
    assert!(s.replayed >= 1, "no retry was answered from its key: {s:?}");
    assert!(
        acked_while_frozen < s.acked.len(),
        "ingestion resumed after the thaw"
    );

    let ids = table_ids(&root_of(&app, "events").await, &moto.endpoint);
    let counts = counts(&ids);
    let keyed_batches: BTreeSet<(i64, i64)> = (0..keyed)
        .flat_map(|c| (0..batches).map(move |b| (c, b)))
        .collect();
    assert!(
        keyed_batches.is_subset(&s.acked),
        "every keyed batch was acknowledged"
    );
    let mut wrong = batches_hold(&counts, &keyed_batches, 1);
    let unkeyed_acked: BTreeSet<_> = s.acked.iter().filter(|(c, _)| *c == unkeyed).copied().collect();
    wrong.extend(batches_hold(&counts, &unkeyed_acked, 1));
    // Answered "not committed": never committed afterwards.
    wrong.extend(batches_hold(&counts, &s.refused, 0));
    // Unknown outcome: all or nothing, and at most once.
    for (client, batch) in &s.unknown {
        let times: BTreeSet<u32> = ids_of(*client, *batch)
            .map(|id| counts.get(&id).copied().unwrap_or(0))
            .collect();
        if times != BTreeSet::from([0]) && times != BTreeSet::from([1]) {
            wrong.push(format!("unknown batch {client}/{batch}: {times:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}\nrefusals: {:?}", s.refusals);
    let expected = keyed_batches.len() * PER_BATCH as usize
        + unkeyed_acked.len() * PER_BATCH as usize
        + s.unknown
            .iter()
            .filter(|(c, b)| counts.contains_key(&ids_of(*c, *b).start))
            .count()
            * PER_BATCH as usize;
    assert_eq!(ids.len(), expected, "nothing else is in the table");
    assert!(
        !s.refused.is_empty(),
        "the unkeyed client was refused during the freeze: {s:?}"
    );
    eprintln!(
        "frozen s3: ready {:.1} s after the thaw; {} batches acknowledged ({} replayed), refusals {:?}, unkeyed refused {} unknown {}",
        ready_after.as_secs_f64(),
        s.acked.len(),
        s.replayed,
        s.refusals,
        s.refused.len(),
        s.unknown.len()
    );
    drop(s);
    Arc::into_inner(app).expect("clients done").shutdown().await;
}

/// Produces records with ids `ids` to the topic, round-robin over 3 partitions.
async fn produce(topic: &str, ids: std::ops::Range<i64>) {
    let bootstrap = crate::kafka::bootstrap();
    crate::common::produce_ids(&bootstrap, topic, 3, ids, |id| {
        format!("{{\"id\": {id}, \"client\": -1}}")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingestion_stops_while_s3_is_down_and_resumes_exactly_once_without_a_restart() {
    let moto = PrivateMoto::start().await;
    let upstream = moto
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let mut proxy = PgProxy::start_to(upstream).await;
    let (app, admin) = app_on(format!("http://127.0.0.1:{}", proxy.port), |c| {
        crate::kafka::fast_workers(c);
        c.ingest.kafka_linger_ms = 100;
        // A keyed attempt whose outcome is unknown is taken over by its retry after 6 s (just
        // above the 5 s request timeout) rather than 5 minutes, so the retries do not wait long.
        c.ingest.idempotency_takeover_secs = 6;
    })
    .await;
    let kafka_table = json!({"zone": "bronze", "name": "orders", "columns": [{"name": "id", "type": "long"}, {"name": "client", "type": "long"}]});
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/tables",
        Some(kafka_table),
        201,
    )
    .await;
    let topic = crate::kafka::topic().await;
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"},
        "source": {"type": "kafka", "bootstrap_servers": crate::kafka::bootstrap(), "topic": topic, "start": "earliest"}});
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
        201,
    )
    .await;
    let orders = root_of(&app, "orders").await;
    produce(&topic, 0..1_000).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while table_ids(&orders, &moto.endpoint).len() < 1_000 {
        assert!(Instant::now() < deadline, "the first records did not land");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let shared: Shared = Arc::default();
    let (keyed, batches) = (3, 30);
    let mut clients = keyed_clients(&app, &admin, keyed, batches, &shared);
    acked_at_least(&shared, 6, Duration::from_secs(60)).await;
    proxy.stop().await;
    let down = Instant::now();
    let during = readiness(&app, 503, Duration::from_secs(20)).await;
    assert_ne!(during["checks"]["storage"], "ok", "{during}");
    produce(&topic, 1_000..3_000).await;
    refused_at_least(&shared, 6, Duration::from_secs(30)).await;
    let before = table_ids(&orders, &moto.endpoint).len();
    // Ten seconds of outage: the Kafka worker fails and backs off meanwhile, and must not
    // advance past records it could not write.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down.elapsed())).await;
    assert_eq!(
        table_ids(&orders, &moto.endpoint).len(),
        before,
        "nothing was written while the storage was away"
    );
    proxy.resume().await;
    let recovered = Instant::now();
    readiness(&app, 200, Duration::from_secs(30)).await;

    let deadline = Instant::now() + Duration::from_secs(180);
    while let Some(done) = tokio::time::timeout_at(deadline.into(), clients.join_next())
        .await
        .expect("the clients finish within 3 minutes of the storage's return")
    {
        done.expect("client");
    }
    loop {
        if table_ids(&orders, &moto.endpoint).len() >= 3_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Kafka records written during the outage did not land"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let caught_up = recovered.elapsed();
    // The clients are done: what they saw, taken out of the lock.
    let s = std::mem::take(&mut *lock(&shared));
    assert!(s.unexpected.is_empty(), "{:#?}", s.unexpected);
    assert!(s.without_retry_after.is_empty(), "{:#?}", s.without_retry_after);
    let refused_503 = s.refusals.iter().filter(|(k, _)| k.starts_with("503")).count();
    assert!(refused_503 >= 1, "pushes were refused with 503: {:?}", s.refusals);
    let events = counts(&table_ids(&root_of(&app, "events").await, &moto.endpoint));
    let all: BTreeSet<(i64, i64)> = (0..keyed)
        .flat_map(|c| (0..batches).map(move |b| (c, b)))
        .collect();
    let wrong = batches_hold(&events, &all, 1);
    assert!(wrong.is_empty(), "{wrong:#?}\nrefusals: {:?}", s.refusals);
    assert_eq!(
        events.values().sum::<u32>() as usize,
        all.len() * PER_BATCH as usize
    );
    let records = table_ids(&orders, &moto.endpoint);
    assert_eq!(
        records,
        (0..3_000).collect::<Vec<i64>>(),
        "every Kafka record exactly once"
    );
    eprintln!(
        "s3 down: refusals {:?}; caught up {:.1} s after the storage came back",
        s.refusals,
        caught_up.as_secs_f64()
    );
    drop(s);
    Arc::into_inner(app).expect("clients done").shutdown().await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts `size` of tmpfs, or says why the kernel refused (not root, no CAP_SYS_ADMIN).
    pub(crate) fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("mount point");
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "lakeplane-small-disk",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Self { dir })
    }

    /// [`Self::mount`], or `None` after saying why the test is skipped (no root here).
    pub(crate) fn mount_or_skip(size: &str) -> Option<Self> {
        match Self::mount(size) {
            Ok(disk) => Some(disk),
            Err(why) => {
                eprintln!(
                    "SKIPPED: the kernel refused to mount a small tmpfs ({why}); this test needs root or CAP_SYS_ADMIN"
                );
                None
            }
        }
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem at `dir` to the last byte with one file, and returns its path.
pub(crate) fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last partial chunk, byte by byte, so not even a small file fits.
    while file.write(&[0x5a]).is_ok_and(|n| n == 1) {}
    let _ = file.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_pushes_unacknowledged_and_freeing_space_resumes_ingestion() {
    let Some(disk) = SmallDisk::mount_or_skip("32m") else {
        return;
    };
    let lake = disk.path().join("lake");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            // Only the lake is on the small disk; the database stays on the data directory.
            c.storage.root = Some(lake);
            c.ingest.linger_ms = 20;
        },
        axum::Router::new(),
    )
    .await;
    let admin = acme_with_clicks(&app).await;
    let shared: Shared = Arc::default();
    let mut acked = BTreeSet::new();
    for batch in 0..3 {
        match push_once(&app, &admin, 0, batch, None, &shared).await {
            Answer::Acked { .. } => acked.insert((0, batch)),
            Answer::Refused { .. } => {
                panic!("batch {batch} refused with room on the disk: {:?}", lock(&shared))
            }
        };
    }

    let filler = fill(disk.path());
    let mut refused = BTreeSet::new();
    for batch in 3..8 {
        match push_once(&app, &admin, 0, batch, None, &shared).await {
            Answer::Acked { .. } => panic!("batch {batch} acknowledged on a full disk"),
            Answer::Refused { .. } => refused.insert((0, batch)),
        };
    }
    {
        let s = lock(&shared);
        assert_eq!(
            s.refusals.keys().cloned().collect::<Vec<_>>(),
            vec!["503 storage-full".to_owned()],
            "{s:?}"
        );
        assert!(s.without_retry_after.is_empty(), "{:?}", s.without_retry_after);
    }
    let root = root_of(&app, "events").await;
    let readable = |root: &str| -> Vec<i64> {
        let script = r#"
import sys, json
from deltalake import DeltaTable
print(json.dumps(sorted(DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table(columns=["id"]).column("id").to_pylist())))
"#;
        serde_json::from_str(&python(script, &[root])).expect("ids")
    };
    let while_full = counts(&readable(&root));
    assert!(
        batches_hold(&while_full, &acked, 1).is_empty(),
        "the table stays readable with what was acknowledged"
    );
    assert_eq!(while_full.len(), acked.len() * PER_BATCH as usize);

    std::fs::remove_file(filler).expect("free the space");
    let freed = Instant::now();
    let mut batch = 8;
    // The first push after the space came back may still meet the writer reloading the table.
    loop {
        match push_once(&app, &admin, 0, batch, None, &shared).await {
            Answer::Acked { .. } => {
                acked.insert((0, batch));
                break;
            }
            Answer::Refused { .. } => {
                assert!(
                    freed.elapsed() < Duration::from_secs(30),
                    "ingestion did not resume: {:?}",
                    lock(&shared)
                );
                refused.insert((0, batch));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        batch += 1;
    }
    for more in batch + 1..batch + 4 {
        assert!(matches!(
            push_once(&app, &admin, 0, more, None, &shared).await,
            Answer::Acked { .. }
        ));
        acked.insert((0, more));
    }
    let after = counts(&readable(&root));
    let mut wrong = batches_hold(&after, &acked, 1);
    wrong.extend(batches_hold(&after, &refused, 0));
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert_eq!(after.len(), acked.len() * PER_BATCH as usize);
    app.shutdown().await;
}
