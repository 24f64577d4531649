//! The `kms-rotate` worker: re-seals object keys from one KMS master key to another without
//! rewriting any data (only the sealed key in each version's metadata changes, and the
//! sealed key of multipart uploads in progress). It walks every bucket in key order, is
//! paced by the heal speed knob (a pause after each re-seal), keeps its position and
//! counts on this node's drives (`kms-rotate.json`) so that a restart resumes where it
//! stopped, and can be cancelled. Each re-seal happens under the object's write lock and
//! is decided on the version as it is then ([`Store::update_object_headers`]): a write
//! racing the walk is never overwritten.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{unix_now, Healer};
use crate::kms::{Kms, KmsError};
use crate::object::{ObjectError, VersionRef};
use crate::sse::envelope;

/// Where this node keeps the rotation it runs (on each of its drives).
pub const ROTATE_FILE: &str = "kms-rotate.json";

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RotateState {
    #[default]
    Running,
    Done,
    Cancelled,
    Failed,
}

/// A rotation's progress, as `cairn admin kms rotate` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RotateStatus {
    pub id: String,
    /// The master key object keys are moved off (`None`: every key but `to`), and the one
    /// they are moved to.
    pub from: Option<String>,
    pub to: String,
    pub state: RotateState,
    /// Seconds since the epoch.
    pub started: u64,
    pub updated: u64,
    pub finished: Option<u64>,
    /// Resume point: the bucket being walked and the last key finished in it.
    pub bucket: String,
    pub after: String,
    /// Object versions and uploads looked at, and of those re-sealed.
    pub scanned: u64,
    pub resealed: u64,
    pub uploads_resealed: u64,
    /// Buckets whose default encryption named a key moved off, now naming `to`.
    #[serde(default)]
    pub buckets_updated: u64,
    /// Re-seals that failed (logged with their key; a later rotation retries them).
    pub failed: u64,
    /// Objects in the deployment as the scanner last counted them (for progress).
    pub total: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("a rotation to {to:?} is already running")]
    Running { to: String },
    #[error("KMS key {0:?} does not exist")]
    NoSuchKey(String),
    #[error("the source and target keys are the same")]
    SameKey,
    #[error("KMS key {0:?} cannot seal: {1}")]
    Unusable(String, String),
}

/// The running rotation's cancellation handle.
#[derive(Default)]
pub(super) struct Rotation {
    status: Option<RotateStatus>,
    cancel: Option<CancellationToken>,
}

/// How often progress is written to the drives while walking.
const SAVE_EVERY: Duration = Duration::from_secs(2);

impl Healer {
    /// The last rotation this node ran or runs.
    pub fn rotation(&self) -> Option<RotateStatus> {
        self.rotation.lock().status.clone()
    }

    /// Start re-sealing every object key sealed by `from` under `to`.
    pub async fn start_rotation(
        self: &Arc<Self>,
        kms: Arc<dyn Kms>,
        from: Option<&str>,
        to: &str,
    ) -> Result<RotateStatus, RotateError> {
        for k in from.into_iter().chain([to]) {
            if !kms.has_key(k) {
                return Err(RotateError::NoSuchKey(k.to_string()));
            }
        }
        if from == Some(to) {
            return Err(RotateError::SameKey);
        }
        // The target must be able to seal (a key not yet checked against the deployment's
        // record of it, or given with other bytes, cannot): else bucket defaults would move
        // to a key no upload can use.
        if let Err(e) = kms.encrypt(to, &[0; 32], b"cairn rotation probe") {
            return Err(RotateError::Unusable(to.to_string(), e.to_string()));
        }
        let status = {
            let mut r = self.rotation.lock();
            if let Some(s) = r
                .status
                .as_ref()
                .filter(|s| s.state == RotateState::Running)
            {
                return Err(RotateError::Running { to: s.to.clone() });
            }
            let now = unix_now();
            let status = RotateStatus {
                id: uuid::Uuid::new_v4().to_string(),
                from: from.map(str::to_string),
                to: to.to_string(),
                started: now,
                updated: now,
                total: self.usage_total(),
                ..RotateStatus::default()
            };
            r.status = Some(status.clone());
            status
        };
        self.save_rotation().await;
        tracing::info!(from = ?from, to, id = status.id, "KMS key rotation started");
        self.spawn_rotation(kms);
        Ok(status)
    }

    /// Stop the running rotation (it keeps its position; a new one starts from the top).
    pub async fn cancel_rotation(&self) -> Option<RotateStatus> {
        let cancel = self.rotation.lock().cancel.take();
        let token = cancel?;
        token.cancel();
        // The worker records the cancellation; wait for it briefly.
        for _ in 0..50 {
            if self
                .rotation()
                .is_some_and(|s| s.state != RotateState::Running)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.rotation()
    }

    /// At start: show the last rotation this node ran, and resume it if it was running.
    pub async fn resume_rotation(self: &Arc<Self>, kms: Option<Arc<dyn Kms>>) {
        let mut last: Option<RotateStatus> = None;
        for d in self.drives() {
            if let Ok(raw) = d.read_sys(ROTATE_FILE).await {
                if let Ok(s) = serde_json::from_slice::<RotateStatus>(&raw) {
                    if last.as_ref().is_none_or(|l| s.updated > l.updated) {
                        last = Some(s);
                    }
                }
            }
        }
        let Some(mut status) = last else {
            return;
        };
        let running = status.state == RotateState::Running;
        let usable = kms.as_ref().filter(|k| {
            status.from.as_deref().is_none_or(|f| k.has_key(f)) && k.has_key(&status.to)
        });
        if running && usable.is_none() {
            status.state = RotateState::Failed;
            status.error = Some(format!(
                "cannot resume: the KMS lacks key {:?} or {:?}",
                status.from.as_deref().unwrap_or("(any)"),
                status.to
            ));
            tracing::error!(
                from = ?status.from,
                to = status.to,
                "KMS key rotation cannot resume: a key is missing from CAIRN_KMS_SECRET_KEY"
            );
        }
        self.rotation.lock().status = Some(status.clone());
        if let (true, Some(kms)) = (status.state == RotateState::Running, usable) {
            tracing::info!(
                from = ?status.from,
                to = status.to,
                bucket = status.bucket,
                after = status.after,
                "KMS key rotation resumed"
            );
            self.spawn_rotation(kms.clone());
        } else if running {
            self.save_rotation().await;
        }
    }

    fn usage_total(&self) -> Option<u64> {
        let usage = self.usage.lock();
        (!usage.is_empty()).then(|| usage.values().map(|u| u.objects).sum())
    }

    fn spawn_rotation(self: &Arc<Self>, kms: Arc<dyn Kms>) {
        let token = self.shutdown.child_token();
        self.rotation.lock().cancel = Some(token.clone());
        let me = self.clone();
        tokio::spawn(async move { me.rotation_worker(kms, token).await });
    }

    async fn save_rotation(&self) {
        let Some(mut status) = self.rotation() else {
            return;
        };
        status.updated = unix_now();
        self.rotation.lock().status = Some(status.clone());
        let body = Bytes::from(serde_json::to_vec(&status).unwrap_or_default());
        for d in self.drives() {
            if let Err(e) = d.write_sys(ROTATE_FILE, body.clone()).await {
                tracing::warn!(drive = d.name(), error = %e, "cannot persist the KMS rotation");
            }
        }
    }

    fn update_rotation(&self, f: impl FnOnce(&mut RotateStatus)) {
        if let Some(s) = self.rotation.lock().status.as_mut() {
            f(s);
        }
    }

    async fn rotation_worker(self: Arc<Self>, kms: Arc<dyn Kms>, token: CancellationToken) {
        self.set_worker("kms-rotate", "running", 0, 0);
        let Some(start) = self.rotation() else {
            return;
        };
        let (from, to) = (start.from.clone(), start.to.clone());
        let mut buckets: Vec<String> = self
            .store
            .buckets()
            .list()
            .into_iter()
            .map(|b| b.config.name.clone())
            .collect();
        buckets.sort();
        let mut saved = Instant::now();
        for bucket in buckets {
            if bucket < start.bucket {
                continue;
            }
            let after = if bucket == start.bucket {
                start.after.clone()
            } else {
                String::new()
            };
            self.update_rotation(|s| {
                s.bucket = bucket.clone();
                s.after = after.clone();
            });
            if after.is_empty() {
                self.move_bucket_default(&bucket, from.as_deref(), &to)
                    .await;
                self.reseal_uploads(&*kms, &bucket, from.as_deref(), &to, &token)
                    .await;
            }
            if let Err(e) = self
                .reseal_bucket(
                    &*kms,
                    &bucket,
                    &after,
                    from.as_deref(),
                    &to,
                    &token,
                    &mut saved,
                )
                .await
            {
                tracing::warn!(bucket, error = %e, "KMS rotation cannot list the bucket");
                self.update_rotation(|s| s.failed += 1);
            }
            if token.is_cancelled() {
                break;
            }
        }
        let cancelled = token.is_cancelled();
        let shutting_down = self.shutdown.is_cancelled();
        self.update_rotation(|s| {
            if cancelled && !shutting_down {
                s.state = RotateState::Cancelled;
            } else if !cancelled {
                s.state = RotateState::Done;
                s.bucket.clear();
                s.after.clear();
            }
            if s.state != RotateState::Running {
                s.finished = Some(unix_now());
            }
        });
        self.rotation.lock().cancel = None;
        self.save_rotation().await;
        if let Some(s) = self.rotation() {
            tracing::info!(
                from = ?s.from,
                to = s.to,
                state = ?s.state,
                scanned = s.scanned,
                resealed = s.resealed,
                uploads = s.uploads_resealed,
                failed = s.failed,
                "KMS key rotation stopped"
            );
            self.set_worker("kms-rotate", "idle", s.resealed, s.failed);
        }
    }

    /// A bucket whose default encryption names a key being moved off names `to` instead
    /// (else its uploads would fail once the old key is removed from the KMS).
    async fn move_bucket_default(&self, bucket: &str, from: Option<&str>, to: &str) {
        let moves = |k: &str| from.map_or(k != to, |f| k == f);
        let named = |b: &crate::bucket::BucketConfig| {
            b.encryption
                .as_ref()
                .and_then(|e| e.kms_key_id.as_deref())
                .is_some_and(moves)
        };
        let cached = self.store.buckets().list();
        if !cached
            .iter()
            .any(|b| b.config.name == bucket && named(&b.config))
        {
            return;
        }
        let mut changed = false;
        let r = self
            .store
            .buckets()
            .update(bucket, |c| {
                if named(c) {
                    if let Some(e) = c.encryption.as_mut() {
                        e.kms_key_id = Some(to.to_string());
                        changed = true;
                    }
                }
                Ok(())
            })
            .await;
        match r {
            Ok(_) if !changed => {}
            Ok(_) => {
                tracing::info!(
                    bucket,
                    to,
                    "the bucket's default encryption now names the rotation's key"
                );
                self.update_rotation(|s| s.buckets_updated += 1);
            }
            Err(e) => {
                tracing::warn!(bucket, error = %e, "KMS rotation cannot change the bucket's default encryption");
                self.update_rotation(|s| s.failed += 1);
            }
        }
    }

    /// Re-seal the uploads in progress in `bucket` (their parts are sealed under the key
    /// their upload was started with).
    async fn reseal_uploads(
        &self,
        kms: &dyn Kms,
        bucket: &str,
        from: Option<&str>,
        to: &str,
        token: &CancellationToken,
    ) {
        let Ok(uploads) = self.store.list_uploads(bucket, "").await else {
            self.update_rotation(|s| s.failed += 1);
            return;
        };
        for u in uploads {
            if token.is_cancelled() {
                return;
            }
            self.update_rotation(|s| s.scanned += 1);
            let done = self
                .store
                .update_upload_headers(bucket, &u.key, &u.upload_id, |h| {
                    envelope::reseal(h, bucket, &u.key, kms, from, to)
                        .map(Option::unwrap_or_default)
                        .map_err(kms_failed)
                })
                .await;
            match done {
                Ok(true) => {
                    self.update_rotation(|s| s.uploads_resealed += 1);
                    self.pace().await;
                }
                Ok(false) | Err(ObjectError::NoSuchUpload) => {}
                Err(e) => {
                    tracing::warn!(bucket, key = u.key, upload = u.upload_id, error = %e, "KMS rotation cannot re-seal an upload");
                    self.update_rotation(|s| s.failed += 1);
                }
            }
        }
    }

    /// Re-seal every version in `bucket` after key `after`.
    #[allow(clippy::too_many_arguments)]
    async fn reseal_bucket(
        &self,
        kms: &dyn Kms,
        bucket: &str,
        after: &str,
        from: Option<&str>,
        to: &str,
        token: &CancellationToken,
        saved: &mut Instant,
    ) -> Result<(), ObjectError> {
        let mut walk = self.store.walk_versions(bucket, after);
        let mut current_key: Option<String> = None;
        while let Some(page) = walk.next_page().await? {
            for v in page {
                if token.is_cancelled() {
                    return Ok(());
                }
                // Every version of the previous key is done: it is the resume point.
                if current_key.as_ref().is_some_and(|k| *k != v.key) {
                    let done = current_key.take().unwrap_or_default();
                    self.update_rotation(|s| s.after = done);
                    if saved.elapsed() >= SAVE_EVERY {
                        self.save_rotation().await;
                        *saved = Instant::now();
                    }
                }
                current_key = Some(v.key.clone());
                if v.delete_marker {
                    continue;
                }
                self.update_rotation(|s| s.scanned += 1);
                if !envelope::sealed_by(&v.headers, from, to) {
                    continue;
                }
                let done = self
                    .store
                    .update_object_headers(bucket, &v.key, VersionRef::Id(v.version_id), |cur| {
                        envelope::reseal(&cur.headers, bucket, &v.key, kms, from, to)
                            .map_err(kms_failed)?
                            // Re-sealed meanwhile (or overwritten): nothing to change.
                            .ok_or(ObjectError::PreconditionFailed)
                    })
                    .await;
                match done {
                    Ok(_) => {
                        self.update_rotation(|s| s.resealed += 1);
                        self.pace().await;
                    }
                    Err(
                        ObjectError::PreconditionFailed
                        | ObjectError::NoSuchKey
                        | ObjectError::NoSuchVersion
                        | ObjectError::DeleteMarker { .. },
                    ) => {}
                    Err(e) => {
                        tracing::warn!(bucket, key = v.key, version = ?v.version_id, error = %e, "KMS rotation cannot re-seal an object key");
                        self.update_rotation(|s| s.failed += 1);
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn pace(&self) {
        let d = self.speed().pause();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

fn kms_failed(e: KmsError) -> ObjectError {
    ObjectError::Internal(format!("KMS: {e}"))
}
