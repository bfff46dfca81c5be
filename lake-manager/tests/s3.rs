//! The S3 backend against the moto server (a stand-in for AWS S3, started by `scripts/test`
//! via `scripts/moto-server`; endpoint in `LAKEPLANE_TEST_S3_ENDPOINT`).
//!
//! Known moto gap (moto 5.2): it drops `ObjectSizeGreaterThan` from lifecycle filters when it
//! stores them, so the comparison below removes that field from the computed document first.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use lake_manager::identity::{AwsIam, POLICY_NAME};
use lake_manager::lifecycle::LifecycleDocument;
use lake_manager::provision::{IamSettings, ProvisionSettings, Provisioner};
use lake_manager::storage::{ObjectStorageAdmin, S3Settings, S3Storage};
use tenancy::placement::{Placement, PlacementKind};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{self, Backend};
use tenancy::tenant::TenantStatus;
use tenancy::zone::ZonesConfig;

fn endpoint() -> String {
    std::env::var("LAKEPLANE_TEST_S3_ENDPOINT").expect(
        "LAKEPLANE_TEST_S3_ENDPOINT must point at a moto server: run scripts/moto-server (scripts/test does)",
    )
}

async fn moto() -> S3Storage {
    // Credentials come from the standard chain, as in production; scripts/test exports dummy
    // ones for moto, which accepts any.
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "AWS_ACCESS_KEY_ID must be set for the moto tests (scripts/test sets testing/testing)"
    );
    S3Storage::connect(S3Settings {
        endpoint: Some(endpoint()),
        region: "eu-west-1".into(),
        path_style: true,
        kms_key_id: None,
    })
    .await
}

const BROKER: &str = "arn:aws:iam::123456789012:role/lakeplane-broker";

/// IAM returns policy documents URL-encoded.
fn policy_json(raw: &str) -> serde_json::Value {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    serde_json::from_str(&decoded).unwrap_or_else(|e| panic!("policy is JSON: {e}: {decoded}"))
}

fn prefix() -> String {
    format!("lp{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

fn without_size_filter(document: &LifecycleDocument) -> serde_json::Value {
    let mut json = serde_json::to_value(document).expect("json");
    for rule in json["Rules"].as_array_mut().expect("rules") {
        if let Some(filter) = rule["Filter"].as_object_mut() {
            filter.remove("ObjectSizeGreaterThan");
        }
    }
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_on_s3_creates_hardened_buckets_with_exact_lifecycle() {
    let s3 = Arc::new(moto().await);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let bucket_prefix = prefix();
    let settings = ProvisionSettings {
        bucket_prefix: bucket_prefix.clone(),
        zones: ZonesConfig::default(),
        iam: Some(IamSettings {
            broker_principal: BROKER.to_owned(),
            permissions_boundary: None,
        }),
        attempts: 2,
        backoff: Duration::from_millis(10),
        migration_grace: Duration::from_secs(0),
    };
    let iam = Arc::new(AwsIam::connect("eu-west-1", Some(&endpoint())).await);
    let provisioner = Provisioner::new(store.clone(), s3.clone(), Some(iam.clone()), settings);
    let dedicated = common::add_tenant(
        &store,
        "bigco",
        Placement {
            kind: PlacementKind::Dedicated,
            shard: None,
            reason: "x".into(),
        },
    )
    .await;
    let shared = common::add_tenant(
        &store,
        "small",
        Placement {
            kind: PlacementKind::Shared,
            shard: Some(0),
            reason: "x".into(),
        },
    )
    .await;
    for t in [&dedicated, &shared] {
        assert_eq!(
            provisioner.provision(&t.id).await.expect("runs"),
            TenantStatus::Ready,
            "{}",
            t.id
        );
        assert_eq!(
            provisioner.provision(&t.id).await.expect("again"),
            TenantStatus::Ready
        );
    }
    let client = s3.client();
    let listed = client.list_buckets().send().await.expect("list");
    let mut ours: Vec<String> = listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(&bucket_prefix))
        .map(str::to_owned)
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [
            format!("{bucket_prefix}-shared-0000"),
            format!("{bucket_prefix}-t-bigco")
        ],
        "one bucket each"
    );

    for t in [&dedicated, &shared] {
        let bucket = provisioner.bucket_of(t);
        let block = client
            .get_public_access_block()
            .bucket(&bucket)
            .send()
            .await
            .expect("public access block");
        let block = block.public_access_block_configuration().expect("configured");
        assert_eq!(
            (
                block.block_public_acls(),
                block.ignore_public_acls(),
                block.block_public_policy(),
                block.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let encryption = client
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await
            .expect("encryption");
        let rule = &encryption
            .server_side_encryption_configuration()
            .expect("configured")
            .rules()[0];
        let default = rule.apply_server_side_encryption_by_default().expect("default");
        assert_eq!(default.sse_algorithm().as_str(), "AES256");
        let tags = client
            .get_bucket_tagging()
            .bucket(&bucket)
            .send()
            .await
            .expect("tags");
        let keys: Vec<&str> = tags.tag_set().iter().map(|t| t.key()).collect();
        assert!(keys.contains(&"lakeplane:zone"), "{keys:?}");
        assert!(keys.contains(&if t.placement.kind == PlacementKind::Shared {
            "lakeplane:shard"
        } else {
            "lakeplane:tenant"
        }));

        let desired = provisioner.desired_lifecycle(t).await.expect("desired");
        let applied = s3.get_lifecycle(&bucket).await.expect("get").expect("configured");
        assert_eq!(
            applied,
            without_size_filter(&desired),
            "moto returns the computed rules (minus its known filter gap)"
        );
        for zone in ["bronze", "silver", "gold"] {
            let key = format!("{zone}/{}/", t.id);
            client
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    // One role per dedicated tenant, one ABAC role per shard, with the exact documents.
    let iam_client = iam.client();
    for (t, expected) in [
        (
            &dedicated,
            tenancy::iam::dedicated_role_policy(&provisioner.bucket_of(&dedicated)),
        ),
        (
            &shared,
            tenancy::iam::shard_role_policy(&provisioner.bucket_of(&shared)),
        ),
    ] {
        let role = provisioner.role_of(t);
        let found = iam_client
            .get_role()
            .role_name(&role)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{role}: {e}"));
        let trust = found
            .role()
            .and_then(|r| r.assume_role_policy_document())
            .expect("trust");
        assert_eq!(policy_json(trust), tenancy::iam::trust_policy(BROKER));
        let inline = iam_client
            .get_role_policy()
            .role_name(&role)
            .policy_name(POLICY_NAME)
            .send()
            .await
            .expect("policy");
        assert_eq!(policy_json(inline.policy_document()), expected, "{role}");
    }
    let roles = iam_client.list_roles().send().await.expect("roles");
    let ours = roles
        .roles()
        .iter()
        .filter(|r| r.role_name().starts_with(&bucket_prefix))
        .count();
    assert_eq!(ours, 2, "no second role after the repeated runs");

    // Usage sees what is stored; purge removes it, and the dedicated bucket with it.
    let bucket = provisioner.bucket_of(&dedicated);
    client
        .put_object()
        .bucket(&bucket)
        .key("bronze/bigco/events/part-0.parquet")
        .body(vec![1u8; 200_000].into())
        .send()
        .await
        .expect("put");
    let usage = s3.usage(&bucket, "bronze/bigco/").await.expect("usage");
    assert_eq!(usage.iter().map(|u| u.bytes).sum::<u64>(), 200_000);
    let (objects, _) = provisioner.purge_storage(&dedicated).await.expect("purge");
    assert_eq!(objects, 4, "three zone markers and one file");
    assert!(
        client.head_bucket().bucket(&bucket).send().await.is_err(),
        "the dedicated bucket is gone"
    );
    let shard = provisioner.bucket_of(&shared);
    provisioner.purge_storage(&shared).await.expect("purge");
    let left = client
        .list_objects_v2()
        .bucket(&shard)
        .prefix("bronze/small/")
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count(), Some(0));
    store.close().await;
    db.drop_database().await;
}
