//! Pipelines and their runs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::pipeline::{PipelineName, PipelineSpec, PipelineState, RunStatus};
use crate::tenant::TenantId;

/// A pipeline as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRecord {
    /// Stable id (UUIDv7): the `txn` application id of its commits is derived from it.
    pub id: Uuid,
    /// Its tenant.
    pub tenant: TenantId,
    /// Its name, unique in the tenant.
    pub name: PipelineName,
    /// The validated, planned definition.
    pub spec: PipelineSpec,
    /// The source table's id when the pipeline was made.
    pub source_table_id: Uuid,
    /// The target table's id (made with the pipeline when it did not exist).
    pub target_table_id: Uuid,
    /// Active, paused or failed.
    pub state: PipelineState,
    /// Why it failed (the first violating rows of a `fail` expectation, a broken select).
    pub failure: Option<String>,
    /// Who made it (a token's subject); runs use this owner's grants.
    pub created_by: String,
    /// The owner's role when it made the pipeline: the ceiling of its grants at each run.
    pub owner_role: crate::role::Role,
    /// The owner's groups when it made the pipeline.
    pub owner_groups: Vec<String>,
    /// When made.
    pub created_at: DateTime<Utc>,
    /// Last change of state, trigger or failure.
    pub updated_at: DateTime<Utc>,
}

/// A run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRunRecord {
    /// Stable id (UUIDv7).
    pub id: Uuid,
    /// The pipeline's tenant.
    pub tenant: TenantId,
    /// The pipeline.
    pub pipeline_id: Uuid,
    /// Where it is.
    pub status: RunStatus,
    /// Reads the whole source and replaces the target, rather than only what is new.
    pub full_refresh: bool,
    /// Who asked: a token's subject, or `trigger` for a scheduled run.
    pub requested_by: String,
    /// The first source version read (exclusive of what earlier runs read).
    pub source_from: Option<i64>,
    /// The last source version read.
    pub source_to: Option<i64>,
    /// Rows read from the source.
    pub rows_in: u64,
    /// Rows committed to the target.
    pub rows_written: u64,
    /// Rows left out by `drop` expectations.
    pub rows_dropped: u64,
    /// Rows written to the quarantine table.
    pub rows_quarantined: u64,
    /// Violations per expectation, by name (a row failing two counts in both).
    pub expectations: BTreeMap<String, u64>,
    /// The target version the run committed.
    pub target_version: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// When its worker took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// While running: until when its process has promised to renew it.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl PipelineRunRecord {
    /// A queued run of `pipeline`.
    pub fn queued(
        pipeline: &PipelineRecord,
        full_refresh: bool,
        requested_by: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            tenant: pipeline.tenant.clone(),
            pipeline_id: pipeline.id,
            status: RunStatus::Queued,
            full_refresh,
            requested_by: requested_by.to_owned(),
            source_from: None,
            source_to: None,
            rows_in: 0,
            rows_written: 0,
            rows_dropped: 0,
            rows_quarantined: 0,
            expectations: BTreeMap::new(),
            target_version: None,
            error: None,
            created_at: at,
            started_at: None,
            finished_at: None,
            lease_expires_at: None,
        }
    }
}

/// Pipelines and runs.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    /// Inserts a pipeline with its audit event; `Conflict` when the tenant has one of that
    /// name, `Quota` when it has `max_pipelines` already.
    async fn insert_pipeline(
        &self,
        pipeline: &PipelineRecord,
        max_pipelines: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One pipeline of a tenant, by name.
    async fn get_pipeline(&self, tenant: &TenantId, name: &str)
    -> Result<Option<PipelineRecord>, StoreError>;
    /// One pipeline, by id.
    async fn get_pipeline_by_id(&self, id: Uuid) -> Result<Option<PipelineRecord>, StoreError>;
    /// A tenant's pipelines by name, after the cursor name.
    async fn list_pipelines(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PipelineRecord>, StoreError>;
    /// Writes a pipeline's state, failure and spec (its trigger) with an audit event when it
    /// is still as `seen` was written (same `updated_at`); false when it moved meanwhile.
    async fn update_pipeline(
        &self,
        pipeline: &PipelineRecord,
        seen: &PipelineRecord,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError>;
    /// Deletes a pipeline and its runs; false when it was gone already.
    async fn delete_pipeline(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Queues a run, unless one is queued already for the pipeline: then that one's id is
    /// returned and nothing is written (asking twice does not run twice). With the audit
    /// event of the request. `None` when the pipeline is gone.
    async fn queue_pipeline_run(
        &self,
        run: &PipelineRunRecord,
        audit: Option<&AuditEvent>,
    ) -> Result<Option<Uuid>, StoreError>;
    /// One run of a pipeline.
    async fn get_pipeline_run(
        &self,
        pipeline: Uuid,
        id: Uuid,
    ) -> Result<Option<PipelineRunRecord>, StoreError>;
    /// A pipeline's runs, newest first, before the cursor id.
    async fn list_pipeline_runs(
        &self,
        pipeline: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PipelineRunRecord>, StoreError>;
    /// Takes a run for `owner`: `running` under a lease until `until`, started at `now`, when
    /// it is queued or running under a lease that lapsed by `now`. False: another attempt holds
    /// it, or it ended (or is gone).
    async fn take_pipeline_run(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Extends `owner`'s lease of a running run; false when `owner` no longer holds it (another
    /// attempt took the run, it ended, or it is gone).
    async fn renew_pipeline_run(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records the end (or the return to the queue) of a run `owner` holds: the record's
    /// status, counts, error and times, the lease cleared. False when `owner` no longer holds it.
    async fn end_pipeline_run(&self, run: &PipelineRunRecord, owner: &str) -> Result<bool, StoreError>;
    /// Every active pipeline of every tenant, by id: what the scheduler looks at.
    async fn active_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError>;
    /// Deletes the pipeline's finished runs beyond its newest `keep` runs; returns how many.
    /// Unfinished runs are never deleted.
    async fn prune_pipeline_runs(&self, pipeline: Uuid, keep: u32) -> Result<u64, StoreError>;
    /// Every run not finished (queued, or running), oldest first, as (tenant, pipeline, run):
    /// the pipeline workers' work, read by the reconciler on every loop.
    async fn unfinished_pipeline_runs(&self) -> Result<Vec<(TenantId, Uuid, Uuid)>, StoreError>;
}
