//! Issued API tokens (never the tokens themselves).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::role::Role;
use crate::tenant::TenantId;

/// An API token Lakeplane issued (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    /// The token's `jti`.
    pub id: Uuid,
    /// Its tenant; `None` for platform-admin tokens.
    pub tenant: Option<TenantId>,
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
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The groups it carries.
    pub groups: Vec<String>,
}

/// A revoked token, as the revocation list keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// The token's id.
    pub id: Uuid,
    /// When it was revoked.
    pub revoked_at: DateTime<Utc>,
    /// When it would have expired.
    pub expires_at: DateTime<Utc>,
}

/// Issued API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Records an issued token. With `max_live`, a tenant's token is refused
    /// ([`StoreError::Quota`]) when the tenant already has that many unrevoked, unexpired ones.
    async fn insert_token(
        &self,
        token: &TokenRecord,
        max_live: Option<u32>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A tenant's tokens, newest first, older than `before`.
    async fn list_tokens(
        &self,
        tenant: &TenantId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<TokenRecord>, StoreError>;
    /// Revokes one of a tenant's tokens (idempotent); `None` when it is not that tenant's.
    async fn revoke_token(
        &self,
        tenant: &TenantId,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Revokes any token by id, whatever its tenant (platform-admin tokens have none).
    async fn revoke_any_token(
        &self,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Revoked tokens expiring after `not_before` (now minus the verification leeway, so a
    /// revoked token never becomes valid again inside the leeway); with `revoked_since`, only
    /// those revoked at or after it (an incremental reload).
    async fn revoked_tokens(
        &self,
        not_before: DateTime<Utc>,
        revoked_since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Revocation>, StoreError>;
}
