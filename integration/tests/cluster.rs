//! Distributed mode with real processes: several `cairn` nodes on loopback, each with its
//! own port and drive folders, all started with the same endpoint list.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use cairn_integration::{binary, Cluster, ACCESS_KEY, SECRET_KEY};

/// `cairn admin info` through `endpoint`: its standard output.
fn admin_info(endpoint: &str) -> String {
    let out = std::process::Command::new(binary())
        .args(["admin", "info", "--endpoint", endpoint])
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("cairn admin info");
    assert!(out.status.success(), "admin info failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client of one node; no retries, so every failure is seen.
fn client(endpoint: &str) -> Client {
    cairn_integration::client_for(endpoint, ACCESS_KEY, SECRET_KEY, false)
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).rotate_left(seed % 31) as u8)
        .collect()
}

async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{}: {}",
                e.code().unwrap_or("no code"),
                e.message().unwrap_or("")
            )
        })
}

async fn get(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(out
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .into_bytes()
        .to_vec())
}

async fn list(c: &Client, bucket: &str) -> Vec<String> {
    cairn_integration::list_keys(c, bucket, 7).await
}

/// Every object reads back byte-exact through `c`.
async fn read_all(c: &Client, bucket: &str, objects: &[(String, Vec<u8>)], through: &str) {
    for (k, want) in objects {
        let got = get(c, bucket, k)
            .await
            .unwrap_or_else(|e| panic!("GET {k} through {through}: {e}"));
        assert!(got == *want, "{k} through {through}: wrong bytes");
    }
}

fn contains_name(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name().to_string_lossy().contains(name)
                || (e.path().is_dir() && contains_name(&e.path(), name))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_survive_node_loss_and_heal_on_return() {
    let mut cl = Cluster::start(4, 2, &[]);
    let c: Vec<Client> = (0..4).map(|i| client(&cl.endpoint(i))).collect();
    c[0].create_bucket()
        .bucket("dist")
        .send()
        .await
        .expect("create bucket");
    for (i, ci) in c.iter().enumerate() {
        ci.head_bucket()
            .bucket("dist")
            .send()
            .await
            .unwrap_or_else(|e| panic!("bucket not visible through node {i}: {e:?}"));
    }

    // Read-after-write: each object written through one node is read through the next.
    let sizes = [0usize, 1000, 200_000, 3 << 20];
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for n in 0..12 {
        let key = format!("a/{n}");
        let body = data(sizes[n % sizes.len()], n as u32);
        put(&c[n % 4], "dist", &key, &body).await.expect("put");
        let got = get(&c[(n + 1) % 4], "dist", &key)
            .await
            .expect("read after write through another node");
        assert!(got == body, "{key}: wrong bytes through another node");
        objects.push((key, body));
    }
    // A multipart upload whose parts go through different nodes, completed through a third.
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| data(if i < 2 { 5 << 20 } else { 1234 }, 100 + i))
        .collect();
    let up = c[1]
        .create_multipart_upload()
        .bucket("dist")
        .key("a/multi")
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    let mut done = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let r = c[i % 4]
            .upload_part()
            .bucket("dist")
            .key("a/multi")
            .upload_id(id)
            .part_number(i as i32 + 1)
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .expect("upload part");
        done.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(r.e_tag().expect("etag"))
                .build(),
        );
    }
    c[3].complete_multipart_upload()
        .bucket("dist")
        .key("a/multi")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .expect("complete through a third node");
    objects.push(("a/multi".into(), parts.concat()));
    // List-after-write through every node; a delete through one is seen by all.
    put(&c[2], "dist", "a/gone", b"x").await.expect("put");
    c[3].delete_object()
        .bucket("dist")
        .key("a/gone")
        .send()
        .await
        .expect("delete");
    let mut want: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    want.sort();
    for (i, ci) in c.iter().enumerate() {
        assert_eq!(list(ci, "dist").await, want, "listing through node {i}");
        assert!(get(ci, "dist", "a/gone").await.is_err());
    }

    let info = admin_info(&cl.endpoint(0));
    assert!(info.contains("8/8 drives online"), "{info}");
    for p in &cl.ports {
        assert!(
            info.contains(&format!("online   127.0.0.1:{p}  2/2 drives online")),
            "{info}"
        );
    }

    // Health for a rolling restart (`?maintenance=true`): with every node up, any one may
    // go down; with one down, taking another would lose write quorum (412, as MinIO).
    let node0 = cl.endpoint(0);
    let probe = |path: &str| -> u16 {
        match ureq::get(&format!("{node0}{path}")).call() {
            Ok(r) => r.status().as_u16(),
            Err(ureq::Error::StatusCode(code)) => code,
            Err(e) => panic!("{path}: {e}"),
        }
    };
    assert_eq!(probe("/minio/health/cluster?maintenance=true"), 200);
    assert_eq!(probe("/minio/health/cluster/read"), 200);

    // One node killed: reads and writes keep working through the others.
    cl.kill(3);
    assert_eq!(probe("/minio/health/cluster"), 200);
    assert_eq!(probe("/minio/health/cluster?maintenance=true"), 412);
    read_all(&c[1], "dist", &objects, "node 1 with node 3 down").await;
    let info = admin_info(&cl.endpoint(1));
    assert!(info.contains("6/8 drives online"), "{info}");
    assert!(
        info.contains(&format!(
            "offline  127.0.0.1:{}  0/2 drives online",
            cl.ports[3]
        )),
        "{info}"
    );
    let mut while_down: Vec<(String, Vec<u8>)> = Vec::new();
    for n in 0..6 {
        let key = format!("b/{n}");
        let body = data(sizes[n % sizes.len()] + 17, 1000 + n as u32);
        put(&c[n % 3], "dist", &key, &body)
            .await
            .expect("put with one node down");
        while_down.push((key, body));
    }

    // Two killed: every object still reads; writes fail with 503 and leave nothing behind.
    cl.kill(2);
    read_all(&c[0], "dist", &objects, "node 0 with two nodes down").await;
    read_all(&c[1], "dist", &while_down, "node 1 with two nodes down").await;
    let err = c[0]
        .put_object()
        .bucket("dist")
        .key("c/refused-write")
        .body(ByteStream::from(data(300_000, 7)))
        .send()
        .await
        .expect_err("a write without quorum must fail");
    assert_eq!(err.code(), Some("ServiceUnavailable"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert!(get(&c[1], "dist", "c/refused-write").await.is_err());
    for node in 0..4 {
        for d in 0..2 {
            assert!(
                !contains_name(&cl.drive(node, d), "refused-write"),
                "a failed write left files on node {node} drive {d}"
            );
        }
    }
    let health = ureq::get(&format!("{}/minio/health/cluster", cl.endpoint(0))).call();
    assert!(
        matches!(health, Err(ureq::Error::StatusCode(503))),
        "cluster health without write quorum: {health:?}"
    );
    // Reads still have their quorum (4 of 8 drives for EC 4+4).
    assert_eq!(probe("/minio/health/cluster/read"), 200);

    // The killed nodes come back: what was written while they were down is healed onto
    // them without any command.
    cl.spawn(2);
    cl.spawn(3);
    cl.wait_ready(2);
    cl.wait_ready(3);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing: Vec<String> = while_down
            .iter()
            .flat_map(|(k, _)| (2..4).map(move |n| (k.clone(), n)))
            .flat_map(|(k, n)| (0..2).map(move |d| (k.clone(), n, d)))
            .filter(|(k, n, d)| !cl.drive(*n, *d).join("dist").join(k).join("@meta").exists())
            .map(|(k, n, d)| format!("{k}@n{n}d{d}"))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healed onto the returned nodes: {missing:?}\nnode 0 log:\n{}",
            cl.log(0)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Proof that all shards are back: stop two *other* nodes, read everything through the
    // survivors.
    cl.kill(0);
    cl.kill(1);
    objects.extend(while_down);
    read_all(&c[2], "dist", &objects, "node 2 with nodes 0 and 1 down").await;
    read_all(&c[3], "dist", &objects, "node 3 with nodes 0 and 1 down").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_keep_reading_while_either_restarts() {
    let mut cl = Cluster::start(2, 2, &[]);
    let c: Vec<Client> = (0..2).map(|i| client(&cl.endpoint(i))).collect();
    c[1].create_bucket()
        .bucket("pair")
        .send()
        .await
        .expect("create bucket");
    let objects: Vec<(String, Vec<u8>)> = (0..6)
        .map(|n| (format!("k{n}"), data(50_000 * n + 10, n as u32)))
        .collect();
    for (i, (k, v)) in objects.iter().enumerate() {
        put(&c[i % 2], "pair", k, v).await.expect("put");
    }
    for down in 0..2 {
        let up = 1 - down;
        cl.kill(down);
        read_all(&c[up], "pair", &objects, "the surviving node").await;
        assert_eq!(list(&c[up], "pair").await.len(), objects.len());
        cl.spawn(down);
        cl.wait_ready(down);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_endpoint_list_is_refused() {
    let mut cl = Cluster::start(2, 2, &[]);
    cl.kill(1);
    // Node 1 comes back with one drive fewer in its list.
    let mut args = cl.args();
    args.pop();
    cl.spawn_with(1, args, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = cl.exited(1) {
            break s;
        }
        assert!(Instant::now() < deadline, "misconfigured node kept running");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let log = cl.log(1);
    assert!(
        log.contains("refused by its peers") && log.contains(&format!("127.0.0.1:{}", cl.ports[0])),
        "the error names the refusing node and why:\n{log}"
    );
    assert!(
        cl.log(0).contains("does not belong to this cluster"),
        "the healthy node logs the refusal"
    );
    // The healthy node still serves reads alone.
    let c0 = client(&cl.endpoint(0));
    c0.list_buckets().send().await.expect("list buckets");
}

/// A rolling restart of every node under a continuous mixed load: no acknowledged write is
/// lost, and requests fail only when sent to the node being restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_restart_under_load_loses_nothing() {
    let mut cl = Cluster::start(4, 2, &[]);
    let endpoints: Vec<String> = (0..4).map(|i| cl.endpoint(i)).collect();
    let clients: Arc<Vec<Client>> = Arc::new(endpoints.iter().map(|e| client(e)).collect());
    clients[0]
        .create_bucket()
        .bucket("roll")
        .send()
        .await
        .expect("create bucket");
    let acked: Arc<Mutex<Vec<(String, u32, usize)>>> = Arc::default();
    let down: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(usize::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let bad: Arc<Mutex<Vec<String>>> = Arc::default();
    let ops = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (clients, acked, down, stop, bad, ops) = (
            clients.clone(),
            acked.clone(),
            down.clone(),
            stop.clone(),
            bad.clone(),
            ops.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let node = (w + i) % 4;
                // Sizes from 1 KiB to 8 MiB, mostly small.
                let size = match i % 5 {
                    0 => 8 << 20,
                    1 => 1 << 20,
                    _ => 1024 * (1 + (i * 37 % 200)),
                };
                let seed = (w * 1_000_000 + i) as u32;
                let key = format!("w{w}/{i}");
                let was_down = down.load(Ordering::SeqCst);
                let r = put(&clients[node], "roll", &key, &data(size, seed)).await;
                let now_down = down.load(Ordering::SeqCst);
                match r {
                    Ok(()) => acked.lock().expect("lock").push((key, seed, size)),
                    Err(e) if node == was_down || node == now_down => {
                        let _ = e;
                    }
                    Err(e) => bad
                        .lock()
                        .expect("lock")
                        .push(format!("PUT {key} via {node}: {e}")),
                }
                // Read back a random earlier acknowledged object.
                let pick = acked.lock().expect("lock").get(i * 7919 % (i + 1)).cloned();
                if let Some((k, s, n)) = pick {
                    let node = (node + 1) % 4;
                    let was_down = down.load(Ordering::SeqCst);
                    let r = get(&clients[node], "roll", &k).await;
                    let now_down = down.load(Ordering::SeqCst);
                    match r {
                        Ok(b) if b == data(n, s) => {}
                        Ok(_) => bad
                            .lock()
                            .expect("lock")
                            .push(format!("GET {k}: wrong bytes")),
                        Err(_) if node == was_down || node == now_down => {}
                        Err(e) => bad
                            .lock()
                            .expect("lock")
                            .push(format!("GET {k} via {node}: {e}")),
                    }
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in 0..4 {
        down.store(node, Ordering::SeqCst);
        let status = tokio::task::block_in_place(|| cl.stop(node));
        assert!(status.success(), "node {node} exit status {status}");
        cl.spawn(node);
        tokio::task::block_in_place(|| cl.wait_ready(node));
        // Peers notice the node is back within their probe backoff.
        tokio::time::sleep(Duration::from_secs(2)).await;
        down.store(usize::MAX, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let bad = bad.lock().expect("lock").clone();
    assert!(bad.is_empty(), "requests to running nodes failed: {bad:#?}");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 40,
        "too little load: {} acknowledged writes",
        acked.len()
    );
    for (k, s, n) in &acked {
        let got = get(&clients[0], "roll", k)
            .await
            .unwrap_or_else(|e| panic!("acknowledged {k} lost: {e}"));
        assert!(got == data(*n, *s), "acknowledged {k}: wrong bytes");
    }
    eprintln!(
        "rolling restart: {} operations, {} acknowledged writes all read back",
        ops.load(Ordering::Relaxed),
        acked.len()
    );
}

/// A network partition splits one node from three (network namespaces; needs root): the
/// majority keeps serving, the isolated node refuses writes, and once the partition heals
/// every object reads back exactly through every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_one_from_three() {
    if !cairn_integration::Netns::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "network namespaces are required under CI"
        );
        eprintln!("SKIPPED: network namespaces need root and iproute2");
        return;
    }
    let cl = Cluster::start_partitionable(4, 2);
    let c: Vec<Client> = (0..4).map(|i| client(&cl.endpoint(i))).collect();
    c[0].create_bucket()
        .bucket("part")
        .send()
        .await
        .expect("create bucket");
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    for (n, cn) in c.iter().enumerate() {
        let (k, v) = (format!("before/{n}"), data(100_000 * n + 5, n as u32));
        put(cn, "part", &k, &v).await.expect("put");
        objects.push((k, v));
    }

    let t0 = Instant::now();
    eprintln!("[partition] setup done");
    cl.set_connected(3, false);
    // The isolated node cannot reach a quorum: writes (and reads) are refused, not hung.
    let started = Instant::now();
    let err = put(&c[3], "part", "during/isolated", &data(5000, 9))
        .await
        .expect_err("the isolated node must refuse writes");
    assert!(err.starts_with("ServiceUnavailable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refusal took {:?}",
        started.elapsed()
    );
    eprintln!("[partition] isolated refused after {:?}", t0.elapsed());
    // The majority keeps serving reads and writes.
    for n in 0..6 {
        let (k, v) = (format!("during/{n}"), data(70_000 * n + 3, 50 + n as u32));
        put(&c[n % 3], "part", &k, &v)
            .await
            .expect("the majority keeps writing");
        objects.push((k, v));
    }
    read_all(&c[1], "part", &objects, "the majority").await;

    eprintln!("[partition] majority done after {:?}", t0.elapsed());
    cl.set_connected(3, true);
    // Once healed: the isolated node serves the majority's writes, and nothing written
    // through it during the partition exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match get(&c[3], "part", "during/5").await {
            Ok(b) if b == objects.last().expect("objects").1 => break,
            r => assert!(
                Instant::now() < deadline,
                "node 3 does not serve after the partition: {r:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("[partition] node 3 serves after {:?}", t0.elapsed());
    for (i, ci) in c.iter().enumerate() {
        read_all(
            ci,
            "part",
            &objects,
            &format!("node {i} after the partition"),
        )
        .await;
        assert!(get(ci, "part", "during/isolated").await.is_err());
        let mut want: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
        want.sort();
        assert_eq!(list(ci, "part").await, want, "listing through node {i}");
    }
}

/// A drive replaced by an empty one while its node was down, once the operator says it is a
/// replacement, is formatted and rebuilt by that node; any node reports the tracker; the rebuilt shards carry reads once two other nodes
/// are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_drive_is_rebuilt_by_its_node() {
    let mut cl = Cluster::start(4, 2, &[]);
    let c0 = client(&cl.endpoint(0));
    c0.create_bucket()
        .bucket("repl")
        .send()
        .await
        .expect("create bucket");
    let objects: Vec<(String, Vec<u8>)> = (0..10)
        .map(|n| {
            (
                format!("o/{n}"),
                data([10, 150_000, 2 << 20][n % 3] + n, 7 * n as u32),
            )
        })
        .collect();
    for (k, v) in &objects {
        put(&c0, "repl", k, v).await.expect("put");
    }
    let status = tokio::task::block_in_place(|| cl.stop(2));
    assert!(status.success());
    let replaced = cl.drive(2, 0);
    std::fs::remove_dir_all(&replaced).expect("wipe drive");
    std::fs::create_dir_all(&replaced).expect("empty drive");
    cl.spawn(2);
    tokio::task::block_in_place(|| cl.wait_ready(2));
    // An empty folder is no proof of a new disk: the operator says it is one, through
    // another node (which formats it over RPC; its own node then heals onto it).
    let endpoint = format!("{}{}", cl.endpoint(2), replaced.display());
    let (code, out) = cairn_integration::admin(&cl.endpoint(0), &["drive", "replace", &endpoint]);
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !objects
        .iter()
        .all(|(k, _)| replaced.join("repl").join(k).join("@meta").exists())
    {
        assert!(
            Instant::now() < deadline,
            "replaced drive not rebuilt; node 2 log:\n{}",
            cl.log(2)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Node 0 reports node 2's tracker.
    let out = std::process::Command::new(binary())
        .args(["admin", "info", "--json", "--endpoint", &cl.endpoint(0)])
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("admin info");
    let json = String::from_utf8_lossy(&out.stdout);
    let trackers = json
        .split("\"replacements\"")
        .nth(1)
        .and_then(|rest| rest.split("\"workers\"").next())
        .unwrap_or("");
    assert!(
        trackers.contains(&format!("{}/n3/d1", cl.dir.path().display())),
        "tracker of the replaced drive not reported through node 0:\n{json}"
    );
    // So does `cairn admin heal --status` through node 0.
    let (code, status) = cairn_integration::admin(&cl.endpoint(0), &["heal", "--status", "--json"]);
    assert_eq!(code, 0, "heal --status: {status}");
    assert!(
        status.contains(&format!("{}/n3/d1", cl.dir.path().display())),
        "tracker of the replaced drive not in node 0's heal status:\n{status}"
    );
    // Nodes 0 and 1 gone: nodes 2 (with the rebuilt drive) and 3 hold exactly a read quorum.
    cl.kill(0);
    cl.kill(1);
    read_all(
        &client(&cl.endpoint(3)),
        "repl",
        &objects,
        "node 3 with nodes 0, 1 down",
    )
    .await;
}

/// `cairn admin heal` right after a node rejoins: the node asked probes its peers first,
/// so it heals instead of reporting every object failed; while a node is down it names the
/// objects it could not heal and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_heal_right_after_a_rejoin_heals_and_names_what_it_cannot() {
    let mut cl = Cluster::start(4, 1, &[]);
    let c0 = client(&cl.endpoint(0));
    c0.create_bucket()
        .bucket("rejoin")
        .send()
        .await
        .expect("create bucket");
    cl.kill(3);
    let keys: Vec<String> = (0..6).map(|n| format!("o/{n}")).collect();
    for (n, k) in keys.iter().enumerate() {
        put(&c0, "rejoin", k, &data(200_000 + n, n as u32))
            .await
            .expect("degraded put");
    }
    let heal = |endpoint: String| {
        tokio::task::block_in_place(move || {
            cairn_integration::admin(&endpoint, &["heal", "--bucket", "rejoin"])
        })
    };
    let (code, out) = heal(cl.endpoint(0));
    assert_ne!(code, 0, "a heal with a node down cannot complete: {out}");
    assert!(
        out.contains("failed objects")
            && out.contains("rejoin/o/")
            && out.contains("1 drive(s) offline"),
        "failures named with their reason: {out}"
    );
    assert!(out.contains("failures by reason:"), "{out}");
    cl.spawn(3);
    tokio::task::block_in_place(|| cl.wait_ready(3));
    // At once: node 0 may not have noticed node 3 is back (its probe backs off), but the
    // heal asks first.
    let (code, out) = heal(cl.endpoint(0));
    assert_eq!(code, 0, "heal right after the rejoin: {out}");
    assert!(out.contains("heal ok"), "{out}");
    for k in &keys {
        assert!(
            cl.drive(3, 0).join("rejoin").join(k).join("@meta").exists(),
            "{k} not healed onto the rejoined node"
        );
    }
}

/// A sniffed internode call is good once: replayed, or sent with another body, the real
/// server refuses it, and says nothing about the deployment to a caller it refused.
#[test]
fn a_sniffed_rpc_call_cannot_be_replayed_or_given_another_body() {
    use cairn::rpc::wire::{self, DriveCall};
    let cl = Cluster::start(2, 2, &[]);
    let layout = cairn::placement::Layout::from_args(&cl.args(), None, None).expect("layout");
    let creds = cairn::auth::RootCredentials {
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
    };
    let auth = cairn::rpc::RpcAuth::new(&creds, &layout.endpoints);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let send = |path: &str, headers: &[(&'static str, String)], body: &[u8]| {
        let mut req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", cl.endpoint(0)));
        for (n, v) in headers {
            req = req.header(*n, v);
        }
        let mut resp = agent
            .run(req.body(body.to_vec()).expect("request"))
            .expect("response");
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (resp.status().as_u16(), text)
    };
    let path = "/cairn/rpc/v1/drive?d=0";
    let call = wire::encode(&DriveCall::DiskInfo);
    let headers = auth.headers("POST", path, Some(&call));
    let (status, _) = send(path, &headers, &call);
    assert_eq!(status, 200, "a fresh call is served");
    let (status, text) = send(path, &headers, &call);
    assert_ne!(status, 200, "a replayed call is refused");
    assert!(
        !text.contains(&cl.endpoint(1)) && !text.contains(auth.cluster()),
        "a refusal names no deployment details: {text}"
    );
    // A token signed for one body does not carry another.
    let probe = wire::encode(&DriveCall::Probe);
    let headers = auth.headers("POST", path, Some(&call));
    let (status, _) = send(path, &headers, &probe);
    assert_ne!(status, 200, "a token moved to another body is refused");
    // Nor another drive.
    let headers = auth.headers("POST", path, Some(&call));
    let (status, _) = send("/cairn/rpc/v1/drive?d=1", &headers, &call);
    assert_ne!(status, 200, "a token moved to another path is refused");
}

/// Identity and bucket settings changed through node 1 are enforced by node 3 within a
/// second (peer notices), also after node 3 restarts; a bucket deleted through node 1 is
/// gone on node 3 when the delete is acknowledged.
#[test]
fn access_changes_on_one_node_are_enforced_on_another_within_a_second() {
    let mut cl = Cluster::start(4, 1, &[]);
    let (n1, n3) = (cl.endpoint(0), cl.endpoint(2));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let root1 = client(&n1);
    rt.block_on(async {
        root1
            .create_bucket()
            .bucket("shared")
            .send()
            .await
            .expect("bucket");
        root1
            .put_object()
            .bucket("shared")
            .key("open/k")
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("put");
    });
    let code_of = |r: Result<(), String>| r.err().unwrap_or_default();
    let within_a_second = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "{what}: not within 1 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (code, out) = cairn_integration::admin(&n1, &["user", "add", "roamer", "roamer-secret-1"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) =
        cairn_integration::admin(&n1, &["policy", "attach", "readonly", "--user", "roamer"]);
    assert_eq!(code, 0, "{out}");
    let roamer3 = cairn_integration::client_for(&n3, "roamer", "roamer-secret-1", false);
    let get3 = |c: &Client| {
        rt.block_on(async {
            c.get_object()
                .bucket("shared")
                .key("open/k")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("?").to_string())
        })
    };
    within_a_second("a new user on node 3", &|| get3(&roamer3).is_ok());
    let (code, out) = cairn_integration::admin(&n1, &["user", "disable", "roamer"]);
    assert_eq!(code, 0, "{out}");
    within_a_second("a disabled user refused on node 3", &|| {
        code_of(get3(&roamer3)) == "InvalidAccessKeyId"
    });
    // A bucket policy put through node 1 opens the prefix on node 3.
    let anon3 = || {
        ureq::get(&format!("{n3}/shared/open/k"))
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|e| match e {
                ureq::Error::StatusCode(c) => c,
                _ => 0,
            })
    };
    assert_eq!(anon3(), 403);
    rt.block_on(async {
        root1
            .put_bucket_policy()
            .bucket("shared")
            .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/open/*"}]}"#)
            .send()
            .await
            .expect("policy");
    });
    within_a_second("a bucket policy on node 3", &|| anon3() == 200);
    // After a restart node 3 still knows (from the drives).
    cl.stop(2);
    cl.spawn(2);
    cl.wait_ready(2);
    assert_eq!(anon3(), 200);
    assert_eq!(code_of(get3(&roamer3)), "InvalidAccessKeyId");
    // A deleted bucket is gone on node 3 once the delete is acknowledged.
    let root3 = client(&n3);
    rt.block_on(async {
        root1
            .create_bucket()
            .bucket("brief")
            .send()
            .await
            .expect("bucket");
        assert!(root3.head_bucket().bucket("brief").send().await.is_ok());
        root1
            .delete_bucket()
            .bucket("brief")
            .send()
            .await
            .expect("delete");
        let e = root3
            .put_object()
            .bucket("brief")
            .key("k")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err("bucket is gone");
        assert_eq!(e.code(), Some("NoSuchBucket"));
    });
}

/// Versions made through node 1 (with versioning enabled through node 1) are read by id,
/// listed in the same order and deleted by id through node 3: ids and ordering are the
/// deployment's, not a node's.
#[test]
fn versions_written_through_one_node_are_the_same_on_another() {
    use aws_sdk_s3::types::BucketVersioningStatus;
    let cl = Cluster::start(4, 1, &[]);
    let (c1, c3) = (client(&cl.endpoint(0)), client(&cl.endpoint(2)));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        c1.create_bucket()
            .bucket("vers")
            .send()
            .await
            .expect("bucket");
        cairn_integration::enable_versioning(&c1, "vers").await;
        let mut ids = Vec::new();
        for body in ["a", "bb", "ccc"] {
            let r = c1
                .put_object()
                .bucket("vers")
                .key("k")
                .body(ByteStream::from_static(body.as_bytes()))
                .send()
                .await
                .expect("put");
            ids.push(r.version_id.expect("version id"));
        }
        let listed = c3
            .list_object_versions()
            .bucket("vers")
            .send()
            .await
            .expect("list on node 3");
        let seen: Vec<&str> = listed
            .versions()
            .iter()
            .filter_map(|v| v.version_id())
            .collect();
        let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
        assert_eq!(seen, newest_first);
        let old = c3
            .get_object()
            .bucket("vers")
            .key("k")
            .version_id(&ids[0])
            .send()
            .await
            .expect("get by id on node 3");
        assert_eq!(
            old.body
                .collect()
                .await
                .expect("body")
                .into_bytes()
                .as_ref(),
            b"a"
        );
        // The setting reaches node 3's cache within a second.
        let start = Instant::now();
        loop {
            let v = c3
                .get_bucket_versioning()
                .bucket("vers")
                .send()
                .await
                .expect("status on node 3");
            if v.status() == Some(&BucketVersioningStatus::Enabled) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(1), "not within 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c3.delete_object()
            .bucket("vers")
            .key("k")
            .version_id(&ids[2])
            .send()
            .await
            .expect("delete by id on node 3");
        let latest = c1
            .get_object()
            .bucket("vers")
            .key("k")
            .send()
            .await
            .expect("get on node 1");
        assert_eq!(latest.version_id(), Some(ids[1].as_str()));
    });
}

/// Shards on another node's drives are read and verified there and come back raw: rotten
/// or cut shards on `parity` remote drives are caught and read around (one block read
/// without the lock and a streamed one), and one more rotten shard is an error, never
/// wrong bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotten_shards_on_another_node_are_caught_and_read_around() {
    let cl = Cluster::start(2, 2, &[]);
    let c = client(&cl.endpoint(0));
    c.create_bucket()
        .bucket("rot")
        .send()
        .await
        .expect("create bucket");
    let objects = [
        ("one-block", data(1 << 20, 1)),
        ("streamed", data(3 << 20, 2)),
    ];
    for (key, body) in &objects {
        put(&c, "rot", key, body).await.expect("put");
    }
    let shards = |node: usize, d: usize, key: &str| {
        cairn_integration::files_named(&cl.drive(node, d).join("rot").join(key), "part.1")
    };
    for (key, body) in &objects {
        // Node 1's two drives (the parity count of EC 2+2): one shard rotten, one cut short.
        let rotten = shards(1, 0, key);
        let cut = shards(1, 1, key);
        assert!(
            !rotten.is_empty() && !cut.is_empty(),
            "{key}: shards on node 1"
        );
        for f in rotten {
            let mut b = std::fs::read(&f).expect("read shard");
            let mid = b.len() / 2;
            b[mid] ^= 0x40;
            std::fs::write(&f, b).expect("write shard");
        }
        for f in cut {
            let len = std::fs::metadata(&f).expect("shard").len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&f)
                .and_then(|h| h.set_len(len / 3))
                .expect("cut shard");
        }
        let got = get(&c, "rot", key)
            .await
            .expect("read around two bad remote shards");
        assert!(got == *body, "{key}: wrong bytes");
    }
    // A third bad shard, on node 0: below the read quorum, so an error.
    for (key, _) in &objects {
        for f in shards(0, 0, key) {
            let mut b = std::fs::read(&f).expect("read shard");
            b[40] ^= 0x01;
            std::fs::write(&f, b).expect("write shard");
        }
        let r = get(&c, "rot", key).await;
        assert!(
            r.is_err(),
            "{key}: three of four shards bad must fail, got bytes"
        );
    }
}
