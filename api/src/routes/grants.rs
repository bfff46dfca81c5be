//! Table grants: read and change who holds which privilege on the tenant, a zone or a table,
//! and see what one principal can do and through which grant. Unity Catalog's permissions
//! routes (`routes::unity::permissions`) share the parsing and the change below.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::grants::{Change, Grantee, Identity, Privilege, Securable, TenantGrants, Via};
use tenancy::pagination;
use tenancy::role::{Role, Zone};
use tenancy::store::grants::{Assignments, ChangeGrantsError};
use tenancy::tenant::TenantId;
use tenancy::validation::{Violation, Violations};
use utoipa::{IntoParams, ToSchema};

use super::tenants::load;
use crate::audit::{audited, event};
use crate::auth::{Authorized, Caller, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// Most changes in one request.
pub const MAX_CHANGES: usize = 100;

/// One principal's changes, as Unity Catalog's `PermissionsChange`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawChange {
    /// `user:NAME`, `group:NAME` or `role:NAME`.
    pub principal: String,
    /// Privileges to grant: `USE CATALOG`, `USE SCHEMA`, `SELECT`, `MODIFY`.
    #[serde(default)]
    pub add: Vec<String>,
    /// Privileges to revoke.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A batch of changes on one securable, as Unity Catalog's `UpdatePermissions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGrants {
    /// 1 to 100 changes, applied in order.
    pub changes: Vec<RawChange>,
}

/// One principal's privileges on a securable.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrivilegeAssignment {
    /// `user:NAME`, `group:NAME` or `role:NAME`.
    pub principal: String,
    /// Its privileges there, sorted.
    pub privileges: Vec<Privilege>,
}

/// The grants on one securable.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantsView {
    /// `tenant`, `zones/{zone}` or `tables/{zone}/{name}`.
    pub securable: String,
    /// Who holds what there, by principal (grants inherited from above are not repeated).
    pub privilege_assignments: Vec<PrivilegeAssignment>,
}

/// Assignments as the API lists them, sorted by principal.
pub fn assignments(a: &Assignments) -> Vec<PrivilegeAssignment> {
    let mut out: Vec<PrivilegeAssignment> = a
        .iter()
        .map(|(g, ps)| PrivilegeAssignment {
            principal: g.to_string(),
            privileges: ps.iter().copied().collect(),
        })
        .collect();
    out.sort_by(|a, b| a.principal.cmp(&b.principal));
    out
}

/// Parses a batch of changes; every problem is reported with its field.
pub fn parse_changes(raw: Vec<RawChange>) -> Result<Vec<Change>, Vec<Violation>> {
    let mut violations = Violations::default();
    if raw.is_empty() || raw.len() > MAX_CHANGES {
        violations.push(Violation::new(
            "changes",
            format!("must hold 1 to {MAX_CHANGES} changes"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut changes = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let grantee = match Grantee::parse(&c.principal) {
            Ok(g) => Some(g),
            Err(why) => {
                violations.push(Violation::new(format!("changes[{i}].principal"), why.to_string()));
                None
            }
        };
        if let Some(g) = &grantee
            && !seen.insert(g.clone())
        {
            violations.push(Violation::new(
                format!("changes[{i}].principal"),
                format!("{g} is listed twice; put its privileges in one change"),
            ));
        }
        let mut parse = |list: Vec<String>, field: &str| -> BTreeSet<Privilege> {
            let mut out = BTreeSet::new();
            for (j, p) in list.iter().enumerate() {
                match Privilege::parse(p) {
                    Some(p) => {
                        out.insert(p);
                    }
                    None => violations.push(Violation::new(
                        format!("changes[{i}].{field}[{j}]"),
                        format!("{p:?} is not a privilege; use USE CATALOG, USE SCHEMA, SELECT or MODIFY"),
                    )),
                }
            }
            out
        };
        let add = parse(c.add, "add");
        let remove = parse(c.remove, "remove");
        if let Some(grantee) = grantee {
            changes.push(Change { grantee, add, remove });
        }
    }
    violations.finish(|| changes)
}

/// Applies changes through the grants service, audited as `grants.update`, and maps its
/// refusals: invalid changes are 422 naming the field; a table that does not exist is 422
/// naming `securable`.
pub async fn change(
    state: &AppState,
    caller: &Caller,
    tenant: &TenantId,
    on: &Securable,
    changes: &[Change],
) -> Result<tenancy::store::grants::Changed, ApiError> {
    let target = format!("/v1/tenants/{tenant}/grants/{}", on.path());
    let audit = event(
        caller,
        "grants.update",
        &target,
        Some(tenant.as_str()),
        Outcome::Success,
    );
    match state
        .grants
        .change(tenant, on, changes, &caller.principal.subject, &audit)
        .await
    {
        Ok(changed) => Ok(changed),
        Err(ChangeGrantsError::Invalid(e)) => Err(Violation::new(e.field, e.message).into()),
        Err(ChangeGrantsError::NoTable) => Err(Violation::new(
            "securable",
            format!("{} names no table of tenant {tenant}", on.path()),
        )
        .into()),
        Err(ChangeGrantsError::Store(e)) => Err(e.into()),
    }
}

/// The securable a `/v1` path names; an unknown zone is 404.
fn securable_of(zone: Option<&str>, name: Option<&str>) -> Result<Securable, ApiError> {
    let zone = match zone {
        None => return Ok(Securable::Tenant),
        Some(z) => Zone::parse(z).ok_or_else(|| ApiError::NotFound(format!("no zone {z}")))?,
    };
    Ok(match name {
        None => Securable::Zone(zone),
        Some(n) => Securable::Table(zone, n.to_owned()),
    })
}

async fn read(
    state: &AppState,
    auth: &Authorized<perm::ManageGrants>,
    on: Securable,
) -> Result<Json<GrantsView>, ApiError> {
    let tenant = auth.tenant()?;
    load(state, tenant).await?;
    if let Securable::Table(zone, name) = &on
        && state
            .store
            .get_table(tenant, *zone, name)
            .await?
            .is_none_or(|t| t.status != tenancy::store::TableStatus::Active)
    {
        return Err(ApiError::NotFound(format!("no table {}/{name}", zone.as_str())));
    }
    let grants = state.grants.of(tenant).await?;
    Ok(Json(GrantsView {
        securable: on.path(),
        privilege_assignments: assignments(&grants.on(&on)),
    }))
}

async fn update(
    state: &AppState,
    auth: &Authorized<perm::ManageGrants>,
    on: Securable,
    body: UpdateGrants,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?;
    let changes = parse_changes(body.changes)?;
    load(state, tenant).await?;
    let changed = change(state, &auth.caller, tenant, &on, &changes).await?;
    Ok(audited(Json(GrantsView {
        securable: on.path(),
        privilege_assignments: assignments(&changed.after),
    })))
}

/// The grants on the tenant (the catalog).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/grants/tenant", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The grants", body = GrantsView)))]
pub async fn get_tenant_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
) -> Result<Json<GrantsView>, ApiError> {
    read(&state, &auth, Securable::Tenant).await
}

/// Changes the grants on the tenant. Adding what is held and removing what is not change
/// nothing, so a repeated request is harmless.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/grants/tenant", tag = "grants", request_body = UpdateGrants,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The grants after", body = GrantsView),
        (status = 422, description = "A malformed principal, an unknown privilege, or one that cannot be granted here", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_tenant_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
    ApiJson(body): ApiJson<UpdateGrants>,
) -> Result<Response, ApiError> {
    update(&state, &auth, Securable::Tenant, body).await
}

/// The grants on a zone (a schema).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/grants/zones/{zone}", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "bronze, silver or gold")),
    responses((status = 200, description = "The grants", body = GrantsView)))]
pub async fn get_zone_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
    Path((_tenant, zone)): Path<(String, String)>,
) -> Result<Json<GrantsView>, ApiError> {
    read(&state, &auth, securable_of(Some(&zone), None)?).await
}

/// Changes the grants on a zone; they cover every table of it, now and later.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/grants/zones/{zone}", tag = "grants", request_body = UpdateGrants,
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "bronze, silver or gold")),
    responses((status = 200, description = "The grants after", body = GrantsView),
        (status = 422, description = "A malformed principal, an unknown privilege, or one that cannot be granted here", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_zone_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
    Path((_tenant, zone)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateGrants>,
) -> Result<Response, ApiError> {
    let on = securable_of(Some(&zone), None)?;
    update(&state, &auth, on, body).await
}

/// The grants on a table.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/grants/tables/{zone}/{name}", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "bronze, silver or gold"),
        ("name" = String, Path, description = "Table name")),
    responses((status = 200, description = "The grants", body = GrantsView)))]
pub async fn get_table_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
    Path((_tenant, zone, name)): Path<(String, String, String)>,
) -> Result<Json<GrantsView>, ApiError> {
    read(&state, &auth, securable_of(Some(&zone), Some(&name))?).await
}

/// Changes the grants on a table, which must exist (422 naming `securable` if not). A
/// table's grants go when it is deleted.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/grants/tables/{zone}/{name}", tag = "grants", request_body = UpdateGrants,
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "bronze, silver or gold"),
        ("name" = String, Path, description = "Table name")),
    responses((status = 200, description = "The grants after", body = GrantsView),
        (status = 422, description = "No such table, a malformed principal, an unknown privilege, or one that cannot be granted here", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_table_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageGrants>,
    Path((_tenant, zone, name)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateGrants>,
) -> Result<Response, ApiError> {
    let on = securable_of(Some(&zone), Some(&name))?;
    update(&state, &auth, on, body).await
}

/// Whose effective grants, and which page of tables.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EffectiveQuery {
    /// `user:NAME`, `group:NAME` or `role:NAME`; absent: the caller itself. Only tenant-admins
    /// and platform-admins may ask about another principal.
    pub principal: Option<String>,
    /// The role to evaluate a `user:` or `group:` principal as (its ceiling); required for them.
    pub role: Option<Role>,
    /// Comma-separated groups a `user:` principal carries.
    pub groups: Option<String>,
    /// Tables per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One way a privilege is held.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViaView {
    /// Where the grant is: `tenant`, `zones/{zone}` or `tables/{zone}/{name}`.
    pub securable: String,
    /// To whom it is granted.
    pub principal: String,
    /// `true` when no grant is needed: admins hold every privilege.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// A privilege held, and every grant it comes through.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeldView {
    /// The privilege.
    pub privilege: Privilege,
    /// Through which grants (directly, or inherited from the zone or tenant).
    pub via: Vec<ViaView>,
}

/// What the principal holds on one securable.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveOn {
    /// `tenant`, `zones/{zone}` or `tables/{zone}/{name}`.
    pub securable: String,
    /// The privileges held, with how.
    pub privileges: Vec<HeldView>,
}

/// What a principal can do in a tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectiveGrants {
    /// The principal evaluated.
    pub principal: String,
    /// The role it was evaluated as (the ceiling).
    pub role: Role,
    /// The groups it was evaluated with.
    pub groups: Vec<String>,
    /// The tenant and its zones.
    pub tenant_and_zones: Vec<EffectiveOn>,
    /// A page of the tables on which it holds anything, by zone then name.
    pub items: Vec<EffectiveOn>,
    /// Pass as `?cursor=` for the next page of tables; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The privileges `who` can use on `on`: a privilege counts only with the `USE CATALOG` and
/// `USE SCHEMA` above it, as every check requires, so nothing is listed that a request would
/// refuse. The tenant's own entry lists `USE CATALOG`; grants of data privileges on the tenant
/// show on each zone and table they reach.
fn held(grants: &TenantGrants, who: &Identity<'_>, on: &Securable, role: Role) -> EffectiveOn {
    let usable = |p: Privilege| match on {
        Securable::Tenant => p == Privilege::UseCatalog && grants.sees_tenant(who),
        Securable::Zone(z) => p != Privilege::UseCatalog && grants.check_zone(who, *z, p).is_ok(),
        Securable::Table(z, n) => {
            matches!(p, Privilege::Select | Privilege::Modify) && grants.check_table(who, *z, n, p).is_ok()
        }
    };
    let privileges = Privilege::ALL
        .into_iter()
        .filter(|p| usable(*p))
        .filter_map(|p| {
            let via: Vec<ViaView> = grants
                .ways(who, on, p)
                .into_iter()
                .map(|v| match v {
                    Via::Admin => ViaView {
                        securable: Securable::Tenant.path(),
                        principal: format!("role:{role}"),
                        implicit: true,
                    },
                    Via::Grant(g) => ViaView {
                        securable: g.securable.path(),
                        principal: g.grantee.to_string(),
                        implicit: false,
                    },
                })
                .collect();
            (!via.is_empty()).then_some(HeldView { privilege: p, via })
        })
        .collect();
    EffectiveOn {
        securable: on.path(),
        privileges,
    }
}

/// What a principal can do in the tenant, and through which grant: the tenant, each zone, and
/// a page of the tables on which it holds anything. A `user:` or `group:` principal is
/// evaluated as the `role` given, whose zone access caps every grant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/effective-grants", tag = "grants",
    params(("tenant" = String, Path, description = "Tenant id"), EffectiveQuery),
    responses((status = 200, description = "What the principal can do", body = EffectiveGrants)))]
pub async fn effective_grants(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiQuery(query): ApiQuery<EffectiveQuery>,
) -> Result<Json<EffectiveGrants>, ApiError> {
    let tenant = auth.tenant()?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_table_cursor(query.cursor.as_deref())?;
    let me = &auth.caller.principal;
    let mut violations = Violations::default();
    let groups: Vec<String> = query
        .groups
        .as_deref()
        .map(|g| g.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    if let Err((index, message)) = tenancy::grants::check_groups(&groups) {
        let which = index.map_or_else(String::new, |i| format!(" ({})", groups[i]));
        violations.push(Violation::new("groups", format!("{message}{which}")));
    }
    let (principal, subject, role, groups) = match query.principal.as_deref() {
        None => {
            if query.role.is_some() || query.groups.is_some() {
                violations.push(Violation::new("principal", "is required with role or groups"));
            }
            (
                format!("user:{}", me.subject),
                me.subject.clone(),
                me.role,
                me.groups.clone(),
            )
        }
        Some(raw) => {
            auth.caller
                .authorize(tenancy::policy::Action::ManageGrants(tenant))?;
            match Grantee::parse(raw) {
                Err(why) => {
                    violations.push(Violation::new("principal", why.to_string()));
                    (raw.to_owned(), String::new(), Role::Viewer, Vec::new())
                }
                Ok(Grantee::Role(r)) => {
                    if query.role.is_some_and(|q| q != r) {
                        violations.push(Violation::new(
                            "role",
                            "must be the principal's own role, or absent",
                        ));
                    }
                    (raw.to_owned(), String::new(), r, Vec::new())
                }
                Ok(g) => {
                    let role = match query.role {
                        Some(Role::PlatformAdmin) => {
                            violations.push(Violation::new("role", "must be a tenant role"));
                            Role::Viewer
                        }
                        Some(r) => r,
                        None => {
                            violations.push(Violation::new(
                                "role",
                                "is required for a user or group principal: its role is the ceiling of its grants",
                            ));
                            Role::Viewer
                        }
                    };
                    match g {
                        Grantee::User(name) => (raw.to_owned(), name, role, groups),
                        Grantee::Group(name) => {
                            if query.groups.is_some() {
                                violations.push(Violation::new("groups", "only with a user principal"));
                            }
                            (raw.to_owned(), String::new(), role, vec![name])
                        }
                        // Matched by the arm above; kept total rather than a panic.
                        Grantee::Role(r) => (raw.to_owned(), String::new(), r, Vec::new()),
                    }
                }
            }
        }
    };
    violations.finish(|| ())?;
    load(&state, tenant).await?;
    let grants = if role.manages_tenant() {
        std::sync::Arc::new(TenantGrants::default())
    } else {
        state.grants.of(tenant).await?
    };
    let who = Identity {
        subject: &subject,
        role,
        groups: &groups,
    };
    let mut tenant_and_zones = vec![held(&grants, &who, &Securable::Tenant, role)];
    tenant_and_zones.extend(
        Zone::ALL
            .into_iter()
            .map(|z| held(&grants, &who, &Securable::Zone(z), role)),
    );
    // Tables on which nothing is held are skipped; keep reading until one more than a page
    // is found (so the last page says so) or the tables run out.
    let mut found: Vec<(String, EffectiveOn)> = Vec::new();
    let mut cursor = after;
    loop {
        let batch = state
            .store
            .list_tables(
                tenant,
                None,
                cursor.as_ref().map(|(z, n)| (z.as_str(), n.as_str())),
                limit + 1,
            )
            .await?;
        let exhausted = batch.len() <= limit as usize;
        cursor = batch
            .last()
            .map(|t| (t.spec.zone.as_str().to_owned(), t.spec.name.to_string()));
        for t in batch
            .iter()
            .filter(|t| t.status == tenancy::store::TableStatus::Active)
        {
            let on = held(
                &grants,
                &who,
                &Securable::Table(t.spec.zone, t.spec.name.to_string()),
                role,
            );
            if !on.privileges.is_empty() {
                found.push((format!("{}/{}", t.spec.zone.as_str(), t.spec.name), on));
            }
        }
        if exhausted || found.len() > limit as usize {
            break;
        }
    }
    let (page, next_cursor) = pagination::page(found, limit, |(key, _)| key.clone());
    Ok(Json(EffectiveGrants {
        principal,
        role,
        groups,
        tenant_and_zones,
        items: page.into_iter().map(|(_, on)| on).collect(),
        next_cursor,
    }))
}
