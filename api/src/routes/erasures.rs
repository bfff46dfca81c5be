//! Data subject erasures of a tenant: ask for one (or dry-run it), list them, read one. The
//! subjects are answered back only as counts; after the request they are kept only as salted
//! hashes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::erasure::{ErasureStatus, ErasureTable};
use tenancy::pagination;
use tenancy::role::Zone;
use tenancy::store::ErasureRecord;
use tenancy::tenant::{TenantId, TenantStatus};
use utoipa::ToSchema;
use uuid::Uuid;

use super::tenants::load;
use super::views::{Page, PageQuery};
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// An erasure to ask for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateErasure {
    /// 1 to 1,000 subjects, each an object of identifiers by subject column:
    /// `{"user_id": 42, "email": "ann@example.com"}`. A row is the subject's when any of its
    /// subject columns holds the identifier given for that column. Strings match string
    /// columns; integers match integer columns, and string columns by their decimal text.
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<Object>)]
    pub subjects: Vec<serde_json::Value>,
    /// Why (kept for the record of processing), up to 1,000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: Option<String>,
    /// Count the subjects' rows per table and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

crate::objects_only!(CreateErasure);

/// One table's part of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureTableView {
    /// Zone.
    pub zone: Zone,
    /// Table name.
    pub name: String,
    /// A stream's dead-letter table, matched by payload.
    pub dead_letter: bool,
    /// The version of the erasure's last delete (none: nothing matched).
    pub delete_version: Option<i64>,
    /// Rows deleted (absent until the table's delete is done).
    pub rows_deleted: Option<u64>,
    /// The version vacuum ran at.
    pub vacuum_version: Option<i64>,
    /// The oldest log version kept after the log was cleaned.
    pub oldest_log_version: Option<i64>,
}

impl From<&ErasureTable> for ErasureTableView {
    fn from(t: &ErasureTable) -> Self {
        Self {
            zone: t.zone,
            name: t.name.clone(),
            dead_letter: t.dead_letter,
            delete_version: t.delete_version,
            rows_deleted: t.rows_deleted,
            vacuum_version: t.vacuum_version,
            oldest_log_version: t.oldest_log_version,
        }
    }
}

/// An erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    /// Erasure id.
    pub id: Uuid,
    /// `planned`, `deleted`, `awaiting_vacuum`, `vacuumed`, `log_cleaned`, `completed` or
    /// `failed`.
    #[schema(value_type = String)]
    pub status: ErasureStatus,
    /// Why it was asked for.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// How many subjects (the subjects themselves are kept only as salted hashes).
    pub subjects: usize,
    /// The covered tables and their progress.
    pub tables: Vec<ErasureTableView>,
    /// Tables without subject columns when it was asked (`zone/name`): not reached.
    pub not_covered: Vec<String>,
    /// Old locations of a placement migration in its grace period, removed ahead of time
    /// because they still held the subjects' rows.
    pub old_locations_removed: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When the deletes start: events accepted by ingest buffers before the request are
    /// committed (or refused) by then, so none of the subjects' rows lands after the delete.
    pub deletes_after: DateTime<Utc>,
    /// When it must be complete.
    pub deadline: DateTime<Utc>,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// Last progress.
    pub updated_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
}

impl ErasureView {
    fn new(state: &AppState, e: &ErasureRecord) -> Self {
        Self {
            id: e.id,
            status: e.status,
            reason: e.reason.clone(),
            requested_by: e.requested_by.clone(),
            subjects: e.subject_hashes.len(),
            tables: e.tables.iter().map(ErasureTableView::from).collect(),
            not_covered: e.not_covered.clone(),
            old_locations_removed: e.old_locations.clone(),
            error: e.error.clone(),
            deletes_after: state.erasures.deletes_after(e.created_at),
            deadline: e.deadline,
            created_at: e.created_at,
            updated_at: e.updated_at,
            completed_at: e.completed_at,
        }
    }
}

/// One table in a dry run.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchingView {
    /// Zone.
    pub zone: Zone,
    /// Table name.
    pub name: String,
    /// A stream's dead-letter table, matched by payload.
    pub dead_letter: bool,
    /// Rows of the subjects in the table's latest version.
    pub matching_rows: u64,
}

/// What an erasure would delete now.
#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunView {
    /// Always true.
    pub dry_run: bool,
    /// How many subjects.
    pub subjects: usize,
    /// Each covered table's matching rows.
    pub tables: Vec<MatchingView>,
    /// The sum over the tables.
    pub total_rows: u64,
    /// Tables without subject columns (`zone/name`): an erasure would not reach them.
    pub not_covered: Vec<String>,
}

/// The tenant's erasure named by the raw path segment; 404 for a malformed or unknown id alike.
async fn load_erasure(state: &AppState, tenant: &TenantId, raw: &str) -> Result<ErasureRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("no erasure {raw}"));
    let id = Uuid::parse_str(raw).map_err(|_| not_found())?;
    state.store.get_erasure(tenant, id).await?.ok_or_else(not_found)
}

fn erasures_target(tenant: &TenantId) -> String {
    format!("/v1/tenants/{tenant}/erasures")
}

/// Asks for the erasure of data subjects from every covered table of the tenant (202), or
/// with `dry_run` counts their rows and changes nothing (200). Tenant-admins only.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/erasures", tag = "erasures", request_body = CreateErasure,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 202, description = "Accepted: poll the erasure", body = ErasureView),
        (status = 200, description = "The dry run's counts", body = DryRunView),
        (status = 409, description = "The tenant is not ready, a covered table has deletion vectors or a change data feed, or the tenant's erasure deadline is shorter than the configured drain and window allow", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_erasure(
    State(state): State<AppState>,
    auth: Authorized<perm::EraseSubjects>,
    ApiJson(body): ApiJson<CreateErasure>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    let tenant = load(&state, &tenant_id).await?;
    let reach = state.erasures.reach(&tenant_id).await?;
    let valid = tenancy::erasure::validate(&body.subjects, body.reason.as_deref(), &reach.subject_columns())?;
    if tenant.status != TenantStatus::Ready {
        return Err(ApiError::from(lake_manager::catalog::CatalogError::NotReady {
            tenant: tenant_id.to_string(),
            status: tenant.status.as_str(),
        }));
    }
    let refused = state.erasures.refusals(&tenant, &reach).await?;
    if !refused.is_empty() {
        return Err(ApiError::Conflict(format!(
            "these covered tables cannot be erased correctly yet; uncover them (PATCH \
             subject_columns: []) or turn the feature off, then ask again: {}",
            refused.join("; ")
        )));
    }
    // A window or drain raised since the tenant chose its deadline could outlast it: refused
    // (the dry run too, so it does not promise what the request then refuses), not missed.
    if let Err(v) = tenancy::erasure::check_deadline_days(
        tenant.erasure_deadline_days,
        state.config.tables.erasure_window_secs,
        state.config.erasure_drain().as_secs(),
    ) {
        return Err(ApiError::Conflict(format!(
            "the tenant's erasure deadline of {} days cannot be met: {} {}; PATCH the tenant's \
             erasure_deadline_days",
            tenant.erasure_deadline_days, v.field, v.message
        )));
    }
    if body.dry_run {
        let counted = state.erasures.dry_run(&tenant, &reach, &valid.subjects).await?;
        let view = DryRunView {
            dry_run: true,
            subjects: valid.subjects.len(),
            total_rows: counted.iter().map(|m| m.rows).sum(),
            tables: counted
                .iter()
                .map(|m| MatchingView {
                    zone: m.table.zone,
                    name: m.table.name.clone(),
                    dead_letter: m.table.dead_letter,
                    matching_rows: m.rows,
                })
                .collect(),
            not_covered: reach.not_covered,
        };
        let audit = event(
            &auth.caller,
            "erasure.dry_run",
            &erasures_target(&tenant_id),
            Some(tenant_id.as_str()),
            Outcome::Success,
        );
        state.store.append_audit(&audit).await?;
        return Ok(audited(Json(view)));
    }
    let audit = event(
        &auth.caller,
        "erasure.create",
        &erasures_target(&tenant_id),
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    let deadline = tenancy::now() + chrono::Duration::days(i64::from(tenant.erasure_deadline_days));
    let record = state
        .erasures
        .request(
            &tenant,
            &reach,
            valid,
            &auth.caller.principal.subject,
            deadline,
            &audit,
        )
        .await?;
    state.erasures.spawn_advance(tenant_id, record.id);
    Ok(audited((
        StatusCode::ACCEPTED,
        Json(ErasureView::new(&state, &record)),
    )))
}

/// The tenant's erasures, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/erasures", tag = "erasures",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "A page of erasures", body = Page<ErasureView>)))]
pub async fn list_erasures(
    State(state): State<AppState>,
    auth: Authorized<perm::EraseSubjects>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<ErasureView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    let tenant = auth.tenant()?;
    load(&state, tenant).await?;
    let rows = state.store.list_erasures(tenant, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |e| e.id.to_string());
    Ok(Json(Page {
        items: rows.iter().map(|e| ErasureView::new(&state, e)).collect(),
        next_cursor,
    }))
}

/// One erasure and each table's progress.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/erasures/{erasure_id}", tag = "erasures",
    params(("tenant" = String, Path, description = "Tenant id"), ("erasure_id" = Uuid, Path, description = "Erasure id")),
    responses((status = 200, description = "The erasure", body = ErasureView)))]
pub async fn get_erasure(
    State(state): State<AppState>,
    auth: Authorized<perm::EraseSubjects>,
    Path((_tenant, erasure)): Path<(String, String)>,
) -> Result<Json<ErasureView>, ApiError> {
    let tenant = auth.tenant()?;
    let record = load_erasure(&state, tenant, &erasure).await?;
    Ok(Json(ErasureView::new(&state, &record)))
}

/// A completed erasure's signed receipt.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptView {
    /// The receipt as a compact JWS (EdDSA over Ed25519, header `typ`
    /// `lakeplane-erasure-receipt+jwt`): verify it with the key of `kid` in
    /// `/.well-known/jwks.json`.
    pub receipt: String,
    /// The signing key's id.
    pub kid: String,
    /// What the receipt states (its payload, decoded for reading; trust the signed one).
    #[schema(value_type = Object)]
    pub claims: tenancy::erasure_receipt::Receipt,
}

/// The signed receipt of a completed erasure: its tables, versions and row counts, with the
/// subjects only as salted hashes. 409 until the erasure completes.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/erasures/{erasure_id}/receipt", tag = "erasures",
    params(("tenant" = String, Path, description = "Tenant id"), ("erasure_id" = Uuid, Path, description = "Erasure id")),
    responses((status = 200, description = "The signed receipt", body = ReceiptView),
        (status = 409, description = "The erasure has not completed", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn get_receipt(
    State(state): State<AppState>,
    auth: Authorized<perm::EraseSubjects>,
    Path((_tenant, erasure)): Path<(String, String)>,
) -> Result<Json<ReceiptView>, ApiError> {
    let tenant = auth.tenant()?;
    let record = load_erasure(&state, tenant, &erasure).await?;
    let claims = tenancy::erasure_receipt::receipt(&record, &state.config.auth.issuer, tenancy::now())
        .map_err(|status| {
            ApiError::Conflict(match status {
                ErasureStatus::Failed => {
                    format!(
                        "erasure {} failed; a receipt states only a completed erasure",
                        record.id
                    )
                }
                _ => format!(
                    "erasure {} is {}; its receipt is issued once it completes",
                    record.id,
                    status.as_str()
                ),
            })
        })?;
    let receipt = state
        .signer
        .sign_document(tenancy::erasure_receipt::RECEIPT_TYPE, &claims)
        .map_err(|e| ApiError::Internal(format!("signing the receipt: {e}")))?;
    Ok(Json(ReceiptView {
        receipt,
        kid: state.signer.kid().to_owned(),
        claims,
    }))
}
