//! Background healing, as named workers with a status and a stop signal:
//!
//! * `mrf` drains the [`HealQueue`](crate::object::HealQueue) of partial writes and degraded
//!   reads, retrying with backoff until the missing drives answer again;
//! * `replace:<drive>` heals a replaced (empty, reformatted) drive's whole set onto it, with a
//!   tracker persisted on the drive so a restart resumes where it stopped;
//! * `sequence` runs an operator's heal (`cairn admin heal`), counting then healing;
//! * `scanner` walks every object at a rate that yields to clients, healing what disagrees and
//!   counting usage per bucket, with a periodic deep (bitrot) pass;
//! * `lifecycle` expires what bucket lifecycle rules say is due;
//! * `kms-rotate` re-seals object keys under another KMS master key (`cairn admin kms
//!   rotate`), resumable and paced like heal.
//!
//! Request paths never heal inline: they only enqueue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

mod lifecycle;
mod pools;
mod rotate;
pub use lifecycle::{LifecycleConfig, LifecycleStatus};
pub use pools::{PoolError, PoolStatus, PoolsStatus, REBALANCE_THRESHOLD};
pub use rotate::{RotateError, RotateState, RotateStatus, ROTATE_FILE};

use crate::drive::DriveStatus;
use crate::object::{HealOptions, ListOptions, ObjectError, Store, HEALING_FILE};

/// The persisted partial-write queue, under `.cairn.sys/`.
pub const MRF_FILE: &str = "mrf.json";

/// Heal pacing: the pause between objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    Slow,
    Normal,
    Fast,
}

impl Speed {
    pub fn parse(s: &str) -> Option<Speed> {
        match s {
            "slow" => Some(Speed::Slow),
            "normal" => Some(Speed::Normal),
            "fast" => Some(Speed::Fast),
            _ => None,
        }
    }

    fn pause(self) -> Duration {
        match self {
            Speed::Slow => Duration::from_millis(20),
            Speed::Normal => Duration::from_millis(2),
            Speed::Fast => Duration::ZERO,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Progress of an operator-started heal.
#[derive(Debug, Default)]
pub struct Sequence {
    pub id: String,
    pub bucket: Option<String>,
    pub prefix: String,
    pub opts: HealOptions,
    pub total: AtomicU64,
    pub counted: AtomicBool,
    pub scanned: AtomicU64,
    pub healed: AtomicU64,
    pub unhealthy: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub finished: AtomicBool,
    started_at: Mutex<Option<Instant>>,
    failures: Mutex<Failures>,
    /// The first objects a dry run found needing a heal ([`UNHEALTHY_SAMPLES`]).
    unhealthy_objects: Mutex<Vec<FailedObject>>,
}

/// How many objects needing a heal a dry run reports by name.
const UNHEALTHY_SAMPLES: usize = 1000;

/// How many failed objects a heal reports by name; the rest are counted by reason.
const FAILURE_SAMPLES: usize = 10;

#[derive(Debug, Default)]
struct Failures {
    samples: Vec<FailedObject>,
    reasons: BTreeMap<String, u64>,
}

/// An object a heal could not fully heal, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedObject {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceStatus {
    pub id: String,
    pub bucket: Option<String>,
    pub prefix: String,
    pub deep: bool,
    pub dry_run: bool,
    /// Objects to scan, once counted.
    pub total: Option<u64>,
    pub scanned: u64,
    /// Objects with a bad copy that were fully healed.
    pub healed: u64,
    /// Objects found with a bad copy in a dry run.
    pub unhealthy: u64,
    /// Objects that could not be fully healed (drives offline, too few good shards).
    pub failed: u64,
    pub bytes_rebuilt: u64,
    pub elapsed_secs: f64,
    pub finished: bool,
    /// The first objects that failed, with their reasons.
    #[serde(default)]
    pub failures: Vec<FailedObject>,
    /// Every failure, counted by reason.
    #[serde(default)]
    pub failure_reasons: BTreeMap<String, u64>,
    /// In a dry run, the first objects found needing a heal (up to 1,000), and why.
    #[serde(default)]
    pub unhealthy_objects: Vec<FailedObject>,
}

impl Sequence {
    /// Count an object (or, with an empty key, a bucket listing) that could not be healed.
    fn fail(&self, bucket: &str, key: &str, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock();
        if f.samples.len() < FAILURE_SAMPLES {
            f.samples.push(FailedObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason: reason.clone(),
            });
        }
        *f.reasons.entry(reason).or_default() += 1;
    }

    /// Count an object a dry run found needing a heal.
    fn unhealthy(&self, bucket: &str, key: &str, reason: String) {
        self.unhealthy.fetch_add(1, Ordering::Relaxed);
        let mut u = self.unhealthy_objects.lock();
        if u.len() < UNHEALTHY_SAMPLES {
            u.push(FailedObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason,
            });
        }
    }

    pub fn status(&self) -> SequenceStatus {
        let (failures, failure_reasons) = {
            let f = self.failures.lock();
            (f.samples.clone(), f.reasons.clone())
        };
        SequenceStatus {
            id: self.id.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            deep: self.opts.deep,
            dry_run: self.opts.dry_run,
            total: self
                .counted
                .load(Ordering::Relaxed)
                .then(|| self.total.load(Ordering::Relaxed)),
            scanned: self.scanned.load(Ordering::Relaxed),
            healed: self.healed.load(Ordering::Relaxed),
            unhealthy: self.unhealthy.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_rebuilt: self.bytes.load(Ordering::Relaxed),
            elapsed_secs: self
                .started_at
                .lock()
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            finished: self.finished.load(Ordering::Relaxed),
            failures,
            failure_reasons,
            unhealthy_objects: self.unhealthy_objects.lock().clone(),
        }
    }
}

/// The persisted state of a replaced drive's heal (`.cairn.sys/healing.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tracker {
    pub slot: usize,
    #[serde(default)]
    pub drive: String,
    #[serde(default)]
    pub started: u64,
    #[serde(default)]
    pub objects_done: u64,
    #[serde(default)]
    pub objects_failed: u64,
    #[serde(default)]
    pub bytes_done: u64,
    /// Resume point: bucket and last key healed in it.
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub last_key: String,
    #[serde(default)]
    pub finished: bool,
}

/// Usage of one bucket as the scanner last counted it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    pub objects: u64,
    pub bytes: u64,
    /// Versions of those objects (delete markers included), and the delete markers.
    #[serde(default)]
    pub versions: u64,
    #[serde(default)]
    pub delete_markers: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerStatus {
    pub name: String,
    pub state: String,
    pub done: u64,
    pub failed: u64,
}

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
}

/// Everything heal-related the admin API reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealState {
    pub speed: Speed,
    pub queued: usize,
    pub sequence: Option<SequenceStatus>,
    pub replacements: Vec<Tracker>,
    pub workers: Vec<WorkerStatus>,
    pub usage: BTreeMap<String, Usage>,
    /// The last lifecycle pass (on the node that runs them).
    #[serde(default)]
    pub lifecycle: LifecycleStatus,
}

/// Owner of the heal workers.
pub struct Healer {
    store: Arc<Store>,
    speed: AtomicU8,
    sequence: Mutex<Option<Arc<Sequence>>>,
    replacements: Mutex<Vec<Arc<Mutex<Tracker>>>>,
    workers: Mutex<BTreeMap<String, WorkerStatus>>,
    usage: Mutex<BTreeMap<String, Usage>>,
    /// Where the scanner is and how long its last cycle took.
    scanner: Mutex<ScannerStatus>,
    /// The last lifecycle pass, and where the next resumes if it ran out of budget.
    lifecycle: Mutex<(LifecycleStatus, Option<lifecycle::Cursor>)>,
    /// The KMS key rotation this node runs or last ran.
    rotation: Mutex<rotate::Rotation>,
    /// The server argument of each pool (to name pools in commands).
    pool_args: Mutex<Vec<String>>,
    /// Wakes the pools worker when a decommission or rebalance starts.
    pools_wake: tokio::sync::Notify,
    pools_mover: Mutex<pools::Mover>,
    shutdown: CancellationToken,
    /// In a cluster, only the node this says is the leader runs scanner cycles.
    leader: Mutex<Option<LeaderCheck>>,
    /// In a cluster, asks every peer now whether it is up (an operator's heal starts with
    /// it, so peers that just rejoined are not still taken for offline).
    peer_probe: Mutex<Option<PeerProbe>>,
    /// Told of every version the lifecycle expired (bucket event notifications).
    on_expired: Mutex<Option<OnExpired>>,
}

/// One lifecycle expiry: the key, what the store did, and whether that was a delete marker
/// written over the current version (else a version or marker removed).
#[derive(Debug, Clone)]
pub struct Expired {
    pub bucket: String,
    pub key: String,
    pub deleted: crate::object::Deleted,
    pub marker_created: bool,
}

/// Called with each lifecycle expiry, awaited before the pass goes on.
pub type OnExpired = Arc<dyn Fn(Expired) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Probe every peer now; resolves once each answered or timed out.
pub type PeerProbe = Arc<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Whether this node should run the cluster-wide scanner now.
pub type LeaderCheck = Arc<dyn Fn() -> bool + Send + Sync>;

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

pub use crate::units::parse_duration;

/// The RPC service name under which a node answers with its [`HealState`].
pub const STATE_SERVICE: &str = "heal-state";

/// Peers ask a node for its heal state (its replaced-drive trackers and workers).
#[async_trait::async_trait]
impl crate::rpc::Service for Healer {
    async fn call(&self, _body: bytes::Bytes) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.state()).map_err(|e| e.to_string())
    }
}

/// A peer's heal state.
pub async fn peer_state(peer: &crate::rpc::Peer) -> Result<HealState, crate::drive::DriveError> {
    let b = peer
        .call_service(STATE_SERVICE, Vec::new(), crate::rpc::SHORT_TIMEOUT)
        .await?;
    serde_json::from_slice(&b).map_err(|e| crate::drive::DriveError::Io(std::io::Error::other(e)))
}

impl Healer {
    pub fn new(store: Arc<Store>, shutdown: CancellationToken) -> Arc<Healer> {
        Arc::new(Healer {
            store,
            speed: AtomicU8::new(1),
            sequence: Mutex::new(None),
            replacements: Mutex::new(Vec::new()),
            workers: Mutex::new(BTreeMap::new()),
            usage: Mutex::new(BTreeMap::new()),
            scanner: Mutex::new(ScannerStatus::default()),
            lifecycle: Mutex::new(Default::default()),
            rotation: Mutex::new(Default::default()),
            pool_args: Mutex::new(Vec::new()),
            pools_wake: tokio::sync::Notify::new(),
            pools_mover: Mutex::new(Default::default()),
            shutdown,
            leader: Mutex::new(None),
            peer_probe: Mutex::new(None),
            on_expired: Mutex::new(None),
        })
    }

    /// The scanner's progress on this node.
    pub fn scanner_status(&self) -> ScannerStatus {
        self.scanner.lock().clone()
    }

    pub fn set_peer_probe(&self, probe: PeerProbe) {
        *self.peer_probe.lock() = Some(probe);
    }

    /// Tell `hook` of every version the lifecycle expires.
    pub fn set_on_expired(&self, hook: OnExpired) {
        *self.on_expired.lock() = Some(hook);
    }

    /// Run scanner cycles only while `check` says this node leads (distributed mode: the
    /// first node that is up). Other heal work (MRF, replaced drives) runs on every node.
    pub fn set_leader_check(&self, check: LeaderCheck) {
        *self.leader.lock() = Some(check);
    }

    fn is_leader(&self) -> bool {
        self.leader.lock().as_ref().is_none_or(|c| c())
    }

    pub fn speed(&self) -> Speed {
        match self.speed.load(Ordering::Relaxed) {
            0 => Speed::Slow,
            2 => Speed::Fast,
            _ => Speed::Normal,
        }
    }

    pub fn set_speed(&self, s: Speed) {
        self.speed.store(
            match s {
                Speed::Slow => 0,
                Speed::Normal => 1,
                Speed::Fast => 2,
            },
            Ordering::Relaxed,
        );
    }

    fn set_worker(&self, name: &str, state: &str, done: u64, failed: u64) {
        self.workers.lock().insert(
            name.to_string(),
            WorkerStatus {
                name: name.to_string(),
                state: state.to_string(),
                done,
                failed,
            },
        );
    }

    pub fn state(&self) -> HealState {
        HealState {
            speed: self.speed(),
            queued: self.store.heal_queue.len(),
            sequence: self.sequence.lock().as_ref().map(|s| s.status()),
            replacements: self
                .replacements
                .lock()
                .iter()
                .map(|t| t.lock().clone())
                .collect(),
            workers: self.workers.lock().values().cloned().collect(),
            usage: self.usage.lock().clone(),
            lifecycle: self.lifecycle_status(),
        }
    }

    /// Start the background workers: MRF, replaced-drive heals (found at start and, every
    /// `drive_check`, while running), and the scanner.
    pub fn start_with(self: &Arc<Self>, scanner: Option<ScannerConfig>, drive_check: Duration) {
        self.start(scanner);
        let me = self.clone();
        tokio::spawn(async move { me.drive_monitor(drive_check).await });
    }

    /// Every `every`, look at this node's drives afresh ([`Healer::check_drives`]).
    async fn drive_monitor(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            self.check_drives().await;
        }
    }

    /// Probe each of this node's drives: one that vanished, was unmounted or sits on
    /// another filesystem goes offline (and serves again once it is back where it was
    /// formatted); a freshly swapped disk (an empty mount point without a format) is
    /// formatted into its slot and its set healed onto it; a drive carrying a healing
    /// marker (formatted by `cairn admin drive replace`, or a heal a restart cut short) is
    /// healed. An unformatted drive that is not an empty mount point is never touched: it
    /// may be the bare mount point of a disk that failed to mount.
    pub async fn check_drives(self: &Arc<Self>) {
        for set in self.store.sets() {
            for (pos, d) in set.drives.iter().enumerate() {
                // Each node watches and heals its own drives.
                let Some(d) = d.as_ref().filter(|d| d.is_local()) else {
                    continue;
                };
                let Ok(probe) = d.probe().await else { continue };
                let busy = self
                    .replacements
                    .lock()
                    .iter()
                    .any(|t| t.lock().drive == d.name() && !t.lock().finished);
                if busy {
                    continue;
                }
                let slot = set.index * set.size() + pos;
                let tracker = match probe.status {
                    DriveStatus::Online => {
                        let Ok(raw) = d.read_sys(HEALING_FILE).await else {
                            continue;
                        };
                        let mut t: Tracker = serde_json::from_slice(&raw).unwrap_or_default();
                        if t.finished {
                            continue;
                        }
                        t.slot = slot;
                        t.drive = d.name().to_string();
                        if t.started == 0 {
                            t.started = unix_now();
                        }
                        t
                    }
                    DriveStatus::Unformatted if probe.is_fresh_disk() => {
                        let Some(format) = self.store.format_for_drive(slot, &probe) else {
                            continue;
                        };
                        let tracker = Tracker {
                            slot,
                            drive: d.name().to_string(),
                            started: unix_now(),
                            ..Default::default()
                        };
                        let marker = Bytes::from(serde_json::to_vec(&tracker).unwrap_or_default());
                        if let Err(e) = d
                            .format(Bytes::from(format.encode()), Some(marker), false)
                            .await
                        {
                            tracing::warn!(drive = d.name(), error = %e, "cannot format a swapped disk");
                            continue;
                        }
                        tracing::warn!(
                            drive = d.name(),
                            slot,
                            "empty disk mounted in a known slot: formatted, healing its set onto it"
                        );
                        tracker
                    }
                    _ => continue,
                };
                let tracker = Arc::new(Mutex::new(tracker));
                self.replacements.lock().push(tracker.clone());
                let me = self.clone();
                let (drive, index) = (d.clone(), set.index);
                tokio::spawn(async move { me.heal_replacement(index, drive, tracker).await });
            }
        }
    }

    /// Start the background workers: MRF, replaced-drive heals found at start, and the scanner.
    pub fn start(self: &Arc<Self>, scanner: Option<ScannerConfig>) {
        let me = self.clone();
        tokio::spawn(async move {
            me.load_mrf().await;
            me.mrf_worker().await
        });
        let me = self.clone();
        tokio::spawn(async move { me.start_replacements().await });
        if let Some(cfg) = scanner {
            let me = self.clone();
            tokio::spawn(async move { me.scanner(cfg).await });
        }
    }

    async fn pause(&self) -> bool {
        let d = self.speed().pause();
        if d.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = self.shutdown.cancelled() => return false,
            }
        }
        !self.shutdown.is_cancelled()
    }

    /// This node's drives (where its partial-write queue is kept).
    fn drives(&self) -> Vec<Arc<dyn crate::drive::Drive>> {
        self.store
            .sets()
            .iter()
            .flat_map(|s| s.drives.iter().flatten().cloned())
            .filter(|d| d.is_local())
            .collect()
    }

    /// Persist the partial-write queue on every drive (at shutdown).
    pub async fn save_mrf(&self) {
        let items = self.store.heal_queue.snapshot();
        let body = Bytes::from(serde_json::to_vec(&items).unwrap_or_default());
        for d in self.drives() {
            if let Err(e) = d.write_sys(MRF_FILE, body.clone()).await {
                tracing::warn!(drive = d.name(), error = %e, "cannot persist the heal queue");
            }
        }
        tracing::info!(items = items.len(), "heal queue saved");
    }

    /// Re-queue what a previous run saved (the union over drives), then forget it.
    async fn load_mrf(&self) {
        let mut n = 0;
        for d in self.drives() {
            if let Ok(raw) = d.read_sys(MRF_FILE).await {
                let items: Vec<(String, String)> = serde_json::from_slice(&raw).unwrap_or_default();
                for (b, k) in items {
                    self.store.heal_queue.push(&b, &k);
                    n += 1;
                }
                let _ = d.delete_sys(MRF_FILE).await;
            }
        }
        if n > 0 {
            tracing::info!(items = n, "heal queue restored");
        }
    }

    /// Drain the partial-write queue; objects whose drives are still away are retried with
    /// backoff (1 s doubling to 30 s).
    async fn mrf_worker(self: Arc<Self>) {
        let mut retry: VecDeque<(Instant, u32, String, String)> = VecDeque::new();
        let (mut done, mut failed) = (0u64, 0u64);
        self.set_worker("mrf", "idle", 0, 0);
        loop {
            if self.shutdown.is_cancelled() {
                self.set_worker("mrf", "stopped", done, failed);
                return;
            }
            let now = Instant::now();
            let due = retry.iter().position(|(t, ..)| *t <= now);
            let item = match due {
                Some(i) => retry.remove(i).map(|(_, n, b, k)| (n, b, k)),
                None => self.store.heal_queue.pop().map(|(b, k)| (0, b, k)),
            };
            let Some((attempt, bucket, key)) = item else {
                self.set_worker("mrf", "idle", done, failed);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            };
            self.set_worker("mrf", "healing", done, failed);
            match self
                .store
                .heal_object(&bucket, &key, HealOptions::default())
                .await
            {
                Ok(r) if r.complete() => done += 1,
                Ok(_)
                | Err(
                    ObjectError::ReadQuorum { .. }
                    | ObjectError::WriteQuorum { .. }
                    | ObjectError::LockTimeout,
                ) => {
                    if retry.len() < 10_000 {
                        let backoff = Duration::from_secs((1u64 << attempt.min(5)).min(30));
                        retry.push_back((Instant::now() + backoff, attempt + 1, bucket, key));
                    } else {
                        failed += 1;
                    }
                }
                Err(ObjectError::NoSuchBucket | ObjectError::NoSuchKey) => done += 1,
                Err(e) => {
                    tracing::warn!(bucket, key, error = %e, "heal failed");
                    failed += 1;
                }
            }
        }
    }

    /// Visit every object of `bucket` under `prefix`, after `start_after`, in key order,
    /// `concurrency` objects at a time. `on_done` gets each key once it and every key before
    /// it are done (a safe resume point). Stops early when a visit returns `false`.
    async fn for_each_object<F, Fut>(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: &str,
        concurrency: usize,
        mut f: F,
        mut on_done: impl FnMut(&str),
    ) -> Result<(), ObjectError>
    where
        F: FnMut(crate::object::ObjectInfo) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        use futures::StreamExt;
        let mut after = start_after.to_string();
        loop {
            let page = self
                .store
                .list_objects(
                    bucket,
                    &ListOptions {
                        prefix: prefix.to_string(),
                        delimiter: None,
                        start_after: after.clone(),
                        max_keys: 1000,
                        every_key: true,
                        pool: None,
                    },
                )
                .await?;
            let truncated = page.truncated;
            let keys: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
            // Visits run `concurrency` at a time and a slot is refilled as soon as any visit
            // ends (a large object does not hold the small ones behind it); the resume point
            // only moves over a run of finished keys, in key order.
            let mut finished = vec![false; keys.len()];
            let mut in_order = 0;
            let mut visits = futures::stream::iter(page.objects.into_iter().enumerate())
                .map(|(i, o)| {
                    let visit = f(o);
                    async move { (i, visit.await) }
                })
                .buffer_unordered(concurrency.max(1));
            while let Some((i, go_on)) = visits.next().await {
                finished[i] = true;
                while in_order < keys.len() && finished[in_order] {
                    on_done(&keys[in_order]);
                    after.clone_from(&keys[in_order]);
                    in_order += 1;
                }
                if !go_on {
                    return Ok(());
                }
            }
            if !truncated {
                return Ok(());
            }
        }
    }

    /// Objects healed at once: more parallelism when asked to go fast.
    pub(super) fn concurrency(&self) -> usize {
        match self.speed() {
            Speed::Slow => 1,
            Speed::Normal => 2,
            Speed::Fast => 4,
        }
    }

    /// Start (or return the running) operator heal.
    pub fn start_sequence(
        self: &Arc<Self>,
        bucket: Option<String>,
        prefix: String,
        opts: HealOptions,
    ) -> Arc<Sequence> {
        let mut current = self.sequence.lock();
        if let Some(s) = current.as_ref() {
            if !s.finished.load(Ordering::Relaxed)
                && s.bucket == bucket
                && s.prefix == prefix
                && s.opts == opts
            {
                return s.clone();
            }
        }
        let seq = Arc::new(Sequence {
            id: uuid::Uuid::new_v4().to_string(),
            bucket,
            prefix,
            opts,
            started_at: Mutex::new(Some(Instant::now())),
            ..Default::default()
        });
        *current = Some(seq.clone());
        let me = self.clone();
        let run = seq.clone();
        tokio::spawn(async move { me.run_sequence(run).await });
        seq
    }

    pub fn sequence(&self) -> Option<Arc<Sequence>> {
        self.sequence.lock().clone()
    }

    async fn buckets_for(&self, only: &Option<String>) -> Result<Vec<String>, ObjectError> {
        match only {
            Some(b) => Ok(vec![b.clone()]),
            None => Ok(self
                .store
                .list_buckets()
                .await?
                .into_iter()
                .map(|b| b.name)
                .collect()),
        }
    }

    async fn run_sequence(self: Arc<Self>, seq: Arc<Sequence>) {
        self.set_worker("sequence", "probing", 0, 0);
        // Peers and drives as they are now, not as they were last seen.
        let probe = self.peer_probe.lock().clone();
        if let Some(probe) = probe {
            probe().await;
        }
        self.check_drives().await;
        self.set_worker("sequence", "counting", 0, 0);
        if !seq.opts.dry_run {
            if let Err(e) = self.store.heal_buckets().await {
                tracing::warn!(error = %e, "bucket heal failed");
            }
        }
        let buckets = match self.buckets_for(&seq.bucket).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "heal: cannot list buckets");
                seq.fail("", "", format!("listing buckets: {e}"));
                seq.finished.store(true, Ordering::Relaxed);
                return;
            }
        };
        for b in &buckets {
            let r = self
                .for_each_object(
                    b,
                    &seq.prefix,
                    "",
                    1,
                    |_| {
                        seq.total.fetch_add(1, Ordering::Relaxed);
                        async { true }
                    },
                    |_| {},
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "heal: listing failed");
                seq.fail(b, "", format!("listing: {e}"));
            }
        }
        seq.counted.store(true, Ordering::Relaxed);
        self.set_worker("sequence", "healing", 0, 0);
        for b in &buckets {
            let r = self
                .for_each_object(
                    b,
                    &seq.prefix,
                    "",
                    self.concurrency(),
                    |o| {
                        let me = self.clone();
                        let seq = seq.clone();
                        let bucket = b.clone();
                        async move {
                            let r = me.store.heal_object(&bucket, &o.key, seq.opts).await;
                            seq.scanned.fetch_add(1, Ordering::Relaxed);
                            match r {
                                Ok(r) => {
                                    seq.bytes.fetch_add(r.bytes_written, Ordering::Relaxed);
                                    let offline =
                                        || format!("{} drive(s) offline", r.offline_drives);
                                    if r.bad_drives > 0 {
                                        if seq.opts.dry_run {
                                            seq.unhealthy(
                                                &bucket,
                                                &o.key,
                                                format!("{} bad cop(ies)", r.bad_drives),
                                            );
                                        } else if r.complete() {
                                            seq.healed.fetch_add(1, Ordering::Relaxed);
                                        } else {
                                            seq.fail(&bucket, &o.key, offline());
                                        }
                                    } else if !r.complete() {
                                        seq.fail(&bucket, &o.key, offline());
                                    }
                                }
                                Err(ObjectError::NoSuchKey) => {}
                                Err(e) => {
                                    tracing::warn!(bucket, key = o.key, error = %e, "heal failed");
                                    seq.fail(&bucket, &o.key, e.to_string());
                                }
                            }
                            me.pause().await
                        }
                    },
                    |_| {},
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "heal: listing failed");
                seq.fail(b, "", format!("listing: {e}"));
            }
        }
        seq.finished.store(true, Ordering::Relaxed);
        let st = seq.status();
        self.set_worker("sequence", "done", st.healed, st.failed);
        tracing::info!(
            scanned = st.scanned,
            healed = st.healed,
            failed = st.failed,
            bytes = st.bytes_rebuilt,
            "heal finished"
        );
    }

    /// Find replaced drives (a `healing.json` tracker) and heal their sets onto them.
    async fn start_replacements(self: Arc<Self>) {
        self.check_drives().await;
    }

    async fn heal_replacement(
        self: Arc<Self>,
        set_index: usize,
        drive: Arc<dyn crate::drive::Drive>,
        tracker: Arc<Mutex<Tracker>>,
    ) {
        let name = format!("replace:{}", drive.name());
        tracing::info!(drive = drive.name(), "healing replaced drive");
        self.set_worker(&name, "healing", 0, 0);
        if let Err(e) = self.store.heal_buckets().await {
            tracing::warn!(error = %e, "bucket heal failed");
        }
        let persist = |t: &Tracker| Bytes::from(serde_json::to_vec(t).unwrap_or_default());
        let buckets = match self.buckets_for(&None).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "replacement heal: cannot list buckets");
                return;
            }
        };
        let (resume_bucket, resume_key) = {
            let t = tracker.lock();
            (t.bucket.clone(), t.last_key.clone())
        };
        for b in buckets
            .iter()
            .filter(|b| resume_bucket.is_empty() || **b >= resume_bucket)
        {
            let start_after = if *b == resume_bucket {
                resume_key.clone()
            } else {
                String::new()
            };
            let mut since_persist = 0;
            let r = self
                .for_each_object(
                    b,
                    "",
                    &start_after,
                    self.concurrency(),
                    |o| {
                        let me = self.clone();
                        let drive = drive.clone();
                        let tracker = tracker.clone();
                        let bucket = b.clone();
                        since_persist += 1;
                        let flush = since_persist % 50 == 0;
                        let name = name.clone();
                        async move {
                            if me.store.key_maps_to_set(&o.key, set_index) {
                                match me
                                    .store
                                    .heal_object(&bucket, &o.key, HealOptions::default())
                                    .await
                                {
                                    Ok(r) if r.complete() => {
                                        let mut t = tracker.lock();
                                        t.objects_done += 1;
                                        t.bytes_done += r.bytes_written;
                                    }
                                    _ => tracker.lock().objects_failed += 1,
                                }
                            }
                            // The resume point (bucket, last_key) moves in key order once
                            // every earlier object is done, so a saved tracker skips nothing.
                            let snapshot = tracker.lock().clone();
                            me.set_worker(
                                &name,
                                "healing",
                                snapshot.objects_done,
                                snapshot.objects_failed,
                            );
                            if flush {
                                let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
                            }
                            me.pause().await
                        }
                    },
                    |last| {
                        let mut t = tracker.lock();
                        t.bucket = b.clone();
                        t.last_key = last.to_string();
                    },
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "replacement heal: listing failed");
            }
            if self.shutdown.is_cancelled() {
                let snapshot = tracker.lock().clone();
                let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
                return;
            }
        }
        let snapshot = {
            let mut t = tracker.lock();
            t.finished = true;
            t.clone()
        };
        if snapshot.objects_failed == 0 {
            let _ = drive.delete_sys(HEALING_FILE).await;
        } else {
            let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
        }
        self.set_worker(
            &name,
            "done",
            snapshot.objects_done,
            snapshot.objects_failed,
        );
        tracing::info!(
            drive = drive.name(),
            objects = snapshot.objects_done,
            failed = snapshot.objects_failed,
            "replaced drive healed"
        );
    }

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
    async fn scanner(self: Arc<Self>, cfg: ScannerConfig) {
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
            let buckets = self.buckets_for(&None).await.unwrap_or_default();
            self.expire_uploads(&buckets, cfg.multipart_expiry).await;
            for b in &buckets {
                self.scanner.lock().bucket = b.clone();
                let mut u = Usage::default();
                let counted = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
                let r = self
                    .for_each_object(b, "", "", 1, |o| {
                        u.objects += 1;
                        u.bytes += o.size;
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
                    st.objects_done += u.objects;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1w"), None);
    }
}
