//! Vended AWS credentials used by clients nobody here wrote (boto3, the Python `deltalake`
//! reader), against a moto server of this test's own with IAM enforcement on (moto is the
//! stand-in for AWS). The real binary runs as the broker: an IAM user whose keys reach it
//! through the standard AWS environment, as on AWS. moto checks the broker's policy and the
//! role's trust policy on `AssumeRole`, and the session's role policy on each S3 call.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{expect_status, python};
use crate::helpers::{Server, call, cli_token, lakeplane};

#[path = "../../../lake-manager/tests/common/auth_moto.rs"]
mod auth_moto;
use auth_moto::AuthMoto;

/// Creates the broker user (allowed everything the plane does: S3, IAM, STS) and prints its
/// access key as JSON.
const BROKER: &str = r#"
import sys, json, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName="broker")
iam.put_user_policy(UserName="broker", PolicyName="plane", PolicyDocument=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*", "sts:*"], "Resource": "*"}]}))
key = iam.create_access_key(UserName="broker")["AccessKey"]
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
"#;

/// With the vended credentials: list and read the own table's files, then try the other
/// tenant's bucket; and open the own table with the `deltalake` reader.
const USE_CREDENTIALS: &str = r#"
import sys, json, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
c = json.loads(sys.argv[1]); own, other, location = sys.argv[2], sys.argv[3], sys.argv[4]
s3 = boto3.client("s3", endpoint_url=c["endpoint"], region_name=c["region"],
                  aws_access_key_id=c["access_key_id"], aws_secret_access_key=c["secret_access_key"],
                  aws_session_token=c["session_token"], config=Config(s3={"addressing_style": "path"}))
out = {}
listed = s3.list_objects_v2(Bucket=own, Prefix="gold/alpha/orders/")
out["own_keys"] = sorted(o["Key"] for o in listed.get("Contents", []))
log = s3.get_object(Bucket=own, Key="gold/alpha/orders/_delta_log/00000000000000000000.json")["Body"].read()
out["own_log_lines"] = len(log.splitlines())
def code(call):
    try:
        call()
        return "allowed"
    except ClientError as e:
        return e.response["Error"]["Code"]
out["other_get"] = code(lambda: s3.get_object(Bucket=other, Key="gold/beta/orders/_delta_log/00000000000000000000.json"))
out["other_list"] = code(lambda: s3.list_objects_v2(Bucket=other))
out["other_put"] = code(lambda: s3.put_object(Bucket=other, Key="gold/beta/orders/evil.parquet", Body=b"x"))
from deltalake import DeltaTable
table = DeltaTable(location, storage_options={
    "AWS_ACCESS_KEY_ID": c["access_key_id"], "AWS_SECRET_ACCESS_KEY": c["secret_access_key"],
    "AWS_SESSION_TOKEN": c["session_token"], "AWS_ENDPOINT_URL": c["endpoint"], "AWS_REGION": c["region"],
    "AWS_ALLOW_HTTP": "true", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false"})
out["delta_version"] = table.version()
out["delta_columns"] = [f.name for f in table.schema().fields]
print(json.dumps(out))
"#;

async fn wait_ready(server: &Server, token: &str, tenant: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body: Value = server
            .get_as(token, &format!("/v1/tenants/{tenant}"))
            .await
            .json()
            .await
            .expect("json");
        if body["status"] == "ready" {
            return;
        }
        assert!(
            body["status"] == "provisioning" && Instant::now() < deadline,
            "{tenant}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vended_read_credentials_reach_the_tenants_table_files_and_nothing_else() {
    let moto = AuthMoto::start().await;
    let broker: Value = serde_json::from_str(&python(BROKER, &[&moto.endpoint])).expect("broker key");

    let prefix = format!("lp{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let key_id = broker["id"].as_str().expect("id").to_owned();
    let secret = broker["secret"].as_str().expect("secret").to_owned();
    let env = [
        ("AWS_ACCESS_KEY_ID", key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("LAKEPLANE__STORAGE__KIND", "s3"),
        ("LAKEPLANE__STORAGE__S3__REGION", "eu-west-1"),
        ("LAKEPLANE__STORAGE__S3__ENDPOINT", moto.endpoint.as_str()),
        ("LAKEPLANE__STORAGE__S3__PATH_STYLE", "true"),
        ("LAKEPLANE__STORAGE__S3__BUCKET_PREFIX", prefix.as_str()),
        ("LAKEPLANE__STORAGE__S3__IAM__ENABLED", "true"),
        (
            "LAKEPLANE__STORAGE__S3__IAM__BROKER_PRINCIPAL",
            "arn:aws:iam::123456789012:user/broker",
        ),
    ];
    let cwd = tempfile::tempdir().expect("cwd");
    let mut command = lakeplane(cwd.path());
    command.envs(env).env_remove("AWS_SESSION_TOKEN");
    let server = Server::start(command).await;
    let admin = cli_token(cwd.path(), &env, &["--role", "platform-admin"]).await;
    for id in ["alpha", "beta"] {
        let body = json!({"id": id, "display_name": id, "tier": "enterprise"});
        let created = call(&server, &admin, reqwest::Method::POST, "/v1/tenants", Some(body)).await;
        assert_eq!(created.status(), 201);
        wait_ready(&server, &admin, id).await;
        let table = json!({"zone": "gold", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
        let path = format!("/v1/tenants/{id}/tables");
        let created = call(&server, &admin, reqwest::Method::POST, &path, Some(table)).await;
        expect_status(created, &path, 201).await;
    }
    // Enforcement goes on once storage exists: moto re-encodes a form body to check its
    // signature and spells spaces differently from the Rust SDK, so it rejects IAM CreateRole
    // (whose description has spaces) as badly signed. AssumeRole and S3 calls check fine.
    moto.enforce_auth().await;
    let issued: Value = call(
        &server,
        &admin,
        reqwest::Method::POST,
        "/v1/tenants/alpha/tokens",
        Some(json!({"subject": "ann", "role": "analyst", "ttl_seconds": 3600})),
    )
    .await
    .json()
    .await
    .expect("json");
    let analyst = issued["token"].as_str().expect("token").to_owned();

    let write = json!({"zone": "gold", "access": "write", "ttl_seconds": 900});
    let refused = call(
        &server,
        &analyst,
        reqwest::Method::POST,
        "/v1/tenants/alpha/credentials",
        Some(write),
    )
    .await;
    assert_eq!(
        refused.status(),
        403,
        "an analyst cannot hand itself write access"
    );

    let read = json!({"zone": "gold", "tables": ["orders"], "access": "read", "ttl_seconds": 900});
    let answer = call(
        &server,
        &analyst,
        reqwest::Method::POST,
        "/v1/tenants/alpha/credentials",
        Some(read),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let credentials: Value = answer.json().await.expect("json");
    let location = format!("s3://{prefix}-t-alpha/gold/alpha/orders/");
    assert_eq!(credentials["locations"], json!([location.clone()]));
    assert_eq!(credentials["endpoint"], moto.endpoint);

    let used: Value = serde_json::from_str(&python(
        USE_CREDENTIALS,
        &[
            &credentials.to_string(),
            &format!("{prefix}-t-alpha"),
            &format!("{prefix}-t-beta"),
            &location,
        ],
    ))
    .expect("json");
    assert!(
        used["own_keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k == "gold/alpha/orders/_delta_log/00000000000000000000.json"),
        "{used}"
    );
    assert!(used["own_log_lines"].as_u64().is_some_and(|n| n >= 2), "{used}");
    assert_eq!(used["other_get"], "AccessDenied", "{used}");
    assert_eq!(used["other_list"], "AccessDenied", "{used}");
    assert_eq!(used["other_put"], "AccessDenied", "{used}");
    assert_eq!(used["delta_version"], 0, "{used}");
    assert_eq!(used["delta_columns"], json!(["id"]), "{used}");

    // Neither the audit trail nor the server's log ever holds a secret.
    let audit = server
        .get_as(&admin, "/v1/audit?limit=500")
        .await
        .text()
        .await
        .expect("audit");
    let logs = server.logs().join("\n");
    assert!(audit.contains("credentials.issue"));
    for field in ["secret_access_key", "session_token"] {
        let value = credentials[field].as_str().expect("secret");
        assert!(!audit.contains(value), "{field} in the audit log");
        assert!(!logs.contains(value), "{field} in the server log");
    }
    assert!(
        !logs.contains(&secret),
        "the broker's secret key in the server log"
    );
    let (status, _) = server.terminate().await;
    assert!(status.success());
}
