//! The maintenance scheduler's pass: for every active table of a ready tenant with no
//! unfinished run, what `tenancy::maintenance::due` finds due is queued as a run (the
//! reconciler then turns it into a worker).
//!
//! A table's statistics come from its Delta snapshot, and reading a snapshot replays the log
//! into the file list: read for every table on every pass, that was the pass's whole cost.
//! Each pass now lists the log after the version read last time ([`LastReads`]) and reads
//! the snapshot only when the version moved, or the tenant moved the table, or nothing was
//! read yet. Tenants and the last successful runs are read once per pass, not per table.
//! Time-based rules (vacuum, retention) are evaluated on every pass, from the clock and the
//! last successes, whether the snapshot was read again or not.

use std::collections::{HashMap, HashSet};

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::last_read::{LastReads, SnapshotStats};
use tenancy::maintenance::{DuePolicy, Operation, RunOptions, TableStats, due};
use tenancy::store::{MetadataStore, StoreError, TableRecord, TableStatus};
use tenancy::tenant::{Tenant, TenantId, TenantStatus};

use super::WorkersError;
use crate::catalog::{Catalog, CatalogError};
use crate::delta::tables;

/// Tenants read per query when the pass reads the ready ones.
const TENANT_PAGE: u32 = 1_000;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Active tables of ready tenants without an unfinished run: the tables evaluated.
    pub tables: usize,
    /// Snapshots read (tables new to the pass, moved, changed, or whose log listing failed).
    pub snapshots_read: usize,
    /// Tables whose statistics from an earlier pass still held (one log listing each).
    pub unchanged: usize,
    /// Tables skipped because their snapshot could not be read (logged; read next pass).
    pub unreadable: usize,
    /// Runs queued.
    pub queued: usize,
}

/// Runs one pass over every table, remembering in `last` what it read for the next pass.
pub async fn pass(catalog: &Catalog, policy: &DuePolicy, last: &mut LastReads) -> Result<Pass, WorkersError> {
    let store = catalog.store().as_ref();
    let busy: HashSet<uuid::Uuid> = store.due_runs().await?.into_iter().map(|r| r.table).collect();
    let ready = ready_tenants(store).await?;
    let successes = store.last_successes().await?;
    let tables = store.all_active_tables().await?;
    last.retain(&tables.iter().map(|t| t.id).collect());
    let mut done = Pass::default();
    for record in &tables {
        if busy.contains(&record.id) || record.status != TableStatus::Active {
            continue;
        }
        let Some(tenant) = ready.get(&record.tenant) else {
            continue;
        };
        done.tables += 1;
        let Some(snapshot) = snapshot_stats(catalog, tenant, record, last, &mut done).await else {
            continue;
        };
        let last_success = successes.get(&record.id).map(Vec::as_slice).unwrap_or_default();
        let at = |op: Operation| last_success.iter().find(|(o, _)| *o == op).map(|(_, t)| *t);
        let stats = TableStats {
            version: snapshot.version,
            num_files: snapshot.num_files,
            small_files: snapshot.small_files,
            last_checkpoint_version: None,
            has_event_time: record.spec.event_time_column.is_some(),
            has_z_order: !record.spec.z_order_by.is_empty(),
            last_compact_at: at(Operation::Compact).max(at(Operation::Zorder)),
            last_vacuum_at: at(Operation::Vacuum),
            last_retention_at: at(Operation::Retention),
        };
        let operations = due(&stats, policy, tenancy::now());
        if operations.is_empty() {
            continue;
        }
        if queue(catalog, tenant, record, operations).await {
            done.queued += 1;
        }
    }
    Ok(done)
}

/// Every ready tenant by id, read in pages: the pass needs each table's tenant (its
/// placement names the table's root) and asked for it once per table before.
async fn ready_tenants(store: &dyn MetadataStore) -> Result<HashMap<TenantId, Tenant>, StoreError> {
    let mut ready = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_tenants(after.as_deref(), TENANT_PAGE, None, None)
            .await?;
        let full = page.len() == TENANT_PAGE as usize;
        after = page.last().map(|t| t.id.as_str().to_owned());
        ready.extend(
            page.into_iter()
                .filter(|t| t.status == TenantStatus::Ready)
                .map(|t| (t.id.clone(), t)),
        );
        if !full {
            return Ok(ready);
        }
    }
}

/// The table's snapshot statistics: those of the last pass when its log has not moved since
/// (one listing), else a snapshot read. `None` when the table cannot be read (logged; the
/// next pass reads it in full).
async fn snapshot_stats(
    catalog: &Catalog,
    tenant: &Tenant,
    record: &TableRecord,
    last: &mut LastReads,
    done: &mut Pass,
) -> Option<SnapshotStats> {
    let root = catalog.table_root(tenant, record.spec.zone, record.spec.name.as_str());
    if let Some(since) = last.known_version(record.id, &root) {
        let latest = match tables::log_store(catalog.delta(), &root) {
            Ok(log) => tables::latest_version(&log, &root, since).await,
            Err(e) => Err(e),
        };
        match latest {
            Ok(latest) => {
                if let Some(stats) = last.fresh(record.id, &root, latest) {
                    done.unchanged += 1;
                    return Some(stats);
                }
            }
            // The version read left the log (cleaned after a checkpoint), or the listing
            // failed: the snapshot read below decides.
            Err(e) => {
                tracing::debug!(table = %root, error = %tenancy::error_chain(&e), "cannot list the log; reading the snapshot")
            }
        }
    }
    done.snapshots_read += 1;
    match catalog.describe(tenant, record).await {
        Ok(snapshot) => {
            let stats = SnapshotStats {
                version: snapshot.version,
                num_files: snapshot.num_files,
                small_files: snapshot.small_files,
            };
            last.remember(record.id, &root, stats);
            Some(stats)
        }
        Err(e) => {
            tracing::warn!(table = %record.location, error = %tenancy::error_chain(&e), "cannot read table statistics");
            last.forget(record.id);
            done.unreadable += 1;
            None
        }
    }
}

/// Queues a run of `operations` on the table as the scheduler; false when it was not queued
/// (another run took the table first, or the queueing failed, which is logged).
async fn queue(catalog: &Catalog, tenant: &Tenant, record: &TableRecord, operations: Vec<Operation>) -> bool {
    let target = format!(
        "/v1/tenants/{}/tables/{}/{}/maintenance",
        tenant.id,
        record.spec.zone.as_str(),
        record.spec.name
    );
    let audit = AuditEvent::system(
        "table.maintenance.schedule",
        &target,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    match catalog
        .queue_run(
            tenant,
            record,
            operations,
            RunOptions::default(),
            "scheduler",
            &audit,
        )
        .await
    {
        Ok(_) => true,
        Err(CatalogError::Store(StoreError::Busy(_))) => false,
        Err(e) => {
            tracing::warn!(table = %record.location, error = %tenancy::error_chain(&e), "cannot queue maintenance");
            false
        }
    }
}
