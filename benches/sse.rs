//! What server-side encryption costs: PUT 1 MiB x8 and GET 1 MiB x8 into a bucket with
//! default encryption SSE-S3 against a plain bucket, on one server (4 folders, EC 2+2,
//! loopback, the built-in KMS with one static key).
//!
//! `cargo bench --bench sse` (about 3 minutes; `CAIRN_SSE_ROUNDS` pairs of runs per
//! operation, default 6, each `CAIRN_SSE_SECONDS` long, default 4), in ABBA order
//! (encrypted, plain, plain, encrypted, ...): the ratio is over the totals, with the range of
//! the pairs, and the server's CPU per GiB.
//!
//! Rewrites the section of docs/benchmarks.md between `<!-- sse:begin -->` and
//! `<!-- sse:end -->`.

use std::time::Duration;

use base64::Engine;
use cairn::bench::{parse_size, run, Config, Op};

mod common;
use common::{abba, cpu_seconds, env_num, mean, ratio, server_env, SECRET, USER};

/// (MiB/s, server CPU seconds per GiB).
fn one_run(
    rt: &tokio::runtime::Runtime,
    srv: &common::Proc,
    bucket: &str,
    op: Op,
    secs: Duration,
) -> (f64, f64) {
    let cfg = Config {
        endpoint: srv.endpoint.clone(),
        access_key: USER.into(),
        secret_key: SECRET.into(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        op,
        sizes: parse_size("1MiB").expect("size"),
        concurrency: 8,
        duration: secs,
        objects: 64,
        keep_data: op == Op::Get,
        prefixes: 0,
        trust: cairn::tls::Trust::system(),
    };
    let pid = srv.child.id();
    let cpu = cpu_seconds(pid);
    let report = rt.block_on(run(cfg, |_, _| {})).expect("bench run");
    let cpu = cpu_seconds(pid) - cpu;
    let stats = report.ops.into_values().next().unwrap_or_default();
    assert!(stats.errors.is_empty(), "{op:?} errors: {:?}", stats.errors);
    let gib = stats.bytes as f64 / f64::from(1u32 << 30);
    (stats.throughput_mib_s, cpu / gib.max(1e-9))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("sse: bench");
        return;
    }
    let rounds = env_num("CAIRN_SSE_ROUNDS", 6).max(1);
    let secs = Duration::from_secs(env_num("CAIRN_SSE_SECONDS", 4).max(1));
    let root = common::work_dir("sse");
    let key = format!(
        "bench-key:{}",
        base64::engine::general_purpose::STANDARD.encode([0x42u8; 32])
    );
    let srv = server_env(&root, 4, &[("CAIRN_KMS_SECRET_KEY", &key)]);
    // The encrypted bucket: made, then given default encryption SSE-S3.
    let client = cairn::client::HttpClient::new(
        &srv.endpoint,
        USER,
        SECRET,
        "us-east-1",
        &cairn::client::Settings::default(),
    )
    .expect("client");
    let ok = |method: &str, query: &str, body: &[u8]| {
        let payload = if body.is_empty() {
            cairn::client::Payload::Empty
        } else {
            cairn::client::Payload::Bytes(body)
        };
        let r = client
            .send(method, "/sse", query, &[], payload)
            .expect("request");
        assert!(r.status().is_success(), "{method} ?{query}: {}", r.status());
    };
    ok("PUT", "", b"");
    ok(
        "PUT",
        "encryption=",
        br#"<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"#,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    for op in [Op::Put, Op::Get] {
        one_run(&rt, &srv, "sse", op, Duration::from_secs(2));
        one_run(&rt, &srv, "plain", op, Duration::from_secs(2));
        let (enc, plain) = abba(
            rounds,
            |encrypted| one_run(&rt, &srv, if encrypted { "sse" } else { "plain" }, op, secs),
            |i, a, b| {
                eprintln!(
                    "{op:?} round {i}: SSE-S3 {:.0} MiB/s ({:.2} CPU-s/GiB), plain {:.0} MiB/s ({:.2} CPU-s/GiB)",
                    a.0, a.1, b.0, b.1
                )
            },
        );
        let first = |v: &[(f64, f64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
        let cpu = |v: &[(f64, f64)]| mean(&v.iter().map(|r| r.1).collect::<Vec<_>>());
        let (r, lo, hi) = ratio(&first(&enc), &first(&plain));
        let name = if op == Op::Get { "GET" } else { "PUT" };
        rows.push(format!(
            "| {name} 1 MiB x8, throughput | {:.0} MiB/s | {:.0} MiB/s | {r:.3} (pairs {lo:.2}–{hi:.2}) | ≥ 0.85 |",
            mean(&first(&enc)),
            mean(&first(&plain)),
        ));
        rows.push(format!(
            "| {name} 1 MiB x8, server CPU per GiB | {:.2} s | {:.2} s | {:.3} | |",
            cpu(&enc),
            cpu(&plain),
            cpu(&enc) / cpu(&plain).max(1e-9),
        ));
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&root);
    let body = format!(
        "Command: `cargo bench --bench sse` ({rounds} pairs of {}-s runs per operation in ABBA \
         order; one server of this build on 4 folders, EC 2+2, loopback, built-in KMS; client \
         `cairn bench` in the same process; {} CPUs). Generated {}. CPU per GiB of PUT runs \
         includes each run's cleanup (DELETEs), the same for both buckets.\n\n\
         | measure | SSE-S3 bucket | plain bucket | SSE-S3 / plain | target |\n\
         |---|---|---|---|---|\n{}\n",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        rows.join("\n"),
    );
    println!("{body}");
    common::write_section(
        "sse",
        "Server-side encryption cost: SSE-S3 against plain (`cargo bench --bench sse`)",
        &body,
    );
}
