//! The reconciler: on the process holding the leadership lock, one loop reads what exists,
//! computes the desired workers (`tenancy::worker::desired`), diffs them against the recorded
//! ones (`diff`) and carries out the steps through the launcher. It runs every
//! `reconcile_every` and at once when woken (a stream created or deleted, maintenance
//! requested, a table or tenant deleted, an admin retry). The scheduler, on the same leader,
//! queues maintenance runs for what is due; the loop then turns them into workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenancy::maintenance::DuePolicy;
use tenancy::store::{Leadership, MetadataStore, StoreError, WorkerRecord, WorkerSummary};
use tenancy::tenant::TenantStatus;
use tenancy::worker::{
    DesiredInputs, Observed, RestartPolicy, Step, WorkerKind, WorkerSpec, WorkerState, WorkerTarget, desired,
    diff,
};

use super::{Launcher, WorkerSettings, WorkersError};
use crate::catalog::Catalog;

/// What the last reconcile saw and did, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Whether this process leads.
    pub leading: bool,
    /// Loops run since start.
    pub loops: u64,
    /// How long the last loop took.
    pub last_duration: Duration,
    /// Workers by (kind, state), as recorded after the last loop.
    pub by_kind_state: BTreeMap<(WorkerKind, WorkerState), u64>,
    /// Restarts by kind, summed over the recorded workers.
    pub restarts: BTreeMap<WorkerKind, u64>,
    /// Placement migrations by phase (`draining`, `copying`, `cleanup`).
    pub migrations: BTreeMap<&'static str, u64>,
    /// Objects copied and listed, summed over the migrations copying now.
    pub migration_objects: (u64, u64),
    /// Maintenance scheduling passes finished since start (each reads every table).
    pub schedule_passes: u64,
}

/// The reconcile loop and the maintenance scheduler.
pub struct Reconciler {
    store: Arc<dyn MetadataStore>,
    catalog: Arc<Catalog>,
    launcher: Arc<dyn Launcher>,
    settings: WorkerSettings,
    due_policy: DuePolicy,
    wake: Arc<tokio::sync::Notify>,
    stopping: AtomicBool,
    scheduling: AtomicBool,
    report: Mutex<ReconcileReport>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The scheduled rebalance: what runs it and how often (set before `spawn`).
    rebalance: Mutex<Option<(Arc<crate::tenants::Tenants>, Duration)>>,
    rebalancing: AtomicBool,
    /// Erasures the scheduled pass moves on (set before `spawn`).
    erasures: Mutex<Option<Arc<crate::erasures::Erasures>>>,
    erasing: AtomicBool,
    pipelines: Mutex<Option<crate::pipelines::Pipelines>>,
    piping: AtomicBool,
    /// What the scheduler read of each table's snapshot on its last pass.
    last_reads: Mutex<tenancy::last_read::LastReads>,
}

/// A leadership this process holds, watched on a task of its own: the lock is confirmed
/// every `every`, and a confirmation that fails or takes longer than `every` (a connection
/// cut or hanging) fires `lost`. The watch owns the lock, so ending it gives the lock up.
struct Held {
    lost: tokio_util::sync::CancellationToken,
    watch: tokio::task::JoinHandle<()>,
}

impl Held {
    fn keep(mut lock: Leadership, every: Duration) -> Self {
        let lost = tokio_util::sync::CancellationToken::new();
        let fire = lost.clone();
        let watch = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if !tokio::time::timeout(every, lock.alive()).await.unwrap_or(false) {
                    tracing::warn!("the leadership lock is lost (its connection failed or hangs)");
                    fire.cancel();
                    return;
                }
            }
        });
        Self { lost, watch }
    }

    /// Gives the lock up and waits until it is gone (its connection closed or file unlocked).
    async fn release(mut self) {
        self.watch.abort();
        let _ = (&mut self.watch).await;
    }
}

impl Drop for Held {
    /// However the loop ends, the lock does not outlive it.
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// Workers read per query. Summaries are about a hundred bytes, so a page of 5,000 costs
/// little memory and 40,000 workers take 8 round trips.
const PAGE: u32 = 5_000;

impl Reconciler {
    /// A reconciler launching through `launcher`; `wake` is shared with whatever changes the
    /// desired set.
    pub fn new(
        catalog: Arc<Catalog>,
        launcher: Arc<dyn Launcher>,
        settings: WorkerSettings,
        wake: Arc<tokio::sync::Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store: catalog.store().clone(),
            catalog,
            launcher,
            settings,
            // Checkpoints are written by the writers themselves every few commits.
            due_policy: DuePolicy {
                checkpoint_every: 0,
                ..DuePolicy::default()
            },
            wake,
            stopping: AtomicBool::new(false),
            scheduling: AtomicBool::new(false),
            report: Mutex::new(ReconcileReport::default()),
            task: Mutex::new(None),
            rebalance: Mutex::new(None),
            rebalancing: AtomicBool::new(false),
            erasures: Mutex::new(None),
            erasing: AtomicBool::new(false),
            pipelines: Mutex::new(None),
            piping: AtomicBool::new(false),
            last_reads: Mutex::new(Default::default()),
        })
    }

    /// Has the leader rebalance placements every `every` (after counting volumes), through
    /// `tenants`, as `POST /v1/admin/placement/rebalance` would. Call before `spawn`.
    pub fn schedule_rebalance(&self, tenants: Arc<crate::tenants::Tenants>, every: Duration) {
        *self.rebalance.lock().unwrap_or_else(|p| p.into_inner()) = Some((tenants, every));
    }

    /// Has the leader's scheduled pass move unfinished erasures on (those a crash or a
    /// failure interrupted, and those waiting for their vacuum). Call before `spawn`.
    pub fn schedule_erasures(&self, erasures: Arc<crate::erasures::Erasures>) {
        *self.erasures.lock().unwrap_or_else(|p| p.into_inner()) = Some(erasures);
    }

    /// Has the leader's scheduled pass queue the runs that pipelines' triggers make due.
    /// Call before `spawn`.
    pub fn schedule_pipelines(&self, pipelines: crate::pipelines::Pipelines) {
        *self.pipelines.lock().unwrap_or_else(|p| p.into_inner()) = Some(pipelines);
    }

    /// Counts volumes, then rebalances as the plane's own actor; returns what started.
    pub async fn rebalance_now(
        &self,
        tenants: &crate::tenants::Tenants,
    ) -> Result<crate::tenants::RebalanceOutcome, crate::provision::ProvisionError> {
        self.collect_volumes().await?;
        let actor = tenancy::audit::Actor {
            subject: "lakeplane".to_owned(),
            role: None,
            request_id: None,
            source: None,
            token_id: None,
            issuer: None,
        };
        tenants.rebalance(false, &actor).await
    }

    /// Wakes the loop now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// What the last loop saw.
    pub fn report(&self) -> ReconcileReport {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs the loop in the background until `shutdown`: tries for the leadership every
    /// interval, reconciles while it holds it, and stops its local workers when it loses it.
    pub fn spawn(self: &Arc<Self>) {
        let this = self.clone();
        let task = tokio::spawn(async move { this.run().await });
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    async fn run(self: Arc<Self>) {
        let mut lead: Option<Held> = None;
        let mut next_schedule = Instant::now() + self.settings.schedule_every;
        let mut next_pipelines = Instant::now();
        let rebalance = self.rebalance.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut next_rebalance = rebalance.as_ref().map(|(_, every)| Instant::now() + *every);
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                // Workers first; the lock (its connection) goes afterwards.
                self.launcher.stop_local().await;
                if let Some(held) = lead.take() {
                    held.release().await;
                }
                return;
            }
            if lead.is_none() {
                match self.store.try_lead().await {
                    Ok(Some(won)) => {
                        tracing::info!(
                            launcher = self.launcher.name(),
                            "this process leads: it reconciles the workers"
                        );
                        lead = Some(Held::keep(won, self.settings.lease_check()));
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %tenancy::error_chain(&e), "cannot try for leadership"),
                }
            }
            if let Some(held) = &lead {
                // A reconcile that hangs on a lost database must not keep a deposed leader
                // acting: losing the lock interrupts it.
                let lost = held.lost.clone();
                tokio::select! {
                    done = self.reconcile_once() => if let Err(e) = done {
                        tracing::warn!(error = %tenancy::error_chain(&e), "reconcile failed; retried next loop");
                    },
                    _ = lost.cancelled() => {}
                }
                if !lost.is_cancelled() {
                    // Pipeline triggers: what is due is queued, on a task of its own (it reads
                    // each triggered pipeline's source log), one pass at a time; the runs are
                    // `pipeline` workers of the next loop.
                    let pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(pipelines) = pipelines
                        && !self.settings.pipeline_every.is_zero()
                        && Instant::now() >= next_pipelines
                        && !self.piping.swap(true, Ordering::SeqCst)
                    {
                        next_pipelines = Instant::now() + self.settings.pipeline_every;
                        let this = self.clone();
                        tokio::spawn(async move {
                            // Cleared however the pass ends, a panic included.
                            struct Done(Arc<Reconciler>);
                            impl Drop for Done {
                                fn drop(&mut self) {
                                    self.0.piping.store(false, Ordering::SeqCst);
                                }
                            }
                            let done = Done(this);
                            match pipelines.trigger_due().await {
                                Ok(0) => {}
                                Ok(queued) => {
                                    tracing::debug!(pipelines = queued, "pipeline runs waiting for triggers");
                                    done.0.wake();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %tenancy::error_chain(&e), "pipeline trigger pass failed; the next pass retries")
                                }
                            }
                        });
                    }
                    if !self.settings.schedule_every.is_zero()
                        && Instant::now() >= next_schedule
                        && !self.scheduling.swap(true, Ordering::SeqCst)
                    {
                        next_schedule = Instant::now() + self.settings.schedule_every;
                        // It reads every table's Delta snapshot: on its own task, so the loop
                        // keeps restarting and stopping workers meanwhile.
                        let this = self.clone();
                        tokio::spawn(async move {
                            match this.collect_volumes().await {
                                Ok(c) if c.commits > 0 => tracing::info!(
                                    tables = c.tables,
                                    commits = c.commits,
                                    volume_bytes = c.written.volume(),
                                    rewritten_bytes = c.written.rewritten,
                                    "written volumes counted"
                                ),
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %tenancy::error_chain(&e), "volume collection failed; the next pass retries")
                                }
                            }
                            match this.schedule_due().await {
                                Ok(0) => {}
                                Ok(queued) => {
                                    tracing::info!(runs = queued, "maintenance queued for what is due");
                                    this.wake();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %tenancy::error_chain(&e), "maintenance scheduling failed")
                                }
                            }
                            // Erasures scan, delete and vacuum whole tables: on a task of their
                            // own, so they never hold up volume counting and maintenance.
                            let erasures = this.erasures.lock().unwrap_or_else(|p| p.into_inner()).clone();
                            if let Some(erasures) = erasures
                                && !this.erasing.swap(true, Ordering::SeqCst)
                            {
                                let this = this.clone();
                                tokio::spawn(async move {
                                    match erasures.advance_all().await {
                                        Ok(0) => {}
                                        Ok(moved) => tracing::info!(erasures = moved, "erasures moved on"),
                                        Err(e) => {
                                            tracing::warn!(error = %tenancy::error_chain(&e), "erasure pass failed; the next pass retries")
                                        }
                                    }
                                    this.erasing.store(false, Ordering::SeqCst);
                                });
                            }
                            this.report
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .schedule_passes += 1;
                            this.scheduling.store(false, Ordering::SeqCst);
                        });
                    }
                    if let (Some((tenants, every)), Some(due)) = (&rebalance, next_rebalance)
                        && Instant::now() >= due
                        && !self.rebalancing.swap(true, Ordering::SeqCst)
                    {
                        next_rebalance = Some(Instant::now() + *every);
                        let (this, tenants) = (self.clone(), tenants.clone());
                        tokio::spawn(async move {
                            match this.rebalance_now(&tenants).await {
                                Ok(done) => tracing::info!(
                                    promotions = done.promotions.len(),
                                    demotions = done.demotions.len(),
                                    migrating = done.migrating.len(),
                                    waiting = done.skipped.len(),
                                    "scheduled rebalance"
                                ),
                                Err(e) => {
                                    tracing::warn!(error = %tenancy::error_chain(&e), "scheduled rebalance failed; the next one retries")
                                }
                            }
                            this.rebalancing.store(false, Ordering::SeqCst);
                        });
                    }
                }
            }
            let lost = lead.as_ref().map(|held| held.lost.clone()).unwrap_or_default();
            tokio::select! {
                _ = tokio::time::timeout(self.settings.reconcile_every, self.wake.notified()) => {}
                _ = lost.cancelled(), if lead.is_some() => {}
            }
            if lost.is_cancelled()
                && let Some(held) = lead.take()
            {
                tracing::warn!("leadership lost: stopping this process's workers");
                self.report.lock().unwrap_or_else(|p| p.into_inner()).leading = false;
                self.launcher.stop_local().await;
                held.release().await;
                tracing::warn!("stepped down: this process's workers are stopped");
            }
        }
    }

    /// Stops the loop and this process's workers, then gives up the leadership (before the
    /// store closes: the lock's connection must go back for the pool to close).
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        match task {
            Some(task) => {
                let _ = task.await;
            }
            None => self.launcher.stop_local().await,
        }
    }

    /// Every recorded worker, as the loop reads it.
    pub async fn recorded(&self) -> Result<Vec<WorkerSummary>, StoreError> {
        read_workers(self.store.as_ref()).await
    }

    /// One loop: desired set, diff, steps. Returns the steps carried out.
    pub async fn reconcile_once(&self) -> Result<Vec<Step>, WorkersError> {
        let started = Instant::now();
        let now = tenancy::now();
        let Plan {
            want,
            rows,
            steps,
            held,
        } = plan(
            self.store.as_ref(),
            &self.settings.policy,
            self.settings.maintenance_per_tenant,
            now,
        )
        .await?;
        if held > 0 {
            tracing::debug!(held, "maintenance runs held queued by the per-tenant cap");
        }
        for step in &steps {
            let done = match step {
                Step::Start(spec) => self.launch(spec, None).await,
                Step::Restart(spec) => self.restart(spec).await,
                Step::Stop(id) => self.stop_unwanted(id).await,
            };
            if let Err(e) = done {
                tracing::warn!(error = %tenancy::error_chain(&e), "reconcile step failed; retried next loop");
            }
        }
        let wanted: BTreeSet<String> = want.into_keys().collect();
        self.forget_finished(&rows, &wanted, now).await?;
        if let Err(e) = self.launcher.remove_orphans(&wanted).await {
            tracing::warn!(error = %tenancy::error_chain(&e), "cannot remove orphaned workers");
        }
        self.record_report(started.elapsed()).await?;
        Ok(steps)
    }

    /// Stops a worker and launches it again with its history: the loop read only summaries,
    /// so the full record (restarts, last error, progress) is read now, for this one worker.
    async fn restart(&self, spec: &WorkerSpec) -> Result<(), WorkersError> {
        let id = spec.id();
        self.launcher.stop(&id).await?;
        // Gone since the loop's read (deleted by an admin or another loop): it starts afresh.
        let before = self.store.get_worker(&id).await?;
        self.launch(spec, before.as_ref()).await
    }

    async fn stop_unwanted(&self, id: &str) -> Result<(), WorkersError> {
        self.launcher.stop(id).await?;
        self.store.delete_worker(id).await?;
        tracing::info!(worker = %id, "worker stopped: no longer needed");
        Ok(())
    }

    /// Records the worker as pending (keeping its history on a restart) and launches it.
    async fn launch(&self, spec: &WorkerSpec, before: Option<&WorkerRecord>) -> Result<(), WorkersError> {
        let now = tenancy::now();
        let record = match before {
            Some(old) => {
                let same_spec = old.spec.fingerprint() == spec.fingerprint();
                WorkerRecord {
                    spec: spec.clone(),
                    state: WorkerState::Pending,
                    restarts: old.restarts.saturating_add(1),
                    // A new spec gets a new run of chances.
                    failures: if same_spec { old.failures } else { 0 },
                    last_error: old.last_error.clone(),
                    failed_at: old.failed_at,
                    last_heartbeat: old.last_heartbeat,
                    owner: None,
                    progress: old.progress.clone(),
                    updated_at: now,
                }
            }
            None => WorkerRecord::pending(spec.clone(), now),
        };
        self.store.put_worker(&record).await?;
        tracing::info!(worker = %spec.id(), kind = %spec.kind, tenant = %spec.tenant, restarts = record.restarts, "worker launched");
        if let Err(e) = self.launcher.start(spec).await {
            // A launch that fails counts as a failure, so it is retried with backoff and its
            // error shows on the worker.
            let failed = WorkerRecord {
                state: WorkerState::Failed,
                failures: record.failures.saturating_add(1),
                last_error: Some(format!("cannot launch: {}", tenancy::error_chain(&e))),
                failed_at: Some(tenancy::now()),
                ..record
            };
            self.store.put_worker(&failed).await?;
            return Err(e);
        }
        Ok(())
    }

    /// Drops finished workers nobody wants any more once they have been visible for
    /// `keep_finished`.
    async fn forget_finished(
        &self,
        rows: &[WorkerSummary],
        wanted: &BTreeSet<String>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let keep = chrono::Duration::from_std(self.settings.keep_finished).unwrap_or(chrono::Duration::MAX);
        for row in rows {
            let finished = matches!(row.state, WorkerState::Succeeded | WorkerState::Failed);
            if finished && !wanted.contains(&row.id) && now.signed_duration_since(row.updated_at) > keep {
                self.store.delete_worker(&row.id).await?;
            }
        }
        Ok(())
    }

    async fn record_report(&self, took: Duration) -> Result<(), StoreError> {
        let rows = self.recorded().await?;
        let mut by_kind_state = BTreeMap::new();
        let mut restarts = BTreeMap::new();
        for row in &rows {
            *by_kind_state.entry((row.kind, row.state)).or_insert(0) += 1;
            *restarts.entry(row.kind).or_insert(0) += u64::from(row.restarts);
        }
        let mut migrations = BTreeMap::new();
        let mut migration_objects = (0, 0);
        for migration in self.store.migrations().await? {
            let progress = self
                .store
                .migration_progress(&migration.tenant)
                .await?
                .unwrap_or_default();
            let stage = migration.stage(&progress);
            if stage == "copying" {
                migration_objects.0 += progress.objects_copied;
                migration_objects.1 += progress.objects_total;
            }
            *migrations.entry(stage).or_insert(0) += 1;
        }
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        report.migrations = migrations;
        report.migration_objects = migration_objects;
        report.leading = true;
        report.loops += 1;
        report.last_duration = took;
        report.by_kind_state = by_kind_state;
        report.restarts = restarts;
        Ok(())
    }

    /// Counts what every table was written since the last pass into its tenant's daily volumes
    /// (exactly once, see [`crate::volume`]) and refreshes the 30-day volumes placement ranks
    /// by. Runs at the start of each scheduler pass.
    pub async fn collect_volumes(&self) -> Result<crate::volume::Collected, StoreError> {
        crate::volume::collect(&self.catalog, tenancy::now().date_naive()).await
    }

    /// Queues a maintenance run on every table of a ready tenant with something due and no
    /// unfinished run; returns how many were queued. Table statistics come from each table's
    /// Delta snapshot, read again only when its log moved since the last pass (see
    /// [`super::scheduler`]), so this runs on its own, slower schedule.
    pub async fn schedule_due(&self) -> Result<usize, WorkersError> {
        // Taken out for the pass (passes never overlap: `scheduling` guards them). A pass that
        // fails part-way loses what it read, so the next one reads every table again.
        let mut last = std::mem::take(&mut *self.last_reads.lock().unwrap_or_else(|p| p.into_inner()));
        let pass = super::scheduler::pass(&self.catalog, &self.due_policy, &mut last).await?;
        *self.last_reads.lock().unwrap_or_else(|p| p.into_inner()) = last;
        tracing::debug!(
            tables = pass.tables,
            snapshots_read = pass.snapshots_read,
            unchanged = pass.unchanged,
            unreadable = pass.unreadable,
            "maintenance scheduling pass"
        );
        Ok(pass.queued)
    }
}

/// What one loop decides, before any step is carried out.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workers the data needs, by id.
    pub want: BTreeMap<String, WorkerSpec>,
    /// The recorded workers, by id.
    pub rows: Vec<WorkerSummary>,
    /// The steps, after the per-tenant maintenance cap.
    pub steps: Vec<Step>,
    /// Maintenance starts held back by the cap.
    pub held: usize,
}

/// Reads the recorded workers and the inputs, computes the desired set and diffs: everything a
/// loop does before its steps (the steps need the launcher). `lakeplane-bench reconcile`
/// times this.
pub async fn plan(
    store: &dyn MetadataStore,
    policy: &RestartPolicy,
    maintenance_per_tenant: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Plan, StoreError> {
    // Workers first: one that succeeds after this read has removed its input before the
    // inputs are read, so it is neither restarted nor seen as still wanted.
    let rows = read_workers(store).await?;
    let inputs = read_inputs(store).await?;
    Ok(decide(rows, &inputs, policy, maintenance_per_tenant, now))
}

/// The pure part of [`plan`]: the desired set from `inputs`, diffed against the recorded
/// `rows`, capped per tenant.
pub fn decide(
    rows: Vec<WorkerSummary>,
    inputs: &DesiredInputs,
    policy: &RestartPolicy,
    maintenance_per_tenant: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Plan {
    let want = desired(inputs);
    let observed: BTreeMap<String, Observed> = rows.iter().map(|w| (w.id.clone(), observe(w))).collect();
    let active = rows
        .iter()
        .filter(|w| w.kind.maintenance() && matches!(w.state, WorkerState::Running | WorkerState::Pending))
        .map(|w| (w.id.as_str(), &w.tenant));
    let (steps, held) = tenancy::worker::cap_maintenance(
        diff(&want, &observed, policy, now),
        active,
        maintenance_per_tenant,
    );
    Plan {
        want,
        rows,
        steps,
        held,
    }
}

/// Reads what exists into the desired-set inputs: Kafka streams, unfinished maintenance runs,
/// migrating tenants, tables waiting for their purge and unfinished pipeline runs. Each as ids and the few columns the
/// desired set needs, never whole records.
pub async fn read_inputs(store: &dyn MetadataStore) -> Result<DesiredInputs, StoreError> {
    let kafka_streams = store.kafka_streams().await?;
    let migrating = store.tenants_with_status(TenantStatus::Migrating).await?;
    // A migrating tenant's keys are being copied: no maintenance or purge writes there until
    // it is ready (a running one is stopped; its run resumes after the switch).
    let moving: BTreeSet<&tenancy::tenant::TenantId> = migrating.iter().collect();
    let due = store
        .due_runs()
        .await?
        .into_iter()
        // A purge holds the lease with an empty run of its own; it is the purge worker.
        .filter(|r| !r.operations.is_empty() && !moving.contains(&r.tenant))
        .collect();
    let purging = store
        .deleting_tables()
        .await?
        .into_iter()
        .filter(|(tenant, _)| !moving.contains(tenant))
        .map(|(tenant, id)| (tenant, WorkerTarget::Table(id)))
        .collect();
    // Pipeline runs write their tenant's tables: held back during a migration too.
    let pipeline_runs = store
        .unfinished_pipeline_runs()
        .await?
        .into_iter()
        .filter(|(tenant, _, _)| !moving.contains(tenant))
        .collect();
    Ok(DesiredInputs {
        kafka_streams,
        due,
        migrating,
        purging,
        pipeline_runs,
    })
}

/// Every recorded worker's summary, read page by page.
pub async fn read_workers(store: &dyn MetadataStore) -> Result<Vec<WorkerSummary>, StoreError> {
    let mut all: Vec<WorkerSummary> = Vec::new();
    loop {
        let after = all.last().map(|w| w.id.clone());
        let page = store.worker_summaries(after.as_deref(), PAGE).await?;
        let full = page.len() == PAGE as usize;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// The launcher-independent view of a recorded worker: a pending one counts from when it was
/// asked to start, so a lost launch is noticed.
pub fn observe(w: &WorkerSummary) -> Observed {
    Observed {
        state: w.state,
        fingerprint: w.fingerprint.clone(),
        failures: w.failures,
        failed_at: w.failed_at,
        heartbeat: if w.state == WorkerState::Pending {
            Some(w.updated_at)
        } else {
            w.last_heartbeat
        },
    }
}
