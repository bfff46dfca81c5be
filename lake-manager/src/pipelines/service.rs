//! Making, changing and asking for runs of pipelines: what the REST handlers call. Creation
//! plans the definition against the source table's current schema and makes the target (and
//! quarantine) table from the planned output when it does not exist, or checks that the
//! existing one can take it.

use std::collections::HashMap;
use std::sync::Arc;

use tenancy::audit::AuditEvent;
use tenancy::grants::{Identity, Privilege, TenantGrants};
use tenancy::pipeline::{PipelineSpec, PipelineState, RunStatus, Trigger};
use tenancy::policy::Principal;
use tenancy::role::Zone;
use tenancy::store::{PipelineRecord, PipelineRunRecord, StoreError, TableRecord, TableStatus};
use tenancy::table::{ColumnSpec, RawColumn, TableRequest};
use tenancy::tenant::{Tenant, TenantStatus};
use tenancy::validation::Violation;

use super::plan::{self, Planned};
use super::run::{self, Roots, RunError};
use crate::catalog::{Catalog, CatalogError};
use crate::delta::{DeltaError, tables};

/// The most pipelines a tenant may have.
pub const MAX_PIPELINES_PER_TENANT: u32 = 100;

/// Runs computing at once in this process, whatever asked for them: each holds a batch of
/// rows in memory and a core busy, and requests must not pile them up without bound.
static RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

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

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Finished runs kept per pipeline; older ones are deleted as new ones end.
pub const RUNS_KEPT: u32 = 1_000;

/// How [`Pipelines::execute`] ended a run.
#[derive(Debug)]
pub enum Executed {
    /// Committed (or found nothing new); the record as it ended.
    Succeeded(Box<PipelineRunRecord>),
    /// Failed on the pipeline itself (a `fail` expectation, a select the source no longer
    /// supports, a table replaced): the run and the pipeline are failed with the reason, and
    /// the pipeline waits for someone to act.
    Failed,
    /// Not run to its end for a reason that may pass (storage, the engine, the tenant not
    /// ready, another process holding it): the run is queued again, for a retry after a
    /// backoff.
    Retry(String),
    /// The run or its pipeline is gone, or the run had already ended: nothing to do.
    Gone,
}

/// The pipeline service.
#[derive(Clone)]
pub struct Pipelines {
    catalog: Arc<Catalog>,
    /// One run at a time per pipeline in this process (the `txn` conflict check of Delta
    /// refuses a second writer of the same pipeline from elsewhere).
    running: Arc<std::sync::Mutex<HashMap<uuid::Uuid, Arc<tokio::sync::Mutex<()>>>>>,
    /// A running run's lease, renewed every `renew_every` by the process running it. While it
    /// is live, a placement migration of the tenant waits (the fence), and no other process
    /// takes the run; once it lapsed (its process died), the run's restarted worker resumes it.
    lease: std::time::Duration,
    renew_every: std::time::Duration,
    /// Longest a run may compute.
    run_limit: std::time::Duration,
}

impl Pipelines {
    /// Pipelines over the catalog's tables.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            running: Arc::default(),
            lease: std::time::Duration::from_secs(10),
            renew_every: std::time::Duration::from_secs(3),
            run_limit: std::time::Duration::from_secs(3600),
        }
    }

    /// Run leases of `lease`, renewed every `renew_every` (the workers' heartbeat timeout and
    /// interval).
    pub fn with_lease(mut self, lease: std::time::Duration, renew_every: std::time::Duration) -> Self {
        self.lease = lease;
        self.renew_every = renew_every;
        self
    }

    /// Runs that compute longer than `limit` fail, and so does their pipeline.
    pub fn with_run_limit(mut self, limit: std::time::Duration) -> Self {
        self.run_limit = limit;
        self
    }

    fn lease_until(&self) -> chrono::DateTime<chrono::Utc> {
        tenancy::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::TimeDelta::MAX)
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
        let schema = run::arrow_schema(&table, &root)?;
        let planned = plan::plan(spec, schema).await.map_err(PipelineError::Invalid)?;
        Ok((source, planned))
    }

    /// The existing target (or quarantine) table, when it can take the planned columns; `None`
    /// when there is none (it will be made).
    async fn existing_table(
        &self,
        tenant: &Tenant,
        field: &str,
        zone: Zone,
        name: &str,
        columns: &[ColumnSpec],
    ) -> Result<Option<TableRecord>, PipelineError> {
        let Some(existing) = self.active_table(tenant, zone, name).await? else {
            return Ok(None);
        };
        plan::check_target(columns, &existing.spec.columns).map_err(|why| {
            invalid(
                field,
                format!("{}.{name} cannot take the output: {why}", zone.as_str()),
            )
        })?;
        Ok(Some(existing))
    }

    /// Makes a target (or quarantine) table from the planned columns; a refusal names
    /// `target.table` (or `aggregate.partition_by` for a partition column).
    async fn make_table(
        &self,
        tenant: &Tenant,
        zone: Zone,
        name: &str,
        columns: &[ColumnSpec],
        partition_by: &[String],
        audit: &AuditEvent,
    ) -> Result<TableRecord, PipelineError> {
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
            partition_by: partition_by.to_vec(),
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
                        // A partition column the table refuses (a float) is the aggregate's.
                        let field = if v.field.starts_with("partition_by") {
                            "aggregate.partition_by"
                        } else {
                            "target.table"
                        };
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
        owner: &Principal,
        audit: &AuditEvent,
    ) -> Result<PipelineRecord, PipelineError> {
        let store = self.catalog.store();
        // Everything that can refuse the pipeline is checked before any table is made. The
        // tenant's pipelines, all of them (at most the cap), answer the name, the cap and the
        // tables taken.
        let mine = store
            .list_pipelines(&tenant.id, None, MAX_PIPELINES_PER_TENANT + 1)
            .await?;
        if mine.iter().any(|p| p.name == spec.name) {
            return Err(StoreError::Conflict(format!("pipeline {}", spec.name)).into());
        }
        if mine.len() >= MAX_PIPELINES_PER_TENANT as usize {
            return Err(StoreError::Quota(format!(
                "tenant {} has {} pipelines, the most a tenant may have",
                tenant.id,
                mine.len()
            ))
            .into());
        }
        // Two pipelines writing one table would undo each other (an aggregate replaces it).
        let writes = |p: &PipelineRecord, zone: Zone, name: &str| {
            p.spec.target.zone == zone
                && (p.spec.target.table.as_str() == name
                    || (p.spec.quarantines() && p.spec.quarantine_table().as_str() == name))
        };
        let quarantine = spec.quarantine_table();
        for name in std::iter::once(spec.target.table.as_str())
            .chain(spec.quarantines().then_some(quarantine.as_str()))
        {
            if let Some(other) = mine.iter().find(|p| writes(p, spec.target.zone, name)) {
                return Err(invalid(
                    "target.table",
                    format!(
                        "pipeline {} writes {}.{name} already",
                        other.name,
                        spec.target.zone.as_str()
                    ),
                ));
            }
        }
        let (source, planned) = self.plan(tenant, &spec).await?;
        let zone = spec.target.zone;
        let existing_target = self
            .existing_table(
                tenant,
                "target.table",
                zone,
                spec.target.table.as_str(),
                &planned.columns,
            )
            .await?;
        let existing_quarantine = match &planned.quarantine {
            Some(columns) => Some(
                self.existing_table(tenant, "target.table", zone, quarantine.as_str(), columns)
                    .await?,
            ),
            None => None,
        };
        let partition_by = spec
            .aggregate
            .as_ref()
            .map(|a| a.partition_by.clone())
            .unwrap_or_default();
        let target = match existing_target {
            Some(table) => {
                if !partition_by.is_empty() && table.spec.partition_by != partition_by {
                    return Err(invalid(
                        "aggregate.partition_by",
                        format!(
                            "{}.{} is partitioned by [{}]; the pipeline asks for [{}]",
                            zone.as_str(),
                            spec.target.table,
                            table.spec.partition_by.join(", "),
                            partition_by.join(", ")
                        ),
                    ));
                }
                table
            }
            None => {
                self.make_table(
                    tenant,
                    zone,
                    spec.target.table.as_str(),
                    &planned.columns,
                    &partition_by,
                    audit,
                )
                .await?
            }
        };
        if let (Some(None), Some(columns)) = (existing_quarantine, &planned.quarantine) {
            self.make_table(tenant, zone, quarantine.as_str(), columns, &[], audit)
                .await?;
        }
        let mut spec = spec;
        spec.output = planned.columns.clone();
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
            created_by: owner.subject.clone(),
            owner_role: owner.role,
            owner_groups: owner.groups.clone(),
            created_at: now,
            updated_at: now,
        };
        store
            .insert_pipeline(&record, MAX_PIPELINES_PER_TENANT, audit)
            .await?;
        Ok(record)
    }

    /// Checks, from the store and not a cache, that the pipeline's owner still holds `SELECT`
    /// on the source and `MODIFY` on the target, within the role it had when it made the
    /// pipeline. A lost grant fails the run and the pipeline, naming what is missing.
    async fn owner_may_run(&self, pipeline: &PipelineRecord) -> Result<(), RunError> {
        let grants = self
            .catalog
            .store()
            .list_grants(&pipeline.tenant)
            .await
            .map_err(|e| RunError::Engine(format!("reading the owner's grants: {e}")))?;
        let grants = TenantGrants::new(grants);
        let owner = Identity {
            subject: &pipeline.created_by,
            role: pipeline.owner_role,
            groups: &pipeline.owner_groups,
        };
        let (source, target) = (&pipeline.spec.source, &pipeline.spec.target);
        grants
            .check_table(&owner, source.zone, source.table.as_str(), Privilege::Select)
            .and_then(|()| grants.check_table(&owner, target.zone, target.table.as_str(), Privilege::Modify))
            .map_err(|missing| {
                RunError::Failed(format!(
                    "the pipeline runs with the grants of its owner {} ({}), who no longer may: {missing}; \
                     grant it again and retry, or make the pipeline again as someone who may",
                    pipeline.created_by, pipeline.owner_role
                ))
            })
    }

    /// Executes run `run_id` of `pipeline_id` to its end: the `pipeline` worker's work. It takes
    /// the run when it is queued, or when it is `running` under a lease that lapsed (the process
    /// that ran it died: the run resumes from the tables' marks, so nothing is lost or written
    /// twice). A run that is not there any more (its pipeline deleted) or already ended is no
    /// work. See [`Executed`] for how a run that does not succeed ends.
    pub async fn execute(&self, pipeline_id: uuid::Uuid, run_id: uuid::Uuid) -> Result<Executed, StoreError> {
        let lock = self.lock_of(pipeline_id);
        let _one_at_a_time = lock.lock().await;
        // The compute slot before the run's lease: a run waiting for a slot must not hold a
        // lease it cannot renew yet.
        let _slot = RUNS.acquire().await;
        let store = self.catalog.store();
        let Some(pipeline) = store.get_pipeline_by_id(pipeline_id).await? else {
            return Ok(Executed::Gone);
        };
        let Some(mut run) = self.take(pipeline_id, run_id).await? else {
            return Ok(Executed::Gone);
        };
        // This attempt's name on the lease: only it renews the lease and records the end.
        let owner = format!("run-{}", uuid::Uuid::now_v7());
        // The fence of placement migrations: the tenant must be ready when the run takes its
        // lease, and from then on the live lease holds a migration's copy back until the run
        // ends (`live_writes` counts it). The intent covers the moment in between.
        let (tenant, intent) = crate::fence::Intent::begin(store, &pipeline.tenant, "pipeline").await?;
        match tenant {
            Some(t) if t.status == TenantStatus::Ready => {}
            Some(t) => {
                return Ok(Executed::Retry(format!(
                    "tenant {} is {}; pipelines run when it is ready",
                    t.id,
                    t.status.as_str()
                )));
            }
            None => return Ok(Executed::Gone),
        }
        let now = tenancy::now();
        run.status = RunStatus::Running;
        run.started_at = Some(now);
        run.lease_expires_at = Some(self.lease_until());
        let taken = store
            .take_pipeline_run(run.id, &owner, self.lease_until(), now)
            .await?;
        intent.end().await;
        if !taken {
            // Another process took it (or it ended) since it was read: that one runs it.
            return Ok(Executed::Retry(format!(
                "pipeline run {run_id} was taken by another process"
            )));
        }
        // From here the run is `running`: whatever happens, it is recorded as ended (or given
        // back to the queue), and its lease is renewed while it computes.
        // A renewal that finds the lease gone (another attempt took the run over) stops this
        // one: the other runs it now.
        let renew = async {
            loop {
                tokio::time::sleep(self.renew_every).await;
                match store.renew_pipeline_run(run.id, &owner, self.lease_until()).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        tracing::warn!(run = %run.id, error = %tenancy::error_chain(&e), "cannot renew the run's lease");
                    }
                }
            }
        };
        let limit = self.run_limit;
        let result = tokio::select! {
            result = tokio::time::timeout(limit, async {
                self.owner_may_run(&pipeline).await?;
                self.run_once(&pipeline, run.full_refresh).await
            }) => {
                // The same data would take as long again: the pipeline waits for someone to
                // act rather than retry it forever.
                result.unwrap_or_else(|_| Err(RunError::Failed(format!(
                    "the run computed for longer than {} s (workers.pipeline_run_timeout_secs) and was \
                     stopped; nothing it had not committed was kept",
                    limit.as_secs()
                ))))
            }
            () = renew => Err(RunError::Engine("the run's lease was taken over by another attempt".to_owned())),
        };
        let finished = tenancy::now();
        let mut done = run.clone();
        done.lease_expires_at = None;
        let executed = match &result {
            Ok(outcome) => {
                done.status = RunStatus::Succeeded;
                done.finished_at = Some(finished);
                done.error = None;
                done.source_from = outcome.source_from;
                done.source_to = outcome.source_to;
                done.rows_in = outcome.rows_in;
                done.rows_written = outcome.rows_written;
                done.rows_dropped = outcome.rows_dropped;
                done.rows_quarantined = outcome.rows_quarantined;
                done.expectations = outcome.expectations.clone();
                done.target_version = outcome.target_version;
                Executed::Succeeded(Box::new(done.clone()))
            }
            Err(RunError::Failed(reason)) => {
                // The reason may hold row values (a `fail` expectation's rows): it is on the run
                // and the pipeline, not in the log nor on the worker.
                tracing::warn!(pipeline = %pipeline.id, run = %run.id, "pipeline run failed; the pipeline is failed, the reason is on the run");
                done.status = RunStatus::Failed;
                done.finished_at = Some(finished);
                done.error = Some(reason.clone());
                Executed::Failed
            }
            Err(other) => {
                // Storage or the engine failed part-way: what was committed carries the marks,
                // so the run goes back to the queue and its worker retries it after a backoff.
                // The cause chain names the plane's buckets, paths and hosts: it goes to the log
                // and the worker record (operators), the tenant's run gets its class.
                let why = tenancy::error_chain(other);
                tracing::warn!(pipeline = %pipeline.id, run = %run.id, error = %why, "pipeline run interrupted; it is queued again");
                let class = match other {
                    RunError::Delta(_) => "reading or writing the tables",
                    _ => "computing the run",
                };
                done.status = RunStatus::Queued;
                done.started_at = None;
                done.error = Some(format!(
                    "an attempt failed while {class} and is retried after a backoff; the cause is in \
                     the server log and the pipeline worker's record"
                ));
                Executed::Retry(why)
            }
        };
        // The run's end is recorded even through a brief store outage, and only while this
        // attempt holds the lease: one that lost it leaves the run to the attempt that took it.
        let mut attempt = 0;
        loop {
            match store.end_pipeline_run(&done, &owner).await {
                Ok(true) => break,
                Ok(false) => {
                    tracing::warn!(run = %run.id, "the run was taken over by another attempt; its end is not recorded here");
                    return Ok(Executed::Retry(format!(
                        "pipeline run {run_id} was taken over by another attempt"
                    )));
                }
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(run = %run.id, error = %tenancy::error_chain(&e), "cannot record the run's end yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        match store.prune_pipeline_runs(pipeline.id, RUNS_KEPT).await {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pipeline = %pipeline.id, pruned, "old pipeline runs deleted"),
            Err(e) => {
                tracing::warn!(pipeline = %pipeline.id, error = %tenancy::error_chain(&e), "cannot delete old pipeline runs; the next run tries again")
            }
        }
        let Some(seen) = store.get_pipeline_by_id(pipeline.id).await? else {
            return Ok(executed);
        };
        // Read again: a PATCH may have changed it while the run ran (a pause stays a pause).
        let state = match &result {
            Ok(_) if seen.state == PipelineState::Failed => Some((PipelineState::Active, None)),
            Err(RunError::Failed(reason)) if seen.state != PipelineState::Paused => {
                Some((PipelineState::Failed, Some(reason.clone())))
            }
            _ => None,
        };
        if let Some((state, failure)) = state {
            let mut changed = seen.clone();
            changed.state = state;
            changed.failure = failure;
            changed.updated_at = finished.max(seen.updated_at + chrono::Duration::microseconds(1));
            store.update_pipeline(&changed, &seen, None).await?;
        }
        Ok(executed)
    }

    /// The run, when this process may take it: queued, or running under a lease that lapsed.
    /// A run running under a live lease is waited for (its process is stopping: the worker
    /// was started here because that one stopped heartbeating) until the lease lapses or the
    /// run ends. `None`: gone or ended.
    async fn take(
        &self,
        pipeline_id: uuid::Uuid,
        run_id: uuid::Uuid,
    ) -> Result<Option<PipelineRunRecord>, StoreError> {
        let store = self.catalog.store();
        loop {
            let Some(run) = store.get_pipeline_run(pipeline_id, run_id).await? else {
                return Ok(None);
            };
            match run.status {
                RunStatus::Queued => return Ok(Some(run)),
                RunStatus::Succeeded | RunStatus::Failed => return Ok(None),
                RunStatus::Running => {
                    let now = tenancy::now();
                    match run.lease_expires_at {
                        Some(until) if until > now => {
                            let wait = (until - now).to_std().unwrap_or_default();
                            tokio::time::sleep(wait.min(self.renew_every)).await;
                        }
                        _ => return Ok(Some(run)),
                    }
                }
            }
        }
    }

    fn lock_of(&self, pipeline_id: uuid::Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Locks of pipelines with no run in progress go, so the map holds only live ones.
        running.retain(|_, lock| Arc::strong_count(lock) > 1);
        running.entry(pipeline_id).or_default().clone()
    }

    /// The run itself: the tables checked, then [`run::execute`] on a task of its own, so a
    /// panic in the engine fails the run instead of leaving it `running`.
    async fn run_once(
        &self,
        pipeline: &PipelineRecord,
        full_refresh: bool,
    ) -> Result<run::Outcome, RunError> {
        let store = self.catalog.store();
        let unavailable =
            |e: StoreError| RunError::Engine(format!("the metadata store: {}", tenancy::error_chain(&e)));
        let Some(tenant) = store.get_tenant(&pipeline.tenant).await.map_err(unavailable)? else {
            return Err(RunError::Failed(format!("tenant {} is gone", pipeline.tenant)));
        };
        if tenant.status != TenantStatus::Ready {
            return Err(RunError::Engine(format!(
                "tenant {} is {}; pipelines run when it is ready",
                tenant.id,
                tenant.status.as_str()
            )));
        }
        // The pipeline is bound to the tables it was made with: a table deleted (and perhaps
        // made again under the name) is another table, whose versions mean something else.
        let spec = &pipeline.spec;
        for (what, zone, name, id) in [
            (
                "source",
                spec.source.zone,
                spec.source.table.as_str(),
                pipeline.source_table_id,
            ),
            (
                "target",
                spec.target.zone,
                spec.target.table.as_str(),
                pipeline.target_table_id,
            ),
        ] {
            let table = store
                .get_table(&tenant.id, zone, name)
                .await
                .map_err(unavailable)?;
            if !table.is_some_and(|t| t.id == id && t.status == TableStatus::Active) {
                return Err(RunError::Failed(format!(
                    "the {what} table {}.{name} is not the one the pipeline was made with any more \
                     (deleted, or made again); make the pipeline again",
                    zone.as_str()
                )));
            }
        }
        let roots = Roots {
            source: self
                .catalog
                .table_root(&tenant, spec.source.zone, spec.source.table.as_str()),
            target: self
                .catalog
                .table_root(&tenant, spec.target.zone, spec.target.table.as_str()),
            quarantine: spec.quarantines().then(|| {
                self.catalog
                    .table_root(&tenant, spec.target.zone, spec.quarantine_table().as_str())
            }),
        };
        let (delta, spec, id) = (self.catalog.delta().clone(), spec.clone(), pipeline.id);
        let task = tokio::spawn(async move { run::execute(&delta, &spec, id, &roots, full_refresh).await });
        // Stopping the run (the worker stopped, the time limit) must stop the task too: a
        // detached task would go on committing after its lease stopped being renewed.
        let _abort = AbortOnDrop(task.abort_handle());
        match task.await {
            Ok(result) => result,
            Err(e) => Err(RunError::Engine(format!("the run stopped: {e}"))),
        }
    }

    /// The scheduled pass (the leader's): queues a run of each active pipeline whose trigger
    /// is due and whose source has a version it has not read; the reconciler then starts a
    /// `pipeline` worker for it. `interval` is due `seconds` after its last run was asked for;
    /// `continuous` at every pass. A run already waiting takes the request. Returns how many
    /// pipelines have a run waiting because of this pass.
    pub async fn trigger_due(&self) -> Result<usize, StoreError> {
        let store = self.catalog.store();
        let mut queued = 0;
        let now = tenancy::now();
        for pipeline in store.active_pipelines().await? {
            let every = match pipeline.spec.trigger {
                Trigger::Manual => continue,
                Trigger::Continuous => None,
                Trigger::Interval { seconds } => Some(chrono::Duration::seconds(i64::from(seconds))),
            };
            let Ok(Some(tenant)) = store.get_tenant(&pipeline.tenant).await else {
                continue;
            };
            if tenant.status != TenantStatus::Ready {
                continue;
            }
            let last = store.list_pipeline_runs(pipeline.id, None, 1).await?.pop();
            if let (Some(every), Some(last)) = (every, &last)
                && last.created_at + every > now
            {
                continue;
            }
            if !self.source_moved(&tenant, &pipeline, last.as_ref()).await {
                continue;
            }
            let run = PipelineRunRecord::queued(&pipeline, false, "trigger", now);
            if store.queue_pipeline_run(&run, None).await?.is_some() {
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Whether the source has a version the last run did not read (or whether that cannot be
    /// told: then a run finds out).
    async fn source_moved(
        &self,
        tenant: &Tenant,
        pipeline: &PipelineRecord,
        last: Option<&PipelineRunRecord>,
    ) -> bool {
        let Some(read) = last
            .filter(|r| r.status == RunStatus::Succeeded)
            .and_then(|r| r.source_to)
        else {
            return true;
        };
        let root = self.catalog.table_root(
            tenant,
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
