//! Table grants, on every path to the data: `/v1` lists and gets, Unity Catalog lists, gets
//! and temporary credentials, pushes, pipelines; their API (`/v1` and Unity Catalog's
//! permissions), its validation and audit; revocation across replicas; and the outside
//! judges (the `unitycatalog-client` SDK, polars' `pl.Catalog`).
//!
//! The tenants hold real Delta tables with rows in them, so a denial is a denial of data that
//! is there.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, python};

const UC: &str = "/api/2.1/unity-catalog";

/// `acme` and `beta`, each with `gold.orders`, `gold.customers` and `silver.events` (30 rows
/// each, written by Python `deltalake`), and `bronze.raw`.
async fn fixture(app: &TestApp) -> String {
    let admin = app.token(Role::PlatformAdmin, None).await;
    for tenant in ["acme", "beta"] {
        app.ready_tenant(&admin, tenant).await;
        for (zone, name) in [
            ("gold", "orders"),
            ("gold", "customers"),
            ("silver", "events"),
            ("bronze", "raw"),
        ] {
            let table = json!({"zone": zone, "name": name,
                "columns": [{"name": "id", "type": "long", "nullable": false}, {"name": "note", "type": "string"}]});
            let made = app
                .expect(
                    &admin,
                    Method::POST,
                    &format!("/v1/tenants/{tenant}/tables"),
                    Some(table),
                    201,
                )
                .await;
            if zone != "bronze" {
                python(
                    r#"
import sys, pyarrow as pa
from deltalake import write_deltalake
rows = pa.table({"id": pa.array(range(30), pa.int64()), "note": pa.array(["x"] * 30)})
write_deltalake(sys.argv[1].removeprefix("file://"), rows, mode="append")
"#,
                    &[made["location"].as_str().expect("location")],
                );
            }
        }
    }
    admin
}

async fn patch(
    app: &TestApp,
    token: &str,
    tenant: &str,
    securable: &str,
    changes: Value,
) -> reqwest::Response {
    app.send_as(
        token,
        Method::PATCH,
        &format!("/v1/tenants/{tenant}/grants/{securable}"),
        Some(json!({ "changes": changes })),
    )
    .await
}

async fn patch_ok(app: &TestApp, token: &str, tenant: &str, securable: &str, changes: Value) -> Value {
    let answer = patch(app, token, tenant, securable, changes).await;
    let status = answer.status();
    let body: Value = answer.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    body
}

/// Analysts lose the default `SELECT` on silver and gold; Bob gets `SELECT` on `gold.orders`.
async fn bob_only_orders(app: &TestApp, admin: &str, tenant: &str) {
    for zone in ["silver", "gold"] {
        patch_ok(
            app,
            admin,
            tenant,
            &format!("zones/{zone}"),
            json!([{"principal": "role:analyst", "remove": ["SELECT"]}]),
        )
        .await;
    }
    patch_ok(
        app,
        admin,
        tenant,
        "tables/gold/orders",
        json!([{"principal": "user:bob", "add": ["SELECT"]}]),
    )
    .await;
}

async fn status(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> u16 {
    app.send_as(token, method, path, body).await.status().as_u16()
}

async fn table_names(app: &TestApp, token: &str, tenant: &str) -> Vec<String> {
    let page = app
        .expect(
            token,
            Method::GET,
            &format!("/v1/tenants/{tenant}/tables?limit=500"),
            None,
            200,
        )
        .await;
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["zone"].as_str().expect("zone"),
                t["name"].as_str().expect("name")
            )
        })
        .collect()
}

async fn uc_table_id(app: &TestApp, admin: &str, full_name: &str) -> String {
    app.expect(admin, Method::GET, &format!("{UC}/tables/{full_name}"), None, 200)
        .await["table_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn bob_sees_exactly_the_table_he_is_granted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    bob_only_orders(&app, &acme_admin, "acme").await;
    let hour = chrono::Duration::hours(1);
    let bob = app.token_for("bob", Role::Analyst, Some("acme"), hour).await;
    let carol = app.token_for("carol", Role::Analyst, Some("acme"), hour).await;
    let eng = app.token_for("erin", Role::Engineer, Some("acme"), hour).await;

    // /v1: one table listed; the other answers as a missing one.
    assert_eq!(table_names(&app, &bob, "acme").await, ["gold.orders"]);
    assert!(
        table_names(&app, &carol, "acme").await.is_empty(),
        "analysts hold no SELECT any more"
    );
    let base = "/v1/tenants/acme/tables";
    for (path, want) in [
        (format!("{base}/gold/orders"), 200),
        (format!("{base}/gold/orders/history"), 200),
        (format!("{base}/gold/customers"), 404),
        (format!("{base}/gold/customers/history"), 404),
        (format!("{base}/silver/events"), 404),
    ] {
        assert_eq!(
            status(&app, &bob, Method::GET, &path, None).await,
            want,
            "bob GET {path}"
        );
    }
    assert_eq!(
        status(&app, &carol, Method::GET, &format!("{base}/gold/orders"), None).await,
        404
    );
    // The engineer's defaults are untouched: it sees all four.
    assert_eq!(table_names(&app, &eng, "acme").await.len(), 4);

    // Unity Catalog: the same tables; a get or credentials without the grant is PERMISSION_DENIED.
    let listed = app
        .expect(
            &bob,
            Method::GET,
            &format!("{UC}/tables?catalog_name=acme&schema_name=gold"),
            None,
            200,
        )
        .await;
    let names: Vec<&str> = listed["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders"]);
    let denied = app
        .send_as(
            &bob,
            Method::GET,
            &format!("{UC}/tables/acme.gold.customers"),
            None,
        )
        .await;
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.expect("json");
    assert_eq!(body["error_code"], "PERMISSION_DENIED", "{body}");
    assert_eq!(
        status(
            &app,
            &bob,
            Method::GET,
            &format!("{UC}/tables/acme.gold.orders"),
            None
        )
        .await,
        200
    );
    let customers = uc_table_id(&app, &admin, "acme.gold.customers").await;
    let orders = uc_table_id(&app, &admin, "acme.gold.orders").await;
    let creds = format!("{UC}/temporary-table-credentials");
    for (id, want) in [(&customers, 403), (&orders, 200)] {
        let got = status(
            &app,
            &bob,
            Method::POST,
            &creds,
            Some(json!({"table_id": id, "operation": "READ"})),
        )
        .await;
        assert_eq!(got, want, "temporary credentials for {id}");
    }
    // An analyst never writes, whatever is granted.
    let got = status(
        &app,
        &bob,
        Method::POST,
        &creds,
        Some(json!({"table_id": orders, "operation": "READ_WRITE"})),
    )
    .await;
    assert_eq!(got, 403);

    // A grant in one tenant reaches nothing in another: beta's analysts keep their defaults and
    // acme's Bob sees nothing of beta.
    let beta_bob = app.token_for("bob", Role::Analyst, Some("beta"), hour).await;
    assert_eq!(
        table_names(&app, &beta_bob, "beta").await,
        ["gold.customers", "gold.orders", "silver.events"]
    );
    // Nor through the grants API.
    assert_eq!(
        status(
            &app,
            &acme_admin,
            Method::GET,
            "/v1/tenants/beta/grants/tenant",
            None
        )
        .await,
        404
    );
    assert_eq!(
        status(
            &app,
            &bob,
            Method::GET,
            "/v1/tenants/beta/tables/gold/orders",
            None
        )
        .await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_sees_exactly_the_table_he_is_granted_on_sqlite() {
    bob_sees_exactly_the_table_he_is_granted(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_sees_exactly_the_table_he_is_granted_on_postgres() {
    bob_sees_exactly_the_table_he_is_granted(Backend::Postgres).await;
}

/// Polls `path` as `token` until it answers `want`, and returns how long that took.
async fn until(app: &TestApp, token: &str, path: &str, want: u16, deadline: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = status(app, token, Method::GET, path, None).await;
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "{path} still answers {got}, not {want}, after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A group grant turns access on for tokens carrying the group, on another replica of the
/// same PostgreSQL within 1 s; revoking it turns it off within 1 s there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_grant_and_its_revocation_reach_every_replica_within_a_second() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // One lake for both, as replicas share a bucket in production.
    let lake = app.data_dir.path().join("lake");
    let other = app.replica(move |c| c.storage.root = Some(lake)).await;
    let _admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "zones/gold",
        json!([{"principal": "role:analyst", "remove": ["SELECT"]}]),
    )
    .await;
    let hour = chrono::Duration::hours(1);
    let finance = app
        .token_with_groups("fay", Role::Analyst, Some("acme"), &["finance"], hour)
        .await;
    let support = app
        .token_with_groups("sam", Role::Analyst, Some("acme"), &["support"], hour)
        .await;
    let path = "/v1/tenants/acme/tables/gold/customers";
    // The replica has read (and cached) the narrowed grants before the change.
    until(&other, &finance, path, 404, Duration::from_secs(2)).await;

    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "tables/gold/customers",
        json!([{"principal": "group:finance", "add": ["SELECT"]}]),
    )
    .await;
    let on = until(&other, &finance, path, 200, Duration::from_secs(1)).await;
    assert_eq!(
        status(&other, &support, Method::GET, path, None).await,
        404,
        "another group sees nothing"
    );
    assert_eq!(
        status(&app, &finance, Method::GET, path, None).await,
        200,
        "at once on the replica that changed it"
    );

    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "tables/gold/customers",
        json!([{"principal": "group:finance", "remove": ["SELECT"]}]),
    )
    .await;
    assert_eq!(
        status(&app, &finance, Method::GET, path, None).await,
        404,
        "at once where it was revoked"
    );
    let off = until(&other, &finance, path, 404, Duration::from_secs(1)).await;
    println!("grant reached the other replica in {on:?}, revocation in {off:?}");
}

/// Bad changes name their field and change nothing; good ones are audited with before and
/// after, repeat harmlessly, and go with their table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_validated_audited_idempotent_and_go_with_their_table() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let grants_of = |securable: &'static str| {
        let (app, token) = (&app, acme_admin.clone());
        async move {
            app.expect(
                &token,
                Method::GET,
                &format!("/v1/tenants/acme/grants/{securable}"),
                None,
                200,
            )
            .await
        }
    };
    let before = (
        grants_of("zones/gold").await,
        grants_of("tables/gold/orders").await,
    );
    assert_eq!(
        before.0["privilege_assignments"],
        json!([
            {"principal": "role:analyst", "privileges": ["USE SCHEMA", "SELECT"]},
            {"principal": "role:engineer", "privileges": ["USE SCHEMA", "SELECT", "MODIFY"]},
            {"principal": "role:scientist", "privileges": ["USE SCHEMA", "SELECT"]},
            {"principal": "role:viewer", "privileges": ["USE SCHEMA", "SELECT"]},
        ]),
        "the defaults are the role table"
    );
    for (securable, changes, field) in [
        (
            "tables/gold/nope",
            json!([{"principal": "user:bob", "add": ["SELECT"]}]),
            "securable",
        ),
        (
            "tables/gold/orders",
            json!([{"principal": "bob", "add": ["SELECT"]}]),
            "changes[0].principal",
        ),
        (
            "tables/gold/orders",
            json!([{"principal": "user:bob", "add": ["READ"]}]),
            "changes[0].add[0]",
        ),
        (
            "tables/gold/orders",
            json!([{"principal": "user:bob", "add": ["USE CATALOG"]}]),
            "changes[0].add[0]",
        ),
        (
            "zones/gold",
            json!([{"principal": "role:analyst", "add": ["MODIFY"]}]),
            "changes[0].add[0]",
        ),
        (
            "zones/gold",
            json!([{"principal": "role:tenant-admin", "add": ["SELECT"]}]),
            "changes[0].principal",
        ),
        ("zones/gold", json!([]), "changes"),
        (
            "zones/gold",
            json!([{"principal": "user:a", "add": ["SELECT"]}, {"principal": "user:a", "remove": ["MODIFY"]}]),
            "changes[1].principal",
        ),
    ] {
        let answer = patch(&app, &acme_admin, "acme", securable, changes.clone()).await;
        assert_eq!(answer.status(), 422, "{securable} {changes}");
        let problem: Value = answer.json().await.expect("json");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        assert!(fields.contains(&field), "{securable} {changes}: {problem}");
    }
    // Only the tenant's admins change grants; another tenant's admin finds nothing.
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let beta_admin = app.token(Role::TenantAdmin, Some("beta")).await;
    let add_bob = json!([{"principal": "user:bob", "add": ["SELECT"]}]);
    for (token, want) in [(&analyst, 403), (&engineer, 403), (&beta_admin, 404)] {
        assert_eq!(
            patch(&app, token, "acme", "tables/gold/orders", add_bob.clone())
                .await
                .status(),
            want
        );
        assert_eq!(
            status(
                &app,
                token,
                Method::GET,
                "/v1/tenants/acme/grants/tables/gold/orders",
                None
            )
            .await,
            want
        );
    }
    assert_eq!(
        (
            grants_of("zones/gold").await,
            grants_of("tables/gold/orders").await
        ),
        before,
        "nothing changed"
    );

    // A valid change, twice: the same grants, and both audited with before and after.
    let once = patch_ok(&app, &acme_admin, "acme", "tables/gold/orders", add_bob.clone()).await;
    let twice = patch_ok(&app, &acme_admin, "acme", "tables/gold/orders", add_bob.clone()).await;
    assert_eq!(once, twice);
    assert_eq!(
        once["privilege_assignments"],
        json!([{"principal": "user:bob", "privileges": ["SELECT"]}])
    );
    let audit = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?tenant=acme&action=grants.update",
            None,
            200,
        )
        .await;
    // The refusals above are audited under the same action; the two changes succeeded.
    let all = audit["items"].as_array().expect("items");
    let events: Vec<&Value> = all.iter().filter(|e| e["outcome"] == "success").collect();
    assert_eq!(events.len(), 2, "{audit}");
    assert!(all.len() > 2, "refusals are audited too: {audit}");
    let first = events.last().expect("first");
    assert_eq!(first["target"], "/v1/tenants/acme/grants/tables/gold/orders");
    assert_eq!(first["details"]["before"], json!({}));
    assert_eq!(first["details"]["after"], json!({"user:bob": ["SELECT"]}));

    // The table's grants go with it: a table made again under the name has none of its own.
    app.expect(
        &acme_admin,
        Method::DELETE,
        "/v1/tenants/acme/tables/gold/orders",
        None,
        202,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = app
            .send_as(
                &acme_admin,
                Method::POST,
                "/v1/tenants/acme/tables",
                Some(json!({"zone": "gold", "name": "orders", "columns": [{"name": "id", "type": "long"}]})),
            )
            .await;
        if made.status() == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the table was not purged: {}",
            made.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        grants_of("tables/gold/orders").await["privilege_assignments"],
        json!([])
    );
}

/// What a principal can do, and through which grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effective_grants_show_what_a_principal_can_do_and_why() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let _admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    bob_only_orders(&app, &acme_admin, "acme").await;
    let got = app
        .expect(
            &acme_admin,
            Method::GET,
            "/v1/tenants/acme/effective-grants?principal=user:bob&role=analyst",
            None,
            200,
        )
        .await;
    assert_eq!(got["items"].as_array().expect("items").len(), 1, "{got}");
    assert_eq!(got["items"][0]["securable"], "tables/gold/orders");
    assert_eq!(
        got["items"][0]["privileges"],
        json!([{"privilege": "SELECT", "via": [{"securable": "tables/gold/orders", "principal": "user:bob"}]}])
    );
    assert_eq!(
        got["tenant_and_zones"][0],
        json!({"securable": "tenant", "privileges": [{"privilege": "USE CATALOG",
            "via": [{"securable": "tenant", "principal": "role:analyst"}]}]})
    );
    // Bob asks about himself; about someone else he may not.
    let bob = app
        .token_for("bob", Role::Analyst, Some("acme"), chrono::Duration::hours(1))
        .await;
    let mine = app
        .expect(&bob, Method::GET, "/v1/tenants/acme/effective-grants", None, 200)
        .await;
    assert_eq!(mine["items"], got["items"]);
    let other = "/v1/tenants/acme/effective-grants?principal=user:carol&role=analyst";
    assert_eq!(status(&app, &bob, Method::GET, other, None).await, 403);
    // A user principal needs the role that caps it.
    let missing_role = app
        .send_as(
            &acme_admin,
            Method::GET,
            "/v1/tenants/acme/effective-grants?principal=user:bob",
            None,
        )
        .await;
    assert_eq!(missing_role.status(), 422);
    let problem: Value = missing_role.json().await.expect("json");
    assert_eq!(problem["errors"][0]["field"], "role", "{problem}");
    // A privilege without the USE SCHEMA above it is not one a request would honour: with
    // analysts' USE SCHEMA on gold removed, Bob's SELECT on gold.orders is listed no more, and
    // Unity Catalog refuses him gold's permissions.
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "zones/gold",
        json!([{"principal": "role:analyst", "remove": ["USE SCHEMA"]}]),
    )
    .await;
    let mine = app
        .expect(&bob, Method::GET, "/v1/tenants/acme/effective-grants", None, 200)
        .await;
    assert_eq!(mine["items"], json!([]), "{mine}");
    assert_eq!(
        status(
            &app,
            &bob,
            Method::GET,
            "/v1/tenants/acme/tables/gold/orders",
            None
        )
        .await,
        404
    );
    assert_eq!(
        status(
            &app,
            &bob,
            Method::GET,
            &format!("{UC}/permissions/schema/acme.gold"),
            None
        )
        .await,
        403
    );
}

/// Pushing to a stream and making a pipeline need MODIFY on the table written and SELECT on
/// the one read; a pipeline whose owner loses a grant fails its next run, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_and_pipelines_need_their_table_grants() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let _admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    let hour = chrono::Duration::hours(1);
    let erin = app.token_for("erin", Role::Engineer, Some("acme"), hour).await;
    app.expect(
        &acme_admin,
        Method::POST,
        "/v1/tenants/acme/streams",
        Some(json!({"name": "raw", "table": {"zone": "bronze", "name": "raw"}, "source": {"type": "http"}})),
        201,
    )
    .await;
    let push = "/v1/tenants/acme/streams/raw/events";
    let events = json!([{"id": 1, "note": "a"}]);
    assert_eq!(
        status(&app, &erin, Method::POST, push, Some(events.clone())).await,
        200
    );
    // Engineers lose MODIFY on bronze: erin's push is refused, and nothing is written.
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "zones/bronze",
        json!([{"principal": "role:engineer", "remove": ["MODIFY"]}]),
    )
    .await;
    let refused = app.send_as(&erin, Method::POST, push, Some(events.clone())).await;
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.expect("json");
    assert!(
        problem["detail"].as_str().expect("detail").contains("MODIFY"),
        "{problem}"
    );
    let version = |t: Value| t["version"].as_i64().expect("version");
    let raw = "/v1/tenants/acme/tables/bronze/raw";
    let before = version(app.expect(&acme_admin, Method::GET, raw, None, 200).await);
    // Granted back on the one table, to her alone.
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "tables/bronze/raw",
        json!([{"principal": "user:erin", "add": ["MODIFY"]}]),
    )
    .await;
    assert_eq!(
        before,
        version(app.expect(&acme_admin, Method::GET, raw, None, 200).await)
    );
    assert_eq!(status(&app, &erin, Method::POST, push, Some(events)).await, 200);
    let ned = app.token_for("ned", Role::Engineer, Some("acme"), hour).await;
    let stream =
        json!({"name": "raw2", "table": {"zone": "bronze", "name": "raw"}, "source": {"type": "http"}});
    assert_eq!(
        status(&app, &ned, Method::POST, "/v1/tenants/acme/streams", Some(stream)).await,
        403
    );
    // A stream shows only to who sees its table: engineers lose SELECT on bronze too.
    let streams = "/v1/tenants/acme/streams";
    assert_eq!(
        status(&app, &ned, Method::GET, "/v1/tenants/acme/streams/raw", None).await,
        200
    );
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "zones/bronze",
        json!([{"principal": "role:engineer", "remove": ["SELECT"]}]),
    )
    .await;
    assert_eq!(
        status(&app, &ned, Method::GET, "/v1/tenants/acme/streams/raw", None).await,
        404
    );
    let listed = app.expect(&ned, Method::GET, streams, None, 200).await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    let listed = app.expect(&erin, Method::GET, streams, None, 200).await;
    assert_eq!(
        listed["items"][0]["name"], "raw",
        "erin's MODIFY grant shows her the stream"
    );

    // A pipeline from silver.events needs SELECT there: engineers lose silver's SELECT but
    // erin holds it on the table.
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "zones/silver",
        json!([{"principal": "role:engineer", "remove": ["SELECT"]}]),
    )
    .await;
    let pipeline = json!({"name": "copy", "source": {"zone": "silver", "table": "events"},
        "target": {"zone": "gold", "table": "events_copy"}, "trigger": {"type": "manual"}});
    let pipelines = "/v1/tenants/acme/pipelines";
    assert_eq!(
        status(&app, &ned, Method::POST, pipelines, Some(pipeline.clone())).await,
        403
    );
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "tables/silver/events",
        json!([{"principal": "user:erin", "add": ["SELECT"]}]),
    )
    .await;
    app.expect(&erin, Method::POST, pipelines, Some(pipeline), 201)
        .await;
    let first = crate::pipelines::run(&app, &erin, "copy", false).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["rows"]["written"], 30);
    // Erin loses SELECT on the source: the next run fails, naming the owner and the grant.
    patch_ok(
        &app,
        &acme_admin,
        "acme",
        "tables/silver/events",
        json!([{"principal": "user:erin", "remove": ["SELECT"]}]),
    )
    .await;
    let second = crate::pipelines::run(&app, &acme_admin, "copy", true).await;
    assert_eq!(second["status"], "failed", "{second}");
    let error = second["error"].as_str().expect("error");
    assert!(
        error.contains("erin") && error.contains("SELECT on table silver.events"),
        "{error}"
    );
}

/// Unity Catalog's permissions API, through its official Python SDK: an admin grants and
/// reads; Bob reads only his own assignments and may not change any.
const UC_SDK: &str = r#"
import sys, json, asyncio
from unitycatalog.client import (ApiClient, Configuration, GrantsApi, SecurableType, Privilege,
    UpdatePermissions, PermissionsChange)
from unitycatalog.client.exceptions import ApiException
url, admin, bob = sys.argv[1] + "/api/2.1/unity-catalog", sys.argv[2], sys.argv[3]
def listed(perms):
    return {a.principal: [p.value for p in a.privileges] for a in perms.privilege_assignments}
async def main():
    out = {}
    cfg = Configuration(host=url)
    async with ApiClient(cfg, header_name="Authorization", header_value="Bearer " + admin) as c:
        api = GrantsApi(c)
        changed = await api.update(SecurableType.TABLE, "acme.gold.customers", update_permissions=UpdatePermissions(
            changes=[PermissionsChange(principal="group:finance", add=[Privilege.SELECT], remove=[])]))
        out["updated"] = listed(changed)
        out["table"] = listed(await api.get(SecurableType.TABLE, "acme.gold.customers"))
        out["schema"] = listed(await api.get(SecurableType.SCHEMA, "acme.gold"))
        out["catalog"] = listed(await api.get(SecurableType.CATALOG, "acme"))
        try:
            await api.get(SecurableType.TABLE, "beta.gold.orders")
            out["other tenant"] = "read"
        except ApiException as e:
            out["other tenant"] = e.status
    async with ApiClient(cfg, header_name="Authorization", header_value="Bearer " + bob) as c:
        api = GrantsApi(c)
        out["bob"] = listed(await api.get(SecurableType.TABLE, "acme.gold.orders"))
        try:
            await api.update(SecurableType.TABLE, "acme.gold.orders", update_permissions=UpdatePermissions(
                changes=[PermissionsChange(principal="user:bob", add=[Privilege.MODIFY], remove=[])]))
            out["bob update"] = "changed"
        except ApiException as e:
            out["bob update"] = e.status
    print(json.dumps(out))
asyncio.run(main())
"#;

/// polars' `pl.Catalog` with Bob's token lists only what he may see, and reads it.
const POLARS: &str = r#"
import sys, json, polars as pl
cat = pl.Catalog(sys.argv[1], bearer_token=sys.argv[2], require_https=False)
out = {"schemas": sorted(n.name for n in cat.list_namespaces("acme")),
       "gold": [t.name for t in cat.list_tables("acme", "gold")],
       "silver": [t.name for t in cat.list_tables("acme", "silver")],
       "rows": cat.scan_table("acme", "gold", "orders").select(pl.len()).collect().item()}
try:
    cat.scan_table("acme", "gold", "customers").collect()
    out["customers"] = "read"
except Exception as e:
    out["customers"] = str(e)[:300]
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unity_catalog_clients_grant_read_and_respect_grants() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let _admin = fixture(&app).await;
    let acme_admin = app.token(Role::TenantAdmin, Some("acme")).await;
    bob_only_orders(&app, &acme_admin, "acme").await;
    let bob = app
        .token_for("bob", Role::Analyst, Some("acme"), chrono::Duration::hours(1))
        .await;

    let got: Value = serde_json::from_str(&python(UC_SDK, &[&app.url(""), &acme_admin, &bob])).expect("json");
    assert_eq!(got["updated"], json!({"group:finance": ["SELECT"]}), "{got}");
    assert_eq!(got["table"], json!({"group:finance": ["SELECT"]}));
    assert_eq!(
        got["schema"],
        json!({"role:analyst": ["USE SCHEMA"], "role:engineer": ["USE SCHEMA", "SELECT", "MODIFY"],
            "role:scientist": ["USE SCHEMA", "SELECT"], "role:viewer": ["USE SCHEMA", "SELECT"]})
    );
    assert_eq!(
        got["catalog"],
        json!({"role:analyst": ["USE CATALOG"], "role:engineer": ["USE CATALOG"],
            "role:scientist": ["USE CATALOG"], "role:viewer": ["USE CATALOG"]})
    );
    assert_eq!(got["other tenant"], 404);
    assert_eq!(
        got["bob"],
        json!({"user:bob": ["SELECT"]}),
        "only his own assignments"
    );
    assert_eq!(got["bob update"], 403);
    // The SDK's change is the same grant `/v1` shows.
    let v1 = app
        .expect(
            &acme_admin,
            Method::GET,
            "/v1/tenants/acme/grants/tables/gold/customers",
            None,
            200,
        )
        .await;
    assert_eq!(
        v1["privilege_assignments"],
        json!([{"principal": "group:finance", "privileges": ["SELECT"]}])
    );

    let seen: Value = serde_json::from_str(&python(POLARS, &[&app.url(""), &bob])).expect("json");
    assert_eq!(seen["schemas"], json!(["gold", "silver"]), "{seen}");
    assert_eq!(seen["gold"], json!(["orders"]));
    assert_eq!(seen["silver"], json!([]));
    assert_eq!(seen["rows"], 30);
    assert!(
        seen["customers"].as_str().expect("error").contains("403"),
        "{seen}"
    );
}
