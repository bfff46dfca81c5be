//! Turning a bearer token into a [`Principal`], or a precise reason it is refused.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeZone, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use uuid::Uuid;

use super::verified::{VerifiedTokens, token_hash};
use super::{Claims, JwksCache, OidcIssuer, SigningKey, TokenSettings};
use crate::policy::Principal;
use crate::role::Role;
use crate::tenant::TenantId;

/// Why a token is refused. Every variant is answered 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// Not a well-formed JWT (including `alg: none`).
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify.
    #[error("invalid token signature")]
    BadSignature,
    /// `alg` is not the one this issuer uses.
    #[error("token algorithm not accepted for this issuer")]
    WrongAlgorithm,
    /// `iss` is not a trusted issuer.
    #[error("untrusted token issuer")]
    UntrustedIssuer,
    /// `aud` is not Lakeplane's.
    #[error("token audience is not this API")]
    WrongAudience,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `iat` or `nbf` is in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// The signing key is not known.
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    /// A required claim is missing or invalid.
    #[error("invalid claim: {0}")]
    Claim(String),
    /// The token was revoked.
    #[error("token revoked")]
    Revoked,
    /// The issuer's keys are older than it allows and cannot be fetched again.
    #[error("the issuer's signing keys could not be refreshed")]
    StaleKeys,
}

impl AuthError {
    /// A short machine-readable code for audit actions.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongAlgorithm => "wrong_algorithm",
            AuthError::UntrustedIssuer => "untrusted_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::UnknownKey(_) => "unknown_key",
            AuthError::Claim(_) => "invalid_claim",
            AuthError::Revoked => "revoked",
            AuthError::StaleKeys => "stale_keys",
        }
    }
}

fn from_jwt(error: jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
            AuthError::WrongAlgorithm
        }
        ErrorKind::InvalidIssuer => AuthError::UntrustedIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::Claim(format!("{claim} is required")),
        ErrorKind::InvalidClaimFormat(claim) => AuthError::Claim(format!("{claim} has the wrong format")),
        _ => AuthError::Malformed,
    }
}

/// Verifies Lakeplane's own tokens and those of configured OIDC issuers.
pub struct Verifier {
    own: Arc<SigningKey>,
    settings: TokenSettings,
    external: Vec<(OidcIssuer, JwksCache)>,
    verified: VerifiedTokens,
}

/// Distinct tokens whose verification is remembered (see [`super::verified`]).
const VERIFIED_CAPACITY: usize = 10_000;

#[derive(Deserialize)]
struct Peek {
    iss: Option<String>,
}

impl Verifier {
    /// A verifier trusting the server's key and the given issuers.
    pub fn new(own: Arc<SigningKey>, settings: TokenSettings, issuers: &[OidcIssuer]) -> Self {
        let external = issuers.iter().map(|i| (i.clone(), JwksCache::new(i))).collect();
        Self {
            own,
            settings,
            external,
            verified: VerifiedTokens::new(VERIFIED_CAPACITY),
        }
    }

    /// Checks signature, algorithm, issuer, audience and times, then maps the claims.
    /// Revocation is checked by the caller, which owns the revocation list. One of the plane's
    /// own tokens verified in the last minute and not expired is answered from memory. Tokens
    /// of OIDC issuers are verified every time: their keys stop being trusted when they are
    /// older than the issuer's `max_key_staleness_secs`, which a cached answer would outlive.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let key = token_hash(token);
        if let Some(principal) = self.verified.get(&key, Instant::now()) {
            return Ok(principal);
        }
        let principal = self.verify_uncached(token).await?;
        if principal.issuer == self.settings.issuer {
            self.verified.insert(key, &principal, Instant::now(), Utc::now());
        }
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // Which issuer decides which key and algorithm; the signature check below still
        // pins `iss`, so a lie here only selects a key that then fails to verify.
        let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
        let peek: Peek = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(AuthError::Malformed)?;
        let iss = peek
            .iss
            .ok_or_else(|| AuthError::Claim("iss is required".to_owned()))?;
        if iss == self.settings.issuer {
            // Documents the same key signs (erasure receipts) carry their own `typ`: never a
            // token, whatever claims they hold.
            if header
                .typ
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
            {
                return Err(AuthError::Malformed);
            }
            return self.verify_own(token, header.kid.as_deref());
        }
        let (issuer, cache) = self
            .external
            .iter()
            .find(|(i, _)| i.issuer == iss)
            .ok_or(AuthError::UntrustedIssuer)?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::WrongAlgorithm);
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Claim("kid header is required".to_owned()))?;
        let key = cache.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway_secs;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
                .map_err(from_jwt)?;
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(0);
        let now = Utc::now().timestamp();
        let issued = data.claims.get("iat").and_then(serde_json::Value::as_i64);
        if issued.is_some_and(|iat| iat > now + leeway) {
            return Err(AuthError::NotYetValid);
        }
        // A long-lived token from a compromised or careless IdP must not outlive the limit
        // (nor a deleted tenant's id reservation).
        let exp = data
            .claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(now);
        let lifetime = exp.saturating_sub(issued.unwrap_or(now));
        let max = i64::try_from(issuer.max_token_lifetime_secs).unwrap_or(i64::MAX);
        if lifetime > max.saturating_add(leeway) {
            return Err(AuthError::Claim(format!(
                "the token lives {lifetime} s; this issuer's tokens may live at most {max} s"
            )));
        }
        map_external(issuer, &data.claims)
    }

    fn verify_own(&self, token: &str, kid: Option<&str>) -> Result<Principal, AuthError> {
        if let Some(kid) = kid.filter(|k| *k != self.own.kid()) {
            return Err(AuthError::UnknownKey(kid.to_owned()));
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = self.settings.leeway_secs;
        let claims = jsonwebtoken::decode::<Claims>(token, self.own.decoding_key(), &validation)
            .map_err(from_jwt)?
            .claims;
        if claims.iat > Utc::now().timestamp() + i64::try_from(self.settings.leeway_secs).unwrap_or(0) {
            return Err(AuthError::NotYetValid);
        }
        let role = Role::parse(&claims.role)
            .ok_or_else(|| AuthError::Claim(format!("unknown role {}", claims.role)))?;
        let token_id =
            Uuid::parse_str(&claims.jti).map_err(|_| AuthError::Claim("jti must be a UUID".to_owned()))?;
        principal(
            claims.sub,
            role,
            claims.tenant.as_deref(),
            Some(token_id),
            claims.iss,
            claims.exp,
            claims.groups,
        )
    }
}

fn principal(
    subject: String,
    role: Role,
    tenant: Option<&str>,
    token_id: Option<Uuid>,
    issuer: String,
    exp: i64,
    groups: Vec<String>,
) -> Result<Principal, AuthError> {
    if subject.trim().is_empty() {
        return Err(AuthError::Claim("sub must not be empty".to_owned()));
    }
    if groups.len() > crate::grants::MAX_GROUPS {
        return Err(AuthError::Claim(format!(
            "groups holds {} names; at most {} are accepted",
            groups.len(),
            crate::grants::MAX_GROUPS
        )));
    }
    if groups.iter().any(|g| !crate::grants::valid_name(g)) {
        return Err(AuthError::Claim(
            "groups must be names of 1 to 256 characters, without control characters".to_owned(),
        ));
    }
    let tenant = match (role, tenant) {
        (Role::PlatformAdmin, None) => None,
        (Role::PlatformAdmin, Some(_)) => {
            return Err(AuthError::Claim(
                "platform-admin tokens carry no tenant".to_owned(),
            ));
        }
        (_, Some(raw)) => Some(
            TenantId::parse(raw)
                .map_err(|_| AuthError::Claim("tenant is not a valid tenant id".to_owned()))?,
        ),
        (_, None) => return Err(AuthError::Claim(format!("{role} tokens must name a tenant"))),
    };
    let expires_at = Utc
        .timestamp_opt(exp, 0)
        .single()
        .ok_or_else(|| AuthError::Claim("exp is out of range".to_owned()))?;
    Ok(Principal {
        subject,
        role,
        tenant,
        token_id,
        issuer,
        expires_at,
        groups,
    })
}

fn map_external(
    issuer: &OidcIssuer,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Principal, AuthError> {
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let subject = text(&issuer.subject_claim)
        .ok_or_else(|| AuthError::Claim(format!("{} is required", issuer.subject_claim)))?;
    let raw_role = text(&issuer.role_claim)
        .ok_or_else(|| AuthError::Claim(format!("{} is required", issuer.role_claim)))?;
    let role = if issuer.role_map.is_empty() {
        // Platform-wide power needs an explicit mapping, never a bare claim from an IdP.
        Role::parse(&raw_role).filter(|r| *r != Role::PlatformAdmin)
    } else {
        issuer.role_map.get(&raw_role).copied()
    }
    .ok_or_else(|| AuthError::Claim(format!("role {raw_role} is not mapped")))?;
    let exp = claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| AuthError::Claim("exp".to_owned()))?;
    let token_id = text("jti").and_then(|j| Uuid::parse_str(&j).ok());
    let tenant = issuer
        .tenant_of(text(&issuer.tenant_claim).as_deref())
        .map_err(AuthError::Claim)?;
    // A missing claim is no groups, a string one group (some IdPs send a single group so);
    // a claim of another shape is refused, not ignored.
    let groups = match claims.get(&issuer.groups_claim) {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        Some(serde_json::Value::Array(values)) => values
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                AuthError::Claim(format!("{} must be an array of strings", issuer.groups_claim))
            })?,
        Some(_) => {
            return Err(AuthError::Claim(format!(
                "{} must be an array of strings",
                issuer.groups_claim
            )));
        }
    };
    principal(
        subject,
        role,
        tenant.as_deref(),
        token_id,
        issuer.issuer.clone(),
        exp,
        groups,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    #[test]
    fn an_issuers_groups_claim_is_a_list_or_one_name_and_nothing_else() {
        let issuer: OidcIssuer = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example.test/", "jwks_url": "https://idp.example.test/jwks",
            "audience": "lakeplane", "tenants": ["acme"], "tenant_claim": "org",
        }))
        .expect("issuer");
        let claims = |groups: serde_json::Value| {
            let mut c = serde_json::json!({"sub": "carol", "role": "analyst", "org": "acme",
                "exp": Utc::now().timestamp() + 600});
            if !groups.is_null() {
                c["groups"] = groups;
            }
            c.as_object().expect("object").clone()
        };
        let groups = |g| map_external(&issuer, &claims(g)).map(|p| p.groups);
        assert_eq!(
            groups(serde_json::json!(["finance", "ops"])).expect("list"),
            ["finance", "ops"]
        );
        assert_eq!(groups(serde_json::json!("finance")).expect("one"), ["finance"]);
        assert!(groups(serde_json::Value::Null).expect("none").is_empty());
        for bad in [
            serde_json::json!(["finance", 7]),
            serde_json::json!({"a": 1}),
            serde_json::json!(["x\ny"]),
        ] {
            assert!(matches!(groups(bad.clone()), Err(AuthError::Claim(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_signed_document_of_another_type_is_never_a_token() {
        let dir = tempfile::tempdir().expect("dir");
        let key = Arc::new(SigningKey::load(None, None, dir.path()).expect("key"));
        let settings = TokenSettings::default();
        let verifier = Verifier::new(key.clone(), settings.clone(), &[]);
        // Every claim a token needs, valid for an hour.
        let now = Utc::now();
        let claims = Claims::new(
            "ann",
            Role::PlatformAdmin,
            None,
            Uuid::now_v7(),
            now,
            now + chrono::Duration::hours(1),
            &settings,
        );
        let token = key.sign(&claims).expect("sign");
        verifier.verify(&token).await.expect("a token verifies");
        let document = key
            .sign_document("lakeplane-erasure-receipt+jwt", &claims)
            .expect("sign");
        assert!(
            matches!(verifier.verify(&document).await, Err(AuthError::Malformed)),
            "the same claims under a receipt's type are refused"
        );
    }

    #[tokio::test]
    async fn a_cached_token_does_not_vouch_for_a_tampered_copy() {
        let dir = tempfile::tempdir().expect("dir");
        let key = Arc::new(SigningKey::load(None, None, dir.path()).expect("key"));
        let settings = TokenSettings::default();
        let verifier = Verifier::new(key.clone(), settings.clone(), &[]);
        let now = Utc::now();
        let acme = TenantId::parse("acme").expect("id");
        let claims = |role| {
            Claims::new(
                "ann",
                role,
                Some(&acme),
                Uuid::now_v7(),
                now,
                now + chrono::Duration::hours(1),
                &settings,
            )
        };
        let token = key.sign(&claims(Role::Analyst)).expect("sign");
        for _ in 0..2 {
            let principal = verifier
                .verify(&token)
                .await
                .expect("verifies, then from the cache");
            assert_eq!(principal.role, Role::Analyst);
        }
        // The payload of a more powerful token under the cached token's signature.
        let stronger = key.sign(&claims(Role::TenantAdmin)).expect("sign");
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = stronger.split('.').nth(1).expect("payload");
        assert_eq!(
            verifier.verify(&parts.join(".")).await,
            Err(AuthError::BadSignature)
        );
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert!(
            verifier.verify(&flipped).await.is_err(),
            "a changed signature byte is verified, and refused"
        );
    }
}
