//! The bucket configuration store: one versioned record per bucket holding every
//! bucket-level setting (policy, ACL and object ownership, public access block, tags, and
//! the configurations other features add), kept as a system record on every drive
//! ([`crate::records`]: write quorum, newest wins, tombstones) and cached in memory on
//! every node.
//!
//! The cache answers the request path: bucket existence and settings never list drives.
//! A change made through one node is pushed to the others at once (an RPC notice naming
//! the bucket, answered after the peer re-read it), and every node re-reads all records
//! every [`REFRESH`] as a safety net for notices a down peer missed. A cache miss reads
//! the bucket's record from the drives before answering "no such bucket", so a bucket
//! made elsewhere is never refused because a notice is late.

pub mod cors;
pub mod notification;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::drive::Drive;
use crate::iam::acl::Acl;
use crate::iam::policy::Policy;
use crate::lock::{LockError, Locker};
use crate::records::{Notifier, RecordError, Records};

/// Where the records live in every drive's system area.
pub const DIR: &str = "buckets";
/// The RPC service that tells a node a bucket's record changed.
pub const CHANGED_SERVICE: &str = "bucket-changed";
/// How often every node re-reads every bucket record.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How long a change waits for each peer to confirm it re-read the record.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("bucket does not exist")]
    NoSuchBucket,
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{0}")]
    Invalid(String),
}

/// Who owns the objects written to a bucket, and whether ACLs count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket owner owns every object; ACL requests other than
    /// `bucket-owner-full-control`/private answer `AccessControlListNotSupported`.
    BucketOwnerEnforced,
    BucketOwnerPreferred,
    /// ACLs are enabled; the writer owns what it writes.
    #[default]
    ObjectWriter,
}

impl ObjectOwnership {
    pub fn parse(s: &str) -> Option<ObjectOwnership> {
        Some(match s {
            "BucketOwnerEnforced" => ObjectOwnership::BucketOwnerEnforced,
            "BucketOwnerPreferred" => ObjectOwnership::BucketOwnerPreferred,
            "ObjectWriter" => ObjectOwnership::ObjectWriter,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectOwnership::BucketOwnerEnforced => "BucketOwnerEnforced",
            ObjectOwnership::BucketOwnerPreferred => "BucketOwnerPreferred",
            ObjectOwnership::ObjectWriter => "ObjectWriter",
        }
    }

    pub fn acls_enabled(self) -> bool {
        self != ObjectOwnership::BucketOwnerEnforced
    }
}

/// S3's public access block of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

/// Every setting of one bucket, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BucketConfig {
    pub name: String,
    /// Nanoseconds since the epoch.
    pub created: i64,
    /// Canonical id of the owner (the identity that created the bucket).
    #[serde(default)]
    pub owner: String,
    /// The bucket policy, as the client sent it (validated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default)]
    pub ownership: ObjectOwnership,
    /// DeleteBucketOwnershipControls removed the controls: `ownership` is S3's behaviour
    /// without any (`ObjectWriter`), and GetBucketOwnershipControls finds none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ownership_removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Acl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// Versioning: `None` for a bucket never versioned (it cannot go back to that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<Versioning>,
    /// Object lock, once enabled (it cannot be disabled; versioning stays enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// Lifecycle rules, validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<crate::lifecycle::Lifecycle>,
    /// CORS rules, validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<cors::Cors>,
    /// Default encryption of uploads that ask for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<DefaultEncryption>,
    /// Event notification rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<notification::Notification>,
    /// Hard quotas: prefix (`""` for the whole bucket) → bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, u64>,
    /// Settings of features this version does not know, kept as they are when it rewrites
    /// the record (versioning, object lock, encryption, lifecycle, CORS, notifications).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// A bucket's default encryption (`PutBucketEncryption`'s one rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultEncryption {
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS).
    pub algorithm: String,
    /// The KMS key of `aws:kms` (`None`: the KMS's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub bucket_key: bool,
}

/// A bucket's versioning state once versioning was turned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    /// Every write creates a new version with its own id.
    Enabled,
    /// Writes replace the null version; versions made before stay.
    Suspended,
}

/// The retention mode of a version (`x-amz-object-lock-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LockMode {
    /// Removable before the date by whoever may bypass governance retention.
    #[serde(rename = "GOVERNANCE")]
    Governance,
    /// Removable by nobody, root included, before the date.
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// A bucket's object lock configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    /// Retention given to new versions that do not ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

/// A default retention: a mode and a period (AWS's `Days` or `Years`, as days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub days: u32,
    /// The period was given in years (`days` is 365 per year), so it is shown that way.
    #[serde(default)]
    pub in_years: bool,
}

impl BucketConfig {
    pub fn new(name: &str, created: i64, owner: &str, ownership: ObjectOwnership) -> BucketConfig {
        BucketConfig {
            name: name.to_string(),
            created,
            owner: owner.to_string(),
            policy: None,
            ownership,
            ownership_removed: false,
            acl: None,
            public_access_block: None,
            tags: Vec::new(),
            versioning: None,
            object_lock: None,
            lifecycle: None,
            cors: None,
            encryption: None,
            notification: None,
            quotas: BTreeMap::new(),
            other: BTreeMap::new(),
        }
    }
}

/// A cached bucket: its configuration and its parsed policy.
#[derive(Debug)]
pub struct Bucket {
    pub config: BucketConfig,
    pub policy: Option<Arc<Policy>>,
    /// The record's stamp.
    pub stamp: i64,
}

impl Bucket {
    fn new(config: BucketConfig, stamp: i64) -> Bucket {
        // A stored policy was validated when put: one that no longer parses (a newer
        // server's language) denies nothing and allows nothing here.
        let policy = config
            .policy
            .as_deref()
            .and_then(|p| Policy::parse(p).ok())
            .map(Arc::new);
        Bucket {
            config,
            policy,
            stamp,
        }
    }

    pub fn public_access_block(&self) -> PublicAccessBlock {
        self.config.public_access_block.unwrap_or_default()
    }
}

pub struct BucketStore {
    records: Records,
    locker: RwLock<Arc<dyn Locker>>,
    cache: RwLock<HashMap<String, Arc<Bucket>>>,
    notifier: RwLock<Option<Arc<dyn Notifier>>>,
    /// True once every record was read (before that, listings ask the object layer).
    loaded: std::sync::atomic::AtomicBool,
}

impl BucketStore {
    pub fn new(drives: Vec<Option<Arc<dyn Drive>>>, locker: Arc<dyn Locker>) -> BucketStore {
        BucketStore {
            records: Records::new(drives, DIR),
            locker: RwLock::new(locker),
            cache: RwLock::new(HashMap::new()),
            notifier: RwLock::new(None),
            loaded: Default::default(),
        }
    }

    pub fn set_locker(&self, locker: Arc<dyn Locker>) {
        *self.locker.write() = locker;
    }

    pub fn set_notifier(&self, notifier: Arc<dyn Notifier>) {
        *self.notifier.write() = Some(notifier);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The cached bucket, without I/O.
    pub fn cached(&self, name: &str) -> Option<Arc<Bucket>> {
        self.cache.read().get(name).cloned()
    }

    /// The bucket: from the cache, else from the drives (a bucket made through another
    /// node whose notice has not arrived yet).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Bucket>>, BucketError> {
        if let Some(b) = self.cached(name) {
            return Ok(Some(b));
        }
        self.reload(name).await
    }

    /// Every bucket in the cache, by name.
    pub fn list(&self) -> Vec<Arc<Bucket>> {
        let mut all: Vec<_> = self.cache.read().values().cloned().collect();
        all.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        all
    }

    /// Re-read one record from the drives into the cache.
    pub async fn reload(&self, name: &str) -> Result<Option<Arc<Bucket>>, BucketError> {
        let rec = self.records.read::<BucketConfig>(name).await?;
        let mut cache = self.cache.write();
        match rec {
            Some(r) => {
                // A newer copy already cached (a change racing this read) stays.
                if cache.get(name).is_some_and(|c| c.stamp > r.stamp) {
                    return Ok(cache.get(name).cloned());
                }
                match r.value {
                    Some(config) => {
                        let b = Arc::new(Bucket::new(config, r.stamp));
                        cache.insert(name.to_string(), b.clone());
                        Ok(Some(b))
                    }
                    None => {
                        cache.remove(name);
                        Ok(None)
                    }
                }
            }
            None => {
                cache.remove(name);
                Ok(None)
            }
        }
    }

    /// Read every record into the cache. `dirs` are the buckets the object layer finds on a
    /// majority of drives: one without a record (made before records existed) gets one.
    pub async fn load(
        &self,
        dirs: &[(String, i64)],
        default_owner: &str,
    ) -> Result<(), BucketError> {
        let all = self.records.all::<BucketConfig>().await?;
        let mut fresh = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, r) in all {
            seen.insert(name.clone());
            if let Some(config) = r.value {
                fresh.insert(name, Arc::new(Bucket::new(config, r.stamp)));
            }
        }
        for (name, created) in dirs {
            if seen.contains(name) {
                continue;
            }
            let config =
                BucketConfig::new(name, *created, default_owner, ObjectOwnership::ObjectWriter);
            match self.records.put(name, Some(&config), 0).await {
                Ok(stamp) => {
                    fresh.insert(name.clone(), Arc::new(Bucket::new(config, stamp)));
                }
                Err(e) => tracing::warn!(bucket = %name, error = %e, "bucket record not written"),
            }
        }
        {
            let mut cache = self.cache.write();
            // Entries changed through this node while the load ran are newer: keep them.
            for (name, b) in fresh {
                match cache.get(&name) {
                    Some(c) if c.stamp > b.stamp => {}
                    _ => {
                        cache.insert(name, b);
                    }
                }
            }
        }
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Re-read every record (the periodic safety net): buckets gone from the drives leave
    /// the cache, new and changed ones enter it.
    pub async fn refresh(&self) -> Result<(), BucketError> {
        let all = self.records.all::<BucketConfig>().await?;
        let mut live = HashMap::new();
        for (name, r) in all {
            live.insert(name, r);
        }
        let mut cache = self.cache.write();
        cache.retain(|name, b| match live.get(name) {
            Some(r) => r.value.is_some() || r.stamp < b.stamp,
            None => false,
        });
        for (name, r) in live {
            let Some(config) = r.value else { continue };
            if cache.get(&name).is_none_or(|c| c.stamp < r.stamp) {
                cache.insert(name, Arc::new(Bucket::new(config, r.stamp)));
            }
        }
        Ok(())
    }

    /// Re-read every record every [`REFRESH`] until `stop`.
    pub fn spawn_refresh(self: &Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        crate::records::spawn_refresh(self, REFRESH, stop, "bucket records", |me| async move {
            me.refresh().await
        });
    }

    async fn notify(&self, name: &str) {
        let n = self.notifier.read().clone();
        if let Some(n) = n {
            n.changed(CHANGED_SERVICE, name).await;
        }
    }

    fn install(&self, config: BucketConfig, stamp: i64) -> Arc<Bucket> {
        let b = Arc::new(Bucket::new(config, stamp));
        self.cache.write().insert(b.config.name.clone(), b.clone());
        b
    }

    /// Write the record of a bucket just made (its directories exist on a quorum).
    pub async fn create(&self, config: BucketConfig) -> Result<Arc<Bucket>, BucketError> {
        let _guard = self.config_lock(&config.name).await?;
        let prev = self.records.read::<BucketConfig>(&config.name).await?;
        let stamp = self
            .records
            .put(&config.name, Some(&config), prev.map_or(0, |p| p.stamp))
            .await?;
        let name = config.name.clone();
        let b = self.install(config, stamp);
        self.notify(&name).await;
        Ok(b)
    }

    /// Change a bucket's settings under its configuration lock (read from the drives, not
    /// the cache, so concurrent changes through two nodes do not lose one).
    pub async fn update<F>(&self, name: &str, change: F) -> Result<Arc<Bucket>, BucketError>
    where
        F: FnOnce(&mut BucketConfig) -> Result<(), BucketError>,
    {
        let _guard = self.config_lock(name).await?;
        let Some(rec) = self.records.read::<BucketConfig>(name).await? else {
            return Err(BucketError::NoSuchBucket);
        };
        let Some(mut config) = rec.value else {
            return Err(BucketError::NoSuchBucket);
        };
        change(&mut config)?;
        let stamp = self.records.put(name, Some(&config), rec.stamp).await?;
        let b = self.install(config, stamp);
        self.notify(name).await;
        Ok(b)
    }

    /// The bucket is gone: tombstone its record, drop it from this node's cache and from
    /// every peer's before returning.
    pub async fn remove(&self, name: &str) -> Result<(), BucketError> {
        self.removal(name).await?.remove().await
    }

    /// The record's lock, taken before a bucket's folders go: a lock that cannot be had
    /// then leaves folders and record as they were (taken after, a bucket whose folders
    /// are gone would keep its record, and heal would make the folders again).
    pub async fn removal(&self, name: &str) -> Result<Removal<'_>, BucketError> {
        Ok(Removal {
            store: self,
            name: name.to_string(),
            _guard: self.config_lock(name).await?,
        })
    }

    /// Copy every record to drives that miss it or hold an older copy, each under the
    /// lock its writers take.
    pub async fn heal(&self) -> Result<usize, BucketError> {
        let locker = self.locker.read().clone();
        Ok(self
            .records
            .heal_all(Some((locker.as_ref(), config_lock_name)))
            .await?)
    }

    /// The lock every writer of a bucket's record holds (create, update, remove, heal).
    async fn config_lock(&self, name: &str) -> Result<crate::lock::LockGuard, BucketError> {
        let locker = self.locker.read().clone();
        Ok(locker
            .lock(&config_lock_name("", name), true, LOCK_TIMEOUT)
            .await?)
    }
}

/// A bucket record's removal, its lock held ([`BucketStore::removal`]).
pub struct Removal<'a> {
    store: &'a BucketStore,
    name: String,
    _guard: crate::lock::LockGuard,
}

impl Removal<'_> {
    pub async fn remove(self) -> Result<(), BucketError> {
        let (store, name) = (self.store, self.name.as_str());
        let prev = store.records.read::<BucketConfig>(name).await?;
        store
            .records
            .put::<BucketConfig>(name, None, prev.map_or(0, |p| p.stamp))
            .await?;
        store.cache.write().remove(name);
        store.notify(name).await;
        Ok(())
    }
}

/// The name of the lock of bucket `name`'s record (any directory: buckets have one).
fn config_lock_name(_dir: &str, name: &str) -> String {
    format!("bucket-config/{name}")
}

/// Peers tell this node that a bucket changed: re-read its record.
#[async_trait::async_trait]
impl crate::rpc::Service for BucketStore {
    async fn call(&self, body: bytes::Bytes) -> Result<Vec<u8>, String> {
        let name = std::str::from_utf8(&body).map_err(|e| e.to_string())?;
        self.reload(name).await.map_err(|e| e.to_string())?;
        Ok(Vec::new())
    }
}
