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
use deltalake::arrow::compute::cast;
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

impl From<DataFusionError> for RunError {
    fn from(e: DataFusionError) -> Self {
        RunError::Engine(message(&e))
    }
}

impl From<deltalake::arrow::error::ArrowError> for RunError {
    fn from(e: deltalake::arrow::error::ArrowError) -> Self {
        RunError::Engine(e.to_string())
    }
}

/// The data-change files a commit added (their paths as the log writes them).
pub fn data_change_adds(commit: &str) -> Vec<String> {
    commit
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
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

/// A file's name: the last path segment, percent-decoded. Delta data files have unique names
/// (a UUID in each), so the name identifies a file whether a path is relative, encoded or a
/// full URL.
fn file_name(path: &str) -> String {
    let last = path.rsplit('/').next().unwrap_or(path);
    percent_decode(last)
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

/// Reads the data-change files of versions `after + 1 ..= latest`, by file name.
async fn new_files(
    table: &DeltaTable,
    root: &str,
    after: Option<i64>,
    latest: i64,
) -> Result<HashMap<String, (String, i64)>, RunError> {
    let store = table.log_store();
    let mut files = HashMap::new();
    for version in after.map_or(0, |a| a + 1)..=latest {
        let Ok(at) = u64::try_from(version) else { continue };
        let entry = store
            .read_commit_entry(at)
            .await
            .map_err(|e| DeltaError::delta("read commit", root, e))?;
        let Some(bytes) = entry else {
            return Err(RunError::Failed(format!(
                "the source's log entry for version {version} is gone (log retention), so the \
                 rows added since version {} cannot be read one by one; ask for a full refresh",
                after.map_or(0, |a| a + 1)
            )));
        };
        for path in data_change_adds(&String::from_utf8_lossy(&bytes)) {
            files.insert(file_name(&path), (path, version));
        }
    }
    Ok(files)
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
            Some(column) => cast(column, field.data_type()).map_err(RunError::from),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn arrow_schema(table: &DeltaTable, root: &str) -> Result<SchemaRef, DeltaError> {
    Ok(table
        .snapshot()
        .map_err(|e| DeltaError::delta("read schema", root, e))?
        .snapshot()
        .arrow_schema())
}

fn properties(app: &str, source_version: i64) -> CommitProperties {
    CommitProperties::default()
        .with_application_transaction(Transaction::new(app, source_version))
        .with_metadata([(
            crate::volume::WRITER_KEY.to_owned(),
            serde_json::Value::String("pipeline".to_owned()),
        )])
}

/// Writes batches in one commit marked with the pipeline's `txn`; returns the new version.
async fn write(
    table: DeltaTable,
    root: &str,
    batches: Vec<RecordBatch>,
    mode: SaveMode,
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
    let written = table
        .write(batches)
        .with_save_mode(mode)
        .with_commit_properties(props)
        .await
        .map_err(|e| DeltaError::delta("pipeline write", root, e))?;
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
    Ok(merged.version().map_or(0, version_i64))
}

/// The source scan: every active file of version `latest`, or only `files` (by their log
/// paths), with each row's file in [`FILE_COLUMN`].
async fn scan(
    ctx: &SessionContext,
    source: &DeltaTable,
    latest: i64,
    files: Option<Vec<String>>,
) -> Result<DataFrame, RunError> {
    source
        .update_datafusion_session(&ctx.state())
        .map_err(|e| RunError::Engine(e.to_string()))?;
    let mut builder = source
        .table_provider()
        .with_table_version(u64::try_from(latest).unwrap_or(0))
        .with_file_column(FILE_COLUMN);
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

/// The versions of each row's file, from the file column: files this run found in the log
/// have their version, others (older, active at `latest`) the `older` version.
fn row_versions(
    batch: &RecordBatch,
    files: &HashMap<String, (String, i64)>,
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
                .or_insert_with(|| files.get(&file_name(path)).map_or(older, |(_, v)| *v))
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
    // The lower mark: what one of the tables still lacks.
    let floor = if full_refresh {
        None
    } else {
        match (done, quarantined_up_to) {
            (Some(d), Some(q)) => Some(d.min(q)),
            _ => None,
        }
    };
    let files = new_files(&source, &roots.source, floor, latest).await?;
    let aggregate = spec.aggregate.is_some();
    let incremental = !full_refresh && !aggregate;
    let ctx = single_partition();
    let input = scan(
        &ctx,
        &source,
        latest,
        incremental.then(|| files.values().map(|(p, _)| p.clone()).collect()),
    )
    .await?;

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
    // Files not found in the log range are older than the floor: never new to either table.
    let older = floor.unwrap_or(-1);
    let mut split = Split::default();
    let mut stream = computed.execute_stream().await?;
    let keep: Vec<usize> = (0..outputs + spec.expectations.len()).collect();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let versions = row_versions(&batch, &files, older)?;
        let laid_out = batch.project(&keep)?;
        if let Err(failed) = split.add(&layout, &laid_out, &versions)? {
            return Err(RunError::Failed(failed.to_string()));
        }
    }

    let mut outcome = Outcome {
        source_from: Some(floor.map_or(0, |f| f + 1)),
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
        write(table, root, split.quarantine.clone(), mode, props()).await?;
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
        _ => {
            let mode = if full_refresh || aggregate {
                SaveMode::Overwrite
            } else {
                SaveMode::Append
            };
            write(target, &roots.target, target_rows, mode, props()).await?
        }
    };
    crate::faults::point("pipeline.target");
    outcome.target_version = Some(version);
    Ok(outcome)
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
            r#"{"remove":{"path":"old.parquet","dataChange":true}}"#,
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
    fn files_are_known_by_their_decoded_name() {
        assert_eq!(file_name("country=DE/b%20c.parquet"), "b c.parquet");
        assert_eq!(
            file_name("file:///lake/t/country=DE/b%20c.parquet"),
            "b c.parquet"
        );
        assert_eq!(file_name("plain.parquet"), "plain.parquet");
        assert_eq!(file_name("bad%zz.parquet"), "bad%zz.parquet");
    }
}
