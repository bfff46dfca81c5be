//! A platform-admin token from the CLI, and `lakeplane serve` on a free port of a temporary
//! data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The server binary: `LAKEPLANE_BIN`, or `lakeplane` next to this executable (so a build
/// with other features, such as `--no-default-features` for the system allocator, can be
/// measured from a copy).
pub fn lakeplane_bin() -> PathBuf {
    match std::env::var_os("LAKEPLANE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => std::env::current_exe().expect("exe").with_file_name("lakeplane"),
    }
}

/// A platform-admin token for `subject`, minted by the binary's CLI on `dir`.
pub fn token(bin: &Path, dir: &Path, subject: &str) -> String {
    token_with(bin, dir, subject, &[])
}

/// [`token`] with extra environment (the database the server will use).
pub fn token_with(bin: &Path, dir: &Path, subject: &str, env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(bin)
        .envs(env.iter().copied())
        .arg("--data-dir")
        .arg(dir)
        .args([
            "token",
            "create",
            "--role",
            "platform-admin",
            "--subject",
            subject,
        ])
        .output()
        .expect("token create");
    String::from_utf8(output.stdout).expect("utf8").trim().to_owned()
}

/// Starts `serve` on `dir` with extra environment and waits until it listens; returns the
/// process (killed when dropped) and its base URL. Its log keeps being drained.
pub async fn serve(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(bin)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "warn,api::server=info",
            "serve",
        ])
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("server exited before listening");
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(addr) = json["addr"].as_str() {
            break format!("http://{addr}");
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}
