//! Key management: who seals the keys that encrypt objects.
//!
//! [`Kms`] is the seam (generate a data key, encrypt, decrypt — the three calls every KMS
//! speaks, so an external one such as KES or Vault can sit behind it later). [`StaticKms`]
//! is the built-in one: named 256-bit master keys from `CAIRN_KMS_SECRET_KEY` (or MinIO's
//! `MINIO_KMS_SECRET_KEY`), `<name>:<base64 of 32 bytes>`, several separated by commas; the
//! first is the default. A data key is 32 random bytes sealed with AES-256-GCM under the
//! master key named by the caller, with a random nonce and the key name and the caller's
//! context (for objects: bucket and key) bound in as associated data: a sealed key moved to
//! another object, or presented with another key name, does not open.
//!
//! [`Checked`] wraps a KMS so that a key name seals only once the deployment agrees on the
//! bytes it stands for ([`registry`]): a key given with other bytes than the name sealed
//! with before is refused instead of sealing new objects under it.
//!
//! Owns: master keys, sealing, the `kms/keys` records. Must not touch: objects, HTTP.
//! Master keys never reach logs or `Debug` output.

pub mod registry;

pub use registry::Checked;

use std::collections::BTreeMap;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Format of a sealed key: version byte, nonce, ciphertext with tag.
const SEALED_V1: u8 = 1;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    #[error("KMS not configured: set CAIRN_KMS_SECRET_KEY=<key-name>:<base64 of 32 bytes>")]
    NotConfigured,
    #[error("KMS key {0:?} does not exist")]
    NoSuchKey(String),
    #[error("invalid KMS configuration: {0}")]
    Config(String),
    /// The sealed key does not open under this key and context (wrong key, moved, damaged).
    #[error("the sealed key cannot be opened")]
    Unseal,
    /// The key's bytes are not yet checked against the deployment's record of them (no read
    /// quorum of the records yet): nothing is sealed under it meanwhile.
    #[error("KMS key {0:?} is not checked against the deployment's record of it yet")]
    Unverified(String),
    /// The key's bytes differ from those its name stood for when it first sealed.
    #[error("KMS key {0:?} differs from the key of that name this deployment sealed with")]
    Mismatch(String),
    #[error("KMS failure: {0}")]
    Internal(String),
}

/// A data key: its plaintext (for this request only) and its sealed form (to store).
pub struct DataKey {
    pub key_id: String,
    pub plaintext: [u8; 32],
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("key_id", &self.key_id)
            .field("sealed_len", &self.sealed.len())
            .finish_non_exhaustive()
    }
}

/// What Cairn asks of a key management service.
pub trait Kms: Send + Sync {
    /// The key new objects use when a request names none.
    fn default_key(&self) -> Option<&str>;
    /// Whether `key_id` exists.
    fn has_key(&self, key_id: &str) -> bool;
    /// Every key's name.
    fn key_ids(&self) -> Vec<String>;
    /// A new random data key sealed under `key_id` (the default when `None`).
    fn generate_data_key(&self, key_id: Option<&str>, context: &[u8]) -> Result<DataKey, KmsError>;
    /// Seal `plaintext` under `key_id` (re-sealing on rotation).
    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8; 32],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError>;
    /// Open a key sealed under `key_id` with the same `context`.
    fn decrypt(&self, key_id: &str, sealed: &[u8], context: &[u8]) -> Result<[u8; 32], KmsError>;
    /// A value that tells `key_id`'s bytes from any other's without revealing them
    /// ([`check_value`]); `None` when the KMS cannot say (the key is then never checked).
    fn key_check(&self, key_id: &str) -> Option<[u8; 32]>;
}

/// A key's check value: a keyed hash of a fixed message under the key. Equal keys give equal
/// values; the value says nothing of the key (blake3 in keyed mode is a PRF).
pub fn check_value(key: &[u8; 32]) -> [u8; 32] {
    *blake3::keyed_hash(key, b"cairn kms key check value v1").as_bytes()
}

/// Named static master keys.
pub struct StaticKms {
    keys: BTreeMap<String, LessSafeKey>,
    /// Per key, [`check_value`] of its bytes.
    checks: BTreeMap<String, [u8; 32]>,
    default: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for StaticKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKms")
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

impl StaticKms {
    /// Parse `name:base64,name:base64,...` (MinIO's single-key format, several allowed).
    pub fn parse(spec: &str) -> Result<StaticKms, KmsError> {
        let mut keys = BTreeMap::new();
        let mut checks = BTreeMap::new();
        let mut default = None;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, b64) = item.split_once(':').ok_or_else(|| {
                KmsError::Config("expected <key-name>:<base64 of 32 bytes>".into())
            })?;
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(KmsError::Config(format!(
                    "key name {name:?}: use letters, digits, '-', '_' or '.'"
                )));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| KmsError::Config(format!("key {name:?} is not valid base64")))?;
            if bytes.len() != 32 {
                return Err(KmsError::Config(format!(
                    "key {name:?} is {} bytes; it must be 32 (256 bits)",
                    bytes.len()
                )));
            }
            let key = UnboundKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| KmsError::Config(format!("key {name:?} was refused")))?;
            let raw = <[u8; 32]>::try_from(&bytes[..])
                .map_err(|_| KmsError::Config(format!("key {name:?} was refused")))?;
            checks.insert(name.to_string(), check_value(&raw));
            if keys
                .insert(name.to_string(), LessSafeKey::new(key))
                .is_some()
            {
                return Err(KmsError::Config(format!("key {name:?} is given twice")));
            }
            default.get_or_insert_with(|| name.to_string());
        }
        let default = default.ok_or(KmsError::NotConfigured)?;
        Ok(StaticKms {
            keys,
            checks,
            default,
            rng: SystemRandom::new(),
        })
    }

    /// From `CAIRN_KMS_SECRET_KEY`, else `MINIO_KMS_SECRET_KEY`; `Ok(None)` when neither is set.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<StaticKms>, KmsError> {
        match Self::env_name(&get).and_then(&get) {
            Some(spec) => StaticKms::parse(&spec).map(Some),
            None => Ok(None),
        }
    }

    /// The variable [`StaticKms::from_env`] reads: `CAIRN_KMS_SECRET_KEY` when set, else
    /// `MINIO_KMS_SECRET_KEY` when set.
    pub fn env_name(get: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
        ["CAIRN_KMS_SECRET_KEY", "MINIO_KMS_SECRET_KEY"]
            .into_iter()
            .find(|n| get(n).is_some())
    }

    fn key(&self, key_id: &str) -> Result<&LessSafeKey, KmsError> {
        self.keys
            .get(key_id)
            .ok_or_else(|| KmsError::NoSuchKey(key_id.to_string()))
    }

    /// Associated data: the format, the key's name and the caller's context, each
    /// length-prefixed so no two different pairs give the same bytes.
    fn aad(key_id: &str, context: &[u8]) -> Vec<u8> {
        let mut aad = b"cairn-kms-v1".to_vec();
        for part in [key_id.as_bytes(), context] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad
    }
}

impl Kms for StaticKms {
    fn default_key(&self) -> Option<&str> {
        Some(&self.default)
    }

    fn has_key(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    fn key_ids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    fn generate_data_key(&self, key_id: Option<&str>, context: &[u8]) -> Result<DataKey, KmsError> {
        let key_id = key_id.unwrap_or(&self.default).to_string();
        let mut plaintext = [0u8; 32];
        self.rng
            .fill(&mut plaintext)
            .map_err(|_| KmsError::Internal("no randomness".into()))?;
        let sealed = self.encrypt(&key_id, &plaintext, context)?;
        Ok(DataKey {
            key_id,
            plaintext,
            sealed,
        })
    }

    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8; 32],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let key = self.key(key_id)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| KmsError::Internal("no randomness".into()))?;
        let mut buf = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(Self::aad(key_id, context)),
            &mut buf,
        )
        .map_err(|_| KmsError::Internal("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    fn decrypt(&self, key_id: &str, sealed: &[u8], context: &[u8]) -> Result<[u8; 32], KmsError> {
        let key = self.key(key_id)?;
        if sealed.len() != 1 + NONCE_LEN + 32 + TAG_LEN || sealed[0] != SEALED_V1 {
            return Err(KmsError::Unseal);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let mut buf = sealed[1 + NONCE_LEN..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(key_id, context)),
                &mut buf,
            )
            .map_err(|_| KmsError::Unseal)?;
        <[u8; 32]>::try_from(&plain[..]).map_err(|_| KmsError::Unseal)
    }

    fn key_check(&self, key_id: &str) -> Option<[u8; 32]> {
        self.checks.get(key_id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(names: &[&str]) -> String {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "{n}:{}",
                    base64::engine::general_purpose::STANDARD.encode([i as u8 + 1; 32])
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn keys_parse_in_minio_format_and_bad_ones_are_named() {
        let k = StaticKms::parse(&spec(&["my-key", "other"])).expect("parse");
        assert_eq!(k.default_key(), Some("my-key"));
        assert!(k.has_key("other") && !k.has_key("nope"));
        for (bad, why) in [
            ("", "not configured"),
            ("nokey", "expected"),
            ("k:!!!", "base64"),
            ("k:AAAA", "32"),
            ("bad name:AAAA", "key name"),
        ] {
            let e = StaticKms::parse(bad).expect_err(bad).to_string();
            assert!(e.to_lowercase().contains(why), "{bad}: {e}");
        }
        let dup = format!("{},{}", spec(&["a"]), spec(&["a"]));
        assert!(StaticKms::parse(&dup).is_err());
        let env = |n: &str| (n == "MINIO_KMS_SECRET_KEY").then(|| spec(&["minio-key"]));
        let k = StaticKms::from_env(env).expect("env").expect("set");
        assert_eq!(k.default_key(), Some("minio-key"));
        assert!(StaticKms::from_env(|_| None).expect("unset").is_none());
        // The master key never shows.
        let shown = format!("{k:?}");
        assert!(!shown.contains(&spec(&["minio-key"])[10..]), "{shown}");
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_key_name_and_context() {
        let k = StaticKms::parse(&spec(&["a", "b"])).expect("parse");
        let dk = k.generate_data_key(None, b"bucket/key").expect("generate");
        assert_eq!(dk.key_id, "a");
        assert!(!format!("{dk:?}").contains(&format!("{:?}", dk.plaintext)));
        assert_eq!(
            k.decrypt("a", &dk.sealed, b"bucket/key").expect("open"),
            dk.plaintext
        );
        assert_eq!(
            k.decrypt("b", &dk.sealed, b"bucket/key"),
            Err(KmsError::Unseal)
        );
        assert_eq!(
            k.decrypt("a", &dk.sealed, b"bucket/other"),
            Err(KmsError::Unseal)
        );
        let mut flipped = dk.sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(
            k.decrypt("a", &flipped, b"bucket/key"),
            Err(KmsError::Unseal)
        );
        assert_eq!(
            k.decrypt("zz", &dk.sealed, b"bucket/key"),
            Err(KmsError::NoSuchKey("zz".into()))
        );
        // Re-sealing under another key (rotation) keeps the data key.
        let resealed = k
            .encrypt("b", &dk.plaintext, b"bucket/key")
            .expect("reseal");
        assert_eq!(
            k.decrypt("b", &resealed, b"bucket/key").expect("open"),
            dk.plaintext
        );
        // Two data keys differ, and so do two sealings of one key.
        let dk2 = k
            .generate_data_key(Some("b"), b"bucket/key")
            .expect("generate");
        assert_ne!(dk.plaintext, dk2.plaintext);
        assert_ne!(
            resealed,
            k.encrypt("b", &dk.plaintext, b"bucket/key").expect("again")
        );
    }
}
