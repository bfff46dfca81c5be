//! The authorization matrix, generated from the served OpenAPI spec so no route can be
//! forgotten: every `/v1` operation must have an entry below, or this test fails.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::TestApp;

/// Which tenant roles may call an operation on their own tenant (platform-admin always may).
pub(crate) fn allowed(method: &str, path: &str) -> Option<&'static [Role]> {
    use Role::*;
    Some(match (method, path) {
        ("get", "/v1/info") => &[],
        ("post", "/v1/tenants") => &[],
        ("get", "/v1/tenants") => &[TenantAdmin],
        ("get", "/v1/tenants/{tenant}") => &[TenantAdmin],
        ("patch", "/v1/tenants/{tenant}") => &[TenantAdmin],
        ("delete", "/v1/tenants/{tenant}") => &[],
        ("post", "/v1/tenants/{tenant}/tokens") => &[TenantAdmin],
        ("get", "/v1/tenants/{tenant}/tokens") => &[TenantAdmin],
        ("delete", "/v1/tenants/{tenant}/tokens/{token_id}") => &[TenantAdmin],
        ("get", "/v1/audit") => &[TenantAdmin],
        ("post", "/v1/admin/placement/rebalance") | ("get", "/v1/admin/placement/ranking") => &[],
        ("get", "/v1/tenants/{tenant}/zones") => &[TenantAdmin],
        ("put", "/v1/tenants/{tenant}/zones/{zone}") => &[TenantAdmin],
        ("get", "/v1/tenants/{tenant}/lifecycle") => &[TenantAdmin],
        ("get", "/v1/tenants/{tenant}/usage") => &[TenantAdmin],
        ("get", "/v1/admin/buckets") => &[],
        ("delete", "/v1/admin/tokens/{token_id}") => &[],
        ("post", "/v1/tenants/{tenant}/provision") => &[],
        ("get", "/v1/tenants/{tenant}/workers") => &[TenantAdmin],
        ("get", "/v1/admin/workers") | ("post", "/v1/admin/workers/{id}/retry") => &[],
        // Table routes run in the silver zone here: engineers and tenant-admins write it,
        // scientists and analysts read it, viewers see gold only. The list filters instead.
        ("get", "/v1/tenants/{tenant}/tables") => &[TenantAdmin, Engineer, Scientist, Analyst, Viewer],
        ("post", "/v1/tenants/{tenant}/tables")
        | ("patch", "/v1/tenants/{tenant}/tables/{zone}/{name}")
        | ("delete", "/v1/tenants/{tenant}/tables/{zone}/{name}")
        | ("post", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance") => &[TenantAdmin, Engineer],
        ("get", "/v1/tenants/{tenant}/tables/{zone}/{name}")
        | ("get", "/v1/tenants/{tenant}/tables/{zone}/{name}/history")
        | ("get", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance")
        | ("get", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance/{run_id}") => {
            &[TenantAdmin, Engineer, Scientist, Analyst]
        }
        // Streams write bronze: engineers and tenant-admins only.
        ("get", "/v1/tenants/{tenant}/streams")
        | ("post", "/v1/tenants/{tenant}/streams")
        | ("get", "/v1/tenants/{tenant}/streams/{stream}")
        | ("delete", "/v1/tenants/{tenant}/streams/{stream}")
        | ("post", "/v1/tenants/{tenant}/streams/{stream}/events") => &[TenantAdmin, Engineer],
        // Shares are managed by tenant-admins only (the contract's role table); the share here
        // holds a silver table, which viewers cannot read.
        ("post", "/v1/tenants/{tenant}/shares")
        | ("get", "/v1/tenants/{tenant}/shares")
        | ("get", "/v1/tenants/{tenant}/shares/{share}")
        | ("delete", "/v1/tenants/{tenant}/shares/{share}")
        | ("post", "/v1/tenants/{tenant}/shares/{share}/recipients")
        | ("get", "/v1/tenants/{tenant}/shares/{share}/recipients")
        | ("delete", "/v1/tenants/{tenant}/shares/{share}/recipients/{recipient_id}") => &[TenantAdmin],
        // Credentials in the silver zone, read: what the caller's role holds itself (on local
        // storage the allowed roles get 422 pointing to Delta Sharing, never 403).
        ("post", "/v1/tenants/{tenant}/credentials") => &[TenantAdmin, Engineer, Scientist, Analyst],
        // Data subject erasures: tenant-admins only.
        ("post", "/v1/tenants/{tenant}/erasures")
        | ("get", "/v1/tenants/{tenant}/erasures")
        | ("get", "/v1/tenants/{tenant}/erasures/{erasure_id}")
        | ("get", "/v1/tenants/{tenant}/erasures/{erasure_id}/receipt") => &[TenantAdmin],
        // Pipelines here go from silver to gold: managed by whoever writes gold and reads
        // silver, read by whoever reads both (viewers read gold only).
        ("post", "/v1/tenants/{tenant}/pipelines")
        | ("patch", "/v1/tenants/{tenant}/pipelines/{pipeline}")
        | ("delete", "/v1/tenants/{tenant}/pipelines/{pipeline}")
        | ("post", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs") => &[TenantAdmin, Engineer],
        ("get", "/v1/tenants/{tenant}/pipelines") => &[TenantAdmin, Engineer, Scientist, Analyst, Viewer],
        ("get", "/v1/tenants/{tenant}/pipelines/{pipeline}")
        | ("get", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs")
        | ("get", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs/{pipeline_run_id}") => {
            &[TenantAdmin, Engineer, Scientist, Analyst]
        }
        // Grants: read and changed by tenant-admins; every role may ask what it can do itself.
        ("get" | "patch", "/v1/tenants/{tenant}/grants/tenant")
        | ("get" | "patch", "/v1/tenants/{tenant}/grants/zones/{zone}")
        | ("get" | "patch", "/v1/tenants/{tenant}/grants/tables/{zone}/{name}") => &[TenantAdmin],
        ("get", "/v1/tenants/{tenant}/effective-grants") => {
            &[TenantAdmin, Engineer, Scientist, Analyst, Viewer]
        }
        _ => return None,
    })
}

/// A valid request for the operation: body and query that pass validation.
pub(crate) fn request_for(method: &str, path: &str) -> (String, Option<Value>) {
    match (method, path) {
        ("post", "/v1/tenants") => (
            String::new(),
            Some(json!({"id": "matrix-new", "display_name": "New", "tier": "standard"})),
        ),
        ("patch", "/v1/tenants/{tenant}") => (String::new(), Some(json!({"display_name": "Renamed"}))),
        ("put", "/v1/tenants/{tenant}/zones/{zone}") => (
            String::new(),
            Some(
                json!({"retention_days": 365, "transitions": [{"after_days": 30, "storage_class": "STANDARD_IA"}]}),
            ),
        ),
        ("post", "/v1/tenants/{tenant}/tokens") => (
            String::new(),
            Some(json!({"subject": "bob", "role": "viewer", "ttl_seconds": 600})),
        ),
        ("post", "/v1/tenants/{tenant}/tables") => (
            String::new(),
            Some(json!({"zone": "silver", "name": "matrix", "columns": [{"name": "id", "type": "long"}]})),
        ),
        ("patch", "/v1/tenants/{tenant}/tables/{zone}/{name}") => {
            (String::new(), Some(json!({"description": "changed"})))
        }
        ("post", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance") => {
            (String::new(), Some(json!({"operations": ["compact"]})))
        }
        ("post", "/v1/tenants/{tenant}/streams") => (
            String::new(),
            Some(
                json!({"name": "matrix", "table": {"zone": "bronze", "name": "orders"}, "source": {"type": "http"}}),
            ),
        ),
        ("post", "/v1/tenants/{tenant}/streams/{stream}/events") => (String::new(), Some(json!([{"id": 1}]))),
        ("post", "/v1/tenants/{tenant}/shares") => (
            String::new(),
            Some(json!({"name": "matrix", "tables": [{"zone": "silver", "name": "orders"}]})),
        ),
        ("post", "/v1/tenants/{tenant}/shares/{share}/recipients") => {
            (String::new(), Some(json!({"name": "matrix", "ttl_seconds": 600})))
        }
        ("post", "/v1/tenants/{tenant}/credentials") => (
            String::new(),
            Some(json!({"zone": "silver", "access": "read", "ttl_seconds": 900})),
        ),
        // A dry run: it changes nothing, so every role's pass finds the same tables.
        ("post", "/v1/tenants/{tenant}/erasures") => (
            String::new(),
            Some(json!({"subjects": [{"id": 1}], "reason": "matrix", "dry_run": true})),
        ),
        ("post", "/v1/tenants/{tenant}/pipelines") => (
            String::new(),
            Some(json!({
                "name": "matrix",
                "source": {"zone": "silver", "table": "orders"},
                "target": {"zone": "gold", "table": "matrix"},
                "trigger": {"type": "manual"}
            })),
        ),
        ("patch", "/v1/tenants/{tenant}/pipelines/{pipeline}") => {
            (String::new(), Some(json!({"paused": true})))
        }
        ("post", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs") => (String::new(), Some(json!({}))),
        // A grant to a group no token here carries: it changes no one's access in the matrix.
        ("patch", p) if p.starts_with("/v1/tenants/{tenant}/grants/") => (
            String::new(),
            Some(json!({"changes": [{"principal": "group:matrix", "add": ["SELECT"]}]})),
        ),
        ("post", "/v1/admin/placement/rebalance") | ("delete", "/v1/tenants/{tenant}") => {
            ("?dry_run=true".into(), None)
        }
        _ => (String::new(), None),
    }
}

pub(crate) async fn operations(app: &TestApp) -> Vec<(String, String)> {
    let spec: Value = app.get("/openapi.json").await.json().await.expect("spec");
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for method in item.as_object().expect("item").keys() {
            ops.push((method.clone(), path.clone()));
        }
    }
    ops
}

async fn setup(app: &TestApp, admin: &str) -> String {
    for id in ["tenant-a", "tenant-b"] {
        let body = json!({"id": id, "display_name": id, "tier": "standard"});
        let created = app.send_as(admin, Method::POST, "/v1/tenants", Some(body)).await;
        assert_eq!(created.status(), 201);
        // Provisioning finishes in the background; the "untouched" comparison needs it done.
        app.wait_for_status(admin, id, "ready").await;
    }
    // A real token of tenant B, so its revoke route has something to find.
    let issued: Value = app
        .send_as(
            admin,
            Method::POST,
            "/v1/tenants/tenant-b/tokens",
            Some(json!({"subject": "b-user", "role": "viewer", "ttl_seconds": 600})),
        )
        .await
        .json()
        .await
        .expect("json");
    issued["token_id"].as_str().expect("token id").to_owned()
}

pub(crate) fn concrete(path: &str, tenant: &str, token_id: &str) -> String {
    path.replace("{tenant}", tenant)
        .replace("{token_id}", token_id)
        .replace("{zone}", "silver")
        .replace("{name}", "orders")
        .replace("{stream}", "clicks")
        .replace("{share}", "sales")
        .replace("{recipient_id}", "00000000-0000-7000-8000-000000000000")
        .replace("{run_id}", "00000000-0000-7000-8000-000000000000")
        .replace("{erasure_id}", "00000000-0000-7000-8000-000000000000")
        .replace("{pipeline}", "rollup")
        .replace("{pipeline_run_id}", "00000000-0000-7000-8000-000000000000")
        .replace("{id}", "ingest-tenant-b-000000000000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_of_tenant_a_gets_404_on_tenant_b_and_the_role_table_holds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let b_token_id = setup(&app, &admin).await;
    let b_before: Value = app
        .get_as(&admin, "/v1/tenants/tenant-b")
        .await
        .json()
        .await
        .expect("json");
    let ops = operations(&app).await;
    assert!(ops.len() >= 10, "{ops:?}");

    let mut failures = BTreeMap::new();
    for (method, path) in &ops {
        let Some(allowed_roles) = allowed(method, path) else {
            panic!("{method} {path} has no entry in the authorization matrix: add one");
        };
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let (query, body) = request_for(method, path);
        for role in Role::TENANT_ROLES {
            let token = app.token(role, Some("tenant-a")).await;
            if path.contains("{tenant}") {
                let url = format!("{}{query}", concrete(path, "tenant-b", &b_token_id));
                let status = app
                    .send_as(&token, verb.clone(), &url, body.clone())
                    .await
                    .status()
                    .as_u16();
                if status != 404 {
                    failures.insert(format!("{role} {method} {url} (other tenant)"), status);
                }
            }
            let own = format!(
                "{}{query}",
                concrete(path, "tenant-a", "00000000-0000-7000-8000-000000000000")
            );
            let status = app
                .send_as(&token, verb.clone(), &own, body.clone())
                .await
                .status()
                .as_u16();
            let expect_allowed = allowed_roles.contains(&role);
            if expect_allowed == (status == 403) || status == 401 {
                failures.insert(
                    format!("{role} {method} {own} (own tenant, allowed={expect_allowed})"),
                    status,
                );
            }
        }
    }
    assert!(failures.is_empty(), "unexpected answers: {failures:#?}");

    let b_after: Value = app
        .get_as(&admin, "/v1/tenants/tenant-b")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(b_before, b_after, "tenant B is untouched");
    let tokens: Value = app
        .get_as(&admin, "/v1/tenants/tenant-b/tokens")
        .await
        .json()
        .await
        .expect("json");
    assert!(
        tokens["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|t| t["status"] == "active")
    );
    app.shutdown().await;
}

#[tokio::test]
async fn tenant_admins_list_and_audit_only_their_own_tenant() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    setup(&app, &admin).await;
    let a_admin = app.token(Role::TenantAdmin, Some("tenant-a")).await;
    let list: Value = app
        .get_as(&a_admin, "/v1/tenants")
        .await
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["tenant-a"]);
    let audit: Value = app
        .get_as(&a_admin, "/v1/audit")
        .await
        .json()
        .await
        .expect("json");
    let items = audit["items"].as_array().expect("items");
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["tenant"] == "tenant-a"), "{audit}");
    assert_eq!(
        app.get_as(&a_admin, "/v1/audit?tenant=tenant-b").await.status(),
        404
    );
    app.shutdown().await;
}
