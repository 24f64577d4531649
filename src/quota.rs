//! Hard quotas on a bucket or on a prefix of one (a CSI volume is either).
//!
//! The limits live in each bucket's configuration record (`crate::bucket`), cached on every
//! node and pushed to the others on change; an older version's `quotas.json` is moved into
//! the records at start. Usage of a quota scope is counted by listing it when
//! the quota is first checked and every [`REFRESH`] after, plus this node's own changes since
//! that listing: bytes of objects written or deleted, parts uploaded but not yet completed,
//! and uploads in flight (reserved by their declared length before the first byte is
//! stored). A write is refused when usage + reservations + its length would pass the quota,
//! so a volume overshoots by at most what other nodes wrote since the last listing, or by
//! one upload of unknown length.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::object::{ListOptions, ObjectError, Store};

/// The system file that held the quota configuration before it moved into bucket records.
pub const QUOTA_FILE: &str = "quotas.json";
/// How long a listing-based usage count is trusted (local changes are added on top).
pub const REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("quota of {scope} exceeded: {used} bytes used, {quota} allowed, {wanted} more asked")]
    Exceeded {
        scope: String,
        quota: u64,
        used: u64,
        wanted: u64,
    },
    #[error(transparent)]
    Object(#[from] ObjectError),
}

/// A quota scope: a bucket (`prefix` empty) or a prefix of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Scope {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
}

impl Scope {
    pub fn new(bucket: &str, prefix: &str) -> Scope {
        Scope {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
    }

    fn contains(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && key.starts_with(&self.prefix)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "bucket {}", self.bucket)
        } else {
            write!(f, "{}/{}", self.bucket, self.prefix)
        }
    }
}

/// `quotas.json` of older versions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LegacyConfig {
    /// Nanoseconds since the epoch of the last change: the newest copy wins.
    stamp: i64,
    quotas: Vec<(Scope, u64)>,
}

pub use crate::api::QuotaStatus;

#[derive(Debug, Default)]
struct Usage {
    /// Bytes and objects counted by the last listing, and when.
    listed_bytes: u64,
    listed_objects: u64,
    listed_at: Option<Instant>,
    /// Changes made through this node since that listing.
    delta_bytes: i64,
    delta_objects: i64,
    /// Parts uploaded but not completed or aborted.
    parts: u64,
    /// Uploads in flight (declared lengths).
    reserved: u64,
}

impl Usage {
    fn used(&self) -> u64 {
        (self.listed_bytes as i64 + self.delta_bytes).max(0) as u64 + self.parts + self.reserved
    }
    fn objects(&self) -> u64 {
        (self.listed_objects as i64 + self.delta_objects).max(0) as u64
    }
}

struct State {
    usage: BTreeMap<Scope, Usage>,
}

pub struct Quotas {
    store: Arc<Store>,
    state: Mutex<State>,
    /// Serialises listings so concurrent writers do not list the same scope twice.
    refresh: tokio::sync::Mutex<()>,
}

/// Bytes reserved for an upload in flight; released on drop unless committed.
pub struct Reservation {
    quotas: Arc<Quotas>,
    scopes: Vec<Scope>,
    bytes: u64,
}

impl Reservation {
    /// The upload is stored as an object of `size` bytes replacing one of `old` bytes
    /// (`None`: there was none).
    pub fn commit_object(self, size: u64, old: Option<u64>) {
        self.apply(|u| {
            u.delta_bytes += size as i64 - old.unwrap_or(0) as i64;
            if old.is_none() {
                u.delta_objects += 1;
            }
        });
    }

    /// The upload is stored as a part of an unfinished multipart upload.
    pub fn commit_part(self, size: u64) {
        self.apply(|u| u.parts += size);
    }

    fn apply(self, f: impl Fn(&mut Usage)) {
        let mut st = self.quotas.state.lock();
        for s in &self.scopes {
            if let Some(u) = st.usage.get_mut(s) {
                f(u);
            }
        }
        drop(st);
        // Drop releases the reservation.
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut st = self.quotas.state.lock();
        for s in &self.scopes {
            if let Some(u) = st.usage.get_mut(s) {
                u.reserved = u.reserved.saturating_sub(self.bytes);
            }
        }
    }
}

impl Quotas {
    /// Quotas of `store`: kept in each bucket's configuration record (the bucket store
    /// caches them on every node and tells the others of changes).
    pub fn new(store: Arc<Store>) -> Arc<Quotas> {
        Arc::new(Quotas {
            store,
            state: Mutex::new(State {
                usage: BTreeMap::new(),
            }),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The quotas `quotas.json` held before they moved into the bucket records (older
    /// versions), newest copy on the drives.
    async fn read_legacy(&self) -> Option<LegacyConfig> {
        let reads = self
            .store
            .all_drives()
            .flatten()
            .map(|d| async move { d.read_sys(QUOTA_FILE).await });
        futures::future::join_all(reads)
            .await
            .into_iter()
            .filter_map(|r| r.ok())
            .filter_map(|raw| serde_json::from_slice::<LegacyConfig>(&raw).ok())
            .max_by_key(|c| c.stamp)
    }

    /// Move the quotas of an older version's `quotas.json` into the bucket records (once:
    /// the file is removed after), keeping a quota already in a record.
    pub async fn migrate(&self) -> Result<(), ObjectError> {
        let Some(legacy) = self.read_legacy().await else {
            return Ok(());
        };
        for (scope, bytes) in legacy.quotas {
            let r = self
                .store
                .buckets()
                .update(&scope.bucket, |c| {
                    c.quotas.entry(scope.prefix.clone()).or_insert(bytes);
                    Ok(())
                })
                .await;
            match r {
                Ok(_) | Err(crate::bucket::BucketError::NoSuchBucket) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for d in self.store.all_drives().flatten() {
            let _ = d.delete_sys(QUOTA_FILE).await;
        }
        tracing::info!("quotas moved from quotas.json into the bucket records");
        Ok(())
    }

    /// Set (`bytes > 0`) or remove (`0`) the quota of a scope, in its bucket's record.
    pub async fn set(&self, scope: Scope, bytes: u64) -> Result<(), ObjectError> {
        self.store
            .buckets()
            .update(&scope.bucket, |c| {
                if bytes > 0 {
                    c.quotas.insert(scope.prefix.clone(), bytes);
                } else {
                    c.quotas.remove(&scope.prefix);
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// The limits of a bucket's quota scopes (prefix → bytes), from the cache.
    async fn quotas_of(&self, bucket: &str) -> BTreeMap<String, u64> {
        match self.store.buckets().get(bucket).await {
            Ok(Some(b)) => b.config.quotas.clone(),
            _ => BTreeMap::new(),
        }
    }

    /// Quota scopes that cover `bucket/key`, with their limits.
    async fn scopes_for(&self, bucket: &str, key: &str) -> Vec<(Scope, u64)> {
        self.quotas_of(bucket)
            .await
            .into_iter()
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(prefix, q)| (Scope::new(bucket, &prefix), q))
            .collect()
    }

    /// Count a scope by listing it, unless a recent count exists.
    async fn ensure_counted(&self, scope: &Scope) -> Result<(), ObjectError> {
        let fresh = |st: &State| {
            st.usage
                .get(scope)
                .and_then(|u| u.listed_at)
                .is_some_and(|t| t.elapsed() < REFRESH)
        };
        if fresh(&self.state.lock()) {
            return Ok(());
        }
        let _one = self.refresh.lock().await;
        if fresh(&self.state.lock()) {
            return Ok(());
        }
        let started = Instant::now();
        let (mut bytes, mut objects) = (0u64, 0u64);
        let mut opts = ListOptions {
            prefix: scope.prefix.clone(),
            delimiter: None,
            start_after: String::new(),
            max_keys: 1000,
            every_key: false,
            pool: None,
        };
        loop {
            let page = self.store.list_objects(&scope.bucket, &opts).await?;
            for o in &page.objects {
                bytes += o.size;
                objects += 1;
            }
            match page.next_marker {
                Some(m) if page.truncated => opts.start_after = m,
                _ => break,
            }
        }
        let mut st = self.state.lock();
        let u = st.usage.entry(scope.clone()).or_default();
        u.listed_bytes = bytes;
        u.listed_objects = objects;
        u.listed_at = Some(started);
        // Changes made while listing may be counted twice; the next count corrects them.
        u.delta_bytes = 0;
        u.delta_objects = 0;
        Ok(())
    }

    /// Admit an upload of `len` bytes (`None`: unknown) to `bucket/key`, which replaces an
    /// object of `replaces` bytes (freed when it lands): refused with
    /// [`QuotaError::Exceeded`] when a covering quota would be passed.
    pub async fn reserve(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        len: Option<u64>,
        replaces: Option<u64>,
    ) -> Result<Reservation, QuotaError> {
        let scopes = self.scopes_for(bucket, key).await;
        let bytes = len.unwrap_or(0);
        for (s, _) in &scopes {
            self.ensure_counted(s).await?;
        }
        let mut st = self.state.lock();
        for (s, quota) in &scopes {
            let used = st
                .usage
                .get(s)
                .map_or(0, Usage::used)
                .saturating_sub(replaces.unwrap_or(0));
            if used.saturating_add(bytes) > *quota || (len.is_none() && used >= *quota) {
                return Err(QuotaError::Exceeded {
                    scope: s.to_string(),
                    quota: *quota,
                    used,
                    wanted: bytes,
                });
            }
        }
        // Every counted scope covering the key follows the write, quota or not.
        let tracked: Vec<Scope> = st
            .usage
            .keys()
            .filter(|s| s.contains(bucket, key))
            .cloned()
            .collect();
        for s in &tracked {
            if let Some(u) = st.usage.get_mut(s) {
                u.reserved += bytes;
            }
        }
        Ok(Reservation {
            quotas: self.clone(),
            scopes: tracked,
            bytes,
        })
    }

    /// Whether any quota or counted scope covers `bucket/key` (callers then track sizes).
    pub async fn covers(&self, bucket: &str, key: &str) -> bool {
        let tracked = self
            .state
            .lock()
            .usage
            .keys()
            .any(|s| s.contains(bucket, key));
        tracked || !self.scopes_for(bucket, key).await.is_empty()
    }

    /// An object of `size` bytes was deleted.
    pub fn deleted(&self, bucket: &str, key: &str, size: u64) {
        self.adjust(bucket, key, |u| {
            u.delta_bytes -= size as i64;
            u.delta_objects -= 1;
        });
    }

    /// A multipart upload was completed into an object of `size` bytes replacing one of
    /// `old` bytes: its parts stop being pending and become the object.
    pub fn completed(&self, bucket: &str, key: &str, size: u64, old: Option<u64>) {
        self.adjust(bucket, key, |u| {
            u.parts = u.parts.saturating_sub(size);
            u.delta_bytes += size as i64 - old.unwrap_or(0) as i64;
            if old.is_none() {
                u.delta_objects += 1;
            }
        });
    }

    /// Parts of `size` bytes in total stopped being pending (completed or aborted).
    pub fn parts_done(&self, bucket: &str, key: &str, size: u64) {
        self.adjust(bucket, key, |u| u.parts = u.parts.saturating_sub(size));
    }

    fn adjust(&self, bucket: &str, key: &str, f: impl Fn(&mut Usage)) {
        let mut st = self.state.lock();
        for (s, u) in st.usage.iter_mut() {
            if s.contains(bucket, key) {
                f(u);
            }
        }
    }

    /// The quota and usage of a scope (usage counted even when no quota is set).
    pub async fn status(&self, scope: &Scope) -> Result<QuotaStatus, ObjectError> {
        if !self.store.bucket_exists(&scope.bucket).await? {
            return Err(ObjectError::NoSuchBucket);
        }
        let quota = self
            .quotas_of(&scope.bucket)
            .await
            .get(&scope.prefix)
            .copied()
            .unwrap_or(0);
        self.ensure_counted(scope).await?;
        let st = self.state.lock();
        let u = st.usage.get(scope);
        Ok(QuotaStatus {
            bucket: scope.bucket.clone(),
            prefix: scope.prefix.clone(),
            quota,
            used: u.map_or(0, Usage::used),
            objects: u.map_or(0, Usage::objects),
            parts: u.map_or(0, |u| u.parts),
        })
    }

    /// The quotas set on `bucket` and its prefixes, with their usage (metrics).
    pub async fn statuses(&self, bucket: &str) -> Vec<QuotaStatus> {
        let mut out = Vec::new();
        for (prefix, quota) in self.quotas_of(bucket).await {
            if quota == 0 {
                continue;
            }
            if let Ok(s) = self.status(&Scope::new(bucket, &prefix)).await {
                out.push(s);
            }
        }
        out
    }

    /// Forget the usage of a deleted bucket (its quotas went with its record).
    pub async fn bucket_deleted(&self, bucket: &str) {
        self.state.lock().usage.retain(|s, _| s.bucket != bucket);
    }
}
