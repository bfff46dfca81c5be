//! A gold aggregate partitioned by one of its groups: each run recomputes only the partitions
//! its new silver rows fall in and replaces just those (Delta `replaceWhere`); after a
//! compaction of silver, and after a DELETE on silver by an outside writer, the next run
//! recomputes every partition. Judged from
//! outside: polars recomputes gold from the silver table read by Python `deltalake` after every
//! run, and the gold table's files show which partitions were rewritten.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::erasures::location;
use crate::helpers::{TestApp, python};
use crate::pipelines::run;

/// Gold recomputed from silver by polars, the gold table as written, and gold's data files
/// by partition (`country=XX` to the file names in it).
const OUTSIDE: &str = r#"
import json, sys
import polars as pl
from deltalake import DeltaTable
silver, gold = sys.argv[1:3]
rows = pl.from_arrow(DeltaTable(silver).to_pyarrow_table())
expected = rows.group_by(["country", "kind"]).agg(pl.col("amount").sum().alias("total"), pl.len().cast(pl.Int64).alias("n"))
written = pl.from_arrow(DeltaTable(gold).to_pyarrow_table()).select(["country", "kind", "total", "n"])
files = {}
for f in DeltaTable(gold).file_uris():
    part = next(seg for seg in f.split("/") if seg.startswith("country="))
    files.setdefault(part, []).append(f)
key = lambda r: json.dumps(r, sort_keys=True)
print(json.dumps({
    "expected": sorted(json.loads(expected.write_json()), key=key),
    "written": sorted(json.loads(written.write_json()), key=key),
    "files": {k: sorted(v) for k, v in files.items()},
}))
"#;

/// Deletes silver's rows of one country, as an outside writer.
const DELETE: &str = r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).delete(f"country = '{sys.argv[2]}'")
"#;

async fn push(app: &TestApp, token: &str, events: &[(&str, &str, i64)]) {
    let body: String = events
        .iter()
        .map(|(country, kind, amount)| {
            format!("{{\"country\": \"{country}\", \"kind\": \"{kind}\", \"amount\": {amount}}}\n")
        })
        .collect();
    let pushed = app
        .client
        .post(app.url("/v1/tenants/acme/streams/sales/events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("push");
    assert_eq!(pushed.status(), 200);
}

fn outside(silver: &str, gold: &str) -> Value {
    serde_json::from_str(&python(OUTSIDE, &[silver, gold])).expect("outside")
}

async fn both_runs(app: &TestApp, token: &str) -> Value {
    let silver = run(app, token, "clean", false).await;
    assert_eq!(silver["status"], "succeeded", "{silver}");
    let gold = run(app, token, "by-country", false).await;
    assert_eq!(gold["status"], "succeeded", "{gold}");
    gold
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_gold_aggregate_rewrites_only_the_partitions_new_rows_touch() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.ingest.linger_ms = 20, axum::Router::new()).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let columns = json!([{"name": "country", "type": "string"}, {"name": "kind", "type": "string"},
        {"name": "amount", "type": "long"}]);
    app.bronze_with_http_stream(&admin, "acme", "sales", columns, "sales")
        .await;
    let clean = json!({"name": "clean", "source": {"zone": "bronze", "table": "sales"},
        "target": {"zone": "silver", "table": "sales"}, "trigger": {"type": "manual"},
        "select": [{"name": "country", "expr": "country"}, {"name": "kind", "expr": "kind"},
            {"name": "amount", "expr": "amount"}]});
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/pipelines",
        Some(clean),
        201,
    )
    .await;
    // A partition column outside the groups is refused, naming it, and makes no table.
    let mut gold = json!({"name": "by-country", "source": {"zone": "silver", "table": "sales"},
        "target": {"zone": "gold", "table": "by_country"},
        "aggregate": {"group_by": ["country", "kind"], "partition_by": ["amount"],
            "measures": [{"name": "total", "expr": "sum(amount)"}, {"name": "n", "expr": "count(*)"}]},
        "trigger": {"type": "manual"}});
    let refused = app
        .expect(
            &admin,
            Method::POST,
            "/v1/tenants/acme/pipelines",
            Some(gold.clone()),
            422,
        )
        .await;
    assert_eq!(
        refused["errors"][0]["field"], "aggregate.partition_by[0]",
        "{refused}"
    );
    app.expect(
        &admin,
        Method::GET,
        "/v1/tenants/acme/tables/gold/by_country",
        None,
        404,
    )
    .await;
    gold["aggregate"]["partition_by"] = json!(["country"]);
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/pipelines",
        Some(gold),
        201,
    )
    .await;
    let made = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables/gold/by_country",
            None,
            200,
        )
        .await;
    assert_eq!(made["partition_by"], json!(["country"]), "{made}");
    let silver = location(&app, &admin, "silver", "sales").await;
    let gold = location(&app, &admin, "gold", "by_country").await;

    // Round 1: three countries; every partition is written.
    push(
        &app,
        &admin,
        &[
            ("DE", "a", 10),
            ("DE", "b", 5),
            ("FR", "a", 7),
            ("IT", "a", 1),
            ("IT", "a", 2),
        ],
    )
    .await;
    let first = both_runs(&app, &admin).await;
    let after_first = outside(&silver, &gold);
    assert_eq!(
        after_first["written"], after_first["expected"],
        "round 1: {after_first}"
    );
    assert_eq!(first["rows"]["written"], 4, "{first}");

    // Round 2: only DE gets rows. DE is recomputed (its new group too), FR and IT keep their
    // files, and the run writes DE's groups only.
    push(&app, &admin, &[("DE", "a", 100), ("DE", "c", 1)]).await;
    let second = both_runs(&app, &admin).await;
    let after_second = outside(&silver, &gold);
    assert_eq!(
        after_second["written"], after_second["expected"],
        "round 2: {after_second}"
    );
    assert_eq!(second["rows"]["written"], 3, "DE's three groups: {second}");
    for kept in ["country=FR", "country=IT"] {
        assert_eq!(
            after_second["files"][kept], after_first["files"][kept],
            "{kept} was not rewritten"
        );
    }
    assert_ne!(
        after_second["files"]["country=DE"], after_first["files"]["country=DE"],
        "DE was rewritten"
    );

    // Round 2b: new IT rows reach silver, then silver is compacted before the gold run: the
    // new rows now sit in the compacted file, so the run cannot tell them apart and replaces
    // every partition (a run that took them for old ones would leave IT stale).
    push(&app, &admin, &[("IT", "c", 4)]).await;
    let silver_run = run(&app, &admin, "clean", false).await;
    assert_eq!(silver_run["status"], "succeeded", "{silver_run}");
    let compacted = crate::tables::run_maintenance(
        &app,
        &admin,
        "/v1/tenants/acme/tables/silver/sales",
        json!({"operations": ["compact"]}),
    )
    .await;
    assert_eq!(compacted["status"], "succeeded", "{compacted}");
    let after_compaction = run(&app, &admin, "by-country", false).await;
    assert_eq!(after_compaction["status"], "succeeded", "{after_compaction}");
    let compacted_gold = outside(&silver, &gold);
    assert_eq!(
        compacted_gold["written"], compacted_gold["expected"],
        "after a compaction: {compacted_gold}"
    );
    assert_eq!(
        after_compaction["rows"]["written"], 6,
        "every group: {after_compaction}"
    );

    // Round 3: an outside DELETE of FR's silver rows, and new IT rows. The source removed
    // data, so the run recomputes every partition: FR's groups are gone.
    python(DELETE, &[&silver, "FR"]);
    push(&app, &admin, &[("IT", "b", 3)]).await;
    let third = both_runs(&app, &admin).await;
    let after_third = outside(&silver, &gold);
    assert_eq!(
        after_third["written"], after_third["expected"],
        "round 3: {after_third}"
    );
    assert!(
        after_third["written"]
            .as_array()
            .is_some_and(|rows| rows.iter().all(|r| r["country"] != "FR")),
        "{after_third}"
    );
    assert_eq!(third["rows"]["written"], 6, "every group, recomputed: {third}");
    app.shutdown().await;
}
