//! Server pools with real processes: a deployment grows into a second pool, new objects land
//! by free space, a pool is decommissioned under load (and through a kill -9 of the server
//! running it) and removed, pools are rebalanced, and a list that drops or reorders a pool
//! is refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use cairn_integration::{
    admin, client, complete_with_parts, enable_versioning, files_named, get_bytes, list_keys,
    multipart_bytes, put_bytes, run_server_until_exit, wait_until, Server, Tmpfs,
};

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).rotate_left(seed % 31) as u8)
        .collect()
}

/// `dir/name{1...4}`: one pool's argument.
fn pool(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{{1...4}}"))
}

/// Does any drive folder `base1..4` hold `bucket/key`'s metadata?
fn holds(base: &Path, name: &str, bucket: &str, key: &str) -> bool {
    (1..=4).any(|i| {
        base.join(format!("{name}{i}"))
            .join(bucket)
            .join(key)
            .join("@meta")
            .exists()
    })
}

/// Object metadata files left under a pool's drive folders.
fn metas_in(base: &Path, name: &str) -> usize {
    (1..=4)
        .map(|i| files_named(&base.join(format!("{name}{i}")), "@meta").len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_grows_into_a_second_pool_and_new_objects_land_by_free_space() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Pool 1 on a small filesystem, pool 2 on one 16 times larger.
    std::fs::create_dir_all(dir.path().join("small")).expect("dir");
    std::fs::create_dir_all(dir.path().join("large")).expect("dir");
    let _small = Tmpfs::mount(&dir.path().join("small"), 64);
    let _large = Tmpfs::mount(&dir.path().join("large"), 1024);
    let (small, large) = (dir.path().join("small"), dir.path().join("large"));
    let first = pool(&small, "d");
    let second = pool(&large, "d");

    let server = Server::start_on(std::slice::from_ref(&first), &[]);
    let c = client(&server);
    c.create_bucket()
        .bucket("grow")
        .send()
        .await
        .expect("bucket");
    let mut objects: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..12 {
        let body = data(if i % 3 == 0 { 1_200_000 } else { 40_000 }, i);
        let key = format!("old/{i:02}");
        put_bytes(&c, "grow", &key, &body).await;
        objects.insert(key, body);
    }
    drop(server);

    // The same deployment with a second pool after the first.
    let server = Server::start_on(&[first.clone(), second.clone()], &[]);
    let c = client(&server);
    for (k, v) in &objects {
        assert_eq!(
            &get_bytes(&c, "grow", k).await,
            v,
            "{k} reads back after the expansion"
        );
    }
    let (code, info) = admin(&server.endpoint, &["info"]);
    assert_eq!(code, 0, "{info}");
    assert!(
        info.contains("Pool 1") && info.contains("Pool 2") && info.contains("active"),
        "admin info lists the pools:\n{info}"
    );
    // New keys go by free space: nearly all to the large pool, each to exactly one pool.
    let mut in_large = 0;
    for i in 0..40 {
        let key = format!("new-{i:02}");
        let body = data(30_000, 100 + i);
        put_bytes(&c, "grow", &key, &body).await;
        let (s, l) = (
            holds(&small, "d", "grow", &key),
            holds(&large, "d", "grow", &key),
        );
        assert!(
            s != l,
            "{key} is in exactly one pool (small {s}, large {l})"
        );
        in_large += l as usize;
        objects.insert(key, body);
    }
    assert!(
        in_large >= 32,
        "new objects land by free space: {in_large} of 40 in the 16x larger pool"
    );
    // An overwrite stays in the pool holding the key.
    let body = data(50_000, 999);
    put_bytes(&c, "grow", "old/01", &body).await;
    objects.insert("old/01".into(), body);
    assert!(holds(&small, "d", "grow", "old/01") && !holds(&large, "d", "grow", "old/01"));
    // A multipart upload completes where it started.
    let parts = [data(5 << 20, 7), data(1 << 20, 8)];
    multipart_bytes(&c, "grow", "multi", &parts).await;
    objects.insert("multi".into(), parts.concat());
    // Listings merge both pools in key order.
    let keys = list_keys(&c, "grow", 37).await;
    assert_eq!(keys, objects.keys().cloned().collect::<Vec<_>>());
    let top = c
        .list_objects_v2()
        .bucket("grow")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["old/"]);
    assert_eq!(top.contents().len(), 41);
    for (k, v) in &objects {
        assert_eq!(&get_bytes(&c, "grow", k).await, v, "{k}");
    }
    drop(server);

    // A list without pool 1 (never decommissioned), or with the pools swapped, is refused.
    let (status, log) =
        run_server_until_exit(std::slice::from_ref(&second), &[], Duration::from_secs(30));
    assert!(!status.success());
    assert!(
        log.contains("was removed from the server arguments but is not decommissioned"),
        "{log}"
    );
    let (status, log) = run_server_until_exit(
        &[second.clone(), first.clone()],
        &[],
        Duration::from_secs(30),
    );
    assert!(!status.success());
    assert!(log.contains("reorder"), "{log}");
    // The right list still opens.
    let server = Server::start_on(&[first, second], &[]);
    let c = client(&server);
    assert_eq!(list_keys(&c, "grow", 37).await.len(), objects.len());
}

/// Status of pool `n` (1-based) as `cairn admin pool decommission status --json` gives it.
fn pool_status(server: &Server, n: usize) -> serde_json::Value {
    let (code, out) = admin(
        &server.endpoint,
        &["pool", "decommission", "status", &n.to_string(), "--json"],
    );
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The cluster metrics (Prometheus text) as a scraper with a token gets them.
fn cluster_metrics(server: &Server) -> String {
    let (code, token) = admin(&server.endpoint, &["prometheus", "token", "--token-only"]);
    assert_eq!(code, 0, "{token}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(format!("{}/cairn/v1/metrics/cluster", server.endpoint))
        .header("authorization", format!("Bearer {}", token.trim()))
        .call()
        .expect("scrape");
    let body = resp.body_mut().read_to_string().expect("body");
    assert_eq!(resp.status(), 200, "{body}");
    body
}

/// The value of one series (`name{labels}` exactly as exposed) in a scrape.
fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Keys of the decommission test: enough that a slow-paced walk takes several seconds.
const KEYS: u32 = 400;

type Objects = BTreeMap<(String, String), Vec<u8>>;

/// A key's last acknowledged body and the bodies of the PUTs that failed after it.
type Tried = (Option<Vec<u8>>, Vec<Vec<u8>>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_under_load_moves_everything_and_survives_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pool(dir.path(), "a");
    let second = pool(dir.path(), "b");
    // Slow pacing so the kill lands mid-way.
    let env = [("CAIRN_HEAL_SPEED", "slow")];
    let server = Server::start_on(std::slice::from_ref(&first), &env);
    let c = client(&server);
    c.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("bucket");
    c.create_bucket()
        .bucket("kept")
        .send()
        .await
        .expect("bucket");
    enable_versioning(&c, "kept").await;
    let mut objects: Objects = BTreeMap::new();
    for i in 0..KEYS {
        let size = match i % 10 {
            0 => 1_100_000,
            1 => 150_000,
            _ => 3_000 + i as usize,
        };
        let body = data(size, i);
        let key = format!("k/{i:03}");
        put_bytes(&c, "plain", &key, &body).await;
        objects.insert(("plain".into(), key), body);
    }
    // Versions and a delete marker.
    let mut versions = Vec::new();
    for v in 0..3u32 {
        let body = data(20_000 + v as usize, 500 + v);
        let out = c
            .put_object()
            .bucket("kept")
            .key("doc")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put version");
        versions.push((out.version_id().expect("version").to_string(), body));
    }
    c.delete_object()
        .bucket("kept")
        .key("doc")
        .send()
        .await
        .expect("marker");
    drop(server);

    let args = [first.clone(), second.clone()];
    let server = Server::start_on(&args, &env);
    let (code, out) = admin(
        &server.endpoint,
        &["pool", "decommission", "start", "1", "--detach"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("decommissioning"), "{out}");

    // Load while it runs: new keys and overwrites, each acknowledged one recorded.
    // Per key: the last acknowledged body, then the bodies of PUTs that failed after it (a
    // PUT cut by the kill may have committed without its answer reaching the client).
    let acked: Arc<Mutex<BTreeMap<(String, String), Tried>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let endpoint = Arc::new(Mutex::new(server.endpoint.clone()));
    // Reads too: keys with odd numbers are never overwritten, and must read back as written
    // whichever pool they are in, while they move.
    let originals = Arc::new(objects.clone());
    let reads = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let load = {
        let (acked, stop, endpoint) = (acked.clone(), stop.clone(), endpoint.clone());
        let (originals, reads) = (originals.clone(), reads.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let ep = endpoint.lock().expect("lock").clone();
                let c = cairn_integration::client_for(
                    &ep,
                    cairn_integration::ACCESS_KEY,
                    cairn_integration::SECRET_KEY,
                    false,
                );
                let odd = format!("k/{:03}", ((n * 13) % KEYS) | 1);
                if let Ok(out) = c.get_object().bucket("plain").key(&odd).send().await {
                    if let Ok(got) = out.body.collect().await {
                        let want = &originals[&("plain".to_string(), odd.clone())];
                        assert!(got.into_bytes() == want[..], "{odd} read during the move");
                        reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let key = if n.is_multiple_of(3) {
                    format!("k/{:03}", ((n * 7) % KEYS) & !1)
                } else {
                    format!("load/{n:04}")
                };
                let body = data(4_000 + (n as usize % 7) * 50_000, 10_000 + n);
                let r = c
                    .put_object()
                    .bucket("plain")
                    .key(&key)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                let failed = {
                    let mut acked = acked.lock().expect("lock");
                    let tried = acked.entry(("plain".into(), key)).or_default();
                    if r.is_ok() {
                        *tried = (Some(body), Vec::new());
                    } else {
                        tried.1.push(body);
                    }
                    r.is_err()
                };
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                n += 1;
            }
        })
    };

    // Kill -9 the server once it has moved some keys, then start it again: it resumes.
    wait_until("some keys moved", Duration::from_secs(120), || {
        pool_status(&server, 1)["decommission"]["objects"]
            .as_u64()
            .is_some_and(|n| n >= 20)
    });
    let st = pool_status(&server, 1);
    assert_eq!(st["state"], "decommissioning", "killed mid-way: {st}");
    let _ = std::process::Command::new("kill")
        .args(["-9", &server.pid().to_string()])
        .status();
    drop(server);
    let server = Server::start_on(&args, &[("CAIRN_HEAL_SPEED", "fast")]);
    *endpoint.lock().expect("lock") = server.endpoint.clone();
    wait_until(
        "the decommission to finish",
        Duration::from_secs(240),
        || pool_status(&server, 1)["state"] == "decommissioned",
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.expect("load");
    assert!(
        reads.load(std::sync::atomic::Ordering::Relaxed) > 10,
        "objects were read during the decommission"
    );
    let st = pool_status(&server, 1);
    assert!(
        st["decommission"]["objects"].as_u64().unwrap_or(0) >= u64::from(KEYS) / 2,
        "{st}"
    );
    assert_eq!(st["decommission"]["failed"].as_u64(), Some(0), "{st}");

    // Every acknowledged object reads back byte-exact; the versions and the marker survive.
    let c = client(&server);
    let mut possible: BTreeMap<(String, String), Vec<Vec<u8>>> = objects
        .iter()
        .map(|(k, v)| (k.clone(), vec![v.clone()]))
        .collect();
    for (k, (ok, failed)) in acked.lock().expect("lock").iter() {
        let p = possible.entry(k.clone()).or_default();
        // An acknowledged body replaces the key's earlier ones.
        if let Some(ok) = ok {
            *p = vec![ok.clone()];
        }
        p.extend(failed.iter().cloned());
    }
    assert!(
        possible.len() > KEYS as usize,
        "the load wrote new keys too"
    );
    let mut finals = BTreeMap::new();
    for ((b, k), bodies) in &possible {
        match c.get_object().bucket(b).key(k).send().await {
            Ok(out) => {
                let got = out
                    .body
                    .collect()
                    .await
                    .expect("body")
                    .into_bytes()
                    .to_vec();
                assert!(
                    bodies.contains(&got),
                    "{b}/{k} after the decommission: an unknown body"
                );
                finals.insert((b.clone(), k.clone()), got);
            }
            // A new key whose only PUTs all failed may not exist.
            Err(_) if !objects.contains_key(&(b.clone(), k.clone())) => {}
            Err(e) => panic!("{b}/{k}: {e:?}"),
        }
    }
    let objects = finals;
    let listed = c
        .list_object_versions()
        .bucket("kept")
        .send()
        .await
        .expect("versions");
    assert_eq!(listed.versions().len(), 3);
    assert_eq!(listed.delete_markers().len(), 1);
    for (id, body) in &versions {
        let got = c
            .get_object()
            .bucket("kept")
            .key("doc")
            .version_id(id)
            .send()
            .await
            .expect("version")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        assert!(got == body[..], "version {id}");
    }
    // The pool's drives hold no object data any more.
    assert_eq!(
        metas_in(dir.path(), "a"),
        0,
        "no object metadata left in pool 1"
    );
    // The metrics say the same as the status.
    let m = cluster_metrics(&server);
    let moved = st["decommission"]["objects"].as_u64().unwrap_or(0) as f64;
    for (series, want) in [
        (
            r#"cairn_cluster_pool_state{pool="1",state="decommissioned"}"#,
            1.0,
        ),
        (r#"cairn_cluster_pool_state{pool="1",state="active"}"#, 0.0),
        (r#"cairn_cluster_pool_state{pool="2",state="active"}"#, 1.0),
        (
            r#"cairn_cluster_pool_decommission_objects_moved{pool="1"}"#,
            moved,
        ),
        (
            r#"cairn_cluster_pool_decommission_objects_failed{pool="1"}"#,
            0.0,
        ),
        ("cairn_cluster_rebalance_running", 0.0),
    ] {
        assert_eq!(metric(&m, series), Some(want), "{series}:\n{m}");
    }
    assert!(
        metric(
            &m,
            r#"cairn_cluster_pool_capacity_usable_total_bytes{pool="2"}"#
        )
        .unwrap_or(0.0)
            > 0.0
    );
    drop(server);

    // Pool 1 can now be left out.
    let server = Server::start_on(std::slice::from_ref(&second), &[]);
    let c = client(&server);
    for ((b, k), v) in &objects {
        assert!(
            &get_bytes(&c, b, k).await == v,
            "{b}/{k} with pool 1 removed"
        );
    }
    let (code, out) = admin(&server.endpoint, &["pool", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("Pool 2"), "one pool left:\n{out}");
}

/// A cancel lands while keys are moving (a walk keeps two moves going, so one is nearly
/// always half-way): no key may be left in both pools, every version stays readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_decommission_leaves_each_key_in_one_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pool(dir.path(), "a");
    let second = pool(dir.path(), "b");
    let env = [("CAIRN_HEAL_SPEED", "slow")];
    let server = Server::start_on(std::slice::from_ref(&first), &env);
    let c = client(&server);
    c.create_bucket()
        .bucket("hist")
        .send()
        .await
        .expect("bucket");
    enable_versioning(&c, "hist").await;
    const KEYS: u32 = 200;
    let mut versions: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for i in 0..KEYS {
        let key = format!("h/{i:03}");
        for v in 0..3u32 {
            let body = data(64 * 1024 + v as usize, i * 10 + v);
            let out = c
                .put_object()
                .bucket("hist")
                .key(&key)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .expect("put version");
            let id = out.version_id().expect("version id").to_string();
            versions.entry(key.clone()).or_default().push((id, body));
        }
    }
    drop(server);
    let server = Server::start_on(&[first.clone(), second.clone()], &env);
    let c = client(&server);
    let (code, out) = admin(
        &server.endpoint,
        &["pool", "decommission", "start", "1", "--detach"],
    );
    assert_eq!(code, 0, "{out}");
    let in_b = |key: &str| holds(dir.path(), "b", "hist", key);
    wait_until("three keys moved", Duration::from_secs(60), || {
        versions.keys().filter(|k| in_b(k)).count() >= 3
    });
    let (code, out) = admin(&server.endpoint, &["pool", "decommission", "cancel", "1"]);
    assert_eq!(code, 0, "{out}");
    wait_until("the pool active again", Duration::from_secs(30), || {
        pool_status(&server, 1)["state"] == "active"
    });
    // The walk notices the cancel at its next save (every 2 s): wait until nothing moves.
    let in_a = |key: &str| holds(dir.path(), "a", "hist", key);
    let placed = || -> Vec<(bool, bool)> { versions.keys().map(|k| (in_a(k), in_b(k))).collect() };
    let mut last = placed();
    let mut still = std::time::Instant::now();
    wait_until("the walk to stop", Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(200));
        let now = placed();
        if now != last {
            last = now;
            still = std::time::Instant::now();
        }
        still.elapsed() > Duration::from_secs(5)
    });
    let moved = versions.keys().filter(|k| in_b(k)).count();
    assert!(
        moved < KEYS as usize,
        "the cancel came too late to test anything"
    );
    for k in versions.keys() {
        assert!(
            !(in_a(k) && in_b(k)),
            "{k} is in both pools after the cancel"
        );
    }
    for (key, vs) in &versions {
        assert!(in_a(key) || in_b(key), "{key} is in no pool");
        for (id, body) in vs {
            let got = c
                .get_object()
                .bucket("hist")
                .key(key)
                .version_id(id)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key} {id}: {e:?}"))
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            assert!(got.as_ref() == body.as_slice(), "{key} {id}: other bytes");
        }
        // Still writable and deletable in one place.
        put_bytes(&c, "hist", key, b"after").await;
    }
}

/// Copy `bucket/key`'s files from drive folders `from1..4` to `to1..4` (same positions;
/// `from` and `to` are folder paths without their number).
fn copy_key(from: &Path, to: &Path, bucket: &str, key: &str) {
    for i in 1..=4 {
        let numbered = |p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push(i.to_string());
            PathBuf::from(s).join(bucket).join(key)
        };
        let (src, dst) = (numbered(from), numbered(to));
        std::fs::create_dir_all(&dst).expect("mkdir");
        for e in std::fs::read_dir(&src).expect("read_dir").flatten() {
            std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy");
        }
    }
}

/// What a move cut short by a crash (and a cancel before it resumed) leaves: the target
/// pool with the key's oldest versions, the source with all. A write or delete of the key
/// mends it (the partial copy goes) instead of refusing the key forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_left_in_two_pools_by_a_cut_short_move_is_mended_by_its_next_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pool(dir.path(), "a");
    let second = pool(dir.path(), "b");
    let both = [first.clone(), second.clone()];
    let server = Server::start_on(std::slice::from_ref(&first), &[]);
    let c = client(&server);
    c.create_bucket()
        .bucket("split")
        .send()
        .await
        .expect("bucket");
    enable_versioning(&c, "split").await;
    for key in ["k", "d"] {
        for v in 0..2u32 {
            put_bytes(&c, "split", key, &data(3000, v)).await;
        }
    }
    drop(server);
    // The state after two versions, kept aside; then a third version in pool 1.
    let aside = tempfile::tempdir().expect("tempdir");
    for key in ["k", "d"] {
        copy_key(&dir.path().join("a"), &aside.path().join("s"), "split", key);
    }
    let server = Server::start_on(std::slice::from_ref(&first), &[]);
    let c = client(&server);
    for key in ["k", "d"] {
        put_bytes(&c, "split", key, &data(3000, 2)).await;
    }
    drop(server);
    // Pool 2 formatted, then given the older copies.
    drop(Server::start_on(&both, &[]));
    for key in ["k", "d"] {
        copy_key(&aside.path().join("s"), &dir.path().join("b"), "split", key);
        assert!(holds(dir.path(), "a", "split", key) && holds(dir.path(), "b", "split", key));
    }
    let server = Server::start_on(&both, &[]);
    let c = client(&server);
    assert_eq!(get_bytes(&c, "split", "k").await, data(3000, 2));
    // A new version of k: accepted, the partial copy gone, all four versions kept.
    c.put_object()
        .bucket("split")
        .key("k")
        .body(ByteStream::from(data(3000, 3)))
        .send()
        .await
        .expect("a write to a key left in two pools");
    assert!(
        !holds(dir.path(), "b", "split", "k"),
        "the partial copy stayed"
    );
    assert_eq!(get_bytes(&c, "split", "k").await, data(3000, 3));
    // A delete of d: its marker is what reads see (not pool 2's older copy).
    c.delete_object()
        .bucket("split")
        .key("d")
        .send()
        .await
        .expect("delete");
    assert!(
        !holds(dir.path(), "b", "split", "d"),
        "the partial copy stayed"
    );
    assert!(c
        .get_object()
        .bucket("split")
        .key("d")
        .send()
        .await
        .is_err());
    for (key, n) in [("k", 4), ("d", 4)] {
        let out = c
            .list_object_versions()
            .bucket("split")
            .prefix(key)
            .send()
            .await
            .expect("versions");
        let count = out.versions().len() + out.delete_markers().len();
        assert_eq!(count, n, "{key}: {out:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_starts_stops_survives_a_restart_and_evens_the_pools() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pool(dir.path(), "a");
    let second = pool(dir.path(), "b");
    let env = [("CAIRN_HEAL_SPEED", "slow")];
    let server = Server::start_on(std::slice::from_ref(&first), &env);
    let c = client(&server);
    c.create_bucket()
        .bucket("even")
        .send()
        .await
        .expect("bucket");
    let mut objects = BTreeMap::new();
    for i in 0..400u32 {
        let body = data(6_000 + i as usize, i);
        let key = format!("r/{i:03}");
        put_bytes(&c, "even", &key, &body).await;
        objects.insert(key, body);
    }
    drop(server);
    let args = [first, second];
    let server = Server::start_on(&args, &env);
    // Multipart uploads open over the rebalance, on keys it may move.
    let c = client(&server);
    let mut uploads = Vec::new();
    for i in (0..400u32).step_by(20) {
        let key = format!("r/{i:03}");
        let up = c
            .create_multipart_upload()
            .bucket("even")
            .key(&key)
            .send()
            .await
            .expect("create upload");
        uploads.push((key, up.upload_id().expect("id").to_string()));
    }
    let (code, out) = admin(&server.endpoint, &["pool", "rebalance", "start"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Rebalance: running"), "{out}");
    let status = |s: &Server| {
        let (code, out) = admin(&s.endpoint, &["pool", "rebalance", "status", "--json"]);
        assert_eq!(code, 0, "{out}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    wait_until("some keys moved", Duration::from_secs(60), || {
        status(&server)["rebalance"]["progress"]["objects"]
            .as_u64()
            .is_some_and(|n| n >= 5)
    });
    let (code, out) = admin(&server.endpoint, &["pool", "rebalance", "stop"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Rebalance: stopped"), "{out}");
    let moved = status(&server)["rebalance"]["progress"]["objects"]
        .as_u64()
        .unwrap_or(0);
    std::thread::sleep(Duration::from_secs(3));
    let later = status(&server)["rebalance"]["progress"]["objects"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        later <= moved + 1,
        "a stopped rebalance moves nothing more ({moved} → {later})"
    );
    drop(server);

    // After a restart the status is still there, and a new start runs to the end.
    let server = Server::start_on(&args, &[("CAIRN_HEAL_SPEED", "fast")]);
    let st = status(&server);
    assert_eq!(st["rebalance"]["state"], "stopped", "{st}");
    let (code, out) = admin(&server.endpoint, &["pool", "rebalance", "start"]);
    assert_eq!(code, 0, "{out}");
    wait_until("the rebalance to finish", Duration::from_secs(120), || {
        status(&server)["rebalance"]["state"] == "done"
    });
    // Uploads started before the rebalance complete in the pool they were started in (1),
    // the keys the rebalance moved to pool 2 meanwhile are moved back: each key still in
    // exactly one pool.
    let c = client(&server);
    let moved_away: Vec<&String> = uploads
        .iter()
        .map(|(k, _)| k)
        .filter(|k| holds(dir.path(), "b", "even", k))
        .collect();
    assert!(
        !moved_away.is_empty(),
        "the rebalance moved some keys with open uploads"
    );
    for (n, (key, id)) in uploads.iter().enumerate() {
        let body = data(3_000 + n, 500 + n as u32);
        complete_with_parts(&c, "even", key, id, std::slice::from_ref(&body)).await;
        assert!(
            holds(dir.path(), "a", "even", key) && !holds(dir.path(), "b", "even", key),
            "{key} completes in pool 1, its upload's pool, and only there"
        );
        objects.insert(key.clone(), body);
    }
    let (a, b) = (metas_in(dir.path(), "a") / 4, metas_in(dir.path(), "b") / 4);
    assert_eq!(a + b, 400, "every key in exactly one pool ({a} + {b})");
    assert!(
        (140..=260).contains(&b),
        "the pools even out: {a} keys in pool 1, {b} in pool 2"
    );
    for (k, v) in &objects {
        assert_eq!(
            &get_bytes(&c, "even", k).await,
            v,
            "{k} after the rebalance"
        );
    }
    assert_eq!(list_keys(&c, "even", 37).await.len(), 400);
}

/// `n` consecutive free ports below the ephemeral range (servers of other tests bind port 0,
/// which the kernel takes from that range, so they cannot take these meanwhile), none in
/// `avoid`.
fn consecutive_ports(n: u16, avoid: &[u16]) -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos()) as u16;
    for attempt in 0..500u16 {
        let first = 20_000 + (seed.wrapping_add(attempt.wrapping_mul(97)) % 10_000);
        if (first..first + n).any(|p| avoid.iter().any(|a| a.abs_diff(p) < 4)) {
            continue;
        }
        let held: Vec<_> = (0..n)
            .map_while(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).ok())
            .collect();
        if held.len() == n as usize {
            return first;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// One node of a hand-made cluster: its own folder as working directory, so the drive
/// paths `/proc/self/cwd/d1...` of a pool argument are this node's own folders.
struct Node {
    child: std::process::Child,
    dir: PathBuf,
    port: u16,
}

impl Node {
    fn start(dir: &Path, port: u16, args: &[String]) -> Node {
        std::fs::create_dir_all(dir).expect("node dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log");
        let child = std::process::Command::new(cairn_integration::binary())
            .current_dir(dir)
            .arg("server")
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("CAIRN_ROOT_USER", cairn_integration::ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", cairn_integration::SECRET_KEY)
            .env("CAIRN_CERTS_DIR", dir.join("no-certs"))
            .env("CAIRN_CONSOLE_ADDRESS", "off")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start node");
        Node {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Wait until the node is ready; why not, if it is not.
    fn wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/health/ready", self.endpoint());
        let probe = cairn_integration::probe_agent();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Err(format!("node {} exited ({s})", self.port));
            }
            if probe.get(&url).call().is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("node {} not ready", self.port))
    }
}

/// Wait until every node is ready; panics with every node's log otherwise.
fn all_ready(nodes: &mut [Node]) {
    let mut failed = Vec::new();
    for n in nodes.iter_mut() {
        if let Err(e) = n.wait_ready() {
            failed.push(e);
        }
    }
    if !failed.is_empty() {
        let logs: Vec<String> = nodes
            .iter()
            .map(|n| format!("--- node {}:\n{}", n.port, n.log()))
            .collect();
        panic!("{}\n{}", failed.join("; "), logs.join("\n"));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_cluster_grows_by_a_two_node_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p1 = consecutive_ports(2, &[]);
    let p3 = consecutive_ports(2, &[p1]);
    let first = format!(
        "http://127.0.0.1:{{{p1}...{}}}/proc/self/cwd/d{{1...2}}",
        p1 + 1
    );
    let second = format!(
        "http://127.0.0.1:{{{p3}...{}}}/proc/self/cwd/d{{1...2}}",
        p3 + 1
    );
    let node_dir = |n: usize| dir.path().join(format!("n{n}"));
    let one = vec![first.clone()];
    let mut nodes: Vec<Node> = vec![
        Node::start(&node_dir(1), p1, &one),
        Node::start(&node_dir(2), p1 + 1, &one),
    ];
    all_ready(&mut nodes);
    let c = cairn_integration::client_for(
        &nodes[0].endpoint(),
        cairn_integration::ACCESS_KEY,
        cairn_integration::SECRET_KEY,
        true,
    );
    c.create_bucket()
        .bucket("span")
        .send()
        .await
        .expect("bucket");
    let mut objects = BTreeMap::new();
    for i in 0..10u32 {
        let body = data(70_000 * (i as usize % 3) + 100, i);
        let key = format!("before/{i}");
        put_bytes(&c, "span", &key, &body).await;
        objects.insert(key, body);
    }

    // The new pool's nodes start with the longer list; then the old nodes restart with it,
    // one by one.
    let both = vec![first, second];
    nodes.push(Node::start(&node_dir(3), p3, &both));
    nodes.push(Node::start(&node_dir(4), p3 + 1, &both));
    for i in 0..2 {
        let _ = nodes[i].child.kill();
        let _ = nodes[i].child.wait();
        nodes[i] = Node::start(&node_dir(i + 1), nodes[i].port, &both);
        if i == 1 {
            all_ready(&mut nodes);
        }
    }
    // Old objects read back through every node, new ones spread over both pools.
    for n in &nodes {
        let c = cairn_integration::client_for(
            &n.endpoint(),
            cairn_integration::ACCESS_KEY,
            cairn_integration::SECRET_KEY,
            true,
        );
        for (k, v) in &objects {
            assert_eq!(
                &get_bytes(&c, "span", k).await,
                v,
                "{k} through node {}",
                n.port
            );
        }
    }
    let c = cairn_integration::client_for(
        &nodes[2].endpoint(),
        cairn_integration::ACCESS_KEY,
        cairn_integration::SECRET_KEY,
        true,
    );
    for i in 0..30u32 {
        let body = data(20_000 + i as usize, 50 + i);
        let key = format!("after/{i:02}");
        put_bytes(&c, "span", &key, &body).await;
        objects.insert(key, body);
    }
    let in_second = (0..30)
        .filter(|i| {
            [3, 4].iter().any(|n| {
                node_dir(*n)
                    .join("d1")
                    .join("span")
                    .join("after")
                    .join(format!("{i:02}"))
                    .join("@meta")
                    .exists()
            })
        })
        .count();
    assert!(
        (5..=25).contains(&in_second),
        "new objects go to both pools of equal space: {in_second} of 30 in the new pool"
    );
    let c = cairn_integration::client_for(
        &nodes[1].endpoint(),
        cairn_integration::ACCESS_KEY,
        cairn_integration::SECRET_KEY,
        true,
    );
    assert_eq!(
        list_keys(&c, "span", 37).await,
        objects.keys().cloned().collect::<Vec<_>>()
    );
    for (k, v) in &objects {
        assert_eq!(&get_bytes(&c, "span", k).await, v, "{k}");
    }
    let (code, info) = admin(&nodes[3].endpoint(), &["pool", "status"]);
    assert_eq!(code, 0, "{info}");
    assert!(info.contains("Pool 2") && info.contains("active"), "{info}");
}
