//! `lakeplane-bench reconcile`: the reconcile loop at scale, on SQLite (a temporary file) and
//! on PostgreSQL (a fresh database from `LAKEPLANE_TEST_POSTGRES_URL`, dropped after).
//!
//! Tenants are database rows, each with one Kafka stream and three tables, and every table
//! has a queued maintenance run (the worst case: everything is due). Every desired worker is
//! recorded as running, so the diff walks all of them. One loop is what the leader computes
//! each time before its steps (`reconciler::plan`): read the recorded workers' summaries, read
//! the inputs as ids, compute the desired set, diff and cap. Steps are zero in step, so no
//! launcher time is included. Reports the median of 5 loops and the process's RSS growth
//! during them.
//!
//! Env: `TENANTS`, comma-separated sizes (default `1000,5000,10000`); a debug build runs it
//! with small ones, e.g. `TENANTS=20,50`. `PHASE_LOOPS` (default 5): how many times the three
//! phases are timed apart, more to profile them.

use std::time::Instant;

use serde_json::json;
use tenancy::store::{Backend, MetadataStore};

use crate::fixture::{fresh_store, ready_tenant};
use crate::rss_kib;

/// The sizes to run, from `TENANTS`.
fn sizes() -> Vec<usize> {
    let raw = std::env::var("TENANTS").unwrap_or_else(|_| "1000,5000,10000".into());
    let sizes: Vec<usize> = raw.split(',').filter_map(|n| n.trim().parse().ok()).collect();
    assert!(
        !sizes.is_empty(),
        "TENANTS is a comma-separated list of counts: {raw:?}"
    );
    sizes
}

pub async fn reconcile() {
    println!(
        "| metadata | tenants | desired workers | one loop (plan: read workers and inputs, desired, diff), median of 5 | of which: read workers / read inputs / desired and diff, median of 5 | process RSS after the loops (growth during them) |"
    );
    println!("|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (store, database) = fresh_store(backend).await;
        let mut have = 0;
        for tenants in sizes() {
            add_tenants(store.as_ref(), have, tenants).await;
            have = have.max(tenants);
            all_due_and_running(store.as_ref()).await;
            let rss_before = rss_kib();
            let mut times = Vec::new();
            let mut workers = 0;
            for _ in 0..5 {
                let started = Instant::now();
                let (want, steps) = reconcile_once(store.as_ref()).await;
                times.push(started.elapsed());
                workers = want;
                assert_eq!(steps, 0, "in step: nothing to do");
            }
            times.sort_unstable();
            let rss = rss_kib();
            let mut phases: [Vec<f64>; 3] = Default::default();
            for _ in 0..env_loops() {
                for (all, took) in phases.iter_mut().zip(phases_once(store.as_ref()).await) {
                    all.push(took.as_secs_f64() * 1e3);
                }
            }
            let [workers_ms, inputs_ms, compute_ms] = phases.map(|mut p| {
                p.sort_unstable_by(f64::total_cmp);
                p[2]
            });
            println!(
                "| {} | {tenants} | {workers} | {:.0} ms | {workers_ms:.0} / {inputs_ms:.0} / {compute_ms:.0} ms | {} MiB (+{:.1} MiB) |",
                backend.as_str(),
                times[2].as_secs_f64() * 1e3,
                rss / 1024,
                rss.saturating_sub(rss_before) as f64 / 1024.0
            );
        }
        store.close().await;
        database.drop_database().await;
    }
}

/// One loop's computation as the leader does it (`reconciler::plan`). Returns (desired,
/// steps).
async fn reconcile_once(store: &dyn MetadataStore) -> (usize, usize) {
    // No per-tenant cap: every run is already running, so the cap holds nothing back anyway.
    let plan =
        lake_manager::workers::reconciler::plan(store, &in_step_policy(), usize::MAX, chrono::Utc::now())
            .await
            .expect("plan");
    (plan.want.len(), plan.steps.len())
}

/// The restart policy of the bench's loops. Heartbeats are written once at setup, so staleness
/// is switched off: the diff still walks every worker, as a leader in step does.
fn in_step_policy() -> tenancy::worker::RestartPolicy {
    tenancy::worker::RestartPolicy {
        heartbeat_timeout: std::time::Duration::from_secs(86_400),
        ..tenancy::worker::RestartPolicy::default()
    }
}

/// How many times the phases are timed: `PHASE_LOOPS`, default 5 (more, to profile them).
fn env_loops() -> usize {
    std::env::var("PHASE_LOOPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(5)
}

/// The same loop in its three phases, each timed: reading the recorded workers' summaries,
/// reading the inputs, and the pure part (`reconciler::decide`: desired set, diff, cap). Run
/// after the RSS reading, so the figure above stays the whole loop's.
async fn phases_once(store: &dyn MetadataStore) -> [std::time::Duration; 3] {
    use lake_manager::workers::reconciler::{decide, read_inputs, read_workers};
    let started = Instant::now();
    let rows = read_workers(store).await.expect("workers");
    let read_workers_took = started.elapsed();
    let started = Instant::now();
    let inputs = read_inputs(store).await.expect("inputs");
    let read_inputs_took = started.elapsed();
    let started = Instant::now();
    let plan = decide(rows, &inputs, &in_step_policy(), usize::MAX, chrono::Utc::now());
    assert!(plan.steps.is_empty(), "in step: nothing to do");
    [read_workers_took, read_inputs_took, started.elapsed()]
}

/// Adds tenants `from..to`, each with one Kafka stream and three tables, as database rows.
async fn add_tenants(store: &dyn MetadataStore, from: usize, to: usize) {
    use tenancy::audit::{AuditEvent, Outcome};
    use tenancy::store::{StreamRecord, TableRecord, TableStatus};
    let audit = || AuditEvent::system("bench", "bench", None, Outcome::Success);
    for i in from..to {
        let now = tenancy::now();
        let tenant = ready_tenant(&format!("t{i:05}"), u32::try_from(i / 500).unwrap_or(0));
        let id = tenant.id.clone();
        store.insert_tenant(&tenant, &audit()).await.expect("tenant");
        let mut first_table = None;
        for name in ["events", "orders", "users"] {
            let spec: tenancy::table::TableRequest = serde_json::from_value(json!({
                "zone": "bronze", "name": name, "columns": [{"name": "id", "type": "long"}]
            }))
            .expect("shape");
            let record = TableRecord {
                id: uuid::Uuid::now_v7(),
                tenant: id.clone(),
                spec: spec.validate().expect("valid"),
                location: format!("file:///bench/{i}/{name}"),
                status: TableStatus::Active,
                created_at: now,
                updated_at: now,
            };
            store.insert_table(&record, 100, &audit()).await.expect("table");
            first_table.get_or_insert(record.id);
        }
        let stream: tenancy::stream::StreamRequest = serde_json::from_value(json!({
            "name": "events", "table": {"zone": "bronze", "name": "events"},
            "source": {"type": "kafka", "bootstrap_servers": "broker:9092", "topic": format!("t{i}")}
        }))
        .expect("shape");
        let spec = stream.validate().expect("valid");
        let record = StreamRecord {
            id: uuid::Uuid::now_v7(),
            tenant: id,
            name: spec.name,
            table_id: first_table.expect("table"),
            table_name: "events".into(),
            source: spec.source,
            on_error: spec.on_error,
            created_at: now,
        };
        store.insert_stream(&record, 20, &audit()).await.expect("stream");
    }
}

/// Queues a compaction on every table without one (the worst case: every table is due), and
/// records every desired worker as running with a fresh heartbeat, as a leader in step would
/// find them.
async fn all_due_and_running(store: &dyn MetadataStore) {
    use tenancy::store::{MaintenanceRun, WorkerRecord};
    use tenancy::worker::WorkerState;
    let busy: std::collections::BTreeSet<uuid::Uuid> = store
        .due_runs()
        .await
        .expect("runs")
        .into_iter()
        .map(|r| r.table)
        .collect();
    for table in store.all_active_tables().await.expect("tables") {
        if busy.contains(&table.id) {
            continue;
        }
        let now = tenancy::now();
        let run = MaintenanceRun {
            id: uuid::Uuid::now_v7(),
            table_id: table.id,
            tenant: table.tenant.clone(),
            zone: table.spec.zone,
            table_name: table.spec.name.to_string(),
            operations: vec![tenancy::maintenance::Operation::Compact],
            options: Default::default(),
            status: tenancy::maintenance::RunStatus::Queued,
            metrics: None,
            error: None,
            requested_by: "scheduler".into(),
            lease_owner: String::new(),
            lease_expires_at: now + chrono::Duration::days(1),
            created_at: now,
            finished_at: None,
        };
        let audit =
            tenancy::audit::AuditEvent::system("bench", "bench", None, tenancy::audit::Outcome::Success);
        store.start_run(&run, &audit).await.expect("queue");
    }
    let inputs = lake_manager::workers::reconciler::read_inputs(store)
        .await
        .expect("inputs");
    let recorded: std::collections::BTreeSet<String> = lake_manager::workers::reconciler::read_workers(store)
        .await
        .expect("workers")
        .into_iter()
        .map(|w| w.id)
        .collect();
    for spec in tenancy::worker::desired(&inputs).into_values() {
        if recorded.contains(&spec.id()) {
            continue;
        }
        let now = tenancy::now();
        let record = WorkerRecord {
            state: WorkerState::Running,
            last_heartbeat: Some(now),
            owner: Some("bench".into()),
            ..WorkerRecord::pending(spec, now)
        };
        store.put_worker(&record).await.expect("worker");
    }
}
