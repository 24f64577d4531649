//! `cairn csi`: a Kubernetes CSI v1 driver (`csi.cairn.io`) over gRPC on a unix socket.
//!
//! * Identity: plugin info, capabilities, probe (the S3 endpoint answers).
//! * Controller ([`controller`]): a volume is a bucket (or, with the StorageClass parameter
//!   `bucket`, a prefix of a shared bucket) whose capacity is its hard quota.
//! * Node ([`node`]): NodeStage mounts the volume with `cairn mount` at the staging path, as
//!   a process of its own that outlives the plugin; NodePublish bind-mounts it into pods.
//!   Node state lives in `--state-dir`; a monitor re-establishes dead FUSE mounts and their
//!   bind mounts. See docs/csi.md.
//!
//! The gRPC stack (tonic 0.11 / prost 0.12, from the `bpfman-csi` bindings) is used here
//! only; nothing else in Cairn depends on it.

// Every gRPC method returns `tonic::Status` (large); helpers return it too rather than
// boxing it only to unbox it at the trait boundary.
#![allow(clippy::result_large_err)]

pub mod controller;
pub mod mounter;
pub mod node;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bpfman_csi::v1 as csi;
use tonic::{Request, Response, Status};

use crate::mount::client::{S3Client, S3Config};

pub const DRIVER_NAME: &str = "csi.cairn.io";

#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    #[error("invalid endpoint {0:?}: expected unix:///path/to/csi.sock")]
    Endpoint(String),
    #[error("state directory {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(PathBuf, std::io::Error),
    #[error(transparent)]
    Mounter(#[from] mounter::MounterError),
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Controller,
    Node,
    All,
    /// Starts mount processes for a node plugin (see [`mounter`]).
    Mounter,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "controller" => Some(Mode::Controller),
            "node" => Some(Mode::Node),
            "all" => Some(Mode::All),
            "mounter" => Some(Mode::Mounter),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CsiArgs {
    /// `unix:///csi/csi.sock`
    pub endpoint: String,
    pub node_id: String,
    pub mode: Mode,
    pub state_dir: PathBuf,
    /// What a volume uses when its StorageClass and Secrets say nothing.
    pub defaults: Defaults,
    /// The `cairn` binary that runs FUSE mounts (default: this executable).
    pub mount_binary: PathBuf,
    /// Have the mounter at this socket start mount processes (node mode).
    pub mounter: Option<PathBuf>,
}

/// The plugin's own S3 endpoint and credentials (`--s3-endpoint`, `--access-key`,
/// `--secret-key`): used for volumes whose StorageClass and Secrets name none, and by
/// GetCapacity and Probe.
#[derive(Clone, Default)]
pub struct Defaults {
    pub endpoint: Option<String>,
    pub credentials: Option<(String, String)>,
    /// How https endpoints' certificates are checked (`--ca-cert`, `--insecure`).
    pub trust: crate::tls::Trust,
}

impl std::fmt::Debug for Defaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        let user = self.credentials.as_ref().map(|c| c.0.as_str());
        write!(f, "Defaults({:?} as {:?})", self.endpoint, user)
    }
}

/// Credentials and endpoint resolved from a request's Secrets and parameters.
/// Volume context keys of a volume's own access key (made by CreateVolume). The secret is
/// kept sealed with the provisioner's credentials ([`volume_sealer`]): a volume context is
/// stored in the PersistentVolume, which anyone allowed to read PVs can read. Volumes made
/// by older plugins carry it plain (`VOLUME_SECRET`), still accepted.
pub const VOLUME_KEY: &str = "volumeAccessKeyID";
pub const VOLUME_SECRET: &str = "volumeSecretAccessKey";
pub const VOLUME_SECRET_SEALED: &str = "volumeSecretAccessKeySealed";

/// The sealer of volume keys' secrets, from the secret key of the credentials that made them
/// (the StorageClass's Secret, or the plugin's own): the node stage Secret opens them.
pub fn volume_sealer(secret_key: &str) -> crate::iam::seal::Sealer {
    crate::iam::seal::Sealer::new(format!("cairn csi volume secret v1\n{secret_key}").as_bytes())
}

#[derive(Clone)]
pub struct Access {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub trust: crate::tls::Trust,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        write!(f, "Access({} as {})", self.endpoint, self.access_key)
    }
}

impl Access {
    /// From the keys k8s-csi-s3 Secrets use (`accessKeyID`, `secretAccessKey`, optional
    /// `endpoint`, `region`), with the endpoint falling back to `params` then the plugin's
    /// default, and the credentials (both keys, or neither) to the plugin's own.
    pub fn resolve(
        secrets: &HashMap<String, String>,
        params: &HashMap<String, String>,
        defaults: &Defaults,
    ) -> Result<Access, Status> {
        let get = |k: &str| secrets.get(k).filter(|v| !v.is_empty()).cloned();
        let (access_key, secret_key) = match (get("accessKeyID"), get("secretAccessKey")) {
            (Some(a), Some(s)) => (a, s),
            (None, None) if defaults.credentials.is_some() => {
                defaults.credentials.clone().unwrap_or_default()
            }
            (None, _) => {
                return Err(Status::invalid_argument(
                    "secret key accessKeyID is missing",
                ))
            }
            (Some(_), None) => {
                return Err(Status::invalid_argument(
                    "secret key secretAccessKey is missing",
                ))
            }
        };
        let endpoint = get("endpoint")
            .or_else(|| params.get("endpoint").filter(|v| !v.is_empty()).cloned())
            .or_else(|| defaults.endpoint.clone())
            .ok_or_else(|| {
                Status::invalid_argument(
                    "no S3 endpoint: set the StorageClass parameter or Secret key `endpoint`",
                )
            })?;
        Ok(Access {
            endpoint,
            access_key,
            secret_key,
            region: get("region").unwrap_or_else(|| "us-east-1".into()),
            trust: defaults.trust.clone(),
        })
    }

    pub fn client(&self, bucket: &str, prefix: &str) -> Result<S3Client, Status> {
        S3Client::new(S3Config {
            endpoint: self.endpoint.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            region: self.region.clone(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            trust: self.trust.clone(),
            io_timeout: crate::mount::client::IO_TIMEOUT,
        })
        .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

/// A volume id is `BUCKET` or `BUCKET/PREFIX`; returns (bucket, prefix ending with `/`).
pub fn split_volume_id(id: &str) -> Result<(String, String), Status> {
    crate::mount::parse_volume(id).map_err(|_| Status::not_found(format!("unknown volume {id:?}")))
}

/// Run blocking work (HTTP calls, mounts) off the gRPC threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

pub struct Identity {
    mode: Mode,
    defaults: Defaults,
}

#[tonic::async_trait]
impl csi::identity_server::Identity for Identity {
    async fn get_plugin_info(
        &self,
        _req: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        Ok(Response::new(csi::GetPluginInfoResponse {
            name: DRIVER_NAME.into(),
            vendor_version: env!("CARGO_PKG_VERSION").into(),
            manifest: HashMap::new(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        use csi::plugin_capability::{service, volume_expansion, Service, Type, VolumeExpansion};
        let mut capabilities = Vec::new();
        if self.mode != Mode::Node {
            capabilities.push(csi::PluginCapability {
                r#type: Some(Type::Service(Service {
                    r#type: service::Type::ControllerService as i32,
                })),
            });
        }
        capabilities.push(csi::PluginCapability {
            r#type: Some(Type::VolumeExpansion(VolumeExpansion {
                r#type: volume_expansion::Type::Online as i32,
            })),
        });
        Ok(Response::new(csi::GetPluginCapabilitiesResponse {
            capabilities,
        }))
    }

    async fn probe(
        &self,
        _req: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        let ready = match self.defaults.endpoint.clone() {
            Some(endpoint) => {
                let trust = self.defaults.trust.clone();
                blocking(move || {
                    let c = S3Client::new(S3Config {
                        endpoint,
                        access_key: String::new(),
                        secret_key: String::new(),
                        region: String::new(),
                        bucket: String::new(),
                        prefix: String::new(),
                        trust,
                        io_timeout: crate::mount::client::IO_TIMEOUT,
                    })
                    .map_err(|e| Status::failed_precondition(e.to_string()))?;
                    Ok(c.healthy())
                })
                .await?
            }
            None => true,
        };
        Ok(Response::new(csi::ProbeResponse { ready: Some(ready) }))
    }
}

/// Serve the CSI services of `args.mode` on the unix socket until SIGTERM/SIGINT.
pub async fn run(args: CsiArgs) -> Result<(), CsiError> {
    let path = PathBuf::from(
        args.endpoint
            .strip_prefix("unix://")
            .ok_or_else(|| CsiError::Endpoint(args.endpoint.clone()))?,
    );
    if args.mode == Mode::Mounter {
        let socket = path.clone();
        return tokio::task::spawn_blocking(move || mounter::serve(&socket))
            .await
            .map_err(|e| CsiError::Listen(path, std::io::Error::other(e)))?
            .map_err(CsiError::Mounter);
    }
    std::fs::create_dir_all(&args.state_dir)
        .map_err(|e| CsiError::StateDir(args.state_dir.clone(), e))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CsiError::Listen(path.clone(), e))?;
    }
    // A socket left by a previous run is replaced.
    let _ = std::fs::remove_file(&path);
    let listener =
        tokio::net::UnixListener::bind(&path).map_err(|e| CsiError::Listen(path.clone(), e))?;
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let identity = Identity {
        mode: args.mode,
        defaults: args.defaults.clone(),
    };
    let mut router = tonic::transport::Server::builder()
        .add_service(csi::identity_server::IdentityServer::new(identity));
    if args.mode != Mode::Node {
        let c = controller::ControllerService::new(&args)
            .map_err(|e| CsiError::StateDir(args.state_dir.clone(), e))?;
        router = router.add_service(csi::controller_server::ControllerServer::new(c));
    }
    if matches!(args.mode, Mode::Node | Mode::All) {
        let n = Arc::new(
            node::NodeService::new(&args)
                .map_err(|e| CsiError::StateDir(args.state_dir.clone(), e))?,
        );
        node::NodeService::start_monitor(n.clone());
        router = router.add_service(csi::node_server::NodeServer::new(node::NodeApi(n)));
    }
    tracing::info!(
        "CSI driver {DRIVER_NAME} ({:?}) on {} (node {})",
        args.mode,
        path.display(),
        args.node_id
    );
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut t), Ok(mut i)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
    };
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
