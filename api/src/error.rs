//! The HTTP layer's error type and its single mapping to status codes and problems.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lake_manager::catalog::CatalogError;
use lake_manager::credentials::{CredentialsError, STS_UNAVAILABLE};
use lake_manager::ingest::IngestError;
use lake_manager::provision::ProvisionError;
use lake_manager::storage::StorageError;
use tenancy::kind::{
    Class, Classify, DATABASE_UNAVAILABLE, ErrorKind, STORAGE_UNAVAILABLE, TENANT_NOT_READY,
};
use tenancy::policy::Denial;
use tenancy::store::StoreError;
use tenancy::token::AuthError;
use tenancy::validation::Violation;

use crate::problem::{FieldError, Problem};

/// How long clients are told to wait before retrying a 503.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(5);

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

    /// The caller's tenant used up its request budget.
    #[error("the tenant's request rate limit is used up; retry later")]
    TenantRateLimited {
        /// When to retry.
        retry_after: Duration,
    },
    /// The request body stopped arriving.
    #[error("the request body sent nothing for {0:?}; send it again")]
    BodyStalled(Duration),
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
    /// Provisioning, migration or purge of a tenant's storage failed.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
    /// A bug or an unexpected failure; the details stay in the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The class of every error that has one; `None` for the HTTP layer's own refusals
    /// (malformed syntax, media type, authentication, authorization).
    fn class(&self) -> Option<Class> {
        Some(match self {
            ApiError::BadRequest(_)
            | ApiError::UnsupportedMediaType { .. }
            | ApiError::Unauthorized(_)
            | ApiError::BodyStalled(_)
            | ApiError::Denied(_) => return None,
            ApiError::Validation(_) => ErrorKind::Invalid.class(),
            ApiError::TenantRateLimited { .. } => ErrorKind::Throttled.coded("tenant-rate-limited"),
            ApiError::PayloadTooLarge { .. } => ErrorKind::TooLarge.class(),
            ApiError::NotFound(_) => ErrorKind::NotFound.class(),
            ApiError::Conflict(_) => ErrorKind::Conflict.class(),
            ApiError::Timeout(_) => ErrorKind::Unavailable.coded("timeout"),
            ApiError::Unavailable(_) => ErrorKind::Unavailable.class(),
            ApiError::Internal(_) => ErrorKind::Internal.class(),
            ApiError::Store(e) => e.class(),
            ApiError::Storage(e) => e.class(),
            ApiError::Catalog(e) => e.class(),
            ApiError::Ingest(e) => e.class(),
            ApiError::Credentials(e) => e.class(),
            ApiError::Provision(e) => e.class(),
        })
    }

    fn status_and_slug(&self) -> (StatusCode, &'static str) {
        match self.class() {
            Some(class) => (status_of(class.kind), class.code),
            None => match self {
                ApiError::UnsupportedMediaType { .. } => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type")
                }
                ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                ApiError::BodyStalled(_) => (StatusCode::REQUEST_TIMEOUT, "body-stalled"),
                ApiError::Denied(Denial::Hidden) => (StatusCode::NOT_FOUND, "not-found"),
                ApiError::Denied(Denial::Forbidden(_)) => (StatusCode::FORBIDDEN, "forbidden"),
                _ => (StatusCode::BAD_REQUEST, "malformed"),
            },
        }
    }

    /// What a client is told about a server-side failure: a fixed sentence per code, or the
    /// error's own message where it holds nothing internal. Causes stay in the log.
    fn public_detail(&self, code: &str) -> String {
        match code {
            DATABASE_UNAVAILABLE => "the metadata database is unavailable; retry later".to_owned(),
            STORAGE_UNAVAILABLE => "the object storage is unavailable; retry later".to_owned(),
            STS_UNAVAILABLE => "AWS STS could not issue the credentials right now; retry later".to_owned(),
            tenancy::kind::STORAGE_FULL => {
                "the storage has no room left; nothing was committed; retry once space is freed".to_owned()
            }
            lake_manager::ingest::COMMIT_OUTCOME_UNKNOWN => {
                "the commit holding the events may or may not have landed; only a retry with the same Idempotency-Key is safe".to_owned()
            }
            "commit-failed" => {
                "the commit failed; none of the events were acknowledged; send them again".to_owned()
            }
            // Messages written for clients: a timeout, a fenced tenant, a stopped writer.
            "timeout" | "unavailable" | TENANT_NOT_READY => self.to_string(),
            _ => "the server could not complete the request".to_owned(),
        }
    }
}

/// The one mapping from an error's kind to its HTTP status.
fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Quota => StatusCode::CONFLICT,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
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
            self.public_detail(slug)
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
            ApiError::TenantRateLimited { retry_after } => Some(*retry_after),
            ApiError::Credentials(e) => e.retry_after(),
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
