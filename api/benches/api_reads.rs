//! Tenant-read latency at a fixed request rate (DESIGN.md budget: p99 ≤ 5 ms at 2k req/s).
//!
//! Starts the real `lakeplane serve` (release build) on a temporary embedded default, creates
//! 100 tenants, then drives `GET /v1/tenants/{id}` open-loop at the target rate from this
//! process and reports latency percentiles measured from each request's scheduled start (so a
//! stalled server cannot hide queueing). The baseline, measured in the same run at the same
//! rate, is `GET /healthz`: no auth, no database, the HTTP stack alone.
//!
//! Run: `cargo bench -p api --bench api_reads` (env `RATE`, `SECONDS` override 2000 and 10).

use bench::open_loop;
use bench::serve as support;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rate = env_or("RATE", 2000);
    let seconds = env_or("SECONDS", 10);
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_lakeplane"));
    // Four callers at a quarter of the rate each, inside the default 1000/s per-principal limit.
    let tokens: Vec<String> = (0..4)
        .map(|i| support::token(bin, dir.path(), &format!("bench-{i}")))
        .collect();
    let token = tokens[0].clone();
    let (mut server, base) = support::serve(bin, dir.path(), &[]).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .expect("client");
    let mut tenant_urls = Vec::new();
    for i in 0..100 {
        let id = format!("bench-{i:03}");
        let body = serde_json::json!({"id": id, "display_name": "Bench", "tier": "standard"});
        let created = client
            .post(format!("{base}/v1/tenants"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(created.status(), 201);
        tenant_urls.push(format!("{base}/v1/tenants/{id}"));
    }
    let drive = |urls: Vec<String>, seconds: u64| {
        let (client, tokens) = (&client, &tokens);
        open_loop::drive(rate, seconds, move |i| {
            client
                .get(&urls[i % urls.len()])
                .bearer_auth(&tokens[i % tokens.len()])
        })
    };
    // Warm the connection pool and caches.
    drive(tenant_urls.clone(), 1).await;
    let health = drive(vec![format!("{base}/healthz")], seconds).await;
    let tenants = drive(tenant_urls, seconds).await;
    println!("| request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", health.row("GET /healthz (baseline)", rate));
    println!("{}", tenants.row("GET /v1/tenants/{id}", rate));
    let _ = server.start_kill();
}
