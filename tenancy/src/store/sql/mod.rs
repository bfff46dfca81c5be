//! Every query and row mapping of the metadata store, written once.
//!
//! Each backend compiles this module tree against its own `dialect` module (`#[path]` in
//! `sqlite/mod.rs` and `postgres/mod.rs`), so rustc checks every query's binds and row
//! mappings for both databases. The SQL itself is portable: `$n` placeholders, which SQLite
//! also accepts, `ON CONFLICT ... DO UPDATE`, and BIGINT / C-collated TEXT columns on both
//! (migration 0010). What differs lives in the dialect: how a timestamp and a UUID are stored
//! ([`ts`], [`uid`], [`time`], [`opt_time`], [`uuid`]).
//!
//! A new store method goes in the file of its entity here, once; nothing else is needed for
//! the second backend.

mod audit;
mod erasures;
mod fence;
mod grants;
mod metadata;
mod pipelines;
mod provisioning;
mod push_keys;
mod shares;
mod streams;
mod tables;
mod tenants;
mod tokens;
mod volumes;
mod workers;

use sqlx::{Row, Transaction};

use super::dialect::{
    AUDIT_WRITERS, BACKEND, Db, DbRow, MANY_PAGE_ROWS, ManyRow, ManyTime, Store, fetch_many, json_text,
    many_time, opt_time, opt_uuid, time, ts, uid, uuid,
};
use crate::store::StoreError;
use crate::tenant::TenantId;
pub(super) use audit::audit_queue;
use audit::insert_audit;

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} = {value:?}"))
}

fn u32_column(row: &DbRow, column: &str) -> Result<u32, StoreError> {
    u32_value(row.try_get(column)?, column)
}

/// A count stored as BIGINT, read back as the `u32` it was written from.
fn u32_value(value: i64, column: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

/// Takes the tenant row's write lock, so concurrent creates under a per-tenant quota are
/// serialised and a count read afterwards cannot be overtaken before the insert.
async fn lock_tenant(tx: &mut Transaction<'_, Db>, tenant: &TenantId) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = $1")
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A large read the reconciler makes on every loop (tens of thousands of rows at 10,000
/// tenants), described in pieces so that each dialect's `fetch_many` chooses how its rows cross
/// the driver: `SELECT columns FROM ... ORDER BY order LIMIT limit`.
pub(super) struct Many<'a> {
    /// The columns, in the order of the tuple each row decodes into.
    pub columns: &'a [&'a str],
    /// `FROM ... [WHERE ...]`.
    pub from: &'a str,
    /// `ORDER BY` this: columns among [`Self::columns`].
    pub order: &'a str,
    /// `LIMIT` this (a placeholder).
    pub limit: &'a str,
    /// The placeholders' values, `$1` first.
    pub binds: &'a [Bind],
}

/// A value bound to a [`Many`] read.
#[derive(Clone)]
pub(super) enum Bind {
    Text(Option<String>),
    /// Bound as the dialect stores ids (see `uid`).
    Id(Option<uuid::Uuid>),
    Int(i64),
}

impl Many<'_> {
    /// The plain SELECT.
    pub(super) fn select(&self) -> String {
        format!(
            "SELECT {} {} ORDER BY {} LIMIT {}",
            self.columns.join(", "),
            self.from,
            self.order,
            self.limit
        )
    }
}

/// Every row of `SELECT columns FROM table WHERE filter`, read by [`fetch_many`] in pages of
/// the dialect's `MANY_PAGE_ROWS`, in the order of the `id` column (a UUID), the first of
/// `columns`; `key` gives a row's id.
async fn fetch_paged<T: ManyRow>(
    pool: &sqlx::Pool<Db>,
    columns: &[&str],
    table: &str,
    filter: &str,
    key: fn(&T) -> uuid::Uuid,
) -> Result<Vec<T>, StoreError> {
    let from = format!("FROM {table} WHERE ({filter}) AND ($1 IS NULL OR id > $1)");
    let mut all: Vec<T> = Vec::new();
    loop {
        let many = Many {
            columns,
            from: &from,
            order: "id",
            limit: "$2",
            binds: &[Bind::Id(all.last().map(key)), Bind::Int(MANY_PAGE_ROWS)],
        };
        let page = fetch_many::<T>(pool, &many).await?;
        let full = page.len() as i64 == MANY_PAGE_ROWS;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A row's `tenant_id` and `id` columns: the reconciler's inputs read as ids.
fn tenant_and_id(row: &DbRow) -> Result<(TenantId, uuid::Uuid), StoreError> {
    Ok((
        TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        uuid(row, "id")?,
    ))
}

fn json_column<T: serde::de::DeserializeOwned>(row: &DbRow, column: &str) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|_| corrupt(column, &text))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}
