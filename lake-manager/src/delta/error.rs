//! The Delta layer's error type.

use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::object_store::client::{HttpError, HttpErrorKind};
use tenancy::kind::{Class, Classify, ErrorKind, STORAGE_FULL, STORAGE_UNAVAILABLE};

/// Why a Delta operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// The table's URI is not a valid URL.
    #[error("invalid table location {0}")]
    Location(String),
    /// No Delta table at the location.
    #[error("no Delta table at {0}")]
    NotATable(String),
    /// The stored schema has a type the API cannot describe.
    #[error("unsupported column type in {column}: {detail}")]
    UnsupportedType {
        /// The column.
        column: String,
        /// The type as Delta names it.
        detail: String,
    },
    /// Local storage failed.
    #[error("{operation} {path} failed")]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// Where.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be carried out on this table (named reason).
    #[error("{0}")]
    Refused(String),
    /// Another writer committed first and the retry budget ran out.
    #[error("concurrent commit on {0}; retry")]
    Conflict(String),
    /// The storage under the table could not be reached (refused, reset or timed-out
    /// connections); retrying later may work.
    #[error("delta operation {operation} on {location} failed: the storage is unreachable")]
    Unavailable {
        /// What was attempted.
        operation: &'static str,
        /// The table.
        location: String,
        /// The cause.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// The filesystem under the table has no room left (ENOSPC, or a quota): nothing was
    /// committed, and writes work again once space is freed.
    #[error("delta operation {operation} on {location} failed: no space left on the storage")]
    Full {
        /// What was attempted.
        operation: &'static str,
        /// The table.
        location: String,
        /// The cause.
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// deltalake failed.
    #[error("delta operation {operation} on {location} failed")]
    Delta {
        /// What was attempted.
        operation: &'static str,
        /// The table.
        location: String,
        /// The cause (boxed: deltalake's error is large and this travels in every Result).
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
}

impl DeltaError {
    /// Wraps a deltalake error, keeping conflicts recognisable.
    pub fn delta(operation: &'static str, location: &str, source: deltalake::DeltaTableError) -> Self {
        match source {
            deltalake::DeltaTableError::NotATable(_) => DeltaError::NotATable(location.to_owned()),
            deltalake::DeltaTableError::Transaction {
                source:
                    TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_),
            }
            | deltalake::DeltaTableError::VersionAlreadyExists(_) => {
                DeltaError::Conflict(location.to_owned())
            }
            source if no_space(&source) => DeltaError::Full {
                operation,
                location: location.to_owned(),
                source: Box::new(source),
            },
            source if unreachable(&source) => DeltaError::Unavailable {
                operation,
                location: location.to_owned(),
                source: Box::new(source),
            },
            source => DeltaError::Delta {
                operation,
                location: location.to_owned(),
                source: Box::new(source),
            },
        }
    }
}

/// Whether an I/O error says the filesystem is full (ENOSPC) or a quota is used up (EDQUOT).
pub fn is_no_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(28 | 122))
}

/// Whether a deltalake error comes from a full filesystem. Local writes fail inside
/// object_store, whose errors do not always expose the I/O error as a source, so the message
/// of the OS error ("No space left on device") is recognised too.
fn no_space(error: &deltalake::DeltaTableError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(is_no_space) {
            return true;
        }
        cause = e.source();
    }
    let text = tenancy::error_chain(error);
    text.contains("No space left on device") || text.contains("Disk quota exceeded")
}

/// Whether the storage could not be reached: a connection refused, reset or timed out below
/// object_store's retries. deltalake reports it as an object_store error, directly or inside
/// a kernel error (which does not expose it as its source, hence the match).
fn unreachable(error: &deltalake::DeltaTableError) -> bool {
    let store = match error {
        deltalake::DeltaTableError::ObjectStore { source } => source,
        deltalake::DeltaTableError::KernelError(delta_kernel::Error::ObjectStore(source)) => source,
        _ => return false,
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(store);
    while let Some(e) = cause {
        if let Some(http) = e.downcast_ref::<HttpError>()
            && matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            )
        {
            return true;
        }
        cause = e.source();
    }
    false
}

impl Classify for DeltaError {
    fn class(&self) -> Class {
        match self {
            DeltaError::Refused(_) | DeltaError::Conflict(_) => ErrorKind::Conflict.class(),
            DeltaError::Unavailable { .. } => ErrorKind::Unavailable.coded(STORAGE_UNAVAILABLE),
            DeltaError::Full { .. } => ErrorKind::Unavailable.coded(STORAGE_FULL),
            DeltaError::Io { source, .. } if is_no_space(source) => {
                ErrorKind::Unavailable.coded(STORAGE_FULL)
            }
            DeltaError::Location(_)
            | DeltaError::NotATable(_)
            | DeltaError::UnsupportedType { .. }
            | DeltaError::Io { .. }
            | DeltaError::Delta { .. } => ErrorKind::Internal.class(),
        }
    }
}
