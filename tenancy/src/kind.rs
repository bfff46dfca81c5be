//! What kind of failure an error is, decided once, where the error is made.
//!
//! Each layer's error type implements [`Classify`]; an error that wraps another delegates to
//! it, so a conflict in the store is a conflict however many layers it crosses. The HTTP layer
//! maps a [`Class`] to a status and a problem type in one place (`api::error`).

/// How a caller should react to a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// What was asked for does not exist.
    NotFound,
    /// The request clashes with the current state (a name taken, a concurrent change, a
    /// tenant not ready, a lease held); repeating it unchanged will not help.
    Conflict,
    /// A quota would be exceeded.
    Quota,
    /// The request's content is invalid.
    Invalid,
    /// The request is larger than allowed.
    TooLarge,
    /// The caller sends more than allowed right now; retry later.
    Throttled,
    /// A dependency (the database, the storage, STS, a writer) is down or overloaded; retry
    /// later.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorKind {
    /// The kind with its general code.
    pub const fn class(self) -> Class {
        let code = match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Quota => "quota-exceeded",
            ErrorKind::Invalid => "validation",
            ErrorKind::TooLarge => "payload-too-large",
            ErrorKind::Throttled => "rate-limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        };
        Class { kind: self, code }
    }

    /// The kind with a more specific code, such as `database-unavailable`.
    pub const fn coded(self, code: &'static str) -> Class {
        Class { kind: self, code }
    }
}

/// An error's kind and its code: a stable, lowercase name clients may branch on (it ends the
/// problem `type` URI). The code refines the kind; it never contradicts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// How to react.
    pub kind: ErrorKind,
    /// Which failure, precisely.
    pub code: &'static str,
}

/// An error that knows its class.
pub trait Classify {
    /// This error's class; wrappers return the class of the error they wrap.
    fn class(&self) -> Class;

    /// Shorthand for `self.class().kind`.
    fn kind(&self) -> ErrorKind {
        self.class().kind
    }
}

/// The code of a database that is away or overloaded.
pub const DATABASE_UNAVAILABLE: &str = "database-unavailable";
/// The code of an object storage that is away or overloaded.
pub const STORAGE_UNAVAILABLE: &str = "storage-unavailable";
/// The code of a local filesystem that has no room left for the write.
pub const STORAGE_FULL: &str = "storage-full";
/// The code of a tenant whose storage cannot be used right now (provisioning, migrating).
pub const TENANT_NOT_READY: &str = "tenant-not-ready";
