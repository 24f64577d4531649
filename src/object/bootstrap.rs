//! Opening a store from drive directories: read every drive's format.json, match drives to
//! their slots by id, format fresh or replaced drives, and build the sets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::pools::{PoolEntry, PoolState, PoolsRecord, POOLS_DIR, POOLS_RECORD};
use super::{ErasureSet, Store};
use crate::drive::{
    Drive, DriveError, DriveStatus, LocalDrive, OfflineReason, Probe, TimedDrive, FORMAT_FILE,
};
use crate::placement::format::{resolve_in, Found};
use crate::placement::{FormatError, Resolution, SlotState};

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write format.json to {drive}: {source}")]
    WriteFormat { drive: String, source: DriveError },
    #[error("stopped while waiting for drives")]
    Stopped,
    #[error("the drive list has {given} drives but its pools add up to {pools}")]
    PoolSizes { given: usize, pools: usize },
    #[error("pool {arg:?} was removed from the server arguments but is not decommissioned: put it back (decommission it first to remove it)")]
    PoolRemoved { arg: String },
    #[error("the server arguments reorder the deployment's pools (recorded order: {recorded}): give the existing pools in their order, new pools after them")]
    PoolsReordered { recorded: String },
    #[error("pool {arg:?} has no formatted drive but is not a new pool at the end of the list (were its disks replaced or unmounted?)")]
    PoolUnknown { arg: String },
    #[error("pool {arg:?}: no drive answering is formatted and some do not answer")]
    PoolUnreachable { arg: String },
    #[error("the pools record cannot be read or written: {0}")]
    PoolsRecord(String),
}

#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Set size and parity of a deployment of one pool (`pools` empty).
    pub set_size: usize,
    pub parity: usize,
    /// The server pools, in argument order: the drives given are theirs, pool after pool.
    pub pools: Vec<PoolSpec>,
}

/// One server pool's shape.
#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub drives: usize,
    pub set_size: usize,
    pub parity: usize,
    /// The argument it was given as (kept in the pools record, shown by `admin info`).
    pub arg: String,
}

impl OpenOptions {
    fn specs(&self, drives: usize) -> Vec<PoolSpec> {
        if self.pools.is_empty() {
            vec![PoolSpec {
                drives,
                set_size: self.set_size,
                parity: self.parity,
                arg: String::new(),
            }]
        } else {
            self.pools.clone()
        }
    }
}

pub use crate::drive::HEALING_FILE;

/// Open a store over local drive directories given in any order.
pub async fn open_local(paths: &[PathBuf], opts: &OpenOptions) -> Result<Store, OpenError> {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut drives: Vec<Option<Arc<dyn Drive>>> = Vec::with_capacity(paths.len());
    for p in paths {
        let local: Arc<dyn Drive> = Arc::new(LocalDrive::open(p.clone()));
        drives.push(Some(Arc::new(TimedDrive::new(local))));
    }
    open_drives(drives, &names, opts).await
}

/// Open a store over already-constructed drives (tests wrap them in fault injectors).
pub async fn open_drives(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &OpenOptions,
) -> Result<Store, OpenError> {
    let specs = opts.specs(drives.len());
    let views = pool_views(&specs, drives.len())?;
    let (found, probes) = read_formats(&drives).await;
    let plan = plan_pools(&specs, &views, &drives, names, &found).await?;
    let mut resolutions = Vec::with_capacity(specs.len());
    let mut deployment = plan.deployment;
    for (p, spec) in specs.iter().enumerate() {
        let (res, _) = resolve_pool(
            views[p].clone(),
            &found,
            &probes,
            &drives,
            names,
            (spec.drives / spec.set_size, spec.set_size),
            &mut deployment,
            true,
        )
        .await?;
        resolutions.push(res);
    }
    assemble_pools(
        drives,
        names,
        &specs,
        &views,
        resolutions,
        &found,
        &probes,
        plan,
    )
    .await
}

/// Each pool's range of the drive list.
fn pool_views(specs: &[PoolSpec], drives: usize) -> Result<Vec<std::ops::Range<usize>>, OpenError> {
    let mut views = Vec::with_capacity(specs.len());
    let mut start = 0;
    for s in specs {
        views.push(start..start + s.drives);
        start += s.drives;
    }
    if start != drives {
        return Err(OpenError::PoolSizes {
            given: drives,
            pools: start,
        });
    }
    Ok(views)
}

/// What the pools record and the formats say about the pools given.
struct PoolPlan {
    /// The deployment's id when some pool is formatted.
    deployment: Option<uuid::Uuid>,
    /// The record to keep (the given pools, in order, with their states), and the stamp
    /// of the copy it was made from.
    record: PoolsRecord,
    stamp: i64,
    /// True when pools were added or removed: the record is written and the system
    /// records healed onto every drive.
    changed: bool,
}

/// Check the pools given against the deployment's pools record: an existing pool may be
/// left out only once decommissioned, existing pools keep their order, new (unformatted)
/// pools come after them.
async fn plan_pools(
    specs: &[PoolSpec],
    views: &[std::ops::Range<usize>],
    drives: &[Option<Arc<dyn Drive>>],
    names: &[String],
    found: &[Found],
) -> Result<PoolPlan, OpenError> {
    // Each formatted pool's id (its layout's first drive id) and the deployment id.
    let mut ids: Vec<Option<uuid::Uuid>> = Vec::with_capacity(specs.len());
    let mut deployment = None;
    for (p, spec) in specs.iter().enumerate() {
        let r = views[p].clone();
        let formatted = found[r.clone()]
            .iter()
            .any(|f| matches!(f, Found::Formatted(_)));
        if !formatted {
            // No drive says what the pool is: in an existing deployment, a new pool only if
            // every drive answered.
            let existing = found.iter().any(|f| matches!(f, Found::Formatted(_)));
            if existing && found[r.clone()].iter().any(|f| matches!(f, Found::Offline)) {
                return Err(OpenError::PoolUnreachable {
                    arg: spec.arg.clone(),
                });
            }
            ids.push(None);
            continue;
        }
        let res = resolve_in(
            &found[r.clone()],
            &names[r.clone()],
            spec.drives / spec.set_size,
            spec.set_size,
            deployment,
        )?;
        deployment = Some(res.format.deployment_id);
        ids.push(res.format.sets.first().and_then(|s| s.first()).copied());
    }
    let entry = |p: usize, id: uuid::Uuid| PoolEntry {
        id,
        arg: specs[p].arg.clone(),
        sets: specs[p].drives / specs[p].set_size,
        set_size: specs[p].set_size,
        state: PoolState::Active,
        decommission: None,
    };
    if deployment.is_none() {
        // A fresh deployment: ids are known once formatted.
        return Ok(PoolPlan {
            deployment: None,
            record: PoolsRecord::default(),
            stamp: 0,
            changed: true,
        });
    }
    let formatted: Vec<Option<Arc<dyn Drive>>> = views
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_some())
        .flat_map(|(r, _)| drives[r.clone()].iter().cloned())
        .collect();
    let stored = match crate::records::Records::new(formatted.clone(), POOLS_DIR)
        .read::<PoolsRecord>(POOLS_RECORD)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // A first format cut short leaves too few drives to read the record from; while
            // no drive holds a bucket nothing can be lost by going on without it.
            let mut empty = true;
            for d in formatted.iter().flatten() {
                if d.list_buckets().await.is_ok_and(|b| !b.is_empty()) {
                    empty = false;
                }
            }
            if !empty {
                return Err(OpenError::PoolsRecord(e.to_string()));
            }
            None
        }
    };
    let (recorded, stamp) = match stored {
        Some(crate::records::Stamped {
            value: Some(v),
            stamp,
            ..
        }) => (v, stamp),
        // Before pools were recorded: the formatted pools, in the order given.
        _ => {
            let pools = ids
                .iter()
                .enumerate()
                .filter_map(|(p, id)| id.map(|id| entry(p, id)))
                .collect();
            (
                PoolsRecord {
                    pools,
                    rebalance: None,
                },
                0,
            )
        }
    };
    // Recorded pools left out must be decommissioned; the rest keep their order.
    let mut next = 0;
    let mut out = PoolsRecord {
        pools: Vec::new(),
        rebalance: recorded.rebalance.clone(),
    };
    let mut changed = false;
    let mut new_seen = false;
    for (p, id) in ids.iter().enumerate() {
        match id {
            Some(id) => {
                if new_seen {
                    return Err(OpenError::PoolsReordered {
                        recorded: order(&recorded),
                    });
                }
                let Some(at) = recorded.pools.iter().position(|e| e.id == *id) else {
                    return Err(OpenError::PoolUnknown {
                        arg: specs[p].arg.clone(),
                    });
                };
                if at < next {
                    return Err(OpenError::PoolsReordered {
                        recorded: order(&recorded),
                    });
                }
                for skipped in &recorded.pools[next..at] {
                    if ids.contains(&Some(skipped.id)) {
                        return Err(OpenError::PoolsReordered {
                            recorded: order(&recorded),
                        });
                    }
                    if skipped.state != PoolState::Decommissioned {
                        return Err(OpenError::PoolRemoved {
                            arg: skipped.arg.clone(),
                        });
                    }
                    changed = true;
                }
                next = at + 1;
                let mut e = recorded.pools[at].clone();
                e.arg = specs[p].arg.clone();
                out.pools.push(e);
            }
            None => {
                new_seen = true;
                changed = true;
                // Its id is known once formatted.
                out.pools.push(entry(p, uuid::Uuid::nil()));
            }
        }
    }
    for skipped in &recorded.pools[next..] {
        if skipped.state != PoolState::Decommissioned {
            return Err(OpenError::PoolRemoved {
                arg: skipped.arg.clone(),
            });
        }
        changed = true;
    }
    Ok(PoolPlan {
        deployment,
        record: out,
        stamp,
        changed,
    })
}

fn order(rec: &PoolsRecord) -> String {
    rec.pools
        .iter()
        .map(|p| format!("{:?}", p.arg))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Format what each pool's resolution says to format, build every pool's sets, and
/// record the pools.
#[allow(clippy::too_many_arguments)]
async fn assemble_pools(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    specs: &[PoolSpec],
    views: &[std::ops::Range<usize>],
    resolutions: Vec<Resolution>,
    found: &[Found],
    probes: &[Option<Probe>],
    mut plan: PoolPlan,
) -> Result<Store, OpenError> {
    let mut sets = Vec::new();
    let mut pools = Vec::new();
    let mut deployment = plan.deployment;
    for (p, res) in resolutions.into_iter().enumerate() {
        let r = views[p].clone();
        let spec = &specs[p];
        let (pool_sets, format) = assemble(
            drives[r.clone()].to_vec(),
            &names[r.clone()],
            spec,
            res,
            &found[r.clone()],
            &probes[r.clone()],
            (p, sets.len()),
        )
        .await?;
        deployment.get_or_insert(format.deployment_id);
        let id = format
            .sets
            .first()
            .and_then(|s| s.first())
            .copied()
            .unwrap_or_default();
        if plan.record.pools.len() <= p {
            plan.record.pools.push(PoolEntry {
                id,
                arg: spec.arg.clone(),
                sets: pool_sets.len(),
                set_size: spec.set_size,
                state: PoolState::Active,
                decommission: None,
            });
        } else if plan.record.pools[p].id.is_nil() {
            plan.record.pools[p].id = id;
        }
        pools.push(super::Pool {
            index: p,
            id,
            sets: sets.len()..sets.len() + pool_sets.len(),
            first_slot: r.start,
            format: Some(format),
        });
        sets.extend(pool_sets);
    }
    let mut store = Store::new(deployment.unwrap_or_default(), sets);
    let states = plan.record.pools.iter().map(|e| e.state).collect();
    store.pools = pools;
    store.set_pool_states(states);
    if plan.changed {
        store.pools_changed = true;
        store
            .save_pools_record(&plan.record, plan.stamp)
            .await
            .map_err(|e| OpenError::PoolsRecord(e.to_string()))?;
    } else if plan.stamp == 0 {
        // A deployment from before pools were recorded: record them (any node may).
        if let Err(e) = store.save_pools_record(&plan.record, 0).await {
            tracing::warn!(error = %e, "the pools record is not written yet");
        }
    }
    Ok(store)
}

/// Sets without a read quorum of formatted drives.
fn short_sets(res: &Resolution, opts: &PoolSpec) -> Vec<usize> {
    let data = opts.set_size - opts.parity;
    (0..res.slots.len() / opts.set_size)
        .filter(|s| {
            let ready = res.slots[s * opts.set_size..(s + 1) * opts.set_size]
                .iter()
                .filter(|st| matches!(st, SlotState::Ready { .. }))
                .count();
            ready < data.max(1)
        })
        .collect()
}

/// A first format cut short by a crash leaves some drives formatted and the rest not (their
/// roots perhaps not even created), perhaps too few formatted for a quorum. While no drive
/// holds a bucket, finishing it loses nothing: every unformatted drive takes its own
/// argument's slot (a first format gives slot `i` to argument `i`) — provided it sits where
/// the format recorded it: a drive recorded on a mount point must be on that mount still.
/// `None` when this is not such a deployment.
async fn finish_first_format(
    res: &Resolution,
    found: &[Found],
    probes: &[Option<Probe>],
    drives: &[Option<Arc<dyn Drive>>],
) -> Option<Resolution> {
    let ids: Vec<uuid::Uuid> = res.format.sets.iter().flatten().copied().collect();
    let mut slots = Vec::with_capacity(res.slots.len());
    for (slot, st) in res.slots.iter().enumerate() {
        match st {
            SlotState::Ready { arg } if *arg == slot => slots.push(st.clone()),
            SlotState::Missing
                if matches!(found.get(slot), Some(Found::Empty { .. } | Found::Absent)) =>
            {
                if let Some(rec) = res.format.mounts.get(ids.get(slot)?) {
                    let now = probes.get(slot)?.as_ref().and_then(|p| p.mount.as_ref());
                    let same = now.is_some_and(|m| {
                        m.mount_point && (rec.fs_uuid.is_none() || rec.fs_uuid == m.fs_uuid)
                    });
                    if rec.mount_point && !same {
                        return None;
                    }
                }
                slots.push(SlotState::Replaced { arg: slot });
            }
            _ => return None,
        }
    }
    for (slot, st) in slots.iter().enumerate() {
        if matches!(st, SlotState::Ready { .. }) {
            match drives.get(slot)?.as_ref()?.list_buckets().await {
                Ok(b) if b.is_empty() => {}
                _ => return None,
            }
        }
    }
    tracing::warn!("finishing a first format that was cut short (no drive holds data yet)");
    Some(Resolution {
        format: res.format.clone(),
        slots,
        fresh: true,
    })
}

/// What every drive holds: its format, or why it has none.
/// Match one pool's drives (`r`) to a layout of `sets` x `set_size` under the deployment id
/// found so far (taking the pool's id when there was none); when `finish` and some of its
/// drives are still unformatted, finish a first format cut short. Returns the resolution and
/// whether it was finished just now.
#[allow(clippy::too_many_arguments)]
async fn resolve_pool(
    r: std::ops::Range<usize>,
    found: &[Found],
    probes: &[Option<Probe>],
    drives: &[Option<Arc<dyn Drive>>],
    names: &[String],
    (sets, set_size): (usize, usize),
    deployment: &mut Option<uuid::Uuid>,
    finish: bool,
) -> Result<(Resolution, bool), OpenError> {
    let res = resolve_in(
        &found[r.clone()],
        &names[r.clone()],
        sets,
        set_size,
        *deployment,
    )?;
    *deployment = Some(res.format.deployment_id);
    if finish && res.slots.contains(&SlotState::Missing) {
        if let Some(finished) =
            finish_first_format(&res, &found[r.clone()], &probes[r.clone()], &drives[r]).await
        {
            return Ok((finished, true));
        }
    }
    Ok((res, false))
}

async fn read_formats(drives: &[Option<Arc<dyn Drive>>]) -> (Vec<Found>, Vec<Option<Probe>>) {
    futures::future::join_all(drives.iter().map(|d| async move {
        let Some(d) = d else {
            return (Found::Offline, None);
        };
        let probe = match d.probe().await {
            Ok(p) => p,
            Err(_) => return (Found::Offline, None),
        };
        let found = match &probe.status {
            DriveStatus::Online => match d.read_sys(FORMAT_FILE).await {
                Ok(b) => Found::Formatted(b.to_vec()),
                Err(_) => Found::Offline,
            },
            DriveStatus::Unformatted => Found::Empty {
                fresh_disk: probe.is_fresh_disk(),
            },
            DriveStatus::Offline(OfflineReason::RootMissing) => Found::Absent,
            DriveStatus::Offline(reason) => {
                tracing::warn!(drive = d.name(), %reason, "drive offline");
                Found::Offline
            }
        };
        (found, Some(probe))
    }))
    .await
    .into_iter()
    .unzip()
}

/// A drive's mount record for format.json, when its root is a mount point.
fn mount_of(probe: Option<&Probe>) -> Option<crate::drive::MountRecord> {
    probe
        .and_then(|p| p.mount.clone())
        .filter(|m| m.mount_point)
}

/// Format the local drives of one pool the resolution says to format, and build its sets
/// (`at`: the pool's index and the index its first set takes).
async fn assemble(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &PoolSpec,
    mut res: Resolution,
    found: &[Found],
    probes: &[Option<Probe>],
    at: (usize, usize),
) -> Result<(Vec<ErasureSet>, crate::placement::Format), OpenError> {
    let ids: Vec<uuid::Uuid> = res.format.sets.iter().flatten().copied().collect();
    if res.fresh {
        for (slot, id) in ids.iter().enumerate() {
            if let Some(m) = mount_of(probes.get(slot).and_then(Option::as_ref)) {
                res.format.mounts.insert(*id, m);
            }
        }
    }
    for (slot, state) in res.slots.iter().enumerate() {
        if let SlotState::Replaced { arg } = state {
            let Some(d) = &drives[*arg] else { continue };
            // Another node's empty drive is formatted by that node (or, for a fresh
            // deployment, by the first node, which formats every drive).
            if !d.is_local() && !res.fresh {
                continue;
            }
            let mut fmt = res.format.for_slot(slot);
            match mount_of(probes.get(*arg).and_then(Option::as_ref)) {
                Some(m) => fmt.mounts.insert(ids[slot], m),
                None => fmt.mounts.remove(&ids[slot]),
            };
            let marker = (!res.fresh).then(|| {
                tracing::warn!(drive = %names[*arg], slot, "empty disk in a known slot: formatting it for healing");
                Bytes::from(format!("{{\"slot\":{slot}}}"))
            });
            d.format(Bytes::from(fmt.encode()), marker, res.fresh)
                .await
                .map_err(|source| OpenError::WriteFormat {
                    drive: names[*arg].clone(),
                    source,
                })?;
        }
    }
    // Drives that hold no slot yet (offline, or unformatted and waiting for an operator)
    // take the slots nobody claimed — their own argument's; unformatted ones then any left,
    // in argument order — so that each serves again once it is back, or can be replaced
    // where it stands.
    let claimed: std::collections::HashSet<usize> = res
        .slots
        .iter()
        .filter_map(|s| match s {
            SlotState::Ready { arg } | SlotState::Replaced { arg } => Some(*arg),
            SlotState::Missing => None,
        })
        .collect();
    let waiting = |arg: usize| {
        !claimed.contains(&arg)
            && drives.get(arg).is_some_and(Option::is_some)
            && matches!(
                found.get(arg),
                Some(Found::Offline | Found::Absent | Found::Empty { .. })
            )
    };
    let mut placed: Vec<Option<usize>> = vec![None; res.slots.len()];
    let mut used = std::collections::HashSet::new();
    for (slot, st) in res.slots.iter().enumerate() {
        if *st == SlotState::Missing && waiting(slot) {
            placed[slot] = Some(slot);
            used.insert(slot);
        }
    }
    // Only drives without a format move: an offline one may hold another slot's shards.
    let mut rest = (0..drives.len()).filter(|a| {
        waiting(*a) && !used.contains(a) && !matches!(found.get(*a), Some(Found::Offline))
    });
    for (slot, st) in res.slots.iter().enumerate() {
        if *st == SlotState::Missing && placed[slot].is_none() {
            placed[slot] = rest.next();
        }
    }
    let sets = drives.len() / opts.set_size;
    let sets = (0..sets)
        .map(|s| ErasureSet {
            index: at.1 + s,
            pool: at.0,
            drives: (0..opts.set_size)
                .map(|p| {
                    let slot = s * opts.set_size + p;
                    match res.slots[slot] {
                        SlotState::Ready { arg } | SlotState::Replaced { arg } => {
                            drives[arg].clone()
                        }
                        SlotState::Missing => placed[slot].and_then(|arg| drives[arg].clone()),
                    }
                })
                .collect(),
            parity: opts.parity,
        })
        .collect();
    Ok((sets, res.format))
}

/// Open a distributed store: `drives` are this node's and the other nodes' drives in
/// endpoint order. Waits — logging who is missing — until the deployment can be opened:
/// a fresh deployment (or a new pool) is formatted by the node with `formatter` set once
/// every one of its drives answers; an existing pool opens once every set has a read
/// quorum of formatted drives.
pub async fn open_cluster(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &OpenOptions,
    formatter: bool,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Store, OpenError> {
    let specs = opts.specs(drives.len());
    let views = pool_views(&specs, drives.len())?;
    let mut last_log: Option<std::time::Instant> = None;
    let mut empty_rounds = 0;
    let mut log = |msg: String| {
        if last_log.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(5)) {
            tracing::warn!("{msg}");
            eprintln!("{msg}");
            last_log = Some(std::time::Instant::now());
        }
    };
    loop {
        if stop.is_cancelled() {
            return Err(OpenError::Stopped);
        }
        let (found, probes) = read_formats(&drives).await;
        let offline_in = |r: &std::ops::Range<usize>| -> Vec<&str> {
            found[r.clone()]
                .iter()
                .zip(&names[r.clone()])
                .filter(|(f, _)| matches!(f, Found::Offline))
                .map(|(_, n)| n.as_str())
                .collect()
        };
        let plan = match plan_pools(&specs, &views, &drives, names, &found).await {
            Ok(p) => p,
            // Drives still being formatted by the first node, or not enough answering, or a
            // pool the first node formatted just now and has not recorded yet.
            Err(
                e @ (OpenError::PoolsRecord(_)
                | OpenError::PoolUnknown { .. }
                | OpenError::PoolUnreachable { .. }),
            ) => {
                log(format!("waiting for drives: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut deployment = plan.deployment;
        let mut ready: Vec<Resolution> = Vec::with_capacity(specs.len());
        let mut waiting: Option<String> = None;
        let mut replaced_any = false;
        for (p, spec) in specs.iter().enumerate() {
            let r = views[p].clone();
            let offline = offline_in(&r);
            let formatted = found[r.clone()]
                .iter()
                .any(|f| matches!(f, Found::Formatted(_)));
            let sets = spec.drives / spec.set_size;
            let what = if specs.len() > 1 {
                format!("pool {} ({})", p + 1, spec.arg)
            } else {
                "fresh deployment".to_string()
            };
            if !formatted {
                if formatter && offline.is_empty() {
                    let (res, _) = resolve_pool(
                        r.clone(),
                        &found,
                        &probes,
                        &drives,
                        names,
                        (sets, spec.set_size),
                        &mut deployment,
                        false,
                    )
                    .await?;
                    ready.push(res);
                    continue;
                }
                waiting.get_or_insert_with(|| {
                    if offline.is_empty() {
                        format!("{what}: waiting for the first node to format the drives")
                    } else {
                        format!(
                            "{what}: waiting for {} of {} drives: {}",
                            offline.len(),
                            r.len(),
                            offline.join(", ")
                        )
                    }
                });
                continue;
            }
            let (res, finished) = resolve_pool(
                r.clone(),
                &found,
                &probes,
                &drives,
                names,
                (sets, spec.set_size),
                &mut deployment,
                formatter,
            )
            .await?;
            if finished {
                ready.push(res);
                continue;
            }
            let short = short_sets(&res, spec);
            if !short.is_empty() {
                waiting.get_or_insert_with(|| {
                    format!(
                        "waiting for drives: {}set(s) {short:?} lack a read quorum; offline: {}",
                        if specs.len() > 1 {
                            format!("pool {} ", p + 1)
                        } else {
                            String::new()
                        },
                        offline.join(", ")
                    )
                });
                continue;
            }
            replaced_any |= res
                .slots
                .iter()
                .any(|s| matches!(s, SlotState::Replaced { .. }));
            if !offline.is_empty() {
                tracing::warn!(offline = %offline.join(", "), "starting without some drives");
            }
            ready.push(res);
        }
        if let Some(msg) = waiting {
            log(msg);
        } else if !replaced_any || empty_rounds >= 3 {
            if deployment.is_some() && plan.deployment.is_none() {
                tracing::info!("fresh deployment: formatted every drive");
            }
            return assemble_pools(drives, names, &specs, &views, ready, &found, &probes, plan)
                .await;
        } else {
            // Empty drives beside formatted ones: the first node may be formatting right
            // now. Only if they stay empty are they replacements.
            empty_rounds += 1;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
}
