//! `POST /temporary-table-credentials`: credentials for one table, named by the `table_id`
//! the table lookups return. An unknown `table_id` and another tenant's answer alike.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use lake_manager::credentials::CredentialsError;
use serde::Deserialize;
use serde_json::Value;
use tenancy::audit::Outcome;
use tenancy::credentials::{CredentialAccess, CredentialScope, MAX_TTL_SECS};
use tenancy::policy::{Action, Denial};
use tenancy::store::TableStatus;
use tenancy::validation::Violation;
use utoipa::IntoParams;

use super::models::{AwsTempCredentials, TemporaryCredentials, UcError};
use super::{location, visible};
use crate::audit::{audited, event};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// A field of the JSON body that must be a string when present.
fn text_field(body: &Value, field: &str) -> Result<Option<String>, Violation> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Violation::new(field, "must be a string")),
    }
}

/// What is asked: the JSON body's fields, or with an empty body the query's (older polars).
fn asked(query: CredentialRequest, body: &[u8]) -> Result<CredentialRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(query);
    }
    let parsed: Value =
        serde_json::from_slice(body).map_err(|e| Violation::new("body", format!("is not JSON: {e}")))?;
    if !parsed.is_object() {
        return Err(Violation::new("body", "must be a JSON object").into());
    }
    Ok(CredentialRequest {
        table_id: text_field(&parsed, "table_id")?,
        operation: text_field(&parsed, "operation")?,
    })
}

/// What credentials are asked for: in a JSON body, or (older clients) as query parameters
/// with an empty body.
#[derive(Debug, Default, Deserialize, IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct CredentialRequest {
    /// The table's `table_id`.
    pub table_id: Option<String>,
    /// `READ` or `READ_WRITE`.
    pub operation: Option<String>,
}

/// Temporary credentials for one table. On S3 with IAM: an STS session narrowed to the
/// table's location, read or read-write, issued and cached as `POST
/// /v1/tenants/{tenant}/credentials` issues them (and audited the same way). On local
/// storage: no cloud credentials, only the location and a nominal expiry. `READ_WRITE` needs
/// a role that may write the zone.
#[utoipa::path(post, path = "/api/2.1/unity-catalog/temporary-table-credentials", tag = "unity-catalog",
    operation_id = "uc_temporary_table_credentials",
    params(CredentialRequest),
    request_body(content = Option<CredentialRequest>, description = "`{table_id, operation}`; or empty, with both as query parameters"),
    responses((status = 200, description = "Credentials", body = TemporaryCredentials),
        (status = 400, description = "A missing or malformed `table_id` or `operation`", body = UcError),
        (status = 403, description = "The caller's role may not read (or write) the table's zone", body = UcError),
        (status = 404, description = "No such table, or another tenant's", body = UcError)))]
pub async fn temporary_table_credentials(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<CredentialRequest>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let asked = asked(query, &body)?;
    let table_id = asked
        .table_id
        .as_deref()
        .ok_or_else(|| Violation::new("table_id", "is required"))?;
    let id = uuid::Uuid::parse_str(table_id)
        .map_err(|_| Violation::new("table_id", "must be a table_id this API returned"))?;
    let access = match asked.operation.as_deref() {
        Some("READ") => CredentialAccess::Read,
        Some("READ_WRITE") => CredentialAccess::Write,
        _ => return Err(Violation::new("operation", "must be READ or READ_WRITE").into()),
    };
    // Unknown and another tenant's: the same answer, audited as a refusal.
    let hidden = || ApiError::Denied(Denial::Hidden);
    let record = state
        .store
        .get_table_by_id(id)
        .await?
        .filter(|t| t.status == TableStatus::Active)
        .ok_or_else(hidden)?;
    let tenant = match visible(&state, &caller, record.tenant.as_str()).await {
        Ok(tenant) => tenant,
        Err(ApiError::NotFound(_) | ApiError::Denied(_)) => return Err(hidden()),
        // A database that cannot answer is not a missing table: the client should retry.
        Err(e) => return Err(e),
    };
    caller.authorize(Action::Zone(&tenant.id, record.spec.zone, access.zone_access()))?;
    // As Unity Catalog answers: a table the caller may not use is PERMISSION_DENIED here.
    let grants = caller.grants(&state, &tenant.id).await?;
    for p in crate::access::credential_privileges(access) {
        caller.require_table(&grants, record.spec.zone, record.spec.name.as_str(), *p)?;
    }
    let url = location(&state, &tenant, &record);
    let full_name = format!("{}.{}.{}", tenant.id, record.spec.zone.as_str(), record.spec.name);
    let (aws, expiration, target) = match state.credentials.as_ref() {
        Some(vendor) => {
            let scope = CredentialScope {
                zone: record.spec.zone,
                tables: vec![record.spec.name.to_string()],
                access,
                // The longest the tenant allows: Unity Catalog's request names no lifetime.
                ttl_seconds: u32::try_from(MAX_TTL_SECS)
                    .unwrap_or(u32::MAX)
                    .min(tenant.credential_max_ttl_secs),
            };
            let vended = vendor
                .vend(&tenant, &crate::routes::credentials::requester(&caller), &scope)
                .await?;
            // Never the secret key or the session token: the access key id is what CloudTrail
            // shows.
            let target = format!(
                "{full_name} {} as {} source-identity {} key {} ({})",
                access.as_str(),
                vended.role_arn,
                vended.source_identity,
                vended.credentials.access_key_id,
                if vended.cached { "cached" } else { "issued" }
            );
            let c = vended.credentials;
            let aws = AwsTempCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.clone(),
                session_token: c.session_token.clone(),
            };
            (Some(aws), c.expiration, target)
        }
        None if state.config.storage.kind == lake_manager::storage::StorageKind::Local => {
            // Local storage needs no credentials: the engine reads the files where they are.
            let expiration =
                tenancy::now() + chrono::Duration::seconds(i64::try_from(MAX_TTL_SECS).unwrap_or(3600));
            (
                None,
                expiration,
                format!("{full_name} {} (local storage: no credentials)", access.as_str()),
            )
        }
        None => {
            return Err(
                CredentialsError::NotAvailable(crate::routes::credentials::unavailable(&state.config)).into(),
            );
        }
    };
    let audit = event(
        &caller,
        "credentials.issue",
        &target,
        Some(tenant.id.as_str()),
        Outcome::Success,
    );
    // Unaudited credentials are never handed out: a failed write fails the request.
    state.store.append_audit(&audit).await?;
    let body = TemporaryCredentials {
        aws_temp_credentials: aws,
        expiration_time: expiration.timestamp_millis(),
        url,
    };
    Ok(audited(([(header::CACHE_CONTROL, "no-store")], Json(body))))
}
