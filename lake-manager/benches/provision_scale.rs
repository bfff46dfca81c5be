//! Scale check: provision many shared tenants against the moto server and report the time,
//! the S3 and IAM calls per tenant (they must not grow with the tenant count) and the
//! lifecycle rules per shard (3 plus overrides, not 3 × tenants).
//!
//! Run: `scripts/moto-server` then
//! `LAKEPLANE_TEST_S3_ENDPOINT=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=testing \
//!  AWS_SECRET_ACCESS_KEY=testing cargo bench -p lake-manager --bench provision_scale`
//! (`TENANTS` overrides 2000). Baseline, same run: the latency of one PutObject on moto.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lake_manager::identity::{AwsIam, IamAdmin};
use lake_manager::lifecycle::LifecycleDocument;
use lake_manager::provision::{IamSettings, ProvisionSettings, Provisioner};
use lake_manager::storage::{
    ClassUsage, ObjectInfo, ObjectStorageAdmin, S3Settings, S3Storage, StorageError, StorageKind,
};

use tenancy::placement::{Placement, PlacementKind, choose_shard};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend};
use tenancy::tenant::TenantStatus;
use tenancy::zone::ZonesConfig;

/// Counts calls; each trait method here is one S3 (or IAM) request, except `ensure_bucket`
/// (HEAD, plus CREATE when absent) and `harden` (4 requests), counted as such.
struct Counting<T> {
    inner: T,
    calls: AtomicU64,
}

impl<T> Counting<T> {
    fn add(&self, n: u64) {
        self.calls.fetch_add(n, Ordering::Relaxed);
    }
}

#[async_trait]
impl ObjectStorageAdmin for Counting<S3Storage> {
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
        self.add(1);
        self.inner.check_writable().await
    }
    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, StorageError> {
        let created = self.inner.ensure_bucket(bucket).await?;
        self.add(if created { 2 } else { 1 });
        Ok(created)
    }
    async fn harden(&self, bucket: &str, tags: &[(String, String)]) -> Result<String, StorageError> {
        self.add(4);
        self.inner.harden(bucket, tags).await
    }
    fn lifecycle_support(&self) -> Result<(), &'static str> {
        self.inner.lifecycle_support()
    }
    async fn put_lifecycle(&self, bucket: &str, document: &LifecycleDocument) -> Result<(), StorageError> {
        self.add(1);
        self.inner.put_lifecycle(bucket, document).await
    }
    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<serde_json::Value>, StorageError> {
        self.add(1);
        self.inner.get_lifecycle(bucket).await
    }
    async fn ensure_prefix(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        self.add(1);
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

#[async_trait]
impl IamAdmin for Counting<AwsIam> {
    async fn ensure_role(
        &self,
        name: &str,
        trust: &serde_json::Value,
        boundary: Option<&str>,
    ) -> Result<bool, StorageError> {
        let created = self.inner.ensure_role(name, trust, boundary).await?;
        self.add(if created { 1 } else { 2 });
        Ok(created)
    }
    async fn put_policy(&self, role: &str, policy: &serde_json::Value) -> Result<(), StorageError> {
        self.add(1);
        self.inner.put_policy(role, policy).await
    }
    async fn delete_role(&self, name: &str) -> Result<(), StorageError> {
        self.inner.delete_role(name).await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tenants: usize = std::env::var("TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let endpoint = std::env::var("LAKEPLANE_TEST_S3_ENDPOINT")
        .expect("LAKEPLANE_TEST_S3_ENDPOINT (run scripts/moto-server)");
    let capacity = 500u32;
    let prefix = format!("sc{}", &uuid::Uuid::now_v7().simple().to_string()[22..]);
    let settings = S3Settings {
        endpoint: Some(endpoint.clone()),
        region: "eu-west-1".into(),
        path_style: true,
        kms_key_id: None,
        copy: Default::default(),
    };
    let s3 = Arc::new(Counting {
        inner: S3Storage::connect(settings.clone()).await,
        calls: AtomicU64::new(0),
    });
    let iam = Arc::new(Counting {
        inner: AwsIam::connect("eu-west-1", Some(&endpoint)).await,
        calls: AtomicU64::new(0),
    });
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let provisioner = Provisioner::new(
        store.clone(),
        s3.clone(),
        Some(iam.clone()),
        ProvisionSettings {
            bucket_prefix: prefix.clone(),
            zones: ZonesConfig::default(),
            iam: Some(IamSettings {
                broker_principal: "arn:aws:iam::123456789012:role/broker".into(),
                permissions_boundary: None,
            }),
            attempts: 3,
            backoff: Duration::from_millis(50),
            migration_grace: Duration::from_secs(0),
            migration_give_up: Duration::from_secs(3600),
        },
    );

    // Baseline: one PutObject round trip on moto, same run.
    s3.inner
        .ensure_bucket(&format!("{prefix}-baseline"))
        .await
        .expect("bucket");
    let baseline_start = Instant::now();
    for i in 0..200 {
        s3.inner
            .ensure_prefix(&format!("{prefix}-baseline"), &format!("k{i}/"))
            .await
            .expect("put");
    }
    let put_latency = baseline_start.elapsed() / 200;

    let mut fill: Vec<u32> = Vec::new();
    let mut per_tenant = Vec::with_capacity(tenants);
    let started = Instant::now();
    for i in 0..tenants {
        let shard = choose_shard(&fill, capacity);
        if fill.len() <= shard as usize {
            fill.push(0);
        }
        fill[shard as usize] += 1;
        let placement = Placement {
            kind: PlacementKind::Shared,
            shard: Some(shard),
            reason: "scale".into(),
        };
        let id = common::add_tenant(&store, &format!("tenant-{i:05}"), placement)
            .await
            .id;
        let before = (
            s3.calls.load(Ordering::Relaxed),
            iam.calls.load(Ordering::Relaxed),
        );
        assert_eq!(
            provisioner.provision(&id).await.expect("provision"),
            TenantStatus::Ready
        );
        per_tenant.push((
            s3.calls.load(Ordering::Relaxed) - before.0,
            iam.calls.load(Ordering::Relaxed) - before.1,
        ));
    }
    let elapsed = started.elapsed();
    let buckets = store.list_buckets().await.expect("buckets");
    let rules: Vec<usize> = buckets
        .iter()
        .map(|b| {
            let doc: serde_json::Value =
                serde_json::from_str(b.desired_lifecycle.as_deref().unwrap_or("{}")).unwrap_or_default();
            doc["Rules"].as_array().map(Vec::len).unwrap_or(0)
        })
        .collect();
    let s3_calls: Vec<u64> = per_tenant.iter().map(|c| c.0).collect();
    let iam_calls: Vec<u64> = per_tenant.iter().map(|c| c.1).collect();
    let stats = |v: &[u64]| {
        (
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0),
        )
    };
    let (s3_min, s3_max) = stats(&s3_calls);
    let (iam_min, iam_max) = stats(&iam_calls);
    let first_half = &s3_calls[..tenants / 2];
    let second_half = &s3_calls[tenants / 2..];
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    println!(
        "| tenants | shards | total | per tenant | S3 calls/tenant (min–max; mean 1st half / 2nd half) | IAM calls/tenant (min–max) | lifecycle rules per shard | baseline: one PutObject on moto |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {tenants} | {} | {:.1} s | {:.1} ms | {s3_min}–{s3_max}; {:.2} / {:.2} | {iam_min}–{iam_max} | {:?} | {:.2} ms |",
        buckets.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / tenants as f64,
        mean(first_half),
        mean(second_half),
        rules,
        put_latency.as_secs_f64() * 1e3,
    );
    store.close().await;
    db.drop_database().await;
}
