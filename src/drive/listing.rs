//! One page of a directory for a listing: the smallest names a walk still needs, so that a
//! page of a huge directory costs one pass over it on each drive and sends only the page.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Which names of a directory a listing wants (see [`crate::drive::Drive::list_dir`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirQuery {
    /// Only names strictly after this one (resuming the directory where the last page ended).
    pub from: Option<String>,
    /// The walk's start-after key: a name is skipped when its key and every key below it
    /// sort at or before this one.
    pub after: String,
    /// The walk's key prefix: a name is skipped when neither its key nor any key below it
    /// starts with this.
    pub prefix: String,
    /// At most this many names, the smallest (at least one).
    pub limit: usize,
}

/// The names a [`DirQuery`] selected, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage {
    pub names: Vec<String>,
    /// More wanted names follow the last one.
    pub more: bool,
    /// Those of `names` this drive flags as a delete marker with nothing below it (see
    /// [`MARKER_FLAG`]): a listing of latest versions may skip them unread.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub markers: Vec<String>,
}

/// Prefix of the empty file `@dm.<name>` a drive keeps beside the directory `<name>` of an
/// object whose latest version is a delete marker and below which no key is stored. Set
/// after such a commit, removed (durably) before any commit that breaks either condition,
/// so a flag present is always true on its drive; a flag missing only costs a read.
pub const MARKER_FLAG: &str = "@dm.";

/// Sorted, distinct names kept compactly: their bytes end to end and where each one ends
/// (a million 12-byte names take ~20 MiB, where as `String`s they took ~50 MiB).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    bytes: String,
    ends: Vec<usize>,
}

/// Names gathered in any order, end to end, to be sorted into [`Names`].
#[derive(Debug, Default)]
pub struct Gathered {
    bytes: String,
    spans: Vec<(usize, usize)>,
}

impl Gathered {
    pub fn push(&mut self, name: &str) {
        let start = self.bytes.len();
        self.bytes.push_str(name);
        self.spans.push((start, self.bytes.len()));
    }

    fn name(&self, (start, end): (usize, usize)) -> &str {
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// The names sorted (and distinct: a directory's names are).
    pub fn sort(mut self) -> Names {
        let mut spans = std::mem::take(&mut self.spans);
        spans.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
        spans.dedup_by(|a, b| self.name(*a) == self.name(*b));
        let mut names = Names {
            bytes: String::with_capacity(self.bytes.len()),
            ends: Vec::with_capacity(spans.len()),
        };
        for span in spans {
            names.bytes.push_str(self.name(span));
            names.ends.push(names.bytes.len());
        }
        names
    }
}

impl<S: AsRef<str>> FromIterator<S> for Gathered {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        let mut gathered = Gathered::default();
        for n in names {
            gathered.push(n.as_ref());
        }
        gathered
    }
}

impl Names {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th name (empty past the end).
    pub fn get(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or_default()
    }

    /// The names from the `from`-th on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &str> + '_ {
        (from..self.len()).map(|i| self.get(i))
    }

    /// How many names (a prefix of them) satisfy `pred`, which holds for a prefix.
    pub fn partition_point(&self, pred: impl Fn(&str) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Where `name` is, or where it would go.
    pub fn binary_search(&self, name: &str) -> Result<usize, usize> {
        let i = self.partition_point(|n| n < name);
        if i < self.len() && self.get(i) == name {
            Ok(i)
        } else {
            Err(i)
        }
    }

    /// Memory held, in bytes.
    pub fn held(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }

    /// Append a name that sorts after every name held.
    fn push_sorted(&mut self, name: &str) {
        self.bytes.push_str(name);
        self.ends.push(self.bytes.len());
    }

    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

impl<S: AsRef<str>> FromIterator<S> for Names {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> Self {
        names.into_iter().collect::<Gathered>().sort()
    }
}

/// A change a drive makes to a directory's names, told to its [`DirCache`] so that a cached
/// directory stays in step without being read again.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// The directory `path` (a key's, named `name`) was made.
    Added { name: &'a str, path: &'a Path },
    /// The directory `path` (named `name`) was removed.
    Removed { name: &'a str, path: &'a Path },
    /// The delete-marker flag of `name` was set or removed.
    Flagged { name: &'a str, on: bool },
}

/// Changes kept beside the sorted names before they are merged into new ones.
const DELTA_MAX: usize = 4096;

/// The names of a directory as last read, sorted, with which are flagged.
#[derive(Debug, Default)]
struct Base {
    names: Names,
    /// Positions in `names` of the flagged ones, ascending.
    marked: Vec<usize>,
}

/// A directory's names, sorted, and which of them are flagged delete markers: the names as
/// last read (shared, compact) and the changes made since (few, merged in now and then).
#[derive(Debug, Default, Clone)]
pub struct Listed {
    base: Arc<Base>,
    /// Names made (true) or removed (false) since `base` was read.
    names: BTreeMap<String, bool>,
    /// Flags set (true) or removed (false) since `base` was read.
    flags: BTreeMap<String, bool>,
}

impl Listed {
    /// Sort `names` and mark those in `flagged`.
    pub fn new(names: Gathered, flagged: &HashSet<String>) -> Listed {
        let names = names.sort();
        let marked = if flagged.is_empty() {
            Vec::new()
        } else {
            (0..names.len())
                .filter(|&i| flagged.contains(names.get(i)))
                .collect()
        };
        // A flag without its directory (yet) is kept aside for when the directory comes.
        let flags = flagged
            .iter()
            .filter(|f| names.binary_search(f).is_err())
            .map(|f| (f.clone(), true))
            .collect();
        Listed {
            base: Arc::new(Base { names, marked }),
            names: BTreeMap::new(),
            flags,
        }
    }

    pub fn len(&self) -> usize {
        let mut n = self.base.names.len();
        for (name, &present) in &self.names {
            match (self.base.names.binary_search(name).is_ok(), present) {
                (false, true) => n += 1,
                (true, false) => n = n.saturating_sub(1),
                _ => {}
            }
        }
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains(&self, name: &str) -> bool {
        match self.names.get(name) {
            Some(&present) => present,
            None => self.base.names.binary_search(name).is_ok(),
        }
    }

    fn flagged(&self, name: &str) -> bool {
        match self.flags.get(name) {
            Some(&on) => on,
            None => self
                .base
                .names
                .binary_search(name)
                .is_ok_and(|i| self.base.marked.binary_search(&i).is_ok()),
        }
    }

    /// The names (sorted) from the first one for which `before` is false (`before` holds
    /// for a prefix of the sorted names).
    fn iter_from<'a>(
        &'a self,
        before: &'a dyn Fn(&str) -> bool,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.merged(before).map(|(n, _)| n)
    }

    /// [`Listed::iter_from`] with each name's position in the base names if it is one.
    fn merged<'a>(
        &'a self,
        before: &'a dyn Fn(&str) -> bool,
    ) -> impl Iterator<Item = (&'a str, Option<usize>)> + 'a {
        let names = &self.base.names;
        let mut i = names.partition_point(before);
        let mut delta = self
            .names
            .iter()
            .skip_while(move |(n, _)| before(n))
            .peekable();
        std::iter::from_fn(move || loop {
            let b = (i < names.len()).then(|| names.get(i));
            let d = delta.peek().map(|&(n, &present)| (n.as_str(), present));
            match (b, d) {
                (None, None) => return None,
                (Some(b), Some((n, present))) if n <= b => {
                    delta.next();
                    let at = (n == b).then_some(i);
                    if n == b {
                        i += 1;
                    }
                    if present {
                        return Some((n, at));
                    }
                }
                (None, Some((n, present))) => {
                    delta.next();
                    if present {
                        return Some((n, None));
                    }
                }
                (Some(b), _) => {
                    i += 1;
                    return Some((b, Some(i - 1)));
                }
            }
        })
    }

    /// Every name, sorted.
    pub fn all(&self) -> impl Iterator<Item = &str> + '_ {
        self.iter_from(&|_| false)
    }

    /// Apply a change the drive made to the directory.
    pub fn apply(&mut self, change: Change<'_>) {
        match change {
            Change::Added { name, .. } => self.set_name(name.to_string(), true),
            Change::Removed { name, .. } => self.set_name(name.to_string(), false),
            Change::Flagged { name, on } => self.set_flag(name.to_string(), on),
        }
    }

    fn set_name(&mut self, name: String, present: bool) {
        self.names.insert(name, present);
        self.merge_when_due();
    }

    fn set_flag(&mut self, name: String, on: bool) {
        self.flags.insert(name, on);
        self.merge_when_due();
    }

    fn merge_when_due(&mut self) {
        if self.names.len() + self.flags.len() > DELTA_MAX {
            self.merge();
        }
    }

    /// Merge the changes into new sorted names.
    fn merge(&mut self) {
        let mut names = Names::default();
        let mut marked = Vec::new();
        let mut was_marked = self.base.marked.iter().peekable();
        for (i, (n, at)) in self.merged(&|_| false).enumerate() {
            names.push_sorted(n);
            let base_flag = at.is_some_and(|at| {
                while was_marked.next_if(|&&m| m < at).is_some() {}
                was_marked.peek() == Some(&&at)
            });
            if self.flags.get(n).copied().unwrap_or(base_flag) {
                marked.push(i);
            }
        }
        names.shrink();
        // Flags of names not (or no longer) present are kept aside, as when read.
        let mut flags: BTreeMap<String, bool> = self
            .base
            .marked
            .iter()
            .map(|&i| self.base.names.get(i))
            .filter(|f| !self.contains(f) && !self.flags.contains_key(*f))
            .map(|f| (f.to_string(), true))
            .collect();
        for (f, on) in std::mem::take(&mut self.flags) {
            if on && !self.contains(&f) {
                flags.insert(f, true);
            }
        }
        *self = Listed {
            base: Arc::new(Base { names, marked }),
            names: BTreeMap::new(),
            flags,
        };
    }

    /// The page of these names `q` selects in the directory `dir` (empty or ending in
    /// `/`), with its flagged names: reads only from the first name that can be wanted to
    /// the last one needed.
    pub fn page<'a>(&self, q: &'a DirQuery, dir: &str) -> DirPage {
        let limit = q.limit.max(1);
        // The start key's and the prefix's component at this level.
        let component = |s: &'a str| -> Option<&'a str> {
            s.strip_prefix(dir)
                .map(|rest| rest.split_once('/').map_or(rest, |(c, _)| c))
        };
        let (after_c, prefix_c) = (component(&q.after), component(&q.prefix));
        // A wanted name is after `from`; starts with the prefix's component (or is it);
        // and is no smaller than the start key's component `c` unless it is a prefix of `c`
        // (a name that differs from `c` first by a smaller byte sorts before the start key
        // with all its keys; a prefix `p` of `c` can hold keys `p/…` after it).
        let from = q.from.as_deref();
        let before = |n: &str| {
            from.is_some_and(|f| n <= f)
                || after_c.is_some_and(|c| n < c)
                || prefix_c.is_some_and(|c| n < c)
        };
        // Past the prefix's component (and every name starting with it) nothing is wanted.
        let rest = q.prefix.strip_prefix(dir).filter(|r| !r.is_empty());
        let past_prefix = |n: &str| match rest {
            Some(r) => match r.split_once('/') {
                Some((c, _)) => n > c,
                None => n > r && !n.starts_with(r),
            },
            None => false,
        };
        let mut page = DirPage::default();
        // Prefixes of the start key's component (the empty name, a key with `//`,
        // included) sort before it but can be wanted.
        let c = after_c.unwrap_or_default();
        let prefixes = (0..c.len())
            .filter(|&i| c.is_char_boundary(i))
            .map(|i| &c[..i])
            .filter(|p| before(p) && self.contains(p));
        for n in prefixes.chain(self.iter_from(&before)) {
            if past_prefix(n) {
                break;
            }
            if !q.wants(dir, n) {
                continue;
            }
            if page.names.len() == limit {
                page.more = true;
                break;
            }
            page.names.push(n.to_string());
        }
        if !self.base.marked.is_empty() || !self.flags.is_empty() {
            page.markers = page
                .names
                .iter()
                .filter(|n| self.flagged(n))
                .cloned()
                .collect();
        }
        page
    }

    /// Memory held, in bytes (the changes counted roughly).
    pub fn held(&self) -> usize {
        let delta: usize = self
            .names
            .keys()
            .chain(self.flags.keys())
            .map(|n| n.len() + 64)
            .sum();
        self.base.names.held() + self.base.marked.capacity() * std::mem::size_of::<usize>() + delta
    }
}

impl DirQuery {
    /// Whether the name `name` of the directory `dir` (empty or ending in `/`) is wanted.
    pub fn wants(&self, dir: &str, name: &str) -> bool {
        if self.from.as_deref().is_some_and(|f| name <= f) {
            return false;
        }
        let key = || dir.bytes().chain(name.bytes());
        let sub = || key().chain(std::iter::once(b'/'));
        let sub_len = dir.len() + name.len() + 1;
        let p = &self.prefix;
        // Some key at or below `key` starts with the prefix: `key/` starts with it (so does
        // the key, or keys below), or the prefix continues below `key/`.
        let under_prefix = (sub_len >= p.len() && sub().take(p.len()).eq(p.bytes()))
            || (p.len() >= sub_len && sub().eq(p.bytes().take(sub_len)));
        if !under_prefix {
            return false;
        }
        // The key itself, or keys below `key/`, sort after `after`.
        key().cmp(self.after.bytes()) == Ordering::Greater
            || sub().cmp(self.after.bytes()) == Ordering::Greater
            || self.after.len() >= sub_len && sub().eq(self.after.bytes().take(sub_len))
    }

    /// The page of `names` (in any order) this query selects: one pass, memory bounded by
    /// the limit. Listings read a directory's names sorted (to share one read among
    /// pages); this stays as the tests' reference for [`DirQuery::select_sorted`].
    #[cfg(test)]
    pub fn select(&self, dir: &str, names: impl IntoIterator<Item = String>) -> DirPage {
        let limit = self.limit.max(1);
        let mut heap: std::collections::BinaryHeap<String> =
            std::collections::BinaryHeap::with_capacity(limit.min(4096) + 1);
        let mut more = false;
        for name in names {
            if !self.wants(dir, &name) {
                continue;
            }
            if heap.len() < limit {
                heap.push(name);
            } else {
                more = true;
                if heap.peek().is_some_and(|top| name < *top) {
                    heap.pop();
                    heap.push(name);
                }
            }
        }
        DirPage {
            names: heap.into_sorted_vec(),
            more,
            markers: Vec::new(),
        }
    }
}

/// Directories with at least this many entries have their sorted names cached.
pub const CACHED_DIR_MIN: usize = 256;
/// Directories cached per drive (most recently used kept).
const CACHED_DIRS: usize = 64;
/// Memory for cached names per drive over all its directories, in bytes (a directory of
/// ~3 million 12-byte names fits); a larger directory is read whole for every page.
const CACHED_BYTES: usize = 64 << 20;

/// What identifies a directory's contents without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirStamp {
    dev: u64,
    ino: u64,
    size: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    pub fn of(m: &std::fs::Metadata) -> Self {
        DirStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// From a `stat` made relative to a directory descriptor.
    pub fn of_stat(st: &rustix::fs::Stat) -> Self {
        // Nanoseconds are below 10⁹: they fit.
        let ns = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        DirStamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            nlink: st.st_nlink,
            mtime: (st.st_mtime, ns(st.st_mtime_nsec)),
            ctime: (st.st_ctime, ns(st.st_ctime_nsec)),
        }
    }

    /// Tests: only which directory it is, as a clock too coarse to tell changes apart
    /// (and a link count not looked at) would leave it.
    #[cfg(test)]
    pub fn identity_only(self) -> Self {
        DirStamp {
            size: 0,
            nlink: 0,
            mtime: (0, 0),
            ctime: (0, 0),
            ..self
        }
    }

    /// Tests: a stamp of the one directory (device 1, inode 2) at time `t`.
    #[cfg(test)]
    pub fn at(t: i64) -> Self {
        DirStamp {
            dev: 1,
            ino: 2,
            size: 4096,
            nlink: 2,
            mtime: (t, 0),
            ctime: (t, 0),
        }
    }

    /// The same directory (not one made anew at its path or on another filesystem).
    fn same_dir(&self, other: &DirStamp) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// A directory's path, its stamp, and its sorted names as of that stamp.
type CachedDir = (PathBuf, DirStamp, Arc<Listed>);

/// Stripes of the per-directory lock (see [`DirCache`]).
const STRIPES: usize = 64;

/// Sorted names of a drive's large directories, so that paging through a directory of a
/// million keys does not read it whole for every page. Bounded: [`CACHED_DIRS`]
/// directories, [`CACHED_BYTES`] bytes.
///
/// Kept in step with the drive's own changes rather than read again. Every change the
/// drive makes to a directory's names goes through [`DirCache::change`], one at a time per
/// directory (a striped lock): it stats the directory before and after the filesystem
/// call, drops a cached entry whose stamp is not the one before (something else changed
/// the directory), applies the change to it and takes the stamp after. A change made while
/// the directory is being read is logged for that read with both stamps; the read is kept,
/// with the logged changes applied, only if the stamps chain from the one taken before the
/// read to the directory's stamp when it is kept — so a change behind the drive's back,
/// during a read or between changes, is a miss and a fresh read, never stale names. (Only
/// a change that lands between the before and after stats of one of the drive's own goes
/// unseen; directory timestamps are fine-grained once observed on current kernels.)
#[derive(Debug)]
pub struct DirCache {
    entries: parking_lot::Mutex<Vec<CachedDir>>,
    /// Reads in flight by directory and stamp: concurrent pages of one large directory
    /// share one read instead of each reading it whole.
    reads: parking_lot::Mutex<Vec<(PathBuf, DirStamp, Arc<Reading>)>>,
    /// Directories with changes in flight, and how many.
    changing: parking_lot::Mutex<Vec<(PathBuf, usize)>>,
    /// One change (or the keeping of a read) at a time per directory, by hash of its path.
    stripes: [parking_lot::Mutex<()>; STRIPES],
}

impl Default for DirCache {
    fn default() -> Self {
        DirCache {
            entries: Default::default(),
            reads: Default::default(),
            changing: Default::default(),
            stripes: std::array::from_fn(|_| parking_lot::Mutex::new(())),
        }
    }
}

/// Ends a change's time in flight however the changer leaves.
struct ChangeGuard<'a> {
    cache: &'a DirCache,
    dir: &'a Path,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        let mut changing = self.cache.changing.lock();
        if let Some(i) = changing.iter().position(|(p, _)| p == self.dir) {
            let count = &mut changing[i].1;
            *count = count.saturating_sub(1);
            if *count == 0 {
                changing.swap_remove(i);
            }
        }
    }
}

/// Changes logged for a read in flight beyond this many make it not worth keeping.
const LOG_MAX: usize = 4 * DELTA_MAX;

/// A change as logged for a read in flight, with the directory's stamps around it.
#[derive(Debug)]
struct Logged {
    name: String,
    /// A name (true) or a flag (false).
    is_name: bool,
    /// Present (made, set) or not.
    on: bool,
    before: Option<DirStamp>,
    after: Option<DirStamp>,
}

/// One directory read others wait on: its result once done (`None` inside: it failed, and
/// each waiter reads for itself).
#[derive(Debug, Default)]
struct Reading {
    done: parking_lot::Mutex<Option<Option<Arc<Listed>>>>,
    ready: parking_lot::Condvar,
    /// Changes the drive made to the directory while the read ran (`None`: one failed, the
    /// directory went, or too many; the read is not kept).
    log: parking_lot::Mutex<Option<Vec<Logged>>>,
}

impl Reading {
    fn new() -> Reading {
        Reading {
            log: parking_lot::Mutex::new(Some(Vec::new())),
            ..Reading::default()
        }
    }

    fn finish(&self, listed: Option<Arc<Listed>>) {
        let mut done = self.done.lock();
        if done.is_none() {
            *done = Some(listed);
        }
        self.ready.notify_all();
    }
}

/// Ends a read for its waiters however the reader leaves (a panic included).
struct ReadingGuard<'a> {
    cache: &'a DirCache,
    reading: Arc<Reading>,
}

impl Drop for ReadingGuard<'_> {
    fn drop(&mut self) {
        self.cache
            .reads
            .lock()
            .retain(|(_, _, r)| !Arc::ptr_eq(r, &self.reading));
        self.reading.finish(None);
    }
}

fn stamp_now(dir: &Path) -> Option<DirStamp> {
    std::fs::metadata(dir).ok().map(|m| DirStamp::of(&m))
}

impl DirCache {
    fn stripe(&self, dir: &Path) -> parking_lot::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        self.stripes[(h.finish() % STRIPES as u64) as usize].lock()
    }

    /// The names of `dir` as of `stamp` (taken before reading): cached, from a read of the
    /// same directory at the same stamp already in flight when there is one (blocking until
    /// it ends), else from `read` (kept when large). A directory unchanged since the other
    /// reader's stamp has the names that reader finds. Called on a blocking thread.
    pub fn read_once<E>(
        &self,
        dir: &Path,
        stamp: &DirStamp,
        read: impl FnOnce() -> Result<Listed, E>,
    ) -> Result<Arc<Listed>, E> {
        if let Some(listed) = self.get(dir, stamp) {
            return Ok(listed);
        }
        let joined = {
            let mut reads = self.reads.lock();
            match reads.iter().find(|(p, s, _)| p == dir && s == stamp) {
                Some((_, _, r)) => r.clone(),
                None => {
                    let r = Arc::new(Reading::new());
                    reads.push((dir.to_path_buf(), stamp.clone(), r.clone()));
                    drop(reads);
                    let guard = ReadingGuard {
                        cache: self,
                        reading: r,
                    };
                    let listed = read().map(|listed| self.put(dir, stamp, listed, &guard.reading));
                    guard.reading.finish(listed.as_ref().ok().cloned());
                    return listed;
                }
            }
        };
        let mut done = joined.done.lock();
        while done.is_none() {
            joined.ready.wait(&mut done);
        }
        if let Some(Some(listed)) = done.as_ref() {
            return Ok(listed.clone());
        }
        drop(done);
        // The read joined failed: read for ourselves.
        read().map(Arc::new)
    }

    #[cfg(test)]
    pub fn cached(&self, dir: &Path, stamp: &DirStamp) -> Option<Arc<Listed>> {
        self.get(dir, stamp)
    }

    /// The cached names of `dir` if they are those of the directory now: the entry holds
    /// the caller's stamp or the directory's current one, or a change of the drive's own,
    /// not yet applied, explains the difference (the page then misses a change made
    /// concurrently with it). An entry found out of date is dropped.
    fn get(&self, dir: &Path, stamp: &DirStamp) -> Option<Arc<Listed>> {
        {
            let mut entries = self.entries.lock();
            let i = entries.iter().position(|(p, _, _)| p == dir)?;
            if entries[i].1 == *stamp {
                return Some(Self::used(&mut entries, i));
            }
        }
        let now = stamp_now(dir);
        let mut entries = self.entries.lock();
        let i = entries.iter().position(|(p, _, _)| p == dir)?;
        if now.as_ref() == Some(&entries[i].1) || self.changing.lock().iter().any(|(p, _)| p == dir)
        {
            return Some(Self::used(&mut entries, i));
        }
        entries.remove(i);
        None
    }

    /// Entry `i`'s names, the entry moved to most recently used (last).
    fn used(entries: &mut Vec<CachedDir>, i: usize) -> Arc<Listed> {
        let entry = entries.remove(i);
        let listed = entry.2.clone();
        entries.push(entry);
        listed
    }

    /// `listed` (read at `stamp`) with the changes made while it was read, kept for `dir`
    /// if it is large and the stamps chain from `stamp` to the directory's stamp now (no
    /// change but the drive's own, logged, happened meanwhile). Under the directory's lock,
    /// so that no change of the drive's own is half done.
    fn put(
        &self,
        dir: &Path,
        stamp: &DirStamp,
        mut listed: Listed,
        reading: &Reading,
    ) -> Arc<Listed> {
        let _one_at_a_time = self.stripe(dir);
        let now = stamp_now(dir);
        let mut entries = self.entries.lock();
        // Whatever is kept (or not), an entry older than this read is out of date.
        entries.retain(|(p, _, _)| p != dir);
        let Some(log) = reading.log.lock().take() else {
            return Arc::new(listed);
        };
        let mut at = Some(stamp.clone());
        let mut chained = true;
        for (i, l) in log.into_iter().enumerate() {
            if l.before == at {
                at = l.after;
            } else if !(i == 0 && l.after == at) {
                // (The first change may have been made before the stamp was taken.)
                chained = false;
            }
            match l.is_name {
                true => listed.set_name(l.name, l.on),
                false => listed.set_flag(l.name, l.on),
            }
        }
        let listed = Arc::new(listed);
        let n = listed.held();
        if !chained
            || at.is_none()
            || at != now
            || listed.len() < CACHED_DIR_MIN
            || n > CACHED_BYTES
        {
            return listed;
        }
        let held = |e: &CachedDir| e.2.held();
        while entries.len() >= CACHED_DIRS
            || entries.iter().map(held).sum::<usize>().saturating_add(n) > CACHED_BYTES
        {
            if entries.is_empty() {
                return listed;
            }
            entries.remove(0);
        }
        if let Some(now) = now {
            entries.push((dir.to_path_buf(), now, listed.clone()));
        }
        listed
    }

    /// Make `change` to the names of `dir` with `op` (the filesystem call, true when it
    /// changed something), keeping any cached names of `dir` in step: applied with the
    /// directory's new stamp when `op` made it, forgotten when `op` fails or the directory
    /// had changed otherwise; logged for the reads of `dir` in flight. Called on a blocking
    /// thread.
    pub fn change<E>(
        &self,
        dir: &Path,
        change: Change<'_>,
        op: impl FnOnce() -> Result<bool, E>,
    ) -> Result<bool, E> {
        let _one_at_a_time = self.stripe(dir);
        {
            let mut changing = self.changing.lock();
            match changing.iter_mut().find(|(p, _)| p == dir) {
                Some((_, count)) => *count += 1,
                None => changing.push((dir.to_path_buf(), 1)),
            }
        }
        let _in_flight = ChangeGuard { cache: self, dir };
        // Stamps matter only to a cached entry of `dir` (none can be added while this
        // change holds the directory's lock) or a read of it in flight; a read that starts
        // during the change gets no stamps for it, so its stamps do not chain and it is not
        // kept. Most new keys go to directories too small to cache: no stats for them.
        let tracked = self.entries.lock().iter().any(|(p, _, _)| p == dir)
            || self.reads.lock().iter().any(|(p, _, _)| p == dir);
        let stamp = || if tracked { stamp_now(dir) } else { None };
        let before = stamp();
        let r = op();
        if matches!(r, Ok(false)) {
            return r;
        }
        let after = stamp();
        let mut entries = self.entries.lock();
        {
            let reads = self.reads.lock();
            for (p, _, reading) in reads.iter() {
                let mut log = reading.log.lock();
                let gone = match change {
                    Change::Added { path, .. } | Change::Removed { path, .. } => {
                        p.starts_with(path)
                    }
                    Change::Flagged { .. } => false,
                };
                if gone {
                    // A directory made or removed: a read of an earlier one is of no use.
                    *log = None;
                } else if p == dir {
                    match (&r, log.as_mut()) {
                        (Ok(_), Some(l)) if l.len() < LOG_MAX => {
                            let (name, is_name, on) = match change {
                                Change::Added { name, .. } => (name, true, true),
                                Change::Removed { name, .. } => (name, true, false),
                                Change::Flagged { name, on } => (name, false, on),
                            };
                            l.push(Logged {
                                name: name.to_string(),
                                is_name,
                                on,
                                before: before.clone(),
                                after: after.clone(),
                            });
                        }
                        _ => *log = None,
                    }
                }
            }
        }
        // A directory made or removed has no cached names (any held are of an earlier one).
        if let Change::Added { path, .. } | Change::Removed { path, .. } = change {
            entries.retain(|(p, _, _)| !p.starts_with(path));
        }
        if let Some(i) = entries.iter().position(|(p, _, _)| p == dir) {
            match (&r, after) {
                (Ok(true), Some(after))
                    if before.as_ref() == Some(&entries[i].1) && after.same_dir(&entries[i].1) =>
                {
                    let entry = &mut entries[i];
                    Arc::make_mut(&mut entry.2).apply(change);
                    entry.1 = after;
                    if entry.2.held() > CACHED_BYTES {
                        entries.remove(i);
                    }
                }
                _ => {
                    entries.remove(i);
                }
            }
        }
        r
    }

    /// Forget every directory at or below `dir` (removed whole), reads in flight included.
    pub fn forget(&self, dir: &Path) {
        let mut entries = self.entries.lock();
        entries.retain(|(p, _, _)| !p.starts_with(dir));
        for (p, _, reading) in self.reads.lock().iter() {
            if p.starts_with(dir) {
                *reading.log.lock() = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// The names `k00000`… of a directory just large enough to cache.
    fn large_listed() -> Listed {
        Listed::new(
            (0..CACHED_DIR_MIN).map(|i| format!("k{i:05}")).collect(),
            &HashSet::new(),
        )
    }

    fn all(listed: &Listed) -> Vec<&str> {
        listed.all().collect()
    }

    fn stamp(ino: u64) -> DirStamp {
        DirStamp {
            dev: 1,
            ino,
            size: 4096,
            nlink: 2,
            mtime: (1, 0),
            ctime: (1, 0),
        }
    }

    /// Concurrent pages of one directory at one stamp share one read; a read of another
    /// stamp is its own; when the shared read fails, each waiter reads for itself.
    #[test]
    fn concurrent_reads_of_one_directory_share_one_read() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(DirCache::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(std::sync::Barrier::new(9));
        let dir = PathBuf::from("/d/big");
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let (cache, reads, gate, dir) =
                    (cache.clone(), reads.clone(), gate.clone(), dir.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    cache
                        .read_once(&dir, &stamp(1), || {
                            reads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(300));
                            Ok::<_, ()>(Listed::new(
                                ["b", "a"].into_iter().collect(),
                                &HashSet::new(),
                            ))
                        })
                        .expect("read")
                })
            })
            .collect();
        gate.wait();
        for w in waiters {
            assert_eq!(all(&w.join().expect("thread")), ["a", "b"]);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for eight pages");
        assert!(cache.reads.lock().is_empty());

        // Another stamp (the directory changed): read anew.
        let again = cache
            .read_once(&dir, &stamp(2), || {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Listed::default())
            })
            .expect("read");
        assert!(again.is_empty());
        assert_eq!(reads.load(Ordering::SeqCst), 2);

        // The shared read fails: the one that joined it reads for itself.
        let started = Arc::new(std::sync::Barrier::new(2));
        let failing = {
            let (cache, dir, started) = (cache.clone(), dir.clone(), started.clone());
            std::thread::spawn(move || {
                cache.read_once(&dir, &stamp(3), || {
                    started.wait();
                    std::thread::sleep(Duration::from_millis(200));
                    Err::<Listed, _>("disk error")
                })
            })
        };
        started.wait();
        let joined = cache
            .read_once(&dir, &stamp(3), || {
                Ok::<_, &str>(Listed::new(["x"].into_iter().collect(), &HashSet::new()))
            })
            .expect("its own read");
        assert_eq!(all(&joined), ["x"]);
        assert_eq!(failing.join().expect("thread").err(), Some("disk error"));
        assert!(cache.reads.lock().is_empty());
    }

    /// Everything at or below `dir + name` as the walk sees it: the object key and keys
    /// under `key/` (a few representatives, enough to cover byte orders around `/`).
    fn wanted_naively(q: &DirQuery, dir: &str, name: &str) -> bool {
        if q.from.as_deref().is_some_and(|f| name <= f) {
            return false;
        }
        let key = format!("{dir}{name}");
        let sub = format!("{key}/");
        let under_prefix =
            key.starts_with(&q.prefix) || sub.starts_with(&q.prefix) || q.prefix.starts_with(&sub);
        under_prefix && (key > q.after || sub > q.after || q.after.starts_with(&sub))
    }

    #[test]
    fn subtrees_the_start_key_is_inside_are_kept() {
        let q = DirQuery {
            from: None,
            after: "a/b".into(),
            prefix: String::new(),
            limit: 10,
        };
        // "a" holds "a/b" and what follows it; "a-" sorts (with its subtree) before "a/b".
        assert!(q.wants("", "a"));
        assert!(!q.wants("", "a-"));
        assert!(q.wants("", "a0"));
        assert!(!q.wants("", "0"));
        assert!(q.wants("a/", "c"));
        // "a/b" itself is not after "a/b", but "a/b/x" is.
        assert!(q.wants("a/", "b"));
        assert!(!q.wants("a/", "a"));
        assert!(q.wants("a/", "b0"));
    }

    #[test]
    fn names_outside_the_prefix_are_skipped() {
        let q = DirQuery {
            from: None,
            after: String::new(),
            prefix: "a/bc".into(),
            limit: 10,
        };
        assert!(q.wants("", "a"));
        assert!(!q.wants("", "b"));
        assert!(!q.wants("a/", "b"));
        assert!(q.wants("a/", "bc"));
        assert!(q.wants("a/", "bcd"));
        assert!(!q.wants("a/", "bd"));
    }

    fn query(limit: usize) -> DirQuery {
        DirQuery {
            from: None,
            after: String::new(),
            prefix: String::new(),
            limit,
        }
    }

    /// A large directory read once is kept; the drive's own changes keep it in step
    /// without a read; a change behind its back is a miss (read again), never stale names.
    #[test]
    fn cache_follows_the_drives_changes_and_misses_others() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        let reads = AtomicUsize::new(0);
        let read_dir = |dir: &Path| -> Result<Listed, std::io::Error> {
            reads.fetch_add(1, Ordering::SeqCst);
            let mut names = Gathered::default();
            for e in std::fs::read_dir(dir)? {
                names.push(&e?.file_name().to_string_lossy());
            }
            Ok(Listed::new(names, &HashSet::new()))
        };
        let stamp = |dir: &Path| DirStamp::of(&std::fs::metadata(dir).expect("stat"));
        let cache = DirCache::default();
        let names = |cache: &DirCache| -> Vec<String> {
            let listed = cache
                .read_once(&dir, &stamp(&dir), || read_dir(&dir))
                .expect("read");
            listed.all().map(String::from).collect()
        };
        for i in 0..CACHED_DIR_MIN {
            std::fs::create_dir(dir.join(format!("k{i:05}"))).expect("mkdir");
        }
        assert_eq!(names(&cache).len(), CACHED_DIR_MIN);
        assert_eq!(names(&cache).len(), CACHED_DIR_MIN);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "kept after one read");

        // The drive's own change: applied, no read.
        let new = dir.join("k-new");
        let change = Change::Added {
            name: "k-new",
            path: &new,
        };
        let made = cache.change(&dir, change, || std::fs::create_dir(&new).map(|()| true));
        assert!(made.expect("mkdir"));
        let old = dir.join("k00007");
        let change = Change::Removed {
            name: "k00007",
            path: &old,
        };
        let removed = cache.change(&dir, change, || std::fs::remove_dir(&old).map(|()| true));
        assert!(removed.expect("rmdir"));
        let listed = names(&cache);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "changes applied, not read");
        assert!(listed.contains(&"k-new".to_string()));
        assert!(!listed.contains(&"k00007".to_string()));
        assert_eq!(listed.len(), CACHED_DIR_MIN);
        // Flags follow too.
        let change = Change::Flagged {
            name: "k00001",
            on: true,
        };
        assert!(cache
            .change(&dir, change, || Ok::<_, ()>(true))
            .expect("flag"));
        let listed = cache
            .read_once(&dir, &stamp(&dir), || read_dir(&dir))
            .expect("read");
        assert_eq!(listed.page(&query(3), "").markers, ["k00001"]);

        // A change behind the drive's back changes the stamp: read again.
        std::fs::create_dir(dir.join("k-behind")).expect("mkdir");
        assert!(names(&cache).contains(&"k-behind".to_string()));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        assert_eq!(names(&cache).len(), CACHED_DIR_MIN + 1);
        assert_eq!(reads.load(Ordering::SeqCst), 2, "the new read kept");

        // A change behind the drive's back, then one of its own: the entry is not taken to
        // the new stamp without the first (it is dropped and read again).
        std::fs::create_dir(dir.join("k-behind2")).expect("mkdir");
        let own = dir.join("k-own");
        let change = Change::Added {
            name: "k-own",
            path: &own,
        };
        assert!(cache
            .change(&dir, change, || std::fs::create_dir(&own).map(|()| true))
            .expect("mkdir"));
        let listed = names(&cache);
        assert_eq!(reads.load(Ordering::SeqCst), 3, "read again");
        assert!(listed.contains(&"k-behind2".to_string()) && listed.contains(&"k-own".to_string()));
        names(&cache);
        assert_eq!(reads.load(Ordering::SeqCst), 3);

        // A change that fails forgets the directory.
        let change = Change::Flagged {
            name: "k00002",
            on: true,
        };
        assert!(cache
            .change(&dir, change, || Err::<bool, _>("disk"))
            .is_err());
        names(&cache);
        assert_eq!(reads.load(Ordering::SeqCst), 4);

        // A directory made anew at a cached path has none of the old names.
        let change = Change::Removed {
            name: "d",
            path: &dir,
        };
        let gone = cache.change(tmp.path(), change, || {
            std::fs::remove_dir_all(&dir).map(|()| true)
        });
        assert!(gone.expect("rm"));
        std::fs::create_dir(&dir).expect("mkdir");
        assert!(names(&cache).is_empty());

        // Too large for the budget: read every time.
        let huge = Listed::new(
            (0..CACHED_BYTES / 8).map(|i| format!("{i:08}")).collect(),
            &HashSet::new(),
        );
        assert!(huge.held() > CACHED_BYTES);
    }

    /// A change made while a directory is read, which the read may have missed, is applied
    /// to what it read before that is kept.
    #[test]
    fn a_change_made_during_a_read_is_applied_to_it() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        for i in 0..CACHED_DIR_MIN {
            std::fs::create_dir(dir.join(format!("k{i:05}"))).expect("mkdir");
        }
        let cache = DirCache::default();
        let reads = AtomicUsize::new(0);
        let stamp = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        let (new, old) = (dir.join("k-new"), dir.join("k00003"));
        let listed = cache
            .read_once(&dir, &stamp, || {
                reads.fetch_add(1, Ordering::SeqCst);
                let listed = large_listed();
                // The changes land after the names were read, before the read ends.
                let change = Change::Added {
                    name: "k-new",
                    path: &new,
                };
                cache.change(&dir, change, || std::fs::create_dir(&new).map(|()| true))?;
                let change = Change::Removed {
                    name: "k00003",
                    path: &old,
                };
                cache.change(&dir, change, || std::fs::remove_dir(&old).map(|()| true))?;
                Ok::<_, std::io::Error>(listed)
            })
            .expect("read");
        let has = |l: &Listed, n: &str| l.all().any(|m| m == n);
        assert!(has(&listed, "k-new") && !has(&listed, "k00003"));
        let now = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        let again = cache
            .read_once(&dir, &now, || {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Listed::default())
            })
            .expect("read");
        assert_eq!(reads.load(Ordering::SeqCst), 1, "kept with its changes");
        assert!(has(&again, "k-new") && !has(&again, "k00003"));

        // A change behind the drive's back while a read runs (with one of the drive's own):
        // the stamps do not chain, so the read is served, not kept.
        let dir = tmp.path().join("f");
        std::fs::create_dir(&dir).expect("mkdir");
        let (behind, own) = (dir.join("k-behind"), dir.join("k-own"));
        let stamp = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        let ran = AtomicUsize::new(0);
        cache
            .read_once(&dir, &stamp, || {
                ran.fetch_add(1, Ordering::SeqCst);
                let listed = large_listed();
                std::fs::create_dir(&behind)?;
                let change = Change::Added {
                    name: "k-own",
                    path: &own,
                };
                cache.change(&dir, change, || std::fs::create_dir(&own).map(|()| true))?;
                Ok::<_, std::io::Error>(listed)
            })
            .expect("read");
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        let now = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        assert!(cache.get(&dir, &now).is_none());

        // A change that fails while a read runs: the read is served, not kept.
        let dir2 = tmp.path().join("e");
        std::fs::create_dir(&dir2).expect("mkdir");
        let stamp = DirStamp::of(&std::fs::metadata(&dir2).expect("stat"));
        cache
            .read_once(&dir2, &stamp, || {
                let change = Change::Flagged {
                    name: "x",
                    on: true,
                };
                let _ = cache.change(&dir2, change, || Err::<bool, _>("disk"));
                Ok::<_, ()>(large_listed())
            })
            .expect("read");
        assert!(cache.get(&dir2, &stamp).is_none());
    }

    #[test]
    fn flagged_names_are_reported_with_their_page() {
        let names = ["d", "a", "c", "b"];
        let flagged: HashSet<String> = ["b", "d", "zz"].map(String::from).into();
        let q = query(3);
        let listed = Listed::new(names.iter().collect(), &flagged);
        let page = listed.page(&q, "");
        assert_eq!(page.names, ["a", "b", "c"]);
        assert_eq!(page.markers, ["b"]);
        let none = Listed::new(["a"].into_iter().collect(), &HashSet::new());
        assert!(none.page(&q, "").markers.is_empty());
    }

    proptest! {
        /// Compact names read back as the sorted, distinct strings they were made from.
        #[test]
        fn names_are_the_sorted_distinct_strings(
            strings in proptest::collection::vec("[a-c\u{e9}\u{1f600}/-]{0,5}", 0..60),
            probe in "[a-c\u{e9}-]{0,4}",
        ) {
            let names: Names = strings.iter().collect();
            let mut want = strings.clone();
            want.sort();
            want.dedup();
            prop_assert_eq!(names.iter_from(0).collect::<Vec<_>>(), want.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(names.len(), want.len());
            prop_assert_eq!(names.get(want.len()), "");
            prop_assert_eq!(names.binary_search(&probe), want.binary_search(&probe));
            prop_assert_eq!(
                names.partition_point(|n| n < probe.as_str()),
                want.partition_point(|n| n.as_str() < probe.as_str())
            );
        }
    }

    proptest! {
        /// Names read, then changed any number of times (merged or not), page exactly as the
        /// directory they describe.
        #[test]
        fn changed_names_page_as_the_directory_they_describe(
            names in proptest::collection::btree_set("[a-c.-]{0,3}", 0..30),
            flagged in proptest::collection::btree_set("[a-c.-]{0,3}", 0..10),
            changes in proptest::collection::vec(("[a-c.-]{0,3}", 0u8..4), 0..40),
            merge_at in proptest::option::of(0usize..40),
            from in proptest::option::of("[a-c.-]{0,3}"),
            after in "[a-c/.-]{0,4}",
            prefix in "[a-c/.-]{0,3}",
            dir in prop_oneof![Just(String::new()), Just("a/".to_string()), Just("b-/".to_string())],
            limit in 1usize..10,
        ) {
            let flagged: HashSet<String> = flagged.into_iter().collect();
            let mut listed = Listed::new(names.iter().collect(), &flagged);
            let (mut want_names, mut want_flags) = (names.clone(), flagged.clone());
            for (i, (name, kind)) in changes.iter().enumerate() {
                let path = Path::new("/x");
                let change = match kind {
                    0 => { want_names.insert(name.clone()); Change::Added { name, path } }
                    1 => { want_names.remove(name); Change::Removed { name, path } }
                    2 => { want_flags.insert(name.clone()); Change::Flagged { name, on: true } }
                    _ => { want_flags.remove(name); Change::Flagged { name, on: false } }
                };
                listed.apply(change);
                if merge_at == Some(i) {
                    listed.merge();
                }
            }
            let want = Listed::new(want_names.iter().collect(), &want_flags);
            prop_assert_eq!(all(&listed), all(&want));
            prop_assert_eq!(listed.len(), want_names.len());
            let q = DirQuery { from, after, prefix, limit };
            prop_assert_eq!(listed.page(&q, &dir), want.page(&q, &dir));
            let mut expect: Vec<String> =
                want_names.iter().filter(|n| wanted_naively(&q, &dir, n)).cloned().collect();
            let more = expect.len() > limit;
            expect.truncate(limit);
            let markers: Vec<String> =
                expect.iter().filter(|n| want_flags.contains(*n)).cloned().collect();
            prop_assert_eq!(listed.page(&q, &dir), DirPage { names: expect, more, markers });
        }
    }

    proptest! {
        #[test]
        fn select_is_sort_filter_take(
            names in proptest::collection::btree_set("[a-c/.-]{0,4}", 0..40),
            after in "[a-c/.-]{0,5}",
            prefix in "[a-c/.-]{0,3}",
            from in proptest::option::of("[a-c.-]{0,3}"),
            dir in prop_oneof![Just(String::new()), Just("a/".to_string()), Just("b-/".to_string())],
            limit in 1usize..8,
        ) {
            let names: Vec<String> = names.into_iter().filter(|n| !n.contains('/')).collect();
            let q = DirQuery { from, after, prefix, limit };
            for n in &names {
                prop_assert_eq!(q.wants(&dir, n), wanted_naively(&q, &dir, n), "{}", n);
            }
            let mut want: Vec<String> =
                names.iter().filter(|n| wanted_naively(&q, &dir, n)).cloned().collect();
            want.sort();
            let more = want.len() > limit;
            want.truncate(limit);
            let mut shuffled = names.clone();
            shuffled.reverse();
            let page = DirPage { names: want, more, markers: Vec::new() };
            prop_assert_eq!(&q.select(&dir, shuffled), &page);
            let listed = Listed::new(names.iter().collect(), &HashSet::new());
            prop_assert_eq!(&listed.page(&q, &dir), &page);
        }
    }
}
