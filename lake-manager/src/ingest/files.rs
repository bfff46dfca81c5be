//! Pushed files: a Parquet file or an Avro object-container file, decoded whole and conformed
//! to the table's columns. A file is one unit: any column or value that does not fit refuses
//! the whole file, naming the column (and the row, for a value), and nothing of it is written.
//!
//! The rules are those of JSON events, applied to typed columns: every column of the file must
//! be a column of the table, a table column the file lacks must be nullable, and a value must
//! fit its column without reinterpretation. Types are widened where no value can change
//! (a smaller integer into `long`, `float` into `double`, any string or binary encoding into
//! the table's, a timestamp of another unit or zone into the table's microseconds); anything
//! else (a string into a number, a `double` into a `long`) is refused rather than parsed or
//! truncated.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchReader, new_null_array};
use deltalake::arrow::compute::{CastOptions, cast_with_options, concat_batches};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::util::display::FormatOptions;

use super::decode::{EventSchema, Metadata, with_metadata};
use tenancy::stream::is_metadata_column;

/// A pushed file's format, from its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet.
    Parquet,
    /// An Avro object-container file (its schema in its header).
    Avro,
}

impl FileFormat {
    fn name(self) -> &'static str {
        match self {
            Self::Parquet => "Parquet",
            Self::Avro => "Avro",
        }
    }
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The bytes are not a readable file of the format.
    Unreadable(String),
    /// The file holds no rows.
    Empty,
    /// Its rows take more memory decoded than `limit` bytes.
    TooLarge {
        /// Bytes decoded when it stopped.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A column or a value does not fit the table.
    Misfit {
        /// The column.
        field: String,
        /// The 1-based row, for a value.
        row: Option<usize>,
        /// Why.
        message: String,
    },
}

fn misfit(field: &str, row: Option<usize>, message: impl Into<String>) -> FileError {
    FileError::Misfit {
        field: field.to_owned(),
        row,
        message: message.into(),
    }
}

/// Decodes `body` as a file of `format` and conforms it to the table: the rows in the table's
/// schema, metadata columns added (`_ingested_at` at `ingested_at_us`). Decoding stops once
/// the rows take more than `limit` bytes of memory.
pub fn decode(
    schema: &EventSchema,
    body: Vec<u8>,
    format: FileFormat,
    ingested_at_us: i64,
    limit: usize,
) -> Result<RecordBatch, FileError> {
    let (file_schema, batches) = match format {
        FileFormat::Parquet => read_parquet(body, limit)?,
        FileFormat::Avro => read_avro(body, limit)?,
    };
    let rows = concat_batches(&file_schema, &batches)
        .map_err(|e| FileError::Unreadable(format!("the {} file's batches: {e}", format.name())))?;
    if rows.num_rows() == 0 {
        return Err(FileError::Empty);
    }
    let user = conform(schema.user(), &rows)?;
    with_metadata(schema, &user, ingested_at_us, &Metadata::Http).map_err(FileError::Unreadable)
}

/// Every batch of a reader, or a stop once they take more than `limit` bytes decoded.
fn read_all<E: std::fmt::Display>(
    batches: impl Iterator<Item = Result<RecordBatch, E>>,
    limit: usize,
    what: &str,
) -> Result<Vec<RecordBatch>, FileError> {
    let (mut out, mut bytes) = (Vec::new(), 0);
    for batch in batches {
        let batch = batch.map_err(|e| unreadable(what, &e))?;
        bytes += batch.get_array_memory_size();
        if bytes > limit {
            return Err(FileError::TooLarge { bytes, limit });
        }
        out.push(batch);
    }
    Ok(out)
}

fn unreadable(what: &str, e: &dyn std::fmt::Display) -> FileError {
    FileError::Unreadable(format!("not a readable {what}: {e}"))
}

fn read_parquet(body: Vec<u8>, limit: usize) -> Result<(SchemaRef, Vec<RecordBatch>), FileError> {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    const WHAT: &str = "Parquet file";
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body))
        .and_then(|builder| builder.build())
        .map_err(|e| unreadable(WHAT, &e))?;
    Ok((reader.schema(), read_all(reader, limit, WHAT)?))
}

fn read_avro(body: Vec<u8>, limit: usize) -> Result<(SchemaRef, Vec<RecordBatch>), FileError> {
    const WHAT: &str = "Avro object-container file";
    let reader = arrow_avro::reader::ReaderBuilder::new()
        .build(std::io::Cursor::new(body))
        .map_err(|e| unreadable(WHAT, &e))?;
    Ok((reader.schema(), read_all(reader, limit, WHAT)?))
}

/// The file's columns as the table's user columns, in the table's order.
fn conform(user: &Schema, rows: &RecordBatch) -> Result<RecordBatch, FileError> {
    let file = rows.schema();
    for field in file.fields() {
        let name = field.name();
        if is_metadata_column(name) {
            return Err(misfit(
                name,
                None,
                "is a column the plane fills itself; leave it out of the file",
            ));
        }
        if user.field_with_name(name).is_err() {
            return Err(misfit(name, None, "is not a column of the table"));
        }
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(user.fields().len());
    for field in user.fields() {
        let column = match rows.column_by_name(field.name()) {
            Some(column) => fit(field, column)?,
            None if field.is_nullable() => new_null_array(field.data_type(), rows.num_rows()),
            None => {
                return Err(misfit(
                    field.name(),
                    None,
                    "is missing from the file, and the column is not nullable",
                ));
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(user.clone()), columns)
        .map_err(|e| FileError::Unreadable(format!("the conformed rows: {e}")))
}

/// One file column as the table's column: widened where allowed, nulls checked.
fn fit(field: &Field, column: &ArrayRef) -> Result<ArrayRef, FileError> {
    let (from, to) = (column.data_type(), field.data_type());
    let out = if from == to {
        column.clone()
    } else if widens(from, to) {
        // A finer unit goes into a coarser one only when nothing is cut off: nanoseconds that
        // are whole microseconds, milliseconds-since-epoch dates that are whole days.
        if let Some(row) = inexact(column, to) {
            return Err(misfit(
                field.name(),
                Some(row + 1),
                format!(
                    "has a value {} cannot hold exactly (it would be cut to the column's unit)",
                    type_name(to)
                ),
            ));
        }
        // Strict: a value the widening cannot carry (an unsigned value past `long`, a
        // timestamp past the microsecond range) fails instead of turning null.
        let options = CastOptions {
            safe: false,
            format_options: FormatOptions::default(),
        };
        cast_with_options(column, to, &options).map_err(|e| {
            misfit(
                field.name(),
                None,
                format!("a value does not fit the column's type {}: {e}", type_name(to)),
            )
        })?
    } else {
        return Err(misfit(
            field.name(),
            None,
            format!(
                "is {} in the file; the column is {} (no conversion that could change a value is made)",
                type_name(from),
                type_name(to)
            ),
        ));
    };
    if !field.is_nullable()
        && out.null_count() > 0
        && let Some(row) = (0..out.len()).find(|i| out.is_null(*i))
    {
        return Err(misfit(
            field.name(),
            Some(row + 1),
            "is null; the column is not nullable",
        ));
    }
    Ok(out)
}

/// The first row whose value a cast to `to` would cut (a finer time unit into a coarser one).
fn inexact(column: &ArrayRef, to: &DataType) -> Option<usize> {
    use deltalake::arrow::array::{Date64Array, TimestampNanosecondArray};
    use deltalake::arrow::datatypes::TimeUnit;
    fn first(values: impl Iterator<Item = Option<i64>>, unit: i64) -> Option<usize> {
        values
            .enumerate()
            .find_map(|(i, v)| v.is_some_and(|v| v % unit != 0).then_some(i))
    }
    match (column.data_type(), to) {
        (DataType::Timestamp(TimeUnit::Nanosecond, _), DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            column
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .and_then(|a| first(&mut a.iter(), 1_000))
        }
        (DataType::Date64, DataType::Date32) => column
            .as_any()
            .downcast_ref::<Date64Array>()
            .and_then(|a| first(a.iter(), 86_400_000)),
        _ => None,
    }
}

/// Whether `from` converts to `to` without any value changing (checked strictly on the way).
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    let string = |t: &DataType| matches!(t, T::Utf8 | T::LargeUtf8 | T::Utf8View);
    let binary = |t: &DataType| matches!(t, T::Binary | T::LargeBinary | T::BinaryView);
    match (from, to) {
        (T::Int8 | T::Int16 | T::UInt8, T::Int16 | T::Int32 | T::Int64) => true,
        (T::Int32 | T::UInt16, T::Int32 | T::Int64) => true,
        (T::UInt32 | T::UInt64, T::Int64) => true,
        (T::Int8 | T::Int16 | T::UInt8 | T::UInt16, T::Float32 | T::Float64) => true,
        (T::Int32 | T::UInt32 | T::Float32, T::Float64) => true,
        (f, t) if string(f) && string(t) => true,
        (f, t) if binary(f) && binary(t) => true,
        // A categorical column (pyarrow and polars write strings as dictionaries).
        (T::Dictionary(_, values), t) => values.as_ref() == t || widens(values, t),
        // Another unit or zone: the same instants in the table's unit.
        (T::Timestamp(_, from_zone), T::Timestamp(_, to_zone)) => from_zone.is_some() == to_zone.is_some(),
        (T::Date64, T::Date32) => true,
        (T::Decimal32(p, s) | T::Decimal64(p, s), T::Decimal128(tp, ts)) => s == ts && p <= tp,
        (T::Decimal128(p, s), T::Decimal128(tp, ts)) => s == ts && p <= tp,
        // Nested values: field names of lists and maps differ between writers (`item`,
        // `element`); the cast checks every child by these rules' strict counterpart.
        (T::List(_) | T::LargeList(_) | T::ListView(_) | T::LargeListView(_), T::List(_))
        | (T::Struct(_), T::Struct(_))
        | (T::Map(_, _), T::Map(_, _)) => nested_widens(from, to),
        _ => false,
    }
}

/// Whether every child of a nested type widens into the table's (by name for structs, which
/// must have the same children; by position for lists and maps).
fn nested_widens(from: &DataType, to: &DataType) -> bool {
    use DataType as T;
    let child = |f: &Field, t: &Field| f.data_type() == t.data_type() || widens(f.data_type(), t.data_type());
    match (from, to) {
        (T::List(f) | T::LargeList(f) | T::ListView(f) | T::LargeListView(f), T::List(t)) => child(f, t),
        (T::Struct(fs), T::Struct(ts)) => {
            fs.len() == ts.len()
                && ts.iter().all(|t| {
                    fs.iter()
                        .find(|f| f.name() == t.name())
                        .is_some_and(|f| child(f, t))
                })
        }
        (T::Map(f, _), T::Map(t, _)) => child(f, t),
        _ => false,
    }
}

/// A type as the table API names it where it can (`long`, `string`), else Arrow's name.
fn type_name(t: &DataType) -> String {
    use DataType as T;
    match t {
        T::Int64 => "long".into(),
        T::Int32 => "integer".into(),
        T::Int16 => "short".into(),
        T::Int8 => "byte".into(),
        T::Float64 => "double".into(),
        T::Float32 => "float".into(),
        T::Boolean => "boolean".into(),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => "string".into(),
        T::Binary | T::LargeBinary | T::BinaryView => "binary".into(),
        T::Date32 => "date".into(),
        T::Timestamp(_, Some(_)) => "timestamp".into(),
        T::Timestamp(_, None) => "timestamp_ntz".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{
        Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray, UInt64Array,
    };
    use deltalake::arrow::datatypes::TimeUnit;

    fn table() -> EventSchema {
        EventSchema::new(Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                tenancy::stream::INGESTED_AT,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ])))
    }

    fn parquet(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer =
            deltalake::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        writer.write(batch).expect("write");
        writer.close().expect("close");
        out
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).expect("batch")
    }

    #[test]
    fn a_fitting_parquet_file_is_widened_into_the_table_with_its_metadata() {
        let file = batch(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![Some(1_000), None, Some(3_000)])
                        .with_timezone("+00:00"),
                ),
            ),
        ]);
        let rows = decode(&table(), parquet(&file), FileFormat::Parquet, 42, 1 << 20).expect("fits");
        assert_eq!(rows.schema(), *table().table());
        let ids = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("long");
        assert_eq!(ids.values(), &[1, 2, 3]);
        assert_eq!(
            rows.column(1).null_count(),
            3,
            "a nullable column the file lacks is null"
        );
        let at = rows.column(2);
        assert_eq!(
            at.as_any()
                .downcast_ref::<deltalake::arrow::array::TimestampMicrosecondArray>()
                .expect("micros")
                .value(2),
            3_000_000
        );
    }

    #[test]
    fn a_file_that_does_not_fit_is_refused_naming_the_column() {
        let cases: Vec<(RecordBatch, &str, Option<usize>, &str)> = vec![
            (
                batch(vec![("id", Arc::new(StringArray::from(vec!["1"])) as ArrayRef)]),
                "id",
                None,
                "is string in the file; the column is long",
            ),
            (
                batch(vec![("id", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef)]),
                "id",
                None,
                "is double in the file",
            ),
            (
                batch(vec![("name", Arc::new(StringArray::from(vec!["a"])) as ArrayRef)]),
                "id",
                None,
                "missing from the file",
            ),
            (
                batch(vec![
                    ("id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                    ("extra", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ]),
                "extra",
                None,
                "not a column of the table",
            ),
            (
                batch(vec![(
                    "id",
                    Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
                )]),
                "id",
                Some(2),
                "is null",
            ),
            (
                batch(vec![(
                    "id",
                    Arc::new(UInt64Array::from(vec![u64::MAX])) as ArrayRef,
                )]),
                "id",
                None,
                "does not fit",
            ),
            (
                batch(vec![
                    ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
                    (
                        "at",
                        Arc::new(
                            deltalake::arrow::array::TimestampNanosecondArray::from(vec![2_000, 3_001])
                                .with_timezone("UTC"),
                        ),
                    ),
                ]),
                "at",
                Some(2),
                "cannot hold exactly",
            ),
        ];
        for (file, field, row, words) in cases {
            match decode(&table(), parquet(&file), FileFormat::Parquet, 0, 1 << 20) {
                Err(FileError::Misfit {
                    field: f,
                    row: r,
                    message,
                }) => {
                    assert_eq!((f.as_str(), r), (field, row), "{message}");
                    assert!(message.contains(words), "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn unreadable_empty_and_oversized_files_are_refused() {
        assert!(matches!(
            decode(&table(), b"PAR1 not really".to_vec(), FileFormat::Parquet, 0, 1 << 20),
            Err(FileError::Unreadable(m)) if m.contains("Parquet")
        ));
        assert!(matches!(
            decode(&table(), b"Obj\x01 not really".to_vec(), FileFormat::Avro, 0, 1 << 20),
            Err(FileError::Unreadable(m)) if m.contains("Avro")
        ));
        let empty = batch(vec![(
            "id",
            Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef,
        )]);
        assert_eq!(
            decode(&table(), parquet(&empty), FileFormat::Parquet, 0, 1 << 20),
            Err(FileError::Empty)
        );
        let big = batch(vec![(
            "id",
            Arc::new(Int64Array::from_iter_values(0..100_000)) as ArrayRef,
        )]);
        assert!(matches!(
            decode(&table(), parquet(&big), FileFormat::Parquet, 0, 64 * 1024),
            Err(FileError::TooLarge { limit, .. }) if limit == 64 * 1024
        ));
    }

    #[test]
    fn an_avro_object_container_file_decodes_like_parquet() {
        let file = batch(vec![
            ("id", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("x"), None])) as ArrayRef,
            ),
        ]);
        let mut writer =
            arrow_avro::writer::AvroWriter::new(Vec::new(), file.schema().as_ref().clone()).expect("writer");
        writer.write(&file).expect("write");
        writer.finish().expect("finish");
        let rows = decode(&table(), writer.into_inner(), FileFormat::Avro, 0, 1 << 20).expect("fits");
        assert_eq!(rows.num_rows(), 2);
        let names = rows
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("string");
        assert_eq!((names.value(0), names.is_null(1)), ("x", true));
    }
}
