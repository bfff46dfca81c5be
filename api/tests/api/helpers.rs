use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Once};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use api::config::Config;
use api::state::AppState;
use axum::Router;
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::role::Role;
use tenancy::store::testing::TestDatabase;
use tenancy::store::{Backend, TokenRecord};
use tenancy::tenant::TenantId;
use tenancy::token::Claims;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Logs go to the test output only when `TEST_LOG` is set, to keep failures readable.
fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter("debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// Every response the app gives is checked against the statuses its operation declares in
/// the served spec; an undeclared one is recorded here and fails the test at shutdown, so the
/// whole suite keeps the spec honest about what each route can answer.
#[derive(Clone)]
struct Conformance {
    declared: Arc<HashMap<(String, String), BTreeSet<u16>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Conformance {
    fn new() -> Self {
        let spec = serde_json::to_value(api::openapi::spec()).expect("spec serialises");
        let mut declared = HashMap::new();
        for (path, item) in spec["paths"].as_object().into_iter().flatten() {
            for (method, operation) in item.as_object().into_iter().flatten() {
                let statuses = operation["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(status, _)| status.parse().ok())
                    .collect();
                declared.insert((method.to_uppercase(), path.clone()), statuses);
            }
        }
        Self {
            declared: Arc::new(declared),
            violations: Arc::default(),
        }
    }
}

async fn conform(State(check): State<Conformance>, request: Request, next: Next) -> Response {
    let key = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| (request.method().as_str().to_owned(), p.as_str().to_owned()));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(key) = key
        && let Some(statuses) = check.declared.get(&key)
        && !statuses.contains(&status)
    {
        check.violations.lock().expect("lock").push(format!(
            "{} {} answered {status}, declares {statuses:?}",
            key.0, key.1
        ));
    }
    response
}

/// A running application with its own data directory and database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub data_dir: tempfile::TempDir,
    db: Option<TestDatabase>,
    conformance: Conformance,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), api::server::ServeError>>>,
}

impl TestApp {
    /// The app as configured by default, on the given backend.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}, Router::new()).await
    }

    /// The app with config tweaks and extra fixture routes behind the real middleware.
    pub async fn spawn_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Config),
        extra: Router<AppState>,
    ) -> Self {
        let db = TestDatabase::new(backend).await;
        Self::start(Some(db), None, tweak, extra).await
    }

    /// A second replica: same database, same signing key, its own process state.
    pub async fn replica(&self, tweak: impl FnOnce(&mut Config)) -> Self {
        let key = self.data_dir.path().join("jwt-signing-key.pem");
        let url = self.state.config.database_url();
        let tweak = move |c: &mut Config| {
            c.auth.signing_key_file = Some(key);
            tweak(c);
        };
        Self::start(None, Some(url), tweak, Router::new()).await
    }

    async fn start(
        db: Option<TestDatabase>,
        shared_url: Option<tenancy::store::DatabaseUrl>,
        tweak: impl FnOnce(&mut Config),
        extra: Router<AppState>,
    ) -> Self {
        init_logs();
        let url = db
            .as_ref()
            .map(|d| d.url.clone())
            .or(shared_url)
            .expect("a database");
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        config.database.url = Some(url);
        config.server.listen = "127.0.0.1:0".parse().expect("addr");
        tweak(&mut config);
        config.validate().expect("test config is valid");
        let state = AppState::start(config).await.expect("app starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let conformance = Conformance::new();
        let app = api::app::router_with(state.clone(), extra)
            .layer(axum::middleware::from_fn_with_state(conformance.clone(), conform));
        let server = tokio::spawn(api::server::serve(
            listener,
            app,
            async move {
                let _ = stopped.await;
            },
            std::time::Duration::from_secs(10),
        ));
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder().build().expect("client"),
            state,
            data_dir,
            db,
            conformance,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Mints and records a token the way the API does, signed with the app's key.
    pub async fn token(&self, role: Role, tenant: Option<&str>) -> String {
        self.token_for("tester", role, tenant, chrono::Duration::hours(1))
            .await
    }

    /// A token with a given subject and lifetime (negative lifetimes make expired tokens).
    pub async fn token_for(
        &self,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
        ttl: chrono::Duration,
    ) -> String {
        self.token_with_groups(subject, role, tenant, &[], ttl).await
    }

    /// A token that also carries `groups`.
    pub async fn token_with_groups(
        &self,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
        groups: &[&str],
        ttl: chrono::Duration,
    ) -> String {
        let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        let tenant = tenant.map(|t| TenantId::parse(t).expect("valid tenant id"));
        let issued_at = tenancy::now();
        let record = TokenRecord {
            id: uuid::Uuid::now_v7(),
            tenant: tenant.clone(),
            subject: subject.to_owned(),
            role,
            issued_by: "test".to_owned(),
            issued_at,
            expires_at: issued_at + ttl,
            revoked_at: None,
            groups: groups.clone(),
        };
        let settings = self.state.config.auth.token_settings();
        let mut claims = Claims::new(
            subject,
            role,
            tenant.as_ref(),
            record.id,
            issued_at,
            record.expires_at,
            &settings,
        );
        claims.groups = groups;
        let token = self.state.signer.sign(&claims).expect("sign");
        let audit = AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: issued_at,
            actor: "test".into(),
            role: None,
            tenant: tenant.map(|t| t.to_string()),
            action: "token.create".into(),
            target: "test".into(),
            outcome: Outcome::Success,
            request_id: None,
            source: None,
            token_id: None,
            issuer: None,
            occurrences: 1,
            details: None,
        };
        self.state
            .store
            .insert_token(&record, None, &audit)
            .await
            .expect("record token");
        token
    }

    /// A GET with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// A request with a bearer token and an optional JSON body.
    pub async fn send_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// Sends a request as `token`, checks the status (showing the body when it differs) and
    /// returns the body as JSON (`Null` when empty).
    pub async fn expect(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        status: u16,
    ) -> serde_json::Value {
        let response = self.send_as(token, method.clone(), path, body).await;
        crate::common::expect_status(response, &format!("{method} {path}"), status).await
    }

    /// Creates tenant `id` (standard tier) as `admin` and waits until it is ready.
    pub async fn ready_tenant(&self, admin: &str, id: &str) {
        let body = serde_json::json!({"id": id, "display_name": id, "tier": "standard"});
        self.expect(admin, reqwest::Method::POST, "/v1/tenants", Some(body), 201)
            .await;
        self.wait_for_status(admin, id, "ready").await;
    }

    /// Makes bronze table `table` of `tenant` with `columns` (the API's column objects) and the
    /// HTTP stream `stream` into it, as `token`.
    pub async fn bronze_with_http_stream(
        &self,
        token: &str,
        tenant: &str,
        table: &str,
        columns: serde_json::Value,
        stream: &str,
    ) {
        let body = serde_json::json!({"zone": "bronze", "name": table, "columns": columns});
        self.expect(
            token,
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/tables"),
            Some(body),
            201,
        )
        .await;
        let body = serde_json::json!({"name": stream, "table": {"zone": "bronze", "name": table},
            "source": {"type": "http"}});
        self.expect(
            token,
            reqwest::Method::POST,
            &format!("/v1/tenants/{tenant}/streams"),
            Some(body),
            201,
        )
        .await;
    }

    /// Polls a tenant until it reaches `status` (30 s at most: a migration's drain and copy on
    /// a loaded two-core machine took longer than 15 s once) and returns it.
    pub async fn wait_for_status(&self, token: &str, tenant: &str, status: &str) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let body: serde_json::Value = self
                .get_as(token, &format!("/v1/tenants/{tenant}"))
                .await
                .json()
                .await
                .expect("json");
            if body["status"] == status {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{tenant} never became {status}: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Stops the server gracefully and drops the database.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("graceful stop");
        }
        self.state.workers.shutdown().await;
        self.state.store.close().await;
        if let Some(db) = self.db.take() {
            db.drop_database().await;
        }
        let undeclared = self.conformance.violations.lock().expect("lock").clone();
        assert!(
            undeclared.is_empty(),
            "responses the spec does not declare: {undeclared:#?}"
        );
    }
}

/// Reads a raw HTTP/1.1 answer from `socket` to its end (within 30 s) and returns its status,
/// for requests sent by hand where a client library would change what goes out.
pub async fn raw_status(socket: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within 30 s")
    .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Reads a problem response, checking the media type and that it carries the request id.
pub async fn problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id on every response")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert_eq!(
        body["request_id"],
        request_id.as_str(),
        "problem names the request id"
    );
    for field in ["type", "title", "detail"] {
        assert!(
            body[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} in {body}"
        );
    }
    body
}

pub use crate::common::python;

/// The moto server standing in for S3 (`LAKEPLANE_TEST_S3_ENDPOINT`, started by `scripts/test`).
pub fn moto_endpoint() -> String {
    std::env::var("LAKEPLANE_TEST_S3_ENDPOINT")
        .expect("LAKEPLANE_TEST_S3_ENDPOINT must point at a moto server (scripts/test starts one)")
}

/// Points the config at moto with a fresh bucket prefix, so tests never share buckets.
pub fn on_moto(c: &mut Config, endpoint: &str, bucket_prefix: &str) {
    c.storage.kind = lake_manager::storage::StorageKind::S3;
    c.storage.s3.endpoint = Some(endpoint.parse().expect("endpoint url"));
    c.storage.s3.region = Some("eu-west-1".into());
    c.storage.s3.path_style = true;
    c.storage.s3.bucket_prefix = bucket_prefix.to_owned();
}

/// A bucket prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("lp{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

pub use crate::common::moto_storage_options;
