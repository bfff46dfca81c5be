//! The worker model at work: a reconciler on the leader keeps exactly the workers the data
//! needs running, through a launcher (tokio tasks in this process, or Kubernetes objects);
//! each worker claims its row, heartbeats and records how it ended, the same way wherever it
//! runs (`runner`).

pub mod body;
pub mod external;
pub mod in_process;
pub mod kube;
pub mod reconciler;
pub mod runner;
pub mod scheduler;

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use tenancy::store::StoreError;
use tenancy::worker::{RestartPolicy, WorkerSpec};

pub use reconciler::Reconciler;
pub use runner::Runner;

/// Why a worker or the reconciler failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No worker has this id.
    #[error("no worker {0}")]
    NotFound(String),
    /// The worker is not pending, or another process claimed it first.
    #[error("worker {0} is not waiting to start (another process may run it)")]
    NotClaimable(String),
    /// The worker's work failed.
    #[error("{0}")]
    Failed(String),
    /// The worker panicked.
    #[error("the worker panicked: {0}")]
    Panicked(String),
    /// The launcher could not start or stop a worker.
    #[error("launcher: {0}")]
    Launcher(String),
}

/// How the workers are run and watched.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Restarts, backoff, heartbeat and start timeouts.
    pub policy: RestartPolicy,
    /// How often a running worker heartbeats.
    pub heartbeat_every: Duration,
    /// How often the leader reconciles when nothing wakes it (and how often the others try
    /// to take over the leadership).
    pub reconcile_every: Duration,
    /// How often the leader checks every table for maintenance that is due; zero turns the
    /// scheduler off.
    pub schedule_every: Duration,
    /// How often the leader runs what pipelines have waiting and what their triggers make
    /// due; zero turns pipeline triggers off (requested runs still run).
    pub pipeline_every: Duration,
    /// Longest a pipeline run may compute before it fails.
    pub pipeline_run_limit: Duration,
    /// Finished workers that are no longer wanted leave the listing after this long.
    pub keep_finished: Duration,
    /// Most maintenance workers (compact, retention) of one tenant running at once, whatever
    /// the launcher: the reconciler holds further runs queued until one ends.
    pub maintenance_per_tenant: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            heartbeat_every: Duration::from_secs(3),
            reconcile_every: Duration::from_secs(5),
            schedule_every: Duration::from_secs(3600),
            pipeline_every: Duration::from_secs(10),
            pipeline_run_limit: Duration::from_secs(3600),
            keep_finished: Duration::from_secs(86_400),
            maintenance_per_tenant: 1,
        }
    }
}

impl WorkerSettings {
    /// How often the leader confirms it still holds its lock, and how long one confirmation
    /// may take: at most a quarter of the heartbeat timeout (and no longer than a reconcile
    /// interval). A leader whose lock is gone therefore steps down, and stops this process's
    /// workers, within half the heartbeat timeout; another replica restarts those workers only
    /// once their heartbeats are a whole timeout old.
    pub fn lease_check(&self) -> Duration {
        self.reconcile_every
            .min(self.policy.heartbeat_timeout / 4)
            .max(Duration::from_millis(100))
    }

    /// How long a running worker goes on after sending the last heartbeat that got through
    /// before it stops itself: half a heartbeat interval short of the timeout after which the
    /// leader may start it elsewhere, so the two never run at once (the half interval covers
    /// stopping and clocks that differ a little). Not a whole interval: with the shortest
    /// timeout allowed (two intervals) that would end the worker at its next tick.
    pub fn give_up_after(&self) -> Duration {
        self.policy
            .heartbeat_timeout
            .saturating_sub(self.heartbeat_every / 2)
    }
}

/// Where workers run. The reconciler has already recorded the worker as `pending` when it
/// calls `start`; the started worker claims that row (`Runner`), so a launch that is lost
/// shows as a pending worker that the reconciler starts again.
#[async_trait]
pub trait Launcher: Send + Sync {
    /// The name used in logs and metrics (`in-process`, `kubernetes`).
    fn name(&self) -> &'static str;
    /// Starts a worker.
    async fn start(&self, spec: &WorkerSpec) -> Result<(), WorkersError>;
    /// Stops a worker; stopping one that does not run is not an error.
    async fn stop(&self, spec_id: &str) -> Result<(), WorkersError>;
    /// Removes whatever runs for workers outside `desired` (orphans) and returns how many.
    async fn remove_orphans(&self, desired: &BTreeSet<String>) -> Result<usize, WorkersError>;
    /// Stops everything this process itself runs (leadership lost, shutdown). Workers that
    /// run elsewhere (Kubernetes) keep running for the next leader.
    async fn stop_local(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(reconcile: u64, heartbeat: u64, timeout: u64) -> WorkerSettings {
        let mut s = WorkerSettings {
            reconcile_every: Duration::from_secs(reconcile),
            heartbeat_every: Duration::from_secs(heartbeat),
            ..WorkerSettings::default()
        };
        s.policy.heartbeat_timeout = Duration::from_secs(timeout);
        s
    }

    #[test]
    fn a_leader_confirms_its_lock_often_enough_to_step_down_within_half_the_timeout() {
        // Every combination the config accepts (timeout at least twice the heartbeat).
        for reconcile in 1..=20 {
            for heartbeat in 1..=10 {
                for timeout in (2 * heartbeat)..=40 {
                    let s = settings(reconcile, heartbeat, timeout);
                    let check = s.lease_check();
                    // A failed check is seen after one interval plus one timed-out attempt.
                    assert!(
                        2 * check <= s.policy.heartbeat_timeout / 2,
                        "{reconcile}/{heartbeat}/{timeout}: {check:?}"
                    );
                    assert!(check <= s.reconcile_every);
                }
            }
        }
        assert_eq!(settings(5, 3, 10).lease_check(), Duration::from_millis(2_500));
        assert_eq!(settings(1, 1, 3).lease_check(), Duration::from_millis(750));
    }

    #[test]
    fn a_worker_gives_up_before_it_may_be_started_elsewhere_but_after_its_next_tick() {
        for heartbeat in 1..=10 {
            for timeout in (2 * heartbeat)..=40 {
                let s = settings(1, heartbeat, timeout);
                let give_up = s.give_up_after();
                assert!(give_up < s.policy.heartbeat_timeout, "{heartbeat}/{timeout}");
                // The next heartbeat is due one interval after the last one sent; giving up
                // no later than that would race it.
                assert!(give_up > s.heartbeat_every, "{heartbeat}/{timeout}");
            }
        }
        assert_eq!(settings(5, 3, 10).give_up_after(), Duration::from_millis(8_500));
        assert_eq!(settings(1, 1, 2).give_up_after(), Duration::from_millis(1_500));
    }
}
