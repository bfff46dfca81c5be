//! Running a pipeline once: read the source's new data, transform it with DataFusion, apply
//! the expectations and deduplication, and commit the quarantine table and then the target,
//! each commit carrying the pipeline's Delta `txn` with the last source version read.
//!
//! **Exactly once.** Progress lives in the tables it protects: the target's `txn` version for
//! the pipeline's application id is the last source version whose rows the target holds, and
//! the quarantine table has its own. A run reads the source's data-change `add` actions after
//! the lower of the two, tags every row with the version of the file it came from, and writes
//! to each table only the rows above that table's own mark. A crash between the two commits,
//! or after both and before the run's record, is resumed by the next run without losing or
//! repeating a row.
//!
//! Source rows are appended history: rows a source commit removes (retention, an erasure, a
//! rewrite) are not taken back from the target.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use deltalake::arrow::compute::{CastOptions, cast, cast_with_options};
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::dataframe::DataFrame;
use deltalake::datafusion::datasource::TableProvider;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::prelude::{Expr, SessionConfig, SessionContext, col};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use futures_util::StreamExt;
use tenancy::pipeline::{DedupScope, Keep, PipelineSpec};
use uuid::Uuid;

use super::partitions;
use super::plan::{self, message};
use super::rows::{Layout, Split, dedup};
use crate::delta::tables::{self, version_i64};
use crate::delta::{DeltaError, DeltaSettings};

/// The column DeltaScan fills with each row's file.
const FILE_COLUMN: &str = "__lakeplane_file";

/// The `txn` application id of a pipeline's commits.
pub fn app_id(pipeline: Uuid) -> String {
    format!("lakeplane-pipeline-{pipeline}")
}

/// Where a run reads and writes.
#[derive(Debug, Clone)]
pub struct Roots {
    /// The source table.
    pub source: String,
    /// The target table.
    pub target: String,
    /// The quarantine table, when an expectation quarantines.
    pub quarantine: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The first source version read (`None`: nothing new).
    pub source_from: Option<i64>,
    /// The last source version read.
    pub source_to: Option<i64>,
    /// Rows the run answers for.
    pub rows_in: u64,
    /// Rows written to the target.
    pub rows_written: u64,
    /// Rows dropped.
    pub rows_dropped: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// Violations per expectation.
    pub expectations: BTreeMap<String, u64>,
    /// The target's version after the run's commit (`None`: nothing committed).
    pub target_version: Option<i64>,
}

/// Why a run committed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The pipeline cannot go on until someone acts: a `fail` expectation was violated, the
    /// source's schema no longer supports the select, the log it needs is gone. The pipeline
    /// is marked failed with this reason.
    #[error("{0}")]
    Failed(String),
    /// The tables could not be read or written; the next run tries again.
    #[error(transparent)]
    Delta(#[from] DeltaError),
    /// DataFusion failed while computing (not while planning).
    #[error("computing the run failed: {0}")]
    Engine(String),
}

/// Whether an engine error may pass on a retry: storage and I/O failures, a lost task, memory
/// pressure. Others (a value that does not cast, a plan that no longer holds) come back on
/// every run of the same data, so they fail the pipeline instead of being retried forever.
fn transient(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::External(_)
        | DataFusionError::ExecutionJoin(_)
        | DataFusionError::ResourcesExhausted(_) => true,
        DataFusionError::Context(_, inner) => transient(inner),
        DataFusionError::Shared(inner) => transient(inner),
        _ => false,
    }
}

impl From<DataFusionError> for RunError {
    fn from(e: DataFusionError) -> Self {
        if transient(&e) {
            RunError::Engine(message(&e))
        } else {
            RunError::Failed(format!("computing the run failed: {}", message(&e)))
        }
    }
}

impl From<deltalake::arrow::error::ArrowError> for RunError {
    fn from(e: deltalake::arrow::error::ArrowError) -> Self {
        RunError::Engine(e.to_string())
    }
}

/// Whether a commit removes data (a `remove` with `dataChange`: a DELETE, UPDATE, MERGE or
/// overwrite), as opposed to rewriting it (a compaction) or only adding.
pub fn removes_data(commit: &str) -> bool {
    removes(commit, true)
}

/// Whether a commit rewrites files without changing data (a compaction, a z-order): a
/// `remove` with `dataChange: false`.
pub fn rewrites_files(commit: &str) -> bool {
    removes(commit, false)
}

fn removes(commit: &str, data_change: bool) -> bool {
    commit
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .any(|action| {
            action.get("remove").is_some_and(|r| {
                r.get("dataChange")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(true)
                    == data_change
            })
        })
}

/// The data-change files a commit added (their paths as the log writes them), or none when the
/// commit also removes data: a DELETE, UPDATE, MERGE or overwrite writes the rows it keeps
/// into new files marked as data changes, and those rows are not new. (Rows a MERGE inserts
/// are therefore not read either: pipelines read appended history.)
pub fn data_change_adds(commit: &str) -> Vec<String> {
    if removes_data(commit) {
        return Vec::new();
    }
    let actions: Vec<serde_json::Value> = commit
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .collect();
    actions
        .into_iter()
        .filter_map(|action| {
            let add = action.get("add")?;
            let data_change = add
                .get("dataChange")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true);
            data_change
                .then(|| {
                    add.get("path")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                })
                .flatten()
        })
        .collect()
}

/// A file's key: its path relative to the table root, percent-decoded, whether it is written
/// relative (the log) or as a full URL (the scan's file column, the snapshot's file list).
fn file_key(path: &str, root: &str) -> String {
    // Local paths come as `file:///…` or as bare paths, depending on who wrote them.
    let plain = |text: &str| {
        let decoded = percent_decode(text);
        match decoded.strip_prefix("file://") {
            Some(rest) => rest.to_owned(),
            None => decoded,
        }
    };
    let decoded = plain(path);
    let root = plain(root);
    let root = root.trim_end_matches('/');
    decoded
        .strip_prefix(root)
        .unwrap_or(&decoded)
        .trim_start_matches('/')
        .to_owned()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads the data-change files of versions `after + 1 ..= latest`, by key.
async fn new_files(table: &DeltaTable, root: &str, after: i64, latest: i64) -> Result<LogRange, RunError> {
    let store = table.log_store();
    let mut range = LogRange::default();
    let table_root = table.table_url().to_string();
    for version in after + 1..=latest {
        let Some(commit) = crate::delta::tables::read_commit_text(&store, root, version).await? else {
            return Err(RunError::Failed(format!(
                "the source's log entry for version {version} is gone (log retention), so the \
                 rows added since version {} cannot be read one by one; ask for a full refresh",
                after + 1
            )));
        };
        range.removed |= removes_data(&commit);
        range.rewritten |= rewrites_files(&commit);
        for path in data_change_adds(&commit) {
            range.files.insert(file_key(&path, &table_root), (path, version));
        }
    }
    Ok(range)
}

/// What a range of the source's log holds.
#[derive(Debug, Default)]
struct LogRange {
    /// The data files added, by key: (path, the version that added it).
    files: HashMap<String, (String, i64)>,
    /// Whether a commit removed data (a DELETE, UPDATE, MERGE).
    removed: bool,
    /// Whether a commit rewrote files (a compaction): a row of the latest snapshot may then sit
    /// in a file the range did not add although the row is new.
    rewritten: bool,
}

fn single_partition() -> SessionContext {
    // One partition keeps rows in file order, which deduplication by arrival relies on, and
    // keeps a run's memory to one stream.
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1))
}

/// Casts a computed batch to the table's schema: same names, the table's types, and nulls
/// for table columns the pipeline does not fill (checked nullable when it was made).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, RunError> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            // Unsafe casts: a value that does not fit fails the run rather than turning null.
            Some(column) => cast_with_options(
                column,
                field.data_type(),
                &CastOptions {
                    safe: false,
                    ..CastOptions::default()
                },
            )
            .map_err(|e| RunError::Failed(format!("column {}: {e}", field.name()))),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// A Delta table's current Arrow schema.
pub(crate) fn arrow_schema(table: &DeltaTable, root: &str) -> Result<SchemaRef, DeltaError> {
    Ok(table
        .snapshot()
        .map_err(|e| DeltaError::delta("read schema", root, e))?
        .snapshot()
        .arrow_schema())
}

/// The run's commit: its mark, tagged as the pipeline's, and no checkpoint or log cleanup
/// inside the commit (deltalake reports a failed post-commit step as a failed commit although
/// the version is written); `checkpoint_if_due` runs after it.
fn properties(app: &str, source_version: i64) -> CommitProperties {
    CommitProperties::default()
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false))
        .with_application_transaction(Transaction::new(app, source_version))
        .with_metadata([(
            crate::volume::WRITER_KEY.to_owned(),
            serde_json::Value::String("pipeline".to_owned()),
        )])
}

/// Writes batches in one commit marked with the pipeline's `txn`; returns the new version.
/// With `replace`, an overwrite replaces only the rows matching it (whole partitions: Delta's
/// `replaceWhere`).
async fn write(
    table: DeltaTable,
    root: &str,
    batches: Vec<RecordBatch>,
    mode: SaveMode,
    replace: Option<Expr>,
    props: CommitProperties,
) -> Result<i64, RunError> {
    let schema = arrow_schema(&table, root)?;
    let mut batches = batches
        .iter()
        .map(|b| conform(b, &schema))
        .collect::<Result<Vec<_>, _>>()?;
    if batches.is_empty() {
        // No rows still commits: the commit carries the run's mark (and an overwrite empties).
        batches.push(RecordBatch::new_empty(schema.clone()));
    }
    let mut write = table.write(batches).with_save_mode(mode);
    if let Some(predicate) = replace {
        write = write.with_replace_where(predicate);
    }
    let written = write
        .with_commit_properties(props)
        .await
        .map_err(|e| DeltaError::delta("pipeline write", root, e))?;
    tables::checkpoint_if_due(&written).await;
    Ok(written.version().map_or(0, version_i64))
}

/// Merges batches into the target on the dedup keys: inserts rows whose key is new, and with
/// `keep: latest` replaces a row whose key exists when the new one orders after it.
async fn merge(
    table: DeltaTable,
    root: &str,
    batches: Vec<RecordBatch>,
    keys: &[String],
    order_by: Option<&str>,
    keep: Keep,
    props: CommitProperties,
) -> Result<i64, RunError> {
    let schema = arrow_schema(&table, root)?;
    // The names go into SQL text: only plain column names (the table's own could have been
    // written by an outside writer).
    for name in keys
        .iter()
        .map(String::as_str)
        .chain(order_by)
        .chain(schema.fields().iter().map(|f| f.name().as_str()))
    {
        tenancy::table::validate_column_name(name)
            .map_err(|why| RunError::Failed(format!("column {name:?} cannot be merged on: {why}")))?;
    }
    let batches = batches
        .iter()
        .map(|b| conform(b, &schema))
        .collect::<Result<Vec<_>, _>>()?;
    let ctx = SessionContext::new();
    let source = ctx.read_batches(batches)?;
    let on = keys
        .iter()
        .map(|k| format!("t.\"{k}\" = s.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut builder = table
        .merge(source, on)
        .with_source_alias("s")
        .with_target_alias("t")
        .with_commit_properties(props);
    if keep == Keep::Latest {
        let cols = names.clone();
        let condition = order_by.map(|o| format!("s.\"{o}\" > t.\"{o}\" OR t.\"{o}\" IS NULL"));
        builder = builder
            .when_matched_update(move |mut update| {
                if let Some(condition) = condition {
                    update = update.predicate(condition);
                }
                for c in &cols {
                    update = update.update(c.as_str(), format!("s.\"{c}\""));
                }
                update
            })
            .map_err(|e| DeltaError::delta("pipeline merge", root, e))?;
    }
    builder = builder
        .when_not_matched_insert(move |mut insert| {
            for c in &names {
                insert = insert.set(c.as_str(), format!("s.\"{c}\""));
            }
            insert
        })
        .map_err(|e| DeltaError::delta("pipeline merge", root, e))?;
    let (merged, _metrics) = builder
        .await
        .map_err(|e| DeltaError::delta("pipeline merge", root, e))?;
    tables::checkpoint_if_due(&merged).await;
    Ok(merged.version().map_or(0, version_i64))
}

/// One scan of the source at `version`: every active file, or only `files` (log paths), with
/// each row's file in [`FILE_COLUMN`].
async fn scan_at(
    ctx: &SessionContext,
    source: &DeltaTable,
    version: i64,
    files: Option<Vec<String>>,
) -> Result<DataFrame, RunError> {
    let latest = source.version().map_or(0, version_i64);
    // `table_provider()` scans the loaded snapshot whatever version is asked; an older
    // version needs a builder that loads its own.
    let builder = if version == latest {
        source.table_provider()
    } else {
        deltalake::delta_datafusion::TableProviderBuilder::default()
            .with_log_store(source.log_store())
            .with_table_version(u64::try_from(version).unwrap_or(0))
    };
    let mut builder = builder.with_file_column(FILE_COLUMN);
    // An empty selection plans a scan without the file column (deltalake 1.1), so no new
    // file is the whole table read for no rows: same columns, nothing read.
    let nothing = files.as_ref().is_some_and(Vec::is_empty);
    if let Some(files) = files.filter(|f| !f.is_empty()) {
        builder = builder.with_file_paths(files);
    }
    let provider: Arc<dyn TableProvider> = builder.await?;
    let scan = ctx.read_table(provider)?;
    Ok(if nothing { scan.limit(0, Some(0))? } else { scan })
}

/// The source rows to read: every active row at `latest` (`files` is `None`), or the rows of
/// `files`. A file maintenance rewrote since it was added (a compaction) is no longer in the
/// latest snapshot but still on storage until a vacuum: it is read at the version that added
/// it, and the scans are joined by column name (a column added since reads as null).
async fn scan(
    ctx: &SessionContext,
    source: &DeltaTable,
    latest: i64,
    files: Option<&HashMap<String, (String, i64)>>,
) -> Result<DataFrame, RunError> {
    source
        .update_datafusion_session(&ctx.state())
        .map_err(|e| RunError::Engine(e.to_string()))?;
    let Some(files) = files else {
        return scan_at(ctx, source, latest, None).await;
    };
    let root = source.table_url().to_string();
    let active: std::collections::HashSet<String> = source
        .get_file_uris()
        .map_err(|e| RunError::Engine(e.to_string()))?
        .map(|uri| file_key(&uri, &root))
        .collect();
    let mut gone: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut live = Vec::new();
    for (key, (path, version)) in files {
        if active.contains(key) {
            live.push(path.clone());
        } else {
            gone.entry(*version).or_default().push(path.clone());
        }
    }
    let mut input = scan_at(ctx, source, latest, Some(live)).await?;
    for (version, paths) in gone {
        let older = scan_at(ctx, source, version, Some(paths)).await?;
        input = input.union_by_name(older)?;
    }
    Ok(input)
}

/// The versions of each row's file, from the file column: files this run found in the log
/// have their version, others (older, active at `latest`) the `older` version.
fn row_versions(
    batch: &RecordBatch,
    files: &HashMap<String, (String, i64)>,
    root: &str,
    older: i64,
) -> Result<Vec<i64>, RunError> {
    let column = batch
        .column_by_name(FILE_COLUMN)
        .ok_or_else(|| RunError::Engine("the scan lost its file column".into()))?;
    let text = cast(column, &DataType::Utf8)?;
    let names = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| RunError::Engine("the file column is not text".into()))?;
    let mut cache: HashMap<&str, i64> = HashMap::new();
    Ok((0..names.len())
        .map(|i| {
            let path = names.value(i);
            *cache
                .entry(path)
                .or_insert_with(|| files.get(&file_key(path, root)).map_or(older, |(_, v)| *v))
        })
        .collect())
}

/// Runs the pipeline once. `full_refresh` reads every active source row and replaces the
/// target (and the quarantine table) instead of appending what is new.
pub async fn execute(
    delta: &DeltaSettings,
    spec: &PipelineSpec,
    pipeline: Uuid,
    roots: &Roots,
    full_refresh: bool,
) -> Result<Outcome, RunError> {
    let app = app_id(pipeline);
    let (target, done) = tables::app_version(delta, &roots.target, &app).await?;
    let (quarantine, quarantine_done) = match &roots.quarantine {
        Some(root) => {
            let (table, done) = tables::app_version(delta, root, &app).await?;
            (Some(table), done)
        }
        None => (None, None),
    };
    let source = tables::open(delta, &roots.source).await?;
    let latest = source.version().map_or(0, version_i64);
    let quarantined_up_to = if quarantine.is_some() {
        quarantine_done
    } else {
        done
    };
    if !full_refresh && done.is_some_and(|d| d >= latest) && quarantined_up_to.is_some_and(|q| q >= latest) {
        return Ok(Outcome {
            source_to: done,
            ..Outcome::default()
        });
    }
    // Where the log is read from. With both marks, from the lower: only the files added
    // since are read. With one (a first run killed between its two commits, or a table
    // replaced), from that one: the other table needs every row, so the snapshot is read
    // whole, and the log only tells which files are new to the marked table. With none (a
    // first run, a full refresh), not at all: the latest snapshot is read whole and every row
    // is new, so no history is needed (log cleanup or an erasure may have removed it) and no
    // file that maintenance rewrote.
    let marks = if full_refresh {
        (None, None)
    } else {
        (done, quarantined_up_to)
    };
    let log_from = match marks {
        (Some(d), Some(q)) => Some(d.min(q)),
        (Some(mark), None) | (None, Some(mark)) => Some(mark),
        (None, None) => None,
    };
    let range = match log_from {
        Some(from) => new_files(&source, &roots.source, from, latest).await?,
        None => LogRange::default(),
    };
    // A partitioned aggregate replaces only the partitions of new rows when it can tell them
    // all: not after the source removed data (rows left groups that new rows do not name) nor
    // after a compaction (a new row may sit in a rewritten file, dated as old).
    let scoped = !range.removed && !range.rewritten;
    let files = range.files;
    let aggregate = spec.aggregate.is_some();
    let incremental = marks.0.is_some() && marks.1.is_some() && !aggregate;
    let ctx = single_partition();
    let input = scan(&ctx, &source, latest, incremental.then_some(&files)).await?;
    let source_root = source.table_url().to_string();

    // Plan on the real scan: the schema may have gained columns since the pipeline was made
    // (new nullable columns change nothing); a select that no longer plans fails the pipeline.
    let mut violations = Vec::new();
    let mut exprs = plan::select_exprs(spec, &input, Some(FILE_COLUMN), &mut violations);
    if !violations.is_empty() {
        return Err(RunError::Failed(schema_break(&violations)));
    }
    exprs.push(col(format!("\"{FILE_COLUMN}\"")));
    let rows = input.select(exprs)?;
    let checks = plan::expectation_exprs(spec, &rows, &mut violations);
    if !violations.is_empty() {
        return Err(RunError::Failed(schema_break(&violations)));
    }
    let outputs = rows.schema().fields().len() - 1;
    let output_schema: SchemaRef = Arc::new(
        rows.schema()
            .as_arrow()
            .project(&(0..outputs).collect::<Vec<_>>())?,
    );
    if !aggregate {
        same_output(spec, &output_schema)?;
    }
    let mut columns: Vec<Expr> = rows
        .schema()
        .fields()
        .iter()
        .take(outputs)
        .map(|f| col(format!("\"{}\"", f.name())))
        .collect();
    for (i, check) in checks.into_iter().enumerate() {
        columns.push(check.is_true().alias(format!("__lakeplane_e{i}")));
    }
    columns.push(col(format!("\"{FILE_COLUMN}\"")));
    let computed = rows.select(columns)?;

    let counted_after = if full_refresh { None } else { done };
    let layout = Layout {
        outputs,
        expectations: &spec.expectations,
        counted_after,
        target_after: if aggregate { None } else { counted_after },
        quarantine_after: if full_refresh { None } else { quarantined_up_to },
    };
    // Files not found in the log range are older than where it was read from: not new to a
    // marked table. Without a mark every row is new (the layout's floors are `None` too).
    let older = log_from.unwrap_or(latest);
    let mut split = Split::default();
    let mut stream = computed.execute_stream().await?;
    let keep: Vec<usize> = (0..outputs + spec.expectations.len()).collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let versions = row_versions(&batch, &files, &source_root, older)?;
        let laid_out = batch.project(&keep)?;
        if let Err(failed) = split.add(&layout, &laid_out, &versions)? {
            return Err(RunError::Failed(failed.to_string()));
        }
    }

    let mut outcome = Outcome {
        source_from: Some(log_from.map_or(0, |f| f + 1)),
        source_to: Some(latest),
        rows_in: split.rows_in,
        rows_written: 0,
        rows_dropped: split.dropped,
        rows_quarantined: split.quarantined,
        expectations: split.violations.clone(),
        target_version: None,
    };
    let props = || properties(&app, latest);

    if let (Some(table), Some(root)) = (quarantine, &roots.quarantine)
        && (full_refresh || quarantine_done.is_none_or(|q| q < latest))
    {
        let mode = if full_refresh {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        };
        // Even with no rows the commit records the mark, so the quarantine's progress
        // follows the target's.
        write(table, root, split.quarantine.clone(), mode, None, props()).await?;
        crate::faults::point("pipeline.quarantine");
    }
    if !full_refresh && done.is_some_and(|d| d >= latest) {
        return Ok(outcome);
    }

    let target_rows = if aggregate {
        let mut kept = split.target.clone();
        // An empty input still has the output's columns, so the aggregate plans.
        kept.push(RecordBatch::new_empty(output_schema.clone()));
        let rows = ctx.read_batches(kept)?;
        let mut violations = Vec::new();
        let Some(grouped) = plan::aggregate(spec, rows, &mut violations) else {
            return Err(RunError::Failed(schema_break(&violations)));
        };
        same_output(spec, &Arc::new(grouped.schema().as_arrow().clone()))?;
        grouped.collect().await?
    } else if let Some(d) = &spec.dedup {
        let index = |name: &str| {
            output_schema
                .index_of(name)
                .map_err(|_| RunError::Failed(format!("dedup column {name} is not in the pipeline's output")))
        };
        let keys: Vec<usize> = d.keys.iter().map(|k| index(k)).collect::<Result<_, _>>()?;
        let order = d.order_by.as_deref().map(index).transpose()?;
        dedup(&split.target, &split.target_versions, &keys, order, d.keep)?
    } else {
        split.target.clone()
    };
    outcome.rows_written = target_rows.iter().map(|b| b.num_rows() as u64).sum();
    let nothing = target_rows.iter().all(|b| b.num_rows() == 0);
    let version = match &spec.dedup {
        // With no rows, an empty append records the mark (a MERGE of nothing may not commit).
        Some(d) if d.scope == DedupScope::Table && !full_refresh && !nothing => {
            merge(
                target,
                &roots.target,
                target_rows,
                &d.keys,
                d.order_by.as_deref(),
                d.keep,
                props(),
            )
            .await?
        }
        _ if aggregate && !full_refresh && scoped && done.is_some() => {
            let partitions = target
                .snapshot()
                .map_or_else(|_| Vec::new(), |s| s.metadata().partition_columns().to_vec());
            let schema = arrow_schema(&target, &roots.target)?;
            let group_by = spec.aggregate.as_ref().map_or(&[][..], |a| a.group_by.as_slice());
            let new_rows = split
                .target
                .iter()
                .zip(&split.target_versions)
                .map(|(batch, versions)| (batch, versions.as_slice()));
            match partitions::Touched::find(&partitions, group_by, &schema, new_rows, done)? {
                Some(touched) => {
                    let conformed = target_rows
                        .iter()
                        .map(|b| conform(b, &schema))
                        .collect::<Result<Vec<_>, _>>()?;
                    let rows = touched.keep(&conformed)?;
                    outcome.rows_written = rows.iter().map(|b| b.num_rows() as u64).sum();
                    // Nothing new reached the target: the commit carries only the mark.
                    match touched.predicate() {
                        Some(predicate) => {
                            write(
                                target,
                                &roots.target,
                                rows,
                                SaveMode::Overwrite,
                                Some(predicate),
                                props(),
                            )
                            .await?
                        }
                        None => {
                            write(target, &roots.target, Vec::new(), SaveMode::Append, None, props()).await?
                        }
                    }
                }
                None => {
                    write(
                        target,
                        &roots.target,
                        target_rows,
                        SaveMode::Overwrite,
                        None,
                        props(),
                    )
                    .await?
                }
            }
        }
        _ => {
            let mode = if full_refresh || aggregate {
                SaveMode::Overwrite
            } else {
                SaveMode::Append
            };
            write(target, &roots.target, target_rows, mode, None, props()).await?
        }
    };
    crate::faults::point("pipeline.target");
    outcome.target_version = Some(version);
    Ok(outcome)
}

/// The run's output must still be what the pipeline was planned to make: every planned column,
/// of its planned type. A source column that was dropped (with no select, the output follows
/// the source) or changed type fails the pipeline instead of filling the target with nulls.
/// Columns the source gained are extra outputs, left out of a target that lacks them.
fn same_output(spec: &PipelineSpec, output: &SchemaRef) -> Result<(), RunError> {
    for planned in &spec.output {
        match output.field_with_name(&planned.name) {
            Err(_) => {
                return Err(RunError::Failed(format!(
                    "the source's schema no longer supports the pipeline: its output has no column {} any more",
                    planned.name
                )));
            }
            Ok(field) => match plan::column_type(field.data_type()) {
                Ok(t) if t == planned.column_type => {}
                Ok(t) => {
                    return Err(RunError::Failed(format!(
                        "the source's schema no longer supports the pipeline: column {} is now {t}, planned as {}",
                        planned.name, planned.column_type
                    )));
                }
                Err(why) => {
                    return Err(RunError::Failed(format!(
                        "the source's schema no longer supports the pipeline: column {}: {why}",
                        planned.name
                    )));
                }
            },
        }
    }
    Ok(())
}

fn schema_break(violations: &[tenancy::validation::Violation]) -> String {
    format!(
        "the source's schema no longer supports the pipeline: {}",
        violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_change_adds_are_read() {
        let commit = [
            r#"{"commitInfo":{"timestamp":1}}"#,
            r#"{"add":{"path":"a.parquet","dataChange":true}}"#,
            r#"{"add":{"path":"country=DE/b%20c.parquet","dataChange":true}}"#,
            r#"{"add":{"path":"compacted.parquet","dataChange":false}}"#,
            "not json",
            r#"{"txn":{"appId":"x","version":3}}"#,
        ]
        .join("\n");
        assert_eq!(
            data_change_adds(&commit),
            ["a.parquet", "country=DE/b%20c.parquet"]
        );
    }

    #[test]
    fn files_are_known_by_their_decoded_path_under_the_root() {
        let root = "file:///lake/t/";
        assert_eq!(
            file_key("country=DE/b%20c.parquet", root),
            "country=DE/b c.parquet"
        );
        assert_eq!(
            file_key("file:///lake/t/country=DE/b%20c.parquet", root),
            "country=DE/b c.parquet"
        );
        // Two partitions may hold files of one name (Spark's part-00000-<job>): still apart.
        assert_ne!(
            file_key("country=DE/part-0.parquet", root),
            file_key("country=FR/part-0.parquet", root)
        );
        assert_eq!(file_key("plain.parquet", root), "plain.parquet");
        assert_eq!(
            file_key("/lake/t/x.parquet", root),
            "x.parquet",
            "a bare local path"
        );
        assert_eq!(file_key("bad%zz.parquet", root), "bad%zz.parquet");
    }

    #[test]
    fn commits_that_remove_data_add_nothing_new() {
        let delete = [
            r#"{"remove":{"path":"a.parquet","dataChange":true}}"#,
            r#"{"add":{"path":"a2.parquet","dataChange":true}}"#,
        ]
        .join("\n");
        assert!(
            data_change_adds(&delete).is_empty(),
            "a delete's rewritten rows are not new"
        );
        let compaction = [
            r#"{"remove":{"path":"a.parquet","dataChange":false}}"#,
            r#"{"add":{"path":"big.parquet","dataChange":false}}"#,
        ]
        .join("\n");
        assert!(data_change_adds(&compaction).is_empty());
        // What a partitioned aggregate checks before it replaces partitions only.
        assert!(removes_data(&delete) && !rewrites_files(&delete));
        assert!(rewrites_files(&compaction) && !removes_data(&compaction));
        let append = r#"{"add":{"path":"b.parquet","dataChange":true}}"#;
        assert!(!removes_data(append) && !rewrites_files(append));
    }
}
