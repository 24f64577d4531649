//! Distributed locks: every node keeps a [`LockTable`]; a lock is held when a quorum of the
//! tables grant it to one attempt id. Write locks need `n/2 + 1` tables, read locks
//! `ceil(n/2)`: any read quorum meets any write quorum, so readers and a writer, or two
//! writers, can never both hold a resource — and a 2-node cluster keeps serving reads while
//! one node restarts. A holder refreshes its grants every [`REFRESH_EVERY`]; grants not
//! refreshed for [`EXPIRY`] (their holder died) lapse.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rand::Rng;

use serde::{Deserialize, Serialize};

use super::{LockError, LockGuard, Locker};

pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
pub const EXPIRY: Duration = Duration::from_secs(30);
/// One lock call to one node; a node slower than this does not count towards the quorum.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// Lock calls to a node's lock table.
#[derive(Debug, Serialize, Deserialize)]
pub enum LockCall {
    Lock {
        resource: String,
        uid: String,
        write: bool,
    },
    Unlock {
        resource: String,
        uid: String,
    },
    Refresh {
        resource: String,
        uid: String,
    },
}

/// How a lock call reaches another node's table (the internode RPC implements it for its
/// peers): the table's answer, or `None` when the node could not be reached within
/// `timeout`.
#[async_trait]
pub trait LockPeer: Send + Sync {
    async fn lock_call(&self, call: &LockCall, timeout: Duration) -> Option<bool>;
}

#[derive(Default)]
struct Holders {
    writer: Option<(String, Instant)>,
    readers: HashMap<String, Instant>,
}

impl Holders {
    fn expire(&mut self, now: Instant) {
        if self
            .writer
            .as_ref()
            .is_some_and(|(_, t)| now.duration_since(*t) > EXPIRY)
        {
            self.writer = None;
        }
        self.readers.retain(|_, t| now.duration_since(*t) <= EXPIRY);
    }

    fn is_empty(&self) -> bool {
        self.writer.is_none() && self.readers.is_empty()
    }
}

/// One node's grants, by resource.
#[derive(Default)]
pub struct LockTable {
    inner: Mutex<HashMap<String, Holders>>,
}

impl LockTable {
    /// Grant `uid` the lock if nothing conflicting is held (idempotent for the same uid).
    pub fn try_lock(&self, resource: &str, uid: &str, write: bool) -> bool {
        let now = Instant::now();
        let mut map = self.inner.lock();
        if map.len() > 4096 {
            map.retain(|_, h| {
                h.expire(now);
                !h.is_empty()
            });
        }
        let h = map.entry(resource.to_string()).or_default();
        h.expire(now);
        if write {
            match &h.writer {
                Some((w, _)) if w == uid => true,
                Some(_) => false,
                None if h.readers.is_empty() => {
                    h.writer = Some((uid.to_string(), now));
                    true
                }
                None => false,
            }
        } else if h.writer.is_some() {
            false
        } else {
            h.readers.insert(uid.to_string(), now);
            true
        }
    }

    /// Forget every grant, as a node that restarted has.
    #[cfg(test)]
    fn forget_all(&self) {
        self.inner.lock().clear();
    }

    pub fn unlock(&self, resource: &str, uid: &str) -> bool {
        let mut map = self.inner.lock();
        let Some(h) = map.get_mut(resource) else {
            return false;
        };
        let mut found = h.readers.remove(uid).is_some();
        if h.writer.as_ref().is_some_and(|(w, _)| w == uid) {
            h.writer = None;
            found = true;
        }
        if h.is_empty() {
            map.remove(resource);
        }
        found
    }

    /// Extend a grant; false when it is unknown here (expired, or this node restarted).
    pub fn refresh(&self, resource: &str, uid: &str) -> bool {
        let now = Instant::now();
        let mut map = self.inner.lock();
        let Some(h) = map.get_mut(resource) else {
            return false;
        };
        if let Some((w, t)) = &mut h.writer {
            if w == uid {
                *t = now;
                return true;
            }
        }
        match h.readers.get_mut(uid) {
            Some(t) => {
                *t = now;
                true
            }
            None => false,
        }
    }

    pub fn call(&self, call: &LockCall) -> bool {
        match call {
            LockCall::Lock {
                resource,
                uid,
                write,
            } => self.try_lock(resource, uid, *write),
            LockCall::Unlock { resource, uid } => self.unlock(resource, uid),
            LockCall::Refresh { resource, uid } => self.refresh(resource, uid),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().len()
    }
}

/// A lock table on this node or another.
#[derive(Clone)]
pub enum LockServer {
    Local(Arc<LockTable>),
    Remote(Arc<dyn LockPeer>),
}

impl LockServer {
    /// The table's answer, or `None` when it could not be reached.
    async fn call(&self, call: LockCall) -> Option<bool> {
        match self {
            LockServer::Local(t) => Some(t.call(&call)),
            LockServer::Remote(p) => p.lock_call(&call, CALL_TIMEOUT).await,
        }
    }
}

/// Quorum locks over every node's table.
pub struct DistLocker {
    servers: Arc<Vec<LockServer>>,
}

impl DistLocker {
    pub fn new(servers: Vec<LockServer>) -> DistLocker {
        DistLocker {
            servers: Arc::new(servers),
        }
    }

    fn quorum(&self, write: bool) -> usize {
        let n = self.servers.len();
        if write {
            n / 2 + 1
        } else {
            n.div_ceil(2)
        }
    }
}

async fn broadcast(servers: &[LockServer], call: impl Fn() -> LockCall) -> Vec<Option<bool>> {
    futures::future::join_all(servers.iter().map(|s| s.call(call()))).await
}

/// Release an attempt's grants everywhere, in the background.
fn release(servers: Arc<Vec<LockServer>>, resource: String, uid: String) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            broadcast(&servers, || LockCall::Unlock {
                resource: resource.clone(),
                uid: uid.clone(),
            })
            .await;
        });
    }
}

struct Held {
    servers: Arc<Vec<LockServer>>,
    resource: String,
    uid: String,
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.refresher.abort();
        release(
            self.servers.clone(),
            std::mem::take(&mut self.resource),
            std::mem::take(&mut self.uid),
        );
    }
}

#[async_trait]
impl Locker for DistLocker {
    async fn lock(
        &self,
        resource: &str,
        write: bool,
        timeout: Duration,
    ) -> Result<LockGuard, LockError> {
        let need = self.quorum(write);
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(2);
        loop {
            let uid = uuid::Uuid::new_v4().to_string();
            let answers = broadcast(&self.servers, || LockCall::Lock {
                resource: resource.to_string(),
                uid: uid.clone(),
                write,
            })
            .await;
            let granted = answers.iter().filter(|a| **a == Some(true)).count();
            let answered = answers.iter().filter(|a| a.is_some()).count();
            if granted >= need {
                let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
                let refresher = tokio::spawn(refresh_loop(
                    self.servers.clone(),
                    resource.to_string(),
                    uid.clone(),
                    need,
                    lost.clone(),
                ));
                return Ok(LockGuard {
                    _held: Box::new(Held {
                        servers: self.servers.clone(),
                        resource: resource.to_string(),
                        uid,
                        refresher,
                    }),
                    lost: Some(lost),
                });
            }
            if granted > 0 {
                release(self.servers.clone(), resource.to_string(), uid);
            }
            if answered < need {
                return Err(LockError::Quorum {
                    write,
                    ok: answered,
                    need,
                });
            }
            if Instant::now() >= deadline {
                return Err(LockError::Timeout(resource.to_string()));
            }
            let jitter = rand::thread_rng().gen_range(backoff / 2..=backoff);
            tokio::time::sleep(jitter).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }
}

async fn refresh_loop(
    servers: Arc<Vec<LockServer>>,
    resource: String,
    uid: String,
    need: usize,
    lost: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        let answers = broadcast(&servers, || LockCall::Refresh {
            resource: resource.clone(),
            uid: uid.clone(),
        })
        .await;
        let kept = answers.iter().filter(|a| **a == Some(true)).count();
        if kept < need {
            // Once lost, never ours again: grants may have lapsed and been given out.
            lost.store(true, std::sync::atomic::Ordering::Release);
            tracing::warn!(
                resource,
                kept,
                need,
                "a held lock lost its quorum (nodes restarted or unreachable): its write is abandoned"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_grants_readers_or_one_writer() {
        let t = LockTable::default();
        assert!(t.try_lock("r", "a", false));
        assert!(t.try_lock("r", "b", false));
        assert!(!t.try_lock("r", "w", true));
        assert!(t.unlock("r", "a"));
        assert!(t.unlock("r", "b"));
        assert!(t.try_lock("r", "w", true));
        assert!(t.try_lock("r", "w", true), "same attempt again");
        assert!(!t.try_lock("r", "c", false));
        assert!(t.refresh("r", "w"));
        assert!(!t.refresh("r", "c"));
        assert!(t.unlock("r", "w"));
        assert_eq!(t.len(), 0, "released resources are forgotten");
    }

    #[tokio::test]
    async fn quorum_over_tables() {
        let tables: Vec<Arc<LockTable>> = (0..4).map(|_| Arc::default()).collect();
        let l = DistLocker::new(tables.iter().cloned().map(LockServer::Local).collect());
        let t = Duration::from_millis(100);
        assert_eq!((l.quorum(true), l.quorum(false)), (3, 2));
        let w = l.lock("b/k", true, t).await.expect("write lock");
        assert!(matches!(
            l.lock("b/k", false, t).await,
            Err(LockError::Timeout(_))
        ));
        drop(w);
        // The release runs in the background.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r1 = l.lock("b/k", false, t).await.expect("read");
        let r2 = l.lock("b/k", false, t).await.expect("shared read");
        assert!(l.lock("b/k", true, t).await.is_err());
        drop((r1, r2));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Stale write grants on 2 of 4 tables (an attempt that lost) do not stop readers,
        // who need 2, but do stop another writer, who needs 3.
        assert!(tables[0].try_lock("b/x", "stale", true));
        assert!(tables[1].try_lock("b/x", "stale", true));
        assert!(l.lock("b/x", false, t).await.is_ok());
        assert!(l.lock("b/x", true, t).await.is_err());
    }

    /// Two of four lock tables restart while a writer holds the lock: its next refresh
    /// keeps only two grants, short of the three a writer needs, and the guard says so.
    #[tokio::test(start_paused = true)]
    async fn a_holder_that_loses_its_quorum_knows_it() {
        let tables: Vec<Arc<LockTable>> = (0..4).map(|_| Arc::default()).collect();
        let l = DistLocker::new(tables.iter().cloned().map(LockServer::Local).collect());
        let w = l
            .lock("b/k", true, Duration::from_millis(100))
            .await
            .expect("write lock");
        tokio::time::sleep(REFRESH_EVERY * 2).await;
        assert!(w.held(), "refreshed on every table");
        tables[0].forget_all();
        tables[1].forget_all();
        tokio::time::sleep(REFRESH_EVERY + Duration::from_secs(1)).await;
        assert!(
            !w.held(),
            "a lock kept on 2 of 4 tables is not a write lock"
        );
    }

    #[test]
    fn two_nodes_read_with_one() {
        let l = DistLocker::new(vec![LockServer::Local(Arc::default())]);
        assert_eq!(l.quorum(false), 1);
        let l2 = DistLocker::new(vec![
            LockServer::Local(Arc::default()),
            LockServer::Local(Arc::default()),
        ]);
        assert_eq!((l2.quorum(true), l2.quorum(false)), (2, 1));
    }
}
