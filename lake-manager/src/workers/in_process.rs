//! The default launcher: each worker is a supervised tokio task of this process. A stop
//! cancels the task; a panic inside a worker is caught by the runner and recorded as
//! `failed`, never taking the server down.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use tenancy::worker::WorkerSpec;
use tokio_util::sync::CancellationToken;

use super::runner::Runner;
use super::{Launcher, WorkersError};

struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// Workers as tokio tasks of this process.
pub struct InProcess {
    runner: Runner,
    owner: String,
    tasks: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl InProcess {
    /// A launcher whose workers claim their rows as `{owner}/{launch}`: a new launch in the
    /// same process has a new owner, so a late heartbeat of an earlier one cannot pass for it.
    pub fn new(runner: Runner, owner: String) -> Arc<Self> {
        Arc::new(Self {
            runner,
            owner,
            tasks: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The ids of the workers whose task is alive here.
    pub async fn running(&self) -> BTreeSet<String> {
        self.tasks
            .lock()
            .await
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Aborts a worker's task as a crash would (no cancellation, nothing recorded): for
    /// crash tests and for an operator's last resort. The reconciler sees its heartbeat go
    /// stale and starts it again.
    pub async fn kill(&self, id: &str) -> bool {
        match self.tasks.lock().await.remove(id) {
            Some(running) => {
                running.task.abort();
                let _ = running.task.await;
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl Launcher for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }

    async fn start(&self, spec: &WorkerSpec) -> Result<(), WorkersError> {
        let id = spec.id();
        let mut tasks = self.tasks.lock().await;
        if let Some(old) = tasks.remove(&id) {
            old.stop.cancel();
            let _ = old.task.await;
        }
        let stop = CancellationToken::new();
        let runner = self.runner.clone();
        let owner = format!("{}/{}", self.owner, uuid::Uuid::now_v7());
        let token = stop.clone();
        let worker = id.clone();
        let task = tokio::spawn(async move {
            // The runner records failures itself; what is left to log is that it could not.
            if let Err(
                e @ (WorkersError::Store(_) | WorkersError::NotFound(_) | WorkersError::NotClaimable(_)),
            ) = runner.run(&worker, &owner, token).await
            {
                tracing::warn!(worker = %worker, error = %tenancy::error_chain(&e), "worker did not run");
            }
        });
        tasks.insert(id, Running { stop, task });
        Ok(())
    }

    async fn stop(&self, spec_id: &str) -> Result<(), WorkersError> {
        let running = self.tasks.lock().await.remove(spec_id);
        if let Some(running) = running {
            running.stop.cancel();
            let abort = running.task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(10), running.task)
                .await
                .is_err()
            {
                abort.abort();
                tracing::warn!(
                    worker = spec_id,
                    "worker did not stop within 10 s; it was aborted"
                );
            }
        }
        Ok(())
    }

    async fn remove_orphans(&self, desired: &BTreeSet<String>) -> Result<usize, WorkersError> {
        // Finished tasks are dropped first: their end is in the store, and nothing runs.
        self.tasks.lock().await.retain(|_, r| !r.task.is_finished());
        let orphans: Vec<String> = self
            .tasks
            .lock()
            .await
            .keys()
            .filter(|id| !desired.contains(*id))
            .cloned()
            .collect();
        for id in &orphans {
            self.stop(id).await?;
        }
        Ok(orphans.len())
    }

    async fn stop_local(&self) {
        let ids: Vec<String> = self.tasks.lock().await.keys().cloned().collect();
        for id in ids {
            let _ = self.stop(&id).await;
        }
    }
}
