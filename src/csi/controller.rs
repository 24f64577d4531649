//! CSI Controller: volumes are buckets (or prefixes of a shared bucket) whose capacity is
//! their hard quota. A record per volume in `<state-dir>/controller/` lets ListVolumes and
//! DeleteVolume work without asking the store what it holds.

use std::collections::HashMap;
use std::path::PathBuf;

use bpfman_csi::v1 as csi;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use super::{blocking, split_volume_id, Access, CsiArgs};
use crate::mount::client::{ClientError, ObjectClient, S3Client};

/// What GetCapacity reads of the admin API's `info` answer: each set's geometry and its
/// drives' space (the rest of the answer is ignored).
#[derive(Deserialize)]
struct Capacity {
    sets: Vec<SetCapacity>,
}

#[derive(Deserialize)]
struct SetCapacity {
    data: usize,
    parity: usize,
    drives: Vec<DriveCapacity>,
}

#[derive(Deserialize)]
struct DriveCapacity {
    total: u64,
    used: u64,
}

/// Access modes a FUSE-mounted bucket serves (every one but none: all are mount volumes).
fn supported(mode: i32) -> bool {
    use csi::volume_capability::access_mode::Mode as M;
    [
        M::SingleNodeWriter,
        M::SingleNodeReaderOnly,
        M::MultiNodeReaderOnly,
        M::MultiNodeSingleWriter,
        M::MultiNodeMultiWriter,
        M::SingleNodeSingleWriter,
        M::SingleNodeMultiWriter,
    ]
    .iter()
    .any(|m| *m as i32 == mode)
}

/// Why a capability cannot be served, if it cannot.
fn check_capability(c: &csi::VolumeCapability) -> Option<String> {
    use csi::volume_capability::AccessType;
    match &c.access_type {
        Some(AccessType::Block(_)) => return Some("block volumes are not supported".into()),
        Some(AccessType::Mount(_)) => {}
        None => return Some("access type missing".into()),
    }
    match &c.access_mode {
        Some(m) if supported(m.mode) => None,
        _ => Some("access mode missing or unknown".into()),
    }
}

/// Map a CSI volume name (up to 128 characters) to a valid bucket name (or prefix):
/// lower-case letters, digits and `-`, 3-63 long; names changed by the mapping get a hash
/// suffix so two names never meet.
pub fn bucket_name_for(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    if out == name && out.len() >= 3 && out.len() <= 63 {
        return out;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let keep: String = out.chars().take(63 - 9).collect();
    let keep = keep.trim_end_matches('-');
    if keep.is_empty() {
        format!("vol-{}", &hash[..8])
    } else {
        format!("{keep}-{}", &hash[..8])
    }
}

/// A volume's bucket name that S3 keeps for its own endpoints (`sthree-…`, `…-s3alias`, see
/// [`crate::api::reserved_bucket_name`]) gets a `vol-` prefix and the volume name's hash:
/// creating it would be refused for good, and the provisioner would retry forever.
fn unreserved(bucket: String, name: &str) -> String {
    if !crate::api::reserved_bucket_name(&bucket) {
        return bucket;
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let keep: String = bucket.chars().take(63 - 4 - 9).collect();
    format!("vol-{}-{}", keep.trim_end_matches('-'), &hash[..8])
}

/// The policy of a volume's access key: everything on its objects, listing under its
/// prefix only, reading its quota.
fn volume_policy(bucket: &str, prefix: &str) -> String {
    let list = if prefix.is_empty() {
        serde_json::json!({
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
            "Resource": [format!("arn:aws:s3:::{bucket}")],
        })
    } else {
        serde_json::json!({
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": [format!("arn:aws:s3:::{bucket}")],
            "Condition": {"StringLike": {"s3:prefix": [format!("{prefix}*")]}},
        })
    };
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:*"],
                "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}*")],
            },
            list,
            {
                "Effect": "Allow",
                "Action": ["admin:GetBucketQuota"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
            },
        ],
    })
    .to_string()
}

#[derive(Clone, Serialize, Deserialize)]
struct Record {
    volume_id: String,
    name: String,
    endpoint: String,
    capacity: u64,
    context: HashMap<String, String>,
}

/// The context holds the volume's secret key: never in `Debug` output.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("volume_id", &self.volume_id)
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

pub struct ControllerService {
    dir: PathBuf,
    defaults: super::Defaults,
    /// Serialises changes (CreateVolume retries arrive concurrently).
    lock: tokio::sync::Mutex<()>,
}

fn store_error(e: ClientError) -> Status {
    match e {
        ClientError::AccessDenied => Status::permission_denied("the store refused the credentials"),
        ClientError::BadCredentials(code) => {
            Status::permission_denied(format!("the store refused the credentials ({code})"))
        }
        ClientError::NotFound => Status::not_found("not found in the store"),
        e => Status::unavailable(format!("object store: {e}")),
    }
}

fn capacity_of(r: Option<&csi::CapacityRange>) -> Result<u64, Status> {
    let Some(r) = r else { return Ok(0) };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("negative capacity"));
    }
    if r.limit_bytes > 0 && r.required_bytes > r.limit_bytes {
        return Err(Status::out_of_range("required_bytes above limit_bytes"));
    }
    Ok(if r.required_bytes > 0 {
        r.required_bytes as u64
    } else {
        r.limit_bytes as u64
    })
}

impl ControllerService {
    pub fn new(args: &CsiArgs) -> std::io::Result<ControllerService> {
        let dir = args.state_dir.join("controller");
        std::fs::create_dir_all(&dir)?;
        Ok(ControllerService {
            dir,
            defaults: args.defaults.clone(),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", blake3::hash(id.as_bytes()).to_hex()))
    }

    fn load(&self, id: &str) -> Option<Record> {
        let raw = std::fs::read(self.record_path(id)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    fn save(&self, r: &Record) -> Result<(), Status> {
        let body = serde_json::to_vec_pretty(r).map_err(|e| Status::internal(e.to_string()))?;
        let path = self.record_path(&r.volume_id);
        let tmp = path.with_extension("tmp");
        // The record holds the volume's secret key: readable by the plugin only.
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()
        };
        write()
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Status::internal(format!("saving volume record: {e}")))
    }

    fn records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        out
    }

    /// Access for an existing volume: the Secret's endpoint, else the one it was made on.
    fn access_for(&self, id: &str, secrets: &HashMap<String, String>) -> Result<Access, Status> {
        let mut params = HashMap::new();
        if let Some(r) = self.load(id) {
            params.insert("endpoint".to_string(), r.endpoint);
        }
        Access::resolve(secrets, &params, &self.defaults)
    }
}

/// Whether the volume (bucket, or prefix marker) exists in the store.
fn volume_exists(c: &S3Client) -> Result<bool, ClientError> {
    if !c.bucket_exists()? {
        return Ok(false);
    }
    if c.config().prefix.is_empty() {
        return Ok(true);
    }
    match c.head("") {
        Ok(_) => Ok(true),
        Err(ClientError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Delete every object of the volume (and the bucket itself in bucket mode).
fn purge(c: &S3Client) -> Result<(), ClientError> {
    if !c.bucket_exists()? {
        return Ok(());
    }
    let mut token: Option<String> = None;
    loop {
        let page = c.list("", false, token.as_deref(), 1000)?;
        for o in &page.objects {
            c.delete(&o.key)?;
        }
        match page.next {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if c.config().prefix.is_empty() {
        c.delete_bucket()?;
    } else {
        c.delete("")?;
        c.set_quota(0)?;
    }
    Ok(())
}

#[tonic::async_trait]
impl csi::controller_server::Controller for ControllerService {
    async fn create_volume(
        &self,
        req: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let req = req.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("volume name is required"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume capabilities are required"));
        }
        if let Some(why) = req.volume_capabilities.iter().find_map(check_capability) {
            return Err(Status::invalid_argument(why));
        }
        if req.volume_content_source.is_some() {
            return Err(Status::invalid_argument(
                "volume sources (clones, snapshots) are not supported",
            ));
        }
        let capacity = capacity_of(req.capacity_range.as_ref())?;
        if req
            .parameters
            .get("mountOptions")
            .is_some_and(|o| !o.trim().is_empty())
        {
            return Err(Status::invalid_argument(
                "the mountOptions parameter is not supported: Cairn's mount takes no mount(8) options (a read-only volume: a ReadOnlyMany access mode, readOnly, or the PV mount option ro)",
            ));
        }
        let access = Access::resolve(&req.secrets, &req.parameters, &self.defaults)?;
        let mapped = bucket_name_for(&req.name);
        let (bucket, prefix) = match req.parameters.get("bucket").filter(|b| !b.is_empty()) {
            Some(b) => {
                if !crate::api::valid_bucket_name(b) || crate::api::reserved_bucket_name(b) {
                    return Err(Status::invalid_argument(format!(
                        "invalid bucket parameter {b:?}"
                    )));
                }
                (b.clone(), format!("{mapped}/"))
            }
            None => (unreserved(mapped, &req.name), String::new()),
        };
        let volume_id = if prefix.is_empty() {
            bucket.clone()
        } else {
            format!("{bucket}/{}", prefix.trim_end_matches('/'))
        };
        let _one = self.lock.lock().await;
        let client = access.client(&bucket, &prefix)?;
        let existing = self.load(&volume_id);
        let id = volume_id.clone();
        let name = req.name.clone();
        let created = blocking(move || {
            let exists = volume_exists(&client).map_err(store_error)?;
            if exists {
                let usage = client.usage().map_err(store_error)?;
                if usage.quota != capacity {
                    return Err(Status::already_exists(format!(
                        "volume {name} exists as {id} with capacity {} (asked {capacity})",
                        usage.quota
                    )));
                }
                return Ok(false);
            }
            client.make_bucket().map_err(store_error)?;
            if !client.config().prefix.is_empty() {
                let mut empty: &[u8] = &[];
                client
                    .put("", &mut empty, 0, &Default::default())
                    .map_err(store_error)?;
            }
            if capacity > 0 {
                client.set_quota(capacity).map_err(store_error)?;
            }
            Ok(true)
        })
        .await?;
        let mut context = HashMap::from([
            ("endpoint".to_string(), access.endpoint.clone()),
            ("bucket".to_string(), bucket.clone()),
            ("prefix".to_string(), prefix.clone()),
        ]);
        // The volume's own access key, allowed only its bucket or prefix: nodes mount
        // with it, never with the StorageClass's credentials. Made once per volume.
        let sealer = super::volume_sealer(&access.secret_key);
        let kept = existing.as_ref().and_then(|r| {
            let k = r.context.get(super::VOLUME_KEY)?.clone();
            let sealed = match (
                r.context.get(super::VOLUME_SECRET_SEALED),
                r.context.get(super::VOLUME_SECRET),
            ) {
                (Some(sealed), _) => sealed.clone(),
                // Made by an older plugin: sealed now.
                (None, Some(plain)) => sealer.seal(plain, &k),
                (None, None) => return None,
            };
            Some((k, sealed))
        });
        match kept {
            Some((k, sealed)) => {
                context.insert(super::VOLUME_KEY.into(), k);
                context.insert(super::VOLUME_SECRET_SEALED.into(), sealed);
            }
            None => {
                let client = access.client(&bucket, &prefix)?;
                let policy = volume_policy(&bucket, &prefix);
                let name = format!("csi volume {volume_id}");
                let (k, sk) = blocking(move || {
                    client
                        .create_access_key(&policy, &name)
                        .map_err(store_error)
                })
                .await?;
                context.insert(super::VOLUME_SECRET_SEALED.into(), sealer.seal(&sk, &k));
                context.insert(super::VOLUME_KEY.into(), k);
            }
        }
        if created || existing.as_ref().is_none_or(|r| r.context != context) {
            self.save(&Record {
                volume_id: volume_id.clone(),
                name: req.name.clone(),
                endpoint: access.endpoint.clone(),
                capacity,
                context: context.clone(),
            })?;
        }
        tracing::info!(
            "CreateVolume {} -> {volume_id} ({} bytes, {})",
            req.name,
            capacity,
            if created { "created" } else { "existing" }
        );
        Ok(Response::new(csi::CreateVolumeResponse {
            volume: Some(csi::Volume {
                capacity_bytes: capacity as i64,
                volume_id,
                volume_context: context,
                ..Default::default()
            }),
        }))
    }

    async fn delete_volume(
        &self,
        req: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let req = req.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume id is required"));
        }
        let Ok((bucket, prefix)) = split_volume_id(&req.volume_id) else {
            // Not an id this driver could have made: nothing to delete.
            return Ok(Response::new(csi::DeleteVolumeResponse {}));
        };
        let access = self.access_for(&req.volume_id, &req.secrets)?;
        let _one = self.lock.lock().await;
        let client = access.client(&bucket, &prefix)?;
        let key = self
            .load(&req.volume_id)
            .and_then(|r| r.context.get(super::VOLUME_KEY).cloned());
        blocking(move || {
            purge(&client).map_err(store_error)?;
            match key {
                Some(k) => client.remove_access_key(&k).map_err(store_error),
                None => Ok(()),
            }
        })
        .await?;
        let _ = std::fs::remove_file(self.record_path(&req.volume_id));
        tracing::info!("DeleteVolume {}", req.volume_id);
        Ok(Response::new(csi::DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _req: Request<csi::ControllerPublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerPublishVolumeResponse>, Status> {
        Err(Status::unimplemented("volumes need no attach step"))
    }

    async fn controller_unpublish_volume(
        &self,
        _req: Request<csi::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerUnpublishVolumeResponse>, Status> {
        Err(Status::unimplemented("volumes need no attach step"))
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = req.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume id is required"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume capabilities are required"));
        }
        let (bucket, prefix) = split_volume_id(&req.volume_id)?;
        let exists = match self.load(&req.volume_id) {
            Some(_) => true,
            None => match self.access_for(&req.volume_id, &req.secrets) {
                Ok(a) => {
                    let c = a.client(&bucket, &prefix)?;
                    blocking(move || volume_exists(&c).map_err(store_error)).await?
                }
                Err(_) => false,
            },
        };
        if !exists {
            return Err(Status::not_found(format!(
                "volume {} does not exist",
                req.volume_id
            )));
        }
        let problem = req.volume_capabilities.iter().find_map(check_capability);
        Ok(Response::new(match problem {
            None => csi::ValidateVolumeCapabilitiesResponse {
                confirmed: Some(csi::validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: req.mutable_parameters,
                }),
                message: String::new(),
            },
            Some(why) => csi::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message: why,
            },
        }))
    }

    async fn list_volumes(
        &self,
        req: Request<csi::ListVolumesRequest>,
    ) -> Result<Response<csi::ListVolumesResponse>, Status> {
        let req = req.into_inner();
        let all = self.records();
        let start = if req.starting_token.is_empty() {
            0
        } else {
            req.starting_token
                .parse::<usize>()
                .ok()
                .filter(|i| *i <= all.len())
                .ok_or_else(|| {
                    Status::aborted(format!("invalid starting_token {:?}", req.starting_token))
                })?
        };
        if req.max_entries < 0 {
            return Err(Status::invalid_argument("max_entries must not be negative"));
        }
        let max = if req.max_entries == 0 {
            usize::MAX
        } else {
            req.max_entries as usize
        };
        let end = start.saturating_add(max).min(all.len());
        let entries = all[start..end]
            .iter()
            .map(|r| csi::list_volumes_response::Entry {
                volume: Some(csi::Volume {
                    capacity_bytes: r.capacity as i64,
                    volume_id: r.volume_id.clone(),
                    volume_context: r
                        .context
                        .iter()
                        .filter(|(k, _)| k.as_str() != super::VOLUME_SECRET)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    ..Default::default()
                }),
                status: None,
            })
            .collect();
        Ok(Response::new(csi::ListVolumesResponse {
            entries,
            next_token: if end < all.len() {
                end.to_string()
            } else {
                String::new()
            },
        }))
    }

    async fn get_capacity(
        &self,
        req: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        let req = req.into_inner();
        if let Some(why) = req.volume_capabilities.iter().find_map(check_capability) {
            return Err(Status::invalid_argument(why));
        }
        // Free space as the deployment reports it (admin API, with the plugin's own
        // credentials); unknown → 0 with no maximum.
        let endpoint = req
            .parameters
            .get("endpoint")
            .cloned()
            .or_else(|| self.defaults.endpoint.clone());
        let trust = self.defaults.trust.clone();
        let available = match (endpoint, self.defaults.credentials.clone()) {
            (Some(e), Some((u, p))) => blocking(move || {
                let c = crate::client::admin::AdminClient::new(&e, &u, &p, "us-east-1", &trust)
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let info: Capacity = c
                    .call("GET", "info", &[])
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let mut free = 0u64;
                for s in &info.sets {
                    let raw: u64 = s
                        .drives
                        .iter()
                        .map(|d| d.total.saturating_sub(d.used))
                        .sum();
                    free += raw / (s.data + s.parity).max(1) as u64 * s.data as u64;
                }
                Ok(free)
            })
            .await
            .unwrap_or(0),
            _ => 0,
        };
        Ok(Response::new(csi::GetCapacityResponse {
            available_capacity: available.min(i64::MAX as u64) as i64,
            maximum_volume_size: None,
            minimum_volume_size: None,
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        use csi::controller_service_capability::{rpc, Rpc, Type};
        let capabilities = [
            rpc::Type::CreateDeleteVolume,
            rpc::Type::ListVolumes,
            rpc::Type::GetCapacity,
            rpc::Type::ExpandVolume,
            rpc::Type::SingleNodeMultiWriter,
        ]
        .into_iter()
        .map(|t| csi::ControllerServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(csi::ControllerGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn create_snapshot(
        &self,
        _req: Request<csi::CreateSnapshotRequest>,
    ) -> Result<Response<csi::CreateSnapshotResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }

    async fn delete_snapshot(
        &self,
        _req: Request<csi::DeleteSnapshotRequest>,
    ) -> Result<Response<csi::DeleteSnapshotResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }

    async fn list_snapshots(
        &self,
        _req: Request<csi::ListSnapshotsRequest>,
    ) -> Result<Response<csi::ListSnapshotsResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }

    async fn controller_expand_volume(
        &self,
        req: Request<csi::ControllerExpandVolumeRequest>,
    ) -> Result<Response<csi::ControllerExpandVolumeResponse>, Status> {
        let req = req.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume id is required"));
        }
        let capacity = capacity_of(req.capacity_range.as_ref())?;
        if capacity == 0 {
            return Err(Status::invalid_argument("capacity_range is required"));
        }
        let (bucket, prefix) = split_volume_id(&req.volume_id)?;
        let access = self.access_for(&req.volume_id, &req.secrets)?;
        let _one = self.lock.lock().await;
        let client = access.client(&bucket, &prefix)?;
        let now = blocking(move || {
            if !volume_exists(&client).map_err(store_error)? {
                return Err(Status::not_found("volume does not exist"));
            }
            let current = client.usage().map_err(store_error)?.quota;
            // Never shrink: a smaller request is already satisfied.
            if current >= capacity {
                return Ok(current);
            }
            client.set_quota(capacity).map_err(store_error)?;
            Ok(capacity)
        })
        .await?;
        if let Some(mut r) = self.load(&req.volume_id) {
            r.capacity = now;
            self.save(&r)?;
        }
        tracing::info!("ControllerExpandVolume {} -> {now} bytes", req.volume_id);
        Ok(Response::new(csi::ControllerExpandVolumeResponse {
            capacity_bytes: now as i64,
            node_expansion_required: false,
        }))
    }

    async fn controller_get_volume(
        &self,
        _req: Request<csi::ControllerGetVolumeRequest>,
    ) -> Result<Response<csi::ControllerGetVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "ControllerGetVolume is not supported",
        ))
    }

    async fn controller_modify_volume(
        &self,
        _req: Request<csi::ControllerModifyVolumeRequest>,
    ) -> Result<Response<csi::ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "ControllerModifyVolume is not supported",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_name_for;

    #[test]
    fn names_map_to_valid_buckets() {
        assert_eq!(bucket_name_for("pvc-1234"), "pvc-1234");
        let long = "pvc-".to_string() + &"a".repeat(124);
        let b = bucket_name_for(&long);
        assert!(b.len() <= 63, "{b}");
        assert!(crate::api::valid_bucket_name(&b));
        let odd = bucket_name_for("My_Volume.Name");
        assert!(crate::api::valid_bucket_name(&odd), "{odd}");
        assert_ne!(bucket_name_for("a_b"), bucket_name_for("a-b"));
        assert!(crate::api::valid_bucket_name(&bucket_name_for("__")));
        assert!(crate::api::valid_bucket_name(&bucket_name_for("x")));
        for reserved in ["sthree-abc", "foo-s3alias", "amzn-s3-demo-x", "xn--abc"] {
            let b = super::unreserved(bucket_name_for(reserved), reserved);
            assert!(crate::api::valid_bucket_name(&b), "{b}");
            assert!(!crate::api::reserved_bucket_name(&b), "{b}");
        }
        assert_eq!(super::unreserved("pvc-1".into(), "pvc-1"), "pvc-1");
    }
}
