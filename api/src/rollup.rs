//! The process's audit roll-up (see [`tenancy::rollup`]): requests no one answers for are
//! counted in memory and written as one row per network, actor, action and window when the
//! window ends, and at shutdown.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tenancy::rollup::{Rollup, Unattributed};
use tenancy::store::MetadataStore;

use crate::error::chain;

/// The shared roll-up.
#[derive(Debug)]
pub struct AuditRollup {
    rollup: Mutex<Rollup>,
    window: Duration,
}

impl AuditRollup {
    /// A roll-up with `window`-long windows of at most `max_rows` rows each (plus overflow).
    pub fn new(window: Duration, max_rows: usize) -> Self {
        Self {
            rollup: Mutex::new(Rollup::new(window, max_rows)),
            window,
        }
    }

    /// Counts one request: a map update, no I/O.
    pub fn record(&self, request: &Unattributed<'_>) {
        self.rollup
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(request);
    }

    /// Writes the rows of every ended window (every window when `all`). Rows that cannot be
    /// written are logged with their counts: the roll-up must not grow without bound while
    /// the database is away.
    pub async fn flush(&self, store: &dyn MetadataStore, all: bool) -> usize {
        let rows = {
            let mut rollup = self.rollup.lock().unwrap_or_else(PoisonError::into_inner);
            if all {
                rollup.drain_all()
            } else {
                rollup.drain_closed(tenancy::now())
            }
        };
        let mut written = 0;
        for row in &rows {
            match store.append_audit(row).await {
                Ok(()) => written += 1,
                Err(e) => tracing::error!(
                    error = %chain(&e),
                    action = %row.action,
                    occurrences = row.occurrences,
                    source = row.source.as_deref().unwrap_or_default(),
                    "could not write a rolled-up audit row"
                ),
            }
        }
        written
    }

    /// Flushes each window soon after it ends, until the process exits.
    pub fn spawn_flusher(self: &Arc<Self>, store: Arc<dyn MetadataStore>) {
        let weak = Arc::downgrade(self);
        let period = self.window.min(Duration::from_secs(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(rollup) = weak.upgrade() else { break };
                rollup.flush(store.as_ref(), false).await;
            }
        });
    }
}
