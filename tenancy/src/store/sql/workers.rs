//! Workers' observed state.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{
    Bind, DbRow, Many, ManyTime, Store, corrupt, fetch_many, json_column, many_time, opt_time, time, to_json,
    ts, u32_column, u32_value,
};
use crate::store::{StoreError, WorkerRecord, WorkerStore, WorkerSummary};
use crate::tenant::TenantId;
use crate::worker::{StoredSpec, WorkerKind, WorkerSpec, WorkerState};

fn worker(row: &DbRow) -> Result<WorkerRecord, StoreError> {
    let stored: StoredSpec = json_column(row, "spec")?;
    Ok(WorkerRecord {
        spec: WorkerSpec {
            kind: kind_column(row)?,
            tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
            target: stored.target,
            operations: stored.operations,
            run: stored.run,
        },
        state: state_column(row)?,
        restarts: u32_column(row, "restarts")?,
        failures: u32_column(row, "failures")?,
        last_error: row.try_get("last_error")?,
        failed_at: opt_time(row, "failed_at")?,
        last_heartbeat: opt_time(row, "last_heartbeat")?,
        owner: row.try_get("owner")?,
        progress: row.try_get("progress")?,
        updated_at: time(row, "updated_at")?,
    })
}

// Kind and state are read borrowed from the row: the reconciler reads them for every worker
// on every loop.
fn kind_column(row: &DbRow) -> Result<WorkerKind, StoreError> {
    kind_value(row.try_get("kind")?)
}

fn kind_value(kind: &str) -> Result<WorkerKind, StoreError> {
    WorkerKind::parse(kind).ok_or_else(|| corrupt("kind", kind))
}

fn state_column(row: &DbRow) -> Result<WorkerState, StoreError> {
    state_value(row.try_get("state")?)
}

fn state_value(state: &str) -> Result<WorkerState, StoreError> {
    WorkerState::parse(state).ok_or_else(|| corrupt("state", state))
}

/// The columns of a [`WorkerSummary`], in the order of [`SummaryRow`].
const SUMMARY_COLUMNS: [&str; 10] = [
    "id",
    "tenant_id",
    "kind",
    "fingerprint",
    "state",
    "restarts",
    "failures",
    "failed_at",
    "last_heartbeat",
    "updated_at",
];

/// One worker summary as read: id, tenant, kind, fingerprint, state, restarts, failures, and
/// the three timestamps.
type SummaryRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<ManyTime>,
    Option<ManyTime>,
    ManyTime,
);

fn summary(row: SummaryRow) -> Result<WorkerSummary, StoreError> {
    let (id, tenant, kind, fingerprint, state, restarts, failures, failed_at, last_heartbeat, updated_at) =
        row;
    Ok(WorkerSummary {
        kind: kind_value(&kind)?,
        tenant: TenantId::from_trusted(tenant),
        fingerprint,
        state: state_value(&state)?,
        restarts: u32_value(restarts, "restarts")?,
        failures: u32_value(failures, "failures")?,
        failed_at: failed_at.map(|v| many_time(v, "failed_at")).transpose()?,
        last_heartbeat: last_heartbeat
            .map(|v| many_time(v, "last_heartbeat"))
            .transpose()?,
        updated_at: many_time(updated_at, "updated_at")?,
        id,
    })
}

#[async_trait]
impl WorkerStore for Store {
    async fn put_worker(&self, w: &WorkerRecord) -> Result<(), StoreError> {
        let stored = StoredSpec {
            target: w.spec.target.clone(),
            operations: w.spec.operations.clone(),
            run: w.spec.run,
        };
        sqlx::query(
            "INSERT INTO workers (id, tenant_id, kind, spec, fingerprint, state, restarts, failures, \
             last_error, failed_at, last_heartbeat, owner, progress, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, fingerprint = excluded.fingerprint, \
             state = excluded.state, restarts = excluded.restarts, failures = excluded.failures, \
             last_error = excluded.last_error, failed_at = excluded.failed_at, \
             last_heartbeat = excluded.last_heartbeat, owner = excluded.owner, progress = excluded.progress, \
             updated_at = excluded.updated_at",
        )
        .bind(w.spec.id())
        .bind(w.spec.tenant.as_str())
        .bind(w.spec.kind.as_str())
        .bind(to_json(&stored)?)
        .bind(w.spec.fingerprint())
        .bind(w.state.as_str())
        .bind(i64::from(w.restarts))
        .bind(i64::from(w.failures))
        .bind(w.last_error.as_deref())
        .bind(w.failed_at.map(ts))
        .bind(w.last_heartbeat.map(ts))
        .bind(w.owner.as_deref())
        .bind(w.progress.as_deref())
        .bind(ts(w.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_worker(&self, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM workers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(worker).transpose()
    }

    async fn list_workers(
        &self,
        tenant: Option<&TenantId>,
        state: Option<WorkerState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM workers WHERE (CAST($1 AS TEXT) IS NULL OR tenant_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR state = $2) AND (CAST($3 AS TEXT) IS NULL OR id > $3) \
             ORDER BY id LIMIT $4",
        )
        .bind(tenant.map(TenantId::as_str))
        .bind(state.map(WorkerState::as_str))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(worker).collect()
    }

    async fn worker_summaries(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkerSummary>, StoreError> {
        let many = Many {
            columns: &SUMMARY_COLUMNS,
            from: "FROM workers WHERE (CAST($1 AS TEXT) IS NULL OR id > $1)",
            order: "id",
            limit: "$2",
            binds: &[Bind::Text(after.map(str::to_owned)), Bind::Int(i64::from(limit))],
        };
        fetch_many::<SummaryRow>(&self.pool, &many)
            .await?
            .into_iter()
            .map(summary)
            .collect()
    }

    async fn claim_worker(&self, id: &str, owner: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE workers SET state = 'running', owner = $1, last_heartbeat = $2, progress = NULL, updated_at = $3 \
             WHERE id = $4 AND state = 'pending' AND owner IS NULL",
        )
        .bind(owner)
        .bind(ts(at))
        .bind(ts(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn heartbeat(
        &self,
        id: &str,
        owner: &str,
        at: DateTime<Utc>,
        progress: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE workers SET last_heartbeat = $1, progress = COALESCE($2, progress), updated_at = $3 \
             WHERE id = $4 AND owner = $5 AND state = 'running'",
        )
        .bind(ts(at))
        .bind(progress)
        .bind(ts(at))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_recovered(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE workers SET failures = 0 WHERE id = $1 AND owner = $2 AND state = 'running'")
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn finish_worker(
        &self,
        id: &str,
        owner: &str,
        state: WorkerState,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let failed = state == WorkerState::Failed;
        let done = sqlx::query(
            "UPDATE workers SET state = $1, last_error = $2, \
             failures = CASE WHEN $3 THEN failures + 1 ELSE 0 END, \
             failed_at = CASE WHEN $4 THEN $5 ELSE failed_at END, updated_at = $6 \
             WHERE id = $7 AND owner = $8 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(failed)
        .bind(failed)
        .bind(ts(at))
        .bind(ts(at))
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_worker(&self, id: &str) -> Result<bool, StoreError> {
        let gone = sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(gone.rows_affected() > 0)
    }
}
