//! The console's session: the signed-in bearer token, sealed into an HttpOnly cookie.
//!
//! The cookie holds the token encrypted and authenticated under the console key
//! (XChaCha20-Poly1305), so the browser never holds the token in a form script can read, and a
//! cookie changed by hand does not open. Nothing is kept on the server: every page forwards the
//! token to `/v1`, whose authentication and revocation check end the session as soon as the
//! token expires or is revoked.

use chrono::{DateTime, Utc};
use lake_manager::ingest::secrets::Sealer;
use serde::{Deserialize, Serialize};

/// The cookie's name. `__Host-` would pin it to `Secure` and `/`, which plain-HTTP installs
/// cannot use, so the attributes are set explicitly instead.
pub const COOKIE: &str = "lakeplane_console";

/// Longest a console session lasts, whatever the token's lifetime: a copied cookie, or a
/// browser left signed in, stops working by then.
pub const MAX_SESSION: chrono::Duration = chrono::Duration::hours(12);

/// Associated data binding sealed values to this use, so no other sealed value opens as one.
const PLACE: &str = "console-session/v1";

/// A signed-in browser.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// The bearer token every `/v1` call is made with.
    pub token: String,
    /// The CSRF token every state-changing form must echo.
    pub csrf: String,
    /// When the token expires; the cookie ends then too.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A new session for `token`, which expires at `token_expires_at`, with a fresh CSRF
    /// token. It ends when the token does, or after [`MAX_SESSION`] if that is sooner.
    pub fn new(token: String, token_expires_at: DateTime<Utc>) -> Self {
        Self {
            token,
            csrf: tenancy::share::new_url_secret(),
            expires_at: token_expires_at.min(Utc::now() + MAX_SESSION),
        }
    }

    /// The cookie value.
    pub fn seal(&self, sealer: &Sealer) -> Option<String> {
        let json = serde_json::to_string(self).ok()?;
        sealer.seal(PLACE, &json).ok()
    }

    /// The session in a cookie value, unless it was not sealed by this key, was altered, or
    /// has expired.
    pub fn open(sealer: &Sealer, value: &str, now: DateTime<Utc>) -> Option<Self> {
        let json = sealer.open(PLACE, value).ok()?;
        let session: Self = serde_json::from_str(&json).ok()?;
        (session.expires_at > now).then_some(session)
    }
}

/// Whether `submitted` equals the secret `expected`, compared in constant time.
pub fn same_secret(expected: &str, submitted: &str) -> bool {
    let (a, b) = (expected.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value that stores a session until it expires.
pub fn set_cookie(value: &str, expires_at: DateTime<Utc>, now: DateTime<Utc>, secure: bool) -> String {
    let max_age = (expires_at - now).num_seconds().max(0);
    format!(
        "{COOKIE}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The value of cookie `name` among a request's `Cookie` headers.
pub fn cookie_value<'a>(name: &str, headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").expect("32 bytes")
    }

    #[test]
    fn a_sealed_session_opens_only_unaltered_and_unexpired() {
        let now = Utc::now();
        let session = Session::new("tok.en".into(), now + chrono::Duration::minutes(5));
        let sealed = session.seal(&sealer()).expect("seals");
        assert!(
            !sealed.contains("tok.en"),
            "the token is not readable in the cookie"
        );
        let opened = Session::open(&sealer(), &sealed, now).expect("opens");
        assert_eq!(opened.token, "tok.en");
        assert_eq!(opened.csrf, session.csrf);
        assert!(Session::open(&sealer(), &sealed, now + chrono::Duration::minutes(6)).is_none());
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(Session::open(&sealer(), &altered, now).is_none());
        let other = Sealer::from_base64("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").expect("key");
        assert!(Session::open(&other, &sealed, now).is_none());
    }

    #[test]
    fn a_session_ends_with_its_token_or_after_the_cap() {
        let now = Utc::now();
        let short = Session::new("t".into(), now + chrono::Duration::minutes(5));
        assert_eq!(short.expires_at, now + chrono::Duration::minutes(5));
        let long = Session::new("t".into(), now + chrono::Duration::days(30));
        assert!(
            long.expires_at <= Utc::now() + MAX_SESSION
                && long.expires_at > now + chrono::Duration::hours(11)
        );
    }

    #[test]
    fn csrf_must_match_exactly() {
        let session = Session::new("t".into(), Utc::now());
        assert!(same_secret(&session.csrf, &session.csrf.clone()));
        assert!(!same_secret(&session.csrf, ""));
        assert!(!same_secret(&session.csrf, &session.csrf[1..]));
        assert_ne!(Session::new("t".into(), Utc::now()).csrf, session.csrf);
    }

    #[test]
    fn the_cookie_is_found_among_others_and_carries_its_attributes() {
        assert_eq!(
            cookie_value(COOKIE, ["a=1; lakeplane_console=xyz; b=2"].into_iter()),
            Some("xyz")
        );
        assert_eq!(
            cookie_value(COOKIE, ["a=1", "lakeplane_console="].into_iter()),
            None
        );
        let now = Utc::now();
        let set = set_cookie("v", now + chrono::Duration::seconds(90), now, true);
        assert!(set.contains("Max-Age=90") && set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.ends_with("; Secure"));
        assert!(!set_cookie("v", now, now, false).contains("Secure"));
    }
}
