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
