//! Data subject erasures.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::{DbRow, Store, corrupt, insert_audit, json_column, opt_time, time, to_json, ts, uid, uuid};
use crate::audit::AuditEvent;
use crate::erasure::ErasureStatus;
use crate::store::{ErasureRecord, ErasureStore, StoreError};
use crate::tenant::TenantId;

fn erasure(row: &DbRow) -> Result<ErasureRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let pending: Option<String> = row.try_get("pending_subjects")?;
    Ok(ErasureRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        status: ErasureStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        reason: row.try_get("reason")?,
        requested_by: row.try_get("requested_by")?,
        salt: row.try_get("salt")?,
        subject_hashes: json_column(row, "subject_hashes")?,
        pending_subjects: match pending {
            Some(text) => Some(serde_json::from_str(&text).map_err(|_| corrupt("pending_subjects", "…"))?),
            None => None,
        },
        tables: json_column(row, "tables")?,
        not_covered: json_column(row, "not_covered")?,
        old_locations: json_column(row, "old_locations")?,
        error: row.try_get("error")?,
        deadline: time(row, "deadline")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        completed_at: opt_time(row, "completed_at")?,
    })
}

fn pending(e: &ErasureRecord) -> Result<Option<String>, StoreError> {
    e.pending_subjects.as_ref().map(to_json).transpose()
}

#[async_trait]
impl ErasureStore for Store {
    async fn insert_erasure(&self, e: &ErasureRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO erasures (id, tenant_id, status, reason, requested_by, salt, subject_hashes, \
             pending_subjects, tables, not_covered, error, deadline, created_at, updated_at, completed_at, \
             old_locations) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, $15)",
        )
        .bind(uid(e.id))
        .bind(e.tenant.as_str())
        .bind(e.status.as_str())
        .bind(&e.reason)
        .bind(&e.requested_by)
        .bind(&e.salt)
        .bind(to_json(&e.subject_hashes)?)
        .bind(pending(e)?)
        .bind(to_json(&e.tables)?)
        .bind(to_json(&e.not_covered)?)
        .bind(&e.error)
        .bind(ts(e.deadline))
        .bind(ts(e.created_at))
        .bind(ts(e.updated_at))
        .bind(to_json(&e.old_locations)?)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_erasure(&self, tenant: &TenantId, id: Uuid) -> Result<Option<ErasureRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM erasures WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(erasure).transpose()
    }

    async fn list_erasures(
        &self,
        tenant: &TenantId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ErasureRecord>, StoreError> {
        let rows = match before {
            Some(before) => {
                sqlx::query(
                    "SELECT * FROM erasures WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                )
                .bind(tenant.as_str())
                .bind(uid(before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM erasures WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(tenant.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(erasure).collect()
    }

    async fn unfinished_erasures(&self) -> Result<Vec<ErasureRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM erasures WHERE status NOT IN ('completed', 'failed') ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(erasure).collect()
    }

    async fn update_erasure(&self, e: &ErasureRecord, seen: &ErasureRecord) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE erasures SET status = $1, pending_subjects = $2, tables = $3, error = $4, \
             updated_at = $5, completed_at = $6, old_locations = $7 \
             WHERE id = $8 AND status = $9 AND updated_at = $10",
        )
        .bind(e.status.as_str())
        .bind(pending(e)?)
        .bind(to_json(&e.tables)?)
        .bind(&e.error)
        .bind(ts(e.updated_at))
        .bind(e.completed_at.map(ts))
        .bind(to_json(&e.old_locations)?)
        .bind(uid(e.id))
        .bind(seen.status.as_str())
        .bind(ts(seen.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() == 1)
    }

    async fn raise_erasure_floor(
        &self,
        tenant: &TenantId,
        table: Uuid,
        version: i64,
        erasure: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO erasure_floors (table_id, tenant_id, version, erasure_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (table_id) DO UPDATE SET version = excluded.version, \
             erasure_id = excluded.erasure_id, updated_at = excluded.updated_at \
             WHERE erasure_floors.version < excluded.version",
        )
        .bind(uid(table))
        .bind(tenant.as_str())
        .bind(version)
        .bind(uid(erasure))
        .bind(ts(crate::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn erasure_floor(&self, table: Uuid) -> Result<Option<i64>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM erasure_floors WHERE table_id = $1")
                .bind(uid(table))
                .fetch_optional(&self.pool)
                .await?;
        Ok(version)
    }
}
