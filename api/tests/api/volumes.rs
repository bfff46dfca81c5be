//! Written volumes, counted from the tables' Delta logs: the plane's ingestion and an outside
//! writer (Python `deltalake`) count as volume, a compaction counts apart as rewritten, and
//! counting again, from this process or another replica, or from two at once, adds nothing.
//! The expected byte counts come from the data files each writer left on disk, not from the
//! log the collector reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, python};

/// Every data file of a table directory and its size.
fn data_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("table dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                if !path.ends_with("_delta_log") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push((path.clone(), entry.metadata().expect("metadata").len()));
            }
        }
    }
    found
}

/// The bytes of the files in `now` that were not in `before`.
fn new_bytes(before: &[(PathBuf, u64)], now: &[(PathBuf, u64)]) -> u64 {
    let seen: BTreeSet<&PathBuf> = before.iter().map(|(p, _)| p).collect();
    now.iter()
        .filter(|(p, _)| !seen.contains(p))
        .map(|(_, n)| n)
        .sum()
}

const APPEND: &str = r#"
import sys, pyarrow as pa
from deltalake import write_deltalake
rows = pa.table({"id": pa.array(range(1000, 1400), pa.int64()), "name": [f"outside-{i}" for i in range(400)]})
write_deltalake(sys.argv[1].removeprefix("file://"), rows, mode="append", schema_mode="merge")
"#;

async fn usage(app: &TestApp, admin: &str) -> Value {
    app.expect(admin, Method::GET, "/v1/tenants/acme/usage", None, 200)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_count_each_writer_once_and_rewrites_apart_on_sqlite() {
    volumes_count_each_writer_once_and_rewrites_apart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_count_each_writer_once_and_rewrites_apart_on_postgres() {
    volumes_count_each_writer_once_and_rewrites_apart(Backend::Postgres).await;
}

async fn volumes_count_each_writer_once_and_rewrites_apart(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        // The test collects by hand.
        |c| c.workers.schedule_secs = 0,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "bronze", "name": "orders", "columns": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
        .await;
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "orders"}, "source": {"type": "http"}});
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
        201,
    )
    .await;
    let described = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/bronze/orders",
            None,
            200,
        )
        .await;
    let location = described["location"].as_str().expect("location").to_owned();
    let dir = url::Url::parse(&location)
        .expect("url")
        .to_file_path()
        .expect("local table");

    for batch in 0..3 {
        let events: Vec<Value> = (0..50)
            .map(|i| json!({"id": batch * 100 + i, "name": format!("pushed-{i}")}))
            .collect();
        app.expect(
            &admin,
            Method::POST,
            "/v1/tenants/acme/streams/clicks/events",
            Some(json!(events)),
            200,
        )
        .await;
    }
    let after_pushes = data_files(&dir);
    let ingested = new_bytes(&[], &after_pushes);
    assert!(ingested > 0);
    python(APPEND, &[&location]);
    let after_outside = data_files(&dir);
    let outside = new_bytes(&after_pushes, &after_outside);
    assert!(outside > 0);
    let run = crate::tables::run_maintenance(
        &app,
        &admin,
        "/v1/tenants/acme/tables/bronze/orders",
        json!({"operations": ["compact"]}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let rewritten = new_bytes(&after_outside, &data_files(&dir));
    assert!(rewritten > 0, "the compaction wrote a file");

    let collected = app.state.workers.collect_volumes().await.expect("collect");
    assert!(collected.commits >= 5, "{collected:?}");
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let expected = json!({"day": today, "ingest_bytes": ingested, "outside_bytes": outside,
        "rewritten_bytes": rewritten});
    let counted = usage(&app, &admin).await;
    assert_eq!(counted["volume"]["daily"], json!([expected]), "{counted}");
    assert_eq!(counted["volume"]["bytes_30d"], ingested + outside);
    // What placement ranks by.
    let id = tenancy::tenant::TenantId::parse("acme").expect("id");
    let stored = app
        .state
        .store
        .get_tenant(&id)
        .await
        .expect("store")
        .expect("acme");
    assert_eq!(stored.volume_30d_bytes, ingested + outside);

    // Counting again adds nothing: here, on another replica, and on both at once.
    app.state.workers.collect_volumes().await.expect("collect");
    let replica = app.replica(|c| c.workers.schedule_secs = 0).await;
    replica.state.workers.collect_volumes().await.expect("collect");
    assert_eq!(usage(&app, &admin).await["volume"]["daily"], json!([expected]));
    // New commits counted from two processes at once are counted once.
    let before_late = data_files(&dir);
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/streams/clicks/events",
        Some(json!([{"id": 9000, "name": "late"}])),
        200,
    )
    .await;
    let late = new_bytes(&before_late, &data_files(&dir));
    let (a, b) = tokio::join!(
        app.state.workers.collect_volumes(),
        replica.state.workers.collect_volumes()
    );
    assert_eq!(
        a.expect("collect").commits + b.expect("collect").commits,
        1,
        "one of the two counted the new commit"
    );
    let counted = usage(&app, &admin).await;
    assert_eq!(
        counted["volume"]["daily"][0]["ingest_bytes"],
        ingested + late,
        "{counted}"
    );
    replica.shutdown().await;
    app.shutdown().await;
}

/// The leader rebalances on its own: acme writes far more than bravo and carol, the scheduled
/// pass counts it from the Delta logs and promotes acme (the top 10% of three is one tenant) to
/// a dedicated bucket, whose reason cites what acme wrote. The dry run before it named exactly
/// that move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_rebalance_promotes_the_tenant_that_wrote_most() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.workers.schedule_secs = 0;
            c.workers.reconcile_secs = 1;
            c.placement.rebalance_secs = 1;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    // Every tenant exists before any writes, so the first rebalance (every second) ranks acme
    // among all three whenever it runs.
    for tenant in ["acme", "bravo", "carol"] {
        app.ready_tenant(&admin, tenant).await;
    }
    for (tenant, events) in [("acme", 400), ("bravo", 5), ("carol", 5)] {
        let base = format!("/v1/tenants/{tenant}");
        let table = json!({"zone": "bronze", "name": "orders", "columns": [
            {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]});
        app.expect(&admin, Method::POST, &format!("{base}/tables"), Some(table), 201)
            .await;
        let stream = json!({"name": "clicks", "table": {"zone": "bronze", "name": "orders"}, "source": {"type": "http"}});
        app.expect(
            &admin,
            Method::POST,
            &format!("{base}/streams"),
            Some(stream),
            201,
        )
        .await;
        let rows: Vec<Value> = (0..events)
            .map(|i| json!({"id": i, "name": format!("{tenant}-{i}-{}", "x".repeat(40))}))
            .collect();
        app.expect(
            &admin,
            Method::POST,
            &format!("{base}/streams/clicks/events"),
            Some(json!(rows)),
            200,
        )
        .await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let acme = loop {
        let acme = app
            .expect(&admin, Method::GET, "/v1/tenants/acme", None, 200)
            .await;
        if acme["placement"]["kind"] == "dedicated" && acme["status"] == "ready" {
            break acme;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acme was never promoted: {acme}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let reason = acme["placement"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("top 10% by 30-day volume, ") && reason.contains(" written (rank 1 of 3)"),
        "{reason}"
    );
    for other in ["bravo", "carol"] {
        let tenant = app
            .expect(&admin, Method::GET, &format!("/v1/tenants/{other}"), None, 200)
            .await;
        assert_eq!(tenant["placement"]["kind"], "shared", "{tenant}");
    }
    let audit = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?action=tenant.migrate&tenant=acme",
            None,
            200,
        )
        .await;
    assert_eq!(
        audit["items"][0]["actor"], "lakeplane",
        "the plane moved it: {audit}"
    );
    app.shutdown().await;
}

/// With room for one migration at a time, the dry run starts the largest tenant and lists
/// the next as waiting; a run does exactly what the dry run said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_starts_the_largest_first_within_its_limit() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        |c| {
            c.placement.max_concurrent_migrations = 1;
            // Two of ten tenants are promoted.
            c.placement.dedicated_fraction = 0.2;
            c.placement.demote_fraction = 0.2;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    for i in 0..10u64 {
        let id = format!("t-{i}");
        app.ready_tenant(&admin, &id).await;
        // A table, so the tenant has storage and migrates rather than being re-placed.
        let table = json!({"zone": "bronze", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
        app.expect(
            &admin,
            Method::POST,
            &format!("/v1/tenants/{id}/tables"),
            Some(table),
            201,
        )
        .await;
        let tenant = tenancy::tenant::TenantId::parse(&id).expect("id");
        app.state
            .store
            .record_volume(&tenant, (i + 1) * 1_000)
            .await
            .expect("volume");
    }
    let rebalance = |dry_run: bool| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let path = format!("/v1/admin/placement/rebalance?dry_run={dry_run}");
            app.expect(&admin, Method::POST, &path, None, 200).await
        }
    };
    let plan = rebalance(true).await;
    assert_eq!(plan["migrating"], json!(["t-9"]), "{plan}");
    assert_eq!(plan["skipped"][0]["tenant"], "t-8", "{plan}");
    assert!(
        plan["skipped"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 1 migrations at once"),
        "{plan}"
    );
    let done = rebalance(false).await;
    for key in ["promotions", "migrating", "replaced", "skipped"] {
        assert_eq!(done[key], plan[key], "{key}: the run did what the dry run said");
    }
    app.shutdown().await;
}
