//! Concurrency caps per process and per tenant, for work that each tenant can start at will
//! (maintenance runs): one tenant's many tables must not take every slot of the process, and
//! the process must not run more at once than it has room for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tenancy::tenant::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The caps.
pub struct Slots {
    process: Arc<Semaphore>,
    per_tenant: usize,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
}

/// A slot held; freed on drop.
pub struct Slot {
    _tenant: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl Slots {
    /// At most `process` at once in all, `per_tenant` of them for one tenant (both at least 1).
    pub fn new(process: usize, per_tenant: usize) -> Self {
        Self {
            process: Arc::new(Semaphore::new(process.max(1))),
            per_tenant: per_tenant.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot of `tenant`. The tenant's own slot is taken first, so a tenant waiting
    /// behind its own cap holds none of the process's slots meanwhile.
    pub async fn acquire(&self, tenant: &TenantId) -> Slot {
        let budget = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            // Only tenants with work running or waiting keep an entry.
            tenants.retain(|_, s| Arc::strong_count(s) > 1);
            tenants
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
                .clone()
        };
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let tenant = match budget.acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the slots' semaphores are never closed"),
        };
        let process = match self.process.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the slots' semaphores are never closed"),
        };
        Slot {
            _tenant: tenant,
            _process: process,
        }
    }

    /// Slots free in the process.
    pub fn free(&self) -> usize {
        self.process.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::parse(s).expect("id")
    }

    #[tokio::test]
    async fn a_tenant_waits_behind_its_own_cap_and_the_process_behind_its_own() {
        let slots = Slots::new(2, 1);
        let acme = slots.acquire(&id("acme")).await;
        assert!(
            slots.acquire(&id("acme")).now_or_never().is_none(),
            "acme's second run waits for its first"
        );
        let globex = slots
            .acquire(&id("globex"))
            .now_or_never()
            .expect("another tenant runs meanwhile");
        assert_eq!(slots.free(), 0);
        assert!(
            slots.acquire(&id("initech")).now_or_never().is_none(),
            "the process is full"
        );
        drop(acme);
        let again = slots
            .acquire(&id("acme"))
            .now_or_never()
            .expect("acme's turn again once its first ended");
        drop((again, globex));
        assert_eq!(slots.free(), 2);
    }
}
