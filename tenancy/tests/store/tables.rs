//! Tables and maintenance leases on both backends.

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::both_backends;
use tenancy::maintenance::{Operation, RunMetrics, RunStatus};
use tenancy::placement::{Placement, PlacementKind};
use tenancy::role::Zone;
use tenancy::store::{Backend, MaintenanceRun, StoreError, TableRecord, TableStatus};
use tenancy::table::{RawColumn, TableRequest};
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};

pub(crate) fn audit(action: &str) -> AuditEvent {
    AuditEvent::system(action, "test", Some("acme"), Outcome::Success)
}

pub(crate) fn tenant() -> Tenant {
    let now = tenancy::now();
    Tenant {
        id: TenantId::parse("acme").expect("id"),
        display_name: "Acme".into(),
        tier: Tier::Standard,
        isolation: Isolation::Auto,
        status: TenantStatus::Ready,
        status_reason: None,
        placement: Placement {
            kind: PlacementKind::Shared,
            shard: Some(0),
            reason: "test".into(),
        },
        quotas: Quotas::default(),
        volume_30d_bytes: 0,
        erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
        credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
        created_at: now,
        updated_at: now,
    }
}

pub(crate) fn table(zone: &str, name: &str) -> TableRecord {
    let spec = TableRequest {
        zone: zone.into(),
        name: name.into(),
        columns: vec![RawColumn {
            name: "id".into(),
            column_type: "long".into(),
            nullable: None,
        }],
        partition_by: vec![],
        event_time_column: None,
        z_order_by: vec![],
        description: None,
        target_file_size_bytes: None,
        subject_columns: vec![],
    }
    .validate()
    .expect("valid");
    let now = tenancy::now();
    TableRecord {
        id: uuid::Uuid::now_v7(),
        tenant: TenantId::parse("acme").expect("id"),
        spec,
        location: format!("file:///lake/{zone}/acme/{name}/"),
        status: TableStatus::Active,
        created_at: now,
        updated_at: now,
    }
}

/// Tenant acme with one table in it, for tests about what hangs off a table.
pub(crate) async fn acme_with_table(
    store: &dyn tenancy::store::MetadataStore,
    zone: &str,
    name: &str,
) -> TableRecord {
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let table = table(zone, name);
    store
        .insert_table(&table, 10, &audit("table.create"))
        .await
        .expect("table");
    table
}

pub(crate) fn run(table: &TableRecord, lease_secs: i64) -> MaintenanceRun {
    let now = tenancy::now();
    MaintenanceRun {
        id: uuid::Uuid::now_v7(),
        table_id: table.id,
        tenant: table.tenant.clone(),
        zone: table.spec.zone,
        table_name: table.spec.name.to_string(),
        operations: vec![Operation::Compact, Operation::Checkpoint],
        options: tenancy::maintenance::RunOptions::default(),
        status: RunStatus::Running,
        metrics: None,
        error: None,
        requested_by: "tester".into(),
        lease_owner: "process-1".into(),
        lease_expires_at: now + chrono::Duration::seconds(lease_secs),
        created_at: now,
        finished_at: None,
    }
}

async fn tables_quota_pagination_and_purge(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let orders = table("bronze", "orders");
    store
        .insert_table(&orders, 3, &audit("table.create"))
        .await
        .expect("insert");
    assert_eq!(
        store
            .get_table(&orders.tenant, Zone::Bronze, "orders")
            .await
            .expect("get"),
        Some(orders.clone()),
        "round trip"
    );
    let again = table("bronze", "orders");
    assert!(matches!(
        store.insert_table(&again, 3, &audit("table.create")).await,
        Err(StoreError::Conflict(_))
    ));
    for (zone, name) in [("silver", "a"), ("gold", "b")] {
        store
            .insert_table(&table(zone, name), 3, &audit("table.create"))
            .await
            .expect("insert");
    }
    assert!(matches!(
        store
            .insert_table(&table("gold", "c"), 3, &audit("table.create"))
            .await,
        Err(StoreError::Quota(_))
    ));
    let first = store
        .list_tables(&orders.tenant, None, None, 2)
        .await
        .expect("list");
    let names: Vec<String> = first.iter().map(|t| t.spec.name.to_string()).collect();
    assert_eq!(names, ["orders", "b"], "ordered by zone, then name");
    let rest = store
        .list_tables(&orders.tenant, None, Some(("gold", "b")), 10)
        .await
        .expect("list");
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].spec.name.as_str(), "a");
    let silver = store
        .list_tables(&orders.tenant, Some(Zone::Silver), None, 10)
        .await
        .expect("list");
    assert_eq!(silver.len(), 1);

    // Deleting hides the table but keeps its name taken until the purge removes the row.
    assert!(
        store
            .mark_table_deleting(orders.id, &audit("table.delete"))
            .await
            .expect("mark")
    );
    assert!(
        !store
            .mark_table_deleting(orders.id, &audit("table.delete"))
            .await
            .expect("twice")
    );
    assert_eq!(
        store
            .list_tables(&orders.tenant, Some(Zone::Bronze), None, 10)
            .await
            .expect("list")
            .len(),
        0
    );
    assert!(matches!(
        store.insert_table(&table("bronze", "orders"), 10, &audit("table.create")).await,
        Err(StoreError::Conflict(message)) if message.contains("being purged")
    ));
    assert_eq!(store.tables_deleting().await.expect("deleting").len(), 1);
    assert!(
        store
            .delete_table_row(orders.id, &audit("table.purge"))
            .await
            .expect("purge")
    );
    assert!(
        !store
            .delete_table_row(orders.id, &audit("table.purge"))
            .await
            .expect("again"),
        "a second purge finds nothing and audits nothing"
    );
    store
        .insert_table(&table("bronze", "orders"), 10, &audit("table.create"))
        .await
        .expect("name free again");
}
both_backends!(tables_quota_pagination_and_purge);

async fn one_live_maintenance_run_per_table(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let orders = table("bronze", "orders");
    store
        .insert_table(&orders, 10, &audit("table.create"))
        .await
        .expect("insert");
    let first = run(&orders, 60);
    store
        .start_run(&first, &audit("table.maintenance.start"))
        .await
        .expect("first run");
    let second = run(&orders, 60);
    match store.start_run(&second, &audit("table.maintenance.start")).await {
        Err(StoreError::Busy(message)) => assert!(message.contains(&first.id.to_string()), "{message}"),
        other => panic!("a second live run must be refused, got {other:?}"),
    }
    let renewed = tenancy::now() + chrono::Duration::seconds(90);
    assert!(
        store
            .renew_lease(first.id, "process-1", renewed)
            .await
            .expect("renew")
    );
    assert!(
        !store
            .renew_lease(first.id, "someone-else", tenancy::now())
            .await
            .expect("renew")
    );

    // A finished run frees the table and is what describe shows last.
    let mut done = first.clone();
    done.lease_expires_at = renewed;
    done.status = RunStatus::Succeeded;
    done.metrics = Some(RunMetrics {
        files_added: 1,
        files_removed: 12,
        ..Default::default()
    });
    done.finished_at = Some(tenancy::now());
    let mut intruder = done.clone();
    intruder.lease_owner = "process-2".into();
    assert!(
        !store.update_run(&intruder).await.expect("update"),
        "only the lease owner records the end"
    );
    assert!(store.update_run(&done).await.expect("finish"));
    assert_eq!(
        store.last_finished_run(orders.id).await.expect("last"),
        Some(done.clone())
    );
    assert_eq!(
        store.get_run(&orders.tenant, done.id).await.expect("get"),
        Some(done.clone())
    );
    let ops: Vec<Operation> = store
        .last_success(orders.id)
        .await
        .expect("success")
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(ops, [Operation::Compact, Operation::Checkpoint]);
    store
        .start_run(&second, &audit("table.maintenance.start"))
        .await
        .expect("free again");

    // A run whose process died (lease expired) is failed by the next start, which proceeds.
    let stale_table = table("silver", "stale");
    store
        .insert_table(&stale_table, 10, &audit("table.create"))
        .await
        .expect("insert");
    let stale = run(&stale_table, -1);
    store
        .start_run(&stale, &audit("table.maintenance.start"))
        .await
        .expect("stale run");
    let fresh = run(&stale_table, 60);
    store
        .start_run(&fresh, &audit("table.maintenance.start"))
        .await
        .expect("takes over");
    let old = store
        .get_run(&stale_table.tenant, stale.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(old.status, RunStatus::Failed);
    let mut late = stale.clone();
    late.status = RunStatus::Succeeded;
    late.finished_at = Some(tenancy::now());
    assert!(
        !store.update_run(&late).await.expect("update"),
        "a run that lost its lease cannot overwrite the failure"
    );
    assert!(old.error.unwrap_or_default().contains("lease expired"));
    let other = TenantId::parse("other").expect("id");
    assert_eq!(
        store.get_run(&other, fresh.id).await.expect("get"),
        None,
        "runs are tenant-scoped"
    );
}
both_backends!(one_live_maintenance_run_per_table);

async fn queued_runs_are_claimed_by_one_executor_at_a_time(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    store
        .insert_tenant(&tenant(), &audit("tenant.create"))
        .await
        .expect("tenant");
    let orders = table("bronze", "orders");
    store
        .insert_table(&orders, 3, &audit("table.create"))
        .await
        .expect("table");
    let mut queued = run(&orders, 3600);
    queued.status = RunStatus::Queued;
    queued.lease_owner = String::new();
    queued.options = tenancy::maintenance::RunOptions {
        vacuum_retention_hours: 24,
        allow_short_vacuum: true,
    };
    store
        .start_run(&queued, &audit("table.maintenance.start"))
        .await
        .expect("queued");
    let unfinished = store.unfinished_runs().await.expect("unfinished");
    assert_eq!(
        unfinished,
        vec![queued.clone()],
        "options round-trip with the run"
    );
    assert!(
        matches!(
            store
                .start_run(&run(&orders, 60), &audit("table.maintenance.start"))
                .await,
            Err(tenancy::store::StoreError::Busy(_))
        ),
        "a queued run holds the table's slot"
    );
    let now = tenancy::now();
    let lease = now + chrono::Duration::seconds(60);
    assert!(
        store
            .claim_run(queued.id, "worker-a", lease, now)
            .await
            .expect("claim")
    );
    assert!(
        !store
            .claim_run(queued.id, "worker-b", lease, now)
            .await
            .expect("claim"),
        "a live lease keeps it with its executor"
    );
    let later = lease + chrono::Duration::seconds(1);
    assert!(
        store
            .claim_run(
                queued.id,
                "worker-b",
                later + chrono::Duration::seconds(60),
                later
            )
            .await
            .expect("claim"),
        "an expired lease (its executor died) lets another take it over"
    );
    let claimed = store
        .get_run(&queued.tenant, queued.id)
        .await
        .expect("get")
        .expect("run");
    assert_eq!(
        (claimed.status, claimed.lease_owner.as_str()),
        (RunStatus::Running, "worker-b")
    );
    let mut done = claimed.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(later);
    assert!(store.update_run(&done).await.expect("end"));
    assert!(store.unfinished_runs().await.expect("unfinished").is_empty());
    assert!(
        !store
            .claim_run(queued.id, "worker-c", later, later)
            .await
            .expect("claim"),
        "a finished run is never claimed again"
    );
}
both_backends!(queued_runs_are_claimed_by_one_executor_at_a_time);

/// Lookups by id, the scheduler's list of every active table, and spec updates guarded by
/// the `updated_at` the caller read.
async fn tables_by_id_across_tenants_and_guarded_updates(backend: Backend) {
    let (store, _db) = crate::migrated(backend).await;
    let mut beta = tenant();
    beta.id = TenantId::parse("beta").expect("id");
    for t in [tenant(), beta.clone()] {
        store
            .insert_tenant(&t, &audit("tenant.create"))
            .await
            .expect("tenant");
    }
    let orders = table("bronze", "orders");
    let mut theirs = table("gold", "revenue");
    theirs.tenant = beta.id.clone();
    let gone = table("silver", "gone");
    for t in [&orders, &theirs, &gone] {
        store
            .insert_table(t, 10, &audit("table.create"))
            .await
            .expect("insert");
    }
    assert_eq!(
        store.get_table_by_id(theirs.id).await.expect("by id"),
        Some(theirs.clone())
    );
    assert_eq!(
        store
            .get_table_by_id(uuid::Uuid::now_v7())
            .await
            .expect("unknown"),
        None
    );
    assert!(
        store
            .mark_table_deleting(gone.id, &audit("table.delete"))
            .await
            .expect("mark")
    );
    let deleting = store
        .get_table_by_id(gone.id)
        .await
        .expect("by id")
        .expect("still there");
    assert_eq!(
        deleting.status,
        TableStatus::Deleting,
        "by id finds a table in any status"
    );

    let mut active: Vec<uuid::Uuid> = store
        .all_active_tables()
        .await
        .expect("all")
        .iter()
        .map(|t| t.id)
        .collect();
    active.sort();
    let mut expected = vec![orders.id, theirs.id];
    expected.sort();
    assert_eq!(
        active, expected,
        "both tenants' active tables, not the deleting one"
    );

    let mut described = orders.clone();
    described.spec.description = Some("orders as they arrive".into());
    described.updated_at = orders.updated_at + chrono::Duration::seconds(1);
    assert!(
        store
            .update_table_spec(&described, orders.updated_at, &audit("table.update"))
            .await
            .expect("update")
    );
    assert_eq!(
        store.get_table_by_id(orders.id).await.expect("read"),
        Some(described.clone())
    );
    let mut stale = described.clone();
    stale.spec.description = Some("lost update".into());
    stale.updated_at = described.updated_at + chrono::Duration::seconds(1);
    assert!(
        !store
            .update_table_spec(&stale, orders.updated_at, &audit("table.update"))
            .await
            .expect("stale"),
        "a writer that read the old version loses"
    );
    assert_eq!(
        store.get_table_by_id(orders.id).await.expect("read"),
        Some(described)
    );
    let mut late = deleting.clone();
    late.spec.description = Some("too late".into());
    assert!(
        !store
            .update_table_spec(&late, deleting.updated_at, &audit("table.update"))
            .await
            .expect("deleting"),
        "a deleting table cannot change"
    );
}
both_backends!(tables_by_id_across_tenants_and_guarded_updates);

/// A maintenance run holding a live table lease is a commit under way for the migration fence;
/// once its lease lapsed (its executor stopped) it holds nothing back.
async fn running_maintenance_holds_the_migration_fence(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let orders = acme_with_table(store.as_ref(), "bronze", "orders").await;
    let tenant = orders.tenant.clone();
    assert_eq!(
        store.live_writes(&tenant, tenancy::now()).await.expect("count"),
        0
    );
    store
        .start_run(&run(&orders, 60), &audit("table.maintenance.start"))
        .await
        .expect("run");
    assert_eq!(
        store.live_writes(&tenant, tenancy::now()).await.expect("count"),
        1
    );
    let later = tenancy::now() + chrono::Duration::seconds(61);
    assert_eq!(
        store.live_writes(&tenant, later).await.expect("count"),
        0,
        "a lapsed lease holds nothing back"
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(running_maintenance_holds_the_migration_fence);

async fn a_tables_runs_page_newest_first(backend: Backend) {
    let (store, db) = crate::migrated(backend).await;
    let orders = acme_with_table(store.as_ref(), "silver", "orders").await;
    let other = table("silver", "other");
    store
        .insert_table(&other, 10, &audit("table.create"))
        .await
        .expect("table");
    // Five finished runs on orders, one live run on the other table, interleaved.
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = run(&orders, 60);
        store
            .start_run(&r, &audit("table.maintenance.start"))
            .await
            .expect("start");
        r.status = RunStatus::Succeeded;
        r.finished_at = Some(tenancy::now());
        assert!(store.update_run(&r).await.expect("end"));
        ids.push(r.id);
        if i == 2 {
            store
                .start_run(&run(&other, 60), &audit("table.maintenance.start"))
                .await
                .expect("other");
        }
    }
    ids.reverse();
    let first = store.list_runs(orders.id, None, 3).await.expect("page");
    let first: Vec<_> = first.iter().map(|r| r.id).collect();
    assert_eq!(first, ids[..3]);
    let second = store.list_runs(orders.id, Some(ids[2]), 3).await.expect("page");
    let second: Vec<_> = second.iter().map(|r| r.id).collect();
    assert_eq!(second, ids[3..], "the rest, and no run of the other table");
    assert!(
        store
            .list_runs(orders.id, Some(ids[4]), 3)
            .await
            .expect("page")
            .is_empty()
    );
    store.close().await;
    db.drop_database().await;
}
both_backends!(a_tables_runs_page_newest_first);
