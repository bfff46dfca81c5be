//! The embedded SQLite backend.

use std::path::{Path, PathBuf};
use std::str::FromStr;

mod checkpoint;
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
use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use super::{DatabaseUrl, MigrationReport, PoolSettings, StoreError};

/// The SQLite schema, embedded at build time.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// Metadata in one SQLite file (or in memory, for throwaway runs).
pub(super) struct SqliteStore {
    pool: SqlitePool,
    /// Audit appends, committed in groups (see `sql::audit_queue`).
    audit_queue: super::group_commit::GroupCommit<crate::audit::AuditEvent>,
    /// The database file; `None` for in-memory databases.
    file: Option<PathBuf>,
    /// Checkpoints the file's WAL; `None` in memory.
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and its parent directory.
    pub(super) async fn connect(url: &DatabaseUrl, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url.expose())
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .create_if_missing(true)
            // WAL lets readers proceed while one writer commits; NORMAL is durable in WAL mode
            // except across power loss of the last transaction, which SQLite documents.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.acquire_timeout)
            // Checkpoints run on a task of their own (`checkpoint`), not inside a commit; the
            // automatic one stays as a backstop far above what that task lets the WAL reach.
            .pragma("wal_autocheckpoint", checkpoint::BACKSTOP_PAGES.to_string())
            .log_statements(tracing::log::LevelFilter::Trace);
        let file = options.get_filename();
        let in_memory = file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:");
        let file = (!in_memory).then(|| file.to_path_buf());
        if let Some(parent) = file
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                url: url.redacted(),
                source: sqlx::Error::Io(e),
            })?;
        }
        // An in-memory database exists per connection, so the pool must hold exactly one.
        let max = if in_memory { 1 } else { settings.max_connections };
        // Switching a new database to WAL takes an exclusive lock that SQLite does not wait
        // for, so processes opening the same fresh file together can get SQLITE_BUSY here;
        // retry until the pool's own timeout.
        let deadline = std::time::Instant::now() + settings.acquire_timeout;
        let mut delay = std::time::Duration::from_millis(10);
        let pool = loop {
            let attempt = SqlitePoolOptions::new()
                .max_connections(max)
                .acquire_timeout(settings.acquire_timeout)
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && std::time::Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_millis(200));
                }
                Err(source) => {
                    return Err(StoreError::Connect {
                        url: url.redacted(),
                        source,
                    });
                }
            }
        };
        Ok(Self {
            audit_queue: sql::audit_queue(pool.clone()),
            checkpointer: file
                .is_some()
                .then(|| checkpoint::Checkpointer::start(options.clone(), pool.clone())),
            pool,
            file,
        })
    }
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<i64>, StoreError> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), possibly extended codes.
fn is_busy(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.parse::<i32>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))))
}

/// Holds an exclusive OS file lock for the life of the value.
struct FileLock(std::fs::File);

impl FileLock {
    async fn acquire(path: PathBuf) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let lock = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| StoreError::MigrationLock {
            path: shown.clone(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| StoreError::MigrationLock { path: shown, source })?;
        Ok(Self(lock))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first just makes it prompt.
        let _ = self.0.unlock();
    }
}

impl SqliteStore {
    /// Applies pending migrations under this backend's cross-process lock.
    pub(crate) async fn migrate_locked(&self) -> Result<MigrationReport, StoreError> {
        // sqlx's SQLite migrator has no lock of its own, so two processes starting together
        // would both try to apply the same version. A lock file beside the database serialises them.
        let _guard = match &self.file {
            Some(file) => {
                let mut name = file.clone().into_os_string();
                name.push(super::SQLITE_MIGRATION_LOCK_SUFFIX);
                Some(FileLock::acquire(PathBuf::from(name)).await?)
            }
            None => None,
        };
        // One connection throughout: an in-memory database exists only on it.
        let mut conn = self.pool.acquire().await?;
        let before = applied_versions(&mut conn).await?;
        MIGRATOR
            .run_direct(&mut *conn)
            .await
            .map_err(StoreError::Migrate)?;
        Ok(super::report(&before, applied_versions(&mut conn).await?))
    }

    /// The applied migration versions.
    pub(crate) async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        applied_versions(&mut conn).await
    }

    /// Closes the checkpointer's connection, then the pool's: the last to close checkpoints
    /// the WAL into the file and removes it, as SQLite does on a clean close.
    pub(crate) async fn close_connections(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop().await;
        }
        self.pool.close().await;
    }

    /// Takes the reconciler leadership with this backend's lock, if no other process holds it.
    pub(crate) async fn lead(&self) -> Result<Option<super::Leadership>, StoreError> {
        let Some(file) = &self.file else {
            // An in-memory database belongs to this process alone.
            return Ok(Some(super::Leadership(Box::new(SqliteLeader { lock: None }))));
        };
        let mut name = file.clone().into_os_string();
        name.push(super::SQLITE_LEADER_LOCK_SUFFIX);
        let path = PathBuf::from(name);
        let shown = path.display().to_string();
        let held_path = path.clone();
        let locked = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            match file.try_lock() {
                Ok(()) => Ok(Some(file)),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            }
        })
        .await
        .map_err(|e| StoreError::LeaderLock {
            path: shown.clone(),
            source: std::io::Error::other(e),
        })?
        .map_err(|source| StoreError::LeaderLock { path: shown, source })?;
        Ok(locked.map(|file| {
            super::Leadership(Box::new(SqliteLeader {
                lock: Some((FileLock(file), held_path)),
            }))
        }))
    }
}

/// The locked file holding the leadership and the path it was opened at (none for an
/// in-memory database).
struct SqliteLeader {
    lock: Option<(FileLock, PathBuf)>,
}

#[async_trait]
impl super::LeaderHold for SqliteLeader {
    /// An OS file lock lasts as long as the process and the open file, but it guards the
    /// path only while the path still names that file: once the lock file is removed or
    /// replaced (a cleanup, a restore of the data directory), another process locks a new
    /// file at the same path and leads too. So the holder checks, on every loop, that the
    /// path still names its locked file, and steps down otherwise.
    async fn alive(&mut self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some((FileLock(file), path)) = &self.lock else {
            return true;
        };
        let (Ok(file), path) = (file.try_clone(), path.clone()) else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            let (Ok(held), Ok(named)) = (file.metadata(), std::fs::metadata(&path)) else {
                return false;
            };
            (held.dev(), held.ino()) == (named.dev(), named.ino())
        })
        .await
        .unwrap_or(false)
    }
}
