//! Provisioning state: saga steps, zone policies, buckets, placement migrations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::tenant::TenantId;

/// A bucket the plane created (a folder, on local storage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketRecord {
    /// The bucket name.
    pub name: String,
    /// Dedicated or shared.
    pub kind: crate::placement::PlacementKind,
    /// The shard index, for shared buckets.
    pub shard: Option<u32>,
    /// The owner, for dedicated buckets.
    pub tenant: Option<TenantId>,
    /// The lifecycle document the plane wants (JSON).
    pub desired_lifecycle: Option<String>,
    /// The lifecycle document last read back from the bucket (JSON).
    pub applied_lifecycle: Option<String>,
    /// Whether the storage enforces lifecycle rules (false on local storage).
    pub lifecycle_enforced: bool,
    /// When the plane created it.
    pub created_at: DateTime<Utc>,
}

/// Where a placement migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrationPhase {
    /// Keys are being copied and verified; the tenant is `migrating`.
    Copying,
    /// The placement switched; the old keys wait for the grace period, then go.
    Cleanup,
}

/// A placement migration in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// Where its data was.
    pub from: crate::placement::Placement,
    /// Where its data goes.
    pub to: crate::placement::Placement,
    /// The phase.
    pub phase: MigrationPhase,
    /// When the old keys may be deleted (cleanup phase).
    pub cleanup_after: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// How far a migration is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrationProgress {
    /// When no commit of the tenant was under way any more, so the copy could begin.
    pub drained_at: Option<DateTime<Utc>>,
    /// Objects the copy listed.
    pub objects_total: u64,
    /// Of those, copied and verified.
    pub objects_copied: u64,
}

impl MigrationRecord {
    /// Where the migration is, given its progress: `draining` (commits under way may still
    /// land), `copying`, or `cleanup` (switched; the old keys go after the grace period).
    pub fn stage(&self, progress: &MigrationProgress) -> &'static str {
        match (self.phase, progress.drained_at) {
            (MigrationPhase::Cleanup, _) => "cleanup",
            (_, Some(_)) => "copying",
            (_, None) => "draining",
        }
    }
}

/// A shared shard's tenants' zone policies, as [`ProvisioningStore::shard_policies`] lists them.
pub type ShardPolicies = [(TenantId, crate::role::Zone, crate::zone::ZonePolicy)];

/// A limit on what a shared shard's zone policies may add up to (its lifecycle rule budget),
/// checked by the store inside the write that would break it.
pub struct ShardBudget<'a> {
    /// The shard the tenant is placed in.
    pub shard: u32,
    /// Whether the shard's policies, the new one included, fit; the reason when not.
    pub fits: &'a (dyn Fn(&ShardPolicies) -> Result<(), String> + Send + Sync),
}

/// Provisioning state: saga steps, zone policies and buckets.
#[async_trait]
pub trait ProvisioningStore: Send + Sync {
    /// Sets a tenant's status and reason.
    async fn set_tenant_status(
        &self,
        id: &TenantId,
        status: crate::tenant::TenantStatus,
        reason: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Tenants in a status, e.g. to resume provisioning after a restart.
    async fn tenants_with_status(
        &self,
        status: crate::tenant::TenantStatus,
    ) -> Result<Vec<TenantId>, StoreError>;
    /// Steps of the provisioning saga already done for a tenant.
    async fn provisioning_steps(&self, id: &TenantId) -> Result<Vec<String>, StoreError>;
    /// Records a finished step; recording it twice keeps the first.
    async fn record_step(&self, id: &TenantId, step: &str, detail: &str) -> Result<(), StoreError>;
    /// A tenant's own zone policies (zones without one use the platform default).
    async fn zone_policies(
        &self,
        id: &TenantId,
    ) -> Result<Vec<(crate::role::Zone, crate::zone::ZonePolicy)>, StoreError>;
    /// Stores a tenant's zone policy, with its audit event. With a `budget`, the policies of
    /// the shard as they would be after the write are checked by it in the same transaction,
    /// and writes under a budget for one shard are serialized, so racing overrides cannot
    /// together pass a limit each checked alone; a refusal is [`StoreError::OverBudget`] and
    /// stores nothing.
    async fn put_zone_policy(
        &self,
        id: &TenantId,
        zone: crate::role::Zone,
        policy: &crate::zone::ZonePolicy,
        audit: &AuditEvent,
        budget: Option<&ShardBudget<'_>>,
    ) -> Result<(), StoreError>;
    /// The zone policies of every tenant placed in a shared shard.
    async fn shard_policies(
        &self,
        shard: u32,
    ) -> Result<Vec<(TenantId, crate::role::Zone, crate::zone::ZonePolicy)>, StoreError>;
    /// Inserts a bucket, or updates its lifecycle fields if it exists.
    async fn upsert_bucket(&self, bucket: &BucketRecord) -> Result<(), StoreError>;
    /// One bucket.
    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, StoreError>;
    /// Every bucket, by name.
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, StoreError>;
    /// Up to `limit` buckets by name, after the `after` cursor.
    async fn list_buckets_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<BucketRecord>, StoreError>;
    /// Forgets a bucket that was removed.
    async fn delete_bucket_record(&self, name: &str) -> Result<(), StoreError>;
    /// Records a migration and marks the tenant `migrating`, with its audit event;
    /// [`StoreError::Conflict`] while one is in flight (its cleanup phase included).
    async fn start_migration(
        &self,
        migration: &MigrationRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// Every migration in flight.
    async fn migrations(&self) -> Result<Vec<MigrationRecord>, StoreError>;
    /// Atomically moves the tenant to its new placement, marks it `ready`, and puts the
    /// migration in its cleanup phase.
    async fn switch_placement(
        &self,
        tenant: &TenantId,
        to: &crate::placement::Placement,
        cleanup_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Forgets a finished migration.
    async fn finish_migration(&self, tenant: &TenantId) -> Result<(), StoreError>;
    /// Ends a migration that cannot finish before its switch: the record and its progress go,
    /// and the tenant, still at its old placement, is `ready` again with `reason`, with the
    /// audit event. Does nothing (`false`) when the tenant is no longer migrating.
    async fn abandon_migration(
        &self,
        tenant: &TenantId,
        reason: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// Records how far the tenant's migration is (replacing what was recorded).
    async fn record_migration_progress(
        &self,
        tenant: &TenantId,
        progress: &MigrationProgress,
    ) -> Result<(), StoreError>;
    /// How far the tenant's migration is; `None` before its copy began.
    async fn migration_progress(&self, tenant: &TenantId) -> Result<Option<MigrationProgress>, StoreError>;
}
