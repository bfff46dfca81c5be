//! Idempotency keys of HTTP pushes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{DbRow, Store, corrupt, time, ts, uid, uuid};
use crate::store::{KeyClaim, PushKeyRecord, PushKeyState, PushKeyStore, StoreError};
use crate::tenant::TenantId;

fn push_key(row: &DbRow) -> Result<PushKeyRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let app_id: Option<String> = row.try_get("app_id")?;
    let seq: Option<i64> = row.try_get("seq")?;
    Ok(PushKeyRecord {
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        stream_id: uuid(row, "stream_id")?,
        key: row.try_get("idem_key")?,
        fingerprint: row.try_get("fingerprint")?,
        attempt: uuid(row, "attempt")?,
        owner: row.try_get("owner")?,
        state: PushKeyState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        mark: app_id.zip(seq),
        outcome: row.try_get("outcome")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        expires_at: time(row, "expires_at")?,
    })
}

#[async_trait]
impl PushKeyStore for Store {
    async fn claim_push_key(&self, r: &PushKeyRecord, now: DateTime<Utc>) -> Result<KeyClaim, StoreError> {
        // A few rounds at most: a row seen as held can be released (or expire) before it is
        // read, and the claim is then tried again.
        for _ in 0..3 {
            sqlx::query(
                "DELETE FROM push_keys WHERE tenant_id = $1 AND stream_id = $2 AND idem_key = $3 \
                 AND expires_at <= $4",
            )
            .bind(r.tenant.as_str())
            .bind(uid(r.stream_id))
            .bind(&r.key)
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO push_keys (tenant_id, stream_id, idem_key, fingerprint, attempt, owner, \
                 state, app_id, seq, outcome, created_at, updated_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, $8, $8, $9) \
                 ON CONFLICT (tenant_id, stream_id, idem_key) DO NOTHING",
            )
            .bind(r.tenant.as_str())
            .bind(uid(r.stream_id))
            .bind(&r.key)
            .bind(&r.fingerprint)
            .bind(uid(r.attempt))
            .bind(&r.owner)
            .bind(PushKeyState::Pending.as_str())
            .bind(ts(r.created_at))
            .bind(ts(r.expires_at))
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(KeyClaim::Claimed);
            }
            let held = sqlx::query(
                "SELECT * FROM push_keys WHERE tenant_id = $1 AND stream_id = $2 AND idem_key = $3",
            )
            .bind(r.tenant.as_str())
            .bind(uid(r.stream_id))
            .bind(&r.key)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = held {
                return Ok(KeyClaim::Held(Box::new(push_key(&row)?)));
            }
        }
        Err(StoreError::Conflict(format!(
            "idempotency key {:?} is being claimed and released concurrently",
            r.key
        )))
    }

    async fn take_over_push_key(&self, from: &PushKeyRecord, to: &PushKeyRecord) -> Result<bool, StoreError> {
        // Compared with the row as read: an attempt that marked a commit since (its
        // `updated_at` moved) keeps its key.
        let moved = sqlx::query(
            "UPDATE push_keys SET attempt = $1, owner = $2, state = $3, app_id = NULL, seq = NULL, \
             outcome = NULL, updated_at = $4, expires_at = $5 \
             WHERE tenant_id = $6 AND stream_id = $7 AND idem_key = $8 AND attempt = $9 AND state = $3 \
             AND updated_at = $10",
        )
        .bind(uid(to.attempt))
        .bind(&to.owner)
        .bind(PushKeyState::Pending.as_str())
        .bind(ts(to.updated_at))
        .bind(ts(to.expires_at))
        .bind(to.tenant.as_str())
        .bind(uid(to.stream_id))
        .bind(&to.key)
        .bind(uid(from.attempt))
        .bind(ts(from.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn mark_push_keys(
        &self,
        marks: &[(Uuid, String)],
        app_id: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        // One transaction: the group's marks are all recorded before its commit, or none is
        // and the commit is not started.
        let mut tx = self.pool.begin().await?;
        let mut held = Vec::with_capacity(marks.len());
        for (attempt, outcome) in marks {
            let marked = sqlx::query(
                "UPDATE push_keys SET app_id = $1, seq = $2, outcome = $3, updated_at = $4 \
                 WHERE attempt = $5 AND state = $6",
            )
            .bind(app_id)
            .bind(seq)
            .bind(outcome)
            .bind(ts(now))
            .bind(uid(*attempt))
            .bind(PushKeyState::Pending.as_str())
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 1 {
                held.push(*attempt);
            }
        }
        tx.commit().await?;
        Ok(held)
    }

    async fn finish_push_keys(
        &self,
        outcomes: &[(Uuid, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (attempt, outcome) in outcomes {
            sqlx::query("UPDATE push_keys SET state = $1, outcome = $2, updated_at = $3 WHERE attempt = $4")
                .bind(PushKeyState::Done.as_str())
                .bind(outcome)
                .bind(ts(now))
                .bind(uid(*attempt))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_push_keys(&self, attempts: &[Uuid]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for attempt in attempts {
            sqlx::query("DELETE FROM push_keys WHERE attempt = $1 AND state = $2")
                .bind(uid(*attempt))
                .bind(PushKeyState::Pending.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn expire_push_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let gone = sqlx::query("DELETE FROM push_keys WHERE expires_at <= $1")
            .bind(ts(now))
            .execute(&self.pool)
            .await?;
        Ok(gone.rows_affected())
    }
}
