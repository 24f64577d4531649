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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

mod lifecycle;
mod mrf;
mod pools;
mod replace;
mod rotate;
mod scanner;
mod sequence;
pub use lifecycle::{LifecycleConfig, LifecycleStatus};
pub use mrf::MRF_FILE;
pub use pools::{PoolError, PoolStatus, PoolsStatus, REBALANCE_THRESHOLD};
pub use replace::Tracker;
pub use rotate::{RotateError, RotateState, RotateStatus, ROTATE_FILE};
pub use scanner::{ScannerConfig, ScannerStatus};
pub use sequence::{FailedObject, Sequence, SequenceStatus};

use crate::object::{ListOptions, ObjectError, Store};

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
    /// Heals the system records kept above the store (identities).
    records_heal: Mutex<Option<RecordsHeal>>,
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

/// Copy system records onto drives that miss them or hold older copies; resolves to how
/// many copies were written.
pub type RecordsHeal =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<usize, String>> + Send + Sync>;

/// Whether this node should run the cluster-wide scanner now.
pub type LeaderCheck = Arc<dyn Fn() -> bool + Send + Sync>;

pub use crate::units::parse_duration;

/// The deployment-wide lock every change of the pools record holds (a heal of it too).
pub(crate) const POOLS_RECORD_LOCK: &str = "cairn/pools-record";

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
            records_heal: Mutex::new(None),
        })
    }

    /// The scanner's progress on this node.
    pub fn scanner_status(&self) -> ScannerStatus {
        self.scanner.lock().clone()
    }

    pub fn set_peer_probe(&self, probe: PeerProbe) {
        *self.peer_probe.lock() = Some(probe);
    }

    /// Heal the records kept above the store (identities) with `heal`, whenever buckets
    /// and the store's own records are healed.
    pub fn set_records_heal(&self, heal: RecordsHeal) {
        *self.records_heal.lock() = Some(heal);
    }

    /// Everything a drive holds besides objects onto drives that miss it or hold an older
    /// copy (a replaced drive, one that was away while it changed): bucket folders and
    /// records, the pools record, and through the wiring's hook identities, the IAM seal
    /// key and the KMS key records.
    pub(crate) async fn heal_system(&self) {
        if let Err(e) = self.store.heal_buckets().await {
            tracing::warn!(error = %e, "bucket heal failed");
        }
        let locker = self.store.locker();
        let pools_lock: crate::records::RecordLock<'_> =
            (locker.as_ref(), |_, _| POOLS_RECORD_LOCK.to_string());
        if let Err(e) = self.store.pools_records().heal_all(Some(pools_lock)).await {
            tracing::warn!(error = %e, "pools record heal failed");
        }
        let hook = self.records_heal.lock().clone();
        if let Some(heal) = hook {
            match heal().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(copies = n, "system records healed"),
                Err(e) => tracing::warn!(error = %e, "system records heal failed"),
            }
        }
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
