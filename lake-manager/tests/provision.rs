//! The provisioning saga against a real metadata store (SQLite and PostgreSQL) and real local
//! storage. Fault injection wraps the local backend in a test-only helper that fails one
//! operation, as a crash or an outage at that step would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[path = "common/mod.rs"]
mod common;

use async_trait::async_trait;
use common::add_tenant;
use lake_manager::lifecycle::LifecycleDocument;
use lake_manager::provision::{ProvisionSettings, Provisioner, Step};
use lake_manager::storage::{
    ClassUsage, LocalStorage, ObjectInfo, ObjectStorageAdmin, StorageError, StorageKind,
};

use tenancy::both_backends;
use tenancy::placement::{Placement, PlacementKind};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend};
use tenancy::tenant::TenantStatus;
use tenancy::zone::ZonesConfig;

/// Test helper, never a production backend: local storage that fails one operation.
struct FailingAt {
    inner: LocalStorage,
    step: Step,
    armed: AtomicBool,
}

impl FailingAt {
    fn fail(&self, step: Step) -> Result<(), StorageError> {
        if self.step == step && self.armed.load(Ordering::SeqCst) {
            return Err(StorageError::Io {
                operation: "injected",
                target: step.as_str().to_owned(),
                source: std::io::Error::other("injected fault"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStorageAdmin for FailingAt {
    fn kind(&self) -> StorageKind {
        self.inner.kind()
    }
    fn root_uri(&self) -> String {
        self.inner.root_uri()
    }
    fn bucket_uri(&self, bucket: &str) -> String {
        self.inner.bucket_uri(bucket)
    }
    async fn check_writable(&self) -> Result<(), StorageError> {
        self.inner.check_writable().await
    }
    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, StorageError> {
        self.fail(Step::Bucket)?;
        self.inner.ensure_bucket(bucket).await
    }
    async fn harden(&self, bucket: &str, tags: &[(String, String)]) -> Result<String, StorageError> {
        self.fail(Step::Hardening)?;
        self.inner.harden(bucket, tags).await
    }
    fn lifecycle_support(&self) -> Result<(), &'static str> {
        self.inner.lifecycle_support()
    }
    async fn put_lifecycle(&self, bucket: &str, document: &LifecycleDocument) -> Result<(), StorageError> {
        self.fail(Step::Lifecycle)?;
        self.inner.put_lifecycle(bucket, document).await
    }
    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<serde_json::Value>, StorageError> {
        self.inner.get_lifecycle(bucket).await
    }
    async fn ensure_prefix(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        self.fail(Step::ZoneRoots)?;
        self.inner.ensure_prefix(bucket, prefix).await
    }
    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        self.inner.delete_prefix(bucket, prefix).await
    }
    async fn delete_bucket(&self, bucket: &str) -> Result<u64, StorageError> {
        self.inner.delete_bucket(bucket).await
    }
    async fn usage(&self, bucket: &str, prefix: &str) -> Result<Vec<ClassUsage>, StorageError> {
        self.inner.usage(bucket, prefix).await
    }
    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.inner.list_objects(bucket, prefix).await
    }
    async fn content_digest(&self, bucket: &str, key: &str, stored: bool) -> Result<String, StorageError> {
        self.inner.content_digest(bucket, key, stored).await
    }
    async fn copy_object(
        &self,
        from_bucket: &str,
        object: &ObjectInfo,
        to_bucket: &str,
    ) -> Result<String, StorageError> {
        self.inner.copy_object(from_bucket, object, to_bucket).await
    }

    async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StorageError> {
        self.inner.presigned_get(bucket, key, expires_in).await
    }
}

fn settings() -> ProvisionSettings {
    ProvisionSettings {
        bucket_prefix: "lakeplane".to_owned(),
        zones: ZonesConfig::default(),
        iam: None,
        attempts: 2,
        backoff: Duration::from_millis(10),
        migration_grace: Duration::from_secs(0),
        migration_give_up: Duration::from_secs(3600),
    }
}

fn dirs(path: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn a_fault_at_any_step_resumes_without_duplicates(backend: Backend) {
    for failing in [Step::Bucket, Step::Hardening, Step::Lifecycle, Step::ZoneRoots] {
        let db = TestDatabase::new(backend).await;
        let store = store::connect(&db.url, &Default::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let lake = tempfile::tempdir().expect("lake");
        let local = LocalStorage::open(lake.path()).expect("open");
        let shared = Placement {
            kind: PlacementKind::Shared,
            shard: Some(0),
            reason: "test".into(),
        };
        let id = add_tenant(&store, "acme", shared).await.id;

        let broken = Arc::new(FailingAt {
            inner: local.clone(),
            step: failing,
            armed: AtomicBool::new(true),
        });
        let first = Provisioner::new(store.clone(), broken, None, settings());
        assert_eq!(first.provision(&id).await.expect("runs"), TenantStatus::Failed);
        let tenant = store.get_tenant(&id).await.expect("get").expect("exists");
        assert_eq!(tenant.status, TenantStatus::Failed);
        let reason = tenant.status_reason.unwrap_or_default();
        assert!(
            reason.contains(failing.as_str()) && reason.contains("injected"),
            "{reason}"
        );
        let done = store.provisioning_steps(&id).await.expect("steps");
        let expected_done: Vec<&str> = Step::ALL
            .iter()
            .take_while(|s| **s != failing)
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            done, expected_done,
            "steps before the fault are recorded, none after"
        );

        // A restart with healthy storage resumes from the failed step.
        let healthy = Provisioner::new(store.clone(), Arc::new(local.clone()), None, settings());
        assert_eq!(healthy.provision(&id).await.expect("runs"), TenantStatus::Ready);
        assert_eq!(
            healthy.provision(&id).await.expect("again"),
            TenantStatus::Ready,
            "a second run is harmless"
        );
        let steps = store.provisioning_steps(&id).await.expect("steps");
        assert_eq!(steps.len(), 5, "{steps:?}");
        assert_eq!(
            dirs(lake.path()),
            ["lakeplane-shared-0000"],
            "exactly one bucket ({failing:?})"
        );
        assert_eq!(
            dirs(&lake.path().join("lakeplane-shared-0000")),
            ["bronze", "gold", "silver"]
        );
        assert!(lake.path().join("lakeplane-shared-0000/gold/acme").is_dir());
        let buckets = store.list_buckets().await.expect("buckets");
        assert_eq!(buckets.len(), 1, "one bucket record");
        let desired: serde_json::Value =
            serde_json::from_str(buckets[0].desired_lifecycle.as_deref().unwrap_or("null")).expect("json");
        assert_eq!(
            desired["Rules"].as_array().map(Vec::len),
            Some(3),
            "one rule set: bronze, silver, abort"
        );
        assert!(!buckets[0].lifecycle_enforced);
        store.close().await;
        db.drop_database().await;
    }
}
both_backends!(a_fault_at_any_step_resumes_without_duplicates);

async fn dedicated_tenants_get_their_own_bucket_and_purge_removes_it(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let lake = tempfile::tempdir().expect("lake");
    let provisioner = Provisioner::new(
        store.clone(),
        Arc::new(LocalStorage::open(lake.path()).expect("open")),
        None,
        settings(),
    );
    let dedicated = Placement {
        kind: PlacementKind::Dedicated,
        shard: None,
        reason: "tier enterprise".into(),
    };
    let big = add_tenant(&store, "bigco", dedicated).await.id;
    let small = add_tenant(
        &store,
        "small",
        Placement {
            kind: PlacementKind::Shared,
            shard: Some(0),
            reason: "x".into(),
        },
    )
    .await
    .id;
    for id in [&big, &small] {
        assert_eq!(
            provisioner.provision(id).await.expect("runs"),
            TenantStatus::Ready
        );
    }
    assert_eq!(dirs(lake.path()), ["lakeplane-shared-0000", "lakeplane-t-bigco"]);
    std::fs::write(
        lake.path().join("lakeplane-t-bigco/bronze/bigco/data.parquet"),
        b"x",
    )
    .expect("write");
    std::fs::write(
        lake.path()
            .join("lakeplane-shared-0000/bronze/small/data.parquet"),
        b"x",
    )
    .expect("write");
    let tenant = store.get_tenant(&big).await.expect("get").expect("exists");
    let (objects, _) = provisioner.purge_storage(&tenant).await.expect("purge");
    assert_eq!(objects, 1);
    assert_eq!(
        dirs(lake.path()),
        ["lakeplane-shared-0000"],
        "the dedicated bucket is gone"
    );
    let tenant = store.get_tenant(&small).await.expect("get").expect("exists");
    provisioner.purge_storage(&tenant).await.expect("purge");
    assert!(!lake.path().join("lakeplane-shared-0000/bronze/small").exists());
    assert!(
        lake.path().join("lakeplane-shared-0000/bronze").is_dir(),
        "the shared shard stays"
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(dedicated_tenants_get_their_own_bucket_and_purge_removes_it);

/// Local storage enforces no lifecycle, so the drift repair leaves its buckets alone.
#[tokio::test]
async fn drift_repair_skips_storage_without_lifecycle() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let lake = tempfile::tempdir().expect("lake");
    let local = Arc::new(LocalStorage::open(lake.path()).expect("open"));
    let provisioner = Provisioner::new(store.clone(), local, None, settings());
    let shared = Placement {
        kind: PlacementKind::Shared,
        shard: Some(0),
        reason: "test".into(),
    };
    let tenant = add_tenant(&store, "local", shared).await;
    assert_eq!(
        provisioner.provision(&tenant.id).await.expect("runs"),
        TenantStatus::Ready
    );
    let bucket = store
        .get_bucket(&provisioner.bucket_of(&tenant))
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(
        provisioner.repair_drift(&bucket).await.expect("repair"),
        lake_manager::drift::Repair::Skipped("lifecycle not enforced by this storage")
    );
    assert!(provisioner.repair_all_drift().await.expect("pass").is_empty());
}
