//! Group commit: how a local drive makes its writes durable.
//!
//! A commit needs two things on disk in order: everything the new metadata points at (shard
//! files, the staged metadata file, the object's directories and data directory) before the
//! metadata's name, and the name before the client is answered. With [`SyncMode::Fsync`]
//! each step fsyncs the files and directories it touched (about five fsyncs per drive and
//! object). With [`SyncMode::Group`] (the default) the steps write without syncing and wait
//! for the next *epoch* of their filesystem's [`Barrier`]: one `syncfs(2)`, started after
//! they asked, that makes every write made before it durable — so all the commits in flight
//! on a filesystem (every drive of it) share each flush. An epoch starts as soon as the
//! previous one ends and someone waits.
//!
//! The drives of one upload commit side by side, and each asks for an epoch a few hundred
//! microseconds after the first: an epoch that started on the first request would cover
//! only that drive, the others would wait for the next one, and a lone upload would pay
//! four epochs in a row instead of two. So a commit announces itself before its
//! filesystem work ([`Barrier::expect`], a [`Coming`]) and asks when it is done
//! ([`Coming::wait`]); an epoch about to start first waits for the commits announced
//! before it starts to ask too — never longer than [`GATHER`] after each one's
//! announcement, so a slow or hung drive delays no epoch by more than that.
//!
//! `syncfs` reports writeback errors of the filesystem since the last call (Linux ≥ 5.8), so
//! a failed epoch fails every commit that waited for it, as a failed fsync would.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How writes are made durable; `CAIRN_COMMIT_SYNC=group|fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Every file and directory fsynced as it is written (the reference behaviour).
    Fsync,
    /// Writes unsynced, then one shared `syncfs` epoch per ordering point.
    Group,
}

impl SyncMode {
    /// The mode this process runs with (read once).
    pub fn current() -> SyncMode {
        static MODE: OnceLock<SyncMode> = OnceLock::new();
        *MODE.get_or_init(|| match std::env::var("CAIRN_COMMIT_SYNC").as_deref() {
            Ok("fsync") => SyncMode::Fsync,
            Ok("group") | Err(_) => SyncMode::Group,
            Ok(other) => {
                tracing::warn!(
                    value = other,
                    "CAIRN_COMMIT_SYNC is neither group nor fsync; using group"
                );
                SyncMode::Group
            }
        })
    }
}

#[derive(Default)]
struct State {
    /// The highest epoch someone waits for.
    requested: u64,
    /// The epoch running now (`done + 1`), or `done` when idle.
    running: u64,
    /// The last epoch that ended.
    done: u64,
    /// The last epoch that failed, and why.
    failed: u64,
    error: Option<String>,
    /// Commits announced and not yet asking ([`Coming`]), by announcement number: when
    /// each was announced.
    coming: std::collections::BTreeMap<u64, Instant>,
    /// Announcements so far (the next one's number).
    announced: u64,
}

/// How long after its announcement an epoch waits for a commit to ask ([`Coming`]).
pub const GATHER: Duration = Duration::from_millis(1);

/// The sync epochs of one filesystem, run by a thread of their own.
pub struct Barrier {
    dev: u64,
    /// Whether the filesystem never shows a file's new name over stale blocks after a power
    /// loss ([`orders_data`]), as found by the last [`Barrier::of`] (a device number can
    /// come back with another filesystem on it: a drive that comes online asks again).
    orders_data: AtomicBool,
    /// Drive roots on this filesystem: an epoch opens the first that still is on it (a root
    /// whose filesystem was unmounted now resolves elsewhere and is skipped).
    roots: Mutex<Vec<PathBuf>>,
    state: Mutex<State>,
    changed: Condvar,
    /// How long after its announcement an epoch waits for a commit ([`GATHER`]).
    gather: Duration,
    /// Signalled when an announced commit asks or gives up ([`Barrier::gather`] waits on it).
    arrived: Condvar,
    done: tokio::sync::watch::Sender<u64>,
}

/// A commit that will ask its filesystem's [`Barrier`] for an epoch once its writes are
/// made ([`Barrier::expect`]); dropping it without asking withdraws the announcement.
#[derive(Debug)]
pub struct Coming {
    barrier: Arc<Barrier>,
    number: u64,
}

impl Coming {
    /// Whether this announcement was made to `barrier`.
    pub fn barrier_is(&self, barrier: &Arc<Barrier>) -> bool {
        Arc::ptr_eq(&self.barrier, barrier)
    }

    /// Ask for an epoch that starts after now and wait for it, as [`Barrier::wait`].
    pub async fn wait(self) -> io::Result<()> {
        let barrier = self.barrier.clone();
        let ticket = barrier.ask();
        drop(self);
        barrier.wait_for(ticket).await
    }
}

impl Drop for Coming {
    fn drop(&mut self) {
        self.barrier.state.lock().coming.remove(&self.number);
        self.barrier.arrived.notify_all();
    }
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier").field("dev", &self.dev).finish()
    }
}

impl Barrier {
    /// The barrier of the filesystem holding `root` (one per filesystem in the process).
    pub fn of(root: &Path) -> io::Result<Arc<Barrier>> {
        static ALL: OnceLock<Mutex<HashMap<u64, Arc<Barrier>>>> = OnceLock::new();
        let dev = std::fs::metadata(root)?.dev();
        // Looked at outside the lock: a slow filesystem stalls only its own drives.
        let orders = orders_data(root, dev);
        let mut all = ALL.get_or_init(Default::default).lock();
        let barrier = match all.get(&dev) {
            Some(b) => b.clone(),
            None => {
                let b = Barrier::start(dev, orders, Vec::new(), GATHER)?;
                all.insert(dev, b.clone());
                b
            }
        };
        drop(all);
        barrier.orders_data.store(orders, Ordering::Relaxed);
        let mut roots = barrier.roots.lock();
        if !roots.iter().any(|r| r == root) {
            roots.push(root.to_path_buf());
        }
        drop(roots);
        Ok(barrier)
    }

    /// A barrier of device `dev` and its epoch thread.
    fn start(
        dev: u64,
        orders: bool,
        roots: Vec<PathBuf>,
        gather: Duration,
    ) -> io::Result<Arc<Barrier>> {
        let b = Arc::new(Barrier {
            dev,
            orders_data: AtomicBool::new(orders),
            roots: Mutex::new(roots),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            gather,
            arrived: Condvar::new(),
            done: tokio::sync::watch::channel(0).0,
        });
        let runner = b.clone();
        std::thread::Builder::new()
            .name("cairn-syncfs".into())
            .spawn(move || runner.run())?;
        Ok(b)
    }

    /// A barrier of `root`'s filesystem that no drive shares, waiting `gather` for announced
    /// commits (tests).
    #[cfg(test)]
    fn standalone(root: &Path, gather: Duration) -> Arc<Barrier> {
        let dev = std::fs::metadata(root).expect("root").dev();
        Barrier::start(dev, false, vec![root.to_path_buf()], gather).expect("epoch thread")
    }

    /// The filesystem this barrier syncs.
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// Whether, after a power loss, a file written and renamed without a sync between shows
    /// either its content or nothing (empty, or zeros up to its size) — never blocks of
    /// other files (see [`orders_data`]).
    pub fn orders_data(&self) -> bool {
        self.orders_data.load(Ordering::Relaxed)
    }

    /// Announce a commit that will ask for an epoch soon ([`Coming::wait`]).
    pub fn expect(self: &Arc<Self>) -> Coming {
        let mut st = self.state.lock();
        let number = st.announced;
        st.announced += 1;
        st.coming.insert(number, Instant::now());
        Coming {
            barrier: self.clone(),
            number,
        }
    }

    /// Before an epoch starts: wait until every commit announced before now has asked (or
    /// withdrawn), or was announced more than [`GATHER`] ago.
    fn gather(&self, st: &mut parking_lot::MutexGuard<'_, State>) {
        let before = st.announced;
        loop {
            let now = Instant::now();
            let until = st
                .coming
                .range(..before)
                .map(|(_, at)| *at + self.gather)
                .filter(|d| *d > now)
                .max();
            let Some(until) = until else {
                break;
            };
            self.arrived.wait_until(st, until);
        }
    }

    /// Ask for an epoch that starts after now; returns its number.
    fn ask(&self) -> u64 {
        let mut st = self.state.lock();
        let ticket = st.running + 1;
        if st.requested < ticket {
            st.requested = ticket;
            self.changed.notify_all();
        }
        ticket
    }

    fn outcome(&self, ticket: u64) -> io::Result<()> {
        let st = self.state.lock();
        if st.failed >= ticket {
            let why = st.error.clone().unwrap_or_default();
            return Err(io::Error::other(format!("syncfs: {why}")));
        }
        Ok(())
    }

    /// Wait until every write made before this call is durable.
    pub async fn wait(&self) -> io::Result<()> {
        self.wait_for(self.ask()).await
    }

    async fn wait_for(&self, ticket: u64) -> io::Result<()> {
        let mut rx = self.done.subscribe();
        rx.wait_for(|d| *d >= ticket)
            .await
            .map_err(|_| io::Error::other("syncfs thread gone"))?;
        self.outcome(ticket)
    }

    /// [`Barrier::wait`] for code on a blocking thread.
    pub fn wait_blocking(&self) -> io::Result<()> {
        let ticket = self.ask();
        let mut st = self.state.lock();
        while st.done < ticket {
            self.changed.wait(&mut st);
        }
        drop(st);
        self.outcome(ticket)
    }

    fn run(&self) {
        loop {
            let mut st = self.state.lock();
            while st.requested <= st.done {
                self.changed.wait(&mut st);
            }
            self.gather(&mut st);
            let epoch = st.done + 1;
            st.running = epoch;
            drop(st);
            let r = self.sync_once();
            let mut st = self.state.lock();
            st.done = epoch;
            if let Err(e) = r {
                tracing::warn!(dev = self.dev, error = %e, "syncfs failed");
                st.failed = epoch;
                st.error = Some(e.to_string());
            }
            self.changed.notify_all();
            drop(st);
            self.done.send_replace(epoch);
        }
    }

    fn sync_once(&self) -> io::Result<()> {
        let roots = self.roots.lock().clone();
        for root in roots {
            let Ok(dir) = File::open(&root) else {
                continue;
            };
            if dir.metadata()?.dev() != self.dev {
                continue;
            }
            return rustix::fs::syncfs(&dir).map_err(io::Error::from);
        }
        Err(io::Error::other(
            "no drive root is on this filesystem any more",
        ))
    }
}

/// Whether the filesystem holding `root` (device `dev`) orders a new file's data before the
/// metadata that exposes it, so that a power loss never leaves its name over stale blocks:
/// XFS (unwritten extents, on-disk size moved only as data lands), btrfs (copy on write),
/// tmpfs (nothing survives), and ext4 with a journal in `data=ordered` or `data=journal`
/// mode (`/proc/fs/ext4/<device>/options`). Anything else — ext4 without a journal or in
/// `data=writeback`, unknown filesystems — is taken not to.
fn orders_data(root: &Path, dev: u64) -> bool {
    let Ok(fs) = rustix::fs::statfs(root) else {
        return false;
    };
    // `f_type`'s integer type differs between targets.
    #[allow(clippy::unnecessary_cast)]
    let kind = fs.f_type as u64;
    let ext4_options = || {
        let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
        let name = std::fs::read_link(format!("/sys/dev/block/{major}:{minor}")).ok()?;
        let name = name.file_name()?.to_str()?.to_owned();
        std::fs::read_to_string(format!("/proc/fs/ext4/{name}/options")).ok()
    };
    filesystem_orders_data(kind, || ext4_options().unwrap_or_default())
}

/// [`orders_data`] from the filesystem's magic number and, for ext4, its mount options.
fn filesystem_orders_data(kind: u64, ext4_options: impl FnOnce() -> String) -> bool {
    const XFS: u64 = 0x5846_5342;
    const BTRFS: u64 = 0x9123_683e;
    const TMPFS: u64 = 0x0102_1994;
    const EXT4: u64 = 0xef53;
    match kind {
        XFS | BTRFS | TMPFS => true,
        EXT4 => ext4_options()
            .split(['\n', ','])
            .any(|o| o.trim() == "data=ordered" || o.trim() == "data=journal"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filesystems_that_order_data_are_trusted_to() {
        let never = || -> String { unreachable!("options read for ext4 only") };
        assert!(filesystem_orders_data(0x5846_5342, never));
        assert!(filesystem_orders_data(0x9123_683e, never));
        assert!(filesystem_orders_data(0x0102_1994, never));
        assert!(!filesystem_orders_data(0x6969, never), "nfs");
        // What /proc/fs/ext4/<dev>/options shows, one option per line.
        let journaled = "rw\nbsddf\ndelalloc\nbarrier\ndata=ordered\ncommit=5\n";
        let no_journal = "rw\nbsddf\ndelalloc\nnojournal_checksum\nbarrier\n";
        let writeback = "rw\ndelalloc\ndata=writeback\n";
        assert!(filesystem_orders_data(0xef53, || journaled.into()));
        assert!(filesystem_orders_data(0xef53, || "rw,data=journal".into()));
        assert!(!filesystem_orders_data(0xef53, || no_journal.into()));
        assert!(!filesystem_orders_data(0xef53, || writeback.into()));
        assert!(
            !filesystem_orders_data(0xef53, String::new),
            "options unreadable"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_share_epochs_and_each_waits_for_one_that_started_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = Barrier::of(dir.path()).expect("barrier");
        assert!(Arc::ptr_eq(&b, &Barrier::of(dir.path()).expect("again")));
        // Hold the epoch that the first waiter starts inside its sync.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = {
            let b = b.clone();
            std::thread::spawn(move || {
                let _roots = b.roots.lock();
                locked_tx.send(()).expect("send");
                let _ = release_rx.recv();
            })
        };
        locked_rx.recv().expect("locked");
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.wait().await })
        };
        let running = loop {
            let (running, done) = {
                let st = b.state.lock();
                (st.running, st.done)
            };
            if running > done {
                break running;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        };
        // Everyone asking now needs the next epoch, and they all share it.
        let mut later = Vec::new();
        for _ in 0..63 {
            let b = b.clone();
            let ticket = b.ask();
            assert_eq!(ticket, running + 1);
            later.push(tokio::spawn(async move { b.wait_for(ticket).await }));
        }
        release_tx.send(()).expect("release");
        holder.join().expect("holder");
        first.await.expect("join").expect("sync");
        for t in later {
            t.await.expect("join").expect("sync");
        }
        assert_eq!(
            b.state.lock().done,
            running + 1,
            "one more epoch for 63 waiters"
        );
        let b2 = b.clone();
        tokio::task::spawn_blocking(move || b2.wait_blocking())
            .await
            .expect("join")
            .expect("sync");
        assert_eq!(b.state.lock().done, running + 2);
    }

    /// Waits for the barrier's epochs to stop running, then returns the last one done.
    async fn settled(b: &Barrier) -> u64 {
        loop {
            let (requested, running, done) = {
                let st = b.state.lock();
                (st.requested, st.running, st.done)
            };
            if requested <= done && running <= done {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_epoch_waits_for_the_commits_announced_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A gather long enough that no scheduling delay of a busy machine outlasts it.
        let b = Barrier::standalone(dir.path(), Duration::from_secs(60));
        // Four drives of one upload announce their commits; the first asks at once, the
        // others a little later (their filesystem work took longer).
        let comings: Vec<Coming> = (0..4).map(|_| b.expect()).collect();
        let mut waits = Vec::new();
        for (i, c) in comings.into_iter().enumerate() {
            waits.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20 * i as u64)).await;
                c.wait().await
            }));
        }
        for w in waits {
            w.await.expect("join").expect("sync");
        }
        assert_eq!(settled(&b).await, 1, "one epoch for the four");
        // Without announcements, each ask that comes once an epoch runs needs another.
        b.wait().await.expect("sync");
        assert_eq!(settled(&b).await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_that_never_asks_holds_an_epoch_back_no_longer_than_the_gather() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Long against any syncfs of a busy machine, so the two waits below cannot be mistaken.
        let gather = Duration::from_secs(3);
        let b = Barrier::standalone(dir.path(), gather);
        // A drive announced its commit and hung.
        let began = std::time::Instant::now();
        let hung = b.expect();
        b.wait().await.expect("sync");
        let took = began.elapsed();
        assert!(
            took >= gather,
            "the epoch gave the announced commit its time: {took:?}"
        );
        assert!(took < 4 * gather, "not held by it: {took:?}");
        // Its announcement is old now: the next epoch does not wait for it at all.
        let began = std::time::Instant::now();
        b.wait().await.expect("sync");
        assert!(began.elapsed() < gather, "{:?}", began.elapsed());
        drop(hung);
        assert!(b.state.lock().coming.is_empty(), "withdrawn when dropped");
    }
}
