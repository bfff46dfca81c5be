//! Retry-safe pushes: the `Idempotency-Key` a client sends with a push, what a retry finds
//! under it, and the tickets that keep an answered push from being committed afterwards.
//!
//! The contract (README, "Retrying a push"): a push answered with an error was not committed
//! and never will be, except one answered `commit-outcome-unknown`; only a retry with the same
//! key is safe after that one. A retry with the key commits at most once and answers the first
//! outcome once it is known.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenancy::store::{PushKeyRecord, PushKeyState};
use tenancy::validation::Violation;
use uuid::Uuid;

use super::decode::{BodyFormat, EventError};
use tenancy::stream::OnError;

/// The request header.
pub const HEADER: &str = "Idempotency-Key";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A client's key: 1 to 255 visible ASCII characters, so it is safe to store and log.
pub fn parse_key(raw: &[u8]) -> Result<String, Violation> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN {
        return Err(Violation::new(
            HEADER,
            format!("must be 1 to {MAX_KEY_LEN} characters"),
        ));
    }
    if !raw.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Violation::new(
            HEADER,
            "must be visible ASCII characters (no spaces or controls)",
        ));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

/// A digest of what makes two pushes the same request: the body, its format and the error
/// mode. A key sent again with another request is refused rather than answered with the
/// first one's outcome.
pub fn fingerprint(body: &[u8], format: BodyFormat, on_error: OnError) -> String {
    let mut digest = Sha256::new();
    digest.update(format!("{format:?}/{}/", on_error.as_str()).as_bytes());
    digest.update(body);
    format!("sha256:{:x}", digest.finalize())
}

/// What is known of a keyed push's outcome, stored with its key (opaque to the store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    /// Events for the table.
    pub accepted: usize,
    /// Events for the dead-letter table.
    pub rejected: usize,
    /// The first bad events.
    pub errors: Vec<EventError>,
    /// The table version holding the events, once known.
    pub version: Option<i64>,
    /// The dead-letter version, once known.
    pub dlq_version: Option<i64>,
    /// The table's version before the commit: a retry after a crash looks for the commit's
    /// mark above it.
    pub floor: Option<i64>,
    /// The dead-letter table's version before the commit.
    pub dlq_floor: Option<i64>,
}

impl Recorded {
    /// What a push knows before its commit: its counts and bad events, no versions yet.
    pub fn before_commit(accepted: usize, rejected: usize, errors: Vec<EventError>) -> Self {
        Self {
            accepted,
            rejected,
            errors,
            version: None,
            dlq_version: None,
            floor: None,
            dlq_floor: None,
        }
    }
}

/// What a retry does with a key it found held.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The push committed: answer its outcome again.
    Replay(Recorded),
    /// The key was used for another request.
    Mismatch,
    /// An attempt may still commit: come back after this long.
    InProgress(Duration),
    /// The attempt marked a commit and is over: read from the table whether it landed.
    ReadTable {
        /// The application transaction marking it.
        app_id: String,
        /// Its version.
        seq: i64,
        /// The counts and floors recorded with the mark.
        recorded: Recorded,
    },
    /// The attempt never started a commit and never will: take the key over.
    TakeOver,
}

/// Decides what a retry does with a held key (pure).
///
/// - a done key answers its outcome (the same request) or is refused (another request);
/// - a key whose attempt runs in this process is in progress;
/// - an attempt of this process that is over: without a mark it never committed (the key is
///   taken over), with one the table says;
/// - an attempt of another process (or of a process that died) is trusted to still run until
///   `takeover_after` passed since it last changed: a commit sent to storage can land as late
///   as the storage client's retries go on. After that the table says.
pub fn resolve(
    held: &PushKeyRecord,
    fingerprint: &str,
    me: &str,
    in_flight: bool,
    now: DateTime<Utc>,
    takeover_after: Duration,
) -> Resolution {
    if held.fingerprint != fingerprint {
        return Resolution::Mismatch;
    }
    let recorded = held
        .outcome
        .as_deref()
        .and_then(|text| serde_json::from_str::<Recorded>(text).ok());
    if held.state == PushKeyState::Done {
        return match recorded {
            Some(recorded) => Resolution::Replay(recorded),
            // Unreadable (written by a newer release?): the safe answer is to wait, not to
            // commit again.
            None => Resolution::InProgress(takeover_after),
        };
    }
    let ours = held.owner == me;
    if ours && in_flight {
        return Resolution::InProgress(Duration::from_secs(1));
    }
    let idle = (now - held.updated_at).to_std().unwrap_or_default();
    match (&held.mark, recorded) {
        (None, _) if ours => Resolution::TakeOver,
        // Another process's attempt that never marked a commit may still mark one.
        (None, _) if idle < takeover_after => Resolution::InProgress(takeover_after - idle),
        (None, _) => Resolution::TakeOver,
        (Some((app_id, seq)), Some(recorded)) => Resolution::ReadTable {
            app_id: app_id.clone(),
            seq: *seq,
            recorded,
        },
        (Some(_), None) => Resolution::InProgress(takeover_after),
    }
}

/// Whether a table read "not landed" lets the retry take the key over: only once the attempt
/// has been idle for `takeover_after`, since a commit sent before can still land until then.
pub fn may_take_over_unlanded(
    held: &PushKeyRecord,
    now: DateTime<Utc>,
    takeover_after: Duration,
) -> Option<Duration> {
    let idle = (now - held.updated_at).to_std().unwrap_or_default();
    if idle >= takeover_after {
        None
    } else {
        Some(takeover_after - idle)
    }
}

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;
const FINISHED: u8 = 3;

/// One push's place between its handler and the table writer. The writer takes it into a
/// commit only while it is still queued; a handler that gives up cancels it only while it is
/// still queued. So a push answered "not committed" can never be committed afterwards, and
/// one the writer took is answered "outcome unknown" when its handler cannot wait any longer.
#[derive(Debug, Default)]
pub struct Ticket(AtomicU8);

impl Ticket {
    /// The writer takes the push into a commit; false when its handler gave up first.
    pub fn take(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The handler gives up; true when the push was still queued (it will never commit).
    pub fn cancel(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer is done with it, one way or the other.
    pub fn finish(&self) {
        self.0.store(FINISHED, Ordering::Release);
    }

    /// Whether it may still commit (queued or taken).
    pub fn live(&self) -> bool {
        matches!(self.0.load(Ordering::Acquire), QUEUED | TAKEN)
    }
}

/// The keyed attempts of this process, so a retry arriving while its first attempt still
/// runs here is told to wait instead of resolving a key that is about to change.
#[derive(Default)]
pub struct Attempts(Mutex<HashMap<Uuid, Arc<Ticket>>>);

impl Attempts {
    /// Registers an attempt's ticket.
    pub fn register(&self, attempt: Uuid, ticket: Arc<Ticket>) {
        let mut attempts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the pushes under way: finished ones go whenever one is added.
        attempts.retain(|_, t| t.live());
        attempts.insert(attempt, ticket);
    }

    /// Whether the attempt may still commit here.
    pub fn in_flight(&self, attempt: Uuid) -> bool {
        let attempts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        attempts.get(&attempt).is_some_and(|t| t.live())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenancy::tenant::TenantId;

    fn held(owner: &str, state: PushKeyState, mark: Option<(&str, i64)>, idle_secs: i64) -> PushKeyRecord {
        let now = tenancy::now();
        let recorded = Recorded {
            accepted: 2,
            rejected: 0,
            errors: Vec::new(),
            version: (state == PushKeyState::Done).then_some(7),
            dlq_version: None,
            floor: Some(6),
            dlq_floor: None,
        };
        PushKeyRecord {
            tenant: TenantId::from_trusted("acme".to_owned()),
            stream_id: Uuid::now_v7(),
            key: "k-1".into(),
            fingerprint: "sha256:aa".into(),
            attempt: Uuid::now_v7(),
            owner: owner.into(),
            state,
            mark: mark.map(|(a, s)| (a.to_owned(), s)),
            outcome: (state == PushKeyState::Done || mark.is_some())
                .then(|| serde_json::to_string(&recorded).expect("json")),
            created_at: now - chrono::Duration::seconds(idle_secs),
            updated_at: now - chrono::Duration::seconds(idle_secs),
            expires_at: now + chrono::Duration::hours(24),
        }
    }

    const WAIT: Duration = Duration::from_secs(300);

    #[test]
    fn keys_are_short_visible_ascii() {
        assert_eq!(parse_key(b"order-17/retry").expect("valid"), "order-17/retry");
        for bad in [&b""[..], b"has space", b"tab\t", "é".as_bytes(), &[b'a'; 256][..]] {
            let e = parse_key(bad).expect_err("refused");
            assert_eq!(e.field, HEADER);
        }
        assert!(parse_key(&[b'a'; 255]).is_ok());
    }

    #[test]
    fn the_fingerprint_tells_requests_apart() {
        let a = fingerprint(b"{\"id\":1}", BodyFormat::Ndjson, OnError::Reject);
        assert_eq!(a, fingerprint(b"{\"id\":1}", BodyFormat::Ndjson, OnError::Reject));
        assert_ne!(a, fingerprint(b"{\"id\":2}", BodyFormat::Ndjson, OnError::Reject));
        assert_ne!(a, fingerprint(b"{\"id\":1}", BodyFormat::Ndjson, OnError::Dlq));
        assert_ne!(
            a,
            fingerprint(b"{\"id\":1}", BodyFormat::JsonArray, OnError::Reject)
        );
    }

    #[test]
    fn a_done_key_replays_or_refuses_another_request() {
        let done = held("me", PushKeyState::Done, Some(("app", 3)), 0);
        match resolve(&done, "sha256:aa", "other", false, tenancy::now(), WAIT) {
            Resolution::Replay(r) => assert_eq!((r.accepted, r.version), (2, Some(7))),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            resolve(&done, "sha256:bb", "me", false, tenancy::now(), WAIT),
            Resolution::Mismatch
        );
    }

    #[test]
    fn a_running_attempt_here_is_waited_for() {
        let pending = held("me", PushKeyState::Pending, Some(("app", 3)), 600);
        assert!(matches!(
            resolve(&pending, "sha256:aa", "me", true, tenancy::now(), WAIT),
            Resolution::InProgress(_)
        ));
    }

    #[test]
    fn an_unmarked_attempt_that_is_over_here_is_taken_over_at_once() {
        let pending = held("me", PushKeyState::Pending, None, 0);
        assert_eq!(
            resolve(&pending, "sha256:aa", "me", false, tenancy::now(), WAIT),
            Resolution::TakeOver
        );
    }

    #[test]
    fn another_process_is_trusted_until_the_takeover_wait_passed() {
        let fresh = held("them", PushKeyState::Pending, None, 10);
        match resolve(&fresh, "sha256:aa", "me", false, tenancy::now(), WAIT) {
            Resolution::InProgress(wait) => {
                assert!(wait <= Duration::from_secs(290) && wait > Duration::from_secs(280))
            }
            other => panic!("{other:?}"),
        }
        let stale = held("them", PushKeyState::Pending, None, 301);
        assert_eq!(
            resolve(&stale, "sha256:aa", "me", false, tenancy::now(), WAIT),
            Resolution::TakeOver
        );
    }

    #[test]
    fn a_marked_attempt_that_is_over_is_read_from_the_table() {
        let marked = held("them", PushKeyState::Pending, Some(("app", 9)), 5);
        match resolve(&marked, "sha256:aa", "me", false, tenancy::now(), WAIT) {
            Resolution::ReadTable {
                app_id,
                seq,
                recorded,
            } => {
                assert_eq!((app_id.as_str(), seq, recorded.floor), ("app", 9, Some(6)));
            }
            other => panic!("{other:?}"),
        }
        // ... and "not landed" frees the key only after the wait.
        assert!(may_take_over_unlanded(&marked, tenancy::now(), WAIT).is_some());
        let old = held("them", PushKeyState::Pending, Some(("app", 9)), 301);
        assert_eq!(may_take_over_unlanded(&old, tenancy::now(), WAIT), None);
    }

    #[test]
    fn a_ticket_is_taken_or_cancelled_never_both() {
        let ticket = Ticket::default();
        assert!(ticket.take());
        assert!(!ticket.cancel(), "a taken push cannot be cancelled");
        assert!(ticket.live());
        ticket.finish();
        assert!(!ticket.live());
        let other = Ticket::default();
        assert!(other.cancel());
        assert!(!other.take(), "a cancelled push is never committed");
        assert!(!other.live());
    }
}
