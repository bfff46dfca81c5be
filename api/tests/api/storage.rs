//! Storage on the embedded default: provisioning to `ready`, zone policies within bounds,
//! lifecycle shown but not enforced, usage and cost, purge, bucket listing and retries.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, fresh_prefix, moto_endpoint, moto_storage_options, on_moto, problem, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_tenant_gets_zone_folders_and_becomes_ready() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let body = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(body))
            .await
            .status(),
        201
    );
    let ready = app.wait_for_status(&admin, "acme", "ready").await;
    assert_eq!(ready["status_reason"], Value::Null);
    let lake = app.data_dir.path().join("lake/lakeplane-shared-0000");
    for zone in ["bronze", "silver", "gold"] {
        assert!(lake.join(zone).join("acme").is_dir(), "{zone} root exists");
        let uri = ready["zones"][zone]["uri"].as_str().expect("uri");
        let path = uri.trim_start_matches("file://");
        assert!(
            std::path::Path::new(path).is_dir(),
            "the advertised URI is the real folder: {uri}"
        );
    }

    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let zones: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/zones")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(zones["bronze"]["retention_days"], 2555);
    assert_eq!(zones["bronze"]["source"], "default");
    assert_eq!(zones["gold"]["transitions"], json!([]));

    let lifecycle: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/lifecycle")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(lifecycle["enforced"], false);
    assert_eq!(lifecycle["reason"], "local storage has no storage classes");
    assert_eq!(lifecycle["applied"], Value::Null);
    assert_eq!(lifecycle["drift"], false);
    let rules = lifecycle["desired"]["Rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["Filter"]["ObjectSizeGreaterThan"], 131072);

    // Tuning within bounds adds the tenant's own rule to the shard's document.
    let colder =
        json!({"retention_days": 700, "transitions": [{"after_days": 30, "storage_class": "GLACIER_IR"}]});
    let put = app
        .send_as(
            &tenant_admin,
            Method::PUT,
            "/v1/tenants/acme/zones/silver",
            Some(colder),
        )
        .await;
    assert_eq!(put.status(), 200);
    let zones: Value = put.json().await.expect("json");
    assert_eq!(zones["silver"]["source"], "tenant");
    let lifecycle: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/lifecycle")
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = lifecycle["desired"]["Rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["ID"].as_str())
        .collect();
    assert!(ids.contains(&"tenant-acme-silver"), "{ids:?}");

    for (body, field, hint) in [
        (
            json!({"retention_days": 10, "transitions": []}),
            "retention_days",
            "30",
        ),
        (
            json!({"retention_days": 99999, "transitions": []}),
            "retention_days",
            "3650",
        ),
        (
            json!({"retention_days": 700, "transitions": [{"after_days": 60, "storage_class": "DEEP_ARCHIVE"}]}),
            "transitions[0].storage_class",
            "restore",
        ),
        (
            json!({"retention_days": 700, "transitions": [{"after_days": 10, "storage_class": "STANDARD_IA"}]}),
            "transitions[0].after_days",
            "30",
        ),
        (
            json!({"retention_days": 700, "transitions": []}),
            "transitions",
            "shared bucket",
        ),
        (
            json!({"retention_days": 700, "transitions": [], "expire": true}),
            "expire",
            "unknown",
        ),
    ] {
        let response = app
            .send_as(
                &tenant_admin,
                Method::PUT,
                "/v1/tenants/acme/zones/bronze",
                Some(body.clone()),
            )
            .await;
        let problem = problem(response, 422).await;
        let error = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .find(|e| e["field"] == field || e["message"].as_str().is_some_and(|m| m.contains(field)));
        let error = error.unwrap_or_else(|| panic!("{body} should name {field}: {problem}"));
        assert!(
            error["message"].as_str().is_some_and(|m| m.contains(hint)),
            "{problem}"
        );
    }
    let unchanged: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/zones")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        unchanged["bronze"]["source"], "default",
        "refused changes store nothing"
    );
    assert_eq!(
        app.send_as(
            &tenant_admin,
            Method::PUT,
            "/v1/tenants/acme/zones/platinum",
            Some(json!({"retention_days": 700, "transitions": []}))
        )
        .await
        .status(),
        404
    );

    // Usage counts what is really there and prices it.
    std::fs::write(lake.join("bronze/acme/part-0.parquet"), vec![7u8; 300_000]).expect("write");
    let usage: Value = app
        .get_as(&tenant_admin, "/v1/tenants/acme/usage")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(usage["zones"]["bronze"]["bytes"], 300_000);
    assert_eq!(usage["zones"]["bronze"]["objects"], 1);
    assert_eq!(
        usage["zones"]["bronze"]["classes"][0]["storage_class"],
        "STANDARD"
    );
    assert!(
        usage["estimated_monthly_cost_usd"]
            .as_f64()
            .is_some_and(|c| c > 0.0)
    );
    assert_eq!(usage["prices"]["standard_gb_month"], 0.023);

    let buckets: Value = app
        .get_as(&admin, "/v1/admin/buckets")
        .await
        .json::<Value>()
        .await
        .expect("json")["items"]
        .clone();
    assert_eq!(buckets[0]["name"], "lakeplane-shared-0000");
    assert_eq!(buckets[0]["tenants"], 1);
    assert_eq!(
        buckets[0]["lifecycle_rules"], 4,
        "3 shared rules plus acme's silver override"
    );
    assert_eq!(buckets[0]["capacity"], 500);
    assert_eq!(app.get_as(&tenant_admin, "/v1/admin/buckets").await.status(), 403);

    // Deleting purges the tenant's keys and drops its rule from the shard.
    let dry: Value = app
        .send_as(&admin, Method::DELETE, "/v1/tenants/acme?dry_run=true", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(dry["objects_erased"], 1);
    assert!(
        lake.join("bronze/acme/part-0.parquet").exists(),
        "a dry run removes nothing"
    );
    let deleted = app
        .send_as(&admin, Method::DELETE, "/v1/tenants/acme", None)
        .await;
    assert_eq!(deleted.status(), 202);
    assert_eq!(deleted.json::<Value>().await.expect("json")["objects_erased"], 1);
    for zone in ["bronze", "silver", "gold"] {
        assert!(!lake.join(zone).join("acme").exists(), "{zone}/acme is gone");
    }
    let buckets: Value = app
        .get_as(&admin, "/v1/admin/buckets")
        .await
        .json::<Value>()
        .await
        .expect("json")["items"]
        .clone();
    assert_eq!(
        buckets[0]["lifecycle_rules"], 3,
        "the override left with the tenant"
    );
    let purge: Value = app
        .get_as(&admin, "/v1/audit?action=tenant.purge")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        purge["items"][0]["target"]
            .as_str()
            .is_some_and(|t| t.contains("erased 1 objects")),
        "{purge}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_provisioning_names_the_step_and_a_retry_completes_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    // A file where the tenant's bucket folder must go: the bucket step cannot succeed.
    let blocker = app.data_dir.path().join("lake/lakeplane-t-blocked");
    std::fs::write(&blocker, b"in the way").expect("blocker");
    let body = json!({"id": "blocked", "display_name": "Blocked", "tier": "enterprise"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(body))
            .await
            .status(),
        201
    );
    let failed = app.wait_for_status(&admin, "blocked", "failed").await;
    let reason = failed["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("step bucket") && reason.contains("Not a directory"),
        "{reason}"
    );
    // The tenant's own admin is told which step failed, not the storage's error text.
    let theirs = app.token(Role::TenantAdmin, Some("blocked")).await;
    let seen = app
        .expect(&theirs, Method::GET, "/v1/tenants/blocked", None, 200)
        .await;
    let told = seen["status_reason"].as_str().unwrap_or_default();
    assert!(
        told.contains("step bucket")
            && !told.contains("Not a directory")
            && !told.contains("lakeplane-t-blocked"),
        "{told}"
    );

    std::fs::remove_file(&blocker).expect("unblock");
    let retry = app
        .send_as(&admin, Method::POST, "/v1/tenants/blocked/provision", None)
        .await;
    assert_eq!(retry.status(), 202);
    app.wait_for_status(&admin, "blocked", "ready").await;
    assert!(
        app.data_dir
            .path()
            .join("lake/lakeplane-t-blocked/gold/blocked")
            .is_dir()
    );
    let again = app
        .send_as(&admin, Method::POST, "/v1/tenants/blocked/provision", None)
        .await;
    let conflict = problem(again, 409).await;
    assert!(
        conflict["detail"]
            .as_str()
            .is_some_and(|d| d.contains("is ready")),
        "a ready tenant is not re-provisioned"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_change_copies_verifies_switches_and_cleans_up_after_the_grace() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.storage.migration_grace_secs = 1,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let body = json!({"id": "mover", "display_name": "Mover", "tier": "standard"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(body))
            .await
            .status(),
        201
    );
    app.wait_for_status(&admin, "mover", "ready").await;
    let lake = app.data_dir.path().join("lake");
    let old = lake.join("lakeplane-shared-0000/silver/mover/orders");
    std::fs::create_dir_all(old.join("_delta_log")).expect("dirs");
    let files = [
        (
            "_delta_log/00000000000000000000.json",
            b"{\"commitInfo\":{}}".to_vec(),
        ),
        ("part-00000.parquet", vec![42u8; 250_000]),
        ("part-00001.parquet", vec![7u8; 1_000]),
    ];
    for (name, bytes) in &files {
        std::fs::write(old.join(name), bytes).expect("write");
    }

    let patched = app
        .send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/mover",
            Some(json!({"isolation": "dedicated"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let moved = app.wait_for_status(&admin, "mover", "ready").await;
    assert_eq!(moved["placement"]["kind"], "dedicated");
    assert_eq!(moved["isolation"], "dedicated");
    let new = lake.join("lakeplane-t-mover/silver/mover/orders");
    for (name, bytes) in &files {
        assert_eq!(
            &std::fs::read(new.join(name)).expect("copied"),
            bytes,
            "{name} is identical at the new location"
        );
    }
    let uri = moved["zones"]["silver"]["uri"].as_str().expect("uri");
    assert!(uri.ends_with("/lakeplane-t-mover/silver/mover/"), "{uri}");
    let usage: Value = app
        .get_as(&admin, "/v1/tenants/mover/usage")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        usage["zones"]["silver"]["objects"], 3,
        "usage reads the new location"
    );

    // The old keys go after the grace period (1 s here), not before the switch.
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.exists() {
        assert!(Instant::now() < deadline, "old keys were never cleaned up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lake.join("lakeplane-shared-0000/silver").is_dir(),
        "the shard itself stays"
    );
    let audit: Value = app
        .get_as(&admin, "/v1/audit?action=tenant.migrate")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(audit["items"][0]["outcome"], "success");
    let again = app
        .send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/mover",
            Some(json!({"isolation": "shared"})),
        )
        .await;
    assert_eq!(again.status(), 200, "and back again");
    let back = app.wait_for_status(&admin, "mover", "ready").await;
    assert_eq!(back["placement"]["kind"], "shared");
    assert!(
        lake.join("lakeplane-shared-0000/silver/mover/orders/part-00000.parquet")
            .is_file()
    );
    app.shutdown().await;
}

const WRITE_DELTA: &str = r#"
import sys, json, pyarrow as pa
from deltalake import write_deltalake
uri, options = sys.argv[1].removeprefix("file://"), json.loads(sys.argv[2])
rows = pa.table({"id": list(range(500)), "customer": [f"c{i % 17}" for i in range(500)], "amount": [i * 1.5 for i in range(500)]})
write_deltalake(uri, rows.slice(0, 250), storage_options=options)
write_deltalake(uri, rows.slice(250), mode="append", storage_options=options)
"#;

const READ_DELTA: &str = r#"
import sys, json
from deltalake import DeltaTable
table = DeltaTable(sys.argv[1].removeprefix("file://"), storage_options=json.loads(sys.argv[2]))
rows = table.to_pyarrow_table().sort_by("id")
print(json.dumps({"version": table.version(), "rows": rows.to_pylist()}))
"#;

/// Writes a Delta table with the Python `deltalake` package into the tenant's gold zone,
/// moves the tenant to dedicated storage, and checks the table reads the same at the new
/// location and that the old keys go after the grace period (`gone` polls that).
async fn delta_table_survives_migration(
    app: &TestApp,
    tenant: &str,
    options: &Value,
    gone: impl AsyncFn(&str) -> bool,
) {
    let options_json = options.to_string();
    let admin = app.token(Role::PlatformAdmin, None).await;
    let body = json!({"id": tenant, "display_name": "Delta Co", "tier": "standard"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(body))
            .await
            .status(),
        201
    );
    let before = app.wait_for_status(&admin, tenant, "ready").await;
    let old_root = before["zones"]["gold"]["uri"].as_str().expect("uri").to_owned();
    let old_table = format!("{old_root}orders");
    python(WRITE_DELTA, &[&old_table, &options_json]);
    let written: Value =
        serde_json::from_str(&python(READ_DELTA, &[&old_table, &options_json])).expect("json");
    assert_eq!(written["rows"].as_array().map(Vec::len), Some(500));
    assert_eq!(written["version"], 1);

    let patched = app
        .send_as(
            &admin,
            Method::PATCH,
            &format!("/v1/tenants/{tenant}"),
            Some(json!({"tier": "enterprise"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let after = app.wait_for_status(&admin, tenant, "ready").await;
    assert_eq!(after["placement"]["kind"], "dedicated");
    let new_root = after["zones"]["gold"]["uri"].as_str().expect("uri").to_owned();
    assert_ne!(new_root, old_root);
    let read: Value = serde_json::from_str(&python(
        READ_DELTA,
        &[&format!("{new_root}orders"), &options_json],
    ))
    .expect("json");
    assert_eq!(read, written, "same rows and version at the new location");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(&old_table).await {
        assert!(Instant::now() < deadline, "the old table was never cleaned up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The issue's end-to-end check on the embedded default (local storage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_table_reads_identically_after_migrating_to_dedicated() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        |c| c.storage.migration_grace_secs = 1,
        axum::Router::new(),
    )
    .await;
    let gone = async |uri: &str| !std::path::Path::new(uri.trim_start_matches("file://")).exists();
    delta_table_survives_migration(&app, "deltaco", &json!({}), gone).await;
    app.shutdown().await;
}

/// The same on S3 (the moto server stands in for AWS). Every object goes through the
/// multipart copy path (threshold 1 byte), so `UploadPartCopy` is exercised on real Delta data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_table_reads_identically_after_migrating_to_dedicated_on_s3() {
    let endpoint = moto_endpoint();
    let prefix = fresh_prefix();
    let (configured, bucket_prefix) = (endpoint.clone(), prefix.clone());
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            on_moto(c, &configured, &bucket_prefix);
            c.storage.migration_grace_secs = 1;
            c.storage.s3.copy.multipart_threshold = 1;
        },
        axum::Router::new(),
    )
    .await;
    let mut options = moto_storage_options(&endpoint);
    // One writer at a time here; moto offers no lock to coordinate them.
    options["AWS_S3_ALLOW_UNSAFE_RENAME"] = json!("true");
    let options_json = options.to_string();
    let gone = async |uri: &str| {
        let listed = python(LIST_KEYS, &[uri, &options_json]);
        listed.trim() == "0"
    };
    delta_table_survives_migration(&app, "s3delta", &options, gone).await;
    let copied = python(
        LIST_KEYS,
        &[
            &format!("s3://{prefix}-t-s3delta/gold/s3delta/"),
            &options_json,
            "etags",
        ],
    );
    let counts: Vec<u32> = copied
        .split_whitespace()
        .map(|n| n.parse().expect("count"))
        .collect();
    assert!(
        counts[1] >= 4,
        "two data files and two commits at least: {copied}"
    );
    assert_eq!(
        counts[0], counts[1],
        "every data object went through UploadPartCopy"
    );
    let shared = format!("{prefix}-shared-0000");
    let leftover = python(
        LIST_KEYS,
        &[&format!("s3://{shared}/gold/s3delta/"), &options_json],
    );
    assert_eq!(leftover.trim(), "0", "no key of the tenant is left in the shard");
    app.shutdown().await;
}

/// Stages, before a migration, what a crashed one would have left in the destination bucket:
/// every non-empty object of the tenant copied there in parts (a multipart ETag, which cannot
/// be compared with the source's) and marked with the metadata `staged`, except one, which
/// gets other bytes of the same size (a torn copy). Prints that key.
const STAGE_PART_COPIES: &str = r#"
import sys, json, boto3
options = json.loads(sys.argv[1])
shard, prefix, dest = sys.argv[2], sys.argv[3], sys.argv[4]
s3 = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"], region_name=options["AWS_REGION"],
    aws_access_key_id=options["AWS_ACCESS_KEY_ID"], aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"])
s3.create_bucket(Bucket=dest, CreateBucketConfiguration={"LocationConstraint": options["AWS_REGION"]})
objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=shard, Prefix=prefix)
           for o in page.get("Contents", []) if o["Size"] > 0]
torn = max(objects, key=lambda o: o["Size"])["Key"]
for o in objects:
    upload = s3.create_multipart_upload(Bucket=dest, Key=o["Key"], Metadata={"staged": "yes"})["UploadId"]
    if o["Key"] == torn:
        part = s3.upload_part(Bucket=dest, Key=o["Key"], UploadId=upload, PartNumber=1, Body=b"x" * o["Size"])
    else:
        part = s3.upload_part_copy(Bucket=dest, Key=o["Key"], UploadId=upload, PartNumber=1,
            CopySource={"Bucket": shard, "Key": o["Key"]})["CopyPartResult"]
    s3.complete_multipart_upload(Bucket=dest, Key=o["Key"], UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
print(json.dumps({"torn": torn, "staged": len(objects)}))
"#;

/// For every non-empty object under the prefix in the destination: whether it still carries
/// the staged copy's metadata, and whether its bytes equal the source's.
const INSPECT_COPIES: &str = r#"
import sys, json, boto3
options = json.loads(sys.argv[1])
shard, prefix, dest = sys.argv[2], sys.argv[3], sys.argv[4]
s3 = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"], region_name=options["AWS_REGION"],
    aws_access_key_id=options["AWS_ACCESS_KEY_ID"], aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"])
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=dest, Prefix=prefix):
    for o in page.get("Contents", []):
        if o["Size"] == 0:
            continue
        copy = s3.get_object(Bucket=dest, Key=o["Key"])
        source = s3.get_object(Bucket=shard, Key=o["Key"])["Body"].read()
        out[o["Key"]] = {"staged": copy["Metadata"].get("staged") == "yes", "same": copy["Body"].read() == source}
print(json.dumps(out))
"#;

/// A migration that finds copies a crashed run left in the destination keeps the ones whose
/// content matches, though they were copied in parts and list no comparable digest, and copies
/// again only the one whose bytes differ; the table then reads the same at the new location.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_migration_keeps_intact_part_copies_and_recopies_a_torn_one() {
    let endpoint = moto_endpoint();
    let prefix = fresh_prefix();
    let (configured, bucket_prefix) = (endpoint.clone(), prefix.clone());
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            on_moto(c, &configured, &bucket_prefix);
            c.storage.migration_grace_secs = 3600;
            c.storage.s3.copy.multipart_threshold = 1;
        },
        axum::Router::new(),
    )
    .await;
    let mut options = moto_storage_options(&endpoint);
    options["AWS_S3_ALLOW_UNSAFE_RENAME"] = json!("true");
    let options = options.to_string();
    let admin = app.token(Role::PlatformAdmin, None).await;
    let body = json!({"id": "resumer", "display_name": "Resumer", "tier": "standard"});
    app.expect(&admin, Method::POST, "/v1/tenants", Some(body), 201)
        .await;
    let before = app.wait_for_status(&admin, "resumer", "ready").await;
    let old_table = format!("{}orders", before["zones"]["gold"]["uri"].as_str().expect("uri"));
    python(WRITE_DELTA, &[&old_table, &options]);
    let written = python(READ_DELTA, &[&old_table, &options]);

    let (shard, keys, dest) = (
        format!("{prefix}-shared-0000"),
        "gold/resumer/",
        format!("{prefix}-t-resumer"),
    );
    let staged: Value =
        serde_json::from_str(&python(STAGE_PART_COPIES, &[&options, &shard, keys, &dest])).expect("json");
    let torn = staged["torn"].as_str().expect("torn key").to_owned();
    assert!(staged["staged"].as_u64().expect("count") >= 4, "{staged}");

    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/resumer",
        Some(json!({"tier": "enterprise"})),
        200,
    )
    .await;
    let after = app.wait_for_status(&admin, "resumer", "ready").await;
    assert_eq!(after["placement"]["kind"], "dedicated", "{after}");
    let copies: Value =
        serde_json::from_str(&python(INSPECT_COPIES, &[&options, &shard, keys, &dest])).expect("json");
    let copies = copies.as_object().expect("object");
    assert_eq!(copies.len() as u64, staged["staged"].as_u64().expect("count"));
    for (key, copy) in copies {
        assert_eq!(copy["same"], true, "{key} holds the source's bytes");
        assert_eq!(
            copy["staged"],
            json!(key != &torn),
            "{key}: intact copies are kept, only the torn one is copied again"
        );
    }
    let new_table = format!("{}orders", after["zones"]["gold"]["uri"].as_str().expect("uri"));
    assert_eq!(python(READ_DELTA, &[&new_table, &options]), written);
    app.shutdown().await;
}

/// Counts the keys under an `s3://bucket/prefix` URI with boto3, from outside the plane (with
/// a third argument: the non-empty objects with a multipart ETag, and all non-empty objects).
const LIST_KEYS: &str = r#"
import sys, json, boto3
options = json.loads(sys.argv[2])
bucket, _, prefix = sys.argv[1].removeprefix("s3://").partition("/")
client = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"], region_name=options["AWS_REGION"],
    aws_access_key_id=options["AWS_ACCESS_KEY_ID"], aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"])
objects = [o for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
if len(sys.argv) > 3:  # how many non-empty objects carry a multipart ETag
    print(sum(1 for o in objects if o["Size"] > 0 and "-" in o["ETag"]), sum(1 for o in objects if o["Size"] > 0))
else:
    print(len(objects))
"#;

/// `GET /v1/admin/buckets` pages like every other list: a cursor per page, each bucket once.
#[tokio::test]
async fn buckets_are_listed_page_by_page() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    for (id, tier) in [
        ("ent-a", "enterprise"),
        ("ent-b", "enterprise"),
        ("small", "standard"),
    ] {
        let body = json!({"id": id, "display_name": id, "tier": tier});
        app.expect(&admin, Method::POST, "/v1/tenants", Some(body), 201)
            .await;
        app.wait_for_status(&admin, id, "ready").await;
    }
    let all: Value = app
        .expect(&admin, Method::GET, "/v1/admin/buckets", None, 200)
        .await;
    let mut expected: Vec<String> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|b| b["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(expected.len(), 3, "two dedicated buckets and one shard: {all}");
    assert!(all["next_cursor"].is_null());
    expected.sort();
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let page: Value = app
            .expect(
                &admin,
                Method::GET,
                &format!("/v1/admin/buckets{query}"),
                None,
                200,
            )
            .await;
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 1, "{page}");
        seen.extend(items.iter().map(|b| b["name"].as_str().expect("name").to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let bad: Value = app
        .expect(
            &admin,
            Method::GET,
            "/v1/admin/buckets?cursor=not-ours",
            None,
            422,
        )
        .await;
    assert!(bad.to_string().contains("cursor"), "{bad}");
    app.shutdown().await;
}

/// While the old location waits out its grace period, the tenant reads `ready` but its
/// placement cannot change again: 409 `conflict` naming the migration, and nothing changes.
#[tokio::test]
async fn a_placement_change_waits_for_the_last_migration_to_clean_up() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.storage.migration_grace_secs = 3600,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "mover").await;
    let isolation = |to: &str| Some(json!({"isolation": to}));
    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/mover",
        isolation("dedicated"),
        200,
    )
    .await;
    let moved = app.wait_for_status(&admin, "mover", "ready").await;
    assert_eq!(moved["placement"]["kind"], "dedicated");

    let refused = app
        .send_as(&admin, Method::PATCH, "/v1/tenants/mover", isolation("shared"))
        .await;
    let body = problem(refused, 409).await;
    assert!(
        body["type"].as_str().unwrap_or("").ends_with(":conflict"),
        "{body}"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("already migrating"),
        "{body}"
    );
    let after = app
        .expect(&admin, Method::GET, "/v1/tenants/mover", None, 200)
        .await;
    assert_eq!(after["placement"]["kind"], "dedicated", "{after}");
    assert_eq!(
        after["isolation"], "dedicated",
        "the refused change saved nothing: {after}"
    );
    app.shutdown().await;
}

/// Two shared tenants in one shard: each tenant-admin reads only the lifecycle rules acting on
/// its own keys and a placement reason without the tenant count; the platform-admin reads the
/// shard's whole document and the rank.
#[tokio::test]
async fn a_shared_tenant_sees_neither_its_neighbours_rules_nor_the_tenant_count() {
    // No tenant is promoted by volume here, so both stay in the shard whatever their rank.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.placement.dedicated_fraction = 0.0,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let colder =
        json!({"retention_days": 700, "transitions": [{"after_days": 30, "storage_class": "GLACIER_IR"}]});
    for id in ["acme", "bravo"] {
        app.ready_tenant(&admin, id).await;
        app.expect(
            &admin,
            Method::PUT,
            &format!("/v1/tenants/{id}/zones/silver"),
            Some(colder.clone()),
            200,
        )
        .await;
        // A tenant with data has a rank among all tenants.
        app.state
            .store
            .record_volume(&tenancy::tenant::TenantId::parse(id).expect("id"), 1 << 20)
            .await
            .expect("volume");
    }
    let rule_ids = |lifecycle: &Value| -> Vec<String> {
        lifecycle["desired"]["Rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter_map(|r| r["ID"].as_str().map(str::to_owned))
            .collect()
    };
    let whole = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/lifecycle", None, 200)
        .await;
    let all = rule_ids(&whole);
    assert!(
        all.contains(&"tenant-acme-silver".to_owned()) && all.contains(&"tenant-bravo-silver".to_owned()),
        "the platform-admin sees the shard's document: {all:?}"
    );
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let own = app
        .expect(&acme_admin, Method::GET, "/v1/tenants/acme/lifecycle", None, 200)
        .await;
    let seen = rule_ids(&own);
    assert!(seen.contains(&"tenant-acme-silver".to_owned()), "{seen:?}");
    assert!(seen.contains(&"zone-silver".to_owned()), "{seen:?}");
    assert!(
        !own.to_string().contains("bravo"),
        "acme sees nothing of bravo: {own}"
    );

    // Re-placing after the volumes changed gives both a rank among all tenants.
    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"isolation": "auto"})),
        200,
    )
    .await;
    let as_admin = app
        .expect(&admin, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    let full = as_admin["placement"]["reason"].as_str().expect("reason");
    assert!(
        full.contains(" of 2)"),
        "the platform-admin reads the rank: {full}"
    );
    let as_tenant = app
        .expect(&acme_admin, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    let shown = as_tenant["placement"]["reason"].as_str().expect("reason");
    assert!(
        full.starts_with(shown) && !shown.contains("rank") && !shown.contains(" of "),
        "{shown}"
    );
    let listed = app
        .expect(&acme_admin, Method::GET, "/v1/tenants", None, 200)
        .await;
    assert_eq!(listed["items"][0]["placement"]["reason"], shown);
    app.shutdown().await;
}

/// Each shared tenant's zone override adds a rule to its shard's one lifecycle document, and
/// S3 refuses a document past 1,000 rules (then every lifecycle write to the shard fails). At a
/// small configured budget: the override that does not fit is 409 with the reason and changes
/// nothing, replacing an own rule or going back to the default still works, and a new tenant
/// in the full shard still provisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shards_lifecycle_rule_budget_refuses_the_override_that_does_not_fit() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.storage.lifecycle_rules_per_shard = 2,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    for id in ["acme", "bravo", "cobalt"] {
        app.ready_tenant(&admin, id).await;
        let tenant = app
            .expect(&admin, Method::GET, &format!("/v1/tenants/{id}"), None, 200)
            .await;
        assert_eq!(tenant["placement"]["kind"], "shared", "{tenant}");
        assert_eq!(tenant["placement"]["shard"], 0, "{tenant}");
    }
    // A zone's default retention, tiered to GLACIER_IR after `days`: colder than the default.
    let colder = |zone: &str, days: u32| {
        let zone = tenancy::role::Zone::parse(zone).expect("zone");
        let mut body = serde_json::to_value(&app.state.config.zones.get(zone).policy).expect("json");
        body["transitions"] = json!([{"after_days": days, "storage_class": "GLACIER_IR"}]);
        body
    };
    let put = |id: &'static str, zone: &'static str, body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.send_as(
                &admin,
                Method::PUT,
                &format!("/v1/tenants/{id}/zones/{zone}"),
                Some(body),
            )
            .await
        }
    };
    assert_eq!(put("acme", "bronze", colder("bronze", 30)).await.status(), 200);
    assert_eq!(put("bravo", "silver", colder("silver", 30)).await.status(), 200);
    let refused = problem(put("cobalt", "gold", colder("gold", 30)).await, 409).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("budget of 2"),
        "{refused}"
    );
    let zones = app
        .expect(&admin, Method::GET, "/v1/tenants/cobalt/zones", None, 200)
        .await;
    assert_eq!(zones["gold"]["source"], "default", "the refusal changed nothing");
    assert_eq!(
        put("acme", "bronze", colder("bronze", 20)).await.status(),
        200,
        "replacing its own rule"
    );
    let default = app
        .state
        .config
        .zones
        .get(tenancy::role::Zone::Gold)
        .policy
        .clone();
    assert_eq!(
        put("cobalt", "gold", serde_json::to_value(&default).expect("json"))
            .await
            .status(),
        200,
        "the default adds no rule"
    );
    // A new tenant in the full shard still provisions: it brings no rule of its own.
    app.ready_tenant(&admin, "delta").await;
    let lifecycle = app
        .expect(&admin, Method::GET, "/v1/tenants/delta/lifecycle", None, 200)
        .await;
    assert!(
        lifecycle["desired"]["Rules"]
            .as_array()
            .is_some_and(|r| r.len() <= 3 + 2)
    );
    app.shutdown().await;
}

/// Eight tenants of one shard ask for a colder tiering at the same moment against a budget of
/// three rules: the budget is checked where the policy is written, so exactly three get their
/// rule and the shard's document never holds more, on both backends.
async fn racing_overrides_never_pass_the_shard_budget(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        |c| c.storage.lifecycle_rules_per_shard = 3,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let ids: Vec<String> = (0..8).map(|n| format!("racer-{n}")).collect();
    for id in &ids {
        app.ready_tenant(&admin, id).await;
    }
    let mut body =
        serde_json::to_value(&app.state.config.zones.get(tenancy::role::Zone::Bronze).policy).expect("json");
    body["transitions"] = json!([{"after_days": 30, "storage_class": "GLACIER_IR"}]);
    let puts = ids.iter().map(|id| {
        let (app, admin, body) = (&app, admin.clone(), body.clone());
        async move {
            let answer = app
                .send_as(
                    &admin,
                    Method::PUT,
                    &format!("/v1/tenants/{id}/zones/bronze"),
                    Some(body),
                )
                .await;
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap_or_default())
        }
    });
    let answers = futures_util::future::join_all(puts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 409, 409, 409, 409, 409], "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(status, _)| *status == 409)
            .all(|(_, body)| body.contains("budget of 3")),
        "every refusal is the budget's: {answers:?}"
    );
    let shard = app.state.store.shard_policies(0).await.expect("policies");
    assert_eq!(
        lake_manager::lifecycle::tenant_rules(&app.state.config.zones, &shard),
        3,
        "{shard:?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_overrides_never_pass_the_shard_budget_on_sqlite() {
    racing_overrides_never_pass_the_shard_budget(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_overrides_never_pass_the_shard_budget_on_postgres() {
    racing_overrides_never_pass_the_shard_budget(Backend::Postgres).await;
}

/// The write fence: a commit under way when a migration starts holds the copy back until it
/// ends. Here a writer's intent is taken as a group commit takes it, and kept (a writer frozen
/// mid-commit); the tenant goes `migrating` at once, but nothing is copied to the new bucket
/// while the intent is live, and the migration completes once it ends. A writer arriving after
/// the fence went up reads `migrating` and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_copies_nothing_while_a_commit_is_under_way() {
    let app = TestApp::spawn_with(
        Backend::Postgres,
        |c| c.workers.reconcile_secs = 1,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "mover").await;
    let table = json!({"zone": "silver", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/mover/tables", Some(table), 201)
        .await;
    let id = tenancy::tenant::TenantId::parse("mover").expect("id");
    let (seen, writer) = lake_manager::fence::Intent::begin(&app.state.store, &id, "frozen")
        .await
        .expect("intent");
    assert_eq!(seen.expect("tenant").status, tenancy::tenant::TenantStatus::Ready);

    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/mover",
        Some(json!({"isolation": "dedicated"})),
        200,
    )
    .await;
    app.wait_for_status(&admin, "mover", "migrating").await;
    let (late, refused) = lake_manager::fence::Intent::begin(&app.state.store, &id, "late")
        .await
        .expect("intent");
    assert_eq!(
        late.expect("tenant").status,
        tenancy::tenant::TenantStatus::Migrating,
        "a writer after the fence sees it"
    );
    refused.end().await;
    // The migration worker runs meanwhile; held by the intent, it copies nothing.
    let new = app.data_dir.path().join("lake/lakeplane-t-mover");
    let held_until = std::time::Instant::now() + std::time::Duration::from_millis(1_500);
    while std::time::Instant::now() < held_until {
        let copied = match std::fs::read_dir(new.join("silver")) {
            Ok(entries) => entries.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => panic!("cannot read the new location: {e}"),
        };
        assert_eq!(copied, 0, "nothing is copied while a commit is under way");
        let tenant = app
            .expect(&admin, Method::GET, "/v1/tenants/mover", None, 200)
            .await;
        assert_eq!(tenant["status"], "migrating", "{tenant}");
        assert_eq!(tenant["migration"]["phase"], "draining", "{tenant}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("lakeplane_placement_migrations{phase=\"draining\"} 1"),
        "{metrics}"
    );
    writer.end().await;
    let moved = app.wait_for_status(&admin, "mover", "ready").await;
    assert_eq!(moved["placement"]["kind"], "dedicated", "{moved}");
    let migration = &moved["migration"];
    assert_eq!(migration["phase"], "cleanup", "{moved}");
    assert!(migration["drained_at"].is_string(), "{moved}");
    assert!(
        migration["objects_total"].as_u64().is_some_and(|n| n > 0)
            && migration["objects_copied"] == migration["objects_total"],
        "every listed object copied: {moved}"
    );
    assert!(
        new.join("silver/mover/orders/_delta_log").is_dir(),
        "the table was copied once the commit ended"
    );
    app.shutdown().await;
}

/// A migration the destination refuses is rolled back: here the dedicated bucket's place on
/// local storage is taken by a file, so the bucket cannot be made. The tenant stays shared with
/// its data where it was, is `ready` (writable) again with the reason, and the rollback is
/// audited; a tenant-admin reads the reason without the plane's error chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_the_destination_refuses_rolls_back_and_the_tenant_stays_writable() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.workers.reconcile_secs = 1,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "stuck").await;
    let table = json!({"zone": "silver", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/stuck/tables", Some(table), 201)
        .await;
    let blocker = app.data_dir.path().join("lake/lakeplane-t-stuck");
    std::fs::write(&blocker, b"not a bucket").expect("blocker");

    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/stuck",
        Some(json!({"isolation": "dedicated"})),
        200,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let back = loop {
        let tenant = app
            .expect(&admin, Method::GET, "/v1/tenants/stuck", None, 200)
            .await;
        if tenant["status"] == "ready" && tenant["status_reason"].is_string() {
            break tenant;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never rolled back: {tenant}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(back["placement"]["kind"], "shared", "{back}");
    assert!(back.get("migration").is_none(), "no migration left: {back}");
    let reason = back["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the move to dedicated storage was rolled back"),
        "{reason}"
    );
    let tenant_admin = app.token(Role::TenantAdmin, Some("stuck")).await;
    let seen = app
        .expect(&tenant_admin, Method::GET, "/v1/tenants/stuck", None, 200)
        .await;
    let shown = seen["status_reason"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("the move to dedicated storage was rolled back and the tenant stays where it was;")
            && !shown.contains("lakeplane-t-stuck"),
        "{shown}"
    );
    // Writable again, at its old place.
    let more = json!({"zone": "silver", "name": "more", "columns": [{"name": "id", "type": "long"}]});
    let created = app
        .expect(&admin, Method::POST, "/v1/tenants/stuck/tables", Some(more), 201)
        .await;
    assert!(
        created["location"]
            .as_str()
            .unwrap_or_default()
            .contains("lakeplane-shared-0000"),
        "{created}"
    );
    let audit = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?action=tenant.migrate.rollback&tenant=stuck",
            None,
            200,
        )
        .await;
    assert_eq!(audit["items"].as_array().map(Vec::len), Some(1), "{audit}");
    assert_eq!(
        std::fs::read(&blocker).expect("blocker"),
        b"not a bucket",
        "what was not the plane's is left alone"
    );
    app.shutdown().await;
}
