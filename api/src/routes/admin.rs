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

/// `?points=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RankingQuery {
    /// Most points on the curve, 2 to 2000 (default 400).
    #[param(minimum = 2, maximum = 2000)]
    pub points: Option<u32>,
}

/// One point of the ranking.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankPoint {
    /// 1-based rank, largest volume first.
    pub rank: u64,
    /// The tenant's 30-day volume at that rank, bytes.
    pub volume_30d_bytes: u64,
}

/// Tenants ranked by 30-day volume, as the placement policy ranks them, sampled for a chart.
#[derive(Debug, Serialize, ToSchema)]
pub struct RankingView {
    /// Tenants ranked, those with no volume included (last).
    pub tenants: u64,
    /// Tenants with any volume in the window.
    pub with_volume: u64,
    /// `placement.dedicated_fraction`.
    pub dedicated_fraction: f64,
    /// Tenants inside that fraction (dedicated unless pinned shared), among those with volume.
    pub top_count: u64,
    /// The smallest 30-day volume inside it, bytes.
    pub cutoff_bytes: u64,
    /// Evenly spread ranks, the first, the last and the cut-off's always among them.
    pub points: Vec<RankPoint>,
}

/// The 30-day volume ranking placement decides by, with where the dedicated share ends; for
/// charts (platform-admin). Names no tenant: the promotions of a dry run do.
#[utoipa::path(get, path = "/v1/admin/placement/ranking", tag = "admin", params(RankingQuery),
    responses((status = 200, description = "The ranking", body = RankingView)))]
pub async fn ranking(
    State(state): State<AppState>,
    _auth: Authorized<perm::Rebalance>,
    ApiQuery(query): ApiQuery<RankingQuery>,
) -> Result<Json<RankingView>, ApiError> {
    let points = query.points.unwrap_or(400);
    if !(2..=2000).contains(&points) {
        return Err(ApiError::Validation(vec![crate::problem::FieldError {
            field: "points".into(),
            message: "must be between 2 and 2000".into(),
            line: None,
        }]));
    }
    let volumes = state.store.tenant_volumes().await?;
    let fraction = state.config.placement.dedicated_fraction;
    let curve = tenancy::placement::ranking_curve(&volumes, fraction, points as usize);
    Ok(Json(RankingView {
        tenants: curve.tenants as u64,
        with_volume: curve.with_volume as u64,
        dedicated_fraction: fraction,
        top_count: curve.top_count as u64,
        cutoff_bytes: curve.cutoff_bytes,
        points: curve
            .points
            .into_iter()
            .map(|(rank, volume_30d_bytes)| RankPoint {
                rank: rank as u64,
                volume_30d_bytes,
            })
            .collect(),
    }))
}
