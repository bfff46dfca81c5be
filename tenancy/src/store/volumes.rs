//! Written volumes: daily bytes per tenant, and the Delta version of each table up to which
//! its commits are counted.

use async_trait::async_trait;
use chrono::NaiveDate;
use uuid::Uuid;

use super::StoreError;
use crate::tenant::TenantId;
use crate::volume::Written;

/// Daily volumes and their collector's watermarks.
#[async_trait]
pub trait VolumeStore: Send + Sync {
    /// The last version of the table whose commits are counted; `None` before its first count.
    async fn volume_watermark(&self, table: Uuid) -> Result<Option<i64>, StoreError>;

    /// Adds one table's counted commits to its tenant's daily volumes and moves the table's
    /// watermark from `from` to `to`, in one transaction. When the watermark is no longer
    /// `from` (another collector counted these commits meanwhile), nothing is added and the
    /// answer is `false`: each commit is counted once.
    async fn add_volume(
        &self,
        tenant: &TenantId,
        table: Uuid,
        from: Option<i64>,
        to: i64,
        days: &[(NaiveDate, Written)],
    ) -> Result<bool, StoreError>;

    /// Sets every tenant's 30-day volume from its daily rows as of `today`, and drops daily
    /// rows older than the 90 kept.
    async fn refresh_volumes(&self, today: NaiveDate) -> Result<(), StoreError>;

    /// A tenant's daily volumes from `since` on, oldest first.
    async fn daily_volumes(
        &self,
        tenant: &TenantId,
        since: NaiveDate,
    ) -> Result<Vec<(NaiveDate, Written)>, StoreError>;
}
