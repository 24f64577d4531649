//! What the client commands share (the connection to a server, credentials, number
//! formatting), `cairn mount` and the printing of `cairn bench`'s report.

use super::*;

use cairn::client::admin::AdminClient;

/// Client credentials: flags or CAIRN_ROOT_*, else MINIO_ROOT_*, else the password file
/// (`CAIRN_ROOT_PASSWORD_FILE`), else the default.
pub(crate) fn credentials_for(conn: &Conn) -> (String, String) {
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

pub(crate) fn print_bench(r: &cairn::bench::Report) {
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

pub(crate) fn mount(mut m: MountCli) -> anyhow::Result<()> {
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
        io_timeout: std::time::Duration::from_secs(m.io_timeout),
    })?;
    Ok(())
}

pub(crate) fn connect(conn: &Conn) -> anyhow::Result<AdminClient> {
    connect_with(conn, AdminClient::new)
}

/// [`connect`] for calls that stream until interrupted (no overall timeout).
pub(crate) fn connect_streaming(conn: &Conn) -> anyhow::Result<AdminClient> {
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
    ) -> Result<AdminClient, cairn::client::admin::ClientError>,
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

pub(crate) fn human(bytes: u64) -> String {
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
pub(crate) fn ago(unix_secs: u64) -> String {
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
