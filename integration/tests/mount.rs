//! `cairn mount` through a real FUSE mount of a real server: POSIX behaviour compared with a
//! plain directory under random operation sequences, fsx-style data checks on one file,
//! persistence of metadata across remounts, visibility to S3 clients, quotas, and two
//! mounts of one bucket.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use cairn_integration::{binary, client, Mount, Server, ACCESS_KEY, SECRET_KEY};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

fn make_bucket(server: &Server, bucket: &str) {
    let c = client(server);
    rt().block_on(c.create_bucket().bucket(bucket).send())
        .expect("create bucket");
}

fn admin(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(binary())
        .arg("admin")
        .args(args)
        .arg("--endpoint")
        .arg(&server.endpoint)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("cairn admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic pseudo-random numbers (no extra dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn digest(d: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(d))
}

/// The outcome of an operation, comparable across filesystems.
fn outcome<T>(r: std::io::Result<T>) -> Result<(), i32> {
    r.map(|_| ()).map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// Every file (with content), directory and symlink below `root`.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir).expect("read_dir").flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let meta = fs::symlink_metadata(&p).expect("lstat");
            if meta.file_type().is_symlink() {
                let t = fs::read_link(&p).expect("readlink");
                out.push((rel, format!("-> {}", t.display())));
            } else if meta.is_dir() {
                out.push((rel.clone(), "dir".into()));
                walk(root, &p, out);
            } else {
                let data = fs::read(&p).expect("read");
                out.push((rel, format!("{} bytes {}", data.len(), digest(&data))));
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Random operations on the mount and on a plain directory give the same results and
/// leave the same tree.
#[test]
fn random_operations_match_a_local_directory() {
    let server = Server::start();
    make_bucket(&server, "model");
    let mount = Mount::start(&server, "model", &[]);
    let local = tempfile::tempdir().expect("tempdir");
    let roots = [mount.path.clone(), local.path().to_path_buf()];
    let names = ["a", "b", "c", "d/a", "d/b", "d/e/a", "e"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for step in 0..400 {
        let op = rng.below(10);
        let n1 = names[rng.below(names.len() as u64) as usize];
        let n2 = names[rng.below(names.len() as u64) as usize];
        let n = rng.below(3000) as usize;
        let data = rng.bytes(n);
        let off = rng.below(4000);
        let len = rng.below(5000);
        let mut results = Vec::new();
        for root in &roots {
            let p1 = root.join(n1);
            let p2 = root.join(n2);
            let r = match op {
                0 => outcome(fs::write(&p1, &data)),
                1 => outcome(
                    OpenOptions::new()
                        .append(true)
                        .open(&p1)
                        .and_then(|mut f| f.write_all(&data)),
                ),
                2 => outcome(OpenOptions::new().write(true).open(&p1).and_then(|mut f| {
                    f.seek(SeekFrom::Start(off))?;
                    f.write_all(&data)
                })),
                3 => outcome(
                    OpenOptions::new()
                        .write(true)
                        .open(&p1)
                        .and_then(|f| f.set_len(len)),
                ),
                4 => outcome(fs::create_dir(&p1)),
                5 => outcome(fs::remove_dir(&p1)),
                6 => outcome(fs::remove_file(&p1)),
                7 => outcome(fs::rename(&p1, &p2)),
                8 => outcome(std::os::unix::fs::symlink(n2, &p1)),
                _ => {
                    // Read back and compare contents right away.
                    let r = fs::read(&p1);
                    results.push(format!("{:?}", r.as_ref().map(|d| digest(d))));
                    outcome(r)
                }
            };
            results.push(format!("{r:?}"));
        }
        let half = results.len() / 2;
        assert_eq!(
            results[..half],
            results[half..],
            "step {step}: op {op} on {n1} {n2} differs (mount vs local)\n{}",
            mount.log()
        );
    }
    assert_eq!(tree(&mount.path), tree(local.path()));
    // And after a remount, from the store alone.
    let expect = tree(local.path());
    mount.unmount();
    let again = Mount::start(&server, "model", &[]);
    assert_eq!(tree(&again.path), expect);
}

/// fsx-style: random writes, truncates and reads on one file keep its data exact, across
/// closes and reopens (reads then come from the store).
#[test]
fn fsx_random_io_keeps_data_exact() {
    let server = Server::start();
    make_bucket(&server, "fsx");
    let mount = Mount::start(&server, "fsx", &[]);
    let path = mount.path.join("file");
    let mut model: Vec<u8> = Vec::new();
    let mut rng = Rng(42);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("open");
    for step in 0..600 {
        match rng.below(8) {
            0..=2 => {
                let off = rng.below(model.len() as u64 + 200_000) as usize;
                let n = 1 + rng.below(70_000) as usize;
                let data = rng.bytes(n);
                f.seek(SeekFrom::Start(off as u64)).expect("seek");
                f.write_all(&data).expect("write");
                if model.len() < off + data.len() {
                    model.resize(off + data.len(), 0);
                }
                model[off..off + data.len()].copy_from_slice(&data);
            }
            3 => {
                let len = rng.below(model.len() as u64 + 100_000) as usize;
                f.set_len(len as u64).expect("truncate");
                model.resize(len, 0);
            }
            4 => {
                // Close (upload) and reopen: later reads come from the store.
                f.sync_all().expect("fsync");
                drop(f);
                f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .expect("reopen");
                assert_eq!(
                    f.metadata().expect("stat").len(),
                    model.len() as u64,
                    "step {step}"
                );
            }
            _ => {
                let off = rng.below(model.len() as u64 + 1) as usize;
                let len = rng.below(100_000) as usize;
                let mut buf = vec![0u8; len];
                f.seek(SeekFrom::Start(off as u64)).expect("seek");
                let mut got = 0;
                while got < len {
                    let n = f.read(&mut buf[got..]).expect("read");
                    if n == 0 {
                        break;
                    }
                    got += n;
                }
                let end = (off + len).min(model.len());
                assert_eq!(got, end.saturating_sub(off), "step {step}: read length");
                assert!(
                    buf[..got] == model[off..end],
                    "step {step}: data differs at {off}"
                );
            }
        }
    }
    drop(f);
    let c = client(&server);
    let rt = rt();
    let resp = rt
        .block_on(c.get_object().bucket("fsx").key("file").send())
        .expect("get");
    let stored = rt.block_on(resp.body.collect()).expect("body").into_bytes();
    assert!(stored == model, "store holds the final data");
}

/// Files written through the mount are objects; objects put through S3 are files; mode,
/// owner and mtime survive a remount; large files stream; memory stays bounded.
#[test]
fn mount_and_s3_see_the_same_data() {
    let server = Server::start();
    make_bucket(&server, "shared");
    let c = client(&server);
    let rt = rt();
    let mount = Mount::start(&server, "shared/vol", &[]);
    let m = &mount.path;
    fs::create_dir_all(m.join("docs/empty")).expect("mkdir");
    fs::write(m.join("docs/a.txt"), b"alpha").expect("write");
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i % 251) as u8).collect();
    fs::write(m.join("big.bin"), &big).expect("write big");
    fs::set_permissions(m.join("docs/a.txt"), fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(m.join("docs/a.txt"), Some(1234), Some(5678)).expect("chown");
    // Objects, under the volume prefix.
    let keys: Vec<String> = rt
        .block_on(c.list_objects_v2().bucket("shared").send())
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    assert_eq!(
        keys,
        [
            "vol/big.bin",
            "vol/docs/",
            "vol/docs/a.txt",
            "vol/docs/empty/"
        ]
        .map(String::from)
        .to_vec()
    );
    let head = rt
        .block_on(c.head_object().bucket("shared").key("vol/big.bin").send())
        .expect("head");
    assert_eq!(head.content_length(), Some(big.len() as i64));
    // An object put through S3 shows up as a file.
    rt.block_on(
        c.put_object()
            .bucket("shared")
            .key("vol/docs/from-s3.txt")
            .body(ByteStream::from_static(b"from s3"))
            .send(),
    )
    .expect("put");
    assert_eq!(
        fs::read(m.join("docs/from-s3.txt")).expect("read"),
        b"from s3"
    );
    assert!(fs::read(m.join("big.bin")).expect("read big") == big);
    // Files opened read-only may bypass the page cache; mmaps of them (shared, as a
    // database reader would, and private, as the loader maps programs) still see the bytes.
    let want = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&big));
    for flags in ["MAP_SHARED", "MAP_PRIVATE"] {
        let script = format!(
            "import hashlib, mmap, sys\n\
             f = open(sys.argv[1], 'rb')\n\
             m = mmap.mmap(f.fileno(), 0, flags=mmap.{flags}, prot=mmap.PROT_READ)\n\
             print(hashlib.sha256(m).hexdigest())"
        );
        let out = std::process::Command::new("python3")
            .args(["-c", &script])
            .arg(m.join("big.bin"))
            .output()
            .expect("python3");
        assert!(out.status.success(), "mmap {flags}: {out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want,
            "mmap {flags}"
        );
    }
    let rss = mount.peak_rss_kib();
    assert!(
        rss < 150 * 1024,
        "mount peak RSS {rss} KiB after 40 MiB through it"
    );
    // Replaced through S3 while a reader is in the middle: the reader gets the old bytes
    // it had fetched and then an error, never the new object's bytes after the old ones.
    let mut reader = fs::File::open(m.join("big.bin")).expect("open");
    let mut got = vec![0u8; 1 << 20];
    reader.read_exact(&mut got).expect("first MiB");
    rt.block_on(
        c.put_object()
            .bucket("shared")
            .key("vol/big.bin")
            .body(ByteStream::from(vec![b'B'; 40 << 20]))
            .send(),
    )
    .expect("replace");
    let rest = reader.read_to_end(&mut got);
    assert!(
        rest.is_err() || got == big,
        "a read mixed two objects: {} bytes, {rest:?}",
        got.len()
    );
    drop(reader);
    assert!(fs::read(m.join("big.bin")).expect("read new") == vec![b'B'; 40 << 20]);
    let mtime = fs::metadata(m.join("docs/a.txt")).expect("stat").mtime();
    mount.unmount();
    let again = Mount::start(&server, "shared/vol", &[]);
    let meta = fs::metadata(again.path.join("docs/a.txt")).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!(meta.mtime(), mtime);
    assert!(again.path.join("docs/empty").is_dir());
    assert_eq!(
        fs::read(again.path.join("docs/a.txt")).expect("read"),
        b"alpha"
    );
}

/// A bucket quota shows in statfs and gives ENOSPC; raising it lets writes resume.
#[test]
fn quota_gives_enospc_and_statfs() {
    let server = Server::start();
    make_bucket(&server, "quota");
    admin(&server, &["bucket", "quota", "set", "quota", "8MiB"]);
    let mount = Mount::start(&server, "quota", &[]);
    let st = nix::sys::statvfs::statvfs(&mount.path).expect("statfs");
    assert_eq!(st.blocks() * st.fragment_size(), 8 << 20);
    let mut f = fs::File::create(mount.path.join("fill")).expect("create");
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0;
    let err = loop {
        match f.write_all(&chunk) {
            Ok(()) => written += chunk.len(),
            Err(e) => break e,
        }
        assert!(written <= 16 << 20, "no ENOSPC after {written} bytes");
    };
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert!(written <= 8 << 20);
    drop(f);
    admin(&server, &["bucket", "quota", "set", "quota", "32MiB"]);
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(mount.path.join("more"), vec![1u8; 4 << 20]).expect("write after raise");
    let out = admin(&server, &["bucket", "quota", "get", "quota"]);
    assert!(out.contains("quota 32.0 MiB"), "{out}");
}

/// A file rewritten in place (`cp new f`: truncate, then write) under a quota its old and
/// new bytes together would pass: the old bytes go when the new ones are saved (a file
/// smaller than a part, uploaded whole at close: the store credits the object it replaces).
#[test]
fn rewriting_a_file_near_the_quota_succeeds() {
    let server = Server::start();
    make_bucket(&server, "requota");
    admin(&server, &["bucket", "quota", "set", "requota", "12MiB"]);
    let mount = Mount::start(&server, "requota", &[]);
    for (name, len) in [("small", 8usize << 20), ("other", 7 << 20)] {
        let path = mount.path.join(name);
        for seed in [1u8, 2] {
            let body: Vec<u8> = (0..len)
                .map(|i| (i as u8).wrapping_mul(seed) ^ seed)
                .collect();
            // Usage is re-read at most once a second.
            std::thread::sleep(Duration::from_millis(1100));
            fs::write(&path, &body).unwrap_or_else(|e| panic!("rewrite {name} ({seed}): {e}"));
            assert!(
                fs::read(&path).expect("read back") == body,
                "{name} ({seed})"
            );
        }
        fs::remove_file(&path).expect("remove");
    }
}

/// Two mounts of one bucket: a file written and closed on one is read on the other (after
/// the attribute cache expires, 1 s).
#[test]
fn two_mounts_see_each_other_after_close() {
    let server = Server::start();
    make_bucket(&server, "two");
    let a = Mount::start(&server, "two", &[]);
    let b = Mount::start(&server, "two", &[]);
    fs::write(a.path.join("f"), b"one").expect("write");
    assert_eq!(fs::read(b.path.join("f")).expect("read"), b"one");
    fs::write(a.path.join("f"), b"two!").expect("rewrite");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fs::read(b.path.join("f")).expect("read"), b"two!");
    // Unflushed data is not visible elsewhere until close.
    let mut open = fs::File::create(a.path.join("g")).expect("create");
    open.write_all(b"pending").expect("write");
    assert_eq!(
        fs::metadata(b.path.join("g")).map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    open.sync_all().expect("fsync");
    assert_eq!(fs::read(b.path.join("g")).expect("read"), b"pending");
}

/// A server that stops answering (frozen, or cut off by the network, where TCP keeps the
/// connection up) fails the mount's calls with EIO after `--io-timeout`, not after minutes;
/// once it answers again the mount works on.
#[test]
fn a_frozen_server_fails_calls_after_the_io_timeout() {
    let server = Server::start();
    make_bucket(&server, "frozen");
    let m = Mount::start(&server, "frozen", &["--io-timeout", "2"]);
    fs::write(m.path.join("kept"), b"before").expect("write");
    let pid = server.pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = m.path.join("never-seen");
    let started = std::time::Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(fs::metadata(&probe).map(|_| ()));
    });
    let answer = rx.recv_timeout(Duration::from_secs(30));
    let waited = started.elapsed();
    signal("-CONT");
    let answer = answer.expect("stat of a frozen server's mount still waiting after 30 s");
    assert_eq!(
        answer.map_err(|e| e.raw_os_error()),
        Err(Some(5)),
        "stat while the server is frozen: EIO"
    );
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    // Answering again: the mount serves as before.
    assert_eq!(fs::read(m.path.join("kept")).expect("read"), b"before");
    fs::write(m.path.join("after"), b"after").expect("write after");
    assert_eq!(fs::read(m.path.join("after")).expect("read"), b"after");
}

/// A directory of thousands of entries lists completely (the listing is paged, 1,000 keys
/// at a time) and every entry stats.
#[test]
fn large_directories_list_completely() {
    let server = Server::start();
    make_bucket(&server, "wide");
    let c = client(&server);
    let rt = rt();
    let n = 2_500;
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(n / 16 + 1) {
            let c = c.clone();
            let chunk = chunk.to_vec();
            tasks.spawn(async move {
                for i in chunk {
                    c.put_object()
                        .bucket("wide")
                        .key(format!("dir/f{i:05}"))
                        .body(ByteStream::from_static(b"x"))
                        .send()
                        .await
                        .expect("put");
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.expect("task");
        }
    });
    let mount = Mount::start(&server, "wide", &[]);
    let mut names: Vec<String> = fs::read_dir(mount.path.join("dir"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), n);
    assert_eq!(names[0], "f00000");
    assert_eq!(names[n - 1], format!("f{:05}", n - 1));
    let sizes: u64 = names
        .iter()
        .take(200)
        .map(|f| {
            fs::metadata(mount.path.join("dir").join(f))
                .expect("stat")
                .len()
        })
        .sum();
    assert_eq!(sizes, 200);
}

/// A crash of the mount before close loses only the unflushed writes: the object keeps its
/// previous content (never a torn mix), and a half-streamed new file does not appear.
#[test]
fn crash_before_flush_keeps_the_previous_version() {
    let server = Server::start();
    make_bucket(&server, "crash");
    let mut mount = Mount::start(&server, "crash", &[]);
    fs::write(mount.path.join("f"), b"version one").expect("write v1");
    // The unflushed files are held by a helper process, not by this one: every process this
    // test binary spawns (other tests run in parallel) starts as a fork holding copies of
    // this process's descriptors, and closing those copies at exec sends FUSE a FLUSH — an
    // upload of what the test says was never flushed. The helper neither forks nor
    // duplicates its descriptors (a shell's redirections would: each restore is a close).
    let script = r#"
import os, sys, time
def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]
f = os.open(sys.argv[1], os.O_RDWR)
write_all(f, b"VERSION TWO, never flushed")
n = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for _ in range(40):
    write_all(n, b"\x09" * (1 << 20))  # streamed parts in flight
print("ready", flush=True)
time.sleep(600)
"#;
    let mut holder = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(mount.path.join("f"))
        .arg(mount.path.join("new"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().expect("stdout")),
        &mut ready,
    )
    .expect("helper output");
    assert_eq!(ready.trim(), "ready", "the helper wrote its files");
    // kill -9 the mount (waiting until all its threads are gone), then the holder: its
    // files close against a dead connection.
    mount.kill();
    let _ = holder.kill();
    let _ = holder.wait();
    mount.unmount();
    let again = Mount::start(&server, "crash", &[]);
    assert_eq!(
        fs::read(again.path.join("f")).expect("read"),
        b"version one"
    );
    assert!(
        !again.path.join("new").exists(),
        "an unfinished file does not appear"
    );
}

/// A read-only user's mount reads, and refuses writes with EACCES (not EIO).
#[test]
fn a_read_only_users_mount_refuses_writes_with_eacces() {
    let server = Server::start();
    make_bucket(&server, "ro-vol");
    rt().block_on(async {
        client(&server)
            .put_object()
            .bucket("ro-vol")
            .key("seen.txt")
            .body(ByteStream::from_static(b"visible"))
            .send()
            .await
            .expect("put");
    });
    admin(&server, &["user", "add", "viewer", "viewer-secret-1"]);
    admin(
        &server,
        &["policy", "attach", "readonly", "--user", "viewer"],
    );
    let mount = Mount::start(
        &server,
        "ro-vol",
        &["--access-key", "viewer", "--secret-key", "viewer-secret-1"],
    );
    assert_eq!(
        fs::read(mount.path.join("seen.txt")).expect("read"),
        b"visible"
    );
    let names: Vec<_> = fs::read_dir(&mount.path)
        .expect("readdir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let refused = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        // EACCES (13) or EROFS (30).
        assert!(
            matches!(e.raw_os_error(), Some(13 | 30)),
            "{what}: {e:?} (want EACCES or EROFS)"
        );
    };
    refused(fs::write(mount.path.join("new.txt"), b"x"), "create");
    refused(
        OpenOptions::new()
            .append(true)
            .open(mount.path.join("seen.txt"))
            .and_then(|mut f| {
                f.write_all(b"more")?;
                f.sync_all()
            }),
        "append",
    );
    refused(fs::remove_file(mount.path.join("seen.txt")), "unlink");
    refused(fs::create_dir(mount.path.join("d")), "mkdir");
    assert_eq!(
        fs::read(mount.path.join("seen.txt")).expect("read"),
        b"visible"
    );
}

#[test]
fn a_default_encrypted_bucket_mounts_like_any_other() {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    use base64::Engine;
    let kms = format!(
        "mount-key:{}",
        base64::engine::general_purpose::STANDARD.encode([0x42u8; 32])
    );
    let server = Server::start_with(4, &[("CAIRN_KMS_SECRET_KEY", &kms)]);
    make_bucket(&server, "sealed");
    let c = client(&server);
    let rt = rt();
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(
            ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .expect("default"),
        )
        .build();
    rt.block_on(
        c.put_bucket_encryption()
            .bucket("sealed")
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()
                    .expect("config"),
            )
            .send(),
    )
    .expect("bucket encryption");
    let mount = Mount::start(&server, "sealed", &[]);
    // Large enough for the mount's multipart upload, plus a small file and a rewrite.
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i % 253) as u8).collect();
    fs::write(mount.path.join("big.bin"), &big).expect("write big");
    fs::write(mount.path.join("small.txt"), b"sealed bytes").expect("write small");
    fs::write(mount.path.join("small.txt"), b"sealed again").expect("rewrite small");
    assert_eq!(fs::read(mount.path.join("big.bin")).expect("read big"), big);
    for (key, len) in [("big.bin", big.len()), ("small.txt", 12)] {
        let head = rt
            .block_on(c.head_object().bucket("sealed").key(key).send())
            .expect("head");
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256),
            "{key}"
        );
        assert_eq!(head.content_length(), Some(len as i64), "{key}");
    }
    let got = rt
        .block_on(async {
            let o = c
                .get_object()
                .bucket("sealed")
                .key("big.bin")
                .send()
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(o.body.collect().await?.into_bytes())
        })
        .expect("get big");
    assert!(got[..] == big[..], "the object read through S3 differs");
    // Read again through a fresh mount (nothing cached).
    mount.unmount();
    let mount = Mount::start(&server, "sealed", &[]);
    assert_eq!(
        fs::read(mount.path.join("small.txt")).expect("read small"),
        b"sealed again"
    );
    assert_eq!(fs::read(mount.path.join("big.bin")).expect("read big"), big);
}
