//! `POST /v1/tenants/{tenant}/credentials`: temporary AWS credentials from STS, with moto as
//! the stand-in for AWS. moto ignores session policies, session tags and `SourceIdentity`, so
//! these tests put a recording forwarder (a stand-in for the network path to STS, below)
//! between the plane's STS client and moto, and assert exactly what the plane sent.
//! The boto3 check with IAM enforcement on is in `tests/binary/credentials.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;
use tenancy::tenant::{TenantId, TenantStatus};

use crate::helpers::{TestApp, fresh_prefix, moto_endpoint, on_moto, problem};

const ACCOUNT: &str = "123456789012";

/// A stand-in for the network path between the plane and STS: forwards every request to
/// moto unchanged, records the form of each `AssumeRole` moto answered, and while `failing` is
/// set answers `AssumeRole` itself with STS's 503 `ServiceUnavailable`, as an outage would.
struct StsRecorder {
    endpoint: String,
    shared: Arc<RecorderState>,
    server: tokio::task::JoinHandle<()>,
}

struct RecorderState {
    upstream: String,
    client: reqwest::Client,
    assumed: Mutex<Vec<HashMap<String, String>>>,
    failing: AtomicBool,
    refused: AtomicUsize,
}

async fn forward(
    State(shared): State<Arc<RecorderState>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let assume = form.get("Action").is_some_and(|a| a == "AssumeRole");
    if assume && shared.failing.load(Ordering::SeqCst) {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let error = "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code>\
                     <Message>stand-in outage</Message></Error><RequestId>x</RequestId></ErrorResponse>";
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/xml")],
            error,
        )
            .into_response();
    }
    let method = Method::from_bytes(method.as_str().as_bytes()).expect("method");
    let mut request = shared
        .client
        .request(method, format!("{}{uri}", shared.upstream))
        .body(body.clone());
    for (name, value) in &headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.send().await.expect("moto answers");
    let status = answer.status().as_u16();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml")
        .to_owned();
    let bytes = answer.bytes().await.expect("moto body");
    if assume && (200..300).contains(&status) {
        shared.assumed.lock().expect("lock").push(form);
    }
    (
        StatusCode::from_u16(status).expect("status"),
        [(header::CONTENT_TYPE, content_type)],
        bytes,
    )
        .into_response()
}

impl StsRecorder {
    async fn start(upstream: &str) -> Self {
        let shared = Arc::new(RecorderState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            assumed: Mutex::new(Vec::new()),
            failing: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint,
            shared,
            server,
        }
    }

    /// The `AssumeRole` forms moto answered, in order.
    fn assumed(&self) -> Vec<HashMap<String, String>> {
        self.shared.assumed.lock().expect("lock").clone()
    }
}

impl Drop for StsRecorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An app on moto with IAM on; its STS calls go through `sts` when given.
pub(crate) async fn iam_app(sts: Option<&str>) -> (TestApp, String) {
    let moto = moto_endpoint();
    let prefix = fresh_prefix();
    let bucket_prefix = prefix.clone();
    let sts = sts.map(|s| s.parse().expect("url"));
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            on_moto(c, &moto, &bucket_prefix);
            c.storage.s3.iam.enabled = true;
            c.storage.s3.iam.broker_principal = Some(format!("arn:aws:iam::{ACCOUNT}:user/broker"));
            c.storage.s3.iam.sts_endpoint = sts;
        },
        Router::new(),
    )
    .await;
    (app, prefix)
}

/// A ready tenant with gold tables `orders` and `customers`.
async fn tenant_with_tables(app: &TestApp, admin: &str, id: &str, tier: &str) {
    let body = json!({"id": id, "display_name": id, "tier": tier});
    let created = app.send_as(admin, Method::POST, "/v1/tenants", Some(body)).await;
    assert_eq!(created.status(), 201);
    app.wait_for_status(admin, id, "ready").await;
    for table in ["orders", "customers"] {
        let body = json!({"zone": "gold", "name": table, "columns": [{"name": "id", "type": "long"}]});
        app.expect(
            admin,
            Method::POST,
            &format!("/v1/tenants/{id}/tables"),
            Some(body),
            201,
        )
        .await;
    }
}

async fn ask(app: &TestApp, token: &str, tenant: &str, body: Value) -> reqwest::Response {
    app.send_as(
        token,
        Method::POST,
        &format!("/v1/tenants/{tenant}/credentials"),
        Some(body),
    )
    .await
}

async fn vended(app: &TestApp, token: &str, tenant: &str, body: Value) -> Value {
    let answer = ask(app, token, tenant, body).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "secrets are not cacheable"
    );
    answer.json().await.expect("json")
}

fn read_gold(tables: &[&str], ttl: u64) -> Value {
    json!({"zone": "gold", "tables": tables, "access": "read", "ttl_seconds": ttl})
}

/// The exact STS call for a shared tenant: the shard's ABAC role, tagged with the tenant,
/// The `jti` of a token, read from its payload.
fn jti(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let claims: Value = serde_json::from_slice(&payload).expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// `SourceIdentity` = the tenant, the token and the analyst, and a session policy narrowed to the two tables, read only.
/// The same request again is served from the cache; another subject or scope is a new call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_tenant_assumes_its_shard_role_tagged_narrowed_and_named_after_the_analyst() {
    let recorder = StsRecorder::start(&moto_endpoint()).await;
    let (app, prefix) = iam_app(Some(&recorder.endpoint)).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_tables(&app, &admin, "acme", "standard").await;
    let ann = app
        .token_for(
            "ann@acme.io",
            Role::Analyst,
            Some("acme"),
            chrono::Duration::hours(1),
        )
        .await;

    let first = vended(&app, &ann, "acme", read_gold(&["orders", "customers"], 900)).await;
    let bucket = format!("{prefix}-shared-0000");
    assert_eq!(first["kind"], "aws_sts");
    assert_eq!(first["region"], "eu-west-1");
    assert_eq!(first["endpoint"], moto_endpoint().trim_end_matches('/'));
    assert_eq!(
        first["locations"],
        json!([
            format!("s3://{bucket}/gold/acme/customers/"),
            format!("s3://{bucket}/gold/acme/orders/")
        ])
    );
    for field in ["access_key_id", "secret_access_key", "session_token"] {
        assert!(first[field].as_str().is_some_and(|s| !s.is_empty()), "{field}");
    }
    let expiration: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(first["expiration"].clone()).expect("expiration");
    let left = (expiration - chrono::Utc::now()).num_seconds();
    assert!((850..=900).contains(&left), "{left} s left");

    let calls = recorder.assumed();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        call["RoleArn"],
        format!("arn:aws:iam::{ACCOUNT}:role/{prefix}-shard-0000")
    );
    // The tenant and the token lead: the subject alone is a name the tenant-admin chose.
    assert_eq!(call["SourceIdentity"], format!("acme.{}.ann@acme.io", jti(&ann)));
    assert_eq!(call["RoleSessionName"], "acme.ann@acme.io");
    assert_eq!(call["DurationSeconds"], "900");
    assert_eq!(call["Tags.member.1.Key"], "tenant");
    assert_eq!(call["Tags.member.1.Value"], "acme");
    assert!(!call.contains_key("Tags.member.2.Key"), "one tag only");
    let policy: Value = serde_json::from_str(&call["Policy"]).expect("policy json");
    assert_eq!(
        policy,
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{bucket}")],
                 "Condition": {"StringLike": {"s3:prefix": ["gold/acme/customers/*", "gold/acme/orders/*"]}}},
                {"Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": [format!("arn:aws:s3:::{bucket}/gold/acme/customers/*"),
                              format!("arn:aws:s3:::{bucket}/gold/acme/orders/*")]}
            ]
        })
    );

    // Same caller, same scope (tables in another order): the cache answers, STS is not called.
    let second = vended(&app, &ann, "acme", read_gold(&["customers", "orders"], 900)).await;
    assert_eq!(second["access_key_id"], first["access_key_id"]);
    assert_eq!(second["secret_access_key"], first["secret_access_key"]);
    assert_eq!(recorder.assumed().len(), 1, "no second STS call");
    // Lifetimes round down to a multiple of 900 s: 1000 s is the same call, from the cache.
    let rounded = vended(&app, &ann, "acme", read_gold(&["customers", "orders"], 1000)).await;
    assert_eq!(rounded["access_key_id"], first["access_key_id"]);
    assert_eq!(
        recorder.assumed().len(),
        1,
        "no STS call for another lifetime in the bucket"
    );

    // Another scope: a new call.
    let narrower = vended(&app, &ann, "acme", read_gold(&["orders"], 900)).await;
    assert_ne!(narrower["access_key_id"], first["access_key_id"]);
    assert_eq!(recorder.assumed().len(), 2);

    // Another analyst, same scope: a new call, named after them (unusual characters mapped).
    let job = app
        .token_for(
            "svc:etl/job#1",
            Role::Scientist,
            Some("acme"),
            chrono::Duration::hours(1),
        )
        .await;
    let other = vended(&app, &job, "acme", read_gold(&["orders", "customers"], 900)).await;
    assert_ne!(other["access_key_id"], first["access_key_id"]);
    let calls = recorder.assumed();
    assert_eq!(calls.len(), 3, "a cached credential never names another analyst");
    assert_eq!(
        calls[2]["SourceIdentity"],
        format!("acme.{}.svc-etl-job-1", jti(&job))
    );
    assert_eq!(calls[2]["RoleSessionName"], "acme.svc-etl-job-1");

    // Every issuance is audited, cached ones too, and no secret is in the audit log.
    let audit = app
        .get_as(&admin, "/v1/audit?tenant=acme&action=credentials.issue")
        .await
        .text()
        .await
        .expect("audit");
    let events: Value = serde_json::from_str(&audit).expect("json");
    let events = events["items"].as_array().expect("items");
    assert_eq!(events.len(), 5, "{events:?}");
    let targets: Vec<&str> = events
        .iter()
        .map(|e| e["target"].as_str().expect("target"))
        .collect();
    assert_eq!(targets.iter().filter(|t| t.ends_with("(cached)")).count(), 2);
    assert!(
        targets
            .iter()
            .any(|t| t.contains(&format!("source-identity acme.{}.ann@acme.io", jti(&ann))))
    );
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "svc:etl/job#1" && e["outcome"] == "success")
    );
    let everything = app
        .get_as(&admin, "/v1/audit?limit=500")
        .await
        .text()
        .await
        .expect("audit");
    for answer in [&first, &narrower, &other] {
        let key = answer["access_key_id"].as_str().expect("key");
        assert!(audit.contains(key), "the access key id is audited");
        for secret in ["secret_access_key", "session_token"] {
            let secret = answer[secret].as_str().expect("secret");
            assert!(!everything.contains(secret), "a secret reached the audit log");
        }
    }
    app.shutdown().await;
}

/// Twenty concurrent misses make one STS call; an STS outage answers 503 and is not cached,
/// so the next request after it gets credentials from a new call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_call_and_sts_errors_are_not_cached() {
    let recorder = StsRecorder::start(&moto_endpoint()).await;
    let (app, prefix) = iam_app(Some(&recorder.endpoint)).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_tables(&app, &admin, "bigco", "enterprise").await;
    let ann = app
        .token_for("ann", Role::Analyst, Some("bigco"), chrono::Duration::hours(1))
        .await;
    let requests = (0..20).map(|_| vended(&app, &ann, "bigco", read_gold(&["orders"], 900)));
    let answers = futures_util::future::join_all(requests).await;
    let keys: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a["access_key_id"].as_str().expect("key"))
        .collect();
    assert_eq!(keys.len(), 1, "all twenty got the same credentials");
    let calls = recorder.assumed();
    assert_eq!(calls.len(), 1, "one STS call for twenty concurrent misses");
    assert_eq!(
        calls[0]["RoleArn"],
        format!("arn:aws:iam::{ACCOUNT}:role/{prefix}-t-bigco"),
        "a dedicated tenant assumes its own role"
    );
    assert!(
        !calls[0].keys().any(|k| k.starts_with("Tags")),
        "no session tags on a dedicated role"
    );

    recorder.shared.failing.store(true, Ordering::SeqCst);
    let refused = ask(&app, &ann, "bigco", read_gold(&["orders"], 1800)).await;
    assert!(refused.headers().contains_key("retry-after"));
    let body = problem(refused, 503).await;
    assert_eq!(body["type"], "urn:lakeplane:problem:sts-unavailable");
    assert!(recorder.shared.refused.load(Ordering::SeqCst) >= 1);
    recorder.shared.failing.store(false, Ordering::SeqCst);
    let after = vended(&app, &ann, "bigco", read_gold(&["orders"], 1800)).await;
    assert_ne!(after["access_key_id"], answers[0]["access_key_id"]);
    assert_eq!(recorder.assumed().len(), 2, "the error was not cached");
    let errors: Value = app
        .get_as(&admin, "/v1/audit?tenant=bigco&action=credentials.issue")
        .await
        .json()
        .await
        .expect("json");
    let outcomes: Vec<&str> = errors["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 21);
    assert_eq!(outcomes.iter().filter(|o| **o == "error").count(), 1);
    app.shutdown().await;
}

/// Field and role rules: unknown fields, zones and access values, lifetimes, tables; zone
/// access of the caller's own role; another tenant's caller; a tenant in flux.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_validated_and_held_to_the_callers_own_access() {
    let (app, _) = iam_app(None).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_tables(&app, &admin, "acme", "enterprise").await;
    let created = app
        .send_as(
            &admin,
            Method::POST,
            "/v1/tenants",
            Some(json!({"id": "other", "display_name": "Other", "tier": "standard"})),
        )
        .await;
    assert_eq!(created.status(), 201);
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let cases = [
        (
            json!({"zone": "gold", "access": "read", "ttl_seconds": 900, "extra": 1}),
            "extra",
        ),
        (
            json!({"zone": "platinum", "access": "read", "ttl_seconds": 900}),
            "zone",
        ),
        (
            json!({"zone": "gold", "access": "admin", "ttl_seconds": 900}),
            "access",
        ),
        (
            json!({"zone": "gold", "access": "read", "ttl_seconds": 899}),
            "ttl_seconds",
        ),
        (
            json!({"zone": "gold", "access": "read", "ttl_seconds": 3601}),
            "ttl_seconds",
        ),
        (json!({"zone": "gold", "access": "read"}), "body"),
        (
            json!({"zone": "gold", "access": "read", "ttl_seconds": 900, "tables": []}),
            "tables",
        ),
        (read_gold(&["orders", "orders"], 900), "tables[1]"),
        (read_gold(&["Not-A-Name"], 900), "tables[0]"),
        (read_gold(&["orders", "missing"], 900), "tables[1]"),
        (
            json!({"zone": "silver", "tables": ["orders"], "access": "read", "ttl_seconds": 900}),
            "tables[0]",
        ),
    ];
    for (body, field) in cases {
        let answer = problem(ask(&app, &engineer, "acme", body.clone()).await, 422).await;
        let errors = answer["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field || e["message"].as_str().is_some_and(|m| m.contains(field))),
            "{body} -> {answer}"
        );
    }
    // Only the access the caller holds: analysts read gold and silver, never write; viewers
    // read gold only; nobody but writers reaches bronze.
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    let viewer = app.token(Role::Viewer, Some("acme")).await;
    let write = json!({"zone": "gold", "access": "write", "ttl_seconds": 900});
    let forbidden = problem(ask(&app, &analyst, "acme", write.clone()).await, 403).await;
    assert!(
        forbidden["detail"]
            .as_str()
            .expect("detail")
            .contains("write the gold zone")
    );
    let silver = json!({"zone": "silver", "access": "read", "ttl_seconds": 900});
    problem(ask(&app, &viewer, "acme", silver).await, 403).await;
    assert_eq!(
        ask(&app, &viewer, "acme", read_gold(&["orders"], 900))
            .await
            .status(),
        200
    );
    assert_eq!(ask(&app, &engineer, "acme", write.clone()).await.status(), 200);

    // Another tenant's caller, whatever its role: 404, as if the tenant did not exist.
    let stranger = app.token(Role::TenantAdmin, Some("other")).await;
    problem(
        ask(&app, &stranger, "acme", read_gold(&["orders"], 900)).await,
        404,
    )
    .await;
    problem(ask(&app, &engineer, "nobody", read_gold(&[], 900)).await, 404).await;

    // A tenant whose placement is in flux gets none, cached or not.
    let acme = TenantId::parse("acme").expect("id");
    app.state
        .store
        .set_tenant_status(&acme, TenantStatus::Migrating, None)
        .await
        .expect("status");
    let busy = problem(ask(&app, &engineer, "acme", write.clone()).await, 409).await;
    assert_eq!(busy["type"], "urn:lakeplane:problem:tenant-not-ready");
    app.state
        .store
        .set_tenant_status(&acme, TenantStatus::Ready, None)
        .await
        .expect("status");
    assert_eq!(ask(&app, &engineer, "acme", write).await.status(), 200);
    app.shutdown().await;
}

/// On the embedded default (local storage) and on S3 without IAM there is no AWS identity to
/// vend: 422, pointing to Delta Sharing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_aws_identity_the_answer_is_422_pointing_to_delta_sharing() {
    let local = TestApp::spawn(Backend::Sqlite).await;
    let moto = moto_endpoint();
    let prefix = fresh_prefix();
    let no_iam = TestApp::spawn_with(Backend::Sqlite, |c| on_moto(c, &moto, &prefix), Router::new()).await;
    for (app, why) in [
        (&local, "local storage"),
        (&no_iam, "storage.s3.iam.enabled = false"),
    ] {
        let admin = app.token(Role::PlatformAdmin, None).await;
        app.ready_tenant(&admin, "acme").await;
        let analyst = app.token(Role::Analyst, Some("acme")).await;
        let answer = problem(ask(app, &analyst, "acme", read_gold(&[], 900)).await, 422).await;
        assert_eq!(answer["type"], "urn:lakeplane:problem:credentials-not-available");
        let detail = answer["detail"].as_str().expect("detail");
        assert!(detail.contains(why), "{detail}");
        assert!(
            detail.contains("Delta Sharing") && detail.contains("/v1/tenants/{tenant}/shares"),
            "{detail}"
        );
        // Roles still hold first: an analyst asking to write learns nothing more than 403.
        let write = json!({"zone": "gold", "access": "write", "ttl_seconds": 900});
        problem(ask(app, &analyst, "acme", write).await, 403).await;
    }
    local.shutdown().await;
    no_iam.shutdown().await;
}

/// Grants narrow credentials: Bob, an analyst with `SELECT` on `gold.orders` only, asks for the
/// whole gold zone and gets a session policy for that one table's prefix (the STS call is
/// checked, because moto does not enforce session policies); naming `gold.customers` is a
/// 404, and another analyst without grants gets 403 for the zone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_wide_request_is_narrowed_to_the_granted_tables() {
    let recorder = StsRecorder::start(&moto_endpoint()).await;
    let (app, prefix) = iam_app(Some(&recorder.endpoint)).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    tenant_with_tables(&app, &admin, "acme", "standard").await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let change = |securable: &'static str, changes: Value| {
        let (app, token) = (&app, acme_admin.clone());
        async move {
            let path = format!("/v1/tenants/acme/grants/{securable}");
            app.expect(
                &token,
                Method::PATCH,
                &path,
                Some(json!({ "changes": changes })),
                200,
            )
            .await
        }
    };
    change(
        "zones/gold",
        json!([{"principal": "role:analyst", "remove": ["SELECT"]}]),
    )
    .await;
    change(
        "tables/gold/orders",
        json!([{"principal": "user:bob", "add": ["SELECT"]}]),
    )
    .await;
    let hour = chrono::Duration::hours(1);
    let bob = app.token_for("bob", Role::Analyst, Some("acme"), hour).await;

    let zone_wide = json!({"zone": "gold", "access": "read", "ttl_seconds": 900});
    let got = vended(&app, &bob, "acme", zone_wide.clone()).await;
    let bucket = format!("{prefix}-shared-0000");
    assert_eq!(
        got["locations"],
        json!([format!("s3://{bucket}/gold/acme/orders/")])
    );
    let calls = recorder.assumed();
    assert_eq!(calls.len(), 1);
    let policy: Value = serde_json::from_str(&calls[0]["Policy"]).expect("policy json");
    assert_eq!(
        policy["Statement"],
        json!([
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [format!("arn:aws:s3:::{bucket}")],
             "Condition": {"StringLike": {"s3:prefix": ["gold/acme/orders/*"]}}},
            {"Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [format!("arn:aws:s3:::{bucket}/gold/acme/orders/*")]}
        ])
    );
    assert_eq!(
        ask(&app, &bob, "acme", read_gold(&["customers"], 900))
            .await
            .status(),
        404
    );
    let carol = app.token_for("carol", Role::Analyst, Some("acme"), hour).await;
    assert_eq!(ask(&app, &carol, "acme", zone_wide).await.status(), 403);
    assert_eq!(recorder.assumed().len(), 1, "refusals call no STS");

    // The tenant lowers its own cap on lifetimes: longer requests are refused naming the field.
    let tenant = "/v1/tenants/acme";
    let bad = app
        .send_as(
            &acme_admin,
            Method::PATCH,
            tenant,
            Some(json!({"credential_max_ttl_secs": 100})),
        )
        .await;
    assert_eq!(
        problem(bad, 422).await["errors"][0]["field"],
        "credential_max_ttl_secs"
    );
    let capped = app
        .expect(
            &acme_admin,
            Method::PATCH,
            tenant,
            Some(json!({"credential_max_ttl_secs": 900})),
            200,
        )
        .await;
    assert_eq!(capped["credential_max_ttl_secs"], 900);
    let long = json!({"zone": "gold", "access": "read", "ttl_seconds": 1800});
    let refused = ask(&app, &bob, "acme", long).await;
    assert_eq!(problem(refused, 422).await["errors"][0]["field"], "ttl_seconds");
    assert_eq!(recorder.assumed().len(), 1);
    let short = vended(
        &app,
        &bob,
        "acme",
        json!({"zone": "gold", "access": "read", "ttl_seconds": 900}),
    )
    .await;
    assert_eq!(short["locations"], got["locations"]);
}
