//! Pipelines through real crashes. With `LAKEPLANE_FAULT_KILL_AT` the server SIGKILLs itself
//! right after a run's quarantine commit (before the target's) and right after the target's
//! commit (before the run is recorded); then, with no fault, the server is also killed from
//! outside at moments of its own choosing while clients push and a continuous pipeline runs.
//! Started again on the same data, the killed run's `pipeline` worker is started again and
//! resumes the run from the tables' own `txn` marks.
//! The same across SIGKILLs with bronze fed by a Kafka stream (the tansu broker). Judged from
//! outside with Python `deltalake`: every pushed or produced id is in silver or in the
//! quarantine table, exactly once, and nowhere else.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Server, call, cli_token, lakeplane, signal};

/// The pipeline pass every second, short lingers, run leases of 3 s renewed every second.
const FAST: [(&str, &str); 4] = [
    ("LAKEPLANE__WORKERS__PIPELINE_POLL_SECS", "1"),
    ("LAKEPLANE__INGEST__LINGER_MS", "50"),
    ("LAKEPLANE__WORKERS__HEARTBEAT_SECS", "1"),
    ("LAKEPLANE__WORKERS__HEARTBEAT_TIMEOUT_SECS", "3"),
];

/// The ids of the table at `argv[1]`, in storage order.
const IDS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://"))
print(json.dumps(t.to_pyarrow_table(columns=["id"]).column("id").to_pylist()))
"#;

fn ids(location: &str) -> Vec<i64> {
    serde_json::from_str(&crate::common::python(IDS, &[location])).expect("ids")
}

async fn start(cwd: &std::path::Path, kill_at: Option<&str>) -> Server {
    let mut command = lakeplane(cwd);
    command.envs(FAST);
    if let Some(point) = kill_at {
        command.env("LAKEPLANE_FAULT_KILL_AT", point);
    }
    Server::start(command).await
}

async fn expect(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let response = call(server, token, method.clone(), path, body).await;
    crate::common::expect_status(response, &format!("{method} {path}"), status).await
}

/// A tenant with a bronze table fed by an HTTP stream and a pipeline `clean` to silver that
/// quarantines ids divisible by ten; returns the bronze, silver and quarantine locations.
async fn setup(server: &Server, admin: &str, trigger: Value) -> [String; 3] {
    setup_with(server, admin, trigger, json!({"type": "http"})).await
}

/// [`setup`] with the stream's source.
async fn setup_with(server: &Server, admin: &str, trigger: Value, source: Value) -> [String; 3] {
    let tenant = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    expect(server, admin, Method::POST, "/v1/tenants", Some(tenant), 201).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while expect(server, admin, Method::GET, "/v1/tenants/acme", None, 200).await["status"] != "ready" {
        assert!(Instant::now() < deadline, "acme never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = json!({"zone": "bronze", "name": "clicks", "columns": [
        {"name": "id", "type": "long", "nullable": false}, {"name": "note", "type": "string"}]});
    let bronze = expect(
        server,
        admin,
        Method::POST,
        "/v1/tenants/acme/tables",
        Some(table),
        201,
    )
    .await;
    let stream = json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": source});
    expect(
        server,
        admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
        201,
    )
    .await;
    let pipeline = json!({
        "name": "clean",
        "source": {"zone": "bronze", "table": "clicks"},
        "target": {"zone": "silver", "table": "clicks"},
        "select": [{"name": "id", "expr": "id"}, {"name": "note", "expr": "upper(note)"}],
        "expectations": [{"name": "not_tens", "expr": "id % 10 <> 0", "on_violation": "quarantine"}],
        "trigger": trigger
    });
    expect(
        server,
        admin,
        Method::POST,
        "/v1/tenants/acme/pipelines",
        Some(pipeline),
        201,
    )
    .await;
    let location = |t: Value| t["location"].as_str().expect("location").to_owned();
    let silver = expect(
        server,
        admin,
        Method::GET,
        "/v1/tenants/acme/tables/silver/clicks",
        None,
        200,
    )
    .await;
    let quarantine = expect(
        server,
        admin,
        Method::GET,
        "/v1/tenants/acme/tables/silver/clicks__quarantine",
        None,
        200,
    )
    .await;
    [location(bronze), location(silver), location(quarantine)]
}

async fn push(server: &Server, token: &str, ids: std::ops::Range<i64>) -> reqwest::Result<reqwest::Response> {
    let body: String = ids
        .map(|i| format!("{{\"id\": {i}, \"note\": \"n{i}\"}}\n"))
        .collect();
    server
        .client
        .post(format!("{}/v1/tenants/acme/streams/clicks/events", server.base))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await
}

/// Every bronze id is in silver (or, for tens, in quarantine) exactly once.
fn assert_exactly_once(locations: &[String; 3], context: &str) {
    let bronze: BTreeSet<i64> = ids(&locations[0]).into_iter().collect();
    for (location, tens, name) in [
        (&locations[1], false, "silver"),
        (&locations[2], true, "quarantine"),
    ] {
        let stored = ids(location);
        let unique: BTreeSet<i64> = stored.iter().copied().collect();
        assert_eq!(unique.len(), stored.len(), "{context}: an id twice in {name}");
        let expected: BTreeSet<i64> = bronze.iter().copied().filter(|i| (i % 10 == 0) == tens).collect();
        assert_eq!(
            unique
                .symmetric_difference(&expected)
                .take(10)
                .collect::<Vec<_>>(),
            Vec::<&i64>::new(),
            "{context}: {name} holds exactly its share of bronze ({} ids)",
            expected.len()
        );
    }
}

async fn wait_for_exit(server: &mut Server, what: &str) {
    let status = tokio::time::timeout(Duration::from_secs(60), server.child.wait())
        .await
        .unwrap_or_else(|_| panic!("the server did not kill itself at {what}"))
        .expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL at {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_between_or_after_its_commits_resumes_exactly_once() {
    for point in ["pipeline.quarantine", "pipeline.target"] {
        let cwd = tempfile::tempdir().expect("cwd");
        let admin = cli_token(cwd.path(), &FAST, &["--role", "platform-admin"]).await;
        let mut doomed = start(cwd.path(), Some(point)).await;
        let locations = setup(&doomed, &admin, json!({"type": "manual"})).await;
        let pushed = push(&doomed, &admin, 0..200).await.expect("push");
        assert_eq!(pushed.status(), 200);
        let run = expect(
            &doomed,
            &admin,
            Method::POST,
            "/v1/tenants/acme/pipelines/clean/runs",
            Some(json!({})),
            202,
        )
        .await;
        wait_for_exit(&mut doomed, point).await;
        drop(doomed);
        // The quarantine commit landed before either kill; the target's only before the second.
        assert_eq!(
            ids(&locations[2]).len(),
            20,
            "{point}: the quarantine commit landed"
        );
        assert_eq!(
            ids(&locations[1]).len(),
            if point == "pipeline.target" { 180 } else { 0 },
            "{point}: the target's commit landed only if the kill came after it"
        );

        let server = start(cwd.path(), None).await;
        // The killed run's lease lapses (3 s here), and its `pipeline` worker, whose
        // heartbeat stopped with the process, is started again: it resumes the same run from
        // the tables' marks, which ends it with everything read once.
        let killed_path = format!(
            "/v1/tenants/acme/pipelines/clean/runs/{}",
            run["run_id"].as_str().expect("run id")
        );
        let bronze_then = expect(
            &server,
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/bronze/clicks",
            None,
            200,
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let resumed = loop {
            let resumed = expect(&server, &admin, Method::GET, &killed_path, None, 200).await;
            if resumed["status"] == "succeeded" {
                break resumed;
            }
            assert!(
                resumed["status"] != "failed" && Instant::now() < deadline,
                "{point}: the killed run was not resumed: {resumed}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            resumed["source_versions"]["to"], bronze_then["version"],
            "{point}: {resumed}"
        );
        assert_exactly_once(&locations, &format!("{point}, resumed"));
        assert_eq!(
            ids(&locations[1]).len() + ids(&locations[2]).len(),
            200,
            "{point}"
        );
        // The worker that resumed it is the pipeline's, started again after the crash.
        let workers = expect(
            &server,
            &admin,
            Method::GET,
            "/v1/admin/workers?kind=pipeline",
            None,
            200,
        )
        .await;
        let worker = workers["items"]
            .as_array()
            .and_then(|items| items.iter().find(|w| w["run_id"] == run["run_id"]))
            .unwrap_or_else(|| panic!("{point}: no pipeline worker ran the killed run: {workers}"));
        assert!(
            worker["restarts"].as_u64().unwrap_or_default() >= 1,
            "{point}: restarted after the crash: {worker}"
        );
        let pushed = push(&server, &admin, 200..300).await.expect("push");
        assert_eq!(pushed.status(), 200);
        let again = expect(
            &server,
            &admin,
            Method::POST,
            "/v1/tenants/acme/pipelines/clean/runs",
            Some(json!({})),
            202,
        )
        .await;
        let path = format!(
            "/v1/tenants/acme/pipelines/clean/runs/{}",
            again["run_id"].as_str().expect("run id")
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = loop {
            let run = expect(&server, &admin, Method::GET, &path, None, 200).await;
            if run["status"] == "succeeded" {
                break run;
            }
            assert!(
                run["status"] != "failed" && Instant::now() < deadline,
                "{point}: the resumed run did not succeed: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let bronze = expect(
            &server,
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/bronze/clicks",
            None,
            200,
        )
        .await;
        assert_eq!(
            done["source_versions"]["to"], bronze["version"],
            "{point}: {done}"
        );
        assert_exactly_once(&locations, point);
        assert_eq!(
            ids(&locations[1]).len() + ids(&locations[2]).len(),
            300,
            "{point}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_continuous_pipeline_lands_every_pushed_event_once_across_sigkills() {
    let cwd = tempfile::tempdir().expect("cwd");
    let admin = cli_token(cwd.path(), &FAST, &["--role", "platform-admin"]).await;
    let mut server = start(cwd.path(), None).await;
    let locations = setup(&server, &admin, json!({"type": "continuous"})).await;
    let mut acked: BTreeSet<i64> = BTreeSet::new();
    let mut next = 0i64;
    for round in 0..3 {
        // Pushes for a while, with runs landing every second, then a SIGKILL mid-stream.
        let until = Instant::now() + Duration::from_millis(2_500 + 400 * round);
        while Instant::now() < until {
            if let Ok(r) = push(&server, &admin, next..next + 40).await
                && r.status() == 200
            {
                acked.extend(next..next + 40);
            }
            next += 40;
        }
        signal(server.pid(), "KILL");
        let _ = server.child.wait().await;
        drop(server);
        server = start(cwd.path(), None).await;
    }
    // Quiet now: the continuous trigger catches up with everything acknowledged.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let landed = ids(&locations[1]).len() + ids(&locations[2]).len();
        let bronze = ids(&locations[0]).len();
        if landed >= bronze && bronze >= acked.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline never caught up: {landed} of {bronze} bronze rows"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bronze: BTreeSet<i64> = ids(&locations[0]).into_iter().collect();
    assert!(acked.is_subset(&bronze), "every acknowledged push is in bronze");
    assert!(
        acked.len() > 200,
        "the clients were acknowledged: {}",
        acked.len()
    );
    assert_exactly_once(&locations, "after three SIGKILLs");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kafka_to_bronze_to_silver_chain_lands_every_record_once_across_sigkills() {
    let bootstrap = std::env::var("LAKEPLANE_TEST_KAFKA")
        .expect("LAKEPLANE_TEST_KAFKA must name the tansu broker (scripts/test starts it)");
    let cwd = tempfile::tempdir().expect("cwd");
    let admin = cli_token(cwd.path(), &FAST, &["--role", "platform-admin"]).await;
    let kafka_env = [
        ("LAKEPLANE__INGEST__KAFKA_LINGER_MS", "100"),
        ("LAKEPLANE__WORKERS__RECONCILE_SECS", "1"),
    ];
    let start_kafka = |cwd: &std::path::Path| {
        let mut command = lakeplane(cwd);
        command.envs(FAST).envs(kafka_env);
        Server::start(command)
    };
    let mut server = start_kafka(cwd.path()).await;
    let topic = crate::common::topic(&bootstrap, 2).await;
    let source =
        json!({"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic, "start": "earliest"});
    let locations = setup_with(&server, &admin, json!({"type": "continuous"}), source).await;
    let payload = |i: i64| format!("{{\"id\": {i}, \"note\": \"n{i}\"}}");
    let waves = 3i64;
    let per_wave = 1_500i64;
    for wave in 0..waves {
        crate::common::produce_ids(
            &bootstrap,
            &topic,
            2,
            wave * per_wave..(wave + 1) * per_wave,
            payload,
        )
        .await;
        // Killed once the chain is under way: some of the wave is in bronze.
        let deadline = Instant::now() + Duration::from_secs(60);
        while ids(&locations[0]).len() as i64 <= wave * per_wave {
            assert!(Instant::now() < deadline, "wave {wave} never reached bronze");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        signal(server.pid(), "KILL");
        let _ = server.child.wait().await;
        drop(server);
        server = start_kafka(cwd.path()).await;
    }
    let total = (waves * per_wave) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let bronze = ids(&locations[0]).len();
        let landed = ids(&locations[1]).len() + ids(&locations[2]).len();
        if bronze >= total && landed >= bronze {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chain never caught up: {bronze} of {total} records in bronze, {landed} in silver and quarantine"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bronze = ids(&locations[0]);
    let unique: BTreeSet<i64> = bronze.iter().copied().collect();
    assert_eq!(unique.len(), bronze.len(), "a record twice in bronze");
    assert_eq!(
        unique,
        (0..waves * per_wave).collect::<BTreeSet<i64>>(),
        "every record in bronze"
    );
    assert_exactly_once(&locations, "Kafka, after three SIGKILLs");
    drop(server);
}
