//! Decoding with the type check, in one parse, for tables whose columns are all plain
//! (strings, booleans, integers, doubles): each event is read by the single-scan reader
//! (`flat_scan`), or, when it declines, checked by the strict validator; either hands over the
//! values it read, and those go straight into Arrow builders. Other
//! tables (timestamps, decimals, dates, binary, nested columns) are decoded by arrow-json after
//! the check, whose parsing of those types this does not repeat.
//!
//! The result is the same batch arrow-json produces from the same accepted events; the
//! property test below holds the two to that.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    LargeStringBuilder, RecordBatch, StringBuilder,
};
use deltalake::arrow::datatypes::{DataType, SchemaRef};

use super::flat_scan;
use super::validate::{Cell, Cells, check_into};

/// Whether every column of `schema` is a type this path decodes, for events of `bytes` in all.
/// A `Utf8` column holds at most 2 GiB (32-bit offsets): larger requests (possible only with
/// `ingest.max_body_bytes` raised that far) take the other path, which reports that as an error
/// rather than overflowing.
pub fn supports(schema: &SchemaRef, bytes: usize) -> bool {
    bytes <= i32::MAX as usize
        && schema.fields().iter().all(|f| {
            matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Boolean
                    | DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
                    | DataType::Float64
            )
        })
}

enum Builder {
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Boolean(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
}

impl Builder {
    fn new(data_type: &DataType, rows: usize, text_bytes: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, text_bytes)),
            DataType::LargeUtf8 => Builder::LargeUtf8(LargeStringBuilder::with_capacity(rows, text_bytes)),
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Int8 => Builder::Int8(Int8Builder::with_capacity(rows)),
            DataType::Int16 => Builder::Int16(Int16Builder::with_capacity(rows)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            _ => return None,
        })
    }

    /// Appends a value the validator passed for this column's type. Any other pairing is a bug
    /// in the validator, reported rather than written.
    fn append(&mut self, cell: &Cell<'_>) -> Result<(), String> {
        fn int<T: TryFrom<i64> + TryFrom<u64>>(cell: &Cell<'_>) -> Result<T, String> {
            match cell {
                Cell::Int(v) => T::try_from(*v).ok(),
                Cell::UInt(v) => T::try_from(*v).ok(),
                _ => None,
            }
            .ok_or_else(|| mismatch(cell))
        }
        fn mismatch(cell: &Cell<'_>) -> String {
            format!("the type check passed {cell:?}, which the column cannot hold")
        }
        if matches!(cell, Cell::Absent | Cell::Null) {
            match self {
                Builder::Utf8(b) => b.append_null(),
                Builder::LargeUtf8(b) => b.append_null(),
                Builder::Boolean(b) => b.append_null(),
                Builder::Int8(b) => b.append_null(),
                Builder::Int16(b) => b.append_null(),
                Builder::Int32(b) => b.append_null(),
                Builder::Int64(b) => b.append_null(),
                Builder::Float64(b) => b.append_null(),
            }
            return Ok(());
        }
        match (self, cell) {
            (Builder::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Builder::LargeUtf8(b), Cell::Str(s)) => b.append_value(s),
            (Builder::Boolean(b), Cell::Bool(v)) => b.append_value(*v),
            (Builder::Int8(b), cell) => b.append_value(int(cell)?),
            (Builder::Int16(b), cell) => b.append_value(int(cell)?),
            (Builder::Int32(b), cell) => b.append_value(int(cell)?),
            (Builder::Int64(b), cell) => b.append_value(int(cell)?),
            // Parsed from the number's text with correct rounding, as arrow-json does.
            (Builder::Float64(b), Cell::Float(v)) => b.append_value(*v),
            (_, cell) => return Err(mismatch(cell)),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::LargeUtf8(b) => Arc::new(b.finish()),
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int8(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
        }
    }
}

/// What one pass over the events found.
pub struct Fused {
    /// The accepted events in `schema`, in order; `None` when none was.
    pub batch: Option<RecordBatch>,
    /// Indexes (into the events given) of the accepted ones.
    pub accepted: Vec<usize>,
    /// Each refused event's index, field and message, in order.
    pub refused: Vec<(usize, String, String)>,
}

/// Checks and decodes `events` against `schema`, which [`supports`] must accept.
pub fn decode(schema: &SchemaRef, events: &[&[u8]]) -> Result<Fused, String> {
    let fields = schema.fields();
    // What the text columns hold together is at most the events' bytes: shared among them
    // as a first guess, so the builders rarely grow and never reserve the body many times.
    let text_columns = fields
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8))
        .count()
        .max(1);
    let text_bytes = events.iter().map(|e| e.len()).sum::<usize>() / text_columns;
    let mut builders = fields
        .iter()
        .map(|f| Builder::new(f.data_type(), events.len(), text_bytes))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "a column type the one-pass decoder does not take".to_owned())?;
    let cells: Cells<'_> = std::cell::RefCell::new(vec![Cell::Absent; fields.len()]);
    let columns = flat_scan::Columns::new(schema);
    let mut accepted = Vec::with_capacity(events.len());
    let mut refused = Vec::new();
    for (index, raw) in events.iter().enumerate() {
        cells.borrow_mut().fill(Cell::Absent);
        // The single-scan reader first; what it declines, the strict check reads or refuses.
        let read = columns
            .as_ref()
            .is_some_and(|columns| flat_scan::read(columns, raw, &mut cells.borrow_mut()));
        if !read {
            cells.borrow_mut().fill(Cell::Absent);
            if let Some((field, message)) = check_into(schema, raw, Some(&cells)) {
                refused.push((index, field, message));
                continue;
            }
        }
        for (builder, cell) in builders.iter_mut().zip(cells.borrow().iter()) {
            builder.append(cell)?;
        }
        accepted.push(index);
    }
    let batch = if accepted.is_empty() {
        None
    } else {
        let columns = builders.iter_mut().map(Builder::finish).collect();
        Some(RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())?)
    };
    Ok(Fused {
        batch,
        accepted,
        refused,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use deltalake::arrow::datatypes::{Field, Schema};
    use deltalake::arrow::json::ReaderBuilder;
    use proptest::prelude::*;

    use super::*;

    /// A table of every plain column type (also `flat_scan`'s tests').
    pub(crate) fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int8, true),
            Field::new("mid", DataType::Int32, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("note", DataType::LargeUtf8, true),
        ]))
    }

    /// arrow-json's batch for the same events: the reference this path must equal.
    fn arrow_json(schema: &SchemaRef, events: &[&[u8]]) -> Option<RecordBatch> {
        let mut decoder = ReaderBuilder::new(schema.clone())
            .with_strict_mode(true)
            .with_batch_size(events.len().max(1))
            .build_decoder()
            .expect("decoder");
        for event in events {
            decoder.decode(event).expect("decode");
            decoder.decode(b"\n").expect("separator");
        }
        decoder.flush().expect("flush")
    }

    #[test]
    fn plain_columns_only() {
        assert!(supports(&schema(), 1 << 20));
        assert!(!supports(&schema(), 1 << 31), "beyond 32-bit string offsets");
        let with_time = Arc::new(Schema::new(vec![Field::new(
            "at",
            DataType::Timestamp(deltalake::arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        )]));
        assert!(!supports(&with_time, 1));
        let float32 = Arc::new(Schema::new(vec![Field::new("f", DataType::Float32, true)]));
        assert!(
            !supports(&float32, 1),
            "arrow-json parses f32 from the text: not repeated here"
        );
    }

    #[test]
    fn refused_events_are_reported_and_left_out() {
        let events: Vec<&[u8]> = vec![
            br#"{"id": 1, "name": "a"}"#,
            br#"{"id": 1.5}"#,
            br#"{"name": "no id"}"#,
            br#"{"id": 3, "small": 300}"#,
            br#"{"id": 4, "amount": 2, "note": "esc\"aped \u00e9"}"#,
        ];
        let fused = decode(&schema(), &events).expect("decode");
        assert_eq!(fused.accepted, vec![0, 4]);
        let refused: Vec<_> = fused.refused.iter().map(|(i, f, _)| (*i, f.as_str())).collect();
        assert_eq!(refused, vec![(1, "id"), (2, "id"), (3, "small")]);
        let good: Vec<&[u8]> = fused.accepted.iter().map(|i| events[*i]).collect();
        assert_eq!(fused.batch, arrow_json(&schema(), &good));
    }

    /// A JSON text for a value of one of the test schema's columns, valid for it or not.
    fn value(column: usize) -> BoxedStrategy<String> {
        let text = prop_oneof![
            "[a-z ]{0,8}".prop_map(|s| serde_json::to_string(&s).expect("json")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).expect("json")),
        ];
        let double = prop_oneof![
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| f.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            // Decimal texts with more digits than a double holds: rounding must match.
            ("-?[1-9][0-9]{0,20}", "[0-9]{1,25}").prop_map(|(a, b)| format!("{a}.{b}")),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
        ];
        let integer = prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<i8>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
            Just("1.5".to_owned()),
        ];
        match column {
            0..=2 => integer.boxed(),
            3 => double.boxed(),
            4 => prop_oneof![
                Just("true".to_owned()),
                Just("false".to_owned()),
                Just("\"yes\"".to_owned())
            ]
            .boxed(),
            _ => text.boxed(),
        }
    }

    fn event() -> impl Strategy<Value = String> {
        let names = ["id", "small", "mid", "amount", "ok", "name", "note"];
        prop::collection::vec(
            prop::option::of(prop_oneof![
                (0usize..7).prop_flat_map(value),
                Just("null".to_owned())
            ]),
            7,
        )
        .prop_map(move |values| {
            let fields: Vec<String> = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_ref().map(|v| format!("{:?}: {v}", names[i])))
                .collect();
            format!("{{{}}}", fields.join(", "))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the events, the one-pass batch equals arrow-json's batch of the events it
        /// accepted, and it accepts exactly those the type check passes.
        #[test]
        fn equals_arrow_json_on_the_accepted_events(events in prop::collection::vec(event(), 1..20)) {
            let schema = schema();
            let raw: Vec<&[u8]> = events.iter().map(|e| e.as_bytes()).collect();
            let fused = decode(&schema, &raw).expect("decode");
            let passed: Vec<usize> = (0..raw.len())
                .filter(|i| super::super::validate::check_event(&schema, raw[*i]).is_none())
                .collect();
            prop_assert_eq!(&fused.accepted, &passed);
            let good: Vec<&[u8]> = passed.iter().map(|i| raw[*i]).collect();
            let reference = if good.is_empty() { None } else { arrow_json(&schema, &good) };
            prop_assert_eq!(fused.batch, reference);
        }
    }
}
