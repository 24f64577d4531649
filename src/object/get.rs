//! Reads: agree on the version, then stream the requested range block by block, reading
//! only the blocks it covers, verifying every chunk, and rebuilding from parity when a
//! shard is missing or rotten.

use std::sync::Arc;

use bytes::Bytes;
use cairn_erasure::{bitrot, Erasure};
use futures::Stream;

use super::put::info_of;
use super::quorum::{agree_fast, agree_ref, fan_out, VersionRef};
use super::{
    check_bucket, check_key, HealQueue, ObjectError, ObjectInfo, ObjectResult, Store, LOCK_TIMEOUT,
};
use crate::drive::{Drive, FileRef};
use crate::lock::LockGuard;
use crate::meta::{PartInfo, Version, VersionKind};

/// A resolved byte range: `start..start + len` of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub len: u64,
}

/// Where one shard of the object comes from.
struct Source {
    drive: Arc<dyn Drive>,
    /// Framed inline shard, when the object is inline.
    inline: Option<Bytes>,
}

impl Source {
    /// Read without a network hop.
    fn local(&self) -> bool {
        self.inline.is_some() || self.drive.is_local()
    }
}

/// Streams an object's bytes. Holds the key's read lock until the last byte is produced,
/// so a concurrent writer commits before or after the whole read, never during it.
pub struct ObjectReader {
    info: ObjectInfo,
    bucket: String,
    key: String,
    data_dir: Option<uuid::Uuid>,
    erasure: Erasure,
    parts: Vec<PartInfo>,
    /// Per shard number - 1: its source, `None` when missing or found bad.
    sources: Vec<Option<Source>>,
    part: usize,
    /// Object offset where `part` starts.
    part_start: u64,
    /// Next byte of the object to produce, and the end (exclusive).
    pos: u64,
    end: u64,
    degraded: bool,
    /// A shard read did not match its bitrot hash: the heal must check them all.
    rotten: bool,
    heal: Arc<HealQueue>,
    guard: Option<LockGuard>,
    /// Set while the reader holds no lock yet: how to take it.
    relock: Option<Arc<dyn crate::lock::Locker>>,
    /// The store's locker, to read again after the lock went with the last byte
    /// ([`ObjectReader::recheck_from`]).
    locker: Arc<dyn crate::lock::Locker>,
    /// The set, the version asked for and the version agreed on: to agree again (under the
    /// lock, or over every drive when the first ones asked run out of good shards).
    set: super::ErasureSet,
    which: VersionRef,
    version: Version,
    /// Per shard number - 1: found missing or bad (never used again by this reader).
    bad: Vec<bool>,
    /// Every drive of the set has been asked for the version's metadata.
    widened: bool,
    /// Verified pieces of the current block not yet produced, in order.
    pending: std::collections::VecDeque<Bytes>,
    /// Shards are checked against their bitrot hashes as they are read (unless the caller
    /// authenticates the bytes itself: [`ObjectReader::read_unchecked`]).
    check: bool,
}

impl ObjectReader {
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }

    /// Restrict the read to `range` (before the first chunk is read).
    pub fn narrow(&mut self, range: ByteRange) -> ObjectResult<()> {
        if range.start >= self.info.size || range.len == 0 {
            return Err(ObjectError::InvalidRange);
        }
        let end = range.start + range.len.min(self.info.size - range.start);
        // Bytes already read ([`Self::ready`]) cover `pos - queued..pos`: keep the part
        // of them in the range when it lies there, else read afresh.
        let queued = self.queued();
        let from = self.pos - queued;
        if queued > 0 && range.start >= from && end <= self.pos {
            let (mut skip, mut take) = (range.start - from, end - range.start);
            let mut kept = std::collections::VecDeque::new();
            for piece in self.pending.drain(..) {
                let n = piece.len() as u64;
                if skip >= n {
                    skip -= n;
                    continue;
                }
                let piece = piece.slice(skip as usize..(skip + take).min(n) as usize);
                skip = 0;
                take -= piece.len() as u64;
                kept.push_back(piece);
                if take == 0 {
                    break;
                }
            }
            self.pending = kept;
        } else {
            self.pending.clear();
            self.part = 0;
            self.part_start = 0;
        }
        self.pos = if self.pending.is_empty() {
            range.start
        } else {
            end
        };
        self.end = end;
        Ok(())
    }

    /// Read shards from now on without checking their bitrot hashes, for a caller that
    /// authenticates every byte it is given (the packages of an encrypted object, whose
    /// tags already catch a changed byte) and calls [`Self::recheck_from`] when that
    /// fails. Damage then goes unnoticed by this reader until that call: no shard is found
    /// bad, nothing is rebuilt around it and no heal is queued before it.
    pub fn read_unchecked(&mut self) {
        self.check = false;
    }

    /// After bytes given by a reader set to [`Self::read_unchecked`] failed their
    /// authentication: produce the object again from byte `at` (at or past the first byte
    /// that failed, and within the range read), checking every shard from now on, so a
    /// rotten one is found, rebuilt around and healed. False, and nothing changed, when the
    /// reader was checking already (the bytes are what the drives hold) or `at` lies
    /// outside what is left to read.
    pub fn recheck_from(&mut self, at: u64) -> bool {
        if self.check || at >= self.end {
            return false;
        }
        self.check = true;
        self.pending.clear();
        (self.part, self.part_start, self.pos) = (0, 0, at);
        // The lock went with the last byte produced (or was never needed): what is read
        // again is read as by a reader opened without it — kept when every shard is there
        // and sound, else read once more under the lock, the version checked first.
        if self.guard.is_none() && self.relock.is_none() {
            self.relock = Some(self.locker.clone());
        }
        true
    }

    /// Bytes left to produce.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos + self.queued()
    }

    /// Bytes read and verified but not yet produced.
    fn queued(&self) -> u64 {
        self.pending.iter().map(|p| p.len() as u64).sum()
    }

    /// The next verified piece of the object (at most one erasure block), or `None` at the end.
    pub async fn next_chunk(&mut self) -> ObjectResult<Option<Bytes>> {
        loop {
            if let Some(piece) = self.pending.pop_front() {
                if self.pending.is_empty() && self.pos >= self.end {
                    self.finish();
                }
                return Ok(Some(piece));
            }
            if self.pos >= self.end {
                self.finish();
                return Ok(None);
            }
            self.read_next_block().await?;
        }
    }

    /// True when the bytes left to produce lie in one erasure block of one part (or there
    /// are none): one [`Self::read_next_block`] reads them all.
    fn within_one_block(&self) -> bool {
        if self.pos >= self.end {
            return true;
        }
        let bs = self.erasure.block_size() as u64;
        let (mut start, mut at) = (self.part_start, self.part);
        while at < self.parts.len() && self.pos >= start + self.parts[at].size {
            start += self.parts[at].size;
            at += 1;
        }
        let Some(part) = self.parts.get(at) else {
            return false;
        };
        let last = self.end - 1;
        last < start + part.size && (self.pos - start) / bs == (last - start) / bs
    }

    /// Read the first block now, before the answer's headers are sent, so that a read that
    /// must fail fails while it can still be answered with an error.
    pub async fn ready(&mut self) -> ObjectResult<()> {
        if self.pending.is_empty() && self.pos < self.end {
            self.read_next_block().await?;
        }
        Ok(())
    }

    /// For a reader opened without the key's lock, read its one block now: a version
    /// replaced since it was agreed on is refused ([`ObjectError::Replaced`]) before the
    /// caller starts anything it cannot take back (a copy's write). Nothing for others.
    pub async fn confirm(&mut self) -> ObjectResult<()> {
        if self.relock.is_some() {
            self.ready().await?;
        }
        Ok(())
    }

    /// Read, verify and queue the block holding `pos`.
    ///
    /// A reader opened without the key's lock ([`Store::get_version`] does so when the
    /// metadata agreement was clean and the bytes to read lie in one block, so this is its
    /// only read) keeps what it read only when every shard it asked for was there and
    /// verified (or read unchecked, [`Self::read_unchecked`]): the version's data directory
    /// is never rewritten, so those are the version's bytes, and no lock was needed. Anything else — a shard gone because a
    /// writer replaced the version meanwhile, a rotten or missing one — takes the lock,
    /// checks the version is still the agreed one, and reads again under the lock (which
    /// also queues a heal when the read finds damage).
    async fn read_next_block(&mut self) -> ObjectResult<()> {
        let read = self.read_next_block_once().await;
        match &read {
            Ok(()) => {}
            // The shards found missing were the replaced version's: nothing is damaged.
            Err(ObjectError::Replaced) => self.guard = None,
            // The stream ends here: the lock goes, and damage met on the way is queued for
            // healing all the same.
            Err(_) => self.finish(),
        }
        read
    }

    async fn read_next_block_once(&mut self) -> ObjectResult<()> {
        if self.relock.is_none() {
            return self.read_block_at_pos().await;
        }
        let at = (self.part, self.part_start, self.pos);
        if self.read_block_at_pos().await.is_ok() && !self.degraded {
            self.relock = None;
            return Ok(());
        }
        self.pending.clear();
        (self.part, self.part_start, self.pos) = at;
        self.relock().await?;
        self.read_block_at_pos().await
    }

    /// Take the key's read lock and agree on the version again: the reader's sources come
    /// from that agreement; [`ObjectError::Replaced`] when the version is no longer the
    /// one agreed on.
    async fn relock(&mut self) -> ObjectResult<()> {
        let Some(locker) = self.relock.take() else {
            return Ok(());
        };
        let guard = locker
            .lock(
                &format!("{}/{}", self.bucket, self.key),
                false,
                LOCK_TIMEOUT,
            )
            .await?;
        let agreed = match agree_any(&self.set, &self.bucket, &self.key, self.which).await {
            Ok(a) if a.latest.signature() == self.version.signature() => a,
            Ok(_) | Err(ObjectError::NoSuchKey | ObjectError::NoSuchVersion) => {
                return Err(ObjectError::Replaced)
            }
            Err(e) => return Err(e),
        };
        self.sources = sources_of(&self.set, &agreed, self.erasure.total_shards());
        self.bad.fill(false);
        self.widened = false;
        self.degraded = agreed.degraded;
        self.guard = Some(guard);
        Ok(())
    }

    /// Ask every drive of the set for the version's metadata and take as sources the shards
    /// of those that hold it and were not asked before (a read asks a first wave of drives
    /// only): true when that adds any.
    async fn widen(&mut self) -> bool {
        self.widened = true;
        let (bucket, key) = (self.bucket.as_str(), self.key.as_str());
        let agreed = match self.which {
            VersionRef::Latest => super::quorum::agree_everywhere(&self.set, bucket, key).await,
            // A read by id asks every drive already.
            VersionRef::Id(_) => agree_any(&self.set, bucket, key, self.which).await,
        };
        let Some(agreed) = agreed
            .ok()
            .filter(|a| a.latest.signature() == self.version.signature())
        else {
            return false;
        };
        let mut added = false;
        for (s, found) in sources_of(&self.set, &agreed, self.erasure.total_shards())
            .into_iter()
            .enumerate()
        {
            if let Some(found) = found.filter(|_| !self.bad[s] && self.sources[s].is_none()) {
                self.sources[s] = Some(found);
                added = true;
            }
        }
        added
    }

    /// Read, verify and queue the block holding `pos`: the pieces of it in the range.
    async fn read_block_at_pos(&mut self) -> ObjectResult<()> {
        // Find the part holding `pos`.
        while self.part < self.parts.len()
            && self.pos >= self.part_start + self.parts[self.part].size
        {
            self.part_start += self.parts[self.part].size;
            self.part += 1;
        }
        let Some(part) = self.parts.get(self.part).cloned() else {
            return Err(ObjectError::Internal("range beyond the parts".into()));
        };
        let in_part = self.pos - self.part_start;
        let bs = self.erasure.block_size() as u64;
        let block = in_part / bs;
        let block_len = self.erasure.block_len(part.size, block);
        let pieces = self.read_block(&part, block, block_len).await?;
        let skip = (in_part - block * bs) as usize;
        let take = ((block_len - skip) as u64).min(self.end - self.pos) as usize;
        self.pos += take as u64;
        // Keep the pieces' bytes that fall in `skip..skip + take` of the block.
        let mut at = 0;
        for piece in pieces {
            let (lo, hi) = (at, at + piece.len());
            at = hi;
            let (from, to) = (skip.max(lo), (skip + take).min(hi));
            if from < to {
                self.pending.push_back(piece.slice(from - lo..to - lo));
            }
        }
        Ok(())
    }

    fn finish(&mut self) {
        self.guard = None;
        if self.degraded {
            self.degraded = false;
            if self.rotten {
                self.heal.push_deep(&self.bucket, &self.key);
            } else {
                self.heal.push(&self.bucket, &self.key);
            }
        }
    }

    async fn read_block(
        &mut self,
        part: &PartInfo,
        block: u64,
        block_len: usize,
    ) -> ObjectResult<Vec<Bytes>> {
        let total = self.erasure.total_shards();
        let data_n = self.erasure.data_shards();
        let chunk = self.erasure.chunk_len(block_len);
        let offset = self.erasure.chunk_offset(block);
        let mut shards: Vec<Option<Bytes>> = vec![None; total];
        let mut tried = vec![false; total];
        let check = self.check;
        loop {
            let have = shards.iter().filter(|s| s.is_some()).count();
            if have >= data_n {
                break;
            }
            // Local shards first (no network hop), data before parity (no decoding).
            let pick: Vec<usize> = (0..total)
                .filter(|&s| !tried[s] && self.sources[s].is_some())
                .map(|s| {
                    (
                        self.sources[s].as_ref().is_some_and(|x| !x.local()),
                        s >= data_n,
                        s,
                    )
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|(_, _, s)| s)
                .take(data_n - have)
                .collect();
            if pick.is_empty() {
                if !self.widened && self.widen().await {
                    continue;
                }
                return Err(ObjectError::ReadQuorum {
                    ok: have,
                    need: data_n,
                });
            }
            let reads = futures::future::join_all(pick.iter().map(|&s| {
                let src = self.sources[s].as_ref();
                let file = FileRef::Part {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    data_dir: self.data_dir.unwrap_or_default(),
                    part: part.number,
                };
                // The payload, or why not: `Err(true)` when the bytes were read but are not
                // the shard's (their bitrot hash does not match), `Err(false)` when none were.
                async move {
                    let Some(src) = src else { return Err(false) };
                    let len = bitrot::HASH_LEN + chunk;
                    let framed = match &src.inline {
                        // Checked already: the metadata's checksum covers its inline shard,
                        // and the version was decoded from checked metadata.
                        Some(b) => {
                            let start = offset as usize;
                            return (start + len <= b.len())
                                .then(|| b.slice(start + bitrot::HASH_LEN..start + len))
                                .ok_or(true);
                        }
                        // The payload as read: its hash is skipped, not checked.
                        None if !check => src.drive.read_chunk_unchecked(&file, offset, len).await.map(|framed| {
                            // A chunk of another length is no shard of this block.
                            (framed.len() == len).then(|| framed.slice(bitrot::HASH_LEN..)).ok_or(cairn_erasure::Error::Truncated { shard: s, chunk: block })
                        }),
                        None => src.drive.read_chunk(&file, offset, len, s, block).await,
                    };
                    match framed {
                        Err(e) => {
                            tracing::warn!(drive = src.drive.name(), error = %e, "shard read failed");
                            Err(false)
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(drive = src.drive.name(), error = %e, "bitrot");
                            Err(true)
                        }
                        // A chunk of another length is no shard of this block.
                        Ok(Ok(p)) if p.len() != chunk => Err(true),
                        Ok(Ok(p)) => Ok(p),
                    }
                }
            }))
            .await;
            for (&s, r) in pick.iter().zip(reads) {
                tried[s] = true;
                match r {
                    Ok(payload) => shards[s] = Some(payload),
                    Err(rotten) => {
                        // Do not use this shard again for the rest of the stream.
                        self.sources[s] = None;
                        self.bad[s] = true;
                        self.degraded = true;
                        self.rotten |= rotten;
                    }
                }
            }
        }
        // The data shards' verified payloads are the block, in order (the last ones cut to
        // the block's length: shards are padded to equal chunks): those read are used as
        // they are, those missing rebuilt from the others without copying them.
        let present: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
        let mut rebuilt = self
            .erasure
            .rebuild_data(&present, chunk)
            .map_err(|e| ObjectError::Internal(e.to_string()))?
            .into_iter()
            .map(|(i, b)| (i, Bytes::from(b)))
            .collect::<std::collections::HashMap<_, _>>();
        let mut left = block_len;
        let mut pieces = Vec::with_capacity(data_n);
        for (i, s) in shards.into_iter().take(data_n).enumerate() {
            let Some(p) = s.or_else(|| rebuilt.remove(&i)) else {
                return Err(ObjectError::Internal(format!("shard {i} not rebuilt")));
            };
            let n = p.len().min(left);
            left -= n;
            if n > 0 {
                pieces.push(p.slice(..n));
            }
        }
        Ok(pieces)
    }

    /// The reader as a stream of verified chunks.
    pub fn into_stream(self) -> impl Stream<Item = ObjectResult<Bytes>> + Send {
        futures::stream::try_unfold(self, |mut r| async move {
            Ok(r.next_chunk().await?.map(|chunk| (chunk, r)))
        })
    }
}

/// The version `which` of `bucket/key` a read quorum of `set` agrees on (a delete marker
/// included).
pub(crate) async fn agree_any(
    set: &super::ErasureSet,
    bucket: &str,
    key: &str,
    which: VersionRef,
) -> ObjectResult<super::quorum::Agreed> {
    match which {
        VersionRef::Latest => agree_fast(set, bucket, key).await,
        VersionRef::Id(_) => {
            let results = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
            agree_ref(set, results, which)
        }
    }
}

/// Where each shard of the agreed version comes from (by shard number - 1).
fn sources_of(
    set: &super::ErasureSet,
    agreed: &super::quorum::Agreed,
    total: usize,
) -> Vec<Option<Source>> {
    let mut sources: Vec<Option<Source>> = (0..total).map(|_| None).collect();
    for (i, d) in set.drives.iter().enumerate() {
        let (Some(d), Some(dv)) = (d, agreed.version_at(i)) else {
            continue;
        };
        let idx = dv.erasure.index as usize;
        if (1..=total).contains(&idx) {
            sources[idx - 1] = Some(Source {
                drive: d.clone(),
                inline: dv.inline.clone().map(Bytes::from),
            });
        }
    }
    sources
}

/// A delete marker as the agreed version refused as S3 refuses it (the latest: 404 with
/// the marker's headers; by id: 405).
fn refuse_marker(
    agreed: super::quorum::Agreed,
    which: VersionRef,
) -> ObjectResult<super::quorum::Agreed> {
    if agreed.latest.kind == VersionKind::DeleteMarker {
        return Err(ObjectError::DeleteMarker {
            version_id: agreed.latest.version_id,
            by_id: which != VersionRef::Latest,
            mod_time: agreed.latest.mod_time,
        });
    }
    Ok(agreed)
}

/// Whether an agreement reached without the key's lock settles the version for good:
/// nothing disagreed or failed, and a write quorum holds it (a write is rolled back only
/// below its write quorum, so no later read can go back to an older version).
fn settled(agreed: &super::quorum::Agreed) -> bool {
    let v = &agreed.latest;
    let held_by = agreed.metas.iter().filter(|m| m.is_some()).count();
    !agreed.degraded
        && held_by
            >= crate::placement::write_quorum(v.erasure.data as usize, v.erasure.parity as usize)
}

impl Store {
    /// Metadata of the latest version of `bucket/key`.
    pub async fn head_object(&self, bucket: &str, key: &str) -> ObjectResult<ObjectInfo> {
        self.head_version(bucket, key, VersionRef::Latest).await
    }

    /// Metadata of one version of `bucket/key`; a delete marker is
    /// [`ObjectError::DeleteMarker`]. Read without the key's lock when the agreement settles
    /// the version for good (see [`Self::get_version`]), else asked again under it, so a
    /// write caught half-way is waited for rather than answered as absent or half-written.
    pub async fn head_version(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
    ) -> ObjectResult<ObjectInfo> {
        check_bucket(bucket)?;
        check_key(key)?;
        if let Ok((_, agreed)) = self.read_home(bucket, key, which).await {
            if settled(&agreed) {
                let agreed = refuse_marker(agreed, which)?;
                return Ok(info_of(bucket, key, &agreed.latest));
            }
        }
        let _guard = self
            .locker
            .lock(&format!("{bucket}/{key}"), false, LOCK_TIMEOUT)
            .await?;
        self.head_held(bucket, key, which).await
    }

    /// [`Self::head_version`] for a caller that holds the key's lock.
    pub(crate) async fn head_held(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
    ) -> ObjectResult<ObjectInfo> {
        check_bucket(bucket)?;
        check_key(key)?;
        let (_, agreed) = self.read_home(bucket, key, which).await?;
        let agreed = refuse_marker(agreed, which)?;
        Ok(info_of(bucket, key, &agreed.latest))
    }

    /// Open the latest version of `bucket/key` for reading `range` (the whole object when
    /// `None`).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> ObjectResult<ObjectReader> {
        self.get_version(bucket, key, VersionRef::Latest, range)
            .await
    }

    /// Open one version of `bucket/key` for reading `range`.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        range: Option<ByteRange>,
    ) -> ObjectResult<ObjectReader> {
        check_bucket(bucket)?;
        check_key(key)?;
        // Agree on the version first, without the key's lock (as a HEAD does). Only an
        // agreement that settles the version for good is used without the lock: nothing
        // disagreed or failed, and a write quorum holds it — a write is rolled back only
        // below its write quorum, so no later read can go back to an older version. Any
        // other outcome (an absent key included: a write caught half-way leaves neither
        // version a quorum) is asked again under the lock.
        let (set, agreed) = match self.read_home(bucket, key, which).await {
            Ok(found) => found,
            Err(_) => return self.get_locked(bucket, key, which, range).await,
        };
        let clean = settled(&agreed);
        if !clean && agreed.latest.kind == crate::meta::VersionKind::DeleteMarker {
            return self.get_locked(bucket, key, which, range).await;
        }
        let agreed = refuse_marker(agreed, which)?;
        let mut reader = self.reader_on(set, bucket, key, &agreed, range, None)?;
        reader.relock = Some(self.locker.clone());
        if clean && reader.within_one_block() {
            // Optimistic: see `ObjectReader::read_next_block`.
            return Ok(reader);
        }
        match reader.relock().await {
            Ok(()) => Ok(reader),
            Err(ObjectError::Replaced) => self.get_locked(bucket, key, which, range).await,
            Err(e) => Err(e),
        }
    }

    /// [`Self::get_version`] under the key's read lock from the start.
    async fn get_locked(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        range: Option<ByteRange>,
    ) -> ObjectResult<ObjectReader> {
        let guard = self
            .locker
            .lock(&format!("{bucket}/{key}"), false, LOCK_TIMEOUT)
            .await?;
        let (set, agreed) = self.read_home(bucket, key, which).await?;
        let agreed = refuse_marker(agreed, which)?;
        self.reader_on(set, bucket, key, &agreed, range, Some(guard))
    }

    /// A reader of the version `agreed` on `set` (its lock, if any, held by `guard`).
    pub(crate) fn reader_on(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        agreed: &super::quorum::Agreed,
        range: Option<ByteRange>,
        guard: Option<LockGuard>,
    ) -> ObjectResult<ObjectReader> {
        let v: &Version = &agreed.latest;
        let (start, len) = match range {
            None => (0, v.size),
            Some(r) if r.start < v.size && r.len > 0 => (r.start, r.len.min(v.size - r.start)),
            Some(_) => return Err(ObjectError::InvalidRange),
        };
        let erasure = Erasure::new(
            v.erasure.data as usize,
            v.erasure.parity as usize,
            v.erasure.block_size as usize,
        )
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let total = erasure.total_shards();
        Ok(ObjectReader {
            info: info_of(bucket, key, v),
            bucket: bucket.to_string(),
            key: key.to_string(),
            data_dir: v.data_dir,
            sources: sources_of(set, agreed, erasure.total_shards()),
            erasure,
            parts: v.parts.clone(),
            part: 0,
            part_start: 0,
            pos: start,
            end: start + len,
            degraded: agreed.degraded,
            rotten: false,
            heal: self.heal_queue.clone(),
            guard,
            relock: None,
            locker: self.locker.clone(),
            set: set.clone(),
            which: agreed.which,
            version: v.clone(),
            bad: vec![false; total],
            widened: false,
            pending: Default::default(),
            check: true,
        })
    }
}
