//! Data subject erasure through the API, judged by the Python `deltalake` reader: subject
//! columns declared and listed, the dry run's counts against rows counted from outside, the
//! erasure's deletes in every covered table and the dead letters, everyone else's rows left
//! as they were, the roles and tenants that may not see erasures, and bad requests.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, problem, python};
use crate::streams::push;

const ERASURES: &str = "/v1/tenants/acme/erasures";
const ANN: &str = "ann@example.com";

/// Every row of a Delta table at its latest version, as sorted JSON lists of the named
/// columns, read by the Python `deltalake` package.
const ROWS: &str = r#"
import sys, json
from deltalake import DeltaTable
columns = sys.argv[2].split(",")
rows = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table(columns=columns).to_pylist()
print(json.dumps(sorted([[r[c] for c in columns] for r in rows], key=json.dumps)))
"#;

/// Reads `argv[1]` (`profile#share.schema.table`) at version `argv[2]` with the Delta Sharing
/// client; prints the row count, or the error.
const SHARED_AT: &str = r#"
import sys, json
import delta_sharing
try:
    df = delta_sharing.load_as_pandas(sys.argv[1], version=int(sys.argv[2]))
    print(json.dumps({"rows": len(df)}))
except Exception as e:
    print(json.dumps({"error": str(e)[:500]}))
"#;

/// Scans a table root from outside: every Parquet file under it with pyarrow (referenced or
/// not) for Ann's rows, every `_delta_log` file for her email's bytes, and every version the
/// log can still build with `deltalake`.
const SCAN: &str = r#"
import sys, os, json
import pyarrow.parquet as pq
from deltalake import DeltaTable
root, columns, email = sys.argv[1].removeprefix("file://"), sys.argv[2].split(","), sys.argv[3]
def ann(row):
    return any(v == 42 or v == "42" or v == email or (isinstance(v, str) and '"user_id": 42' in v) for v in row)
files = subject_rows = 0
logs = []
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        if "_delta_log" in p:
            if email.encode() in open(p, "rb").read():
                logs.append(os.path.relpath(p, root))
        elif n.endswith(".parquet"):
            files += 1
            t = pq.read_table(p).to_pylist()
            subject_rows += sum(1 for r in t if ann([r.get(c) for c in columns]))
table = DeltaTable(root)
latest = table.version()
held = []
for v in range(0, latest + 1):
    try:
        t = DeltaTable(root, version=v)
    except Exception:
        continue
    rows = t.to_pyarrow_table(columns=columns).to_pylist()
    if any(ann([r[c] for c in columns]) for r in rows):
        held.append(v)
print(json.dumps({"files": files, "subject_rows": subject_rows, "log_files_with_email": logs,
                  "versions_with_subject": held}))
"#;

/// Verifies a receipt (`argv[1]`) with the `cryptography` package against the JWKS
/// (`argv[2]`), then looks for the salted hashes of user id `argv[3]` and email `argv[4]`.
/// Prints the header's `typ`, the claims and which hashes were found, or the error's name.
const VERIFY_RECEIPT: &str = r#"
import sys, json, base64, hashlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
def b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
header, payload, signature = sys.argv[1].split(".")
head = json.loads(b64(header))
key = next(k for k in json.loads(sys.argv[2])["keys"] if k["kid"] == head["kid"])
assert head["alg"] == "EdDSA" and key["crv"] == "Ed25519"
try:
    Ed25519PublicKey.from_public_bytes(b64(key["x"])).verify(b64(signature), f"{header}.{payload}".encode())
except Exception as e:
    print(json.dumps({"error": type(e).__name__}))
    sys.exit(0)
claims = json.loads(b64(payload))
salt = claims["salt"].encode()
def digest(column, kind, value):
    return hashlib.sha256(salt + b"\0" + column.encode() + b"\0" + kind.encode() + value.encode()).hexdigest()
hashes = [h for subject in claims["subject_hashes"] for h in subject]
found = [digest("user_id", "i", sys.argv[3]) in hashes, digest("email", "s", sys.argv[4]) in hashes]
print(json.dumps({"typ": head.get("typ"), "claims": claims, "hashes_found": found}))
"#;

/// The receipt with one row count in its payload raised by one, signature kept.
fn tamper(jws: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = jws.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    let rows = claims["rows_deleted"].as_u64().expect("rows");
    claims["rows_deleted"] = json!(rows + 1);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Erasures that move in seconds: a one-second window before the vacuum, the leader's pass
/// every second, deletes five seconds after the request (pushes linger 1.5 s and answer
/// within 4 s, Kafka lingers 0.5 s), and a migration's old keys kept for an hour.
fn fast_erasures(c: &mut api::config::Config) {
    c.tables.erasure_window_secs = 1;
    c.workers.schedule_secs = 1;
    c.ingest.linger_ms = 1500;
    c.ingest.ack_timeout_ms = Some(4000);
    c.tables.erasure_drain_secs = Some(5);
    c.storage.migration_grace_secs = 3600;
}

/// Polls `/metrics` until some pushed bytes wait for their group commit (10 s at most).
async fn wait_until_buffered(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.get("/metrics").await.text().await.expect("metrics");
        let buffered = text
            .lines()
            .find_map(|l| l.strip_prefix("lakeplane_ingest_buffered_bytes "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if buffered > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "nothing was ever buffered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const APPEND_SCORES: &str = r#"
import sys, json, pyarrow as pa
from deltalake import write_deltalake
rows = json.loads(sys.argv[2])
write_deltalake(sys.argv[1].removeprefix("file://"), pa.table({
    "user_id": pa.array([r[0] for r in rows], pa.int64()),
    "score": pa.array([r[1] for r in rows], pa.float64())}), mode="append")
"#;

const APPEND_PROFILES: &str = r#"
import sys, json, pyarrow as pa
from deltalake import write_deltalake
rows = json.loads(sys.argv[2])
table = pa.table({"user_id": pa.array([r[0] for r in rows], pa.string()),
                  "email": pa.array([r[1] for r in rows], pa.string()),
                  "plan": pa.array([r[2] for r in rows], pa.string())})
write_deltalake(sys.argv[1].removeprefix("file://"), table, mode="append")
"#;

/// The `location` of tenant acme's table, as the plane reports it.
pub(crate) async fn location(app: &TestApp, token: &str, zone: &str, name: &str) -> String {
    let table = app
        .expect(
            token,
            Method::GET,
            &format!("/v1/tenants/acme/tables/{zone}/{name}"),
            None,
            200,
        )
        .await;
    table["location"].as_str().expect("location").to_owned()
}

/// The latest version of silver/profiles, as the plane reports it.
async fn profiles_version(app: &TestApp, token: &str) -> i64 {
    app.expect(
        token,
        Method::GET,
        "/v1/tenants/acme/tables/silver/profiles",
        None,
        200,
    )
    .await["version"]
        .as_i64()
        .expect("version")
}

fn rows(location: &str, columns: &str) -> Vec<Value> {
    let out: Value = serde_json::from_str(&python(ROWS, &[location, columns])).expect("json");
    out.as_array().expect("rows").clone()
}

/// Each table of a report as `(zone/name, count)`, the count read from field `count`.
fn per_table(tables: &Value, count: &str) -> Vec<(String, u64)> {
    tables
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                format!(
                    "{}/{}",
                    t["zone"].as_str().expect("zone"),
                    t["name"].as_str().expect("name")
                ),
                t[count].as_u64().expect("count"),
            )
        })
        .collect()
}

/// Whether a row (as `[id, user_id, email]` or `[user_id, email, plan]`) is Ann's.
fn is_ann(row: &Value) -> bool {
    row.as_array()
        .expect("row")
        .iter()
        .any(|v| v == &json!(42) || v == &json!("42") || v == &json!(ANN))
}

/// acme with a bronze table fed by an HTTP stream (with dead letters), a silver table written
/// from outside, and a gold table without subject columns; Ann (user 42) is spread over many
/// commits and files of each.
async fn lake(app: &TestApp, admin: &str) {
    app.ready_tenant(admin, "acme").await;
    let events = json!({"zone": "bronze", "name": "events", "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "user_id", "type": "long"},
        {"name": "email", "type": "string"}
    ], "subject_columns": ["user_id", "email"]});
    let created = app
        .expect(admin, Method::POST, "/v1/tenants/acme/tables", Some(events), 201)
        .await;
    assert_eq!(created["subject_columns"], json!(["user_id", "email"]));
    let stream = json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"},
                        "source": {"type": "http"}, "on_error": "dlq"});
    app.expect(admin, Method::POST, "/v1/tenants/acme/streams", Some(stream), 201)
        .await;
    for batch in 0..4i64 {
        let mut body = String::new();
        for i in 0..10i64 {
            let id = batch * 100 + i;
            let user = if i % 5 == 0 { 42 } else { i };
            // Some of Ann's rows carry only her email, with no user id.
            let line = if user == 42 && batch % 2 == 1 {
                format!("{{\"id\": {id}, \"email\": \"{ANN}\"}}\n")
            } else {
                format!("{{\"id\": {id}, \"user_id\": {user}, \"email\": \"u{user}@example.com\"}}\n")
            };
            body.push_str(&line);
        }
        // A refused event of Ann's and one of someone else's: both dead letters.
        body.push_str(&format!("{{\"id\": \"bad-{batch}\", \"user_id\": 42}}\n"));
        body.push_str(&format!("{{\"id\": \"bad-{batch}\", \"user_id\": 7}}\n"));
        let answer = push(
            app,
            admin,
            "/v1/tenants/acme/streams/clicks/events",
            "application/x-ndjson",
            body.into_bytes(),
        )
        .await;
        assert_eq!(answer.status(), 200);
    }
    let profiles = json!({"zone": "silver", "name": "profiles", "columns": [
        {"name": "user_id", "type": "string"}, {"name": "email", "type": "string"},
        {"name": "plan", "type": "string"}
    ]});
    app.expect(
        admin,
        Method::POST,
        "/v1/tenants/acme/tables",
        Some(profiles),
        201,
    )
    .await;
    // Declared afterwards, by PATCH.
    let patched = app
        .expect(
            admin,
            Method::PATCH,
            "/v1/tenants/acme/tables/silver/profiles",
            Some(json!({"subject_columns": ["user_id", "email"]})),
            200,
        )
        .await;
    assert_eq!(patched["subject_columns"], json!(["user_id", "email"]));
    let silver = location(app, admin, "silver", "profiles").await;
    for rows in [
        json!([["42", ANN, "pro"], ["7", "bob@example.com", "free"]]),
        json!([["8", "cy@example.com", "pro"], ["42", ANN, "free"]]),
        json!([["9", "dee@example.com", "free"]]),
    ] {
        python(APPEND_PROFILES, &[&silver, &rows.to_string()]);
    }
    // Gold: per-user scores, covered, Ann's over two commits.
    let scores = json!({"zone": "gold", "name": "scores", "subject_columns": ["user_id"], "columns": [
        {"name": "user_id", "type": "long"}, {"name": "score", "type": "double"}]});
    let made = app
        .expect(admin, Method::POST, "/v1/tenants/acme/tables", Some(scores), 201)
        .await;
    let gold = made["location"].as_str().expect("location").to_owned();
    for rows in [
        json!([[42, 0.25], [5, 1.5], [6, 2.5]]),
        json!([[7, 3.5], [42, 4.75]]),
    ] {
        python(APPEND_SCORES, &[&gold, &rows.to_string()]);
    }
    let revenue = json!({"zone": "gold", "name": "revenue", "columns": [
        {"name": "day", "type": "date"}, {"name": "amount", "type": "double"}]});
    app.expect(admin, Method::POST, "/v1/tenants/acme/tables", Some(revenue), 201)
        .await;
}

async fn erasure_deletes_the_subject_everywhere_and_nothing_else(backend: Backend) {
    // Erasures that move in seconds (see `fast_erasures`).
    let app = TestApp::spawn_with(backend, fast_erasures, Default::default()).await;
    let platform = app.token(Role::PlatformAdmin, None).await;
    lake(&app, &platform).await;
    let admin = app.token(Role::TenantAdmin, Some("acme")).await;

    // acme moves to a dedicated bucket; the shared shard keeps its old keys (a copy of every
    // table, Ann included) for the grace period.
    let old_bronze = location(&app, &admin, "bronze", "events").await;
    let old_silver = location(&app, &admin, "silver", "profiles").await;
    app.expect(
        &platform,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"isolation": "dedicated"})),
        200,
    )
    .await;
    let moved = app.wait_for_status(&platform, "acme", "ready").await;
    assert_eq!(moved["placement"]["kind"], "dedicated");
    let in_grace = app
        .expect(&platform, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    assert_eq!(in_grace["migration"]["phase"], "cleanup", "{in_grace}");
    for old in [&old_bronze, &old_silver] {
        let held = rows(old, "user_id,email");
        assert!(held.iter().any(is_ann), "the old keys hold Ann: {old}");
    }
    // The tenant's own deadline: 20 days.
    let changed = app
        .expect(
            &admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"erasure_deadline_days": 20})),
            200,
        )
        .await;
    assert_eq!(changed["erasure_deadline_days"], 20);

    // Coverage: the tables an erasure does not reach are listed.
    let uncovered = app
        .expect(
            &admin,
            Method::GET,
            "/v1/tenants/acme/tables?covered=false",
            None,
            200,
        )
        .await;
    let names: Vec<&str> = uncovered["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["revenue"], "{uncovered}");

    let bronze = location(&app, &admin, "bronze", "events").await;
    let dlq = location(&app, &admin, "bronze", "events__dlq").await;
    let silver = location(&app, &admin, "silver", "profiles").await;
    let gold = location(&app, &admin, "gold", "scores").await;
    let scores_before = rows(&gold, "user_id,score");
    let events_before = rows(&bronze, "id,user_id,email");
    let dead_before = rows(&dlq, "payload");
    let profiles_before = rows(&silver, "user_id,email,plan");
    // Counted from outside: what the erasure must find.
    let ann_events = events_before.iter().filter(|r| is_ann(r)).count();
    let ann_dead = dead_before
        .iter()
        .filter(|r| r[0].as_str().is_some_and(|p| p.contains("\"user_id\": 42")))
        .count();
    let ann_profiles = profiles_before.iter().filter(|r| is_ann(r)).count();
    let ann_scores = scores_before.iter().filter(|r| is_ann(r)).count();
    assert_eq!((ann_events, ann_dead, ann_profiles, ann_scores), (8, 4, 2, 2));
    // A Delta Sharing recipient reads the silver table, at its version before the erasure too.
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/shares",
        Some(json!({"name": "people", "tables": [{"zone": "silver", "name": "profiles"}]})),
        201,
    )
    .await;
    let (_, profile, _) = crate::sharing::recipient(&app, &admin, "acme", "people", "bob").await;
    let shared = format!("{profile}#people.silver.profiles");
    let old_version = profiles_version(&app, &admin).await;
    let read_old = || crate::sharing::py(SHARED_AT, vec![shared.clone(), old_version.to_string()]);
    let (ok, before_erasure, err) = read_old().await;
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(before_erasure.trim()).expect("json")["rows"],
        profiles_before.len()
    );

    let subjects = json!([{"user_id": 42, "email": ANN}]);
    let dry = app
        .expect(
            &admin,
            Method::POST,
            ERASURES,
            Some(json!({"subjects": subjects, "reason": "ticket 1", "dry_run": true})),
            200,
        )
        .await;
    let counts = per_table(&dry["tables"], "matching_rows");
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            ("bronze/events".to_owned(), ann_events as u64),
            ("bronze/events__dlq".to_owned(), ann_dead as u64),
            ("gold/scores".to_owned(), ann_scores as u64),
            ("silver/profiles".to_owned(), ann_profiles as u64),
        ],
        "{dry}"
    );
    assert_eq!(dry["not_covered"], json!(["gold/revenue"]));
    // The dry run changed nothing.
    assert_eq!(rows(&bronze, "id,user_id,email"), events_before);
    assert!(
        app.expect(&admin, Method::GET, ERASURES, None, 200).await["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );

    // Three more events of Ann's wait in the table's buffer (it lingers 1.5 s) when the erasure
    // is asked for: they must not land after the delete.
    let buffered: String = (0..3)
        .map(|i| format!("{{\"id\": {}, \"user_id\": 42, \"email\": \"{ANN}\"}}\n", 900 + i))
        .collect();
    let (pushed, accepted) = tokio::join!(
        async {
            push(
                &app,
                &admin,
                "/v1/tenants/acme/streams/clicks/events",
                "application/x-ndjson",
                buffered.into_bytes(),
            )
            .await
            .status()
        },
        async {
            // Asked for while the events wait in the buffer (on a loaded machine the request
            // itself may outlast the linger: the drain still covers the commit).
            wait_until_buffered(&app).await;
            app.expect(
                &admin,
                Method::POST,
                ERASURES,
                Some(json!({"subjects": subjects, "reason": "ticket 1"})),
                202,
            )
            .await
        }
    );
    assert_eq!(pushed, 200, "the buffered push was acknowledged");
    let id = accepted["id"].as_str().expect("id").to_owned();
    // Its commit has landed, and the deletes are still waiting for the drain.
    let waiting = app
        .expect(&admin, Method::GET, &format!("{ERASURES}/{id}"), None, 200)
        .await;
    assert_eq!(waiting["status"], "planned", "{waiting}");
    let deadline =
        chrono::DateTime::parse_from_rfc3339(accepted["deadline"].as_str().expect("deadline")).expect("time");
    let hours = (deadline.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!((479..=480).contains(&hours), "the tenant's 20 days: {hours} h");
    let created = chrono::DateTime::parse_from_rfc3339(accepted["created_at"].as_str().expect("created"))
        .expect("time");
    let deletes_after =
        chrono::DateTime::parse_from_rfc3339(accepted["deletes_after"].as_str().expect("after"))
            .expect("time");
    assert_eq!((deletes_after - created).num_seconds(), 5, "{accepted}");
    // No receipt before it completes.
    let early = problem(
        app.send_as(&admin, Method::GET, &format!("{ERASURES}/{id}/receipt"), None)
            .await,
        409,
    )
    .await;
    assert!(
        early["detail"].as_str().is_some_and(|d| d.contains("completes")),
        "{early}"
    );
    // While the deletes' commits are in the log, the history shows them without the
    // identifiers their predicates hold.
    let deleted_at = wait_past(&app, &admin, &id, "planned").await;
    if deleted_at["status"] != "completed" {
        let history = app
            .expect(
                &admin,
                Method::GET,
                "/v1/tenants/acme/tables/silver/profiles/history",
                None,
                200,
            )
            .await;
        let text = history.to_string();
        assert!(text.contains("withheld: the subjects of erasure"), "{history}");
        assert!(!text.contains(ANN), "{history}");
    }
    let done = wait_for(&app, &admin, &id, "completed").await;
    let deleted: Vec<(String, u64, bool)> = done["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            (
                format!(
                    "{}/{}",
                    t["zone"].as_str().expect("zone"),
                    t["name"].as_str().expect("name")
                ),
                t["rows_deleted"].as_u64().expect("rows"),
                t["delete_version"].as_i64().is_some(),
            )
        })
        .collect();
    // What the dry run counted, and the three buffered events.
    let expected: Vec<(String, u64)> = counts
        .iter()
        .map(|(t, n)| (t.clone(), if t == "bronze/events" { n + 3 } else { *n }))
        .collect();
    assert_eq!(
        deleted,
        expected
            .iter()
            .map(|(t, n)| (t.clone(), *n, true))
            .collect::<Vec<_>>(),
        "the deletes removed what the dry run counted and the buffer held: {done}"
    );
    assert_eq!(done["subjects"], 1);
    for t in done["tables"].as_array().expect("tables") {
        assert!(
            t["vacuum_version"].as_i64() > t["delete_version"].as_i64()
                && t["oldest_log_version"].as_i64() >= t["vacuum_version"].as_i64(),
            "vacuumed after the delete, log cleaned down to the checkpoint: {t}"
        );
    }
    assert!(done["completed_at"].is_string(), "{done}");

    // Physically: no Parquet file under any covered table root, referenced or not, holds a row
    // of Ann's; no log file (commits, checkpoints) holds her email; every version the log still
    // has reads without her.
    for (root, columns) in [
        (&bronze, "id,user_id,email"),
        (&silver, "user_id,email,plan"),
        (&gold, "user_id,score"),
        (&dlq, "payload"),
    ] {
        let scanned: Value = serde_json::from_str(&python(SCAN, &[root, columns, ANN])).expect("json");
        assert!(scanned["files"].as_u64() > Some(0), "{scanned}");
        assert_eq!(scanned["subject_rows"], 0, "{root}: {scanned}");
        assert_eq!(scanned["log_files_with_email"], json!([]), "{root}: {scanned}");
        assert_eq!(scanned["versions_with_subject"], json!([]), "{root}: {scanned}");
    }

    // The migration's old keys, still in their grace period, went with the erasure.
    let removed: Vec<&str> = done["old_locations_removed"]
        .as_array()
        .expect("old locations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        removed.len(),
        3,
        "the three zone prefixes in the shared shard: {done}"
    );
    for old in [&old_bronze, &old_silver] {
        let path = old.strip_prefix("file://").unwrap_or(old);
        assert!(!std::path::Path::new(path).exists(), "{old} is gone");
        assert!(removed.iter().any(|r| old.starts_with(r)), "{old} in {removed:?}");
    }
    let after = app
        .expect(&platform, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    assert!(
        after.get("migration").is_none(),
        "the migration finished: {after}"
    );

    // The signed receipt: verified from outside against the JWKS, counting what was deleted,
    // holding Ann only as salted hashes.
    let receipt = app
        .expect(
            &admin,
            Method::GET,
            &format!("{ERASURES}/{id}/receipt"),
            None,
            200,
        )
        .await;
    let jwks = app
        .expect(&admin, Method::GET, "/.well-known/jwks.json", None, 200)
        .await;
    let jws = receipt["receipt"].as_str().expect("jws");
    let verified: Value =
        serde_json::from_str(&python(VERIFY_RECEIPT, &[jws, &jwks.to_string(), "42", ANN])).expect("json");
    assert_eq!(verified["typ"], "lakeplane-erasure-receipt+jwt", "{verified}");
    assert_eq!(verified["hashes_found"], json!([true, true]), "{verified}");
    assert!(!jws.contains(ANN) && !verified.to_string().contains(ANN));
    let claims = &verified["claims"];
    assert_eq!(claims["erasure_id"], json!(id));
    assert_eq!(claims["tenant"], "acme");
    let receipted = per_table(&claims["tables"], "rows_deleted");
    assert_eq!(receipted, expected, "{claims}");
    assert_eq!(claims["old_locations_removed"], done["old_locations_removed"]);
    // Signed by the token key, yet never taken for a token.
    problem(app.send_as(jws, Method::GET, ERASURES, None).await, 401).await;
    // A tampered receipt does not verify.
    let tampered = tamper(jws);
    let refused: Value = serde_json::from_str(&python(
        VERIFY_RECEIPT,
        &[&tampered, &jwks.to_string(), "42", ANN],
    ))
    .expect("json");
    assert_eq!(refused["error"], "InvalidSignature", "{refused}");

    // From outside: Ann is gone from every table's latest version, everyone else's rows are
    // exactly as they were.
    let keep = |before: &[Value]| -> Vec<Value> { before.iter().filter(|r| !is_ann(r)).cloned().collect() };
    assert_eq!(rows(&bronze, "id,user_id,email"), keep(&events_before));
    assert_eq!(rows(&silver, "user_id,email,plan"), keep(&profiles_before));
    assert_eq!(rows(&gold, "user_id,score"), keep(&scores_before));
    // The recipient is refused the version that still holds Ann, and reads the latest.
    let (_, refused, _) = read_old().await;
    let refused: Value = serde_json::from_str(refused.trim()).expect("json");
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("erasure")),
        "{refused}"
    );
    let latest = profiles_version(&app, &admin).await;
    let (ok, now, err) = crate::sharing::py(SHARED_AT, vec![shared.clone(), latest.to_string()]).await;
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(now.trim()).expect("json")["rows"],
        profiles_before.len() - ann_profiles
    );
    let dead_after = rows(&dlq, "payload");
    assert_eq!(dead_after.len(), dead_before.len() - ann_dead);
    assert!(
        dead_after
            .iter()
            .all(|r| r[0].as_str().is_some_and(|p| p.contains("\"user_id\": 7")))
    );

    // The subject is not echoed: not in the erasure, not in the audit log.
    let shown = app
        .expect(&admin, Method::GET, &format!("{ERASURES}/{id}"), None, 200)
        .await
        .to_string();
    let audit = app
        .expect(
            &platform,
            Method::GET,
            "/v1/audit?tenant=acme&limit=500",
            None,
            200,
        )
        .await;
    for text in [&shown, &audit.to_string()] {
        assert!(!text.contains(ANN), "{text}");
    }
    assert!(audit.to_string().contains("erasure.create"));
    assert!(audit.to_string().contains("erasure.dry_run"));

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_subject_everywhere_and_nothing_else_on_sqlite() {
    erasure_deletes_the_subject_everywhere_and_nothing_else(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_deletes_the_subject_everywhere_and_nothing_else_on_postgres() {
    erasure_deletes_the_subject_everywhere_and_nothing_else(Backend::Postgres).await;
}

/// Polls an erasure until it has left `status` (30 s at most).
async fn wait_past(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = app
            .expect(token, Method::GET, &format!("{ERASURES}/{id}"), None, 200)
            .await;
        if body["status"] != status {
            return body;
        }
        assert!(Instant::now() < deadline, "still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls an erasure until it reaches `status` (30 s at most).
async fn wait_for(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = app
            .expect(token, Method::GET, &format!("{ERASURES}/{id}"), None, 200)
            .await;
        if body["status"] == status {
            return body;
        }
        assert!(body["status"] != "failed", "{body}");
        assert!(Instant::now() < deadline, "never {status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Only the tenant's admins (and platform-admins) see erasures; another tenant's admin gets
/// 404 for an erasure that exists; bad requests name the field and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasures_are_refused_to_other_roles_and_tenants_and_bad_input_changes_nothing() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.ingest.ack_timeout_ms = Some(800);
            c.tables.erasure_drain_secs = Some(2);
        },
        Default::default(),
    )
    .await;
    let platform = app.token(Role::PlatformAdmin, None).await;
    lake(&app, &platform).await;
    app.ready_tenant(&platform, "beta").await;
    let admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let subjects = json!([{"user_id": 42}]);
    let accepted = app
        .expect(
            &admin,
            Method::POST,
            ERASURES,
            Some(json!({"subjects": subjects, "reason": "r"})),
            202,
        )
        .await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    wait_for(&app, &admin, &id, "awaiting_vacuum").await;

    for role in [Role::Engineer, Role::Analyst, Role::Viewer, Role::Scientist] {
        let token = app.token(role, Some("acme")).await;
        for (method, path, body) in [
            (Method::GET, ERASURES.to_owned(), None),
            (Method::GET, format!("{ERASURES}/{id}"), None),
            (Method::GET, format!("{ERASURES}/{id}/receipt"), None),
            (
                Method::POST,
                ERASURES.to_owned(),
                Some(json!({"subjects": subjects, "reason": "r", "dry_run": true})),
            ),
        ] {
            problem(app.send_as(&token, method, &path, body).await, 403).await;
        }
    }
    let beta = app.token(Role::TenantAdmin, Some("beta")).await;
    for path in [
        ERASURES.to_owned(),
        format!("{ERASURES}/{id}"),
        format!("{ERASURES}/{id}/receipt"),
    ] {
        problem(app.send_as(&beta, Method::GET, &path, None).await, 404).await;
    }
    // beta's own list does not hold acme's erasure.
    let own = app
        .expect(&beta, Method::GET, "/v1/tenants/beta/erasures", None, 200)
        .await;
    assert!(own["items"].as_array().expect("items").is_empty());
    problem(
        app.send_as(
            &beta,
            Method::GET,
            &format!("/v1/tenants/beta/erasures/{id}"),
            None,
        )
        .await,
        404,
    )
    .await;

    for (body, field) in [
        (json!({"subjects": [], "reason": "r"}), "subjects"),
        (
            json!({"subjects": [{"user_id": "abc"}], "reason": "r"}),
            "subjects[0].user_id",
        ),
        (
            json!({"subjects": [{"plan": "pro"}], "reason": "r"}),
            "subjects[0].plan",
        ),
        (json!({"subjects": [{"user_id": 1}]}), "reason"),
        (
            json!({"subjects": [{"user_id": 1}, {"user_id": 1}], "reason": "r"}),
            "subjects[1]",
        ),
        (
            json!({"subjects": (0..1001).map(|i| json!({"user_id": i})).collect::<Vec<_>>(), "reason": "r"}),
            "subjects",
        ),
    ] {
        let refused = problem(
            app.send_as(&admin, Method::POST, ERASURES, Some(body.clone()))
                .await,
            422,
        )
        .await;
        let fields: Vec<&str> = refused["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{body}: {refused}");
    }
    // A covered table with a change data feed (turned on by an outside writer) would keep the
    // deleted rows in its change files: refused, naming the table, until it is uncovered.
    let gold = json!({"zone": "gold", "name": "visits", "columns": [{"name": "user_id", "type": "long"}],
                      "subject_columns": ["user_id"]});
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(gold), 201)
        .await;
    let visits = location(&app, &admin, "gold", "visits").await;
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1].removeprefix("file://")).alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
"#,
        &[&visits],
    );
    let cdf = problem(
        app.send_as(
            &admin,
            Method::POST,
            ERASURES,
            Some(json!({"subjects": subjects, "reason": "r"})),
        )
        .await,
        409,
    )
    .await;
    let detail = cdf["detail"].as_str().expect("detail");
    assert!(
        detail.contains("gold/visits") && detail.contains("change data feed"),
        "{detail}"
    );
    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/acme/tables/gold/visits",
        Some(json!({"subject_columns": []})),
        200,
    )
    .await;
    app.expect(
        &admin,
        Method::POST,
        ERASURES,
        Some(json!({"subjects": subjects, "reason": "r", "dry_run": true})),
        200,
    )
    .await;

    // The tenant's erasure deadline: 1 to 90 days, and more than twice the 7-day window.
    for days in [0, 91, 14] {
        let refused = problem(
            app.send_as(
                &admin,
                Method::PATCH,
                "/v1/tenants/acme",
                Some(json!({"erasure_deadline_days": days})),
            )
            .await,
            422,
        )
        .await;
        assert_eq!(
            refused["errors"][0]["field"], "erasure_deadline_days",
            "{days}: {refused}"
        );
    }
    let refused = problem(
        app.send_as(
            &platform,
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "gamma", "display_name": "Gamma", "tier": "standard",
                        "erasure_deadline_days": 10})),
        )
        .await,
        422,
    )
    .await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("erasure_window_secs")),
        "{refused}"
    );
    problem(
        app.send_as(&platform, Method::GET, "/v1/tenants/gamma", None)
            .await,
        404,
    )
    .await;
    let kept = app
        .expect(&admin, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    assert_eq!(kept["erasure_deadline_days"], 30, "nothing changed: {kept}");

    // Subject columns are checked where they are declared.
    let bad_column = problem(
        app.send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/acme/tables/silver/profiles",
            Some(json!({"subject_columns": ["plan", "nope"]})),
        )
        .await,
        422,
    )
    .await;
    assert_eq!(bad_column["errors"][0]["field"], "subject_columns[1]");
    let listed = app.expect(&admin, Method::GET, ERASURES, None, 200).await;
    assert_eq!(listed["items"].as_array().expect("items").len(), 1, "{listed}");
    app.shutdown().await;
}
