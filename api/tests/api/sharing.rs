//! Delta Sharing, judged by the Python `delta-sharing` client from PyPI (a client nobody here
//! wrote) on profiles the API issues: exact rows, time travel, compaction, partitions, what a
//! profile can see, revocation and expiry, the signed file URLs, and the share rules.

use std::sync::Arc;

use deltalake::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::share::{FileGrant, RecipientName, UrlSigner, token_hash};
use tenancy::store::{Backend, RecipientRecord};

use crate::common::python_outcome;
use crate::helpers::{TestApp, fresh_prefix, moto_endpoint, on_moto, problem};
use crate::tables::{append, run_maintenance};

/// A known URL-signing secret, so the tests can sign URLs the server must still refuse.
const SECRET: &str = "test-url-signing-secret-0123456789abcdef";

/// Loads `argv[1]` (`profile#share.schema.table`) with `delta_sharing.load_as_pandas` and
/// prints the rows sorted, as `[id, country, amount]`.
const LOAD: &str = r#"
import sys, json
import delta_sharing
kwargs = json.loads(sys.argv[2])
df = delta_sharing.load_as_pandas(sys.argv[1], **kwargs)
rows = sorted([[int(r["id"]), r["country"], float(r["amount"])] for r in df.to_dict("records")])
print(json.dumps(rows))
"#;

/// Lists every table the profile `argv[1]` can see, as `share.schema.table`.
const LIST: &str = r#"
import sys, json
import delta_sharing
client = delta_sharing.SharingClient(sys.argv[1])
shares = [s.name for s in client.list_shares()]
tables = sorted(f"{t.share}.{t.schema}.{t.name}" for t in client.list_all_tables())
print(json.dumps({"shares": shares, "tables": tables}))
"#;

fn rows(ids: std::ops::Range<i64>) -> Vec<(i64, String, f64)> {
    ids.map(|i| (i, ["DE", "FR", "NL"][(i % 3) as usize].to_owned(), i as f64 * 2.5))
        .collect()
}

fn batch(rows: &[(i64, String, f64)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("country", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1.clone()))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

fn as_json(rows: &[(i64, String, f64)]) -> Value {
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|a| a.0);
    Value::Array(sorted.iter().map(|r| json!([r.0, r.1, r.2])).collect())
}

/// Creates `zone.name` (partitioned by country when asked) and returns its location.
async fn table(
    app: &TestApp,
    token: &str,
    tenant: &str,
    zone: &str,
    name: &str,
    partitioned: bool,
) -> String {
    let mut body = json!({
        "zone": zone, "name": name,
        "columns": [
            {"name": "id", "type": "long", "nullable": false},
            {"name": "country", "type": "string"},
            {"name": "amount", "type": "double"}
        ]
    });
    if partitioned {
        body["partition_by"] = json!(["country"]);
    }
    let created: Value = app
        .expect(
            token,
            Method::POST,
            &format!("/v1/tenants/{tenant}/tables"),
            Some(body),
            201,
        )
        .await;
    created["location"].as_str().expect("location").to_owned()
}

async fn share(app: &TestApp, token: &str, tenant: &str, name: &str, tables: Value) -> Value {
    app.expect(
        token,
        Method::POST,
        &format!("/v1/tenants/{tenant}/shares"),
        Some(json!({"name": name, "tables": tables})),
        201,
    )
    .await
}

/// Adds a recipient and writes its profile into the app's data dir; returns (id, file, token).
pub(crate) async fn recipient(
    app: &TestApp,
    token: &str,
    tenant: &str,
    share: &str,
    name: &str,
) -> (String, String, String) {
    let created: Value = app
        .expect(
            token,
            Method::POST,
            &format!("/v1/tenants/{tenant}/shares/{share}/recipients"),
            Some(json!({"name": name, "ttl_seconds": 3600})),
            201,
        )
        .await;
    let profile = &created["profile"];
    assert_eq!(profile["shareCredentialsVersion"], 1);
    assert_eq!(profile["endpoint"], format!("{}/delta-sharing", app.base));
    let file = app.data_dir.path().join(format!("{tenant}-{name}.share"));
    std::fs::write(&file, profile.to_string()).expect("write profile");
    (
        created["recipient_id"].as_str().expect("id").to_owned(),
        file.display().to_string(),
        profile["bearerToken"].as_str().expect("token").to_owned(),
    )
}

/// Shares acme's gold orders table as `sales` with the recipient bob and queries it; returns
/// bob's id and profile file, and the query's file lines.
async fn orders_shared_with_bob(app: &TestApp, acme: &str) -> (String, String, Vec<Value>) {
    share(
        app,
        acme,
        "acme",
        "sales",
        json!([{"zone": "gold", "name": "orders"}]),
    )
    .await;
    let (bob, profile, token) = recipient(app, acme, "acme", "sales", "bob").await;
    let (_, files) = query(app, &token, "sales/schemas/gold/tables/orders", json!({})).await;
    (bob, profile, files)
}

/// Runs a Python script off the async workers: the client calls back into this process.
pub(crate) async fn py(script: &'static str, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python_outcome(script, &args)
    })
    .await
    .expect("python task")
}

async fn load(url: String, kwargs: Value) -> Value {
    let (ok, out, err) = py(LOAD, vec![url, kwargs.to_string()]).await;
    assert!(ok, "load_as_pandas failed: {err}");
    serde_json::from_str(out.trim()).expect("rows json")
}

/// The protocol's query answer for a table: (version header, file lines).
async fn query(app: &TestApp, token: &str, path: &str, body: Value) -> (i64, Vec<Value>) {
    let response = app
        .send_as(
            token,
            Method::POST,
            &format!("/delta-sharing/shares/{path}/query"),
            Some(body),
        )
        .await;
    let status = response.status();
    let version: Option<i64> = response
        .headers()
        .get("delta-table-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = response.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    let version = version.expect("delta-table-version header");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect();
    assert_eq!(lines[0], json!({"protocol": {"minReaderVersion": 1}}));
    assert!(lines[1]["metaData"]["schemaString"].is_string(), "{}", lines[1]);
    (version, lines[2..].iter().map(|l| l["file"].clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delta_sharing_client_reads_exactly_what_was_written_and_nothing_else() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "bravo").await;
    let acme = app.token(Role::TenantAdmin, Some("acme")).await;
    let bravo = app.token(Role::TenantAdmin, Some("bravo")).await;
    let orders = table(&app, &acme, "acme", "gold", "orders", true).await;
    let events = table(&app, &acme, "acme", "silver", "events", false).await;
    table(&app, &acme, "acme", "gold", "secret", false).await;
    let bravo_orders = table(&app, &bravo, "bravo", "gold", "orders", true).await;

    let first = rows(0..300);
    let second = rows(300..700);
    let v1 = append(&app, &orders, batch(&first)).await;
    append(&app, &orders, batch(&second)).await;
    append(&app, &events, batch(&rows(0..50))).await;
    append(&app, &bravo_orders, batch(&rows(5000..5010))).await;
    let all: Vec<_> = first.iter().chain(second.iter()).cloned().collect();

    let sales = share(
        &app,
        &acme,
        "acme",
        "sales",
        json!([{"zone": "gold", "name": "orders"}, {"zone": "silver", "name": "events"}]),
    )
    .await;
    share(
        &app,
        &bravo,
        "bravo",
        "sales",
        json!([{"zone": "gold", "name": "orders"}]),
    )
    .await;
    share(
        &app,
        &bravo,
        "bravo",
        "bshare",
        json!([{"zone": "gold", "name": "orders"}]),
    )
    .await;
    let (bob, profile, token) = recipient(&app, &acme, "acme", "sales", "bob").await;

    // Exactly the rows written, from a partitioned table, and at an earlier version.
    assert_eq!(
        load(format!("{profile}#sales.gold.orders"), json!({})).await,
        as_json(&all)
    );
    assert_eq!(
        load(format!("{profile}#sales.gold.orders"), json!({"version": v1})).await,
        as_json(&first)
    );
    assert_eq!(
        load(format!("{profile}#sales.silver.events"), json!({})).await,
        as_json(&rows(0..50))
    );

    // The profile sees its own share only: not the table outside it, not the other tenant's
    // share of the same name, not the other tenant's other share.
    let (ok, out, err) = py(LIST, vec![profile.clone()]).await;
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(listed["shares"], json!(["sales"]));
    let on_wire: Value = app
        .get_as(&token, "/delta-sharing/shares")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        on_wire["items"],
        json!([{"name": "sales", "id": sales["id"]}]),
        "acme's own share, by id"
    );
    assert_eq!(
        listed["tables"],
        json!(["sales.gold.orders", "sales.silver.events"])
    );
    for hidden in ["sales.gold.secret", "bshare.gold.orders"] {
        let (ok, _, err) = py(LOAD, vec![format!("{profile}#{hidden}"), "{}".into()]).await;
        assert!(!ok && err.contains("404"), "{hidden} must not be readable: {err}");
    }
    // Names are case-insensitive; pages follow maxResults (0 included) and pageToken.
    let mixed = app
        .get_as(
            &token,
            "/delta-sharing/shares/Sales/schemas/GOLD/tables/Orders/version",
        )
        .await;
    assert_eq!(mixed.status(), 200);
    let first: Value = app
        .get_as(&token, "/delta-sharing/shares/sales/all-tables?maxResults=1")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1));
    let next = first["nextPageToken"].as_str().expect("a next page");
    let second: Value = app
        .get_as(
            &token,
            &format!("/delta-sharing/shares/sales/all-tables?maxResults=1&pageToken={next}"),
        )
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert!(second.get("nextPageToken").is_none(), "{second}");
    assert_ne!(first["items"][0], second["items"][0]);
    // A page of none would hand back the same page token forever: refused, naming it.
    let none = app
        .get_as(&token, "/delta-sharing/shares/sales/all-tables?maxResults=0")
        .await;
    assert_eq!(none.status(), 400);
    let none: Value = none.json().await.expect("json");
    assert_eq!(none["errorCode"], "INVALID_PARAMETER_VALUE", "{none}");
    assert!(
        none["message"]
            .as_str()
            .unwrap_or_default()
            .contains("maxResults"),
        "{none}"
    );
    // Unsupported features are a 400, not a 5xx that clients would retry for minutes.
    let changes = app
        .get_as(
            &token,
            "/delta-sharing/shares/sales/schemas/gold/tables/orders/changes?startingVersion=0",
        )
        .await;
    assert_eq!(changes.status(), 400);
    let changes: Value = changes.json().await.expect("json");
    assert_eq!(changes["errorCode"], "FEATURE_NOT_SUPPORTED");
    let foreign = app.get_as(&token, "/delta-sharing/shares/bshare/schemas").await;
    assert_eq!(foreign.status(), 404);
    let foreign: Value = foreign.json().await.expect("json");
    assert_eq!(foreign["errorCode"], "RESOURCE_DOES_NOT_EXIST");
    // A query body is an object: an array is refused, not read field by field.
    let array = app
        .send_as(
            &token,
            Method::POST,
            "/delta-sharing/shares/sales/schemas/gold/tables/orders/query",
            Some(json!([null, 3])),
        )
        .await;
    assert_eq!(array.status(), 400);
    let array: Value = array.json().await.expect("json");
    assert_eq!(array["errorCode"], "INVALID_PARAMETER_VALUE", "{array}");

    // Compaction changes the files, not the rows: one file per partition afterwards.
    let (before_version, before) = query(&app, &token, "sales/schemas/gold/tables/orders", json!({})).await;
    assert!(
        before.len() > 3,
        "two appends over three partitions: {}",
        before.len()
    );
    for file in &before {
        assert_eq!(
            file["partitionValues"]["country"].as_str().map(str::len),
            Some(2),
            "{file}"
        );
        assert!(
            file["stats"].as_str().is_some_and(|s| s.contains("numRecords")),
            "{file}"
        );
        assert!(file["size"].as_i64().is_some_and(|s| s > 0));
    }
    let compacted = run_maintenance(
        &app,
        &acme,
        "/v1/tenants/acme/tables/gold/orders",
        json!({"operations": ["compact"]}),
    )
    .await;
    assert_eq!(compacted["status"], "succeeded", "{compacted}");
    let (after_version, after) = query(&app, &token, "sales/schemas/gold/tables/orders", json!({})).await;
    assert!(after_version > before_version);
    assert_eq!(after.len(), 3, "one file per country after compaction");
    assert_eq!(
        load(format!("{profile}#sales.gold.orders"), json!({})).await,
        as_json(&all)
    );

    // Time travel by timestamp: now is the latest version; before the table existed is refused.
    // Milliseconds, as commits are stamped: now cut to whole seconds can fall before a commit
    // made within the same second.
    let (at_now, _) = query(
        &app,
        &token,
        "sales/schemas/gold/tables/orders",
        json!({"timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
    )
    .await;
    assert_eq!(at_now, after_version);
    let too_early = app
        .send_as(
            &token,
            Method::POST,
            "/delta-sharing/shares/sales/schemas/gold/tables/orders/query",
            Some(json!({"timestamp": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(too_early.status(), 400);
    let version = app
        .get_as(
            &token,
            "/delta-sharing/shares/sales/schemas/gold/tables/orders/version",
        )
        .await;
    assert_eq!(version.status(), 200);
    assert_eq!(
        version
            .headers()
            .get("delta-table-version")
            .and_then(|v| v.to_str().ok()),
        Some(after_version.to_string().as_str())
    );

    // An expired recipient (recorded as the API records them) fails, on the wire and in pandas.
    let expired_token = "lpds_expired-recipient-token-for-the-test";
    let now = tenancy::now();
    app.state
        .store
        .insert_recipient(
            &RecipientRecord {
                id: uuid::Uuid::now_v7(),
                share_id: uuid::Uuid::parse_str(sales["id"].as_str().expect("id")).expect("uuid"),
                tenant: tenancy::tenant::TenantId::parse("acme").expect("id"),
                name: RecipientName::parse("carol").expect("name"),
                token_hash: token_hash(expired_token),
                created_by: "test".into(),
                created_at: now - chrono::Duration::hours(2),
                expires_at: now - chrono::Duration::seconds(1),
                revoked_at: None,
            },
            &tenancy::audit::AuditEvent::system(
                "recipient.create",
                "test",
                Some("acme"),
                tenancy::audit::Outcome::Success,
            ),
        )
        .await
        .expect("expired recipient");
    let refused = app.get_as(expired_token, "/delta-sharing/shares").await;
    assert_eq!(refused.status(), 401);
    let refused: Value = refused.json().await.expect("json");
    assert_eq!(refused["errorCode"], "UNAUTHENTICATED");
    assert!(
        refused["message"].as_str().is_some_and(|m| m.contains("expired")),
        "{refused}"
    );

    // Revoking kills the profile at once.
    let revoked = app
        .send_as(
            &acme,
            Method::DELETE,
            &format!("/v1/tenants/acme/shares/sales/recipients/{bob}"),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    let (ok, _, err) = py(LOAD, vec![format!("{profile}#sales.gold.orders"), "{}".into()]).await;
    assert!(!ok && err.contains("401"), "a revoked profile must fail: {err}");
    assert_eq!(app.get_as(&token, "/delta-sharing/shares").await.status(), 401);

    // Every share and recipient issued is in the audit log, and no token is.
    let audit: Value = app
        .get_as(&admin, "/v1/audit?tenant=acme&limit=500")
        .await
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["share.create", "recipient.create", "recipient.revoke"] {
        assert!(actions.contains(&action), "{action} audited: {actions:?}");
    }
    assert!(
        !audit.to_string().contains(&token),
        "no bearer token in the audit log"
    );
    app.shutdown().await;
}

/// The status of a GET of `target` sent exactly as given, without the client's URL cleanup.
async fn raw_get(base: &str, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_file_urls_serve_ranges_and_refuse_tampering_expiry_and_traversal() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.sharing.url_signing_secret = Some(serde_json::from_value(json!(SECRET)).expect("secret")),
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let acme = app.token(Role::TenantAdmin, Some("acme")).await;
    let orders = table(&app, &acme, "acme", "gold", "orders", false).await;
    let secret_table = table(&app, &acme, "acme", "gold", "secret", false).await;
    append(&app, &orders, batch(&rows(0..100))).await;
    append(&app, &secret_table, batch(&rows(0..10))).await;
    let (bob, _, files) = orders_shared_with_bob(&app, &acme).await;
    let file = &files[0];
    let url = url::Url::parse(file["url"].as_str().expect("url")).expect("parse");
    let size = file["size"].as_u64().expect("size");
    let on_disk = {
        let root = url::Url::parse(&orders)
            .expect("root")
            .to_file_path()
            .expect("path");
        let name = url
            .path_segments()
            .expect("segments")
            .next_back()
            .expect("file name")
            .to_owned();
        std::fs::read(root.join(name)).expect("file on disk")
    };
    assert_eq!(on_disk.len() as u64, size);
    let expires: i64 = url
        .query_pairs()
        .find(|(k, _)| k == "expires")
        .and_then(|(_, v)| v.parse().ok())
        .expect("expires");
    let now = chrono::Utc::now().timestamp();
    assert!(
        expires > now && expires <= now + 3600,
        "at most an hour: {expires} vs {now}"
    );

    let whole = app.client.get(url.clone()).send().await.expect("get");
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), on_disk.as_slice());
    let head = app.client.head(url.clone()).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers().get("content-length").and_then(|v| v.to_str().ok()),
        Some(size.to_string().as_str())
    );
    let part = app
        .client
        .get(url.clone())
        .header("range", "bytes=4-99")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers().get("content-range").and_then(|v| v.to_str().ok()),
        Some(format!("bytes 4-99/{size}").as_str())
    );
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &on_disk[4..100]);
    let tail = app
        .client
        .get(url.clone())
        .header("range", "bytes=-8")
        .send()
        .await
        .expect("suffix");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("bytes").as_ref(),
        &on_disk[on_disk.len() - 8..]
    );
    let beyond = app
        .client
        .get(url.clone())
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .expect("beyond");
    assert_eq!(beyond.status(), 416);

    let with_query = |expires: &str, sig: &str| {
        let mut tampered = url.clone();
        tampered.set_query(Some(&format!("expires={expires}&sig={sig}")));
        tampered
    };
    let sig = url
        .query_pairs()
        .find(|(k, _)| k == "sig")
        .map(|(_, v)| v.into_owned())
        .expect("sig");
    let mut flipped = sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for (what, bad) in [
        ("a flipped signature", with_query(&expires.to_string(), &flipped)),
        ("a later expiry", with_query(&(expires + 60).to_string(), &sig)),
        ("no signature", with_query(&expires.to_string(), "")),
    ] {
        let answer = app.client.get(bad).send().await.expect("get");
        assert_eq!(answer.status(), 403, "{what}");
    }
    let mut other_file = url.clone();
    other_file.set_path(&format!("{}x", url.path()));
    assert_eq!(
        app.client.get(other_file).send().await.expect("get").status(),
        403,
        "another path, same signature"
    );

    // Signed with the server's own secret, so only the expiry or the path can be refused.
    let signer = UrlSigner::new(SECRET.as_bytes()).expect("signer");
    let table_id = url
        .path_segments()
        .expect("segments")
        .nth(1)
        .expect("table id")
        .to_owned();
    let name = url
        .path_segments()
        .expect("segments")
        .next_back()
        .expect("name")
        .to_owned();
    // A URL for `path` of the orders table, signed for bob with the server's own secret.
    let signed = |path: &str, encoded: &str, expires: i64| {
        let sig = signer.sign(&FileGrant {
            recipient: &bob,
            table: &table_id,
            path,
            expires,
        });
        format!("/files/{table_id}/{encoded}?r={bob}&expires={expires}&sig={sig}")
    };
    let past = now - 10;
    let expired = format!("{}{}", app.base, signed(&name, &name, past));
    let answer = app.client.get(&expired).send().await.expect("get");
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.expect("body").contains("expired"));
    let secret_file = std::fs::read_dir(
        url::Url::parse(&secret_table)
            .expect("u")
            .to_file_path()
            .expect("p"),
    )
    .expect("dir")
    .filter_map(Result::ok)
    .map(|e| e.file_name().to_string_lossy().into_owned())
    .find(|n| n.ends_with(".parquet"))
    .expect("a parquet file in the other table");
    let future = now + 600;
    // Sent byte for byte: an HTTP client would resolve `..` and `%2e%2e` segments itself.
    for (encoded, decoded) in [
        (
            format!("..%2Fsecret%2F{secret_file}"),
            format!("../secret/{secret_file}"),
        ),
        (
            format!("%2e%2e/secret/{secret_file}"),
            format!("../secret/{secret_file}"),
        ),
        (
            format!("../secret/{secret_file}"),
            format!("../secret/{secret_file}"),
        ),
        (
            format!("%2E%2E%2Fsecret%2F{secret_file}"),
            format!("../secret/{secret_file}"),
        ),
        (
            "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
            "../../../../../../etc/passwd".to_owned(),
        ),
        ("%2Fetc%2Fpasswd".to_owned(), "/etc/passwd".to_owned()),
    ] {
        let target = signed(&decoded, &encoded, future);
        assert_eq!(
            raw_get(&app.base, &target).await,
            404,
            "{encoded} must not leave the table"
        );
    }
    // A symlink inside the table that points outside it is not followed out.
    let root = url::Url::parse(&orders)
        .expect("root")
        .to_file_path()
        .expect("path");
    std::os::unix::fs::symlink("/etc/hostname", root.join("evil.parquet")).expect("symlink");
    let evil = format!("{}{}", app.base, signed("evil.parquet", "evil.parquet", future));
    assert_eq!(app.client.get(&evil).send().await.expect("get").status(), 404);
    // A validly signed file of the table itself is served, which shows the refusals above are
    // about the paths and not the signing.
    let good = format!("{}{}", app.base, signed(&name, &name, future));
    assert_eq!(app.client.get(&good).send().await.expect("get").status(), 200);
    // Another recipient's id under bob's signature is refused.
    let swapped = good.replace(&format!("r={bob}"), "r=00000000-0000-7000-8000-000000000000");
    assert_eq!(app.client.get(&swapped).send().await.expect("get").status(), 403);
    // URLs end with the access they were issued under: revoking bob stops the URL the server
    // handed out, long before its expiry.
    assert_eq!(
        app.client.get(url.clone()).send().await.expect("get").status(),
        200
    );
    let revoked = app
        .send_as(
            &acme,
            Method::DELETE,
            &format!("/v1/tenants/acme/shares/sales/recipients/{bob}"),
            None,
        )
        .await;
    assert_eq!(revoked.status(), 204);
    let answer = app.client.get(url.clone()).send().await.expect("get");
    assert_eq!(answer.status(), 403);
    assert!(
        answer
            .text()
            .await
            .unwrap_or_default()
            .contains("no longer has access")
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_rules_roles_and_bad_input() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "bravo").await;
    let acme = app.token(Role::TenantAdmin, Some("acme")).await;
    table(&app, &acme, "acme", "gold", "orders", false).await;
    table(&app, &acme, "acme", "silver", "events", false).await;
    let both = json!({"name": "mixed", "tables": [{"zone": "gold", "name": "orders"}, {"zone": "silver", "name": "events"}]});

    // A viewer cannot read silver; analysts and engineers read it but manage no shares (the
    // contract's role table: tenant-admins only).
    for (role, why) in [
        (Role::Viewer, "silver"),
        (Role::Analyst, "manage shares"),
        (Role::Engineer, "manage shares"),
    ] {
        let token = app.token(role, Some("acme")).await;
        let refused = app
            .send_as(
                &token,
                Method::POST,
                "/v1/tenants/acme/shares",
                Some(both.clone()),
            )
            .await;
        let body = problem(refused, 403).await;
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(why)),
            "{role}: {body}"
        );
    }
    let created = app
        .send_as(&acme, Method::POST, "/v1/tenants/acme/shares", Some(both.clone()))
        .await;
    assert_eq!(created.status(), 201);
    let again = app
        .send_as(&acme, Method::POST, "/v1/tenants/acme/shares", Some(both.clone()))
        .await;
    problem(again, 409).await;

    for (body, field) in [
        (
            json!({"name": "Bad.Name", "tables": [{"zone": "gold", "name": "orders"}]}),
            "name",
        ),
        (json!({"name": "s", "tables": []}), "tables"),
        (
            json!({"name": "s", "tables": [{"zone": "platinum", "name": "orders"}]}),
            "tables[0].zone",
        ),
        (
            json!({"name": "s", "tables": [{"zone": "gold", "name": "missing"}]}),
            "tables[0]",
        ),
        (
            json!({"name": "s", "tables": [{"zone": "gold", "name": "orders"}, {"zone": "gold", "name": "orders"}]}),
            "tables[1]",
        ),
        (
            json!({"name": "s", "tables": [{"zone": "gold", "name": "orders", "extra": 1}]}),
            "tables[0]",
        ),
    ] {
        let answer = app
            .send_as(&acme, Method::POST, "/v1/tenants/acme/shares", Some(body.clone()))
            .await;
        let problem = problem(answer, 422).await;
        assert!(
            problem["errors"].as_array().is_some_and(|e| e
                .iter()
                .any(|e| e["field"].as_str().is_some_and(|f| f.starts_with(field)))),
            "{body} names {field}: {problem}"
        );
    }
    for (body, field) in [
        (json!({"name": "bob", "ttl_seconds": 10}), "ttl_seconds"),
        (json!({"name": "Bob!", "ttl_seconds": 600}), "name"),
        (json!({"name": "bob", "ttl_seconds": "600"}), "ttl_seconds"),
    ] {
        let answer = app
            .send_as(
                &acme,
                Method::POST,
                "/v1/tenants/acme/shares/mixed/recipients",
                Some(body.clone()),
            )
            .await;
        let problem = problem(answer, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // The other tenant sees nothing of acme's shares.
    let bravo = app.token(Role::TenantAdmin, Some("bravo")).await;
    for (method, path) in [
        (Method::GET, "/v1/tenants/acme/shares"),
        (Method::GET, "/v1/tenants/acme/shares/mixed"),
        (Method::DELETE, "/v1/tenants/acme/shares/mixed"),
        (Method::GET, "/v1/tenants/acme/shares/mixed/recipients"),
    ] {
        let answer = app.send_as(&bravo, method.clone(), path, None).await;
        problem(answer, 404).await;
    }
    let answer = app
        .send_as(
            &bravo,
            Method::POST,
            "/v1/tenants/acme/shares/mixed/recipients",
            Some(json!({"name": "x", "ttl_seconds": 600})),
        )
        .await;
    problem(answer, 404).await;
    // A scientist reads silver and gold but cannot add recipients (manages no shares).
    let scientist = app.token(Role::Scientist, Some("acme")).await;
    let answer = app
        .send_as(
            &scientist,
            Method::POST,
            "/v1/tenants/acme/shares/mixed/recipients",
            Some(json!({"name": "x", "ttl_seconds": 600})),
        )
        .await;
    problem(answer, 403).await;

    // Listing pages by name; recipients show their state, never their token.
    for name in ["a1", "a2", "a3"] {
        app.send_as(
            &acme,
            Method::POST,
            "/v1/tenants/acme/shares",
            Some(json!({"name": name, "tables": [{"zone": "gold", "name": "orders"}]})),
        )
        .await;
    }
    let page: Value = app
        .get_as(&acme, "/v1/tenants/acme/shares?limit=2")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
    let rest: Value = app
        .get_as(&acme, &format!("/v1/tenants/acme/shares?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = page["items"]
        .as_array()
        .into_iter()
        .chain(rest["items"].as_array())
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["a1", "a2", "a3", "mixed"]);
    let (id, _, token) = recipient(&app, &acme, "acme", "mixed", "bob").await;
    let listed: Value = app
        .get_as(&acme, "/v1/tenants/acme/shares/mixed/recipients")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(listed["items"][0]["recipient_id"], id);
    assert_eq!(listed["items"][0]["status"], "active");
    assert!(!listed.to_string().contains(&token));
    let duplicate = app
        .send_as(
            &acme,
            Method::POST,
            "/v1/tenants/acme/shares/mixed/recipients",
            Some(json!({"name": "bob", "ttl_seconds": 600})),
        )
        .await;
    problem(duplicate, 409).await;
    // Deleting the share ends its recipients' access at once.
    assert_eq!(app.get_as(&token, "/delta-sharing/shares").await.status(), 200);
    let deleted = app
        .send_as(&acme, Method::DELETE, "/v1/tenants/acme/shares/mixed", None)
        .await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get_as(&token, "/delta-sharing/shares").await.status(), 401);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delta_sharing_on_s3_serves_presigned_urls() {
    let endpoint = moto_endpoint();
    let prefix = fresh_prefix();
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| on_moto(c, &endpoint, &prefix),
        axum::Router::new(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let acme = app.token(Role::TenantAdmin, Some("acme")).await;
    let orders = table(&app, &acme, "acme", "gold", "orders", true).await;
    let written = rows(0..250);
    append(&app, &orders, batch(&written[..100])).await;
    append(&app, &orders, batch(&written[100..])).await;
    share(
        &app,
        &acme,
        "acme",
        "sales",
        json!([{"zone": "gold", "name": "orders"}]),
    )
    .await;
    let (_, profile, bob) = recipient(&app, &acme, "acme", "sales", "bob").await;
    let (_, files) = query(&app, &bob, "sales/schemas/gold/tables/orders", json!({})).await;
    for file in &files {
        let url = url::Url::parse(file["url"].as_str().expect("url")).expect("url");
        assert!(url.as_str().starts_with(&endpoint), "{url}");
        let expires: u64 = url
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Expires")
            .and_then(|(_, v)| v.parse().ok())
            .expect("a presigned URL");
        assert!((1..=3600).contains(&expires), "{expires}");
    }
    assert_eq!(
        load(format!("{profile}#sales.gold.orders"), json!({})).await,
        as_json(&written)
    );

    // Once acme's storage starts moving, no URL is signed for the bucket it is leaving: the
    // query answers 503 in the protocol's shape with Retry-After (clients retry 5xx), while
    // the metadata, which names no location, is still served.
    let id = tenancy::tenant::TenantId::parse("acme").expect("id");
    let status = |s| app.state.store.set_tenant_status(&id, s, None);
    status(tenancy::tenant::TenantStatus::Migrating)
        .await
        .expect("status");
    let path = "/delta-sharing/shares/sales/schemas/gold/tables/orders";
    let moving = app
        .send_as(&bob, Method::POST, &format!("{path}/query"), Some(json!({})))
        .await;
    assert_eq!(moving.status(), 503);
    assert!(moving.headers().contains_key("retry-after"));
    let body: Value = moving.json().await.expect("json");
    assert_eq!(body["errorCode"], "TEMPORARILY_UNAVAILABLE", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains("moving")),
        "{body}"
    );
    assert_eq!(app.get_as(&bob, &format!("{path}/metadata")).await.status(), 200);
    status(tenancy::tenant::TenantStatus::Ready)
        .await
        .expect("status");
    let (_, again) = query(&app, &bob, "sales/schemas/gold/tables/orders", json!({})).await;
    assert_eq!(again.len(), files.len());
    app.shutdown().await;
}

/// A Delta log can name any file: a writer holding credentials commits an `add` whose absolute
/// path starts with the table's root but climbs out of it, into bravo's table. The query
/// refuses the table with the reason instead of handing out a URL signed for that file, and a
/// compaction the plane runs refuses it too instead of reading bravo's file into acme's table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_naming_a_file_outside_the_table_is_refused_not_signed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    app.ready_tenant(&admin, "bravo").await;
    let acme = app.token(Role::TenantAdmin, Some("acme")).await;
    let bravo = app.token(Role::TenantAdmin, Some("bravo")).await;
    let orders = table(&app, &acme, "acme", "gold", "orders", false).await;
    let secret = table(&app, &bravo, "bravo", "gold", "secret", false).await;
    append(&app, &secret, batch(&rows(0..10))).await;
    share(
        &app,
        &acme,
        "acme",
        "sales",
        json!([{"zone": "gold", "name": "orders"}]),
    )
    .await;
    let (_, _, token) = recipient(&app, &acme, "acme", "sales", "bob").await;
    let path = "sales/schemas/gold/tables/orders";
    assert!(
        query(&app, &token, path, json!({})).await.1.is_empty(),
        "an empty table"
    );

    // Version 1: a real file of acme's, so a compaction has two files to merge.
    append(&app, &orders, batch(&rows(100..103))).await;
    // Version 2, written straight into the log: an absolute path from acme's root to bravo's.
    let root = url::Url::parse(&orders).expect("location");
    let dir = root.to_file_path().expect("local table");
    let secret_dir = url::Url::parse(&secret)
        .expect("location")
        .to_file_path()
        .expect("local");
    let victim = std::fs::read_dir(&secret_dir)
        .expect("bravo's table")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.ends_with(".parquet"))
        .expect("a data file of bravo");
    // From acme/orders/ two levels up is the zone folder both tables share.
    let climbing = format!("{orders}../../bravo/secret/{victim}");
    assert!(climbing.starts_with(&orders));
    assert!(secret_dir.join(&victim).is_file());
    let add = json!({"add": {"path": climbing, "partitionValues": {}, "size": 1000,
        "modificationTime": 1_700_000_000_000_i64, "dataChange": true}});
    let commit = dir.join("_delta_log/00000000000000000002.json");
    std::fs::write(&commit, format!("{add}\n")).expect("crafted commit");

    let refused = app
        .send_as(
            &token,
            Method::POST,
            &format!("/delta-sharing/shares/{path}/query"),
            Some(json!({})),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.expect("protocol error");
    assert_eq!(body["errorCode"], "INVALID_PARAMETER_VALUE", "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains("outside its root"), "{body}");
    assert!(!body.to_string().contains("sig="), "no signed URL leaves: {body}");

    // The plane's compaction reads nothing of it: the run fails, and acme's table gets no
    // version holding bravo's rows. Acme's tenant-admin is told the failure's class; the
    // reason, which names paths of the plane's storage, is for platform-admins.
    let compacted = run_maintenance(
        &app,
        &acme,
        "/v1/tenants/acme/tables/gold/orders",
        json!({"operations": ["compact"]}),
    )
    .await;
    assert_eq!(compacted["status"], "failed", "{compacted}");
    let shown = compacted["error"].as_str().unwrap_or_default();
    assert!(
        shown.starts_with("maintenance failed with conflict"),
        "{compacted}"
    );
    assert!(
        !shown.contains("outside its root") && !shown.contains("bravo") && !shown.contains("file:"),
        "{compacted}"
    );
    let run_path = format!(
        "/v1/tenants/acme/tables/gold/orders/maintenance/{}",
        compacted["run_id"].as_str().expect("run id")
    );
    let recorded = app.expect(&admin, Method::GET, &run_path, None, 200).await;
    assert!(
        recorded["error"]
            .as_str()
            .unwrap_or_default()
            .contains("outside its root"),
        "{recorded}"
    );
    let log: Vec<_> = std::fs::read_dir(dir.join("_delta_log"))
        .expect("log")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(log.len(), 3, "no commit after the crafted one: {log:?}");
    app.shutdown().await;
}
