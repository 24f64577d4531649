//! Drives: the narrow I/O seam under the object layer.
//!
//! A [`Drive`] stores opaque files: object metadata, shard files and Cairn's own system
//! files. It knows nothing of erasure coding, quorum or S3. `LocalDrive` serves a directory;
//! `FaultyDrive` wraps any drive to inject errors, latency, torn writes and corrupted reads;
//! a remote drive over RPC will implement the same trait.

mod direct;
/// The most a shard file being written holds in memory (its O_DIRECT buffer, taken from a
/// shared pool only while one of its writes is in progress).
pub const SHARD_WRITE_BUFFER: usize = direct::STEADY;
pub mod fanout;
pub mod faulty;
pub mod heads;
pub mod listing;
pub mod local;
pub mod mount;
pub mod path;
pub mod sync;
pub mod timed;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;
use uuid::Uuid;

pub use faulty::{Fault, FaultyDrive};
pub use listing::{DirPage, DirQuery, MARKER_FLAG};
pub use local::LocalDrive;
pub use mount::MountRecord;
pub use timed::{IoStats, TimedDrive, Timeouts};

/// Directory (relative to the drive root) holding format.json, staging and internal state.
pub const SYS_DIR: &str = ".cairn.sys";
/// Staging area inside [`SYS_DIR`], swept at start.
pub const TMP_DIR: &str = "tmp";
/// Name of the format file inside [`SYS_DIR`].
pub const FORMAT_FILE: &str = "format.json";
/// Marker inside [`SYS_DIR`] of a drive formatted into a known slot and to be healed (the
/// replaced-drive heal's resumable tracker).
pub const HEALING_FILE: &str = "healing.json";

#[derive(Debug, Error)]
pub enum DriveError {
    #[error("not found")]
    NotFound,
    #[error("bucket not found")]
    BucketNotFound,
    #[error("bucket already exists")]
    BucketExists,
    #[error("bucket not empty")]
    BucketNotEmpty,
    #[error("name cannot be stored on this drive")]
    InvalidName,
    #[error("drive is offline: {0}")]
    Offline(String),
    #[error("drive is full")]
    Full,
    /// A call that did not finish within its deadline (the drive may be hung).
    #[error("drive call timed out: {0}")]
    TimedOut(String),
    /// A call that was not made or whose writer was gone (a bug or an earlier failure on
    /// the same stream): not evidence that the drive is offline.
    #[error("not done: {0}")]
    NotDone(&'static str),
    #[error("injected fault: {0}")]
    Injected(&'static str),
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for DriveError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => DriveError::NotFound,
            std::io::ErrorKind::StorageFull => DriveError::Full,
            std::io::ErrorKind::InvalidFilename => DriveError::InvalidName,
            _ => DriveError::Io(e),
        }
    }
}

impl DriveError {
    /// The same error again, for a second holder (I/O errors are not `Clone`: they come
    /// back as `Offline` with their message).
    pub fn again(&self) -> DriveError {
        match self {
            DriveError::NotFound => DriveError::NotFound,
            DriveError::BucketNotFound => DriveError::BucketNotFound,
            DriveError::Full => DriveError::Full,
            other => DriveError::Offline(other.to_string()),
        }
    }
}

pub type DriveResult<T> = Result<T, DriveError>;

/// Why a drive is offline, as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OfflineReason {
    /// The drive's root directory does not exist.
    RootMissing,
    /// The root was a mount point when formatted and is not one now.
    NotMounted,
    /// The root now holds another filesystem than the one formatted.
    DeviceChanged,
    /// A drive of this deployment lost its format.json, and is not an empty mount point
    /// (a freshly swapped disk): `cairn admin drive replace` tells Cairn it is a replacement.
    FormatMissing,
    /// Calls to the drive time out.
    TimingOut,
    /// Anything else: unreachable, I/O errors.
    Unreachable(String),
}

impl std::fmt::Display for OfflineReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfflineReason::RootMissing => f.write_str("root missing"),
            OfflineReason::NotMounted => f.write_str("not mounted"),
            OfflineReason::DeviceChanged => f.write_str("device changed"),
            OfflineReason::FormatMissing => f.write_str("format missing"),
            OfflineReason::TimingOut => f.write_str("timing out"),
            OfflineReason::Unreachable(m) => write!(f, "unreachable: {m}"),
        }
    }
}

/// A drive's state as its own node sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DriveStatus {
    /// Formatted and where it was formatted: serves every call.
    Online,
    /// The root is there and holds no format.json: it serves nothing but [`Drive::probe`]
    /// and [`Drive::format`] (whether it may be formatted is the caller's decision).
    Unformatted,
    Offline(OfflineReason),
}

/// What [`Drive::probe`] finds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Probe {
    pub status: DriveStatus,
    /// Where the root sits now (`None` when it is missing).
    pub mount: Option<MountRecord>,
    /// The root holds nothing (a fresh filesystem's `lost+found` aside).
    pub empty: bool,
}

impl Probe {
    /// An unformatted drive that is an empty mount point: a freshly swapped disk, which may
    /// be formatted into its slot and healed without an operator.
    pub fn is_fresh_disk(&self) -> bool {
        self.status == DriveStatus::Unformatted
            && self.empty
            && self.mount.as_ref().is_some_and(|m| m.mount_point)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskInfo {
    pub total: u64,
    pub free: u64,
    /// Free inodes (`None` where unknown: a remote drive, whose own node reports it).
    pub free_inodes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketEntry {
    pub name: String,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created: i64,
}

/// What [`Drive::read_entries`] finds for one key.
#[derive(Debug)]
pub struct Entry {
    pub meta: DriveResult<Bytes>,
    /// Keys exist below this one (`key/...`).
    pub has_children: bool,
    /// Data directories present in the object's directory (referenced or not).
    pub data_dirs: Vec<Uuid>,
}

/// A file a drive can read ranges of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// A file under the system directory, by a path Cairn generated.
    Sys(String),
    /// Shard file `part.N` of an object version's data directory.
    Part {
        bucket: String,
        key: String,
        data_dir: Uuid,
        part: u32,
    },
}

/// Data staged under the system directory to move into an object on commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedData {
    /// Directory under [`SYS_DIR`] holding the `part.N` files.
    pub from: String,
    /// Name of the version's data directory once committed.
    pub data_dir: Uuid,
}

/// What a [`Drive::put_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutVersion {
    /// The metadata file it replaced (to restore if the commit misses its quorum).
    pub previous: Option<Bytes>,
    /// The data directory of the version the new one replaced (same id), if it had one.
    pub replaced: Option<Uuid>,
    /// The new version's modification time as this drive stored it.
    pub mod_time: i64,
}

/// Streaming writer of one file; `finish` makes it durable (fsync).
#[async_trait]
pub trait FileWriter: Send {
    async fn write(&mut self, data: Bytes) -> DriveResult<()>;
    async fn finish(self: Box<Self>) -> DriveResult<()>;
}

/// The payload of a bitrot-framed chunk (`[hash][payload]`) of shard `shard`, chunk number
/// `chunk`, as a slice of `framed` (no copy), or the bitrot error when it does not match.
pub fn verified(framed: &Bytes, shard: usize, chunk: u64) -> Result<Bytes, cairn_erasure::Error> {
    cairn_erasure::bitrot::verify_framed(framed, shard, chunk).map(|p| framed.slice_ref(p))
}

#[async_trait]
pub trait Drive: Send + Sync + std::fmt::Debug {
    /// Endpoint label for logs and errors.
    fn name(&self) -> &str;
    /// True when the drive is attached to this node (heal of replaced drives, the partial-
    /// write queue's files and the drive monitor act on local drives only).
    fn is_local(&self) -> bool {
        true
    }
    /// The node a drive of another node is on (`host:port`): calls to drives of one node
    /// may share a request. `None` for a local drive.
    fn node(&self) -> Option<&str> {
        None
    }
    /// Known to be offline without asking it: its last probe failed, its calls time out,
    /// its node is down. A write counts such drives before it starts, to raise its parity.
    fn known_offline(&self) -> bool {
        false
    }
    /// What this drive's calls cost as seen from this node (a [`TimedDrive`] keeps them).
    fn io_stats(&self) -> Option<IoStats> {
        None
    }
    /// A counter the drive moves while it does long work a step at a time (a directory of
    /// a million entries read a batch at a time): a call past its deadline while it moves
    /// is busy, not hung ([`TimedDrive`]). `None`: the drive counts nothing.
    fn progress(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicU64>> {
        None
    }
    async fn disk_info(&self) -> DriveResult<DiskInfo>;

    /// Look at the drive afresh: is its root there, where it was formatted, formatted at
    /// all? Updates the state every other call is checked against (an offline or
    /// unformatted drive refuses them all).
    async fn probe(&self) -> DriveResult<Probe>;
    /// Lay out the system directory of an unformatted drive and write its `format` (and
    /// first, when given, the healing marker that makes its node heal its set onto it).
    /// The root is created only when `create_root` (a deployment formatted for the first
    /// time); a missing root is otherwise an offline drive, never a new one.
    async fn format(
        &self,
        format: Bytes,
        healing: Option<Bytes>,
        create_root: bool,
    ) -> DriveResult<()>;

    /// Read a whole file under the system directory.
    async fn read_sys(&self, path: &str) -> DriveResult<Bytes>;
    /// Atomically replace a file under the system directory (temp + fsync + rename).
    async fn write_sys(&self, path: &str, data: Bytes) -> DriveResult<()>;
    /// Create a staging file under the system directory for streaming writes. `finish`
    /// makes its contents durable; its name becomes durable only where it is moved to
    /// ([`Drive::rename_sys`] or the commit of [`Drive::write_meta`]), so staging
    /// directories are created without fsyncs.
    async fn create_sys_file(&self, path: &str) -> DriveResult<Box<dyn FileWriter>>;
    /// Rename within the system directory (replacing `to`).
    async fn rename_sys(&self, from: &str, to: &str) -> DriveResult<()>;
    /// Hard-link a file within the system directory (`to` must not exist): staging that
    /// leaves its source whole until the staged copy is committed.
    async fn link_sys(&self, from: &str, to: &str) -> DriveResult<()>;
    /// Remove a file or directory tree under the system directory (absent is fine).
    async fn delete_sys(&self, path: &str) -> DriveResult<()>;
    /// Names in a directory under the system directory, unordered.
    async fn list_sys(&self, dir: &str) -> DriveResult<Vec<String>>;

    async fn make_bucket(&self, bucket: &str, created: i64) -> DriveResult<()>;
    async fn list_buckets(&self) -> DriveResult<Vec<BucketEntry>>;
    /// Remove an empty bucket; `BucketNotEmpty` if it holds an object.
    async fn delete_bucket(&self, bucket: &str) -> DriveResult<()>;

    /// The metadata file of an object.
    async fn read_meta(&self, bucket: &str, key: &str) -> DriveResult<Bytes>;
    /// The leading bytes of an object's metadata file that hold its latest version
    /// ([`crate::meta::ObjectMeta::decode_head`] decodes them): what a read of the latest
    /// version needs, however many versions the key has. The whole file is a valid answer.
    async fn read_meta_head(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.read_meta(bucket, key).await
    }
    /// For several keys in one call (listings): each one's metadata file, and whether keys
    /// continue below it (`key/...`), so a listing need not look into leaf objects.
    async fn read_entries(&self, bucket: &str, keys: &[String]) -> DriveResult<Vec<Entry>>;
    /// [`Drive::read_entries`] for listings of latest versions: each `meta` may be only the
    /// file's head (as [`Drive::read_meta_head`]) and may leave out the latest version's
    /// inline data ([`crate::meta::listing_head`]: a listing shows no data), `data_dirs` may
    /// be left empty, and without `metas` the metadata need not be read at all (only
    /// `has_children` counts).
    async fn read_entry_heads(
        &self,
        bucket: &str,
        keys: &[String],
        metas: bool,
    ) -> DriveResult<Vec<Entry>> {
        let _ = metas;
        self.read_entries(bucket, keys).await
    }
    /// The commit step: move `staged` data into the object, then atomically replace its
    /// metadata with `meta` (or remove it when `None`). Returns the previous metadata.
    async fn write_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: Option<Bytes>,
        staged: Option<StagedData>,
    ) -> DriveResult<Option<Bytes>>;
    /// The commit step of a new latest version: merge `version` into the metadata this
    /// drive holds for the key ([`ObjectMeta::put_latest`]: its modification time raised
    /// past the newest there), move `staged` data in and write it, as [`Drive::write_meta`]
    /// does. The caller holds the key's write lock. A local drive reads and writes in one
    /// step; this default asks [`Drive::read_meta`], then [`Drive::write_meta`].
    ///
    /// [`ObjectMeta::put_latest`]: crate::meta::ObjectMeta::put_latest
    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        version: crate::meta::Version,
        staged: Option<StagedData>,
    ) -> DriveResult<PutVersion> {
        let current = match self.read_meta(bucket, key).await {
            Ok(b) => Some(b),
            Err(DriveError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let merged = crate::meta::ObjectMeta::put_latest(current.as_deref(), version);
        let previous = self
            .write_meta(bucket, key, Some(Bytes::from(merged.meta)), staged)
            .await?;
        Ok(PutVersion {
            previous,
            replaced: merged.replaced,
            mod_time: merged.mod_time,
        })
    }
    /// Remove a version's data directory (and the object's directory once empty).
    async fn delete_data_dir(&self, bucket: &str, key: &str, data_dir: Uuid) -> DriveResult<()>;
    /// Size of a file in bytes.
    async fn file_size(&self, file: &FileRef) -> DriveResult<u64>;
    /// Read `len` bytes at `offset` of a file; short files are an error.
    async fn read_file(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes>;
    /// Read one bitrot-framed chunk (`[hash][payload]`, `len` bytes at `offset`) of shard
    /// `shard`, chunk number `chunk`, and verify it: its payload, or the bitrot error when
    /// the bytes were read but do not match their hash. A drive may verify where it reads:
    /// the local drive hashes on its I/O thread while the bytes are still in the cache.
    async fn read_chunk(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
        shard: usize,
        chunk: u64,
    ) -> DriveResult<Result<Bytes, cairn_erasure::Error>> {
        let framed = self.read_file(file, offset, len).await?;
        Ok(verified(&framed, shard, chunk))
    }
    /// [`Drive::read_chunk`] without the bitrot check: the framed chunk (`len` bytes at
    /// `offset`) as read, for a reader that authenticates the payload itself (the packages
    /// of an encrypted object) and reads again with [`Drive::read_chunk`] when that fails.
    async fn read_chunk_unchecked(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
    ) -> DriveResult<Bytes> {
        self.read_file(file, offset, len).await
    }
    /// The key components directly under `prefix` (which is empty or ends in `/`) that the
    /// query selects: the smallest wanted names, sorted.
    async fn list_dir(&self, bucket: &str, prefix: &str, query: &DirQuery) -> DriveResult<DirPage>;
}
