//! Tenants and the placement inputs read from them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreError;
use crate::audit::AuditEvent;
use crate::placement::Candidate;
use crate::tenant::{Tenant, TenantId};

/// Everything the placement policy needs about the current tenants.
#[derive(Debug, Clone, Default)]
pub struct PlacementSnapshot {
    /// Every tenant, with its current placement.
    pub tenants: Vec<Candidate>,
    /// Shared tenants per shard, indexed by shard.
    pub shard_fill: Vec<u32>,
}

/// Tenants. Every change writes its audit event in the same transaction.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Stores a new tenant; [`StoreError::Conflict`] when the id exists.
    async fn insert_tenant(&self, tenant: &Tenant, audit: &AuditEvent) -> Result<(), StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Tenants ordered by id after `after`, at most `limit`, optionally only `only`, and only
    /// those whose id or display name contains `search`, case-insensitively as the database's
    /// `LOWER` folds (ASCII on SQLite; Unicode on PostgreSQL), both sides alike.
    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
        only: Option<&TenantId>,
        search: Option<&str>,
    ) -> Result<Vec<Tenant>, StoreError>;
    /// Replaces a tenant's mutable fields; false when it no longer exists.
    async fn update_tenant(&self, tenant: &Tenant, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Deletes a tenant and revokes all its tokens; the number revoked, or `None` if absent.
    /// The id stays reserved until `reusable_at`: [`TenantStore::insert_tenant`] refuses it
    /// ([`StoreError::Reserved`]) before then, and afterwards the id's next tenant sees none of
    /// this one's tokens or audit events.
    async fn delete_tenant(
        &self,
        id: &TenantId,
        at: DateTime<Utc>,
        reusable_at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<u64>, StoreError>;
    /// Records a tenant's 30-day written volume directly (tests; the volume collector sets it
    /// from daily rows with `refresh_volumes`).
    async fn record_volume(&self, id: &TenantId, bytes: u64) -> Result<(), StoreError>;
    /// All tenants' placement inputs.
    async fn placement_snapshot(&self) -> Result<PlacementSnapshot, StoreError>;
    /// Shared tenants per shard, indexed by shard, as [`PlacementSnapshot::shard_fill`] counts
    /// them: one grouped query, no tenant rows.
    async fn shard_fill(&self) -> Result<Vec<u32>, StoreError>;
    /// Every tenant's 30-day volume, bytes, in no order: one column of one query.
    async fn tenant_volumes(&self) -> Result<Vec<u64>, StoreError>;
}

/// A tenant as the placement policy sees it.
pub fn candidate(t: &Tenant) -> Candidate {
    Candidate {
        id: t.id.clone(),
        tier: t.tier,
        isolation: t.isolation,
        volume_30d_bytes: t.volume_30d_bytes,
        current: Some(t.placement.clone()),
    }
}

/// Placement inputs from every tenant: candidates and per-shard fill.
pub(crate) fn snapshot(tenants: Vec<Tenant>) -> PlacementSnapshot {
    let mut shard_fill: Vec<u32> = Vec::new();
    for shard in tenants.iter().filter_map(|t| t.placement.shard) {
        let index = shard as usize;
        if shard_fill.len() <= index {
            shard_fill.resize(index + 1, 0);
        }
        shard_fill[index] += 1;
    }
    PlacementSnapshot {
        tenants: tenants.iter().map(candidate).collect(),
        shard_fill,
    }
}
