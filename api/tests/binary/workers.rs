//! Workers across real processes: two `lakeplane serve` replicas on one PostgreSQL database,
//! or on one SQLite file, where exactly one reconciles and the other takes over when the leader is SIGKILLed; and
//! `lakeplane worker run` as the pods of the Kubernetes launcher run it (here with the
//! `external` launcher, which only records the wanted workers).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::store::Backend;
use tenancy::store::testing::TestDatabase;
use tokio::process::Command;

use crate::helpers::{Server, call, cli_token, lakeplane, signal};

/// Heartbeat timeout of these tests: a dead leader's workers are started again after it.
const HEARTBEAT_TIMEOUT_SECS: i64 = 3;

fn configured(cwd: &Path, env: &[(&str, String)]) -> Command {
    let mut command = lakeplane(cwd);
    command
        .env("LAKEPLANE__WORKERS__RECONCILE_SECS", "1")
        .env("LAKEPLANE__WORKERS__HEARTBEAT_SECS", "1")
        .env(
            "LAKEPLANE__WORKERS__HEARTBEAT_TIMEOUT_SECS",
            HEARTBEAT_TIMEOUT_SECS.to_string(),
        )
        .env("LAKEPLANE__WORKERS__BACKOFF_BASE_MS", "200")
        .env("LAKEPLANE__TABLES__MAINTENANCE_LEASE_SECS", "3")
        .env("LAKEPLANE__INGEST__LINGER_MS", "20")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

async fn ready_tenant_with_table(server: &Server, token: &str, table: &str) {
    let tenant = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        call(server, token, Method::POST, "/v1/tenants", Some(tenant))
            .await
            .status(),
        201
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t: Value = call(server, token, Method::GET, "/v1/tenants/acme", None)
            .await
            .json()
            .await
            .expect("json");
        if t["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "tenant never ready: {t}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = json!({"zone": "bronze", "name": table, "columns": [
        {"name": "id", "type": "long", "nullable": false}, {"name": "note", "type": "string"}]});
    let created = call(server, token, Method::POST, "/v1/tenants/acme/tables", Some(body)).await;
    assert_eq!(created.status(), 201);
}

/// Where the `orders` table lives (a `file://` URL).
async fn orders_location(server: &Server, token: &str) -> String {
    let table: Value = call(
        server,
        token,
        Method::GET,
        "/v1/tenants/acme/tables/bronze/orders",
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    table["location"].as_str().expect("location").to_owned()
}

async fn all_workers(server: &Server, token: &str) -> Vec<Value> {
    let listed: Value = call(server, token, Method::GET, "/v1/admin/workers?limit=500", None)
        .await
        .json()
        .await
        .expect("json");
    listed["items"].as_array().cloned().unwrap_or_default()
}

/// The process part of a worker owner (`{instance}-{process}/{launch}`).
fn process_of(worker: &Value) -> Option<String> {
    worker["owner"]
        .as_str()
        .and_then(|o| o.split('/').next())
        .map(str::to_owned)
}

fn logged(server: &Server, needle: &str) -> bool {
    server.logs().iter().any(|l| l.contains(needle))
}

/// When `server` first logged `needle` (its JSON log's timestamp).
fn logged_at(server: &Server, needle: &str) -> Option<DateTime<Utc>> {
    server.logs().iter().find(|l| l.contains(needle)).and_then(|l| {
        serde_json::from_str::<Value>(l)
            .ok()?
            .get("timestamp")?
            .as_str()?
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_replica_reconciles_and_another_takes_over_when_it_is_killed() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let cwd = tempfile::tempdir().expect("cwd");
    let env = [("LAKEPLANE__DATABASE__URL", db.url.to_string())];
    takeover(cwd.path(), &env, &env, Fault::Kill).await;
}

/// The same on the embedded default: two processes on one SQLite file (the same data
/// directory), where the leadership is an OS lock on a file beside the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_sqlite_file_lead_one_at_a_time_and_hand_over_on_a_kill() {
    let cwd = tempfile::tempdir().expect("cwd");
    takeover(cwd.path(), &[], &[], Fault::Kill).await;
}

/// Split brain: the leader reaches PostgreSQL through a proxy that cuts every connection
/// while the process keeps running. Its lock session ends with the connection, so the
/// replica may take the lock at once; the old leader must step down and stop its workers
/// before the replica starts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_postgres_steps_down_before_the_replica_runs_its_workers() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let proxy = crate::common::PgProxy::start().await;
    let cwd = tempfile::tempdir().expect("cwd");
    let leader_env = [("LAKEPLANE__DATABASE__URL", proxy.url_for(&db.url.to_string()))];
    let replica_env = [("LAKEPLANE__DATABASE__URL", db.url.to_string())];
    takeover(cwd.path(), &leader_env, &replica_env, Fault::CutDatabase(proxy)).await;
}

/// How the leader is taken out.
enum Fault {
    /// SIGKILL: the process is gone, and its lock with it.
    Kill,
    /// Every database connection of the leader is cut and new ones are refused, by the proxy
    /// it reaches PostgreSQL through; the process keeps running. Restored at the end.
    CutDatabase(crate::common::PgProxy),
}

/// Streams of the takeover tests: one single-partition topic each, all into one table.
const STREAMS: i64 = 3;
/// Records per stream and round, and rounds: produced over about 10 s, through the takeover.
const PER_ROUND: i64 = 40;
const ROUNDS: i64 = 20;

/// The ids stream `n` carries in `round`: apart from every other stream's.
fn round_ids(n: i64, round: i64) -> std::ops::Range<i64> {
    let first = n * 1_000_000 + round * PER_ROUND;
    first..first + PER_ROUND
}

const IDS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table(columns=["id"])
print(json.dumps(sorted(t.column("id").to_pylist())))
"#;

/// One commit of a table, as its log entry records it.
#[derive(Debug)]
struct Commit {
    version: u64,
    /// The worker run that wrote it (`lakeplane.owner` in its commitInfo).
    owner: Option<String>,
    /// commitInfo's timestamp, milliseconds since the epoch.
    timestamp: i64,
    /// The streams whose positions it carries (the stream part of each txn app id).
    streams: BTreeSet<String>,
}

/// Every commit in a local table's log, oldest first.
fn commits(location: &str) -> Vec<Commit> {
    let log = Path::new(location.trim_start_matches("file://")).join("_delta_log");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&log).expect("read the log") {
        let path = entry.expect("log entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(version) = name.strip_suffix(".json").and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read a commit");
        let mut commit = Commit {
            version,
            owner: None,
            timestamp: 0,
            streams: BTreeSet::new(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let action: Value = serde_json::from_str(line).expect("a JSON action");
            if let Some(info) = action.get("commitInfo") {
                commit.owner = info["lakeplane.owner"].as_str().map(str::to_owned);
                commit.timestamp = info["timestamp"].as_i64().expect("commit timestamp");
            }
            if let Some(app) = action.pointer("/txn/appId").and_then(Value::as_str) {
                // `{stream uuid}-{partition}`.
                let stream = app.rsplit_once('-').map_or(app, |(s, _)| s);
                commit.streams.insert(stream.to_owned());
            }
        }
        found.push(commit);
    }
    found.sort_by_key(|c| c.version);
    found
}

/// The process part of an owner (`{instance}-{process}/{launch}`).
fn process_part(owner: &str) -> &str {
    owner.split('/').next().unwrap_or(owner)
}

/// Two replicas (the leader with `leader_env`, the other with `replica_env`) sharing `cwd`
/// (data directory, signing key, lake): exactly one leads and runs three Kafka workers while
/// records flow; after `fault` the other takes them over. Judged from what the owners wrote:
/// every record lands once, and each stream's commits, in log order, come from one run at a
/// time (the old process's, then the new one's, never interleaved).
async fn takeover(cwd: &Path, leader_env: &[(&str, String)], replica_env: &[(&str, String)], fault: Fault) {
    let bootstrap = std::env::var("LAKEPLANE_TEST_KAFKA")
        .expect("LAKEPLANE_TEST_KAFKA must name the tansu broker (scripts/test starts it)");
    let leader = Server::start(configured(cwd, leader_env)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !logged(&leader, "this process leads") {
        assert!(Instant::now() < deadline, "the first process never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Same data dir: same signing key and lake, as replicas share them in production.
    let replica = Server::start(configured(cwd, replica_env)).await;
    let token_env: Vec<(&str, &str)> = replica_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let token = cli_token(cwd, &token_env, &["--role", "platform-admin", "--subject", "ops"]).await;
    ready_tenant_with_table(&replica, &token, "orders").await;
    let mut topics = Vec::new();
    for n in 0..STREAMS {
        let topic = crate::common::topic(&bootstrap, 1).await;
        let stream = json!({"name": format!("orders{n}"), "table": {"zone": "bronze", "name": "orders"},
            "source": {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "start": "earliest"}});
        let created = call(
            &replica,
            &token,
            Method::POST,
            "/v1/tenants/acme/streams",
            Some(stream),
        )
        .await;
        assert_eq!(created.status(), 201);
        topics.push(topic);
    }
    let location = orders_location(&replica, &token).await;

    // Every worker runs on the leader, started once.
    let deadline = Instant::now() + Duration::from_secs(20);
    let first_owner = loop {
        let workers = all_workers(&replica, &token).await;
        let running: Vec<&Value> = workers.iter().filter(|w| w["state"] == "running").collect();
        if running.len() == 3 {
            let owners: BTreeSet<Option<String>> = running.iter().map(|w| process_of(w)).collect();
            assert_eq!(owners.len(), 1, "exactly one process runs them: {workers:?}");
            assert!(
                running.iter().all(|w| w["restarts"] == 0),
                "each started once: {workers:?}"
            );
            break owners.into_iter().next().flatten().expect("owner");
        }
        assert!(Instant::now() < deadline, "workers never ran: {workers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !logged(&replica, "this process leads"),
        "the replica does not lead while the leader lives"
    );

    // Records flow into every topic from now until well after the takeover.
    let producing = {
        let (topics, bootstrap) = (topics.clone(), bootstrap.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for (n, topic) in (0..).zip(&topics) {
                    crate::common::produce_ids(&bootstrap, topic, 1, round_ids(n, round), |id| {
                        format!("{{\"id\": {id}, \"note\": \"n{id}\"}}")
                    })
                    .await;
                }
                // Pacing, not synchronization: the records arrive spread over the takeover.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    // The leader's workers are writing: each stream has a commit with rows from it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written: BTreeSet<String> = commits(&location)
            .into_iter()
            .filter(|c| c.owner.as_deref().is_some_and(|o| process_part(o) == first_owner))
            .flat_map(|c| c.streams)
            .collect();
        if written.len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader's workers wrote nothing: {written:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let faulted_at = Instant::now();
    let bound = Duration::from_secs(15);
    let mut cut_proxy = None;
    let mut stepped_down_at = None;
    match fault {
        Fault::Kill => signal(leader.pid(), "KILL"),
        Fault::CutDatabase(mut proxy) => {
            proxy.stop().await;
            // The old leader notices on its own and says so, still running.
            let timeout = Duration::from_secs(u64::try_from(HEARTBEAT_TIMEOUT_SECS).expect("secs"));
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(1))
                .build()
                .expect("client");
            loop {
                let metrics = match http.get(format!("{}/metrics", leader.base)).send().await {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                if metrics.contains("lakeplane_reconcile_leader 0")
                    && logged(&leader, "stepped down: this process's workers are stopped")
                {
                    break;
                }
                assert!(
                    faulted_at.elapsed() < timeout,
                    "the cut-off leader did not step down within the heartbeat timeout ({timeout:?})"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!("cut-off leader stepped down after {:?}", faulted_at.elapsed());
            stepped_down_at = logged_at(&leader, "stepped down: this process's workers are stopped");
            assert!(
                stepped_down_at.is_some(),
                "the step-down log line has a timestamp"
            );
            cut_proxy = Some(proxy);
        }
    }
    let taken_over = loop {
        let workers = all_workers(&replica, &token).await;
        let moved = workers
            .iter()
            .filter(|w| w["state"] == "running" && process_of(w).is_some_and(|o| o != first_owner))
            .count();
        if moved == 3 {
            break faulted_at.elapsed();
        }
        assert!(
            faulted_at.elapsed() < bound,
            "no takeover within {bound:?}: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("takeover: {taken_over:?}");
    assert!(logged(&replica, "this process leads"), "the replica leads now");
    let metrics = replica.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("lakeplane_reconcile_leader 1"), "{metrics}");
    producing.await.expect("producer");

    // The database comes back for the old leader: it is a follower now, and runs nothing.
    if let Some(mut proxy) = cut_proxy {
        proxy.resume().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while leader.get("/readyz").await.status() != 200 {
            assert!(
                Instant::now() < deadline,
                "the old leader never saw the database again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // One more round per stream after the reconnection.
        for (n, topic) in (0..).zip(&topics) {
            crate::common::produce_ids(&bootstrap, topic, 1, round_ids(n, ROUNDS), |id| {
                format!("{{\"id\": {id}, \"note\": \"n{id}\"}}")
            })
            .await;
        }
    }
    let rounds = if stepped_down_at.is_some() {
        ROUNDS + 1
    } else {
        ROUNDS
    };
    let expected: Vec<i64> = (0..STREAMS)
        .flat_map(|n| (0..rounds).flat_map(move |r| round_ids(n, r)))
        .collect::<BTreeSet<i64>>()
        .into_iter()
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ids = loop {
        let ids: Vec<i64> = serde_json::from_str(&crate::common::python(IDS, &[&location])).expect("json");
        if ids.len() >= expected.len() {
            break ids;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} records landed",
            ids.len(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(ids, expected, "every record exactly once");

    // No two owners at once, from the log: per stream, the runs of consecutive commits by one
    // owner never repeat an owner, and the old process's runs all come before the new one's.
    let log = commits(&location);
    let by_stream: BTreeMap<&String, Vec<&Commit>> = log
        .iter()
        .flat_map(|c| c.streams.iter().map(move |s| (s, c)))
        .fold(BTreeMap::new(), |mut m, (s, c)| {
            m.entry(s).or_insert_with(Vec::new).push(c);
            m
        });
    assert_eq!(by_stream.len(), 3, "three streams committed");
    for (stream, commits) in &by_stream {
        let owners: Vec<&str> = commits
            .iter()
            .map(|c| c.owner.as_deref().expect("every Kafka commit names its owner"))
            .collect();
        let mut runs: Vec<&str> = owners.clone();
        runs.dedup();
        let distinct: BTreeSet<&&str> = runs.iter().collect();
        assert_eq!(
            distinct.len(),
            runs.len(),
            "stream {stream}: an owner wrote again after another had (two owners at once): {runs:?}"
        );
        let old = runs.iter().take_while(|o| process_part(o) == first_owner).count();
        assert!(old >= 1, "stream {stream}: the old leader wrote first: {runs:?}");
        assert!(
            runs[old..].iter().all(|o| process_part(o) != first_owner),
            "stream {stream}: the old process wrote after the new one began: {runs:?}"
        );
        assert!(runs.len() > old, "stream {stream}: the new owner wrote: {runs:?}");
        // The old leader's workers wrote nothing after it stepped down, and the new owner's
        // first commit came after that.
        if let Some(stepped) = stepped_down_at {
            let last_old = commits
                .iter()
                .rfind(|c| c.owner.as_deref().is_some_and(|o| process_part(o) == first_owner))
                .expect("an old commit");
            assert!(
                last_old.timestamp <= stepped.timestamp_millis(),
                "stream {stream}: version {} by the old leader at {} ms, after it stepped down at {stepped}",
                last_old.version,
                last_old.timestamp
            );
            let first_new = commits
                .iter()
                .find(|c| c.owner.as_deref().is_some_and(|o| process_part(o) != first_owner))
                .expect("a new commit");
            assert!(
                first_new.timestamp > stepped.timestamp_millis(),
                "stream {stream}: version {} by the new owner at {} ms, before the old leader stepped down at {stepped}",
                first_new.version,
                first_new.timestamp
            );
        }
    }
    let workers = all_workers(&replica, &token).await;
    assert!(
        workers.iter().all(|w| w["restarts"] == 1),
        "each restarted once: {workers:?}"
    );
    drop(replica);
    drop(leader);
}

/// The environment of a worker process: the server's config as a worker pod reads it from the
/// shared ConfigMap, launcher included. No Kubernetes API is reachable here, and `worker run`
/// must not need one. Nor does it get the token signing key or the URL-signing secret (its pod
/// runs librdkafka against brokers tenants name): here the key points at a file that fails if
/// read.
fn pod_env() -> [(&'static str, String); 2] {
    [
        ("LAKEPLANE__WORKERS__LAUNCHER", "kubernetes".to_owned()),
        (
            "LAKEPLANE__AUTH__SIGNING_KEY_FILE",
            "/nonexistent/jwt-signing-key.pem".to_owned(),
        ),
    ]
}

/// Runs `lakeplane worker run --id ID` to its end.
async fn worker_run(cwd: &Path, id: &str) -> std::process::Output {
    let mut command = configured(cwd, &pod_env());
    command.args(["worker", "run", "--id", id]);
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("worker run ends")
        .expect("worker run")
}

async fn the_worker(server: &Server, token: &str, kind: &str) -> Option<Value> {
    all_workers(server, token)
        .await
        .into_iter()
        .find(|w| w["kind"] == kind)
}

const ROWS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://"))
print(json.dumps({"rows": t.to_pyarrow_table(columns=["id"]).num_rows, "files": len(t.file_uris())}))
"#;

/// Parquet files under a table that its current version does not reference; with `age`, their
/// modification time is moved 8 days back (past the 7-day vacuum retention), as time would.
const UNREFERENCED: &str = r#"
import sys, os, json, time
from urllib.parse import unquote
from deltalake import DeltaTable
root = sys.argv[1].removeprefix("file://")
live = {os.path.normpath(unquote(f.removeprefix("file://"))) for f in DeltaTable(root).file_uris()}
files = [os.path.normpath(os.path.join(d, f)) for d, _, names in os.walk(root)
         if "_delta_log" not in d for f in names if f.endswith(".parquet")]
unreferenced = sorted(f for f in files if f not in live)
if len(sys.argv) > 2 and sys.argv[2] == "age":
    past = time.time() - 8 * 86400
    for f in unreferenced:
        os.utime(f, (past, past))
print(json.dumps({"unreferenced": unreferenced, "live": len(live)}))
"#;

/// The parquet files under a local table directory.
fn parquet_files(location: &str) -> BTreeSet<std::path::PathBuf> {
    let root = std::path::PathBuf::from(location.trim_start_matches("file://"));
    std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_run_completes_a_compaction_and_a_killed_one_is_retried() {
    let cwd = tempfile::tempdir().expect("cwd");
    let env = [("LAKEPLANE__WORKERS__LAUNCHER", "external".to_owned())];
    let server = Server::start(configured(cwd.path(), &env)).await;
    let token = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;
    ready_tenant_with_table(&server, &token, "clicks").await;
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": {"type": "http"}});
    assert_eq!(
        call(
            &server,
            &token,
            Method::POST,
            "/v1/tenants/acme/streams",
            Some(stream)
        )
        .await
        .status(),
        201
    );
    let push = |from: i64| {
        let body: String = (from..from + 20)
            .map(|i| format!("{{\"id\": {i}, \"note\": \"n{i}\"}}\n"))
            .collect();
        server
            .client
            .post(format!("{}/v1/tenants/acme/streams/clicks/events", server.base))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    for batch in 0..60 {
        assert_eq!(push(batch * 20).await.expect("push").status(), 200);
    }
    let table: Value = call(
        &server,
        &token,
        Method::GET,
        "/v1/tenants/acme/tables/bronze/clicks",
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let location = table["location"].as_str().expect("location").to_owned();
    let maintenance = "/v1/tenants/acme/tables/bronze/clicks/maintenance";
    let request = || {
        call(
            &server,
            &token,
            Method::POST,
            maintenance,
            Some(json!({"operations": ["compact"]})),
        )
    };

    // The reconciler records the worker; nothing runs it until `worker run` does.
    let run: Value = request().await.json().await.expect("json");
    let deadline = Instant::now() + Duration::from_secs(20);
    let worker = loop {
        if let Some(w) = the_worker(&server, &token, "compact").await
            && w["state"] == "pending"
        {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "the compaction worker was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = worker["id"].as_str().expect("id").to_owned();
    let output = worker_run(cwd.path(), &id).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done: Value = call(
        &server,
        &token,
        Method::GET,
        &format!("{maintenance}/{}", run["run_id"].as_str().expect("run")),
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        the_worker(&server, &token, "compact").await.expect("worker")["state"],
        "succeeded"
    );
    let after: Value = serde_json::from_str(&crate::common::python(ROWS, &[&location])).expect("json");
    assert_eq!(after["rows"], 1_200);
    assert_eq!(after["files"], 1, "compacted: {after}");

    // Killed mid-way: the table stays readable and the worker is started again.
    for batch in 60..160 {
        assert_eq!(push(batch * 20).await.expect("push").status(), 200);
    }
    let second = request().await;
    assert_eq!(second.status(), 202, "the second maintenance request is accepted");
    let second_run: Value = second.json().await.expect("json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while the_worker(&server, &token, "compact")
        .await
        .is_none_or(|w| w["state"] != "pending")
    {
        assert!(Instant::now() < deadline, "the second run was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut victim = configured(cwd.path(), &pod_env());
    victim
        .args(["worker", "run", "--id", &id])
        .stderr(std::process::Stdio::null());
    let before_rewrite = parquet_files(&location);
    let mut victim = victim.spawn().expect("worker run");
    // Killed mid-rewrite: as soon as the compaction's first new file appears (or, should
    // the rewrite be too quick to catch, once the run is under way).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut running_since: Option<Instant> = None;
    loop {
        if parquet_files(&location)
            .difference(&before_rewrite)
            .next()
            .is_some()
        {
            break;
        }
        if running_since.is_none()
            && the_worker(&server, &token, "compact")
                .await
                .is_some_and(|w| w["state"] == "running")
        {
            running_since = Some(Instant::now());
        }
        if running_since.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            break;
        }
        assert!(Instant::now() < deadline, "the worker never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    signal(victim.id().expect("pid"), "KILL");
    let _ = victim.wait().await;
    // What the killed rewrite left: files it wrote that no version references.
    let left: Value = serde_json::from_str(&crate::common::python(UNREFERENCED, &[&location])).expect("json");
    let new_files: BTreeSet<String> = parquet_files(&location)
        .difference(&before_rewrite)
        .map(|p| p.display().to_string())
        .collect();
    let orphans: BTreeSet<String> = left["unreferenced"]
        .as_array()
        .expect("unreferenced")
        .iter()
        .filter_map(Value::as_str)
        .filter(|f| new_files.contains(*f))
        .map(str::to_owned)
        .collect();
    println!("the killed rewrite left {} orphaned files", orphans.len());
    // The killed run's lease lapses: the run shows failed with the reason before any retry
    // (nothing runs the worker until this test does).
    let killed_run = second_run["run_id"].as_str().expect("run id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown: Value = call(
            &server,
            &token,
            Method::GET,
            &format!("{maintenance}/{killed_run}"),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
        if shown["status"] == "failed" {
            assert!(
                shown["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("lease expired")),
                "{shown}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed run's lease never lapsed: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let readable: Value = serde_json::from_str(&crate::common::python(ROWS, &[&location])).expect("json");
    assert_eq!(
        readable["rows"], 3_200,
        "every row readable after the kill: {readable}"
    );
    // The reconciler sees the heartbeat stop and asks for the worker again; run it until it
    // succeeds (the killed run's lease must lapse first, so an early attempt may fail).
    let deadline = Instant::now() + Duration::from_secs(90);
    let finished = loop {
        let w = the_worker(&server, &token, "compact").await.expect("worker");
        match w["state"].as_str() {
            Some("succeeded") => break w,
            Some("pending") => {
                worker_run(cwd.path(), &id).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        assert!(Instant::now() < deadline, "the killed worker never finished: {w}");
    };
    assert!(
        finished["restarts"].as_u64().is_some_and(|r| r >= 2),
        "retried: {finished}"
    );
    let end: Value = serde_json::from_str(&crate::common::python(ROWS, &[&location])).expect("json");
    assert_eq!(end["rows"], 3_200, "{end}");
    assert_eq!(end["files"], 1, "{end}");

    // The next vacuum leaves no orphan: the killed rewrite's files go once past the retention
    // (their age moved 8 days back, as time would; files the compactions removed stay for
    // time travel, by their removal time in the log).
    crate::common::python(UNREFERENCED, &[&location, "age"]);
    let vacuum = call(
        &server,
        &token,
        Method::POST,
        maintenance,
        Some(json!({"operations": ["vacuum"]})),
    )
    .await;
    assert_eq!(vacuum.status(), 202);
    let vacuum_run: Value = vacuum.json().await.expect("json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown: Value = call(
            &server,
            &token,
            Method::GET,
            &format!("{maintenance}/{}", vacuum_run["run_id"].as_str().expect("run id")),
            None,
        )
        .await
        .json()
        .await
        .expect("json");
        if shown["status"] == "succeeded" {
            break;
        }
        if let Some(w) = the_worker(&server, &token, "compact").await
            && w["state"] == "pending"
        {
            let output = worker_run(cwd.path(), w["id"].as_str().expect("id")).await;
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        assert!(Instant::now() < deadline, "the vacuum never finished: {shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remaining: Vec<&String> = orphans
        .iter()
        .filter(|f| std::path::Path::new(f.as_str()).exists())
        .collect();
    assert!(
        remaining.is_empty(),
        "orphans of the killed rewrite after the vacuum: {remaining:?}"
    );
    let end: Value = serde_json::from_str(&crate::common::python(ROWS, &[&location])).expect("json");
    assert_eq!(end["rows"], 3_200, "{end}");
}

/// Ids, dead letters and their positions of a Kafka table and its dead-letter table.
const KAFKA_ROWS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table(columns=["id"])
d = DeltaTable(sys.argv[2].removeprefix("file://")).to_pyarrow_table(columns=["source_position"])
print(json.dumps({"ids": sorted(t.column("id").to_pylist()),
                  "dead": sorted(d.column("source_position").to_pylist())}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_worker_process_killed_ten_times_lands_every_record_exactly_once() {
    let bootstrap = std::env::var("LAKEPLANE_TEST_KAFKA")
        .expect("LAKEPLANE_TEST_KAFKA must name the tansu broker (scripts/test starts it)");
    let cwd = tempfile::tempdir().expect("cwd");
    let env = [
        ("LAKEPLANE__WORKERS__LAUNCHER", "external".to_owned()),
        ("LAKEPLANE__WORKERS__MAX_FAILURES", "100".to_owned()),
        ("LAKEPLANE__WORKERS__BACKOFF_CAP_SECS", "1".to_owned()),
        ("LAKEPLANE__INGEST__KAFKA_LINGER_MS", "50".to_owned()),
        ("LAKEPLANE__INGEST__KAFKA_FLUSH_RECORDS", "200".to_owned()),
    ];
    let server = Server::start(configured(cwd.path(), &env)).await;
    let token = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;
    ready_tenant_with_table(&server, &token, "orders").await;
    let topic = crate::common::topic(&bootstrap, 3).await;
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"}, "on_error": "dlq",
        "source": {"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "start": "earliest"}});
    let created = call(
        &server,
        &token,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
    )
    .await;
    assert_eq!(created.status(), 201);
    let location = orders_location(&server, &token).await;
    let dlq = format!("{}__dlq", location.trim_end_matches('/'));

    // 5,000 records in 25 rounds over about 40 s while the worker is killed: every 50th is
    // malformed.
    let (total, bad_every) = (5_000_i64, 50);
    let producing = {
        let (topic, bootstrap) = (topic.clone(), bootstrap.clone());
        tokio::spawn(async move {
            for round in 0..25 {
                crate::common::produce_ids(&bootstrap, &topic, 3, round * 200..(round + 1) * 200, |id| {
                    if id % bad_every == bad_every - 1 {
                        format!("{{\"id\": \"bad-{id}\", \"note\": \"n\"}}")
                    } else {
                        format!("{{\"id\": {id}, \"note\": \"n{id}\"}}")
                    }
                })
                .await;
                // Spread over the kills (about 4 s apart), so each run has records to write.
                tokio::time::sleep(Duration::from_millis(1_600)).await;
            }
        })
    };

    let pending = async || -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(w) = the_worker(&server, &token, "ingest").await
                && w["state"] == "pending"
            {
                return w["id"].as_str().expect("id").to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "the ingest worker is not pending again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let start = |id: &str| {
        let mut command = configured(cwd.path(), &pod_env());
        command.args(["worker", "run", "--id", id]).kill_on_drop(true);
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.spawn().expect("worker run")
    };
    // Kill points spread over each run: 1.5 s to 4 s after its start (it takes about a second
    // to start), from a fixed sequence (printed, so a failure can be replayed).
    let waits: Vec<u64> = (0..10u64).map(|k| 1_500 + (k * 7_919) % 2_500).collect();
    println!("kill after (ms): {waits:?}");
    let landed = || -> usize {
        let seen: Value =
            serde_json::from_str(&crate::common::python(KAFKA_ROWS, &[&location, &dlq])).expect("json");
        seen["ids"].as_array().map_or(0, Vec::len) + seen["dead"].as_array().map_or(0, Vec::len)
    };
    let mut progress = Vec::new();
    for wait in &waits {
        let id = pending().await;
        let before = landed();
        let mut child = start(&id);
        tokio::time::sleep(Duration::from_millis(*wait)).await;
        signal(child.id().expect("pid"), "KILL");
        let _ = child.wait().await;
        progress.push(landed() - before);
    }
    producing.await.expect("producer");
    println!("records landed per killed run: {progress:?}");
    // The kills met a worker at work, not only ones still starting.
    assert!(
        progress.iter().filter(|n| **n > 0).count() >= 3,
        "too few killed runs had written anything: {progress:?}"
    );

    // A last run, left alone until everything landed.
    let id = pending().await;
    let mut child = start(&id);
    let expected_good: Vec<i64> = (0..total).filter(|id| id % bad_every != bad_every - 1).collect();
    let expected_dead = usize::try_from(total / bad_every).expect("count");
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        let seen: Value =
            serde_json::from_str(&crate::common::python(KAFKA_ROWS, &[&location, &dlq])).expect("json");
        let ids = seen["ids"].as_array().map_or(0, Vec::len);
        let dead = seen["dead"].as_array().map_or(0, Vec::len);
        if ids >= expected_good.len() && dead >= expected_dead {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "not everything landed: {ids} rows, {dead} dead letters"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    signal(child.id().expect("pid"), "KILL");
    let _ = child.wait().await;
    let ids: Vec<i64> = seen["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert_eq!(ids, expected_good, "every good record exactly once");
    let dead: Vec<&str> = seen["dead"]
        .as_array()
        .expect("dead")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let distinct: BTreeSet<&&str> = dead.iter().collect();
    assert_eq!(
        dead.len(),
        expected_dead,
        "every malformed record dead-lettered: {dead:?}"
    );
    assert_eq!(distinct.len(), dead.len(), "each dead letter once: {dead:?}");
}
