//! The slim reads of the reconciler and the scheduler on both backends: on a fixture with
//! every worker kind and state, both stream sources, runs in every status (a purge's empty
//! run included) and tables active and deleting, each answers exactly what the full-record
//! read it replaces gives.

use std::collections::BTreeMap;

use tenancy::both_backends;
use tenancy::maintenance::{Operation, RunStatus};
use tenancy::store::{Backend, MetadataStore, TableStatus, WorkerRecord, WorkerSummary};
use tenancy::stream::StreamSource;
use tenancy::worker::{DueRun, WorkerKind, WorkerSpec, WorkerState, WorkerTarget};

use crate::streams::stream;
use crate::tables::{audit, run, table, tenant};

/// Runs `operations` on the table to success, finished `secs_ago` seconds ago.
async fn succeeded(
    store: &dyn MetadataStore,
    on: &tenancy::store::TableRecord,
    operations: &[Operation],
    secs_ago: i64,
) {
    let at = tenancy::now() - chrono::Duration::seconds(secs_ago);
    tenancy::store::testing::record_success(store, on, operations, at).await;
}

async fn fixture(store: &dyn MetadataStore) -> Vec<tenancy::store::TableRecord> {
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let tables: Vec<_> = ["events", "orders", "users", "gone", "purged"]
        .into_iter()
        .map(|name| table("bronze", name))
        .collect();
    for t in &tables {
        store
            .insert_table(t, 10, &audit("table.create"))
            .await
            .expect("table");
    }
    for (name, source) in [
        (
            "a_kafka",
            serde_json::json!({"type": "kafka", "bootstrap_servers": "127.0.0.1:9092", "topic": "a"}),
        ),
        ("b_http", serde_json::json!({"type": "http"})),
        (
            "c_kafka",
            serde_json::json!({"type": "kafka", "bootstrap_servers": "k:9092", "topic": "c", "start": "latest"}),
        ),
    ] {
        store
            .insert_stream(&stream(name, tables[0].id, source), 10, &audit("stream.create"))
            .await
            .expect("stream");
    }
    // Finished runs of every outcome, then one unfinished run per status.
    succeeded(store, &tables[1], &[Operation::Compact, Operation::Vacuum], 300).await;
    succeeded(store, &tables[1], &[Operation::Vacuum], 200).await;
    succeeded(store, &tables[1], &[Operation::Compact, Operation::Vacuum], 100).await;
    succeeded(store, &tables[2], &[Operation::Retention, Operation::Zorder], 50).await;
    let mut failed = run(&tables[2], 3600);
    store
        .start_run(&failed, &audit("table.maintenance.start"))
        .await
        .expect("start");
    failed.status = RunStatus::Failed;
    failed.finished_at = Some(tenancy::now());
    assert!(store.update_run(&failed).await.expect("fail"));
    let mut queued = run(&tables[0], 3600);
    queued.status = RunStatus::Queued;
    queued.lease_owner = String::new();
    queued.operations = vec![Operation::Retention, Operation::Vacuum];
    for r in [queued, run(&tables[1], 3600)] {
        store
            .start_run(&r, &audit("table.maintenance.start"))
            .await
            .expect("unfinished");
    }
    // A purge holds its table's lease with an empty run.
    let mut purge = run(&tables[4], 3600);
    purge.operations = vec![];
    store
        .start_run(&purge, &audit("table.maintenance.start"))
        .await
        .expect("purge run");
    for gone in &tables[3..] {
        assert!(
            store
                .mark_table_deleting(gone.id, &audit("table.delete"))
                .await
                .expect("deleting")
        );
    }
    // Every kind in every state, with and without history.
    let targets = [
        WorkerTarget::Stream(uuid::Uuid::now_v7()),
        WorkerTarget::Table(tables[0].id),
        WorkerTarget::Table(tables[1].id),
        WorkerTarget::Tenant,
        WorkerTarget::Table(tables[3].id),
    ];
    let states = [
        WorkerState::Pending,
        WorkerState::Running,
        WorkerState::Succeeded,
        WorkerState::Failed,
    ];
    for (k, (kind, target)) in WorkerKind::ALL.into_iter().zip(targets).enumerate() {
        for (s, state) in states.into_iter().enumerate() {
            let n = u32::try_from(k * 4 + s).expect("small");
            let spec = WorkerSpec {
                kind,
                tenant: tenancy::tenant::TenantId::parse(&format!("tenant{n}")).expect("id"),
                target: target.clone(),
                operations: if kind.maintenance() {
                    vec![Operation::Compact]
                } else {
                    vec![]
                },
                run: kind.maintenance().then(uuid::Uuid::now_v7),
            };
            let at = tenancy::now() - chrono::Duration::seconds(i64::from(n));
            let record = WorkerRecord {
                state,
                restarts: n,
                failures: n % 3,
                last_error: (state == WorkerState::Failed).then(|| "broker unreachable".to_owned()),
                failed_at: (n % 2 == 0).then_some(at),
                last_heartbeat: (state != WorkerState::Pending).then_some(at),
                owner: (state == WorkerState::Running).then(|| "process-1".to_owned()),
                progress: (state == WorkerState::Running).then(|| r#"{"lag":{"0":3}}"#.to_owned()),
                ..WorkerRecord::pending(spec, at)
            };
            store.put_worker(&record).await.expect("worker");
        }
    }
    tables
}

async fn slim_reads_agree_with_the_full_reads(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let tables = fixture(store.as_ref()).await;

    let full = store.list_workers(None, None, None, 1_000).await.expect("full");
    assert_eq!(full.len(), 20);
    // Pages of 3, as the reconciler reads pages: the same summaries in the same order.
    let mut slim: Vec<WorkerSummary> = Vec::new();
    loop {
        let after = slim.last().map(|w| w.id.clone());
        let page = store.worker_summaries(after.as_deref(), 3).await.expect("page");
        let more = page.len() == 3;
        slim.extend(page);
        if !more {
            break;
        }
    }
    assert_eq!(slim, full.iter().map(WorkerSummary::of).collect::<Vec<_>>());

    let mut kafka: Vec<_> = store
        .all_streams()
        .await
        .expect("streams")
        .into_iter()
        .filter(|s| matches!(s.source, StreamSource::Kafka(_)))
        .map(|s| (s.tenant, s.id))
        .collect();
    kafka.sort_by_key(|(_, id)| *id);
    assert_eq!(kafka.len(), 2, "the HTTP stream is not an input");
    assert_eq!(store.kafka_streams().await.expect("kafka"), kafka);

    let due: Vec<DueRun> = store
        .unfinished_runs()
        .await
        .expect("runs")
        .into_iter()
        .map(|r| DueRun {
            tenant: r.tenant,
            table: r.table_id,
            run: r.id,
            operations: r.operations,
        })
        .collect();
    assert_eq!(due.len(), 3, "queued, running and the purge's empty run");
    assert_eq!(store.due_runs().await.expect("due"), due);

    let deleting: Vec<_> = store
        .tables_deleting()
        .await
        .expect("deleting")
        .into_iter()
        .map(|t| (t.tenant, t.id))
        .collect();
    assert_eq!(deleting.len(), 2);
    assert_eq!(store.deleting_tables().await.expect("deleting"), deleting);

    let sorted = |mut v: Vec<(Operation, chrono::DateTime<chrono::Utc>)>| {
        v.sort();
        v
    };
    let mut per_table = BTreeMap::new();
    for t in &tables {
        let last = store.last_success(t.id).await.expect("last success");
        if !last.is_empty() {
            per_table.insert(t.id, sorted(last));
        }
    }
    assert_eq!(per_table.len(), 2, "{per_table:?}");
    assert_eq!(
        per_table[&tables[1].id].len(),
        2,
        "compact and vacuum, each at its latest"
    );
    let bulk: BTreeMap<_, _> = store
        .last_successes()
        .await
        .expect("last successes")
        .into_iter()
        .map(|(id, ops)| (id, sorted(ops)))
        .collect();
    assert_eq!(bulk, per_table);
    assert!(tables.iter().all(|t| t.status == TableStatus::Active));
}

both_backends!(slim_reads_agree_with_the_full_reads);

/// More unfinished runs than SQLite's pages of the large reads hold (1,000 rows, read as one
/// JSON text each), with finished runs between them: the due runs come back whole, each once,
/// in id order, across page boundaries; PostgreSQL reads them in one page.
async fn due_runs_span_pages(backend: Backend) {
    const RUNS: usize = 2_400;
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let mut unfinished = Vec::new();
    for i in 0..RUNS {
        let t = table("bronze", &format!("t{i:04}"));
        store
            .insert_table(&t, 10_000, &audit("table.create"))
            .await
            .expect("table");
        let mut r = run(&t, 3600);
        store
            .start_run(&r, &audit("table.maintenance.start"))
            .await
            .expect("run");
        // Every seventh finishes: the filter, not the page, leaves it out.
        if i % 7 == 3 {
            r.status = RunStatus::Succeeded;
            r.finished_at = Some(tenancy::now());
            assert!(store.update_run(&r).await.expect("finish"));
        } else {
            unfinished.push(DueRun {
                tenant: r.tenant,
                table: r.table_id,
                run: r.id,
                operations: r.operations,
            });
        }
    }
    assert!(unfinished.len() > 2_000, "more than two pages of 1,000");
    let due = store.due_runs().await.expect("due");
    assert_eq!(due.len(), unfinished.len());
    assert_eq!(due, unfinished, "every unfinished run once, in id order");
}

both_backends!(due_runs_span_pages);
