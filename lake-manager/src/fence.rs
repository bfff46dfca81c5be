//! The write fence of placement migrations, both sides. A writer (a group commit, a Kafka
//! flush) takes an [`Intent`] before it commits to a tenant's table and checks the tenant it
//! returns: still `ready` at the placement the writer resolved its roots for, or the writer
//! commits nothing. A migration marks the tenant `migrating`, then [`drain`]s: it waits until
//! no intent is left, so every commit under way has either ended or expired before the copy
//! lists a single object. The store makes the two meet (see `FenceStore::begin_write`); this
//! holds across processes, since the intents are rows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenancy::store::{MetadataStore, StoreError};
use tenancy::tenant::{Tenant, TenantId};
use uuid::Uuid;

/// How long an intent lives: a writer that died holds a migration back at most this long. A
/// commit takes far less (milliseconds to seconds); one still under way when its intent
/// expires is refused by the writer itself (see [`Intent::still_held`]).
pub const LEASE: Duration = Duration::from_secs(120);

/// How often a draining migration looks again.
const POLL: Duration = Duration::from_millis(25);

/// A commit under way: the fence lets no migration copy until it ends (or its lease runs out).
pub struct Intent {
    store: Arc<dyn MetadataStore>,
    id: Uuid,
    taken: Instant,
    ended: bool,
}

impl Intent {
    /// Records the intent and returns the tenant as it is now; `None` when it is gone. The
    /// caller must check the tenant before committing, and commit only while
    /// [`Intent::still_held`].
    pub async fn begin(
        store: &Arc<dyn MetadataStore>,
        tenant: &TenantId,
        writer: &str,
    ) -> Result<(Option<Tenant>, Intent), StoreError> {
        let id = Uuid::now_v7();
        let until = tenancy::now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let taken = Instant::now();
        let found = store.begin_write(tenant, writer, id, until).await?;
        let intent = Intent {
            store: store.clone(),
            id,
            taken,
            // Nothing was recorded for a tenant that is gone or not ready.
            ended: found
                .as_ref()
                .is_none_or(|t| t.status != tenancy::tenant::TenantStatus::Ready),
        };
        Ok((found, intent))
    }

    /// Whether the intent still holds a migration back, with a margin for the commit's own
    /// write: past it, a draining migration may already copy.
    pub fn still_held(&self) -> bool {
        self.taken.elapsed() + Duration::from_secs(10) < LEASE
    }

    /// Removes the intent: the commit ended.
    pub async fn end(mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return; // never recorded
        }
        if let Err(e) = self.store.end_write(self.id).await {
            // It expires with its lease; a migration waits that long at most.
            tracing::warn!(error = %tenancy::error_chain(&e), "cannot remove a write intent");
        }
    }
}

impl Drop for Intent {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        // A writer that unwound (an error, a cancelled task) still lets go at once.
        let (store, id) = (self.store.clone(), self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = store.end_write(id).await;
            });
        }
    }
}

/// Waits until no commit of `tenant` is under way; returns how long that took. Called after
/// the tenant was marked `migrating`, so no new intent can let a commit through.
pub async fn drain(store: &dyn MetadataStore, tenant: &TenantId) -> Result<Duration, StoreError> {
    let started = Instant::now();
    while store.live_writes(tenant, tenancy::now()).await? > 0 {
        tokio::time::sleep(POLL).await;
    }
    Ok(started.elapsed())
}
