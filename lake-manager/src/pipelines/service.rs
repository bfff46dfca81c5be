//! Making, changing and asking for runs of pipelines: what the REST handlers call. Creation
//! plans the definition against the source table's current schema and makes the target (and
//! quarantine) table from the planned output when it does not exist, or checks that the
//! existing one can take it.

use std::collections::HashMap;
use std::sync::Arc;

use tenancy::audit::AuditEvent;
use tenancy::pipeline::{PipelineSpec, PipelineState, RunStatus, Trigger};
use tenancy::role::Zone;
use tenancy::store::{PipelineRecord, PipelineRunRecord, StoreError, TableRecord, TableStatus};
use tenancy::table::{ColumnSpec, RawColumn, TableRequest};
use tenancy::tenant::Tenant;
use tenancy::validation::Violation;

use super::plan::{self, Planned};
use super::run::{self, Roots, RunError};
use crate::catalog::{Catalog, CatalogError};
use crate::delta::{DeltaError, tables};

/// The most pipelines a tenant may have.
pub const MAX_PIPELINES_PER_TENANT: u32 = 100;

/// Why a pipeline operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The definition does not fit the tables as they are; each problem names its field.
    #[error("invalid pipeline")]
    Invalid(Vec<Violation>),
    /// The catalog failed (the target's creation, the tenant's state).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The metadata store failed or refused (a taken name, the cap).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source table could not be read.
    #[error(transparent)]
    Delta(#[from] DeltaError),
}

fn invalid(field: &str, message: impl Into<String>) -> PipelineError {
    PipelineError::Invalid(vec![Violation::new(field, message)])
}

/// The pipeline service.
#[derive(Clone)]
pub struct Pipelines {
    catalog: Arc<Catalog>,
    /// One run at a time per pipeline in this process (the `txn` conflict check of Delta
    /// refuses a second writer of the same pipeline from elsewhere).
    running: Arc<std::sync::Mutex<HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Pipelines {
    /// Pipelines over the catalog's tables.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            running: Arc::default(),
        }
    }

    async fn active_table(
        &self,
        tenant: &Tenant,
        zone: Zone,
        name: &str,
    ) -> Result<Option<TableRecord>, StoreError> {
        Ok(self
            .catalog
            .store()
            .get_table(&tenant.id, zone, name)
            .await?
            .filter(|t| t.status == TableStatus::Active))
    }

    /// Plans `spec` against its source's current schema: the columns the target gets.
    pub async fn plan(
        &self,
        tenant: &Tenant,
        spec: &PipelineSpec,
    ) -> Result<(TableRecord, Planned), PipelineError> {
        let source = self
            .active_table(tenant, spec.source.zone, spec.source.table.as_str())
            .await?
            .ok_or_else(|| invalid("source.table", format!("no table {}", spec.source)))?;
        let root = self
            .catalog
            .table_root(tenant, source.spec.zone, source.spec.name.as_str());
        let table = tables::open(self.catalog.delta(), &root).await?;
        let schema = table
            .snapshot()
            .map_err(|e| DeltaError::delta("read schema", &root, e))?
            .snapshot()
            .arrow_schema();
        let planned = plan::plan(spec, schema).await.map_err(PipelineError::Invalid)?;
        Ok((source, planned))
    }

    /// The target (or quarantine) table: the existing one when it can take the planned
    /// columns, else a new one made from them.
    async fn ensure_table(
        &self,
        tenant: &Tenant,
        field: &str,
        zone: Zone,
        name: &str,
        columns: &[ColumnSpec],
        audit: &AuditEvent,
    ) -> Result<TableRecord, PipelineError> {
        if let Some(existing) = self.active_table(tenant, zone, name).await? {
            plan::check_target(columns, &existing.spec.columns).map_err(|why| {
                invalid(
                    field,
                    format!("{}.{name} cannot take the output: {why}", zone.as_str()),
                )
            })?;
            return Ok(existing);
        }
        // The quarantine's `_violations` is the plane's own column, outside the names tables
        // may choose (like a stream's `_ingested_at`): added after the user's are validated.
        let (own, user): (Vec<&ColumnSpec>, Vec<&ColumnSpec>) = columns
            .iter()
            .partition(|c| c.name == tenancy::pipeline::VIOLATIONS_COLUMN);
        let request = TableRequest {
            zone: zone.as_str().to_owned(),
            name: name.to_owned(),
            columns: user
                .iter()
                .map(|c| RawColumn {
                    name: c.name.clone(),
                    column_type: c.column_type.to_string(),
                    nullable: Some(c.nullable),
                })
                .collect(),
            partition_by: Vec::new(),
            event_time_column: None,
            z_order_by: Vec::new(),
            description: Some("made by a pipeline".to_owned()),
            target_file_size_bytes: None,
            subject_columns: Vec::new(),
        };
        let mut spec = request.validate().map_err(|violations| {
            PipelineError::Invalid(
                violations
                    .into_iter()
                    .map(|v| {
                        Violation::new(
                            field,
                            format!("the output as a table: {}: {}", v.field, v.message),
                        )
                    })
                    .collect(),
            )
        })?;
        spec.columns.extend(own.into_iter().cloned());
        // Its own audit event (a new id), as the table create it stands for.
        let mut made = audit.clone();
        made.id = uuid::Uuid::now_v7();
        made.action = "table.create".to_owned();
        made.target = format!("/v1/tenants/{}/tables/{}/{name}", tenant.id, zone.as_str());
        let (record, _version) = self.catalog.create(tenant, spec, &made).await?;
        Ok(record)
    }

    /// Plans and records a pipeline, making its target (and quarantine) table when missing.
    /// The name is checked first, so a taken name makes no table.
    pub async fn create(
        &self,
        tenant: &Tenant,
        spec: PipelineSpec,
        created_by: &str,
        audit: &AuditEvent,
    ) -> Result<PipelineRecord, PipelineError> {
        let store = self.catalog.store();
        if store
            .get_pipeline(&tenant.id, spec.name.as_str())
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!("pipeline {}", spec.name)).into());
        }
        let (source, planned) = self.plan(tenant, &spec).await?;
        let target = self
            .ensure_table(
                tenant,
                "target.table",
                spec.target.zone,
                spec.target.table.as_str(),
                &planned.columns,
                audit,
            )
            .await?;
        if let Some(columns) = &planned.quarantine {
            self.ensure_table(
                tenant,
                "target.table",
                spec.target.zone,
                spec.quarantine_table().as_str(),
                columns,
                audit,
            )
            .await?;
        }
        let now = tenancy::now();
        let record = PipelineRecord {
            id: uuid::Uuid::now_v7(),
            tenant: tenant.id.clone(),
            name: spec.name.clone(),
            spec,
            source_table_id: source.id,
            target_table_id: target.id,
            state: PipelineState::Active,
            failure: None,
            created_by: created_by.to_owned(),
            created_at: now,
            updated_at: now,
        };
        store
            .insert_pipeline(&record, MAX_PIPELINES_PER_TENANT, audit)
            .await?;
        Ok(record)
    }

    /// Runs a queued run now, in this process, in the background.
    pub fn spawn_run(&self, pipeline: uuid::Uuid, run: uuid::Uuid) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.execute(pipeline, run).await {
                tracing::warn!(%pipeline, %run, error = %tenancy::error_chain(&e), "pipeline run could not be recorded");
            }
        });
    }

    /// Takes a queued run, runs it, and records what it did. A run that is no longer queued
    /// (another executor took it) is left alone. A run that breaks on the pipeline itself
    /// (`fail` expectation, a select the source no longer supports) also marks the pipeline
    /// failed; one that breaks on storage leaves it active for the next run.
    pub async fn execute(&self, pipeline_id: uuid::Uuid, run_id: uuid::Uuid) -> Result<(), StoreError> {
        let store = self.catalog.store();
        let lock = {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            running.entry(pipeline_id).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let Some(queued) = store.get_pipeline_run(pipeline_id, run_id).await? else {
            return Ok(());
        };
        if queued.status != RunStatus::Queued {
            return Ok(());
        }
        let Some(pipeline) = store.get_pipeline_by_id(pipeline_id).await? else {
            return Ok(());
        };
        let mut run = queued.clone();
        run.status = RunStatus::Running;
        run.started_at = Some(tenancy::now());
        if !store.update_pipeline_run(&run, RunStatus::Queued).await? {
            return Ok(());
        }
        let result = match store.get_tenant(&pipeline.tenant).await? {
            Some(tenant) => {
                let roots = Roots {
                    source: self.catalog.table_root(
                        &tenant,
                        pipeline.spec.source.zone,
                        pipeline.spec.source.table.as_str(),
                    ),
                    target: self.catalog.table_root(
                        &tenant,
                        pipeline.spec.target.zone,
                        pipeline.spec.target.table.as_str(),
                    ),
                    quarantine: pipeline.spec.quarantines().then(|| {
                        self.catalog.table_root(
                            &tenant,
                            pipeline.spec.target.zone,
                            pipeline.spec.quarantine_table().as_str(),
                        )
                    }),
                };
                // On a task of its own, so a panic in the engine fails the run instead of
                // leaving it `running`.
                let (delta, spec, id, full) = (
                    self.catalog.delta().clone(),
                    pipeline.spec.clone(),
                    pipeline.id,
                    run.full_refresh,
                );
                match tokio::spawn(async move { run::execute(&delta, &spec, id, &roots, full).await }).await {
                    Ok(result) => result,
                    Err(e) => Err(RunError::Engine(format!("the run stopped: {e}"))),
                }
            }
            None => Err(RunError::Failed(format!("tenant {} is gone", pipeline.tenant))),
        };
        let finished = tenancy::now();
        let mut done = run.clone();
        done.finished_at = Some(finished);
        match &result {
            Ok(outcome) => {
                done.status = RunStatus::Succeeded;
                done.source_from = outcome.source_from;
                done.source_to = outcome.source_to;
                done.rows_in = outcome.rows_in;
                done.rows_written = outcome.rows_written;
                done.rows_dropped = outcome.rows_dropped;
                done.rows_quarantined = outcome.rows_quarantined;
                done.expectations = outcome.expectations.clone();
                done.target_version = outcome.target_version;
            }
            Err(e) => {
                done.status = RunStatus::Failed;
                done.error = Some(e.to_string());
                tracing::warn!(pipeline = %pipeline.id, run = %run.id, error = %e, "pipeline run failed");
            }
        }
        store.update_pipeline_run(&done, RunStatus::Running).await?;
        if result.is_ok()
            && let Some(seen) = store.get_pipeline_by_id(pipeline.id).await?
            && seen.state == PipelineState::Failed
        {
            // A retry that went through: the pipeline is healthy again.
            let mut healthy = seen.clone();
            healthy.state = PipelineState::Active;
            healthy.failure = None;
            healthy.updated_at = finished.max(seen.updated_at + chrono::Duration::microseconds(1));
            store.update_pipeline(&healthy, &seen, None).await?;
        }
        if let Err(RunError::Failed(reason)) = &result {
            // Read again: a PATCH may have changed it while the run ran.
            if let Some(seen) = store.get_pipeline_by_id(pipeline.id).await? {
                let mut failed = seen.clone();
                failed.state = PipelineState::Failed;
                failed.failure = Some(reason.clone());
                failed.updated_at = finished.max(seen.updated_at + chrono::Duration::microseconds(1));
                store.update_pipeline(&failed, &seen, None).await?;
            }
        }
        Ok(())
    }

    /// The scheduled pass (the leader's): runs what waits, and queues and runs a run of each
    /// active pipeline whose trigger is due and whose source has a version it has not read.
    /// `interval` is due `seconds` after its last run was asked for; `continuous` at every
    /// pass. Returns how many runs it ran.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let store = self.catalog.store();
        let mut ran = 0;
        for waiting in store.unfinished_pipeline_runs().await? {
            if waiting.status == RunStatus::Queued {
                self.execute(waiting.pipeline_id, waiting.id).await?;
                ran += 1;
            }
        }
        let now = tenancy::now();
        for pipeline in store.active_pipelines().await? {
            let every = match pipeline.spec.trigger {
                Trigger::Manual => continue,
                Trigger::Continuous => None,
                Trigger::Interval { seconds } => Some(chrono::Duration::seconds(i64::from(seconds))),
            };
            let last = store.list_pipeline_runs(pipeline.id, None, 1).await?.pop();
            if let (Some(every), Some(last)) = (every, &last)
                && last.created_at + every > now
            {
                continue;
            }
            if !self.source_moved(&pipeline, last.as_ref()).await {
                continue;
            }
            let run = PipelineRunRecord::queued(&pipeline, false, "trigger", now);
            if let Some(id) = store.queue_pipeline_run(&run, None).await? {
                self.execute(pipeline.id, id).await?;
                ran += 1;
            }
        }
        Ok(ran)
    }

    /// Whether the source has a version the last run did not read (or whether that cannot be
    /// told: then a run finds out).
    async fn source_moved(&self, pipeline: &PipelineRecord, last: Option<&PipelineRunRecord>) -> bool {
        let Some(read) = last
            .filter(|r| r.status == RunStatus::Succeeded)
            .and_then(|r| r.source_to)
        else {
            return true;
        };
        let Ok(Some(tenant)) = self.catalog.store().get_tenant(&pipeline.tenant).await else {
            return true;
        };
        let root = self.catalog.table_root(
            &tenant,
            pipeline.spec.source.zone,
            pipeline.spec.source.table.as_str(),
        );
        match tables::log_store(self.catalog.delta(), &root) {
            Ok(log) => tables::latest_version(&log, &root, read)
                .await
                .map_or(true, |latest| latest > read),
            Err(_) => true,
        }
    }

    /// Queues a run (or answers the one already waiting).
    pub async fn request_run(
        &self,
        pipeline: &PipelineRecord,
        full_refresh: bool,
        requested_by: &str,
        audit: &AuditEvent,
    ) -> Result<Option<uuid::Uuid>, PipelineError> {
        let run = PipelineRunRecord::queued(pipeline, full_refresh, requested_by, tenancy::now());
        Ok(self.catalog.store().queue_pipeline_run(&run, Some(audit)).await?)
    }
}
