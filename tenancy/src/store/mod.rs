//! The metadata store: one trait, one implementation per backend (SQLite, PostgreSQL).
//!
//! Queries are plain runtime-checked `sqlx::query` calls inside each backend module; the
//! shared repository test suite runs every query against both backends. See the README's
//! architecture section for why this beats `sqlx::Any` and the compile-time macros here.

mod error;
mod postgres;
mod sqlite;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use error::StoreError;
pub use url::DatabaseUrl;

use crate::audit::{AuditEvent, AuditFilter};
use crate::placement::Candidate;
use crate::role::{Role, Zone};
use crate::tenant::{Tenant, TenantId};

/// Which database engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default: one SQLite file.
    Sqlite,
    /// Production: a PostgreSQL server shared by all replicas.
    Postgres,
}

impl Backend {
    /// The lowercase name used in logs, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Upper bound on open connections.
    pub max_connections: u32,
    /// How long a query waits for a connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A point-in-time view of the connection pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections currently open (idle plus in use).
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The configured maximum.
    pub max: u32,
}

impl PoolStats {
    /// Samples a sqlx pool.
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// The identity of this Lakeplane installation, created once by the first process to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Stable UUIDv7 of the installation; shared by all replicas on one database.
    pub id: Uuid,
    /// When the installation was first started.
    pub created_at: DateTime<Utc>,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run (empty when the schema was already current).
    pub applied: Vec<i64>,
    /// The newest version present after the run.
    pub current: Option<i64>,
}

/// An API token Lakeplane issued (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The token's `jti`.
    pub id: Uuid,
    /// Its tenant; `None` for platform-admin tokens.
    pub tenant: Option<TenantId>,
    /// Its subject.
    pub subject: String,
    /// Its role.
    pub role: Role,
    /// Who issued it.
    pub issued_by: String,
    /// When.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Everything the placement policy needs about the current tenants.
#[derive(Debug, Clone, Default)]
pub struct PlacementSnapshot {
    /// Every tenant, with its current placement.
    pub tenants: Vec<Candidate>,
    /// Shared tenants per shard, indexed by shard.
    pub shard_fill: Vec<u32>,
}

/// Tenants. Every change writes its audit event in the same transaction.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Stores a new tenant; [`StoreError::Conflict`] when the id exists.
    async fn insert_tenant(&self, tenant: &Tenant, audit: &AuditEvent) -> Result<(), StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Tenants ordered by id after `after`, at most `limit`, optionally only `only`.
    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        only: Option<&TenantId>,
    ) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces a tenant's mutable fields; false when it no longer exists.
    async fn update_tenant(&self, tenant: &Tenant, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Deletes a tenant and revokes all its tokens; the number revoked, or `None` if absent.
    async fn delete_tenant(
        &self,
        id: &TenantId,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<u64>, StoreError>;
    /// Records a tenant's 30-day written volume (fed by usage collection).
    async fn record_volume(&self, id: &TenantId, bytes: u64) -> Result<(), StoreError>;
    /// All tenants' placement inputs.
    async fn placement_snapshot(&self) -> Result<PlacementSnapshot, StoreError>;
}

/// Issued API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records an issued token.
    async fn insert_token(&self, token: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// A tenant's tokens, newest first, older than `before`.
    async fn list_tokens(
        &self,
        tenant: &TenantId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes one of a tenant's tokens (idempotent); `None` when it is not that tenant's.
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Revokes any token by id, whatever its tenant (platform-admin tokens have none).
    async fn revoke_any_token(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Ids of revoked tokens expiring after `not_before` (now minus the verification leeway,
    /// so a revoked token never becomes valid again inside the leeway).
    async fn revoked_token_ids(&self, not_before: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError>;
}

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events matching the filter, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A bucket the plane created (a folder, on local storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketRecord {
    /// The bucket name.
    pub name: String,
    /// Dedicated or shared.
    pub kind: crate::placement::PlacementKind,
    /// The shard index, for shared buckets.
    pub shard: Option<u32>,
    /// The owner, for dedicated buckets.
    pub tenant: Option<TenantId>,
    /// The lifecycle document the plane wants (JSON).
    pub desired_lifecycle: Option<String>,
    /// The lifecycle document last read back from the bucket (JSON).
    pub applied_lifecycle: Option<String>,
    /// Whether the storage enforces lifecycle rules (false on local storage).
    pub lifecycle_enforced: bool,
    /// When the plane created it.
    pub created_at: DateTime<Utc>,
}

/// Where a placement migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationPhase {
    /// Keys are being copied and verified; the tenant is `migrating`.
    Copying,
    /// The placement switched; the old keys wait for the grace period, then go.
    Cleanup,
}

/// A placement migration in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// Where its data was.
    pub from: crate::placement::Placement,
    /// Where its data goes.
    pub to: crate::placement::Placement,
    /// The phase.
    pub phase: MigrationPhase,
    /// When the old keys may be deleted (cleanup phase).
    pub cleanup_after: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// Provisioning state: saga steps, zone policies and buckets.
#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    /// Sets a tenant's status and reason.
    async fn set_tenant_status(
        &self,
        id: &TenantId,
        status: crate::tenant::TenantStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Tenants in a status, e.g. to resume provisioning after a restart.
    async fn tenants_with_status(
        &self,
        status: crate::tenant::TenantStatus,
    ) -> Result<Vec<TenantId>, StoreError>;
    /// Steps of the provisioning saga already done for a tenant.
    async fn provisioning_steps(&self, id: &TenantId) -> Result<Vec<String>, StoreError>;
    /// Records a finished step; recording it twice keeps the first.
    async fn record_step(&self, id: &TenantId, step: &str, detail: &str) -> Result<(), StoreError>;
    /// A tenant's own zone policies (zones without one use the platform default).
    async fn zone_policies(
        &self,
        id: &TenantId,
    ) -> Result<Vec<(crate::role::Zone, crate::zone::ZonePolicy)>, StoreError>;
    /// Stores a tenant's zone policy, with its audit event.
    async fn put_zone_policy(
        &self,
        id: &TenantId,
        zone: crate::role::Zone,
        policy: &crate::zone::ZonePolicy,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// The zone policies of every tenant placed in a shared shard.
    async fn shard_policies(
        &self,
        shard: u32,
    ) -> Result<Vec<(TenantId, crate::role::Zone, crate::zone::ZonePolicy)>, StoreError>;
    /// Inserts a bucket, or updates its lifecycle fields if it exists.
    async fn upsert_bucket(&self, bucket: &BucketRecord) -> Result<(), StoreError>;
    /// One bucket.
    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError>;
    /// Every bucket, by name.
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, StoreError>;
    /// Forgets a bucket that was removed.
    async fn delete_bucket_record(&self, name: &str) -> Result<(), StoreError>;
    /// Records a migration and marks the tenant `migrating`, with its audit event; a
    /// [`StoreError::Conflict`] if one is already in flight.
    async fn start_migration(
        &self,
        migration: &MigrationRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Every migration in flight.
    async fn migrations(&self) -> Result<Vec<MigrationRecord>, StoreError>;
    /// Atomically moves the tenant to its new placement, marks it `ready`, and puts the
    /// migration in its cleanup phase.
    async fn switch_placement(
        &self,
        tenant: &TenantId,
        to: &crate::placement::Placement,
        cleanup_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Forgets a finished migration.
    async fn finish_migration(&self, tenant: &TenantId) -> Result<(), StoreError>;
}

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
    /// The table's most recent finished run, if any.
    async fn last_finished_run(&self, table_id: Uuid) -> Result<Option<MaintenanceRun>, StoreError>;
    /// When each operation last succeeded on the table.
    async fn last_success(
        &self,
        table_id: Uuid,
    ) -> Result<Vec<(crate::maintenance::Operation, DateTime<Utc>)>, StoreError>;
    /// Every queued or running run (the reconciler's maintenance input).
    async fn unfinished_runs(&self) -> Result<Vec<MaintenanceRun>, StoreError>;
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

/// An ingestion stream the plane manages.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Stable id (UUIDv7); Kafka positions in the table's log are keyed by it.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant: TenantId,
    /// Stream name.
    pub name: crate::stream::StreamName,
    /// The bronze table it writes.
    pub table_id: Uuid,
    /// That table's name.
    pub table_name: String,
    /// The source, with secret properties sealed.
    pub source: crate::stream::StreamSource,
    /// Default error handling.
    pub on_error: crate::stream::OnError,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// Ingestion streams.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Records a new stream with its audit event, unless the name is taken (`Conflict`) or the
    /// tenant already has `max_streams` streams (`Quota`), both checked in one transaction.
    async fn insert_stream(
        &self,
        stream: &StreamRecord,
        max_streams: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One stream of a tenant.
    async fn get_stream(&self, tenant: &TenantId, name: &str) -> Result<Option<StreamRecord>, StoreError>;
    /// A stream by id.
    async fn get_stream_by_id(&self, id: Uuid) -> Result<Option<StreamRecord>, StoreError>;
    /// A tenant's streams ordered by name, after the `after` name.
    async fn list_streams(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// Every stream of every tenant (for starting the Kafka workers).
    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError>;
    /// How many streams write the table (a table with streams cannot be deleted).
    async fn streams_on_table(&self, table_id: Uuid) -> Result<u32, StoreError>;
    /// Deletes a stream with its audit event; false when it was already gone.
    async fn delete_stream(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
}

/// A worker as the reconciler last recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    /// The spec (its deterministic id is the key).
    pub spec: crate::worker::WorkerSpec,
    /// The observed state.
    pub state: crate::worker::WorkerState,
    /// Restarts so far.
    pub restarts: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it last failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The process running it.
    pub owner: Option<String>,
    /// What it reports of its progress (JSON: lag per partition, or files done).
    pub progress: Option<String>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

impl WorkerRecord {
    /// A worker asked to start at `now`, with no history.
    pub fn pending(spec: crate::worker::WorkerSpec, now: DateTime<Utc>) -> Self {
        Self {
            spec,
            state: crate::worker::WorkerState::Pending,
            restarts: 0,
            failures: 0,
            last_error: None,
            failed_at: None,
            last_heartbeat: None,
            owner: None,
            progress: None,
            updated_at: now,
        }
    }
}

/// Workers' observed state.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// Inserts or replaces a worker's row.
    async fn put_worker(&self, worker: &WorkerRecord) -> Result<(), StoreError>;
    /// One worker by id.
    async fn get_worker(&self, id: &str) -> Result<Option<WorkerRecord>, StoreError>;
    /// Workers by id, optionally of one tenant and in one state, after the `after` id.
    async fn list_workers(
        &self,
        tenant: Option<&TenantId>,
        state: Option<crate::worker::WorkerState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkerRecord>, StoreError>;
    /// Makes `owner` the process running a `pending` worker and marks it `running`; false when
    /// the worker is gone, not pending, or claimed by another process.
    async fn claim_worker(&self, id: &str, owner: &str, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Records a heartbeat (and progress) from the running worker's owner; false when the
    /// worker is gone, no longer running, or owned by another process (it must stop).
    async fn heartbeat(
        &self,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
        progress: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Clears the failure count of a running worker owned by `owner` that has run long enough
    /// to count as recovered (long-running workers never succeed, so nothing else would);
    /// false when another process owns it or it is no longer running.
    async fn mark_recovered(&self, id: &str, owner: &str) -> Result<bool, StoreError>;
    /// Records the end of a running worker owned by `owner`: `succeeded` clears the failure
    /// count, `failed` increments it and keeps `error`. False when another process owns it.
    async fn finish_worker(
        &self,
        id: &str,
        owner: &str,
        state: crate::worker::WorkerState,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Removes a worker's row; false when it was gone.
    async fn delete_worker(&self, id: &str) -> Result<bool, StoreError>;
}

/// One table of a share, pinned by id so a table deleted and created again under the same
/// name does not silently join the share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SharedTable {
    /// The table's id.
    pub table_id: Uuid,
    /// Its zone (the Delta Sharing schema).
    pub zone: Zone,
    /// Its name.
    pub name: String,
}

/// A share: a named set of one tenant's tables, served through Delta Sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// Stable id (UUIDv7); also the protocol's share id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Unique within the tenant.
    pub name: crate::share::ShareName,
    /// The shared tables.
    pub tables: Vec<SharedTable>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A recipient of a share: one bearer token, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    /// Stable id (UUIDv7).
    pub id: Uuid,
    /// The share it reads.
    pub share_id: Uuid,
    /// The share's tenant.
    pub tenant: TenantId,
    /// Unique among the share's unrevoked recipients.
    pub name: crate::share::RecipientName,
    /// SHA-256 of the bearer token.
    pub token_hash: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When its token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Shares and their recipients.
#[async_trait]
pub trait ShareStore: Send + Sync {
    /// Inserts a share with its audit event; `Conflict` when the tenant has one of that name.
    async fn insert_share(&self, share: &ShareRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// One share of a tenant by name.
    async fn get_share(&self, tenant: &TenantId, name: &str) -> Result<Option<ShareRecord>, StoreError>;
    /// One share by id.
    async fn get_share_by_id(&self, id: Uuid) -> Result<Option<ShareRecord>, StoreError>;
    /// A tenant's shares by name, after the cursor.
    async fn list_shares(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// Deletes a share and all its recipients (their tokens stop at once); false if absent.
    async fn delete_share(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Inserts a recipient with its audit event; `Conflict` when an unrevoked one has the name.
    async fn insert_recipient(
        &self,
        recipient: &RecipientRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A share's recipients, newest first, before the cursor id.
    async fn list_recipients(
        &self,
        share: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>, StoreError>;
    /// Revokes an unrevoked recipient of the share; false if absent or already revoked.
    async fn revoke_recipient(
        &self,
        share: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// One recipient by id, revoked or not.
    async fn get_recipient(&self, id: Uuid) -> Result<Option<RecipientRecord>, StoreError>;
    /// The recipient holding the token with this hash, revoked or not.
    async fn recipient_by_token(&self, token_hash: &str) -> Result<Option<RecipientRecord>, StoreError>;
}

/// The metadata store: every repository, implemented once per backend.
#[async_trait]
pub trait MetadataStore:
    TenantStore
    + TokenStore
    + AuditStore
    + ProvisioningStore
    + TableStore
    + StreamStore
    + WorkerStore
    + ShareStore
    + Send
    + Sync
    + 'static
{
    /// The backend behind this store.
    fn backend(&self) -> Backend;

    /// Applies pending migrations under a cross-process lock, so concurrent starts do not race.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// The newest applied migration version, if any.
    async fn schema_version(&self) -> Result<Option<i64>, StoreError>;

    /// Round-trips a trivial query; the readiness check.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Current pool occupancy.
    fn pool_stats(&self) -> PoolStats;

    /// Returns the installation identity, creating it on the very first call against this database.
    async fn ensure_instance(&self) -> Result<Instance, StoreError>;

    /// Closes all connections; later calls fail.
    async fn close(&self);

    /// Takes the reconciler leadership if no other process holds it: a session advisory lock on
    /// a connection of its own (PostgreSQL), or an OS lock on a file beside the database
    /// (SQLite). `None` when another process leads. Dropping the value gives it up; a process
    /// that dies gives it up with its connection or file.
    async fn try_lead(&self) -> Result<Option<Leadership>, StoreError>;
}

/// The PostgreSQL advisory lock key held while migrating: an arbitrary constant that other
/// applications are unlikely to use.
pub const MIGRATION_LOCK_KEY: i64 = 7_134_429_501;

/// The SQLite lock file held while migrating: the database file's path plus this suffix.
pub const SQLITE_MIGRATION_LOCK_SUFFIX: &str = ".migrate-lock";

/// The PostgreSQL advisory-lock key of the reconciler leadership.
pub const LEADER_LOCK_KEY: i64 = 7_134_429_502;

/// Suffix of the SQLite leadership lock file beside the database.
pub const SQLITE_LEADER_LOCK_SUFFIX: &str = ".leader-lock";

/// What keeps a leadership: a connection holding the lock, or a locked file.
#[async_trait]
pub(crate) trait LeaderHold: Send + Sync {
    /// Whether the lock is still held (the connection still answers).
    async fn alive(&mut self) -> bool;
}

/// The reconciler leadership of this process, held while the value lives.
pub struct Leadership(Box<dyn LeaderHold>);

impl Leadership {
    /// Whether leadership is still held; false once the connection holding it is gone, after
    /// which the process must stop acting as leader.
    pub async fn alive(&mut self) -> bool {
        self.0.alive().await
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Leadership")
    }
}

/// Opens the store selected by the URL, checking that the database answers.
///
/// This does not migrate; callers run [`MetadataStore::migrate`] when they mean to.
pub async fn connect(
    url: &DatabaseUrl,
    settings: &PoolSettings,
) -> Result<Arc<dyn MetadataStore>, StoreError> {
    Ok(match url.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, settings).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::connect(url, settings).await?),
    })
}

/// The newest migration version this binary knows, for the given backend.
pub fn latest_known_version(backend: Backend) -> Option<i64> {
    let migrator = match backend {
        Backend::Sqlite => &sqlite::MIGRATOR,
        Backend::Postgres => &postgres::MIGRATOR,
    };
    migrator.iter().map(|m| m.version).max()
}

/// A tenant as the placement policy sees it.
pub(crate) fn candidate(t: &Tenant) -> Candidate {
    Candidate {
        id: t.id.clone(),
        tier: t.tier,
        isolation: t.isolation,
        volume_30d_bytes: t.volume_30d_bytes,
        current: Some(t.placement.clone()),
    }
}

/// Placement inputs from every tenant: candidates and per-shard fill.
pub(crate) fn snapshot(tenants: Vec<Tenant>) -> PlacementSnapshot {
    let mut shard_fill: Vec<u32> = Vec::new();
    for shard in tenants.iter().filter_map(|t| t.placement.shard) {
        let index = shard as usize;
        if shard_fill.len() <= index {
            shard_fill.resize(index + 1, 0);
        }
        shard_fill[index] += 1;
    }
    PlacementSnapshot {
        tenants: tenants.iter().map(candidate).collect(),
        shard_fill,
    }
}

/// Builds a report from the versions present before and after a migration run.
fn report(before: &[i64], after: Vec<i64>) -> MigrationReport {
    let current = after.iter().copied().max();
    let applied = after.into_iter().filter(|v| !before.contains(v)).collect();
    MigrationReport { applied, current }
}
