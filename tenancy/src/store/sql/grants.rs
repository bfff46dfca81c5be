//! Table grants.

use async_trait::async_trait;
use sqlx::{Row, Transaction};

use super::{Db, DbRow, Store, insert_audit, lock_tenant, ts};
use crate::audit::AuditEvent;
use crate::grants::{Change, Grant, Grantee, Privilege, Securable, apply};
use crate::role::Zone;
use crate::store::StoreError;
use crate::store::grants::{Assignments, ChangeGrantsError, Changed, GrantStore};
use crate::tenant::TenantId;

/// Parses the stored path form of a securable.
fn securable(raw: &str) -> Result<Securable, StoreError> {
    let bad = || super::corrupt("securable", raw);
    let mut parts = raw.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("tenant"), None, None) => Ok(Securable::Tenant),
        (Some("zones"), Some(z), None) => Ok(Securable::Zone(Zone::parse(z).ok_or_else(bad)?)),
        (Some("tables"), Some(z), Some(n)) => {
            Ok(Securable::Table(Zone::parse(z).ok_or_else(bad)?, n.to_owned()))
        }
        _ => Err(bad()),
    }
}

fn grant(row: &DbRow) -> Result<Grant, StoreError> {
    let s: String = row.try_get("securable")?;
    let p: String = row.try_get("principal")?;
    let v: String = row.try_get("privilege")?;
    Ok(Grant {
        securable: securable(&s)?,
        grantee: Grantee::parse(&p).map_err(|_| super::corrupt("principal", &p))?,
        privilege: Privilege::parse(&v).ok_or_else(|| super::corrupt("privilege", &v))?,
    })
}

/// Marks a change to some tenant's grants, for every replica's cache.
pub(super) async fn bump_version(tx: &mut Transaction<'_, Db>) -> Result<(), StoreError> {
    sqlx::query("UPDATE grants_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a new tenant's default grants (`grants::role_defaults`) inside its creation.
pub(super) async fn insert_defaults(
    tx: &mut Transaction<'_, Db>,
    tenant: &TenantId,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let defaults = crate::grants::role_defaults();
    let mut insert = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO grants (tenant_id, securable, principal, privilege, granted_by, granted_at) ",
    );
    insert.push_values(&defaults, |mut row, g| {
        row.push_bind(tenant.as_str())
            .push_bind(g.securable.path())
            .push_bind(g.grantee.to_string())
            .push_bind(g.privilege.as_str())
            .push_bind("lakeplane (role defaults)")
            .push_bind(ts(at));
    });
    insert.build().execute(&mut **tx).await?;
    bump_version(tx).await
}

fn assignments_json(a: &Assignments) -> serde_json::Value {
    serde_json::Value::Object(
        a.iter()
            .map(|(g, ps)| {
                (
                    g.to_string(),
                    serde_json::Value::Array(ps.iter().map(|p| p.as_str().into()).collect()),
                )
            })
            .collect(),
    )
}

#[async_trait]
impl GrantStore for Store {
    async fn list_grants(&self, tenant: &TenantId) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(
            "SELECT securable, principal, privilege FROM grants WHERE tenant_id = $1 \
             ORDER BY securable, principal, privilege",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(grant).collect()
    }

    async fn change_grants(
        &self,
        tenant: &TenantId,
        on: &Securable,
        changes: &[Change],
        by: &str,
        audit: &AuditEvent,
    ) -> Result<Changed, ChangeGrantsError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        // The tenant's lock serialises changes, so `before` is what this change replaces.
        lock_tenant(&mut tx, tenant).await?;
        if let Securable::Table(zone, name) = on
            && changes.iter().any(|c| !c.add.is_empty())
        {
            let exists = sqlx::query(
                "SELECT 1 AS one FROM lake_tables WHERE tenant_id = $1 AND zone = $2 AND name = $3 AND status = 'active'",
            )
            .bind(tenant.as_str())
            .bind(zone.as_str())
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if exists.is_none() {
                return Err(ChangeGrantsError::NoTable);
            }
        }
        let rows = sqlx::query(
            "SELECT securable, principal, privilege FROM grants WHERE tenant_id = $1 AND securable = $2",
        )
        .bind(tenant.as_str())
        .bind(on.path())
        .fetch_all(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let mut before = Assignments::new();
        for row in &rows {
            let g = grant(row)?;
            before.entry(g.grantee).or_default().insert(g.privilege);
        }
        let after = apply(on, &before, changes).map_err(ChangeGrantsError::Invalid)?;
        // Collected before the first await: the transaction's future must not hold borrows
        // of closures across it.
        let mut removed: Vec<(Grantee, Privilege)> = Vec::new();
        for (g, ps) in &before {
            for p in ps {
                if !after.get(g).is_some_and(|now| now.contains(p)) {
                    removed.push((g.clone(), *p));
                }
            }
        }
        let mut changed = false;
        for (g, p) in removed {
            sqlx::query("DELETE FROM grants WHERE tenant_id = $1 AND securable = $2 AND principal = $3 AND privilege = $4")
                .bind(tenant.as_str())
                .bind(on.path())
                .bind(g.to_string())
                .bind(p.as_str())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            changed = true;
        }
        for (g, ps) in &after {
            for p in ps {
                if before.get(g).is_some_and(|held| held.contains(p)) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO grants (tenant_id, securable, principal, privilege, granted_by, granted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(tenant.as_str())
                .bind(on.path())
                .bind(g.to_string())
                .bind(p.as_str())
                .bind(by)
                .bind(ts(audit.at))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                changed = true;
            }
        }
        if changed {
            bump_version(&mut tx).await?;
        }
        let mut event = audit.clone();
        event.details = Some(serde_json::json!({
            "securable": on.path(),
            "before": assignments_json(&before),
            "after": assignments_json(&after),
        }));
        insert_audit(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(Changed { before, after })
    }

    async fn grants_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM grants_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }
}
