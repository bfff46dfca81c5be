//! Delta Sharing shares and recipients.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::role::Zone;
use crate::tenant::TenantId;

/// One table of a share, pinned by id so a table deleted and created again under the same
/// name does not silently join the share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SharedTable {
    /// The table's id.
    pub table_id: Uuid,
    /// Its zone (the Delta Sharing schema).
    pub zone: Zone,
    /// Its name.
    pub name: String,
}

/// A share: a named set of one tenant's tables, served through Delta Sharing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    /// Stable id (UUIDv7); also the protocol's share id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant: TenantId,
    /// Unique within the tenant.
    pub name: crate::share::ShareName,
    /// The shared tables.
    pub tables: Vec<SharedTable>,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A recipient of a share: one bearer token, stored only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRecord {
    /// Stable id (UUIDv7).
    pub id: Uuid,
    /// The share it reads.
    pub share_id: Uuid,
    /// The share's tenant.
    pub tenant: TenantId,
    /// Unique among the share's unrevoked recipients.
    pub name: crate::share::RecipientName,
    /// SHA-256 of the bearer token.
    pub token_hash: String,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When its token stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Shares and their recipients.
#[async_trait]
pub trait ShareStore: Send + Sync {
    /// Inserts a share with its audit event; `Conflict` when the tenant has one of that name.
    async fn insert_share(&self, share: &ShareRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// One share of a tenant by name.
    async fn get_share(&self, tenant: &TenantId, name: &str) -> Result<Option<ShareRecord>, StoreError>;
    /// One share by id.
    async fn get_share_by_id(&self, id: Uuid) -> Result<Option<ShareRecord>, StoreError>;
    /// A tenant's shares by name, after the cursor.
    async fn list_shares(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ShareRecord>, StoreError>;
    /// Deletes a share and all its recipients (their tokens stop at once); false if absent.
    async fn delete_share(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
    /// Inserts a recipient with its audit event; `Conflict` when an unrevoked one has the name.
    async fn insert_recipient(
        &self,
        recipient: &RecipientRecord,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// A share's recipients, newest first, before the cursor id.
    async fn list_recipients(
        &self,
        share: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<RecipientRecord>, StoreError>;
    /// Revokes an unrevoked recipient of the share; false if absent or already revoked.
    async fn revoke_recipient(
        &self,
        share: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
    /// One recipient by id, revoked or not.
    async fn get_recipient(&self, id: Uuid) -> Result<Option<RecipientRecord>, StoreError>;
    /// The recipient holding the token with this hash, revoked or not.
    async fn recipient_by_token(&self, token_hash: &str) -> Result<Option<RecipientRecord>, StoreError>;
}
