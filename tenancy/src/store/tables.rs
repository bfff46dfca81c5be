//! Delta tables and their maintenance runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::role::Zone;
use crate::tenant::TenantId;

/// Where a table is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    /// Visible and usable.
    Active,
    /// Deleted through the API; its files are being purged and the name stays taken until then.
    Deleting,
}

impl TableStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TableStatus::Active => "active",
            TableStatus::Deleting => "deleting",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TableStatus::Active),
            "deleting" => Some(TableStatus::Deleting),
            _ => None,
        }
    }
}

/// A Delta table the plane manages.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRecord {
    /// Stable id (UUIDv7), used by maintenance runs.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant: TenantId,
    /// The validated definition (zone, name, columns, partitioning, ...).
    pub spec: crate::table::TableSpec,
    /// Storage URI of the table root, as it was when created (migrations move the bucket, so
    /// readers recompute it from the tenant's placement).
    pub location: String,
    /// Active or being purged.
    pub status: TableStatus,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When the definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// A one-off or scheduled maintenance run on one table.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceRun {
    /// Run id (UUIDv7).
    pub id: Uuid,
    /// The table's id.
    pub table_id: Uuid,
    /// The table's tenant.
    pub tenant: TenantId,
    /// The table's zone.
    pub zone: Zone,
    /// The table's name.
    pub table_name: String,
    /// Operations, in execution order.
    pub operations: Vec<crate::maintenance::Operation>,
    /// Options beyond the operations.
    pub options: crate::maintenance::RunOptions,
    /// Where the run is.
    pub status: crate::maintenance::RunStatus,
    /// What it did (set when it ends).
    pub metrics: Option<crate::maintenance::RunMetrics>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who asked (subject, or `scheduler`).
    pub requested_by: String,
    /// The process holding the lease.
    pub lease_owner: String,
    /// The lease ends here unless renewed; after it, another run may start.
    pub lease_expires_at: DateTime<Utc>,
    /// When requested.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Tables and their maintenance runs.
#[async_trait]
pub trait TableStore: Send + Sync {
    /// Records a new table with its audit event, unless the name is taken (`Conflict`) or the
    /// tenant already has `max_tables` tables (`Quota`), both checked in the same transaction.
    async fn insert_table(
        &self,
        table: &TableRecord,
        max_tables: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One table, in any status.
    async fn get_table(
        &self,
        tenant: &TenantId,
        zone: Zone,
        name: &str,
    ) -> Result<Option<TableRecord>, StoreError>;
    /// A table by id.
    async fn get_table_by_id(&self, id: Uuid) -> Result<Option<TableRecord>, StoreError>;
    /// Active tables of a tenant ordered by (zone, name), after the `(zone, name)` cursor.
    async fn list_tables(
        &self,
        tenant: &TenantId,
        zone: Option<Zone>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<TableRecord>, StoreError>;
    /// Every active table of every tenant (for the scheduler).
    async fn all_active_tables(&self) -> Result<Vec<TableRecord>, StoreError>;
    /// Replaces an active table's definition if it is still the one last changed at
    /// `expected_updated_at` (so concurrent changes cannot overwrite each other); false when
    /// it changed meanwhile, is gone or is deleting.
    async fn update_table_spec(
        &self,
        table: &TableRecord,
        expected_updated_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Marks an active table `deleting` (it leaves the API); false when it was not active.
    async fn mark_table_deleting(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Tables waiting for their purge.
    async fn tables_deleting(&self) -> Result<Vec<TableRecord>, StoreError>;
    /// Removes a purged table's row (and its runs), freeing the name, and records the audit
    /// event; false (and no event) when another purge removed it first.
    async fn delete_table_row(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Records a run as holding the table's lease. Runs whose lease expired are marked failed
    /// first; a live one makes this a `Busy` error naming it.
    async fn start_run(&self, run: &MaintenanceRun, audit: &AuditEvent) -> Result<(), StoreError>;
    /// Extends a run's lease; false when the run no longer holds it.
    async fn renew_lease(&self, id: Uuid, owner: &str, until: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Records a run's end (status, metrics, error) if its owner still holds the lease; false
    /// when the lease was lost (the run was failed and possibly superseded meanwhile).
    async fn update_run(&self, run: &MaintenanceRun) -> Result<bool, StoreError>;
    /// One run of a tenant.
    async fn get_run(&self, tenant: &TenantId, id: Uuid) -> Result<Option<MaintenanceRun>, StoreError>;
    /// The table's runs, newest first (run ids are UUIDv7), those before the cursor id only.
    async fn list_runs(
        &self,
        table_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<MaintenanceRun>, StoreError>;
    /// The table's most recent finished run, if any.
    async fn last_finished_run(&self, table_id: Uuid) -> Result<Option<MaintenanceRun>, StoreError>;
    /// When each operation last succeeded on the table.
    async fn last_success(
        &self,
        table_id: Uuid,
    ) -> Result<Vec<(crate::maintenance::Operation, DateTime<Utc>)>, StoreError>;
    /// When each operation last succeeded, for every table with a succeeded run: what
    /// [`TableStore::last_success`] answers per table, in one read for the scheduler's pass.
    async fn last_successes(
        &self,
    ) -> Result<
        std::collections::BTreeMap<Uuid, Vec<(crate::maintenance::Operation, DateTime<Utc>)>>,
        StoreError,
    >;
    /// Every queued or running run (the reconciler's maintenance input).
    async fn unfinished_runs(&self) -> Result<Vec<MaintenanceRun>, StoreError>;
    /// Every queued or running run with only what the desired set needs (tenant, table, run,
    /// operations), ordered by run id like [`TableStore::unfinished_runs`]: the reconciler's
    /// read on every loop.
    async fn due_runs(&self) -> Result<Vec<crate::worker::DueRun>, StoreError>;
    /// Tables waiting for their purge as (tenant, table id), in the order of
    /// [`TableStore::tables_deleting`].
    async fn deleting_tables(&self) -> Result<Vec<(TenantId, Uuid)>, StoreError>;
    /// Makes `owner` the run's executor until `until`: a queued run, or a running one whose
    /// lease expired before `now` (its executor died). False when another executor holds it or
    /// it ended.
    async fn claim_run(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}
