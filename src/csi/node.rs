//! CSI Node: FUSE mounts that outlive the plugin, bind mounts into pods, and a monitor
//! that brings dead mounts back.
//!
//! NodeStageVolume starts `cairn mount --foreground` at the staging path as a process in
//! its own process group (not a thread of the plugin), so a plugin crash or upgrade leaves
//! every mount serving. What is staged (volume, endpoint, credentials, options, the bind
//! targets) is written to `<state-dir>/node/` (mode 0600), so a restarted plugin knows it.
//! Every second the monitor checks each staging mount; a dead one (ENOTCONN: its FUSE
//! process died) is lazily unmounted, mounted again by a new process, and every bind target
//! is re-bound, with no CSI call needed.

use std::collections::HashMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bpfman_csi::v1 as csi;
use nix::mount::{MntFlags, MsFlags};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use super::mounter::{self, StartRequest};
use super::{blocking, split_volume_id, Access, CsiArgs};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    path: PathBuf,
    readonly: bool,
}

/// One staged volume, as persisted.
#[derive(Clone, Serialize, Deserialize)]
struct Staged {
    volume_id: String,
    staging: PathBuf,
    endpoint: String,
    region: String,
    access_key: String,
    secret_key: String,
    read_only: bool,
    /// fsGroup (VOLUME_MOUNT_GROUP): files shown with this group and group-writable.
    group: Option<u32>,
    targets: Vec<Target>,
    pid: Option<u32>,
}

pub struct NodeService {
    node_id: String,
    dir: PathBuf,
    binary: PathBuf,
    /// The mounter's socket, when mount processes are started by it.
    mounter: Option<PathBuf>,
    defaults: super::Defaults,
    /// Persisted staged volumes, keyed by staging path.
    staged: Mutex<HashMap<PathBuf, Staged>>,
    /// Mount processes this plugin started (reaped by the monitor).
    children: Mutex<Vec<Child>>,
    /// One operation at a time per node (kubelet retries concurrently).
    op: tokio::sync::Mutex<()>,
}

/// Health of a mount point.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    Ok,
    /// Not mounted at all.
    Missing,
    /// Mounted but its FUSE server is gone (ENOTCONN) or it errors.
    Dead(String),
}

fn health(path: &Path) -> Health {
    match nix::sys::statvfs::statvfs(path) {
        Err(nix::errno::Errno::ENOTCONN) => {
            Health::Dead("transport endpoint is not connected".into())
        }
        Err(nix::errno::Errno::ENOENT) => Health::Missing,
        Err(e) => Health::Dead(e.to_string()),
        Ok(_) if crate::mount::is_mount_point(path) => Health::Ok,
        Ok(_) => Health::Missing,
    }
}

/// Lazily unmount whatever is at `path` (tolerates not mounted and dead FUSE mounts).
fn detach(path: &Path) {
    for _ in 0..4 {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue, // stacked mounts: peel them all
            Err(_) => return,
        }
    }
}

/// Whether process `pid` is a `cairn mount` serving `staging` (its command line names the
/// `mount` subcommand and the path).
fn is_mount_of(pid: u32, staging: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let staging = staging.as_os_str().as_encoded_bytes();
    args.contains(&&b"mount"[..]) && args.contains(&staging)
}

fn bind(staging: &Path, target: &Target) -> Result<(), Status> {
    let none: Option<&str> = None;
    nix::mount::mount(Some(staging), &target.path, none, MsFlags::MS_BIND, none)
        .map_err(|e| Status::internal(format!("bind mount {}: {e}", target.path.display())))?;
    if target.readonly {
        // A remount sets the bind's flags anew: it keeps `nosuid,nodev` only if asked (without
        // them a setuid file written through S3 would run as its owner in the pod).
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV;
        nix::mount::mount(none, &target.path, none, flags, none).map_err(|e| {
            detach(&target.path);
            Status::internal(format!("read-only remount {}: {e}", target.path.display()))
        })?;
    }
    Ok(())
}

impl NodeService {
    pub fn new(args: &CsiArgs) -> std::io::Result<NodeService> {
        let dir = args.state_dir.join("node");
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut staged = HashMap::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                if let Some(s) = std::fs::read(e.path())
                    .ok()
                    .and_then(|raw| serde_json::from_slice::<Staged>(&raw).ok())
                {
                    tracing::info!(
                        "known staged volume {} at {}",
                        s.volume_id,
                        s.staging.display()
                    );
                    staged.insert(s.staging.clone(), s);
                }
            }
        }
        Ok(NodeService {
            node_id: args.node_id.clone(),
            dir,
            binary: args.mount_binary.clone(),
            mounter: args.mounter.clone(),
            defaults: args.defaults.clone(),
            staged: Mutex::new(staged),
            children: Mutex::new(Vec::new()),
            op: tokio::sync::Mutex::new(()),
        })
    }

    fn state_file(&self, staging: &Path) -> PathBuf {
        let h = blake3::hash(staging.as_os_str().as_encoded_bytes()).to_hex();
        self.dir.join(format!("{}.json", &h[..32]))
    }

    fn persist(&self, s: &Staged) -> Result<(), Status> {
        let body = serde_json::to_vec_pretty(s).map_err(|e| Status::internal(e.to_string()))?;
        let path = self.state_file(&s.staging);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            std::io::Write::write_all(&mut f, &body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| Status::internal(format!("saving node state: {e}")))?;
        self.staged.lock().insert(s.staging.clone(), s.clone());
        Ok(())
    }

    fn forget(&self, staging: &Path) {
        let _ = std::fs::remove_file(self.state_file(staging));
        self.staged.lock().remove(staging);
    }

    /// Start the FUSE server for `s` and wait until its mount is up.
    fn start_mount(&self, s: &mut Staged) -> Result<(), Status> {
        let (bucket, prefix) = split_volume_id(&s.volume_id)?;
        let volume = format!("{bucket}/{prefix}");
        let cache = self
            .dir
            .join("cache")
            .join(&blake3::hash(s.staging.as_os_str().as_encoded_bytes()).to_hex()[..16]);
        let log_path = self.state_file(&s.staging).with_extension("log");
        let mut args: Vec<String> = vec![
            "mount".into(),
            "--endpoint".into(),
            s.endpoint.clone(),
            "--foreground".into(),
            "--allow-other".into(),
            "--cache-dir".into(),
            cache.display().to_string(),
        ];
        if s.read_only {
            args.push("--read-only".into());
        }
        args.extend(self.defaults.trust.cli_args());
        if let Some(g) = s.group {
            for a in [
                "--gid",
                &g.to_string(),
                "--dir-mode",
                "2775",
                "--file-mode",
                "664",
            ] {
                args.push(a.to_string());
            }
        }
        args.push(volume);
        args.push(s.staging.display().to_string());
        let req = StartRequest {
            args,
            // Credentials through the environment, never on the command line.
            env: vec![
                ("CAIRN_ROOT_USER".into(), s.access_key.clone()),
                ("CAIRN_ROOT_PASSWORD".into(), s.secret_key.clone()),
                ("CAIRN_REGION".into(), s.region.clone()),
            ],
            log: log_path.clone(),
        };
        let pid = match &self.mounter {
            Some(socket) => mounter::request_start(socket, &req)
                .map_err(|e| Status::unavailable(e.to_string()))?,
            None => {
                let child = mounter::spawn(&self.binary, req).map_err(|e| {
                    Status::internal(format!("starting {}: {e}", self.binary.display()))
                })?;
                let pid = child.id();
                self.children.lock().push(child);
                pid
            }
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if health(&s.staging) == Health::Ok {
                s.pid = Some(pid);
                tracing::info!(
                    "mounted {} at {} (pid {pid})",
                    s.volume_id,
                    s.staging.display()
                );
                return Ok(());
            }
            if self.exited(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        // The last lines that say something: a backtrace (`RUST_BACKTRACE`) left out.
        let said = log.split("stack backtrace:").next().unwrap_or_default();
        let tail: String = said
            .lines()
            .rev()
            .filter(|l| !l.trim().is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        let message = format!(
            "mounting {} at {} failed: {tail}",
            s.volume_id,
            s.staging.display()
        );
        // The bucket is gone (deleted behind the volume's back): the volume is not found.
        Err(if log.contains("does not exist at") {
            Status::not_found(message)
        } else {
            Status::internal(message)
        })
    }

    /// Whether a mount process has exited (reaping it if it is our child).
    fn exited(&self, pid: u32) -> bool {
        let mut children = self.children.lock();
        for c in children.iter_mut() {
            if c.id() == pid {
                return matches!(c.try_wait(), Ok(Some(_)));
            }
        }
        // Started by the mounter (shared process namespace): gone when it cannot be signalled.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err()
    }

    /// Stop the mount process of `s` (SIGTERM: it unmounts cleanly) and detach leftovers.
    fn stop_mount(&self, s: &Staged) {
        // The pid was recorded when the mount started: after a reboot or a crash it may name
        // another process now. Only a `cairn mount` of this staging path is signalled.
        if let Some(pid) = s.pid.filter(|pid| is_mount_of(*pid, &s.staging)) {
            let p = nix::unistd::Pid::from_raw(pid as i32);
            if nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM).is_ok() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && nix::sys::signal::kill(p, None).is_ok() {
                    if self.exited(pid) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        detach(&s.staging);
        self.children
            .lock()
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
    }

    /// Bring a staged volume back to health: remount if dead or missing, re-bind targets.
    fn repair(&self, staging: &Path) -> Result<bool, Status> {
        let Some(mut s) = self.staged.lock().get(staging).cloned() else {
            return Ok(false);
        };
        match health(&s.staging) {
            Health::Ok => return Ok(false),
            Health::Dead(why) => {
                tracing::warn!(
                    "mount of {} at {} is dead ({why}): remounting",
                    s.volume_id,
                    s.staging.display()
                );
                detach(&s.staging);
            }
            Health::Missing => {
                tracing::warn!(
                    "mount of {} at {} is missing: remounting",
                    s.volume_id,
                    s.staging.display()
                );
            }
        }
        std::fs::create_dir_all(&s.staging).map_err(|e| Status::internal(e.to_string()))?;
        self.start_mount(&mut s)?;
        for t in &s.targets {
            detach(&t.path);
            let _ = std::fs::create_dir_all(&t.path);
            if let Err(e) = bind(&s.staging, t) {
                tracing::error!("re-binding {}: {}", t.path.display(), e.message());
            }
        }
        self.persist(&s)?;
        Ok(true)
    }

    /// Check every staged volume each second; repair what died.
    pub fn start_monitor(me: Arc<NodeService>) {
        std::thread::Builder::new()
            .name("csi-mount-monitor".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let paths: Vec<PathBuf> = me.staged.lock().keys().cloned().collect();
                for p in paths {
                    // Do not race a CSI call working on the same volume.
                    let Ok(_guard) = me.op.try_lock() else { break };
                    if let Err(e) = me.repair(&p) {
                        tracing::error!("repairing {}: {}", p.display(), e.message());
                    }
                }
                me.children
                    .lock()
                    .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the mount monitor: {e}"));
    }
}

/// The gRPC face of [`NodeService`] (tonic wants `&self`; the work needs an `Arc`).
pub struct NodeApi(pub Arc<NodeService>);

fn required<'a>(v: &'a str, what: &str) -> Result<&'a str, Status> {
    if v.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(v)
    }
}

/// Mount flags (a PV's `mountOptions`) Cairn's mount honours: `ro` (a read-only mount),
/// and what every mount already is (`rw` unless read-only, `nosuid`, `nodev`). Any other is
/// refused rather than ignored.
const MOUNT_FLAGS: [&str; 4] = ["ro", "rw", "nosuid", "nodev"];

fn mount_flags(c: Option<&csi::VolumeCapability>) -> &[String] {
    use csi::volume_capability::AccessType;
    match c.and_then(|c| c.access_type.as_ref()) {
        Some(AccessType::Mount(m)) => &m.mount_flags,
        _ => &[],
    }
}

fn mount_group(c: Option<&csi::VolumeCapability>) -> Result<Option<u32>, Status> {
    use csi::volume_capability::AccessType;
    if let Some(f) = mount_flags(c)
        .iter()
        .find(|f| !MOUNT_FLAGS.contains(&f.as_str()))
    {
        return Err(Status::invalid_argument(format!(
            "mount flag {f:?} is not supported (Cairn's mount honours {})",
            MOUNT_FLAGS.join(", ")
        )));
    }
    match c.and_then(|c| c.access_type.as_ref()) {
        Some(AccessType::Mount(m)) if !m.volume_mount_group.is_empty() => m
            .volume_mount_group
            .parse()
            .map(Some)
            .map_err(|_| Status::invalid_argument("volume_mount_group must be a numeric gid")),
        Some(AccessType::Block(_)) => {
            Err(Status::invalid_argument("block volumes are not supported"))
        }
        _ => Ok(None),
    }
}

fn read_only_mode(c: Option<&csi::VolumeCapability>) -> bool {
    use csi::volume_capability::access_mode::Mode as M;
    c.and_then(|c| c.access_mode.as_ref()).is_some_and(|m| {
        m.mode == M::SingleNodeReaderOnly as i32 || m.mode == M::MultiNodeReaderOnly as i32
    }) || mount_flags(c).iter().any(|f| f == "ro")
}

#[tonic::async_trait]
impl csi::node_server::Node for NodeApi {
    async fn node_stage_volume(
        &self,
        req: Request<csi::NodeStageVolumeRequest>,
    ) -> Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let req = req.into_inner();
        required(&req.volume_id, "volume id")?;
        let staging = PathBuf::from(required(&req.staging_target_path, "staging target path")?);
        if req.volume_capability.is_none() {
            return Err(Status::invalid_argument("volume capability is required"));
        }
        let group = mount_group(req.volume_capability.as_ref())?;
        split_volume_id(&req.volume_id)?;
        // A volume with its own access key mounts with it, whatever the node's Secret says;
        // its secret is opened with the node's credentials (those that made it).
        let ctx = &req.volume_context;
        let secret = match (
            ctx.get(super::VOLUME_SECRET_SEALED),
            ctx.get(super::VOLUME_SECRET),
            ctx.get(super::VOLUME_KEY),
        ) {
            (Some(sealed), _, Some(k)) => {
                // Sealed with the provisioner's credentials: the node stage Secret's, or the
                // plugin's own, open it.
                let candidates = [
                    req.secrets.get("secretAccessKey").cloned(),
                    self.0.defaults.credentials.as_ref().map(|c| c.1.clone()),
                ];
                let opened = candidates
                    .iter()
                    .flatten()
                    .find_map(|secret| super::volume_sealer(secret).open(sealed, k));
                Some(opened.ok_or_else(|| {
                    Status::failed_precondition(
                        "the volume's access key is sealed with the provisioner's credentials: give the node stage Secret (or the node plugin's own credentials) the same",
                    )
                })?)
            }
            (None, Some(plain), Some(_)) => Some(plain.clone()),
            _ => None,
        };
        let secrets = match (ctx.get(super::VOLUME_KEY), secret) {
            (Some(k), Some(sk)) => {
                let mut s = req.secrets.clone();
                s.insert("accessKeyID".into(), k.clone());
                s.insert("secretAccessKey".into(), sk);
                s
            }
            _ => req.secrets.clone(),
        };
        let access = Access::resolve(&secrets, &req.volume_context, &self.0.defaults)?;
        let _op = self.0.op.lock().await;
        let me = self.0.clone();
        blocking(move || {
            if let Some(existing) = me.staged.lock().get(&staging).cloned() {
                if existing.volume_id != req.volume_id {
                    return Err(Status::already_exists(format!(
                        "{} is staged with volume {}",
                        staging.display(),
                        existing.volume_id
                    )));
                }
            }
            if me.staged.lock().contains_key(&staging) && health(&staging) == Health::Ok {
                return Ok(());
            }
            std::fs::create_dir_all(&staging)
                .map_err(|e| Status::internal(format!("{}: {e}", staging.display())))?;
            if let Health::Dead(_) = health(&staging) {
                detach(&staging);
            }
            let mut s = Staged {
                volume_id: req.volume_id.clone(),
                staging: staging.clone(),
                endpoint: access.endpoint.clone(),
                region: access.region.clone(),
                access_key: access.access_key.clone(),
                secret_key: access.secret_key.clone(),
                read_only: read_only_mode(req.volume_capability.as_ref()),
                group,
                targets: Vec::new(),
                pid: None,
            };
            me.start_mount(&mut s)?;
            me.persist(&s)
        })
        .await?;
        Ok(Response::new(csi::NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        req: Request<csi::NodeUnstageVolumeRequest>,
    ) -> Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let req = req.into_inner();
        required(&req.volume_id, "volume id")?;
        let staging = PathBuf::from(required(&req.staging_target_path, "staging target path")?);
        let _op = self.0.op.lock().await;
        let me = self.0.clone();
        blocking(move || {
            let known = me.staged.lock().get(&staging).cloned();
            match known {
                Some(s) => me.stop_mount(&s),
                None => detach(&staging),
            }
            me.forget(&staging);
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        req: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = req.into_inner();
        required(&req.volume_id, "volume id")?;
        let target = PathBuf::from(required(&req.target_path, "target path")?);
        let staging = PathBuf::from(required(&req.staging_target_path, "staging target path")?);
        if req.volume_capability.is_none() {
            return Err(Status::invalid_argument("volume capability is required"));
        }
        mount_group(req.volume_capability.as_ref())?;
        let readonly = req.readonly || read_only_mode(req.volume_capability.as_ref());
        let _op = self.0.op.lock().await;
        let me = self.0.clone();
        blocking(move || {
            if !me.staged.lock().contains_key(&staging) {
                return Err(Status::failed_precondition(format!(
                    "volume {} is not staged at {}",
                    req.volume_id,
                    staging.display()
                )));
            }
            // NodePublish re-stages when the staging mount is missing or dead.
            me.repair(&staging)?;
            let mut s = me
                .staged
                .lock()
                .get(&staging)
                .cloned()
                .ok_or_else(|| Status::failed_precondition("volume is not staged"))?;
            if s.volume_id != req.volume_id {
                return Err(Status::invalid_argument(
                    "staging path holds another volume",
                ));
            }
            let t = Target {
                path: target.clone(),
                readonly,
            };
            if health(&target) == Health::Ok && s.targets.iter().any(|x| x.path == target) {
                return Ok(());
            }
            if let Health::Dead(_) = health(&target) {
                detach(&target);
            }
            std::fs::create_dir_all(&target)
                .map_err(|e| Status::internal(format!("{}: {e}", target.display())))?;
            bind(&staging, &t)?;
            s.targets.retain(|x| x.path != target);
            s.targets.push(t);
            me.persist(&s)
        })
        .await?;
        Ok(Response::new(csi::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = req.into_inner();
        required(&req.volume_id, "volume id")?;
        let target = PathBuf::from(required(&req.target_path, "target path")?);
        let _op = self.0.op.lock().await;
        let me = self.0.clone();
        blocking(move || {
            detach(&target);
            let _ = std::fs::remove_dir(&target);
            let owner = me
                .staged
                .lock()
                .values()
                .find(|s| s.targets.iter().any(|t| t.path == target))
                .cloned();
            if let Some(mut s) = owner {
                s.targets.retain(|t| t.path != target);
                me.persist(&s)?;
            }
            Ok(())
        })
        .await?;
        Ok(Response::new(csi::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = req.into_inner();
        required(&req.volume_id, "volume id")?;
        let path = PathBuf::from(required(&req.volume_path, "volume path")?);
        // The volume must be staged here and the path be its staging path or one of its
        // targets: stats of an arbitrary directory would describe some other filesystem.
        let ours = self.0.staged.lock().values().any(|s| {
            s.volume_id == req.volume_id
                && (s.staging == path || s.targets.iter().any(|t| t.path == path))
        });
        if !ours {
            return Err(Status::not_found(format!(
                "volume {} is not staged or published at {}",
                req.volume_id,
                path.display()
            )));
        }
        let resp = blocking(move || {
            let healthy = health(&path);
            if healthy == Health::Missing && !path.exists() {
                return Err(Status::not_found(format!(
                    "{} does not exist",
                    path.display()
                )));
            }
            let condition =
                |abnormal: bool, message: String| Some(csi::VolumeCondition { abnormal, message });
            match nix::sys::statvfs::statvfs(&path) {
                Ok(st) => {
                    let frsize = st.fragment_size() as i64;
                    let total = st.blocks() as i64 * frsize;
                    let free = st.blocks_available() as i64 * frsize;
                    let files = st.files() as i64;
                    let ffree = st.files_available() as i64;
                    Ok(csi::NodeGetVolumeStatsResponse {
                        usage: vec![
                            csi::VolumeUsage {
                                available: free,
                                total,
                                used: (total - st.blocks_free() as i64 * frsize).max(0),
                                unit: csi::volume_usage::Unit::Bytes as i32,
                            },
                            csi::VolumeUsage {
                                available: ffree,
                                total: files,
                                used: (files - ffree).max(0),
                                unit: csi::volume_usage::Unit::Inodes as i32,
                            },
                        ],
                        volume_condition: match healthy {
                            Health::Ok => condition(false, "mounted".into()),
                            other => condition(true, format!("{other:?}")),
                        },
                    })
                }
                Err(e) => Ok(csi::NodeGetVolumeStatsResponse {
                    usage: Vec::new(),
                    volume_condition: condition(true, format!("statfs failed: {e}")),
                }),
            }
        })
        .await?;
        Ok(Response::new(resp))
    }

    async fn node_expand_volume(
        &self,
        _req: Request<csi::NodeExpandVolumeRequest>,
    ) -> Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented(
            "no node expansion needed: the quota is raised by the controller",
        ))
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        use csi::node_service_capability::{rpc, Rpc, Type};
        let capabilities = [
            rpc::Type::StageUnstageVolume,
            rpc::Type::GetVolumeStats,
            rpc::Type::VolumeCondition,
            rpc::Type::SingleNodeMultiWriter,
            rpc::Type::VolumeMountGroup,
        ]
        .into_iter()
        .map(|t| csi::NodeServiceCapability {
            r#type: Some(Type::Rpc(Rpc { r#type: t as i32 })),
        })
        .collect();
        Ok(Response::new(csi::NodeGetCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn node_get_info(
        &self,
        _req: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        Ok(Response::new(csi::NodeGetInfoResponse {
            node_id: self.0.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Mount flags Cairn's mount honours pass (`ro` makes the mount read-only); others are
    /// refused, never ignored.
    #[test]
    fn unsupported_mount_flags_are_refused() {
        use csi::volume_capability::{AccessType, MountVolume};
        let cap = |flags: &[&str]| csi::VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                mount_flags: flags.iter().map(|f| f.to_string()).collect(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(mount_group(Some(&cap(&["nosuid", "nodev"]))).is_ok());
        assert!(read_only_mode(Some(&cap(&["ro"]))));
        assert!(!read_only_mode(Some(&cap(&["rw"]))));
        let e = mount_group(Some(&cap(&["noexec"]))).expect_err("refused");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
    }

    /// A recorded pid is signalled only while it is a `cairn mount` of that staging path:
    /// after a reboot the number may belong to anything.
    #[test]
    fn only_the_mount_of_the_staging_path_is_recognised() {
        let mut child = std::process::Command::new("bash")
            .args(["-c", "sleep 5; true", "mount", "/tmp/cairn-staging-x"])
            .spawn()
            .expect("spawn");
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(100));
        assert!(is_mount_of(pid, Path::new("/tmp/cairn-staging-x")));
        assert!(!is_mount_of(pid, Path::new("/tmp/cairn-staging-y")));
        assert!(!is_mount_of(
            std::process::id(),
            Path::new("/tmp/cairn-staging-x")
        ));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!is_mount_of(pid, Path::new("/tmp/cairn-staging-x")));
    }
}
