use tenancy::role::Role;
use tenancy::store::{Backend, latest_known_version};

use crate::helpers::TestApp;
use tenancy::both_backends;

async fn info_describes_the_installation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let response = app.get_as(&admin, "/v1/info").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["service"], "lakeplane");
    assert_eq!(body["database"]["backend"], backend.as_str());
    assert_eq!(
        body["database"]["schema_version"],
        latest_known_version(backend).expect("migrations")
    );
    assert_eq!(body["instance_id"], app.state.instance.id.to_string());
    assert_eq!(body["storage"]["kind"], "local");
    let root = std::fs::canonicalize(app.data_dir.path().join("lake")).expect("lake root exists");
    assert_eq!(body["storage"]["root_uri"], format!("file://{}", root.display()));
    app.shutdown().await;
}
both_backends!(info_describes_the_installation);
