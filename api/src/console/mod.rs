//! The web console at `/console`: pages rendered on the server from compiled templates, with
//! charts drawn as SVG, over the `/v1` API itself (see [`client`]). A page shows what the
//! signed-in token reads through `/v1` and nothing more; a form is the `/v1` call it stands
//! for, validated and audited as that call.

pub mod chart;
pub mod client;
pub mod format;
pub mod layout;
mod pages;
mod security;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lake_manager::ingest::secrets::Sealer;
use maud::html;
use sha2::{Digest, Sha256};

use crate::auth::Authentication;
use crate::state::AppState;
use client::{Api, Problem};
use layout::{Frame, Viewer};
use session::Session;

/// What console handlers share.
#[derive(Clone)]
pub struct Console {
    /// The application's state, for token checks at sign-in.
    pub state: AppState,
    /// `/v1` and the rest of the API, with their own authentication, limits and audit.
    pub api: Router,
    /// Seals session cookies.
    pub sealer: Arc<Sealer>,
}

/// Why the console's session key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConsoleKeyError(String);

/// The console's routes, calling `api` for every read and change.
pub fn router(state: AppState, api: Router) -> Router {
    let server = state.config.server.clone();
    let public_origin = state
        .config
        .sharing
        .public_url
        .as_ref()
        .map(|u| u.origin().ascii_serialization());
    let sealer = state.console_sealer.clone();
    let console = Console { state, api, sealer };
    let routes = Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route(layout::CSS, get(security::stylesheet))
        .route(
            "/console/sign-in",
            get(pages::signin::form).post(pages::signin::submit),
        )
        .route("/console/sign-out", post(pages::signin::sign_out))
        .route("/console/sign-in/oidc/{index}", get(pages::oidc::start))
        .route("/console/oidc/callback", get(pages::oidc::callback))
        .route("/console/fleet", get(pages::fleet::show))
        .route("/console/fleet/rebalance", post(pages::fleet::rebalance))
        .route(
            "/console/fleet/workers/{id}/retry",
            post(pages::fleet::retry_worker),
        )
        .route("/console/tenants/{tenant}", get(pages::tenant::show))
        .route(
            "/console/tenants/{tenant}/zones/{zone}",
            post(pages::tenant::set_zone),
        )
        .route(
            "/console/tenants/{tenant}/tokens",
            get(pages::tokens::show).post(pages::tokens::issue),
        )
        .route(
            "/console/tenants/{tenant}/tokens/{token_id}/revoke",
            post(pages::tokens::revoke),
        )
        .route("/console/tenants/{tenant}/audit", get(pages::audit::show))
        .route(
            "/console/tenants/{tenant}/governance",
            get(pages::governance::show),
        )
        .route(
            "/console/tenants/{tenant}/shares/{share}/recipients",
            post(pages::governance::create_recipient),
        )
        .route(
            "/console/tenants/{tenant}/tables/{zone}/{name}",
            get(pages::table::show),
        )
        .route(
            "/console/tenants/{tenant}/tables/{zone}/{name}/maintenance",
            post(pages::table::maintain),
        )
        .route("/console/{*rest}", get(pages::not_found))
        .with_state(console);
    // The same request timeout and panic capture as the API's route groups.
    crate::http::guard(routes, &server)
        .layer(axum::middleware::from_fn_with_state(
            public_origin,
            security::same_origin,
        ))
        .layer(axum::middleware::from_fn(security::headers))
}

/// The sealing key: SHA-256 of the configured secret, or of one generated in `data_dir`.
pub fn load_sealer(config: &crate::config::Config) -> Result<Sealer, ConsoleKeyError> {
    let secret = match &config.console.session_secret {
        Some(secret) => secret.expose().trim().to_owned(),
        None => {
            let path = config.data_dir.join(crate::config::GENERATED_CONSOLE_SECRET_FILE);
            tenancy::token::load_or_generate_private(&path, tenancy::share::new_url_secret)
                .map_err(|e| ConsoleKeyError(e.to_string()))?
                .0
                .trim()
                .to_owned()
        }
    };
    let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    Ok(Sealer::from_key(&key))
}

/// Messages the sign-in page shows when the console sends the browser there; any other
/// `?reason=` is ignored.
pub const REASONS: [&str; 5] = [
    "Your session ended. Sign in again.",
    "Your token was revoked. Sign in again.",
    "Your token expired or is no longer valid. Sign in again.",
    "Your token is no longer accepted. Sign in again.",
    "Signed out.",
];

/// A signed-in request: who, and their handle on `/v1`.
pub struct Signed {
    /// Who is signed in.
    pub viewer: Viewer,
    /// `/v1` as them.
    pub api: Api,
}

impl Signed {
    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), Failure> {
        let submitted = form.get("csrf").map(String::as_str).unwrap_or("");
        if session::same_secret(&self.viewer.csrf, submitted) {
            Ok(())
        } else {
            Err(Failure::Refused(
                "The form's CSRF token is missing or stale. Reload the page and try again.".into(),
            ))
        }
    }
}

impl FromRequestParts<Console> for Signed {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Failure> {
        let cookies = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let Some(value) = session::cookie_value(session::COOKIE, cookies) else {
            return Err(Failure::SignIn(None));
        };
        let Some(session) = Session::open(&console.sealer, value, chrono::Utc::now()) else {
            return Err(Failure::SignIn(Some(REASONS[0])));
        };
        let principal = match crate::auth::check_token(&console.state, &session.token).await {
            Ok(Authentication::Authenticated(p)) => p,
            Ok(Authentication::Revoked(_)) => {
                return Err(Failure::SignIn(Some(REASONS[1])));
            }
            Ok(Authentication::Failed(_)) => {
                return Err(Failure::SignIn(Some(REASONS[2])));
            }
            Err(_) => return Err(Failure::Unavailable),
        };
        let viewer = Viewer {
            subject: principal.subject.clone(),
            role: principal.role.as_str().to_owned(),
            tenant: principal.tenant.as_ref().map(|t| t.as_str().to_owned()),
            csrf: session.csrf.clone(),
        };
        let api = Api::new(
            console.api.clone(),
            session.token,
            &parts.headers,
            parts.extensions.get::<ConnectInfo<SocketAddr>>().copied(),
        );
        Ok(Self { viewer, api })
    }
}

impl OptionalFromRequestParts<Console> for Signed {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Option<Self>, Failure> {
        match <Self as FromRequestParts<Console>>::from_request_parts(parts, console).await {
            Ok(signed) => Ok(Some(signed)),
            Err(Failure::SignIn(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Why a console request ends without its page.
#[derive(Debug)]
pub enum Failure {
    /// Not signed in, or the session ended: to the sign-in page, with why.
    SignIn(Option<&'static str>),
    /// A `/v1` call answered with a problem the page cannot show in place.
    Problem(Problem),
    /// A form was refused before any `/v1` call (CSRF, origin).
    Refused(String),
    /// The metadata store could not be read to check the token.
    Unavailable,
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Self {
        if problem.status == 401 {
            Self::SignIn(Some(REASONS[3]))
        } else {
            Self::Problem(problem)
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::SignIn(reason) => {
                let location = match reason {
                    Some(r) => client::with_query("/console/sign-in", &[("reason", Some(r))]),
                    None => "/console/sign-in".to_owned(),
                };
                let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
                if let Ok(clear) = HeaderValue::from_str(&session::clear_cookie(false)) {
                    response.headers_mut().insert(header::SET_COOKIE, clear);
                }
                return response;
            }
            Self::Problem(p) => (
                StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                p.detail,
            ),
            Self::Refused(message) => (StatusCode::FORBIDDEN, message),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The metadata database is unavailable; try again shortly.".to_owned(),
            ),
        };
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            s if s.is_server_error() => "Unavailable",
            _ => "Could not show this page",
        };
        let body = layout::page(
            Frame {
                title: heading.to_owned(),
                crumbs: vec![("Console".into(), Some("/console".into()))],
                api: Vec::new(),
                viewer: None,
            },
            html! { p { (message) } p { a href="/console" { "Back to the console" } } },
        );
        (status, pages::html(body)).into_response()
    }
}
