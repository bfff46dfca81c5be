//! `lakeplane-bench scheduler`: one maintenance scheduling pass over many tables, the first
//! (nothing read yet: every table's snapshot is read, as every pass did before the scheduler
//! remembered its reads) against the next one after 1 % of the tables got a commit, on SQLite
//! and on PostgreSQL. Also the volume count that opens each scheduler pass, cold and then
//! with the same 1 % changed.
//!
//! The fixture, honestly: `TABLES` (30,000) table rows under ready tenants of 100 tables each,
//! every one a real Delta table on local storage at its own root, but made cheaply. One
//! template table is created and written 4 times (5 commits, 4 small data files); each
//! table's `_delta_log` is then hard links to the template's commit files, so its log is real
//! and deltalake reads it like any other. The data files are not copied: a snapshot read
//! replays the log only, and the scheduler reads nothing else. Each table has a vacuum that
//! succeeded an hour ago, so in the steady state nothing is due and the passes measure the
//! reads (the changed tables' new file does not reach the compaction threshold either). The
//! changed tables get a real append (a data file and a commit) through deltalake.
//!
//! Env: `TABLES` (30000). A debug build runs it with a small count, e.g. `TABLES=300`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use futures_util::StreamExt;
use lake_manager::catalog::Catalog;
use lake_manager::delta::{DeltaSettings, tables};
use lake_manager::provision::{ProvisionSettings, Provisioner};
use lake_manager::storage::LocalStorage;
use lake_manager::workers::scheduler;
use serde_json::json;
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::last_read::LastReads;
use tenancy::maintenance::{DuePolicy, Operation};
use tenancy::store::testing::record_success;
use tenancy::store::{Backend, MetadataStore, TableRecord, TableStatus};
use tenancy::tenant::Tenant;

use crate::env_or;
use crate::fixture::{fresh_store, ready_tenant};

const TABLES_PER_TENANT: usize = 100;
/// Fixture writes in flight at once.
const CONCURRENCY: usize = 16;

pub async fn scheduler() {
    let count = usize::try_from(env_or("TABLES", 30_000)).unwrap_or(30_000);
    let changed = (count / 100).max(1);
    println!(
        "| metadata | tables | pass | snapshots read | unchanged (one log listing) | scheduling pass | volume count |"
    );
    println!("|---|---|---|---|---|---|---|");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (store, database) = fresh_store(backend).await;
        let lake = tempfile::tempdir().expect("lake dir");
        let catalog = catalog(store.clone(), lake.path());
        let records = fixture(&catalog, lake.path(), count).await;
        // The scheduler's own policy (checkpoints are the writers' business).
        let policy = DuePolicy {
            checkpoint_every: 0,
            ..DuePolicy::default()
        };
        let mut last = LastReads::new();
        let name = backend.as_str();
        let row = |pass: &str, done: &scheduler::Pass, took: Duration, volumes: Duration| {
            println!(
                "| {name} | {count} | {pass} | {} | {} | {:.2} s | {:.2} s |",
                done.snapshots_read,
                done.unchanged,
                took.as_secs_f64(),
                volumes.as_secs_f64()
            );
        };
        let (done, took, volumes) = one_pass(&catalog, &policy, &mut last).await;
        assert_eq!(done.snapshots_read, count, "the first pass reads every table");
        assert_eq!(done.queued, 0, "nothing is due in the steady state");
        row("first (every snapshot read)", &done, took, volumes);

        // 1 % of the tables get a commit, spread over the tenants.
        let step = count / changed;
        let roots: Vec<String> = records
            .iter()
            .step_by(step)
            .take(changed)
            .map(|(tenant, record)| catalog.table_root(tenant, record.spec.zone, record.spec.name.as_str()))
            .collect();
        futures_util::stream::iter(roots)
            .map(|root| async move {
                tables::append(&DeltaSettings::local(), &root, vec![batch()])
                    .await
                    .expect("append")
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let (done, took, volumes) = one_pass(&catalog, &policy, &mut last).await;
        assert_eq!(done.snapshots_read, changed, "only the changed tables are read");
        assert_eq!(done.queued, 0, "one more small file is not due");
        row("next (1 % changed)", &done, took, volumes);

        store.close().await;
        database.drop_database().await;
    }
}

/// One scheduler pass as the leader runs it: the volume count, then the scheduling.
async fn one_pass(
    catalog: &Catalog,
    policy: &DuePolicy,
    last: &mut LastReads,
) -> (scheduler::Pass, Duration, Duration) {
    let started = Instant::now();
    lake_manager::volume::collect(catalog, tenancy::now().date_naive())
        .await
        .expect("volumes");
    let volumes = started.elapsed();
    let started = Instant::now();
    let done = scheduler::pass(catalog, policy, last).await.expect("pass");
    (done, started.elapsed(), volumes)
}

fn catalog(store: Arc<dyn MetadataStore>, lake: &std::path::Path) -> Catalog {
    let local = Arc::new(LocalStorage::open(lake).expect("local storage"));
    let provisioner = Provisioner::new(
        store,
        local,
        None,
        ProvisionSettings {
            bucket_prefix: "lakeplane".to_owned(),
            zones: tenancy::zone::ZonesConfig::default(),
            iam: None,
            attempts: 2,
            backoff: Duration::from_millis(10),
            migration_grace: Duration::from_secs(3600),
            migration_give_up: Duration::from_secs(3600),
        },
    );
    Catalog::new(
        Arc::new(provisioner),
        DeltaSettings::local(),
        "bench".into(),
        Duration::from_secs(600),
    )
}

/// One row of the tables' single column.
fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values([1]))]).expect("batch")
}

fn audit() -> AuditEvent {
    AuditEvent::system("bench", "bench", None, Outcome::Success)
}

/// The local path of a `file://` root (local storage writes them unescaped).
fn path_of(root: &str) -> std::path::PathBuf {
    let path = root
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("a local table root: {root}"));
    std::path::PathBuf::from(path)
}

/// `count` tables as described in the module comment; returns each with its tenant.
async fn fixture(catalog: &Catalog, lake: &std::path::Path, count: usize) -> Vec<(Tenant, TableRecord)> {
    let store = catalog.store().clone();
    let spec = |name: String| -> tenancy::table::TableSpec {
        let request: tenancy::table::TableRequest = serde_json::from_value(json!({
            "zone": "bronze", "name": name, "columns": [{"name": "id", "type": "long"}]
        }))
        .expect("shape");
        request.validate().expect("valid")
    };
    // The template: 5 commits, 4 small files.
    let template = format!("file://{}/template/", lake.display());
    tables::create(&DeltaSettings::local(), &template, &spec("template".into()))
        .await
        .expect("template");
    for _ in 0..4 {
        tables::append(&DeltaSettings::local(), &template, vec![batch()])
            .await
            .expect("template append");
    }
    let template_log = path_of(&template).join("_delta_log");
    let commits: Vec<std::path::PathBuf> = std::fs::read_dir(&template_log)
        .expect("template log")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();

    let mut records = Vec::with_capacity(count);
    for t in 0..count.div_ceil(TABLES_PER_TENANT) {
        let now = tenancy::now();
        let tenant = ready_tenant(&format!("s{t:05}"), u32::try_from(t / 50).unwrap_or(0));
        store.insert_tenant(&tenant, &audit()).await.expect("tenant");
        let first = t * TABLES_PER_TENANT;
        for n in first..(first + TABLES_PER_TENANT).min(count) {
            let record = TableRecord {
                id: uuid::Uuid::now_v7(),
                tenant: tenant.id.clone(),
                spec: spec(format!("t{n:05}")),
                location: String::new(),
                status: TableStatus::Active,
                created_at: now,
                updated_at: now,
            };
            let root = catalog.table_root(&tenant, record.spec.zone, record.spec.name.as_str());
            let record = TableRecord {
                location: root.clone(),
                ..record
            };
            let log = path_of(&root).join("_delta_log");
            std::fs::create_dir_all(&log).expect("log dir");
            for commit in &commits {
                let name = commit.file_name().expect("commit file name");
                std::fs::hard_link(commit, log.join(name)).expect("link a commit");
            }
            records.push((tenant.clone(), record));
        }
    }
    let store = &store;
    futures_util::stream::iter(&records)
        .map(|(_, record)| async move {
            store
                .insert_table(record, u32::MAX, &audit())
                .await
                .expect("table");
            // The daily vacuum ran an hour ago.
            let at = tenancy::now() - chrono::Duration::hours(1);
            record_success(store.as_ref(), record, &[Operation::Vacuum], at).await;
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    records
}
