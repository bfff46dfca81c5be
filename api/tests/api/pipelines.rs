//! Pipelines as a resource: made against a real bronze table's schema (expressions planned by
//! DataFusion, refused with the field and the planner's words), the target and quarantine
//! tables made from the planned output or checked when they exist, names unique, pages by
//! name, pause and resume, run requests that do not pile up, deletes, audit, and who may see
//! which pipeline.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, problem};

const BASE: &str = "/v1/tenants/acme";

async fn setup(app: &TestApp) -> String {
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let bronze = json!({"zone": "bronze", "name": "clicks", "columns": [
        {"name": "user_id", "type": "string"},
        {"name": "amount", "type": "long"},
        {"name": "country", "type": "string"},
        {"name": "at", "type": "timestamp"}
    ]});
    app.expect(&admin, Method::POST, &format!("{BASE}/tables"), Some(bronze), 201)
        .await;
    admin
}

fn silver_pipeline() -> Value {
    json!({
        "name": "clean-clicks",
        "source": {"zone": "bronze", "table": "clicks"},
        "target": {"zone": "silver", "table": "clicks"},
        "select": [
            {"name": "user_id", "expr": "CAST(user_id AS BIGINT)"},
            {"name": "euros", "expr": "amount / 100.0"},
            {"name": "country", "expr": "upper(country)"},
            {"name": "at", "expr": "at"}
        ],
        "expectations": [
            {"name": "has_user", "expr": "user_id IS NOT NULL", "on_violation": "drop"},
            {"name": "positive", "expr": "euros >= 0", "on_violation": "quarantine"},
            {"name": "known_country", "expr": "country IN ('DE', 'FR')", "on_violation": "warn"}
        ],
        "dedup": {"keys": ["user_id", "at"], "keep": "latest", "order_by": "euros", "scope": "table"},
        "trigger": {"type": "interval", "seconds": 60}
    })
}

/// A silver-to-gold aggregate over the silver pipeline's target.
fn gold_pipeline() -> Value {
    json!({
        "name": "revenue",
        "source": {"zone": "silver", "table": "clicks"},
        "target": {"zone": "gold", "table": "revenue"},
        "aggregate": {"group_by": ["country"], "measures": [
            {"name": "total", "expr": "sum(euros)"},
            {"name": "buyers", "expr": "count(DISTINCT user_id)"}
        ]},
        "trigger": {"type": "manual"}
    })
}

fn column_types(table: &Value) -> Vec<(String, String)> {
    table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_owned(),
                c["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn pipelines_are_planned_made_and_managed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = setup(&app).await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;

    let made = app
        .expect(
            &engineer,
            Method::POST,
            &format!("{BASE}/pipelines"),
            Some(silver_pipeline()),
            201,
        )
        .await;
    assert_eq!(made["state"], "active");
    assert_eq!(made["quarantine_table"], "clicks__quarantine");
    assert_eq!(made["trigger"], json!({"type": "interval", "seconds": 60}));

    // The target and the quarantine table exist, with the planned types.
    let target = app
        .expect(
            &engineer,
            Method::GET,
            &format!("{BASE}/tables/silver/clicks"),
            None,
            200,
        )
        .await;
    let expected: Vec<(String, String)> = [
        ("user_id", "long"),
        ("euros", "double"),
        ("country", "string"),
        ("at", "timestamp"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .to_vec();
    assert_eq!(column_types(&target), expected);
    let quarantine = app
        .expect(
            &engineer,
            Method::GET,
            &format!("{BASE}/tables/silver/clicks__quarantine"),
            None,
            200,
        )
        .await;
    let mut with_violations = expected.clone();
    with_violations.push(("_violations".into(), "string".into()));
    assert_eq!(column_types(&quarantine), with_violations);

    // The same name again: 409, and no table is made for it.
    let mut again = silver_pipeline();
    again["target"]["table"] = json!("other");
    problem(
        app.send_as(&engineer, Method::POST, &format!("{BASE}/pipelines"), Some(again))
            .await,
        409,
    )
    .await;
    assert_eq!(
        app.get_as(&engineer, &format!("{BASE}/tables/silver/other"))
            .await
            .status(),
        404
    );

    // A silver-to-gold aggregate over the pipeline's target.
    let gold = gold_pipeline();
    app.expect(
        &engineer,
        Method::POST,
        &format!("{BASE}/pipelines"),
        Some(gold),
        201,
    )
    .await;
    let revenue = app
        .expect(
            &engineer,
            Method::GET,
            &format!("{BASE}/tables/gold/revenue"),
            None,
            200,
        )
        .await;
    let names: Vec<String> = column_types(&revenue).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["country", "total", "buyers"]);

    // Pages by name.
    let first = app
        .expect(
            &engineer,
            Method::GET,
            &format!("{BASE}/pipelines?limit=1"),
            None,
            200,
        )
        .await;
    assert_eq!(first["items"][0]["name"], "clean-clicks");
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = app
        .expect(
            &engineer,
            Method::GET,
            &format!("{BASE}/pipelines?limit=1&cursor={cursor}"),
            None,
            200,
        )
        .await;
    assert_eq!(second["items"][0]["name"], "revenue");
    assert!(second["next_cursor"].is_null());

    // Pause, change the trigger, resume.
    let path = format!("{BASE}/pipelines/clean-clicks");
    let paused = app
        .expect(
            &engineer,
            Method::PATCH,
            &path,
            Some(json!({"paused": true})),
            200,
        )
        .await;
    assert_eq!(paused["state"], "paused");
    let retriggered = app
        .expect(
            &engineer,
            Method::PATCH,
            &path,
            Some(json!({"trigger": {"type": "continuous"}})),
            200,
        )
        .await;
    assert_eq!(retriggered["state"], "paused");
    assert_eq!(retriggered["trigger"], json!({"type": "continuous"}));
    let bad = problem(
        app.send_as(
            &engineer,
            Method::PATCH,
            &path,
            Some(json!({"trigger": {"type": "interval", "seconds": 1}})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad["errors"][0]["field"], "trigger.seconds", "{bad}");
    let resumed = app
        .expect(
            &engineer,
            Method::PATCH,
            &path,
            Some(json!({"paused": false})),
            200,
        )
        .await;
    assert_eq!(resumed["state"], "active");
    assert_eq!(resumed["trigger"], json!({"type": "continuous"}));

    // A run request while one waits answers the waiting run (the store test shows it
    // deterministically; here the first may have started already).
    let runs = format!("{path}/runs");
    let run = app
        .expect(&engineer, Method::POST, &runs, Some(json!({})), 202)
        .await;
    let run_id = run["run_id"].as_str().expect("run id").to_owned();
    let twice = app
        .expect(&engineer, Method::POST, &runs, Some(json!({})), 202)
        .await;
    if twice["run_id"] != run_id.as_str() {
        let first = app
            .expect(&engineer, Method::GET, &format!("{runs}/{run_id}"), None, 200)
            .await;
        assert_ne!(
            first["status"], "queued",
            "a second run while the first waits: {first}"
        );
    }
    let refresh = app
        .expect(
            &engineer,
            Method::POST,
            &runs,
            Some(json!({"full_refresh": true})),
            202,
        )
        .await;
    assert_ne!(refresh["run_id"], run_id.as_str());
    let listed = app
        .expect(&engineer, Method::GET, &format!("{runs}?limit=1"), None, 200)
        .await;
    assert_eq!(listed["items"][0]["id"], refresh["run_id"], "newest first");
    assert!(listed["next_cursor"].is_string());
    let shown = app
        .expect(&engineer, Method::GET, &format!("{runs}/{run_id}"), None, 200)
        .await;
    assert_eq!(shown["requested_by"], "tester");
    assert_eq!(shown["full_refresh"], false);
    assert!(
        shown["rows"].is_object() && shown["source_versions"].is_object(),
        "{shown}"
    );
    assert_eq!(
        app.get_as(&engineer, &format!("{runs}/not-a-uuid"))
            .await
            .status(),
        404
    );

    // Delete: the pipeline and its runs go, its tables stay.
    app.expect(&engineer, Method::DELETE, &path, None, 204).await;
    assert_eq!(app.get_as(&engineer, &path).await.status(), 404);
    assert_eq!(
        app.get_as(&engineer, &format!("{runs}/{run_id}")).await.status(),
        404
    );
    app.expect(
        &engineer,
        Method::GET,
        &format!("{BASE}/tables/silver/clicks"),
        None,
        200,
    )
    .await;

    let audit = app
        .expect(&admin, Method::GET, "/v1/audit?tenant=acme&limit=500", None, 200)
        .await
        .to_string();
    for action in [
        "pipeline.create",
        "pipeline.update",
        "pipeline.run",
        "pipeline.delete",
    ] {
        assert!(audit.contains(action), "{action} is audited");
    }
    app.shutdown().await;
}
tenancy::both_backends!(pipelines_are_planned_made_and_managed);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_name_their_field_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = setup(&app).await;
    let post = |body: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            problem(
                app.send_as(admin, Method::POST, &format!("{BASE}/pipelines"), Some(body))
                    .await,
                422,
            )
            .await
        }
    };
    let fields = |problem: &Value| -> Vec<String> {
        problem["errors"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };

    let mut bad = silver_pipeline();
    bad["select"][1]["expr"] = json!("amount +* 2");
    bad["select"][2]["expr"] = json!("nosuchfunction(country)");
    let refused = post(bad).await;
    assert_eq!(
        fields(&refused),
        ["select[1].expr", "select[2].expr"],
        "{refused}"
    );
    let messages = refused.to_string();
    assert!(
        messages.contains("amount +* 2") && messages.contains("nosuchfunction"),
        "{refused}"
    );

    let mut missing = silver_pipeline();
    missing["source"]["table"] = json!("nothere");
    let refused = post(missing).await;
    assert_eq!(fields(&refused), ["source.table"], "{refused}");

    let mut downward = silver_pipeline();
    downward["source"]["zone"] = json!("gold");
    let refused = post(downward).await;
    assert_eq!(fields(&refused), ["target.zone"], "{refused}");

    // An existing target that cannot take the output.
    let narrow =
        json!({"zone": "silver", "name": "narrow", "columns": [{"name": "user_id", "type": "string"}]});
    app.expect(&admin, Method::POST, &format!("{BASE}/tables"), Some(narrow), 201)
        .await;
    let mut into_narrow = silver_pipeline();
    into_narrow["target"]["table"] = json!("narrow");
    let refused = post(into_narrow).await;
    assert_eq!(fields(&refused), ["target.table"], "{refused}");
    assert!(refused.to_string().contains("user_id"), "{refused}");

    let listed = app
        .expect(&admin, Method::GET, &format!("{BASE}/pipelines"), None, 200)
        .await;
    assert_eq!(listed["items"], json!([]), "nothing was made");
    let tables = app
        .expect(
            &admin,
            Method::GET,
            &format!("{BASE}/tables?zone=silver"),
            None,
            200,
        )
        .await;
    let names: Vec<&str> = tables["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["narrow"],
        "no target table was made for a refused pipeline"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_pipelines_between_zones_they_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = setup(&app).await;
    app.expect(
        &admin,
        Method::POST,
        &format!("{BASE}/pipelines"),
        Some(silver_pipeline()),
        201,
    )
    .await;
    let gold = gold_pipeline();
    app.expect(
        &admin,
        Method::POST,
        &format!("{BASE}/pipelines"),
        Some(gold),
        201,
    )
    .await;
    let names = |page: Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    };
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    let viewer = app.token(Role::Viewer, Some("acme")).await;
    // Page size 1: the bronze pipeline the analyst cannot read does not end the list early.
    let page = app
        .expect(
            &analyst,
            Method::GET,
            &format!("{BASE}/pipelines?limit=1"),
            None,
            200,
        )
        .await;
    assert_eq!(names(page.clone()), ["revenue"], "{page}");
    assert!(page["next_cursor"].is_null(), "{page}");
    assert_eq!(
        app.get_as(&analyst, &format!("{BASE}/pipelines/clean-clicks"))
            .await
            .status(),
        404,
        "a bronze pipeline is not revealed to an analyst"
    );
    app.expect(
        &analyst,
        Method::GET,
        &format!("{BASE}/pipelines/revenue"),
        None,
        200,
    )
    .await;
    problem(
        app.send_as(
            &analyst,
            Method::POST,
            &format!("{BASE}/pipelines/revenue/runs"),
            Some(json!({})),
        )
        .await,
        403,
    )
    .await;
    let page = app
        .expect(&viewer, Method::GET, &format!("{BASE}/pipelines"), None, 200)
        .await;
    assert!(names(page).is_empty(), "viewers read no silver, so no pipeline");
    app.shutdown().await;
}

/// Posts a run of `pipeline` and waits until it has ended; returns it.
pub(crate) async fn run(app: &TestApp, token: &str, pipeline: &str, full_refresh: bool) -> Value {
    let runs = format!("{BASE}/pipelines/{pipeline}/runs");
    let queued = app
        .expect(
            token,
            Method::POST,
            &runs,
            Some(json!({"full_refresh": full_refresh})),
            202,
        )
        .await;
    let id = queued["run_id"].as_str().expect("run id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let run = app
            .expect(token, Method::GET, &format!("{runs}/{id}"), None, 200)
            .await;
        if run["status"] == "succeeded" || run["status"] == "failed" {
            return run;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run of {pipeline} did not end: {run}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Bronze events of round `round`: ids overlap the previous round's, so keys repeat across
/// runs; nulls, ids that are not numbers, negative and missing amounts, and an unknown country.
fn events(round: i64) -> Vec<u8> {
    let countries = ["de", "fr", "it", "xx"];
    let mut body = String::new();
    for i in round * 150..round * 150 + 300 {
        let user = match i {
            _ if i % 13 == 0 => "null".to_owned(),
            _ if i % 17 == 0 => "\"bad\"".to_owned(),
            _ => format!("\"{}\"", i % 40),
        };
        let amount = if i % 11 == 0 {
            "null".to_owned()
        } else {
            (((i * 37 + round * 101) % 500) - 50).to_string()
        };
        let at = format!("2026-12-01T10:{:02}:00Z", i % 25);
        let line = format!(
            "{{\"user_id\": {user}, \"amount\": {amount}, \"country\": \"{}\", \"at\": \"{at}\"}}\n",
            countries[(i % 4) as usize]
        );
        body.push_str(&line);
        // Every tenth event is sent twice.
        if i % 10 == 0 {
            body.push_str(&line);
        }
    }
    body.into_bytes()
}

/// Recomputes silver, its quarantine, the expectation counts and gold from bronze, outside
/// Lakeplane (Python `deltalake` reads, polars computes), and reads what the plane wrote.
const RECOMPUTE: &str = r#"
import json, sys
import polars as pl
from deltalake import DeltaTable
bronze, silver_loc, quarantine_loc, gold_loc = sys.argv[1:5]
df = pl.from_arrow(DeltaTable(bronze).to_pyarrow_table()).select(
    pl.col("user_id").cast(pl.Int64, strict=False).alias("user_id"),
    (pl.col("amount") / 100.0).alias("euros"),
    pl.col("country").str.to_uppercase().alias("country"),
    pl.col("at").dt.epoch("us").alias("at"),
)
has_user = df["user_id"].is_not_null()
positive = (df["euros"] >= 0).fill_null(False)
known = df["country"].is_in(["DE", "FR", "IT"]).fill_null(False)
sane = (df["euros"].is_null() | (df["euros"] < 100000)).fill_null(False)
counts = {
    "has_user": int((~has_user).sum()),
    "positive": int((~positive).sum()),
    "known_country": int((~known).sum()),
    "sane": int((~sane).sum()),
}
kept = df.filter(has_user & positive)
# Table-scope dedup on (user_id, at), keeping the highest euros.
silver = kept.sort("euros", descending=True).unique(subset=["user_id", "at"], keep="first")
quarantine = df.filter(has_user & ~positive)
def rows(frame):
    # Rounded: DataFusion and polars may divide to doubles one unit in the last place apart.
    frame = frame.select(["user_id", "euros", "country", "at"]).with_columns(pl.col("euros").round(6))
    return sorted(json.loads(frame.write_json()), key=json.dumps)
def table(loc):
    t = pl.from_arrow(DeltaTable(loc).to_pyarrow_table())
    return t.with_columns(pl.col("at").dt.epoch("us").alias("at"))
written = table(silver_loc)
gold_outside = written.group_by("country").agg(
    pl.col("euros").sum().round(6).alias("total"),
    pl.col("user_id").n_unique().alias("buyers"),
)
gold = pl.from_arrow(DeltaTable(gold_loc).to_pyarrow_table()).with_columns(pl.col("total").round(6))
q = table(quarantine_loc)
print(json.dumps({
    "expected_silver": rows(silver),
    "silver": rows(written),
    "expected_quarantine": rows(quarantine),
    "quarantine": rows(q),
    "violations": sorted(set(q["_violations"].to_list())),
    "counts": counts,
    "expected_gold": sorted(json.loads(gold_outside.write_json()), key=json.dumps),
    "gold": sorted(json.loads(gold.select(["country", "total", "buyers"]).write_json()), key=json.dumps),
}))
"#;

/// Deletes bronze rows of the unknown country, as an outside writer would.
const DELETE: &str = r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1].removeprefix("file://")).delete("country = 'xx'")
"#;

/// Compacts a table of tenant acme and waits for the run to succeed.
async fn compact(app: &TestApp, token: &str, zone: &str, name: &str) {
    let path = format!("{BASE}/tables/{zone}/{name}/maintenance");
    let queued = app
        .expect(
            token,
            Method::POST,
            &path,
            Some(json!({"operations": ["compact"]})),
            202,
        )
        .await;
    let run = format!("{path}/{}", queued["run_id"].as_str().expect("run id"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let state = app.expect(token, Method::GET, &run, None, 200).await;
        if state["status"] == "succeeded" {
            return;
        }
        assert!(
            state["status"] != "failed" && std::time::Instant::now() < deadline,
            "compaction did not succeed: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silver_and_gold_match_an_outside_recomputation_run_after_run() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = setup(&app).await;
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": {"type": "http"}});
    app.expect(
        &admin,
        Method::POST,
        &format!("{BASE}/streams"),
        Some(stream),
        201,
    )
    .await;
    let mut silver = silver_pipeline();
    silver["select"][0]["expr"] = json!("TRY_CAST(user_id AS BIGINT)");
    silver["expectations"] = json!([
        {"name": "has_user", "expr": "user_id IS NOT NULL", "on_violation": "drop"},
        {"name": "positive", "expr": "euros >= 0", "on_violation": "quarantine"},
        {"name": "known_country", "expr": "country IN ('DE', 'FR', 'IT')", "on_violation": "warn"},
        {"name": "sane", "expr": "euros IS NULL OR euros < 100000", "on_violation": "fail"}
    ]);
    silver["trigger"] = json!({"type": "manual"});
    app.expect(
        &admin,
        Method::POST,
        &format!("{BASE}/pipelines"),
        Some(silver),
        201,
    )
    .await;
    let gold = gold_pipeline();
    app.expect(
        &admin,
        Method::POST,
        &format!("{BASE}/pipelines"),
        Some(gold),
        201,
    )
    .await;
    let locations = [
        crate::erasures::location(&app, &admin, "bronze", "clicks").await,
        crate::erasures::location(&app, &admin, "silver", "clicks").await,
        crate::erasures::location(&app, &admin, "silver", "clicks__quarantine").await,
        crate::erasures::location(&app, &admin, "gold", "revenue").await,
    ];
    let args: Vec<&str> = locations.iter().map(String::as_str).collect();

    let mut counted: std::collections::BTreeMap<String, u64> = Default::default();
    let mut last_version = None;
    for round in 0..3 {
        let pushed = crate::streams::push(
            &app,
            &admin,
            &format!("{BASE}/streams/clicks/events"),
            "application/x-ndjson",
            events(round),
        )
        .await;
        assert_eq!(
            pushed.status(),
            200,
            "{}",
            pushed.text().await.unwrap_or_default()
        );
        if round == 1 {
            // A compaction before the run rewrites this round's new file into one with the
            // older rows: the run reads the new file at the version that added it.
            compact(&app, &admin, "bronze", "clicks").await;
            let bronze = app
                .expect(
                    &admin,
                    Method::GET,
                    &format!("{BASE}/tables/bronze/clicks"),
                    None,
                    200,
                )
                .await;
            assert_eq!(bronze["num_files"], 1, "both rounds' files compacted: {bronze}");
        }
        let silver_run = run(&app, &admin, "clean-clicks", false).await;
        assert_eq!(silver_run["status"], "succeeded", "{silver_run}");
        let versions = &silver_run["source_versions"];
        if let Some(last) = last_version {
            assert_eq!(versions["from"], json!(last + 1), "incremental: {silver_run}");
        }
        last_version = versions["to"].as_i64();
        for (name, count) in silver_run["expectations"].as_object().expect("counts") {
            *counted.entry(name.clone()).or_default() += count.as_u64().unwrap_or_default();
        }
        let rows = &silver_run["rows"];
        assert_eq!(
            rows["in"].as_u64(),
            Some(330),
            "each round's 300 events and 30 repeats are the run's own: {silver_run}"
        );
        let gold_run = run(&app, &admin, "revenue", false).await;
        assert_eq!(gold_run["status"], "succeeded", "{gold_run}");

        let out: Value = serde_json::from_str(&crate::helpers::python(RECOMPUTE, &args)).expect("json");
        assert_eq!(
            out["silver"], out["expected_silver"],
            "silver after round {round}"
        );
        assert_eq!(
            out["quarantine"], out["expected_quarantine"],
            "quarantine after round {round}"
        );
        assert_eq!(out["gold"], out["expected_gold"], "gold after round {round}");
        let expected: std::collections::BTreeMap<String, u64> =
            serde_json::from_value(out["counts"].clone()).expect("counts");
        let nonzero: std::collections::BTreeMap<String, u64> =
            expected.into_iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counted, nonzero, "violations per expectation after round {round}");
        let names = out["violations"].as_array().expect("violations");
        assert!(
            !names.is_empty()
                && names
                    .iter()
                    .all(|n| n.as_str().is_some_and(|n| n.split(',').any(|e| e == "positive"))),
            "each quarantined row names the expectations it failed, positive among them: {names:?}"
        );
        assert!(
            out["silver"].as_array().is_some_and(|r| !r.is_empty()),
            "the fixture leaves rows in silver"
        );
    }

    // Nothing new: the run reads nothing and commits nothing.
    let idle = run(&app, &admin, "clean-clicks", false).await;
    assert_eq!(idle["status"], "succeeded", "{idle}");
    assert!(idle["target_version"].is_null(), "{idle}");
    assert_eq!(idle["rows"]["in"], 0);

    // An outside writer deletes rows from bronze: the delete rewrites the files it touches,
    // and the rows it keeps are not new. Silver keeps what it read (appended history).
    let before: Value = serde_json::from_str(&crate::helpers::python(RECOMPUTE, &args)).expect("json");
    crate::helpers::python(DELETE, &[&locations[0]]);
    let after_delete = run(&app, &admin, "clean-clicks", false).await;
    assert_eq!(after_delete["status"], "succeeded", "{after_delete}");
    assert_eq!(after_delete["rows"]["in"], 0, "{after_delete}");
    let after: Value = serde_json::from_str(&crate::helpers::python(RECOMPUTE, &args)).expect("json");
    assert_eq!(
        after["silver"], before["silver"],
        "no row read again after the delete"
    );
    assert_eq!(after["quarantine"], before["quarantine"]);

    // A row breaking a `fail` expectation: nothing is committed, the pipeline is failed with
    // the row in its reason.
    let before = app
        .expect(
            &admin,
            Method::GET,
            &format!("{BASE}/tables/silver/clicks"),
            None,
            200,
        )
        .await["version"]
        .clone();
    let huge = b"{\"user_id\": \"7\", \"amount\": 99999999, \"country\": \"de\", \"at\": \"2026-12-02T00:00:00Z\"}\n".to_vec();
    // The stream's writer meets the outside delete's commit once (503, send again).
    let mut status = 0;
    for _ in 0..3 {
        let pushed = crate::streams::push(
            &app,
            &admin,
            &format!("{BASE}/streams/clicks/events"),
            "application/x-ndjson",
            huge.clone(),
        )
        .await;
        status = pushed.status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    let failed = run(&app, &admin, "clean-clicks", false).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("sane") && error.contains("euros=999999.99"),
        "{error}"
    );
    let pipeline = app
        .expect(
            &admin,
            Method::GET,
            &format!("{BASE}/pipelines/clean-clicks"),
            None,
            200,
        )
        .await;
    assert_eq!(pipeline["state"], "failed");
    assert!(pipeline["failure"].as_str().unwrap_or_default().contains("sane"));
    let after = app
        .expect(
            &admin,
            Method::GET,
            &format!("{BASE}/tables/silver/clicks"),
            None,
            200,
        )
        .await["version"]
        .clone();
    assert_eq!(before, after, "a failed run commits nothing");
    app.shutdown().await;
}
