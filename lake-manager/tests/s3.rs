//! The S3 backend against the moto server (a stand-in for AWS S3, started by `scripts/test`
//! via `scripts/moto-server`; endpoint in `LAKEPLANE_TEST_S3_ENDPOINT`).
//!
//! Known moto gap (moto 5.2): it drops `ObjectSizeGreaterThan` from lifecycle filters when it
//! stores them, so the comparison below removes that field from the computed document first.

#[path = "common/auth_moto.rs"]
mod auth_moto;
#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_moto::AuthMoto;
use lake_manager::identity::{AwsIam, POLICY_NAME};
use lake_manager::lifecycle::LifecycleDocument;
use lake_manager::migrate::verify_copy;
use lake_manager::provision::{IamSettings, ProvisionSettings, Provisioner};
use lake_manager::storage::{CopySettings, ObjectStorageAdmin, S3Settings, S3Storage};
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
        copy: Default::default(),
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
        migration_give_up: Duration::from_secs(3600),
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
    // Every page: the shared moto server keeps the roles of every earlier test and run, and
    // ListRoles answers 100 at a time.
    let mut ours = 0;
    let mut marker: Option<String> = None;
    loop {
        let page = iam_client
            .list_roles()
            .set_marker(marker.clone())
            .send()
            .await
            .expect("roles");
        ours += page
            .roles()
            .iter()
            .filter(|r| r.role_name().starts_with(&bucket_prefix))
            .count();
        match page.marker() {
            Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
            _ => break,
        }
    }
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

const MIB: u64 = 1024 * 1024;

/// Objects above the threshold are copied in parts; the copy keeps every byte, its ETag is
/// the multipart form over the parts, and the migration's verification accepts it. Smaller
/// objects still take one `CopyObject` and keep the source's digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_are_copied_in_parts_and_verified() {
    let s3 = S3Storage::connect(S3Settings {
        endpoint: Some(endpoint()),
        region: "eu-west-1".into(),
        path_style: true,
        kms_key_id: None,
        copy: CopySettings {
            multipart_threshold: 6 * MIB,
            part_size: 5 * MIB,
        },
    })
    .await;
    let (from, to) = (format!("{}-from", prefix()), format!("{}-to", prefix()));
    for bucket in [&from, &to] {
        s3.ensure_bucket(bucket).await.expect("bucket");
    }
    let big: Vec<u8> = (0..12 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    let client = s3.client();
    for (key, body) in [
        ("gold/t/big.parquet", big.clone()),
        ("gold/t/small.json", b"{}".to_vec()),
    ] {
        client
            .put_object()
            .bucket(&from)
            .key(key)
            .body(body.into())
            .send()
            .await
            .expect("put");
    }
    let source = s3.list_objects(&from, "gold/t/").await.expect("list source");
    assert_eq!(source.len(), 2);
    let mut reported = std::collections::HashMap::new();
    for object in &source {
        reported.insert(
            object.key.clone(),
            s3.copy_object(&from, object, &to).await.expect("copy"),
        );
    }
    let copied = s3.list_objects(&to, "gold/t/").await.expect("list copy");
    for object in &source {
        let copy = copied.iter().find(|c| c.key == object.key);
        verify_copy(object, copy, reported.get(&object.key)).expect("verified");
    }
    let big_copy = copied
        .iter()
        .find(|c| c.key.ends_with("big.parquet"))
        .expect("copied");
    assert!(
        big_copy.fingerprint.trim_matches('"').ends_with("-3"),
        "12 MiB in 5 MiB parts is 3 parts: {}",
        big_copy.fingerprint
    );
    let small = source
        .iter()
        .find(|c| c.key.ends_with("small.json"))
        .expect("small");
    assert_eq!(
        reported["gold/t/small.json"], small.fingerprint,
        "single copy keeps the MD5 ETag"
    );
    let body = client
        .get_object()
        .bucket(&to)
        .key("gold/t/big.parquet")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("read")
        .into_bytes();
    assert!(
        body.as_ref() == big.as_slice(),
        "every byte survives the multipart copy"
    );

    // A wrong size or fingerprint is caught.
    let mut tampered = big_copy.clone();
    tampered.size -= 1;
    assert!(verify_copy(&source[0], Some(&tampered), Some(&big_copy.fingerprint)).is_err());
    assert!(verify_copy(&source[0], None, None).is_err());
}

fn s3_with(endpoint: &str, credentials: aws_sdk_s3::config::Credentials) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_s3::config::Region::new("eu-west-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(credentials)
            .build(),
    )
}

/// The issue's isolation check through real credentials, on a moto server with its IAM
/// enforcement on (moto is the stand-in for AWS here): a session of the dedicated tenant's
/// role reads its own bucket and gets AccessDenied on another tenant's bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_role_reaches_its_own_bucket_and_nothing_else() {
    let moto = AuthMoto::start().await;
    let s3 = Arc::new(
        S3Storage::connect(S3Settings {
            endpoint: Some(moto.endpoint.clone()),
            region: "eu-west-1".into(),
            path_style: true,
            ..Default::default()
        })
        .await,
    );
    let iam = Arc::new(AwsIam::connect("eu-west-1", Some(&moto.endpoint)).await);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let settings = ProvisionSettings {
        bucket_prefix: "lp".to_owned(),
        zones: ZonesConfig::default(),
        iam: Some(IamSettings {
            broker_principal: "arn:aws:iam::123456789012:user/broker".to_owned(),
            permissions_boundary: None,
        }),
        attempts: 1,
        backoff: Duration::from_millis(10),
        migration_grace: Duration::from_secs(0),
        migration_give_up: Duration::from_secs(3600),
    };
    let provisioner = Provisioner::new(store.clone(), s3.clone(), Some(iam.clone()), settings);
    let alpha = common::add_tenant(&store, "alpha", common::dedicated()).await;
    let beta = common::add_tenant(&store, "beta", common::dedicated()).await;
    for t in [&alpha, &beta] {
        assert_eq!(
            provisioner.provision(&t.id).await.expect("runs"),
            TenantStatus::Ready
        );
        s3.client()
            .put_object()
            .bucket(provisioner.bucket_of(t))
            .key(format!("gold/{}/orders/part-0.parquet", t.id))
            .body(b"rows".to_vec().into())
            .send()
            .await
            .expect("put");
    }

    // The broker: the identity the plane vends credentials through, allowed to assume roles.
    let admin = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .build(),
    );
    admin
        .create_user()
        .user_name("broker")
        .send()
        .await
        .expect("user");
    admin
        .put_user_policy()
        .user_name("broker")
        .policy_name("assume")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["sts:AssumeRole","sts:TagSession"],"Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("policy");
    let key = admin
        .create_access_key()
        .user_name("broker")
        .send()
        .await
        .expect("key");
    let key = key.access_key().expect("access key");
    moto.enforce_auth().await;

    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sts::config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                key.access_key_id(),
                key.secret_access_key(),
                None,
                None,
                "broker",
            ))
            .build(),
    );
    let role_arn = format!("arn:aws:iam::123456789012:role/{}", provisioner.role_of(&alpha));
    let session = sts
        .assume_role()
        .role_arn(&role_arn)
        .role_session_name("alpha-analyst")
        .send()
        .await
        .expect("the broker assumes alpha's role");
    let c = session.credentials().expect("credentials");
    let alpha_client = s3_with(
        &moto.endpoint,
        aws_sdk_s3::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "sts",
        ),
    );
    let own = alpha_client
        .get_object()
        .bucket(provisioner.bucket_of(&alpha))
        .key("gold/alpha/orders/part-0.parquet")
        .send()
        .await
        .expect("alpha reads its own bucket");
    assert_eq!(
        own.body.collect().await.expect("body").into_bytes().as_ref(),
        b"rows"
    );
    let listed = alpha_client
        .list_objects_v2()
        .bucket(provisioner.bucket_of(&alpha))
        .send()
        .await
        .expect("alpha lists its own bucket");
    assert!(listed.key_count().unwrap_or(0) >= 1);

    let other = alpha_client
        .get_object()
        .bucket(provisioner.bucket_of(&beta))
        .key("gold/beta/orders/part-0.parquet")
        .send()
        .await
        .expect_err("alpha must not read beta's bucket");
    assert_eq!(
        other
            .as_service_error()
            .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::code(e)),
        Some("AccessDenied"),
        "{other:?}"
    );
    let other_list = alpha_client
        .list_objects_v2()
        .bucket(provisioner.bucket_of(&beta))
        .send()
        .await
        .expect_err("alpha must not list beta's bucket");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&other_list),
        Some("AccessDenied"),
        "{other_list:?}"
    );
    let write = alpha_client
        .put_object()
        .bucket(provisioner.bucket_of(&beta))
        .key("gold/beta/orders/evil.parquet")
        .body(b"x".to_vec().into())
        .send()
        .await
        .expect_err("alpha must not write beta's bucket");
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&write),
        Some("AccessDenied")
    );
}

/// A bucket whose lifecycle was removed or edited by hand gets the desired document back
/// from the repair pass; a bucket in step is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drifted_lifecycle_is_reapplied() {
    let s3 = Arc::new(moto().await);
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let settings = ProvisionSettings {
        bucket_prefix: prefix(),
        zones: ZonesConfig::default(),
        iam: None,
        attempts: 1,
        backoff: Duration::from_millis(10),
        migration_grace: Duration::from_secs(0),
        migration_give_up: Duration::from_secs(3600),
    };
    let provisioner = Provisioner::new(store.clone(), s3.clone(), None, settings);
    let dedicated = common::add_tenant(&store, "drifty", common::dedicated()).await;
    let shared = common::add_tenant(&store, "steady", common::shared(0)).await;
    for t in [&dedicated, &shared] {
        assert_eq!(
            provisioner.provision(&t.id).await.expect("runs"),
            TenantStatus::Ready
        );
    }
    let (own, shard) = (provisioner.bucket_of(&dedicated), provisioner.bucket_of(&shared));
    s3.client()
        .delete_bucket_lifecycle()
        .bucket(&own)
        .send()
        .await
        .expect("someone removes the rules by hand");
    assert_eq!(s3.get_lifecycle(&own).await.expect("get"), None);

    let reapplied = provisioner.repair_all_drift().await.expect("repair pass");
    assert!(reapplied.contains(&own), "{reapplied:?}");
    let desired = provisioner.desired_lifecycle(&dedicated).await.expect("desired");
    assert_eq!(
        s3.get_lifecycle(&own).await.expect("get"),
        Some(without_size_filter(&desired)),
        "the desired rules are back"
    );
    let record = store.get_bucket(&own).await.expect("record").expect("recorded");
    assert!(record.applied_lifecycle.is_some_and(|a| a.contains("bronze/")));
    // The shard was never touched; on moto it still counts as drifted because moto drops the
    // size filter (the known gap), so it is re-put, and its rules are unchanged by that.
    let shard_desired = provisioner.desired_lifecycle(&shared).await.expect("desired");
    assert_eq!(
        s3.get_lifecycle(&shard).await.expect("get"),
        Some(without_size_filter(&shard_desired))
    );
}
