//! Decoding JSON events against a table's schema with arrow-json, adding the metadata columns.
//!
//! The fast path decodes a whole request in one pass. Only when that fails does each event get
//! checked on its own, so a bad request is answered with the position and field of each bad
//! event while good traffic pays nothing for it.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::json::ReaderBuilder;
use serde::Serialize;
use serde_json::value::RawValue;

use super::fused;
use super::validate::check_event;
use tenancy::stream::{
    DLQ_ERROR, DLQ_PAYLOAD, DLQ_POSITION, INGESTED_AT, KAFKA_OFFSET, KAFKA_PARTITION, KAFKA_TIMESTAMP,
    is_metadata_column,
};

/// One refused event: where it is, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EventError {
    /// 1-based line of an NDJSON body, or 1-based element of a JSON array.
    pub line: usize,
    /// The offending field; empty when the event as a whole is wrong.
    pub field: String,
    /// Why.
    pub message: String,
}

/// How a request body lists its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    JsonArray,
    /// A file, decoded whole (`super::files`).
    File(super::files::FileFormat),
}

/// Per-row source positions of Kafka records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaPosition {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
}

/// A table's schema as ingestion sees it: the full table schema and the part callers send.
#[derive(Debug, Clone)]
pub struct EventSchema {
    table: SchemaRef,
    user: SchemaRef,
}

impl EventSchema {
    /// Splits the table's Arrow schema into the metadata columns and the rest.
    pub fn new(table: SchemaRef) -> Self {
        let user: Vec<Field> = table
            .fields()
            .iter()
            .filter(|f| !is_metadata_column(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        Self {
            user: Arc::new(Schema::new(user)),
            table,
        }
    }

    /// The table's full schema (what batches are written with).
    pub fn table(&self) -> &SchemaRef {
        &self.table
    }

    /// The columns callers send (the table's, without the metadata columns).
    pub fn user(&self) -> &SchemaRef {
        &self.user
    }
}

/// The outcome of decoding one request or poll.
#[derive(Debug)]
pub struct Decoded {
    /// The good events with metadata columns, in the table's schema; `None` when there are none.
    pub rows: Option<RecordBatch>,
    /// How many events were good.
    pub accepted: usize,
    /// The bad events, in order, with their raw text.
    pub rejected: Vec<(EventError, String)>,
}

/// Splits a body into events (raw JSON texts) with their 1-based positions. A body that is not
/// a JSON array when one is declared is one whole-request error.
pub fn split_events(body: &[u8], format: BodyFormat) -> Result<Vec<(usize, &[u8])>, EventError> {
    match format {
        BodyFormat::Ndjson => {
            // memchr finds the line ends a word at a time, where a byte-by-byte split cost
            // about 1,000 instructions per 200-byte event.
            let mut lines = Vec::new();
            let mut start = 0;
            let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
            for (i, end) in ends.enumerate() {
                let line = body.get(start..end).unwrap_or_default();
                if line.iter().any(|b| !b.is_ascii_whitespace()) {
                    lines.push((i + 1, line));
                }
                start = end + 1;
            }
            Ok(lines)
        }
        BodyFormat::JsonArray => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| EventError {
                line: 0,
                field: String::new(),
                message: format!("the body is not a JSON array: {e}"),
            })?;
            Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, raw)| (i + 1, raw.get().as_bytes()))
                .collect())
        }
        BodyFormat::File(_) => Err(EventError {
            line: 0,
            field: String::new(),
            message: "a file holds rows, not JSON events".to_owned(),
        }),
    }
}

fn decode_user(schema: &SchemaRef, events: &[&[u8]]) -> Result<Option<RecordBatch>, String> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_strict_mode(true)
        .with_batch_size(events.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    for event in events {
        let mut rest = *event;
        while !rest.is_empty() {
            let used = decoder.decode(rest).map_err(|e| e.to_string())?;
            if used == 0 {
                return Err("the event does not end".to_owned());
            }
            rest = &rest[used..];
        }
        // Values must be separated; a newline also ends a value arrow-json is still reading.
        decoder.decode(b"\n").map_err(|e| e.to_string())?;
    }
    decoder.flush().map_err(|e| e.to_string())
}

/// What a batch's metadata columns hold.
pub enum Metadata<'a> {
    /// HTTP: only the receive time.
    Http,
    /// Kafka: each row's position, in row order.
    Kafka(&'a [KafkaPosition]),
}

pub(super) fn with_metadata(
    schema: &EventSchema,
    user: &RecordBatch,
    ingested_at_us: i64,
    metadata: &Metadata<'_>,
) -> Result<RecordBatch, String> {
    let rows = user.num_rows();
    let positions = match metadata {
        Metadata::Kafka(p) => Some(*p),
        Metadata::Http => None,
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.table.fields().len());
    for field in schema.table.fields() {
        let column: ArrayRef = match (field.name().as_str(), positions) {
            (INGESTED_AT, _) => timestamp_column(field, vec![Some(ingested_at_us); rows]),
            (KAFKA_PARTITION, Some(p)) => {
                Arc::new(Int32Array::from_iter_values(p.iter().map(|p| p.partition)))
            }
            (KAFKA_OFFSET, Some(p)) => Arc::new(Int64Array::from_iter_values(p.iter().map(|p| p.offset))),
            (KAFKA_TIMESTAMP, Some(p)) => timestamp_column(
                field,
                p.iter().map(|p| p.timestamp_ms.map(|ms| ms * 1000)).collect(),
            ),
            (name, _) if is_metadata_column(name) => {
                deltalake::arrow::array::new_null_array(field.data_type(), rows)
            }
            (name, _) => user
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("column {name} missing from the decoded events"))?,
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.table.clone(), columns).map_err(|e| e.to_string())
}

fn timestamp_column(field: &Field, values: Vec<Option<i64>>) -> ArrayRef {
    let zone = match field.data_type() {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone_opt(zone))
}

/// Decodes events against the schema. Every event either lands in `rows` or in `rejected`.
/// Tables of plain columns are checked and decoded in one parse (`fused`); for the others,
/// each event is type-checked first (strictly, unlike arrow-json), then the good ones are
/// decoded by arrow-json in one pass, and an event it still refuses is found by decoding one
/// at a time.
pub fn decode(
    schema: &EventSchema,
    events: &[(usize, &[u8])],
    ingested_at_us: i64,
    metadata: Metadata<'_>,
) -> Result<Decoded, String> {
    let bytes = events.iter().map(|(_, raw)| raw.len()).sum();
    if !fused::supports(&schema.user, bytes) {
        return decode_checked(schema, events, ingested_at_us, metadata);
    }
    let raws: Vec<&[u8]> = events.iter().map(|(_, raw)| *raw).collect();
    let fused = fused::decode(&schema.user, &raws)?;
    let rejected = fused
        .refused
        .into_iter()
        .map(|(index, field, message)| {
            let (line, raw) = events[index];
            (
                EventError { line, field, message },
                String::from_utf8_lossy(raw).into_owned(),
            )
        })
        .collect();
    let positions: Vec<KafkaPosition> = match metadata {
        Metadata::Kafka(p) => fused.accepted.iter().map(|i| p[*i]).collect(),
        Metadata::Http => Vec::new(),
    };
    let metadata = match metadata {
        Metadata::Kafka(_) => Metadata::Kafka(&positions),
        Metadata::Http => Metadata::Http,
    };
    let accepted = fused.batch.as_ref().map_or(0, RecordBatch::num_rows);
    let rows = match fused.batch {
        Some(batch) => Some(with_metadata(schema, &batch, ingested_at_us, &metadata)?),
        None => None,
    };
    Ok(Decoded {
        rows,
        accepted,
        rejected,
    })
}

/// [`decode`] for tables with columns the one-pass decoder does not take.
fn decode_checked(
    schema: &EventSchema,
    events: &[(usize, &[u8])],
    ingested_at_us: i64,
    metadata: Metadata<'_>,
) -> Result<Decoded, String> {
    let mut good: Vec<(usize, &[u8])> = Vec::with_capacity(events.len());
    let mut good_positions = Vec::new();
    let mut rejected = Vec::new();
    for (i, (line, raw)) in events.iter().enumerate() {
        match check_event(&schema.user, raw) {
            None => {
                good.push((*line, *raw));
                if let Metadata::Kafka(p) = metadata {
                    good_positions.push(p[i]);
                }
            }
            Some((field, message)) => rejected.push((
                EventError {
                    line: *line,
                    field,
                    message,
                },
                String::from_utf8_lossy(raw).into_owned(),
            )),
        }
    }
    let texts: Vec<&[u8]> = good.iter().map(|(_, raw)| *raw).collect();
    let batch = match decode_user(&schema.user, &texts) {
        Ok(batch) if batch.as_ref().map_or(0, RecordBatch::num_rows) == good.len() => batch,
        _ => {
            // Rare: a value the type check passed that arrow-json refuses (e.g. a timestamp
            // string it cannot parse). Find it event by event.
            let mut kept = Vec::with_capacity(good.len());
            let mut kept_positions = Vec::new();
            for (i, (line, raw)) in good.iter().enumerate() {
                match decode_user(&schema.user, &[raw]) {
                    Ok(Some(one)) if one.num_rows() == 1 => {
                        kept.push(*raw);
                        if let Some(p) = good_positions.get(i) {
                            kept_positions.push(*p);
                        }
                    }
                    outcome => rejected.push((
                        EventError {
                            line: *line,
                            field: String::new(),
                            message: outcome.err().unwrap_or_else(|| "not one row".to_owned()),
                        },
                        String::from_utf8_lossy(raw).into_owned(),
                    )),
                }
            }
            rejected.sort_by_key(|(e, _)| e.line);
            good_positions = kept_positions;
            decode_user(&schema.user, &kept)?
        }
    };
    let batch_rows = batch.as_ref().map_or(0, RecordBatch::num_rows);
    let metadata = match metadata {
        Metadata::Kafka(_) => Metadata::Kafka(&good_positions),
        Metadata::Http => Metadata::Http,
    };
    let rows = match batch {
        Some(batch) => Some(with_metadata(schema, &batch, ingested_at_us, &metadata)?),
        None => None,
    };
    Ok(Decoded {
        rows,
        accepted: batch_rows,
        rejected,
    })
}

/// Dead-letter rows for refused events, in the dead-letter table's schema.
pub fn dlq_rows(
    schema: &EventSchema,
    rejected: &[(EventError, String)],
    positions: &[String],
    ingested_at_us: i64,
    kafka: Option<&[KafkaPosition]>,
) -> Result<RecordBatch, String> {
    let errors: Vec<String> = rejected
        .iter()
        .map(|(e, _)| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    let user = RecordBatch::try_new(
        schema.user.clone(),
        schema
            .user
            .fields()
            .iter()
            .map(|f| -> Result<ArrayRef, String> {
                Ok(match f.name().as_str() {
                    DLQ_PAYLOAD => Arc::new(StringArray::from_iter_values(
                        rejected.iter().map(|(_, raw)| raw.as_str()),
                    )),
                    DLQ_ERROR => Arc::new(StringArray::from_iter_values(errors.iter())),
                    DLQ_POSITION => Arc::new(StringArray::from_iter_values(positions.iter())),
                    other => return Err(format!("unexpected dead-letter column {other}")),
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    )
    .map_err(|e| e.to_string())?;
    let metadata = match kafka {
        Some(p) => Metadata::Kafka(p),
        None => Metadata::Http,
    };
    with_metadata(schema, &user, ingested_at_us, &metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::TimeUnit;

    fn schema() -> EventSchema {
        EventSchema::new(Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new(
                INGESTED_AT,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ])))
    }

    fn run(body: &str, format: BodyFormat) -> Decoded {
        let events = split_events(body.as_bytes(), format).expect("splits");
        decode(&schema(), &events, 1_000_000, Metadata::Http).expect("decodes")
    }

    #[test]
    fn good_events_get_the_receive_time() {
        let decoded = run(
            "{\"id\": 1, \"name\": \"a\"}\n\n{\"id\": 2, \"score\": 1.5}\n",
            BodyFormat::Ndjson,
        );
        assert_eq!(decoded.accepted, 2);
        let rows = decoded.rows.expect("rows");
        assert_eq!(rows.num_rows(), 2);
        assert_eq!(rows.schema(), *schema().table());
        let at = rows
            .column_by_name(INGESTED_AT)
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .expect("timestamp");
        assert_eq!(at.value(1), 1_000_000);
        let array = run("[{\"id\": 1}, {\"id\": 2}, {\"id\": 3}]", BodyFormat::JsonArray);
        assert_eq!(array.accepted, 3);
    }

    #[test]
    fn bad_events_are_named_by_line_and_field() {
        let body = "{\"id\": 1}\n{\"id\": \"x\"}\n{\"name\": \"no id\"}\n{broken\n{\"id\": 5, \"extra\": 1}\n[1]\n{\"id\": 7, \"_ingested_at\": 0}\n{\"id\": 8}";
        let decoded = run(body, BodyFormat::Ndjson);
        assert_eq!(decoded.accepted, 2, "lines 1 and 8");
        assert_eq!(decoded.rows.map(|r| r.num_rows()), Some(2));
        let got: Vec<(usize, &str)> = decoded
            .rejected
            .iter()
            .map(|(e, _)| (e.line, e.field.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (2, "id"),
                (3, "id"),
                (4, ""),
                (5, "extra"),
                (6, ""),
                (7, INGESTED_AT)
            ]
        );
        assert!(
            decoded.rejected[0].0.message.contains("must be an integer"),
            "{:?}",
            decoded.rejected[0]
        );
        assert!(decoded.rejected[2].0.message.starts_with("malformed JSON"));
        assert_eq!(
            decoded.rejected[2].1, "{broken",
            "raw payload kept for the dead-letter table"
        );
    }

    #[test]
    fn integer_ranges_and_non_arrays_are_checked() {
        let s = EventSchema::new(Arc::new(Schema::new(vec![Field::new(
            "small",
            DataType::Int8,
            true,
        )])));
        let events = split_events(b"{\"small\": 300}", BodyFormat::Ndjson).expect("splits");
        let decoded = decode(&s, &events, 0, Metadata::Http).expect("decodes");
        assert_eq!(decoded.rejected.len(), 1);
        assert_eq!(decoded.rejected[0].0.field, "small");
        assert!(split_events(b"{\"id\": 1}", BodyFormat::JsonArray).is_err());
    }

    #[test]
    fn kafka_positions_follow_the_good_rows() {
        let s = EventSchema::new(Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(KAFKA_PARTITION, DataType::Int32, true),
            Field::new(KAFKA_OFFSET, DataType::Int64, true),
        ])));
        let events = split_events(b"{\"id\": 1}\nnope\n{\"id\": 3}", BodyFormat::Ndjson).expect("splits");
        let positions: Vec<KafkaPosition> = (0..3)
            .map(|o| KafkaPosition {
                partition: 2,
                offset: 10 + o,
                timestamp_ms: None,
            })
            .collect();
        let decoded = decode(&s, &events, 0, Metadata::Kafka(&positions)).expect("decodes");
        let rows = decoded.rows.expect("rows");
        let offsets = rows
            .column_by_name(KAFKA_OFFSET)
            .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
            .expect("offsets");
        assert_eq!(offsets.values().to_vec(), [10, 12]);
    }
}
