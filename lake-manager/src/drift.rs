//! Lifecycle drift: the document on a bucket no longer equals the one the plane computes
//! (edited by hand, removed, or the policies changed while a put failed). A repair pass puts
//! the desired document back on every enforcing bucket that differs.

use tenancy::placement::PlacementKind;
use tenancy::store::BucketRecord;
use tenancy::tenant::TenantStatus;

use crate::lifecycle::{LifecycleDocument, shard_document};
use crate::provision::{ProvisionError, Provisioner};

/// What one repair pass found and did for a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The bucket holds the desired document.
    InStep,
    /// It differed and the desired document was put back.
    Reapplied,
    /// Left alone: lifecycle is not enforced there, or its tenant is mid-change.
    Skipped(&'static str),
}

impl Provisioner {
    /// The document a recorded bucket should carry, or why it is left alone.
    async fn desired_for(
        &self,
        bucket: &BucketRecord,
    ) -> Result<Result<LifecycleDocument, &'static str>, ProvisionError> {
        if !bucket.lifecycle_enforced || self.storage().lifecycle_support().is_err() {
            return Ok(Err("lifecycle not enforced by this storage"));
        }
        match (bucket.kind, bucket.shard, &bucket.tenant) {
            (PlacementKind::Shared, Some(shard), _) => {
                let overrides = self.store().shard_policies(shard).await?;
                Ok(Ok(shard_document(&self.settings().zones, &overrides, None)))
            }
            (PlacementKind::Dedicated, _, Some(id)) => match self.store().get_tenant(id).await? {
                Some(tenant)
                    if tenant.status == TenantStatus::Ready && self.bucket_of(&tenant) == bucket.name =>
                {
                    Ok(Ok(self.desired_lifecycle(&tenant).await?))
                }
                // Provisioning, migrating or deleting: that flow owns the bucket right now.
                _ => Ok(Err("its tenant is not ready")),
            },
            _ => Ok(Err("the record names no shard or tenant")),
        }
    }

    /// Compares one bucket's lifecycle with the desired document and re-applies on drift.
    pub async fn repair_drift(&self, bucket: &BucketRecord) -> Result<Repair, ProvisionError> {
        let desired = match self.desired_for(bucket).await? {
            Ok(desired) => desired,
            Err(why) => return Ok(Repair::Skipped(why)),
        };
        let wanted = serde_json::to_value(&desired).ok();
        let applied = self.storage().get_lifecycle(&bucket.name).await?;
        if applied.is_some() && applied == wanted {
            return Ok(Repair::InStep);
        }
        self.storage().put_lifecycle(&bucket.name, &desired).await?;
        let reread = self.storage().get_lifecycle(&bucket.name).await?;
        if let Some(mut record) = self.store().get_bucket(&bucket.name).await? {
            record.desired_lifecycle = serde_json::to_string(&desired).ok();
            record.applied_lifecycle = reread.map(|a| a.to_string());
            self.store().upsert_bucket(&record).await?;
        }
        tracing::warn!(bucket = %bucket.name, "lifecycle drift: the desired document was re-applied");
        Ok(Repair::Reapplied)
    }

    /// Runs a repair pass every `every`, the first one `every` after start (provisioning has
    /// just applied the documents then).
    pub fn spawn_drift_worker(self: &std::sync::Arc<Self>, every: std::time::Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                match this.repair_all_drift().await {
                    Ok(fixed) if !fixed.is_empty() => {
                        tracing::info!(buckets = ?fixed, "lifecycle drift repaired")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %tenancy::error_chain(&e), "drift repair pass failed"),
                }
            }
        });
    }

    /// One repair pass over every recorded bucket; returns the buckets re-applied. A failure
    /// on one bucket is logged and does not stop the others.
    pub async fn repair_all_drift(&self) -> Result<Vec<String>, ProvisionError> {
        let mut reapplied = Vec::new();
        for bucket in self.store().list_buckets().await? {
            match self.repair_drift(&bucket).await {
                Ok(Repair::Reapplied) => reapplied.push(bucket.name),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(bucket = %bucket.name, error = %tenancy::error_chain(&e), "drift repair failed")
                }
            }
        }
        Ok(reapplied)
    }
}
