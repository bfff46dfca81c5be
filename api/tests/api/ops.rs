use tenancy::store::Backend;

use crate::helpers::{TestApp, problem};
use tenancy::both_backends;

async fn healthz_and_readyz_answer_200(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.expect("json")["status"],
        "ok"
    );

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["storage"], "ok");
    app.shutdown().await;
}
both_backends!(healthz_and_readyz_answer_200);

#[tokio::test]
async fn readyz_names_the_failing_storage_check() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let root = app.data_dir.path().join("lake");
    // A file where the lake root was: not writable even for root.
    std::fs::remove_dir_all(&root).expect("remove lake root");
    std::fs::write(&root, b"x").expect("file in its place");

    let body = problem(app.get("/readyz").await, 503).await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("storage"),
        "{body}"
    );
    assert_eq!(body["checks"]["database"], "ok");
    assert_ne!(body["checks"]["storage"], "ok");
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "liveness does not depend on storage"
    );

    std::fs::remove_file(&root).expect("remove file");
    std::fs::create_dir(&root).expect("restore root");
    assert_eq!(app.get("/readyz").await.status(), 200, "recovers by itself");
    app.shutdown().await;
}

#[tokio::test]
async fn request_ids_are_echoed_generated_or_replaced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let given = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("send");
    assert_eq!(given.headers()["x-request-id"], "abc-123");

    let generated = app.get("/healthz").await;
    let id = generated.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(), 7);

    let hostile = "x".repeat(500);
    let replaced = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", &hostile)
        .send()
        .await
        .expect("send");
    let echoed = replaced.headers()["x-request-id"].to_str().expect("ascii");
    assert!(
        uuid::Uuid::parse_str(echoed).is_ok(),
        "oversized id replaced, got {echoed}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn responses_are_gzip_compressed_when_asked() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // reqwest would decompress and drop the header itself, so ask by hand.
    let raw = reqwest::Client::builder().no_gzip().build().expect("client");
    let response = raw
        .get(app.url("/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap_or("")),
        Some("gzip")
    );
    let compressed = response.bytes().await.expect("body");
    let plain = app.get("/openapi.json").await.bytes().await.expect("body");
    assert!(
        compressed.len() < plain.len() / 2,
        "{} vs {} bytes",
        compressed.len(),
        plain.len()
    );
    app.shutdown().await;
}
