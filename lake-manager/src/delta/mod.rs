//! Delta Lake tables through the `deltalake` crate: creating them, reading their state from
//! the Delta snapshot, schema evolution, appends, and maintenance.

pub mod append;
pub mod contained;
pub mod durable;
pub mod erase;
mod error;
pub mod maintain;
pub mod metadata;
pub mod schema;
pub mod tables;

use std::collections::HashMap;

pub use error::DeltaError;

/// How the plane reaches table storage with `object_store`, from the same settings as the
/// bucket administration.
#[derive(Debug, Clone, Default)]
pub struct DeltaSettings {
    /// `object_store` options (endpoint, region, addressing); credentials come from the
    /// standard AWS chain in the environment, as for the SDK.
    pub storage_options: HashMap<String, String>,
    /// Files below this many bytes count as small in describe and the "what is due" decision.
    pub small_file_bytes: u64,
}

/// Default small-file threshold: 16 MiB.
pub const DEFAULT_SMALL_FILE_BYTES: u64 = 16 * 1024 * 1024;

impl DeltaSettings {
    /// Settings for local storage: nothing to configure.
    pub fn local() -> Self {
        Self {
            storage_options: HashMap::new(),
            small_file_bytes: DEFAULT_SMALL_FILE_BYTES,
        }
    }

    /// Settings for an S3 API at `endpoint` (None for AWS) in `region`.
    pub fn s3(endpoint: Option<&str>, region: &str, path_style: bool) -> Self {
        // Registering twice is harmless; it makes s3:// URLs resolvable by deltalake.
        deltalake::aws::register_handlers(None);
        let mut options = HashMap::new();
        options.insert("AWS_REGION".to_owned(), region.to_owned());
        if let Some(endpoint) = endpoint {
            options.insert("AWS_ENDPOINT_URL".to_owned(), endpoint.to_owned());
            if endpoint.starts_with("http://") {
                options.insert("AWS_ALLOW_HTTP".to_owned(), "true".to_owned());
            }
        }
        options.insert(
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST".to_owned(),
            (!path_style).to_string(),
        );
        Self {
            storage_options: options,
            small_file_bytes: DEFAULT_SMALL_FILE_BYTES,
        }
    }
}
