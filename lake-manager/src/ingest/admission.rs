//! Memory for push bodies, taken as bytes arrive. A body being read or decompressed holds room
//! in two budgets: its tenant's share and the server's total. Room grows with the bytes
//! actually received (and decompressed), never ahead of them, so a client that opens many
//! slow pushes holds only what it sent, and one tenant's pushes can never hold more than its
//! share: the rest of the server stays free for everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tenancy::tenant::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::IngestError;

/// Limits on push bodies beyond the buffers.
#[derive(Debug, Clone)]
pub struct PushLimits {
    /// Most bytes one tenant's bodies may hold at once (read, decompressed, buffered).
    pub tenant_buffer_bytes: usize,
    /// Most pushes decompressed or validated at once, each on a blocking thread.
    pub decode_threads: usize,
    /// How long a push that meets its tenant migrating waits for the move to end before it
    /// answers 503; zero answers at once.
    pub fence_wait: std::time::Duration,
    /// How long an `Idempotency-Key` is remembered.
    pub key_window: std::time::Duration,
    /// How long a key's attempt of another process, or one whose commit's outcome is
    /// unknown, is trusted to still land before a retry takes the key over.
    pub key_takeover: std::time::Duration,
}

/// Why a gzip body could not be inflated.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// It inflates past the limit.
    #[error("the body inflates past {0} bytes")]
    TooLarge(usize),
    /// It is not gzip.
    #[error("the gzip body cannot be decompressed: {0}")]
    Corrupt(String),
    /// The budgets have no room for what it inflates to.
    #[error(transparent)]
    Full(#[from] IngestError),
}

/// Inflates a gzip body into at most `limit` bytes, taking room for the output as it grows.
/// Blocking CPU work: run it on [`super::streams::Ingest::blocking`].
pub fn gunzip(raw: &[u8], limit: usize, room: &mut BodyRoom) -> Result<Vec<u8>, InflateError> {
    use std::io::Read;
    const STEP: usize = 256 * 1024;
    let mut decoder = flate2::read::MultiGzDecoder::new(raw);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; STEP];
    loop {
        let n = decoder
            .read(&mut chunk)
            .map_err(|e| InflateError::Corrupt(e.to_string()))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(InflateError::TooLarge(limit));
        }
        room.grow(n)?;
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The budgets.
pub struct Admission {
    total: Arc<Semaphore>,
    tenant_share: usize,
    tenants: Mutex<HashMap<TenantId, Arc<Semaphore>>>,
    retry_after: Duration,
}

fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl Admission {
    /// `total` bytes for the server, at most `tenant_share` of them for one tenant.
    pub fn new(total: usize, tenant_share: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS).min(u32::MAX as usize);
        Self {
            total: Arc::new(Semaphore::new(total)),
            tenant_share: tenant_share.min(total),
            tenants: Mutex::new(HashMap::new()),
            retry_after: Duration::from_secs(1),
        }
    }

    /// An empty reservation for one body of `tenant`; it grows with [`BodyRoom::grow`].
    pub fn open(&self, tenant: &TenantId) -> BodyRoom {
        let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        // Only tenants with a body in flight keep an entry (the map follows active pushers).
        tenants.retain(|_, budget| Arc::strong_count(budget) > 1);
        let budget = tenants
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.tenant_share)))
            .clone();
        BodyRoom {
            tenant: budget,
            total: self.total.clone(),
            held_tenant: None,
            held_total: None,
            bytes: 0,
            retry_after: self.retry_after,
        }
    }

    /// Bytes held by bodies over all tenants.
    pub fn held(&self) -> usize {
        let tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
        tenants
            .values()
            .map(|t| self.tenant_share - t.available_permits())
            .sum()
    }
}

/// Room held for one body; given back when dropped.
pub struct BodyRoom {
    tenant: Arc<Semaphore>,
    total: Arc<Semaphore>,
    held_tenant: Option<OwnedSemaphorePermit>,
    held_total: Option<OwnedSemaphorePermit>,
    bytes: usize,
    retry_after: Duration,
}

fn merge(held: &mut Option<OwnedSemaphorePermit>, more: OwnedSemaphorePermit) {
    match held {
        Some(permit) => permit.merge(more),
        None => *held = Some(more),
    }
}

impl BodyRoom {
    /// Takes room for `bytes` more, or refuses at once (429) when the tenant's share or the
    /// server's budget has no room; a refusal takes nothing. Callable from blocking code.
    pub fn grow(&mut self, bytes: usize) -> Result<(), IngestError> {
        if bytes == 0 {
            return Ok(());
        }
        let n = permits(bytes);
        let tenant = self
            .tenant
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::Full {
                scope: "tenant",
                retry_after: self.retry_after,
            })?;
        let total = self
            .total
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| IngestError::Full {
                scope: "server",
                retry_after: self.retry_after,
            })?;
        merge(&mut self.held_tenant, tenant);
        merge(&mut self.held_total, total);
        self.bytes += bytes;
        Ok(())
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).expect("id")
    }

    #[test]
    fn room_grows_with_the_bytes_and_comes_back_on_drop() {
        let admission = Admission::new(1000, 400);
        let mut room = admission.open(&tenant("acme"));
        assert_eq!(admission.held(), 0, "nothing is held before a byte arrives");
        room.grow(100).expect("room");
        room.grow(250).expect("room");
        assert_eq!(room.bytes(), 350);
        assert_eq!(admission.held(), 350);
        drop(room);
        assert_eq!(admission.held(), 0);
    }

    #[test]
    fn one_tenant_cannot_take_more_than_its_share() {
        let admission = Admission::new(1000, 400);
        let mut bodies: Vec<_> = (0..16).map(|_| admission.open(&tenant("acme"))).collect();
        let mut refused = 0;
        for body in &mut bodies {
            if let Err(e) = body.grow(100) {
                assert!(matches!(e, IngestError::Full { scope: "tenant", .. }), "{e:?}");
                refused += 1;
            }
        }
        assert_eq!(refused, 12, "four bodies of 100 fill a share of 400");
        let mut other = admission.open(&tenant("globex"));
        other.grow(400).expect("another tenant still has its share");
    }

    #[test]
    fn the_server_budget_bounds_every_tenant_together() {
        let admission = Admission::new(1000, 400);
        let mut rooms: Vec<_> = ["a-1", "a-2", "a-3"]
            .into_iter()
            .map(|t| admission.open(&tenant(t)))
            .collect();
        for room in &mut rooms {
            room.grow(300).expect("room");
        }
        let mut fourth = admission.open(&tenant("a-4"));
        let refused = fourth.grow(200).expect_err("900 of 1000 held");
        assert!(matches!(refused, IngestError::Full { scope: "server", .. }));
        // The refusal took nothing, from the tenant's share either.
        fourth.grow(100).expect("exactly the rest");
        assert_eq!(admission.held(), 1000);
    }
}
