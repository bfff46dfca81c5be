//! Object storage backends behind one admin trait.

mod local;
mod s3;

use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::lifecycle::LifecycleDocument;
use tenancy::kind::{Class, Classify, ErrorKind, STORAGE_UNAVAILABLE};

pub use local::LocalStorage;
pub use s3::{CopySettings, S3Settings, S3Storage, multipart_etag};

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
    /// An operation on a bucket or key failed.
    #[error("{operation} {target} failed")]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// The bucket or key.
        target: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bucket or prefix name that would escape the root.
    #[error("invalid storage name {0:?}")]
    InvalidName(String),
    /// The storage service could not be reached, timed out or answered that it is failing or
    /// overloaded (S3 5xx, throttling); retrying later may work.
    #[error("{operation} {target} failed: the storage is unavailable")]
    Unavailable {
        /// What was attempted.
        operation: &'static str,
        /// The bucket or key.
        target: String,
        /// The SDK's error and causes.
        #[source]
        source: std::io::Error,
    },
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

impl Classify for StorageError {
    fn class(&self) -> Class {
        match self {
            // An unwritable root is the storage being down, as `/readyz` reports it.
            StorageError::Unavailable { .. } | StorageError::NotWritable { .. } => {
                ErrorKind::Unavailable.coded(STORAGE_UNAVAILABLE)
            }
            StorageError::Io { .. } | StorageError::InvalidName(_) => ErrorKind::Internal.class(),
        }
    }
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

    /// Creates the bucket if it does not exist; true when this call created it.
    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, StorageError>;

    /// Applies public-access block, default encryption, ownership controls and tags; returns
    /// what was done, or why nothing applies.
    async fn harden(&self, bucket: &str, tags: &[(String, String)]) -> Result<String, StorageError>;

    /// Whether lifecycle rules take effect here; `Err` carries the reason when they do not.
    fn lifecycle_support(&self) -> Result<(), &'static str>;

    /// Puts the lifecycle document on the bucket (a no-op where rules are not supported).
    async fn put_lifecycle(&self, bucket: &str, document: &LifecycleDocument) -> Result<(), StorageError>;

    /// The lifecycle document currently on the bucket, as the storage reports it.
    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<serde_json::Value>, StorageError>;

    /// Creates the prefix marker (`zone/tenant/`) so the zone exists before any table.
    async fn ensure_prefix(&self, bucket: &str, prefix: &str) -> Result<(), StorageError>;

    /// Deletes every object (and version) under the prefix; returns how many.
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError>;

    /// Deletes an empty-or-not bucket and everything in it; returns the objects removed.
    async fn delete_bucket(&self, bucket: &str) -> Result<u64, StorageError>;

    /// Bytes and objects under the prefix, by storage class.
    async fn usage(&self, bucket: &str, prefix: &str) -> Result<Vec<ClassUsage>, StorageError>;

    /// Every object under the prefix with its size and a content fingerprint (ETag on S3,
    /// SHA-256 on local storage), for copying and verifying migrations.
    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError>;

    /// Copies one object to the same key in another bucket, server-side where possible, and
    /// returns the fingerprint the copy reports (what listing the target must then show).
    async fn copy_object(
        &self,
        from_bucket: &str,
        object: &ObjectInfo,
        to_bucket: &str,
    ) -> Result<String, StorageError>;

    /// A digest of the object's whole content that equal bytes share however they were written
    /// (a multipart ETag depends on the part boundaries, so two copies of the same bytes can
    /// list differently). With `stored`, the store's own full-object checksum where it keeps
    /// one (`crc64nvme:<base64>` on S3; no bytes are read); otherwise, or where it keeps none,
    /// `sha256:<hex>` of the bytes, read through once.
    async fn content_digest(&self, bucket: &str, key: &str, stored: bool) -> Result<String, StorageError>;

    /// A URL that lets whoever holds it GET the object until `expires_in` has passed; `None`
    /// where the backend has no such URLs (local storage, where the plane signs its own).
    async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StorageError>;
}

impl ClassUsage {
    /// Nothing stored in `class`.
    pub fn empty(storage_class: tenancy::zone::StorageClass) -> Self {
        Self {
            storage_class,
            bytes: 0,
            objects: 0,
            small_objects: 0,
            small_bytes: 0,
        }
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key inside the bucket.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Content fingerprint; equal fingerprints mean equal bytes for the same backend.
    pub fingerprint: String,
}

impl ObjectInfo {
    /// Whether the fingerprint is a digest of the whole content (SHA-256, or a single-part
    /// ETag) rather than of part boundaries (a multipart ETag ends in `-<parts>`), and so can
    /// be compared between two copies of the same bytes.
    pub fn has_content_digest(&self) -> bool {
        !self.fingerprint.trim_matches('"').contains('-')
    }
}

/// Stored bytes and objects in one storage class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ClassUsage {
    /// The class.
    pub storage_class: tenancy::zone::StorageClass,
    /// Total bytes.
    pub bytes: u64,
    /// Number of objects.
    pub objects: u64,
    /// Objects under 128 KB, billed as 128 KB in IA and Glacier IR.
    pub small_objects: u64,
    /// Bytes in those small objects.
    pub small_bytes: u64,
}
