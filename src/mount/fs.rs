//! The filesystem logic of `cairn mount`, generic over an [`ObjectClient`] and free of FUSE
//! types, so it is tested against an in-memory store with fault injection.
//!
//! * Paths are object keys: `a/b/c` is the object `a/b/c`; directories are `/`-delimited
//!   prefixes, with a marker object `a/b/` for empty (or explicitly made) ones.
//! * An inode table maps kernel inode numbers to paths; entries live while the kernel holds a
//!   reference (lookups not yet forgotten) or a file is open, so it stays bounded.
//! * Attributes are cached for [`Options::attr_ttl`]; listings are never cached.
//! * Reads of unmodified files are ranged GETs through an adaptive per-handle read-ahead
//!   window. The first write (or truncate) of a file copies it into a staging file in the
//!   cache directory; writes, overwrites, appends and truncates go there, and the file is
//!   uploaded on flush/fsync/close (multipart above [`Options::part_size`]).
//! * Mode, owner and times are kept as `x-amz-meta-{mode,uid,gid,mtime}` (as s3fs and
//!   rclone do), so they survive remounts and are shared with those tools.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use parking_lot::Mutex;

use super::client::{ClientError, Head, ObjectClient, Usage};

pub const ROOT: u64 = 1;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
/// S3's key limit.
const MAX_KEY: usize = 1024;
/// Read-ahead windows fetched ahead of the one being read, per open file.
const PREFETCH_DEPTH: usize = 2;
/// Statfs block size.
pub const BLOCK: u64 = 4096;

pub type FsResult<T> = Result<T, Errno>;

#[derive(Debug, Clone)]
pub struct Options {
    pub uid: u32,
    pub gid: u32,
    pub dir_mode: u32,
    pub file_mode: u32,
    pub read_only: bool,
    pub cache_dir: PathBuf,
    pub attr_ttl: Duration,
    /// Largest read-ahead window per open file.
    pub max_readahead: u64,
    /// Most bytes fetched ahead (beyond the windows being read) over all open files.
    pub readahead_budget: u64,
    /// Part size of multipart uploads; files above it upload as multipart.
    pub part_size: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            uid: 0,
            gid: 0,
            dir_mode: 0o755,
            file_mode: 0o644,
            read_only: false,
            cache_dir: std::env::temp_dir(),
            attr_ttl: Duration::from_secs(1),
            max_readahead: 16 << 20,
            readahead_budget: 256 << 20,
            part_size: 16 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// What `stat` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (no type bits).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
}

/// Changes asked by `setattr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetAttr {
    pub size: Option<u64>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
}

/// A file's modified copy in the cache directory.
struct Staged {
    file: File,
    size: u64,
    /// Size of the object in the store (as of staging or the last upload).
    stored: u64,
    dirty: bool,
    /// Every write so far appended to a file that started empty: it can be streamed.
    appending: bool,
    /// The multipart upload being fed while the file is written (see [`Stream`]).
    stream: Option<Stream>,
}

/// Work for a stream's uploader thread.
enum Job {
    /// Upload bytes `offset..offset + len` of the staging file as this part.
    Part(u32, u64, u64),
    /// The writer will complete the upload: hand back the parts.
    Finish,
}

/// A new file written sequentially is uploaded while it is written: every full part is
/// sent by a background thread as a multipart part (at most two parts queued), so close
/// only uploads the tail and completes. Any other kind of write cancels the stream (the
/// upload is aborted) and the file is uploaded whole at close, as before.
struct Stream {
    upload_id: String,
    /// Bytes handed to the uploader (whole parts).
    queued: u64,
    next_part: u32,
    jobs: std::sync::mpsc::SyncSender<Job>,
    worker: std::thread::JoinHandle<Result<Vec<(u32, String)>, ClientError>>,
}

/// `Read` over a byte range of a file, by positioned reads (no shared cursor).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl std::io::Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

struct Node {
    path: String,
    attr: Attr,
    fetched: Instant,
    lookups: u64,
    open: u32,
    staged: Option<Arc<Mutex<Staged>>>,
    /// Metadata changed locally, to be written with the next upload.
    meta_dirty: bool,
    /// Unlinked (or renamed over) while open: never uploaded again.
    gone: bool,
}

struct Table {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    next_ino: u64,
}

/// A file handle's read-ahead: the window being served and the next one, fetched in the
/// background while the current one is read (at most two windows per open file).
struct ReadAhead {
    buf: Vec<u8>,
    start: u64,
    window: u64,
    /// Where the next sequential read starts.
    next: u64,
    /// Windows being fetched ahead, in order (at most [`PREFETCH_DEPTH`]).
    prefetch: std::collections::VecDeque<Prefetch>,
}

struct Prefetch {
    start: u64,
    len: u64,
    task: std::thread::JoinHandle<Result<Vec<u8>, ClientError>>,
    _charge: Charge,
}

/// Bytes counted against the read-ahead budget while a prefetched window exists.
struct Charge {
    bytes: u64,
    total: Arc<AtomicU64>,
}

impl Charge {
    /// Charge `bytes` if the budget has room.
    fn take(total: &Arc<AtomicU64>, bytes: u64, budget: u64) -> Option<Charge> {
        total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                (t + bytes <= budget).then_some(t + bytes)
            })
            .ok()?;
        Some(Charge {
            bytes,
            total: total.clone(),
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

enum Handle {
    File { ino: u64, ra: Mutex<ReadAhead> },
    Dir { ino: u64, page: Mutex<DirPage> },
}

/// One page of a directory listing, positioned by entry offsets (1-based, after `.`/`..`).
#[derive(Default)]
struct DirPage {
    /// Index in the whole listing of `entries[0]`.
    base: u64,
    entries: Vec<(String, Kind)>,
    /// Listing continues after this key; `None` when done.
    next: Option<String>,
    started: bool,
}

/// A directory entry as `readdir` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub ino: u64,
    /// Offset of the entry after this one.
    pub offset: u64,
    pub kind: Kind,
    pub name: String,
}

pub struct Fs<C: ObjectClient> {
    client: Arc<C>,
    opts: Options,
    table: Mutex<Table>,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    usage: Mutex<Option<(Instant, Option<Usage>)>>,
    mounted: SystemTime,
    /// Bytes of prefetched windows over all open files (see [`Options::readahead_budget`]).
    prefetched: Arc<AtomicU64>,
}

fn errno(e: ClientError) -> Errno {
    match e {
        ClientError::NotFound => Errno::ENOENT,
        ClientError::QuotaExceeded => Errno::ENOSPC,
        ClientError::AccessDenied => Errno::EACCES,
        ClientError::BadCredentials(code) => {
            tracing::error!("the object store refused the mount's credentials ({code})");
            Errno::EACCES
        }
        ClientError::NameTooLong => Errno::ENAMETOOLONG,
        ClientError::Other(m) => {
            tracing::error!("object store error: {m}");
            Errno::EIO
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn from_secs(s: f64) -> SystemTime {
    if s.is_finite() && s > 0.0 {
        UNIX_EPOCH + Duration::from_secs_f64(s)
    } else {
        UNIX_EPOCH
    }
}

impl<C: ObjectClient> Fs<C> {
    pub fn new(client: C, opts: Options) -> Fs<C> {
        let now = SystemTime::now();
        let root = Node {
            path: String::new(),
            attr: Attr {
                ino: ROOT,
                kind: Kind::Dir,
                size: 0,
                perm: opts.dir_mode,
                uid: opts.uid,
                gid: opts.gid,
                mtime: now,
            },
            fetched: Instant::now(),
            lookups: 1,
            open: 0,
            staged: None,
            meta_dirty: false,
            gone: false,
        };
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, root);
        let mut by_path = HashMap::new();
        by_path.insert(String::new(), ROOT);
        Fs {
            client: Arc::new(client),
            opts,
            table: Mutex::new(Table {
                nodes,
                by_path,
                next_ino: ROOT + 1,
            }),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            usage: Mutex::new(None),
            mounted: now,
            prefetched: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn client(&self) -> &C {
        &self.client
    }

    fn path_of(&self, ino: u64) -> FsResult<String> {
        self.table
            .lock()
            .nodes
            .get(&ino)
            .map(|n| n.path.clone())
            .ok_or(Errno::ENOENT)
    }

    fn child_path(&self, parent: u64, name: &str) -> FsResult<String> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Errno::EINVAL);
        }
        if name.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        let p = self.path_of(parent)?;
        let path = join(&p, name);
        if path.len() + 1 > MAX_KEY {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(path)
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.opts.read_only {
            Err(Errno::EROFS)
        } else {
            Ok(())
        }
    }

    /// Attributes of an object from its HEAD.
    fn attr_from_head(&self, h: &Head) -> (Kind, Attr) {
        let mode = h.meta.get("mode").and_then(|m| m.parse::<u32>().ok());
        let kind = match mode.map(|m| m & S_IFMT) {
            Some(S_IFLNK) => Kind::Symlink,
            _ => Kind::File,
        };
        let mtime = h
            .meta
            .get("mtime")
            .and_then(|m| m.parse::<f64>().ok())
            .map(from_secs)
            .unwrap_or_else(|| from_secs(h.modified as f64));
        let attr = Attr {
            ino: 0,
            kind,
            size: h.size,
            perm: mode.map_or(self.opts.file_mode, |m| m & 0o7777),
            uid: h
                .meta
                .get("uid")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.opts.uid),
            gid: h
                .meta
                .get("gid")
                .and_then(|v| v.parse().ok())
                .unwrap_or(self.opts.gid),
            mtime,
        };
        (kind, attr)
    }

    fn dir_attr(&self, marker: Option<&Head>) -> Attr {
        let mut a = Attr {
            ino: 0,
            kind: Kind::Dir,
            size: 0,
            perm: self.opts.dir_mode,
            uid: self.opts.uid,
            gid: self.opts.gid,
            mtime: self.mounted,
        };
        if let Some(h) = marker {
            let (_, fa) = self.attr_from_head(h);
            a.perm = if h.meta.contains_key("mode") {
                fa.perm
            } else {
                self.opts.dir_mode
            };
            a.uid = fa.uid;
            a.gid = fa.gid;
            a.mtime = fa.mtime;
        }
        a
    }

    /// Ask the store what `path` is: a file or symlink, a directory (marker or implicit), or
    /// nothing. Two requests for a name that does not exist (the common case before a
    /// create): HEAD of the key, then one listing of `path/` (which shows the marker, if any,
    /// first).
    fn probe(&self, path: &str) -> FsResult<Attr> {
        match self.client.head(path) {
            Ok(h) => return Ok(self.attr_from_head(&h).1),
            Err(ClientError::NotFound) => {}
            Err(e) => return Err(errno(e)),
        }
        let dir = format!("{path}/");
        let l = self.client.list(&dir, false, None, 1).map_err(errno)?;
        if l.objects.is_empty() && l.prefixes.is_empty() {
            return Err(Errno::ENOENT);
        }
        if l.objects.first().is_some_and(|o| o.key == dir) {
            // A marker: it carries the directory's mode, owner and times.
            return match self.client.head(&dir) {
                Ok(h) => Ok(self.dir_attr(Some(&h))),
                Err(ClientError::NotFound) => Ok(self.dir_attr(None)),
                Err(e) => Err(errno(e)),
            };
        }
        Ok(self.dir_attr(None))
    }

    /// Enter `path` with `attr` in the inode table (one more kernel reference).
    fn remember(&self, path: &str, mut attr: Attr, lookup: bool) -> Attr {
        let mut t = self.table.lock();
        if let Some(&ino) = t.by_path.get(path) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                if n.attr.kind == attr.kind {
                    attr.ino = ino;
                    if n.staged.is_none() && !n.meta_dirty {
                        n.attr = attr;
                        n.fetched = Instant::now();
                    }
                    if lookup {
                        n.lookups += 1;
                    }
                    return n.attr;
                }
                // Replaced by something of another kind: the old inode goes stale.
                n.gone = n.open > 0;
            }
            t.by_path.remove(path);
        }
        let ino = t.next_ino;
        t.next_ino += 1;
        attr.ino = ino;
        t.nodes.insert(
            ino,
            Node {
                path: path.to_string(),
                attr,
                fetched: Instant::now(),
                lookups: u64::from(lookup),
                open: 0,
                staged: None,
                meta_dirty: false,
                gone: false,
            },
        );
        t.by_path.insert(path.to_string(), ino);
        attr
    }

    pub fn lookup(&self, parent: u64, name: &str) -> FsResult<Attr> {
        let path = self.child_path(parent, name)?;
        {
            let mut t = self.table.lock();
            if let Some(&ino) = t.by_path.get(&path) {
                let ttl = self.opts.attr_ttl;
                if let Some(n) = t.nodes.get_mut(&ino) {
                    if n.staged.is_some() || n.meta_dirty || n.fetched.elapsed() < ttl {
                        n.lookups += 1;
                        return Ok(n.attr);
                    }
                }
            }
        }
        let attr = self.probe(&path)?;
        Ok(self.remember(&path, attr, true))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut t = self.table.lock();
        let remove = match t.nodes.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0 && node.open == 0
            }
            None => false,
        };
        if remove {
            if let Some(node) = t.nodes.remove(&ino) {
                if t.by_path.get(&node.path) == Some(&ino) {
                    t.by_path.remove(&node.path);
                }
            }
        }
    }

    pub fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let path = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            if ino == ROOT
                || n.gone
                || n.staged.is_some()
                || n.meta_dirty
                || n.fetched.elapsed() < self.opts.attr_ttl
            {
                return Ok(n.attr);
            }
            n.path.clone()
        };
        let attr = self.probe(&path)?;
        Ok(self.remember(&path, attr, false))
    }

    /// Cached attributes (no round trip).
    fn cached(&self, ino: u64) -> FsResult<Attr> {
        self.table
            .lock()
            .nodes
            .get(&ino)
            .map(|n| n.attr)
            .ok_or(Errno::ENOENT)
    }

    fn meta_of(attr: &Attr) -> BTreeMap<String, String> {
        let ty = match attr.kind {
            Kind::Dir => S_IFDIR,
            Kind::File => S_IFREG,
            Kind::Symlink => S_IFLNK,
        };
        BTreeMap::from([
            ("mode".to_string(), (ty | attr.perm).to_string()),
            ("uid".to_string(), attr.uid.to_string()),
            ("gid".to_string(), attr.gid.to_string()),
            ("mtime".to_string(), format!("{:.3}", secs(attr.mtime))),
        ])
    }

    // ---- writes and staging ----

    /// The node's staging file, created (with the object's current bytes unless `empty`).
    fn stage(&self, ino: u64, empty: bool) -> FsResult<Arc<Mutex<Staged>>> {
        let (path, existing) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            if n.attr.kind != Kind::File {
                return Err(Errno::EISDIR);
            }
            (n.path.clone(), n.staged.clone())
        };
        if let Some(s) = existing {
            return Ok(s);
        }
        let mut file = tempfile::tempfile_in(&self.opts.cache_dir).map_err(|e| {
            tracing::error!(
                "cannot create a staging file in {:?}: {e}",
                self.opts.cache_dir
            );
            Errno::EIO
        })?;
        let size = if empty {
            0
        } else {
            match self.client.get_into(&path, &mut file) {
                Ok(n) => n,
                Err(ClientError::NotFound) => 0,
                Err(e) => return Err(errno(e)),
            }
        };
        let staged = Arc::new(Mutex::new(Staged {
            file,
            size,
            stored: size,
            dirty: false,
            appending: size == 0,
            stream: None,
        }));
        let mut t = self.table.lock();
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        // Another thread may have staged it meanwhile: keep the first.
        Ok(n.staged.get_or_insert(staged).clone())
    }

    /// Quota and usage, refreshed at most once a second.
    fn usage(&self) -> Option<Usage> {
        let mut u = self.usage.lock();
        if let Some((at, v)) = *u {
            if at.elapsed() < Duration::from_secs(1) {
                return v;
            }
        }
        let v = self.client.usage().ok();
        *u = Some((Instant::now(), v));
        v
    }

    /// Forget the cached quota and usage (they are re-read on next use).
    pub fn invalidate_usage(&self) {
        *self.usage.lock() = None;
    }

    /// Bytes staged locally beyond what the store holds for those files.
    fn pending_growth(&self) -> u64 {
        let t = self.table.lock();
        t.nodes
            .values()
            .filter(|n| !n.gone)
            .filter_map(|n| n.staged.as_ref())
            .map(|s| {
                let s = s.lock();
                if s.dirty {
                    s.size.saturating_sub(s.stored)
                } else {
                    0
                }
            })
            .sum()
    }

    /// Refuse growth that would pass the volume's quota (ENOSPC at write time, not close).
    fn check_space(&self, growth: u64) -> FsResult<()> {
        if growth == 0 {
            return Ok(());
        }
        if let Some(u) = self.usage() {
            // Parts of uploads still being streamed are in `pending_growth` (this mount's
            // own staged bytes) and in the store's `parts`: count them once.
            let stored = u.used.saturating_sub(u.parts);
            if u.quota > 0 && stored + self.pending_growth() + growth > u.quota {
                return Err(Errno::ENOSPC);
            }
        }
        Ok(())
    }

    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.check_writable()?;
        let staged = self.stage(ino, false)?;
        let (attr, path) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (n.attr, n.path.clone())
        };
        let mut s = staged.lock();
        let end = offset + data.len() as u64;
        let growth = end.saturating_sub(s.size);
        drop(s);
        self.check_space(growth)?;
        s = staged.lock();
        s.file.write_all_at(data, offset).map_err(|e| {
            tracing::error!("staging write: {e}");
            Errno::EIO
        })?;
        if offset != s.size && s.appending {
            s.appending = false;
            if let Some(st) = s.stream.take() {
                self.abort_stream(&path, st);
            }
        }
        s.size = s.size.max(end);
        s.dirty = true;
        if s.appending {
            self.feed_stream(&path, &attr, &mut s);
        }
        let size = s.size;
        drop(s);
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.attr.size = size;
            n.attr.mtime = SystemTime::now();
        }
        Ok(data.len() as u32)
    }

    /// Hand every full part written so far to the stream's uploader (starting it).
    fn feed_stream(&self, path: &str, attr: &Attr, s: &mut Staged) {
        let part = self.opts.part_size;
        loop {
            let queued = s.stream.as_ref().map_or(0, |st| st.queued);
            if s.size - queued < part {
                return;
            }
            if s.stream.is_none() {
                let Ok(upload_id) = self.client.create_multipart(path, &Self::meta_of(attr)) else {
                    // Not streamed after all: close uploads the file whole.
                    s.appending = false;
                    return;
                };
                let Ok(file) = s.file.try_clone() else {
                    let _ = self.client.abort_multipart(path, &upload_id);
                    s.appending = false;
                    return;
                };
                let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(1);
                let client = self.client.clone();
                let (key, id) = (path.to_string(), upload_id.clone());
                let worker = std::thread::spawn(move || {
                    let mut parts = Vec::new();
                    for job in rx {
                        match job {
                            Job::Part(n, offset, len) => {
                                let mut body = RangeReader {
                                    file: &file,
                                    pos: offset,
                                    end: offset + len,
                                };
                                match client.upload_part(&key, &id, n, &mut body, len) {
                                    Ok(etag) => parts.push((n, etag)),
                                    Err(e) => {
                                        let _ = client.abort_multipart(&key, &id);
                                        return Err(e);
                                    }
                                }
                            }
                            Job::Finish => return Ok(parts),
                        }
                    }
                    // The writer went away without finishing: abandon the upload.
                    let _ = client.abort_multipart(&key, &id);
                    Err(ClientError::Other("stream cancelled".into()))
                });
                s.stream = Some(Stream {
                    upload_id,
                    queued: 0,
                    next_part: 1,
                    jobs,
                    worker,
                });
            }
            let Some(st) = s.stream.as_mut() else { return };
            if st
                .jobs
                .send(Job::Part(st.next_part, st.queued, part))
                .is_err()
            {
                // The uploader failed; close falls back to a whole upload.
                s.appending = false;
                return;
            }
            st.queued += part;
            st.next_part += 1;
        }
    }

    /// Stop a stream and abort its upload (the file will be uploaded whole).
    fn abort_stream(&self, path: &str, st: Stream) {
        drop(st.jobs);
        let _ = st.worker.join();
        let _ = self.client.abort_multipart(path, &st.upload_id);
    }

    /// Finish a stream: wait for its parts, upload the tail, complete.
    fn finish_stream(&self, path: &str, st: Stream, s: &Staged) -> Result<(), ClientError> {
        let _ = st.jobs.send(Job::Finish);
        drop(st.jobs);
        let joined = st
            .worker
            .join()
            .map_err(|_| ClientError::Other("uploader panicked".into()))
            .and_then(|r| r);
        let result = joined.and_then(|mut parts| {
            if s.size > st.queued || parts.is_empty() {
                let len = s.size - st.queued;
                let mut body = RangeReader {
                    file: &s.file,
                    pos: st.queued,
                    end: s.size,
                };
                let etag =
                    self.client
                        .upload_part(path, &st.upload_id, st.next_part, &mut body, len)?;
                parts.push((st.next_part, etag));
            }
            self.client.complete_multipart(path, &st.upload_id, &parts)
        });
        if result.is_err() {
            let _ = self.client.abort_multipart(path, &st.upload_id);
        }
        result
    }

    /// Upload a node's staged data (and pending metadata) if dirty.
    pub fn flush(&self, ino: u64) -> FsResult<()> {
        let (path, attr, staged, meta_dirty, gone) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (
                n.path.clone(),
                n.attr,
                n.staged.clone(),
                n.meta_dirty,
                n.gone,
            )
        };
        if gone {
            return Ok(());
        }
        let meta = Self::meta_of(&attr);
        match staged {
            Some(staged) => {
                let mut s = staged.lock();
                if !s.dirty && !meta_dirty {
                    return Ok(());
                }
                let streamed = match s.stream.take() {
                    // Metadata changed since the upload began: upload whole instead.
                    Some(st) if meta_dirty => {
                        self.abort_stream(&path, st);
                        false
                    }
                    Some(st) => match self.finish_stream(&path, st, &s) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(
                                "streamed upload of {path} failed ({e}): uploading whole"
                            );
                            false
                        }
                    },
                    None => false,
                };
                if !streamed {
                    self.upload(&path, &mut s, &meta)?;
                }
                // Later appends change an uploaded object: they upload it whole.
                s.appending = false;
                s.dirty = false;
                s.stored = s.size;
            }
            None if meta_dirty => {
                // Metadata only: rewrite it in place with a server-side copy.
                let r = match attr.kind {
                    Kind::Dir => {
                        let mut empty: &[u8] = &[];
                        self.client.put(&format!("{path}/"), &mut empty, 0, &meta)
                    }
                    _ => self.client.copy(&path, &path, Some(&meta)),
                };
                r.map_err(errno)?;
            }
            None => return Ok(()),
        }
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.meta_dirty = false;
            n.fetched = Instant::now();
        }
        drop(t);
        self.invalidate_usage();
        Ok(())
    }

    fn upload(&self, path: &str, s: &mut Staged, meta: &BTreeMap<String, String>) -> FsResult<()> {
        let size = s.size;
        let io = |e: std::io::Error| {
            tracing::error!("staging read: {e}");
            Errno::EIO
        };
        if size <= self.opts.part_size {
            s.file.seek(SeekFrom::Start(0)).map_err(io)?;
            let mut body = std::io::Read::take(&mut s.file, size);
            return self.client.put(path, &mut body, size, meta).map_err(errno);
        }
        // At most 10,000 parts (S3's limit).
        let part = self.opts.part_size.max(size.div_ceil(10_000));
        let id = self.client.create_multipart(path, meta).map_err(errno)?;
        let mut parts = Vec::new();
        let mut off = 0;
        let mut number = 1;
        let result = (|| {
            while off < size {
                let len = part.min(size - off);
                s.file.seek(SeekFrom::Start(off)).map_err(io)?;
                let mut body = std::io::Read::take(&mut s.file, len);
                let etag = self
                    .client
                    .upload_part(path, &id, number, &mut body, len)
                    .map_err(errno)?;
                parts.push((number, etag));
                off += len;
                number += 1;
            }
            self.client
                .complete_multipart(path, &id, &parts)
                .map_err(errno)
        })();
        if result.is_err() {
            let _ = self.client.abort_multipart(path, &id);
        }
        result
    }

    pub fn fsync(&self, ino: u64) -> FsResult<()> {
        self.flush(ino)
    }

    pub fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        let changes_meta =
            set.mode.is_some() || set.uid.is_some() || set.gid.is_some() || set.mtime.is_some();
        if set.size.is_some() || changes_meta {
            self.check_writable()?;
        }
        if ino == ROOT {
            // The root has no object of its own: keep changes in memory.
            let mut t = self.table.lock();
            let n = t.nodes.get_mut(&ROOT).ok_or(Errno::ENOENT)?;
            Self::apply_meta(&mut n.attr, &set);
            return Ok(n.attr);
        }
        let attr = self.getattr(ino)?;
        if let Some(size) = set.size {
            if attr.kind == Kind::Dir {
                return Err(Errno::EISDIR);
            }
            let staged = self.stage(ino, size == 0)?;
            let path = self.path_of(ino)?;
            let mut s = staged.lock();
            if s.appending && size != s.size {
                s.appending = false;
                if let Some(st) = s.stream.take() {
                    self.abort_stream(&path, st);
                }
            }
            if size > s.size {
                let growth = size - s.size;
                drop(s);
                self.check_space(growth)?;
                s = staged.lock();
            }
            s.file.set_len(size).map_err(|_| Errno::EIO)?;
            s.size = size;
            s.dirty = true;
        }
        let (open, staged) = {
            let mut t = self.table.lock();
            let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
            Self::apply_meta(&mut n.attr, &set);
            if let Some(size) = set.size {
                n.attr.size = size;
                if set.mtime.is_none() {
                    n.attr.mtime = SystemTime::now();
                }
            }
            if changes_meta {
                n.meta_dirty = true;
            }
            (n.open, n.staged.is_some())
        };
        // Not open (truncate(2), chmod(2) on a path): write through now. Open files upload
        // on flush/close.
        if open == 0 {
            self.flush(ino)?;
            if staged {
                self.drop_staging(ino);
            }
        }
        self.cached(ino)
    }

    fn apply_meta(a: &mut Attr, set: &SetAttr) {
        if let Some(m) = set.mode {
            a.perm = m & 0o7777;
        }
        if let Some(u) = set.uid {
            a.uid = u;
        }
        if let Some(g) = set.gid {
            a.gid = g;
        }
        if let Some(t) = set.mtime {
            a.mtime = t;
        }
    }

    fn drop_staging(&self, ino: u64) {
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            let clean = n.staged.as_ref().is_some_and(|s| !s.lock().dirty);
            if clean && n.open == 0 {
                n.staged = None;
            }
        }
    }

    // ---- open files ----

    fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(h));
        fh
    }

    fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        self.handles.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn open(&self, ino: u64, write: bool) -> FsResult<u64> {
        if write {
            self.check_writable()?;
        }
        let mut t = self.table.lock();
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if n.attr.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        n.open += 1;
        drop(t);
        Ok(self.new_handle(Handle::File {
            ino,
            ra: Mutex::new(ReadAhead {
                buf: Vec::new(),
                start: 0,
                window: 128 << 10,
                next: 0,
                prefetch: std::collections::VecDeque::new(),
            }),
        }))
    }

    /// Create and open an empty file (uploaded on flush).
    pub fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::File,
            size: 0,
            perm: mode & 0o7777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let attr = {
            let mut t = self.table.lock();
            if let Some(old) = t.by_path.remove(&path) {
                if let Some(n) = t.nodes.get_mut(&old) {
                    n.gone = true;
                }
            }
            drop(t);
            self.remember(&path, attr, true)
        };
        let staged = self.stage(attr.ino, true)?;
        staged.lock().dirty = true;
        let fh = self.open(attr.ino, true)?;
        Ok((attr, fh))
    }

    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.read_with(ino, fh, offset, size, <[u8]>::to_vec)
    }

    /// Read up to `size` bytes at `offset` and hand them to `reply` without copying them
    /// out of the read-ahead window first.
    pub fn read_with<R>(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        reply: impl FnOnce(&[u8]) -> R,
    ) -> FsResult<R> {
        let (path, staged, file_size) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (n.path.clone(), n.staged.clone(), n.attr.size)
        };
        if let Some(staged) = staged {
            let s = staged.lock();
            let len = (size as u64).min(s.size.saturating_sub(offset)) as usize;
            let mut buf = vec![0u8; len];
            s.file
                .read_exact_at(&mut buf, offset)
                .map_err(|_| Errno::EIO)?;
            return Ok(reply(&buf));
        }
        if offset >= file_size {
            return Ok(reply(&[]));
        }
        let h = self.handle(fh)?;
        let Handle::File { ra, ino: of } = &*h else {
            return Err(Errno::EBADF);
        };
        if *of != ino {
            return Err(Errno::EBADF);
        }
        let mut ra = ra.lock();
        let want_end = (offset + size as u64).min(file_size);
        let sequential = offset == ra.next;
        // Move forward through prefetched windows while the read starts past the buffer or
        // straddles its end (a straddling read keeps the tail of the current window).
        loop {
            let buf_end = ra.start + ra.buf.len() as u64;
            if offset >= ra.start && want_end <= buf_end {
                break;
            }
            let usable = ra.prefetch.front().is_some_and(|p| {
                p.start == buf_end && offset >= ra.start && offset < p.start + p.len
            });
            if !usable {
                // A seek (or a cold start): drop what was fetched ahead, fetch here.
                ra.prefetch.clear();
                ra.window = if sequential {
                    (ra.window * 2).min(self.opts.max_readahead)
                } else {
                    128 << 10
                };
                let len = (size as u64).max(ra.window).min(file_size - offset);
                ra.buf = self.client.get_range(&path, offset, len).map_err(errno)?;
                ra.start = offset;
                break;
            }
            let Some(p) = ra.prefetch.pop_front() else {
                break;
            };
            let next = p.task.join().map_err(|_| Errno::EIO)?.map_err(errno)?;
            if offset >= buf_end {
                ra.buf = next;
                ra.start = p.start;
            } else {
                let keep = ((offset - ra.start) as usize).min(ra.buf.len());
                let mut joined = ra.buf.split_off(keep);
                joined.extend_from_slice(&next);
                ra.buf = joined;
                ra.start = offset;
            }
        }
        ra.next = want_end;
        // Reading sequentially: keep the next windows coming while this one is served.
        if sequential && ra.window >= 1 << 20 {
            while ra.prefetch.len() < PREFETCH_DEPTH {
                let end = ra
                    .prefetch
                    .back()
                    .map_or(ra.start + ra.buf.len() as u64, |p| p.start + p.len);
                if end >= file_size {
                    break;
                }
                let window = (ra.window * 2).min(self.opts.max_readahead);
                let len = window.min(file_size - end);
                // Many files read at once share the budget; past it, reads fetch on demand.
                let Some(charge) = Charge::take(&self.prefetched, len, self.opts.readahead_budget)
                else {
                    break;
                };
                ra.window = window;
                let client = self.client.clone();
                let key = path.clone();
                ra.prefetch.push_back(Prefetch {
                    start: end,
                    len,
                    task: std::thread::spawn(move || client.get_range(&key, end, len)),
                    _charge: charge,
                });
            }
        }
        let from = (offset - ra.start) as usize;
        let to = ((want_end - ra.start) as usize).min(ra.buf.len());
        Ok(reply(ra.buf.get(from..to).unwrap_or(&[])))
    }

    /// Bytes of prefetched windows held or being fetched, over all open files.
    pub fn prefetched_bytes(&self) -> u64 {
        self.prefetched.load(Ordering::Acquire)
    }

    /// The last close of a file: upload if dirty, then drop its staging file.
    pub fn release(&self, ino: u64, fh: u64) -> FsResult<()> {
        self.handles.lock().remove(&fh);
        let last = {
            let mut t = self.table.lock();
            match t.nodes.get_mut(&ino) {
                Some(n) => {
                    n.open = n.open.saturating_sub(1);
                    n.open == 0
                }
                None => false,
            }
        };
        let mut result = Ok(());
        if last {
            result = self.flush(ino);
            let mut t = self.table.lock();
            let remove = match t.nodes.get_mut(&ino) {
                Some(n) => {
                    if result.is_ok() || n.gone {
                        n.staged = None;
                    }
                    n.lookups == 0 && n.staged.is_none()
                }
                None => false,
            };
            if remove {
                if let Some(n) = t.nodes.remove(&ino) {
                    if t.by_path.get(&n.path) == Some(&ino) {
                        t.by_path.remove(&n.path);
                    }
                }
            }
        }
        result
    }

    // ---- namespace ----

    /// The path of a name about to be made in `parent`: writable mount, free name.
    fn new_name(&self, parent: u64, name: &str) -> FsResult<String> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        match self.probe(&path) {
            Ok(_) => Err(Errno::EEXIST),
            Err(Errno::ENOENT) => Ok(path),
            Err(e) => Err(e),
        }
    }

    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let path = self.new_name(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::Dir,
            size: 0,
            perm: mode & 0o7777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let mut empty: &[u8] = &[];
        self.client
            .put(&format!("{path}/"), &mut empty, 0, &Self::meta_of(&attr))
            .map_err(errno)?;
        Ok(self.remember(&path, attr, true))
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let path = self.new_name(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::Symlink,
            size: target.len() as u64,
            perm: 0o777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let mut body = target.as_bytes();
        self.client
            .put(&path, &mut body, target.len() as u64, &Self::meta_of(&attr))
            .map_err(errno)?;
        Ok(self.remember(&path, attr, true))
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let attr = self.cached(ino)?;
        if attr.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        let path = self.path_of(ino)?;
        self.client
            .get_range(&path, 0, attr.size.max(1))
            .map_err(errno)
    }

    /// Entries directly below `path` (first page only when `max` is small).
    fn has_children(&self, path: &str) -> FsResult<bool> {
        let dir = format!("{path}/");
        let l = self.client.list(&dir, true, None, 2).map_err(errno)?;
        let remote = l.prefixes.iter().any(|_| true) || l.objects.iter().any(|o| o.key != dir);
        if remote {
            return Ok(true);
        }
        // Files created here but not uploaded yet.
        let t = self.table.lock();
        Ok(t.nodes.values().any(|n| {
            !n.gone
                && n.staged.as_ref().is_some_and(|s| s.lock().dirty)
                && parent_of(&n.path) == path
        }))
    }

    fn forget_path(&self, path: &str) {
        let mut t = self.table.lock();
        if let Some(ino) = t.by_path.remove(path) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.gone = true;
                n.staged = None;
            }
        }
    }

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let local_only = {
            let t = self.table.lock();
            t.by_path
                .get(&path)
                .and_then(|i| t.nodes.get(i))
                .is_some_and(|n| n.staged.as_ref().is_some_and(|s| s.lock().dirty))
        };
        let attr = match self.probe(&path) {
            Ok(a) => Some(a),
            Err(Errno::ENOENT) if local_only => None,
            Err(e) => return Err(e),
        };
        if attr.is_some_and(|a| a.kind == Kind::Dir) {
            return Err(Errno::EISDIR);
        }
        if attr.is_some() {
            self.client.delete(&path).map_err(errno)?;
        }
        self.forget_path(&path);
        self.invalidate_usage();
        Ok(())
    }

    pub fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let attr = self.probe(&path)?;
        if attr.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if self.has_children(&path)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.client.delete(&format!("{path}/")).map_err(errno)?;
        self.forget_path(&path);
        Ok(())
    }

    /// Rename a file (server-side copy + delete) or a directory (every key below it).
    /// Not atomic: a crash midway leaves both names, never neither.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> FsResult<()> {
        self.check_writable()?;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        if from == to {
            return Ok(());
        }
        // Unsaved data goes to the store first, under the old name.
        let known = self.table.lock().by_path.get(&from).copied();
        if let Some(ino) = known {
            self.flush(ino)?;
        }
        let src = self.probe(&from)?;
        if src.kind == Kind::Dir && to.starts_with(&format!("{from}/")) {
            return Err(Errno::EINVAL);
        }
        match self.probe(&to) {
            Ok(dst) => {
                if noreplace {
                    return Err(Errno::EEXIST);
                }
                match (src.kind == Kind::Dir, dst.kind == Kind::Dir) {
                    (false, true) => return Err(Errno::EISDIR),
                    (true, false) => return Err(Errno::ENOTDIR),
                    (true, true) => {
                        if self.has_children(&to)? {
                            return Err(Errno::ENOTEMPTY);
                        }
                        self.client.delete(&format!("{to}/")).map_err(errno)?;
                    }
                    (false, false) => {}
                }
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        if src.kind == Kind::Dir {
            let prefix = format!("{from}/");
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list(&prefix, false, after.as_deref(), 1000)
                    .map_err(errno)?;
                for o in &page.objects {
                    let rest = &o.key[prefix.len()..];
                    let dest = format!("{to}/{rest}");
                    self.client.copy(&o.key, &dest, None).map_err(errno)?;
                    self.client.delete(&o.key).map_err(errno)?;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        } else {
            self.client.copy(&from, &to, None).map_err(errno)?;
            self.client.delete(&from).map_err(errno)?;
        }
        // Move table entries: the node itself and, for a directory, everything below.
        let mut t = self.table.lock();
        if let Some(old) = t.by_path.remove(&to) {
            if let Some(n) = t.nodes.get_mut(&old) {
                n.gone = true;
            }
        }
        let below = format!("{from}/");
        let moved: Vec<(String, u64)> = t
            .by_path
            .iter()
            .filter(|(p, _)| **p == from || p.starts_with(&below))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, ino) in moved {
            t.by_path.remove(&p);
            let np = format!("{to}{}", &p[from.len()..]);
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.path = np.clone();
                n.fetched = Instant::now() - self.opts.attr_ttl;
            }
            t.by_path.insert(np, ino);
        }
        Ok(())
    }

    // ---- directories ----

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let attr = self.cached(ino)?;
        if attr.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(self.new_handle(Handle::Dir {
            ino,
            page: Mutex::new(DirPage::default()),
        }))
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }

    /// Entries from `offset` on (0 = start), at most `max` of them. Offsets 1 and 2 are `.`
    /// and `..`; the listing is fetched a page at a time, so huge directories stream.
    pub fn readdir(&self, ino: u64, fh: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        const PAGE: usize = 1000;
        let h = self.handle(fh)?;
        let Handle::Dir { ino: dino, page } = &*h else {
            return Err(Errno::EBADF);
        };
        if *dino != ino {
            return Err(Errno::EBADF);
        }
        let path = self.path_of(ino)?;
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut out = Vec::new();
        let mut off = offset;
        if off == 0 {
            out.push(DirEntry {
                ino,
                offset: 1,
                kind: Kind::Dir,
                name: ".".into(),
            });
            off = 1;
        }
        if off == 1 {
            let parent = {
                let t = self.table.lock();
                t.by_path.get(parent_of(&path)).copied().unwrap_or(ROOT)
            };
            out.push(DirEntry {
                ino: parent,
                offset: 2,
                kind: Kind::Dir,
                name: "..".into(),
            });
            off = 2;
        }
        let mut p = page.lock();
        // `off` - 2 is the index (in the whole listing) of the next entry to return.
        if !p.started || off - 2 < p.base {
            // (Re)start the listing: first call, or a rewind.
            *p = DirPage::default();
            self.fill_page(&prefix, &mut p, None, PAGE)?;
            p.started = true;
        }
        while out.len() < max {
            let idx = off - 2;
            if idx < p.base + p.entries.len() as u64 {
                let (name, kind) = p.entries[(idx - p.base) as usize].clone();
                let ino = self.entry_ino(&prefix, &name);
                out.push(DirEntry {
                    ino,
                    offset: off + 1,
                    kind,
                    name,
                });
                off += 1;
                continue;
            }
            let Some(after) = p.next.clone() else { break };
            p.base += p.entries.len() as u64;
            self.fill_page(&prefix, &mut p, Some(after), PAGE)?;
            if p.entries.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// The inode of a listed entry if the kernel knows it, else a fresh one.
    fn entry_ino(&self, prefix: &str, name: &str) -> u64 {
        let path = format!("{prefix}{name}");
        let t = self.table.lock();
        if let Some(&ino) = t.by_path.get(&path) {
            return ino;
        }
        drop(t);
        // Not in the table: readdir inode numbers are hints; lookup assigns the real one.
        // Use a stable hash-based number well above the table's range.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&path, &mut h);
        std::hash::Hasher::finish(&h) | (1 << 63)
    }

    fn fill_page(
        &self,
        prefix: &str,
        p: &mut DirPage,
        after: Option<String>,
        max: usize,
    ) -> FsResult<()> {
        let l = self
            .client
            .list(prefix, true, after.as_deref(), max)
            .map_err(errno)?;
        let mut entries: Vec<(String, Kind)> = Vec::new();
        for o in &l.objects {
            let name = &o.key[prefix.len().min(o.key.len())..];
            if name.is_empty() {
                continue; // this directory's own marker
            }
            entries.push((name.to_string(), Kind::File));
        }
        for d in &l.prefixes {
            let name = d[prefix.len().min(d.len())..].trim_end_matches('/');
            if name.is_empty() {
                continue;
            }
            // A file and a directory of the same name: the file wins (as lookup does).
            if !entries.iter().any(|(n, _)| n == name) {
                entries.push((name.to_string(), Kind::Dir));
            }
        }
        if after.is_none() {
            // Files created here and not uploaded yet.
            let t = self.table.lock();
            let dir = prefix.trim_end_matches('/');
            for n in t.nodes.values() {
                if !n.gone
                    && parent_of(&n.path) == dir
                    && !n.path.is_empty()
                    && n.staged.as_ref().is_some_and(|s| s.lock().dirty)
                {
                    let name = &n.path[prefix.len()..];
                    if !entries.iter().any(|(e, _)| e == name) {
                        entries.push((name.to_string(), n.attr.kind));
                    }
                }
            }
        }
        entries.sort();
        // Symlinks show as files in listings; lookup tells the truth.
        p.entries = entries;
        p.next = l.next;
        Ok(())
    }

    // ---- statfs ----

    /// (blocks, free blocks, files, free files) in [`BLOCK`] units, from the volume quota.
    pub fn statfs(&self) -> (u64, u64, u64, u64) {
        const NO_QUOTA: u64 = 1 << 50; // 1 PiB
        match self.usage() {
            Some(u) if u.quota > 0 => {
                let total = u.quota / BLOCK;
                let used = (u.used.saturating_sub(u.parts) + self.pending_growth()).div_ceil(BLOCK);
                (
                    total,
                    total.saturating_sub(used),
                    u.objects + 1_000_000,
                    1_000_000,
                )
            }
            Some(u) => {
                let total = NO_QUOTA / BLOCK;
                (
                    total,
                    total - u.used.div_ceil(BLOCK).min(total),
                    u.objects + 1_000_000,
                    1_000_000,
                )
            }
            None => (NO_QUOTA / BLOCK, NO_QUOTA / BLOCK, 1_000_000, 1_000_000),
        }
    }
}
