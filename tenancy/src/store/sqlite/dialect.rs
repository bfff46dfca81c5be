//! How SQLite stores what PostgreSQL has native types for: timestamps are INTEGER
//! microseconds since the Unix epoch (they compare and sort numerically) and UUIDs are their
//! hyphenated text (which sorts as the UUID does). The shared queries in `../sql` bind through
//! [`ts`] and [`uid`] and read through [`time`], [`opt_time`] and [`uuid`].

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::store::StoreError;

pub(super) type Db = sqlx::Sqlite;
pub(super) const BACKEND: crate::store::Backend = crate::store::Backend::Sqlite;
pub(super) type DbRow = sqlx::sqlite::SqliteRow;
pub(super) use super::SqliteStore as Store;

/// The SQL expression reading the text of `field` from the JSON object in `column` (stored as
/// TEXT on both backends). Both arguments are identifiers from the code, never input.
pub(super) fn json_text(column: &str, field: &str) -> String {
    format!("json_extract({column}, '$.{field}')")
}

/// A timestamp as bound to a query.
pub(super) fn ts(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A UUID as bound to a query.
pub(super) fn uid(id: Uuid) -> String {
    id.to_string()
}

pub(super) fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value).ok_or_else(|| StoreError::Corrupt(format!("{column} = {value}")))
}

pub(super) fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| {
            DateTime::from_timestamp_micros(v).ok_or_else(|| StoreError::Corrupt(format!("{column} = {v}")))
        })
        .transpose()
}

pub(super) fn uuid(row: &DbRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} = {text:?}")))
}

pub(super) fn opt_uuid(row: &DbRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|_| StoreError::Corrupt(format!("{column} = {t:?}"))))
        .transpose()
}
