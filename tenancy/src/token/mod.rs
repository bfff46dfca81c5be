//! API tokens: Ed25519-signed JWTs issued by Lakeplane, plus tokens from trusted OIDC issuers.

mod claims;
mod jwks;
mod keys;
mod revocation;
pub mod verified;
mod verify;

use serde::{Deserialize, Serialize};

pub use claims::Claims;
pub use jwks::{ConsoleLogin, JwksCache, OidcIssuer};
pub use keys::{KeyError, SigningKey, load_or_generate_private};
pub use revocation::RevocationList;
pub use verify::{AuthError, Verifier};

/// Token settings shared by signing and verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// `iss` of Lakeplane's own tokens.
    pub issuer: String,
    /// `aud` every token must carry.
    pub audience: String,
    /// Longest lifetime of an issued token.
    pub max_ttl_secs: u64,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            issuer: "lakeplane".to_owned(),
            audience: "lakeplane-api".to_owned(),
            max_ttl_secs: 30 * 24 * 3600,
            leeway_secs: 5,
        }
    }
}

/// Shortest lifetime of an issued token.
pub const MIN_TTL_SECS: u64 = 60;
