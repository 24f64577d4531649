//! A bounded queue of items on disk: one file per item (`<sequence>.item`, written to a
//! `.tmp` name and renamed), delivered oldest first by one worker, removed once the target
//! took it. Items survive restarts and a target that is down for as long as the queue has
//! room; a full queue refuses new items (counted as dropped), it never blocks the writer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::{DeliverError, Target};

const SUFFIX: &str = "item";
/// First wait after a failed delivery; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Items delivered, failed attempts, and items refused because the queue was full.
#[derive(Debug, Default)]
pub struct QueueStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Queue {
    dir: PathBuf,
    limit: usize,
    /// Sequence numbers of the items on disk, and the next one to hand out.
    items: Mutex<(BTreeSet<u64>, u64)>,
    wake: tokio::sync::Notify,
    stats: QueueStats,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("dir", &self.dir)
            .field("len", &self.len())
            .finish()
    }
}

fn io_error(dir: &Path, source: std::io::Error) -> DeliverError {
    DeliverError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

impl Queue {
    /// Open (creating) the queue in `dir`, holding at most `limit` items; items left by an
    /// earlier run are delivered first, half-written ones removed.
    pub fn open(dir: &Path, limit: usize) -> Result<Arc<Queue>, DeliverError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let mut items = BTreeSet::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match name.strip_suffix(&format!(".{SUFFIX}")) {
                Some(seq) => {
                    if let Ok(n) = seq.parse::<u64>() {
                        items.insert(n);
                    }
                }
                None if name.ends_with(".tmp") => {
                    let _ = std::fs::remove_file(entry.path());
                }
                None => {}
            }
        }
        let next = items.last().map_or(0, |n| n.saturating_add(1));
        if !items.is_empty() {
            tracing::info!(queue = %dir.display(), items = items.len(), "undelivered events found: delivering them first");
        }
        Ok(Arc::new(Queue {
            dir: dir.to_path_buf(),
            limit: limit.max(1),
            items: Mutex::new((items, next)),
            wake: tokio::sync::Notify::new(),
            stats: QueueStats::default(),
        }))
    }

    /// The folder holding the items.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> &QueueStats {
        &self.stats
    }

    fn path(&self, seq: u64, suffix: &str) -> PathBuf {
        self.dir.join(format!("{seq:020}.{suffix}"))
    }

    /// Store `item` for delivery (`durable`: on stable storage before this returns).
    /// `Ok(false)`: the queue is full and the item was dropped (counted).
    pub async fn push(&self, item: Vec<u8>, durable: bool) -> Result<bool, DeliverError> {
        let seq = {
            let mut g = self.items.lock();
            if g.0.len() >= self.limit {
                drop(g);
                let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(queue = %self.dir.display(), limit = self.limit, dropped = n + 1, "event queue full: events dropped");
                }
                return Ok(false);
            }
            let seq = g.1;
            g.1 = g.1.saturating_add(1);
            seq
        };
        let tmp = self.path(seq, "tmp");
        let path = self.path(seq, SUFFIX);
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&item)?;
            if durable {
                f.sync_data()?;
            }
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| io_error(&self.dir, std::io::Error::other(e)))?;
        written.map_err(|e| io_error(&self.dir, e))?;
        self.items.lock().0.insert(seq);
        self.wake.notify_one();
        Ok(true)
    }

    /// Deliver items to `target` in order until `stop`.
    pub fn spawn(self: &Arc<Self>, target: Arc<dyn Target>, stop: CancellationToken) {
        let q = self.clone();
        tokio::spawn(async move { q.run(target, stop).await });
    }

    async fn run(&self, target: Arc<dyn Target>, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        let mut failing_since: Option<Instant> = None;
        loop {
            let wake = self.wake.notified();
            let first = self.items.lock().0.first().copied();
            let Some(seq) = first else {
                tokio::select! {
                    _ = wake => continue,
                    _ = stop.cancelled() => return,
                }
            };
            let path = self.path(seq, SUFFIX);
            let item = match tokio::fs::read(&path).await {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::warn!(item = %path.display(), error = %e, "queued event unreadable: skipped");
                    self.items.lock().0.remove(&seq);
                    continue;
                }
            };
            let sent = tokio::select! {
                r = target.send(item) => r,
                _ = stop.cancelled() => return,
            };
            match sent {
                Ok(()) => {
                    if let Err(e) = tokio::fs::remove_file(&path).await {
                        tracing::warn!(item = %path.display(), error = %e, "delivered event not removed");
                    }
                    self.items.lock().0.remove(&seq);
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    if let Some(since) = failing_since.take() {
                        tracing::info!(target = target.name(), down_for = ?since.elapsed(), "event target is reachable again");
                    }
                    backoff = FIRST_BACKOFF;
                }
                Err(why) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        tracing::warn!(target = target.name(), error = %why, waiting = self.len(), "event delivery failed: retrying with backoff");
                    } else {
                        tracing::debug!(target = target.name(), error = %why, "event delivery failed again");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Flaky {
        fail: std::sync::atomic::AtomicUsize,
        got: Mutex<Vec<Bytes>>,
    }

    #[async_trait::async_trait]
    impl Target for Flaky {
        fn name(&self) -> &str {
            "flaky"
        }
        async fn send(&self, item: Bytes) -> Result<(), String> {
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err("down".into());
            }
            self.got.lock().push(item);
            Ok(())
        }
    }

    #[tokio::test]
    async fn delivers_in_order_across_reopen_and_failures() {
        let dir = tempfile::tempdir().expect("test");
        let q = Queue::open(dir.path(), 3).expect("test");
        for i in 0..4u8 {
            let accepted = q.push(vec![i], true).await.expect("test");
            assert_eq!(accepted, i < 3, "item {i}");
        }
        assert_eq!(q.stats().dropped.load(Ordering::Relaxed), 1);
        drop(q);
        // A restart finds the three items, and a half-written one is swept.
        std::fs::write(dir.path().join("00000000000000000009.tmp"), b"x").expect("test");
        let q = Queue::open(dir.path(), 4).expect("test");
        assert_eq!(q.len(), 3);
        let target = Arc::new(Flaky {
            fail: 2.into(),
            got: Mutex::new(Vec::new()),
        });
        let stop = CancellationToken::new();
        q.spawn(target.clone(), stop.clone());
        assert!(q.push(vec![7], false).await.expect("test"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while target.got.lock().len() < 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        let got: Vec<u8> = target.got.lock().iter().map(|b| b[0]).collect();
        assert_eq!(got, vec![0, 1, 2, 7]);
        assert_eq!(q.stats().failed.load(Ordering::Relaxed), 2);
        assert!(q.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).expect("test").count(), 0);
    }
}
