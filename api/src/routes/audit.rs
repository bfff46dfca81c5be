//! Reading the audit log.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::audit::{AuditEvent, AuditFilter, Outcome};
use tenancy::pagination;
use tenancy::policy::Action;
use tenancy::role::Role;
use tenancy::tenant::TenantId;
use tenancy::validation::Violation;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::views::Page;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Audit filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this tenant's events (tenant-admins always see only their own).
    pub tenant: Option<String>,
    /// Only this action, e.g. `tenant.create` or `auth.expired`.
    pub action: Option<String>,
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Event id (UUIDv7).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// Their role.
    pub role: Option<String>,
    /// Tenant concerned.
    pub tenant: Option<String>,
    /// What.
    pub action: String,
    /// On what: the request path, cut to 512 bytes.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The request id.
    pub request_id: Option<String>,
    /// Client address; for a rolled-up row, the source network (`/24` or `/64`).
    pub source: Option<String>,
    /// The token that acted (its `jti`), when it has one; none for the plane's own events and
    /// for events written before tokens were recorded.
    pub token_id: Option<Uuid>,
    /// Who issued that token: Lakeplane's issuer or an external OIDC issuer.
    pub issuer: Option<String>,
    /// How many requests the event stands for: 1, or more for the rolled-up row of requests
    /// no one answers for (no valid token, no route, over a rate limit) from one network,
    /// with one action, in one window; its `at` is the first of them and `target` an example.
    pub occurrences: u64,
    /// What changed, where the target alone does not say: a grant change's `before` and
    /// `after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            actor: e.actor,
            role: e.role,
            tenant: e.tenant,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            request_id: e.request_id,
            source: e.source,
            token_id: e.token_id,
            issuer: e.issuer,
            occurrences: e.occurrences,
            details: e.details,
        }
    }
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of events", body = Page<AuditView>)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    // An empty value (`?tenant=`) means the filter is not set.
    let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let requested = match &text(&query.tenant) {
        Some(raw) => Some(TenantId::parse(raw).map_err(|v| Violation::new("tenant", v.message))?),
        None => None,
    };
    // Tenant callers read their own tenant's log whether or not they name it.
    let tenant = match (caller.principal.role, requested) {
        (Role::PlatformAdmin, requested) => requested,
        (_, Some(requested)) => Some(requested),
        (_, None) => caller.principal.tenant.clone(),
    };
    caller.authorize(Action::ReadAudit(tenant.as_ref()))?;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    let since = match &text(&query.since) {
        Some(raw) => Some(
            DateTime::parse_from_rfc3339(raw)
                .map_err(|e| Violation::new("since", format!("must be an RFC 3339 time: {e}")))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let filter = AuditFilter {
        tenant,
        action: text(&query.action),
        since,
        before,
        limit: limit + 1,
        // A re-created tenant reads its own log, not its predecessor's under the same id.
        current_tenant_only: caller.principal.role != Role::PlatformAdmin,
    };
    let rows = state.store.list_audit(&filter).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |e| e.id.to_string());
    Ok(Json(Page {
        items: rows.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}
