//! Who and where: tenants, placement, roles, tokens, audit, and the metadata store behind them.
//!
//! Domain logic here is plain functions and types, testable without I/O. I/O sits behind the
//! [`store::MetadataStore`] trait, with one implementation per backend.

pub mod audit;
pub mod credentials;
pub mod datatype;
pub mod disclosure;
pub mod erasure;
pub mod erasure_receipt;
pub mod expiring;
pub mod grants;
pub mod iam;
pub mod kind;
pub mod last_read;
pub mod maintenance;
pub mod pagination;
pub mod pipeline;
pub mod placement;
pub mod policy;
pub mod rate;
pub mod role;
pub mod rollup;
pub mod share;
pub mod store;
pub mod stream;
pub mod table;
pub mod tenant;
pub mod token;
pub mod validation;
pub mod volume;
pub mod worker;
pub mod zone;

/// The current time at the microsecond precision both metadata backends store, so values
/// read back compare equal to the values written.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// An error and all its causes on one line, for logs and recorded reasons.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
