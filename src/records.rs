//! System records: small JSON documents kept in the system area of every drive of the
//! deployment — bucket configurations, IAM users, groups, policies and keys.
//!
//! A record is written to every drive and succeeds on a write quorum (a majority of all
//! drives); it is read from every drive and the copy with the newest stamp among a read
//! quorum of answers wins (`n - write_quorum + 1` drives, so every read meets the last
//! successful write). Removing a record writes a tombstone with a newer stamp, so a drive
//! that missed the removal cannot bring the record back. File names are the hex of the
//! record's name: names are data, never paths.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::drive::fanout::fan_out;
use crate::drive::{Drive, DriveError};
use crate::lock::Locker;

/// The on-disk format of a record's envelope.
pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    #[error("not enough drives for a write ({ok} of {need})")]
    WriteQuorum { ok: usize, need: usize },
    #[error("not enough drives answered a read ({ok} of {need})")]
    ReadQuorum { ok: usize, need: usize },
    #[error("record {0} has format {1}, newer than this server knows")]
    NewerFormat(String, u32),
    #[error("record lock: {0}")]
    Lock(String),
}

/// A record as stored: its value, or a tombstone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub format: u32,
    /// Nanoseconds since the epoch of the change: the newest copy wins.
    pub stamp: i64,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub value: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// The locker and lock names a heal takes ([`Records::heal_all`]): `lock_of(dir, name)` is
/// the lock the writers of record `name` in directory `dir` hold.
pub type RecordLock<'a> = (&'a dyn Locker, fn(&str, &str) -> String);

/// How long a heal waits for a record's lock (a writer holds it for one change).
const HEAL_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One directory of records on every drive.
#[derive(Clone)]
pub struct Records {
    drives: Vec<Option<Arc<dyn Drive>>>,
    dir: &'static str,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Records {
    pub fn new(drives: Vec<Option<Arc<dyn Drive>>>, dir: &'static str) -> Records {
        Records { drives, dir }
    }

    fn write_quorum(&self) -> usize {
        self.drives.len() / 2 + 1
    }

    fn read_quorum(&self) -> usize {
        self.drives.len() + 1 - self.write_quorum()
    }

    fn path(&self, name: &str) -> String {
        format!("{}/{}.json", self.dir, hex::encode(name.as_bytes()))
    }

    /// Every copy of `name`: per drive, `Some(Ok(None))` for no record, `None` for a
    /// drive that did not answer.
    async fn read_all<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Vec<Option<Option<Stamped<T>>>>, RecordError> {
        let path = self.path(name);
        let answers = fan_out(&self.drives, |_, d| {
            let path = path.clone();
            async move { d.read_sys(&path).await }
        })
        .await;
        let mut out = Vec::with_capacity(answers.len());
        for a in answers {
            out.push(match a {
                Ok(raw) => match serde_json::from_slice::<Stamped<T>>(&raw) {
                    Ok(r) if r.format > FORMAT => {
                        return Err(RecordError::NewerFormat(name.to_string(), r.format))
                    }
                    Ok(r) => Some(Some(r)),
                    // A torn or foreign file counts as no record (the next write replaces it).
                    Err(_) => Some(None),
                },
                Err(DriveError::NotFound) => Some(None),
                Err(_) => None,
            });
        }
        let ok = out.iter().filter(|a| a.is_some()).count();
        if ok < self.read_quorum() {
            return Err(RecordError::ReadQuorum {
                ok,
                need: self.read_quorum(),
            });
        }
        Ok(out)
    }

    /// The newest copy of `name` (a tombstone included), if any drive of a read quorum has one.
    pub async fn read<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<Stamped<T>>, RecordError> {
        Ok(self
            .read_all(name)
            .await?
            .into_iter()
            .flatten()
            .flatten()
            .max_by_key(|r| r.stamp))
    }

    /// [`Records::read`] from the answers of at least a write quorum of drives: an absence
    /// it reports then holds for every acknowledged write (one written at write quorum is on
    /// one of them), so a first record may be made on it — where drives that answered for a
    /// read quorum only could all be ones a write missed.
    pub async fn read_confirmed<T: DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<Stamped<T>>, RecordError> {
        let all = self.read_all(name).await?;
        let ok = all.iter().filter(|a| a.is_some()).count();
        if ok < self.write_quorum() {
            return Err(RecordError::ReadQuorum {
                ok,
                need: self.write_quorum(),
            });
        }
        Ok(all.into_iter().flatten().flatten().max_by_key(|r| r.stamp))
    }

    /// The value of `name`, `None` if absent or removed.
    pub async fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RecordError> {
        Ok(self.read(name).await?.and_then(|r| r.value))
    }

    /// Write `value` (`None`: a tombstone) as the newest copy of `name`; returns its stamp.
    /// `after` is the stamp of the copy the change was made from: the new stamp is later.
    pub async fn put<T: Serialize>(
        &self,
        name: &str,
        value: Option<&T>,
        after: i64,
    ) -> Result<i64, RecordError> {
        let stamp = now_nanos().max(after.saturating_add(1));
        let body = serde_json::to_vec(&Stamped {
            format: FORMAT,
            stamp,
            value,
        })
        .unwrap_or_default();
        self.write_raw(name, Bytes::from(body)).await?;
        Ok(stamp)
    }

    async fn write_raw(&self, name: &str, body: Bytes) -> Result<(), RecordError> {
        let path = self.path(name);
        let results = fan_out(&self.drives, |_, d| {
            let (path, body) = (path.clone(), body.clone());
            async move { d.write_sys(&path, body).await }
        })
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok < self.write_quorum() {
            return Err(RecordError::WriteQuorum {
                ok,
                need: self.write_quorum(),
            });
        }
        Ok(())
    }

    /// The names of every record (tombstones included) any answering drive holds.
    pub async fn names(&self) -> Result<BTreeSet<String>, RecordError> {
        let dir = self.dir;
        let answers = fan_out(&self.drives, |_, d| async move { d.list_sys(dir).await }).await;
        let mut ok = 0;
        let mut names = BTreeSet::new();
        for a in answers {
            match a {
                Ok(files) => {
                    ok += 1;
                    for f in files {
                        let Some(stem) = f.strip_suffix(".json") else {
                            continue;
                        };
                        if let Some(n) = hex::decode(stem)
                            .ok()
                            .and_then(|b| String::from_utf8(b).ok())
                        {
                            names.insert(n);
                        }
                    }
                }
                Err(DriveError::NotFound) => ok += 1,
                Err(_) => {}
            }
        }
        if ok < self.read_quorum() {
            return Err(RecordError::ReadQuorum {
                ok,
                need: self.read_quorum(),
            });
        }
        Ok(names)
    }

    /// Every live record: name and newest value.
    pub async fn all<T: DeserializeOwned>(&self) -> Result<Vec<(String, Stamped<T>)>, RecordError> {
        let mut out = Vec::new();
        for name in self.names().await? {
            if let Some(r) = self.read::<T>(&name).await? {
                out.push((name, r));
            }
        }
        Ok(out)
    }

    /// [`Records::heal`] every record of the directory; returns the copies written. A
    /// record that cannot be healed (no read quorum for it) does not stop the others: the
    /// first such error is returned once all were tried.
    ///
    /// With `lock`, each record is healed under the lock its writers hold (`lock_of(dir,
    /// name)`, taken for writing): a heal reads every copy and then writes the newest to
    /// the drives it found behind, so a change landing between the two would be overwritten
    /// by the older copy on those drives — a removed key or a revoked policy back on some of
    /// them. Without it, only records whose writers never race a heal (or whose older copy
    /// is harmless) may be healed.
    pub async fn heal_all(&self, lock: Option<RecordLock<'_>>) -> Result<usize, RecordError> {
        let mut results = Vec::new();
        for name in self.names().await? {
            // Most records are current on every drive: looked at without the lock, which is
            // taken (and the copies read again under it) only for one some drive is behind on.
            if lock.is_some() {
                if let Ok(copies) = self.read_all::<serde_json::Value>(&name).await {
                    if behind(&copies).is_none_or(|(_, b)| !b.contains(&true)) {
                        continue;
                    }
                }
            }
            let guard = match &lock {
                Some((locker, lock_of)) => {
                    match locker
                        .lock(&lock_of(self.dir, &name), true, HEAL_LOCK_TIMEOUT)
                        .await
                    {
                        Ok(g) => Some(g),
                        Err(e) => {
                            results.push(Err(RecordError::Lock(e.to_string())));
                            continue;
                        }
                    }
                }
                None => None,
            };
            results.push(self.heal(&name).await);
            drop(guard);
        }
        total(results)
    }

    /// [`Records::heal_all`] of each directory in turn, in the order given, past failures.
    pub async fn heal_dirs(
        dirs: &[&Records],
        lock: Option<RecordLock<'_>>,
    ) -> Result<usize, RecordError> {
        let mut results = Vec::new();
        for d in dirs {
            results.push(d.heal_all(lock).await);
        }
        total(results)
    }

    /// Copy the newest copy of `name` to every drive whose copy is older or missing (a
    /// replaced or returning drive). Returns how many drives were written. The caller holds
    /// the lock the record's writers take (see [`Records::heal_all`]).
    pub async fn heal(&self, name: &str) -> Result<usize, RecordError> {
        let copies = self.read_all::<serde_json::Value>(name).await?;
        let Some((best, stale)) = behind(&copies) else {
            return Ok(0);
        };
        let body = Bytes::from(serde_json::to_vec(best).unwrap_or_default());
        let path = self.path(name);
        let mut written = 0;
        for (d, stale) in self.drives.iter().zip(stale) {
            if let Some(d) = d.as_ref().filter(|_| stale) {
                if d.write_sys(&path, body.clone()).await.is_ok() {
                    written += 1;
                }
            }
        }
        Ok(written)
    }
}

/// Every drive position's copy of a record ([`Records::read_all`]).
type Copies<T> = [Option<Option<Stamped<T>>>];

/// The newest of a record's copies and, per drive position, whether that drive answered
/// with an older copy or none (`None`: no drive has one).
fn behind<T>(copies: &Copies<T>) -> Option<(&Stamped<T>, Vec<bool>)> {
    let best = copies.iter().flatten().flatten().max_by_key(|r| r.stamp)?;
    let stale = copies
        .iter()
        .map(|c| {
            c.as_ref()
                .is_some_and(|c| c.as_ref().is_none_or(|c| c.stamp < best.stamp))
        })
        .collect();
    Some((best, stale))
}

/// The copies written by heals that succeeded, or the first error once all were tried.
fn total(results: Vec<Result<usize, RecordError>>) -> Result<usize, RecordError> {
    let mut written = 0;
    for r in results {
        written += r?;
    }
    Ok(written)
}

/// Run `refresh` on `target` every `every` until `stop` (or until `target` is dropped):
/// the periodic re-read of a cache of records.
pub fn spawn_refresh<T, F, Fut, E>(
    target: &Arc<T>,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    what: &'static str,
    refresh: F,
) where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let weak = Arc::downgrade(target);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            let Some(me) = weak.upgrade() else { break };
            if let Err(e) = refresh(me).await {
                tracing::debug!(error = %e, "{what} not refreshed");
            }
        }
    });
}

/// How long a change waits for each peer to confirm it re-read the record.
const NOTICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Something that can tell the other nodes a record changed.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    /// Tell every other node's `service` that `name` changed; returns once each answered or
    /// timed out.
    async fn changed(&self, service: &'static str, name: &str);
}

/// Notices over internode RPC.
pub struct PeerNotifier(pub Vec<Arc<crate::rpc::Peer>>);

#[async_trait::async_trait]
impl Notifier for PeerNotifier {
    async fn changed(&self, service: &'static str, name: &str) {
        let calls = self.0.iter().map(|p| async move {
            if let Err(e) = p
                .call_service(service, name.as_bytes().to_vec(), NOTICE_TIMEOUT)
                .await
            {
                tracing::debug!(peer = %p.node, %name, error = %e, "change notice not delivered");
            }
        });
        futures::future::join_all(calls).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::{Fault, FaultyDrive};

    /// Four formatted drives of a fresh single-node deployment, each behind a fault switch.
    async fn drives(
        dir: &std::path::Path,
    ) -> Vec<(Arc<dyn Drive>, Arc<parking_lot::Mutex<Fault>>)> {
        let paths: Vec<_> = (0..4).map(|i| dir.join(format!("d{i}"))).collect();
        let opts = crate::object::OpenOptions {
            set_size: 4,
            parity: 2,
            pools: Vec::new(),
        };
        let store = crate::object::open_local(&paths, &opts)
            .await
            .expect("open");
        store
            .all_drives()
            .flatten()
            .map(|d| {
                let (f, fault) = FaultyDrive::new(d.clone());
                (Arc::new(f) as Arc<dyn Drive>, fault)
            })
            .collect()
    }

    #[tokio::test]
    async fn newest_wins_tombstones_stay_and_quorum_is_checked() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ds = drives(tmp.path()).await;
        let slots: Vec<Option<Arc<dyn Drive>>> = ds.iter().map(|(d, _)| Some(d.clone())).collect();
        let set = |i: usize, f: Fault| *ds[i].1.lock() = f;
        let r = Records::new(slots, "test");
        assert_eq!(r.get::<String>("a/../b").await.expect("read"), None);
        let s1 = r
            .put("a/../b", Some(&"one".to_string()), 0)
            .await
            .expect("put");
        // One drive misses the next change: the others' newer copy still wins.
        set(0, Fault::Offline);
        let s2 = r
            .put("a/../b", Some(&"two".to_string()), s1)
            .await
            .expect("put");
        assert!(s2 > s1);
        set(0, Fault::None);
        assert_eq!(
            r.get::<String>("a/../b").await.expect("read"),
            Some("two".into())
        );
        assert_eq!(r.heal("a/../b").await.expect("heal"), 1);
        // A tombstone hides the value even from a drive that kept the old copy.
        set(1, Fault::Offline);
        r.put::<String>("a/../b", None, s2).await.expect("remove");
        set(1, Fault::None);
        assert_eq!(r.get::<String>("a/../b").await.expect("read"), None);
        assert!(r.names().await.expect("names").contains("a/../b"));
        // Two of four drives down: a write fails its quorum, a read still answers.
        set(2, Fault::Offline);
        set(3, Fault::Offline);
        assert!(matches!(
            r.put("x", Some(&1u32), 0).await,
            Err(RecordError::WriteQuorum { ok: 2, need: 3 })
        ));
        assert_eq!(r.get::<String>("a/../b").await.expect("read"), None);
        // Nor can it confirm an absence: the two drives away could hold what the others
        // miss.
        assert!(matches!(
            r.read_confirmed::<String>("never-written").await,
            Err(RecordError::ReadQuorum { ok: 2, need: 3 })
        ));
        set(1, Fault::Offline);
        assert!(matches!(
            r.get::<String>("a/../b").await,
            Err(RecordError::ReadQuorum { ok: 1, need: 2 })
        ));
        set(1, Fault::None);
        set(2, Fault::None);
        assert!(r
            .read_confirmed::<String>("never-written")
            .await
            .expect("three answers")
            .is_none());
    }

    /// A heal reads every copy, then writes the newest to the drives behind: it waits for
    /// the lock the record's writers hold, so a change made meanwhile is what it spreads,
    /// never overwritten by the copy it read before.
    #[tokio::test]
    async fn a_heal_waits_for_the_writers_lock() {
        let tmp = tempfile::tempdir().expect("tmp");
        let ds = drives(tmp.path()).await;
        let slots: Vec<Option<Arc<dyn Drive>>> = ds.iter().map(|(d, _)| Some(d.clone())).collect();
        let r = Records::new(slots, "test");
        let s1 = r.put("k", Some(&"one".to_string()), 0).await.expect("put");
        // Drive 0 misses the record: the heal has something to write.
        ds[0].0.delete_sys(&r.path("k")).await.expect("delete");
        let locker: Arc<dyn Locker> = Arc::new(crate::lock::LocalLocker::default());
        fn lock_of(dir: &str, name: &str) -> String {
            format!("{dir}/{name}")
        }
        let writer = locker
            .lock("test/k", true, std::time::Duration::from_secs(1))
            .await
            .expect("lock");
        let heal = tokio::spawn({
            let (r, locker) = (r.clone(), locker.clone());
            async move { r.heal_all(Some((locker.as_ref(), lock_of))).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!heal.is_finished(), "the heal did not wait for the writer");
        // The writer's change, made while the heal waits, then the lock goes.
        r.put("k", Some(&"two".to_string()), s1).await.expect("put");
        drop(writer);
        heal.await.expect("join").expect("heal");
        for (d, _) in &ds {
            let raw = d.read_sys(&r.path("k")).await.expect("copy");
            let copy: Stamped<String> = serde_json::from_slice(&raw).expect("decode");
            assert_eq!(copy.value.as_deref(), Some("two"));
        }
    }
}
