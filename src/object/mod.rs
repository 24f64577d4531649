//! The object layer: buckets and objects over erasure sets of drives.
//!
//! It owns quorum, fan-out to drives, erasure coding of streams, listing merged across
//! sets, multipart uploads and per-key locking. It knows nothing of HTTP or XML; the S3
//! API maps [`ObjectError`] to S3 error codes in one place.

mod bootstrap;
mod bucket;
mod get;
mod heal;
mod list;
mod multipart;
pub mod pools;
mod put;
mod quorum;
pub mod retention;
pub mod tags;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use thiserror::Error;
use uuid::Uuid;

use crate::drive::Drive;
use crate::lock::{LocalLocker, Locker};

pub use bootstrap::{
    open_cluster, open_drives, open_local, OpenError, OpenOptions, PoolSpec, HEALING_FILE,
};
pub use bucket::{Deleted, Expect};
pub use get::{ByteRange, ObjectReader};
pub use heal::{HealOptions, HealReport};
pub use list::{ListOptions, ListPage, VersionPage, VersionWalk};
pub use multipart::{CompleteChecksums, MultipartUpload, PartListing, UploadedPart, UPLOAD_HEADER};
pub use pools::{
    MoveOutcome, Pool, PoolEntry, PoolSpace, PoolState, PoolsRecord, Progress, RebalanceStatus,
};
pub use quorum::VersionRef;

/// Shards at most this large are stored inline in the metadata file.
pub const INLINE_LIMIT: usize = 128 * 1024;
/// Largest object: 5 TiB.
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;
/// Longest key in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Multipart rules.
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
pub const MAX_PART_NUMBER: u32 = 10_000;

/// Default age before a copy without quorum counts as dangling.
pub const DANGLING_GRACE: Duration = Duration::from_secs(15 * 60);

/// How long a writer waits for a key held by readers (or another writer) before failing.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("bucket does not exist")]
    NoSuchBucket,
    #[error("key does not exist")]
    NoSuchKey,
    #[error("version does not exist")]
    NoSuchVersion,
    /// The version is under a retention or legal hold that the request may not override.
    #[error("the version is protected by object lock")]
    ObjectLocked,
    /// The version read is a delete marker: the latest (`by_id` false, an S3 404) or the
    /// one asked for by id (an S3 405).
    #[error("the version is a delete marker")]
    DeleteMarker {
        version_id: Option<Uuid>,
        by_id: bool,
        /// When the marker was made (nanoseconds since the epoch).
        mod_time: i64,
    },
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket is not empty")]
    BucketNotEmpty,
    #[error("invalid bucket name")]
    InvalidBucketName,
    #[error("key is longer than 1024 bytes")]
    KeyTooLong,
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    #[error("upload does not exist")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("parts are not in ascending order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the minimum part size")]
    EntityTooSmall(u32),
    #[error("object is larger than allowed")]
    EntityTooLarge,
    #[error("requested range is not satisfiable")]
    InvalidRange,
    #[error("body ended after {got} of {want} bytes")]
    IncompleteBody { got: u64, want: u64 },
    #[error("Content-MD5 does not match the body")]
    BadDigest,
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("not enough drives for a write ({ok} of {need})")]
    WriteQuorum { ok: usize, need: usize },
    /// A write found too few drives with room: it would have had its quorum but for
    /// drives that are full.
    #[error("not enough drives with free space for a write ({ok} of {need}; {full} full)")]
    StorageFull { ok: usize, need: usize, full: usize },
    #[error("not enough drives agree for a read ({ok} of {need})")]
    ReadQuorum { ok: usize, need: usize },
    #[error("timed out waiting for a lock")]
    LockTimeout,
    /// The key's lock could not be kept on a quorum of nodes while the write held it.
    #[error("the write lost its lock")]
    LockLost,
    /// A read opened without the key's lock found its version replaced before it read a
    /// byte: retry.
    #[error("the object was replaced while the read opened it; retry")]
    Replaced,
    /// The key was moved to another server pool while the request wrote it: retry.
    #[error("the key moved to another pool during the write; retry")]
    Moved,
    /// A write's condition on the object it replaces does not hold.
    #[error("the write's precondition does not hold")]
    PreconditionFailed,
    /// The condition held when the write began, but another write to the key committed
    /// first.
    #[error("a concurrent write changed the object")]
    ConditionalConflict,
    /// The request body failed (client disconnect, or a checksum the caller verifies).
    #[error("request body: {0}")]
    Body(std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::bucket::BucketError> for ObjectError {
    fn from(e: crate::bucket::BucketError) -> Self {
        use crate::bucket::BucketError;
        use crate::records::RecordError;
        match e {
            BucketError::NoSuchBucket => ObjectError::NoSuchBucket,
            BucketError::Record(RecordError::WriteQuorum { ok, need }) => {
                ObjectError::WriteQuorum { ok, need }
            }
            BucketError::Record(RecordError::ReadQuorum { ok, need }) => {
                ObjectError::ReadQuorum { ok, need }
            }
            BucketError::Record(e @ (RecordError::NewerFormat(..) | RecordError::Lock(_))) => {
                ObjectError::Internal(e.to_string())
            }
            BucketError::Lock(e) => e.into(),
            BucketError::Invalid(m) => ObjectError::InvalidArgument(m),
        }
    }
}

impl From<crate::lock::LockError> for ObjectError {
    fn from(e: crate::lock::LockError) -> Self {
        match e {
            crate::lock::LockError::Timeout(_) => ObjectError::LockTimeout,
            crate::lock::LockError::Quorum {
                write: true,
                ok,
                need,
            } => ObjectError::WriteQuorum { ok, need },
            crate::lock::LockError::Quorum { ok, need, .. } => ObjectError::ReadQuorum { ok, need },
        }
    }
}

pub type ObjectResult<T> = Result<T, ObjectError>;

/// What the S3 layer learns about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// Nanoseconds since the Unix epoch.
    pub mod_time: i64,
    pub version_id: Option<Uuid>,
    pub headers: BTreeMap<String, String>,
    pub user_meta: BTreeMap<String, String>,
    pub checksums: BTreeMap<String, String>,
    /// (part number, size) of each part; one entry for a simple PUT.
    pub parts: Vec<(u32, u64)>,
    /// The checksums of each part, in the order of `parts`.
    pub part_checksums: Vec<BTreeMap<String, String>>,
    /// What the writer kept about each part ([`PutOptions::part_meta`]), in the order of
    /// `parts`.
    pub part_meta: Vec<BTreeMap<String, String>>,
    /// A delete marker rather than an object (only in version listings and deletes).
    pub delete_marker: bool,
}

/// Metadata a writer attaches to an object.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    /// Standard headers to keep (content-type, cache-control, ...), lower-case names.
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` without the prefix.
    pub user_meta: BTreeMap<String, String>,
    /// Checksums the caller verified (algorithm → base64 value).
    pub checksums: BTreeMap<String, String>,
    /// Content-MD5 to verify before commit.
    pub content_md5: Option<[u8; 16]>,
    /// Checksums the body reader computes while streaming; read once the body is consumed
    /// and merged into `checksums`.
    pub computed_checksums: Option<Arc<Mutex<BTreeMap<String, String>>>>,
    /// Write only if the object now under the key satisfies this.
    pub condition: Option<WriteCondition>,
    /// CreateMultipartUpload only: the checksum algorithm and type every part must carry
    /// and the object's checksum is made with.
    pub upload_checksum: Option<(crate::checksum::ChecksumAlg, crate::checksum::ChecksumType)>,
    /// The ETag to record instead of the MD5 of the stored bytes, set by whoever produced
    /// the body once it ended (an SSE-S3 upload: the MD5 of the plaintext). With one (and no
    /// `content_md5`) the stored bytes are not hashed at all.
    pub etag: Option<Arc<Mutex<Option<String>>>>,
    /// UploadPart only: kept with the part and, once completed, with the object's part
    /// (opaque to the store; an encrypted part's salt).
    pub part_meta: BTreeMap<String, String>,
    /// The erasure block size for this object (PUT) or for every part of this upload
    /// (CreateMultipartUpload) instead of the store's: an encrypted object's blocks hold
    /// whole packages. Ignored by UploadPart (its upload's size holds).
    pub block_size: Option<usize>,
}

impl PutOptions {
    /// The block size to write with, given the store's.
    pub(crate) fn block_size_or(&self, store: usize) -> usize {
        self.block_size.filter(|&b| b > 0).unwrap_or(store)
    }
}

/// A condition a write puts on the object it replaces (`If-None-Match: *`, `If-Match`).
/// Checked before the body is read, and again under the key's write lock at commit: a
/// write that passed the first check and fails the second lost a race
/// ([`ObjectError::ConditionalConflict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Only if no object has the key.
    Absent,
    /// Only if the object's ETag is one of these (unquoted); `*` matches any object.
    Match(Vec<String>),
}

impl WriteCondition {
    /// Judge the condition against what a read quorum agrees is under the key now.
    pub(crate) fn judge(&self, current: ObjectResult<&crate::meta::Version>) -> ObjectResult<()> {
        match (self, current) {
            (WriteCondition::Absent, Err(ObjectError::NoSuchKey)) => Ok(()),
            (WriteCondition::Absent, Ok(_)) => Err(ObjectError::PreconditionFailed),
            (WriteCondition::Match(tags), Ok(v)) => {
                if tags.iter().any(|t| t == "*" || *t == v.etag) {
                    Ok(())
                } else {
                    Err(ObjectError::PreconditionFailed)
                }
            }
            (_, Err(e)) => Err(e),
        }
    }
}

impl PutOptions {
    /// `checksums` plus whatever was computed on the body.
    pub(crate) fn final_checksums(&self) -> BTreeMap<String, String> {
        let mut c = self.checksums.clone();
        if let Some(more) = &self.computed_checksums {
            c.extend(more.lock().clone());
        }
        c
    }
}

/// One erasure set: its drives in layout order (`None` for a drive that did not answer at
/// start) and its default parity.
#[derive(Clone)]
pub struct ErasureSet {
    pub index: usize,
    /// The server pool the set belongs to.
    pub pool: usize,
    pub drives: Vec<Option<Arc<dyn Drive>>>,
    pub parity: usize,
}

impl ErasureSet {
    pub fn size(&self) -> usize {
        self.drives.len()
    }
}

/// Objects that need healing: writes that reached quorum but missed drives, and reads that
/// met missing or corrupt shards, and heals that could not finish yet (drives still away),
/// waiting for their next try. Bounded and deduplicated; consumed by the heal workers, which
/// [`HealQueue::finish`] what they [`HealQueue::take`] (a heal under way is still counted
/// and saved); saved whole at shutdown.
#[derive(Default)]
pub struct HealQueue {
    inner: Mutex<HealQueueInner>,
}

type HealItem = (String, String);

#[derive(Default)]
struct HealQueueInner {
    order: VecDeque<HealItem>,
    /// Heals tried and to be tried again: when, and how many tries they had.
    waiting: Vec<(std::time::Instant, u32, HealItem)>,
    /// What is queued or waiting, and whether its heal must check every shard's bitrot
    /// hashes.
    members: HashMap<HealItem, bool>,
    /// Heals taken and not yet finished (and whether deep), apart from `members`: a key
    /// queued again while its heal runs is healed again after it.
    running: HashMap<HealItem, bool>,
}

/// One heal taken from a [`HealQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealTask {
    pub bucket: String,
    pub key: String,
    /// Check every shard's bitrot hashes.
    pub deep: bool,
    /// Tries it had before this one.
    pub tries: u32,
}

impl HealQueue {
    pub const CAPACITY: usize = 100_000;
    /// At most this many heals wait for another try (the rest of the queue stays for new
    /// partial writes and reads that met rot).
    pub const WAITING: usize = 10_000;

    /// Queue a heal that finds missing, stale or short copies (a write that missed drives).
    pub fn push(&self, bucket: &str, key: &str) {
        self.add(bucket, key, false);
    }

    /// Queue a heal that also checks every shard's bitrot hashes: a read found a shard
    /// whose bytes do not match them, which only such a heal repairs.
    pub fn push_deep(&self, bucket: &str, key: &str) {
        self.add(bucket, key, true);
    }

    fn add(&self, bucket: &str, key: &str, deep: bool) {
        let mut q = self.inner.lock();
        let item = (bucket.to_string(), key.to_string());
        if let Some(queued) = q.members.get_mut(&item) {
            *queued |= deep;
            return;
        }
        if q.members.len() >= Self::CAPACITY {
            return;
        }
        q.members.insert(item.clone(), deep);
        q.order.push_back(item);
    }

    /// Finish `task` (taken with [`HealQueue::take`]) and try it again `after` from now (its
    /// heal could not finish: drives away, no quorum). Queued again meanwhile, it keeps its
    /// place in the queue instead. `false` when too many wait already.
    pub fn retry_later(&self, task: HealTask, after: std::time::Duration) -> bool {
        let mut q = self.inner.lock();
        let item = (task.bucket, task.key);
        q.running.remove(&item);
        if let Some(queued) = q.members.get_mut(&item) {
            *queued |= task.deep;
            return true;
        }
        if q.members.len() >= Self::CAPACITY || q.waiting.len() >= Self::WAITING {
            return false;
        }
        q.members.insert(item.clone(), task.deep);
        let when = std::time::Instant::now() + after;
        q.waiting.push((when, task.tries.saturating_add(1), item));
        true
    }

    /// The next heal: one waiting whose time has come, else the first queued.
    pub fn take(&self) -> Option<HealTask> {
        let mut q = self.inner.lock();
        let now = std::time::Instant::now();
        let due = q
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, (when, ..))| *when <= now)
            .min_by_key(|(_, (when, ..))| *when)
            .map(|(i, _)| i);
        let (tries, item) = match due {
            Some(i) => {
                let (_, tries, item) = q.waiting.swap_remove(i);
                (tries, item)
            }
            None => (0, q.order.pop_front()?),
        };
        let deep = q.members.remove(&item).unwrap_or(false);
        q.running.insert(item.clone(), deep);
        Some(HealTask {
            bucket: item.0,
            key: item.1,
            deep,
            tries,
        })
    }

    /// A heal taken with [`HealQueue::take`] is over (done, or given up).
    pub fn finish(&self, task: &HealTask) {
        self.inner
            .lock()
            .running
            .remove(&(task.bucket.clone(), task.key.clone()));
    }

    /// The next object to heal, and whether the heal must be deep (taken and finished at
    /// once: for callers that do not report back).
    pub fn pop(&self) -> Option<(String, String, bool)> {
        let t = self.take()?;
        self.finish(&t);
        Some((t.bucket, t.key, t.deep))
    }

    /// Heals queued, under way or waiting for another try.
    pub fn len(&self) -> usize {
        let q = self.inner.lock();
        q.members.len()
            + q.running
                .keys()
                .filter(|k| !q.members.contains_key(*k))
                .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything queued, in order, then every heal under way or waiting for another try,
    /// and whether its heal must be deep (to persist at shutdown).
    pub fn snapshot(&self) -> Vec<(String, String, bool)> {
        let q = self.inner.lock();
        let queued = q
            .order
            .iter()
            .chain(q.waiting.iter().map(|(_, _, item)| item))
            .map(|item| (item, q.members.get(item).copied().unwrap_or(false)));
        let running = q
            .running
            .iter()
            .filter(|(item, _)| !q.members.contains_key(*item))
            .map(|(item, deep)| (item, *deep));
        queued
            .chain(running)
            .map(|(item, deep)| (item.0.clone(), item.1.clone(), deep))
            .collect()
    }

    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        self.inner
            .lock()
            .members
            .contains_key(&(bucket.to_string(), key.to_string()))
    }

    /// Queued for a heal that checks bitrot hashes.
    pub fn contains_deep(&self, bucket: &str, key: &str) -> bool {
        self.inner
            .lock()
            .members
            .get(&(bucket.to_string(), key.to_string()))
            .copied()
            .unwrap_or(false)
    }
}

/// The erasure-coded object store over all sets.
pub struct Store {
    pub(crate) deployment_id: Uuid,
    /// The server pools, each a range of `sets` with its own layout of drive ids (formats
    /// replaced drives found while running).
    pub(crate) pools: Vec<Pool>,
    /// What each pool takes (new objects or none), as the pools record says.
    pub(crate) pool_states: parking_lot::RwLock<Vec<PoolState>>,
    /// Each pool's usable space, measured now and then for placement.
    pub(crate) space: Mutex<Option<(std::time::Instant, Vec<PoolSpace>)>>,
    /// Which pool recently read keys were found in.
    pub(crate) locations: pools::Locations,
    /// Pools were added or removed at this start: system records and bucket directories
    /// are to be healed onto every drive.
    pub pools_changed: bool,
    pub(crate) sets: Vec<ErasureSet>,
    pub(crate) locker: Arc<dyn Locker>,
    /// Waits of every lock this store takes (metrics).
    lock_stats: Arc<crate::lock::LockStats>,
    pub(crate) block_size: usize,
    pub(crate) min_part_size: u64,
    /// Copies no quorum backs are removed by heal only once older than this, so a write
    /// that is still landing is never mistaken for debris.
    pub(crate) dangling_grace: Duration,
    pub heal_queue: Arc<HealQueue>,
    /// Every bucket's configuration record, cached.
    pub(crate) buckets: Arc<crate::bucket::BucketStore>,
    /// Parity of REDUCED_REDUNDANCY objects (`CAIRN_STORAGE_CLASS_RRS`), at most a set's.
    pub(crate) rrs_parity: usize,
}

/// The stored header naming an object's storage class, present only when it is not
/// STANDARD (and returned on GET/HEAD as AWS returns it).
pub const STORAGE_CLASS_HEADER: &str = "x-amz-storage-class";
/// The storage classes Cairn stores: STANDARD (the set's parity) and REDUCED_REDUNDANCY
/// (`CAIRN_STORAGE_CLASS_RRS` parity).
pub const STORAGE_CLASSES: [&str; 2] = ["STANDARD", "REDUCED_REDUNDANCY"];

/// The storage class of an object, from its stored headers.
pub fn storage_class(headers: &BTreeMap<String, String>) -> &'static str {
    match headers.get(STORAGE_CLASS_HEADER).map(String::as_str) {
        Some("REDUCED_REDUNDANCY") => "REDUCED_REDUNDANCY",
        _ => "STANDARD",
    }
}

impl Store {
    /// Assemble a store from already-opened sets.
    pub fn new(deployment_id: Uuid, sets: Vec<ErasureSet>) -> Store {
        let lock_stats = Arc::<crate::lock::LockStats>::default();
        let locker: Arc<dyn Locker> = Arc::new(crate::lock::Counted::new(
            Arc::new(LocalLocker::default()),
            lock_stats.clone(),
        ));
        let drives = sets.iter().flat_map(|s| s.drives.iter().cloned()).collect();
        let buckets = Arc::new(crate::bucket::BucketStore::new(drives, locker.clone()));
        let pools = vec![Pool {
            index: 0,
            id: Uuid::nil(),
            sets: 0..sets.len(),
            first_slot: 0,
            format: None,
        }];
        Store {
            buckets,
            deployment_id,
            pools,
            pool_states: parking_lot::RwLock::new(vec![PoolState::Active]),
            space: Mutex::new(None),
            locations: Default::default(),
            pools_changed: false,
            sets,
            locker,
            lock_stats,
            block_size: cairn_erasure::DEFAULT_BLOCK_SIZE,
            min_part_size: MIN_PART_SIZE,
            dangling_grace: DANGLING_GRACE,
            heal_queue: Arc::new(HealQueue::default()),
            rrs_parity: 1,
        }
    }

    /// Parity for REDUCED_REDUNDANCY objects (capped at each set's standard parity).
    pub fn with_rrs_parity(mut self, parity: usize) -> Store {
        self.rrs_parity = parity;
        self
    }

    /// The base parity of a new object in `set` with these stored headers.
    pub(crate) fn parity_for(&self, set: &ErasureSet, headers: &BTreeMap<String, String>) -> usize {
        match storage_class(headers) {
            "REDUCED_REDUNDANCY" => self.rrs_parity.min(set.parity),
            _ => set.parity,
        }
    }

    /// Use a different erasure block size for new objects (tests use small blocks).
    /// The locker every node shares (distributed: a quorum of lock tables).
    pub fn locker(&self) -> Arc<dyn Locker> {
        self.locker.clone()
    }

    /// How long this store's locks waited.
    pub fn lock_stats(&self) -> &crate::lock::LockStats {
        &self.lock_stats
    }

    /// Every drive slot of the deployment, in endpoint order.
    pub fn drive_slots(&self) -> Vec<Option<Arc<dyn Drive>>> {
        self.all_drives().cloned().collect()
    }

    pub fn with_block_size(mut self, block_size: usize) -> Store {
        self.block_size = block_size;
        self
    }

    /// Lower the multipart minimum part size (tests only; S3 requires 5 MiB).
    pub fn with_min_part_size(mut self, size: u64) -> Store {
        self.min_part_size = size;
        self
    }

    /// Change how old a copy without quorum must be before heal removes it.
    pub fn with_dangling_grace(mut self, grace: Duration) -> Store {
        self.dangling_grace = grace;
        self
    }

    pub fn with_locker(mut self, locker: Arc<dyn Locker>) -> Store {
        let locker: Arc<dyn Locker> =
            Arc::new(crate::lock::Counted::new(locker, self.lock_stats.clone()));
        self.buckets.set_locker(locker.clone());
        self.locker = locker;
        self
    }

    pub fn with_format(mut self, format: crate::placement::Format) -> Store {
        self.pools[0].id = format
            .sets
            .first()
            .and_then(|s| s.first())
            .copied()
            .unwrap_or_default();
        self.pools[0].format = Some(format);
        self
    }

    /// The pool holding flat drive slot `slot`, and the slot's index within the pool.
    fn pool_of_slot(&self, slot: usize) -> Option<(&Pool, usize)> {
        self.pools.iter().find_map(|p| {
            let drives: usize = self.sets[p.sets.clone()].iter().map(ErasureSet::size).sum();
            (p.first_slot..p.first_slot + drives)
                .contains(&slot)
                .then(|| (p, slot - p.first_slot))
        })
    }

    /// `format.json` for the drive at flat slot `slot` (set * size + position, sets of every
    /// pool in order).
    pub fn format_for_slot(&self, slot: usize) -> Option<crate::placement::Format> {
        let (pool, at) = self.pool_of_slot(slot)?;
        pool.format.as_ref().map(|f| f.for_slot(at))
    }

    /// `format.json` for a drive formatted into `slot` now, recording where its root sits.
    pub fn format_for_drive(
        &self,
        slot: usize,
        probe: &crate::drive::Probe,
    ) -> Option<crate::placement::Format> {
        let mut f = self.format_for_slot(slot)?;
        match probe.mount.clone().filter(|m| m.mount_point) {
            Some(m) => f.mounts.insert(f.drive_id, m),
            None => f.mounts.remove(&f.drive_id),
        };
        Some(f)
    }

    /// The drive at `slot` as an operator should read its state: what its node's probe
    /// says, with an unformatted drive of this deployment told apart as "not mounted"
    /// (formatted on a mount point that is not one now) or "format missing".
    pub fn drive_status(
        &self,
        slot: usize,
        probe: &crate::drive::Probe,
    ) -> crate::drive::DriveStatus {
        use crate::drive::{DriveStatus, OfflineReason};
        if probe.status != DriveStatus::Unformatted {
            return probe.status.clone();
        }
        let recorded = self.pool_of_slot(slot).and_then(|(pool, at)| {
            let f = pool.format.as_ref()?;
            let id = f.sets.iter().flatten().nth(at)?;
            f.mounts.get(id)
        });
        let mounted_now = probe.mount.as_ref().is_some_and(|m| m.mount_point);
        if recorded.is_some_and(|r| r.mount_point) && !mounted_now {
            DriveStatus::Offline(OfflineReason::NotMounted)
        } else {
            DriveStatus::Offline(OfflineReason::FormatMissing)
        }
    }

    /// Slot and drive serving `endpoint` (its name).
    pub fn drive_by_name(&self, endpoint: &str) -> Option<(usize, Arc<dyn Drive>)> {
        let mut first = 0;
        self.sets.iter().find_map(|set| {
            let at = first;
            first += set.size();
            set.drives.iter().enumerate().find_map(|(pos, d)| {
                d.as_ref()
                    .filter(|d| d.name() == endpoint)
                    .map(|d| (at + pos, d.clone()))
            })
        })
    }

    /// `cairn admin drive replace`: the operator says the unformatted, empty drive
    /// `endpoint` is a real replacement. It is formatted into its slot with a healing marker,
    /// and its node heals its set onto it (even when it is not a mount point).
    pub async fn replace_drive(&self, endpoint: &str) -> Result<(), ObjectError> {
        use crate::drive::DriveStatus;
        let (slot, d) = self
            .drive_by_name(endpoint)
            .ok_or_else(|| ObjectError::InvalidArgument(format!("no drive {endpoint}")))?;
        let probe = d
            .probe()
            .await
            .map_err(|e| ObjectError::InvalidArgument(format!("{endpoint}: {e}")))?;
        // Formatted on a mount point that is not one now: the bare mount point of a disk
        // that is not there, never a replacement.
        if let DriveStatus::Offline(crate::drive::OfflineReason::NotMounted) =
            self.drive_status(slot, &probe)
        {
            return Err(ObjectError::InvalidArgument(format!(
                "{endpoint} was formatted on a mount point and is not mounted: mount a disk there first"
            )));
        }
        match &probe.status {
            DriveStatus::Unformatted if probe.empty => {}
            DriveStatus::Unformatted => {
                return Err(ObjectError::InvalidArgument(format!(
                    "{endpoint} is not empty: only an empty drive can replace a lost one"
                )))
            }
            DriveStatus::Online => {
                return Err(ObjectError::InvalidArgument(format!(
                    "{endpoint} is formatted and online: nothing to replace"
                )))
            }
            DriveStatus::Offline(r) => {
                return Err(ObjectError::InvalidArgument(format!(
                    "{endpoint} is offline ({r}): mount or attach it first"
                )))
            }
        }
        let format = self
            .format_for_drive(slot, &probe)
            .ok_or_else(|| ObjectError::InvalidArgument("no deployment layout".into()))?;
        let marker = bytes::Bytes::from(format!("{{\"slot\":{slot}}}"));
        d.format(bytes::Bytes::from(format.encode()), Some(marker), false)
            .await
            .map_err(|e| ObjectError::InvalidArgument(format!("{endpoint}: {e}")))?;
        tracing::warn!(
            drive = endpoint,
            slot,
            "drive replaced by the operator: healing its set onto it"
        );
        Ok(())
    }

    pub fn deployment_id(&self) -> Uuid {
        self.deployment_id
    }

    pub fn sets(&self) -> &[ErasureSet] {
        &self.sets
    }

    /// The set `key` hashes to in `pool`.
    pub(crate) fn set_in_pool(&self, pool: usize, key: &str) -> &ErasureSet {
        &self.sets[self.set_index_in_pool(pool, key)]
    }

    /// Index (among every pool's sets) of the set `key` hashes to in `pool`.
    pub fn set_index_in_pool(&self, pool: usize, key: &str) -> usize {
        let p = &self.pools[pool.min(self.pools.len() - 1)];
        p.sets.start + crate::placement::set_for_key(&self.deployment_id, key, p.sets.len())
    }

    /// Would `key` live on set `set` if its pool held it?
    pub fn key_maps_to_set(&self, key: &str, set: usize) -> bool {
        self.sets
            .get(set)
            .is_some_and(|s| self.set_index_in_pool(s.pool, key) == set)
    }

    /// Every drive slot of every set.
    pub(crate) fn all_drives(&self) -> impl Iterator<Item = &Option<Arc<dyn Drive>>> {
        self.sets.iter().flat_map(|s| s.drives.iter())
    }

    /// True when every set has write quorum of online drives (for readiness probes).
    pub async fn has_write_quorum(&self) -> bool {
        self.has_quorum(Quorum::Write, false).await
    }

    /// True when every set has `quorum` of online drives; with `without_this_node`, not
    /// counting this node's own drives (may the node be taken down for maintenance?).
    pub async fn has_quorum(&self, quorum: Quorum, without_this_node: bool) -> bool {
        for set in &self.sets {
            let data = set.size() - set.parity;
            let need = match quorum {
                Quorum::Write => crate::placement::write_quorum(data, set.parity),
                Quorum::Read => data,
            };
            let infos = futures::future::join_all(set.drives.iter().map(|d| async move {
                match d {
                    Some(d) if !(without_this_node && d.is_local()) => d.disk_info().await.is_ok(),
                    _ => false,
                }
            }))
            .await;
            if infos.into_iter().filter(|ok| *ok).count() < need {
                return false;
            }
        }
        true
    }
}

/// Which quorum a health check asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// Enough drives to write (and read) every set.
    Write,
    /// Enough drives to read every set.
    Read,
}

/// Nanoseconds since the Unix epoch, now.
pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

pub use crate::api::valid_bucket_name;

/// Keys: 1..=1024 bytes of UTF-8 (guaranteed by `&str`), and storable on a drive.
pub fn check_key(key: &str) -> ObjectResult<()> {
    if key.is_empty() {
        return Err(ObjectError::InvalidKey("empty key"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ObjectError::KeyTooLong);
    }
    if crate::drive::path::object_dir(key).is_none() {
        return Err(ObjectError::InvalidKey(
            "a key segment between slashes is longer than 255 bytes",
        ));
    }
    Ok(())
}

pub(crate) fn check_bucket(bucket: &str) -> ObjectResult<()> {
    if valid_bucket_name(bucket) {
        Ok(())
    } else {
        Err(ObjectError::InvalidBucketName)
    }
}
