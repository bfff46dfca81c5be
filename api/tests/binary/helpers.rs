use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary with a clean environment: no inherited LAKEPLANE__ settings or RUST_LOG.
pub fn lakeplane(cwd: &Path) -> Command {
    isolated(Command::new(env!("CARGO_BIN_EXE_lakeplane")), cwd)
}

/// A command (the binary, or a tracer in front of it) run in `cwd` without inherited
/// LAKEPLANE__ settings or RUST_LOG, killed when dropped.
pub fn isolated(mut command: Command, cwd: &Path) -> Command {
    command.current_dir(cwd).env_remove("RUST_LOG");
    for (key, _) in std::env::vars() {
        if key.starts_with("LAKEPLANE__") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// The settings that put the binary on the moto server under a bucket prefix of its own.
pub fn moto_env(endpoint: &str, prefix: &str) -> Vec<(String, String)> {
    [
        ("LAKEPLANE__STORAGE__KIND", "s3"),
        ("LAKEPLANE__STORAGE__S3__REGION", "eu-west-1"),
        ("LAKEPLANE__STORAGE__S3__ENDPOINT", endpoint),
        ("LAKEPLANE__STORAGE__S3__PATH_STYLE", "true"),
        ("LAKEPLANE__STORAGE__S3__BUCKET_PREFIX", prefix),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// A running `lakeplane serve` and everything it has logged so far.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `serve` on a free port and waits for its "listening" log line.
    pub async fn start(mut command: Command) -> Server {
        command
            .arg("serve")
            .env("LAKEPLANE__SERVER__LISTEN", "127.0.0.1:0")
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn lakeplane");
        let stderr = child.stderr.take().expect("stderr piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = listening_addr(&line)
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let logs = logs.lock().expect("log lock").join("\n");
                panic!("lakeplane did not start listening; logs:\n{logs}");
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            logs,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent")
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        signal(self.pid(), "TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .expect("wait");
        // Let the reader drain the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.logs())
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

fn listening_addr(line: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    if json["message"].as_str()?.starts_with("listening on") {
        json["addr"].as_str().map(str::to_owned)
    } else {
        None
    }
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// The process's anonymous resident memory (heap, stacks), KiB: what it allocated itself,
/// without the pages of its own executable.
pub fn anon_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Runs `lakeplane token create` with the given extra environment; returns the token.
pub async fn cli_token(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = lakeplane(cwd);
    command
        .envs(env.iter().copied())
        .args(["token", "create"])
        .args(args);
    let output = command.output().await.expect("run token create");
    assert!(
        output.status.success(),
        "token create failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8").trim().to_owned()
}

impl Server {
    /// A GET with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }
}

/// A request with a bearer token and an optional JSON body.
pub async fn call(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> reqwest::Response {
    let mut request = server
        .client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request")
}
