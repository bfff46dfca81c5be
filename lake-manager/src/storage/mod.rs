//! Object storage backends behind one admin trait.

mod local;

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use local::LocalStorage;

/// Which object storage the lake lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A local directory in which buckets are folders (the embedded default).
    Local,
    /// Any S3-compatible API.
    S3,
}

impl StorageKind {
    /// The lowercase name used in config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Local => "local",
            StorageKind::S3 => "s3",
        }
    }
}

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage root could not be created, written or cleaned up.
    #[error("storage root {root} is not writable")]
    NotWritable {
        /// The root that failed.
        root: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Administrative access to the object storage that holds the lake.
#[async_trait]
pub trait ObjectStorageAdmin: Send + Sync + 'static {
    /// Which backend this is.
    fn kind(&self) -> StorageKind;

    /// Where the lake starts, as a URI (`file:///...` or `s3://...`).
    fn root_uri(&self) -> String;

    /// The URI of a bucket (a folder under the root, for local storage).
    fn bucket_uri(&self, bucket: &str) -> String;

    /// Proves the root accepts writes by writing and removing a probe object.
    async fn check_writable(&self) -> Result<(), StorageError>;
}
