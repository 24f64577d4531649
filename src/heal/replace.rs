//! `replace:<drive>`: the drive monitor finds replaced (empty, reformatted) drives and heals
//! their whole set onto them, with a tracker persisted on the drive so a restart resumes
//! where it stopped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{unix_now, Healer};
use crate::drive::DriveStatus;
use crate::object::{HealOptions, HEALING_FILE};

/// The persisted state of a replaced drive's heal (`.cairn.sys/healing.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tracker {
    pub slot: usize,
    #[serde(default)]
    pub drive: String,
    #[serde(default)]
    pub started: u64,
    #[serde(default)]
    pub objects_done: u64,
    #[serde(default)]
    pub objects_failed: u64,
    #[serde(default)]
    pub bytes_done: u64,
    /// Resume point: bucket and last key healed in it.
    #[serde(default)]
    pub bucket: String,
    #[serde(default)]
    pub last_key: String,
    #[serde(default)]
    pub finished: bool,
}

impl Healer {
    /// Every `every`, look at this node's drives afresh ([`Healer::check_drives`]).
    pub(super) async fn drive_monitor(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            self.check_drives().await;
        }
    }

    /// Probe each of this node's drives: one that vanished, was unmounted or sits on
    /// another filesystem goes offline (and serves again once it is back where it was
    /// formatted); a freshly swapped disk (an empty mount point without a format) is
    /// formatted into its slot and its set healed onto it; a drive carrying a healing
    /// marker (formatted by `cairn admin drive replace`, or a heal a restart cut short) is
    /// healed. An unformatted drive that is not an empty mount point is never touched: it
    /// may be the bare mount point of a disk that failed to mount.
    pub async fn check_drives(self: &Arc<Self>) {
        for set in self.store.sets() {
            for (pos, d) in set.drives.iter().enumerate() {
                // Each node watches and heals its own drives.
                let Some(d) = d.as_ref().filter(|d| d.is_local()) else {
                    continue;
                };
                let Ok(probe) = d.probe().await else { continue };
                let busy = self
                    .replacements
                    .lock()
                    .iter()
                    .any(|t| t.lock().drive == d.name() && !t.lock().finished);
                if busy {
                    continue;
                }
                let slot = set.index * set.size() + pos;
                let tracker = match probe.status {
                    DriveStatus::Online => {
                        let Ok(raw) = d.read_sys(HEALING_FILE).await else {
                            continue;
                        };
                        let mut t: Tracker = serde_json::from_slice(&raw).unwrap_or_default();
                        if t.finished {
                            continue;
                        }
                        t.slot = slot;
                        t.drive = d.name().to_string();
                        if t.started == 0 {
                            t.started = unix_now();
                        }
                        t
                    }
                    DriveStatus::Unformatted if probe.is_fresh_disk() => {
                        let Some(format) = self.store.format_for_drive(slot, &probe) else {
                            continue;
                        };
                        let tracker = Tracker {
                            slot,
                            drive: d.name().to_string(),
                            started: unix_now(),
                            ..Default::default()
                        };
                        let marker = Bytes::from(serde_json::to_vec(&tracker).unwrap_or_default());
                        if let Err(e) = d
                            .format(Bytes::from(format.encode()), Some(marker), false)
                            .await
                        {
                            tracing::warn!(drive = d.name(), error = %e, "cannot format a swapped disk");
                            continue;
                        }
                        tracing::warn!(
                            drive = d.name(),
                            slot,
                            "empty disk mounted in a known slot: formatted, healing its set onto it"
                        );
                        tracker
                    }
                    _ => continue,
                };
                let tracker = Arc::new(Mutex::new(tracker));
                self.replacements.lock().push(tracker.clone());
                let me = self.clone();
                let (drive, index) = (d.clone(), set.index);
                tokio::spawn(async move { me.heal_replacement(index, drive, tracker).await });
            }
        }
    }

    /// Find replaced drives (a `healing.json` tracker) and heal their sets onto them.
    pub(super) async fn start_replacements(self: Arc<Self>) {
        self.check_drives().await;
    }

    async fn heal_replacement(
        self: Arc<Self>,
        set_index: usize,
        drive: Arc<dyn crate::drive::Drive>,
        tracker: Arc<Mutex<Tracker>>,
    ) {
        let name = format!("replace:{}", drive.name());
        tracing::info!(drive = drive.name(), "healing replaced drive");
        self.set_worker(&name, "healing", 0, 0);
        self.heal_system().await;
        let persist = |t: &Tracker| Bytes::from(serde_json::to_vec(t).unwrap_or_default());
        let buckets = match self.buckets_for(&None).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "replacement heal: cannot list buckets");
                return;
            }
        };
        let (resume_bucket, resume_key) = {
            let t = tracker.lock();
            (t.bucket.clone(), t.last_key.clone())
        };
        for b in buckets
            .iter()
            .filter(|b| resume_bucket.is_empty() || **b >= resume_bucket)
        {
            let start_after = if *b == resume_bucket {
                resume_key.clone()
            } else {
                String::new()
            };
            let mut since_persist = 0;
            let r = self
                .for_each_object(
                    b,
                    "",
                    &start_after,
                    self.concurrency(),
                    |o| {
                        let me = self.clone();
                        let drive = drive.clone();
                        let tracker = tracker.clone();
                        let bucket = b.clone();
                        since_persist += 1;
                        let flush = since_persist % 50 == 0;
                        let name = name.clone();
                        async move {
                            if me.store.key_maps_to_set(&o.key, set_index) {
                                match me
                                    .store
                                    .heal_object(&bucket, &o.key, HealOptions::default())
                                    .await
                                {
                                    Ok(r) if r.complete() => {
                                        let mut t = tracker.lock();
                                        t.objects_done += 1;
                                        t.bytes_done += r.bytes_written;
                                    }
                                    _ => tracker.lock().objects_failed += 1,
                                }
                            }
                            // The resume point (bucket, last_key) moves in key order once
                            // every earlier object is done, so a saved tracker skips nothing.
                            let snapshot = tracker.lock().clone();
                            me.set_worker(
                                &name,
                                "healing",
                                snapshot.objects_done,
                                snapshot.objects_failed,
                            );
                            if flush {
                                let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
                            }
                            me.pause().await
                        }
                    },
                    |last| {
                        let mut t = tracker.lock();
                        t.bucket = b.clone();
                        t.last_key = last.to_string();
                    },
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "replacement heal: listing failed");
            }
            if self.shutdown.is_cancelled() {
                let snapshot = tracker.lock().clone();
                let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
                return;
            }
        }
        let snapshot = {
            let mut t = tracker.lock();
            t.finished = true;
            t.clone()
        };
        if snapshot.objects_failed == 0 {
            let _ = drive.delete_sys(HEALING_FILE).await;
        } else {
            let _ = drive.write_sys(HEALING_FILE, persist(&snapshot)).await;
        }
        self.set_worker(
            &name,
            "done",
            snapshot.objects_done,
            snapshot.objects_failed,
        );
        tracing::info!(
            drive = drive.name(),
            objects = snapshot.objects_done,
            failed = snapshot.objects_failed,
            "replaced drive healed"
        );
    }
}
