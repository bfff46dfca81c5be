//! How SQLite stores what PostgreSQL has native types for: timestamps are INTEGER
//! microseconds since the Unix epoch (they compare and sort numerically) and UUIDs are their
//! hyphenated text (which sorts as the UUID does). The shared queries in `../sql` bind through
//! [`ts`] and [`uid`] and read through [`time`], [`opt_time`] and [`uuid`].

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::sql::{Bind, Many};
use crate::store::StoreError;

pub(super) type Db = sqlx::Sqlite;
pub(super) const BACKEND: crate::store::Backend = crate::store::Backend::Sqlite;
/// SQLite takes one writer at a time: a second audit transaction would only wait in its busy
/// handler.
pub(super) const AUDIT_WRITERS: usize = 1;
pub(super) type DbRow = sqlx::sqlite::SqliteRow;
pub(super) use super::SqliteStore as Store;

/// The SQL expression reading the text of `field` from the JSON object in `column` (stored as
/// TEXT on both backends). Both arguments are identifiers from the code, never input.
pub(super) fn json_text(column: &str, field: &str) -> String {
    format!("json_extract({column}, '$.{field}')")
}

/// The rows of a large read (see [`Many`]), each decoded as a `T` (a tuple of its columns).
///
/// Here the rows are aggregated into one JSON text, one array per row, and parsed in one pass:
/// sqlx runs each SQLite connection on a thread of its own and hands every row over a channel,
/// and waking the reading task for each row cost more than reading it (229 of a 440 ms
/// reconcile loop went to 40,000 worker summaries; README, Measurements: the reconcile loop).
pub(super) async fn fetch_many<T: ManyRow>(
    pool: &sqlx::Pool<Db>,
    many: &Many<'_>,
) -> Result<Vec<T>, StoreError> {
    // The aggregate orders its rows itself: SQLite may flatten the subquery and drop its order.
    let sql = format!(
        "SELECT json_group_array(json_array({}) ORDER BY {}) AS r FROM ({}) AS m",
        many.columns.join(", "),
        many.order,
        many.select()
    );
    let mut query = sqlx::query(&sql);
    for bind in many.binds {
        query = match bind {
            Bind::Text(v) => query.bind(v.clone()),
            Bind::Id(v) => query.bind(v.map(uid)),
            Bind::Int(v) => query.bind(*v),
        };
    }
    let text: String = query.fetch_one(pool).await?.try_get("r")?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Corrupt(format!("rows of {} read as JSON do not decode: {e}", many.from)))
}

/// Rows per page of a paged large read. Small, because here a page is one JSON text built and
/// copied on a pooled connection's own thread, and glibc keeps what a thread frees for that
/// thread: pages of a couple of hundred kilobytes keep every connection's share small. Every
/// row at once (30,000 due runs: 3 MB of text, more while SQLite builds it) grew the reconcile
/// loop's memory by 85 MiB.
pub(super) const MANY_PAGE_ROWS: i64 = 1_000;

/// What a row of [`fetch_many`] decodes into: here, from its JSON array.
pub(super) trait ManyRow: serde::de::DeserializeOwned + Send {}
impl<T: serde::de::DeserializeOwned + Send> ManyRow for T {}

/// A timestamp column as a row of [`fetch_many`] holds it: microseconds since the epoch, as
/// stored.
pub(super) type ManyTime = i64;

/// A [`ManyTime`] as a timestamp.
pub(super) fn many_time(value: ManyTime, column: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(value).ok_or_else(|| StoreError::Corrupt(format!("{column} = {value}")))
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
    many_time(row.try_get(column)?, column)
}

pub(super) fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value.map(|v| many_time(v, column)).transpose()
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
