//! The server's Ed25519 signing key: loaded from config, or generated once into the data
//! directory with 0600 permissions and reused.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use sha2::{Digest, Sha256};

use super::Claims;

/// File name of the generated key inside the data directory.
pub const GENERATED_KEY_FILE: &str = "jwt-signing-key.pem";

/// Problems with the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key is not a PKCS#8 Ed25519 private key in PEM form.
    #[error("{0}: not a PKCS#8 PEM Ed25519 private key")]
    Invalid(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The loaded key, ready to sign and to publish its public half.
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
    kid: String,
    /// Where it came from, for logs (never the key itself).
    pub origin: String,
    /// Whether this start generated it.
    pub generated: bool,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("key", &"***")
            .finish()
    }
}

impl SigningKey {
    /// Loads the configured key (inline PEM wins over a file), or the one generated earlier in
    /// `data_dir`, generating it on first start.
    pub fn load(inline_pem: Option<&str>, file: Option<&Path>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(pem) = inline_pem {
            return Self::from_pem(pem, "auth.signing_key", false);
        }
        if let Some(file) = file {
            let pem = read(file)?;
            return Self::from_pem(&pem, &file.display().to_string(), false);
        }
        let path = data_dir.join(GENERATED_KEY_FILE);
        match read(&path) {
            Ok(pem) => {
                check_private(&path)?;
                Self::from_pem(&pem, &path.display().to_string(), false)
            }
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let generated = generate_into(&path)?;
                Self::from_pem(&generated.0, &path.display().to_string(), generated.1)
            }
            Err(e) => Err(e),
        }
    }

    /// A new key that lives in memory only, for a process that must hold one but signs nothing
    /// that leaves it (`lakeplane worker run`).
    pub fn ephemeral() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let pem = ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Invalid("an ephemeral key".to_owned()))?;
        Self::from_pem(&pem, "(ephemeral, in memory)", false)
    }

    fn from_pem(pem: &str, origin: &str, generated: bool) -> Result<Self, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|_| KeyError::Invalid(origin.to_owned()))?;
        let encoding =
            EncodingKey::from_ed_pem(pem.as_bytes()).map_err(|_| KeyError::Invalid(origin.to_owned()))?;
        let public = key.verifying_key().to_bytes();
        let public_x = URL_SAFE_NO_PAD.encode(public);
        let decoding =
            DecodingKey::from_ed_components(&public_x).map_err(|_| KeyError::Invalid(origin.to_owned()))?;
        // A kid derived from the public key changes exactly when the key does.
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..12]);
        Ok(Self {
            encoding,
            decoding,
            public_x,
            kid,
            origin: origin.to_owned(),
            generated,
        })
    }

    /// Signs claims into a compact JWT.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Signs any other document (an erasure receipt) into a compact JWS of type `typ`, so it
    /// verifies against the same JWKS as the tokens but is never taken for one.
    pub fn sign_document<T: serde::Serialize>(&self, typ: &str, document: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        Ok(jsonwebtoken::encode(&header, document, &self.encoding)?)
    }

    /// The key id in token headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key for verification.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": self.public_x,
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }]
        })
    }
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The generated key must stay private; refuse to use one others can read.
fn check_private(path: &Path) -> Result<(), KeyError> {
    let mode = std::fs::metadata(path)
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(format!(
                "permissions {:o} let others read the key; run chmod 600",
                mode & 0o777
            )),
        });
    }
    Ok(())
}

fn generate_into(path: &Path) -> Result<(String, bool), KeyError> {
    let mut seed = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Invalid(format!("generated key: {e}")))?
        .to_string();
    write_private_once(path, pem)
}

/// Reads the private file at `path`, or writes `generate()`'s text there on first use.
/// Returns the text and whether this call wrote it. Refuses a file others can read.
pub fn load_or_generate_private(
    path: &Path,
    generate: impl FnOnce() -> String,
) -> Result<(String, bool), KeyError> {
    match read(path) {
        Ok(text) => {
            check_private(path)?;
            Ok((text, false))
        }
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            write_private_once(path, generate())
        }
        Err(e) => Err(e),
    }
}

/// Writes a secret without ever exposing a partial file: write a private temp file, then
/// hard-link it into place, which fails if another process got there first. Returns the text
/// in use and whether this call created it.
fn write_private_once(path: &Path, pem: String) -> Result<(String, bool), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let temp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(e));
    }
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok((pem, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((read(path)?, false)),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let first = SigningKey::load(None, None, dir.path()).expect("generate");
        assert!(first.generated);
        let path = dir.path().join(GENERATED_KEY_FILE);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = SigningKey::load(None, None, dir.path()).expect("reuse");
        assert!(!second.generated);
        assert_eq!(first.kid(), second.kid());
        assert!(!format!("{second:?}").contains("PRIVATE"), "Debug hides the key");
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().expect("dir");
        let kids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        SigningKey::load(None, None, dir.path())
                            .expect("load")
                            .kid()
                            .to_owned()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("join")).collect()
        });
        assert!(kids.windows(2).all(|w| w[0] == w[1]), "{kids:?}");
        let leftovers = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(leftovers, 1, "no temp files left behind");
    }

    #[test]
    fn world_readable_generated_key_is_refused_and_bad_pem_named() {
        let dir = tempfile::tempdir().expect("dir");
        SigningKey::load(None, None, dir.path()).expect("generate");
        let path = dir.path().join(GENERATED_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = SigningKey::load(None, None, dir.path()).expect_err("too open");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        let err = SigningKey::load(Some("not a key"), None, dir.path()).expect_err("bad pem");
        assert!(err.to_string().contains("auth.signing_key"), "{err}");
    }
}
