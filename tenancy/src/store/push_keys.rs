//! Idempotency keys of HTTP pushes: a retried push with the same key commits at most once and
//! answers the first one's outcome.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::tenant::TenantId;

/// Where a key stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKeyState {
    /// An attempt holds it and its outcome is not known yet.
    Pending,
    /// The push committed; `outcome` is its answer.
    Done,
}

impl PushKeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            PushKeyState::Pending => "pending",
            PushKeyState::Done => "done",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(PushKeyState::Pending),
            "done" => Some(PushKeyState::Done),
            _ => None,
        }
    }
}

/// One key of one stream.
#[derive(Debug, Clone, PartialEq)]
pub struct PushKeyRecord {
    /// The tenant.
    pub tenant: TenantId,
    /// The stream (by id: a stream created again under the same name starts afresh).
    pub stream_id: Uuid,
    /// The client's key.
    pub key: String,
    /// A digest of the request (body, format, error mode): the same key with another request
    /// is refused.
    pub fingerprint: String,
    /// The attempt holding the key.
    pub attempt: Uuid,
    /// The process that runs the attempt.
    pub owner: String,
    /// Pending or done.
    pub state: PushKeyState,
    /// The Delta application transaction marking the attempt's commit, recorded before the
    /// commit starts (`None`: no commit was started).
    pub mark: Option<(String, i64)>,
    /// The caller's JSON: what is known of the outcome (counts once marked, versions once
    /// done).
    pub outcome: Option<String>,
    /// When the key was first used.
    pub created_at: DateTime<Utc>,
    /// When the attempt last changed.
    pub updated_at: DateTime<Utc>,
    /// When the key is forgotten.
    pub expires_at: DateTime<Utc>,
}

/// What a push finds when it claims its key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyClaim {
    /// The key was free (or expired): the claiming attempt holds it now.
    Claimed,
    /// Another attempt holds it, or held it and finished: the row as stored.
    Held(Box<PushKeyRecord>),
}

/// Idempotency keys.
#[async_trait]
pub trait PushKeyStore: Send + Sync {
    /// Claims `record`'s key for its attempt unless a live row holds it; an expired row is
    /// replaced. One statement each, so two claims of one key never both win.
    async fn claim_push_key(
        &self,
        record: &PushKeyRecord,
        now: DateTime<Utc>,
    ) -> Result<KeyClaim, StoreError>;

    /// Hands a key from `from` (the row as read: its attempt finished, or was given up) to
    /// `to`'s attempt, clearing its mark and outcome and starting a new window; false when the
    /// row changed since it was read (another retry won, or the attempt marked a commit).
    async fn take_over_push_key(&self, from: &PushKeyRecord, to: &PushKeyRecord) -> Result<bool, StoreError>;

    /// Records the commit mark of attempts about to commit, with what is known of each
    /// outcome; returns the attempts that still hold their keys (a key taken over since is
    /// left alone, and its attempt must not commit).
    async fn mark_push_keys(
        &self,
        marks: &[(Uuid, String)],
        app_id: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// Records the outcomes of attempts whose commit landed.
    async fn finish_push_keys(
        &self,
        outcomes: &[(Uuid, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Frees the keys of attempts that ended without a commit, so a retry starts afresh.
    async fn release_push_keys(&self, attempts: &[Uuid]) -> Result<(), StoreError>;

    /// Forgets keys past their window; returns how many.
    async fn expire_push_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}
