//! What a run does to rows once DataFusion has computed them, in pure Arrow: which rows go to
//! the target, the quarantine table or nowhere, by the expectations' results; the counts per
//! expectation; and deduplication on keys. No I/O here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, BooleanArray, BooleanBuilder, StringBuilder};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::arrow::row::{RowConverter, SortField};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use tenancy::pipeline::{Expectation, Keep, OnViolation, VIOLATIONS_COLUMN};

/// Rows shown in a `fail` expectation's reason.
pub const FAILING_ROWS_SHOWN: usize = 5;

/// A `fail` expectation was violated: nothing of the run is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The expectation.
    pub expectation: String,
    /// The first violating rows, rendered `column=value, ...`.
    pub rows: Vec<String>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "expectation {} (on_violation: fail) was violated; first violating rows: {}",
            self.expectation,
            self.rows.join(" | ")
        )
    }
}

/// The rows of one run, split by outcome, with the counts.
#[derive(Debug, Default)]
pub struct Split {
    /// Rows for the target (output columns only).
    pub target: Vec<RecordBatch>,
    /// Rows for the quarantine table (output columns and `_violations`).
    pub quarantine: Vec<RecordBatch>,
    /// The source version of each target row's file, batch by batch (for deduplication by
    /// arrival).
    pub target_versions: Vec<Vec<i64>>,
    /// Rows counted in (those the run answers for).
    pub rows_in: u64,
    /// Rows left out by `drop`.
    pub dropped: u64,
    /// Rows quarantined.
    pub quarantined: u64,
    /// Violations per expectation.
    pub violations: BTreeMap<String, u64>,
}

/// How one computed batch is laid out (the output columns first, then one boolean column per
/// expectation, true where the row meets it), and which rows the run answers for.
pub struct Layout<'a> {
    /// Output columns (the leading ones).
    pub outputs: usize,
    /// The expectations, in the order of their columns.
    pub expectations: &'a [Expectation],
    /// Rows from files of versions above this are the run's own: counted, and checked by
    /// `fail` expectations (`None`: every row).
    pub counted_after: Option<i64>,
    /// Rows from files of versions above this go to the target (`None`: every row, as an
    /// aggregate recomputes from all of them).
    pub target_after: Option<i64>,
    /// Rows from files of versions above this go to the quarantine table.
    pub quarantine_after: Option<i64>,
}

fn row_text(batch: &RecordBatch, outputs: usize, row: usize) -> String {
    let options = FormatOptions::default().with_null("null");
    (0..outputs)
        .map(|c| {
            let name = batch.schema().field(c).name().clone();
            let value = ArrayFormatter::try_new(batch.column(c).as_ref(), &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_else(|_| "?".to_owned());
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn after(version: i64, floor: Option<i64>) -> bool {
    floor.is_none_or(|f| version > f)
}

fn boolean(batch: &RecordBatch, column: usize) -> Result<&BooleanArray, ArrowError> {
    batch
        .column(column)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column {column} is not boolean")))
}

impl Split {
    /// Adds one computed batch, laid out as [`Layout`] says, with the source version of each
    /// row's file. A `fail` violation among the counted rows stops the run.
    pub fn add(
        &mut self,
        layout: &Layout<'_>,
        batch: &RecordBatch,
        versions: &[i64],
    ) -> Result<Result<(), Failed>, ArrowError> {
        let rows = batch.num_rows();
        if versions.len() != rows {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{} versions for {rows} rows",
                versions.len()
            )));
        }
        let met: Vec<&BooleanArray> = (0..layout.expectations.len())
            .map(|i| boolean(batch, layout.outputs + i))
            .collect::<Result<_, _>>()?;
        let mut to_target = BooleanBuilder::with_capacity(rows);
        let mut to_quarantine = BooleanBuilder::with_capacity(rows);
        let mut violated_names = StringBuilder::new();
        let mut kept_versions = Vec::new();
        let mut failing: Option<Failed> = None;
        for (row, &version) in versions.iter().enumerate() {
            let counted = after(version, layout.counted_after);
            let mut dropped = false;
            let mut quarantined = false;
            let mut names: Vec<&str> = Vec::new();
            for (i, expectation) in layout.expectations.iter().enumerate() {
                // NULL is a violation: `expr IS TRUE` computed it, so nulls are false already.
                if met[i].is_valid(row) && met[i].value(row) {
                    continue;
                }
                names.push(&expectation.name);
                if counted {
                    *self.violations.entry(expectation.name.clone()).or_default() += 1;
                }
                match expectation.on_violation {
                    OnViolation::Warn => {}
                    OnViolation::Drop => dropped = true,
                    OnViolation::Quarantine => quarantined = true,
                    OnViolation::Fail if counted => {
                        let failed = failing.get_or_insert_with(|| Failed {
                            expectation: expectation.name.clone(),
                            rows: Vec::new(),
                        });
                        if failed.expectation == expectation.name && failed.rows.len() < FAILING_ROWS_SHOWN {
                            failed.rows.push(row_text(batch, layout.outputs, row));
                        }
                    }
                    OnViolation::Fail => {}
                }
            }
            if counted {
                self.rows_in += 1;
                if dropped {
                    self.dropped += 1;
                } else if quarantined {
                    self.quarantined += 1;
                }
            }
            let target = after(version, layout.target_after) && !dropped && !quarantined;
            let quarantine = !dropped && quarantined && after(version, layout.quarantine_after);
            to_target.append_value(target);
            to_quarantine.append_value(quarantine);
            if quarantine {
                violated_names.append_value(names.join(","));
            } else {
                violated_names.append_null();
            }
            if target {
                kept_versions.push(version);
            }
        }
        if let Some(failed) = failing {
            return Ok(Err(failed));
        }
        let outputs = batch.project(&(0..layout.outputs).collect::<Vec<_>>())?;
        let target = filter_record_batch(&outputs, &to_target.finish())?;
        if target.num_rows() > 0 {
            self.target.push(target);
            self.target_versions.push(kept_versions);
        }
        let quarantine_mask = to_quarantine.finish();
        if quarantine_mask.true_count() > 0 {
            let names: ArrayRef = Arc::new(violated_names.finish());
            let mut fields: Vec<Field> = outputs
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(Field::new(VIOLATIONS_COLUMN, DataType::Utf8, true));
            let mut columns = outputs.columns().to_vec();
            columns.push(names);
            let with_names = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
            self.quarantine
                .push(filter_record_batch(&with_names, &quarantine_mask)?);
        }
        Ok(Ok(()))
    }
}

/// Where a row stands among its key's duplicates: its order value (row-encoded), then its
/// source version, then its position in the run. Larger is later.
type Rank = (Option<Vec<u8>>, i64, usize);

/// Keeps one row per key: the first or the latest by `order` (a column index; a null orders
/// first), then by source version, then by position. Rows keep their relative order. A row
/// with a null key is kept whatever: NULL equals nothing, as in the table-scope MERGE.
pub fn dedup(
    batches: &[RecordBatch],
    versions: &[Vec<i64>],
    keys: &[usize],
    order: Option<usize>,
    keep: Keep,
) -> Result<Vec<RecordBatch>, ArrowError> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema: SchemaRef = first.schema();
    let key_fields: Vec<SortField> = keys
        .iter()
        .map(|k| SortField::new(schema.field(*k).data_type().clone()))
        .collect();
    let key_converter = RowConverter::new(key_fields)?;
    let order_converter = order
        .map(|o| RowConverter::new(vec![SortField::new(schema.field(o).data_type().clone())]))
        .transpose()?;
    // key bytes -> (rank, batch, row)
    let mut chosen: HashMap<Vec<u8>, (Rank, usize, usize)> = HashMap::new();
    let mut keep_rows: Vec<Vec<bool>> = batches.iter().map(|b| vec![false; b.num_rows()]).collect();
    let mut position = 0usize;
    for (b, batch) in batches.iter().enumerate() {
        let key_columns: Vec<ArrayRef> = keys.iter().map(|k| batch.column(*k).clone()).collect();
        let key_rows = key_converter.convert_columns(&key_columns)?;
        let order_rows = match (&order_converter, order) {
            (Some(converter), Some(o)) => Some(converter.convert_columns(&[batch.column(o).clone()])?),
            _ => None,
        };
        for row in 0..batch.num_rows() {
            if key_columns.iter().any(|c| c.is_null(row)) {
                if let Some(slot) = keep_rows.get_mut(b).and_then(|rows| rows.get_mut(row)) {
                    *slot = true;
                }
                position += 1;
                continue;
            }
            let rank: Rank = (
                order_rows.as_ref().map(|r| r.row(row).as_ref().to_vec()),
                versions.get(b).and_then(|v| v.get(row)).copied().unwrap_or(0),
                position,
            );
            position += 1;
            let key = key_rows.row(row).as_ref().to_vec();
            match chosen.get(&key) {
                Some((held, _, _))
                    if match keep {
                        Keep::First => rank >= *held,
                        Keep::Latest => rank <= *held,
                    } => {}
                _ => {
                    chosen.insert(key, (rank, b, row));
                }
            }
        }
    }
    for (_, b, row) in chosen.values() {
        if let Some(slot) = keep_rows.get_mut(*b).and_then(|rows| rows.get_mut(*row)) {
            *slot = true;
        }
    }
    batches
        .iter()
        .zip(keep_rows)
        .map(|(batch, mask)| filter_record_batch(batch, &BooleanArray::from(mask)))
        .filter(|b| b.as_ref().map_or(true, |b| b.num_rows() > 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Int64Array, StringArray};

    use super::*;

    fn expectation(name: &str, on_violation: OnViolation) -> Expectation {
        Expectation {
            name: name.into(),
            expr: "unused".into(),
            on_violation,
        }
    }

    /// id, name; then one boolean per expectation.
    fn computed(ids: &[i64], met: &[&[Option<bool>]]) -> RecordBatch {
        let mut fields = vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ];
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names)),
        ];
        for (i, column) in met.iter().enumerate() {
            fields.push(Field::new(format!("__e{i}"), DataType::Boolean, true));
            columns.push(Arc::new(BooleanArray::from(column.to_vec())));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch")
    }

    fn ids(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("ids")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn rows_split_by_the_strongest_violation_and_every_violation_is_counted() {
        let expectations = [
            expectation("w", OnViolation::Warn),
            expectation("d", OnViolation::Drop),
            expectation("q", OnViolation::Quarantine),
        ];
        let layout = Layout {
            outputs: 2,
            expectations: &expectations,
            counted_after: None,
            target_after: None,
            quarantine_after: None,
        };
        let t = Some(true);
        let f = Some(false);
        let batch = computed(
            &[1, 2, 3, 4, 5, 6],
            &[
                &[t, f, t, t, f, None],
                &[t, t, f, t, f, t],
                &[t, t, t, f, f, None],
            ],
        );
        let mut split = Split::default();
        assert_eq!(split.add(&layout, &batch, &[1; 6]).expect("arrow"), Ok(()));
        assert_eq!(ids(&split.target), [1, 2], "a warning keeps the row");
        assert_eq!(
            ids(&split.quarantine),
            [4, 6],
            "drop wins over quarantine (row 5)"
        );
        assert_eq!((split.rows_in, split.dropped, split.quarantined), (6, 2, 2));
        assert_eq!(
            split.violations,
            BTreeMap::from([("w".into(), 3), ("d".into(), 2), ("q".into(), 3)]),
            "null is a violation; a row failing two counts in both"
        );
        let names = split.quarantine[0]
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("names");
        assert_eq!(names.value(0), "q");
        assert_eq!(names.value(1), "w,q");
        assert_eq!(split.quarantine[0].schema().field(2).name(), VIOLATIONS_COLUMN);
    }

    #[test]
    fn rows_at_or_below_the_floors_are_not_written_again() {
        let expectations = [expectation("q", OnViolation::Quarantine)];
        // The quarantine table already holds version 2's rows (a crash between the commits).
        let layout = Layout {
            outputs: 2,
            expectations: &expectations,
            counted_after: Some(1),
            target_after: Some(1),
            quarantine_after: Some(2),
        };
        let batch = computed(
            &[1, 2, 3, 4],
            &[&[Some(false), Some(true), Some(false), Some(true)]],
        );
        let mut split = Split::default();
        assert_eq!(split.add(&layout, &batch, &[1, 2, 2, 3]).expect("arrow"), Ok(()));
        assert_eq!(ids(&split.target), [2, 4]);
        assert_eq!(
            ids(&split.quarantine),
            Vec::<i64>::new(),
            "row 3 is there already"
        );
        assert_eq!(split.rows_in, 3);
        assert_eq!(split.target_versions, [vec![2, 3]]);
    }

    #[test]
    fn an_aggregate_keeps_every_row_and_counts_only_the_new() {
        let expectations = [expectation("d", OnViolation::Drop)];
        let layout = Layout {
            outputs: 2,
            expectations: &expectations,
            counted_after: Some(2),
            target_after: None,
            quarantine_after: None,
        };
        let batch = computed(&[1, 2, 3], &[&[Some(true), Some(false), Some(true)]]);
        let mut split = Split::default();
        assert_eq!(split.add(&layout, &batch, &[1, 2, 3]).expect("arrow"), Ok(()));
        assert_eq!(
            ids(&split.target),
            [1, 3],
            "old rows stay in the aggregate's input"
        );
        assert_eq!(split.rows_in, 1, "only version 3 is new");
        assert!(
            split.violations.is_empty(),
            "the old drop was counted by its own run"
        );
    }

    #[test]
    fn a_fail_violation_names_its_first_rows() {
        let expectations = [expectation("must", OnViolation::Fail)];
        let layout = Layout {
            outputs: 2,
            expectations: &expectations,
            counted_after: None,
            target_after: None,
            quarantine_after: None,
        };
        let batch = computed(&[7, 8, 9], &[&[Some(true), Some(false), None]]);
        let mut split = Split::default();
        let failed = split
            .add(&layout, &batch, &[1, 1, 1])
            .expect("arrow")
            .expect_err("fails");
        assert_eq!(failed.expectation, "must");
        assert_eq!(failed.rows, ["id=8, name=n8", "id=9, name=n9"]);
        assert!(failed.to_string().contains("id=8"));
        assert!(split.target.is_empty(), "nothing kept");
    }

    fn keyed(keys: &[&str], orders: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Utf8, true),
            Field::new("ord", DataType::Int64, true),
            Field::new("pos", DataType::Int64, false),
        ]));
        let positions: Vec<i64> = (0..keys.len() as i64).collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(orders.to_vec())),
                Arc::new(Int64Array::from(positions)),
            ],
        )
        .expect("batch")
    }

    fn column(batches: &[RecordBatch], c: usize) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(c)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("ints")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn dedup_keeps_first_or_latest_by_order_then_version_then_position() {
        let batches = [
            keyed(&["a", "b", "a"], &[Some(5), Some(1), Some(7)]),
            keyed(&["a", "b", "c"], &[Some(5), Some(1), None]),
        ];
        let versions = [vec![1, 1, 1], vec![2, 2, 2]];
        let latest = dedup(&batches, &versions, &[0], Some(1), Keep::Latest).expect("dedup");
        // a: order 7 wins; b: tie on order, version 2 wins; c alone.
        assert_eq!(column(&latest, 1), [7, 1, 0]);
        assert_eq!(column(&latest, 2), [2, 1, 2]);
        let first = dedup(&batches, &versions, &[0], Some(1), Keep::First).expect("dedup");
        // a: order 5 at version 1 first; b: version 1.
        assert_eq!(column(&first, 2), [0, 1, 2]);
        let arrival = dedup(&batches, &versions, &[0], None, Keep::Latest).expect("dedup");
        assert_eq!(column(&arrival, 2), [0, 1, 2], "the later batch's rows win");
        assert_eq!(arrival.len(), 1, "the first batch is left empty and dropped");
    }

    #[test]
    fn rows_with_a_null_key_are_all_kept() {
        let batches = [keyed(&["x", "x", "y", "y"], &[None, None, Some(1), Some(1)])];
        let versions = [vec![1, 1, 1, 1]];
        let kept = dedup(&batches, &versions, &[0, 1], None, Keep::First).expect("dedup");
        assert_eq!(column(&kept, 2), [0, 1, 2], "both null-keyed rows stay, y once");
    }
}
