//! Delta tables in a tenant's zones: create, list, describe, evolve, history, delete, and
//! one-off maintenance runs. The zone's access rules govern every route.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use lake_manager::delta::tables::{Commit, Snapshot};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::grants::Privilege;
use tenancy::maintenance::{Operation, RunMetrics, RunOptions, RunStatus, parse_operations};
use tenancy::pagination;
use tenancy::policy::Action;
use tenancy::role::{Access, Role, Zone};
use tenancy::store::{MaintenanceRun, TableRecord};
use tenancy::table::{ColumnSpec, RawColumn, TableChange, TableRequest};
use tenancy::tenant::{Tenant, TenantId};
use tenancy::validation::Violation;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::tenants::load;
use super::views::Page;
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// A column to create or add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ColumnBody {
    /// `[a-z][a-z0-9_]{0,62}`.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    pub name: String,
    /// `string`, `long`, `integer`, `short`, `byte`, `double`, `float`, `boolean`, `binary`,
    /// `date`, `timestamp` or `decimal(p,s)`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// Default true. Added columns must be nullable.
    pub nullable: Option<bool>,
}

/// A table to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateTable {
    /// `bronze`, `silver` or `gold`.
    #[schema(value_type = Zone)]
    pub zone: String,
    /// `[a-z][a-z0-9_]{0,62}`, unique in the zone.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    pub name: String,
    /// 1 to 1,000 columns.
    #[schema(min_items = 1, max_items = 1000)]
    pub columns: Vec<ColumnBody>,
    /// Partition columns.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// A `timestamp` or `date` column; retention deletes rows older than the zone's retention.
    pub event_time_column: Option<String>,
    /// Columns to z-order by (not partition columns).
    #[serde(default)]
    pub z_order_by: Vec<String>,
    /// Up to 1,000 characters.
    pub description: Option<String>,
    /// Compaction target, 1 MiB to 1 GiB (default 128 MiB).
    #[serde(default, deserialize_with = "crate::extract::integral::opt_u64")]
    pub target_file_size_bytes: Option<u64>,
    /// Up to 8 string or integer columns that identify a data subject (`user_id`, `email`):
    /// what erasure requests match. None: the table is not covered by erasures.
    #[serde(default)]
    #[schema(max_items = 8)]
    pub subject_columns: Vec<String>,
}

/// A change to a table.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PatchTable {
    /// Nullable columns to add (one Delta metadata commit).
    #[serde(default)]
    pub add_columns: Vec<ColumnBody>,
    /// New z-order columns.
    pub z_order_by: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// New compaction target.
    #[serde(default, deserialize_with = "crate::extract::integral::opt_u64")]
    pub target_file_size_bytes: Option<u64>,
    /// New subject columns, replacing the old ones; `[]` leaves the table not covered by
    /// erasures.
    #[schema(max_items = 8)]
    pub subject_columns: Option<Vec<String>>,
    /// Refused for now: dropping needs Delta column mapping.
    #[schema(value_type = Option<Vec<String>>)]
    pub drop_columns: Option<Vec<String>>,
    /// Refused for now: type changes are not supported.
    #[schema(value_type = Option<Object>)]
    pub alter_columns: Option<serde_json::Value>,
}

/// Maintenance to run now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct MaintenanceBody {
    /// Any of `compact`, `zorder`, `checkpoint`, `vacuum`, `retention`; they run in that
    /// canonical order: retention, compact, zorder, vacuum, checkpoint.
    pub operations: Vec<String>,
    /// History vacuum keeps, hours (default and minimum 168).
    #[serde(default, deserialize_with = "crate::extract::integral::opt_u64")]
    pub vacuum_retention_hours: Option<u64>,
    /// Platform-admins only: allow vacuum below 168 hours.
    #[serde(default)]
    pub allow_short_vacuum_retention: bool,
}

crate::objects_only!(ColumnBody, CreateTable, PatchTable, MaintenanceBody);

fn raw(columns: Vec<ColumnBody>) -> Vec<RawColumn> {
    columns
        .into_iter()
        .map(|c| RawColumn {
            name: c.name,
            column_type: c.column_type,
            nullable: c.nullable,
        })
        .collect()
}

/// A column as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnView {
    /// Column name.
    pub name: String,
    /// Type, Delta's name for it: one a table can be created with (`long`,
    /// `decimal(10,2)`, ...), or a type another writer gave the table (`timestamp_ntz`,
    /// `array<string>`, `map<string,long>`, `struct<x:double,y:double>`).
    #[serde(rename = "type")]
    #[schema(example = "decimal(10,2)")]
    pub column_type: String,
    /// Whether values may be null.
    pub nullable: bool,
}

impl From<&ColumnSpec> for ColumnView {
    fn from(c: &ColumnSpec) -> Self {
        Self {
            name: c.name.clone(),
            column_type: c.column_type.to_string(),
            nullable: c.nullable,
        }
    }
}

impl From<&tenancy::datatype::Field> for ColumnView {
    fn from(f: &tenancy::datatype::Field) -> Self {
        Self {
            name: f.name.clone(),
            column_type: f.data_type.delta_text(),
            nullable: f.nullable,
        }
    }
}

/// A table as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableView {
    /// Zone.
    pub zone: Zone,
    /// Name.
    pub name: String,
    /// Where the Delta table is, under the tenant's current placement.
    pub location: String,
    /// Current Delta version (describe and create only).
    pub version: Option<i64>,
    /// Columns: as defined (lists) or as the Delta schema has them now (describe and create).
    pub columns: Vec<ColumnView>,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Event-time column, if any.
    pub event_time_column: Option<String>,
    /// Z-order columns.
    pub z_order_by: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Compaction target, bytes.
    pub target_file_size_bytes: u64,
    /// Columns that identify a data subject; empty: not covered by erasures.
    pub subject_columns: Vec<String>,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// When the definition last changed.
    pub updated_at: DateTime<Utc>,
}

/// A table with its Delta statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableDetail {
    /// The definition.
    #[serde(flatten)]
    pub table: TableView,
    /// Live data files.
    pub num_files: u64,
    /// Their size.
    pub size_bytes: u64,
    /// Files below the small-file threshold.
    pub small_files: u64,
    /// That threshold, bytes.
    pub small_file_threshold_bytes: u64,
    /// Rows, from file statistics.
    pub num_rows: Option<u64>,
    /// Live files by size: powers of four from 64 KiB to 1 GiB, then larger.
    pub file_sizes: Vec<lake_manager::delta::tables::SizeBucket>,
    /// The most recent finished maintenance run.
    pub last_maintenance: Option<RunView>,
}

/// A maintenance run.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// Run id.
    pub run_id: Uuid,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// Operations, in execution order.
    #[schema(value_type = Vec<String>)]
    pub operations: Vec<Operation>,
    /// What it did.
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<RunMetrics>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// When requested.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time, milliseconds.
    pub duration_ms: Option<i64>,
}

impl RunView {
    /// The run as `role` may see it: a platform-admin reads the recorded cause; tenant-scoped
    /// callers the failure's class only (the cause names the plane's storage and hosts).
    fn shown_to(r: MaintenanceRun, role: Role) -> Self {
        let platform = role == Role::PlatformAdmin;
        Self {
            run_id: r.id,
            status: r.status,
            duration_ms: r.finished_at.map(|f| (f - r.created_at).num_milliseconds()),
            operations: r.operations,
            metrics: r.metrics,
            error: match r.error {
                Some(stored) if !platform => Some(tenancy::disclosure::run_error(&stored)),
                other => other,
            },
            requested_by: r.requested_by,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// The run id to poll.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunAccepted {
    /// Poll `.../maintenance/{run_id}`.
    pub run_id: Uuid,
    /// Operations, in execution order.
    #[schema(value_type = Vec<String>)]
    pub operations: Vec<Operation>,
}

fn view(
    state: &AppState,
    tenant: &Tenant,
    t: &TableRecord,
    version: Option<i64>,
    columns: Option<&[tenancy::datatype::Field]>,
) -> TableView {
    TableView {
        zone: t.spec.zone,
        name: t.spec.name.to_string(),
        location: state
            .catalog
            .table_root(tenant, t.spec.zone, t.spec.name.as_str()),
        version,
        columns: match columns {
            Some(fields) => fields.iter().map(ColumnView::from).collect(),
            None => t.spec.columns.iter().map(ColumnView::from).collect(),
        },
        partition_by: t.spec.partition_by.clone(),
        event_time_column: t.spec.event_time_column.clone(),
        z_order_by: t.spec.z_order_by.clone(),
        description: t.spec.description.clone(),
        target_file_size_bytes: t.spec.target_file_size_bytes,
        subject_columns: t.spec.subject_columns.clone(),
        created_at: t.created_at,
        updated_at: t.updated_at,
    }
}

fn target(tenant: &TenantId, zone: Zone, name: &str) -> String {
    format!("/v1/tenants/{tenant}/tables/{}/{name}", zone.as_str())
}

/// Resolves `{zone}/{name}` of the path after checking the caller's zone access; unknown
/// zones and tables are 404.
async fn table_at(
    state: &AppState,
    auth: &Authorized<perm::TenantData>,
    zone: &str,
    name: &str,
    access: Access,
) -> Result<(Tenant, TableRecord), ApiError> {
    let tenant_id = auth.tenant()?;
    let not_found = || ApiError::NotFound(format!("no table {zone}/{name}"));
    let zone = Zone::parse(zone).ok_or_else(not_found)?;
    auth.caller.authorize(Action::Zone(tenant_id, zone, access))?;
    // Grants before the lookup: a table the caller may not see answers as a missing one.
    let grants = auth.caller.grants(state, tenant_id).await?;
    // Reading needs the table to show (SELECT or MODIFY); writing needs MODIFY on it.
    if access == Access::ReadWrite {
        auth.caller.use_table(&grants, zone, name, Privilege::Modify)?;
    } else if !auth.caller.sees_table(&grants, zone, name) {
        return Err(not_found());
    }
    let tenant = load(state, tenant_id).await?;
    let record = state
        .store
        .get_table(tenant_id, zone, name)
        .await?
        .filter(|t| t.status == tenancy::store::TableStatus::Active)
        .ok_or_else(not_found)?;
    Ok((tenant, record))
}

/// Creates a Delta table in a zone the caller may write.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tables", tag = "tables", request_body = CreateTable,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "Created", body = TableView),
        (status = 409, description = "The name is taken (or still being purged), the table quota is reached, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_table(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiJson(body): ApiJson<CreateTable>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    let request = TableRequest {
        zone: body.zone,
        name: body.name,
        columns: raw(body.columns),
        partition_by: body.partition_by,
        event_time_column: body.event_time_column,
        z_order_by: body.z_order_by,
        description: body.description,
        target_file_size_bytes: body.target_file_size_bytes,
        subject_columns: body.subject_columns,
    };
    // A valid zone is checked for access before anything else is revealed about the request.
    if let Some(zone) = Zone::parse(&request.zone) {
        auth.caller
            .authorize(Action::Zone(&tenant_id, zone, Access::ReadWrite))?;
        let grants = auth.caller.grants(&state, &tenant_id).await?;
        auth.caller.use_zone(&grants, zone, Privilege::Modify)?;
    }
    let spec = request.validate()?;
    let tenant = load(&state, &tenant_id).await?;
    let path = target(&tenant_id, spec.zone, spec.name.as_str());
    let audit = event(
        &auth.caller,
        "table.create",
        &path,
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    let (record, version) = state.catalog.create(&tenant, spec, &audit).await?;
    let body = view(&state, &tenant, &record, Some(version), None);
    Ok(audited((StatusCode::CREATED, Json(body))))
}

/// Filters and pages the table list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TableQuery {
    /// Only this zone.
    pub zone: Option<Zone>,
    /// `false`: only tables without subject columns, which erasures do not reach; `true`: only
    /// those with.
    pub covered: Option<bool>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The tenant's tables in the zones the caller may read, by zone then name.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tables", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), TableQuery),
    responses((status = 200, description = "A page of tables", body = Page<TableView>)))]
pub async fn list_tables(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiQuery(query): ApiQuery<TableQuery>,
) -> Result<Json<Page<TableView>>, ApiError> {
    let tenant_id = auth.tenant()?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_table_cursor(query.cursor.as_deref())?;
    if let Some(zone) = query.zone {
        auth.caller
            .authorize(Action::Zone(tenant_id, zone, Access::Read))?;
    }
    let tenant = load(&state, tenant_id).await?;
    let grants = auth.caller.grants(&state, tenant_id).await?;
    let readable: Vec<Zone> = Zone::ALL
        .into_iter()
        .filter(|z| auth.caller.principal.role.zone_access(*z) >= Access::Read)
        .collect();
    let mut rows = Vec::new();
    let mut cursor = after.clone();
    // Zones the caller cannot read are filtered out; keep reading until the page is full.
    loop {
        let batch = state
            .store
            .list_tables(
                tenant_id,
                query.zone,
                cursor.as_ref().map(|(z, n)| (z.as_str(), n.as_str())),
                limit + 1,
            )
            .await?;
        let exhausted = batch.len() <= limit as usize;
        cursor = batch
            .last()
            .map(|t| (t.spec.zone.as_str().to_owned(), t.spec.name.to_string()));
        for t in batch {
            if !readable.contains(&t.spec.zone)
                || !auth.caller.sees_table(&grants, t.spec.zone, t.spec.name.as_str())
            {
                continue;
            }
            if let Some(wanted) = query.covered
                && covered(&state, tenant_id, &t).await? != wanted
            {
                continue;
            }
            rows.push(t);
        }
        if exhausted || rows.len() > limit as usize {
            break;
        }
    }
    let (rows, next_cursor) = pagination::page(rows, limit, |t| {
        format!("{}/{}", t.spec.zone.as_str(), t.spec.name)
    });
    Ok(Json(Page {
        items: rows
            .iter()
            .map(|t| view(&state, &tenant, t, None, None))
            .collect(),
        next_cursor,
    }))
}

/// Whether erasures reach the table (`lake_manager::erasures::covered_columns`).
async fn covered(state: &AppState, tenant: &TenantId, t: &TableRecord) -> Result<bool, ApiError> {
    let source = match t.spec.name.as_str().strip_suffix(tenancy::stream::DLQ_SUFFIX) {
        Some(source) => state
            .store
            .get_table(tenant, t.spec.zone, source)
            .await?
            .filter(|s| s.status == tenancy::store::TableStatus::Active),
        None => None,
    };
    Ok(!lake_manager::erasures::covered_columns(t, source.as_ref()).is_empty())
}

/// A table's definition and Delta statistics (from the snapshot), and its last maintenance.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tables/{zone}/{name}", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table")),
    responses((status = 200, description = "The table", body = TableDetail)))]
pub async fn get_table(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
) -> Result<Json<TableDetail>, ApiError> {
    let (_, zone, name) = path;
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::Read).await?;
    let Snapshot {
        version,
        columns,
        num_files,
        size_bytes,
        small_files,
        small_file_threshold_bytes,
        num_rows,
        file_sizes,
        ..
    } = state.catalog.describe(&tenant, &record).await?;
    let last = state.store.last_finished_run(record.id).await?;
    Ok(Json(TableDetail {
        table: view(&state, &tenant, &record, Some(version), Some(&columns)),
        num_files,
        size_bytes,
        small_files,
        small_file_threshold_bytes,
        num_rows,
        file_sizes,
        last_maintenance: last.map(|r| RunView::shown_to(r, auth.caller.principal.role)),
    }))
}

/// Adds nullable columns, or changes z-order columns, description or compaction target.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/tables/{zone}/{name}", tag = "tables", request_body = PatchTable,
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table")),
    responses((status = 200, description = "Changed", body = TableView),
        (status = 409, description = "The table changed meanwhile, another commit won, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn patch_table(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
    ApiJson(body): ApiJson<PatchTable>,
) -> Result<Response, ApiError> {
    let (_, zone, name) = path;
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::ReadWrite).await?;
    if body.subject_columns.is_some() {
        // Which tables erasures reach is the tenant-admins' decision, and it holds still while
        // an erasure is deleting.
        auth.caller.authorize(Action::EraseSubjects(&tenant.id))?;
        let deleting = state
            .store
            .unfinished_erasures()
            .await?
            .into_iter()
            .any(|e| e.tenant == tenant.id && e.status == tenancy::erasure::ErasureStatus::Planned);
        if deleting {
            return Err(ApiError::Conflict(
                "an erasure of this tenant is deleting; change subject_columns once it has".to_owned(),
            ));
        }
    }
    let change = TableChange {
        add_columns: raw(body.add_columns),
        z_order_by: body.z_order_by,
        description: body.description,
        target_file_size_bytes: body.target_file_size_bytes,
        subject_columns: body.subject_columns,
        drop_columns: body.drop_columns,
        alter_columns: body.alter_columns,
    };
    let (spec, added) = change.apply(&record.spec)?;
    let path = target(&tenant.id, record.spec.zone, record.spec.name.as_str());
    let audit = event(
        &auth.caller,
        "table.update",
        &path,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    let (updated, version) = state
        .catalog
        .change(&tenant, &record, spec, &added, &audit)
        .await?;
    Ok(audited(Json(view(&state, &tenant, &updated, version, None))))
}

/// Pages Delta history by version.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The table's Delta commits, newest first, with their operation and metrics.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tables/{zone}/{name}/history", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table"), HistoryQuery),
    responses((status = 200, description = "A page of commits", body = Page<Commit>)))]
pub async fn table_history(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Page<Commit>>, ApiError> {
    let (_, zone, name) = path;
    let limit = pagination::limit(query.limit)?;
    let before = match query.cursor.as_deref() {
        Some(cursor) => Some(
            pagination::decode_cursor(cursor)?
                .parse::<i64>()
                .map_err(|_| Violation::new("cursor", "not a cursor this API issued"))?,
        ),
        None => None,
    };
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::Read).await?;
    let commits = state
        .catalog
        .history(&tenant, &record, limit as usize + 1, before)
        .await?;
    let (commits, next_cursor) = pagination::page(commits, limit, |c| c.version.to_string());
    Ok(Json(Page {
        items: commits,
        next_cursor,
    }))
}

/// Deletes a table: it leaves the API at once and its files are purged in the background.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tables/{zone}/{name}", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table")),
    responses((status = 202, description = "Deleted; purge accepted"),
        (status = 409, description = "A stream still writes the table, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete_table(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (_, zone, name) = path;
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::ReadWrite).await?;
    refuse_if_streamed(&state, &tenant, &record).await?;
    let path = target(&tenant.id, record.spec.zone, record.spec.name.as_str());
    let audit = event(
        &auth.caller,
        "table.delete",
        &path,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    if !state.catalog.delete(&record, &audit).await? {
        return Err(ApiError::NotFound(format!("no table {zone}/{name}")));
    }
    // The purge is a worker: the reconciler starts it now.
    state.workers.wake();
    Ok(audited(StatusCode::ACCEPTED))
}

/// A table that streams write, or their dead-letter table, cannot be deleted while they exist:
/// the streams would fail on every event.
async fn refuse_if_streamed(state: &AppState, tenant: &Tenant, record: &TableRecord) -> Result<(), ApiError> {
    let base = record
        .spec
        .name
        .as_str()
        .strip_suffix(tenancy::stream::DLQ_SUFFIX)
        .filter(|_| record.spec.zone == Zone::Bronze);
    let table_id = match base {
        Some(base) => state
            .store
            .get_table(&tenant.id, Zone::Bronze, base)
            .await?
            .map(|t| t.id),
        None => Some(record.id),
    };
    if let Some(id) = table_id {
        let streams = state.store.streams_on_table(id).await?;
        if streams > 0 {
            return Err(ApiError::Conflict(format!(
                "{streams} stream(s) write this table or its dead-letter table; delete them first"
            )));
        }
    }
    Ok(())
}

/// Starts maintenance on a table; poll the run. One run per table at a time (409 otherwise).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance", tag = "tables", request_body = MaintenanceBody,
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table")),
    responses((status = 202, description = "Started", body = RunAccepted),
        (status = 409, description = "A run is already under way on the table, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn start_maintenance(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
    ApiJson(body): ApiJson<MaintenanceBody>,
) -> Result<Response, ApiError> {
    let (_, zone, name) = path;
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::ReadWrite).await?;
    let operations = parse_operations(&body.operations)?;
    let options = RunOptions {
        vacuum_retention_hours: body.vacuum_retention_hours.unwrap_or(168),
        allow_short_vacuum: body.allow_short_vacuum_retention,
    };
    let vacuum_retention = options.vacuum_retention();
    if body.allow_short_vacuum_retention && auth.caller.principal.role != Role::PlatformAdmin {
        return Err(ApiError::Denied(tenancy::policy::Denial::Forbidden(
            "only a platform-admin may allow vacuum retention below 168 hours".to_owned(),
        )));
    }
    let plan_spec = lake_manager::delta::maintain::Plan {
        spec: &record.spec,
        retention_days: 0,
        vacuum_retention,
        allow_short_vacuum: options.allow_short_vacuum,
        now: tenancy::now(),
    };
    for (i, op) in operations.iter().enumerate() {
        if let Some(why) = lake_manager::delta::maintain::refusal(*op, &plan_spec) {
            let field = if *op == Operation::Vacuum {
                "vacuum_retention_hours".to_owned()
            } else {
                let at = body.operations.iter().position(|o| o == op.as_str()).unwrap_or(i);
                format!("operations[{at}]")
            };
            return Err(Violation::new(field, why).into());
        }
    }
    let path = target(&tenant.id, record.spec.zone, record.spec.name.as_str());
    let audit = event(
        &auth.caller,
        "table.maintenance.start",
        &format!("{path}/maintenance"),
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    let run = state
        .catalog
        .queue_run(
            &tenant,
            &record,
            operations.clone(),
            options,
            &auth.caller.principal.subject,
            &audit,
        )
        .await?;
    let run_id = run.id;
    // A worker executes the queued run: the reconciler starts it now.
    state.workers.wake();
    Ok(audited((
        StatusCode::ACCEPTED,
        Json(RunAccepted { run_id, operations }),
    )))
}

/// A page of a table's maintenance runs.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The table's maintenance runs, newest first: those asked for and those the scheduler queued.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table"), RunQuery),
    responses((status = 200, description = "A page of runs", body = Page<RunView>)))]
pub async fn list_maintenance(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String)>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> Result<Json<Page<RunView>>, ApiError> {
    let (_, zone, name) = path;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    let (_, record) = table_at(&state, &auth, &zone, &name, Access::Read).await?;
    let runs = state.store.list_runs(record.id, before, limit + 1).await?;
    let (runs, next_cursor) = pagination::page(runs, limit, |r| r.id.to_string());
    let now = tenancy::now();
    let role = auth.caller.principal.role;
    Ok(Json(Page {
        items: runs
            .into_iter()
            .map(|r| RunView::shown_to(lapsed(r, now), role))
            .collect(),
        next_cursor,
    }))
}

/// A running run whose lease lapsed is shown failed: its process stopped without recording an
/// end (the next run on the table records this failure too, when it takes the lease over).
fn lapsed(mut run: MaintenanceRun, now: DateTime<Utc>) -> MaintenanceRun {
    if run.status == RunStatus::Running && run.lease_expires_at < now {
        run.status = RunStatus::Failed;
        run.error = Some(tenancy::disclosure::LEASE_EXPIRED.to_owned());
    }
    run
}

/// A maintenance run's status and metrics.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tables/{zone}/{name}/maintenance/{run_id}", tag = "tables",
    params(("tenant" = String, Path, description = "Tenant id"), ("zone" = String, Path, description = "Zone"), ("name" = String, Path, description = "Table"), ("run_id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run", body = RunView)))]
pub async fn get_maintenance(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Json<RunView>, ApiError> {
    let (_, zone, name, run_id) = path;
    let (tenant, record) = table_at(&state, &auth, &zone, &name, Access::Read).await?;
    let not_found = || ApiError::NotFound(format!("no maintenance run {run_id}"));
    let id = Uuid::parse_str(&run_id).map_err(|_| not_found())?;
    let run = state
        .store
        .get_run(&tenant.id, id)
        .await?
        .filter(|r| r.table_id == record.id)
        .ok_or_else(not_found)?;
    Ok(Json(RunView::shown_to(
        lapsed(run, tenancy::now()),
        auth.caller.principal.role,
    )))
}
