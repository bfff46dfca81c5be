//! Prometheus metrics: HTTP traffic by matched route, latency, and metadata pool occupancy.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tenancy::store::PoolStats;

/// The media type of the exposition format written by [`Metrics::render`].
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    stream: String,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    state: &'static str,
}

/// Ingestion state sampled at scrape time.
#[derive(Debug, Default)]
pub struct IngestSample {
    /// Bytes waiting in group-commit buffers.
    pub buffered_bytes: usize,
    /// Kafka lag per (stream id, partition).
    pub lags: Vec<(String, i32, i64)>,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The process's metrics registry and the handles that update it.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
    ingest_buffered: Gauge,
    stream_lag: Family<LagLabels, Gauge>,
    workers: Family<WorkerLabels, Gauge>,
    worker_restarts: Family<KindLabels, Gauge>,
    reconcile_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    reconcile_loops: Gauge,
    leader: Gauge,
    migrations: Family<PhaseLabels, Gauge>,
    migration_objects: Family<ObjectLabels, Gauge>,
    unattributed: Family<ReasonLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~32 s in doublings: covers cached reads and slow maintenance calls alike.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every Lakeplane metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lakeplane");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by matched route, method and status",
            requests.clone(),
        );
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by matched route and method",
            latency.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Metadata database connections by state (idle, in_use)",
            pool_connections.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Configured metadata pool size",
            pool_max.clone(),
        );
        let ingest_buffered = Gauge::default();
        registry.register(
            "ingest_buffered_bytes",
            "Bytes of pushed events waiting for their group commit",
            ingest_buffered.clone(),
        );
        let stream_lag = Family::<LagLabels, Gauge>::default();
        registry.register(
            "stream_lag_records",
            "Kafka lag per stream and partition: high watermark minus the next offset to write",
            stream_lag.clone(),
        );
        let workers = Family::<WorkerLabels, Gauge>::default();
        registry.register(
            "workers",
            "Recorded workers by kind and state (reported by the leader)",
            workers.clone(),
        );
        let worker_restarts = Family::<KindLabels, Gauge>::default();
        registry.register(
            "worker_restarts",
            "Restarts of the recorded workers, summed by kind (reported by the leader)",
            worker_restarts.clone(),
        );
        let reconcile_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "reconcile_duration_seconds",
            "Duration of the last reconcile loop (read, desired set, diff, steps)",
            reconcile_seconds.clone(),
        );
        let reconcile_loops = Gauge::default();
        registry.register(
            "reconcile_loops",
            "Reconcile loops this process has run as leader",
            reconcile_loops.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "reconcile_leader",
            "1 when this process holds the reconciler leadership",
            leader.clone(),
        );
        let migrations = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "placement_migrations",
            "Placement migrations by phase (draining: waiting for commits under way; copying; cleanup), as the leader saw them",
            migrations.clone(),
        );
        let migration_objects = Family::<ObjectLabels, Gauge>::default();
        registry.register(
            "placement_migration_objects",
            "Objects of the migrations copying now: listed (total) and copied and verified (copied)",
            migration_objects.clone(),
        );
        let unattributed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "unattributed_requests",
            "Requests no one answers for, rolled up in the audit log rather than written one by \
             one, by reason (unauthenticated, revoked, rate_limited, unrouted, method_not_allowed)",
            unattributed.clone(),
        );
        Self {
            migrations,
            migration_objects,
            unattributed,
            workers,
            worker_restarts,
            reconcile_seconds,
            reconcile_loops,
            leader,
            registry,
            requests,
            latency,
            pool_connections,
            pool_max,
            ingest_buffered,
            stream_lag,
        }
    }

    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one request rolled up rather than audited on its own.
    pub fn count_unattributed(&self, reason: &'static str) {
        self.unattributed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Writes the exposition text, sampling the pool, ingestion and worker gauges first.
    pub fn render(
        &self,
        pool: PoolStats,
        ingest: &IngestSample,
        workers: &lake_manager::workers::reconciler::ReconcileReport,
    ) -> String {
        self.workers.clear();
        for ((kind, state), n) in &workers.by_kind_state {
            self.workers
                .get_or_create(&WorkerLabels {
                    kind: kind.as_str(),
                    state: state.as_str(),
                })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.worker_restarts.clear();
        for (kind, n) in &workers.restarts {
            self.worker_restarts
                .get_or_create(&KindLabels { kind: kind.as_str() })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        self.reconcile_seconds.set(workers.last_duration.as_secs_f64());
        self.reconcile_loops
            .set(i64::try_from(workers.loops).unwrap_or(i64::MAX));
        self.leader.set(i64::from(workers.leading));
        // Rebuilt each scrape, so a finished migration's phase disappears.
        self.migrations.clear();
        for (phase, n) in &workers.migrations {
            self.migrations
                .get_or_create(&PhaseLabels { phase })
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        let (copied, total) = workers.migration_objects;
        for (state, n) in [("copied", copied), ("total", total)] {
            self.migration_objects
                .get_or_create(&ObjectLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.ingest_buffered
            .set(i64::try_from(ingest.buffered_bytes).unwrap_or(i64::MAX));
        // Rebuilt each scrape, so a deleted stream's series disappear.
        self.stream_lag.clear();
        for (stream, partition, lag) in &ingest.lags {
            self.stream_lag
                .get_or_create(&LagLabels {
                    stream: stream.clone(),
                    partition: *partition,
                })
                .set(*lag);
        }
        let in_use = pool.open.saturating_sub(pool.idle);
        self.pool_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(i64::from(pool.idle));
        self.pool_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(in_use));
        self.pool_max.set(i64::from(pool.max));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Clients may send any method token; only standard ones become label values, so the
/// series count stays bounded.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware recording every request. Unmatched paths share one label for the same reason.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_latency_and_pool() {
        let metrics = Metrics::new();
        metrics.observe("/v1/info", &Method::GET, 200, 0.003);
        metrics.observe("/v1/info", &Method::GET, 200, 0.004);
        metrics.observe(
            "unmatched",
            &Method::from_bytes(b"FROB").expect("token"),
            404,
            0.001,
        );
        let ingest = IngestSample {
            buffered_bytes: 512,
            lags: vec![("s1".into(), 2, 40)],
        };
        use tenancy::worker::{WorkerKind, WorkerState};
        let workers = lake_manager::workers::reconciler::ReconcileReport {
            leading: true,
            loops: 3,
            last_duration: std::time::Duration::from_millis(250),
            by_kind_state: [((WorkerKind::Ingest, WorkerState::Failed), 2)].into(),
            restarts: [(WorkerKind::Ingest, 7)].into(),
            migrations: [("copying", 1)].into(),
            migration_objects: (40, 100),
            schedule_passes: 1,
        };
        let text = metrics.render(
            PoolStats {
                open: 3,
                idle: 1,
                max: 10,
            },
            &ingest,
            &workers,
        );
        assert!(text.contains("lakeplane_ingest_buffered_bytes 512"), "{text}");
        assert!(
            text.contains(r#"lakeplane_workers{kind="ingest",state="failed"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lakeplane_worker_restarts{kind="ingest"} 7"#),
            "{text}"
        );
        assert!(
            text.contains("lakeplane_reconcile_duration_seconds 0.25"),
            "{text}"
        );
        assert!(text.contains("lakeplane_reconcile_leader 1"), "{text}");
        assert!(
            text.contains(r#"lakeplane_placement_migrations{phase="copying"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lakeplane_placement_migration_objects{state="copied"} 40"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lakeplane_stream_lag_records{stream="s1",partition="2"} 40"#),
            "{text}"
        );
        let later = metrics.render(
            PoolStats {
                open: 3,
                idle: 1,
                max: 10,
            },
            &IngestSample::default(),
            &Default::default(),
        );
        assert!(
            !later.contains("stream=\"s1\""),
            "a stopped stream's lag disappears: {later}"
        );
        assert!(
            text.contains(r#"lakeplane_http_requests_total{route="/v1/info",method="GET",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"lakeplane_http_requests_total{route="unmatched",method="OTHER",status="404"} 1"#
            )
        );
        assert!(
            text.contains(
                r#"lakeplane_http_request_duration_seconds_count{route="/v1/info",method="GET"} 2"#
            )
        );
        assert!(text.contains(r#"lakeplane_db_pool_connections{state="in_use"} 2"#));
        assert!(text.contains("lakeplane_db_pool_max_connections 10"));
    }
}
