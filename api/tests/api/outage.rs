//! Dependencies going away, caused for real: the app's PostgreSQL connections and its S3
//! endpoint (moto) run through TCP proxies that the tests cut. Every `/v1` operation, walked
//! from the served spec, answers 503 with `Retry-After` and the problem type naming the
//! dependency, never a 500; and the app recovers by itself when the dependency is back.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::{Backend, DatabaseUrl};

use crate::common::PgProxy;
use crate::cross_tenant::{concrete, operations, request_for};
use crate::helpers::{TestApp, fresh_prefix, moto_endpoint, on_moto};

/// Polls `path` until it answers 200 (the dependency is back), within 30 s.
async fn recovers(app: &TestApp, token: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = app.get_as(token, path).await.status().as_u16();
        if status == 200 {
            return;
        }
        assert!(Instant::now() < deadline, "{path} still answers {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks a 503 that tells the client to come back: `Retry-After`, and a problem type ending
/// with `code`.
async fn unavailable(response: reqwest::Response, what: &str, code: &str) -> Result<(), String> {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").is_some();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 503 {
        return Err(format!("{what}: {status} {body}"));
    }
    if !retry_after {
        return Err(format!("{what}: 503 without Retry-After"));
    }
    let kind = body["type"].as_str().unwrap_or_default();
    if !kind.ends_with(code) {
        return Err(format!("{what}: type {kind:?}, expected …{code}"));
    }
    Ok(())
}

/// acme with a silver orders table, a bronze events table with the clicks stream, and the
/// sales share holding orders: something behind every route.
async fn acme(app: &TestApp, admin: &str) {
    app.ready_tenant(admin, "acme").await;
    for (zone, name) in [("silver", "orders"), ("bronze", "events")] {
        let table = json!({"zone": zone, "name": name, "columns": [{"name": "id", "type": "long"}]});
        app.expect(admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
            .await;
    }
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"}, "source": {"type": "http"}});
    app.expect(admin, Method::POST, "/v1/tenants/acme/streams", Some(stream), 201)
        .await;
    let share = json!({"name": "sales", "tables": [{"zone": "silver", "name": "orders"}]});
    app.expect(admin, Method::POST, "/v1/tenants/acme/shares", Some(share), 201)
        .await;
}

/// Points the app's database URL at a proxy on `port` in front of the test database.
fn through_proxy(c: &mut api::config::Config, port: u16) {
    let direct = c.database.url.take().expect("test database");
    let mut url = url::Url::parse(direct.expose()).expect("url");
    url.set_port(Some(port)).expect("port");
    c.database.url = Some(DatabaseUrl::parse(url.as_str()).expect("proxied url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_503_while_the_database_is_down_and_recovers() {
    let mut proxy = PgProxy::start().await;
    let through = proxy.port;
    let app = TestApp::spawn_with(
        Backend::Postgres,
        move |c| {
            through_proxy(c, through);
            // Fail fast: the pool gives up on a connection after a second, not five.
            c.database.acquire_timeout_secs = 1;
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    acme(&app, &admin).await;
    let recipient: Value = app
        .expect(
            &admin,
            Method::POST,
            "/v1/tenants/acme/shares/sales/recipients",
            Some(json!({"name": "bob", "ttl_seconds": 3600})),
            201,
        )
        .await;
    let bob = recipient["profile"]["bearerToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let token_id = "00000000-0000-7000-8000-000000000000";

    proxy.stop().await;
    let mut failures = Vec::new();
    let ops = operations(&app).await;
    assert!(ops.len() >= 30, "{ops:?}");
    for (method, path) in &ops {
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (query, body) = request_for(method, path);
        let url = format!("{}{query}", concrete(path, "acme", token_id));
        let response = app.send_as(&admin, verb, &url, body).await;
        if let Err(e) = unavailable(response, &format!("{method} {url}"), "database-unavailable").await {
            failures.push(e);
        }
    }
    // The Delta Sharing protocol answers in its own error shape, with the same status.
    let shares = app
        .client
        .get(app.url("/delta-sharing/shares"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("send");
    assert_eq!(shares.status(), 503, "protocol route");
    assert!(shares.headers().get("retry-after").is_some());
    let body: Value = shares.json().await.expect("json");
    assert_eq!(body["errorCode"], "TEMPORARILY_UNAVAILABLE");
    assert!(failures.is_empty(), "not a 503 with Retry-After: {failures:#?}");

    proxy.resume().await;
    recovers(&app, &admin, "/v1/tenants/acme/tables").await;
    app.expect(&admin, Method::GET, "/v1/tenants/acme/shares/sales", None, 200)
        .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_routes_answer_503_while_s3_is_down_and_recover() {
    let moto = url::Url::parse(&moto_endpoint()).expect("moto url");
    let upstream = format!(
        "{}:{}",
        moto.host_str().unwrap_or("127.0.0.1"),
        moto.port_or_known_default().unwrap_or(80)
    )
    .parse()
    .expect("moto address");
    let mut proxy = PgProxy::start_to(upstream).await;
    let endpoint = format!("http://127.0.0.1:{}", proxy.port);
    let prefix = fresh_prefix();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        move |c| {
            on_moto(c, &endpoint, &prefix);
            // Room for object_store's own retries (about 2 s per operation here) on a busy
            // machine, so the answer is the storage's class and not the request timeout.
            c.server.request_timeout_secs = 60;
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "silver", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
        .await;
    for path in ["/v1/tenants/acme/usage", "/v1/tenants/acme/tables/silver/orders"] {
        app.expect(&admin, Method::GET, path, None, 200).await;
    }

    proxy.stop().await;
    let mut failures = Vec::new();
    for (method, path, body, code) in [
        (Method::GET, "/v1/tenants/acme/usage", None, "storage-unavailable"),
        (
            Method::GET,
            "/v1/tenants/acme/tables/silver/orders",
            None,
            "storage-unavailable",
        ),
        (
            Method::GET,
            "/v1/tenants/acme/tables/silver/orders/history",
            None,
            "storage-unavailable",
        ),
        (
            Method::POST,
            "/v1/tenants/acme/tables",
            Some(json!({"zone": "gold", "name": "late", "columns": [{"name": "id", "type": "long"}]})),
            "storage-unavailable",
        ),
        (
            Method::DELETE,
            "/v1/tenants/acme?dry_run=true",
            None,
            "storage-unavailable",
        ),
    ] {
        let what = format!("{method} {path}");
        let response = app.send_as(&admin, method, path, body).await;
        if let Err(e) = unavailable(response, &what, code).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "not a 503 with Retry-After: {failures:#?}");

    proxy.resume().await;
    recovers(&app, &admin, "/v1/tenants/acme/usage").await;
    app.expect(
        &admin,
        Method::GET,
        "/v1/tenants/acme/tables/silver/orders",
        None,
        200,
    )
    .await;
    app.shutdown().await;
}

/// Runs SQL on the app's database with `psql`, as an operator would.
fn psql(url: &str, sql: &str) {
    let output = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The bronze events table's row count as the API shows it.
async fn event_rows(app: &TestApp, token: &str) -> u64 {
    let table: Value = app
        .expect(
            token,
            Method::GET,
            "/v1/tenants/acme/tables/bronze/events",
            None,
            200,
        )
        .await;
    table["num_rows"]
        .as_u64()
        .unwrap_or_else(|| panic!("the table shows its rows: {table}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_answers_503_within_the_timeouts_and_acknowledges_no_push() {
    let proxy = PgProxy::start().await;
    let through = proxy.port;
    let (acquire, request) = (1, 3);
    let app = TestApp::spawn_with(
        Backend::Postgres,
        move |c| {
            through_proxy(c, through);
            c.database.acquire_timeout_secs = acquire;
            c.server.request_timeout_secs = request;
            c.ingest.linger_ms = 10;
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    acme(&app, &admin).await;
    let push = |ids: std::ops::Range<i64>| {
        let body: String = ids.map(|id| format!("{{\"id\": {id}}}\n")).collect();
        app.client
            .post(app.url("/v1/tenants/acme/streams/clicks/events"))
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    assert_eq!(push(0..10).await.expect("push").status(), 200);
    assert_eq!(event_rows(&app, &admin).await, 10);

    // The server accepts connections and never answers, on the pool's open connections too.
    proxy.hang();
    let bound = Duration::from_secs(acquire + request) + Duration::from_millis(1_500);
    let mut failures = Vec::new();
    let late = json!({"zone": "gold", "name": "late", "columns": [{"name": "id", "type": "long"}]});
    let hung_at = Instant::now();
    for (what, call) in [
        (
            "GET tables",
            app.send_as(&admin, Method::GET, "/v1/tenants/acme/tables", None)
                .boxed(),
        ),
        (
            "POST table",
            app.send_as(
                &admin,
                Method::POST,
                "/v1/tenants/acme/tables",
                Some(late.clone()),
            )
            .boxed(),
        ),
        (
            "push",
            async { push(100..110).await.expect("push answered") }.boxed(),
        ),
        // Last: a tenant read within `TENANT_CACHE_TTL` of the previous one is answered from
        // the cache; the probes before this one outlast it.
        (
            "GET tenant",
            async {
                assert!(
                    hung_at.elapsed() > api::state::TENANT_CACHE_TTL,
                    "the tenant read is still cached"
                );
                app.send_as(&admin, Method::GET, "/v1/tenants/acme", None).await
            }
            .boxed(),
        ),
    ] {
        let started = Instant::now();
        let response = call.await;
        let took = started.elapsed();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").is_some();
        if status != 503 || !retry_after || took > bound {
            let body = response.text().await.unwrap_or_default();
            failures.push(format!(
                "{what}: {status} after {took:?} (bound {bound:?}), Retry-After {retry_after}: {body}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    proxy.unhang();
    recovers(&app, &admin, "/v1/tenants/acme/tables").await;
    assert_eq!(
        event_rows(&app, &admin).await,
        10,
        "the push refused while the database hung was not committed"
    );
    app.expect(
        &admin,
        Method::GET,
        "/v1/tenants/acme/tables/gold/late",
        None,
        404,
    )
    .await;
    assert_eq!(push(200..210).await.expect("push").status(), 200);
    assert_eq!(event_rows(&app, &admin).await, 20);
    app.shutdown().await;
}

/// The audit policy: a change and its audit event commit in one transaction, so a change
/// whose event cannot be written is refused and leaves nothing behind. The audit table is
/// made to refuse inserts (a trigger, as a full or broken audit table would) while the rest
/// of the database works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_audit_event_cannot_be_written_is_refused_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    acme(&app, &admin).await;
    let url = app.state.config.database_url().expose().to_owned();
    psql(
        &url,
        "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN \
         RAISE EXCEPTION 'the audit log refuses writes'; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_audit();",
    );
    let table = json!({"zone": "gold", "name": "revenue", "columns": [{"name": "id", "type": "long"}]});
    let stream =
        json!({"name": "orders", "table": {"zone": "bronze", "name": "events"}, "source": {"type": "http"}});
    let token = json!({"subject": "ann", "role": "analyst", "ttl_seconds": 3600});
    let mut accepted = Vec::new();
    for (path, body) in [
        ("/v1/tenants/acme/tables", table.clone()),
        ("/v1/tenants/acme/streams", stream.clone()),
        ("/v1/tenants/acme/tokens", token.clone()),
    ] {
        let response = app.send_as(&admin, Method::POST, path, Some(body)).await;
        if !response.status().is_server_error() {
            accepted.push(format!("POST {path}: {}", response.status()));
        }
    }
    assert!(
        accepted.is_empty(),
        "changes without their audit event: {accepted:?}"
    );
    app.expect(
        &admin,
        Method::GET,
        "/v1/tenants/acme/tables/gold/revenue",
        None,
        404,
    )
    .await;
    app.expect(&admin, Method::GET, "/v1/tenants/acme/streams/orders", None, 404)
        .await;
    let tokens: Value = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/tokens", None, 200)
        .await;
    assert_eq!(tokens["items"], json!([]), "no token was issued: {tokens}");

    psql(&url, "DROP TRIGGER refuse_audit ON audit_events;");
    // Nothing of the refused changes is in the way of doing them again.
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
        .await;
    app.expect(
        &admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(stream),
        201,
    )
    .await;
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tokens", Some(token), 201)
        .await;
    app.shutdown().await;
}
