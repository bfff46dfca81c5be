//! A tenant's Delta Sharing shares and their recipients: create, list, read, delete, and the
//! profile each new recipient gets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::pagination;
use tenancy::policy::Action;
use tenancy::role::{Access, Zone};
use tenancy::share::{RawTableRef, RecipientName, new_bearer_token, token_hash, validate_share};
use tenancy::store::{RecipientRecord, ShareRecord, SharedTable, TableStatus};
use tenancy::tenant::TenantId;
use tenancy::validation::{Violation, Violations};
use utoipa::ToSchema;
use uuid::Uuid;

use super::tenants::load;
use super::views::{Page, PageQuery};
use crate::audit::{audited, event};
use crate::auth::{Authorized, Caller, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// One table to share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct ShareTableRef {
    /// `bronze`, `silver` or `gold`; the share's schema.
    pub zone: String,
    /// The table's name in that zone.
    pub name: String,
}

/// A share to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateShare {
    /// Unique within the tenant: a lowercase letter, then lowercase letters, digits or `_`.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z][a-z0-9_]*$")]
    pub name: String,
    /// 1 to 100 tables the caller may read.
    #[schema(min_items = 1, max_items = 100)]
    pub tables: Vec<ShareTableRef>,
}

/// A recipient to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateRecipient {
    /// Unique among the share's live recipients; same rules as share names.
    #[schema(min_length = 1, max_length = 63, pattern = "^[a-z][a-z0-9_]*$")]
    pub name: String,
    /// Lifetime of the profile's bearer token, 60 up to `sharing.max_recipient_ttl_secs`
    /// (default 30 days).
    #[schema(minimum = 60, maximum = 31_536_000)]
    #[serde(deserialize_with = "crate::extract::integral::u64")]
    pub ttl_seconds: u64,
}

crate::objects_only!(ShareTableRef, CreateShare, CreateRecipient);

/// A shared table.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharedTableView {
    /// Its zone.
    pub zone: Zone,
    /// Its name.
    pub name: String,
}

/// A share.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    /// Its id (the protocol's share id).
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its tables.
    pub tables: Vec<SharedTableView>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

impl From<&ShareRecord> for ShareView {
    fn from(s: &ShareRecord) -> Self {
        Self {
            id: s.id,
            name: s.name.to_string(),
            tables: s
                .tables
                .iter()
                .map(|t| SharedTableView {
                    zone: t.zone,
                    name: t.name.clone(),
                })
                .collect(),
            created_by: s.created_by.clone(),
            created_at: s.created_at,
        }
    }
}

/// A Delta Sharing profile file's content, exactly as the protocol names its fields.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Always 1.
    pub share_credentials_version: u32,
    /// The sharing server's URL.
    pub endpoint: String,
    /// The recipient's token; shown only here, once.
    pub bearer_token: String,
    /// When the token stops working (RFC 3339).
    pub expiration_time: DateTime<Utc>,
}

/// A new recipient and its profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedRecipient {
    /// Its id, for listing and revoking.
    pub recipient_id: Uuid,
    /// Its name.
    pub name: String,
    /// Save this as a `.share` file and open it with a Delta Sharing client.
    pub profile: Profile,
}

/// A recipient, without its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientView {
    /// Its id.
    pub recipient_id: Uuid,
    /// Its name.
    pub name: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When its token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
}

impl From<&RecipientRecord> for RecipientView {
    fn from(r: &RecipientRecord) -> Self {
        let status = if r.revoked_at.is_some() {
            "revoked"
        } else if r.expires_at <= Utc::now() {
            "expired"
        } else {
            "active"
        };
        Self {
            recipient_id: r.id,
            name: r.name.as_str().to_owned(),
            created_by: r.created_by.clone(),
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            status,
        }
    }
}

fn share_target(tenant: &TenantId, share: &str) -> String {
    format!("/v1/tenants/{tenant}/shares/{share}")
}

/// The caller may read every zone the share exposes: a share never hands out more than its
/// creator (or whoever adds a recipient) could read.
fn authorize_zones<'a>(
    caller: &Caller,
    tenant: &TenantId,
    zones: impl IntoIterator<Item = &'a Zone>,
) -> Result<(), ApiError> {
    for zone in zones {
        caller.authorize(Action::Zone(tenant, *zone, Access::Read))?;
    }
    Ok(())
}

async fn share_named(state: &AppState, tenant: &TenantId, name: &str) -> Result<ShareRecord, ApiError> {
    state
        .store
        .get_share(tenant, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no share {name}")))
}

/// The base URL clients reach this server at: configured, or from the request's `Host`.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = &state.config.sharing.public_url {
        return Ok(url.as_str().trim_end_matches('/').to_owned());
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']))
        .ok_or_else(|| {
            ApiError::BadRequest("no Host header to build URLs from; set sharing.public_url".to_owned())
        })?;
    // Behind a TLS-terminating proxy the request arrives as plain HTTP; the proxy's header
    // says what the client used. It only shapes URLs handed back to this same caller, so a
    // forged value misleads no one else (set `sharing.public_url` in production).
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .map(|p| p.trim().to_ascii_lowercase())
    {
        Some(p) if p == "https" => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}"))
}

/// Creates a share of tables the caller may read.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/shares", tag = "sharing", request_body = CreateShare,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "Created", body = ShareView),
        (status = 409, description = "The tenant already has a share of that name", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_share(
    State(state): State<AppState>,
    auth: Authorized<perm::TenantData>,
    ApiJson(body): ApiJson<CreateShare>,
) -> Result<Response, ApiError> {
    let tenant_id = auth.tenant()?.clone();
    let raw: Vec<RawTableRef> = body
        .tables
        .into_iter()
        .map(|t| RawTableRef {
            zone: t.zone,
            name: t.name,
        })
        .collect();
    // Zones first, so a refusal names the zone the caller cannot read.
    let zones: Vec<Zone> = raw.iter().filter_map(|t| Zone::parse(&t.zone)).collect();
    authorize_zones(&auth.caller, &tenant_id, &zones)?;
    auth.caller.authorize(Action::ManageShares(&tenant_id))?;
    let spec = validate_share(&body.name, &raw)?;
    load(&state, &tenant_id).await?;
    let mut tables = Vec::with_capacity(spec.tables.len());
    let mut violations = Violations::default();
    for (i, (zone, name)) in spec.tables.iter().enumerate() {
        match state
            .store
            .get_table(&tenant_id, *zone, name.as_str())
            .await?
            .filter(|t| t.status == TableStatus::Active)
        {
            Some(table) => tables.push(SharedTable {
                table_id: table.id,
                zone: *zone,
                name: name.to_string(),
            }),
            None => violations.push(Violation::new(
                format!("tables[{i}]"),
                format!("no table {}.{name}", zone.as_str()),
            )),
        }
    }
    violations.finish(|| ())?;
    let record = ShareRecord {
        id: Uuid::now_v7(),
        tenant: tenant_id.clone(),
        name: spec.name,
        tables,
        created_by: auth.caller.principal.subject.clone(),
        created_at: tenancy::now(),
    };
    let audit = event(
        &auth.caller,
        "share.create",
        &share_target(&tenant_id, record.name.as_str()),
        Some(tenant_id.as_str()),
        Outcome::Success,
    );
    state.store.insert_share(&record, &audit).await?;
    Ok(audited((StatusCode::CREATED, Json(ShareView::from(&record)))))
}

/// The tenant's shares, by name.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/shares", tag = "sharing",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "A page of shares", body = Page<ShareView>)))]
pub async fn list_shares(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<ShareView>>, ApiError> {
    let tenant = auth.tenant()?;
    let limit = pagination::limit(query.limit)?;
    let after = query
        .cursor
        .as_deref()
        .map(pagination::decode_cursor)
        .transpose()?;
    let rows = state
        .store
        .list_shares(tenant, after.as_deref(), limit + 1)
        .await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |s| s.name.to_string());
    Ok(Json(Page {
        items: rows.iter().map(ShareView::from).collect(),
        next_cursor,
    }))
}

/// One share.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/shares/{share}", tag = "sharing",
    params(("tenant" = String, Path, description = "Tenant id"), ("share" = String, Path, description = "Share name")),
    responses((status = 200, description = "The share", body = ShareView)))]
pub async fn get_share(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    Path((_tenant, share)): Path<(String, String)>,
) -> Result<Json<ShareView>, ApiError> {
    let record = share_named(&state, auth.tenant()?, &share).await?;
    Ok(Json(ShareView::from(&record)))
}

/// Deletes a share; every recipient's token stops working at once.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/shares/{share}", tag = "sharing",
    params(("tenant" = String, Path, description = "Tenant id"), ("share" = String, Path, description = "Share name")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete_share(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    Path((_tenant, share)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?;
    let record = share_named(&state, tenant, &share).await?;
    let audit = event(
        &auth.caller,
        "share.delete",
        &share_target(tenant, &share),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    if !state.store.delete_share(record.id, &audit).await? {
        return Err(ApiError::NotFound(format!("no share {share}")));
    }
    Ok(audited(StatusCode::NO_CONTENT))
}

/// Adds a recipient and returns its profile, the only time the token is shown.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/shares/{share}/recipients", tag = "sharing", request_body = CreateRecipient,
    params(("tenant" = String, Path, description = "Tenant id"), ("share" = String, Path, description = "Share name")),
    responses((status = 201, description = "Created", body = IssuedRecipient),
        (status = 409, description = "The share already has an unrevoked recipient of that name", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_recipient(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    Path((_tenant, share)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRecipient>,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?.clone();
    let mut violations = Violations::default();
    let name = violations.check(RecipientName::parse(&body.name).map_err(|m| Violation::new("name", m)));
    let max = state.config.sharing.max_recipient_ttl_secs;
    if !(60..=max).contains(&body.ttl_seconds) {
        violations.push(Violation::new("ttl_seconds", format!("must be 60 to {max}")));
    }
    let name = violations
        .finish(|| name)?
        .ok_or_else(|| ApiError::Internal("name checked".into()))?;
    let record = share_named(&state, &tenant, &share).await?;
    authorize_zones(&auth.caller, &tenant, record.tables.iter().map(|t| &t.zone))?;
    let endpoint = format!("{}/delta-sharing", public_base(&state, &headers)?);
    let token = new_bearer_token().map_err(ApiError::Internal)?;
    let created_at = tenancy::now();
    let ttl = chrono::Duration::seconds(i64::try_from(body.ttl_seconds).unwrap_or(i64::MAX));
    let recipient = RecipientRecord {
        id: Uuid::now_v7(),
        share_id: record.id,
        tenant: tenant.clone(),
        name,
        token_hash: token_hash(&token),
        created_by: auth.caller.principal.subject.clone(),
        created_at,
        expires_at: created_at + ttl,
        revoked_at: None,
    };
    let audit = event(
        &auth.caller,
        "recipient.create",
        &format!("{}/recipients/{}", share_target(&tenant, &share), recipient.id),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    state.store.insert_recipient(&recipient, &audit).await?;
    let issued = IssuedRecipient {
        recipient_id: recipient.id,
        name: recipient.name.as_str().to_owned(),
        profile: Profile {
            share_credentials_version: 1,
            endpoint,
            bearer_token: token,
            expiration_time: recipient.expires_at,
        },
    };
    Ok(audited((StatusCode::CREATED, Json(issued))))
}

/// The share's recipients, newest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/shares/{share}/recipients", tag = "sharing",
    params(("tenant" = String, Path, description = "Tenant id"), ("share" = String, Path, description = "Share name"), PageQuery),
    responses((status = 200, description = "A page of recipients", body = Page<RecipientView>)))]
pub async fn list_recipients(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    Path((_tenant, share)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<RecipientView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    let record = share_named(&state, auth.tenant()?, &share).await?;
    let rows = state.store.list_recipients(record.id, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |r| r.id.to_string());
    Ok(Json(Page {
        items: rows.iter().map(RecipientView::from).collect(),
        next_cursor,
    }))
}

/// Revokes a recipient: its token stops working with the next request.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/shares/{share}/recipients/{recipient_id}", tag = "sharing",
    params(("tenant" = String, Path, description = "Tenant id"), ("share" = String, Path, description = "Share name"),
        ("recipient_id" = Uuid, Path, description = "Recipient id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_recipient(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageShares>,
    Path((_tenant, share, recipient)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?;
    let not_found = || ApiError::NotFound(format!("no live recipient {recipient} of share {share}"));
    let id = Uuid::parse_str(&recipient).map_err(|_| not_found())?;
    let record = share_named(&state, tenant, &share).await?;
    let audit = event(
        &auth.caller,
        "recipient.revoke",
        &format!("{}/recipients/{id}", share_target(tenant, &share)),
        Some(tenant.as_str()),
        Outcome::Success,
    );
    if !state
        .store
        .revoke_recipient(record.id, id, tenancy::now(), &audit)
        .await?
    {
        return Err(not_found());
    }
    Ok(audited(StatusCode::NO_CONTENT))
}
