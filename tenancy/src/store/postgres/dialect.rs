//! PostgreSQL has native TIMESTAMPTZ and UUID columns, so the shared queries in `../sql` bind
//! and read both as they are.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::store::StoreError;

pub(super) type Db = sqlx::Postgres;
pub(super) const BACKEND: crate::store::Backend = crate::store::Backend::Postgres;
pub(super) type DbRow = sqlx::postgres::PgRow;
pub(super) use super::PgStore as Store;

/// The SQL expression reading the text of `field` from the JSON object in `column` (stored as
/// TEXT on both backends). Both arguments are identifiers from the code, never input.
pub(super) fn json_text(column: &str, field: &str) -> String {
    format!("(CAST({column} AS JSONB) ->> '{field}')")
}

/// A timestamp as bound to a query.
pub(super) fn ts(at: DateTime<Utc>) -> DateTime<Utc> {
    at
}

/// A UUID as bound to a query.
pub(super) fn uid(id: Uuid) -> Uuid {
    id
}

pub(super) fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(row.try_get(column)?)
}

pub(super) fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(row.try_get(column)?)
}

pub(super) fn uuid(row: &DbRow, column: &str) -> Result<Uuid, StoreError> {
    Ok(row.try_get(column)?)
}

pub(super) fn opt_uuid(row: &DbRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    Ok(row.try_get(column)?)
}
