//! Assembles the application: documented routes, docs UI, fallback and middleware.

use axum::Router;
use axum::http::Uri;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{http, openapi};

/// The complete application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application plus extra routes, which get the same middleware. Tests use this to
/// mount fixtures (a panicking or slow handler) behind the real stack.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let (api, spec) = openapi::router().split_for_parts();
    let spec = openapi::finish(spec);
    let router = api
        .merge(extra)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(not_found)
        .with_state(state.clone());
    http::layer(router, &state.config.server, state.metrics.clone())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
