//! The table catalog: table records in the metadata store kept in step with the Delta tables
//! in the tenant's zones, table purges, and maintenance runs under a lease.

use std::sync::Arc;
use std::time::Duration;

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::maintenance::{Operation, RunMetrics, RunOptions, RunStatus};
use tenancy::role::Zone;
use tenancy::store::{MaintenanceRun, MetadataStore, StoreError, TableRecord, TableStatus};
use tenancy::table::{ColumnSpec, TableSpec};
use tenancy::tenant::{Tenant, TenantStatus};

use crate::delta::maintain::{self, Plan};
use crate::delta::metadata::{MetadataCache, TableMetadata};
use crate::delta::tables::{self, Commit, Snapshot};
use crate::delta::{DeltaError, DeltaSettings};
use crate::layout::zone_prefix;
use crate::provision::Provisioner;
use crate::storage::StorageError;
use tenancy::kind::{Class, Classify, ErrorKind, TENANT_NOT_READY};

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The metadata store failed or refused (conflict, quota, busy lease).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Delta operation failed.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The run lost its table lease (its renewal failed) and stopped.
    #[error("the run lost its table lease and stopped; another run may hold it now")]
    LeaseLost,
    /// The tenant's storage is not usable right now (provisioning, migrating, deleting).
    #[error("tenant {tenant} is {status}; its tables cannot change until it is ready")]
    NotReady {
        /// The tenant.
        tenant: String,
        /// Its status.
        status: &'static str,
    },
}

impl Classify for CatalogError {
    fn class(&self) -> Class {
        match self {
            CatalogError::Store(e) => e.class(),
            CatalogError::Delta(e) => e.class(),
            CatalogError::Storage(e) => e.class(),
            CatalogError::LeaseLost => ErrorKind::Conflict.coded("lease-lost"),
            CatalogError::NotReady { .. } => ErrorKind::Conflict.coded(TENANT_NOT_READY),
        }
    }
}

/// Aborts a task when dropped (a plain `JoinHandle` lets it run on).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Tables whose metadata one process keeps cached (schema and configuration only, no files).
const METADATA_ENTRIES: usize = 10_000;

/// A table's key in the metadata cache: its id and root.
fn metadata_key(record: &TableRecord, root: &str) -> String {
    format!("{}@{root}", record.id)
}

/// How long a queued run waits for a worker before a later request may replace it.
const QUEUE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Tables and their maintenance.
pub struct Catalog {
    provisioner: Arc<Provisioner>,
    delta: DeltaSettings,
    owner: String,
    lease: Duration,
    maintenance: crate::slots::Slots,
    metadata: MetadataCache,
}

impl Catalog {
    /// A catalog over the provisioner's store and storage; `owner` names this process in
    /// maintenance leases.
    pub fn new(provisioner: Arc<Provisioner>, delta: DeltaSettings, owner: String, lease: Duration) -> Self {
        Self {
            provisioner,
            delta,
            owner,
            lease,
            maintenance: crate::slots::Slots::new(2, 1),
            metadata: MetadataCache::new(Duration::from_secs(2), METADATA_ENTRIES),
        }
    }

    /// Serves cached table metadata ([`Catalog::table_metadata`]) for up to `staleness`
    /// before checking the log again.
    #[must_use]
    pub fn with_metadata_staleness(mut self, staleness: Duration) -> Self {
        self.metadata = MetadataCache::new(staleness, METADATA_ENTRIES);
        self
    }

    /// The table's schema, partition columns and configuration, from a cache kept per Delta
    /// version (at most the configured staleness behind changes made outside this process).
    pub async fn table_metadata(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
    ) -> Result<Arc<TableMetadata>, CatalogError> {
        let root = self.table_root(tenant, record.spec.zone, record.spec.name.as_str());
        Ok(self
            .metadata
            .get(&self.delta, &metadata_key(record, &root), &root)
            .await?)
    }

    /// The metadata cache, for its counts.
    pub fn metadata_cache(&self) -> &MetadataCache {
        &self.metadata
    }

    /// Caps the maintenance runs this process executes at once: `process` in all, `per_tenant`
    /// for one tenant (runs past a cap wait their turn, still queued).
    #[must_use]
    pub fn with_maintenance_limits(mut self, process: usize, per_tenant: usize) -> Self {
        self.maintenance = crate::slots::Slots::new(process, per_tenant);
        self
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        self.provisioner.store()
    }

    /// The Delta settings in use.
    pub fn delta(&self) -> &DeltaSettings {
        &self.delta
    }

    /// Where a table lives under the tenant's current placement.
    pub fn table_root(&self, tenant: &Tenant, zone: Zone, name: &str) -> String {
        let bucket = self.provisioner.bucket_of(tenant);
        format!(
            "{}/{}{name}/",
            self.provisioner
                .storage()
                .bucket_uri(&bucket)
                .trim_end_matches('/'),
            zone_prefix(zone, &tenant.id)
        )
    }

    fn writable(tenant: &Tenant) -> Result<(), CatalogError> {
        match tenant.status {
            TenantStatus::Ready => Ok(()),
            status => Err(CatalogError::NotReady {
                tenant: tenant.id.to_string(),
                status: status.as_str(),
            }),
        }
    }

    /// Records and creates a table. The record goes first: it claims the name and the quota in
    /// one transaction; if the Delta table cannot be created the record is removed again.
    pub async fn create(
        &self,
        tenant: &Tenant,
        spec: TableSpec,
        audit: &AuditEvent,
    ) -> Result<(TableRecord, i64), CatalogError> {
        Self::writable(tenant)?;
        let root = self.table_root(tenant, spec.zone, spec.name.as_str());
        let now = tenancy::now();
        let record = TableRecord {
            id: uuid::Uuid::now_v7(),
            tenant: tenant.id.clone(),
            spec,
            location: root.clone(),
            status: TableStatus::Active,
            created_at: now,
            updated_at: now,
        };
        self.store()
            .insert_table(&record, tenant.quotas.max_tables, audit)
            .await?;
        match tables::create(&self.delta, &root, &record.spec).await {
            Ok(version) => Ok((record, version)),
            Err(e) => {
                // The commit may have landed even though an error came back (a timeout), so
                // the files are erased by the purge worker before the name is freed.
                let undo = AuditEvent::system(
                    "table.create.undo",
                    &root,
                    Some(tenant.id.as_str()),
                    Outcome::Error,
                );
                if let Err(undo_error) = self.store().mark_table_deleting(record.id, &undo).await {
                    tracing::error!(table = %root, error = %tenancy::error_chain(&undo_error), "cannot release the record of a table that failed to create");
                }
                Err(e.into())
            }
        }
    }

    /// The table's state from its Delta snapshot.
    pub async fn describe(&self, tenant: &Tenant, record: &TableRecord) -> Result<Snapshot, CatalogError> {
        let root = self.table_root(tenant, record.spec.zone, record.spec.name.as_str());
        let table = tables::open(&self.delta, &root).await?;
        Ok(tables::snapshot(&table, self.delta.small_file_bytes)?)
    }

    /// Delta commits, newest first.
    pub async fn history(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<Commit>, CatalogError> {
        let root = self.table_root(tenant, record.spec.zone, record.spec.name.as_str());
        let table = tables::open(&self.delta, &root).await?;
        Ok(tables::history(&table, limit, before).await?)
    }

    /// Applies a validated change: new columns go into a Delta metadata commit first, then the
    /// record follows. Returns the updated record and the table version.
    pub async fn change(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
        spec: TableSpec,
        added: &[ColumnSpec],
        audit: &AuditEvent,
    ) -> Result<(TableRecord, Option<i64>), CatalogError> {
        Self::writable(tenant)?;
        let root = self.table_root(tenant, record.spec.zone, record.spec.name.as_str());
        let version = if added.is_empty() {
            None
        } else {
            let version = tables::add_columns(&self.delta, &root, added).await;
            // Whether or not it committed, the cached schema may be behind now.
            self.metadata.forget(&metadata_key(record, &root));
            Some(version?)
        };
        let updated = TableRecord {
            spec,
            updated_at: tenancy::now(),
            ..record.clone()
        };
        if !self
            .store()
            .update_table_spec(&updated, record.updated_at, audit)
            .await?
        {
            return Err(StoreError::Conflict(format!(
                "a concurrent change to table {} (read it again and retry)",
                record.spec.name
            ))
            .into());
        }
        Ok((updated, version))
    }

    /// Soft-deletes a table (it leaves the API at once); `purge_deleted` erases it.
    pub async fn delete(&self, record: &TableRecord, audit: &AuditEvent) -> Result<bool, CatalogError> {
        Ok(self.store().mark_table_deleting(record.id, audit).await?)
    }

    /// Purges one soft-deleted table (the purge worker's work); a table already gone is done.
    pub async fn purge_table(&self, id: uuid::Uuid) -> Result<(), CatalogError> {
        match self.store().get_table_by_id(id).await? {
            Some(record) if record.status == TableStatus::Deleting => self.purge_one(&record).await,
            Some(_) => Err(DeltaError::Refused(format!("table {id} is not being deleted")).into()),
            None => Ok(()),
        }
    }

    async fn purge_one(&self, record: &TableRecord) -> Result<(), CatalogError> {
        let Some(tenant) = self.store().get_tenant(&record.tenant).await? else {
            // The tenant purge erased everything of the tenant already.
            return Ok(());
        };
        if tenant.status == TenantStatus::Migrating {
            // The keys are moving: fail, so the worker's backoff tries again once settled.
            return Err(CatalogError::NotReady {
                tenant: tenant.id.to_string(),
                status: "migrating",
            });
        }
        // Taking the table's maintenance lease waits out a running run: it would otherwise
        // write files back into the prefix being erased.
        let lease = self.lease_run(&tenant, record, Vec::new(), RunOptions::default(), "purge");
        let started = AuditEvent::system(
            "table.purge.start",
            &record.location,
            Some(tenant.id.as_str()),
            Outcome::Success,
        );
        // A busy lease fails the purge worker, whose backoff tries again.
        self.store().start_run(&lease, &started).await?;
        let bucket = self.provisioner.bucket_of(&tenant);
        let prefix = format!(
            "{}{}/",
            zone_prefix(record.spec.zone, &tenant.id),
            record.spec.name
        );
        let objects = self.provisioner.storage().delete_prefix(&bucket, &prefix).await?;
        let target = format!(
            "/v1/tenants/{}/tables/{}/{}",
            tenant.id,
            record.spec.zone.as_str(),
            record.spec.name
        );
        let mut audit =
            AuditEvent::system("table.purge", &target, Some(tenant.id.as_str()), Outcome::Success);
        audit.target = format!("{target} ({objects} objects erased)");
        if self.store().delete_table_row(record.id, &audit).await? {
            tracing::info!(table = %target, objects, "table purged");
        }
        Ok(())
    }

    fn lease_run(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
        operations: Vec<Operation>,
        options: RunOptions,
        requested_by: &str,
    ) -> MaintenanceRun {
        let now = tenancy::now();
        MaintenanceRun {
            id: uuid::Uuid::now_v7(),
            table_id: record.id,
            tenant: tenant.id.clone(),
            zone: record.spec.zone,
            table_name: record.spec.name.to_string(),
            operations,
            options,
            status: RunStatus::Running,
            metrics: None,
            error: None,
            requested_by: requested_by.to_owned(),
            lease_owner: self.owner.clone(),
            lease_expires_at: now + chrono::Duration::from_std(self.lease).unwrap_or_default(),
            created_at: now,
            finished_at: None,
        }
    }

    /// Takes the table's maintenance lease and records the run; the caller then executes it
    /// (`execute`). A live run on the table makes this a `Busy` store error.
    pub async fn start_run(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
        operations: Vec<Operation>,
        options: RunOptions,
        requested_by: &str,
        audit: &AuditEvent,
    ) -> Result<MaintenanceRun, CatalogError> {
        Self::writable(tenant)?;
        let run = self.lease_run(tenant, record, operations, options, requested_by);
        self.store().start_run(&run, audit).await?;
        Ok(run)
    }

    /// Records a run as queued for a worker: it holds the table's slot (a second request is
    /// `Busy`) until a worker claims and executes it (`execute_queued`).
    pub async fn queue_run(
        &self,
        tenant: &Tenant,
        record: &TableRecord,
        operations: Vec<Operation>,
        options: RunOptions,
        requested_by: &str,
        audit: &AuditEvent,
    ) -> Result<MaintenanceRun, CatalogError> {
        Self::writable(tenant)?;
        let mut run = self.lease_run(tenant, record, operations, options, requested_by);
        run.status = RunStatus::Queued;
        run.lease_owner = String::new();
        run.lease_expires_at = run.created_at + chrono::Duration::from_std(QUEUE_TTL).unwrap_or_default();
        self.store().start_run(&run, audit).await?;
        Ok(run)
    }

    /// Claims a queued run (or one whose executor died and whose lease expired) and executes
    /// it: the compact and retention workers' work. A run that ends failed is an error.
    pub async fn execute_queued(
        &self,
        tenant: &tenancy::tenant::TenantId,
        id: uuid::Uuid,
    ) -> Result<MaintenanceRun, CatalogError> {
        let mut run = self
            .store()
            .get_run(tenant, id)
            .await?
            .ok_or_else(|| DeltaError::Refused(format!("no maintenance run {id}")))?;
        // One tenant's many tables must not take every slot, nor the process run more at once
        // than its caps; the run stays queued (and claimable elsewhere) while it waits.
        let _slot = self.maintenance.acquire(tenant).await;
        // Queued earlier, maybe long ago: the tenant must still be writable now. The write
        // intent holds a migration that starts meanwhile back until the run holds its lease;
        // from then on the running run's lease does (the migration's drain counts both).
        let (found, intent) = crate::fence::Intent::begin(self.store(), tenant, "maintenance").await?;
        match found {
            Some(t) => Self::writable(&t)?,
            None => return Err(DeltaError::Refused(format!("tenant {tenant} is gone")).into()),
        }
        let now = tenancy::now();
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let claimed = self.store().claim_run(id, &self.owner, until, now).await?;
        intent.end().await;
        if !claimed {
            return Err(StoreError::Busy(format!(
                "maintenance run {id} is {} under another executor's lease",
                run.status.as_str()
            ))
            .into());
        }
        run.status = RunStatus::Running;
        run.lease_owner = self.owner.clone();
        run.lease_expires_at = until;
        let run = self.execute(run).await;
        match run.status {
            RunStatus::Succeeded => Ok(run),
            _ => Err(DeltaError::Refused(
                run.error
                    .clone()
                    .unwrap_or_else(|| "the maintenance run did not succeed".to_owned()),
            )
            .into()),
        }
    }

    /// Executes a started run to its end, renewing the lease meanwhile, and records the
    /// outcome and metrics (also of a failure part-way) with an audit event.
    pub async fn execute(&self, mut run: MaintenanceRun) -> MaintenanceRun {
        let store = self.store().clone();
        let (id, owner, lease) = (run.id, self.owner.clone(), self.lease);
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        // Aborted when this function returns or unwinds, so a panicking run frees its lease.
        let _renewer = AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            let mut failures = 0;
            loop {
                tick.tick().await;
                let until = tenancy::now() + chrono::Duration::from_std(lease).unwrap_or_default();
                match store.renew_lease(id, &owner, until).await {
                    Ok(true) => failures = 0,
                    Ok(false) => break,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(run = %id, error = %tenancy::error_chain(&e), "cannot renew the maintenance lease");
                        if failures >= 2 {
                            break; // the lease may lapse before the next try: stop the work
                        }
                    }
                }
            }
            let _ = lost_tx.send(());
        }));
        let mut metrics = RunMetrics::default();
        let outcome = tokio::select! {
            outcome = self.execute_inner(&run, &mut metrics) => outcome,
            _ = lost_rx => Err(CatalogError::LeaseLost),
        };
        run.metrics = Some(metrics);
        run.finished_at = Some(tenancy::now());
        match outcome {
            Ok(()) => run.status = RunStatus::Succeeded,
            Err(e) => {
                run.status = RunStatus::Failed;
                let chain = tenancy::error_chain(&e);
                tracing::warn!(run = %run.id, tenant = %run.tenant, error = %chain, "maintenance run failed");
                run.error = Some(tenancy::disclosure::run_failure(e.class(), &chain));
            }
        }
        match self.store().update_run(&run).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(run = %run.id, "the run lost its lease; its end is not recorded"),
            Err(e) => {
                tracing::error!(run = %run.id, error = %tenancy::error_chain(&e), "cannot record the end of a maintenance run")
            }
        }
        let target = format!(
            "/v1/tenants/{}/tables/{}/{}/maintenance/{}",
            run.tenant,
            run.zone.as_str(),
            run.table_name,
            run.id
        );
        let outcome = if run.status == RunStatus::Succeeded {
            Outcome::Success
        } else {
            Outcome::Error
        };
        let audit = AuditEvent::system(
            "table.maintenance.finish",
            &target,
            Some(run.tenant.as_str()),
            outcome,
        );
        if let Err(e) = self.store().append_audit(&audit).await {
            tracing::error!(run = %run.id, error = %tenancy::error_chain(&e), "cannot audit the end of a maintenance run");
        }
        run
    }

    async fn execute_inner(
        &self,
        run: &MaintenanceRun,
        metrics: &mut RunMetrics,
    ) -> Result<(), CatalogError> {
        let record = self
            .store()
            .get_table_by_id(run.table_id)
            .await?
            .filter(|t| t.status == TableStatus::Active)
            .ok_or_else(|| DeltaError::Refused("the table was deleted".to_owned()))?;
        let tenant = self
            .store()
            .get_tenant(&run.tenant)
            .await?
            .ok_or_else(|| DeltaError::Refused("the tenant was deleted".to_owned()))?;
        let policies = self.store().zone_policies(&tenant.id).await?;
        let retention_days =
            crate::provision::effective_policies(&self.provisioner.settings().zones, &policies)
                .into_iter()
                .find(|(zone, _)| *zone == record.spec.zone)
                .map(|(_, policy)| policy.retention_days)
                .unwrap_or(u32::MAX);
        let plan = Plan {
            spec: &record.spec,
            retention_days,
            vacuum_retention: run.options.vacuum_retention(),
            allow_short_vacuum: run.options.allow_short_vacuum,
            now: tenancy::now(),
        };
        let root = self.table_root(&tenant, record.spec.zone, record.spec.name.as_str());
        maintain::run(&self.delta, &root, &run.operations, &plan, metrics).await?;
        Ok(())
    }
}
