use std::time::Duration;

use tenancy::store::Backend;

use crate::fixtures;
use crate::helpers::{TestApp, problem};

async fn app_with_fixtures(tweak: impl FnOnce(&mut api::config::Config)) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, tweak, fixtures::routes()).await
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let body = problem(app.get("/v1/no-such-thing").await, 404).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("/v1/no-such-thing")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.client.delete(app.url("/healthz")).send().await.expect("send");
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(allow.contains("GET"), "allow: {allow}");
    problem(response, 405).await;
    app.shutdown().await;
}

#[tokio::test]
async fn valid_json_round_trips() {
    let app = app_with_fixtures(|_| {}).await;
    let response = app
        .client
        .post(app.url("/__fixtures/echo"))
        .json(&serde_json::json!({"name": "a", "count": 2}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.expect("json")["count"],
        2
    );
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app_with_fixtures(|_| {}).await;
    let response = app
        .client
        .post(app.url("/__fixtures/echo"))
        .header("content-type", "application/json")
        .body("{\"name\": \"a\", ")
        .send()
        .await
        .expect("send");
    let body = problem(response, 400).await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("malformed JSON"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = app_with_fixtures(|_| {}).await;
    let response = app
        .client
        .post(app.url("/__fixtures/echo"))
        .header("content-type", "text/plain")
        .body("{\"name\": \"a\", \"count\": 1}")
        .send()
        .await
        .expect("send");
    problem(response, 415).await;
    app.shutdown().await;
}

#[tokio::test]
async fn wrong_shape_and_invalid_values_are_422_naming_the_field() {
    let app = app_with_fixtures(|_| {}).await;
    for (body, field) in [
        (serde_json::json!({"name": "a", "count": "two"}), "count"),
        (serde_json::json!({"name": "", "count": 1}), "name"),
    ] {
        let response = app
            .client
            .post(app.url("/__fixtures/echo"))
            .json(&body)
            .send()
            .await
            .expect("send");
        let problem = problem(response, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let response = app
        .client
        .post(app.url("/__fixtures/echo"))
        .json(&serde_json::json!({"name": "a", "count": 1, "admin": true}))
        .send()
        .await
        .expect("send");
    let problem = problem(response, 422).await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("admin"),
        "{problem}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_or_without_content_length() {
    let app = app_with_fixtures(|c| c.server.body_limit_bytes = 2048).await;
    let big = format!("{{\"name\": \"{}\", \"count\": 1}}", "a".repeat(4096));
    let declared = app
        .client
        .post(app.url("/__fixtures/echo"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("send");
    problem(declared, 413).await;

    // Streamed without Content-Length, so only reading the body can find out.
    let chunks: Vec<Result<String, std::io::Error>> =
        vec![Ok(big[..2000].to_owned()), Ok(big[2000..].to_owned())];
    let streamed = app
        .client
        .post(app.url("/__fixtures/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .expect("send");
    problem(streamed, 413).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_panic_is_a_500_problem_that_leaks_nothing() {
    let app = app_with_fixtures(|_| {}).await;
    let body = problem(app.get("/__fixtures/panic").await, 500).await;
    let text = body.to_string();
    assert!(
        !text.contains("key.pem") && !text.contains("fixture panic"),
        "{text}"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the server survives the panic"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_slow_handler_is_cut_off_with_503_and_retry_after() {
    let app = app_with_fixtures(|c| c.server.request_timeout_secs = 1).await;
    let started = std::time::Instant::now();
    let response = app.get("/__fixtures/slow?ms=5000").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered at the timeout, not after the handler"
    );
    assert!(response.headers().contains_key("retry-after"));
    let body = problem(response, 503).await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("timeout"),
        "{body}"
    );
    app.shutdown().await;
}
