use std::time::Duration;

use crate::helpers::{Server, anon_rss_kib, cli_token, lakeplane, rss_kib};

/// The README's first command, as a new user runs it: no config at all, in an empty directory.
#[tokio::test]
async fn embedded_default_creates_its_files_serves_and_stops_cleanly() {
    let cwd = tempfile::tempdir().expect("cwd");
    let server = Server::start(lakeplane(cwd.path())).await;
    assert!(
        cwd.path().join("data/lakeplane.db").is_file(),
        "SQLite file created under ./data"
    );
    assert!(
        cwd.path().join("data/lake").is_dir(),
        "local lake root created under ./data"
    );
    assert_eq!(server.get("/healthz").await.status(), 200);
    assert_eq!(server.get("/readyz").await.status(), 200);
    assert!(
        cwd.path().join("data/jwt-signing-key.pem").is_file(),
        "signing key generated on first start"
    );
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l.contains("lakeplane token create --role platform-admin")),
        "the first start says how to get a token"
    );
    let admin = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;
    let info: serde_json::Value = server
        .get_as(&admin, "/v1/info")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(info["database"]["backend"], "sqlite");
    let metrics = server.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains(r#"route="/readyz",method="GET",status="200"} 1"#),
        "{metrics}"
    );

    let (status, logs) = server.terminate().await;
    assert_eq!(status.code(), Some(0), "logs:\n{}", logs.join("\n"));
    assert!(logs.iter().any(|l| l.contains("shutdown complete")));
    for line in &logs {
        let json: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("JSON log line: {line}"));
        assert!(
            json["level"].is_string() && json["timestamp"].is_string(),
            "{line}"
        );
    }

    // A restart reuses the same database and keeps the installation's identity.
    let again = Server::start(lakeplane(cwd.path())).await;
    let info_again: serde_json::Value = again.get_as(&admin, "/v1/info").await.json().await.expect("json");
    assert_eq!(info_again["instance_id"], info["instance_id"]);
    let (status, _) = again.terminate().await;
    assert_eq!(status.code(), Some(0));
}

/// Budget from DESIGN.md: the idle server stays under 60 MB RSS. This is the unoptimised
/// test build: its executable is about 370 MB (deltalake and DataFusion with debug line
/// tables), and the pages of it the kernel maps in count toward RSS, which says little about
/// the server. So this guard asserts the memory the process allocated itself (anonymous RSS)
/// and prints the total; `scripts/measure-idle-rss` measures the budget's figure (total RSS of
/// the release build) for the README.
#[tokio::test]
async fn idle_server_stays_under_60_mb_rss() {
    let cwd = tempfile::tempdir().expect("cwd");
    let server = Server::start(lakeplane(cwd.path())).await;
    let admin = cli_token(cwd.path(), &[], &["--role", "platform-admin"]).await;
    for path in [
        "/healthz",
        "/readyz",
        "/v1/info",
        "/v1/tenants",
        "/metrics",
        "/openapi.json",
    ] {
        assert_eq!(server.get_as(&admin, path).await.status(), 200, "{path}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss, anon) = (rss_kib(server.pid()), anon_rss_kib(server.pid()));
    println!("idle RSS (debug build): {rss} KiB total, {anon} KiB anonymous");
    assert!(
        anon < 60 * 1024,
        "idle anonymous RSS {anon} KiB is over the 60 MB budget"
    );
    let (status, _) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn openapi_command_prints_the_committed_spec() {
    let cwd = tempfile::tempdir().expect("cwd");
    let output = lakeplane(cwd.path()).arg("openapi").output().await.expect("run");
    assert!(output.status.success());
    let committed =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json")).expect("spec");
    assert!(
        output.stdout == committed,
        "`lakeplane openapi` differs from openapi/openapi.json"
    );
    assert!(
        !cwd.path().join("data").exists(),
        "printing the spec touches no data"
    );
}

/// `lakeplane token create --groups` mints a token carrying its groups, which grants to
/// `group:NAME` reach; a malformed group is refused naming the flag, and nothing is issued.
#[tokio::test]
async fn cli_tokens_carry_their_groups() {
    let cwd = tempfile::tempdir().expect("cwd");
    let server = Server::start(lakeplane(cwd.path())).await;
    let admin = cli_token(cwd.path(), &[], &["--role", "platform-admin"]).await;
    let tenant = serde_json::json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    let created = crate::helpers::call(
        &server,
        &admin,
        reqwest::Method::POST,
        "/v1/tenants",
        Some(tenant),
    )
    .await;
    assert_eq!(created.status(), 201);
    let fay = cli_token(
        cwd.path(),
        &[],
        &[
            "--role",
            "analyst",
            "--tenant",
            "acme",
            "--subject",
            "fay",
            "--groups",
            "finance,ops",
        ],
    )
    .await;
    let mine: serde_json::Value = server
        .get_as(&fay, "/v1/tenants/acme/effective-grants")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(mine["groups"], serde_json::json!(["finance", "ops"]), "{mine}");
    let listed: serde_json::Value = server
        .get_as(&admin, "/v1/tenants/acme/tokens")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        listed["items"][0]["groups"],
        serde_json::json!(["finance", "ops"])
    );
    let refused = lakeplane(cwd.path())
        .args([
            "token",
            "create",
            "--role",
            "analyst",
            "--tenant",
            "acme",
            "--groups",
            "finance,finance",
        ])
        .output()
        .await
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--groups") && stderr.contains("twice"),
        "{stderr}"
    );
    let listed: serde_json::Value = server
        .get_as(&admin, "/v1/tenants/acme/tokens")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "nothing issued"
    );
    let (status, _) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
}
