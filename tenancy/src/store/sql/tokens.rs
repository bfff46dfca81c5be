//! Issued API tokens and their revocation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{DbRow, Store, corrupt, insert_audit, lock_tenant, opt_time, time, ts, uid, uuid};
use crate::audit::AuditEvent;
use crate::role::Role;
use crate::store::{Revocation, StoreError, TokenRecord, TokenStore};
use crate::tenant::TenantId;

fn token(row: &DbRow) -> Result<TokenRecord, StoreError> {
    let role: String = row.try_get("role")?;
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
        revoked_at: opt_time(row, "revoked_at")?,
        groups: super::json_column(row, "groups")?,
    })
}

#[async_trait]
impl TokenStore for Store {
    async fn insert_token(
        &self,
        t: &TokenRecord,
        max_live: Option<u32>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let (Some(tenant), Some(max_live)) = (&t.tenant, max_live) {
            // Under the tenant's row lock, so concurrent mints cannot both take the last slot.
            lock_tenant(&mut tx, tenant).await?;
            let live: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM api_tokens WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(tenant.as_str())
            .bind(ts(t.issued_at))
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if live >= i64::from(max_live) {
                return Err(StoreError::Quota(format!(
                    "tenant {tenant} has {live} live tokens and at most {max_live} may be live; revoke some or let them expire"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, subject, role, issued_by, issued_at, expires_at, revoked_at, groups) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uid(t.id))
        .bind(t.tenant.as_ref().map(TenantId::as_str))
        .bind(&t.subject)
        .bind(t.role.as_str())
        .bind(&t.issued_by)
        .bind(ts(t.issued_at))
        .bind(ts(t.expires_at))
        .bind(t.revoked_at.map(ts))
        .bind(super::to_json(&t.groups)?)
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
            // A predecessor's tokens under the same id (issued before its deletion) are not
            // this tenant's.
            "SELECT * FROM api_tokens WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) \
             AND NOT EXISTS (SELECT 1 FROM tenant_tombstones t WHERE t.id = api_tokens.tenant_id \
             AND api_tokens.issued_at <= t.deleted_at) ORDER BY id DESC LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(before.map(uid))
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
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
        )
        .bind(ts(at))
        .bind(uid(id))
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1 AND tenant_id = $2")
            .bind(uid(id))
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
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(ts(at))
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT * FROM api_tokens WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        token(&row).map(Some)
    }

    async fn revoked_tokens(
        &self,
        not_before: DateTime<Utc>,
        revoked_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Revocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, revoked_at, expires_at FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > $1 \
             AND ($2 IS NULL OR revoked_at >= $2)",
        )
        .bind(ts(not_before))
        .bind(revoked_since.map(ts))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Revocation {
                    id: uuid(r, "id")?,
                    revoked_at: time(r, "revoked_at")?,
                    expires_at: time(r, "expires_at")?,
                })
            })
            .collect()
    }
}
