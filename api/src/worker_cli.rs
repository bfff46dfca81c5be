//! `lakeplane worker run --id ID`: one worker in the foreground, the entry point of worker
//! pods and a debugging tool. It uses the same config, database and storage as `serve`, but
//! starts none of the server's background work.

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::{AppState, Role, StartupError};

/// Why `worker run` failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerCliError {
    /// The services could not start.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The worker could not run, or failed (the error is recorded on the worker too).
    #[error(transparent)]
    Worker(#[from] lake_manager::workers::WorkersError),
}

/// Claims and runs the pending worker `id` until it ends; SIGTERM or SIGINT stop it (its
/// progress is only ever what it committed, so a new run resumes).
pub async fn run(config: Config, id: &str) -> Result<(), WorkerCliError> {
    let state = AppState::build(config, Role::Worker).await?;
    let owner = format!("{}-worker-{}", state.instance.id, uuid::Uuid::now_v7());
    let stop = CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        crate::server::shutdown_signal().await;
        signalled.cancel();
    });
    let outcome = state.runner.run(id, &owner, stop).await;
    state.store.close().await;
    match outcome? {
        lake_manager::workers::runner::Ended::Succeeded => {
            tracing::info!(worker = id, "worker succeeded");
        }
        lake_manager::workers::runner::Ended::Stopped => {
            tracing::info!(worker = id, "worker stopped");
        }
    }
    Ok(())
}
