//! The maintenance scheduler's pass on a real Delta table (local storage), on both backends:
//! the first pass reads the snapshot, a pass after no commit reads none and still applies the
//! time-based rules, and a commit makes the next pass read it again.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use lake_manager::catalog::Catalog;
use lake_manager::delta::{DeltaSettings, tables};
use lake_manager::provision::{ProvisionSettings, Provisioner};
use lake_manager::storage::LocalStorage;
use lake_manager::workers::scheduler::{self, Pass};
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::both_backends;
use tenancy::last_read::LastReads;
use tenancy::maintenance::{DuePolicy, Operation};
use tenancy::store::testing::{TestDatabase, record_success};
use tenancy::store::{self, Backend};
use tenancy::tenant::TenantStatus;

fn audit() -> AuditEvent {
    AuditEvent::system("test", "test", Some("acme"), Outcome::Success)
}

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values([1, 2]))]).expect("batch")
}

async fn passes_read_only_changed_tables_and_keep_the_time_rules(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = store::connect(&db.url, &Default::default())
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let lake = tempfile::tempdir().expect("lake");
    let local = Arc::new(LocalStorage::open(lake.path()).expect("open"));
    let provisioner = Arc::new(Provisioner::new(
        store.clone(),
        local,
        None,
        ProvisionSettings {
            bucket_prefix: "lakeplane".to_owned(),
            zones: Default::default(),
            iam: None,
            attempts: 2,
            backoff: Duration::from_millis(10),
            migration_grace: Duration::from_secs(0),
            migration_give_up: Duration::from_secs(3600),
        },
    ));
    let tenant = common::add_tenant(&store, "acme", common::shared(0)).await;
    assert_eq!(
        provisioner.provision(&tenant.id).await.expect("provision"),
        TenantStatus::Ready
    );
    let tenant = store.get_tenant(&tenant.id).await.expect("get").expect("tenant");
    let catalog = Catalog::new(
        provisioner,
        DeltaSettings::local(),
        "test".into(),
        Duration::from_secs(60),
    );
    let request: tenancy::table::TableRequest = serde_json::from_value(serde_json::json!({
        "zone": "bronze", "name": "events", "columns": [{"name": "id", "type": "long"}]
    }))
    .expect("shape");
    let (record, _) = catalog
        .create(&tenant, request.validate().expect("valid"), &audit())
        .await
        .expect("create");
    let root = catalog.table_root(&tenant, record.spec.zone, record.spec.name.as_str());
    tables::append(catalog.delta(), &root, vec![batch()])
        .await
        .expect("append");
    record_success(store.as_ref(), &record, &[Operation::Vacuum], tenancy::now()).await;
    // Vacuum is due 2 s after the last one, so the time rule turns within the test.
    let policy = DuePolicy {
        checkpoint_every: 0,
        vacuum_every: chrono::Duration::seconds(2),
        ..DuePolicy::default()
    };
    let mut last = LastReads::new();

    let first = scheduler::pass(&catalog, &policy, &mut last).await.expect("pass");
    assert_eq!(
        first,
        Pass {
            tables: 1,
            snapshots_read: 1,
            ..Pass::default()
        },
        "read once; vacuum ran just now"
    );

    tables::append(catalog.delta(), &root, vec![batch()])
        .await
        .expect("append");
    let changed = scheduler::pass(&catalog, &policy, &mut last).await.expect("pass");
    assert_eq!(changed.snapshots_read, 1, "a new commit is read: {changed:?}");
    assert_eq!(changed.queued, 0);

    let unchanged = scheduler::pass(&catalog, &policy, &mut last).await.expect("pass");
    assert_eq!(
        (unchanged.snapshots_read, unchanged.unchanged, unchanged.queued),
        (0, 1, 0),
        "no commit: nothing read"
    );

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let due = scheduler::pass(&catalog, &policy, &mut last).await.expect("pass");
    assert_eq!(
        (due.snapshots_read, due.unchanged, due.queued),
        (0, 1, 1),
        "the vacuum falls due on remembered statistics"
    );
    let runs = store.due_runs().await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].operations, [Operation::Vacuum]);
    let after = scheduler::pass(&catalog, &policy, &mut last).await.expect("pass");
    assert_eq!(after.tables, 0, "the queued run holds the table: {after:?}");

    store.close().await;
    db.drop_database().await;
}

both_backends!(passes_read_only_changed_tables_and_keep_the_time_rules);
