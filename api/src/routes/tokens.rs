//! A tenant's API tokens: issue, list and revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenancy::audit::Outcome;
use tenancy::pagination;
use tenancy::policy::Action;
use tenancy::role::Role;
use tenancy::store::TokenRecord;
use tenancy::token::{Claims, MIN_TTL_SECS};
use tenancy::validation::{Violation, Violations};
use utoipa::ToSchema;
use uuid::Uuid;

use super::views::{Page, PageQuery};
use crate::audit::{audited, event};
use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;

/// A token to issue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateToken {
    /// Who the token is for, 1 to 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$"
    )]
    pub subject: String,
    /// A tenant role.
    pub role: Role,
    /// Lifetime in seconds, 60 up to `auth.max_token_ttl_secs` (default 30 days).
    #[schema(minimum = 60, maximum = 2_592_000)]
    #[serde(deserialize_with = "crate::extract::integral::u64")]
    pub ttl_seconds: u64,
    /// Groups the token carries, for grants to `group:NAME`: at most 64 names of 1 to 256
    /// characters.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub groups: Vec<String>,
}

/// A freshly issued token. The token itself is shown only here, once.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    /// The bearer token.
    pub token: String,
    /// Its id, for listing and revoking.
    pub token_id: Uuid,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// An issued token, without the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// The id.
    pub token_id: Uuid,
    /// Its subject.
    pub subject: String,
    /// Its role.
    pub role: Role,
    /// Who issued it.
    pub issued_by: String,
    /// When.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The groups it carries.
    pub groups: Vec<String>,
    /// `active`, `revoked` or `expired`.
    pub status: &'static str,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at <= Utc::now() {
            "expired"
        } else {
            "active"
        };
        Self {
            token_id: t.id,
            subject: t.subject.clone(),
            role: t.role,
            issued_by: t.issued_by.clone(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            groups: t.groups.clone(),
            status,
        }
    }
}

fn validate_subject(subject: &str) -> Result<String, Violation> {
    if subject.is_empty() || subject.chars().count() > 200 {
        return Err(Violation::new("subject", "must be 1 to 200 characters"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Violation::new(
            "subject",
            "must not contain whitespace or control characters",
        ));
    }
    Ok(subject.to_owned())
}

/// Issues a token for the tenant, with a role the caller could use itself. 409
/// `quota-exceeded` when the tenant already holds `auth.max_live_tokens_per_tenant` live
/// tokens: each token has a rate budget of its own.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tokens", request_body = CreateToken,
    params(("tenant" = String, Path, description = "Tenant id")),
    responses((status = 201, description = "Issued", body = IssuedToken),
        (status = 409, description = "The tenant holds its quota of live tokens", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageTokens>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?.clone();
    auth.caller.authorize(Action::IssueToken(&tenant, body.role))?;
    let mut violations = Violations::default();
    let subject = violations.check(validate_subject(&body.subject));
    let max = state.config.auth.max_token_ttl_secs;
    if !(MIN_TTL_SECS..=max).contains(&body.ttl_seconds) {
        violations.push(Violation::new(
            "ttl_seconds",
            format!("must be {MIN_TTL_SECS} to {max}"),
        ));
    }
    if let Err((index, message)) = tenancy::grants::check_groups(&body.groups) {
        let field = index.map_or_else(|| "groups".to_owned(), |i| format!("groups[{i}]"));
        violations.push(Violation::new(field, message));
    }
    let subject = violations.finish(|| subject)?.unwrap_or_default();
    if state.store.get_tenant(&tenant).await?.is_none() {
        return Err(ApiError::NotFound(format!("no tenant {tenant}")));
    }
    let issued_at = tenancy::now();
    let ttl = chrono::Duration::seconds(i64::try_from(body.ttl_seconds).unwrap_or(i64::MAX));
    let record = TokenRecord {
        id: Uuid::now_v7(),
        tenant: Some(tenant.clone()),
        subject,
        role: body.role,
        issued_by: auth.caller.principal.subject.clone(),
        issued_at,
        expires_at: issued_at + ttl,
        revoked_at: None,
        groups: body.groups,
    };
    let settings = state.config.auth.token_settings();
    let mut claims = Claims::new(
        &record.subject,
        record.role,
        Some(&tenant),
        record.id,
        issued_at,
        record.expires_at,
        &settings,
    );
    claims.groups.clone_from(&record.groups);
    let token = state
        .signer
        .sign(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let target = format!("/v1/tenants/{tenant}/tokens/{}", record.id);
    let audit = event(
        &auth.caller,
        "token.create",
        &target,
        Some(tenant.as_str()),
        Outcome::Success,
    );
    state
        .store
        .insert_token(
            &record,
            Some(state.config.auth.max_live_tokens_per_tenant),
            &audit,
        )
        .await?;
    let issued = IssuedToken {
        token,
        token_id: record.id,
        expires_at: record.expires_at,
    };
    Ok(audited((StatusCode::CREATED, Json(issued))))
}

/// The tenant's issued tokens, newest first, without secrets.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/tokens", tag = "tokens",
    params(("tenant" = String, Path, description = "Tenant id"), PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<TokenView>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageTokens>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Page<TokenView>>, ApiError> {
    let tenant = auth.tenant()?;
    let limit = pagination::limit(query.limit)?;
    let before = pagination::decode_uuid_cursor(query.cursor.as_deref())?;
    if state.store.get_tenant(tenant).await?.is_none() {
        return Err(ApiError::NotFound(format!("no tenant {tenant}")));
    }
    let rows = state.store.list_tokens(tenant, before, limit + 1).await?;
    let (rows, next_cursor) = pagination::page(rows, limit, |t| t.id.to_string());
    Ok(Json(Page {
        items: rows.iter().map(TokenView::from).collect(),
        next_cursor,
    }))
}

/// Revokes a token; it fails with 401 from then on. Revoking twice is harmless.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{token_id}", tag = "tokens",
    params(("tenant" = String, Path, description = "Tenant id"), ("token_id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Authorized<perm::ManageTokens>,
    Path(params): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = auth.tenant()?;
    let token_id = params.1;
    let not_found = || ApiError::NotFound(format!("no token {token_id}"));
    let id = Uuid::parse_str(&token_id).map_err(|_| not_found())?;
    let target = format!("/v1/tenants/{tenant}/tokens/{id}");
    let audit = event(
        &auth.caller,
        "token.revoke",
        &target,
        Some(tenant.as_str()),
        Outcome::Success,
    );
    let revoked = state
        .store
        .revoke_token(tenant, id, tenancy::now(), &audit)
        .await?
        .ok_or_else(not_found)?;
    state.revocations.insert(id, revoked.expires_at).await;
    Ok(audited(StatusCode::NO_CONTENT))
}

crate::objects_only!(CreateToken);

/// Revokes any token by id, including platform-admin tokens made with the CLI.
#[utoipa::path(delete, path = "/v1/admin/tokens/{token_id}", tag = "admin",
    params(("token_id" = String, Path, description = "Token id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke_any_token(
    State(state): State<AppState>,
    auth: Authorized<perm::AdminTokens>,
    Path(token_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no token {token_id}"));
    let id = Uuid::parse_str(&token_id).map_err(|_| not_found())?;
    let target = format!("/v1/admin/tokens/{id}");
    let audit = event(&auth.caller, "token.revoke", &target, None, Outcome::Success);
    let revoked = state
        .store
        .revoke_any_token(id, tenancy::now(), &audit)
        .await?
        .ok_or_else(not_found)?;
    state.revocations.insert(id, revoked.expires_at).await;
    Ok(audited(StatusCode::NO_CONTENT))
}
