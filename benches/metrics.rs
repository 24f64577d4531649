//! What recording metrics costs on the hot path: GET 4 KiB x8 and GET 1 MiB x8 against a
//! server with metrics on (the default) and one with `CAIRN_METRICS=off`, both of this build
//! on 4 folders (EC 2+2, loopback), each scraped by Prometheus's worth of requests (one
//! `/cairn/v1/metrics/node` scrape per run) so the scrape's own cost is in the figure.
//!
//! `cargo bench --bench metrics` (about 2 minutes; `CAIRN_METRICS_ROUNDS` pairs of runs per
//! size, default 6, each `CAIRN_METRICS_SECONDS` long, default 4), in ABBA order; the ratio
//! is over the totals, with the range of the pairs, and the server's CPU per request.
//!
//! Rewrites the section of docs/benchmarks.md between `<!-- metrics:begin -->` and
//! `<!-- metrics:end -->`.

use std::time::Duration;

use cairn::bench::{parse_size, run, Config, Op};

mod common;
use common::{abba, cpu_seconds, env_num, mean, ratio, server_env, SECRET, USER};

/// (requests/s, MiB/s, server CPU µs per request).
fn one_run(
    rt: &tokio::runtime::Runtime,
    srv: &common::Proc,
    size: &str,
    secs: Duration,
    scrape: bool,
) -> (f64, f64, f64) {
    let cfg = Config {
        endpoint: srv.endpoint.clone(),
        access_key: USER.into(),
        secret_key: SECRET.into(),
        region: "us-east-1".into(),
        bucket: format!("m-{}", size.to_ascii_lowercase()),
        op: Op::Get,
        sizes: parse_size(size).expect("size"),
        concurrency: 8,
        duration: secs,
        objects: 64,
        keep_data: true,
        prefixes: 0,
        trust: cairn::tls::Trust::system(),
    };
    let pid = srv.child.id();
    let cpu = cpu_seconds(pid);
    let report = rt.block_on(run(cfg, |_, _| {})).expect("bench run");
    if scrape {
        let token = cairn::metrics::http::bearer_token(USER, SECRET, 600);
        let r = ureq::get(format!("{}/cairn/v1/metrics/node", srv.endpoint))
            .header("authorization", format!("Bearer {token}"))
            .call();
        assert!(r.is_ok(), "scrape: {:?}", r.err());
    }
    let cpu = cpu_seconds(pid) - cpu;
    let stats = report.ops.into_values().next().unwrap_or_default();
    assert!(stats.errors.is_empty(), "errors: {:?}", stats.errors);
    let reqs = stats.count as f64;
    (
        reqs / secs.as_secs_f64(),
        stats.throughput_mib_s,
        cpu * 1e6 / reqs.max(1.0),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("metrics: bench");
        return;
    }
    let rounds = env_num("CAIRN_METRICS_ROUNDS", 6).max(1);
    let secs = Duration::from_secs(env_num("CAIRN_METRICS_SECONDS", 4).max(1));
    let root = common::work_dir("metrics");
    let on = server_env(&root.join("on"), 4, &[]);
    let off = server_env(&root.join("off"), 4, &[("CAIRN_METRICS", "off")]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for size in ["4KiB", "1MiB"] {
        // Warm-up, and the objects on both servers.
        one_run(&rt, &on, size, Duration::from_secs(2), false);
        one_run(&rt, &off, size, Duration::from_secs(2), false);
        let (with, without) = abba(
            rounds,
            |metrics| {
                let srv = if metrics { &on } else { &off };
                one_run(&rt, srv, size, secs, metrics)
            },
            |i, a, b| {
                eprintln!(
                    "GET {size} round {i}: metrics on {:.0} req/s ({:.0} µs CPU/req), off {:.0} req/s ({:.0} µs CPU/req)",
                    a.0, a.2, b.0, b.2
                )
            },
        );
        let pick = |v: &[(f64, f64, f64)], f: fn(&(f64, f64, f64)) -> f64| -> Vec<f64> {
            v.iter().map(f).collect()
        };
        let (r, lo, hi) = ratio(&pick(&with, |x| x.0), &pick(&without, |x| x.0));
        let (unit, a, b) = if size == "4KiB" {
            (
                "req/s",
                mean(&pick(&with, |x| x.0)),
                mean(&pick(&without, |x| x.0)),
            )
        } else {
            (
                "MiB/s",
                mean(&pick(&with, |x| x.1)),
                mean(&pick(&without, |x| x.1)),
            )
        };
        let target = if size == "4KiB" { "≥ 0.97" } else { "" };
        let name = size.replace("KiB", " KiB").replace("MiB", " MiB");
        rows.push(format!(
            "| GET {name} x8, throughput | {a:.0} {unit} | {b:.0} {unit} | {r:.3} (pairs {lo:.2}–{hi:.2}) | {target} |"
        ));
        let (ca, cb) = (mean(&pick(&with, |x| x.2)), mean(&pick(&without, |x| x.2)));
        rows.push(format!(
            "| GET {name} x8, server CPU per request | {ca:.0} µs | {cb:.0} µs | {:.3} | |",
            ca / cb.max(1e-9)
        ));
    }
    drop(on);
    drop(off);
    let _ = std::fs::remove_dir_all(&root);
    let body = format!(
        "Command: `cargo bench --bench metrics` ({rounds} pairs of {}-s runs per size in ABBA \
         order; two servers of this build on 4 folders each, EC 2+2, loopback, one with \
         `CAIRN_METRICS=off`; a node scrape after each run of the metrics-on server; client \
         `cairn bench` in the same process; {} CPUs). Generated {}.\n\n\
         | measure | metrics on | metrics off | on / off | target |\n\
         |---|---|---|---|---|\n{}\n",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        rows.join("\n"),
    );
    println!("{body}");
    common::write_section(
        "metrics",
        "Metrics cost: request recording on against off (`cargo bench --bench metrics`)",
        &body,
    );
}
