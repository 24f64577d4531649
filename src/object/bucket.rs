//! Buckets (on every drive of every set), object deletion and server-side copy.

use std::collections::BTreeMap;

use futures::TryStreamExt;

use super::quorum::fan_out;
use super::{
    check_bucket, check_key, now_nanos, ObjectError, ObjectInfo, ObjectResult, PutOptions, Store,
    WriteCondition, LOCK_TIMEOUT,
};
use std::sync::Arc;

use uuid::Uuid;

use super::VersionRef;
use crate::bucket::{BucketConfig, BucketStore, Versioning};
use crate::drive::{BucketEntry, DriveError};
use crate::meta::{ErasureInfo, ObjectMeta, Version, VersionKind};
use crate::placement::write_quorum;

/// What a lifecycle expiry expects of a key's versions when it acts (see
/// [`Store::expire_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The latest version is still this object: expire it (a delete marker on a
    /// versioned bucket, removal on an unversioned one).
    Latest {
        version_id: Option<Uuid>,
        mod_time: i64,
    },
    /// This delete marker is still the key's only version: remove it.
    OnlyMarker { version_id: Option<Uuid> },
    /// This version is still there and not the latest: remove it.
    Noncurrent { version_id: Option<Uuid> },
}

impl Expect {
    /// Whether `versions` (newest first, as a read quorum holds them) are as expected.
    fn holds(self, versions: &[Version]) -> bool {
        match self {
            Expect::Latest {
                version_id,
                mod_time,
            } => versions.first().is_some_and(|v| {
                v.kind == VersionKind::Object
                    && v.version_id == version_id
                    && v.mod_time == mod_time
            }),
            Expect::OnlyMarker { version_id } => {
                matches!(versions, [v] if v.kind == VersionKind::DeleteMarker && v.version_id == version_id)
            }
            Expect::Noncurrent { version_id } => {
                versions.iter().skip(1).any(|v| v.version_id == version_id)
            }
        }
    }
}

/// What a delete did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed or the marker written (`None`: the null version).
    pub version_id: Option<Uuid>,
    /// A delete marker was written, or the version removed was one.
    pub delete_marker: bool,
    /// Whether a version id applies to the answer (false on a never-versioned bucket).
    pub versioned: bool,
}

/// The buckets a majority of the drives that answered hold, with their earliest creation
/// time (only valid bucket names: a drive's root may also hold `lost+found` and the like).
pub(crate) fn majority_buckets(
    results: Vec<crate::drive::DriveResult<Vec<BucketEntry>>>,
) -> Vec<BucketEntry> {
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let mut seen: BTreeMap<String, (usize, i64)> = BTreeMap::new();
    for b in results
        .into_iter()
        .flatten()
        .flatten()
        .filter(|b| super::valid_bucket_name(&b.name))
    {
        let e = seen.entry(b.name).or_insert((0, i64::MAX));
        e.0 += 1;
        if b.created > 0 {
            e.1 = e.1.min(b.created);
        }
    }
    seen.into_iter()
        .filter(|(_, (n, _))| *n * 2 > answered)
        .map(|(name, (_, created))| BucketEntry {
            name,
            created: if created == i64::MAX { 0 } else { created },
        })
        .collect()
}

impl Store {
    fn drive_count(&self) -> usize {
        self.sets.iter().map(|s| s.size()).sum()
    }

    /// Bucket operations need a majority of all drives.
    fn bucket_quorum(&self) -> usize {
        self.drive_count() / 2 + 1
    }

    /// The bucket configuration store (settings of every bucket, cached).
    pub fn buckets(&self) -> &Arc<BucketStore> {
        &self.buckets
    }

    /// Make a bucket with a default configuration.
    pub async fn make_bucket(&self, bucket: &str) -> ObjectResult<()> {
        self.create_bucket(BucketConfig::new(
            bucket,
            0,
            "",
            crate::bucket::ObjectOwnership::ObjectWriter,
        ))
        .await
    }

    /// Make a bucket: its directory on every drive (a majority must succeed), then its
    /// configuration record (`config.created` is set here).
    pub async fn create_bucket(&self, mut config: BucketConfig) -> ObjectResult<()> {
        let bucket = config.name.clone();
        let bucket = bucket.as_str();
        check_bucket(bucket)?;
        let _guard = self
            .locker
            .lock(&format!("bucket/{bucket}"), true, LOCK_TIMEOUT)
            .await?;
        let created = now_nanos();
        let drives: Vec<_> = self.all_drives().cloned().collect();
        let results = fan_out(&drives, |_, d| d.make_bucket(bucket, created)).await;
        let exists = results
            .iter()
            .filter(|r| matches!(r, Err(DriveError::BucketExists)))
            .count();
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let quorum = self.bucket_quorum();
        config.created = created;
        // The directories are there: the record makes the bucket visible to every node.
        let recorded = if exists >= quorum || ok + exists < quorum {
            Ok(())
        } else {
            self.buckets.create(config).await.map(|_| ())
        };
        if exists >= quorum || ok + exists < quorum || recorded.is_err() {
            // Undo what this call created so a half-made bucket does not linger.
            let _ = fan_out(&drives, |i, d| {
                let mine = results[i].is_ok();
                async move {
                    if mine {
                        d.delete_bucket(bucket).await
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
            return Err(if exists >= quorum {
                ObjectError::BucketExists
            } else if let Err(e) = recorded {
                e.into()
            } else {
                ObjectError::WriteQuorum { ok, need: quorum }
            });
        }
        Ok(())
    }

    /// Buckets present on a majority of the drives that answered, with their creation time.
    pub async fn list_buckets(&self) -> ObjectResult<Vec<BucketEntry>> {
        let drives: Vec<_> = self.all_drives().cloned().collect();
        let results = fan_out(&drives, |_, d| d.list_buckets()).await;
        let answered = results.iter().filter(|r| r.is_ok()).count();
        if answered * 2 < self.drive_count() {
            return Err(ObjectError::ReadQuorum {
                ok: answered,
                need: self.drive_count().div_ceil(2),
            });
        }
        Ok(majority_buckets(results))
    }

    /// Create, on every drive that lacks them, the buckets a majority of drives has (a
    /// replaced or returning drive). Returns how many bucket directories were made.
    pub async fn heal_buckets(&self) -> ObjectResult<usize> {
        let buckets = self.list_buckets().await?;
        let drives: Vec<_> = self.all_drives().cloned().collect();
        let made = fan_out(&drives, |_, d| {
            let buckets = &buckets;
            async move {
                let have = d.list_buckets().await?;
                let mut made = 0;
                for b in buckets
                    .iter()
                    .filter(|b| !have.iter().any(|h| h.name == b.name))
                {
                    match d.make_bucket(&b.name, b.created).await {
                        Ok(()) => made += 1,
                        Err(DriveError::BucketExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(made)
            }
        })
        .await;
        if let Err(e) = self.buckets.heal().await {
            tracing::warn!(error = %e, "bucket records not healed");
        }
        Ok(made.into_iter().flatten().sum())
    }

    /// From the configuration cache (a miss reads the bucket's record from the drives).
    pub async fn bucket_exists(&self, bucket: &str) -> ObjectResult<bool> {
        check_bucket(bucket)?;
        Ok(self.buckets.get(bucket).await?.is_some())
    }

    /// The buckets' configurations, from the cache once it is loaded (else every record
    /// is read).
    pub async fn bucket_configs(&self) -> ObjectResult<Vec<Arc<crate::bucket::Bucket>>> {
        if !self.buckets.is_loaded() {
            self.load_buckets("").await?;
        }
        Ok(self.buckets.list())
    }

    /// Read every bucket record into the cache; buckets found on the drives without one
    /// (made by an older version) get one owned by `default_owner`.
    pub async fn load_buckets(&self, default_owner: &str) -> ObjectResult<()> {
        let dirs: Vec<(String, i64)> = self
            .list_buckets()
            .await?
            .into_iter()
            .map(|b| (b.name, b.created))
            .collect();
        Ok(self.buckets.load(&dirs, default_owner).await?)
    }

    /// Remove an empty bucket.
    pub async fn delete_bucket(&self, bucket: &str) -> ObjectResult<()> {
        check_bucket(bucket)?;
        let _guard = self
            .locker
            .lock(&format!("bucket/{bucket}"), true, LOCK_TIMEOUT)
            .await?;
        if !self.bucket_exists(bucket).await? {
            return Err(ObjectError::NoSuchBucket);
        }
        // Versions and delete markers keep a bucket from being empty, as in S3.
        let page = self
            .list_versions(
                bucket,
                &super::ListOptions {
                    max_keys: 1,
                    ..Default::default()
                },
                None,
            )
            .await?;
        if !page.versions.is_empty() {
            return Err(ObjectError::BucketNotEmpty);
        }
        self.abort_bucket_uploads(bucket).await?;
        let removal = self.buckets.removal(bucket).await?;
        let drives: Vec<_> = self.all_drives().cloned().collect();
        let results = fan_out(&drives, |_, d| d.delete_bucket(bucket)).await;
        let gone = removal.remove().await;
        if results
            .iter()
            .any(|r| matches!(r, Err(DriveError::BucketNotEmpty)))
        {
            // Leftovers below read quorum on some drive: the scanner will clean them.
            tracing::warn!(
                bucket,
                "bucket deleted with dangling objects on some drives"
            );
        }
        let ok = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Ok(()) | Err(DriveError::BucketNotFound | DriveError::BucketNotEmpty)
                )
            })
            .count();
        if ok < self.bucket_quorum() {
            return Err(ObjectError::WriteQuorum {
                ok,
                need: self.bucket_quorum(),
            });
        }
        gone?;
        Ok(())
    }

    /// Set (or remove) one stored header of a version in place (its ACL, its tags).
    pub async fn set_object_header(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        name: &str,
        value: Option<String>,
    ) -> ObjectResult<ObjectInfo> {
        let change = vec![(name.to_string(), value)];
        self.update_object_headers(bucket, key, which, move |_| Ok(change))
            .await
    }

    /// Change stored headers of a version in place: `decide` sees the version a read quorum
    /// agrees on, under the key's write lock, and returns the headers to set (`Some`) or
    /// remove (`None`) — or refuses. A metadata rewrite on every drive of the key's set.
    pub async fn update_object_headers<F>(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        decide: F,
    ) -> ObjectResult<ObjectInfo>
    where
        F: FnOnce(&ObjectInfo) -> ObjectResult<Vec<(String, Option<String>)>>,
    {
        check_bucket(bucket)?;
        check_key(key)?;
        let guard = self
            .locker
            .lock(&format!("{bucket}/{key}"), true, LOCK_TIMEOUT)
            .await?;
        // Under the lock the key cannot move between pools.
        let set = self.home_locked(bucket, key, &guard).await?;
        // The version a read quorum agrees on is the one to change.
        let current = self.head_held(bucket, key, which).await?;
        let changes = decide(&current)?;
        let results = fan_out(&set.drives, |_, d| {
            let changes = changes.clone();
            let (etag, id) = (current.etag.clone(), current.version_id);
            async move {
                let mut meta = ObjectMeta::decode(&d.read_meta(bucket, key).await?)
                    .map_err(|e| DriveError::Io(std::io::Error::other(e.to_string())))?;
                let Some(v) = meta
                    .versions
                    .iter_mut()
                    .find(|v| v.version_id == id && v.etag == etag)
                else {
                    return Err(DriveError::NotFound);
                };
                for (name, value) in changes {
                    match value {
                        Some(x) => v.headers.insert(name, x),
                        None => v.headers.remove(&name),
                    };
                }
                d.write_meta(bucket, key, Some(bytes::Bytes::from(meta.encode())), None)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        let need = write_quorum(set.size() - set.parity, set.parity);
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok < set.size() {
            self.heal_queue.push(bucket, key);
        }
        super::quorum::write_ok(&results, need)?;
        Ok(current)
    }

    /// The bucket's versioning state (`None`: never versioned).
    pub async fn versioning(&self, bucket: &str) -> ObjectResult<Option<Versioning>> {
        Ok(self
            .buckets
            .get(bucket)
            .await?
            .ok_or(ObjectError::NoSuchBucket)?
            .config
            .versioning)
    }

    /// The id a new version of an object in `bucket` gets: a fresh time-ordered id when
    /// versioning is enabled, else the null version.
    pub(crate) async fn new_version_id(&self, bucket: &str) -> ObjectResult<Option<Uuid>> {
        Ok(match self.versioning(bucket).await? {
            Some(Versioning::Enabled) => Some(Uuid::now_v7()),
            _ => None,
        })
    }

    /// Remove `bucket/key` as S3's DELETE without a version id does: on an unversioned
    /// bucket the object goes (absent keys succeed); on a versioned one a delete marker
    /// becomes the latest version (the null one when versioning is suspended).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> ObjectResult<Deleted> {
        self.delete_version(bucket, key, VersionRef::Latest, false)
            .await
    }

    /// DELETE with `which`: [`VersionRef::Id`] removes that version (or marker) for good,
    /// unless its object lock protects it (a governance retention yields to
    /// `bypass_governance`; a compliance retention and a legal hold to nobody).
    pub async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        bypass_governance: bool,
    ) -> ObjectResult<Deleted> {
        self.delete_checked(bucket, key, which, bypass_governance, None)
            .await
    }

    /// A lifecycle expiry: the delete `expect` implies, done only if, under the key's
    /// lock, the versions are still as the decision saw them (else `PreconditionFailed`:
    /// a version written or removed since is never the one expired). Object lock applies
    /// as to any client, without bypass.
    pub async fn expire_version(
        &self,
        bucket: &str,
        key: &str,
        expect: Expect,
    ) -> ObjectResult<Deleted> {
        let which = match expect {
            Expect::Latest { .. } => VersionRef::Latest,
            Expect::OnlyMarker { version_id } | Expect::Noncurrent { version_id } => {
                VersionRef::Id(version_id)
            }
        };
        self.delete_checked(bucket, key, which, false, Some(expect))
            .await
    }

    async fn delete_checked(
        &self,
        bucket: &str,
        key: &str,
        which: VersionRef,
        bypass_governance: bool,
        expect: Option<Expect>,
    ) -> ObjectResult<Deleted> {
        check_bucket(bucket)?;
        check_key(key)?;
        let versioning = self.versioning(bucket).await?;
        let guard = self
            .locker
            .lock(&format!("{bucket}/{key}"), true, LOCK_TIMEOUT)
            .await?;
        // Under the lock the key cannot move between pools; a key no pool holds gets its
        // delete marker where a new key would go.
        let set = self.home_locked(bucket, key, &guard).await?;
        self.check_bucket_on_set(set, bucket, key).await?;
        let current = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
        if let Some(expect) = expect {
            let versions = super::quorum::agreed_versions(&super::quorum::copies(&current));
            if !expect.holds(&versions) {
                return Err(ObjectError::PreconditionFailed);
            }
        }
        if let VersionRef::Id(_) = which {
            // The version a read quorum agrees on is the one whose lock decides.
            match super::quorum::agree_ref(set, super::quorum::copies(&current), which) {
                Ok(a) => {
                    let lock = super::retention::Retention::of(&a.latest.headers);
                    if lock.protects(super::retention::now_secs(), bypass_governance) {
                        return Err(ObjectError::ObjectLocked);
                    }
                }
                Err(ObjectError::NoSuchVersion | ObjectError::NoSuchKey) => {}
                Err(e) => return Err(e),
            }
        }
        // What each drive does with its metadata: take a version out, or put a marker in
        // front (newer than every version it goes before).
        let (remove, marker) = match (which, versioning) {
            (VersionRef::Id(id), _) => (Some(id), None),
            (VersionRef::Latest, None) => (Some(None), None),
            (VersionRef::Latest, Some(state)) => {
                let id = (state == Versioning::Enabled).then(Uuid::now_v7);
                let mut m = self.delete_marker(set, bucket, key, id);
                m.mod_time = m
                    .mod_time
                    .max(super::put::newest_mod_time(&current).saturating_add(1));
                (None, Some(m))
            }
        };
        if !guard.held() {
            return Err(ObjectError::LockLost);
        }
        let results = fan_out(&set.drives, |i, d| {
            let marker = marker.clone().map(|mut m| {
                m.erasure.index = m.erasure.distribution[i];
                m
            });
            let meta = match &current[i] {
                Ok(b) => Ok(ObjectMeta::decode(b).unwrap_or_default()),
                Err(DriveError::NotFound) => Err(None),
                Err(e) => Err(Some(e.to_string())),
            };
            async move {
                let mut meta = match meta {
                    Ok(m) => m,
                    Err(None) if marker.is_some() => ObjectMeta::default(),
                    Err(None) => return Ok((false, false, None)),
                    Err(Some(e)) => return Err(DriveError::Offline(e)),
                };
                let removed = match (remove, marker) {
                    (Some(id), _) => meta.remove(id),
                    (None, Some(m)) => meta.upsert(m),
                    (None, None) => None,
                };
                let was_marker = removed
                    .as_ref()
                    .is_some_and(|v| v.kind == VersionKind::DeleteMarker);
                if removed.is_none() && remove.is_some() {
                    return Ok((false, false, None));
                }
                let new = (!meta.versions.is_empty()).then(|| bytes::Bytes::from(meta.encode()));
                d.write_meta(bucket, key, new, None).await?;
                // The removed version's data goes only once a quorum took the change.
                Ok((was_marker, true, removed.and_then(|v| v.data_dir)))
            }
        })
        .await;
        let need = write_quorum(set.size() - set.parity, set.parity);
        let ok = results.iter().filter(|r| r.is_ok()).count();
        if ok < set.size() {
            // The drives that missed the change disagree with the rest until the heal
            // settles the key by quorum.
            self.heal_queue.push(bucket, key);
        }
        if let Err(e) = super::quorum::write_ok(&results, need) {
            if !guard.held() {
                // Another writer may have the key now: what this delete left is heal's to
                // settle, never overwritten blindly.
                return Err(e);
            }
            // Short of quorum: the drives that took the change get their metadata back, so
            // an answer of "not done" leaves the key as it was (a marker left on a read
            // quorum of drives would otherwise stand, and every retry would add another).
            let rolled = fan_out(&set.drives, |i, d| {
                let back = match (&results[i], &current[i]) {
                    (Ok((_, true, _)), Ok(b)) => Some(Some(b.clone())),
                    (Ok((_, true, _)), Err(DriveError::NotFound)) => Some(None),
                    _ => None,
                };
                async move {
                    match back {
                        Some(back) => d.write_meta(bucket, key, back, None).await.map(|_| ()),
                        None => Ok(()),
                    }
                }
            })
            .await;
            for r in rolled.iter().filter_map(|r| r.as_ref().err()) {
                tracing::warn!(bucket, key, error = %r, "a failed delete could not be rolled back on a drive (heal settles it)");
            }
            return Err(e);
        }
        let purged = fan_out(&set.drives, |i, d| {
            let dir = results[i].as_ref().ok().and_then(|r| r.2);
            async move {
                match dir {
                    Some(dir) => d.delete_data_dir(bucket, key, dir).await,
                    None => Ok(()),
                }
            }
        })
        .await;
        for r in purged.iter().filter_map(|r| r.as_ref().err()) {
            tracing::warn!(bucket, key, error = %r, "a deleted version's data stays on a drive");
        }
        if purged.iter().any(|r| r.is_err()) {
            self.heal_queue.push(bucket, key);
        }
        Ok(match (remove, marker) {
            (Some(id), _) => Deleted {
                version_id: id,
                delete_marker: results.iter().any(|r| matches!(r, Ok((true, _, _)))),
                versioned: versioning.is_some() || id.is_some(),
            },
            (None, marker) => Deleted {
                version_id: marker.and_then(|m| m.version_id),
                delete_marker: true,
                versioned: true,
            },
        })
    }

    /// A delete marker for `bucket/key` (its shard index is set per drive).
    fn delete_marker(
        &self,
        set: &super::ErasureSet,
        bucket: &str,
        key: &str,
        version_id: Option<Uuid>,
    ) -> Version {
        Version {
            kind: VersionKind::DeleteMarker,
            version_id,
            mod_time: now_nanos(),
            size: 0,
            etag: String::new(),
            headers: BTreeMap::new(),
            user_meta: BTreeMap::new(),
            checksums: BTreeMap::new(),
            erasure: ErasureInfo::new(
                set.size() - set.parity,
                set.parity,
                self.block_size,
                crate::placement::distribution(bucket, key, set.size()),
            ),
            parts: Vec::new(),
            data_dir: None,
            inline: None,
        }
    }

    /// Server-side copy, streamed. `opts` replaces the metadata; `None` copies it.
    /// `condition` applies to the destination.
    pub async fn copy_object(
        &self,
        (src_bucket, src_key, src_version): (&str, &str, VersionRef),
        dst_bucket: &str,
        dst_key: &str,
        opts: Option<PutOptions>,
        condition: Option<WriteCondition>,
    ) -> ObjectResult<ObjectInfo> {
        let mut reader = self
            .get_version(src_bucket, src_key, src_version, None)
            .await?;
        reader.confirm().await?;
        let src = reader.info().clone();
        let opts = opts.unwrap_or_else(|| PutOptions {
            headers: src.headers.clone(),
            user_meta: src.user_meta.clone(),
            checksums: src.checksums.clone(),
            ..Default::default()
        });
        let opts = PutOptions { condition, ..opts };
        let stream = reader
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let mut body = tokio_util::io::StreamReader::new(Box::pin(stream));
        let info = self
            .put_object(dst_bucket, dst_key, &mut body, Some(src.size), opts)
            .await?;
        // A multipart source keeps its ETag shape only in S3 when copied as-is; a copy here
        // is a new single-part object with the MD5 of its bytes.
        Ok(info)
    }
}
