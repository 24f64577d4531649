//! Real S3 clients against a real server: boto3, the AWS CLI, rclone, s3cmd, and the AWS and
//! MinIO JavaScript SDKs. Under CI a missing client fails the test; elsewhere it is reported
//! and skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use cairn_integration::{in_mount_table, require_tool, wait_until, Server, ACCESS_KEY, SECRET_KEY};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn write_tree(root: &Path, files: usize, big: Option<(usize, usize)>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for i in 0..files {
        let p = root.join(format!("d{}/sub{}/file-{i}.txt", i % 3, i % 2));
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let len = match big {
            Some((which, size)) if which == i => size,
            _ => 100 + i * 37,
        };
        let body: Vec<u8> = (0..len).map(|j| ((i * 131 + j * 7) % 251) as u8).collect();
        std::fs::write(&p, body).expect("write");
        out.push(p.strip_prefix(root).expect("relative").to_path_buf());
    }
    out
}

fn assert_same_tree(a: &Path, b: &Path, files: &[PathBuf]) {
    for f in files {
        let x = std::fs::read(a.join(f)).expect("source file");
        let y = std::fs::read(b.join(f))
            .unwrap_or_else(|_| panic!("{} missing after round trip", f.display()));
        assert!(x == y, "{} differs after round trip", f.display());
    }
}

#[test]
fn boto3_default_settings() {
    if !require_tool("python3") {
        return;
    }
    let probe = Command::new("python3")
        .args(["-c", "import boto3"])
        .status()
        .expect("python3");
    if !probe.success() {
        assert!(
            std::env::var_os("CI").is_none(),
            "boto3 is required under CI"
        );
        eprintln!("SKIPPED: boto3 not importable");
        return;
    }
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/boto3_checks.py");
    let out = run(Command::new("python3")
        .arg(script)
        .arg(&s.endpoint)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY)
        .arg(work.path()));
    assert!(out.contains("boto3 checks passed"), "{out}");
}

#[test]
fn aws_cli() {
    if !require_tool("aws") {
        return;
    }
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let aws_cmd = |args: &[&str]| {
        let mut c = Command::new("aws");
        c.arg("--endpoint-url")
            .arg(&s.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // A CA bundle meant for other hosts must not get in the way of plain HTTP.
            .env_remove("AWS_CA_BUNDLE");
        c
    };
    let aws = |args: &[&str]| run(&mut aws_cmd(args));
    aws(&["s3", "mb", "s3://cli"]);
    assert!(aws(&["s3", "ls"]).contains(" cli"));
    let src = work.path().join("src");
    let files = write_tree(&src, 100, Some((42, 50 << 20)));
    aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        src.to_str().expect("utf8"),
        "s3://cli/tree",
    ]);
    let listed = aws(&["s3", "ls", "--recursive", "s3://cli/tree/"]);
    assert_eq!(listed.lines().count(), 100, "{listed}");
    let back = work.path().join("back");
    aws(&[
        "s3",
        "sync",
        "--only-show-errors",
        "s3://cli/tree",
        back.to_str().expect("utf8"),
    ]);
    assert_same_tree(&src, &back, &files);
    // A second sync finds nothing to do in either direction.
    assert!(
        aws(&["s3", "sync", src.to_str().expect("utf8"), "s3://cli/tree"])
            .trim()
            .is_empty()
    );
    let one = src.join(&files[42]);
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        one.to_str().expect("utf8"),
        "s3://cli/one.bin",
    ]);
    let copy = work.path().join("one.bin");
    aws(&[
        "s3",
        "cp",
        "--only-show-errors",
        "s3://cli/one.bin",
        copy.to_str().expect("utf8"),
    ]);
    assert!(std::fs::read(&one).expect("one") == std::fs::read(&copy).expect("copy"));
    // Asked to encrypt a 50 MiB (multipart) upload, Cairn (no SSE yet) refuses rather than
    // store plain text the client believes encrypted.
    let sse = aws_cmd(&[
        "s3",
        "cp",
        "--sse",
        "AES256",
        one.to_str().expect("utf8"),
        "s3://cli/sse.bin",
    ])
    .output()
    .expect("aws");
    let stderr = String::from_utf8_lossy(&sse.stderr);
    assert!(
        !sse.status.success() && stderr.contains("NotImplemented"),
        "--sse upload: {stderr}"
    );
    assert!(!aws(&["s3", "ls", "s3://cli/"]).contains("sse.bin"));
    aws(&[
        "s3",
        "rm",
        "--only-show-errors",
        "--recursive",
        "s3://cli/tree",
    ]);
    // (`aws s3 ls` of an empty prefix exits 1, so list the bucket, which still holds one.bin.)
    let after = aws(&["s3", "ls", "s3://cli/"]);
    assert!(
        after.contains("one.bin") && !after.contains("tree/"),
        "{after}"
    );
    aws(&["s3", "rm", "--only-show-errors", "s3://cli/one.bin"]);
    aws(&["s3", "rb", "s3://cli"]);
}

#[test]
fn rclone_copy_and_check() {
    if !require_tool("rclone") {
        return;
    }
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src");
    write_tree(&src, 30, Some((7, 20 << 20)));
    let rclone = |args: &[&str]| {
        run(Command::new("rclone")
            .args(args)
            .env("RCLONE_CONFIG", "/dev/null")
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_CAIRN_TYPE", "s3")
            .env("RCLONE_CONFIG_CAIRN_PROVIDER", "Minio")
            .env("RCLONE_CONFIG_CAIRN_ENDPOINT", &s.endpoint)
            .env("RCLONE_CONFIG_CAIRN_ACCESS_KEY_ID", ACCESS_KEY)
            .env("RCLONE_CONFIG_CAIRN_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("RCLONE_CONFIG_CAIRN_REGION", "us-east-1"))
    };
    let src_s = src.to_str().expect("utf8");
    rclone(&["mkdir", "cairn:rcl"]);
    rclone(&["copy", src_s, "cairn:rcl/data"]);
    rclone(&["check", src_s, "cairn:rcl/data"]);
    let back = work.path().join("back");
    rclone(&["copy", "cairn:rcl/data", back.to_str().expect("utf8")]);
    rclone(&["check", src_s, back.to_str().expect("utf8")]);

    // sync and check over a tree of odd names, with rclone's documented MinIO settings only
    // (provider and endpoint: no region).
    let sync = |args: &[&str]| {
        run(Command::new("rclone")
            .args(args)
            .env("RCLONE_CONFIG", "/dev/null")
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG_ODD_TYPE", "s3")
            .env("RCLONE_CONFIG_ODD_PROVIDER", "Minio")
            .env("RCLONE_CONFIG_ODD_ENDPOINT", &s.endpoint)
            .env("RCLONE_CONFIG_ODD_ACCESS_KEY_ID", ACCESS_KEY)
            .env("RCLONE_CONFIG_ODD_SECRET_ACCESS_KEY", SECRET_KEY))
    };
    let odd = work.path().join("odd");
    let long = "l".repeat(200);
    let names = [
        "space name.txt",
        "plus+sign.txt",
        "percent%20literal.txt",
        "hash#and?query&amp=eq.txt",
        "ünïcødé/日本語.txt",
        "emoji 😀.txt",
        "-leading-dash",
        "dir with space/sub dir/file",
        "quote'and\"double",
        "semi;colon,comma",
        "tilde~star*.txt",
        &format!("deep/{long}"),
    ];
    for (i, n) in names.iter().enumerate() {
        let p = odd.join(n);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, format!("odd file {i}: {n}").repeat(i + 1)).expect("write");
    }
    let odd_s = odd.to_str().expect("utf8");
    sync(&["mkdir", "odd:odd"]);
    sync(&["sync", odd_s, "odd:odd/tree"]);
    sync(&["check", odd_s, "odd:odd/tree"]);
    // Change one file, delete another: sync mirrors both.
    std::fs::write(odd.join("space name.txt"), "changed").expect("write");
    std::fs::remove_file(odd.join("plus+sign.txt")).expect("rm");
    sync(&["sync", odd_s, "odd:odd/tree"]);
    sync(&["check", odd_s, "odd:odd/tree"]);
    let listed = sync(&["lsf", "-R", "odd:odd/tree"]);
    assert!(!listed.contains("plus+sign.txt"), "{listed}");
    assert!(listed.contains("ünïcødé/日本語.txt"), "{listed}");
    let mirror = work.path().join("mirror");
    let mirror_s = mirror.to_str().expect("utf8");
    sync(&["sync", "odd:odd/tree", mirror_s]);
    sync(&["check", odd_s, mirror_s]);
}

#[test]
fn s3cmd_put_get_ls_del() {
    if !require_tool("s3cmd") {
        return;
    }
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let payload: Vec<u8> = (0..(20usize << 20)).map(|i| (i % 253) as u8).collect();
    let file = work.path().join("payload.bin");
    std::fs::write(&file, &payload).expect("write");
    for (bucket, v2) in [("s3cmd-v4", false), ("s3cmd-v2", true)] {
        let cfg = work.path().join(format!("{bucket}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\nuse_https = False\nsignature_v2 = {v2}\nbucket_location = us-east-1\n",
                port = s.port,
                v2 = if v2 { "True" } else { "False" },
            ),
        )
        .expect("cfg");
        let s3cmd = |args: &[&str]| run(Command::new("s3cmd").arg("-c").arg(&cfg).args(args));
        let url = format!("s3://{bucket}");
        s3cmd(&["mb", &url]);
        s3cmd(&[
            "put",
            file.to_str().expect("utf8"),
            &format!("{url}/dir/payload.bin"),
        ]);
        let ls = s3cmd(&["ls", "--recursive", &url]);
        assert!(ls.contains("dir/payload.bin"), "{ls}");
        let back = work.path().join(format!("{bucket}.back"));
        s3cmd(&[
            "get",
            "--force",
            &format!("{url}/dir/payload.bin"),
            back.to_str().expect("utf8"),
        ]);
        assert!(
            std::fs::read(&back).expect("back") == payload,
            "s3cmd round trip differs"
        );
        s3cmd(&["del", &format!("{url}/dir/payload.bin")]);
        assert!(!s3cmd(&["ls", "--recursive", &url]).contains("payload.bin"));
        s3cmd(&["rb", &url]);
    }
}

#[test]
fn cairn_bench_runs_every_operation() {
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    for (op, size) in [
        ("put", "64KiB"),
        ("get", "64KiB"),
        ("mixed", "range:1KiB-256KiB"),
        // Empty objects: a PUT of zero bytes still carries Content-Length.
        ("list", "0"),
        ("delete", "4KiB"),
        ("multipart", "6MiB"),
    ] {
        let json = work.path().join(format!("{op}.json"));
        let out = cairn(&[
            "bench",
            "--endpoint",
            &s.endpoint,
            "--op",
            op,
            "--size",
            size,
            "--concurrency",
            "4",
            "--duration",
            "1s",
            "--objects",
            "20",
            "--json",
            &json.display().to_string(),
        ]);
        let report = std::fs::read_to_string(&json).expect("json report");
        assert!(
            report.contains("\"latency_ms\"") && report.contains("\"p99\""),
            "{report}"
        );
        assert!(out.contains("errors"), "{out}");
        // Every op type that ran completed requests without errors (exit 0 checked by run).
        assert!(!report.contains("\"count\": 0,"), "{op}: {report}");
        // What the run wrote is gone, and so is the bucket it made.
        let report: serde_json::Value = serde_json::from_str(&report).expect("json");
        if op != "delete" {
            assert!(report["removed"].as_u64() > Some(0), "{op}: {report}");
        }
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let buckets = rt
            .block_on(cairn_integration::client(&s).list_buckets().send())
            .expect("list buckets");
        assert!(
            buckets.buckets().is_empty(),
            "{op}: the bench left {:?}",
            buckets.buckets()
        );
    }
    // --keep-data keeps them.
    cairn(&[
        "bench",
        "--endpoint",
        &s.endpoint,
        "--op",
        "put",
        "--size",
        "4KiB",
        "--duration",
        "1s",
        "--keep-data",
    ]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let listed = rt
        .block_on(
            cairn_integration::client(&s)
                .list_objects_v2()
                .bucket("cairn-bench")
                .send(),
        )
        .expect("kept bucket");
    assert!(listed.key_count() > Some(0));
}

/// Run `cairn ARGS` with the root credentials; its standard output.
fn cairn(args: &[&str]) -> String {
    run(Command::new(cairn_integration::binary())
        .args(args)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY))
}

/// The server's own request counters, from `cairn admin metrics --json`.
fn server_counts(s: &Server) -> serde_json::Value {
    let out = cairn(&["admin", "metrics", "--endpoint", &s.endpoint, "--json"]);
    serde_json::from_str(&out).expect("metrics json")
}

fn answered(counts: &serde_json::Value, op: &str, outcome: &str) -> u64 {
    counts["requests"][op][outcome].as_u64().unwrap_or(0)
}

/// What `cairn bench` reports reconciles with what the server counted: every request the
/// load generator saw succeed, and nothing else, was answered by the server.
#[test]
fn cairn_bench_counts_match_the_servers() {
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let bench = |op: &str| -> serde_json::Value {
        let json = work.path().join(format!("{op}.json"));
        cairn(&[
            "bench",
            "--endpoint",
            &s.endpoint,
            "--op",
            op,
            "--size",
            "4KiB",
            "--concurrency",
            "4",
            "--duration",
            "1s",
            "--objects",
            "25",
            "--bucket",
            "counted",
            "--json",
            &json.display().to_string(),
            "--keep-data",
        ]);
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("json")
    };
    let before = server_counts(&s);
    let puts = bench("put");
    let middle = server_counts(&s);
    let gets = bench("get");
    let after = server_counts(&s);

    let put_count = puts["ops"]["PUT"]["count"].as_u64().expect("PUT count");
    assert!(put_count > 0);
    assert_eq!(
        answered(&middle, "PutObject", "ok") - answered(&before, "PutObject", "ok"),
        put_count
    );
    // The first run finds no bucket (a HEAD answered 404) and creates it.
    assert_eq!(answered(&middle, "HeadBucket", "client_errors"), 1);
    assert_eq!(answered(&middle, "CreateBucket", "ok"), 1);
    // The GET run first prepares its 25 objects, then measures GETs only.
    let get_count = gets["ops"]["GET"]["count"].as_u64().expect("GET count");
    assert!(get_count > 0);
    assert_eq!(
        answered(&after, "GetObject", "ok") - answered(&middle, "GetObject", "ok"),
        get_count
    );
    assert_eq!(
        answered(&after, "PutObject", "ok") - answered(&middle, "PutObject", "ok"),
        25
    );
    // The second run finds the bucket with a HEAD and does not try to create it again; it
    // looks for each of its objects (absent: 404s) before putting it.
    assert_eq!(answered(&after, "HeadBucket", "ok"), 1);
    assert_eq!(answered(&after, "CreateBucket", "client_errors"), 0);
    assert_eq!(
        answered(&after, "HeadObject", "client_errors")
            - answered(&middle, "HeadObject", "client_errors"),
        25
    );
    for op in ["GetObject", "PutObject"] {
        assert_eq!(answered(&after, op, "server_errors"), 0, "{op}");
        assert_eq!(answered(&after, op, "client_errors"), 0, "{op}");
    }
}

/// The benchmark ceiling: `cairn null-server` serves back the sizes `cairn bench` put, with no
/// errors, on the same HTTP stack as the server.
#[test]
fn null_server_answers_the_load_generator() {
    use std::io::BufRead;
    let mut child = Command::new(cairn_integration::binary())
        .args(["null-server", "--address", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start null server");
    let stdout = child.stdout.take().expect("stdout");
    let line = std::io::BufReader::new(stdout)
        .lines()
        .next()
        .expect("banner")
        .expect("read");
    let addr = line
        .split("(listening on ")
        .nth(1)
        .map(|r| r.trim_end_matches(')').to_string())
        .expect("address in banner");
    let endpoint = format!("http://{addr}");
    for (op, size) in [("put", "1MiB"), ("get", "4KiB")] {
        let out = run(Command::new(cairn_integration::binary())
            .args(["bench", "--endpoint", &endpoint, "--op", op, "--size", size])
            .args(["--concurrency", "4", "--duration", "1s", "--objects", "8"])
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY));
        assert!(out.contains(&op.to_uppercase()), "{out}");
    }
    // A GET returns exactly the size that was put.
    let url = format!("{endpoint}/b/k");
    ureq::put(&url)
        .send(&b"12345"[..])
        .expect("put to the null server");
    let body = ureq::get(&url)
        .call()
        .expect("get")
        .body_mut()
        .read_to_vec()
        .expect("body");
    assert_eq!(body.len(), 5);
    let _ = child.kill();
    let _ = child.wait();
}

/// The AWS SDK for JavaScript v3 and MinIO's JavaScript SDK (from `integration/js`, installed
/// by the README's test command): objects, multipart, ranges, conditionals, pagination,
/// copies, presigned URLs, versions and multi-delete.
#[test]
fn javascript_sdks() {
    if !require_tool("node") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    if !dir.join("node_modules").is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "integration/js/node_modules is required under CI (npm ci)"
        );
        eprintln!("SKIPPED: run `npm ci` in integration/js");
        return;
    }
    let s = Server::start();
    let out = run(Command::new("node")
        .current_dir(&dir)
        .arg("clients.mjs")
        .arg(&s.endpoint)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY));
    assert!(out.contains("ok aws-sdk-js-v3"), "{out}");
    assert!(out.contains("ok minio-js"), "{out}");
}

/// Python s3fs/fsspec (pandas' and Dask's s3:// layer), from its own venv (the test command
/// makes it and sets `CAIRN_FSSPEC_PYTHON`).
#[test]
fn python_fsspec() {
    let python = std::env::var("CAIRN_FSSPEC_PYTHON").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.venv-fsspec/bin/python")
            .display()
            .to_string()
    });
    if !Path::new(&python).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the s3fs venv is required under CI"
        );
        eprintln!("SKIPPED: no s3fs venv at {python}");
        return;
    }
    let s = Server::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fsspec_checks.py");
    let out = run(Command::new(&python)
        .arg(script)
        .arg(&s.endpoint)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY));
    assert!(out.contains("fsspec checks passed"), "{out}");
}

/// s3fs-fuse (Debian's `s3fs`) mounting a bucket: files and directories made, read, renamed
/// and removed through the kernel. `use_path_request_style` is the option s3fs's manual
/// gives for endpoints without per-bucket DNS names.
#[test]
fn s3fs_fuse_mount() {
    if !require_tool("s3fs") {
        return;
    }
    let s = Server::start();
    let c = cairn_integration::client(&s);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(c.create_bucket().bucket("fuse").send())
        .expect("bucket");
    let work = tempfile::tempdir().expect("tmp");
    let passwd = work.path().join("passwd");
    std::fs::write(&passwd, format!("{ACCESS_KEY}:{SECRET_KEY}")).expect("passwd");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mnt = work.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    run(Command::new("s3fs")
        .arg("fuse")
        .arg(&mnt)
        .arg("-o")
        .arg(format!("passwd_file={}", passwd.display()))
        .arg("-o")
        .arg(format!("url={}", s.endpoint))
        .arg("-o")
        .arg("use_path_request_style"));
    // Unmounted whatever happens below.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    wait_until("s3fs mounted", std::time::Duration::from_secs(20), || {
        in_mount_table(&mnt)
    });
    std::fs::write(mnt.join("hello.txt"), b"through the kernel").expect("write");
    assert_eq!(
        std::fs::read(mnt.join("hello.txt")).expect("read"),
        b"through the kernel"
    );
    std::fs::create_dir_all(mnt.join("dir/sub")).expect("mkdir");
    let big: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(mnt.join("dir/sub/big.bin"), &big).expect("write big");
    assert!(std::fs::read(mnt.join("dir/sub/big.bin")).expect("read big") == big);
    std::fs::rename(mnt.join("hello.txt"), mnt.join("dir/renamed.txt")).expect("rename");
    let mut names: Vec<String> = std::fs::read_dir(mnt.join("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["renamed.txt", "sub"]);
    // What s3fs wrote is an ordinary object to every other client.
    let got = rt
        .block_on(c.get_object().bucket("fuse").key("dir/sub/big.bin").send())
        .expect("get");
    let body = rt.block_on(got.body.collect()).expect("body").into_bytes();
    assert!(
        body.as_ref() == big.as_slice(),
        "object differs from the file"
    );
    std::fs::remove_file(mnt.join("dir/sub/big.bin")).expect("rm");
    assert!(rt
        .block_on(c.head_object().bucket("fuse").key("dir/sub/big.bin").send())
        .is_err());
}
