//! Unity Catalog's permissions API over the same grants as `/v1/tenants/{tenant}/grants`:
//! `GET` and `PATCH /permissions/{securable_type}/{full_name}` for `catalog` (a tenant),
//! `schema` (`tenant.zone`) and `table` (`tenant.zone.table`). Principals are the same strings
//! as in `/v1` (`user:bob`, `group:finance`, `role:analyst`), privileges UC's own names.
//!
//! As Unity Catalog answers: tenant-admins and platform-admins see every assignment and
//! change them; anyone else who may see the securable sees only the assignments that reach it
//! (its user, its groups, its role), and a change is PERMISSION_DENIED.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tenancy::grants::{Grantee, Securable};
use tenancy::policy::{Action, Denial};
use tenancy::role::{Access, Zone};
use tenancy::store::TableStatus;
use tenancy::tenant::Tenant;
use tenancy::validation::Violation;
use utoipa::{IntoParams, ToSchema};

use super::{split_full_name, visible};
use crate::audit::audited;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::routes::grants::{PrivilegeAssignment, UpdateGrants, assignments, change, parse_changes};
use crate::state::AppState;

/// Unity Catalog's `PermissionsList`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionsList {
    /// Who holds what on the securable (inherited grants are not repeated).
    pub privilege_assignments: Vec<PrivilegeAssignment>,
}

/// Optional filter of a read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PermissionsQuery {
    /// Only this principal's assignment.
    pub principal: Option<String>,
}

/// The tenant and securable a `{securable_type}/{full_name}` names, once the caller may see it:
/// another tenant's answers NOT_FOUND; a zone its role may not read, PERMISSION_DENIED.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    securable_type: &str,
    full_name: &str,
) -> Result<(Tenant, Securable), ApiError> {
    let parts = match securable_type {
        "catalog" => 1,
        "schema" => 2,
        "table" => 3,
        _ => {
            return Err(Violation::new(
                "securable_type",
                "must be catalog, schema or table: Lakeplane grants nothing else",
            )
            .into());
        }
    };
    let names: Vec<&str> = if parts == 1 {
        if full_name.is_empty() || full_name.contains('.') {
            return Err(Violation::new("full_name", "must be a catalog name").into());
        }
        vec![full_name]
    } else {
        split_full_name(full_name, parts)?
    };
    let tenant = visible(state, caller, names[0]).await?;
    let Some(zone_name) = names.get(1) else {
        return Ok((tenant, Securable::Tenant));
    };
    let zone = Zone::parse(zone_name)
        .ok_or_else(|| ApiError::NotFound(format!("no schema {}.{zone_name}", tenant.id)))?;
    caller.authorize(Action::Zone(&tenant.id, zone, Access::Read))?;
    let Some(table) = names.get(2) else {
        return Ok((tenant, Securable::Zone(zone)));
    };
    Ok((tenant, Securable::Table(zone, (*table).to_owned())))
}

/// The permissions on a catalog, schema or table.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", tag = "unity-catalog",
    operation_id = "uc_get_permissions",
    params(("securable_type" = String, Path, description = "catalog, schema or table"),
        ("full_name" = String, Path, description = "`catalog`, `catalog.schema` or `catalog.schema.table`"),
        PermissionsQuery),
    responses((status = 200, description = "The assignments", body = PermissionsList),
        (status = 404, description = "No such securable, or another tenant's", body = super::models::UcError)))]
pub async fn get_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path((securable_type, full_name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PermissionsQuery>,
) -> Result<Json<PermissionsList>, ApiError> {
    let (tenant, on) = resolve(&state, &caller, &securable_type, &full_name).await?;
    let only = query
        .principal
        .as_deref()
        .map(|p| Grantee::parse(p).map_err(|why| Violation::new("principal", why.to_string())))
        .transpose()?;
    let admin = caller.authorize(Action::ManageGrants(&tenant.id)).is_ok();
    // Reading a securable's permissions needs what seeing it needs (admins hold everything).
    let grants = super::usable(&state, &caller, &tenant).await?;
    if let Securable::Zone(zone) = &on {
        caller.use_zone(&grants, *zone, tenancy::grants::Privilege::UseSchema)?;
    }
    if let Securable::Table(zone, name) = &on {
        if !admin && !caller.sees_table(&grants, *zone, name) {
            return Err(ApiError::Denied(Denial::Forbidden(format!(
                "neither SELECT nor MODIFY on table {full_name} is granted"
            ))));
        }
        state
            .store
            .get_table(&tenant.id, *zone, name)
            .await?
            .filter(|t| t.status == TableStatus::Active)
            .ok_or_else(|| ApiError::NotFound(format!("no table {full_name}")))?;
    }
    let grants = state.grants.of(&tenant.id).await?;
    let me = caller.identity();
    let mut on_it = grants.on(&on);
    on_it.retain(|g, _| {
        only.as_ref().is_none_or(|o| o == g)
            && (admin
                || match g {
                    Grantee::User(n) => n == me.subject,
                    Grantee::Group(n) => me.groups.contains(n),
                    Grantee::Role(r) => *r == me.role,
                })
    });
    Ok(Json(PermissionsList {
        privilege_assignments: assignments(&on_it),
    }))
}

/// Changes the permissions on a catalog, schema or table, as `PATCH /v1/.../grants/...` does;
/// answers with the assignments of the principals the changes name, after them.
#[utoipa::path(patch, path = "/api/2.1/unity-catalog/permissions/{securable_type}/{full_name}", tag = "unity-catalog",
    operation_id = "uc_update_permissions",
    params(("securable_type" = String, Path, description = "catalog, schema or table"),
        ("full_name" = String, Path, description = "`catalog`, `catalog.schema` or `catalog.schema.table`")),
    request_body = UpdateGrants,
    responses((status = 200, description = "The changed principals' assignments", body = PermissionsList),
        (status = 400, description = "A malformed principal or an unknown privilege", body = super::models::UcError),
        (status = 403, description = "Only tenant-admins and platform-admins change permissions", body = super::models::UcError),
        (status = 404, description = "No such securable, or another tenant's", body = super::models::UcError)))]
pub async fn update_permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path((securable_type, full_name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (tenant, on) = resolve(&state, &caller, &securable_type, &full_name).await?;
    caller.authorize(Action::ManageGrants(&tenant.id))?;
    let body: UpdateGrants = serde_json::from_slice(&body)
        .map_err(|e| Violation::new("body", format!("not an UpdatePermissions document: {e}")))?;
    let changes = parse_changes(body.changes)?;
    if let Securable::Table(zone, name) = &on
        && state
            .store
            .get_table(&tenant.id, *zone, name)
            .await?
            .is_none_or(|t| t.status != TableStatus::Active)
    {
        return Err(ApiError::NotFound(format!("no table {full_name}")));
    }
    let changed = change(&state, &caller, &tenant.id, &on, &changes).await?;
    let mut named = changed.after;
    named.retain(|g, _| changes.iter().any(|c| &c.grantee == g));
    Ok(audited(Json(PermissionsList {
        privilege_assignments: assignments(&named),
    })))
}
