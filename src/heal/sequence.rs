//! `sequence`: an operator's heal (`cairn admin heal`), counting then healing, with its
//! progress and the objects it could not heal, by name.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::Healer;
use crate::object::{HealOptions, ObjectError};

/// Progress of an operator-started heal.
#[derive(Debug, Default)]
pub struct Sequence {
    pub id: String,
    pub bucket: Option<String>,
    pub prefix: String,
    pub opts: HealOptions,
    pub total: AtomicU64,
    pub counted: AtomicBool,
    pub scanned: AtomicU64,
    pub healed: AtomicU64,
    pub unhealthy: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub finished: AtomicBool,
    started_at: Mutex<Option<Instant>>,
    failures: Mutex<Failures>,
    /// The first objects a dry run found needing a heal ([`UNHEALTHY_SAMPLES`]).
    unhealthy_objects: Mutex<Vec<FailedObject>>,
}

/// How many objects needing a heal a dry run reports by name.
const UNHEALTHY_SAMPLES: usize = 1000;

/// How many failed objects a heal reports by name; the rest are counted by reason.
const FAILURE_SAMPLES: usize = 10;

#[derive(Debug, Default)]
struct Failures {
    samples: Vec<FailedObject>,
    reasons: BTreeMap<String, u64>,
}

/// An object a heal could not fully heal, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailedObject {
    pub bucket: String,
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceStatus {
    pub id: String,
    pub bucket: Option<String>,
    pub prefix: String,
    pub deep: bool,
    pub dry_run: bool,
    /// Objects to scan, once counted.
    pub total: Option<u64>,
    pub scanned: u64,
    /// Objects with a bad copy that were fully healed.
    pub healed: u64,
    /// Objects found with a bad copy in a dry run.
    pub unhealthy: u64,
    /// Objects that could not be fully healed (drives offline, too few good shards).
    pub failed: u64,
    pub bytes_rebuilt: u64,
    pub elapsed_secs: f64,
    pub finished: bool,
    /// The first objects that failed, with their reasons.
    #[serde(default)]
    pub failures: Vec<FailedObject>,
    /// Every failure, counted by reason.
    #[serde(default)]
    pub failure_reasons: BTreeMap<String, u64>,
    /// In a dry run, the first objects found needing a heal (up to 1,000), and why.
    #[serde(default)]
    pub unhealthy_objects: Vec<FailedObject>,
}

impl Sequence {
    /// Count an object (or, with an empty key, a bucket listing) that could not be healed.
    fn fail(&self, bucket: &str, key: &str, reason: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock();
        if f.samples.len() < FAILURE_SAMPLES {
            f.samples.push(FailedObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason: reason.clone(),
            });
        }
        *f.reasons.entry(reason).or_default() += 1;
    }

    /// Count an object a dry run found needing a heal.
    fn unhealthy(&self, bucket: &str, key: &str, reason: String) {
        self.unhealthy.fetch_add(1, Ordering::Relaxed);
        let mut u = self.unhealthy_objects.lock();
        if u.len() < UNHEALTHY_SAMPLES {
            u.push(FailedObject {
                bucket: bucket.to_string(),
                key: key.to_string(),
                reason,
            });
        }
    }

    pub fn status(&self) -> SequenceStatus {
        let (failures, failure_reasons) = {
            let f = self.failures.lock();
            (f.samples.clone(), f.reasons.clone())
        };
        SequenceStatus {
            id: self.id.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            deep: self.opts.deep,
            dry_run: self.opts.dry_run,
            total: self
                .counted
                .load(Ordering::Relaxed)
                .then(|| self.total.load(Ordering::Relaxed)),
            scanned: self.scanned.load(Ordering::Relaxed),
            healed: self.healed.load(Ordering::Relaxed),
            unhealthy: self.unhealthy.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes_rebuilt: self.bytes.load(Ordering::Relaxed),
            elapsed_secs: self
                .started_at
                .lock()
                .map_or(0.0, |t| t.elapsed().as_secs_f64()),
            finished: self.finished.load(Ordering::Relaxed),
            failures,
            failure_reasons,
            unhealthy_objects: self.unhealthy_objects.lock().clone(),
        }
    }
}

impl Healer {
    /// Start (or return the running) operator heal.
    pub fn start_sequence(
        self: &Arc<Self>,
        bucket: Option<String>,
        prefix: String,
        opts: HealOptions,
    ) -> Arc<Sequence> {
        let mut current = self.sequence.lock();
        if let Some(s) = current.as_ref() {
            if !s.finished.load(Ordering::Relaxed)
                && s.bucket == bucket
                && s.prefix == prefix
                && s.opts == opts
            {
                return s.clone();
            }
        }
        let seq = Arc::new(Sequence {
            id: uuid::Uuid::new_v4().to_string(),
            bucket,
            prefix,
            opts,
            started_at: Mutex::new(Some(Instant::now())),
            ..Default::default()
        });
        *current = Some(seq.clone());
        let me = self.clone();
        let run = seq.clone();
        tokio::spawn(async move { me.run_sequence(run).await });
        seq
    }

    pub fn sequence(&self) -> Option<Arc<Sequence>> {
        self.sequence.lock().clone()
    }

    pub(super) async fn buckets_for(
        &self,
        only: &Option<String>,
    ) -> Result<Vec<String>, ObjectError> {
        match only {
            Some(b) => Ok(vec![b.clone()]),
            None => Ok(self
                .store
                .list_buckets()
                .await?
                .into_iter()
                .map(|b| b.name)
                .collect()),
        }
    }

    async fn run_sequence(self: Arc<Self>, seq: Arc<Sequence>) {
        self.set_worker("sequence", "probing", 0, 0);
        // Peers and drives as they are now, not as they were last seen.
        let probe = self.peer_probe.lock().clone();
        if let Some(probe) = probe {
            probe().await;
        }
        self.check_drives().await;
        self.set_worker("sequence", "counting", 0, 0);
        if !seq.opts.dry_run {
            self.heal_system().await;
        }
        let buckets = match self.buckets_for(&seq.bucket).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "heal: cannot list buckets");
                seq.fail("", "", format!("listing buckets: {e}"));
                seq.finished.store(true, Ordering::Relaxed);
                return;
            }
        };
        for b in &buckets {
            let r = self
                .for_each_object(
                    b,
                    &seq.prefix,
                    "",
                    1,
                    |_| {
                        seq.total.fetch_add(1, Ordering::Relaxed);
                        async { true }
                    },
                    |_| {},
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "heal: listing failed");
                seq.fail(b, "", format!("listing: {e}"));
            }
        }
        seq.counted.store(true, Ordering::Relaxed);
        self.set_worker("sequence", "healing", 0, 0);
        for b in &buckets {
            let r = self
                .for_each_object(
                    b,
                    &seq.prefix,
                    "",
                    self.concurrency(),
                    |o| {
                        let me = self.clone();
                        let seq = seq.clone();
                        let bucket = b.clone();
                        async move {
                            let r = me.store.heal_object(&bucket, &o.key, seq.opts).await;
                            seq.scanned.fetch_add(1, Ordering::Relaxed);
                            match r {
                                Ok(r) => {
                                    seq.bytes.fetch_add(r.bytes_written, Ordering::Relaxed);
                                    let offline =
                                        || format!("{} drive(s) offline", r.offline_drives);
                                    if r.bad_drives > 0 {
                                        if seq.opts.dry_run {
                                            seq.unhealthy(
                                                &bucket,
                                                &o.key,
                                                format!("{} bad cop(ies)", r.bad_drives),
                                            );
                                        } else if r.complete() {
                                            seq.healed.fetch_add(1, Ordering::Relaxed);
                                        } else {
                                            seq.fail(&bucket, &o.key, offline());
                                        }
                                    } else if !r.complete() {
                                        seq.fail(&bucket, &o.key, offline());
                                    }
                                }
                                Err(ObjectError::NoSuchKey) => {}
                                Err(e) => {
                                    tracing::warn!(bucket, key = o.key, error = %e, "heal failed");
                                    seq.fail(&bucket, &o.key, e.to_string());
                                }
                            }
                            me.pause().await
                        }
                    },
                    |_| {},
                )
                .await;
            if let Err(e) = r {
                tracing::warn!(bucket = b, error = %e, "heal: listing failed");
                seq.fail(b, "", format!("listing: {e}"));
            }
        }
        seq.finished.store(true, Ordering::Relaxed);
        let st = seq.status();
        self.set_worker("sequence", "done", st.healed, st.failed);
        tracing::info!(
            scanned = st.scanned,
            healed = st.healed,
            failed = st.failed,
            bytes = st.bytes_rebuilt,
            "heal finished"
        );
    }
}
