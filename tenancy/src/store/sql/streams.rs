//! Ingestion streams.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::{
    DbRow, Store, corrupt, fetch_paged, insert_audit, is_unique_violation, json_column, json_text,
    lock_tenant, time, to_json, ts, uid, uuid,
};
use crate::audit::AuditEvent;
use crate::store::{StoreError, StreamRecord, StreamStore};
use crate::stream::{OnError, StreamName};
use crate::tenant::TenantId;

fn stream(row: &DbRow) -> Result<StreamRecord, StoreError> {
    let on_error: String = row.try_get("on_error")?;
    Ok(StreamRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        name: StreamName::from_trusted(row.try_get::<String, _>("name")?),
        table_id: uuid(row, "table_id")?,
        table_name: row.try_get("table_name")?,
        source: json_column(row, "source")?,
        on_error: OnError::parse(&on_error).ok_or_else(|| corrupt("on_error", &on_error))?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl StreamStore for Store {
    async fn insert_stream(
        &self,
        s: &StreamRecord,
        max_streams: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, &s.tenant).await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM streams WHERE tenant_id = $1")
            .bind(s.tenant.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let taken = sqlx::query("SELECT id FROM streams WHERE tenant_id = $1 AND name = $2")
            .bind(s.tenant.as_str())
            .bind(s.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("stream {}", s.name)));
        }
        if count >= i64::from(max_streams) {
            return Err(StoreError::Quota(format!(
                "tenant {} has {count} streams and its max_streams quota is {max_streams}",
                s.tenant
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO streams (id, tenant_id, name, table_id, table_name, source, on_error, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uid(s.id))
        .bind(s.tenant.as_str())
        .bind(s.name.as_str())
        .bind(uid(s.table_id))
        .bind(&s.table_name)
        .bind(to_json(&s.source)?)
        .bind(s.on_error.as_str())
        .bind(ts(s.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("stream {}", s.name)));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_stream(&self, tenant: &TenantId, name: &str) -> Result<Option<StreamRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM streams WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stream).transpose()
    }

    async fn get_stream_by_id(&self, id: Uuid) -> Result<Option<StreamRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM streams WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stream).transpose()
    }

    async fn list_streams(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM streams WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name > $2) \
             ORDER BY name LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stream).collect()
    }

    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM streams ORDER BY tenant_id, name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stream).collect()
    }

    async fn kafka_streams(&self) -> Result<Vec<(TenantId, Uuid)>, StoreError> {
        // The source is serde's internally tagged `StreamSource`: its `type` field names the kind.
        let kafka = format!("{} = 'kafka'", json_text("source", "type"));
        Ok(
            fetch_paged::<(Uuid, String)>(&self.pool, &["id", "tenant_id"], "streams", &kafka, |s| s.0)
                .await?
                .into_iter()
                .map(|(id, tenant)| (TenantId::from_trusted(tenant), id))
                .collect(),
        )
    }

    async fn streams_on_table(&self, table_id: Uuid) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM streams WHERE table_id = $1")
            .bind(uid(table_id))
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn delete_stream(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM streams WHERE id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        // Its idempotency keys go with it: a stream made again under the name starts afresh.
        sqlx::query("DELETE FROM push_keys WHERE stream_id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
