//! The write fence of placement migrations: commits under way record an intent, and a
//! migration waits until none is left before it copies.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::tenant::{Tenant, TenantId};

/// Write intents.
#[async_trait]
pub trait FenceStore: Send + Sync {
    /// Records that `writer` is about to commit to a table of `tenant`, until `until` at the
    /// latest, and returns the tenant as read in the same transaction, holding its row: a
    /// migration that marks the tenant `migrating` either committed first (the tenant read
    /// here says so, and the writer must not commit) or waits for this transaction, and then
    /// sees the intent. `None` (and no intent) when the tenant is gone; no intent either when
    /// the tenant is not `ready`, since the writer must not commit then.
    async fn begin_write(
        &self,
        tenant: &TenantId,
        writer: &str,
        id: Uuid,
        until: DateTime<Utc>,
    ) -> Result<Option<Tenant>, StoreError>;

    /// Removes an intent (the commit ended, one way or the other).
    async fn end_write(&self, id: Uuid) -> Result<(), StoreError>;

    /// The tenant's commits under way at `now`: intents that have not expired, and
    /// maintenance and pipeline runs holding a live lease (they commit while they hold it).
    async fn live_writes(&self, tenant: &TenantId, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
