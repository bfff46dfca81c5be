//! The ingestion service: creating and deleting streams (with their metadata columns and
//! dead-letter tables), HTTP pushes through the group committer, and the Kafka workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::rate::TokenBucket;
use tenancy::role::Zone;
use tenancy::store::{MetadataStore, StoreError, StreamRecord, TableRecord, TableStatus};
use tenancy::stream::{
    OnError, StreamSource, StreamSpec, dlq_name, dlq_spec, metadata_columns, missing_metadata_columns,
};
use tenancy::table::TableSpec;
use tenancy::tenant::{Tenant, TenantId, TenantStatus};

use super::IngestError;
use super::admission::{Admission, BodyRoom, PushLimits};
use super::decode::{self, BodyFormat, EventError, Metadata};
use super::group_commit::{GroupCommitSettings, GroupCommitter, Target};
use super::kafka::{KafkaSettings, KafkaWorkers, WorkerStatus};
use super::secrets::Sealer;
use crate::catalog::Catalog;

/// Bad events listed in a 422 answer or a push summary.
pub const MAX_LISTED_ERRORS: usize = 10;

/// What a push wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PushOutcome {
    /// Events written to the table.
    pub accepted: usize,
    /// Events sent to the dead-letter table.
    pub rejected: usize,
    /// The table version holding the accepted events (null when none were accepted).
    pub version: Option<i64>,
    /// The dead-letter table version holding the rejected ones.
    pub dlq_version: Option<i64>,
    /// The first bad events, with line and field.
    pub errors: Vec<EventError>,
}

/// A stream's runtime state, for the API.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StreamState {
    /// `active` (HTTP), or the Kafka worker's state: `starting`, `running`, `failed`, `stopped`.
    pub status: String,
    /// Kafka: per-partition lag (high watermark minus next offset to write).
    pub lag: Option<std::collections::BTreeMap<i32, i64>>,
    /// Kafka: the worker's last error.
    pub last_error: Option<String>,
}

/// Streams and their ingestion.
pub struct Ingest {
    catalog: Arc<Catalog>,
    committer: GroupCommitter,
    sealer: Option<Sealer>,
    buckets: Mutex<HashMap<TenantId, TokenBucket>>,
    origin: Instant,
    admission: Admission,
    decoding: Arc<tokio::sync::Semaphore>,
    fence_wait: std::time::Duration,
    wake: Arc<tokio::sync::Notify>,
    kafka: Arc<KafkaWorkers>,
}

fn audit(action: &str, target: &str, tenant: &TenantId) -> AuditEvent {
    AuditEvent::system(action, target, Some(tenant.as_str()), Outcome::Success)
}

impl Ingest {
    /// The service over a catalog; `sealer` is needed to store Kafka secrets; `wake` wakes
    /// the reconciler when streams come and go.
    pub fn new(
        catalog: Arc<Catalog>,
        group_commit: GroupCommitSettings,
        push: PushLimits,
        kafka: KafkaSettings,
        sealer: Option<Sealer>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Arc<Self> {
        let admission = Admission::new(group_commit.total_buffer_bytes, push.tenant_buffer_bytes);
        let decoding = Arc::new(tokio::sync::Semaphore::new(push.decode_threads.max(1)));
        let committer = GroupCommitter::new(group_commit, catalog.delta().clone(), catalog.store().clone());
        Arc::new(Self {
            kafka: Arc::new(KafkaWorkers::new(catalog.clone(), kafka, sealer.clone())),
            catalog,
            committer,
            sealer,
            buckets: Mutex::new(HashMap::new()),
            origin: Instant::now(),
            admission,
            decoding,
            fence_wait: push.fence_wait,
            wake,
        })
    }

    fn store(&self) -> &Arc<dyn MetadataStore> {
        self.catalog.store()
    }

    /// The group committer (for metrics).
    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    /// The Kafka consumers (the ingest workers' bodies).
    pub fn kafka(&self) -> &Arc<KafkaWorkers> {
        &self.kafka
    }

    fn ready(tenant: &Tenant) -> Result<(), IngestError> {
        match tenant.status {
            TenantStatus::Ready => Ok(()),
            status => Err(IngestError::Fenced {
                tenant: tenant.id.to_string(),
                status: status.as_str(),
            }),
        }
    }

    /// Creates a stream: checks name and quota, seals secrets, adds the metadata columns to the
    /// table, creates (or extends) the dead-letter table, records the stream and starts its
    /// Kafka worker. Bad input is refused before anything changes.
    pub async fn create_stream(
        &self,
        tenant: &Tenant,
        spec: StreamSpec,
        audit_event: &AuditEvent,
    ) -> Result<StreamRecord, IngestError> {
        Self::ready(tenant)?;
        let table = self
            .store()
            .get_table(&tenant.id, Zone::Bronze, spec.table.as_str())
            .await?
            .filter(|t| t.status == TableStatus::Active)
            .ok_or_else(|| IngestError::Field {
                field: "table.name".into(),
                message: format!("tenant {} has no bronze table {}", tenant.id, spec.table),
            })?;
        if self
            .store()
            .get_stream(&tenant.id, spec.name.as_str())
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!("stream {}", spec.name)).into());
        }
        let max = tenant.quotas.max_streams;
        let existing = self.store().list_streams(&tenant.id, None, max).await?.len();
        if existing >= max as usize {
            return Err(StoreError::Quota(format!(
                "tenant {} has {existing} streams and its max_streams quota is {max}",
                tenant.id
            ))
            .into());
        }
        let source = self.seal(tenant, &spec)?;
        let dlq_table = self.ensure_dlq(tenant, &table, &source).await?;
        let table = self.ensure_columns(tenant, table, &source).await?;
        let record = StreamRecord {
            id: uuid::Uuid::now_v7(),
            tenant: tenant.id.clone(),
            name: spec.name,
            table_id: table.id,
            table_name: table.spec.name.to_string(),
            source,
            on_error: spec.on_error,
            created_at: tenancy::now(),
        };
        self.store()
            .insert_stream(&record, tenant.quotas.max_streams, audit_event)
            .await?;
        tracing::info!(tenant = %tenant.id, stream = %record.name, table = %table.spec.name, dlq = %dlq_table.spec.name, source = record.source.kind(), "stream created");
        if matches!(record.source, StreamSource::Kafka(_)) {
            // The leader starts it: at once when that is this process, within one sync
            // interval when it is another replica.
            self.wake.notify_one();
        }
        Ok(record)
    }

    fn seal(&self, tenant: &Tenant, spec: &StreamSpec) -> Result<StreamSource, IngestError> {
        let StreamSource::Kafka(kafka) = &spec.source else {
            return Ok(spec.source.clone());
        };
        let mut kafka = kafka.clone();
        for (key, value) in kafka.secrets.iter_mut() {
            let sealer = self.sealer.as_ref().ok_or_else(|| IngestError::Field {
                field: format!("source.properties.{key}"),
                message: "this server has no ingest.secret_key configured, so it cannot store secrets".into(),
            })?;
            let place = format!("{}/{}/{key}", tenant.id, spec.name);
            *value = sealer.seal(&place, value).map_err(|e| IngestError::Field {
                field: format!("source.properties.{key}"),
                message: e.to_string(),
            })?;
        }
        Ok(StreamSource::Kafka(kafka))
    }

    async fn ensure_columns(
        &self,
        tenant: &Tenant,
        table: TableRecord,
        source: &StreamSource,
    ) -> Result<TableRecord, IngestError> {
        // A column of a metadata name the table already has must be what ingestion writes.
        for wanted in metadata_columns(source) {
            if let Some(have) = table.spec.columns.iter().find(|c| c.name == wanted.name)
                && (have.column_type != wanted.column_type || !have.nullable)
            {
                return Err(IngestError::Field {
                    field: "table.name".into(),
                    message: format!(
                        "table {} has a column {} of type {} (nullable: {}); ingestion writes it as a nullable {}",
                        table.spec.name, have.name, have.column_type, have.nullable, wanted.column_type
                    ),
                });
            }
        }
        let added = missing_metadata_columns(&table.spec, source);
        if added.is_empty() {
            return Ok(table);
        }
        let mut spec: TableSpec = table.spec.clone();
        spec.columns.extend(added.iter().cloned());
        let target = format!("/v1/tenants/{}/tables/bronze/{}", tenant.id, table.spec.name);
        let (updated, _) = self
            .catalog
            .change(
                tenant,
                &table,
                spec,
                &added,
                &audit("table.columns.add", &target, &tenant.id),
            )
            .await?;
        Ok(updated)
    }

    async fn ensure_dlq(
        &self,
        tenant: &Tenant,
        table: &TableRecord,
        source: &StreamSource,
    ) -> Result<TableRecord, IngestError> {
        let name = dlq_name(&table.spec.name);
        let wanted = dlq_spec(&table.spec.name, source);
        match self.store().get_table(&tenant.id, Zone::Bronze, &name).await? {
            Some(existing) if existing.status == TableStatus::Active => {
                self.ensure_columns(tenant, existing, source).await
            }
            Some(_) => Err(StoreError::Conflict(format!(
                "table bronze/{name} (it is being purged; create the stream once that ends)"
            ))
            .into()),
            None => {
                let target = format!("/v1/tenants/{}/tables/bronze/{name}", tenant.id);
                let (record, _) = self
                    .catalog
                    .create(tenant, wanted, &audit("table.create", &target, &tenant.id))
                    .await?;
                Ok(record)
            }
        }
    }

    /// Deletes a stream and stops its worker. Its table and dead-letter table stay.
    pub async fn delete_stream(
        &self,
        stream: &StreamRecord,
        audit_event: &AuditEvent,
    ) -> Result<bool, IngestError> {
        let deleted = self.store().delete_stream(stream.id, audit_event).await?;
        self.kafka.forget(stream.id);
        self.wake.notify_one();
        Ok(deleted)
    }

    /// A stream's runtime state.
    pub fn state(&self, stream: &StreamRecord) -> StreamState {
        match &stream.source {
            StreamSource::Http => StreamState {
                status: "active".into(),
                lag: None,
                last_error: None,
            },
            StreamSource::Kafka(_) => {
                let WorkerStatus {
                    state,
                    lag,
                    last_error,
                } = self.kafka.status(stream.id);
                StreamState {
                    status: state.to_owned(),
                    lag: Some(lag),
                    last_error,
                }
            }
        }
    }

    /// Where a stream writes under the tenant's current placement.
    pub async fn target(&self, tenant: &Tenant, stream: &StreamRecord) -> Result<Target, IngestError> {
        let table = self
            .store()
            .get_table_by_id(stream.table_id)
            .await?
            .filter(|t| t.status == TableStatus::Active)
            .ok_or_else(|| IngestError::Body(format!("the table of stream {} is gone", stream.name)))?;
        let dlq = dlq_name(&table.spec.name);
        Ok(Target {
            tenant: tenant.id.clone(),
            placement: tenant.placement.clone(),
            table_id: table.id,
            root: self
                .catalog
                .table_root(tenant, Zone::Bronze, table.spec.name.as_str()),
            dlq_root: self.catalog.table_root(tenant, Zone::Bronze, &dlq),
        })
    }

    /// Room for one push body of `tenant`, empty until its bytes arrive: bodies being read and
    /// decoded count against the tenant's share and the server's budget, so memory stays
    /// bounded however many clients send at once, and no tenant can take it all.
    pub fn open_body(&self, tenant: &TenantId) -> BodyRoom {
        self.admission.open(tenant)
    }

    /// The push bodies' shares of the server buffer, to read what they hold.
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Runs CPU work of a push (decompression, validation) on the blocking pool, at most
    /// `decode_threads` at a time: the async workers keep serving every other request, and a
    /// burst of large pushes queues here instead of spawning a thread each.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IngestError> {
        let _slot = self
            .decoding
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| IngestError::CommitFailed("the decoding pool is closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| IngestError::CommitFailed(format!("decoding stopped: {e}")))
    }

    fn take_quota(&self, tenant: &Tenant, events: usize) -> Result<(), IngestError> {
        let rate = tenant.quotas.ingest_events_per_sec;
        let now = self.origin.elapsed();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry(tenant.id.clone())
            .or_insert_with(|| TokenBucket::full(rate, now));
        bucket
            .take(events as u64, rate, now)
            .map_err(|wait| IngestError::RateLimited {
                rate,
                retry_after: wait.max(std::time::Duration::from_secs(1)),
            })
    }

    /// The tenant once it is `ready`: a push that meets it migrating waits for the move to end
    /// (polling the tenant, up to `fence_wait`) and then goes on at its new placement; past the
    /// wait, or in any other state, it is refused (503 with `Retry-After`).
    async fn through_fence(&self, tenant: &Tenant) -> Result<Tenant, IngestError> {
        // Doubling from 50 ms to 800 ms: a short move is seen soon, and many waiting pushes
        // do not hammer the database.
        let mut poll = std::time::Duration::from_millis(50);
        let deadline = Instant::now() + self.fence_wait;
        let mut now = tenant.clone();
        while now.status == TenantStatus::Migrating && Instant::now() < deadline {
            tokio::time::sleep(poll.min(deadline.saturating_duration_since(Instant::now()))).await;
            poll = (poll * 2).min(std::time::Duration::from_millis(800));
            now = self
                .store()
                .get_tenant(&tenant.id)
                .await?
                // Unreachable in practice: a migrating tenant cannot be deleted (409).
                .ok_or_else(|| IngestError::Fenced {
                    tenant: tenant.id.to_string(),
                    status: "deleted",
                })?;
        }
        Self::ready(&now)?;
        Ok(now)
    }

    /// Pushes a request's events: validates them against the table, and answers after the
    /// commit that holds them. `request` labels dead-letter positions.
    pub async fn push(
        &self,
        tenant: &Tenant,
        stream: &StreamRecord,
        body: Vec<u8>,
        format: BodyFormat,
        on_error: OnError,
        request: &str,
    ) -> Result<PushOutcome, IngestError> {
        let tenant = &self.through_fence(tenant).await?;
        let target = self.target(tenant, stream).await?;
        let writer = self.committer.writer(&target).await?;
        let bytes = body.len();
        let reservation = self.committer.reserve(&writer, bytes)?;
        let schemas = writer.schemas();
        let now_us = tenancy::now().timestamp_micros();
        let table_schema = schemas.table.clone();
        // Decoding is CPU work: off the async workers, so other requests keep being served.
        let (count, decoded) = self
            .blocking(move || {
                let events = decode::split_events(&body, format).map_err(|e| IngestError::Body(e.message))?;
                if events.is_empty() {
                    return Err(IngestError::Body("the body holds no events".into()));
                }
                let decoded = decode::decode(&table_schema, &events, now_us, Metadata::Http)
                    .map_err(IngestError::CommitFailed)?;
                Ok((events.len(), decoded))
            })
            .await??;
        self.take_quota(tenant, count)?;
        let total_rejected = decoded.rejected.len();
        let listed: Vec<EventError> = decoded
            .rejected
            .iter()
            .take(MAX_LISTED_ERRORS)
            .map(|(e, _)| e.clone())
            .collect();
        if total_rejected > 0 && on_error == OnError::Reject {
            return Err(IngestError::Invalid {
                errors: listed,
                total: total_rejected,
            });
        }
        let dlq = if total_rejected == 0 {
            None
        } else {
            let positions: Vec<String> = decoded
                .rejected
                .iter()
                .map(|(e, _)| format!("line {} of request {request}", e.line))
                .collect();
            Some(
                decode::dlq_rows(&schemas.dlq, &decoded.rejected, &positions, now_us, None)
                    .map_err(IngestError::CommitFailed)?,
            )
        };
        let committed = self
            .committer
            .submit(&writer, reservation, bytes, decoded.rows, dlq)
            .await?;
        Ok(PushOutcome {
            accepted: decoded.accepted,
            rejected: total_rejected,
            version: committed.version,
            dlq_version: committed.dlq_version,
            errors: listed,
        })
    }
}
