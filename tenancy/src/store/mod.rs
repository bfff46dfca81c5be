//! The metadata store: one trait, one implementation per backend (SQLite, PostgreSQL).
//!
//! Queries are plain runtime-checked `sqlx::query` calls inside each backend module; the
//! shared repository test suite runs every query against both backends. See the README's
//! architecture section for why this beats `sqlx::Any` and the compile-time macros here.

mod error;
mod postgres;
mod sqlite;
mod url;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use error::StoreError;
pub use url::DatabaseUrl;

/// Which database engine holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default: one SQLite file.
    Sqlite,
    /// Production: a PostgreSQL server shared by all replicas.
    Postgres,
}

impl Backend {
    /// The lowercase name used in logs, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Upper bound on open connections.
    pub max_connections: u32,
    /// How long a query waits for a connection before the store reports itself unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A point-in-time view of the connection pool, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections currently open (idle plus in use).
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The configured maximum.
    pub max: u32,
}

impl PoolStats {
    /// Samples a sqlx pool.
    fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// The identity of this Lakeplane installation, created once by the first process to start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instance {
    /// Stable UUIDv7 of the installation; shared by all replicas on one database.
    pub id: Uuid,
    /// When the installation was first started.
    pub created_at: DateTime<Utc>,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this run (empty when the schema was already current).
    pub applied: Vec<i64>,
    /// The newest version present after the run.
    pub current: Option<i64>,
}

/// The metadata store. Every repository method lives here so each backend implements them all.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The backend behind this store.
    fn backend(&self) -> Backend;

    /// Applies pending migrations under a cross-process lock, so concurrent starts do not race.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// The newest applied migration version, if any.
    async fn schema_version(&self) -> Result<Option<i64>, StoreError>;

    /// Round-trips a trivial query; the readiness check.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Current pool occupancy.
    fn pool_stats(&self) -> PoolStats;

    /// Returns the installation identity, creating it on the very first call against this database.
    async fn ensure_instance(&self) -> Result<Instance, StoreError>;

    /// Closes all connections; later calls fail.
    async fn close(&self);
}

/// The PostgreSQL advisory lock key held while migrating: an arbitrary constant that other
/// applications are unlikely to use.
pub const MIGRATION_LOCK_KEY: i64 = 7_134_429_501;

/// The SQLite lock file held while migrating: the database file's path plus this suffix.
pub const SQLITE_MIGRATION_LOCK_SUFFIX: &str = ".migrate-lock";

/// Opens the store selected by the URL, checking that the database answers.
///
/// This does not migrate; callers run [`MetadataStore::migrate`] when they mean to.
pub async fn connect(
    url: &DatabaseUrl,
    settings: &PoolSettings,
) -> Result<Arc<dyn MetadataStore>, StoreError> {
    Ok(match url.backend() {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::connect(url, settings).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::connect(url, settings).await?),
    })
}

/// The newest migration version this binary knows, for the given backend.
pub fn latest_known_version(backend: Backend) -> Option<i64> {
    let migrator = match backend {
        Backend::Sqlite => &sqlite::MIGRATOR,
        Backend::Postgres => &postgres::MIGRATOR,
    };
    migrator.iter().map(|m| m.version).max()
}

/// Builds a report from the versions present before and after a migration run.
fn report(before: &[i64], after: Vec<i64>) -> MigrationReport {
    let current = after.iter().copied().max();
    let applied = after.into_iter().filter(|v| !before.contains(v)).collect();
    MigrationReport { applied, current }
}
