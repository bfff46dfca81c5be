//! Table definitions: names, columns and layout, with their validation at create and change.
//!
//! Type names are Delta's own (`long`, `timestamp`, `decimal(10,2)`, ...), so a definition maps
//! onto a Delta schema without a translation table.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

use crate::role::Zone;
use crate::validation::{Violation, Violations};

const MIB: u64 = 1024 * 1024;

/// Target size of data files when the request names none.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * MIB;
/// Smallest allowed target file size.
pub const MIN_TARGET_FILE_SIZE: u64 = MIB;
/// Largest allowed target file size.
pub const MAX_TARGET_FILE_SIZE: u64 = 1024 * MIB;
/// Most columns a table may have.
pub const MAX_COLUMNS: usize = 1000;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest table or column name, in characters.
// 63 is the identifier limit of PostgreSQL and of most catalogs a table may be exported to.
pub const MAX_NAME_CHARS: usize = 63;
/// Largest decimal precision Delta supports.
pub const MAX_DECIMAL_PRECISION: u8 = 38;
/// Most columns that may identify a data subject in one table.
pub const MAX_SUBJECT_COLUMNS: usize = 8;
/// Table names that collide with catalog schemas and query-engine vocabulary.
pub const RESERVED_TABLE_NAMES: &[&str] = &["default", "information_schema", "system"];

/// Checks the shape shared by table and column names: `[a-z][a-z0-9_]{0,62}`.
pub(crate) fn check_identifier(raw: &str) -> Result<(), String> {
    let Some(first) = raw.bytes().next() else {
        return Err("must not be empty".to_owned());
    };
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase letter".to_owned());
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("may contain only lowercase letters, digits and underscores".to_owned());
    }
    // Only ASCII is left, so bytes are characters.
    if raw.len() > MAX_NAME_CHARS {
        return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
    }
    Ok(())
}

/// Validates a column name: a lowercase letter, then lowercase letters, digits or underscores.
pub fn validate_column_name(raw: &str) -> Result<(), String> {
    check_identifier(raw)
}

/// A table name, unique within a tenant's zone.
///
/// Deserializing does not re-validate: only stored specs, validated when written, are
/// deserialized, and re-checking would make existing tables unreadable if the reserved list grew.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TableName(String);

impl TableName {
    /// Validates a candidate name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_identifier(raw)?;
        if RESERVED_TABLE_NAMES.contains(&raw) {
            return Err(format!("{raw} is a reserved name"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a name read back from the store, which only ever holds validated names.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The type of a column, named as Delta names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// UTF-8 text.
    String,
    /// 64-bit integer.
    Long,
    /// 32-bit integer.
    Integer,
    /// 16-bit integer.
    Short,
    /// 8-bit integer.
    Byte,
    /// 64-bit float.
    Double,
    /// 32-bit float.
    Float,
    /// True or false.
    Boolean,
    /// Raw bytes.
    Binary,
    /// Calendar date.
    Date,
    /// Instant, microsecond precision, UTC-adjusted.
    Timestamp,
    /// Fixed-point number.
    Decimal {
        /// Total digits, 1 to 38.
        precision: u8,
        /// Digits after the point, 0 to the precision.
        scale: u8,
    },
}

/// Every type without parameters, by name.
const SIMPLE_TYPES: [(&str, ColumnType); 11] = [
    ("string", ColumnType::String),
    ("long", ColumnType::Long),
    ("integer", ColumnType::Integer),
    ("short", ColumnType::Short),
    ("byte", ColumnType::Byte),
    ("double", ColumnType::Double),
    ("float", ColumnType::Float),
    ("boolean", ColumnType::Boolean),
    ("binary", ColumnType::Binary),
    ("date", ColumnType::Date),
    ("timestamp", ColumnType::Timestamp),
];

impl ColumnType {
    /// Parses a type name: one of the simple names, or `decimal(p,s)`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some((_, simple)) = SIMPLE_TYPES.iter().find(|(name, _)| *name == raw) {
            return Ok(*simple);
        }
        if let Some(args) = raw.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')) {
            return Self::parse_decimal(args);
        }
        let known: Vec<&str> = SIMPLE_TYPES.iter().map(|(name, _)| *name).collect();
        Err(format!(
            "unknown type {raw:?}; known types: {}, decimal(p,s)",
            known.join(", ")
        ))
    }

    /// Parses the `p,s` of `decimal(p,s)`.
    fn parse_decimal(args: &str) -> Result<Self, String> {
        let malformed = || "decimal must be written decimal(p,s), e.g. decimal(10,2)".to_owned();
        let (precision, scale) = args.split_once(',').ok_or_else(malformed)?;
        // `u8::from_str` would also take a sign, so digits are checked first; a parse failure
        // after that can only be an overflow, which the range checks below report.
        let number = |text: &str| {
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                Ok(text.parse::<u8>().ok())
            } else {
                Err(malformed())
            }
        };
        let precision = number(precision)?;
        let scale = number(scale.trim_start_matches(' '))?;
        let precision = precision
            .filter(|p| (1..=MAX_DECIMAL_PRECISION).contains(p))
            .ok_or_else(|| format!("decimal precision must be 1 to {MAX_DECIMAL_PRECISION}"))?;
        let scale = scale
            .filter(|s| *s <= precision)
            .ok_or_else(|| format!("decimal scale must be 0 to the precision ({precision})"))?;
        Ok(ColumnType::Decimal { precision, scale })
    }

    /// Whether values of this type can be partition values.
    pub fn can_partition(self) -> bool {
        !matches!(self, ColumnType::Binary | ColumnType::Float | ColumnType::Double)
    }

    /// Whether this type can be a table's event time.
    pub fn is_temporal(self) -> bool {
        matches!(self, ColumnType::Timestamp | ColumnType::Date)
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ColumnType::Decimal { precision, scale } = self {
            return write!(f, "decimal({precision},{scale})");
        }
        let name = SIMPLE_TYPES
            .iter()
            .find(|(_, simple)| simple == self)
            .map_or("", |(name, _)| *name);
        f.write_str(name)
    }
}

impl Serialize for ColumnType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ColumnType::parse(&raw).map_err(serde::de::Error::custom)
    }
}

fn default_true() -> bool {
    true
}

/// A validated column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ColumnSpec {
    /// Column name.
    pub name: String,
    /// Type, e.g. `long` or `decimal(10,2)`.
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "decimal(10,2)")]
    pub column_type: ColumnType,
    /// Whether values may be null.
    #[serde(default = "default_true")]
    pub nullable: bool,
}

impl ColumnType {
    /// Whether values of this type can name a data subject exactly: text and integers. Floats do
    /// not compare exactly, and dates, timestamps and booleans identify nobody.
    pub fn can_identify_subject(self) -> bool {
        matches!(
            self,
            Self::String | Self::Long | Self::Integer | Self::Short | Self::Byte
        )
    }
}

/// A column as the API receives it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct RawColumn {
    /// Column name.
    pub name: String,
    /// Type name, e.g. `long` or `decimal(10,2)`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Whether values may be null (default true).
    pub nullable: Option<bool>,
}

/// A table definition as the API receives it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct TableRequest {
    /// `bronze`, `silver` or `gold`.
    pub zone: String,
    /// Table name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<RawColumn>,
    /// Partition columns, outermost first.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// The column retention applies to (a timestamp or date).
    pub event_time_column: Option<String>,
    /// Columns to cluster data files by.
    #[serde(default)]
    pub z_order_by: Vec<String>,
    /// Free text; empty means none.
    pub description: Option<String>,
    /// Target data file size, bytes.
    pub target_file_size_bytes: Option<u64>,
    /// The columns that identify a data subject (a user id, an email): what an erasure matches.
    #[serde(default)]
    pub subject_columns: Vec<String>,
}

/// A validated table definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TableSpec {
    /// The zone it lives in.
    pub zone: Zone,
    /// Table name.
    #[schema(value_type = String)]
    pub name: TableName,
    /// Columns, in order.
    pub columns: Vec<ColumnSpec>,
    /// Partition columns, outermost first.
    pub partition_by: Vec<String>,
    /// The column retention applies to.
    pub event_time_column: Option<String>,
    /// Columns data files are clustered by.
    pub z_order_by: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Target data file size, bytes.
    pub target_file_size_bytes: u64,
    /// The columns that identify a data subject; empty when the table is not covered by
    /// erasures. Absent from specs stored before erasures existed.
    #[serde(default)]
    pub subject_columns: Vec<String>,
}

/// Column types by name; `None` when the type did not parse, so references to the column
/// are not also reported as missing.
type ColumnTypes<'a> = HashMap<&'a str, Option<ColumnType>>;

/// The recorded violations, for when a failed check left a value missing.
fn failed(violations: Violations) -> Vec<Violation> {
    violations
        .finish(|| ())
        .err()
        .unwrap_or_else(|| vec![Violation::new("body", "invalid")])
}

/// Checks column definitions under `path`; `existing` are the table's columns when adding
/// to it, and added columns must be nullable. Returns the valid columns.
fn check_columns(
    path: &str,
    raw: &[RawColumn],
    existing: &[ColumnSpec],
    adding: bool,
    violations: &mut Violations,
) -> Vec<ColumnSpec> {
    let mut seen = HashSet::new();
    let mut valid = Vec::new();
    for (i, column) in raw.iter().enumerate() {
        let field = |part: &str| format!("{path}[{i}].{part}");
        let name = &column.name;
        let name_ok = match validate_column_name(name) {
            Err(message) => Err(message),
            Ok(()) if existing.iter().any(|c| &c.name == name) => {
                Err(format!("column {name} already exists"))
            }
            Ok(()) if !seen.insert(name.as_str()) => Err(format!("duplicate column name {name}")),
            Ok(()) => Ok(()),
        };
        let name_ok = violations
            .check(name_ok.map_err(|m| Violation::new(field("name"), m)))
            .is_some();
        let column_type = violations
            .check(ColumnType::parse(&column.column_type).map_err(|m| Violation::new(field("type"), m)));
        if adding && column.nullable == Some(false) {
            violations.push(Violation::new(
                field("nullable"),
                "added columns must be nullable: existing rows have no value",
            ));
        }
        if let (true, Some(column_type)) = (name_ok, column_type) {
            valid.push(ColumnSpec {
                name: name.clone(),
                column_type,
                nullable: column.nullable.unwrap_or(true),
            });
        }
    }
    valid
}

/// Checks that each entry of a column list names a column, once, and passes `check` (given
/// the column's type when it parsed). Returns how many distinct columns the list names.
fn check_references(
    path: &str,
    names: &[String],
    columns: &ColumnTypes<'_>,
    violations: &mut Violations,
    check: impl Fn(&str, Option<ColumnType>) -> Option<String>,
) -> usize {
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        let problem = match columns.get(name.as_str()) {
            None => Some(format!("no column named {name}")),
            Some(_) if !seen.insert(name.as_str()) => Some(format!("{name} is listed twice")),
            Some(column_type) => check(name, *column_type),
        };
        if let Some(message) = problem {
            violations.push(Violation::new(format!("{path}[{i}]"), message));
        }
    }
    seen.len()
}

fn check_partition_by(names: &[String], columns: &ColumnTypes<'_>, violations: &mut Violations) {
    let named = check_references("partition_by", names, columns, violations, |name, column_type| {
        column_type.filter(|t| !t.can_partition()).map(|t| {
            format!(
                "{name} is {t}, not usable as partition values: floating-point values do not \
                 compare exactly and binary values cannot name a directory"
            )
        })
    });
    // Delta stores partition values in paths, not in files: a table of partition columns
    // alone would have data files with no columns.
    if !columns.is_empty() && named == columns.len() {
        violations.push(Violation::new(
            "partition_by",
            "a table needs at least one column that is not a partition column",
        ));
    }
}

fn check_z_order_by(
    names: &[String],
    columns: &ColumnTypes<'_>,
    partition_by: &[String],
    violations: &mut Violations,
) {
    check_references("z_order_by", names, columns, violations, |name, _| {
        partition_by.iter().any(|p| p == name).then(|| {
            format!(
                "{name} is a partition column: each partition holds a single value of it, so \
                 z-ordering by it is meaningless (delta-rs refuses it)"
            )
        })
    });
}

fn check_event_time(name: &str, columns: &ColumnTypes<'_>, violations: &mut Violations) {
    let field = "event_time_column";
    match columns.get(name) {
        None => violations.push(Violation::new(field, format!("no column named {name}"))),
        Some(Some(column_type)) if !column_type.is_temporal() => violations.push(Violation::new(
            field,
            format!("{name} is {column_type}; the event-time column must be a timestamp or date"),
        )),
        Some(_) => {}
    }
}

/// An empty description means none, so a change can clear it.
fn check_description(description: String, violations: &mut Violations) -> Option<String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        violations.push(Violation::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Some(description).filter(|d| !d.is_empty())
}

fn check_target_file_size(bytes: u64) -> Result<u64, Violation> {
    if (MIN_TARGET_FILE_SIZE..=MAX_TARGET_FILE_SIZE).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(Violation::new(
            "target_file_size_bytes",
            format!("must be {MIN_TARGET_FILE_SIZE} to {MAX_TARGET_FILE_SIZE} bytes (1 MiB to 1 GiB)"),
        ))
    }
}

fn check_subject_columns(names: &[String], columns: &ColumnTypes<'_>, violations: &mut Violations) {
    if names.len() > MAX_SUBJECT_COLUMNS {
        violations.push(Violation::new(
            "subject_columns",
            format!("at most {MAX_SUBJECT_COLUMNS} columns"),
        ));
    }
    check_references(
        "subject_columns",
        names,
        columns,
        violations,
        |name, column_type| {
            column_type.filter(|t| !t.can_identify_subject()).map(|t| {
                format!(
                    "{name} is {t}; a subject column must be a string or an integer type, which \
                 erasure requests match exactly"
                )
            })
        },
    );
}

impl TableRequest {
    /// Validates the definition, reporting every problem at once.
    pub fn validate(self) -> Result<TableSpec, Vec<Violation>> {
        let mut violations = Violations::default();
        let zone = violations.check(Zone::parse(&self.zone).ok_or_else(|| {
            let names: Vec<&str> = Zone::ALL.iter().map(|z| z.as_str()).collect();
            Violation::new("zone", format!("must be one of {}", names.join(", ")))
        }));
        let name = violations.check(TableName::parse(&self.name).map_err(|m| Violation::new("name", m)));
        if self.columns.is_empty() {
            violations.push(Violation::new("columns", "a table needs at least one column"));
        } else if self.columns.len() > MAX_COLUMNS {
            violations.push(Violation::new(
                "columns",
                format!("a table has at most {MAX_COLUMNS} columns"),
            ));
        }
        let columns = check_columns("columns", &self.columns, &[], false, &mut violations);
        let mut types = ColumnTypes::new();
        for column in &self.columns {
            types
                .entry(column.name.as_str())
                .or_insert_with(|| ColumnType::parse(&column.column_type).ok());
        }
        check_partition_by(&self.partition_by, &types, &mut violations);
        check_z_order_by(&self.z_order_by, &types, &self.partition_by, &mut violations);
        if let Some(event_time) = &self.event_time_column {
            check_event_time(event_time, &types, &mut violations);
        }
        check_subject_columns(&self.subject_columns, &types, &mut violations);
        let description = self
            .description
            .and_then(|d| check_description(d, &mut violations));
        let target_file_size_bytes = violations
            .check(check_target_file_size(
                self.target_file_size_bytes.unwrap_or(DEFAULT_TARGET_FILE_SIZE),
            ))
            .unwrap_or(DEFAULT_TARGET_FILE_SIZE);
        let (Some(zone), Some(name)) = (zone, name) else {
            return Err(failed(violations));
        };
        violations.finish(|| TableSpec {
            zone,
            name,
            columns,
            partition_by: self.partition_by,
            event_time_column: self.event_time_column,
            z_order_by: self.z_order_by,
            description,
            target_file_size_bytes,
            subject_columns: self.subject_columns,
        })
    }
}

/// A change to a table's definition (PATCH), before validation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
pub struct TableChange {
    /// Columns to append; they must be nullable.
    #[serde(default)]
    pub add_columns: Vec<RawColumn>,
    /// New z-order columns, replacing the old ones; empty turns z-ordering off.
    pub z_order_by: Option<Vec<String>>,
    /// New description; empty clears it.
    pub description: Option<String>,
    /// New target data file size, bytes.
    pub target_file_size_bytes: Option<u64>,
    /// New subject columns, replacing the old ones; empty leaves the table not covered.
    pub subject_columns: Option<Vec<String>>,
    /// Accepted only to refuse it clearly: dropping columns is not supported.
    pub drop_columns: Option<Vec<String>>,
    /// Accepted only to refuse it clearly: changing column types is not supported.
    #[schema(value_type = Option<Object>)]
    pub alter_columns: Option<serde_json::Value>,
}

impl TableChange {
    /// Applies the change to `current`, returning the new definition and the added columns,
    /// or every problem at once.
    pub fn apply(self, current: &TableSpec) -> Result<(TableSpec, Vec<ColumnSpec>), Vec<Violation>> {
        let drops = self.drop_columns.as_ref().is_some_and(|d| !d.is_empty());
        if self.add_columns.is_empty()
            && self.z_order_by.is_none()
            && self.description.is_none()
            && self.target_file_size_bytes.is_none()
            && self.subject_columns.is_none()
            && !drops
            && self.alter_columns.is_none()
        {
            return Err(vec![Violation::new("body", "nothing to change")]);
        }
        let mut violations = Violations::default();
        if drops {
            violations.push(Violation::new(
                "drop_columns",
                "dropping columns is not supported yet (it needs Delta column mapping)",
            ));
        }
        if self.alter_columns.is_some() {
            violations.push(Violation::new(
                "alter_columns",
                "changing a column's type is not supported yet",
            ));
        }
        let total = current.columns.len() + self.add_columns.len();
        if total > MAX_COLUMNS {
            violations.push(Violation::new(
                "add_columns",
                format!(
                    "a table has at most {MAX_COLUMNS} columns; this one has {} already",
                    current.columns.len()
                ),
            ));
        }
        let added = check_columns(
            "add_columns",
            &self.add_columns,
            &current.columns,
            true,
            &mut violations,
        );
        let mut types: ColumnTypes<'_> = current
            .columns
            .iter()
            .map(|c| (c.name.as_str(), Some(c.column_type)))
            .collect();
        for column in &self.add_columns {
            types
                .entry(column.name.as_str())
                .or_insert_with(|| ColumnType::parse(&column.column_type).ok());
        }
        if let Some(z_order_by) = &self.z_order_by {
            check_z_order_by(z_order_by, &types, &current.partition_by, &mut violations);
        }
        if let Some(subject_columns) = &self.subject_columns {
            check_subject_columns(subject_columns, &types, &mut violations);
        }
        let description = self.description.map(|d| check_description(d, &mut violations));
        let target_file_size_bytes = self
            .target_file_size_bytes
            .and_then(|bytes| violations.check(check_target_file_size(bytes)));
        violations.finish(|| {
            let mut spec = current.clone();
            spec.columns.extend(added.iter().cloned());
            if let Some(z_order_by) = self.z_order_by {
                spec.z_order_by = z_order_by;
            }
            if let Some(description) = description {
                spec.description = description;
            }
            if let Some(bytes) = target_file_size_bytes {
                spec.target_file_size_bytes = bytes;
            }
            if let Some(subject_columns) = self.subject_columns {
                spec.subject_columns = subject_columns;
            }
            (spec, added)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, column_type: &str) -> RawColumn {
        RawColumn {
            name: name.to_owned(),
            column_type: column_type.to_owned(),
            nullable: None,
        }
    }

    /// A valid request: partitioned by day, z-ordered by user, with event time.
    fn request() -> TableRequest {
        TableRequest {
            zone: "silver".to_owned(),
            name: "events".to_owned(),
            columns: vec![
                column("id", "long"),
                column("user_id", "string"),
                column("ts", "timestamp"),
                column("day", "date"),
                column("amount", "decimal(10,2)"),
                column("score", "double"),
                column("payload", "binary"),
            ],
            partition_by: vec!["day".to_owned()],
            event_time_column: Some("ts".to_owned()),
            z_order_by: vec!["user_id".to_owned()],
            description: Some("Click events".to_owned()),
            target_file_size_bytes: None,
            subject_columns: vec!["user_id".to_owned()],
        }
    }

    fn spec() -> TableSpec {
        request().validate().expect("valid request")
    }

    fn fields(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    /// The fields a request with `edit` applied is refused on.
    fn refused(edit: impl FnOnce(&mut TableRequest)) -> Vec<Violation> {
        let mut req = request();
        edit(&mut req);
        req.validate().expect_err("refused")
    }

    fn change_refused(change: TableChange) -> Vec<Violation> {
        change.apply(&spec()).expect_err("refused")
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn table_names() {
        let longest = format!("a{}", "b".repeat(62));
        for good in [
            "a",
            "events",
            "t1",
            "a_b_c",
            "x9_",
            longest.as_str(),
            "defaults",
            "systems",
        ] {
            let name = TableName::parse(good).expect(good);
            assert_eq!(name.as_str(), good);
            assert_eq!(name.to_string(), good);
        }
        let too_long = format!("a{}", "b".repeat(63));
        for bad in [
            "",
            "1abc",
            "_abc",
            "Abc",
            "abC",
            "a-b",
            "a b",
            "a.b",
            "café",
            too_long.as_str(),
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
        for reserved in RESERVED_TABLE_NAMES {
            let message = TableName::parse(reserved).expect_err(reserved);
            assert!(message.contains("reserved"), "{message}");
        }
    }

    #[test]
    fn table_name_serializes_as_a_string() {
        let name = TableName::parse("events").expect("valid");
        assert_eq!(serde_json::to_string(&name).expect("json"), "\"events\"");
        let back: TableName = serde_json::from_str("\"events\"").expect("json");
        assert_eq!(back, name);
    }

    #[test]
    fn column_names_have_no_reserved_list() {
        for good in ["default", "system", "information_schema", "a", "x_1"] {
            assert!(validate_column_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "A", "a-b", "a b", &"a".repeat(64)] {
            assert!(validate_column_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_column_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn column_types_round_trip() {
        for name in [
            "string",
            "long",
            "integer",
            "short",
            "byte",
            "double",
            "float",
            "boolean",
            "binary",
            "date",
            "timestamp",
            "decimal(1,0)",
            "decimal(10,2)",
            "decimal(38,38)",
            "decimal(38,0)",
        ] {
            let parsed = ColumnType::parse(name).expect(name);
            assert_eq!(parsed.to_string(), name);
            let json = serde_json::to_string(&parsed).expect("json");
            assert_eq!(json, format!("\"{name}\""));
            let back: ColumnType = serde_json::from_str(&json).expect("json");
            assert_eq!(back, parsed);
        }
    }

    #[test]
    fn decimal_spacing_is_canonicalized() {
        let parsed = ColumnType::parse("decimal(10,  2)").expect("spaces after the comma");
        assert_eq!(
            parsed,
            ColumnType::Decimal {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(parsed.to_string(), "decimal(10,2)");
    }

    #[test]
    fn decimal_bounds() {
        for bad in [
            "decimal(0,0)",
            "decimal(39,0)",
            "decimal(300,0)",
            "decimal(99999999999,0)",
            "decimal(5,6)",
            "decimal(38,39)",
            "decimal(10,256)",
        ] {
            let message = ColumnType::parse(bad).expect_err(bad);
            assert!(
                message.contains("precision") || message.contains("scale"),
                "{bad}: {message}"
            );
        }
        for malformed in [
            "decimal",
            "decimal()",
            "decimal(10)",
            "decimal(10,)",
            "decimal(,2)",
            "decimal( 10,2)",
            "decimal(10 ,2)",
            "decimal(10,2 )",
            "decimal(+10,2)",
            "decimal(10,-1)",
            "decimal(10,2,1)",
            "decimal(10,2",
            "decimal(10.5,2)",
        ] {
            assert!(ColumnType::parse(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn unknown_types_list_the_known_ones() {
        for bad in [
            "int",
            "STRING",
            "Long",
            " long",
            "long ",
            "varchar",
            "",
            "Decimal(10,2)",
        ] {
            let message = ColumnType::parse(bad).expect_err(bad);
            assert!(message.contains("string, long, integer"), "{message}");
            assert!(message.contains("decimal(p,s)"), "{message}");
        }
        let error = serde_json::from_str::<ColumnType>("\"int\"").expect_err("unknown");
        assert!(error.to_string().contains("known types"), "{error}");
    }

    #[test]
    fn column_spec_serde() {
        let spec: ColumnSpec = serde_json::from_str(r#"{"name":"a","type":"decimal(5, 1)"}"#).expect("json");
        assert_eq!(
            spec,
            ColumnSpec {
                name: "a".to_owned(),
                column_type: ColumnType::Decimal {
                    precision: 5,
                    scale: 1
                },
                nullable: true,
            }
        );
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"name": "a", "type": "decimal(5,1)", "nullable": true})
        );
        assert!(serde_json::from_str::<ColumnSpec>(r#"{"name":"a","type":"int"}"#).is_err());
    }

    #[test]
    fn a_valid_request_passes() {
        let spec = spec();
        assert_eq!(spec.zone, Zone::Silver);
        assert_eq!(spec.name.as_str(), "events");
        assert_eq!(spec.columns.len(), 7);
        assert_eq!(
            spec.columns[4],
            ColumnSpec {
                name: "amount".to_owned(),
                column_type: ColumnType::Decimal {
                    precision: 10,
                    scale: 2
                },
                nullable: true,
            }
        );
        assert_eq!(spec.partition_by, strings(&["day"]));
        assert_eq!(spec.z_order_by, strings(&["user_id"]));
        assert_eq!(spec.event_time_column.as_deref(), Some("ts"));
        assert_eq!(spec.description.as_deref(), Some("Click events"));
        assert_eq!(spec.target_file_size_bytes, DEFAULT_TARGET_FILE_SIZE);
        let json = serde_json::to_string(&spec).expect("json");
        let back: TableSpec = serde_json::from_str(&json).expect("json");
        assert_eq!(back, spec);
    }

    #[test]
    fn request_deserializes_with_defaults() {
        let req: TableRequest = serde_json::from_str(
            r#"{"zone":"gold","name":"t","columns":[{"name":"a","type":"long","nullable":false}]}"#,
        )
        .expect("json");
        assert!(req.partition_by.is_empty() && req.z_order_by.is_empty());
        let spec = req.validate().expect("valid");
        assert_eq!(spec.zone, Zone::Gold);
        assert!(!spec.columns[0].nullable);
        assert_eq!(spec.event_time_column, None);
        assert_eq!(spec.description, None);
    }

    #[test]
    fn minimal_and_every_zone() {
        for zone in Zone::ALL {
            let spec = TableRequest {
                zone: zone.as_str().to_owned(),
                name: "t".to_owned(),
                columns: vec![column("a", "string")],
                partition_by: vec![],
                event_time_column: None,
                z_order_by: vec![],
                description: None,
                target_file_size_bytes: None,
                subject_columns: vec![],
            }
            .validate()
            .expect("valid");
            assert_eq!(spec.zone, zone);
        }
    }

    #[test]
    fn zone_and_name() {
        for bad in ["platinum", "", "Bronze"] {
            let errors = refused(|r| r.zone = bad.to_owned());
            assert_eq!(fields(&errors), ["zone"]);
            assert!(errors[0].message.contains("bronze, silver, gold"));
        }
        assert_eq!(fields(&refused(|r| r.name = "Events".to_owned())), ["name"]);
        let errors = refused(|r| r.name = "system".to_owned());
        assert_eq!(fields(&errors), ["name"]);
        assert!(errors[0].message.contains("reserved"));
    }

    #[test]
    fn column_count() {
        let errors = refused(|r| {
            r.columns.clear();
            r.partition_by.clear();
            r.z_order_by.clear();
            r.event_time_column = None;
            r.subject_columns.clear();
        });
        assert_eq!(fields(&errors), ["columns"]);
        let many = |n: usize| {
            let mut req = request();
            req.columns = (0..n).map(|i| column(&format!("c{i}"), "long")).collect();
            req.partition_by.clear();
            req.z_order_by.clear();
            req.event_time_column = None;
            req.subject_columns.clear();
            req.validate()
        };
        assert_eq!(
            many(MAX_COLUMNS).expect("at the limit").columns.len(),
            MAX_COLUMNS
        );
        assert_eq!(fields(&many(MAX_COLUMNS + 1).expect_err("over")), ["columns"]);
    }

    #[test]
    fn column_names_and_types() {
        let errors = refused(|r| r.columns[2].name = "Ts".to_owned());
        // The event-time column no longer exists either.
        assert_eq!(fields(&errors), ["columns[2].name", "event_time_column"]);
        let errors = refused(|r| r.columns.push(column("id", "string")));
        assert_eq!(fields(&errors), ["columns[7].name"]);
        assert_eq!(errors[0].message, "duplicate column name id");
        let errors = refused(|r| r.columns[1].column_type = "varchar".to_owned());
        assert_eq!(fields(&errors), ["columns[1].type"]);
        let errors = refused(|r| r.columns[4].column_type = "decimal(40,2)".to_owned());
        assert_eq!(fields(&errors), ["columns[4].type"]);
    }

    #[test]
    fn references_to_a_column_with_a_bad_type_are_not_reported_twice() {
        let errors = refused(|r| {
            r.columns[2].column_type = "datetime".to_owned();
            r.columns[3].column_type = "day".to_owned();
        });
        assert_eq!(fields(&errors), ["columns[2].type", "columns[3].type"]);
    }

    #[test]
    fn partition_by() {
        let errors = refused(|r| r.partition_by = strings(&["day", "nope", "day"]));
        assert_eq!(fields(&errors), ["partition_by[1]", "partition_by[2]"]);
        assert_eq!(errors[0].message, "no column named nope");
        assert!(errors[1].message.contains("twice"));
        for name in ["score", "payload"] {
            let errors = refused(|r| r.partition_by = vec![name.to_owned()]);
            assert_eq!(fields(&errors), ["partition_by[0]"]);
            assert!(errors[0].message.contains("not usable as partition values"));
        }
        let errors = refused(|r| {
            r.columns.push(column("f", "float"));
            r.partition_by = strings(&["day", "f"]);
        });
        assert_eq!(fields(&errors), ["partition_by[1]"]);
        let mut req = request();
        req.partition_by = strings(&["day", "id", "amount"]);
        let spec = req.validate().expect("partitionable types");
        assert_eq!(spec.partition_by, strings(&["day", "id", "amount"]));
    }

    #[test]
    fn some_column_must_not_be_a_partition_column() {
        let errors = refused(|r| {
            r.columns = vec![column("a", "string"), column("b", "date")];
            r.partition_by = strings(&["a", "b", "a"]);
            r.z_order_by.clear();
            r.event_time_column = None;
            r.subject_columns.clear();
        });
        assert_eq!(fields(&errors), ["partition_by[2]", "partition_by"]);
        assert_eq!(
            errors[1].message,
            "a table needs at least one column that is not a partition column"
        );
    }

    #[test]
    fn z_order_by() {
        let errors = refused(|r| r.z_order_by = strings(&["user_id", "user_id", "ghost", "day"]));
        assert_eq!(
            fields(&errors),
            ["z_order_by[1]", "z_order_by[2]", "z_order_by[3]"]
        );
        assert!(errors[2].message.contains("partition column"));
        let mut req = request();
        req.z_order_by = strings(&["user_id", "id", "ts"]);
        assert_eq!(
            req.validate().expect("valid").z_order_by,
            strings(&["user_id", "id", "ts"])
        );
    }

    #[test]
    fn event_time_column() {
        assert_eq!(
            fields(&refused(|r| r.event_time_column = Some("ghost".to_owned()))),
            ["event_time_column"]
        );
        let errors = refused(|r| r.event_time_column = Some("id".to_owned()));
        assert_eq!(fields(&errors), ["event_time_column"]);
        assert!(errors[0].message.contains("timestamp or date"));
        let mut req = request();
        req.event_time_column = Some("day".to_owned());
        assert!(req.validate().is_ok(), "a date is an event time");
    }

    #[test]
    fn description() {
        let mut req = request();
        req.description = Some("é".repeat(MAX_DESCRIPTION_CHARS));
        assert!(req.validate().is_ok(), "characters, not bytes");
        let errors = refused(|r| r.description = Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)));
        assert_eq!(fields(&errors), ["description"]);
        let mut req = request();
        req.description = Some(String::new());
        assert_eq!(req.validate().expect("valid").description, None);
    }

    #[test]
    fn target_file_size() {
        for good in [MIN_TARGET_FILE_SIZE, 64 * MIB, MAX_TARGET_FILE_SIZE] {
            let mut req = request();
            req.target_file_size_bytes = Some(good);
            assert_eq!(req.validate().expect("valid").target_file_size_bytes, good);
        }
        for bad in [0, MIN_TARGET_FILE_SIZE - 1, MAX_TARGET_FILE_SIZE + 1, u64::MAX] {
            let errors = refused(|r| r.target_file_size_bytes = Some(bad));
            assert_eq!(fields(&errors), ["target_file_size_bytes"]);
            assert!(errors[0].message.contains("1048576 to 1073741824"));
        }
        assert_eq!(DEFAULT_TARGET_FILE_SIZE, 134_217_728);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = TableRequest {
            zone: "mud".to_owned(),
            name: "default".to_owned(),
            columns: vec![
                column("ok", "string"),
                column("Bad", "long"),
                column("ok", "nope"),
                column("f", "float"),
            ],
            partition_by: strings(&["f", "missing"]),
            event_time_column: Some("ok".to_owned()),
            z_order_by: strings(&["f", "f"]),
            description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            target_file_size_bytes: Some(1),
            subject_columns: vec![],
        }
        .validate()
        .expect_err("refused");
        assert_eq!(
            fields(&errors),
            [
                "zone",
                "name",
                "columns[1].name",
                "columns[2].name",
                "columns[2].type",
                "partition_by[0]",
                "partition_by[1]",
                "z_order_by[0]",
                "z_order_by[1]",
                "event_time_column",
                "description",
                "target_file_size_bytes",
            ]
        );
    }

    fn add(columns: Vec<RawColumn>) -> TableChange {
        TableChange {
            add_columns: columns,
            ..TableChange::default()
        }
    }

    #[test]
    fn subject_columns_name_text_or_integer_columns() {
        assert_eq!(spec().subject_columns, strings(&["user_id"]));
        let mut req = request();
        req.subject_columns = strings(&["user_id", "id"]);
        assert_eq!(
            req.validate().expect("valid").subject_columns,
            strings(&["user_id", "id"])
        );
        for (subjects, field, needle) in [
            (strings(&["nope"]), "subject_columns[0]", "no column named nope"),
            (
                strings(&["user_id", "user_id"]),
                "subject_columns[1]",
                "listed twice",
            ),
            (strings(&["ts"]), "subject_columns[0]", "ts is timestamp"),
            (strings(&["score"]), "subject_columns[0]", "string or an integer"),
            (strings(&["payload"]), "subject_columns[0]", "binary"),
        ] {
            let errors = refused(|r| r.subject_columns = subjects.clone());
            assert_eq!(fields(&errors), [field], "{subjects:?}");
            assert!(errors[0].message.contains(needle), "{}", errors[0].message);
        }
        let too_many = refused(|r| {
            r.columns = (0..=MAX_SUBJECT_COLUMNS)
                .map(|i| column(&format!("c{i}"), "long"))
                .collect();
            r.partition_by.clear();
            r.z_order_by.clear();
            r.event_time_column = None;
            r.subject_columns = r.columns.iter().map(|c| c.name.clone()).collect();
        });
        assert_eq!(fields(&too_many), ["subject_columns"]);
    }

    #[test]
    fn subject_columns_change_replaces_and_may_name_added_columns() {
        let change = |subjects: &[&str], add_columns: Vec<RawColumn>| TableChange {
            add_columns,
            subject_columns: Some(strings(subjects)),
            ..TableChange::default()
        };
        let (new, _) = change(&["email"], vec![column("email", "string")])
            .apply(&spec())
            .expect("valid");
        assert_eq!(new.subject_columns, strings(&["email"]));
        let (cleared, _) = change(&[], vec![]).apply(&spec()).expect("valid");
        assert!(
            cleared.subject_columns.is_empty(),
            "an empty list uncovers the table"
        );
        let errors = change_refused(change(&["amount"], vec![]));
        assert_eq!(fields(&errors), ["subject_columns[0]"]);
        // Stored specs from before erasures read back uncovered.
        let mut old = serde_json::to_value(spec()).expect("json");
        old.as_object_mut().expect("object").remove("subject_columns");
        let back: TableSpec = serde_json::from_value(old).expect("old spec");
        assert!(back.subject_columns.is_empty());
    }

    #[test]
    fn adding_columns() {
        let mut extra = column("country", "string");
        extra.nullable = Some(true);
        let (new, added) = add(vec![extra, column("price", "decimal(12, 4)")])
            .apply(&spec())
            .expect("valid");
        assert_eq!(added.len(), 2);
        assert_eq!(added[1].column_type.to_string(), "decimal(12,4)");
        assert!(added.iter().all(|c| c.nullable));
        assert_eq!(new.columns.len(), 9);
        assert_eq!(&new.columns[7..], added.as_slice());
        let mut expected = spec();
        expected.columns.extend(added);
        assert_eq!(new, expected, "nothing else changes");
    }

    #[test]
    fn added_columns_are_checked() {
        let mut required = column("c", "long");
        required.nullable = Some(false);
        let errors = change_refused(add(vec![
            column("id", "long"),
            column("Bad", "long"),
            column("new", "int"),
            column("twin", "long"),
            column("twin", "string"),
            required,
        ]));
        assert_eq!(
            fields(&errors),
            [
                "add_columns[0].name",
                "add_columns[1].name",
                "add_columns[2].type",
                "add_columns[4].name",
                "add_columns[5].nullable",
            ]
        );
        assert_eq!(errors[0].message, "column id already exists");
        assert_eq!(errors[3].message, "duplicate column name twin");
        assert_eq!(
            errors[4].message,
            "added columns must be nullable: existing rows have no value"
        );
    }

    #[test]
    fn adding_past_the_column_limit() {
        let columns = (0..MAX_COLUMNS - 7)
            .map(|i| column(&format!("c{i}"), "long"))
            .collect();
        assert!(add(columns).apply(&spec()).is_ok(), "exactly at the limit");
        let columns = (0..MAX_COLUMNS - 6)
            .map(|i| column(&format!("c{i}"), "long"))
            .collect();
        assert_eq!(fields(&change_refused(add(columns))), ["add_columns"]);
    }

    #[test]
    fn unsupported_changes_are_refused_clearly() {
        let errors = change_refused(TableChange {
            drop_columns: Some(strings(&["score"])),
            alter_columns: Some(serde_json::json!({"id": "string"})),
            ..TableChange::default()
        });
        assert_eq!(fields(&errors), ["drop_columns", "alter_columns"]);
        assert!(errors[0].message.contains("column mapping"));
        assert_eq!(errors[1].message, "changing a column's type is not supported yet");
    }

    #[test]
    fn an_empty_change_is_refused() {
        for change in [
            TableChange::default(),
            TableChange {
                drop_columns: Some(vec![]),
                ..TableChange::default()
            },
        ] {
            let errors = change_refused(change);
            assert_eq!(fields(&errors), ["body"]);
            assert_eq!(errors[0].message, "nothing to change");
        }
        let parsed: TableChange = serde_json::from_str("{}").expect("json");
        assert_eq!(parsed, TableChange::default());
    }

    #[test]
    fn changing_z_order() {
        let change = TableChange {
            add_columns: vec![column("region", "string")],
            z_order_by: Some(strings(&["region", "id"])),
            ..TableChange::default()
        };
        let (new, _) = change.apply(&spec()).expect("may z-order by an added column");
        assert_eq!(new.z_order_by, strings(&["region", "id"]));
        let (new, added) = TableChange {
            z_order_by: Some(vec![]),
            ..TableChange::default()
        }
        .apply(&spec())
        .expect("turns z-ordering off");
        assert!(new.z_order_by.is_empty() && added.is_empty());
        let errors = change_refused(TableChange {
            z_order_by: Some(strings(&["day", "ghost", "id", "id"])),
            ..TableChange::default()
        });
        assert_eq!(
            fields(&errors),
            ["z_order_by[0]", "z_order_by[1]", "z_order_by[3]"]
        );
    }

    #[test]
    fn changing_description_and_target_size() {
        let (new, _) = TableChange {
            description: Some("Clicks".to_owned()),
            target_file_size_bytes: Some(MAX_TARGET_FILE_SIZE),
            ..TableChange::default()
        }
        .apply(&spec())
        .expect("valid");
        assert_eq!(new.description.as_deref(), Some("Clicks"));
        assert_eq!(new.target_file_size_bytes, MAX_TARGET_FILE_SIZE);
        let (new, _) = TableChange {
            description: Some(String::new()),
            ..TableChange::default()
        }
        .apply(&spec())
        .expect("clears");
        assert_eq!(new.description, None);
        let errors = change_refused(TableChange {
            description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            target_file_size_bytes: Some(MAX_TARGET_FILE_SIZE + 1),
            ..TableChange::default()
        });
        assert_eq!(fields(&errors), ["description", "target_file_size_bytes"]);
    }

    #[test]
    fn every_change_problem_is_reported_at_once() {
        let mut required = column("r", "date");
        required.nullable = Some(false);
        let errors = change_refused(TableChange {
            add_columns: vec![column("ts", "timestamp"), required],
            z_order_by: Some(strings(&["missing"])),
            description: Some("x".repeat(MAX_DESCRIPTION_CHARS + 1)),
            target_file_size_bytes: Some(0),
            subject_columns: Some(strings(&["ts"])),
            drop_columns: Some(strings(&["id"])),
            alter_columns: Some(serde_json::json!([])),
        });
        assert_eq!(
            fields(&errors),
            [
                "drop_columns",
                "alter_columns",
                "add_columns[0].name",
                "add_columns[1].nullable",
                "z_order_by[0]",
                "subject_columns[0]",
                "description",
                "target_file_size_bytes",
            ]
        );
    }

    #[test]
    fn change_deserializes_refused_fields() {
        let change: TableChange =
            serde_json::from_str(r#"{"drop_columns":["a"],"alter_columns":{"a":"long"},"add_columns":[{"name":"x","type":"long"}]}"#)
                .expect("json");
        assert_eq!(change.drop_columns, Some(strings(&["a"])));
        assert!(change.alter_columns.is_some());
        assert_eq!(change.add_columns, vec![column("x", "long")]);
    }
}
