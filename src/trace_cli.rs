//! `cairn admin trace`: print a live trace stream, one line per request.

use std::io::{BufRead, Write};

use cairn::audit::trace::Dropped;
use cairn::audit::Entry;

/// Read JSON lines from `stream` until it ends (the server went away) or printing fails.
pub fn print(stream: Box<dyn BufRead + Send>, json: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    for line in stream.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let mut out = stdout.lock();
        if let Ok(e) = serde_json::from_str::<Entry>(&line) {
            let written = if json {
                writeln!(out, "{line}")
            } else {
                writeln!(out, "{}", one_line(&e))
            };
            // Piped into `head`, say: stop quietly.
            if written.and_then(|_| out.flush()).is_err() {
                return Ok(());
            }
        } else if let Ok(d) = serde_json::from_str::<Dropped>(&line) {
            eprintln!(
                "… {} request(s) not shown{}: this trace could not keep up",
                d.dropped,
                if d.node.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", d.node)
                }
            );
        } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            eprintln!(
                "node {}: {}",
                v["node"].as_str().unwrap_or("?"),
                v["error"].as_str().unwrap_or(&line)
            );
        }
    }
    anyhow::bail!("the server closed the trace")
}

fn one_line(e: &Entry) -> String {
    let time = e.time.get(11..23).unwrap_or(&e.time);
    let who = if e.access_key.is_empty() {
        "anonymous"
    } else {
        &e.access_key
    };
    let target = match (e.api.bucket.as_str(), e.api.object.as_str()) {
        ("", _) => "/".to_string(),
        (b, "") => b.to_string(),
        (b, k) => format!("{b}/{k}"),
    };
    let outcome = if e.api.error_code.is_empty() {
        e.api.status_code.to_string()
    } else {
        format!("{} {}", e.api.status_code, e.api.error_code)
    };
    format!(
        "{time} {} {} {who} {} {target} {outcome} in:{} out:{} {:.1}ms",
        e.node,
        e.request_id,
        e.api.name,
        e.api.rx,
        e.api.tx,
        e.api.time_to_response_ns as f64 / 1e6
    )
}
