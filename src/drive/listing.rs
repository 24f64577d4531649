//! One page of a directory for a listing: the smallest names a walk still needs, so that a
//! page of a huge directory costs one pass over it on each drive and sends only the page.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// A directory's names, sorted, and which of them are flagged delete markers.
#[derive(Debug, Default)]
pub struct Listed {
    pub names: Vec<String>,
    /// Parallel to `names`; empty when none is flagged.
    pub marked: Vec<bool>,
}

impl Listed {
    /// Sort `names` and mark those in `flagged`.
    pub fn new(mut names: Vec<String>, flagged: &HashSet<String>) -> Listed {
        names.sort_unstable();
        let marked = if flagged.is_empty() {
            Vec::new()
        } else {
            names.iter().map(|n| flagged.contains(n)).collect()
        };
        Listed { names, marked }
    }

    /// `page` (of these names) with its flagged names filled in.
    pub fn flag(&self, mut page: DirPage) -> DirPage {
        if !self.marked.is_empty() {
            page.markers = page
                .names
                .iter()
                .filter(|n| {
                    self.names
                        .binary_search(n)
                        .is_ok_and(|i| self.marked.get(i).copied().unwrap_or(false))
                })
                .cloned()
                .collect();
        }
        page
    }
}

/// `page` with those of its names in `flagged` filled in (the tests' reference for
/// [`Listed::flag`]).
#[cfg(test)]
pub fn flag_page(mut page: DirPage, flagged: &HashSet<String>) -> DirPage {
    if !flagged.is_empty() {
        page.markers = page
            .names
            .iter()
            .filter(|n| flagged.contains(*n))
            .cloned()
            .collect();
    }
    page
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

impl DirQuery {
    /// The page of `sorted` (sorted, distinct names) this query selects, reading only from
    /// the first name that can be wanted to the last one needed.
    pub fn select_sorted(&self, dir: &str, sorted: &[String]) -> DirPage {
        let limit = self.limit.max(1);
        // Wanted names are after `from`, and (but for the empty name) no smaller than the
        // first byte of the start key's and the prefix's component at this level (a wanted
        // name is that component, a name starting with it, or a name it starts with).
        let component = |s: &str| -> Option<Vec<u8>> {
            s.strip_prefix(dir)
                .and_then(|rest| rest.bytes().next())
                .map(|b| vec![b])
        };
        let mut start = 0;
        if let Some(f) = &self.from {
            start = start.max(sorted.partition_point(|n| n <= f));
        }
        for lower in [component(&self.after), component(&self.prefix)]
            .into_iter()
            .flatten()
        {
            start = start.max(sorted.partition_point(|n| n.as_bytes() < lower.as_slice()));
        }
        // Past the prefix's component (and every name starting with it) nothing is wanted.
        let rest = self.prefix.strip_prefix(dir).filter(|r| !r.is_empty());
        let past_prefix = |n: &str| match rest {
            Some(r) => match r.split_once('/') {
                Some((c, _)) => n > c,
                None => n > r && !n.starts_with(r),
            },
            None => false,
        };
        let mut names = Vec::new();
        let mut more = false;
        // The empty name (a key with `//`) sorts first but can be wanted below a bound.
        let empty = sorted.first().filter(|n| n.is_empty() && start > 0);
        for n in empty.into_iter().chain(&sorted[start.min(sorted.len())..]) {
            if past_prefix(n) {
                break;
            }
            if !self.wants(dir, n) {
                continue;
            }
            if names.len() == limit {
                more = true;
                break;
            }
            names.push(n.clone());
        }
        DirPage {
            names,
            more,
            markers: Vec::new(),
        }
    }
}

/// Directories with at least this many entries have their sorted names cached.
pub const CACHED_DIR_MIN: usize = 256;
/// Directories cached per drive (most recently used kept).
const CACHED_DIRS: usize = 64;
/// Names cached per drive over all its directories (a few tens of MiB); a larger directory
/// is read whole for every page.
const CACHED_NAMES: usize = 1 << 18;
/// A directory is cached only if it was last changed at least this long before it is read:
/// any later change then gives it a different modification time (timestamps come from a
/// clock that ticks in milliseconds), so an unchanged stamp means unchanged entries.
const SETTLED: Duration = Duration::from_secs(1);

/// What identifies a directory's contents without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirStamp {
    ino: u64,
    size: u64,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl DirStamp {
    pub fn of(m: &std::fs::Metadata) -> Self {
        DirStamp {
            ino: m.ino(),
            size: m.size(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Unchanged for long enough that a later change would show in the stamp.
    pub fn settled(&self, now: SystemTime) -> bool {
        let last = self.mtime.max(self.ctime);
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let last = Duration::new(last.0.max(0) as u64, last.1.clamp(0, 999_999_999) as u32);
        now.checked_sub(last).is_some_and(|age| age >= SETTLED)
    }
}

/// A directory's path, its stamp when read, and its sorted names.
type CachedDir = (PathBuf, DirStamp, Arc<Listed>);

/// Sorted names of a drive's large directories, reused while a directory's stamp is
/// unchanged, so that paging through a directory of 100,000 keys does not read it whole for
/// every page. Bounded: [`CACHED_DIRS`] directories, [`CACHED_NAMES`] names.
#[derive(Debug, Default)]
pub struct DirCache {
    entries: parking_lot::Mutex<Vec<CachedDir>>,
    /// Directory reads in flight, by directory and stamp: concurrent pages of one large
    /// directory share one read instead of each reading it whole.
    reading: parking_lot::Mutex<Vec<(PathBuf, DirStamp, Arc<Reading>)>>,
}

/// One directory read others wait on: its result once done (`None` inside: it failed, and
/// each waiter reads for itself).
#[derive(Debug, Default)]
struct Reading {
    done: parking_lot::Mutex<Option<Option<Arc<Listed>>>>,
    ready: parking_lot::Condvar,
}

impl Reading {
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
            .reading
            .lock()
            .retain(|(_, _, r)| !Arc::ptr_eq(r, &self.reading));
        self.reading.finish(None);
    }
}

impl DirCache {
    /// The names of `dir` as of `stamp` (taken before reading): from a read of the same
    /// directory at the same stamp already in flight when there is one (blocking until it
    /// ends), else from `read`. A directory unchanged since the other reader's stamp has
    /// the names that reader finds. Called on a blocking thread.
    pub fn read_once<E>(
        &self,
        dir: &Path,
        stamp: &DirStamp,
        read: impl FnOnce() -> Result<Listed, E>,
    ) -> Result<Arc<Listed>, E> {
        let joined = {
            let mut reading = self.reading.lock();
            match reading.iter().find(|(p, s, _)| p == dir && s == stamp) {
                Some((_, _, r)) => Some(r.clone()),
                None => {
                    let r = Arc::new(Reading::default());
                    reading.push((dir.to_path_buf(), stamp.clone(), r.clone()));
                    drop(reading);
                    let guard = ReadingGuard {
                        cache: self,
                        reading: r,
                    };
                    let listed = read().map(Arc::new);
                    guard.reading.finish(listed.as_ref().ok().cloned());
                    return listed;
                }
            }
        };
        if let Some(r) = joined {
            let mut done = r.done.lock();
            while done.is_none() {
                r.ready.wait(&mut done);
            }
            if let Some(Some(listed)) = done.as_ref() {
                return Ok(listed.clone());
            }
        }
        // The read joined failed: read for ourselves.
        read().map(Arc::new)
    }

    pub fn get(&self, dir: &Path, stamp: &DirStamp) -> Option<Arc<Listed>> {
        let mut entries = self.entries.lock();
        let i = entries.iter().position(|(p, _, _)| p == dir)?;
        let entry = entries.remove(i);
        if entry.1 != *stamp {
            return None;
        }
        let names = entry.2.clone();
        entries.push(entry);
        Some(names)
    }

    /// Keep `names` (sorted) for `dir` if it is large and settled.
    pub fn put(&self, dir: &Path, stamp: DirStamp, listed: Arc<Listed>, now: SystemTime) {
        let n = listed.names.len();
        if !(CACHED_DIR_MIN..=CACHED_NAMES).contains(&n) || !stamp.settled(now) {
            return;
        }
        let mut entries = self.entries.lock();
        entries.retain(|(p, _, _)| p != dir);
        let held = |e: &CachedDir| e.2.names.len();
        while entries.len() == CACHED_DIRS
            || entries.iter().map(held).sum::<usize>() + n > CACHED_NAMES
        {
            entries.remove(0);
        }
        entries.push((dir.to_path_buf(), stamp, listed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(ino: u64) -> DirStamp {
        DirStamp {
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
                            Ok::<_, ()>(Listed::new(vec!["b".into(), "a".into()], &HashSet::new()))
                        })
                        .expect("read")
                })
            })
            .collect();
        gate.wait();
        for w in waiters {
            assert_eq!(w.join().expect("thread").names, ["a", "b"]);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for eight pages");
        assert!(cache.reading.lock().is_empty());

        // Another stamp (the directory changed): read anew.
        let again = cache
            .read_once(&dir, &stamp(2), || {
                reads.fetch_add(1, Ordering::SeqCst);
                Ok::<_, ()>(Listed::default())
            })
            .expect("read");
        assert!(again.names.is_empty());
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
                Ok::<_, &str>(Listed::new(vec!["x".into()], &HashSet::new()))
            })
            .expect("its own read");
        assert_eq!(joined.names, ["x"]);
        assert_eq!(failing.join().expect("thread").err(), Some("disk error"));
        assert!(cache.reading.lock().is_empty());
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

    #[test]
    fn cache_keeps_large_settled_directories_until_they_change() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).expect("mkdir");
        let stamp = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        let listed = |names: Vec<String>| {
            Arc::new(Listed {
                names,
                marked: Vec::new(),
            })
        };
        let names = listed((0..CACHED_DIR_MIN).map(|i| format!("k{i:05}")).collect());
        let cache = DirCache::default();
        // Changed just now: a change in the same clock tick would not show; not kept.
        cache.put(&dir, stamp.clone(), names.clone(), SystemTime::now());
        assert!(cache.get(&dir, &stamp).is_none());
        let later = SystemTime::now() + Duration::from_secs(2);
        // Small directories are read directly, and so are directories past the names bound.
        cache.put(&dir, stamp.clone(), listed(vec!["a".into()]), later);
        assert!(cache.get(&dir, &stamp).is_none());
        let huge = listed(vec![String::new(); CACHED_NAMES + 1]);
        cache.put(&dir, stamp.clone(), huge, later);
        assert!(cache.get(&dir, &stamp).is_none());
        cache.put(&dir, stamp.clone(), names.clone(), later);
        assert_eq!(
            cache.get(&dir, &stamp).map(|n| n.names.len()),
            Some(CACHED_DIR_MIN)
        );
        // Any change to the directory changes its stamp.
        std::fs::create_dir(dir.join("new")).expect("mkdir");
        let changed = DirStamp::of(&std::fs::metadata(&dir).expect("stat"));
        assert_ne!(changed, stamp);
        assert!(cache.get(&dir, &changed).is_none());
    }

    #[test]
    fn flagged_names_are_reported_with_their_page_cached_or_not() {
        let names: Vec<String> = ["d", "a", "c", "b"].map(String::from).to_vec();
        let flagged: HashSet<String> = ["b", "d", "zz"].map(String::from).into();
        let q = DirQuery {
            from: None,
            after: String::new(),
            prefix: String::new(),
            limit: 3,
        };
        let listed = Listed::new(names.clone(), &flagged);
        let page = listed.flag(q.select_sorted("", &listed.names));
        assert_eq!(page.names, ["a", "b", "c"]);
        assert_eq!(page.markers, ["b"]);
        let page = flag_page(q.select("", names), &flagged);
        assert_eq!(page.markers, ["b"]);
        let none = Listed::new(vec!["a".into()], &HashSet::new());
        assert!(none.marked.is_empty());
        assert!(none
            .flag(q.select_sorted("", &none.names))
            .markers
            .is_empty());
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
            prop_assert_eq!(&q.select_sorted(&dir, &names), &page);
        }
    }
}
