//! What every console answer carries, and the check every console form passes.
//!
//! - A Content-Security-Policy that allows nothing inline and nothing from elsewhere: no
//!   script runs at all, styles and images come from this origin, and no page may frame the
//!   console (`frame-ancestors 'none'`, with `X-Frame-Options` for older browsers).
//! - `Cache-Control: no-store`, so a page that shows a new token's secret is not kept.
//! - `Referrer-Policy: same-origin`, so console paths do not leak to links followed from it
//!   (not `no-referrer`: under it browsers send `Origin: null` with the console's own forms).
//! - A state-changing request must come from the console's own origin: `Origin` (or, where a
//!   browser sends none, `Referer`) must match the host it was sent to. This is on top of the
//!   session's CSRF token and its SameSite=Strict cookie.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the security headers on every console answer.
pub async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    // Console errors are pages, not problem documents: the server's problem layer leaves them.
    response.extensions_mut().insert(crate::http::ForeignErrorBody);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Refuses a state-changing request that did not come from a console page of this origin:
/// the host it was sent to, or `public` (`sharing.public_url`'s origin, for a proxy that
/// rewrites `Host`).
pub async fn same_origin(State(public): State<Option<String>>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    if !from_same_origin(request.headers(), public.as_deref()) {
        let body = super::layout::page(
            super::layout::Frame {
                title: "Not allowed".into(),
                crumbs: Vec::new(),
                api: Vec::new(),
                viewer: None,
            },
            maud::html! { p { "This form was not sent from a page of this console, so it was refused and nothing changed." } },
        );
        return (StatusCode::FORBIDDEN, super::pages::html(body)).into_response();
    }
    next.run(request).await
}

/// Whether `Origin`, or failing that `Referer`, names the host the request was sent to, or
/// the `public` origin.
fn from_same_origin(headers: &HeaderMap, public: Option<&str>) -> bool {
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    let Some(source) = source else { return false };
    if public.is_some_and(|p| source.origin().ascii_serialization() == p) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    if !matches!(source.scheme(), "http" | "https") {
        return false;
    }
    let Some(source_host) = source.host_str() else {
        return false;
    };
    let source_authority = match source.port() {
        Some(port) => format!("{source_host}:{port}"),
        None => source_host.to_owned(),
    };
    // A default port may be written in Host and left out of Origin, or the reverse.
    let strip_default = |authority: &str| -> String {
        let default = if source.scheme() == "https" { ":443" } else { ":80" };
        authority
            .strip_suffix(default)
            .unwrap_or(authority)
            .to_ascii_lowercase()
    };
    strip_default(&source_authority) == strip_default(host)
}

/// The stylesheet, embedded in the binary; its path carries the version, so it is cached.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        include_str!("assets/console.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    fn from_same_origin_(headers: &HeaderMap) -> bool {
        from_same_origin(headers, None)
    }

    #[test]
    fn the_public_url_is_an_origin_too_behind_a_proxy_that_rewrites_host() {
        let proxied = headers(&[("host", "backend:8080"), ("origin", "https://lake.example.com")]);
        assert!(from_same_origin(&proxied, Some("https://lake.example.com")));
        assert!(!from_same_origin(&proxied, None));
        assert!(!from_same_origin(&proxied, Some("https://other.example.com")));
    }

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        assert!(from_same_origin_(&headers(&[
            ("host", "lake:8080"),
            ("origin", "http://lake:8080")
        ])));
        assert!(from_same_origin_(&headers(&[
            ("host", "lake"),
            ("origin", "https://lake:443")
        ])));
        assert!(from_same_origin_(&headers(&[
            ("host", "lake:8080"),
            ("referer", "http://lake:8080/console/x")
        ])));
        assert!(!from_same_origin_(&headers(&[
            ("host", "lake:8080"),
            ("origin", "http://lake:9090")
        ])));
        assert!(!from_same_origin_(&headers(&[
            ("host", "lake:8080"),
            ("origin", "http://evil:8080")
        ])));
        assert!(!from_same_origin_(&headers(&[
            ("host", "lake:8080"),
            ("origin", "null")
        ])));
        assert!(
            !from_same_origin_(&headers(&[("host", "lake:8080")])),
            "no origin at all"
        );
        assert!(
            !from_same_origin_(&headers(&[("origin", "http://lake:8080")])),
            "no host"
        );
    }
}
