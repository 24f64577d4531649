//! A drive over a local directory.
//!
//! Layout (see docs/format.md):
//! ```text
//! <root>/.cairn.sys/format.json      deployment, drive id, layout
//! <root>/.cairn.sys/tmp/             staging, swept at start
//! <root>/.cairn.sys/multipart/<id>/  multipart uploads in progress
//! <root>/<bucket>/@bucket            bucket metadata
//! <root>/<bucket>/<escaped key components...>/@meta          object metadata
//! <root>/<bucket>/<escaped key components...>/@<uuid>/part.N shard files
//! ```
//! Every write is atomic: staged under `.cairn.sys/tmp`, made durable, renamed into place,
//! and the rename made durable — by fsyncs of each file and directory, or by the shared
//! `syncfs` epochs of group commit ([`super::sync`]).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rustix::fs::{Mode, OFlags};
use uuid::Uuid;

use super::heads::HeadCache;
use super::listing::{Change, DirCache, DirStamp, Gathered, Listed, MARKER_FLAG};
use super::mount::{self, MountRecord};
use super::path::{self, BUCKET_META_FILE, DATA_DIR_PREFIX, META_FILE};
use super::sync::{Barrier, Coming, SyncMode};
use super::{
    BucketEntry, DirPage, DirQuery, DiskInfo, Drive, DriveError, DriveResult, DriveStatus, Entry,
    FileRef, FileWriter, OfflineReason, Probe, PutVersion, StagedData, FORMAT_FILE, SYS_DIR,
    TMP_DIR,
};

/// Named points of the commit sequence where tests can simulate a crash: in unit tests as
/// an error return ([`LocalDrive::crash_at`]), in the real server as an abort
/// ([`crate::crash`]).
pub mod crash {
    pub use crate::crash::{
        DRIVE_DATA_RENAMED as AFTER_DATA_RENAME, DRIVE_DIRS as AFTER_DIRS,
        DRIVE_META_RENAMED as AFTER_META_RENAME, DRIVE_META_STAGED as AFTER_META_STAGED,
    };
    pub const ALL: [&str; 4] = [
        AFTER_DIRS,
        AFTER_DATA_RENAME,
        AFTER_META_STAGED,
        AFTER_META_RENAME,
    ];
}

/// Cheap to clone: blocking tasks take their own handle on the same drive.
#[derive(Debug, Clone)]
pub struct LocalDrive {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub struct Inner {
    root: PathBuf,
    name: String,
    /// `status == Online`, read on every call without a lock.
    online: std::sync::atomic::AtomicBool,
    /// What the last probe found.
    status: parking_lot::Mutex<DriveStatus>,
    /// Where the root sat when it was formatted, from the last format.json read: lets a
    /// drive unmounted while running be told from an empty folder.
    recorded: parking_lot::Mutex<Option<MountRecord>>,
    /// One probe at a time: a probe that brings the drive online sweeps staging, which
    /// must not take another probe's write-test file from under it.
    probing: parking_lot::Mutex<()>,
    /// In-flight blocking calls ([`MAX_IN_FLIGHT`]).
    slots: Arc<tokio::sync::Semaphore>,
    /// Sorted names of large, settled directories (listing pages of huge buckets).
    dir_cache: DirCache,
    /// Heads of keys' metadata read by listings, kept while their directories are unchanged.
    heads: HeadCache,
    /// Sectors the kernel read per key for recent listing entry reads, a moving average in
    /// 1/1024ths ([`entry_ways`]).
    entry_sectors: std::sync::atomic::AtomicU64,
    /// Tests: blocking calls made by listing entry reads.
    #[cfg(test)]
    entry_calls: std::sync::atomic::AtomicU64,
    /// Moves every [`PROGRESS_STEP`] entries of a directory read ([`Drive::progress`]).
    progress: Arc<std::sync::atomic::AtomicU64>,
    /// Serialises the checks and changes of delete-marker flags ([`MARKER_FLAG`]) against
    /// one another: "no key below, so set the flag" must not interleave with "a key below
    /// was created, so clear the flag".
    flags: parking_lot::Mutex<()>,
    /// How writes are made durable.
    sync: SyncMode,
    /// The group-commit barrier of the root's filesystem, found at the first commit after
    /// the drive came online.
    barrier: parking_lot::Mutex<Option<Arc<Barrier>>>,
    #[cfg(test)]
    crash_at: parking_lot::Mutex<Option<&'static str>>,
    /// Tests: sync epochs waited for ([`LocalDrive::barrier`]).
    #[cfg(test)]
    barriers: std::sync::atomic::AtomicU64,
}

impl std::ops::Deref for LocalDrive {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// Directory entries read between two moves of the drive's progress counter.
const PROGRESS_STEP: usize = 4096;

/// Most blocking calls one drive may have in flight: a hung disk holds at most this many
/// threads of the blocking pool (calls past it wait for a slot, under their deadline).
pub const MAX_IN_FLIGHT: usize = 32;

thread_local! {
    /// Set while a thread runs a drive call for [`blocking`]: file system calls that may
    /// block on a hung drive belong there, never on the runtime's own threads.
    static ON_DRIVE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` on the blocking pool holding one of the drive's in-flight slots until it returns
/// (even when the caller gave up waiting on it).
async fn blocking<T: Send + 'static>(
    slots: &Arc<tokio::sync::Semaphore>,
    f: impl FnOnce() -> DriveResult<T> + Send + 'static,
) -> DriveResult<T> {
    let permit = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| DriveError::Offline("drive closed".into()))?;
    tokio::task::spawn_blocking(move || {
        let _slot = permit;
        ON_DRIVE_THREAD.set(true);
        let r = f();
        ON_DRIVE_THREAD.set(false);
        r
    })
    .await
    .map_err(|e| DriveError::Io(std::io::Error::other(e.to_string())))?
}

/// `len` bytes at `offset` of the file at `p`; a short file is an error.
fn read_exact_at(p: &Path, offset: u64, len: usize) -> DriveResult<Vec<u8>> {
    let f = File::open(p)?;
    // Read into uninitialised capacity: zeroing a shard-sized buffer first cost as much as
    // a copy of it.
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let before = buf.len();
        let at = offset + before as u64;
        rustix::io::pread(&f, rustix::buffer::spare_capacity(&mut buf), at)
            .map_err(std::io::Error::from)?;
        if buf.len() == before {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Blocking calls a listing's entry reads of one batch are split among while the drive's
/// reads go to the device: the VM disk these were measured on served ~20,000 random 4 KiB
/// reads a second one at a time, ~40,000 four at a time, ~50,000 at sixteen; keys read cold
/// from three folders on it, one thread per folder against eight: 218 against 99 µs per key
/// (docs/benchmarks.md, session 42).
pub const ENTRY_WAYS: usize = 8;
/// Fewest keys worth a call of their own.
const ENTRY_MIN_PER_CALL: usize = 16;
/// The drive's reads are taken to go to the device while its listing entry reads made the
/// kernel read at least this many 512-byte sectors per key, on a moving average kept in
/// 1/1024ths (a key read from memory reads none; one whose inode or metadata file left the
/// page cache, 8 or more). Counted per thread by the kernel (`getrusage(RUSAGE_THREAD)`),
/// so neither a busy CPU nor another thread's reads are mistaken for it; a kernel that
/// does not count leaves every batch one call, as before.
const ENTRY_COLD_SECTORS: u64 = 2 << 10;

/// How many blocking calls `n` keys' entries are read with, given the drive's recent
/// sectors read per key (in 1/1024ths) and its free in-flight slots (at most half of them,
/// so that a cold listing leaves room for the drive's other calls).
pub(crate) fn entry_ways(n: usize, sectors: u64, free_slots: usize) -> usize {
    if sectors < ENTRY_COLD_SECTORS {
        return 1;
    }
    (n / ENTRY_MIN_PER_CALL)
        .min(ENTRY_WAYS)
        .min(free_slots / 2)
        .max(1)
}

/// Sectors (512 bytes) the kernel read from a device for the calling thread so far.
fn thread_sectors_read() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD)
        .ok()
        .and_then(|u| u64::try_from(u.block_reads()).ok())
        .unwrap_or(0)
}

/// Largest file [`read_cached`] reads on the caller's thread (metadata is usually a few KiB).
const CACHED_READ_MAX: u64 = 256 << 10;

/// A whole small file, when the kernel can serve it from its caches without waiting for any
/// I/O: the path lookup from the dentry cache (`RESOLVE_CACHED`) and the bytes from the page
/// cache (`RWF_NOWAIT`); either refuses with `EAGAIN` rather than block. `None` otherwise —
/// not cached, too large, or any error, which the blocking path then meets and reports.
///
/// This lets an async task read hot metadata itself: the round trip through the blocking
/// pool (a thread wake-up there and one back for each drive) was most of a small GET's cost.
fn read_cached(file: &Path) -> Option<Vec<u8>> {
    let (f, size) = open_cached(file)?;
    if size > CACHED_READ_MAX {
        return None;
    }
    pread_upto(&f, 0, size, true).ok().flatten()
}

/// A file opened only if its path resolves from the dentry cache, and its size.
fn open_cached(file: &Path) -> Option<(File, u64)> {
    use rustix::fs::{fstat, openat2, Mode, OFlags, ResolveFlags, CWD};
    let fd = openat2(
        CWD,
        file,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::CACHED,
    )
    .ok()?;
    let size = u64::try_from(fstat(&fd).ok()?.st_size).ok()?;
    Some((File::from(fd), size))
}

/// How much of a metadata file a head read takes first: a format-2 head (the latest
/// version, inline data included) almost always fits.
const HEAD_READ: u64 = 4096;

/// `len` bytes at `offset` (fewer at the end of the file). With `nowait`, only from the page
/// cache: `None` when that would block or returns short.
fn pread_upto(f: &File, offset: u64, len: u64, nowait: bool) -> std::io::Result<Option<Vec<u8>>> {
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("read too large"))?;
    let mut buf = vec![0u8; len];
    let Some(got) = pread_into(f, offset, &mut buf, nowait)? else {
        return Ok(None);
    };
    buf.truncate(got);
    Ok(Some(buf))
}

/// One read from the start of `f` into `buf`; `None` when `nowait` and the page cache
/// cannot answer it whole.
fn pread_once(f: &File, buf: &mut [u8], nowait: bool) -> std::io::Result<Option<usize>> {
    use rustix::io::{preadv2, ReadWriteFlags};
    let flags = if nowait {
        ReadWriteFlags::NOWAIT
    } else {
        ReadWriteFlags::empty()
    };
    loop {
        match preadv2(f, &mut [std::io::IoSliceMut::new(buf)], 0, flags) {
            Ok(n) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) if nowait => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fills `buf` from `offset` until it is full or the file ends; how much was read. With
/// `nowait`, anything short of the page cache's answer is `None`.
fn pread_into(
    f: &File,
    offset: u64,
    buf: &mut [u8],
    nowait: bool,
) -> std::io::Result<Option<usize>> {
    use rustix::io::{preadv2, ReadWriteFlags};
    let flags = if nowait {
        ReadWriteFlags::NOWAIT
    } else {
        ReadWriteFlags::empty()
    };
    let mut got = 0;
    while got < buf.len() {
        let n = match preadv2(
            f,
            &mut [std::io::IoSliceMut::new(&mut buf[got..])],
            offset + got as u64,
            flags,
        ) {
            Ok(n) => n,
            Err(_) if nowait => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        got += n;
        if nowait && got < buf.len() {
            return Ok(None);
        }
    }
    Ok(Some(got))
}

/// The leading bytes of an open metadata file of `size` bytes (`u64::MAX`: unknown) that hold its checked head
/// ([`crate::meta::head_len`]); the whole file for format 1 (which has no separate head).
/// `None` only with `nowait`, when the page cache cannot serve it.
fn meta_head(f: &File, size: u64, nowait: bool) -> std::io::Result<Option<Vec<u8>>> {
    // The first read goes to the stack: listings read thousands of heads of a few hundred
    // bytes each, and a zeroed 4 KiB allocation per head costs more than the copy out.
    let mut stack = [0u8; HEAD_READ as usize];
    let first_len = size.min(HEAD_READ) as usize;
    // One read: a regular file reads short only at its end, so a short answer is the whole
    // file (asking again to see the end would double the reads of a listing).
    let Some(mut have) = pread_once(f, &mut stack[..first_len], nowait)? else {
        return Ok(None);
    };
    if have < first_len && size != u64::MAX {
        // Shorter than the size it was opened with: only the page cache can do that.
        let Some(more) = pread_into(f, have as u64, &mut stack[have..first_len], nowait)? else {
            return Ok(None);
        };
        have += more;
    }
    let first = &stack[..have];
    let have = have as u64;
    // Size unknown (`u64::MAX`): a short first read was the whole file, else ask.
    let size = match size {
        u64::MAX if have < HEAD_READ => have,
        u64::MAX => f.metadata()?.len(),
        known => known,
    };
    let want = match crate::meta::head_len(first) {
        // A length past the end is the decoder's to report (truncated), not a read's.
        Some(n) => (n as u64).min(size),
        None if nowait && size > CACHED_READ_MAX => return Ok(None),
        None => size,
    };
    if want <= have {
        return Ok(Some(first[..want as usize].to_vec()));
    }
    let Some(rest) = pread_upto(f, have, want - have, nowait)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(first.len() + rest.len());
    out.extend_from_slice(first);
    out.extend_from_slice(&rest);
    Ok(Some(out))
}

/// [`meta_head`] from the caches only, like [`read_cached`].
fn read_head_cached(file: &Path) -> Option<Vec<u8>> {
    let (f, size) = open_cached(file)?;
    meta_head(&f, size, true).ok().flatten()
}

/// Largest metadata file a fresh commit names in the epoch that writes it ([`Staged::fresh`]):
/// one block of the usual filesystems, written whole or not at all (a file of several
/// blocks could keep some and not others: neither old nor new).
const FRESH_META_MAX: usize = 4096;

/// A metadata file's bytes as the drive answers them: a file a power loss left without its
/// content is no file ([`crate::meta::never_written`]).
fn written_meta(bytes: Vec<u8>) -> DriveResult<Bytes> {
    if crate::meta::never_written(&bytes) {
        return Err(DriveError::NotFound);
    }
    Ok(Bytes::from(bytes))
}

fn fsync_dir(dir: &Path) -> DriveResult<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// `create_dir_all` that fsyncs the parent of every directory it creates, never creating
/// anything above `base` (which must exist).
fn create_dirs_durable(base: &Path, rel: &Path) -> DriveResult<()> {
    for parent in create_dirs(base, rel)? {
        fsync_dir(&parent)?;
    }
    Ok(())
}

/// `create_dir_all` below `base` (which must exist) without fsyncs; returns the parents of
/// the directories it created.
fn create_dirs(base: &Path, rel: &Path) -> DriveResult<Vec<PathBuf>> {
    let mut cur = base.to_path_buf();
    let mut created = Vec::new();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        match fs::create_dir(&cur) {
            Ok(()) => created.push(parent),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(created)
}

/// The key component a directory entry named as a delete-marker flag stands for.
fn flagged_key(entry: &str) -> Option<String> {
    entry
        .strip_prefix(MARKER_FLAG)
        .and_then(path::decode_component)
}

/// A sys path must be relative, made of plain components: Cairn generates them, but a bug
/// must not turn into a write outside the drive.
fn check_sys_path(p: &str) -> DriveResult<()> {
    let ok = !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(DriveError::InvalidName)
    }
}

/// The part of format.json a drive reads itself: its id and where roots were formatted.
#[derive(serde::Deserialize)]
struct FormatMounts {
    drive_id: Uuid,
    #[serde(default)]
    mounts: std::collections::BTreeMap<Uuid, MountRecord>,
}

impl LocalDrive {
    /// Open a drive directory. Nothing is created: a missing root is an offline drive (only
    /// [`Drive::format`] of a fresh deployment creates it), an unformatted one serves
    /// nothing until formatted. Staging leftovers of a formatted drive are swept.
    pub fn open(root: impl Into<PathBuf>) -> LocalDrive {
        let root: PathBuf = root.into();
        let name = root.display().to_string();
        LocalDrive::open_named(root, name)
    }

    /// Open a drive that logs and reports itself as `name` (its endpoint URL in a cluster).
    pub fn open_named(root: impl Into<PathBuf>, name: String) -> LocalDrive {
        let root: PathBuf = root.into();
        let drive = LocalDrive {
            inner: Arc::new(Inner {
                name,
                root,
                online: std::sync::atomic::AtomicBool::new(false),
                status: parking_lot::Mutex::new(DriveStatus::Offline(OfflineReason::RootMissing)),
                recorded: parking_lot::Mutex::new(None),
                probing: parking_lot::Mutex::new(()),
                slots: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
                dir_cache: DirCache::default(),
                heads: HeadCache::default(),
                entry_sectors: std::sync::atomic::AtomicU64::new(0),
                #[cfg(test)]
                entry_calls: std::sync::atomic::AtomicU64::new(0),
                progress: Arc::default(),
                flags: parking_lot::Mutex::new(()),
                sync: SyncMode::current(),
                barrier: parking_lot::Mutex::new(None),
                #[cfg(test)]
                crash_at: parking_lot::Mutex::new(None),
                #[cfg(test)]
                barriers: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        let probe = drive.probe_blocking();
        if probe.status != DriveStatus::Online {
            tracing::warn!(drive = %drive.name, status = ?probe.status, "drive not online");
        }
        drive
    }

    /// What the drive is now (see [`Drive::probe`]); a drive coming online has its staging
    /// swept first.
    fn probe_blocking(&self) -> Probe {
        let _one = self.probing.lock();
        let (status, mount, empty) = self.look();
        let was_online = self.online.load(std::sync::atomic::Ordering::Acquire);
        if status == DriveStatus::Online && !was_online {
            *self.barrier.lock() = None;
            // Possibly another disk now: nothing read from the old one is served.
            self.heads.clear();
            if let Err(e) = self.sweep_tmp() {
                tracing::warn!(drive = %self.name, error = %e, "cannot sweep staging");
            }
        }
        if status != DriveStatus::Online && was_online {
            tracing::warn!(drive = %self.name, status = ?status, "drive went offline");
        } else if status == DriveStatus::Online && !was_online {
            tracing::info!(drive = %self.name, "drive online");
        }
        *self.status.lock() = status.clone();
        self.online.store(
            status == DriveStatus::Online,
            std::sync::atomic::Ordering::Release,
        );
        Probe {
            status,
            mount,
            empty,
        }
    }

    fn look(&self) -> (DriveStatus, Option<MountRecord>, bool) {
        let offline = |r| (DriveStatus::Offline(r), None, false);
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return offline(OfflineReason::Unreachable(
                    "the drive root is not a directory".into(),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return offline(OfflineReason::RootMissing)
            }
            Err(e) => return offline(OfflineReason::Unreachable(e.to_string())),
        }
        let now = match mount::identify(&self.root) {
            Ok(m) => m,
            Err(e) => return offline(OfflineReason::Unreachable(e.to_string())),
        };
        let status = match fs::read(self.root.join(SYS_DIR).join(FORMAT_FILE)) {
            Ok(bytes) => {
                let own = serde_json::from_slice::<FormatMounts>(&bytes)
                    .ok()
                    .and_then(|f| f.mounts.get(&f.drive_id).cloned());
                let status = match &own {
                    Some(r) if r.mount_point && !now.mount_point => {
                        DriveStatus::Offline(OfflineReason::NotMounted)
                    }
                    Some(MountRecord {
                        fs_uuid: Some(was), ..
                    }) if now.fs_uuid.as_ref().is_some_and(|u| u != was) => {
                        DriveStatus::Offline(OfflineReason::DeviceChanged)
                    }
                    _ => self.write_test(),
                };
                *self.recorded.lock() = own;
                status
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Formatted on a mount point, seen while running, and the mount is gone:
                // what is left is the bare mount point, not a new disk.
                let was_mounted = self.recorded.lock().as_ref().is_some_and(|r| r.mount_point);
                if was_mounted && !now.mount_point {
                    DriveStatus::Offline(OfflineReason::NotMounted)
                } else {
                    DriveStatus::Unformatted
                }
            }
            Err(e) => DriveStatus::Offline(OfflineReason::Unreachable(e.to_string())),
        };
        // Only an unformatted drive's emptiness matters (is it a fresh disk?).
        let empty =
            status == DriveStatus::Unformatted && mount::is_empty_dir(&self.root).unwrap_or(false);
        (status, Some(now), empty)
    }

    /// Can the drive still take a write? A small synced file in staging: a disk that hangs
    /// on writes hangs here (the probe's deadline then marks it offline), one that went
    /// read-only fails. A full disk is still online: it serves reads.
    fn write_test(&self) -> DriveStatus {
        let p = self.tmp_path();
        let r = (|| -> std::io::Result<()> {
            let mut f = File::create(&p)?;
            f.write_all(b"probe")?;
            f.sync_all()?;
            fs::remove_file(&p)
        })();
        match r {
            Ok(()) => DriveStatus::Online,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                let _ = fs::remove_file(&p);
                DriveStatus::Online
            }
            Err(e) => {
                let _ = fs::remove_file(&p);
                DriveStatus::Offline(OfflineReason::Unreachable(format!(
                    "write test failed: {e}"
                )))
            }
        }
    }

    /// Every call but `probe` and `format` is refused unless the last probe found the drive
    /// online: nothing is written to a drive that is not there.
    fn usable(&self) -> DriveResult<()> {
        if self.online.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let status = self.status.lock().clone();
        Err(DriveError::Offline(match status {
            DriveStatus::Offline(r) => format!("{}: {r}", self.name),
            _ => format!("{}: not formatted", self.name),
        }))
    }

    fn format_blocking(
        &self,
        format: &[u8],
        healing: Option<&[u8]>,
        create_root: bool,
    ) -> DriveResult<()> {
        if !self.root.is_dir() {
            if !create_root {
                return Err(DriveError::Offline(format!(
                    "{}: {}",
                    self.name,
                    OfflineReason::RootMissing
                )));
            }
            fs::create_dir_all(&self.root)?;
            if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(parent)?;
            }
        }
        match self.probe_blocking().status {
            DriveStatus::Unformatted => {}
            DriveStatus::Online => {
                return Err(DriveError::Offline(format!(
                    "{}: already formatted",
                    self.name
                )))
            }
            DriveStatus::Offline(r) => {
                return Err(DriveError::Offline(format!("{}: {r}", self.name)))
            }
        }
        create_dirs_durable(&self.root, Path::new(SYS_DIR).join(TMP_DIR).as_path())?;
        crate::crash::point(crate::crash::FORMAT_DIRS);
        let sys = self.root.join(SYS_DIR);
        if let Some(marker) = healing {
            self.stage_file(marker)?
                .place(&sys.join(super::HEALING_FILE))?;
        }
        self.stage_file(format)?.place(&sys.join(FORMAT_FILE))?;
        fsync_dir(&sys)?;
        crate::crash::point(crate::crash::FORMAT_WRITTEN);
        let status = self.probe_blocking().status;
        if status != DriveStatus::Online {
            return Err(DriveError::Offline(format!(
                "{}: {status:?} after formatting",
                self.name
            )));
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Give a system file a new name with `op` (rename or hard link), creating the target's
    /// directories, and make the name durable.
    async fn place_sys(
        &self,
        from: &str,
        to: &str,
        op: fn(&Path, &Path) -> std::io::Result<()>,
    ) -> DriveResult<()> {
        self.usable()?;
        let (from, to) = (self.sys_path(from)?, self.sys_path(to)?);
        let sys = self.root.join(SYS_DIR);
        // The file's content is durable before its new name can be.
        self.barrier().await?;
        let this = self.clone();
        blocking(&self.slots, move || {
            let parent = to.parent().ok_or(DriveError::InvalidName)?;
            this.create_dirs_settled(&sys, parent.strip_prefix(&sys).unwrap_or(Path::new("")))?;
            op(&from, &to)?;
            this.settle_dir(parent)
        })
        .await?;
        self.barrier().await
    }

    fn sweep_tmp(&self) -> DriveResult<()> {
        let tmp = self.root.join(SYS_DIR).join(TMP_DIR);
        for entry in fs::read_dir(&tmp)? {
            let p = entry?.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        Ok(())
    }

    /// Tests: how many sync epochs this drive's writes have waited for.
    #[cfg(test)]
    pub fn barriers_waited(&self) -> u64 {
        self.barriers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Arm a crash point: the next commit stops there with an error, leaving the drive as a
    /// crash would.
    #[cfg(test)]
    pub fn crash_at(&self, point: Option<&'static str>) {
        *self.crash_at.lock() = point;
    }

    fn sys_path(&self, p: &str) -> DriveResult<PathBuf> {
        check_sys_path(p)?;
        Ok(self.root.join(SYS_DIR).join(p))
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join(SYS_DIR)
            .join(TMP_DIR)
            .join(Uuid::new_v4().to_string())
    }

    fn bucket_path(&self, bucket: &str) -> DriveResult<PathBuf> {
        if bucket.is_empty() || bucket.starts_with('.') || bucket.contains('/') {
            return Err(DriveError::InvalidName);
        }
        Ok(self.root.join(bucket))
    }

    fn object_path(&self, bucket: &str, key: &str) -> DriveResult<(PathBuf, PathBuf)> {
        let b = self.bucket_path(bucket)?;
        let rel = path::object_dir(key).ok_or(DriveError::InvalidName)?;
        Ok((b, rel))
    }

    /// `BucketNotFound` when the bucket directory is missing — unless the drive itself is
    /// gone (its system directory vanished with it), which is `Offline`: a lost drive must
    /// never vote that a bucket does not exist.
    fn bucket_must_exist(b: &Path) -> DriveResult<()> {
        match fs::metadata(b) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(DriveError::BucketNotFound),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let root = b.parent().unwrap_or(Path::new("/"));
                if root.join(SYS_DIR).is_dir() {
                    Err(DriveError::BucketNotFound)
                } else {
                    Err(DriveError::Offline(format!(
                        "{} is not available",
                        root.display()
                    )))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn crash_point(&self, point: &'static str) -> DriveResult<()> {
        crate::crash::point(point);
        #[cfg(test)]
        if *self.crash_at.lock() == Some(point) {
            return Err(DriveError::Injected(point));
        }
        Ok(())
    }

    /// Make a written file durable now, or leave it to the next barrier (group commit).
    fn settle_file(&self, f: &File) -> DriveResult<()> {
        if self.sync == SyncMode::Fsync {
            f.sync_all()?;
        }
        Ok(())
    }

    /// Make a directory's changed entries durable now, or leave them to the next barrier.
    fn settle_dir(&self, dir: &Path) -> DriveResult<()> {
        if self.sync == SyncMode::Fsync {
            fsync_dir(dir)?;
        }
        Ok(())
    }

    /// [`create_dirs`] with each new directory's entry settled.
    fn create_dirs_settled(&self, base: &Path, rel: &Path) -> DriveResult<()> {
        for parent in create_dirs(base, rel)? {
            self.settle_dir(&parent)?;
        }
        Ok(())
    }

    /// This drive's group-commit barrier (group mode only).
    fn group_barrier(&self) -> DriveResult<Option<Arc<Barrier>>> {
        if self.sync != SyncMode::Group {
            return Ok(None);
        }
        let mut cached = self.barrier.lock();
        if let Some(b) = cached.as_ref() {
            return Ok(Some(b.clone()));
        }
        let b = Barrier::of(&self.root)?;
        *cached = Some(b.clone());
        Ok(Some(b))
    }

    fn barrier_failed(&self, e: std::io::Error) -> DriveError {
        // The filesystem may have changed under the root: find it again next time.
        *self.barrier.lock() = None;
        e.into()
    }

    /// Every write settled before this call is durable when it returns: a `syncfs` epoch
    /// of the root's filesystem in group mode, nothing to wait for otherwise.
    async fn barrier(&self) -> DriveResult<()> {
        self.barrier_after(None).await
    }

    /// Announce a barrier this drive will ask for once the filesystem work at hand is done
    /// ([`Barrier::expect`]): the epoch waits for it, so the drives of one upload on a
    /// filesystem share their epochs. `None` outside group mode.
    fn expect_barrier(&self) -> DriveResult<Option<Coming>> {
        Ok(self.group_barrier()?.map(|b| b.expect()))
    }

    /// [`LocalDrive::barrier`] for a commit that announced it ([`LocalDrive::expect_barrier`]).
    async fn barrier_after(&self, coming: Option<Coming>) -> DriveResult<()> {
        #[cfg(test)]
        self.barriers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(b) = self.group_barrier()? else {
            return Ok(());
        };
        // An announcement made to another filesystem (the drive came back on another one
        // meanwhile) does not count: sync the one it is on now.
        match coming.filter(|c| c.barrier_is(&b)) {
            Some(c) => c.wait().await,
            None => b.wait().await,
        }
        .map_err(|e| self.barrier_failed(e))
    }

    /// [`LocalDrive::barrier`] on a blocking thread.
    fn barrier_blocking(&self) -> DriveResult<()> {
        match self.group_barrier()? {
            Some(b) => b.wait_blocking().map_err(|e| self.barrier_failed(e)),
            None => Ok(()),
        }
    }

    /// Write `data` to a fresh temp file, settled, and return it (removed unless placed). A
    /// missing staging directory is a drive that is gone (unmounted, say), never one to lay
    /// out again.
    fn stage_file(&self, data: &[u8]) -> DriveResult<StagedFile> {
        let tmp = self.tmp_path();
        let mut f = match File::create(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DriveError::Offline(format!(
                    "{}: staging directory missing",
                    self.name
                )))
            }
            Err(e) => return Err(e.into()),
        };
        // A file that could not be written whole (a full drive, an I/O error) goes at once:
        // callers retry, and each try would leave one more behind until a restart.
        let staged = StagedFile {
            path: Some(tmp),
            slots: self.slots.clone(),
        };
        f.write_all(data)?;
        self.settle_file(&f)?;
        Ok(staged)
    }

    /// Remove empty directories from `dir` up to (not including) `stop`.
    fn prune_empty(&self, dir: &Path, stop: &Path) {
        let mut cur = dir.to_path_buf();
        while cur != stop && cur.starts_with(stop) {
            let Some(parent) = cur.parent() else {
                break;
            };
            // Not empty (or gone already): nothing changed, and nothing above is empty.
            let rmdir = || match fs::remove_dir(&cur) {
                Ok(()) => Ok(true),
                Err(e)
                    if e.kind() == std::io::ErrorKind::NotFound
                        || e.kind() == std::io::ErrorKind::DirectoryNotEmpty =>
                {
                    Ok(false)
                }
                Err(e) => Err(e),
            };
            if !matches!(self.key_dir_change(parent, &cur, false, rmdir), Ok(true)) {
                break;
            }
            let _ = self.settle_dir(parent);
            cur = parent.to_path_buf();
        }
    }

    /// Make (`made`) or remove the key directory `path` in `parent` with `op`, told to the
    /// listing cache.
    fn key_dir_change(
        &self,
        parent: &Path,
        path: &Path,
        made: bool,
        op: impl FnOnce() -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        // `parent` may be a key's directory, whose keys below change.
        let Some(name) = Self::key_name(path) else {
            let r = op();
            self.heads.forget(parent);
            return r;
        };
        let name = name.as_str();
        let change = match made {
            true => Change::Added { name, path },
            false => Change::Removed { name, path },
        };
        let r = self.dir_cache.change(parent, change, op);
        self.heads.forget(parent);
        r
    }

    /// The key component a directory (or a flag) of a bucket's tree is named for.
    fn key_name(p: &Path) -> Option<String> {
        p.file_name()?.to_str().and_then(path::decode_component)
    }

    /// [`create_dirs`] for a key's directories below its bucket `base`, each new one's entry
    /// settled and told to the listing cache.
    fn create_key_dirs(&self, base: &Path, rel: &Path) -> DriveResult<()> {
        let mut cur = base.to_path_buf();
        for c in rel.components() {
            let parent = cur.clone();
            cur.push(c);
            // Most keys go where their directories already are: nothing to change then.
            if fs::metadata(&cur).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let mkdir = || match fs::create_dir(&cur) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            };
            if self.key_dir_change(&parent, &cur, true, mkdir)? {
                self.settle_dir(&parent)?;
            }
        }
        Ok(())
    }

    /// The delete-marker flag of the object whose directory is `dir` (none for names too
    /// long to carry the flag's prefix).
    fn marker_flag(dir: &Path) -> Option<PathBuf> {
        let name = dir.file_name()?.to_str()?;
        (MARKER_FLAG.len() + name.len() <= 255)
            .then(|| dir.with_file_name(format!("{MARKER_FLAG}{name}")))
    }

    /// Remove a flag, settled when there was one. `Ok` when there was none.
    /// Returns whether there was one.
    fn clear_flag(&self, flag: &Path) -> DriveResult<bool> {
        let remove = || match fs::remove_file(flag) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            // A parent that is a file or missing holds no flag either.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                Ok(false)
            }
            Err(e) => Err(e),
        };
        // Most commits find no flag: nothing to change then.
        if fs::symlink_metadata(flag).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return Ok(false);
        }
        let removed = self.flag_change(flag, false, remove)?;
        if removed {
            if let Some(parent) = flag.parent() {
                self.settle_dir(parent)?;
            }
        }
        Ok(removed)
    }

    /// Set (`on`) or remove the delete-marker flag `flag` with `op`, told to the listing
    /// cache.
    fn flag_change(
        &self,
        flag: &Path,
        on: bool,
        op: impl FnOnce() -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        let name = flag
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(flagged_key);
        let (Some(parent), Some(name)) = (flag.parent(), name) else {
            return op();
        };
        let change = Change::Flagged { name: &name, on };
        self.dir_cache.change(parent, change, op)
    }

    /// A key is about to be committed in `dir` (`rel` below the bucket at `bpath`): the
    /// objects above it now have a key below them, so their flags go first. Called once the
    /// key's directories exist, so a flag set concurrently either saw them or is cleared here.
    /// Returns whether any flag was there.
    fn clear_ancestor_flags(&self, bpath: &Path, rel: &Path) -> DriveResult<bool> {
        let mut ancestors: Vec<PathBuf> = Vec::new();
        let mut at = bpath.to_path_buf();
        let mut components = rel.components().peekable();
        while let Some(c) = components.next() {
            at.push(c);
            if components.peek().is_some() {
                ancestors.extend(Self::marker_flag(&at));
            }
        }
        if ancestors.is_empty() {
            return Ok(false);
        }
        let _g = self.flags.lock();
        let mut cleared = false;
        for flag in ancestors {
            cleared |= self.clear_flag(&flag)?;
        }
        Ok(cleared)
    }

    /// After a commit that left a delete marker as the latest version in `dir`: flag it
    /// when no key is stored below it. Best effort: a flag not set costs listings a read.
    fn set_marker_flag(&self, dir: &Path) {
        let Some(flag) = Self::marker_flag(dir) else {
            return;
        };
        let _g = self.flags.lock();
        let has_keys_below = match fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .any(|e| path::decode_component(&e.file_name().to_string_lossy()).is_some()),
            Err(_) => true,
        };
        if !has_keys_below {
            let create = || File::create(&flag).map(|_| true);
            if let Err(e) = self.flag_change(&flag, true, create) {
                tracing::debug!(flag = %flag.display(), error = %e, "delete-marker flag not set");
            }
        }
    }

    /// The first half of a commit, up to the point where the new metadata only needs its
    /// name: everything it points at written and settled (see [`LocalDrive::commit`]).
    fn commit_prepare(
        &self,
        bucket: &str,
        key: &str,
        update: Update,
        staged: Option<StagedData>,
    ) -> DriveResult<Prepared> {
        let (bpath, rel) = self.object_path(bucket, key)?;
        Self::bucket_must_exist(&bpath)?;
        let dir = bpath.join(&rel);
        let meta_path = dir.join(META_FILE);
        let on_disk = match fs::read(&meta_path) {
            Ok(b) => Some(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        // A file a power loss left without its content holds no version (it is removed
        // below when the update removes the metadata).
        let file_exists = on_disk.is_some();
        let previous = on_disk.filter(|b| !crate::meta::never_written(b));
        // Whether every version of the new metadata has its data inline (no shard files it
        // must not outrun, whoever wrote them).
        let (meta, merged, all_inline) = match update {
            Update::Replace(meta) => {
                let all_inline = previous.is_none()
                    && meta.as_deref().is_some_and(|m| {
                        m.len() <= FRESH_META_MAX
                            && crate::meta::ObjectMeta::decode(m)
                                .is_ok_and(|m| m.versions.iter().all(|v| v.data_dir.is_none()))
                    });
                (meta, None, all_inline)
            }
            Update::Latest(v) => {
                let all_inline = previous.is_none() && v.data_dir.is_none();
                let m = crate::meta::ObjectMeta::put_latest(previous.as_deref(), *v);
                (
                    Some(Bytes::from(m.meta)),
                    Some((m.replaced, m.mod_time)),
                    all_inline,
                )
            }
        };
        // Unless the new latest version is a delete marker, the key's flag goes, durably,
        // before anything else changes.
        let marker = meta.as_deref().is_some_and(|m| {
            crate::meta::ObjectMeta::decode_head(m)
                .ok()
                .flatten()
                .is_some_and(|v| v.kind == crate::meta::VersionKind::DeleteMarker)
        });
        let mut flag_cleared = false;
        if !marker {
            if let Some(flag) = Self::marker_flag(&dir) {
                flag_cleared = self.clear_flag(&flag)?;
            }
        }
        let Some(meta) = meta else {
            if file_exists {
                let removed = fs::remove_file(&meta_path);
                self.heads.forget(&dir);
                removed?;
                self.settle_dir(&dir)?;
                self.crash_point(crash::AFTER_META_RENAME)?;
                self.prune_empty(&dir, &bpath);
            }
            return Ok(Prepared::Removed(previous));
        };
        // The new metadata must be on the drive before any name points at it.
        let staged_meta = self.stage_file(&meta)?;
        // A concurrent delete may prune a directory we just created: retry the short window.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = (|| {
                self.create_key_dirs(&bpath, &rel)?;
                let cleared = self.clear_ancestor_flags(&bpath, &rel)?;
                self.crash_point(crash::AFTER_DIRS)?;
                if let Some(s) = &staged {
                    let from = self.sys_path(&s.from)?;
                    let to = dir.join(format!("{DATA_DIR_PREFIX}{}", s.data_dir));
                    let renamed = fs::rename(&from, &to);
                    self.heads.forget(&dir);
                    renamed?;
                    // Durable before the metadata that points at it can be.
                    self.settle_dir(&dir)?;
                }
                self.crash_point(crash::AFTER_DATA_RENAME)?;
                Ok(cleared)
            })();
            match r {
                Err(DriveError::NotFound) if attempt < 3 => continue,
                Err(e) => {
                    // Nothing points at the staged metadata yet: it goes with the attempt —
                    // unless a test stands in for a crash here, which would leave it behind.
                    if matches!(e, DriveError::Injected(_)) {
                        staged_meta.leave();
                    }
                    return Err(e);
                }
                Ok(cleared) => {
                    flag_cleared |= cleared;
                    break;
                }
            }
        }
        if let Err(e) = self.crash_point(crash::AFTER_META_STAGED) {
            staged_meta.leave();
            return Err(e);
        }
        // Nothing on this drive to lose if the name lands before the content (see
        // `Staged::fresh`): no version here before, no shard files the metadata must not
        // outrun, no delete marker, and no flag (the key's or an ancestor's) whose removal
        // must be durable first — a flag that outlived a power loss would hide the key
        // from listings.
        let fresh = previous.is_none()
            && staged.is_none()
            && all_inline
            && meta.len() <= FRESH_META_MAX
            && !marker
            && !flag_cleared;
        Ok(Prepared::Staged(Staged {
            bpath,
            rel,
            staged_meta,
            previous,
            marker,
            merged,
            fresh,
        }))
    }

    /// The second half of a commit: the metadata takes its name (settled).
    fn commit_publish(&self, p: &mut Staged) -> DriveResult<()> {
        let dir = p.bpath.join(&p.rel);
        let meta_path = dir.join(META_FILE);
        let renamed = p.staged_meta.place(&meta_path);
        self.heads.forget(&dir);
        match renamed {
            // A concurrent delete pruned the (empty) directory while we waited: make it
            // again, its ancestors' flags cleared, durably before the name.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.create_key_dirs(&p.bpath, &p.rel)?;
                self.clear_ancestor_flags(&p.bpath, &p.rel)?;
                self.barrier_blocking()?;
                let renamed = p.staged_meta.place(&meta_path);
                self.heads.forget(&dir);
                renamed?;
            }
            r => r?,
        }
        self.crash_point(crash::AFTER_META_RENAME)?;
        self.settle_dir(&dir)
    }

    /// Commit new metadata (or remove it) for a key, returning what it replaced. Two
    /// barriers order the commit: after the first, everything the metadata points at is
    /// durable; the metadata then takes its name, durable after the second. A fresh commit
    /// ([`Staged::fresh`]: the first metadata of a key on this drive, data inline) needs
    /// only the second.
    async fn commit(
        &self,
        bucket: String,
        key: String,
        update: Update,
        staged: Option<StagedData>,
    ) -> DriveResult<Committed> {
        let coming = self.expect_barrier()?;
        let this = self.clone();
        let prepared = blocking(&self.slots, move || {
            this.commit_prepare(&bucket, &key, update, staged)
        })
        .await?;
        let p = match prepared {
            Prepared::Removed(previous) => {
                self.barrier_after(coming).await?;
                return Ok(Committed {
                    previous,
                    merged: None,
                });
            }
            Prepared::Staged(p) => p,
        };
        // From here on, a way out before the metadata takes its name drops `p`, and with it
        // the staged metadata.
        let one_epoch = p.fresh && self.group_barrier()?.is_some_and(|b| b.orders_data());
        if one_epoch {
            drop(coming);
        } else {
            self.barrier_after(coming).await?;
        }
        let coming = self.expect_barrier()?;
        let this = self.clone();
        let p = blocking(&self.slots, move || {
            let mut p = p;
            this.commit_publish(&mut p)?;
            Ok(p)
        })
        .await?;
        self.barrier_after(coming).await?;
        if p.marker {
            // Only once the marker's metadata is durable: a flag must never outlive it.
            let this = self.clone();
            let dir = p.bpath.join(&p.rel);
            blocking(&self.slots, move || {
                this.set_marker_flag(&dir);
                Ok(())
            })
            .await?;
        }
        Ok(Committed {
            previous: p.previous,
            merged: p.merged,
        })
    }

    /// Does this directory tree hold an object (a metadata file that was written)?
    fn holds_object(dir: &Path) -> DriveResult<bool> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name == META_FILE {
                let mut magic = [0u8; crate::meta::MAGIC.len()];
                let read = match File::open(entry.path()) {
                    Ok(f) => pread_into(&f, 0, &mut magic, false)?.unwrap_or(0),
                    // Removed since the directory was read.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                if !crate::meta::never_written(&magic[..read]) {
                    return Ok(true);
                }
                continue;
            }
            if entry.file_type()?.is_dir()
                && !name.to_string_lossy().starts_with(DATA_DIR_PREFIX)
                && Self::holds_object(&entry.path())?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What [`LocalDrive::entries`] reads of each key's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    Whole,
    Head,
    Nothing,
}

/// A file in the drive's staging folder ([`LocalDrive::stage_file`]), removed when dropped
/// unless it was placed (renamed to its name) first: every way out of a write that staged
/// it — an error, a barrier that failed, a retry's next try — leaves nothing behind (a full
/// drive's retries used to leave one file each until a restart).
#[derive(Debug)]
struct StagedFile {
    path: Option<PathBuf>,
    /// The drive's in-flight slots: a removal left to the blocking pool takes one, as every
    /// call of the drive does.
    slots: Arc<tokio::sync::Semaphore>,
}

impl StagedFile {
    /// Rename the file to `to`; once that succeeds the file is no longer this guard's.
    fn place(&mut self, to: &Path) -> std::io::Result<()> {
        let from = self
            .path
            .as_deref()
            .ok_or_else(|| std::io::Error::other("staged file already placed"))?;
        fs::rename(from, to)?;
        self.path = None;
        Ok(())
    }

    /// Leave the file where it is, as a crash would (tests that stand in for one): the
    /// restart's sweep of staging removes it.
    fn leave(mut self) {
        self.path = None;
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        let Some(p) = self.path.take() else {
            return;
        };
        if ON_DRIVE_THREAD.get() {
            let _ = fs::remove_file(p);
            return;
        }
        // Dropped on one of the runtime's threads (a drive call given up on after its
        // timeout, say): a drive that hangs must not stall them, so the removal goes to the
        // blocking pool under one of the drive's slots (on a hung drive, removals wait for a
        // slot without holding threads).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let slots = self.slots.clone();
                rt.spawn(async move {
                    let _ = blocking(&slots, move || Ok(fs::remove_file(p)?)).await;
                });
            }
            Err(_) => {
                let _ = fs::remove_file(p);
            }
        }
    }
}

/// What [`LocalDrive::commit_prepare`] leaves for the rest of the commit.
enum Prepared {
    /// The metadata was removed (settled); what it held.
    Removed(Option<Bytes>),
    Staged(Staged),
}

struct Staged {
    bpath: PathBuf,
    rel: PathBuf,
    staged_meta: StagedFile,
    previous: Option<Bytes>,
    marker: bool,
    /// For an [`Update::Latest`]: the replaced version's data directory and the new
    /// version's modification time as stored.
    merged: Option<(Option<Uuid>, i64)>,
    /// The key held no metadata on this drive, the new metadata points at no data
    /// directory and fits in one filesystem block ([`FRESH_META_MAX`]): on a filesystem that
    /// orders data ([`Barrier::orders_data`]) its name may become durable in the same epoch
    /// as its content. A power loss inside that epoch leaves the old state (no file), the
    /// new metadata, or a file whose content never reached the disk, shown empty or
    /// zero-filled, which reads as no file ([`crate::meta::never_written`]). Metadata
    /// operations on such filesystems reach the disk in order, so a flag another commit
    /// removed before this one took its name is gone whenever the name is there.
    fresh: bool,
}

/// What a commit makes of a key's metadata.
enum Update {
    /// This file (or none: the metadata is removed).
    Replace(Option<Bytes>),
    /// The file held now with this version put in front ([`Drive::put_version`]).
    Latest(Box<crate::meta::Version>),
}

/// What a commit replaced.
struct Committed {
    previous: Option<Bytes>,
    merged: Option<(Option<Uuid>, i64)>,
}

struct LocalFileWriter {
    file: Option<super::direct::DirectFile>,
    slots: Arc<tokio::sync::Semaphore>,
    /// fsync at `finish`; otherwise the barrier of whatever publishes the file covers it.
    sync: bool,
}

#[async_trait]
impl FileWriter for LocalFileWriter {
    async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        let mut file = self
            .file
            .take()
            .ok_or(DriveError::NotDone("writer closed"))?;
        let file = blocking(&self.slots, move || {
            file.write(&data)?;
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> DriveResult<()> {
        let file = self
            .file
            .take()
            .ok_or(DriveError::NotDone("writer closed"))?;
        let sync = self.sync;
        blocking(&self.slots, move || Ok(file.finish(sync)?)).await
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct BucketMeta {
    created: i64,
}

#[async_trait]
impl Drive for LocalDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn known_offline(&self) -> bool {
        !self.online.load(std::sync::atomic::Ordering::Acquire)
    }

    fn progress(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        Some(self.progress.clone())
    }

    async fn probe(&self) -> DriveResult<Probe> {
        let this = self.clone();
        blocking(&self.slots, move || Ok(this.probe_blocking())).await
    }

    async fn format(
        &self,
        format: Bytes,
        healing: Option<Bytes>,
        create_root: bool,
    ) -> DriveResult<()> {
        let this = self.clone();
        blocking(&self.slots, move || {
            this.format_blocking(&format, healing.as_deref(), create_root)
        })
        .await
    }

    async fn disk_info(&self) -> DriveResult<DiskInfo> {
        self.usable()?;
        let root = self.root.clone();
        blocking(&self.slots, move || {
            let s = nix::sys::statvfs::statvfs(&root)
                .map_err(|e| DriveError::Io(std::io::Error::from(e)))?;
            let frag = s.fragment_size() as u64;
            Ok(DiskInfo {
                total: s.blocks() as u64 * frag,
                free: s.blocks_available() as u64 * frag,
                free_inodes: Some(s.files_available() as u64),
            })
        })
        .await
    }

    async fn read_sys(&self, path: &str) -> DriveResult<Bytes> {
        self.usable()?;
        let p = self.sys_path(path)?;
        blocking(&self.slots, move || Ok(Bytes::from(fs::read(p)?))).await
    }

    async fn write_sys(&self, path: &str, data: Bytes) -> DriveResult<()> {
        self.usable()?;
        let p = self.sys_path(path)?;
        let this = self.clone();
        let mut tmp = blocking(&self.slots, move || this.stage_file(&data)).await?;
        self.barrier().await?;
        let this = self.clone();
        blocking(&self.slots, move || {
            let parent = p.parent().ok_or(DriveError::InvalidName)?;
            let sys = this.root.join(SYS_DIR);
            this.create_dirs_settled(&sys, parent.strip_prefix(&sys).unwrap_or(Path::new("")))?;
            tmp.place(&p)?;
            this.settle_dir(parent)
        })
        .await?;
        self.barrier().await
    }

    async fn create_sys_file(&self, path: &str) -> DriveResult<Box<dyn FileWriter>> {
        self.usable()?;
        let p = self.sys_path(path)?;
        let sys = self.root.join(SYS_DIR);
        let file = blocking(&self.slots, move || {
            let parent = p.parent().ok_or(DriveError::InvalidName)?;
            create_dirs(&sys, parent.strip_prefix(&sys).unwrap_or(Path::new("")))?;
            Ok(super::direct::DirectFile::create(&p)?)
        })
        .await?;
        Ok(Box::new(LocalFileWriter {
            file: Some(file),
            slots: self.slots.clone(),
            sync: self.sync == SyncMode::Fsync,
        }))
    }

    async fn rename_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.place_sys(from, to, |a, b| fs::rename(a, b)).await
    }

    async fn link_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.place_sys(from, to, |a, b| fs::hard_link(a, b)).await
    }

    async fn delete_sys(&self, path: &str) -> DriveResult<()> {
        self.usable()?;
        let p = self.sys_path(path)?;
        blocking(&self.slots, move || {
            let r = match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                Ok(_) => fs::remove_file(&p),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list_sys(&self, dir: &str) -> DriveResult<Vec<String>> {
        self.usable()?;
        let p = self.sys_path(dir)?;
        blocking(&self.slots, move || {
            let mut out = Vec::new();
            for e in fs::read_dir(p)? {
                out.push(e?.file_name().to_string_lossy().into_owned());
            }
            Ok(out)
        })
        .await
    }

    async fn make_bucket(&self, bucket: &str, created: i64) -> DriveResult<()> {
        self.usable()?;
        let b = self.bucket_path(bucket)?;
        let this = self.clone();
        blocking(&self.slots, move || {
            if !this.root.join(SYS_DIR).is_dir() {
                return Err(DriveError::Offline(format!(
                    "{} lost its system directory",
                    this.name
                )));
            }
            match fs::create_dir(&b) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(DriveError::BucketExists)
                }
                Err(e) => return Err(e.into()),
            }
            let meta = serde_json::to_vec(&BucketMeta { created }).unwrap_or_default();
            // A bucket folder whose record could not be placed goes again (else it would
            // list as a bucket that is not there).
            let placed = this.stage_file(&meta).and_then(|mut tmp| {
                this.barrier_blocking()?;
                Ok(tmp.place(&b.join(BUCKET_META_FILE))?)
            });
            if let Err(e) = placed {
                let _ = fs::remove_dir(&b);
                return Err(e);
            }
            fsync_dir(&b)?;
            fsync_dir(&this.root)
        })
        .await
    }

    async fn list_buckets(&self) -> DriveResult<Vec<BucketEntry>> {
        self.usable()?;
        let root = self.root.clone();
        blocking(&self.slots, move || {
            let mut out = Vec::new();
            for e in fs::read_dir(&root)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || !e.file_type()?.is_dir() {
                    continue;
                }
                let created = fs::read(e.path().join(BUCKET_META_FILE))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<BucketMeta>(&b).ok())
                    .map_or(0, |m| m.created);
                out.push(BucketEntry { name, created });
            }
            Ok(out)
        })
        .await
    }

    async fn delete_bucket(&self, bucket: &str) -> DriveResult<()> {
        self.usable()?;
        let b = self.bucket_path(bucket)?;
        let root = self.root.clone();
        let this = self.clone();
        blocking(&self.slots, move || {
            Self::bucket_must_exist(&b)?;
            if Self::holds_object(&b)? {
                return Err(DriveError::BucketNotEmpty);
            }
            let removed = fs::remove_dir_all(&b);
            this.dir_cache.forget(&b);
            this.heads.clear();
            removed?;
            fsync_dir(&root)
        })
        .await
    }

    async fn read_meta(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.usable()?;
        let (b, rel) = self.object_path(bucket, key)?;
        let file = b.join(rel).join(META_FILE);
        if let Some(v) = read_cached(&file) {
            return written_meta(v);
        }
        blocking(&self.slots, move || match fs::read(&file) {
            Ok(v) => written_meta(v),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::bucket_must_exist(&b)?;
                Err(DriveError::NotFound)
            }
            Err(e) => Err(e.into()),
        })
        .await
    }

    async fn read_meta_head(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.usable()?;
        let (b, rel) = self.object_path(bucket, key)?;
        let file = b.join(rel).join(META_FILE);
        if let Some(v) = read_head_cached(&file) {
            return written_meta(v);
        }
        blocking(&self.slots, move || {
            let f = match File::open(&file) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Self::bucket_must_exist(&b)?;
                    return Err(DriveError::NotFound);
                }
                Err(e) => return Err(e.into()),
            };
            let size = f.metadata()?.len();
            written_meta(meta_head(&f, size, false)?.unwrap_or_default())
        })
        .await
    }

    async fn read_entries(&self, bucket: &str, keys: &[String]) -> DriveResult<Vec<Entry>> {
        self.entries(bucket, keys, Read::Whole).await
    }

    async fn read_entry_heads(
        &self,
        bucket: &str,
        keys: &[String],
        metas: bool,
    ) -> DriveResult<Vec<Entry>> {
        let read = if metas { Read::Head } else { Read::Nothing };
        self.entries(bucket, keys, read).await
    }

    async fn write_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: Option<Bytes>,
        staged: Option<StagedData>,
    ) -> DriveResult<Option<Bytes>> {
        self.usable()?;
        let c = self
            .commit(
                bucket.to_string(),
                key.to_string(),
                Update::Replace(meta),
                staged,
            )
            .await?;
        Ok(c.previous)
    }

    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        version: crate::meta::Version,
        staged: Option<StagedData>,
    ) -> DriveResult<PutVersion> {
        self.usable()?;
        let c = self
            .commit(
                bucket.to_string(),
                key.to_string(),
                Update::Latest(Box::new(version)),
                staged,
            )
            .await?;
        // A new latest version never removes the metadata.
        let (replaced, mod_time) = c
            .merged
            .ok_or(DriveError::NotDone("the commit removed the metadata"))?;
        Ok(PutVersion {
            previous: c.previous,
            replaced,
            mod_time,
        })
    }

    async fn delete_data_dir(&self, bucket: &str, key: &str, data_dir: Uuid) -> DriveResult<()> {
        self.usable()?;
        let (b, rel) = self.object_path(bucket, key)?;
        let this = self.clone();
        // The metadata that named the directory no longer does, durably, before anyone
        // removes it. While the key keeps metadata, a power loss that brings the directory
        // back leaves an orphan of a listed key, which heal's sweep of the key removes (the
        // scanner looks at every listed key): the removal waits for no epoch, the drive's
        // next one makes it durable with everything else. A key left without metadata is
        // listed by no one, so its removal is made durable before the answer.
        let settle = blocking(&self.slots, move || {
            let dir = b.join(&rel);
            let removed = fs::remove_dir_all(dir.join(format!("{DATA_DIR_PREFIX}{data_dir}")));
            this.heads.forget(&dir);
            match removed {
                Ok(()) => {
                    this.settle_dir(&dir)?;
                    this.prune_empty(&dir, &b);
                    Ok(!dir.join(META_FILE).try_exists().unwrap_or(false))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e.into()),
            }
        })
        .await?;
        if settle {
            self.barrier().await?;
        }
        Ok(())
    }

    async fn file_size(&self, file: &FileRef) -> DriveResult<u64> {
        self.usable()?;
        let p = self.file_path(file)?;
        blocking(&self.slots, move || Ok(fs::metadata(p)?.len())).await
    }

    async fn read_file(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes> {
        self.usable()?;
        let p = self.file_path(file)?;
        blocking(&self.slots, move || {
            Ok(Bytes::from(read_exact_at(&p, offset, len)?))
        })
        .await
    }

    async fn read_chunk(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
        shard: usize,
        chunk: u64,
    ) -> DriveResult<Result<Bytes, cairn_erasure::Error>> {
        self.usable()?;
        let p = self.file_path(file)?;
        // Hashed on the I/O thread right after the read, while the bytes are in the CPU's
        // cache, and off the async workers (the shards of a block verify in parallel).
        blocking(&self.slots, move || {
            let framed = Bytes::from(read_exact_at(&p, offset, len)?);
            Ok(super::verified(&framed, shard, chunk))
        })
        .await
    }

    async fn list_dir(&self, bucket: &str, prefix: &str, query: &DirQuery) -> DriveResult<DirPage> {
        self.usable()?;
        let b = self.bucket_path(bucket)?;
        let Some(rel) = path::prefix_dir(prefix) else {
            // A component no file name can hold: no key is stored under it.
            return blocking(&self.slots, move || {
                Self::bucket_must_exist(&b)?;
                Ok(DirPage::default())
            })
            .await;
        };
        let (prefix, query) = (prefix.to_string(), query.clone());
        let this = self.clone();
        blocking(&self.slots, move || {
            let dir = b.join(rel);
            // The stamp is taken before the entries are read: a change after it shows.
            let stamp = match fs::metadata(&dir) {
                Ok(m) => DirStamp::of(&m),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Self::bucket_must_exist(&b)?;
                    return Ok(DirPage::default());
                }
                Err(e) => return Err(e.into()),
            };
            let listed = this
                .dir_cache
                .read_once(&dir, &stamp, || this.read_names(&dir))?;
            Ok(listed.page(&query, &prefix))
        })
        .await
    }
}

impl LocalDrive {
    /// The cached names of the directory a listing of `prefix` reads, if the cache holds
    /// them for the directory as it is now.
    #[cfg(test)]
    pub fn cached_names(&self, bucket: &str, prefix: &str) -> Option<Vec<String>> {
        let dir = self
            .bucket_path(bucket)
            .ok()?
            .join(path::prefix_dir(prefix)?);
        let stamp = DirStamp::of(&fs::metadata(&dir).ok()?);
        let listed = self.dir_cache.cached(&dir, &stamp)?;
        Some(listed.all().map(String::from).collect())
    }

    /// Tests: stamps of key directories as a clock too coarse to tell changes apart would
    /// leave them ([`HeadCache::set_coarse`]).
    #[cfg(test)]
    pub fn coarse_stamps(&self, on: bool) {
        self.heads.set_coarse(on);
    }

    /// Tests: the drive's recent sectors read per key by listings (1/1024ths), as if
    /// measured.
    #[cfg(test)]
    pub fn set_entry_sectors(&self, sectors: u64) {
        self.entry_sectors
            .store(sectors, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tests: blocking calls made by listing entry reads so far.
    #[cfg(test)]
    pub fn entry_calls(&self) -> u64 {
        self.entry_calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Tests: how many listing lookups found what the drive kept of a key's directory.
    #[cfg(test)]
    pub fn head_hits(&self) -> u64 {
        self.heads.hits()
    }

    /// A directory's key names, sorted, with its flagged delete markers (moving the
    /// progress counter as it goes).
    fn read_names(&self, dir: &Path) -> DriveResult<Listed> {
        let (mut names, mut flagged) = (Gathered::default(), HashSet::new());
        for (i, e) in fs::read_dir(dir)?.enumerate() {
            if i % PROGRESS_STEP == PROGRESS_STEP - 1 {
                self.progress
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(name) = path::decode_component(&name) {
                names.push(&name);
            } else if let Some(f) = flagged_key(&name) {
                flagged.insert(f);
            }
        }
        Ok(Listed::new(names, &flagged))
    }

    /// [`Drive::read_entries`] and [`Drive::read_entry_heads`].
    ///
    /// A batch's keys are read one after another on one blocking thread while the drive
    /// answers from memory; while its reads go to the device (a listing of keys not looked
    /// at since the page cache dropped them: a stat, an open and a read of a few KiB each,
    /// at the device's latency), the keys are split among up to [`ENTRY_WAYS`] blocking
    /// calls, so that the device has that many reads in flight instead of one.
    async fn entries(&self, bucket: &str, keys: &[String], read: Read) -> DriveResult<Vec<Entry>> {
        self.usable()?;
        let b = Arc::new(self.bucket_path(bucket)?);
        let rels: Vec<Option<PathBuf>> = keys.iter().map(|k| path::object_dir(k)).collect();
        let n = rels.len();
        let ways = entry_ways(
            n,
            self.entry_sectors
                .load(std::sync::atomic::Ordering::Relaxed),
            self.slots.available_permits(),
        );
        if ways > 1 {
            tracing::debug!(
                drive = self.name(),
                keys = n,
                ways,
                "listing batch read in several calls"
            );
        }
        // Contiguous runs of the keys, as even as can be (at least one call, which says
        // whether the bucket exists).
        let mut rels = rels.into_iter();
        let chunks: Vec<Vec<Option<PathBuf>>> = (0..ways)
            .map(|i| {
                let len = (i + 1) * n / ways - i * n / ways;
                rels.by_ref().take(len).collect()
            })
            .collect();
        let calls = chunks.into_iter().map(|chunk| {
            let (this, b) = (self.clone(), b.clone());
            blocking(&self.slots, move || {
                #[cfg(test)]
                this.entry_calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let before = thread_sectors_read();
                let n = chunk.len();
                let entries = Self::entries_of(&b, chunk, read, &this.heads)?;
                this.entry_read(thread_sectors_read().saturating_sub(before), n);
                Ok(entries)
            })
        });
        let mut out = Vec::with_capacity(n);
        for part in futures::future::try_join_all(calls).await? {
            out.extend(part);
        }
        Ok(out)
    }

    /// Fold the sectors one call of [`LocalDrive::entries`] made the kernel read for `n`
    /// keys into the drive's moving average per key.
    fn entry_read(&self, sectors: u64, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(per_key) = sectors.saturating_mul(1 << 10).checked_div(n as u64) else {
            return;
        };
        let _ = self.entry_sectors.fetch_update(Relaxed, Relaxed, |old| {
            Some(old.saturating_mul(3).saturating_add(per_key) / 4)
        });
    }

    /// The entries of the keys at `rels` (relative to the bucket's directory `b`), one
    /// after another.
    fn entries_of(
        b: &Path,
        rels: Vec<Option<PathBuf>>,
        read: Read,
        heads: &HeadCache,
    ) -> DriveResult<Vec<Entry>> {
        Self::bucket_must_exist(b)?;
        // A page's keys mostly share their parent directory: it is opened once and
        // each key looked up from it, so the kernel walks one or two names per lookup
        // instead of the drive's whole path.
        let mut parent: Option<(PathBuf, PathBuf, Option<OwnedFd>)> = None;
        Ok(rels
            .into_iter()
            .map(|rel| {
                let Some(rel) = rel else {
                    return Entry {
                        meta: Err(DriveError::InvalidName),
                        has_children: false,
                        data_dirs: Vec::new(),
                    };
                };
                let (up, name) = match (rel.parent(), rel.file_name()) {
                    (Some(up), Some(name)) => (up, Path::new(name)),
                    _ => {
                        return Self::entry(
                            rustix::fs::CWD,
                            &b.join(&rel),
                            Path::new(""),
                            read,
                            heads,
                        )
                    }
                };
                if parent.as_ref().is_none_or(|(p, _, _)| p != up) {
                    let full = b.join(up);
                    let fd = rustix::fs::open(
                        &full,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .ok();
                    parent = Some((up.to_path_buf(), full, fd));
                }
                match parent.as_ref() {
                    Some((_, full, Some(fd))) => Self::entry(fd.as_fd(), name, full, read, heads),
                    // No such directory (or it could not be opened): the full path
                    // gives the same answer the slow way.
                    _ => Self::entry(rustix::fs::CWD, &b.join(&rel), Path::new(""), read, heads),
                }
            })
            .collect())
    }

    /// One key's listing entry: `dir` is the key's directory relative to `at` (or the whole
    /// path with `CWD`), and `base` the directory `at` stands for (empty with `CWD`), so
    /// that `base.join(dir)` is the path every change of the key's directory forgets.
    fn entry(at: BorrowedFd<'_>, dir: &Path, base: &Path, read: Read, heads: &HeadCache) -> Entry {
        use rustix::fs::{openat, statat, AtFlags};
        // Built only when the file is looked at: a page served from what the drive kept
        // never is.
        let file = || dir.join(META_FILE);
        let open = || {
            openat(at, file(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map(File::from)
                .map_err(std::io::Error::from)
        };
        if read == Read::Whole {
            let meta = open()
                .and_then(|mut f| {
                    let mut buf = Vec::new();
                    std::io::Read::read_to_end(&mut f, &mut buf)?;
                    Ok(buf)
                })
                .map_err(DriveError::from)
                .and_then(written_meta);
            let (has_children, data_dirs) = Self::scan_key_dir(&base.join(dir), true);
            return Entry {
                meta,
                // A directory not read through may hold keys: a wrong "yes" costs a look.
                has_children: has_children.unwrap_or(true),
                data_dirs,
            };
        }
        // The key directory's stat comes first: its link count tells whether keys may
        // continue below, and its stamp whether what the drive kept of it still holds.
        let st = statat(at, dir, AtFlags::empty());
        let nlink = st.as_ref().map(|st| st.st_nlink).ok();
        // Link counts (ext4 and XFS count subdirectories; other filesystems say 1): 2 means
        // no subdirectory, so no key below, whatever is kept.
        let leaf = nlink == Some(2);
        let kept = match &st {
            Ok(st) if read == Read::Head || !leaf => {
                let (key_dir, stamp) = (base.join(dir), heads.stamp(st));
                let known = heads.lookup(&key_dir, &stamp);
                Some((key_dir, stamp, known))
            }
            _ => None,
        };
        let known = kept.as_ref().map(|(_, _, k)| k);
        let (mut fresh_head, mut fresh_children) = (None, None);
        let meta = match read {
            Read::Head => match known.and_then(|k| k.head.clone()) {
                Some(head) => Ok(head),
                // Sized by the read itself: a short first read is the whole file.
                None => {
                    // Kept and sent without inline data, which a listing never shows and
                    // which is most of a small object's head.
                    let head = open()
                        .and_then(|f| Ok(meta_head(&f, u64::MAX, false)?.unwrap_or_default()))
                        .map_err(DriveError::from)
                        .and_then(written_meta)
                        .map(|h| match crate::meta::listing_head(&h) {
                            Some(head) => Bytes::from(head),
                            None => h,
                        });
                    fresh_head = head.as_ref().ok().cloned();
                    head
                }
            },
            _ => Err(DriveError::NotDone("metadata not read")),
        };
        let has_children = match (leaf, known.and_then(|k| k.children)) {
            (true, _) => false,
            (false, Some(c)) => c,
            (false, None) => {
                // More links with no metadata file (so no data directory but a crash's
                // leftover) means keys below: a wrong "yes" costs the walk one look into
                // an empty directory, never a key. Otherwise the directory says. Only an
                // answer known whole is kept: a failed look says "yes" this time only.
                let no_meta = match (nlink, &meta) {
                    (Some(n), Err(DriveError::NotFound)) if n > 2 => true,
                    (Some(n), Err(DriveError::NotDone(_))) if n > 2 => matches!(
                        statat(at, file(), AtFlags::SYMLINK_NOFOLLOW),
                        Err(rustix::io::Errno::NOENT)
                    ),
                    _ => false,
                };
                let c = match no_meta {
                    true => Some(true),
                    false => Self::scan_key_dir(&base.join(dir), false).0,
                };
                fresh_children = c;
                c.unwrap_or(true)
            }
        };
        if let Some((key_dir, stamp, known)) = kept {
            if fresh_head.is_some() || fresh_children.is_some() {
                heads.keep(
                    known.ticket,
                    &key_dir,
                    stamp,
                    fresh_head.as_ref(),
                    fresh_children,
                );
            }
        }
        Entry {
            meta,
            has_children,
            data_dirs: Vec::new(),
        }
    }

    /// Whether a key's directory holds key directories (keys continue below), and, when
    /// `all`, its data directories (else the scan stops at the first key directory). `None`
    /// for "keys below" when the directory could not be read through (it exists, but an
    /// error such as running out of descriptors cut the read short); a missing directory
    /// holds nothing.
    fn scan_key_dir(dir: &Path, all: bool) -> (Option<bool>, Vec<Uuid>) {
        let (mut has_children, mut data_dirs) = (false, Vec::new());
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Some(false), data_dirs),
            Err(_) => return (None, data_dirs),
        };
        for e in entries {
            let Ok(e) = e else {
                return (has_children.then_some(true), data_dirs);
            };
            let name = e.file_name().to_string_lossy().into_owned();
            if path::decode_component(&name).is_some() {
                has_children = true;
                if !all {
                    break;
                }
            } else if let Some(id) = name
                .strip_prefix(DATA_DIR_PREFIX)
                .and_then(|n| Uuid::parse_str(n).ok())
            {
                data_dirs.push(id);
            }
        }
        (Some(has_children), data_dirs)
    }

    fn file_path(&self, file: &FileRef) -> DriveResult<PathBuf> {
        Ok(match file {
            FileRef::Sys(p) => self.sys_path(p)?,
            FileRef::Part {
                bucket,
                key,
                data_dir,
                part,
            } => {
                let (b, rel) = self.object_path(bucket, key)?;
                b.join(rel)
                    .join(format!("{DATA_DIR_PREFIX}{data_dir}"))
                    .join(format!("part.{part}"))
            }
        })
    }
}

#[cfg(test)]
mod cached_read_tests {
    use super::*;

    #[test]
    fn hot_small_files_are_read_without_blocking_and_others_are_left_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let hot = dir.path().join("hot");
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        fs::write(&hot, &body).expect("write");
        // Just written: its name and bytes are in the kernel's caches.
        assert_eq!(read_cached(&hot).as_deref(), Some(&body[..]));
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").expect("write");
        assert_eq!(read_cached(&empty), Some(Vec::new()));
        // Missing, too large, or a directory: the blocking path decides.
        assert_eq!(read_cached(&dir.path().join("missing")), None);
        let big = dir.path().join("big");
        fs::write(&big, vec![1u8; CACHED_READ_MAX as usize + 1]).expect("write");
        assert_eq!(read_cached(&big), None);
        assert_eq!(read_cached(dir.path()), None);
    }
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    /// Probes race (the monitor, a peer's RPC probe, a format's own check): the one that
    /// brings the drive online sweeps staging, and must not take another's write-test file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_probes_of_a_drive_coming_online_all_find_it_online() {
        let dir = tempfile::tempdir().expect("dir");
        for round in 0..50 {
            let root = dir.path().join(format!("d{round}"));
            let first = LocalDrive::open(root.clone());
            first
                .format(Bytes::from_static(b"{}"), None, true)
                .await
                .expect("format");
            // A new process: the drive is formatted but not yet seen online.
            let d = LocalDrive::open(root);
            let start = std::sync::Barrier::new(8);
            let statuses: Vec<DriveStatus> = std::thread::scope(|s| {
                let probes: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            d.probe_blocking().status
                        })
                    })
                    .collect();
                probes
                    .into_iter()
                    .map(|h| h.join().expect("probe thread"))
                    .collect()
            });
            assert!(
                statuses.iter().all(|s| *s == DriveStatus::Online),
                "round {round}: {statuses:?}"
            );
        }
    }
}
