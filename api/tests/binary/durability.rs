//! Acknowledged pushes are on disk: the binary runs under `strace`, which records every
//! `fsync` with the path of its file. Each acknowledged version's log entry, its data files and
//! the log directory must have been flushed; with `ingest.fsync = false` none of them is.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::Command;

use crate::helpers::{Server, call, cli_token, isolated};

/// `lakeplane` under `strace -f -y`, recording fsync calls (with file paths) into `trace`.
fn traced(cwd: &Path, trace: &Path) -> Command {
    let mut command = Command::new("strace");
    command
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_lakeplane"));
    isolated(command, cwd)
}

/// Pushes three batches and returns the acknowledged versions and the table's directory.
async fn push_three(server: &Server, cwd: &Path) -> (Vec<i64>, std::path::PathBuf) {
    let admin = cli_token(cwd, &[], &["--role", "platform-admin"]).await;
    let post = async |path: &str, body: Value| {
        let r = call(server, &admin, reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(r.status(), 201, "{path}");
        r.json::<Value>().await.expect("json")
    };
    post(
        "/v1/tenants",
        json!({"id": "acme", "display_name": "Acme", "tier": "standard"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .get_as(&admin, "/v1/tenants/acme")
        .await
        .json::<Value>()
        .await
        .expect("json")["status"]
        != "ready"
    {
        assert!(Instant::now() < deadline, "acme never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = post(
        "/v1/tenants/acme/tables",
        json!({"zone": "bronze", "name": "clicks", "columns": [{"name": "id", "type": "long"}]}),
    )
    .await;
    post(
        "/v1/tenants/acme/streams",
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": {"type": "http"}}),
    )
    .await;
    let mut versions = Vec::new();
    for batch in 0..3 {
        let body: String = (batch * 10..batch * 10 + 10)
            .map(|i| format!("{{\"id\": {i}}}\n"))
            .collect();
        let answer = server
            .client
            .post(format!("{}/v1/tenants/acme/streams/clicks/events", server.base))
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("push");
        assert_eq!(answer.status(), 200);
        let acked: Value = answer.json().await.expect("json");
        versions.push(acked["version"].as_i64().expect("version"));
    }
    let location = table["location"].as_str().expect("location");
    let dir = url::Url::parse(location)
        .expect("url")
        .to_file_path()
        .expect("a local table");
    (versions, dir)
}

/// The paths `strace` saw flushed so far.
fn flushed(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("fsync(") && l.contains("= 0"))
        .filter_map(|l| {
            let start = l.find('<')? + 1;
            let end = l[start..].find('>')? + start;
            Some(l[start..end].to_owned())
        })
        .collect()
}

/// What one acknowledged version must have flushed: its log entry and its data files.
fn expected(table: &Path, version: i64) -> Vec<String> {
    let entry = table.join("_delta_log").join(format!("{version:020}.json"));
    let text = std::fs::read_to_string(&entry).expect("commit");
    let mut paths = vec![entry.display().to_string()];
    for line in text.lines() {
        let action: Value = serde_json::from_str(line).expect("action");
        if let Some(path) = action["add"]["path"].as_str() {
            paths.push(table.join(path).display().to_string());
        }
    }
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_are_flushed_to_disk_unless_fsync_is_off() {
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is missing (scripts/test installs it)");
    }
    for fsync in [true, false] {
        let cwd = tempfile::tempdir().expect("cwd");
        let trace = cwd.path().join("fsync.trace");
        let mut command = traced(cwd.path(), &trace);
        command.env("LAKEPLANE__INGEST__FSYNC", fsync.to_string());
        let server = Server::start(command).await;
        let (versions, table) = push_three(&server, cwd.path()).await;
        let log_dir = table.join("_delta_log").display().to_string();
        let must: Vec<String> = versions
            .iter()
            .flat_map(|v| expected(&table, *v))
            .chain([log_dir.clone()])
            .collect();
        if fsync {
            // strace writes as the calls return; the acknowledgements came after them.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let seen = flushed(&trace);
                let missing: Vec<&String> = must.iter().filter(|p| !seen.contains(p)).collect();
                if missing.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "acknowledged but never flushed: {missing:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        } else {
            let seen = flushed(&trace);
            let synced: Vec<&String> = must.iter().filter(|p| seen.contains(p)).collect();
            assert!(synced.is_empty(), "flushed with ingest.fsync = false: {synced:?}");
        }
        stop(server).await;
    }
}

/// Kills the traced server itself: killing `strace` alone would detach it and leave it running.
async fn stop(mut server: Server) {
    let strace = server.pid();
    let children = std::fs::read_to_string(format!("/proc/{strace}/task/{strace}/children"))
        .expect("the tracer's children");
    for pid in children.split_whitespace() {
        let pid: u32 = pid.parse().expect("pid");
        crate::helpers::signal(pid, "KILL");
    }
    let exited = tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await;
    assert!(exited.is_ok(), "strace ends with its tracee");
}
