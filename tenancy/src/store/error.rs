//! The store layer's error type.

use crate::kind::{Class, Classify, DATABASE_UNAVAILABLE, ErrorKind};

/// Errors from the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured URL cannot be used.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),

    /// The database could not be reached when opening the store.
    #[error("cannot connect to {url}")]
    Connect {
        /// The URL, with any password redacted.
        url: String,
        /// Why the connection failed.
        #[source]
        source: sqlx::Error,
    },

    /// The database is unreachable or overloaded right now; the caller may retry.
    #[error("metadata database unavailable")]
    Unavailable(#[source] sqlx::Error),

    /// Applying migrations failed.
    #[error("migrating the metadata database failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// Taking the migration lock failed.
    #[error("taking the migration lock {path} failed")]
    MigrationLock {
        /// The lock file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Taking the leadership lock file failed (not: another process holds it).
    #[error("taking the leadership lock {path} failed")]
    LeaderLock {
        /// The lock file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A row held a value this binary cannot read (a corrupt or foreign database).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),

    /// A unique key already exists.
    #[error("{0} already exists")]
    Conflict(String),

    /// The key is reserved for now (a deleted tenant's id); the message says until when.
    #[error("{0}")]
    Reserved(String),

    /// A quota would be exceeded.
    #[error("quota exceeded: {0}")]
    Quota(String),

    /// Another holder has the resource (a maintenance lease, for one).
    #[error("{0}")]
    Busy(String),

    /// The write would break a limit the caller asked the store to hold (a shared shard's
    /// lifecycle rule budget); the message says which.
    #[error("{0}")]
    OverBudget(String),

    /// Any other database error: a bug or a schema mismatch.
    #[error("metadata query failed")]
    Query(#[source] sqlx::Error),

    /// The error of a transaction shared by several callers (a group commit), each of which
    /// gets it.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),

    /// A group commit's writer stopped without saying whether the item was written.
    #[error("the metadata write was lost: its writer stopped")]
    Lost,
}

impl StoreError {
    /// True when the failure is the database being away, not the request or the data.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Shared(e) => e.is_unavailable(),
            e => matches!(e, StoreError::Unavailable(_) | StoreError::Connect { .. }),
        }
    }
}

impl StoreError {
    /// True when the database refused the written values themselves (a constraint, a value it
    /// cannot store), so the same write without them could succeed.
    pub fn refuses_the_data(&self) -> bool {
        match self {
            StoreError::Shared(e) => e.refuses_the_data(),
            StoreError::Query(sqlx::Error::Database(db)) => {
                // Unique, foreign-key, not-null and check violations; PostgreSQL's class 22
                // (data exceptions: a NUL byte in text, a value out of range).
                db.kind() != sqlx::error::ErrorKind::Other || db.code().is_some_and(|c| c.starts_with("22"))
            }
            _ => false,
        }
    }
}

impl Classify for StoreError {
    fn class(&self) -> Class {
        match self {
            StoreError::Shared(e) => e.class(),
            StoreError::Conflict(_) => ErrorKind::Conflict.class(),
            StoreError::Quota(_) => ErrorKind::Quota.class(),
            StoreError::Reserved(_) => ErrorKind::Conflict.coded("id-reserved"),
            StoreError::Busy(_) => ErrorKind::Conflict.coded("busy"),
            StoreError::OverBudget(_) => ErrorKind::Conflict.class(),
            e if e.is_unavailable() => ErrorKind::Unavailable.coded(DATABASE_UNAVAILABLE),
            _ => ErrorKind::Internal.class(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_transient(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Query(e)
        }
    }
}

/// Classifies errors that mean "the database is away or busy" rather than "the query is wrong".
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            // PostgreSQL class 08 is connection exceptions; 57P01..57P03 are shutdown/startup;
            // SQLite 5 and 6 are SQLITE_BUSY and SQLITE_LOCKED.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "5" | "6")
        }
        _ => false,
    }
}
