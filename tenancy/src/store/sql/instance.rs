//! The installation's identity, and the round trip readiness checks make.

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{Store, uid, uuid};
use crate::store::{Instance, StoreError};

impl Store {
    /// The installation identity, created by the first call against this database; replicas
    /// starting together agree on one.
    pub(crate) async fn instance(&self) -> Result<Instance, StoreError> {
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

    /// Round-trips a trivial query.
    pub(crate) async fn round_trip(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
