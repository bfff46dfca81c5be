//! The parts of `/v1` answers the pages show. Fields a page does not show are not named, so
//! these follow the API rather than restate it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A cursor-paginated list.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// This page.
    pub items: Vec<T>,
    /// The next page's cursor.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `TenantView`.
#[derive(Debug, Deserialize)]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
    pub tier: String,
    pub isolation: String,
    pub status: String,
    #[serde(default)]
    pub status_reason: Option<String>,
    pub placement: Placement,
    pub created_at: String,
}

/// `PlacementView`.
#[derive(Debug, Deserialize)]
pub struct Placement {
    pub kind: String,
    pub bucket: String,
    pub prefix: String,
    pub reason: String,
    #[serde(default)]
    pub shard: Option<u32>,
}

/// `ZonePolicyView`.
#[derive(Debug, Deserialize)]
pub struct ZonePolicy {
    pub retention_days: i64,
    #[serde(default)]
    pub transitions: Vec<Transition>,
    pub source: String,
    pub min_retention_days: i64,
    pub max_retention_days: i64,
}

/// A tiering step.
#[derive(Debug, Deserialize)]
pub struct Transition {
    pub after_days: i64,
    pub storage_class: String,
}

/// `UsageView`.
#[derive(Debug, Deserialize)]
pub struct Usage {
    pub zones: BTreeMap<String, ZoneUsage>,
    pub estimated_monthly_cost_usd: f64,
    pub prices: Prices,
    pub volume: Volume,
    #[serde(default)]
    pub excludes: Vec<String>,
}

/// A zone's usage.
#[derive(Debug, Deserialize)]
pub struct ZoneUsage {
    pub bytes: u64,
    pub classes: Vec<ClassUsage>,
}

/// One storage class in a zone.
#[derive(Debug, Deserialize)]
pub struct ClassUsage {
    pub storage_class: String,
    pub bytes: u64,
    pub objects: u64,
}

/// The prices estimates use.
#[derive(Debug, Deserialize)]
pub struct Prices {
    pub standard_gb_month: f64,
}

/// Written volume.
#[derive(Debug, Deserialize)]
pub struct Volume {
    pub bytes_30d: u64,
    pub daily: Vec<DailyVolume>,
}

/// One day's writes.
#[derive(Debug, Deserialize)]
pub struct DailyVolume {
    pub day: String,
    pub ingest_bytes: u64,
    pub outside_bytes: u64,
}

/// `TableView`, and `TableDetail`'s extra fields when read alone.
#[derive(Debug, Deserialize)]
pub struct Table {
    pub zone: String,
    pub name: String,
    pub location: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub partition_by: Vec<String>,
    #[serde(default)]
    pub z_order_by: Vec<String>,
    pub target_file_size_bytes: u64,
    #[serde(default)]
    pub version: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub num_files: Option<u64>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub small_files: Option<u64>,
    #[serde(default)]
    pub small_file_threshold_bytes: Option<u64>,
    #[serde(default)]
    pub num_rows: Option<u64>,
    #[serde(default)]
    pub file_sizes: Vec<SizeBucket>,
}

/// One bucket of a table's file-size histogram.
#[derive(Debug, Deserialize)]
pub struct SizeBucket {
    #[serde(default)]
    pub up_to_bytes: Option<u64>,
    pub files: u64,
}

/// A column.
#[derive(Debug, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub nullable: bool,
}

/// A maintenance run.
#[derive(Debug, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub status: String,
    pub operations: Vec<String>,
    pub requested_by: String,
    pub created_at: String,
    #[serde(default)]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub metrics: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A Delta commit.
#[derive(Debug, Deserialize)]
pub struct Commit {
    pub version: i64,
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub operation: Option<String>,
    #[serde(default)]
    pub operation_metrics: serde_json::Map<String, serde_json::Value>,
}

/// `StreamView`.
#[derive(Debug, Deserialize)]
pub struct Stream {
    pub name: String,
    pub table: serde_json::Value,
    pub status: String,
    pub source: serde_json::Value,
    /// Records behind, by partition.
    #[serde(default)]
    pub lag: Option<std::collections::BTreeMap<String, i64>>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub ingest_rate: Option<IngestRate>,
}

/// `IngestRateView`.
#[derive(Debug, Deserialize)]
pub struct IngestRate {
    pub rows: u64,
    pub window_seconds: f64,
    pub rows_per_second: f64,
}

/// `WorkerView`.
#[derive(Debug, Deserialize)]
pub struct Worker {
    pub id: String,
    pub kind: String,
    pub tenant: String,
    pub state: String,
    pub restarts: u64,
    pub failures: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub updated_at: String,
}

/// `TokenView`.
#[derive(Debug, Deserialize)]
pub struct Token {
    pub token_id: String,
    pub subject: String,
    pub role: String,
    pub issued_by: String,
    pub issued_at: String,
    pub expires_at: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub status: String,
}

/// `IssuedToken`.
#[derive(Debug, Deserialize)]
pub struct Issued {
    pub token: String,
    pub token_id: String,
    pub expires_at: String,
}

/// `AuditView`.
#[derive(Debug, Deserialize)]
pub struct AuditEvent {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub occurrences: u64,
    #[serde(default)]
    pub role: Option<String>,
}

/// `BucketView`.
#[derive(Debug, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub shard: Option<u32>,
    #[serde(default)]
    pub tenant: Option<String>,
    pub tenants: u64,
    #[serde(default)]
    pub capacity: Option<u64>,
    pub lifecycle_rules: u64,
    pub enforced: bool,
    pub drift: bool,
}

/// `RebalanceReport`.
#[derive(Debug, Deserialize)]
pub struct Rebalance {
    pub promotions: Vec<Move>,
    pub demotions: Vec<Move>,
    pub dry_run: bool,
    pub skipped: Vec<Skipped>,
}

/// One placement change.
#[derive(Debug, Deserialize)]
pub struct Move {
    pub tenant: String,
    pub volume_30d_bytes: u64,
    pub to: MoveTarget,
}

/// Where a move goes.
#[derive(Debug, Deserialize)]
pub struct MoveTarget {
    pub reason: String,
}

/// A tenant a rebalance leaves.
#[derive(Debug, Deserialize)]
pub struct Skipped {
    pub tenant: String,
    pub reason: String,
}

/// `RunAccepted`.
#[derive(Debug, Deserialize)]
pub struct RunAccepted {
    pub run_id: String,
}

/// `RankingView`.
#[derive(Debug, Deserialize)]
pub struct Ranking {
    pub tenants: u64,
    pub with_volume: u64,
    pub dedicated_fraction: f64,
    pub top_count: u64,
    pub cutoff_bytes: u64,
    pub points: Vec<RankPoint>,
}

/// One rank.
#[derive(Debug, Deserialize)]
pub struct RankPoint {
    pub rank: u64,
    pub volume_30d_bytes: u64,
}
