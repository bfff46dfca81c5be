//! The audit log.

use async_trait::async_trait;

use super::StoreError;
use crate::audit::{AuditEvent, AuditFilter};

/// The append-only audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// Events matching the filter, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
}
