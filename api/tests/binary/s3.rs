//! The binary on S3, with the moto server standing in for AWS (endpoint in
//! `LAKEPLANE_TEST_S3_ENDPOINT`, started by `scripts/test`). Known moto gap: it drops
//! `ObjectSizeGreaterThan` from stored lifecycle filters, so drift shows on moto.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Server, cli_token, lakeplane};

#[tokio::test]
async fn the_same_tenant_flow_works_on_s3() {
    let endpoint = std::env::var("LAKEPLANE_TEST_S3_ENDPOINT")
        .expect("LAKEPLANE_TEST_S3_ENDPOINT must point at a moto server (scripts/test starts one)");
    assert!(
        std::env::var_os("AWS_ACCESS_KEY_ID").is_some(),
        "scripts/test exports dummy AWS credentials for moto"
    );
    let prefix = format!("lp{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let env = [
        ("LAKEPLANE__STORAGE__KIND", "s3"),
        ("LAKEPLANE__STORAGE__S3__REGION", "eu-west-1"),
        ("LAKEPLANE__STORAGE__S3__ENDPOINT", endpoint.as_str()),
        ("LAKEPLANE__STORAGE__S3__PATH_STYLE", "true"),
        ("LAKEPLANE__STORAGE__S3__BUCKET_PREFIX", prefix.as_str()),
        ("LAKEPLANE__STORAGE__S3__IAM__ENABLED", "true"),
        (
            "LAKEPLANE__STORAGE__S3__IAM__BROKER_PRINCIPAL",
            "arn:aws:iam::123456789012:role/lakeplane-broker",
        ),
    ];
    let cwd = tempfile::tempdir().expect("cwd");
    let mut command = lakeplane(cwd.path());
    command.envs(env);
    let server = Server::start(command).await;
    assert_eq!(server.get("/readyz").await.status(), 200);
    let admin = cli_token(cwd.path(), &env, &["--role", "platform-admin"]).await;
    let client = &server.client;
    let created = client
        .post(format!("{}/v1/tenants", server.base))
        .bearer_auth(&admin)
        .json(&json!({"id": "s3co", "display_name": "S3 Co", "tier": "enterprise"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(15);
    let tenant = loop {
        let tenant: Value = server
            .get_as(&admin, "/v1/tenants/s3co")
            .await
            .json()
            .await
            .expect("json");
        if tenant["status"] != "provisioning" {
            break tenant;
        }
        assert!(Instant::now() < deadline, "still provisioning: {tenant}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        tenant["status"], "ready",
        "bucket, hardening, IAM role, lifecycle and zone roots done: {tenant}"
    );
    assert_eq!(
        tenant["zones"]["gold"]["uri"],
        format!("s3://{prefix}-t-s3co/gold/s3co/")
    );

    let lifecycle: Value = server
        .get_as(&admin, "/v1/tenants/s3co/lifecycle")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(lifecycle["enforced"], true);
    let mut expected = lifecycle["desired"].clone();
    for rule in expected["Rules"].as_array_mut().expect("rules") {
        if let Some(filter) = rule["Filter"].as_object_mut() {
            filter.remove("ObjectSizeGreaterThan");
        }
    }
    assert_eq!(
        lifecycle["applied"], expected,
        "the bucket holds the computed rules (minus moto's gap)"
    );
    assert_eq!(
        lifecycle["drift"], true,
        "moto's dropped size filter shows as drift"
    );

    let buckets: Value = server
        .get_as(&admin, "/v1/admin/buckets?limit=500")
        .await
        .json::<Value>()
        .await
        .expect("json")["items"]
        .clone();
    let ours = buckets
        .as_array()
        .expect("list")
        .iter()
        .find(|b| b["name"] == format!("{prefix}-t-s3co"))
        .cloned();
    assert_eq!(ours.map(|b| b["enforced"].clone()), Some(json!(true)));

    let deleted = client
        .delete(format!("{}/v1/tenants/s3co", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 202);
    let report: Value = deleted.json().await.expect("json");
    assert_eq!(
        report["storage_locations"],
        json!([format!("s3://{prefix}-t-s3co")])
    );
    let (status, _) = server.terminate().await;
    assert_eq!(status.code(), Some(0));
}
