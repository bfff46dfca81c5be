//! Write intents: the fence placement migrations wait behind.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::tenants::tenant;
use super::{BACKEND, Store, ts, uid};
use crate::store::{Backend, FenceStore, StoreError};
use crate::tenant::{Tenant, TenantId};

#[async_trait]
impl FenceStore for Store {
    async fn begin_write(
        &self,
        tenant_id: &TenantId,
        writer: &str,
        id: Uuid,
        until: DateTime<Utc>,
    ) -> Result<Option<Tenant>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The intent first: on SQLite the transaction takes the single write lock here, so a
        // migration's status change is wholly before or after it.
        sqlx::query(
            "INSERT INTO write_intents (id, tenant_id, writer, started_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(uid(id))
        .bind(tenant_id.as_str())
        .bind(writer)
        .bind(ts(crate::now()))
        .bind(ts(until))
        .execute(&mut *tx)
        .await?;
        // On PostgreSQL the row lock makes a migration's status update wait for this
        // transaction, so it then sees the intent.
        let read = match BACKEND {
            Backend::Postgres => "SELECT * FROM tenants WHERE id = $1 FOR SHARE",
            Backend::Sqlite => "SELECT * FROM tenants WHERE id = $1",
        };
        let row = sqlx::query(read)
            .bind(tenant_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let found = tenant(&row)?;
        if found.status != crate::tenant::TenantStatus::Ready {
            // The writer will refuse (migrating, deleting...): no intent is kept, so none can
            // outlive a crash here and hold back the migration that resumes after it.
            tx.rollback().await?;
            return Ok(Some(found));
        }
        tx.commit().await?;
        Ok(Some(found))
    }

    async fn end_write(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM write_intents WHERE id = $1")
            .bind(uid(id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn live_writes(&self, tenant_id: &TenantId, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM write_intents WHERE tenant_id = $1 AND expires_at > $2) \
             + (SELECT COUNT(*) FROM maintenance_runs WHERE tenant_id = $1 AND status = 'running' \
             AND lease_expires_at > $2) \
             + (SELECT COUNT(*) FROM pipeline_runs WHERE tenant_id = $1 AND status = 'running' \
             AND lease_expires_at > $2)",
        )
        .bind(tenant_id.as_str())
        .bind(ts(now))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
