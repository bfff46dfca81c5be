//! The sharing issue's "done when", as a new user runs it on the embedded default: start the
//! server, push events over HTTP, share the table, save the recipient's profile, and load the
//! table in pandas with the `delta-sharing` client from PyPI. The server's log must not carry
//! the profile's token or a file URL's signature.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{expect_status, python};
use crate::helpers::{Server, call, cli_token, lakeplane};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_events_share_them_and_load_them_in_pandas() {
    let cwd = tempfile::tempdir().expect("cwd");
    let server = Server::start(lakeplane(cwd.path())).await;
    let root = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;
    let tenant = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        call(&server, &root, Method::POST, "/v1/tenants", Some(tenant))
            .await
            .status(),
        201
    );
    for _ in 0..200 {
        let t: Value = call(&server, &root, Method::GET, "/v1/tenants/acme", None)
            .await
            .json()
            .await
            .expect("json");
        if t["status"] == "ready" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let table = json!({"zone": "bronze", "name": "clicks", "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "page", "type": "string"}
    ]});
    assert_eq!(
        call(
            &server,
            &root,
            Method::POST,
            "/v1/tenants/acme/tables",
            Some(table)
        )
        .await
        .status(),
        201
    );
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": {"type": "http"}});
    assert_eq!(
        call(
            &server,
            &root,
            Method::POST,
            "/v1/tenants/acme/streams",
            Some(stream)
        )
        .await
        .status(),
        201
    );
    let mut expected = Vec::new();
    for push in 0..3 {
        let events: Vec<Value> = (push * 100..push * 100 + 100)
            .map(|i| json!({"id": i, "page": format!("/p/{i}")}))
            .collect();
        expected.extend((push * 100..push * 100 + 100).map(|i| json!([i, format!("/p/{i}")])));
        let pushed = call(
            &server,
            &root,
            Method::POST,
            "/v1/tenants/acme/streams/clicks/events",
            Some(Value::Array(events)),
        )
        .await;
        expect_status(pushed, "push", 200).await;
    }
    let share = json!({"name": "web", "tables": [{"zone": "bronze", "name": "clicks"}]});
    assert_eq!(
        call(
            &server,
            &root,
            Method::POST,
            "/v1/tenants/acme/shares",
            Some(share)
        )
        .await
        .status(),
        201
    );
    let issued = call(
        &server,
        &root,
        Method::POST,
        "/v1/tenants/acme/shares/web/recipients",
        Some(json!({"name": "analyst", "ttl_seconds": 3600})),
    )
    .await;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await.expect("json");
    let profile = cwd.path().join("analyst.share");
    std::fs::write(&profile, issued["profile"].to_string()).expect("profile");
    let script = r##"
import sys, json
import delta_sharing
df = delta_sharing.load_as_pandas(sys.argv[1] + "#web.bronze.clicks")
print(json.dumps(sorted([[int(r["id"]), r["page"]] for r in df.to_dict("records")])))
"##;
    let url = profile.display().to_string();
    let out = tokio::task::spawn_blocking(move || python(script, &[&url]))
        .await
        .expect("python");
    let rows: Value = serde_json::from_str(out.trim()).expect("rows");
    assert_eq!(rows, Value::Array(expected), "exactly the pushed events");
    let token = issued["profile"]["bearerToken"].as_str().expect("token");
    let logs = server.logs().join("\n");
    assert!(!logs.contains(token), "the recipient token never reaches the log");
    assert!(!logs.contains("sig="), "no file URL signature in the log");
    server.terminate().await;
}
