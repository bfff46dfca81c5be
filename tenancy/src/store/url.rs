//! Database URLs: backend detection and redaction of passwords.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use super::{Backend, StoreError};

/// A metadata database URL whose password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Parses a `sqlite:` or `postgres:`/`postgresql:` URL.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let backend = if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            // Parse now so a malformed host or port is reported at config time, not at first use.
            Url::parse(raw).map_err(|e| StoreError::InvalidUrl(format!("not a valid URL: {e}")))?;
            Backend::Postgres
        } else {
            return Err(StoreError::InvalidUrl(
                "must start with sqlite:// or postgres://".to_owned(),
            ));
        };
        if backend == Backend::Sqlite
            && raw
                .trim_start_matches("sqlite:")
                .trim_start_matches("//")
                .is_empty()
        {
            return Err(StoreError::InvalidUrl("sqlite URL has no file path".to_owned()));
        }
        Ok(Self {
            raw: raw.to_owned(),
            backend,
        })
    }

    /// The default embedded database for a data directory.
    pub fn sqlite_in(dir: &std::path::Path) -> Self {
        Self {
            raw: format!("sqlite://{}", dir.join("lakeplane.db").display()),
            backend: Backend::Sqlite,
        }
    }

    /// Which backend the URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password; only for handing to the driver.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with any password replaced by `***`, safe for logs and errors.
    pub fn redacted(&self) -> String {
        match Url::parse(&self.raw) {
            Ok(mut url) if url.password().is_some() => {
                // set_password only fails for URLs that cannot have credentials, which these have.
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.raw.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for DatabaseUrl {
    // Serializing is only used to echo effective config, so it must not leak either.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_everywhere() {
        let url = DatabaseUrl::parse("postgres://app:s3cr3t@db.internal:5432/lake").expect("valid");
        assert_eq!(url.backend(), Backend::Postgres);
        for shown in [format!("{url}"), format!("{url:?}"), url.redacted()] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
            assert!(shown.contains("app:***@db.internal"), "{shown}");
        }
        assert!(url.expose().contains("s3cr3t"));
    }

    #[test]
    fn rejects_unknown_schemes_and_empty_paths() {
        assert!(DatabaseUrl::parse("mysql://x/y").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(DatabaseUrl::parse("postgres://[bad").is_err());
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/x.db").map(|u| u.backend()).ok(),
            Some(Backend::Sqlite)
        );
    }
}
