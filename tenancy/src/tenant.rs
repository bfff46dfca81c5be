//! The tenant model: ids, tiers, isolation, quotas and status, with their validation.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::placement::Placement;
use crate::validation::Violation;

/// Ids that would collide with routes, buckets or operator vocabulary.
pub const RESERVED_IDS: &[&str] = &[
    "admin",
    "administrator",
    "api",
    "audit",
    "default",
    "internal",
    "lakeplane",
    "metrics",
    "null",
    "platform",
    "public",
    "root",
    "shared",
    "system",
    "tenant",
    "tenants",
    "test",
    "www",
];

/// A tenant id: a DNS-safe slug of 3 to 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Validates a candidate id.
    pub fn parse(raw: &str) -> Result<Self, Violation> {
        let bad = |message: &str| Err(Violation::new("id", message));
        if raw.len() < 3 || raw.len() > 40 {
            return bad("must be 3 to 40 characters");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("may contain only lowercase letters, digits and hyphens");
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return bad("must not start or end with a hyphen");
        }
        if raw.contains("--") {
            return bad("must not contain a double hyphen");
        }
        if RESERVED_IDS.contains(&raw) {
            return bad("is a reserved word");
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps an id read back from the store, which only ever holds validated ids.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Commercial tier; enterprise tenants get dedicated storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Top tier: dedicated bucket.
    Enterprise,
    /// Everyone else: placed by volume.
    Standard,
}

/// A platform-admin override of placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Decided by tier and volume.
    #[default]
    Auto,
    /// Always a dedicated bucket.
    Dedicated,
    /// Always a shared shard.
    Shared,
}

/// Lifecycle state of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Storage is being set up.
    Provisioning,
    /// Usable.
    Ready,
    /// Data is moving to a new placement.
    Migrating,
    /// Provisioning failed; see the reason.
    Failed,
    /// Being purged.
    Deleting,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:path => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The lowercase name stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
            /// Parses the stored name.
            pub fn parse(raw: &str) -> Option<Self> {
                match raw { $($text => Some($variant),)+ _ => None }
            }
        }
    };
}

text_enum!(Tier { Tier::Enterprise => "enterprise", Tier::Standard => "standard" });
text_enum!(Isolation { Isolation::Auto => "auto", Isolation::Dedicated => "dedicated", Isolation::Shared => "shared" });
text_enum!(TenantStatus {
    TenantStatus::Provisioning => "provisioning",
    TenantStatus::Ready => "ready",
    TenantStatus::Migrating => "migrating",
    TenantStatus::Failed => "failed",
    TenantStatus::Deleting => "deleting",
});

/// Limits on what a tenant may create and push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Maximum number of tables.
    pub max_tables: u32,
    /// Maximum number of ingestion streams.
    pub max_streams: u32,
    /// Maximum stored data, in GB.
    pub max_storage_gb: u32,
    /// Maximum ingest rate, in events per second.
    pub ingest_events_per_sec: u32,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_tables: 100,
            max_streams: 20,
            max_storage_gb: 1000,
            ingest_events_per_sec: 50_000,
        }
    }
}

/// The most any quota may be set to; guards against typos of several orders of magnitude.
pub const QUOTA_CEILING: u32 = 100_000_000;

impl Quotas {
    /// Checks every quota is positive and below the ceiling.
    pub fn validate(&self) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        for (name, value) in [
            ("max_tables", self.max_tables),
            ("max_streams", self.max_streams),
            ("max_storage_gb", self.max_storage_gb),
            ("ingest_events_per_sec", self.ingest_events_per_sec),
        ] {
            if value == 0 || value > QUOTA_CEILING {
                violations.push(Violation::new(
                    format!("quotas.{name}"),
                    format!("must be 1 to {QUOTA_CEILING}"),
                ));
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }
}

/// Validates a display name: 1 to 200 characters, not blank, no control characters.
pub fn validate_display_name(name: &str) -> Result<String, Violation> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Violation::new("display_name", "must not be blank"));
    }
    if trimmed.chars().count() > 200 {
        return Err(Violation::new("display_name", "must be at most 200 characters"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Violation::new(
            "display_name",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The id.
    pub id: TenantId,
    /// Human-readable name.
    pub display_name: String,
    /// Tier.
    pub tier: Tier,
    /// Placement override.
    pub isolation: Isolation,
    /// Lifecycle state.
    pub status: TenantStatus,
    /// Why the status is what it is (the failing step, for `failed`).
    pub status_reason: Option<String>,
    /// Where its data lives.
    pub placement: Placement,
    /// Limits.
    pub quotas: Quotas,
    /// Stored bytes written over the last 30 days; ranks tenants for placement.
    pub volume_30d_bytes: u64,
    /// Days within which an erasure of its data subjects must complete.
    pub erasure_deadline_days: u32,
    /// The longest lifetime of credentials vended for it (STS sessions), seconds: a tenant
    /// that revokes grants may want what was already handed out to die sooner.
    pub credential_max_ttl_secs: u32,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["abc", "acme-corp", "a1-b2-c3", "x".repeat(40).as_str(), "123"] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "",
            "Acme",
            "acme_corp",
            "-acme",
            "acme-",
            "ac--me",
            "acme corp",
            "admin",
            "shared",
            "x".repeat(41).as_str(),
            "café",
        ] {
            let err = TenantId::parse(bad).expect_err(bad);
            assert_eq!(err.field, "id");
        }
    }

    #[test]
    fn quotas_and_names() {
        assert!(Quotas::default().validate().is_ok());
        let zero = Quotas {
            max_tables: 0,
            ..Quotas::default()
        };
        assert_eq!(zero.validate().expect_err("zero")[0].field, "quotas.max_tables");
        assert_eq!(validate_display_name("  Acme  ").expect("ok"), "Acme");
        assert!(validate_display_name(" ").is_err());
        assert!(validate_display_name(&"x".repeat(201)).is_err());
        assert!(validate_display_name("a\u{0}b").is_err());
    }
}
