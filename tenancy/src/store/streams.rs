//! Ingestion streams.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::audit::AuditEvent;
use crate::tenant::TenantId;

/// An ingestion stream the plane manages.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Stable id (UUIDv7); Kafka positions in the table's log are keyed by it.
    pub id: Uuid,
    /// The owning tenant.
    pub tenant: TenantId,
    /// Stream name.
    pub name: crate::stream::StreamName,
    /// The bronze table it writes.
    pub table_id: Uuid,
    /// That table's name.
    pub table_name: String,
    /// The source, with secret properties sealed.
    pub source: crate::stream::StreamSource,
    /// Default error handling.
    pub on_error: crate::stream::OnError,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// Ingestion streams.
#[async_trait]
pub trait StreamStore: Send + Sync {
    /// Records a new stream with its audit event, unless the name is taken (`Conflict`) or the
    /// tenant already has `max_streams` streams (`Quota`), both checked in one transaction.
    async fn insert_stream(
        &self,
        stream: &StreamRecord,
        max_streams: u32,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;
    /// One stream of a tenant.
    async fn get_stream(&self, tenant: &TenantId, name: &str) -> Result<Option<StreamRecord>, StoreError>;
    /// A stream by id.
    async fn get_stream_by_id(&self, id: Uuid) -> Result<Option<StreamRecord>, StoreError>;
    /// A tenant's streams ordered by name, after the `after` name.
    async fn list_streams(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// Every stream of every tenant (for starting the Kafka workers).
    async fn all_streams(&self) -> Result<Vec<StreamRecord>, StoreError>;
    /// Every Kafka stream as (tenant, stream id), ordered by stream id: the reconciler's
    /// ingest input. The source type is picked out in SQL, so no source is decoded.
    async fn kafka_streams(&self) -> Result<Vec<(TenantId, Uuid)>, StoreError>;
    /// How many streams write the table (a table with streams cannot be deleted).
    async fn streams_on_table(&self, table_id: Uuid) -> Result<u32, StoreError>;
    /// Deletes a stream with its audit event; false when it was already gone.
    async fn delete_stream(&self, id: Uuid, audit: &AuditEvent) -> Result<bool, StoreError>;
}
