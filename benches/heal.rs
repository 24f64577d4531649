//! Heal benchmark: rebuild a replaced drive holding ≥ 2 GiB of shards (mixed object sizes),
//! idle and under a steady client load, against the same filesystem's raw sequential write
//! speed measured in the same run.
//!
//! `cargo bench --bench heal` (set `CAIRN_BENCH_DIR` to put the drives on another
//! filesystem; `CAIRN_BENCH_GIB` to change the shard volume, default 2).
//!
//! By default all four drives are folders of one filesystem, so a rebuild reads its sources
//! from the very disk it writes to. `CAIRN_BENCH_SOURCES_DIR=/dev/shm` keeps the three
//! surviving drives elsewhere (memory standing in for other disks) and only the replaced
//! drive on `CAIRN_BENCH_DIR`: a deployment with one device per drive, where the new drive's
//! write speed is the only disk limit, as the ceiling measured assumes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn::heal::{Healer, ScannerConfig, Speed};
use cairn::object::{open_local, OpenOptions, PutOptions, Store};
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// Mixed sizes: many small, some medium, a few large objects.
fn sizes(total_object_bytes: u64) -> Vec<u64> {
    let pattern = [64 * 1024, 512 * 1024, 4 * MIB, 16 * MIB, 64 * MIB];
    let mut out = Vec::new();
    let mut sum = 0;
    let mut i = 0;
    while sum < total_object_bytes {
        let s = pattern[i % pattern.len()];
        out.push(s);
        sum += s;
        i += 1;
    }
    out
}

/// Sequential O_DIRECT write of `bytes` to a file in `dir` (8 MiB aligned blocks, fdatasync at
/// the end): the drive's own write ceiling, page cache bypassed. Falls back to buffered writes
/// where the filesystem refuses O_DIRECT.
fn raw_write_speed(dir: &Path, bytes: u64) -> (f64, &'static str) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("raw-write-probe");
    let len = 8 << 20;
    let mut backing = vec![0x5au8; len + 4096];
    let off = backing.as_ptr().align_offset(4096);
    let block = &mut backing[off..off + len];
    block.fill(0x5a);
    let direct = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
        .open(&path);
    let (mut f, mode) = match direct {
        Ok(f) => (f, "O_DIRECT"),
        Err(_) => (
            std::fs::File::create(&path).expect("probe file"),
            "buffered",
        ),
    };
    let t = Instant::now();
    let mut done = 0;
    while done < bytes {
        f.write_all(block).expect("write");
        done += len as u64;
    }
    f.sync_data().expect("sync");
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    (done as f64 / secs / MIB as f64, mode)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else {
                total += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

async fn open(paths: &[PathBuf]) -> Arc<Store> {
    Arc::new(
        open_local(
            paths,
            &OpenOptions {
                set_size: 4,
                parity: 2,
                pools: Vec::new(),
            },
        )
        .await
        .expect("open store"),
    )
}

/// Two clients streaming GETs of the small objects while `running` holds; bytes served are
/// added to `served`.
fn spawn_clients(
    store: &Arc<Store>,
    served: &Arc<AtomicU64>,
    running: impl Fn() -> bool + Clone + Send + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..2)
        .map(|c| {
            let (store, served, running) = (store.clone(), served.clone(), running.clone());
            tokio::spawn(async move {
                let mut i = c;
                while running() {
                    let key = format!("obj-{:05}", (i * 5) % 200);
                    if let Ok(r) = store.get_object("bench", &key, None).await {
                        let chunks: Vec<bytes::Bytes> =
                            r.into_stream().try_collect().await.unwrap_or_default();
                        served.fetch_add(
                            chunks.iter().map(|c| c.len() as u64).sum(),
                            Ordering::Relaxed,
                        );
                    }
                    i += 2;
                }
            })
        })
        .collect()
}

/// Replace drive 3 with an empty one, then heal it with the real replacement worker.
/// Returns (seconds, shard bytes on the rebuilt drive).
async fn heal_replaced(paths: &[PathBuf], load: bool) -> (f64, u64, Option<f64>) {
    std::fs::remove_dir_all(&paths[2]).expect("wipe");
    std::fs::create_dir(&paths[2]).expect("empty");
    let store = open(paths).await;
    let stop = CancellationToken::new();
    // A steady client load: GETs of the small objects, 2 at a time.
    let reading = Arc::new(AtomicBool::new(load));
    let served = Arc::new(AtomicU64::new(0));
    let clients = if load {
        let reading = reading.clone();
        spawn_clients(&store, &served, move || reading.load(Ordering::Relaxed))
    } else {
        Vec::new()
    };
    let healer = Healer::new(store.clone(), stop.clone());
    healer.set_speed(Speed::Fast);
    let t = Instant::now();
    healer.start(None);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = healer.state();
        if !st.replacements.is_empty() && st.replacements.iter().all(|r| r.finished) {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    reading.store(false, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    stop.cancel();
    let client_rate = load.then(|| served.load(Ordering::Relaxed) as f64 / secs / MIB as f64);
    (secs, dir_bytes(&paths[2].join("bench")), client_rate)
}

/// Client throughput while the background scanner walks everything continuously at its
/// default pacing (interval 0: one cycle after another).
async fn client_with_scanner(paths: &[PathBuf], secs: f64) -> f64 {
    let store = open(paths).await;
    let stop = CancellationToken::new();
    let healer = Healer::new(store.clone(), stop.clone());
    healer.start(Some(ScannerConfig {
        interval: Duration::ZERO,
        ..ScannerConfig::default()
    }));
    let rate = client_load(&store, secs).await;
    stop.cancel();
    rate
}

/// Client throughput of the same load with no heal running.
async fn client_alone(paths: &[PathBuf], secs: f64) -> f64 {
    let store = open(paths).await;
    client_load(&store, secs).await
}

async fn client_load(store: &Arc<Store>, secs: f64) -> f64 {
    let served = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs.clamp(3.0, 20.0));
    let clients = spawn_clients(store, &served, move || Instant::now() < deadline);
    let t = Instant::now();
    for c in clients {
        let _ = c.await;
    }
    served.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64() / MIB as f64
}

fn main() {
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let gib: u64 = std::env::var("CAIRN_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let tmp = tempfile::tempdir_in(&base).expect("bench dir");
    let sources = std::env::var_os("CAIRN_BENCH_SOURCES_DIR")
        .map(|d| tempfile::tempdir_in(d).expect("sources dir"));
    let paths: Vec<PathBuf> = (1..=4)
        .map(|i| match &sources {
            Some(s) if i != 3 => s.path().join(format!("drive{i}")),
            _ => tmp.path().join(format!("drive{i}")),
        })
        .collect();
    println!(
        "drives: {} (replaced: {})",
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        paths[2].display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // EC 2+2: each drive holds half of every object, so 2·gib of objects fill a drive with gib.
        let store = open(&paths).await;
        store.make_bucket("bench").await.expect("bucket");
        let sizes = sizes((2 * gib) << 30);
        let block: Vec<u8> = (0..MIB as usize).map(|i| (i * 131 % 251) as u8).collect();
        let t = Instant::now();
        for (i, size) in sizes.iter().enumerate() {
            let mut body = Vec::with_capacity(*size as usize);
            while (body.len() as u64) < *size {
                let n = ((*size - body.len() as u64) as usize).min(block.len());
                body.extend_from_slice(&block[..n]);
            }
            body[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let mut r = &body[..];
            store
                .put_object("bench", &format!("obj-{i:05}"), &mut r, Some(*size), PutOptions::default())
                .await
                .expect("put");
        }
        println!("filled: {} objects, {:.0} MiB of objects in {:.1}s", sizes.len(), sizes.iter().sum::<u64>() as f64 / MIB as f64, t.elapsed().as_secs_f64());
        drop(store);
        let (raw, mode) = raw_write_speed(tmp.path(), 2 << 30);
        println!("raw sequential write ({mode}, 2 GiB): {raw:.0} MiB/s");
        let (secs, bytes, _) = heal_replaced(&paths, false).await;
        let rate = bytes as f64 / secs / MIB as f64;
        println!("heal idle:      rebuilt {:.0} MiB in {secs:.1}s = {rate:.0} MiB/s = {:.2} x raw write", bytes as f64 / MIB as f64, rate / raw);
        let (secs, bytes, client) = heal_replaced(&paths, true).await;
        let rate = bytes as f64 / secs / MIB as f64;
        let alone = client_alone(&paths, secs).await;
        let client = client.unwrap_or(0.0);
        println!(
            "heal under load: rebuilt {:.0} MiB in {secs:.1}s = {rate:.0} MiB/s = {:.2} x raw write; client GETs {client:.0} MiB/s during heal vs {alone:.0} MiB/s alone ({:.2})",
            bytes as f64 / MIB as f64,
            rate / raw,
            client / alone.max(1.0)
        );
        let alone = client_alone(&paths, 8.0).await;
        let scanning = client_with_scanner(&paths, 8.0).await;
        println!(
            "scanner cost: client GETs {scanning:.0} MiB/s with the scanner running vs {alone:.0} MiB/s without ({:.2})",
            scanning / alone.max(1.0)
        );
    });
}
