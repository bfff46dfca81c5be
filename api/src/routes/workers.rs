//! Workers: what the reconciler keeps running for each tenant, with state, restarts,
//! heartbeat, last error and progress; and the admin retry of a worker that settled `failed`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::pagination;
use tenancy::store::WorkerRecord;
use tenancy::tenant::TenantId;
use tenancy::validation::Violation;
use tenancy::worker::{WorkerKind, WorkerState, WorkerTarget};
use utoipa::{IntoParams, ToSchema};

use super::tenants::load;
use super::views::Page;
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// A worker as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    /// Deterministic id: `{kind}-{tenant}-{hash of the target}`.
    pub id: String,
    /// `ingest`, `compact`, `retention`, `migrate`, `purge` or `pipeline`.
    pub kind: String,
    /// The tenant.
    pub tenant: String,
    /// What it works on: `{type: "stream" | "table" | "pipeline", id}` or `{type: "tenant"}`.
    #[schema(value_type = Object)]
    pub target: WorkerTarget,
    /// Compact and retention workers: the maintenance run they execute (with its
    /// operations); pipeline workers: the pipeline run.
    pub run_id: Option<uuid::Uuid>,
    /// Compact and retention workers: the operations.
    pub operations: Vec<String>,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub state: String,
    /// Times it was started again (after a failure, a lost heartbeat or a new spec).
    pub restarts: u32,
    /// Consecutive failures; at `workers.max_failures` it stays failed until retried.
    pub failures: u32,
    /// The last heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// The last failure's message; for tenant-scoped callers only where its cause is.
    pub last_error: Option<String>,
    /// When it last failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// What it last reported: `{lag: {partition: records}}` for ingest, the run's metrics
    /// for maintenance, the run's status and row counts for a pipeline.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// The process running it (platform-admins only).
    pub owner: Option<String>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

impl WorkerView {
    /// What a tenant-scoped caller may see: not which process runs the worker, nor the error
    /// chain (hosts, ports, paths), only that it failed and where the cause is.
    pub fn for_tenant(&mut self) {
        self.owner = None;
        if self.last_error.is_some() {
            self.last_error = Some(tenancy::disclosure::worker_error(&self.kind, &self.id));
        }
    }
}

impl From<&WorkerRecord> for WorkerView {
    fn from(w: &WorkerRecord) -> Self {
        Self {
            id: w.spec.id(),
            kind: w.spec.kind.as_str().to_owned(),
            tenant: w.spec.tenant.to_string(),
            target: w.spec.target.clone(),
            run_id: w.spec.run,
            operations: w.spec.operations.iter().map(|o| o.as_str().to_owned()).collect(),
            state: w.state.as_str().to_owned(),
            restarts: w.restarts,
            failures: w.failures,
            last_heartbeat: w.last_heartbeat,
            last_error: w.last_error.clone(),
            failed_at: w.failed_at,
            progress: w.progress.as_deref().and_then(|p| serde_json::from_str(p).ok()),
            owner: w.owner.clone(),
            updated_at: w.updated_at,
        }
    }
}

/// Paging of a tenant's workers.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkerQuery {
    /// Only workers in this state: `pending`, `running`, `succeeded`, `failed`.
    pub state: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Filters and paging of every worker.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminWorkerQuery {
    /// Only this tenant's workers.
    pub tenant: Option<String>,
    /// Only workers in this state: `pending`, `running`, `succeeded`, `failed`.
    pub state: Option<String>,
    /// Only workers of this kind: `ingest`, `compact`, `retention`, `migrate`, `purge`,
    /// `pipeline`.
    pub kind: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn state_filter(raw: Option<&str>) -> Result<Option<WorkerState>, ApiError> {
    raw.map(|s| {
        WorkerState::parse(s)
            .ok_or_else(|| Violation::new("state", "must be pending, running, succeeded or failed").into())
    })
    .transpose()
}

/// One page of workers by id; the kind filter is applied to the page's rows, so a page may
/// hold fewer than `limit` workers while `next_cursor` is still set.
async fn page(
    state: &AppState,
    tenant: Option<&TenantId>,
    filter: Option<WorkerState>,
    kind: Option<WorkerKind>,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<Page<WorkerView>, ApiError> {
    let limit = pagination::limit(limit)?;
    let after = cursor.map(pagination::decode_cursor).transpose()?;
    let rows = state
        .store
        .list_workers(tenant, filter, after.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |w| w.spec.id());
    Ok(Page {
        items: rows
            .iter()
            .filter(|w| kind.is_none_or(|k| w.spec.kind == k))
            .map(WorkerView::from)
            .collect(),
        next_cursor,
    })
}

/// The tenant's workers, by id.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/workers", tag = "workers",
    params(("tenant" = String, Path, description = "Tenant id"), WorkerQuery),
    responses((status = 200, description = "A page of workers", body = Page<WorkerView>)))]
pub async fn list_tenant_workers(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadTenant>,
    ApiQuery(query): ApiQuery<WorkerQuery>,
) -> Result<Json<Page<WorkerView>>, ApiError> {
    let tenant = auth.tenant()?;
    let filter = state_filter(query.state.as_deref())?;
    load(&state, tenant).await?;
    let mut shown = page(
        &state,
        Some(tenant),
        filter,
        None,
        query.limit,
        query.cursor.as_deref(),
    )
    .await?;
    if auth.caller.principal.role != tenancy::role::Role::PlatformAdmin {
        shown.items.iter_mut().for_each(WorkerView::for_tenant);
    }
    Ok(Json(shown))
}

/// Every worker, by id, with filters.
#[utoipa::path(get, path = "/v1/admin/workers", tag = "admin",
    params(AdminWorkerQuery),
    responses((status = 200, description = "A page of workers", body = Page<WorkerView>)))]
pub async fn list_workers(
    State(state): State<AppState>,
    _auth: Authorized<perm::AdminWorkers>,
    ApiQuery(query): ApiQuery<AdminWorkerQuery>,
) -> Result<Json<Page<WorkerView>>, ApiError> {
    let tenant = query
        .tenant
        .as_deref()
        .map(|t| TenantId::parse(t).map_err(|v| Violation::new("tenant", v.message)))
        .transpose()?;
    let filter = state_filter(query.state.as_deref())?;
    let kind = query
        .kind
        .as_deref()
        .map(|k| {
            WorkerKind::parse(k).ok_or_else(|| {
                Violation::new(
                    "kind",
                    "must be ingest, compact, retention, migrate, purge or pipeline",
                )
            })
        })
        .transpose()?;
    Ok(Json(
        page(
            &state,
            tenant.as_ref(),
            filter,
            kind,
            query.limit,
            query.cursor.as_deref(),
        )
        .await?,
    ))
}

/// Gives a worker that settled `failed` a new series of attempts: its failure count is reset
/// and the reconciler starts it at once (if it is still needed). 409 when it is not failed.
#[utoipa::path(post, path = "/v1/admin/workers/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "Worker id")),
    responses(
        (status = 202, description = "Retry accepted", body = WorkerView),
        (status = 409, description = "The worker is not failed", body = crate::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry_worker(
    State(state): State<AppState>,
    auth: Authorized<perm::AdminWorkers>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no worker {id}"));
    if id.len() > 128 {
        return Err(not_found());
    }
    let mut record = state.store.get_worker(&id).await?.ok_or_else(not_found)?;
    if record.state != WorkerState::Failed {
        return Err(ApiError::Conflict(format!(
            "worker {id} is {}; only a failed worker can be retried",
            record.state.as_str()
        )));
    }
    record.failures = 0;
    record.failed_at = None;
    record.updated_at = tenancy::now();
    state.store.put_worker(&record).await?;
    state.workers.wake();
    let audit = event(
        &auth.caller,
        "worker.retry",
        &format!("/v1/admin/workers/{id}"),
        Some(record.spec.tenant.as_str()),
        Outcome::Success,
    );
    state.store.append_audit(&audit).await?;
    Ok(audited((StatusCode::ACCEPTED, Json(WorkerView::from(&record)))))
}
