//! Per-resource read/write locks behind the [`Locker`] trait: [`LocalLocker`] within one
//! process, [`dist::DistLocker`] across nodes (held when a quorum of lock tables grant it).
//! The object layer locks `bucket/key` around commits and reads.

pub mod dist;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::RwLock;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LockError {
    #[error("timed out waiting for the lock on {0}")]
    Timeout(String),
    /// Too few lock tables answered for a quorum: waiting would not help.
    #[error("only {ok} of the {need} lock servers needed are reachable")]
    Quorum { write: bool, ok: usize, need: usize },
}

/// Held until dropped.
pub struct LockGuard {
    _held: Box<dyn Send + Sync>,
    /// Set once a distributed lock could not be kept on a quorum of its tables: another
    /// holder may have it now.
    lost: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl LockGuard {
    fn local(held: Box<dyn Send + Sync>) -> LockGuard {
        LockGuard {
            _held: held,
            lost: None,
        }
    }

    /// Is the lock still ours? A writer checks right before it commits, and gives up if not.
    pub fn held(&self) -> bool {
        self.lost
            .as_ref()
            .is_none_or(|l| !l.load(std::sync::atomic::Ordering::Acquire))
    }
}

#[async_trait]
pub trait Locker: Send + Sync {
    async fn lock(
        &self,
        resource: &str,
        write: bool,
        timeout: Duration,
    ) -> Result<LockGuard, LockError>;
}

/// How long lock requests waited, and how many gave up (metrics).
#[derive(Debug, Default)]
pub struct LockStats {
    pub wait: crate::metrics::Histogram,
    pub failures: std::sync::atomic::AtomicU64,
}

/// A locker that counts its waits in [`LockStats`].
pub struct Counted {
    inner: Arc<dyn Locker>,
    stats: Arc<LockStats>,
}

impl Counted {
    pub fn new(inner: Arc<dyn Locker>, stats: Arc<LockStats>) -> Counted {
        Counted { inner, stats }
    }
}

#[async_trait]
impl Locker for Counted {
    async fn lock(
        &self,
        resource: &str,
        write: bool,
        timeout: Duration,
    ) -> Result<LockGuard, LockError> {
        let start = std::time::Instant::now();
        let r = self.inner.lock(resource, write, timeout).await;
        match &r {
            Ok(_) => self.stats.wait.observe(start.elapsed()),
            Err(_) => {
                self.stats
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        r
    }
}

/// Locks within one process.
#[derive(Default)]
pub struct LocalLocker {
    locks: Mutex<HashMap<String, Weak<RwLock<()>>>>,
}

impl LocalLocker {
    fn entry(&self, resource: &str) -> Arc<RwLock<()>> {
        let mut map = self.locks.lock();
        if let Some(l) = map.get(resource).and_then(Weak::upgrade) {
            return l;
        }
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let l = Arc::new(RwLock::new(()));
        map.insert(resource.to_string(), Arc::downgrade(&l));
        l
    }
}

#[async_trait]
impl Locker for LocalLocker {
    async fn lock(
        &self,
        resource: &str,
        write: bool,
        timeout: Duration,
    ) -> Result<LockGuard, LockError> {
        let l = self.entry(resource);
        let timed_out = || LockError::Timeout(resource.to_string());
        if write {
            let g = tokio::time::timeout(timeout, l.write_owned())
                .await
                .map_err(|_| timed_out())?;
            Ok(LockGuard::local(Box::new(g)))
        } else {
            let g = tokio::time::timeout(timeout, l.read_owned())
                .await
                .map_err(|_| timed_out())?;
            Ok(LockGuard::local(Box::new(g)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writers_exclude_readers() {
        let l = LocalLocker::default();
        let t = Duration::from_millis(50);
        let r1 = l.lock("b/k", false, t).await.expect("read");
        let _r2 = l.lock("b/k", false, t).await.expect("shared read");
        assert!(l.lock("b/k", true, t).await.is_err());
        drop(r1);
        drop(_r2);
        let w = l.lock("b/k", true, t).await.expect("write");
        assert!(l.lock("b/k", false, t).await.is_err());
        assert!(l.lock("b/other", true, t).await.is_ok());
        drop(w);
    }
}
