//! The `pools` worker: decommissioning a server pool (moving every key out of it) and
//! rebalancing pools (moving keys from fuller pools to emptier ones).
//!
//! What runs and how far it got is kept in the pools record (a system record on every
//! drive), so any node can show it and the leading node resumes it after a restart or a
//! node failure: it walks the pool in bucket and key order, moving each key with
//! [`Store::move_key`] under the key's write lock, paced by the heal speed, saving its
//! position every two seconds. A decommission walks the pool again until a walk finds
//! nothing to move (keys written to the pool while it was walked, uploads completed in
//! it), then marks the pool decommissioned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{unix_now, Healer, POOLS_RECORD_LOCK};
use crate::object::{ObjectError, PoolSpace, PoolState, PoolsRecord, Progress, RebalanceStatus};

/// How often a running move saves its position (and notices a cancellation).
const SAVE_EVERY: Duration = Duration::from_secs(2);
/// How often every node re-reads the pools record.
const REFRESH: Duration = Duration::from_secs(2);
/// Keys listed at a time.
const PAGE: usize = 500;
/// A decommission whose walks keep failing gives up after this many walks that moved
/// nothing.
const MAX_IDLE_PASSES: u32 = 3;
/// A rebalance moves keys out of a pool until its used fraction is within this
/// fraction of the goal (5 %: 0.50 → at most 0.525).
pub const REBALANCE_THRESHOLD: f64 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("no pool {0}: name a pool by its number (1, 2, ...) or its server argument")]
    NoSuchPool(String),
    #[error("pool {0} is already decommissioning")]
    AlreadyDecommissioning(usize),
    #[error("pool {0} is already decommissioned")]
    AlreadyDecommissioned(usize),
    #[error("pool {0} is not decommissioning")]
    NotDecommissioning(usize),
    #[error("another pool is decommissioning: one at a time")]
    Busy,
    #[error("a rebalance is running: stop it first")]
    Rebalancing,
    #[error("the last active pool cannot be decommissioned: add a pool first")]
    LastPool,
    #[error("the other pools have {free} bytes free but pool {pool} holds {need} bytes: add capacity first")]
    NoSpace { pool: usize, need: u64, free: u64 },
    #[error("one pool only: nothing to rebalance")]
    OnePool,
    #[error("no rebalance is running")]
    NotRebalancing,
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// One pool as `cairn admin pool status` and `cairn admin info` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolStatus {
    /// 1-based, as the commands take it.
    pub number: usize,
    pub arg: String,
    pub id: String,
    pub sets: usize,
    pub set_size: usize,
    /// Usable bytes (what its sets can hold as data) and of those free.
    pub total: u64,
    pub free: u64,
    /// `active`, `decommissioning`, `decommissioned`; `rebalancing` while a rebalance moves
    /// keys out of it.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommission: Option<Progress>,
}

/// Every pool and the rebalance, for the admin API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PoolsStatus {
    pub pools: Vec<PoolStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
}

/// The running move of this node, if any.
#[derive(Default)]
pub(super) struct Mover {
    running: bool,
}

impl Healer {
    /// Which pool `name` is: its 1-based number or its server argument.
    pub fn pool_index(&self, name: &str) -> Result<usize, PoolError> {
        let pools = self.store.pools();
        if let Ok(n) = name.parse::<usize>() {
            if (1..=pools.len()).contains(&n) {
                return Ok(n - 1);
            }
        }
        let names = self.pool_args.lock().clone();
        names
            .iter()
            .position(|a| a == name)
            .ok_or_else(|| PoolError::NoSuchPool(name.to_string()))
    }

    /// Every pool's state, space and progress.
    pub async fn pools_status(&self) -> Result<PoolsStatus, PoolError> {
        let rec = self.pools_record().await?;
        let space = self.store.pool_space().await;
        let rebalancing = rec
            .rebalance
            .as_ref()
            .filter(|r| r.state == "running")
            .and_then(|r| r.from);
        let pools = rec
            .pools
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let s = space.get(i).copied().unwrap_or_default();
                let state = if rebalancing == Some(i) && e.state == PoolState::Active {
                    "rebalancing".to_string()
                } else {
                    e.state.to_string()
                };
                PoolStatus {
                    number: i + 1,
                    arg: e.arg.clone(),
                    id: e.id.to_string(),
                    sets: e.sets,
                    set_size: e.set_size,
                    total: s.total,
                    free: s.free,
                    state,
                    decommission: e.decommission.clone(),
                }
            })
            .collect();
        Ok(PoolsStatus {
            pools,
            rebalance: rec.rebalance,
        })
    }

    async fn pools_record(&self) -> Result<PoolsRecord, PoolError> {
        Ok(self
            .store
            .pools_record()
            .await?
            .map(|(r, _)| r)
            .unwrap_or_default())
    }

    /// Change the pools record under the deployment-wide lock on it ([`POOLS_RECORD_LOCK`]),
    /// and apply its states.
    async fn change_record<T>(
        &self,
        f: impl FnOnce(&mut PoolsRecord) -> Result<T, PoolError>,
    ) -> Result<T, PoolError> {
        let _guard = self
            .store
            .locker()
            .lock(POOLS_RECORD_LOCK, true, Duration::from_secs(30))
            .await
            .map_err(ObjectError::from)?;
        let (mut rec, stamp) = self.store.pools_record().await?.unwrap_or_default();
        let out = f(&mut rec)?;
        self.store.save_pools_record(&rec, stamp).await?;
        self.store
            .set_pool_states(rec.pools.iter().map(|p| p.state).collect());
        Ok(out)
    }

    /// Start moving every key out of `pool`: refused when another pool is decommissioning,
    /// a rebalance runs, it is the last active pool, or the others lack the space.
    pub async fn start_decommission(&self, pool: usize) -> Result<PoolsStatus, PoolError> {
        let rec = self.pools_record().await?;
        let Some(entry) = rec.pools.get(pool) else {
            return Err(PoolError::NoSuchPool((pool + 1).to_string()));
        };
        match entry.state {
            PoolState::Decommissioning => return Err(PoolError::AlreadyDecommissioning(pool + 1)),
            PoolState::Decommissioned => return Err(PoolError::AlreadyDecommissioned(pool + 1)),
            PoolState::Active => {}
        }
        if rec
            .pools
            .iter()
            .any(|p| p.state == PoolState::Decommissioning)
        {
            return Err(PoolError::Busy);
        }
        if rec.rebalance.as_ref().is_some_and(|r| r.state == "running") {
            return Err(PoolError::Rebalancing);
        }
        let others: Vec<usize> = (0..rec.pools.len())
            .filter(|&p| p != pool && rec.pools[p].state == PoolState::Active)
            .collect();
        if others.is_empty() {
            return Err(PoolError::LastPool);
        }
        let (objects, bytes) = self.store.pool_usage(pool).await?;
        let space = self.store.pool_space().await;
        let free: u64 = others
            .iter()
            .map(|&p| space.get(p).map_or(0, |s| s.free))
            .sum();
        if bytes > free {
            return Err(PoolError::NoSpace {
                pool: pool + 1,
                need: bytes,
                free,
            });
        }
        self.change_record(|rec| {
            let e = rec
                .pools
                .get_mut(pool)
                .ok_or_else(|| PoolError::NoSuchPool((pool + 1).to_string()))?;
            if e.state != PoolState::Active {
                return Err(PoolError::AlreadyDecommissioning(pool + 1));
            }
            e.state = PoolState::Decommissioning;
            let now = unix_now();
            e.decommission = Some(Progress {
                started: now,
                updated: now,
                total_objects: objects,
                total_bytes: bytes,
                ..Progress::default()
            });
            Ok(())
        })
        .await?;
        tracing::info!(pool = pool + 1, objects, bytes, "pool decommission started");
        self.wake_pools();
        self.pools_status().await
    }

    /// Stop decommissioning `pool`: it takes new objects again; what was moved stays moved.
    pub async fn cancel_decommission(&self, pool: usize) -> Result<PoolsStatus, PoolError> {
        self.change_record(|rec| {
            let e = rec
                .pools
                .get_mut(pool)
                .ok_or_else(|| PoolError::NoSuchPool((pool + 1).to_string()))?;
            if e.state != PoolState::Decommissioning {
                return Err(PoolError::NotDecommissioning(pool + 1));
            }
            e.state = PoolState::Active;
            if let Some(d) = e.decommission.as_mut() {
                d.canceled = true;
                d.finished = Some(unix_now());
                d.updated = unix_now();
            }
            Ok(())
        })
        .await?;
        tracing::info!(pool = pool + 1, "pool decommission canceled");
        self.pools_status().await
    }

    /// Start moving keys from fuller pools to emptier ones until every active pool's used
    /// fraction is within [`REBALANCE_THRESHOLD`] of the deployment's.
    pub async fn start_rebalance(&self) -> Result<PoolsStatus, PoolError> {
        let rec = self.pools_record().await?;
        let active: Vec<usize> = (0..rec.pools.len())
            .filter(|&p| rec.pools[p].state == PoolState::Active)
            .collect();
        if active.len() < 2 {
            return Err(PoolError::OnePool);
        }
        if rec
            .pools
            .iter()
            .any(|p| p.state == PoolState::Decommissioning)
        {
            return Err(PoolError::Busy);
        }
        let (used, space) = self.pool_fill(&active).await?;
        let total_used: u64 = used.iter().sum();
        let total_cap: u64 = space.iter().map(|s| s.total).sum();
        let goal = if total_cap == 0 {
            0.0
        } else {
            total_used as f64 / total_cap as f64
        };
        // What the fuller pools hold above the goal: what is to move.
        let to_move: u64 = used
            .iter()
            .zip(&space)
            .map(|(u, s)| u.saturating_sub((goal * s.total as f64) as u64))
            .sum();
        self.change_record(|rec| {
            if rec.rebalance.as_ref().is_some_and(|r| r.state == "running") {
                return Err(PoolError::Rebalancing);
            }
            let now = unix_now();
            rec.rebalance = Some(RebalanceStatus {
                state: "running".into(),
                goal,
                threshold: REBALANCE_THRESHOLD,
                from: None,
                progress: Progress {
                    started: now,
                    updated: now,
                    total_bytes: to_move,
                    ..Progress::default()
                },
            });
            Ok(())
        })
        .await?;
        tracing::info!(goal, to_move, "pool rebalance started");
        self.wake_pools();
        self.pools_status().await
    }

    /// Stop the running rebalance where it is.
    pub async fn stop_rebalance(&self) -> Result<PoolsStatus, PoolError> {
        self.change_record(|rec| match rec.rebalance.as_mut() {
            Some(r) if r.state == "running" => {
                r.state = "stopped".into();
                r.progress.canceled = true;
                r.progress.finished = Some(unix_now());
                r.progress.updated = unix_now();
                Ok(())
            }
            _ => Err(PoolError::NotRebalancing),
        })
        .await?;
        tracing::info!("pool rebalance stopped");
        self.pools_status().await
    }

    /// Bytes each of `pools` holds (counted by a walk) and its space.
    async fn pool_fill(&self, pools: &[usize]) -> Result<(Vec<u64>, Vec<PoolSpace>), PoolError> {
        let space = self.store.pool_space().await;
        let mut used = Vec::with_capacity(pools.len());
        let mut caps = Vec::with_capacity(pools.len());
        for &p in pools {
            used.push(self.store.pool_usage(p).await?.1);
            caps.push(space.get(p).copied().unwrap_or_default());
        }
        Ok((used, caps))
    }

    fn wake_pools(&self) {
        self.pools_wake.notify_one();
    }

    /// Every node: re-read the pools record now and then and apply its states; the leader
    /// also runs what the record says is running.
    pub fn start_pools(self: &Arc<Self>, args: Vec<String>) {
        *self.pool_args.lock() = args;
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(Some((rec, _))) = me.store.pools_record().await {
                    me.store
                        .set_pool_states(rec.pools.iter().map(|p| p.state).collect());
                    if me.is_leader() && !me.pools_mover.lock().running {
                        if let Some(pool) = rec
                            .pools
                            .iter()
                            .position(|p| p.state == PoolState::Decommissioning)
                        {
                            me.pools_mover.lock().running = true;
                            me.decommission(pool).await;
                            me.pools_mover.lock().running = false;
                            continue;
                        }
                        if rec.rebalance.as_ref().is_some_and(|r| r.state == "running") {
                            me.pools_mover.lock().running = true;
                            me.rebalance().await;
                            me.pools_mover.lock().running = false;
                            continue;
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH) => {}
                    _ = me.pools_wake.notified() => {}
                    _ = me.shutdown.cancelled() => return,
                }
            }
        });
    }

    /// Save `progress` of pool `pool`'s decommission, unless it was canceled meanwhile
    /// (then `false`: stop).
    async fn save_decommission(&self, pool: usize, progress: &Progress, state: PoolState) -> bool {
        let mut p = progress.clone();
        p.updated = unix_now();
        let r = self
            .change_record(|rec| {
                let Some(e) = rec.pools.get_mut(pool) else {
                    return Ok(false);
                };
                if e.state != PoolState::Decommissioning {
                    return Ok(false);
                }
                e.state = state;
                e.decommission = Some(p);
                Ok(true)
            })
            .await;
        match r {
            Ok(go) => go,
            Err(e) => {
                tracing::warn!(pool = pool + 1, error = %e, "decommission progress not saved");
                true
            }
        }
    }

    async fn decommission(self: &Arc<Self>, pool: usize) {
        let Ok(rec) = self.pools_record().await else {
            return;
        };
        let Some(mut progress) = rec.pools.get(pool).and_then(|e| e.decommission.clone()) else {
            return;
        };
        let name = format!("decommission:pool{}", pool + 1);
        self.set_worker(&name, "running", progress.objects, progress.failed);
        tracing::info!(
            pool = pool + 1,
            bucket = progress.bucket,
            after = progress.after,
            "pool decommission running"
        );
        let mut idle = 0;
        loop {
            let before = (progress.objects, progress.failed);
            match self.move_out(pool, None, &mut progress, &name).await {
                Ok(true) => {}
                Ok(false) => {
                    self.set_worker(&name, "idle", progress.objects, progress.failed);
                    return;
                }
                Err(e) => {
                    tracing::warn!(pool = pool + 1, error = %e, "decommission walk failed; retrying");
                    progress.failed += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            progress.pass += 1;
            progress.bucket.clear();
            progress.after.clear();
            // Uploads still in progress in the pool would complete into it: abort them.
            self.abort_pool_uploads(pool).await;
            let moved = progress.objects - before.0;
            let failed = progress.failed - before.1;
            let empty = matches!(self.store.pool_usage(pool).await, Ok((0, _)));
            if empty && failed == 0 {
                progress.finished = Some(unix_now());
                if self
                    .save_decommission(pool, &progress, PoolState::Decommissioned)
                    .await
                {
                    // The records (buckets, pools, identities) must live on where the
                    // pool is removed from.
                    self.heal_system().await;
                    tracing::info!(
                        pool = pool + 1,
                        objects = progress.objects,
                        bytes = progress.bytes,
                        "pool decommissioned: it can be removed from the server arguments"
                    );
                }
                self.set_worker(&name, "idle", progress.objects, progress.failed);
                return;
            }
            idle = if moved == 0 { idle + 1 } else { 0 };
            if idle >= MAX_IDLE_PASSES {
                progress.error = Some(format!(
                    "{} keys could not be moved after {} walks; see the log, then start again",
                    failed, progress.pass
                ));
                progress.finished = Some(unix_now());
                // Back to active: it takes writes again until started anew.
                self.save_decommission(pool, &progress, PoolState::Active)
                    .await;
                tracing::error!(pool = pool + 1, failed, "pool decommission failed");
                self.set_worker(&name, "failed", progress.objects, progress.failed);
                return;
            }
            if !self
                .save_decommission(pool, &progress, PoolState::Decommissioning)
                .await
            {
                return;
            }
        }
    }

    async fn abort_pool_uploads(&self, pool: usize) {
        let Ok(buckets) = self.store.bucket_configs().await else {
            return;
        };
        for b in buckets {
            let bucket = &b.config.name;
            let Ok(uploads) = self.store.list_pool_uploads(bucket, pool).await else {
                continue;
            };
            for u in uploads {
                tracing::warn!(
                    pool = pool + 1,
                    bucket,
                    key = u.key,
                    upload = u.upload_id,
                    "aborting an upload left in a decommissioned pool"
                );
                let _ = self
                    .store
                    .abort_multipart(bucket, &u.key, &u.upload_id)
                    .await;
            }
        }
    }

    /// One walk over `pool`, moving each key it holds to another pool (`to`, or one chosen
    /// by free space), from the resume point in `progress`. `limit`: stop once this many
    /// bytes moved (a rebalance). `Ok(false)`: stopped (canceled, shut down, no longer the
    /// leader, or the limit reached).
    async fn move_out(
        self: &Arc<Self>,
        pool: usize,
        limit: Option<(u64, &(dyn Fn() -> Option<usize> + Sync))>,
        progress: &mut Progress,
        worker: &str,
    ) -> Result<bool, PoolError> {
        let mut buckets: Vec<String> = self
            .store
            .bucket_configs()
            .await?
            .iter()
            .map(|b| b.config.name.clone())
            .collect();
        buckets.sort();
        let mut saved = Instant::now();
        let start_bytes = progress.bytes;
        for bucket in buckets {
            if bucket < progress.bucket {
                continue;
            }
            if bucket != progress.bucket {
                progress.bucket = bucket.clone();
                progress.after.clear();
            }
            loop {
                let page = self
                    .store
                    .pool_keys(&bucket, pool, &progress.after, PAGE)
                    .await?;
                // Keys move a few at a time (more when the heal speed is fast); the resume
                // point advances only over keys whose move has finished, in order.
                let mut stop = false;
                let mut targets = Vec::with_capacity(page.len());
                for (key, size) in &page {
                    let to = match &limit {
                        Some((max, target)) => {
                            let planned: u64 = targets.iter().map(|(_, _, s)| *s).sum();
                            if progress.bytes - start_bytes + planned >= *max {
                                stop = true;
                                break;
                            }
                            match target() {
                                Some(t) => t,
                                None => {
                                    stop = true;
                                    break;
                                }
                            }
                        }
                        None => match self.store.target_pool(pool).await {
                            Some(t) => t,
                            None => {
                                progress.error = Some("no other pool takes objects".into());
                                return Ok(false);
                            }
                        },
                    };
                    targets.push((key.clone(), to, *size));
                }
                let mut moves = futures::stream::iter(targets.into_iter().map(|(key, to, _)| {
                    let store = self.store.clone();
                    let (bucket, k) = (bucket.clone(), key.clone());
                    async move {
                        // A move started runs to its end on a task of its own: a walk that
                        // stops (a cancel, a lost leadership) drops this future, and a move
                        // dropped half-way would leave the key in both pools.
                        let r = tokio::spawn(
                            async move { store.move_key(&bucket, &k, pool, to).await },
                        )
                        .await
                        .unwrap_or_else(|e| {
                            Err(crate::object::ObjectError::Internal(e.to_string()))
                        });
                        (key, r)
                    }
                }))
                .buffered(self.concurrency() * 2);
                while let Some((key, r)) = moves.next().await {
                    match r {
                        Ok(out) => {
                            if out.versions > 0 {
                                progress.objects += 1;
                                progress.bytes += out.bytes;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(pool = pool + 1, bucket, key, error = %e, "key not moved");
                            progress.failed += 1;
                        }
                    }
                    progress.after = key;
                    self.set_worker(worker, "running", progress.objects, progress.failed);
                    self.pace().await;
                    if self.shutdown.is_cancelled() || !self.is_leader() {
                        return Ok(false);
                    }
                    if saved.elapsed() >= SAVE_EVERY {
                        saved = Instant::now();
                        if !self.save_progress(pool, limit.is_some(), progress).await {
                            return Ok(false);
                        }
                    }
                }
                if stop {
                    return Ok(false);
                }
                if page.len() < PAGE {
                    break;
                }
            }
        }
        Ok(true)
    }

    /// Save a running move's progress; `false` when it was canceled or stopped meanwhile.
    async fn save_progress(&self, pool: usize, rebalance: bool, progress: &Progress) -> bool {
        if !rebalance {
            return self
                .save_decommission(pool, progress, PoolState::Decommissioning)
                .await;
        }
        let mut p = progress.clone();
        p.updated = unix_now();
        self.change_record(|rec| match rec.rebalance.as_mut() {
            Some(r) if r.state == "running" => {
                r.from = Some(pool);
                r.progress = p;
                Ok(true)
            }
            _ => Ok(false),
        })
        .await
        .unwrap_or(true)
    }

    async fn rebalance(self: &Arc<Self>) {
        let Ok(rec) = self.pools_record().await else {
            return;
        };
        let Some(status) = rec.rebalance.clone() else {
            return;
        };
        let mut progress = status.progress.clone();
        let name = "rebalance";
        self.set_worker(name, "running", progress.objects, progress.failed);
        let active: Vec<usize> = (0..rec.pools.len())
            .filter(|&p| rec.pools[p].state == PoolState::Active)
            .collect();
        let (mut used, space) = match self.pool_fill(&active).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "rebalance cannot measure the pools");
                return;
            }
        };
        let goal = status.goal;
        let limit_of = |s: &PoolSpace| (goal * (1.0 + status.threshold) * s.total as f64) as u64;
        let floor_of = |s: &PoolSpace| (goal * s.total as f64) as u64;
        // Fullest first; resume with the pool it was emptying.
        let mut order: Vec<usize> = (0..active.len()).collect();
        order.sort_by(|a, b| {
            let fa = used[*a] as f64 / space[*a].total.max(1) as f64;
            let fb = used[*b] as f64 / space[*b].total.max(1) as f64;
            fb.total_cmp(&fa)
        });
        let mut finished = true;
        for i in order {
            let pool = active[i];
            if used[i] <= limit_of(&space[i]) {
                continue;
            }
            let excess = used[i].saturating_sub(floor_of(&space[i]));
            if status.from != Some(pool) {
                progress.bucket.clear();
                progress.after.clear();
            }
            // The emptiest pool below the goal takes each key.
            let targets: Vec<(usize, u64, u64)> = active
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, p)| (*p, used[j], floor_of(&space[j])))
                .collect();
            let moved_before = progress.bytes;
            let target = || -> Option<usize> {
                targets
                    .iter()
                    .filter(|(_, u, f)| u < f)
                    .min_by_key(|(_, u, f)| u.saturating_mul(1000) / (*f).max(1))
                    .map(|(p, _, _)| *p)
            };
            let _ = self.save_progress(pool, true, &progress).await;
            let done = self
                .move_out(pool, Some((excess, &target)), &mut progress, name)
                .await;
            let moved = progress.bytes - moved_before;
            used[i] = used[i].saturating_sub(moved);
            match done {
                Ok(true) => {}
                Ok(false) => {
                    // Limit reached, or stopped: which one the record says.
                    if self.shutdown.is_cancelled() || !self.is_leader() {
                        return;
                    }
                    match self.pools_record().await {
                        Ok(r) if r.rebalance.as_ref().is_some_and(|r| r.state == "running") => {}
                        _ => {
                            self.set_worker(name, "idle", progress.objects, progress.failed);
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(pool = pool + 1, error = %e, "rebalance walk failed");
                    finished = false;
                }
            }
            progress.bucket.clear();
            progress.after.clear();
        }
        progress.finished = Some(unix_now());
        progress.updated = unix_now();
        let _ = self
            .change_record(|rec| {
                if let Some(r) = rec.rebalance.as_mut().filter(|r| r.state == "running") {
                    r.state = if finished { "done" } else { "stopped" }.into();
                    r.from = None;
                    r.progress = progress.clone();
                }
                Ok(())
            })
            .await;
        tracing::info!(
            objects = progress.objects,
            bytes = progress.bytes,
            "pool rebalance finished"
        );
        self.set_worker(name, "idle", progress.objects, progress.failed);
    }
}
