//! The ingestion service: creating and deleting streams (with their metadata columns and
//! dead-letter tables), HTTP pushes through the group committer, and the Kafka workers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tenancy::audit::{AuditEvent, Outcome};
use tenancy::rate::TokenBucket;
use tenancy::role::Zone;
use tenancy::store::{
    KeyClaim, MetadataStore, PushKeyRecord, PushKeyState, StoreError, StreamRecord, TableRecord, TableStatus,
};
use tenancy::stream::{
    OnError, StreamSource, StreamSpec, dlq_name, dlq_spec, metadata_columns, missing_metadata_columns,
};
use tenancy::table::TableSpec;
use tenancy::tenant::{Tenant, TenantId, TenantStatus};
use uuid::Uuid;

use super::IngestError;
use super::admission::{Admission, BodyRoom, PushLimits};
use super::decode::{self, BodyFormat, EventError, Metadata};
use super::files::{self, FileError, FileFormat};
use super::group_commit::{GroupCommitSettings, GroupCommitter, Keyed, Target};
use super::idempotency::{self, Attempts, Recorded, Resolution, Ticket};
use super::kafka::{KafkaSettings, KafkaWorkers, WorkerStatus};
use super::secrets::Sealer;
use crate::catalog::Catalog;
use crate::delta::tables::{Marked, version_of_mark};

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

/// One push as received.
#[derive(Debug)]
pub struct PushRequest<'a> {
    /// The body (inflated).
    pub body: Vec<u8>,
    /// How it lists the events.
    pub format: BodyFormat,
    /// What to do with bad events.
    pub on_error: OnError,
    /// The request id, to label dead-letter positions.
    pub request_id: &'a str,
    /// The client's `Idempotency-Key`.
    pub key: Option<String>,
    /// When the push answers at the latest.
    pub deadline: tokio::time::Instant,
}

/// A push's answer, and whether it repeats an earlier push's under the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The outcome.
    pub outcome: PushOutcome,
    /// True when a retry was answered with the first attempt's outcome.
    pub replayed: bool,
}

/// A keyed push's standing once its key is claimed.
enum Claim {
    /// The first attempt committed: its outcome.
    Replay(PushOutcome),
    /// This attempt holds the key.
    Attempt(Uuid),
}

fn outcome_of(recorded: Recorded) -> PushOutcome {
    PushOutcome {
        accepted: recorded.accepted,
        rejected: recorded.rejected,
        version: recorded.version,
        dlq_version: recorded.dlq_version,
        errors: recorded.errors,
    }
}

/// Withdraws a push whose handler went away (a request timeout, a closed connection) before
/// its commit started: a push nobody was answered for is never committed afterwards.
struct Withdraw(Arc<Ticket>);

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.0.cancel();
    }
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
    push: PushLimits,
    attempts: Attempts,
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
            push,
            attempts: Attempts::default(),
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

    /// Forgets idempotency keys past their window, every `period`, while the service lives.
    pub fn sweep_keys_every(self: &Arc<Self>, period: std::time::Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(ingest) = weak.upgrade() else { break };
                match ingest.store().expire_push_keys(tenancy::now()).await {
                    Ok(0) => {}
                    Ok(gone) => tracing::debug!(gone, "forgot expired idempotency keys"),
                    Err(e) => {
                        tracing::warn!(error = %tenancy::error_chain(&e), "cannot forget expired idempotency keys; the next sweep tries again")
                    }
                }
            }
        });
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
        let deadline = Instant::now() + self.push.fence_wait;
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
    /// commit that holds them, or at its deadline without it (see [`GroupCommitter::submit`]).
    /// With an idempotency key, a retry of a push commits at most once and answers the first
    /// outcome once it is known.
    pub async fn push(
        &self,
        tenant: &Tenant,
        stream: &StreamRecord,
        mut push: PushRequest<'_>,
    ) -> Result<Pushed, IngestError> {
        let ticket = Arc::new(Ticket::default());
        let _withdraw = Withdraw(ticket.clone());
        let attempt = match push.key.take() {
            None => None,
            Some(key) => {
                let fingerprint = idempotency::fingerprint(&push.body, push.format, push.on_error);
                match self.claim(tenant, stream, key, fingerprint, &ticket).await? {
                    Claim::Replay(outcome) => {
                        return Ok(Pushed {
                            outcome,
                            replayed: true,
                        });
                    }
                    Claim::Attempt(attempt) => Some(attempt),
                }
            }
        };
        let result = self.push_once(tenant, stream, push, &ticket, attempt).await;
        // A push refused before the writer took it frees its key at once, for the retry.
        if let (Err(_), Some(attempt)) = (&result, attempt)
            && ticket.cancel()
            && let Err(e) = self.store().release_push_keys(&[attempt]).await
        {
            tracing::warn!(error = %tenancy::error_chain(&e), "cannot free an idempotency key; a retry will take it over");
        }
        result.map(|outcome| Pushed {
            outcome,
            replayed: false,
        })
    }

    /// Claims a push's key, or resolves what holds it (see [`idempotency::resolve`]).
    async fn claim(
        &self,
        tenant: &Tenant,
        stream: &StreamRecord,
        key: String,
        fingerprint: String,
        ticket: &Arc<Ticket>,
    ) -> Result<Claim, IngestError> {
        let now = tenancy::now();
        let window = chrono::Duration::from_std(self.push.key_window).unwrap_or(chrono::Duration::hours(24));
        let record = PushKeyRecord {
            tenant: tenant.id.clone(),
            stream_id: stream.id,
            key,
            fingerprint,
            attempt: Uuid::now_v7(),
            owner: self.committer.owner().to_owned(),
            state: PushKeyState::Pending,
            mark: None,
            outcome: None,
            created_at: now,
            updated_at: now,
            expires_at: now + window,
        };
        let held = match self.store().claim_push_key(&record, now).await? {
            KeyClaim::Claimed => {
                self.attempts.register(record.attempt, ticket.clone());
                return Ok(Claim::Attempt(record.attempt));
            }
            KeyClaim::Held(held) => held,
        };
        let in_flight = self.attempts.in_flight(held.attempt);
        let takeover = self.push.key_takeover;
        match idempotency::resolve(
            &held,
            &record.fingerprint,
            &record.owner,
            in_flight,
            now,
            takeover,
        ) {
            Resolution::Replay(recorded) => Ok(Claim::Replay(outcome_of(recorded))),
            Resolution::Mismatch => Err(IngestError::Field {
                field: idempotency::HEADER.to_owned(),
                message: "was used with a different request to this stream; send a new key for new events"
                    .to_owned(),
            }),
            Resolution::InProgress(retry_after) => Err(IngestError::KeyInProgress { retry_after }),
            Resolution::TakeOver => self.take_over(&held, &record, ticket).await,
            Resolution::ReadTable {
                app_id,
                seq,
                recorded,
            } => match self.landed(tenant, stream, &app_id, seq, recorded).await? {
                Some(done) => {
                    let text = serde_json::to_string(&done).unwrap_or_default();
                    self.store()
                        .finish_push_keys(&[(held.attempt, text)], tenancy::now())
                        .await?;
                    Ok(Claim::Replay(outcome_of(done)))
                }
                None => match idempotency::may_take_over_unlanded(&held, now, takeover) {
                    None => self.take_over(&held, &record, ticket).await,
                    Some(retry_after) => Err(IngestError::KeyInProgress { retry_after }),
                },
            },
        }
    }

    async fn take_over(
        &self,
        held: &PushKeyRecord,
        record: &PushKeyRecord,
        ticket: &Arc<Ticket>,
    ) -> Result<Claim, IngestError> {
        if self.store().take_over_push_key(held, record).await? {
            tracing::info!(tenant = %record.tenant, attempt = %held.attempt, "a retry took over an idempotency key whose attempt did not commit");
            self.attempts.register(record.attempt, ticket.clone());
            Ok(Claim::Attempt(record.attempt))
        } else {
            // Another retry of the same key won the race.
            Err(IngestError::KeyInProgress {
                retry_after: std::time::Duration::from_secs(1),
            })
        }
    }

    /// Reads from the table whether a marked attempt's commit landed, and at which versions.
    async fn landed(
        &self,
        tenant: &Tenant,
        stream: &StreamRecord,
        app_id: &str,
        seq: i64,
        recorded: Recorded,
    ) -> Result<Option<Recorded>, IngestError> {
        // The tenant's current placement: a migration copies the log with its marks.
        let target = self.target(tenant, stream).await?;
        let delta = self.catalog.delta();
        let at = |marked: Marked| match marked {
            Marked::At(version) => Some(version),
            Marked::NotLanded => None,
        };
        // The table's commit decides: the dead letters were committed first, so they landed
        // whenever the table's commit did.
        let decisive = if recorded.accepted > 0 {
            version_of_mark(delta, &target.root, app_id, seq, recorded.floor).await?
        } else {
            version_of_mark(delta, &target.dlq_root, app_id, seq, recorded.dlq_floor).await?
        };
        if decisive == Marked::NotLanded {
            return Ok(None);
        }
        let (version, dlq_version) = if recorded.accepted > 0 {
            let dlq = if recorded.rejected > 0 {
                at(version_of_mark(delta, &target.dlq_root, app_id, seq, recorded.dlq_floor).await?)
            } else {
                None
            };
            (at(decisive), dlq)
        } else {
            (None, at(decisive))
        };
        Ok(Some(Recorded {
            version,
            dlq_version,
            ..recorded
        }))
    }

    /// One attempt of a file push: the file decoded whole and conformed to the table (off the
    /// async workers), then committed like events. A file that does not fit is refused whole
    /// (422 naming the column, and the row for a value); `on_error` does not apply, since a
    /// file's rows have no text to dead-letter. The table's buffer is reserved for the decoded
    /// rows, which may be larger than the compressed file, and decoding stops past it.
    #[allow(clippy::too_many_arguments)]
    async fn push_file(
        &self,
        tenant: &Tenant,
        writer: &super::group_commit::TableWriter,
        stream: Uuid,
        body: Vec<u8>,
        file: FileFormat,
        ticket: &Arc<Ticket>,
        attempt: Option<Uuid>,
        deadline: tokio::time::Instant,
    ) -> Result<PushOutcome, IngestError> {
        let schemas = writer.schemas();
        let table_schema = schemas.table.clone();
        let now_us = tenancy::now().timestamp_micros();
        let limit = self.committer.table_buffer_bytes();
        let rows = self
            .blocking(move || files::decode(&table_schema, body, file, now_us, limit))
            .await?
            .map_err(|e| match e {
                FileError::Unreadable(why) => IngestError::Body(why),
                FileError::Empty => IngestError::Body("the file holds no rows".into()),
                FileError::TooLarge { bytes, limit } => IngestError::TooLarge { bytes, limit },
                FileError::Misfit { field, row, message } => IngestError::Invalid {
                    errors: vec![EventError {
                        line: row.unwrap_or(0),
                        field,
                        message,
                    }],
                    total: 1,
                },
            })?;
        let count = rows.num_rows();
        self.take_quota(tenant, count)?;
        let bytes = rows.get_array_memory_size();
        let reservation = self.committer.reserve(writer, bytes)?;
        let keyed = attempt.map(|attempt| Keyed {
            attempt,
            recorded: Recorded::before_commit(count, 0, Vec::new()),
        });
        let committed = self
            .committer
            .submit(
                writer,
                stream,
                reservation,
                bytes,
                Some(rows),
                None,
                ticket.clone(),
                keyed,
                deadline,
            )
            .await?;
        Ok(PushOutcome {
            accepted: count,
            rejected: 0,
            version: committed.version,
            dlq_version: committed.dlq_version,
            errors: Vec::new(),
        })
    }

    /// One attempt of a push: validates the events and waits for the commit.
    async fn push_once(
        &self,
        tenant: &Tenant,
        stream: &StreamRecord,
        push: PushRequest<'_>,
        ticket: &Arc<Ticket>,
        attempt: Option<Uuid>,
    ) -> Result<PushOutcome, IngestError> {
        let PushRequest {
            body,
            format,
            on_error,
            request_id: request,
            deadline,
            ..
        } = push;
        let tenant = &self.through_fence(tenant).await?;
        let target = self.target(tenant, stream).await?;
        let writer = self.committer.writer(&target).await?;
        if let BodyFormat::File(file) = format {
            return self
                .push_file(tenant, &writer, stream.id, body, file, ticket, attempt, deadline)
                .await;
        }
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
        let keyed = attempt.map(|attempt| Keyed {
            attempt,
            recorded: Recorded::before_commit(decoded.accepted, total_rejected, listed.clone()),
        });
        let committed = self
            .committer
            .submit(
                &writer,
                stream.id,
                reservation,
                bytes,
                decoded.rows,
                dlq,
                ticket.clone(),
                keyed,
                deadline,
            )
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
