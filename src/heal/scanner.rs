//! `scanner`: walks every object at a rate that yields to clients, healing what disagrees,
//! counting usage per bucket and expiring stale multipart uploads, with a periodic deep
//! (bitrot) pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{Healer, Speed, Usage};
use crate::object::HealOptions;

/// The scanner's progress on this node (metrics, the console).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScannerStatus {
    /// Cycles finished since start.
    pub cycles: u64,
    /// Seconds the last finished cycle took.
    pub last_cycle_secs: f64,
    /// When the last cycle finished (seconds since the epoch; 0: none yet).
    pub last_finished: u64,
    /// Buckets and objects the running cycle went through so far.
    pub buckets_done: u64,
    pub objects_done: u64,
    /// The bucket it is in now (empty between cycles).
    pub bucket: String,
    /// Objects every cycle went through since start.
    #[serde(default)]
    pub objects_total: u64,
}

/// Scanner settings.
#[derive(Debug, Clone, Copy)]
pub struct ScannerConfig {
    /// Pause between scanner cycles.
    pub interval: Duration,
    /// Run a deep (bitrot) cycle when the last one is older than this.
    pub deep_every: Duration,
    /// Abort multipart uploads older than this (`CAIRN_MULTIPART_EXPIRY`, default 1 day).
    pub multipart_expiry: Duration,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        ScannerConfig {
            interval: Duration::from_secs(3600),
            deep_every: Duration::from_secs(30 * 24 * 3600),
            multipart_expiry: Duration::from_secs(24 * 3600),
        }
    }
}

impl Healer {
    /// Abort multipart uploads started longer than `expiry` ago.
    async fn expire_uploads(&self, buckets: &[String], expiry: Duration) {
        let cutoff = SystemTime::now()
            .checked_sub(expiry)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i64);
        for b in buckets {
            let Ok(uploads) = self.store.list_uploads(b, "").await else {
                continue;
            };
            for u in uploads.into_iter().filter(|u| u.initiated < cutoff) {
                match self.store.abort_multipart(b, &u.key, &u.upload_id).await {
                    Ok(()) => tracing::info!(
                        bucket = b,
                        key = u.key,
                        upload = u.upload_id,
                        "expired multipart upload aborted"
                    ),
                    Err(e) => {
                        tracing::warn!(bucket = b, key = u.key, error = %e, "cannot abort an expired upload")
                    }
                }
            }
        }
    }

    /// Walk everything periodically: heal what disagrees, count usage; deep every so often.
    pub(super) async fn scanner(self: Arc<Self>, cfg: ScannerConfig) {
        let mut last_deep = Instant::now();
        let mut cycles = 0u64;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(cfg.interval) => {}
                _ = self.shutdown.cancelled() => return,
            }
            if !self.is_leader() {
                self.set_worker("scanner", "standby (another node leads)", cycles, 0);
                continue;
            }
            let deep = last_deep.elapsed() >= cfg.deep_every;
            self.set_worker(
                "scanner",
                if deep { "deep scan" } else { "scanning" },
                cycles,
                0,
            );
            let mut usage = BTreeMap::new();
            let started = Instant::now();
            {
                let mut st = self.scanner.lock();
                (st.buckets_done, st.objects_done) = (0, 0);
            }
            self.heal_system().await;
            let buckets = self.buckets_for(&None).await.unwrap_or_default();
            self.expire_uploads(&buckets, cfg.multipart_expiry).await;
            for b in &buckets {
                self.scanner.lock().bucket = b.clone();
                let mut u = Usage::default();
                let mut scanned = 0u64;
                let counted = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
                let r = self
                    .for_each_object(b, "", "", 1, |o| {
                        scanned += 1;
                        // Objects are keys whose latest version is not a delete marker
                        // (as ListObjects shows them); every key is still healed.
                        if !o.delete_marker {
                            u.objects += 1;
                            u.bytes += o.size;
                        }
                        let me = self.clone();
                        let bucket = b.clone();
                        let counted = counted.clone();
                        async move {
                            let opts = HealOptions {
                                deep,
                                dry_run: false,
                            };
                            match me.store.heal_object(&bucket, &o.key, opts).await {
                                Ok(report) => {
                                    counted.0.fetch_add(report.versions as u64, Ordering::Relaxed);
                                    counted
                                        .1
                                        .fetch_add(report.delete_markers as u64, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    tracing::debug!(bucket, key = o.key, error = %e, "scanner heal");
                                }
                            }
                            // The scanner always yields to clients.
                            tokio::time::sleep(Speed::Slow.pause().max(me.speed().pause())).await;
                            !me.shutdown.is_cancelled()
                        }
                    }, |_| {})
                    .await;
                {
                    let mut st = self.scanner.lock();
                    st.buckets_done += 1;
                    st.objects_done += scanned;
                    st.objects_total = st.objects_total.saturating_add(scanned);
                }
                u.versions = counted.0.load(Ordering::Relaxed);
                u.delete_markers = counted.1.load(Ordering::Relaxed);
                if r.is_ok() {
                    usage.insert(b.clone(), u);
                }
            }
            *self.usage.lock() = usage;
            {
                let mut st = self.scanner.lock();
                st.cycles += 1;
                st.last_cycle_secs = started.elapsed().as_secs_f64();
                st.last_finished = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                st.bucket.clear();
            }
            if deep {
                last_deep = Instant::now();
            }
            cycles += 1;
            self.set_worker("scanner", "idle", cycles, 0);
        }
    }
}
