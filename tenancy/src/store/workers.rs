//! Workers' observed state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::tenant::TenantId;

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

/// A worker's row as the reconciler reads it on every loop: what the diff, the per-tenant
/// maintenance cap and the loop's report need, without the spec's JSON, the last error, the
/// owner or the progress. At tens of thousands of workers those made most of each loop's
/// time and memory; a worker that gets a step is read in full by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSummary {
    /// The deterministic id (`WorkerSpec::id` of its spec).
    pub id: String,
    /// What it does.
    pub kind: crate::worker::WorkerKind,
    /// Whose data.
    pub tenant: TenantId,
    /// The fingerprint of the spec it runs (or last ran) with, as recorded with it.
    pub fingerprint: String,
    /// The observed state.
    pub state: crate::worker::WorkerState,
    /// Restarts so far.
    pub restarts: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// When it last failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// Its last heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

impl WorkerSummary {
    /// The summary of a full record: what [`WorkerStore::worker_summaries`] reads of its row.
    pub fn of(w: &WorkerRecord) -> Self {
        Self {
            id: w.spec.id(),
            kind: w.spec.kind,
            tenant: w.spec.tenant.clone(),
            fingerprint: w.spec.fingerprint(),
            state: w.state,
            restarts: w.restarts,
            failures: w.failures,
            failed_at: w.failed_at,
            last_heartbeat: w.last_heartbeat,
            updated_at: w.updated_at,
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
    /// Every worker's [`WorkerSummary`] by id, after the `after` id: the reconciler's read.
    async fn worker_summaries(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkerSummary>, StoreError>;
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
