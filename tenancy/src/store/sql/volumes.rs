//! Written volumes: daily rows per tenant and the collector's per-table watermarks.

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::Row;
use uuid::Uuid;

use super::{Store, corrupt, uid};
use crate::store::{StoreError, VolumeStore};
use crate::tenant::TenantId;
use crate::volume::{Written, keep_from, window_start};

/// Days are stored as `YYYY-MM-DD` text: portable, and ordered as the days are.
const DAY: &str = "%Y-%m-%d";

fn day(d: NaiveDate) -> String {
    d.format(DAY).to_string()
}

fn bytes(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl VolumeStore for Store {
    async fn volume_watermark(&self, table: Uuid) -> Result<Option<i64>, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM volume_watermarks WHERE table_id = $1")
            .bind(uid(table))
            .fetch_optional(&self.pool)
            .await?;
        Ok(version)
    }

    async fn add_volume(
        &self,
        tenant: &TenantId,
        table: Uuid,
        from: Option<i64>,
        to: i64,
        days: &[(NaiveDate, Written)],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The watermark moves first: a collector that lost the race writes nothing, and on
        // SQLite the transaction holds the write lock before it reads anything.
        let moved = match from {
            None => sqlx::query(
                "INSERT INTO volume_watermarks (table_id, tenant_id, version) VALUES ($1, $2, $3) \
                 ON CONFLICT (table_id) DO NOTHING",
            )
            .bind(uid(table))
            .bind(tenant.as_str())
            .bind(to),
            Some(from) => sqlx::query(
                "UPDATE volume_watermarks SET version = $3 WHERE table_id = $1 AND tenant_id = $2 AND version = $4",
            )
            .bind(uid(table))
            .bind(tenant.as_str())
            .bind(to)
            .bind(from),
        }
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for (d, written) in days {
            sqlx::query(
                "INSERT INTO tenant_volume_daily (tenant_id, day, ingest_bytes, outside_bytes, rewritten_bytes) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, day) DO UPDATE SET \
                 ingest_bytes = tenant_volume_daily.ingest_bytes + excluded.ingest_bytes, \
                 outside_bytes = tenant_volume_daily.outside_bytes + excluded.outside_bytes, \
                 rewritten_bytes = tenant_volume_daily.rewritten_bytes + excluded.rewritten_bytes",
            )
            .bind(tenant.as_str())
            .bind(day(*d))
            .bind(bytes(written.ingest))
            .bind(bytes(written.outside))
            .bind(bytes(written.rewritten))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn refresh_volumes(&self, today: NaiveDate) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM tenant_volume_daily WHERE day < $1")
            .bind(day(keep_from(today)))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE tenants SET volume_30d_bytes = COALESCE((SELECT SUM(d.ingest_bytes + d.outside_bytes) \
             FROM tenant_volume_daily d WHERE d.tenant_id = tenants.id AND d.day >= $1 AND d.day <= $2), 0)",
        )
        .bind(day(window_start(today)))
        .bind(day(today))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn daily_volumes(
        &self,
        tenant: &TenantId,
        since: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Written)>, StoreError> {
        let rows = sqlx::query(
            "SELECT day, ingest_bytes, outside_bytes, rewritten_bytes FROM tenant_volume_daily \
             WHERE tenant_id = $1 AND day >= $2 ORDER BY day",
        )
        .bind(tenant.as_str())
        .bind(day(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text: String = row.try_get("day")?;
                let d = NaiveDate::parse_from_str(&text, DAY).map_err(|_| corrupt("day", &text))?;
                let count = |column: &str| -> Result<u64, StoreError> {
                    let n: i64 = row.try_get(column)?;
                    u64::try_from(n).map_err(|_| corrupt(column, &n.to_string()))
                };
                Ok((
                    d,
                    Written {
                        ingest: count("ingest_bytes")?,
                        outside: count("outside_bytes")?,
                        rewritten: count("rewritten_bytes")?,
                    },
                ))
            })
            .collect()
    }
}
