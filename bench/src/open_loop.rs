//! Open-loop load at a fixed rate, shared by `api/benches/api_reads.rs` and
//! `lakeplane-bench`: each request is timed from its scheduled start, so a stalled
//! server cannot hide queueing behind a slower client.

use std::time::{Duration, Instant};

/// Latencies of one run.
pub struct Report {
    pub sent: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Report {
    /// A README table row: `| name | rate | requests | errors | p50 | p99 | max |`.
    pub fn row(&self, name: &str, rate: u64) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "| {name} | {rate}/s | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            self.sent,
            self.errors,
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// The `q` quantile (0 to 1) of sorted latencies; zero when there are none.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Sends `rate × seconds` requests, the i-th built by `request(i)` and sent at its slot
/// whether or not earlier ones were answered; a non-2xx answer counts as an error.
///
/// The slots are kept by a thread of their own rather than by tokio's timer: the timer wheel
/// has a 1 ms resolution and rounds a deadline up, so at 1,000/s each request would leave up to
/// a millisecond after its slot and that lateness would be charged to the server. Latency still
/// counts from the slot, so a generator that falls behind shows in the figures.
pub async fn drive(rate: u64, seconds: u64, request: impl Fn(usize) -> reqwest::RequestBuilder) -> Report {
    let total = (rate * seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let (slots, mut due) = tokio::sync::mpsc::unbounded_channel();
    let pacer = std::thread::spawn(move || {
        for i in 0..total {
            let scheduled = start + interval * i as u32;
            std::thread::sleep(scheduled.saturating_duration_since(Instant::now()));
            if slots.send((i, scheduled)).is_err() {
                return;
            }
        }
    });
    let mut tasks = Vec::with_capacity(total);
    while let Some((i, scheduled)) = due.recv().await {
        let sent = request(i).send();
        tasks.push(tokio::spawn(async move {
            let ok = matches!(sent.await, Ok(r) if r.status().is_success());
            (scheduled.elapsed(), ok)
        }));
    }
    // The channel closed, so the pacer has returned; slots it did not send (had it panicked)
    // count as errors.
    let _ = pacer.join();
    let mut errors = total - tasks.len();
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        match task.await {
            Ok((latency, true)) => latencies.push(latency),
            _ => errors += 1,
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| quantile(&latencies, q);
    Report {
        sent: total,
        errors,
        p50: at(0.50),
        p99: at(0.99),
        max: latencies.last().copied().unwrap_or_default(),
    }
}
