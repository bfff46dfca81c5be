//! The `external` launcher: launches nothing. The reconciler still records which workers are
//! wanted (as `pending`), and an outside supervisor (systemd, Nomad, an operator at a shell)
//! runs each with `lakeplane worker run --id ID`, which claims, heartbeats and records the end
//! exactly as the other launchers' workers do.

use std::collections::BTreeSet;

use async_trait::async_trait;
use tenancy::worker::WorkerSpec;

use super::{Launcher, WorkersError};

/// Records only; workers are run from outside.
pub struct External;

#[async_trait]
impl Launcher for External {
    fn name(&self) -> &'static str {
        "external"
    }

    async fn start(&self, _spec: &WorkerSpec) -> Result<(), WorkersError> {
        Ok(())
    }

    async fn stop(&self, _spec_id: &str) -> Result<(), WorkersError> {
        // The worker's next heartbeat finds its row gone or re-claimed and stops it.
        Ok(())
    }

    async fn remove_orphans(&self, _desired: &BTreeSet<String>) -> Result<usize, WorkersError> {
        Ok(0)
    }

    async fn stop_local(&self) {}
}
