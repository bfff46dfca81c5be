//! Errors in Unity Catalog's shape on its routes. Handlers and the shared layers
//! (authentication, rate limits, body limits) answer with RFC 9457 problems as everywhere
//! else (carried in the response until the outer layer writes them); this layer writes each as
//! `{error_code, message, details}` instead, which Unity Catalog
//! clients parse (some decide success or failure from the body's shape alone). The mapping
//! from status to code is [`code_for`], in one place.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};

use crate::http::ForeignErrorBody;
use crate::problem::Problem;

/// The Unity Catalog code, and the status it is answered with, for a problem's status. A
/// validation failure (422 elsewhere) is `INVALID_ARGUMENT`, which Unity Catalog answers 400.
pub fn code_for(status: StatusCode) -> (&'static str, StatusCode) {
    match status.as_u16() {
        401 => ("UNAUTHENTICATED", status),
        403 => ("PERMISSION_DENIED", status),
        404 => ("NOT_FOUND", status),
        // Creating or deleting catalogs, schemas and tables: not offered on these routes.
        405 => ("UNIMPLEMENTED", status),
        // The body stopped arriving: sending it again may work.
        408 => ("UNAVAILABLE", status),
        // The tenant is not ready (provisioning, migrating): kept 409, a state that passes,
        // where Unity Catalog's own FAILED_PRECONDITION is a 400 clients would not retry.
        409 => ("FAILED_PRECONDITION", status),
        429 => ("RESOURCE_EXHAUSTED", status),
        501 => ("UNIMPLEMENTED", status),
        503 | 504 => ("UNAVAILABLE", status),
        400..=499 => ("INVALID_ARGUMENT", StatusCode::BAD_REQUEST),
        _ => ("INTERNAL", status),
    }
}

/// Why a method is refused on these routes: they only read, and vend credentials.
const READ_ONLY: &str = "catalogs, schemas and tables cannot be created, changed or deleted \
     through the Unity Catalog API: use /v1 (POST /v1/tenants, POST /v1/tenants/{tenant}/tables, \
     DELETE /v1/tenants/{tenant}/tables/{zone}/{name})";

/// The message of a problem: its detail, then each invalid field as `field: why`.
fn message_of(problem: &Value) -> String {
    let detail = problem["detail"].as_str().unwrap_or("the request failed");
    let fields: Vec<String> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some(format!("{}: {}", e["field"].as_str()?, e["message"].as_str()?)))
        .collect();
    if fields.is_empty() {
        detail.to_owned()
    } else {
        format!("{detail}: {}", fields.join("; "))
    }
}

/// The Unity Catalog body for a problem.
pub fn body_for(problem: &Value, code: &str) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(id) = problem["request_id"].as_str() {
        metadata.insert("request_id".into(), Value::String(id.to_owned()));
    }
    json!({
        "error_code": code,
        "message": message_of(problem),
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code,
            "metadata": metadata}],
    })
}

/// Rewrites the error responses of the inner routes and layers: the problems they built, and
/// bare error statuses from the router (405).
pub async fn rewrite(request: Request, next: Next) -> Response {
    let request_id = crate::http::request_id(&request);
    in_unity_shape(next.run(request).await, request_id)
}

/// The response, when it is an error, rewritten as Unity Catalog's error body.
pub fn in_unity_shape(mut response: Response, request_id: Option<String>) -> Response {
    let status = response.status();
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None if status.is_client_error() || status.is_server_error() => match status {
            StatusCode::METHOD_NOT_ALLOWED => Problem::new(status, "method-not-allowed", READ_ONLY),
            _ => Problem::from_status(status),
        },
        None => return response,
    };
    problem.request_id = request_id;
    let (code, status) = code_for(status);
    let body = body_for(&serde_json::to_value(&problem).unwrap_or_default(), code);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    *response.body_mut() = Body::from(body.to_string());
    response.extensions_mut().insert(ForeignErrorBody);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_unity_catalog_codes() {
        // Unity Catalog OSS's ErrorCode table: code and HTTP status.
        for (ours, code, theirs) in [
            (401, "UNAUTHENTICATED", 401),
            (403, "PERMISSION_DENIED", 403),
            (404, "NOT_FOUND", 404),
            (422, "INVALID_ARGUMENT", 400),
            (400, "INVALID_ARGUMENT", 400),
            (413, "INVALID_ARGUMENT", 400),
            (405, "UNIMPLEMENTED", 405),
            (429, "RESOURCE_EXHAUSTED", 429),
            (501, "UNIMPLEMENTED", 501),
            (503, "UNAVAILABLE", 503),
            (408, "UNAVAILABLE", 408),
            (409, "FAILED_PRECONDITION", 409),
            (500, "INTERNAL", 500),
        ] {
            let status = StatusCode::from_u16(ours).expect("status");
            assert_eq!(
                code_for(status),
                (code, StatusCode::from_u16(theirs).expect("status")),
                "{ours}"
            );
        }
    }

    #[test]
    fn a_validation_problem_names_each_field_in_the_message() {
        let problem = json!({"type": "urn:lakeplane:problem:validation", "status": 422,
            "detail": "invalid request", "request_id": "r-1",
            "errors": [{"field": "operation", "message": "must be READ or READ_WRITE"}]});
        let body = body_for(&problem, "INVALID_ARGUMENT");
        assert_eq!(body["error_code"], "INVALID_ARGUMENT");
        assert_eq!(
            body["message"],
            "invalid request: operation: must be READ or READ_WRITE"
        );
        assert_eq!(body["details"][0]["reason"], "INVALID_ARGUMENT");
        assert_eq!(body["details"][0]["metadata"]["request_id"], "r-1");
    }
}
