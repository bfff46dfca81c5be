//! Ingestion benchmarks against the real `lakeplane serve` (the release binary next to this
//! one) on a temporary embedded default, with baselines measured in the same run.
//!
//! `lakeplane-bench http`: N clients push NDJSON batches of ~200-byte events as fast as the
//! server acknowledges them; reports events/s, events/s per core of server CPU (from
//! /proc/<pid>/stat), and p50/p99 acknowledgement latency; then drives half that rate
//! open-loop and reports p99 there. Baseline: the bare loop this machine can do, arrow-json
//! decode plus an in-memory snappy Parquet write of the same events on one core.
//!
//! `lakeplane-bench bare`: the bare loop alone, for `SECONDS` (5): its events and rate.
//!
//! `lakeplane-bench kafka BOOTSTRAP`: produces events to a new topic on the broker, creates a
//! Kafka stream, and times until every event is in the table; events/s per core of server CPU.
//!
//! `lakeplane-bench sharing`: Delta Sharing `query` time and size on a table of 1,000 files.
//!
//! `lakeplane-bench credentials [S3_ENDPOINT]`: cached credential vending. The server runs on
//! S3 with IAM against the moto server (default `http://127.0.0.1:5055`, `scripts/moto-server`),
//! and `POST /v1/tenants/{tenant}/credentials` is driven open-loop at `RATE` (1000) per second
//! for `SECONDS` (15) after the first call filled the cache; the baselines, at the same rate
//! in the same run, are `GET /healthz` and `GET /v1/tenants/{id}`; on SQLite, then on a fresh
//! PostgreSQL database (`LAKEPLANE_TEST_POSTGRES_URL`). Needs AWS credentials in the environment (moto accepts
//! any, e.g. `AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing`).
//!
//! `lakeplane-bench erasure`: one subject erased from 20 tables of 1,000,000 rows, against
//! Python `deltalake`'s `DeltaTable.delete` on copies of the same tables (see `erasure.rs`).
//!
//! `lakeplane-bench streams`: the stream list with each stream's ingest rate read from its
//! table's log, under pushes, against the table list and the tenant read (see `streams.rs`).
//!
//! `lakeplane-bench floor`: the authenticated API floor, closed loop, against a bare axum
//! handler in the same run (see `floor.rs`).
//!
//! `lakeplane-bench pipeline`: a silver pipeline's run over `ROWS` (2,000,000) pushed events,
//! against Python `datafusion` doing the same transformation on the same files (see
//! `pipeline.rs`).
//!
//! `lakeplane-bench reconcile`: the reconcile loop at 1,000 to 10,000 tenants, on SQLite and
//! PostgreSQL (see `reconcile.rs`).
//!
//! `lakeplane-bench scheduler`: a maintenance scheduling pass over 30,000 tables, the first
//! (every snapshot read) against the next with 1 % of the tables changed, on SQLite and
//! PostgreSQL (see `scheduler.rs`).
//!
//! Build: `cargo build --release -p api -p bench --bins`; run `target/release/lakeplane-bench http`.
//! Env: `CLIENTS` (8), `BATCH` (5000 events), `SECONDS` (10), `EVENTS` (Kafka, 1000000),
//! `PUSH_AS` (`admin` to push as the platform-admin rather than an engineer through a grant).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::json::ReaderBuilder;
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

use bench::{open_loop, serve};

use tenancy::store::Backend;
use tenancy::store::testing::TestDatabase;

mod console;
mod erasure;
mod fixture;
mod floor;
mod pipeline;
mod reconcile;
mod scheduler;
mod streams;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One ~200-byte event.
fn event(i: u64) -> String {
    format!(
        "{{\"id\":{i},\"user\":\"user-{:06}\",\"action\":\"page_view\",\"url\":\"https://shop.example.com/p/{:08}\",\"amount\":{}.{:02},\"ok\":true,\"region\":\"eu-west-{}\",\"session\":\"{:016x}\"}}\n",
        i % 100_000,
        i.wrapping_mul(2_654_435_761) % 100_000_000,
        i % 1000,
        i % 100,
        i % 3,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

fn batch_body(start: u64, n: u64) -> Vec<u8> {
    (start..start + n).map(event).collect::<String>().into_bytes()
}

fn columns() -> Value {
    json!([
        {"name": "id", "type": "long", "nullable": false},
        {"name": "user", "type": "string"},
        {"name": "action", "type": "string"},
        {"name": "url", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "ok", "type": "boolean"},
        {"name": "region", "type": "string"},
        {"name": "session", "type": "string"}
    ])
}

/// Server CPU seconds (user + system) from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 0, utime field 11, stime field 12; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

struct Server {
    child: tokio::process::Child,
    base: String,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Server {
    start_server_with(&[]).await
}

/// The release server on a temporary data dir, rate limits out of the way, plus `extra` env.
async fn start_server_with(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = serve::lakeplane_bin();
    let mut env = vec![
        ("LAKEPLANE__RATE_LIMIT__PER_SECOND", "100000"),
        ("LAKEPLANE__RATE_LIMIT__BURST", "100000"),
    ];
    env.extend_from_slice(extra);
    let token = serve::token_with(&bin, dir.path(), "bench", &env);
    let (child, base) = serve::serve(&bin, dir.path(), &env).await;
    Server {
        child,
        base,
        token,
        _dir: dir,
    }
}

async fn call(
    client: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let answer = client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(&server.token)
        .json(&body)
        .send()
        .await
        .expect("send");
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn setup(client: &reqwest::Client, server: &Server, source: Value) {
    let tenant = json!({"id": "bench", "display_name": "Bench", "tier": "enterprise",
                        "quotas": {"ingest_events_per_sec": 100_000_000}});
    let table = json!({"zone": "bronze", "name": "events", "columns": columns()});
    tenant_with(client, server, tenant, table).await;
    let stream = json!({"name": "events", "table": {"zone": "bronze", "name": "events"}, "source": source});
    call(
        client,
        server,
        reqwest::Method::POST,
        "/v1/tenants/bench/streams",
        stream,
    )
    .await;
}

/// A token of `role` in tenant `bench` whose only way to `privilege` on `zone.table` is a grant
/// to its user on that table: the role loses the privilege on the zone first. So every request
/// it makes goes through the grants check, as a narrowed tenant's users' do.
async fn granted_token(
    client: &reqwest::Client,
    server: &Server,
    role: &str,
    zone: &str,
    table: &str,
    privilege: &str,
) -> String {
    let subject = format!("bench-{role}");
    let change = |principal: String, add: bool| {
        let (verb, other) = if add { ("add", "remove") } else { ("remove", "add") };
        json!({"changes": [{"principal": principal, verb: [privilege], other: []}]})
    };
    let patch = reqwest::Method::PATCH;
    let zone_grants = format!("/v1/tenants/bench/grants/zones/{zone}");
    call(
        client,
        server,
        patch.clone(),
        &zone_grants,
        change(format!("role:{role}"), false),
    )
    .await;
    let table_grants = format!("/v1/tenants/bench/grants/tables/{zone}/{table}");
    call(
        client,
        server,
        patch,
        &table_grants,
        change(format!("user:{subject}"), true),
    )
    .await;
    let issued = call(
        client,
        server,
        reqwest::Method::POST,
        "/v1/tenants/bench/tokens",
        json!({"subject": subject, "role": role, "ttl_seconds": 86_400}),
    )
    .await;
    issued["token"].as_str().expect("token").to_owned()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// The physical limit: arrow-json decode and snappy Parquet into memory, one core; events/s.
fn bare_loop(batch: u64, seconds: f64) -> f64 {
    let (events, elapsed) = bare_loop_counted(batch, seconds);
    events as f64 / elapsed
}

/// [`bare_loop`]'s events and seconds (`lakeplane-bench bare` prints them, so that a profiler
/// such as callgrind can count instructions per event of the baseline).
fn bare_loop_counted(batch: u64, seconds: f64) -> (u64, f64) {
    let schema = Arc::new(deltalake::arrow::datatypes::Schema::new(vec![
        deltalake::arrow::datatypes::Field::new("id", deltalake::arrow::datatypes::DataType::Int64, false),
        deltalake::arrow::datatypes::Field::new("user", deltalake::arrow::datatypes::DataType::Utf8, true),
        deltalake::arrow::datatypes::Field::new("action", deltalake::arrow::datatypes::DataType::Utf8, true),
        deltalake::arrow::datatypes::Field::new("url", deltalake::arrow::datatypes::DataType::Utf8, true),
        deltalake::arrow::datatypes::Field::new(
            "amount",
            deltalake::arrow::datatypes::DataType::Float64,
            true,
        ),
        deltalake::arrow::datatypes::Field::new("ok", deltalake::arrow::datatypes::DataType::Boolean, true),
        deltalake::arrow::datatypes::Field::new("region", deltalake::arrow::datatypes::DataType::Utf8, true),
        deltalake::arrow::datatypes::Field::new("session", deltalake::arrow::datatypes::DataType::Utf8, true),
    ]));
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| batch_body(i * batch, batch)).collect();
    let started = Instant::now();
    let mut events = 0u64;
    let mut i = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let mut decoder = ReaderBuilder::new(schema.clone())
            .with_batch_size(batch as usize)
            .build_decoder()
            .expect("decoder");
        decoder.decode(&bodies[i % bodies.len()]).expect("decode");
        let rows = decoder.flush().expect("flush").expect("rows");
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).expect("writer");
        writer.write(&rows).expect("write");
        let bytes = writer.into_inner().expect("close");
        std::hint::black_box(bytes);
        events += batch;
        i += 1;
    }
    (events, started.elapsed().as_secs_f64())
}

/// What a Python user would do instead: `pyarrow.json` plus `deltalake.write_deltalake`, one
/// append per batch of the same events, for about five seconds. `None` without
/// `LAKEPLANE_PYTHON` (a python with pyarrow and deltalake).
fn python_writer(batch: u64) -> Option<f64> {
    let python = std::env::var("LAKEPLANE_PYTHON").ok()?;
    let dir = tempfile::tempdir().ok()?;
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, batch_body(0, batch)).ok()?;
    let script = r#"
import sys, time, io, os
import pyarrow.json as pj
from deltalake import write_deltalake
data = open(sys.argv[1], "rb").read()
table_path = sys.argv[2]
n = 0
start = time.monotonic()
while time.monotonic() - start < 5.0:
    t = pj.read_json(io.BytesIO(data))
    write_deltalake(table_path, t, mode="append")
    n += t.num_rows
print(n / (time.monotonic() - start))
sys.stdout.flush()
os._exit(0)
"#;
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(&events)
        .arg(dir.path().join("table"))
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

async fn http() {
    let clients = env_or("CLIENTS", 8);
    let batch = env_or("BATCH", 5000);
    let seconds = env_or("SECONDS", 10);
    let bare = tokio::task::spawn_blocking(move || bare_loop(batch, 5.0))
        .await
        .expect("bare");
    let python = tokio::task::spawn_blocking(move || python_writer(batch))
        .await
        .expect("python");
    let server = start_server().await;
    let pid = server.child.id().expect("pid");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    setup(&client, &server, json!({"type": "http"})).await;
    // Pushed as an engineer holding MODIFY through a table grant only, so every push pays the
    // grants check (admins skip it); `PUSH_AS=admin` pushes as the platform-admin instead, to
    // compare the two in one session.
    let token = if std::env::var("PUSH_AS").is_ok_and(|v| v == "admin") {
        server.token.clone()
    } else {
        granted_token(&client, &server, "engineer", "bronze", "events", "MODIFY").await
    };
    let url = format!("{}/v1/tenants/bench/streams/events/events", server.base);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..16).map(|i| batch_body(i * batch, batch)).collect());
    let push = |body: Vec<u8>| {
        let request = client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send();
        async move {
            let started = Instant::now();
            let ok = matches!(request.await, Ok(r) if r.status() == 200);
            (started.elapsed(), ok)
        }
    };
    // Closed loop: every client sends its next request when the last is acknowledged.
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let bodies = bodies.clone();
        tasks.push(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            let mut n = c as usize;
            while Instant::now() < deadline {
                let (latency, ok) = push(bodies[n % bodies.len()].clone()).await;
                if ok {
                    latencies.push(latency);
                } else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                n += clients as usize;
            }
            (latencies, errors)
        });
    }
    let results = futures_util::future::join_all(tasks).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let mut latencies: Vec<Duration> = results.iter().flat_map(|(l, _)| l.iter().copied()).collect();
    let errors: usize = results.iter().map(|(_, e)| e).sum();
    latencies.sort_unstable();
    let events = latencies.len() as f64 * batch as f64;
    let rate = events / elapsed;
    let per_core = events / cpu.max(1e-9);
    // Open loop at half the maximum: requests start on schedule whatever the answers do.
    let half_requests_per_sec = (rate / 2.0 / batch as f64).max(0.5);
    let interval = Duration::from_secs_f64(1.0 / half_requests_per_sec);
    let total = ((seconds as f64) * half_requests_per_sec) as usize;
    let start = Instant::now() + Duration::from_millis(100);
    let mut open = Vec::new();
    for i in 0..total.max(1) {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let request = push(bodies[i % bodies.len()].clone());
        open.push(tokio::spawn(async move {
            let (_, ok) = request.await;
            (scheduled.elapsed(), ok)
        }));
    }
    let mut half = Vec::new();
    for t in open {
        if let Ok((latency, true)) = t.await {
            half.push(latency);
        }
    }
    half.sort_unstable();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| bare loop: arrow-json decode + snappy Parquet in memory, 1 core | {:.0} events/s |",
        bare
    );
    match python {
        Some(rate) => println!(
            "| Python pyarrow.json + deltalake.write_deltalake, {batch}-event appends | {rate:.0} events/s |"
        ),
        None => {
            println!("| Python pyarrow.json + deltalake.write_deltalake | not run (set LAKEPLANE_PYTHON) |")
        }
    }
    println!(
        "| HTTP ingest, {clients} clients × {batch}-event requests, closed loop | {:.0} events/s ({errors} errors) |",
        rate
    );
    println!("| server CPU during it | {:.2} cores |", cpu / elapsed);
    println!(
        "| HTTP ingest per core of server CPU | {:.0} events/s |",
        per_core
    );
    println!("| ratio to the bare loop (per core) | {:.2} |", per_core / bare);
    println!(
        "| ack latency at max load p50 / p99 | {:.1} ms / {:.1} ms |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "| ack latency at half load ({:.0} events/s, open loop) p50 / p99 | {:.1} ms / {:.1} ms |",
        half_requests_per_sec * batch as f64,
        percentile(&half, 0.5).as_secs_f64() * 1e3,
        percentile(&half, 0.99).as_secs_f64() * 1e3
    );
}

async fn kafka(bootstrap: String) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let events = env_or("EVENTS", 1_000_000);
    let topic = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("topics")
    {
        r.expect("topic");
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .expect("producer");
    let produce_started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..events {
        let payload = event(i);
        let payload = payload.trim_end().to_owned();
        let producer = producer.clone();
        let topic = topic.clone();
        pending.push(tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::<(), String>::to(&topic).payload(&payload),
                    Duration::from_secs(60),
                )
                .await
                .is_ok()
        }));
        if pending.len() >= 50_000 {
            for p in pending.drain(..) {
                assert!(p.await.unwrap_or(false), "produce failed");
            }
        }
    }
    for p in pending {
        assert!(p.await.unwrap_or(false), "produce failed");
    }
    let produce_rate = events as f64 / produce_started.elapsed().as_secs_f64();
    // Baseline: a bare consumer reading the same topic, nothing written (the broker's read rate).
    let read_rate = {
        use rdkafka::Message;
        use rdkafka::consumer::{Consumer, StreamConsumer};
        use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "lakeplane-bench-baseline")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut list = TopicPartitionList::new();
        for p in 0..3 {
            list.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let started = Instant::now();
        let mut seen = 0u64;
        while seen < events {
            let message = consumer.recv().await.expect("consume");
            std::hint::black_box(message.payload());
            seen += 1;
        }
        events as f64 / started.elapsed().as_secs_f64()
    };
    let server = start_server().await;
    let pid = server.child.id().expect("pid");
    let client = reqwest::Client::new();
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    setup(
        &client,
        &server,
        json!({"type": "kafka", "bootstrap_servers": bootstrap, "topic": topic}),
    )
    .await;
    loop {
        let t: Value = client
            .get(format!("{}/v1/tenants/bench/tables/bronze/events", server.base))
            .bearer_auth(&server.token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .unwrap_or_default();
        if t["num_rows"].as_u64().unwrap_or(0) >= events {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "not done in 10 minutes: {t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| producing {events} events to tansu (baseline: the broker's own intake) | {produce_rate:.0} events/s |"
    );
    println!(
        "| bare consumer reading the same topic, nothing written (baseline) | {read_rate:.0} events/s |"
    );
    println!(
        "| Kafka → Delta end to end | {:.0} events/s in {elapsed:.1} s |",
        events as f64 / elapsed
    );
    println!("| server CPU during it | {:.2} cores |", cpu / elapsed);
    println!(
        "| Kafka ingest per core of server CPU | {:.0} events/s |",
        events as f64 / cpu.max(1e-9)
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `lakeplane-bench credentials`, on SQLite (the embedded default), then on PostgreSQL (a fresh
/// database, dropped after).
async fn credentials(endpoint: String) {
    println!("| metadata | request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::new(Backend::Postgres).await),
        };
        credentials_on(&endpoint, backend, database.as_ref().map(|d| d.url.expose())).await;
        if let Some(database) = database {
            database.drop_database().await;
        }
    }
}

async fn credentials_on(endpoint: &str, backend: Backend, database: Option<&str>) {
    let rate = env_or("RATE", 1000);
    let seconds = env_or("SECONDS", 15);
    let prefix = format!("lpb{}", &uuid::Uuid::now_v7().simple().to_string()[21..]);
    let mut env = vec![
        ("LAKEPLANE__STORAGE__KIND", "s3"),
        ("LAKEPLANE__STORAGE__S3__REGION", "eu-west-1"),
        ("LAKEPLANE__STORAGE__S3__ENDPOINT", endpoint),
        ("LAKEPLANE__STORAGE__S3__PATH_STYLE", "true"),
        ("LAKEPLANE__STORAGE__S3__BUCKET_PREFIX", prefix.as_str()),
        ("LAKEPLANE__STORAGE__S3__IAM__ENABLED", "true"),
        (
            "LAKEPLANE__STORAGE__S3__IAM__BROKER_PRINCIPAL",
            "arn:aws:iam::123456789012:user/broker",
        ),
    ];
    if let Some(url) = database {
        env.push(("LAKEPLANE__DATABASE__URL", url));
    }
    let server = start_server_with(&env).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let table = json!({"zone": "gold", "name": "orders", "columns": [{"name": "id", "type": "long"}]});
    enterprise_tenant_with(&client, &server, table).await;
    let url = format!("{}/v1/tenants/bench/credentials", server.base);
    let body = json!({"zone": "gold", "tables": ["orders"], "access": "read", "ttl_seconds": 3600});
    // The first call goes to STS and fills the cache; the rest are hits for the next 30 minutes.
    let first = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/credentials",
        body.clone(),
    )
    .await;
    // Baselines at the same rate: the HTTP stack alone, and an authenticated read (token
    // verification, revocation check, one database read) that every credentials call also pays.
    let drive = |url: String, post: bool, seconds: u64| {
        let (client, token, body) = (&client, &server.token, &body);
        open_loop::drive(rate, seconds, move |_| {
            if post {
                client.post(&url).bearer_auth(token).json(body)
            } else {
                client.get(&url).bearer_auth(token)
            }
        })
    };
    drive(url.clone(), true, 1).await;
    let health = drive(format!("{}/healthz", server.base), false, seconds).await;
    let read = drive(format!("{}/v1/tenants/bench", server.base), false, seconds).await;
    let vended = drive(url.clone(), true, seconds).await;
    // The same, as an analyst whose only SELECT on the table is a grant to its user.
    let analyst = granted_token(&client, &server, "analyst", "gold", "orders", "SELECT").await;
    let granted = {
        let (client, token, body) = (&client, &analyst, &body);
        client
            .post(&url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("first analyst call");
        open_loop::drive(rate, seconds, move |_| {
            client.post(&url).bearer_auth(token).json(body)
        })
        .await
    };
    let last = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/credentials",
        body,
    )
    .await;
    assert_eq!(
        first["access_key_id"], last["access_key_id"],
        "every request in between was a cache hit"
    );
    let name = backend.as_str();
    println!("| {name} {}", health.row("GET /healthz (baseline)", rate));
    println!("| {name} {}", read.row("GET /v1/tenants/{id} (baseline)", rate));
    println!(
        "| {name} {}",
        vended.row("POST /v1/tenants/{tenant}/credentials (cached)", rate)
    );
    println!(
        "| {name} {}",
        granted.row(
            "POST /v1/tenants/{tenant}/credentials (cached, analyst through a table grant)",
            rate
        )
    );
}

/// The enterprise tenant `bench`, ready, with one table.
async fn enterprise_tenant_with(client: &reqwest::Client, server: &Server, table: Value) {
    let tenant = json!({"id": "bench", "display_name": "Bench", "tier": "enterprise"});
    tenant_with(client, server, tenant, table).await;
}

/// The tenant `bench` as `tenant` describes it, ready, with one table.
async fn tenant_with(client: &reqwest::Client, server: &Server, tenant: Value, table: Value) {
    call(client, server, reqwest::Method::POST, "/v1/tenants", tenant).await;
    wait_ready(client, server).await;
    call(
        client,
        server,
        reqwest::Method::POST,
        "/v1/tenants/bench/tables",
        table,
    )
    .await;
}

async fn wait_ready(client: &reqwest::Client, server: &Server) {
    wait_ready_at(client, &server.base, &server.token).await;
}

/// Polls the `bench` tenant at `base` until it is ready (10 s at most).
async fn wait_ready_at(client: &reqwest::Client, base: &str, token: &str) {
    for _ in 0..200 {
        let t = client
            .get(format!("{base}/v1/tenants/bench"))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        let t: Value = t.json().await.unwrap_or_default();
        if t["status"] == "ready" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bench tenant never became ready");
}

/// `lakeplane-bench sharing`: the Delta Sharing `query` on a table of `FILES` (1,000) live
/// files: response time (sequential, `ROUNDS` queries) and size. Baseline in the same run: the
/// same snapshot read in this process with `deltalake` (open the table, list its files), the
/// floor under what the server adds (recipient lookup, signing every URL, the JSON lines).
async fn sharing() {
    use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray};
    use deltalake::arrow::datatypes::{DataType, Field, Schema};
    let files = env_or("FILES", 1000) as i64;
    let rounds = env_or("ROUNDS", 50) as usize;
    let server = start_server().await;
    let client = reqwest::Client::new();
    let tenant = json!({"id": "bench", "display_name": "Bench", "tier": "standard"});
    call(&client, &server, reqwest::Method::POST, "/v1/tenants", tenant).await;
    wait_ready(&client, &server).await;
    let table = json!({"zone": "gold", "name": "wide", "partition_by": ["part"], "columns": [
        {"name": "id", "type": "long", "nullable": false},
        {"name": "part", "type": "long"},
        {"name": "value", "type": "string"}
    ]});
    let created = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/tables",
        table,
    )
    .await;
    let location = created["location"].as_str().expect("location").to_owned();
    // One commit of `files` partitions, one file each: the shape a query must list.
    let rows = files * 20;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("part", DataType::Int64, true),
        Field::new("value", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % files))),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| format!("value-{i:08}")),
            )),
        ],
    )
    .expect("batch");
    let settings = lake_manager::delta::DeltaSettings::local();
    lake_manager::delta::tables::append(&settings, &location, vec![batch])
        .await
        .expect("append");
    let share = json!({"name": "bench", "tables": [{"zone": "gold", "name": "wide"}]});
    call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/shares",
        share,
    )
    .await;
    let recipient = json!({"name": "reader", "ttl_seconds": 3600});
    let issued = call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/shares/bench/recipients",
        recipient,
    )
    .await;
    let token = issued["profile"]["bearerToken"]
        .as_str()
        .expect("token")
        .to_owned();
    let url = format!(
        "{}/delta-sharing/shares/bench/schemas/gold/tables/wide/query",
        server.base
    );
    let mut times = Vec::with_capacity(rounds);
    let mut size = 0;
    let mut lines = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let answer = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .expect("query");
        assert!(answer.status().is_success(), "query: {}", answer.status());
        let body = answer.bytes().await.expect("body");
        times.push(started.elapsed());
        size = body.len();
        lines = body.iter().filter(|b| **b == b'\n').count();
    }
    times.sort_unstable();
    let mut baseline = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let snapshot =
            lake_manager::sharing::snapshot(&settings, &location, lake_manager::sharing::At::Latest, true)
                .await
                .expect("snapshot");
        assert_eq!(snapshot.files.len() as i64, files);
        baseline.push(started.elapsed());
    }
    baseline.sort_unstable();
    println!(
        "sharing query, {files} files ({lines} lines, {size} bytes, {:.0} bytes per file): p50 {:?}, p99 {:?} over {rounds} queries",
        size as f64 / files as f64,
        percentile(&times, 0.50),
        percentile(&times, 0.99),
    );
    println!(
        "baseline, deltalake snapshot with files in process: p50 {:?}, p99 {:?}",
        percentile(&baseline, 0.50),
        percentile(&baseline, 0.99),
    );
    drop(server);
}

/// `lakeplane-bench unity`: `GET /api/2.1/unity-catalog/tables/{full_name}` open loop at
/// `RATE` (1,000/s) for `SECONDS`, against `GET /v1/tenants/{id}` at the same rate in the same
/// run (token verification, revocation check, one database read). The table has 20 columns and
/// 50 commits, so a lookup that reopened the Delta log each time would show.
async fn unity() {
    let rate = env_or("RATE", 1000);
    let seconds = env_or("SECONDS", 15);
    let server = start_server().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let columns: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("c{i}"), "type": if i % 2 == 0 { "long" } else { "string" }}))
        .collect();
    let table = json!({"zone": "bronze", "name": "orders", "columns": columns});
    enterprise_tenant_with(&client, &server, table).await;
    let stream =
        json!({"name": "orders", "table": {"zone": "bronze", "name": "orders"}, "source": {"type": "http"}});
    call(
        &client,
        &server,
        reqwest::Method::POST,
        "/v1/tenants/bench/streams",
        stream,
    )
    .await;
    for i in 0..50 {
        let event = json!([{"c0": i, "c1": "x"}]);
        call(
            &client,
            &server,
            reqwest::Method::POST,
            "/v1/tenants/bench/streams/orders/events",
            event,
        )
        .await;
    }
    let drive = |url: String, seconds: u64| {
        let (client, token) = (&client, &server.token);
        open_loop::drive(rate, seconds, move |_| client.get(&url).bearer_auth(token))
    };
    let table_url = format!("{}/api/2.1/unity-catalog/tables/bench.bronze.orders", server.base);
    drive(table_url.clone(), 1).await;
    let read = drive(format!("{}/v1/tenants/bench", server.base), seconds).await;
    let lookup = drive(table_url, seconds).await;
    println!("| request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", read.row("GET /v1/tenants/{id} (baseline)", rate));
    println!(
        "{}",
        lookup.row("GET /api/2.1/unity-catalog/tables/{full_name}", rate)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("http") => http().await,
        Some("bare") => {
            let (events, elapsed) = bare_loop_counted(env_or("BATCH", 5000), env_or("SECONDS", 5) as f64);
            println!(
                "bare loop: {events} events in {elapsed:.3} s, {:.0} events/s",
                events as f64 / elapsed
            );
        }
        Some("kafka") => kafka(args.get(2).cloned().unwrap_or_else(|| "127.0.0.1:19092".into())).await,
        Some("reconcile") => reconcile::reconcile().await,
        Some("scheduler") => scheduler::scheduler().await,
        Some("sharing") => sharing().await,
        Some("unity") => unity().await,
        Some("erasure") => erasure::erasure().await,
        Some("floor") => floor::floor().await,
        Some("console") => console::console().await,
        Some("streams") => streams::streams().await,
        Some("pipeline") => pipeline::pipeline().await,
        Some("bare-axum") => floor::bare_axum().await,
        Some("credentials") => {
            credentials(
                args.get(2)
                    .cloned()
                    .unwrap_or_else(|| "http://127.0.0.1:5055".into()),
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: lakeplane-bench http | bare | kafka [BOOTSTRAP] | reconcile | scheduler | credentials [S3_ENDPOINT] | sharing | unity | erasure | floor | pipeline | console"
            );
            std::process::exit(2);
        }
    }
}
