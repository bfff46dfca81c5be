//! Sign-in through an identity provider: the OAuth 2.0 authorization-code flow with PKCE
//! (RFC 7636, S256), the console acting as a public client.
//!
//! 1. `GET /console/sign-in/oidc/{index}` seals a fresh `state` and code verifier into a
//!    short-lived cookie and sends the browser to the issuer's authorization endpoint with
//!    the verifier's S256 challenge.
//! 2. The issuer sends the browser back to `GET /console/oidc/callback` with a code. The state
//!    must be the cookie's; the code is exchanged at the token endpoint with the verifier, and
//!    the token named by `token_field` must pass this issuer's checks as any bearer token
//!    does. Then the session starts as after a pasted token.
//!
//! The flow cookie is `SameSite=Lax`: it must come back with the issuer's top-level redirect,
//! which a `Strict` cookie would not. The session cookie is `Strict`, so the callback answers
//! with a page that moves on to the console from this origin, where it is sent.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use maud::html;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Authentication;
use crate::console::layout::{self, Frame};
use crate::console::session::{self, Session};
use crate::console::{Console, Failure};

/// The flow cookie's name.
const FLOW_COOKIE: &str = "lakeplane_console_oidc";

/// Associated data for sealed flow cookies.
const PLACE: &str = "console-oidc/v1";

/// How long a sign-in at the identity provider may take.
const FLOW_SECS: i64 = 600;

/// What the console remembers between sending the browser out and its return.
#[derive(Serialize, Deserialize)]
struct Flow {
    issuer: usize,
    state: String,
    verifier: String,
    expires_at: DateTime<Utc>,
}

/// The PKCE S256 challenge of a verifier.
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// This console's address as the browser reaches it: `sharing.public_url`, or the request's
/// `Host` with the proxy's scheme.
fn origin(console: &Console, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &console.state.config.sharing.public_url {
        return Some(url.as_str().trim_end_matches('/').to_owned());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    Some(format!("{scheme}://{host}"))
}

fn refused(message: &str) -> Response {
    let body = layout::page(
        Frame {
            title: "Sign-in failed".into(),
            crumbs: Vec::new(),
            api: Vec::new(),
            viewer: None,
        },
        html! { p { (message) } p { a href="/console/sign-in" { "Back to sign-in" } } },
    );
    (StatusCode::BAD_REQUEST, super::html(body)).into_response()
}

/// Sends the browser to issuer `index`'s authorization endpoint.
pub async fn start(State(console): State<Console>, headers: HeaderMap, Path(index): Path<usize>) -> Response {
    let Some(login) = console
        .state
        .config
        .auth
        .oidc
        .get(index)
        .and_then(|i| i.console.as_ref())
    else {
        return Failure::Problem(crate::console::client::Problem {
            status: 404,
            detail: "No identity provider signs in to the console here.".into(),
            errors: Vec::new(),
        })
        .into_response();
    };
    let Some(origin) = origin(&console, &headers) else {
        return refused("The request names no host to come back to.");
    };
    let flow = Flow {
        issuer: index,
        state: tenancy::share::new_url_secret(),
        verifier: tenancy::share::new_url_secret(),
        expires_at: Utc::now() + chrono::Duration::seconds(FLOW_SECS),
    };
    let Some(sealed) = serde_json::to_string(&flow)
        .ok()
        .and_then(|j| console.sealer.seal(PLACE, &j).ok())
    else {
        return Failure::Unavailable.into_response();
    };
    let mut target = login.authorization_endpoint.clone();
    target
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &login.client_id)
        .append_pair("redirect_uri", &format!("{origin}/console/oidc/callback"))
        .append_pair("scope", &login.scopes)
        .append_pair("state", &flow.state)
        .append_pair("code_challenge", &challenge(&flow.verifier))
        .append_pair("code_challenge_method", "S256");
    let secure = if super::signin::secure_cookie(&console, &headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{FLOW_COOKIE}={sealed}; Path=/console; Max-Age={FLOW_SECS}; HttpOnly; SameSite=Lax{secure}");
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, target.to_string())]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The identity provider's answer.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes the flow: checks the state, exchanges the code, checks the token, starts the
/// session.
pub async fn callback(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    if let Some(error) = &answer.error {
        let detail = answer.error_description.as_deref().unwrap_or("");
        return refused(&format!(
            "The identity provider refused the sign-in: {error} {detail}"
        ));
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let flow: Option<Flow> = session::cookie_value(FLOW_COOKIE, cookies)
        .and_then(|value| console.sealer.open(PLACE, value).ok())
        .and_then(|json| serde_json::from_str(&json).ok())
        .filter(|f: &Flow| f.expires_at > Utc::now());
    let Some(flow) = flow else {
        return refused("This sign-in was not started here, or took too long. Start again.");
    };
    let (Some(code), Some(state)) = (&answer.code, &answer.state) else {
        return refused("The identity provider's answer has no code or state.");
    };
    if !session::same_secret(&flow.state, state) {
        return refused("The sign-in's state does not match this browser's. Start again.");
    }
    let Some(issuer) = console.state.config.auth.oidc.get(flow.issuer) else {
        return refused("That identity provider is no longer configured.");
    };
    let Some(login) = &issuer.console else {
        return refused("That identity provider no longer signs in to the console.");
    };
    let Some(origin) = origin(&console, &headers) else {
        return refused("The request names no host to come back to.");
    };
    let exchanged = reqwest::Client::new()
        .post(login.token_endpoint.clone())
        .timeout(std::time::Duration::from_secs(10))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &format!("{origin}/console/oidc/callback")),
            ("client_id", login.client_id.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ])
        .send()
        .await;
    let tokens: serde_json::Value = match exchanged {
        Ok(answer) if answer.status().is_success() => match answer.json().await {
            Ok(tokens) => tokens,
            Err(_) => return refused("The identity provider's token answer was not JSON."),
        },
        Ok(answer) => {
            tracing::warn!(
                status = answer.status().as_u16(),
                "console sign-in: the token endpoint refused the code"
            );
            return refused(&format!(
                "The identity provider refused to exchange the code ({}).",
                answer.status()
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: the token endpoint could not be reached");
            return refused("The identity provider's token endpoint could not be reached.");
        }
    };
    let Some(token) = tokens.get(&login.token_field).and_then(|t| t.as_str()) else {
        return refused(&format!(
            "The identity provider's answer has no {}.",
            login.token_field
        ));
    };
    let principal = match crate::auth::check_token(&console.state, token).await {
        Ok(Authentication::Authenticated(p)) if p.issuer == issuer.issuer => p,
        Ok(Authentication::Authenticated(_)) => return refused("The token came from another issuer."),
        Ok(Authentication::Revoked(_)) => return refused("This token has been revoked."),
        Ok(Authentication::Failed(e)) => return refused(&format!("The token is not accepted: {e}.")),
        Err(_) => return Failure::Unavailable.into_response(),
    };
    let session = Session::new(token.to_owned(), principal.expires_at);
    let Some(sealed) = session.seal(&console.sealer) else {
        return Failure::Unavailable.into_response();
    };
    let secure = super::signin::secure_cookie(&console, &headers);
    let body = layout::page(
        Frame {
            title: "Signed in".into(),
            crumbs: Vec::new(),
            api: Vec::new(),
            viewer: None,
        },
        html! {
            // Moves on from this origin, so the SameSite=Strict session cookie goes along.
            meta http-equiv="refresh" content="0; url=/console";
            p { "Signed in as " strong { (principal.subject) } ". " a href="/console" { "Continue to the console" } }
        },
    );
    let mut response = super::html(body);
    let set = [
        session::set_cookie(&sealed, session.expires_at, Utc::now(), secure),
        format!("{FLOW_COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Lax"),
    ];
    for cookie in set {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
