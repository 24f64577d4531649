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
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use parking_lot::Mutex;

use super::client::{ClientError, Head, ObjectClient, Usage};

mod dir;
mod namespace;
mod read;
mod write;

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
    /// The ETag of the object the first read came from: later reads ask for it.
    etag: Option<String>,
}

struct Prefetch {
    start: u64,
    len: u64,
    task: std::thread::JoinHandle<Result<(Vec<u8>, String), ClientError>>,
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
        ClientError::QuotaExceeded | ClientError::StorageFull => Errno::ENOSPC,
        ClientError::AccessDenied => Errno::EACCES,
        ClientError::BadCredentials(code) => {
            tracing::error!("the object store refused the mount's credentials ({code})");
            Errno::EACCES
        }
        ClientError::NameTooLong => Errno::ENAMETOOLONG,
        ClientError::Changed => {
            tracing::warn!("an open file's object was replaced in the store: its reads fail");
            Errno::EIO
        }
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
}
