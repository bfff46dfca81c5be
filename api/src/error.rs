//! The HTTP layer's error type and its single mapping to status codes and problems.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lake_manager::catalog::CatalogError;
use lake_manager::credentials::CredentialsError;
use lake_manager::delta::DeltaError;
use lake_manager::ingest::IngestError;
use lake_manager::storage::StorageError;
use tenancy::policy::Denial;
use tenancy::store::StoreError;
use tenancy::token::AuthError;
use tenancy::validation::Violation;

use crate::problem::{FieldError, Problem};

/// How long clients are told to wait before retrying a 503.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Everything a handler or extractor can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (e.g. JSON syntax).
    #[error("{0}")]
    BadRequest(String),
    /// The body's media type is not accepted.
    #[error("expected content type {expected}")]
    UnsupportedMediaType {
        /// What the route accepts.
        expected: &'static str,
    },
    /// The body exceeds the configured limit.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Well-formed input with invalid values.
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// No valid bearer token.
    #[error("{0}")]
    Unauthorized(AuthError),
    /// The policy refused the request.
    #[error("{}", match .0 { Denial::Hidden => "no such tenant", Denial::Forbidden(why) => why.as_str() })]
    Denied(Denial),
    /// The resource already exists or is in the way.
    #[error("{0}")]
    Conflict(String),

    /// The handler ran out of time.
    #[error("request exceeded the server's {0:?} timeout")]
    Timeout(Duration),
    /// A dependency is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A metadata store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A storage backend failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A table catalog failure.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// An ingestion failure.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// Temporary AWS credentials could not be vended.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A bug or an unexpected failure; the details stay in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "malformed"),
            ApiError::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
            }
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            ApiError::NotFound(_) | ApiError::Denied(Denial::Hidden) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Denied(Denial::Forbidden(_)) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Conflict(_)
            | ApiError::Store(StoreError::Conflict(_))
            | ApiError::Catalog(CatalogError::Store(StoreError::Conflict(_)))
            | ApiError::Catalog(CatalogError::Delta(DeltaError::Conflict(_) | DeltaError::Refused(_))) => {
                (StatusCode::CONFLICT, "conflict")
            }
            ApiError::Store(StoreError::Quota(_))
            | ApiError::Catalog(CatalogError::Store(StoreError::Quota(_))) => {
                (StatusCode::CONFLICT, "quota-exceeded")
            }
            ApiError::Store(StoreError::Busy(_))
            | ApiError::Catalog(CatalogError::Store(StoreError::Busy(_))) => (StatusCode::CONFLICT, "busy"),
            ApiError::Catalog(CatalogError::NotReady { .. }) => (StatusCode::CONFLICT, "tenant-not-ready"),
            ApiError::Catalog(CatalogError::Store(e)) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
            }
            ApiError::Catalog(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Ingest(e) => ingest_status(e),
            ApiError::Credentials(e) => credentials_status(e),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Store(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
            }
            ApiError::Store(_) | ApiError::Storage(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

fn ingest_status(error: &IngestError) -> (StatusCode, &'static str) {
    match error {
        IngestError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-events"),
        IngestError::Body(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-body"),
        IngestError::Field { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        IngestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large"),
        IngestError::Full { .. } => (StatusCode::TOO_MANY_REQUESTS, "ingest-buffer-full"),
        IngestError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "ingest-quota"),
        IngestError::Fenced { .. } => (StatusCode::SERVICE_UNAVAILABLE, "tenant-not-ready"),
        IngestError::WriterStopped => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        IngestError::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "conflict"),
        IngestError::Store(StoreError::Quota(_)) => (StatusCode::CONFLICT, "quota-exceeded"),
        IngestError::Store(e) if e.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
        }
        IngestError::Catalog(CatalogError::Store(StoreError::Conflict(_))) => {
            (StatusCode::CONFLICT, "conflict")
        }
        IngestError::Catalog(CatalogError::Store(StoreError::Quota(_))) => {
            (StatusCode::CONFLICT, "quota-exceeded")
        }
        IngestError::Catalog(CatalogError::NotReady { .. }) => (StatusCode::CONFLICT, "tenant-not-ready"),
        IngestError::CommitFailed(_) | IngestError::Delta(DeltaError::Conflict(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, "commit-failed")
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn credentials_status(error: &CredentialsError) -> (StatusCode, &'static str) {
    match error {
        CredentialsError::NotAvailable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "credentials-not-available"),
        CredentialsError::Field { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
        CredentialsError::NotReady { .. } => (StatusCode::CONFLICT, "tenant-not-ready"),
        CredentialsError::Sts { retryable: true, .. } => (StatusCode::SERVICE_UNAVAILABLE, "sts-unavailable"),
        CredentialsError::Store(e) if e.is_unavailable() => {
            (StatusCode::SERVICE_UNAVAILABLE, "database-unavailable")
        }
        CredentialsError::Sts { .. } | CredentialsError::Store(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }
    }
}

/// Marks a response as a refused request, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct DeniedMarker;

impl From<Vec<Violation>> for ApiError {
    fn from(violations: Vec<Violation>) -> Self {
        ApiError::Validation(
            violations
                .into_iter()
                .map(|v| FieldError {
                    line: None,
                    field: v.field,
                    message: v.message,
                })
                .collect(),
        )
    }
}

impl From<Violation> for ApiError {
    fn from(violation: Violation) -> Self {
        vec![violation].into()
    }
}

/// The error and all its causes on one line, for logs.
pub fn chain(error: &dyn std::error::Error) -> String {
    tenancy::error_chain(error)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug) = self.status_and_slug();
        let detail = if status.is_server_error() {
            // Logged inside the request's span, so the line carries the request id.
            tracing::error!(status = status.as_u16(), error = %chain(&self), "request failed");
            match &self {
                ApiError::Store(_) | ApiError::Credentials(CredentialsError::Store(_))
                    if status == StatusCode::SERVICE_UNAVAILABLE =>
                {
                    "the metadata database is unavailable; retry later".to_owned()
                }
                // The cause (which may name roles and accounts) stays in the log.
                ApiError::Credentials(CredentialsError::Sts { .. })
                    if status == StatusCode::SERVICE_UNAVAILABLE =>
                {
                    "AWS STS could not issue the credentials right now; retry later".to_owned()
                }
                ApiError::Timeout(_) | ApiError::Unavailable(_) => self.to_string(),
                ApiError::Ingest(
                    e @ (IngestError::Fenced { .. }
                    | IngestError::WriterStopped
                    | IngestError::CommitFailed(_)),
                ) => match e {
                    // The cause of a failed commit stays in the log.
                    IngestError::CommitFailed(_) => {
                        "the commit failed; none of the events were acknowledged; send them again".to_owned()
                    }
                    _ => e.to_string(),
                },
                // Never leak internals to the client.
                _ => "the server could not complete the request".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut problem = Problem::new(status, slug, detail);
        if let ApiError::Validation(errors) = &self {
            problem.errors = errors.clone();
        }
        if let ApiError::Ingest(IngestError::Invalid { errors, .. }) = &self {
            problem.errors = errors
                .iter()
                .map(|e| FieldError {
                    line: Some(e.line),
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect();
        }
        if let ApiError::Ingest(IngestError::Field { field, message })
        | ApiError::Credentials(CredentialsError::Field { field, message }) = &self
        {
            problem.errors = vec![FieldError {
                line: None,
                field: field.clone(),
                message: message.clone(),
            }];
        }
        let retry_after = match &self {
            ApiError::Ingest(e) => e.retry_after(),
            _ => None,
        };
        let denied = matches!(self, ApiError::Unauthorized(_) | ApiError::Denied(_));
        let unauthorized = matches!(self, ApiError::Unauthorized(_));
        let mut response = problem.into_response();
        if denied {
            response.extensions_mut().insert(DeniedMarker);
        }
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"lakeplane\""),
            );
        }
        if let Some(wait) = retry_after {
            // Whole seconds, rounded up: Retry-After has no fractions.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
        }
        response
    }
}
