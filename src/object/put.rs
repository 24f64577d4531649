//! Writes: erasure-code a body into staged shard files (or inline shards), then commit the
//! new version on every drive under the key's write lock, with quorum and rollback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use cairn_erasure::{bitrot, Erasure};
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::AbortOnDropHandle;
use uuid::Uuid;

use super::quorum::{fan_out, judge, judge_on, write_ok};
use super::{
    check_bucket, check_key, now_nanos, ErasureSet, ObjectError, ObjectInfo, ObjectResult,
    PutOptions, Store, WriteCondition, INLINE_LIMIT, LOCK_TIMEOUT, MAX_OBJECT_SIZE,
};
use crate::drive::{Drive, DriveError, DriveResult, FileWriter, PutVersion, StagedData};
use crate::etag::{self, Md5Stream};
use crate::meta::{ErasureInfo, ObjectMeta, PartInfo, Version, VersionKind};
use crate::placement::{distribution, write_quorum};

pub(crate) type Body<'a> = &'a mut (dyn AsyncRead + Unpin + Send);

/// The shards of one encoded stream.
pub(crate) enum Shards {
    /// Framed shard bytes per drive position (small objects).
    Inline(Vec<Vec<u8>>),
    /// Shard files written and fsynced; `true` for each drive position that has its file.
    Staged(Vec<bool>),
}

pub(crate) struct Encoded {
    pub size: u64,
    pub md5: [u8; 16],
    pub shards: Shards,
}

/// Erasure geometry for a new write on `set`: the storage class's `base` parity, raised by
/// one for each drive that is offline now (up to half the set) so the object keeps its
/// durability.
pub(crate) fn write_geometry(set: &ErasureSet, base: usize, offline: usize) -> (usize, usize) {
    let parity = (base + offline).min(set.size() / 2).max(base);
    (set.size() - parity, parity)
}

/// Read until `buf` is full or the body ends; returns the bytes read.
async fn read_full(body: Body<'_>, buf: &mut [u8]) -> ObjectResult<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(ObjectError::Body(e)),
        }
    }
    Ok(n)
}

/// Bytes of a block read into one buffer: each is handed to the MD5 engine as soon as it is
/// full, so the ETag is hashed while the rest of the block arrives instead of after it.
const PIECE: usize = 128 << 10;

/// One erasure block of a body as read: its bytes in order, in pieces of at most [`PIECE`]
/// bytes with buffers of their own. Framing copies them into the shards' frames, so the
/// block need not be contiguous; a piece's memory goes once the block is framed and the
/// MD5 engine (which shares it) has hashed it.
struct Block {
    pieces: Vec<Bytes>,
    len: usize,
}

/// Read up to `block_size` bytes of `body` (fewer only where it ends), handing each piece
/// to `md5` as it fills, when given.
async fn read_block(
    body: Body<'_>,
    block_size: usize,
    mut md5: Option<&mut Etag>,
) -> ObjectResult<Block> {
    let mut block = Block {
        pieces: Vec::with_capacity(block_size.div_ceil(PIECE)),
        len: 0,
    };
    while block.len < block_size {
        let want = PIECE.min(block_size - block.len);
        let mut piece = BytesMut::zeroed(want);
        let n = read_full(body, &mut piece).await?;
        if n > 0 {
            piece.truncate(n);
            let piece = piece.freeze();
            if let Some(md5) = md5.as_deref_mut() {
                md5.update(&piece).await;
            }
            block.len += n;
            block.pieces.push(piece);
        }
        if n < want {
            break;
        }
    }
    Ok(block)
}

/// Where an upload's MD5 is computed (see `crate::etag`), if anyone needs it.
enum Etag {
    Lanes(Md5Stream),
    Inline(Box<Md5>),
    /// The writer gives the ETag and checks its own digest (an encrypted upload: the
    /// stored bytes are ciphertext, whose MD5 nobody reads).
    Skip,
}

impl Etag {
    /// Per `CAIRN_MD5`: on the MD5 thread with at most `window` bytes waiting, or inline.
    fn new(window: usize, hash: bool) -> Etag {
        if !hash {
            return Etag::Skip;
        }
        match etag::mode() {
            etag::Mode::Lanes => Etag::Lanes(Md5Stream::new(window)),
            etag::Mode::Inline => Etag::Inline(Box::default()),
        }
    }

    /// Hash `bytes` next (on the MD5 thread: queued, sharing the buffer).
    async fn update(&mut self, bytes: &Bytes) {
        match self {
            Etag::Lanes(stream) => stream.update(bytes.clone()).await,
            Etag::Inline(h) => h.update(bytes),
            Etag::Skip => {}
        }
    }
}

/// Erasure-code `body` onto the set. `file` is the sys path of the shard file every drive
/// writes (unless the result fits inline and `allow_inline`). Without `hash` the MD5 of the
/// bytes is not computed (`Encoded::md5` is zero).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn encode_stream(
    set: &ErasureSet,
    dist: &[u16],
    erasure: &Erasure,
    body: Body<'_>,
    expected: Option<u64>,
    file: &str,
    allow_inline: bool,
    hash: bool,
    quorum: usize,
) -> ObjectResult<Encoded> {
    let block_size = erasure.block_size();
    let mut size: u64 = 0;
    // Each block's shards framed for their files, in drive order (see
    // `Erasure::encode_framed`: the data copied from the pieces into its frames, the parity
    // encoded straight into its own, so an upload keeps no parity buffers between blocks).
    let frame_all = |pieces: &[Bytes]| -> ObjectResult<Vec<Vec<u8>>> {
        let mut framed: Vec<Option<Vec<u8>>> = erasure
            .encode_framed(pieces)
            .map_err(|e| ObjectError::Internal(e.to_string()))?
            .into_iter()
            .map(Some)
            .collect();
        dist.iter()
            .map(|&s| {
                (s as usize)
                    .checked_sub(1)
                    .and_then(|s| framed.get_mut(s))
                    .and_then(Option::take)
                    .ok_or_else(|| ObjectError::Internal(format!("no shard {s} in the layout")))
            })
            .collect()
    };
    // The ETag is hashed on the MD5 thread while this task reads, encodes and hands the
    // shards to the drives: each piece of a block goes to it as soon as it is read.
    let mut md5 = Etag::new(block_size, hash);
    // A body whose declared length rules out inline shards has its shard files made while
    // its first block arrives, and its first bytes hashed as they come. One that may fit
    // inline (its length undeclared, or small enough) is read first: if it does fit, it is
    // hashed here (a trip to the MD5 thread would cost more) and no drive is asked for a
    // file.
    let may_inline = allow_inline
        && expected
            .is_none_or(|e| e < block_size as u64 && erasure.chunk_len(e as usize) <= INLINE_LIMIT);
    let (mut block, started) = if may_inline {
        let block = read_block(body, block_size, None).await?;
        let n = block.len;
        if n < block_size && erasure.chunk_len(n) <= INLINE_LIMIT {
            let mut md5 = Md5::new();
            for piece in &block.pieces {
                md5.update(piece);
            }
            let md5 = md5.finalize();
            check_size(n as u64, expected)?;
            let framed = if n == 0 {
                vec![Vec::new(); dist.len()]
            } else {
                frame_all(&block.pieces)?
            };
            return Ok(Encoded {
                size: n as u64,
                md5: md5.into(),
                shards: Shards::Inline(framed),
            });
        }
        for piece in &block.pieces {
            md5.update(piece).await;
        }
        let started = fan_out(&set.drives, |_, d| d.create_sys_file(file)).await;
        (block, started)
    } else {
        let (block, started) = tokio::join!(
            read_block(body, block_size, Some(&mut md5)),
            fan_out(&set.drives, |_, d| d.create_sys_file(file)),
        );
        (block?, started)
    };
    // One writer task per drive, fed through a short queue so encoding overlaps the writes.
    let mut writers = Vec::with_capacity(started.len());
    // Drives that could not take a shard for want of space (a write short of its quorum
    // only for them answers "full", not "retry").
    let mut full = 0;
    for w in started {
        match w {
            Ok(w) => writers.push(Some(ShardWriter::spawn(w, 1))),
            Err(e) => {
                tracing::warn!(error = %e, "shard writer could not start");
                full += usize::from(matches!(e, DriveError::Full));
                writers.push(None);
            }
        }
    }
    loop {
        let n = block.len;
        if n > 0 {
            size += n as u64;
            if size > MAX_OBJECT_SIZE || expected.is_some_and(|e| size > e) {
                return Err(size_error(size, expected));
            }
            // The block's frames count against the server-wide budget from before they are
            // made until every drive has written its own: uploads waiting for room hold
            // their block only, not its frames too.
            let cost = dist.len() * (bitrot::HASH_LEN + erasure.chunk_len(n));
            let permit = Arc::new(write_budget(cost).await);
            let framed = frame_all(&block.pieces)?;
            // The MD5 engine holds what it has yet to hash; the rest goes now.
            block.pieces.clear();
            debug_assert_eq!(cost, framed.iter().map(Vec::len).sum::<usize>());
            for (w, chunk) in writers.iter_mut().zip(framed) {
                if let Some(w) = w {
                    w.send((Bytes::from(chunk), permit.clone())).await;
                }
            }
            let live = writers.iter().flatten().filter(|w| w.open()).count();
            if live < quorum {
                // Why the stopped writers stopped decides the answer ("full" or "retry"):
                // they say. The live ones are dropped, which stops them before they finish
                // files about to be deleted; they count as the drives that took the shard.
                let (mut ok, mut more_full) = (0, 0);
                for w in writers.iter_mut().filter_map(Option::take) {
                    if w.running() {
                        ok += 1;
                    } else if let Err(e) = w.finish().await {
                        tracing::warn!(error = %e, "shard write failed");
                        more_full += usize::from(matches!(e, DriveError::Full));
                    }
                }
                return Err(super::quorum::short_of(ok, full + more_full, quorum)
                    .err()
                    .unwrap_or(ObjectError::WriteQuorum { ok, need: quorum }));
            }
        }
        if n < block_size {
            break;
        }
        block = read_block(body, block_size, Some(&mut md5)).await?;
    }
    check_size(size, expected)?;
    let (ok, more_full) = join_writers(&mut writers).await;
    let live = ok.iter().filter(|o| **o).count();
    super::quorum::short_of(live, full + more_full, quorum)?;
    let md5 = match md5 {
        Etag::Lanes(stream) => stream.finish().await,
        Etag::Inline(h) => h.finalize().into(),
        Etag::Skip => [0; 16],
    };
    Ok(Encoded {
        size,
        md5,
        shards: Shards::Staged(ok),
    })
}

fn size_error(size: u64, expected: Option<u64>) -> ObjectError {
    match expected {
        Some(want) if size > want => {
            ObjectError::InvalidArgument(format!("body is longer than the declared {want} bytes"))
        }
        _ => ObjectError::EntityTooLarge,
    }
}

fn check_size(size: u64, expected: Option<u64>) -> ObjectResult<()> {
    match expected {
        Some(want) if size < want => Err(ObjectError::IncompleteBody { got: size, want }),
        Some(want) if size > want => Err(size_error(size, expected)),
        _ => Ok(()),
    }
}

/// A shard chunk on its way to a drive, and its share of the write budget.
pub(super) type Chunk = (Bytes, Arc<Option<OwnedSemaphorePermit>>);

/// One shard file written by a task of its own, fed through a short queue so that encoding
/// (or rebuilding) the next chunk overlaps the drive's write of this one.
///
/// Dropped before `finish` (an upload that failed part way, a request dropped with its
/// upload, a heal whose rebuild failed), the writer is abandoned: seeing its queue close, it
/// would otherwise finish (and sync) a shard file that is about to be deleted. Its task is
/// aborted, and since an abort does not stop a poll already running on another thread, the
/// task is also told, before its queue closes, to leave the file unfinished.
pub(super) struct ShardWriter {
    /// `None` once `finish` took it.
    task: Option<AbortOnDropHandle<DriveResult<()>>>,
    /// `None` once closed: `finish` called, or the task stopped taking chunks (it failed).
    queue: Option<tokio::sync::mpsc::Sender<Chunk>>,
    /// Set when dropped unfinished, before the queue closes.
    abandoned: Arc<AtomicBool>,
}

impl ShardWriter {
    /// Start writing `w` with `queue` chunks waiting at most.
    pub(super) fn spawn(mut w: Box<dyn FileWriter>, queue: usize) -> ShardWriter {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Chunk>(queue.max(1));
        let abandoned = Arc::new(AtomicBool::new(false));
        let left = abandoned.clone();
        let task = tokio::spawn(async move {
            while let Some((chunk, _budget)) = rx.recv().await {
                w.write(chunk).await?;
            }
            // The queue closed after `left` was set if the writer was dropped unfinished
            // (the channel's close orders the two).
            if left.load(Ordering::SeqCst) {
                return Err(DriveError::NotDone("shard writer abandoned"));
            }
            w.finish().await
        });
        ShardWriter {
            task: Some(AbortOnDropHandle::new(task)),
            queue: Some(tx),
            abandoned,
        }
    }

    /// Still taking chunks?
    pub(super) fn open(&self) -> bool {
        self.queue.is_some()
    }

    /// Taking chunks, and its task has not stopped on an error not seen yet.
    fn running(&self) -> bool {
        self.open() && self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Queue one chunk; `false` (and closed from now on) if the task no longer takes any,
    /// which `finish` then explains.
    pub(super) async fn send(&mut self, chunk: Chunk) -> bool {
        let Some(tx) = &self.queue else {
            return false;
        };
        if tx.send(chunk).await.is_err() {
            self.queue = None;
            return false;
        }
        true
    }

    /// Close the queue and wait for the file to be finished (or for why it was not).
    pub(super) async fn finish(mut self) -> DriveResult<()> {
        self.queue = None;
        let Some(task) = self.task.take() else {
            return Err(DriveError::NotDone("writer task gone"));
        };
        task.await
            .unwrap_or(Err(DriveError::NotDone("writer task panicked")))
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        // Told first, then aborted, then its queue closed: whichever the task sees, it
        // leaves the file unfinished. (After `finish`, the task is done or gone already.)
        self.abandoned.store(true, Ordering::SeqCst);
        self.task = None;
        self.queue = None;
    }
}

/// Finish every writer of an upload (`None`: a drive that took no writer): which finished
/// their shard, and how many failed for want of space.
async fn join_writers(writers: &mut [Option<ShardWriter>]) -> (Vec<bool>, usize) {
    // Every queue is closed on the first poll, so the drives finish their files together
    // rather than one after another.
    let results = futures::future::join_all(writers.iter_mut().map(|slot| {
        let w = slot.take();
        async move {
            match w {
                Some(w) => w.finish().await,
                None => Err(DriveError::NotDone("no writer")),
            }
        }
    }))
    .await;
    let (mut ok, mut full) = (Vec::with_capacity(results.len()), 0);
    for r in results {
        if let Err(e) = &r {
            tracing::warn!(error = %e, "shard write failed");
            full += usize::from(matches!(e, DriveError::Full));
        }
        ok.push(r.is_ok());
    }
    (ok, full)
}

/// Bytes of encoded shard chunks that all uploads together may have on their way to the
/// drives (`CAIRN_WRITE_BUDGET`, default 32 MiB). Without it, each upload's pipeline (a chunk
/// being sent, one queued and one being written per drive) fills up whenever the drives are
/// the bottleneck, and memory grows with the number of concurrent uploads.
fn write_budget_bytes() -> usize {
    static BYTES: OnceLock<usize> = OnceLock::new();
    *BYTES.get_or_init(|| {
        std::env::var("CAIRN_WRITE_BUDGET")
            .ok()
            .and_then(|v| crate::units::parse_bytes(&v))
            .map_or(32 << 20, |b| (b as usize).max(1 << 20))
    })
}

/// Waits for `bytes` of the write budget (in KiB permits; a chunk set larger than the whole
/// budget takes all of it). `None` only if the semaphore were closed, which it never is.
async fn write_budget(bytes: usize) -> Option<OwnedSemaphorePermit> {
    static BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let total = write_budget_bytes() >> 10;
    let budget = BUDGET.get_or_init(|| Arc::new(Semaphore::new(total)));
    let want = bytes.div_ceil(1024).clamp(1, total) as u32;
    budget.clone().acquire_many_owned(want).await.ok()
}

/// A version to commit, before it is specialised per drive.
pub(crate) struct NewVersion {
    pub version: Version,
    /// Framed inline shard per drive position, if inline.
    pub inline: Option<Vec<Vec<u8>>>,
    /// Which drive positions have the data (all, for inline data).
    pub ok: Vec<bool>,
    /// Sys directory to move into the object as its data directory.
    pub staged_dir: Option<String>,
}

/// Where a commit's set came from, for a deployment of several pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Home {
    /// Chosen by the write (the pool holding the key, else by free space): if another pool
    /// took the key meanwhile the write is refused ([`ObjectError::Moved`]) and retried.
    Chosen,
    /// Fixed (a multipart upload's pool): a key another pool took meanwhile is moved back.
    Pinned,
}

/// Which drive positions took a commit (its metadata written, its staged data moved in).
pub(crate) type Committed = Vec<bool>;

/// Commit `new` as the latest version of `bucket/key` on the set's drives: under the write
/// lock, merge it into each drive's metadata and write it, moving staged data in. Below
/// write quorum everything is rolled back. Replaced data directories are removed after.
pub(crate) async fn commit(
    store: &Store,
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    new: NewVersion,
    cond: Option<&WriteCondition>,
    home: Home,
) -> ObjectResult<Committed> {
    let guard = store
        .locker
        .lock(&format!("{bucket}/{key}"), true, LOCK_TIMEOUT)
        .await?;
    // With several pools: the key may have been taken by another pool since the write
    // chose this one.
    match home {
        Home::Chosen => store.check_home(set, bucket, key, &guard).await?,
        Home::Pinned => store.pull_home(set, bucket, key, &guard).await?,
    }
    commit_locked(store, set, bucket, key, new, cond, &guard).await
}

/// [`commit`] with the key's write lock already held by `guard`.
pub(crate) async fn commit_locked(
    store: &Store,
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    new: NewVersion,
    cond: Option<&WriteCondition>,
    guard: &crate::lock::LockGuard,
) -> ObjectResult<Committed> {
    let Some(cond) = cond else {
        return commit_merged(store, set, bucket, key, new, guard).await;
    };
    let data = new.version.erasure.data as usize;
    let parity = new.version.erasure.parity as usize;
    let quorum = write_quorum(data, parity);
    // Every drive's answer, each under its deadline: an acknowledged write is on every drive
    // that could take it, so nothing lands after the acknowledgement.
    let current = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
    // The bucket was removed (on another node, say) since the write began.
    if bucket_missing(&current, set.size()) {
        return Err(ObjectError::NoSuchBucket);
    }
    // It held when the write began (the caller checked): failing now means another write
    // committed in between.
    judge_on(set, &current, cond).map_err(|e| match e {
        ObjectError::PreconditionFailed | ObjectError::NoSuchKey => {
            ObjectError::ConditionalConflict
        }
        e => e,
    })?;
    // Versions stay ordered by modification time on every drive (heal restores them in
    // that order): the new one is newer than everything it goes in front of.
    let mut new = new;
    let newest = newest_mod_time(&current);
    if new.version.mod_time <= newest {
        new.version.mod_time = newest.saturating_add(1);
    }
    let plans: Vec<Option<(Bytes, Option<Uuid>)>> = current
        .into_iter()
        .enumerate()
        .map(|(i, cur)| {
            if !new.ok[i] {
                return None;
            }
            let mut meta = match cur {
                Ok(b) => ObjectMeta::decode(&b).unwrap_or_default(),
                Err(DriveError::NotFound) => ObjectMeta::default(),
                // Bucket missing or drive failing: this drive cannot take the write.
                Err(_) => return None,
            };
            let mut v = new.version.clone();
            v.erasure.index = v.erasure.distribution[i];
            v.inline = new.inline.as_ref().map(|s| s[i].clone());
            let replaced = meta.upsert(v).and_then(|old| old.data_dir);
            Some((Bytes::from(meta.encode()), replaced))
        })
        .collect();
    let staged = new.staged_dir.as_ref().zip(new.version.data_dir);
    if !guard.held() {
        return Err(ObjectError::LockLost);
    }
    let results = fan_out(&set.drives, |i, d| {
        let plan = plans[i].clone();
        let staged = staged.map(|(from, data_dir)| StagedData {
            from: from.clone(),
            data_dir,
        });
        async move {
            match plan {
                Some((meta, _)) => d.write_meta(bucket, key, Some(meta), staged).await,
                None => Err(DriveError::NotDone("skipped")),
            }
        }
    })
    .await;
    if let Err(e) = write_ok(&results, quorum) {
        rollback(set, bucket, key, &results, new.version.data_dir).await;
        if results
            .iter()
            .filter(|r| matches!(r, Err(DriveError::BucketNotFound)))
            .count()
            * 2
            > set.size()
        {
            return Err(ObjectError::NoSuchBucket);
        }
        return Err(e);
    }
    let replaced: Vec<Option<Uuid>> = plans
        .iter()
        .map(|p| p.as_ref().and_then(|(_, old)| *old))
        .collect();
    Ok(settle_commit(
        store,
        set,
        bucket,
        key,
        &replaced,
        &results,
        new.version.data_dir,
    )
    .await)
}

/// After a commit reached its quorum: remove the data directories of the versions it
/// replaced (`replaced`, per drive) where it took, queue a heal of the key if a drive did
/// not take it, and say which drives did.
async fn settle_commit(
    store: &Store,
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    replaced: &[Option<Uuid>],
    results: &[DriveResult<Option<Bytes>>],
    data_dir: Option<Uuid>,
) -> Committed {
    let _ = fan_out(&set.drives, |i, d| {
        let old = replaced[i];
        let done = results[i].is_ok();
        async move {
            match old {
                Some(dir) if done && Some(dir) != data_dir => {
                    d.delete_data_dir(bucket, key, dir).await
                }
                _ => Ok(()),
            }
        }
    })
    .await;
    if results.iter().any(Result::is_err) {
        store.heal_queue.push(bucket, key);
    }
    results.iter().map(Result::is_ok).collect()
}

/// [`commit_locked`] without a condition: each drive merges the new version into what it
/// holds and writes it in one step ([`Drive::put_version`]), with nothing read first. Each
/// drive raises the version's time past its own newest version; when they answer different
/// times (clocks of nodes apart, or a clock stepped back), the drives below the highest
/// are given that one, so every drive holds the same version. Below write quorum every
/// drive that took it is rolled back.
async fn commit_merged(
    store: &Store,
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    new: NewVersion,
    guard: &crate::lock::LockGuard,
) -> ObjectResult<Committed> {
    let quorum = write_quorum(
        new.version.erasure.data as usize,
        new.version.erasure.parity as usize,
    );
    let staged = new.staged_dir.as_ref().zip(new.version.data_dir);
    let staged_data = || {
        staged.map(|(from, data_dir)| StagedData {
            from: from.clone(),
            data_dir,
        })
    };
    // The version as drive position `i` holds it: its shard's index, its inline shard.
    let version_for = |i: usize, mod_time: i64| {
        let mut v = new.version.clone();
        v.mod_time = mod_time;
        v.erasure.index = v.erasure.distribution[i];
        v.inline = new.inline.as_ref().map(|s| s[i].clone());
        v
    };
    if !guard.held() {
        return Err(ObjectError::LockLost);
    }
    let first = fan_out(&set.drives, |i, d| {
        let v = new.ok[i].then(|| version_for(i, new.version.mod_time));
        let staged = staged_data();
        async move {
            match v {
                Some(v) => d.put_version(bucket, key, v, staged).await,
                None => Err(DriveError::NotDone("skipped")),
            }
        }
    })
    .await;
    let newest = first
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|p| p.mod_time))
        .max();
    // Per drive: the metadata it held before (to roll back to), or why it did not commit.
    let previous = |r: &DriveResult<PutVersion>| match r {
        Ok(p) => Ok(p.previous.clone()),
        Err(e) => Err(e.again()),
    };
    let mut results: Vec<DriveResult<Option<Bytes>>> = first.iter().map(previous).collect();
    if let Some(newest) = newest {
        let behind: Vec<bool> = first
            .iter()
            .map(|r| r.as_ref().is_ok_and(|p| p.mod_time != newest))
            .collect();
        if behind.contains(&true) {
            // Their data is in place already: only the metadata changes.
            let second = fan_out(&set.drives, |i, d| {
                let v = behind[i].then(|| version_for(i, newest));
                async move {
                    match v {
                        Some(v) => d.put_version(bucket, key, v, None).await.map(|_| ()),
                        None => Ok(()),
                    }
                }
            })
            .await;
            for (i, r) in second.into_iter().enumerate() {
                if let Err(e) = r {
                    tracing::warn!(bucket, key, drive = i, error = %e, "a commit's second round failed");
                    results[i] = Err(e);
                }
            }
        }
    }
    if let Err(e) = write_ok(&results, quorum) {
        // Every drive that took the first round gets its previous metadata back.
        let took: Vec<DriveResult<Option<Bytes>>> = first.iter().map(previous).collect();
        rollback(set, bucket, key, &took, new.version.data_dir).await;
        if bucket_missing(&first, set.size()) {
            return Err(ObjectError::NoSuchBucket);
        }
        return Err(e);
    }
    let replaced: Vec<Option<Uuid>> = first
        .iter()
        .map(|r| r.as_ref().ok().and_then(|p| p.replaced))
        .collect();
    Ok(settle_commit(
        store,
        set,
        bucket,
        key,
        &replaced,
        &results,
        new.version.data_dir,
    )
    .await)
}

/// The newest modification time of any version in these metadata answers.
pub(crate) fn newest_mod_time(answers: &[DriveResult<Bytes>]) -> i64 {
    answers
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter_map(|b| ObjectMeta::decode(b).ok())
        .filter_map(|m| m.latest().map(|v| v.mod_time))
        .max()
        .unwrap_or(i64::MIN)
}

/// Undo a commit that missed quorum: restore each committed drive's previous metadata and
/// drop the new data directory.
async fn rollback(
    set: &ErasureSet,
    bucket: &str,
    key: &str,
    results: &[DriveResult<Option<Bytes>>],
    data_dir: Option<Uuid>,
) {
    let _ = fan_out(&set.drives, |i, d| {
        let prev = results[i].as_ref().ok().cloned();
        async move {
            let Some(prev) = prev else { return Ok(()) };
            d.write_meta(bucket, key, prev, None).await?;
            if let Some(dir) = data_dir {
                d.delete_data_dir(bucket, key, dir).await?;
            }
            Ok(())
        }
    })
    .await;
}

/// Remove a staging directory from every drive (best effort).
pub(crate) async fn cleanup(drives: &[Option<Arc<dyn Drive>>], path: &str) {
    let _ = fan_out(drives, |_, d| d.delete_sys(path)).await;
}

/// [`cleanup`] on the drive positions `left` marks: the others hold no staging directory
/// (none was made, or a commit moved it into the object).
pub(crate) async fn cleanup_left(drives: &[Option<Arc<dyn Drive>>], path: &str, left: &[bool]) {
    if !left.contains(&true) {
        return;
    }
    let _ = fan_out(drives, |i, d| async move {
        match left.get(i) {
            Some(false) => Ok(()),
            _ => d.delete_sys(path).await,
        }
    })
    .await;
}

impl Store {
    /// Store `body` as `bucket/key`. `size` is the declared length, if known; memory use is
    /// one erasure block whatever the size.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Body<'_>,
        size: Option<u64>,
        opts: PutOptions,
    ) -> ObjectResult<ObjectInfo> {
        check_bucket(bucket)?;
        check_key(key)?;
        if size.is_some_and(|s| s > MAX_OBJECT_SIZE) {
            return Err(ObjectError::EntityTooLarge);
        }
        let set = self.write_home(bucket, key, size).await?;
        let offline = self.offline_for_write(set, bucket, key).await?;
        // `NoSuchBucket` (from the bucket store) before anything else reads the drives.
        let version_id = self.new_version_id(bucket).await?;
        if let Some(cond) = &opts.condition {
            judge(set, bucket, key, cond).await?;
        }
        let (data, parity) = write_geometry(set, self.parity_for(set, &opts.headers), offline);
        let block_size = opts.block_size_or(self.block_size);
        let erasure = Erasure::new(data, parity, block_size)
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let dist = distribution(bucket, key, set.size());
        // Staged as the data directory itself, renamed into place whole: nothing is left to
        // delete after a commit (freed inodes slow ext4's next allocations for minutes).
        let data_dir = Uuid::new_v4();
        let txn = format!("tmp/{data_dir}");
        let file = format!("{txn}/part.1");
        let quorum = write_quorum(data, parity);
        // Drive positions that may still hold the staging directory when this is over:
        // every one until the data turns out inline (nothing staged) or is committed.
        let mut left = vec![true; set.size()];
        let result = async {
            let hash = opts.etag.is_none() || opts.content_md5.is_some();
            let enc =
                encode_stream(set, &dist, &erasure, body, size, &file, true, hash, quorum).await?;
            if opts.content_md5.is_some_and(|m| m != enc.md5) {
                return Err(ObjectError::BadDigest);
            }
            let etag = opts
                .etag
                .as_ref()
                .and_then(|e| e.lock().clone())
                .unwrap_or_else(|| hex::encode(enc.md5));
            let checksums = opts.final_checksums();
            let version = Version {
                kind: VersionKind::Object,
                version_id,
                mod_time: now_nanos(),
                size: enc.size,
                etag: etag.clone(),
                headers: opts.headers.clone(),
                user_meta: opts.user_meta.clone(),
                checksums: checksums.clone(),
                erasure: ErasureInfo::new(data, parity, block_size, dist.clone()),
                parts: vec![PartInfo {
                    number: 1,
                    size: enc.size,
                    etag,
                    checksums,
                    meta: Default::default(),
                }],
                data_dir: None,
                inline: None,
            };
            let new = match enc.shards {
                Shards::Inline(framed) => {
                    left.fill(false);
                    NewVersion {
                        version,
                        ok: vec![true; framed.len()],
                        inline: Some(framed),
                        staged_dir: None,
                    }
                }
                Shards::Staged(ok) => NewVersion {
                    version: Version {
                        data_dir: Some(data_dir),
                        ..version
                    },
                    inline: None,
                    ok,
                    staged_dir: Some(txn.clone()),
                },
            };
            let info = info_of(bucket, key, &new.version);
            let staged = new.staged_dir.is_some();
            crate::crash::point(crate::crash::PUT_STAGED);
            let committed = commit(
                self,
                set,
                bucket,
                key,
                new,
                opts.condition.as_ref(),
                Home::Chosen,
            )
            .await?;
            if staged {
                for (l, c) in left.iter_mut().zip(committed) {
                    *l = !c;
                }
            }
            crate::crash::point(crate::crash::PUT_COMMITTED);
            Ok(info)
        }
        .await;
        cleanup_left(&set.drives, &txn, &left).await;
        result
    }

    /// Fail with `NoSuchBucket` unless the bucket exists on a majority of the set's drives;
    /// returns how many drives did not answer.
    pub(crate) async fn check_bucket_on_set(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
    ) -> ObjectResult<usize> {
        let r = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
        judge_bucket_answers(&r, set.size())
    }

    /// [`Store::check_bucket_on_set`] for a PUT, which asks no local drive anything: a local
    /// drive answers from what it knows of itself (its last probe, its deadlines), a remote
    /// one is asked (its node may be up while the drive is not). Whether the bucket exists
    /// is the bucket store's to say before the body is read (`new_version_id`); a commit
    /// that finds it gone from most drives answers `NoSuchBucket` as well.
    pub(crate) async fn offline_for_write(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
    ) -> ObjectResult<usize> {
        let r = fan_out(&set.drives, |_, d| async move {
            match (d.is_local(), d.known_offline()) {
                (_, true) => Err(DriveError::Offline(d.name().to_string())),
                (true, false) => Ok(Bytes::new()),
                (false, false) => d.read_meta(bucket, key).await,
            }
        })
        .await;
        judge_bucket_answers(&r, set.size())
    }
}

/// Too many drives of a set of `n` lack the bucket for it to be there: a majority, or
/// exactly half.
fn bucket_missing<T>(answers: &[DriveResult<T>], n: usize) -> bool {
    let missing = answers
        .iter()
        .filter(|r| matches!(r, Err(DriveError::BucketNotFound)))
        .count();
    missing * 2 > n || (missing > 0 && missing * 2 == n)
}

/// `NoSuchBucket` if the answers say the bucket is missing, else how many drives could
/// not answer (a write raises its parity by as many).
fn judge_bucket_answers<T>(answers: &[DriveResult<T>], n: usize) -> ObjectResult<usize> {
    if bucket_missing(answers, n) {
        return Err(ObjectError::NoSuchBucket);
    }
    Ok(answers
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(DriveError::Offline(_)
                    | DriveError::Io(_)
                    | DriveError::TimedOut(_)
                    | DriveError::Injected(_))
            )
        })
        .count())
}

pub(crate) fn info_of(bucket: &str, key: &str, v: &Version) -> ObjectInfo {
    ObjectInfo {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: v.size,
        etag: v.etag.clone(),
        mod_time: v.mod_time,
        version_id: v.version_id,
        headers: v.headers.clone(),
        user_meta: v.user_meta.clone(),
        checksums: v.checksums.clone(),
        parts: v.parts.iter().map(|p| (p.number, p.size)).collect(),
        part_checksums: v.parts.iter().map(|p| p.checksums.clone()).collect(),
        part_meta: v.parts.iter().map(|p| p.meta.clone()).collect(),
        delete_marker: v.kind == VersionKind::DeleteMarker,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_write_budget_is_shared_and_never_deadlocks_on_a_large_block() {
        // A chunk set larger than the whole budget takes all of it instead of waiting forever.
        let all = write_budget(usize::MAX / 4).await;
        assert!(all.is_some());
        // Then nothing else fits until it is returned.
        let waiting = tokio::spawn(write_budget(4096));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the budget was exhausted");
        drop(all);
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("released budget is handed on")
            .expect("task");
        assert!(got.is_some());
    }
}
