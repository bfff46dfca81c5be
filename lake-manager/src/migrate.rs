//! Placement migrations: copy every key of a tenant to its new bucket, verify, switch the
//! placement atomically, and delete the old keys after a grace period. Each phase is recorded,
//! so a crash resumes: copying skips objects already copied intact, cleanup runs when due.

use std::collections::{HashMap, HashSet};
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

/// Copies in flight at once: each is one server-side request, so a migration is bound by
/// request latency (tens of milliseconds on S3), not by bandwidth.
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
            // What each copy must list with: the source's own digest where the copy carried it
            // over intact before a crash, else what the copy reported in this run.
            let mut expected: HashMap<&str, String> = HashMap::new();
            // Copies whose bytes were compared with the source's already, end to end.
            let mut same_bytes: HashSet<&str> = HashSet::new();
            let mut missing = Vec::new();
            for (index, object) in source.iter().enumerate() {
                match present.get(&object.key) {
                    Some(copy) if object.has_content_digest() && copy == object => {
                        // Copied before a crash, and the listing's digest proves it intact.
                        expected.insert(&object.key, object.fingerprint.clone());
                        progress.objects_copied += 1;
                        continue;
                    }
                    // Copied before a crash in parts (or from parts): the listing cannot
                    // tell, so the content decides; only a copy that differs is made again.
                    Some(copy)
                        if copy.size == object.size
                            && !comparable(object, copy)
                            && self.same_content(&from, &to, &object.key).await? =>
                    {
                        expected.insert(&object.key, copy.fingerprint.clone());
                        same_bytes.insert(&object.key);
                        progress.objects_copied += 1;
                        continue;
                    }
                    _ => {}
                }
                missing.push(index);
            }
            // By index: a closure over `&ObjectInfo` would have to hold for every lifetime,
            // which the Send bound of the worker's future cannot prove.
            let (storage, listed) = (self.storage(), &source);
            let (from_bucket, to_bucket) = (from.as_str(), to.as_str());
            let mut copies = futures_util::stream::iter(missing)
                .map(|index: usize| async move {
                    (
                        index,
                        storage.copy_object(from_bucket, &listed[index], to_bucket).await,
                    )
                })
                .buffer_unordered(COPY_CONCURRENCY);
            while let Some((index, reported)) = copies.next().await {
                expected.insert(&source[index].key, reported?);
                progress.objects_copied += 1;
                // At most one progress write a second: the copy is the work, not the count.
                if reported_at.elapsed() >= std::time::Duration::from_secs(1) {
                    self.store().record_migration_progress(id, &progress).await?;
                    reported_at = std::time::Instant::now();
                }
            }
            drop(copies);
            let copied: HashMap<String, ObjectInfo> = self
                .storage()
                .list_objects(&to, &keys)
                .await?
                .into_iter()
                .map(|o| (o.key.clone(), o))
                .collect();
            for object in &source {
                let copy = copied.get(&object.key);
                if let Err(why) = verify_copy(object, copy, expected.get(object.key.as_str())) {
                    return Err(refused(format!("{to}/{}: {why}", object.key)));
                }
                // A copy made in parts lists no digest of its content: compare the content.
                let checked = same_bytes.contains(object.key.as_str());
                if copy.is_some_and(|c| !comparable(object, c))
                    && !checked
                    && !self.same_content(&from, &to, &object.key).await?
                {
                    return Err(refused(format!(
                        "{to}/{}: the content differs from the source's",
                        object.key
                    )));
                }
            }
        }
        self.store().record_migration_progress(id, &progress).await?;
        Ok(())
    }

    /// Whether `key` holds the same bytes in both buckets: by the store's full-object
    /// checksums (CRC64NVME) where both ends keep one, else by reading both ends through
    /// SHA-256.
    async fn same_content(&self, from: &str, to: &str, key: &str) -> Result<bool, ProvisionError> {
        let storage = self.storage();
        let source = storage.content_digest(from, key, true).await?;
        let copy = storage.content_digest(to, key, true).await?;
        if kind_of(&source) == kind_of(&copy) {
            return Ok(source == copy);
        }
        // One end keeps a checksum and the other does not: both are read through.
        let read = async |bucket, digest: String| match kind_of(&digest) {
            "sha256" => Ok::<_, ProvisionError>(digest),
            _ => Ok(storage.content_digest(bucket, key, false).await?),
        };
        Ok(read(from, source).await? == read(to, copy).await?)
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
            if !due {
                continue;
            }
            let id = &migration.tenant;
            let old = Tenant {
                placement: migration.from.clone(),
                ..self.stub(id)
            };
            if bucket_name(&self.settings().bucket_prefix, id, &migration.from)
                == bucket_name(&self.settings().bucket_prefix, id, &migration.to)
            {
                return Err(refused(format!(
                    "{id}: old and new locations are the same bucket"
                )));
            }
            self.purge_storage(&old).await?;
            self.store().finish_migration(id).await?;
            cleaned += 1;
        }
        Ok(cleaned)
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
            created_at: now,
            updated_at: now,
        }
    }
}
