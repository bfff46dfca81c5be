//! The provisioning saga: bucket, hardening, IAM, lifecycle, zone roots. Each step is
//! idempotent and recorded, so a crash or a failure resumes from the first step not done and
//! never creates a second bucket.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenancy::kind::{Class, Classify, ErrorKind};
use tenancy::placement::PlacementKind;
use tenancy::role::Zone;
use tenancy::store::{BucketRecord, MetadataStore, StoreError};
use tenancy::tenant::{Tenant, TenantId, TenantStatus};
use tenancy::zone::{ZonePolicy, ZonesConfig};

use tenancy::iam::{dedicated_role_policy, role_name, shard_role_policy, trust_policy};

use crate::identity::IamAdmin;
use crate::layout::{bucket_name, zone_prefix};
use crate::lifecycle::{LifecycleDocument, dedicated_document, shard_document};
use crate::storage::{ObjectStorageAdmin, StorageError};

/// The saga's steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Create the dedicated bucket, or the shared shard if it does not exist yet.
    Bucket,
    /// Public access block, default encryption, ownership controls, tags.
    Hardening,
    /// Roles and policies.
    Iam,
    /// The bucket's lifecycle document.
    Lifecycle,
    /// The tenant's zone prefixes.
    ZoneRoots,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 5] = [
        Step::Bucket,
        Step::Hardening,
        Step::Iam,
        Step::Lifecycle,
        Step::ZoneRoots,
    ];

    /// The recorded name.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Bucket => "bucket",
            Step::Hardening => "hardening",
            Step::Iam => "iam",
            Step::Lifecycle => "lifecycle",
            Step::ZoneRoots => "zone_roots",
        }
    }
}

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A storage call failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The tenant does not exist (deleted meanwhile).
    #[error("no tenant {0}")]
    NoTenant(TenantId),
    /// The tenant's state does not allow the change now (its placement moves only while it
    /// is `ready`).
    #[error("{0}")]
    NotReady(String),
}

impl Classify for ProvisionError {
    fn class(&self) -> Class {
        match self {
            ProvisionError::Store(e) => e.class(),
            ProvisionError::Storage(e) => e.class(),
            ProvisionError::NoTenant(_) => ErrorKind::NotFound.class(),
            ProvisionError::NotReady(_) => ErrorKind::Conflict.class(),
        }
    }
}

/// Provisioning settings.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// Bucket name prefix.
    pub bucket_prefix: String,
    /// Platform zone defaults.
    pub zones: ZonesConfig,
    /// IAM role management; `None` when `storage.s3.iam.enabled` is false.
    pub iam: Option<IamSettings>,
    /// Attempts per step before the tenant is marked failed.
    pub attempts: u32,
    /// First retry delay; doubled each attempt.
    pub backoff: Duration,
    /// How long a migrated tenant's old keys are kept before deletion.
    pub migration_grace: Duration,
    /// How long a migration whose storage stays unavailable is retried before it is rolled
    /// back.
    pub migration_give_up: Duration,
}

/// IAM settings.
#[derive(Debug, Clone)]
pub struct IamSettings {
    /// The principal (ARN) allowed to assume data roles and tag sessions.
    pub broker_principal: String,
    /// An optional permissions boundary (ARN) for every role created.
    pub permissions_boundary: Option<String>,
}

/// Runs and resumes provisioning.
pub struct Provisioner {
    store: Arc<dyn MetadataStore>,
    storage: Arc<dyn ObjectStorageAdmin>,
    iam: Option<Arc<dyn IamAdmin>>,
    settings: ProvisionSettings,
    // One run per tenant per process; across replicas the steps' idempotence keeps it safe.
    running: Mutex<HashSet<TenantId>>,
}

/// The effective policy of every zone: the tenant's own, or the platform default.
pub fn effective_policies(defaults: &ZonesConfig, own: &[(Zone, ZonePolicy)]) -> Vec<(Zone, ZonePolicy)> {
    Zone::ALL
        .into_iter()
        .map(|zone| {
            let policy = own.iter().find(|(z, _)| *z == zone).map(|(_, p)| p.clone());
            (zone, policy.unwrap_or_else(|| defaults.get(zone).policy.clone()))
        })
        .collect()
}

impl Provisioner {
    /// A provisioner over the store and storage, with IAM when it is enabled.
    pub fn new(
        store: Arc<dyn MetadataStore>,
        storage: Arc<dyn ObjectStorageAdmin>,
        iam: Option<Arc<dyn IamAdmin>>,
        settings: ProvisionSettings,
    ) -> Self {
        Self {
            store,
            storage,
            iam,
            settings,
            running: Mutex::new(HashSet::new()),
        }
    }

    /// The data role of a tenant's placement.
    pub fn role_of(&self, tenant: &Tenant) -> String {
        match tenant.placement.kind {
            PlacementKind::Dedicated => role_name(&self.settings.bucket_prefix, Some(&tenant.id), None),
            PlacementKind::Shared => role_name(&self.settings.bucket_prefix, None, tenant.placement.shard),
        }
    }

    /// The bucket a tenant's placement puts it in.
    pub fn bucket_of(&self, tenant: &Tenant) -> String {
        bucket_name(&self.settings.bucket_prefix, &tenant.id, &tenant.placement)
    }

    /// The lifecycle document a tenant's bucket should carry now.
    pub async fn desired_lifecycle(&self, tenant: &Tenant) -> Result<LifecycleDocument, StoreError> {
        match (tenant.placement.kind, tenant.placement.shard) {
            (PlacementKind::Shared, Some(shard)) => {
                let overrides = self.store.shard_policies(shard).await?;
                Ok(shard_document(&self.settings.zones, &overrides, None))
            }
            _ => {
                let own = self.store.zone_policies(&tenant.id).await?;
                Ok(dedicated_document(
                    &tenant.id,
                    &effective_policies(&self.settings.zones, &own),
                    None,
                ))
            }
        }
    }

    /// Runs the saga to the end, retrying each step; marks the tenant `ready`, or `failed` with
    /// the failing step and error. A concurrent run for the same tenant returns at once.
    pub async fn provision(&self, id: &TenantId) -> Result<TenantStatus, ProvisionError> {
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            if !running.insert(id.clone()) {
                return Ok(TenantStatus::Provisioning);
            }
        }
        let outcome = self.run(id).await;
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        outcome
    }

    async fn run(&self, id: &TenantId) -> Result<TenantStatus, ProvisionError> {
        let done = self.store.provisioning_steps(id).await?;
        for step in Step::ALL {
            if done.iter().any(|d| d == step.as_str()) {
                continue;
            }
            let mut delay = self.settings.backoff;
            let mut attempt = 1;
            let detail = loop {
                let tenant = self
                    .store
                    .get_tenant(id)
                    .await?
                    .ok_or_else(|| ProvisionError::NoTenant(id.clone()))?;
                match self.step(step, &tenant).await {
                    Ok(detail) => break detail,
                    Err(e) if attempt < self.settings.attempts => {
                        tracing::warn!(tenant = %id, step = step.as_str(), attempt, error = %tenancy::error_chain(&e), "provisioning step failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                        attempt += 1;
                    }
                    Err(e) => {
                        let reason = format!(
                            "step {} failed after {attempt} attempts: {}",
                            step.as_str(),
                            tenancy::error_chain(&e)
                        );
                        tracing::error!(tenant = %id, %reason, "provisioning failed");
                        self.store
                            .set_tenant_status(id, TenantStatus::Failed, Some(&reason))
                            .await?;
                        return Ok(TenantStatus::Failed);
                    }
                }
            };
            self.store.record_step(id, step.as_str(), &detail).await?;
        }
        self.store
            .set_tenant_status(id, TenantStatus::Ready, None)
            .await?;
        tracing::info!(tenant = %id, "tenant storage ready");
        Ok(TenantStatus::Ready)
    }

    /// Runs one saga step for the tenant as given (migrations pass the target placement).
    pub(crate) async fn run_step(&self, step: Step, tenant: &Tenant) -> Result<String, ProvisionError> {
        self.step(step, tenant).await
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn ObjectStorageAdmin> {
        &self.storage
    }

    async fn step(&self, step: Step, tenant: &Tenant) -> Result<String, ProvisionError> {
        let bucket = self.bucket_of(tenant);
        match step {
            Step::Bucket => {
                let created = self.storage.ensure_bucket(&bucket).await?;
                crate::faults::point("provision.bucket");
                if self.store.get_bucket(&bucket).await?.is_none() {
                    let record = BucketRecord {
                        name: bucket.clone(),
                        kind: tenant.placement.kind,
                        shard: tenant
                            .placement
                            .shard
                            .filter(|_| tenant.placement.kind == PlacementKind::Shared),
                        tenant: (tenant.placement.kind == PlacementKind::Dedicated)
                            .then(|| tenant.id.clone()),
                        desired_lifecycle: None,
                        applied_lifecycle: None,
                        lifecycle_enforced: self.storage.lifecycle_support().is_ok(),
                        created_at: tenancy::now(),
                    };
                    self.store.upsert_bucket(&record).await?;
                }
                Ok(if created {
                    format!("created {bucket}")
                } else {
                    format!("{bucket} exists")
                })
            }
            Step::Hardening => {
                let mut tags = vec![("lakeplane:zone".to_owned(), "all".to_owned())];
                match (tenant.placement.kind, tenant.placement.shard) {
                    (PlacementKind::Shared, Some(shard)) => {
                        tags.push(("lakeplane:shard".to_owned(), shard.to_string()))
                    }
                    _ => tags.push(("lakeplane:tenant".to_owned(), tenant.id.to_string())),
                }
                let applied = self.storage.harden(&bucket, &tags).await?;
                crate::faults::point("provision.hardening");
                Ok(applied)
            }
            Step::Iam => {
                let (Some(iam), Some(settings)) = (&self.iam, &self.settings.iam) else {
                    return Ok("skipped: storage.s3.iam.enabled is false".to_owned());
                };
                let role = self.role_of(tenant);
                let policy = match tenant.placement.kind {
                    PlacementKind::Dedicated => dedicated_role_policy(&bucket),
                    PlacementKind::Shared => shard_role_policy(&bucket),
                };
                let trust = trust_policy(&settings.broker_principal);
                let created = iam
                    .ensure_role(&role, &trust, settings.permissions_boundary.as_deref())
                    .await?;
                crate::faults::point("provision.iam.role");
                iam.put_policy(&role, &policy).await?;
                crate::faults::point("provision.iam.policy");
                Ok(if created {
                    format!("created role {role}")
                } else {
                    format!("role {role} exists; policies converged")
                })
            }
            Step::Lifecycle => self.apply_lifecycle(tenant, &bucket).await,
            Step::ZoneRoots => {
                for zone in Zone::ALL {
                    self.storage
                        .ensure_prefix(&bucket, &zone_prefix(zone, &tenant.id))
                        .await?;
                }
                crate::faults::point("provision.zone_roots");
                Ok("bronze, silver and gold prefixes exist".to_owned())
            }
        }
    }

    /// Computes the bucket's desired document, puts it, reads back what the bucket has, and
    /// records both. Also used to re-apply after a zone policy change or drift.
    pub async fn apply_lifecycle(&self, tenant: &Tenant, bucket: &str) -> Result<String, ProvisionError> {
        let desired = self.desired_lifecycle(tenant).await?;
        self.storage.put_lifecycle(bucket, &desired).await?;
        crate::faults::point("provision.lifecycle");
        let applied = self.storage.get_lifecycle(bucket).await?;
        let mut record = match self.store.get_bucket(bucket).await? {
            Some(record) => record,
            None => {
                return Err(ProvisionError::Store(StoreError::Corrupt(format!(
                    "bucket {bucket} is not recorded"
                ))));
            }
        };
        record.desired_lifecycle = serde_json::to_string(&desired).ok();
        record.applied_lifecycle = applied.map(|a| a.to_string());
        record.lifecycle_enforced = self.storage.lifecycle_support().is_ok();
        self.store.upsert_bucket(&record).await?;
        Ok(match self.storage.lifecycle_support() {
            Ok(()) => format!("{} rules applied", desired.rules.len()),
            Err(why) => format!("{} rules computed, not enforced: {why}", desired.rules.len()),
        })
    }

    /// Resumes every tenant left `provisioning` (after a crash or restart).
    pub async fn resume_all(self: &Arc<Self>) -> Result<usize, StoreError> {
        let pending = self.store.tenants_with_status(TenantStatus::Provisioning).await?;
        let count = pending.len();
        for id in pending {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.provision(&id).await {
                    tracing::error!(tenant = %id, error = %e, "resuming provisioning failed");
                }
            });
        }
        Ok(count)
    }

    /// Recomputes and re-applies a shared shard's lifecycle (after a tenant leaves it).
    pub async fn reapply_shard_lifecycle(&self, bucket: &str, shard: u32) -> Result<(), ProvisionError> {
        let overrides = self.store.shard_policies(shard).await?;
        let desired = shard_document(&self.settings.zones, &overrides, None);
        self.storage.put_lifecycle(bucket, &desired).await?;
        let applied = self.storage.get_lifecycle(bucket).await?;
        if let Some(mut record) = self.store.get_bucket(bucket).await? {
            record.desired_lifecycle = serde_json::to_string(&desired).ok();
            record.applied_lifecycle = applied.map(|a| a.to_string());
            self.store.upsert_bucket(&record).await?;
        }
        Ok(())
    }

    /// The storage settings in use.
    pub fn settings(&self) -> &ProvisionSettings {
        &self.settings
    }

    /// Removes a tenant's storage: its dedicated bucket, or its prefixes in the shared shard
    /// (then the shard's lifecycle is recomputed without its rules). Returns objects removed
    /// and the locations cleared.
    pub async fn purge_storage(&self, tenant: &Tenant) -> Result<(u64, Vec<String>), ProvisionError> {
        let bucket = self.bucket_of(tenant);
        match tenant.placement.kind {
            PlacementKind::Dedicated => {
                let objects = self.storage.delete_bucket(&bucket).await?;
                self.store.delete_bucket_record(&bucket).await?;
                if let Some(iam) = &self.iam {
                    iam.delete_role(&self.role_of(tenant)).await?;
                }
                Ok((objects, self.storage_locations(tenant)))
            }
            PlacementKind::Shared => {
                let mut objects = 0;
                for zone in Zone::ALL {
                    objects += self
                        .storage
                        .delete_prefix(&bucket, &zone_prefix(zone, &tenant.id))
                        .await?;
                }
                Ok((objects, self.storage_locations(tenant)))
            }
        }
    }

    /// Where a tenant's placement keeps its objects: its dedicated bucket, or its zones'
    /// prefixes in the shared shard.
    pub fn storage_locations(&self, tenant: &Tenant) -> Vec<String> {
        let bucket = self.storage.bucket_uri(&self.bucket_of(tenant));
        match tenant.placement.kind {
            PlacementKind::Dedicated => vec![bucket],
            PlacementKind::Shared => Zone::ALL
                .into_iter()
                .map(|zone| format!("{bucket}/{}", zone_prefix(zone, &tenant.id)))
                .collect(),
        }
    }
}
