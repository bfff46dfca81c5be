//! Test-only routes, mounted behind the real middleware stack to exercise what no
//! production route does on purpose: panic, run slowly, or take an arbitrary JSON body.

use std::time::Duration;

use api::error::ApiError;
use api::extract::ApiJson;
use api::problem::FieldError;
use api::state::AppState;
use axum::extract::Query;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Echo {
    pub name: String,
    pub count: u32,
}

#[derive(Debug, Deserialize)]
pub struct Sleep {
    pub ms: u64,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/__fixtures/echo", post(echo))
        .route("/__fixtures/panic", get(panics))
        .route("/__fixtures/slow", get(slow))
}

async fn echo(ApiJson(body): ApiJson<Echo>) -> Result<Json<Echo>, ApiError> {
    if body.name.is_empty() {
        return Err(ApiError::Validation(vec![FieldError {
            line: None,
            field: "name".into(),
            message: "must not be empty".into(),
        }]));
    }
    Ok(Json(body))
}

async fn panics() -> &'static str {
    panic!("fixture panic with secret internals: /etc/lakeplane/key.pem")
}

/// How many slow requests have reached their handler: a test waits on it to know one is in
/// flight, instead of sleeping.
#[allow(dead_code)] // read by the shutdown tests only
pub static SLOW_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits (polling, with a deadline) until `n` slow requests have reached their handler.
#[allow(dead_code)]
pub async fn slow_started(n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while SLOW_STARTED.load(std::sync::atomic::Ordering::SeqCst) < n {
        assert!(std::time::Instant::now() < deadline, "no slow request arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn slow(Query(sleep): Query<Sleep>) -> &'static str {
    SLOW_STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(sleep.ms)).await;
    "done"
}
