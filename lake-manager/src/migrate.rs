//! Placement migrations: copy every key of a tenant to its new bucket, verify, switch the
//! placement atomically, and delete the old keys after a grace period. Each phase is recorded,
//! so a crash resumes: copying skips objects already copied intact, cleanup runs when due.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;

use tenancy::audit::AuditEvent;
use tenancy::placement::{Placement, PlacementKind};
use tenancy::role::Zone;
use tenancy::store::{MigrationPhase, MigrationRecord};
use tenancy::tenant::{Tenant, TenantId};

use crate::layout::{bucket_name, zone_prefix};
use crate::provision::{ProvisionError, Provisioner, Step};
use crate::storage::{ObjectInfo, StorageError};

/// Checks one copied object against its source: same size, the fingerprint the copy
/// reported, and the source's own digest wherever both sides carry a whole-content digest.
/// Multipart ETags depend on part boundaries, so for those the copy's own part-derived ETag is
/// the check (the S3 backend verifies it against the parts as it completes the upload).
pub fn verify_copy(
    source: &ObjectInfo,
    copy: Option<&ObjectInfo>,
    reported: Option<&String>,
) -> Result<(), String> {
    let Some(copy) = copy else {
        return Err("missing after the copy".to_owned());
    };
    if copy.size != source.size {
        return Err(format!(
            "{} bytes after the copy, {} in the source",
            copy.size, source.size
        ));
    }
    if reported != Some(&copy.fingerprint) {
        return Err(format!(
            "lists with fingerprint {} but the copy reported {}",
            copy.fingerprint,
            reported.map_or("nothing", String::as_str)
        ));
    }
    if source.has_content_digest() && copy.has_content_digest() && source.fingerprint != copy.fingerprint {
        return Err(format!(
            "content digest {} differs from the source's {}",
            copy.fingerprint, source.fingerprint
        ));
    }
    Ok(())
}

/// Objects settled (checked, copied, compared) at once: each copy is one server-side request,
/// so a migration is bound by request latency (tens of milliseconds on S3), not bandwidth.
const COPY_CONCURRENCY: usize = 16;

/// Whether the listing fingerprints of an object and its copy can be compared for equal
/// content: both must be whole-content digests (a multipart ETag is not).
fn comparable(source: &ObjectInfo, copy: &ObjectInfo) -> bool {
    source.has_content_digest() && copy.has_content_digest()
}

/// The algorithm a content digest names (`crc64nvme`, `sha256`).
fn kind_of(digest: &str) -> &str {
    digest.split_once(':').map_or("", |(kind, _)| kind)
}

fn refused(detail: String) -> ProvisionError {
    ProvisionError::Storage(StorageError::Io {
        operation: "migrate",
        target: detail,
        source: std::io::Error::other("refused"),
    })
}

impl Provisioner {
    /// Records the migration and marks the tenant `migrating` (writes are fenced from here).
    pub async fn start_migration(
        &self,
        tenant: &Tenant,
        to: Placement,
        audit: &AuditEvent,
    ) -> Result<MigrationRecord, ProvisionError> {
        let record = MigrationRecord {
            tenant: tenant.id.clone(),
            from: tenant.placement.clone(),
            to,
            phase: MigrationPhase::Copying,
            cleanup_after: None,
            started_at: tenancy::now(),
        };
        self.store().start_migration(&record, audit).await?;
        Ok(record)
    }

    /// Waits for the tenant's commits under way to end (the write fence), provisions the
    /// target, copies and verifies every key, then switches the placement. A copy that cannot
    /// finish (the destination refuses, or stays unavailable past
    /// `storage.migration_give_up_secs`) is rolled back: the tenant stays where its data is,
    /// `ready` again with the reason, and what was copied so far is removed.
    pub async fn copy_and_switch(&self, migration: &MigrationRecord) -> Result<(), ProvisionError> {
        match self.copy_verified(migration).await {
            Ok(()) => self.switch(migration).await,
            Err(e) if self.gives_up(&e, migration) => self.roll_back(migration, &e).await,
            Err(e) => Err(e),
        }
    }

    /// Whether a failed copy is over: retried while only the storage's availability failed
    /// and the migration is younger than its give-up time.
    fn gives_up(&self, error: &ProvisionError, migration: &MigrationRecord) -> bool {
        use tenancy::kind::{Classify, ErrorKind};
        let age = tenancy::now()
            .signed_duration_since(migration.started_at)
            .to_std()
            .unwrap_or_default();
        error.kind() != ErrorKind::Unavailable || age >= self.settings().migration_give_up
    }

    async fn roll_back(
        &self,
        migration: &MigrationRecord,
        error: &ProvisionError,
    ) -> Result<(), ProvisionError> {
        let id = &migration.tenant;
        let chain = tenancy::error_chain(error);
        tracing::warn!(tenant = %id, error = %chain, "the migration cannot finish; rolling back");
        // The tenant's data never left its old place; the partial copy goes (best effort: a
        // destination that refused may refuse this too).
        let prefix = &self.settings().bucket_prefix;
        if bucket_name(prefix, id, &migration.to) != bucket_name(prefix, id, &migration.from) {
            let partial = Tenant {
                placement: migration.to.clone(),
                ..self.stub(id)
            };
            if let Err(e) = self.purge_storage(&partial).await {
                tracing::warn!(tenant = %id, error = %tenancy::error_chain(&e), "cannot remove the partial copy");
            }
        }
        let reason = format!(
            "the move to {} storage was rolled back and the tenant stays where it was: {chain}",
            migration.to.kind.as_str()
        );
        let audit = AuditEvent::system(
            "tenant.migrate.rollback",
            &format!("/v1/tenants/{id}"),
            Some(id.as_str()),
            tenancy::audit::Outcome::Error,
        );
        self.store().abandon_migration(id, &reason, &audit).await?;
        Ok(())
    }

    /// Drains the tenant's commits, provisions the target and copies every key, verified.
    async fn copy_verified(&self, migration: &MigrationRecord) -> Result<(), ProvisionError> {
        let id = &migration.tenant;
        // The tenant is `migrating`: no new commit starts. Before a single object is listed,
        // every commit that started before is over, so none can land behind the copy.
        let waited = crate::fence::drain(self.store().as_ref(), id).await?;
        tracing::info!(tenant = %id, waited_ms = waited.as_millis() as u64, "writes drained; copying");
        let mut progress = tenancy::store::MigrationProgress {
            drained_at: Some(tenancy::now()),
            ..Default::default()
        };
        self.store().record_migration_progress(id, &progress).await?;
        let tenant = self
            .store()
            .get_tenant(id)
            .await?
            .ok_or_else(|| ProvisionError::NoTenant(id.clone()))?;
        let target = Tenant {
            placement: migration.to.clone(),
            ..tenant
        };
        for step in Step::ALL {
            self.run_step(step, &target).await?;
        }
        let prefix = &self.settings().bucket_prefix;
        let from = bucket_name(prefix, id, &migration.from);
        let to = bucket_name(prefix, id, &migration.to);
        // Every zone's listing first, so the tenant shows how many objects there are to copy.
        let mut sources = Vec::with_capacity(Zone::ALL.len());
        for zone in Zone::ALL {
            let keys = zone_prefix(zone, id);
            let source = self.storage().list_objects(&from, &keys).await?;
            progress.objects_total += source.len() as u64;
            sources.push((keys, source));
        }
        self.store().record_migration_progress(id, &progress).await?;
        let mut reported_at = std::time::Instant::now();
        for (keys, source) in sources {
            let present: HashMap<String, ObjectInfo> = self
                .storage()
                .list_objects(&to, &keys)
                .await?
                .into_iter()
                .map(|o| (o.key.clone(), o))
                .collect();
            // What each copy must list with. Every copy whose listing cannot be compared with
            // its source's was compared by content as it was settled.
            let mut expected: HashMap<&str, String> = HashMap::new();
            // By index: a closure over `&ObjectInfo` would have to hold for every lifetime,
            // which the Send bound of the worker's future cannot prove.
            let (listed, present) = (&source, &present);
            let (from_bucket, to_bucket) = (from.as_str(), to.as_str());
            let mut settling = futures_util::stream::iter(0..source.len())
                .map(|index: usize| async move {
                    let object = &listed[index];
                    let settled = self
                        .settle(from_bucket, to_bucket, object, present.get(&object.key))
                        .await;
                    (index, settled)
                })
                .buffer_unordered(COPY_CONCURRENCY);
            while let Some((index, settled)) = settling.next().await {
                expected.insert(source[index].key.as_str(), settled?);
                progress.objects_copied += 1;
                // At most one progress write a second: the copy is the work, not the count.
                if reported_at.elapsed() >= std::time::Duration::from_secs(1) {
                    self.store().record_migration_progress(id, &progress).await?;
                    reported_at = std::time::Instant::now();
                }
            }
            drop(settling);
            let copied: HashMap<String, ObjectInfo> = self
                .storage()
                .list_objects(&to, &keys)
                .await?
                .into_iter()
                .map(|o| (o.key.clone(), o))
                .collect();
            for object in &source {
                if let Err(why) =
                    verify_copy(object, copied.get(&object.key), expected.get(object.key.as_str()))
                {
                    return Err(refused(format!("{to}/{}: {why}", object.key)));
                }
            }
        }
        self.store().record_migration_progress(id, &progress).await?;
        Ok(())
    }

    /// Brings one object's copy about: keeps a copy a crashed run left when it is intact (its
    /// listing shows the source's digest, or, made in parts, its content compares equal),
    /// else copies it; a copy made in parts is compared by content at once. Returns what the
    /// copy's listing must show.
    async fn settle(
        &self,
        from: &str,
        to: &str,
        object: &ObjectInfo,
        present: Option<&ObjectInfo>,
    ) -> Result<String, ProvisionError> {
        if let Some(copy) = present {
            if object.has_content_digest() && copy == object {
                return Ok(object.fingerprint.clone());
            }
            // The listing cannot tell: the content decides, and only a copy that differs is
            // made again.
            if copy.size == object.size
                && !comparable(object, copy)
                && self.same_content(from, to, &object.key).await?
            {
                return Ok(copy.fingerprint.clone());
            }
        }
        let reported = self.storage().copy_object(from, object, to).await?;
        let listed_as = ObjectInfo {
            fingerprint: reported.clone(),
            ..object.clone()
        };
        if !comparable(object, &listed_as) && !self.same_content(from, to, &object.key).await? {
            return Err(refused(format!(
                "{to}/{}: the content differs from the source's",
                object.key
            )));
        }
        Ok(reported)
    }

    /// Whether `key` holds the same bytes in both buckets: by the store's full-object
    /// checksums (CRC64NVME) where both ends keep one, else by reading both ends through
    /// SHA-256.
    async fn same_content(&self, from: &str, to: &str, key: &str) -> Result<bool, ProvisionError> {
        let storage = self.storage();
        let (source, copy) = futures_util::future::try_join(
            storage.content_digest(from, key, true),
            storage.content_digest(to, key, true),
        )
        .await?;
        if kind_of(&source) == kind_of(&copy) {
            return Ok(source == copy);
        }
        // One end keeps a checksum and the other does not: both are read through.
        let read = async |bucket, digest: String| match kind_of(&digest) {
            "sha256" => Ok::<_, StorageError>(digest),
            _ => storage.content_digest(bucket, key, false).await,
        };
        let (source, copy) = futures_util::future::try_join(read(from, source), read(to, copy)).await?;
        Ok(source == copy)
    }

    /// Switches the placement once every key is copied and verified.
    async fn switch(&self, migration: &MigrationRecord) -> Result<(), ProvisionError> {
        let id = &migration.tenant;
        let prefix = &self.settings().bucket_prefix;
        let from = bucket_name(prefix, id, &migration.from);
        let to = bucket_name(prefix, id, &migration.to);
        let cleanup_after =
            tenancy::now() + chrono::Duration::from_std(self.settings().migration_grace).unwrap_or_default();
        self.store()
            .switch_placement(id, &migration.to, cleanup_after)
            .await?;
        if let (PlacementKind::Shared, Some(shard)) = (migration.from.kind, migration.from.shard) {
            self.reapply_shard_lifecycle(&from, shard).await?;
        }
        tracing::info!(tenant = %id, from, to, "placement switched; old keys are deleted after the grace period");
        Ok(())
    }

    /// Deletes the old location of every migration whose grace period has passed.
    pub async fn clean_up_due(&self) -> Result<usize, ProvisionError> {
        let now = tenancy::now();
        let mut cleaned = 0;
        for migration in self.store().migrations().await? {
            let due = migration.phase == MigrationPhase::Cleanup
                && migration.cleanup_after.is_some_and(|t| t <= now);
            if due {
                self.clean_up(&migration).await?;
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    /// The tenant's migration in its grace period, if any, with the old locations it still
    /// keeps.
    pub async fn in_grace(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<(MigrationRecord, Vec<String>)>, ProvisionError> {
        let migration = self
            .store()
            .migrations()
            .await?
            .into_iter()
            .find(|m| &m.tenant == tenant && m.phase == MigrationPhase::Cleanup);
        Ok(migration.map(|m| {
            let old = self.old_location(&m);
            let locations = self.storage_locations(&old);
            (m, locations)
        }))
    }

    /// When a migration in its grace period switched the tenant to its new placement.
    pub fn switched_at(&self, migration: &MigrationRecord) -> Option<chrono::DateTime<chrono::Utc>> {
        let grace = chrono::Duration::from_std(self.settings().migration_grace).unwrap_or_default();
        migration.cleanup_after.map(|after| after - grace)
    }

    /// Deletes a migration's old location now, whether or not its grace period has passed
    /// (an erasure needs the copies of erased rows gone), and finishes the migration.
    pub async fn clean_up(&self, migration: &MigrationRecord) -> Result<(), ProvisionError> {
        let id = &migration.tenant;
        if bucket_name(&self.settings().bucket_prefix, id, &migration.from)
            == bucket_name(&self.settings().bucket_prefix, id, &migration.to)
        {
            return Err(refused(format!(
                "{id}: old and new locations are the same bucket"
            )));
        }
        // Another process may have finished this migration meanwhile (and a new one started,
        // whose destination could be this old location): act only on the one still recorded.
        let current = self
            .store()
            .migrations()
            .await?
            .into_iter()
            .find(|m| &m.tenant == id);
        if current.as_ref() != Some(migration) {
            return Ok(());
        }
        self.purge_storage(&self.old_location(migration)).await?;
        self.store().finish_migration(id).await?;
        Ok(())
    }

    /// The tenant as it was placed before the migration, for purging that location.
    fn old_location(&self, migration: &MigrationRecord) -> Tenant {
        Tenant {
            placement: migration.from.clone(),
            ..self.stub(&migration.tenant)
        }
    }

    /// Removes old locations whose grace period has passed, every `every`. (The copy itself
    /// is a `migrate` worker, resumed by the reconciler after a restart.)
    pub fn spawn_migration_worker(self: &Arc<Self>, every: std::time::Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = this.clean_up_due().await {
                    tracing::error!(error = %tenancy::error_chain(&e), "migration cleanup failed");
                }
            }
        });
    }

    /// A tenant value carrying only the id, for purging a location by placement.
    fn stub(&self, id: &TenantId) -> Tenant {
        let now = tenancy::now();
        Tenant {
            id: id.clone(),
            display_name: String::new(),
            tier: tenancy::tenant::Tier::Standard,
            isolation: tenancy::tenant::Isolation::Auto,
            status: tenancy::tenant::TenantStatus::Ready,
            status_reason: None,
            placement: Placement {
                kind: PlacementKind::Shared,
                shard: None,
                reason: String::new(),
            },
            quotas: tenancy::tenant::Quotas::default(),
            volume_30d_bytes: 0,
            erasure_deadline_days: tenancy::erasure::DEFAULT_DEADLINE_DAYS,
            credential_max_ttl_secs: tenancy::credentials::TENANT_MAX_TTL_DEFAULT,
            created_at: now,
            updated_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(fingerprint: &str) -> ObjectInfo {
        ObjectInfo {
            key: "gold/t/part-0.parquet".to_owned(),
            size: 10,
            fingerprint: fingerprint.to_owned(),
        }
    }

    #[test]
    fn only_whole_content_digests_compare() {
        let md5 = object("\"9e107d9d372bb6826bd81d3542a419d6\"");
        let parts = object("\"d41d8cd98f00b204e9800998ecf8427e-3\"");
        let sha = object("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8");
        assert!(comparable(&md5, &md5));
        assert!(comparable(&sha, &sha));
        assert!(
            !comparable(&md5, &parts),
            "a copy made in parts lists no content digest"
        );
        assert!(!comparable(&parts, &md5), "nor does a source uploaded in parts");
    }

    #[test]
    fn a_digest_names_its_algorithm() {
        assert_eq!(kind_of("crc64nvme:AAAAAAAAAAA="), "crc64nvme");
        assert_eq!(kind_of("sha256:ab12"), "sha256");
        assert_eq!(kind_of("no-colon"), "");
    }
}
