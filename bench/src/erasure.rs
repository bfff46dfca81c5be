//! `lakeplane-bench erasure`: erase one subject from a tenant with `TABLES` (20) tables of
//! `ROWS` (1,000,000) rows each, the subject's rows spread over every file. Times the erasure's
//! delete phase (from `deletes_after` until every table's delete is recorded), against a
//! same-run baseline: Python `deltalake`'s `DeltaTable.delete(predicate)` on byte-for-byte
//! copies of the same tables, one after another. The plane also counts each table's rows of
//! the subject before and after its delete (the report's `rows_deleted`), which the baseline
//! does not.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use serde_json::{Value, json};

use crate::{call, env_or, start_server_with, wait_ready};

/// Rows per commit (and so per file): the subject has one row in each.
const PER_FILE: i64 = 100_000;
/// The subject's user id.
const SUBJECT: i64 = 42;

const BASELINE: &str = r#"
import sys, time, json
from deltalake import DeltaTable
start = time.perf_counter()
rows = 0
for path in sys.argv[1:]:
    metrics = DeltaTable(path).delete("user_id = 42")
    rows += metrics.get("num_deleted_rows", 0)
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows}))
"#;

fn batch(first: i64, rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("email", DataType::Utf8, true),
    ]));
    let ids = first..first + rows;
    let user = |i: i64| {
        if i % PER_FILE == 7 {
            SUBJECT
        } else {
            1000 + i % 90_000
        }
    };
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(Int64Array::from_iter_values(ids.clone().map(user))),
            Arc::new(StringArray::from_iter_values(
                ids.map(|i| format!("user{}@example.com", user(i))),
            )),
        ],
    )
    .expect("batch")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

pub async fn erasure() {
    let tables = env_or("TABLES", 20);
    let rows = env_or("ROWS", 1_000_000) as i64;
    let python = std::env::var("LAKEPLANE_PYTHON").expect("LAKEPLANE_PYTHON: a python with deltalake");
    // Nothing scheduled runs meanwhile; the deletes start one second after the request.
    let server = start_server_with(&[
        ("LAKEPLANE__WORKERS__SCHEDULE_SECS", "0"),
        ("LAKEPLANE__INGEST__ACK_TIMEOUT_MS", "200"),
        ("LAKEPLANE__INGEST__KAFKA_LINGER_MS", "100"),
        ("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "1"),
    ])
    .await;
    let client = reqwest::Client::new();
    let tenant = json!({"id": "bench", "display_name": "Bench", "tier": "enterprise",
                        "quotas": {"max_tables": 1000}});
    call(&client, &server, reqwest::Method::POST, "/v1/tenants", tenant).await;
    wait_ready(&client, &server).await;
    let settings = lake_manager::delta::DeltaSettings::local();
    let copies = tempfile::tempdir().expect("copies");
    let mut baseline_paths = Vec::new();
    let started = Instant::now();
    for t in 0..tables {
        let table = json!({"zone": "silver", "name": format!("t{t:02}"), "subject_columns": ["user_id"],
            "columns": [{"name": "id", "type": "long"}, {"name": "user_id", "type": "long"},
                        {"name": "email", "type": "string"}]});
        let created = call(
            &client,
            &server,
            reqwest::Method::POST,
            "/v1/tenants/bench/tables",
            table,
        )
        .await;
        let location = created["location"].as_str().expect("location").to_owned();
        let mut first = 0;
        while first < rows {
            let n = PER_FILE.min(rows - first);
            lake_manager::delta::tables::append(&settings, &location, vec![batch(first, n)])
                .await
                .expect("append");
            first += n;
        }
        let root = Path::new(location.trim_start_matches("file://"));
        let copy = copies.path().join(format!("t{t:02}"));
        copy_dir(root, &copy);
        baseline_paths.push(copy.display().to_string());
    }
    let subject_rows = (0..rows).filter(|i| i % PER_FILE == 7).count() as u64 * tables;
    eprintln!(
        "wrote {tables} tables of {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(BASELINE)
        .args(&baseline_paths)
        .output()
        .expect("python");
    let baseline: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("baseline: {}", String::from_utf8_lossy(&output.stderr)));

    let asked = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/erasures",
        json!({"subjects": [{"user_id": SUBJECT}], "reason": "benchmark"}),
    )
    .await;
    let id = asked["id"].as_str().expect("id").to_owned();
    let deletes_after: chrono::DateTime<chrono::Utc> = asked["deletes_after"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("deletes_after");
    let done = loop {
        let erasure: Value = client
            .get(format!("{}/v1/tenants/bench/erasures/{id}", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        assert_ne!(erasure["status"], "failed", "{erasure}");
        if erasure["status"] != "planned" {
            break erasure;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let plane = (chrono::Utc::now() - deletes_after).as_seconds_f64();
    let erased: u64 = done["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["rows_deleted"].as_u64())
        .sum();
    println!(
        "| erase one subject ({tables} tables × {rows} rows, {subject_rows} rows of the subject) | seconds | rows deleted |"
    );
    println!("|---|---|---|");
    println!(
        "| Python `deltalake` `DeltaTable.delete(\"user_id = 42\")`, table after table (baseline) | {:.2} | {} |",
        baseline["seconds"].as_f64().unwrap_or(f64::NAN),
        baseline["rows"]
    );
    println!(
        "| Lakeplane erasure, delete phase (deletes, counts, floors, progress) | {plane:.2} | {erased} |"
    );
}
