//! The revocation list: revoked token ids, cached for a short TTL so a revocation on one
//! replica takes effect on every replica within that TTL, and at once on the one that revoked.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::{MetadataStore, StoreError};

struct Snapshot {
    revoked: HashSet<Uuid>,
    loaded_at: Option<Instant>,
}

/// Cached revoked token ids.
pub struct RevocationList {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    leeway: Duration,
    snapshot: tokio::sync::Mutex<Snapshot>,
}

impl RevocationList {
    /// A list over the store, refreshed when older than `ttl`; `leeway` is the verifier's.
    pub fn new(store: Arc<dyn MetadataStore>, ttl: Duration, leeway: Duration) -> Self {
        Self {
            store,
            ttl,
            leeway,
            snapshot: tokio::sync::Mutex::new(Snapshot {
                revoked: HashSet::new(),
                loaded_at: None,
            }),
        }
    }

    /// Whether the token is revoked. Fails closed: if the store cannot be read, so does this.
    pub async fn is_revoked(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut snapshot = self.snapshot.lock().await;
        if snapshot.loaded_at.is_none_or(|t| t.elapsed() >= self.ttl) {
            let leeway = chrono::Duration::from_std(self.leeway).unwrap_or_default();
            snapshot.revoked = self
                .store
                .revoked_token_ids(crate::now() - leeway)
                .await?
                .into_iter()
                .collect();
            snapshot.loaded_at = Some(Instant::now());
        }
        Ok(snapshot.revoked.contains(&id))
    }

    /// Records a revocation this process just stored, so it applies here without waiting.
    pub async fn insert(&self, id: Uuid) {
        self.snapshot.lock().await.revoked.insert(id);
    }
}
