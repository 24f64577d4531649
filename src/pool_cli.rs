//! `cairn admin pool`: the server pools — their state, decommission and rebalance — over the
//! admin API.

use std::time::Duration;

use clap::Subcommand;

use cairn::heal::{PoolStatus, PoolsStatus};
use cairn::object::Progress;

use super::{ago, connect, human, Conn};

#[derive(Subcommand)]
pub enum PoolCommand {
    /// Every pool: capacity, free space, state and progress.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move every object out of a pool so it can be removed from the server arguments.
    Decommission {
        #[command(subcommand)]
        command: DecommissionCommand,
    },
    /// Move objects from fuller pools to emptier ones.
    Rebalance {
        #[command(subcommand)]
        command: RebalanceCommand,
    },
}

#[derive(Subcommand)]
pub enum DecommissionCommand {
    /// Start it (refused when the other pools lack the space); shows progress until it
    /// ends unless --detach (Ctrl-C leaves it running).
    Start {
        /// The pool: its number (1, 2, ...) or its server argument.
        pool: String,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        detach: bool,
        #[arg(long)]
        json: bool,
    },
    /// Its progress: objects and bytes moved, rate and ETA.
    Status {
        /// The pool (default: every pool).
        pool: Option<String>,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Stop it: the pool takes new objects again; what moved stays moved.
    Cancel {
        pool: String,
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RebalanceCommand {
    /// Start it, in the background.
    Start {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Its progress.
    Status {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Stop it where it is.
    Stop {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
}

/// Rate and time left of a move, from its progress.
fn rate_eta(p: &Progress) -> String {
    let end = p.finished.unwrap_or(p.updated).max(p.started);
    let secs = end.saturating_sub(p.started).max(1);
    let rate = p.bytes / secs;
    let left = p.total_bytes.saturating_sub(p.bytes);
    let eta = match left.checked_div(rate) {
        _ if p.finished.is_some() || left == 0 => String::new(),
        Some(s) => format!(", ETA {s}s"),
        None => ", ETA unknown".to_string(),
    };
    format!("{}/s{eta}", human(rate))
}

pub fn print_progress(p: &Progress) {
    let total = if p.total_objects > 0 || p.total_bytes > 0 {
        format!(" of {} ({})", p.total_objects, human(p.total_bytes))
    } else {
        format!(" of {}", human(p.total_bytes))
    };
    println!(
        "  moved {} objects, {}{total}, {} failed, {}; started {} ago{}",
        p.objects,
        human(p.bytes),
        p.failed,
        rate_eta(p),
        ago(p.started),
        match p.finished {
            Some(f) if p.canceled => format!(", canceled {} ago", ago(f)),
            Some(f) => format!(", finished {} ago", ago(f)),
            None => String::new(),
        }
    );
    if !p.bucket.is_empty() && p.finished.is_none() {
        println!("  at {}/{} (walk {})", p.bucket, p.after, p.pass + 1);
    }
    if let Some(e) = &p.error {
        println!("  error: {e}");
    }
}

pub fn print_pool(p: &PoolStatus) {
    println!(
        "Pool {} {}: {} set(s) x {} drives, {} free of {}, {}",
        p.number,
        p.arg,
        p.sets,
        p.set_size,
        human(p.free),
        human(p.total),
        p.state
    );
    if let Some(d) = &p.decommission {
        print_progress(d);
    }
}

pub fn print_pools(s: &PoolsStatus) {
    for p in &s.pools {
        print_pool(p);
    }
    if let Some(r) = &s.rebalance {
        println!(
            "Rebalance: {} (goal {:.4} used, within {:.0} %)",
            r.state,
            r.goal,
            r.threshold * 100.0
        );
        print_progress(&r.progress);
    }
}

fn show(s: &PoolsStatus, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        print_pools(s);
    }
    Ok(())
}

pub fn pool(command: PoolCommand) -> anyhow::Result<()> {
    match command {
        PoolCommand::Status { conn, json } => {
            let s: PoolsStatus = connect(&conn)?.call("GET", "pools", &[])?;
            show(&s, json)
        }
        PoolCommand::Decommission { command } => match command {
            DecommissionCommand::Start {
                pool,
                conn,
                detach,
                json,
            } => {
                let client = connect(&conn)?;
                let s: PoolsStatus =
                    client.call("POST", "pools/decommission", &[("pool", pool.clone())])?;
                let Some(at) = find(&s, &pool) else {
                    return show(&s, json);
                };
                if detach {
                    return show(&s, json);
                }
                let bar = indicatif::ProgressBar::new(1);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let last = loop {
                    let s: PoolsStatus = client.call("GET", "pools", &[])?;
                    let p = s.pools.get(at).cloned().unwrap_or_default();
                    if let Some(d) = &p.decommission {
                        bar.set_length(d.total_bytes.max(d.bytes).max(1));
                        bar.set_position(d.bytes);
                        bar.set_message(format!("{} objects, {} failed", d.objects, d.failed));
                    }
                    if p.state != "decommissioning" {
                        break s;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                };
                bar.finish_and_clear();
                show(&last, json)?;
                let ok = last
                    .pools
                    .get(at)
                    .is_some_and(|p| p.state == "decommissioned");
                if !ok {
                    std::process::exit(1);
                }
                Ok(())
            }
            DecommissionCommand::Status { pool, conn, json } => {
                let s: PoolsStatus = connect(&conn)?.call("GET", "pools", &[])?;
                match pool {
                    None => show(&s, json),
                    Some(name) => {
                        let at =
                            find(&s, &name).ok_or_else(|| anyhow::anyhow!("no pool {name}"))?;
                        if json {
                            println!("{}", serde_json::to_string_pretty(&s.pools[at])?);
                        } else {
                            print_pool(&s.pools[at]);
                        }
                        Ok(())
                    }
                }
            }
            DecommissionCommand::Cancel { pool, conn, json } => {
                let s: PoolsStatus =
                    connect(&conn)?.call("DELETE", "pools/decommission", &[("pool", pool)])?;
                show(&s, json)
            }
        },
        PoolCommand::Rebalance { command } => match command {
            RebalanceCommand::Start { conn, json } => {
                let s: PoolsStatus = connect(&conn)?.call("POST", "pools/rebalance", &[])?;
                show(&s, json)
            }
            RebalanceCommand::Status { conn, json } => {
                let s: PoolsStatus = connect(&conn)?.call("GET", "pools", &[])?;
                show(&s, json)
            }
            RebalanceCommand::Stop { conn, json } => {
                let s: PoolsStatus = connect(&conn)?.call("DELETE", "pools/rebalance", &[])?;
                show(&s, json)
            }
        },
    }
}

/// A pool named by number or argument, in a status.
fn find(s: &PoolsStatus, name: &str) -> Option<usize> {
    if let Ok(n) = name.parse::<usize>() {
        if (1..=s.pools.len()).contains(&n) {
            return Some(n - 1);
        }
    }
    s.pools.iter().position(|p| p.arg == name)
}
