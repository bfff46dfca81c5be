//! The middleware every request passes through, outermost first: request id, tracing span,
//! metrics, compression, problem bodies and the body limit. Timeouts and panic capture are
//! [`guard`]s applied to each route group innermost, so the audit layer sees their answers.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::extract::BodyLimit;
use crate::metrics::{self, Metrics};
use crate::problem::{PROBLEM_JSON, Problem};

/// The request id header, read from clients and echoed on every response.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id we keep; longer ones are replaced.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Wraps a router in the full middleware stack.
pub fn layer(router: Router, config: &ServerConfig, metrics: Arc<Metrics>) -> Router {
    let limit = config.body_limit_bytes;
    router.layer(
        ServiceBuilder::new()
            .layer(from_fn(drop_unsafe_request_id))
            .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuidV7))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    .on_response(
                        DefaultOnResponse::new()
                            .level(Level::INFO)
                            .latency_unit(LatencyUnit::Millis),
                    )
                    // Failures are logged where they are classified, with their cause.
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
            .layer(from_fn_with_state(metrics, metrics::track))
            // Table files are already compressed, and a compressed answer would lose the
            // Content-Length and byte ranges that readers of signed file URLs rely on.
            .layer(CompressionLayer::new().compress_when(
                DefaultPredicate::new().and(NotForContentType::const_new("application/octet-stream")),
            ))
            .layer(from_fn(finalize_problems))
            .layer(DefaultBodyLimit::max(limit))
            .layer(Extension(BodyLimit(limit))),
    )
}

/// Wraps a route group in the request timeout and panic capture. Applied before any
/// authentication or audit layer, so those see the 503 or 500 these produce.
pub fn guard<S: Clone + Send + Sync + 'static>(router: Router<S>, config: &ServerConfig) -> Router<S> {
    let timeout = Duration::from_secs(config.request_timeout_secs);
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(move |req: Request, next: Next| {
            enforce_timeout(timeout, req, next)
        }))
}

/// Generates time-ordered ids, so ids sort like the log.
#[derive(Clone, Copy)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// A client's id is kept only if it is short and plain, so it is safe to log and echo.
async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let unsafe_id = request.headers().get(&X_REQUEST_ID).is_some_and(|v| {
        v.len() > MAX_CLIENT_REQUEST_ID
            || !v
                .as_bytes()
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    });
    if unsafe_id {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    next.run(request).await
}

/// One span per request. Only the path is recorded: query strings can carry signatures. It is
/// cut to 512 bytes like audit targets, so a 64 KiB path from anyone on the network does not
/// become 64 KiB in every log line of its request.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %tenancy::audit::cap_target(request.uri().path()),
    )
}

/// Writes every error response as a problem document carrying the request id: those our
/// handlers built, and bare statuses from the router or tower layers (405, 413, ...).
/// Marks an error response whose body follows another protocol's error format (Delta
/// Sharing's `{"errorCode", "message"}`), which the problem finalisation must leave alone.
#[derive(Debug, Clone, Copy)]
pub struct ForeignErrorBody;

/// The request's id (set or kept by the request-id layer), for error bodies.
pub fn request_id(request: &Request) -> Option<String> {
    request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn finalize_problems(request: Request, next: Next) -> Response {
    let request_id = request_id(&request);
    let mut response = next.run(request).await;
    let status = response.status();
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if response.extensions().get::<ForeignErrorBody>().is_some() => return response,
        None if (status.is_client_error() || status.is_server_error()) && !is_problem(&response) => {
            Problem::from_status(status)
        }
        None => return response,
    };
    problem.request_id = request_id;
    problem.into_response_with(response)
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    tracing::error!(panic = %message, "handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server could not complete the request",
    )
    .into_response()
}

async fn enforce_timeout(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// Merges repeated slashes in the request path, before routing. A client configured with a base
/// URL ending in `/` (a Unity Catalog workspace URL, say) joins it to `/api/...` and sends
/// `//api/...`; no route has an empty segment, so the merged path is the one it meant. The
/// query is kept as sent.
pub fn merge_slashes(mut request: Request) -> Request {
    if let Some(merged) = merged_path(request.uri().path()) {
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{merged}?{query}"),
            None => merged,
        };
        let mut parts = request.uri().clone().into_parts();
        // Built from a valid path with slashes removed: still a valid path and query.
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The path with each run of slashes merged into one, or `None` when it has no such run.
fn merged_path(path: &str) -> Option<String> {
    if !path.contains("//") {
        return None;
    }
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && merged.ends_with('/') {
            continue;
        }
        merged.push(c);
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_slashes_merge_and_the_query_is_kept() {
        assert_eq!(merged_path("/v1/tenants"), None);
        assert_eq!(
            merged_path("//api/2.1//unity-catalog///tables").as_deref(),
            Some("/api/2.1/unity-catalog/tables")
        );
        let request = Request::builder()
            .uri("http://h//api/2.1/unity-catalog/tables?page_token=a%2F%2Fb&x=//y")
            .body(axum::body::Body::empty())
            .expect("request");
        let merged = merge_slashes(request);
        assert_eq!(
            merged.uri().to_string(),
            "http://h/api/2.1/unity-catalog/tables?page_token=a%2F%2Fb&x=//y"
        );
        let plain = Request::builder()
            .uri("/v1/tenants?cursor=x")
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(merge_slashes(plain).uri(), "/v1/tenants?cursor=x");
    }
}
