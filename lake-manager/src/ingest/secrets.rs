//! Sealing of stream secrets (Kafka passwords) at rest: XChaCha20-Poly1305 under a server key,
//! with the stream's tenant and property name bound in as associated data, so a sealed value
//! copied to another stream or property does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "sealed:v1:";

/// Why a secret cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured key is not 32 bytes of base64.
    #[error("the ingest secret key must be 32 bytes, base64-encoded")]
    BadKey,
    /// The value was not sealed by this key for this place, or was altered.
    #[error("a stored secret cannot be opened with the configured key")]
    Unopenable,
}

/// Seals and opens secrets with the server's key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer from a base64 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| SecretError::BadKey)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretError::BadKey)?;
        Ok(Self { cipher })
    }

    /// A sealer from a raw 32-byte key.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seals `plain` for the property `place` (e.g. `tenant/stream/sasl.password`).
    pub fn seal(&self, place: &str, plain: &str) -> Result<String, SecretError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|_| SecretError::Unopenable)?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unopenable)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a value sealed for `place`.
    pub fn open(&self, place: &str, sealed: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|raw| raw.len() > 24)
            .ok_or(SecretError::Unopenable)?;
        let (nonce, body) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unopenable)?;
        String::from_utf8(plain).map_err(|_| SecretError::Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_and_hide_the_plain_text() {
        let sealer = Sealer::from_base64(&STANDARD.encode([7u8; 32])).expect("key");
        let sealed = sealer.seal("acme/orders/sasl.password", "hunter2").expect("seal");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            sealer.seal("acme/orders/sasl.password", "hunter2").expect("seal"),
            "fresh nonce"
        );
        assert_eq!(
            sealer.open("acme/orders/sasl.password", &sealed).expect("open"),
            "hunter2"
        );
        assert!(
            sealer.open("other/orders/sasl.password", &sealed).is_err(),
            "bound to its place"
        );
        let other = Sealer::from_base64(&STANDARD.encode([8u8; 32])).expect("key");
        assert!(
            other.open("acme/orders/sasl.password", &sealed).is_err(),
            "bound to its key"
        );
        assert!(Sealer::from_base64("c2hvcnQ=").is_err());
    }
}
