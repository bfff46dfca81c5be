//! Platform administration: placement rebalancing.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tenancy::placement::{Rebalance, plan_rebalance};
use utoipa::IntoParams;

use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// `?dry_run=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RebalanceQuery {
    /// Must be `true` in this release: executing a rebalance migrates data, which needs
    /// storage provisioning.
    #[param(inline)]
    pub dry_run: DryRunOnly,
}

/// The only accepted value of `dry_run` in this release.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub enum DryRunOnly {
    /// Plan only.
    #[serde(rename = "true")]
    True,
}

/// The promotions and demotions the placement policy wants now, with hysteresis.
#[utoipa::path(post, path = "/v1/admin/placement/rebalance", tag = "admin", params(RebalanceQuery),
    responses((status = 200, description = "The plan", body = inline(serde_json::Value))))]
pub async fn rebalance(
    State(state): State<AppState>,
    _auth: Authorized<perm::Rebalance>,
    ApiQuery(query): ApiQuery<RebalanceQuery>,
) -> Result<Json<Rebalance>, ApiError> {
    // Executing a plan migrates tenant data, which needs storage provisioning (a later
    // release); until then the only accepted value is `true`, enforced by the type.
    let DryRunOnly::True = query.dry_run;
    let snapshot = state.store.placement_snapshot().await?;
    Ok(Json(plan_rebalance(
        &snapshot.tenants,
        &snapshot.shard_fill,
        &state.config.placement,
    )))
}
