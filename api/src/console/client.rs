//! The console's only way to the data: the `/v1` API itself, called in-process with the
//! session's token. Authentication, the revocation check, rate limits, the policy, grants,
//! validation and audit are the ones `/v1` applies, because the request goes through them.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::http::X_REQUEST_ID;

/// Largest `/v1` answer a page reads.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A `/v1` answer that was not a success, as its RFC 9457 problem says.
#[derive(Debug, Clone, Deserialize)]
pub struct Problem {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong.
    #[serde(default)]
    pub detail: String,
    /// Per-field errors, for forms.
    #[serde(default)]
    pub errors: Vec<FieldProblem>,
}

/// One invalid field.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldProblem {
    /// Dotted path of the field.
    pub field: String,
    /// Why.
    pub message: String,
}

impl Problem {
    fn internal(detail: impl Into<String>) -> Self {
        Self {
            status: 500,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// The errors naming `field`, or a field under it (`transitions[0].after_days` is under
    /// `transitions`).
    pub fn for_field(&self, field: &str) -> Vec<&str> {
        self.errors
            .iter()
            .filter(|e| {
                e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
            })
            .map(|e| e.message.as_str())
            .collect()
    }
}

/// A page's handle on `/v1`, as the signed-in token.
#[derive(Clone)]
pub struct Api {
    router: Router,
    token: String,
    request_id: Option<HeaderValue>,
    peer: Option<ConnectInfo<SocketAddr>>,
    /// The browser's `Host` and proxy headers, which `/v1` builds URLs from (a recipient's
    /// profile endpoint), as it would for the browser's own request.
    forwarded: Vec<(axum::http::HeaderName, HeaderValue)>,
}

/// Request headers a `/v1` call keeps from the console request it serves.
pub const FORWARDED: [&str; 3] = ["host", "x-forwarded-proto", "x-forwarded-host"];

impl Api {
    /// `/v1` as `token`, on behalf of the console request with `request_id` from `peer`
    /// and the [`FORWARDED`] headers in `headers`.
    pub fn new(
        router: Router,
        token: String,
        headers: &axum::http::HeaderMap,
        peer: Option<ConnectInfo<SocketAddr>>,
    ) -> Self {
        let forwarded = FORWARDED
            .iter()
            .filter_map(|name| {
                let name = axum::http::HeaderName::from_static(name);
                headers.get(&name).map(|v| (name, v.clone()))
            })
            .collect();
        Self {
            router,
            token,
            request_id: headers.get(&X_REQUEST_ID).cloned(),
            peer,
            forwarded,
        }
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Problem> {
        self.call(Method::GET, path, None).await
    }

    /// A request with an optional JSON body; a 204 reads as JSON `null`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Problem> {
        let mut request = Request::builder().method(method).uri(path);
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", self.token)) {
            request = request.header(header::AUTHORIZATION, value);
        }
        if let Some(id) = &self.request_id {
            request = request.header(&X_REQUEST_ID, id.clone());
        }
        for (name, value) in &self.forwarded {
            request = request.header(name, value.clone());
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request
            .body(body)
            .map_err(|e| Problem::internal(format!("a console request could not be built: {e}")))?;
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(peer);
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|never| match never {})?;
        let status = response.status();
        // /v1 handlers leave their problem in the response's extensions; the server's outer
        // layer writes it as the body, and an in-process call does not pass that layer.
        if let Some(problem) = response.extensions().get::<crate::problem::Problem>() {
            return Err(Problem {
                status: problem.status,
                detail: problem.detail.clone(),
                errors: problem
                    .errors
                    .iter()
                    .map(|e| FieldProblem {
                        field: e.field.clone(),
                        message: e.message.clone(),
                    })
                    .collect(),
            });
        }
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Problem::internal(format!("an API answer could not be read: {e}")))?;
        if !status.is_success() {
            return Err(
                serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem {
                    status: status.as_u16(),
                    detail: status.canonical_reason().unwrap_or("error").to_owned(),
                    errors: Vec::new(),
                }),
            );
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            axum::body::Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Problem::internal(format!("an API answer was not understood: {e}")))
    }
}

/// One path segment, percent-encoded.
pub fn seg(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `path?query` from the pairs whose value is present.
pub fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if present.is_empty() {
        return path.to_owned();
    }
    match serde_urlencoded::to_string(&present) {
        Ok(query) => format!("{path}?{query}"),
        Err(_) => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_queries_are_encoded() {
        assert_eq!(seg("a b/c"), "a%20b%2Fc");
        assert_eq!(seg("acme-1_x.y"), "acme-1_x.y");
        assert_eq!(
            with_query(
                "/v1/t",
                &[("cursor", Some("a&b")), ("zone", None), ("q", Some(""))]
            ),
            "/v1/t?cursor=a%26b"
        );
    }

    #[test]
    fn field_errors_match_the_field_and_what_is_under_it() {
        let problem = Problem {
            status: 422,
            detail: String::new(),
            errors: vec![
                FieldProblem {
                    field: "transitions[0].after_days".into(),
                    message: "too soon".into(),
                },
                FieldProblem {
                    field: "retention_days_x".into(),
                    message: "other".into(),
                },
            ],
        };
        assert_eq!(problem.for_field("transitions"), ["too soon"]);
        assert_eq!(problem.for_field("transitions[0].after_days"), ["too soon"]);
        assert!(problem.for_field("retention_days").is_empty());
    }
}
