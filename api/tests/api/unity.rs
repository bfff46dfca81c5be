//! The Unity Catalog API (`/api/2.1/unity-catalog`): names, columns from the live Delta
//! schema, visibility per tenant and role, pagination, credentials and errors in Unity
//! Catalog's shape; and real clients against it: polars' `pl.Catalog` and the Unity Catalog
//! OSS Python client's models (`unitycatalog-client`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;

use crate::helpers::{TestApp, python};

const UC: &str = "/api/2.1/unity-catalog";

/// Tenants `acme` and `beta`, each with a bronze `raw` table and a gold `orders` table; acme's
/// gold table holds 30 rows. Returns the platform-admin token.
async fn two_tenants(app: &TestApp) -> String {
    let admin = app.token(Role::PlatformAdmin, None).await;
    for tenant in ["acme", "beta"] {
        app.ready_tenant(&admin, tenant).await;
        for (zone, name) in [("bronze", "raw"), ("gold", "orders")] {
            let table = json!({"zone": zone, "name": name, "description": format!("{tenant} {name}"),
                "partition_by": ["day"],
                "columns": [{"name": "id", "type": "long", "nullable": false},
                    {"name": "amount", "type": "decimal(10,2)"}, {"name": "day", "type": "date"}]});
            app.expect(
                &admin,
                Method::POST,
                &format!("/v1/tenants/{tenant}/tables"),
                Some(table),
                201,
            )
            .await;
        }
    }
    // Rows in acme's gold table, appended as an engineer's job would (streams fill bronze).
    let gold = ok(app, &admin, "/v1/tenants/acme/tables/gold/orders").await;
    python(
        r#"
import sys, datetime, decimal, pyarrow as pa
from deltalake import write_deltalake
rows = pa.table({"id": pa.array(range(30), pa.int64()),
                 "amount": pa.array([decimal.Decimal("1.50")] * 30, pa.decimal128(10, 2)),
                 "day": pa.array([datetime.date(2026, 12, 1)] * 30, pa.date32())})
write_deltalake(sys.argv[1].removeprefix("file://"), rows, mode="append")
"#,
        &[gold["location"].as_str().expect("location")],
    );
    admin
}

/// A GET that must answer 200, as JSON.
async fn ok(app: &TestApp, token: &str, path: &str) -> Value {
    app.expect(token, Method::GET, path, None, 200).await
}

/// The `table_id` of a table, by full name.
async fn table_id(app: &TestApp, token: &str, full_name: &str) -> String {
    ok(app, token, &format!("{UC}/tables/{full_name}")).await["table_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// A Unity Catalog error: the status and the body's code, with a message.
async fn uc_error(response: reqwest::Response, status: u16, code: &str) -> String {
    let got = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!((got, body["error_code"].as_str()), (status, Some(code)), "{body}");
    assert!(kind.starts_with("application/json"), "{kind}");
    assert_eq!(body["details"][0]["reason"], code, "{body}");
    body["message"].as_str().expect("a message").to_owned()
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogs_schemas_and_tables_are_found_by_name_within_what_the_caller_may_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = two_tenants(&app).await;
    let analyst = app.token(Role::Analyst, Some("acme")).await;

    // Catalogs: a platform-admin sees every tenant, a tenant's caller its own.
    let all = ok(&app, &admin, &format!("{UC}/catalogs")).await;
    assert_eq!(names(&all, "catalogs"), ["acme", "beta"]);
    assert!(all.get("next_page_token").is_none(), "{all}");
    let own = ok(&app, &analyst, &format!("{UC}/catalogs")).await;
    assert_eq!(names(&own, "catalogs"), ["acme"]);
    let acme = &own["catalogs"][0];
    assert!(
        acme["created_at"].as_i64().expect("epoch ms") > 1_700_000_000_000,
        "{acme}"
    );
    assert!(acme["updated_at"].is_i64(), "{acme}");

    // Schemas: the zones the analyst's role may read (silver and gold, not bronze).
    let schemas = ok(&app, &analyst, &format!("{UC}/schemas?catalog_name=acme")).await;
    assert_eq!(names(&schemas, "schemas"), ["gold", "silver"]);
    assert_eq!(schemas["schemas"][0]["full_name"], "acme.gold");
    let gold = ok(&app, &analyst, &format!("{UC}/schemas/acme.gold")).await;
    assert_eq!(gold["catalog_name"], "acme");

    // Tables, with columns read from the Delta log.
    let tables = ok(
        &app,
        &analyst,
        &format!("{UC}/tables?catalog_name=acme&schema_name=gold"),
    )
    .await;
    assert_eq!(names(&tables, "tables"), ["orders"]);
    // polars adds `full_name` again as a query parameter: ignored.
    let table = ok(
        &app,
        &analyst,
        &format!("{UC}/tables/acme.gold.orders?full_name=acme.gold.orders"),
    )
    .await;
    let described = ok(&app, &admin, "/v1/tenants/acme/tables/gold/orders").await;
    assert_eq!(table["storage_location"], described["location"], "{table}");
    assert!(
        table["storage_location"]
            .as_str()
            .expect("location")
            .starts_with("file:///")
    );
    assert_eq!(
        (
            &table["name"],
            &table["catalog_name"],
            &table["schema_name"],
            &table["full_name"]
        ),
        (
            &json!("orders"),
            &json!("acme"),
            &json!("gold"),
            &json!("acme.gold.orders")
        )
    );
    assert_eq!(
        (&table["table_type"], &table["data_source_format"]),
        (&json!("EXTERNAL"), &json!("DELTA"))
    );
    assert_eq!(table["comment"], "acme orders");
    assert!(table["properties"].is_object(), "{table}");
    assert_eq!(tables["tables"][0]["table_id"], table["table_id"]);
    let columns = table["columns"].as_array().expect("columns");
    let texts: Vec<(&str, &str, &str, i64, i64)> = columns
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name"),
                c["type_text"].as_str().expect("text"),
                c["type_name"].as_str().expect("type name"),
                c["type_precision"].as_i64().expect("precision"),
                c["type_scale"].as_i64().expect("scale"),
            )
        })
        .collect();
    // Spark's catalog strings and Unity Catalog's type names.
    assert_eq!(
        texts,
        [
            ("id", "bigint", "LONG", 0, 0),
            ("amount", "decimal(10,2)", "DECIMAL", 10, 2),
            ("day", "date", "DATE", 0, 0)
        ]
    );
    let type_json: Value =
        serde_json::from_str(columns[0]["type_json"].as_str().expect("a string")).expect("json");
    assert_eq!(
        type_json,
        json!({"name": "id", "type": "long", "nullable": false, "metadata": {}})
    );
    assert_eq!(
        columns
            .iter()
            .map(|c| c["position"].as_i64().expect("pos"))
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(columns[2]["partition_index"], 0);
    assert!(columns[0].get("partition_index").is_none_or(Value::is_null));

    // Not readable by the analyst's role: forbidden in its own tenant.
    let denied = app
        .get_as(&analyst, &format!("{UC}/tables/acme.bronze.raw"))
        .await;
    uc_error(denied, 403, "PERMISSION_DENIED").await;
    let denied = app
        .get_as(
            &analyst,
            &format!("{UC}/tables?catalog_name=acme&schema_name=bronze"),
        )
        .await;
    uc_error(denied, 403, "PERMISSION_DENIED").await;
    // Another tenant's catalog does not exist, whatever is asked of it; it holds tables.
    let beta_id = table_id(&app, &admin, "beta.gold.orders").await;
    // ... and answers exactly as a tenant that does not exist.
    for path in [
        format!("{UC}/catalogs/beta"),
        format!("{UC}/schemas?catalog_name=beta"),
        format!("{UC}/schemas/beta.gold"),
        format!("{UC}/tables?catalog_name=beta&schema_name=gold"),
        format!("{UC}/tables/beta.gold.orders"),
    ] {
        let hidden = uc_error(app.get_as(&analyst, &path).await, 404, "NOT_FOUND").await;
        let absent_path = path.replace("beta", "nosuch");
        let absent = uc_error(app.get_as(&analyst, &absent_path).await, 404, "NOT_FOUND").await;
        assert_eq!(hidden, absent, "{path}");
    }
    // The probes are in the audit log as refusals.
    let audit = ok(&app, &admin, "/v1/audit?action=uc.table.read").await;
    assert!(
        audit["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["outcome"] == "denied"),
        "{audit}"
    );
    let creds = format!("{UC}/temporary-table-credentials");
    let hidden = app
        .send_as(
            &analyst,
            Method::POST,
            &creds,
            Some(json!({"table_id": beta_id, "operation": "READ"})),
        )
        .await;
    let hidden = uc_error(hidden, 404, "NOT_FOUND").await;
    let unknown = json!({"table_id": uuid::Uuid::now_v7().to_string(), "operation": "READ"});
    let unknown = uc_error(
        app.send_as(&analyst, Method::POST, &creds, Some(unknown)).await,
        404,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(
        hidden, unknown,
        "another tenant's table_id answers as an unknown one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_by_token_and_the_last_page_has_none() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let wanted: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    for name in &wanted {
        let table = json!({"zone": "silver", "name": name, "columns": [{"name": "id", "type": "long"}]});
        app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
            .await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{UC}/tables?catalog_name=acme&schema_name=silver&max_results=2");
        if let Some(t) = &token {
            path.push_str(&format!("&page_token={t}"));
        }
        let page = ok(&app, &admin, &path).await;
        seen.extend(names(&page, "tables"));
        pages += 1;
        match page.get("next_page_token") {
            Some(Value::String(t)) => {
                assert!(!t.is_empty(), "an empty token makes clients loop");
                token = Some(t.clone());
            }
            None => break,
            other => panic!("next_page_token must be a string or absent: {other:?}"),
        }
        assert!(pages < 10, "pages do not end");
    }
    assert_eq!(seen, wanted);
    assert_eq!(pages, 3);
    // Catalogs page the same way.
    for tenant in ["beta", "gamma"] {
        app.ready_tenant(&admin, tenant).await;
    }
    let first = ok(&app, &admin, &format!("{UC}/catalogs?max_results=2")).await;
    assert_eq!(names(&first, "catalogs"), ["acme", "beta"]);
    let token = first["next_page_token"].as_str().expect("a token");
    let rest = ok(
        &app,
        &admin,
        &format!("{UC}/catalogs?max_results=2&page_token={token}"),
    )
    .await;
    assert_eq!(names(&rest, "catalogs"), ["gamma"]);
    assert!(rest.get("next_page_token").is_none(), "{rest}");
    // Without max_results: every table in one page.
    let all = ok(
        &app,
        &admin,
        &format!("{UC}/tables?catalog_name=acme&schema_name=silver"),
    )
    .await;
    assert_eq!(names(&all, "tables"), wanted);
    let lean = ok(
        &app,
        &admin,
        &format!("{UC}/tables?catalog_name=acme&schema_name=silver&omit_columns=true"),
    )
    .await;
    assert_eq!(lean["tables"][0]["columns"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_writes_get_unity_catalog_errors_and_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = two_tenants(&app).await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let analyst = app.token(Role::Analyst, Some("acme")).await;

    let anonymous = app.get(&format!("{UC}/catalogs")).await;
    uc_error(anonymous, 401, "UNAUTHENTICATED").await;
    for (path, field) in [
        (format!("{UC}/tables/acme.gold"), "full_name"),
        (format!("{UC}/schemas/acme"), "full_name"),
        (format!("{UC}/catalogs?max_results=-1"), "max_results"),
        (format!("{UC}/catalogs?page_token=nonsense"), "page_token"),
    ] {
        let refused = app.get_as(&engineer, &path).await;
        let message = uc_error(refused, 400, "INVALID_ARGUMENT").await;
        assert!(message.contains(field), "{path}: {message}");
    }
    let missing = app
        .get_as(&engineer, &format!("{UC}/tables/acme.gold.nope"))
        .await;
    uc_error(missing, 404, "NOT_FOUND").await;
    let unknown_zone = app
        .get_as(&engineer, &format!("{UC}/schemas/acme.platinum"))
        .await;
    uc_error(unknown_zone, 404, "NOT_FOUND").await;
    // A path the API does not have, under its prefix: Unity Catalog's shape still; elsewhere a
    // problem document.
    for path in [
        format!("{UC}/functions"),
        format!("{UC}/volumes/acme.gold.v"),
        UC.to_owned(),
    ] {
        let unknown = app.get_as(&engineer, &path).await;
        let message = uc_error(unknown, 404, "NOT_FOUND").await;
        assert!(message.contains("no route"), "{path}: {message}");
    }
    let elsewhere = app.get_as(&engineer, "/v2/tenants").await;
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(
        elsewhere.headers()[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    // A base URL ending in `/` doubles the slash: the same answer as the plain path.
    let doubled = app
        .get_as(&engineer, &format!("/{UC}/tables/acme.gold.orders"))
        .await;
    let doubled = crate::common::expect_status(doubled, "doubled slash", 200).await;
    assert_eq!(doubled["full_name"], "acme.gold.orders");

    // Creating and deleting: refused with a pointer to /v1, and nothing changes.
    for (method, path) in [
        (Method::POST, format!("{UC}/catalogs")),
        (Method::DELETE, format!("{UC}/catalogs/acme")),
        (Method::POST, format!("{UC}/schemas")),
        (Method::DELETE, format!("{UC}/schemas/acme.gold")),
        (Method::POST, format!("{UC}/tables")),
        (Method::DELETE, format!("{UC}/tables/acme.gold.orders")),
    ] {
        let refused = app
            .send_as(
                &admin,
                method.clone(),
                &path,
                Some(json!({"name": "x", "catalog_name": "acme"})),
            )
            .await;
        let message = uc_error(refused, 405, "UNIMPLEMENTED").await;
        assert!(message.contains("/v1"), "{method} {path}: {message}");
    }
    ok(&app, &admin, "/v1/tenants/acme").await;
    ok(&app, &admin, "/v1/tenants/acme/tables/gold/orders").await;

    // Credentials: the fields are checked and named.
    let id = table_id(&app, &engineer, "acme.gold.orders").await;
    let creds = format!("{UC}/temporary-table-credentials");
    for (body, field) in [
        (json!({"operation": "READ"}), "table_id"),
        (json!({"table_id": "not-a-uuid", "operation": "READ"}), "table_id"),
        (json!({"table_id": id, "operation": "WRITE"}), "operation"),
        (json!({"table_id": id}), "operation"),
    ] {
        let refused = app
            .send_as(&engineer, Method::POST, &creds, Some(body.clone()))
            .await;
        let message = uc_error(refused, 400, "INVALID_ARGUMENT").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    // READ_WRITE needs a role that writes the zone.
    let refused = app
        .send_as(
            &analyst,
            Method::POST,
            &creds,
            Some(json!({"table_id": id, "operation": "READ_WRITE"})),
        )
        .await;
    uc_error(refused, 403, "PERMISSION_DENIED").await;
    // On local storage: the location and an expiry in the future, no cloud credentials; the
    // older clients' form (query parameters, empty body) is accepted too.
    let read = app
        .send_as(
            &analyst,
            Method::POST,
            &creds,
            Some(json!({"table_id": id, "operation": "READ"})),
        )
        .await;
    let read: Value = crate::common::expect_status(read, "credentials", 200).await;
    let table = ok(&app, &analyst, &format!("{UC}/tables/acme.gold.orders")).await;
    assert_eq!(read["url"], table["storage_location"]);
    assert!(read.get("aws_temp_credentials").is_none(), "{read}");
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!(
        read["expiration_time"].as_i64().expect("ms") > now_ms + 600_000,
        "{read}"
    );
    let by_query = app
        .client
        .post(app.url(&format!("{creds}?table_id={id}&operation=READ_WRITE")))
        .bearer_auth(&engineer)
        .send()
        .await
        .expect("sent");
    crate::common::expect_status(by_query, "credentials by query", 200).await;
    // Each issue is audited.
    let audit = ok(&app, &admin, "/v1/audit?tenant=acme&action=credentials.issue").await;
    assert!(audit["items"].as_array().expect("items").len() >= 2, "{audit}");
}

/// A schema change by an outside writer shows within the configured staleness; the plane's
/// own change (a PATCH adding a column) shows at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_show_within_the_staleness_bound() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.tables.metadata_staleness_ms = 1_000,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    let table = json!({"zone": "gold", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    let created = app
        .expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
        .await;
    let location = created["location"].as_str().expect("location").to_owned();
    let path = format!("{UC}/tables/acme.gold.orders");
    let column_names = |t: &Value| -> BTreeSet<String> {
        t["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(
        column_names(&ok(&app, &admin, &path).await),
        BTreeSet::from(["id".to_owned()])
    );

    let patch = json!({"add_columns": [{"name": "note", "type": "string"}]});
    app.expect(
        &admin,
        Method::PATCH,
        "/v1/tenants/acme/tables/gold/orders",
        Some(patch),
        200,
    )
    .await;
    let now = ok(&app, &admin, &path).await;
    assert!(
        column_names(&now).contains("note"),
        "the plane's own change shows at once: {now}"
    );

    python(
        r#"
import sys, pyarrow as pa
from deltalake import write_deltalake
rows = pa.table({"id": pa.array([1], pa.int64()), "note": ["x"],
                 "tags": pa.array([["a"]], pa.list_(pa.string()))})
write_deltalake(sys.argv[1].removeprefix("file://"), rows, mode="append", schema_mode="merge")
"#,
        &[&location],
    );
    let written = Instant::now();
    let seen = loop {
        let t = ok(&app, &admin, &path).await;
        if column_names(&t).contains("tags") {
            break written.elapsed();
        }
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "the outside change never showed: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The bound is the staleness (1 s) plus the polls' own time.
    println!("an outside schema change showed after {seen:?}");
    assert!(seen < Duration::from_millis(2_500), "shown after {seen:?}");
    // Within the staleness, lookups are answered from memory: no snapshot is read.
    let cache = app.state.catalog.metadata_cache();
    let (_, loads) = cache.counts();
    for _ in 0..5 {
        ok(&app, &admin, &path).await;
    }
    assert_eq!(
        cache.counts().1,
        loads,
        "lookups within the staleness read no snapshot"
    );
    let tags = ok(&app, &admin, &path).await["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "tags")
        .cloned()
        .expect("tags");
    assert_eq!(
        (&tags["type_text"], &tags["type_name"]),
        (&json!("array<string>"), &json!("ARRAY"))
    );
}

/// Real clients: polars' `pl.Catalog` lists and scans by name; the Unity Catalog OSS Python
/// client's models parse every answer.
const POLARS: &str = r#"
import sys, json, polars as pl
url, token = sys.argv[1], sys.argv[2]
cat = pl.Catalog(url, bearer_token=token, require_https=False)
# A workspace URL ending in `/`, as users copy it: polars joins it to `/api/...` as is.
slashed = pl.Catalog(url + "/", bearer_token=token, require_https=False)
out = {
    "slashed": slashed.scan_table("acme", "gold", "orders").select(pl.len()).collect().item(),
    "catalogs": [c.name for c in cat.list_catalogs()],
    "schemas": sorted(n.name for n in cat.list_namespaces("acme")),
    "tables": [t.name for t in cat.list_tables("acme", "gold")],
    "rows": cat.scan_table("acme", "gold", "orders").select(pl.len()).collect().item(),
    "ids": sorted(cat.scan_table("acme", "gold", "orders").select("id").collect()["id"].to_list()),
}
info = cat.get_table_info("acme", "gold", "orders")
out["columns"] = [c.name for c in info.columns]
for name, args in [("bronze", ("acme", "bronze", "raw")), ("other tenant", ("beta", "gold", "orders"))]:
    try:
        cat.scan_table(*args).collect()
        out[name] = "read"
    except Exception as e:
        out[name] = str(e)[:300]
print(json.dumps(out))
"#;

const UC_MODELS: &str = r#"
import sys, json, urllib.request
from unitycatalog.client.models import (ListCatalogsResponse, CatalogInfo, ListSchemasResponse,
    SchemaInfo, ListTablesResponse, TableInfo, TemporaryCredentials)
base, token, table_id = sys.argv[1] + "/api/2.1/unity-catalog", sys.argv[2], sys.argv[3]
def call(path, body=None):
    req = urllib.request.Request(base + path, data=body and json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return urllib.request.urlopen(req).read().decode()
parsed = [
    ListCatalogsResponse.from_json(call("/catalogs")),
    CatalogInfo.from_json(call("/catalogs/acme")),
    ListSchemasResponse.from_json(call("/schemas?catalog_name=acme")),
    SchemaInfo.from_json(call("/schemas/acme.gold")),
    ListTablesResponse.from_json(call("/tables?catalog_name=acme&schema_name=gold")),
    TableInfo.from_json(call("/tables/acme.gold.orders")),
    TemporaryCredentials.from_json(call("/temporary-table-credentials", {"table_id": table_id, "operation": "READ"})),
]
t = parsed[5]
print(json.dumps({"parsed": len(parsed), "table_type": t.table_type.value, "format": t.data_source_format.value,
    "type_names": [c.type_name.value for c in t.columns], "expiration": parsed[6].expiration_time}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polars_and_the_unity_catalog_client_read_through_the_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let _admin = two_tenants(&app).await;
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    let got: Value = serde_json::from_str(&python(POLARS, &[&app.url(""), &analyst])).expect("json");
    assert_eq!(got["catalogs"], json!(["acme"]), "{got}");
    assert_eq!(got["schemas"], json!(["gold", "silver"]));
    assert_eq!(got["tables"], json!(["orders"]));
    assert_eq!((&got["rows"], &got["slashed"]), (&json!(30), &json!(30)));
    assert_eq!(got["ids"], json!((0..30).collect::<Vec<i64>>()));
    assert_eq!(got["columns"], json!(["id", "amount", "day"]));
    assert_ne!(got["bronze"], "read", "{got}");
    assert!(got["bronze"].as_str().expect("error").contains("403"), "{got}");
    assert!(
        got["other tenant"].as_str().expect("error").contains("404"),
        "{got}"
    );

    let id = table_id(&app, &analyst, "acme.gold.orders").await;
    let models: Value =
        serde_json::from_str(&python(UC_MODELS, &[&app.url(""), &analyst, &id])).expect("json");
    assert_eq!(models["parsed"], 7, "{models}");
    assert_eq!(
        (&models["table_type"], &models["format"]),
        (&json!("EXTERNAL"), &json!("DELTA"))
    );
    assert_eq!(models["type_names"], json!(["LONG", "DECIMAL", "DATE"]));
}

/// Runs a Python script from the test venv without the test's own AWS credentials in its
/// environment, so what it reads on S3 it reads with credentials the API vended.
fn python_without_aws_keys(script: &str, args: &[&str]) -> String {
    let interpreter = std::env::var("LAKEPLANE_PYTHON").expect("LAKEPLANE_PYTHON (scripts/test sets it)");
    let script = format!("{script}\nimport sys as _sys, os as _os\n_sys.stdout.flush()\n_os._exit(0)\n");
    let mut command = std::process::Command::new(interpreter);
    command.arg("-c").arg(script).args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") {
            command.env_remove(key);
        }
    }
    let output = command.output().expect("run python");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// polars on S3 through the catalog: reads a gold table and appends to a bronze one with the
/// credentials it vends; the endpoint is the user's own setting (polars gets none from a
/// catalog).
const POLARS_S3: &str = r#"
import sys, json, polars as pl
url, reader, writer, endpoint = sys.argv[1:5]
so = {"aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": "eu-west-1"}
read = pl.Catalog(url, bearer_token=reader, require_https=False)
out = {"rows": read.scan_table("acme", "gold", "orders", storage_options=so).select(pl.len()).collect().item()}
write = pl.Catalog(url, bearer_token=writer, require_https=False)
df = pl.DataFrame({"id": pl.Series([1000, 1001, 1002], dtype=pl.Int64)})
write.write_table(df, "acme", "bronze", "events", delta_mode="append", storage_options=so)
out["written"] = write.scan_table("acme", "bronze", "events", storage_options=so).select(pl.len()).collect().item()
print(json.dumps(out))
"#;

/// Python `deltalake` opening `uc://acme.gold.orders`: the table's location and credentials
/// come from the API. deltalake 1.6.6 sometimes hangs in its own `uc://` factory after the
/// answers came back (a lock taken while registering its storage handlers; not on the server
/// side): each open runs in a child with a deadline, and the hangs are counted and reported.
const DELTALAKE_UC: &str = r#"
import sys, json, os, subprocess
url, token, endpoint = sys.argv[1:4]
child = r'''
import sys, json, os
from deltalake import DeltaTable
t = DeltaTable("uc://acme.gold.orders", storage_options={"aws_endpoint_url": sys.argv[1],
    "aws_allow_http": "true", "aws_region": "eu-west-1"})
print(json.dumps({"rows": t.to_pyarrow_table(columns=["id"]).num_rows, "version": t.version()}))
sys.stdout.flush(); os._exit(0)
'''
env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
env.update(UNITY_WORKSPACE_URL=url, UNITY_ACCESS_TOKEN=token, UNITY_ALLOW_HTTP_URL="true")
hangs = 0
for attempt in range(8):
    try:
        r = subprocess.run([sys.executable, "-c", child, endpoint], env=env, capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        hangs += 1
        continue
    if r.returncode == 0:
        out = json.loads(r.stdout)
        out["hangs"] = hangs
        print(json.dumps(out))
    else:
        print(json.dumps({"error": r.stderr[-3000:], "hangs": hangs}))
    break
else:
    print(json.dumps({"error": "every attempt hung", "hangs": hangs}))
"#;

/// The bytes of the data files (not the log) under an `s3://bucket/prefix/` table, listed by
/// boto3 with the test's own keys.
const PARQUET_BYTES: &str = r#"
import sys, json, boto3
options = json.loads(sys.argv[2])
bucket, _, prefix = sys.argv[1].removeprefix("s3://").partition("/")
client = boto3.client("s3", endpoint_url=options["AWS_ENDPOINT_URL"], region_name=options["AWS_REGION"],
    aws_access_key_id=options["AWS_ACCESS_KEY_ID"], aws_secret_access_key=options["AWS_SECRET_ACCESS_KEY"])
pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
print(sum(o["Size"] for p in pages for o in p.get("Contents", []) if o["Key"].endswith(".parquet")))
"#;

/// Counts the tenant's new commits, then answers today's bytes written from outside the plane.
async fn outside_bytes_today(app: &TestApp, admin: &str) -> u64 {
    app.state.workers.collect_volumes().await.expect("collect");
    let usage = ok(app, admin, "/v1/tenants/acme/usage").await;
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    usage["volume"]["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .filter(|d| d["day"] == today)
        .map(|d| d["outside_bytes"].as_u64().expect("bytes"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_engines_read_and_write_with_the_credentials_the_catalog_vends() {
    let (app, _prefix) = crate::credentials::iam_app(None).await;
    let endpoint = crate::helpers::moto_endpoint();
    let admin = app.token(Role::PlatformAdmin, None).await;
    app.ready_tenant(&admin, "acme").await;
    for (zone, name) in [("gold", "orders"), ("bronze", "events")] {
        let table = json!({"zone": zone, "name": name, "columns": [{"name": "id", "type": "long"}]});
        app.expect(&admin, Method::POST, "/v1/tenants/acme/tables", Some(table), 201)
            .await;
    }
    let gold = ok(&app, &admin, "/v1/tenants/acme/tables/gold/orders").await;
    let location = gold["location"].as_str().expect("location").to_owned();
    assert!(location.starts_with("s3://"), "{location}");
    let mut options = crate::helpers::moto_storage_options(&endpoint);
    options["AWS_S3_ALLOW_UNSAFE_RENAME"] = json!("true");
    python(
        r#"
import sys, json, pyarrow as pa
from deltalake import write_deltalake
write_deltalake(sys.argv[1], pa.table({"id": pa.array(range(40), pa.int64())}), mode="append",
                storage_options=json.loads(sys.argv[2]))
"#,
        &[&location, &options.to_string()],
    );
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    let engineer = app.token(Role::Engineer, Some("acme")).await;

    // The answer carries STS credentials for the table.
    let id = table_id(&app, &analyst, "acme.gold.orders").await;
    let vended = app
        .send_as(
            &analyst,
            Method::POST,
            &format!("{UC}/temporary-table-credentials"),
            Some(json!({"table_id": id, "operation": "READ"})),
        )
        .await;
    let vended = crate::common::expect_status(vended, "credentials", 200).await;
    let aws = &vended["aws_temp_credentials"];
    assert!(
        aws["access_key_id"].as_str().is_some_and(|k| !k.is_empty()),
        "{vended}"
    );
    assert!(
        aws["session_token"].as_str().is_some_and(|k| !k.is_empty()),
        "{vended}"
    );
    assert_eq!(vended["url"], json!(location));

    let before = ok(&app, &admin, "/v1/tenants/acme/tables/bronze/events").await;
    let outside_before = outside_bytes_today(&app, &admin).await;
    let got: Value = serde_json::from_str(&python_without_aws_keys(
        POLARS_S3,
        &[&app.url(""), &analyst, &engineer, &endpoint],
    ))
    .expect("json");
    assert_eq!((&got["rows"], &got["written"]), (&json!(40), &json!(3)), "{got}");
    // The plane sees the engine's append: a new version with its rows, in the history too.
    let after = ok(&app, &admin, "/v1/tenants/acme/tables/bronze/events").await;
    assert_eq!(after["num_rows"], 3, "{after}");
    assert!(
        after["version"].as_i64() > before["version"].as_i64(),
        "{before} {after}"
    );
    let history = ok(&app, &admin, "/v1/tenants/acme/tables/bronze/events/history").await;
    assert_eq!(history["items"][0]["version"], after["version"], "{history}");
    // ... and counts what it wrote in the tenant's 30-day volume, as a writer from outside:
    // exactly the bytes of the data files that boto3 finds in the table, once.
    let events = after["location"].as_str().expect("location");
    let written: u64 = python(PARQUET_BYTES, &[events, &options.to_string()])
        .trim()
        .parse()
        .expect("bytes");
    assert!(written > 0);
    assert_eq!(outside_bytes_today(&app, &admin).await - outside_before, written);
    assert_eq!(
        outside_bytes_today(&app, &admin).await - outside_before,
        written,
        "counting again adds nothing"
    );
    // An analyst may not write bronze: polars is refused its credentials.
    let refused = app
        .send_as(
            &analyst,
            Method::POST,
            &format!("{UC}/temporary-table-credentials"),
            Some(json!({"table_id": table_id(&app, &admin, "acme.bronze.events").await, "operation": "READ_WRITE"})),
        )
        .await;
    uc_error(refused, 403, "PERMISSION_DENIED").await;

    let uc: Value =
        serde_json::from_str(&python(DELTALAKE_UC, &[&app.url(""), &analyst, &endpoint])).expect("json");
    println!("deltalake uc:// hangs before an open completed: {}", uc["hangs"]);
    assert_eq!(uc["rows"], 40, "{uc}");
}
