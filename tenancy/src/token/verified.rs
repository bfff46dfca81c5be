//! Tokens already verified, by a hash of the whole token, so a client that sends the same
//! token on every request pays for its signature check once.
//!
//! Only successes are kept, and only for what verification decided: signature, issuer,
//! audience, times and claim mapping. Revocation is not cached here; the caller checks it on
//! every request. The key is SHA-256 of the entire compact token, signature included, so a
//! token that differs in any byte (a forged signature, altered claims) is a miss and gets
//! verified in full.
//!
//! An entry lives until the token expires, and never more than [`MAX_AGE`]: an OIDC issuer
//! that withdraws a signing key stops its tokens here within that bound.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::expiring::ExpiringMap;
use crate::policy::Principal;

/// Longest an entry is trusted without verifying the token again.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// A token's cache key.
pub type TokenHash = [u8; 32];

/// The hash a token is cached under.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Verified principals by token hash, at most `capacity` of them.
pub struct VerifiedTokens(ExpiringMap<TokenHash, Principal>);

impl VerifiedTokens {
    /// An empty cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self(ExpiringMap::new(capacity))
    }

    /// The principal of a token verified before, unless its entry has lapsed.
    pub fn get(&self, key: &TokenHash, now: Instant) -> Option<Principal> {
        self.0.get(key, now)
    }

    /// Keeps a principal just verified: until its token expires (by `wall`, the clock its
    /// `exp` is read against) and at most [`MAX_AGE`] from `now`.
    pub fn insert(&self, key: TokenHash, principal: &Principal, now: Instant, wall: DateTime<Utc>) {
        let left = (principal.expires_at - wall).to_std().unwrap_or(Duration::ZERO);
        self.0
            .insert(key, principal.clone(), now + left.min(MAX_AGE), now);
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::role::Role;

    fn principal(subject: &str, expires_at: DateTime<Utc>) -> Principal {
        Principal {
            subject: subject.to_owned(),
            role: Role::PlatformAdmin,
            tenant: None,
            token_id: None,
            issuer: "lakeplane".to_owned(),
            expires_at,
            groups: Vec::new(),
        }
    }

    #[test]
    fn a_token_differing_in_one_byte_is_a_miss() {
        let cache = VerifiedTokens::new(8);
        let (now, wall) = (Instant::now(), Utc::now());
        cache.insert(
            token_hash("a.b.c"),
            &principal("ann", wall + TimeDelta::hours(1)),
            now,
            wall,
        );
        assert_eq!(
            cache.get(&token_hash("a.b.c"), now).map(|p| p.subject),
            Some("ann".to_owned())
        );
        assert!(cache.get(&token_hash("a.b.d"), now).is_none());
    }

    #[test]
    fn an_entry_lapses_at_the_token_expiry_or_max_age_whichever_first() {
        let cache = VerifiedTokens::new(8);
        let (now, wall) = (Instant::now(), Utc::now());
        cache.insert(
            token_hash("short"),
            &principal("s", wall + TimeDelta::seconds(10)),
            now,
            wall,
        );
        cache.insert(
            token_hash("long"),
            &principal("l", wall + TimeDelta::hours(1)),
            now,
            wall,
        );
        let later = |secs| now + Duration::from_secs(secs);
        assert!(cache.get(&token_hash("short"), later(9)).is_some());
        assert!(
            cache.get(&token_hash("short"), later(10)).is_none(),
            "gone when the token expires"
        );
        assert!(cache.get(&token_hash("long"), later(59)).is_some());
        assert!(
            cache.get(&token_hash("long"), later(60)).is_none(),
            "gone after MAX_AGE"
        );
    }

    #[test]
    fn expired_tokens_are_not_kept_and_size_stays_bounded() {
        let cache = VerifiedTokens::new(4);
        let (now, wall) = (Instant::now(), Utc::now());
        cache.insert(
            token_hash("old"),
            &principal("o", wall - TimeDelta::seconds(1)),
            now,
            wall,
        );
        assert!(cache.is_empty());
        for i in 0..100 {
            let token = format!("t{i}");
            cache.insert(
                token_hash(&token),
                &principal(&token, wall + TimeDelta::hours(1)),
                now,
                wall,
            );
            assert!(cache.len() <= 4, "{} entries", cache.len());
            assert!(
                cache.get(&token_hash(&token), now).is_some(),
                "the newest is kept"
            );
        }
        let disabled = VerifiedTokens::new(0);
        disabled.insert(
            token_hash("x"),
            &principal("x", wall + TimeDelta::hours(1)),
            now,
            wall,
        );
        assert!(disabled.get(&token_hash("x"), now).is_none());
    }
}
