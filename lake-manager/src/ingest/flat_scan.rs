//! A strict reader for the common event: one flat JSON object of plain values, read in a single
//! scan without serde. The strict check (`validate::check_into`) reads every event through
//! serde_json's generic visitor machinery, which the README's instruction counts put at about
//! 8,000 instructions per 200-byte event, the largest single cost of HTTP ingestion.
//!
//! This reader either reads an event exactly as the strict check would, leaving the same values,
//! or declines it; a declined event then goes through the strict check, which reports its
//! problem or reads what this does not take (escaped strings and keys, integers beyond 18
//! digits). It declines anything it is not sure of, so it never accepts what the check
//! refuses: the property test below holds it to that.

use std::borrow::Cow;

use deltalake::arrow::datatypes::{DataType, Schema};

use super::validate::Cell;

/// What a column takes, as this reader checks it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Bool,
    /// An integer column and its range.
    Int {
        min: i64,
        max: i64,
    },
    Double,
}

/// The columns of a table as the reader matches keys against them; `None` from [`Columns::new`]
/// for tables it does not read: a column type besides the plain ones, over 128 columns, a name
/// JSON would have to escape, or two columns of one name (which tables never have; the strict
/// check would take the first, and this reader must not differ).
pub struct Columns<'s> {
    names: Vec<&'s [u8]>,
    kinds: Vec<Kind>,
    /// The non-nullable columns, one bit each.
    required: u128,
}

impl<'s> Columns<'s> {
    pub fn new(schema: &'s Schema) -> Option<Self> {
        let fields = schema.fields();
        if fields.len() > 128 {
            return None;
        }
        // A name JSON would have to escape is never matched as written: such tables are left
        // to the strict check, so that keys need no check of their own beyond the match.
        if fields
            .iter()
            .any(|f| f.name().bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'))
        {
            return None;
        }
        let mut unique = std::collections::HashSet::with_capacity(fields.len());
        if !fields.iter().all(|f| unique.insert(f.name().as_str())) {
            return None;
        }
        let mut required = 0u128;
        let mut kinds = Vec::with_capacity(fields.len());
        for (index, field) in fields.iter().enumerate() {
            kinds.push(match field.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 => Kind::Text,
                DataType::Boolean => Kind::Bool,
                DataType::Int8 => int(i8::MIN.into(), i8::MAX.into()),
                DataType::Int16 => int(i16::MIN.into(), i16::MAX.into()),
                DataType::Int32 => int(i32::MIN.into(), i32::MAX.into()),
                DataType::Int64 => int(i64::MIN, i64::MAX),
                DataType::Float64 => Kind::Double,
                _ => return None,
            });
            if !field.is_nullable() {
                required |= 1 << index;
            }
        }
        Some(Self {
            names: fields.iter().map(|f| f.name().as_bytes()).collect(),
            kinds,
            required,
        })
    }

    /// The index of the column named `key`, trying `hint` (where the previous key's successor
    /// would be) first: events usually list their keys in the table's order.
    fn find(&self, key: &[u8], hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|name| *name == key) {
            return Some(hint);
        }
        self.names.iter().position(|name| *name == key)
    }
}

fn int(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}

/// Reads `raw` into `cells` (one per column, all [`Cell::Absent`]); `false` when it declines,
/// leaving in `cells` whatever it read before.
pub fn read<'de>(columns: &Columns<'_>, raw: &'de [u8], cells: &mut [Cell<'de>]) -> bool {
    // One UTF-8 check of the whole event rather than one per string: the strings are then cut
    // from it at quotes, which are ASCII and so always on character boundaries.
    std::str::from_utf8(raw).is_ok_and(|text| read_object(columns, text, cells).is_some())
}

fn read_object<'de>(columns: &Columns<'_>, raw: &'de str, cells: &mut [Cell<'de>]) -> Option<()> {
    let mut at = Cursor { text: raw, pos: 0 };
    at.whitespace();
    at.expect(b'{')?;
    at.whitespace();
    let mut seen = 0u128;
    if !at.eat(b'}') {
        let mut hint = 0;
        loop {
            let key = at.plain_string(false)?.as_bytes();
            let index = columns.find(key, hint)?;
            let bit = 1u128 << index;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            hint = index + 1;
            at.whitespace();
            at.expect(b':')?;
            at.whitespace();
            let nullable = columns.required & bit == 0;
            *cells.get_mut(index)? = at.value(*columns.kinds.get(index)?, nullable)?;
            at.whitespace();
            if at.eat(b'}') {
                break;
            }
            at.expect(b',')?;
            at.whitespace();
        }
    }
    at.whitespace();
    (at.pos == raw.len() && columns.required & !seen == 0).then_some(())
}

struct Cursor<'de> {
    text: &'de str,
    pos: usize,
}

impl<'de> Cursor<'de> {
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(text.len())?;
        (self.bytes().get(self.pos..end)? == text).then(|| self.pos = end)
    }

    /// A string without escapes, as its text between the quotes; `None` for any other. With
    /// `checked`, also `None` when it holds a control character (which JSON does not allow
    /// raw); keys skip that check, since only a key equal to a column name is taken.
    fn plain_string(&mut self, checked: bool) -> Option<&'de str> {
        self.expect(b'"')?;
        let rest = self.bytes().get(self.pos..)?;
        let len = memchr::memchr2(b'"', b'\\', rest)?;
        let bytes = rest.get(..len)?;
        // Folded without a short cut, so that the compiler checks many bytes at once.
        if rest.get(len) != Some(&b'"') || (checked && bytes.iter().fold(false, |c, b| c | (*b < 0x20))) {
            return None;
        }
        let text = self.text.get(self.pos..self.pos + len)?;
        self.pos += len + 1;
        Some(text)
    }

    fn value(&mut self, kind: Kind, nullable: bool) -> Option<Cell<'de>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return nullable.then_some(Cell::Null);
        }
        match kind {
            Kind::Text => Some(Cell::Str(Cow::Borrowed(self.plain_string(true)?))),
            Kind::Bool => match self.peek()? {
                b't' => self.literal(b"true").map(|()| Cell::Bool(true)),
                b'f' => self.literal(b"false").map(|()| Cell::Bool(false)),
                _ => None,
            },
            Kind::Int { min, max } => {
                let (text, integer) = self.number()?;
                if !integer {
                    return None;
                }
                let value = parse_int(text)?;
                (min..=max).contains(&value).then_some(Cell::Int(value))
            }
            Kind::Double => {
                let (text, _) = self.number()?;
                let value: f64 = text.parse().ok()?;
                value.is_finite().then_some(Cell::Float(value))
            }
        }
    }

    /// A number by JSON's grammar, as its text, and whether it is an integer (no fraction or
    /// exponent).
    fn number(&mut self) -> Option<(&'de str, bool)> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.eat(b'.') {
            integer = false;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.some_digits()?;
        }
        Some((self.text.get(start..self.pos)?, integer))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// An integer's text (by the grammar above) of at most 18 digits, which always fits `i64`;
/// longer ones are left to the strict check, and so is `-0`, which serde_json reads as the
/// double -0.0 (and the strict check therefore refuses in an integer column).
fn parse_int(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text.as_bytes()),
    };
    if digits.len() > 18 {
        return None;
    }
    let magnitude = digits.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    match (negative, magnitude) {
        (true, 0) => None,
        (true, m) => Some(-m),
        (false, m) => Some(m),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use deltalake::arrow::datatypes::Field;
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::fused::tests::schema;
    use crate::ingest::validate::check_into;

    fn fast<'de>(schema: &Schema, raw: &'de [u8]) -> Option<Vec<Cell<'de>>> {
        let columns = Columns::new(schema).expect("plain columns");
        let mut cells = vec![Cell::Absent; schema.fields().len()];
        read(&columns, raw, &mut cells).then_some(cells)
    }

    fn strict<'de>(schema: &Schema, raw: &'de [u8]) -> Result<Vec<Cell<'de>>, (String, String)> {
        let cells = RefCell::new(vec![Cell::Absent; schema.fields().len()]);
        match check_into(schema, raw, Some(&cells)) {
            Some(problem) => Err(problem),
            None => Ok(cells.into_inner()),
        }
    }

    #[test]
    fn the_common_event_is_read_here() {
        let schema = schema();
        let raw = br#"{"id":7,"small":-128,"mid":2147483647,"amount":12.5,"ok":true,"name":"caf\u00e9 is not here","note":null}"#;
        assert_eq!(fast(&schema, raw), None, "an escape is left to the strict check");
        let raw = " {\"id\" : -7 ,\"amount\":1e2,\"ok\":false,\"name\":\"café\"}\r\n".as_bytes();
        let cells = fast(&schema, raw).expect("read here");
        assert_eq!(cells, strict(&schema, raw).expect("accepted"));
        assert_eq!(cells[0], Cell::Int(-7));
        assert_eq!(cells[3], Cell::Float(100.0));
        assert_eq!(cells[5], Cell::Str(Cow::Borrowed("café")));
        assert_eq!(cells[1], Cell::Absent);
    }

    #[test]
    fn what_the_strict_check_refuses_is_declined() {
        let schema = schema();
        for raw in [
            r#"{"id": 1.9}"#,
            r#"{"id": "42"}"#,
            r#"{"id": 1, "small": 128}"#,
            r#"{"id": 1, "name": 5}"#,
            r#"{"id": null}"#,
            r#"{"name": "no id"}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{"id": 1, "other": 2}"#,
            r#"{"id": 1} {"id": 2}"#,
            r#"{"id": 1,}"#,
            r#"{"id": 01}"#,
            r#"{"id": -0}"#,
            r#"{"id": 1, "amount": 1e400}"#,
            r#"{"id": 1, "amount": 1.}"#,
            r#"{"id": 1, "amount": .5}"#,
            r#"{"id": 1, "ok": tru}"#,
            "{\"id\": 1, \"name\": \"tab\there\"}",
            "",
            "[1]",
        ] {
            assert_eq!(fast(&schema, raw.as_bytes()), None, "{raw}");
            assert!(strict(&schema, raw.as_bytes()).is_err(), "{raw}");
        }
        let twice = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("a", DataType::Int64, true),
        ]);
        assert!(
            Columns::new(&twice).is_none(),
            "two columns of one name: the strict check's"
        );
        let not_utf8 = b"{\"id\": 1, \"name\": \"\xff\"}";
        assert_eq!(fast(&schema, not_utf8), None);
        assert!(strict(&schema, not_utf8).is_err());
    }

    /// A JSON text for one of the test schema's columns: plain, escaped, out of range, of the
    /// wrong type, or broken.
    fn value() -> BoxedStrategy<String> {
        prop_oneof![
            "[a-z é]{0,6}".prop_map(|s| format!("\"{s}\"")),
            any::<String>().prop_map(|s| serde_json::to_string(&s).expect("json")),
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|i| i.to_string()),
            (-200i64..200).prop_map(|i| i.to_string()),
            any::<f64>().prop_map(|f| f.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            "-?(0|[1-9][0-9]{0,25})(\\.[0-9]{0,4})?([eE][-+]?[0-9]{0,3})?",
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just("-0".to_owned()),
            Just("nul".to_owned()),
            Just("[1]".to_owned()),
            Just("{}".to_owned()),
        ]
        .boxed()
    }

    fn key() -> BoxedStrategy<String> {
        prop_oneof![
            8 => prop::sample::select(vec!["id", "small", "mid", "amount", "ok", "name", "note"])
                .prop_map(str::to_owned),
            1 => Just("other".to_owned()),
            1 => Just("i\\u0064".to_owned()),
        ]
        .boxed()
    }

    fn event() -> BoxedStrategy<String> {
        let spaces = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n"]);
        (
            prop::collection::vec((key(), value(), spaces.clone()), 0..9),
            spaces,
            prop::sample::select(vec!["", ",", "}", " x"]),
        )
            .prop_map(|(pairs, space, tail)| {
                let body = pairs
                    .iter()
                    .map(|(k, v, s)| format!("{s}\"{k}\"{s}:{s}{v}{s}"))
                    .collect::<Vec<_>>()
                    .join(",");
                format!("{space}{{{body}}}{tail}{space}")
            })
            .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        /// Whatever this reader accepts, the strict check accepts with the same values.
        #[test]
        fn accepted_events_read_as_the_strict_check_reads_them(raw in event()) {
            let schema = schema();
            if let Some(cells) = fast(&schema, raw.as_bytes()) {
                prop_assert_eq!(Ok(cells), strict(&schema, raw.as_bytes()));
            }
        }
    }
}
