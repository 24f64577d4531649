//! The CSI driver driven over its unix socket as Kubernetes drives it (external-provisioner,
//! external-resizer and kubelet calls), against a real `cairn server`, with real FUSE mounts.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use bpfman_csi::v1 as csi;
use cairn_integration::{
    binary, in_mount_table, is_mount_point, Server, ACCESS_KEY, REGION, SECRET_KEY,
};
use csi::controller_client::ControllerClient;
use csi::identity_client::IdentityClient;
use csi::node_client::NodeClient;
use tonic::transport::Channel;
use tonic::Code;

const MIB: i64 = 1 << 20;

/// The gRPC code of a call expected to fail.
trait ErrCode {
    fn err_code(self) -> Code;
}

impl<T: std::fmt::Debug> ErrCode for Result<T, tonic::Status> {
    fn err_code(self) -> Code {
        match self {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(s) => s.code(),
        }
    }
}

struct Plugin {
    child: Child,
    socket: PathBuf,
    state: PathBuf,
    endpoint: String,
    log: PathBuf,
}

impl Plugin {
    fn start(dir: &Path, server: &Server) -> Plugin {
        Plugin::start_with(dir, server, &[])
    }

    fn start_with(dir: &Path, server: &Server, extra: &[String]) -> Plugin {
        let socket = dir.join("csi.sock");
        let state = dir.join("state");
        let log = dir.join("csi.log");
        let child = Command::new(binary())
            .arg("csi")
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .arg("--node-id")
            .arg("node-1")
            .arg("--mode")
            .arg("all")
            .arg("--state-dir")
            .arg(&state)
            .arg("--s3-endpoint")
            .arg(&server.endpoint)
            .args(extra)
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("log"),
            )
            .spawn()
            .expect("start cairn csi");
        let p = Plugin {
            child,
            socket,
            state,
            endpoint: server.endpoint.clone(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !p.socket.exists() {
            assert!(Instant::now() < deadline, "no socket; log:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kill the plugin and every process it started, as a container restart does.
    fn kill_with_descendants(&mut self) {
        let mut doomed = vec![self.child.id() as i32];
        let mut i = 0;
        while i < doomed.len() {
            doomed.extend(children_of(doomed[i]));
            i += 1;
        }
        for pid in doomed {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.wait();
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A gRPC channel over the unix socket (retried briefly: the socket file appears a
    /// moment before the plugin listens).
    async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.socket.clone();
            let r = tonic::transport::Endpoint::try_from("http://[::]:50051")
                .expect("endpoint")
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    tokio::net::UnixStream::connect(path.clone())
                }))
                .await;
            match r {
                Ok(ch) => return ch,
                Err(e) if Instant::now() > deadline => {
                    panic!("connect to the CSI socket: {e}; log:\n{}", self.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn secrets() -> HashMap<String, String> {
    HashMap::from([
        ("accessKeyID".to_string(), ACCESS_KEY.to_string()),
        ("secretAccessKey".to_string(), SECRET_KEY.to_string()),
    ])
}

fn cap(mode: csi::volume_capability::access_mode::Mode) -> csi::VolumeCapability {
    csi::VolumeCapability {
        access_mode: Some(csi::volume_capability::AccessMode { mode: mode as i32 }),
        access_type: Some(csi::volume_capability::AccessType::Mount(
            csi::volume_capability::MountVolume::default(),
        )),
    }
}

use csi::volume_capability::access_mode::Mode as M;

fn create_req(
    name: &str,
    bytes: i64,
    params: &[(&str, &str)],
    endpoint: &str,
) -> csi::CreateVolumeRequest {
    let mut parameters: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parameters.insert("endpoint".into(), endpoint.to_string());
    csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap(M::SingleNodeWriter)],
        parameters,
        secrets: secrets(),
        ..Default::default()
    }
}

fn s3(server: &Server) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Blocking file work off the async test's thread (FUSE calls back into nothing of ours,
/// but keep the runtime free anyway).
async fn io<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("io task")
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stage_req(vol: &csi::Volume, staging: &Path) -> csi::NodeStageVolumeRequest {
    csi::NodeStageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(cap(M::SingleNodeWriter)),
        secrets: secrets(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    }
}

/// NodeUnpublishVolume then NodeUnstageVolume, both expected to succeed.
async fn unpublish_and_unstage(
    node: &mut NodeClient<Channel>,
    vol: &csi::Volume,
    staging: &Path,
    target: &Path,
) {
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        target_path: target.display().to_string(),
    })
    .await
    .expect("unpublish");
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
    })
    .await
    .expect("unstage");
}

fn publish_req(
    vol: &csi::Volume,
    staging: &Path,
    target: &Path,
    readonly: bool,
) -> csi::NodePublishVolumeRequest {
    csi::NodePublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(cap(M::SingleNodeWriter)),
        readonly,
        secrets: secrets(),
        volume_context: vol.volume_context.clone(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_volume_lifecycle() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = Plugin::start(dir.path(), &server);
    let ch = plugin.channel().await;
    let mut identity = IdentityClient::new(ch.clone());
    let mut ctrl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch.clone());

    // Identity.
    let info = identity
        .get_plugin_info(csi::GetPluginInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    assert_eq!(info.name, "csi.cairn.io");
    assert!(!info.vendor_version.is_empty());
    let caps = identity
        .get_plugin_capabilities(csi::GetPluginCapabilitiesRequest {})
        .await
        .expect("caps")
        .into_inner();
    use csi::plugin_capability::{service, Type as PluginType};
    assert!(
        caps.capabilities.iter().any(|c| matches!(
            &c.r#type,
            Some(PluginType::Service(s)) if s.r#type == service::Type::ControllerService as i32
        )),
        "{caps:?}"
    );
    let probe = identity
        .probe(csi::ProbeRequest {})
        .await
        .expect("probe")
        .into_inner();
    assert_eq!(probe.ready, Some(true));

    // Controller capabilities and argument checks.
    let cc = ctrl
        .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
        .await
        .expect("controller caps")
        .into_inner();
    let rpcs: Vec<i32> = cc
        .capabilities
        .iter()
        .filter_map(|c| c.r#type.as_ref())
        .map(|csi::controller_service_capability::Type::Rpc(r)| r.r#type)
        .collect();
    use csi::controller_service_capability::rpc::Type as CRpc;
    for t in [
        CRpc::CreateDeleteVolume,
        CRpc::ListVolumes,
        CRpc::GetCapacity,
        CRpc::ExpandVolume,
    ] {
        assert!(rpcs.contains(&(t as i32)), "missing {t:?}: {rpcs:?}");
    }
    let ep = plugin.endpoint.clone();
    let mut bad = create_req("", 64 * MIB, &[], &ep);
    assert_eq!(
        ctrl.create_volume(bad.clone()).await.err_code(),
        Code::InvalidArgument
    );
    bad.name = "x1".into();
    bad.volume_capabilities.clear();
    assert_eq!(
        ctrl.create_volume(bad.clone()).await.err_code(),
        Code::InvalidArgument
    );
    bad.volume_capabilities = vec![csi::VolumeCapability {
        access_mode: Some(csi::volume_capability::AccessMode {
            mode: M::SingleNodeWriter as i32,
        }),
        access_type: Some(csi::volume_capability::AccessType::Block(Default::default())),
    }];
    assert_eq!(
        ctrl.create_volume(bad).await.err_code(),
        Code::InvalidArgument
    );
    let mut half_secret = create_req("x2", MIB, &[], &ep);
    half_secret.secrets.remove("secretAccessKey");
    assert_eq!(
        ctrl.create_volume(half_secret).await.err_code(),
        Code::InvalidArgument
    );
    // No Secret at all: the plugin's own credentials (CAIRN_ROOT_* in its environment).
    let mut no_secret = create_req("x3", MIB, &[], &ep);
    no_secret.secrets.clear();
    let plain = ctrl
        .create_volume(no_secret)
        .await
        .expect("create with the plugin's credentials")
        .into_inner()
        .volume
        .expect("volume");
    ctrl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: plain.volume_id,
        secrets: HashMap::new(),
    })
    .await
    .expect("delete with the plugin's credentials");

    // CreateVolume, idempotent; a different size is ALREADY_EXISTS.
    let name = format!("pvc-{}", "0123456789abcdef".repeat(7)); // 116 characters
    let vol = ctrl
        .create_volume(create_req(&name, 64 * MIB, &[], &ep))
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(vol.capacity_bytes, 64 * MIB);
    assert!(vol.volume_id.len() <= 63, "{}", vol.volume_id);
    let again = ctrl
        .create_volume(create_req(&name, 64 * MIB, &[], &ep))
        .await
        .expect("create again")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(again.volume_id, vol.volume_id);
    assert_eq!(
        ctrl.create_volume(create_req(&name, 65 * MIB, &[], &ep))
            .await
            .err_code(),
        Code::AlreadyExists
    );
    let client = s3(&server);
    client
        .head_bucket()
        .bucket(&vol.volume_id)
        .send()
        .await
        .expect("bucket made");
    // Prefix mode: a volume inside a shared bucket.
    let pvol = ctrl
        .create_volume(create_req(
            "pvc-prefix",
            8 * MIB,
            &[("bucket", "shared-vols")],
            &ep,
        ))
        .await
        .expect("create prefix volume")
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(pvol.volume_id, "shared-vols/pvc-prefix");
    client
        .head_object()
        .bucket("shared-vols")
        .key("pvc-prefix/")
        .send()
        .await
        .expect("prefix marker");

    // ValidateVolumeCapabilities.
    let validate = |id: &str, modes: &[M]| csi::ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: modes.iter().map(|m| cap(*m)).collect(),
        secrets: secrets(),
        ..Default::default()
    };
    assert_eq!(
        ctrl.validate_volume_capabilities(validate("no-such-volume", &[M::SingleNodeWriter]))
            .await
            .err_code(),
        Code::NotFound
    );
    let v = ctrl
        .validate_volume_capabilities(validate(
            &vol.volume_id,
            &[
                M::SingleNodeWriter,
                M::MultiNodeMultiWriter,
                M::MultiNodeReaderOnly,
                M::SingleNodeSingleWriter,
            ],
        ))
        .await
        .expect("validate")
        .into_inner();
    assert!(v.confirmed.is_some(), "{v:?}");

    // ListVolumes with pagination.
    let page1 = ctrl
        .list_volumes(csi::ListVolumesRequest {
            max_entries: 1,
            starting_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page1.entries.len(), 1);
    assert!(!page1.next_token.is_empty());
    let page2 = ctrl
        .list_volumes(csi::ListVolumesRequest {
            max_entries: 1,
            starting_token: page1.next_token.clone(),
        })
        .await
        .expect("list 2")
        .into_inner();
    assert_eq!(page2.entries.len(), 1);
    assert!(page2.next_token.is_empty());
    let mut ids: Vec<String> = page1
        .entries
        .iter()
        .chain(&page2.entries)
        .filter_map(|e| e.volume.as_ref().map(|v| v.volume_id.clone()))
        .collect();
    ids.sort();
    let mut want = vec![vol.volume_id.clone(), pvol.volume_id.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(
        ctrl.list_volumes(csi::ListVolumesRequest {
            max_entries: 1,
            starting_token: "zz".into()
        })
        .await
        .err_code(),
        Code::Aborted
    );
    let capacity = ctrl
        .get_capacity(csi::GetCapacityRequest {
            parameters: HashMap::from([("endpoint".to_string(), ep.clone())]),
            ..Default::default()
        })
        .await
        .expect("capacity")
        .into_inner();
    assert!(capacity.available_capacity > 0);

    // Node: info and capabilities.
    let ni = node
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .expect("node info")
        .into_inner();
    assert_eq!(ni.node_id, "node-1");
    let nc: Vec<i32> = node
        .node_get_capabilities(csi::NodeGetCapabilitiesRequest {})
        .await
        .expect("node caps")
        .into_inner()
        .capabilities
        .iter()
        .filter_map(|c| c.r#type.as_ref())
        .map(|csi::node_service_capability::Type::Rpc(r)| r.r#type)
        .collect();
    use csi::node_service_capability::rpc::Type as NRpc;
    for t in [
        NRpc::StageUnstageVolume,
        NRpc::GetVolumeStats,
        NRpc::VolumeCondition,
        NRpc::VolumeMountGroup,
    ] {
        assert!(nc.contains(&(t as i32)), "missing {t:?}: {nc:?}");
    }

    // Stage + publish: a real FUSE mount, bind-mounted at the target.
    let staging = dir.path().join("staging");
    let target = dir.path().join("pods/pod-1/volumes/vol");
    node.node_stage_volume(stage_req(&vol, &staging))
        .await
        .expect("stage");
    node.node_stage_volume(stage_req(&vol, &staging))
        .await
        .expect("stage is idempotent");
    assert_eq!(
        node.node_publish_volume(publish_req(
            &vol,
            &dir.path().join("elsewhere"),
            &target,
            false
        ))
        .await
        .err_code(),
        Code::FailedPrecondition
    );
    node.node_publish_volume(publish_req(&vol, &staging, &target, false))
        .await
        .expect("publish");
    node.node_publish_volume(publish_req(&vol, &staging, &target, false))
        .await
        .expect("publish is idempotent");
    assert!(is_mount_point(&target));
    // A read-only publish keeps `nosuid,nodev` (a remount sets the flags anew): a setuid
    // file written through S3 must not run as its owner in a pod.
    let ro_target = dir.path().join("ro-target");
    node.node_publish_volume(publish_req(&vol, &staging, &ro_target, true))
        .await
        .expect("read-only publish");
    let options = fs::read_to_string("/proc/self/mounts")
        .expect("mounts")
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(&*ro_target.to_string_lossy()))
        .and_then(|l| l.split(' ').nth(3).map(String::from))
        .expect("read-only target mounted");
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(
            options.split(',').any(|o| o == flag),
            "read-only target lacks {flag}: {options}"
        );
    }
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: vol.volume_id.clone(),
        target_path: ro_target.display().to_string(),
    })
    .await
    .expect("unpublish read-only");

    // Files and directories through std::fs appear as objects; objects appear as files.
    let t = target.clone();
    io(move || {
        fs::create_dir_all(t.join("dir/sub")).expect("mkdir");
        fs::write(t.join("dir/sub/a.txt"), b"hello").expect("write");
        fs::write(t.join("top.txt"), b"0123456789").expect("write");
    })
    .await;
    let bucket = vol.volume_id.clone();
    client
        .head_object()
        .bucket(&bucket)
        .key("dir/sub/a.txt")
        .send()
        .await
        .expect("object");
    client
        .put_object()
        .bucket(&bucket)
        .key("dir/from-s3.txt")
        .body(ByteStream::from_static(b"via s3"))
        .send()
        .await
        .expect("put");
    let t = target.clone();
    io(move || {
        assert_eq!(
            fs::read(t.join("dir/from-s3.txt")).expect("read"),
            b"via s3"
        );
        // rename (file and directory), append, truncate, random write, chmod.
        fs::rename(t.join("top.txt"), t.join("renamed.txt")).expect("rename file");
        fs::rename(t.join("dir/sub"), t.join("moved")).expect("rename dir");
        let mut f = OpenOptions::new()
            .append(true)
            .open(t.join("renamed.txt"))
            .expect("open");
        f.write_all(b"+tail").expect("append");
        drop(f);
        let f = OpenOptions::new()
            .write(true)
            .open(t.join("moved/a.txt"))
            .expect("open");
        f.set_len(3).expect("truncate");
        drop(f);
        let mut f = OpenOptions::new()
            .write(true)
            .open(t.join("renamed.txt"))
            .expect("open");
        f.seek(SeekFrom::Start(2)).expect("seek");
        f.write_all(b"XY").expect("random write");
        drop(f);
        fs::set_permissions(t.join("renamed.txt"), fs::Permissions::from_mode(0o640))
            .expect("chmod");
    })
    .await;

    // Survives a remount: unpublish + unstage, then stage + publish again.
    unpublish_and_unstage(&mut node, &vol, &staging, &target).await;
    assert!(!in_mount_table(&target) && !in_mount_table(&staging));
    node.node_stage_volume(stage_req(&vol, &staging))
        .await
        .expect("stage again");
    node.node_publish_volume(publish_req(&vol, &staging, &target, false))
        .await
        .expect("publish again");
    let t = target.clone();
    io(move || {
        assert_eq!(
            fs::read(t.join("renamed.txt")).expect("read"),
            b"01XY456789+tail"
        );
        assert_eq!(fs::read(t.join("moved/a.txt")).expect("read"), b"hel");
        assert!(!t.join("dir/sub").exists());
        let mode = fs::metadata(t.join("renamed.txt"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
    })
    .await;

    // Filling past 64 MiB gives ENOSPC; expanding to 128 MiB lets writes resume.
    let t = target.clone();
    let written = io(move || {
        let mut f = fs::File::create(t.join("fill.bin")).expect("create");
        let chunk = vec![0x5au8; 1 << 20];
        let mut written = 0i64;
        loop {
            match f.write_all(&chunk) {
                Ok(()) => written += MIB,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
                    break;
                }
            }
            assert!(written <= 80 * MIB, "no ENOSPC after {written} bytes");
        }
        written
    })
    .await;
    assert!(written > 32 * MIB && written <= 64 * MIB, "{written}");
    let expanded = ctrl
        .controller_expand_volume(csi::ControllerExpandVolumeRequest {
            volume_id: vol.volume_id.clone(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: 128 * MIB,
                limit_bytes: 0,
            }),
            secrets: secrets(),
            ..Default::default()
        })
        .await
        .expect("expand")
        .into_inner();
    assert_eq!(expanded.capacity_bytes, 128 * MIB);
    assert!(!expanded.node_expansion_required);
    let t = target.clone();
    io(move || {
        std::thread::sleep(Duration::from_millis(1100)); // the mount's quota cache
        fs::write(t.join("after-expand.bin"), vec![1u8; 16 << 20]).expect("write after expand");
    })
    .await;
    let stats = node
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .expect("stats")
        .into_inner();
    let bytes = stats
        .usage
        .iter()
        .find(|u| u.unit == csi::volume_usage::Unit::Bytes as i32)
        .expect("bytes");
    assert_eq!(bytes.total, 128 * MIB);
    assert!(
        bytes.used >= 16 * MIB && bytes.used <= 128 * MIB,
        "{bytes:?}"
    );
    assert_eq!(bytes.available, bytes.total - bytes.used);
    assert!(stats
        .usage
        .iter()
        .any(|u| u.unit == csi::volume_usage::Unit::Inodes as i32));
    assert_eq!(stats.volume_condition.map(|c| c.abnormal), Some(false));
    assert_eq!(
        node.node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: dir.path().join("nope").display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .err_code(),
        Code::NotFound
    );
    // A directory that exists but is not this volume's, and another volume's id on this
    // volume's target: both are "not found on that path".
    for (id, path) in [
        (vol.volume_id.clone(), dir.path().display().to_string()),
        ("cairn-nosuchvol".to_string(), target.display().to_string()),
    ] {
        assert_eq!(
            node.node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
                volume_id: id,
                volume_path: path,
                staging_target_path: String::new(),
            })
            .await
            .err_code(),
            Code::NotFound
        );
    }

    // Unpublish/unstage leave nothing mounted, and succeed again when already gone.
    for _ in 0..2 {
        unpublish_and_unstage(&mut node, &vol, &staging, &target).await;
    }
    assert!(!in_mount_table(&target) && !in_mount_table(&staging));

    // DeleteVolume removes the bucket; unknown ids succeed.
    for v in [&vol, &pvol] {
        ctrl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: v.volume_id.clone(),
            secrets: secrets(),
        })
        .await
        .expect("delete");
    }
    assert!(client
        .head_bucket()
        .bucket(&vol.volume_id)
        .send()
        .await
        .is_err());
    let left = client
        .list_objects_v2()
        .bucket("shared-vols")
        .send()
        .await
        .expect("list");
    assert_eq!(left.key_count(), Some(0));
    ctrl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: "never-existed".into(),
        secrets: secrets(),
    })
    .await
    .expect("delete unknown");
    let listed = ctrl
        .list_volumes(csi::ListVolumesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.entries.is_empty());
}

/// Mounts survive the node plugin (kill -9) and come back by themselves when their FUSE
/// server dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_survive_plugin_and_fuse_restarts() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut plugin = Plugin::start(dir.path(), &server);
    let ep = plugin.endpoint.clone();
    let ch = plugin.channel().await;
    let mut ctrl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    let vol = ctrl
        .create_volume(create_req("pvc-restart", 32 * MIB, &[], &ep))
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    let staging = dir.path().join("staging");
    let target = dir.path().join("target");
    node.node_stage_volume(stage_req(&vol, &staging))
        .await
        .expect("stage");
    node.node_publish_volume(publish_req(&vol, &staging, &target, false))
        .await
        .expect("publish");

    // A pod-like process holds files open on the mount.
    let t = target.clone();
    let (mut held, mut reader) = io(move || {
        fs::write(t.join("existing.txt"), b"kept").expect("write");
        let held = fs::File::create(t.join("held.txt")).expect("create");
        let reader = fs::File::open(t.join("existing.txt")).expect("open");
        (held, reader)
    })
    .await;

    // kill -9 the plugin: the mount keeps working, open files included.
    plugin.kill9();
    let t = target.clone();
    let (held, reader) = io(move || {
        held.write_all(b"written after the plugin died")
            .expect("write to held file");
        held.sync_all().expect("fsync held file");
        let mut s = String::new();
        reader.read_to_string(&mut s).expect("read open file");
        assert_eq!(s, "kept");
        fs::write(t.join("new.txt"), b"new").expect("new file");
        assert_eq!(
            fs::read(t.join("held.txt")).expect("read"),
            b"written after the plugin died"
        );
        (held, reader)
    })
    .await;
    drop((held, reader));

    // The restarted plugin knows the volume is staged (idempotent stage, healthy stats).
    let plugin = Plugin::start(dir.path(), &server);
    let ch = plugin.channel().await;
    let mut node = NodeClient::new(ch);
    node.node_stage_volume(stage_req(&vol, &staging))
        .await
        .expect("stage after restart");
    let stats = node
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target.display().to_string(),
            staging_target_path: String::new(),
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.volume_condition.map(|c| c.abnormal), Some(false));
    assert!(
        fs::read_dir(plugin.state.join("node"))
            .expect("state")
            .count()
            >= 1
    );

    // kill -9 the FUSE server: within seconds the same target path works again, with no
    // new CSI call.
    let pid = fuse_pid(&staging).expect("FUSE server pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill FUSE server");
    let t = target.clone();
    io(move || {
        let started = Instant::now();
        wait_until("the mount to come back", Duration::from_secs(20), || {
            fs::read(t.join("existing.txt")).is_ok_and(|d| d == b"kept")
        });
        eprintln!("mount back after {:?}", started.elapsed());
        fs::write(t.join("after-fuse-restart.txt"), b"ok").expect("write after restart");
        assert_eq!(
            fs::read(t.join("after-fuse-restart.txt")).expect("read"),
            b"ok"
        );
    })
    .await;
    assert_ne!(
        fuse_pid(&staging),
        Some(pid),
        "a new FUSE server serves the volume"
    );
    unpublish_and_unstage(&mut node, &vol, &staging, &target).await;
    assert!(!in_mount_table(&target) && !in_mount_table(&staging));
}

/// The pid of the `cairn mount` process serving `staging`.
fn fuse_pid(staging: &Path) -> Option<i32> {
    let want = staging.display().to_string();
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "mount") && args.last() == Some(&want) {
            return Some(pid);
        }
    }
    None
}

/// Direct children of a process (from /proc).
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

/// With a mounter (the DaemonSet's separate container), mounts survive the plugin *and
/// everything it started* being killed, as when its container restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounter_keeps_mounts_through_a_plugin_container_restart() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("mounter/mounter.sock");
    let mut mounter = Command::new(binary())
        .args([
            "csi",
            "--mode",
            "mounter",
            "--node-id",
            "node-1",
            "--endpoint",
        ])
        .arg(format!("unix://{}", socket.display()))
        .stderr(fs::File::create(dir.path().join("mounter.log")).expect("log"))
        .spawn()
        .expect("start mounter");
    wait_until("the mounter socket", Duration::from_secs(20), || {
        socket.exists()
    });
    let extra = vec![format!("--mounter=unix://{}", socket.display())];
    let mut plugin = Plugin::start_with(dir.path(), &server, &extra);
    let ep = plugin.endpoint.clone();
    let ch = plugin.channel().await;
    let mut ctrl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    let vol = ctrl
        .create_volume(create_req("pvc-mounter", 16 * MIB, &[], &ep))
        .await
        .expect("create")
        .into_inner()
        .volume
        .expect("volume");
    let staging = dir.path().join("staging");
    let target = dir.path().join("target");
    // fsGroup through VOLUME_MOUNT_GROUP: the volume shows that group, group-writable.
    let mut stage = stage_req(&vol, &staging);
    if let Some(csi::volume_capability::AccessType::Mount(m)) = stage
        .volume_capability
        .as_mut()
        .and_then(|c| c.access_type.as_mut())
    {
        m.volume_mount_group = "4321".into();
    }
    node.node_stage_volume(stage).await.expect("stage");
    node.node_publish_volume(publish_req(&vol, &staging, &target, false))
        .await
        .expect("publish");
    let t = target.clone();
    io(move || {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(&t).expect("stat volume root");
        assert_eq!(meta.gid(), 4321);
        assert_eq!(meta.mode() & 0o7777, 0o2775);
        fs::write(t.join("before.txt"), b"before").expect("write")
    })
    .await;
    let fuse = fuse_pid(&staging).expect("FUSE pid");
    assert!(
        !children_of(plugin.child.id() as i32).contains(&fuse),
        "mount is the mounter's child"
    );

    plugin.kill_with_descendants();
    let t = target.clone();
    io(move || {
        assert_eq!(fs::read(t.join("before.txt")).expect("read"), b"before");
        fs::write(t.join("after.txt"), b"after").expect("write after the plugin died");
    })
    .await;
    assert_eq!(
        fuse_pid(&staging),
        Some(fuse),
        "the same FUSE server still serves"
    );

    // The new plugin takes over and can unstage (stopping the mounter's process).
    let plugin = Plugin::start_with(dir.path(), &server, &extra);
    let mut node = NodeClient::new(plugin.channel().await);
    unpublish_and_unstage(&mut node, &vol, &staging, &target).await;
    assert!(!in_mount_table(&target) && !in_mount_table(&staging));
    wait_until("the mount process to exit", Duration::from_secs(10), || {
        fuse_pid(&staging).is_none()
    });
    let _ = mounter.kill();
    let _ = mounter.wait();
}

/// Each volume gets its own access key, allowed only that volume: a pod's volume
/// credentials cannot read or write another volume (bucket or prefix), and DeleteVolume
/// removes them.
#[tokio::test(flavor = "multi_thread")]
async fn volume_credentials_reach_only_their_volume() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let plugin = Plugin::start(dir.path(), &server);
    let mut ctrl = ControllerClient::new(plugin.channel().await);
    let ep = plugin.endpoint.clone();
    let mut made = Vec::new();
    for (name, params) in [
        ("pvc-own-bucket", vec![]),
        ("pvc-in-shared-a", vec![("bucket", "shared-vols")]),
        ("pvc-in-shared-b", vec![("bucket", "shared-vols")]),
    ] {
        let vol = ctrl
            .create_volume(create_req(name, 0, &params, &ep))
            .await
            .expect("create")
            .into_inner()
            .volume
            .expect("volume");
        // Idempotent: the same name returns the same key.
        let again = ctrl
            .create_volume(create_req(name, 0, &params, &ep))
            .await
            .expect("create again")
            .into_inner()
            .volume
            .expect("volume");
        assert_eq!(vol.volume_context, again.volume_context);
        made.push(vol);
    }
    // The volume's secret is in the context only sealed with the provisioner's credentials
    // (a PV's attributes are readable by anyone who may read PVs).
    let key_of = |v: &csi::Volume| {
        let c = &v.volume_context;
        assert!(
            !c.contains_key("volumeSecretAccessKey"),
            "plain secret in {c:?}"
        );
        let k = c["volumeAccessKeyID"].clone();
        let s = cairn::csi::volume_sealer(SECRET_KEY)
            .open(&c["volumeSecretAccessKeySealed"], &k)
            .expect("sealed with the provisioner's secret");
        assert!(cairn::csi::volume_sealer("another-secret")
            .open(&c["volumeSecretAccessKeySealed"], &k)
            .is_none());
        (k, s, c["bucket"].clone(), c["prefix"].clone())
    };
    let clients: Vec<_> = made
        .iter()
        .map(|v| {
            let (k, s, b, p) = key_of(v);
            assert_ne!(k, ACCESS_KEY);
            (
                cairn_integration::client_for(&server.endpoint, &k, &s, false),
                b,
                p,
            )
        })
        .collect();
    for (i, (c, b, p)) in clients.iter().enumerate() {
        let key = format!("{p}own-{i}");
        c.put_object()
            .bucket(b)
            .key(&key)
            .body(ByteStream::from_static(b"mine"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("volume {i} writes its own: {e:?}"));
        c.get_object()
            .bucket(b)
            .key(&key)
            .send()
            .await
            .expect("reads its own");
        c.list_objects_v2()
            .bucket(b)
            .prefix(p.as_str())
            .send()
            .await
            .expect("lists its own");
    }
    for (i, (c, _, _)) in clients.iter().enumerate() {
        for (j, (_, b, p)) in clients.iter().enumerate() {
            if i == j {
                continue;
            }
            let other = format!("{p}own-{j}");
            let e = c.get_object().bucket(b).key(&other).send().await;
            assert!(e.is_err(), "volume {i} read volume {j}'s {b}/{other}");
            let e = c
                .put_object()
                .bucket(b)
                .key(format!("{p}intruder"))
                .body(ByteStream::from_static(b"x"))
                .send()
                .await;
            assert!(e.is_err(), "volume {i} wrote into volume {j}");
            let e = c
                .list_objects_v2()
                .bucket(b)
                .prefix(p.as_str())
                .send()
                .await;
            assert!(e.is_err(), "volume {i} listed volume {j}");
        }
    }
    // DeleteVolume removes the volume's key.
    let (c0, b0, _) = &clients[0];
    ctrl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: made[0].volume_id.clone(),
        secrets: secrets(),
    })
    .await
    .expect("delete");
    let e = c0.list_objects_v2().bucket(b0).send().await;
    assert!(e.is_err(), "a deleted volume's key still works");
}

/// The whole path over https: the plugin's probe and capacity (admin API), CreateVolume
/// (S3), and the FUSE mount process it starts, all trusting a private CA given with
/// `--ca-cert`; without it the plugin cannot reach the server and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csi_over_https() {
    let pki = cairn_integration::Pki::new("CSI Test CA");
    let certs = pki.certs_dir("certs", &["127.0.0.1"]);
    let server = Server::start_with(4, &[("CAIRN_CERTS_DIR", certs.to_str().expect("utf-8"))]);
    assert!(server.endpoint.starts_with("https://"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = pki.ca_pem.display().to_string();
    let plugin = Plugin::start_with(dir.path(), &server, &["--ca-cert".into(), ca]);
    let ch = plugin.channel().await;
    let mut identity = IdentityClient::new(ch.clone());
    let mut ctrl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch.clone());
    let ready = identity
        .probe(csi::ProbeRequest {})
        .await
        .expect("probe")
        .into_inner()
        .ready;
    assert_eq!(ready, Some(true));
    let ep = plugin.endpoint.clone();
    let capacity = ctrl
        .get_capacity(csi::GetCapacityRequest {
            parameters: HashMap::from([("endpoint".to_string(), ep.clone())]),
            ..Default::default()
        })
        .await
        .expect("capacity")
        .into_inner();
    assert!(capacity.available_capacity > 0);
    let vol = ctrl
        .create_volume(create_req("tls-volume", 64 * MIB, &[], &ep))
        .await
        .expect("create over https")
        .into_inner()
        .volume
        .expect("volume");
    let staging = dir.path().join("staging");
    let target = dir.path().join("pods/pod-1/volumes/vol");
    for round in 0..2 {
        node.node_stage_volume(stage_req(&vol, &staging))
            .await
            .expect("stage");
        node.node_publish_volume(publish_req(&vol, &staging, &target, false))
            .await
            .expect("publish");
        let file = target.join("note.txt");
        if round == 0 {
            let f = file.clone();
            io(move || fs::write(&f, b"stored over TLS"))
                .await
                .expect("write");
        } else {
            // A new mount process read back what the first one stored.
            let f = file.clone();
            let got = io(move || fs::read(&f)).await.expect("read");
            assert_eq!(got, b"stored over TLS");
        }
        unpublish_and_unstage(&mut node, &vol, &staging, &target).await;
    }
    ctrl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        secrets: secrets(),
    })
    .await
    .expect("delete");
    drop(plugin);

    // The same plugin without the CA: CreateVolume fails, naming the certificate problem.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let plugin = Plugin::start(dir2.path(), &server);
    let mut ctrl = ControllerClient::new(plugin.channel().await);
    let err = ctrl
        .create_volume(create_req("tls-volume-2", 64 * MIB, &[], &ep))
        .await
        .expect_err("untrusted server");
    assert!(err.message().contains("UnknownIssuer"), "{}", err.message());
}
