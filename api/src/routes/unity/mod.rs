//! A Unity Catalog REST API (OSS 2.1) under `/api/2.1/unity-catalog`, so engines that speak it
//! (polars, Python `deltalake`, DuckDB, Spark, Daft) find tables by name and get credentials
//! scoped to one table. Catalog = tenant, schema = zone, table = table. The same bearer
//! tokens, rate limits and audit as `/v1`; the caller sees its own tenant's catalog
//! (platform-admins every one) and the zones its role may read; another tenant's catalog does
//! not exist. Read-only: tenants, zones and tables are made through `/v1`.

pub mod credentials;
pub mod errors;
pub mod models;
pub mod permissions;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use futures_util::StreamExt;
use serde::Deserialize;
use tenancy::grants::{Privilege, TenantGrants};
use tenancy::pagination;
use tenancy::policy::{Action, Denial};
use tenancy::role::{Access, Role, Zone};
use tenancy::store::{TableRecord, TableStatus};
use tenancy::tenant::{Tenant, TenantId, TenantStatus};
use tenancy::validation::Violation;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::models::{
    CatalogInfo, ListCatalogsResponse, ListSchemasResponse, ListTablesResponse, SchemaInfo, TableInfo,
    UcError,
};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// Where the API is mounted.
pub const BASE: &str = "/api/2.1/unity-catalog";

/// Largest page, and the page size when `max_results` is absent or 0: clients that read only
/// the first page (DuckDB) see up to this many.
pub const MAX_RESULTS: u32 = 1_000;

/// Tables whose metadata is read at once for a list page.
const LIST_READS: usize = 8;

/// The routes, documented under the `unity-catalog` tag.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_catalogs))
        .routes(routes!(get_catalog))
        .routes(routes!(list_schemas))
        .routes(routes!(get_schema))
        .routes(routes!(list_tables))
        .routes(routes!(get_table))
        .routes(routes!(credentials::temporary_table_credentials))
        .routes(routes!(
            permissions::get_permissions,
            permissions::update_permissions
        ))
}

/// Page size and position of a list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size; absent or 0 means the largest page (1,000). Larger values are capped.
    pub max_results: Option<i64>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

fn page_size(requested: Option<i64>) -> Result<u32, Violation> {
    match requested {
        None | Some(0) => Ok(MAX_RESULTS),
        Some(n) if n < 0 => Err(Violation::new("max_results", "must be 0 or more")),
        Some(n) => Ok(u32::try_from(n).unwrap_or(MAX_RESULTS).min(MAX_RESULTS)),
    }
}

fn after(token: Option<&str>) -> Result<Option<String>, Violation> {
    token
        .filter(|t| !t.is_empty())
        .map(|t| {
            pagination::decode_cursor(t)
                .map_err(|_| Violation::new("page_token", "is not a page token this server issued"))
        })
        .transpose()
}

/// The tenant named `name` if the caller may see it: its own, or any for a platform-admin.
/// Anything else, a tenant being deleted included, does not exist.
async fn visible(state: &AppState, caller: &Caller, name: &str) -> Result<Tenant, ApiError> {
    let principal = &caller.principal;
    let platform = principal.role == Role::PlatformAdmin;
    // Another tenant's name, or one that names no tenant: hidden, and audited as a refusal
    // (a probe), the same answer either way.
    let hidden = || ApiError::Denied(Denial::Hidden);
    let id = TenantId::parse(name).map_err(|_| hidden())?;
    if !platform && principal.tenant.as_ref() != Some(&id) {
        return Err(hidden());
    }
    let missing = || ApiError::NotFound(format!("no catalog {name}"));
    state
        .store
        .get_tenant(&id)
        .await?
        .filter(|t| t.status != TenantStatus::Deleting)
        .ok_or_else(missing)
}

/// A visible tenant's grants, if the caller holds `USE CATALOG` on it (PERMISSION_DENIED if
/// not, as Unity Catalog answers).
async fn usable(state: &AppState, caller: &Caller, tenant: &Tenant) -> Result<Arc<TenantGrants>, ApiError> {
    let grants = caller.grants(state, &tenant.id).await?;
    if !grants.sees_tenant(&caller.identity()) {
        return Err(ApiError::Denied(Denial::Forbidden(
            "USE CATALOG on the tenant is not granted".to_owned(),
        )));
    }
    Ok(grants)
}

/// The zone named `name` of a visible tenant, if the caller's role may read it and it holds
/// `USE SCHEMA` there (403 if not).
fn readable_zone(
    caller: &Caller,
    grants: &TenantGrants,
    tenant: &Tenant,
    name: &str,
) -> Result<Zone, ApiError> {
    let zone =
        Zone::parse(name).ok_or_else(|| ApiError::NotFound(format!("no schema {}.{name}", tenant.id)))?;
    caller.authorize(Action::Zone(&tenant.id, zone, Access::Read))?;
    caller.use_zone(grants, zone, Privilege::UseSchema)?;
    Ok(zone)
}

/// Splits a dotted full name into exactly `parts` names.
fn split_full_name(full_name: &str, parts: usize) -> Result<Vec<&str>, Violation> {
    let names: Vec<&str> = full_name.split('.').collect();
    if names.len() != parts || names.iter().any(|n| n.is_empty()) {
        let shape = if parts == 2 {
            "catalog.schema"
        } else {
            "catalog.schema.table"
        };
        return Err(Violation::new("full_name", format!("must be {shape}")));
    }
    Ok(names)
}

fn location(state: &AppState, tenant: &Tenant, record: &TableRecord) -> String {
    state
        .catalog
        .table_root(tenant, record.spec.zone, record.spec.name.as_str())
}

/// The catalogs the caller may see, by name.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/catalogs", tag = "unity-catalog", operation_id = "uc_list_catalogs",
    params(PageQuery),
    responses((status = 200, description = "A page of catalogs", body = ListCatalogsResponse),
        (status = 400, description = "A bad page token or size", body = UcError)))]
pub async fn list_catalogs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<ListCatalogsResponse>, ApiError> {
    let limit = page_size(query.max_results)?;
    let after = after(query.page_token.as_deref())?;
    let principal = &caller.principal;
    let only = match principal.role {
        Role::PlatformAdmin => None,
        _ => match principal.tenant.as_ref() {
            Some(tenant) => Some(tenant),
            None => return Err(ApiError::Internal("a tenant role without a tenant".into())),
        },
    };
    let rows = state
        .store
        .list_tenants(after.as_deref(), limit + 1, only, None)
        .await?;
    // Paged before tenants being deleted are left out, so the token still follows the last
    // tenant read (a page may come out short; the next one goes on from there).
    let (rows, next_page_token) = pagination::page(rows, limit, |t| t.id.to_string());
    let mut catalogs = Vec::new();
    for t in rows.iter().filter(|t| t.status != TenantStatus::Deleting) {
        // Without USE CATALOG the tenant's own catalog is not listed.
        if caller
            .grants(&state, &t.id)
            .await?
            .sees_tenant(&caller.identity())
        {
            catalogs.push(CatalogInfo::of(t));
        }
    }
    Ok(Json(ListCatalogsResponse {
        catalogs,
        next_page_token,
    }))
}

/// One catalog.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/catalogs/{name}", tag = "unity-catalog", operation_id = "uc_get_catalog",
    params(("name" = String, Path, description = "The catalog: a tenant id")),
    responses((status = 200, description = "The catalog", body = CatalogInfo),
        (status = 404, description = "No such catalog, or another tenant's", body = UcError)))]
pub async fn get_catalog(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<CatalogInfo>, ApiError> {
    let tenant = visible(&state, &caller, &name).await?;
    usable(&state, &caller, &tenant).await?;
    Ok(Json(CatalogInfo::of(&tenant)))
}

/// Which catalog's schemas.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SchemaQuery {
    /// The catalog (a tenant id).
    pub catalog_name: String,
    /// Page size; absent or 0 means the largest page.
    pub max_results: Option<i64>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The zones of a catalog that the caller's role may read, by name.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/schemas", tag = "unity-catalog", operation_id = "uc_list_schemas",
    params(SchemaQuery),
    responses((status = 200, description = "A page of schemas", body = ListSchemasResponse),
        (status = 404, description = "No such catalog, or another tenant's", body = UcError)))]
pub async fn list_schemas(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<SchemaQuery>,
) -> Result<Json<ListSchemasResponse>, ApiError> {
    let limit = page_size(query.max_results)?;
    let after = after(query.page_token.as_deref())?;
    let tenant = visible(&state, &caller, &query.catalog_name).await?;
    let grants = usable(&state, &caller, &tenant).await?;
    let mut zones: Vec<Zone> = Zone::ALL
        .into_iter()
        .filter(|z| {
            caller
                .authorize(Action::Zone(&tenant.id, *z, Access::Read))
                .is_ok()
                && caller.use_zone(&grants, *z, Privilege::UseSchema).is_ok()
        })
        .filter(|z| after.as_deref().is_none_or(|a| z.as_str() > a))
        .collect();
    zones.sort_by_key(|z| z.as_str());
    let (zones, next_page_token) = pagination::page(zones, limit, |z| z.as_str().to_owned());
    Ok(Json(ListSchemasResponse {
        schemas: zones.into_iter().map(|z| SchemaInfo::of(&tenant, z)).collect(),
        next_page_token,
    }))
}

/// One schema (`catalog.schema`).
#[utoipa::path(get, path = "/api/2.1/unity-catalog/schemas/{full_name}", tag = "unity-catalog", operation_id = "uc_get_schema",
    params(("full_name" = String, Path, description = "`catalog.schema`: a tenant id and a zone")),
    responses((status = 200, description = "The schema", body = SchemaInfo),
        (status = 403, description = "The caller's role may not read the zone", body = UcError),
        (status = 404, description = "No such catalog or schema", body = UcError)))]
pub async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(full_name): Path<String>,
) -> Result<Json<SchemaInfo>, ApiError> {
    let names = split_full_name(&full_name, 2)?;
    let tenant = visible(&state, &caller, names[0]).await?;
    let grants = usable(&state, &caller, &tenant).await?;
    let zone = readable_zone(&caller, &grants, &tenant, names[1])?;
    Ok(Json(SchemaInfo::of(&tenant, zone)))
}

/// Which schema's tables.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TableQuery {
    /// The catalog (a tenant id).
    pub catalog_name: String,
    /// The schema (a zone).
    pub schema_name: String,
    /// Page size; absent or 0 means the largest page.
    pub max_results: Option<i64>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
    /// Leave each table's columns out.
    pub omit_columns: Option<bool>,
    /// Leave each table's properties out; with `omit_columns` too, no Delta log is read.
    pub omit_properties: Option<bool>,
}

/// The tables of a schema, by name, with their columns.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/tables", tag = "unity-catalog", operation_id = "uc_list_tables",
    params(TableQuery),
    responses((status = 200, description = "A page of tables", body = ListTablesResponse),
        (status = 403, description = "The caller's role may not read the zone", body = UcError),
        (status = 404, description = "No such catalog or schema", body = UcError)))]
pub async fn list_tables(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<TableQuery>,
) -> Result<Json<ListTablesResponse>, ApiError> {
    let limit = page_size(query.max_results)?;
    let after = after(query.page_token.as_deref())?;
    let tenant = visible(&state, &caller, &query.catalog_name).await?;
    let grants = usable(&state, &caller, &tenant).await?;
    let zone = readable_zone(&caller, &grants, &tenant, &query.schema_name)?;
    let rows = state
        .store
        .list_tables(
            &tenant.id,
            Some(zone),
            after.as_deref().map(|name| (zone.as_str(), name)),
            limit + 1,
        )
        .await?;
    // Paged before tables the caller may not see are left out, so the token follows the last
    // table read (a page may come out short; the next goes on from there).
    let (rows, next_page_token) = pagination::page(rows, limit, |t| t.spec.name.to_string());
    let rows: Vec<TableRecord> = rows
        .into_iter()
        .filter(|t| caller.sees_table(&grants, zone, t.spec.name.as_str()))
        .collect();
    let omit_columns = query.omit_columns.unwrap_or(false);
    let omit_properties = query.omit_properties.unwrap_or(false);
    let tables: Vec<TableInfo> = futures_util::stream::iter(rows)
        .map(|record| {
            let (state, tenant) = (&state, &tenant);
            async move {
                let metadata = if omit_columns && omit_properties {
                    None
                } else {
                    // One table whose log cannot be read (being created, or broken) must not
                    // hide the others: it is listed without columns and the cause is logged.
                    match state.catalog.table_metadata(tenant, &record).await {
                        Ok(m) => Some(m),
                        Err(e) => {
                            tracing::warn!(table = %record.id, error = %tenancy::error_chain(&e), "table metadata unreadable; listed without columns");
                            None
                        }
                    }
                };
                let mut info = TableInfo::of(
                    tenant,
                    &record,
                    location(state, tenant, &record),
                    metadata.as_deref(),
                );
                if omit_columns {
                    info.columns.clear();
                }
                if omit_properties {
                    info.properties.clear();
                }
                info
            }
        })
        .buffered(LIST_READS)
        .collect()
        .await;
    Ok(Json(ListTablesResponse {
        tables,
        next_page_token,
    }))
}

/// Query parameters some clients add to a table lookup; ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TableLookup {
    /// The full name again (polars sends it); ignored.
    pub full_name: Option<String>,
}

/// One table (`catalog.schema.table`), with the columns of its current Delta schema.
#[utoipa::path(get, path = "/api/2.1/unity-catalog/tables/{full_name}", tag = "unity-catalog", operation_id = "uc_get_table",
    params(("full_name" = String, Path, description = "`catalog.schema.table`"), TableLookup),
    responses((status = 200, description = "The table", body = TableInfo),
        (status = 403, description = "The caller's role may not read the zone", body = UcError),
        (status = 404, description = "No such catalog, schema or table", body = UcError)))]
pub async fn get_table(
    State(state): State<AppState>,
    caller: Caller,
    Path(full_name): Path<String>,
) -> Result<Json<TableInfo>, ApiError> {
    let names = split_full_name(&full_name, 3)?;
    let tenant = visible(&state, &caller, names[0]).await?;
    let grants = usable(&state, &caller, &tenant).await?;
    let zone = readable_zone(&caller, &grants, &tenant, names[1])?;
    // Before the lookup, so a denial says nothing of whether the table exists.
    if !caller.sees_table(&grants, zone, names[2]) {
        return Err(ApiError::Denied(Denial::Forbidden(format!(
            "neither SELECT nor MODIFY on table {} is granted",
            &full_name
        ))));
    }
    let record = state
        .store
        .get_table(&tenant.id, zone, names[2])
        .await?
        .filter(|t| t.status == TableStatus::Active)
        .ok_or_else(|| ApiError::NotFound(format!("no table {full_name}")))?;
    let metadata = state.catalog.table_metadata(&tenant, &record).await?;
    let info = TableInfo::of(
        &tenant,
        &record,
        location(&state, &tenant, &record),
        Some(&metadata),
    );
    Ok(Json(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_follow_unity_catalog() {
        assert_eq!(page_size(None).expect("ok"), MAX_RESULTS);
        assert_eq!(page_size(Some(0)).expect("ok"), MAX_RESULTS);
        assert_eq!(page_size(Some(7)).expect("ok"), 7);
        assert_eq!(page_size(Some(50_000)).expect("ok"), MAX_RESULTS);
        assert_eq!(page_size(Some(-1)).expect_err("negative").field, "max_results");
    }

    #[test]
    fn full_names_need_every_part() {
        assert_eq!(
            split_full_name("acme.gold.orders", 3).expect("ok"),
            ["acme", "gold", "orders"]
        );
        for bad in ["acme.gold", "acme..orders", "acme.gold.orders.x", ""] {
            assert_eq!(split_full_name(bad, 3).expect_err(bad).field, "full_name");
        }
        assert!(split_full_name("acme.gold", 2).is_ok());
    }
}
