//! Pushing files into a bronze table: a Parquet file written by pyarrow and an Avro
//! object-container file written by polars land as rows, read back with Python `deltalake`
//! exactly as they were written; a file that does not fit the table (a column of another type,
//! an unknown column, a null in a column that is not nullable) or that is not a file of its
//! type is refused whole, naming the column, and the table does not move.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, python};

const PARQUET: &str = "application/vnd.apache.parquet";
const AVRO: &str = "application/avro";

/// Writes a file with Python and returns its bytes. `argv[1]` is the path to write.
fn written(script: &str, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("file");
    let path_text = path.to_string_lossy().into_owned();
    let mut all = vec![path_text.as_str()];
    all.extend_from_slice(args);
    python(script, &all);
    std::fs::read(&path).expect("the file Python wrote")
}

/// The rows both sides build: id, customer (a category), amount (null for multiples of 7),
/// paid, and (Parquet only) a millisecond UTC timestamp.
const ROWS: &str = r#"
import sys, datetime
lo, hi = int(sys.argv[2]), int(sys.argv[3])
ids = list(range(lo, hi))
customers = [f"c{i % 5}" for i in ids]
amounts = [None if i % 7 == 0 else i * 0.5 for i in ids]
paid = [i % 2 == 0 for i in ids]
ats = [datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=i) for i in ids]
"#;

/// pyarrow: `id` as int32 (widened to long), `customer` dictionary-encoded, `at` in ms.
const WRITE_PARQUET: &str = r#"
import pyarrow as pa, pyarrow.parquet as pq
t = pa.table({
    "id": pa.array(ids, pa.int32()),
    "customer": pa.array(customers).dictionary_encode(),
    "amount": pa.array(amounts, pa.float64()),
    "paid": pa.array(paid),
    "at": pa.array(ats, pa.timestamp("ms", tz="UTC")),
})
pq.write_table(t, sys.argv[1])
"#;

/// polars: deflate-compressed, without `at` (a nullable column the file may leave out).
const WRITE_AVRO: &str = r#"
import polars as pl
pl.DataFrame({"id": ids, "customer": customers, "amount": amounts, "paid": paid}).write_avro(sys.argv[1], compression="deflate")
"#;

/// Compares the table with the rows the writers were given, in Python: `ok` or the difference.
const CHECK: &str = r#"
import sys, json, datetime
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table().to_pylist()
got = sorted(t, key=lambda r: r["id"])
problems = []
if [r["id"] for r in got] != list(range(0, 1500)):
    problems.append("ids")
for r in got:
    i = r["id"]
    want_at = None if i >= 1000 else datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=i)
    want = (f"c{i % 5}", None if i % 7 == 0 else i * 0.5, i % 2 == 0, want_at)
    have = (r["customer"], r["amount"], r["paid"], r["at"])
    if have != want or r["_ingested_at"] is None:
        problems.append(f"{i}: {have} != {want}")
        break
print(json.dumps(problems))
"#;

async fn push(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
    key: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/v1/tenants/acme/streams/orders/events"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.expect("push")
}

async fn table(app: &TestApp, token: &str) -> Value {
    app.expect(
        token,
        Method::GET,
        "/v1/tenants/acme/tables/bronze/orders",
        None,
        200,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_avro_files_land_as_written_and_a_file_that_does_not_fit_is_refused_whole() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.ingest.linger_ms = 20, axum::Router::new()).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let columns = json!([
        {"name": "id", "type": "long", "nullable": false}, {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"}, {"name": "paid", "type": "boolean"},
        {"name": "at", "type": "timestamp"}]);
    app.bronze_with_http_stream(&admin, "acme", "orders", columns, "orders")
        .await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;

    let parquet = written(&format!("{ROWS}{WRITE_PARQUET}"), &["0", "1000"]);
    let answer = push(&app, &engineer, PARQUET, parquet.clone(), Some("orders-0")).await;
    assert_eq!(answer.status(), 200);
    let first: Value = answer.json().await.expect("json");
    assert_eq!(
        (first["accepted"].as_u64(), first["rejected"].as_u64()),
        (Some(1000), Some(0)),
        "{first}"
    );
    // The same file again under its key: answered from the first push, not written twice.
    let again = push(&app, &engineer, PARQUET, parquet, Some("orders-0")).await;
    assert_eq!(again.status(), 200);
    assert!(again.headers().get("idempotent-replayed").is_some());
    let avro = written(&format!("{ROWS}{WRITE_AVRO}"), &["1000", "1500"]);
    let answer = push(&app, &engineer, AVRO, avro, None).await;
    assert_eq!(answer.status(), 200);
    let second: Value = answer.json().await.expect("json");
    assert_eq!(second["accepted"], 500, "{second}");
    let location = table(&app, &engineer).await["location"]
        .as_str()
        .expect("location")
        .to_owned();
    let problems: Vec<String> = serde_json::from_str(&python(CHECK, &[&location])).expect("check");
    assert!(
        problems.is_empty(),
        "the table differs from what was written: {problems:?}"
    );

    // Files that do not fit: each refused whole, naming the column (and the row of a value).
    let version = table(&app, &engineer).await["version"].clone();
    let misfits = [
        (
            r#"import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": pa.array(["1", "2"])}), sys.argv[1])"#,
            "id",
            0,
            "is string in the file; the column is long",
        ),
        (
            r#"import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": [1, 2], "coupon": ["x", "y"]}), sys.argv[1])"#,
            "coupon",
            0,
            "not a column of the table",
        ),
        (
            r#"import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": pa.array([1, 2, None, 4], pa.int64())}), sys.argv[1])"#,
            "id",
            3,
            "is null; the column is not nullable",
        ),
        (
            r#"import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": [1], "amount": pa.array([1], pa.int64())}), sys.argv[1])"#,
            "amount",
            0,
            "is long in the file; the column is double",
        ),
    ];
    for (script, field, line, words) in misfits {
        let answer = push(&app, &engineer, PARQUET, written(script, &[]), None).await;
        assert_eq!(answer.status(), 422, "{field}");
        let problem: Value = answer.json().await.expect("problem");
        let error = &problem["errors"][0];
        assert_eq!(
            (error["field"].as_str(), error["line"].as_u64()),
            (Some(field), Some(line)),
            "{problem}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(words)),
            "{problem}"
        );
    }
    for (content_type, garbage, words) in [
        (PARQUET, b"PAR1 this is not parquet PAR1".to_vec(), "Parquet"),
        (AVRO, b"Obj\x01 nor avro".to_vec(), "Avro"),
        (AVRO, parquet_of_one(), "Avro"),
    ] {
        let answer = push(&app, &engineer, content_type, garbage, None).await;
        let status = answer.status();
        let problem: Value = answer.json().await.expect("problem");
        assert_eq!(status, 422, "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains(words)),
            "{problem}"
        );
    }
    // Dead letters do not apply to a file: asking for them is refused, not ignored.
    let dlq = app
        .client
        .post(app.url("/v1/tenants/acme/streams/orders/events?on_error=dlq"))
        .bearer_auth(&engineer)
        .header("content-type", PARQUET)
        .body(parquet_of_one())
        .send()
        .await
        .expect("push");
    assert_eq!(dlq.status(), 422);
    let problem: Value = dlq.json().await.expect("problem");
    assert_eq!(problem["errors"][0]["field"], "on_error", "{problem}");
    assert_eq!(
        table(&app, &engineer).await["version"],
        version,
        "no refused file moved the table"
    );
    let problems: Vec<String> = serde_json::from_str(&python(CHECK, &[&location])).expect("check");
    assert!(problems.is_empty(), "{problems:?}");
    app.shutdown().await;
}

/// A Parquet file (sent as Avro above, which it is not).
fn parquet_of_one() -> Vec<u8> {
    written(
        r#"import pyarrow as pa, pyarrow.parquet as pq, sys
pq.write_table(pa.table({"id": [1]}), sys.argv[1])"#,
        &[],
    )
}
