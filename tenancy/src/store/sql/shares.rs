//! Delta Sharing shares and their recipients.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{
    DbRow, Store, insert_audit, is_unique_violation, json_column, lock_tenant, opt_time, time, to_json, ts,
    uid, uuid,
};
use crate::audit::AuditEvent;
use crate::share::{RecipientName, ShareName};
use crate::store::{RecipientRecord, ShareRecord, ShareStore, StoreError};
use crate::tenant::TenantId;

fn share(row: &DbRow) -> Result<ShareRecord, StoreError> {
    Ok(ShareRecord {
        id: uuid(row, "id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        name: ShareName::from_trusted(row.try_get::<String, _>("name")?),
        tables: json_column(row, "tables")?,
        created_by: row.try_get("created_by")?,
        created_at: time(row, "created_at")?,
    })
}

fn recipient(row: &DbRow) -> Result<RecipientRecord, StoreError> {
    Ok(RecipientRecord {
        id: uuid(row, "id")?,
        share_id: uuid(row, "share_id")?,
        tenant: TenantId::from_trusted(row.try_get::<String, _>("tenant_id")?),
        name: RecipientName::from_trusted(row.try_get::<String, _>("name")?),
        token_hash: row.try_get("token_hash")?,
        created_by: row.try_get("created_by")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
    })
}

#[async_trait]
impl ShareStore for Store {
    async fn insert_share(&self, s: &ShareRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_tenant(&mut tx, &s.tenant).await?;
        let inserted = sqlx::query(
            "INSERT INTO shares (id, tenant_id, name, tables, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uid(s.id))
        .bind(s.tenant.as_str())
        .bind(s.name.as_str())
        .bind(to_json(&s.tables)?)
        .bind(&s.created_by)
        .bind(ts(s.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("share {}", s.name)));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_share(&self, tenant: &TenantId, name: &str) -> Result<Option<ShareRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM shares WHERE tenant_id = $1 AND name = $2")
            .bind(tenant.as_str())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(share).transpose()
    }

    async fn get_share_by_id(&self, id: Uuid) -> Result<Option<ShareRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM shares WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(share).transpose()
    }

    async fn list_shares(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ShareRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM shares WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name > $2) \
             ORDER BY name LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(share).collect()
    }

    async fn delete_share(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let owner = sqlx::query("SELECT tenant_id FROM shares WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&mut *tx)
            .await?;
        let Some(owner) = owner else {
            return Ok(false);
        };
        lock_tenant(
            &mut tx,
            &TenantId::from_trusted(owner.try_get::<String, _>("tenant_id")?),
        )
        .await?;
        let gone = sqlx::query("DELETE FROM shares WHERE id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM share_recipients WHERE share_id = $1")
            .bind(uid(id))
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_recipient(&self, r: &RecipientRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Serialises with share deletion and the tenant's purge, which take the same lock, so a
        // recipient is never written for a share that is going away.
        lock_tenant(&mut tx, &r.tenant).await?;
        let share = sqlx::query("SELECT id FROM shares WHERE id = $1")
            .bind(uid(r.share_id))
            .fetch_optional(&mut *tx)
            .await?;
        if share.is_none() {
            return Err(StoreError::Conflict("the share was deleted".to_owned()));
        }
        let inserted = sqlx::query(
            "INSERT INTO share_recipients (id, share_id, tenant_id, name, token_hash, created_by, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uid(r.id))
        .bind(uid(r.share_id))
        .bind(r.tenant.as_str())
        .bind(r.name.as_str())
        .bind(&r.token_hash)
        .bind(&r.created_by)
        .bind(ts(r.created_at))
        .bind(ts(r.expires_at))
        .bind(r.revoked_at.map(ts))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "recipient {} already holds a live token; revoke it first",
                    r.name.as_str()
                )));
            }
            other => other?,
        };
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_recipients(
        &self,
        share: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM share_recipients WHERE share_id = $1 AND (CAST($2 AS TEXT) IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(uid(share))
        .bind(before.map(uid))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(recipient).collect()
    }

    async fn revoke_recipient(
        &self,
        share: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let revoked = sqlx::query(
            "UPDATE share_recipients SET revoked_at = $1 WHERE share_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(ts(at))
        .bind(uid(share))
        .bind(uid(id))
        .execute(&mut *tx)
        .await?;
        if revoked.rows_affected() == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_recipient(&self, id: Uuid) -> Result<Option<RecipientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM share_recipients WHERE id = $1")
            .bind(uid(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recipient).transpose()
    }

    async fn recipient_by_token(&self, token_hash: &str) -> Result<Option<RecipientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM share_recipients WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recipient).transpose()
    }
}
