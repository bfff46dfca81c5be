use std::collections::BTreeSet;

use tenancy::store::Backend;

use crate::helpers::TestApp;

#[test]
fn committed_spec_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json"))
        .unwrap_or_default();
    let generated = api::openapi::spec_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the handlers.\n\
         Regenerate it with:  cargo run -q -p api --bin lakeplane -- openapi > openapi/openapi.json"
    );
}

#[tokio::test]
async fn served_spec_is_openapi_3_and_documents_every_operation() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let spec: serde_json::Value = response.json().await.expect("json");
    assert!(
        spec["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "Lakeplane");
    let paths: BTreeSet<&str> = spec["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    for expected in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/v1/info",
        "/v1/tenants",
        "/v1/tenants/{tenant}",
        "/v1/tenants/{tenant}/tokens",
        "/v1/tenants/{tenant}/tokens/{token_id}",
        "/v1/audit",
        "/v1/admin/placement/rebalance",
    ] {
        assert!(paths.contains(expected), "{expected} missing from {paths:?}");
    }
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            // The Unity Catalog routes answer every error in that API's own shape.
            let media = if path.starts_with("/api/2.1/unity-catalog/") {
                "application/json"
            } else {
                "application/problem+json"
            };
            for status in ["500", "503"] {
                let content = &responses[status]["content"][media];
                assert!(
                    content.is_object(),
                    "{method} {path} documents {status} as {media}"
                );
            }
        }
    }
    // Client generators and schemathesis' per-operation settings key on operation ids.
    let mut ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(
                !id.is_empty() && ids.insert(id.to_owned()),
                "{method} {path}: operation id {id:?} is missing or repeated"
            );
        }
    }
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn docs_render_from_local_assets_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let index = app.get("/docs/").await;
    assert_eq!(index.status(), 200);
    let html = index.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            assert!(
                !target.starts_with("http"),
                "external asset {target}: docs must work offline"
            );
            assets.push(target.trim_start_matches("./").to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "/docs/{asset}");
        let body = response.text().await.expect("asset body");
        if asset.contains("initializer") {
            assert!(body.contains("/openapi.json"), "the UI loads our spec: {body}");
        }
    }
    app.shutdown().await;
}
