//! Ingestion streams: create, list, describe and delete, and HTTP pushes of events into a
//! stream's bronze table. Creating, deleting and pushing need write access to bronze; reading
//! needs read access.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use lake_manager::ingest::admission::{BodyRoom, InflateError, gunzip};
use lake_manager::ingest::decode::BodyFormat;
use lake_manager::ingest::files::FileFormat;
use lake_manager::ingest::idempotency;
use lake_manager::ingest::rate::Rate;
use lake_manager::ingest::streams::{PushOutcome, PushRequest};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::grants::Privilege;
use tenancy::pagination;
use tenancy::policy::Action;
use tenancy::role::{Access, Zone};
use tenancy::store::StreamRecord;
use tenancy::stream::{OnError, RawSource, StartFrom, StreamRequest, StreamSource, StreamTableRef, dlq_name};
use tenancy::tenant::Tenant;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::tenants::load;
use super::views::Page;
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// The bronze table a stream writes.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct TableRef {
    /// Always `bronze`.
    pub zone: String,
    /// An existing bronze table, at most 58 characters (its dead-letter table adds `__dlq`).
    #[schema(pattern = "^[a-z][a-z0-9_]{0,57}$")]
    pub name: String,
}

/// Where events come from. No `Debug`: `properties` can hold a password.
#[derive(Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SourceBody {
    /// `http` or `kafka`.
    #[serde(rename = "type")]
    #[schema(example = "http")]
    pub kind: String,
    /// Kafka: comma-separated `host:port` list.
    pub bootstrap_servers: Option<String>,
    /// Kafka: the topic.
    pub topic: Option<String>,
    /// Kafka: `earliest` (default) or `latest`, used while the table holds no position.
    pub start: Option<String>,
    /// Kafka: `security.protocol` (`plaintext`, `sasl_plaintext`), `sasl.mechanism` (`PLAIN`),
    /// `sasl.username`, `sasl.password` (stored sealed, never returned).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A stream to create (no `Debug`: its source can hold a password).
#[derive(Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateStream {
    /// `[a-z][a-z0-9_]{0,62}`, unique in the tenant.
    #[schema(pattern = "^[a-z][a-z0-9_]{0,62}$")]
    pub name: String,
    /// The bronze table.
    pub table: TableRef,
    /// The source.
    pub source: SourceBody,
    /// `reject` (default): a request with a bad event writes nothing; `dlq`: bad events go to
    /// the dead-letter table.
    pub on_error: Option<String>,
}

crate::objects_only!(TableRef, SourceBody, CreateStream);

/// A stream's source as shown (secrets by name only).
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// `http` or `kafka`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Kafka: bootstrap servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Kafka: topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Kafka: start policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub start: Option<StartFrom>,
    /// Kafka: non-secret client properties.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// Kafka: names of the secret properties set (values are never returned).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_properties: Vec<String>,
}

/// A table reference in answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableName {
    /// Zone.
    pub zone: Zone,
    /// Name.
    pub name: String,
}

/// A stream as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// Stable id; Kafka positions in the table's log are keyed by it.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The bronze table.
    pub table: TableName,
    /// The dead-letter table.
    pub dlq_table: TableName,
    /// The source.
    pub source: SourceView,
    /// Default error handling: `reject` or `dlq`.
    #[schema(value_type = String)]
    pub on_error: OnError,
    /// `active` (HTTP) or the Kafka worker's state: `starting`, `running`, `failed`, `stopped`.
    pub status: String,
    /// Kafka: per-partition lag, records (high watermark minus the next offset to write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<BTreeMap<i32, i64>>,
    /// Kafka: the worker's last error; for tenant-scoped callers only where its cause is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The rows this stream committed to its table lately, read from the table's Delta log
    /// (whichever replica or worker committed them). Absent from the answer to a create, and
    /// when the table's log could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_rate: Option<IngestRateView>,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// A stream's recent ingest rate.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestRateView {
    /// Rows committed in the window.
    pub rows: u64,
    /// The window, seconds: the last 60, or fewer when a burst of more commits than one
    /// reading fetches came since the last reading.
    pub window_seconds: f64,
    /// Rows per second over the window.
    pub rows_per_second: f64,
}

impl From<Rate> for IngestRateView {
    fn from(rate: Rate) -> Self {
        Self {
            rows: rate.rows,
            window_seconds: rate.window.as_secs_f64(),
            rows_per_second: rate.per_second(),
        }
    }
}

/// The ingest rates of `streams` (all of `tenant`), one reading per table, a few at once. A
/// table whose log cannot be read is logged and its streams get no rate.
async fn ingest_rates(state: &AppState, tenant: &Tenant, streams: &[StreamRecord]) -> HashMap<Uuid, Rate> {
    use futures_util::StreamExt;
    let mut tables = BTreeMap::new();
    for s in streams {
        tables.entry(s.table_id).or_insert_with(|| s.table_name.clone());
    }
    let read: Vec<_> = futures_util::stream::iter(tables)
        .map(|(table, name)| async move {
            let root = state.catalog.table_root(tenant, Zone::Bronze, &name);
            let rates = state
                .ingest_rates
                .table(state.catalog.delta(), table, &root)
                .await;
            (table, root, rates)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut by_table = HashMap::new();
    for (table, root, rates) in read {
        match rates {
            Ok(rates) => {
                by_table.insert(table, rates);
            }
            Err(e) => {
                tracing::warn!(table = %root, error = %tenancy::error_chain(&e), "cannot read the table's log for its streams' ingest rate")
            }
        }
    }
    streams
        .iter()
        .filter_map(|s| Some((s.id, by_table.get(&s.table_id)?.of(s.id))))
        .collect()
}

fn view(state: &AppState, s: &StreamRecord, rate: Option<Rate>) -> StreamView {
    let source = match &s.source {
        StreamSource::Http => SourceView {
            kind: "http",
            bootstrap_servers: None,
            topic: None,
            start: None,
            properties: BTreeMap::new(),
            secret_properties: Vec::new(),
        },
        StreamSource::Kafka(k) => SourceView {
            kind: "kafka",
            bootstrap_servers: Some(k.bootstrap_servers.join(",")),
            topic: Some(k.topic.clone()),
            start: Some(k.start),
            properties: k.properties.clone(),
            secret_properties: k.secrets.keys().cloned().collect(),
        },
    };
    let runtime = state.ingest.state(s);
    StreamView {
        id: s.id,
        name: s.name.to_string(),
        table: TableName {
            zone: Zone::Bronze,
            name: s.table_name.clone(),
        },
        dlq_table: TableName {
            zone: Zone::Bronze,
            name: dlq_name(&tenancy::table::TableName::from_trusted(s.table_name.clone())),
        },
        source,
        on_error: s.on_error,
        status: runtime.status,
        lag: runtime.lag,
        last_error: runtime.last_error,
        ingest_rate: rate.map(IngestRateView::from),
        created_at: s.created_at,
    }
}

/// The view as the caller may see it: a Kafka worker's error names brokers, ports and
/// addresses, which would let a tenant probe the plane's network, so tenant-scoped callers are
/// told only that it failed and which worker to ask about.
fn disclosed(mut shown: StreamView, stream: &StreamRecord, platform: bool) -> StreamView {
    if !platform && shown.last_error.is_some() {
        let worker = tenancy::worker::WorkerSpec::ingest(stream.tenant.clone(), stream.id).id();
        shown.last_error = Some(tenancy::disclosure::worker_error("ingest", &worker));
    }
    shown
}

/// Resolves a stream of the path after checking the caller's bronze access; unknown streams
/// are 404.
async fn stream_at(
    state: &AppState,
    auth: &Authorized<perm::TenantData>,
    name: &str,
    access: Access,
) -> Result<(Tenant, StreamRecord), ApiError> {
    let tenant_id = auth.tenant()?;
    auth.caller
        .authorize(Action::Zone(tenant_id, Zone::Bronze, access))?;
    let tenant = load(state, tenant_id).await?;
    let stream = state
        .store
        .get_stream(tenant_id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no stream {name}")))?;
    // A stream shows only to callers who see its table (its name, topic and lag are the
    // table's); writing through it (pushing, deleting it) writes the table: MODIFY on it.
    let grants = auth.caller.grants(state, tenant_id).await?;
    if !auth.caller.sees_table(&grants, Zone::Bronze, &stream.table_name) {
        return Err(ApiError::NotFound(format!("no stream {name}")));
    }
    if access == Access::ReadWrite {
        auth.caller
            .require_table(&grants, Zone::Bronze, &stream.table_name, Privilege::Modify)?;
    }
    Ok((tenant, stream))
}

/// Creates a stream on an existing bronze table: adds the ingestion metadata columns to the
/// table, creates its dead-letter table `{table}__dlq`, and starts the Kafka worker.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/streams", tag = "streams", request_body = CreateStream,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "Created", body = StreamView),
        (status = 409, description = "The name is taken, the stream quota is reached, or the tenant is not ready", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_stream(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiJson(body): ApiJson<CreateStream>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    auth.caller
        .authorize(Action::Zone(&tenant_id, Zone::Bronze, Access::ReadWrite))?;
    let request = StreamRequest {
        name: body.name,
        table: StreamTableRef {
            zone: body.table.zone,
            name: body.table.name,
        },
        source: RawSource {
            kind: body.source.kind,
            bootstrap_servers: body.source.bootstrap_servers,
            topic: body.source.topic,
            start: body.source.start,
            properties: body.source.properties,
        },
        on_error: body.on_error,
    };
    let spec = request.validate()?;
    // A stream writes its table: MODIFY on it, held directly or through bronze or the tenant.
    let grants = auth.caller.grants(&state, &tenant_id).await?;
    auth.caller
        .use_table(&grants, Zone::Bronze, spec.table.as_str(), Privilege::Modify)?;
    let tenant = load(&state, &tenant_id).await?;
    let audit = event(
        &auth.caller,
        "stream.create",
        &format!("/v1/tenants/{tenant_id}/streams/{}", spec.name),
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    let record = state.ingest.create_stream(&tenant, spec, &audit).await?;
    Ok(audited((StatusCode::CREATED, Json(view(&state, &record, None)))))
}

/// Pages the stream list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The tenant's streams, by name.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/streams", tag = "streams",
    params(("tenant" = String, Path, description = "Tenant id"), StreamQuery),
    responses((status = 200, description = "A page of streams", body = Page<StreamView>)))]
pub async fn list_streams(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Json<Page<StreamView>>, ApiError> {
    let tenant_id = auth.tenant()?;
    let limit = pagination::limit(query.limit)?;
    let after = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    auth.caller
        .authorize(Action::Zone(tenant_id, Zone::Bronze, Access::Read))?;
    let tenant = load(&state, tenant_id).await?;
    let grants = auth.caller.grants(&state, tenant_id).await?;
    // Streams of tables the caller cannot see are skipped; keep reading until the page is full.
    let mut rows = Vec::new();
    let mut cursor = after;
    loop {
        let batch = state
            .store
            .list_streams(tenant_id, cursor.as_deref(), limit + 1)
            .await?;
        let exhausted = batch.len() <= limit as usize;
        cursor = batch.last().map(|s| s.name.to_string());
        rows.extend(
            batch
                .into_iter()
                .filter(|s| auth.caller.sees_table(&grants, Zone::Bronze, &s.table_name)),
        );
        if exhausted || rows.len() > limit as usize {
            break;
        }
    }
    let (rows, next_cursor) = pagination::page(rows, limit, |s| s.name.to_string());
    let platform = auth.caller.principal.role == tenancy::role::Role::PlatformAdmin;
    let rates = ingest_rates(&state, &tenant, &rows).await;
    Ok(Json(Page {
        items: rows
            .iter()
            .map(|s| disclosed(view(&state, s, rates.get(&s.id).copied()), s, platform))
            .collect(),
        next_cursor,
    }))
}

/// One stream with its runtime state (Kafka: worker status and per-partition lag).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/streams/{stream}", tag = "streams",
    params(("tenant" = String, Path, description = "Tenant id"), ("stream" = String, Path, description = "Stream")),
    responses((status = 200, description = "The stream", body = StreamView)))]
pub async fn get_stream(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String)>,
) -> Result<Json<StreamView>, ApiError> {
    let (_, name) = path;
    let (tenant, stream) = stream_at(&state, &auth, &name, Access::Read).await?;
    let rate = ingest_rates(&state, &tenant, std::slice::from_ref(&stream))
        .await
        .get(&stream.id)
        .copied();
    let mut shown = view(&state, &stream, rate);
    if matches!(stream.source, StreamSource::Kafka(_)) && shown.status == "stopped" {
        // Its worker runs in another process (the leader replica, a pod): its row tells.
        let id = tenancy::worker::WorkerSpec::ingest(stream.tenant.clone(), stream.id).id();
        if let Some(worker) = state.store.get_worker(&id).await? {
            use tenancy::worker::WorkerState;
            let progress = worker
                .progress
                .as_deref()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok());
            shown.status = match worker.state {
                WorkerState::Pending => "starting",
                // Claimed is not consuming: until the worker reports its consumer's state
                // (after its positions are assigned), it is starting.
                WorkerState::Running => progress
                    .as_ref()
                    .and_then(|p| p["state"].as_str())
                    .filter(|reported| ["running", "failed"].contains(reported))
                    .unwrap_or("starting"),
                WorkerState::Succeeded => "stopped",
                WorkerState::Failed => "failed",
            }
            .to_owned();
            shown.last_error = worker.last_error;
            shown.lag = progress.and_then(|p| serde_json::from_value(p["lag"].clone()).ok());
        }
    }
    let platform = auth.caller.principal.role == tenancy::role::Role::PlatformAdmin;
    Ok(Json(disclosed(shown, &stream, platform)))
}

/// Deletes a stream and stops its worker; the table and the dead-letter table stay.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/streams/{stream}", tag = "streams",
    params(("tenant" = String, Path, description = "Tenant id"), ("stream" = String, Path, description = "Stream")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_stream(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (_, name) = path;
    let (tenant, stream) = stream_at(&state, &auth, &name, Access::ReadWrite).await?;
    let audit = event(
        &auth.caller,
        "stream.delete",
        &format!("/v1/tenants/{}/streams/{name}", tenant.id),
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    if !state.ingest.delete_stream(&stream, &audit).await? {
        return Err(ApiError::NotFound(format!("no stream {name}")));
    }
    Ok(audited(StatusCode::NO_CONTENT))
}

/// How to treat events that do not fit.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// `reject` or `dlq`; default: the stream's `on_error`.
    pub on_error: Option<String>,
}

fn format_of(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => Ok(BodyFormat::Ndjson),
        "application/json" => Ok(BodyFormat::JsonArray),
        "application/vnd.apache.parquet" | "application/x-parquet" => {
            Ok(BodyFormat::File(FileFormat::Parquet))
        }
        "application/avro" | "application/vnd.apache.avro" | "avro/binary" => {
            Ok(BodyFormat::File(FileFormat::Avro))
        }
        _ => Err(ApiError::UnsupportedMediaType {
            expected: "application/x-ndjson, application/json (an array), application/vnd.apache.parquet \
                       or application/avro (an object-container file)",
        }),
    }
}

/// The most a push body's buffer is sized to before its bytes arrive.
const PRESIZE_MAX: usize = 1 << 20;

/// Reads the body (gzip or identity) into at most `limit` bytes of events, taking room for it
/// in `room` as bytes arrive and as they inflate. A body that sends nothing for `stall` is
/// given up (408): a client cannot hold a request open by going quiet.
async fn body_bytes(
    state: &AppState,
    request: Request,
    limit: usize,
    stall: std::time::Duration,
    mut room: BodyRoom,
) -> Result<(Vec<u8>, BodyRoom), ApiError> {
    use http_body_util::BodyExt;
    let encoding = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType {
                expected: if other.is_empty() {
                    "gzip"
                } else {
                    "Content-Encoding gzip or none"
                },
            });
        }
    };
    // Sized from Content-Length rather than grown by doubling, which copied a typical 1 MiB
    // body about twice over; at most 1 MiB up front, since the length is the client's word
    // and the buffer budget (`room`) counts bytes as they arrive.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = request.into_body();
    let mut raw = Vec::with_capacity(declared.min(limit).min(PRESIZE_MAX));
    loop {
        let frame = tokio::time::timeout(stall, body.frame())
            .await
            .map_err(|_| ApiError::BodyStalled(stall))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            let e = e.into_inner();
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if raw.len() + data.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        room.grow(data.len())?;
        raw.extend_from_slice(&data);
    }
    if !gzip {
        return Ok((raw, room));
    }
    let inflated = state
        .ingest
        .blocking(move || {
            let out = gunzip(&raw, limit, &mut room);
            (out, room)
        })
        .await?;
    match inflated {
        (Ok(out), room) => Ok((out, room)),
        (Err(InflateError::TooLarge(limit)), _) => Err(ApiError::PayloadTooLarge { limit }),
        (Err(InflateError::Corrupt(why)), _) => Err(ApiError::BadRequest(format!(
            "the gzip body cannot be decompressed: {why}"
        ))),
        (Err(InflateError::Full(e)), _) => Err(e.into()),
    }
}

/// Pushes events: NDJSON (`application/x-ndjson`) or a JSON array (`application/json`),
/// optionally gzip; or one Parquet file (`application/vnd.apache.parquet`) or Avro
/// object-container file (`application/avro`), refused whole (422 naming the column) when it
/// does not fit the table. Answered after the Delta commit that holds them; one commit carries many
/// requests. 422 lists up to 10 bad events (`reject`); with `dlq` they go to the dead-letter
/// table. 429 with `Retry-After` when buffers, the tenant's share of them or its events/s
/// quota are full; 408 when the body stops arriving; 503 while the tenant migrates.
///
/// A push answered with an error was not committed and never will be, except one answered
/// 503 `commit-outcome-unknown`. Send an `Idempotency-Key` to make any retry safe: a retry
/// with the same key (same stream, same request) commits at most once and answers the first
/// outcome (`Idempotent-Replayed: true`), or 409 `push-in-progress` while it is not known yet.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/streams/{stream}/events", tag = "streams",
    params(("tenant" = String, Path, description = "Tenant id"), ("stream" = String, Path, description = "Stream"), PushQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters naming this request; its retries send the same key. Remembered for `ingest.idempotency_window_secs` (24 h).")),
    request_body(description = "Events: one JSON object per line (NDJSON), or a JSON array of objects; or one file, decoded whole: Parquet, or an Avro object-container file",
        content((String = "application/x-ndjson"), (Vec<std::collections::HashMap<String, serde_json::Value>> = "application/json"),
            (FileBody = "application/vnd.apache.parquet"), (FileBody = "application/avro"))),
    responses((status = 200, description = "Committed (or, with `Idempotent-Replayed: true`, committed by an earlier attempt with the same key)", body = PushOutcome,
            headers(("Idempotent-Replayed" = String, description = "`true` when the outcome is an earlier attempt's"))),
        (status = 408, description = "The body sent nothing for `ingest.body_stall_ms`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The stream consumes Kafka (push to its topic instead), or an attempt with the same `Idempotency-Key` is still under way (`push-in-progress`, with `Retry-After`)", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not committed and never will be (`commit-failed`, `storage-unavailable`, ...), or `commit-outcome-unknown`: the commit may have landed, and only a retry with the same `Idempotency-Key` is safe", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn push_events(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    Path(path): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PushQuery>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    // The handler answers by itself before the request timeout would cut it off, so the
    // answer can say whether the events were withdrawn or may still commit.
    let deadline = tokio::time::Instant::now() + state.config.ingest.ack_timeout(&state.config.server);
    let (_, name) = path;
    let key = headers
        .get(idempotency::HEADER)
        .map(|raw| idempotency::parse_key(raw.as_bytes()))
        .transpose()?;
    let on_error = match query.on_error.as_deref() {
        None => None,
        Some(raw) => Some(
            OnError::parse(raw)
                .ok_or_else(|| tenancy::validation::Violation::new("on_error", "must be reject or dlq"))?,
        ),
    };
    let format = format_of(&headers)?;
    if matches!(format, BodyFormat::File(_)) && on_error == Some(OnError::Dlq) {
        // A file is refused whole or written whole: asking for dead letters would be ignored.
        return Err(tenancy::validation::Violation::new(
            "on_error",
            "dlq does not apply to a file, which is written or refused whole; leave it out",
        )
        .into());
    }
    let (tenant, stream) = stream_at(&state, &auth, &name, Access::ReadWrite).await?;
    if !matches!(stream.source, StreamSource::Http) {
        return Err(ApiError::Conflict(format!(
            "stream {name} consumes Kafka; push events to its topic instead"
        )));
    }
    let limit = state.config.ingest.max_body_bytes;
    let stall = std::time::Duration::from_millis(state.config.ingest.body_stall_ms);
    // Room for the body is taken from the tenant's share as its bytes arrive; it is held until
    // the commit that holds the events ends.
    let room = state.ingest.open_body(&tenant.id);
    let (body, _room) = body_bytes(&state, request, limit, stall, room).await?;
    let request_id = headers
        .get(crate::http::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let push = PushRequest {
        body,
        format,
        on_error: on_error.unwrap_or(stream.on_error),
        request_id,
        key,
        deadline,
    };
    let pushed = state.ingest.push(&tenant, &stream, push).await?;
    let mut response = Json(pushed.outcome).into_response();
    if pushed.replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A pushed file, sent as the body's bytes (for the spec only).
pub struct FileBody;

impl utoipa::PartialSchema for FileBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("The file's bytes"))
            .into()
    }
}

impl utoipa::ToSchema for FileBody {}

/// Set on a push answered with an earlier attempt's outcome under the same key.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
