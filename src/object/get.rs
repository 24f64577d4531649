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
    heal: Arc<HealQueue>,
    guard: Option<LockGuard>,
    /// Verified pieces of the current block not yet produced, in order.
    pending: std::collections::VecDeque<Bytes>,
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
        self.pos = range.start;
        self.end = range.start + range.len.min(self.info.size - range.start);
        Ok(())
    }

    /// Bytes left to produce.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
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
        }
    }

    fn finish(&mut self) {
        self.guard = None;
        if self.degraded {
            self.degraded = false;
            self.heal.push(&self.bucket, &self.key);
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
        loop {
            let have = shards.iter().filter(|s| s.is_some()).count();
            if have >= data_n {
                break;
            }
            // Prefer data shards (no decoding), then parity.
            let pick: Vec<usize> = (0..total)
                .filter(|&s| !tried[s] && self.sources[s].is_some())
                .take(data_n - have)
                .collect();
            if pick.is_empty() {
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
                async move {
                    let src = src?;
                    let len = bitrot::HASH_LEN + chunk;
                    let verified = match &src.inline {
                        Some(b) => {
                            let start = offset as usize;
                            let framed = (start + len <= b.len()).then(|| b.slice(start..start + len))?;
                            bitrot::verify_framed(&framed, s, block).map(|p| framed.slice_ref(p))
                        }
                        None => src
                            .drive
                            .read_chunk(&file, offset, len, s, block)
                            .await
                            .map_err(|e| tracing::warn!(drive = src.drive.name(), error = %e, "shard read failed"))
                            .ok()?,
                    };
                    verified
                        .map_err(|e| tracing::warn!(drive = src.drive.name(), error = %e, "bitrot"))
                        .ok()
                }
            }))
            .await;
            for (&s, r) in pick.iter().zip(reads) {
                tried[s] = true;
                match r {
                    Some(payload) => shards[s] = Some(payload),
                    None => {
                        // Do not use this shard again for the rest of the stream.
                        self.sources[s] = None;
                        self.degraded = true;
                    }
                }
            }
        }
        if shards[..data_n].iter().all(Option::is_some) {
            // Healthy: the data shards' verified payloads are the block, in order (the last
            // ones cut to the block's length: shards are padded to equal chunks). No copy.
            let mut left = block_len;
            return Ok(shards
                .into_iter()
                .take(data_n)
                .flatten()
                .map(|p| {
                    let n = p.len().min(left);
                    left -= n;
                    p.slice(..n)
                })
                .filter(|p| !p.is_empty())
                .collect());
        }
        let mut shards: Vec<Option<Vec<u8>>> =
            shards.into_iter().map(|s| s.map(|b| b.to_vec())).collect();
        let mut out = Vec::with_capacity(block_len);
        self.erasure
            .decode_block(&mut shards, block_len, &mut out)
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        Ok(vec![Bytes::from(out)])
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
        });
    }
    Ok(agreed)
}

impl Store {
    /// Metadata of the latest version of `bucket/key`.
    pub async fn head_object(&self, bucket: &str, key: &str) -> ObjectResult<ObjectInfo> {
        self.head_version(bucket, key, VersionRef::Latest).await
    }

    /// Metadata of one version of `bucket/key`; a delete marker is
    /// [`ObjectError::DeleteMarker`].
    pub async fn head_version(
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
        let mut sources: Vec<Option<Source>> = (0..erasure.total_shards()).map(|_| None).collect();
        for (i, d) in set.drives.iter().enumerate() {
            let (Some(d), Some(dv)) = (d, agreed.version_at(i)) else {
                continue;
            };
            let idx = dv.erasure.index as usize;
            if (1..=sources.len()).contains(&idx) {
                sources[idx - 1] = Some(Source {
                    drive: d.clone(),
                    inline: dv.inline.clone().map(Bytes::from),
                });
            }
        }
        Ok(ObjectReader {
            info: info_of(bucket, key, v),
            bucket: bucket.to_string(),
            key: key.to_string(),
            data_dir: v.data_dir,
            erasure,
            parts: v.parts.clone(),
            sources,
            part: 0,
            part_start: 0,
            pos: start,
            end: start + len,
            degraded: agreed.degraded,
            heal: self.heal_queue.clone(),
            guard,
            pending: Default::default(),
        })
    }
}
