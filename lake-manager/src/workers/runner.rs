//! Runs one worker wherever it is launched (a tokio task of the server, or `lakeplane worker
//! run` in a pod): claims its pending row, heartbeats with its progress while the work runs,
//! and records how it ended. A heartbeat that finds the row claimed by another process (the
//! reconciler started the worker again elsewhere) stops the work, so one worker never runs
//! twice for long; the Delta commits fence the overlap for exactly-once.

use std::sync::{Arc, Mutex};

use tenancy::store::MetadataStore;
use tenancy::worker::{WorkerSpec, WorkerState};
use tokio_util::sync::CancellationToken;

use super::{WorkerSettings, WorkersError};

/// A worker's work, by kind (`body::Bodies` in production).
#[async_trait::async_trait]
pub trait Work: Send + Sync + 'static {
    /// Does the work of `spec` as the run `owner` (which its writes may name), reporting
    /// progress as it goes.
    async fn run(&self, spec: &WorkerSpec, owner: &str, progress: &Progress) -> Result<(), WorkersError>;
}

/// What a worker reports while it runs; the runner sends it with each heartbeat.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<Option<String>>>);

impl Progress {
    /// Replaces the report (a JSON document).
    pub fn set(&self, report: serde_json::Value) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.to_string());
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The work is done (one-shot kinds) and recorded `succeeded`.
    Succeeded,
    /// Stopped on request (or because another process took the worker over); nothing is recorded.
    Stopped,
}

/// Runs workers' bodies with claim, heartbeat and outcome bookkeeping.
#[derive(Clone)]
pub struct Runner {
    store: Arc<dyn MetadataStore>,
    bodies: Arc<dyn Work>,
    settings: WorkerSettings,
}

impl Runner {
    /// A runner over the store and the workers' bodies.
    pub fn new(store: Arc<dyn MetadataStore>, bodies: Arc<dyn Work>, settings: WorkerSettings) -> Self {
        Self {
            store,
            bodies,
            settings,
        }
    }

    /// The store the runner records into.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Claims the pending worker `id` as `owner` and runs it until it ends or `stop` fires.
    /// A failure or a panic is recorded as `failed` with its message and returned.
    pub async fn run(&self, id: &str, owner: &str, stop: CancellationToken) -> Result<Ended, WorkersError> {
        let record = self
            .store
            .get_worker(id)
            .await?
            .ok_or_else(|| WorkersError::NotFound(id.to_owned()))?;
        if !self.store.claim_worker(id, owner, tenancy::now()).await? {
            return Err(WorkersError::NotClaimable(id.to_owned()));
        }
        tracing::info!(worker = id, kind = %record.spec.kind, tenant = %record.spec.tenant, "worker started");
        let progress = Progress::default();
        let taken_over = CancellationToken::new();
        let beating = tokio::spawn(heartbeats(
            self.store.clone(),
            id.to_owned(),
            owner.to_owned(),
            progress.clone(),
            self.settings.clone(),
            taken_over.clone(),
        ));
        let _beating = AbortHandleOnDrop(beating.abort_handle());
        let outcome = self
            .body(
                record.spec.clone(),
                owner.to_owned(),
                progress.clone(),
                stop.clone(),
                taken_over.clone(),
            )
            .await;
        if stop.is_cancelled() || taken_over.is_cancelled() {
            tracing::info!(worker = id, "worker stopped");
            return Ok(Ended::Stopped);
        }
        if let Some(report) = progress.take() {
            // The last report (a maintenance run's metrics) goes in before the end is recorded.
            self.store
                .heartbeat(id, owner, tenancy::now(), Some(&report))
                .await?;
        }
        let (state, error) = match &outcome {
            Ok(()) => (WorkerState::Succeeded, None),
            Err(e) => (WorkerState::Failed, Some(tenancy::error_chain(e))),
        };
        let recorded = self
            .store
            .finish_worker(id, owner, state, error.as_deref(), tenancy::now())
            .await?;
        if !recorded {
            tracing::warn!(
                worker = id,
                "another process took the worker over; its end is not recorded"
            );
        }
        match outcome {
            Ok(()) => {
                tracing::info!(worker = id, "worker succeeded");
                Ok(Ended::Succeeded)
            }
            Err(e) => {
                tracing::warn!(worker = id, error = %tenancy::error_chain(&e), "worker failed");
                Err(e)
            }
        }
    }

    /// Runs the body on a task of its own, so a panic becomes an error instead of unwinding
    /// through the caller, and the body is dropped (cancelled) as soon as either token fires,
    /// or when this future is dropped (a killed runner must not leave its body running).
    async fn body(
        &self,
        spec: WorkerSpec,
        owner: String,
        progress: Progress,
        stop: CancellationToken,
        taken_over: CancellationToken,
    ) -> Result<(), WorkersError> {
        let bodies = self.bodies.clone();
        let task = tokio::spawn(async move { bodies.run(&spec, &owner, &progress).await });
        let _abort = AbortHandleOnDrop(task.abort_handle());
        let joined = tokio::select! {
            joined = task => joined,
            _ = stop.cancelled() => return Ok(()),
            _ = taken_over.cancelled() => return Ok(()),
        };
        match joined {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(WorkersError::Panicked(panic_message(e.into_panic()))),
            Err(e) => Err(WorkersError::Failed(format!(
                "the worker task ended abnormally: {e}"
            ))),
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Heartbeats until the worker is taken over (then fires `taken_over`). A store that cannot
/// be reached stops the work too, before the reconciler may start the worker elsewhere
/// (`WorkerSettings::give_up_after`).
async fn heartbeats(
    store: Arc<dyn MetadataStore>,
    id: String,
    owner: String,
    progress: Progress,
    settings: WorkerSettings,
    taken_over: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.heartbeat_every);
    tick.tick().await;
    let started = std::time::Instant::now();
    // Running this long without failing ends a series of failures (for the backoff and the
    // failure cap), as a success does for one-shot workers.
    let recovered_after = settings.policy.cap.max(settings.policy.heartbeat_timeout);
    let mut recovered = false;
    // The leader may start this worker elsewhere once its recorded heartbeat is a timeout old.
    // The deadline runs from when the last heartbeat that got through was *sent* (the time it
    // records), and is kept by a timer, not checked between ticks: a heartbeat that hangs
    // must not carry the worker past it.
    let give_up = settings.give_up_after();
    let mut deadline = tokio::time::Instant::now() + give_up;
    loop {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {}
        }
        let sent = tokio::time::Instant::now();
        let report = progress.take();
        let beat = store.heartbeat(&id, &owner, tenancy::now(), report.as_deref());
        let limit = deadline.min(sent + settings.heartbeat_every);
        match tokio::time::timeout_at(limit, beat).await {
            Ok(Ok(true)) => deadline = sent + give_up,
            Ok(Ok(false)) => {
                tracing::warn!(worker = %id, "the worker was taken over or removed; stopping it here");
                taken_over.cancel();
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(worker = %id, error = %tenancy::error_chain(&e), "heartbeat failed");
            }
            Err(_) => tracing::warn!(worker = %id, "heartbeat timed out"),
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        if !recovered && started.elapsed() >= recovered_after {
            let marked = tokio::time::timeout_at(deadline, store.mark_recovered(&id, &owner)).await;
            recovered = matches!(marked, Ok(Ok(true)));
        }
    }
    tracing::warn!(worker = %id, "no heartbeat got through in time; stopping the worker");
    taken_over.cancel();
}

/// Aborts a task (the body, the heartbeats) when the runner's future ends or is dropped.
struct AbortHandleOnDrop(tokio::task::AbortHandle);

impl Drop for AbortHandleOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
