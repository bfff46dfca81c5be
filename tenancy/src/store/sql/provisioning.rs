//! Provisioning: saga steps, zone policies, buckets and placement migrations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{
    BACKEND, DbRow, Store, corrupt, insert_audit, is_unique_violation, opt_time, time, ts, u32_column,
};
use crate::audit::AuditEvent;
use crate::placement::{Placement, PlacementKind};
use crate::role::Zone;
use crate::store::{
    BucketRecord, MigrationPhase, MigrationProgress, MigrationRecord, ProvisioningStore, ShardBudget,
    StoreError,
};
use crate::tenant::{TenantId, TenantStatus};
use crate::zone::ZonePolicy;

fn zone_policy(row: &DbRow) -> Result<(Zone, ZonePolicy), StoreError> {
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

/// The PostgreSQL advisory lock that serializes budgeted zone policy writes per shard: "LPSB"
/// in the high 32 bits, the shard in the low 32, so every shard has its own key and none
/// collides with another lock's.
const SHARD_BUDGET_LOCK: i64 = 0x4c50_5342 << 32;

/// The zone policies of every tenant placed in a shared shard, read on `conn` (a transaction's
/// own connection, to see its writes).
async fn shard_policies(
    conn: &mut <super::Db as sqlx::Database>::Connection,
    shard: u32,
) -> Result<Vec<(TenantId, Zone, ZonePolicy)>, StoreError> {
    let rows = sqlx::query(
        "SELECT z.* FROM zone_policies z JOIN tenants t ON t.id = z.tenant_id \
         WHERE t.placement_kind = 'shared' AND t.placement_shard = $1 ORDER BY z.tenant_id, z.zone",
    )
    .bind(i64::from(shard))
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let (zone, policy) = zone_policy(r)?;
            Ok((TenantId::from_trusted(r.try_get("tenant_id")?), zone, policy))
        })
        .collect()
}

fn bucket(row: &DbRow) -> Result<BucketRecord, StoreError> {
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

fn migration(row: &DbRow) -> Result<MigrationRecord, StoreError> {
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
impl ProvisioningStore for Store {
    async fn set_tenant_status(
        &self,
        id: &TenantId,
        status: TenantStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE tenants SET status = $1, status_reason = $2, updated_at = $3 WHERE id = $4 AND (status <> 'deleting' OR $5 = 'deleting')")
            .bind(status.as_str())
            .bind(reason)
            .bind(ts(crate::now()))
            .bind(id.as_str())
            .bind(status.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn tenants_with_status(&self, status: TenantStatus) -> Result<Vec<TenantId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM tenants WHERE status = $1 ORDER BY id")
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(TenantId::from_trusted(r.try_get("id")?)))
            .collect()
    }

    async fn provisioning_steps(&self, id: &TenantId) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT step FROM provisioning_steps WHERE tenant_id = $1 ORDER BY done_at, step")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("step")?)).collect()
    }

    async fn record_step(&self, id: &TenantId, step: &str, detail: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provisioning_steps (tenant_id, step, done_at, detail) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, step) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(step)
        .bind(ts(crate::now()))
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn zone_policies(&self, id: &TenantId) -> Result<Vec<(Zone, ZonePolicy)>, StoreError> {
        let rows = sqlx::query("SELECT * FROM zone_policies WHERE tenant_id = $1 ORDER BY zone")
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
        budget: Option<&ShardBudget<'_>>,
    ) -> Result<(), StoreError> {
        let transitions =
            serde_json::to_string(&policy.transitions).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        if let Some(budget) = budget
            && BACKEND == crate::store::Backend::Postgres
        {
            // Writes under one shard's budget take turns until they commit. SQLite needs no
            // lock: the upsert below takes its single write lock before the shard is read.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SHARD_BUDGET_LOCK | i64::from(budget.shard))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO zone_policies (tenant_id, zone, retention_days, transitions, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, zone) DO UPDATE SET retention_days = excluded.retention_days, \
             transitions = excluded.transitions, updated_at = excluded.updated_at",
        )
        .bind(id.as_str())
        .bind(zone.as_str())
        .bind(i64::from(policy.retention_days))
        .bind(transitions)
        .bind(ts(crate::now()))
        .execute(&mut *tx)
        .await?;
        if let Some(budget) = budget {
            let after = shard_policies(&mut tx, budget.shard).await?;
            if let Err(why) = (budget.fits)(&after) {
                tx.rollback().await?;
                return Err(StoreError::OverBudget(why));
            }
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn shard_policies(&self, shard: u32) -> Result<Vec<(TenantId, Zone, ZonePolicy)>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        shard_policies(&mut conn, shard).await
    }

    async fn upsert_bucket(&self, b: &BucketRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO buckets (name, kind, shard, tenant_id, desired_lifecycle, applied_lifecycle, lifecycle_enforced, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET desired_lifecycle = excluded.desired_lifecycle, \
             applied_lifecycle = excluded.applied_lifecycle, lifecycle_enforced = excluded.lifecycle_enforced",
        )
        .bind(&b.name)
        .bind(b.kind.as_str())
        .bind(b.shard.map(i64::from))
        .bind(b.tenant.as_ref().map(TenantId::as_str))
        .bind(&b.desired_lifecycle)
        .bind(&b.applied_lifecycle)
        .bind(b.lifecycle_enforced)
        .bind(ts(b.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM buckets WHERE name = $1")
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

    async fn list_buckets_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BucketRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM buckets WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(bucket).collect()
    }

    async fn delete_bucket_record(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn start_migration(&self, m: &MigrationRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO tenant_migrations (tenant_id, from_kind, from_shard, to_kind, to_shard, to_reason, phase, \
             cleanup_after, started_at) VALUES ($1, $2, $3, $4, $5, $6, 'copying', NULL, $7)",
        )
        .bind(m.tenant.as_str())
        .bind(m.from.kind.as_str())
        .bind(m.from.shard.map(i64::from))
        .bind(m.to.kind.as_str())
        .bind(m.to.shard.map(i64::from))
        .bind(&m.to.reason)
        .bind(ts(m.started_at))
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
            "UPDATE tenants SET status = 'migrating', status_reason = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(format!("moving to {} storage", m.to.kind.as_str()))
        .bind(ts(m.started_at))
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
            "UPDATE tenants SET placement_kind = $1, placement_shard = $2, placement_reason = $3, status = 'ready', \
             status_reason = NULL, updated_at = $4 WHERE id = $5",
        )
        .bind(to.kind.as_str())
        .bind(to.shard.map(i64::from))
        .bind(&to.reason)
        .bind(ts(crate::now()))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE tenant_migrations SET phase = 'cleanup', cleanup_after = $1 WHERE tenant_id = $2",
        )
        .bind(ts(cleanup_after))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finish_migration(&self, tenant: &TenantId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM tenant_migrations WHERE tenant_id = $1",
            "DELETE FROM migration_progress WHERE tenant_id = $1",
        ] {
            sqlx::query(sql).bind(tenant.as_str()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn abandon_migration(
        &self,
        tenant: &TenantId,
        reason: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ready = sqlx::query(
            "UPDATE tenants SET status = 'ready', status_reason = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'migrating'",
        )
        .bind(reason)
        .bind(ts(crate::now()))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if ready != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for sql in [
            "DELETE FROM tenant_migrations WHERE tenant_id = $1 AND phase = 'copying'",
            "DELETE FROM migration_progress WHERE tenant_id = $1",
        ] {
            sqlx::query(sql).bind(tenant.as_str()).execute(&mut *tx).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn record_migration_progress(
        &self,
        tenant: &TenantId,
        progress: &MigrationProgress,
    ) -> Result<(), StoreError> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO migration_progress (tenant_id, drained_at, objects_total, objects_copied, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) DO UPDATE SET drained_at = excluded.drained_at, \
             objects_total = excluded.objects_total, objects_copied = excluded.objects_copied, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(progress.drained_at.map(ts))
        .bind(count(progress.objects_total))
        .bind(count(progress.objects_copied))
        .bind(ts(crate::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn migration_progress(&self, tenant: &TenantId) -> Result<Option<MigrationProgress>, StoreError> {
        let row = sqlx::query("SELECT * FROM migration_progress WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let count = |column: &str| -> Result<u64, StoreError> {
                let n: i64 = row.try_get(column)?;
                u64::try_from(n).map_err(|_| corrupt(column, &n.to_string()))
            };
            Ok(MigrationProgress {
                drained_at: opt_time(&row, "drained_at")?,
                objects_total: count("objects_total")?,
                objects_copied: count("objects_copied")?,
            })
        })
        .transpose()
    }
}
