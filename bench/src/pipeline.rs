//! `lakeplane-bench pipeline`: silver throughput. A bronze table of `ROWS` (2,000,000) of the
//! bench's ~200-byte events, pushed over HTTP in 5,000-event requests; a silver pipeline with a
//! select (casts and string functions), three expectations (drop, quarantine, warn) and
//! batch-scope deduplication on `id`; one run, timed, with the server's CPU over the run. The
//! baseline in the same run: Python `datafusion` (the engine the plane embeds, same major
//! version) doing the same select, checks and deduplication over the same Parquet files and
//! writing the silver and quarantine rows as Parquet, timed with its own CPU time.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{batch_body, call, cpu_seconds, env_or, setup, start_server_with};

/// The bronze table's files (through `deltalake`), linked into one folder, then the same
/// transformation in DataFusion's Python package, written as Parquet. Prints seconds, CPU
/// seconds and row counts.
const BASELINE: &str = r#"
import sys, os, time, json, resource, tempfile
from deltalake import DeltaTable
from datafusion import SessionContext
files = DeltaTable(sys.argv[1]).file_uris()
work = tempfile.mkdtemp()
src = os.path.join(work, "bronze")
os.mkdir(src)
for i, f in enumerate(files):
    os.symlink(f.removeprefix("file://"), os.path.join(src, f"{i:06}.parquet"))
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start, cpu0 = time.perf_counter(), cpu()
ctx = SessionContext()
ctx.register_parquet("bronze", src)
ctx.sql('''CREATE VIEW checked AS
  SELECT *, ("user" IS NOT NULL) IS TRUE AS has_user, (cents >= 0) IS TRUE AS positive,
         (region IN ('EU-WEST-0', 'EU-WEST-1')) IS TRUE AS known_region
  FROM (SELECT id, "user", upper(region) AS region, CAST(amount * 100 AS BIGINT) AS cents,
               substr(url, 27) AS page, ok FROM bronze)''')
silver = ctx.sql('''SELECT id, "user", region, cents, page, ok FROM (
  SELECT *, row_number() OVER (PARTITION BY id ORDER BY cents DESC) AS rn
  FROM checked WHERE has_user AND positive) WHERE rn = 1''')
silver.write_parquet(os.path.join(work, "silver"))
quarantine = ctx.sql('''SELECT id, "user", region, cents, page, ok FROM checked
  WHERE has_user AND NOT positive''')
quarantine.write_parquet(os.path.join(work, "quarantine"))
warned = ctx.sql("SELECT count(*) AS n FROM checked WHERE NOT known_region").to_pylist()[0]["n"]
seconds, cpu_used = time.perf_counter() - start, cpu() - cpu0
rows = ctx.sql("SELECT count(*) AS n FROM bronze").to_pylist()[0]["n"]
print(json.dumps({"seconds": seconds, "cpu": cpu_used, "rows": rows, "warned": warned}))
"#;

fn pipeline_definition() -> Value {
    json!({
        "name": "clean",
        "source": {"zone": "bronze", "table": "events"},
        "target": {"zone": "silver", "table": "events"},
        "select": [
            {"name": "id", "expr": "id"},
            {"name": "user", "expr": "\"user\""},
            {"name": "region", "expr": "upper(region)"},
            {"name": "cents", "expr": "CAST(amount * 100 AS BIGINT)"},
            {"name": "page", "expr": "substr(url, 27)"},
            {"name": "ok", "expr": "ok"}
        ],
        "expectations": [
            {"name": "has_user", "expr": "\"user\" IS NOT NULL", "on_violation": "drop"},
            {"name": "positive", "expr": "cents >= 0", "on_violation": "quarantine"},
            {"name": "known_region", "expr": "region IN ('EU-WEST-0', 'EU-WEST-1')", "on_violation": "warn"}
        ],
        "dedup": {"keys": ["id"], "order_by": "cents", "keep": "latest", "scope": "batch"},
        "trigger": {"type": "manual"}
    })
}

pub async fn pipeline() {
    let rows = env_or("ROWS", 2_000_000);
    let batch = 5_000u64;
    let python =
        std::env::var("LAKEPLANE_PYTHON").expect("LAKEPLANE_PYTHON: a python with deltalake and datafusion");
    // Only the requested run: no trigger pass, no scheduler.
    let server = start_server_with(&[
        ("LAKEPLANE__WORKERS__PIPELINE_POLL_SECS", "0"),
        ("LAKEPLANE__WORKERS__SCHEDULE_SECS", "0"),
    ])
    .await;
    let client = reqwest::Client::new();
    setup(&client, &server, json!({"type": "http"})).await;
    let pushing = Instant::now();
    // Sixteen requests in flight, so groups fill and the push does not wait out lingers.
    let url = format!("{}/v1/tenants/bench/streams/events/events", server.base);
    futures_util::stream::iter((0..rows).step_by(batch as usize))
        .map(|start| {
            let request = client
                .post(&url)
                .bearer_auth(&server.token)
                .header("content-type", "application/x-ndjson")
                .body(batch_body(start, batch.min(rows - start)));
            async move {
                let answer = request.send().await.expect("push");
                assert!(answer.status().is_success(), "push: {}", answer.status());
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    eprintln!("pushed {rows} events in {:.1} s", pushing.elapsed().as_secs_f64());
    call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/pipelines",
        pipeline_definition(),
    )
    .await;
    let bronze = call(
        &client,
        &server,
        reqwest::Method::GET,
        "/v1/tenants/bench/tables/bronze/events",
        Value::Null,
    )
    .await;
    let location = bronze["location"].as_str().expect("location").to_owned();

    let pid = server.child.id().expect("server pid");
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let queued = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/pipelines/clean/runs",
        json!({}),
    )
    .await;
    let run_path = format!(
        "/v1/tenants/bench/pipelines/clean/runs/{}",
        queued["run_id"].as_str().expect("run id")
    );
    let run = loop {
        let run = call(&client, &server, reqwest::Method::GET, &run_path, Value::Null).await;
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    assert_eq!(run["status"], "succeeded", "{run}");
    let rows_in = run["rows"]["in"].as_u64().unwrap_or_default();
    let duration = run["duration_ms"].as_f64().unwrap_or_default() / 1000.0;

    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(BASELINE)
        .arg(location.trim_start_matches("file://"))
        .output()
        .expect("python");
    assert!(
        output.status.success(),
        "baseline failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let baseline: Value = serde_json::from_slice(&output.stdout).expect("baseline json");
    let py_rows = baseline["rows"].as_u64().unwrap_or_default();
    let py_seconds = baseline["seconds"].as_f64().unwrap_or_default();
    let py_cpu = baseline["cpu"].as_f64().unwrap_or_default();

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| silver run: {rows_in} rows in {duration:.2} s (the run's own duration; {wall:.2} s from request to answer) | {:.0} rows/s |",
        rows_in as f64 / duration
    );
    println!(
        "| server CPU during the run | {cpu:.2} s ({:.2} cores) |",
        cpu / wall
    );
    println!(
        "| silver rows/s per core of server CPU | {:.0} |",
        rows_in as f64 / cpu
    );
    println!(
        "| Python datafusion, same transformation, Parquet out: {py_rows} rows in {py_seconds:.2} s | {:.0} rows/s |",
        py_rows as f64 / py_seconds
    );
    println!("| its CPU | {py_cpu:.2} s ({:.2} cores) |", py_cpu / py_seconds);
    println!(
        "| Python datafusion rows/s per core | {:.0} |",
        py_rows as f64 / py_cpu
    );
    println!(
        "| ratio, per core (plane / Python datafusion) | {:.2} |",
        (rows_in as f64 / cpu) / (py_rows as f64 / py_cpu)
    );
    println!(
        "| rows written / dropped / quarantined (plane) | {} / {} / {} |",
        run["rows"]["written"], run["rows"]["dropped"], run["rows"]["quarantined"]
    );
    println!(
        "| warned rows (plane / Python datafusion) | {} / {} |",
        run["expectations"]["known_region"], baseline["warned"]
    );
}
