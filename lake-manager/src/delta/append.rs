//! Appending record batches to a table in one commit: the write behind HTTP push and Kafka.
//!
//! deltalake's `write` operation plans every append through DataFusion (a logical and a
//! physical plan, a cast of each batch to the table schema, a streaming write), which the
//! README's ingest profile counts among what the plane spends beyond the bare Parquet loop.
//! Ingest batches were already decoded against the table's own schema, so most appends need
//! none of it: deltalake's `RecordBatchWriter` encodes them straight into Parquet (with the
//! same statistics) and the commit carries its `add` actions, through the same commit path
//! (conflict checks, application transactions, commit info).
//!
//! What only the planned write enforces keeps the planned write: CHECK constraints, column
//! invariants, generated and identity columns, column mapping, and any writer feature this
//! module does not know to be inert for an append. [`direct`] is that decision, kept pure.
//!
//! [`Staged`] lets a caller encode a commit's batches as they arrive (the group committer
//! does, while it waits for more requests and while the previous group commits), then commit
//! them later against the table as it is then. What was encoded is used only if the table's
//! schema and partitioning are still those it was encoded for; otherwise the batches, which
//! it keeps, are appended from scratch.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::errors::DeltaTableError;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

/// Writer features that change nothing in how an append's data files are written: the commit
/// path handles what they need of the commit itself. Anything else sends the append through
/// the planned write.
const INERT_WRITER_FEATURES: &[&str] = &[
    "appendOnly",
    "timestampNtz",
    "changeDataFeed",
    "deletionVectors",
    "vacuumProtocolCheck",
    "v2Checkpoint",
    "invariants",
    "checkConstraints",
];

/// What [`direct`] reads of a table.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The protocol's writer features, when it lists them (writer version 7).
    pub writer_features: Option<&'a [String]>,
    /// The schema as the log stores it (JSON), field metadata included.
    pub schema_string: &'a str,
    /// The table's configuration (`delta.*` properties).
    pub configuration: &'a std::collections::HashMap<String, String>,
}

/// Whether an append may skip the planned write: nothing in the table asks the writer to
/// check or compute a value, or to rename a column, and every writer feature it lists is
/// inert for an append. On a false answer the planned write runs, which enforces all of it.
pub fn direct(shape: Shape<'_>) -> bool {
    let features_inert = shape.writer_features.is_none_or(|features| {
        features
            .iter()
            .all(|f| INERT_WRITER_FEATURES.contains(&f.as_str()))
    });
    // Field metadata keys the planned write acts on; searching the stored JSON covers nested
    // fields too. A column whose *name* holds one of them only costs the fast path.
    let schema_plain = [
        "delta.invariants",
        "delta.generationExpression",
        "delta.identity.",
    ]
    .iter()
    .all(|key| !shape.schema_string.contains(key));
    let configuration_plain = !shape.configuration.iter().any(|(key, value)| {
        let constraint = key.starts_with("delta.constraints.");
        let mapped = key == "delta.columnMapping.mode" && !value.eq_ignore_ascii_case("none");
        constraint || mapped
    });
    features_inert && schema_plain && configuration_plain
}

/// The table facts that direct encoding depends on: what it was encoded for must still hold
/// at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    schema_string: String,
    partition_columns: Vec<String>,
}

/// The layout of `table` if an append to it may be encoded directly.
fn direct_layout(table: &DeltaTable) -> Result<Option<Layout>, DeltaTableError> {
    let state = table.snapshot()?;
    let writer_features: Option<Vec<String>> = state
        .protocol()
        .writer_features()
        .map(|features| features.iter().map(ToString::to_string).collect());
    let metadata = state.metadata();
    let shape = Shape {
        writer_features: writer_features.as_deref(),
        schema_string: metadata.schema_string(),
        configuration: metadata.configuration(),
    };
    Ok(direct(shape).then(|| Layout {
        schema_string: metadata.schema_string().clone(),
        partition_columns: metadata.partition_columns().to_vec(),
    }))
}

/// A commit's batches, kept, and encoded into Parquet as they come when the table allows it.
pub struct Staged {
    batches: Vec<RecordBatch>,
    /// The open files and the layout they were encoded for; `None` once encoding is not
    /// possible or failed (the commit then appends the batches from scratch).
    encoded: Option<(RecordBatchWriter, Layout)>,
}

impl Staged {
    /// Nothing staged. With a `template` (the table as last seen) whose appends may be encoded
    /// directly, batches are encoded as they are pushed; without, they are only kept.
    pub fn new(template: Option<&DeltaTable>) -> Self {
        let encoded = template.and_then(|table| {
            let layout = direct_layout(table).ok()??;
            let writer = RecordBatchWriter::for_table(table).ok()?;
            Some((writer, layout))
        });
        Self {
            batches: Vec::new(),
            encoded,
        }
    }

    /// Only keeps batches, for a commit that appends them from scratch.
    pub fn kept(batches: Vec<RecordBatch>) -> Self {
        Self {
            batches,
            encoded: None,
        }
    }

    /// Adds a batch, encoding it now if this stage encodes. A batch that cannot be encoded
    /// ends encoding for the stage (the writer is dropped, which aborts its uploads): the
    /// commit then appends every batch from scratch and reports that error where it belongs.
    pub async fn push(&mut self, batch: RecordBatch) {
        if let Some((writer, _)) = self.encoded.as_mut()
            && let Err(e) = writer.write(batch.clone()).await
        {
            tracing::debug!(error = %e, "encoding ahead stopped; the commit appends from scratch");
            self.encoded = None;
        }
        self.batches.push(batch);
    }

    /// Whether no batch was pushed.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Commits the staged batches to `table` with `properties`: the encoded files when the
    /// table's layout is still the one they were encoded for, the batches from scratch
    /// otherwise.
    pub async fn commit(
        self,
        table: DeltaTable,
        properties: CommitProperties,
    ) -> Result<DeltaTable, DeltaTableError> {
        let current = direct_layout(&table)?;
        let Staged { batches, encoded } = self;
        if let Some((writer, layout)) = encoded
            && current.as_ref() == Some(&layout)
        {
            let mut table = table;
            let mut writer = writer.with_commit_properties(properties);
            writer.flush_and_commit(&mut table).await?;
            return Ok(table);
        }
        // What was encoded for another layout was dropped above, which aborts its uploads;
        // files it closed stay unreferenced (vacuum removes them).
        append(table, batches, properties).await
    }
}

/// Appends `batches` to `table` in one commit with `properties`, and returns the table at the
/// new version. The batches carry the table's columns (by name); a failure leaves nothing
/// committed unless the commit itself reported an error after landing, which the caller
/// resolves by its application transaction as for any commit.
pub async fn append(
    table: DeltaTable,
    batches: Vec<RecordBatch>,
    properties: CommitProperties,
) -> Result<DeltaTable, DeltaTableError> {
    if direct_layout(&table)?.is_none() {
        return table
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .with_commit_properties(properties)
            .await;
    }
    let mut table = table;
    let mut writer = RecordBatchWriter::for_table(&table)?.with_commit_properties(properties);
    for batch in batches {
        writer.write(batch).await?;
    }
    writer.flush_and_commit(&mut table).await?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const PLAIN_SCHEMA: &str =
        r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#;

    fn shape<'a>(
        features: Option<&'a [String]>,
        schema: &'a str,
        config: &'a HashMap<String, String>,
    ) -> Shape<'a> {
        Shape {
            writer_features: features,
            schema_string: schema,
            configuration: config,
        }
    }

    fn features(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_plain_table_appends_directly() {
        let none = HashMap::new();
        assert!(direct(shape(None, PLAIN_SCHEMA, &none)));
        let inert = features(&["appendOnly", "timestampNtz"]);
        assert!(direct(shape(Some(&inert), PLAIN_SCHEMA, &none)));
        let config = HashMap::from([("delta.columnMapping.mode".to_owned(), "none".to_owned())]);
        assert!(direct(shape(None, PLAIN_SCHEMA, &config)));
    }

    #[test]
    fn what_the_planned_write_enforces_keeps_it() {
        let none = HashMap::new();
        let constraint = HashMap::from([("delta.constraints.positive".to_owned(), "id > 0".to_owned())]);
        assert!(!direct(shape(None, PLAIN_SCHEMA, &constraint)));
        let mapped = HashMap::from([("delta.columnMapping.mode".to_owned(), "name".to_owned())]);
        assert!(!direct(shape(None, PLAIN_SCHEMA, &mapped)));
        for key in [
            "delta.invariants",
            "delta.generationExpression",
            "delta.identity.start",
        ] {
            let schema = format!(
                r#"{{"type":"struct","fields":[{{"name":"s","type":{{"type":"struct","fields":[{{"name":"id","type":"long","nullable":true,"metadata":{{"{key}":"x"}}}}]}},"nullable":true,"metadata":{{}}}}]}}"#
            );
            assert!(!direct(shape(None, &schema, &none)), "{key} in a nested field");
        }
        for feature in [
            "generatedColumns",
            "identityColumns",
            "columnMapping",
            "rowTracking",
            "someFutureFeature",
        ] {
            let listed = features(&["appendOnly", feature]);
            assert!(!direct(shape(Some(&listed), PLAIN_SCHEMA, &none)), "{feature}");
        }
    }
}
