//! What each kind of worker does: the work itself, without the bookkeeping (`runner`).

use std::sync::Arc;

use tenancy::store::{MigrationPhase, StreamRecord};
use tenancy::tenant::TenantStatus;
use tenancy::worker::{WorkerKind, WorkerSpec, WorkerTarget};

use super::WorkersError;
use super::runner::{Progress, Work};
use crate::catalog::Catalog;
use crate::ingest::IngestError;
use crate::ingest::kafka::KafkaWorkers;
use crate::provision::Provisioner;

/// The workers' work, over the services they drive.
pub struct Bodies {
    catalog: Arc<Catalog>,
    provisioner: Arc<Provisioner>,
    kafka: Arc<KafkaWorkers>,
    pipelines: crate::pipelines::Pipelines,
}

fn failed(e: impl std::error::Error) -> WorkersError {
    WorkersError::Failed(tenancy::error_chain(&e))
}

impl Bodies {
    /// The bodies over the catalog (maintenance, purges), the provisioner (migrations), the
    /// Kafka consumers (ingest) and the pipelines (their runs).
    pub fn new(
        catalog: Arc<Catalog>,
        provisioner: Arc<Provisioner>,
        kafka: Arc<KafkaWorkers>,
        pipelines: crate::pipelines::Pipelines,
    ) -> Self {
        Self {
            catalog,
            provisioner,
            kafka,
            pipelines,
        }
    }

    /// One pipeline run, to its end. A run that must be retried (storage, the tenant not
    /// ready) fails the worker, so the reconciler starts it again after its backoff; a run
    /// that failed on the pipeline itself fails it too, without the reason (it may hold row
    /// values; it is on the run, where the tenant reads it).
    async fn pipeline(
        &self,
        spec: &WorkerSpec,
        pipeline: uuid::Uuid,
        progress: &Progress,
    ) -> Result<(), WorkersError> {
        let run = spec
            .run
            .ok_or_else(|| WorkersError::Failed("the worker names no pipeline run".into()))?;
        progress.set(serde_json::json!({ "pipeline": pipeline, "run": run, "status": "running" }));
        match self.pipelines.execute(pipeline, run).await? {
            crate::pipelines::Executed::Succeeded(done) => {
                progress.set(serde_json::json!({
                    "pipeline": pipeline,
                    "run": run,
                    "status": "succeeded",
                    "rows_in": done.rows_in,
                    "rows_written": done.rows_written,
                    "rows_dropped": done.rows_dropped,
                    "rows_quarantined": done.rows_quarantined,
                    "target_version": done.target_version,
                }));
                Ok(())
            }
            crate::pipelines::Executed::Gone => Ok(()),
            crate::pipelines::Executed::Failed => Err(WorkersError::Failed(format!(
                "pipeline run {run} failed; the pipeline is failed and the reason is on the run"
            ))),
            crate::pipelines::Executed::Retry(why) => Err(WorkersError::Failed(format!(
                "pipeline run {run} is queued again: {why}"
            ))),
        }
    }

    async fn ingest(&self, stream: uuid::Uuid, owner: &str, progress: &Progress) -> Result<(), WorkersError> {
        let record = self
            .catalog
            .store()
            .get_stream_by_id(stream)
            .await?
            .ok_or_else(|| WorkersError::Failed(format!("stream {stream} is gone")))?;
        loop {
            match self.consume(record.clone(), owner, progress).await {
                // A migrating tenant fences its commits: not a failure of the worker (it would
                // use up its restarts during a long migration), so wait for the tenant.
                Err(IngestError::Fenced { .. }) => self.wait_until_ready(&record.tenant).await?,
                ended => return ended.map_err(failed),
            }
        }
    }

    async fn consume(
        &self,
        record: StreamRecord,
        owner: &str,
        progress: &Progress,
    ) -> Result<(), IngestError> {
        let stream = record.id;
        let consuming = self.kafka.run(record, owner);
        tokio::pin!(consuming);
        let mut report = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                ended = &mut consuming => return ended,
                _ = report.tick() => {
                    // The consumer's own state goes with the lag: a claimed row alone does not
                    // say whether the positions are assigned yet.
                    let status = self.kafka.status(stream);
                    progress.set(serde_json::json!({ "state": status.state, "lag": status.lag }));
                }
            }
        }
    }

    async fn wait_until_ready(&self, tenant: &tenancy::tenant::TenantId) -> Result<(), WorkersError> {
        loop {
            match self.catalog.store().get_tenant(tenant).await? {
                Some(t) if t.status == TenantStatus::Ready => return Ok(()),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
                None => return Err(WorkersError::Failed(format!("tenant {tenant} is gone"))),
            }
        }
    }
}

#[async_trait::async_trait]
impl Work for Bodies {
    /// To completion for one-shot kinds; until an error (or its stream is gone) for ingest.
    async fn run(&self, spec: &WorkerSpec, owner: &str, progress: &Progress) -> Result<(), WorkersError> {
        match (spec.kind, &spec.target) {
            (WorkerKind::Ingest, WorkerTarget::Stream(id)) => self.ingest(*id, owner, progress).await,
            (WorkerKind::Compact | WorkerKind::Retention, WorkerTarget::Table(_)) => {
                let run = spec
                    .run
                    .ok_or_else(|| WorkersError::Failed("the worker names no maintenance run".into()))?;
                let done = self
                    .catalog
                    .execute_queued(&spec.tenant, run)
                    .await
                    .map_err(failed)?;
                if let Some(metrics) = &done.metrics {
                    progress.set(serde_json::json!({ "run": run, "metrics": metrics }));
                }
                Ok(())
            }
            (WorkerKind::Migrate, WorkerTarget::Tenant) => {
                let migration = self
                    .provisioner
                    .store()
                    .migrations()
                    .await?
                    .into_iter()
                    .find(|m| m.tenant == spec.tenant);
                match migration {
                    Some(m) if m.phase == MigrationPhase::Copying => {
                        self.provisioner.copy_and_switch(&m).await.map_err(failed)
                    }
                    // Succeeding here would only make the reconciler start it again, since the
                    // tenant still reads `migrating`: fail visibly instead.
                    _ => Err(WorkersError::Failed(format!(
                        "tenant {} is migrating but no copy is in progress",
                        spec.tenant
                    ))),
                }
            }
            (WorkerKind::Purge, WorkerTarget::Table(id)) => {
                self.catalog.purge_table(*id).await.map_err(failed)
            }
            (WorkerKind::Pipeline, WorkerTarget::Pipeline(id)) => self.pipeline(spec, *id, progress).await,
            (kind, target) => Err(WorkersError::Failed(format!(
                "a {kind} worker cannot work on {target:?}"
            ))),
        }
    }
}
