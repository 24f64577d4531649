//! Production safety with real processes, real mounts and real clients: drives that vanish
//! must never be written to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use cairn_integration::{admin, client, wait_until, Server, Tmpfs};

fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| {
            (j as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(i as u32 % 31) as u8
        })
        .collect()
}

async fn put_all(c: &Client, bucket: &str, from: usize, n: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in from..from + n {
        // Small objects are inlined in metadata, larger ones have shard files.
        let data = body(i, if i % 2 == 0 { 3000 } else { 300_000 });
        let key = format!("obj-{i:03}");
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        out.push((key, data));
    }
    out
}

async fn read_all(c: &Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    for (key, want) in objects {
        let got = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        assert!(got[..] == want[..], "{key} differs");
    }
}

/// Everything under `dir`, for a message.
fn contents(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn drive_line(info: &str, drive: &Path) -> String {
    let d = drive.display().to_string();
    info.lines()
        .find(|l| l.trim_end().ends_with(&d) || l.contains(&format!("{d} ")))
        .unwrap_or("")
        .to_string()
}

/// 4 drives on 4 tmpfs mounts; one is unmounted (`umount -l`) under the running server: it
/// goes offline within the monitor interval, nothing is written under the bare mount point,
/// reads and writes go on; a restart with it still unmounted keeps it offline; a fresh empty
/// tmpfs mounted there is formatted and healed.
#[tokio::test]
async fn an_unmounted_drive_is_offline_never_written_and_a_fresh_disk_is_healed() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths: Vec<PathBuf> = (1..=4)
        .map(|i| dir.path().join(format!("disk{i}")))
        .collect();
    let mut mounts: Vec<Tmpfs> = paths
        .iter()
        .map(|p| {
            std::fs::create_dir(p).expect("mount point");
            Tmpfs::mount(p, 256)
        })
        .collect();
    let env = [
        ("CAIRN_DRIVE_CHECK_INTERVAL", "1s"),
        ("CAIRN_HEAL_SPEED", "fast"),
    ];
    let s = Server::start_on(&paths, &env);
    let c = client(&s);
    c.create_bucket()
        .bucket("keep")
        .send()
        .await
        .expect("bucket");
    let mut objects = put_all(&c, "keep", 0, 12).await;

    // The disk of drive 2 goes away while running.
    mounts[1].unmount();
    let bare = &paths[1];
    wait_until("drive 2 to go offline", Duration::from_secs(10), || {
        let (_, info) = admin(&s.endpoint, &["info"]);
        drive_line(&info, bare).contains("offline") && info.contains("(not mounted)")
    });
    read_all(&c, "keep", &objects).await;
    objects.extend(put_all(&c, "keep", 12, 6).await);
    read_all(&c, "keep", &objects).await;
    assert!(
        contents(bare).is_empty(),
        "written under the bare mount point: {:?}",
        contents(bare)
    );
    drop(s);

    // Restart with the disk still missing: same.
    let s = Server::start_on(&paths, &env);
    let c = client(&s);
    let (code, info) = admin(&s.endpoint, &["info"]);
    assert_eq!(code, 0, "{info}");
    assert!(
        drive_line(&info, bare).contains("offline") && info.contains("(not mounted)"),
        "{info}"
    );
    read_all(&c, "keep", &objects).await;
    objects.extend(put_all(&c, "keep", 18, 4).await);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        contents(bare).is_empty(),
        "written under the bare mount point after a restart: {:?}",
        contents(bare)
    );
    // The operator cannot mistake it for a replacement either: it is not mounted.
    let (code, out) = admin(
        &s.endpoint,
        &["drive", "replace", &bare.display().to_string()],
    );
    assert_ne!(code, 0, "{out}");
    assert!(contents(bare).is_empty());

    // A fresh, empty disk mounted there is a replacement: formatted and healed.
    mounts[1] = Tmpfs::mount(bare, 256);
    let format = bare.join(".cairn.sys/format.json");
    wait_until(
        "the fresh disk to be formatted",
        Duration::from_secs(15),
        || format.exists(),
    );
    let format_text = std::fs::read_to_string(&format).expect("format");
    assert!(
        format_text.contains("\"mount_point\": true"),
        "{format_text}"
    );
    let tracker = bare.join(".cairn.sys/healing.json");
    wait_until(
        "the fresh disk to be healed",
        Duration::from_secs(60),
        || !tracker.exists(),
    );
    let (_, info) = admin(&s.endpoint, &["info"]);
    assert!(info.contains("4/4 drives online"), "{info}");
    // Every object is whole on the healed disk: read with two other disks gone.
    for m in [0, 2] {
        mounts[m].unmount();
    }
    wait_until("two disks to go offline", Duration::from_secs(10), || {
        admin(&s.endpoint, &["info"])
            .1
            .contains("2/4 drives online")
    });
    read_all(&c, "keep", &objects).await;
    drop(s);
}

/// One disk's I/O really hangs (its filesystem frozen: every write blocks in the kernel):
/// PUTs and GETs of other objects go on within a few seconds each, the drive shows offline
/// ("timing out"), and it comes back once the disk answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_drive_does_not_hang_the_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths: Vec<PathBuf> = (1..=4)
        .map(|i| dir.path().join(format!("disk{i}")))
        .collect();
    for p in &paths {
        std::fs::create_dir(p).expect("dir");
    }
    let disk = cairn_integration::LoopDisk::mount(&paths[3], 128);
    let s = Server::start_on(&paths, &[("CAIRN_DRIVE_CHECK_INTERVAL", "1s")]);
    let c = client(&s);
    c.create_bucket()
        .bucket("hang")
        .send()
        .await
        .expect("bucket");
    let before = put_all(&c, "hang", 0, 4).await;
    let thaw = disk.freeze();
    let mut slowest = Duration::ZERO;
    let mut during = Vec::new();
    for i in 0..8 {
        let t = std::time::Instant::now();
        during.extend(put_all(&c, "hang", 100 + i, 1).await);
        read_all(&c, "hang", &before).await;
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(5),
        "slowest PUT+GET round {slowest:?}"
    );
    let (_, info) = admin(&s.endpoint, &["info"]);
    assert!(
        drive_line(&info, &paths[3]).contains("offline"),
        "the hung drive is not shown offline: {info}"
    );
    drop(thaw);
    wait_until(
        "the thawed drive to come back",
        Duration::from_secs(15),
        || {
            admin(&s.endpoint, &["info"])
                .1
                .contains("4/4 drives online")
        },
    );
    read_all(&c, "hang", &during).await;
    drop(s);
}

/// Slow-loris: 500 connections trickle a request head one byte at a time. Other clients
/// are served promptly all along (p99 < 1 s), the trickling connections are closed once the
/// header timeout passes, an oversized head is refused with 431, and a body that stalls
/// fails after the body idle timeout instead of holding its connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_hostile_clients_do_not_starve_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(
        4,
        &[
            ("CAIRN_HTTP_HEADER_TIMEOUT", "3s"),
            ("CAIRN_HTTP_BODY_IDLE_TIMEOUT", "2s"),
        ],
    );
    let addr = format!("127.0.0.1:{}", s.port);
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move {
            let mut conn = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            conn.write_all(b"GET /loris HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("start");
            let mut buf = [0u8; 256];
            // Until the server closes the connection (or 20 s pass).
            for _ in 0..100 {
                tokio::select! {
                    r = conn.read(&mut buf) => {
                        if matches!(r, Ok(0) | Err(_)) {
                            return Some(std::time::Instant::now());
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if conn.write_all(b"x").await.is_err() {
                            return Some(std::time::Instant::now());
                        }
                    }
                }
            }
            None
        }));
    }
    let c = client(&s);
    c.create_bucket()
        .bucket("busy")
        .send()
        .await
        .expect("bucket");
    let mut lat = Vec::new();
    for i in 0..40 {
        let t = std::time::Instant::now();
        let key = format!("k{i}");
        c.put_object()
            .bucket("busy")
            .key(&key)
            .body(ByteStream::from(vec![i as u8; 1000]))
            .send()
            .await
            .expect("put");
        c.get_object()
            .bucket("busy")
            .key(&key)
            .send()
            .await
            .expect("get");
        lat.push(t.elapsed());
    }
    lat.sort();
    let p99 = lat[lat.len() * 99 / 100 - 1];
    assert!(
        p99 < Duration::from_secs(1),
        "p99 {p99:?} with 500 slow clients"
    );
    let mut closed = 0;
    for h in slow {
        if let Some(at) = h.await.expect("slow client") {
            assert!(at.duration_since(started) < Duration::from_secs(12));
            closed += 1;
        }
    }
    assert!(
        closed >= 495,
        "only {closed} of 500 slow connections were closed"
    );

    // A head past the limit: 431.
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let big = format!(
        "GET /busy HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = conn.write_all(big.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply:.200}");

    // A body that stops half way: the request fails within the idle timeout.
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(
        b"PUT /busy/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789",
    )
    .await
    .expect("send");
    let t = std::time::Instant::now();
    let mut reply = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut reply)).await;
    assert!(r.is_ok(), "a stalled body held its connection for 10 s");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
}

/// Past its memory budget for request buffers (`CAIRN_MAX_MEMORY`) the server makes data
/// requests wait `CAIRN_MAX_MEMORY_WAIT`, then answers them `503 SlowDown`; requests that
/// stream no object data are served meanwhile, and data requests again once the buffers
/// holding the budget are freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_memory_budget_data_requests_slow_down_until_buffers_free() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start_with(
        4,
        &[
            ("CAIRN_MAX_MEMORY", "4MiB"),
            ("CAIRN_MAX_MEMORY_WAIT", "300ms"),
        ],
    );
    let c = cairn_integration::client_for(
        &s.endpoint,
        cairn_integration::ACCESS_KEY,
        cairn_integration::SECRET_KEY,
        false,
    );
    c.create_bucket()
        .bucket("mem")
        .send()
        .await
        .expect("bucket");
    let big = body(1, 32 << 20);
    c.put_object()
        .bucket("mem")
        .key("big")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .expect("put");

    // Two GETs whose bodies nobody reads hold 2 MiB each: the whole budget.
    let host = format!("127.0.0.1:{}", s.port);
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let q = cairn::auth::presign_query(
            "GET",
            "/mem/big",
            "",
            &host,
            cairn_integration::ACCESS_KEY,
            cairn_integration::SECRET_KEY,
            "us-east-1",
            std::time::SystemTime::now(),
            600,
        );
        let mut conn = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        conn.write_all(format!("GET /mem/big?{q} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut status = [0u8; 12];
        conn.read_exact(&mut status).await.expect("status line");
        assert_eq!(&status, b"HTTP/1.1 200", "a stalled GET was not started");
        stalled.push(conn);
    }

    // Data requests wait, then slow down.
    let t = std::time::Instant::now();
    let e = c
        .get_object()
        .bucket("mem")
        .key("big")
        .send()
        .await
        .expect_err("a GET past the budget");
    assert_eq!(e.code(), Some("SlowDown"), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(250), "did not wait");
    let e = c
        .put_object()
        .bucket("mem")
        .key("small")
        .body(ByteStream::from(vec![7u8; 4096]))
        .send()
        .await
        .expect_err("a PUT past the budget");
    assert_eq!(e.code(), Some("SlowDown"), "{e:?}");

    // Requests that stream no object data are served.
    c.head_object()
        .bucket("mem")
        .key("big")
        .send()
        .await
        .expect("head");
    let listed = c
        .list_objects_v2()
        .bucket("mem")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(1));

    // The stalled GETs' buffers go with their connections.
    drop(stalled);
    let mut got = None;
    for _ in 0..50 {
        if let Ok(o) = c.get_object().bucket("mem").key("big").send().await {
            got = Some(o.body.collect().await.expect("body").into_bytes());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        got.is_some_and(|b| b.as_ref() == big.as_slice()),
        "GET not served again after the budget was freed"
    );
    c.put_object()
        .bucket("mem")
        .key("small")
        .body(ByteStream::from(vec![7u8; 4096]))
        .send()
        .await
        .expect("put after the budget was freed");
}

/// Drives that fill up: writes past the space answer `507 XMinioStorageFull` (which SDKs do
/// not retry, as they would a 503), every write acknowledged before reads back whole, and
/// once objects are deleted writes are taken again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_drives_refuse_writes_with_507_keep_what_was_acknowledged_and_recover() {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let dir = tempfile::tempdir().expect("tempdir");
    let paths: Vec<PathBuf> = (1..=4).map(|i| dir.path().join(format!("d{i}"))).collect();
    let _mounts: Vec<Tmpfs> = paths
        .iter()
        .map(|p| {
            std::fs::create_dir(p).expect("mount point");
            Tmpfs::mount(p, 16)
        })
        .collect();
    let s = Server::start_on(&paths, &[]);
    let c = cairn_integration::client_for(
        &s.endpoint,
        cairn_integration::ACCESS_KEY,
        cairn_integration::SECRET_KEY,
        false,
    );
    c.create_bucket()
        .bucket("fill")
        .send()
        .await
        .expect("bucket");
    let mut kept = Vec::new();
    let mut refused = None;
    // EC 2+2 over 4 x 16 MiB: ~32 objects of 1 MiB fit (512 KiB of shards per drive each).
    for i in 0..80 {
        let data = body(i, 1 << 20);
        let key = format!("obj-{i:03}");
        match c
            .put_object()
            .bucket("fill")
            .key(&key)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
        {
            Ok(_) => kept.push((key, data)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("80 MiB of objects fit on 4 x 16 MiB at EC 2+2");
    assert!(kept.len() >= 10, "only {} objects fit", kept.len());
    let status = e.raw_response().map(|r| r.status().as_u16());
    assert_eq!(status, Some(507), "{e:?}");
    assert_eq!(e.code(), Some("XMinioStorageFull"), "{e:?}");
    // An object of several blocks is refused the same way (its writers stop mid-way).
    let e = c
        .put_object()
        .bucket("fill")
        .key("multi-block")
        .body(ByteStream::from(body(2, 4 << 20)))
        .send()
        .await
        .expect_err("4 MiB on full drives");
    assert_eq!(e.code(), Some("XMinioStorageFull"), "{e:?}");
    // Small objects (inlined in metadata) are refused the same way once nothing fits.
    let small = c
        .put_object()
        .bucket("fill")
        .key("small")
        .body(ByteStream::from(body(1, 3000)))
        .send()
        .await;
    if let Err(e) = &small {
        assert_eq!(e.code(), Some("XMinioStorageFull"), "{e:?}");
    }
    read_all(&c, "fill", &kept).await;
    // Refused writes leave nothing staged behind (each retry would add to it).
    for p in &paths {
        let staged = contents(&p.join(".cairn.sys/tmp"));
        assert!(staged.is_empty(), "left in staging: {staged:?}");
    }
    // The refused object is nowhere.
    let listed = c
        .list_objects_v2()
        .bucket("fill")
        .send()
        .await
        .expect("list");
    let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let refused_key = format!("obj-{:03}", kept.len());
    assert!(!names.contains(&refused_key.as_str()), "{names:?}");

    // Room again: writes are taken, without a restart.
    for (key, _) in kept.drain(..8) {
        c.delete_object()
            .bucket("fill")
            .key(&key)
            .send()
            .await
            .expect("delete");
    }
    let data = body(99, 1 << 20);
    c.put_object()
        .bucket("fill")
        .key("after")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("a write once space is back");
    kept.push(("after".to_string(), data));
    read_all(&c, "fill", &kept).await;
}
