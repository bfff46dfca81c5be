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
mod metadata;
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

use super::dialect::{BACKEND, Db, DbRow, Store, json_text, opt_time, opt_uuid, time, ts, uid, uuid};
use crate::store::StoreError;
use crate::tenant::TenantId;
pub(super) use audit::audit_queue;
use audit::insert_audit;

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} = {value:?}"))
}

fn u32_column(row: &DbRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
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

/// Converts each row of `rows` as it arrives and collects the results: the driver's copies of
/// a few rows are alive at a time, never all of them as with `fetch_all`. For the large reads
/// the reconciler makes on every loop. On SQLite those copies are allocated on the pooled
/// connection's own thread, and glibc keeps what a thread frees in that thread's arena for
/// its next allocations, so a loop that held a whole result set's copies at once on each of
/// the pool's connections in turn kept that much memory per connection (README, Measurements:
/// the reconcile loop's memory).
async fn collect_rows<T, S>(
    mut rows: S,
    mut convert: impl FnMut(&DbRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    S: futures_util::Stream<Item = Result<DbRow, sqlx::Error>> + Unpin,
{
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        out.push(convert(&row?)?);
    }
    Ok(out)
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
