use std::time::{Duration, Instant};

use tenancy::store::Backend;
use tenancy::store::testing::TestDatabase;

use crate::common::PgProxy;
use crate::helpers::{Server, cli_token, lakeplane};

#[tokio::test]
async fn postgres_runs_the_same_and_never_logs_the_password() {
    let db = TestDatabase::new(Backend::Postgres).await;
    // The test server trusts local connections, so a password is accepted and ignored;
    // that is enough to prove it never reaches the log.
    let with_password = db
        .url
        .expose()
        .replacen("postgres@", "postgres:hunter2-secret@", 1);
    let cwd = tempfile::tempdir().expect("cwd");
    let mut command = lakeplane(cwd.path());
    command
        .env("LAKEPLANE__DATABASE__URL", &with_password)
        .args(["--log-level", "debug"]);
    let server = Server::start(command).await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    let admin = cli_token(
        cwd.path(),
        &[("LAKEPLANE__DATABASE__URL", &with_password)],
        &["--role", "platform-admin"],
    )
    .await;
    let info: serde_json::Value = server
        .get_as(&admin, "/v1/info")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(info["database"]["backend"], "postgres");
    assert!(
        !cwd.path().join("data/lakeplane.db").exists(),
        "no SQLite file when PostgreSQL is configured"
    );
    let (status, logs) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
    let all = logs.join("\n");
    assert!(
        !all.contains("hunter2-secret"),
        "password leaked into logs:\n{all}"
    );
    assert!(
        all.contains("postgres:***@"),
        "the redacted URL is logged instead:\n{all}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn database_down_at_start_up_exits_non_zero_with_the_cause() {
    let cwd = tempfile::tempdir().expect("cwd");
    let started = Instant::now();
    let output = lakeplane(cwd.path())
        .env(
            "LAKEPLANE__DATABASE__URL",
            "postgres://postgres:pw@127.0.0.1:1/lake",
        )
        .env("LAKEPLANE__DATABASE__ACQUIRE_TIMEOUT_SECS", "2")
        .env("LAKEPLANE__SERVER__LISTEN", "127.0.0.1:0")
        .arg("serve")
        .output()
        .await
        .expect("run");
    assert!(started.elapsed() < Duration::from_secs(15), "gives up promptly");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let last: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap_or("")).expect("JSON line");
    let error = last["error"].as_str().unwrap_or("");
    assert!(
        error.contains("database.url") && error.contains("127.0.0.1:1"),
        "{error}"
    );
    assert!(
        error.to_lowercase().contains("refused"),
        "names the cause: {error}"
    );
    assert!(!stderr.contains(":pw@"), "no password in the error: {stderr}");
    assert!(!stderr.contains("listening on"));
}

/// PostgreSQL goes away while the server runs (a proxy in front of it is cut), then returns.
#[tokio::test]
async fn database_outage_gives_503s_and_recovers_by_itself() {
    let db = TestDatabase::new(Backend::Postgres).await;
    let mut proxy = PgProxy::start().await;
    let cwd = tempfile::tempdir().expect("cwd");
    let mut command = lakeplane(cwd.path());
    let proxied = proxy.url_for(db.url.expose());
    command
        .env("LAKEPLANE__DATABASE__URL", &proxied)
        .env("LAKEPLANE__DATABASE__ACQUIRE_TIMEOUT_SECS", "1");
    let server = Server::start(command).await;
    let admin = cli_token(
        cwd.path(),
        &[("LAKEPLANE__DATABASE__URL", &proxied)],
        &["--role", "platform-admin"],
    )
    .await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert_eq!(server.get_as(&admin, "/v1/info").await.status(), 200);

    proxy.stop().await;
    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_ne!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["storage"], "ok", "{body}");

    let info = server.get_as(&admin, "/v1/info").await;
    assert_eq!(info.status(), 503);
    assert_eq!(info.headers()["content-type"], "application/problem+json");
    assert!(info.headers().contains_key("retry-after"));
    let request_id = info.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let problem: serde_json::Value = info.json().await.expect("json");
    assert_eq!(problem["request_id"], request_id.as_str());
    assert!(
        !problem.to_string().contains("127.0.0.1"),
        "no internals in the response: {problem}"
    );
    // The log reader runs apart from the response: poll for the line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let found = server
            .logs()
            .into_iter()
            .find(|l| l.contains(&request_id) && l.contains("request failed"));
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "the 5xx is logged with its request id");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let logged: serde_json::Value = serde_json::from_str(&logged).expect("JSON");
    assert!(
        logged["error"].as_str().is_some_and(|e| e.contains(": ")),
        "full error chain: {logged}"
    );

    proxy.resume().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if server.get("/readyz").await.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not recover after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.get_as(&admin, "/v1/info").await.status(), 200);
    let (status, _) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
    proxy.stop().await;
    db.drop_database().await;
}
