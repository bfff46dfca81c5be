//! Operations endpoints: liveness, readiness and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::chain;
use crate::metrics::OPENMETRICS;
use crate::problem::Problem;
use crate::state::AppState;

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process can answer at all.
    pub status: &'static str,
}

/// Readiness answer when every check passes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: &'static str,
    /// Each check and its result (`ok`).
    pub checks: BTreeMap<String, String>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "The process is alive", body = Health),
))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers and the storage root is writable.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready to serve", body = Ready),
    (status = 503, description = "A check failed; `checks` names it", body = Problem, content_type = "application/problem+json"),
))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(("unavailable", chain(&e))),
            Err(_) => Err(("timed out", format!("no answer within {CHECK_TIMEOUT:?}"))),
        }
    };
    let storage = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.storage.check_writable()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(("not writable", chain(&e))),
            Err(_) => Err(("timed out", format!("no answer within {CHECK_TIMEOUT:?}"))),
        }
    };
    let (database, storage) = tokio::join!(database, storage);
    let mut checks = BTreeMap::new();
    let mut failed = Vec::new();
    for (name, result) in [("database", database), ("storage", storage)] {
        match result {
            Ok(()) => {
                checks.insert(name.to_owned(), "ok".to_owned());
            }
            Err((summary, detail)) => {
                // The endpoint is unauthenticated: the cause (hosts, paths) goes to the log only.
                tracing::warn!(check = name, reason = %detail, "readiness check failed");
                checks.insert(name.to_owned(), summary.to_owned());
                failed.push(name);
            }
        }
    }
    if failed.is_empty() {
        return Json(Ready {
            status: "ready",
            checks,
        })
        .into_response();
    }
    let mut problem = Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        format!("not ready: {} failing", failed.join(", ")),
    );
    problem.checks = Some(checks);
    problem.into_response()
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text"),
))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let ingest = crate::metrics::IngestSample {
        buffered_bytes: state.ingest.committer().buffered_bytes(),
        lags: state
            .ingest
            .kafka()
            .lags()
            .into_iter()
            .map(|(stream, partition, lag)| (stream.to_string(), partition, lag))
            .collect(),
    };
    let body = state
        .metrics
        .render(state.store.pool_stats(), &ingest, &state.workers.report());
    ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
}

/// The public key that verifies Lakeplane's tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations", responses(
    (status = 200, description = "JSON Web Key Set", body = inline(serde_json::Value)),
))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.signer.jwks())
}
