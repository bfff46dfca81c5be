//! Tables and their maintenance runs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{
    DbRow, Store, corrupt, fetch_paged, insert_audit, is_unique_violation, json_column, lock_tenant,
    opt_time, tenant_and_id, time, to_json, ts, uid, uuid,
};
use crate::audit::AuditEvent;
use crate::maintenance::{Operation, RunMetrics, RunOptions, RunStatus};
use crate::role::Zone;
use crate::store::{MaintenanceRun, StoreError, TableRecord, TableStatus, TableStore};
use crate::tenant::TenantId;
use crate::worker::DueRun;

fn table(row: &DbRow) -> Result<TableRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(TableRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        spec: json_column(row, "spec")?,
        location: row.try_get("location")?,
        status: TableStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn run(row: &DbRow) -> Result<MaintenanceRun, StoreError> {
    let zone: String = row.try_get("zone")?;
    let status: String = row.try_get("status")?;
    let metrics: Option<String> = row.try_get("metrics")?;
    let operations: Vec<Operation> = json_column(row, "operations")?;
    Ok(MaintenanceRun {
        id: uuid(row, "id")?,
        table_id: uuid(row, "table_id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        zone: Zone::parse(&zone).ok_or_else(|| corrupt("zone", &zone))?,
        table_name: row.try_get("table_name")?,
        operations,
        options: match row.try_get::<Option<String>, _>("options")? {
            Some(text) => serde_json::from_str::<RunOptions>(&text).map_err(|_| corrupt("options", &text))?,
            // Runs recorded before options were stored ran with the defaults.
            None => RunOptions::default(),
        },
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        metrics: match metrics {
            Some(text) => {
                Some(serde_json::from_str::<RunMetrics>(&text).map_err(|_| corrupt("metrics", &text))?)
            }
            None => None,
        },
        error: row.try_get("error")?,
        requested_by: row.try_get("requested_by")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_expires_at: time(row, "lease_expires_at")?,
        created_at: time(row, "created_at")?,
        finished_at: opt_time(row, "finished_at")?,
    })
}

/// Folds one succeeded run into `latest`: each of its operations last succeeded at `at`
/// unless a later success is already noted.
fn note_success(latest: &mut Vec<(Operation, DateTime<Utc>)>, operations: Vec<Operation>, at: DateTime<Utc>) {
    for op in operations {
        match latest.iter_mut().find(|(o, _)| *o == op) {
            Some(entry) => entry.1 = entry.1.max(at),
            None => latest.push((op, at)),
        }
    }
}

#[async_trait]
impl TableStore for Store {
    async fn insert_table(
        &self,
        t: &TableRecord,
        max_tables: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, &t.tenant).await?;
        // Tables being purged no longer count: their names stay taken by the primary key.
        let count: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM lake_tables WHERE tenant_id = $1 AND status = 'active'")
                .bind(t.tenant.as_str())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        let taken =
            sqlx::query("SELECT status FROM lake_tables WHERE tenant_id = $1 AND zone = $2 AND name = $3")
                .bind(t.tenant.as_str())
                .bind(t.spec.zone.as_str())
                .bind(t.spec.name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = taken {
            let status: String = row.try_get("status")?;
            return Err(StoreError::Conflict(
                if status == TableStatus::Deleting.as_str() {
                    format!(
                        "table {}/{} (it is being purged; the name is free once that ends)",
                        t.spec.zone.as_str(),
                        t.spec.name
                    )
                } else {
                    format!("table {}/{}", t.spec.zone.as_str(), t.spec.name)
                },
            ));
        }
        if count >= i64::from(max_tables) {
            return Err(StoreError::Quota(format!(
                "tenant {} has {count} tables and its max_tables quota is {max_tables}",
                t.tenant
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO lake_tables (id, tenant_id, zone, name, spec, location, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uid(t.id))
        .bind(t.tenant.as_str())
        .bind(t.spec.zone.as_str())
        .bind(t.spec.name.as_str())
        .bind(to_json(&t.spec)?)
        .bind(&t.location)
        .bind(t.status.as_str())
        .bind(ts(t.created_at))
        .bind(ts(t.updated_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "table {}/{}",
                    t.spec.zone.as_str(),
                    t.spec.name
                )));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_table(
        &self,
        tenant: &TenantId,
        zone: Zone,
        name: &str,
    ) -> Result<Option<TableRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM lake_tables WHERE tenant_id = $1 AND zone = $2 AND name = $3")
            .bind(tenant.as_str())
            .bind(zone.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(table).transpose()
    }

    async fn get_table_by_id(&self, id: Uuid) -> Result<Option<TableRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM lake_tables WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(table).transpose()
    }

    async fn list_tables(
        &self,
        tenant: &TenantId,
        zone: Option<Zone>,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<TableRecord>, StoreError> {
        let (after_zone, after_name) = after.unzip();
        let rows = sqlx::query(
            "SELECT * FROM lake_tables WHERE tenant_id = $1 AND status = 'active' \
             AND (CAST($2 AS TEXT) IS NULL OR zone = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR zone > $3 OR (zone = $3 AND name > $4)) \
             ORDER BY zone, name LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(zone.map(Zone::as_str))
        .bind(after_zone)
        .bind(after_name)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(table).collect()
    }

    async fn all_active_tables(&self) -> Result<Vec<TableRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM lake_tables WHERE status = 'active' ORDER BY tenant_id, zone, name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(table).collect()
    }

    async fn update_table_spec(
        &self,
        t: &TableRecord,
        expected_updated_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE lake_tables SET spec = $1, updated_at = $2 WHERE id = $3 AND status = 'active' AND updated_at = $4",
        )
        .bind(to_json(&t.spec)?)
        .bind(ts(t.updated_at))
        .bind(uid(t.id))
        .bind(ts(expected_updated_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn mark_table_deleting(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The tenant's lock, as grant changes take it: a grant checked against the table while
        // it is active cannot commit after this delete removed the table's grants.
        sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = (SELECT tenant_id FROM lake_tables WHERE id = $1)")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "UPDATE lake_tables SET status = 'deleting', updated_at = $1 WHERE id = $2 AND status = 'active'",
        )
        .bind(ts(audit.at))
        .bind(uid(id))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        // Its grants go with it: a table made again under the name starts with none of its own.
        let revoked = sqlx::query(
            "DELETE FROM grants WHERE EXISTS (SELECT 1 FROM lake_tables t WHERE t.id = $1 \
             AND grants.tenant_id = t.tenant_id AND grants.securable = 'tables/' || t.zone || '/' || t.name)",
        )
        .bind(uid(id))
        .execute(&mut *tx)
        .await?;
        if revoked.rows_affected() > 0 {
            super::grants::bump_version(&mut tx).await?;
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn tables_deleting(&self) -> Result<Vec<TableRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM lake_tables WHERE status = 'deleting' ORDER BY updated_at")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(table).collect()
    }

    async fn delete_table_row(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM maintenance_runs WHERE table_id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM lake_tables WHERE id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn start_run(&self, r: &MaintenanceRun, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE maintenance_runs SET status = 'failed', error = $4, \
             finished_at = $1 WHERE table_id = $2 AND status IN ('queued', 'running') AND lease_expires_at < $3",
        )
        .bind(ts(r.created_at))
        .bind(uid(r.table_id))
        .bind(ts(r.created_at))
        .bind(crate::disclosure::LEASE_EXPIRED)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO maintenance_runs (id, table_id, tenant_id, zone, table_name, operations, options, status, \
             metrics, error, requested_by, lease_owner, lease_expires_at, created_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, $9, $10, $11, $12, NULL)",
        )
        .bind(uid(r.id))
        .bind(uid(r.table_id))
        .bind(r.tenant.as_str())
        .bind(r.zone.as_str())
        .bind(&r.table_name)
        .bind(to_json(&r.operations)?)
        .bind(to_json(&r.options)?)
        .bind(r.status.as_str())
        .bind(&r.requested_by)
        .bind(&r.lease_owner)
        .bind(ts(r.lease_expires_at))
        .bind(ts(r.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                // The failed insert aborted the transaction (on PostgreSQL); ask outside it.
                tx.rollback().await?;
                let holder = sqlx::query(
                    "SELECT id FROM maintenance_runs WHERE table_id = $1 AND status IN ('queued', 'running')",
                )
                .bind(uid(r.table_id))
                .fetch_optional(&self.pool)
                .await?
                .map(|row| uuid(&row, "id"))
                .transpose()?;
                return Err(StoreError::Busy(format!(
                    "maintenance run {} is still running on table {}/{}",
                    holder.map(|id| id.to_string()).unwrap_or_default(),
                    r.zone.as_str(),
                    r.table_name
                )));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn renew_lease(&self, id: Uuid, owner: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE maintenance_runs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 \
             AND status IN ('queued', 'running')",
        )
        .bind(ts(until))
        .bind(uid(id))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_run(&self, r: &MaintenanceRun) -> Result<bool, StoreError> {
        let metrics = r.metrics.as_ref().map(to_json).transpose()?;
        let done = sqlx::query(
            "UPDATE maintenance_runs SET status = $1, metrics = $2, error = $3, finished_at = $4 WHERE id = $5 \
             AND lease_owner = $6 AND status IN ('queued', 'running')",
        )
        .bind(r.status.as_str())
        .bind(metrics)
        .bind(&r.error)
        .bind(r.finished_at.map(ts))
        .bind(uid(r.id))
        .bind(&r.lease_owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_run(&self, tenant: &TenantId, id: Uuid) -> Result<Option<MaintenanceRun>, StoreError> {
        let row = sqlx::query("SELECT * FROM maintenance_runs WHERE id = $1 AND tenant_id = $2")
            .bind(uid(id))
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run).transpose()
    }

    async fn list_runs(
        &self,
        table_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<MaintenanceRun>, StoreError> {
        let rows = match before {
            Some(before) => sqlx::query(
                "SELECT * FROM maintenance_runs WHERE table_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(uid(table_id))
            .bind(uid(before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT * FROM maintenance_runs WHERE table_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(uid(table_id))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(run).collect()
    }

    async fn last_finished_run(&self, table_id: Uuid) -> Result<Option<MaintenanceRun>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM maintenance_runs WHERE table_id = $1 AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT 1",
        )
        .bind(uid(table_id))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run).transpose()
    }

    async fn last_success(&self, table_id: Uuid) -> Result<Vec<(Operation, DateTime<Utc>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM maintenance_runs WHERE table_id = $1 AND status = 'succeeded' ORDER BY finished_at",
        )
        .bind(uid(table_id))
        .fetch_all(&self.pool)
        .await?;
        let mut latest: Vec<(Operation, DateTime<Utc>)> = Vec::new();
        for row in &rows {
            let r = run(row)?;
            let Some(at) = r.finished_at else { continue };
            note_success(&mut latest, r.operations, at);
        }
        Ok(latest)
    }

    async fn last_successes(&self) -> Result<BTreeMap<Uuid, Vec<(Operation, DateTime<Utc>)>>, StoreError> {
        // One row per table and distinct list of operations: a table's history of runs folds
        // into a handful of rows however long it is.
        let rows = sqlx::query(
            "SELECT table_id, operations, MAX(finished_at) AS finished_at FROM maintenance_runs \
             WHERE status = 'succeeded' AND finished_at IS NOT NULL GROUP BY table_id, operations",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut latest: BTreeMap<Uuid, Vec<(Operation, DateTime<Utc>)>> = BTreeMap::new();
        for row in &rows {
            let operations: Vec<Operation> = json_column(row, "operations")?;
            let at = time(row, "finished_at")?;
            note_success(latest.entry(uuid(row, "table_id")?).or_default(), operations, at);
        }
        Ok(latest)
    }

    async fn due_runs(&self) -> Result<Vec<DueRun>, StoreError> {
        // Every unfinished run: at 10,000 tenants, tens of thousands.
        fetch_paged::<(Uuid, Uuid, String, String)>(
            &self.pool,
            &["id", "table_id", "tenant_id", "operations"],
            "maintenance_runs",
            "status IN ('queued', 'running')",
            |run| run.0,
        )
        .await?
        .into_iter()
        .map(|(run, table, tenant, operations)| {
            Ok(DueRun {
                tenant: TenantId::from_trusted(tenant),
                table,
                run,
                operations: serde_json::from_str(&operations)
                    .map_err(|_| corrupt("operations", &operations))?,
            })
        })
        .collect()
    }

    async fn deleting_tables(&self) -> Result<Vec<(TenantId, Uuid)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, id FROM lake_tables WHERE status = 'deleting' ORDER BY updated_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tenant_and_id).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<MaintenanceRun>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM maintenance_runs WHERE status IN ('queued', 'running') ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(run).collect()
    }

    async fn claim_run(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE maintenance_runs SET status = 'running', lease_owner = $1, lease_expires_at = $2 \
             WHERE id = $3 AND (status = 'queued' OR (status = 'running' AND (lease_owner = $4 OR lease_expires_at < $5)))",
        )
        .bind(owner)
        .bind(ts(until))
        .bind(uid(id))
        .bind(owner)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
