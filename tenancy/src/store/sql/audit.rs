//! The append-only audit log.

use async_trait::async_trait;
use sqlx::{Pool, Row, Transaction};

use super::{Db, DbRow, Store, corrupt, opt_uuid, time, ts, uid, uuid};
use crate::audit::{AuditEvent, AuditFilter, Outcome, cap_target};
use crate::store::group_commit::{GroupCommit, batch_writer};
use crate::store::{AuditStore, StoreError};
use crate::tenant::TenantId;

/// Events per shared transaction: enough for a burst of thousands of audited requests a
/// second, small enough that one transaction stays short.
const AUDIT_BATCH: usize = 256;

fn audit_event(row: &DbRow) -> Result<AuditEvent, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AuditEvent {
        id: uuid(row, "id")?,
        at: time(row, "at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        tenant: row.try_get("tenant_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        request_id: row.try_get("request_id")?,
        source: row.try_get("source")?,
        token_id: opt_uuid(row, "token_id")?,
        issuer: row.try_get("issuer")?,
        occurrences: {
            let n: i64 = row.try_get("occurrences")?;
            u64::try_from(n).map_err(|_| corrupt("occurrences", &n.to_string()))?
        },
        details: row
            .try_get::<Option<String>, _>("details")?
            .map(|d| serde_json::from_str(&d).map_err(|_| corrupt("details", &d)))
            .transpose()?,
    })
}

/// Appends an audit event inside the caller's transaction, so the change and its record
/// commit or vanish together.
pub(super) async fn insert_audit(tx: &mut Transaction<'_, Db>, e: &AuditEvent) -> Result<(), StoreError> {
    insert_audit_rows(&mut **tx, std::slice::from_ref(e)).await
}

/// Inserts `events` (at least one) as one multi-row INSERT. Run on the pool, outside a
/// transaction, the statement is its own transaction: the batch commits whole, in one round
/// trip to the database rather than three (begin, insert, commit), and the caller waiting for
/// its event (a credential issuance, say) waits for one.
async fn insert_audit_rows<'c, E>(executor: E, events: &[AuditEvent]) -> Result<(), StoreError>
where
    E: sqlx::Executor<'c, Database = Db>,
{
    let mut insert = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO audit_events (id, at, actor, role, tenant_id, action, target, outcome, request_id, source, \
         token_id, issuer, occurrences, details) ",
    );
    insert.push_values(events, |mut row, e| {
        row.push_bind(uid(e.id))
            .push_bind(ts(e.at))
            .push_bind(e.actor.as_str())
            .push_bind(e.role.as_deref())
            .push_bind(e.tenant.as_deref())
            .push_bind(e.action.as_str())
            // Capped here, where every event passes, whichever code built it.
            .push_bind(cap_target(&e.target))
            .push_bind(e.outcome.as_str())
            .push_bind(e.request_id.as_deref())
            .push_bind(e.source.as_deref())
            .push_bind(e.token_id.map(uid))
            .push_bind(e.issuer.as_deref())
            .push_bind(i64::try_from(e.occurrences).unwrap_or(i64::MAX))
            .push_bind(e.details.as_ref().map(serde_json::Value::to_string));
    });
    insert.build().execute(executor).await?;
    Ok(())
}

/// The queue of [`AuditStore::append_audit`]: concurrent appends share one transaction (one
/// commit, one flush), and each returns once its event is durable. On SQLite it also keeps the
/// appends of this process from competing for the single write lock in SQLite's busy handler,
/// which sleeps in steps of up to 100 ms: one transaction at a time there
/// (`AUDIT_WRITERS`).
pub(crate) fn audit_queue(pool: Pool<Db>) -> GroupCommit<AuditEvent> {
    GroupCommit::new(
        AUDIT_BATCH,
        super::AUDIT_WRITERS,
        batch_writer(move |events: Vec<AuditEvent>| {
            let pool = pool.clone();
            async move { insert_audit_rows(&pool, &events).await }
        }),
        StoreError::refuses_the_data,
    )
}

#[async_trait]
impl AuditStore for Store {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.audit_queue.submit(event.clone()).await
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = sqlx::query(
            // For the tenant itself, its log starts at its id's last deletion: a predecessor's
            // events stay (append-only) but are not the id's next tenant's to read.
            "SELECT * FROM audit_events WHERE ($1 IS NULL OR (tenant_id = $1 AND ($6 IS NULL OR NOT EXISTS \
             (SELECT 1 FROM tenant_tombstones t WHERE t.id = audit_events.tenant_id AND audit_events.at <= t.deleted_at)))) \
             AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(f.tenant.as_ref().map(TenantId::as_str))
        .bind(&f.action)
        .bind(f.since.map(ts))
        .bind(f.before.map(uid))
        .bind(i64::from(f.limit))
        .bind(f.current_tenant_only.then_some(true))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_event).collect()
    }
}
