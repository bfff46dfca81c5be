//! Graceful shutdown with a real SIGTERM. The signal goes to this test process, so these
//! tests live in their own test binary.

#[path = "api/fixtures.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use api::config::Config;
use api::server::{ServeError, serve, shutdown_signal};
use api::state::AppState;

async fn app(dir: &std::path::Path) -> (tokio::net::TcpListener, axum::Router, String) {
    let config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    let state = AppState::start(config).await.expect("start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, api::app::router_with(state, fixtures::routes()), base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_request_lets_it_finish_then_stops() {
    let dir = tempfile::tempdir().expect("dir");
    let (listener, router, base) = app(dir.path()).await;
    let server = tokio::spawn(serve(
        listener,
        router,
        shutdown_signal(),
        Duration::from_secs(10),
    ));

    let client = reqwest::Client::new();
    let before = fixtures::SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    let slow = tokio::spawn(client.get(format!("{base}/__fixtures/slow?ms=1500")).send());
    fixtures::slow_started(before + 1).await;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());

    let response = slow
        .await
        .expect("join")
        .expect("the in-flight request completes");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "done");
    let stopped = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops");
    stopped.expect("join").expect("clean shutdown");
    assert!(
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_grace_period_ends_serving_with_an_error() {
    let dir = tempfile::tempdir().expect("dir");
    let (listener, router, base) = app(dir.path()).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router,
        async move {
            let _ = stopped.await;
        },
        Duration::from_millis(500),
    ));
    let before = fixtures::SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst);
    let slow = tokio::spawn(
        reqwest::Client::new()
            .get(format!("{base}/__fixtures/slow?ms=20000"))
            .send(),
    );
    fixtures::slow_started(before + 1).await;
    let asked = Instant::now();
    let _ = stop.send(());
    let outcome = server.await.expect("join");
    assert!(
        matches!(outcome, Err(ServeError::GraceExceeded(_))),
        "{outcome:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "gave up at the grace period"
    );
    slow.abort();
}
