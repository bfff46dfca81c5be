//! Per-tenant request rate limits, set per tier. The per-principal limiter alone is not fair:
//! a tenant-admin can mint tokens for any number of subjects, each with a budget of its own.
//! So every request of a tenant-bound principal also spends from its tenant's budget, whose
//! size the tenant's tier sets.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tenancy::store::MetadataStore;
use tenancy::tenant::{TenantId, Tier};

use crate::auth::Authentication;
use crate::config::RateLimitConfig;
use crate::error::{ApiError, chain};
use crate::state::AppState;

/// How long a tenant's tier is trusted before it is read again (a tier change takes effect
/// within this).
const TIER_TTL: Duration = Duration::from_secs(30);

/// The per-tier limiters and the tiers they were chosen by.
pub struct TenantLimits {
    standard: DefaultKeyedRateLimiter<TenantId>,
    enterprise: DefaultKeyedRateLimiter<TenantId>,
    tiers: Mutex<HashMap<TenantId, (Tier, Instant)>>,
}

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(rate)
}

impl TenantLimits {
    /// Limiters from `rate_limit.*_tenant_per_second`.
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            standard: RateLimiter::keyed(quota(config.standard_tenant_per_second)),
            enterprise: RateLimiter::keyed(quota(config.enterprise_tenant_per_second)),
            tiers: Mutex::new(HashMap::new()),
        }
    }

    async fn tier(&self, store: &dyn MetadataStore, tenant: &TenantId) -> Tier {
        let now = Instant::now();
        if let Some((tier, _)) = self
            .tiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tenant)
            .copied()
            .filter(|(_, at)| now.duration_since(*at) < TIER_TTL)
        {
            return tier;
        }
        let tier = match store.get_tenant(tenant).await {
            Ok(Some(t)) => t.tier,
            // Unknown tenants are answered 404 by the handler; the smaller budget meanwhile.
            Ok(None) => Tier::Standard,
            Err(e) => {
                // The handler will fail on the same store; the smaller budget meanwhile.
                tracing::warn!(error = %chain(&e), tenant = %tenant, "tenant tier unreadable for rate limiting");
                return Tier::Standard;
            }
        };
        let mut tiers = self.tiers.lock().unwrap_or_else(PoisonError::into_inner);
        tiers.retain(|_, (_, at)| now.duration_since(*at) < TIER_TTL);
        tiers.insert(tenant.clone(), (tier, now));
        tier
    }

    /// Spends one request from `tenant`'s budget, or says how long to wait.
    pub async fn check(&self, store: &dyn MetadataStore, tenant: &TenantId) -> Result<(), Duration> {
        let limiter = match self.tier(store, tenant).await {
            Tier::Standard => &self.standard,
            Tier::Enterprise => &self.enterprise,
        };
        limiter
            .check_key(tenant)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Drops idle tenants' limiter cells.
    pub fn retain_recent(&self) {
        self.standard.retain_recent();
        self.enterprise.retain_recent();
    }
}

/// Refuses (429 with `Retry-After`) a tenant-bound caller whose tenant used up its budget.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let tenant = match request.extensions().get::<Authentication>() {
        // A revoked token still spends its tenant's budget: minting and revoking subjects
        // must not buy a tenant fresh budgets.
        Some(Authentication::Authenticated(p) | Authentication::Revoked(p)) => p.tenant.clone(),
        _ => None,
    };
    if let Some(tenant) = tenant
        && let Err(wait) = state.tenant_limits.check(state.store.as_ref(), &tenant).await
    {
        return ApiError::TenantRateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        }
        .into_response();
    }
    next.run(request).await
}
