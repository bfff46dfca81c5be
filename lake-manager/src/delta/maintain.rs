//! Maintenance operations on one table: retention (a Delta DELETE by event time), compaction,
//! z-order, vacuum (full mode) and checkpoints, each reported in the run's metrics.

use std::num::NonZeroU64;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use tenancy::maintenance::{Operation, RunMetrics};
use tenancy::table::{ColumnType, TableSpec};

use super::tables::{open, snapshot};
use super::{DeltaError, DeltaSettings};

/// Vacuum never keeps less history than this unless a platform-admin overrides it.
pub const MIN_VACUUM_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// What a maintenance run needs besides the table itself.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The table's definition (event-time and z-order columns, target file size).
    pub spec: &'a TableSpec,
    /// The zone's retention, in days.
    pub retention_days: u32,
    /// How much removed-file history vacuum keeps.
    pub vacuum_retention: chrono::Duration,
    /// Set only by a platform-admin: lets vacuum keep less than 7 days.
    pub allow_short_vacuum: bool,
    /// The run's clock, for the retention cutoff.
    pub now: DateTime<Utc>,
}

/// Why an operation cannot run on this table, if it cannot (checked before anything runs).
pub fn refusal(operation: Operation, plan: &Plan<'_>) -> Option<String> {
    match operation {
        Operation::Retention if plan.spec.event_time_column.is_none() => {
            Some("retention not enforceable: no event_time_column".to_owned())
        }
        Operation::Zorder if plan.spec.z_order_by.is_empty() => {
            Some("zorder needs z_order_by columns; set them with PATCH first".to_owned())
        }
        Operation::Vacuum if plan.vacuum_retention < MIN_VACUUM_RETENTION && !plan.allow_short_vacuum => {
            Some(format!(
                "vacuum retention {} h is below the 168 h minimum; only a platform-admin override allows it",
                plan.vacuum_retention.num_hours()
            ))
        }
        _ => None,
    }
}

/// The predicate selecting rows older than the zone's retention.
fn expired_rows(
    spec: &TableSpec,
    cutoff: DateTime<Utc>,
) -> Result<deltalake::datafusion::prelude::Expr, DeltaError> {
    let column = spec
        .event_time_column
        .as_deref()
        .ok_or_else(|| DeltaError::Refused("retention not enforceable: no event_time_column".to_owned()))?;
    let kind = spec
        .columns
        .iter()
        .find(|c| c.name == column)
        .map(|c| c.column_type);
    let bound = match kind {
        Some(ColumnType::Timestamp) => {
            ScalarValue::TimestampMicrosecond(Some(cutoff.timestamp_micros()), Some("UTC".into()))
        }
        Some(ColumnType::Date) => {
            let days = cutoff
                .date_naive()
                .signed_duration_since(chrono::NaiveDate::default())
                .num_days();
            ScalarValue::Date32(Some(i32::try_from(days).unwrap_or(i32::MAX)))
        }
        _ => {
            return Err(DeltaError::Refused(format!(
                "event_time_column {column} is not a timestamp or date column"
            )));
        }
    };
    Ok(col(column).lt(lit(bound)))
}

/// Runs `operations` in order on the table at `root`. The first failing operation stops the
/// run; the metrics of those before it are in the error's run record, not lost.
pub async fn run(
    settings: &DeltaSettings,
    root: &str,
    operations: &[Operation],
    plan: &Plan<'_>,
    metrics: &mut RunMetrics,
) -> Result<(), DeltaError> {
    for op in operations {
        if let Some(why) = refusal(*op, plan) {
            return Err(DeltaError::Refused(why));
        }
    }
    for op in operations {
        let table = open(settings, root).await?;
        if matches!(op, Operation::Retention | Operation::Compact | Operation::Zorder) {
            super::contained::refuse_outside_files(&table)?;
        }
        match op {
            Operation::Retention => retention(table, plan, metrics).await?,
            Operation::Compact => optimize(table, OptimizeType::Compact, plan, metrics).await?,
            Operation::Zorder => {
                let columns = plan.spec.z_order_by.clone();
                optimize(table, OptimizeType::ZOrder(columns), plan, metrics).await?;
            }
            Operation::Vacuum => vacuum(table, plan, metrics).await?,
            Operation::Checkpoint => {
                deltalake::checkpoints::create_checkpoint(&table, None)
                    .await
                    .map_err(|e| DeltaError::delta("checkpoint", root, e))?;
                metrics.checkpoint_version = table.version().map(super::tables::version_i64);
            }
        }
    }
    Ok(())
}

async fn retention(table: DeltaTable, plan: &Plan<'_>, metrics: &mut RunMetrics) -> Result<(), DeltaError> {
    let location = table.table_url().to_string();
    let cutoff = plan.now - chrono::Duration::days(i64::from(plan.retention_days));
    let predicate = expired_rows(plan.spec, cutoff)?;
    let before = snapshot(&table, 0)?.num_rows;
    let (table, deleted) = table
        .delete()
        .with_predicate(predicate)
        .with_commit_properties(super::tables::maintenance_commit_properties())
        .await
        .map_err(|e| DeltaError::delta("retention delete", &location, e))?;
    let after = snapshot(&table, 0)?.num_rows;
    metrics.files_added += deleted.num_added_files as u64;
    metrics.files_removed += deleted.num_removed_files as u64;
    // Whole-file removals report no row count; the statistics before and after give it exactly.
    metrics.rows_deleted += match (deleted.num_deleted_rows, before, after) {
        (Some(n), _, _) => n as u64,
        (None, Some(b), Some(a)) => b.saturating_sub(a),
        (None, _, _) => {
            metrics
                .notes
                .push("rows deleted unknown: some files have no row statistics".to_owned());
            0
        }
    };
    metrics
        .notes
        .push(format!("retention cutoff {}", cutoff.to_rfc3339()));
    Ok(())
}

async fn optimize(
    table: DeltaTable,
    kind: OptimizeType,
    plan: &Plan<'_>,
    metrics: &mut RunMetrics,
) -> Result<(), DeltaError> {
    let location = table.table_url().to_string();
    let target = NonZeroU64::new(plan.spec.target_file_size_bytes).unwrap_or(NonZeroU64::MIN);
    let (_, done) = table
        .optimize()
        .with_type(kind)
        .with_commit_properties(super::tables::maintenance_commit_properties())
        .with_target_size(target)
        .await
        .map_err(|e| DeltaError::delta("optimize", &location, e))?;
    metrics.files_added += done.num_files_added;
    metrics.files_removed += done.num_files_removed;
    metrics.bytes_added += u64::try_from(done.files_added.total_size).unwrap_or(0);
    metrics.bytes_removed += u64::try_from(done.files_removed.total_size).unwrap_or(0);
    Ok(())
}

async fn vacuum(table: DeltaTable, plan: &Plan<'_>, metrics: &mut RunMetrics) -> Result<(), DeltaError> {
    let location = table.table_url().to_string();
    let (_, done) = table
        .vacuum()
        .with_retention_period(plan.vacuum_retention)
        .with_commit_properties(super::tables::maintenance_commit_properties())
        .with_enforce_retention_duration(!plan.allow_short_vacuum)
        // Full mode also removes files no commit references: leftovers of failed writers. Below
        // the 7-day floor (platform-admin override) it would also take files of writers still
        // committing, so short retentions only remove what the log has removed.
        .with_mode(if plan.vacuum_retention < MIN_VACUUM_RETENTION {
            VacuumMode::Lite
        } else {
            VacuumMode::Full
        })
        .await
        .map_err(|e| DeltaError::delta("vacuum", &location, e))?;
    metrics.files_vacuumed += done.files_deleted.len() as u64;
    Ok(())
}
