//! Migration throughput on the moto server: a shared tenant with 10,000 objects moves to a
//! dedicated bucket (drain, provisioning of the bucket, listing, server-side copy, verification
//! by listing, switch; 16 copies in flight). Baseline, same run: a plain boto3 loop of
//! `copy_object` over the same objects into another bucket, one at a time.
//!
//! Run: `scripts/moto-server` then
//! `LAKEPLANE_TEST_S3_ENDPOINT=http://127.0.0.1:5055 AWS_ACCESS_KEY_ID=testing \
//!  AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 \
//!  LAKEPLANE_PYTHON=/var/tmp/lakeplane-venv/bin/python \
//!  cargo bench -p lake-manager --bench migration` (`OBJECTS` overrides 10000, `OBJECT_BYTES`
//! 8192).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lake_manager::provision::{ProvisionSettings, Provisioner};
use lake_manager::storage::{ObjectStorageAdmin, S3Settings, S3Storage};
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::placement::{Placement, PlacementKind};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend};
use tenancy::tenant::TenantStatus;
use tenancy::zone::ZonesConfig;

/// The baseline: boto3 `copy_object` for every key under the prefix, one at a time.
const BOTO3_COPY: &str = r#"
import sys, time, boto3
endpoint, source, prefix, target = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1")
s3.create_bucket(Bucket=target, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=source, Prefix=prefix) for o in p.get("Contents", [])]
started = time.perf_counter()
for key in keys:
    s3.copy_object(Bucket=target, Key=key, CopySource={"Bucket": source, "Key": key})
print(len(keys), time.perf_counter() - started)
"#;

fn rate(objects: usize, bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64();
    format!(
        "{:.1} s, {:.0} objects/s, {:.2} MB/s",
        secs,
        objects as f64 / secs,
        bytes as f64 / 1e6 / secs
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let objects: usize = std::env::var("OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let object_bytes: usize = std::env::var("OBJECT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8192);
    let endpoint = std::env::var("LAKEPLANE_TEST_S3_ENDPOINT")
        .expect("LAKEPLANE_TEST_S3_ENDPOINT (run scripts/moto-server)");
    let python = std::env::var("LAKEPLANE_PYTHON").expect("LAKEPLANE_PYTHON (a venv with boto3)");
    let prefix = format!("mg{}", &uuid::Uuid::now_v7().simple().to_string()[22..]);
    let s3 = std::sync::Arc::new(
        S3Storage::connect(S3Settings {
            endpoint: Some(endpoint.clone()),
            region: "eu-west-1".into(),
            path_style: true,
            kms_key_id: None,
            copy: Default::default(),
        })
        .await,
    );
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let provisioner = Provisioner::new(
        store.clone(),
        s3.clone(),
        None,
        ProvisionSettings {
            bucket_prefix: prefix.clone(),
            zones: ZonesConfig::default(),
            iam: None,
            attempts: 3,
            backoff: Duration::from_millis(50),
            migration_grace: Duration::from_secs(3600),
            migration_give_up: Duration::from_secs(3600),
        },
    );
    let shared = Placement {
        kind: PlacementKind::Shared,
        shard: Some(0),
        reason: "bench".into(),
    };
    let tenant = common::add_tenant(&store, "mover", shared).await;
    assert_eq!(
        provisioner.provision(&tenant.id).await.expect("provision"),
        TenantStatus::Ready
    );

    // The tenant's objects: distinct bytes each, written 32 at a time.
    let shard = format!("{prefix}-shared-0000");
    let client = s3.client();
    let body: Vec<u8> = (0..object_bytes).map(|i| (i * 31 % 251) as u8).collect();
    futures_util::stream::iter(0..objects)
        .map(|i| {
            let mut bytes = body.clone();
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            client
                .put_object()
                .bucket(&shard)
                .key(format!("bronze/mover/t/part-{i:05}.parquet"))
                .body(bytes.into())
                .send()
        })
        .buffer_unordered(32)
        .for_each(|r| async move {
            r.expect("put");
        })
        .await;
    let listed = s3.list_objects(&shard, "bronze/mover/").await.expect("list");
    let bytes: u64 = listed.iter().map(|o| o.size).sum();

    // Baseline first, on the same objects.
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            BOTO3_COPY,
            &endpoint,
            &shard,
            "bronze/mover/",
            &format!("{prefix}-baseline"),
        ])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "boto3 baseline failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let mut fields = printed.split_whitespace();
    let copied: usize = fields.next().and_then(|n| n.parse().ok()).expect("count");
    let secs: f64 = fields.next().and_then(|n| n.parse().ok()).expect("seconds");
    assert_eq!(copied, listed.len());
    let baseline = Duration::from_secs_f64(secs);

    let dedicated = Placement {
        kind: PlacementKind::Dedicated,
        shard: None,
        reason: "bench".into(),
    };
    let audit = AuditEvent::system(
        "tenant.migrate",
        "/v1/tenants/mover",
        Some("mover"),
        Outcome::Success,
    );
    let started = Instant::now();
    let migration = provisioner
        .start_migration(&tenant, dedicated, &audit)
        .await
        .expect("start");
    provisioner
        .copy_and_switch(&migration)
        .await
        .expect("copy and switch");
    let took = started.elapsed();
    let moved = s3
        .list_objects(&format!("{prefix}-t-mover"), "bronze/mover/")
        .await
        .expect("list");
    assert_eq!(moved.len(), listed.len(), "every object copied");
    let after = store.get_tenant(&tenant.id).await.expect("get").expect("tenant");
    assert_eq!(after.placement.kind, PlacementKind::Dedicated);

    println!(
        "| objects | bytes | plane: migration to dedicated (drain, provision, list, copy, verify, switch) | baseline: boto3 copy_object loop |"
    );
    println!("|---|---|---|---|");
    println!(
        "| {} | {:.1} MB | {} | {} |",
        listed.len(),
        bytes as f64 / 1e6,
        rate(listed.len(), bytes, took),
        rate(copied, bytes, baseline),
    );
    store.close().await;
    db.drop_database().await;
}
