//! Streams and HTTP push through the API, judged by the Python `deltalake` reader: the stream
//! lifecycle, group commit, dead letters, backpressure, quotas, fencing and bad input.

use std::io::Write;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tenancy::role::Role;
use tenancy::store::Backend;
use tenancy::tenant::TenantStatus;

use crate::helpers::{TestApp, problem, python};
use crate::tables::read;

const STREAMS: &str = "/v1/tenants/acme/streams";
pub(crate) const EVENTS: &str = "/v1/tenants/acme/streams/clicks/events";

/// A ready tenant with the bronze `events` table and the HTTP stream `clicks` on it.
pub(crate) async fn clicks(app: &TestApp, admin: &str, on_error: &str) -> Value {
    app.ready_tenant(admin, "acme").await;
    let table = json!({"zone": "bronze", "name": "events", "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "user", "type": "string"},
        {"name": "amount", "type": "double"}
    ]});
    let created = app
        .send_as(admin, Method::POST, "/v1/tenants/acme/tables", Some(table))
        .await;
    assert_eq!(created.status(), 201);
    let stream = json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"},
                        "source": {"type": "http"}, "on_error": on_error});
    app.expect(admin, Method::POST, STREAMS, Some(stream), 201).await
}

pub(crate) async fn push(
    app: &TestApp,
    token: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("sent")
}

pub(crate) fn ndjson(ids: std::ops::Range<i64>) -> Vec<u8> {
    ids.map(|i| format!("{{\"id\": {i}, \"user\": \"u{}\", \"amount\": {}.5}}\n", i % 7, i))
        .collect::<String>()
        .into_bytes()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn location(app: &TestApp, token: &str, table: &str) -> String {
    location_of(app, token, "acme", table).await
}

/// Dead letters as the Python reader sees them: (source_position, error, payload), sorted.
const DEAD_LETTERS: &str = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1].removeprefix("file://")).to_pyarrow_table().to_pylist()
rows = sorted([r["source_position"], r["error"], r["payload"], r["_ingested_at"] is not None] for r in t)
print(json.dumps(rows))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_land_in_the_table_and_bad_input_writes_nothing() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.max_body_bytes = 64 * 1024,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    let stream = clicks(&app, &admin, "reject").await;
    assert_eq!(stream["status"], "active");
    assert_eq!(
        stream["dlq_table"],
        json!({"zone": "bronze", "name": "events__dlq"})
    );
    let engineer = app.token(Role::Engineer, Some("acme")).await;
    let table: Value = app
        .get_as(&engineer, "/v1/tenants/acme/tables/bronze/events")
        .await
        .json()
        .await
        .expect("json");
    let columns: Vec<&str> = table["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["id", "user", "amount", "_ingested_at"],
        "the schema shows the metadata column"
    );

    let first = push(&app, &engineer, EVENTS, "application/x-ndjson", ndjson(0..100)).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    assert_eq!(
        (first["accepted"].clone(), first["rejected"].clone()),
        (json!(100), json!(0))
    );
    let array: Vec<Value> = (100..150).map(|i| json!({"id": i, "user": "x"})).collect();
    let second = app
        .client
        .post(app.url(EVENTS))
        .bearer_auth(&engineer)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(&serde_json::to_vec(&array).expect("json")))
        .send()
        .await
        .expect("sent");
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.expect("json");
    assert_eq!(second["accepted"], 50);
    assert!(second["version"].as_i64() > first["version"].as_i64());

    let events = location(&app, &engineer, "events").await;
    let (version, ids) = read(&events);
    assert_eq!(
        ids,
        (0..150).collect::<Vec<_>>(),
        "exactly the pushed events, once each"
    );
    assert_eq!(
        Some(version),
        second["version"].as_i64(),
        "the acknowledged version is the table's"
    );

    // Bad input: clear problems naming line and field, and nothing written.
    let bad = [
        (
            "malformed JSON",
            "application/x-ndjson",
            b"{\"id\": 1}\n{\"id\": \n".to_vec(),
            422,
            Some((2, "")),
        ),
        (
            "wrong type",
            "application/x-ndjson",
            b"{\"id\": \"one\"}".to_vec(),
            422,
            Some((1, "id")),
        ),
        (
            "missing non-null field",
            "application/x-ndjson",
            b"{\"id\": 3}\n{\"user\": \"no id\"}".to_vec(),
            422,
            Some((2, "id")),
        ),
        (
            "unknown field",
            "application/x-ndjson",
            b"{\"id\": 3, \"colour\": \"red\"}".to_vec(),
            422,
            Some((1, "colour")),
        ),
        (
            "not an array",
            "application/json",
            b"{\"id\": 3}".to_vec(),
            422,
            None,
        ),
        (
            "wrong content type",
            "text/plain",
            b"{\"id\": 3}".to_vec(),
            415,
            None,
        ),
        (
            "oversized body",
            "application/x-ndjson",
            ndjson(0..2_000),
            413,
            None,
        ),
    ];
    for (what, content_type, body, status, located) in bad {
        let answer = problem(push(&app, &engineer, EVENTS, content_type, body).await, status).await;
        if let Some((line, field)) = located {
            assert_eq!(answer["errors"][0]["line"], line, "{what}: {answer}");
            assert_eq!(answer["errors"][0]["field"], field, "{what}: {answer}");
            assert!(
                answer["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
        }
    }
    let bad_gzip = app
        .client
        .post(app.url(EVENTS))
        .bearer_auth(&engineer)
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(b"not gzip at all".to_vec())
        .send()
        .await
        .expect("sent");
    problem(bad_gzip, 400).await;
    let gzip_bomb = gzip(&vec![b' '; 1024 * 1024]);
    problem(
        app.client
            .post(app.url(EVENTS))
            .bearer_auth(&engineer)
            .header("content-type", "application/x-ndjson")
            .header("content-encoding", "gzip")
            .body(gzip_bomb)
            .send()
            .await
            .expect("sent"),
        413,
    )
    .await;
    let ten_bad: Vec<u8> = (0..15).flat_map(|_| b"{\"id\": true}\n".to_vec()).collect();
    let listed = problem(
        push(&app, &engineer, EVENTS, "application/x-ndjson", ten_bad).await,
        422,
    )
    .await;
    assert_eq!(
        listed["errors"].as_array().map(Vec::len),
        Some(10),
        "at most 10 listed"
    );
    assert!(
        listed["detail"].as_str().unwrap_or_default().starts_with("15 "),
        "{listed}"
    );
    assert_eq!(
        read(&events),
        (version, (0..150).collect()),
        "no bad request wrote anything"
    );

    // Access: a role without bronze write, and another tenant's stream.
    let analyst = app.token(Role::Analyst, Some("acme")).await;
    problem(
        push(&app, &analyst, EVENTS, "application/x-ndjson", ndjson(0..1)).await,
        403,
    )
    .await;
    let other = app.token(Role::Engineer, Some("globex")).await;
    problem(
        push(&app, &other, EVENTS, "application/x-ndjson", ndjson(0..1)).await,
        404,
    )
    .await;
    let globex = json!({"id": "globex", "display_name": "Globex", "tier": "standard"});
    assert_eq!(
        app.send_as(&admin, Method::POST, "/v1/tenants", Some(globex))
            .await
            .status(),
        201
    );
    app.wait_for_status(&admin, "globex", "ready").await;
    problem(
        push(
            &app,
            &other,
            "/v1/tenants/globex/streams/clicks/events",
            "application/x-ndjson",
            ndjson(0..1),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(read(&events).1.len(), 150);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_keep_the_good_events_and_record_the_bad() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "dlq").await;
    let body = b"{\"id\": 1}\n{\"id\": \"x\"}\n{\"id\": 3}\n{oops\n".to_vec();
    let answer = push(&app, &admin, EVENTS, "application/x-ndjson", body.clone()).await;
    assert_eq!(answer.status(), 200);
    let request_id = answer
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("request id")
        .to_owned();
    let answer: Value = answer.json().await.expect("json");
    assert_eq!(
        (answer["accepted"].clone(), answer["rejected"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(answer["errors"].as_array().map(Vec::len), Some(2));
    assert!(answer["dlq_version"].as_i64().is_some());
    let (_, ids) = read(&location(&app, &admin, "events").await);
    assert_eq!(ids, [1, 3]);
    let dead: Value = serde_json::from_str(&python(
        DEAD_LETTERS,
        &[&location(&app, &admin, "events__dlq").await],
    ))
    .expect("json");
    let dead = dead.as_array().expect("rows");
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0][0], format!("line 2 of request {request_id}"));
    assert!(
        dead[0][1].as_str().unwrap_or_default().starts_with("id: "),
        "{dead:?}"
    );
    assert_eq!(dead[0][2], "{\"id\": \"x\"}");
    assert_eq!(dead[1][0], format!("line 4 of request {request_id}"));
    assert_eq!(dead[1][2], "{oops");
    assert_eq!(dead[0][3], true, "dead letters carry their receive time");

    // The per-request override: reject even though the stream defaults to dlq.
    let refused = push(
        &app,
        &admin,
        &format!("{EVENTS}?on_error=reject"),
        "application/x-ndjson",
        body,
    )
    .await;
    problem(refused, 422).await;
    assert_eq!(read(&location(&app, &admin, "events").await).1, [1, 3]);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_every_acknowledged_event_is_there() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.ingest.linger_ms = 300, Default::default()).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    let events = location(&app, &admin, "events").await;
    let (before, _) = read(&events);
    let pushes = (0..40).map(|i| {
        let (app, admin) = (&app, &admin);
        async move {
            let answer = push(
                app,
                admin,
                EVENTS,
                "application/x-ndjson",
                ndjson(i * 25..(i + 1) * 25),
            )
            .await;
            assert_eq!(answer.status(), 200);
            let answer: Value = answer.json().await.expect("json");
            assert_eq!(answer["accepted"], 25);
            answer["version"].as_i64().expect("version")
        }
    });
    let versions = futures_util::future::join_all(pushes).await;
    let distinct: std::collections::BTreeSet<i64> = versions.iter().copied().collect();
    let (after, ids) = read(&events);
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    assert!(
        distinct.len() < 10,
        "40 concurrent requests within a 300 ms linger share a few commits: {distinct:?}"
    );
    assert_eq!(
        after - before,
        distinct.len() as i64,
        "one table version per group commit"
    );
    assert!(distinct.iter().all(|v| *v > before && *v <= after));
    app.shutdown().await;
}

/// Each stream's ingest rate counts the rows it committed to its table, read back from the
/// table's log: two streams whose pushes share group commits each get their own count;
/// dead letters and refused pushes count nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_streams_ingest_rate_counts_its_own_committed_rows() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.ingest.linger_ms = 300, Default::default()).await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    let views = json!({"name": "views", "table": {"zone": "bronze", "name": "events"},
                       "source": {"type": "http"}, "on_error": "dlq"});
    app.expect(&admin, Method::POST, STREAMS, Some(views), 201).await;
    let rate = |name: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let stream: Value = app
                .get_as(admin, &format!("{STREAMS}/{name}"))
                .await
                .json()
                .await
                .expect("json");
            stream["ingest_rate"].clone()
        }
    };
    assert_eq!(
        rate("clicks").await,
        json!({"rows": 0, "window_seconds": 60.0, "rows_per_second": 0.0}),
        "nothing pushed yet"
    );

    // 1,000 rows to clicks and 100 good rows (and 50 dead letters) to views, at once: their
    // requests share group commits.
    let clicks_pushes = (0..40).map(|i| {
        let (app, admin) = (&app, &admin);
        async move {
            let answer = push(
                app,
                admin,
                EVENTS,
                "application/x-ndjson",
                ndjson(i * 25..(i + 1) * 25),
            )
            .await;
            assert_eq!(answer.status(), 200);
        }
    });
    let views_pushes = (0..10).map(|i| {
        let (app, admin) = (&app, &admin);
        async move {
            let mut body = ndjson(10_000 + i * 10..10_000 + (i + 1) * 10);
            body.extend_from_slice(b"{\"id\": \"x\"}\n".repeat(5).as_slice());
            let answer = push(
                app,
                admin,
                &format!("{STREAMS}/views/events"),
                "application/x-ndjson",
                body,
            )
            .await;
            assert_eq!(answer.status(), 200);
            let answer: Value = answer.json().await.expect("json");
            assert_eq!(
                (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
                (Some(10), Some(5))
            );
        }
    });
    futures_util::future::join(
        futures_util::future::join_all(clicks_pushes),
        futures_util::future::join_all(views_pushes),
    )
    .await;
    // A push refused whole commits nothing.
    let refused = push(
        &app,
        &admin,
        EVENTS,
        "application/x-ndjson",
        b"{\"id\": \"x\"}\n".to_vec(),
    )
    .await;
    problem(refused, 422).await;

    let clicks_rate = rate("clicks").await;
    assert_eq!(clicks_rate["rows"], 1000, "{clicks_rate}");
    assert_eq!(clicks_rate["window_seconds"], 60.0);
    let per_second = clicks_rate["rows_per_second"].as_f64().expect("rate");
    assert!((per_second - 1000.0 / 60.0).abs() < 1e-9, "{per_second}");
    let listed: Value = app.get_as(&admin, STREAMS).await.json().await.expect("json");
    let views_rate = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|s| s["name"] == "views")
        .map(|s| s["ingest_rate"].clone())
        .expect("views listed");
    assert_eq!(views_rate["rows"], 100, "{listed}");

    // A later reading adds only what was committed since.
    let answer = push(&app, &admin, EVENTS, "application/x-ndjson", ndjson(5_000..5_050)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(rate("clicks").await["rows"], 1050);
    assert_eq!(rate("views").await["rows"], 100);
    let (_, ids) = read(&location(&app, &admin, "events").await);
    assert_eq!(
        ids.len(),
        1150,
        "the table holds exactly the rows the rates count"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_past_the_early_flush_size_commits_without_waiting_for_the_linger() {
    // A 10 s linger and an 8 MiB flush size: only the early flush (the committer is idle and
    // the group holds at least `min_flush_bytes`) answers the first push within seconds.
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.ingest.linger_ms = 10_000;
            c.ingest.min_flush_bytes = 2048;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    let big = ndjson(0..60);
    assert!(big.len() > 2048, "{}", big.len());
    let started = std::time::Instant::now();
    let answer = push(&app, &admin, EVENTS, "application/x-ndjson", big).await;
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}, not at the linger",
        started.elapsed()
    );
    // A push under the early flush size still waits for the linger (or for company).
    let small = ndjson(100..110);
    assert!(small.len() < 2048, "{}", small.len());
    let started = std::time::Instant::now();
    let answer = push(&app, &admin, EVENTS, "application/x-ndjson", small).await;
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "a small group waits out its linger: {:?}",
        started.elapsed()
    );
    let (_, ids) = read(&location(&app, &admin, "events").await);
    assert_eq!(ids, (0..60).chain(100..110).collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buffers_and_used_up_quotas_answer_429_with_retry_after() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.ingest.max_body_bytes = 4096;
            c.ingest.table_buffer_bytes = 4096;
            c.ingest.linger_ms = 1_000;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    // Two 3 KB requests do not fit in a 4 KB table buffer: the second is refused at once
    // while the first waits out its linger.
    let body = ndjson(0..60);
    assert!(body.len() > 2048 && body.len() <= 4096, "{}", body.len());
    let first = push(&app, &admin, EVENTS, "application/x-ndjson", body.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        push(&app, &admin, EVENTS, "application/x-ndjson", ndjson(100..160)).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    let retry = second
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| s >= 1),
        "Retry-After in whole seconds: {retry:?}"
    );
    let refused = problem(second, 429).await;
    assert!(
        refused["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("ingest-buffer-full"),
        "{refused}"
    );
    assert_eq!(
        app.state.ingest.committer().buffered_bytes(),
        0,
        "buffers drain after the commit"
    );
    assert_eq!(
        read(&location(&app, &admin, "events").await).1,
        (0..60).collect::<Vec<_>>()
    );

    // The tenant's events/s quota.
    let quota = json!({"quotas": {"ingest_events_per_sec": 10}});
    assert_eq!(
        app.send_as(&admin, Method::PATCH, "/v1/tenants/acme", Some(quota))
            .await
            .status(),
        200
    );
    let mut limited = None;
    for round in 0..5 {
        let answer = push(
            &app,
            &admin,
            EVENTS,
            "application/x-ndjson",
            ndjson(1000 + round * 60..1060 + round * 60),
        )
        .await;
        if answer.status() == 429 {
            limited = Some(answer);
            break;
        }
        assert_eq!(answer.status(), 200);
    }
    let limited = limited.expect("10 events/s is used up by a 60-event request");
    assert!(limited.headers().contains_key("retry-after"));
    let body = problem(limited, 429).await;
    assert!(
        body["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("ingest-quota"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_definitions_are_validated_counted_and_guard_their_tables() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // 32 bytes
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.secret_key = Some(serde_json::from_value(json!(key)).expect("secret")),
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;

    let invalid = json!({"name": "Bad", "table": {"zone": "silver", "name": "events"},
        "source": {"type": "kafka", "bootstrap_servers": "nohost", "topic": "a/b",
                   "properties": {"ssl.keystore.location": "/etc/passwd"}}, "on_error": "ignore"});
    let answer = problem(
        app.send_as(&admin, Method::POST, STREAMS, Some(invalid)).await,
        422,
    )
    .await;
    let mut fields: Vec<&str> = answer["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "name",
            "on_error",
            "source.bootstrap_servers",
            "source.properties.ssl.keystore.location",
            "source.topic",
            "table.zone"
        ]
    );
    let missing =
        json!({"name": "other", "table": {"zone": "bronze", "name": "nope"}, "source": {"type": "http"}});
    let answer = problem(
        app.send_as(&admin, Method::POST, STREAMS, Some(missing)).await,
        422,
    )
    .await;
    assert_eq!(answer["errors"][0]["field"], "table.name");
    let again =
        json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"}, "source": {"type": "http"}});
    problem(app.send_as(&admin, Method::POST, STREAMS, Some(again)).await, 409).await;

    // Secrets are sealed at rest and never shown.
    let kafka = json!({"name": "orders", "table": {"zone": "bronze", "name": "events"},
        "source": {"type": "kafka", "bootstrap_servers": "127.0.0.1:1", "topic": "orders",
                   "properties": {"security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN",
                                  "sasl.username": "svc", "sasl.password": "hunter2-secret"}}});
    let created = app.send_as(&admin, Method::POST, STREAMS, Some(kafka)).await;
    assert_eq!(created.status(), 201);
    let shown = app
        .get_as(&admin, &format!("{STREAMS}/orders"))
        .await
        .text()
        .await
        .expect("text");
    assert!(!shown.contains("hunter2"), "{shown}");
    let shown: Value = serde_json::from_str(&shown).expect("json");
    assert_eq!(shown["source"]["secret_properties"], json!(["sasl.password"]));
    assert_eq!(shown["source"]["properties"]["sasl.username"], "svc");
    let stored = app
        .state
        .store
        .get_stream(&tenancy::tenant::TenantId::parse("acme").expect("id"), "orders")
        .await;
    let stored = stored.expect("read").expect("stored").source;
    assert!(
        !format!("{stored:?}").contains("sealed:v1:"),
        "Debug shows secret names only"
    );
    // What the database holds: the sealed value, never the password.
    let stored = serde_json::to_string(&stored).expect("json");
    assert!(
        !stored.contains("hunter2") && stored.contains("sealed:v1:"),
        "{stored}"
    );
    let columns: Value = app
        .get_as(&admin, "/v1/tenants/acme/tables/bronze/events")
        .await
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = columns["columns"]
        .as_array()
        .expect("cols")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "user",
            "amount",
            "_ingested_at",
            "_kafka_partition",
            "_kafka_offset",
            "_kafka_timestamp"
        ]
    );

    // The quota on streams (two exist now).
    let quota = json!({"quotas": {"max_streams": 2}});
    assert_eq!(
        app.send_as(&admin, Method::PATCH, "/v1/tenants/acme", Some(quota))
            .await
            .status(),
        200
    );
    let third =
        json!({"name": "third", "table": {"zone": "bronze", "name": "events"}, "source": {"type": "http"}});
    let over = problem(
        app.send_as(&admin, Method::POST, STREAMS, Some(third.clone()))
            .await,
        409,
    )
    .await;
    assert!(
        over["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("quota-exceeded"),
        "{over}"
    );

    // Tables written by streams stay until the streams go.
    for table in ["events", "events__dlq"] {
        let path = format!("/v1/tenants/acme/tables/bronze/{table}");
        problem(app.send_as(&admin, Method::DELETE, &path, None).await, 409).await;
    }
    let list: Value = app
        .get_as(&admin, &format!("{STREAMS}?limit=1"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"][0]["name"], "clicks");
    let cursor = list["next_cursor"].as_str().expect("cursor").to_owned();
    let rest: Value = app
        .get_as(&admin, &format!("{STREAMS}?cursor={cursor}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rest["items"][0]["name"], "orders");
    assert_eq!(rest["next_cursor"], Value::Null);
    for name in ["orders", "clicks"] {
        let path = format!("{STREAMS}/{name}");
        assert_eq!(
            app.send_as(&admin, Method::DELETE, &path, None).await.status(),
            204
        );
        problem(app.get_as(&admin, &path).await, 404).await;
    }
    assert_eq!(
        app.send_as(&admin, Method::POST, STREAMS, Some(third))
            .await
            .status(),
        201,
        "slots are freed"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_fenced_while_the_tenant_migrates() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.fence_wait_ms = 2_000,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    let id = tenancy::tenant::TenantId::parse("acme").expect("id");
    let status = |s| app.state.store.set_tenant_status(&id, s, None);
    status(TenantStatus::Migrating).await.expect("status");
    // A move that outlasts the wait: 503 with Retry-After once the wait is over, nothing kept.
    let started = std::time::Instant::now();
    let fenced = push(&app, &admin, EVENTS, "application/x-ndjson", ndjson(0..5)).await;
    let waited = started.elapsed();
    assert!(fenced.headers().contains_key("retry-after"));
    problem(fenced, 503).await;
    assert!(waited >= Duration::from_millis(2_000), "{waited:?}");
    assert_eq!(read(&location(&app, &admin, "events").await).1, Vec::<i64>::new());
    // A move that ends within the wait: the push goes through once the tenant is ready.
    let started = std::time::Instant::now();
    let pending = push(&app, &admin, EVENTS, "application/x-ndjson", ndjson(5..10));
    let end_move = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        status(TenantStatus::Ready).await.expect("status");
    };
    let (through, ()) = tokio::join!(pending, end_move);
    let waited = started.elapsed();
    // 200, not the 503 the wait ends in: it went through once the tenant was ready again.
    assert_eq!(through.status(), 200);
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(
        read(&location(&app, &admin, "events").await).1,
        (5..10).collect::<Vec<i64>>()
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_tenant_moved_while_it_waited_is_refused_not_lost() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.linger_ms = 1_500,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    let events = location(&app, &admin, "events").await;
    let pending = push(&app, &admin, EVENTS, "application/x-ndjson", ndjson(0..10));
    let mover = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The placement changes under the waiting group, as a migration's switch does.
        let id = tenancy::tenant::TenantId::parse("acme").expect("id");
        let mut tenant = app
            .state
            .store
            .get_tenant(&id)
            .await
            .expect("store")
            .expect("tenant");
        tenant.placement.shard = tenant.placement.shard.map(|s| s + 1);
        let audit = tenancy::audit::AuditEvent::system(
            "test.move",
            "acme",
            Some("acme"),
            tenancy::audit::Outcome::Success,
        );
        assert!(
            app.state
                .store
                .update_tenant(&tenant, &audit)
                .await
                .expect("update")
        );
    };
    let (answer, ()) = tokio::join!(pending, mover);
    let refused = problem(answer, 503).await;
    assert!(
        refused["type"]
            .as_str()
            .unwrap_or_default()
            .ends_with("commit-failed"),
        "{refused}"
    );
    assert_eq!(
        read(&events).1,
        Vec::<i64>::new(),
        "nothing committed at the old location"
    );
    app.shutdown().await;
}

/// A stream `clicks` on a bronze `events` table of a new ready tenant.
async fn clicks_of(app: &TestApp, admin: &str, tenant: &str) {
    app.ready_tenant(admin, tenant).await;
    let table = json!({"zone": "bronze", "name": "events", "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "user", "type": "string"},
        {"name": "amount", "type": "double"}
    ]});
    app.expect(
        admin,
        Method::POST,
        &format!("/v1/tenants/{tenant}/tables"),
        Some(table),
        201,
    )
    .await;
    let stream = json!({"name": "clicks", "table": {"zone": "bronze", "name": "events"},
                        "source": {"type": "http"}});
    app.expect(
        admin,
        Method::POST,
        &format!("/v1/tenants/{tenant}/streams"),
        Some(stream),
        201,
    )
    .await;
}

/// A gzip push sent by hand over its own connection, chunk by chunk, as a slow client would.
struct Trickle {
    socket: tokio::net::TcpStream,
}

impl Trickle {
    async fn open(app: &TestApp, token: &str, tenant: &str) -> Self {
        use tokio::io::AsyncWriteExt;
        let addr = app.base.trim_start_matches("http://");
        let mut socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST /v1/tenants/{tenant}/streams/clicks/events HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/x-ndjson\r\n\
             Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.expect("head");
        Self { socket }
    }

    async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let chunk = [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
        self.socket.write_all(&chunk).await.expect("chunk");
    }

    /// Sends a chunk unless the server already closed; whether it went.
    async fn try_send(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        let chunk = [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
        self.socket.write_all(&chunk).await.is_ok()
    }

    async fn finish(mut self) -> u16 {
        use tokio::io::AsyncWriteExt;
        self.socket.write_all(b"0\r\n\r\n").await.expect("last chunk");
        self.status().await
    }

    async fn status(mut self) -> u16 {
        crate::helpers::raw_status(&mut self.socket).await
    }
}

/// One tenant holding 16 slow gzip pushes (each allowed 16 MiB inflated) used to reserve the
/// whole 256 MiB server buffer before a byte arrived, so every other tenant got 429. Room now
/// grows with the bytes received, within the tenant's share: the other tenant's pushes go
/// through meanwhile, the slow pushes still land, and one that goes quiet is answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_slow_pushes_do_not_fill_the_buffer_for_everyone() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.body_stall_ms = 2_000,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks_of(&app, &admin, "acme").await;
    clicks_of(&app, &admin, "globex").await;
    let acme = app.token(Role::Engineer, Some("acme")).await;
    let globex = app.token(Role::Engineer, Some("globex")).await;
    assert_eq!(
        app.state.config.ingest.max_body_bytes * 16,
        app.state.config.ingest.total_buffer_bytes,
        "16 bodies of the limit are the whole server buffer"
    );

    let body = gzip(&ndjson(0..40));
    let mut slow = Vec::new();
    for _ in 0..16 {
        let mut push = Trickle::open(&app, &acme, "acme").await;
        push.send(&body[..10]).await;
        slow.push(push);
    }
    let quiet = Trickle::open(&app, &acme, "acme").await;
    // globex pushes while acme's 16 pushes are open and trickling.
    let mut sent = 10;
    for round in 0..6 {
        let answer = push(
            &app,
            &globex,
            "/v1/tenants/globex/streams/clicks/events",
            "application/x-ndjson",
            ndjson(round * 10..round * 10 + 10),
        )
        .await;
        assert_eq!(
            answer.status(),
            200,
            "globex's push {round}: {:?}",
            answer.text().await
        );
        let step = (body.len() - 10).div_ceil(6);
        let next = (sent + step).min(body.len());
        for push in &mut slow {
            push.send(&body[sent..next]).await;
        }
        sent = next;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(sent, body.len());
    let statuses = futures_util::future::join_all(slow.into_iter().map(Trickle::finish)).await;
    assert_eq!(statuses, vec![200; 16], "the slow pushes land too");
    // The push that went quiet (headers only) is given up once it stalled.
    let started = std::time::Instant::now();
    assert_eq!(quiet.status().await, 408);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        read(&location_of(&app, &acme, "acme", "events").await).1.len(),
        16 * 40,
        "every acknowledged event of acme's pushes is in its table"
    );
    app.shutdown().await;
}

/// A tenant's pushes hold at most its share of the server buffer: with a 512 KiB share, two of
/// acme's pushes holding 250 KiB each leave no room for a third, which is answered 429 while
/// its bytes arrive, nor for acme's next 40 KB push; globex's pushes go through meanwhile, and
/// acme's room comes back once its bodies are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_pushes_fill_its_share_and_no_more() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| {
            c.ingest.max_body_bytes = 256 * 1024;
            c.ingest.tenant_buffer_bytes = 512 * 1024;
            c.ingest.body_stall_ms = 20_000;
        },
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks_of(&app, &admin, "acme").await;
    clicks_of(&app, &admin, "globex").await;
    let acme = app.token(Role::Engineer, Some("acme")).await;
    let globex = app.token(Role::Engineer, Some("globex")).await;
    // Bytes that do not inflate: each received byte is held as it is.
    let held: Vec<u8> = (0..250 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut push = Trickle::open(&app, &acme, "acme").await;
        for chunk in held.chunks(16 * 1024) {
            push.send(chunk).await;
        }
        holders.push(push);
    }
    // Wait until the server holds both bodies (500 KiB of acme's share).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.ingest.admission().held() < 500 * 1024 {
        assert!(std::time::Instant::now() < deadline, "the bodies were never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut third = Trickle::open(&app, &acme, "acme").await;
    for chunk in held.chunks(16 * 1024) {
        // The server answers as soon as the share is full and may close before all is sent.
        if !third.try_send(chunk).await {
            break;
        }
    }
    assert_eq!(third.status().await, 429, "past acme's share");
    let small = push(
        &app,
        &acme,
        "/v1/tenants/acme/streams/clicks/events",
        "application/x-ndjson",
        ndjson(0..1000),
    )
    .await;
    assert!(ndjson(0..1000).len() > 12 * 1024);
    assert_eq!(small.status(), 429, "acme's share is still held");
    let other = push(
        &app,
        &globex,
        "/v1/tenants/globex/streams/clicks/events",
        "application/x-ndjson",
        ndjson(0..10),
    )
    .await;
    assert_eq!(other.status(), 200, "globex's share is its own");
    // The held bodies end (they are not gzip: 400) and acme's room comes back.
    for push in holders {
        assert_eq!(push.finish().await, 400);
    }
    let again = push(
        &app,
        &acme,
        "/v1/tenants/acme/streams/clicks/events",
        "application/x-ndjson",
        ndjson(10..20),
    )
    .await;
    assert_eq!(again.status(), 200);
    app.shutdown().await;
}

async fn location_of(app: &TestApp, token: &str, tenant: &str, table: &str) -> String {
    let body: Value = app
        .get_as(token, &format!("/v1/tenants/{tenant}/tables/bronze/{table}"))
        .await
        .json()
        .await
        .expect("json");
    body["location"].as_str().expect("location").to_owned()
}

/// Inflating and validating pushes is CPU work: it runs on a bounded blocking pool, not on the
/// async workers. With one async worker thread, four gzip bodies inflating to 16 MiB at once
/// leave `/healthz` answering promptly; on the async thread each would stall it for the whole
/// inflate.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn inflating_pushes_does_not_stall_the_async_workers() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        |c| c.ingest.decode_threads = 2,
        Default::default(),
    )
    .await;
    let admin = app.token(Role::PlatformAdmin, None).await;
    clicks(&app, &admin, "reject").await;
    // A body that inflates past the 16 MiB limit from a few KiB: cheap to send, and the server
    // inflates 16 MiB of it before answering 413 (nothing is decoded or committed).
    let line = b"{\"id\": 1, \"user\": \"u\", \"amount\": 1.5}\n";
    let plain: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(app.state.config.ingest.max_body_bytes + 1024 * 1024)
        .collect();
    let body = gzip(&plain);
    let pushes: Vec<_> = (0..4)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url(EVENTS);
            let token = admin.clone();
            let body = body.clone();
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .header("content-encoding", "gzip")
                    .body(body)
                    .send()
                    .await
                    .expect("push")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while !pushes.iter().all(tokio::task::JoinHandle::is_finished) {
        let started = std::time::Instant::now();
        assert_eq!(app.get("/healthz").await.status(), 200);
        worst = worst.max(started.elapsed());
        probes += 1;
    }
    for push in pushes {
        let status = push.await.expect("push task");
        // 413 once 16 MiB are inflated; 429 when the tenant's 64 MiB share is taken meanwhile.
        assert!([413, 429].contains(&status), "{status}");
    }
    println!("healthz worst {worst:?} over {probes} probes while inflating");
    assert!(probes >= 3, "the pushes took long enough to probe ({probes})");
    assert!(
        worst < Duration::from_millis(500),
        "healthz took {worst:?} while pushes inflated"
    );
    app.shutdown().await;
}
