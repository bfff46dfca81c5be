//! Tenants, tokens and audit on SQLite. Timestamps are integer microseconds; UUIDs are text.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::SqliteStore;
use crate::audit::{AuditEvent, AuditFilter, Outcome};
use crate::placement::{Placement, PlacementKind};
use crate::role::Role;
use crate::role::Zone;
use crate::store::{
    AuditStore, BucketRecord, MigrationPhase, MigrationRecord, PlacementSnapshot, ProvisioningStore,
    StoreError, TenantStore, TokenRecord, TokenStore,
};
use crate::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};
use crate::zone::ZonePolicy;

pub(super) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(super) fn time(row: &SqliteRow, column: &str) -> Result<DateTime<Utc>, StoreError> {
    let value: i64 = row.try_get(column)?;
    DateTime::from_timestamp_micros(value).ok_or_else(|| StoreError::Corrupt(format!("{column} = {value}")))
}

pub(super) fn opt_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.and_then(DateTime::from_timestamp_micros))
}

pub(super) fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} = {value:?}"))
}

pub(super) fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|_| corrupt(column, &text))
}

pub(super) fn u32_column(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

fn tenant(row: &SqliteRow) -> Result<Tenant, StoreError> {
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
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn token(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(TokenRecord {
        id: uuid(row, "id")?,
        tenant: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(TenantId::from_trusted),
        subject: row.try_get("subject")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        issued_by: row.try_get("issued_by")?,
        issued_at: time(row, "issued_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: revoked.and_then(DateTime::from_timestamp_micros),
    })
}

fn audit_event(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEvent {
        id: uuid(row, "id")?,
        at: time(row, "at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        tenant: row.try_get("tenant_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        request_id: row.try_get("request_id")?,
        source: row.try_get("source")?,
    })
}

/// Takes the tenant row's write lock, so concurrent creates under a per-tenant quota are
/// serialised and a count read afterwards cannot be overtaken before the insert.
pub(super) async fn lock_tenant(
    tx: &mut Transaction<'_, Sqlite>,
    tenant: &TenantId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = ?")
        .bind(tenant.as_str())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_audit(tx: &mut Transaction<'_, Sqlite>, e: &AuditEvent) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, actor, role, tenant_id, action, target, outcome, request_id, source) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(e.id.to_string())
    .bind(micros(e.at))
    .bind(&e.actor)
    .bind(&e.role)
    .bind(&e.tenant)
    .bind(&e.action)
    .bind(&e.target)
    .bind(e.outcome.as_str())
    .bind(&e.request_id)
    .bind(&e.source)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn insert_tenant(&self, t: &Tenant, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenants (id, display_name, tier, isolation, status, placement_kind, placement_shard, \
             placement_reason, quota_max_tables, quota_max_streams, quota_max_storage_gb, \
             quota_ingest_events_per_sec, volume_30d_bytes, created_at, updated_at, status_reason) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(micros(t.created_at))
        .bind(micros(t.updated_at))
        .bind(&t.status_reason)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("tenant {}", t.id)));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = ?")
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
    ) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM tenants WHERE (?1 IS NULL OR id > ?1) AND (?2 IS NULL OR id = ?2) ORDER BY id LIMIT ?3",
        )
        .bind(after)
        .bind(only.map(TenantId::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant).collect()
    }

    async fn update_tenant(&self, t: &Tenant, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tenants SET display_name = ?, tier = ?, isolation = ?, placement_kind = ?, \
             placement_shard = ?, placement_reason = ?, quota_max_tables = ?, quota_max_streams = ?, \
             quota_max_storage_gb = ?, quota_ingest_events_per_sec = ?, updated_at = ? WHERE id = ?",
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
        .bind(micros(t.updated_at))
        .bind(t.id.as_str())
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
        audit: &AuditEvent,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND revoked_at IS NULL")
                .bind(micros(at))
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        sqlx::query("DELETE FROM zone_policies WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM provisioning_steps WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM maintenance_runs WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM workers WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM share_recipients WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM shares WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM streams WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lake_tables WHERE tenant_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM tenants WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(None);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(revoked))
    }

    async fn record_volume(&self, id: &TenantId, bytes: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET volume_30d_bytes = ? WHERE id = ?")
            .bind(i64::try_from(bytes).unwrap_or(i64::MAX))
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn placement_snapshot(&self) -> Result<PlacementSnapshot, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let tenants: Vec<Tenant> = rows.iter().map(tenant).collect::<Result<_, _>>()?;
        Ok(crate::store::snapshot(tenants))
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_token(&self, t: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, subject, role, issued_by, issued_at, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(t.id.to_string())
        .bind(t.tenant.as_ref().map(TenantId::as_str))
        .bind(&t.subject)
        .bind(t.role.as_str())
        .bind(&t.issued_by)
        .bind(micros(t.issued_at))
        .bind(micros(t.expires_at))
        .bind(t.revoked_at.map(micros))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_tokens(
        &self,
        tenant: &TenantId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM api_tokens WHERE tenant_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
        )
        .bind(tenant.as_str())
        .bind(before.map(|b| b.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token).collect()
    }

    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL",
        )
        .bind(micros(at))
        .bind(id.to_string())
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = ? AND tenant_id = ?")
            .bind(id.to_string())
            .bind(tenant.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        token(&row).map(Some)
    }

    async fn revoke_any_token(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(micros(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        token(&row).map(Some)
    }

    async fn revoked_token_ids(&self, not_before: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query("SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > ?")
            .bind(micros(not_before))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| uuid(r, "id")).collect()
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let _writer = self.audit_writer.lock().await;
        let mut tx = self.pool.begin().await?;
        insert_audit(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR action = ?2) \
             AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5",
        )
        .bind(f.tenant.as_ref().map(TenantId::as_str))
        .bind(&f.action)
        .bind(f.since.map(micros))
        .bind(f.before.map(|b| b.to_string()))
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event).collect()
    }
}

fn zone_policy(row: &SqliteRow) -> Result<(Zone, ZonePolicy), StoreError> {
    let zone: String = row.try_get("zone")?;
    let zone = Zone::ALL
        .into_iter()
        .find(|z| z.as_str() == zone)
        .ok_or_else(|| corrupt("zone", &zone))?;
    let transitions: String = row.try_get("transitions")?;
    let transitions = serde_json::from_str(&transitions).map_err(|_| corrupt("transitions", &transitions))?;
    Ok((
        zone,
        ZonePolicy {
            retention_days: u32_column(row, "retention_days")?,
            transitions,
        },
    ))
}

fn bucket(row: &SqliteRow) -> Result<BucketRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let shard: Option<i64> = row.try_get("shard")?;
    let enforced: bool = row.try_get("lifecycle_enforced")?;
    Ok(BucketRecord {
        name: row.try_get("name")?,
        kind: PlacementKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        shard: shard.and_then(|s| u32::try_from(s).ok()),
        tenant: row
            .try_get::<Option<String>, _>("tenant_id")?
            .map(TenantId::from_trusted),
        desired_lifecycle: row.try_get("desired_lifecycle")?,
        applied_lifecycle: row.try_get("applied_lifecycle")?,
        lifecycle_enforced: enforced,
        created_at: time(row, "created_at")?,
    })
}

fn migration(row: &SqliteRow) -> Result<MigrationRecord, StoreError> {
    let placement = |kind: &str, shard: &str, reason: String| -> Result<Placement, StoreError> {
        let raw: String = row.try_get(kind)?;
        let shard: Option<i64> = row.try_get(shard)?;
        Ok(Placement {
            kind: PlacementKind::parse(&raw).ok_or_else(|| corrupt(kind, &raw))?,
            shard: shard.and_then(|s| u32::try_from(s).ok()),
            reason,
        })
    };
    let phase: String = row.try_get("phase")?;
    Ok(MigrationRecord {
        tenant: TenantId::from_trusted(row.try_get("tenant_id")?),
        from: placement("from_kind", "from_shard", String::new())?,
        to: placement("to_kind", "to_shard", row.try_get("to_reason")?)?,
        phase: match phase.as_str() {
            "copying" => MigrationPhase::Copying,
            "cleanup" => MigrationPhase::Cleanup,
            other => return Err(corrupt("phase", other)),
        },
        cleanup_after: opt_time(row, "cleanup_after")?,
        started_at: time(row, "started_at")?,
    })
}

#[async_trait]
impl ProvisioningStore for SqliteStore {
    async fn set_tenant_status(
        &self,
        id: &TenantId,
        status: TenantStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET status = ?, status_reason = ?, updated_at = ? WHERE id = ? AND (status <> 'deleting' OR ? = 'deleting')")
            .bind(status.as_str())
            .bind(reason)
            .bind(micros(crate::now()))
            .bind(id.as_str())
            .bind(status.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tenants_with_status(&self, status: TenantStatus) -> Result<Vec<TenantId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM tenants WHERE status = ? ORDER BY id")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_trusted(r.try_get("id")?)))
            .collect()
    }

    async fn provisioning_steps(&self, id: &TenantId) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT step FROM provisioning_steps WHERE tenant_id = ? ORDER BY done_at, step")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("step")?)).collect()
    }

    async fn record_step(&self, id: &TenantId, step: &str, detail: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provisioning_steps (tenant_id, step, done_at, detail) VALUES (?, ?, ?, ?) \
             ON CONFLICT (tenant_id, step) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(step)
        .bind(micros(crate::now()))
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn zone_policies(&self, id: &TenantId) -> Result<Vec<(Zone, ZonePolicy)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM zone_policies WHERE tenant_id = ? ORDER BY zone")
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(zone_policy).collect()
    }

    async fn put_zone_policy(
        &self,
        id: &TenantId,
        zone: Zone,
        policy: &ZonePolicy,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let transitions =
            serde_json::to_string(&policy.transitions).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO zone_policies (tenant_id, zone, retention_days, transitions, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, zone) DO UPDATE SET retention_days = excluded.retention_days, \
             transitions = excluded.transitions, updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(zone.as_str())
        .bind(i64::from(policy.retention_days))
        .bind(transitions)
        .bind(micros(crate::now()))
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn shard_policies(&self, shard: u32) -> Result<Vec<(TenantId, Zone, ZonePolicy)>, StoreError> {
        let rows = sqlx::query(
            "SELECT z.* FROM zone_policies z JOIN tenants t ON t.id = z.tenant_id \
             WHERE t.placement_kind = 'shared' AND t.placement_shard = ? ORDER BY z.tenant_id, z.zone",
        )
        .bind(i64::from(shard))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (zone, policy) = zone_policy(r)?;
                Ok((TenantId::from_trusted(r.try_get("tenant_id")?), zone, policy))
            })
            .collect()
    }

    async fn upsert_bucket(&self, b: &BucketRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO buckets (name, kind, shard, tenant_id, desired_lifecycle, applied_lifecycle, lifecycle_enforced, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET desired_lifecycle = excluded.desired_lifecycle, \
             applied_lifecycle = excluded.applied_lifecycle, lifecycle_enforced = excluded.lifecycle_enforced",
        )
        .bind(&b.name)
        .bind(b.kind.as_str())
        .bind(b.shard.map(i64::from))
        .bind(b.tenant.as_ref().map(TenantId::as_str))
        .bind(&b.desired_lifecycle)
        .bind(&b.applied_lifecycle)
        .bind(b.lifecycle_enforced)
        .bind(micros(b.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM buckets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(bucket).transpose()
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM buckets ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(bucket).collect()
    }

    async fn delete_bucket_record(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM buckets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn start_migration(&self, m: &MigrationRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenant_migrations (tenant_id, from_kind, from_shard, to_kind, to_shard, to_reason, phase, \
             cleanup_after, started_at) VALUES (?, ?, ?, ?, ?, ?, 'copying', NULL, ?)",
        )
        .bind(m.tenant.as_str())
        .bind(m.from.kind.as_str())
        .bind(m.from.shard.map(i64::from))
        .bind(m.to.kind.as_str())
        .bind(m.to.shard.map(i64::from))
        .bind(&m.to.reason)
        .bind(micros(m.started_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a migration of tenant {}",
                    m.tenant
                )));
            }
            other => other?,
        };
        sqlx::query(
            "UPDATE tenants SET status = 'migrating', status_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(format!("moving to {} storage", m.to.kind.as_str()))
        .bind(micros(m.started_at))
        .bind(m.tenant.as_str())
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn migrations(&self) -> Result<Vec<MigrationRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM tenant_migrations ORDER BY started_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(migration).collect()
    }

    async fn switch_placement(
        &self,
        tenant: &TenantId,
        to: &Placement,
        cleanup_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE tenants SET placement_kind = ?, placement_shard = ?, placement_reason = ?, status = 'ready', \
             status_reason = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(to.kind.as_str())
        .bind(to.shard.map(i64::from))
        .bind(&to.reason)
        .bind(micros(cleanup_after))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tenant_migrations SET phase = 'cleanup', cleanup_after = ? WHERE tenant_id = ?")
            .bind(micros(cleanup_after))
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_migration(&self, tenant: &TenantId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tenant_migrations WHERE tenant_id = ?")
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
