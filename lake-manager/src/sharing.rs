//! Delta Sharing reads: a table's snapshot at its latest version, a version or a point in
//! time, in the shape the protocol's `protocol`, `metaData` and `file` lines need.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::delta::tables::{open, table_url, version_i64};
use crate::delta::{DeltaError, DeltaSettings};

/// Reader features a client of the parquet response format can honour: the files alone, read
/// as Parquet, give the table's rows.
const PARQUET_SAFE_READER_FEATURES: [&str; 2] = ["timestampNtz", "vacuumProtocolCheck"];

/// Which snapshot to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The latest version.
    Latest,
    /// Exactly this version.
    Version(i64),
    /// The latest version committed at or before this time.
    Timestamp(DateTime<Utc>),
}

/// The table's Delta metadata, as shared.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedMetadata {
    /// The Delta table id.
    pub id: String,
    /// The Delta table name, if set.
    pub name: Option<String>,
    /// The description, if set.
    pub description: Option<String>,
    /// The schema as Delta's JSON string.
    pub schema_string: String,
    /// Partition columns.
    pub partition_columns: Vec<String>,
    /// Table properties.
    pub configuration: HashMap<String, String>,
    /// When the table was created (milliseconds), if recorded.
    pub created_time: Option<i64>,
}

/// One live data file.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFile {
    /// Path relative to the table root, percent-decoded.
    pub path: String,
    /// Size in bytes.
    pub size: i64,
    /// Partition values as the log stores them.
    pub partition_values: HashMap<String, Option<String>>,
    /// The add action's statistics JSON, if any.
    pub stats: Option<String>,
    /// Modification time, milliseconds since the epoch.
    pub modification_time: i64,
}

/// A snapshot ready to be shared.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSnapshot {
    /// The version read.
    pub version: i64,
    /// The metadata.
    pub metadata: SharedMetadata,
    /// Live files (empty when not asked for).
    pub files: Vec<SharedFile>,
    /// Total bytes of the live files.
    pub size: i64,
    /// Number of live files.
    pub num_files: i64,
}

/// Reads the snapshot of the table at `root` that `at` names; `with_files` lists its files.
/// Versions and times outside the table's history, and tables whose files alone cannot give
/// their rows (deletion vectors, column mapping), are refused with the reason.
pub async fn snapshot(
    settings: &DeltaSettings,
    root: &str,
    at: At,
    with_files: bool,
) -> Result<SharedSnapshot, DeltaError> {
    let mut table = open(settings, root).await?;
    let latest = table.version().map_or(0, version_i64);
    match at {
        At::Latest => {}
        At::Version(v) if v < 0 || v > latest => {
            return Err(DeltaError::Refused(format!(
                "version {v} does not exist; the table's versions are 0 to {latest}"
            )));
        }
        At::Version(v) => {
            if v != latest {
                let version = u64::try_from(v).unwrap_or_default();
                table
                    .load_version(version)
                    .await
                    .map_err(|e| refused_or("load version", root, e))?;
            }
        }
        At::Timestamp(time) => {
            table
                .load_with_datetime(time)
                .await
                .map_err(|e| refused_or("load version at time", root, e))?;
            // deltalake answers a time before the first commit with the first version.
            let first = table
                .snapshot()
                .ok()
                .and_then(|s| s.version_timestamp(s.version()))
                .and_then(DateTime::<Utc>::from_timestamp_millis);
            if first.is_some_and(|t| t > time) && table.version() == Some(0) {
                return Err(DeltaError::Refused(format!(
                    "{} is before the table's first commit",
                    time.to_rfc3339()
                )));
            }
        }
    }
    let state = table
        .snapshot()
        .map_err(|e| DeltaError::delta("read snapshot", root, e))?;
    let protocol = state.protocol();
    if let Some(features) = protocol.reader_features() {
        let unsafe_features: Vec<String> = features
            .iter()
            .map(ToString::to_string)
            .filter(|f| !PARQUET_SAFE_READER_FEATURES.contains(&f.as_str()))
            .collect();
        if !unsafe_features.is_empty() {
            return Err(DeltaError::Refused(format!(
                "the table needs reader features {} that the parquet response format cannot express",
                unsafe_features.join(", ")
            )));
        }
    } else if protocol.min_reader_version() > 1 {
        return Err(DeltaError::Refused(format!(
            "the table needs Delta reader version {} (column mapping), which the parquet response format cannot express",
            protocol.min_reader_version()
        )));
    }
    let meta = state.metadata();
    let metadata = SharedMetadata {
        id: meta.id().to_owned(),
        name: meta.name().map(str::to_owned),
        description: meta.description().map(str::to_owned),
        schema_string: meta.schema_string().clone(),
        partition_columns: meta.partition_columns().to_vec(),
        configuration: meta.configuration().clone(),
        created_time: meta.created_time(),
    };
    let root_url = table_url(root)?.to_string();
    let mut files = Vec::new();
    let mut size = 0;
    let mut num_files = 0;
    for file in state.log_data().iter() {
        size += file.size();
        num_files += 1;
        if !with_files {
            continue;
        }
        if file.deletion_vector_descriptor().is_some() {
            return Err(DeltaError::Refused(
                "the table has deletion vectors, which the parquet response format cannot express".to_owned(),
            ));
        }
        let path = file.path().into_owned();
        let Some(path) = crate::delta::contained::inside_table(&path, &root_url) else {
            return Err(DeltaError::Refused(format!(
                "the table references a file outside its root ({path})"
            )));
        };
        files.push(SharedFile {
            path,
            size: file.size(),
            partition_values: file.partition_values_map(),
            stats: file.stats(),
            modification_time: file.modification_time(),
        });
    }
    Ok(SharedSnapshot {
        version: version_i64(state.version()),
        metadata,
        files,
        size,
        num_files,
    })
}

/// The version a `startingTimestamp` names (the first commit at or after it), or the latest.
pub async fn version_at(
    settings: &DeltaSettings,
    root: &str,
    starting: Option<DateTime<Utc>>,
) -> Result<i64, DeltaError> {
    let mut table = open(settings, root).await?;
    let latest = table.version().map_or(0, version_i64);
    let Some(starting) = starting else {
        return Ok(latest);
    };
    // `load_with_datetime` gives the last commit at or before the time; the protocol wants the
    // first at or after it, which is the next one unless a commit lands exactly on the time.
    table
        .load_with_datetime(starting)
        .await
        .map_err(|e| refused_or("load version at time", root, e))?;
    let at_or_before = table.version().map_or(0, version_i64);
    let committed = table
        .snapshot()
        .ok()
        .and_then(|s| s.version_timestamp(s.version()))
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    if committed.is_some_and(|t| t >= starting) {
        return Ok(at_or_before);
    }
    if at_or_before >= latest {
        return Err(DeltaError::Refused(format!(
            "no version was committed at or after {}",
            starting.to_rfc3339()
        )));
    }
    Ok(at_or_before + 1)
}

/// Time travel outside the history is the caller's mistake; anything else is ours.
fn refused_or(operation: &'static str, root: &str, error: deltalake::DeltaTableError) -> DeltaError {
    match error {
        deltalake::DeltaTableError::InvalidVersion(v) => {
            DeltaError::Refused(format!("version {v} is not in the table's history"))
        }
        other => DeltaError::delta(operation, root, other),
    }
}
