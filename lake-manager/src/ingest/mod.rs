//! Streaming ingestion into bronze tables: stream definitions with their dead-letter tables,
//! HTTP push through group commit, and Kafka consumption with exactly-once commits.

pub mod admission;
pub mod decode;
pub mod files;
pub mod flat_scan;
pub mod fused;
pub mod group_commit;
pub mod idempotency;
pub mod kafka;
pub mod rate;
pub mod secrets;
pub mod streams;
pub mod validate;

use std::time::Duration;

use crate::catalog::CatalogError;
use crate::delta::DeltaError;
use decode::EventError;
use tenancy::kind::{Class, Classify, ErrorKind, TENANT_NOT_READY};
use tenancy::store::StoreError;

/// The code of a push whose commit may or may not have landed.
pub const COMMIT_OUTCOME_UNKNOWN: &str = "commit-outcome-unknown";

/// Why an ingestion request or stream operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Events do not fit the table (reject mode); nothing was written.
    #[error("{total} of the events do not fit the table; nothing was written")]
    Invalid {
        /// Up to the first 10 bad events.
        errors: Vec<EventError>,
        /// How many were bad in all.
        total: usize,
    },
    /// The body as a whole cannot be read as events.
    #[error("{0}")]
    Body(String),
    /// A stream definition cannot be carried out as given (named field).
    #[error("{field}: {message}")]
    Field {
        /// The field.
        field: String,
        /// Why.
        message: String,
    },
    /// The request alone exceeds the table's buffer.
    #[error("the request holds {bytes} bytes of events; a table buffers at most {limit}")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The buffers are full; retry after the hint.
    #[error("the {scope} ingest buffer is full; retry later")]
    Full {
        /// `table` or `server`.
        scope: &'static str,
        /// When to retry.
        retry_after: Duration,
    },
    /// The tenant's events-per-second quota is used up.
    #[error("the tenant's ingest quota of {rate} events/s is used up; retry later")]
    RateLimited {
        /// The quota.
        rate: u32,
        /// When to retry.
        retry_after: Duration,
    },
    /// The tenant's storage is moving or not ready; retry later.
    #[error("tenant {tenant} is {status}; ingestion resumes when it is ready")]
    Fenced {
        /// The tenant.
        tenant: String,
        /// Its status.
        status: &'static str,
    },
    /// The table writer stopped before taking the events (nothing was written).
    #[error("the table writer stopped; send the events again")]
    WriterStopped,
    /// The commit holding the events may have landed or may still land: only a retry with
    /// the same idempotency key is safe.
    #[error("the commit's outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// The storage has no room for the events; nothing was committed.
    #[error("the storage is full; nothing was committed: {0}")]
    StorageFull(String),
    /// Another attempt holds the push's idempotency key and may still commit.
    #[error("a push with this Idempotency-Key is still under way; retry after the hint")]
    KeyInProgress {
        /// When to retry.
        retry_after: Duration,
    },
    /// The commit failed; none of the request's events were acknowledged.
    #[error("the commit failed; nothing was acknowledged: {0}")]
    CommitFailed(String),
    /// A Kafka client failure.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The metadata store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A Delta operation failed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

impl IngestError {
    /// When the caller should retry, for errors that are about load rather than input.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::Full { retry_after, .. } | IngestError::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            IngestError::Fenced { .. } => Some(Duration::from_secs(30)),
            IngestError::WriterStopped | IngestError::OutcomeUnknown(_) => Some(Duration::from_secs(1)),
            IngestError::KeyInProgress { retry_after } => Some(*retry_after),
            IngestError::StorageFull(_) => Some(Duration::from_secs(30)),
            _ => None,
        }
    }
}

impl Classify for IngestError {
    fn class(&self) -> Class {
        match self {
            IngestError::Invalid { .. } => ErrorKind::Invalid.coded("invalid-events"),
            IngestError::Body(_) => ErrorKind::Invalid.coded("invalid-body"),
            IngestError::Field { .. } => ErrorKind::Invalid.class(),
            IngestError::TooLarge { .. } => ErrorKind::TooLarge.class(),
            IngestError::Full { .. } => ErrorKind::Throttled.coded("ingest-buffer-full"),
            IngestError::RateLimited { .. } => ErrorKind::Throttled.coded("ingest-quota"),
            // Retryable: the events are welcome once the tenant is ready again.
            IngestError::Fenced { .. } => ErrorKind::Unavailable.coded(TENANT_NOT_READY),
            IngestError::WriterStopped => ErrorKind::Unavailable.class(),
            IngestError::OutcomeUnknown(_) => ErrorKind::Unavailable.coded(COMMIT_OUTCOME_UNKNOWN),
            IngestError::KeyInProgress { .. } => ErrorKind::Conflict.coded("push-in-progress"),
            IngestError::StorageFull(_) => ErrorKind::Unavailable.coded(tenancy::kind::STORAGE_FULL),
            // A push whose commit lost to another writer was not acknowledged: send it again.
            IngestError::CommitFailed(_) | IngestError::Delta(DeltaError::Conflict(_)) => {
                ErrorKind::Unavailable.coded("commit-failed")
            }
            IngestError::Kafka(_) => ErrorKind::Internal.class(),
            IngestError::Store(e) => e.class(),
            IngestError::Catalog(e) => e.class(),
            IngestError::Delta(e) => e.class(),
        }
    }
}
