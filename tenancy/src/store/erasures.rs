//! Data subject erasures and their progress.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::erasure::{ErasureStatus, ErasureTable, Subject};
use crate::tenant::TenantId;

/// An erasure as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    /// Stable id (UUIDv7).
    pub id: Uuid,
    /// The tenant whose lake it erases from.
    pub tenant: TenantId,
    /// Where it is.
    pub status: ErasureStatus,
    /// Why it was asked for.
    pub reason: String,
    /// Who asked (a token's subject).
    pub requested_by: String,
    /// This erasure's salt for `subject_hashes`, hex.
    pub salt: String,
    /// Per subject, one salted hash per identifier: all that is kept of the subjects.
    pub subject_hashes: Vec<Vec<String>>,
    /// The raw identifiers, kept only until every table's delete is done, then `None`.
    pub pending_subjects: Option<Vec<Subject>>,
    /// Each covered table's part, with its progress.
    pub tables: Vec<ErasureTable>,
    /// Tables without subject columns when it was asked (`zone/name`): not reached.
    pub not_covered: Vec<String>,
    /// Old locations of a placement migration in its grace period that the erasure removed
    /// ahead of time, since they still held the subjects' rows.
    pub old_locations: Vec<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it must be complete.
    pub deadline: DateTime<Utc>,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// Last progress.
    pub updated_at: DateTime<Utc>,
    /// When it completed.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Erasures.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Inserts an erasure with its audit event.
    async fn insert_erasure(&self, erasure: &ErasureRecord, audit: &AuditEvent) -> Result<(), StoreError>;
    /// One erasure of a tenant.
    async fn get_erasure(&self, tenant: &TenantId, id: Uuid) -> Result<Option<ErasureRecord>, StoreError>;
    /// A tenant's erasures, newest first, before the cursor id.
    async fn list_erasures(
        &self,
        tenant: &TenantId,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<ErasureRecord>, StoreError>;
    /// Every erasure not completed or failed, oldest first: the executor's work.
    async fn unfinished_erasures(&self) -> Result<Vec<ErasureRecord>, StoreError>;
    /// Writes the erasure's progress if it is still as `seen` was written (same status and
    /// `updated_at`), so two executors cannot both move it; false when it moved meanwhile.
    async fn update_erasure(&self, erasure: &ErasureRecord, seen: &ErasureRecord)
    -> Result<bool, StoreError>;
    /// Raises the table's erasure floor to `version` (never lowers it): versions before it are
    /// refused to readers from then on.
    async fn raise_erasure_floor(
        &self,
        tenant: &TenantId,
        table: Uuid,
        version: i64,
        erasure: Uuid,
    ) -> Result<(), StoreError>;
    /// The oldest version of the table that may be read, if an erasure set one.
    async fn erasure_floor(&self, table: Uuid) -> Result<Option<i64>, StoreError>;
}
