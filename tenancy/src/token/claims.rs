//! The claims inside Lakeplane's own tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::role::Role;
use crate::tenant::TenantId;

/// JWT claims of a Lakeplane token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: who the token is for.
    pub sub: String,
    /// Role name.
    pub role: String,
    /// Tenant id; absent only for platform-admin tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token id, for revocation.
    pub jti: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Groups the subject belongs to, for grants to `group:NAME`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Claims {
    /// Claims for a new token.
    pub fn new(
        subject: &str,
        role: Role,
        tenant: Option<&TenantId>,
        id: Uuid,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        settings: &super::TokenSettings,
    ) -> Self {
        Self {
            sub: subject.to_owned(),
            role: role.as_str().to_owned(),
            tenant: tenant.map(|t| t.as_str().to_owned()),
            iat: issued_at.timestamp(),
            exp: expires_at.timestamp(),
            jti: id.to_string(),
            iss: settings.issuer.clone(),
            aud: settings.audience.clone(),
            groups: Vec::new(),
        }
    }
}
