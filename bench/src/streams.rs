//! `lakeplane-bench streams`: what a stream list costs now that each stream carries its ingest
//! rate, read back from its table's Delta log.
//!
//! `lakeplane serve` on the embedded default (SQLite, a local lake). One tenant gets `STREAMS`
//! (50) HTTP streams, each on a bronze table of its own (the costly case: one log reading per
//! stream). While a pusher commits `PUSHES` (100) small pushes a second spread over the streams,
//! so every reading finds new commits to read, `GET .../streams?limit=50` is loaded open loop
//! at `RATE` (20/s) for `SECONDS` (10). The first list, with no reading kept yet, is timed
//! alone. Baselines in the same run, at the same rate and under the same pushes:
//! `GET .../tables?limit=50` (one page of the tenant's tables from the store) and
//! `GET /v1/tenants/{id}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use bench::{open_loop, serve};

use crate::env_or;

pub async fn streams() {
    let streams = env_or("STREAMS", 50) as usize;
    let pushes = env_or("PUSHES", 100);
    let rate = env_or("RATE", 20);
    let seconds = env_or("SECONDS", 10);
    let dir = tempfile::tempdir().expect("dir");
    let bin = serve::lakeplane_bin();
    let env = [
        // The limiters run on every request but never refuse one.
        ("LAKEPLANE__RATE_LIMIT__PER_SECOND", "1000000"),
        ("LAKEPLANE__RATE_LIMIT__BURST", "1000000"),
    ];
    let admin = serve::token_with(&bin, dir.path(), "bench", &env);
    let (server, base) = serve::serve(&bin, dir.path(), &env).await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let answer = request.send().await.expect("send");
            let status = answer.status();
            let text = answer.text().await.expect("body");
            assert!(status.is_success(), "{status}: {text}");
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or_default()
        }
    };
    let quota = u32::try_from(streams).unwrap_or(u32::MAX);
    call(
        reqwest::Method::POST,
        "/v1/tenants",
        Some(json!({"id": "bench", "display_name": "Bench", "tier": "standard",
                    "quotas": {"max_streams": quota, "max_tables": quota * 2 + 10}})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while call(reqwest::Method::GET, "/v1/tenants/bench", None).await["status"] != "ready" {
        assert!(Instant::now() < deadline, "the tenant never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..streams {
        let table = json!({"zone": "bronze", "name": format!("t{i:03}"),
            "columns": [{"name": "id", "type": "long"}, {"name": "note", "type": "string"}]});
        call(reqwest::Method::POST, "/v1/tenants/bench/tables", Some(table)).await;
        let stream = json!({"name": format!("s{i:03}"), "table": {"zone": "bronze", "name": format!("t{i:03}")},
            "source": {"type": "http"}});
        call(reqwest::Method::POST, "/v1/tenants/bench/streams", Some(stream)).await;
    }
    let push = |i: usize| push_event(&client, &base, &admin, i, streams);
    let first_push = Instant::now();
    for i in 0..streams * 3 {
        assert!(push(i).send().await.expect("push").status().is_success());
    }

    let list = format!("{base}/v1/tenants/bench/streams?limit=50");
    let started = Instant::now();
    let first = client.get(&list).bearer_auth(&admin).send().await.expect("list");
    let cold = started.elapsed();
    let first: serde_json::Value = first.json().await.expect("json");
    let rated = first["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|s| s["ingest_rate"]["rows"].as_u64() == Some(3))
        .count();
    assert_eq!(rated, streams.min(50), "every listed stream shows its 3 rows");

    // The pusher: `pushes` a second, round robin over the streams, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let pushing_since = first_push;
    let pusher = {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        let push_client = client.clone();
        let (base, admin) = (base.clone(), admin.clone());
        tokio::spawn(async move {
            let interval = Duration::from_nanos(1_000_000_000 / pushes.max(1));
            let mut i = 0usize;
            let mut tick = tokio::time::interval(interval);
            let mut sent = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                let request = push_event(&push_client, &base, &admin, i, streams);
                let acknowledged = acknowledged.clone();
                sent.push(tokio::spawn(async move {
                    if request.send().await.is_ok_and(|r| r.status().is_success()) {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                }));
                i += 1;
            }
            // Every push answered before the last reading.
            for push in sent {
                let _ = push.await;
            }
        })
    };
    println!("| request | rate | requests | errors | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| `GET .../streams?limit=50`, the first (no reading kept) | 1 | 1 | 0 | {:.2} ms | | |",
        cold.as_secs_f64() * 1e3
    );
    let runs = [
        ("`GET .../streams?limit=50`", list.clone()),
        (
            "`GET .../tables?limit=50` (baseline)",
            format!("{base}/v1/tenants/bench/tables?limit=50"),
        ),
        (
            "`GET /v1/tenants/{id}` (baseline)",
            format!("{base}/v1/tenants/bench"),
        ),
    ];
    for (what, url) in runs {
        let (client, admin) = (client.clone(), admin.clone());
        let report = open_loop::drive(rate, seconds, move |_| client.get(&url).bearer_auth(&admin)).await;
        println!("{}", report.row(what, rate));
    }
    stop.store(true, Ordering::SeqCst);
    pusher.await.expect("pusher");
    let last: serde_json::Value = client
        .get(&list)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let per_second: f64 = last["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["ingest_rate"]["rows_per_second"].as_f64())
        .sum();
    // Every push was acknowledged within the last minute if the run took less: then the rates'
    // sum must be exactly what was acknowledged (the first three per stream included), over 60 s.
    let pushed = acknowledged.load(Ordering::SeqCst) + streams as u64 * 3;
    println!(
        "\n{streams} streams on {streams} tables, {pushes} pushes/s of one event; {pushed} acknowledged in {:.1} s \
         ({:.1} rows/s over the 60 s window); the listed streams' rates sum to {per_second:.1} rows/s",
        pushing_since.elapsed().as_secs_f64(),
        pushed as f64 / 60.0
    );
    drop(server);
}

/// The `i`-th push: one event to stream `i mod streams`.
fn push_event(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    i: usize,
    streams: usize,
) -> reqwest::RequestBuilder {
    client
        .post(format!(
            "{base}/v1/tenants/bench/streams/s{:03}/events",
            i % streams
        ))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(format!("{{\"id\": {i}, \"note\": \"bench\"}}\n"))
}
