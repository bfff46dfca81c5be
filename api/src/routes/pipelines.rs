//! Pipelines of a tenant: make one (planned against its source, its target made when
//! missing), list, read, pause or resume, delete, and ask for runs and read them.
//!
//! Access follows the zones: managing a pipeline needs write access to its target zone and
//! read access to its source zone (engineers and tenant-admins); reading one needs read access
//! to both (so analysts and scientists see silver-to-gold pipelines, viewers none).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lake_manager::pipelines::PipelineError;
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::grants::{Privilege, TenantGrants};
use tenancy::pagination;
use tenancy::pipeline::{
    Aggregate, Dedup, Expectation, PipelineChange, PipelineRequest, PipelineState, RunStatus, SelectItem,
    TableRef, Trigger,
};
use tenancy::policy::Action;
use tenancy::role::{Access, Zone};
use tenancy::store::{PipelineRecord, PipelineRunRecord};
use tenancy::tenant::TenantId;
use utoipa::ToSchema;
use uuid::Uuid;

use super::tenants::load;
use super::views::{Page, PageQuery};
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Invalid(violations) => violations.into(),
            PipelineError::Catalog(e) => e.into(),
            PipelineError::Store(e) => e.into(),
            PipelineError::Delta(e) => lake_manager::catalog::CatalogError::from(e).into(),
        }
    }
}

/// A pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineView {
    /// Stable id (UUIDv7); its commits carry it as their `txn` application id.
    pub id: Uuid,
    /// Its name, the path segment.
    pub name: String,
    /// The table it reads.
    pub source: TableRef,
    /// The table it writes.
    pub target: TableRef,
    /// The quarantine table, when an expectation quarantines.
    pub quarantine_table: Option<String>,
    /// Output columns; absent: every source column.
    pub select: Option<Vec<SelectItem>>,
    /// Conditions on the output rows.
    pub expectations: Vec<Expectation>,
    /// Deduplication.
    pub dedup: Option<Dedup>,
    /// Aggregation (gold).
    pub aggregate: Option<Aggregate>,
    /// When it runs.
    pub trigger: Trigger,
    /// `active`, `paused` or `failed`.
    pub state: PipelineState,
    /// Why it failed.
    pub failure: Option<String>,
    /// Who made it.
    pub created_by: String,
    /// When made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<&PipelineRecord> for PipelineView {
    fn from(p: &PipelineRecord) -> Self {
        Self {
            id: p.id,
            name: p.name.to_string(),
            source: p.spec.source.clone(),
            target: p.spec.target.clone(),
            quarantine_table: p
                .spec
                .quarantines()
                .then(|| p.spec.quarantine_table().to_string()),
            select: p.spec.select.clone(),
            expectations: p.spec.expectations.clone(),
            dedup: p.spec.dedup.clone(),
            aggregate: p.spec.aggregate.clone(),
            trigger: p.spec.trigger,
            state: p.state,
            failure: p.failure.clone(),
            created_by: p.created_by.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The source versions a run read.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionRange {
    /// The first version read.
    pub from: Option<i64>,
    /// The last version read.
    pub to: Option<i64>,
}

/// Rows by outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowCounts {
    /// Read from the source.
    #[serde(rename = "in")]
    pub read: u64,
    /// Committed to the target.
    pub written: u64,
    /// Left out by `drop` expectations.
    pub dropped: u64,
    /// Written to the quarantine table.
    pub quarantined: u64,
}

/// A run of a pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineRunView {
    /// Run id (UUIDv7).
    pub id: Uuid,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: RunStatus,
    /// Whether it reads the whole source and replaces the target.
    pub full_refresh: bool,
    /// Who asked: a token's subject, or `trigger`.
    pub requested_by: String,
    /// The source versions read.
    pub source_versions: VersionRange,
    /// Rows by outcome.
    pub rows: RowCounts,
    /// Violations per expectation.
    pub expectations: BTreeMap<String, u64>,
    /// The target version it committed.
    pub target_version: Option<i64>,
    /// Milliseconds from start to end (so far, while running).
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// When its worker took it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&PipelineRunRecord> for PipelineRunView {
    fn from(r: &PipelineRunRecord) -> Self {
        let duration_ms = r
            .started_at
            .map(|start| (r.finished_at.unwrap_or_else(tenancy::now) - start).num_milliseconds());
        Self {
            id: r.id,
            status: r.status,
            full_refresh: r.full_refresh,
            requested_by: r.requested_by.clone(),
            source_versions: VersionRange {
                from: r.source_from,
                to: r.source_to,
            },
            rows: RowCounts {
                read: r.rows_in,
                written: r.rows_written,
                dropped: r.rows_dropped,
                quarantined: r.rows_quarantined,
            },
            expectations: r.expectations.clone(),
            target_version: r.target_version,
            duration_ms,
            error: r.error.clone(),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// A run to ask for.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RunRequest {
    /// Read the whole source and replace the target, instead of only what is new.
    #[serde(default)]
    pub full_refresh: bool,
}

crate::objects_only!(RunRequest);

/// A queued run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunQueued {
    /// The run's id: poll `…/runs/{run_id}`.
    pub run_id: Uuid,
}

fn pipelines_target(tenant: &TenantId) -> String {
    format!("/v1/tenants/{tenant}/pipelines")
}

/// Every pipeline reads or writes silver: a caller who cannot read silver reads no pipeline,
/// and one who can write neither silver nor gold manages none. Checked before a pipeline is
/// looked up, so such a caller gets 403 whether or not it exists.
fn authorize_any(
    auth: &Authorized<perm::TenantData>,
    tenant: &TenantId,
    manage: bool,
) -> Result<(), ApiError> {
    auth.caller
        .authorize(Action::Zone(tenant, Zone::Silver, Access::Read))?;
    if manage {
        let silver = auth
            .caller
            .authorize(Action::Zone(tenant, Zone::Silver, Access::ReadWrite));
        if silver.is_err() {
            auth.caller
                .authorize(Action::Zone(tenant, Zone::Gold, Access::ReadWrite))?;
        }
    }
    Ok(())
}

/// Whether the caller may read the pipeline: both its zones, and both its tables show to it.
fn may_read(
    auth: &Authorized<perm::TenantData>,
    grants: &TenantGrants,
    tenant: &TenantId,
    p: &PipelineRecord,
) -> bool {
    [&p.spec.source, &p.spec.target].into_iter().all(|t| {
        auth.caller
            .authorize(Action::Zone(tenant, t.zone, Access::Read))
            .is_ok()
            && auth.caller.sees_table(grants, t.zone, t.table.as_str())
    })
}

/// Checks that the caller may manage a pipeline between these tables: its role reads the
/// source's zone and writes the target's, and it holds `SELECT` on the source and `MODIFY` on
/// the target (403 naming what is not granted; checked before either table is looked up).
fn authorize_manage(
    auth: &Authorized<perm::TenantData>,
    grants: &TenantGrants,
    tenant: &TenantId,
    source: &TableRef,
    target: &TableRef,
) -> Result<(), ApiError> {
    auth.caller
        .authorize(Action::Zone(tenant, source.zone, Access::Read))?;
    auth.caller
        .authorize(Action::Zone(tenant, target.zone, Access::ReadWrite))?;
    auth.caller
        .require_table(grants, source.zone, source.table.as_str(), Privilege::Select)?;
    auth.caller
        .require_table(grants, target.zone, target.table.as_str(), Privilege::Modify)?;
    Ok(())
}

/// The tenant's pipeline named in the path, when the caller may read it; 404 otherwise, so a
/// pipeline the caller cannot read is not revealed either. `manage`: the caller means to
/// change it (checked in general first, exactly once found).
async fn pipeline_at(
    state: &AppState,
    auth: &Authorized<perm::TenantData>,
    name: &str,
    manage: bool,
) -> Result<PipelineRecord, ApiError> {
    let tenant = auth.tenant()?;
    authorize_any(auth, tenant, manage)?;
    let not_found = || ApiError::NotFound(format!("no pipeline {name}"));
    let record = state
        .store
        .get_pipeline(tenant, name)
        .await?
        .ok_or_else(not_found)?;
    let grants = auth.caller.grants(state, tenant).await?;
    if !may_read(auth, &grants, tenant, &record) {
        return Err(not_found());
    }
    if manage {
        authorize_manage(auth, &grants, tenant, &record.spec.source, &record.spec.target)?;
    }
    Ok(record)
}

/// Makes a pipeline. Its expressions are planned against the source table's schema (422 naming
/// the expression and the planner's message when one does not plan); the target table is made
/// from the planned output when it does not exist, and an existing one must take it.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/pipelines", tag = "pipelines", request_body = PipelineRequest,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "Made", body = PipelineView),
        (status = 409, description = "The name is taken, the tenant has 100 pipelines, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid: a field, an expression that does not plan, a missing source, a target that cannot take the output", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_pipeline(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiJson(body): ApiJson<PipelineRequest>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    authorize_any(&auth, &tenant_id, true)?;
    let spec = body.validate()?;
    let grants = auth.caller.grants(&state, &tenant_id).await?;
    authorize_manage(&auth, &grants, &tenant_id, &spec.source, &spec.target)?;
    let tenant = load(&state, &tenant_id).await?;
    let audit = event(
        &auth.caller,
        "pipeline.create",
        &format!("{}/{}", pipelines_target(&tenant_id), spec.name),
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    let record = state
        .pipelines
        .create(&tenant, spec, &auth.caller.principal, &audit)
        .await?;
    Ok(audited((StatusCode::CREATED, Json(PipelineView::from(&record)))))
}

/// The tenant's pipelines the caller may read, by name.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/pipelines", tag = "pipelines",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "A page of pipelines", body = Page<PipelineView>)))]
pub async fn list_pipelines(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<PipelineView>>, ApiError> {
    let (limit, mut after) = query.bounds()?;
    let tenant = auth.tenant()?;
    load(&state, tenant).await?;
    let grants = auth.caller.grants(&state, tenant).await?;
    // Pipelines the caller cannot read are skipped, so pages are filled from further rows.
    let mut visible = Vec::new();
    loop {
        let rows = state
            .store
            .list_pipelines(tenant, after.as_deref(), limit + 1)
            .await?;
        let exhausted = rows.len() <= limit as usize;
        after = rows.last().map(|p| p.name.to_string());
        visible.extend(rows.into_iter().filter(|p| may_read(&auth, &grants, tenant, p)));
        if exhausted || visible.len() > limit as usize {
            break;
        }
    }
    let (rows, next_cursor) = pagination::page(visible, limit, |p| p.name.to_string());
    Ok(Json(Page {
        items: rows.iter().map(PipelineView::from).collect(),
        next_cursor,
    }))
}

/// One pipeline.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/pipelines/{pipeline}", tag = "pipelines",
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name")),
    responses((status = 200, description = "The pipeline", body = PipelineView)))]
pub async fn get_pipeline(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name)): Path<(String, String)>,
) -> Result<Json<PipelineView>, ApiError> {
    let record = pipeline_at(&state, &auth, &name, false).await?;
    Ok(Json(PipelineView::from(&record)))
}

/// Pauses or resumes a pipeline (a failed one too: resuming retries it), or changes its
/// trigger.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/pipelines/{pipeline}", tag = "pipelines", request_body = PipelineChange,
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name")),
    responses((status = 200, description = "The changed pipeline", body = PipelineView),
        (status = 409, description = "It changed meanwhile; read it and try again", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_pipeline(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<PipelineChange>,
) -> Result<Json<PipelineView>, ApiError> {
    let seen = pipeline_at(&state, &auth, &name, true).await?;
    let tenant = auth.tenant()?;
    let (new_state, trigger) = body.apply(seen.state, seen.spec.trigger)?;
    let mut changed = seen.clone();
    changed.state = new_state;
    changed.spec.trigger = trigger;
    if new_state == PipelineState::Active {
        changed.failure = None;
    }
    changed.updated_at = tenancy::now().max(seen.updated_at + chrono::Duration::microseconds(1));
    let audit = event(
        &auth.caller,
        "pipeline.update",
        &format!("{}/{}", pipelines_target(tenant), name),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    if !state.store.update_pipeline(&changed, &seen, Some(&audit)).await? {
        return Err(ApiError::Conflict(format!(
            "pipeline {name} changed while this request was answered; read it and try again"
        )));
    }
    state.workers.wake();
    Ok(Json(PipelineView::from(&changed)))
}

/// Deletes a pipeline and its runs. Its target and quarantine tables stay, with what it wrote.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/pipelines/{pipeline}", tag = "pipelines",
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_pipeline(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = pipeline_at(&state, &auth, &name, true).await?;
    let tenant = auth.tenant()?;
    let audit = event(
        &auth.caller,
        "pipeline.delete",
        &format!("{}/{}", pipelines_target(tenant), name),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    if !state.store.delete_pipeline(record.id, &audit).await? {
        return Err(ApiError::NotFound(format!("no pipeline {name}")));
    }
    state.workers.wake();
    Ok(audited(StatusCode::NO_CONTENT.into_response()))
}

/// Asks for a run: 202 with its id. While a run waits, asking again answers that run.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/pipelines/{pipeline}/runs", tag = "pipelines", request_body = RunRequest,
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name")),
    responses((status = 202, description = "Queued: poll the run", body = RunQueued)))]
pub async fn create_run(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<Response, ApiError> {
    let record = pipeline_at(&state, &auth, &name, true).await?;
    let tenant = auth.tenant()?;
    let audit = event(
        &auth.caller,
        "pipeline.run",
        &format!("{}/{}/runs", pipelines_target(tenant), name),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    let run_id = state
        .pipelines
        .request_run(&record, body.full_refresh, &auth.caller.principal.subject, &audit)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no pipeline {name}")))?;
    // The run is a `pipeline` worker: the reconciler starts it now rather than at its next
    // loop.
    state.workers.wake();
    Ok(audited((StatusCode::ACCEPTED, Json(RunQueued { run_id }))))
}

/// A pipeline's runs, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/pipelines/{pipeline}/runs", tag = "pipelines",
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name"), PageQuery),
    responses((status = 200, description = "A page of runs", body = Page<PipelineRunView>)))]
pub async fn list_runs(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<PipelineRunView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    let record = pipeline_at(&state, &auth, &name, false).await?;
    let rows = state
        .store
        .list_pipeline_runs(record.id, before, limit + 1)
        .await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.id.to_string());
    Ok(Json(Page {
        items: rows.iter().map(PipelineRunView::from).collect(),
        next_cursor,
    }))
}

/// One run: the source versions read, rows by outcome, counts per expectation, the target
/// version and the duration.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/pipelines/{pipeline}/runs/{pipeline_run_id}", tag = "pipelines",
    params(("tenant" = String, Path, description = "Tenant id"), ("pipeline" = String, Path, description = "Pipeline name"), ("pipeline_run_id" = Uuid, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = PipelineRunView)))]
pub async fn get_run(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path((_tenant, name, run)): Path<(String, String, String)>,
) -> Result<Json<PipelineRunView>, ApiError> {
    let record = pipeline_at(&state, &auth, &name, false).await?;
    let not_found = || ApiError::NotFound(format!("no run {run} of pipeline {name}"));
    let id = Uuid::parse_str(&run).map_err(|_| not_found())?;
    let run = state
        .store
        .get_pipeline_run(record.id, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(PipelineRunView::from(&run)))
}
