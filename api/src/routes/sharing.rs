//! The Delta Sharing protocol for recipients, under `/delta-sharing` (share = share name,
//! schema = zone, table = table name), and the signed file URLs it hands out on local storage,
//! under `/files`. Authentication is the recipient's own bearer token, not an API token.
//! Errors use the protocol's `{"errorCode", "message"}` shape.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use lake_manager::delta::DeltaError;
use lake_manager::sharing::{At, SharedFile, SharedSnapshot};
use lake_manager::storage::{StorageError, StorageKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenancy::kind::{Classify, ErrorKind};
use tenancy::pagination;
use tenancy::share::{FileGrant, file_url_lifetime, token_hash};
use tenancy::store::{RecipientRecord, ShareRecord, SharedTable, StoreError, TableRecord, TableStatus};
use tenancy::tenant::{Tenant, TenantStatus};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::shares::public_base;
use crate::state::AppState;

/// The protocol's response header naming the table version served.
const VERSION_HEADER: &str = "delta-table-version";
/// The protocol's capabilities header; this server answers in the parquet format only.
const CAPABILITIES_HEADER: &str = "delta-sharing-capabilities";
/// Newline-delimited JSON, as the protocol's metadata and query answers are.
const NDJSON: &str = "application/x-ndjson; charset=utf-8";

/// The protocol routes and the file route, mounted outside `/v1` and its JWT authentication.
/// The protocol's routes are documented under the `delta-sharing` tag; the file route is
/// routed here with a wildcard (a file's path has slashes) and documented by [`FilesDoc`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_shares))
        .routes(routes!(get_share))
        .routes(routes!(list_schemas))
        .routes(routes!(list_tables))
        .routes(routes!(list_all_tables))
        .routes(routes!(table_version_head))
        .routes(routes!(table_version))
        .routes(routes!(table_metadata))
        .routes(routes!(query_table))
        .routes(routes!(table_changes))
        .route("/files/{table_id}/{*path}", get(super::files::serve_file))
}

/// The file route's documentation: OpenAPI has no wildcard parameter, so `{path}` stands for
/// the rest of the URL path, slashes included.
#[derive(utoipa::OpenApi)]
#[openapi(paths(super::files::serve_file))]
pub struct FilesDoc;

/// The protocol's error body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SharingError {
    /// `UNAUTHENTICATED`, `RESOURCE_DOES_NOT_EXIST`, `INVALID_PARAMETER_VALUE`,
    /// `FEATURE_NOT_SUPPORTED`, `TEMPORARILY_UNAVAILABLE` or `INTERNAL_ERROR`.
    pub error_code: String,
    /// What went wrong; internal causes are only in the server log.
    pub message: String,
}

/// One page of a protocol list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// Present when more items follow: pass it as `pageToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// A share as the protocol names it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShareItem {
    /// The share's name.
    pub name: String,
    /// The share's id.
    pub id: String,
}

/// `GET /delta-sharing/shares/{share}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareBody {
    /// The share.
    pub share: ShareItem,
}

/// A schema (a zone) of a share.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchemaItem {
    /// The zone: `bronze`, `silver` or `gold`.
    pub name: String,
    /// The share's name.
    pub share: String,
}

/// A table of a share.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableItem {
    /// The table's name.
    pub name: String,
    /// Its schema (zone).
    pub schema: String,
    /// The share's name.
    pub share: String,
    /// The share's id.
    pub share_id: String,
    /// The table's id.
    pub id: String,
}

/// Why a protocol request failed, mapped once to the protocol's error shape.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// No, unknown, expired or revoked recipient token.
    #[error("{0}")]
    Unauthenticated(String),
    /// Not in the recipient's share (or gone).
    #[error("{0}")]
    NotFound(String),
    /// A parameter the server cannot honour.
    #[error("{0}")]
    InvalidParameter(String),
    /// A feature this server does not offer.
    #[error("{0}")]
    Unsupported(String),
    /// The tenant's storage is moving: no URL is signed for the location being left.
    #[error("{0}")]
    Moving(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Reading the Delta table failed.
    #[error(transparent)]
    Delta(DeltaError),
}

impl From<DeltaError> for ProtocolError {
    fn from(error: DeltaError) -> Self {
        match error {
            DeltaError::Refused(why) => ProtocolError::InvalidParameter(why),
            DeltaError::NotATable(_) => ProtocolError::NotFound("the table has no Delta log".to_owned()),
            other => ProtocolError::Delta(other),
        }
    }
}

impl ProtocolError {
    /// The kind of the failure behind a store, storage or Delta error.
    fn kind(&self) -> Option<ErrorKind> {
        match self {
            ProtocolError::Store(e) => Some(e.kind()),
            ProtocolError::Storage(e) => Some(e.kind()),
            ProtocolError::Delta(e) => Some(e.kind()),
            _ => None,
        }
    }
}

impl IntoResponse for ProtocolError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ProtocolError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            ProtocolError::NotFound(_) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            ProtocolError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            // 400, not 501: the Python client and the Spark connector retry every 5xx for
            // minutes before showing the error.
            ProtocolError::Unsupported(_) => (StatusCode::BAD_REQUEST, "FEATURE_NOT_SUPPORTED"),
            ProtocolError::Moving(_) => (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE"),
            ProtocolError::Store(_) | ProtocolError::Storage(_) | ProtocolError::Delta(_)
                if self.kind() == Some(ErrorKind::Unavailable) =>
            {
                (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE")
            }
            ProtocolError::Store(_) | ProtocolError::Storage(_) | ProtocolError::Delta(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        };
        let message = if let ProtocolError::Moving(why) = &self {
            why.clone()
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %tenancy::error_chain(&self), "sharing request failed");
            "the server could not complete the request".to_owned()
        } else {
            self.to_string()
        };
        let body = SharingError {
            error_code: code.to_owned(),
            message,
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(crate::http::ForeignErrorBody);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::RETRY_AFTER.as_secs()),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"delta-sharing\""),
            );
        }
        response
    }
}

/// An authenticated recipient and the share its token reads.
pub struct Recipient {
    /// The recipient.
    pub record: RecipientRecord,
    /// Its share.
    pub share: ShareRecord,
}

impl FromRequestParts<AppState> for Recipient {
    type Rejection = ProtocolError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let refused = |why: &str| ProtocolError::Unauthenticated(why.to_owned());
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refused("a recipient bearer token is required"))?;
        let record = state
            .store
            .recipient_by_token(&token_hash(token))
            .await?
            .ok_or_else(|| refused("the bearer token is not a recipient's token"))?;
        if record.revoked_at.is_some() {
            return Err(refused("the recipient was revoked"));
        }
        if record.expires_at <= Utc::now() {
            return Err(refused("the recipient's token has expired"));
        }
        let share = state
            .store
            .get_share_by_id(record.share_id)
            .await?
            .ok_or_else(|| refused("the share was deleted"))?;
        Ok(Self { record, share })
    }
}

impl Recipient {
    fn share_named(&self, name: &str) -> Result<&ShareRecord, ProtocolError> {
        // Another share, of this tenant or any other, is answered as absent.
        // The protocol's names are case-insensitive; stored names are lowercase.
        if self.share.name.as_str().eq_ignore_ascii_case(name) {
            Ok(&self.share)
        } else {
            Err(ProtocolError::NotFound(format!("share {name} not found")))
        }
    }
}

/// A path whose rejection (say, a segment that is not UTF-8) answers in the protocol's shape.
pub struct ProtocolPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ProtocolPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ProtocolError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|e| ProtocolError::InvalidParameter(e.body_text()))
    }
}

/// A query string whose rejection (a repeated parameter, bad escapes) answers in the
/// protocol's shape.
pub struct ProtocolQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ProtocolQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ProtocolError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|e| ProtocolError::InvalidParameter(e.body_text()))
    }
}

/// `maxResults` and `pageToken`. Both are read as text so that a bad value is answered in the
/// protocol's shape, naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Most items per page, 1 or more (pages hold at most 1000).
    #[param(value_type = Option<i32>, minimum = 1)]
    max_results: Option<String>,
    /// The `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// Pages `items` by position; the token is the next offset, opaque to clients.
fn paged<T: Clone>(items: Vec<T>, query: &ListQuery) -> Result<Json<Page<T>>, ProtocolError> {
    let offset = match &query.page_token {
        Some(token) if !token.is_empty() => pagination::decode_cursor(token)
            .ok()
            .and_then(|t| t.parse::<usize>().ok())
            .ok_or_else(|| {
                ProtocolError::InvalidParameter("pageToken is not one this server issued".to_owned())
            })?,
        _ => 0,
    };
    // Larger pages are capped rather than refused, as the protocol lets servers do.
    // The protocol's maxResults is an int32; 0 would hand back the same page token forever.
    let max = match &query.max_results {
        Some(raw) => {
            let asked = raw.parse::<i32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ProtocolError::InvalidParameter(
                    "maxResults must be an integer from 1 to 2147483647".to_owned(),
                )
            })?;
            // Larger pages are capped rather than refused, as the protocol lets servers do.
            usize::try_from(asked).unwrap_or(1000).min(1000)
        }
        None => 1000,
    };
    let end = offset.saturating_add(max).min(items.len());
    let page = items.get(offset..end).map(<[T]>::to_vec).unwrap_or_default();
    let next_page_token = (end < items.len()).then(|| pagination::encode_cursor(&end.to_string()));
    Ok(Json(Page {
        items: page,
        next_page_token,
    }))
}

fn share_item(share: &ShareRecord) -> ShareItem {
    ShareItem {
        name: share.name.as_str().to_owned(),
        id: share.id.to_string(),
    }
}

/// The shares the recipient's token reads: its one share.
#[utoipa::path(get, path = "/delta-sharing/shares", tag = "delta-sharing", operation_id = "sharing_list_shares", params(ListQuery),
    security(("recipient" = [])),
    responses((status = 200, description = "The recipient's share", body = Page<ShareItem>)))]
async fn list_shares(
    recipient: Recipient,
    ProtocolQuery(query): ProtocolQuery<ListQuery>,
) -> Result<Json<Page<ShareItem>>, ProtocolError> {
    paged(vec![share_item(&recipient.share)], &query)
}

/// One share, if it is the recipient's.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}", tag = "delta-sharing", operation_id = "sharing_get_share",
    params(("share" = String, Path, description = "The share's name")),
    security(("recipient" = [])),
    responses((status = 200, description = "The share", body = ShareBody)))]
async fn get_share(
    recipient: Recipient,
    ProtocolPath(share): ProtocolPath<String>,
) -> Result<Json<ShareBody>, ProtocolError> {
    let share = recipient.share_named(&share)?;
    Ok(Json(ShareBody {
        share: share_item(share),
    }))
}

/// The share's tables that still exist, in share order.
async fn live_tables<'a>(
    state: &AppState,
    share: &'a ShareRecord,
) -> Result<Vec<&'a SharedTable>, ProtocolError> {
    let mut live = Vec::with_capacity(share.tables.len());
    for shared in &share.tables {
        let active = state
            .store
            .get_table_by_id(shared.table_id)
            .await?
            .is_some_and(|t| t.status == TableStatus::Active);
        if active {
            live.push(shared);
        }
    }
    Ok(live)
}

fn table_item(share: &ShareRecord, table: &SharedTable) -> TableItem {
    TableItem {
        name: table.name.clone(),
        schema: table.zone.as_str().to_owned(),
        share: share.name.as_str().to_owned(),
        share_id: share.id.to_string(),
        id: table.table_id.to_string(),
    }
}

/// The zones of a share that hold at least one live table.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/schemas", tag = "delta-sharing", operation_id = "sharing_list_schemas",
    params(("share" = String, Path, description = "The share's name"), ListQuery),
    security(("recipient" = [])),
    responses((status = 200, description = "The share's schemas", body = Page<SchemaItem>)))]
async fn list_schemas(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath(share): ProtocolPath<String>,
    ProtocolQuery(query): ProtocolQuery<ListQuery>,
) -> Result<Json<Page<SchemaItem>>, ProtocolError> {
    let share = recipient.share_named(&share)?;
    let mut zones: Vec<_> = live_tables(&state, share)
        .await?
        .into_iter()
        .map(|t| t.zone)
        .collect();
    zones.sort();
    zones.dedup();
    let items = zones
        .into_iter()
        .map(|z| SchemaItem {
            name: z.as_str().to_owned(),
            share: share.name.as_str().to_owned(),
        })
        .collect();
    paged(items, &query)
}

/// The live tables of one schema of a share.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables", tag = "delta-sharing", operation_id = "sharing_list_tables",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ListQuery,
    ),
    security(("recipient" = [])),
    responses((status = 200, description = "The schema's tables", body = Page<TableItem>)))]
async fn list_tables(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath((share, schema)): ProtocolPath<(String, String)>,
    ProtocolQuery(query): ProtocolQuery<ListQuery>,
) -> Result<Json<Page<TableItem>>, ProtocolError> {
    let share = recipient.share_named(&share)?;
    let tables: Vec<TableItem> = live_tables(&state, share)
        .await?
        .into_iter()
        .filter(|t| t.zone.as_str().eq_ignore_ascii_case(&schema))
        .map(|t| table_item(share, t))
        .collect();
    if tables.is_empty() {
        return Err(ProtocolError::NotFound(format!(
            "schema {schema} not found in share {}",
            share.name
        )));
    }
    paged(tables, &query)
}

/// Every live table of a share.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/all-tables", tag = "delta-sharing", operation_id = "sharing_list_all_tables",
    params(("share" = String, Path, description = "The share's name"), ListQuery),
    security(("recipient" = [])),
    responses((status = 200, description = "The share's tables", body = Page<TableItem>)))]
async fn list_all_tables(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath(share): ProtocolPath<String>,
    ProtocolQuery(query): ProtocolQuery<ListQuery>,
) -> Result<Json<Page<TableItem>>, ProtocolError> {
    let share = recipient.share_named(&share)?;
    let tables = live_tables(&state, share)
        .await?
        .into_iter()
        .map(|t| table_item(share, t))
        .collect();
    paged(tables, &query)
}

/// A shared table resolved to where its Delta log lives.
pub(crate) struct Resolved {
    /// The table's tenant.
    pub tenant: Tenant,
    /// The table.
    pub record: TableRecord,
    /// Its root under the tenant's current placement.
    pub root: String,
}

/// An active table of a tenant that is not being deleted, with its root; `None` otherwise.
/// The protocol and the file route both serve only such tables.
pub(crate) async fn active_table(state: &AppState, id: uuid::Uuid) -> Result<Option<Resolved>, StoreError> {
    let Some(record) = state
        .store
        .get_table_by_id(id)
        .await?
        .filter(|t| t.status == TableStatus::Active)
    else {
        return Ok(None);
    };
    let Some(tenant) = state
        .store
        .get_tenant(&record.tenant)
        .await?
        .filter(|t| t.status != TenantStatus::Deleting)
    else {
        return Ok(None);
    };
    let root = state
        .catalog
        .table_root(&tenant, record.spec.zone, record.spec.name.as_str());
    Ok(Some(Resolved { tenant, record, root }))
}

async fn resolve(
    state: &AppState,
    recipient: &Recipient,
    share: &str,
    schema: &str,
    table: &str,
) -> Result<Resolved, ProtocolError> {
    let share = recipient.share_named(share)?;
    let missing = || {
        ProtocolError::NotFound(format!(
            "table {schema}.{table} not found in share {}",
            share.name
        ))
    };
    let shared = share
        .tables
        .iter()
        .find(|t| t.zone.as_str().eq_ignore_ascii_case(schema) && t.name.eq_ignore_ascii_case(table))
        .ok_or_else(missing)?;
    active_table(state, shared.table_id).await?.ok_or_else(missing)
}

fn with_version(mut response: Response, version: i64) -> Response {
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from(version));
    response
}

/// `startingTimestamp` for the version route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// The earliest version committed at or after this RFC 3339 time, instead of the latest.
    #[param(value_type = Option<String>, format = DateTime)]
    starting_timestamp: Option<String>,
}

/// The path naming one table of a share.
type TablePath = ProtocolPath<(String, String, String)>;

fn parse_time(field: &str, raw: &str) -> Result<DateTime<Utc>, ProtocolError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ProtocolError::InvalidParameter(format!(
                "{field} must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z"
            ))
        })
}

async fn current_version(
    state: &AppState,
    resolved: &Resolved,
    starting: Option<&str>,
) -> Result<i64, ProtocolError> {
    let starting = starting
        .map(|raw| parse_time("startingTimestamp", raw))
        .transpose()?;
    Ok(lake_manager::sharing::version_at(state.catalog.delta(), &resolved.root, starting).await?)
}

/// The table's version, in the `Delta-Table-Version` header.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/version", tag = "delta-sharing", operation_id = "sharing_table_version",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ("table" = String, Path, description = "The table's name"),
        VersionQuery,
    ),
    security(("recipient" = [])),
    responses((status = 200, description = "The version is in the header", headers(("delta-table-version" = i64, description = "The table version")))))]
async fn table_version(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath((share, schema, table)): TablePath,
    ProtocolQuery(query): ProtocolQuery<VersionQuery>,
) -> Result<Response, ProtocolError> {
    let resolved = resolve(&state, &recipient, &share, &schema, &table).await?;
    let version = current_version(&state, &resolved, query.starting_timestamp.as_deref()).await?;
    Ok(with_version(StatusCode::OK.into_response(), version))
}

/// The older `HEAD .../tables/{table}` form of the version route.
#[utoipa::path(head, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}", tag = "delta-sharing", operation_id = "sharing_table_version_head",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ("table" = String, Path, description = "The table's name"),
    ),
    security(("recipient" = [])),
    responses((status = 200, description = "The version is in the header", headers(("delta-table-version" = i64, description = "The table version")))))]
async fn table_version_head(
    state: State<AppState>,
    recipient: Recipient,
    path: TablePath,
) -> Result<Response, ProtocolError> {
    let latest = VersionQuery {
        starting_timestamp: None,
    };
    table_version(state, recipient, path, ProtocolQuery(latest)).await
}

fn protocol_line() -> Value {
    json!({"protocol": {"minReaderVersion": 1}})
}

fn metadata_line(snapshot: &SharedSnapshot) -> Value {
    let meta = &snapshot.metadata;
    let mut body = json!({
        "id": meta.id,
        "format": {"provider": "parquet"},
        "schemaString": meta.schema_string,
        "partitionColumns": meta.partition_columns,
        "configuration": meta.configuration.iter().collect::<BTreeMap<_, _>>(),
        "size": snapshot.size,
        "numFiles": snapshot.num_files,
    });
    if let Some(name) = &meta.name {
        body["name"] = Value::String(name.clone());
    }
    if let Some(description) = &meta.description {
        body["description"] = Value::String(description.clone());
    }
    json!({ "metaData": body })
}

fn ndjson(lines: &[Value], version: i64) -> Response {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.to_string());
        text.push('\n');
    }
    let response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NDJSON)),
            (
                header::HeaderName::from_static(CAPABILITIES_HEADER),
                HeaderValue::from_static("responseformat=parquet"),
            ),
        ],
        text,
    )
        .into_response();
    with_version(response, version)
}

/// The table's protocol and metadata, as two lines of newline-delimited JSON.
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/metadata", tag = "delta-sharing", operation_id = "sharing_table_metadata",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ("table" = String, Path, description = "The table's name"),
    ),
    security(("recipient" = [])),
    responses((status = 200, description = "`protocol` and `metaData` lines", body = String, content_type = "application/x-ndjson; charset=utf-8",
        headers(("delta-table-version" = i64, description = "The table version")))))]
async fn table_metadata(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath((share, schema, table)): TablePath,
) -> Result<Response, ProtocolError> {
    let resolved = resolve(&state, &recipient, &share, &schema, &table).await?;
    let snapshot =
        lake_manager::sharing::snapshot(state.catalog.delta(), &resolved.root, At::Latest, false).await?;
    Ok(ndjson(
        &[protocol_line(), metadata_line(&snapshot)],
        snapshot.version,
    ))
}

/// The query body. Unknown fields are ignored: newer clients send hints this server may skip.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueryBody {
    /// SQL-like filter hints; ignored (every live file is listed).
    #[serde(default)]
    predicate_hints: Option<Vec<String>>,
    /// JSON filter hints; ignored.
    #[serde(default)]
    json_predicate_hints: Option<String>,
    /// A row-count hint; ignored, but must not be negative.
    #[serde(default)]
    #[schema(minimum = 0)]
    limit_hint: Option<i64>,
    /// The version to read (not with `timestamp`).
    #[serde(default)]
    #[schema(minimum = 0)]
    version: Option<i64>,
    /// Read the version current at this RFC 3339 time (not with `version`).
    #[serde(default)]
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// Streaming reads: refused with `FEATURE_NOT_SUPPORTED`.
    #[serde(default)]
    starting_version: Option<i64>,
    /// Streaming reads: refused with `FEATURE_NOT_SUPPORTED`.
    #[serde(default)]
    ending_version: Option<i64>,
}

impl QueryBody {
    fn at(&self) -> Result<At, ProtocolError> {
        if self.starting_version.is_some() || self.ending_version.is_some() {
            return Err(ProtocolError::Unsupported(
                "startingVersion and endingVersion (streaming reads) are not supported; query a version or a timestamp".to_owned(),
            ));
        }
        if matches!(self.limit_hint, Some(n) if n < 0) {
            return Err(ProtocolError::InvalidParameter(
                "limitHint must not be negative".to_owned(),
            ));
        }
        match (self.version, &self.timestamp) {
            (Some(_), Some(_)) => Err(ProtocolError::InvalidParameter(
                "give version or timestamp, not both".to_owned(),
            )),
            (Some(v), None) if v < 0 => Err(ProtocolError::InvalidParameter(
                "version must not be negative".to_owned(),
            )),
            (Some(v), None) => Ok(At::Version(v)),
            (None, Some(raw)) => Ok(At::Timestamp(parse_time("timestamp", raw)?)),
            (None, None) => Ok(At::Latest),
        }
    }
}

/// Where a table's files are served from.
enum FileHost {
    /// Pre-signed GETs of the object store: the bucket and the table's key prefix.
    S3 { bucket: String, prefix: String },
    /// The plane's own `/files` route: its base URL and the table's id.
    Plane { base: url::Url, table_id: String },
}

/// Where one file can be read from, valid until `expires` (Unix seconds).
struct FileUrls<'a> {
    state: &'a AppState,
    host: FileHost,
    expires: i64,
    lifetime: std::time::Duration,
    recipient: String,
}

impl<'a> FileUrls<'a> {
    /// Works out once per query what every file URL shares.
    fn new(
        state: &'a AppState,
        resolved: &Resolved,
        recipient: &RecipientRecord,
        headers: &HeaderMap,
    ) -> Result<Self, ProtocolError> {
        let now = Utc::now();
        let lifetime = file_url_lifetime(recipient.expires_at, now)
            .ok_or_else(|| ProtocolError::Unauthenticated("the recipient's token has expired".to_owned()))?;
        let expires = now.timestamp() + i64::try_from(lifetime.as_secs()).unwrap_or(3600);
        let host = match state.storage.kind() {
            // A pre-signed URL names the bucket the tenant is leaving; none is issued once its
            // copy has started. (The plane's own file URLs name the table, not a location, and
            // keep working across the switch.)
            StorageKind::S3 if resolved.tenant.status == TenantStatus::Migrating => {
                return Err(ProtocolError::Moving(
                    "the tenant's storage is moving to a new location; retry once the move is done"
                        .to_owned(),
                ));
            }
            StorageKind::S3 => {
                let url = url::Url::parse(&resolved.root)
                    .map_err(|_| ProtocolError::Delta(DeltaError::Location(resolved.root.clone())))?;
                FileHost::S3 {
                    bucket: url.host_str().unwrap_or_default().to_owned(),
                    prefix: url.path().trim_start_matches('/').to_owned(),
                }
            }
            StorageKind::Local => {
                let base = public_base(state, headers)
                    .map_err(|e| ProtocolError::InvalidParameter(e.to_string()))?;
                let base = url::Url::parse(&base)
                    .ok()
                    .filter(|u| !u.cannot_be_a_base())
                    .ok_or_else(|| ProtocolError::InvalidParameter(format!("{base} cannot be a base URL")))?;
                FileHost::Plane {
                    base,
                    table_id: resolved.record.id.to_string(),
                }
            }
        };
        Ok(Self {
            state,
            host,
            expires,
            lifetime,
            recipient: recipient.id.to_string(),
        })
    }

    async fn url(&self, file: &SharedFile) -> Result<String, ProtocolError> {
        let (base, table_id) = match &self.host {
            FileHost::S3 { bucket, prefix } => {
                let key = format!("{prefix}{}", file.path);
                return self
                    .state
                    .storage
                    .presigned_get(bucket, &key, self.lifetime)
                    .await?
                    .ok_or_else(|| {
                        ProtocolError::Unsupported("this storage cannot presign URLs".to_owned())
                    });
            }
            FileHost::Plane { base, table_id } => (base, table_id),
        };
        let signature = self.state.url_signer.sign(&FileGrant {
            recipient: &self.recipient,
            table: table_id,
            path: &file.path,
            expires: self.expires,
        });
        let mut url = base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push("files").push(table_id);
            for part in file.path.split('/') {
                segments.push(part);
            }
        }
        url.query_pairs_mut()
            .append_pair("r", &self.recipient)
            .append_pair("expires", &self.expires.to_string())
            .append_pair("sig", &signature);
        Ok(url.into())
    }
}

/// A stable id for a file within the table: the SHA-256 of its path, hex, shortened.
fn file_id(path: &str) -> String {
    Sha256::digest(path.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Versions before a data subject erasure's delete still hold erased rows until vacuum and
/// log cleanup remove them: they are not served.
async fn refuse_erased(state: &AppState, resolved: &Resolved, version: i64) -> Result<(), ProtocolError> {
    match state.store.erasure_floor(resolved.record.id).await? {
        Some(floor) if version < floor => Err(ProtocolError::InvalidParameter(format!(
            "version {version} is before a data subject erasure: the oldest version that may be \
             read is {floor}"
        ))),
        _ => Ok(()),
    }
}

/// The table's files at the latest version, a version or a timestamp, each with a URL valid
/// for at most an hour and never beyond the recipient's token. On S3, 503 while the tenant's
/// storage moves (no URL is signed for the location being left).
#[utoipa::path(post, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/query", tag = "delta-sharing", operation_id = "sharing_query_table",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ("table" = String, Path, description = "The table's name"),
    ),
    request_body(content = Option<QueryBody>, description = "Hints and the version to read; may be empty", content_type = "application/json"),
    security(("recipient" = [])),
    responses((status = 200, description = "`protocol`, `metaData` and one `file` line per file", body = String, content_type = "application/x-ndjson; charset=utf-8",
        headers(("delta-table-version" = i64, description = "The table version")))))]
async fn query_table(
    State(state): State<AppState>,
    recipient: Recipient,
    ProtocolPath((share, schema, table)): TablePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ProtocolError> {
    let query: QueryBody = if body.iter().all(u8::is_ascii_whitespace) {
        QueryBody::default()
    } else {
        // An object only: serde would also read a struct from a JSON array, by position.
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ProtocolError::InvalidParameter(format!("the query body is not valid: {e}")))?;
        if !value.is_object() {
            return Err(ProtocolError::InvalidParameter(
                "the query body must be a JSON object".to_owned(),
            ));
        }
        serde_json::from_value(value)
            .map_err(|e| ProtocolError::InvalidParameter(format!("the query body is not valid: {e}")))?
    };
    let at = query.at()?;
    // Hints may be ignored (the protocol allows it): every live file is returned.
    let _ = (&query.predicate_hints, &query.json_predicate_hints);
    let resolved = resolve(&state, &recipient, &share, &schema, &table).await?;
    // A version before the floor is refused before it is looked for: its log may be gone.
    if let lake_manager::sharing::At::Version(v) = at {
        refuse_erased(&state, &resolved, v).await?;
    }
    let snapshot = lake_manager::sharing::snapshot(state.catalog.delta(), &resolved.root, at, true).await?;
    refuse_erased(&state, &resolved, snapshot.version).await?;
    let urls = FileUrls::new(&state, &resolved, &recipient.record, &headers)?;
    let mut lines = Vec::with_capacity(snapshot.files.len() + 2);
    lines.push(protocol_line());
    lines.push(metadata_line(&snapshot));
    for file in &snapshot.files {
        let partition_values: BTreeMap<&String, &Option<String>> = file.partition_values.iter().collect();
        let mut line = json!({
            "url": urls.url(file).await?,
            "id": file_id(&file.path),
            "partitionValues": partition_values,
            "size": file.size,
            "expirationTimestamp": urls.expires * 1000,
        });
        if let Some(stats) = &file.stats {
            line["stats"] = Value::String(stats.clone());
        }
        lines.push(json!({ "file": line }));
    }
    tracing::debug!(
        tenant = %resolved.tenant.id,
        table = %resolved.record.spec.name,
        files = snapshot.files.len(),
        version = snapshot.version,
        "sharing query answered"
    );
    Ok(ndjson(&lines, snapshot.version))
}

/// The change data feed: not offered by this server (400 `FEATURE_NOT_SUPPORTED`).
#[utoipa::path(get, path = "/delta-sharing/shares/{share}/schemas/{schema}/tables/{table}/changes", tag = "delta-sharing", operation_id = "sharing_table_changes",
    params(
        ("share" = String, Path, description = "The share's name"),
        ("schema" = String, Path, description = "The zone"),
        ("table" = String, Path, description = "The table's name"),
    ),
    security(("recipient" = [])),
    responses((status = 400, description = "Not supported", body = SharingError)))]
async fn table_changes(
    recipient: Recipient,
    ProtocolPath((share, _schema, _table)): TablePath,
) -> Result<Response, ProtocolError> {
    recipient.share_named(&share)?;
    Err(ProtocolError::Unsupported(
        "change data feed queries are not supported by this server".to_owned(),
    ))
}
