//! Filesystem logic against the in-memory store: POSIX behaviours, errno mapping, faults,
//! and random operation sequences compared with a model.

use std::collections::BTreeMap;
use std::time::Duration;

use nix::errno::Errno;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::client::ClientError;
use super::fs::{Fs, Kind, Options, SetAttr, ROOT};
use super::mock::MockClient;

fn fs() -> Fs<MockClient> {
    fs_with(Options {
        attr_ttl: Duration::ZERO,
        part_size: 64,
        ..Options::default()
    })
}

fn fs_with(opts: Options) -> Fs<MockClient> {
    Fs::new(MockClient::default(), opts)
}

/// Create `name` in `parent` with `data`, closed.
fn write_file(fs: &Fs<MockClient>, parent: u64, name: &str, data: &[u8]) -> u64 {
    let (a, fh) = fs.create(parent, name, 0o640, 1000, 1000).expect("create");
    if !data.is_empty() {
        assert_eq!(fs.write(a.ino, 0, data).expect("write"), data.len() as u32);
    }
    fs.release(a.ino, fh).expect("release");
    a.ino
}

fn read_all(fs: &Fs<MockClient>, ino: u64) -> Vec<u8> {
    let fh = fs.open(ino, false).expect("open");
    let mut out = Vec::new();
    loop {
        let chunk = fs.read(ino, fh, out.len() as u64, 7).expect("read");
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    fs.release(ino, fh).expect("release");
    out
}

fn names(fs: &Fs<MockClient>, dir: u64) -> Vec<(String, Kind)> {
    let fh = fs.opendir(dir).expect("opendir");
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let page = fs.readdir(dir, fh, off, 3).expect("readdir");
        if page.is_empty() {
            break;
        }
        for e in page {
            off = e.offset;
            if e.name != "." && e.name != ".." {
                out.push((e.name, e.kind));
            }
        }
    }
    fs.releasedir(fh);
    out
}

#[test]
fn files_become_objects_with_metadata() {
    let fs = fs();
    let ino = write_file(&fs, ROOT, "hello.txt", b"hello world");
    assert_eq!(
        fs.client().object("hello.txt").as_deref(),
        Some(&b"hello world"[..])
    );
    let meta = fs.client().meta("hello.txt").expect("meta");
    assert_eq!(meta.get("mode").map(String::as_str), Some("33184")); // 0o100640
    assert_eq!(meta.get("uid").map(String::as_str), Some("1000"));
    assert_eq!(read_all(&fs, ino), b"hello world");
    // A fresh mount sees the same attributes.
    let fs2 = Fs::new(MockClient::default(), Options::default());
    fs2.client().insert("x", b"");
    let a = fs.lookup(ROOT, "hello.txt").expect("lookup");
    assert_eq!((a.perm, a.uid, a.gid, a.size), (0o640, 1000, 1000, 11));
}

#[test]
fn large_files_upload_as_multipart() {
    let fs = fs();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let ino = write_file(&fs, ROOT, "big", &data);
    assert_eq!(fs.client().calls("upload_part"), 16); // 1000 bytes in 64-byte parts
    assert_eq!(fs.client().calls("complete_multipart"), 1);
    assert_eq!(fs.client().object("big"), Some(data.clone()));
    assert_eq!(read_all(&fs, ino), data);
}

#[test]
fn sequential_writes_stream_as_multipart() {
    let fs = fs();
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 13) as u8).collect();
    let (a, fh) = fs.create(ROOT, "s", 0o644, 0, 0).expect("create");
    for (i, chunk) in data.chunks(10).enumerate() {
        fs.write(a.ino, (i * 10) as u64, chunk).expect("append");
    }
    // Parts went up while writing (1000 bytes = 15 full 64-byte parts), before any close.
    let before_close = fs.client().calls("upload_part");
    assert!(
        before_close >= 13,
        "{before_close} parts uploaded while writing"
    );
    assert_eq!(fs.client().object("s"), None, "not visible before close");
    fs.release(a.ino, fh).expect("close");
    assert_eq!(fs.client().calls("upload_part"), 16); // 15 full parts + the tail
    assert_eq!(fs.client().calls("complete_multipart"), 1);
    assert_eq!(fs.client().object("s"), Some(data.clone()));
    assert_eq!(read_all(&fs, a.ino), data);

    // A write that is not an append cancels the stream; the file is uploaded whole.
    let (b, fh) = fs.create(ROOT, "t", 0o644, 0, 0).expect("create");
    fs.write(b.ino, 0, &data[..300]).expect("write");
    fs.write(b.ino, 5, b"XYZ").expect("overwrite");
    fs.write(b.ino, 300, &data[300..]).expect("append");
    fs.release(b.ino, fh).expect("close");
    assert!(fs.client().calls("abort_multipart") >= 1);
    let mut want = data.clone();
    want[5..8].copy_from_slice(b"XYZ");
    assert_eq!(fs.client().object("t"), Some(want));

    // A failing part makes close fall back to a whole upload: nothing is lost.
    let (c, fh) = fs.create(ROOT, "u", 0o644, 0, 0).expect("create");
    fs.client()
        .inject("upload_part", ClientError::Other("flaky".into()));
    fs.write(c.ino, 0, &data[..200]).expect("write");
    fs.client().clear_faults();
    fs.write(c.ino, 200, &data[200..]).expect("write");
    fs.release(c.ino, fh).expect("close");
    assert_eq!(fs.client().object("u"), Some(data));
}

#[test]
fn directories_markers_and_errors() {
    let fs = fs();
    let d = fs.mkdir(ROOT, "d", 0o750, 0, 0).expect("mkdir");
    assert_eq!(fs.client().keys(), vec!["d/".to_string()]);
    assert_eq!(fs.mkdir(ROOT, "d", 0o755, 0, 0), Err(Errno::EEXIST));
    write_file(&fs, d.ino, "f", b"1");
    assert_eq!(fs.rmdir(ROOT, "d"), Err(Errno::ENOTEMPTY));
    assert_eq!(fs.unlink(ROOT, "d"), Err(Errno::EISDIR));
    assert_eq!(fs.rmdir(d.ino, "f"), Err(Errno::ENOTDIR));
    fs.unlink(d.ino, "f").expect("unlink");
    assert_eq!(fs.lookup(d.ino, "f"), Err(Errno::ENOENT));
    fs.rmdir(ROOT, "d").expect("rmdir");
    assert!(fs.client().keys().is_empty());
    // Implicit directories (keys written by S3 clients) show up.
    fs.client().insert("a/b/c.txt", b"abc");
    assert_eq!(names(&fs, ROOT), vec![("a".to_string(), Kind::Dir)]);
    let a = fs.lookup(ROOT, "a").expect("a");
    assert_eq!(a.kind, Kind::Dir);
    let b = fs.lookup(a.ino, "b").expect("b");
    let c = fs.lookup(b.ino, "c.txt").expect("c");
    assert_eq!(read_all(&fs, c.ino), b"abc");
    assert_eq!(fs.lookup(ROOT, &"n".repeat(256)), Err(Errno::ENAMETOOLONG));
    // Keys no file can be named (`dots/.`, `dots/..`) are not listed as entries.
    for k in ["dots/.", "dots/..", "dots/x"] {
        fs.client().insert(k, b"");
    }
    let dots = fs.lookup(ROOT, "dots").expect("dots");
    let fh = fs.opendir(dots.ino).expect("opendir");
    let listed: Vec<String> = fs
        .readdir(dots.ino, fh, 0, 100)
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, [".", "..", "x"]);
}

#[test]
fn rename_files_and_directories() {
    let fs = fs();
    let d = fs.mkdir(ROOT, "d", 0o755, 0, 0).expect("mkdir");
    let sub = fs.mkdir(d.ino, "sub", 0o755, 0, 0).expect("mkdir");
    write_file(&fs, sub.ino, "x", b"xx");
    write_file(&fs, d.ino, "y", b"yy");
    fs.rename(d.ino, "y", ROOT, "z", false)
        .expect("rename file");
    assert_eq!(fs.client().object("z").as_deref(), Some(&b"yy"[..]));
    assert_eq!(fs.client().object("d/y"), None);
    fs.rename(ROOT, "d", ROOT, "e", false).expect("rename dir");
    assert_eq!(
        fs.client().keys(),
        vec!["e/", "e/sub/", "e/sub/x", "z"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    );
    // The renamed directory's inode keeps working under its new name.
    let x = fs.lookup(sub.ino, "x").expect("x via moved inode");
    assert_eq!(read_all(&fs, x.ino), b"xx");
    assert_eq!(fs.rename(ROOT, "z", ROOT, "e", false), Err(Errno::EISDIR));
    assert_eq!(fs.rename(ROOT, "e", ROOT, "z", false), Err(Errno::ENOTDIR));
    write_file(&fs, ROOT, "w", b"w");
    assert_eq!(fs.rename(ROOT, "w", ROOT, "z", true), Err(Errno::EEXIST));
    fs.rename(ROOT, "w", ROOT, "z", false).expect("replace");
    assert_eq!(fs.client().object("z").as_deref(), Some(&b"w"[..]));
    let e = fs.lookup(ROOT, "e").expect("e");
    assert_eq!(
        fs.rename(ROOT, "e", e.ino, "inside", false),
        Err(Errno::EINVAL)
    );
}

#[test]
fn append_truncate_and_random_writes() {
    let fs = fs();
    let ino = write_file(&fs, ROOT, "f", b"0123456789");
    // Append through a new handle: the object is staged first.
    let fh = fs.open(ino, true).expect("open");
    fs.write(ino, 10, b"abc").expect("append");
    fs.write(ino, 2, b"XY").expect("overwrite");
    fs.release(ino, fh).expect("close");
    assert_eq!(
        fs.client().object("f").as_deref(),
        Some(&b"01XY456789abc"[..])
    );
    // truncate(2) on a closed file writes through.
    fs.setattr(
        ino,
        SetAttr {
            size: Some(4),
            ..Default::default()
        },
    )
    .expect("truncate");
    assert_eq!(fs.client().object("f").as_deref(), Some(&b"01XY"[..]));
    // Extending truncate fills with zeros; a sparse write too.
    let fh = fs.open(ino, true).expect("open");
    fs.setattr(
        ino,
        SetAttr {
            size: Some(6),
            ..Default::default()
        },
    )
    .expect("extend");
    fs.write(ino, 8, b"!").expect("sparse");
    fs.release(ino, fh).expect("close");
    assert_eq!(
        fs.client().object("f").as_deref(),
        Some(&b"01XY\0\0\0\0!"[..])
    );
    // chmod rewrites metadata in place.
    fs.setattr(
        ino,
        SetAttr {
            mode: Some(0o600),
            uid: Some(7),
            ..Default::default()
        },
    )
    .expect("chmod");
    let meta = fs.client().meta("f").expect("meta");
    assert_eq!(meta.get("mode").map(String::as_str), Some("33152")); // 0o100600
    assert_eq!(meta.get("uid").map(String::as_str), Some("7"));
    assert_eq!(
        fs.client().object("f").as_deref(),
        Some(&b"01XY\0\0\0\0!"[..])
    );
}

#[test]
fn symlinks() {
    let fs = fs();
    let l = fs
        .symlink(ROOT, "link", "target/file", 0, 0)
        .expect("symlink");
    assert_eq!(l.kind, Kind::Symlink);
    assert_eq!(fs.readlink(l.ino).expect("readlink"), b"target/file");
    let fs2 = Fs::new(MockClient::default(), Options::default());
    drop(fs2);
    fs.forget(l.ino, 1);
    let again = fs.lookup(ROOT, "link").expect("lookup");
    assert_eq!(again.kind, Kind::Symlink);
}

#[test]
fn rewriting_a_file_near_the_quota_counts_its_old_bytes_as_freed() {
    // Uploaded whole at close (smaller than a part).
    let fs = fs_with(Options {
        attr_ttl: Duration::ZERO,
        part_size: 1024,
        ..Options::default()
    });
    *fs.client().quota.lock() = 100;
    let (a, fh) = fs.create(ROOT, "f", 0o644, 0, 0).expect("create");
    fs.write(a.ino, 0, &[1u8; 80]).expect("within quota");
    fs.release(a.ino, fh).expect("close");
    fs.invalidate_usage();
    // `cp new f`: open with O_TRUNC, then 80 new bytes. 80 + 80 would pass the quota, but
    // the old 80 go when the new ones are saved.
    let fh = fs.open(a.ino, true).expect("open");
    fs.setattr(
        a.ino,
        SetAttr {
            size: Some(0),
            ..Default::default()
        },
    )
    .expect("truncate");
    fs.write(a.ino, 0, &[2u8; 80])
        .expect("rewrite within quota");
    assert_eq!(fs.write(a.ino, 80, &[2u8; 30]), Err(Errno::ENOSPC));
    fs.release(a.ino, fh).expect("close");
    assert_eq!(fs.client().object("f"), Some(vec![2u8; 80]));
}

#[test]
fn an_open_file_keeps_its_bytes_when_its_name_goes() {
    let fs = fs();
    // A temporary file: created, written, unlinked, then used through its descriptor.
    let (a, fh) = fs.create(ROOT, "tmp", 0o600, 0, 0).expect("create");
    fs.write(a.ino, 0, b"hello").expect("write");
    fs.unlink(ROOT, "tmp").expect("unlink");
    fs.write(a.ino, 5, b" world").expect("write after unlink");
    assert_eq!(fs.read(a.ino, fh, 0, 100).expect("read"), b"hello world");
    fs.release(a.ino, fh).expect("close");
    assert_eq!(
        fs.client().object("tmp"),
        None,
        "an unlinked file is never uploaded"
    );
    // A stored file open for reading, unlinked under its reader.
    fs.client().insert("kept", b"persisted");
    let k = fs.lookup(ROOT, "kept").expect("lookup");
    let fh = fs.open(k.ino, false).expect("open");
    fs.unlink(ROOT, "kept").expect("unlink");
    assert_eq!(fs.client().object("kept"), None);
    assert_eq!(fs.read(k.ino, fh, 0, 100).expect("read"), b"persisted");
    fs.release(k.ino, fh).expect("close");
    // Replaced by a rename: the open descriptor reads the file it opened.
    fs.client().insert("t", b"OLD");
    let t = fs.lookup(ROOT, "t").expect("lookup");
    let fh = fs.open(t.ino, false).expect("open");
    let (n, nfh) = fs.create(ROOT, "t.new", 0o644, 0, 0).expect("create");
    fs.write(n.ino, 0, b"NEW!").expect("write");
    fs.release(n.ino, nfh).expect("close");
    fs.rename(ROOT, "t.new", ROOT, "t", false)
        .expect("rename over");
    assert_eq!(fs.read(t.ino, fh, 0, 100).expect("read"), b"OLD");
    fs.release(t.ino, fh).expect("close");
    assert_eq!(fs.client().object("t"), Some(b"NEW!".to_vec()));
}

#[test]
fn reads_of_an_open_file_never_mix_two_versions_of_its_object() {
    let fs = fs();
    let old: Vec<u8> = (0..512 << 10).map(|i| i as u8).collect();
    fs.client().insert("f", &old);
    let a = fs.lookup(ROOT, "f").expect("lookup");
    let fh = fs.open(a.ino, false).expect("open");
    assert_eq!(fs.read(a.ino, fh, 0, 4096).expect("read"), &old[..4096]);
    // Replaced in the store by another client: what the first read fetched still serves,
    // a read past it fails instead of returning the other object's bytes.
    fs.client().insert("f", &vec![9u8; 512 << 10]);
    assert_eq!(
        fs.read(a.ino, fh, 4096, 4096).expect("buffered"),
        &old[4096..8192]
    );
    assert_eq!(fs.read(a.ino, fh, 300 << 10, 4096), Err(Errno::EIO));
    fs.release(a.ino, fh).expect("close");
    // Opened again: the new object.
    let fh = fs.open(a.ino, false).expect("open");
    assert_eq!(fs.read(a.ino, fh, 300 << 10, 4), Ok(vec![9u8; 4]));
    fs.release(a.ino, fh).expect("close");
}

#[test]
fn quota_gives_enospc_at_write_time() {
    let fs = fs();
    *fs.client().quota.lock() = 100;
    let (a, fh) = fs.create(ROOT, "f", 0o644, 0, 0).expect("create");
    fs.write(a.ino, 0, &[1u8; 90]).expect("within quota");
    assert_eq!(fs.write(a.ino, 90, &[1u8; 20]), Err(Errno::ENOSPC));
    fs.release(a.ino, fh).expect("close");
    let (total, free, _, _) = fs.statfs();
    assert_eq!(total, 100 / super::fs::BLOCK);
    assert!(free <= total);
    // The store refusing an upload (over quota) is ENOSPC too.
    *fs.client().quota.lock() = 10;
    let (b, fh) = fs.create(ROOT, "g", 0o644, 0, 0).expect("create");
    *fs.client().quota.lock() = 0;
    fs.invalidate_usage();
    fs.write(b.ino, 0, &[2u8; 50]).expect("write");
    *fs.client().quota.lock() = 10;
    assert_eq!(fs.flush(b.ino), Err(Errno::ENOSPC));
    // The data stays staged: raising the quota lets the close upload it.
    *fs.client().quota.lock() = 1000;
    fs.release(b.ino, fh).expect("close after raise");
    assert_eq!(fs.client().object("g").map(|d| d.len()), Some(50));
}

#[test]
fn store_errors_map_to_errno() {
    let fs = fs();
    write_file(&fs, ROOT, "f", b"data");
    fs.client()
        .inject("head", ClientError::Other("boom".into()));
    assert_eq!(fs.lookup(ROOT, "f"), Err(Errno::EIO));
    fs.client().clear_faults();
    fs.client().inject("head", ClientError::AccessDenied);
    assert_eq!(fs.lookup(ROOT, "f"), Err(Errno::EACCES));
    fs.client().clear_faults();
    let f = fs.lookup(ROOT, "f").expect("lookup");
    fs.client().inject("put", ClientError::Other("503".into()));
    let fh = fs.open(f.ino, true).expect("open");
    fs.write(f.ino, 0, b"DATA").expect("staged write");
    assert_eq!(fs.fsync(f.ino), Err(Errno::EIO));
    fs.client().clear_faults();
    // Failed uploads are retried by the next flush: nothing written is lost.
    fs.release(f.ino, fh).expect("close retries");
    assert_eq!(fs.client().object("f").as_deref(), Some(&b"DATA"[..]));
    // A multipart upload that fails is aborted, not left behind.
    let big = vec![5u8; 300];
    let (g, fh) = fs.create(ROOT, "g", 0o644, 0, 0).expect("create");
    fs.write(g.ino, 0, &big).expect("write");
    fs.client()
        .inject("upload_part", ClientError::Other("boom".into()));
    assert_eq!(fs.flush(g.ino), Err(Errno::EIO));
    assert!(fs.client().calls("abort_multipart") >= 1);
    assert_eq!(
        fs.client().pending_uploads(),
        0,
        "failed uploads are aborted"
    );
    fs.client().clear_faults();
    fs.release(g.ino, fh).expect("close");
    assert_eq!(fs.client().object("g"), Some(big));
}

#[test]
fn read_only_mounts_refuse_changes() {
    let fs = fs_with(Options {
        read_only: true,
        ..Options::default()
    });
    fs.client().insert("f", b"x");
    let f = fs.lookup(ROOT, "f").expect("lookup");
    assert_eq!(fs.open(f.ino, true), Err(Errno::EROFS));
    assert_eq!(
        fs.create(ROOT, "g", 0o644, 0, 0).map(|_| ()),
        Err(Errno::EROFS)
    );
    assert_eq!(fs.unlink(ROOT, "f"), Err(Errno::EROFS));
    assert_eq!(
        fs.mkdir(ROOT, "d", 0o755, 0, 0).map(|_| ()),
        Err(Errno::EROFS)
    );
}

#[test]
fn readdir_pages_through_large_directories() {
    let fs = fs();
    for i in 0..100_000 {
        fs.client().insert(&format!("big/f{i:06}"), b"");
    }
    fs.client().insert("big/sub/x", b"");
    let big = fs.lookup(ROOT, "big").expect("big");
    let listed = names(&fs, big.ino);
    assert_eq!(listed.len(), 100_001);
    assert_eq!(listed[0].0, "f000000");
    assert_eq!(listed[99_999].0, "f099999");
    assert!(listed.contains(&("sub".to_string(), Kind::Dir)));
    // Listing is paged, not loaded whole: 101 pages of 1000.
    assert!(fs.client().calls("list") >= 101);
}

#[test]
fn inode_table_stays_bounded() {
    let fs = fs();
    for i in 0..100 {
        let a = fs.lookup(ROOT, &format!("f{i}")).err();
        assert_eq!(a, Some(Errno::ENOENT));
        let ino = write_file(&fs, ROOT, &format!("f{i}"), b"x");
        fs.forget(ino, 1);
    }
    // Forgotten, closed inodes are dropped: a lookup now assigns a new number.
    let a = fs.lookup(ROOT, "f0").expect("lookup");
    assert!(a.ino > 100);
}

/// Random operations against the filesystem and a model (path -> bytes, or a directory);
/// after each, the model and the store agree.
#[test]
fn random_operations_match_a_model() {
    #[derive(Clone, Debug, PartialEq)]
    enum E {
        File(Vec<u8>),
        Dir,
    }
    for seed in 0..20u64 {
        let fs = fs();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model: BTreeMap<String, E> = BTreeMap::new();
        let names = ["a", "b", "c"];
        for _step in 0..120 {
            // Pick a directory (root or an existing one) and a name in it.
            let dirs: Vec<String> = std::iter::once(String::new())
                .chain(
                    model
                        .iter()
                        .filter(|(_, e)| **e == E::Dir)
                        .map(|(p, _)| p.clone()),
                )
                .collect();
            let dir = dirs[rng.gen_range(0..dirs.len())].clone();
            let name = names[rng.gen_range(0..names.len())];
            let path = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            let dir_ino = if dir.is_empty() {
                ROOT
            } else {
                let mut ino = ROOT;
                for part in dir.split('/') {
                    ino = fs.lookup(ino, part).expect("dir lookup").ino;
                }
                ino
            };
            let has_children = |m: &BTreeMap<String, E>, p: &str| {
                m.keys().any(|k| k.starts_with(&format!("{p}/")))
            };
            let op = rng.gen_range(0..6);
            if std::env::var_os("MOUNT_TEST_TRACE").is_some() {
                eprintln!("seed {seed}: op {op} on {path}");
            }
            match op {
                0 => {
                    let len = rng.gen_range(0..200);
                    let data: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    // The kernel only calls create for names that are not directories.
                    if model.get(&path) == Some(&E::Dir) {
                        continue;
                    }
                    let (a, fh) = fs.create(dir_ino, name, 0o644, 0, 0).expect("create");
                    if !data.is_empty() {
                        fs.write(a.ino, 0, &data).expect("write");
                    }
                    fs.release(a.ino, fh).expect("close");
                    model.insert(path.clone(), E::File(data));
                }
                1 => {
                    let r = fs.mkdir(dir_ino, name, 0o755, 0, 0).map(|_| ());
                    if model.contains_key(&path) {
                        assert_eq!(r, Err(Errno::EEXIST), "{path}");
                    } else {
                        r.expect("mkdir");
                        model.insert(path.clone(), E::Dir);
                    }
                }
                2 => {
                    let r = fs.unlink(dir_ino, name);
                    match model.get(&path) {
                        Some(E::File(_)) => {
                            r.expect("unlink");
                            model.remove(&path);
                        }
                        Some(E::Dir) => assert_eq!(r, Err(Errno::EISDIR)),
                        None => assert_eq!(r, Err(Errno::ENOENT)),
                    }
                }
                3 => {
                    let r = fs.rmdir(dir_ino, name);
                    match model.get(&path) {
                        Some(E::Dir) if has_children(&model, &path) => {
                            assert_eq!(r, Err(Errno::ENOTEMPTY))
                        }
                        Some(E::Dir) => {
                            r.expect("rmdir");
                            model.remove(&path);
                        }
                        Some(E::File(_)) => assert_eq!(r, Err(Errno::ENOTDIR)),
                        None => assert_eq!(r, Err(Errno::ENOENT)),
                    }
                }
                4 => {
                    // Rename to another name in the root.
                    let to = names[rng.gen_range(0..names.len())];
                    let r = fs.rename(dir_ino, name, ROOT, to, false);
                    let src = model.get(&path).cloned();
                    let dst = model.get(to).cloned();
                    if path == to {
                        continue;
                    }
                    match (src, dst) {
                        (None, _) => assert_eq!(r, Err(Errno::ENOENT)),
                        (Some(E::Dir), _) if to.starts_with(&format!("{path}/")) => {}
                        (Some(E::File(_)), Some(E::Dir)) => assert_eq!(r, Err(Errno::EISDIR)),
                        (Some(E::Dir), Some(E::File(_))) => assert_eq!(r, Err(Errno::ENOTDIR)),
                        (Some(E::Dir), Some(E::Dir)) if has_children(&model, to) => {
                            assert_eq!(r, Err(Errno::ENOTEMPTY), "{path} -> {to}: {model:?}")
                        }
                        (Some(src), _) => {
                            r.expect("rename");
                            let moved: Vec<(String, E)> = model
                                .iter()
                                .filter(|(k, _)| k.starts_with(&format!("{path}/")))
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            model.remove(&path);
                            model.remove(to);
                            for (k, v) in moved {
                                model.remove(&k);
                                model.insert(format!("{to}{}", &k[path.len()..]), v);
                            }
                            model.insert(to.to_string(), src);
                        }
                    }
                }
                _ => {
                    // Overwrite a slice of an existing file.
                    if let Some(E::File(old)) = model.get(&path).cloned() {
                        let a = fs.lookup(dir_ino, name).expect("lookup");
                        let off = rng.gen_range(0..=old.len());
                        let patch: Vec<u8> = (0..rng.gen_range(1..50)).map(|_| rng.gen()).collect();
                        let fh = fs.open(a.ino, true).expect("open");
                        fs.write(a.ino, off as u64, &patch).expect("write");
                        fs.release(a.ino, fh).expect("close");
                        let mut new = old.clone();
                        new.resize(new.len().max(off + patch.len()), 0);
                        new[off..off + patch.len()].copy_from_slice(&patch);
                        model.insert(path.clone(), E::File(new));
                    }
                }
            }
            // The store holds exactly the model: files as objects, directories as markers.
            let expect: Vec<String> = model
                .iter()
                .map(|(k, e)| match e {
                    E::File(_) => k.clone(),
                    E::Dir => format!("{k}/"),
                })
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert_eq!(fs.client().keys(), expect, "seed {seed}");
            for (k, e) in &model {
                if let E::File(d) = e {
                    assert_eq!(fs.client().object(k).as_ref(), Some(d), "seed {seed} {k}");
                }
            }
        }
    }
}

/// Many files read sequentially at once share the read-ahead budget: prefetched bytes never
/// pass it, reads past it fetch on demand, and every read is exact.
#[test]
fn readahead_budget_is_shared_by_open_files() {
    let budget = 3 << 20;
    let fs = fs_with(Options {
        attr_ttl: Duration::ZERO,
        max_readahead: 2 << 20,
        readahead_budget: budget,
        ..Options::default()
    });
    let data: Vec<u8> = (0..12u32 << 20).map(|i| (i % 253) as u8).collect();
    let mut open = Vec::new();
    for i in 0..4 {
        fs.client().insert(&format!("f{i}"), &data);
        let a = fs.lookup(ROOT, &format!("f{i}")).expect("lookup");
        open.push((a.ino, fs.open(a.ino, false).expect("open"), 0u64));
    }
    let step = 256u32 << 10;
    let mut most = 0;
    while open.iter().any(|(_, _, off)| *off < data.len() as u64) {
        for (ino, fh, off) in open.iter_mut().filter(|o| o.2 < data.len() as u64) {
            let got = fs.read(*ino, *fh, *off, step).expect("read");
            let end = (*off as usize + step as usize).min(data.len());
            assert!(got == data[*off as usize..end], "file {ino} at {off}");
            *off += got.len() as u64;
            most = most.max(fs.prefetched_bytes());
            assert!(fs.prefetched_bytes() <= budget);
        }
    }
    // The budget was used, not just respected.
    assert!(most > 1 << 20, "most prefetched {most}");
    for (ino, fh, _) in open {
        fs.release(ino, fh).expect("close");
    }
    assert_eq!(fs.prefetched_bytes(), 0);
}

/// Sequential reads through growing, prefetched windows (including reads that straddle a
/// window's end) and seeks return exact data.
#[test]
fn readahead_windows_return_exact_data() {
    let fs = fs();
    let data: Vec<u8> = (0..(9u32 << 20) + 12345).map(|i| (i % 251) as u8).collect();
    fs.client().insert("big", &data);
    let a = fs.lookup(ROOT, "big").expect("lookup");
    for step in [128u32 << 10, 1 << 20, 300_001] {
        let fh = fs.open(a.ino, false).expect("open");
        let mut off = 0u64;
        while off < data.len() as u64 {
            let got = fs.read(a.ino, fh, off, step).expect("read");
            let end = (off as usize + step as usize).min(data.len());
            assert!(got == data[off as usize..end], "step {step} at {off}");
            off += got.len() as u64;
        }
        // Seek back, then forward past the prefetched windows.
        let got = fs.read(a.ino, fh, 10, 100).expect("seek back");
        assert!(got == data[10..110]);
        let far = data.len() as u64 - 5000;
        let got = fs.read(a.ino, fh, far, 8192).expect("seek forward");
        assert!(got == data[far as usize..]);
        fs.release(a.ino, fh).expect("close");
    }
    // Windows grew: far fewer GETs than reads.
    assert!(
        fs.client().calls("get") < 60,
        "{} GETs",
        fs.client().calls("get")
    );
}
