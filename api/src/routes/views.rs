//! Response and request shapes shared by the resource routes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::placement::PlacementKind;
use tenancy::role::Zone;
use tenancy::tenant::{Isolation, QUOTA_CEILING, Quotas, Tenant, TenantStatus, Tier};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::state::AppState;

/// A page of results.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?limit=` and `?cursor=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page size and the key to continue after (an empty cursor starts at the beginning),
    /// each checked and named in a 422.
    pub fn bounds(&self) -> Result<(u32, Option<String>), tenancy::validation::Violation> {
        let limit = tenancy::pagination::limit(self.limit)?;
        let after = self
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(tenancy::pagination::decode_cursor)
            .transpose()?;
        Ok((limit, after))
    }
}

/// Where a tenant's data lives.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlacementView {
    /// Dedicated bucket or shared shard.
    pub kind: PlacementKind,
    /// The bucket.
    pub bucket: String,
    /// The tenant's key prefix inside each zone, as a template: `{zone}/<tenant>/`.
    pub prefix: String,
    /// The shared shard, when shared.
    pub shard: Option<u32>,
    /// Why the policy chose this.
    pub reason: String,
}

/// One zone's location.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneView {
    /// Where the zone's tables live.
    pub uri: String,
}

/// The three zones.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZonesView {
    /// Raw data.
    pub bronze: ZoneView,
    /// Cleaned data.
    pub silver: ZoneView,
    /// Business-ready data.
    pub gold: ZoneView,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// DNS-safe slug.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Tier.
    pub tier: Tier,
    /// Placement override.
    pub isolation: Isolation,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// Why, when `failed`: the failing provisioning step, and for platform-admins its error
    /// (tenants are told where the cause is, not what it is).
    pub status_reason: Option<String>,
    /// Where its data lives.
    pub placement: PlacementView,
    /// Its zones.
    pub zones: ZonesView,
    /// Its limits.
    pub quotas: Quotas,
    /// Days within which an erasure of its data subjects must complete.
    pub erasure_deadline_days: u32,
    /// The longest lifetime of credentials vended for it, seconds (900 to 3600).
    pub credential_max_ttl_secs: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The placement migration under way or cleaning up, on `GET /v1/tenants/{tenant}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationView>,
}

/// A placement migration as it goes: `draining` (waiting for the tenant's commits under way to
/// end), `copying` (objects copied and verified of those listed), then `cleanup` (switched; the
/// old keys are deleted after the grace period).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MigrationView {
    /// `draining`, `copying` or `cleanup`.
    pub phase: &'static str,
    /// Where the data goes: `dedicated` or `shared`.
    pub to: PlacementKind,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When no commit of the tenant was under way any more.
    pub drained_at: Option<DateTime<Utc>>,
    /// Objects the copy listed.
    pub objects_total: u64,
    /// Of those, copied and verified.
    pub objects_copied: u64,
    /// When the old keys are deleted (cleanup phase).
    pub cleanup_after: Option<DateTime<Utc>>,
}

impl MigrationView {
    /// The tenant's migration, if one is recorded.
    pub async fn of(state: &AppState, tenant: &tenancy::tenant::TenantId) -> Result<Option<Self>, ApiError> {
        let Some(migration) = state
            .store
            .migrations()
            .await?
            .into_iter()
            .find(|m| &m.tenant == tenant)
        else {
            return Ok(None);
        };
        let progress = state.store.migration_progress(tenant).await?.unwrap_or_default();
        Ok(Some(Self {
            phase: migration.stage(&progress),
            to: migration.to.kind,
            started_at: migration.started_at,
            drained_at: progress.drained_at,
            objects_total: progress.objects_total,
            objects_copied: progress.objects_copied,
            cleanup_after: migration.cleanup_after,
        }))
    }
}

impl TenantView {
    /// Renders a tenant with its storage locations, as `caller` may see it: tenant-scoped
    /// callers read the placement reason without its rank among all tenants.
    pub fn new(state: &AppState, t: &Tenant, caller: &crate::auth::Caller) -> Self {
        let platform = caller.principal.role == tenancy::role::Role::PlatformAdmin;
        let reason = if platform {
            t.placement.reason.clone()
        } else {
            tenancy::placement::tenant_facing(&t.placement.reason).to_owned()
        };
        let bucket =
            lake_manager::layout::bucket_name(&state.config.storage.s3.bucket_prefix, &t.id, &t.placement);
        let base = state.storage.bucket_uri(&bucket);
        let zone = |z: Zone| ZoneView {
            uri: format!("{base}/{}", lake_manager::layout::zone_prefix(z, &t.id)),
        };
        Self {
            id: t.id.to_string(),
            display_name: t.display_name.clone(),
            tier: t.tier,
            isolation: t.isolation,
            status: t.status,
            status_reason: match &t.status_reason {
                Some(stored) if !platform => Some(tenancy::disclosure::status_reason(stored)),
                other => other.clone(),
            },
            placement: PlacementView {
                kind: t.placement.kind,
                bucket,
                prefix: format!("{{zone}}/{}/", t.id),
                shard: t.placement.shard,
                reason,
            },
            zones: ZonesView {
                bronze: zone(Zone::Bronze),
                silver: zone(Zone::Silver),
                gold: zone(Zone::Gold),
            },
            quotas: t.quotas,
            erasure_deadline_days: t.erasure_deadline_days,
            credential_max_ttl_secs: t.credential_max_ttl_secs,
            created_at: t.created_at,
            updated_at: t.updated_at,
            migration: None,
        }
    }
}

/// Quotas to set; omitted ones keep their current (or default) value.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct QuotasPatch {
    /// Maximum tables.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(default, deserialize_with = "crate::extract::integral::option_u32")]
    pub max_tables: Option<u32>,
    /// Maximum streams.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(default, deserialize_with = "crate::extract::integral::option_u32")]
    pub max_streams: Option<u32>,
    /// Maximum stored GB.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(default, deserialize_with = "crate::extract::integral::option_u32")]
    pub max_storage_gb: Option<u32>,
    /// Maximum ingest events per second.
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(default, deserialize_with = "crate::extract::integral::option_u32")]
    pub ingest_events_per_sec: Option<u32>,
}

const _: () = assert!(
    QUOTA_CEILING == 100_000_000,
    "keep the schema bounds above in step"
);

impl QuotasPatch {
    /// The quotas after applying this patch.
    pub fn apply(&self, base: Quotas) -> Quotas {
        Quotas {
            max_tables: self.max_tables.unwrap_or(base.max_tables),
            max_streams: self.max_streams.unwrap_or(base.max_streams),
            max_storage_gb: self.max_storage_gb.unwrap_or(base.max_storage_gb),
            ingest_events_per_sec: self.ingest_events_per_sec.unwrap_or(base.ingest_events_per_sec),
        }
    }
}

crate::objects_only!(QuotasPatch);
