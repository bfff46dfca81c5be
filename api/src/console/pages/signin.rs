//! Sign-in with a token, and sign-out.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use crate::auth::Authentication;
use crate::console::layout::{self, Frame};
use crate::console::session::{self, Session};
use crate::console::{Console, Failure, Signed};

/// `?reason=`: why the browser was sent here.
#[derive(Debug, serde::Deserialize)]
pub struct Reason {
    reason: Option<String>,
}

/// `(index, label)` of the issuers that sign in to the console.
fn providers(console: &Console) -> Vec<(usize, String)> {
    console
        .state
        .config
        .auth
        .oidc
        .iter()
        .enumerate()
        .filter_map(|(i, issuer)| {
            let login = issuer.console.as_ref()?;
            Some((i, login.label.clone().unwrap_or_else(|| issuer.issuer.clone())))
        })
        .collect()
}

fn render(console: &Console, message: Option<&str>, error: Option<&str>) -> Response {
    let providers = providers(console);
    let body = html! {
        @if let Some(m) = message { (layout::notice(m)) }
        @for (index, label) in &providers {
            p { a.button href={"/console/sign-in/oidc/" (index)} { "Sign in with " (label) } }
        }
        form.card method="post" action="/console/sign-in" {
            label for="token" { "Bearer token" }
            p.muted id="token-help" {
                "A token from " code { "lakeplane token create" } " or " code { "POST /v1/tenants/{tenant}/tokens" }
                ", or one from a trusted identity provider. It is kept only in an encrypted, HttpOnly cookie that ends when the token does."
            }
            input id="token" name="token" type="password" autocomplete="off" required
                aria-describedby="token-help token-error" aria-invalid=(if error.is_some() { "true" } else { "false" });
            @if let Some(e) = error { p.field-error id="token-error" { (e) } }
            p { button type="submit" { "Sign in" } }
        }
    };
    let frame = Frame {
        title: "Sign in".into(),
        crumbs: Vec::new(),
        api: Vec::new(),
        viewer: None,
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    (status, super::html(layout::page(frame, body))).into_response()
}

/// The sign-in form.
pub async fn form(State(console): State<Console>, Query(reason): Query<Reason>) -> Response {
    // Only the console's own messages are shown: a link cannot put its words on this page.
    let known = reason
        .reason
        .as_deref()
        .and_then(|r| crate::console::REASONS.iter().find(|k| **k == r));
    render(&console, known.copied(), None)
}

/// Checks the token as `/v1` would, and starts a session that ends when the token does.
pub async fn submit(
    State(console): State<Console>,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("token").map(|t| t.trim()).unwrap_or("");
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.is_empty() {
        return render(&console, None, Some("Paste a token."));
    }
    let principal = match crate::auth::check_token(&console.state, token).await {
        Ok(Authentication::Authenticated(p)) => p,
        Ok(Authentication::Revoked(_)) => {
            return render(&console, None, Some("This token has been revoked."));
        }
        // The reason names no secret: expired, malformed, wrong signature, unknown issuer.
        Ok(Authentication::Failed(e)) => {
            return render(&console, None, Some(&format!("This token is not accepted: {e}.")));
        }
        Err(_) => return Failure::Unavailable.into_response(),
    };
    let session = Session::new(token.to_owned(), principal.expires_at);
    let Some(sealed) = session.seal(&console.sealer) else {
        return Failure::Unavailable.into_response();
    };
    let secure = secure_cookie(&console, &headers);
    let cookie = session::set_cookie(&sealed, session.expires_at, chrono::Utc::now(), secure);
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Whether the session cookie is `Secure`: `console.secure_cookie`, or unset, when the
/// request came through a TLS proxy or `sharing.public_url` is https.
pub fn secure_cookie(console: &Console, headers: &axum::http::HeaderMap) -> bool {
    let behind_tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    console.state.config.console.secure_cookie.unwrap_or_else(|| {
        behind_tls
            || console
                .state
                .config
                .sharing
                .public_url
                .as_ref()
                .is_some_and(|u| u.scheme() == "https")
    })
}

/// Ends the session in this browser.
pub async fn sign_out(signed: Option<Signed>, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Some(signed) = &signed
        && let Err(refused) = signed.check_csrf(&form)
    {
        return refused.into_response();
    }
    let mut response = Redirect::to("/console/sign-in?reason=Signed%20out.").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(false)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
