//! HTTP ingestion survives a crash: concurrent clients push events with unique ids, the server
//! is killed with SIGKILL while they do and started again on the same data, and every event a
//! client got a 200 for is in the table, read by the Python `deltalake` reader.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Server, cli_token, lakeplane, signal};

async fn call(server: &Server, token: &str, method: Method, path: &str, body: Value) -> reqwest::Response {
    server
        .client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request")
}

const IDS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://"))
print(json.dumps(t.to_pyarrow_table(columns=["id"]).column("id").to_pylist()))
"#;

/// Pushes batches of unique ids until the server stops answering; records the acknowledged ids.
async fn client(base: String, token: String, first: i64, acked: Arc<Mutex<Vec<i64>>>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut next = first;
    loop {
        let ids: Vec<i64> = (next..next + 50).collect();
        next += 50;
        let body: String = ids
            .iter()
            .map(|i| format!("{{\"id\": {i}, \"note\": \"n{i}\"}}\n"))
            .collect();
        let answer = http
            .post(format!("{base}/v1/tenants/acme/streams/clicks/events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 200 => acked.lock().expect("lock").extend(ids),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return, // the server is gone
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_survives_a_sigkill() {
    let cwd = tempfile::tempdir().expect("cwd");
    let start = || {
        let mut command = lakeplane(cwd.path());
        command.env("LAKEPLANE__INGEST__LINGER_MS", "50");
        Server::start(command)
    };
    let server = start().await;
    let token = cli_token(cwd.path(), &[], &["--role", "platform-admin", "--subject", "ops"]).await;
    let tenant = json!({"id": "acme", "display_name": "Acme", "tier": "standard"});
    assert_eq!(
        call(&server, &token, Method::POST, "/v1/tenants", tenant)
            .await
            .status(),
        201
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t: Value = server
            .client
            .get(format!("{}/v1/tenants/acme", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if t["status"] == "ready" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "acme never became ready: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let table = json!({"zone": "bronze", "name": "clicks", "columns": [
        {"name": "id", "type": "long", "nullable": false}, {"name": "note", "type": "string"}]});
    let created = call(&server, &token, Method::POST, "/v1/tenants/acme/tables", table).await;
    assert_eq!(created.status(), 201);
    let location = created.json::<Value>().await.expect("json")["location"]
        .as_str()
        .expect("location")
        .to_owned();
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "clicks"}, "source": {"type": "http"}});
    assert_eq!(
        call(&server, &token, Method::POST, "/v1/tenants/acme/streams", stream)
            .await
            .status(),
        201
    );

    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            tokio::spawn(client(
                server.base.clone(),
                token.clone(),
                c * 1_000_000,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before_kill = acked.lock().expect("lock").len();
    assert!(before_kill > 0, "clients were acknowledged before the kill");
    signal(server.pid(), "KILL");
    for c in clients {
        c.await.expect("client");
    }
    drop(server);

    let server = start().await;
    assert_eq!(
        server.get("/readyz").await.status(),
        200,
        "the restarted server is ready"
    );
    let acked: BTreeSet<i64> = acked.lock().expect("lock").iter().copied().collect();
    let ids = crate::common::python(IDS, &[&location]);
    let stored: Vec<i64> = serde_json::from_str(&ids).expect("json");
    let unique: BTreeSet<i64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "no id stored twice");
    let lost: Vec<&i64> = acked.difference(&unique).take(10).collect();
    assert!(
        lost.is_empty(),
        "acknowledged events lost after SIGKILL: {lost:?} (of {})",
        acked.len()
    );
    // The server keeps ingesting after the restart.
    let more = server
        .client
        .post(format!("{}/v1/tenants/acme/streams/clicks/events", server.base))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body("{\"id\": -1}\n")
        .send()
        .await
        .expect("push");
    assert_eq!(more.status(), 200);
}
