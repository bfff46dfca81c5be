//! Platform administration: placement rebalancing.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::placement::plan_rebalance;
use tenancy::tenant::TenantStatus;
use utoipa::{IntoParams, ToSchema};

use crate::audit::event;
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?dry_run=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RebalanceQuery {
    /// `true`: return the plan and change nothing. Otherwise the moves start.
    pub dry_run: Option<bool>,
}

/// A tenant the rebalance could not move now.
#[derive(Debug, Serialize, ToSchema)]
pub struct Skipped {
    /// The tenant.
    pub tenant: String,
    /// Why.
    pub reason: String,
}

/// The plan, and when executed, what started.
#[derive(Debug, Serialize, ToSchema)]
pub struct RebalanceReport {
    /// Shared to dedicated.
    #[schema(value_type = Vec<Object>)]
    pub promotions: Vec<tenancy::placement::Move>,
    /// Dedicated to shared.
    #[schema(value_type = Vec<Object>)]
    pub demotions: Vec<tenancy::placement::Move>,
    /// Whether anything was changed.
    pub dry_run: bool,
    /// Tenants whose data migration started.
    pub migrating: Vec<String>,
    /// Tenants without storage yet, simply re-placed.
    pub replaced: Vec<String>,
    /// Tenants left as they are, and why.
    pub skipped: Vec<Skipped>,
}

/// Plans the promotions and demotions the placement policy wants (with hysteresis) and,
/// unless `dry_run=true`, starts them: tenants with storage migrate, the others are re-placed.
#[utoipa::path(post, path = "/v1/admin/placement/rebalance", tag = "admin", params(RebalanceQuery),
    responses((status = 200, description = "The plan, and what started", body = RebalanceReport)))]
pub async fn rebalance(
    State(state): State<AppState>,
    auth: Authorized<perm::Rebalance>,
    ApiQuery(query): ApiQuery<RebalanceQuery>,
) -> Result<Json<RebalanceReport>, ApiError> {
    let snapshot = state.store.placement_snapshot().await?;
    let plan = plan_rebalance(&snapshot.tenants, &snapshot.shard_fill, &state.config.placement);
    let dry_run = query.dry_run.unwrap_or(false);
    let mut report = RebalanceReport {
        promotions: plan.promotions.clone(),
        demotions: plan.demotions.clone(),
        dry_run,
        migrating: Vec::new(),
        replaced: Vec::new(),
        skipped: Vec::new(),
    };
    if dry_run {
        return Ok(Json(report));
    }
    for step in plan.promotions.iter().chain(&plan.demotions) {
        let Some(mut tenant) = state.store.get_tenant(&step.tenant).await? else {
            continue;
        };
        let provisioned = state
            .store
            .provisioning_steps(&tenant.id)
            .await?
            .iter()
            .any(|s| s == "bucket");
        if !provisioned {
            tenant.placement = step.to.clone();
            tenant.updated_at = tenancy::now();
            let target = format!("/v1/tenants/{}", tenant.id);
            let audit = event(
                &auth.caller,
                "tenant.update",
                &target,
                Some(tenant.id.as_str()),
                Outcome::Success,
            );
            state.store.update_tenant(&tenant, &audit).await?;
            report.replaced.push(tenant.id.to_string());
        } else if tenant.status != TenantStatus::Ready {
            report.skipped.push(Skipped {
                tenant: tenant.id.to_string(),
                reason: format!("status is {}", tenant.status.as_str()),
            });
        } else {
            match super::tenants::begin_migration(&state, &auth.caller, &tenant, step.to.clone()).await {
                Ok(()) => report.migrating.push(tenant.id.to_string()),
                Err(ApiError::Conflict(reason)) => report.skipped.push(Skipped {
                    tenant: tenant.id.to_string(),
                    reason,
                }),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(Json(report))
}
