//! The provisioning saga through real crashes. With `LAKEPLANE_FAULT_KILL_AT` (a fault point
//! the test build compiles in, see `lake_manager::faults`) the server SIGKILLs itself right
//! after a step's side effect and before the step is recorded; started again, it resumes the
//! saga by itself. On moto with IAM on, for a dedicated tenant and for the first and the second
//! tenant of a shard, at every point: exactly one bucket per placement, one role each with one
//! inline policy, one lifecycle rule set without duplicates, the zone markers, and no orphan.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Server, cli_token, lakeplane};

const POINTS: [&str; 6] = [
    "provision.bucket",
    "provision.hardening",
    "provision.iam.role",
    "provision.iam.policy",
    "provision.lifecycle",
    "provision.zone_roots",
];

/// What exists on moto under a prefix: buckets, roles with their inline policies, each
/// bucket's lifecycle rule ids and its zone markers.
const INVENTORY: &str = r#"
import sys, json, boto3
endpoint, prefix = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
s3, iam = boto3.client("s3", **kw), boto3.client("iam", **kw)
buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(prefix + "-"))
roles = {}
for page in iam.get_paginator("list_roles").paginate():
    for r in page["Roles"]:
        if r["RoleName"].startswith(prefix + "-"):
            roles[r["RoleName"]] = sorted(iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"])
rules, markers = {}, {}
for b in buckets:
    try:
        rules[b] = [r.get("ID") for r in s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"]]
    except s3.exceptions.ClientError:
        rules[b] = []
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=b) for o in p.get("Contents", [])]
    markers[b] = sorted(k for k in keys if k.endswith("/"))
print(json.dumps({"buckets": buckets, "roles": roles, "rules": rules, "markers": markers}))
"#;

/// On moto, with the IAM step on.
fn env(endpoint: &str, prefix: &str) -> Vec<(String, String)> {
    let mut env = crate::helpers::moto_env(endpoint, prefix);
    env.extend([
        (
            "LAKEPLANE__STORAGE__S3__IAM__ENABLED".to_owned(),
            "true".to_owned(),
        ),
        (
            "LAKEPLANE__STORAGE__S3__IAM__BROKER_PRINCIPAL".to_owned(),
            "arn:aws:iam::123456789012:role/lakeplane-broker".to_owned(),
        ),
    ]);
    env
}

async fn start(cwd: &std::path::Path, env: &[(String, String)], kill_at: Option<&str>) -> Server {
    let mut command = lakeplane(cwd);
    command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(point) = kill_at {
        command.env("LAKEPLANE_FAULT_KILL_AT", point);
    }
    Server::start(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_killed_after_any_effect_resumes_with_no_duplicates_or_orphans() {
    let endpoint = std::env::var("LAKEPLANE_TEST_S3_ENDPOINT")
        .expect("LAKEPLANE_TEST_S3_ENDPOINT must point at a moto server (scripts/test starts one)");
    for point in POINTS {
        let cwd = tempfile::tempdir().expect("cwd");
        let prefix = format!("sg{}", &uuid::Uuid::now_v7().simple().to_string()[22..]);
        let env = env(&endpoint, &prefix);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let admin = cli_token(cwd.path(), &pairs, &["--role", "platform-admin"]).await;
        for (id, tier) in [
            ("ent", "enterprise"),
            ("share-a", "standard"),
            ("share-b", "standard"),
        ] {
            let mut doomed = start(cwd.path(), &env, Some(point)).await;
            // The 201 may or may not get out before the saga reaches the point.
            let _ = doomed
                .client
                .post(format!("{}/v1/tenants", doomed.base))
                .bearer_auth(&admin)
                .json(&json!({"id": id, "display_name": id, "tier": tier}))
                .send()
                .await;
            let status = tokio::time::timeout(Duration::from_secs(30), doomed.child.wait())
                .await
                .unwrap_or_else(|_| panic!("{point}: the server never reached the point for {id}"))
                .expect("wait");
            assert_eq!(status.signal(), Some(9), "{point}: killed by SIGKILL for {id}");

            let server = start(cwd.path(), &env, None).await;
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let tenant: Value = server
                    .get_as(&admin, &format!("/v1/tenants/{id}"))
                    .await
                    .json()
                    .await
                    .expect("json");
                if tenant["status"] == "ready" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{point}: {id} did not resume to ready: {tenant}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (exit, _) = server.terminate().await;
            assert_eq!(exit.code(), Some(0));
        }

        let seen: Value =
            serde_json::from_str(crate::common::python(INVENTORY, &[&endpoint, &prefix]).trim())
                .expect("json");
        let (dedicated, shard) = (format!("{prefix}-t-ent"), format!("{prefix}-shared-0000"));
        let buckets: Vec<&str> = seen["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(buckets, [shard.as_str(), dedicated.as_str()], "{point}: {seen}");
        let roles: BTreeMap<String, Vec<String>> =
            serde_json::from_value(seen["roles"].clone()).expect("roles");
        assert_eq!(
            roles.keys().map(String::as_str).collect::<Vec<_>>(),
            [format!("{prefix}-shard-0000"), format!("{prefix}-t-ent")],
            "{point}: one role per placement: {seen}"
        );
        for (role, policies) in &roles {
            assert_eq!(policies.len(), 1, "{point}: {role} has one inline policy: {seen}");
        }
        for bucket in [&dedicated, &shard] {
            let rules: Vec<String> =
                serde_json::from_value(seen["rules"][bucket.as_str()].clone()).expect("rules");
            let distinct: BTreeSet<&String> = rules.iter().collect();
            assert!(!rules.is_empty(), "{point}: {bucket} has its lifecycle: {seen}");
            assert_eq!(distinct.len(), rules.len(), "{point}: no rule twice: {seen}");
        }
        let markers = |bucket: &str| -> Vec<String> {
            serde_json::from_value(seen["markers"][bucket].clone()).expect("markers")
        };
        let zones = |id: &str| -> Vec<String> {
            ["bronze", "gold", "silver"]
                .iter()
                .map(|z| format!("{z}/{id}/"))
                .collect()
        };
        assert_eq!(markers(&dedicated), zones("ent"), "{point}: {seen}");
        let mut shared = zones("share-a");
        shared.extend(zones("share-b"));
        shared.sort();
        assert_eq!(markers(&shard), shared, "{point}: {seen}");
    }
}
