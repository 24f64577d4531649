//! The command line as a new user meets it: aliases (`cairn alias set|list|remove`) kept in
//! a 0600 file that never shows its secrets, then used by `cairn admin`, `cairn bench` and
//! `cairn mount` with no URL or credentials on the command line or in the environment.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_integration::{binary, client, is_mount_point, Server, ACCESS_KEY, SECRET_KEY};

/// Run `cairn ARGS` with `home` as HOME and no credentials or endpoint in the environment;
/// (exit code, stdout + stderr).
fn cairn(home: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new(binary())
        .args(args)
        .env("HOME", home)
        .env_remove("CAIRN_CONFIG_DIR")
        .env_remove("CAIRN_ENDPOINT")
        .env_remove("CAIRN_ROOT_USER")
        .env_remove("CAIRN_ROOT_PASSWORD")
        .env_remove("MINIO_ROOT_USER")
        .env_remove("MINIO_ROOT_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn");
    {
        let mut i = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            i.write_all(s.as_bytes()).expect("stdin");
        }
    }
    let out = child.wait_with_output().expect("cairn");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_name_servers_keep_secrets_private_and_work_everywhere() {
    let server = Server::start();
    let home = tempfile::tempdir().expect("home");
    let h = home.path();

    let (code, out) = cairn(
        h,
        &[
            "alias",
            "set",
            "dev",
            &server.endpoint,
            ACCESS_KEY,
            SECRET_KEY,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(SECRET_KEY), "{out}");
    let file = h.join(".cairn/config.json");
    let mode = std::fs::metadata(&file)
        .expect("config.json")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "config.json mode {mode:o}");
    let dir_mode = std::fs::metadata(h.join(".cairn"))
        .expect(".cairn")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, ".cairn mode {dir_mode:o}");
    // MinIO mc's field names.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_eq!(config["aliases"]["dev"]["url"], server.endpoint.as_str());
    assert_eq!(config["aliases"]["dev"]["accessKey"], ACCESS_KEY);

    // Listing shows the alias, never its secret.
    for args in [
        &["alias", "list"][..],
        &["alias", "list", "dev", "--json"][..],
    ] {
        let (code, out) = cairn(h, args, None);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains(&server.endpoint) && out.contains(ACCESS_KEY),
            "{out}"
        );
        assert!(!out.contains(SECRET_KEY), "the secret was printed: {out}");
    }

    // The alias as a positional argument, and as --endpoint.
    let (code, out) = cairn(h, &["admin", "info", "dev"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("EC 2+2"), "{out}");
    let (code, out) = cairn(h, &["admin", "metrics", "--endpoint", "dev"], None);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cairn(h, &["admin", "prometheus", "token", "dev"], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("targets: ['127.0.0.1:{}']", server.port)),
        "{out}"
    );
    let (code, out) = cairn(
        h,
        &[
            "bench",
            "dev",
            "--op",
            "put",
            "--size",
            "4KiB",
            "--duration",
            "1s",
            "--concurrency",
            "2",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PUT"), "{out}");

    // Through a mount: NAME/BUCKET.
    let s3 = client(&server);
    s3.create_bucket()
        .bucket("via-alias")
        .send()
        .await
        .expect("create");
    if Path::new("/dev/fuse").exists() {
        let mnt = tempfile::tempdir().expect("mount point");
        let cache = mnt.path().join("cache");
        let point = mnt.path().join("mnt");
        std::fs::create_dir(&point).expect("mkdir");
        // In the foreground, its log in a file: a clean unmount must leave nothing alarming
        // there, and a file gets no colour codes.
        let log = mnt.path().join("mount.log");
        let mut child = Command::new(binary())
            .args(["mount", "dev/via-alias", "--foreground"])
            .arg(&point)
            .arg("--cache-dir")
            .arg(&cache)
            .env("HOME", h)
            .env_remove("CAIRN_CONFIG_DIR")
            .env_remove("CAIRN_ENDPOINT")
            .env_remove("CAIRN_ROOT_USER")
            .env_remove("CAIRN_ROOT_PASSWORD")
            .env_remove("CAIRN_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("cairn mount");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mount_point(&point) {
            assert!(
                Instant::now() < deadline,
                "the mount did not appear: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::write(point.join("hello.txt"), b"through an alias").expect("write");
        let status = Command::new("umount").arg(&point).status().expect("umount");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while cairn_integration::in_mount_table(&point) {
            assert!(Instant::now() < deadline, "still mounted after umount");
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = child.wait().expect("mount exits after umount");
        assert!(status.success(), "{status}");
        let text = std::fs::read_to_string(&log).expect("mount log");
        assert!(text.contains("mounted via-alias/"), "{text}");
        assert!(!text.contains("WARN") && !text.contains("ERROR"), "{text}");
        assert!(!text.contains('\x1b'), "colour codes in a log file: {text}");
        let got = s3
            .get_object()
            .bucket("via-alias")
            .key("hello.txt")
            .send()
            .await
            .expect("get");
        let body = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"through an alias");
    }

    // Keys from standard input; a wrong secret is refused by the server, naming it.
    let (code, out) = cairn(
        h,
        &["alias", "set", "typed", &server.endpoint],
        Some(&format!("{ACCESS_KEY}\nwrong-secret\n")),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = cairn(h, &["alias", "list", "typed"], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(ACCESS_KEY) && !out.contains("wrong-secret"),
        "{out}"
    );
    let (code, out) = cairn(h, &["admin", "info", "typed"], None);
    assert_ne!(code, 0, "{out}");

    // A mount that cannot work says what is wrong, where, and what to do.
    let point = tempfile::tempdir().expect("mount point");
    let p = point.path().to_str().expect("utf-8");
    let (code, out) = cairn(h, &["mount", "--foreground", "dev/no-such-bucket", p], None);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("bucket \"no-such-bucket\" does not exist at")
            && out.contains(&server.endpoint)
            && out.contains("s3 mb"),
        "{out}"
    );
    let (code, out) = cairn(h, &["mount", "--foreground", "typed/via-alias", p], None);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("refused access key \"{ACCESS_KEY}\""))
            && out.contains("SignatureDoesNotMatch")
            && out.contains("secret key"),
        "{out}"
    );

    // Unknown and removed aliases: a clear error with the fix.
    let (code, out) = cairn(h, &["admin", "info", "nope"], None);
    assert_ne!(code, 0);
    assert!(
        out.contains("no alias \"nope\"") && out.contains("cairn alias set"),
        "{out}"
    );
    let (code, out) = cairn(h, &["alias", "remove", "dev"], None);
    assert_eq!(code, 0, "{out}");
    let (code, _) = cairn(h, &["admin", "info", "dev"], None);
    assert_ne!(code, 0);
    let (code, out) = cairn(
        h,
        &["alias", "set", "bad/name", &server.endpoint, "a", "b"],
        None,
    );
    assert_ne!(code, 0, "{out}");
    let (code, out) = cairn(h, &["alias", "set", "x", "ftp://host", "a", "b"], None);
    assert_ne!(code, 0, "{out}");
}
