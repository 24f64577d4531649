//! Multipart uploads. An upload lives on the drives of its key's set under
//! `.cairn.sys/multipart/<upload-id>/`: `upload.json`, and per part a shard file
//! `part.N.<uuid>` with its record `part.N.json` (written last, atomically, so a part is
//! visible whole or not at all). Completing moves the chosen parts into the new version's
//! data directory and commits it like any write.

use std::collections::BTreeMap;

use cairn_erasure::Erasure;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::put::{
    cleanup, commit, encode_stream, info_of, write_geometry, Body, Home, NewVersion, Shards,
};
use super::quorum::{agreed_versions, fan_out, judge};
use super::{
    check_bucket, check_key, now_nanos, ErasureSet, ObjectError, ObjectInfo, ObjectResult,
    PutOptions, Store, WriteCondition, LOCK_TIMEOUT, MAX_PART_NUMBER, MAX_PART_SIZE,
};
use crate::checksum::{composite, full_object, ChecksumAlg, ChecksumType};
use crate::drive::DriveError;
use crate::meta::{ErasureInfo, PartInfo, Version, VersionKind};
use crate::placement::{distribution, read_quorum, write_quorum};

const MULTIPART_DIR: &str = "multipart";

/// Stored header of an object made by CompleteMultipartUpload: the upload's id, so that a
/// retried Complete of the same upload answers with the same result.
pub const UPLOAD_HEADER: &str = "x-cairn-upload-id";

/// What a CompleteMultipartUpload request says about checksums besides the parts.
#[derive(Debug, Clone, Default)]
pub struct CompleteChecksums {
    /// For each listed part (in the order of the parts), the checksums the request gives
    /// for it (algorithm name → base64): each must be the part's stored one.
    pub parts: Vec<BTreeMap<String, String>>,
    /// `x-amz-checksum-type`, if sent: must be the upload's.
    pub kind: Option<ChecksumType>,
    /// `x-amz-checksum-<alg>`: the object checksum the client expects (a composite value
    /// with or without its `-N` suffix).
    pub expected: Option<(ChecksumAlg, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct UploadRecord {
    bucket: String,
    key: String,
    initiated: i64,
    headers: BTreeMap<String, String>,
    user_meta: BTreeMap<String, String>,
    data: u16,
    parity: u16,
    block_size: u32,
    /// `x-amz-checksum-algorithm` and `-type` of CreateMultipartUpload (names as in S3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartRecord {
    number: u32,
    size: u64,
    etag: String,
    mod_time: i64,
    /// Name of the shard file in the upload directory.
    file: String,
    checksums: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
}

/// An upload in progress, as ListMultipartUploads reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: i64,
    /// The checksum algorithm and type the upload was created with.
    pub checksum: Option<(ChecksumAlg, ChecksumType)>,
}

/// A part as ListParts reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub mod_time: i64,
    pub checksums: BTreeMap<String, String>,
    /// [`PutOptions::part_meta`] of the part's upload.
    pub meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct PartListing {
    /// The checksum algorithm and type the upload was created with.
    pub checksum: Option<(ChecksumAlg, ChecksumType)>,
    pub parts: Vec<UploadedPart>,
    pub truncated: bool,
    pub next_marker: Option<u32>,
}

impl UploadRecord {
    /// The checksum algorithm and type of CreateMultipartUpload, if it named one.
    fn checksum(&self) -> Option<(ChecksumAlg, ChecksumType)> {
        let alg = ChecksumAlg::parse(self.checksum_algorithm.as_deref()?)?;
        let kind = self
            .checksum_type
            .as_deref()
            .and_then(ChecksumType::parse)
            .unwrap_or(ChecksumType::default_for(alg));
        Some((alg, kind))
    }
}

/// What an upload in progress was created with.
#[derive(Debug, Clone, Default)]
pub struct UploadSettings {
    /// The headers kept for the object (content type, encryption envelope, ...).
    pub headers: BTreeMap<String, String>,
    /// The checksum algorithm and type every part must carry.
    pub checksum: Option<(ChecksumAlg, ChecksumType)>,
}

fn upload_dir(id: &Uuid) -> String {
    format!("{MULTIPART_DIR}/{id}")
}

/// Upload ids are ours (UUIDs); anything else names no upload.
fn parse_upload_id(id: &str) -> ObjectResult<Uuid> {
    // Case-sensitive, as the ids handed out (hyphenated lower case): another spelling of
    // an id is not that upload.
    Uuid::parse_str(id)
        .ok()
        .filter(|u| u.hyphenated().to_string() == id)
        .ok_or(ObjectError::NoSuchUpload)
}

/// Drives that must agree on an upload record: the read quorum, at most half the set.
fn record_quorum(set: &ErasureSet) -> usize {
    read_quorum(set.size() - set.parity).min(set.size().div_ceil(2))
}

/// The JSON record a read quorum of drives agrees on, if any.
async fn agreed_record<T: for<'de> Deserialize<'de> + PartialEq + Clone>(
    set: &ErasureSet,
    path: &str,
    quorum: usize,
) -> Option<T> {
    let results = fan_out(&set.drives, |_, d| d.read_sys(path)).await;
    let records: Vec<T> = results
        .into_iter()
        .filter_map(|r| r.ok().and_then(|b| serde_json::from_slice(&b).ok()))
        .collect();
    records
        .iter()
        .find(|r| records.iter().filter(|x| x == r).count() >= quorum)
        .cloned()
}

impl Store {
    async fn load_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &Uuid,
    ) -> ObjectResult<(&ErasureSet, UploadRecord)> {
        // An upload completes in the pool where it started: look in each.
        for pool in 0..self.pools.len() {
            let set = self.set_in_pool(pool, key);
            let quorum = record_quorum(set);
            let record: Option<UploadRecord> =
                agreed_record(set, &format!("{}/upload.json", upload_dir(id)), quorum).await;
            if let Some(record) = record {
                if record.bucket != bucket || record.key != key {
                    return Err(ObjectError::NoSuchUpload);
                }
                return Ok((set, record));
            }
        }
        Err(ObjectError::NoSuchUpload)
    }

    /// The headers an upload was started with (they become its object's).
    pub async fn upload_settings(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> ObjectResult<UploadSettings> {
        check_bucket(bucket)?;
        check_key(key)?;
        let id = parse_upload_id(upload_id)?;
        let (_, rec) = self.load_upload(bucket, key, &id).await?;
        Ok(UploadSettings {
            checksum: rec.checksum(),
            headers: rec.headers,
        })
    }

    /// Change the stored headers of an upload in progress (a re-sealed key, say): `decide`
    /// sees them under the upload's exclusive lock and returns what to set or remove (an
    /// empty list changes nothing).
    pub async fn update_upload_headers<F>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        decide: F,
    ) -> ObjectResult<bool>
    where
        F: FnOnce(&BTreeMap<String, String>) -> ObjectResult<Vec<(String, Option<String>)>>,
    {
        check_bucket(bucket)?;
        check_key(key)?;
        let id = parse_upload_id(upload_id)?;
        let _guard = self
            .locker
            .lock(&format!("upload/{id}"), true, LOCK_TIMEOUT)
            .await?;
        let (set, mut rec) = self.load_upload(bucket, key, &id).await?;
        let changes = decide(&rec.headers)?;
        if changes.is_empty() {
            return Ok(false);
        }
        for (name, value) in changes {
            match value {
                Some(v) => rec.headers.insert(name, v),
                None => rec.headers.remove(&name),
            };
        }
        let bytes = bytes::Bytes::from(serde_json::to_vec(&rec).unwrap_or_default());
        let path = format!("{}/upload.json", upload_dir(&id));
        // Only where the upload still is: an abort racing this must not bring it back.
        let results = fan_out(&set.drives, |_, d| {
            let (bytes, path) = (bytes.clone(), &path);
            async move {
                d.read_sys(path).await?;
                d.write_sys(path, bytes).await
            }
        })
        .await;
        super::quorum::write_ok(
            &results,
            write_quorum(rec.data as usize, rec.parity as usize),
        )?;
        Ok(true)
    }

    /// Start an upload; returns its id.
    pub async fn create_multipart(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
    ) -> ObjectResult<String> {
        check_bucket(bucket)?;
        check_key(key)?;
        let set = self.write_home(bucket, key, None).await?;
        let offline = self.check_bucket_on_set(set, bucket, key).await?;
        let (data, parity) = write_geometry(set, self.parity_for(set, &opts.headers), offline);
        let id = Uuid::new_v4();
        let block_size = opts.block_size_or(self.block_size);
        let record = UploadRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            initiated: now_nanos(),
            headers: opts.headers,
            user_meta: opts.user_meta,
            data: data as u16,
            parity: parity as u16,
            block_size: block_size as u32,
            checksum_algorithm: opts.upload_checksum.map(|(a, _)| a.name().to_string()),
            checksum_type: opts.upload_checksum.map(|(_, t)| t.name().to_string()),
        };
        let bytes = bytes::Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let path = format!("{}/upload.json", upload_dir(&id));
        let results = fan_out(&set.drives, |_, d| d.write_sys(&path, bytes.clone())).await;
        if let Err(e) = super::quorum::write_ok(&results, write_quorum(data, parity)) {
            cleanup(&set.drives, &upload_dir(&id)).await;
            return Err(e);
        }
        Ok(id.to_string())
    }

    /// Store one part; returns its ETag (hex MD5).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Body<'_>,
        size: Option<u64>,
        opts: PutOptions,
    ) -> ObjectResult<UploadedPart> {
        check_bucket(bucket)?;
        check_key(key)?;
        if !(1..=MAX_PART_NUMBER).contains(&number) {
            return Err(ObjectError::InvalidArgument(format!(
                "part number must be an integer between 1 and {MAX_PART_NUMBER}"
            )));
        }
        if size.is_some_and(|s| s > MAX_PART_SIZE) {
            return Err(ObjectError::EntityTooLarge);
        }
        let id = parse_upload_id(upload_id)?;
        let (set, rec) = self.load_upload(bucket, key, &id).await?;
        let erasure = Erasure::new(
            rec.data as usize,
            rec.parity as usize,
            rec.block_size as usize,
        )
        .map_err(|e| ObjectError::Internal(e.to_string()))?;
        let dist = distribution(bucket, key, set.size());
        let quorum = write_quorum(rec.data as usize, rec.parity as usize);
        // A staged part is one file, renamed into the upload: nothing to delete afterwards.
        let txn = format!("tmp/{}", Uuid::new_v4());
        let result = async {
            let hash = opts.etag.is_none() || opts.content_md5.is_some();
            let enc =
                encode_stream(set, &dist, &erasure, body, size, &txn, false, hash, quorum).await?;
            if enc.size > MAX_PART_SIZE {
                return Err(ObjectError::EntityTooLarge);
            }
            if opts.content_md5.is_some_and(|m| m != enc.md5) {
                return Err(ObjectError::BadDigest);
            }
            let Shards::Staged(ok) = enc.shards else {
                return Err(ObjectError::Internal("part was inlined".into()));
            };
            let _guard = self
                .locker
                .lock(&format!("upload/{id}"), false, LOCK_TIMEOUT)
                .await?;
            let file = format!("part.{number}.{}", Uuid::new_v4());
            let etag = opts
                .etag
                .as_ref()
                .and_then(|e| e.lock().clone())
                .unwrap_or_else(|| hex::encode(enc.md5));
            let record = PartRecord {
                number,
                size: enc.size,
                etag,
                mod_time: now_nanos(),
                file: file.clone(),
                checksums: opts.final_checksums(),
                meta: opts.part_meta.clone(),
            };
            let json = bytes::Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
            let dir = upload_dir(&id);
            let record_path = format!("{dir}/part.{number}.json");
            let results = fan_out(&set.drives, |i, d| {
                let (json, txn, dir, file, record_path) =
                    (json.clone(), &txn, &dir, &file, &record_path);
                let written = ok[i];
                async move {
                    if !written {
                        return Err(DriveError::NotDone("part not written"));
                    }
                    // The upload may have been aborted meanwhile: do not resurrect it.
                    d.read_sys(&format!("{dir}/upload.json")).await?;
                    let old: Option<PartRecord> = d
                        .read_sys(record_path)
                        .await
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    d.rename_sys(txn, &format!("{dir}/{file}")).await?;
                    d.write_sys(record_path, json).await?;
                    if let Some(old) = old {
                        let _ = d.delete_sys(&format!("{dir}/{}", old.file)).await;
                    }
                    Ok(())
                }
            })
            .await;
            let done = results.iter().filter(|r| r.is_ok()).count();
            if done < quorum {
                if results
                    .iter()
                    .filter(|r| matches!(r, Err(DriveError::NotFound)))
                    .count()
                    * 2
                    > set.size()
                {
                    return Err(ObjectError::NoSuchUpload);
                }
                super::quorum::write_ok(&results, quorum)?;
            }
            Ok(UploadedPart {
                number,
                size: record.size,
                etag: record.etag,
                mod_time: record.mod_time,
                checksums: record.checksums,
                meta: record.meta,
            })
        }
        .await;
        cleanup(&set.drives, &txn).await;
        result
    }

    /// Parts of an upload in part-number order, after `marker`.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        marker: u32,
        max_parts: usize,
    ) -> ObjectResult<PartListing> {
        check_bucket(bucket)?;
        check_key(key)?;
        let id = parse_upload_id(upload_id)?;
        let (set, rec) = self.load_upload(bucket, key, &id).await?;
        let records = self.part_records(set, &rec, &id).await?;
        let mut listing = PartListing {
            checksum: rec.checksum(),
            ..Default::default()
        };
        for r in records.into_values().filter(|r| r.number > marker) {
            if listing.parts.len() == max_parts {
                listing.truncated = true;
                break;
            }
            listing.next_marker = Some(r.number);
            listing.parts.push(UploadedPart {
                number: r.number,
                size: r.size,
                etag: r.etag,
                mod_time: r.mod_time,
                checksums: r.checksums,
                meta: r.meta,
            });
        }
        Ok(listing)
    }

    /// Part records a read quorum of drives agrees on, by part number.
    async fn part_records(
        &self,
        set: &ErasureSet,
        rec: &UploadRecord,
        id: &Uuid,
    ) -> ObjectResult<BTreeMap<u32, PartRecord>> {
        let dir = upload_dir(id);
        let names = fan_out(&set.drives, |_, d| d.list_sys(&dir)).await;
        let mut numbers: Vec<u32> = names
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|n| n.strip_prefix("part.")?.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let quorum = read_quorum(rec.data as usize);
        let mut out = BTreeMap::new();
        for n in numbers {
            if let Some(r) =
                agreed_record::<PartRecord>(set, &format!("{dir}/part.{n}.json"), quorum).await
            {
                out.insert(n, r);
            }
        }
        Ok(out)
    }

    /// Assemble the listed parts into the object. ETag: `md5(concat(part md5s))-N`.
    pub async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<&WriteCondition>,
    ) -> ObjectResult<ObjectInfo> {
        let checks = CompleteChecksums::default();
        self.complete_multipart_checked(bucket, key, upload_id, parts, condition, &checks)
            .await
            .map(|(info, _)| info)
    }

    /// [`Store::complete_multipart`], checking the request's checksums and making the
    /// object's checksum of the upload's type (composite or full-object). Also says whether
    /// the answer repeats an earlier completion of the same upload (a retried Complete).
    pub async fn complete_multipart_checked(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Option<&WriteCondition>,
        checks: &CompleteChecksums,
    ) -> ObjectResult<(ObjectInfo, bool)> {
        check_bucket(bucket)?;
        check_key(key)?;
        let id = parse_upload_id(upload_id)?;
        let _upload_guard = self
            .locker
            .lock(&format!("upload/{id}"), true, LOCK_TIMEOUT)
            .await?;
        let (set, rec) = match self.load_upload(bucket, key, &id).await {
            Err(ObjectError::NoSuchUpload) => {
                return self.completed_upload(bucket, key, &id, parts).await
            }
            other => other?,
        };
        // Committed before a crash kept it from removing the upload: that completion stands
        // (the same answer for the same parts; other parts find the upload gone).
        if self.made_by_upload(bucket, key, &id).await.is_some() {
            cleanup(&set.drives, &upload_dir(&id)).await;
            return self.completed_upload(bucket, key, &id, parts).await;
        }
        if let Some(cond) = condition {
            judge(set, bucket, key, cond).await?;
        }
        if parts.is_empty() {
            return Err(ObjectError::InvalidPart("no parts given".into()));
        }
        if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ObjectError::InvalidPartOrder);
        }
        let records = self.part_records(set, &rec, &id).await?;
        let mut chosen = Vec::with_capacity(parts.len());
        for (number, etag) in parts {
            let r = records.get(number).ok_or_else(|| {
                ObjectError::InvalidPart(format!("part {number} was not uploaded"))
            })?;
            if r.etag != etag.trim_matches('"') {
                return Err(ObjectError::InvalidPart(format!(
                    "part {number} has ETag {}",
                    r.etag
                )));
            }
            chosen.push(r.clone());
        }
        // Sizes are checked once every part is known to exist, as S3 does.
        let all_but_last = &chosen[..chosen.len() - 1];
        if let Some(small) = all_but_last.iter().find(|r| r.size < self.min_part_size) {
            return Err(ObjectError::EntityTooSmall(small.number));
        }
        let mut md5 = Md5::new();
        for r in &chosen {
            md5.update(hex::decode(&r.etag).unwrap_or_default());
        }
        let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
        let size: u64 = chosen.iter().map(|r| r.size).sum();
        let checksums = object_checksums(&rec, &chosen, checks)?;
        let mut headers = rec.headers.clone();
        headers.insert(UPLOAD_HEADER.to_string(), id.to_string());
        let data_dir = Uuid::new_v4();
        let staged = format!("tmp/{data_dir}");
        let dir = upload_dir(&id);
        // The object's data directory is staged from hard links: the upload stays whole
        // until the object is committed, so a crash at any point leaves the upload
        // completable (staging is swept at start) or the object in place.
        let links = fan_out(&set.drives, |_, d| {
            let (chosen, staged, dir) = (&chosen, &staged, &dir);
            async move {
                for r in chosen {
                    d.link_sys(
                        &format!("{dir}/{}", r.file),
                        &format!("{staged}/part.{}", r.number),
                    )
                    .await?;
                }
                Ok(())
            }
        })
        .await;
        let dist = distribution(bucket, key, set.size());
        let version_id = self.new_version_id(bucket).await?;
        let version = Version {
            kind: VersionKind::Object,
            version_id,
            mod_time: now_nanos(),
            size,
            etag,
            headers,
            user_meta: rec.user_meta.clone(),
            checksums,
            erasure: ErasureInfo {
                data: rec.data,
                parity: rec.parity,
                block_size: rec.block_size,
                index: 0,
                distribution: dist,
            },
            parts: chosen
                .iter()
                .map(|r| PartInfo {
                    number: r.number,
                    size: r.size,
                    etag: r.etag.clone(),
                    checksums: r.checksums.clone(),
                    meta: r.meta.clone(),
                })
                .collect(),
            data_dir: Some(data_dir),
            inline: None,
        };
        let info = info_of(bucket, key, &version);
        let new = NewVersion {
            version,
            inline: None,
            ok: links.iter().map(Result::is_ok).collect(),
            staged_dir: Some(staged.clone()),
        };
        crate::crash::point(crate::crash::COMPLETE_LINKED);
        let result = commit(self, set, bucket, key, new, condition, Home::Pinned).await;
        cleanup(&set.drives, &staged).await;
        result?;
        crate::crash::point(crate::crash::COMPLETE_COMMITTED);
        cleanup(&set.drives, &dir).await;
        Ok((info, false))
    }

    /// A Complete retried after the upload completed (its answer was lost, say): the same
    /// answer, if a version of the key was made from this upload with exactly these parts;
    /// otherwise the upload is gone.
    async fn completed_upload(
        &self,
        bucket: &str,
        key: &str,
        id: &Uuid,
        parts: &[(u32, String)],
    ) -> ObjectResult<(ObjectInfo, bool)> {
        self.made_by_upload(bucket, key, id)
            .await
            .filter(|v| {
                v.parts.len() == parts.len()
                    && v.parts
                        .iter()
                        .zip(parts)
                        .all(|(p, (n, etag))| p.number == *n && p.etag == etag.trim_matches('"'))
            })
            .map(|v| (info_of(bucket, key, &v), true))
            .ok_or(ObjectError::NoSuchUpload)
    }

    /// The version of `key` that upload `id` made, if a read quorum has it.
    async fn made_by_upload(&self, bucket: &str, key: &str, id: &Uuid) -> Option<Version> {
        let id = id.to_string();
        for pool in 0..self.pools.len() {
            let set = self.set_in_pool(pool, key);
            let metas = fan_out(&set.drives, |_, d| d.read_meta(bucket, key)).await;
            if let Some(v) = agreed_versions(&metas)
                .into_iter()
                .find(|v| v.headers.get(UPLOAD_HEADER) == Some(&id))
            {
                return Some(v);
            }
        }
        None
    }

    pub async fn abort_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> ObjectResult<()> {
        check_bucket(bucket)?;
        check_key(key)?;
        let id = parse_upload_id(upload_id)?;
        let _guard = self
            .locker
            .lock(&format!("upload/{id}"), true, LOCK_TIMEOUT)
            .await?;
        let (set, _) = self.load_upload(bucket, key, &id).await?;
        cleanup(&set.drives, &upload_dir(&id)).await;
        Ok(())
    }

    /// Uploads in progress in `bucket` under `prefix`, ordered by key then initiation time.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> ObjectResult<Vec<MultipartUpload>> {
        self.uploads_in(bucket, prefix, None).await
    }

    /// Uploads in progress in `bucket` that started in server pool `pool`.
    pub async fn list_pool_uploads(
        &self,
        bucket: &str,
        pool: usize,
    ) -> ObjectResult<Vec<MultipartUpload>> {
        self.uploads_in(bucket, "", Some(pool)).await
    }

    async fn uploads_in(
        &self,
        bucket: &str,
        prefix: &str,
        pool: Option<usize>,
    ) -> ObjectResult<Vec<MultipartUpload>> {
        check_bucket(bucket)?;
        let mut out = Vec::new();
        for set in self
            .sets
            .iter()
            .filter(|s| pool.is_none_or(|p| s.pool == p))
        {
            let names = fan_out(&set.drives, |_, d| d.list_sys(MULTIPART_DIR)).await;
            let mut ids: Vec<Uuid> = names
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|n| Uuid::parse_str(&n).ok())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let quorum = record_quorum(set);
            for id in ids {
                let rec: Option<UploadRecord> =
                    agreed_record(set, &format!("{}/upload.json", upload_dir(&id)), quorum).await;
                if let Some(rec) = rec.filter(|r| r.bucket == bucket && r.key.starts_with(prefix)) {
                    out.push(MultipartUpload {
                        checksum: rec.checksum(),
                        key: rec.key,
                        upload_id: id.to_string(),
                        initiated: rec.initiated,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.key, a.initiated).cmp(&(&b.key, b.initiated)));
        Ok(out)
    }

    /// Abort every upload of a bucket (when the bucket is deleted).
    pub(crate) async fn abort_bucket_uploads(&self, bucket: &str) -> ObjectResult<()> {
        for u in self.list_uploads(bucket, "").await? {
            match self.abort_multipart(bucket, &u.key, &u.upload_id).await {
                Ok(()) | Err(ObjectError::NoSuchUpload) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The object checksums of a completed upload: the parts' given checksums must be their
/// stored ones; an upload with an algorithm needs that checksum on every part; the object
/// gets a full-object CRC combined from the parts' (no data is read again) or composite
/// checksums; the client's expected value must match.
fn object_checksums(
    rec: &UploadRecord,
    chosen: &[PartRecord],
    checks: &CompleteChecksums,
) -> ObjectResult<BTreeMap<String, String>> {
    for (r, given) in chosen.iter().zip(&checks.parts) {
        for (alg, value) in given {
            if r.checksums.get(alg) != Some(value) {
                return Err(ObjectError::InvalidPart(format!(
                    "the {alg} checksum given for part {} is not the part's",
                    r.number
                )));
            }
        }
    }
    let alg = rec
        .checksum_algorithm
        .as_deref()
        .and_then(ChecksumAlg::parse);
    let stored_kind = rec.checksum_type.as_deref().and_then(ChecksumType::parse);
    if let (Some(asked), Some(alg)) = (checks.kind, alg) {
        if Some(asked) != stored_kind && stored_kind.is_some() {
            return Err(ObjectError::InvalidRequest(format!(
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                stored_kind.map_or("", ChecksumType::name)
            )));
        }
        if !asked.allows(alg) {
            return Err(ObjectError::InvalidRequest(format!(
                "The {} checksum type cannot be used with the {} checksum algorithm.",
                asked.name(),
                alg.name()
            )));
        }
    }
    if let Some(alg) = alg {
        if let Some(r) = chosen
            .iter()
            .find(|r| !r.checksums.contains_key(alg.name()))
        {
            return Err(ObjectError::InvalidRequest(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                alg.name().to_ascii_lowercase(),
                r.number
            )));
        }
    }
    let kind = checks.kind.or(stored_kind);
    // A composite checksum is of the parts' checksums as the request lists them: each
    // listed part must carry one (AWS's rule; a full-object checksum does not need them).
    if let (Some(alg), Some(ChecksumType::Composite)) = (alg, kind) {
        let given = |i: usize| {
            checks
                .parts
                .get(i)
                .is_some_and(|p| p.contains_key(alg.name()))
        };
        if let Some((_, r)) = chosen
            .iter()
            .enumerate()
            .find(|(i, _)| !checks.parts.is_empty() && !given(*i))
        {
            return Err(ObjectError::InvalidRequest(format!(
                "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {} in the request.",
                alg.name().to_ascii_lowercase(),
                r.number
            )));
        }
    }
    let mut checksums = BTreeMap::new();
    if kind == Some(ChecksumType::FullObject) {
        // The upload's algorithm, or (an upload made without one) the expected value's.
        let alg = alg
            .or(checks.expected.as_ref().map(|(a, _)| *a))
            .filter(|a| a.crc().is_some())
            .ok_or_else(|| {
                ObjectError::InvalidRequest(
                    "A full-object checksum needs a CRC checksum algorithm.".into(),
                )
            })?;
        let values: Option<Vec<(&str, u64)>> = chosen
            .iter()
            .map(|r| r.checksums.get(alg.name()).map(|v| (v.as_str(), r.size)))
            .collect();
        let value = values.and_then(|v| full_object(alg, &v)).ok_or_else(|| {
            ObjectError::InvalidRequest(format!(
                "Every part needs a {} checksum for a full-object checksum.",
                alg.name()
            ))
        })?;
        checksums.insert(alg.name().to_string(), value);
    } else {
        for alg in ChecksumAlg::ALL {
            let values: Option<Vec<&str>> = chosen
                .iter()
                .map(|r| r.checksums.get(alg.name()).map(String::as_str))
                .collect();
            if let Some(c) = values.and_then(|v| composite(alg, &v)) {
                checksums.insert(alg.name().to_string(), c);
            }
        }
    }
    if let Some((alg, value)) = &checks.expected {
        let have = checksums.get(alg.name()).ok_or_else(|| {
            ObjectError::InvalidRequest(format!(
                "The {} checksum given does not match the checksum type of the upload.",
                alg.name()
            ))
        })?;
        let bare = |v: &str| v.split('-').next().unwrap_or_default().to_string();
        let matches = match ChecksumType::of_value(have) {
            ChecksumType::FullObject => have == value,
            ChecksumType::Composite => have == value || bare(have) == *value,
        };
        if !matches {
            return Err(ObjectError::BadDigest);
        }
    }
    Ok(checksums)
}
