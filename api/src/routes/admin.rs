//! Platform administration: placement rebalancing.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    /// Tenants whose data migration started, largest 30-day volume first (in a dry run: would
    /// start now).
    pub migrating: Vec<String>,
    /// Tenants without storage yet, simply re-placed (in a dry run: would be).
    pub replaced: Vec<String>,
    /// Tenants left as they are, and why: not `ready`, a migration still cleaning up, or
    /// waiting for room under `placement.max_concurrent_migrations`.
    pub skipped: Vec<Skipped>,
}

/// Plans the promotions and demotions the placement policy wants (with hysteresis) and,
/// unless `dry_run=true`, starts them, largest 30-day volume first: tenants with storage
/// migrate (at most `placement.max_concurrent_migrations` at once), the others are re-placed.
/// A dry run reports exactly what a run, or the leader's scheduled rebalance, would do now.
#[utoipa::path(post, path = "/v1/admin/placement/rebalance", tag = "admin", params(RebalanceQuery),
    responses((status = 200, description = "The plan, and what started", body = RebalanceReport)))]
pub async fn rebalance(
    State(state): State<AppState>,
    auth: Authorized<perm::Rebalance>,
    ApiQuery(query): ApiQuery<RebalanceQuery>,
) -> Result<Json<RebalanceReport>, ApiError> {
    let dry_run = query.dry_run.unwrap_or(false);
    let outcome = state.tenants.rebalance(dry_run, &auth.caller.actor()).await?;
    let ids = |ids: Vec<tenancy::tenant::TenantId>| ids.into_iter().map(|id| id.to_string()).collect();
    Ok(Json(RebalanceReport {
        promotions: outcome.promotions,
        demotions: outcome.demotions,
        dry_run,
        migrating: ids(outcome.migrating),
        replaced: ids(outcome.replaced),
        skipped: outcome
            .skipped
            .into_iter()
            .map(|(tenant, reason)| Skipped {
                tenant: tenant.to_string(),
                reason,
            })
            .collect(),
    }))
}
