//! Issued API tokens and their revocation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{DbRow, Store, corrupt, insert_audit, opt_time, time, ts, uid, uuid};
use crate::audit::AuditEvent;
use crate::role::Role;
use crate::store::{StoreError, TokenRecord, TokenStore};
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
    })
}

#[async_trait]
impl TokenStore for Store {
    async fn insert_token(&self, t: &TokenRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, tenant_id, subject, role, issued_by, issued_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uid(t.id))
        .bind(t.tenant.as_ref().map(TenantId::as_str))
        .bind(&t.subject)
        .bind(t.role.as_str())
        .bind(&t.issued_by)
        .bind(ts(t.issued_at))
        .bind(ts(t.expires_at))
        .bind(t.revoked_at.map(ts))
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
            "SELECT * FROM api_tokens WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
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

    async fn revoked_token_ids(&self, not_before: DateTime<Utc>) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query("SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL AND expires_at > $1")
            .bind(ts(not_before))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| uuid(r, "id")).collect()
    }
}
