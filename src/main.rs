//! The `cairn` binary: argument parsing, configuration from the environment, wiring.

mod admin_cli;
mod alias_cli;
mod client_cli;
mod iam_cli;
mod kms_cli;
mod pool_cli;
mod prometheus_cli;
mod server_cli;
mod trace_cli;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use cairn::heal::parse_duration;

use admin_cli::admin;
use client_cli::{ago, connect, connect_streaming, credentials_for, human, mount, print_bench};
use server_cli::server;

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
        /// Spread the objects over this many prefixes (`cairn-bench/pN/…`, object i under
        /// prefix i mod N); a list run then asks with delimiter `/` and is answered with
        /// these prefixes. 0: every object directly under `cairn-bench/`.
        #[arg(long, default_value_t = 0)]
        prefixes: usize,
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
    /// Seconds a call may wait for a byte from a server that stopped answering (frozen, or
    /// cut off by the network) before it fails with EIO; 0: wait as long as TCP does. Copies,
    /// renames, uploads and completions the server works on before answering are exempt.
    #[arg(long, default_value_t = 60)]
    io_timeout: u64,
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

// How a client checks an https server's certificate (a plain comment: clap would show a
// doc comment as the about text of every subcommand that flattens this).
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

/// A command printing into a pipe whose reader left (`cairn admin info --json | head`) ends
/// as Unix tools do, by SIGPIPE, instead of panicking in `println!`. Only for commands that
/// print and exit: servers keep the signal ignored (a peer closing a socket is an error to
/// handle, not a reason to die).
fn die_quietly_on_closed_output() {
    // SAFETY: called first thing in `main`, before any other thread exists; SIG_DFL is
    // async-signal-safe by definition (no handler runs).
    #[allow(unsafe_code)]
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}

/// The server runs with glibc malloc capped at 2 arenas. Block buffers of a MiB are allocated
/// on one thread and freed on another all the time; with the default 8 arenas per core glibc
/// keeps the freed memory of each arena, and peak RSS at 32 concurrent 64 MiB GETs was 395 MiB
/// against 287 MiB with 2 arenas (same throughput). glibc reads `MALLOC_ARENA_MAX` only at
/// start, so the server re-executes itself once with it set, unless the operator set it.
///
/// The same re-execution keeps those buffers in the heap and the heap's free top in place:
/// blocks up to 4 MiB come from the arenas (`MALLOC_MMAP_THRESHOLD_`), and a heap's top is
/// given back only past 32 MiB (`MALLOC_TRIM_THRESHOLD_`). With glibc's defaults a shard
/// buffer's pages were given back after each read and faulted in (and zeroed) again by the
/// next: GET 1 MiB x8 +16 %, peak RSS of the 256 + 256 burst unchanged (docs/benchmarks.md,
/// session 37). `cairn mount` gets the same (its buffers are the same sizes). Either one alone is no gain: setting one turns off glibc's adaptive
/// thresholds, and the trim threshold alone sends every shard buffer to `mmap`.
fn cap_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2");
    // Both or neither: the operator's own setting of either is left as it is.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none()
        && std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none()
    {
        cmd.env("MALLOC_MMAP_THRESHOLD_", (4u32 << 20).to_string())
            .env("MALLOC_TRIM_THRESHOLD_", (32u32 << 20).to_string());
    }
    let err = cmd.exec();
    // Only reached when exec failed: run as we are.
    eprintln!("note: could not re-execute with MALLOC_ARENA_MAX=2: {err}");
}

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("server" | "mount") => cap_malloc_arenas(),
        Some("csi" | "bench" | "null-server") => {}
        _ => die_quietly_on_closed_output(),
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
            let listener = cairn::conn::listen(&address)
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
            prefixes,
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
                prefixes,
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
