//! Audit events: an append-only record of every change, every credential issued and every
//! denied request.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::tenant::TenantId;

/// How the audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It did what was asked.
    Success,
    /// Authentication or authorization refused it.
    Denied,
    /// The input was invalid or conflicted; nothing changed.
    Rejected,
    /// The server failed.
    Error,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
        }
    }

    /// Parses the stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Outcome::Success,
            Outcome::Denied,
            Outcome::Rejected,
            Outcome::Error,
        ]
        .into_iter()
        .find(|o| o.as_str() == raw)
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// UUIDv7, so ids sort by time.
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who: the token subject, or `anonymous`.
    pub actor: String,
    /// Their role, when authenticated.
    pub role: Option<String>,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// What, e.g. `tenant.create` or `auth.expired`.
    pub action: String,
    /// The resource acted on, e.g. `/v1/tenants/acme`.
    pub target: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The request id, for matching with logs.
    pub request_id: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// The token that acted (its `jti`), when it has one: the subject alone is a name the
    /// token's minter chose.
    pub token_id: Option<Uuid>,
    /// Who issued that token (Lakeplane or an external OIDC issuer).
    pub issuer: Option<String>,
    /// How many requests the row stands for: 1, except for the rolled-up rows of requests
    /// no one answers for (see [`crate::rollup`]).
    pub occurrences: u64,
    /// What changed, for changes whose target alone does not say (grants: before and after).
    pub details: Option<serde_json::Value>,
}

/// The most bytes of a target an audit row keeps: paths come from the network, and a 64 KiB
/// path per row would let anyone grow the log by megabytes a second.
pub const MAX_TARGET_BYTES: usize = 512;

/// `target` cut to [`MAX_TARGET_BYTES`] on a character boundary, marked when cut.
pub fn cap_target(target: &str) -> String {
    const MARK: &str = "…";
    if target.len() <= MAX_TARGET_BYTES {
        return target.to_owned();
    }
    let mut end = MAX_TARGET_BYTES - MARK.len();
    while !target.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &target[..end])
}

/// Who acts, as audit events name them: a caller of the API, or the plane itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token subject, or `lakeplane` for the plane.
    pub subject: String,
    /// The caller's role.
    pub role: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The client address.
    pub source: Option<String>,
    /// The acting token's id, when it has one.
    pub token_id: Option<Uuid>,
    /// The acting token's issuer.
    pub issuer: Option<String>,
}

impl Actor {
    /// An event of something this actor did, now.
    pub fn event(&self, action: &str, target: &str, tenant: Option<&str>, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            at: crate::now(),
            actor: self.subject.clone(),
            role: self.role.clone(),
            tenant: tenant.map(str::to_owned),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            token_id: self.token_id,
            issuer: self.issuer.clone(),
            occurrences: 1,
            details: None,
        }
    }
}

impl AuditEvent {
    /// An event the plane records on its own behalf (background purges, scheduled runs).
    pub fn system(action: &str, target: &str, tenant: Option<&str>, outcome: Outcome) -> Self {
        Self {
            id: uuid::Uuid::now_v7(),
            at: crate::now(),
            actor: "lakeplane".to_owned(),
            role: None,
            tenant: tenant.map(str::to_owned),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            request_id: None,
            source: None,
            token_id: None,
            issuer: None,
            occurrences: 1,
            details: None,
        }
    }
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's events.
    pub tenant: Option<TenantId>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only events older than this id (the cursor).
    pub before: Option<Uuid>,
    /// Page size.
    pub limit: u32,
    /// With `tenant`: only events since the id's last deletion, so a re-created tenant does
    /// not read its predecessor's (platform-admins may).
    pub current_tenant_only: bool,
}
