//! Partition-scoped recomputation of a gold aggregate: which of the target's partitions the
//! run's new source rows touch, the recomputed groups of only those partitions, and the
//! predicate that replaces exactly them (Delta's `replaceWhere`). Pure: batches in, batches and
//! an expression out.
//!
//! A group's value depends on every source row of its group, so a touched partition is
//! recomputed from the whole source (the run reads it anyway); what is saved is the rewrite of
//! every other partition, and with it the target's file churn.

use deltalake::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::row::{OwnedRow, RowConverter, SortField};
use deltalake::datafusion::prelude::{Expr, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use std::collections::BTreeMap;

use super::run::RunError;

/// Most partitions one run replaces by predicate; past it, the run replaces the whole target
/// (a predicate of thousands of terms costs more to evaluate than the rewrite saves).
pub const MAX_TOUCHED: usize = 1_000;

/// The target's partitions that new rows fall in.
#[derive(Debug)]
pub struct Touched {
    /// The partition columns, in the target's order, with the target's types.
    columns: Vec<(String, deltalake::arrow::datatypes::DataType)>,
    converter: RowConverter,
    /// Each touched partition's key, with its values.
    keys: BTreeMap<OwnedRow, Vec<ScalarValue>>,
}

impl Touched {
    /// The partitions that `rows` newer than `done` fall in, by the target's partition columns
    /// `partitions` (typed as in `target`). `None` when the target cannot be replaced partition
    /// by partition: it is not partitioned, a partition column is not one the aggregate groups
    /// by (a group would then span partitions), or too many partitions are touched.
    pub fn find<'a>(
        partitions: &[String],
        group_by: &[String],
        target: &SchemaRef,
        rows: impl IntoIterator<Item = (&'a RecordBatch, &'a [i64])>,
        done: Option<i64>,
    ) -> Result<Option<Self>, RunError> {
        if partitions.is_empty() || !partitions.iter().all(|p| group_by.contains(p)) {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(partitions.len());
        for name in partitions {
            let field = target
                .field_with_name(name)
                .map_err(|_| RunError::Failed(format!("the target has no partition column {name}")))?;
            columns.push((name.clone(), field.data_type().clone()));
        }
        let converter = RowConverter::new(columns.iter().map(|(_, t)| SortField::new(t.clone())).collect())?;
        let mut touched = Self {
            columns,
            converter,
            keys: BTreeMap::new(),
        };
        for (batch, versions) in rows {
            let new: BooleanArray = versions
                .iter()
                .map(|v| Some(done.is_none_or(|d| *v > d)))
                .collect();
            let new_rows = filter_record_batch(batch, &new)?;
            if new_rows.num_rows() == 0 {
                continue;
            }
            let arrays = touched.arrays(&new_rows)?;
            let keyed = touched.converter.convert_columns(&arrays)?;
            for (i, key) in keyed.iter().enumerate() {
                if touched.keys.contains_key(&key.owned()) {
                    continue;
                }
                let values = arrays
                    .iter()
                    .map(|a| ScalarValue::try_from_array(a, i))
                    .collect::<Result<Vec<_>, _>>()?;
                touched.keys.insert(key.owned(), values);
                if touched.keys.len() > MAX_TOUCHED {
                    return Ok(None);
                }
            }
        }
        Ok(Some(touched))
    }

    /// How many partitions are touched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no partition is touched (nothing new reached the target).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The partition columns of `batch`, cast to the target's types.
    fn arrays(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, RunError> {
        self.columns
            .iter()
            .map(|(name, data_type)| {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| RunError::Failed(format!("the output has no partition column {name}")))?;
                Ok(cast(column, data_type)?)
            })
            .collect()
    }

    /// The rows of `batches` (the recomputed groups, in the target's schema) that fall in a
    /// touched partition.
    pub fn keep(&self, batches: &[RecordBatch]) -> Result<Vec<RecordBatch>, RunError> {
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let arrays = self.arrays(batch)?;
            let keyed = self.converter.convert_columns(&arrays)?;
            let mask: BooleanArray = keyed
                .iter()
                .map(|key| Some(self.keys.contains_key(&key.owned())))
                .collect();
            let kept = filter_record_batch(batch, &mask)?;
            if kept.num_rows() > 0 {
                out.push(kept);
            }
        }
        Ok(out)
    }

    /// The predicate naming exactly the touched partitions (a null value as `IS NULL`), or
    /// `None` when none is touched.
    pub fn predicate(&self) -> Option<Expr> {
        let equal = |name: &str, value: &ScalarValue| {
            // Quoted: partition columns may have upper-case letters.
            let column = col(format!("\"{name}\""));
            if value.is_null() {
                column.is_null()
            } else {
                column.eq(lit(value.clone()))
            }
        };
        self.keys
            .values()
            .map(|values| {
                self.columns
                    .iter()
                    .zip(values)
                    .map(|((name, _), value)| equal(name, value))
                    .reduce(Expr::and)
            })
            .reduce(|a, b| match (a, b) {
                (Some(a), Some(b)) => Some(a.or(b)),
                (a, b) => a.or(b),
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use deltalake::arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use deltalake::arrow::datatypes::Schema;
    use deltalake::arrow::datatypes::{DataType, Field};

    fn target() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("country", DataType::Utf8, true),
            Field::new("day", DataType::Int64, true),
            Field::new("total", DataType::Float64, true),
        ]))
    }

    fn rows(countries: &[Option<&str>], days: &[i64]) -> RecordBatch {
        RecordBatch::try_new(
            target(),
            vec![
                Arc::new(StringArray::from(countries.to_vec())),
                Arc::new(Int64Array::from(days.to_vec())),
                Arc::new(Float64Array::from(vec![1.0; days.len()])),
            ],
        )
        .expect("batch")
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn only_partitions_with_new_rows_are_touched_and_kept() {
        let input = rows(&[Some("de"), Some("fr"), None, Some("de")], &[1, 1, 2, 3]);
        // The first row is old (version 4 at a mark of 5); the others are new.
        let versions = [4, 6, 7, 6];
        let touched = Touched::find(
            &names(&["country"]),
            &names(&["country", "day"]),
            &target(),
            [(&input, &versions[..])],
            Some(5),
        )
        .expect("find")
        .expect("scoped");
        assert_eq!(touched.len(), 3, "de, fr and null");
        let groups = rows(&[Some("de"), Some("it"), None, Some("fr")], &[1, 1, 1, 1]);
        let kept = touched.keep(std::slice::from_ref(&groups)).expect("keep");
        let kept_countries: Vec<Option<&str>> = kept[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings")
            .iter()
            .collect();
        assert_eq!(
            kept_countries,
            [Some("de"), None, Some("fr")],
            "it was not touched"
        );
        let predicate = touched.predicate().expect("a predicate").to_string();
        for part in [
            "country = Utf8(\"de\")",
            "country = Utf8(\"fr\")",
            "country IS NULL",
        ] {
            assert!(predicate.contains(part), "{predicate}");
        }
        assert!(!predicate.contains("it"), "{predicate}");
    }

    #[test]
    fn the_whole_target_is_replaced_when_partitions_cannot_scope_the_run() {
        let input = rows(&[Some("de")], &[1]);
        let one = [(&input, &[9][..])];
        let find = |partitions: &[&str], group_by: &[&str]| {
            Touched::find(&names(partitions), &names(group_by), &target(), one, Some(5))
                .expect("find")
                .map(|t| t.len())
        };
        assert_eq!(find(&[], &["country"]), None, "not partitioned");
        assert_eq!(
            find(&["day"], &["country"]),
            None,
            "a partition column the groups span"
        );
        assert_eq!(find(&["country", "day"], &["country", "day"]), Some(1));
        let many: Vec<i64> = (0..=MAX_TOUCHED as i64).collect();
        let wide = rows(&vec![Some("de"); many.len()], &many);
        let versions = vec![9; many.len()];
        assert!(
            Touched::find(
                &names(&["day"]),
                &names(&["day"]),
                &target(),
                [(&wide, &versions[..])],
                Some(5)
            )
            .expect("find")
            .is_none(),
            "too many partitions for a predicate"
        );
    }

    #[test]
    fn no_new_rows_touch_nothing_and_need_no_predicate() {
        let input = rows(&[Some("de")], &[1]);
        let touched = Touched::find(
            &names(&["country"]),
            &names(&["country"]),
            &target(),
            [(&input, &[3][..])],
            Some(5),
        )
        .expect("find")
        .expect("scoped");
        assert!(touched.is_empty());
        assert!(touched.predicate().is_none());
    }
}
