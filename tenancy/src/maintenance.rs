//! Maintenance of Delta tables: the operations, their runs, and the pure rule deciding which
//! operations are due on a table.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{Violation, Violations};

/// A maintenance operation. Variants are declared, and ordered, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Deletes rows older than the zone's retention, by event time.
    Retention,
    /// Bin-packs small files into files of the target size.
    Compact,
    /// Rewrites files clustered by the z-order columns, bin-packing as it goes.
    Zorder,
    /// Deletes files the log no longer references, once past the retention window.
    Vacuum,
    /// Writes a checkpoint so readers need not replay the whole log.
    Checkpoint,
}

impl Operation {
    /// Every operation, in execution order.
    pub const ALL: [Operation; 5] = [
        Operation::Retention,
        Operation::Compact,
        Operation::Zorder,
        Operation::Vacuum,
        Operation::Checkpoint,
    ];

    /// The lowercase name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Retention => "retention",
            Operation::Compact => "compact",
            Operation::Zorder => "zorder",
            Operation::Vacuum => "vacuum",
            Operation::Checkpoint => "checkpoint",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == raw)
    }
}

/// Options of a run beyond its operations, stored with it so whichever process executes the
/// run applies what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// How much removed-file history vacuum keeps, in hours.
    pub vacuum_retention_hours: u64,
    /// Platform-admin override allowing vacuum retention below 168 hours.
    pub allow_short_vacuum: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            vacuum_retention_hours: 168,
            allow_short_vacuum: false,
        }
    }
}

impl RunOptions {
    /// The vacuum retention as a duration (capped at 100 years).
    pub fn vacuum_retention(&self) -> chrono::Duration {
        let hours = i64::try_from(self.vacuum_retention_hours).unwrap_or(i64::MAX);
        chrono::Duration::hours(hours.min(24 * 365 * 100))
    }
}

/// Where a maintenance run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Recorded, not started.
    Queued,
    /// In progress.
    Running,
    /// Ended without error.
    Succeeded,
    /// Ended with an error.
    Failed,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
    ];

    /// The lowercase name used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Validates requested operation names and returns them in execution order, whatever the
/// order asked for:
///
/// 1. `retention`, first, so the files its DELETE rewrites get compacted;
/// 2. `compact`, then 3. `zorder`;
/// 4. `vacuum`, after the rewrites, so the files they replaced are removed too (once past the
///    retention window);
/// 5. `checkpoint`, last, so it covers the final version.
pub fn parse_operations(raw: &[String]) -> Result<Vec<Operation>, Vec<Violation>> {
    let mut violations = Violations::default();
    if raw.is_empty() {
        violations.push(Violation::new("operations", "list at least one operation"));
    }
    let mut seen = HashSet::new();
    let mut operations = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let field = format!("operations[{i}]");
        match Operation::parse(name) {
            None => {
                let known: Vec<&str> = Operation::ALL.iter().map(|op| op.as_str()).collect();
                violations.push(Violation::new(
                    field,
                    format!(
                        "unknown operation {name:?}; known operations: {}",
                        known.join(", ")
                    ),
                ));
            }
            Some(op) if !seen.insert(op) => {
                violations.push(Violation::new(field, format!("{name} is listed twice")));
            }
            Some(op) => operations.push(op),
        }
    }
    operations.sort_unstable();
    violations.finish(|| operations)
}

/// What `due` needs to know about a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Current Delta version.
    pub version: i64,
    /// Live data files.
    pub num_files: u64,
    /// Live data files below the small-file size.
    pub small_files: u64,
    /// Version of the latest checkpoint, if any.
    pub last_checkpoint_version: Option<i64>,
    /// Whether the table has an event-time column (retention needs one).
    pub has_event_time: bool,
    /// Whether the table has z-order columns.
    pub has_z_order: bool,
    /// When compaction (or z-ordering) last succeeded.
    pub last_compact_at: Option<DateTime<Utc>>,
    /// When vacuum last succeeded.
    pub last_vacuum_at: Option<DateTime<Utc>>,
    /// When retention last succeeded.
    pub last_retention_at: Option<DateTime<Utc>>,
}

/// When operations become due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuePolicy {
    /// Compaction is due at this many small files; 0 turns scheduled compaction off.
    pub small_files_threshold: u64,
    /// A checkpoint is due after this many commits without one; 0 or less turns it off.
    pub checkpoint_every: i64,
    /// Vacuum is due this long after the last one.
    pub vacuum_every: Duration,
    /// Retention is due this long after the last one.
    pub retention_every: Duration,
}

impl Default for DuePolicy {
    fn default() -> Self {
        Self {
            small_files_threshold: 16,
            checkpoint_every: 10,
            vacuum_every: Duration::days(1),
            retention_every: Duration::days(1),
        }
    }
}

/// Whether an operation last run at `last` is due again at `now`. A run stamped in the future
/// (clock skew) counts as recent.
fn interval_elapsed(last: Option<DateTime<Utc>>, every: Duration, now: DateTime<Utc>) -> bool {
    last.is_none_or(|at| now.signed_duration_since(at) >= every)
}

/// The operations due on a table, in execution order (see [`parse_operations`]):
///
/// - `retention` when the table has an event-time column and retention never ran or last ran
///   at least `retention_every` ago;
/// - `compact` when `small_files >= small_files_threshold` (threshold above 0); `zorder`
///   instead when the table has z-order columns, since z-ordering bin-packs too;
/// - `vacuum` when it never ran or last ran at least `vacuum_every` ago, unless the table is
///   fresh and empty (version 0, no files), which leaves nothing to remove;
/// - `checkpoint` when the commits since the last checkpoint, `version - last_checkpoint_version`
///   (or `version + 1`, every commit, when there is none), number at least `checkpoint_every`.
pub fn due(stats: &TableStats, policy: &DuePolicy, now: DateTime<Utc>) -> Vec<Operation> {
    let mut operations = Vec::new();
    if stats.has_event_time && interval_elapsed(stats.last_retention_at, policy.retention_every, now) {
        operations.push(Operation::Retention);
    }
    if policy.small_files_threshold > 0 && stats.small_files >= policy.small_files_threshold {
        operations.push(if stats.has_z_order {
            Operation::Zorder
        } else {
            Operation::Compact
        });
    }
    let has_data = stats.version > 0 || stats.num_files > 0;
    if has_data && interval_elapsed(stats.last_vacuum_at, policy.vacuum_every, now) {
        operations.push(Operation::Vacuum);
    }
    let commits_since_checkpoint = match stats.last_checkpoint_version {
        Some(checkpoint) => stats.version.saturating_sub(checkpoint),
        None => stats.version.saturating_add(1),
    };
    if policy.checkpoint_every > 0 && commits_since_checkpoint >= policy.checkpoint_every {
        operations.push(Operation::Checkpoint);
    }
    operations
}

/// What a maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunMetrics {
    /// Data files written.
    pub files_added: u64,
    /// Data files removed from the table (still on storage until vacuumed).
    pub files_removed: u64,
    /// Bytes written.
    pub bytes_added: u64,
    /// Bytes of the files removed from the table.
    pub bytes_removed: u64,
    /// Rows deleted by retention.
    pub rows_deleted: u64,
    /// Files deleted from storage by vacuum.
    pub files_vacuumed: u64,
    /// Version of the checkpoint written, if any.
    pub checkpoint_version: Option<i64>,
    /// Remarks worth showing, e.g. why an operation was skipped.
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
            .single()
            .expect("valid time")
    }

    fn names(raw: &[&str]) -> Vec<String> {
        raw.iter().map(|s| (*s).to_owned()).collect()
    }

    fn fields(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(op));
            let json = serde_json::to_string(&op).expect("json");
            assert_eq!(json, format!("\"{}\"", op.as_str()));
            assert_eq!(serde_json::from_str::<Operation>(&json).expect("json"), op);
        }
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
            let json = serde_json::to_string(&status).expect("json");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<RunStatus>(&json).expect("json"), status);
        }
        assert_eq!(Operation::parse("Compact"), None);
        assert_eq!(Operation::parse("optimize"), None);
        assert_eq!(RunStatus::parse("done"), None);
    }

    #[test]
    fn all_is_in_execution_order() {
        let mut sorted = Operation::ALL;
        sorted.sort();
        assert_eq!(sorted, Operation::ALL);
        assert_eq!(
            Operation::ALL.map(Operation::as_str),
            ["retention", "compact", "zorder", "vacuum", "checkpoint"]
        );
    }

    #[test]
    fn operations_come_back_in_execution_order() {
        assert_eq!(
            parse_operations(&names(&[
                "checkpoint",
                "vacuum",
                "zorder",
                "compact",
                "retention"
            ])),
            Ok(Operation::ALL.to_vec())
        );
        assert_eq!(
            parse_operations(&names(&["vacuum", "retention"])),
            Ok(vec![Operation::Retention, Operation::Vacuum])
        );
        assert_eq!(
            parse_operations(&names(&["checkpoint"])),
            Ok(vec![Operation::Checkpoint])
        );
    }

    #[test]
    fn operations_are_checked() {
        let errors = parse_operations(&[]).expect_err("empty");
        assert_eq!(fields(&errors), ["operations"]);
        let errors = parse_operations(&names(&["vacuum", "optimize", "vacuum", "Compact", "compact"]))
            .expect_err("refused");
        assert_eq!(
            fields(&errors),
            ["operations[1]", "operations[2]", "operations[3]"]
        );
        assert!(
            errors[0]
                .message
                .contains("retention, compact, zorder, vacuum, checkpoint")
        );
        assert!(errors[1].message.contains("listed twice"));
    }

    #[test]
    fn policy_defaults() {
        let policy = DuePolicy::default();
        assert_eq!(policy.small_files_threshold, 16);
        assert_eq!(policy.checkpoint_every, 10);
        assert_eq!(policy.vacuum_every, Duration::days(1));
        assert_eq!(policy.retention_every, Duration::days(1));
    }

    #[test]
    fn metrics_serde() {
        let metrics = RunMetrics {
            files_added: 2,
            files_removed: 40,
            checkpoint_version: Some(12),
            notes: vec!["vacuum kept files inside the retention window".to_owned()],
            ..RunMetrics::default()
        };
        let json = serde_json::to_string(&metrics).expect("json");
        assert_eq!(serde_json::from_str::<RunMetrics>(&json).expect("json"), metrics);
        let value = serde_json::to_value(RunMetrics::default()).expect("json");
        assert_eq!(value["checkpoint_version"], serde_json::Value::Null);
        assert_eq!(value["notes"], serde_json::json!([]));
    }

    #[test]
    fn a_fresh_empty_table_needs_nothing() {
        let stats = TableStats::default();
        assert_eq!(due(&stats, &DuePolicy::default(), now()), vec![]);
    }

    #[test]
    fn a_neglected_table_needs_everything_in_order() {
        let stats = TableStats {
            version: 40,
            num_files: 100,
            small_files: 90,
            has_event_time: true,
            ..TableStats::default()
        };
        assert_eq!(
            due(&stats, &DuePolicy::default(), now()),
            vec![
                Operation::Retention,
                Operation::Compact,
                Operation::Vacuum,
                Operation::Checkpoint
            ]
        );
        let z_ordered = TableStats {
            has_z_order: true,
            ..stats
        };
        assert_eq!(
            due(&z_ordered, &DuePolicy::default(), now()),
            vec![
                Operation::Retention,
                Operation::Zorder,
                Operation::Vacuum,
                Operation::Checkpoint
            ]
        );
    }

    #[test]
    fn a_well_kept_table_needs_nothing() {
        let an_hour_ago = Some(now() - Duration::hours(1));
        let stats = TableStats {
            version: 25,
            num_files: 10,
            small_files: 15,
            last_checkpoint_version: Some(20),
            has_event_time: true,
            has_z_order: true,
            last_compact_at: an_hour_ago,
            last_vacuum_at: an_hour_ago,
            last_retention_at: an_hour_ago,
        };
        assert_eq!(due(&stats, &DuePolicy::default(), now()), vec![]);
    }

    #[test]
    fn checkpoint_boundaries() {
        let policy = DuePolicy::default();
        let checkpoint = |version, last| {
            let stats = TableStats {
                version,
                last_checkpoint_version: last,
                ..TableStats::default()
            };
            due(&stats, &policy, now()).contains(&Operation::Checkpoint)
        };
        // Versions 0..=8 are nine commits; the tenth commit (version 9) makes one due.
        assert!(!checkpoint(8, None));
        assert!(checkpoint(9, None));
        assert!(!checkpoint(19, Some(10)));
        assert!(checkpoint(20, Some(10)));
        assert!(!checkpoint(10, Some(10)), "just checkpointed");
        let off = DuePolicy {
            checkpoint_every: 0,
            ..policy
        };
        let stats = TableStats {
            version: 1000,
            ..TableStats::default()
        };
        assert!(!due(&stats, &off, now()).contains(&Operation::Checkpoint));
    }

    #[test]
    fn intervals_are_inclusive_and_future_stamps_are_recent() {
        let policy = DuePolicy::default();
        let vacuum = |last| {
            let stats = TableStats {
                version: 3,
                last_checkpoint_version: Some(3),
                last_vacuum_at: last,
                ..TableStats::default()
            };
            due(&stats, &policy, now()) == vec![Operation::Vacuum]
        };
        assert!(vacuum(None));
        assert!(vacuum(Some(now() - Duration::days(1))));
        assert!(!vacuum(Some(now() - Duration::days(1) + Duration::seconds(1))));
        assert!(!vacuum(Some(now() + Duration::hours(3))));
    }

    #[test]
    fn retention_needs_an_event_time_column() {
        let stats = TableStats {
            version: 5,
            last_checkpoint_version: Some(5),
            last_vacuum_at: Some(now()),
            ..TableStats::default()
        };
        assert_eq!(due(&stats, &DuePolicy::default(), now()), vec![]);
        let with_event_time = TableStats {
            has_event_time: true,
            ..stats
        };
        assert_eq!(
            due(&with_event_time, &DuePolicy::default(), now()),
            vec![Operation::Retention]
        );
    }

    #[test]
    fn threshold_zero_turns_compaction_off() {
        let policy = DuePolicy {
            small_files_threshold: 0,
            ..DuePolicy::default()
        };
        for has_z_order in [false, true] {
            let stats = TableStats {
                small_files: 500,
                has_z_order,
                ..TableStats::default()
            };
            assert_eq!(due(&stats, &policy, now()), vec![]);
        }
    }

    /// Past run times around an interval: never, just now, exactly one interval ago, a
    /// second short of it, two intervals ago, and in the future (clock skew).
    fn times_around(every: Duration) -> Vec<Option<DateTime<Utc>>> {
        vec![
            None,
            Some(now()),
            Some(now() - every),
            Some(now() - every + Duration::seconds(1)),
            Some(now() - every - every),
            Some(now() + Duration::seconds(1)),
        ]
    }

    /// `(version, last checkpoint)` pairs around the checkpoint interval `every`.
    fn versions_around(every: i64) -> Vec<(i64, Option<i64>)> {
        let mut pairs = Vec::new();
        let every = every.max(1);
        for version in [0, 1, every - 1, every, every + 1, 2 * every, 5 * every] {
            if version < 0 {
                continue;
            }
            pairs.push((version, None));
            for checkpoint in [
                0,
                version,
                version - 1,
                version - every,
                version - every + 1,
                version - every - 1,
            ] {
                if (0..=version).contains(&checkpoint) && !pairs.contains(&(version, Some(checkpoint))) {
                    pairs.push((version, Some(checkpoint)));
                }
            }
        }
        pairs
    }

    /// The rule for each operation, written independently of `due`.
    fn expected(stats: &TableStats, policy: &DuePolicy, now: DateTime<Utc>) -> [(Operation, bool); 5] {
        let elapsed = |last: Option<DateTime<Utc>>, every: Duration| match last {
            None => true,
            Some(at) => at + every <= now,
        };
        // Commits are versions 0..=version; those after the checkpoint are not covered.
        let first_uncovered = stats.last_checkpoint_version.map_or(0, |c| c + 1);
        let uncovered = (first_uncovered..=stats.version).count();
        let many_small =
            policy.small_files_threshold != 0 && stats.small_files >= policy.small_files_threshold;
        let empty_and_fresh = stats.version == 0 && stats.num_files == 0;
        [
            (
                Operation::Retention,
                stats.has_event_time && elapsed(stats.last_retention_at, policy.retention_every),
            ),
            (Operation::Compact, many_small && !stats.has_z_order),
            (Operation::Zorder, many_small && stats.has_z_order),
            (
                Operation::Vacuum,
                !empty_and_fresh && elapsed(stats.last_vacuum_at, policy.vacuum_every),
            ),
            (
                Operation::Checkpoint,
                policy.checkpoint_every >= 1
                    && i64::try_from(uncovered).expect("small") >= policy.checkpoint_every,
            ),
        ]
    }

    #[test]
    fn due_over_every_combination() {
        let policies = [
            DuePolicy::default(),
            DuePolicy {
                small_files_threshold: 1,
                checkpoint_every: 1,
                vacuum_every: Duration::hours(1),
                retention_every: Duration::days(7),
            },
            DuePolicy {
                small_files_threshold: 0,
                checkpoint_every: 3,
                vacuum_every: Duration::days(7),
                retention_every: Duration::minutes(30),
            },
            DuePolicy {
                small_files_threshold: 2,
                checkpoint_every: 0,
                vacuum_every: Duration::days(2),
                retention_every: Duration::days(2),
            },
        ];
        let mut cases = 0u64;
        let mut seen = HashSet::new();
        for policy in &policies {
            let threshold = policy.small_files_threshold;
            let small_counts = [0, threshold.saturating_sub(1), threshold, threshold + 1];
            for has_event_time in [false, true] {
                for has_z_order in [false, true] {
                    for small_files in small_counts {
                        for num_files in [0, small_files, small_files + 5] {
                            for last_compact_at in times_around(Duration::days(1)) {
                                for last_vacuum_at in times_around(policy.vacuum_every) {
                                    for last_retention_at in times_around(policy.retention_every) {
                                        for (version, last_checkpoint_version) in
                                            versions_around(policy.checkpoint_every)
                                        {
                                            let stats = TableStats {
                                                version,
                                                num_files,
                                                small_files,
                                                last_checkpoint_version,
                                                has_event_time,
                                                has_z_order,
                                                last_compact_at,
                                                last_vacuum_at,
                                                last_retention_at,
                                            };
                                            let got = due(&stats, policy, now());
                                            for (op, want) in expected(&stats, policy, now()) {
                                                assert_eq!(
                                                    got.contains(&op),
                                                    want,
                                                    "{op:?} for {stats:?} under {policy:?}: got {got:?}"
                                                );
                                            }
                                            assert!(
                                                got.windows(2).all(|w| w[0] < w[1]),
                                                "order or duplicates: {got:?}"
                                            );
                                            assert!(
                                                !(got.contains(&Operation::Compact)
                                                    && got.contains(&Operation::Zorder)),
                                                "{got:?}"
                                            );
                                            seen.insert(got);
                                            cases += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(cases > 100_000, "{cases} cases");
        // Every outcome the rules allow shows up: retention, compact-or-zorder-or-neither,
        // vacuum and checkpoint each on or off.
        assert_eq!(seen.len(), 2 * 3 * 2 * 2, "{seen:?}");
    }
}
