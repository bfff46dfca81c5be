//! Tenant workflows: create (place, record, provision in the background), change placement,
//! and rebalance. The HTTP handlers validate and authorize, then call these; the decisions
//! (where a tenant goes, whether its data must move) are made here and in `tenancy::placement`.

use std::sync::Arc;

use serde::Serialize;
use tenancy::audit::{Actor, Outcome};
use tenancy::placement::{Candidate, Move, Placement, PlacementConfig, Ranking, place, plan_rebalance};
use tenancy::store::{MetadataStore, PlacementSnapshot, candidate};
use tenancy::tenant::{Isolation, Quotas, Tenant, TenantId, TenantStatus, Tier};
use tenancy::token::RevocationList;

use crate::provision::{ProvisionError, Provisioner, Step};

/// A tenant to create, already validated.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Its id.
    pub id: TenantId,
    /// Its display name.
    pub display_name: String,
    /// Its tier.
    pub tier: Tier,
    /// Its placement override.
    pub isolation: Isolation,
    /// Its quotas.
    pub quotas: Quotas,
    /// Days within which an erasure must complete.
    pub erasure_deadline_days: u32,
    /// The longest lifetime of credentials vended for it, seconds.
    pub credential_max_ttl_secs: u32,
}

/// What a rebalance planned and, unless it was a dry run, started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebalanceOutcome {
    /// Shared to dedicated.
    pub promotions: Vec<Move>,
    /// Dedicated to shared.
    pub demotions: Vec<Move>,
    /// Tenants whose data migration started.
    pub migrating: Vec<TenantId>,
    /// Tenants without storage yet, simply re-placed.
    pub replaced: Vec<TenantId>,
    /// Tenants left as they are, and why.
    pub skipped: Vec<(TenantId, String)>,
}

/// What deleting a tenant removes (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Tokens revoked (that would be).
    pub tokens_revoked: u64,
    /// Objects erased (that would be).
    pub objects_erased: u64,
    /// Storage locations removed with the tenant.
    pub storage_locations: Vec<String>,
}

/// Tenants' lifecycle over the store and the provisioner.
pub struct Tenants {
    store: Arc<dyn MetadataStore>,
    provisioner: Arc<Provisioner>,
    placement: PlacementConfig,
    /// Wakes the reconciler, which starts the `migrate` worker of a migration just recorded.
    wake: Arc<tokio::sync::Notify>,
    /// This process's revoked token ids: a deleted tenant's tokens stop here at once.
    revocations: Arc<RevocationList>,
    /// How long a deleted tenant's id stays reserved.
    id_reuse_after: std::time::Duration,
}

impl Tenants {
    /// The service over the provisioner's store, placing by `placement`; `wake` is the
    /// reconciler's, `revocations` the token verifier's.
    pub fn new(
        provisioner: Arc<Provisioner>,
        placement: PlacementConfig,
        wake: Arc<tokio::sync::Notify>,
        revocations: Arc<RevocationList>,
    ) -> Self {
        Self {
            store: provisioner.store().clone(),
            provisioner,
            placement,
            wake,
            revocations,
            id_reuse_after: std::time::Duration::from_secs(31 * 24 * 3600),
        }
    }

    /// Keeps a deleted tenant's id reserved for `period`: longer than any token, STS session or
    /// external token naming it can live, so none reaches the id's next tenant.
    #[must_use]
    pub fn with_id_reuse_after(mut self, period: std::time::Duration) -> Self {
        self.id_reuse_after = period;
        self
    }

    /// Places a new tenant among the others, records it (`provisioning`, with its audit
    /// event) and provisions its storage in the background; `Conflict` when the id is taken.
    pub async fn create(&self, new: NewTenant, actor: &Actor) -> Result<Tenant, ProvisionError> {
        // A new tenant has no data and no placement yet; it is ranked among the others.
        let newcomer = Candidate {
            id: new.id,
            tier: new.tier,
            isolation: new.isolation,
            volume_30d_bytes: 0,
            current: None,
        };
        let snapshot = self.store.placement_snapshot().await?;
        let placement = self.place(&newcomer, &snapshot);
        let now = tenancy::now();
        let tenant = Tenant {
            id: newcomer.id,
            display_name: new.display_name,
            tier: new.tier,
            isolation: new.isolation,
            status: TenantStatus::Provisioning,
            status_reason: None,
            placement,
            quotas: new.quotas,
            volume_30d_bytes: 0,
            erasure_deadline_days: new.erasure_deadline_days,
            credential_max_ttl_secs: new.credential_max_ttl_secs,
            created_at: now,
            updated_at: now,
        };
        let audit = actor.event(
            "tenant.create",
            &path(&tenant.id),
            Some(tenant.id.as_str()),
            Outcome::Success,
        );
        self.store.insert_tenant(&tenant, &audit).await?;
        let provisioner = self.provisioner.clone();
        let id = tenant.id.clone();
        // The tenant reads `provisioning` until the saga finishes; a failure is recorded on it
        // (status `failed` with the reason), and start-up resumes an interrupted saga.
        tokio::spawn(async move {
            if let Err(e) = provisioner.provision(&id).await {
                tracing::error!(tenant = %id, error = %tenancy::error_chain(&e), "provisioning stopped");
            }
        });
        Ok(tenant)
    }

    /// Saves changes to a tenant. When its tier or isolation changed, it is placed again;
    /// a new placement kind for a tenant that already has storage starts a migration (the
    /// tenant must be `ready`) instead of moving it at once. Returns the tenant as stored;
    /// `None` when it is gone.
    pub async fn update(
        &self,
        mut tenant: Tenant,
        replace: bool,
        actor: &Actor,
    ) -> Result<Option<Tenant>, ProvisionError> {
        let target = path(&tenant.id);
        if replace {
            let snapshot = self.store.placement_snapshot().await?;
            let placement = self.place(&candidate(&tenant), &snapshot);
            if placement.kind != tenant.placement.kind && self.has_storage(&tenant.id).await? {
                ready_to_move(&tenant)?;
                // A refused change must change nothing: refuse before saving tier and
                // isolation if the last migration has not finished (its cleanup included).
                if self
                    .store
                    .migrations()
                    .await?
                    .iter()
                    .any(|m| m.tenant == tenant.id)
                {
                    return Err(already_migrating(&tenant.id));
                }
                // Tier and isolation are saved now, with the old placement; the switch follows
                // the copy.
                tenant.updated_at = tenancy::now();
                let update = actor.event(
                    "tenant.update",
                    &target,
                    Some(tenant.id.as_str()),
                    Outcome::Success,
                );
                if !self.store.update_tenant(&tenant, &update).await? {
                    return Ok(None);
                }
                self.begin_migration(&tenant, placement, actor).await?;
                return Ok(self.store.get_tenant(&tenant.id).await?);
            }
            tenant.placement = placement;
        }
        tenant.updated_at = tenancy::now();
        let audit = actor.event(
            "tenant.update",
            &target,
            Some(tenant.id.as_str()),
            Outcome::Success,
        );
        Ok(self.store.update_tenant(&tenant, &audit).await?.then_some(tenant))
    }

    /// Plans the promotions and demotions the placement policy wants (with hysteresis) and,
    /// unless `dry_run`, starts them, largest 30-day volume first: tenants with storage
    /// migrate, at most `placement.max_concurrent_migrations` at once counting those already
    /// under way; the others are re-placed. A dry run walks the same steps without taking
    /// them, so its `migrating`, `replaced` and `skipped` are what a run would do now. The
    /// leader runs this every `placement.rebalance_secs`.
    pub async fn rebalance(&self, dry_run: bool, actor: &Actor) -> Result<RebalanceOutcome, ProvisionError> {
        let snapshot = self.store.placement_snapshot().await?;
        let plan = plan_rebalance(&snapshot.tenants, &snapshot.shard_fill, &self.placement);
        let mut outcome = RebalanceOutcome {
            promotions: plan.promotions.clone(),
            demotions: plan.demotions.clone(),
            ..RebalanceOutcome::default()
        };
        let limit = self.placement.max_concurrent_migrations as usize;
        let under_way = self
            .store
            .tenants_with_status(TenantStatus::Migrating)
            .await?
            .len();
        let mut room = limit.saturating_sub(under_way);
        // A tenant whose last migration is still cleaning up cannot start another: the dry run
        // must say so as the run would.
        let recorded: std::collections::BTreeSet<TenantId> = self
            .store
            .migrations()
            .await?
            .into_iter()
            .map(|m| m.tenant)
            .collect();
        for step in plan.in_order() {
            let Some(mut tenant) = self.store.get_tenant(&step.tenant).await? else {
                continue;
            };
            if !self.has_storage(&tenant.id).await? {
                if !dry_run {
                    tenant.placement = step.to.clone();
                    tenant.updated_at = tenancy::now();
                    let audit = actor.event(
                        "tenant.update",
                        &path(&tenant.id),
                        Some(tenant.id.as_str()),
                        Outcome::Success,
                    );
                    self.store.update_tenant(&tenant, &audit).await?;
                }
                outcome.replaced.push(tenant.id);
            } else if tenant.status != TenantStatus::Ready {
                let reason = format!("status is {}", tenant.status.as_str());
                outcome.skipped.push((tenant.id, reason));
            } else if recorded.contains(&tenant.id) {
                outcome
                    .skipped
                    .push((tenant.id.clone(), already_migrating(&tenant.id).to_string()));
            } else if room == 0 {
                let reason = format!(
                    "waits for a later rebalance: at most {limit} migrations at once \
                     (placement.max_concurrent_migrations), larger tenants first"
                );
                outcome.skipped.push((tenant.id, reason));
            } else if dry_run {
                room -= 1;
                outcome.migrating.push(tenant.id);
            } else {
                match self.begin_migration(&tenant, step.to.clone(), actor).await {
                    Ok(()) => {
                        room -= 1;
                        outcome.migrating.push(tenant.id);
                    }
                    // Another migration of the tenant is under way (or in its cleanup phase).
                    Err(ProvisionError::NotReady(why)) => {
                        outcome.skipped.push((tenant.id, why));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(outcome)
    }

    /// What deleting the tenant would remove, changing nothing but the audit log.
    pub async fn deletion_preview(&self, tenant: &Tenant, actor: &Actor) -> Result<Deletion, ProvisionError> {
        let id = &tenant.id;
        let now = tenancy::now();
        let tokens = self
            .store
            .list_tokens(id, None, u32::MAX)
            .await?
            .iter()
            .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
            .count() as u64;
        let storage = self.provisioner.storage();
        let bucket = self.provisioner.bucket_of(tenant);
        let mut objects = 0;
        let mut storage_locations = Vec::new();
        for zone in tenancy::role::Zone::ALL {
            let prefix = crate::layout::zone_prefix(zone, id);
            objects += storage
                .usage(&bucket, &prefix)
                .await?
                .iter()
                .map(|u| u.objects)
                .sum::<u64>();
            storage_locations.push(format!("{}/{prefix}", storage.bucket_uri(&bucket)));
        }
        if tenant.placement.kind == tenancy::placement::PlacementKind::Dedicated {
            storage_locations = vec![storage.bucket_uri(&bucket)];
        }
        let target = format!("{}?dry_run=true", path(id));
        let audit = actor.event(
            "tenant.delete.dry_run",
            &target,
            Some(id.as_str()),
            Outcome::Success,
        );
        self.store.append_audit(&audit).await?;
        Ok(Deletion {
            tokens_revoked: tokens,
            objects_erased: objects,
            storage_locations,
        })
    }

    /// Deletes a tenant: fences it (`deleting`), erases its storage, revokes its tokens and
    /// removes its rows; the audit log is kept. A purge that fails half-way leaves the tenant
    /// `deleting`, and deleting again finishes it. `None` when another delete removed it first.
    pub async fn delete(&self, tenant: &Tenant, actor: &Actor) -> Result<Option<Deletion>, ProvisionError> {
        let id = &tenant.id;
        if tenant.status == TenantStatus::Migrating {
            return Err(ProvisionError::NotReady(format!(
                "tenant {id} is migrating; delete it once it is ready"
            )));
        }
        self.store
            .set_tenant_status(id, TenantStatus::Deleting, Some("purge in progress"))
            .await?;
        let (objects, storage_locations) = self.provisioner.purge_storage(tenant).await?;
        let target = path(id);
        let erased = format!(
            "{target}: erased {objects} objects at {}",
            storage_locations.join(", ")
        );
        let purge = actor.event("tenant.purge", &erased, Some(id.as_str()), Outcome::Success);
        self.store.append_audit(&purge).await?;
        let tokens = self.store.list_tokens(id, None, u32::MAX).await?;
        let audit = actor.event("tenant.delete", &target, Some(id.as_str()), Outcome::Success);
        let at = tenancy::now();
        let reusable_at =
            at + chrono::Duration::from_std(self.id_reuse_after).unwrap_or(chrono::Duration::MAX);
        let Some(revoked) = self.store.delete_tenant(id, at, reusable_at, &audit).await? else {
            return Ok(None);
        };
        for token in &tokens {
            self.revocations.insert(token.id, token.expires_at).await;
        }
        // Its workers' rows went with it; the reconciler stops what still runs for them.
        self.wake.notify_one();
        if let (tenancy::placement::PlacementKind::Shared, Some(shard)) =
            (tenant.placement.kind, tenant.placement.shard)
        {
            // The tenant's own rules leave the shard's lifecycle with it.
            let bucket = self.provisioner.bucket_of(tenant);
            if let Err(e) = self.provisioner.reapply_shard_lifecycle(&bucket, shard).await {
                tracing::warn!(error = %tenancy::error_chain(&e), bucket, "could not refresh the shard lifecycle");
            }
        }
        Ok(Some(Deletion {
            tokens_revoked: revoked,
            objects_erased: objects,
            storage_locations,
        }))
    }

    /// Whether the tenant's storage exists (its saga created the bucket or shard), so a new
    /// placement means moving data.
    pub async fn has_storage(&self, id: &TenantId) -> Result<bool, ProvisionError> {
        self.step_done(id, Step::Bucket).await
    }

    /// Whether the tenant's saga has carried out `step`.
    pub async fn step_done(&self, id: &TenantId, step: Step) -> Result<bool, ProvisionError> {
        Ok(self
            .store
            .provisioning_steps(id)
            .await?
            .iter()
            .any(|s| s == step.as_str()))
    }

    /// Records a migration of a `ready` tenant; its `migrate` worker copies and switches, and
    /// the old location is removed once the grace period has passed.
    async fn begin_migration(
        &self,
        tenant: &Tenant,
        to: Placement,
        actor: &Actor,
    ) -> Result<(), ProvisionError> {
        let detail = format!(
            "{}: {} to {}",
            path(&tenant.id),
            tenant.placement.kind.as_str(),
            to.kind.as_str()
        );
        let audit = actor.event(
            "tenant.migrate",
            &detail,
            Some(tenant.id.as_str()),
            Outcome::Success,
        );
        match self.provisioner.start_migration(tenant, to, &audit).await {
            Err(ProvisionError::Store(tenancy::store::StoreError::Conflict(_))) => {
                return Err(already_migrating(&tenant.id));
            }
            other => other?,
        };
        self.wake.notify_one();
        Ok(())
    }

    fn place(&self, tenant: &Candidate, snapshot: &PlacementSnapshot) -> Placement {
        // The tenant itself may not be in the snapshot yet (creation); rank it alongside the others.
        let others = snapshot.tenants.iter().filter(|c| c.id != tenant.id);
        let ranking = Ranking::new(
            others
                .map(|c| (&c.id, c.volume_30d_bytes))
                .chain([(&tenant.id, tenant.volume_30d_bytes)]),
        );
        place(tenant, &ranking, &snapshot.shard_fill, &self.placement)
    }
}

/// A placement can change only while the tenant is `ready`.
fn ready_to_move(tenant: &Tenant) -> Result<(), ProvisionError> {
    if tenant.status == TenantStatus::Ready {
        return Ok(());
    }
    Err(ProvisionError::NotReady(format!(
        "tenant {} is {}; its placement can change only when it is ready",
        tenant.id,
        tenant.status.as_str()
    )))
}

fn already_migrating(id: &TenantId) -> ProvisionError {
    ProvisionError::NotReady(format!("tenant {id} is already migrating"))
}

/// The tenant's API path, the target of its audit events.
fn path(id: &TenantId) -> String {
    format!("/v1/tenants/{id}")
}
