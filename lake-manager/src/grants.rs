//! Tenants' grants, cached for the checks every request makes, and changed through one door.
//!
//! Reads never wait for the database once a tenant is cached. Every process checks the store's
//! grants version at most every [`CHECK_EVERY`] (one single-row read, on the request that finds
//! the check due), and drops its cache when the version moved: a change on any replica reaches
//! every replica within that interval plus one read. A change through this process drops the
//! cache at once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tenancy::audit::AuditEvent;
use tenancy::grants::{Change, Securable, TenantGrants};
use tenancy::store::grants::{ChangeGrantsError, Changed};
use tenancy::store::{MetadataStore, StoreError};
use tenancy::tenant::TenantId;

/// How often the grants version is read. Revocation takes effect within this plus one read,
/// well inside the one second the contract promises.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

/// Tenants cached at once; past it the cache starts again (each tenant is one read to reload).
const CAPACITY: usize = 20_000;

#[derive(Default)]
struct Cache {
    /// Moves on every local drop, so a read that began before one is not cached after it.
    generation: u64,
    /// The version the cached entries were read at or after.
    version: Option<i64>,
    checked_at: Option<Instant>,
    tenants: HashMap<TenantId, Arc<TenantGrants>>,
}

/// The grants service.
pub struct Grants {
    store: Arc<dyn MetadataStore>,
    cache: RwLock<Cache>,
    /// One version check at a time; requests arriving meanwhile use the entries they find.
    check: tokio::sync::Mutex<()>,
    check_every: Duration,
}

impl Grants {
    /// A service over the store, checking the version every [`CHECK_EVERY`].
    pub fn new(store: Arc<dyn MetadataStore>) -> Self {
        Self {
            store,
            cache: RwLock::new(Cache::default()),
            check: tokio::sync::Mutex::new(()),
            check_every: CHECK_EVERY,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the version when the last read is older than the interval, and drops every cached
    /// tenant when it moved.
    async fn check_version(&self) -> Result<(), StoreError> {
        let due = |c: &Cache| c.checked_at.is_none_or(|t| t.elapsed() >= self.check_every);
        if !due(&self.read()) {
            return Ok(());
        }
        let _one = self.check.lock().await;
        let generation = {
            let cache = self.read();
            if !due(&cache) {
                return Ok(());
            }
            cache.generation
        };
        let version = self.store.grants_version().await?;
        let mut cache = self.write();
        // A local change dropped the cache while the version was read: that version may be
        // older than the change, so it is not recorded; the next request reads it again.
        if cache.generation != generation {
            return Ok(());
        }
        if cache.version != Some(version) {
            cache.tenants.clear();
            cache.version = Some(version);
        }
        cache.checked_at = Some(Instant::now());
        Ok(())
    }

    /// A tenant's grants, from the cache when it is current.
    pub async fn of(&self, tenant: &TenantId) -> Result<Arc<TenantGrants>, StoreError> {
        self.check_version().await?;
        let seen = {
            let cache = self.read();
            if let Some(g) = cache.tenants.get(tenant) {
                return Ok(g.clone());
            }
            (cache.version, cache.generation)
        };
        let grants = Arc::new(TenantGrants::new(self.store.list_grants(tenant).await?));
        let mut cache = self.write();
        // Kept only if no change was noticed or made while it was read: an entry read before a
        // change must not outlive the drop that change caused.
        if seen.0.is_some() && (cache.version, cache.generation) == seen {
            if cache.tenants.len() >= CAPACITY {
                cache.tenants.clear();
            }
            cache.tenants.insert(tenant.clone(), grants.clone());
        }
        Ok(grants)
    }

    /// Changes the grants on one securable (see [`tenancy::store::GrantStore::change_grants`]),
    /// and drops this process's cache so the change holds here at once.
    pub async fn change(
        &self,
        tenant: &TenantId,
        securable: &Securable,
        changes: &[Change],
        by: &str,
        audit: &AuditEvent,
    ) -> Result<Changed, ChangeGrantsError> {
        let changed = self
            .store
            .change_grants(tenant, securable, changes, by, audit)
            .await;
        self.forget();
        changed
    }

    /// Drops every cached tenant, so the next read of each goes to the store.
    pub fn forget(&self) {
        let mut cache = self.write();
        cache.tenants.clear();
        cache.version = None;
        cache.checked_at = None;
        cache.generation = cache.generation.wrapping_add(1);
    }
}
