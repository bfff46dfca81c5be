//! The tenants API: lifecycle, validation, placement and deletion.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::both_backends;
use tenancy::role::Role;
use tenancy::store::Backend;
use tenancy::tenant::TenantId;

use crate::helpers::{TestApp, problem};

async fn create(app: &TestApp, admin: &str, body: Value) -> reqwest::Response {
    app.send_as(admin, Method::POST, "/v1/tenants", Some(body)).await
}

async fn tenant_lifecycle(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let created = create(
        &app,
        &admin,
        json!({"id": "acme", "display_name": "Acme", "tier": "standard",
        "quotas": {"max_tables": 5}}),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/v1/tenants/acme");
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["status"], "provisioning");
    assert_eq!(body["placement"]["kind"], "shared");
    assert_eq!(body["placement"]["bucket"], "lakeplane-shared-0000");
    assert_eq!(
        body["placement"]["reason"],
        "standard tier, no data in the last 30 days"
    );
    assert_eq!(body["quotas"]["max_tables"], 5);
    assert_eq!(body["quotas"]["max_streams"], 20, "defaults fill the rest");
    assert!(
        body["zones"]["bronze"]["uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/lakeplane-shared-0000/bronze/acme/"))
    );

    let big = create(
        &app,
        &admin,
        json!({"id": "bigco", "display_name": "Big Co", "tier": "enterprise"}),
    )
    .await;
    let big: Value = big.json().await.expect("json");
    assert_eq!(big["placement"]["kind"], "dedicated");
    assert_eq!(big["placement"]["bucket"], "lakeplane-t-bigco");
    assert_eq!(big["placement"]["reason"], "tier enterprise");

    // Cursor pagination over every tenant.
    for i in 0..3 {
        let body = json!({"id": format!("page-{i}"), "display_name": "P", "tier": "standard"});
        assert_eq!(create(&app, &admin, body).await.status(), 201);
    }
    let mut seen = Vec::new();
    let mut url = "/v1/tenants?limit=2".to_owned();
    loop {
        let page: Value = app.get_as(&admin, &url).await.json().await.expect("json");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|t| t["id"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/v1/tenants?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["acme", "bigco", "page-0", "page-1", "page-2"]);
    let bad_cursor = app.get_as(&admin, "/v1/tenants?cursor=bm9wZQ").await;
    assert_eq!(problem(bad_cursor, 422).await["errors"][0]["field"], "cursor");
    assert_eq!(
        problem(app.get_as(&admin, "/v1/tenants?limit=501").await, 422).await["errors"][0]["field"],
        "limit"
    );
    assert_eq!(
        problem(app.get_as(&admin, "/v1/tenants?limt=5").await, 422).await["errors"][0]["message"]
            .as_str()
            .map(|m| m.contains("limt")),
        Some(true)
    );

    // A tenant-admin renames its tenant but cannot change its tier or quotas.
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let renamed = app
        .send_as(
            &tenant_admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"display_name": "Acme Inc"})),
        )
        .await;
    assert_eq!(renamed.status(), 200);
    let upgrade = app
        .send_as(
            &tenant_admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"tier": "enterprise"})),
        )
        .await;
    assert!(
        problem(upgrade, 403).await["detail"]
            .as_str()
            .unwrap_or("")
            .contains("tier")
    );
    // Once its storage exists, an upgrade to enterprise migrates it to a dedicated bucket.
    app.wait_for_status(&admin, "acme", "ready").await;
    let upgrade = app
        .send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"tier": "enterprise"})),
        )
        .await;
    assert_eq!(upgrade.status(), 200);
    let upgraded = app.wait_for_status(&admin, "acme", "ready").await;
    assert_eq!(upgraded["tier"], "enterprise");
    assert_eq!(upgraded["display_name"], "Acme Inc");
    assert_eq!(upgraded["placement"]["kind"], "dedicated");
    assert_eq!(upgraded["placement"]["bucket"], "lakeplane-t-acme");
    let quotas = app
        .send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"quotas": {"max_streams": 3}})),
        )
        .await;
    let quotas: Value = quotas.json().await.expect("json");
    assert_eq!(quotas["quotas"]["max_streams"], 3);
    assert_eq!(quotas["status"], "ready", "an update never rewrites the status");
    // A malformed path segment is a plain 404, not a server error.
    assert_eq!(app.get_as(&admin, "/v1/tenants/%FF").await.status(), 404);

    // Delete: a dry run changes nothing; the real one revokes tokens and keeps the audit log.
    let dry = app
        .send_as(&admin, Method::DELETE, "/v1/tenants/acme?dry_run=true", None)
        .await;
    assert_eq!(dry.status(), 200);
    let dry: Value = dry.json().await.expect("json");
    assert_eq!(dry["status"], "dry_run");
    assert_eq!(dry["tokens_revoked"], 1);
    assert_eq!(
        app.get_as(&tenant_admin, "/v1/tenants/acme").await.status(),
        200,
        "dry run removed nothing"
    );
    let deleted = app
        .send_as(&admin, Method::DELETE, "/v1/tenants/acme", None)
        .await;
    assert_eq!(deleted.status(), 202);
    assert_eq!(deleted.json::<Value>().await.expect("json")["tokens_revoked"], 1);
    problem(app.get_as(&tenant_admin, "/v1/tenants/acme").await, 401).await;
    problem(app.get_as(&admin, "/v1/tenants/acme").await, 404).await;
    let audit: Value = app
        .get_as(&admin, "/v1/audit?tenant=acme")
        .await
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "tenant.delete",
        "tenant.delete.dry_run",
        "tenant.purge",
        "tenant.update",
        "tenant.create",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    // The id stays reserved (a month by default) until everything that could name it has
    // expired; refused with the date, nothing stored. Old tokens stay dead.
    let reserved = problem(
        create(
            &app,
            &admin,
            json!({"id": "acme", "display_name": "Acme 2", "tier": "standard"}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        reserved["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("id-reserved")
            && reserved["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("reserved until"),
        "{reserved}"
    );
    problem(app.get_as(&admin, "/v1/tenants/acme").await, 404).await;
    problem(app.get_as(&tenant_admin, "/v1/tenants/acme").await, 401).await;
    app.shutdown().await;
}
both_backends!(tenant_lifecycle);

#[tokio::test]
async fn bad_tenant_input_is_422_naming_the_field_and_stores_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    assert_eq!(
        create(
            &app,
            &admin,
            json!({"id": "taken", "display_name": "T", "tier": "standard"})
        )
        .await
        .status(),
        201
    );
    let long_name = "x".repeat(201);
    let cases = [
        (json!({"id": "ab", "display_name": "A", "tier": "standard"}), "id"),
        (
            json!({"id": "Acme", "display_name": "A", "tier": "standard"}),
            "id",
        ),
        (
            json!({"id": "-acme", "display_name": "A", "tier": "standard"}),
            "id",
        ),
        (
            json!({"id": "ac--me", "display_name": "A", "tier": "standard"}),
            "id",
        ),
        (
            json!({"id": "admin", "display_name": "A", "tier": "standard"}),
            "id",
        ),
        (
            json!({"id": "acme", "display_name": "A", "tier": "platinum"}),
            "tier",
        ),
        (
            json!({"id": "acme", "display_name": long_name, "tier": "standard"}),
            "display_name",
        ),
        (
            json!({"id": "acme", "display_name": "   ", "tier": "standard"}),
            "display_name",
        ),
        (
            json!({"id": "acme", "display_name": "A", "tier": "standard", "owner": "me"}),
            "owner",
        ),
        (
            json!({"id": "acme", "display_name": "A", "tier": "standard", "quotas": {"max_tables": 0}}),
            "quotas.max_tables",
        ),
        (
            json!({"id": "acme", "display_name": "A", "tier": "standard", "quotas": [5, 5]}),
            "quotas",
        ),
        (
            json!({"id": "acme", "display_name": "A", "tier": "standard", "quotas": {"max_tables": 2.5}}),
            "quotas.max_tables",
        ),
        (json!({"id": "acme", "display_name": "A"}), "body"),
    ];
    for (body, field) in cases {
        let response = create(&app, &admin, body.clone()).await;
        let problem = problem(response, 422).await;
        let errors = problem["errors"].as_array().expect("errors");
        assert!(
            errors
                .iter()
                .any(|e| e["field"] == field || e["message"].as_str().is_some_and(|m| m.contains(field))),
            "{body} should name {field}: {problem}"
        );
    }
    let duplicate = create(
        &app,
        &admin,
        json!({"id": "taken", "display_name": "T", "tier": "standard"}),
    )
    .await;
    problem(duplicate, 409).await;
    let list: Value = app
        .get_as(&admin, "/v1/tenants")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(1),
        "nothing else was stored"
    );
    let audit: Value = app
        .get_as(&admin, "/v1/audit?action=tenant.create")
        .await
        .json()
        .await
        .expect("json");
    let outcomes: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "success").count(), 1);
    assert_eq!(
        outcomes.iter().filter(|o| **o == "rejected").count(),
        14,
        "every refused create is audited"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn rebalance_dry_run_promotes_the_top_share_by_volume() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    for i in 0..20 {
        let body = json!({"id": format!("t-{i:02}"), "display_name": "T", "tier": "standard"});
        assert_eq!(create(&app, &admin, body).await.status(), 201);
    }
    // Usage collection feeds 30-day volumes; here the test records them directly.
    for i in 0..20u64 {
        let id = TenantId::parse(&format!("t-{i:02}")).expect("id");
        app.state
            .store
            .record_volume(&id, (i + 1) * 1_000_000)
            .await
            .expect("volume");
    }
    let plan = app
        .send_as(
            &admin,
            Method::POST,
            "/v1/admin/placement/rebalance?dry_run=true",
            None,
        )
        .await;
    assert_eq!(plan.status(), 200);
    let plan: Value = plan.json().await.expect("json");
    let promoted: Vec<&str> = plan["promotions"]
        .as_array()
        .expect("promotions")
        .iter()
        .filter_map(|m| m["tenant"].as_str())
        .collect();
    assert_eq!(promoted, ["t-18", "t-19"], "top 10% of 20 by volume");
    assert_eq!(
        plan["promotions"][1]["to"]["reason"],
        "top 10% by 30-day volume, 20 MB written (rank 1 of 20)"
    );
    assert_eq!(plan["demotions"], json!([]));
    let list: Value = app
        .get_as(&admin, "/v1/tenants/t-19")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["placement"]["kind"], "shared", "a dry run changes nothing");
    let execute = app
        .send_as(
            &admin,
            Method::POST,
            "/v1/admin/placement/rebalance?dry_run=false",
            None,
        )
        .await;
    assert_eq!(execute.status(), 200);
    let report: Value = execute.json().await.expect("json");
    assert_eq!(report["dry_run"], false);
    let moved: Vec<&str> = report["migrating"]
        .as_array()
        .expect("migrating")
        .iter()
        .chain(report["replaced"].as_array().expect("replaced"))
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(moved.len(), 2, "{report}");
    for id in ["t-18", "t-19"] {
        let tenant = app.wait_for_status(&admin, id, "ready").await;
        assert_eq!(tenant["placement"]["kind"], "dedicated", "{id}");
        assert!(
            tenant["placement"]["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("top 10%"))
        );
    }
    let again: Value = app
        .send_as(&admin, Method::POST, "/v1/admin/placement/rebalance", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(again["promotions"], json!([]), "a second rebalance moves nobody");
    app.shutdown().await;
}

#[tokio::test]
async fn rate_limits_apply_per_principal_with_retry_after() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.rate_limit.per_second = 1;
            c.rate_limit.burst = 3;
        },
        axum::Router::new(),
    )
    .await;
    let alice = app
        .token_for("alice", Role::PlatformAdmin, None, chrono::Duration::hours(1))
        .await;
    let bob = app
        .token_for("bob", Role::PlatformAdmin, None, chrono::Duration::hours(1))
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.get_as(&alice, "/v1/tenants").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let limited = app.get_as(&alice, "/v1/tenants").await;
    assert!(
        limited.headers().get("retry-after").is_some(),
        "Retry-After is set"
    );
    problem(limited, 429).await;
    assert_eq!(
        app.get_as(&bob, "/v1/tenants").await.status(),
        200,
        "another principal is not affected"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "operations endpoints are not limited"
    );
    app.shutdown().await;
}

/// A tenant-admin can mint tokens for any number of subjects, each with a principal budget of
/// its own; the tenant's own budget, set by its tier, bounds them all together. Another
/// tenant's callers keep their budget meanwhile, and an enterprise tenant gets the larger one.
#[tokio::test]
async fn a_tenants_callers_share_one_budget_set_by_its_tier() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.rate_limit.per_second = 100;
            c.rate_limit.burst = 100;
            c.rate_limit.standard_tenant_per_second = 6;
            c.rate_limit.enterprise_tenant_per_second = 30;
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "globex").await;
    let big = json!({"id": "initech", "display_name": "Initech", "tier": "enterprise"});
    app.expect(&admin, Method::POST, "/v1/tenants", Some(big), 201)
        .await;
    app.wait_for_status(&admin, "initech", "ready").await;

    // Twelve subjects of acme, as a tenant-admin could mint them: one request each, at once.
    let statuses = twelve_subjects_at_once(&app, "acme").await;
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    let allowed = codes.iter().filter(|s| **s == 200).count();
    assert!(
        (6..12).contains(&allowed) && codes.iter().all(|s| [200, 429].contains(s)),
        "acme's budget of 6/s bounds its twelve subjects together: {codes:?}"
    );
    let limited = statuses
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("a refusal");
    assert!(limited.headers().contains_key("retry-after"));
    let body = problem(limited, 429).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("tenant-rate-limited"),
        "{body}"
    );
    // globex's budget is its own.
    let globex = app.token(Role::Viewer, Some("globex")).await;
    assert_eq!(
        app.get_as(&globex, "/v1/tenants/globex/tables").await.status(),
        200
    );
    // The enterprise tier's budget is larger: 12 requests pass where acme's stopped at 6.
    let answers = twelve_subjects_at_once(&app, "initech").await;
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, vec![200; 12], "an enterprise tenant's larger budget");
    app.shutdown().await;
}

/// One request of each of twelve viewer subjects of `tenant`, sent together.
async fn twelve_subjects_at_once(app: &TestApp, tenant: &str) -> Vec<reqwest::Response> {
    let mut tokens = Vec::new();
    for i in 0..12 {
        let subject = format!("bot-{i}");
        tokens.push(
            app.token_for(&subject, Role::Viewer, Some(tenant), chrono::Duration::hours(1))
                .await,
        );
    }
    let path = format!("/v1/tenants/{tenant}/tables");
    futures_util::future::join_all(tokens.iter().map(|t| app.get_as(t, &path))).await
}

/// Revoked tokens still spend their tenant's budget: a tenant-admin who mints and revokes
/// subjects buys no fresh budget, and the tenant's own callers find the budget spent. Another
/// tenant is not touched.
#[tokio::test]
async fn revoked_tokens_spend_their_tenants_budget() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.rate_limit.per_second = 100;
            c.rate_limit.burst = 100;
            // One request a second (its burst too): the refusals below spend it, and nothing
            // comes back within the test's few milliseconds.
            c.rate_limit.standard_tenant_per_second = 1;
        },
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "globex").await;
    let mut revoked = Vec::new();
    for i in 0..12 {
        let issued = app
            .expect(
                &admin,
                Method::POST,
                "/v1/tenants/acme/tokens",
                Some(json!({"subject": format!("burner-{i}"), "role": "viewer", "ttl_seconds": 600})),
                201,
            )
            .await;
        let id = issued["token_id"].as_str().expect("id");
        app.expect(
            &admin,
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{id}"),
            None,
            204,
        )
        .await;
        revoked.push(issued["token"].as_str().expect("token").to_owned());
    }
    let valid = app.token(Role::Viewer, Some("acme")).await;
    let path = "/v1/tenants/acme/tables";
    let answers = futures_util::future::join_all(revoked.iter().map(|t| app.get_as(t, path))).await;
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        codes.iter().all(|c| [401, 429].contains(c)) && codes.contains(&401),
        "revoked tokens are refused: {codes:?}"
    );
    // The refusals used acme's budget: its own valid caller waits.
    let after = app.get_as(&valid, path).await;
    assert_eq!(
        after.status(),
        429,
        "acme's budget was spent by its revoked tokens"
    );
    let globex = app.token(Role::Viewer, Some("globex")).await;
    assert_eq!(
        app.get_as(&globex, "/v1/tenants/globex/tables").await.status(),
        200
    );
    app.shutdown().await;
}

/// Tenant reads are cached for `TENANT_CACHE_TTL`: a change through this process shows at
/// once, one made by another replica within the TTL.
async fn a_cached_tenant_read_shows_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let acme = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(create(&app, &admin, acme).await.status(), 201);
    let name = |app: &TestApp, admin: &str| {
        let (app, admin) = (app.url("/v1/tenants/acme"), admin.to_owned());
        let client = reqwest::Client::new();
        async move {
            let body: Value = client
                .get(app)
                .bearer_auth(admin)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            body["display_name"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(name(&app, &admin).await, "Acme", "read, and now cached");
    let rename = |to: &str| json!({"display_name": to});
    let patched = app
        .send_as(
            &admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(rename("Acme Two")),
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(
        name(&app, &admin).await,
        "Acme Two",
        "this process's change shows at once"
    );

    let replica = app.replica(|_| {}).await;
    let other_admin = replica.token(Role::PlatformAdmin, None).await;
    assert_eq!(name(&app, &admin).await, "Acme Two", "cached again");
    let changed_at = std::time::Instant::now();
    let patched = replica
        .send_as(
            &other_admin,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(rename("Acme Three")),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let bound = api::state::TENANT_CACHE_TTL + std::time::Duration::from_millis(500);
    loop {
        if name(&app, &admin).await == "Acme Three" {
            break;
        }
        assert!(
            changed_at.elapsed() < bound,
            "another replica's change must show within the cache TTL"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    replica.shutdown().await;
    app.shutdown().await;
}
both_backends!(a_cached_tenant_read_shows_changes);
