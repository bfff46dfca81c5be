//! PostgreSQL has native TIMESTAMPTZ and UUID columns, so the shared queries in `../sql` bind
//! and read both as they are.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::sql::{Bind, Many};
use crate::store::StoreError;

pub(super) type Db = sqlx::Postgres;
pub(super) const BACKEND: crate::store::Backend = crate::store::Backend::Postgres;
/// Audit transactions under way at once. PostgreSQL flushes the WAL of concurrent commits
/// together, so an event that arrives while one is flushing need not wait for that
/// transaction to end before its own starts. Each holds a pool connection while it runs.
pub(super) const AUDIT_WRITERS: usize = 3;
pub(super) type DbRow = sqlx::postgres::PgRow;
pub(super) use super::PgStore as Store;

/// The SQL expression reading the text of `field` from the JSON object in `column` (stored as
/// TEXT on both backends). Both arguments are identifiers from the code, never input.
pub(super) fn json_text(column: &str, field: &str) -> String {
    format!("(CAST({column} AS JSONB) ->> '{field}')")
}

/// The rows of a large read (see [`Many`]), each decoded as a `T` (a tuple of its columns).
/// Here they stream as rows: PostgreSQL's wire protocol delivers them in batches, and
/// aggregating them into JSON as on SQLite was slower (measured: 165 to 252 ms against 113 for
/// 40,000 worker summaries).
pub(super) async fn fetch_many<T: ManyRow>(
    pool: &sqlx::Pool<Db>,
    many: &Many<'_>,
) -> Result<Vec<T>, StoreError> {
    let sql = many.select();
    let mut query = sqlx::query_as::<_, T>(&sql);
    for bind in many.binds {
        query = match bind {
            Bind::Text(v) => query.bind(v.clone()),
            Bind::Id(v) => query.bind(*v),
            Bind::Int(v) => query.bind(*v),
        };
    }
    Ok(query.fetch_all(pool).await?)
}

/// Rows per page of a paged large read: one page here. Rows stream and are decoded as they
/// arrive, so memory stays flat; pages cost a scan each (measured: the reconcile loop's input
/// reads went from 58 to 138 ms with pages of 2,000).
pub(super) const MANY_PAGE_ROWS: i64 = i64::MAX;

/// What a row of [`fetch_many`] decodes into: here, from the row's columns.
pub(super) trait ManyRow: for<'r> sqlx::FromRow<'r, DbRow> + Send + Unpin {}
impl<T: for<'r> sqlx::FromRow<'r, DbRow> + Send + Unpin> ManyRow for T {}

/// A timestamp column as a row of [`fetch_many`] holds it: decoded from TIMESTAMPTZ.
pub(super) type ManyTime = DateTime<Utc>;

/// A [`ManyTime`] as a timestamp.
pub(super) fn many_time(value: ManyTime, _column: &str) -> Result<DateTime<Utc>, StoreError> {
    Ok(value)
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
