//! A tenant's storage: zone policies, lifecycle rules, usage and cost; platform buckets.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use lake_manager::cost::monthly_cost;
use lake_manager::layout::zone_prefix;
use lake_manager::lifecycle::{check_rule_budget, rules_acting_on, validate_shared_override};
use lake_manager::provision::{Step, effective_policies};
use lake_manager::storage::ClassUsage;
use serde::Serialize;
use tenancy::audit::Outcome;
use tenancy::pagination;
use tenancy::placement::PlacementKind;
use tenancy::role::{Role, Zone};
use tenancy::tenant::{TenantId, TenantStatus};
use tenancy::validation::Violation;
use tenancy::zone::{ZonePolicy, validate_policy};
use utoipa::ToSchema;

use super::tenants::load;
use super::views::{Page, PageQuery};
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

fn parse_zone(raw: &str) -> Result<Zone, ApiError> {
    Zone::ALL
        .into_iter()
        .find(|z| z.as_str() == raw)
        .ok_or_else(|| ApiError::NotFound(format!("no zone {raw}")))
}

/// A zone's policy and where it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZonePolicyView {
    /// Retention in days.
    pub retention_days: u32,
    /// Tiering steps.
    pub transitions: Vec<tenancy::zone::Transition>,
    /// `default` (platform) or `tenant` (tuned by the tenant).
    pub source: &'static str,
    /// Shortest retention allowed.
    pub min_retention_days: u32,
    /// Longest retention allowed.
    pub max_retention_days: u32,
}

async fn zone_views(
    state: &AppState,
    id: &TenantId,
) -> Result<BTreeMap<&'static str, ZonePolicyView>, ApiError> {
    let own = state.store.zone_policies(id).await?;
    Ok(effective_policies(&state.config.zones, &own)
        .into_iter()
        .map(|(zone, policy)| {
            let bounds = state.config.zones.get(zone);
            let source = if own.iter().any(|(z, _)| *z == zone) {
                "tenant"
            } else {
                "default"
            };
            (
                zone.as_str(),
                ZonePolicyView {
                    retention_days: policy.retention_days,
                    transitions: policy.transitions,
                    source,
                    min_retention_days: bounds.min_retention_days,
                    max_retention_days: bounds.max_retention_days,
                },
            )
        })
        .collect())
}

/// A zone policy to set.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ZonePolicyBody {
    /// Retention in days, within the platform bounds.
    #[serde(deserialize_with = "crate::extract::integral::u64")]
    #[schema(minimum = 1, maximum = 36500)]
    pub retention_days: u64,
    /// Tiering steps, in order: later and colder each time.
    #[schema(max_items = 3)]
    pub transitions: Vec<TransitionBody>,
}

/// A tiering step.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct TransitionBody {
    /// Days after the object was written.
    #[serde(deserialize_with = "crate::extract::integral::u64")]
    #[schema(minimum = 0, maximum = 36500)]
    pub after_days: u64,
    /// STANDARD_IA, GLACIER_IR or INTELLIGENT_TIERING (GLACIER and DEEP_ARCHIVE are refused).
    pub storage_class: tenancy::zone::StorageClass,
}

crate::objects_only!(ZonePolicyBody, TransitionBody);

impl ZonePolicyBody {
    fn into_policy(self) -> Result<ZonePolicy, Violation> {
        let days =
            |field: String, v: u64| u32::try_from(v).map_err(|_| Violation::new(field, "is too large"));
        let mut transitions = Vec::new();
        for (i, t) in self.transitions.into_iter().enumerate() {
            transitions.push(tenancy::zone::Transition {
                after_days: days(format!("transitions[{i}].after_days"), t.after_days)?,
                storage_class: t.storage_class,
            });
        }
        Ok(ZonePolicy {
            retention_days: days("retention_days".to_owned(), self.retention_days)?,
            transitions,
        })
    }
}

/// The tenant's zone policies (its own where set, otherwise the platform defaults).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/zones", tag = "storage",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Zone policies", body = BTreeMap<String, ZonePolicyView>)))]
pub async fn get_zones(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageStorage>,
) -> Result<Json<BTreeMap<&'static str, ZonePolicyView>>, ApiError> {
    let id = auth.tenant()?;
    load(&state, id).await?;
    Ok(Json(zone_views(&state, id).await?))
}

/// Tunes one zone's retention and tiering within the platform bounds, then re-applies the
/// bucket's lifecycle rules. In a shared bucket a tiering that differs from the default adds a
/// rule to the shard's document: 409 when the shard has used its rule budget.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/zones/{zone}", tag = "storage", request_body = ZonePolicyBody,
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "bronze, silver or gold")),
    responses((status = 200, description = "The zone policies after the change", body = BTreeMap<String, ZonePolicyView>),
        (status = 409, description = "The tenant's shared bucket has no room for another lifecycle rule (`storage.lifecycle_rules_per_shard`)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn put_zone(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageStorage>,
    Path(params): Path<(String, String)>,
    ApiJson(body): ApiJson<ZonePolicyBody>,
) -> Result<Response, ApiError> {
    let policy = body.into_policy()?;
    let id = auth.tenant()?;
    let zone = parse_zone(&params.1)?;
    let tenant = load(&state, id).await?;
    let defaults = state.config.zones.get(zone);
    validate_policy(&policy, defaults)?;
    if tenant.placement.kind == PlacementKind::Shared {
        validate_shared_override(&policy, &defaults.policy)?;
    }
    // The shard's rule budget is checked by the store in the transaction that writes the
    // policy, so overrides racing from several tenants cannot pass it together.
    let fits = |overrides: &tenancy::store::ShardPolicies| {
        check_rule_budget(
            &state.config.zones,
            overrides,
            id,
            zone,
            &policy,
            state.config.storage.lifecycle_rules_per_shard,
        )
    };
    let budget = match (tenant.placement.kind, tenant.placement.shard) {
        (PlacementKind::Shared, Some(shard)) => Some(tenancy::store::ShardBudget { shard, fits: &fits }),
        _ => None,
    };
    let target = format!("/v1/tenants/{id}/zones/{}", zone.as_str());
    let audit = event(
        &auth.caller,
        "zone.update",
        &target,
        Some(id.as_str()),
        Outcome::Success,
    );
    state
        .store
        .put_zone_policy(id, zone, &policy, &audit, budget.as_ref())
        .await?;
    // Before the saga's lifecycle step the policy is applied by that step.
    if state.tenants.step_done(id, Step::Lifecycle).await? {
        let bucket = state.provisioner.bucket_of(&tenant);
        state.provisioner.apply_lifecycle(&tenant, &bucket).await?;
    }
    Ok(audited(Json(zone_views(&state, id).await?)))
}

/// Desired and applied lifecycle rules of the tenant's bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct LifecycleView {
    /// The bucket.
    pub bucket: String,
    /// Whether the storage enforces lifecycle rules.
    pub enforced: bool,
    /// Why not, when it does not.
    pub reason: Option<&'static str>,
    /// What the plane computed.
    #[schema(value_type = Object)]
    pub desired: serde_json::Value,
    /// What the bucket has (null where rules are not enforced).
    #[schema(value_type = Option<Object>)]
    pub applied: Option<serde_json::Value>,
    /// True when the bucket enforces rules and they differ from the desired ones.
    pub drift: bool,
}

/// The tenant's bucket lifecycle: desired beside applied.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/lifecycle", tag = "storage",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Lifecycle rules", body = LifecycleView)))]
pub async fn get_lifecycle(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageStorage>,
) -> Result<Json<LifecycleView>, ApiError> {
    let tenant = load(&state, auth.tenant()?).await?;
    let bucket = state.provisioner.bucket_of(&tenant);
    let desired = state.provisioner.desired_lifecycle(&tenant).await?;
    let desired = serde_json::to_value(&desired).map_err(|e| ApiError::Internal(e.to_string()))?;
    let applied = state.storage.get_lifecycle(&bucket).await?;
    let support = state.storage.lifecycle_support();
    let drift = support.is_ok() && applied.as_ref() != Some(&desired);
    // A shared shard's document holds its other tenants' overrides: a tenant sees only the
    // rules acting on its own keys (platform-admins see the bucket's whole document).
    let (desired, applied) = if auth.caller.principal.role == Role::PlatformAdmin {
        (desired, applied)
    } else {
        (
            rules_acting_on(&desired, &tenant.id),
            applied.map(|a| rules_acting_on(&a, &tenant.id)),
        )
    };
    Ok(Json(LifecycleView {
        bucket,
        enforced: support.is_ok(),
        reason: support.err(),
        desired,
        applied,
        drift,
    }))
}

/// One zone's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneUsage {
    /// By storage class.
    pub classes: Vec<ClassUsage>,
    /// Total bytes.
    pub bytes: u64,
    /// Total objects.
    pub objects: u64,
    /// Estimated monthly storage cost, USD.
    pub estimated_monthly_cost_usd: f64,
}

/// A tenant's usage and estimated cost.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Per zone.
    pub zones: BTreeMap<String, ZoneUsage>,
    /// Sum over zones, USD per month (storage only).
    pub estimated_monthly_cost_usd: f64,
    /// Request charges are not included: request counts are not collected yet.
    pub excludes: Vec<&'static str>,
    /// The prices used.
    pub prices: lake_manager::cost::Prices,
    /// What the tenant wrote: the volume placement ranks by.
    pub volume: VolumeView,
}

/// A tenant's written volume, as counted from its tables' Delta logs by the scheduler's pass.
#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    /// New data written on the 30 days up to and including today (UTC), bytes: what placement
    /// ranks tenants by. Maintenance rewrites are not included.
    pub bytes_30d: u64,
    /// Days in that window.
    pub window_days: u64,
    /// One entry per day with writes, oldest first, over the 90 days kept.
    pub daily: Vec<DailyVolume>,
}

/// One day's writes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyVolume {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// New data from the plane's ingestion, bytes.
    pub ingest_bytes: u64,
    /// New data from outside writers, bytes.
    pub outside_bytes: u64,
    /// Data rewritten by maintenance, bytes (not volume).
    pub rewritten_bytes: u64,
}

/// Bytes and objects per zone and storage class, with an estimated monthly cost.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/usage", tag = "storage",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "Usage", body = UsageView)))]
pub async fn get_usage(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageStorage>,
) -> Result<Json<UsageView>, ApiError> {
    let id = auth.tenant()?;
    let tenant = load(&state, id).await?;
    let bucket = state.provisioner.bucket_of(&tenant);
    let own = state.store.zone_policies(id).await?;
    let mut zones = BTreeMap::new();
    let mut total = 0.0;
    for (zone, policy) in effective_policies(&state.config.zones, &own) {
        let classes = state.storage.usage(&bucket, &zone_prefix(zone, id)).await?;
        let cost: f64 = classes
            .iter()
            .map(|c| monthly_cost(c, &policy, &state.config.pricing))
            .sum();
        total += cost;
        zones.insert(
            zone.as_str().to_owned(),
            ZoneUsage {
                bytes: classes.iter().map(|c| c.bytes).sum(),
                objects: classes.iter().map(|c| c.objects).sum(),
                classes,
                estimated_monthly_cost_usd: cost,
            },
        );
    }
    let today = tenancy::now().date_naive();
    let days = state
        .store
        .daily_volumes(id, tenancy::volume::keep_from(today))
        .await?;
    let volume = VolumeView {
        bytes_30d: tenancy::volume::window_volume(&days, today),
        window_days: tenancy::volume::WINDOW_DAYS,
        daily: days
            .into_iter()
            .map(|(day, w)| DailyVolume {
                day: day.format("%Y-%m-%d").to_string(),
                ingest_bytes: w.ingest,
                outside_bytes: w.outside,
                rewritten_bytes: w.rewritten,
            })
            .collect(),
    };
    Ok(Json(UsageView {
        zones,
        estimated_monthly_cost_usd: total,
        excludes: vec!["request charges (PUT/GET counts are not collected yet)"],
        prices: state.config.pricing.clone(),
        volume,
    }))
}

/// A bucket the plane manages.
#[derive(Debug, Serialize, ToSchema)]
pub struct BucketView {
    /// Name.
    pub name: String,
    /// `dedicated` or `shared`.
    pub kind: PlacementKind,
    /// Shard index, for shared buckets.
    pub shard: Option<u32>,
    /// Owner, for dedicated buckets.
    pub tenant: Option<String>,
    /// Tenants placed in it.
    pub tenants: u32,
    /// Shard capacity, for shared buckets.
    pub capacity: Option<u32>,
    /// Rules in the desired lifecycle document.
    pub lifecycle_rules: usize,
    /// Whether the storage enforces them.
    pub enforced: bool,
    /// Desired and applied rules differ on storage that enforces them.
    pub drift: bool,
}

/// Buckets by name with their kind, shard fill and lifecycle rule count.
#[utoipa::path(get, path = "/v1/admin/buckets", tag = "admin", params(PageQuery),
    responses((status = 200, description = "A page of buckets", body = Page<BucketView>)))]
pub async fn list_buckets(
    State(state): State<AppState>,
    _auth: Authorized<perm::AdminStorage>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<BucketView>>, ApiError> {
    let (limit, after) = query.bounds()?;
    let shard_fill = state.store.shard_fill().await?;
    let buckets = state.store.list_buckets_page(after.as_deref(), limit + 1).await?;
    let (buckets, next_cursor) = pagination::page(buckets, limit, |b| b.name.clone());
    let items = buckets
        .into_iter()
        .map(|b| {
            let desired: Option<serde_json::Value> = b
                .desired_lifecycle
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok());
            let applied: Option<serde_json::Value> = b
                .applied_lifecycle
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok());
            let rules = desired
                .as_ref()
                .and_then(|d| d["Rules"].as_array().map(Vec::len))
                .unwrap_or(0);
            let tenants = match b.shard {
                Some(shard) => shard_fill.get(shard as usize).copied().unwrap_or(0),
                None => u32::from(b.tenant.is_some()),
            };
            BucketView {
                drift: b.lifecycle_enforced && desired != applied,
                name: b.name,
                kind: b.kind,
                shard: b.shard,
                tenant: b.tenant.map(|t| t.to_string()),
                tenants,
                capacity: b.shard.map(|_| state.config.placement.shard_capacity),
                lifecycle_rules: rules,
                enforced: b.lifecycle_enforced,
            }
        })
        .collect();
    Ok(Json(Page { items, next_cursor }))
}

/// Retries provisioning of a `failed` (or stuck `provisioning`) tenant from its first
/// unfinished step.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/provision", tag = "storage",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 202, description = "Provisioning resumed"),
        (status = 409, description = "The tenant is not failed or provisioning", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn retry_provisioning(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadTenant>,
) -> Result<Response, ApiError> {
    auth.caller.authorize(tenancy::policy::Action::AdminStorage)?;
    let id = auth.tenant()?.clone();
    let tenant = load(&state, &id).await?;
    if !matches!(tenant.status, TenantStatus::Failed | TenantStatus::Provisioning) {
        return Err(ApiError::Conflict(format!(
            "tenant {id} is {}; only failed or provisioning tenants are retried",
            tenant.status.as_str()
        )));
    }
    let target = format!("/v1/tenants/{id}/provision");
    state
        .store
        .append_audit(&event(
            &auth.caller,
            "tenant.provision",
            &target,
            Some(id.as_str()),
            Outcome::Success,
        ))
        .await?;
    state
        .store
        .set_tenant_status(&id, TenantStatus::Provisioning, None)
        .await?;
    state.tenant_cache.remove(&id);
    let provisioner = state.provisioner.clone();
    tokio::spawn(async move {
        if let Err(e) = provisioner.provision(&id).await {
            tracing::error!(tenant = %id, error = %crate::error::chain(&e), "provisioning stopped");
        }
    });
    Ok(audited(StatusCode::ACCEPTED))
}
