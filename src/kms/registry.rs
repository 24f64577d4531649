//! What bytes each key name stands for in this deployment.
//!
//! The first time a node runs with a key, it records the key's check value
//! ([`super::check_value`], which reveals nothing of the key) under the key's name in the
//! `kms/keys` system records, on every drive. Every later start compares: a key given with
//! other bytes than its name stood for (a typo, a key regenerated under an old name, another
//! deployment's key) would seal new objects that no longer open once the right key is back,
//! and is refused ([`KmsError::Mismatch`]) — the server does not start. Until a node has
//! compared a key (the records have no read quorum yet while a cluster comes up), nothing is
//! sealed under it ([`KmsError::Unverified`]); opening keys sealed before is not held up,
//! since a wrong key cannot open them (AES-GCM's tag) and so cannot do harm.
//!
//! A name once recorded keeps its bytes: a retired key's name is not reused for another key
//! (as AWS KMS never reuses a key id). Keys the KMS cannot give a check value of (an external
//! KMS) are not checked.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::{DataKey, Kms, KmsError};
use crate::lock::Locker;
use crate::records::{RecordLock, Records};

/// The records directory of the key check values.
pub const DIR: &str = "kms/keys";
/// The lock a key's first record is made under (and healed under): a name no object lock
/// (`<bucket>/<key>`) can take, since bucket names never start with a dot.
const LOCK: &str = ".cairn.sys/kms-keys";

/// A key name's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct KeyRecord {
    /// Hex of the key's check value.
    check: String,
    /// When it was first recorded (seconds since the epoch).
    #[serde(default)]
    since: i64,
}

/// The lock under which the records of `kms/keys` are written and healed.
pub fn record_lock(_: &str, _: &str) -> String {
    LOCK.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unverified,
    Verified,
    Mismatch,
}

/// A KMS whose keys seal only once checked against the deployment's records.
pub struct Checked {
    inner: Arc<dyn Kms>,
    states: RwLock<BTreeMap<String, State>>,
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checked")
            .field("keys", &*self.states.read())
            .finish_non_exhaustive()
    }
}

/// What one round of checks found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Keys whose bytes match their records (or were recorded now).
    pub verified: Vec<String>,
    /// Keys given with other bytes than their names stood for.
    pub mismatched: Vec<String>,
    /// Keys not compared yet, with why.
    pub pending: Vec<(String, String)>,
}

impl Checked {
    pub fn new(inner: Arc<dyn Kms>) -> Checked {
        let states = inner
            .key_ids()
            .into_iter()
            .map(|k| {
                let s = if inner.key_check(&k).is_some() {
                    State::Unverified
                } else {
                    State::Verified
                };
                (k, s)
            })
            .collect();
        Checked {
            inner,
            states: RwLock::new(states),
        }
    }

    /// Whether every key was compared (matching or not).
    pub fn settled(&self) -> bool {
        self.states.read().values().all(|s| *s != State::Unverified)
    }

    /// Compare each key not yet compared with its record, recording the keys not seen before.
    pub async fn check(&self, records: &Records, locker: &dyn Locker) -> Checks {
        let mut out = Checks::default();
        let todo: Vec<String> = self
            .states
            .read()
            .iter()
            .filter(|(_, s)| **s == State::Unverified)
            .map(|(k, _)| k.clone())
            .collect();
        for key in todo {
            let Some(check) = self.inner.key_check(&key) else {
                continue;
            };
            let state = match check_one(records, locker, &key, &hex::encode(check)).await {
                Ok(true) => {
                    out.verified.push(key.clone());
                    State::Verified
                }
                Ok(false) => {
                    out.mismatched.push(key.clone());
                    State::Mismatch
                }
                Err(why) => {
                    out.pending.push((key.clone(), why));
                    State::Unverified
                }
            };
            self.states.write().insert(key, state);
        }
        out
    }

    /// Check until every key is compared or `wait` passes; then keep checking in the
    /// background (every few seconds) until every key is.
    pub async fn check_at_start(
        self: &Arc<Self>,
        records: Records,
        locker: Arc<dyn Locker>,
        wait: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> Checks {
        let deadline = tokio::time::Instant::now() + wait;
        let mut all = Checks::default();
        loop {
            let c = self.check(&records, locker.as_ref()).await;
            all.verified.extend(c.verified);
            all.mismatched.extend(c.mismatched);
            if c.pending.is_empty() || tokio::time::Instant::now() >= deadline {
                all.pending = c.pending;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !all.pending.is_empty() {
            let me = self.clone();
            tokio::spawn(async move {
                while !me.settled() {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                    let c = me.check(&records, locker.as_ref()).await;
                    for k in &c.mismatched {
                        tracing::error!(key = k, "{}", KmsError::Mismatch(k.clone()));
                    }
                    for k in &c.verified {
                        tracing::info!(key = k, "KMS key checked against the deployment's record");
                    }
                }
            });
        }
        all
    }

    /// Seals under `key_id` are allowed.
    fn may_seal(&self, key_id: &str) -> Result<(), KmsError> {
        match self.states.read().get(key_id) {
            Some(State::Verified) => Ok(()),
            Some(State::Unverified) => Err(KmsError::Unverified(key_id.to_string())),
            Some(State::Mismatch) => Err(KmsError::Mismatch(key_id.to_string())),
            None => Err(KmsError::NoSuchKey(key_id.to_string())),
        }
    }
}

/// `Ok(true)`: the record says `check` (or now does, made here); `Ok(false)`: it says
/// another; `Err`: the records could not be read or written.
async fn check_one(
    records: &Records,
    locker: &dyn Locker,
    key: &str,
    check: &str,
) -> Result<bool, String> {
    let found = records
        .get::<KeyRecord>(key)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(r) = found {
        return Ok(constant_time_eq(&r.check, check));
    }
    let _guard = locker
        .lock(LOCK, true, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    // A first record only on an absence a write quorum of drives confirms: drives that
    // answered for a read quorum alone could all be ones the first record missed, and a
    // second record would let other bytes seal under the name.
    if let Some(r) = records
        .read_confirmed::<KeyRecord>(key)
        .await
        .map_err(|e| e.to_string())?
        .and_then(|r| r.value)
    {
        return Ok(constant_time_eq(&r.check, check));
    }
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let rec = KeyRecord {
        check: check.to_string(),
        since,
    };
    records
        .put(key, Some(&rec), 0)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        key,
        "KMS key recorded: this name now stands for these bytes"
    );
    Ok(true)
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()))
}

/// The `kms/keys` records of a deployment's drives.
pub fn records(drives: Vec<Option<Arc<dyn crate::drive::Drive>>>) -> Records {
    Records::new(drives, DIR)
}

/// Heal the `kms/keys` records under their writers' lock.
pub async fn heal(records: &Records, locker: &dyn Locker) -> Result<usize, String> {
    let lock: RecordLock<'_> = (locker, record_lock);
    records
        .heal_all(Some(lock))
        .await
        .map_err(|e| e.to_string())
}

impl Kms for Checked {
    fn default_key(&self) -> Option<&str> {
        self.inner.default_key()
    }

    fn has_key(&self, key_id: &str) -> bool {
        self.inner.has_key(key_id)
    }

    fn key_ids(&self) -> Vec<String> {
        self.inner.key_ids()
    }

    fn generate_data_key(&self, key_id: Option<&str>, context: &[u8]) -> Result<DataKey, KmsError> {
        let id = match key_id {
            Some(k) => k,
            None => self.inner.default_key().ok_or(KmsError::NotConfigured)?,
        };
        self.may_seal(id)?;
        self.inner.generate_data_key(Some(id), context)
    }

    fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8; 32],
        context: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        self.may_seal(key_id)?;
        self.inner.encrypt(key_id, plaintext, context)
    }

    fn decrypt(&self, key_id: &str, sealed: &[u8], context: &[u8]) -> Result<[u8; 32], KmsError> {
        self.inner.decrypt(key_id, sealed, context)
    }

    fn key_check(&self, key_id: &str) -> Option<[u8; 32]> {
        self.inner.key_check(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::StaticKms;
    use base64::Engine;

    fn kms(spec: &[(&str, u8)]) -> Arc<Checked> {
        let s = spec
            .iter()
            .map(|(n, b)| {
                format!(
                    "{n}:{}",
                    base64::engine::general_purpose::STANDARD.encode([*b; 32])
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        Arc::new(Checked::new(Arc::new(StaticKms::parse(&s).expect("parse"))))
    }

    #[tokio::test]
    async fn a_key_name_keeps_the_bytes_it_first_sealed_with() {
        let tmp = tempfile::tempdir().expect("tmp");
        let paths: Vec<_> = (0..4).map(|i| tmp.path().join(format!("d{i}"))).collect();
        let opts = crate::object::OpenOptions {
            set_size: 4,
            parity: 2,
            pools: Vec::new(),
        };
        let store = crate::object::open_local(&paths, &opts)
            .await
            .expect("open");
        let recs = records(store.drive_slots());
        let locker: Arc<dyn Locker> = Arc::new(crate::lock::LocalLocker::default());

        // Nothing seals before the check.
        let first = kms(&[("k1", 1), ("k2", 2)]);
        assert_eq!(
            first.generate_data_key(None, b"b/o").err(),
            Some(KmsError::Unverified("k1".into()))
        );
        let c = first.check(&recs, locker.as_ref()).await;
        assert_eq!(c.verified, vec!["k1".to_string(), "k2".to_string()]);
        assert!(first.settled());
        let dk = first
            .generate_data_key(None, b"b/o")
            .expect("seals once checked");

        // The same bytes again: fine, and they open what was sealed.
        let again = kms(&[("k1", 1)]);
        assert_eq!(
            again.check(&recs, locker.as_ref()).await.verified,
            vec!["k1".to_string()]
        );
        assert_eq!(
            again.decrypt("k1", &dk.sealed, b"b/o").ok(),
            Some(dk.plaintext)
        );

        // Other bytes under a recorded name: refused, and nothing seals under them.
        let wrong = kms(&[("k1", 9), ("k3", 3)]);
        let c = wrong.check(&recs, locker.as_ref()).await;
        assert_eq!(c.mismatched, vec!["k1".to_string()]);
        assert_eq!(c.verified, vec!["k3".to_string()]);
        assert_eq!(
            wrong.generate_data_key(Some("k1"), b"b/o").err(),
            Some(KmsError::Mismatch("k1".into()))
        );
        assert_eq!(
            wrong.encrypt("k1", &[0; 32], b"b/o").err(),
            Some(KmsError::Mismatch("k1".into()))
        );
        assert!(wrong.generate_data_key(Some("k3"), b"b/o").is_ok());
        // The record still names the first bytes.
        let back = kms(&[("k1", 1)]);
        assert_eq!(
            back.check(&recs, locker.as_ref()).await.verified,
            vec!["k1".to_string()]
        );
    }
}
