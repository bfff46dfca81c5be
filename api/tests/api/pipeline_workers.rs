//! Pipeline runs as `pipeline` workers under the reconciler, through faults caused for real: a
//! full disk (a small tmpfs filled to the last byte) fails a run's commits, and its worker
//! retries it with backoff until the space comes back, then lands every row once; a placement
//! migration waits behind a run that holds its lease (a process that took the run and froze),
//! the run's worker is held back while the tenant migrates, and once the lease lapses the run
//! resumes at the tenant's new placement. Tables are judged from outside with Python
//! `deltalake`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::pipeline::RunStatus;
use tenancy::role::Role;
use tenancy::store::{Backend, PipelineRunRecord};

use crate::helpers::{TestApp, python};
use crate::storage_outage::{SmallDisk, fill};

/// Sorted ids of the Delta table at `location`, read by Python `deltalake`.
fn ids(location: &str) -> Vec<i64> {
    let script = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://"))
print(json.dumps(sorted(t.to_pyarrow_table(columns=["id"]).column("id").to_pylist())))
"#;
    serde_json::from_str(&python(script, &[location])).expect("ids")
}

/// Tenant `tenant` with bronze `events` (`id`, `client`) fed by the HTTP stream `clicks`
/// holding `n` events, and the manual pipeline `clean` from it to silver `events`.
async fn tenant_with_pipeline(app: &TestApp, admin: &str, tenant: &str, n: i64) {
    app.ready_tenant(admin, tenant).await;
    let base = format!("/v1/tenants/{tenant}");
    let columns = json!([
        {"name": "id", "type": "long", "nullable": false}, {"name": "client", "type": "long"}]);
    app.bronze_with_http_stream(admin, tenant, "events", columns, "clicks")
        .await;
    let body: String = (0..n)
        .map(|i| format!("{{\"id\": {i}, \"client\": {}}}\n", i % 7))
        .collect();
    let pushed = app
        .client
        .post(app.url(&format!("{base}/streams/clicks/events")))
        .bearer_auth(admin)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), 200);
    let pipeline = json!({
        "name": "clean",
        "source": {"zone": "bronze", "table": "events"},
        "target": {"zone": "silver", "table": "events"},
        "select": [{"name": "id", "expr": "id"}, {"name": "client", "expr": "client"}],
        "trigger": {"type": "manual"}
    });
    app.expect(
        admin,
        Method::POST,
        &format!("{base}/pipelines"),
        Some(pipeline),
        201,
    )
    .await;
}

/// The pipeline worker that has run `run` (or runs it), as the platform-admin lists it.
async fn worker_of(app: &TestApp, admin: &str, run: &str) -> Option<Value> {
    let workers = app
        .expect(admin, Method::GET, "/v1/admin/workers?kind=pipeline", None, 200)
        .await;
    workers["items"]
        .as_array()
        .and_then(|items| items.iter().find(|w| w["run_id"] == run).cloned())
}

/// Polls the run until `done` holds for it (60 s at most); returns it.
async fn run_until(
    app: &TestApp,
    token: &str,
    path: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = app.expect(token, Method::GET, path, None, 200).await;
        if done(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "{what}: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_on_a_full_disk_is_retried_with_backoff_and_lands_once_when_space_returns() {
    let Some(disk) = SmallDisk::mount_or_skip("32m") else {
        return;
    };
    let lake = disk.path().join("lake");
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            c.storage.root = Some(lake);
            c.ingest.linger_ms = 20;
            crate::kafka::fast_workers(c);
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_pipeline(&app, &admin, "acme", 500).await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let silver = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/silver/events",
            None,
            200,
        )
        .await["location"]
        .as_str()
        .expect("location")
        .to_owned();

    let filler = fill(disk.path());
    let queued = app
        .expect(
            &engineer,
            Method::POST,
            "/v1/tenants/acme/pipelines/clean/runs",
            Some(json!({})),
            202,
        )
        .await;
    let run_id = queued["run_id"].as_str().expect("run id").to_owned();
    let path = format!("/v1/tenants/acme/pipelines/clean/runs/{run_id}");
    // Each attempt fails on the full disk: the run goes back to the queue with the failure's
    // class (not its chain, which names the plane's paths), and the worker fails and is
    // started again after its backoff, more than once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let worker = loop {
        if let Some(worker) = worker_of(&app, &admin, &run_id).await
            && worker["failures"].as_u64().unwrap_or_default() >= 3
        {
            break worker;
        }
        assert!(
            Instant::now() < deadline,
            "the run's worker did not fail and retry: {:?}",
            worker_of(&app, &admin, &run_id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        worker["restarts"].as_u64().unwrap_or_default() >= 2,
        "restarted after each failure: {worker}"
    );
    assert!(
        worker["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("queued again")),
        "{worker}"
    );
    let waiting = app.expect(&engineer, Method::GET, &path, None, 200).await;
    assert!(
        waiting["status"] == "queued" || waiting["status"] == "running",
        "a failed attempt leaves the run to its retries: {waiting}"
    );
    let lake_path = disk.path().to_string_lossy().into_owned();
    let shown = waiting.to_string();
    assert!(
        !shown.contains(&lake_path),
        "the tenant's run does not show the plane's paths: {shown}"
    );
    // The tenant's view of the worker says only that it failed and where the cause is.
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let theirs = app
        .expect(&tenant_admin, Method::GET, "/v1/tenants/acme/workers", None, 200)
        .await;
    assert!(
        theirs["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|w| w["kind"] == "pipeline")),
        "{theirs}"
    );
    assert!(!theirs.to_string().contains(&lake_path), "{theirs}");
    assert!(ids(&silver).is_empty(), "nothing landed on the full disk");

    std::fs::remove_file(filler).expect("free the space");
    let done = run_until(
        &app,
        &engineer,
        &path,
        "the run did not succeed once space returned",
        |r| r["status"] == "succeeded",
    )
    .await;
    assert!(done["error"].is_null(), "{done}");
    assert_eq!(done["rows"]["written"], 500, "{done}");
    assert_eq!(ids(&silver), (0..500).collect::<Vec<i64>>(), "every row once");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let worker = worker_of(&app, &admin, &run_id).await.expect("worker");
        if worker["state"] == "succeeded" {
            assert_eq!(worker["progress"]["rows_written"], 500, "{worker}");
            break;
        }
        assert!(Instant::now() < deadline, "{worker}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The leader's gauges are those of its last loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        if metrics.contains(r#"lakeplane_workers{kind="pipeline",state="succeeded"} 1"#) {
            break metrics;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(r#"lakeplane_worker_restarts{kind="pipeline"}"#) && !l.ends_with(" 0")),
        "{metrics}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_waits_for_a_running_pipeline_run_which_then_resumes_at_the_new_placement() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        |c| {
            c.ingest.linger_ms = 20;
            crate::kafka::fast_workers(c);
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_pipeline(&app, &admin, "mover", 300).await;
    let id = tenancy::tenant::TenantId::parse("mover").expect("id");
    let store = app.state.store.clone();
    let pipeline = store
        .get_pipeline(&id, "clean")
        .await
        .expect("store")
        .expect("pipeline");
    // A process took the run and froze between its commits: the run is `running` under the
    // lease that process renews (here the test renews it, while the process is "alive").
    // Recorded `running` under a live lease (a worker the reconciler starts meanwhile waits
    // for it), which the frozen process then holds: taken as of that lease's end.
    let now = tenancy::now();
    let mut run = PipelineRunRecord::queued(&pipeline, false, "frozen", now);
    run.status = RunStatus::Running;
    run.lease_expires_at = Some(now + chrono::Duration::seconds(3));
    assert_eq!(
        store.queue_pipeline_run(&run, None).await.expect("run"),
        Some(run.id)
    );
    let at_lapse = now + chrono::Duration::seconds(3);
    assert!(
        store
            .take_pipeline_run(
                run.id,
                "frozen",
                at_lapse + chrono::Duration::seconds(3),
                at_lapse
            )
            .await
            .expect("take")
    );
    let renew = |store: std::sync::Arc<dyn tenancy::store::MetadataStore>, id: uuid::Uuid| async move {
        let until = tenancy::now() + chrono::Duration::seconds(3);
        assert!(
            store
                .renew_pipeline_run(id, "frozen", until)
                .await
                .expect("renew")
        );
    };

    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/mover",
        Some(json!({"isolation": "dedicated"})),
        200,
    )
    .await;
    app.wait_for_status(&admin, "mover", "migrating").await;
    // The run's worker, started while the tenant was ready (it waits for the lease), is
    // stopped by the reconciler's next loop.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        renew(store.clone(), run.id).await;
        let worker = worker_of(&app, &admin, &run.id.to_string()).await;
        if worker
            .as_ref()
            .is_none_or(|w| w["state"] != "running" && w["state"] != "pending")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the worker kept running: {worker:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // While the lease is live: the migration drains, copies nothing, and no pipeline worker
    // of the migrating tenant runs.
    let new = app.data_dir.path().join("lake/lakeplane-t-mover");
    let held_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < held_until {
        renew(store.clone(), run.id).await;
        assert!(
            !new.join("silver").exists() && !new.join("bronze").exists(),
            "nothing is copied while a pipeline run holds its lease"
        );
        let tenant = app
            .expect(&admin, Method::GET, "/v1/tenants/mover", None, 200)
            .await;
        assert_eq!(tenant["migration"]["phase"], "draining", "{tenant}");
        let worker = worker_of(&app, &admin, &run.id.to_string()).await;
        assert!(
            worker
                .as_ref()
                .is_none_or(|w| w["state"] != "running" && w["state"] != "pending"),
            "no pipeline worker runs for a migrating tenant: {worker:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let path = format!("/v1/tenants/mover/pipelines/clean/runs/{}", run.id);
    assert_eq!(
        app.expect(&admin, Method::GET, &path, None, 200).await["status"],
        "running"
    );

    // The frozen process dies: its lease lapses, the migration copies and switches, and the
    // run's worker then takes the run over and resumes it at the new placement.
    let moved = app.wait_for_status(&admin, "mover", "ready").await;
    assert_eq!(moved["placement"]["kind"], "dedicated", "{moved}");
    let done = run_until(
        &app,
        &admin,
        &path,
        "the run was not resumed after the migration",
        |r| r["status"] == "succeeded",
    )
    .await;
    assert_eq!(done["rows"]["written"], 300, "{done}");
    let silver = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/mover/tables/silver/events",
            None,
            200,
        )
        .await["location"]
        .as_str()
        .expect("location")
        .to_owned();
    assert!(
        silver.contains("lakeplane-t-mover"),
        "at the new placement: {silver}"
    );
    assert_eq!(ids(&silver), (0..300).collect::<Vec<i64>>(), "every row once");
    let worker = worker_of(&app, &admin, &run.id.to_string())
        .await
        .expect("the run's worker");
    assert!(
        worker["state"] == "succeeded" || worker["state"] == "running",
        "{worker}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_time_limit_is_stopped_and_fails_its_pipeline_until_resumed() {
    // S3 frozen with SIGSTOP (moto, the S3 stand-in): the run's reads hang, and the 2 s limit
    // stops it.
    let moto = crate::common::PrivateMoto::start().await;
    let endpoint = moto.endpoint.clone();
    let prefix = crate::helpers::fresh_prefix();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            crate::helpers::on_moto(c, &endpoint, &prefix);
            c.ingest.linger_ms = 20;
            c.workers.pipeline_run_timeout_secs = 2;
            crate::kafka::fast_workers(c);
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_pipeline(&app, &admin, "acme", 100).await;
    let path = "/v1/tenants/acme/pipelines/clean";

    moto.freeze();
    let stopped = crate::pipelines::run(&app, &admin, "clean", false).await;
    assert_eq!(stopped["status"], "failed", "the run was not stopped: {stopped}");
    let started = stopped["started_at"]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let finished = stopped["finished_at"]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok());
    let took = finished.zip(started).map(|(f, s)| (f - s).num_milliseconds());
    assert!(
        took.is_some_and(|ms| (2_000..10_000).contains(&ms)),
        "stopped at its 2 s limit: {stopped}"
    );
    assert!(
        stopped["error"]
            .as_str()
            .is_some_and(|e| e.contains("pipeline_run_timeout_secs")),
        "{stopped}"
    );
    let pipeline = app.expect(&admin, Method::GET, path, None, 200).await;
    assert_eq!(pipeline["state"], "failed", "{pipeline}");

    // S3 answers again; a resume and a run then land every row once.
    moto.thaw();
    app.expect(&admin, Method::PATCH, path, Some(json!({"paused": false})), 200)
        .await;
    let done = crate::pipelines::run(&app, &admin, "clean", false).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["rows"]["written"], 100, "{done}");
    let silver = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/silver/events",
            None,
            200,
        )
        .await;
    // Nothing the stopped run computed was committed after it stopped: one commit of 100 rows
    // on top of the table's creation.
    let history = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/silver/events/history",
            None,
            200,
        )
        .await;
    assert_eq!(silver["num_rows"], 100, "{silver}");
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(2),
        "the creation and the run's one commit: {history}"
    );
    app.shutdown().await;
}
