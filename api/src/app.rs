//! Assembles the application: documented routes, docs UI, fallback and middleware.

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use utoipa_swagger_ui::SwaggerUi;

use std::sync::Arc;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

use crate::auth::PrincipalKey;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{audit, auth, http, openapi};

/// The complete application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application plus extra routes, which get the same middleware. Tests use this to
/// mount fixtures (a panicking or slow handler) behind the real stack.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (ops, ops_spec) = openapi::ops_router().split_for_parts();
    let (v1, v1_spec) = openapi::v1_router().split_for_parts();
    let mut spec = ops_spec;
    spec.merge(v1_spec);
    // Innermost first: the limiter needs the authentication result, and the audit layer sees
    // the final answer, 429s included.
    let server = &state.config.server;
    let ops = http::guard(ops, server);
    let extra = http::guard(extra, server);
    let (sharing, sharing_spec) = crate::routes::sharing::router().split_for_parts();
    spec.merge(sharing_spec);
    let (unity, unity_spec) = crate::routes::unity::router().split_for_parts();
    spec.merge(unity_spec);
    let spec = openapi::finish(spec);
    let sharing = http::guard(sharing, server);
    // One per-principal limiter for both APIs: a token's budget is shared, not doubled.
    let limiter = rate_limit(&state);
    let v1 = http::guard(v1, server)
        .layer(from_fn_with_state(state.clone(), crate::limits::enforce))
        .layer(limiter.clone())
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(from_fn_with_state(state.clone(), audit::record));
    // The same authentication, limits and audit as /v1; errors in Unity Catalog's shape.
    let unity = http::guard(unity, server)
        .layer(from_fn_with_state(state.clone(), crate::limits::enforce))
        .layer(limiter)
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(from_fn_with_state(state.clone(), audit::record))
        .layer(axum::middleware::from_fn(crate::routes::unity::errors::rewrite));
    let router = ops
        .merge(v1)
        .merge(extra)
        .merge(sharing)
        .merge(unity)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(not_found)
        .with_state(state.clone());
    // The console calls this same router in-process for every read and change, so its pages
    // pass through /v1's authentication, limits, policy and audit.
    let router = if state.config.console.enabled {
        let console = crate::console::router(state.clone(), router.clone());
        router.merge(console)
    } else {
        router
    };
    http::layer(router, &state.config.server, state.metrics.clone())
}

/// No route: a problem document, or Unity Catalog's error body under its prefix, where clients
/// parse only that shape.
async fn not_found(request: Request) -> Response {
    let path = request.uri().path();
    let response = ApiError::NotFound(format!("no route for {path}")).into_response();
    let unity = crate::routes::unity::BASE;
    if path == unity || path.starts_with(&format!("{unity}/")) {
        crate::routes::unity::errors::in_unity_shape(response, http::request_id(&request))
    } else {
        response
    }
}

/// Per-principal rate limiting, from `rate_limit.*`.
fn rate_limit(
    state: &AppState,
) -> GovernorLayer<
    PrincipalKey,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
> {
    let limits = &state.config.rate_limit;
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limits.per_second.max(1)));
    let config = GovernorConfigBuilder::default()
        .key_extractor(PrincipalKey)
        .period(period)
        .burst_size(limits.burst.max(1))
        .finish();
    let config = Arc::new(config.expect("period and burst are at least 1 by construction"));
    // The keyed limiter keeps a cell per key; drop idle ones so memory follows active callers.
    let weak = Arc::downgrade(&config);
    let tenants = state.tenant_limits.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(config) = weak.upgrade() else { break };
            config.limiter().retain_recent();
            tenants.retain_recent();
        }
    });
    GovernorLayer::new(config)
}
