//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages:
//! that one commit then copies the WAL into the database file and syncs it, several
//! milliseconds, and every caller queued behind it (a group-committed audit batch, say) waits
//! as long. This task runs the same PASSIVE checkpoint on a connection of its own every
//! [`INTERVAL`] instead. PASSIVE never waits for readers or writers: it copies what it can,
//! and writers keep appending to the WAL meanwhile. SQLite rewinds the WAL when a write begins
//! with all of it copied and no reader in it. The pool's connections keep an automatic
//! checkpoint as a backstop at [`BACKSTOP_PAGES`], far beyond what the WAL reaches between two
//! of these, so that a WAL this task cannot keep rewinding (a writer always mid-commit when a
//! checkpoint ends, or the task stopped) is still bounded.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the WAL is checkpointed.
pub(super) const INTERVAL: Duration = Duration::from_millis(250);

/// The pool's automatic checkpoint, in WAL pages (40 MiB of 4 KiB pages): reached only if
/// this task falls behind.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The longest wait between attempts while checkpoints fail (the database unreachable).
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The checkpointing task. [`Checkpointer::stop`] ends it and closes its connection; dropping
/// it aborts the task.
pub(super) struct Checkpointer {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Checkpointer {
    /// Starts checkpointing the database that `options` opens, until [`Checkpointer::stop`]
    /// or until `pool` is closed.
    pub(super) fn start(options: SqliteConnectOptions, pool: SqlitePool) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(options, pool, stopped));
        Self {
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Ends the task and waits until its connection is closed, so that the pool's last
    /// connection to close is the database's last one and SQLite checkpoints and removes the
    /// WAL as it does on a clean close.
    pub(super) async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn run(options: SqliteConnectOptions, pool: SqlitePool, mut stopped: watch::Receiver<bool>) {
    let mut connection: Option<SqliteConnection> = None;
    let mut wait = INTERVAL;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => break,
        }
        if pool.is_closed() {
            break;
        }
        let outcome = match connection.as_mut() {
            Some(conn) => checkpoint(conn).await,
            None => match options.connect().await {
                Ok(mut conn) => {
                    let outcome = checkpoint(&mut conn).await;
                    connection = Some(conn);
                    outcome
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(done) => {
                tracing::trace!(
                    busy = done.busy,
                    frames = done.frames,
                    copied = done.copied,
                    "WAL checkpoint"
                );
                if wait != INTERVAL {
                    tracing::info!(frames = done.frames, "WAL checkpoints work again");
                    wait = INTERVAL;
                }
            }
            Err(e) => {
                // Reported once per outage; the connection is opened afresh, less and less
                // often while it lasts.
                if wait == INTERVAL {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                }
                wait = (wait * 2).min(MAX_RETRY);
                connection = None;
            }
        }
    }
    if let Some(conn) = connection {
        let _ = conn.close().await;
    }
}

/// What one PASSIVE checkpoint reported.
struct Checkpointed {
    /// Whether it could not run (another connection was checkpointing).
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
    /// Frames of those now in the database file.
    copied: i64,
}

/// One PASSIVE checkpoint.
async fn checkpoint(conn: &mut SqliteConnection) -> Result<Checkpointed, sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?;
    Ok(Checkpointed {
        busy: row.try_get::<i64, _>(0)? != 0,
        frames: row.try_get(1)?,
        copied: row.try_get(2)?,
    })
}
