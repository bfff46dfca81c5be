//! RFC 9457 problem details: the one body every error response carries.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:lakeplane:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The `x-request-id` of the request, for matching with server logs.
    pub request_id: Option<String>,
    /// Per-field validation errors (422 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Per-check results (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<BTreeMap<String, String>>,
}

/// One invalid field in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `quotas.max_tables`; `body` for the whole document.
    pub field: String,
    /// Why the value is rejected.
    pub message: String,
    /// For events: the 1-based line (NDJSON) or array element the error is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Problem {
    /// A problem of the given status, with a lakeplane problem slug.
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:lakeplane:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            request_id: None,
            errors: Vec::new(),
            checks: None,
        }
    }

    /// The problem for a bare error status produced outside our handlers (405, 413, ...).
    pub fn from_status(status: StatusCode) -> Self {
        let (slug, detail) = match status {
            StatusCode::NOT_FOUND => ("not-found", "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method-not-allowed",
                "this method is not allowed here; see the Allow header",
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                ("payload-too-large", "the request body exceeds the server's limit")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ("unsupported-media-type", "the content type is not accepted here")
            }
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            s if s.is_server_error() => ("internal", "the server could not complete the request"),
            _ => ("http", "the request could not be processed"),
        };
        Self::new(status, slug, detail)
    }

    /// Serializes the problem into a response, keeping any headers the caller set.
    pub fn into_response_with(self, mut response: Response) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::CONTENT_ENCODING);
        *response.body_mut() = axum::body::Body::from(body);
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        // The body is written by the finalizing middleware, which knows the request id.
        let mut response = StatusCode::from_u16(self.status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response();
        response.extensions_mut().insert(self);
        response
    }
}
