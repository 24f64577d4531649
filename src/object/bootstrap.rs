//! Opening a store from drive directories: read every drive's format.json, match drives to
//! their slots by id, format fresh or replaced drives, and build the sets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::{ErasureSet, Store};
use crate::drive::{
    Drive, DriveError, DriveStatus, LocalDrive, OfflineReason, Probe, TimedDrive, FORMAT_FILE,
};
use crate::placement::format::{resolve, Found};
use crate::placement::{FormatError, Resolution, SlotState};

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write format.json to {drive}: {source}")]
    WriteFormat { drive: String, source: DriveError },
    #[error("stopped while waiting for drives")]
    Stopped,
}

#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub set_size: usize,
    pub parity: usize,
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
    let (found, probes) = read_formats(&drives).await;
    let sets = drives.len() / opts.set_size;
    let mut res = resolve(&found, names, sets, opts.set_size)?;
    if res.slots.contains(&SlotState::Missing) {
        if let Some(finished) = finish_first_format(&res, &found, &probes, &drives).await {
            res = finished;
        }
    }
    assemble(drives, names, opts, res, &found, &probes).await
}

/// Sets without a read quorum of formatted drives.
fn short_sets(res: &Resolution, opts: &OpenOptions) -> Vec<usize> {
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

/// Format the local drives the resolution says to format, and build the sets.
async fn assemble(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &OpenOptions,
    mut res: Resolution,
    found: &[Found],
    probes: &[Option<Probe>],
) -> Result<Store, OpenError> {
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
            index: s,
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
    Ok(Store::new(res.format.deployment_id, sets).with_format(res.format))
}

/// Open a distributed store: `drives` are this node's and the other nodes' drives in
/// endpoint order. Waits — logging who is missing — until the deployment can be opened:
/// a fresh one is formatted by the node with `formatter` set once every drive answers;
/// an existing one opens once every set has a read quorum of formatted drives.
pub async fn open_cluster(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &OpenOptions,
    formatter: bool,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Store, OpenError> {
    let sets = drives.len() / opts.set_size;
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
        let offline: Vec<&str> = found
            .iter()
            .zip(names)
            .filter(|(f, _)| matches!(f, Found::Offline))
            .map(|(_, n)| n.as_str())
            .collect();
        let formatted = found.iter().any(|f| matches!(f, Found::Formatted(_)));
        if !formatted {
            if formatter && offline.is_empty() {
                let res = resolve(&found, names, sets, opts.set_size)?;
                tracing::info!("fresh deployment: formatted every drive");
                return assemble(drives, names, opts, res, &found, &probes).await;
            }
            if offline.is_empty() {
                log("fresh deployment: waiting for the first node to format the drives".into());
            } else {
                log(format!(
                    "fresh deployment: waiting for {} of {} drives: {}",
                    offline.len(),
                    names.len(),
                    offline.join(", ")
                ));
            }
        } else {
            let res = resolve(&found, names, sets, opts.set_size)?;
            let short = short_sets(&res, opts);
            if formatter && res.slots.contains(&SlotState::Missing) {
                if let Some(res) = finish_first_format(&res, &found, &probes, &drives).await {
                    return assemble(drives, names, opts, res, &found, &probes).await;
                }
            }
            let replaced = res
                .slots
                .iter()
                .any(|s| matches!(s, SlotState::Replaced { .. }));
            if short.is_empty() && (!replaced || empty_rounds >= 3) {
                if !offline.is_empty() {
                    tracing::warn!(offline = %offline.join(", "), "starting without some drives");
                }
                return assemble(drives, names, opts, res, &found, &probes).await;
            }
            if short.is_empty() {
                // Empty drives beside formatted ones: the first node may be formatting
                // right now. Only if they stay empty are they replacements.
                empty_rounds += 1;
            } else {
                log(format!(
                    "waiting for drives: set(s) {short:?} lack a read quorum; offline: {}",
                    offline.join(", ")
                ));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => {}
        }
    }
}
