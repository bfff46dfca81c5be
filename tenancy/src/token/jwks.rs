//! Trusted external OIDC issuers and their cached JWKS.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::role::Role;

/// How long fetched keys are trusted before they are fetched again on use.
const MAX_KEY_AGE: Duration = Duration::from_secs(3600);

/// A trusted external identity provider and how its claims map to Lakeplane's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// Where its public keys are published.
    pub jwks_url: url::Url,
    /// The `aud` its tokens must carry for Lakeplane.
    pub audience: String,
    /// Claim naming the subject.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Claim naming the tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim naming the role.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Maps the IdP's role values to Lakeplane roles; when empty, values must be role names.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    /// Accepted signing algorithms; HMAC is never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Least time between JWKS fetches triggered by unknown key ids.
    #[serde(default = "default_min_refresh_secs")]
    pub min_refresh_secs: u64,
}

fn default_subject_claim() -> String {
    "sub".to_owned()
}
fn default_tenant_claim() -> String {
    "tenant".to_owned()
}
fn default_role_claim() -> String {
    "role".to_owned()
}
fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
}
fn default_min_refresh_secs() -> u64 {
    10
}

impl OidcIssuer {
    /// Checks the settings, returning the bad field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.issuer.trim().is_empty() {
            return Err(("issuer", "must not be empty".to_owned()));
        }
        if self.algorithms.is_empty() {
            return Err(("algorithms", "must list at least one algorithm".to_owned()));
        }
        if let Some(hmac) = self
            .algorithms
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err((
                "algorithms",
                format!("{hmac:?} is symmetric and cannot be verified with a public JWKS"),
            ));
        }
        Ok(())
    }
}

struct Cached {
    keys: HashMap<String, DecodingKey>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

/// The issuer's keys, fetched on first use and again on an unknown `kid`.
pub struct JwksCache {
    url: url::Url,
    min_refresh: Duration,
    client: reqwest::Client,
    // Readers never wait for a fetch; one fetch at a time, and at most one per `min_refresh`
    // whether it succeeded or not, so forged `kid`s cannot make the plane hammer the IdP.
    state: tokio::sync::RwLock<Cached>,
    refresh: tokio::sync::Mutex<()>,
}

impl JwksCache {
    /// A cache for one issuer.
    pub fn new(issuer: &OidcIssuer) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            url: issuer.jwks_url.clone(),
            min_refresh: Duration::from_secs(issuer.min_refresh_secs),
            client,
            state: tokio::sync::RwLock::new(Cached {
                keys: HashMap::new(),
                fetched_at: None,
                attempted_at: None,
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The key for `kid`, fetching the JWKS when the key is unknown or the set is old.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let state = self.state.read().await;
            let fresh = state.fetched_at.is_some_and(|t| t.elapsed() <= MAX_KEY_AGE);
            if let Some(key) = state.keys.get(kid).filter(|_| fresh) {
                return Ok(key.clone());
            }
        }
        let _single_flight = self.refresh.lock().await;
        {
            let state = self.state.read().await;
            let fresh = state.fetched_at.is_some_and(|t| t.elapsed() <= MAX_KEY_AGE);
            let throttled = state.attempted_at.is_some_and(|t| t.elapsed() < self.min_refresh);
            match state.keys.get(kid) {
                Some(key) if fresh || throttled => return Ok(key.clone()),
                None if throttled => return Err(AuthError::UnknownKey(kid.to_owned())),
                _ => {}
            }
        }
        let fetched = self.fetch().await;
        let mut state = self.state.write().await;
        state.attempted_at = Some(Instant::now());
        match fetched {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(Instant::now());
            }
            // Keep serving known keys through an IdP outage; unknown ones fail below.
            Err(e) => tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed"),
        }
        state
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Symmetric keys in a public JWKS are a misconfiguration; never verify with them.
            if matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, key);
            }
        }
        Ok(keys)
    }
}
