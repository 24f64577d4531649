//! Opening a store from drive directories: read every drive's format.json, match drives to
//! their slots by id, format fresh or replaced drives, and build the sets.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::{ErasureSet, Store};
use crate::drive::{Drive, DriveError, LocalDrive, FORMAT_FILE};
use crate::placement::format::{resolve, Found};
use crate::placement::{FormatError, SlotState};

#[derive(Debug, Error)]
pub enum OpenError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write format.json to {drive}: {source}")]
    WriteFormat { drive: String, source: DriveError },
}

#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub set_size: usize,
    pub parity: usize,
}

/// Slots whose drive was replaced by an empty one, formatted now and to be healed.
pub const HEALING_FILE: &str = "healing.json";

/// Open a store over local drive directories given in any order.
pub async fn open_local(paths: &[PathBuf], opts: &OpenOptions) -> Result<Store, OpenError> {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut drives: Vec<Option<Arc<dyn Drive>>> = Vec::with_capacity(paths.len());
    for p in paths {
        match LocalDrive::open(p.clone()) {
            Ok(d) => drives.push(Some(Arc::new(d))),
            Err(e) => {
                tracing::warn!(drive = %p.display(), error = %e, "drive unavailable");
                drives.push(None);
            }
        }
    }
    open_drives(drives, &names, opts).await
}

/// Open a store over already-constructed drives (tests wrap them in fault injectors).
pub async fn open_drives(
    drives: Vec<Option<Arc<dyn Drive>>>,
    names: &[String],
    opts: &OpenOptions,
) -> Result<Store, OpenError> {
    let mut found = Vec::with_capacity(drives.len());
    for d in &drives {
        found.push(match d {
            None => Found::Offline,
            Some(d) => match d.read_sys(FORMAT_FILE).await {
                Ok(b) => Found::Formatted(b.to_vec()),
                Err(DriveError::NotFound) => Found::Empty,
                Err(_) => Found::Offline,
            },
        });
    }
    let sets = drives.len() / opts.set_size;
    let res = resolve(&found, names, sets, opts.set_size)?;
    for (slot, state) in res.slots.iter().enumerate() {
        if let SlotState::Replaced { arg } = state {
            let Some(d) = &drives[*arg] else { continue };
            let fmt = Bytes::from(res.format.for_slot(slot).encode());
            if !res.fresh {
                tracing::warn!(drive = %names[*arg], slot, "empty drive in a known slot: formatting it for healing");
                let marker = Bytes::from(format!("{{\"slot\":{slot}}}"));
                d.write_sys(HEALING_FILE, marker).await.map_err(|source| {
                    OpenError::WriteFormat {
                        drive: names[*arg].clone(),
                        source,
                    }
                })?;
            }
            d.write_sys(FORMAT_FILE, fmt)
                .await
                .map_err(|source| OpenError::WriteFormat {
                    drive: names[*arg].clone(),
                    source,
                })?;
        }
    }
    let sets = (0..sets)
        .map(|s| ErasureSet {
            index: s,
            drives: (0..opts.set_size)
                .map(|p| match res.slots[s * opts.set_size + p] {
                    SlotState::Ready { arg } | SlotState::Replaced { arg } => drives[arg].clone(),
                    SlotState::Missing => None,
                })
                .collect(),
            parity: opts.parity,
        })
        .collect();
    Ok(Store::new(res.format.deployment_id, sets).with_format(res.format))
}
