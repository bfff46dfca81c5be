//! Data subject erasure through real crashes. With `LAKEPLANE_FAULT_KILL_AT` the server
//! SIGKILLs itself right after an erasure step's effect (a table's delete, its vacuum, its log
//! cleanup, the removal of a migration's old keys) and before the step is recorded; started
//! again on the same data, it resumes the erasure by itself. Judged from outside with Python
//! `deltalake`: the erasure completes, its report counts each subject row once (not twice, not
//! zero), the receipt says the same, the subject is gone and everyone else's rows are all
//! there.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Server, call, cli_token, lakeplane};

const POINTS: [&str; 4] = [
    "erasure.delete",
    "erasure.vacuum",
    "erasure.log",
    "erasure.old_keys",
];

/// The schedule every second, a one-second window before the vacuum, deletes two seconds after
/// the request, and a migration's old keys kept for an hour (so only the erasure removes them).
const FAST: [(&str, &str); 5] = [
    ("LAKEPLANE__WORKERS__SCHEDULE_SECS", "1"),
    ("LAKEPLANE__TABLES__ERASURE_WINDOW_SECS", "1"),
    ("LAKEPLANE__TABLES__ERASURE_DRAIN_SECS", "2"),
    ("LAKEPLANE__INGEST__ACK_TIMEOUT_MS", "800"),
    ("LAKEPLANE__STORAGE__MIGRATION_GRACE_SECS", "3600"),
];

/// Appends rows `[[id, user_id], ...]` (`argv[2]`) to the table at `argv[1]`.
const APPEND: &str = r#"
import sys, json, pyarrow as pa
from deltalake import write_deltalake
rows = json.loads(sys.argv[2])
write_deltalake(sys.argv[1].removeprefix("file://"), pa.table({
    "id": pa.array([r[0] for r in rows], pa.int64()),
    "user_id": pa.array([r[1] for r in rows], pa.int64())}), mode="append")
"#;

/// The table's rows at its latest version, sorted.
const ROWS: &str = r#"
import sys, json
from deltalake import DeltaTable
rows = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table().to_pylist()
print(json.dumps(sorted([r["id"], r["user_id"]] for r in rows)))
"#;

async fn start(cwd: &std::path::Path, kill_at: Option<&str>) -> Server {
    let mut command = lakeplane(cwd);
    command.envs(FAST);
    if let Some(point) = kill_at {
        command.env("LAKEPLANE_FAULT_KILL_AT", point);
    }
    Server::start(command).await
}

async fn json_of(response: reqwest::Response, what: &str, status: u16) -> Value {
    crate::common::expect_status(response, what, status).await
}

/// Polls `path` until `done` holds for its body, for `secs` at most.
async fn poll(server: &Server, token: &str, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let body: Value = server.get_as(token, path).await.json().await.expect("json");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rows(location: &str) -> Vec<(i64, i64)> {
    serde_json::from_str(&crate::common::python(ROWS, &[location])).expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_killed_after_any_step_resumes_and_counts_each_row_once() {
    for point in POINTS {
        let cwd = tempfile::tempdir().expect("cwd");
        let admin = cli_token(cwd.path(), &FAST, &["--role", "platform-admin"]).await;
        let doomed = start(cwd.path(), Some(point)).await;
        let created = call(
            &doomed,
            &admin,
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "acme", "display_name": "Acme", "tier": "standard"})),
        )
        .await;
        json_of(created, "tenant", 201).await;
        poll(&doomed, &admin, "/v1/tenants/acme", 30, |t| {
            t["status"] == "ready"
        })
        .await;
        let table = json!({"zone": "bronze", "name": "events", "subject_columns": ["user_id"],
            "columns": [{"name": "id", "type": "long"}, {"name": "user_id", "type": "long"}]});
        let made = call(
            &doomed,
            &admin,
            Method::POST,
            "/v1/tenants/acme/tables",
            Some(table),
        )
        .await;
        let old_location = json_of(made, "table", 201).await["location"]
            .as_str()
            .expect("location")
            .to_owned();
        // User 42 in three commits (three files), among 27 rows of others.
        let mut everyone = Vec::new();
        for batch in 0..3i64 {
            let batch_rows: Vec<(i64, i64)> = (0..12)
                .map(|i| (batch * 100 + i, if i % 4 == 0 { 42 } else { i }))
                .collect();
            crate::common::python(APPEND, &[&old_location, &json!(batch_rows).to_string()]);
            everyone.extend(batch_rows);
        }
        let ann = everyone.iter().filter(|(_, user)| *user == 42).count() as u64;
        assert_eq!(ann, 9);
        // A move to a dedicated bucket leaves the old keys for the grace period.
        let moved = call(
            &doomed,
            &admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"isolation": "dedicated"})),
        )
        .await;
        json_of(moved, "move", 200).await;
        poll(&doomed, &admin, "/v1/tenants/acme", 60, |t| {
            t["status"] == "ready" && t["migration"]["phase"] == "cleanup"
        })
        .await;
        let location = json_of(
            doomed
                .get_as(&admin, "/v1/tenants/acme/tables/bronze/events")
                .await,
            "table",
            200,
        )
        .await["location"]
            .as_str()
            .expect("location")
            .to_owned();
        assert_ne!(location, old_location);

        let asked = call(
            &doomed,
            &admin,
            Method::POST,
            "/v1/tenants/acme/erasures",
            Some(json!({"subjects": [{"user_id": 42}], "reason": "crash test"})),
        )
        .await;
        let id = json_of(asked, "erasure", 202).await["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let mut doomed = doomed;
        let status = tokio::time::timeout(Duration::from_secs(60), doomed.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{point}: the server never reached the point"))
            .expect("wait");
        assert_eq!(status.signal(), Some(9), "{point}: killed by SIGKILL");

        let server = start(cwd.path(), None).await;
        let path = format!("/v1/tenants/acme/erasures/{id}");
        let done = poll(&server, &admin, &path, 90, |e| {
            assert_ne!(e["status"], "failed", "{point}: {e}");
            e["status"] == "completed"
        })
        .await;
        let entry = &done["tables"][0];
        assert_eq!(
            entry["rows_deleted"], ann,
            "{point}: each row counted once: {done}"
        );
        assert!(entry["delete_version"].is_i64(), "{point}: {done}");
        assert!(
            entry["vacuum_version"].is_i64()
                && entry["oldest_log_version"].as_i64() >= entry["vacuum_version"].as_i64(),
            "{point}: {done}"
        );
        assert_eq!(
            done["old_locations_removed"].as_array().map(Vec::len),
            Some(3),
            "{point}: {done}"
        );
        let old_path = old_location.trim_start_matches("file://");
        assert!(
            !std::path::Path::new(old_path).exists(),
            "{point}: {old_location} is gone"
        );
        let receipt = json_of(
            server.get_as(&admin, &format!("{path}/receipt")).await,
            "receipt",
            200,
        )
        .await;
        assert_eq!(receipt["claims"]["rows_deleted"], ann, "{point}: {receipt}");

        let left = rows(&location);
        let others: Vec<(i64, i64)> = everyone.iter().copied().filter(|(_, user)| *user != 42).collect();
        let mut expected = others.clone();
        expected.sort();
        assert_eq!(left, expected, "{point}: the subject gone, everyone else intact");
        let (exit, _) = server.terminate().await;
        assert_eq!(exit.code(), Some(0), "{point}");
    }
}
