//! `cairn admin prometheus token`: a bearer token and a Prometheus scrape configuration for
//! the metrics endpoints, made locally from the credentials (as MinIO's
//! `mc admin prometheus generate`; the server checks the token against the same secret).

use clap::{Subcommand, ValueEnum};

use super::Conn;

#[derive(Clone, Copy, ValueEnum)]
pub enum Scope {
    Cluster,
    Node,
    Bucket,
}

#[derive(Subcommand)]
pub enum PrometheusCommand {
    /// Print a scrape configuration with a bearer token for the credentials' user (root,
    /// or a user whose policy allows admin:Prometheus).
    Token {
        /// An alias (cairn alias set) instead of --endpoint.
        #[arg(value_name = "ALIAS")]
        alias: Option<String>,
        #[command(flatten)]
        conn: Conn,
        /// How long the token is valid: 90d, 12h, 30m or seconds (default: 100 years, as
        /// MinIO's).
        #[arg(long)]
        expiry: Option<String>,
        /// Which endpoint the configuration scrapes.
        #[arg(long, value_enum, default_value = "cluster")]
        scope: Scope,
        /// Print only the token.
        #[arg(long)]
        token_only: bool,
    },
}

const HUNDRED_YEARS: u64 = 100 * 365 * 86_400;

pub fn prometheus(command: PrometheusCommand) -> anyhow::Result<()> {
    let PrometheusCommand::Token {
        alias,
        conn,
        expiry,
        scope,
        token_only,
    } = command;
    let valid = match expiry {
        None => HUNDRED_YEARS,
        Some(e) => cairn::heal::parse_duration(&e)
            .ok_or_else(|| anyhow::anyhow!("--expiry {e:?}: use 90d, 12h, 30m or seconds"))?
            .as_secs(),
    };
    let t = conn.with_alias(alias).target()?;
    let token = cairn::metrics::http::bearer_token(&t.access_key, &t.secret_key, valid);
    if token_only {
        println!("{token}");
        return Ok(());
    }
    let (scheme, rest) = t
        .url
        .split_once("://")
        .filter(|(s, _)| *s == "http" || *s == "https")
        .ok_or_else(|| anyhow::anyhow!("{:?}: use http://HOST:PORT or https://HOST:PORT", t.url))?;
    let host = rest.split('/').next().unwrap_or_default();
    anyhow::ensure!(!host.is_empty(), "{:?} has no host", t.url);
    let target = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:{}", if scheme == "https" { 443 } else { 80 })
    };
    let path = match scope {
        Scope::Cluster => "/cairn/v1/metrics/cluster",
        Scope::Node => "/cairn/v1/metrics/node",
        Scope::Bucket => "/cairn/v1/metrics/bucket",
    };
    println!("scrape_configs:");
    println!("- job_name: cairn-job");
    println!("  bearer_token: {token}");
    println!("  metrics_path: {path}");
    println!("  scheme: {scheme}");
    println!("  static_configs:");
    println!("  - targets: ['{target}']");
    Ok(())
}
