//! Delta Sharing, the pure part: share and recipient names, the share request, recipients'
//! bearer tokens, and the signatures on the file URLs the plane serves itself.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::role::Zone;
use crate::table::{TableName, check_identifier};
use crate::validation::{Violation, Violations};

/// Most tables one share may hold.
pub const MAX_SHARE_TABLES: usize = 100;

/// Longest a file URL lives, whatever the recipient's remaining life (the bound).
pub const MAX_FILE_URL_LIFETIME: Duration = Duration::from_secs(3600);

/// What a recipient's bearer token starts with, so a leaked one is recognisable in scans.
pub const TOKEN_PREFIX: &str = "lpds_";

/// A validated identifier type: a lowercase letter, then lowercase letters, digits or `_`.
macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub struct $name(String);

        impl $name {
            /// Validates the name.
            pub fn parse(raw: &str) -> Result<Self, String> {
                check_identifier(raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// Wraps a name read back from the store, which only holds validated names.
            pub fn from_trusted(raw: String) -> Self {
                Self(raw)
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A share's name: the `share` of `profile#share.schema.table`, so no dots.
    ShareName
);
identifier!(
    /// A recipient's name, unique among the share's live recipients.
    RecipientName
);

/// One table of a share request, as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct RawTableRef {
    /// `bronze`, `silver` or `gold`.
    pub zone: String,
    /// The table's name in that zone.
    pub name: String,
}

/// A validated share: its name and its tables in request order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    /// The share's name.
    pub name: ShareName,
    /// The tables, as (zone, name).
    pub tables: Vec<(Zone, TableName)>,
}

/// Checks a share request, reporting every bad field at once.
pub fn validate_share(name: &str, tables: &[RawTableRef]) -> Result<ShareSpec, Vec<Violation>> {
    let mut violations = Violations::default();
    let name = violations.check(ShareName::parse(name).map_err(|m| Violation::new("name", m)));
    if tables.is_empty() {
        violations.push(Violation::new("tables", "must list at least one table"));
    }
    if tables.len() > MAX_SHARE_TABLES {
        violations.push(Violation::new(
            "tables",
            format!("at most {MAX_SHARE_TABLES} tables per share"),
        ));
    }
    let mut parsed: Vec<(Zone, TableName)> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let zone = Zone::parse(&table.zone);
        if zone.is_none() {
            violations.push(Violation::new(
                format!("tables[{i}].zone"),
                "must be bronze, silver or gold",
            ));
        }
        let table_name = violations
            .check(TableName::parse(&table.name).map_err(|m| Violation::new(format!("tables[{i}].name"), m)));
        if let (Some(zone), Some(table_name)) = (zone, table_name) {
            if parsed.iter().any(|(z, n)| *z == zone && *n == table_name) {
                violations.push(Violation::new(
                    format!("tables[{i}]"),
                    format!("{}.{} is listed twice", zone.as_str(), table_name),
                ));
            } else {
                parsed.push((zone, table_name));
            }
        }
    }
    violations.finish(|| ShareSpec {
        name: name.unwrap_or_else(|| ShareName::from_trusted(String::new())),
        tables: parsed,
    })
}

/// A new recipient bearer token: the prefix and 32 random bytes, base64url.
pub fn new_bearer_token() -> Result<String, String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut bytes)
        .map_err(|e| format!("no randomness for a recipient token: {e}"))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A new URL-signing secret: 32 random bytes, hex. Like the token signing key, it is made
/// once at first start, where a system without randomness cannot go on anyway.
pub fn new_url_secret() -> String {
    let mut bytes = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the store keeps of a bearer token: its SHA-256, hex. The token has 256 random bits,
/// so a plain hash is enough (no salt or slow hash needed) and lookups stay one index probe.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How long a file URL may live: the recipient's remaining life, capped at an hour; `None`
/// once the recipient has expired.
pub fn file_url_lifetime(recipient_expires: DateTime<Utc>, now: DateTime<Utc>) -> Option<Duration> {
    let remaining = (recipient_expires - now).to_std().ok()?;
    (!remaining.is_zero()).then(|| remaining.min(MAX_FILE_URL_LIFETIME))
}

/// Why a signed file URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// The signature does not match the path and expiry (tampered, or another key).
    #[error("the URL signature is not valid")]
    BadSignature,
    /// The URL's expiry has passed.
    #[error("the URL has expired")]
    Expired,
}

/// Signs and checks file URLs with HMAC-SHA256 over the table, the file path and the expiry.
#[derive(Clone)]
pub struct UrlSigner {
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner").field("key", &"***").finish()
    }
}

/// Shortest accepted URL-signing secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl UrlSigner {
    /// A signer with `secret` (at least [`MIN_SECRET_BYTES`] bytes).
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!("must be at least {MIN_SECRET_BYTES} bytes"));
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret).map_err(|e| e.to_string())?;
        Ok(Self { keyed })
    }

    fn mac(&self, grant: &FileGrant<'_>) -> Hmac<Sha256> {
        // Length-prefixed fields: no choice of path can make two different URLs sign alike.
        let mut mac = self.keyed.clone();
        let expires = grant.expires.to_string();
        for field in [grant.recipient, grant.table, grant.path, expires.as_str()] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// The signature, hex, of a grant.
    pub fn sign(&self, grant: &FileGrant<'_>) -> String {
        self.mac(grant)
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Checks a signature in constant time, then the expiry against `now` (Unix seconds).
    pub fn verify(&self, grant: &FileGrant<'_>, signature: &str, now: i64) -> Result<(), UrlRefusal> {
        let bytes = decode_hex(signature).ok_or(UrlRefusal::BadSignature)?;
        self.mac(grant)
            .verify_slice(&bytes)
            .map_err(|_| UrlRefusal::BadSignature)?;
        if now >= grant.expires {
            return Err(UrlRefusal::Expired);
        }
        Ok(())
    }
}

/// What a signed file URL grants: one file of one table, to one recipient, until a time. The
/// recipient is in it so the file route can refuse URLs of a revoked recipient or a deleted
/// share at once, not only when they expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileGrant<'a> {
    /// The recipient the URL was issued to (its id).
    pub recipient: &'a str,
    /// The table (its id).
    pub table: &'a str,
    /// The file, relative to the table root, percent-decoded.
    pub path: &'a str,
    /// Expiry, Unix seconds.
    pub expires: i64,
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Whether a file path (relative to its table, already percent-decoded) stays inside the
/// table: no empty, `.` or `..` segments, no backslashes or NULs, not absolute.
pub fn is_contained_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(zone: &str, name: &str) -> RawTableRef {
        RawTableRef {
            zone: zone.into(),
            name: name.into(),
        }
    }

    #[test]
    fn share_requests_name_every_bad_field() {
        let ok = validate_share("sales", &[raw("gold", "orders"), raw("silver", "orders")]).expect("valid");
        assert_eq!(ok.tables.len(), 2);
        let errors = validate_share(
            "Bad.Name",
            &[
                raw("platinum", "x"),
                raw("gold", "Bad"),
                raw("gold", "a"),
                raw("gold", "a"),
            ],
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["name", "tables[0].zone", "tables[1].name", "tables[3]"]);
        let empty = validate_share("s", &[]).expect_err("no tables");
        assert_eq!(empty[0].field, "tables");
        let many: Vec<RawTableRef> = (0..=MAX_SHARE_TABLES)
            .map(|i| raw("gold", &format!("t{i}")))
            .collect();
        assert!(validate_share("s", &many).is_err());
    }

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = new_bearer_token().expect("token");
        let b = new_bearer_token().expect("token");
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn url_lifetime_is_the_recipients_remainder_capped_at_an_hour() {
        let now = Utc::now();
        assert_eq!(
            file_url_lifetime(now + chrono::Duration::hours(5), now),
            Some(MAX_FILE_URL_LIFETIME)
        );
        assert_eq!(
            file_url_lifetime(now + chrono::Duration::seconds(90), now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(file_url_lifetime(now, now), None);
        assert_eq!(file_url_lifetime(now - chrono::Duration::seconds(1), now), None);
    }

    #[test]
    fn signatures_bind_recipient_table_path_and_expiry() {
        let signer = UrlSigner::new(&[7u8; 32]).expect("key");
        let grant = FileGrant {
            recipient: "r1",
            table: "t1",
            path: "part-0.parquet",
            expires: 1_000,
        };
        let sig = signer.sign(&grant);
        assert_eq!(signer.verify(&grant, &sig, 999), Ok(()));
        assert_eq!(signer.verify(&grant, &sig, 1_000), Err(UrlRefusal::Expired));
        for other in [
            FileGrant {
                recipient: "r2",
                ..grant
            },
            FileGrant { table: "t2", ..grant },
            FileGrant {
                path: "part-1.parquet",
                ..grant
            },
            FileGrant {
                expires: 2_000,
                ..grant
            },
            // Moving bytes between fields must not keep the signature valid.
            FileGrant {
                recipient: "r1t",
                table: "1",
                ..grant
            },
        ] {
            assert_eq!(
                signer.verify(&other, &sig, 0),
                Err(UrlRefusal::BadSignature),
                "{other:?}"
            );
        }
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(signer.verify(&grant, &flipped, 0), Err(UrlRefusal::BadSignature));
        assert_eq!(signer.verify(&grant, "zz", 0), Err(UrlRefusal::BadSignature));
        let other = UrlSigner::new(&[8u8; 32]).expect("key");
        assert_eq!(other.verify(&grant, &sig, 0), Err(UrlRefusal::BadSignature));
        assert!(UrlSigner::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn contained_paths_refuse_traversal() {
        for good in ["part-0.parquet", "country=DE/part-0.parquet", "a b/c%2e.parquet"] {
            assert!(is_contained_path(good), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a\\..\\b",
            "a\0b",
            "..",
            "a/",
        ] {
            assert!(!is_contained_path(bad), "{bad:?}");
        }
    }
}
