//! The `cairn` binary: argument parsing, configuration from the environment, wiring.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use cairn::auth::RootCredentials;
use cairn::object::{open_local, OpenOptions};
use cairn::placement::{Endpoint, Layout};
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
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:9000")]
        address: String,
        /// Drive directories; `{a...b}` ranges expand (`/data{1...4}`).
        drives: Vec<String>,
    },
}

const DEFAULT_DRIVES: &str = "./data/drive{1...4}";
const DEFAULT_CREDENTIAL: &str = "cairnadmin";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Root credentials: CAIRN_ROOT_*, else MINIO_ROOT_*, else the default (with a warning).
fn credentials() -> anyhow::Result<(RootCredentials, &'static str)> {
    let pick = |a: &str, b: &str| env(a).or_else(|| env(b));
    let user = pick("CAIRN_ROOT_USER", "MINIO_ROOT_USER");
    let password = pick("CAIRN_ROOT_PASSWORD", "MINIO_ROOT_PASSWORD");
    let source = if env("CAIRN_ROOT_USER").is_some() {
        "CAIRN_ROOT_USER / CAIRN_ROOT_PASSWORD"
    } else if env("MINIO_ROOT_USER").is_some() {
        "MINIO_ROOT_USER / MINIO_ROOT_PASSWORD"
    } else {
        "built-in default"
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
            "built-in default",
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

async fn server(address: String, drives: Vec<String>) -> anyhow::Result<()> {
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
    let layout = Layout::from_args(&drives, set_size, parity_override()?)?;
    let paths: Vec<PathBuf> = layout
        .endpoints
        .iter()
        .map(|e| match e {
            Endpoint::Local(p) => Ok(p.clone()),
            Endpoint::Url { .. } => bail!(
                "distributed mode (URL drive endpoints) is not available yet; give local paths"
            ),
        })
        .collect::<anyhow::Result<_>>()?;
    let (creds, cred_source) = credentials()?;
    let region = env("CAIRN_REGION").unwrap_or_else(|| "us-east-1".into());
    let domain = env("CAIRN_DOMAIN");
    let store = open_local(
        &paths,
        &OpenOptions {
            set_size: layout.set_size,
            parity: layout.parity,
        },
    )
    .await
    .context("opening drives")?;
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    let endpoint_host = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let owner_id = hex::encode(&blake3::hash(creds.access_key.as_bytes()).as_bytes()[..16]);
    println!(
        "Cairn {} — S3-compatible object storage",
        env!("CARGO_PKG_VERSION")
    );
    println!("  S3 endpoint:  http://{endpoint_host}   (listening on {local})");
    println!("  Region:       {region}");
    println!(
        "  Layout:       {} set(s) x {} drives, EC {}+{} ({} drives in all)",
        layout.set_count(),
        layout.set_size,
        layout.data(),
        layout.parity,
        layout.endpoints.len()
    );
    println!("  Deployment:   {}", store.deployment_id());
    println!("  Credentials:  from {cred_source}");
    if cred_source == "built-in default" {
        println!("  AccessKey:    {}", creds.access_key);
        println!("  SecretKey:    {}", creds.secret_key);
        eprintln!(
            "WARNING: using the default root credentials {DEFAULT_CREDENTIAL}/{DEFAULT_CREDENTIAL}. \
             Set CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD before storing anything that matters."
        );
    }
    println!(
        "  Try:          AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY=<secret> aws --endpoint-url http://{endpoint_host} s3 ls",
        creds.access_key
    );
    let state = Arc::new(S3State {
        store: Arc::new(store),
        owner: Owner {
            id: owner_id,
            display_name: creds.access_key.clone(),
        },
        creds: Arc::new(creds),
        region,
        domain,
    });
    cairn::server::serve(listener, state, shutdown_signal()).await?;
    println!("Cairn stopped.");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Server { address, drives } => runtime.block_on(server(address, drives)),
    }
}
