//! The PostgreSQL backend, for production and HA replicas.

use std::str::FromStr;

mod dialect;
// The queries, one source for both backends, compiled here against this backend's dialect.
// Loading the same files in both backends is the point: rustc checks them once per database.
#[expect(
    clippy::duplicate_mod,
    reason = "the shared queries are compiled once per backend on purpose"
)]
#[path = "../sql/mod.rs"]
mod sql;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::{DatabaseUrl, MigrationReport, PoolSettings, StoreError};

/// The PostgreSQL schema, embedded at build time.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// Metadata in a PostgreSQL database.
pub(super) struct PgStore {
    pool: PgPool,
    /// Audit appends, committed in groups (see `sql::audit_queue`).
    audit_queue: super::group_commit::GroupCommit<crate::audit::AuditEvent>,
}

impl PgStore {
    /// Connects once directly, so an unreachable server reports its real cause
    /// (the pool would retry a refused connection until its timeout and say only "timed out").
    pub(super) async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .application_name("lakeplane")
            .log_statements(tracing::log::LevelFilter::Trace);
        let connect_error = |source| StoreError::Connect {
            url: url.redacted(),
            source,
        };
        let probe = tokio::time::timeout(settings.acquire_timeout, options.connect())
            .await
            .map_err(|_| connect_error(sqlx::Error::PoolTimedOut))?
            .map_err(connect_error)?;
        probe.close().await.map_err(connect_error)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(Self {
            audit_queue: sql::audit_queue(pool.clone()),
            pool,
        })
    }
}

use super::MIGRATION_LOCK_KEY;

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?,
    )
}

impl PgStore {
    /// Applies pending migrations under this backend's cross-process lock.
    pub(crate) async fn migrate_locked(&self) -> Result<MigrationReport, StoreError> {
        // sqlx's migrator locks only around applying, so the "before" snapshot could be read
        // while another replica migrates and this report would claim its work. One session
        // lock around the whole run, on one connection, keeps snapshot and run together.
        let mut conn = self.pool.acquire().await?;
        // The session lock must never go back to the pool held, even if this future is
        // cancelled half-way: closing the connection afterwards always releases it.
        conn.close_on_drop();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await?;
        let outcome = async {
            let before = applied_versions(&mut conn).await?;
            MIGRATOR
                .run_direct(&mut *conn)
                .await
                .map_err(StoreError::Migrate)?;
            Ok::<_, StoreError>(super::report(&before, applied_versions(&mut conn).await?))
        }
        .await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            // A session lock lives as long as the connection; never return it to the pool held.
            conn.close_on_drop();
        }
        outcome
    }

    /// Closes the pool's connections.
    pub(crate) async fn close_connections(&self) {
        self.pool.close().await;
    }

    /// The applied migration versions.
    pub(crate) async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        applied_versions(&mut conn).await
    }

    /// Takes the reconciler leadership with this backend's lock, if no other process holds it.
    pub(crate) async fn lead(&self) -> Result<Option<super::Leadership>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // A session lock must never go back to the pool: the connection closes when dropped.
        conn.close_on_drop();
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(super::LEADER_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        Ok(won.then(|| super::Leadership(Box::new(PgLeader(conn)))))
    }
}

/// The connection holding the leadership's session lock.
struct PgLeader(sqlx::pool::PoolConnection<sqlx::Postgres>);

#[async_trait]
impl super::LeaderHold for PgLeader {
    async fn alive(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut *self.0).await.is_ok()
    }
}
