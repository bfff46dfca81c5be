//! `lakeplane-bench floor`: the authenticated API floor, closed loop.
//!
//! `CONNECTIONS` (32) clients each send their next request as soon as the previous one is
//! answered, for `SECONDS` (10) after a one-second warm-up, on the same machine as the server.
//! Measured in one run:
//! - the baseline: a bare axum handler in a child process (`lakeplane-bench bare-axum`) that
//!   answers the same JSON document the plane answers, serialized on every request;
//! - `GET /healthz` on the plane: its HTTP stack, no authentication, no database;
//! - `GET /v1/tenants/{id}` on the plane with a tenant-admin token: token verification, the
//!   revocation check, both rate limiters (raised so they never refuse), the tenant read;
//!
//! on SQLite (the embedded default) and on PostgreSQL (a fresh database, dropped after). One
//! token and one tenant: the plane's caches (verified token, tenant read) hit, as they do for
//! a client that reuses its token. Both binaries use the system allocator (the server's default).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenancy::store::testing::TestDatabase;
use tenancy::store::{Backend, DatabaseUrl};
use tokio::io::{AsyncBufReadExt, BufReader};

use bench::open_loop::quantile;

use crate::{env_or, serve};

/// One closed-loop run.
struct Closed {
    requests: usize,
    errors: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
}

impl Closed {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// `connections` clients loop on `GET url` for `seconds` after a one-second warm-up.
async fn closed_loop(url: &str, token: Option<&str>, connections: u64, seconds: u64) -> Closed {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize * 2)
        .build()
        .expect("client");
    let warm_until = Instant::now() + Duration::from_secs(1);
    let until = warm_until + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, token) = (client.clone(), url.to_owned(), token.map(str::to_owned));
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                loop {
                    let started = Instant::now();
                    if started >= until {
                        break;
                    }
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let ok = match request.send().await {
                        Ok(answer) => answer.status().is_success() && answer.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if started < warm_until {
                        continue;
                    }
                    if ok {
                        latencies.push(started.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mine, failed) = task.await.expect("client task");
        latencies.extend(mine);
        errors += failed;
    }
    latencies.sort_unstable();
    let at = |q: f64| quantile(&latencies, q);
    Closed {
        requests: latencies.len(),
        errors,
        seconds: seconds as f64,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// `lakeplane-bench bare-axum`: serves `BODY` (a JSON document) as `GET /` until killed,
/// printing its address first.
pub async fn bare_axum() {
    let body: Value =
        serde_json::from_str(&std::env::var("BODY").unwrap_or_else(|_| "{}".into())).expect("BODY is JSON");
    let body = std::sync::Arc::new(body);
    // Serialized on every request, as the plane's handler does, from a shared document.
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&*body).expect("serialize"),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("{}", listener.local_addr().expect("addr"));
    axum::serve(listener, app).await.expect("serve");
}

/// Starts `lakeplane-bench bare-axum` answering `body`; returns it and its URL.
async fn start_bare(body: &Value) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("bare-axum")
        .env("BODY", body.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("bare-axum");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = lines
        .next_line()
        .await
        .expect("read")
        .expect("bare-axum printed its address");
    (child, format!("http://{addr}/"))
}

/// The plane on `database` (`None`: the embedded default), with tenant `bench` and a
/// tenant-admin token for it.
async fn start_plane(
    database: Option<&DatabaseUrl>,
) -> (tokio::process::Child, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = serve::lakeplane_bin();
    let url = database.map(|u| u.expose().to_owned());
    let mut env = vec![
        // Raised so the limiters run on every request but never refuse one.
        ("LAKEPLANE__RATE_LIMIT__PER_SECOND", "1000000"),
        ("LAKEPLANE__RATE_LIMIT__BURST", "1000000"),
        ("LAKEPLANE__RATE_LIMIT__STANDARD_TENANT_PER_SECOND", "1000000"),
        ("LAKEPLANE__RATE_LIMIT__ENTERPRISE_TENANT_PER_SECOND", "1000000"),
    ];
    if let Some(url) = &url {
        env.push(("LAKEPLANE__DATABASE__URL", url.as_str()));
    }
    let admin = serve::token_with(&bin, dir.path(), "bench", &env);
    let (child, base) = serve::serve(&bin, dir.path(), &env).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let created = post(
        "/v1/tenants",
        json!({"id": "bench", "display_name": "Bench", "tier": "standard"}),
    )
    .await
    .expect("create tenant");
    assert!(
        created.status().is_success(),
        "create tenant: {} {}",
        created.status(),
        created.text().await.unwrap_or_default()
    );
    // Provisioning finishes in the background: the tenant must be ready before it is read.
    crate::wait_ready_at(&client, &base, &admin).await;
    let issued = post(
        "/v1/tenants/bench/tokens",
        json!({"subject": "floor", "role": "tenant-admin", "ttl_seconds": 3600}),
    )
    .await
    .expect("issue token");
    assert!(issued.status().is_success(), "issue token: {}", issued.status());
    let token = issued.json::<Value>().await.expect("token")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    (child, base, token, dir)
}

pub async fn floor() {
    let connections = env_or("CONNECTIONS", 32);
    let seconds = env_or("SECONDS", 10);
    println!("| backend | request | connections | requests/s | p50 | p99 | errors | ratio to bare axum |");
    println!("|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::new(Backend::Postgres).await),
        };
        let (plane, base, token, _dir) = start_plane(database.as_ref().map(|d| &d.url)).await;
        let tenant_url = format!("{base}/v1/tenants/bench");
        let body: Value = reqwest::Client::new()
            .get(&tenant_url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        // The baseline runs alone, then the plane, in the same run of this command.
        let (bare, bare_url) = start_bare(&body).await;
        let baseline = closed_loop(&bare_url, None, connections, seconds).await;
        drop(bare);
        let health = closed_loop(&format!("{base}/healthz"), None, connections, seconds).await;
        let read = closed_loop(&tenant_url, Some(&token), connections, seconds).await;
        for run in [&baseline, &health, &read] {
            assert_eq!(run.errors, 0, "a run with errors measures nothing");
        }
        let name = backend.as_str();
        for (what, run) in [
            ("bare axum JSON handler (baseline)", &baseline),
            ("`GET /healthz`", &health),
            ("`GET /v1/tenants/{id}`, tenant-admin token", &read),
        ] {
            println!(
                "| {name} | {what} | {connections} | {:.0} | {:.2} ms | {:.2} ms | {} | {:.3} |",
                run.rps(),
                ms(run.p50),
                ms(run.p99),
                run.errors,
                run.rps() / baseline.rps()
            );
        }
        drop(plane);
        if let Some(database) = database {
            database.drop_database().await;
        }
    }
}
