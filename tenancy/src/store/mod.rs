//! The metadata store: one trait per entity, gathered in [`MetadataStore`], and one
//! implementation per backend (SQLite, PostgreSQL).
//!
//! The traits and records live in this folder, a file per entity. Every query lives once in
//! `sql/`, which each backend (`sqlite/`, `postgres/`) compiles against its own small
//! `dialect.rs`, so rustc checks each query's types for both databases and the shared
//! repository tests run each against both. See the README's architecture section for why
//! this beats `sqlx::Any` and the compile-time macros here.

mod audit;
mod erasures;
mod error;
mod fence;
pub mod grants;
mod group_commit;
mod pipelines;
mod postgres;
mod provisioning;
mod push_keys;
mod shares;
mod sqlite;
mod streams;
mod tables;
mod tenants;
mod tokens;
mod url;
mod volumes;
mod workers;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

pub use audit::AuditStore;
pub use erasures::{ErasureRecord, ErasureStore};
pub use error::StoreError;
pub use fence::FenceStore;
pub use grants::GrantStore;
pub use pipelines::{PipelineRecord, PipelineRunRecord, PipelineStore};
pub use provisioning::{
    BucketRecord, MigrationPhase, MigrationProgress, MigrationRecord, ProvisioningStore, ShardBudget,
    ShardPolicies,
};
pub use push_keys::{KeyClaim, PushKeyRecord, PushKeyState, PushKeyStore};
pub use shares::{RecipientRecord, ShareRecord, ShareStore, SharedTable};
pub use streams::{StreamRecord, StreamStore};
pub use tables::{MaintenanceRun, TableRecord, TableStatus, TableStore};
pub use tenants::candidate;
pub(crate) use tenants::snapshot;
pub use tenants::{PlacementSnapshot, TenantStore};
pub use tokens::{Revocation, TokenRecord, TokenStore};
pub use url::DatabaseUrl;
pub use volumes::VolumeStore;
pub use workers::{WorkerRecord, WorkerStore, WorkerSummary};

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

/// The metadata store: every repository, implemented once per backend.
#[async_trait]
pub trait MetadataStore:
    TenantStore
    + TokenStore
    + AuditStore
    + ProvisioningStore
    + TableStore
    + StreamStore
    + WorkerStore
    + ShareStore
    + VolumeStore
    + FenceStore
    + PushKeyStore
    + ErasureStore
    + PipelineStore
    + GrantStore
    + Send
    + Sync
    + 'static
{
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

    /// Takes the reconciler leadership if no other process holds it: a session advisory lock on
    /// a connection of its own (PostgreSQL), or an OS lock on a file beside the database
    /// (SQLite). `None` when another process leads. Dropping the value gives it up; a process
    /// that dies gives it up with its connection or file.
    async fn try_lead(&self) -> Result<Option<Leadership>, StoreError>;
}

/// The PostgreSQL advisory lock key held while migrating: an arbitrary constant that other
/// applications are unlikely to use.
pub const MIGRATION_LOCK_KEY: i64 = 7_134_429_501;

/// The SQLite lock file held while migrating: the database file's path plus this suffix.
pub const SQLITE_MIGRATION_LOCK_SUFFIX: &str = ".migrate-lock";

/// The PostgreSQL advisory-lock key of the reconciler leadership.
pub const LEADER_LOCK_KEY: i64 = 7_134_429_502;

/// Suffix of the SQLite leadership lock file beside the database.
pub const SQLITE_LEADER_LOCK_SUFFIX: &str = ".leader-lock";

/// What keeps a leadership: a connection holding the lock, or a locked file.
#[async_trait]
pub(crate) trait LeaderHold: Send + Sync {
    /// Whether the lock is still held (the connection still answers).
    async fn alive(&mut self) -> bool;
}

/// The reconciler leadership of this process, held while the value lives.
pub struct Leadership(Box<dyn LeaderHold>);

impl Leadership {
    /// Whether leadership is still held; false once the connection holding it is gone, after
    /// which the process must stop acting as leader.
    pub async fn alive(&mut self) -> bool {
        self.0.alive().await
    }
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Leadership")
    }
}

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
