//! The console in a real browser: Debian's headless Chromium, driven by Selenium from the
//! test venv (`api/tests/console_browser.py`), against this server over real HTTP. A
//! tenant-admin signs in by keyboard, reads the usage chart, changes a zone policy (an invalid
//! value first), issues and revokes a token, filters the audit log and queues maintenance;
//! axe-core checks each main page; XSS payloads go into every free-text field; a page served
//! from another origin posts a form to the console. Screenshots land in
//! `$CARGO_TARGET_DIR/console-screenshots` (README shows two).
//!
//! Needs `LAKEPLANE_PYTHON` (the venv, with selenium) and `LAKEPLANE_AXE` (axe.min.js), which
//! `scripts/test` sets from `scripts/python-env` and `scripts/browser-env`.

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::TestApp;

const SCRIPT: &str = include_str!("../console_browser.py");

/// Where screenshots go.
fn artefacts() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admins_day_in_chromium() {
    let axe = std::env::var("LAKEPLANE_AXE")
        .expect("LAKEPLANE_AXE must name axe.min.js (scripts/browser-env prints it; scripts/test sets it)");
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    // A display name that would run script if it were not escaped.
    let body = json!({"id": "acme", "display_name": "Acme <img src=x onerror=\"window.__xss=1\">", "tier": "standard"});
    app.expect(&admin, Method::POST, "/v1/tenants", Some(body), 201)
        .await;
    app.wait_for_status(&admin, "acme", "ready").await;
    let columns = json!([{"name": "id", "type": "long"}, {"name": "user", "type": "string"}]);
    app.bronze_with_http_stream(&admin, "acme", "events", columns, "clicks")
        .await;
    let events: String = (0..2000)
        .map(|i| format!("{{\"id\": {i}, \"user\": \"u{}\"}}\n", i % 13))
        .collect();
    for _ in 0..3 {
        let pushed = app
            .client
            .post(app.url("/v1/tenants/acme/streams/clicks/events"))
            .bearer_auth(&admin)
            .header("content-type", "application/x-ndjson")
            .body(events.clone())
            .send()
            .await
            .expect("push");
        assert!(pushed.status().is_success(), "push: {}", pushed.status());
    }
    // The usage chart needs bytes in bronze: wait until the API reports them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let usage = app
            .expect(&admin, Method::GET, "/v1/tenants/acme/usage", None, 200)
            .await;
        if usage["zones"]["bronze"]["bytes"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bronze bytes in usage: {usage}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ada = app
        .token_for("ada", Role::TenantAdmin, Some("acme"), chrono::Duration::hours(1))
        .await;
    let shots = artefacts();
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let args: Vec<String> = vec![
        app.base.clone(),
        "acme".into(),
        ada.clone(),
        "bronze.events".into(),
        shots.to_string_lossy().into_owned(),
        axe,
        admin.clone(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::common::python(SCRIPT, &args)
    })
    .await
    .expect("browser run");
    let seen: Value = serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("{e}: {output}"));

    assert!(
        seen["after_sign_in"]
            .as_str()
            .is_some_and(|u| u.ends_with("/console/tenants/acme")),
        "{seen}"
    );
    for (page, violations) in seen["axe"].as_object().expect("axe results") {
        assert_eq!(
            violations,
            &json!([]),
            "serious or critical accessibility violations on {page}"
        );
    }
    assert!(
        seen["axe"].as_object().expect("axe").len() >= 8,
        "axe ran on every main page: {seen}"
    );
    assert_eq!(seen["signed_out"], true);
    assert!(
        seen["fleet_chart"]
            .as_str()
            .is_some_and(|t| t.contains("30-day volume")),
        "the platform-admin reaches the fleet and its ranking chart: {seen}"
    );
    for (page, marker) in seen["xss"].as_object().expect("xss results") {
        assert_eq!(marker, "undefined", "a payload ran script on {page}");
    }
    let bars: Vec<&str> = seen["usage_bars"]
        .as_array()
        .expect("bars")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        bars.iter().any(|b| b.starts_with("bronze, STANDARD: ")),
        "the usage chart shows bronze's bytes: {bars:?}"
    );
    assert!(
        !seen["invalid_error"].as_str().unwrap_or("").is_empty(),
        "the invalid value is explained: {seen}"
    );
    assert_eq!(seen["invalid_marked"], "true");
    assert_eq!(seen["zone_saved"], true);
    assert!(
        seen["timeline"].as_str().is_some_and(|t| t.contains("day 400")),
        "{seen}"
    );
    let zones = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/zones", None, 200)
        .await;
    assert_eq!(
        zones["silver"]["retention_days"], 400,
        "the zone change reached the API"
    );

    let issued = seen["issued"].as_str().expect("a token was shown");
    assert_eq!(
        app.get_as(issued, "/v1/tenants/acme").await.status(),
        401,
        "the token issued in the browser was then revoked there"
    );
    assert_eq!(seen["revoked_notice"], true);
    assert_eq!(seen["queued"], true);
    let runs = app
        .expect(
            &admin,
            Method::GET,
            "/v1/audit?tenant=acme&action=table.maintenance.start",
            None,
            200,
        )
        .await;
    assert!(
        runs["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["actor"] == "ada"),
        "the queued maintenance is audited as ada's API call: {runs}"
    );

    assert!(
        seen["cross_origin_page"]
            .as_str()
            .is_some_and(|t| t.contains("not sent from a page of this console")),
        "{seen}"
    );
    let zones = app
        .expect(&admin, Method::GET, "/v1/tenants/acme/zones", None, 200)
        .await;
    assert_eq!(
        zones["silver"]["retention_days"], 400,
        "the cross-origin form changed nothing"
    );
    for shot in seen["screenshots"].as_array().expect("shots") {
        let path = shot.as_str().expect("path");
        assert!(
            std::fs::metadata(path).is_ok_and(|m| m.len() > 10_000),
            "{path} was saved"
        );
    }
    app.shutdown().await;
}
