//! Deadlines on every drive call: a hung disk (a dying one, a stuck NFS or FUSE mount) must
//! not hang the requests of its set.
//!
//! [`TimedDrive`] wraps any drive. Metadata calls get [`Timeouts::meta`], data calls (shard
//! file writes, chunk reads) [`Timeouts::data`]; a call past its deadline fails with
//! [`DriveError::TimedOut`], and a drive whose calls time out [`STRIKES`] times in a row is
//! offline ("timing out") until a probe answers in time again (the drive monitor probes
//! every few seconds). A deadline measures a drive that does nothing, not one that is busy:
//! a call past its deadline while other calls of the same [`Call`] on the same drive
//! completed in the meantime (it waited in line behind them, under a burst of load) gets
//! another period, up to [`PATIENCE`] periods in all, before it times out (one relaxed atomic
//! per call records its completion). The call itself is not cancelled — a thread stuck in the
//! kernel cannot be — but `LocalDrive` bounds how many of its calls can be in flight at once,
//! so a hung disk holds at most that many blocking threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use uuid::Uuid;

use crate::metrics::{Histogram, HistogramSnapshot};

use super::{
    BucketEntry, DirPage, DirQuery, DiskInfo, Drive, DriveError, DriveResult, DriveStatus, Entry,
    FileRef, FileWriter, OfflineReason, Probe, PutVersion, StagedData,
};

/// Consecutive timeouts after which a drive is offline until a probe answers in time.
pub const STRIKES: u32 = 2;

/// Periods of its deadline a call may wait in all while its drive keeps completing other
/// calls (a busy drive, not a hung one).
pub const PATIENCE: u32 = 8;

/// Per-call deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Metadata, system files, listings, commits.
    pub meta: Duration,
    /// One shard chunk read or write, a file's sync.
    pub data: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            meta: Duration::from_secs(2),
            data: Duration::from_secs(10),
        }
    }
}

static DEFAULT: OnceLock<Timeouts> = OnceLock::new();

/// Set the process-wide deadlines (`CAIRN_DRIVE_META_TIMEOUT`, `CAIRN_DRIVE_DATA_TIMEOUT`),
/// once, before drives are opened.
pub fn set_default_timeouts(t: Timeouts) {
    let _ = DEFAULT.set(t);
}

pub fn default_timeouts() -> Timeouts {
    DEFAULT.get().copied().unwrap_or_default()
}

#[derive(Debug, Default)]
struct Health {
    /// When a call of each [`Call`] (`read_meta`, `write_meta`, `write`, ...) last completed
    /// ([`since_start`]), indexed by the call. Per call, because a frozen or failing disk
    /// can still answer reads from the page cache while every write hangs: reads moving
    /// must not excuse a write that does not.
    done_at: [AtomicU64; Call::COUNT],
    strikes: AtomicU32,
    timing_out: AtomicBool,
    /// Latency of calls that answered in time, metadata and data.
    meta: Histogram,
    data: Histogram,
    timeouts: AtomicU64,
    /// Times the drive went offline for timing out.
    offline_transitions: AtomicU64,
    /// The inner drive's [`Drive::progress`] counter, when it keeps one.
    progress: Option<Arc<AtomicU64>>,
}

impl Health {
    fn progress(&self) -> u64 {
        self.progress
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed))
    }
}

/// What a drive's calls cost, as this node saw them (metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IoStats {
    pub meta: HistogramSnapshot,
    pub data: HistogramSnapshot,
    pub timeouts: u64,
    pub offline_transitions: u64,
}

#[derive(Debug)]
pub struct TimedDrive {
    inner: Arc<dyn Drive>,
    limits: Timeouts,
    health: Arc<Health>,
}

#[derive(Clone, Copy)]
enum Kind {
    Meta,
    Data,
}

/// The drive calls, each with its deadline's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Write,
    Finish,
    DiskInfo,
    Probe,
    Format,
    ReadSys,
    WriteSys,
    CreateSysFile,
    RenameSys,
    LinkSys,
    DeleteSys,
    ListSys,
    MakeBucket,
    ListBuckets,
    DeleteBucket,
    ReadMeta,
    ReadMetaHead,
    ReadEntries,
    ReadEntryHeads,
    WriteMeta,
    DeleteDataDir,
    FileSize,
    ReadFile,
    ReadChunk,
    ListDir,
}

impl Call {
    /// The last variant's index + 1 (keep `ListDir` last).
    const COUNT: usize = Call::ListDir as usize + 1;

    fn kind(self) -> Kind {
        match self {
            Call::Write
            | Call::Finish
            | Call::DeleteBucket
            | Call::DeleteDataDir
            | Call::ReadFile
            | Call::ReadChunk => Kind::Data,
            _ => Kind::Meta,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Call::Write => "write",
            Call::Finish => "finish",
            Call::DiskInfo => "disk_info",
            Call::Probe => "probe",
            Call::Format => "format",
            Call::ReadSys => "read_sys",
            Call::WriteSys => "write_sys",
            Call::CreateSysFile => "create_sys_file",
            Call::RenameSys => "rename_sys",
            Call::LinkSys => "link_sys",
            Call::DeleteSys => "delete_sys",
            Call::ListSys => "list_sys",
            Call::MakeBucket => "make_bucket",
            Call::ListBuckets => "list_buckets",
            Call::DeleteBucket => "delete_bucket",
            Call::ReadMeta => "read_meta",
            Call::ReadMetaHead => "read_meta_head",
            Call::ReadEntries => "read_entries",
            Call::ReadEntryHeads => "read_entry_heads",
            Call::WriteMeta => "write_meta",
            Call::DeleteDataDir => "delete_data_dir",
            Call::FileSize => "file_size",
            Call::ReadFile => "read_file",
            Call::ReadChunk => "read_chunk",
            Call::ListDir => "list_dir",
        }
    }
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl TimedDrive {
    pub fn new(inner: Arc<dyn Drive>) -> TimedDrive {
        TimedDrive::with_timeouts(inner, default_timeouts())
    }

    pub fn with_timeouts(inner: Arc<dyn Drive>, limits: Timeouts) -> TimedDrive {
        let health = Health {
            progress: inner.progress(),
            ..Health::default()
        };
        TimedDrive {
            inner,
            limits,
            health: Arc::new(health),
        }
    }

    fn offline(&self) -> DriveResult<()> {
        if self.health.timing_out.load(Ordering::Acquire) {
            return Err(DriveError::Offline(format!(
                "{}: {}",
                self.inner.name(),
                OfflineReason::TimingOut
            )));
        }
        Ok(())
    }

    async fn call<T>(
        &self,
        what: Call,
        fut: impl std::future::Future<Output = DriveResult<T>>,
    ) -> DriveResult<T> {
        self.offline()?;
        run(
            &self.health,
            self.inner.name(),
            self.limit(what.kind()),
            what,
            fut,
        )
        .await
    }

    fn limit(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Meta => self.limits.meta,
            Kind::Data => self.limits.data,
        }
    }
}

impl Health {
    fn done(&self, what: Call) {
        self.done_at[what as usize].fetch_max(since_start(), Ordering::Relaxed);
    }

    fn last_done(&self, what: Call) -> u64 {
        self.done_at[what as usize].load(Ordering::Relaxed)
    }
}

/// Nanoseconds since the first call of the process: a monotonic clock in one word.
fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

async fn run<T>(
    health: &Health,
    name: &str,
    limit: Duration,
    what: Call,
    fut: impl std::future::Future<Output = DriveResult<T>>,
) -> DriveResult<T> {
    let start = Instant::now();
    tokio::pin!(fut);
    let mut periods = 0;
    loop {
        let period_began = since_start();
        let progress_then = health.progress();
        match tokio::time::timeout(limit, &mut fut).await {
            Ok(r) => {
                health.done(what);
                health.strikes.store(0, Ordering::Relaxed);
                match what.kind() {
                    Kind::Meta => &health.meta,
                    Kind::Data => &health.data,
                }
                .observe(start.elapsed());
                return r;
            }
            Err(_) => {
                periods += 1;
                // Others finished meanwhile, or the drive's long work moved on: the drive is
                // busy, not hung; wait on.
                let busy =
                    health.last_done(what) > period_began || health.progress() != progress_then;
                if !busy || periods >= PATIENCE {
                    break;
                }
            }
        }
    }
    health.timeouts.fetch_add(1, Ordering::Relaxed);
    let strikes = health.strikes.fetch_add(1, Ordering::Relaxed) + 1;
    if strikes >= STRIKES && !health.timing_out.swap(true, Ordering::AcqRel) {
        health.offline_transitions.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            drive = name,
            call = what.name(),
            ?limit,
            "drive calls time out: offline until it answers a probe in time"
        );
    }
    Err(DriveError::TimedOut(format!(
        "{name}: {what} after {:?}",
        start.elapsed()
    )))
}

struct TimedWriter {
    inner: Box<dyn FileWriter>,
    health: Arc<Health>,
    name: String,
    limit: Duration,
}

#[async_trait]
impl FileWriter for TimedWriter {
    async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        let (health, name, limit) = (self.health.clone(), self.name.clone(), self.limit);
        run(&health, &name, limit, Call::Write, self.inner.write(data)).await
    }

    async fn finish(self: Box<Self>) -> DriveResult<()> {
        let TimedWriter {
            inner,
            health,
            name,
            limit,
        } = *self;
        run(&health, &name, limit, Call::Finish, inner.finish()).await
    }
}

#[async_trait]
impl Drive for TimedDrive {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn is_local(&self) -> bool {
        self.inner.is_local()
    }
    fn node(&self) -> Option<&str> {
        self.inner.node()
    }
    fn known_offline(&self) -> bool {
        self.health.timing_out.load(Ordering::Acquire) || self.inner.known_offline()
    }
    fn progress(&self) -> Option<Arc<AtomicU64>> {
        self.health.progress.clone()
    }
    fn io_stats(&self) -> Option<IoStats> {
        let h = &self.health;
        Some(IoStats {
            meta: h.meta.snapshot(),
            data: h.data.snapshot(),
            timeouts: h.timeouts.load(Ordering::Relaxed),
            offline_transitions: h.offline_transitions.load(Ordering::Relaxed),
        })
    }
    async fn disk_info(&self) -> DriveResult<DiskInfo> {
        self.call(Call::DiskInfo, self.inner.disk_info()).await
    }
    /// Always tried, also while timing out: a probe that answers in time brings the drive
    /// back.
    async fn probe(&self) -> DriveResult<Probe> {
        let r = run(
            &self.health,
            self.inner.name(),
            self.limits.meta,
            Call::Probe,
            self.inner.probe(),
        )
        .await;
        match r {
            Ok(p) => {
                if self.health.timing_out.swap(false, Ordering::AcqRel) {
                    tracing::info!(drive = self.inner.name(), "drive answers in time again");
                }
                Ok(p)
            }
            Err(DriveError::TimedOut(_)) => Ok(Probe {
                status: DriveStatus::Offline(OfflineReason::TimingOut),
                mount: None,
                empty: false,
            }),
            Err(e) => Err(e),
        }
    }
    async fn format(
        &self,
        format: Bytes,
        healing: Option<Bytes>,
        create_root: bool,
    ) -> DriveResult<()> {
        self.call(
            Call::Format,
            self.inner.format(format, healing, create_root),
        )
        .await
    }
    async fn read_sys(&self, path: &str) -> DriveResult<Bytes> {
        self.call(Call::ReadSys, self.inner.read_sys(path)).await
    }
    async fn write_sys(&self, path: &str, data: Bytes) -> DriveResult<()> {
        self.call(Call::WriteSys, self.inner.write_sys(path, data))
            .await
    }
    async fn create_sys_file(&self, path: &str) -> DriveResult<Box<dyn FileWriter>> {
        let inner = self
            .call(Call::CreateSysFile, self.inner.create_sys_file(path))
            .await?;
        Ok(Box::new(TimedWriter {
            inner,
            health: self.health.clone(),
            name: self.inner.name().to_string(),
            limit: self.limits.data,
        }))
    }
    async fn rename_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.call(Call::RenameSys, self.inner.rename_sys(from, to))
            .await
    }
    async fn link_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        self.call(Call::LinkSys, self.inner.link_sys(from, to))
            .await
    }
    async fn delete_sys(&self, path: &str) -> DriveResult<()> {
        self.call(Call::DeleteSys, self.inner.delete_sys(path))
            .await
    }
    async fn list_sys(&self, dir: &str) -> DriveResult<Vec<String>> {
        self.call(Call::ListSys, self.inner.list_sys(dir)).await
    }
    async fn make_bucket(&self, bucket: &str, created: i64) -> DriveResult<()> {
        self.call(Call::MakeBucket, self.inner.make_bucket(bucket, created))
            .await
    }
    async fn list_buckets(&self) -> DriveResult<Vec<BucketEntry>> {
        self.call(Call::ListBuckets, self.inner.list_buckets())
            .await
    }
    async fn delete_bucket(&self, bucket: &str) -> DriveResult<()> {
        // A bucket's removal walks it looking for objects: data-sized work.
        self.call(Call::DeleteBucket, self.inner.delete_bucket(bucket))
            .await
    }
    async fn read_meta(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.call(Call::ReadMeta, self.inner.read_meta(bucket, key))
            .await
    }
    async fn read_meta_head(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        self.call(Call::ReadMetaHead, self.inner.read_meta_head(bucket, key))
            .await
    }
    async fn read_entries(&self, bucket: &str, keys: &[String]) -> DriveResult<Vec<Entry>> {
        self.call(Call::ReadEntries, self.inner.read_entries(bucket, keys))
            .await
    }
    async fn read_entry_heads(
        &self,
        bucket: &str,
        keys: &[String],
        metas: bool,
    ) -> DriveResult<Vec<Entry>> {
        self.call(
            Call::ReadEntryHeads,
            self.inner.read_entry_heads(bucket, keys, metas),
        )
        .await
    }
    async fn write_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: Option<Bytes>,
        staged: Option<StagedData>,
    ) -> DriveResult<Option<Bytes>> {
        self.call(
            Call::WriteMeta,
            self.inner.write_meta(bucket, key, meta, staged),
        )
        .await
    }
    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        version: crate::meta::Version,
        staged: Option<StagedData>,
    ) -> DriveResult<PutVersion> {
        // The inner drive's one step (a local drive reads and writes at once) under the
        // deadline of a metadata write.
        self.call(
            Call::WriteMeta,
            self.inner.put_version(bucket, key, version, staged),
        )
        .await
    }
    async fn delete_data_dir(&self, bucket: &str, key: &str, data_dir: Uuid) -> DriveResult<()> {
        self.call(
            Call::DeleteDataDir,
            self.inner.delete_data_dir(bucket, key, data_dir),
        )
        .await
    }
    async fn file_size(&self, file: &FileRef) -> DriveResult<u64> {
        self.call(Call::FileSize, self.inner.file_size(file)).await
    }
    async fn read_file(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes> {
        self.call(Call::ReadFile, self.inner.read_file(file, offset, len))
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
        self.call(
            Call::ReadChunk,
            self.inner.read_chunk(file, offset, len, shard, chunk),
        )
        .await
    }
    async fn read_chunk_unchecked(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
    ) -> DriveResult<Bytes> {
        self.call(
            Call::ReadChunk,
            self.inner.read_chunk_unchecked(file, offset, len),
        )
        .await
    }
    async fn list_dir(&self, bucket: &str, prefix: &str, query: &DirQuery) -> DriveResult<DirPage> {
        self.call(Call::ListDir, self.inner.list_dir(bucket, prefix, query))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::{Fault, FaultyDrive, LocalDrive};

    /// Calls that wait in line behind others (a drive busy under a burst, each call quick
    /// but many queued) are not timed out while the line moves, however long they wait;
    /// a call that gets nowhere while the others move times out after [`PATIENCE`] periods;
    /// one on a drive where nothing moves, after one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_drive_is_waited_for_and_a_hung_one_is_not() {
        let health = Arc::new(Health::default());
        let limit = Duration::from_millis(100);
        let line = Arc::new(tokio::sync::Mutex::new(()));
        let t = Instant::now();
        let calls: Vec<_> = (0..12)
            .map(|_| {
                let (health, line) = (health.clone(), line.clone());
                tokio::spawn(async move {
                    run(&health, "d", limit, Call::ReadMeta, async {
                        let _turn = line.lock().await;
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        Ok(())
                    })
                    .await
                })
            })
            .collect();
        for c in calls {
            c.await.expect("join").expect("a queued call is waited for");
        }
        assert!(
            t.elapsed() >= Duration::from_millis(480),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(health.timeouts.load(Ordering::Relaxed), 0);
        assert!(!health.timing_out.load(Ordering::Relaxed));

        // One call stuck while others of its kind keep answering: it gives up after
        // PATIENCE periods.
        let ticking = {
            let health = health.clone();
            tokio::spawn(async move {
                loop {
                    let _ = run(&health, "d", limit, Call::ReadMeta, async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(())
                    })
                    .await;
                }
            })
        };
        let t = Instant::now();
        let stuck = run(&health, "d", limit, Call::ReadMeta, async {
            std::future::pending::<DriveResult<()>>().await
        })
        .await;
        assert!(matches!(stuck, Err(DriveError::TimedOut(_))));
        let waited = t.elapsed();
        assert!(
            waited >= limit * PATIENCE && waited < limit * (PATIENCE + 3),
            "{waited:?}"
        );
        // A frozen disk answers reads from the page cache while its writes hang: reads
        // moving do not excuse a write.
        let t = Instant::now();
        let write = run(&health, "d", limit, Call::WriteMeta, async {
            std::future::pending::<DriveResult<()>>().await
        })
        .await;
        ticking.abort();
        assert!(matches!(write, Err(DriveError::TimedOut(_))));
        assert!(t.elapsed() < limit * 3, "{:?}", t.elapsed());

        // Nothing moves: one period.
        let t = Instant::now();
        let hung = run(&health, "d", limit, Call::ReadMeta, async {
            std::future::pending::<DriveResult<()>>().await
        })
        .await;
        assert!(matches!(hung, Err(DriveError::TimedOut(_))));
        assert!(t.elapsed() < limit * 3, "{:?}", t.elapsed());
    }

    /// One long call (a directory of a million entries read a batch at a time) is waited
    /// for while the drive's progress counter moves, however many periods it takes; when
    /// the counter stops, it times out one period later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_call_that_makes_progress_is_not_hung() {
        let counter = Arc::new(AtomicU64::new(0));
        let health = Health {
            progress: Some(counter.clone()),
            ..Health::default()
        };
        let limit = Duration::from_millis(100);
        let t = Instant::now();
        let long = run(&health, "d", limit, Call::ListDir, {
            let counter = counter.clone();
            async move {
                for _ in 0..20 {
                    tokio::time::sleep(limit / 4).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, DriveError>(7)
            }
        })
        .await;
        assert_eq!(long.expect("waited for"), 7);
        assert!(t.elapsed() >= limit * 4, "{:?}", t.elapsed());
        // The counter stops moving half-way: timed out a period after it stopped.
        let t = Instant::now();
        let stalls = run(&health, "d", limit, Call::ListDir, {
            let counter = counter.clone();
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(limit / 4).await;
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                std::future::pending::<DriveResult<()>>().await
            }
        })
        .await;
        assert!(matches!(stalls, Err(DriveError::TimedOut(_))));
        assert!(t.elapsed() < limit * 6, "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_hung_drive_times_out_goes_offline_and_comes_back() {
        let dir = tempfile::tempdir().expect("dir");
        let local = Arc::new(LocalDrive::open(dir.path().join("d")));
        local
            .format(Bytes::from_static(b"{}"), None, true)
            .await
            .expect("format");
        // Written before the deadlines apply: a sync on a busy test machine can take longer
        // than this test's short deadlines.
        local
            .write_sys("x", Bytes::from_static(b"1"))
            .await
            .expect("write");
        let (faulty, fault) = FaultyDrive::new(local);
        let limits = Timeouts {
            meta: Duration::from_millis(100),
            data: Duration::from_millis(200),
        };
        let d = TimedDrive::with_timeouts(Arc::new(faulty), limits);
        *fault.lock() = Fault::Latency(Duration::from_secs(3600));
        let t = std::time::Instant::now();
        for _ in 0..STRIKES {
            assert!(matches!(
                d.read_sys("x").await,
                Err(DriveError::TimedOut(_))
            ));
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // Offline now: refused at once, without waiting for the deadline.
        let t = std::time::Instant::now();
        assert!(matches!(d.read_sys("x").await, Err(DriveError::Offline(_))));
        assert!(t.elapsed() < Duration::from_millis(50));
        let p = d.probe().await.expect("probe");
        assert_eq!(p.status, DriveStatus::Offline(OfflineReason::TimingOut));
        // The disk answers again: the next probe brings it back.
        *fault.lock() = Fault::None;
        assert_eq!(d.probe().await.expect("probe").status, DriveStatus::Online);
        assert_eq!(&d.read_sys("x").await.expect("read")[..], b"1");
    }
}
