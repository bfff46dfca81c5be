//! Audit events for requests: successful changes are written by their handlers in the same
//! transaction as the change; this middleware writes the rest (refused and failed changes,
//! and every denied request, reads included).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenancy::audit::{AuditEvent, Outcome};
use tenancy::rollup::Unattributed;

use crate::auth::{Authentication, Caller};
use crate::error::{DeniedMarker, chain};
use crate::http::X_REQUEST_ID;
use crate::state::AppState;

/// Marks a response whose audit event the handler already wrote.
#[derive(Debug, Clone, Copy)]
pub struct Audited;

/// Attaches the [`Audited`] marker.
pub fn audited(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(Audited);
    response
}

/// The stable action name of a route, shared by handlers and this middleware; `http.<method>`
/// only for requests that matched no route (a test walks the served spec so every operation
/// has its name).
pub fn action_name(method: &Method, route: &str) -> String {
    let known = match (method.as_str(), route) {
        ("POST", "/v1/tenants") => "tenant.create",
        ("GET", "/v1/tenants") => "tenant.list",
        ("GET", "/v1/tenants/{tenant}") => "tenant.read",
        ("PATCH", "/v1/tenants/{tenant}") => "tenant.update",
        ("DELETE", "/v1/tenants/{tenant}") => "tenant.delete",
        ("POST", "/v1/tenants/{tenant}/tokens") => "token.create",
        ("GET", "/v1/tenants/{tenant}/tokens") => "token.list",
        ("DELETE", "/v1/tenants/{tenant}/tokens/{token_id}") => "token.revoke",
        ("GET", "/v1/audit") => "audit.read",
        ("DELETE", "/v1/admin/tokens/{token_id}") => "token.revoke",
        ("POST", "/v1/admin/placement/rebalance") => "placement.rebalance",
        ("GET", "/v1/admin/placement/ranking") => "placement.ranking",
        ("GET", "/v1/info") => "platform.info",
        ("GET", "/v1/tenants/{tenant}/zones") => "zone.read",
        ("PUT", "/v1/tenants/{tenant}/zones/{zone}") => "zone.update",
        ("GET", "/v1/tenants/{tenant}/lifecycle") => "lifecycle.read",
        ("GET", "/v1/tenants/{tenant}/usage") => "usage.read",
        ("GET", "/v1/admin/buckets") => "bucket.list",
        ("GET", "/v1/tenants/{tenant}/workers") => "worker.list",
        ("GET", "/v1/admin/workers") => "worker.list",
        ("POST", "/v1/admin/workers/{id}/retry") => "worker.retry",
        ("POST", "/v1/tenants/{tenant}/provision") => "tenant.provision",
        ("POST", "/v1/tenants/{tenant}/shares") => "share.create",
        ("GET", "/v1/tenants/{tenant}/shares") => "share.list",
        ("GET", "/v1/tenants/{tenant}/shares/{share}") => "share.read",
        ("DELETE", "/v1/tenants/{tenant}/shares/{share}") => "share.delete",
        ("POST", "/v1/tenants/{tenant}/shares/{share}/recipients") => "recipient.create",
        ("GET", "/v1/tenants/{tenant}/shares/{share}/recipients") => "recipient.list",
        ("DELETE", "/v1/tenants/{tenant}/shares/{share}/recipients/{recipient_id}") => "recipient.revoke",
        ("POST", "/v1/tenants/{tenant}/erasures") => "erasure.create",
        ("GET", "/v1/tenants/{tenant}/erasures") => "erasure.list",
        ("GET", "/v1/tenants/{tenant}/erasures/{erasure_id}") => "erasure.read",
        ("GET", "/v1/tenants/{tenant}/erasures/{erasure_id}/receipt") => "erasure.receipt",
        ("POST", "/v1/tenants/{tenant}/pipelines") => "pipeline.create",
        ("GET", "/v1/tenants/{tenant}/pipelines") => "pipeline.list",
        ("GET", "/v1/tenants/{tenant}/pipelines/{pipeline}") => "pipeline.read",
        ("PATCH", "/v1/tenants/{tenant}/pipelines/{pipeline}") => "pipeline.update",
        ("DELETE", "/v1/tenants/{tenant}/pipelines/{pipeline}") => "pipeline.delete",
        ("POST", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs") => "pipeline.run",
        ("GET", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs") => "pipeline.run.list",
        ("GET", "/v1/tenants/{tenant}/pipelines/{pipeline}/runs/{pipeline_run_id}") => "pipeline.run.read",
        ("GET", "/v1/tenants/{tenant}/grants/tenant")
        | ("GET", "/v1/tenants/{tenant}/grants/zones/{zone}")
        | ("GET", "/v1/tenants/{tenant}/grants/tables/{zone}/{name}") => "grants.read",
        ("PATCH", "/v1/tenants/{tenant}/grants/tenant")
        | ("PATCH", "/v1/tenants/{tenant}/grants/zones/{zone}")
        | ("PATCH", "/v1/tenants/{tenant}/grants/tables/{zone}/{name}") => "grants.update",
        ("GET", "/v1/tenants/{tenant}/effective-grants") => "grants.effective",
        ("GET", "/v1/tenants/{tenant}/tables") => "table.list",
        ("POST", "/v1/tenants/{tenant}/tables") => "table.create",
        ("GET", "/v1/tenants/{tenant}/tables/{zone}/{name}") => "table.read",
        ("PATCH", "/v1/tenants/{tenant}/tables/{zone}/{name}") => "table.update",
        ("DELETE", "/v1/tenants/{tenant}/tables/{zone}/{name}") => "table.delete",
        ("GET", "/v1/tenants/{tenant}/tables/{zone}/{name}/history") => "table.history",
        ("POST", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance") => "table.maintenance.start",
        ("GET", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance") => "table.maintenance.list",
        ("GET", "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance/{run_id}") => "table.maintenance.read",
        ("GET", "/v1/tenants/{tenant}/streams") => "stream.list",
        ("POST", "/v1/tenants/{tenant}/streams") => "stream.create",
        ("GET", "/v1/tenants/{tenant}/streams/{stream}") => "stream.read",
        ("DELETE", "/v1/tenants/{tenant}/streams/{stream}") => "stream.delete",
        ("POST", "/v1/tenants/{tenant}/streams/{stream}/events") => "stream.push",
        ("POST", "/v1/tenants/{tenant}/credentials") => "credentials.issue",
        ("GET", "/api/2.1/unity-catalog/catalogs") => "uc.catalog.list",
        ("GET", "/api/2.1/unity-catalog/catalogs/{name}") => "uc.catalog.read",
        ("GET", "/api/2.1/unity-catalog/schemas") => "uc.schema.list",
        ("GET", "/api/2.1/unity-catalog/schemas/{full_name}") => "uc.schema.read",
        ("GET", "/api/2.1/unity-catalog/tables") => "uc.table.list",
        ("GET", "/api/2.1/unity-catalog/tables/{full_name}") => "uc.table.read",
        ("POST", "/api/2.1/unity-catalog/temporary-table-credentials") => "credentials.issue",
        ("GET", "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}") => "uc.permissions.read",
        ("PATCH", "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}") => "grants.update",
        _ => "",
    };
    if known.is_empty() {
        format!("http.{}", method.as_str().to_ascii_lowercase())
    } else {
        known.to_owned()
    }
}

/// Builds an event for something `caller` did.
pub fn event(
    caller: &Caller,
    action: &str,
    target: &str,
    tenant: Option<&str>,
    outcome: Outcome,
) -> AuditEvent {
    caller.actor().event(action, target, tenant, outcome)
}

/// Writes the audit event for any request its handler did not audit.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let target = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let at = tenancy::now();
    let response = next.run(request).await;

    let denied = response.extensions().get::<DeniedMarker>().is_some();
    let mutating = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    // Event pushes are data, not control-plane changes: only their refusals are audited.
    let data_plane = route.ends_with("/streams/{stream}/events");
    if response.extensions().get::<Audited>().is_some() || !(denied || mutating) || (data_plane && !denied) {
        return response;
    }
    let status = response.status();
    let authentication = response.extensions().get::<Authentication>();
    if let Some(reason) = unattributed(authentication, status, &route) {
        roll_up(
            &state,
            reason,
            authentication,
            &method,
            &route,
            &target,
            peer,
            at,
            denied,
        );
        return response;
    }
    // Everything else has a verified principal: the roll-up took the rest.
    let (principal, action) = match authentication {
        Some(Authentication::Authenticated(p)) => (p, action_name(&method, &route)),
        Some(Authentication::Revoked(p)) => (p, "auth.revoked".to_owned()),
        Some(Authentication::Failed(_)) | None => return response,
    };
    let tenant = principal.tenant.as_ref().map(|t| t.as_str().to_owned());
    // A change to tenant B by a platform-admin belongs to B's log. Anything else stays in the
    // caller's: a refusal, and any answer given before the policy ran (405, 429, a bad query)
    // to a caller not authorized for B, so no outsider can write into B's log.
    let tenant = match route_tenant(&route, &target) {
        Some(route_tenant)
            if !denied
                && matches!(authentication, Some(Authentication::Authenticated(p))
                    if authorized_for(p, &route_tenant)) =>
        {
            Some(route_tenant)
        }
        _ => tenant,
    };
    let outcome = if denied {
        Outcome::Denied
    } else if status.is_server_error() {
        Outcome::Error
    } else if status.is_client_error() {
        Outcome::Rejected
    } else {
        Outcome::Success
    };
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: tenancy::now(),
        actor: principal.subject.clone(),
        role: Some(principal.role.as_str().to_owned()),
        tenant,
        action,
        target,
        outcome,
        request_id,
        source: peer.map(|ip| ip.to_string()),
        token_id: principal.token_id,
        issuer: Some(principal.issuer.clone()),
        occurrences: 1,
        details: None,
    };
    if let Err(e) = state.store.append_audit(&event).await {
        tracing::error!(error = %chain(&e), action = %event.action, "could not write audit event");
    }
    response
}

/// Why a request gets no audit row of its own, if it does not: no one answers for it (no valid
/// token), or it never reached a handler (no route, wrong method, over a rate limit). Anyone
/// can send those by the thousand, so they are counted and rolled up instead.
fn unattributed(
    authentication: Option<&Authentication>,
    status: StatusCode,
    route: &str,
) -> Option<&'static str> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        Some("rate_limited")
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        Some("method_not_allowed")
    } else if route.is_empty() {
        Some("unrouted")
    } else if matches!(authentication, None | Some(Authentication::Failed(_))) {
        Some("unauthenticated")
    } else if matches!(authentication, Some(Authentication::Revoked(_))) {
        // A revoked (or leaked and revoked) token can still be sent by the thousand.
        Some("revoked")
    } else {
        None
    }
}

/// Counts an unattributed request in `/metrics` and in the audit roll-up.
#[expect(clippy::too_many_arguments, reason = "one call site, the middleware's locals")]
fn roll_up(
    state: &AppState,
    reason: &'static str,
    authentication: Option<&Authentication>,
    method: &Method,
    route: &str,
    target: &str,
    peer: Option<std::net::IpAddr>,
    at: chrono::DateTime<chrono::Utc>,
    denied: bool,
) {
    state.metrics.count_unattributed(reason);
    let (actor, tenant) = match authentication {
        Some(Authentication::Authenticated(p) | Authentication::Revoked(p)) => (
            p.subject.as_str(),
            p.tenant.as_ref().map(tenancy::tenant::TenantId::as_str),
        ),
        _ => ("anonymous", None),
    };
    let action = match (reason, authentication) {
        ("rate_limited", _) => "http.rate_limited".to_owned(),
        ("method_not_allowed", _) => "http.method_not_allowed".to_owned(),
        ("revoked", _) => "auth.revoked".to_owned(),
        (_, Some(Authentication::Failed(e))) => format!("auth.{}", e.code()),
        _ => action_name(method, route),
    };
    let outcome = if denied || matches!(reason, "unauthenticated" | "revoked") {
        Outcome::Denied
    } else {
        Outcome::Rejected
    };
    state.audit_rollup.record(&Unattributed {
        at,
        source: peer,
        actor,
        tenant,
        action: &action,
        target,
        outcome,
    });
}

/// Whether the principal may act on `tenant` at all: a platform-admin, or one of its own.
fn authorized_for(principal: &tenancy::policy::Principal, tenant: &str) -> bool {
    principal.role == tenancy::role::Role::PlatformAdmin
        || principal.tenant.as_ref().is_some_and(|t| t.as_str() == tenant)
}

/// The `{tenant}` segment of a request path, by position in its route template.
fn route_tenant(route: &str, path: &str) -> Option<String> {
    let index = route.split('/').position(|segment| segment == "{tenant}")?;
    path.split('/')
        .nth(index)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_have_stable_names() {
        assert_eq!(action_name(&Method::POST, "/v1/tenants"), "tenant.create");
        assert_eq!(
            action_name(&Method::DELETE, "/v1/tenants/{tenant}/tokens/{token_id}"),
            "token.revoke"
        );
        assert_eq!(action_name(&Method::PUT, "/v1/unknown"), "http.put");
    }

    #[test]
    fn the_route_tenant_comes_from_the_template_position() {
        assert_eq!(
            route_tenant("/v1/tenants/{tenant}/tokens", "/v1/tenants/acme/tokens").as_deref(),
            Some("acme")
        );
        assert_eq!(route_tenant("/v1/tenants", "/v1/tenants"), None);
    }
}
