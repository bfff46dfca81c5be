//! Pipelines: incremental transformations from one zone's table to a higher zone's table
//! (bronze to silver, silver to gold). This module holds the definition and its validation,
//! the parts that need no engine: names, zones, the shape of selects, expectations,
//! deduplication, aggregates and triggers. Whether an expression parses and type-checks
//! against the source's schema is the engine's question, asked when the pipeline is created
//! (`lake_manager::pipelines::plan`).

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::role::Zone;
use crate::table::{ColumnSpec, MAX_NAME_CHARS, TableName, validate_column_name};
use crate::validation::{Violation, Violations};

/// The suffix of a target's quarantine table: `{target}__quarantine`.
pub const QUARANTINE_SUFFIX: &str = "__quarantine";
/// The column of a quarantine table that names the expectations a row failed.
pub const VIOLATIONS_COLUMN: &str = "_violations";
/// Most output columns a select may name.
pub const MAX_SELECT: usize = 256;
/// Most expectations per pipeline.
pub const MAX_EXPECTATIONS: usize = 64;
/// Most measures per aggregate.
pub const MAX_MEASURES: usize = 64;
/// Longest expression, bytes: an expression is a formula, not a program.
pub const MAX_EXPR_BYTES: usize = 4096;
/// Shortest interval between scheduled runs, seconds.
pub const MIN_INTERVAL_SECS: u32 = 10;
/// Longest interval between scheduled runs, seconds (a week).
pub const MAX_INTERVAL_SECS: u32 = 7 * 86_400;

/// A pipeline's name: its path segment, unique in its tenant. Lowercase letters, digits and
/// single hyphens, 2 to 63 characters, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PipelineName(String);

impl PipelineName {
    /// Validates a candidate name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < 2 || raw.len() > MAX_NAME_CHARS {
            return Err(format!("must be 2 to {MAX_NAME_CHARS} characters"));
        }
        if !raw.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err("must start with a lowercase letter".to_owned());
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("may contain only lowercase letters, digits and hyphens".to_owned());
        }
        if raw.ends_with('-') || raw.contains("--") {
            return Err("must not end with a hyphen or contain a double hyphen".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a name read back from the store, which only ever holds validated names.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table by zone and name, as the request names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTableRef {
    /// `bronze`, `silver` or `gold`.
    pub zone: String,
    /// The table's name in that zone.
    pub table: String,
}

/// A table by zone and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct TableRef {
    /// Its zone.
    pub zone: Zone,
    /// Its name.
    #[schema(value_type = String)]
    pub table: TableName,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone.as_str(), self.table)
    }
}

/// One output column: a name and the SQL expression over the source's columns that fills it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectItem {
    /// The output column's name.
    pub name: String,
    /// A DataFusion SQL expression, e.g. `CAST(amount AS DOUBLE) / 100`.
    pub expr: String,
}

/// What a failed expectation does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// Count it, keep the row.
    Warn,
    /// Count it, leave the row out.
    Drop,
    /// Count it, write the row to the quarantine table instead, with the failed expectations.
    Quarantine,
    /// Commit nothing of the run and mark the pipeline failed, with the first failing rows.
    Fail,
}

/// A named condition every output row should meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Its name in run statistics and in `_violations`.
    pub name: String,
    /// A boolean SQL expression over the output columns; a row meets it when it is true.
    /// NULL counts as a violation, as in Delta Live Tables.
    pub expr: String,
    /// What a violation does.
    pub on_violation: OnViolation,
}

/// Which row of a key's duplicates stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The first: lowest `order_by`, or earliest arrival. In table scope, a key already in
    /// the target is never replaced.
    First,
    /// The latest: highest `order_by`, or latest arrival. In table scope, it replaces the
    /// target's row when it is newer.
    Latest,
}

/// How far deduplication reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DedupScope {
    /// Within the rows of one run only.
    Batch,
    /// Across the whole target: it stays unique on the keys (a MERGE).
    Table,
}

/// Deduplication on output columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dedup {
    /// The output columns that identify a row.
    pub keys: Vec<String>,
    /// The output column that orders duplicates; absent, arrival order (source version, then
    /// position) decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    /// Which duplicate stays.
    pub keep: Keep,
    /// Within a run or across the table.
    pub scope: DedupScope,
}

/// One aggregate output column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    /// The output column's name.
    pub name: String,
    /// An aggregate SQL expression over the selected columns, e.g. `sum(amount)`.
    pub expr: String,
}

/// A grouping for gold: one row per group, recomputed for the groups new data touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    /// The selected columns to group by (may be empty: one row in all).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The aggregate columns.
    pub measures: Vec<Measure>,
    /// Partition columns for the target table the pipeline makes, among `group_by` (an
    /// existing target must be partitioned by exactly these). A run then recomputes only the
    /// partitions its new source rows fall in and replaces just those.
    #[serde(default)]
    pub partition_by: Vec<String>,
}

/// When a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// Whenever the source has a new version.
    Continuous,
    /// Every `seconds`, when the source changed.
    Interval {
        /// Seconds between runs.
        seconds: u32,
    },
    /// Only when a run is requested.
    Manual,
}

/// A pipeline definition as the API receives it, before validation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineRequest {
    /// The pipeline's name.
    pub name: String,
    /// The table it reads.
    pub source: RawTableRef,
    /// The table it writes (created from the planned output when it does not exist).
    pub target: RawTableRef,
    /// Output columns; absent, every source column as it is.
    #[serde(default)]
    pub select: Option<Vec<SelectItem>>,
    /// Conditions on the output rows.
    #[serde(default)]
    pub expectations: Vec<Expectation>,
    /// Deduplication on output columns.
    #[serde(default)]
    pub dedup: Option<Dedup>,
    /// An aggregate (gold targets only).
    #[serde(default)]
    pub aggregate: Option<Aggregate>,
    /// When it runs.
    pub trigger: Trigger,
}

/// A validated pipeline definition. Its expressions are still unplanned text: the engine
/// checks them against the source's schema before the pipeline is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PipelineSpec {
    /// The pipeline's name.
    #[schema(value_type = String)]
    pub name: PipelineName,
    /// The table it reads.
    pub source: TableRef,
    /// The table it writes.
    pub target: TableRef,
    /// Output columns; `None`: every source column.
    pub select: Option<Vec<SelectItem>>,
    /// Conditions on the output rows.
    pub expectations: Vec<Expectation>,
    /// Deduplication.
    pub dedup: Option<Dedup>,
    /// Aggregation.
    pub aggregate: Option<Aggregate>,
    /// When it runs.
    pub trigger: Trigger,
    /// The output columns planned when the pipeline was made (filled in by the engine): each
    /// run must still make them, of these types.
    #[serde(default)]
    pub output: Vec<ColumnSpec>,
}

impl PipelineSpec {
    /// Whether any expectation quarantines: then the target has a quarantine table.
    pub fn quarantines(&self) -> bool {
        self.expectations
            .iter()
            .any(|e| e.on_violation == OnViolation::Quarantine)
    }

    /// The quarantine table's name, `{target}__quarantine`.
    pub fn quarantine_table(&self) -> TableName {
        TableName::from_trusted(format!("{}{QUARANTINE_SUFFIX}", self.target.table))
    }
}

fn table_ref(field: &str, raw: &RawTableRef, violations: &mut Violations) -> Option<TableRef> {
    let zone = violations.check(
        Zone::parse(&raw.zone)
            .ok_or_else(|| Violation::new(format!("{field}.zone"), "must be one of bronze, silver, gold")),
    );
    let table = violations
        .check(TableName::parse(&raw.table).map_err(|m| Violation::new(format!("{field}.table"), m)));
    Some(TableRef {
        zone: zone?,
        table: table?,
    })
}

fn check_expr(field: String, expr: &str, violations: &mut Violations) {
    if expr.trim().is_empty() {
        violations.push(Violation::new(field, "must not be empty"));
    } else if expr.len() > MAX_EXPR_BYTES {
        violations.push(Violation::new(
            field,
            format!("must be at most {MAX_EXPR_BYTES} bytes"),
        ));
    }
}

/// Checks a list of output names: each a valid column name, none twice, none reserved.
fn check_names<'a>(
    field: &str,
    names: impl Iterator<Item = &'a str>,
    taken: &mut BTreeSet<String>,
    violations: &mut Violations,
) {
    for (i, name) in names.enumerate() {
        let field = format!("{field}[{i}].name");
        // Column names start with a letter, so none can be the quarantine's `_violations`.
        if let Err(message) = validate_column_name(name) {
            violations.push(Violation::new(field, message));
        } else if !taken.insert(name.to_owned()) {
            violations.push(Violation::new(field, format!("{name} is named twice")));
        }
    }
}

/// Checks references to output columns (dedup keys, group-by columns) when the output's
/// names are known (an explicit select); with the source's columns as they are, the engine
/// checks them.
fn check_refs(field: &str, refs: &[String], known: Option<&BTreeSet<String>>, violations: &mut Violations) {
    let mut seen = BTreeSet::new();
    for (i, column) in refs.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if !seen.insert(column.as_str()) {
            violations.push(Violation::new(field, format!("{column} is named twice")));
        } else if let Some(known) = known
            && !known.contains(column)
        {
            violations.push(Violation::new(
                field,
                format!("{column} is not an output column of the select"),
            ));
        }
    }
}

impl PipelineRequest {
    /// Validates the definition, reporting every problem at once.
    pub fn validate(self) -> Result<PipelineSpec, Vec<Violation>> {
        let mut violations = Violations::default();
        let name = violations.check(PipelineName::parse(&self.name).map_err(|m| Violation::new("name", m)));
        let source = table_ref("source", &self.source, &mut violations);
        let target = table_ref("target", &self.target, &mut violations);
        if let (Some(source), Some(target)) = (&source, &target) {
            let upward = matches!(
                (source.zone, target.zone),
                (Zone::Bronze, Zone::Silver) | (Zone::Silver, Zone::Gold)
            );
            if !upward {
                violations.push(Violation::new(
                    "target.zone",
                    format!(
                        "a pipeline goes from bronze to silver or from silver to gold, not from {} to {}",
                        source.zone.as_str(),
                        target.zone.as_str()
                    ),
                ));
            }
        }

        let mut outputs = BTreeSet::new();
        if let Some(select) = &self.select {
            if select.is_empty() {
                violations.push(Violation::new(
                    "select",
                    "must name at least one column (leave it out to keep every source column)",
                ));
            } else if select.len() > MAX_SELECT {
                violations.push(Violation::new(
                    "select",
                    format!("must name at most {MAX_SELECT} columns"),
                ));
            }
            check_names(
                "select",
                select.iter().map(|s| s.name.as_str()),
                &mut outputs,
                &mut violations,
            );
            for (i, item) in select.iter().enumerate() {
                check_expr(format!("select[{i}].expr"), &item.expr, &mut violations);
            }
        }
        let known = self.select.as_ref().map(|_| &outputs);

        if self.expectations.len() > MAX_EXPECTATIONS {
            violations.push(Violation::new(
                "expectations",
                format!("at most {MAX_EXPECTATIONS} expectations"),
            ));
        }
        let mut expectation_names = BTreeSet::new();
        for (i, expectation) in self.expectations.iter().enumerate() {
            let field = format!("expectations[{i}].name");
            if let Err(message) = validate_column_name(&expectation.name) {
                violations.push(Violation::new(field, message));
            } else if !expectation_names.insert(expectation.name.as_str()) {
                violations.push(Violation::new(
                    field,
                    format!("{} is named twice", expectation.name),
                ));
            }
            check_expr(
                format!("expectations[{i}].expr"),
                &expectation.expr,
                &mut violations,
            );
        }
        let quarantines = self
            .expectations
            .iter()
            .any(|e| e.on_violation == OnViolation::Quarantine);
        if quarantines
            && let Some(target) = &target
            && target.table.as_str().len() + QUARANTINE_SUFFIX.len() > MAX_NAME_CHARS
        {
            violations.push(Violation::new(
                "target.table",
                format!(
                    "with a quarantine expectation, at most {} characters (its quarantine table adds {QUARANTINE_SUFFIX})",
                    MAX_NAME_CHARS - QUARANTINE_SUFFIX.len()
                ),
            ));
        }

        if let Some(dedup) = &self.dedup {
            if dedup.keys.is_empty() {
                violations.push(Violation::new("dedup.keys", "must name at least one column"));
            }
            check_refs("dedup.keys", &dedup.keys, known, &mut violations);
            if let Some(order_by) = &dedup.order_by {
                check_refs(
                    "dedup.order_by",
                    std::slice::from_ref(order_by),
                    known,
                    &mut violations,
                );
                if dedup.keys.contains(order_by) {
                    violations.push(Violation::new(
                        "dedup.order_by",
                        format!("{order_by} is a key: it cannot order a key's duplicates"),
                    ));
                }
            }
        }

        if let Some(aggregate) = &self.aggregate {
            if target.as_ref().is_some_and(|t| t.zone != Zone::Gold) {
                violations.push(Violation::new(
                    "aggregate",
                    "aggregates are for gold targets; silver keeps row-level data",
                ));
            }
            if self.dedup.is_some() {
                violations.push(Violation::new(
                    "dedup",
                    "an aggregate's output is unique on its group_by already; deduplicate in the silver pipeline",
                ));
            }
            if aggregate.measures.is_empty() {
                violations.push(Violation::new(
                    "aggregate.measures",
                    "must name at least one measure",
                ));
            } else if aggregate.measures.len() > MAX_MEASURES {
                violations.push(Violation::new(
                    "aggregate.measures",
                    format!("at most {MAX_MEASURES} measures"),
                ));
            }
            check_refs("aggregate.group_by", &aggregate.group_by, known, &mut violations);
            let mut measure_names: BTreeSet<String> = aggregate.group_by.iter().cloned().collect();
            check_names(
                "aggregate.measures",
                aggregate.measures.iter().map(|m| m.name.as_str()),
                &mut measure_names,
                &mut violations,
            );
            for (i, measure) in aggregate.measures.iter().enumerate() {
                check_expr(
                    format!("aggregate.measures[{i}].expr"),
                    &measure.expr,
                    &mut violations,
                );
            }
            let mut partitions = BTreeSet::new();
            for (i, name) in aggregate.partition_by.iter().enumerate() {
                if !aggregate.group_by.contains(name) {
                    violations.push(Violation::new(
                        format!("aggregate.partition_by[{i}]"),
                        format!("{name} is not in group_by: a group must fall in one partition"),
                    ));
                } else if !partitions.insert(name.as_str()) {
                    violations.push(Violation::new(
                        format!("aggregate.partition_by[{i}]"),
                        format!("{name} is named twice"),
                    ));
                }
            }
        }

        if let Trigger::Interval { seconds } = self.trigger
            && !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&seconds)
        {
            violations.push(Violation::new(
                "trigger.seconds",
                format!("must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS}"),
            ));
        }

        let (Some(name), Some(source), Some(target)) = (name, source, target) else {
            return Err(violations
                .finish(|| ())
                .err()
                .unwrap_or_else(|| vec![Violation::new("body", "invalid")]));
        };
        violations.finish(|| PipelineSpec {
            name,
            source,
            target,
            select: self.select,
            expectations: self.expectations,
            dedup: self.dedup,
            aggregate: self.aggregate,
            trigger: self.trigger,
            output: Vec::new(),
        })
    }
}

/// Whether a pipeline is scheduled, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PipelineState {
    /// Runs on its trigger.
    Active,
    /// Runs only when asked; its trigger waits for a resume.
    Paused,
    /// A run failed (an expectation with `fail`, or a select the source no longer
    /// supports); nothing runs until a retry or a resume.
    Failed,
}

impl PipelineState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Active, Self::Paused, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for its worker.
    Queued,
    /// Its worker reads, transforms and commits.
    Running,
    /// Committed (or found nothing new to read).
    Succeeded,
    /// Committed nothing; the reason is on the run.
    Failed,
}

impl RunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// Whether the run has ended.
    pub fn finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// A change to a pipeline (PATCH): pause or resume, or a new trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineChange {
    /// `true` pauses, `false` resumes (a failed pipeline too: its next run retries).
    pub paused: Option<bool>,
    /// The new trigger.
    pub trigger: Option<Trigger>,
}

impl PipelineChange {
    /// Validates the change and applies it to the current state and trigger.
    pub fn apply(
        self,
        state: PipelineState,
        trigger: Trigger,
    ) -> Result<(PipelineState, Trigger), Vec<Violation>> {
        let mut violations = Violations::default();
        if self.paused.is_none() && self.trigger.is_none() {
            violations.push(Violation::new(
                "paused",
                "nothing to change: give paused or trigger",
            ));
        }
        if let Some(Trigger::Interval { seconds }) = self.trigger
            && !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&seconds)
        {
            violations.push(Violation::new(
                "trigger.seconds",
                format!("must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS}"),
            ));
        }
        let state = match self.paused {
            Some(true) => PipelineState::Paused,
            Some(false) => PipelineState::Active,
            None => state,
        };
        violations.finish(|| (state, self.trigger.unwrap_or(trigger)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn request(body: serde_json::Value) -> PipelineRequest {
        serde_json::from_value(body).expect("request shape")
    }

    fn silver() -> serde_json::Value {
        json!({
            "name": "clean-clicks",
            "source": {"zone": "bronze", "table": "clicks"},
            "target": {"zone": "silver", "table": "clicks"},
            "select": [
                {"name": "user_id", "expr": "CAST(user_id AS BIGINT)"},
                {"name": "amount", "expr": "amount / 100.0"},
                {"name": "at", "expr": "at"}
            ],
            "expectations": [
                {"name": "has_user", "expr": "user_id IS NOT NULL", "on_violation": "drop"},
                {"name": "positive", "expr": "amount >= 0", "on_violation": "quarantine"}
            ],
            "dedup": {"keys": ["user_id", "at"], "order_by": "amount", "keep": "latest", "scope": "table"},
            "trigger": {"type": "interval", "seconds": 60}
        })
    }

    fn fields(errors: &[Violation]) -> Vec<&str> {
        errors.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn a_silver_pipeline_validates() {
        let spec = request(silver()).validate().expect("valid");
        assert_eq!(spec.name.as_str(), "clean-clicks");
        assert_eq!(spec.source.to_string(), "bronze.clicks");
        assert!(spec.quarantines());
        assert_eq!(spec.quarantine_table().as_str(), "clicks__quarantine");
        assert_eq!(spec.trigger, Trigger::Interval { seconds: 60 });
    }

    #[test]
    fn pipelines_only_go_up_one_zone() {
        for (from, to, ok) in [
            ("bronze", "silver", true),
            ("silver", "gold", true),
            ("bronze", "gold", false),
            ("silver", "bronze", false),
            ("gold", "silver", false),
            ("silver", "silver", false),
        ] {
            let mut body = silver();
            body["source"]["zone"] = json!(from);
            body["target"]["zone"] = json!(to);
            let result = request(body).validate();
            assert_eq!(result.is_ok(), ok, "{from} -> {to}: {result:?}");
            if let Err(errors) = result {
                assert_eq!(fields(&errors), ["target.zone"], "{from} -> {to}");
            }
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let body = json!({
            "name": "Bad Name",
            "source": {"zone": "copper", "table": "clicks"},
            "target": {"zone": "silver", "table": "9x"},
            "select": [
                {"name": "a", "expr": "1"},
                {"name": "a", "expr": " "},
                {"name": "B", "expr": "x"}
            ],
            "expectations": [
                {"name": "e", "expr": "a > 0", "on_violation": "warn"},
                {"name": "e", "expr": "", "on_violation": "fail"}
            ],
            "dedup": {"keys": ["a", "a", "missing"], "keep": "first", "scope": "batch"},
            "aggregate": {"group_by": ["a"], "measures": []},
            "trigger": {"type": "interval", "seconds": 5}
        });
        let errors = request(body).validate().expect_err("invalid");
        assert_eq!(
            fields(&errors),
            [
                "name",
                "source.zone",
                "target.table",
                "select[1].name",
                "select[2].name",
                "select[1].expr",
                "expectations[1].name",
                "expectations[1].expr",
                "dedup.keys[1]",
                "dedup.keys[2]",
                "dedup",
                "aggregate.measures",
                "trigger.seconds",
            ],
            "{errors:#?}"
        );
    }

    #[test]
    fn references_are_checked_against_an_explicit_select_only() {
        let mut body = silver();
        body["select"] = serde_json::Value::Null;
        body["dedup"]["keys"] = json!(["anything"]);
        body["dedup"]["order_by"] = json!("else");
        // Without a select the output is the source's columns: the engine checks them.
        assert!(request(body).validate().is_ok());
        let mut body = silver();
        body["dedup"]["order_by"] = json!("user_id");
        let errors = request(body).validate().expect_err("order_by is a key");
        assert_eq!(fields(&errors), ["dedup.order_by"]);
    }

    #[test]
    fn an_empty_select_is_refused_rather_than_read_as_every_column() {
        let mut body = silver();
        body["select"] = json!([]);
        let errors = request(body).validate().expect_err("empty");
        assert!(fields(&errors).contains(&"select"), "{errors:?}");
    }

    #[test]
    fn gold_aggregates_name_their_measures_apart_from_the_groups() {
        let body = json!({
            "name": "revenue",
            "source": {"zone": "silver", "table": "clicks"},
            "target": {"zone": "gold", "table": "revenue"},
            "aggregate": {"group_by": ["day"], "measures": [
                {"name": "day", "expr": "count(*)"},
                {"name": "total", "expr": "sum(amount)"}
            ]},
            "trigger": {"type": "manual"}
        });
        let errors = request(body).validate().expect_err("day twice");
        assert_eq!(fields(&errors), ["aggregate.measures[0].name"]);
    }

    #[test]
    fn aggregate_partitions_are_among_the_groups_once() {
        let body = json!({
            "name": "revenue",
            "source": {"zone": "silver", "table": "clicks"},
            "target": {"zone": "gold", "table": "revenue"},
            "aggregate": {"group_by": ["day", "country"], "partition_by": ["country", "amount", "country"],
                "measures": [{"name": "total", "expr": "sum(amount)"}]},
            "trigger": {"type": "manual"}
        });
        let errors = request(body).validate().expect_err("bad partitions");
        assert_eq!(
            fields(&errors),
            ["aggregate.partition_by[1]", "aggregate.partition_by[2]"]
        );
        let fine = json!({
            "name": "revenue",
            "source": {"zone": "silver", "table": "clicks"},
            "target": {"zone": "gold", "table": "revenue"},
            "aggregate": {"group_by": ["day", "country"], "partition_by": ["country"],
                "measures": [{"name": "total", "expr": "sum(amount)"}]},
            "trigger": {"type": "manual"}
        });
        let spec = request(fine).validate().expect("valid");
        assert_eq!(spec.aggregate.expect("aggregate").partition_by, ["country"]);
    }

    #[test]
    fn aggregates_are_for_gold() {
        let mut body = silver();
        body["dedup"] = serde_json::Value::Null;
        body["aggregate"] = json!({"group_by": ["user_id"], "measures": [{"name": "n", "expr": "count(*)"}]});
        let errors = request(body).validate().expect_err("silver target");
        assert_eq!(fields(&errors), ["aggregate"]);
    }

    #[test]
    fn a_quarantine_table_name_must_fit() {
        let mut body = silver();
        body["target"]["table"] = json!("a".repeat(52));
        let errors = request(body.clone())
            .validate()
            .expect_err("too long with the suffix");
        assert_eq!(fields(&errors), ["target.table"]);
        body["target"]["table"] = json!("a".repeat(51));
        assert!(request(body.clone()).validate().is_ok());
        // Without a quarantine expectation the full length is allowed.
        body["target"]["table"] = json!("a".repeat(63));
        body["expectations"] = json!([]);
        assert!(request(body).validate().is_ok());
    }

    #[test]
    fn unknown_fields_and_triggers_do_not_parse() {
        let mut body = silver();
        body["schedule"] = json!("hourly");
        assert!(serde_json::from_value::<PipelineRequest>(body).is_err());
        let mut body = silver();
        body["trigger"] = json!({"type": "hourly"});
        assert!(serde_json::from_value::<PipelineRequest>(body).is_err());
        let mut body = silver();
        body["expectations"][0]["on_violation"] = json!("ignore");
        assert!(serde_json::from_value::<PipelineRequest>(body).is_err());
    }

    #[test]
    fn changes_pause_resume_and_retrigger() {
        let manual = Trigger::Manual;
        let pause = PipelineChange {
            paused: Some(true),
            trigger: None,
        };
        assert_eq!(
            pause.apply(PipelineState::Active, manual),
            Ok((PipelineState::Paused, manual))
        );
        let resume = PipelineChange {
            paused: Some(false),
            trigger: Some(Trigger::Continuous),
        };
        assert_eq!(
            resume.apply(PipelineState::Failed, manual),
            Ok((PipelineState::Active, Trigger::Continuous))
        );
        let errors = PipelineChange::default()
            .apply(PipelineState::Active, manual)
            .expect_err("empty");
        assert_eq!(fields(&errors), ["paused"]);
        let errors = PipelineChange {
            paused: None,
            trigger: Some(Trigger::Interval { seconds: 0 }),
        }
        .apply(PipelineState::Active, manual)
        .expect_err("zero");
        assert_eq!(fields(&errors), ["trigger.seconds"]);
    }

    proptest! {
        #[test]
        fn names_that_parse_are_path_segments(raw in "[a-z0-9-]{0,70}") {
            if let Ok(name) = PipelineName::parse(&raw) {
                prop_assert!(name.as_str().len() >= 2 && name.as_str().len() <= MAX_NAME_CHARS);
                prop_assert!(!name.as_str().starts_with('-') && !name.as_str().ends_with('-'));
                prop_assert!(!name.as_str().contains("--"));
                prop_assert!(name.as_str().starts_with(|c: char| c.is_ascii_lowercase()));
            }
        }

        #[test]
        fn a_valid_spec_survives_storage(seconds in MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS, keep_latest: bool) {
            let mut body = silver();
            body["trigger"]["seconds"] = json!(seconds);
            body["dedup"]["keep"] = json!(if keep_latest { "latest" } else { "first" });
            let spec = request(body).validate().expect("valid");
            let stored = serde_json::to_string(&spec).expect("serialize");
            let back: PipelineSpec = serde_json::from_str(&stored).expect("deserialize");
            prop_assert_eq!(back, spec);
        }

        #[test]
        fn validation_never_panics_and_always_names_a_field(
            name in ".{0,8}", zone in "(bronze|silver|gold|x)", expr in ".{0,6}",
        ) {
            let body = json!({
                "name": name,
                "source": {"zone": zone, "table": "t"},
                "target": {"zone": "silver", "table": "t"},
                "select": [{"name": "c", "expr": expr}],
                "expectations": [{"name": "e", "expr": expr, "on_violation": "fail"}],
                "trigger": {"type": "continuous"}
            });
            if let Err(errors) = request(body).validate() {
                prop_assert!(!errors.is_empty());
                prop_assert!(errors.iter().all(|v| !v.field.is_empty() && !v.message.is_empty()));
            }
        }
    }
}
