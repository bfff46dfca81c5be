//! Tenants: their rows, placement and 30-day volumes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{DbRow, Store, corrupt, insert_audit, is_unique_violation, time, ts, u32_column};
use crate::audit::AuditEvent;
use crate::placement::{Placement, PlacementKind};
use crate::store::{PlacementSnapshot, StoreError, TenantStore};
use crate::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};

pub(super) fn tenant(row: &DbRow) -> Result<Tenant, StoreError> {
    let text = |c: &str| row.try_get::<String, _>(c);
    let tier = text("tier")?;
    let isolation = text("isolation")?;
    let status = text("status")?;
    let kind = text("placement_kind")?;
    let shard: Option<i64> = row.try_get("placement_shard")?;
    let volume: i64 = row.try_get("volume_30d_bytes")?;
    Ok(Tenant {
        id: TenantId::from_trusted(text("id")?),
        display_name: text("display_name")?,
        tier: Tier::parse(&tier).ok_or_else(|| corrupt("tier", &tier))?,
        isolation: Isolation::parse(&isolation).ok_or_else(|| corrupt("isolation", &isolation))?,
        status: TenantStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        status_reason: row.try_get("status_reason")?,
        placement: Placement {
            kind: PlacementKind::parse(&kind).ok_or_else(|| corrupt("placement_kind", &kind))?,
            shard: shard.and_then(|s| u32::try_from(s).ok()),
            reason: text("placement_reason")?,
        },
        quotas: Quotas {
            max_tables: u32_column(row, "quota_max_tables")?,
            max_streams: u32_column(row, "quota_max_streams")?,
            max_storage_gb: u32_column(row, "quota_max_storage_gb")?,
            ingest_events_per_sec: u32_column(row, "quota_ingest_events_per_sec")?,
        },
        volume_30d_bytes: u64::try_from(volume).unwrap_or(0),
        erasure_deadline_days: u32_column(row, "erasure_deadline_days")?,
        credential_max_ttl_secs: u32_column(row, "credential_max_ttl_secs")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

#[async_trait]
impl TenantStore for Store {
    async fn insert_tenant(&self, t: &Tenant, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, display_name, tier, isolation, status, placement_kind, placement_shard, \
             placement_reason, quota_max_tables, quota_max_streams, quota_max_storage_gb, \
             quota_ingest_events_per_sec, volume_30d_bytes, created_at, updated_at, status_reason, \
             erasure_deadline_days, credential_max_ttl_secs) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(t.id.as_str())
        .bind(&t.display_name)
        .bind(t.tier.as_str())
        .bind(t.isolation.as_str())
        .bind(t.status.as_str())
        .bind(t.placement.kind.as_str())
        .bind(t.placement.shard.map(i64::from))
        .bind(&t.placement.reason)
        .bind(i64::from(t.quotas.max_tables))
        .bind(i64::from(t.quotas.max_streams))
        .bind(i64::from(t.quotas.max_storage_gb))
        .bind(i64::from(t.quotas.ingest_events_per_sec))
        .bind(i64::try_from(t.volume_30d_bytes).unwrap_or(i64::MAX))
        .bind(ts(t.created_at))
        .bind(ts(t.updated_at))
        .bind(&t.status_reason)
        .bind(i64::from(t.erasure_deadline_days))
        .bind(i64::from(t.credential_max_ttl_secs))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("tenant {}", t.id)));
            }
            other => other?,
        };
        // Checked after the insert, which takes the write lock first: on SQLite a transaction
        // that reads before it writes fails outright (SQLITE_BUSY_SNAPSHOT) when another
        // write commits in between. A refusal rolls the insert back.
        let tombstone = sqlx::query("SELECT reusable_at FROM tenant_tombstones WHERE id = $1")
            .bind(t.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = tombstone {
            let reusable_at = time(&row, "reusable_at")?;
            if reusable_at > t.created_at {
                return Err(StoreError::Reserved(format!(
                    "tenant id {} belonged to a deleted tenant and is reserved until {}, when every \
                     token and credential that could name it has expired",
                    t.id,
                    reusable_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )));
            }
        }
        super::grants::insert_defaults(&mut tx, &t.id, t.created_at).await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant).transpose()
    }

    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        only: Option<&TenantId>,
        search: Option<&str>,
    ) -> Result<Vec<Tenant>, StoreError> {
        // A LIKE pattern matching the text anywhere, its wildcards escaped.
        let pattern = search.map(|s| {
            let escaped = s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            format!("%{escaped}%")
        });
        let rows = sqlx::query(
            "SELECT * FROM tenants WHERE ($1 IS NULL OR id > $1) AND ($2 IS NULL OR id = $2) \
             AND ($4 IS NULL OR LOWER(id) LIKE LOWER($4) ESCAPE '\\' \
             OR LOWER(display_name) LIKE LOWER($4) ESCAPE '\\') \
             ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(only.map(TenantId::as_str))
        .bind(i64::from(limit))
        .bind(pattern)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant).collect()
    }

    async fn update_tenant(&self, t: &Tenant, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tenants SET display_name = $1, tier = $2, isolation = $3, placement_kind = $4, \
             placement_shard = $5, placement_reason = $6, quota_max_tables = $7, quota_max_streams = $8, \
             quota_max_storage_gb = $9, quota_ingest_events_per_sec = $10, updated_at = $11, \
             erasure_deadline_days = $12, credential_max_ttl_secs = $14 WHERE id = $13",
        )
        .bind(&t.display_name)
        .bind(t.tier.as_str())
        .bind(t.isolation.as_str())
        .bind(t.placement.kind.as_str())
        .bind(t.placement.shard.map(i64::from))
        .bind(&t.placement.reason)
        .bind(i64::from(t.quotas.max_tables))
        .bind(i64::from(t.quotas.max_streams))
        .bind(i64::from(t.quotas.max_storage_gb))
        .bind(i64::from(t.quotas.ingest_events_per_sec))
        .bind(ts(t.updated_at))
        .bind(i64::from(t.erasure_deadline_days))
        .bind(t.id.as_str())
        .bind(i64::from(t.credential_max_ttl_secs))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_tenant(
        &self,
        id: &TenantId,
        at: DateTime<Utc>,
        reusable_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked =
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE tenant_id = $2 AND revoked_at IS NULL")
                .bind(ts(at))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Children before parents; static statements, so nothing here is built from input.
        for statement in [
            "DELETE FROM zone_policies WHERE tenant_id = $1",
            "DELETE FROM provisioning_steps WHERE tenant_id = $1",
            "DELETE FROM maintenance_runs WHERE tenant_id = $1",
            "DELETE FROM workers WHERE tenant_id = $1",
            "DELETE FROM share_recipients WHERE tenant_id = $1",
            "DELETE FROM shares WHERE tenant_id = $1",
            "DELETE FROM push_keys WHERE tenant_id = $1",
            "DELETE FROM streams WHERE tenant_id = $1",
            "DELETE FROM lake_tables WHERE tenant_id = $1",
            "DELETE FROM tenant_volume_daily WHERE tenant_id = $1",
            "DELETE FROM volume_watermarks WHERE tenant_id = $1",
            "DELETE FROM migration_progress WHERE tenant_id = $1",
            "DELETE FROM erasures WHERE tenant_id = $1",
            "DELETE FROM erasure_floors WHERE tenant_id = $1",
            "DELETE FROM pipeline_runs WHERE tenant_id = $1",
            "DELETE FROM pipelines WHERE tenant_id = $1",
            "DELETE FROM grants WHERE tenant_id = $1",
        ] {
            sqlx::query(statement).bind(id.as_str()).execute(&mut *tx).await?;
        }
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO tenant_tombstones (id, deleted_at, reusable_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET deleted_at = excluded.deleted_at, reusable_at = excluded.reusable_at",
        )
        .bind(id.as_str())
        .bind(ts(at))
        .bind(ts(reusable_at))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn record_volume(&self, id: &TenantId, bytes: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET volume_30d_bytes = $1 WHERE id = $2")
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn shard_fill(&self) -> Result<Vec<u32>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT placement_shard, COUNT(*) FROM tenants WHERE placement_shard IS NOT NULL \
             GROUP BY placement_shard",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut fill: Vec<u32> = Vec::new();
        for (shard, count) in rows {
            let index = usize::try_from(shard).map_err(|_| corrupt("placement_shard", &shard.to_string()))?;
            if fill.len() <= index {
                fill.resize(index + 1, 0);
            }
            fill[index] = u32::try_from(count).unwrap_or(u32::MAX);
        }
        Ok(fill)
    }

    async fn tenant_volumes(&self) -> Result<Vec<u64>, StoreError> {
        let volumes: Vec<i64> = sqlx::query_scalar("SELECT volume_30d_bytes FROM tenants")
            .fetch_all(&self.pool)
            .await?;
        Ok(volumes
            .into_iter()
            .map(|v| u64::try_from(v).unwrap_or(0))
            .collect())
    }

    async fn placement_snapshot(&self) -> Result<PlacementSnapshot, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let tenants: Vec<Tenant> = rows.iter().map(tenant).collect::<Result<_, _>>()?;
        Ok(crate::store::snapshot(tenants))
    }
}
