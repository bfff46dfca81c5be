//! The worker model: which workers the data needs (the desired set, computed from the
//! metadata), and how a reconciler moves the observed set towards it. Pure: inputs in, steps
//! out; the reconciler and the launchers do the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::maintenance::Operation;
use crate::tenant::TenantId;

/// What a worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerKind {
    /// Consumes one Kafka stream; long-running.
    Ingest,
    /// Compacts (or z-orders) one table; scheduled.
    Compact,
    /// Applies retention to one table; scheduled.
    Retention,
    /// Moves one tenant's storage; one-shot.
    Migrate,
    /// Erases one deleted table or tenant; one-shot.
    Purge,
    /// Executes one run of one pipeline (bronze to silver, silver to gold); one-shot.
    Pipeline,
}

impl WorkerKind {
    /// Every kind, in a stable order.
    pub const ALL: [WorkerKind; 6] = [
        Self::Ingest,
        Self::Compact,
        Self::Retention,
        Self::Migrate,
        Self::Purge,
        Self::Pipeline,
    ];

    /// The lowercase name used in ids, labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Compact => "compact",
            Self::Retention => "retention",
            Self::Migrate => "migrate",
            Self::Purge => "purge",
            Self::Pipeline => "pipeline",
        }
    }

    /// Whether the worker runs until stopped (rather than to completion).
    pub fn long_running(self) -> bool {
        self == Self::Ingest
    }

    /// Whether the worker executes a maintenance run (capped per tenant by [`cap_maintenance`]).
    pub fn maintenance(self) -> bool {
        matches!(self, Self::Compact | Self::Retention)
    }
}

impl fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a worker works on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum WorkerTarget {
    /// A stream, by id.
    Stream(Uuid),
    /// A table, by id.
    Table(Uuid),
    /// The tenant as a whole.
    Tenant,
    /// A pipeline, by id.
    Pipeline(Uuid),
}

/// A worker's specification: the same spec always gives the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkerSpec {
    /// What it does.
    pub kind: WorkerKind,
    /// Whose data.
    pub tenant: TenantId,
    /// On what.
    pub target: WorkerTarget,
    /// Maintenance operations (compact and retention workers), in execution order.
    pub operations: Vec<Operation>,
    /// The run it executes (compact, retention and pipeline workers). Not part of the id: a
    /// new run on the same table (or pipeline) is the same worker with a new spec, so it runs
    /// again.
    pub run: Option<Uuid>,
}

impl WorkerSpec {
    /// The ingest worker of a Kafka stream.
    pub fn ingest(tenant: TenantId, stream: Uuid) -> Self {
        Self {
            kind: WorkerKind::Ingest,
            tenant,
            target: WorkerTarget::Stream(stream),
            operations: Vec::new(),
            run: None,
        }
    }

    /// The deterministic id: `{kind}-{tenant}-{12 hex of a hash of the target}`. Stable across
    /// processes and restarts, unique per (kind, tenant, target), and a valid Kubernetes name
    /// (tenant ids are DNS labels of at most 40 characters).
    pub fn id(&self) -> String {
        // The reconciler computes this for every desired worker on every loop: the hash is
        // fed and the hex written without intermediate strings (same bytes as before).
        let mut hash = Sha256::new();
        hash.update(self.kind.as_str());
        hash.update([0]);
        hash.update(self.tenant.as_str());
        hash.update([0]);
        let mut buffer = Uuid::encode_buffer();
        match &self.target {
            WorkerTarget::Stream(id) => {
                hash.update("stream:");
                hash.update(id.hyphenated().encode_lower(&mut buffer).as_bytes());
            }
            WorkerTarget::Table(id) => {
                hash.update("table:");
                hash.update(id.hyphenated().encode_lower(&mut buffer).as_bytes());
            }
            WorkerTarget::Tenant => hash.update("tenant"),
            WorkerTarget::Pipeline(id) => {
                hash.update("pipeline:");
                hash.update(id.hyphenated().encode_lower(&mut buffer).as_bytes());
            }
        }
        let digest = hash.finalize();
        let (kind, tenant) = (self.kind.as_str(), self.tenant.as_str());
        let mut id = String::with_capacity(kind.len() + tenant.len() + 14);
        id.push_str(kind);
        id.push('-');
        id.push_str(tenant);
        id.push('-');
        push_hex(&mut id, &digest[..6]);
        id
    }

    /// A fingerprint of everything that, when changed, makes a failed worker eligible again.
    pub fn fingerprint(&self) -> String {
        // The JSON is hashed as it is written, never collected into a string; a spec always
        // serialises (its maps have string keys), so the hash is of the whole text.
        let mut hash = HashWriter(Sha256::new());
        let _ = serde_json::to_writer(&mut hash, self);
        let digest = hash.0.finalize();
        let mut out = String::with_capacity(16);
        push_hex(&mut out, &digest[..8]);
        out
    }
}

/// Appends `bytes` as lowercase hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Feeds whatever is written into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl WorkerState {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored or requested state.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

impl WorkerKind {
    /// Parses a stored or requested kind.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The stored part of a spec besides its kind and tenant (those have columns of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSpec {
    /// On what.
    pub target: WorkerTarget,
    /// Maintenance operations.
    pub operations: Vec<Operation>,
    /// The maintenance run it executes.
    #[serde(default)]
    pub run: Option<Uuid>,
}

/// One unfinished maintenance run, as the desired-set computation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRun {
    /// Whose table.
    pub tenant: TenantId,
    /// The table.
    pub table: Uuid,
    /// The run.
    pub run: Uuid,
    /// Its operations.
    pub operations: Vec<Operation>,
}

/// What the metadata says exists, for the desired-set computation.
#[derive(Debug, Clone, Default)]
pub struct DesiredInputs {
    /// Kafka streams: (tenant, stream id).
    pub kafka_streams: Vec<(TenantId, Uuid)>,
    /// Unfinished maintenance runs (requested, or queued by the scheduler from what is due).
    pub due: Vec<DueRun>,
    /// Tenants with a migration in progress.
    pub migrating: Vec<TenantId>,
    /// Tables and tenants waiting for their purge: (tenant, target).
    pub purging: Vec<(TenantId, WorkerTarget)>,
    /// Unfinished pipeline runs (queued, or running when a crash interrupted them), oldest
    /// first: (tenant, pipeline id, run id).
    pub pipeline_runs: Vec<(TenantId, Uuid, Uuid)>,
}

/// The workers the data needs now, by id.
pub fn desired(inputs: &DesiredInputs) -> BTreeMap<String, WorkerSpec> {
    let mut out = BTreeMap::new();
    let mut add = |spec: WorkerSpec| {
        out.insert(spec.id(), spec);
    };
    for (tenant, stream) in &inputs.kafka_streams {
        add(WorkerSpec::ingest(tenant.clone(), *stream));
    }
    for due in &inputs.due {
        // A run holds its table's lease, so one worker executes all of its operations; the
        // kind names what it mainly does (a run that deletes rows is a retention worker).
        let kind = if due.operations.contains(&Operation::Retention) {
            WorkerKind::Retention
        } else {
            WorkerKind::Compact
        };
        add(WorkerSpec {
            kind,
            tenant: due.tenant.clone(),
            target: WorkerTarget::Table(due.table),
            operations: due.operations.clone(),
            run: Some(due.run),
        });
    }
    for tenant in &inputs.migrating {
        add(WorkerSpec {
            kind: WorkerKind::Migrate,
            tenant: tenant.clone(),
            target: WorkerTarget::Tenant,
            operations: Vec::new(),
            run: None,
        });
    }
    for (tenant, target) in &inputs.purging {
        add(WorkerSpec {
            kind: WorkerKind::Purge,
            tenant: tenant.clone(),
            target: target.clone(),
            operations: Vec::new(),
            run: None,
        });
    }
    // One worker per pipeline, on its oldest unfinished run: runs of one pipeline read what
    // the previous one wrote, so they go one after the other; the next starts once this one
    // has ended (the same worker with a new spec).
    let mut seen = BTreeSet::new();
    for (tenant, pipeline, run) in &inputs.pipeline_runs {
        if !seen.insert(*pipeline) {
            continue;
        }
        add(WorkerSpec {
            kind: WorkerKind::Pipeline,
            tenant: tenant.clone(),
            target: WorkerTarget::Pipeline(*pipeline),
            operations: Vec::new(),
            run: Some(*run),
        });
    }
    out
}

/// A worker's observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Wanted, not started yet (or waiting out a backoff).
    Pending,
    /// Running and heartbeating.
    Running,
    /// Finished its work (one-shot kinds).
    Succeeded,
    /// Stopped with an error.
    Failed,
}

/// What the launcher reports about one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its state.
    pub state: WorkerState,
    /// The spec fingerprint it runs (or last ran) with.
    pub fingerprint: String,
    /// Consecutive failures.
    pub failures: u32,
    /// When it last failed.
    pub failed_at: Option<DateTime<Utc>>,
    /// Its last heartbeat; for a pending worker, when it was asked to start.
    pub heartbeat: Option<DateTime<Utc>>,
}

/// Restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay after the first failure; doubles with each consecutive one.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
    /// After this many consecutive failures the worker stays failed until its spec changes or
    /// an admin retries it.
    pub max_failures: u32,
    /// A running worker whose heartbeat is older than this is dead.
    pub heartbeat_timeout: Duration,
    /// A pending worker that has not started this long after it was asked to is started again
    /// (its launch was lost: a leader died in between, or a pod never came up).
    pub start_timeout: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_failures: 8,
            heartbeat_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(120),
        }
    }
}

impl RestartPolicy {
    /// The delay before restart number `failures` (1-based): base × 2^(failures−1), capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.cap)
    }
}

/// Whether `at` is missing or more than `limit` before `now`.
fn older_than(at: Option<DateTime<Utc>>, limit: Duration, now: DateTime<Utc>) -> bool {
    at.is_none_or(|at| now.signed_duration_since(at).to_std().unwrap_or_default() > limit)
}

/// One thing the reconciler asks the launcher to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start a worker that is not running.
    Start(WorkerSpec),
    /// Start a failed or dead worker again.
    Restart(WorkerSpec),
    /// Stop a worker nobody wants any more.
    Stop(String),
}

/// The steps that move `observed` towards `desired` at time `now`. Succeeded workers that are
/// desired again start again; failed ones restart after their backoff, and stay failed after
/// `max_failures` unless the spec changed.
pub fn diff(
    desired: &BTreeMap<String, WorkerSpec>,
    observed: &BTreeMap<String, Observed>,
    policy: &RestartPolicy,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (id, spec) in desired {
        let Some(seen) = observed.get(id) else {
            steps.push(Step::Start(spec.clone()));
            continue;
        };
        let changed = seen.fingerprint != spec.fingerprint();
        match seen.state {
            WorkerState::Running => {
                if changed || older_than(seen.heartbeat, policy.heartbeat_timeout, now) {
                    steps.push(Step::Restart(spec.clone()));
                }
            }
            WorkerState::Pending => {
                if changed || older_than(seen.heartbeat, policy.start_timeout, now) {
                    steps.push(Step::Restart(spec.clone()));
                }
            }
            // One-shot work removes its own input when it succeeds (the run ends, the tenant
            // is ready, the table row is gone), so a succeeded worker that is wanted again has
            // new work: a new run, another migration. The reconciler reads the workers before
            // the inputs, so a worker that succeeds between the two reads still shows running.
            WorkerState::Succeeded => steps.push(Step::Restart(spec.clone())),
            WorkerState::Failed => {
                if changed {
                    steps.push(Step::Restart(spec.clone()));
                } else if seen.failures < policy.max_failures {
                    let since = seen
                        .failed_at
                        .map(|at| now.signed_duration_since(at).to_std().unwrap_or_default())
                        .unwrap_or(Duration::MAX);
                    if since >= policy.backoff(seen.failures) {
                        steps.push(Step::Restart(spec.clone()));
                    }
                }
            }
        }
    }
    let wanted: BTreeSet<&String> = desired.keys().collect();
    for (id, seen) in observed {
        if !wanted.contains(id) && matches!(seen.state, WorkerState::Running | WorkerState::Pending) {
            steps.push(Step::Stop(id.clone()));
        }
    }
    steps
}

/// Holds back maintenance starts past `per_tenant` maintenance workers of one tenant at once,
/// so one tenant's hundred requested runs do not become a hundred pods (or tasks) beside
/// everyone else's. `active` names the maintenance workers already running or pending, with
/// their tenant. Restarts of those stay (they replace themselves); other maintenance starts
/// go oldest run first while their tenant has room. Everything else passes unchanged. Held
/// back runs stay queued and are started by a later loop, once a slot frees. Returns the
/// steps to carry out and how many starts were held back.
pub fn cap_maintenance<'a>(
    steps: Vec<Step>,
    active: impl IntoIterator<Item = (&'a str, &'a TenantId)>,
    per_tenant: usize,
) -> (Vec<Step>, usize) {
    let mut owned: BTreeMap<TenantId, usize> = BTreeMap::new();
    let mut active_ids = BTreeSet::new();
    for (id, tenant) in active {
        *owned.entry(tenant.clone()).or_default() += 1;
        active_ids.insert(id.to_owned());
    }
    let (mut starts, mut kept): (Vec<Step>, Vec<Step>) = steps.into_iter().partition(|step| match step {
        Step::Start(spec) | Step::Restart(spec) => {
            spec.kind.maintenance() && !active_ids.contains(&spec.id())
        }
        Step::Stop(_) => false,
    });
    // Run ids are UUIDv7: ordering by them starts the oldest request first.
    starts.sort_by_key(|step| match step {
        Step::Start(spec) | Step::Restart(spec) => spec.run,
        Step::Stop(_) => None,
    });
    let mut held = 0;
    for step in starts {
        let (Step::Start(spec) | Step::Restart(spec)) = &step else {
            continue;
        };
        let count = owned.entry(spec.tenant.clone()).or_default();
        if *count < per_tenant.max(1) {
            *count += 1;
            kept.push(step);
        } else {
            held += 1;
        }
    }
    (kept, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).expect("tenant id")
    }

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn inputs() -> DesiredInputs {
        DesiredInputs {
            kafka_streams: vec![(tenant("acme"), uuid(1))],
            due: vec![
                DueRun {
                    tenant: tenant("acme"),
                    table: uuid(2),
                    run: uuid(20),
                    operations: vec![Operation::Retention, Operation::Vacuum],
                },
                DueRun {
                    tenant: tenant("acme"),
                    table: uuid(4),
                    run: uuid(21),
                    operations: vec![Operation::Compact, Operation::Checkpoint],
                },
            ],
            migrating: vec![tenant("globex")],
            purging: vec![(tenant("initech"), WorkerTarget::Table(uuid(3)))],
            // Two runs of one pipeline (the older one first) and one of another.
            pipeline_runs: vec![
                (tenant("acme"), uuid(5), uuid(50)),
                (tenant("acme"), uuid(5), uuid(51)),
                (tenant("acme"), uuid(6), uuid(52)),
            ],
        }
    }

    #[test]
    fn ids_are_deterministic_distinct_and_kubernetes_names() {
        let a = desired(&inputs());
        let b = desired(&inputs());
        assert_eq!(a, b, "the same inputs give the same ids");
        let kinds: Vec<WorkerKind> = a.values().map(|s| s.kind).collect();
        assert_eq!(a.len(), 7, "{a:#?}");
        for kind in WorkerKind::ALL {
            assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
        }
        for id in a.keys() {
            assert!(id.len() <= 63, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{id}"
            );
        }
        let other_stream = WorkerSpec {
            kind: WorkerKind::Ingest,
            tenant: tenant("acme"),
            target: WorkerTarget::Stream(uuid(9)),
            operations: vec![],
            run: None,
        };
        assert!(!a.contains_key(&other_stream.id()), "another target, another id");
        let retention = a
            .values()
            .find(|s| s.kind == WorkerKind::Retention)
            .expect("retention");
        assert_eq!(retention.operations, [Operation::Retention, Operation::Vacuum]);
        let compact = a
            .values()
            .find(|s| s.kind == WorkerKind::Compact)
            .expect("compact");
        assert_eq!(compact.operations, [Operation::Compact, Operation::Checkpoint]);
        // One worker per pipeline, on its oldest run; the other pipeline has its own.
        let mut runs: Vec<(WorkerTarget, Option<Uuid>)> = a
            .values()
            .filter(|s| s.kind == WorkerKind::Pipeline)
            .map(|s| (s.target.clone(), s.run))
            .collect();
        runs.sort();
        assert_eq!(
            runs,
            [
                (WorkerTarget::Pipeline(uuid(5)), Some(uuid(50))),
                (WorkerTarget::Pipeline(uuid(6)), Some(uuid(52)))
            ]
        );
    }

    fn observed(state: WorkerState, spec: &WorkerSpec, failures: u32, at: DateTime<Utc>) -> Observed {
        Observed {
            state,
            fingerprint: spec.fingerprint(),
            failures,
            failed_at: (state == WorkerState::Failed).then_some(at),
            heartbeat: (state == WorkerState::Running).then_some(at),
        }
    }

    #[test]
    fn missing_workers_start_and_unwanted_ones_stop() {
        let want = desired(&inputs());
        let now = Utc::now();
        let steps = diff(&want, &BTreeMap::new(), &RestartPolicy::default(), now);
        assert_eq!(steps.len(), 7);
        assert!(steps.iter().all(|s| matches!(s, Step::Start(_))));
        let mut seen: BTreeMap<String, Observed> = want
            .iter()
            .map(|(id, spec)| (id.clone(), observed(WorkerState::Running, spec, 0, now)))
            .collect();
        assert!(
            diff(&want, &seen, &RestartPolicy::default(), now).is_empty(),
            "in step: nothing to do"
        );
        seen.insert(
            "ingest-gone-000000000000".into(),
            Observed {
                state: WorkerState::Running,
                fingerprint: String::new(),
                failures: 0,
                failed_at: None,
                heartbeat: Some(now),
            },
        );
        assert_eq!(
            diff(&want, &seen, &RestartPolicy::default(), now),
            [Step::Stop("ingest-gone-000000000000".into())]
        );
    }

    #[test]
    fn failures_back_off_then_settle_until_the_spec_changes() {
        let policy = RestartPolicy::default();
        assert_eq!(policy.backoff(1), Duration::from_secs(1));
        assert_eq!(policy.backoff(4), Duration::from_secs(8));
        assert_eq!(policy.backoff(40), Duration::from_secs(300), "capped");
        let want = desired(&inputs());
        let (id, spec) = want.iter().next().expect("one");
        let failed_at = Utc::now();
        let one: BTreeMap<String, WorkerSpec> = [(id.clone(), spec.clone())].into();
        let state = |failures| -> BTreeMap<String, Observed> {
            [(
                id.clone(),
                observed(WorkerState::Failed, spec, failures, failed_at),
            )]
            .into()
        };
        let at = |secs: i64| failed_at + chrono::Duration::seconds(secs);
        assert!(
            diff(&one, &state(3), &policy, at(3)).is_empty(),
            "4 s backoff not over"
        );
        assert_eq!(
            diff(&one, &state(3), &policy, at(4)),
            [Step::Restart(spec.clone())]
        );
        assert!(
            diff(&one, &state(policy.max_failures), &policy, at(100_000)).is_empty(),
            "settled at failed"
        );
        let mut changed = spec.clone();
        changed.run = Some(uuid(99));
        let changed_want: BTreeMap<String, WorkerSpec> = [(id.clone(), changed.clone())].into();
        assert_eq!(
            diff(&changed_want, &state(policy.max_failures), &policy, at(0)),
            [Step::Restart(changed.clone())],
            "a new spec (another run) gets a new chance"
        );
        let done: BTreeMap<String, Observed> =
            [(id.clone(), observed(WorkerState::Succeeded, spec, 0, failed_at))].into();
        assert_eq!(
            diff(&changed_want, &done, &policy, at(1)),
            [Step::Restart(changed)],
            "a succeeded worker wanted again (a new run on the same table) runs again"
        );
        assert!(
            diff(&BTreeMap::new(), &done, &policy, at(1)).is_empty(),
            "a succeeded worker nobody wants is left as it is"
        );
    }

    #[test]
    fn lost_launches_start_again_after_the_start_timeout() {
        let policy = RestartPolicy::default();
        let want = desired(&inputs());
        let (id, spec) = want.iter().next().expect("one");
        let one: BTreeMap<String, WorkerSpec> = [(id.clone(), spec.clone())].into();
        let asked = Utc::now();
        let pending: BTreeMap<String, Observed> = [(
            id.clone(),
            Observed {
                heartbeat: Some(asked),
                ..observed(WorkerState::Pending, spec, 0, asked)
            },
        )]
        .into();
        assert!(diff(&one, &pending, &policy, asked + chrono::Duration::seconds(120)).is_empty());
        assert_eq!(
            diff(&one, &pending, &policy, asked + chrono::Duration::seconds(121)),
            [Step::Restart(spec.clone())]
        );
    }

    #[test]
    fn stale_heartbeats_restart_running_workers() {
        let policy = RestartPolicy::default();
        let want = desired(&inputs());
        let (id, spec) = want.iter().next().expect("one");
        let one: BTreeMap<String, WorkerSpec> = [(id.clone(), spec.clone())].into();
        let beat = Utc::now();
        let seen: BTreeMap<String, Observed> =
            [(id.clone(), observed(WorkerState::Running, spec, 0, beat))].into();
        assert!(diff(&one, &seen, &policy, beat + chrono::Duration::seconds(10)).is_empty());
        assert_eq!(
            diff(&one, &seen, &policy, beat + chrono::Duration::seconds(11)),
            [Step::Restart(spec.clone())]
        );
    }

    fn maintenance_spec(tenant_id: &str, n: u128) -> WorkerSpec {
        WorkerSpec {
            kind: if n.is_multiple_of(2) {
                WorkerKind::Compact
            } else {
                WorkerKind::Retention
            },
            tenant: tenant(tenant_id),
            target: WorkerTarget::Table(uuid(n)),
            operations: vec![Operation::Compact],
            run: Some(uuid(1000 + n)),
        }
    }

    #[test]
    fn one_tenants_many_runs_start_one_at_a_time_beside_other_tenants() {
        let acme: Vec<WorkerSpec> = (1..=5).map(|n| maintenance_spec("acme", n)).collect();
        let bravo = maintenance_spec("bravo", 9);
        let ingest = WorkerSpec::ingest(tenant("acme"), uuid(77));
        let mut steps: Vec<Step> = acme.iter().rev().cloned().map(Step::Start).collect();
        steps.push(Step::Start(bravo.clone()));
        steps.push(Step::Start(ingest.clone()));
        steps.push(Step::Stop("gone".into()));
        let (kept, held) = cap_maintenance(steps, std::iter::empty(), 1);
        assert_eq!(held, 4);
        assert!(
            kept.contains(&Step::Start(acme[0].clone())),
            "the oldest run of acme: {kept:?}"
        );
        assert!(kept.contains(&Step::Start(bravo)), "{kept:?}");
        assert!(kept.contains(&Step::Start(ingest)), "ingest is not maintenance");
        assert!(kept.contains(&Step::Stop("gone".into())));
        assert_eq!(kept.len(), 4, "{kept:?}");

        // While acme's first run is active, none of its others starts; a restart of the
        // active one itself (a lost heartbeat) still goes.
        let active_id = acme[0].id();
        let active = [(active_id.as_str(), &acme[0].tenant)];
        let steps = vec![Step::Restart(acme[0].clone()), Step::Start(acme[1].clone())];
        let (kept, held) = cap_maintenance(steps, active, 1);
        assert_eq!((kept, held), (vec![Step::Restart(acme[0].clone())], 1));

        // A cap of 2 starts the two oldest.
        let steps = acme.iter().cloned().map(Step::Start).collect();
        let (kept, held) = cap_maintenance(steps, std::iter::empty(), 2);
        assert_eq!(
            kept,
            vec![Step::Start(acme[0].clone()), Step::Start(acme[1].clone())]
        );
        assert_eq!(held, 3);
    }

    /// The id and fingerprint as first written (formatted strings), to pin the faster ones
    /// to the same output: ids are stored and name Kubernetes objects.
    fn reference_id(spec: &WorkerSpec) -> String {
        let mut hash = Sha256::new();
        hash.update(spec.kind.as_str());
        hash.update([0]);
        hash.update(spec.tenant.as_str());
        hash.update([0]);
        match &spec.target {
            WorkerTarget::Stream(id) => hash.update(format!("stream:{id}")),
            WorkerTarget::Table(id) => hash.update(format!("table:{id}")),
            WorkerTarget::Tenant => hash.update("tenant"),
            WorkerTarget::Pipeline(id) => hash.update(format!("pipeline:{id}")),
        }
        let digest = hash.finalize();
        let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        format!("{}-{}-{short}", spec.kind.as_str(), spec.tenant)
    }

    fn reference_fingerprint(spec: &WorkerSpec) -> String {
        let text = serde_json::to_string(spec).unwrap_or_default();
        let digest = Sha256::digest(text.as_bytes());
        digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    proptest::proptest! {
        #[test]
        fn ids_and_fingerprints_are_those_first_written(
            kind in 0usize..6,
            tenant_id in "[a-z][a-z0-9-]{1,20}[a-z0-9]",
            target in 0u8..4,
            n in proptest::num::u128::ANY,
            operations in proptest::collection::vec(0usize..3, 0..4),
            run in proptest::option::of(proptest::num::u128::ANY),
        ) {
            let ops = [Operation::Compact, Operation::Vacuum, Operation::Retention];
            let spec = WorkerSpec {
                kind: WorkerKind::ALL[kind],
                tenant: TenantId::from_trusted(tenant_id),
                target: match target {
                    0 => WorkerTarget::Stream(uuid(n)),
                    1 => WorkerTarget::Table(uuid(n)),
                    2 => WorkerTarget::Pipeline(uuid(n)),
                    _ => WorkerTarget::Tenant,
                },
                operations: operations.into_iter().map(|i| ops[i]).collect(),
                run: run.map(uuid),
            };
            proptest::prop_assert_eq!(spec.id(), reference_id(&spec));
            proptest::prop_assert_eq!(spec.fingerprint(), reference_fingerprint(&spec));
        }
    }

    proptest::proptest! {
        /// Whatever is asked: no tenant ends with more than its cap of maintenance workers
        /// (counting those already active), nothing but maintenance starts is dropped, and a
        /// start is held back only while its tenant is at its cap.
        #[test]
        fn the_cap_holds_and_only_maintenance_waits(
            asked in proptest::collection::vec((0u8..3, 0u128..40, proptest::bool::ANY), 0..40),
            active in proptest::collection::vec((0u8..3, 40u128..60), 0..6),
            per_tenant in 1usize..4,
        ) {
            let names = ["acme", "bravo", "carol"];
            let mut active = active;
            active.sort_unstable();
            active.dedup();
            let active_specs: Vec<WorkerSpec> = active.iter().map(|(t, n)| maintenance_spec(names[*t as usize], *n)).collect();
            let active_ids: Vec<String> = active_specs.iter().map(WorkerSpec::id).collect();
            let mut steps = Vec::new();
            for (t, n, is_ingest) in &asked {
                let spec = if *is_ingest {
                    WorkerSpec::ingest(tenant(names[*t as usize]), uuid(*n))
                } else {
                    maintenance_spec(names[*t as usize], *n)
                };
                if !steps.contains(&Step::Start(spec.clone())) {
                    steps.push(Step::Start(spec));
                }
            }
            let pairs = active_ids.iter().map(String::as_str).zip(active_specs.iter().map(|s| &s.tenant));
            let (kept, held) = cap_maintenance(steps.clone(), pairs, per_tenant);
            proptest::prop_assert_eq!(kept.len() + held, steps.len());
            for name in names {
                let before = active_specs.iter().filter(|s| s.tenant.as_str() == name).count();
                let started = kept.iter().filter(|step| matches!(step, Step::Start(s) if s.kind.maintenance() && s.tenant.as_str() == name)).count();
                let asked_for = steps.iter().filter(|step| matches!(step, Step::Start(s) if s.kind.maintenance() && s.tenant.as_str() == name)).count();
                let room = per_tenant.saturating_sub(before);
                proptest::prop_assert_eq!(started, asked_for.min(room), "{}", name);
            }
            for step in &steps {
                if let Step::Start(spec) = step && !spec.kind.maintenance() {
                    proptest::prop_assert!(kept.contains(step));
                }
            }
        }
    }
}
