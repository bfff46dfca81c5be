//! What this installation is: identity, version and backends.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Authorized, perm};
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

/// The installation and the backends it runs on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Info {
    /// Always `lakeplane`.
    pub service: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The installation's stable id, shared by all replicas on one database.
    pub instance_id: Uuid,
    /// When the installation was first started.
    pub instance_created_at: DateTime<Utc>,
    /// When this process started.
    pub started_at: DateTime<Utc>,
    /// The metadata database.
    pub database: DatabaseInfo,
    /// The lake's object storage.
    pub storage: StorageInfo,
}

/// The metadata database as seen now.
#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseInfo {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The newest applied migration.
    pub schema_version: Option<i64>,
}

/// The lake's object storage.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageInfo {
    /// `local` or `s3`.
    pub kind: &'static str,
    /// Where the lake starts.
    pub root_uri: String,
}

/// Describes this installation (platform-admin). Reads the schema version live, so it fails with 503 when the
/// metadata database is away.
#[utoipa::path(get, path = "/v1/info", tag = "platform", responses(
    (status = 200, description = "The installation", body = Info),
    (status = 503, description = "The metadata database is unavailable", body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_info(
    State(state): State<AppState>,
    _auth: Authorized<perm::ReadPlatform>,
) -> Result<Json<Info>, ApiError> {
    let schema_version = state.store.schema_version().await?;
    Ok(Json(Info {
        service: "lakeplane",
        version: env!("CARGO_PKG_VERSION"),
        instance_id: state.instance.id,
        instance_created_at: state.instance.created_at,
        started_at: state.started_at,
        database: DatabaseInfo {
            backend: state.store.backend().as_str(),
            schema_version,
        },
        storage: StorageInfo {
            kind: state.storage.kind().as_str(),
            root_uri: state.storage.root_uri(),
        },
    }))
}
