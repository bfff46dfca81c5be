//! Table operations: create, open, describe from the snapshot, history, schema evolution and
//! appends.

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::kernel::StructField;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::logstore::LogStoreRef;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures_util::TryStreamExt;
use serde::Serialize;
use tenancy::table::{ColumnSpec, TableSpec};
use url::Url;

use super::{DeltaError, DeltaSettings, schema};

/// Table properties every table gets: the compaction target, so other writers (Spark,
/// Python) aim at the same file size.
fn properties(spec: &TableSpec) -> Vec<(String, String)> {
    vec![(
        "delta.targetFileSize".to_owned(),
        spec.target_file_size_bytes.to_string(),
    )]
}

/// Delta versions are `u64` in deltalake; the API and the metadata use `i64` like the Delta
/// protocol's JSON, and no table reaches 2^63 commits.
pub fn version_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

/// A table root URL; directories end with a slash so joins stay inside it.
pub fn table_url(root: &str) -> Result<Url, DeltaError> {
    let with_slash = if root.ends_with('/') {
        root.to_owned()
    } else {
        format!("{root}/")
    };
    Url::parse(&with_slash).map_err(|_| DeltaError::Location(root.to_owned()))
}

/// Opens the table at `root` at its latest version.
pub async fn open(settings: &DeltaSettings, root: &str) -> Result<DeltaTable, DeltaError> {
    let url = table_url(root)?;
    DeltaTableBuilder::from_url(url)
        .map_err(|e| DeltaError::delta("open", root, e))?
        .with_storage_options(settings.storage_options.clone())
        .load()
        .await
        .map_err(|e| DeltaError::delta("open", root, e))
}

/// The log of the table at `root`, without reading it: no listing, no snapshot.
pub fn log_store(settings: &DeltaSettings, root: &str) -> Result<LogStoreRef, DeltaError> {
    let url = table_url(root)?;
    DeltaTableBuilder::from_url(url)
        .map_err(|e| DeltaError::delta("open", root, e))?
        .with_storage_options(settings.storage_options.clone())
        .build_storage()
        .map_err(|e| DeltaError::delta("open", root, e))
}

/// The table's latest version, from one listing of its log after version `since` (which must
/// still be in the log): no commit is read and no snapshot built. An error when the log no
/// longer holds `since` (cleaned up after a checkpoint, or the table is gone); callers then
/// read the table in full.
pub async fn latest_version(log: &LogStoreRef, root: &str, since: i64) -> Result<i64, DeltaError> {
    // Versions read from a log are never negative; listing from 0 would answer safely anyway.
    let since = u64::try_from(since).unwrap_or(0);
    let latest = log
        .get_latest_version(since)
        .await
        .map_err(|e| DeltaError::delta("check for commits", root, e))?;
    Ok(version_i64(latest))
}

/// The table's latest version without a snapshot and without a known version to list from:
/// the log is listed from its last checkpoint (`_last_checkpoint`), or from version 0 when it
/// was never checkpointed or the hint is unreadable.
pub async fn latest_version_cold(log: &LogStoreRef, root: &str) -> Result<i64, DeltaError> {
    use deltalake::logstore::object_store::{self, ObjectStoreExt, path::Path};
    let hint = Path::from("_delta_log/_last_checkpoint");
    let since = match log.object_store(None).get(&hint).await {
        Ok(found) => found
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_i64))
            .unwrap_or(0),
        Err(object_store::Error::NotFound { .. }) => 0,
        Err(source) => {
            return Err(DeltaError::delta(
                "read the last checkpoint",
                root,
                deltalake::DeltaTableError::ObjectStore { source },
            ));
        }
    };
    match latest_version(log, root, since).await {
        Err(_) if since > 0 => latest_version(log, root, 0).await,
        listed => listed,
    }
}

/// One commit file's text; `None` when log cleanup removed it.
pub async fn read_commit_text(
    log: &LogStoreRef,
    root: &str,
    version: i64,
) -> Result<Option<String>, DeltaError> {
    let version = u64::try_from(version).map_err(|_| DeltaError::Location(root.to_owned()))?;
    let entry = log
        .read_commit_entry(version)
        .await
        .map_err(|e| DeltaError::delta("read a commit", root, e))?;
    Ok(entry.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// Creates the Delta table for `spec` at `root` and returns its version (0). An existing
/// table there is an error, never overwritten.
pub async fn create(settings: &DeltaSettings, root: &str, spec: &TableSpec) -> Result<i64, DeltaError> {
    let url = table_url(root)?;
    let fields: Vec<StructField> = spec
        .columns
        .iter()
        .map(schema::to_field)
        .collect::<Result<_, _>>()?;
    if root.starts_with("file://") {
        // object_store's local backend does not create the table directory itself.
        let path = url
            .to_file_path()
            .map_err(|_| DeltaError::Location(root.to_owned()))?;
        tokio::fs::create_dir_all(&path)
            .await
            .map_err(|source| DeltaError::Io {
                operation: "create table directory",
                path: path.display().to_string(),
                source,
            })?;
    }
    let table = DeltaTableBuilder::from_url(url)
        .map_err(|e| DeltaError::delta("create", root, e))?
        .with_storage_options(settings.storage_options.clone())
        .build()
        .map_err(|e| DeltaError::delta("create", root, e))?;
    let mut builder = table
        .create()
        .with_table_name(spec.name.as_str())
        .with_columns(fields)
        .with_partition_columns(spec.partition_by.clone())
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_configuration(properties(spec).into_iter().map(|(k, v)| (k, Some(v))));
    if let Some(description) = &spec.description {
        builder = builder.with_comment(description.clone());
    }
    let created = builder.await.map_err(|e| DeltaError::delta("create", root, e))?;
    Ok(created.version().map_or(0, version_i64))
}

/// What the Delta snapshot says about a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Current version.
    pub version: i64,
    /// Columns, from the Delta schema (nested types included).
    pub columns: Vec<tenancy::datatype::Field>,
    /// Partition columns, from the Delta metadata.
    pub partition_by: Vec<String>,
    /// Live data files.
    pub num_files: u64,
    /// Their total size.
    pub size_bytes: u64,
    /// Live files below the small-file threshold.
    pub small_files: u64,
    /// The small-file threshold used, bytes.
    pub small_file_threshold_bytes: u64,
    /// Rows, from file statistics (`None` when a file has no statistics).
    pub num_rows: Option<u64>,
    /// Live files by size, in [`SIZE_BUCKETS`].
    pub file_sizes: Vec<SizeBucket>,
}

/// Upper bounds of the file-size histogram's buckets: powers of four from 64 KiB to 1 GiB,
/// then everything larger.
pub const SIZE_BUCKETS: [u64; 9] = [
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
    256 << 20,
    1 << 30,
    u64::MAX,
];

/// Files of a size range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SizeBucket {
    /// The largest size in the bucket, bytes; absent for the last, which has no bound.
    pub up_to_bytes: Option<u64>,
    /// Live files in it.
    pub files: u64,
}

/// The histogram of `sizes` over [`SIZE_BUCKETS`], every bucket present.
pub fn size_histogram(sizes: impl IntoIterator<Item = u64>) -> Vec<SizeBucket> {
    let mut counts = [0u64; SIZE_BUCKETS.len()];
    for size in sizes {
        let index = SIZE_BUCKETS.partition_point(|bound| *bound < size);
        counts[index.min(SIZE_BUCKETS.len() - 1)] += 1;
    }
    SIZE_BUCKETS
        .iter()
        .zip(counts)
        .map(|(bound, files)| SizeBucket {
            up_to_bytes: (*bound != u64::MAX).then_some(*bound),
            files,
        })
        .collect()
}

/// Reads the table's state from its Delta snapshot.
pub fn snapshot(table: &DeltaTable, small_file_bytes: u64) -> Result<Snapshot, DeltaError> {
    let location = table.table_url().to_string();
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read snapshot", &location, e))?;
    let columns = schema::columns(&state.schema())?;
    let mut num_files = 0;
    let mut size_bytes = 0;
    let mut small_files = 0;
    let mut num_rows = Some(0u64);
    let mut sizes = Vec::new();
    for file in state.log_data().iter() {
        let size = u64::try_from(file.size()).unwrap_or(0);
        sizes.push(size);
        num_files += 1;
        size_bytes += size;
        if size < small_file_bytes {
            small_files += 1;
        }
        num_rows = match (num_rows, file.num_records()) {
            (Some(total), Some(n)) => Some(total + n as u64),
            _ => None,
        };
    }
    Ok(Snapshot {
        version: version_i64(state.version()),
        columns,
        partition_by: state.metadata().partition_columns().to_vec(),
        num_files,
        size_bytes,
        small_files,
        small_file_threshold_bytes: small_file_bytes,
        num_rows,
        file_sizes: size_histogram(sizes),
    })
}

/// One Delta commit.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Commit {
    /// The version it created.
    pub version: i64,
    /// When, milliseconds since the epoch (as Delta records it).
    pub timestamp: Option<i64>,
    /// The operation (`CREATE TABLE`, `WRITE`, `OPTIMIZE`, `DELETE`, `VACUUM END`, ...).
    pub operation: Option<String>,
    /// Its parameters.
    #[schema(value_type = Object)]
    pub operation_parameters: serde_json::Value,
    /// Its metrics (files and rows added and removed, ...).
    #[schema(value_type = Object)]
    pub operation_metrics: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// An erasure's delete names the subjects' identifiers in its predicate, which the history
/// must not show again: the predicate is replaced by the erasure it belongs to.
fn withheld(
    info: &std::collections::HashMap<String, serde_json::Value>,
    mut parameters: serde_json::Value,
) -> serde_json::Value {
    if let Some(erasure) = info.get(ERASURE_KEY).and_then(serde_json::Value::as_str)
        && let Some(object) = parameters.as_object_mut()
        && object.contains_key("predicate")
    {
        object.insert(
            "predicate".to_owned(),
            serde_json::Value::String(format!("withheld: the subjects of erasure {erasure}")),
        );
    }
    parameters
}

/// The latest `limit` commits, newest first, starting below version `before` when given.
pub async fn history(
    table: &DeltaTable,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<Commit>, DeltaError> {
    let location = table.table_url().to_string();
    let latest = table.version().map_or(0, version_i64);
    let top = before.map_or(latest, |b| (b - 1).min(latest));
    if top < 0 {
        return Ok(Vec::new());
    }
    // commit_infos reads newest first; fetch through `top` and drop the newer ones.
    let skip = usize::try_from(latest - top).unwrap_or(0);
    let infos: Vec<_> = table
        .history(Some(skip + limit))
        .try_collect()
        .await
        .map_err(|e| DeltaError::delta("read history", &location, e))?;
    Ok(infos
        .into_iter()
        .enumerate()
        .skip(skip)
        .take(limit)
        .map(|(i, info)| Commit {
            version: latest - i as i64,
            timestamp: info.timestamp,
            operation: info.operation,
            // Both are objects in the API's schema: a commit without them (a CREATE TABLE has
            // no metrics) shows `{}`, not `null`.
            operation_parameters: withheld(
                &info.info,
                serde_json::to_value(info.operation_parameters.unwrap_or_default())
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .unwrap_or_else(empty_object),
            ),
            operation_metrics: info
                .info
                .get("operationMetrics")
                .filter(|m| m.is_object())
                .cloned()
                .unwrap_or_else(empty_object),
        })
        .collect())
}

/// Adds nullable columns in one metadata commit; returns the new version.
pub async fn add_columns(
    settings: &DeltaSettings,
    root: &str,
    added: &[ColumnSpec],
) -> Result<i64, DeltaError> {
    if let Some(required) = added.iter().find(|c| !c.nullable) {
        return Err(DeltaError::Refused(format!(
            "column {} must be nullable: existing rows have no value for it",
            required.name
        )));
    }
    let fields: Vec<StructField> = added.iter().map(schema::to_field).collect::<Result<_, _>>()?;
    let table = open(settings, root).await?;
    let table = table
        .add_columns()
        .with_fields(fields)
        .await
        .map_err(|e| DeltaError::delta("add columns", root, e))?;
    Ok(table.version().map_or(0, version_i64))
}

/// Appends record batches in one commit; returns the new version.
pub async fn append(
    settings: &DeltaSettings,
    root: &str,
    batches: Vec<RecordBatch>,
) -> Result<i64, DeltaError> {
    let table = open(settings, root).await?;
    let table = table
        .write(batches)
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|e| DeltaError::delta("append", root, e))?;
    Ok(table.version().map_or(0, version_i64))
}

/// Delta's default checkpoint interval, used for ingestion commits.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// Commit properties for ingestion commits: no checkpoint or log cleanup inside the commit.
/// deltalake reports a failed post-commit step as a failed commit although the version is
/// already written, which would make an acknowledged-or-not answer wrong; `checkpoint_if_due`
/// runs them after.
/// They are tagged as ingestion, so the volume collector counts their bytes as ingested, and
/// with the writing worker's `owner` where one writes them (Kafka). `streams` names the rows
/// each stream put in the commit (one commit may hold several streams' pushes to one table):
/// what a stream's ingest rate is read from.
pub fn ingest_commit_properties(
    transactions: Vec<deltalake::kernel::Transaction>,
    owner: Option<&str>,
    streams: &[(uuid::Uuid, u64)],
) -> CommitProperties {
    let mut metadata = vec![writer(crate::volume::INGEST)];
    if let Some(owner) = owner {
        metadata.push((OWNER_KEY.to_owned(), serde_json::Value::String(owner.to_owned())));
    }
    if !streams.is_empty() {
        let rows = streams
            .iter()
            .map(|(stream, rows)| (stream.to_string(), serde_json::Value::from(*rows)))
            .collect();
        metadata.push((
            crate::ingest::rate::STREAM_ROWS_KEY.to_owned(),
            serde_json::Value::Object(rows),
        ));
    }
    CommitProperties::default()
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false))
        .with_application_transactions(transactions)
        .with_metadata(metadata)
}

/// The commitInfo key naming the worker run that wrote a Kafka commit (its owner,
/// `{instance}-{process}/{launch}`): who wrote what stays readable in the table's history,
/// and two runs of one stream at once would show as interleaved owners.
pub const OWNER_KEY: &str = "lakeplane.owner";

/// Commit properties for maintenance commits: tagged, so the volume collector counts what
/// they rewrite apart from new data.
pub fn maintenance_commit_properties() -> CommitProperties {
    CommitProperties::default().with_metadata([writer(crate::volume::MAINTENANCE)])
}

/// The commitInfo key naming the erasure a delete belongs to.
pub const ERASURE_KEY: &str = "lakeplane.erasure";

/// Commit properties for an erasure's delete: tagged as maintenance (what it rewrites is not
/// new data), with the erasure's id, and marked with its application transaction (`app_id`,
/// round `seq`), by which a resumed erasure finds the commit.
pub fn erasure_commit_properties(app_id: &str, seq: i64, erasure: uuid::Uuid) -> CommitProperties {
    CommitProperties::default()
        .with_metadata([
            writer(crate::volume::MAINTENANCE),
            (
                ERASURE_KEY.to_owned(),
                serde_json::Value::String(erasure.to_string()),
            ),
        ])
        .with_application_transaction(deltalake::kernel::Transaction::new(app_id, seq))
}

fn writer(kind: &str) -> (String, serde_json::Value) {
    (
        crate::volume::WRITER_KEY.to_owned(),
        serde_json::Value::String(kind.to_owned()),
    )
}

/// Whether a commit marked with an application transaction landed, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// No commit carries the mark.
    NotLanded,
    /// This version carries it.
    At(i64),
}

/// Where the commit carrying the application transaction (`app_id`, `seq`) is, looked for
/// above `floor` (the table's version before that commit was attempted; `None`: from the
/// start). The table's latest transaction version of `app_id` only rules a commit out (the
/// writer's marks increase, so a lower one means it never landed): a later commit of the
/// same writer raises it whether or not this one landed, so the log itself is read for the
/// exact mark. The log above the floor is at most a day old here, far inside Delta's log
/// retention (30 days by default).
pub async fn version_of_mark(
    settings: &DeltaSettings,
    root: &str,
    app_id: &str,
    seq: i64,
    floor: Option<i64>,
) -> Result<Marked, DeltaError> {
    let (table, done) = app_version(settings, root, app_id).await?;
    if done.is_none_or(|done| done < seq) {
        return Ok(Marked::NotLanded);
    }
    let latest = table.version().map_or(0, version_i64);
    let store = table.log_store();
    // Newest first: the mark is usually in the last few commits.
    for version in (floor.map_or(0, |f| f + 1)..=latest).rev() {
        let Some(text) = read_commit_text(&store, root, version).await? else {
            continue;
        };
        let marked = text.lines().any(|line| {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|action| {
                let txn = &action["txn"];
                txn["appId"].as_str() == Some(app_id) && txn["version"].as_i64() == Some(seq)
            })
        });
        if marked {
            return Ok(Marked::At(version));
        }
    }
    Ok(Marked::NotLanded)
}

/// Writes a checkpoint when the table's version is a multiple of the interval; failures are
/// logged only (the next interval tries again, and readers replay the log meanwhile).
pub async fn checkpoint_if_due(table: &DeltaTable) {
    let Some(version) = table.version() else {
        return;
    };
    if version == 0 || version % CHECKPOINT_INTERVAL != 0 {
        return;
    }
    if let Err(e) = deltalake::checkpoints::create_checkpoint(table, None).await {
        tracing::warn!(table = %table.table_url(), version, error = %e, "checkpoint failed; the next interval tries again");
    }
}

/// The version recorded for an application id (a writer's progress marker), read fresh.
pub async fn app_version(
    settings: &DeltaSettings,
    root: &str,
    app_id: &str,
) -> Result<(DeltaTable, Option<i64>), DeltaError> {
    let table = open(settings, root).await?;
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read positions", root, e))?;
    let version = state
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(|e| DeltaError::delta("read positions", root, e))?;
    Ok((table, version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_erasures_predicate_is_withheld_from_history_and_others_are_kept() {
        let erasure = std::collections::HashMap::from([(ERASURE_KEY.to_owned(), json!("e-1"))]);
        let shown = withheld(&erasure, json!({"predicate": "email IN ('ann@example.com')"}));
        assert_eq!(
            shown,
            json!({"predicate": "withheld: the subjects of erasure e-1"})
        );
        let retention = std::collections::HashMap::new();
        let kept = json!({"predicate": "ts < '2026-01-01'"});
        assert_eq!(withheld(&retention, kept.clone()), kept);
        assert_eq!(
            withheld(&erasure, json!({"mode": "Full"})),
            json!({"mode": "Full"})
        );
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn files_fall_in_the_bucket_whose_bound_they_do_not_exceed() {
        let histogram = size_histogram([0, 64 << 10, (64 << 10) + 1, 5 << 20, 2 << 30]);
        let files: Vec<u64> = histogram.iter().map(|b| b.files).collect();
        assert_eq!(files, [2, 1, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(histogram[0].up_to_bytes, Some(64 << 10));
        assert_eq!(histogram[8].up_to_bytes, None);
        assert_eq!(size_histogram([]).iter().map(|b| b.files).sum::<u64>(), 0);
    }
}
