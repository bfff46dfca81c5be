//! The revocation list: revoked token ids, cached for a short TTL so a revocation on one
//! replica takes effect on every replica within that TTL, and at once on the one that revoked.
//!
//! Reloads are incremental: after the first, each reads only revocations stamped since the
//! previous reload started, minus an overlap that covers transactions committed late. Revocation times
//! come from the revoking replica's clock, so a replica whose clock lags could stamp one older
//! than the overlap reaches: a full reload every [`FULL_RELOAD_EVERY`] bounds that case.
//! Entries leave once their token has expired past the leeway.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{MetadataStore, StoreError};

/// How far before the previous reload an incremental reload starts.
const OVERLAP: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
/// How often the whole list is read again.
pub const FULL_RELOAD_EVERY: Duration = Duration::from_secs(300);

struct Snapshot {
    /// Revoked ids and when their tokens expire.
    revoked: HashMap<Uuid, DateTime<Utc>>,
    /// When the previous reload started (this process's clock).
    reloaded_from: Option<DateTime<Utc>>,
    loaded_at: Option<Instant>,
    full_at: Option<Instant>,
    last_reload_rows: usize,
}

/// Cached revoked token ids.
pub struct RevocationList {
    store: Arc<dyn MetadataStore>,
    ttl: Duration,
    leeway: Duration,
    /// Read by every request; written only by a reload or a local revocation, so readers
    /// never wait for the database.
    snapshot: RwLock<Snapshot>,
    /// One reload at a time; requests arriving meanwhile wait for it rather than reload too.
    reload: tokio::sync::Mutex<()>,
}

impl RevocationList {
    /// A list over the store, refreshed when older than `ttl`; `leeway` is the verifier's.
    pub fn new(store: Arc<dyn MetadataStore>, ttl: Duration, leeway: Duration) -> Self {
        Self {
            store,
            ttl,
            leeway,
            snapshot: RwLock::new(Snapshot {
                revoked: HashMap::new(),
                reloaded_from: None,
                loaded_at: None,
                full_at: None,
                last_reload_rows: 0,
            }),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.snapshot.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer from the snapshot, if it is fresh.
    fn fresh(&self, id: Uuid) -> Option<bool> {
        let snapshot = self.read();
        snapshot
            .loaded_at
            .is_some_and(|t| t.elapsed() < self.ttl)
            .then(|| snapshot.revoked.contains_key(&id))
    }

    /// Whether the token is revoked. Fails closed: if the store cannot be read, so does this.
    pub async fn is_revoked(&self, id: Uuid) -> Result<bool, StoreError> {
        if let Some(revoked) = self.fresh(id) {
            return Ok(revoked);
        }
        let _reload = self.reload.lock().await;
        // Another request may have reloaded while this one waited.
        if let Some(revoked) = self.fresh(id) {
            return Ok(revoked);
        }
        let leeway = chrono::Duration::from_std(self.leeway).unwrap_or_default();
        let started = crate::now();
        let not_before = started - leeway;
        let (full, since) = {
            let snapshot = self.read();
            let full = snapshot.full_at.is_none_or(|t| t.elapsed() >= FULL_RELOAD_EVERY);
            let since = if full {
                None
            } else {
                snapshot.reloaded_from.map(|t| t - OVERLAP)
            };
            (full, since)
        };
        let rows = self.store.revoked_tokens(not_before, since).await?;
        let mut snapshot = self.write();
        if full {
            snapshot.revoked.clear();
            snapshot.full_at = Some(Instant::now());
        } else {
            snapshot.revoked.retain(|_, expires| *expires > not_before);
        }
        snapshot.last_reload_rows = rows.len();
        for row in rows {
            snapshot.revoked.insert(row.id, row.expires_at);
        }
        snapshot.reloaded_from = Some(started);
        snapshot.loaded_at = Some(Instant::now());
        Ok(snapshot.revoked.contains_key(&id))
    }

    /// Records a revocation this process just stored, so it applies here without waiting.
    pub async fn insert(&self, id: Uuid, expires_at: DateTime<Utc>) {
        // After any reload under way: a full one clears the map, and its query may have
        // started before this revocation committed.
        let _reload = self.reload.lock().await;
        self.write().revoked.insert(id, expires_at);
    }

    /// Rows the last reload read: all revoked tokens on a full reload, the recent ones after.
    pub async fn last_reload_rows(&self) -> usize {
        self.read().last_reload_rows
    }

    /// Ids held.
    pub async fn len(&self) -> usize {
        self.read().revoked.len()
    }

    /// Whether no id is held.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}
