//! What authorisation costs: GET 4 KiB x8 as a user whose only policy has 20 statements,
//! against the same as the root user (who skips policy evaluation), on one server.
//!
//! `cargo bench --bench authz` (about 2 minutes; `CAIRN_AUTHZ_ROUNDS` pairs of runs, default
//! 12, each `CAIRN_AUTHZ_SECONDS` long, default 3). This 2-core VM's speed swings by up to 3x
//! within minutes, so one run of each says little: the runs alternate in ABBA order (user,
//! root, root, user, ...) and the ratio is taken over their totals and as the median of the
//! pairs. The server's CPU time per request is measured per run from `/proc`. A first,
//! in-process part times one decision (ARN built, 20 statements walked) with no I/O at all.
//!
//! Rewrites the section of docs/benchmarks.md between `<!-- authz:begin -->` and
//! `<!-- authz:end -->`.

use std::borrow::Cow;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::bench::{parse_size, run, Config, Op};
use cairn::iam::{Context, Decision, Identity, Keys, Policy};

mod common;
use common::{cpu_seconds, env_num, server, SECRET, USER};

const BUCKET: &str = "authz";
const BENCH_USER: &str = "benchuser";
const BENCH_SECRET: &str = "benchuser-secret";

/// 19 statements that do not match (other buckets, each with an `IpAddress` condition), then
/// the one that allows everything on the bench bucket: the worst order for the walk.
fn policy_20() -> String {
    let mut statements: Vec<String> = (0..19)
        .map(|i| {
            format!(
                r#"{{"Sid":"other{i}","Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:ListBucket"],
                "Resource":["arn:aws:s3:::other-{i}","arn:aws:s3:::other-{i}/*"],
                "Condition":{{"IpAddress":{{"aws:SourceIp":["10.{i}.0.0/16"]}}}}}}"#
            )
        })
        .collect();
    statements.push(format!(
        r#"{{"Sid":"bench","Effect":"Allow","Action":"s3:*","Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}"#
    ));
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

struct SourceIp;

impl Keys for SourceIp {
    fn get(&self, key: &str) -> Option<Vec<Cow<'_, str>>> {
        (key == "aws:sourceip").then(|| vec![Cow::Borrowed("127.0.0.1")])
    }
}

/// Nanoseconds per decision of a GET by the 20-statement user, ARN included.
fn decision_ns() -> f64 {
    let policy = Policy::parse_identity_policy(&policy_20()).expect("policy");
    let user = Identity::User {
        name: BENCH_USER.into(),
        policies: vec![Arc::new(policy)],
    };
    let n = 1_000_000u32;
    let started = Instant::now();
    for i in 0..n {
        let key = if i % 2 == 0 { "cairn-bench/obj-1" } else { "x" };
        let resource = cairn::s3::authz::arn(
            Some(std::hint::black_box(BUCKET)),
            Some(key),
            cairn::s3::authz::On::Object,
        );
        let ctx = Context {
            action: "s3:GetObject",
            resource: &resource,
            principal: user.principal(BENCH_USER),
            keys: &SourceIp,
        };
        assert_eq!(
            std::hint::black_box(user.decide(&ctx)),
            Decision::Allow,
            "the bench policy must allow the bench's GETs"
        );
    }
    started.elapsed().as_nanos() as f64 / f64::from(n)
}

fn admin(endpoint: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("admin")
        .args(args)
        .args(["--endpoint", endpoint])
        .env("CAIRN_ROOT_USER", USER)
        .env("CAIRN_ROOT_PASSWORD", SECRET)
        .output()
        .expect("cairn admin");
    assert!(
        out.status.success(),
        "cairn admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Run {
    ops: u64,
    cpu_s: f64,
    errors: u64,
}

fn get_run(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    pid: u32,
    creds: (&str, &str),
    secs: Duration,
) -> Run {
    let cfg = Config {
        endpoint: endpoint.to_string(),
        access_key: creds.0.into(),
        secret_key: creds.1.into(),
        region: "us-east-1".into(),
        bucket: BUCKET.into(),
        op: Op::Get,
        sizes: parse_size("4KiB").expect("size"),
        concurrency: 8,
        duration: secs,
        objects: 100,
        // What a run wrote stays: the next measurement must not follow a bulk delete.
        keep_data: true,
        prefixes: 0,
        trust: cairn::tls::Trust::system(),
    };
    let cpu = cpu_seconds(pid);
    let report = rt.block_on(run(cfg, |_, _| {})).expect("bench run");
    let cpu_s = cpu_seconds(pid) - cpu;
    let stats = report.ops.into_values().next().unwrap_or_default();
    Run {
        ops: stats.count,
        cpu_s,
        errors: stats.errors.values().sum(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("authz: bench");
        return;
    }
    let rounds = env_num("CAIRN_AUTHZ_ROUNDS", 12).max(1);
    let secs = Duration::from_secs(env_num("CAIRN_AUTHZ_SECONDS", 3).max(1));

    let ns = decision_ns();
    eprintln!("one decision (20 statements, ARN built): {ns:.0} ns");

    let root = common::work_dir("authz");
    let srv = server(&root, 4);
    let pid = srv.child.id();
    let policy_file = root.join("p20.json");
    std::fs::write(&policy_file, policy_20()).expect("policy file");
    admin(
        &srv.endpoint,
        &[
            "policy",
            "create",
            "p20",
            policy_file.to_str().expect("utf8"),
        ],
    );
    admin(&srv.endpoint, &["user", "add", BENCH_USER, BENCH_SECRET]);
    admin(
        &srv.endpoint,
        &["policy", "attach", "p20", "--user", BENCH_USER],
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Warm-up (and the objects, written once by root).
    get_run(
        &rt,
        &srv.endpoint,
        pid,
        (USER, SECRET),
        Duration::from_secs(2),
    );
    get_run(
        &rt,
        &srv.endpoint,
        pid,
        (BENCH_USER, BENCH_SECRET),
        Duration::from_secs(1),
    );

    let (mut user, mut rootr) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let mut pair = |first_user: bool| {
            for as_user in [first_user, !first_user] {
                let creds = if as_user {
                    (BENCH_USER, BENCH_SECRET)
                } else {
                    (USER, SECRET)
                };
                let r = get_run(&rt, &srv.endpoint, pid, creds, secs);
                assert_eq!(r.errors, 0, "GET errors as {}", creds.0);
                if as_user {
                    user.push(r);
                } else {
                    rootr.push(r);
                }
            }
        };
        pair(i % 2 == 0);
        let (u, r) = (&user[user.len() - 1], &rootr[rootr.len() - 1]);
        eprintln!(
            "round {:2}: user {:6.0}/s, root {:6.0}/s, ratio {:.3}",
            i + 1,
            u.ops as f64 / secs.as_secs_f64(),
            r.ops as f64 / secs.as_secs_f64(),
            u.ops as f64 / r.ops.max(1) as f64
        );
    }
    drop(srv);
    let _ = std::fs::remove_dir_all(&root);

    let total = |v: &[Run]| v.iter().map(|r| r.ops).sum::<u64>() as f64;
    let cpu_us = |v: &[Run]| v.iter().map(|r| r.cpu_s).sum::<f64>() * 1e6 / total(v).max(1.0);
    let per_s = |v: &[Run]| total(v) / (v.len() as f64 * secs.as_secs_f64());
    let ratio_total = total(&user) / total(&rootr).max(1.0);
    let pairs: Vec<f64> = user
        .iter()
        .zip(&rootr)
        .map(|(u, r)| u.ops as f64 / r.ops.max(1) as f64)
        .collect();
    let (lo, hi) = pairs
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    let ratio_median = median(pairs);
    let (cpu_user, cpu_root) = (cpu_us(&user), cpu_us(&rootr));
    let body = format!(
        "Command: `cargo bench --bench authz` ({rounds} pairs of {}-s runs in ABBA order, one server \
         on 4 folders, EC 2+2, loopback; {} CPUs). Generated {}.\n\n\
         | measure | user (20 statements) | root | user / root | target |\n\
         |---|---|---|---|---|\n\
         | GET 4 KiB x8, all runs | {:.0}/s | {:.0}/s | {ratio_total:.3} | ≥ 0.95 |\n\
         | GET 4 KiB x8, median of the pairs' ratios | | | {ratio_median:.3} (pairs {lo:.2}–{hi:.2}) | |\n\
         | server CPU per GET | {cpu_user:.0} µs | {cpu_root:.0} µs | {:.3} | |\n\
         | one decision in-process (ARN + 20 statements) | {ns:.0} ns | | | |\n",
        secs.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
        per_s(&user),
        per_s(&rootr),
        cpu_user / cpu_root.max(1e-9),
    );
    println!("{body}");
    common::write_section(
        "authz",
        "Authorisation cost: a user with a 20-statement policy vs root (`cargo bench --bench authz`)",
        &body,
    );
}
