//! `cairn mount` against direct S3 in the same run: `cargo bench --bench mount`.
//!
//! One `cairn server` on 4 folders (EC 2+2), then
//! - sequential write of a 1 GiB file through the mount (1 MiB writes, close included: that
//!   is when it uploads) vs a 1 GiB S3 PUT streamed from a file by the same client code;
//! - sequential read of it through a fresh mount (1 MiB reads, cold page cache) vs a 1 GiB
//!   S3 GET into a sink;
//! - 4 KiB files created (create, write, close) per second vs 4 KiB S3 PUTs per second, one
//!   at a time;
//! - the mount process's peak RSS.
//!
//! Prints a table and rewrites the section of docs/benchmarks.md between
//! `<!-- mount:begin -->` and `<!-- mount:end -->`. `CAIRN_BENCH_DIR` picks the filesystem.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::mount::client::{ObjectClient, S3Client, S3Config};
use common::{server, SECRET, USER};

const GIB: u64 = 1 << 30;
const MIB: f64 = 1048576.0;

struct MountProc {
    child: Child,
    path: PathBuf,
}

impl MountProc {
    fn start(endpoint: &str, volume: &str, path: &Path, cache: &Path) -> MountProc {
        std::fs::create_dir_all(path).expect("mount point");
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "mount",
                "--foreground",
                "--endpoint",
                endpoint,
                "--cache-dir",
            ])
            .arg(cache)
            .arg(volume)
            .arg(path)
            .env("CAIRN_ROOT_USER", USER)
            .env("CAIRN_ROOT_PASSWORD", SECRET)
            .stderr(Stdio::null())
            .spawn()
            .expect("start cairn mount");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cairn::mount::is_mount_point(path) {
            assert!(Instant::now() < deadline, "mount did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        MountProc {
            child,
            path: path.to_path_buf(),
        }
    }

    fn peak_rss_mib(&self) -> f64 {
        common::peak_rss_mib(self.child.id())
    }
}

impl Drop for MountProc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Drop the page cache (root only; best effort) so reads hit the store, not memory.
fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn rate(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB / d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("cairn-mount-bench");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");
    let srv = server(&base.join("drives"), 4);
    let client = |bucket: &str| {
        S3Client::new(S3Config {
            endpoint: srv.endpoint.clone(),
            access_key: USER.into(),
            secret_key: SECRET.into(),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            prefix: String::new(),
            trust: cairn::tls::Trust::system(),
            io_timeout: cairn::mount::client::IO_TIMEOUT,
        })
        .expect("client")
    };
    let s3 = client("direct");
    s3.make_bucket().expect("bucket");
    client("mounted").make_bucket().expect("bucket");

    // A 1 GiB source file with incompressible content.
    let src = base.join("source.bin");
    {
        let mut f = std::fs::File::create(&src).expect("source");
        let mut block = vec![0u8; 1 << 20];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..1024 {
            for b in block.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            f.write_all(&block).expect("write source");
        }
        f.sync_all().expect("sync");
    }
    // Three alternating rounds of each measurement; the median is reported (loopback
    // figures on a 2-core machine swing by 2x from run to run).
    let cache = base.join("cache");
    let mnt = base.join("mnt");
    let (mut puts_s, mut gets_s, mut mwrites, mut mreads) = (vec![], vec![], vec![], vec![]);
    let mut rss_write: f64 = 0.0;
    for round in 0..3 {
        // Direct S3: PUT streamed from the file, GET into a sink.
        drop_caches();
        let t = Instant::now();
        let mut f = std::fs::File::open(&src).expect("open");
        s3.put("big", &mut f, GIB, &Default::default())
            .expect("put");
        puts_s.push(rate(GIB, t.elapsed()));
        let t = Instant::now();
        let n = s3.get_into("big", &mut std::io::sink()).expect("get");
        assert_eq!(n, GIB);
        gets_s.push(rate(GIB, t.elapsed()));

        // Through the mount: write (close included), then read through a fresh mount.
        let mount = MountProc::start(&srv.endpoint, "mounted", &mnt, &cache);
        drop_caches();
        let t = Instant::now();
        {
            let mut from = std::fs::File::open(&src).expect("open");
            let mut to = std::fs::File::create(mnt.join(format!("big{round}"))).expect("create");
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = from.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                to.write_all(&buf[..n]).expect("write");
            }
            to.sync_all().expect("fsync (upload)");
        }
        mwrites.push(rate(GIB, t.elapsed()));
        rss_write = rss_write.max(mount.peak_rss_mib());
        drop(mount);
        let mount = MountProc::start(&srv.endpoint, "mounted", &mnt, &cache);
        drop_caches();
        let t = Instant::now();
        {
            let mut from = std::fs::File::open(mnt.join(format!("big{round}"))).expect("open");
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = from.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert_eq!(total, GIB);
        }
        mreads.push(rate(GIB, t.elapsed()));
        rss_write = rss_write.max(mount.peak_rss_mib());
        drop(mount);
        std::fs::remove_file(mnt.join(format!("big{round}"))).ok();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (put, get) = (median(&mut puts_s), median(&mut gets_s));
    let (mwrite, mread) = (median(&mut mwrites), median(&mut mreads));
    let mount = MountProc::start(&srv.endpoint, "mounted", &mnt, &cache);

    // Small files: creates per second vs PUTs per second.
    let files = 500;
    let small = vec![7u8; 4096];
    std::fs::create_dir(mnt.join("small")).expect("mkdir");
    let t = Instant::now();
    for i in 0..files {
        std::fs::write(mnt.join(format!("small/f{i:05}")), &small).expect("small write");
    }
    let creates = files as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..files {
        let mut body: &[u8] = &small;
        s3.put(
            &format!("small/f{i:05}"),
            &mut body,
            4096,
            &Default::default(),
        )
        .expect("small put");
    }
    let puts = files as f64 / t.elapsed().as_secs_f64();
    let rss = mount.peak_rss_mib().max(rss_write);
    drop(mount);

    let table = format!(
        "| Operation | through `cairn mount` | direct S3 (same client code) | ratio | target |\n\
         |---|---|---|---|---|\n\
         | sequential write, 1 GiB file (close included; median of 3) | {mwrite:.0} MiB/s | PUT {put:.0} MiB/s | {:.2} | ≥ 0.5 |\n\
         | sequential read, 1 GiB file (fresh mount; median of 3) | {mread:.0} MiB/s | GET {get:.0} MiB/s | {:.2} | ≥ 0.7 |\n\
         | 4 KiB files, one at a time | {creates:.0} creates/s | {puts:.0} PUTs/s | {:.2} | |\n\
         | mount process peak RSS (whole run) | {rss:.0} MiB | | | |\n",
        mwrite / put,
        mread / get,
        creates / puts
    );
    println!("{table}");
    let body = format!(
        "Command: `cargo bench --bench mount` (server on 4 folders, EC 2+2, loopback; {} CPUs). \
         Generated {}.\n\n{table}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    common::write_section("mount", "`cairn mount` vs direct S3", &body);
    let _ = std::fs::remove_dir_all(&base);
}
