//! Audit action names: every operation has one, so filtering the log by an action finds its
//! refusals as well as its successes.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::cross_tenant::operations;
use crate::helpers::TestApp;

#[tokio::test]
async fn every_served_operation_has_a_named_audit_action() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ops = operations(&app).await;
    assert!(ops.len() >= 30, "{ops:?}");
    let unnamed: Vec<String> = ops
        .iter()
        .filter_map(|(method, path)| {
            let verb = axum::http::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let action = api::audit::action_name(&verb, path);
            action
                .starts_with("http.")
                .then(|| format!("{method} {path} -> {action}"))
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "operations without an audit action: {unnamed:#?}"
    );
    app.shutdown().await;
}

/// A viewer's refused table creation is in the log under `table.create`, beside the
/// engineer's successful one, so `?action=table.create` shows both.
#[tokio::test]
async fn a_refused_table_creation_is_audited_under_its_action() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let viewer = app.token(Role::Viewer, Some("acme")).await;
    let table =
        |name: &str| json!({"zone": "silver", "name": name, "columns": [{"name": "id", "type": "long"}]});
    app.expect(
        &engineer,
        Method::POST,
        "/v1/tenants/acme/tables",
        Some(table("orders")),
        201,
    )
    .await;
    app.expect(
        &viewer,
        Method::POST,
        "/v1/tenants/acme/tables",
        Some(table("refused")),
        403,
    )
    .await;
    let log: Value = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?action=table.create&tenant=acme",
            None,
            200,
        )
        .await;
    let outcomes: Vec<(&str, &str)> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 2, "{log}");
    assert!(outcomes.contains(&("tester", "success")), "{log}");
    assert!(outcomes.contains(&("tester", "denied")), "{log}");
    let http: Value = app
        .expect(&admin, Method::GET, "/v1/audit?action=http.post", None, 200)
        .await;
    assert_eq!(http["items"], json!([]), "nothing is filed under http.post");
    app.shutdown().await;
}

/// Answers given before the policy runs (405 for a wrong method, 429 from the limiter) to a
/// caller of another tenant stay in the caller's log: nobody can write into acme's log, nor
/// learn of acme's callers, from outside.
#[tokio::test]
async fn outsiders_cannot_write_into_a_tenants_audit_log() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.rate_limit.per_second = 1;
            c.rate_limit.burst = 2;
            c.audit.rollup_window_secs = 1;
        },
        axum::Router::new(),
    )
    .await;
    // Both tenants are made through the service, so the platform-admin spends no requests.
    let system = tenancy::audit::Actor {
        subject: "setup".into(),
        role: None,
        request_id: None,
        source: None,
        token_id: None,
        issuer: None,
    };
    for id in ["acme", "bravo"] {
        let new = lake_manager::tenants::NewTenant {
            id: tenancy::tenant::TenantId::parse(id).expect("id"),
            display_name: id.into(),
            tier: tenancy::tenant::Tier::Standard,
            isolation: tenancy::tenant::Isolation::Auto,
            erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
            credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
            quotas: tenancy::tenant::Quotas::default(),
        };
        app.state.tenants.create(new, &system).await.expect("tenant");
    }
    let mallory = app
        .token_for(
            "mallory",
            Role::TenantAdmin,
            Some("bravo"),
            chrono::Duration::hours(1),
        )
        .await;
    let table = json!({"zone": "silver", "name": "x", "columns": [{"name": "id", "type": "long"}]});
    let mut statuses = vec![
        app.send_as(&mallory, Method::PUT, "/v1/tenants/acme", None)
            .await
            .status()
            .as_u16(),
    ];
    for _ in 0..3 {
        let answer = app
            .send_as(
                &mallory,
                Method::POST,
                "/v1/tenants/acme/tables",
                Some(table.clone()),
            )
            .await;
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses[0], 405);
    assert!(statuses.contains(&429), "the limiter answered: {statuses:?}");

    let log = |tenant: &str| tenancy::audit::AuditFilter {
        tenant: Some(tenancy::tenant::TenantId::parse(tenant).expect("id")),
        limit: 100,
        ..Default::default()
    };
    let acme = app
        .state
        .store
        .list_audit(&log("acme"))
        .await
        .expect("acme's log");
    let intruding: Vec<_> = acme.iter().filter(|e| e.actor == "mallory").collect();
    assert!(
        intruding.is_empty(),
        "mallory wrote into acme's log: {intruding:#?}"
    );
    // The 405 and the 429s never reached a handler: they are rolled up, written when their
    // window (1 s here) ends, still in the caller's own log and counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let bravo = app
            .state
            .store
            .list_audit(&log("bravo"))
            .await
            .expect("bravo's log");
        let kept: u64 = bravo
            .iter()
            .filter(|e| e.actor == "mallory")
            .map(|e| e.occurrences)
            .sum();
        if kept == statuses.len() as u64 {
            assert!(
                bravo.iter().any(|e| e.action == "http.method_not_allowed"),
                "{bravo:#?}"
            );
            assert!(
                bravo.iter().any(|e| e.action == "http.rate_limited"),
                "{bravo:#?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every answer is kept in the caller's own log: {bravo:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let acme = app
        .state
        .store
        .list_audit(&log("acme"))
        .await
        .expect("acme's log");
    assert!(
        acme.iter().all(|e| e.actor != "mallory"),
        "mallory wrote into acme's log: {acme:#?}"
    );
    app.shutdown().await;
}

/// Two tokens with the same subject act; the log tells them apart by token id and issuer, in a
/// handler's own event (a change) and in the middleware's (a refusal).
#[tokio::test]
async fn audit_events_name_the_token_that_acted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let issued = |token: &str| -> String {
        let claims = token.split('.').nth(1).expect("payload");
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
            .expect("base64url");
        let claims: Value = serde_json::from_slice(&bytes).expect("claims");
        claims["jti"].as_str().expect("jti").to_owned()
    };
    let first = app
        .token_for(
            "alex",
            Role::TenantAdmin,
            Some("acme"),
            chrono::Duration::hours(1),
        )
        .await;
    let second = app
        .token_for("alex", Role::Viewer, Some("acme"), chrono::Duration::hours(1))
        .await;
    app.expect(
        &first,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"display_name": "Acme"})),
        200,
    )
    .await;
    let table = json!({"zone": "silver", "name": "x", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&second, Method::POST, "/v1/tenants/acme/tables", Some(table), 403)
        .await;
    let log = app
        .expect(&admin, Method::GET, "/v1/audit?tenant=acme", None, 200)
        .await;
    let by = |action: &str| -> Value {
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|e| e["action"] == action && e["actor"] == "alex")
            .cloned()
            .unwrap_or_else(|| panic!("no {action} by alex in {log}"))
    };
    let update = by("tenant.update");
    assert_eq!(update["token_id"], issued(&first), "{update}");
    let refusal = by("table.create");
    assert_eq!(refusal["outcome"], "denied");
    assert_eq!(refusal["token_id"], issued(&second), "{refusal}");
    let issuer = update["issuer"].as_str().expect("issuer");
    assert!(!issuer.is_empty());
    assert_eq!(refusal["issuer"], issuer);
    app.shutdown().await;
}

/// Anyone on the network can send requests by the thousand; without a valid token they are
/// counted and rolled up, so 10,000 anonymous POSTs with 60 KB paths grow the audit log by a
/// few capped rows, and a tenant's own audited write meanwhile answers as fast as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_grows_the_audit_log_by_a_bounded_amount() {
    const FLOOD: usize = 10_000;
    const CLIENTS: usize = 8;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.audit.rollup_window_secs = 1,
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let all = || tenancy::audit::AuditFilter {
        limit: 5_000,
        ..Default::default()
    };
    let before = app.state.store.list_audit(&all()).await.expect("log");

    // The tenant's own audited write (a token minted in the same transaction as its event).
    let write = || async {
        let started = std::time::Instant::now();
        app.expect(
            &tenant_admin,
            Method::POST,
            "/v1/tenants/acme/tokens",
            Some(json!({"subject": "bob", "role": "viewer", "ttl_seconds": 600})),
            201,
        )
        .await;
        started.elapsed()
    };
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut usual = Vec::new();
    for _ in 0..15 {
        usual.push(write().await);
    }
    let usual = median(usual);

    let padding = "x".repeat(60 * 1024);
    let path = app.url(&format!("/v1/tenants/{padding}/tables"));
    let started = std::time::Instant::now();
    let flood: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let client = reqwest::Client::new();
            let path = path.clone();
            tokio::spawn(async move {
                let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
                for _ in 0..FLOOD / CLIENTS {
                    let status = client
                        .post(&path)
                        .body("{}")
                        .send()
                        .await
                        .expect("flood request")
                        .status()
                        .as_u16();
                    *statuses.entry(status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    // Paced and capped: every write mints a live token, and the tenant may hold at most 1,000.
    const MAX_DURING: usize = 500;
    let mut pace = tokio::time::interval(std::time::Duration::from_millis(50));
    let mut during = Vec::new();
    while during.len() < MAX_DURING && !flood.iter().all(tokio::task::JoinHandle::is_finished) {
        pace.tick().await;
        during.push(write().await);
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for client in flood {
        for (status, n) in client.await.expect("flood client") {
            *statuses.entry(status).or_default() += n;
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    assert_eq!(statuses.values().sum::<usize>(), FLOOD);
    assert!(
        statuses.keys().all(|s| [401, 429].contains(s)),
        "anonymous callers get 401, or 429 once over their network's budget: {statuses:?}"
    );
    assert!(!during.is_empty(), "the tenant wrote during the flood");
    let during = median(during);
    assert!(
        during <= usual * 10 + std::time::Duration::from_millis(100),
        "a tenant's write took {during:?} during the flood, {usual:?} usually"
    );

    // Every flooding request is counted in /metrics...
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("lakeplane_unattributed_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(counted >= FLOOD as f64, "{counted} counted:\n{metrics}");
    // ...and in the log, once its windows are written, as a few capped rows that add up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let added = loop {
        let after = app.state.store.list_audit(&all()).await.expect("log");
        let added: Vec<_> = after
            .into_iter()
            .filter(|e| !before.iter().any(|b| b.id == e.id) && e.actor == "anonymous")
            .collect();
        if added.iter().map(|e| e.occurrences).sum::<u64>() >= FLOOD as u64 {
            break added;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flood's rows add up to {} of {FLOOD}",
            added.iter().map(|e| e.occurrences).sum::<u64>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(added.iter().map(|e| e.occurrences).sum::<u64>(), FLOOD as u64);
    // One row per network, action and 1 s window: two actions (401, 429) per window.
    let bound = 2 * (seconds as usize + 2);
    assert!(
        added.len() <= bound,
        "{} rows for {FLOOD} requests over {seconds} s (at most {bound})",
        added.len()
    );
    let bytes: usize = added.iter().map(|e| e.target.len()).sum();
    assert!(
        added
            .iter()
            .all(|e| e.target.len() <= tenancy::audit::MAX_TARGET_BYTES),
        "targets are capped"
    );
    println!(
        "{FLOOD} anonymous requests ({statuses:?}) in {seconds} s -> {} audit rows, {bytes} target bytes; \
         tenant write median {usual:?} usually, {during:?} during the flood",
        added.len()
    );
    app.shutdown().await;
}
