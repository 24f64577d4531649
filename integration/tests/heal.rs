//! Self-healing with real processes: each scenario ends with every object byte-exact and all
//! shards back, proven by then destroying `parity` *other* drives' data and reading
//! everything again.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use cairn_integration::{client, files_named, unplug, wait_until as wait_for, Server};

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).rotate_left(seed % 31) as u8)
        .collect()
}

/// Run `cairn admin ...` against the server; returns (exit code, output).
fn admin(server: &Server, args: &[&str]) -> (i32, String) {
    cairn_integration::admin(&server.endpoint, args)
}

/// Destroy the object data of `drives` (their bucket directories), then read everything.
async fn read_all_without(
    c: &Client,
    server: &Server,
    bucket: &str,
    drives: &[usize],
    objects: &[(String, Vec<u8>)],
) {
    for &d in drives {
        let _ = std::fs::remove_dir_all(server.drives[d].join(bucket));
    }
    for (k, want) in objects {
        let out = c
            .get_object()
            .bucket(bucket)
            .key(k)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{k}: {e:?}"));
        let got = out.body.collect().await.expect("body").into_bytes();
        assert!(got == want[..], "{k} differs");
    }
}

async fn put_objects(c: &Client, bucket: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    c.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    let mut objects = Vec::new();
    for i in 0..n {
        let size = match i % 4 {
            0 => 1000,
            1 => 200_000,
            2 => 1_500_000,
            _ => 3_100_000,
        };
        let key = format!("dir{}/obj-{i}", i % 3);
        let body = data(size, i as u32);
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
        objects.push((key, body));
    }
    objects
}

#[tokio::test]
async fn deleted_shards_and_bitrot_are_healed_by_admin_heal() {
    let s = Server::start_with(4, &[("CAIRN_HEAL_SPEED", "fast")]);
    let c = client(&s);
    let objects = put_objects(&c, "heal", 24).await;
    // Delete one shard file of one object on drive 0.
    let victim = files_named(&s.drives[0].join("heal/dir0/obj-0"), "@meta");
    assert_eq!(
        victim.len(),
        1,
        "metadata of dir0/obj-0 missing on drive 0; drive tree: {:?}\nserver log:\n{}",
        std::fs::read_dir(s.drives[0].join("heal/dir0"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()),
        s.log()
    );
    let shard = files_named(&s.drives[0].join("heal/dir2/obj-2"), "part.1");
    assert_eq!(shard.len(), 1);
    for f in shard.iter().chain(&victim) {
        std::fs::remove_file(f).expect("delete");
    }
    // Flip bytes in the shards of drives 1 and 2 (= parity) of many objects.
    let mut rotted = 0;
    for d in [1, 2] {
        for f in files_named(&s.drives[d].join("heal"), "part.1")
            .into_iter()
            .step_by(2)
        {
            let mut b = std::fs::read(&f).expect("read");
            let at = b.len() / 3;
            b[at] ^= 0x40;
            std::fs::write(&f, b).expect("write");
            rotted += 1;
        }
    }
    assert!(rotted > 5);
    // A dry run reports damage and exits non-zero; a shallow heal fixes the missing files.
    let (code, out) = admin(&s, &["heal", "--dry-run"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unhealthy 2"), "{out}");
    // ...naming the objects, in text and in JSON.
    assert!(
        out.contains("heal/dir0/obj-0: 1 bad cop(ies)") && out.contains("heal/dir2/obj-2"),
        "{out}"
    );
    let (code, out) = admin(&s, &["heal", "--dry-run", "--json"]);
    assert_eq!(code, 1, "{out}");
    // The output is stdout then stderr: the JSON document comes first.
    let status: serde_json::Value = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .next()
        .and_then(Result::ok)
        .expect("json status");
    let mut named: Vec<&str> = status["unhealthy_objects"]
        .as_array()
        .expect("unhealthy_objects")
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    named.sort();
    assert_eq!(named, ["dir0/obj-0", "dir2/obj-2"], "{out}");
    let (code, out) = admin(&s, &["heal"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("scanned 24 objects, healed 2"), "{out}");
    // Bitrot is only visible to a deep heal.
    let (code, out) = admin(&s, &["heal", "--deep", "--dry-run"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = admin(&s, &["heal", "--deep", "--bucket", "heal"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(&s, &["heal", "--deep", "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("heal ok: scanned 24 objects"), "{out}");
    let (code, info) = admin(&s, &["info"]);
    assert_eq!(code, 0);
    assert!(
        info.contains("4/4 drives online") && info.contains("EC 2+2"),
        "{info}"
    );
    // All shards back: drives 2 and 3 lose everything, 0 and 1 (healed) serve all reads.
    read_all_without(&c, &s, "heal", &[2, 3], &objects).await;
    // The server's log file (not a terminal) is plain text, without colour codes.
    let log = s.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in the log file");
}

#[tokio::test]
async fn replaced_drive_is_healed_and_resumes_after_restart() {
    let keep = tempfile::tempdir().expect("tmp");
    let paths: Vec<PathBuf> = (1..=4)
        .map(|i| keep.path().join(format!("drive{i}")))
        .collect();
    let start = |speed: &str| Server::start_on(&paths, &[("CAIRN_HEAL_SPEED", speed)]);
    let s = start("fast");
    let c = client(&s);
    let objects = put_objects(&c, "swap", 160).await;
    drop(s);
    // Drive 3 is replaced by an empty folder while the server is down: not a mount point,
    // so it waits, offline, for the operator to say it is a replacement.
    std::fs::remove_dir_all(&paths[2]).expect("wipe");
    std::fs::create_dir(&paths[2]).expect("empty drive");
    // Heal slowly, and stop the server in the middle.
    let s = start("slow");
    let tracker = paths[2].join(".cairn.sys/healing.json");
    let (code, info) = admin(&s, &["info"]);
    assert_eq!(code, 0);
    assert!(info.contains("(format missing)"), "{info}");
    assert!(
        !paths[2].join(".cairn.sys").exists(),
        "formatted without the operator"
    );
    let (code, out) = admin(&s, &["drive", "replace", &paths[2].display().to_string()]);
    assert_eq!(code, 0, "{out}");
    wait_for("tracker progress", Duration::from_secs(60), || {
        std::fs::read_to_string(&tracker)
            .is_ok_and(|t| t.contains("\"objects_done\"") && !t.contains("\"objects_done\":0"))
    });
    let (code, out) = admin(&s, &["heal", "--status"]);
    assert_eq!(code, 0);
    assert!(out.contains("replaced drive"), "{out}");
    drop(s);
    let saved = std::fs::read_to_string(&tracker).expect("tracker persisted across the stop");
    assert!(
        saved.contains("\"last_key\":\"dir"),
        "a resume point was saved: {saved}"
    );
    // Restart: the heal resumes and finishes (the tracker disappears).
    let s = start("fast");
    wait_for(
        "replacement heal to finish",
        Duration::from_secs(120),
        || !tracker.exists(),
    );
    let (code, info) = admin(&s, &["info"]);
    assert_eq!(code, 0);
    assert!(!info.contains("healing "), "{info}");
    let c = client(&s);
    read_all_without(&c, &s, "swap", &[0, 1], &objects).await;
}

#[tokio::test]
async fn writes_that_missed_a_drive_are_healed_when_it_returns() {
    let s = Server::start_with(4, &[("CAIRN_HEAL_SPEED", "fast")]);
    let c = client(&s);
    c.create_bucket()
        .bucket("mrf")
        .send()
        .await
        .expect("bucket");
    c.put_object()
        .bucket("mrf")
        .key("src")
        .body(ByteStream::from(data(2_000_000, 1)))
        .send()
        .await
        .expect("put");
    // Drive 3 goes away (as if unplugged) while clients write.
    let away = s.drives[3].with_extension("away");
    std::fs::rename(&s.drives[3], &away).expect("unplug");
    let mut objects = vec![("src".to_string(), data(2_000_000, 1))];
    for i in 0..6 {
        let body = data(300_000 * (i + 1), i as u32 + 10);
        let key = format!("during/{i}");
        c.put_object()
            .bucket("mrf")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put with a drive away");
        objects.push((key, body));
    }
    c.copy_object()
        .bucket("mrf")
        .key("copy")
        .copy_source("mrf/during/5")
        .send()
        .await
        .expect("copy");
    objects.push(("copy".into(), objects[6].1.clone()));
    let parts = [data(5 << 20, 7), data(1 << 20, 8)];
    cairn_integration::multipart_bytes(&c, "mrf", "mp", &parts).await;
    objects.push(("mp".into(), parts.concat()));
    // A bucket made while the drive is away: its objects heal onto the drive too (the
    // bucket is made there first).
    c.create_bucket()
        .bucket("mrf-new")
        .send()
        .await
        .expect("bucket with a drive away");
    let late = data(700_000, 99);
    c.put_object()
        .bucket("mrf-new")
        .key("late")
        .body(ByteStream::from(late.clone()))
        .send()
        .await
        .expect("put into the new bucket");
    // The drive comes back: the partial-write queue heals everything onto it.
    std::fs::rename(&away, &s.drives[3]).expect("plug back");
    let drive = s.drives[3].clone();
    wait_for(
        "MRF to heal the returning drive",
        Duration::from_secs(90),
        || {
            objects
                .iter()
                .all(|(k, _)| drive.join("mrf").join(k).join("@meta").exists())
                && drive.join("mrf-new/late/@meta").exists()
        },
    );
    read_all_without(&c, &s, "mrf", &[0, 1], &objects).await;
    read_all_without(&c, &s, "mrf-new", &[0, 1], &[("late".into(), late)]).await;
}

#[tokio::test]
async fn the_heal_queue_survives_a_restart() {
    let keep = tempfile::tempdir().expect("tmp");
    let paths: Vec<PathBuf> = (1..=4)
        .map(|i| keep.path().join(format!("drive{i}")))
        .collect();
    let s = Server::start_on(&paths, &[]);
    let c = client(&s);
    c.create_bucket()
        .bucket("persist")
        .send()
        .await
        .expect("bucket");
    let away = paths[1].with_extension("away");
    std::fs::rename(&paths[1], &away).expect("unplug");
    let body = data(1_000_000, 3);
    c.put_object()
        .bucket("persist")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("put");
    // The heal is tried (the drive is still away) and waits for its next try: still
    // counted as queued.
    std::thread::sleep(Duration::from_secs(3));
    let (code, info) = admin(&s, &["info"]);
    assert_eq!(code, 0, "{info}");
    assert!(
        info.contains("1 object(s) queued for repair"),
        "a heal waiting to be tried again is queued: {info}"
    );
    // Graceful stop: the queue, waiting heals included, is saved on the drives that answer.
    let status = s.terminate();
    assert!(status.success());
    let saved = std::fs::read_to_string(paths[0].join(".cairn.sys/mrf.json")).expect("queue");
    assert!(
        saved.contains(r#""persist","k""#),
        "queue persisted: {saved}"
    );
    std::fs::rename(&away, &paths[1]).expect("plug back");
    let s = Server::start_on(&paths, &[]);
    let meta = paths[1].join("persist/k/@meta");
    wait_for(
        "the restored queue to heal the object",
        Duration::from_secs(30),
        || meta.exists(),
    );
    let c = client(&s);
    read_all_without(&c, &s, "persist", &[0, 2], &[("k".to_string(), body)]).await;
}

#[tokio::test]
async fn a_drive_swapped_while_running_is_noticed_and_healed() {
    let s = Server::start_with(
        4,
        &[
            ("CAIRN_HEAL_SPEED", "fast"),
            ("CAIRN_DRIVE_CHECK_INTERVAL", "1s"),
        ],
    );
    let c = client(&s);
    let objects = put_objects(&c, "live", 20).await;
    let (code, out) = admin(&s, &["user", "add", "keeper", "keepersecret123"]);
    assert_eq!(code, 0, "{out}");
    // The folder of drive 1 is swapped for an empty one under the running server: it goes
    // offline and stays so (it could be the bare mount point of a failed disk) until the
    // operator says it is a replacement.
    unplug(&s.drives[1]);
    std::fs::create_dir(&s.drives[1]).expect("empty drive");
    let format = s.drives[1].join(".cairn.sys/format.json");
    let tracker = s.drives[1].join(".cairn.sys/healing.json");
    wait_for("the drive to go offline", Duration::from_secs(30), || {
        admin(&s, &["info"]).1.contains("(format missing)")
    });
    assert!(
        !s.drives[1].join(".cairn.sys").exists(),
        "formatted without the operator"
    );
    let (code, out) = admin(
        &s,
        &["drive", "replace", &s.drives[1].display().to_string()],
    );
    assert_eq!(code, 0, "{out}");
    wait_for(
        "the swapped drive to be formatted",
        Duration::from_secs(30),
        || format.exists(),
    );
    wait_for(
        "the swapped drive to be healed",
        Duration::from_secs(60),
        || !tracker.exists(),
    );
    let (code, info) = admin(&s, &["info"]);
    assert_eq!(code, 0);
    assert!(info.contains("4/4 drives online"), "{info}");
    read_all_without(&c, &s, "live", &[0, 2], &objects).await;
    // Identities are healed onto it as objects are: a user, and the key that seals secrets.
    let user = format!("{}.json", hex::encode("keeper"));
    for (dir, file) in [("users", user.as_str()), ("system", "7365616c.json")] {
        let path = s.drives[1].join(".cairn.sys/iam").join(dir).join(file);
        assert!(path.exists(), "{} not healed", path.display());
    }
}
