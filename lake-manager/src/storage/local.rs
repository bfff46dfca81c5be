//! The local-directory backend: buckets are folders under one root.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{ObjectStorageAdmin, StorageError, StorageKind};

/// A lake rooted in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Opens the root, creating it if it does not exist.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let not_writable = |source| StorageError::NotWritable {
            root: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(not_writable)?;
        // Absolute, so URIs stay valid whatever the process's working directory is later.
        let root = std::fs::canonicalize(root).map_err(not_writable)?;
        Ok(Self { root })
    }

    /// The absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl ObjectStorageAdmin for LocalStorage {
    fn kind(&self) -> StorageKind {
        StorageKind::Local
    }

    fn root_uri(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn bucket_uri(&self, bucket: &str) -> String {
        format!("file://{}/{bucket}", self.root.display())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        // A unique name per probe, so concurrent readiness checks never trip over each other.
        let probe = self
            .root
            .join(format!(".lakeplane-probe-{}", uuid::Uuid::now_v7()));
        let not_writable = |source| StorageError::NotWritable {
            root: self.root.clone(),
            source,
        };
        tokio::fs::write(&probe, b"ok").await.map_err(not_writable)?;
        tokio::fs::remove_file(&probe).await.map_err(not_writable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_root_and_probes_without_leaving_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(&dir.path().join("lake/nested")).expect("open");
        assert!(storage.root().is_dir());
        assert!(storage.root_uri().starts_with("file:///"));
        storage.check_writable().await.expect("writable");
        assert_eq!(
            std::fs::read_dir(storage.root()).expect("list").count(),
            0,
            "probe removed"
        );
    }

    #[tokio::test]
    async fn vanished_root_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("lake");
        let storage = LocalStorage::open(&root).expect("open");
        // A file where the root directory was: writes fail even for root, which ignores modes.
        std::fs::remove_dir(&root).expect("remove root");
        std::fs::write(&root, b"not a directory").expect("replace with file");
        let result = storage.check_writable().await;
        assert!(
            matches!(result, Err(StorageError::NotWritable { .. })),
            "{result:?}"
        );
    }
}
