//! The local-directory backend: buckets are folders under one root.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use super::{ClassUsage, ObjectStorageAdmin, StorageError, StorageKind};
use crate::lifecycle::LifecycleDocument;

/// Why lifecycle rules are computed but not enforced here.
pub const NO_STORAGE_CLASSES: &str = "local storage has no storage classes";

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

    /// The directory of a bucket or a key prefix inside it, refusing names that would escape
    /// the root (`..`, absolute paths).
    fn path(&self, bucket: &str, prefix: &str) -> Result<PathBuf, StorageError> {
        let relative = Path::new(bucket).join(prefix);
        if bucket.is_empty() || relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(StorageError::InvalidName(format!("{bucket}/{prefix}")));
        }
        Ok(self.root.join(relative))
    }
}

fn io(operation: &'static str, target: &Path) -> impl FnOnce(std::io::Error) -> StorageError + use<> {
    let target = target.display().to_string();
    move |source| StorageError::Io {
        operation,
        target,
        source,
    }
}

/// Counts the files under a directory (0 when it does not exist).
fn count_files(dir: &Path) -> std::io::Result<(u64, u64, u64, u64)> {
    let mut totals = (0, 0, 0, 0);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(totals),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // Writers rename temporary files into place and a migration removes old keys while
        // this walks: a file gone since it was listed is simply not counted.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.is_dir() {
            let (objects, bytes, small, small_bytes) = count_files(&entry.path())?;
            totals = (
                totals.0 + objects,
                totals.1 + bytes,
                totals.2 + small,
                totals.3 + small_bytes,
            );
        } else {
            totals.0 += 1;
            totals.1 += meta.len();
            if meta.len() < tenancy::zone::MIN_TIERED_OBJECT_BYTES {
                totals.2 += 1;
                totals.3 += meta.len();
            }
        }
    }
    Ok(totals)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            operation: "run",
            target: "blocking task".to_owned(),
            source: std::io::Error::other(e),
        })?
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

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, StorageError> {
        let path = self.path(bucket, "")?;
        if tokio::fs::try_exists(&path).await.map_err(io("stat", &path))? {
            return Ok(false);
        }
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(io("create bucket", &path))?;
        Ok(true)
    }

    async fn harden(&self, bucket: &str, _tags: &[(String, String)]) -> Result<String, StorageError> {
        self.path(bucket, "")?;
        Ok("not applicable: local storage has no public access, encryption settings or tags".to_owned())
    }

    fn lifecycle_support(&self) -> Result<(), &'static str> {
        Err(NO_STORAGE_CLASSES)
    }

    async fn put_lifecycle(&self, bucket: &str, _document: &LifecycleDocument) -> Result<(), StorageError> {
        // Never simulate a transition: the document is stored by the caller and shown as not enforced.
        self.path(bucket, "")?;
        Ok(())
    }

    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<serde_json::Value>, StorageError> {
        self.path(bucket, "")?;
        Ok(None)
    }

    async fn ensure_prefix(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        let path = self.path(bucket, prefix)?;
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(io("create prefix", &path))
    }

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let path = self.path(bucket, prefix)?;
        blocking(move || {
            let (objects, ..) = count_files(&path).map_err(io("list", &path))?;
            match std::fs::remove_dir_all(&path) {
                Ok(()) => Ok(objects),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(io("delete prefix", &path)(e)),
            }
        })
        .await
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<u64, StorageError> {
        self.delete_prefix(bucket, "").await
    }

    async fn usage(&self, bucket: &str, prefix: &str) -> Result<Vec<ClassUsage>, StorageError> {
        let path = self.path(bucket, prefix)?;
        let (objects, bytes, small_objects, small_bytes) =
            blocking(move || count_files(&path).map_err(io("list", &path))).await?;
        Ok(vec![ClassUsage {
            storage_class: tenancy::zone::StorageClass::Standard,
            bytes,
            objects,
            small_objects,
            small_bytes,
        }])
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<super::ObjectInfo>, StorageError> {
        let base = self.path(bucket, "")?;
        let dir = self.path(bucket, prefix)?;
        blocking(move || {
            let mut out = Vec::new();
            walk(&base, &dir, &mut out).map_err(io("list", &dir))?;
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
    }

    async fn presigned_get(
        &self,
        _bucket: &str,
        _key: &str,
        _expires_in: std::time::Duration,
    ) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn content_digest(&self, bucket: &str, key: &str, _stored: bool) -> Result<String, StorageError> {
        use sha2::Digest;
        let path = self.path(bucket, key)?;
        blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(io("open", &path))?;
            let mut hasher = sha2::Sha256::new();
            std::io::copy(&mut file, &mut hasher).map_err(io("read", &path))?;
            Ok(format!("sha256:{:x}", hasher.finalize()))
        })
        .await
    }

    async fn copy_object(
        &self,
        from_bucket: &str,
        object: &super::ObjectInfo,
        to_bucket: &str,
    ) -> Result<String, StorageError> {
        use sha2::Digest;
        let from = self.path(from_bucket, &object.key)?;
        let to = self.path(to_bucket, &object.key)?;
        // Outside every bucket (bucket names never start with a dot): a copy cut short by a
        // crash leaves its temporary file there, never among a table's files.
        let staging = self.root.join(".copying");
        blocking(move || {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io("create prefix", parent))?;
            }
            std::fs::create_dir_all(&staging).map_err(io("create staging", &staging))?;
            // Copy to a temporary name, then rename, so a crash never leaves a torn object.
            let temp = staging.join(uuid::Uuid::now_v7().simple().to_string());
            std::fs::copy(&from, &temp).map_err(io("copy", &from))?;
            let copied = std::fs::read(&temp).map_err(io("read", &temp))?;
            std::fs::rename(&temp, &to).map_err(io("rename", &to))?;
            Ok(format!("{:x}", sha2::Sha256::digest(&copied)))
        })
        .await
    }
}

/// Files under `dir`, with keys relative to `base`.
fn walk(base: &Path, dir: &Path, out: &mut Vec<super::ObjectInfo>) -> std::io::Result<()> {
    use sha2::Digest;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if entry.metadata()?.is_dir() {
            walk(base, &path, out)?;
        } else {
            let bytes = std::fs::read(&path)?;
            let key = path
                .strip_prefix(base)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            out.push(super::ObjectInfo {
                key,
                size: bytes.len() as u64,
                fingerprint: format!("{:x}", sha2::Sha256::digest(&bytes)),
            });
        }
    }
    Ok(())
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

    #[tokio::test]
    async fn buckets_prefixes_usage_and_deletion() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        assert!(storage.ensure_bucket("b1").await.expect("create"));
        assert!(!storage.ensure_bucket("b1").await.expect("again"), "idempotent");
        storage.ensure_prefix("b1", "bronze/acme/").await.expect("prefix");
        std::fs::write(
            dir.path().join("b1/bronze/acme/part-0.parquet"),
            vec![0u8; 200_000],
        )
        .expect("write");
        std::fs::write(dir.path().join("b1/bronze/acme/small.json"), b"{}").expect("write");
        let usage = storage.usage("b1", "bronze/acme/").await.expect("usage");
        assert_eq!(
            (usage[0].objects, usage[0].bytes, usage[0].small_objects),
            (2, 200_002, 1)
        );
        assert_eq!(
            storage.delete_prefix("b1", "bronze/acme/").await.expect("delete"),
            2
        );
        assert!(!dir.path().join("b1/bronze/acme").exists());
        assert_eq!(
            storage.delete_prefix("b1", "bronze/acme/").await.expect("again"),
            0
        );
        for bad in ["../etc", "/abs"] {
            assert!(
                matches!(
                    storage.ensure_bucket(bad).await,
                    Err(StorageError::InvalidName(_))
                ),
                "{bad}"
            );
        }
        assert!(storage.ensure_prefix("b1", "../../escape/").await.is_err());
    }
}
