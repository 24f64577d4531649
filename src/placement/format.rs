//! `format.json`: written once to every drive, it names the deployment, the drive, and the
//! whole layout (which drive id sits in which set and position). On restart it lets drives
//! be found wherever they are mounted now, refuses foreign drives and spots replaced ones.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub version: u32,
    /// Always `"cairn"`: tells a Cairn drive from anything else with a format.json.
    pub format: String,
    pub deployment_id: Uuid,
    /// The id of the drive holding this copy.
    pub drive_id: Uuid,
    /// `sets[s][p]` is the drive id at set `s`, position `p`.
    pub sets: Vec<Vec<Uuid>>,
    /// Where the roots of drives that were mount points sat when each was formatted, by
    /// drive id (absent: a plain folder). A drive whose root is no longer that mount point
    /// is offline, never formatted or healed onto.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mounts: std::collections::BTreeMap<Uuid, crate::drive::MountRecord>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("drive {drive} belongs to another deployment ({found}, expected {expected})")]
    Foreign {
        drive: String,
        found: Uuid,
        expected: Uuid,
    },
    #[error("drive {drive} has an unreadable format.json: {reason}")]
    Corrupt { drive: String, reason: String },
    #[error("drive {drive} has id {id}, which is not part of this deployment's layout")]
    UnknownDrive { drive: String, id: Uuid },
    #[error("drives {a} and {b} both claim drive id {id}")]
    DuplicateId { a: String, b: String, id: Uuid },
    #[error("the deployment was formatted as {found_sets} sets x {found_size} drives, but the arguments give {sets} x {size}")]
    LayoutChanged {
        found_sets: usize,
        found_size: usize,
        sets: usize,
        size: usize,
    },
    #[error("fresh deployment but only {online} of {total} drives are reachable; all are needed to format")]
    NotAllOnline { online: usize, total: usize },
}

impl Format {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Format, String> {
        let f: Format = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if f.format != "cairn" {
            return Err(format!("format is {:?}, not \"cairn\"", f.format));
        }
        if f.version != FORMAT_VERSION {
            return Err(format!("unsupported format version {}", f.version));
        }
        Ok(f)
    }

    /// A fresh layout of `sets` x `size` with new ids; `drive_id` is the one of slot (0, 0).
    pub fn fresh(sets: usize, size: usize) -> Format {
        let layout: Vec<Vec<Uuid>> = (0..sets)
            .map(|_| (0..size).map(|_| Uuid::new_v4()).collect())
            .collect();
        Format {
            version: FORMAT_VERSION,
            format: "cairn".into(),
            deployment_id: Uuid::new_v4(),
            drive_id: layout[0][0],
            sets: layout,
            mounts: Default::default(),
        }
    }

    /// The copy of this format for the drive at `slot` (flat index set * size + position).
    pub fn for_slot(&self, slot: usize) -> Format {
        let size = self.sets.first().map_or(1, Vec::len);
        Format {
            drive_id: self.sets[slot / size][slot % size],
            ..self.clone()
        }
    }
}

/// What a drive argument holds when the server starts.
#[derive(Debug, Clone)]
pub enum Found {
    /// The drive answered with this format.json.
    Formatted(Vec<u8>),
    /// The drive is reachable and has no format.json. `fresh_disk`: its root is an empty
    /// mount point, which may take a known slot (a swapped disk); any other unformatted
    /// drive takes one only in a fresh deployment.
    Empty { fresh_disk: bool },
    /// The drive's root does not exist: formatted (and created) only in a fresh deployment.
    Absent,
    /// The drive is not reachable, or offline for a reason of its own.
    Offline,
}

/// Where each slot's drive is after matching formats to the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Slot `slot` is served by argument `arg`, formatted.
    Ready { arg: usize },
    /// Slot is served by argument `arg`, an empty drive to format into it and heal.
    Replaced { arg: usize },
    /// No drive answered for this slot.
    Missing,
}

#[derive(Debug, Clone)]
pub struct Resolution {
    /// The deployment's format (drive_id of slot 0).
    pub format: Format,
    /// One entry per slot (set * size + position).
    pub slots: Vec<SlotState>,
    /// True when the deployment was created just now.
    pub fresh: bool,
}

/// Match what the drives hold to a layout of `sets` x `size` drives. `names` label errors.
pub fn resolve(
    found: &[Found],
    names: &[String],
    sets: usize,
    size: usize,
) -> Result<Resolution, FormatError> {
    resolve_in(found, names, sets, size, None)
}

/// [`resolve`] for one pool of a deployment whose id is `deployment` when known (another
/// pool is formatted already): a fresh pool takes that id, a formatted one must have it.
pub fn resolve_in(
    found: &[Found],
    names: &[String],
    sets: usize,
    size: usize,
    deployment: Option<Uuid>,
) -> Result<Resolution, FormatError> {
    let mut formats: Vec<(usize, Format)> = Vec::new();
    for (arg, f) in found.iter().enumerate() {
        if let Found::Formatted(bytes) = f {
            let fmt = Format::decode(bytes).map_err(|reason| FormatError::Corrupt {
                drive: names[arg].clone(),
                reason,
            })?;
            formats.push((arg, fmt));
        }
    }
    if formats.is_empty() {
        let online = found
            .iter()
            .filter(|f| matches!(f, Found::Empty { .. } | Found::Absent))
            .count();
        if online < found.len() {
            return Err(FormatError::NotAllOnline {
                online,
                total: found.len(),
            });
        }
        let mut format = Format::fresh(sets, size);
        if let Some(id) = deployment {
            format.deployment_id = id;
        }
        return Ok(Resolution {
            format,
            slots: (0..found.len())
                .map(|arg| SlotState::Replaced { arg })
                .collect(),
            fresh: true,
        });
    }
    // The deployment most drives agree on is the reference; any other is foreign.
    let mut counts: Vec<(Uuid, usize)> = Vec::new();
    for (_, f) in &formats {
        match counts.iter_mut().find(|(id, _)| *id == f.deployment_id) {
            Some((_, c)) => *c += 1,
            None => counts.push((f.deployment_id, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    let expected = deployment.unwrap_or(counts[0].0);
    if let Some((arg, f)) = formats.iter().find(|(_, f)| f.deployment_id != expected) {
        return Err(FormatError::Foreign {
            drive: names[*arg].clone(),
            found: f.deployment_id,
            expected,
        });
    }
    let reference = formats
        .iter()
        .find(|(_, f)| f.deployment_id == expected)
        .map(|(_, f)| f.clone())
        .ok_or(FormatError::NotAllOnline {
            online: 0,
            total: found.len(),
        })?;
    let found_size = reference.sets.first().map_or(0, Vec::len);
    if reference.sets.len() != sets || found_size != size {
        return Err(FormatError::LayoutChanged {
            found_sets: reference.sets.len(),
            found_size,
            sets,
            size,
        });
    }
    let ids: Vec<Uuid> = reference.sets.iter().flatten().copied().collect();
    let mut slots = vec![SlotState::Missing; ids.len()];
    for (arg, f) in &formats {
        let slot = ids.iter().position(|id| *id == f.drive_id).ok_or_else(|| {
            FormatError::UnknownDrive {
                drive: names[*arg].clone(),
                id: f.drive_id,
            }
        })?;
        if let SlotState::Ready { arg: other } = slots[slot] {
            return Err(FormatError::DuplicateId {
                a: names[other].clone(),
                b: names[*arg].clone(),
                id: f.drive_id,
            });
        }
        slots[slot] = SlotState::Ready { arg: *arg };
    }
    // Freshly swapped disks take the unclaimed slots, in argument order; any other
    // unformatted drive waits for an operator (`cairn admin drive replace`).
    let mut empties = found
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Found::Empty { fresh_disk: true }))
        .map(|(arg, _)| arg);
    for slot in slots.iter_mut() {
        if *slot == SlotState::Missing {
            match empties.next() {
                Some(arg) => *slot = SlotState::Replaced { arg },
                None => break,
            }
        }
    }
    Ok(Resolution {
        format: reference,
        slots,
        fresh: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/d{i}")).collect()
    }

    #[test]
    fn fresh_then_reordered_then_replaced() {
        let fresh = [
            Found::Empty { fresh_disk: false },
            Found::Absent,
            Found::Empty { fresh_disk: true },
            Found::Empty { fresh_disk: false },
        ];
        let r = resolve(&fresh, &names(4), 1, 4).expect("fresh");
        assert!(r.fresh);
        let copies: Vec<Vec<u8>> = (0..4).map(|s| r.format.for_slot(s).encode()).collect();
        // Drives come back in reverse order: each is found by id.
        let found: Vec<Found> = copies.iter().rev().cloned().map(Found::Formatted).collect();
        let r2 = resolve(&found, &names(4), 1, 4).expect("reordered");
        assert_eq!(r2.slots[0], SlotState::Ready { arg: 3 });
        assert_eq!(r2.slots[3], SlotState::Ready { arg: 0 });
        // Drive of slot 2 replaced by an empty disk, another offline.
        let found = vec![
            Found::Formatted(copies[0].clone()),
            Found::Formatted(copies[1].clone()),
            Found::Empty { fresh_disk: true },
            Found::Offline,
        ];
        let r3 = resolve(&found, &names(4), 1, 4).expect("replaced");
        assert_eq!(r3.slots[2], SlotState::Replaced { arg: 2 });
        assert_eq!(r3.slots[3], SlotState::Missing);
        // An empty folder that is no mount point, or a missing root, in a formatted
        // deployment is no replacement: it could be a disk that failed to mount.
        for not_a_disk in [Found::Empty { fresh_disk: false }, Found::Absent] {
            let found = vec![
                Found::Formatted(copies[0].clone()),
                Found::Formatted(copies[1].clone()),
                not_a_disk,
                Found::Formatted(copies[3].clone()),
            ];
            let r4 = resolve(&found, &names(4), 1, 4).expect("resolved");
            assert_eq!(r4.slots[2], SlotState::Missing);
        }
    }

    #[test]
    fn foreign_and_changed_layouts_are_refused() {
        let a = Format::fresh(1, 2);
        let b = Format::fresh(1, 2);
        let found = vec![
            Found::Formatted(a.for_slot(0).encode()),
            Found::Formatted(a.for_slot(1).encode()),
            Found::Formatted(b.for_slot(0).encode()),
        ];
        let err = resolve(&found, &names(3), 1, 3).expect_err("foreign");
        assert!(
            matches!(err, FormatError::Foreign { ref drive, .. } if drive == "/d2"),
            "{err}"
        );
        let found = vec![
            Found::Formatted(a.for_slot(0).encode()),
            Found::Empty { fresh_disk: true },
        ];
        assert!(matches!(
            resolve(&found, &names(2), 1, 4),
            Err(FormatError::LayoutChanged { .. })
        ));
        assert!(matches!(
            resolve(
                &[Found::Empty { fresh_disk: false }, Found::Offline],
                &names(2),
                1,
                2
            ),
            Err(FormatError::NotAllOnline { .. })
        ));
        let found = vec![Found::Formatted(b"{garbage".to_vec())];
        assert!(matches!(
            resolve(&found, &names(1), 1, 1),
            Err(FormatError::Corrupt { .. })
        ));
    }
}
