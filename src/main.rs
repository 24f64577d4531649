//! The `cairn` binary: argument parsing, configuration from the environment, wiring.

mod alias_cli;
mod iam_cli;
mod kms_cli;
mod pool_cli;
mod prometheus_cli;
mod trace_cli;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use cairn::admin::client::AdminClient;
use cairn::admin::Info;
use cairn::auth::RootCredentials;
use cairn::heal::{parse_duration, HealState, ScannerConfig, SequenceStatus};
use cairn::object::{open_local, OpenOptions};
use cairn::placement::Endpoint;
use cairn::s3::{xml::Owner, S3State};

#[derive(Parser)]
#[command(
    name = "cairn",
    version,
    about = "Distributed, erasure-coded, S3-compatible object store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the S3 API over the given drives (default: ./data/drive{1...4}, EC 2+2).
    Server {
        /// Address to listen on [default: 0.0.0.0:9000; 127.0.0.1:9000 while the built-in
        /// default credentials are in use].
        #[arg(long)]
        address: Option<String>,
        /// TLS certificates (MinIO's layout: public.crt + private.key, a sub-folder per extra
        /// domain, CAs/ for trusted roots); with public.crt present the server speaks HTTPS
        /// only [default: ~/.cairn/certs].
        #[arg(long, env = "CAIRN_CERTS_DIR")]
        certs_dir: Option<PathBuf>,
        /// Where the web console listens (`:9001` is every address, or 127.0.0.1 while the
        /// default credentials are in use; `off` disables it) [default: :9001].
        #[arg(long, env = "CAIRN_CONSOLE_ADDRESS")]
        console_address: Option<String>,
        /// Drive directories; `{a...b}` ranges expand (`/data{1...4}`).
        drives: Vec<String>,
    },
    /// Load-test an S3 endpoint (warp-style): throughput, latency percentiles, errors.
    Bench {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// put, get, mixed, list, delete or multipart.
        #[arg(long, default_value = "put")]
        op: String,
        /// Object size: 4KiB, 1MiB, 64MiB, or range:1KiB-8MiB.
        #[arg(long, default_value = "1MiB")]
        size: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// How long to run: 30s, 2m, ...
        #[arg(long, default_value = "30s")]
        duration: String,
        /// Objects prepared for get, mixed, list and delete.
        #[arg(long, default_value_t = 100)]
        objects: usize,
        #[arg(long, default_value = "cairn-bench")]
        bucket: String,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Keep the objects the run wrote (and the bucket it made); by default they are
        /// removed when the measurement ends.
        #[arg(long)]
        keep_data: bool,
    },
    /// The benchmark ceiling: an S3-shaped server that stores nothing (PUT drains, GET serves
    /// zeros from memory) on the same HTTP stack.
    #[command(hide = true)]
    NullServer {
        #[arg(long, default_value = "127.0.0.1:9999")]
        address: String,
        /// Serve HTTPS with this folder's public.crt/private.key.
        #[arg(long)]
        certs_dir: Option<PathBuf>,
    },
    /// Mount a bucket (or BUCKET/PREFIX) as a directory through FUSE.
    Mount(MountCli),
    /// Kubernetes CSI driver (csi.cairn.io) on a unix socket.
    Csi {
        /// unix:///csi/csi.sock
        #[arg(long, default_value = "unix:///csi/csi.sock")]
        endpoint: String,
        /// This node's name (Kubernetes: spec.nodeName).
        #[arg(long, env = "CSI_NODE_ID")]
        node_id: String,
        /// controller, node, all, or mounter (starts mount processes for a node plugin;
        /// --endpoint is then its socket).
        #[arg(long, default_value = "all")]
        mode: String,
        /// Node mode: have the mounter at this socket start the FUSE mount processes, so
        /// they outlive the plugin's container.
        #[arg(long)]
        mounter: Option<String>,
        /// Where node state (staged volumes) and controller records are kept.
        #[arg(long, default_value = "/var/lib/cairn-csi")]
        state_dir: PathBuf,
        /// S3 endpoint for volumes whose StorageClass and Secret name none; also probed.
        #[arg(long, env = "CAIRN_ENDPOINT")]
        s3_endpoint: Option<String>,
        /// Credentials for volumes whose Secrets carry none, and for GetCapacity.
        #[arg(long, env = "CAIRN_ROOT_USER", hide_env_values = true)]
        access_key: Option<String>,
        #[arg(long, env = "CAIRN_ROOT_PASSWORD", hide_env_values = true)]
        secret_key: Option<String>,
        #[command(flatten)]
        tls: TlsCli,
    },
    /// Named servers and their credentials (~/.cairn/config.json), as MinIO's mc alias: then
    /// `cairn admin info NAME`, `cairn bench NAME`, `cairn mount NAME/BUCKET DIR`, or
    /// `--endpoint NAME` anywhere.
    Alias {
        #[command(subcommand)]
        command: alias_cli::AliasCommand,
    },
    /// Administer a running server (credentials from CAIRN_ROOT_USER / CAIRN_ROOT_PASSWORD).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(clap::Args, Clone)]
struct MountCli {
    #[command(flatten)]
    conn: Conn,
    /// BUCKET or BUCKET/PREFIX.
    volume: String,
    mountpoint: PathBuf,
    /// Owner of files and directories without stored ownership.
    #[arg(long, default_value_t = 0)]
    uid: u32,
    #[arg(long, default_value_t = 0)]
    gid: u32,
    /// Mode (octal) of directories without a stored mode.
    #[arg(long, default_value = "755")]
    dir_mode: String,
    /// Mode (octal) of files without a stored mode.
    #[arg(long, default_value = "644")]
    file_mode: String,
    /// Let other users (e.g. pods) use the mount.
    #[arg(long)]
    allow_other: bool,
    #[arg(long)]
    read_only: bool,
    /// Where files being written are staged (default: a temporary directory).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Largest read-ahead window per open file (memory: one window per open file).
    #[arg(long, default_value = "16MiB")]
    max_readahead: String,
    /// Most memory for windows fetched ahead (beyond those being read), over all open files.
    #[arg(long, default_value = "256MiB")]
    readahead_budget: String,
    /// Stay in the foreground (default: return once mounted, serving in the background).
    #[arg(long)]
    foreground: bool,
}

#[derive(clap::Args, Clone)]
struct Conn {
    /// Server URL (http://127.0.0.1:9000, https://s3.example.com:9000) or the name of an
    /// alias (cairn alias set) [default: http://127.0.0.1:9000]
    #[arg(long, env = "CAIRN_ENDPOINT")]
    endpoint: Option<String>,
    #[arg(long, env = "CAIRN_ROOT_USER", hide_env_values = true)]
    access_key: Option<String>,
    #[arg(long, env = "CAIRN_ROOT_PASSWORD", hide_env_values = true)]
    secret_key: Option<String>,
    #[command(flatten)]
    tls: TlsCli,
    /// An alias named as a positional argument (by the commands that take one).
    #[arg(skip)]
    alias: Option<String>,
}

/// Where a client command goes and as whom.
struct Target {
    url: String,
    access_key: String,
    secret_key: String,
}

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

impl Conn {
    /// The server and credentials: from the alias (positional, or `--endpoint NAME`), else
    /// `--endpoint URL` with the credentials from flags or the environment.
    fn target(&self) -> anyhow::Result<Target> {
        let alias = match (&self.alias, &self.endpoint) {
            (Some(a), _) => Some(a.as_str()),
            (None, Some(e)) if !e.contains("://") => Some(e.as_str()),
            _ => None,
        };
        if let Some(name) = alias {
            let config = alias_cli::Config::load()?;
            let a = config.get(name)?;
            return Ok(Target {
                url: a.url.clone(),
                access_key: a.access_key.clone(),
                secret_key: a.secret_key.clone(),
            });
        }
        let (access_key, secret_key) = credentials_for(self);
        Ok(Target {
            url: self
                .endpoint
                .as_deref()
                .unwrap_or(DEFAULT_ENDPOINT)
                .trim_end_matches('/')
                .to_string(),
            access_key,
            secret_key,
        })
    }

    fn with_alias(mut self, alias: Option<String>) -> Conn {
        if alias.is_some() {
            self.alias = alias;
        }
        self
    }
}

/// How a client checks an https server's certificate.
#[derive(clap::Args, Clone)]
struct TlsCli {
    /// Also trust this CA certificate (PEM) for https endpoints, besides the system's roots.
    #[arg(long, env = "CAIRN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Do not verify the server's TLS certificate (anyone on the path can read and change
    /// the traffic: for tests only).
    #[arg(long)]
    insecure: bool,
}

impl TlsCli {
    fn trust(&self) -> anyhow::Result<cairn::tls::Trust> {
        Ok(cairn::tls::Trust::for_client(
            self.ca_cert.as_deref(),
            self.insecure,
        )?)
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Nodes, drives, sets, erasure layout and heal state.
    Info {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// S3 requests this node has answered since it started, by operation and outcome.
    Metrics {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Watch requests live, one line each (time, node, request id, identity, operation,
    /// bucket/key, status, bytes, duration), until interrupted.
    Trace {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// Requests answered by every node, not only the one connected to.
        #[arg(long)]
        all_nodes: bool,
        /// Only refused and failed requests (status 400 and up).
        #[arg(long)]
        errors: bool,
        /// Only this S3 operation (PutObject, GetObject, ...).
        #[arg(long, value_name = "NAME")]
        op: Option<String>,
        /// Only requests on this bucket.
        #[arg(long, value_name = "BUCKET")]
        bucket: Option<String>,
        /// Print each request as its JSON entry (the audit log's format).
        #[arg(long)]
        json: bool,
    },
    /// Start (or attach to) a heal and show its progress; or show status / change speed.
    Heal {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, requires = "bucket")]
        prefix: Option<String>,
        /// Verify every shard's bitrot checksums.
        #[arg(long)]
        deep: bool,
        /// Report what needs healing without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Show running heals and replaced-drive trackers, then exit.
        #[arg(long)]
        status: bool,
        /// Print the finished heal's status as JSON (every object a dry run names).
        #[arg(long)]
        json: bool,
        /// Set heal speed: slow, normal or fast.
        #[arg(long)]
        speed: Option<String>,
    },
    /// Bucket settings.
    Bucket {
        #[command(subcommand)]
        command: BucketCommand,
    },
    /// Drives: tell Cairn that an empty drive is a real replacement.
    Drive {
        #[command(subcommand)]
        command: DriveCommand,
    },
    /// IAM users.
    User {
        #[command(subcommand)]
        command: iam_cli::UserCommand,
    },
    /// IAM groups.
    Group {
        #[command(subcommand)]
        command: iam_cli::GroupCommand,
    },
    /// IAM policies.
    Policy {
        #[command(subcommand)]
        command: iam_cli::PolicyCommand,
    },
    /// Access keys (service accounts) of users.
    Accesskey {
        #[command(subcommand)]
        command: iam_cli::AccessKeyCommand,
    },
    /// The built-in KMS: its keys, and re-sealing object keys under a new master key.
    Kms {
        #[command(subcommand)]
        command: kms_cli::KmsCommand,
    },
    /// Server pools: status, decommission (to remove a pool), rebalance.
    Pool {
        #[command(subcommand)]
        command: pool_cli::PoolCommand,
    },
    /// Prometheus: a bearer token and scrape configuration for the metrics endpoints.
    Prometheus {
        #[command(subcommand)]
        command: prometheus_cli::PrometheusCommand,
    },
}

#[derive(Subcommand)]
enum DriveCommand {
    /// The empty drive at ENDPOINT (as `cairn admin info` names it) replaces a lost one:
    /// format it into its slot and heal its set onto it, even if it is not a mount point.
    Replace {
        #[command(flatten)]
        conn: Conn,
        /// The drive's endpoint: its path, or its URL in a distributed deployment.
        #[arg(value_name = "ENDPOINT")]
        drive: String,
    },
}

#[derive(Subcommand)]
enum BucketCommand {
    /// Hard quotas on a bucket or a prefix of one (BUCKET or BUCKET/PREFIX).
    Quota {
        #[command(subcommand)]
        command: QuotaCommand,
    },
}

#[derive(Subcommand)]
enum QuotaCommand {
    /// Set the quota: SIZE such as 10GiB, 64MiB or a byte count; 0 removes it.
    Set {
        #[command(flatten)]
        conn: Conn,
        target: String,
        size: String,
    },
    /// Show the quota and the current usage.
    Get {
        #[command(flatten)]
        conn: Conn,
        target: String,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

const DEFAULT_DRIVES: &str = "./data/drive{1...4}";
const DEFAULT_CREDENTIAL: &str = "cairnadmin";
/// Where the root credentials came from when none were configured.
const DEFAULT_SOURCE: &str = "built-in default";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Root credentials: CAIRN_ROOT_*, else MINIO_ROOT_*, else the default (with a warning).
/// The root password from a file named by `CAIRN_ROOT_PASSWORD_FILE` (or
/// `MINIO_ROOT_PASSWORD_FILE`): a Kubernetes or systemd secret, kept out of `ps` and of the
/// environment. One trailing newline is dropped.
fn password_from_file() -> anyhow::Result<Option<String>> {
    let Some(path) = env("CAIRN_ROOT_PASSWORD_FILE").or_else(|| env("MINIO_ROOT_PASSWORD_FILE"))
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the root password file {path}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        bail!("the root password file {path} is empty");
    }
    Ok(Some(text.to_string()))
}

/// `--secret-key` on a command line shows in `ps` to every user of the machine.
fn warn_secret_on_command_line() {
    if std::env::args().any(|a| a == "--secret-key" || a.starts_with("--secret-key=")) {
        eprintln!(
            "WARNING: --secret-key is visible to every user of this machine (ps, /proc); \
             prefer CAIRN_ROOT_PASSWORD or CAIRN_ROOT_PASSWORD_FILE"
        );
    }
}

fn credentials() -> anyhow::Result<(RootCredentials, &'static str)> {
    let pick = |a: &str, b: &str| env(a).or_else(|| env(b));
    let user = pick("CAIRN_ROOT_USER", "MINIO_ROOT_USER");
    let password = match pick("CAIRN_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD") {
        Some(p) => Some(p),
        None => password_from_file()?,
    };
    let source = if env("CAIRN_ROOT_USER").is_some() {
        "CAIRN_ROOT_USER / CAIRN_ROOT_PASSWORD"
    } else if env("MINIO_ROOT_USER").is_some() {
        "MINIO_ROOT_USER / MINIO_ROOT_PASSWORD"
    } else {
        DEFAULT_SOURCE
    };
    match (user, password) {
        (Some(u), Some(p)) => {
            if p.len() < 8 {
                bail!("the root password must be at least 8 characters");
            }
            Ok((RootCredentials { access_key: u, secret_key: p }, source))
        }
        (None, None) => Ok((
            RootCredentials {
                access_key: DEFAULT_CREDENTIAL.into(),
                secret_key: DEFAULT_CREDENTIAL.into(),
            },
            DEFAULT_SOURCE,
        )),
        _ => bail!("set both the root user and the root password (CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD)"),
    }
}

fn parity_override() -> anyhow::Result<Option<usize>> {
    match env("CAIRN_STORAGE_CLASS_STANDARD") {
        None => Ok(None),
        Some(v) => {
            let n = v
                .strip_prefix("EC:")
                .and_then(|n| n.parse().ok())
                .with_context(|| {
                    format!("CAIRN_STORAGE_CLASS_STANDARD must look like EC:2, got {v:?}")
                })?;
            Ok(Some(n))
        }
    }
}

/// Parity of REDUCED_REDUNDANCY objects: `CAIRN_STORAGE_CLASS_RRS=EC:N` with
/// 1 ≤ N ≤ the standard parity (default EC:1, as MinIO's).
fn rrs_parity(standard: usize) -> anyhow::Result<usize> {
    let Some(v) = env("CAIRN_STORAGE_CLASS_RRS") else {
        return Ok(1.min(standard));
    };
    let n: usize = v
        .strip_prefix("EC:")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("CAIRN_STORAGE_CLASS_RRS must look like EC:1, got {v:?}"))?;
    if n == 0 || n > standard {
        anyhow::bail!(
            "CAIRN_STORAGE_CLASS_RRS={v}: parity must be from 1 to the standard parity ({standard})"
        );
    }
    Ok(n)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `CAIRN_SCANNER=off` disables the scanner; `CAIRN_SCANNER_INTERVAL` (default 1h) paces its
/// cycles and `CAIRN_SCANNER_DEEP_EVERY` (default 30d) its bitrot passes.
fn scanner_config() -> anyhow::Result<Option<ScannerConfig>> {
    if env("CAIRN_SCANNER").is_some_and(|v| v == "off") {
        return Ok(None);
    }
    let mut cfg = ScannerConfig::default();
    if let Some(v) = env("CAIRN_SCANNER_INTERVAL") {
        cfg.interval = parse_duration(&v)
            .with_context(|| format!("CAIRN_SCANNER_INTERVAL: bad duration {v:?}"))?;
    }
    if let Some(v) = env("CAIRN_MULTIPART_EXPIRY") {
        cfg.multipart_expiry = parse_duration(&v)
            .with_context(|| format!("CAIRN_MULTIPART_EXPIRY: bad duration {v:?}"))?;
    }
    if let Some(v) = env("CAIRN_SCANNER_DEEP_EVERY") {
        cfg.deep_every = parse_duration(&v)
            .with_context(|| format!("CAIRN_SCANNER_DEEP_EVERY: bad duration {v:?}"))?;
    }
    Ok(Some(cfg))
}

/// `CAIRN_LIFECYCLE_DEBUG_DAY=<duration>` (testing only): one lifecycle day lasts that
/// long, and lifecycle passes run at least twice per such day.
fn lifecycle_day() -> anyhow::Result<cairn::lifecycle::Day> {
    Ok(match env("CAIRN_LIFECYCLE_DEBUG_DAY") {
        None => cairn::lifecycle::Day::default(),
        Some(v) => {
            let d = parse_duration(&v)
                .filter(|d| d.as_secs() >= 1)
                .with_context(|| {
                    format!("CAIRN_LIFECYCLE_DEBUG_DAY: a duration of at least 1s, got {v:?}")
                })?;
            tracing::warn!(day = ?d, "CAIRN_LIFECYCLE_DEBUG_DAY is set: lifecycle days are shortened (testing only)");
            cairn::lifecycle::Day::of(d)
        }
    })
}

/// Per-call drive deadlines: `CAIRN_DRIVE_META_TIMEOUT` (default 2s) and
/// `CAIRN_DRIVE_DATA_TIMEOUT` (default 10s).
fn drive_timeouts() -> anyhow::Result<cairn::drive::Timeouts> {
    let mut t = cairn::drive::Timeouts::default();
    for (var, slot) in [
        ("CAIRN_DRIVE_META_TIMEOUT", &mut t.meta),
        ("CAIRN_DRIVE_DATA_TIMEOUT", &mut t.data),
    ] {
        if let Some(v) = env(var) {
            *slot = parse_duration(&v)
                .filter(|d| !d.is_zero())
                .with_context(|| format!("{var} must be a duration such as 2s or 500ms"))?;
        }
    }
    Ok(t)
}

/// `~/.cairn/certs`, MinIO's `~/.minio/certs` in Cairn's name.
fn default_certs_dir() -> PathBuf {
    env("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".cairn")
        .join("certs")
}

async fn server(
    address: Option<String>,
    certs_dir: Option<PathBuf>,
    console_address: Option<String>,
    drives: Vec<String>,
) -> anyhow::Result<()> {
    cairn::metrics::expose::mark_start();
    let drives = if drives.is_empty() {
        vec![DEFAULT_DRIVES.to_string()]
    } else {
        drives
    };
    let set_size = env("CAIRN_ERASURE_SET_DRIVE_COUNT")
        .map(|v| {
            v.parse::<usize>()
                .context("CAIRN_ERASURE_SET_DRIVE_COUNT must be a number")
        })
        .transpose()?;
    let layout = cairn::placement::Pools::from_args(&drives, set_size, parity_override()?)?;
    let endpoints = layout.endpoints();
    let certs_dir = certs_dir.unwrap_or_else(default_certs_dir);
    let certs = cairn::tls::Certs::open(&certs_dir)
        .with_context(|| format!("loading TLS certificates from {}", certs_dir.display()))?;
    if layout.is_distributed() {
        match (&certs, layout.is_tls()) {
            (None, true) => bail!(
                "the drive list uses https:// but {} has no {}: put this node's certificate and key there (or pass --certs-dir)",
                certs_dir.display(),
                cairn::tls::CERT_FILE
            ),
            (Some(_), false) => bail!(
                "{} holds a certificate, so this node serves HTTPS only, but the drive list uses http://: write the endpoints as https://",
                certs_dir.display()
            ),
            _ => {}
        }
    }
    let scheme = if certs.is_some() { "https" } else { "http" };
    let server_tls = certs.as_ref().map(|c| c.server_config()).transpose()?;
    // Peers are checked against the system's roots and the folder's CAs/.
    let peer_trust =
        cairn::tls::Trust::with_files(&cairn::tls::Certs::ca_files(&certs_dir))?.client_config()?;
    // Webhooks (audit, notifications) are checked against the same roots.
    let hook_trust = peer_trust.clone();
    cairn::drive::timed::set_default_timeouts(drive_timeouts()?);
    let (creds, cred_source) = credentials()?;
    // With the publicly known default credentials, only this machine may connect unless the
    // operator says otherwise.
    let loopback_only = address.is_none() && cred_source == DEFAULT_SOURCE;
    let address = address.unwrap_or_else(|| {
        if loopback_only {
            "127.0.0.1:9000".into()
        } else {
            "0.0.0.0:9000".into()
        }
    });
    let region = env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into());
    let domain = env("CAIRN_DOMAIN");
    let opts = OpenOptions {
        set_size: layout.pools[0].set_size,
        parity: layout.pools[0].parity,
        pools: layout
            .pools
            .iter()
            .zip(&layout.args)
            .map(|(p, arg)| cairn::object::PoolSpec {
                drives: p.endpoints.len(),
                set_size: p.set_size,
                parity: p.parity,
                arg: arg.clone(),
            })
            .collect(),
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
    }
    // Distributed: serve internode calls at once (peers need our drives to bootstrap).
    let cluster = if layout.is_distributed() {
        Some(Cluster::new(&layout, &creds, local, peer_trust)?)
    } else {
        None
    };
    let app = cairn::server::App::new(cluster.as_ref().map(|c| c.rpc.clone()));
    let limits =
        cairn::server::HttpLimits::from_env(env, parse_duration).map_err(anyhow::Error::msg)?;
    if let Some(c) = &certs {
        c.watch(std::time::Duration::from_secs(2), stop.clone());
    }
    let serving = tokio::spawn(cairn::server::serve(
        listener,
        app.clone(),
        limits,
        server_tls.clone(),
        stop.clone().cancelled_owned(),
    ));
    let mut leader_check: Option<cairn::heal::LeaderCheck> = None;
    let peers = cluster
        .as_ref()
        .map(|c| c.peers.clone())
        .unwrap_or_default();
    let this_node = cluster.as_ref().map(|c| c.nodes[c.me].clone());
    let rpc = cluster.as_ref().map(|c| c.rpc.clone());
    let store = match cluster {
        Some(c) => {
            let (peers, me) = (c.peers.clone(), c.me);
            // The scanner runs on the first node that is up.
            leader_check = Some(Arc::new(move || {
                peers[..me]
                    .iter()
                    .all(|p| p.as_ref().is_none_or(|p| !p.is_online()))
            }));
            println!(
                "Cairn node {} of {} ({}) — waiting for peers (listening on {local})",
                c.me + 1,
                c.nodes.len(),
                c.nodes[c.me]
            );
            c.check_peers().await?;
            for p in c.peers.iter().flatten() {
                p.start_heartbeat(std::time::Duration::from_secs(2), stop.clone());
            }
            let names: Vec<String> = endpoints.iter().map(|e| e.to_string()).collect();
            cairn::object::open_cluster(c.drives, &names, &opts, c.me == 0, &stop)
                .await
                .context("opening the cluster's drives")?
                .with_locker(c.locker)
        }
        None => {
            let paths: Vec<PathBuf> = endpoints
                .iter()
                .filter_map(|e| match e {
                    Endpoint::Local(p) => Some(p.clone()),
                    Endpoint::Url { .. } => None,
                })
                .collect();
            open_local(&paths, &opts).await.context("opening drives")?
        }
    };
    let endpoint_host = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let owner_id = hex::encode(&blake3::hash(creds.access_key.as_bytes()).as_bytes()[..16]);
    let (access_key, secret_key) = (creds.access_key.clone(), creds.secret_key.clone());
    let store = Arc::new(store.with_rrs_parity(rrs_parity(
        layout.pools.iter().map(|p| p.parity).min().unwrap_or(0),
    )?));
    let iam = Arc::new(cairn::iam::Iam::new(
        creds.clone(),
        store.drive_slots(),
        store.locker(),
    ));
    // Test-only (like CAIRN_TEST_CRASH_AT): sessions shorter than AWS's 15 minutes.
    if let Some(v) = env("CAIRN_TEST_STS_MIN_SECS") {
        let secs: u64 = v
            .parse()
            .context("CAIRN_TEST_STS_MIN_SECS must be a number")?;
        iam.set_min_session(std::time::Duration::from_secs(secs));
    }
    if store.pools_changed {
        // A pool was added or removed: buckets and system records onto every drive.
        for p in 0..store.pools().len() {
            match store.seed_pool(p).await {
                Ok(n) if n > 0 => tracing::info!(
                    pool = p + 1,
                    buckets = n,
                    "bucket folders made on a new pool"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(pool = p + 1, error = %e, "buckets not made on the pool yet")
                }
            }
        }
        if let Err(e) = store.buckets().heal().await {
            tracing::warn!(error = %e, "bucket records not healed onto every pool");
        }
        if let Err(e) = iam.heal().await {
            tracing::warn!(error = %e, "identity records not healed onto every pool");
        }
    }
    if !peers.is_empty() {
        let notifier = Arc::new(cairn::records::PeerNotifier(
            peers.iter().flatten().cloned().collect(),
        ));
        store.buckets().set_notifier(notifier.clone());
        iam.set_notifier(notifier);
    }
    if let Some(rpc) = &rpc {
        rpc.register(cairn::bucket::CHANGED_SERVICE, store.buckets().clone());
        rpc.register(cairn::iam::CHANGED_SERVICE, iam.clone());
    }
    // Bucket settings and identities are read before the first request; a failure here
    // (no read quorum yet) is retried by the refresh.
    if let Err(e) = store.load_buckets(&owner_id).await {
        tracing::warn!(error = %e, "bucket records not loaded yet");
    }
    store.buckets().spawn_refresh(stop.clone());
    let quotas = cairn::quota::Quotas::new(store.clone());
    if let Err(e) = quotas.migrate().await {
        tracing::warn!(error = %e, "quotas.json not moved into the bucket records yet");
    }
    if let Err(e) = iam.load().await {
        tracing::warn!(error = %e, "IAM records not loaded yet");
    }
    iam.spawn_refresh(stop.clone());
    let lifecycle_day = lifecycle_day()?;
    let cors_default = match env("CAIRN_CORS_ALLOW_ORIGIN") {
        Some(v) => Some(cairn::s3::cors::default_rules(&v).with_context(|| {
            format!("CAIRN_CORS_ALLOW_ORIGIN must be `*` or comma-separated origins (each with at most one `*`), got {v:?}")
        })?),
        None => None,
    };
    let kms: Option<Arc<dyn cairn::kms::Kms>> = cairn::kms::StaticKms::from_env(env)
        .context("CAIRN_KMS_SECRET_KEY")?
        .map(|k| Arc::new(k) as Arc<dyn cairn::kms::Kms>);
    let kms_line = kms
        .as_ref()
        .and_then(|k| k.default_key())
        .map(|k| format!("built-in, static keys (default {k:?}): SSE-S3, SSE-KMS"));
    // Event queues live in the system area of this node's first drive unless told otherwise.
    let queue_root = endpoints
        .iter()
        .find_map(|e| match e {
            Endpoint::Local(p) => Some(p.clone()),
            Endpoint::Url { path, .. } if Some(e.host()) == this_node => Some(PathBuf::from(path)),
            Endpoint::Url { .. } => None,
        })
        .map(|p| p.join(cairn::drive::SYS_DIR).join("queue"));
    let node_name = this_node.clone().unwrap_or_else(|| endpoint_host.clone());
    let audit = cairn::audit::AuditConfig::from_env(env)?;
    let observers = cairn::audit::Observers::new(&node_name, &store.deployment_id().to_string())
        .with_sinks(&audit, queue_root.as_deref(), hook_trust.clone(), &stop)?;
    let notify_targets = cairn::notify::targets_from_env(std::env::vars())?;
    let notifier = cairn::notify::Notifier::start(
        &region,
        &notify_targets,
        queue_root.as_deref(),
        hook_trust,
        &stop,
    )?;
    let events_line = {
        let mut parts = Vec::new();
        if let Some(f) = &audit.file {
            parts.push(format!("audit file {}", f.display()));
        }
        if let Some(w) = &audit.webhook {
            parts.push(format!("audit webhook {w}"));
        }
        parts.extend(notifier.arns());
        parts.join(", ")
    };
    let state = Arc::new(S3State {
        observers: Arc::new(observers),
        notifier: Arc::new(notifier),
        memory: Arc::new(
            cairn::memory::Budget::from_env().map_err(|e| anyhow::anyhow!(e))?,
        ),
        kms,
        cors_default,
        lifecycle_day,
        iam,
        quotas,
        store,
        owner: Owner {
            id: owner_id,
            display_name: creds.access_key.clone(),
        },
        region,
        domain,
        peers: peers.iter().flatten().cloned().collect(),
        node: this_node,
        requests: match env("CAIRN_METRICS").as_deref() {
            None | Some("on") => Some(Arc::new(cairn::s3::counters::table())),
            Some("off") => None,
            Some(v) => anyhow::bail!("CAIRN_METRICS must be on or off, got {v:?}"),
        },
        prometheus_public: match env("CAIRN_PROMETHEUS_AUTH_TYPE")
            .or_else(|| env("MINIO_PROMETHEUS_AUTH_TYPE"))
            .as_deref()
        {
            None | Some("jwt") => false,
            Some("public") => true,
            Some(v) => anyhow::bail!("CAIRN_PROMETHEUS_AUTH_TYPE must be jwt or public, got {v:?}"),
        },
        default_ownership: match env("CAIRN_DEFAULT_OBJECT_OWNERSHIP") {
            Some(v) => cairn::bucket::ObjectOwnership::parse(&v).with_context(|| {
                format!("CAIRN_DEFAULT_OBJECT_OWNERSHIP must be ObjectWriter, BucketOwnerPreferred or BucketOwnerEnforced, got {v:?}")
            })?,
            None => cairn::bucket::ObjectOwnership::ObjectWriter,
        },
    });
    if let Some(rpc) = &rpc {
        rpc.register_stream(
            cairn::audit::trace::SERVICE,
            Arc::new(cairn::audit::trace::TraceService {
                hub: state.observers.trace().clone(),
                node: node_name.clone(),
            }),
        );
    }
    let healer = cairn::heal::Healer::new(state.store.clone(), stop.clone());
    if let Some(v) = env("CAIRN_HEAL_SPEED") {
        healer.set_speed(cairn::heal::Speed::parse(&v).with_context(|| {
            format!("CAIRN_HEAL_SPEED must be slow, normal or fast, got {v:?}")
        })?);
    }
    let drive_check = match env("CAIRN_DRIVE_CHECK_INTERVAL") {
        Some(v) => parse_duration(&v)
            .with_context(|| format!("CAIRN_DRIVE_CHECK_INTERVAL: bad duration {v:?}"))?,
        None => std::time::Duration::from_secs(10),
    };
    if let Some(check) = leader_check {
        healer.set_leader_check(check);
    }
    if !state.peers.is_empty() {
        let peers = state.peers.clone();
        healer.set_peer_probe(Arc::new(move || {
            let peers = peers.clone();
            Box::pin(async move {
                futures::future::join_all(peers.iter().map(|p| p.probe_now())).await;
            })
        }));
    }
    let scanner = scanner_config()?;
    healer.start_with(scanner, drive_check);
    healer.resume_rotation(state.kms.clone()).await;
    healer.start_pools(layout.args.clone());
    {
        let state = state.clone();
        healer.set_on_expired(Arc::new(move |e| {
            let state = state.clone();
            Box::pin(async move { cairn::s3::lifecycle_expired(&state, e).await })
        }));
    }
    healer.start_lifecycle(cairn::heal::LifecycleConfig::new(
        lifecycle_day,
        scanner.map_or(std::time::Duration::from_secs(3600), |s| s.interval),
    ));
    if let Some(rpc) = &rpc {
        rpc.register(cairn::heal::STATE_SERVICE, healer.clone());
        if let Some(r) = &state.requests {
            rpc.register(
                cairn::metrics::expose::REQUESTS_SERVICE,
                Arc::new(cairn::metrics::expose::RequestsService(r.clone())),
            );
        }
    }
    // Ready before the banner: whoever reads the endpoint from it can use it at once.
    app.set_ready(state.clone(), healer.clone());
    let console_url = match console_address.as_deref().map(str::trim) {
        Some("off") => None,
        given => {
            let addr = given.unwrap_or(":9001");
            let addr = match addr.strip_prefix(':') {
                Some(port) if loopback_only => format!("127.0.0.1:{port}"),
                Some(port) => format!("0.0.0.0:{port}"),
                None => addr.to_string(),
            };
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => {
                    let bound = l.local_addr()?;
                    let console = cairn::console::Console::new(
                        state.clone(),
                        healer.clone(),
                        server_tls.is_some(),
                        cairn::console::S3Address {
                            public_url: env("CAIRN_SERVER_URL").or_else(|| env("MINIO_SERVER_URL")),
                            scheme,
                            port: local.port(),
                        },
                    );
                    tokio::spawn(cairn::server::serve_router(
                        l,
                        cairn::console::router(console),
                        limits,
                        server_tls.clone(),
                        stop.clone().cancelled_owned(),
                    ));
                    let host = if bound.ip().is_unspecified() {
                        format!("127.0.0.1:{}", bound.port())
                    } else {
                        bound.to_string()
                    };
                    Some(format!("{scheme}://{host}   (listening on {bound})"))
                }
                // Only the default port may be taken (another server on this machine).
                Err(e) if given.is_none() => {
                    tracing::warn!(address = %addr, error = %e, "web console not started: set --console-address");
                    None
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot listen on {addr} for the console"))
                }
            }
        }
    };
    println!(
        "Cairn {} — S3-compatible object storage",
        env!("CARGO_PKG_VERSION")
    );
    println!("  S3 endpoint:  {scheme}://{endpoint_host}   (listening on {local})");
    println!(
        "  Console:      {}",
        console_url.as_deref().unwrap_or("off")
    );
    if let Some(c) = &certs {
        let domains = c.domains();
        println!(
            "  TLS:          certificates from {}{}",
            certs_dir.display(),
            if domains.is_empty() {
                String::new()
            } else {
                format!(" (also for {})", domains.join(", "))
            }
        );
    }
    println!("  Region:       {}", state.region);
    println!(
        "  KMS:          {}",
        kms_line
            .as_deref()
            .unwrap_or("not configured (SSE-S3/SSE-KMS refused; set CAIRN_KMS_SECRET_KEY)")
    );
    if layout.is_distributed() {
        println!("  Nodes:        {}", layout.nodes().join(", "));
    }
    for (i, p) in layout.pools.iter().enumerate() {
        let pool = if layout.pools.len() > 1 {
            format!(" (pool {})", i + 1)
        } else {
            String::new()
        };
        println!(
            "  Layout:       {} set(s) x {} drives, EC {}+{} ({} drives){pool}",
            p.set_count(),
            p.set_size,
            p.data(),
            p.parity,
            p.endpoints.len()
        );
    }
    println!("  Deployment:   {}", state.store.deployment_id());
    if !events_line.is_empty() {
        println!("  Events:       {events_line}");
    }
    println!("  Credentials:  from {cred_source}");
    if cred_source == DEFAULT_SOURCE {
        println!("  AccessKey:    {}", access_key);
        println!("  SecretKey:    {}", secret_key);
        if loopback_only {
            println!(
                "  Listening on 127.0.0.1 only: the default credentials are in use (set \
                 CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD, or --address, to serve other hosts)."
            );
        }
        eprintln!(
            "WARNING: using the default root credentials {DEFAULT_CREDENTIAL}/{DEFAULT_CREDENTIAL}. \
             Set CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD before storing anything that matters."
        );
    }
    println!(
        "  Try:          AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY=<secret> aws --endpoint-url {scheme}://{endpoint_host} s3 ls",
        access_key
    );
    serving.await??;
    healer.save_mrf().await;
    println!("Cairn stopped.");
    Ok(())
}

/// This node's part of a distributed deployment: which node it is, its drives (local ones
/// opened, the others' reached over RPC), the lock servers and the RPC server.
struct Cluster {
    nodes: Vec<String>,
    peers: Vec<Option<Arc<cairn::rpc::Peer>>>,
    me: usize,
    drives: Vec<Option<Arc<dyn cairn::drive::Drive>>>,
    locker: Arc<dyn cairn::lock::Locker>,
    rpc: Arc<cairn::rpc::RpcServer>,
}

impl Cluster {
    /// Refuse to start when every peer that answers refuses this node (other endpoint list
    /// or credentials): this node is the odd one out. Peers that are down are waited for
    /// by the bootstrap.
    async fn check_peers(&self) -> anyhow::Result<()> {
        for round in 0..3 {
            let answers = futures::future::join_all(
                self.peers
                    .iter()
                    .flatten()
                    .map(|p| async move { (p.node.clone(), p.hello().await) }),
            )
            .await;
            let accepted = answers.iter().filter(|(_, r)| r.is_ok()).count();
            let refused: Vec<String> = answers
                .iter()
                .filter_map(|(n, r)| match r {
                    Err(e) if e.to_string().contains(cairn::rpc::REJECTED) => {
                        Some(format!("{n}: {e}"))
                    }
                    _ => None,
                })
                .collect();
            if refused.is_empty() || accepted > 0 {
                return Ok(());
            }
            if round == 2 {
                bail!(
                    "this node ({}) is refused by its peers — start every node with the same endpoint list and root credentials:\n  {}",
                    self.nodes[self.me],
                    refused.join("\n  ")
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        Ok(())
    }

    fn new(
        layout: &cairn::placement::Pools,
        creds: &RootCredentials,
        listen: std::net::SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Cluster> {
        use cairn::lock::dist::{DistLocker, LockServer, LockTable};
        use cairn::rpc::{Peer, RemoteDrive, RpcAuth, RpcServer};
        let nodes = layout.nodes();
        let me = cairn::placement::layout::find_local_node(&nodes, listen)?;
        let endpoints = layout.endpoints();
        let auth = RpcAuth::new(creds, &endpoints);
        let mut peers: Vec<Option<Arc<Peer>>> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let scheme = endpoints
                .iter()
                .find_map(|e| match e {
                    Endpoint::Url { scheme, .. } if e.host() == *n => Some(scheme.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "http".into());
            peers.push(
                (i != me).then(|| Peer::new(&scheme, n, &nodes[me], auth.clone(), tls.clone())),
            );
        }
        let mut drives: Vec<Option<Arc<dyn cairn::drive::Drive>>> = Vec::new();
        let mut local: Vec<Option<Arc<dyn cairn::drive::Drive>>> = Vec::new();
        for (idx, e) in endpoints.iter().enumerate() {
            let Endpoint::Url { path, .. } = e else {
                bail!("cannot mix local paths and URLs");
            };
            let node = nodes.iter().position(|n| *n == e.host()).unwrap_or(me);
            match &peers[node] {
                Some(peer) => {
                    drives.push(Some(Arc::new(RemoteDrive::new(
                        peer.clone(),
                        idx,
                        e.to_string(),
                    ))));
                    local.push(None);
                }
                None => {
                    let d: Arc<dyn cairn::drive::Drive> =
                        Arc::new(cairn::drive::LocalDrive::open_named(path, e.to_string()));
                    let d: Arc<dyn cairn::drive::Drive> =
                        Arc::new(cairn::drive::TimedDrive::new(d));
                    drives.push(Some(d.clone()));
                    local.push(Some(d));
                }
            }
        }
        let table = Arc::new(LockTable::default());
        let servers = peers
            .iter()
            .map(|p| match p {
                Some(p) => LockServer::Remote(p.clone()),
                None => LockServer::Local(table.clone()),
            })
            .collect();
        let rpc = Arc::new(RpcServer::new(auth, local, table, nodes[me].clone()));
        Ok(Cluster {
            nodes,
            peers,
            me,
            drives,
            locker: Arc::new(DistLocker::new(servers)),
            rpc,
        })
    }
}

/// Client credentials: flags or CAIRN_ROOT_*, else MINIO_ROOT_*, else the password file
/// (`CAIRN_ROOT_PASSWORD_FILE`), else the default.
fn credentials_for(conn: &Conn) -> (String, String) {
    let access = conn
        .access_key
        .clone()
        .or_else(|| env("MINIO_ROOT_USER"))
        .unwrap_or_else(|| DEFAULT_CREDENTIAL.into());
    let secret = conn
        .secret_key
        .clone()
        .or_else(|| env("MINIO_ROOT_PASSWORD"))
        .or_else(|| match password_from_file() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("WARNING: {e:#}");
                None
            }
        })
        .unwrap_or_else(|| DEFAULT_CREDENTIAL.into());
    (access, secret)
}

fn print_bench(r: &cairn::bench::Report) {
    println!(
        "{:?} x{} for {:.1}s, sizes {}..{} bytes",
        r.op, r.concurrency, r.seconds, r.size_min, r.size_max
    );
    println!(
        "{:<10} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7}",
        "op",
        "count",
        "MiB/s",
        "obj/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "ttfb p50",
        "errors"
    );
    for (name, o) in &r.ops {
        println!(
            "{:<10} {:>9} {:>11.1} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>7}",
            name,
            o.count,
            o.throughput_mib_s,
            o.objects_s,
            o.latency_ms.p50,
            o.latency_ms.p90,
            o.latency_ms.p99,
            o.latency_ms.max,
            o.ttfb_ms.p50,
            o.errors.values().sum::<u64>()
        );
        for (code, n) in &o.errors {
            println!("           error {code}: {n}");
        }
    }
    if r.removed > 0 {
        println!(
            "Removed the {} objects the run wrote (--keep-data keeps them).",
            r.removed
        );
    }
}

fn mount(mut m: MountCli) -> anyhow::Result<()> {
    // `NAME/BUCKET[/PREFIX]` with NAME an alias, when no --endpoint names the server.
    if m.conn.endpoint.is_none() {
        if let Some((first, rest)) = m.volume.split_once('/') {
            let config = alias_cli::Config::load()?;
            if config.aliases.contains_key(first) && !rest.is_empty() {
                m.conn.alias = Some(first.to_string());
                m.volume = rest.to_string();
            }
        }
    }
    let mode = |s: &str| {
        u32::from_str_radix(s, 8).map_err(|_| anyhow::anyhow!("invalid octal mode {s:?}"))
    };
    if !m.foreground {
        // Re-run ourselves in the foreground as a background process; return once mounted.
        let argv: Vec<String> = std::env::args().skip(1).collect();
        cairn::mount::spawn_background(&argv, &m.mountpoint)?;
        return Ok(());
    }
    let t = m.conn.target()?;
    let cache_dir = m
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-mount"));
    let options = cairn::mount::fs::Options {
        uid: m.uid,
        gid: m.gid,
        dir_mode: mode(&m.dir_mode)?,
        file_mode: mode(&m.file_mode)?,
        read_only: m.read_only,
        cache_dir,
        max_readahead: cairn::units::parse_bytes(&m.max_readahead)
            .filter(|n| *n >= 128 << 10)
            .ok_or_else(|| anyhow::anyhow!("invalid --max-readahead (at least 128KiB)"))?,
        readahead_budget: cairn::units::parse_bytes(&m.readahead_budget)
            .ok_or_else(|| anyhow::anyhow!("invalid --readahead-budget"))?,
        ..Default::default()
    };
    cairn::mount::run_foreground(cairn::mount::MountArgs {
        endpoint: t.url,
        access_key: t.access_key,
        secret_key: t.secret_key,
        region: env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into()),
        volume: m.volume.clone(),
        mountpoint: m.mountpoint.clone(),
        options,
        allow_other: m.allow_other,
        trust: m.conn.tls.trust()?,
    })?;
    Ok(())
}

fn connect(conn: &Conn) -> anyhow::Result<AdminClient> {
    connect_with(conn, AdminClient::new)
}

/// [`connect`] for calls that stream until interrupted (no overall timeout).
fn connect_streaming(conn: &Conn) -> anyhow::Result<AdminClient> {
    connect_with(conn, AdminClient::streaming)
}

fn connect_with(
    conn: &Conn,
    make: impl FnOnce(
        &str,
        &str,
        &str,
        &str,
        &cairn::tls::Trust,
    ) -> Result<AdminClient, cairn::admin::client::ClientError>,
) -> anyhow::Result<AdminClient> {
    let t = conn.target()?;
    let region = env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into());
    Ok(make(
        &t.url,
        &t.access_key,
        &t.secret_key,
        &region,
        &conn.tls.trust()?,
    )?)
}

fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}

/// How long ago `unix_secs` was, for people.
fn ago(unix_secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let s = now.saturating_sub(unix_secs);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

fn print_heal_state(h: &HealState) {
    println!(
        "Heal: speed {:?}, {} object(s) queued for repair",
        h.speed, h.queued
    );
    for t in &h.replacements {
        println!(
            "  replaced drive {} (slot {}): {} objects ({}) healed, {} failed{}",
            t.drive,
            t.slot,
            t.objects_done,
            human(t.bytes_done),
            t.objects_failed,
            if t.finished {
                ", finished"
            } else {
                ", in progress"
            }
        );
    }
    if let Some(s) = &h.sequence {
        println!(
            "  heal {}: scanned {}/{} healed {} failed {} unhealthy {} rebuilt {}{}",
            s.id,
            s.scanned,
            s.total.map_or("?".to_string(), |t| t.to_string()),
            s.healed,
            s.failed,
            s.unhealthy,
            human(s.bytes_rebuilt),
            if s.finished {
                " (finished)"
            } else {
                " (running)"
            }
        );
    }
    for w in &h.workers {
        println!(
            "  worker {}: {} ({} done, {} failed)",
            w.name, w.state, w.done, w.failed
        );
    }
    let l = &h.lifecycle;
    match l.last_finished {
        Some(at) => println!(
            "Lifecycle: last pass {} ago ({} ms, {}): {} bucket(s), {} version(s) scanned, {} expired, {} upload(s) aborted, {} kept by object lock, {} failed; {} expired since start{}",
            ago(at),
            l.last_duration_ms,
            if l.complete { "complete" } else { "budget reached, the next pass resumes" },
            l.buckets,
            l.scanned,
            l.expired,
            l.uploads_aborted,
            l.kept_by_lock,
            l.failed,
            l.total_expired,
            if l.running { "; a pass is running" } else { "" }
        ),
        None if l.running => println!("Lifecycle: first pass running"),
        None => println!("Lifecycle: no pass yet"),
    }
    if !h.usage.is_empty() {
        println!("Usage (last scanner cycle):");
        for (bucket, u) in &h.usage {
            println!("  {bucket}: {} objects, {}", u.objects, human(u.bytes));
        }
    }
}

fn quota(command: QuotaCommand) -> anyhow::Result<()> {
    let (conn, target, size, as_json) = match command {
        QuotaCommand::Set { conn, target, size } => (conn, target, Some(size), false),
        QuotaCommand::Get { conn, target, json } => (conn, target, None, json),
    };
    let (bucket, prefix) = target.split_once('/').unwrap_or((target.as_str(), ""));
    let mut query = vec![
        ("bucket", bucket.to_string()),
        ("prefix", prefix.to_string()),
    ];
    let method = match &size {
        Some(s) => {
            let bytes = cairn::units::parse_bytes(s)
                .ok_or_else(|| anyhow::anyhow!("invalid size {s:?}: use e.g. 64MiB, 10GiB or 0"))?;
            query.push(("size", bytes.to_string()));
            "PUT"
        }
        None => "GET",
    };
    let status: cairn::quota::QuotaStatus = connect(&conn)?.call(method, "quota", &query)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        let quota = if status.quota == 0 {
            "no quota".to_string()
        } else {
            format!("quota {}", human(status.quota))
        };
        println!(
            "{target}: {quota}, {} used in {} objects",
            human(status.used),
            status.objects
        );
    }
    Ok(())
}

fn admin(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::User { command } => iam_cli::user(command),
        AdminCommand::Group { command } => iam_cli::group(command),
        AdminCommand::Policy { command } => iam_cli::policy(command),
        AdminCommand::Accesskey { command } => iam_cli::accesskey(command),
        AdminCommand::Kms { command } => kms_cli::kms(command),
        AdminCommand::Pool { command } => pool_cli::pool(command),
        AdminCommand::Prometheus { command } => prometheus_cli::prometheus(command),
        AdminCommand::Bucket {
            command: BucketCommand::Quota { command },
        } => quota(command),
        AdminCommand::Drive {
            command: DriveCommand::Replace { conn, drive },
        } => {
            let _: serde_json::Value =
                connect(&conn)?.call("POST", "drive/replace", &[("endpoint", drive.clone())])?;
            println!("{drive}: formatted as a replacement; its set is healing onto it (cairn admin heal --status)");
            Ok(())
        }
        AdminCommand::Metrics { alias, conn, json } => {
            let m: cairn::admin::Metrics =
                connect(&conn.with_alias(alias))?.call("GET", "metrics", &[])?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
                return Ok(());
            }
            println!(
                "{:<26} {:>12} {:>12} {:>12} {:>16}",
                "operation", "ok", "4xx", "5xx", "not implemented"
            );
            for (op, o) in &m.requests {
                println!(
                    "{op:<26} {:>12} {:>12} {:>12} {:>16}",
                    o.ok, o.client_errors, o.server_errors, o.not_implemented
                );
            }
            Ok(())
        }
        AdminCommand::Trace {
            alias,
            conn,
            all_nodes,
            errors,
            op,
            bucket,
            json,
        } => {
            let mut query = Vec::new();
            if all_nodes {
                query.push(("all-nodes", "true".to_string()));
            }
            if errors {
                query.push(("errors", "true".to_string()));
            }
            if let Some(op) = op {
                query.push(("op", op));
            }
            if let Some(b) = bucket {
                query.push(("bucket", b));
            }
            let conn = conn.with_alias(alias);
            let stream = connect_streaming(&conn)?.stream("trace", &query)?;
            trace_cli::print(stream, json)
        }
        AdminCommand::Info { alias, conn, json } => {
            let info: Info = connect(&conn.with_alias(alias))?.call("GET", "info", &[])?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!(
                "Cairn {} — deployment {} — region {}",
                info.version, info.deployment_id, info.region
            );
            if info.nodes.len() > 1 {
                println!("Nodes (as {} sees them):", info.node);
                for n in &info.nodes {
                    println!(
                        "  {:<8} {}  {}/{} drives online",
                        n.state, n.node, n.drives_online, n.drives
                    );
                }
            }
            let (mut online, mut total) = (0, 0);
            if info.pools.len() > 1 {
                pool_cli::print_pools(&cairn::heal::PoolsStatus {
                    pools: info.pools.clone(),
                    rebalance: info.rebalance.clone(),
                });
            }
            for set in &info.sets {
                let pool = if info.pools.len() > 1 {
                    format!(" (pool {})", set.pool)
                } else {
                    String::new()
                };
                println!("Set {}{pool}: EC {}+{}", set.index, set.data, set.parity);
                for d in &set.drives {
                    total += 1;
                    if d.state != "offline" {
                        online += 1;
                    }
                    match &d.reason {
                        Some(reason) => println!("  {:<8} {}  ({reason})", d.state, d.endpoint),
                        None => println!(
                            "  {:<8} {}  {} used of {}",
                            d.state,
                            d.endpoint,
                            human(d.used),
                            human(d.total)
                        ),
                    }
                }
            }
            println!("{online}/{total} drives online");
            print_heal_state(&info.heal);
            Ok(())
        }
        AdminCommand::Heal {
            alias,
            conn,
            bucket,
            prefix,
            deep,
            dry_run,
            status,
            speed,
            json,
        } => {
            let client = connect(&conn.with_alias(alias))?;
            if let Some(s) = speed {
                let state: HealState = client.call("POST", "heal/speed", &[("value", s)])?;
                println!("heal speed set to {:?}", state.speed);
                if !status {
                    return Ok(());
                }
            }
            if status {
                let state: HealState = client.call("GET", "heal/status", &[])?;
                print_heal_state(&state);
                return Ok(());
            }
            let mut query = vec![];
            if let Some(b) = bucket {
                query.push(("bucket", b));
            }
            if let Some(p) = prefix {
                query.push(("prefix", p));
            }
            if deep {
                query.push(("deep", "true".to_string()));
            }
            if dry_run {
                query.push(("dry-run", "true".to_string()));
            }
            let started: SequenceStatus = client.call("POST", "heal", &query)?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} objects ({per_sec}, ETA {eta}) {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let last = loop {
                let state: HealState = client.call("GET", "heal/status", &[])?;
                let Some(s) = state.sequence.filter(|s| s.id == started.id) else {
                    anyhow::bail!("the heal {} is no longer tracked by the server", started.id);
                };
                if let Some(t) = s.total {
                    bar.set_length(t);
                }
                bar.set_position(s.scanned);
                bar.set_message(format!(
                    "healed {} failed {}{} rebuilt {}",
                    s.healed,
                    s.failed,
                    if s.dry_run {
                        format!(" unhealthy {}", s.unhealthy)
                    } else {
                        String::new()
                    },
                    human(s.bytes_rebuilt)
                ));
                if s.finished {
                    break s;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            };
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&last)?);
                if last.failed > 0 || last.unhealthy > 0 {
                    std::process::exit(1);
                }
                return Ok(());
            }
            let rate = last.bytes_rebuilt as f64 / last.elapsed_secs.max(0.001) / (1 << 20) as f64;
            println!(
                "heal {}: scanned {} objects, healed {}, failed {}, unhealthy {}, rebuilt {} ({rate:.1} MiB/s) in {:.1}s",
                if last.failed == 0 && last.unhealthy == 0 { "ok" } else { "incomplete" },
                last.scanned,
                last.healed,
                last.failed,
                last.unhealthy,
                human(last.bytes_rebuilt),
                last.elapsed_secs
            );
            if !last.failures.is_empty() {
                println!("failed objects (first {}):", last.failures.len());
                for f in &last.failures {
                    let name = match (f.bucket.as_str(), f.key.as_str()) {
                        ("", _) => "(bucket list)".to_string(),
                        (b, "") => format!("{b} (listing)"),
                        (b, k) => format!("{b}/{k}"),
                    };
                    println!("  {name}: {}", f.reason);
                }
                println!("failures by reason:");
                for (reason, n) in &last.failure_reasons {
                    println!("  {n:>8}  {reason}");
                }
            }
            if !last.unhealthy_objects.is_empty() {
                const SHOWN: usize = 10;
                println!("objects needing a heal:");
                for u in last.unhealthy_objects.iter().take(SHOWN) {
                    println!("  {}/{}: {}", u.bucket, u.key, u.reason);
                }
                let more = last.unhealthy.saturating_sub(SHOWN as u64);
                if more > 0 {
                    println!("  ... and {more} more (--json lists up to 1,000)");
                }
            }
            if last.failed > 0 || last.unhealthy > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The server runs with glibc malloc capped at 2 arenas. Block buffers of a MiB are allocated
/// on one thread and freed on another all the time; with the default 8 arenas per core glibc
/// keeps the freed memory of each arena, and peak RSS at 32 concurrent 64 MiB GETs was 395 MiB
/// against 287 MiB with 2 arenas (same throughput). glibc reads `MALLOC_ARENA_MAX` only at
/// start, so the server re-executes itself once with it set, unless the operator set it.
fn cap_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
    // Only reached when exec failed: run as we are.
    eprintln!("note: could not re-execute with MALLOC_ARENA_MAX=2: {err}");
}

fn main() -> anyhow::Result<()> {
    if matches!(std::env::args().nth(1).as_deref(), Some("server" | "mount")) {
        cap_malloc_arenas();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                // fuser warns when its own unmount finds the filesystem already unmounted
                // by `umount`: the normal way out, not worth a WARN (Cairn logs the unmount).
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,fuser::session=error,fuser::mnt=error")
                }),
        )
        .with_writer(std::io::stderr)
        // Colours only for a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    warn_secret_on_command_line();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Bench { .. }) {
        // The load generator needs I/O only: no timer, signal or child-process drivers to
        // service on every park of a worker (its own cost is what it must keep low).
        builder.enable_io();
    } else {
        builder.enable_all();
    }
    let runtime = builder.build()?;
    match cli.command {
        Command::Server {
            address,
            certs_dir,
            console_address,
            drives,
        } => runtime.block_on(server(address, certs_dir, console_address, drives)),
        Command::Admin { command } => admin(command),
        Command::Alias { command } => alias_cli::alias(command),
        Command::Csi {
            endpoint,
            node_id,
            mode,
            state_dir,
            s3_endpoint,
            access_key,
            secret_key,
            mounter,
            tls,
        } => {
            let mode = cairn::csi::Mode::parse(&mode).ok_or_else(|| {
                anyhow::anyhow!("--mode must be controller, node, all or mounter")
            })?;
            let mounter = match mounter {
                Some(m) => Some(PathBuf::from(m.strip_prefix("unix://").ok_or_else(
                    || anyhow::anyhow!("--mounter must be unix:///path/to/socket"),
                )?)),
                None => None,
            };
            let args = cairn::csi::CsiArgs {
                endpoint,
                node_id,
                mode,
                state_dir,
                defaults: cairn::csi::Defaults {
                    endpoint: s3_endpoint,
                    credentials: match (access_key, secret_key.or(password_from_file()?)) {
                        (Some(a), Some(s)) => Some((a, s)),
                        (None, None) => None,
                        _ => anyhow::bail!("--access-key and --secret-key go together"),
                    },
                    trust: tls.trust()?,
                },
                mount_binary: std::env::current_exe()?,
                mounter,
            };
            runtime.block_on(cairn::csi::run(args))?;
            Ok(())
        }
        Command::Mount(m) => {
            drop(runtime);
            mount(m)
        }
        Command::NullServer { address, certs_dir } => runtime.block_on(async {
            let tls = match certs_dir {
                Some(dir) => match cairn::tls::Certs::open(&dir)? {
                    Some(c) => Some(c.server_config()?),
                    None => bail!("{} has no {}", dir.display(), cairn::tls::CERT_FILE),
                },
                None => None,
            };
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            println!("null server (listening on {})", listener.local_addr()?);
            cairn::bench::null::serve(listener, tls).await?;
            Ok(())
        }),
        Command::Bench {
            alias,
            conn,
            op,
            size,
            concurrency,
            duration,
            objects,
            bucket,
            json,
            keep_data,
        } => {
            let conn = conn.with_alias(alias);
            let t = conn.target()?;
            let cfg = cairn::bench::Config {
                endpoint: t.url,
                access_key: t.access_key,
                secret_key: t.secret_key,
                region: env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into()),
                bucket,
                op: cairn::bench::Op::parse(&op)?,
                sizes: cairn::bench::parse_size(&size)?,
                concurrency: concurrency.max(1),
                duration: parse_duration(&duration)
                    .with_context(|| format!("bad duration {duration:?}"))?,
                objects,
                keep_data,
                trust: conn.tls.trust()?,
            };
            let report = runtime.block_on(cairn::bench::run(cfg, |secs, ops| {
                eprint!(
                    "\r{secs:5.1}s  {ops} operations  ({:.0}/s)   ",
                    ops as f64 / secs.max(0.001)
                );
            }))?;
            eprintln!();
            print_bench(&report);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let errors: u64 = report
                .ops
                .values()
                .map(|o| o.errors.values().sum::<u64>())
                .sum();
            if errors > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
