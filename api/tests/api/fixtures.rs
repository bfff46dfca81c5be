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

async fn slow(Query(sleep): Query<Sleep>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(sleep.ms)).await;
    "done"
}
