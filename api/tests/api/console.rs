//! The web console, rendered by the real server and read as a browser would: sign-in, what
//! each role sees and does not, forms that go through `/v1` (validation, audit), and the
//! security every page carries (CSRF, `Origin`, CSP, escaping, sessions that end).

use reqwest::Method;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::TestApp;

/// A browser without redirects or a cookie jar, so each test sees every hop and cookie.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// A signed-in console session.
struct Session {
    base: String,
    cookie: String,
    client: reqwest::Client,
}

impl Session {
    async fn sign_in(app: &TestApp, token: &str) -> Self {
        let client = browser();
        let response = client
            .post(app.url("/console/sign-in"))
            .header("origin", &app.base)
            .form(&[("token", token)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), 303, "sign-in redirects");
        let cookie = session_cookie(response.headers()).expect("a session cookie");
        Self {
            base: app.base.clone(),
            cookie,
            client,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("page")
    }

    /// The page's HTML, asserting its status.
    async fn page(&self, path: &str, status: u16) -> String {
        let response = self.get(path).await;
        let got = response.status().as_u16();
        let body = response.text().await.expect("body");
        assert_eq!(got, status, "GET {path}: {body}");
        body
    }

    /// The CSRF token the page's forms carry.
    async fn csrf(&self, path: &str) -> String {
        let html = self.page(path, 200).await;
        html.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a form with a CSRF token")
            .to_owned()
    }

    async fn post(&self, path: &str, origin: Option<&str>, form: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.expect("post")
    }
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("lakeplane_console=") && !v.starts_with("lakeplane_console=;"))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Ada, acme's tenant-admin, signed in to the console.
async fn ada(app: &TestApp) -> Session {
    let token = app
        .token_for("ada", Role::TenantAdmin, Some("acme"), chrono::Duration::hours(1))
        .await;
    Session::sign_in(app, &token).await
}

/// Two tenants, each with a table and a token, so a page that leaked the other would show it.
async fn two_tenants(app: &TestApp, admin: &str) {
    for (id, name) in [("acme", "Acme Rockets"), ("globex", "Globex Corporation")] {
        let body = json!({"id": id, "display_name": name, "tier": "standard"});
        app.expect(admin, Method::POST, "/v1/tenants", Some(body), 201)
            .await;
        app.wait_for_status(admin, id, "ready").await;
        let table = json!({"zone": "bronze", "name": format!("{id}_orders"),
            "columns": [{"name": "id", "type": "long"}, {"name": "amount", "type": "decimal(10,2)"}]});
        app.expect(
            admin,
            Method::POST,
            &format!("/v1/tenants/{id}/tables"),
            Some(table),
            201,
        )
        .await;
        let token = json!({"subject": format!("{id}-analyst"), "role": "analyst", "ttl_seconds": 3600});
        app.expect(
            admin,
            Method::POST,
            &format!("/v1/tenants/{id}/tokens"),
            Some(token),
            201,
        )
        .await;
    }
}

#[tokio::test]
async fn a_tenant_admin_sees_its_tenant_and_nothing_of_another() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    let session = ada(&app).await;

    let home = session.get("/console").await;
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()[LOCATION], "/console/tenants/acme");

    let pages = [
        "/console/tenants/acme",
        "/console/tenants/acme/tokens",
        "/console/tenants/acme/audit",
        "/console/tenants/acme/governance",
        "/console/tenants/acme/tables/bronze/acme_orders",
    ];
    for path in pages {
        let html = session.page(path, 200).await;
        for leak in ["globex", "Globex"] {
            assert!(!html.contains(leak), "{path} shows another tenant ({leak})");
        }
        assert!(
            html.contains("Signed in as <strong>ada</strong>"),
            "{path} names the viewer"
        );
    }
    let overview = session.page("/console/tenants/acme", 200).await;
    assert!(overview.contains("Acme Rockets") && overview.contains("acme_orders"));
    assert!(overview.contains("Zones and lifecycle") && overview.contains("Usage and cost"));
    assert!(
        overview.contains("<svg class=\"chart\""),
        "usage is drawn as a chart"
    );
    assert!(
        !overview.contains("href=\"/console/fleet\""),
        "no fleet link for a tenant-admin"
    );
    let tokens = session.page("/console/tenants/acme/tokens", 200).await;
    assert!(tokens.contains("acme-analyst"), "the tenant's tokens are listed");
    let table = session
        .page("/console/tenants/acme/tables/bronze/acme_orders", 200)
        .await;
    assert!(table.contains("decimal(10,2)"), "column types are shown");

    // Another tenant's pages answer as if it did not exist; the fleet is the platform's.
    for path in [
        "/console/tenants/globex",
        "/console/tenants/globex/tokens",
        "/console/tenants/globex/tables/bronze/globex_orders",
    ] {
        let html = session.page(path, 404).await;
        assert!(!html.contains("Globex"), "{path}");
    }
    let fleet = session.page("/console/fleet", 403).await;
    assert!(!fleet.contains("globex"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_platform_admin_sees_the_fleet_and_plans_a_rebalance() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    let session = Session::sign_in(&app, &admin).await;
    assert_eq!(
        session.get("/console").await.headers()[LOCATION],
        "/console/fleet"
    );
    let fleet = session.page("/console/fleet", 200).await;
    for shown in [
        "Acme Rockets",
        "Globex Corporation",
        "Buckets and shards",
        "Plan a rebalance",
    ] {
        assert!(fleet.contains(shown), "the fleet shows {shown}");
    }
    // The bucket table lists the shared shard both tenants live in.
    let buckets = app
        .expect(&admin, Method::GET, "/v1/admin/buckets", None, 200)
        .await;
    let bucket = buckets["items"][0]["name"].as_str().expect("a bucket");
    assert!(fleet.contains(bucket), "the fleet lists bucket {bucket}");

    // The ranking placement decides by, with the dedicated share's cut-off drawn.
    for (tenant, mib) in [("acme", 5u64), ("globex", 1)] {
        let id = tenancy::tenant::TenantId::parse(tenant).expect("id");
        app.state
            .store
            .record_volume(&id, mib << 20)
            .await
            .expect("volume");
    }
    let ranking = app
        .expect(&admin, Method::GET, "/v1/admin/placement/ranking", None, 200)
        .await;
    assert_eq!(ranking["tenants"], 2);
    assert_eq!(ranking["top_count"], 1, "ceil(10% of 2) = 1");
    assert_eq!(ranking["cutoff_bytes"], 5 << 20);
    assert_eq!(
        ranking["points"],
        json!([{"rank": 1, "volume_30d_bytes": 5 << 20}, {"rank": 2, "volume_30d_bytes": 1 << 20}])
    );
    let fleet = session.page("/console/fleet", 200).await;
    assert!(
        fleet.contains("The top 10%: 1 tenants at or above 5.0 MiB"),
        "{fleet}"
    );
    let bad = app.get_as(&admin, "/v1/admin/placement/ranking?points=1").await;
    assert_eq!(bad.status(), 422);
    let tenant_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    assert_eq!(
        app.get_as(&tenant_admin, "/v1/admin/placement/ranking")
            .await
            .status(),
        403
    );

    // Search by id or display name, any case; a search the API refuses is shown at its field.
    let found = session.page("/console/fleet?q=GLOBEX%20corp", 200).await;
    assert!(found.contains("Globex Corporation") && !found.contains("Acme Rockets"));
    let page = app
        .expect(&admin, Method::GET, "/v1/tenants?q=rock", None, 200)
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.get_as(&admin, "/v1/tenants?q=").await.status(),
        422,
        "an empty search is refused"
    );
    let long = "x".repeat(101);
    let refused = session.page(&format!("/console/fleet?q={long}"), 200).await;
    assert!(
        refused.contains("id=\"q-error\""),
        "the API's message at the field"
    );

    let csrf = session.csrf("/console/fleet").await;
    let plan = session
        .post(
            "/console/fleet/rebalance",
            Some(&app.base),
            &[("csrf", &csrf), ("mode", "plan")],
        )
        .await;
    assert_eq!(plan.status(), 200);
    let plan = plan.text().await.expect("plan");
    assert!(
        plan.contains("Nothing to move") || plan.contains("I confirm"),
        "{plan}"
    );
    // Starting without the confirmation is refused.
    let run = session
        .post(
            "/console/fleet/rebalance",
            Some(&app.base),
            &[("csrf", &csrf), ("mode", "run")],
        )
        .await;
    assert_eq!(run.status(), 403);
    app.shutdown().await;
}

#[tokio::test]
async fn a_zone_form_is_validated_by_the_api_and_refused_without_csrf_or_from_another_origin() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    let session = ada(&app).await;
    let before = zones(&app, &admin).await;
    let csrf = session.csrf("/console/tenants/acme").await;
    let form = |retention: &'static str| {
        vec![
            ("retention_days", retention),
            ("after_days_0", "30"),
            ("storage_class_0", "STANDARD_IA"),
        ]
    };

    // From another origin, or without the session's CSRF token: refused, nothing changed.
    let mut with_csrf = form("400");
    with_csrf.push(("csrf", &csrf));
    let cross = session
        .post(
            "/console/tenants/acme/zones/silver",
            Some("http://127.0.0.1:1"),
            &with_csrf,
        )
        .await;
    assert_eq!(cross.status(), 403);
    let no_origin = session
        .post("/console/tenants/acme/zones/silver", None, &with_csrf)
        .await;
    assert_eq!(no_origin.status(), 403);
    let no_csrf = session
        .post(
            "/console/tenants/acme/zones/silver",
            Some(&app.base),
            &form("400"),
        )
        .await;
    assert_eq!(no_csrf.status(), 403);
    assert_eq!(zones(&app, &admin).await, before, "refused forms change nothing");

    // An invalid value: the API's message beside the field, the value kept, nothing changed.
    let mut invalid = form("soon");
    invalid.push(("csrf", &csrf));
    let rejected = session
        .post("/console/tenants/acme/zones/silver", Some(&app.base), &invalid)
        .await;
    assert_eq!(rejected.status(), 422);
    let html = rejected.text().await.expect("page");
    let field = html
        .split("id=\"silver-retention\"")
        .nth(1)
        .expect("the retention field");
    assert!(
        field.contains("aria-invalid=\"true\""),
        "the field is marked invalid: {html}"
    );
    assert!(field.contains("value=\"soon\""), "what was typed is kept");
    assert!(
        html.contains("id=\"silver-retention-error\""),
        "the message sits beside the field"
    );
    assert_eq!(
        zones(&app, &admin).await,
        before,
        "an invalid form changes nothing"
    );

    // A valid one goes through PUT /v1/.../zones/silver, audited as that call.
    let mut valid = form("400");
    valid.push(("csrf", &csrf));
    let saved = session
        .post("/console/tenants/acme/zones/silver", Some(&app.base), &valid)
        .await;
    assert_eq!(
        saved.status(),
        303,
        "{}",
        saved
            .text()
            .await
            .unwrap_or_default()
            .split("Not changed")
            .nth(1)
            .unwrap_or("")
    );
    let after = zones(&app, &admin).await;
    assert_eq!(after["silver"]["retention_days"], 400);
    assert_eq!(
        after["silver"]["transitions"][0],
        json!({"after_days": 30, "storage_class": "STANDARD_IA"})
    );
    let audit = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?tenant=acme&action=zone.update",
            None,
            200,
        )
        .await;
    let events: Vec<&Value> = audit["items"].as_array().expect("items").iter().collect();
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "ada" && e["outcome"] == "success"),
        "the change is audited as ada's PUT: {audit}"
    );
    let page = session.page("/console/tenants/acme", 200).await;
    assert!(
        page.contains("day 30 · STANDARD_IA") && page.contains("day 400 · deleted"),
        "the timeline follows"
    );
    app.shutdown().await;
}

async fn zones(app: &TestApp, admin: &str) -> Value {
    app.expect(admin, Method::GET, "/v1/tenants/acme/zones", None, 200)
        .await
}

#[tokio::test]
async fn a_token_issued_in_the_console_is_shown_once_and_a_revoked_one_ends_its_session() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    let session = ada(&app).await;
    let csrf = session.csrf("/console/tenants/acme/tokens").await;

    // Invalid first: the API's message beside the lifetime field.
    let issue = |ttl: &'static str| {
        let csrf = csrf.clone();
        let session = &session;
        let origin = app.base.clone();
        async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("subject", "bob"),
                ("role", "tenant-admin"),
                ("ttl_seconds", ttl),
            ];
            session
                .post("/console/tenants/acme/tokens", Some(&origin), &form)
                .await
        }
    };
    let bad = issue("5").await;
    assert_eq!(bad.status(), 422);
    let html = bad.text().await.expect("page");
    assert!(html.contains("id=\"ttl_seconds-error\""), "{html}");

    let issued = issue("3600").await;
    assert_eq!(issued.status(), 201);
    let html = issued.text().await.expect("page");
    let secret = html
        .split("id=\"issued-token\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("the new token")
        .to_owned();
    app.expect(&secret, Method::GET, "/v1/tenants/acme", None, 200)
        .await;
    let listed = session.page("/console/tenants/acme/tokens", 200).await;
    assert!(
        listed.contains(">bob<") && !listed.contains(&secret),
        "listed, secret not shown again"
    );

    // Bob signs in with it; revoking it in ada's console ends bob's session at his next page.
    let bob = Session::sign_in(&app, &secret).await;
    bob.page("/console/tenants/acme", 200).await;
    let tokens = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/tokens", None, 200)
        .await;
    let bob_id = tokens["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["subject"] == "bob")
        .and_then(|t| t["token_id"].as_str())
        .expect("bob's token")
        .to_owned();
    let revoked = session
        .post(
            &format!("/console/tenants/acme/tokens/{bob_id}/revoke"),
            Some(&app.base),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(revoked.status(), 303);
    let after = bob.get("/console/tenants/acme").await;
    assert_eq!(after.status(), 303);
    assert!(
        after.headers()[LOCATION]
            .to_str()
            .expect("location")
            .starts_with("/console/sign-in")
    );
    let cleared = after.headers().get_all(SET_COOKIE).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.starts_with("lakeplane_console=;") && v.contains("Max-Age=0"))
    });
    assert!(cleared, "the session cookie is cleared");
    let audit = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?tenant=acme&action=token.revoke",
            None,
            200,
        )
        .await;
    assert!(
        audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["actor"] == "ada")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn every_page_is_escaped_and_carries_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let payload = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=1\">";
    let body = json!({"id": "acme", "display_name": payload, "tier": "standard"});
    app.expect(&admin, Method::POST, "/v1/tenants", Some(body), 201)
        .await;
    app.wait_for_status(&admin, "acme", "ready").await;
    let session = Session::sign_in(&app, &admin).await;
    for path in ["/console/fleet", "/console/tenants/acme"] {
        let response = session.get(path).await;
        let headers = response.headers().clone();
        let html = response.text().await.expect("page");
        assert!(
            !html.contains("<script>window.__xss"),
            "{path} renders the name as text"
        );
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["cache-control"], "no-store");
    }
    // Not signed in: to the sign-in page; a wrong token is refused there, no cookie set.
    let anonymous = browser()
        .get(app.url("/console/tenants/acme"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 303);
    let wrong = browser()
        .post(app.url("/console/sign-in"))
        .header("origin", &app.base)
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status(), 401);
    assert!(session_cookie(wrong.headers()).is_none());
    // A cookie altered by hand does not open.
    let forged = browser()
        .get(app.url("/console/tenants/acme"))
        .header("cookie", format!("{}x", session.cookie))
        .send()
        .await
        .expect("get");
    assert_eq!(forged.status(), 303);
    app.shutdown().await;
}

#[tokio::test]
async fn a_viewer_sees_what_its_role_reads_and_no_admin_forms() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    let gold = json!({"zone": "gold", "name": "acme_kpis", "columns": [{"name": "id", "type": "long"}]});
    app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(gold), 201)
        .await;
    let viewer = app
        .token_for("vic", Role::Viewer, Some("acme"), chrono::Duration::hours(1))
        .await;
    let session = Session::sign_in(&app, &viewer).await;
    let overview = session.page("/console/tenants/acme", 200).await;
    assert!(overview.contains("acme_kpis"), "a viewer sees gold tables");
    assert!(
        !overview.contains("Acme Rockets"),
        "the tenant record is the admin's (GET /v1/tenants/acme is 403)"
    );
    // Bronze is not the viewer's to see, and zone policies and usage are the admin's.
    assert!(
        !overview.contains("acme_orders"),
        "a viewer does not see bronze tables"
    );
    assert!(
        !overview.contains("Save silver policy"),
        "no zone forms for a viewer"
    );
    session.page("/console/tenants/acme/tokens", 403).await;
    // The console answers a bronze table as /v1 does for this role.
    let api = app
        .get_as(&viewer, "/v1/tenants/acme/tables/bronze/acme_orders")
        .await
        .status()
        .as_u16();
    assert_eq!(api, 403);
    let html = session
        .page("/console/tenants/acme/tables/bronze/acme_orders", api)
        .await;
    assert!(!html.contains("decimal(10,2)"), "no column of the hidden table");
    app.shutdown().await;
}

#[tokio::test]
async fn a_recipient_made_in_the_console_downloads_a_working_profile() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    two_tenants(&app, &admin).await;
    for tenant in ["acme", "globex"] {
        let share =
            json!({"name": "partners", "tables": [{"zone": "bronze", "name": format!("{tenant}_orders")}]});
        app.expect(
            &admin,
            Method::POST,
            &format!("/v1/tenants/{tenant}/shares"),
            Some(share),
            201,
        )
        .await;
    }
    let session = ada(&app).await;
    let page = session.page("/console/tenants/acme/governance", 200).await;
    assert!(
        page.contains("bronze.acme_orders") && !page.contains("globex"),
        "{page}"
    );
    let csrf = session.csrf("/console/tenants/acme/governance").await;

    let bad = session
        .post(
            "/console/tenants/acme/shares/partners/recipients",
            Some(&app.base),
            &[("csrf", &csrf), ("name", "bi"), ("ttl_seconds", "forever")],
        )
        .await;
    assert_eq!(bad.status(), 422);
    assert!(
        bad.text()
            .await
            .expect("page")
            .contains("id=\"partners-ttl-error\"")
    );

    let made = session
        .post(
            "/console/tenants/acme/shares/partners/recipients",
            Some(&app.base),
            &[("csrf", &csrf), ("name", "bi"), ("ttl_seconds", "3600")],
        )
        .await;
    assert_eq!(
        made.status(),
        201,
        "{}",
        made.text()
            .await
            .unwrap_or_default()
            .split("Not changed")
            .nth(1)
            .unwrap_or("")
    );
    let disposition = made.headers()["content-disposition"]
        .to_str()
        .expect("header")
        .to_owned();
    assert_eq!(disposition, "attachment; filename=\"partners-bi.share\"");
    let profile: Value = made.json().await.expect("profile");
    let token = profile["bearerToken"].as_str().expect("a bearer token");
    // The profile reaches acme's share, and only it.
    let shares = app
        .client
        .get(app.url("/delta-sharing/shares"))
        .bearer_auth(token)
        .send()
        .await
        .expect("list");
    assert_eq!(shares.status(), 200);
    let shares: Value = shares.json().await.expect("json");
    assert_eq!(shares["items"].as_array().map(Vec::len), Some(1), "{shares}");
    let listed = session.page("/console/tenants/acme/governance", 200).await;
    assert!(
        listed.contains("<td>bi</td>") && !listed.contains(token),
        "listed, token not shown"
    );
    app.shutdown().await;
}

/// The tenant page shows each stream's ingest rate as `/v1` reads it from the table's log,
/// and the table page lists its maintenance runs newest first, a page at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_show_their_rate_and_tables_their_maintenance_runs() {
    use crate::streams::{EVENTS, clicks, ndjson, push};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    // Three pushes, three commits (three files for the compaction below).
    for start in [0, 40, 80] {
        let answer = push(
            &app,
            &admin,
            EVENTS,
            "application/x-ndjson",
            ndjson(start..start + 40),
        )
        .await;
        assert_eq!(answer.status(), 200);
    }
    let session = ada(&app).await;
    let overview = session.page("/console/tenants/acme", 200).await;
    assert!(
        overview.contains("title=\"120 rows in the last 60 s\">2.0 rows/s</td>"),
        "the stream's rate: {overview}"
    );

    // Eleven runs: a compaction, then ten checkpoints. The first page holds the ten newest.
    let table = "/v1/tenants/acme/tables/bronze/events";
    let compact =
        crate::tables::run_maintenance(&app, &admin, table, json!({"operations": ["compact"]})).await;
    assert_eq!(compact["status"], "succeeded", "{compact}");
    for _ in 0..10 {
        let run =
            crate::tables::run_maintenance(&app, &admin, table, json!({"operations": ["checkpoint"]})).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    let page = session
        .page("/console/tenants/acme/tables/bronze/events", 200)
        .await;
    let runs = page.split("<h3>Runs</h3>").nth(1).expect("runs section");
    let runs = runs.split("</table>").next().expect("runs table");
    assert_eq!(runs.matches("<td>checkpoint</td>").count(), 10, "{runs}");
    assert!(
        !runs.contains("<td>compact</td>"),
        "the oldest run is on the next page"
    );
    let next = page
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| href.contains("runs_cursor="))
        .expect("a next page of runs")
        .replace("&amp;", "&");
    let second = session.page(&next, 200).await;
    let runs = second.split("<h3>Runs</h3>").nth(1).expect("runs section");
    let runs = runs.split("</table>").next().expect("runs table");
    assert_eq!(runs.matches("<td>compact</td>").count(), 1, "{runs}");
    assert!(runs.contains("files_removed=3"), "what the run did: {runs}");
    app.shutdown().await;
}
