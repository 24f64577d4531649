//! Healing one object: bring every drive of its set back to the version a read quorum agrees
//! on — metadata rewritten where it is missing or stale, shards rebuilt from the others where
//! they are missing, truncated or (with `deep`) rotten — and remove leftovers that no quorum
//! backs. Runs under the key's write lock; the heal workers call it.

use bytes::Bytes;
use cairn_erasure::{bitrot, Erasure};
use uuid::Uuid;

use super::put::{cleanup, ShardWriter};
use super::quorum::{agree_on, agreed_versions, agreement_on, copies, fan_out};
use super::{check_bucket, check_key, ObjectError, ObjectResult, Store, LOCK_TIMEOUT};
use crate::drive::{DriveError, FileRef, StagedData};
use crate::meta::{ObjectMeta, Version};

/// How to heal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealOptions {
    /// Verify every chunk of every shard (the bitrot scan), not just sizes and metadata.
    pub deep: bool,
    /// Only report what would be healed.
    pub dry_run: bool,
}

impl HealOptions {
    pub const DEEP: HealOptions = HealOptions {
        deep: true,
        dry_run: false,
    };
}

/// What healing one object found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealReport {
    /// Drives whose copy was missing, stale or damaged.
    pub bad_drives: usize,
    /// Drives whose copy was rewritten.
    pub healed_drives: usize,
    /// Drives that could not be reached (still to heal).
    pub offline_drives: usize,
    /// Shard bytes written.
    pub bytes_written: u64,
    /// Drives holding a copy no quorum backs, cleaned up.
    pub dangling_removed: usize,
    /// Data directories no version references (left by a crash mid-commit), removed.
    pub orphans_removed: usize,
    /// Versions a quorum of drives agrees the object has (delete markers included), and of
    /// those the delete markers (the scanner's usage counts).
    pub versions: usize,
    pub delete_markers: usize,
}

impl HealReport {
    /// True when every drive now holds a good copy.
    pub fn complete(&self) -> bool {
        self.offline_drives == 0
    }
}

/// Rebuilt chunks queued per target drive while it writes the one before.
const WRITE_QUEUE: usize = 2;

/// Bytes of one source shard read at once when rebuilding (a span of blocks).
const SPAN_BYTES: usize = 4 << 20;

/// Is this drive's copy of `v` intact? Checks every part file's size, and with `deep` every
/// chunk's bitrot hash (inline shards are always verified: they are at hand).
async fn copy_is_intact(
    drive: &dyn crate::drive::Drive,
    bucket: &str,
    key: &str,
    v: &Version,
    erasure: &Erasure,
    deep: bool,
) -> bool {
    if let Some(inline) = &v.inline {
        return inline.len() as u64 == erasure.shard_file_size(v.size)
            && verify_all(inline, erasure, v.size).is_ok();
    }
    let Some(data_dir) = v.data_dir else {
        return v.size == 0;
    };
    for part in &v.parts {
        let file = FileRef::Part {
            bucket: bucket.to_string(),
            key: key.to_string(),
            data_dir,
            part: part.number,
        };
        let want = erasure.shard_file_size(part.size);
        match drive.file_size(&file).await {
            Ok(size) if size == want => {}
            _ => return false,
        }
        if deep {
            for block in 0..erasure.block_count(part.size) {
                let len = bitrot::HASH_LEN + erasure.chunk_len(erasure.block_len(part.size, block));
                match drive
                    .read_file(&file, erasure.chunk_offset(block), len)
                    .await
                {
                    Ok(framed) if bitrot::verify_framed(&framed, 0, block).is_ok() => {}
                    _ => return false,
                }
            }
        }
    }
    true
}

fn verify_all(framed: &[u8], erasure: &Erasure, size: u64) -> Result<(), cairn_erasure::Error> {
    for block in 0..erasure.block_count(size) {
        let start = erasure.chunk_offset(block) as usize;
        let len = bitrot::HASH_LEN + erasure.chunk_len(erasure.block_len(size, block));
        let chunk = framed
            .get(start..start + len)
            .ok_or(cairn_erasure::Error::Truncated {
                shard: 0,
                chunk: block,
            })?;
        bitrot::verify_framed(chunk, 0, block)?;
    }
    Ok(())
}

impl Store {
    /// Heal `bucket/key` on its set. `deep` verifies every shard chunk of every drive.
    pub async fn heal_object(
        &self,
        bucket: &str,
        key: &str,
        opts: HealOptions,
    ) -> ObjectResult<HealReport> {
        check_bucket(bucket)?;
        check_key(key)?;
        let resource = format!("{bucket}/{key}");
        // Look first under a read lock, so checking a healthy object (the scanner's usual
        // case) never blocks readers; take the write lock only to change something.
        {
            let _read = self.locker.lock(&resource, false, LOCK_TIMEOUT).await?;
            let look = HealOptions {
                dry_run: true,
                ..opts
            };
            match self.heal_locked(bucket, key, look).await {
                Ok(r)
                    if opts.dry_run
                        || (r.bad_drives == 0
                            && r.orphans_removed == 0
                            && r.dangling_removed == 0) =>
                {
                    return Ok(r)
                }
                Ok(_) | Err(ObjectError::NoSuchKey) => {}
                Err(e) => return Err(e),
            }
        }
        let _write = self.locker.lock(&resource, true, LOCK_TIMEOUT).await?;
        self.heal_locked(bucket, key, opts).await
    }

    /// `heal_object` with the key's lock held (a write lock unless `opts.dry_run`): every
    /// version a read quorum backs is brought to every drive, then copies no quorum backs
    /// are removed once old enough.
    async fn heal_locked(
        &self,
        bucket: &str,
        key: &str,
        opts: HealOptions,
    ) -> ObjectResult<HealReport> {
        if self.pools.len() == 1 {
            return self
                .heal_on(self.set_in_pool(0, key), bucket, key, opts)
                .await;
        }
        // The pool holding the key; with none, each pool's debris.
        let held = self.holders(bucket, key, None).await?;
        if let Some((p, _)) = held.iter().max_by_key(|(p, t)| (*t, std::cmp::Reverse(*p))) {
            return self
                .heal_on(self.set_in_pool(*p, key), bucket, key, opts)
                .await;
        }
        let mut last = Err(ObjectError::NoSuchKey);
        for p in 0..self.pools.len() {
            last = self
                .heal_on(self.set_in_pool(p, key), bucket, key, opts)
                .await;
        }
        last
    }

    /// Heal `bucket/key` on `set`.
    async fn heal_on(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        opts: HealOptions,
    ) -> ObjectResult<HealReport> {
        let mut report = HealReport::default();
        let results = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
        let versions = agreed_versions(&results);
        report.versions = versions.len();
        report.delete_markers = versions
            .iter()
            .filter(|v| v.kind == crate::meta::VersionKind::DeleteMarker)
            .count();
        if versions.is_empty() {
            // Let agreement say why (no bucket, no quorum, nothing there); copies with no
            // quorum behind them are debris to remove.
            match agree_on(set, copies(&results)) {
                Err(ObjectError::NoSuchKey) if !opts.dry_run => {
                    report.dangling_removed = self
                        .remove_dangling(set, bucket, key, &[], Some(results), false)
                        .await;
                    return Ok(report);
                }
                Err(e) => return Err(e),
                Ok(_) => return Err(ObjectError::Internal("agreement without versions".into())),
            }
        }
        // Each drive's metadata decoded once, shared by the agreement on every version.
        let decoded: Vec<Option<std::sync::Arc<ObjectMeta>>> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .ok()
                    .and_then(|b| ObjectMeta::decode(b).ok())
                    .map(std::sync::Arc::new)
            })
            .collect();
        let mut bad = vec![false; set.size()];
        let mut failed = vec![false; set.size()];
        let mut offline = vec![false; set.size()];
        for v in &versions {
            let agreed = agreement_on(&decoded, v);
            let r = self.heal_version(set, bucket, key, &agreed, opts).await?;
            for i in 0..set.size() {
                bad[i] |= r.targets.contains(&i);
                failed[i] |= r.targets.contains(&i) && !r.healed.contains(&i);
                offline[i] |= r.offline.contains(&i);
            }
            report.bytes_written += r.bytes;
        }
        report.bad_drives = bad.iter().filter(|b| **b).count();
        report.offline_drives = (0..set.size()).filter(|&i| offline[i] || failed[i]).count();
        report.healed_drives = (0..set.size()).filter(|&i| bad[i] && !failed[i]).count();
        // Unless something was rewritten, the metadata read above is still what the drives
        // hold (the key is locked).
        let current = (report.healed_drives == 0).then_some(results);
        report.dangling_removed = self
            .remove_dangling(set, bucket, key, &versions, current, opts.dry_run)
            .await;
        report.orphans_removed = self.sweep_orphans(set, bucket, key, opts.dry_run).await;
        Ok(report)
    }

    /// Bring one agreed version to every drive of the set that lacks an intact copy.
    async fn heal_version(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        agreed: &super::quorum::Agreed,
        opts: HealOptions,
    ) -> ObjectResult<VersionHeal> {
        let v = &agreed.latest;
        let erasure = Erasure::new(
            v.erasure.data as usize,
            v.erasure.parity as usize,
            v.erasure.block_size as usize,
        )
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let n = set.size();
        let mut out = VersionHeal::default();
        // Which drive positions need a new copy?
        let mut good = vec![false; n];
        for (i, d) in set.drives.iter().enumerate() {
            let Some(d) = d else {
                out.offline.push(i);
                continue;
            };
            match agreed.version_at(i) {
                Some(dv)
                    if copy_is_intact(d.as_ref(), bucket, key, dv, &erasure, opts.deep).await =>
                {
                    good[i] = true
                }
                Some(_) => out.targets.push(i),
                None => match d.read_meta(bucket, key).await {
                    Ok(_) | Err(DriveError::NotFound | DriveError::BucketNotFound) => {
                        out.targets.push(i)
                    }
                    Err(_) => out.offline.push(i),
                },
            }
        }
        if opts.dry_run || out.targets.is_empty() {
            return Ok(out);
        }
        if good.iter().filter(|g| **g).count() < erasure.data_shards() {
            return Err(ObjectError::ReadQuorum {
                ok: good.iter().filter(|g| **g).count(),
                need: erasure.data_shards(),
            });
        }
        // Drive position → shard index (0-based) it must hold.
        let index_of = |i: usize| v.erasure.distribution[i] as usize - 1;
        let txn = format!("tmp/{}", Uuid::new_v4());
        let result = self
            .rebuild(
                set,
                bucket,
                key,
                v,
                agreed,
                &erasure,
                &good,
                &out.targets,
                &txn,
                &index_of,
            )
            .await;
        cleanup(&set.drives, &txn).await;
        let (healed, bytes) = result?;
        out.healed = healed;
        out.bytes = bytes;
        Ok(out)
    }

    /// Remove (or with `count_only`, count) data directories that no version on their drive
    /// references: what a crash between moving data in and replacing the metadata leaves
    /// behind. The caller holds the key's lock, so no commit is in flight.
    async fn sweep_orphans(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        count_only: bool,
    ) -> usize {
        let keys = [key.to_string()];
        let swept = fan_out(&set.drives, |_, d| {
            let keys = &keys;
            async move {
                let Some(entry) = d.read_entries(bucket, keys).await?.into_iter().next() else {
                    return Ok(0);
                };
                let referenced: Vec<Uuid> = match &entry.meta {
                    Ok(b) => match ObjectMeta::decode(b) {
                        Ok(m) => m.versions.iter().filter_map(|v| v.data_dir).collect(),
                        // Unreadable metadata: leave the data for heal to sort out.
                        Err(_) => return Ok(0),
                    },
                    Err(DriveError::NotFound) => Vec::new(),
                    Err(_) => return Ok(0),
                };
                let mut removed = 0;
                for dir in entry.data_dirs.iter().filter(|d| !referenced.contains(d)) {
                    if !count_only {
                        d.delete_data_dir(bucket, key, *dir).await?;
                    }
                    removed += 1;
                }
                Ok(removed)
            }
        })
        .await;
        swept.into_iter().flatten().sum()
    }

    /// Rebuild the shards of `targets` from the `good` drives and commit them.
    #[allow(clippy::too_many_arguments)]
    async fn rebuild(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        v: &Version,
        agreed: &super::quorum::Agreed,
        erasure: &Erasure,
        good: &[bool],
        targets: &[usize],
        txn: &str,
        index_of: &(dyn Fn(usize) -> usize + Sync),
    ) -> ObjectResult<(Vec<usize>, u64)> {
        let total = erasure.total_shards();
        // Shard index → drive position holding a good copy.
        let mut source = vec![None; total];
        for (i, g) in good.iter().enumerate() {
            if *g {
                source[index_of(i)] = Some(i);
            }
        }
        let mut bytes = 0u64;
        let mut inline_out: Vec<Vec<u8>> = vec![Vec::new(); set.size()];
        let mut alive: Vec<bool> = vec![true; set.size()];
        let parts: Vec<(u32, u64)> = if v.inline.is_some() || v.data_dir.is_none() {
            vec![(1, v.size)]
        } else {
            v.parts.iter().map(|p| (p.number, p.size)).collect()
        };
        for (number, size) in parts {
            // One writer task per target, fed through a short queue: the next block is
            // verified and rebuilt while the drive writes this one.
            let mut writers: Vec<Option<ShardWriter>> = (0..set.size()).map(|_| None).collect();
            if v.inline.is_none() && v.data_dir.is_some() {
                for &t in targets {
                    let Some(d) = &set.drives[t] else { continue };
                    let path = format!("{txn}/part.{number}");
                    match d.create_sys_file(&path).await {
                        Ok(w) => writers[t] = Some(ShardWriter::spawn(w, WRITE_QUEUE)),
                        Err(_) => alive[t] = false,
                    }
                }
            }
            // Source shards are read a span of blocks at a time (one large read per source
            // instead of one per block) and the next span is fetched while this one is
            // rebuilt and written.
            let blocks = erasure.block_count(size);
            let per_span = (SPAN_BYTES / (erasure.shard_size() + bitrot::HASH_LEN)).max(1) as u64;
            let spans_total = blocks.div_ceil(per_span);
            let file = FileRef::Part {
                bucket: bucket.to_string(),
                key: key.to_string(),
                data_dir: v.data_dir.unwrap_or_default(),
                part: number,
            };
            let preferred: Vec<(usize, usize)> = source
                .iter()
                .enumerate()
                .filter_map(|(s, src)| src.map(|i| (s, i)))
                .take(erasure.data_shards())
                .collect();
            let span_range = |g: u64| {
                let (b0, b1) = (g * per_span, ((g + 1) * per_span).min(blocks));
                let start = erasure.chunk_offset(b0);
                let end = erasure.chunk_offset(b1 - 1)
                    + (bitrot::HASH_LEN + erasure.chunk_len(erasure.block_len(size, b1 - 1)))
                        as u64;
                (b0, b1, start, (end - start) as usize)
            };
            let fetch = |g: u64| {
                let preferred = &preferred;
                let file = &file;
                async move {
                    if v.inline.is_some() || g >= spans_total {
                        return Vec::new();
                    }
                    let (_, _, start, len) = span_range(g);
                    futures::future::join_all(preferred.iter().map(|&(s, i)| async move {
                        match &set.drives[i] {
                            Some(d) => d.read_file(file, start, len).await.ok().map(|b| (s, b)),
                            None => None,
                        }
                    }))
                    .await
                    .into_iter()
                    .flatten()
                    .collect::<Vec<(usize, Bytes)>>()
                }
            };
            let mut spans = fetch(0).await;
            for g in 0..spans_total {
                let (b0, b1, span_start, _) = span_range(g);
                let current = std::mem::take(&mut spans);
                let work = async {
                    for block in b0..b1 {
                        let chunk = erasure.chunk_len(erasure.block_len(size, block));
                        let offset = erasure.chunk_offset(block);
                        let mut shards: Vec<Option<Vec<u8>>> = vec![None; total];
                        let mut have = 0;
                        // Blocks of the prefetched span first.
                        for (s, span) in &current {
                            let at = (offset - span_start) as usize;
                            let framed = span.get(at..at + bitrot::HASH_LEN + chunk);
                            if let Some(p) =
                                framed.and_then(|f| bitrot::verify_framed(f, *s, block).ok())
                            {
                                shards[*s] = Some(p.to_vec());
                                have += 1;
                            }
                        }
                        let from_span: Vec<bool> = shards.iter().map(Option::is_some).collect();
                        let mut candidates = source
                            .iter()
                            .enumerate()
                            .filter_map(|(s, src)| src.map(|i| (s, i)))
                            .filter(|(s, _)| !from_span[*s]);
                        // Read as many other sources as still needed, in parallel.
                        while have < erasure.data_shards() {
                            let batch: Vec<(usize, usize)> = candidates
                                .by_ref()
                                .take(erasure.data_shards() - have)
                                .collect();
                            if batch.is_empty() {
                                break;
                            }
                            let reads = futures::future::join_all(batch.iter().map(|&(s, i)| {
                                let inline = agreed.version_at(i).and_then(|dv| dv.inline.clone());
                                let drive = set.drives[i].clone();
                                let file = &file;
                                async move {
                                    let framed: Option<Bytes> = match (inline, drive) {
                                        (Some(inline), _) => {
                                            let start = offset as usize;
                                            inline
                                                .get(start..start + bitrot::HASH_LEN + chunk)
                                                .map(Bytes::copy_from_slice)
                                        }
                                        (None, Some(d)) => d
                                            .read_file(file, offset, bitrot::HASH_LEN + chunk)
                                            .await
                                            .ok(),
                                        (None, None) => None,
                                    };
                                    framed
                                        .as_deref()
                                        .and_then(|f| bitrot::verify_framed(f, s, block).ok())
                                        .map(|p| (s, p.to_vec()))
                                }
                            }))
                            .await;
                            for (s, payload) in reads.into_iter().flatten() {
                                shards[s] = Some(payload);
                                have += 1;
                            }
                        }
                        erasure.reconstruct(&mut shards, chunk).map_err(|_| {
                            ObjectError::ReadQuorum {
                                ok: have,
                                need: erasure.data_shards(),
                            }
                        })?;
                        for &t in targets {
                            let Some(shard) = shards[index_of(t)].as_deref() else {
                                continue;
                            };
                            let framed = bitrot::frame(shard);
                            bytes += framed.len() as u64;
                            if v.inline.is_some() {
                                inline_out[t].extend_from_slice(&framed);
                            } else if let Some(w) = writers[t].as_mut() {
                                if !w
                                    .send((Bytes::from(framed), std::sync::Arc::new(None)))
                                    .await
                                {
                                    writers[t] = None;
                                    alive[t] = false;
                                }
                            }
                        }
                    }
                    Ok::<(), ObjectError>(())
                };
                let (done, next) = futures::join!(work, fetch(g + 1));
                done?;
                spans = next;
            }
            for (t, w) in writers.into_iter().enumerate() {
                if let Some(w) = w {
                    if w.finish().await.is_err() {
                        alive[t] = false;
                    }
                }
            }
        }
        // Commit each target: its metadata with its own shard index, and the rebuilt data.
        crate::crash::point(crate::crash::HEAL_STAGED);
        let mut healed = Vec::new();
        for &t in targets {
            let Some(d) = &set.drives[t] else { continue };
            if !alive[t] {
                continue;
            }
            let mut nv = v.clone();
            nv.erasure.index = v.erasure.distribution[t];
            nv.inline = v
                .inline
                .as_ref()
                .map(|_| std::mem::take(&mut inline_out[t]));
            // The drive keeps its other versions: this one goes in its place among them
            // (replacing a stale copy with the same id).
            let mut meta = match d.read_meta(bucket, key).await {
                Ok(b) => ObjectMeta::decode(&b).unwrap_or_default(),
                Err(DriveError::NotFound) => ObjectMeta::default(),
                // A bucket made while the drive was away (or before it was replaced): made
                // here first, or the commit has nowhere to go.
                Err(DriveError::BucketNotFound) => match self.make_bucket_on(d, bucket).await {
                    Ok(()) => ObjectMeta::default(),
                    Err(e) => {
                        tracing::warn!(drive = d.name(), bucket, error = %e, "heal: bucket not made on the drive");
                        continue;
                    }
                },
                Err(e) => {
                    tracing::warn!(drive = d.name(), bucket, key, error = %e, "heal: metadata unreadable");
                    continue;
                }
            };
            let stale = meta
                .insert_ordered(nv)
                .and_then(|old| old.data_dir)
                .filter(|dir| Some(*dir) != v.data_dir);
            let staged = match (v.inline.is_none(), v.data_dir) {
                (true, Some(dir)) => {
                    // Replace a damaged data directory of the same version.
                    let _ = d.delete_data_dir(bucket, key, dir).await;
                    crate::crash::point(crate::crash::HEAL_OLD_REMOVED);
                    Some(StagedData {
                        from: txn.to_string(),
                        data_dir: dir,
                    })
                }
                _ => None,
            };
            match d
                .write_meta(bucket, key, Some(Bytes::from(meta.encode())), staged)
                .await
            {
                Ok(_) => {
                    healed.push(t);
                    // Data of the stale copy of this version the drive held before.
                    if let Some(dir) = stale {
                        let _ = d.delete_data_dir(bucket, key, dir).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(drive = d.name(), bucket, key, error = %e, "heal commit failed")
                }
            }
        }
        Ok((healed, bytes))
    }

    /// Make `bucket` (as its record says it was created) on a drive that lacks it; says
    /// why not when it cannot.
    async fn make_bucket_on(
        &self,
        d: &std::sync::Arc<dyn crate::drive::Drive>,
        bucket: &str,
    ) -> Result<(), String> {
        let b = match self.buckets.get(bucket).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err("the bucket has no record".into()),
            Err(e) => return Err(e.to_string()),
        };
        match d.make_bucket(bucket, b.config.created).await {
            Ok(()) | Err(DriveError::BucketExists) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// With every drive answering, versions no quorum backs (a delete or a failed write
    /// that missed some drives) are removed from the drives holding them once older than the
    /// grace period. `agreed` are the versions a quorum backs. Returns how many drives had
    /// such copies (with `count_only`, would have).
    #[allow(clippy::too_many_arguments)]
    async fn remove_dangling(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        agreed: &[Version],
        metas: Option<Vec<crate::drive::DriveResult<Bytes>>>,
        count_only: bool,
    ) -> usize {
        let metas = match metas {
            Some(m) => m,
            None => fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await,
        };
        if metas.iter().any(|r| {
            !matches!(
                r,
                Ok(_) | Err(DriveError::NotFound | DriveError::BucketNotFound)
            )
        }) {
            return 0;
        }
        let cutoff = super::now_nanos() - self.dangling_grace.as_nanos() as i64;
        let backed = |v: &Version| agreed.iter().any(|a| a.signature() == v.signature());
        let removed = fan_out(&set.drives, |i, d| {
            let meta = metas[i]
                .as_ref()
                .ok()
                .and_then(|b| ObjectMeta::decode(b).ok());
            async move {
                let Some(mut meta) = meta else {
                    return Ok(false);
                };
                let (keep, gone): (Vec<Version>, Vec<Version>) = meta
                    .versions
                    .drain(..)
                    .partition(|v| backed(v) || v.mod_time >= cutoff);
                if gone.is_empty() {
                    return Ok(false);
                }
                if count_only {
                    return Ok(true);
                }
                meta.versions = keep;
                let new = (!meta.versions.is_empty()).then(|| Bytes::from(meta.encode()));
                d.write_meta(bucket, key, new, None).await?;
                for dir in gone.iter().filter_map(|v| v.data_dir) {
                    d.delete_data_dir(bucket, key, dir).await?;
                }
                Ok(true)
            }
        })
        .await;
        removed
            .into_iter()
            .filter(|r| matches!(r, Ok(true)))
            .count()
    }
}

/// What healing one version found and did, by drive position.
#[derive(Default)]
struct VersionHeal {
    targets: Vec<usize>,
    healed: Vec<usize>,
    offline: Vec<usize>,
    bytes: u64,
}
