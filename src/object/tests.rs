//! Object layer tests over real drive directories, with faults injected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::TryStreamExt;
use parking_lot::Mutex;

use super::*;
use crate::drive::local::crash;
use crate::drive::{Fault, FaultyDrive, LocalDrive};
use crate::placement::Layout;

const BLOCK: usize = 64 * 1024;
const TEST_TIMEOUTS: crate::drive::Timeouts = crate::drive::Timeouts {
    meta: std::time::Duration::from_millis(500),
    data: std::time::Duration::from_secs(1),
};

fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Cluster {
    _tmp: tempfile::TempDir,
    paths: Vec<PathBuf>,
    locals: Vec<Arc<LocalDrive>>,
    faults: Vec<Arc<Mutex<Fault>>>,
    finished: Finished,
    store: Store,
    layout: Layout,
}

/// Per drive: a count of its file writers that reached `finish`.
type Finished = Vec<Arc<std::sync::atomic::AtomicUsize>>;

fn finish_counts(finished: &[Arc<std::sync::atomic::AtomicUsize>]) -> Vec<usize> {
    finished
        .iter()
        .map(|f| f.load(std::sync::atomic::Ordering::Relaxed))
        .collect()
}

impl Cluster {
    async fn new(n: usize) -> Cluster {
        Self::new_in(n, tempfile::tempdir().expect("tempdir")).await
    }

    /// Drives in `tmp` (a filesystem a test needs, e.g. one that orders data).
    async fn new_in(n: usize, tmp: tempfile::TempDir) -> Cluster {
        let paths: Vec<PathBuf> = (1..=n).map(|i| tmp.path().join(format!("d{i}"))).collect();
        let args: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let layout = Layout::from_args(&args, None, None).expect("layout");
        let (locals, faults, finished, store) = Self::open(&paths, &layout).await;
        Cluster {
            _tmp: tmp,
            paths,
            locals,
            faults,
            finished,
            store,
            layout,
        }
    }

    async fn open(
        paths: &[PathBuf],
        layout: &Layout,
    ) -> (
        Vec<Arc<LocalDrive>>,
        Vec<Arc<Mutex<Fault>>>,
        Finished,
        Store,
    ) {
        let mut locals = Vec::new();
        let mut faults = Vec::new();
        let mut finished = Vec::new();
        let mut drives: Vec<Option<Arc<dyn crate::drive::Drive>>> = Vec::new();
        for p in paths {
            let local = Arc::new(LocalDrive::open(p.clone()));
            let (faulty, fault) = FaultyDrive::new(local.clone());
            locals.push(local);
            faults.push(fault);
            finished.push(faulty.finished());
            // As the server runs them: every call under a deadline (short here).
            let timed = crate::drive::TimedDrive::with_timeouts(Arc::new(faulty), TEST_TIMEOUTS);
            drives.push(Some(Arc::new(timed)));
        }
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let opts = OpenOptions {
            set_size: layout.set_size,
            parity: layout.parity,
            pools: Vec::new(),
        };
        let store = open_drives(drives, &names, &opts)
            .await
            .expect("open store")
            .with_block_size(BLOCK)
            .with_min_part_size(BLOCK as u64);
        (locals, faults, finished, store)
    }

    /// Simulate a restart: reopen the same directories.
    async fn restart(&mut self) {
        let (locals, faults, finished, store) = Self::open(&self.paths, &self.layout).await;
        self.locals = locals;
        self.faults = faults;
        self.finished = finished;
        self.store = store;
    }

    fn parity(&self) -> usize {
        self.layout.parity
    }

    /// Drive positions (indices into `paths`) of the set holding `key`.
    fn set_drives(&self, key: &str) -> Vec<usize> {
        let s =
            crate::placement::set_for_key(&self.store.deployment_id, key, self.store.sets.len());
        (s * self.layout.set_size..(s + 1) * self.layout.set_size).collect()
    }

    async fn put(&self, bucket: &str, key: &str, data: &[u8]) -> ObjectResult<ObjectInfo> {
        let mut body = data;
        self.store
            .put_object(
                bucket,
                key,
                &mut body,
                Some(data.len() as u64),
                PutOptions::default(),
            )
            .await
    }

    async fn get(&self, bucket: &str, key: &str) -> ObjectResult<Vec<u8>> {
        self.get_range(bucket, key, None).await
    }

    async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        r: Option<ByteRange>,
    ) -> ObjectResult<Vec<u8>> {
        let reader = self.store.get_object(bucket, key, r).await?;
        let chunks: Vec<bytes::Bytes> = reader.into_stream().try_collect().await?;
        Ok(chunks.concat())
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

const SIZES: [usize; 7] = [0, 1, 1000, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 777];

#[tokio::test]
async fn round_trips_on_1_4_6_16_drives() {
    for n in [1, 4, 6, 16] {
        let c = Cluster::new(n).await;
        c.store.make_bucket("bucket").await.expect("make bucket");
        for (i, size) in SIZES.iter().enumerate() {
            let data = bytes(*size, i as u64);
            let key = format!("dir/object-{i}");
            let info = c.put("bucket", &key, &data).await.expect("put");
            assert_eq!(info.size, *size as u64);
            assert_eq!(info.etag, md5_hex(&data));
            assert_eq!(
                c.get("bucket", &key).await.expect("get"),
                data,
                "{n} drives, size {size}"
            );
            let head = c.store.head_object("bucket", &key).await.expect("head");
            assert_eq!((head.size, head.etag), (info.size, info.etag));
            if *size > 10 {
                for (start, len) in [
                    (0u64, 1u64),
                    (3, 5),
                    (*size as u64 - 7, 7),
                    (BLOCK as u64 - 3, 9),
                    // Across the boundaries of data shards inside a block (a healthy read
                    // produces a block as one piece per data shard).
                    (BLOCK as u64 / 2 - 5, 10),
                    (BLOCK as u64 / 4 - 1, BLOCK as u64 + 2),
                    (1, 2 * BLOCK as u64),
                ] {
                    if start >= *size as u64 {
                        continue;
                    }
                    let want_end = (start + len).min(*size as u64) as usize;
                    let got = c
                        .get_range("bucket", &key, Some(ByteRange { start, len }))
                        .await
                        .expect("range");
                    assert_eq!(got, &data[start as usize..want_end]);
                }
            }
        }
        assert!(matches!(
            c.get_range(
                "bucket",
                "dir/object-2",
                Some(ByteRange {
                    start: 5000,
                    len: 1
                })
            )
            .await,
            Err(ObjectError::InvalidRange)
        ));
        assert!(matches!(
            c.get("bucket", "missing").await,
            Err(ObjectError::NoSuchKey)
        ));
        assert!(matches!(
            c.get("nobucket", "x").await,
            Err(ObjectError::NoSuchBucket)
        ));
    }
}

#[tokio::test]
async fn streams_unknown_size_bodies() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("b1b").await.expect("bucket");
    let data = bytes(5 * BLOCK + 3, 9);
    let mut body = &data[..];
    let info = c
        .store
        .put_object("b1b", "k", &mut body, None, PutOptions::default())
        .await
        .expect("put");
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(c.get("b1b", "k").await.expect("get"), data);
    // A body shorter than declared fails and leaves nothing.
    let mut short = &data[..100];
    let r = c
        .store
        .put_object("b1b", "short", &mut short, Some(200), PutOptions::default())
        .await;
    assert!(matches!(
        r,
        Err(ObjectError::IncompleteBody {
            got: 100,
            want: 200
        })
    ));
    assert!(matches!(
        c.get("b1b", "short").await,
        Err(ObjectError::NoSuchKey)
    ));
    // A wrong Content-MD5 fails before commit.
    let mut body = &data[..];
    let r = c
        .store
        .put_object(
            "b1b",
            "md5",
            &mut body,
            None,
            PutOptions {
                content_md5: Some([0; 16]),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(ObjectError::BadDigest)));
    assert!(matches!(
        c.get("b1b", "md5").await,
        Err(ObjectError::NoSuchKey)
    ));
}

/// Take `parity` drives of the object's set away (directory removed, or every call
/// failing): reads stay byte-exact. One more: a clean error.
#[tokio::test]
async fn survives_parity_drive_losses() {
    for n in [4, 6, 16] {
        for removal in [false, true] {
            let c = Cluster::new(n).await;
            c.store.make_bucket("bucket").await.expect("bucket");
            let objects: Vec<(String, Vec<u8>)> = SIZES
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("k{i}"), bytes(*s, 100 + i as u64)))
                .collect();
            for (k, d) in &objects {
                c.put("bucket", k, d).await.expect("put");
            }
            for (k, d) in &objects {
                let set = c.set_drives(k);
                for &i in set.iter().take(c.parity()) {
                    if removal {
                        let _ = std::fs::remove_dir_all(&c.paths[i]);
                    } else {
                        *c.faults[i].lock() = Fault::Offline;
                    }
                }
                assert_eq!(
                    &c.get("bucket", k).await.expect("degraded read"),
                    d,
                    "n={n} removal={removal}"
                );
                if !removal {
                    *c.faults[set[c.parity()]].lock() = Fault::Offline;
                    let r = c.get("bucket", k).await;
                    assert!(
                        matches!(r, Err(ObjectError::ReadQuorum { .. })),
                        "parity+1 lost must fail cleanly, got {:?}",
                        r.map(|v| v.len())
                    );
                    for f in &c.faults {
                        *f.lock() = Fault::None;
                    }
                }
            }
        }
    }
}

/// Corrupt the shard files (and inline metadata) of `parity` drives on disk: reads stay
/// byte-exact and the object is queued for healing; corrupting parity + 1 is a clean error.
#[tokio::test]
async fn survives_bitrot_in_parity_shards() {
    let c = Cluster::new(6).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    // Inline, one block (read without the lock, then again with it), several blocks.
    for (i, size) in [100usize, BLOCK, 3 * BLOCK + 5].iter().enumerate() {
        let key = format!("rot{i}");
        let data = bytes(*size, i as u64 + 7);
        c.put("bucket", &key, &data).await.expect("put");
        let set = c.set_drives(&key);
        let flip = |drive: usize| {
            let dir = c.paths[drive].join("bucket").join(&key);
            for f in files_under(&dir) {
                let mut b = std::fs::read(&f).expect("read shard");
                // In metadata, the inline shard is the end of the head (the latest version,
                // checked on its own); elsewhere the last byte of the shard file.
                let at = crate::meta::head_len(&b).map_or(b.len(), |n| n - 8) - 1;
                b[at] ^= 0x01;
                std::fs::write(&f, b).expect("write shard");
            }
        };
        for &d in set.iter().take(c.parity()) {
            flip(d);
        }
        assert_eq!(c.get("bucket", &key).await.expect("read with rot"), data);
        assert!(c.store.heal_queue.contains("bucket", &key));
        flip(set[c.parity()]);
        let r = c.get("bucket", &key).await;
        assert!(r.is_err(), "parity+1 rotten must fail, not return bytes");
    }
    // Corrupted reads injected at the drive level (not on disk) are caught too.
    let data = bytes(2 * BLOCK, 3);
    c.put("bucket", "inflight", &data).await.expect("put");
    for &d in c.set_drives("inflight").iter().take(c.parity()) {
        *c.faults[d].lock() = Fault::CorruptReads;
    }
    assert_eq!(c.get("bucket", "inflight").await.expect("get"), data);
}

/// A reader set to skip the bitrot check gives the bytes the drives hold, damage included,
/// and finds nothing wrong; asked to read again from a byte, it gives the object's bytes
/// from there, checked, rebuilt around the rotten shard, and queues a deep heal.
#[tokio::test]
async fn an_unchecked_read_gives_the_drives_bytes_and_a_recheck_the_objects() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(2 * BLOCK + 77, 9);
    c.put("bucket", "k", &data).await.expect("put");
    let set = c.set_drives("k");
    let mut wrong = 0;
    for &d in &set {
        *c.faults[d].lock() = Fault::CorruptReads;
        let mut r = c
            .store
            .get_object("bucket", "k", None)
            .await
            .expect("reader");
        r.read_unchecked();
        let mut got = Vec::new();
        while let Some(b) = r.next_chunk().await.expect("unchecked read") {
            got.extend_from_slice(&b);
        }
        assert_eq!(got.len(), data.len());
        assert!(!c.store.heal_queue.contains("bucket", "k"), "found nothing");
        // A drive holding a data shard gave its damage; one holding parity was not read.
        if got != data {
            wrong += 1;
            let at = BLOCK as u64 + 5;
            assert!(r.recheck_from(at));
            let mut again = Vec::new();
            while let Some(b) = r.next_chunk().await.expect("checked read") {
                again.extend_from_slice(&b);
            }
            assert!(again == data[at as usize..], "drive {d}");
            assert!(c.store.heal_queue.contains_deep("bucket", "k"));
            assert!(!r.recheck_from(0), "checked already");
            // The read again took the key's lock (it met damage) and let it go at the end.
            assert!(lock_free(&c, "k").await);
        }
        *c.faults[d].lock() = Fault::None;
        while c.store.heal_queue.pop().is_some() {}
    }
    assert_eq!(wrong, set.len() - c.parity(), "one per data shard");
}

/// Is the key's lock free (a writer gets it at once)?
async fn lock_free(c: &Cluster, key: &str) -> bool {
    c.store
        .locker()
        .lock(
            &format!("bucket/{key}"),
            true,
            std::time::Duration::from_millis(50),
        )
        .await
        .is_ok()
}

/// A read whose bytes lie in one erasure block holds no lock (it reads them all before it
/// answers); a read of several blocks holds the key's read lock until its last byte.
#[tokio::test]
async fn only_reads_of_several_blocks_hold_the_lock() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (small, big) = (bytes(BLOCK, 1), bytes(2 * BLOCK + 1, 2));
    c.put("bucket", "small", &small).await.expect("put");
    c.put("bucket", "big", &big).await.expect("put");
    let mut r = c
        .store
        .get_object("bucket", "small", None)
        .await
        .expect("open");
    r.ready().await.expect("first block");
    assert!(
        lock_free(&c, "small").await,
        "a one-block read holds no lock"
    );
    let got: Vec<bytes::Bytes> = r.into_stream().try_collect().await.expect("read");
    assert_eq!(got.concat(), small);
    // A range inside one block of the big object is one block too.
    let part = ByteRange {
        start: BLOCK as u64 + 10,
        len: 100,
    };
    let r = c
        .store
        .get_object("bucket", "big", Some(part))
        .await
        .expect("open");
    assert!(lock_free(&c, "big").await);
    let got: Vec<bytes::Bytes> = r.into_stream().try_collect().await.expect("read");
    assert_eq!(got.concat(), &big[BLOCK + 10..BLOCK + 110]);
    let r = c
        .store
        .get_object("bucket", "big", None)
        .await
        .expect("open");
    assert!(
        !lock_free(&c, "big").await,
        "a streamed read holds the read lock"
    );
    let got: Vec<bytes::Bytes> = r.into_stream().try_collect().await.expect("read");
    assert_eq!(got.concat(), big);
    assert!(lock_free(&c, "big").await, "released at the end");
}

/// An overwrite lands between a lock-free open and its read, removing the version's shards:
/// the read takes the lock, finds the version replaced and answers `Replaced` (a retryable
/// SlowDown) before any byte — never bytes of the other version, never a half read. An
/// inline object's bytes came with its metadata: that read serves the version it opened.
#[tokio::test]
async fn a_lock_free_read_overtaken_by_an_overwrite_is_refused_before_any_byte() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (old, new) = (bytes(BLOCK, 3), bytes(BLOCK, 4));
    c.put("bucket", "k", &old).await.expect("put");
    let mut r = c.store.get_object("bucket", "k", None).await.expect("open");
    c.put("bucket", "k", &new)
        .await
        .expect("overwrite while the read is open");
    assert!(matches!(r.ready().await, Err(ObjectError::Replaced)));
    assert_eq!(c.get("bucket", "k").await.expect("get"), new);
    assert!(
        !c.store.heal_queue.contains("bucket", "k"),
        "nothing is damaged"
    );
    // Deleted meanwhile: the same.
    let mut r = c.store.get_object("bucket", "k", None).await.expect("open");
    c.store.delete_object("bucket", "k").await.expect("delete");
    assert!(matches!(r.ready().await, Err(ObjectError::Replaced)));
    let (old, new) = (bytes(100, 5), bytes(100, 6));
    c.put("bucket", "inline", &old).await.expect("put");
    let r = c
        .store
        .get_object("bucket", "inline", None)
        .await
        .expect("open");
    c.put("bucket", "inline", &new).await.expect("overwrite");
    let got: Vec<bytes::Bytes> = r.into_stream().try_collect().await.expect("read");
    assert_eq!(got.concat(), old);
}

#[tokio::test]
async fn stored_bytes_are_twice_the_object_on_2_plus_2() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let size = 5 << 20;
    let data = bytes(size, 1);
    // Default 1 MiB blocks for this measurement.
    let store = std::mem::replace(&mut { c.store }, Store::new(uuid::Uuid::nil(), vec![]));
    let store = store.with_block_size(cairn_erasure::DEFAULT_BLOCK_SIZE);
    let mut body = &data[..];
    store
        .put_object(
            "bucket",
            "five",
            &mut body,
            Some(size as u64),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let mut total = 0u64;
    for p in &c.paths {
        let shard: u64 = files_under(&p.join("bucket").join("five"))
            .iter()
            .filter(|f| f.file_name().is_some_and(|n| n == "part.1"))
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(shard > 0, "every drive holds a shard");
        total += shard;
    }
    let ratio = total as f64 / size as f64;
    assert!((2.0..2.001).contains(&ratio), "stored/object = {ratio}");
}

/// REDUCED_REDUNDANCY takes the RRS parity (1 on a 4-drive set: 3+1, 4/3 of the object
/// stored).
#[tokio::test]
async fn reduced_redundancy_stores_less_parity() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let size = 3 << 20;
    let data = bytes(size, 2);
    let store = std::mem::replace(&mut { c.store }, Store::new(uuid::Uuid::nil(), vec![]));
    let store = store
        .with_block_size(cairn_erasure::DEFAULT_BLOCK_SIZE)
        .with_rrs_parity(1);
    let mut opts = PutOptions::default();
    opts.headers.insert(
        crate::object::STORAGE_CLASS_HEADER.into(),
        "REDUCED_REDUNDANCY".into(),
    );
    let mut body = &data[..];
    let info = store
        .put_object("bucket", "rrs", &mut body, Some(size as u64), opts)
        .await
        .expect("put");
    assert_eq!(
        crate::object::storage_class(&info.headers),
        "REDUCED_REDUNDANCY"
    );
    let total: u64 = c
        .paths
        .iter()
        .flat_map(|p| files_under(&p.join("bucket").join("rrs")))
        .filter(|f| f.file_name().is_some_and(|n| n == "part.1"))
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let ratio = total as f64 / size as f64;
    assert!((1.333..1.335).contains(&ratio), "stored/object = {ratio}");
}

#[tokio::test]
async fn concurrent_writers_one_wins_whole() {
    let c = Arc::new(Cluster::new(4).await);
    c.store.make_bucket("bucket").await.expect("bucket");
    let payloads: Vec<Vec<u8>> = (0..6)
        .map(|i| bytes(2 * BLOCK + i * 1000, i as u64))
        .collect();
    let mut tasks = Vec::new();
    for p in payloads.clone() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put("bucket", "contended", &p).await
        }));
    }
    // Readers run meanwhile and must only ever see a whole payload.
    let reader = {
        let c = c.clone();
        let payloads = payloads.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                match c.get("bucket", "contended").await {
                    Ok(got) => assert!(payloads.contains(&got), "reader saw a mix of versions"),
                    Err(ObjectError::NoSuchKey) => {}
                    Err(e) => panic!("read failed: {e}"),
                }
            }
        })
    };
    for t in tasks {
        t.await.expect("join").expect("put");
    }
    reader.await.expect("reader");
    let got = c.get("bucket", "contended").await.expect("get");
    assert!(payloads.contains(&got));
    let head = c
        .store
        .head_object("bucket", "contended")
        .await
        .expect("head");
    assert_eq!(head.etag, md5_hex(&got));
    // Exactly one data directory remains per drive: replaced versions were cleaned up.
    for p in &c.paths {
        let dirs = std::fs::read_dir(p.join("bucket").join("contended"))
            .expect("object dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
            .count();
        assert_eq!(dirs, 1);
    }
}

/// A crash at any step of the commit sequence, on any subset of drives, leaves the old or
/// the new version readable after restart, never a torn one.
#[tokio::test]
async fn crash_at_every_commit_step_leaves_old_or_new() {
    let old = bytes(2 * BLOCK + 5, 1);
    let new = bytes(3 * BLOCK + 9, 2);
    for point in crash::ALL {
        for crashed in [1usize, 2, 3, 4] {
            let mut c = Cluster::new(4).await;
            c.store.make_bucket("bucket").await.expect("bucket");
            c.put("bucket", "k", &old).await.expect("put old");
            for d in c.locals.iter().take(crashed) {
                d.crash_at(Some(point));
            }
            // The process "dies" during the commit; with 2+2, a crash on two or more drives
            // is also a failed write for the client.
            let r = c.put("bucket", "k", &new).await;
            if crashed >= 2 {
                assert!(
                    r.is_err(),
                    "crash at {point} on {crashed} drives must not be acknowledged"
                );
            }
            c.restart().await;
            let got = c.get("bucket", "k").await.expect("readable after crash");
            assert!(
                got == old || got == new,
                "torn object after crash at {point} on {crashed} drives"
            );
            // Staging is swept on restart.
            for p in &c.paths {
                let tmp = p.join(".cairn.sys/tmp");
                assert_eq!(std::fs::read_dir(tmp).expect("tmp").count(), 0);
            }
        }
    }
}

/// Sync epochs each local drive of the cluster has waited for so far.
fn barriers_waited(c: &Cluster) -> Vec<u64> {
    c.locals.iter().map(|d| d.barriers_waited()).collect()
}

/// Epochs each drive waited for since `before` ([`barriers_waited`]).
fn epochs_since(before: &[u64], c: &Cluster) -> Vec<u64> {
    barriers_waited(c)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect()
}

/// Removing a replaced version's data directory waits for no epoch while the key keeps
/// metadata (a power loss would leave an orphan of a listed key, which heal sweeps); a
/// removal that leaves the key without metadata, which nobody would list, waits for one.
#[tokio::test]
async fn a_replaced_data_directory_goes_without_an_epoch_unless_its_key_goes_too() {
    use crate::drive::sync::SyncMode;
    if SyncMode::current() != SyncMode::Group {
        eprintln!("CAIRN_COMMIT_SYNC=fsync: commits wait for no epoch; nothing to count");
        return;
    }
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let big = bytes(2 * BLOCK, 7);
    c.put("bucket", "big", &big).await.expect("put");
    let before = barriers_waited(&c);
    let newer = bytes(2 * BLOCK, 8);
    c.put("bucket", "big", &newer).await.expect("overwrite");
    let after = barriers_waited(&c);
    let epochs = epochs_since(&before, &c);
    assert_eq!(
        epochs,
        [2, 2, 2, 2],
        "the commit's two, none for the removal"
    );
    assert_eq!(c.get("bucket", "big").await.expect("get"), newer);
    let old_dirs = |c: &Cluster| -> usize {
        c.locals
            .iter()
            .map(|d| {
                std::fs::read_dir(d.root().join("bucket").join("big"))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(
        old_dirs(&c),
        8,
        "each drive holds its @meta and one data directory"
    );
    c.store
        .delete_object("bucket", "big")
        .await
        .expect("delete");
    let epochs = epochs_since(&after, &c);
    assert_eq!(
        epochs,
        [2, 2, 2, 2],
        "the metadata's removal, then the data's"
    );
    assert_eq!(old_dirs(&c), 0, "nothing of the key is left");
}

/// A key's first metadata on a drive, data inline and one block long, takes its name in the
/// same sync epoch as its content on a filesystem that orders data (tmpfs here): one epoch
/// per drive instead of two. Anything else keeps both.
#[tokio::test]
async fn a_first_inline_commit_waits_one_epoch_and_others_two() {
    use crate::drive::sync::SyncMode;
    if SyncMode::current() != SyncMode::Group {
        eprintln!("CAIRN_COMMIT_SYNC=fsync: commits wait for no epoch; nothing to count");
        return;
    }
    let c = Cluster::new_in(4, tempfile::tempdir_in("/dev/shm").expect("tmpfs")).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let small = bytes(1000, 3);
    let before = barriers_waited(&c);
    c.put("bucket", "k", &small).await.expect("first put");
    assert_eq!(epochs_since(&before, &c), [1, 1, 1, 1], "a new inline key");
    let before = barriers_waited(&c);
    c.put("bucket", "k", &bytes(900, 4))
        .await
        .expect("overwrite");
    assert_eq!(
        epochs_since(&before, &c),
        [2, 2, 2, 2],
        "an overwrite keeps the old version safe"
    );
    let before = barriers_waited(&c);
    c.put("bucket", "longer", &bytes(20_000, 6))
        .await
        .expect("longer");
    assert_eq!(
        epochs_since(&before, &c),
        [2, 2, 2, 2],
        "metadata of several blocks could land in part"
    );
    let before = barriers_waited(&c);
    c.put("bucket", "big", &bytes(2 * BLOCK, 5))
        .await
        .expect("big");
    assert!(
        epochs_since(&before, &c).iter().all(|&e| e >= 2),
        "shard files are durable before the metadata that points at them"
    );
    c.store.delete_object("bucket", "k").await.expect("delete");
    let before = barriers_waited(&c);
    c.put("bucket", "k", &small).await.expect("after delete");
    assert_eq!(
        epochs_since(&before, &c),
        [1, 1, 1, 1],
        "a deleted key is new again"
    );
    assert_eq!(c.get("bucket", "k").await.expect("get"), small);
    // A delete marker, even on a key no drive holds, and a key whose commit clears a
    // marker's flag (here an ancestor's) keep both: a flag must never outlive its marker,
    // nor hide a key below it.
    c.store.make_bucket("versioned").await.expect("bucket");
    enable_versioning(&c, "versioned", crate::bucket::Versioning::Enabled).await;
    let before = barriers_waited(&c);
    let d = c
        .store
        .delete_object("versioned", "m")
        .await
        .expect("marker");
    assert!(d.delete_marker);
    assert_eq!(epochs_since(&before, &c), [2, 2, 2, 2], "a delete marker");
    let before = barriers_waited(&c);
    c.put("versioned", "m/below", &small)
        .await
        .expect("below a marker");
    assert_eq!(
        epochs_since(&before, &c),
        [2, 2, 2, 2],
        "an ancestor's flag cleared"
    );
    let before = barriers_waited(&c);
    c.put("versioned", "n", &small)
        .await
        .expect("first version");
    assert_eq!(
        epochs_since(&before, &c),
        [1, 1, 1, 1],
        "a versioned key's first version"
    );
}

/// What a power loss inside a first commit's single epoch can leave of the metadata file —
/// its name without its content, which journaled filesystems show empty or zero-filled —
/// is no copy: the key reads as it was before (absent), lists as absent, can be written,
/// and does not keep its bucket from being removed; beside good copies it is a missing copy
/// that heal replaces.
#[tokio::test]
async fn metadata_a_power_loss_left_without_content_is_no_copy() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let meta_files = |c: &Cluster, i: usize| -> Vec<PathBuf> {
        files_under(&c.paths[i].join("bucket"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n == crate::drive::path::META_FILE)
            })
            .collect()
    };
    let unwritten = |c: &Cluster, drives: &[usize], empty: bool| {
        for &i in drives {
            let files = meta_files(c, i);
            assert_eq!(files.len(), 1, "one key in the bucket");
            let len = std::fs::metadata(&files[0]).expect("meta").len() as usize;
            let zeros = if empty { Vec::new() } else { vec![0u8; len] };
            std::fs::write(&files[0], zeros).expect("overwrite");
        }
    };
    async fn list(c: &Cluster) -> Vec<String> {
        let opts = ListOptions {
            max_keys: 100,
            ..Default::default()
        };
        let page = c.store.list_objects("bucket", &opts).await.expect("list");
        page.objects.into_iter().map(|o| o.key).collect()
    }
    // Every drive: empty on two, zero-filled on two.
    c.put("bucket", "k", &bytes(1000, 1)).await.expect("put");
    unwritten(&c, &[0, 1], true);
    unwritten(&c, &[2, 3], false);
    c.restart().await;
    assert!(matches!(
        c.get("bucket", "k").await,
        Err(ObjectError::NoSuchKey)
    ));
    assert!(matches!(
        c.store.head_object("bucket", "k").await,
        Err(ObjectError::NoSuchKey)
    ));
    assert!(list(&c).await.is_empty());
    let report = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await;
    assert!(report.is_ok(), "heal of a key with no copy: {report:?}");
    // The bucket counts as empty; a new write over the leftovers reads back.
    let again = bytes(700, 2);
    c.put("bucket", "k", &again)
        .await
        .expect("put over leftovers");
    assert_eq!(c.get("bucket", "k").await.expect("get"), again);
    assert_eq!(list(&c).await, ["k"]);
    // Beside two good copies (2+2: a read quorum), two left without content are missing
    // copies: the object reads, and heal writes them again.
    unwritten(&c, &[0, 3], false);
    c.restart().await;
    assert_eq!(
        c.get("bucket", "k").await.expect("read with two copies"),
        again
    );
    c.store
        .heal_object("bucket", "k", HealOptions::default())
        .await
        .expect("heal");
    for i in 0..4 {
        let files = meta_files(&c, i);
        let head = std::fs::read(&files[0]).expect("meta");
        assert!(!crate::meta::never_written(&head), "drive {i} healed");
    }
    // No drive holds the key now: a delete answers as for an absent key, and the bucket,
    // holding only leftovers, can go.
    unwritten(&c, &[0, 1, 2, 3], false);
    c.restart().await;
    c.store.delete_object("bucket", "k").await.expect("delete");
    c.store
        .delete_bucket("bucket")
        .await
        .expect("bucket with leftovers only is empty");
}

#[tokio::test]
async fn write_below_quorum_leaves_previous_version() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let old = bytes(BLOCK * 2, 5);
    c.put("bucket", "k", &old).await.expect("put");
    // 2+2 needs 3 drives for a write: fail two.
    *c.faults[0].lock() = Fault::FailWrites;
    *c.faults[1].lock() = Fault::TornWrites;
    let r = c.put("bucket", "k", &bytes(BLOCK * 3, 6)).await;
    assert!(matches!(r, Err(ObjectError::WriteQuorum { .. })), "{r:?}");
    *c.faults[0].lock() = Fault::None;
    *c.faults[1].lock() = Fault::None;
    assert_eq!(c.get("bucket", "k").await.expect("old still there"), old);
    // One torn drive is within quorum: the write lands and is queued for healing.
    *c.faults[2].lock() = Fault::TornWrites;
    let newer = bytes(BLOCK * 3, 7);
    c.put("bucket", "k", &newer)
        .await
        .expect("write with one torn drive");
    *c.faults[2].lock() = Fault::None;
    assert!(c.store.heal_queue.contains("bucket", "k"));
    assert_eq!(c.get("bucket", "k").await.expect("new"), newer);
}

/// Staging is removed where a commit did not take it, without a restart: a torn drive's
/// half-written shard goes, committed drives (whose staging became the object's data) and
/// inline writes (which stage nothing) are left alone, as is a write below quorum.
#[tokio::test]
async fn puts_leave_no_staging_behind() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let staged = |c: &Cluster| -> usize {
        c.paths
            .iter()
            .map(|p| {
                std::fs::read_dir(p.join(".cairn.sys/tmp"))
                    .expect("tmp")
                    .count()
            })
            .sum()
    };
    c.put("bucket", "small", &bytes(100, 1))
        .await
        .expect("inline");
    c.put("bucket", "big", &bytes(3 * BLOCK, 2))
        .await
        .expect("staged");
    assert_eq!(staged(&c), 0);
    *c.faults[2].lock() = Fault::TornWrites;
    let torn = bytes(3 * BLOCK + 7, 3);
    c.put("bucket", "big", &torn).await.expect("one torn drive");
    *c.faults[2].lock() = Fault::None;
    assert_eq!(staged(&c), 0, "the torn drive's staging was left behind");
    assert_eq!(c.get("bucket", "big").await.expect("get"), torn);
    *c.faults[0].lock() = Fault::TornWrites;
    *c.faults[1].lock() = Fault::TornWrites;
    let r = c.put("bucket", "big", &bytes(2 * BLOCK, 4)).await;
    assert!(matches!(r, Err(ObjectError::WriteQuorum { .. })), "{r:?}");
    *c.faults[0].lock() = Fault::None;
    *c.faults[1].lock() = Fault::None;
    assert_eq!(staged(&c), 0);
    assert_eq!(c.get("bucket", "big").await.expect("get"), torn);
}

/// A PUT asks no local drive anything before it streams its body: a drive known to be
/// offline (its last probe, its deadlines, a fault here) still raises the new object's
/// parity, and a bucket gone from most drives (removed on another node, say) is refused.
#[tokio::test]
async fn a_put_raises_parity_for_drives_known_offline() {
    let c = Cluster::new(10).await;
    assert_eq!((c.layout.set_size, c.parity()), (10, 4));
    c.store.make_bucket("bucket").await.expect("bucket");
    let parity_of = |c: &Cluster, key: &str, at: usize| -> u16 {
        let p = c.paths[at]
            .join("bucket")
            .join(key)
            .join(crate::drive::path::META_FILE);
        let meta =
            crate::meta::ObjectMeta::decode(&std::fs::read(p).expect("meta")).expect("decode");
        meta.latest().expect("version").erasure.parity
    };
    let set = c.set_drives("k");
    c.put("bucket", "k", &bytes(3 * BLOCK, 1))
        .await
        .expect("put");
    assert_eq!(parity_of(&c, "k", set[1]), 4);
    *c.faults[set[0]].lock() = Fault::Offline;
    let data = bytes(3 * BLOCK + 1, 2);
    c.put("bucket", "k", &data)
        .await
        .expect("put with a drive offline");
    assert_eq!(parity_of(&c, "k", set[1]), 5, "parity not raised");
    *c.faults[set[0]].lock() = Fault::None;
    assert_eq!(c.get("bucket", "k").await.expect("get"), data);
}

#[tokio::test]
async fn a_put_into_a_bucket_gone_from_the_drives_is_no_such_bucket() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    // Gone from three of four drives behind the bucket store's back.
    for p in c.paths.iter().take(3) {
        std::fs::remove_dir_all(p.join("bucket")).expect("remove");
    }
    for (key, len) in [("small", 100), ("big", 3 * BLOCK)] {
        let r = c.put("bucket", key, &bytes(len, 3)).await;
        assert!(matches!(r, Err(ObjectError::NoSuchBucket)), "{key}: {r:?}");
    }
    for p in &c.paths {
        let tmp = p.join(".cairn.sys/tmp");
        assert_eq!(std::fs::read_dir(tmp).expect("tmp").count(), 0);
    }
}

/// Rewrite the latest version's modification time in drive `i`'s metadata of `key`.
async fn set_latest_mod_time(c: &Cluster, i: usize, key: &str, mod_time: i64) {
    let d: &dyn crate::drive::Drive = c.locals[i].as_ref();
    let mut m = crate::meta::ObjectMeta::decode(&d.read_meta("bucket", key).await.expect("meta"))
        .expect("decode");
    m.versions[0].mod_time = mod_time;
    d.write_meta("bucket", key, Some(m.encode().into()), None)
        .await
        .expect("write");
}

/// The latest version's modification time in drive `i`'s metadata of `key`.
async fn latest_mod_time(c: &Cluster, i: usize, key: &str) -> i64 {
    let d: &dyn crate::drive::Drive = c.locals[i].as_ref();
    let m = crate::meta::ObjectMeta::decode(&d.read_meta("bucket", key).await.expect("meta"))
        .expect("decode");
    m.versions[0].mod_time
}

#[tokio::test]
async fn a_put_after_a_version_from_the_future_is_newer_on_every_drive() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let hour = 3_600_000_000_000i64;
    for (key, len) in [("small", 100), ("big", 3 * BLOCK)] {
        c.put("bucket", key, &bytes(len, 1)).await.expect("first");
        // A version written through a node whose clock ran an hour ahead, and on drive 0
        // (as if a heal were pending) two hours ahead.
        let ahead = now_nanos() + hour;
        for i in 0..4 {
            let t = if i == 0 { ahead + hour } else { ahead };
            set_latest_mod_time(&c, i, key, t).await;
        }
        let data = bytes(len, 2);
        c.put("bucket", key, &data).await.expect("second");
        // Every drive holds the new version at one time, past the newest before it:
        // otherwise the drives would not agree on it.
        for i in 0..4 {
            assert_eq!(
                latest_mod_time(&c, i, key).await,
                ahead + hour + 1,
                "{key} drive {i}"
            );
        }
        assert_eq!(c.get("bucket", key).await.expect("read"), data, "{key}");
    }
}

#[tokio::test]
async fn restart_with_drives_reordered_and_foreign_drive_refused() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(3 * BLOCK, 4);
    c.put("bucket", "k", &data).await.expect("put");
    c.paths.reverse();
    c.restart().await;
    assert_eq!(c.get("bucket", "k").await.expect("same data"), data);

    // A drive of another deployment is refused, naming it.
    let other = Cluster::new(4).await;
    let mut paths = c.paths.clone();
    paths[2] = other.paths[0].clone();
    let args: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let opts = OpenOptions {
        set_size: 4,
        parity: 2,
        pools: Vec::new(),
    };
    let err = open_local(&paths, &opts)
        .await
        .err()
        .expect("foreign drive refused");
    assert!(err.to_string().contains(&args[2]), "{err}");

    // A drive whose root vanished is offline: never created again, never formatted.
    let _ = std::fs::remove_dir_all(&c.paths[1]);
    c.restart().await;
    assert!(!c.paths[1].exists(), "a missing drive root was created");
    assert_eq!(c.get("bucket", "k").await.expect("still readable"), data);
    // An empty folder (no mount point) there is no replacement either, until the
    // operator says it is one.
    std::fs::create_dir(&c.paths[1]).expect("mkdir");
    c.restart().await;
    assert!(
        !c.paths[1].join(".cairn.sys").exists(),
        "an unproven drive was formatted"
    );
    let name = c.paths[1].display().to_string();
    c.store
        .replace_drive(&name)
        .await
        .expect("operator replace");
    assert!(c.paths[1].join(".cairn.sys/format.json").exists());
    assert!(c.paths[1].join(".cairn.sys/healing.json").exists());
    assert!(
        c.store.replace_drive(&name).await.is_err(),
        "replaced twice"
    );
    assert_eq!(c.get("bucket", "k").await.expect("still readable"), data);
}

#[tokio::test]
async fn path_like_keys_stay_inside_the_bucket() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let keys = [
        "../../escape",
        "..",
        ".",
        "/leading",
        "a//b",
        "trailing/",
        "@meta",
        "a/@meta",
        "%2E%2E",
        ".cairn.sys/format.json",
        "a/./b/../c",
    ];
    for (i, k) in keys.iter().enumerate() {
        let data = bytes(10 + i, i as u64);
        c.put("bucket", k, &data).await.expect("put path-like key");
        assert_eq!(&c.get("bucket", k).await.expect("get"), &data, "{k}");
    }
    // Nothing landed outside the bucket directory on any drive.
    for p in &c.paths {
        let mut top: Vec<String> = std::fs::read_dir(p)
            .expect("root")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert_eq!(top, [".cairn.sys", "bucket"]);
        assert!(!p.join(".cairn.sys/format.json").is_dir());
    }
    let listed = c
        .store
        .list_objects(
            "bucket",
            &ListOptions {
                max_keys: 100,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let mut want: Vec<&str> = keys.to_vec();
    want.sort();
    let got: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(got, want);
    assert!(matches!(
        c.put("bucket", &"k".repeat(1025), b"x").await,
        Err(ObjectError::KeyTooLong)
    ));
    assert!(matches!(
        c.put("bucket", "", b"x").await,
        Err(ObjectError::InvalidKey(_))
    ));
    assert!(matches!(
        c.put("../x", "k", b"x").await,
        Err(ObjectError::InvalidBucketName)
    ));
}

/// Listing against a `BTreeMap` model: prefixes, delimiters, markers and page sizes, across
/// several sets of 4 drives (keys spread) and in one set (every key's names in one walk).
#[tokio::test]
async fn listing_matches_a_model() {
    check_listing_against_model(16).await;
    check_listing_against_model(4).await;
}

async fn check_listing_against_model(drives: usize) {
    let tmp = tempfile::tempdir().expect("tmp");
    let paths: Vec<PathBuf> = (0..drives)
        .map(|i| tmp.path().join(format!("d{i}")))
        .collect();
    let opts = OpenOptions {
        set_size: 4,
        parity: 1,
        pools: Vec::new(),
    };
    let store = open_local(&paths, &opts)
        .await
        .expect("open")
        .with_block_size(BLOCK);
    assert_eq!(store.sets().len(), drives / 4);
    store.make_bucket("list").await.expect("bucket");
    let keys = [
        "a",
        "a-b",
        "a-c",
        "a.txt",
        "a/b",
        "a/b/c",
        "a/b/d",
        "a/c",
        "a0",
        "b/",
        "b/x",
        "c//d",
        "photos/2024/jan.jpg",
        "photos/2024/feb.jpg",
        "photos/2025/mar.jpg",
        "photos/index.html",
        "z",
        "zz/top",
        "é/ü",
    ];
    let mut model = BTreeMap::new();
    for k in keys {
        let mut body = k.as_bytes();
        store
            .put_object("list", k, &mut body, None, PutOptions::default())
            .await
            .expect("put");
        model.insert(k.to_string(), ());
    }
    // Drives of a set that disagree (one lost a key each): a listing is their union, and
    // batches of names that end at different names per drive merge correctly.
    for (j, k) in ["a-b", "a0", "a/c", "photos/2024/feb.jpg", "z"]
        .iter()
        .enumerate()
    {
        let holders: Vec<&PathBuf> = paths
            .iter()
            .filter(|p| p.join("list").join(k).is_dir())
            .collect();
        assert_eq!(holders.len(), 4, "{k}");
        std::fs::remove_dir_all(holders[j % 4].join("list").join(k)).expect("remove");
    }
    let list_all = |prefix: &'static str, delimiter: Option<&'static str>, page: usize| {
        let store = &store;
        async move {
            let mut items = Vec::new();
            let mut after = String::new();
            loop {
                let p = store
                    .list_objects(
                        "list",
                        &ListOptions {
                            prefix: prefix.into(),
                            delimiter: delimiter.map(String::from),
                            start_after: after.clone(),
                            max_keys: page,
                            every_key: false,
                            pool: None,
                        },
                    )
                    .await
                    .expect("list");
                assert!(
                    p.objects.windows(2).all(|w| w[0].key < w[1].key),
                    "page out of order: {:?}",
                    p.objects.iter().map(|o| &o.key).collect::<Vec<_>>()
                );
                items.extend(p.objects.iter().map(|o| o.key.clone()));
                items.extend(p.common_prefixes.iter().cloned());
                match p.next_marker {
                    Some(m) if p.truncated => after = m,
                    _ => break,
                }
            }
            items.sort();
            items
        }
    };
    let expect = |prefix: &str, delimiter: Option<&str>| {
        let mut out: Vec<String> = Vec::new();
        for k in model.keys().filter(|k| k.starts_with(prefix)) {
            let rest = &k[prefix.len()..];
            match delimiter.and_then(|d| rest.find(d).map(|i| (i, d))) {
                Some((i, d)) => {
                    let cp = k[..prefix.len() + i + d.len()].to_string();
                    if out.last() != Some(&cp) && !out.contains(&cp) {
                        out.push(cp);
                    }
                }
                None => out.push(k.clone()),
            }
        }
        out.sort();
        out
    };
    for (prefix, delimiter) in [
        ("", None),
        ("", Some("/")),
        ("a", Some("/")),
        ("a/", Some("/")),
        ("a/b", None),
        ("photos/", Some("/")),
        ("photos/2024/", Some("/")),
        ("c/", Some("/")),
        ("", Some("-")),
        ("nothing", None),
    ] {
        for page in [1, 2, 3, 1000] {
            assert_eq!(
                list_all(prefix, delimiter, page).await,
                expect(prefix, delimiter),
                "prefix {prefix:?} delimiter {delimiter:?} page {page}"
            );
        }
    }
    // Deleting leaves no empty common prefixes behind.
    store.delete_object("list", "zz/top").await.expect("delete");
    assert!(!list_all("", Some("/"), 100)
        .await
        .contains(&"zz/".to_string()));
}

#[tokio::test]
async fn buckets_and_deletes() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("one").await.expect("make");
    assert!(matches!(
        c.store.make_bucket("one").await,
        Err(ObjectError::BucketExists)
    ));
    assert!(matches!(
        c.store.make_bucket("Bad_Name").await,
        Err(ObjectError::InvalidBucketName)
    ));
    c.store.make_bucket("two").await.expect("make");
    for p in &c.paths {
        std::fs::create_dir(p.join("lost+found")).expect("a filesystem's own directory");
    }
    let names: Vec<String> = c
        .store
        .list_buckets()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["one", "two"]);
    c.put("one", "a/b", b"hello").await.expect("put");
    assert!(matches!(
        c.store.delete_bucket("one").await,
        Err(ObjectError::BucketNotEmpty)
    ));
    c.store.delete_object("one", "a/b").await.expect("delete");
    c.store
        .delete_object("one", "a/b")
        .await
        .expect("delete absent is fine");
    assert!(matches!(
        c.get("one", "a/b").await,
        Err(ObjectError::NoSuchKey)
    ));
    // The object's directories are gone from every drive.
    for p in &c.paths {
        assert!(!p.join("one/a").exists());
    }
    c.store.delete_bucket("one").await.expect("delete empty");
    assert!(matches!(
        c.store.delete_bucket("one").await,
        Err(ObjectError::NoSuchBucket)
    ));
    assert!(matches!(
        c.put("one", "k", b"x").await,
        Err(ObjectError::NoSuchBucket)
    ));
}

#[tokio::test]
async fn copy_streams_and_keeps_or_replaces_metadata() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("src").await.expect("bucket");
    c.store.make_bucket("dst").await.expect("bucket");
    let data = bytes(3 * BLOCK + 1, 8);
    let mut body = &data[..];
    let opts = PutOptions {
        headers: [("content-type".to_string(), "image/png".to_string())].into(),
        user_meta: [("color".to_string(), "red".to_string())].into(),
        ..Default::default()
    };
    c.store
        .put_object("src", "k", &mut body, None, opts)
        .await
        .expect("put");
    let info = c
        .store
        .copy_object(("src", "k", VersionRef::Latest), "dst", "k2", None, None)
        .await
        .expect("copy");
    assert_eq!(info.user_meta.get("color").map(String::as_str), Some("red"));
    assert_eq!(
        info.headers.get("content-type").map(String::as_str),
        Some("image/png")
    );
    assert_eq!(c.get("dst", "k2").await.expect("get"), data);
    // Copy onto itself with new metadata (the read lock is released before the commit).
    let replaced = PutOptions {
        user_meta: [("color".to_string(), "blue".to_string())].into(),
        ..Default::default()
    };
    let info = c
        .store
        .copy_object(
            ("src", "k", VersionRef::Latest),
            "src",
            "k",
            Some(replaced),
            None,
        )
        .await
        .expect("self copy");
    assert_eq!(
        info.user_meta.get("color").map(String::as_str),
        Some("blue")
    );
    assert_eq!(c.get("src", "k").await.expect("get"), data);
}

#[tokio::test]
async fn multipart_upload_lifecycle() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("mpu").await.expect("bucket");
    let id = c
        .store
        .create_multipart("mpu", "big", PutOptions::default())
        .await
        .expect("create");
    let parts: Vec<Vec<u8>> = vec![bytes(BLOCK + 100, 1), bytes(2 * BLOCK, 2), bytes(777, 3)];
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let mut body = &p[..];
        let up = c
            .store
            .put_part(
                "mpu",
                "big",
                &id,
                i as u32 + 1,
                &mut body,
                Some(p.len() as u64),
                PutOptions::default(),
            )
            .await
            .expect("part");
        assert_eq!(up.etag, md5_hex(p));
        etags.push((i as u32 + 1, up.etag));
    }
    // Re-uploading a part replaces it.
    let mut body = &parts[1][..];
    c.store
        .put_part("mpu", "big", &id, 2, &mut body, None, PutOptions::default())
        .await
        .expect("re-upload");
    let listing = c
        .store
        .list_parts("mpu", "big", &id, 0, 1000)
        .await
        .expect("list parts");
    assert_eq!(
        listing.parts.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let page = c
        .store
        .list_parts("mpu", "big", &id, 1, 1)
        .await
        .expect("page");
    assert_eq!(
        (page.parts.len(), page.truncated, page.next_marker),
        (1, true, Some(2))
    );
    let uploads = c.store.list_uploads("mpu", "").await.expect("uploads");
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].upload_id, id);

    // Validation.
    let bad_order = vec![etags[1].clone(), etags[0].clone()];
    assert!(matches!(
        c.store
            .complete_multipart("mpu", "big", &id, &bad_order, None)
            .await,
        Err(ObjectError::InvalidPartOrder)
    ));
    let wrong_etag = vec![(1, "0".repeat(32))];
    assert!(matches!(
        c.store
            .complete_multipart("mpu", "big", &id, &wrong_etag, None)
            .await,
        Err(ObjectError::InvalidPart(_))
    ));
    let missing = vec![etags[0].clone(), (9, "x".into())];
    assert!(matches!(
        c.store
            .complete_multipart("mpu", "big", &id, &missing, None)
            .await,
        Err(ObjectError::InvalidPart(_))
    ));
    let small_first = vec![etags[2].clone()];
    let _ = small_first;
    let too_small = vec![(3u32, etags[2].1.clone()), (4, "x".into())];
    assert!(c
        .store
        .complete_multipart("mpu", "big", &id, &too_small, None)
        .await
        .is_err());

    let info = c
        .store
        .complete_multipart("mpu", "big", &id, &etags, None)
        .await
        .expect("complete");
    let whole: Vec<u8> = parts.concat();
    let mut cat = Vec::new();
    for p in &parts {
        cat.extend(hex::decode(md5_hex(p)).expect("hex"));
    }
    assert_eq!(info.etag, format!("{}-3", md5_hex(&cat)));
    assert_eq!(c.get("mpu", "big").await.expect("get"), whole);
    // Ranges across part boundaries.
    let start = (BLOCK + 50) as u64;
    let got = c
        .get_range(
            "mpu",
            "big",
            Some(ByteRange {
                start,
                len: 2 * BLOCK as u64,
            }),
        )
        .await
        .expect("range");
    assert_eq!(got, &whole[start as usize..start as usize + 2 * BLOCK]);
    assert!(matches!(
        c.store.list_parts("mpu", "big", &id, 0, 10).await,
        Err(ObjectError::NoSuchUpload)
    ));
    assert!(c
        .store
        .list_uploads("mpu", "")
        .await
        .expect("uploads")
        .is_empty());

    // Abort, and ids that are not ours.
    let id2 = c
        .store
        .create_multipart("mpu", "other", PutOptions::default())
        .await
        .expect("create");
    c.store
        .abort_multipart("mpu", "other", &id2)
        .await
        .expect("abort");
    assert!(matches!(
        c.store.abort_multipart("mpu", "other", &id2).await,
        Err(ObjectError::NoSuchUpload)
    ));
    let mut body = &b"x"[..];
    assert!(matches!(
        c.store
            .put_part(
                "mpu",
                "other",
                "../../etc",
                1,
                &mut body,
                None,
                PutOptions::default()
            )
            .await,
        Err(ObjectError::NoSuchUpload)
    ));
    assert!(matches!(
        c.store.abort_multipart("mpu", "big", &id2).await,
        Err(ObjectError::NoSuchUpload)
    ));
}

#[tokio::test]
async fn small_part_before_the_last_is_refused() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("mpu").await.expect("bucket");
    let id = c
        .store
        .create_multipart("mpu", "k", PutOptions::default())
        .await
        .expect("create");
    let mut etags = Vec::new();
    for (n, len) in [(1u32, 100usize), (2, BLOCK)] {
        let p = bytes(len, n as u64);
        let mut body = &p[..];
        let up = c
            .store
            .put_part("mpu", "k", &id, n, &mut body, None, PutOptions::default())
            .await
            .expect("part");
        etags.push((n, up.etag));
    }
    assert!(matches!(
        c.store
            .complete_multipart("mpu", "k", &id, &etags, None)
            .await,
        Err(ObjectError::EntityTooSmall(1))
    ));
}

/// Take `parity` drives of the key's set other than `spare` offline and read the key back:
/// proves the remaining drives (including the healed ones) hold good shards.
async fn read_with_others_offline(c: &Cluster, key: &str, spare: &[usize], want: &[u8]) {
    let set = c.set_drives(key);
    let victims: Vec<usize> = set
        .iter()
        .copied()
        .filter(|i| !spare.contains(i))
        .take(c.parity())
        .collect();
    for &v in &victims {
        *c.faults[v].lock() = Fault::Offline;
    }
    let got = c.get("bucket", key).await;
    for &v in &victims {
        *c.faults[v].lock() = Fault::None;
    }
    assert_eq!(got.expect("read after heal"), want, "{key}");
}

#[tokio::test]
async fn heal_rebuilds_a_deleted_shard_file() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(3 * BLOCK + 11, 21);
    c.put("bucket", "k", &data).await.expect("put");
    let victim = c.set_drives("k")[1];
    let part = files_under(&c.paths[victim].join("bucket/k"))
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n == "part.1"))
        .expect("shard file");
    std::fs::remove_file(&part).expect("delete shard");
    let report = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await
        .expect("heal");
    assert_eq!(report.healed_drives, 1);
    assert!(report.complete());
    assert!(part.exists(), "shard file rebuilt");
    read_with_others_offline(&c, "k", &[victim], &data).await;
    // Healthy now: a second heal has nothing to do.
    let again = c
        .store
        .heal_object("bucket", "k", HealOptions::DEEP)
        .await
        .expect("heal");
    assert_eq!(again.healed_drives, 0);
}

#[tokio::test]
async fn deep_heal_repairs_bitrot_that_a_shallow_one_cannot_see() {
    let c = Cluster::new(6).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let mut objects = Vec::new();
    for i in 0..12 {
        let key = format!("rot/{i}");
        let data = bytes(if i % 3 == 0 { 500 } else { 2 * BLOCK + i * 100 }, i as u64);
        c.put("bucket", &key, &data).await.expect("put");
        // Flip one byte in the shard (or inline metadata) of `parity` drives.
        let set = c.set_drives(&key);
        let rotten: Vec<usize> = set.iter().copied().skip(i % 3).take(c.parity()).collect();
        for &d in &rotten {
            for f in files_under(&c.paths[d].join("bucket").join(&key)) {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name == "part.1" || (name == "@meta" && i % 3 == 0) {
                    let mut b = std::fs::read(&f).expect("read");
                    let at = b.len() / 2;
                    b[at] ^= 0x20;
                    std::fs::write(&f, b).expect("write");
                }
            }
        }
        objects.push((key, data, rotten));
    }
    for (key, data, rotten) in &objects {
        let report = c
            .store
            .heal_object("bucket", key, HealOptions::DEEP)
            .await
            .expect("deep heal");
        assert_eq!(report.healed_drives, rotten.len(), "{key}");
        read_with_others_offline(&c, key, rotten, data).await;
    }
}

#[tokio::test]
async fn heal_brings_a_replaced_drive_back() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let objects: Vec<(String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("obj{i}"),
                bytes(if i % 2 == 0 { 100 } else { BLOCK * 2 + 7 }, i as u64),
            )
        })
        .collect();
    for (k, d) in &objects {
        c.put("bucket", k, d).await.expect("put");
    }
    let id = c
        .store
        .create_multipart("bucket", "mp", PutOptions::default())
        .await
        .expect("mp");
    let parts = [bytes(BLOCK, 1), bytes(BLOCK / 2, 2)];
    let mut etags = Vec::new();
    for (n, p) in parts.iter().enumerate() {
        let mut body = &p[..];
        let up = c
            .store
            .put_part(
                "bucket",
                "mp",
                &id,
                n as u32 + 1,
                &mut body,
                None,
                PutOptions::default(),
            )
            .await
            .expect("part");
        etags.push((n as u32 + 1, up.etag));
    }
    c.store
        .complete_multipart("bucket", "mp", &id, &etags, None)
        .await
        .expect("complete");
    // Replace drive 2 with an empty one while "the server is down"; the operator says so.
    let _ = std::fs::remove_dir_all(&c.paths[2]);
    std::fs::create_dir(&c.paths[2]).expect("mkdir");
    c.restart().await;
    c.store
        .replace_drive(&c.paths[2].display().to_string())
        .await
        .expect("replace");
    assert!(c.paths[2].join(".cairn.sys/healing.json").exists());
    // The bucket must be recreated on it before objects can be healed onto it.
    c.store.heal_buckets().await.expect("heal buckets");
    for (k, _) in &objects {
        let r = c
            .store
            .heal_object("bucket", k, HealOptions::default())
            .await
            .expect("heal");
        assert!(r.complete());
    }
    c.store
        .heal_object("bucket", "mp", HealOptions::default())
        .await
        .expect("heal multipart");
    for (k, d) in &objects {
        read_with_others_offline(&c, k, &[2], d).await;
    }
    read_with_others_offline(&c, "mp", &[2], &parts.concat()).await;
}

#[tokio::test]
async fn heal_catches_up_a_drive_that_missed_writes() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    c.put("bucket", "k", &bytes(BLOCK * 2, 1))
        .await
        .expect("put");
    c.put("bucket", "gone", &bytes(10, 1)).await.expect("put");
    *c.faults[0].lock() = Fault::FailWrites;
    let newer = bytes(BLOCK * 3 + 5, 2);
    c.put("bucket", "k", &newer)
        .await
        .expect("write within quorum");
    c.store
        .delete_object("bucket", "gone")
        .await
        .expect("delete within quorum");
    c.put("bucket", "small", b"tiny")
        .await
        .expect("inline write");
    assert!(c.store.heal_queue.contains("bucket", "k"));
    // While the drive still refuses writes, heal reports it as not done.
    let r = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await
        .expect("heal");
    assert!(!r.complete() || r.healed_drives == 0);
    *c.faults[0].lock() = Fault::None;
    for key in ["k", "small"] {
        let r = c
            .store
            .heal_object("bucket", key, HealOptions::default())
            .await
            .expect("heal");
        assert_eq!((r.healed_drives, r.complete()), (1, true), "{key}");
    }
    // The delete that missed drive 0 leaves a copy no quorum backs: kept while younger than
    // the grace period (it could be a write still landing), removed after it.
    c.store.dangling_grace = std::time::Duration::from_secs(3600);
    let r = c
        .store
        .heal_object("bucket", "gone", HealOptions::default())
        .await
        .expect("heal");
    assert_eq!(r.dangling_removed, 0);
    assert!(c.paths[0].join("bucket/gone").exists());
    c.store.dangling_grace = std::time::Duration::ZERO;
    let r = c
        .store
        .heal_object("bucket", "gone", HealOptions::default())
        .await
        .expect("heal");
    assert_eq!(r.dangling_removed, 1);
    assert!(!c.paths[0].join("bucket/gone").exists());
    read_with_others_offline(&c, "k", &[0], &newer).await;
    read_with_others_offline(&c, "small", &[0], b"tiny").await;
}

/// A crash after the data directory moved in but before the metadata did leaves an orphan
/// data directory on each drive; heal removes it and keeps the committed version.
#[tokio::test]
async fn heal_sweeps_orphan_data_directories() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let old = bytes(2 * BLOCK, 1);
    c.put("bucket", "k", &old).await.expect("put");
    for d in &c.locals {
        d.crash_at(Some(crash::AFTER_DATA_RENAME));
    }
    let _ = c.put("bucket", "k", &bytes(3 * BLOCK, 2)).await;
    c.restart().await;
    let dirs = |c: &Cluster| {
        c.paths
            .iter()
            .map(|p| {
                std::fs::read_dir(p.join("bucket/k"))
                    .map(|rd| rd.flatten().filter(|e| e.path().is_dir()).count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    assert_eq!(
        dirs(&c),
        8,
        "old and orphaned data directories on each drive"
    );
    let r = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await
        .expect("heal");
    assert_eq!(r.orphans_removed, 4);
    assert_eq!(dirs(&c), 4);
    assert_eq!(c.get("bucket", "k").await.expect("old version"), old);
}

/// A page's entries read by several blocking calls at once (a drive whose reads wait for
/// the device) are the entries read one after another, in the keys' order: keys in several
/// directories, keys below others, a key with data directories, missing keys and a name no
/// file can hold, on every drive, before and after the drive kept their heads.
#[tokio::test]
async fn entries_read_in_several_calls_are_those_read_in_one() {
    use crate::drive::local::{entry_ways, ENTRY_WAYS};
    let c = Cluster::new(4).await;
    c.store.make_bucket("split").await.expect("bucket");
    let mut keys = Vec::new();
    for i in 0..150 {
        let key = match i % 5 {
            0 => format!("a/{i:03}"),
            1 => format!("b/c/{i:03}"),
            2 => format!("top-{i:03}"),
            3 => format!("a/{i:03}/below"),
            _ => format!("missing-{i:03}"),
        };
        if i % 5 != 4 {
            c.put("split", &key, &bytes(i, i as u64))
                .await
                .expect("put");
        }
        keys.push(key);
    }
    c.put("split", "a/000", &bytes(300 * 1024, 9))
        .await
        .expect("put");
    c.put("split", "a/003", b"x").await.expect("put");
    keys.push("a/003".into());
    keys.insert(40, "a/../..".into());
    keys.sort();
    assert_eq!(entry_ways(keys.len(), u64::MAX, 32), ENTRY_WAYS);
    let shown = |entries: Vec<crate::drive::Entry>| -> Vec<String> {
        entries
            .into_iter()
            .map(|e| format!("{:?} {} {:?}", e.meta, e.has_children, e.data_dirs))
            .collect()
    };
    for (i, d) in c.locals.iter().enumerate() {
        let mut answers = Vec::new();
        for (cold, metas) in [
            (true, true),
            (false, true),
            (true, true),
            (true, false),
            (false, false),
        ] {
            d.set_entry_sectors(if cold { u64::MAX } else { 0 });
            let calls = d.entry_calls();
            let entries = if metas {
                crate::drive::Drive::read_entry_heads(d.as_ref(), "split", &keys, true).await
            } else {
                crate::drive::Drive::read_entries(d.as_ref(), "split", &keys).await
            }
            .expect("entries");
            assert_eq!(entries.len(), keys.len(), "drive {i}");
            let want = if cold { ENTRY_WAYS as u64 } else { 1 };
            assert_eq!(d.entry_calls() - calls, want, "drive {i}: calls");
            answers.push((metas, shown(entries)));
        }
        let found = answers[0].1.iter().filter(|a| a.starts_with("Ok")).count();
        assert!(found >= 100, "drive {i}: {found} heads found");
        for (metas, a) in &answers[1..] {
            let want = if *metas { &answers[0].1 } else { &answers[4].1 };
            assert_eq!(a, want, "drive {i}");
        }
        // A bucket that is not there: an error from one call or from several.
        for sectors in [0, u64::MAX] {
            d.set_entry_sectors(sectors);
            let none = crate::drive::Drive::read_entry_heads(d.as_ref(), "nope", &keys, true).await;
            assert!(
                matches!(none, Err(crate::drive::DriveError::BucketNotFound)),
                "drive {i}"
            );
        }
    }
}

/// Listings served from the heads the drives keep ([`crate::drive::heads`]) follow every
/// change at once: overwrites (new size and ETag), keys made and removed below a key with
/// data directories, deletes, many times over in quick succession (changes within one tick
/// of a coarse clock must still show, so they are checked with stamps that cannot tell them
/// apart); and a metadata file replaced behind the drive's back
/// is read again.
#[tokio::test]
async fn listings_follow_changes_through_kept_heads() {
    let c = Cluster::new(4).await;
    // As on a clock too coarse to tell the changes apart: only the drives' bookkeeping of
    // their own changes keeps the listings right.
    c.locals.iter().for_each(|l| l.coarse_stamps(true));
    c.store.make_bucket("kept").await.expect("bucket");
    let list = |delimiter: Option<&'static str>| {
        let store = &c.store;
        async move {
            let p = store
                .list_objects(
                    "kept",
                    &ListOptions {
                        prefix: String::new(),
                        delimiter: delimiter.map(String::from),
                        start_after: String::new(),
                        max_keys: 1000,
                        every_key: false,
                        pool: None,
                    },
                )
                .await
                .expect("list");
            let mut out: Vec<String> = p
                .objects
                .iter()
                .map(|o| format!("{} {} {}", o.key, o.size, o.etag))
                .collect();
            out.extend(p.common_prefixes);
            out
        }
    };
    let line = |key: &str, body: &[u8]| format!("{key} {} {}", body.len(), md5_hex(body));
    let hits = || c.locals.iter().map(|l| l.head_hits()).sum::<u64>();
    // Above the inline limit: the key's directory holds a data directory, so whether keys
    // continue below it is asked of the directory (and kept), not told by its link count.
    let big = |i: usize| bytes(300 * 1024 + i, i as u64);
    let small = b"small".to_vec();
    c.put("kept", "p", &small).await.expect("put");
    for i in 0..24 {
        let body = big(i);
        c.put("kept", "k", &body).await.expect("put");
        // Twice: the second listing is served from what the first kept.
        for pass in 0..2 {
            let before = hits();
            assert_eq!(
                list(None).await,
                [line("k", &body), line("p", &small)],
                "round {i}"
            );
            // The second: both keys' heads from the drives read, and whether keys continue
            // below `k` (it has a data directory) from all four.
            let served = hits() - before;
            assert!(
                pass == 0 || served >= 4 + 2,
                "round {i}: {served} served as kept"
            );
        }
        let child = bytes(10 + i, 7);
        c.put("kept", "k/child", &child).await.expect("put");
        assert_eq!(
            list(None).await,
            [line("k", &body), line("k/child", &child), line("p", &small)],
            "round {i}"
        );
        assert_eq!(
            list(Some("/")).await,
            [line("k", &body), line("p", &small), "k/".to_string()],
            "round {i}"
        );
        c.store
            .delete_object("kept", "k/child")
            .await
            .expect("delete");
        for _ in 0..2 {
            assert_eq!(
                list(Some("/")).await,
                [line("k", &body), line("p", &small)],
                "round {i}"
            );
        }
        if i % 4 == 3 {
            c.store.delete_object("kept", "k").await.expect("delete");
            assert_eq!(list(None).await, [line("p", &small)], "round {i}");
        }
    }
    // Small objects (their data inline in the metadata): an overwrite changes only the
    // metadata file; a delete of a key with keys below leaves its directory in place.
    for i in 0..8 {
        let body = bytes(100 + i, i as u64);
        c.put("kept", "p", &body).await.expect("put");
        assert_eq!(list(None).await, [line("p", &body)], "round {i}");
        c.put("kept", "p/below", &small).await.expect("put");
        assert_eq!(
            list(None).await,
            [line("p", &body), line("p/below", &small)],
            "round {i}"
        );
        c.store.delete_object("kept", "p").await.expect("delete");
        assert_eq!(list(None).await, [line("p/below", &small)], "round {i}");
        c.store
            .delete_object("kept", "p/below")
            .await
            .expect("delete");
        assert!(list(None).await.is_empty(), "round {i}");
    }
    c.put("kept", "p", &small).await.expect("put");
    c.locals.iter().for_each(|l| l.coarse_stamps(false));
    // Behind the drive's back: every drive's metadata of `p` replaced (by rename, as a
    // restore would) with that of `q`, a different object; listings read it again.
    let other = b"other body".to_vec();
    c.put("kept", "q", &other).await.expect("put");
    assert_eq!(list(None).await.last(), Some(&line("q", &other)));
    let before = hits();
    assert_eq!(list(None).await.first(), Some(&line("p", &small)));
    assert!(hits() > before, "p's head served as kept");
    std::thread::sleep(std::time::Duration::from_millis(20));
    for p in &c.paths {
        let from = p.join("kept/q").join(crate::drive::path::META_FILE);
        let to = p.join("kept/p").join(crate::drive::path::META_FILE);
        let tmp = p.join("kept/p/restore.tmp");
        std::fs::copy(&from, &tmp).expect("copy");
        std::fs::rename(&tmp, &to).expect("rename");
    }
    let now = list(None).await;
    assert_eq!(
        now.first(),
        Some(&format!("p {} {}", other.len(), md5_hex(&other)))
    );
}

/// A directory large enough for the drives' sorted-name cache: pages are right while the
/// cache serves them, and the drives' own changes to the directory (new keys, deleted
/// ones) keep it in step without reading it again.
#[tokio::test]
async fn huge_directory_pages_stay_right_through_the_cache() {
    use crate::drive::listing::CACHED_DIR_MIN;
    let c = Cluster::new(4).await;
    c.store.make_bucket("huge").await.expect("bucket");
    for k in ["d/a", "d/m", "d/z"] {
        c.put("huge", k, k.as_bytes()).await.expect("put");
    }
    // Thousands of entries without metadata (what a listing reads past, like leftovers of
    // interrupted writes): names to sort and skip, no objects.
    for p in &c.paths {
        for i in 0..CACHED_DIR_MIN {
            std::fs::create_dir(p.join("huge/d").join(format!("e{i:05}"))).expect("mkdir");
        }
    }
    let list = |after: &'static str| {
        let store = &c.store;
        async move {
            let p = store
                .list_objects(
                    "huge",
                    &ListOptions {
                        prefix: "d/".into(),
                        delimiter: None,
                        start_after: after.into(),
                        max_keys: 2,
                        every_key: false,
                        pool: None,
                    },
                )
                .await
                .expect("list");
            p.objects.into_iter().map(|o| o.key).collect::<Vec<_>>()
        }
    };
    assert_eq!(list("").await, ["d/a", "d/m"]);
    let cached = |l: &LocalDrive| l.cached_names("huge", "d/").map(|n| n.len());
    // A drive call past its (short, test) deadline goes on in the background: wait for it.
    let eventually = |what: &str, ok: &dyn Fn() -> bool| {
        let t = std::time::Instant::now();
        while !ok() {
            assert!(t.elapsed().as_secs() < 20, "{what}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    eventually("read once, kept", &|| {
        c.locals
            .iter()
            .all(|l| cached(l) == Some(CACHED_DIR_MIN + 3))
    });
    for _ in 0..2 {
        assert_eq!(list("").await, ["d/a", "d/m"]);
        assert_eq!(list("d/a").await, ["d/m", "d/z"]);
        assert_eq!(list("d/m").await, ["d/z"]);
    }
    c.put("huge", "d/b", b"b").await.expect("put");
    c.store.delete_object("huge", "d/m").await.expect("delete");
    eventually("still cached, changed", &|| {
        c.locals.iter().all(|l| {
            l.cached_names("huge", "d/")
                .is_some_and(|n| n.contains(&"b".to_string()) && !n.contains(&"m".to_string()))
        })
    });
    assert_eq!(list("").await, ["d/a", "d/b"]);
    assert_eq!(list("d/b").await, ["d/z"]);
    // A change behind the drives' backs is a miss, read again, never stale names.
    for p in &c.paths {
        std::fs::create_dir(p.join("huge/d/e-new")).expect("mkdir");
    }
    assert!(c.locals.iter().all(|l| cached(l).is_none()));
    assert_eq!(list("d/b").await, ["d/z"]);
    eventually("read again", &|| {
        c.locals
            .iter()
            .all(|l| cached(l) == Some(CACHED_DIR_MIN + 4))
    });
}

#[tokio::test]
async fn a_hung_drive_does_not_hang_its_set() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let before = bytes(3 * BLOCK + 17, 1);
    c.put("bucket", "before", &before).await.expect("put");
    // One drive stops answering at all: every call on it waits forever.
    *c.faults[1].lock() = Fault::Latency(std::time::Duration::from_secs(86_400));
    let t = std::time::Instant::now();
    for i in 0..4u64 {
        let data = bytes(2 * BLOCK + i as usize, 10 + i);
        let key = format!("during-{i}");
        c.put("bucket", &key, &data).await.expect("put while hung");
        assert_eq!(c.get("bucket", &key).await.expect("get while hung"), data);
        assert_eq!(c.get("bucket", "before").await.expect("old"), before);
    }
    // The first calls wait out their deadline; then the drive is offline and skipped.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    c.put("bucket", "later", b"x").await.expect("put");
    assert!(
        t.elapsed() < std::time::Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    assert!(c.store.heal_queue.contains("bucket", "later"));
}

async fn put_if(
    c: &Cluster,
    key: &str,
    data: &[u8],
    condition: WriteCondition,
) -> ObjectResult<ObjectInfo> {
    let mut body = data;
    let opts = PutOptions {
        condition: Some(condition),
        ..Default::default()
    };
    c.store
        .put_object("cond", key, &mut body, Some(data.len() as u64), opts)
        .await
}

#[tokio::test]
async fn conditional_writes_create_only_or_replace_only_what_was_seen() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("cond").await.expect("bucket");
    let first = put_if(&c, "k", b"one", WriteCondition::Absent)
        .await
        .expect("create-if-absent of a new key");
    assert!(matches!(
        put_if(&c, "k", b"two", WriteCondition::Absent).await,
        Err(ObjectError::PreconditionFailed)
    ));
    assert!(matches!(
        put_if(&c, "k", b"two", WriteCondition::Match(vec!["0".repeat(32)])).await,
        Err(ObjectError::PreconditionFailed)
    ));
    assert!(matches!(
        put_if(&c, "nope", b"x", WriteCondition::Match(vec!["*".into()])).await,
        Err(ObjectError::NoSuchKey)
    ));
    put_if(
        &c,
        "k",
        b"two",
        WriteCondition::Match(vec![first.etag.clone()]),
    )
    .await
    .expect("replace what was seen");
    assert_eq!(c.get("cond", "k").await.expect("get"), b"two");
    // A multipart upload completes only if the condition holds at completion.
    let id = c
        .store
        .create_multipart("cond", "k", PutOptions::default())
        .await
        .expect("create");
    let mut body = &b"part"[..];
    let part = c
        .store
        .put_part("cond", "k", &id, 1, &mut body, None, PutOptions::default())
        .await
        .expect("part");
    let parts = [(1, part.etag)];
    assert!(matches!(
        c.store
            .complete_multipart("cond", "k", &id, &parts, Some(&WriteCondition::Absent))
            .await,
        Err(ObjectError::PreconditionFailed)
    ));
    // The refused completion left the upload whole: it completes now.
    c.store
        .complete_multipart("cond", "k", &id, &parts, None)
        .await
        .expect("complete after a refused completion");
    assert_eq!(c.get("cond", "k").await.expect("get"), b"part");
}

/// Many writers race `If-None-Match: *` on one key: exactly one wins, and the object holds
/// the winner's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_create_if_absent_has_exactly_one_winner() {
    let c = Arc::new(Cluster::new(4).await);
    c.store.make_bucket("cond").await.expect("bucket");
    for round in 0..5 {
        let key = format!("race{round}");
        let tasks: Vec<_> = (0..8u8)
            .map(|w| {
                let (c, key) = (c.clone(), key.clone());
                tokio::spawn(async move {
                    let data = vec![w; 1000 + w as usize];
                    put_if(&c, &key, &data, WriteCondition::Absent)
                        .await
                        .map(|_| data)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(data) => winners.push(data),
                Err(ObjectError::PreconditionFailed | ObjectError::ConditionalConflict) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        assert_eq!(c.get("cond", &key).await.expect("get"), winners[0]);
    }
}

/// A delete that reached some drives but not a write quorum fails, and leaves the key in
/// the heal queue so the drives that did delete are settled by quorum.
#[tokio::test]
async fn a_delete_short_of_quorum_is_queued_for_heal() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(BLOCK + 3, 9);
    c.put("bucket", "k", &data).await.expect("put");
    let set = c.set_drives("k");
    for &i in &set[..2] {
        *c.faults[i].lock() = Fault::FailWrites;
    }
    assert!(matches!(
        c.store.delete_object("bucket", "k").await,
        Err(ObjectError::WriteQuorum { .. })
    ));
    assert!(c.store.heal_queue.contains("bucket", "k"));
    for &i in &set[..2] {
        *c.faults[i].lock() = Fault::None;
    }
    // Two drives still hold it: a read quorum, so the delete did not happen.
    assert_eq!(c.get("bucket", "k").await.expect("still there"), data);
}

/// The set holding `key`, its drives wrapped anew to take faults of their own.
fn faulty_set(c: &Cluster, key: &str) -> (ErasureSet, Vec<Arc<Mutex<Fault>>>) {
    let (set, faults, _) = faulty_set_counted(c, key);
    (set, faults)
}

/// [`faulty_set`], with each drive's count of file writers that reached `finish`.
fn faulty_set_counted(c: &Cluster, key: &str) -> (ErasureSet, Vec<Arc<Mutex<Fault>>>, Finished) {
    let (mut faults, mut finished) = (Vec::new(), Vec::new());
    let drives: Vec<Option<Arc<dyn crate::drive::Drive>>> = c
        .set_drives(key)
        .into_iter()
        .map(|i| {
            let (d, f) = FaultyDrive::new(c.locals[i].clone());
            faults.push(f);
            finished.push(d.finished());
            Some(Arc::new(d) as Arc<dyn crate::drive::Drive>)
        })
        .collect();
    let set = ErasureSet {
        pool: 0,
        index: 0,
        drives,
        parity: c.parity(),
    };
    (set, faults, finished)
}

/// An upload whose body fails part way stops its shard writers: none of them goes on to
/// finish (and sync) a shard file that is about to be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_short_finishes_no_shard_file() {
    struct Gone;
    impl tokio::io::AsyncRead for Gone {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("the client went away")))
        }
    }
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (set, _, finished) = faulty_set_counted(&c, "k");
    let data = bytes(2 * BLOCK + 5, 1);
    let mut body = tokio::io::AsyncReadExt::chain(&data[..], Gone);
    let r = upload_shards(&c, &set, &mut body, None, "tmp/cut-short/part.1").await;
    assert!(r.is_err(), "a body that fails is no upload");
    no_shard_file_finishes(&finished, &[0; 4]).await;
}

/// `encode_stream` of `body` as key `bucket/k` on `set` (write quorum 3 of 4).
async fn upload_shards(
    c: &Cluster,
    set: &super::ErasureSet,
    body: super::put::Body<'_>,
    expected: Option<u64>,
    file: &str,
) -> ObjectResult<super::put::Encoded> {
    let erasure = cairn_erasure::Erasure::new(4 - c.parity(), c.parity(), BLOCK).expect("erasure");
    let dist = crate::placement::distribution("bucket", "k", 4);
    super::put::encode_stream(set, &dist, &erasure, body, expected, file, true, true, 3).await
}

/// After a failed upload or heal: writers left running would see their queues close and
/// finish their files in the next moments; none may (the counts stay at `before`).
async fn no_shard_file_finishes(finished: &Finished, before: &[usize]) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        finish_counts(finished),
        before,
        "shard files finished after the operation failed"
    );
}

/// An upload that loses its write quorum part way (two of four drives tear their writes)
/// fails without letting the two healthy drives finish (and sync) their shard files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_short_of_its_quorum_finishes_no_shard_file() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (set, faults, finished) = faulty_set_counted(&c, "k");
    for f in &faults[..2] {
        *f.lock() = Fault::TornWrites;
    }
    // Enough blocks that the torn writers' queues close while the upload still sends: a
    // writer fails on its first chunk, and the third send to it finds it gone.
    let data = bytes(4 * BLOCK + 5, 2);
    let mut body = &data[..];
    let size = Some(data.len() as u64);
    let r = upload_shards(&c, &set, &mut body, size, "tmp/short-of-quorum/part.1").await;
    assert!(
        matches!(r, Err(ObjectError::WriteQuorum { ok: 2, need: 3 })),
        "two drives of four are short of a quorum of three: {:?}",
        r.err()
    );
    no_shard_file_finishes(&finished, &[0; 4]).await;
}

/// A heal whose rebuild fails part way (its sources turn out rotten) stops its shard
/// writers: the drive being healed gets no shard file finished (and synced) only to be
/// deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_that_fails_finishes_no_shard_file() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(3 * BLOCK + 11, 23);
    c.put("bucket", "k", &data).await.expect("put");
    let drives = c.set_drives("k");
    let victim = drives[1];
    let part = files_under(&c.paths[victim].join("bucket/k"))
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n == "part.1"))
        .expect("shard file");
    std::fs::remove_file(&part).expect("delete shard");
    // Two of the three sources rot: one readable shard is short of the blocks' data shards.
    assert_eq!(c.parity(), 2, "EC 2+2");
    for &i in &[drives[0], drives[2]] {
        *c.faults[i].lock() = Fault::CorruptReads;
    }
    let before = finish_counts(&c.finished);
    let r = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await;
    assert!(
        matches!(r, Err(ObjectError::ReadQuorum { .. })),
        "a rebuild without enough good shards: {r:?}"
    );
    no_shard_file_finishes(&c.finished, &before).await;
    assert!(!part.exists(), "nothing committed");
}

/// A drive that takes forever to answer does not hold up a read's agreement once the others
/// decide it (here, without any deadline to fall back on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_agrees_without_waiting_for_a_stuck_drive() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let data = bytes(2 * BLOCK + 1, 3);
    c.put("bucket", "k", &data).await.expect("put");
    let (set, faults) = faulty_set(&c, "k");
    *faults[1].lock() = Fault::Latency(std::time::Duration::from_secs(3600));
    let limit = std::time::Duration::from_secs(10);
    let agreed = tokio::time::timeout(limit, quorum::agree_fast(&set, "bucket", "k"))
        .await
        .expect("agreement waited for the stuck drive")
        .expect("agreed");
    assert!(
        !agreed.degraded,
        "a drive that has not answered yet is no damage"
    );
    assert!(agreed.metas[1].is_none());
}

/// A version on a read quorum but short of a write quorum (here: 2 of 4 drives at EC 2+2,
/// where a write needs 3) may be a write still going, or one about to be rolled back: a
/// read does not serve it without the key's lock, which the writer holds to the end.
#[tokio::test]
async fn a_version_short_of_a_write_quorum_is_read_under_the_lock() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (old, new) = (bytes(BLOCK, 7), bytes(BLOCK, 8));
    c.put("bucket", "k", &old).await.expect("put");
    let set = c.set_drives("k");
    // Keep two drives' copy of the old version, write the new one, put the old copy back.
    let saved: Vec<(PathBuf, Vec<u8>)> = set[2..]
        .iter()
        .flat_map(|&d| files_under(&c.paths[d].join("bucket").join("k")))
        .map(|f| {
            let b = std::fs::read(&f).expect("read");
            (f, b)
        })
        .collect();
    c.put("bucket", "k", &new).await.expect("overwrite");
    for &d in &set[2..] {
        std::fs::remove_dir_all(c.paths[d].join("bucket").join("k")).expect("remove");
    }
    for (f, b) in &saved {
        std::fs::create_dir_all(f.parent().expect("parent")).expect("dirs");
        std::fs::write(f, b).expect("restore");
    }
    let writer = c
        .store
        .locker()
        .lock("bucket/k", true, std::time::Duration::from_secs(1))
        .await
        .expect("write lock");
    let read = c.get("bucket", "k");
    tokio::pin!(read);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut read)
            .await
            .is_err(),
        "served a version short of a write quorum without the lock"
    );
    // A HEAD (and every other metadata read) waits for the writer too.
    let head = c.store.head_object("bucket", "k");
    tokio::pin!(head);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), &mut head)
            .await
            .is_err(),
        "answered a HEAD from a version short of a write quorum without the lock"
    );
    drop(writer);
    assert_eq!(read.await.expect("read"), new);
    let info = head.await.expect("head");
    assert_eq!(info.size, new.len() as u64);
    assert_eq!(info.etag, md5_hex(&new));
}

/// A read asks a first wave of drives (here `parity + 1`, those with the data shards first):
/// one outside it is never asked, even when it would fail; a hung one inside it gets the
/// others asked instead of holding the read up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_asks_a_first_wave_and_the_others_only_when_it_must() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    c.put("bucket", "k", &bytes(BLOCK, 5)).await.expect("put");
    let (set, faults) = faulty_set(&c, "k");
    let first = quorum::first_readers(&set, "bucket", "k");
    assert_eq!(first.iter().filter(|f| **f).count(), c.parity() + 1);
    let order = crate::placement::distribution("bucket", "k", set.size());
    for (i, f) in first.iter().enumerate() {
        if usize::from(order[i]) <= set.size() - c.parity() {
            assert!(f, "drive {i} holds a data shard: asked first");
        }
    }
    let outside = first.iter().position(|f| !f).expect("one drive outside");
    let inside = first.iter().position(|f| *f).expect("drives inside");
    *faults[outside].lock() = Fault::Offline;
    let agreed = quorum::agree_fast(&set, "bucket", "k")
        .await
        .expect("agreed");
    assert!(
        !agreed.degraded,
        "the drive outside the first wave was not asked"
    );
    assert!(agreed.metas[outside].is_none());
    *faults[outside].lock() = Fault::None;
    *faults[inside].lock() = Fault::Latency(std::time::Duration::from_secs(3600));
    let agreed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        quorum::agree_fast(&set, "bucket", "k"),
    )
    .await
    .expect("a hung drive in the first wave held the read up")
    .expect("agreed");
    assert!(agreed.metas[outside].is_some(), "the others were asked");
    assert!(agreed.metas[inside].is_none());
    assert!(!agreed.degraded);
}

/// Bad shards on `parity` of the drives a read asks first (the data shards' drives): the
/// read asks the other drives for the version and reads their shards instead — a one-block
/// read without the lock and a streamed one alike.
#[tokio::test]
async fn bad_shards_in_the_first_wave_are_read_around_through_the_others() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    for (n, (key, size)) in [("one", BLOCK), ("many", 3 * BLOCK + 5)]
        .into_iter()
        .enumerate()
    {
        let data = bytes(size, 20 + n as u64);
        c.put("bucket", key, &data).await.expect("put");
        let set = c.set_drives(key);
        let order = crate::placement::distribution("bucket", key, set.len());
        let data_drives: Vec<usize> = (0..set.len())
            .filter(|&i| usize::from(order[i]) <= set.len() - c.parity())
            .collect();
        assert_eq!(data_drives.len(), c.parity(), "EC 2+2");
        for &i in &data_drives {
            *c.faults[set[i]].lock() = Fault::CorruptReads;
        }
        assert_eq!(c.get("bucket", key).await.expect("read around"), data);
        assert!(c.store.heal_queue.contains("bucket", key));
        for &i in &data_drives {
            *c.faults[set[i]].lock() = Fault::None;
        }
    }
}

async fn enable_versioning(c: &Cluster, bucket: &str, state: crate::bucket::Versioning) {
    c.store
        .buckets()
        .update(bucket, |b| {
            b.versioning = Some(state);
            Ok(())
        })
        .await
        .expect("versioning");
}

async fn get_version(c: &Cluster, key: &str, id: Option<uuid::Uuid>) -> ObjectResult<Vec<u8>> {
    let reader = c
        .store
        .get_version("bucket", key, VersionRef::Id(id), None)
        .await?;
    let chunks: Vec<bytes::Bytes> = reader.into_stream().try_collect().await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn versions_markers_and_the_null_version_follow_s3() {
    use crate::bucket::Versioning;
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    // Before versioning: the null version, replaced by each write.
    c.put("bucket", "k", b"null one").await.expect("put");
    enable_versioning(&c, "bucket", Versioning::Enabled).await;
    let v1 = c.put("bucket", "k", b"first").await.expect("put");
    let v2 = c
        .put("bucket", "k", &bytes(3 * BLOCK + 5, 7))
        .await
        .expect("put");
    let (id1, id2) = (v1.version_id.expect("id"), v2.version_id.expect("id"));
    assert!(id1 < id2, "ids are time-ordered");
    assert_eq!(
        c.get("bucket", "k").await.expect("latest"),
        bytes(3 * BLOCK + 5, 7)
    );
    assert_eq!(get_version(&c, "k", Some(id1)).await.expect("v1"), b"first");
    assert_eq!(get_version(&c, "k", None).await.expect("null"), b"null one");
    assert!(matches!(
        get_version(&c, "k", Some(uuid::Uuid::now_v7())).await,
        Err(ObjectError::NoSuchVersion)
    ));
    // DELETE without an id: a marker on top; reads say so; the versions stay.
    let d = c.store.delete_object("bucket", "k").await.expect("delete");
    assert!(d.delete_marker && d.version_id.is_some());
    assert!(matches!(
        c.get("bucket", "k").await,
        Err(ObjectError::DeleteMarker { by_id: false, .. })
    ));
    assert!(matches!(
        get_version(&c, "k", d.version_id).await,
        Err(ObjectError::DeleteMarker { by_id: true, .. })
    ));
    let listed = c
        .store
        .list_objects(
            "bucket",
            &ListOptions {
                max_keys: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert!(listed.objects.is_empty(), "a deleted key is not listed");
    let page = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                max_keys: 10,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("versions");
    let ids: Vec<(Option<uuid::Uuid>, bool, bool)> = page
        .versions
        .iter()
        .map(|(v, latest)| (v.version_id, v.delete_marker, *latest))
        .collect();
    assert_eq!(
        ids,
        [
            (d.version_id, true, true),
            (Some(id2), false, false),
            (Some(id1), false, false),
            (None, false, false)
        ]
    );
    // Pages of two, resumed inside the key.
    let first = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                max_keys: 2,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("page 1");
    assert!(first.truncated);
    assert_eq!(first.next_version_marker, Some(Some(id2)));
    let second = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                max_keys: 2,
                start_after: "k".into(),
                ..Default::default()
            },
            first.next_version_marker,
        )
        .await
        .expect("page 2");
    let rest: Vec<Option<uuid::Uuid>> = second.versions.iter().map(|(v, _)| v.version_id).collect();
    assert_eq!(rest, [Some(id1), None]);
    assert!(!second.truncated);
    // Removing the marker by id brings the object back; removing a version is for good.
    let gone = c
        .store
        .delete_version("bucket", "k", VersionRef::Id(d.version_id), false)
        .await
        .expect("remove marker");
    assert!(gone.delete_marker);
    assert_eq!(
        c.get("bucket", "k").await.expect("back"),
        bytes(3 * BLOCK + 5, 7)
    );
    c.store
        .delete_version("bucket", "k", VersionRef::Id(Some(id2)), false)
        .await
        .expect("remove v2");
    assert_eq!(c.get("bucket", "k").await.expect("v1 is latest"), b"first");
    // Suspended: writes replace the null version; a delete makes the null version a marker.
    enable_versioning(&c, "bucket", Versioning::Suspended).await;
    let s1 = c.put("bucket", "k", b"suspended").await.expect("put");
    assert_eq!(s1.version_id, None);
    assert_eq!(
        get_version(&c, "k", None).await.expect("null"),
        b"suspended"
    );
    let d = c.store.delete_object("bucket", "k").await.expect("delete");
    assert!(d.delete_marker && d.version_id.is_none());
    assert_eq!(
        get_version(&c, "k", Some(id1)).await.expect("v1 stays"),
        b"first"
    );
    // A prefix whose only key is deleted is a common prefix of the version listing, not of
    // the listing of latest versions.
    c.put("bucket", "dir/x", b"x").await.expect("put");
    c.store
        .delete_object("bucket", "dir/x")
        .await
        .expect("marker");
    let slash = ListOptions {
        max_keys: 10,
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let latest = c.store.list_objects("bucket", &slash).await.expect("list");
    assert!(
        latest.common_prefixes.is_empty(),
        "{:?}",
        latest.common_prefixes
    );
    let all = c
        .store
        .list_versions("bucket", &slash, None)
        .await
        .expect("versions");
    assert_eq!(all.common_prefixes, ["dir/"]);
    // A bucket holding only versions and markers is not empty.
    assert!(matches!(
        c.store.delete_bucket("bucket").await,
        Err(ObjectError::BucketNotEmpty)
    ));
}

#[tokio::test]
async fn heal_rebuilds_every_version_on_a_replaced_drive() {
    let mut c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    enable_versioning(&c, "bucket", crate::bucket::Versioning::Enabled).await;
    let mut versions = Vec::new();
    for i in 0..12u64 {
        let data = bytes(
            if i % 3 == 0 {
                2 * BLOCK + 9
            } else {
                100 + i as usize
            },
            i,
        );
        let info = c.put("bucket", "k", &data).await.expect("put");
        versions.push((info.version_id, data));
        if i == 5 {
            c.store.delete_object("bucket", "k").await.expect("marker");
        }
    }
    let victim = c.set_drives("k")[1];
    let _ = std::fs::remove_dir_all(&c.paths[victim]);
    std::fs::create_dir(&c.paths[victim]).expect("mkdir");
    c.restart().await;
    c.store
        .replace_drive(&c.paths[victim].display().to_string())
        .await
        .expect("replace");
    c.store.heal_buckets().await.expect("heal buckets");
    let r = c
        .store
        .heal_object("bucket", "k", HealOptions::default())
        .await
        .expect("heal");
    assert!(r.complete() && r.healed_drives == 1, "{r:?}");
    // Every version (and the marker) is back on the replaced drive: read each with parity
    // other drives offline.
    let others: Vec<usize> = c
        .set_drives("k")
        .into_iter()
        .filter(|d| *d != victim)
        .take(c.parity())
        .collect();
    for &o in &others {
        *c.faults[o].lock() = Fault::Offline;
    }
    for (id, data) in &versions {
        assert_eq!(&get_version(&c, "k", *id).await.expect("version"), data);
    }
    let page = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                max_keys: 100,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("versions");
    assert_eq!(page.versions.len(), versions.len() + 1);
    assert_eq!(
        page.versions
            .iter()
            .filter(|(v, _)| v.delete_marker)
            .count(),
        1
    );
    for &o in &others {
        *c.faults[o].lock() = Fault::None;
    }
    let again = c
        .store
        .heal_object("bucket", "k", HealOptions::DEEP)
        .await
        .expect("deep heal");
    assert_eq!(again.bad_drives, 0, "{again:?}");
}

#[tokio::test]
async fn a_lifecycle_expiry_acts_only_on_the_versions_it_decided_on() {
    use crate::bucket::Versioning;
    use crate::object::Expect;
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    enable_versioning(&c, "bucket", Versioning::Enabled).await;
    let old = c.put("bucket", "k", b"old").await.expect("put");
    // A write after the decision: expiring "the latest as it was" must not hide it.
    let new = c.put("bucket", "k", b"new").await.expect("put");
    let stale = Expect::Latest {
        version_id: old.version_id,
        mod_time: old.mod_time,
    };
    assert!(matches!(
        c.store.expire_version("bucket", "k", stale).await,
        Err(ObjectError::PreconditionFailed)
    ));
    assert_eq!(c.get("bucket", "k").await.expect("still there"), b"new");
    // The latest as it is: a delete marker goes on top.
    let fresh = Expect::Latest {
        version_id: new.version_id,
        mod_time: new.mod_time,
    };
    let d = c
        .store
        .expire_version("bucket", "k", fresh)
        .await
        .expect("expire");
    assert!(d.delete_marker);
    // A noncurrent version goes by id; the current one (the marker) is not noncurrent.
    assert!(matches!(
        c.store
            .expire_version(
                "bucket",
                "k",
                Expect::Noncurrent {
                    version_id: d.version_id
                }
            )
            .await,
        Err(ObjectError::PreconditionFailed)
    ));
    for v in [old.version_id, new.version_id] {
        c.store
            .expire_version("bucket", "k", Expect::Noncurrent { version_id: v })
            .await
            .expect("noncurrent removed");
    }
    // Now the marker is alone: it may go, but only as the only version.
    let marker = Expect::OnlyMarker {
        version_id: d.version_id,
    };
    c.put("bucket", "k", b"again").await.expect("put");
    assert!(matches!(
        c.store.expire_version("bucket", "k", marker).await,
        Err(ObjectError::PreconditionFailed)
    ));
    let page = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                max_keys: 10,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("list");
    assert_eq!(page.versions.len(), 2, "the new version and the marker");
}

/// Keys whose latest version is a delete marker are flagged beside their directory on each
/// drive, and listings of latest versions skip them unread; every commit that makes a flag
/// untrue clears it first.
#[tokio::test]
async fn delete_marker_flags_follow_the_latest_version_and_listings_skip_them() {
    use crate::bucket::Versioning;
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    enable_versioning(&c, "bucket", Versioning::Enabled).await;
    for k in ["a", "b", "c", "d", "d/x", "e"] {
        c.put("bucket", k, k.as_bytes()).await.expect("put");
    }
    for k in ["a", "c", "d"] {
        c.store.delete_object("bucket", k).await.expect("delete");
    }
    let flag = |name: &str| -> usize {
        c.paths
            .iter()
            .filter(|p| p.join("bucket").join(format!("@dm.{name}")).exists())
            .count()
    };
    let listed = |prefix: &str| {
        let c = &c;
        let prefix = prefix.to_string();
        async move {
            let page = c
                .store
                .list_objects(
                    "bucket",
                    &ListOptions {
                        prefix,
                        max_keys: 100,
                        ..Default::default()
                    },
                )
                .await
                .expect("list");
            page.objects
                .into_iter()
                .map(|o| o.key)
                .collect::<Vec<String>>()
        }
    };
    assert_eq!(flag("a"), 4);
    assert_eq!(flag("c"), 4);
    // "d" has a key below it: no flag, and "d/x" is still listed.
    assert_eq!(flag("d"), 0);
    assert_eq!(flag("b"), 0);
    assert_eq!(listed("").await, ["b", "d/x", "e"]);
    // Flags are read from the drives' listings: with them removed the answer is the same.
    for p in &c.paths {
        let _ = std::fs::remove_file(p.join("bucket/@dm.a"));
    }
    assert_eq!(listed("").await, ["b", "d/x", "e"]);
    // A new version over the marker clears the flag before it commits.
    c.put("bucket", "c", b"again").await.expect("put");
    assert_eq!(flag("c"), 0);
    assert_eq!(listed("").await, ["b", "c", "d/x", "e"]);
    // A key created below a flagged marker clears that flag.
    c.store.delete_object("bucket", "e").await.expect("delete");
    assert_eq!(flag("e"), 4);
    c.put("bucket", "e/y", b"below").await.expect("put");
    assert_eq!(flag("e"), 0);
    assert_eq!(listed("").await, ["b", "c", "d/x", "e/y"]);
    // Removing the marker by id makes the older version latest again: flag cleared.
    c.store.delete_object("bucket", "b").await.expect("delete");
    assert_eq!(flag("b"), 4);
    let versions = c
        .store
        .list_versions(
            "bucket",
            &ListOptions {
                prefix: "b".into(),
                max_keys: 10,
                ..Default::default()
            },
            None,
        )
        .await
        .expect("versions");
    let marker = versions.versions[0].0.version_id;
    assert!(versions.versions[0].0.delete_marker);
    c.store
        .delete_version("bucket", "b", VersionRef::Id(marker), false)
        .await
        .expect("delete marker");
    assert_eq!(flag("b"), 0);
    assert_eq!(listed("").await, ["b", "c", "d/x", "e/y"]);
    // A flag on fewer drives than a read quorum is not enough to skip a key.
    for p in c.paths.iter().take(1) {
        std::fs::write(p.join("bucket/@dm.b"), b"").expect("stray flag");
    }
    assert_eq!(listed("").await, ["b", "c", "d/x", "e/y"]);
}

/// Listings of latest versions read the heads of a read quorum of drives first; a stale or
/// missing copy on any of them sends the key to the other drives too, so a listing shows
/// what a GET reads — whichever drives hold the stale copy or the quorum.
#[tokio::test]
async fn listings_read_a_quorum_first_and_the_others_when_it_disagrees() {
    let c = Cluster::new(4).await;
    c.store.make_bucket("bkt").await.expect("bucket");
    let meta_of = |d: usize, key: &str| c.paths[d].join("bkt").join(key).join("@meta");
    // A stale copy of the latest version on each drive in turn.
    for d in 0..4 {
        let key = format!("stale{d}");
        c.put("bkt", &key, &bytes(10, 1)).await.expect("v1");
        let old = std::fs::read(meta_of(d, &key)).expect("old meta");
        c.put("bkt", &key, &bytes(20, 2)).await.expect("v2");
        std::fs::write(meta_of(d, &key), old).expect("stale meta");
    }
    // A key on exactly a read quorum (2 of 4 drives), for every pair of drives.
    let mut pairs = Vec::new();
    for i in 0..4 {
        for j in i + 1..4 {
            let key = format!("pair{i}{j}");
            c.put("bkt", &key, &bytes(30, 3)).await.expect("put");
            for d in (0..4).filter(|d| *d != i && *d != j) {
                std::fs::remove_dir_all(c.paths[d].join("bkt").join(&key)).expect("remove");
            }
            pairs.push(key);
        }
    }
    // A newer version on exactly a read quorum and the older one on the others (a write
    // cut short by a crash): a GET reads the newer one, so must a listing — whichever
    // drives it asks first.
    let mut newer = Vec::new();
    for i in 0..4 {
        for j in i + 1..4 {
            let key = format!("newer{i}{j}");
            c.put("bkt", &key, &bytes(40, 4)).await.expect("v1");
            let old: Vec<Vec<u8>> = (0..4)
                .map(|d| std::fs::read(meta_of(d, &key)).expect("old meta"))
                .collect();
            c.put("bkt", &key, &bytes(50, 5)).await.expect("v2");
            for d in (0..4).filter(|d| *d != i && *d != j) {
                std::fs::write(meta_of(d, &key), &old[d]).expect("older meta");
            }
            newer.push(key);
        }
    }
    // A key below another on exactly a read quorum, for every pair of drives: whether keys
    // continue below is asked of the drives a listing reads heads from, and whichever
    // those are, one of them holds it.
    let mut below = Vec::new();
    for i in 0..4 {
        for j in i + 1..4 {
            let (up, key) = (format!("up{i}{j}"), format!("up{i}{j}/below"));
            c.put("bkt", &up, &bytes(60, 6)).await.expect("put");
            c.put("bkt", &key, &bytes(70, 7)).await.expect("put");
            for d in (0..4).filter(|d| *d != i && *d != j) {
                std::fs::remove_dir_all(c.paths[d].join("bkt").join(&up).join("below"))
                    .expect("remove");
            }
            below.push((up, key));
        }
    }
    let page = c
        .store
        .list_objects(
            "bkt",
            &ListOptions {
                max_keys: 100,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let listed: BTreeMap<&str, u64> = page
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.size))
        .collect();
    for d in 0..4 {
        assert_eq!(
            listed.get(format!("stale{d}").as_str()),
            Some(&20),
            "stale{d}"
        );
    }
    for key in &pairs {
        assert_eq!(listed.get(key.as_str()), Some(&30), "{key}");
        assert_eq!(c.get("bkt", key).await.expect("get"), bytes(30, 3), "{key}");
    }
    for key in &newer {
        assert_eq!(c.get("bkt", key).await.expect("get"), bytes(50, 5), "{key}");
        assert_eq!(listed.get(key.as_str()), Some(&50), "{key}");
    }
    for (up, key) in &below {
        assert_eq!(listed.get(up.as_str()), Some(&60), "{up}");
        assert_eq!(listed.get(key.as_str()), Some(&70), "{key}");
        assert_eq!(c.get("bkt", key).await.expect("get"), bytes(70, 7), "{key}");
    }
    assert_eq!(
        listed.len(),
        4 + pairs.len() + newer.len() + 2 * below.len()
    );
}

/// A delete short of its write quorum changes nothing: no delete marker left standing on
/// the drives that took it (a read quorum of them would make it the latest), no version
/// taken out, no data removed.
#[tokio::test]
async fn a_delete_below_quorum_leaves_the_key_as_it_was() {
    use crate::bucket::Versioning;
    let c = Cluster::new(4).await;
    c.store.make_bucket("plain").await.expect("bucket");
    c.store.make_bucket("bucket").await.expect("bucket");
    enable_versioning(&c, "bucket", Versioning::Enabled).await;
    let (small, big) = (bytes(100, 1), bytes(2 * BLOCK + 3, 2));
    c.put("bucket", "k", &small).await.expect("put");
    c.put("plain", "big", &big).await.expect("put");
    let v = c.put("bucket", "v", &big).await.expect("put");
    // 2+2 needs 3 drives for a write: fail two.
    *c.faults[0].lock() = Fault::FailWrites;
    *c.faults[1].lock() = Fault::FailWrites;
    for (bucket, key, which) in [
        ("bucket", "k", VersionRef::Latest),
        ("plain", "big", VersionRef::Latest),
        ("bucket", "v", VersionRef::Id(v.version_id)),
    ] {
        let r = c.store.delete_version(bucket, key, which, false).await;
        assert!(
            matches!(r, Err(ObjectError::WriteQuorum { .. })),
            "{key}: {r:?}"
        );
    }
    *c.faults[0].lock() = Fault::None;
    *c.faults[1].lock() = Fault::None;
    assert_eq!(
        c.get("bucket", "k").await.expect("no marker in front"),
        small
    );
    assert_eq!(c.get("plain", "big").await.expect("still there"), big);
    assert_eq!(
        get_version(&c, "v", v.version_id)
            .await
            .expect("version kept"),
        big
    );
    // Every drive still has it whole: reads with either pair of drives gone.
    for pair in [[0, 1], [2, 3]] {
        for d in pair {
            *c.faults[d].lock() = Fault::Offline;
        }
        assert_eq!(c.get("plain", "big").await.expect("read"), big, "{pair:?}");
        for d in pair {
            *c.faults[d].lock() = Fault::None;
        }
    }
}

/// A body that answers reads `step` bytes at a time, as a client's packets do.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl tokio::io::AsyncRead for Dribble<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.step.min(self.data.len()).min(buf.remaining());
        let (now, rest) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = rest;
        std::task::Poll::Ready(Ok(()))
    }
}

/// Blocks larger than a read buffer's piece (1 MiB blocks, read 128 KiB at a time and
/// hashed as they come, in reads of odd sizes) stage exactly the frames of their shards, and
/// the ETag is the MD5 of the whole body: with the length declared (files made while the
/// first block arrives) and without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_read_in_pieces_stage_their_shards_and_hash_the_whole_body() {
    use md5::Digest;
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (set, _, _) = faulty_set_counted(&c, "k");
    let block = 1 << 20;
    let erasure = cairn_erasure::Erasure::new(2, 2, block).expect("erasure");
    let dist = crate::placement::distribution("bucket", "k", 4);
    let data = bytes(2 * block + 3 * 1000 + 77, 41);
    for (declared, file) in [(true, "tmp/pieces-declared"), (false, "tmp/pieces-unknown")] {
        let part = format!("{file}/part.1");
        let mut body = Dribble {
            data: &data,
            step: 1000,
        };
        let expected = declared.then_some(data.len() as u64);
        let enc = super::put::encode_stream(
            &set, &dist, &erasure, &mut body, expected, &part, true, true, 3,
        )
        .await
        .expect("upload");
        assert_eq!(enc.size, data.len() as u64);
        assert_eq!(enc.md5, <[u8; 16]>::from(md5::Md5::digest(&data)), "ETag");
        assert!(matches!(enc.shards, super::put::Shards::Staged(ref ok) if ok.iter().all(|o| *o)));
        let mut want = vec![Vec::new(); 4];
        for b in data.chunks(block) {
            for (s, shard) in erasure.encode_block(b).expect("encode").iter().enumerate() {
                want[s].extend_from_slice(&cairn_erasure::bitrot::frame(shard));
            }
        }
        for (i, &drive) in c.set_drives("k").iter().enumerate() {
            let staged = std::fs::read(c.paths[drive].join(".cairn.sys").join(&part))
                .expect("staged shard file");
            let shard = usize::from(dist[i]) - 1;
            assert!(
                staged == want[shard],
                "drive {i}: shard {shard}, declared {declared}"
            );
        }
    }
}

/// A body whose declared length rules out inline shards has its shard files made while its
/// first block is still arriving; one that may fit inline makes none (and is inline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_files_are_made_while_the_first_block_arrives_unless_it_may_be_inline() {
    use tokio::io::AsyncWriteExt;
    let c = Cluster::new(4).await;
    c.store.make_bucket("bucket").await.expect("bucket");
    let (set, _, _) = faulty_set_counted(&c, "k");
    let drives = c.set_drives("k");
    let staged_on = |part: &str| {
        drives
            .iter()
            .filter(|&&d| c.paths[d].join(".cairn.sys").join(part).exists())
            .count()
    };
    for (len, part) in [
        (3 * BLOCK + 5, "tmp/early/part.1"),
        (100, "tmp/small/part.1"),
    ] {
        let data = bytes(len, 43);
        let (mut client, mut body) = tokio::io::duplex(4096);
        let upload = upload_shards(&c, &set, &mut body, Some(len as u64), part);
        let send = async {
            client.write_all(&data[..10]).await.expect("send");
            // The first bytes are in; the rest waits until the files are seen (or, where
            // none should come, a while).
            let mut seen = 0;
            for _ in 0..if len > BLOCK { 250 } else { 15 } {
                seen = staged_on(part);
                if seen == 4 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            client.write_all(&data[10..]).await.expect("send");
            drop(client);
            seen
        };
        let (enc, seen) = tokio::join!(upload, send);
        let enc = enc.expect("upload");
        if len > BLOCK {
            assert_eq!(
                seen, 4,
                "every drive's shard file made before the body ended"
            );
            assert!(matches!(enc.shards, super::put::Shards::Staged(_)));
        } else {
            assert_eq!(seen, 0, "no file for a body that may be inline");
            assert!(matches!(enc.shards, super::put::Shards::Inline(_)));
        }
    }
}
