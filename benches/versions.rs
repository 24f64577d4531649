//! Versioned metadata at scale, through the real server (4 folders, EC 2+2):
//!
//! 1. GET of the latest version of a key with 10,000 versions against a key with one
//!    version (4 KiB each; one client, runs alternated): a read of the latest version reads
//!    and checks only the head of the metadata file, so the two should cost the same.
//! 2. A ListObjectsV2 page of 1,000 keys from a bucket of 100,000 keys of which 90 % have a
//!    delete marker as their latest version, against a bucket of 100,000 plain keys (pages at
//!    random start keys, alternated): flagged markers are skipped without reading them.
//!
//! `cargo bench --bench versions` (about 15 minutes: making 10,000 versions of one key
//! rewrites its metadata each time). `CAIRN_VERSIONS` (default 10000), `CAIRN_VERSIONS_KEYS`
//! (default 100000), `CAIRN_BENCH_DIR`. Rewrites the section of docs/benchmarks.md between
//! `<!-- versions:begin -->` and `<!-- versions:end -->`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cairn::auth::{sign_request, EMPTY_SHA256, UNSIGNED_PAYLOAD};

mod common;
use common::{server, SECRET, USER};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone)]
struct Client {
    endpoint: String,
    host: String,
    agent: ureq::Agent,
}

impl Client {
    fn new(endpoint: &str) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(600)))
            .build()
            .into();
        Client {
            endpoint: endpoint.to_string(),
            host: endpoint.trim_start_matches("http://").to_string(),
            agent,
        }
    }

    /// One signed request; the status and the body.
    fn call(&self, method: &str, path: &str, query: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let payload = if body.is_empty() {
            EMPTY_SHA256
        } else {
            UNSIGNED_PAYLOAD
        };
        let signed = sign_request(
            method,
            path,
            query,
            &self.host,
            payload,
            USER,
            SECRET,
            "us-east-1",
            SystemTime::now(),
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut b = http::Request::builder().method(method).uri(&url);
        for (k, v) in &signed {
            b = b.header(k, v);
        }
        let resp = if body.is_empty() {
            self.agent.run(b.body(()).expect("request"))
        } else {
            self.agent.run(b.body(body.to_vec()).expect("request"))
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {path}?{query}: {e}"));
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_vec().unwrap_or_default();
        (status, body)
    }

    fn ok(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Vec<u8> {
        let (status, out) = self.call(method, path, query, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}?{query}: HTTP {status}: {}",
            String::from_utf8_lossy(&out)
        );
        out
    }

    fn versioned_bucket(&self, bucket: &str) {
        self.ok("PUT", &format!("/{bucket}"), "", b"");
        self.ok(
            "PUT",
            &format!("/{bucket}"),
            "versioning=",
            b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>",
        );
    }
}

/// Run `op(i)` for `i` in `0..n` on 8 threads, printing progress.
fn parallel(what: &str, n: usize, op: impl Fn(usize) + Send + Sync + 'static) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                op(i);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
    let took = started.elapsed();
    eprintln!("  {what}: {n} in {:.1} s", took.as_secs_f64());
    took
}

/// Requests per second and median latency of `op` for `secs`, one client.
fn rate(secs: Duration, mut op: impl FnMut(usize)) -> (f64, Duration) {
    let mut lat = Vec::new();
    let started = Instant::now();
    while started.elapsed() < secs {
        let t = Instant::now();
        op(lat.len());
        lat.push(t.elapsed());
    }
    let n = lat.len();
    lat.sort();
    (n as f64 / started.elapsed().as_secs_f64(), lat[n / 2])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("versions: bench");
        return;
    }
    let versions = env_num("CAIRN_VERSIONS", 10_000).max(2);
    let keys = env_num("CAIRN_VERSIONS_KEYS", 100_000).max(1000);
    let root = common::work_dir("versions");
    let srv = server(&root, 4);
    let c = Client::new(&srv.endpoint);
    let round = Duration::from_secs(3);

    // 1. The latest of many versions.
    eprintln!("GET of the latest of {versions} versions");
    c.versioned_bucket("vers");
    let object = vec![0x5au8; 4096];
    c.ok("PUT", "/vers/one", "", &object);
    let started = Instant::now();
    for i in 0..versions - 1 {
        c.ok("PUT", "/vers/many", "", b"x");
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "  {} versions after {:.0} s",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    c.ok("PUT", "/vers/many", "", &object);
    let made = started.elapsed();
    let meta_bytes = std::fs::metadata(root.join("d1/vers/many/@meta")).map_or(0, |m| m.len());
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for r in 0..4 {
        let get = |key: &str| {
            let path = format!("/vers/{key}");
            rate(round, |_| {
                let got = c.ok("GET", &path, "", b"");
                assert_eq!(got.len(), 4096);
            })
        };
        if r % 2 == 0 {
            one.push(get("one"));
            many.push(get("many"));
        } else {
            many.push(get("many"));
            one.push(get("one"));
        }
    }
    let sum = |v: &[(f64, Duration)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
    let p50 = |v: &[(f64, Duration)]| {
        let mut l: Vec<Duration> = v.iter().map(|x| x.1).collect();
        l.sort();
        l[l.len() / 2]
    };
    let (one_rate, many_rate) = (sum(&one), sum(&many));
    eprintln!("  one version: {one_rate:.0}/s; {versions} versions: {many_rate:.0}/s");

    // 2. Listing past delete markers.
    eprintln!("ListObjectsV2 over {keys} keys, 90 % delete markers");
    c.versioned_bucket("plain");
    c.versioned_bucket("marked");
    let name = |i: usize| format!("k{i:07}");
    let cc = c.clone();
    parallel("plain PUTs", keys, move |i| {
        cc.ok("PUT", &format!("/plain/{}", name(i)), "", b"x");
    });
    let cc = c.clone();
    parallel("marked PUTs", keys, move |i| {
        cc.ok("PUT", &format!("/marked/{}", name(i)), "", b"x");
    });
    let cc = c.clone();
    let marked = keys - keys / 10;
    parallel("delete markers", marked, move |i| {
        // Every key but each tenth.
        let k = i / 9 * 10 + i % 9 + 1;
        cc.ok("DELETE", &format!("/marked/{}", name(k)), "", b"");
    });
    // Pages start at random keys far enough from the end for a full page of live keys.
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut starts = Vec::new();
    for _ in 0..64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        starts.push(name((seed % (keys as u64 * 8 / 10)) as usize));
    }
    // 1,000 keys a page (fewer in a small trial run, so that every page can be full).
    let page_keys = 1000.min(keys / 50);
    let page = |bucket: &str, i: usize| {
        let q = format!(
            "list-type=2&max-keys={page_keys}&start-after={}",
            starts[i % starts.len()]
        );
        let body = c.ok("GET", &format!("/{bucket}"), &q, b"");
        let text = String::from_utf8_lossy(&body);
        assert_eq!(
            text.matches("<Key>").count(),
            page_keys,
            "a full page from {bucket}"
        );
    };
    // Warm the directory caches of both buckets first.
    page("plain", 0);
    page("marked", 0);
    let (mut plain, mut mark) = (Vec::new(), Vec::new());
    for r in 0..4 {
        if r % 2 == 0 {
            plain.push(rate(round, |i| page("plain", i)));
            mark.push(rate(round, |i| page("marked", i)));
        } else {
            mark.push(rate(round, |i| page("marked", i)));
            plain.push(rate(round, |i| page("plain", i)));
        }
    }
    drop(srv);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let body = format!(
        "Command: `cargo bench --bench versions` (one server on 4 folders, EC 2+2, loopback, one \
         client, 4 alternated runs of {} s each; {} CPUs). Generated {}.\n\n\
         | measure | reference | measured | ratio | target |\n\
         |---|---|---|---|---|\n\
         | GET 4 KiB, latest of {versions} versions vs a key with 1 version | {one_rate:.0}/s, p50 {:.2} ms | {many_rate:.0}/s, p50 {:.2} ms | {:.2}× the time (p50 {:.2}×) | ≤ 2× |\n\
         | ListObjectsV2 page of {page_keys}, {keys} keys of which 90 % delete markers vs none | {:.1} pages/s, p50 {:.1} ms | {:.1} pages/s, p50 {:.1} ms | {:.2}× the time (p50 {:.2}×) | ≤ 3× |\n\n\
         Making the {versions} versions took {:.0} s ({:.0} PUT/s; the metadata file of that key is \
         {:.1} MiB per drive and every new version rewrites it).\n",
        round.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(SystemTime::now()),
        ms(p50(&one)),
        ms(p50(&many)),
        one_rate / many_rate.max(1e-9),
        ms(p50(&many)) / ms(p50(&one)).max(1e-9),
        sum(&plain),
        ms(p50(&plain)),
        sum(&mark),
        ms(p50(&mark)),
        sum(&plain) / sum(&mark).max(1e-9),
        ms(p50(&mark)) / ms(p50(&plain)).max(1e-9),
        made.as_secs_f64(),
        versions as f64 / made.as_secs_f64().max(1e-9),
        meta_bytes as f64 / 1048576.0,
    );
    println!("{body}");
    // Removing the work directory (about a million files) takes minutes: after the report.
    let _ = std::fs::remove_dir_all(&root);
    common::write_section(
        "versions",
        "Versions at scale: the latest of 10,000 versions, listings past delete markers (`cargo bench --bench versions`)",
        &body,
    );
}
