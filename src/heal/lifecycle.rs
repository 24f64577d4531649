//! The `lifecycle` worker: passes over the buckets that have lifecycle rules, expiring
//! what the rules say is due ([`crate::lifecycle::Lifecycle::decide`]) and aborting
//! incomplete uploads. One pass does a bounded amount of work (at most
//! [`LifecycleConfig::budget`] versions looked at); a pass that runs out resumes where it
//! stopped the next time. Each expiry is conditional on the versions being as the pass saw
//! them ([`Store::expire_version`]), so a write racing a pass is never expired; object lock
//! is honoured as for any client (a protected version is kept and counted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{unix_now, Healer};
use crate::bucket::Versioning;
use crate::lifecycle::{Day, Decision, Lifecycle, Place, VersionFacts};
use crate::object::{Expect, ObjectError, ObjectInfo, Store};

/// Lifecycle worker settings.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    /// How long a lifecycle day is.
    pub day: Day,
    /// The pause between passes.
    pub every: Duration,
    /// Versions one pass looks at before it stops (and the next resumes).
    pub budget: u64,
}

impl LifecycleConfig {
    /// Passes at least once per `day` (twice per shortened testing day, so a rule of one
    /// such day acts within two), and at most every `interval` otherwise.
    pub fn new(day: Day, interval: Duration) -> LifecycleConfig {
        LifecycleConfig {
            day,
            every: if day.is_debug() {
                day.duration() / 2
            } else {
                interval.min(day.duration())
            },
            budget: 100_000,
        }
    }
}

/// What the last lifecycle pass did (shown by `cairn admin info`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LifecycleStatus {
    /// Passes finished since start.
    pub passes: u64,
    pub running: bool,
    /// When the last finished pass started and ended (seconds since the epoch).
    pub last_started: Option<u64>,
    pub last_finished: Option<u64>,
    pub last_duration_ms: u64,
    /// Buckets with rules the last pass went through.
    pub buckets: u64,
    /// Versions and markers it looked at.
    pub scanned: u64,
    /// Versions it expired: delete markers added, versions and markers removed.
    pub expired: u64,
    pub uploads_aborted: u64,
    /// Versions a rule would have removed that object lock kept.
    pub kept_by_lock: u64,
    pub failed: u64,
    /// Whether it reached the end (or ran out of budget and the next pass resumes).
    pub complete: bool,
    /// Versions expired since start.
    pub total_expired: u64,
    /// Incomplete uploads aborted since start.
    #[serde(default)]
    pub total_uploads_aborted: u64,
}

/// Where a pass that ran out of budget stopped: a bucket and the last key done in it.
#[derive(Debug, Clone, Default)]
pub(super) struct Cursor {
    bucket: String,
    after: String,
}

#[derive(Default)]
struct Pass {
    status: LifecycleStatus,
    budget: u64,
}

impl Pass {
    fn out_of_budget(&self) -> bool {
        self.status.scanned >= self.budget
    }
}

impl Healer {
    /// Start the lifecycle worker.
    pub fn start_lifecycle(self: &Arc<Self>, cfg: LifecycleConfig) {
        let me = self.clone();
        tokio::spawn(async move { me.lifecycle_worker(cfg).await });
    }

    pub fn lifecycle_status(&self) -> LifecycleStatus {
        self.lifecycle.lock().0.clone()
    }

    async fn lifecycle_worker(self: Arc<Self>, cfg: LifecycleConfig) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(cfg.every) => {}
                _ = self.shutdown.cancelled() => return,
            }
            if !self.is_leader() {
                self.set_worker("lifecycle", "standby (another node leads)", 0, 0);
                continue;
            }
            self.lifecycle_pass(cfg).await;
        }
    }

    /// One pass over every bucket with rules (from where the last one stopped).
    pub async fn lifecycle_pass(&self, cfg: LifecycleConfig) -> LifecycleStatus {
        let started = Instant::now();
        let cursor = {
            let mut l = self.lifecycle.lock();
            l.0.running = true;
            l.1.take()
        };
        self.set_worker("lifecycle", "running", 0, 0);
        let mut pass = Pass {
            budget: cfg.budget,
            ..Pass::default()
        };
        let mut buckets: Vec<(String, Lifecycle, Option<Versioning>)> = self
            .store
            .buckets()
            .list()
            .into_iter()
            .filter_map(|b| {
                let lc = b.config.lifecycle.clone()?;
                Some((b.config.name.clone(), lc, b.config.versioning))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.cmp(&b.0));
        let mut stopped = None;
        let now = crate::object::now_nanos();
        for (name, lc, versioning) in &buckets {
            let after = match &cursor {
                Some(c) if name.as_str() < c.bucket.as_str() => continue,
                Some(c) if *name == c.bucket => c.after.clone(),
                _ => String::new(),
            };
            pass.status.buckets += 1;
            if lc.aborts_uploads() && after.is_empty() {
                self.abort_uploads(name, lc, now, cfg.day, &mut pass).await;
            }
            if !lc.acts_on_versions() {
                continue;
            }
            match self
                .expire_bucket(name, lc, *versioning, &after, now, cfg.day, &mut pass)
                .await
            {
                Ok(Some(last)) => {
                    stopped = Some(Cursor {
                        bucket: name.clone(),
                        after: last,
                    });
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    pass.status.failed += 1;
                    tracing::warn!(bucket = name, error = %e, "lifecycle pass cannot list the bucket");
                }
            }
            if self.shutdown.is_cancelled() {
                break;
            }
        }
        let mut l = self.lifecycle.lock();
        let total = l.0.total_expired.saturating_add(pass.status.expired);
        pass.status.complete = stopped.is_none();
        pass.status.passes = l.0.passes.saturating_add(1);
        pass.status.total_expired = total;
        pass.status.total_uploads_aborted =
            l.0.total_uploads_aborted
                .saturating_add(pass.status.uploads_aborted);
        pass.status.running = false;
        pass.status.last_duration_ms = started.elapsed().as_millis() as u64;
        pass.status.last_finished = Some(unix_now());
        pass.status.last_started = Some(unix_now().saturating_sub(started.elapsed().as_secs()));
        *l = (pass.status.clone(), stopped);
        drop(l);
        self.set_worker("lifecycle", "idle", pass.status.passes, pass.status.failed);
        tracing::debug!(
            scanned = pass.status.scanned,
            expired = pass.status.expired,
            aborted = pass.status.uploads_aborted,
            "lifecycle pass"
        );
        pass.status
    }

    async fn abort_uploads(
        &self,
        bucket: &str,
        lc: &Lifecycle,
        now: i64,
        day: Day,
        pass: &mut Pass,
    ) {
        let Ok(uploads) = self.store.list_uploads(bucket, "").await else {
            pass.status.failed += 1;
            return;
        };
        for u in uploads {
            let Some(rule) = lc.abort_upload(&u.key, u.initiated, now, day) else {
                continue;
            };
            match self
                .store
                .abort_multipart(bucket, &u.key, &u.upload_id)
                .await
            {
                Ok(()) => {
                    pass.status.uploads_aborted += 1;
                    tracing::debug!(
                        bucket,
                        key = u.key,
                        upload = u.upload_id,
                        rule,
                        "lifecycle aborted an incomplete upload"
                    );
                }
                Err(ObjectError::NoSuchUpload) => {}
                Err(e) => {
                    pass.status.failed += 1;
                    tracing::warn!(bucket, key = u.key, error = %e, "lifecycle cannot abort an upload");
                }
            }
        }
    }

    /// Expire what is due in `bucket` after key `after`. `Some(key)`: the budget ran out
    /// after `key` (every version of it done).
    #[allow(clippy::too_many_arguments)]
    async fn expire_bucket(
        &self,
        bucket: &str,
        lc: &Lifecycle,
        versioning: Option<Versioning>,
        after: &str,
        now: i64,
        day: Day,
        pass: &mut Pass,
    ) -> Result<Option<String>, ObjectError> {
        let mut walk = self.store.walk_versions(bucket, after);
        // The versions of the key being gathered (a key's versions may span pages).
        let mut group: Vec<ObjectInfo> = Vec::new();
        while let Some(page) = walk.next_page().await? {
            for v in page {
                if group.first().is_some_and(|g| g.key != v.key) {
                    let done = std::mem::take(&mut group);
                    let key = done[0].key.clone();
                    self.expire_key(bucket, lc, versioning, done, now, day, pass)
                        .await;
                    if pass.out_of_budget() || self.shutdown.is_cancelled() {
                        return Ok(Some(key));
                    }
                }
                group.push(v);
            }
        }
        if !group.is_empty() {
            self.expire_key(bucket, lc, versioning, group, now, day, pass)
                .await;
        }
        Ok(None)
    }

    /// Apply the rules to every version of one key (newest first).
    #[allow(clippy::too_many_arguments)]
    async fn expire_key(
        &self,
        bucket: &str,
        lc: &Lifecycle,
        versioning: Option<Versioning>,
        versions: Vec<ObjectInfo>,
        now: i64,
        day: Day,
        pass: &mut Pass,
    ) {
        let only = versions.len() == 1;
        for (i, v) in versions.iter().enumerate() {
            pass.status.scanned += 1;
            let tags = crate::object::tags::of(&v.headers);
            let place = match i.checked_sub(1).and_then(|p| versions.get(p)) {
                None => Place::Current { only },
                Some(successor) => Place::Noncurrent {
                    since: successor.mod_time,
                    newer_noncurrent: i - 1,
                },
            };
            let facts = VersionFacts {
                key: &v.key,
                size: v.size,
                mod_time: v.mod_time,
                tags: &tags,
                delete_marker: v.delete_marker,
                place,
            };
            let Some(decision) = lc.decide(&facts, now, day) else {
                continue;
            };
            let (expect, rule) = match decision {
                Decision::ExpireCurrent { rule } => (
                    Expect::Latest {
                        version_id: v.version_id,
                        mod_time: v.mod_time,
                    },
                    rule,
                ),
                Decision::Remove { rule } if i == 0 => (
                    Expect::OnlyMarker {
                        version_id: v.version_id,
                    },
                    rule,
                ),
                Decision::Remove { rule } => (
                    Expect::Noncurrent {
                        version_id: v.version_id,
                    },
                    rule,
                ),
            };
            let hook = self.on_expired.lock().clone();
            expire_one(
                &self.store,
                bucket,
                v,
                expect,
                &rule,
                versioning,
                pass,
                hook,
            )
            .await;
            // Expiring yields to clients.
            tokio::task::yield_now().await;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn expire_one(
    store: &Store,
    bucket: &str,
    v: &ObjectInfo,
    expect: Expect,
    rule: &str,
    versioning: Option<Versioning>,
    pass: &mut Pass,
    hook: Option<super::OnExpired>,
) {
    match store.expire_version(bucket, &v.key, expect).await {
        Ok(d) => {
            pass.status.expired += 1;
            if let Some(hook) = hook {
                hook(super::Expired {
                    bucket: bucket.to_string(),
                    key: v.key.clone(),
                    deleted: d.clone(),
                    marker_created: matches!(expect, Expect::Latest { .. }) && d.delete_marker,
                })
                .await;
            }
            tracing::debug!(
                bucket,
                key = v.key,
                version = v
                    .version_id
                    .map_or_else(|| "null".to_string(), |u| u.simple().to_string()),
                rule,
                delete_marker_added =
                    matches!(expect, Expect::Latest { .. }) && versioning.is_some(),
                marker = d.delete_marker,
                "lifecycle expired"
            );
        }
        Err(ObjectError::ObjectLocked) => {
            pass.status.kept_by_lock += 1;
            tracing::debug!(bucket, key = v.key, rule, "lifecycle kept a locked version");
        }
        // Changed since the listing: the next pass decides again.
        Err(
            ObjectError::PreconditionFailed | ObjectError::NoSuchKey | ObjectError::NoSuchVersion,
        ) => {}
        Err(e) => {
            pass.status.failed += 1;
            tracing::warn!(bucket, key = v.key, error = %e, "lifecycle expiry failed");
        }
    }
}
