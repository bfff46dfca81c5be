//! Tenants: create, list, read, change and delete.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::pagination;
use tenancy::placement::{Candidate, Ranking, place};
use tenancy::policy::{Action, TenantChange};
use tenancy::role::Role;
use tenancy::tenant::{Isolation, Tenant, TenantId, TenantStatus, Tier, validate_display_name};
use tenancy::validation::Violations;
use utoipa::{IntoParams, ToSchema};

use super::views::{Page, PageQuery, QuotasPatch, TenantView};
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

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

fn placement_for(
    state: &AppState,
    tenant: &Candidate,
    snapshot: &tenancy::store::PlacementSnapshot,
) -> tenancy::placement::Placement {
    // The tenant itself may not be in the snapshot yet (creation); rank it alongside the others.
    let others = snapshot.tenants.iter().filter(|c| c.id != tenant.id);
    let ranking = Ranking::new(
        others
            .map(|c| (&c.id, c.volume_30d_bytes))
            .chain([(&tenant.id, tenant.volume_30d_bytes)]),
    );
    place(tenant, &ranking, &snapshot.shard_fill, &state.config.placement)
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
    let (id, display_name) = violations.finish(|| (id, display_name))?;
    let (Some(id), Some(display_name)) = (id, display_name) else {
        return Err(ApiError::Internal("validated fields missing".to_owned()));
    };
    let isolation = body.isolation.unwrap_or_default();
    let snapshot = state.store.placement_snapshot().await?;
    let candidate = Candidate {
        id: id.clone(),
        tier: body.tier,
        isolation,
        volume_30d_bytes: 0,
        current: None,
    };
    let placement = placement_for(&state, &candidate, &snapshot);
    let now = tenancy::now();
    let tenant = Tenant {
        id,
        display_name,
        tier: body.tier,
        isolation,
        status: TenantStatus::Provisioning,
        status_reason: None,
        placement,
        quotas,
        volume_30d_bytes: 0,
        created_at: now,
        updated_at: now,
    };
    let target = format!("/v1/tenants/{}", tenant.id);
    let audit = event(
        &auth.caller,
        "tenant.create",
        &target,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    state
        .store
        .insert_tenant(&tenant, &audit)
        .await
        .map_err(|e| match e {
            tenancy::store::StoreError::Conflict(_) => {
                ApiError::Conflict(format!("tenant {} already exists", tenant.id))
            }
            other => other.into(),
        })?;
    let location = HeaderValue::from_str(&target).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Storage is set up in the background; the tenant reads `provisioning` until it is `ready`.
    let provisioner = state.provisioner.clone();
    let id = tenant.id.clone();
    tokio::spawn(async move {
        if let Err(e) = provisioner.provision(&id).await {
            tracing::error!(tenant = %id, error = %crate::error::chain(&e), "provisioning stopped");
        }
    });
    Ok(audited((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(TenantView::new(&state, &tenant)),
    )))
}

/// Lists tenants by id; tenant callers see only their own.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", params(PageQuery), responses(
    (status = 200, description = "A page of tenants", body = Page<TenantView>),
))]
pub async fn list_tenants(
    State(state): State<AppState>,
    auth: Authorized<perm::ListTenants>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<TenantView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = query
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(pagination::decode_cursor)
        .transpose()?;
    let only = match auth.caller.principal.role {
        Role::PlatformAdmin => None,
        _ => auth.caller.principal.tenant.clone(),
    };
    let rows = state
        .store
        .list_tenants(after.as_deref(), limit + 1, only.as_ref())
        .await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |t| t.id.to_string());
    Ok(Json(Page {
        items: rows.iter().map(|t| TenantView::new(&state, t)).collect(),
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
    let tenant = load(&state, auth.tenant()?).await?;
    Ok(Json(TenantView::new(&state, &tenant)))
}

/// Changes a tenant. Tenant-admins may change only the display name.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", tag = "tenants", request_body = UpdateTenant,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 200, description = "The changed tenant", body = TenantView),
        (status = 409, description = "The change would move stored data between buckets (needs a migration)", body = crate::problem::Problem, content_type = "application/problem+json")))]
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
    violations.finish(|| ())?;
    if change.tier || change.isolation {
        tenant.tier = body.tier.unwrap_or(tenant.tier);
        tenant.isolation = body.isolation.unwrap_or(tenant.isolation);
        let snapshot = state.store.placement_snapshot().await?;
        let candidate = Candidate {
            id: tenant.id.clone(),
            tier: tenant.tier,
            isolation: tenant.isolation,
            volume_30d_bytes: tenant.volume_30d_bytes,
            current: Some(tenant.placement.clone()),
        };
        let placement = placement_for(&state, &candidate, &snapshot);
        let provisioned = state
            .store
            .provisioning_steps(&tenant.id)
            .await?
            .iter()
            .any(|s| s == "bucket");
        if placement.kind != tenant.placement.kind && provisioned {
            return start_migration(&state, &auth.caller, tenant, placement).await;
        }
        tenant.placement = placement;
    }
    tenant.updated_at = tenancy::now();
    let target = format!("/v1/tenants/{}", tenant.id);
    let audit = event(
        &auth.caller,
        "tenant.update",
        &target,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    if !state.store.update_tenant(&tenant, &audit).await? {
        return Err(ApiError::NotFound(format!("no tenant {}", tenant.id)));
    }
    Ok(audited(Json(TenantView::new(&state, &tenant))))
}

/// Saves the non-placement changes, then moves the tenant's data to its new placement in the
/// background: the tenant reads `migrating` until the switch, then `ready`.
async fn start_migration(
    state: &AppState,
    caller: &crate::auth::Caller,
    mut tenant: Tenant,
    placement: tenancy::placement::Placement,
) -> Result<Response, ApiError> {
    if tenant.status != TenantStatus::Ready {
        return Err(ApiError::Conflict(format!(
            "tenant {} is {}; its placement can change only when it is ready",
            tenant.id,
            tenant.status.as_str()
        )));
    }
    let target = format!("/v1/tenants/{}", tenant.id);
    tenant.updated_at = tenancy::now();
    // Tier and isolation are saved now, with the old placement; the switch follows the copy.
    let update = event(
        caller,
        "tenant.update",
        &target,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    state.store.update_tenant(&tenant, &update).await?;
    begin_migration(state, caller, &tenant, placement).await?;
    let current = load(state, &tenant.id).await?;
    Ok(audited(Json(TenantView::new(state, &current))))
}

/// Records a migration of a `ready` tenant; its `migrate` worker copies and switches, and the
/// old location is removed once the grace period has passed.
pub(crate) async fn begin_migration(
    state: &AppState,
    caller: &crate::auth::Caller,
    tenant: &Tenant,
    placement: tenancy::placement::Placement,
) -> Result<(), ApiError> {
    let detail = format!(
        "/v1/tenants/{}: {} to {}",
        tenant.id,
        tenant.placement.kind.as_str(),
        placement.kind.as_str()
    );
    let audit = event(
        caller,
        "tenant.migrate",
        &detail,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    state
        .provisioner
        .start_migration(tenant, placement, &audit)
        .await
        .map_err(|e| match e {
            lake_manager::provision::ProvisionError::Store(tenancy::store::StoreError::Conflict(_)) => {
                ApiError::Conflict(format!("tenant {} is already migrating", tenant.id))
            }
            lake_manager::provision::ProvisionError::Store(e) => ApiError::Store(e),
            other => ApiError::Internal(crate::error::chain(&other)),
        })?;
    // The copy is a `migrate` worker: the reconciler starts it now.
    state.workers.wake();
    Ok(())
}

/// Deletes a tenant: revokes its tokens and removes its storage; the audit log is kept.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "Tenant id"), DeleteQuery),
    responses(
        (status = 202, description = "Deleted", body = DeletionReport),
        (status = 200, description = "Dry run: what would be removed", body = DeletionReport),
    ))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    auth: Authorized<perm::DeleteTenant>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<Response, ApiError> {
    let id = auth.tenant()?;
    let tenant = load(&state, id).await?;
    let bucket = state.provisioner.bucket_of(&tenant);
    let kept = vec!["audit log"];
    if query.dry_run.unwrap_or(false) {
        let live = state.store.list_tokens(id, None, u32::MAX).await?;
        let now = tenancy::now();
        let tokens = live
            .iter()
            .filter(|t| t.revoked_at.is_none() && t.expires_at > now)
            .count() as u64;
        let mut objects = 0;
        let mut storage_locations = Vec::new();
        for zone in tenancy::role::Zone::ALL {
            let prefix = lake_manager::layout::zone_prefix(zone, id);
            objects += state
                .storage
                .usage(&bucket, &prefix)
                .await?
                .iter()
                .map(|u| u.objects)
                .sum::<u64>();
            storage_locations.push(format!("{}/{prefix}", state.storage.bucket_uri(&bucket)));
        }
        if tenant.placement.kind == tenancy::placement::PlacementKind::Dedicated {
            storage_locations = vec![state.storage.bucket_uri(&bucket)];
        }
        let report = DeletionReport {
            tenant: id.to_string(),
            status: "dry_run",
            tokens_revoked: tokens,
            objects_erased: objects,
            storage_locations,
            kept,
        };
        let target = format!("/v1/tenants/{id}?dry_run=true");
        let audit = event(
            &auth.caller,
            "tenant.delete.dry_run",
            &target,
            Some(id.as_str()),
            Outcome::Success,
        );
        state.store.append_audit(&audit).await?;
        return Ok(audited(Json(report)));
    }
    if tenant.status == TenantStatus::Migrating {
        return Err(ApiError::Conflict(format!(
            "tenant {id} is migrating; delete it once it is ready"
        )));
    }
    // Fence the tenant first; if the purge fails half-way, a repeated DELETE finishes it.
    state
        .store
        .set_tenant_status(id, TenantStatus::Deleting, Some("purge in progress"))
        .await?;
    let (objects, storage_locations) =
        state
            .provisioner
            .purge_storage(&tenant)
            .await
            .map_err(|e| match e {
                lake_manager::provision::ProvisionError::Store(e) => ApiError::Store(e),
                other => ApiError::Internal(crate::error::chain(&other)),
            })?;
    let target = format!("/v1/tenants/{id}");
    let erased = format!(
        "{target}: erased {objects} objects at {}",
        storage_locations.join(", ")
    );
    state
        .store
        .append_audit(&event(
            &auth.caller,
            "tenant.purge",
            &erased,
            Some(id.as_str()),
            Outcome::Success,
        ))
        .await?;
    let audit = event(
        &auth.caller,
        "tenant.delete",
        &target,
        Some(id.as_str()),
        Outcome::Success,
    );
    let tokens = state.store.list_tokens(id, None, u32::MAX).await?;
    let revoked = state
        .store
        .delete_tenant(id, tenancy::now(), &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no tenant {id}")))?;
    for token in tokens {
        state.revocations.insert(token.id).await;
    }
    // Its workers' rows went with it; the reconciler stops what still runs for them.
    state.workers.wake();
    if let (tenancy::placement::PlacementKind::Shared, Some(shard)) =
        (tenant.placement.kind, tenant.placement.shard)
    {
        // The tenant's own rules leave the shard's lifecycle with it.
        if let Err(e) = state.provisioner.reapply_shard_lifecycle(&bucket, shard).await {
            tracing::warn!(error = %crate::error::chain(&e), bucket, "could not refresh the shard lifecycle");
        }
    }
    let report = DeletionReport {
        tenant: id.to_string(),
        status: "deleted",
        tokens_revoked: revoked,
        objects_erased: objects,
        storage_locations,
        kept,
    };
    Ok(audited((StatusCode::ACCEPTED, Json(report))))
}

crate::objects_only!(CreateTenant, UpdateTenant);
