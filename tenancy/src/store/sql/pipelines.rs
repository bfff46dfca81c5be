//! Pipelines and their runs.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::{
    DbRow, Store, corrupt, insert_audit, is_unique_violation, json_column, lock_tenant, opt_time, time,
    to_json, ts, uid, uuid,
};
use crate::audit::AuditEvent;
use crate::pipeline::{PipelineName, PipelineState, RunStatus};
use crate::store::{PipelineRecord, PipelineRunRecord, PipelineStore, StoreError};
use crate::tenant::TenantId;

fn pipeline(row: &DbRow) -> Result<PipelineRecord, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(PipelineRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        name: PipelineName::from_trusted(row.try_get::<String, _>("name")?),
        spec: json_column(row, "spec")?,
        source_table_id: uuid(row, "source_table_id")?,
        target_table_id: uuid(row, "target_table_id")?,
        state: PipelineState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        failure: row.try_get("failure")?,
        created_by: row.try_get("created_by")?,
        owner_role: {
            let role: String = row.try_get("owner_role")?;
            crate::role::Role::parse(&role).ok_or_else(|| super::corrupt("owner_role", &role))?
        },
        owner_groups: json_column(row, "owner_groups")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

fn count(row: &DbRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| corrupt(column, &value.to_string()))
}

fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn run(row: &DbRow) -> Result<PipelineRunRecord, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(PipelineRunRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        pipeline_id: uuid(row, "pipeline_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        full_refresh: row.try_get::<i64, _>("full_refresh")? != 0,
        requested_by: row.try_get("requested_by")?,
        source_from: row.try_get("source_from")?,
        source_to: row.try_get("source_to")?,
        rows_in: count(row, "rows_in")?,
        rows_written: count(row, "rows_written")?,
        rows_dropped: count(row, "rows_dropped")?,
        rows_quarantined: count(row, "rows_quarantined")?,
        expectations: json_column(row, "expectations")?,
        target_version: row.try_get("target_version")?,
        error: row.try_get("error")?,
        created_at: time(row, "created_at")?,
        started_at: opt_time(row, "started_at")?,
        finished_at: opt_time(row, "finished_at")?,
        lease_expires_at: opt_time(row, "lease_expires_at")?,
    })
}

#[async_trait]
impl PipelineStore for Store {
    async fn insert_pipeline(
        &self,
        p: &PipelineRecord,
        max_pipelines: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, &p.tenant).await?;
        let taken = sqlx::query("SELECT id FROM pipelines WHERE tenant_id = $1 AND name = $2")
            .bind(p.tenant.as_str())
            .bind(p.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict(format!("pipeline {}", p.name)));
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM pipelines WHERE tenant_id = $1")
            .bind(p.tenant.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if count >= i64::from(max_pipelines) {
            return Err(StoreError::Quota(format!(
                "tenant {} has {count} pipelines, the most a tenant may have",
                p.tenant
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO pipelines (id, tenant_id, name, spec, source_table_id, target_table_id, state, \
             failure, created_by, created_at, updated_at, owner_role, owner_groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(uid(p.id))
        .bind(p.tenant.as_str())
        .bind(p.name.as_str())
        .bind(to_json(&p.spec)?)
        .bind(uid(p.source_table_id))
        .bind(uid(p.target_table_id))
        .bind(p.state.as_str())
        .bind(&p.failure)
        .bind(&p.created_by)
        .bind(ts(p.created_at))
        .bind(ts(p.updated_at))
        .bind(p.owner_role.as_str())
        .bind(to_json(&p.owner_groups)?)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("pipeline {}", p.name)));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_pipeline(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<PipelineRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM pipelines WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pipeline).transpose()
    }

    async fn get_pipeline_by_id(&self, id: Uuid) -> Result<Option<PipelineRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM pipelines WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(pipeline).transpose()
    }

    async fn list_pipelines(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PipelineRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM pipelines WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name > $2) \
             ORDER BY name LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pipeline).collect()
    }

    async fn update_pipeline(
        &self,
        p: &PipelineRecord,
        seen: &PipelineRecord,
        audit: Option<&AuditEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE pipelines SET spec = $1, state = $2, failure = $3, updated_at = $4 \
             WHERE id = $5 AND updated_at = $6",
        )
        .bind(to_json(&p.spec)?)
        .bind(p.state.as_str())
        .bind(&p.failure)
        .bind(ts(p.updated_at))
        .bind(uid(p.id))
        .bind(ts(seen.updated_at))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_pipeline(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM pipeline_runs WHERE pipeline_id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM pipelines WHERE id = $1")
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

    async fn queue_pipeline_run(
        &self,
        r: &PipelineRunRecord,
        audit: Option<&AuditEvent>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The pipeline row's write lock serialises concurrent requests, so two cannot both
        // find no queued run and both queue one.
        let exists = sqlx::query("UPDATE pipelines SET updated_at = updated_at WHERE id = $1")
            .bind(uid(r.pipeline_id))
            .execute(&mut *tx)
            .await?;
        if exists.rows_affected() == 0 {
            return Ok(None);
        }
        let queued = sqlx::query(
            "SELECT id FROM pipeline_runs WHERE pipeline_id = $1 AND status = 'queued' \
             AND full_refresh = $2 ORDER BY id LIMIT 1",
        )
        .bind(uid(r.pipeline_id))
        .bind(i64::from(r.full_refresh))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = queued {
            return uuid(&row, "id").map(Some);
        }
        sqlx::query(
            "INSERT INTO pipeline_runs (id, tenant_id, pipeline_id, status, full_refresh, requested_by, \
             source_from, source_to, rows_in, rows_written, rows_dropped, rows_quarantined, expectations, \
             target_version, error, created_at, started_at, finished_at, lease_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(uid(r.id))
        .bind(r.tenant.as_str())
        .bind(uid(r.pipeline_id))
        .bind(r.status.as_str())
        .bind(i64::from(r.full_refresh))
        .bind(&r.requested_by)
        .bind(r.source_from)
        .bind(r.source_to)
        .bind(stored(r.rows_in))
        .bind(stored(r.rows_written))
        .bind(stored(r.rows_dropped))
        .bind(stored(r.rows_quarantined))
        .bind(to_json(&r.expectations)?)
        .bind(r.target_version)
        .bind(&r.error)
        .bind(ts(r.created_at))
        .bind(r.started_at.map(ts))
        .bind(r.finished_at.map(ts))
        .bind(r.lease_expires_at.map(ts))
        .execute(&mut *tx)
        .await?;
        if let Some(audit) = audit {
            insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(Some(r.id))
    }

    async fn get_pipeline_run(
        &self,
        pipeline: Uuid,
        id: Uuid,
    ) -> Result<Option<PipelineRunRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM pipeline_runs WHERE pipeline_id = $1 AND id = $2")
            .bind(uid(pipeline))
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run).transpose()
    }

    async fn list_pipeline_runs(
        &self,
        pipeline: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PipelineRunRecord>, StoreError> {
        let rows = match before {
            Some(before) => sqlx::query(
                "SELECT * FROM pipeline_runs WHERE pipeline_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(uid(pipeline))
            .bind(uid(before))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT * FROM pipeline_runs WHERE pipeline_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(uid(pipeline))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(run).collect()
    }

    async fn take_pipeline_run(
        &self,
        id: Uuid,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE pipeline_runs SET status = 'running', lease_owner = $1, lease_expires_at = $2, \
             started_at = $3 WHERE id = $4 AND (status = 'queued' OR (status = 'running' AND \
             (lease_expires_at IS NULL OR lease_expires_at <= $3)))",
        )
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .bind(uid(id))
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() == 1)
    }

    async fn renew_pipeline_run(
        &self,
        id: Uuid,
        owner: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE pipeline_runs SET lease_expires_at = $1 WHERE id = $2 AND status = 'running' \
             AND lease_owner = $3",
        )
        .bind(ts(until))
        .bind(uid(id))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn end_pipeline_run(&self, r: &PipelineRunRecord, owner: &str) -> Result<bool, StoreError> {
        let ended = sqlx::query(
            "UPDATE pipeline_runs SET status = $1, source_from = $2, source_to = $3, rows_in = $4, \
             rows_written = $5, rows_dropped = $6, rows_quarantined = $7, expectations = $8, \
             target_version = $9, error = $10, started_at = $11, finished_at = $12, \
             lease_expires_at = NULL, lease_owner = NULL WHERE id = $13 AND status = 'running' \
             AND lease_owner = $14",
        )
        .bind(r.status.as_str())
        .bind(r.source_from)
        .bind(r.source_to)
        .bind(stored(r.rows_in))
        .bind(stored(r.rows_written))
        .bind(stored(r.rows_dropped))
        .bind(stored(r.rows_quarantined))
        .bind(to_json(&r.expectations)?)
        .bind(r.target_version)
        .bind(&r.error)
        .bind(r.started_at.map(ts))
        .bind(r.finished_at.map(ts))
        .bind(uid(r.id))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(ended.rows_affected() == 1)
    }

    async fn active_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM pipelines WHERE state = 'active' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(pipeline).collect()
    }

    async fn prune_pipeline_runs(&self, pipeline: Uuid, keep: u32) -> Result<u64, StoreError> {
        let pruned = sqlx::query(
            "DELETE FROM pipeline_runs WHERE pipeline_id = $1 AND status IN ('succeeded', 'failed') \
             AND id NOT IN (SELECT id FROM pipeline_runs WHERE pipeline_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(uid(pipeline))
        .bind(i64::from(keep))
        .execute(&self.pool)
        .await?;
        Ok(pruned.rows_affected())
    }

    async fn unfinished_pipeline_runs(&self) -> Result<Vec<(TenantId, Uuid, Uuid)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, pipeline_id, id FROM pipeline_runs WHERE status IN ('queued', 'running') \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
                    uuid(row, "pipeline_id")?,
                    uuid(row, "id")?,
                ))
            })
            .collect()
    }
}
