//! The store as a whole: migrations, health, identity, leadership. What differs per backend
//! (the migration lock, the leadership lock, where applied versions are read) is an inherent
//! method of each backend's store, called from here.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{BACKEND, Store, uid, uuid};
use crate::store::{Backend, Instance, Leadership, MetadataStore, MigrationReport, PoolStats, StoreError};

#[async_trait]
impl MetadataStore for Store {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.migrate_locked().await
    }

    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.applied().await?.into_iter().max())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats::of(&self.pool)
    }

    async fn ensure_instance(&self) -> Result<Instance, StoreError> {
        sqlx::query(
            "INSERT INTO lakeplane_instance (singleton, instance_id, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (singleton) DO NOTHING",
        )
        .bind(uid(Uuid::now_v7()))
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT instance_id, created_at FROM lakeplane_instance WHERE singleton = 1")
            .fetch_one(&self.pool)
            .await?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        Ok(Instance {
            id: uuid(&row, "instance_id")?,
            created_at,
        })
    }

    async fn close(&self) {
        self.close_connections().await;
    }

    async fn try_lead(&self) -> Result<Option<Leadership>, StoreError> {
        self.lead().await
    }
}
