//! What listings read of each key's directory, kept in memory while the directory is
//! unchanged: the head of its metadata, and whether keys continue below it.
//!
//! A listing page reads, per key, the head of the metadata file from a read quorum (at least
//! `parity + 1`) of drives (an open, a read and a close each) and asks every drive whether keys continue
//! below the key — which, for a key with data directories (any object above the inline
//! limit), the link count cannot tell, so the directory was read. Each drive keeps both
//! answers with the stamp of the key's directory (which a listing `stat`s anyway, for its
//! link count) and serves them again only while the directory still has that stamp.
//!
//! Correctness rests on two rules:
//! - **The drive's own changes.** Every change the drive makes to a key's directory — its
//!   metadata published or removed, a data directory moved in or removed, a key directory
//!   made or removed inside it — is followed by [`HeadCache::forget`] of that directory,
//!   which also moves the generation of its shard. What was read is kept only if its
//!   shard's generation did not move between the lookup before the read ([`Known`]'s
//!   ticket) and the keeping, under the shard's lock: something read before a change can
//!   never be kept after it, even when the change leaves the directory's stamp as it was
//!   (a clock coarser than the two events).
//! - **Changes behind the drive's back** (a file restored by hand, another process): a
//!   metadata file replaced by rename, or a directory made or removed inside the key's,
//!   changes the directory's change time and link count; the stamp also holds the device
//!   and inode, so a directory made anew (a wiped or swapped disk) is never mistaken for
//!   the old one. Not seen here: an edit in place of a metadata file's bytes, and a
//!   replacement within the same tick of a coarse clock as the change before it, with no
//!   `stat` between (kernels with multigrain timestamps give the second change a finer
//!   time once the first was looked at). Listings may show such a head until the key
//!   changes again; reads of the object always read the file.
//!
//! At most [`BUDGET`] bytes per drive; past it, entries are dropped in the hash map's
//! (arbitrary) order.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::Mutex;

/// Bytes of heads and paths kept per drive.
pub const BUDGET: usize = 16 << 20;
const SHARDS: usize = 64;
/// Bookkeeping per entry beyond its path and head (map slot, stamp, `Bytes`).
const OVERHEAD: usize = 96;

/// What a key's directory looked like when it was read (as for a listed directory).
pub type KeyStamp = super::listing::DirStamp;

/// Permission to keep what was read after it was taken (see the module's rules).
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    shard: usize,
    generation: u64,
}

/// What the cache holds for a key's directory as it is now, and the ticket to keep what is
/// about to be read.
#[derive(Debug)]
pub struct Known {
    pub head: Option<Bytes>,
    /// Whether keys continue below the key (its directory holds key directories).
    pub children: Option<bool>,
    pub ticket: Ticket,
}

#[derive(Debug)]
struct Kept {
    stamp: KeyStamp,
    head: Option<Bytes>,
    children: Option<bool>,
    /// What it counts against the budget, path included (as stored).
    size: usize,
}

impl Kept {
    fn sized(mut self, dir: &Path) -> Self {
        self.size = dir.as_os_str().len() + self.head.as_ref().map_or(0, Bytes::len) + OVERHEAD;
        self
    }
}

#[derive(Default)]
struct Shard {
    /// Moves on every change the drive makes to a key of this shard.
    generation: u64,
    kept: HashMap<PathBuf, Kept>,
    bytes: usize,
}

pub struct HeadCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    budget: usize,
    /// Tests: lookups that found something kept.
    #[cfg(test)]
    hits: std::sync::atomic::AtomicU64,
    /// Tests: stamps that tell only which directory it is (the coarsest clock possible),
    /// so that only the drive's own bookkeeping keeps what is served right.
    #[cfg(test)]
    coarse: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadCache")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl Default for HeadCache {
    fn default() -> Self {
        Self::with_budget(BUDGET)
    }
}

impl HeadCache {
    pub fn with_budget(budget: usize) -> Self {
        HeadCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: Default::default(),
            budget: budget / SHARDS,
            #[cfg(test)]
            hits: Default::default(),
            #[cfg(test)]
            coarse: Default::default(),
        }
    }

    /// The stamp of a key's directory from its `stat`.
    pub fn stamp(&self, st: &rustix::fs::Stat) -> KeyStamp {
        let stamp = KeyStamp::of_stat(st);
        #[cfg(test)]
        if self.coarse.load(std::sync::atomic::Ordering::Relaxed) {
            return stamp.identity_only();
        }
        stamp
    }

    #[cfg(test)]
    pub fn set_coarse(&self, on: bool) {
        self.coarse.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn shard(&self, dir: &Path) -> usize {
        // Below 64, so the cast keeps every bit that matters.
        (self.hasher.hash_one(dir) % SHARDS as u64) as usize
    }

    /// What is kept for the key directory `dir` if its stamp is `stamp`.
    pub fn lookup(&self, dir: &Path, stamp: &KeyStamp) -> Known {
        let i = self.shard(dir);
        let s = self.shards[i].lock();
        let ticket = Ticket {
            shard: i,
            generation: s.generation,
        };
        match s.kept.get(dir) {
            Some(k) if k.stamp == *stamp => {
                #[cfg(test)]
                self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Known {
                    head: k.head.clone(),
                    children: k.children,
                    ticket,
                }
            }
            _ => Known {
                head: None,
                children: None,
                ticket,
            },
        }
    }

    /// Keep what was read after `ticket` was taken (a head, whether keys continue below),
    /// unless the drive changed a key of its shard since.
    pub fn keep(
        &self,
        ticket: Ticket,
        dir: &Path,
        stamp: KeyStamp,
        head: Option<&Bytes>,
        children: Option<bool>,
    ) {
        let mut s = self.shards[ticket.shard].lock();
        if s.generation != ticket.generation {
            return;
        }
        let (old, mut kept) = match s.kept.remove(dir) {
            Some(k) if k.stamp == stamp => (k.size, k),
            other => (
                other.map_or(0, |k| k.size),
                Kept {
                    stamp,
                    head: None,
                    children: None,
                    size: 0,
                },
            ),
        };
        s.bytes -= old;
        // Shared with the answer it came in (`meta_head` sizes its buffer to the head,
        // so what is counted is what is held).
        if let Some(h) = head {
            kept.head = Some(h.clone());
        }
        kept.children = children.or(kept.children);
        let kept = kept.sized(dir);
        let size = kept.size;
        if size > self.budget {
            return;
        }
        s.kept.insert(dir.to_path_buf(), kept);
        s.bytes += size;
        if s.bytes > self.budget {
            // Down to three quarters, so that eviction is not paid on every insert.
            let target = self.budget / 4 * 3;
            let mut gone = Vec::new();
            let mut bytes = s.bytes;
            for (p, k) in s.kept.iter() {
                if bytes <= target {
                    break;
                }
                if p.as_path() != dir {
                    bytes -= k.size;
                    gone.push(p.clone());
                }
            }
            for p in gone {
                s.kept.remove(&p);
            }
            s.bytes = bytes;
        }
    }

    /// The drive changed the key directory `dir` (its metadata, its data directories or
    /// the keys below it): call after the change.
    pub fn forget(&self, dir: &Path) {
        let mut s = self.shards[self.shard(dir)].lock();
        s.generation += 1;
        if let Some(k) = s.kept.remove(dir) {
            s.bytes -= k.size;
        }
    }

    /// Forget everything (a bucket deleted, the drive back online).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.generation += 1;
            s.kept.clear();
            s.bytes = 0;
        }
    }

    /// Tests: how many lookups found something kept.
    #[cfg(test)]
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().kept.len()).sum()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(t: i64) -> KeyStamp {
        KeyStamp::at(t)
    }

    fn head(c: &HeadCache, dir: &Path, at: i64) -> Option<Bytes> {
        c.lookup(dir, &stamp(at)).head
    }

    #[test]
    fn what_is_kept_is_served_only_for_the_stamp_it_was_read_with() {
        let c = HeadCache::default();
        let dir = Path::new("/d/b/k");
        let t = c.lookup(dir, &stamp(1)).ticket;
        c.keep(t, dir, stamp(1), Some(&Bytes::from_static(b"v1")), None);
        assert_eq!(head(&c, dir, 1).as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.lookup(dir, &stamp(1)).children, None);
        assert_eq!(head(&c, dir, 2), None);
        assert_eq!(head(&c, Path::new("/d/b/other"), 1), None);
        // A question without the head (asked of a drive not read from) fills in the other
        // half, for the same stamp only.
        let t = c.lookup(dir, &stamp(1)).ticket;
        c.keep(t, dir, stamp(1), None, Some(true));
        let k = c.lookup(dir, &stamp(1));
        assert_eq!(
            (k.head.as_deref(), k.children),
            (Some(&b"v1"[..]), Some(true))
        );
        let t = c.lookup(dir, &stamp(3)).ticket;
        c.keep(t, dir, stamp(3), None, Some(false));
        let k = c.lookup(dir, &stamp(3));
        assert_eq!((k.head, k.children), (None, Some(false)));
        assert_eq!(head(&c, dir, 1), None);
    }

    /// What was read before one of the drive's own changes is never kept after it, even
    /// when the directory's stamp did not move (timestamps coarser than the two events).
    #[test]
    fn what_was_read_before_a_change_is_not_kept_after_it() {
        let c = HeadCache::default();
        let dir = Path::new("/d/b/k");
        let t = c.lookup(dir, &stamp(1)).ticket;
        // ...the old head is read; the drive's commit replaces it and forgets...
        c.forget(dir);
        c.keep(
            t,
            dir,
            stamp(1),
            Some(&Bytes::from_static(b"old")),
            Some(false),
        );
        assert_eq!(c.len(), 0);
        // What was kept before is gone after a forget.
        let t = c.lookup(dir, &stamp(1)).ticket;
        c.keep(t, dir, stamp(1), Some(&Bytes::from_static(b"new")), None);
        assert_eq!(head(&c, dir, 1).as_deref(), Some(&b"new"[..]));
        c.forget(dir);
        assert_eq!(head(&c, dir, 1), None);
        // And a clear forgets every key and refuses tickets from before it.
        let t = c.lookup(dir, &stamp(1)).ticket;
        c.clear();
        c.keep(t, dir, stamp(1), Some(&Bytes::from_static(b"x")), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_budget() {
        let budget = 256 * 1024;
        let c = HeadCache::with_budget(budget);
        let h = Bytes::from(vec![7u8; 300]);
        for i in 0..10_000 {
            let dir = PathBuf::from(format!("/d/b/key-{i:05}"));
            let t = c.lookup(&dir, &stamp(1)).ticket;
            c.keep(t, &dir, stamp(1), Some(&h), None);
            // Replacing and completing entries keeps the sums exact too.
            let t = c.lookup(&dir, &stamp(i % 2)).ticket;
            c.keep(t, &dir, stamp(i % 2), None, Some(true));
            assert!(c.bytes() <= budget, "{} bytes after {i}", c.bytes());
        }
        assert!(c.len() > 200, "{} kept", c.len());
        let sum: usize = c
            .shards
            .iter()
            .map(|s| {
                let s = s.lock();
                s.kept
                    .iter()
                    .map(|(p, k)| {
                        assert_eq!(
                            k.size,
                            p.as_os_str().len() + k.head.as_ref().map_or(0, Bytes::len) + OVERHEAD
                        );
                        k.size
                    })
                    .sum::<usize>()
            })
            .sum();
        assert_eq!(sum, c.bytes());
    }
}
