//! Tenant-read latency at a fixed request rate (DESIGN.md budget: p99 ≤ 5 ms at 2k req/s).
//!
//! Starts the real `lakeplane serve` (release build) on a temporary embedded default, creates
//! 100 tenants, then drives `GET /v1/tenants/{id}` open-loop at the target rate from this
//! process and reports latency percentiles measured from each request's scheduled start (so a
//! stalled server cannot hide queueing). The baseline, measured in the same run at the same
//! rate, is `GET /healthz`: no auth, no database, the HTTP stack alone.
//!
//! Run: `cargo bench -p api --bench api_reads` (env `RATE`, `SECONDS` override 2000 and 10).

use std::time::{Duration, Instant};

#[path = "support/serve.rs"]
mod support;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Report {
    sent: usize,
    errors: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn drive(
    client: &reqwest::Client,
    urls: &[String],
    tokens: &[String],
    rate: u64,
    seconds: u64,
) -> Report {
    let total = (rate * seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let request = client
            .get(&urls[i % urls.len()])
            .bearer_auth(&tokens[i % tokens.len()])
            .send();
        tasks.push(tokio::spawn(async move {
            let ok = matches!(request.await, Ok(r) if r.status().is_success());
            (scheduled.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok((latency, true)) => latencies.push(latency),
            _ => errors += 1,
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Report {
        sent: total,
        errors,
        p50: at(0.50),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
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
    // Warm the connection pool and caches.
    drive(&client, &tenant_urls, &tokens, rate, 1).await;
    let health = drive(&client, &[format!("{base}/healthz")], &tokens, rate, seconds).await;
    let tenants = drive(&client, &tenant_urls, &tokens, rate, seconds).await;
    println!("| request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [
        ("GET /healthz (baseline)", &health),
        ("GET /v1/tenants/{id}", &tenants),
    ] {
        println!(
            "| {name} | {rate}/s | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            r.sent,
            r.errors,
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.max.as_secs_f64() * 1e3
        );
    }
    let _ = server.start_kill();
}
