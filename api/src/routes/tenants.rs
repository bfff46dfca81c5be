//! Tenants: create, list, read, change and delete.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use lake_manager::tenants::{Deletion, NewTenant};
use serde::{Deserialize, Serialize};
use tenancy::pagination;
use tenancy::policy::{Action, TenantChange};
use tenancy::role::Role;
use tenancy::tenant::{Isolation, Tenant, TenantId, Tier, validate_display_name};
use tenancy::validation::Violations;
use utoipa::{IntoParams, ToSchema};

use super::views::{Page, PageQuery, QuotasPatch, TenantView};
use crate::audit::audited;
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::{AppState, TENANT_CACHE_TTL};

/// A new tenant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateTenant {
    /// DNS-safe slug: 3 to 40 of `[a-z0-9-]`, no leading, trailing or double hyphen; not reserved.
    #[schema(min_length = 3, max_length = 40, pattern = "^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub id: String,
    /// Human-readable name, 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub display_name: String,
    /// Tier.
    pub tier: Tier,
    /// Placement override (default `auto`).
    pub isolation: Option<Isolation>,
    /// Quotas; omitted ones take the platform defaults.
    pub quotas: Option<QuotasPatch>,
    /// Days within which an erasure of its data subjects must complete (GDPR: a month, CCPA:
    /// 45 days), 1 to 90 and more than twice `tables.erasure_window_secs`; default 30.
    #[schema(minimum = 1, maximum = 90)]
    pub erasure_deadline_days: Option<u32>,
    /// The longest lifetime of credentials vended for the tenant, seconds, 900 to 3600
    /// (default 3600). Tenant-admins may set it.
    #[schema(minimum = 900, maximum = 3600)]
    pub credential_max_ttl_secs: Option<u32>,
}

/// Changes to a tenant; omitted fields stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct UpdateTenant {
    /// Human-readable name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub display_name: Option<String>,
    /// Tier (platform-admin only).
    pub tier: Option<Tier>,
    /// Placement override (platform-admin only).
    pub isolation: Option<Isolation>,
    /// Quotas (platform-admin only).
    pub quotas: Option<QuotasPatch>,
    /// Days within which an erasure of its data subjects must complete (GDPR: a month, CCPA:
    /// 45 days), 1 to 90 and more than twice `tables.erasure_window_secs`; default 30.
    #[schema(minimum = 1, maximum = 90)]
    pub erasure_deadline_days: Option<u32>,
    /// The longest lifetime of credentials vended for the tenant, seconds, 900 to 3600
    /// (default 3600). Tenant-admins may set it.
    #[schema(minimum = 900, maximum = 3600)]
    pub credential_max_ttl_secs: Option<u32>,
}

/// `?dry_run=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// List what would be removed, and remove nothing.
    pub dry_run: Option<bool>,
}

/// What deleting a tenant removes.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletionReport {
    /// The tenant.
    pub tenant: String,
    /// `deleted`, or `dry_run` when nothing was removed.
    pub status: &'static str,
    /// Tokens revoked (or, in a dry run, that would be).
    pub tokens_revoked: u64,
    /// Objects erased (or, in a dry run, that would be).
    pub objects_erased: u64,
    /// Storage locations removed with the tenant.
    pub storage_locations: Vec<String>,
    /// What is kept.
    pub kept: Vec<&'static str>,
}

/// Creates a tenant; its storage starts `provisioning`.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant, responses(
    (status = 201, description = "Created", body = TenantView),
    (status = 409, description = "The id is taken", body = crate::problem::Problem, content_type = "application/problem+json"),
))]
pub async fn create_tenant(
    State(state): State<AppState>,
    auth: Authorized<perm::CreateTenant>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<Response, ApiError> {
    let mut violations = Violations::default();
    let id = violations.check(TenantId::parse(&body.id));
    let display_name = violations.check(validate_display_name(&body.display_name));
    let quotas = body
        .quotas
        .unwrap_or_default()
        .apply(state.config.tenants.default_quotas);
    if let Err(errors) = quotas.validate() {
        errors.into_iter().for_each(|v| violations.push(v));
    }
    let erasure_deadline_days = violations
        .check(tenancy::erasure::check_deadline_days(
            body.erasure_deadline_days
                .unwrap_or(tenancy::erasure::DEFAULT_DEADLINE_DAYS),
            state.config.tables.erasure_window_secs,
            state.config.erasure_drain().as_secs(),
        ))
        .unwrap_or(tenancy::erasure::DEFAULT_DEADLINE_DAYS);
    let credential_max_ttl_secs = violations
        .check(tenancy::credentials::check_tenant_max_ttl(
            body.credential_max_ttl_secs
                .unwrap_or(tenancy::credentials::TENANT_MAX_TTL_DEFAULT),
        ))
        .unwrap_or(tenancy::credentials::TENANT_MAX_TTL_DEFAULT);
    let (id, display_name) = violations.finish(|| (id, display_name))?;
    let (Some(id), Some(display_name)) = (id, display_name) else {
        return Err(ApiError::Internal("validated fields missing".to_owned()));
    };
    let new = NewTenant {
        id,
        display_name,
        tier: body.tier,
        isolation: body.isolation.unwrap_or_default(),
        quotas,
        erasure_deadline_days,
        credential_max_ttl_secs,
    };
    let tenant = state.tenants.create(new, &auth.caller.actor()).await?;
    let location = HeaderValue::from_str(&format!("/v1/tenants/{}", tenant.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(audited((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(TenantView::new(&state, &tenant, &auth.caller)),
    )))
}

/// `?limit=`, `?cursor=` and `?q=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TenantsQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Only tenants whose id or display name contains this text (ASCII case-insensitive),
    /// 1 to 100 characters.
    #[param(min_length = 1, max_length = 100)]
    pub q: Option<String>,
}

/// Most characters of a tenant search.
const MAX_SEARCH_CHARS: usize = 100;

/// Lists tenants by id, optionally only those matching `q`; tenant callers see only their own.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(TenantsQuery), responses(
    (status = 200, description = "A page of tenants", body = Page<TenantView>),
))]
pub async fn list_tenants(
    State(state): State<AppState>,
    auth: Authorized<perm::ListTenants>,
    ApiQuery(query): ApiQuery<TenantsQuery>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    let (limit, after) = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .bounds()?;
    let search = query.q.as_deref();
    if let Some(q) = search
        && (q.is_empty() || q.chars().count() > MAX_SEARCH_CHARS || q.chars().any(char::is_control))
    {
        return Err(ApiError::Validation(vec![crate::problem::FieldError {
            field: "q".into(),
            message: format!("must be 1 to {MAX_SEARCH_CHARS} characters, without control characters"),
            line: None,
        }]));
    }
    let only = match auth.caller.principal.role {
        Role::PlatformAdmin => None,
        _ => auth.caller.principal.tenant.clone(),
    };
    let rows = state
        .store
        .list_tenants(after.as_deref(), limit + 1, only.as_ref(), search)
        .await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |t| t.id.to_string());
    Ok(Json(Page {
        items: rows
            .iter()
            .map(|t| TenantView::new(&state, t, &auth.caller))
            .collect(),
        next_cursor,
    }))
}

/// The tenant, or 404.
pub(crate) async fn load(state: &AppState, id: &TenantId) -> Result<Tenant, ApiError> {
    state
        .store
        .get_tenant(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The tenant", body = TenantView)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let id = auth.tenant()?;
    let now = Instant::now();
    let entry = match state.tenant_cache.get(id, now) {
        Some(entry) => entry,
        None => {
            // A PATCH or DELETE that lands while this reads must not see its change undone
            // by this read's older row.
            let generation = state.tenant_cache.generation();
            let tenant = load(&state, id).await?;
            let migration = super::views::MigrationView::of(&state, &tenant.id).await?;
            let entry = Arc::new((tenant, migration));
            state.tenant_cache.insert_since(
                Some(generation),
                id.clone(),
                entry.clone(),
                now + TENANT_CACHE_TTL,
                now,
            );
            entry
        }
    };
    let (tenant, migration) = &*entry;
    let mut view = TenantView::new(&state, tenant, &auth.caller);
    view.migration = migration.clone();
    Ok(Json(view))
}

/// Changes a tenant. Tenant-admins may change only the display name and the erasure deadline.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", request_body = UpdateTenant,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The changed tenant", body = TenantView),
        (status = 409, description = "The new placement needs a migration and the tenant is not ready, or one is already under way", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn update_tenant(
    State(state): State<AppState>,
    auth: Authorized<perm::UpdateTenant>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Response, ApiError> {
    let id = auth.tenant()?;
    let change = TenantChange {
        tier: body.tier.is_some(),
        isolation: body.isolation.is_some(),
        quotas: body.quotas.is_some(),
    };
    auth.caller.authorize(Action::UpdateTenant(id, change))?;
    let mut tenant = load(&state, id).await?;
    let mut violations = Violations::default();
    if let Some(name) = &body.display_name
        && let Some(name) = violations.check(validate_display_name(name))
    {
        tenant.display_name = name;
    }
    if let Some(quotas) = &body.quotas {
        tenant.quotas = quotas.apply(tenant.quotas);
        if let Err(errors) = tenant.quotas.validate() {
            errors.into_iter().for_each(|v| violations.push(v));
        }
    }
    if let Some(days) = body.erasure_deadline_days
        && let Some(days) = violations.check(tenancy::erasure::check_deadline_days(
            days,
            state.config.tables.erasure_window_secs,
            state.config.erasure_drain().as_secs(),
        ))
    {
        tenant.erasure_deadline_days = days;
    }
    if let Some(secs) = body.credential_max_ttl_secs
        && let Some(secs) = violations.check(tenancy::credentials::check_tenant_max_ttl(secs))
    {
        tenant.credential_max_ttl_secs = secs;
    }
    violations.finish(|| ())?;
    tenant.tier = body.tier.unwrap_or(tenant.tier);
    tenant.isolation = body.isolation.unwrap_or(tenant.isolation);
    // A new tier or isolation places the tenant again; moving stored data starts a migration.
    let replace = change.tier || change.isolation;
    let updated = state.tenants.update(tenant, replace, &auth.caller.actor()).await;
    state.tenant_cache.remove(id);
    let tenant = updated?.ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))?;
    Ok(audited(Json(TenantView::new(&state, &tenant, &auth.caller))))
}

/// Deletes a tenant: revokes its tokens and removes its storage; the audit log is kept.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id"), DeleteQuery),
    responses(
        (status = 202, description = "Deleted", body = DeletionReport),
        (status = 200, description = "Dry run: what would be removed", body = DeletionReport),
        (status = 409, description = "The tenant is migrating; delete it once it is ready", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    auth: Authorized<perm::DeleteTenant>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let id = auth.tenant()?;
    let tenant = load(&state, id).await?;
    let actor = auth.caller.actor();
    let report = |status, deletion: Deletion| DeletionReport {
        tenant: id.to_string(),
        status,
        tokens_revoked: deletion.tokens_revoked,
        objects_erased: deletion.objects_erased,
        storage_locations: deletion.storage_locations,
        kept: vec!["audit log"],
    };
    if query.dry_run.unwrap_or(false) {
        let preview = state.tenants.deletion_preview(&tenant, &actor).await?;
        return Ok(audited(Json(report("dry_run", preview))));
    }
    let deleted = state.tenants.delete(&tenant, &actor).await;
    state.tenant_cache.remove(id);
    let deletion = deleted?.ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))?;
    Ok(audited((StatusCode::ACCEPTED, Json(report("deleted", deletion)))))
}

crate::objects_only!(CreateTenant, UpdateTenant);
