//! `cairn admin kms status|rotate`: the built-in KMS's keys and key rotation over the admin
//! API.

use std::time::Duration;

use clap::Subcommand;

use cairn::admin::KmsStatus;
use cairn::heal::{RotateState, RotateStatus};

use super::{ago, connect, Conn};

#[derive(Subcommand)]
pub enum KmsCommand {
    /// The KMS's keys, its default key, and the last key rotation on this node.
    Status {
        #[command(flatten)]
        conn: Conn,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal object keys under another master key, in the background, without rewriting
    /// data; shows progress until it ends (Ctrl-C leaves it running). Add the new key to
    /// CAIRN_KMS_SECRET_KEY first (first in the list to make it the default for new
    /// objects); remove the old one only once the rotation is done.
    Rotate {
        #[command(flatten)]
        conn: Conn,
        /// Move keys sealed by this master key (default: every key but the target).
        #[arg(long)]
        from: Option<String>,
        /// The master key to re-seal under (default: the KMS's default key).
        #[arg(long)]
        to: Option<String>,
        /// Start it and return at once.
        #[arg(long, conflicts_with_all = ["status", "cancel"])]
        detach: bool,
        /// Show the last rotation, then exit.
        #[arg(long, conflicts_with = "cancel")]
        status: bool,
        /// Stop the running rotation (a new one starts from the beginning and skips what
        /// is done).
        #[arg(long)]
        cancel: bool,
        /// Print the final status as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_rotation(r: &RotateStatus) {
    let total = r
        .total
        .map(|t| format!(" of about {t}"))
        .unwrap_or_default();
    println!(
        "Rotation {} {:?} → {:?}: {:?}, started {} ago{}",
        r.id,
        r.from.as_deref().unwrap_or("(every other key)"),
        r.to,
        r.state,
        ago(r.started),
        r.finished
            .map(|f| format!(", finished {} ago", ago(f)))
            .unwrap_or_default()
    );
    println!(
        "  scanned {}{total} objects, re-sealed {} object keys and {} uploads, {} bucket defaults moved, {} failed",
        r.scanned, r.resealed, r.uploads_resealed, r.buckets_updated, r.failed
    );
    if r.state == RotateState::Running && !r.bucket.is_empty() {
        println!("  at {}/{}", r.bucket, r.after);
    }
    if let Some(e) = &r.error {
        println!("  error: {e}");
    }
}

pub fn kms(command: KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::Status { conn, json } => {
            let s: KmsStatus = connect(&conn)?.call("GET", "kms/status", &[])?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
                return Ok(());
            }
            println!("KMS: built-in, static keys");
            for k in &s.keys {
                let default = if Some(k) == s.default_key.as_ref() {
                    " (default)"
                } else {
                    ""
                };
                println!("  {k}{default}");
            }
            for b in &s.missing_defaults {
                println!(
                    "  warning: bucket {} encrypts uploads with key {:?}, which this KMS lacks: its uploads fail until the key is back, its default encryption is set again, or `cairn admin kms rotate --to <key>` (no --from) moves it",
                    b.bucket, b.key
                );
            }
            if let Some(r) = &s.rotation {
                print_rotation(r);
            }
            Ok(())
        }
        KmsCommand::Rotate {
            conn,
            from,
            to,
            detach,
            status,
            cancel,
            json,
        } => {
            let client = connect(&conn)?;
            if status || cancel {
                let method = if cancel { "DELETE" } else { "GET" };
                let r: RotateStatus = client.call(method, "kms/rotate", &[])?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    print_rotation(&r);
                }
                return Ok(());
            }
            let mut query = Vec::new();
            if let Some(f) = from {
                query.push(("from", f));
            }
            if let Some(t) = to {
                query.push(("to", t));
            }
            let started: RotateStatus = client.call("POST", "kms/rotate", &query)?;
            if detach {
                print_rotation(&started);
                return Ok(());
            }
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} objects ({per_sec}) {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let last = loop {
                let r: RotateStatus = client.call("GET", "kms/rotate", &[])?;
                if r.id != started.id {
                    anyhow::bail!(
                        "the rotation {} is no longer tracked by the server",
                        started.id
                    );
                }
                if let Some(t) = r.total {
                    bar.set_length(t.max(r.scanned));
                }
                bar.set_position(r.scanned);
                bar.set_message(format!(
                    "re-sealed {} uploads {} failed {}",
                    r.resealed, r.uploads_resealed, r.failed
                ));
                if r.state != RotateState::Running {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string_pretty(&last)?);
            } else {
                print_rotation(&last);
            }
            if last.state != RotateState::Done || last.failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
