//! Secret keys at rest: ChaCha20-Poly1305 under a key derived from the deployment's IAM
//! secret, with the record's name as associated data (a sealed secret moved to another
//! record does not open).

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

/// Never in logs.
impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Sealer {
    /// A sealer from the deployment secret (32 random bytes kept as a system record).
    pub fn new(deployment_secret: &[u8]) -> Sealer {
        let key = blake3::derive_key("cairn 2026 iam secret sealing v1", deployment_secret);
        Sealer {
            cipher: ChaCha20Poly1305::new(&key.into()),
        }
    }

    pub fn seal(&self, secret: &str, name: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    pub fn open(&self, sealed: &str, name: &str) -> Option<String> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < 12 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_record_and_key() {
        let s = Sealer::new(&[7u8; 32]);
        let sealed = s.seal("wJalrXUtnFEMI/K7MDENG", "alice");
        assert!(!sealed.contains("wJalr"));
        assert_eq!(
            s.open(&sealed, "alice").as_deref(),
            Some("wJalrXUtnFEMI/K7MDENG")
        );
        assert_eq!(s.open(&sealed, "bob"), None);
        assert_eq!(Sealer::new(&[8u8; 32]).open(&sealed, "alice"), None);
        assert_ne!(s.seal("x", "a"), s.seal("x", "a"));
    }
}
