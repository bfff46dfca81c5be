//! Workers as a user sees them in the API on the embedded default (in-process launcher):
//! requested maintenance becomes a worker that runs once and succeeds; a worker that keeps
//! failing restarts with growing delays, settles at `failed` with its error, and runs again
//! when an admin retries it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, problem};
use crate::streams::{EVENTS, clicks, push};

fn fast(c: &mut api::config::Config) {
    c.workers.reconcile_secs = 1;
    c.workers.heartbeat_secs = 1;
    c.workers.heartbeat_timeout_secs = 2;
}

async fn workers(app: &TestApp, token: &str, query: &str) -> Value {
    let listed = app
        .get_as(token, &format!("/v1/tenants/acme/workers{query}"))
        .await;
    assert_eq!(listed.status(), 200);
    listed.json().await.expect("json")
}

/// Polls the tenant's workers until one satisfies `done`, and returns it.
/// Waits until the reconciler has run `n` more loops (polling, with a deadline), so a check
/// that nothing happened reads what those loops left rather than what a sleep happened to see.
async fn loops_later(app: &TestApp, n: u64) {
    let start = app.state.workers.report().loops;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.workers.report().loops < start + n {
        assert!(Instant::now() < deadline, "the reconciler stopped looping");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the maintenance scheduler has finished `n` more passes.
async fn schedule_passes_later(app: &TestApp, n: u64) {
    let start = app.state.workers.report().schedule_passes;
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.workers.report().schedule_passes < start + n {
        assert!(Instant::now() < deadline, "the scheduler stopped passing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_worker(
    app: &TestApp,
    token: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let listed = workers(app, token, "").await;
        if let Some(found) = listed["items"]
            .as_array()
            .and_then(|items| items.iter().find(|w| done(w)))
        {
            return found.clone();
        }
        assert!(Instant::now() < deadline, "no such worker: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requested_maintenance_runs_once_as_a_worker_and_ends_succeeded() {
    let app = TestApp::spawn_with(Backend::Sqlite, fast, Default::default()).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    for batch in 0..4 {
        let body = format!("{{\"id\": {batch}, \"user\": \"u\", \"amount\": 1.5}}\n");
        let pushed = push(&app, &admin, EVENTS, "application/x-ndjson", body.into_bytes()).await;
        assert_eq!(pushed.status(), 200);
    }
    let table = "/v1/tenants/acme/tables/bronze/events";
    let request = |ops: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let started = app
                .send_as(
                    &admin,
                    Method::POST,
                    &format!("{table}/maintenance"),
                    Some(json!({"operations": ops})),
                )
                .await;
            assert_eq!(started.status(), 202);
            let started: Value = started.json().await.expect("json");
            started["run_id"].as_str().expect("run id").to_owned()
        }
    };
    let run = request(json!(["compact"])).await;
    let worker = wait_for_worker(&app, &admin, Duration::from_secs(20), |w| {
        w["run_id"] == run.as_str() && w["state"] == "succeeded"
    })
    .await;
    assert_eq!(worker["kind"], "compact");
    assert_eq!(worker["operations"], json!(["compact"]));
    assert_eq!(
        (worker["restarts"].as_u64(), worker["failures"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(
        worker["progress"]["metrics"]["files_removed"]
            .as_u64()
            .is_some_and(|n| n >= 4),
        "the run's metrics are the worker's progress: {worker}"
    );
    let done: Value = app
        .get_as(&admin, &format!("{table}/maintenance/{run}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(done["status"], "succeeded", "{done}");
    // Several reconcile loops later it has not run again.
    loops_later(&app, 3).await;
    let later = wait_for_worker(&app, &admin, Duration::from_secs(1), |w| w["id"] == worker["id"]).await;
    assert_eq!(
        (later["state"].as_str(), later["restarts"].as_u64()),
        (Some("succeeded"), Some(0))
    );
    let finishes: Value = app
        .get_as(&admin, "/v1/audit?action=table.maintenance.finish&tenant=acme")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        finishes["items"].as_array().map(Vec::len),
        Some(1),
        "ran once: {finishes}"
    );
    let id = worker["id"].as_str().expect("id");
    let refused = app
        .send_as(
            &admin,
            Method::POST,
            &format!("/v1/admin/workers/{id}/retry"),
            None,
        )
        .await;
    assert!(
        problem(refused, 409).await["detail"]
            .as_str()
            .is_some_and(|d| d.contains("succeeded")),
        "only a failed worker can be retried"
    );

    // A new request on the same table is the same worker with a new spec: it runs again.
    let again = request(json!(["vacuum", "checkpoint"])).await;
    let rerun = wait_for_worker(&app, &admin, Duration::from_secs(20), |w| {
        w["run_id"] == again.as_str() && w["state"] == "succeeded"
    })
    .await;
    assert_eq!(rerun["id"], worker["id"], "one worker per (kind, tenant, table)");
    assert_eq!(rerun["restarts"], 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_worker_backs_off_settles_failed_and_runs_again_when_retried() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            fast(c);
            c.workers.backoff_base_ms = 1_500;
            c.workers.max_failures = 3;
            c.ingest.kafka_request_timeout_ms = 300;
        },
        Default::default(),
    )
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
    // Nothing listens on port 1: every attempt fails.
    let stream = json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"},
        "source": {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "topic": "nowhere"}});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants/acme/streams", Some(stream))
            .await
            .status(),
        201
    );
    // Watch each failure and how long the worker waits before the next attempt.
    let mut failures: Vec<DateTime<Utc>> = Vec::new();
    let mut delays: Vec<f64> = Vec::new();
    let mut waiting_since: Option<DateTime<Utc>> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = loop {
        assert!(
            Instant::now() < deadline,
            "never settled: failures at {failures:?}"
        );
        let listed = workers(&app, &admin, "").await;
        let Some(w) = listed["items"].as_array().and_then(|i| i.first()).cloned() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let failed_at: Option<DateTime<Utc>> = w["failed_at"].as_str().and_then(|t| t.parse().ok());
        match (w["state"].as_str(), failed_at) {
            (Some("failed"), Some(at)) if failures.last() != Some(&at) => {
                failures.push(at);
                waiting_since = Some(at);
            }
            (Some("pending" | "running"), _) => {
                if let Some(since) = waiting_since.take() {
                    delays.push((Utc::now() - since).num_milliseconds() as f64 / 1e3);
                }
            }
            _ => {}
        }
        if w["state"] == "failed" && w["failures"] == 3 {
            break w;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(settled["kind"], "ingest");
    let stream: Value = app
        .get_as(&admin, "/v1/tenants/acme/streams/orders")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(stream["status"], "failed", "{stream}");
    assert!(
        stream["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("nowhere")),
        "the stream shows the worker's error: {stream}"
    );
    assert_eq!(settled["restarts"], 2, "{settled}");
    assert!(
        settled["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "the error is visible: {settled}"
    );
    assert_eq!(delays.len(), 2, "two restarts between three failures: {delays:?}");
    assert!(
        delays[0] >= 1.4,
        "the first retry waits the base delay: {delays:?}"
    );
    assert!(
        delays[1] >= 2.9 && delays[1] > delays[0] + 0.4,
        "then twice as long: {delays:?}"
    );

    // Settled: a failed worker is final, so loops after it (six, at least the longest backoff
    // it went through twice over) start no further attempt on their own.
    loops_later(&app, 6).await;
    let still = workers(&app, &admin, "?state=failed").await;
    assert_eq!(still["items"][0]["restarts"], 2, "{still}");
    let metrics = app.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains(r#"lakeplane_workers{kind="ingest",state="failed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lakeplane_worker_restarts{kind="ingest"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("lakeplane_reconcile_leader 1"), "{metrics}");

    // Only platform admins see every worker and retry them.
    let id = settled["id"].as_str().expect("id").to_owned();
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    // The tenant learns that its worker failed and which one, not the broker's reply (which
    // would make the plane a port scanner) nor which process ran it.
    let theirs = workers(&app, &tenant_admin, "").await;
    let seen = &theirs["items"][0];
    let told = seen["last_error"].as_str().expect("told it failed");
    assert!(
        told.contains(&id) && !told.contains("127.0.0.1") && !told.contains("nowhere"),
        "{seen}"
    );
    assert_eq!(seen["owner"], Value::Null, "{seen}");
    let stream: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/streams/orders")
        .await
        .json()
        .await
        .expect("json");
    let told = stream["last_error"].as_str().expect("told it failed");
    assert!(!told.contains("127.0.0.1") && !told.contains(":1"), "{stream}");
    let denied = app
        .send_as(
            &tenant_admin,
            Method::POST,
            &format!("/v1/admin/workers/{id}/retry"),
            None,
        )
        .await;
    problem(denied, 403).await;
    let all: Value = app
        .get_as(&admin, "/v1/admin/workers?tenant=acme&state=failed&kind=ingest")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(all["items"][0]["id"], id.as_str(), "{all}");
    let unknown = app
        .send_as(
            &admin,
            Method::POST,
            "/v1/admin/workers/ingest-acme-000000000000/retry",
            None,
        )
        .await;
    problem(unknown, 404).await;
    let bad_filter = app.get_as(&admin, "/v1/admin/workers?state=sleeping").await;
    assert_eq!(problem(bad_filter, 422).await["errors"][0]["field"], "state");

    let retried = app
        .send_as(
            &admin,
            Method::POST,
            &format!("/v1/admin/workers/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status(), 202);
    let again = wait_for_worker(&app, &admin, Duration::from_secs(20), |w| {
        w["restarts"] == 3 && w["state"] == "failed" && w["failures"] == 1
    })
    .await;
    assert_eq!(again["id"], id.as_str());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn maintenance_that_is_due_is_scheduled_and_run_by_a_worker() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            fast(c);
            c.workers.schedule_secs = 1;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    // 17 commits of one event: 17 small files, over the compaction threshold of 16.
    for batch in 0..17 {
        let body = format!("{{\"id\": {batch}, \"user\": \"u\", \"amount\": 1.5}}\n");
        let pushed = push(&app, &admin, EVENTS, "application/x-ndjson", body.into_bytes()).await;
        assert_eq!(pushed.status(), 200);
    }
    let worker = wait_for_worker(&app, &admin, Duration::from_secs(30), |w| {
        w["kind"] == "compact"
            && w["state"] == "succeeded"
            && w["operations"]
                .as_array()
                .is_some_and(|ops| ops.contains(&json!("compact")))
    })
    .await;
    let run = worker["run_id"].as_str().expect("run id");
    let done: Value = app
        .get_as(
            &admin,
            &format!("/v1/tenants/acme/tables/bronze/events/maintenance/{run}"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["requested_by"], "scheduler", "{done}");
    let table: Value = app
        .get_as(&admin, "/v1/tenants/acme/tables/bronze/events")
        .await
        .json()
        .await
        .expect("json");
    // The scheduler may pass while the last pushes land (it runs every second here), so the
    // run merges the files it found and any later push stays a file of its own.
    let removed = done["metrics"]["files_removed"].as_i64().expect("files removed");
    let added = done["metrics"]["files_added"].as_i64().expect("files added");
    assert!(
        removed >= 16 && added == 1,
        "merged at least the threshold's 16 files: {done}"
    );
    assert_eq!(table["num_files"], 17 - removed + added, "compacted: {table}");
    assert_eq!(table["num_rows"], 17, "{table}");
    // Nothing is due any more: later scheduling passes queue nothing new.
    schedule_passes_later(&app, 2).await;
    let later = workers(&app, &admin, "").await;
    let compact: Vec<&Value> = later["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|w| w["kind"] == "compact")
        .collect();
    assert_eq!(compact.len(), 1, "{later}");
    assert_eq!(compact[0]["run_id"], run, "no second run: {later}");
    app.shutdown().await;
}

/// One tenant asking for maintenance on many tables gets one maintenance worker at a time
/// (`tables.maintenance_concurrency_per_tenant`), beside another tenant's, whatever the
/// launcher: the reconciler holds the rest queued. With the `external` launcher nothing runs
/// a worker until the test does, so what the reconciler records is what a Kubernetes
/// launcher would be asked to create as pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_tenant_gets_its_cap_of_maintenance_workers_and_the_rest_stay_queued() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            fast(c);
            c.workers.launcher = api::config::Launcher::External;
            c.tables.maintenance_concurrency_per_tenant = 1;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let columns = json!([{"name": "id", "type": "long"}]);
    let mut runs = Vec::new();
    for (tenant, tables) in [("acme", 3), ("bravo", 1)] {
        app.ready_tenant(&admin, tenant).await;
        for n in 0..tables {
            let path = format!("/v1/tenants/{tenant}/tables");
            let table = json!({"zone": "silver", "name": format!("t{n}"), "columns": columns});
            app.expect(&admin, Method::POST, &path, Some(table), 201).await;
            let run = app
                .expect(
                    &admin,
                    Method::POST,
                    &format!("{path}/silver/t{n}/maintenance"),
                    Some(json!({"operations": ["compact"]})),
                    202,
                )
                .await;
            runs.push((
                tenant,
                format!(
                    "{path}/silver/t{n}/maintenance/{}",
                    run["run_id"].as_str().expect("run")
                ),
            ));
        }
    }
    let recorded = |tenant: &'static str| {
        let app = &app;
        async move {
            tenancy::store::WorkerStore::list_workers(app.state.store.as_ref(), None, None, None, 100)
                .await
                .expect("workers")
                .into_iter()
                .filter(|w| w.spec.tenant.as_str() == tenant && w.spec.kind.maintenance())
                .collect::<Vec<_>>()
        }
    };
    // Wait until bravo's worker is recorded: by then the reconciler has seen every run.
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorded("bravo").await.is_empty() {
        assert!(Instant::now() < deadline, "bravo's worker was never recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several reconcile loops later, acme still has exactly one.
    let settle = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < settle {
        let acme = recorded("acme").await;
        assert!(acme.len() <= 1, "acme has more than its cap: {acme:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = recorded("acme").await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let queued = {
        let mut queued = 0;
        for (tenant, run) in &runs {
            let status = app.expect(&admin, Method::GET, run, None, 200).await;
            if *tenant == "acme" && status["status"] == "queued" {
                queued += 1;
            }
        }
        queued
    };
    assert_eq!(queued, 3, "acme's runs wait queued until their worker starts");

    // Running acme's worker to its end frees the slot: the next run of acme gets its worker.
    let id = first[0].spec.id();
    let runner = app.state.runner.clone();
    let owner = format!("test-{}", uuid::Uuid::now_v7());
    runner
        .run(&id, &owner, tokio_util::sync::CancellationToken::new())
        .await
        .expect("the worker runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let acme = recorded("acme").await;
        let active = acme
            .iter()
            .filter(|w| w.state == tenancy::worker::WorkerState::Pending)
            .count();
        assert!(active <= 1, "{acme:#?}");
        if acme.len() == 2 && active == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme's next run never got its worker: {acme:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.shutdown().await;
}
