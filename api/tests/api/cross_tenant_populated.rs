//! The cross-tenant matrix against a populated tenant B, on both backends: tenant B holds
//! tables in every zone, an HTTP stream with committed events, two shares with recipients, a
//! finished maintenance run and its worker, a token, and a silver-to-gold pipeline with a
//! finished run. Every `/v1` operation of the served
//! spec is called by every role of tenant A on B's real resources (404 each time) and on its
//! own (the contract's exact success status when the role table allows it, 403 when it does
//! not). Then every Delta Sharing operation is called by A's recipient naming B's share (404),
//! and A's signed file URLs are bent towards B's files (403). B's stored rows, audit log and
//! files must be the same afterwards, row by row and byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::cross_tenant::{allowed, operations, request_for};
use crate::helpers::TestApp;

/// The contract's success status for an operation (API.md), for the roles allowed to call it.
fn success(method: &str, path: &str) -> u16 {
    match (method, path) {
        ("post", "/v1/tenants/{tenant}/tokens")
        | ("post", "/v1/tenants/{tenant}/tables")
        | ("post", "/v1/tenants/{tenant}/streams")
        | ("post", "/v1/tenants/{tenant}/shares")
        | ("post", "/v1/tenants/{tenant}/shares/{share}/recipients")
        | ("post", "/v1/tenants/{tenant}/pipelines") => 201,
        ("post", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance")
        | ("delete", "/v1/tenants/{tenant}/tables/{zone}/{name}")
        | ("post", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs") => 202,
        ("delete", "/v1/tenants/{tenant}/tokens/{token_id}")
        | ("delete", "/v1/tenants/{tenant}/streams/{stream}")
        | ("delete", "/v1/tenants/{tenant}/shares/{share}")
        | ("delete", "/v1/tenants/{tenant}/shares/{share}/recipients/{recipient_id}")
        | ("delete", "/v1/tenants/{tenant}/pipelines/{pipeline}") => 204,
        // On local storage the contract answers 422 and points to Delta Sharing.
        ("post", "/v1/tenants/{tenant}/credentials") => 422,
        // The held erasure waits for its vacuum window (nothing scheduled moves it): its
        // receipt is not issued yet.
        ("get", "/v1/tenants/{tenant}/erasures/{erasure_id}/receipt") => 409,
        _ => 200,
    }
}

/// What one populated tenant holds, by the ids its routes take.
#[derive(Debug, Clone)]
struct Holdings {
    tenant: String,
    token_id: String,
    run_id: String,
    worker_id: String,
    recipient_id: String,
    /// The recipient of share `sales`.
    recipient_token: String,
    /// The recipient of the tenant's [`own_share`].
    own_share_token: String,
    /// The bronze table's id and one of its data files, as a signed URL.
    bronze_id: String,
    file_url: String,
    /// A settled erasure.
    erasure_id: String,
    /// A finished run of the silver-to-gold pipeline `rollup`.
    pipeline_run_id: String,
}

const COLUMNS: &str = r#"[{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]"#;

/// Creates `tenant` and fills it through the API as a platform-admin would.
async fn populate(app: &TestApp, admin: &str, tenant: &str) -> Holdings {
    app.ready_tenant(admin, tenant).await;
    let base = format!("/v1/tenants/{tenant}");
    let columns: Value = serde_json::from_str(COLUMNS).expect("columns");
    for zone in ["bronze", "silver", "gold"] {
        // Ids name data subjects in bronze, so the tenant can hold an erasure.
        let subjects = if zone == "bronze" {
            json!(["id"])
        } else {
            json!([])
        };
        let table = json!({"zone": zone, "name": "orders", "columns": columns, "subject_columns": subjects});
        app.expect(admin, Method::POST, &format!("{base}/tables"), Some(table), 201)
            .await;
    }
    let stream =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "orders"}, "source": {"type": "http"}});
    app.expect(admin, Method::POST, &format!("{base}/streams"), Some(stream), 201)
        .await;
    let events = json!([{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]);
    let pushed = app
        .expect(
            admin,
            Method::POST,
            &format!("{base}/streams/clicks/events"),
            Some(events),
            200,
        )
        .await;
    assert_eq!(pushed["accepted"], 2, "{pushed}");
    let run = app
        .expect(
            admin,
            Method::POST,
            &format!("{base}/tables/silver/orders/maintenance"),
            Some(json!({"operations": ["compact"]})),
            202,
        )
        .await;
    let run_id = run["run_id"].as_str().expect("run id").to_owned();
    wait_for_run(
        app,
        admin,
        &format!("{base}/tables/silver/orders/maintenance/{run_id}"),
    )
    .await;
    let workers = app
        .expect(admin, Method::GET, &format!("{base}/workers"), None, 200)
        .await;
    let worker_id = workers["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{tenant} has a worker: {workers}"))
        .to_owned();
    let tables = json!([{"zone": "silver", "name": "orders"}, {"zone": "gold", "name": "orders"}, {"zone": "bronze", "name": "orders"}]);
    let only = own_share(tenant);
    let mut tokens = Vec::new();
    let mut recipient_id = String::new();
    for share in ["sales", only.as_str()] {
        let body = json!({"name": share, "tables": tables});
        app.expect(admin, Method::POST, &format!("{base}/shares"), Some(body), 201)
            .await;
        let recipient = app
            .expect(
                admin,
                Method::POST,
                &format!("{base}/shares/{share}/recipients"),
                Some(json!({"name": "bob", "ttl_seconds": 3600})),
                201,
            )
            .await;
        recipient_id = recipient["recipient_id"].as_str().expect("id").to_owned();
        tokens.push(
            recipient["profile"]["bearerToken"]
                .as_str()
                .expect("bearer token")
                .to_owned(),
        );
    }
    let issued = app
        .expect(
            admin,
            Method::POST,
            &format!("{base}/tokens"),
            Some(json!({"subject": "held", "role": "viewer", "ttl_seconds": 3600})),
            201,
        )
        .await;
    let (bronze_id, file_url) = first_file(app, &tokens[0], "sales").await;
    // An erasure of a subject with no rows: a real record, and no file changes.
    let erasure = app
        .expect(
            admin,
            Method::POST,
            &format!("{base}/erasures"),
            Some(json!({"subjects": [{"id": 999}], "reason": "held"})),
            202,
        )
        .await;
    let erasure_id = erasure["id"].as_str().expect("erasure id").to_owned();
    wait_for_erasure(app, admin, &format!("{base}/erasures/{erasure_id}")).await;
    let pipeline = json!({
        "name": "rollup",
        "source": {"zone": "silver", "table": "orders"},
        "target": {"zone": "gold", "table": "rollup"},
        "aggregate": {"group_by": ["name"], "measures": [{"name": "orders", "expr": "count(*)"}]},
        "trigger": {"type": "manual"}
    });
    app.expect(
        admin,
        Method::POST,
        &format!("{base}/pipelines"),
        Some(pipeline),
        201,
    )
    .await;
    let run = app
        .expect(
            admin,
            Method::POST,
            &format!("{base}/pipelines/rollup/runs"),
            Some(json!({})),
            202,
        )
        .await;
    let pipeline_run_id = run["run_id"].as_str().expect("run id").to_owned();
    // The run ends before B's rows are taken as the reference.
    wait_for_run(
        app,
        admin,
        &format!("{base}/pipelines/rollup/runs/{pipeline_run_id}"),
    )
    .await;
    Holdings {
        pipeline_run_id,
        erasure_id,
        tenant: tenant.to_owned(),
        token_id: issued["token_id"].as_str().expect("token id").to_owned(),
        run_id,
        worker_id,
        // The recipient of the tenant's own-name share: revoking it on the matrix's own-tenant
        // pass leaves `sales` readable.
        recipient_id,
        recipient_token: tokens[0].clone(),
        own_share_token: tokens[1].clone(),
        bronze_id,
        file_url,
    }
}

/// Waits until the erasure has done all it does without a vacuum window passing.
async fn wait_for_erasure(app: &TestApp, token: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let erasure = app.expect(token, Method::GET, path, None, 200).await;
        if erasure["status"] == "awaiting_vacuum" {
            return;
        }
        assert!(
            erasure["status"] != "failed" && Instant::now() < deadline,
            "the erasure did not settle: {erasure}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_run(app: &TestApp, token: &str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = app.expect(token, Method::GET, path, None, 200).await;
        if run["status"] == "succeeded" {
            return;
        }
        assert!(
            run["status"] != "failed" && Instant::now() < deadline,
            "the maintenance run did not succeed: {run}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Queries the share's bronze table as the recipient: the table id and one signed file URL.
async fn first_file(app: &TestApp, recipient: &str, share: &str) -> (String, String) {
    let path = format!("/delta-sharing/shares/{share}/schemas/bronze/tables/orders/query");
    let query = app.send_as(recipient, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(query.status(), 200);
    let text = query.text().await.expect("ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let url = lines
        .iter()
        .find_map(|l| l["file"]["url"].as_str())
        .unwrap_or_else(|| panic!("the bronze table has a file: {text}"))
        .to_owned();
    let table_id = url::Url::parse(&url)
        .expect("url")
        .path_segments()
        .and_then(|mut s| s.nth(1).map(str::to_owned))
        .expect("table id in the url");
    (table_id, url)
}

/// A GET of `target` exactly as written (dot segments kept), over its own connection; the
/// answer's status.
async fn raw_get(app: &TestApp, target: &str) -> u16 {
    use tokio::io::AsyncWriteExt;
    let addr = app.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("request");
    crate::helpers::raw_status(&mut socket).await
}

/// Each file under `dir` with its bytes: a tenant's storage, compared before and after.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&next) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.insert(path.display().to_string(), bytes);
            }
        }
    }
    found
}

/// The share only `tenant` has, by a name no other tenant uses.
fn own_share(tenant: &str) -> String {
    format!("{}_only", tenant.replace('-', "_"))
}

/// The path of an operation with a tenant's real ids.
fn path_of(path: &str, held: &Holdings) -> String {
    path.replace("{tenant}", &held.tenant)
        .replace("{token_id}", &held.token_id)
        .replace("{zone}", "silver")
        .replace("{name}", "orders")
        .replace("{stream}", "clicks")
        .replace("{share}", &own_share(&held.tenant))
        .replace("{recipient_id}", &held.recipient_id)
        .replace("{run_id}", &held.run_id)
        .replace("{erasure_id}", &held.erasure_id)
        .replace("{pipeline}", "rollup")
        .replace("{pipeline_run_id}", &held.pipeline_run_id)
        .replace("{id}", &held.worker_id)
}

/// Deletes run last, children before parents, so each finds what it deletes.
fn order(method: &str, path: &str) -> u8 {
    if method != "delete" {
        return 0;
    }
    match path {
        p if p.ends_with("{recipient_id}") => 1,
        p if p.ends_with("{share}") => 2,
        p if p.ends_with("{stream}") => 3,
        p if p.ends_with("{name}") => 4,
        p if p.ends_with("{token_id}") => 5,
        _ => 6,
    }
}

fn tenant_of(role: Role) -> String {
    format!("a-{}", role.as_str())
}

async fn populated_matrix(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        |c| {
            // Nothing but the calls under test may change tenant B: no scheduled maintenance,
            // and its finished worker stays listed.
            c.workers.schedule_secs = 0;
            c.workers.keep_finished_secs = 86_400;
            // Erasures delete two seconds after the request (pushes answer within 0.8 s).
            c.ingest.ack_timeout_ms = Some(800);
            c.tables.erasure_drain_secs = Some(2);
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let b = populate(&app, &admin, "tenant-b").await;
    // The grants dimension: tenant B grants every privilege on itself to the names tenant A's
    // tokens carry (their subject `tester`, their group `matrix`). A grant is its tenant's
    // own: A's tokens must still find nothing of B.
    let b_admin = app.token(Role::TenantAdmin, Some("tenant-b")).await;
    for principal in ["user:tester", "group:matrix"] {
        let all = json!({"changes": [{"principal": principal,
            "add": ["USE CATALOG", "USE SCHEMA", "SELECT", "MODIFY"]}]});
        app.expect(
            &b_admin,
            Method::PATCH,
            "/v1/tenants/tenant-b/grants/tenant",
            Some(all),
            200,
        )
        .await;
    }
    // Each role of tenant A gets a populated tenant of its own, so one role's deletes do not
    // change what the next role's calls find.
    let mut a = std::collections::HashMap::new();
    for role in Role::TENANT_ROLES {
        a.insert(role, populate(&app, &admin, &tenant_of(role)).await);
    }
    let url = app.state.config.database_url();
    let rows_before = tenancy::store::testing::tenant_rows(&url, "tenant-b")
        .await
        .expect("B's rows");
    assert!(
        [
            "lake_tables",
            "streams",
            "shares",
            "share_recipients",
            "maintenance_runs",
            "workers",
            "api_tokens",
            "audit_events",
            "pipelines",
            "pipeline_runs",
            "grants"
        ]
        .iter()
        .all(|t| rows_before.get(*t).is_some_and(|rows| !rows.is_empty())),
        "tenant B is populated in every table: {rows_before:#?}"
    );
    let storage = app.data_dir.path().to_path_buf();
    let b_files = |all: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        all.into_iter().filter(|(p, _)| p.contains("tenant-b")).collect()
    };
    let files_before = b_files(files_under(&storage));
    assert!(!files_before.is_empty(), "B's files are under {storage:?}");

    let mut ops = operations(&app).await;
    ops.sort_by_key(|(method, path)| order(method, path));
    let mut failures = BTreeMap::new();
    for role in Role::TENANT_ROLES {
        let own = &a[&role];
        let token = app
            .token_with_groups(
                "tester",
                role,
                Some(&own.tenant),
                &["matrix"],
                chrono::Duration::hours(1),
            )
            .await;
        for (method, path) in &ops {
            let allowed_roles = allowed(method, path)
                .unwrap_or_else(|| panic!("{method} {path} has no entry in the authorization matrix"));
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (query, body) = request_for(method, path);
            if path.contains("{tenant}") {
                let theirs = format!("{}{query}", path_of(path, &b));
                let response = app.send_as(&token, verb.clone(), &theirs, body.clone()).await;
                let status = response.status().as_u16();
                if status != 404 {
                    let text = response.text().await.unwrap_or_default();
                    failures.insert(
                        format!("{role} {method} {theirs} (tenant B)"),
                        (status, 404, text),
                    );
                }
            }
            let mine = format!("{}{query}", path_of(path, own));
            let expected = if allowed_roles.contains(&role) {
                success(method, path)
            } else {
                403
            };
            let response = app.send_as(&token, verb.clone(), &mine, body.clone()).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            if status != expected {
                failures.insert(
                    format!("{role} {method} {mine} (own tenant)"),
                    (status, expected, text),
                );
            } else if expected == 202 && path.ends_with("/maintenance") {
                // The run must end before the table can be deleted further down.
                let run: Value = serde_json::from_str(&text).expect("run json");
                let run_id = run["run_id"].as_str().expect("run id");
                let run_path = format!(
                    "/v1/tenants/{}/tables/silver/orders/maintenance/{run_id}",
                    own.tenant
                );
                wait_for_run(&app, &token, &run_path).await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "unexpected answers (got, expected, body): {failures:#?}"
    );

    // The Delta Sharing protocol: a recipient of tenant A names B's share, whose name no other
    // tenant uses, on every protocol operation of the spec. A's viewer tenant is used: its
    // viewer could delete none of its shares above.
    let a_held = &a[&Role::Viewer];
    let spec: Value = app.get("/openapi.json").await.json().await.expect("spec");
    let mut protocol = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        if path.starts_with("/delta-sharing/") {
            for method in item.as_object().expect("item").keys() {
                protocol.push((method.clone(), path.clone()));
            }
        }
    }
    assert!(protocol.len() >= 10, "{protocol:?}");
    for (method, path) in &protocol {
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        for (share, expected) in [(own_share("tenant-b"), 404), (own_share("a-viewer"), 200)] {
            // The share list names no share: it lists the recipient's own (checked below).
            if !path.contains("{share}") && expected == 404 {
                continue;
            }
            let url = path
                .replace("{share}", &share)
                .replace("{schema}", "bronze")
                .replace("{table}", "orders");
            let body = (verb == Method::POST).then(|| json!({}));
            let response = app
                .send_as(&a_held.own_share_token, verb.clone(), &url, body)
                .await;
            let status = response.status().as_u16();
            // The change feed is not offered: A's own share answers 400, B's still 404.
            let expected = if path.ends_with("/changes") && expected == 200 {
                400
            } else {
                expected
            };
            if status != expected {
                failures.insert(
                    format!("recipient of A {method} {url}"),
                    (status, expected, response.text().await.unwrap_or_default()),
                );
            }
        }
    }
    let listed: Value = app
        .get_as(&a_held.recipient_token, "/delta-sharing/shares")
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["sales"], "A's recipient lists its own share only");
    // Both tenants named a share `sales`: for A's recipient it is A's own, whatever it asks.
    let (a_table, a_url) = first_file(&app, &a_held.recipient_token, "sales").await;
    assert_ne!(a_table, b.bronze_id);
    let table_ids = |token: String| {
        let app = &app;
        async move {
            let listed: Value = app
                .get_as(&token, "/delta-sharing/shares/sales/all-tables")
                .await
                .json()
                .await
                .expect("json");
            listed["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|t| t["id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        }
    };
    let a_ids = table_ids(a_held.recipient_token.clone()).await;
    let b_ids = table_ids(b.recipient_token.clone()).await;
    assert_eq!((a_ids.len(), b_ids.len()), (3, 3));
    assert!(a_ids.iter().all(|id| !b_ids.contains(id)), "{a_ids:?} {b_ids:?}");
    let metadata_id = |token: String| {
        let app = &app;
        async move {
            let text = app
                .get_as(
                    &token,
                    "/delta-sharing/shares/sales/schemas/bronze/tables/orders/metadata",
                )
                .await
                .text()
                .await
                .expect("ndjson");
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|l| l["metaData"]["id"].as_str().map(str::to_owned))
                .expect("a metaData line")
        }
    };
    assert_ne!(
        metadata_id(a_held.recipient_token.clone()).await,
        metadata_id(b.recipient_token.clone()).await,
        "A's recipient reads A's table's metadata under the shared name"
    );

    // Signed file URLs: A's own URL serves A's file; bent towards B's table, file or recipient
    // it is refused; B's own URL still serves B's file (the control).
    let fetch = |url: String| {
        let client = app.client.clone();
        async move { client.get(url).send().await.expect("sent").status().as_u16() }
    };
    assert_eq!(fetch(a_url.clone()).await, 200);
    assert_eq!(fetch(b.file_url.clone()).await, 200);
    let a_parsed = url::Url::parse(&a_url).expect("url");
    let b_parsed = url::Url::parse(&b.file_url).expect("url");
    let query_of = |u: &url::Url| u.query().unwrap_or_default().to_owned();
    let bent = [
        // A's signature, B's table id and file path.
        format!("{}{}?{}", app.base, b_parsed.path(), query_of(&a_parsed)),
        // A's table id and signature, B's file path.
        format!(
            "{}{}?{}",
            app.base,
            b_parsed.path().replacen(&b.bronze_id, &a_table, 1),
            query_of(&a_parsed)
        ),
        // B's path and signature, but naming A's recipient.
        b.file_url.replace(
            &format!(
                "r={}",
                b_parsed.query_pairs().find(|(k, _)| k == "r").expect("r").1
            ),
            &format!(
                "r={}",
                a_parsed.query_pairs().find(|(k, _)| k == "r").expect("r").1
            ),
        ),
    ];
    for url in bent {
        let status = fetch(url.clone()).await;
        // The signature is checked first: a bent URL is refused before anything is looked up,
        // so its answer says nothing of what exists.
        if status != 403 {
            failures.insert(format!("bent file url {url}"), (status, 403, String::new()));
        }
    }
    // A's URL walking out of A's table into B's with dot segments, sent over a raw connection
    // (an HTTP client library would remove them before sending).
    let climbing = format!(
        "/files/{a_table}/%2e%2e/{}{}?{}",
        b.bronze_id,
        &b_parsed.path()[format!("/files/{}", b.bronze_id).len()..],
        query_of(&a_parsed)
    );
    let status = raw_get(&app, &climbing).await;
    if status != 403 {
        failures.insert(
            format!("climbing file url {climbing}"),
            (status, 403, String::new()),
        );
    }
    assert!(
        failures.is_empty(),
        "unexpected answers (got, expected, body): {failures:#?}"
    );

    let rows_after = tenancy::store::testing::tenant_rows(&url, "tenant-b")
        .await
        .expect("B's rows");
    for (table, before) in &rows_before {
        let after = rows_after.get(table).cloned().unwrap_or_default();
        let gone: Vec<&String> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
        assert!(
            gone.is_empty() && new.is_empty(),
            "tenant B's {table} rows changed: before {gone:#?}, after {new:#?}"
        );
    }
    assert_eq!(rows_before.len(), rows_after.len());
    assert!(
        b_files(files_under(&storage)) == files_before,
        "tenant B's files changed"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populated_tenant_b_is_unreachable_and_unchanged_on_sqlite() {
    populated_matrix(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn populated_tenant_b_is_unreachable_and_unchanged_on_postgres() {
    populated_matrix(Backend::Postgres).await;
}
