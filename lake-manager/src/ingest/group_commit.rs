//! Group commit: requests for the same table join one buffer, and one Delta commit carries them
//! all. A request is answered only after the commit holding its events, so an acknowledged event
//! is durable. Buffers are bounded per table and in total by byte budgets; a request that does
//! not fit is refused at once rather than queued without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Transaction;
use tenancy::store::{MetadataStore, StoreError};
use tenancy::tenant::TenantStatus;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::IngestError;
use super::decode::EventSchema;
use super::idempotency::{Recorded, Ticket};
use crate::delta::append::Staged;
use crate::delta::tables::{self, version_i64};
use crate::delta::{DeltaError, DeltaSettings};

/// Group-commit tuning.
#[derive(Debug, Clone)]
pub struct GroupCommitSettings {
    /// Flush once this many bytes are buffered for a table.
    pub flush_bytes: usize,
    /// Flush a group of at least this many bytes as soon as the table's committer is idle,
    /// without waiting for `flush_bytes` or the linger. Under load the committer is busy and
    /// groups grow to `flush_bytes`; at moderate rates they commit early, so the wait for a
    /// group to fill does not add to every request's latency. At most `flush_bytes`.
    pub min_flush_bytes: usize,
    /// Flush at the latest this long after the first buffered request.
    pub linger: Duration,
    /// Most bytes buffered (waiting or committing) per table.
    pub table_buffer_bytes: usize,
    /// Most bytes buffered over all tables.
    pub total_buffer_bytes: usize,
    /// A table's writer stops after this long without requests.
    pub idle_close: Duration,
    /// Flush each commit to disk before acknowledging it (local storage; see
    /// `delta::durable`).
    pub fsync: bool,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        Self {
            flush_bytes: 8 * 1024 * 1024,
            min_flush_bytes: 2 * 1024 * 1024,
            linger: Duration::from_millis(200),
            table_buffer_bytes: 64 * 1024 * 1024,
            total_buffer_bytes: 256 * 1024 * 1024,
            idle_close: Duration::from_secs(60),
            fsync: true,
        }
    }
}

/// Where a stream's rows go: its table and the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The owning tenant (checked before each commit).
    pub tenant: tenancy::tenant::TenantId,
    /// Its placement when the roots were resolved: a commit is refused once it changed.
    pub placement: tenancy::placement::Placement,
    /// The table's id (one writer per table).
    pub table_id: Uuid,
    /// The table root under the tenant's current placement.
    pub root: String,
    /// The dead-letter table's root.
    pub dlq_root: String,
}

/// The versions a group's commit produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The table version holding the request's good events (`None`: it had none).
    pub version: Option<i64>,
    /// The dead-letter table version holding its bad events (`None`: it had none).
    pub dlq_version: Option<i64>,
}

/// A keyed push's attempt, whose key the writer marks before the commit and finishes or
/// frees after it.
#[derive(Debug, Clone)]
pub struct Keyed {
    /// The attempt holding the key.
    pub attempt: Uuid,
    /// Its counts (versions and floors are filled in by the writer).
    pub recorded: Recorded,
}

/// Why a group's commit did not acknowledge its requests.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What happened.
    pub message: String,
    /// The commit may have landed (or may still land): only a keyed retry is safe.
    pub unknown: bool,
    /// The storage is full: nothing was committed, and freeing space lets pushes in again.
    pub full: bool,
}

impl Failure {
    fn not_committed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unknown: false,
            full: false,
        }
    }

    fn unknown(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unknown: true,
            full: false,
        }
    }
}

/// Room reserved in the buffers for one request, given back when its commit ends.
pub struct Reservation {
    _table: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

struct Pending {
    /// The stream pushed to: a commit names each stream's rows (its ingest rate).
    stream: Uuid,
    rows: Option<RecordBatch>,
    dlq: Option<RecordBatch>,
    bytes: usize,
    _reservation: Reservation,
    queued_at: tokio::time::Instant,
    ticket: Arc<Ticket>,
    keyed: Option<Keyed>,
    reply: oneshot::Sender<Result<Committed, Failure>>,
}

/// The schemas requests decode against, refreshed when the table changes.
#[derive(Debug, Clone)]
pub struct Schemas {
    /// The table's.
    pub table: EventSchema,
    /// The dead-letter table's.
    pub dlq: EventSchema,
}

/// One table's buffer and committer.
pub struct TableWriter {
    target: Target,
    tx: mpsc::UnboundedSender<Pending>,
    budget: Arc<Semaphore>,
    schemas: Arc<RwLock<Schemas>>,
}

impl TableWriter {
    /// The schemas to decode against now.
    pub fn schemas(&self) -> Schemas {
        self.schemas
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

fn event_schema(table: &DeltaTable) -> Result<EventSchema, DeltaError> {
    let location = table.table_url().to_string();
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read schema", &location, e))?;
    Ok(EventSchema::new(state.snapshot().arrow_schema()))
}

/// The group committer: one writer task per table, started on first use, stopped when idle.
pub struct GroupCommitter {
    app_id: String,
    seq: Arc<std::sync::atomic::AtomicI64>,
    settings: GroupCommitSettings,
    delta: DeltaSettings,
    store: Arc<dyn MetadataStore>,
    total: Arc<Semaphore>,
    writers: tokio::sync::Mutex<HashMap<Uuid, Arc<TableWriter>>>,
}

fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes.max(1)).unwrap_or(u32::MAX)
}

impl GroupCommitter {
    /// A committer with these budgets.
    pub fn new(settings: GroupCommitSettings, delta: DeltaSettings, store: Arc<dyn MetadataStore>) -> Self {
        Self {
            app_id: format!("lakeplane-http-{}", Uuid::now_v7()),
            // Increasing across writers of this process; a new process has a new app id.
            seq: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            store,
            total: Arc::new(Semaphore::new(permits(settings.total_buffer_bytes) as usize)),
            settings,
            delta,
            writers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The most one table buffers: no single request may hold more.
    pub fn table_buffer_bytes(&self) -> usize {
        self.settings.table_buffer_bytes
    }

    /// Bytes buffered right now over all tables.
    pub fn buffered_bytes(&self) -> usize {
        permits(self.settings.total_buffer_bytes) as usize - self.total.available_permits()
    }

    /// The running writer of the target's table, started (schemas loaded) if there is none.
    pub async fn writer(&self, target: &Target) -> Result<Arc<TableWriter>, IngestError> {
        let live = |writers: &HashMap<Uuid, Arc<TableWriter>>| {
            writers
                .get(&target.table_id)
                .filter(|w| !w.tx.is_closed() && w.target == *target)
                .cloned()
        };
        {
            let mut writers = self.writers.lock().await;
            if let Some(writer) = live(&writers) {
                return Ok(writer);
            }
            // Stopped writers leave the map, so it holds only tables in use.
            writers.retain(|_, w| !w.tx.is_closed());
        }
        // Opened without the lock: one table's slow storage must not hold up every push.
        let table = tables::open(&self.delta, &target.root).await?;
        let dlq = tables::open(&self.delta, &target.dlq_root).await?;
        let mut writers = self.writers.lock().await;
        if let Some(writer) = live(&writers) {
            return Ok(writer); // another request started it meanwhile
        }
        let schemas = Arc::new(RwLock::new(Schemas {
            table: event_schema(&table)?,
            dlq: event_schema(&dlq)?,
        }));
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Arc::new(TableWriter {
            target: target.clone(),
            tx,
            budget: Arc::new(Semaphore::new(permits(self.settings.table_buffer_bytes) as usize)),
            schemas: schemas.clone(),
        });
        let floors = Arc::new(Mutex::new((
            table.version().map(version_i64),
            dlq.version().map(version_i64),
        )));
        let templates = Arc::new(Mutex::new((Some(table.clone()), Some(dlq.clone()))));
        let pipeline = Arc::new(Pipeline::default());
        let gatherer = WriterTask {
            pipeline: pipeline.clone(),
            store: self.store.clone(),
            app_id: self.app_id.clone(),
            seq: self.seq.clone(),
            settings: self.settings.clone(),
            target: target.clone(),
            floors: floors.clone(),
            templates: templates.clone(),
        };
        let committer = Committer {
            pipeline,
            store: self.store.clone(),
            app_id: self.app_id.clone(),
            fsync: self.settings.fsync,
            delta: self.delta.clone(),
            target: target.clone(),
            table: Some(table),
            dlq: Some(dlq),
            floors,
            templates,
            schemas,
        };
        tokio::spawn(gatherer.run(rx, committer));
        writers.insert(target.table_id, writer.clone());
        Ok(writer)
    }

    /// Reserves buffer room for a request of `bytes`, or refuses at once when the table's or the
    /// server's buffer is full.
    pub fn reserve(&self, writer: &TableWriter, bytes: usize) -> Result<Reservation, IngestError> {
        if bytes > self.settings.table_buffer_bytes {
            return Err(IngestError::TooLarge {
                bytes,
                limit: self.settings.table_buffer_bytes,
            });
        }
        let retry_after = (self.settings.linger * 2).max(Duration::from_secs(1));
        let table = writer
            .budget
            .clone()
            .try_acquire_many_owned(permits(bytes))
            .map_err(|_| IngestError::Full {
                scope: "table",
                retry_after,
            })?;
        let total = self
            .total
            .clone()
            .try_acquire_many_owned(permits(bytes))
            .map_err(|_| IngestError::Full {
                scope: "server",
                retry_after,
            })?;
        Ok(Reservation {
            _table: table,
            _total: total,
        })
    }

    /// This process's name in idempotency keys it holds (and in its commits' marks).
    pub fn owner(&self) -> &str {
        &self.app_id
    }

    /// Buffers decoded rows and waits for the commit that holds them, until `deadline`.
    /// Past it, a request the writer has not taken yet is withdrawn (it will never be
    /// committed: `CommitFailed`), and one it took is answered `OutcomeUnknown`.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        &self,
        writer: &TableWriter,
        stream: Uuid,
        reservation: Reservation,
        bytes: usize,
        rows: Option<RecordBatch>,
        dlq: Option<RecordBatch>,
        ticket: Arc<Ticket>,
        keyed: Option<Keyed>,
        deadline: tokio::time::Instant,
    ) -> Result<Committed, IngestError> {
        let (reply, answer) = oneshot::channel();
        writer
            .tx
            .send(Pending {
                stream,
                rows,
                dlq,
                bytes,
                _reservation: reservation,
                queued_at: tokio::time::Instant::now(),
                ticket: ticket.clone(),
                keyed,
                reply,
            })
            .map_err(|_| IngestError::WriterStopped)?;
        let unknown = || {
            IngestError::OutcomeUnknown(
                "the commit holding the events was still under way when the answer was due".to_owned(),
            )
        };
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(Ok(committed))) => Ok(committed),
            Ok(Ok(Err(failure))) if failure.unknown => Err(IngestError::OutcomeUnknown(failure.message)),
            Ok(Ok(Err(failure))) if failure.full => Err(IngestError::StorageFull(failure.message)),
            Ok(Ok(Err(failure))) => Err(IngestError::CommitFailed(failure.message)),
            // The writer went away without answering: it never took the request, or it took it
            // and stopped mid-commit.
            Ok(Err(_)) if ticket.cancel() => Err(IngestError::WriterStopped),
            Ok(Err(_)) => Err(unknown()),
            Err(_) if ticket.cancel() => Err(IngestError::CommitFailed(
                "the commit did not start before the answer was due; the events were withdrawn".to_owned(),
            )),
            Err(_) => Err(unknown()),
        }
    }
}

/// The latest versions known of the table and of the dead-letter table, shared by both halves
/// of a writer: a commit's mark lies above them even while the tables are not loaded (after a
/// failure).
type Floors = Arc<Mutex<(Option<i64>, Option<i64>)>>;

/// The table and the dead-letter table as the committer last had them: what the gatherer
/// encodes ahead for (their schema and partitioning, checked again at commit).
type Templates = Arc<Mutex<(Option<DeltaTable>, Option<DeltaTable>)>>;

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The groups between a table's gatherer and its committer: handed over and not yet committed.
/// The gatherer ends a group early (at `min_flush_bytes`) only when this is zero.
#[derive(Default)]
struct Pipeline {
    groups: std::sync::atomic::AtomicUsize,
    /// Signalled after each commit. A stored permit may wake the gatherer needlessly; it
    /// checks again.
    committed: tokio::sync::Notify,
}

impl Pipeline {
    fn idle(&self) -> bool {
        self.groups.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}

/// A group being gathered: its requests, and their rows staged (encoded as they come).
struct Gathering {
    group: Vec<Pending>,
    rows: Staged,
    dead: Staged,
    bytes: usize,
}

impl Gathering {
    async fn add(&mut self, pending: Pending) {
        if let Some(rows) = &pending.rows {
            self.rows.push(rows.clone()).await;
        }
        if let Some(dead) = &pending.dlq {
            self.dead.push(dead.clone()).await;
        }
        self.bytes += pending.bytes;
        self.group.push(pending);
    }
}

/// A group ready to commit: its requests, taken and marked, and their staged rows.
struct Ready {
    group: Vec<Pending>,
    rows: Staged,
    dead: Staged,
    seq: i64,
}

/// The gathering half of a table's writer. A table's writer runs as two tasks so that a
/// group's Parquet encoding overlaps the previous group's commit: this one gathers requests
/// into groups and encodes their rows as they arrive ([`Staged`]); the [`Committer`] commits
/// the groups in order. At most one ready group waits between them, so under load one group
/// is gathered and encoded while the one before it commits.
struct WriterTask {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn MetadataStore>,
    /// Marks this process's commits in the table's log (see `append`).
    app_id: String,
    seq: Arc<std::sync::atomic::AtomicI64>,
    settings: GroupCommitSettings,
    target: Target,
    floors: Floors,
    templates: Templates,
}

impl WriterTask {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>, committer: Committer) {
        let (ready_tx, ready_rx) = mpsc::channel::<Ready>(1);
        let committing = tokio::spawn(committer.run(ready_rx));
        loop {
            let first = match tokio::time::timeout(self.settings.idle_close, rx.recv()).await {
                Ok(Some(pending)) => pending,
                Ok(None) | Err(_) => break,
            };
            // The linger counts from when the first request arrived, not from when the previous
            // group let this loop look: requests that waited go in the next group.
            let deadline = first.queued_at + self.settings.linger;
            let mut gathering = {
                let templates = locked(&self.templates);
                Gathering {
                    group: Vec::new(),
                    rows: Staged::new(templates.0.as_ref()),
                    dead: Staged::new(templates.1.as_ref()),
                    bytes: 0,
                }
            };
            gathering.add(first).await;
            while gathering.bytes < self.settings.flush_bytes {
                let early = gathering.bytes >= self.settings.min_flush_bytes;
                if early && self.pipeline.idle() {
                    break;
                }
                // Biased to the queue: whatever already waits joins this group before the
                // deadline (or the committer's end) can end it (otherwise a passed deadline
                // would cut groups short).
                tokio::select! {
                    biased;
                    next = rx.recv() => match next {
                        Some(pending) => gathering.add(pending).await,
                        None => break,
                    },
                    () = self.pipeline.committed.notified(), if early => {}
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            let Some(ready) = self.prepare(gathering).await else {
                continue;
            };
            // Waits while the committer still has a group waiting: this group is encoded, and
            // requests arriving meanwhile queue for the next one.
            self.pipeline
                .groups
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            if let Err(mpsc::error::SendError(ready)) = ready_tx.send(ready).await {
                // The committer is gone (it panicked): nothing of this group was committed.
                release(&self.store, &self.target, &keyed_attempts(&ready.group)).await;
                for pending in ready.group {
                    pending.ticket.finish();
                    let _ = pending.reply.send(Err(Failure::not_committed(
                        "the table writer stopped; send again",
                    )));
                }
                break;
            }
        }
        // Requests are refused only once the last group's commit ended, so that a new writer
        // for this table never commits alongside this one.
        drop(ready_tx);
        let _ = committing.await;
        // Requests that raced with the idle stop are refused (never silently dropped): the
        // channel closes here and their senders see the writer stopped.
        rx.close();
        while let Ok(pending) = rx.try_recv() {
            pending.ticket.cancel();
            let _ = pending.reply.send(Err(Failure::not_committed(
                "the table writer stopped; send again",
            )));
        }
    }

    /// Takes the group's requests for the commit and marks their keys. Requests whose
    /// handlers gave up before this point are never committed, and their keys are freed for
    /// the retry; when any request leaves the group, what was encoded (it is in the open files)
    /// is abandoned and the rows of those that stay are committed from scratch.
    async fn prepare(&self, gathering: Gathering) -> Option<Ready> {
        let Gathering {
            group, rows, dead, ..
        } = gathering;
        let gathered = group.len();
        let (group, withdrawn): (Vec<Pending>, Vec<Pending>) =
            group.into_iter().partition(|p| p.ticket.take());
        release(&self.store, &self.target, &keyed_attempts(&withdrawn)).await;
        drop(withdrawn);
        if group.is_empty() {
            return None;
        }
        // One mark for both tables: each table keeps its own application transactions.
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let group = self.mark(group, seq).await.filter(|group| !group.is_empty())?;
        let (rows, dead) = if group.len() == gathered {
            (rows, dead)
        } else {
            // Dropping the stages aborts their uploads.
            drop((rows, dead));
            (
                Staged::kept(group.iter().filter_map(|p| p.rows.clone()).collect()),
                Staged::kept(group.iter().filter_map(|p| p.dlq.clone()).collect()),
            )
        };
        Some(Ready {
            group,
            rows,
            dead,
            seq,
        })
    }

    /// Records the group's mark on its keyed requests before the commit starts, so a retry
    /// after a crash reads from the table whether the commit landed. Requests whose key a
    /// retry took over meanwhile leave the group unanswered-for (their retry owns the key);
    /// when the store cannot record the marks, the whole group is refused uncommitted.
    async fn mark(&self, group: Vec<Pending>, seq: i64) -> Option<Vec<Pending>> {
        let (floor, dlq_floor) = *locked(&self.floors);
        let marks: Vec<(Uuid, String)> = group
            .iter()
            .filter_map(|p| p.keyed.as_ref())
            .map(|k| {
                let recorded = Recorded {
                    floor,
                    dlq_floor,
                    ..k.recorded.clone()
                };
                (k.attempt, serde_json::to_string(&recorded).unwrap_or_default())
            })
            .collect();
        if marks.is_empty() {
            return Some(group);
        }
        match self
            .store
            .mark_push_keys(&marks, &self.app_id, seq, tenancy::now())
            .await
        {
            Ok(held) => {
                let (kept, lost): (Vec<Pending>, Vec<Pending>) = group
                    .into_iter()
                    .partition(|p| p.keyed.as_ref().is_none_or(|k| held.contains(&k.attempt)));
                for pending in lost {
                    pending.ticket.finish();
                    let _ = pending.reply.send(Err(Failure::not_committed(
                        "a retry with the same Idempotency-Key took the push over",
                    )));
                }
                Some(kept)
            }
            Err(e) => {
                let message = format!(
                    "the metadata store could not record the push's idempotency key, so nothing was committed: {}",
                    tenancy::error_chain(&e)
                );
                tracing::warn!(table = %self.target.root, error = %message, "group refused before its commit");
                release(&self.store, &self.target, &keyed_attempts(&group)).await;
                for pending in group {
                    pending.ticket.finish();
                    let _ = pending.reply.send(Err(Failure::not_committed(message.clone())));
                }
                None
            }
        }
    }
}

/// The committing half of a table's writer: commits ready groups in order and answers their
/// requests.
struct Committer {
    pipeline: Arc<Pipeline>,
    store: Arc<dyn MetadataStore>,
    app_id: String,
    fsync: bool,
    delta: DeltaSettings,
    target: Target,
    table: Option<DeltaTable>,
    dlq: Option<DeltaTable>,
    floors: Floors,
    templates: Templates,
    schemas: Arc<RwLock<Schemas>>,
}

impl Committer {
    async fn run(mut self, mut ready: mpsc::Receiver<Ready>) {
        while let Some(Ready {
            group,
            rows,
            dead,
            seq,
        }) = ready.recv().await
        {
            self.finish(group, rows, dead, seq).await;
            self.pipeline
                .groups
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            self.pipeline.committed.notify_one();
        }
    }

    async fn finish(&mut self, group: Vec<Pending>, rows: Staged, dead: Staged, seq: i64) {
        let streams = stream_rows(&group);
        let events: u64 = streams.iter().map(|(_, n)| n).sum();
        let started = std::time::Instant::now();
        let result = self.commit(rows, dead, seq, &streams).await;
        self.settle_keys(&group, &result).await;
        match &result {
            Ok(committed) => tracing::debug!(
                table = %self.target.root, requests = group.len(), events,
                version = ?committed.version, elapsed_ms = started.elapsed().as_millis() as u64,
                "group commit"
            ),
            Err(e) => {
                tracing::warn!(table = %self.target.root, requests = group.len(), error = %e.message, outcome_unknown = e.unknown, "group commit failed; no request of the group is acknowledged")
            }
        }
        for pending in group {
            let answer = match &result {
                Ok(c) => Ok(Committed {
                    version: pending.rows.as_ref().and(c.version),
                    dlq_version: pending.dlq.as_ref().and(c.dlq_version),
                }),
                Err(e) => Err(e.clone()),
            };
            pending.ticket.finish();
            let _ = pending.reply.send(answer);
        }
    }

    /// After the commit: a landed one records each keyed request's outcome; one that surely
    /// did not land frees the keys; one whose outcome is unknown leaves them marked, for the
    /// retry to read from the table.
    async fn settle_keys(&self, group: &[Pending], result: &Result<Committed, Failure>) {
        let keyed = group.iter().filter_map(|p| p.keyed.as_ref().map(|k| (p, k)));
        match result {
            Ok(committed) => {
                let outcomes: Vec<(Uuid, String)> = keyed
                    .map(|(p, k)| {
                        let recorded = Recorded {
                            version: p.rows.as_ref().and(committed.version),
                            dlq_version: p.dlq.as_ref().and(committed.dlq_version),
                            ..k.recorded.clone()
                        };
                        (k.attempt, serde_json::to_string(&recorded).unwrap_or_default())
                    })
                    .collect();
                if outcomes.is_empty() {
                    return;
                }
                if let Err(e) = self.store.finish_push_keys(&outcomes, tenancy::now()).await {
                    // The commit stands and carries the mark: a retry finds it in the table.
                    tracing::warn!(table = %self.target.root, error = %tenancy::error_chain(&e), "cannot record the outcome of keyed pushes; retries will read it from the table");
                }
            }
            Err(failure) if !failure.unknown => {
                release(&self.store, &self.target, &keyed_attempts(group)).await;
            }
            Err(_) => {}
        }
    }

    async fn commit(
        &mut self,
        rows: Staged,
        dead: Staged,
        seq: i64,
        streams: &[(Uuid, u64)],
    ) -> Result<Committed, Failure> {
        // A migration that started while these requests waited must not see a commit at the old
        // location: the group is refused (nothing acknowledged) and the callers send again. The
        // intent holds a migration that starts from now on back until this commit ended.
        let (tenant, intent) = crate::fence::Intent::begin(&self.store, &self.target.tenant, "http-push")
            .await
            .map_err(|e| Failure::not_committed(tenancy::error_chain(&e)))?;
        let result = self
            .commit_fenced(rows, dead, Ok(tenant), &intent, seq, streams)
            .await;
        intent.end().await;
        result
    }

    async fn commit_fenced(
        &mut self,
        rows: Staged,
        dead: Staged,
        tenant: Result<Option<tenancy::tenant::Tenant>, StoreError>,
        intent: &crate::fence::Intent,
        seq: i64,
        streams: &[(Uuid, u64)],
    ) -> Result<Committed, Failure> {
        match tenant {
            Ok(Some(tenant))
                if tenant.status == TenantStatus::Ready && tenant.placement == self.target.placement => {}
            Ok(Some(tenant)) if tenant.status == TenantStatus::Ready => {
                return Err(Failure::not_committed(format!(
                    "tenant {}'s storage moved while the requests waited",
                    tenant.id
                )));
            }
            Ok(Some(tenant)) => {
                return Err(Failure::not_committed(format!(
                    "tenant {} became {} before the commit",
                    tenant.id,
                    tenant.status.as_str()
                )));
            }
            Ok(None) => return Err(Failure::not_committed("the tenant is gone")),
            Err(e) => return Err(Failure::not_committed(tenancy::error_chain(&e))),
        }
        let lapsed =
            || Failure::not_committed("the commit outlived its write intent; nothing more is committed");
        // Dead letters first: a crash between the two commits then repeats at worst the
        // dead letters of an unacknowledged request, never loses one.
        if !intent.still_held() {
            return Err(lapsed());
        }
        let dlq_version = if dead.is_empty() {
            None
        } else {
            let root = self.target.dlq_root.clone();
            let version = match append(&self.delta, &mut self.dlq, &root, dead, &self.app_id, seq, &[]).await
            {
                Ok(version) => {
                    locked(&self.floors).1 = Some(version);
                    locked(&self.templates).1.clone_from(&self.dlq);
                    version
                }
                Err(e) => {
                    self.refresh_schemas_later();
                    return Err(failure_of(&e));
                }
            };
            self.make_durable(&root, version).await?;
            Some(version)
        };
        // Once the dead letters landed, a failure of the table's commit leaves the request
        // partly committed: its outcome is unknown to the client, never "not committed".
        let partly = |failure: Failure| match dlq_version {
            Some(_) => Failure::unknown(failure.message),
            None => failure,
        };
        if !intent.still_held() {
            return Err(partly(lapsed()));
        }
        let version = if rows.is_empty() {
            None
        } else {
            let root = self.target.root.clone();
            match append(
                &self.delta,
                &mut self.table,
                &root,
                rows,
                &self.app_id,
                seq,
                streams,
            )
            .await
            {
                Ok(version) => {
                    locked(&self.floors).0 = Some(version);
                    locked(&self.templates).0.clone_from(&self.table);
                    self.make_durable(&root, version).await?;
                    Some(version)
                }
                Err(e) => {
                    self.refresh_schemas_later();
                    return Err(partly(failure_of(&e)));
                }
            }
        };
        Ok(Committed { version, dlq_version })
    }

    /// Flushes a commit to disk before it is acknowledged (local storage, unless
    /// `ingest.fsync` is off). A commit that landed but cannot be flushed is not acknowledged:
    /// readers may see it, so the client learns its outcome is unknown.
    async fn make_durable(&self, root: &str, version: i64) -> Result<(), Failure> {
        if !self.fsync {
            return Ok(());
        }
        crate::delta::durable::sync_commit(root, version)
            .await
            .map_err(|e| {
                // Readers may see the version already: its outcome is unknown to the client.
                Failure::unknown(format!(
                    "version {version} was committed but could not be flushed to disk, so it is not acknowledged: {}",
                    tenancy::error_chain(&e)
                ))
            })
    }

    /// After a failed commit the table may have changed (a new column, a concurrent metadata
    /// commit): reload both tables, the schemas callers decode against and the tables the
    /// gatherer encodes ahead for (until then it only keeps rows).
    fn refresh_schemas_later(&mut self) {
        let (delta, target, schemas) = (self.delta.clone(), self.target.clone(), self.schemas.clone());
        let templates = self.templates.clone();
        self.table = None;
        self.dlq = None;
        *locked(&templates) = (None, None);
        tokio::spawn(async move {
            let loaded = async {
                let table = tables::open(&delta, &target.root).await?;
                let dlq = tables::open(&delta, &target.dlq_root).await?;
                let fresh = Schemas {
                    table: event_schema(&table)?,
                    dlq: event_schema(&dlq)?,
                };
                Ok::<_, DeltaError>((fresh, table, dlq))
            }
            .await;
            match loaded {
                Ok((fresh, table, dlq)) => {
                    *locked(&templates) = (Some(table), Some(dlq));
                    if let Ok(mut current) = schemas.write() {
                        *current = fresh;
                    }
                }
                Err(e) => {
                    tracing::warn!(table = %target.root, error = %tenancy::error_chain(&e), "cannot reload the table schema")
                }
            }
        });
    }
}

/// Frees keys of attempts that surely did not commit; a failure leaves them marked or
/// unmarked as they are, which a retry resolves the same way.
async fn release(store: &Arc<dyn MetadataStore>, target: &Target, attempts: &[Uuid]) {
    if attempts.is_empty() {
        return;
    }
    if let Err(e) = store.release_push_keys(attempts).await {
        tracing::warn!(table = %target.root, error = %tenancy::error_chain(&e), "cannot free idempotency keys; retries will resolve them");
    }
}

/// The rows each stream put in a group, streams in id order.
fn stream_rows(group: &[Pending]) -> Vec<(Uuid, u64)> {
    let mut rows = std::collections::BTreeMap::<Uuid, u64>::new();
    for pending in group {
        if let Some(batch) = &pending.rows {
            *rows.entry(pending.stream).or_default() += batch.num_rows() as u64;
        }
    }
    rows.into_iter().collect()
}

/// The idempotency-key attempts of the keyed requests among `pending`.
fn keyed_attempts(pending: &[Pending]) -> Vec<Uuid> {
    pending
        .iter()
        .filter_map(|p| p.keyed.as_ref().map(|k| k.attempt))
        .collect()
}

/// Whether a failed append may still land. A conflict or a refusal was decided before any
/// commit file was written; a storage failure (a timeout, a reset connection) may have
/// left a commit request that storage applies later, so its outcome is unknown.
fn failure_of(error: &DeltaError) -> Failure {
    let message = tenancy::error_chain(error);
    match error {
        // A local write that found no room: the commit file is put in place by a rename only
        // after it was written whole, so nothing landed and nothing can land later.
        DeltaError::Full { .. } => Failure {
            full: true,
            ..Failure::not_committed(message)
        },
        DeltaError::Conflict(_)
        | DeltaError::Refused(_)
        | DeltaError::NotATable(_)
        | DeltaError::Location(_)
        | DeltaError::UnsupportedType { .. } => Failure::not_committed(message),
        _ => Failure::unknown(message),
    }
}

/// Commits one group's staged batches, marked with the writer's application transaction
/// (`app_id`, `seq`). When deltalake reports an error, the mark says whether the commit landed
/// anyway (a post-commit failure, a lost response): then the group is acknowledged.
async fn append(
    delta: &DeltaSettings,
    slot: &mut Option<DeltaTable>,
    root: &str,
    staged: Staged,
    app_id: &str,
    seq: i64,
    streams: &[(Uuid, u64)],
) -> Result<i64, DeltaError> {
    let table = match slot.take() {
        Some(table) => table,
        None => tables::open(delta, root).await?,
    };
    let floor = table.version().map(version_i64);
    let written = staged
        .commit(
            table,
            tables::ingest_commit_properties(vec![Transaction::new(app_id, seq)], None, streams),
        )
        .await;
    match written {
        Ok(table) => {
            tables::checkpoint_if_due(&table).await;
            let version = table.version().map_or(0, version_i64);
            *slot = Some(table);
            Ok(version)
        }
        Err(e) => {
            let error = DeltaError::delta("append", root, e);
            // The exact version carrying the mark: others may have committed after it.
            match tables::version_of_mark(delta, root, app_id, seq, floor).await {
                Ok(tables::Marked::At(version)) => {
                    tracing::warn!(table = %root, error = %tenancy::error_chain(&error), "the commit landed although an error was reported; acknowledging it");
                    Ok(version)
                }
                _ => Err(error),
            }
        }
    }
}
