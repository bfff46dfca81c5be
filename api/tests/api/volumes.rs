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
