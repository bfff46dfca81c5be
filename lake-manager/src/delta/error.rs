//! The Delta layer's error type.

use deltalake::kernel::transaction::TransactionError;

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
            source => DeltaError::Delta {
                operation,
                location: location.to_owned(),
                source: Box::new(source),
            },
        }
    }
}
