//! The Kafka source: one worker per stream, consuming its topic into the bronze table with
//! exactly-once commits.
//!
//! Positions live in the table, not in Kafka: every commit carries a Delta application
//! transaction per partition (app id `{stream_id}-{partition}`, version = last offset written).
//! On start the worker reads those versions and assigns each partition at version + 1, so a
//! crash at any point replays exactly what was not committed. A second worker on the same
//! stream makes the first one's next commit fail with a concurrent-transaction conflict, which
//! fences it: it drops its buffer and starts again from the table.
//!
//! Dead letters get the same treatment in the dead-letter table, committed before the table's
//! commit, and replayed records at or below its recorded version are not dead-lettered again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, Int32Array, Int64Array};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, TransactionError};
use deltalake::protocol::{DeltaOperation, SaveMode};
use futures_util::StreamExt;
use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tenancy::role::Zone;
use tenancy::store::{StreamRecord, TableStatus};
use tenancy::stream::{KafkaSource, StartFrom, StreamSource, dlq_name};

use super::IngestError;
use super::decode::{self, EventSchema, KafkaPosition, Metadata};
use super::secrets::Sealer;
use crate::catalog::Catalog;
use crate::delta::tables::{self, version_i64};
use crate::delta::{DeltaError, DeltaSettings};

/// Kafka worker tuning.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// Flush after this many records.
    pub flush_records: usize,
    /// Flush after this many payload bytes.
    pub flush_bytes: usize,
    /// Flush at the latest this long after the first buffered record.
    pub linger: Duration,
    /// Broker metadata and watermark requests time out after this.
    pub request_timeout: Duration,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            flush_records: 100_000,
            flush_bytes: 16 * 1024 * 1024,
            linger: Duration::from_millis(500),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A worker's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerStatus {
    /// `starting`, `running`, `failed` (retrying with backoff) or `stopped`.
    pub state: &'static str,
    /// Per-partition lag: high watermark minus the next offset to write.
    pub lag: BTreeMap<i32, i64>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// The app id of a stream's partition in the table's transaction log.
pub fn app_id(stream: uuid::Uuid, partition: i32) -> String {
    format!("{stream}-{partition}")
}

type Statuses = Arc<Mutex<HashMap<uuid::Uuid, WorkerStatus>>>;

/// The Kafka consumers of the running ingest workers, with their statuses for the API.
pub struct KafkaWorkers {
    catalog: Arc<Catalog>,
    settings: KafkaSettings,
    sealer: Option<Sealer>,
    statuses: Statuses,
}

fn set_status(statuses: &Statuses, id: uuid::Uuid, update: impl FnOnce(&mut WorkerStatus)) {
    let mut map = statuses.lock().unwrap_or_else(|p| p.into_inner());
    update(map.entry(id).or_default());
}

/// Marks the stream's consumer stopped however its run ends (an abort included), unless it
/// ended failed: that state and its error stay visible.
struct StoppedOnDrop {
    statuses: Statuses,
    id: uuid::Uuid,
}

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        set_status(&self.statuses, self.id, |s| {
            if s.state != "failed" {
                s.state = "stopped";
                s.lag.clear();
            }
        });
    }
}

impl KafkaWorkers {
    /// No consumers yet.
    pub fn new(catalog: Arc<Catalog>, settings: KafkaSettings, sealer: Option<Sealer>) -> Self {
        Self {
            catalog,
            settings,
            sealer,
            statuses: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Consumes the stream's topic into its table until an error, which is returned (the
    /// ingest worker's reconciler restarts it with backoff), or until the stream is gone
    /// (`Ok`). Dropping the future anywhere is safe: positions are only ever those committed
    /// with their rows, so a new run resumes exactly.
    /// Its commits name `owner` (the worker run) in their commitInfo.
    pub async fn run(&self, stream: StreamRecord, owner: &str) -> Result<(), IngestError> {
        let id = stream.id;
        set_status(&self.statuses, id, |s| {
            s.state = "starting";
            s.lag.clear();
        });
        let _stopped = StoppedOnDrop {
            statuses: self.statuses.clone(),
            id,
        };
        let attempt = Attempt {
            catalog: self.catalog.clone(),
            settings: self.settings.clone(),
            sealer: self.sealer.clone(),
            statuses: self.statuses.clone(),
            stream,
            owner: owner.to_owned(),
        };
        let result = attempt.run_once().await;
        if let Err(e) = &result {
            let error = tenancy::error_chain(e);
            set_status(&self.statuses, id, |s| {
                s.state = "failed";
                s.last_error = Some(error);
            });
        }
        result
    }

    /// A consumer's status (`stopped` when none runs here).
    pub fn status(&self, id: uuid::Uuid) -> WorkerStatus {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or(WorkerStatus {
                state: "stopped",
                ..WorkerStatus::default()
            })
    }

    /// Forgets a deleted stream's status.
    pub fn forget(&self, id: uuid::Uuid) {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Every running consumer's lag, for metrics: (stream id, partition, lag).
    pub fn lags(&self) -> Vec<(uuid::Uuid, i32, i64)> {
        let map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, s)| s.state == "running")
            .flat_map(|(id, s)| s.lag.iter().map(move |(p, lag)| (*id, *p, *lag)))
            .collect()
    }
}

/// One run of a stream's consumer, from the table's positions.
struct Attempt {
    catalog: Arc<Catalog>,
    settings: KafkaSettings,
    sealer: Option<Sealer>,
    statuses: Statuses,
    stream: StreamRecord,
    owner: String,
}

impl Attempt {
    async fn run_once(&self) -> Result<(), IngestError> {
        let StreamSource::Kafka(source) = &self.stream.source else {
            return Ok(());
        };
        let store = self.catalog.store();
        // A stream deleted elsewhere (another replica, a tenant purge) ends its worker here.
        let current = store
            .get_stream(&self.stream.tenant, self.stream.name.as_str())
            .await?;
        let Some(tenant) = store.get_tenant(&self.stream.tenant).await? else {
            return Ok(());
        };
        if current.map(|s| s.id) != Some(self.stream.id) {
            tracing::info!(stream = %self.stream.name, tenant = %self.stream.tenant, "the stream is gone; its worker stops");
            return Ok(());
        }
        let table = store
            .get_table_by_id(self.stream.table_id)
            .await?
            .filter(|t| t.status == TableStatus::Active)
            .ok_or_else(|| IngestError::Kafka("the stream's table is gone".into()))?;
        let root = self
            .catalog
            .table_root(&tenant, Zone::Bronze, table.spec.name.as_str());
        let dlq_root = self
            .catalog
            .table_root(&tenant, Zone::Bronze, &dlq_name(&table.spec.name));
        let delta = self.catalog.delta().clone();
        let main = Side::open(&delta, &root, &self.owner).await?;
        let dlq = Side::open(&delta, &dlq_root, &self.owner).await?;
        let consumer = self.consumer(source)?;
        let mut worker = Worker {
            stream: self.stream.id,
            topic: source.topic.clone(),
            settings: self.settings.clone(),
            statuses: self.statuses.clone(),
            main,
            dlq,
            consumer,
            next: BTreeMap::new(),
            dead_before_start: HashSet::new(),
            catalog: self.catalog.clone(),
            tenant: tenant.id.clone(),
            table: table.spec.name.to_string(),
        };
        worker.assign(source.start).await?;
        worker.load_replayed_dead_letters().await?;
        set_status(&self.statuses, self.stream.id, |s| s.state = "running");
        worker.consume().await
    }

    fn consumer(&self, source: &KafkaSource) -> Result<Arc<StreamConsumer>, IngestError> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", source.bootstrap_servers.join(","))
            .set("group.id", format!("lakeplane-{}", self.stream.id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("client.id", format!("lakeplane-{}", self.stream.name));
        for (key, value) in &source.properties {
            config.set(key, value);
        }
        for (key, sealed) in &source.secrets {
            let sealer = self.sealer.as_ref().ok_or_else(|| {
                IngestError::Kafka(format!("{key} is sealed and no ingest.secret_key is configured"))
            })?;
            let place = format!("{}/{}/{key}", self.stream.tenant, self.stream.name);
            let plain = sealer
                .open(&place, sealed)
                .map_err(|e| IngestError::Kafka(format!("{key}: {e}")))?;
            config.set(key, plain);
        }
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| IngestError::Kafka(format!("cannot create the consumer: {e}")))?;
        Ok(Arc::new(consumer))
    }
}

/// One of the two tables a worker commits to, with the snapshot its commits build on.
struct Side {
    root: String,
    table: DeltaTable,
    schema: EventSchema,
    owner: String,
}

impl Side {
    async fn open(delta: &DeltaSettings, root: &str, owner: &str) -> Result<Self, IngestError> {
        let table = tables::open(delta, root).await?;
        let schema = EventSchema::new(
            table
                .snapshot()
                .map_err(|e| DeltaError::delta("read schema", root, e))?
                .snapshot()
                .arrow_schema(),
        );
        Ok(Self {
            root: root.to_owned(),
            table,
            schema,
            owner: owner.to_owned(),
        })
    }

    async fn position(&self, app_id: &str) -> Result<Option<i64>, IngestError> {
        let state = self
            .table
            .snapshot()
            .map_err(|e| DeltaError::delta("read positions", &self.root, e))?;
        Ok(state
            .transaction_version(self.table.log_store().as_ref(), app_id)
            .await
            .map_err(|e| DeltaError::delta("read positions", &self.root, e))?)
    }

    /// Commits rows (or, with none, only the positions) with one transaction per partition.
    /// `stream` names the rows as the stream's (its ingest rate); dead letters are not.
    async fn commit(
        &mut self,
        rows: Option<RecordBatch>,
        positions: Vec<Transaction>,
        stream: Option<uuid::Uuid>,
    ) -> Result<i64, IngestError> {
        let counted: Vec<(uuid::Uuid, u64)> = match (stream, &rows) {
            (Some(stream), Some(rows)) => vec![(stream, rows.num_rows() as u64)],
            _ => Vec::new(),
        };
        let properties = tables::ingest_commit_properties(positions, Some(&self.owner), &counted);
        let fenced = |e: deltalake::DeltaTableError, root: &str| -> IngestError {
            if matches!(
                &e,
                deltalake::DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction)
                }
            ) {
                IngestError::Kafka(format!(
                    "fenced: another worker committed this stream's positions to {root}; restarting from the table"
                ))
            } else {
                DeltaError::delta("kafka commit", root, e).into()
            }
        };
        match rows {
            Some(rows) => {
                let table = self.table.clone();
                let written = crate::delta::append::append(table, vec![rows], properties)
                    .await
                    .map_err(|e| fenced(e, &self.root))?;
                self.table = written;
                tables::checkpoint_if_due(&self.table).await;
            }
            None => {
                let operation = DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by: None,
                    predicate: None,
                };
                let state = self
                    .table
                    .snapshot()
                    .map_err(|e| DeltaError::delta("kafka commit", &self.root, e))?;
                let done = CommitBuilder::from(properties)
                    .build(Some(state), self.table.log_store(), operation)
                    .await
                    .map_err(|e| fenced(e, &self.root))?;
                self.table
                    .update_incremental(Some(done.version()))
                    .await
                    .map_err(|e| DeltaError::delta("kafka commit", &self.root, e))?;
            }
        }
        Ok(self.table.version().map_or(0, version_i64))
    }
}

struct Worker {
    stream: uuid::Uuid,
    topic: String,
    settings: KafkaSettings,
    statuses: Statuses,
    main: Side,
    dlq: Side,
    consumer: Arc<StreamConsumer>,
    /// Next offset to write, per partition.
    next: BTreeMap<i32, i64>,
    /// Records already in the dead-letter table that the table's positions do not cover yet
    /// (a crash between the two commits of a flush): replaying them must not repeat them.
    dead_before_start: HashSet<(i32, i64)>,
    /// Re-checks the tenant before each commit (placement moves, status changes).
    catalog: Arc<Catalog>,
    tenant: tenancy::tenant::TenantId,
    table: String,
}

/// Buffered records of one flush.
#[derive(Default)]
struct Buffer {
    payloads: Vec<Vec<u8>>,
    positions: Vec<KafkaPosition>,
    bytes: usize,
}

impl Worker {
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&StreamConsumer) -> T + Send + 'static,
    ) -> Result<T, IngestError> {
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || call(&consumer))
            .await
            .map_err(|e| IngestError::Kafka(format!("broker call panicked: {e}")))
    }

    async fn assign(&mut self, start: StartFrom) -> Result<(), IngestError> {
        let (topic, timeout) = (self.topic.clone(), self.settings.request_timeout);
        let metadata = self
            .blocking(move |c| c.fetch_metadata(Some(&topic), timeout))
            .await?
            .map_err(|e| {
                IngestError::Kafka(format!("cannot read the metadata of topic {}: {e}", self.topic))
            })?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(IngestError::Kafka(format!(
                "topic {} has no partitions (does it exist?)",
                self.topic
            )));
        }
        let mut list = TopicPartitionList::new();
        // `latest` is resolved once, to concrete offsets recorded in the table before anything
        // is consumed: a restart must resume there, not at the end of the topic again.
        let mut pinned = Vec::new();
        for partition in partitions {
            let written = self.main.position(&app_id(self.stream, partition)).await?;
            let offset = match (written, start) {
                (Some(last), _) => Offset::Offset(last + 1),
                (None, StartFrom::Earliest) => Offset::Beginning,
                (None, StartFrom::Latest) => {
                    let (topic, timeout) = (self.topic.clone(), self.settings.request_timeout);
                    let (_, high) = self
                        .blocking(move |c| c.fetch_watermarks(&topic, partition, timeout))
                        .await?
                        .map_err(|e| {
                            IngestError::Kafka(format!("cannot read the end of partition {partition}: {e}"))
                        })?;
                    pinned.push(Transaction::new(app_id(self.stream, partition), high - 1));
                    self.next.insert(partition, high);
                    Offset::Offset(high)
                }
            };
            if let Some(last) = written {
                self.next.insert(partition, last + 1);
            }
            list.add_partition_offset(&self.topic, partition, offset)
                .map_err(|e| IngestError::Kafka(e.to_string()))?;
        }
        if !pinned.is_empty() {
            self.main.commit(None, pinned, None).await?;
        }
        tracing::info!(stream = %self.stream, topic = %self.topic, positions = ?self.next, "kafka worker assigned from the table's positions");
        self.consumer
            .assign(&list)
            .map_err(|e| IngestError::Kafka(format!("cannot assign partitions: {e}")))
    }

    /// Reads which records between the table's and the dead-letter table's positions are in
    /// the dead-letter table. Only a crash between a flush's two commits leaves such a range,
    /// so this reads the dead-letter table only then.
    async fn load_replayed_dead_letters(&mut self) -> Result<(), IngestError> {
        let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for partition in self.consumer_partitions() {
            // Without a table position the partition starts at its beginning (offset 0 or later).
            let next = self.next.get(&partition).copied().unwrap_or(0);
            if let Some(dead) = self.dlq.position(&app_id(self.stream, partition)).await?
                && dead >= next
            {
                ranges.insert(partition, (next, dead));
            }
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let (_, mut batches) = self
            .dlq
            .table
            .scan_table()
            .with_columns([tenancy::stream::KAFKA_PARTITION, tenancy::stream::KAFKA_OFFSET])
            .await
            .map_err(|e| DeltaError::delta("read dead letters", &self.dlq.root, e))?;
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| IngestError::Kafka(format!("read dead letters: {e}")))?;
            let column = |name: &str| batch.column_by_name(name).cloned();
            let (Some(partitions), Some(offsets)) = (
                column(tenancy::stream::KAFKA_PARTITION),
                column(tenancy::stream::KAFKA_OFFSET),
            ) else {
                continue;
            };
            let partitions = partitions.as_any().downcast_ref::<Int32Array>();
            let offsets = offsets.as_any().downcast_ref::<Int64Array>();
            let (Some(partitions), Some(offsets)) = (partitions, offsets) else {
                continue;
            };
            for row in 0..batch.num_rows() {
                if partitions.is_null(row) || offsets.is_null(row) {
                    continue;
                }
                let (partition, offset) = (partitions.value(row), offsets.value(row));
                if ranges
                    .get(&partition)
                    .is_some_and(|(from, to)| (*from..=*to).contains(&offset))
                {
                    self.dead_before_start.insert((partition, offset));
                }
            }
        }
        tracing::info!(stream = %self.stream, replayed = self.dead_before_start.len(), "dead letters of an interrupted flush will not be repeated");
        Ok(())
    }

    async fn consume(&mut self) -> Result<(), IngestError> {
        let mut buffer = Buffer::default();
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut lag_tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            let wait = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                message = self.consumer.recv() => {
                    let message = message.map_err(|e| IngestError::Kafka(format!("consume: {e}")))?;
                    let payload = message.payload().map(<[u8]>::to_vec).unwrap_or_default();
                    buffer.bytes += payload.len();
                    buffer.payloads.push(payload);
                    buffer.positions.push(KafkaPosition {
                        partition: message.partition(),
                        offset: message.offset(),
                        timestamp_ms: message.timestamp().to_millis(),
                    });
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.settings.linger);
                    }
                    if buffer.payloads.len() >= self.settings.flush_records || buffer.bytes >= self.settings.flush_bytes {
                        self.flush(std::mem::take(&mut buffer)).await?;
                        deadline = None;
                    }
                }
                () = tokio::time::sleep_until(wait) => {
                    self.flush(std::mem::take(&mut buffer)).await?;
                    deadline = None;
                }
                _ = lag_tick.tick() => self.update_lag().await,
            }
        }
    }

    async fn update_lag(&self) {
        let mut lag = BTreeMap::new();
        let partitions: Vec<i32> = self.consumer_partitions();
        for partition in partitions {
            let (topic, timeout) = (self.topic.clone(), self.settings.request_timeout);
            let watermarks = self
                .blocking(move |c| c.fetch_watermarks(&topic, partition, timeout))
                .await;
            if let Ok(Ok((low, high))) = watermarks {
                let next = self.next.get(&partition).copied().unwrap_or(low);
                lag.insert(partition, (high - next).max(0));
            }
        }
        set_status(&self.statuses, self.stream, |s| s.lag = lag);
    }

    fn consumer_partitions(&self) -> Vec<i32> {
        self.consumer
            .assignment()
            .map(|list| list.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default()
    }

    /// A tenant that is migrating (or moved) must not get commits at the old location: the
    /// worker stops, and its restart resolves the table where the tenant is now. The intent
    /// returned holds a migration that starts from now on back until the flush ended.
    async fn check_placement(&self) -> Result<crate::fence::Intent, IngestError> {
        let (tenant, intent) =
            crate::fence::Intent::begin(self.catalog.store(), &self.tenant, "kafka").await?;
        let tenant = tenant.ok_or_else(|| IngestError::Kafka("the stream's tenant is gone".into()))?;
        if tenant.status != tenancy::tenant::TenantStatus::Ready {
            return Err(IngestError::Fenced {
                tenant: tenant.id.to_string(),
                status: tenant.status.as_str(),
            });
        }
        if self.catalog.table_root(&tenant, Zone::Bronze, &self.table) != self.main.root {
            return Err(IngestError::Kafka(
                "the tenant's storage moved; restarting at the new location".into(),
            ));
        }
        Ok(intent)
    }

    async fn flush(&mut self, buffer: Buffer) -> Result<(), IngestError> {
        if buffer.payloads.is_empty() {
            return Ok(());
        }
        // Records below a partition's recorded position were committed already (a record
        // delivered twice after a reassignment): skip them.
        let mut events = Vec::with_capacity(buffer.payloads.len());
        let mut positions = Vec::with_capacity(buffer.payloads.len());
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        for (i, (payload, position)) in buffer.payloads.iter().zip(&buffer.positions).enumerate() {
            if self
                .next
                .get(&position.partition)
                .is_some_and(|next| position.offset < *next)
            {
                continue;
            }
            events.push((i + 1, payload.as_slice()));
            positions.push(*position);
            last.insert(position.partition, position.offset);
        }
        if events.is_empty() {
            return Ok(());
        }
        let intent = self.check_placement().await?;
        let lapsed =
            || IngestError::Kafka("the flush outlived its write intent; restarting from the table".into());
        let now_us = tenancy::now().timestamp_micros();
        let decoded = decode::decode(&self.main.schema, &events, now_us, Metadata::Kafka(&positions))
            .map_err(IngestError::Kafka)?;
        let transactions = || -> Vec<Transaction> {
            last.iter()
                .map(|(p, offset)| Transaction::new(app_id(self.stream, *p), *offset))
                .collect()
        };
        if !decoded.rejected.is_empty() {
            let mut dead = Vec::new();
            let mut dead_positions = Vec::new();
            let mut labels = Vec::new();
            let line_to_index: HashMap<usize, usize> = events
                .iter()
                .enumerate()
                .map(|(i, (line, _))| (*line, i))
                .collect();
            for (error, raw) in &decoded.rejected {
                let Some(position) = line_to_index.get(&error.line).map(|i| positions[*i]) else {
                    continue;
                };
                if self
                    .dead_before_start
                    .contains(&(position.partition, position.offset))
                {
                    continue; // dead-lettered before a crash; the table commit did not follow
                }
                labels.push(format!(
                    "partition {} offset {}",
                    position.partition, position.offset
                ));
                dead_positions.push(position);
                dead.push((error.clone(), raw.clone()));
            }
            if !dead.is_empty() {
                let rows = decode::dlq_rows(&self.dlq.schema, &dead, &labels, now_us, Some(&dead_positions))
                    .map_err(IngestError::Kafka)?;
                if !intent.still_held() {
                    return Err(lapsed());
                }
                self.dlq.commit(Some(rows), transactions(), None).await?;
            }
        }
        if !intent.still_held() {
            return Err(lapsed());
        }
        let version = self
            .main
            .commit(decoded.rows, transactions(), Some(self.stream))
            .await?;
        intent.end().await;
        for (partition, offset) in last {
            self.next.insert(partition, offset + 1);
        }
        tracing::debug!(stream = %self.stream, version, accepted = decoded.accepted, rejected = decoded.rejected.len(), "kafka flush committed");
        Ok(())
    }
}
