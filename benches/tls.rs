//! What TLS costs: GET 1 MiB x8 and PUT 1 MiB x8 over HTTPS against the same over HTTP, two
//! servers of the same build on equal drive folders (4 folders, EC 2+2, loopback), one with
//! a certificate made here (ECDSA P-256, TLS 1.3, AES-GCM via ring).
//!
//! `cargo bench --bench tls` (about 3 minutes; `CAIRN_TLS_ROUNDS` pairs of runs per
//! operation, default 6, each `CAIRN_TLS_SECONDS` long, default 4). The runs alternate in
//! ABBA order (https, http, http, https, ...) because this VM's speed drifts; the ratio is
//! over the totals, with the range of the pairs. The client is `cairn bench` (its own
//! request path, rustls for https), in this process: client and server share the 2 cores,
//! so the client's own TLS work is in the figure too, as it is for any real client.
//!
//! CPU per GiB is over the whole `run` call: for PUT it includes the run's cleanup (the
//! DELETEs of what it wrote), the same for both protocols.
//!
//! Rewrites the section of docs/benchmarks.md between `<!-- tls:begin -->` and
//! `<!-- tls:end -->`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::bench::{parse_size, run, Config, Op};

mod common;
use common::{cpu_seconds, env_num, server, server_env, SECRET, USER};

/// A CA and a server certificate for 127.0.0.1 in `dir` (public.crt, private.key); the
/// CA's PEM file.
fn make_certs(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    std::fs::create_dir_all(dir).expect("certs dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = p.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("leaf");
    std::fs::write(dir.join("public.crt"), leaf.pem()).expect("crt");
    std::fs::write(dir.join("private.key"), key.serialize_pem()).expect("key");
    let ca_pem = dir.with_extension("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).expect("ca");
    ca_pem
}

/// One run: (MiB/s, the server's CPU seconds per GiB moved, the client's).
fn one_run(
    rt: &tokio::runtime::Runtime,
    srv: &common::Proc,
    trust: &cairn::tls::Trust,
    op: Op,
    secs: Duration,
) -> (f64, f64, f64) {
    let endpoint = &srv.endpoint;
    let cfg = Config {
        endpoint: endpoint.to_string(),
        access_key: USER.into(),
        secret_key: SECRET.into(),
        region: "us-east-1".into(),
        bucket: "tls".into(),
        op,
        sizes: parse_size("1MiB").expect("size"),
        concurrency: 8,
        duration: secs,
        objects: 64,
        // GET runs keep their objects; PUT runs remove theirs (after the measured window).
        keep_data: op == Op::Get,
        prefixes: 0,
        trust: trust.clone(),
    };
    let pid = srv.child.id();
    let (cpu, mine) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
    let report = rt.block_on(run(cfg, |_, _| {})).expect("bench run");
    let cpu = cpu_seconds(pid) - cpu;
    let mine = cpu_seconds(std::process::id()) - mine;
    let stats = report.ops.into_values().next().unwrap_or_default();
    assert!(stats.errors.is_empty(), "{op:?} errors: {:?}", stats.errors);
    let gib = stats.bytes as f64 / f64::from(1u32 << 30);
    (
        stats.throughput_mib_s,
        cpu / gib.max(1e-9),
        mine / gib.max(1e-9),
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("tls: bench");
        return;
    }
    let rounds = env_num("CAIRN_TLS_ROUNDS", 6).max(1);
    let secs = Duration::from_secs(env_num("CAIRN_TLS_SECONDS", 4).max(1));
    let root = common::work_dir("tls");
    let _ = std::fs::remove_dir_all(&root);
    let certs = root.join("certs");
    let ca = make_certs(&certs);
    let plain = server(&root.join("http"), 4);
    let tls = server_env(
        &root.join("https"),
        4,
        &[("CAIRN_CERTS_DIR", certs.to_str().expect("utf-8"))],
    );
    assert!(tls.endpoint.starts_with("https://"), "{}", tls.endpoint);
    let trust = cairn::tls::Trust::with_files(&[ca]).expect("trust");
    let system = cairn::tls::Trust::system();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for op in [Op::Get, Op::Put] {
        // Warm-up, and the GET objects on both servers.
        one_run(&rt, &plain, &system, op, Duration::from_secs(2));
        one_run(&rt, &tls, &trust, op, Duration::from_secs(2));
        let (mut https, mut http) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            let first_tls = i % 2 == 0;
            for use_tls in [first_tls, !first_tls] {
                if use_tls {
                    https.push(one_run(&rt, &tls, &trust, op, secs));
                } else {
                    http.push(one_run(&rt, &plain, &system, op, secs));
                }
            }
            let (a, b) = (https[https.len() - 1], http[http.len() - 1]);
            eprintln!(
                "{op:?} round {}: https {:.0} MiB/s ({:.2} CPU-s/GiB), http {:.0} MiB/s ({:.2} CPU-s/GiB)",
                i + 1,
                a.0,
                a.1,
                b.0,
                b.1
            );
        }
        let sum = |v: &[(f64, f64, f64)]| v.iter().map(|r| r.0).sum::<f64>();
        let cpu = |v: &[(f64, f64, f64)]| v.iter().map(|r| r.1).sum::<f64>() / v.len() as f64;
        let client = |v: &[(f64, f64, f64)]| v.iter().map(|r| r.2).sum::<f64>() / v.len() as f64;
        let ratios: Vec<f64> = https
            .iter()
            .zip(&http)
            .map(|(a, b)| a.0 / b.0.max(1e-9))
            .collect();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        let name = if op == Op::Get { "GET" } else { "PUT" };
        rows.push(format!(
            "| {name} 1 MiB x8, throughput | {:.0} MiB/s | {:.0} MiB/s | {:.3} (pairs {lo:.2}–{hi:.2}) | ≥ 0.8 |",
            sum(&https) / https.len() as f64,
            sum(&http) / http.len() as f64,
            sum(&https) / sum(&http).max(1e-9),
        ));
        rows.push(format!(
            "| {name} 1 MiB x8, server CPU per GiB | {:.2} s | {:.2} s | {:.3} | |",
            cpu(&https),
            cpu(&http),
            cpu(&https) / cpu(&http).max(1e-9),
        ));
        rows.push(format!(
            "| {name} 1 MiB x8, client CPU per GiB | {:.2} s | {:.2} s | {:.3} | |",
            client(&https),
            client(&http),
            client(&https) / client(&http).max(1e-9),
        ));
    }
    drop(plain);
    drop(tls);
    let _ = std::fs::remove_dir_all(&root);
    let body = format!(
        "Command: `cargo bench --bench tls` ({rounds} pairs of {}-s runs per operation in ABBA \
         order; two servers of this build on 4 folders each, EC 2+2, loopback; client \
         `cairn bench` in the same process; {} CPUs). Generated {}.\n\n\
         | measure | HTTPS | HTTP | HTTPS / HTTP | target |\n\
         |---|---|---|---|---|\n{}\n",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        rows.join("\n"),
    );
    println!("{body}");
    common::write_section(
        "tls",
        "TLS cost: HTTPS against HTTP (`cargo bench --bench tls`)",
        &body,
    );
}
