use tenancy::store::Backend;

use crate::helpers::TestApp;

#[tokio::test]
async fn metrics_show_the_requests_just_made_and_the_pool() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(tenancy::role::Role::PlatformAdmin, None).await;
    for _ in 0..3 {
        assert_eq!(app.get_as(&admin, "/v1/info").await.status(), 200);
    }
    assert_eq!(app.get("/nowhere/at/all").await.status(), 404);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.expect("text");
    assert!(
        text.contains(r#"lakeplane_http_requests_total{route="/v1/info",method="GET",status="200"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"lakeplane_http_requests_total{route="unmatched",method="GET",status="404"} 1"#));
    assert!(
        text.contains(r#"lakeplane_http_request_duration_seconds_count{route="/v1/info",method="GET"} 3"#)
    );
    assert!(text.contains("lakeplane_db_pool_max_connections 10"), "{text}");
    assert!(text.contains(r#"lakeplane_db_pool_connections{state="idle"}"#));
    assert!(
        !text.contains("/nowhere"),
        "unmatched paths never become label values"
    );
    app.shutdown().await;
}
