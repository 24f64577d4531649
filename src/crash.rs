//! Named crash points for tests that crash the real server. With
//! `CAIRN_TEST_CRASH_AT=<point>[@<n>]` in its environment the process aborts
//! (`std::process::abort`: no unwinding, no destructors, no flushing — as a power cut or
//! `kill -9` leaves it) the `n`-th time (default: the first) it passes `<point>`. Unset, as in
//! any real deployment, a point costs one load of an initialised `OnceLock`.
//!
//! The points, in the order a write passes them, are listed in [`ALL`]; tests restart the
//! server after each and check that every object is old or new, never torn, and that
//! staging was swept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const ENV: &str = "CAIRN_TEST_CRASH_AT";

/// A PUT (or copy) whose shards are staged on every drive, before the commit.
pub const PUT_STAGED: &str = "put.staged";
/// A PUT committed on a write quorum, before staging is cleaned up and the client answered.
pub const PUT_COMMITTED: &str = "put.committed";
/// One drive's commit: the object's directories exist.
pub const DRIVE_DIRS: &str = "commit.after_dirs";
/// One drive's commit: the staged data directory is in place.
pub const DRIVE_DATA_RENAMED: &str = "commit.after_data_rename";
/// One drive's commit: new metadata written beside the old.
pub const DRIVE_META_STAGED: &str = "commit.after_meta_staged";
/// One drive's commit: new metadata in place (or, for a delete, the old removed).
pub const DRIVE_META_RENAMED: &str = "commit.after_meta_rename";
/// Multipart complete: the parts are linked into staging; the upload is untouched.
pub const COMPLETE_LINKED: &str = "complete.linked";
/// Multipart complete: the object is committed; the upload is not yet removed.
pub const COMPLETE_COMMITTED: &str = "complete.committed";
/// Heal: a damaged data directory was removed, its replacement not yet committed.
pub const HEAL_OLD_REMOVED: &str = "heal.old_data_removed";
/// Heal: rebuilt shards staged on the targets, nothing committed.
pub const HEAL_STAGED: &str = "heal.staged";
/// Format: a drive's system directory exists, without `format.json`.
pub const FORMAT_DIRS: &str = "format.dirs";
/// Format: a drive's `format.json` is in place (its healing marker too, if any).
pub const FORMAT_WRITTEN: &str = "format.written";

/// A move between pools: the target holds every version, the source not yet removed.
pub const MOVE_COPIED: &str = "move.copied";
pub const ALL: &[&str] = &[
    MOVE_COPIED,
    PUT_STAGED,
    PUT_COMMITTED,
    DRIVE_DIRS,
    DRIVE_DATA_RENAMED,
    DRIVE_META_STAGED,
    DRIVE_META_RENAMED,
    COMPLETE_LINKED,
    COMPLETE_COMMITTED,
    HEAL_OLD_REMOVED,
    HEAL_STAGED,
    FORMAT_DIRS,
    FORMAT_WRITTEN,
];

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let v = std::env::var(ENV).ok()?;
            let (name, nth) = match v.split_once('@') {
                Some((name, n)) => (name.to_string(), n.parse().ok()?),
                None => (v, 1),
            };
            Some((name, nth))
        })
        .as_ref()
}

/// Abort the process here if this point is armed and its turn has come.
pub fn point(name: &'static str) {
    let Some((want, nth)) = armed() else { return };
    if want == name && HITS.fetch_add(1, Ordering::SeqCst).saturating_add(1) == *nth {
        eprintln!("crash point {name} (hit {nth}): aborting");
        std::process::abort();
    }
}
