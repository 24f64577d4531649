//! `cairn admin`: the admin API's commands (info, heal, drives, buckets, quotas, ...).

use super::*;

use cairn::admin::Info;
use cairn::heal::{HealState, SequenceStatus};

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

pub(crate) fn admin(command: AdminCommand) -> anyhow::Result<()> {
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
