//! Crash safety proven by crashing: the real server, armed with a named crash point
//! (`CAIRN_TEST_CRASH_AT`), aborts in the middle of a PUT, copy, multipart completion,
//! delete, heal or format. Restarted over the same drives, every object is old or new —
//! never torn, never gone if it was acknowledged — uploads stay completable, and staging
//! is swept.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use cairn::crash;
use cairn_integration::{
    admin, client_for, files_named, run_server_until_exit, wait_until, Server, ACCESS_KEY,
    SECRET_KEY,
};

fn client(s: &Server) -> Client {
    // No retries: a request the server died under fails, as it would for a real client.
    client_for(&s.endpoint, ACCESS_KEY, SECRET_KEY, false)
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).rotate_left(seed % 31) as u8)
        .collect()
}

async fn put(c: &Client, key: &str, body: &[u8]) -> Result<(), String> {
    c.put_object()
        .bucket("crash")
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

/// The object's bytes, `None` when it does not exist; panics on any other answer (a torn
/// or unreadable object).
async fn get(c: &Client, key: &str) -> Option<Vec<u8>> {
    match c.get_object().bucket("crash").key(key).send().await {
        Ok(o) => Some(o.body.collect().await.expect("body").into_bytes().to_vec()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
        Err(e) => panic!("reading {key} after the crash: {e:?}"),
    }
}

/// Four drive folders that outlive the servers started on them.
struct Drives {
    _dir: tempfile::TempDir,
    paths: Vec<PathBuf>,
}

impl Drives {
    fn new() -> Drives {
        let dir = tempfile::tempdir().expect("tmp");
        let paths = (1..=4).map(|i| dir.path().join(format!("d{i}"))).collect();
        Drives { _dir: dir, paths }
    }

    fn start(&self) -> Server {
        Server::start_on(&self.paths, &[])
    }

    fn start_armed(&self, point: &str, nth: u32) -> Server {
        Server::start_on(&self.paths, &[(crash::ENV, &format!("{point}@{nth}"))])
    }

    /// Staging holds nothing once the restarted server has its drives online.
    fn assert_swept(&self, what: &str) {
        for p in &self.paths {
            let tmp = p.join(".cairn.sys/tmp");
            wait_until(
                &format!("{what}: {} swept", tmp.display()),
                Duration::from_secs(10),
                || std::fs::read_dir(&tmp).is_ok_and(|mut d| d.next().is_none()),
            );
        }
    }
}

/// The server died of the armed point (SIGABRT), not of something else.
fn assert_aborted(s: Server, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let status = s.wait_exit(Duration::from_secs(30));
    assert_eq!(
        status.signal(),
        Some(6),
        "{what}: the server did not abort: {status}"
    );
}

const OLD: (usize, u32) = (3 << 20, 1);
const NEW: (usize, u32) = ((3 << 20) + 12345, 2);

/// A bucket holding `old` under `key` and a few bystanders, all acknowledged.
async fn prepared(d: &Drives, key: &str) -> Vec<(String, Vec<u8>)> {
    let s = d.start();
    let c = client(&s);
    c.create_bucket()
        .bucket("crash")
        .send()
        .await
        .expect("bucket");
    put(&c, key, &data(OLD.0, OLD.1)).await.expect("old");
    let bystanders: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("by/{i}"), data(100_000 * i + 7, 10 + i as u32)))
        .collect();
    for (k, v) in &bystanders {
        put(&c, k, v).await.expect("bystander");
    }
    tokio::task::block_in_place(|| assert!(s.terminate().success()));
    bystanders
}

async fn assert_bystanders(c: &Client, bystanders: &[(String, Vec<u8>)], what: &str) {
    for (k, v) in bystanders {
        assert_eq!(
            get(c, k).await.as_ref(),
            Some(v),
            "{what}: acknowledged {k} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_or_copy_aborted_at_any_step_leaves_old_or_new() {
    let (old, new) = (data(OLD.0, OLD.1), data(NEW.0, NEW.1));
    let cases: &[(&str, u32, bool)] = &[
        (crash::PUT_STAGED, 1, false),
        (crash::DRIVE_DIRS, 1, false),
        (crash::DRIVE_DATA_RENAMED, 2, false),
        (crash::DRIVE_META_STAGED, 3, false),
        (crash::DRIVE_META_RENAMED, 1, false),
        (crash::DRIVE_META_RENAMED, 2, true),
        (crash::DRIVE_META_RENAMED, 4, false),
        (crash::PUT_COMMITTED, 1, true),
    ];
    for &(point, nth, copy) in cases {
        let what = format!("{} at {point}@{nth}", if copy { "copy" } else { "put" });
        let d = Drives::new();
        let bystanders = prepared(&d, "k").await;
        if copy {
            let s = d.start();
            put(&client(&s), "src", &new).await.expect("copy source");
            tokio::task::block_in_place(|| assert!(s.terminate().success()));
        }
        let s = d.start_armed(point, nth);
        let c = client(&s);
        let r = if copy {
            c.copy_object()
                .bucket("crash")
                .key("k")
                .copy_source("crash/src")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:?}"))
        } else {
            put(&c, "k", &new).await
        };
        assert!(r.is_err(), "{what}: acknowledged although the server died");
        tokio::task::block_in_place(|| assert_aborted(s, &what));
        let s = d.start();
        let c = client(&s);
        let got = get(&c, "k")
            .await
            .unwrap_or_else(|| panic!("{what}: object gone"));
        assert!(got == old || got == new, "{what}: torn object");
        if point == crash::PUT_STAGED {
            assert!(got == old, "{what}: nothing was committed");
        }
        if point == crash::PUT_COMMITTED {
            assert!(got == new, "{what}: the commit was complete");
        }
        assert_bystanders(&c, &bystanders, &what).await;
        tokio::task::block_in_place(|| d.assert_swept(&what));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_completion_aborted_at_any_step_leaves_the_object_or_a_completable_upload() {
    let old = data(OLD.0, OLD.1);
    let parts_data = [data(5 << 20, 3), data(1 << 20, 4)];
    let whole: Vec<u8> = parts_data.concat();
    let cases: &[(&str, u32)] = &[
        (crash::COMPLETE_LINKED, 1),
        (crash::DRIVE_DATA_RENAMED, 2),
        (crash::DRIVE_META_RENAMED, 3),
        (crash::COMPLETE_COMMITTED, 1),
    ];
    for &(point, nth) in cases {
        let what = format!("complete at {point}@{nth}");
        let d = Drives::new();
        let bystanders = prepared(&d, "mp").await;
        let s = d.start();
        let c = client(&s);
        let id = c
            .create_multipart_upload()
            .bucket("crash")
            .key("mp")
            .send()
            .await
            .expect("create")
            .upload_id
            .expect("id");
        let mut parts = Vec::new();
        for (i, p) in parts_data.iter().enumerate() {
            let n = i as i32 + 1;
            let up = c
                .upload_part()
                .bucket("crash")
                .key("mp")
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(p.clone()))
                .send()
                .await
                .expect("part");
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .e_tag(up.e_tag.expect("etag"))
                    .build(),
            );
        }
        let done = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        tokio::task::block_in_place(|| assert!(s.terminate().success()));
        let complete = |c: Client| {
            let (id, done) = (id.clone(), done.clone());
            async move {
                c.complete_multipart_upload()
                    .bucket("crash")
                    .key("mp")
                    .upload_id(id)
                    .multipart_upload(done)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:?}"))
            }
        };
        let s = d.start_armed(point, nth);
        assert!(complete(client(&s)).await.is_err(), "{what}: acknowledged");
        tokio::task::block_in_place(|| assert_aborted(s, &what));
        let s = d.start();
        let c = client(&s);
        let got = get(&c, "mp")
            .await
            .unwrap_or_else(|| panic!("{what}: object gone"));
        if got == old {
            // Not completed: the upload must still be whole and completable.
            complete(c.clone())
                .await
                .unwrap_or_else(|e| panic!("{what}: the upload was lost: {e}"));
            assert!(
                get(&c, "mp").await == Some(whole.clone()),
                "{what}: completed again"
            );
        } else {
            assert!(got == whole, "{what}: torn object");
            // The client never got its answer and retries: the completion it asked for.
            complete(c.clone())
                .await
                .unwrap_or_else(|e| panic!("{what}: the retried Complete failed: {e}"));
            assert!(
                get(&c, "mp").await == Some(whole.clone()),
                "{what}: retried"
            );
        }
        if point == crash::COMPLETE_COMMITTED {
            assert!(got == whole, "{what}: the commit was complete");
        }
        assert_bystanders(&c, &bystanders, &what).await;
        tokio::task::block_in_place(|| d.assert_swept(&what));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_aborted_midway_leaves_old_or_nothing() {
    let old = data(OLD.0, OLD.1);
    for nth in [1, 3] {
        let what = format!("delete at {}@{nth}", crash::DRIVE_META_RENAMED);
        let d = Drives::new();
        let bystanders = prepared(&d, "k").await;
        let s = d.start_armed(crash::DRIVE_META_RENAMED, nth);
        let r = client(&s)
            .delete_object()
            .bucket("crash")
            .key("k")
            .send()
            .await;
        assert!(r.is_err(), "{what}: acknowledged");
        tokio::task::block_in_place(|| assert_aborted(s, &what));
        let s = d.start();
        let c = client(&s);
        let got = get(&c, "k").await;
        assert!(got.is_none() || got == Some(old.clone()), "{what}: torn");
        assert_bystanders(&c, &bystanders, &what).await;
        tokio::task::block_in_place(|| d.assert_swept(&what));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_aborted_midway_leaves_the_object_readable_and_healable() {
    let old = data(OLD.0, OLD.1);
    for (point, nth) in [
        (crash::HEAL_OLD_REMOVED, 1),
        (crash::HEAL_STAGED, 1),
        (crash::DRIVE_META_RENAMED, 1),
    ] {
        let what = format!("heal at {point}@{nth}");
        let d = Drives::new();
        let bystanders = prepared(&d, "k").await;
        // Rot one drive's shard of the object: a deep heal rebuilds it.
        let shard = d
            .paths
            .iter()
            .find_map(|p| files_named(&p.join("crash").join("k"), "part.1").pop())
            .expect("a shard of k");
        let mut bytes = std::fs::read(&shard).expect("shard");
        for b in bytes.iter_mut().skip(100).take(64) {
            *b ^= 0x5a;
        }
        std::fs::write(&shard, bytes).expect("rot");
        let s = d.start_armed(point, nth);
        let endpoint = s.endpoint.clone();
        let (code, out) = tokio::task::block_in_place(|| {
            admin(&endpoint, &["heal", "--deep", "--bucket", "crash"])
        });
        assert_ne!(
            code, 0,
            "{what}: heal finished although the server died: {out}"
        );
        tokio::task::block_in_place(|| assert_aborted(s, &what));
        let s = d.start();
        let c = client(&s);
        assert!(
            get(&c, "k").await == Some(old.clone()),
            "{what}: object damaged"
        );
        assert_bystanders(&c, &bystanders, &what).await;
        tokio::task::block_in_place(|| d.assert_swept(&what));
        let endpoint = s.endpoint.clone();
        let (code, out) = tokio::task::block_in_place(|| {
            admin(&endpoint, &["heal", "--deep", "--bucket", "crash"])
        });
        assert_eq!(code, 0, "{what}: heal after the crash: {out}");
        let (code, out) = tokio::task::block_in_place(|| {
            admin(
                &endpoint,
                &["heal", "--deep", "--dry-run", "--bucket", "crash"],
            )
        });
        assert_eq!(code, 0, "{what}: {out}");
        assert!(
            out.contains("heal ok: scanned"),
            "{what}: still damaged after heal: {out}"
        );
    }
}

#[test]
fn a_format_aborted_midway_comes_up_formatted_on_restart() {
    use std::os::unix::process::ExitStatusExt;
    for (point, nth) in [
        (crash::FORMAT_DIRS, 2),
        (crash::FORMAT_WRITTEN, 1),
        (crash::FORMAT_WRITTEN, 3),
    ] {
        let what = format!("format at {point}@{nth}");
        let d = Drives::new();
        let (status, log) = run_server_until_exit(
            &d.paths,
            &[(crash::ENV, &format!("{point}@{nth}"))],
            Duration::from_secs(30),
        );
        assert_eq!(status.signal(), Some(6), "{what}: {status}; log:\n{log}");
        let s = d.start();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let c = client(&s);
            c.create_bucket()
                .bucket("crash")
                .send()
                .await
                .expect("bucket");
            put(&c, "k", b"after").await.expect("put after the crash");
            assert_eq!(get(&c, "k").await.as_deref(), Some(&b"after"[..]));
        });
        for p in &d.paths {
            wait_until(
                &format!("{what}: {} formatted", p.display()),
                Duration::from_secs(30),
                || p.join(".cairn.sys/format.json").exists(),
            );
        }
        d.assert_swept(&what);
    }
}

/// The keys a ListObjectsV2 of the bucket shows.
async fn listed(c: &Client) -> Vec<String> {
    c.list_objects_v2()
        .bucket("crash")
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

/// A key whose latest version is a delete marker is flagged on the drives and skipped by
/// listings unread; a PUT over it (or below it) aborted at any step must leave listings and
/// reads agreeing: the key is listed exactly when it can be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_over_a_delete_marker_aborted_at_any_step_is_listed_as_it_reads() {
    let new = data(NEW.0, NEW.1);
    let points: &[(&str, u32)] = &[
        (crash::DRIVE_DIRS, 1),
        (crash::DRIVE_META_STAGED, 3),
        (crash::DRIVE_META_RENAMED, 2),
        (crash::PUT_COMMITTED, 1),
    ];
    // "k": a new version over the marker; "p/c": a first key below the marked "p".
    for key in ["k", "p/c"] {
        for &(point, nth) in points {
            let what = format!("put {key} at {point}@{nth}");
            let d = Drives::new();
            let s = d.start();
            let c = client(&s);
            c.create_bucket()
                .bucket("crash")
                .send()
                .await
                .expect("bucket");
            cairn_integration::enable_versioning(&c, "crash").await;
            for k in ["k", "p", "other"] {
                put(&c, k, b"old").await.expect("old");
            }
            for k in ["k", "p"] {
                c.delete_object()
                    .bucket("crash")
                    .key(k)
                    .send()
                    .await
                    .expect("marker");
            }
            assert_eq!(listed(&c).await, ["other"], "{what}: before");
            let flagged = d
                .paths
                .iter()
                .filter(|p| p.join("crash/@dm.k").exists())
                .count();
            assert_eq!(flagged, 4, "{what}: the marker is flagged on every drive");
            tokio::task::block_in_place(|| assert!(s.terminate().success()));

            let s = d.start_armed(point, nth);
            let r = put(&client(&s), key, &new).await;
            assert!(r.is_err(), "{what}: acknowledged although the server died");
            tokio::task::block_in_place(|| assert_aborted(s, &what));

            let s = d.start();
            let c = client(&s);
            let got = get(&c, key).await;
            assert!(
                got.is_none() || got.as_ref() == Some(&new),
                "{what}: torn object"
            );
            if point == crash::PUT_COMMITTED {
                assert!(got.is_some(), "{what}: the commit was complete");
            }
            let keys = listed(&c).await;
            assert_eq!(
                keys.contains(&key.to_string()),
                got.is_some(),
                "{what}: listed {keys:?} but read {:?}",
                got.map(|g| g.len())
            );
            assert!(keys.contains(&"other".to_string()), "{what}: {keys:?}");
            tokio::task::block_in_place(|| d.assert_swept(&what));
        }
    }
}

/// Many PUTs in flight when the server aborts mid-commit (group commit shares each sync
/// among them): every acknowledged one reads back new, every other one old, new or — for a
/// key that did not exist — absent; staging is swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_puts_aborted_mid_commit_leave_each_key_old_or_new() {
    // Group commit (the default) and per-file fsyncs (CAIRN_COMMIT_SYNC=fsync).
    let cases: &[(&str, u32, &str)] = &[
        (crash::DRIVE_META_RENAMED, 41, "group"),
        (crash::DRIVE_DATA_RENAMED, 23, "group"),
        (crash::PUT_COMMITTED, 9, "group"),
        (crash::DRIVE_META_RENAMED, 41, "fsync"),
    ];
    for &(point, nth, sync) in cases {
        let what = format!("32 puts at {point}@{nth}, {sync} commits");
        let d = Drives::new();
        let bystanders = prepared(&d, "k").await;
        // 16 keys that exist, 16 that do not; inline-sized and erasure-coded bodies.
        let size = |i: u32| {
            if i.is_multiple_of(2) {
                3000 + i as usize
            } else {
                (1 << 20) + 77 * i as usize
            }
        };
        let s = d.start();
        let c = client(&s);
        for i in 0..16u32 {
            put(&c, &format!("many/{i}"), &data(size(i), 100 + i))
                .await
                .expect("old version");
        }
        tokio::task::block_in_place(|| assert!(s.terminate().success()));

        let armed = format!("{point}@{nth}");
        let s = Server::start_on(
            &d.paths,
            &[(crash::ENV, &armed), ("CAIRN_COMMIT_SYNC", sync)],
        );
        let c = client(&s);
        let puts: Vec<_> = (0..32u32)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move {
                    let body = data(size(i) + 5, 1000 + i);
                    let r = put(&c, &format!("many/{i}"), &body).await;
                    (i, r.is_ok())
                })
            })
            .collect();
        let mut acked = Vec::new();
        for p in puts {
            acked.push(p.await.expect("put task"));
        }
        tokio::task::block_in_place(|| assert_aborted(s, &what));
        assert!(
            acked.iter().any(|(_, ok)| !ok),
            "{what}: every PUT acknowledged although the server died"
        );

        let s = d.start();
        let c = client(&s);
        for (i, ok) in acked {
            let key = format!("many/{i}");
            let new = data(size(i) + 5, 1000 + i);
            let got = get(&c, &key).await;
            if ok {
                assert_eq!(got.as_ref(), Some(&new), "{what}: acknowledged {key} lost");
            } else if i < 16 {
                let old = data(size(i), 100 + i);
                let got = got.unwrap_or_else(|| panic!("{what}: {key} gone"));
                assert!(got == old || got == new, "{what}: {key} torn");
            } else {
                assert!(got.is_none_or(|g| g == new), "{what}: {key} torn");
            }
        }
        assert_bystanders(&c, &bystanders, &what).await;
        tokio::task::block_in_place(|| d.assert_swept(&what));
    }
}
