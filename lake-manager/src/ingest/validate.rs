//! Strict per-event type checks in one streaming pass over the JSON (no allocation per value).
//!
//! arrow-json alone is lenient: it parses `1.9` into an integer column as 1 and `"42"` as 42.
//! Every event goes through this check, so a value is written only when its JSON type is the
//! column's, and a bad event is reported with its field. The same pass can hand over the
//! values it checked ([`check_into`]), which is how flat tables are decoded without a second
//! parse (`fused`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use deltalake::arrow::datatypes::{DataType, Schema};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tenancy::stream::is_metadata_column;

/// What a column accepts, in JSON terms.
fn expected(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::Date32 => "a string",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "an integer",
        DataType::Float32 | DataType::Float64 => "a number",
        DataType::Boolean => "true or false",
        DataType::Timestamp(_, _) => "an RFC 3339 timestamp string or epoch number",
        DataType::Decimal128(_, _) => "a number or numeric string",
        _ => return None,
    })
}

fn integer_fits(data_type: &DataType, v: i128) -> bool {
    match data_type {
        DataType::Int8 => i8::try_from(v).is_ok(),
        DataType::Int16 => i16::try_from(v).is_ok(),
        DataType::Int32 => i32::try_from(v).is_ok(),
        DataType::Int64 => i64::try_from(v).is_ok(),
        DataType::Float32 | DataType::Float64 | DataType::Timestamp(_, _) | DataType::Decimal128(_, _) => {
            true
        }
        _ => false,
    }
}

type Problem = RefCell<Option<(String, String)>>;

/// One checked value, as the JSON held it. Strings borrow from the event unless they had
/// escapes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'de> {
    /// The key was not in the event.
    Absent,
    /// `null`.
    Null,
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A double column's number, parsed from its text with correct rounding.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A string.
    Str(Cow<'de, str>),
}

/// Where [`check_into`] puts each column's value, by the column's index.
pub type Cells<'de> = RefCell<Vec<Cell<'de>>>;

/// Checks one event; `None` when it fits the schema.
pub fn check_event(schema: &Schema, raw: &[u8]) -> Option<(String, String)> {
    check_into(schema, raw, None)
}

/// [`check_event`], also leaving each column's value in `cells` (which must hold one cell per
/// field of `schema`, all [`Cell::Absent`]) when given. Nested columns are only checked.
/// When the event has a problem, `cells` holds whatever was read before it.
pub fn check_into<'de>(
    schema: &Schema,
    raw: &'de [u8],
    cells: Option<&Cells<'de>>,
) -> Option<(String, String)> {
    let problem: Problem = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let outcome = EventSeed {
        schema,
        problem: &problem,
        cells,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    if let Some(found) = problem.into_inner() {
        return Some(found);
    }
    outcome
        .err()
        .map(|e| (String::new(), format!("malformed JSON: {e}")))
}

/// Stops the parse once a problem is recorded; the message is in the shared cell.
fn stop<E: de::Error>(problem: &Problem, field: &str, message: String) -> E {
    *problem.borrow_mut() = Some((field.to_owned(), message));
    E::custom("stopped")
}

struct EventSeed<'a, 'de> {
    schema: &'a Schema,
    problem: &'a Problem,
    cells: Option<&'a Cells<'de>>,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fields = self.schema.fields();
        // Tables rarely pass 128 columns: a bit set avoids an allocation per event.
        let mut small = [0u64; 2];
        let mut large = if fields.len() > 128 {
            vec![false; fields.len()]
        } else {
            Vec::new()
        };
        let mut mark = |index: usize| -> bool {
            if large.is_empty() {
                let (word, bit) = (index / 64, 1u64 << (index % 64));
                let was = small[word] & bit != 0;
                small[word] |= bit;
                was
            } else {
                std::mem::replace(&mut large[index], true)
            }
        };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let Some((index, field)) = self.schema.column_with_name(&key) else {
                let message = if is_metadata_column(&key) {
                    "is set by the plane and cannot be sent"
                } else {
                    "is not a column of the table"
                };
                return Err(stop(self.problem, &key, message.to_owned()));
            };
            if mark(index) {
                return Err(stop(self.problem, &key, "appears twice".to_owned()));
            }
            map.next_value_seed(ValueSeed {
                name: field.name(),
                data_type: field.data_type(),
                nullable: field.is_nullable(),
                problem: self.problem,
                slot: self.cells.map(|cells| (cells, index)),
            })?;
        }
        for (index, field) in fields.iter().enumerate() {
            if !field.is_nullable() && !mark(index) {
                return Err(stop(
                    self.problem,
                    field.name(),
                    "is required (the column is not nullable)".to_owned(),
                ));
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(stop(
            self.problem,
            "",
            "an event must be a JSON object".to_owned(),
        ))
    }
}

struct ValueSeed<'a, 'de> {
    name: &'a str,
    data_type: &'a DataType,
    nullable: bool,
    problem: &'a Problem,
    slot: Option<(&'a Cells<'de>, usize)>,
}

impl<'de> ValueSeed<'_, 'de> {
    /// Keeps a value that passed, when the caller wants values.
    fn put<E>(&self, cell: Cell<'de>) -> Result<(), E> {
        if let Some((cells, index)) = self.slot
            && let Some(slot) = cells.borrow_mut().get_mut(index)
        {
            *slot = cell;
        }
        Ok(())
    }

    /// A double column's value from its JSON text.
    fn double<E: de::Error>(self, text: &str) -> Result<(), E> {
        match text.as_bytes().first() {
            Some(b'n') => self.visit_unit(),
            Some(b't' | b'f') => Err(self.wrong(text)),
            Some(b'[') => Err(self.wrong("an array")),
            Some(b'{') => Err(self.wrong("an object")),
            Some(b'"') => {
                let v: String = serde_json::from_str(text).map_err(E::custom)?;
                Err(self.wrong(&format!("{v:?}")))
            }
            _ => match text.parse::<f64>() {
                Ok(v) if v.is_finite() => self.put(Cell::Float(v)),
                _ => {
                    // The text comes from the request: echoed bounded, as in dead letters.
                    let shown: String = text.chars().take(40).collect();
                    let more = if shown.len() < text.len() { "..." } else { "" };
                    Err(stop(
                        self.problem,
                        self.name,
                        format!("must be a number a double can hold, got {shown}{more}"),
                    ))
                }
            },
        }
    }

    /// Whether a JSON string is a value of this column (nested columns: arrow-json decides).
    fn takes_strings(&self) -> bool {
        matches!(
            self.data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::Date32
                | DataType::Timestamp(_, _)
                | DataType::Decimal128(_, _)
        ) || self.nested()
    }

    fn string<E: de::Error>(self, v: Cow<'de, str>) -> Result<(), E> {
        if !self.takes_strings() {
            return Err(self.wrong(&format!("{v:?}")));
        }
        if self.nested() {
            return Ok(());
        }
        self.put(Cell::Str(v))
    }

    fn wrong<E: de::Error>(&self, got: &str) -> E {
        let want = expected(self.data_type).unwrap_or("another type");
        stop(self.problem, self.name, format!("must be {want}, got {got}"))
    }

    /// Nested columns (lists, structs, maps) are left to arrow-json's own checks.
    fn nested(&self) -> bool {
        expected(self.data_type).is_none()
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if *self.data_type == DataType::Float64 {
            // From the number's text, correctly rounded as arrow-json reads it: serde_json's
            // own float parsing is best-effort without its `float_roundtrip` feature.
            let raw = <&'de RawValue>::deserialize(deserializer)?;
            return self.double(raw.get());
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if self.nullable {
            self.put(Cell::Null)
        } else {
            Err(stop(
                self.problem,
                self.name,
                "is required (the column is not nullable)".to_owned(),
            ))
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        match self.data_type {
            DataType::Boolean => self.put(Cell::Bool(v)),
            _ if self.nested() => Ok(()),
            _ => Err(self.wrong(&v.to_string())),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        if integer_fits(self.data_type, i128::from(v)) {
            self.put(Cell::Int(v))
        } else if self.nested() {
            Ok(())
        } else {
            Err(self.wrong(&v.to_string()))
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        if integer_fits(self.data_type, i128::from(v)) {
            self.put(i64::try_from(v).map_or(Cell::UInt(v), Cell::Int))
        } else if self.nested() {
            Ok(())
        } else {
            Err(self.wrong(&v.to_string()))
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        match self.data_type {
            DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(_, _)
            | DataType::Timestamp(_, _) => self.put(Cell::Float(v)),
            _ if self.nested() => Ok(()),
            _ => Err(self.wrong(&v.to_string())),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        // Only reached for strings with escapes; others come borrowed. Copied only when the
        // caller keeps values.
        if self.slot.is_none() {
            return if self.takes_strings() {
                Ok(())
            } else {
                Err(self.wrong(&format!("{v:?}")))
            };
        }
        self.string(Cow::Owned(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.nested() {
            return Err(self.wrong("an array"));
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if !self.nested() {
            return Err(self.wrong("an object"));
        }
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::Field;

    #[test]
    fn json_types_must_match_the_columns_exactly() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("small", DataType::Int8, true),
            Field::new("price", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let check = |raw: &str| check_event(&schema, raw.as_bytes()).map(|(field, _)| field);
        assert_eq!(
            check(r#"{"id": 1, "small": -128, "price": 2, "name": "x"}"#),
            None
        );
        assert_eq!(
            check(r#"{"id": 1.9}"#).as_deref(),
            Some("id"),
            "no silent truncation"
        );
        assert_eq!(
            check(r#"{"id": "42"}"#).as_deref(),
            Some("id"),
            "no strings as numbers"
        );
        assert_eq!(check(r#"{"id": 1, "small": 128}"#).as_deref(), Some("small"));
        assert_eq!(check(r#"{"id": 1, "name": 5}"#).as_deref(), Some("name"));
        assert_eq!(check(r#"{"id": 1, "name": {"a": 1}}"#).as_deref(), Some("name"));
        assert_eq!(check(r#"{"id": null}"#).as_deref(), Some("id"));
        assert_eq!(check(r#"{"name": "no id"}"#).as_deref(), Some("id"));
        assert_eq!(
            check(r#"{"id": 1, "id": 2}"#).as_deref(),
            Some("id"),
            "duplicate keys"
        );
        assert_eq!(check(r#"{"id": 1, "other": 2}"#).as_deref(), Some("other"));
        assert_eq!(
            check(r#"{"id": 1} {"id": 2}"#).as_deref(),
            Some(""),
            "one event per line"
        );
        assert_eq!(check("").as_deref(), Some(""), "an empty payload is not an event");
        assert_eq!(check("[1]").as_deref(), Some(""));
        let (_, message) = check_event(&schema, br#"{"id": 1.9}"#).expect("problem");
        assert_eq!(message, "must be an integer, got 1.9");
        // A double column is read from the number's text.
        assert_eq!(
            check(r#"{"id": 1, "price": 1e400}"#).as_deref(),
            Some("price"),
            "out of range"
        );
        assert_eq!(check(r#"{"id": 1, "price": -0.0, "name": null}"#), None);
        for (bad, got) in [
            ("true", "true"),
            (r#""2.5""#, r#""2.5""#),
            ("[1]", "an array"),
            (r#"{"a": 1}"#, "an object"),
        ] {
            let raw = format!(r#"{{"id": 1, "price": {bad}}}"#);
            let (field, message) = check_event(&schema, raw.as_bytes()).expect("problem");
            assert_eq!(
                (field.as_str(), message),
                ("price", format!("must be a number, got {got}"))
            );
        }
        assert_eq!(
            check(r#"{"id": 1, "price": 1.}"#).as_deref(),
            Some(""),
            "malformed JSON is still refused"
        );
    }
}
