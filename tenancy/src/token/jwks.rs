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
    /// Claim holding the subject's groups (an array of strings, or one string), for grants to
    /// `group:NAME`.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Maps the IdP's role values to Lakeplane roles; when empty, values must be role names.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    /// Accepted signing algorithms; HMAC is never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Least time between JWKS fetches triggered by unknown key ids.
    #[serde(default = "default_min_refresh_secs")]
    pub min_refresh_secs: u64,
    /// The tenants this issuer's tokens may name (their tenant claim); `["*"]` for any, said
    /// explicitly. Required unless `tenant` is set: an IdP trusted for one customer must not
    /// be able to act in another's tenant.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// The one tenant every token of this issuer acts in; a tenant claim, when present, must
    /// name it.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Longest accepted token lifetime: `exp - iat`, or `exp - now` without `iat`.
    #[serde(default = "default_max_token_lifetime_secs")]
    pub max_token_lifetime_secs: u64,
    /// Accept an `http://` JWKS URL (a sidecar on localhost, a test); otherwise only https,
    /// since whoever can alter the key set in transit can mint any token.
    #[serde(default)]
    pub allow_http_jwks: bool,
    /// How long fetched keys stay usable when the JWKS cannot be fetched again (an IdP
    /// outage, or a blocked route to it); past it, tokens are refused until a fetch succeeds.
    #[serde(default = "default_max_key_staleness_secs")]
    pub max_key_staleness_secs: u64,
    /// Signing in to the web console through this issuer; without it, the console takes its
    /// tokens pasted only.
    #[serde(default)]
    pub console: Option<ConsoleLogin>,
}

/// The web console's sign-in through an issuer: the OAuth 2.0 authorization-code flow with
/// PKCE (S256), as a public client (no client secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleLogin {
    /// The console's client id at the identity provider.
    pub client_id: String,
    /// Where the browser is sent to sign in.
    pub authorization_endpoint: url::Url,
    /// Where the console exchanges the code for tokens.
    pub token_endpoint: url::Url,
    /// Scopes asked for, space-separated.
    #[serde(default = "default_scopes")]
    pub scopes: String,
    /// The token of the answer the console signs in with: `id_token` or `access_token`. It
    /// must pass this issuer's checks like any bearer token (audience included).
    #[serde(default = "default_token_field")]
    pub token_field: String,
    /// The sign-in button's label; the issuer when unset.
    #[serde(default)]
    pub label: Option<String>,
}

fn default_scopes() -> String {
    "openid".to_owned()
}
fn default_token_field() -> String {
    "id_token".to_owned()
}

fn default_max_token_lifetime_secs() -> u64 {
    12 * 3600
}
fn default_max_key_staleness_secs() -> u64 {
    24 * 3600
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
fn default_groups_claim() -> String {
    "groups".to_owned()
}
fn default_algorithms() -> Vec<Algorithm> {
    vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
}
fn default_min_refresh_secs() -> u64 {
    10
}

impl OidcIssuer {
    /// The tenant a token acts in, from its tenant claim (`None` when it has none), or why not.
    pub fn tenant_of(&self, claimed: Option<&str>) -> Result<Option<String>, String> {
        if let Some(fixed) = &self.tenant {
            return match claimed {
                None => Ok(Some(fixed.clone())),
                Some(c) if c == fixed => Ok(Some(fixed.clone())),
                Some(c) => Err(format!("this issuer acts only in tenant {fixed}, not {c}")),
            };
        }
        match claimed {
            None => Ok(None),
            Some(c) if self.tenants.iter().any(|t| t == "*" || t == c) => Ok(Some(c.to_owned())),
            Some(c) => Err(format!("this issuer may not name tenant {c}")),
        }
    }

    /// Checks the settings, returning the bad field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.issuer.trim().is_empty() {
            return Err(("issuer", "must not be empty".to_owned()));
        }
        if self.algorithms.is_empty() {
            return Err(("algorithms", "must list at least one algorithm".to_owned()));
        }
        match (&self.tenant, self.tenants.is_empty()) {
            (None, true) => {
                return Err((
                    "tenants",
                    "list the tenants this issuer may name ([\"*\"] for any), or set tenant".to_owned(),
                ));
            }
            (Some(_), false) => return Err(("tenant", "set tenant or tenants, not both".to_owned())),
            _ => {}
        }
        for (field, id) in self
            .tenant
            .iter()
            .map(|t| ("tenant", t))
            .chain(self.tenants.iter().filter(|t| *t != "*").map(|t| ("tenants", t)))
        {
            if crate::tenant::TenantId::parse(id).is_err() {
                return Err((field, format!("{id:?} is not a valid tenant id")));
            }
        }
        if self.jwks_url.scheme() != "https" && !(self.allow_http_jwks && self.jwks_url.scheme() == "http") {
            return Err((
                "jwks_url",
                "must be https (set allow_http_jwks for an http URL you trust, such as localhost)".to_owned(),
            ));
        }
        if let Some(console) = &self.console {
            if console.client_id.trim().is_empty() {
                return Err(("console.client_id", "must not be empty".to_owned()));
            }
            for (field, url) in [
                ("console.authorization_endpoint", &console.authorization_endpoint),
                ("console.token_endpoint", &console.token_endpoint),
            ] {
                if url.scheme() != "https" && !(self.allow_http_jwks && url.scheme() == "http") {
                    return Err((
                        field,
                        "must be https (allow_http_jwks also allows http)".to_owned(),
                    ));
                }
            }
            if !matches!(console.token_field.as_str(), "id_token" | "access_token") {
                return Err((
                    "console.token_field",
                    "must be id_token or access_token".to_owned(),
                ));
            }
        }
        if !(60..=7 * 24 * 3600).contains(&self.max_token_lifetime_secs) {
            return Err(("max_token_lifetime_secs", "must be 60 to 604800".to_owned()));
        }
        if !(1..=30 * 24 * 3600).contains(&self.max_key_staleness_secs)
            || self.max_key_staleness_secs < self.min_refresh_secs
        {
            return Err((
                "max_key_staleness_secs",
                "must be 1 to 2592000 and at least min_refresh_secs".to_owned(),
            ));
        }
        // Platform-wide power from an issuer trusted only for some tenants would reach them all.
        if self.role_map.values().any(|r| *r == Role::PlatformAdmin) && self.tenants != ["*"] {
            return Err((
                "role_map",
                "maps a value to platform-admin, which only an issuer with tenants = [\"*\"] may do"
                    .to_owned(),
            ));
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
    max_staleness: Duration,
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
            max_staleness: Duration::from_secs(issuer.max_key_staleness_secs),
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
            let fresh = state.fetched_at.is_some_and(|t| t.elapsed() <= self.max_age());
            if let Some(key) = state.keys.get(kid).filter(|_| fresh) {
                return Ok(key.clone());
            }
        }
        let _single_flight = self.refresh.lock().await;
        {
            let state = self.state.read().await;
            let fresh = state.fetched_at.is_some_and(|t| t.elapsed() <= self.max_age());
            let throttled = state.attempted_at.is_some_and(|t| t.elapsed() < self.min_refresh);
            match state.keys.get(kid) {
                Some(key) if fresh || (throttled && self.usable(&state)) => return Ok(key.clone()),
                // Stale, and a fetch was tried moments ago: no new fetch for every request.
                Some(_) if throttled => return Err(AuthError::StaleKeys),
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
            // Keep serving known keys through an IdP outage, for `max_key_staleness_secs`:
            // a key the IdP has since revoked must not stay trusted for ever.
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                if !self.usable(&state) {
                    return Err(AuthError::StaleKeys);
                }
            }
        }
        state
            .keys
            .get(kid)
            .cloned()
            .ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))
    }

    /// How long keys are used before a refetch is tried: an hour, or half the staleness
    /// allowed, so a refetch is tried (and can fail) well before the keys go stale.
    fn max_age(&self) -> Duration {
        MAX_KEY_AGE.min(self.max_staleness / 2)
    }

    /// Whether the keys held were fetched recently enough to use without a new fetch.
    fn usable(&self, state: &Cached) -> bool {
        state
            .fetched_at
            .is_some_and(|t| t.elapsed() <= self.max_staleness)
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
