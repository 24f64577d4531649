//! Server pools in the object layer: which pool holds a key, where a new key goes, and
//! moving a key's every version from one pool to another (decommission, rebalance).
//!
//! A key lives in exactly one pool. Reads ask every pool that may hold keys in parallel and
//! take the newest answer; writes go to the pool holding the key, a new key to a pool
//! chosen by free space; a commit checks, under the key's write lock, that no other pool
//! took the key meanwhile ([`ObjectError::Moved`] otherwise: the client retries). A move
//! holds the key's write lock from the first byte copied until the source copy is gone.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use super::get::agree_any;
use super::put::{cleanup, commit_locked, encode_stream, write_geometry, NewVersion, Shards};
use super::quorum::{agreed_versions, copies, fan_out, Agreed, VersionRef};
use super::{ErasureSet, ObjectError, ObjectResult, Store, LOCK_TIMEOUT};
use crate::drive::DriveError;
use crate::lock::LockGuard;
use crate::meta::{ErasureInfo, ObjectMeta, Version, VersionKind};
use crate::placement::{distribution, write_quorum};

/// The record of the deployment's pools, kept with the system records of every drive.
pub const POOLS_DIR: &str = "pools";
pub const POOLS_RECORD: &str = "layout";

/// How long a measurement of the pools' free space is used for placement.
const SPACE_TTL: Duration = Duration::from_secs(5);

/// A pool whose usable free space is below this fraction takes no new objects while
/// another pool has room.
const FREE_FLOOR: f64 = 0.05;

/// Which pool each recently read key was found in (with several pools), so a read asks that
/// pool alone. Bounded: cleared when full.
#[derive(Default)]
pub(crate) struct Locations {
    map: parking_lot::Mutex<std::collections::HashMap<(String, String), usize>>,
}

const LOCATIONS_MAX: usize = 200_000;

impl Locations {
    fn get(&self, bucket: &str, key: &str) -> Option<usize> {
        self.map
            .lock()
            .get(&(bucket.to_string(), key.to_string()))
            .copied()
    }

    fn remember(&self, bucket: &str, key: &str, pool: usize) {
        let mut m = self.map.lock();
        if m.len() >= LOCATIONS_MAX {
            m.clear();
        }
        m.insert((bucket.to_string(), key.to_string()), pool);
    }

    pub(crate) fn forget(&self, bucket: &str, key: &str) {
        self.map
            .lock()
            .remove(&(bucket.to_string(), key.to_string()));
    }
}

/// One server pool: a range of the store's sets.
pub struct Pool {
    pub index: usize,
    /// The pool's identity: the first drive id of its layout (its drives' format.json).
    pub id: Uuid,
    /// Its sets, as indexes into [`Store::sets`].
    pub sets: Range<usize>,
    /// The flat drive slot of its first drive.
    pub first_slot: usize,
    /// Its layout of drive ids.
    pub format: Option<crate::placement::Format>,
}

/// What a pool takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// New objects and everything else.
    #[default]
    Active,
    /// Its objects are being moved out; no new keys go to it.
    Decommissioning,
    /// Empty: it may be removed from the server's arguments.
    Decommissioned,
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolState::Active => "active",
            PoolState::Decommissioning => "decommissioning",
            PoolState::Decommissioned => "decommissioned",
        })
    }
}

/// Progress of a decommission (one per pool) or of a rebalance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Seconds since the epoch.
    pub started: u64,
    pub updated: u64,
    pub finished: Option<u64>,
    pub canceled: bool,
    /// Why it stopped without finishing.
    pub error: Option<String>,
    /// Resume point: the bucket being walked and the last key finished in it.
    pub bucket: String,
    pub after: String,
    /// Keys (with all their versions) and bytes moved, and keys that failed to move.
    pub objects: u64,
    pub bytes: u64,
    pub failed: u64,
    /// What there was to move when it started (counted by a walk).
    pub total_objects: u64,
    pub total_bytes: u64,
    /// Walks over the pool so far (a decommission walks until a walk finds nothing).
    pub pass: u32,
}

/// A rebalance's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebalanceStatus {
    /// `running`, `stopped` or `done`.
    pub state: String,
    /// The used fraction every pool aims for, and how far off it may stay.
    pub goal: f64,
    pub threshold: f64,
    /// The pool being emptied now, and the progress of the whole rebalance.
    pub from: Option<usize>,
    pub progress: Progress,
}

/// One pool as the pools record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolEntry {
    pub id: Uuid,
    /// The server argument it was started with.
    pub arg: String,
    pub sets: usize,
    pub set_size: usize,
    pub state: PoolState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommission: Option<Progress>,
}

/// The deployment's pools, in argument order, with their states.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolsRecord {
    pub pools: Vec<PoolEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
}

/// A pool's usable capacity and free space (what its sets can hold as data).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpace {
    pub total: u64,
    pub free: u64,
}

impl PoolSpace {
    pub fn used_fraction(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        1.0 - self.free as f64 / self.total as f64
    }
}

/// What moving one key did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveOutcome {
    /// Versions (delete markers included) copied.
    pub versions: u64,
    /// Bytes of object data copied.
    pub bytes: u64,
}

fn absent(e: &ObjectError) -> bool {
    matches!(
        e,
        ObjectError::NoSuchKey | ObjectError::NoSuchVersion | ObjectError::NoSuchBucket
    )
}

impl Store {
    /// The deployment's pools.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Each pool's state, as last set from the pools record.
    pub fn pool_states(&self) -> Vec<PoolState> {
        self.pool_states.read().clone()
    }

    /// Apply the pools record's states (placement reads them on every new key).
    pub fn set_pool_states(&self, states: Vec<PoolState>) {
        if states.len() == self.pools.len() {
            *self.pool_states.write() = states;
        }
    }

    /// The system records of the pools.
    pub fn pools_records(&self) -> crate::records::Records {
        crate::records::Records::new(self.drive_slots(), POOLS_DIR)
    }

    /// The pools record as stored.
    pub async fn pools_record(&self) -> ObjectResult<Option<(PoolsRecord, i64)>> {
        let r = self
            .pools_records()
            .read::<PoolsRecord>(POOLS_RECORD)
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))?;
        Ok(r.and_then(|s| s.value.map(|v| (v, s.stamp))))
    }

    /// Store the pools record (`after`: the stamp of the copy it was made from).
    pub async fn save_pools_record(&self, rec: &PoolsRecord, after: i64) -> ObjectResult<i64> {
        self.pools_records()
            .put(POOLS_RECORD, Some(rec), after)
            .await
            .map_err(|e| ObjectError::Internal(e.to_string()))
    }

    /// Pools a key may be in: every pool not emptied by a finished decommission.
    fn searched_pools(&self) -> Vec<usize> {
        let states = self.pool_states.read();
        (0..self.pools.len())
            .filter(|p| states.get(*p) != Some(&PoolState::Decommissioned))
            .collect()
    }

    /// The set and agreed version of a read: with one pool, its set; with several, every
    /// pool that may hold the key is asked at once and the newest answer wins.
    pub(crate) async fn read_home(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
    ) -> ObjectResult<(&ErasureSet, Agreed)> {
        if self.pools.len() == 1 {
            let set = self.set_in_pool(0, key);
            return Ok((set, agree_any(set, bucket, key, which).await?));
        }
        // The pool that held the key at its last read is asked alone: a key lives in one
        // pool (a commit checks it, a move holds the key's write lock), so an answer there is
        // the answer; a miss asks every pool.
        if let Some(p) = self.locations.get(bucket, key) {
            let set = self.set_in_pool(p, key);
            match agree_any(set, bucket, key, which).await {
                Ok(a) => return Ok((set, a)),
                Err(e) if absent(&e) => self.locations.forget(bucket, key),
                Err(e) => return Err(e),
            }
        }
        let pools = self.searched_pools();
        let answers = futures::future::join_all(pools.iter().map(|&p| async move {
            let set = self.set_in_pool(p, key);
            (set, agree_any(set, bucket, key, which).await)
        }))
        .await;
        let mut best: Option<(&ErasureSet, Agreed)> = None;
        let mut error: Option<ObjectError> = None;
        for (set, a) in answers {
            match a {
                Ok(a) => {
                    if best
                        .as_ref()
                        .is_none_or(|(_, b)| a.latest.mod_time > b.latest.mod_time)
                    {
                        best = Some((set, a));
                    }
                }
                // A pool that cannot answer is worse than one without the key.
                Err(e) if absent(&e) => {
                    if error.as_ref().is_none_or(absent)
                        && !matches!(error, Some(ObjectError::NoSuchVersion))
                    {
                        error = Some(e);
                    }
                }
                Err(e) => error = Some(e),
            }
        }
        match (best, error) {
            (Some(b), _) => {
                self.locations.remember(bucket, key, b.0.pool);
                Ok(b)
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(ObjectError::NoSuchKey),
        }
    }

    /// Pools (other than `skip`) whose drives hold `bucket/key` (any version, a delete
    /// marker too), with their latest version's time.
    pub(crate) async fn holders(
        &self,
        bucket: &str,
        key: &str,
        skip: Option<usize>,
    ) -> ObjectResult<Vec<(usize, i64)>> {
        let pools: Vec<usize> = self
            .searched_pools()
            .into_iter()
            .filter(|p| Some(*p) != skip)
            .collect();
        let answers = futures::future::join_all(pools.iter().map(|&p| async move {
            let set = self.set_in_pool(p, key);
            (p, agree_any(set, bucket, key, VersionRef::Latest).await)
        }))
        .await;
        let mut out = Vec::new();
        for (p, a) in answers {
            match a {
                Ok(a) => out.push((p, a.latest.mod_time)),
                Err(e) if absent(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The set a write of `bucket/key` goes to: the pool holding the key, else a pool
    /// chosen by free space for `size` bytes.
    pub(crate) async fn write_home(
        &self,
        bucket: &str,
        key: &str,
        size: Option<u64>,
    ) -> ObjectResult<&ErasureSet> {
        let (pool, _) = self.home_pool(bucket, key, size.unwrap_or(0)).await?;
        Ok(self.set_in_pool(pool, key))
    }

    /// The pool holding `bucket/key` (the newest holder, if a cut-short move left it in
    /// several), else one chosen by free space for `size` bytes; with every holder.
    async fn home_pool(
        &self,
        bucket: &str,
        key: &str,
        size: u64,
    ) -> ObjectResult<(usize, Vec<(usize, i64)>)> {
        if self.pools.len() == 1 {
            return Ok((0, Vec::new()));
        }
        let held = self.holders(bucket, key, None).await?;
        let pool = match newest_holder(&held) {
            Some(p) => p,
            None => self.choose_pool(size).await,
        };
        Ok((pool, held))
    }

    /// Under the key's write lock, before a commit to `set`: no other pool may hold the key
    /// (a concurrent first write or a move put it there).
    ///
    /// A key held both here and elsewhere is the leftover of a move cut short (a crash
    /// mid-move): mended first ([`Store::mend_split`]).
    pub(crate) async fn check_home(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
        guard: &LockGuard,
    ) -> ObjectResult<()> {
        if self.pools.len() == 1 {
            return Ok(());
        }
        let others = self.holders(bucket, key, Some(set.pool)).await?;
        if others.is_empty() {
            return Ok(());
        }
        if self.versions_in(set.pool, bucket, key).await?.is_empty() {
            // A first write elsewhere won the race for a new key.
            return Err(ObjectError::Moved);
        }
        for (from, _) in others {
            self.mend_split(bucket, key, set.pool, from, guard).await?;
        }
        Ok(())
    }

    /// The versions of `bucket/key` a quorum of its set in `pool` agrees on; none only when
    /// most drives say they have no copy (a read that decides nothing is an error, never
    /// "none": callers remove copies on it).
    async fn versions_in(
        &self,
        pool: usize,
        bucket: &str,
        key: &str,
    ) -> ObjectResult<Vec<Version>> {
        let set = self.set_in_pool(pool, key);
        let metas = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
        versions_of(set, &metas)
    }

    /// Under the key's write lock: `bucket/key` is held by pool `home` and by pool `other`,
    /// the leftover of a move cut short (moves copy versions oldest first and remove the
    /// source last, so one copy holds every version of the other). The copy whose versions
    /// the other has too is removed — moved into `home` when `other`'s is the fuller one.
    /// Two copies each with a version the other lacks are left alone (`Moved`, logged):
    /// nothing is removed that only one of them holds.
    pub(crate) async fn mend_split(
        &self,
        bucket: &str,
        key: &str,
        home: usize,
        other: usize,
        guard: &LockGuard,
    ) -> ObjectResult<()> {
        let (h, o) = futures::join!(
            self.versions_in(home, bucket, key),
            self.versions_in(other, bucket, key)
        );
        let h: std::collections::HashSet<Ident> = h?.iter().map(ident).collect();
        let o: std::collections::HashSet<Ident> = o?.iter().map(ident).collect();
        if h.is_empty() || o.is_empty() {
            // One side's versions could not be read at quorum: nothing is decided on it.
            return Err(ObjectError::Moved);
        }
        if o.is_subset(&h) {
            tracing::warn!(
                bucket,
                key,
                pool = other + 1,
                kept = home + 1,
                "removing a copy a cut-short move left"
            );
            purge(self.set_in_pool(other, key), bucket, key).await?;
        } else if h.is_subset(&o) {
            tracing::warn!(
                bucket,
                key,
                from = other + 1,
                to = home + 1,
                "moving the fuller copy over one a cut-short move left"
            );
            self.move_locked(bucket, key, other, home, guard).await?;
        } else {
            tracing::error!(
                bucket,
                key,
                pools = %format!("{} and {}", home + 1, other + 1),
                "the key is in two pools with different versions: not changed"
            );
            return Err(ObjectError::Moved);
        }
        self.locations.forget(bucket, key);
        Ok(())
    }

    /// Under the key's write lock: the set a change of an existing `bucket/key` goes to —
    /// the pool holding it (a copy left in another by a cut-short move mended first), else
    /// a pool chosen as for a new key.
    pub(crate) async fn home_locked(
        &self,
        bucket: &str,
        key: &str,
        guard: &LockGuard,
    ) -> ObjectResult<&ErasureSet> {
        let (pool, held) = self.home_pool(bucket, key, 0).await?;
        for (other, _) in held.iter().filter(|(p, _)| *p != pool) {
            self.mend_split(bucket, key, pool, *other, guard).await?;
        }
        Ok(self.set_in_pool(pool, key))
    }

    /// Under the key's write lock, before a commit to `set` that cannot go elsewhere (a
    /// multipart upload completes in the pool it was started in): versions of the key that
    /// another pool took meanwhile (a rebalance or decommission moved it) are moved into
    /// `set`'s pool first, so the key stays in one pool with its history.
    pub(crate) async fn pull_home(
        &self,
        set: &ErasureSet,
        bucket: &str,
        key: &str,
        guard: &LockGuard,
    ) -> ObjectResult<()> {
        if self.pools.len() == 1 {
            return Ok(());
        }
        let others = self.holders(bucket, key, Some(set.pool)).await?;
        if !others.is_empty() && !self.versions_in(set.pool, bucket, key).await?.is_empty() {
            // Versions here too: not a move since the upload began but a cut-short one's
            // leftover (moving the other copy in would first remove the versions here).
            for (from, _) in others {
                self.mend_split(bucket, key, set.pool, from, guard).await?;
            }
            return Ok(());
        }
        for (from, _) in others {
            tracing::info!(
                bucket,
                key,
                from = from + 1,
                to = set.pool + 1,
                "moving a key back into the pool its upload completes in"
            );
            self.move_locked(bucket, key, from, set.pool, guard).await?;
        }
        Ok(())
    }

    /// Each pool's usable capacity and free space: per set, the smallest free space of its
    /// drives times its data drives. Measured at most every few seconds.
    pub async fn pool_space(&self) -> Vec<PoolSpace> {
        if let Some((at, space)) = self.space.lock().as_ref() {
            if at.elapsed() < SPACE_TTL {
                return space.clone();
            }
        }
        let space = self.measure_space().await;
        *self.space.lock() = Some((Instant::now(), space.clone()));
        space
    }

    async fn measure_space(&self) -> Vec<PoolSpace> {
        let mut out = Vec::with_capacity(self.pools.len());
        for pool in &self.pools {
            let mut space = PoolSpace::default();
            for set in &self.sets[pool.sets.clone()] {
                let infos = fan_out(&set.drives, |_, d| d.disk_info()).await;
                let ok: Vec<_> = infos.into_iter().flatten().collect();
                let data = (set.size() - set.parity) as u64;
                let free = ok.iter().map(|i| i.free).min().unwrap_or(0);
                let total = ok.iter().map(|i| i.total).min().unwrap_or(0);
                space.free = space.free.saturating_add(free.saturating_mul(data));
                space.total = space.total.saturating_add(total.saturating_mul(data));
            }
            out.push(space);
        }
        out
    }

    /// The pool for a new key: a weighted random pick by free space among the active pools
    /// above the free-space floor with room for `size` bytes (else the active pool with
    /// the most room).
    async fn choose_pool(&self, size: u64) -> usize {
        let space = self.pool_space().await;
        let states = self.pool_states();
        let active: Vec<usize> = (0..self.pools.len())
            .filter(|p| states.get(*p).copied().unwrap_or_default() == PoolState::Active)
            .collect();
        let roomy: Vec<(usize, u64)> = active
            .iter()
            .map(|&p| (p, space.get(p).copied().unwrap_or_default()))
            .filter(|(_, s)| s.free > size && (s.free as f64) >= FREE_FLOOR * s.total as f64)
            .map(|(p, s)| (p, s.free - size))
            .collect();
        let total: u128 = roomy.iter().map(|(_, f)| *f as u128).sum();
        if total > 0 {
            let mut pick = rand::random::<u128>() % total;
            for (p, f) in &roomy {
                if pick < *f as u128 {
                    return *p;
                }
                pick -= *f as u128;
            }
        }
        active
            .into_iter()
            .max_by_key(|p| space.get(*p).map_or(0, |s| s.free))
            .unwrap_or(0)
    }

    /// The pool a key leaving `from` goes to: chosen by free space among the active pools.
    pub async fn target_pool(&self, from: usize) -> Option<usize> {
        let states = self.pool_states();
        let others = (0..self.pools.len())
            .any(|p| p != from && states.get(p).copied().unwrap_or_default() == PoolState::Active);
        if !others {
            return None;
        }
        let to = self.choose_pool(0).await;
        (to != from).then_some(to)
    }

    /// Move every version of `bucket/key` from pool `from` to pool `to`, under the key's
    /// write lock: the target's copy is committed version by version (oldest first, each
    /// at write quorum), then the source's copy is removed. A leftover of an interrupted
    /// move on the target is replaced; a key the source does not hold at read quorum is
    /// only cleaned off the source.
    pub async fn move_key(
        &self,
        bucket: &str,
        key: &str,
        from: usize,
        to: usize,
    ) -> ObjectResult<MoveOutcome> {
        if from >= self.pools.len() || to >= self.pools.len() || from == to {
            return Err(ObjectError::InvalidArgument(format!(
                "cannot move from pool {from} to pool {to}"
            )));
        }
        let guard = self
            .locker
            .lock(&format!("{bucket}/{key}"), true, LOCK_TIMEOUT)
            .await?;
        self.move_locked(bucket, key, from, to, &guard).await
    }

    /// [`Store::move_key`] with the key's write lock already held by `guard`.
    async fn move_locked(
        &self,
        bucket: &str,
        key: &str,
        from: usize,
        to: usize,
        guard: &LockGuard,
    ) -> ObjectResult<MoveOutcome> {
        let src = self.set_in_pool(from, key);
        let dst = self.set_in_pool(to, key);
        let metas = fan_out(&src.drives, |_, d| d.read_meta(bucket, key)).await;
        let versions = agreed_versions(&copies(&metas));
        let mut out = MoveOutcome::default();
        if !versions.is_empty() {
            // The target's copy is replaced: only a leftover of an earlier move of these
            // same versions may be there, never a version the source lacks.
            let have: std::collections::HashSet<Ident> = versions.iter().map(ident).collect();
            let there = self.versions_in(to, bucket, key).await?;
            if there.iter().any(|v| !have.contains(&ident(v))) {
                tracing::error!(
                    bucket,
                    key,
                    from = from + 1,
                    to = to + 1,
                    "not moved: the target pool holds versions of the key the source does not"
                );
                return Err(ObjectError::Moved);
            }
            purge(dst, bucket, key).await?;
            for v in versions.iter().rev() {
                if let Err(e) = self.copy_version(src, dst, bucket, key, v, guard).await {
                    // The source keeps every version: the part copied goes, or the key
                    // would be in two pools (reads and writes wedged on it).
                    if let Err(p) = purge(dst, bucket, key).await {
                        tracing::warn!(bucket, key, error = %p, "a failed move's copy not removed");
                    }
                    return Err(e);
                }
                out.versions += 1;
                if v.kind == VersionKind::Object {
                    out.bytes += v.size;
                }
            }
            crate::crash::point(crate::crash::MOVE_COPIED);
        }
        if !guard.held() {
            return Err(ObjectError::LockLost);
        }
        purge(src, bucket, key).await?;
        self.locations.forget(bucket, key);
        Ok(out)
    }

    /// Copy one version from `src` to `dst` (the key's write lock held by `guard`).
    async fn copy_version(
        &self,
        src: &ErasureSet,
        dst: &ErasureSet,
        bucket: &str,
        key: &str,
        v: &Version,
        guard: &LockGuard,
    ) -> ObjectResult<()> {
        let offline = self.check_bucket_on_set(dst, bucket, key).await?;
        let base = self.parity_for(dst, &v.headers);
        let (data, parity) = write_geometry(dst, base, offline);
        let dist = distribution(bucket, key, dst.size());
        let mut version = Version {
            // The version's own block size (an encrypted object's holds whole packages).
            erasure: ErasureInfo::new(data, parity, v.erasure.block_size as usize, dist.clone()),
            data_dir: None,
            inline: None,
            ..v.clone()
        };
        if v.kind == VersionKind::DeleteMarker {
            let new = NewVersion {
                version,
                ok: vec![true; dst.size()],
                inline: None,
                staged_dir: None,
            };
            return commit_locked(self, dst, bucket, key, new, None, guard)
                .await
                .map(drop);
        }
        let agreed = agree_any(src, bucket, key, VersionRef::Id(v.version_id)).await?;
        if agreed.latest.signature() != v.signature() {
            return Err(ObjectError::Internal(format!(
                "version {:?} of {bucket}/{key} changed during a move",
                v.version_id
            )));
        }
        let reader = self.reader_on(src, bucket, key, &agreed, None, None)?;
        let stream = futures::TryStreamExt::map_err(reader.into_stream(), |e| {
            std::io::Error::other(e.to_string())
        });
        let mut body = tokio_util::io::StreamReader::new(Box::pin(stream));
        let erasure =
            cairn_erasure::Erasure::new(data, parity, version.erasure.block_size as usize)
                .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let quorum = write_quorum(data, parity);
        let data_dir = Uuid::new_v4();
        let txn = format!("tmp/{data_dir}");
        let single = v.parts.len() <= 1;
        let result = async {
            let mut ok = vec![true; dst.size()];
            let mut inline = None;
            for part in &v.parts {
                let file = format!("{txn}/part.{}", part.number);
                let mut limited = (&mut body).take(part.size);
                let enc = encode_stream(
                    dst,
                    &dist,
                    &erasure,
                    &mut limited,
                    Some(part.size),
                    &file,
                    single,
                    false,
                    quorum,
                )
                .await?;
                if enc.size != part.size {
                    return Err(ObjectError::IncompleteBody {
                        got: enc.size,
                        want: part.size,
                    });
                }
                match enc.shards {
                    Shards::Inline(framed) => inline = Some(framed),
                    Shards::Staged(got) => {
                        for (o, g) in ok.iter_mut().zip(got) {
                            *o &= g;
                        }
                    }
                }
            }
            let new = match inline {
                Some(framed) => NewVersion {
                    version,
                    ok: vec![true; framed.len()],
                    inline: Some(framed),
                    staged_dir: None,
                },
                None => {
                    version.data_dir = Some(data_dir);
                    NewVersion {
                        version,
                        ok,
                        inline: None,
                        staged_dir: Some(txn.clone()),
                    }
                }
            };
            commit_locked(self, dst, bucket, key, new, None, guard)
                .await
                .map(drop)
        }
        .await;
        cleanup(&dst.drives, &txn).await;
        result
    }

    /// Keys and bytes (every version) a walk finds in `pool`, per bucket.
    pub async fn pool_usage(&self, pool: usize) -> ObjectResult<(u64, u64)> {
        let (mut objects, mut bytes) = (0u64, 0u64);
        for b in self.bucket_configs().await? {
            let mut after = String::new();
            loop {
                let page = self.pool_keys(&b.config.name, pool, &after, 1000).await?;
                for (_, size) in &page {
                    objects += 1;
                    bytes = bytes.saturating_add(*size);
                }
                match page.last() {
                    Some((k, _)) if page.len() == 1000 => after = k.clone(),
                    _ => break,
                }
            }
        }
        Ok((objects, bytes))
    }

    /// Up to `max` keys of `bucket` held by `pool` after `after`, each with the size of its
    /// latest version (every key with versions, delete markers included).
    pub async fn pool_keys(
        &self,
        bucket: &str,
        pool: usize,
        after: &str,
        max: usize,
    ) -> ObjectResult<Vec<(String, u64)>> {
        let opts = super::ListOptions {
            start_after: after.to_string(),
            max_keys: max,
            every_key: true,
            pool: Some(pool),
            ..Default::default()
        };
        let page = self.list_objects(bucket, &opts).await?;
        Ok(page
            .objects
            .into_iter()
            .map(|o| {
                let size = if o.delete_marker { 0 } else { o.size };
                (o.key, size)
            })
            .collect())
    }

    /// Bucket directories and system records onto pools that lack them (a pool just
    /// added): buckets a majority of the other pools' drives hold are made on its drives.
    pub async fn seed_pool(&self, pool: usize) -> ObjectResult<usize> {
        let Some(p) = self.pools.get(pool) else {
            return Ok(0);
        };
        // Buckets a majority of some other pool's drives hold (another new pool has none).
        let mut buckets: BTreeMap<String, i64> = BTreeMap::new();
        for other in self.pools.iter().filter(|o| o.index != pool) {
            let drives: Vec<_> = self.sets[other.sets.clone()]
                .iter()
                .flat_map(|s| s.drives.iter().cloned())
                .collect();
            let answers = fan_out(&drives, |_, d| d.list_buckets()).await;
            for b in super::bucket::majority_buckets(answers) {
                let e = buckets.entry(b.name).or_insert(b.created);
                *e = (*e).min(b.created);
            }
        }
        let mine: Vec<_> = self.sets[p.sets.clone()]
            .iter()
            .flat_map(|s| s.drives.iter().cloned())
            .collect();
        let made = fan_out(&mine, |_, d| {
            let buckets = &buckets;
            async move {
                let mut made = 0;
                for (name, created) in buckets.iter() {
                    match d.make_bucket(name, *created).await {
                        Ok(()) => made += 1,
                        Err(DriveError::BucketExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(made)
            }
        })
        .await;
        Ok(made.into_iter().flatten().sum())
    }
}

/// Of the pools holding a key (with their latest version's time), the one with the newest
/// (the first such pool on a tie).
fn newest_holder(held: &[(usize, i64)]) -> Option<usize> {
    held.iter()
        .max_by_key(|(p, t)| (*t, std::cmp::Reverse(*p)))
        .map(|(p, _)| *p)
}

/// What tells two copies of a version apart, apart from where their data lies (a moved
/// copy has its own data directory and geometry): id, time, kind, ETag, size and every
/// stored header (tags, retention, legal hold, ACL, user metadata, checksums).
type Ident = (
    Option<Uuid>,
    i64,
    VersionKind,
    String,
    u64,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
);

fn ident(v: &Version) -> Ident {
    (
        v.version_id,
        v.mod_time,
        v.kind,
        v.etag.clone(),
        v.size,
        v.headers.clone(),
        v.user_meta.clone(),
        v.checksums.clone(),
    )
}

/// The versions a quorum of `set`'s answers `metas` agrees on; none only when a majority
/// of its drives answered that they hold no copy.
fn versions_of(
    set: &ErasureSet,
    metas: &[crate::drive::DriveResult<bytes::Bytes>],
) -> ObjectResult<Vec<Version>> {
    let versions = agreed_versions(&copies(metas));
    if !versions.is_empty() {
        return Ok(versions);
    }
    let none = metas
        .iter()
        .filter(|r| matches!(r, Err(DriveError::NotFound | DriveError::BucketNotFound)))
        .count();
    if none * 2 > set.size() {
        Ok(Vec::new())
    } else {
        Err(ObjectError::Moved)
    }
}

/// Remove every version of `bucket/key` from `set`'s drives: the metadata first (the key
/// is gone at once), then the data directories it named.
async fn purge(set: &ErasureSet, bucket: &str, key: &str) -> ObjectResult<()> {
    let results = fan_out(&set.drives, |_, d| async move {
        let prev = match d.write_meta(bucket, key, None, None).await {
            Ok(prev) => prev,
            Err(DriveError::NotFound | DriveError::BucketNotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let dirs: Vec<Uuid> = prev
            .and_then(|b| ObjectMeta::decode(&b).ok())
            .map(|m| m.versions.iter().filter_map(|v| v.data_dir).collect())
            .unwrap_or_default();
        for dir in dirs {
            match d.delete_data_dir(bucket, key, dir).await {
                Ok(()) | Err(DriveError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    // A copy left on a drive that did not answer has no quorum: heal removes it later.
    let ok = results.len() - failed;
    let need = set.size() / 2 + 1;
    if ok < need {
        return Err(ObjectError::WriteQuorum { ok, need });
    }
    Ok(())
}
