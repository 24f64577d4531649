//! TLS end to end: certificates made here by a private CA (in MinIO's certs-folder layout),
//! the real binary serving HTTPS, and real clients — the AWS CLI with `--ca-bundle`, boto3
//! with `verify=`, Python's `ssl` for what the handshake shows (SNI, ALPN, the certificate),
//! Cairn's own admin CLI, bench and mount — a 4-node cluster talking https to itself, and a
//! certificate rotated while a client streams.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use cairn_integration::{
    binary, require_tool, wait_until, Cluster, Mount, Pki, Server, ACCESS_KEY, SECRET_KEY,
};
use sha2::{Digest, Sha256};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The AWS CLI against `endpoint`, trusting `ca` (or only the system's roots).
fn aws(endpoint: &str, ca: Option<&Path>) -> Command {
    let mut c = Command::new("aws");
    c.arg("--endpoint-url").arg(endpoint);
    if let Some(ca) = ca {
        c.arg("--ca-bundle").arg(ca);
    }
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        // The machine's own bundle must not decide what these tests trust.
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("SSL_CERT_FILE");
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("run");
    assert!(out.status.success(), "{c:?} failed:\n{}", text(&out));
    text(&out)
}

/// What a TLS handshake with `port` as server name `name` shows a Python client trusting
/// `ca`: (sha256 of the certificate's DER, ALPN protocol); or the error it raised.
fn handshake(port: u16, name: &str, ca: &Path) -> Result<(String, String), String> {
    const SCRIPT: &str = r#"
import hashlib, socket, ssl, sys
port, name, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["h2", "http/1.1"])
try:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            print("OK", hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest(), t.selected_alpn_protocol())
except Exception as e:
    print("ERR", type(e).__name__, e)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(port.to_string())
        .arg(name)
        .arg(ca)
        .output()
        .expect("python3");
    let t = text(&out);
    let words: Vec<&str> = t.split_whitespace().collect();
    match words.as_slice() {
        ["OK", fp, alpn, ..] => Ok((fp.to_string(), alpn.to_string())),
        _ => Err(t),
    }
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn server_with(certs: &Path) -> Server {
    Server::start_with(4, &[("CAIRN_CERTS_DIR", certs.to_str().expect("utf-8"))])
}

fn cairn(args: &[&str]) -> Command {
    let mut c = Command::new(binary());
    c.args(args)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .env_remove("CAIRN_CA_CERT");
    c
}

#[test]
fn clients_speak_https_with_the_right_trust_and_nothing_else() {
    if !require_tool("aws") || !require_tool("python3") {
        return;
    }
    let pki = Pki::new("Cairn Test CA");
    let certs = pki.certs_dir("certs", &["localhost", "127.0.0.1"]);
    // An extra domain in its own sub-folder (SNI), as in MinIO's layout.
    let alt = pki.issue_into(&certs.join("alt.example"), &["alt.example"]);
    let default = std::fs::read_to_string(certs.join("public.crt")).expect("crt");
    let s = server_with(&certs);
    assert!(s.endpoint.starts_with("https://"), "{}", s.endpoint);
    let log = s.log();
    assert!(!log.contains("ERROR"), "{log}");

    // The AWS CLI with --ca-bundle: bucket, a multipart upload, the bytes back.
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src.bin");
    let body: Vec<u8> = (0..12u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
    std::fs::write(&src, &body).expect("write");
    let ca = Some(pki.ca_pem.as_path());
    ok(aws(&s.endpoint, ca).args(["s3", "mb", "s3://tls"]));
    ok(aws(&s.endpoint, ca)
        .args(["s3", "cp"])
        .arg(&src)
        .arg("s3://tls/big.bin"));
    let back = work.path().join("back.bin");
    ok(aws(&s.endpoint, ca)
        .args(["s3", "cp", "s3://tls/big.bin"])
        .arg(&back));
    assert!(std::fs::read(&back).expect("read") == body, "bytes differ");
    // Without the CA the CLI refuses the server.
    let out = aws(&s.endpoint, None)
        .args(["s3", "ls"])
        .output()
        .expect("aws");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        text(&out)
    );

    // `aws:SecureTransport` is true over TLS: a user allowed only over TLS reads, a user
    // allowed only over plain HTTP is denied.
    for (user, secure) in [("viatls", "true"), ("viaplain", "false")] {
        let policy = work.path().join(format!("{user}.json"));
        std::fs::write(
            &policy,
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject",
                "Resource":"arn:aws:s3:::tls/*","Condition":{{"Bool":{{"aws:SecureTransport":"{secure}"}}}}}}]}}"#
            ),
        )
        .expect("policy");
        let admin = |args: &[&str]| {
            ok(cairn(&["admin"])
                .args(args)
                .args(["--endpoint", &s.endpoint, "--ca-cert"])
                .arg(&pki.ca_pem))
        };
        admin(&["policy", "create", user, policy.to_str().expect("utf-8")]);
        admin(&["user", "add", user, "user-secret-123"]);
        admin(&["policy", "attach", user, "--user", user]);
    }
    let get_as = |user: &str| {
        aws(&s.endpoint, ca)
            .env("AWS_ACCESS_KEY_ID", user)
            .env("AWS_SECRET_ACCESS_KEY", "user-secret-123")
            .args([
                "s3api",
                "head-object",
                "--bucket",
                "tls",
                "--key",
                "big.bin",
            ])
            .output()
            .expect("aws")
    };
    let allowed = get_as("viatls");
    assert!(allowed.status.success(), "{}", text(&allowed));
    let denied = get_as("viaplain");
    assert!(!denied.status.success());
    assert!(text(&denied).contains("403"), "{}", text(&denied));

    // boto3 with verify= the CA; verify=True (public roots only) is refused.
    const BOTO: &str = r#"
import sys, boto3
from botocore.config import Config
ep, ca, ak, sk = sys.argv[1:5]
def client(verify):
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
        region_name="us-east-1", verify=verify, config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
c = client(ca)
c.put_object(Bucket="tls", Key="boto/k", Body=b"q" * 100000)
print("LEN", len(c.get_object(Bucket="tls", Key="boto/k")["Body"].read()))
try:
    client(True).list_buckets()
    print("UNVERIFIED-ACCEPTED")
except Exception as e:
    print("REFUSED", type(e).__name__)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(BOTO)
        .arg(&s.endpoint)
        .arg(&pki.ca_pem)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .expect("python3");
    let t = text(&out);
    if !t.contains("No module named 'boto3'") || std::env::var_os("CI").is_some() {
        assert!(t.contains("LEN 100000"), "{t}");
        assert!(t.contains("REFUSED SSLError"), "{t}");
    }

    // The handshake: HTTP/2 offered by ALPN, the default certificate for the IP and for
    // localhost, the sub-folder's for its domain.
    let default_fp = {
        let der = pem_to_der(&default);
        fingerprint(&der)
    };
    assert_eq!(
        handshake(s.port, "127.0.0.1", &pki.ca_pem),
        Ok((default_fp.clone(), "h2".to_string()))
    );
    assert_eq!(
        handshake(s.port, "localhost", &pki.ca_pem).map(|r| r.0),
        Ok(default_fp)
    );
    assert_eq!(
        handshake(s.port, "alt.example", &pki.ca_pem).map(|r| r.0),
        Ok(fingerprint(&alt))
    );

    // Plain HTTP to the HTTPS port is told what went wrong, not handed TLS garbage.
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp.write_all(b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 400"), "{answer:?}");
    assert!(
        answer.contains("HTTP request to an HTTPS server"),
        "{answer:?}"
    );

    // Cairn's own clients: --ca-cert (or CAIRN_CA_CERT), --insecure with a warning, and a
    // clear refusal without either.
    let out = cairn(&["admin", "info", "--endpoint", &s.endpoint])
        .output()
        .expect("admin");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("UnknownIssuer") && text(&out).contains("--ca-cert"),
        "{}",
        text(&out)
    );
    let info = ok(cairn(&["admin", "info", "--endpoint", &s.endpoint])
        .arg("--ca-cert")
        .arg(&pki.ca_pem));
    assert!(info.contains("EC 2+2"), "{info}");
    let insecure = ok(&mut cairn(&[
        "admin",
        "info",
        "--insecure",
        "--endpoint",
        &s.endpoint,
    ]));
    assert!(
        insecure.contains("WARNING: --insecure") && insecure.contains("EC 2+2"),
        "{insecure}"
    );
    let bench = ok(cairn(&[
        "bench",
        "--endpoint",
        &s.endpoint,
        "--op",
        "put",
        "--size",
        "64KiB",
        "--duration",
        "2s",
        "--concurrency",
        "2",
    ])
    .env("CAIRN_CA_CERT", &pki.ca_pem));
    assert!(bench.contains("PUT"), "{bench}");
    let out = cairn(&[
        "bench",
        "--endpoint",
        &s.endpoint,
        "--op",
        "get",
        "--duration",
        "1s",
    ])
    .output()
    .expect("bench");
    assert!(!out.status.success(), "{}", text(&out));
    // The server logged the refused handshakes with the reason.
    let log = s.log();
    assert!(
        log.contains("TLS handshake failed") && log.contains("UnknownCA"),
        "{log}"
    );

    // A mount over https.
    let m = Mount::start(
        &s,
        "tls",
        &["--ca-cert", pki.ca_pem.to_str().expect("utf-8")],
    );
    std::fs::write(m.path.join("from-mount.txt"), b"through FUSE over TLS").expect("write");
    let read = std::fs::read(m.path.join("big.bin")).expect("read through mount");
    assert!(read == body, "bytes read through the mount differ");
    m.unmount();
    let got = ok(aws(&s.endpoint, ca).args(["s3", "cp", "s3://tls/from-mount.txt", "-"]));
    assert!(got.contains("through FUSE over TLS"), "{got}");
}

/// The DER of the first certificate in a PEM text.
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

#[test]
fn certificates_rotate_while_a_client_streams() {
    if !require_tool("aws") || !require_tool("python3") {
        return;
    }
    let pki = Pki::new("Cairn Rotation CA");
    let certs = pki.certs_dir("certs", &["127.0.0.1"]);
    let first = pem_to_der(&std::fs::read_to_string(certs.join("public.crt")).expect("crt"));
    let s = server_with(&certs);
    let ca = Some(pki.ca_pem.as_path());
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src.bin");
    let body: Vec<u8> = (0..96u32 << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    std::fs::write(&src, &body).expect("write");
    ok(aws(&s.endpoint, ca).args(["s3", "mb", "s3://rot"]));
    ok(aws(&s.endpoint, ca)
        .args(["s3", "cp"])
        .arg(&src)
        .arg("s3://rot/big.bin"));
    drop(src);

    // One GET on one TLS connection (a presigned URL read by urllib), 1 MiB read and then
    // held: the server is mid-stream, blocked on the socket, while the certificate changes.
    const STREAM: &str = r#"
import hashlib, ssl, sys, urllib.request, boto3
from botocore.config import Config
ep, ca, ak, sk = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
    region_name="us-east-1", verify=ca, config=Config(s3={"addressing_style": "path"}))
url = s3.generate_presigned_url("get_object", Params={"Bucket": "rot", "Key": "big.bin"})
resp = urllib.request.urlopen(url, context=ssl.create_default_context(cafile=ca))
h = hashlib.sha256()
first = resp.read(1 << 20)
h.update(first)
print("STARTED", len(first), flush=True)
sys.stdin.readline()
n = len(first)
while True:
    b = resp.read(1 << 20)
    if not b:
        break
    n += len(b)
    h.update(b)
print("DONE", n, h.hexdigest(), flush=True)
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(STREAM)
        .arg(&s.endpoint)
        .arg(&pki.ca_pem)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        child.stdout.take().expect("stdout"),
    ));
    let started = lines.next().and_then(Result::ok).unwrap_or_default();
    if started.is_empty() {
        let out = child.wait_with_output().expect("python");
        if text(&out).contains("No module named 'boto3'") && std::env::var_os("CI").is_none() {
            eprintln!("SKIPPED: boto3 not importable");
            return;
        }
        panic!("stream did not start: {}", text(&out));
    }
    assert_eq!(started, format!("STARTED {}", 1 << 20));

    // A broken certificate is refused and the old one kept.
    std::fs::write(
        certs.join("public.crt"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    )
    .expect("break");
    wait_until(
        "the failed reload to be logged",
        Duration::from_secs(15),
        || s.log().contains("TLS certificates not reloaded"),
    );
    assert_eq!(
        handshake(s.port, "127.0.0.1", &pki.ca_pem).map(|r| r.0),
        Ok(fingerprint(&first))
    );
    // A new certificate: new connections get it within the reload interval.
    let second = pki.issue_into(&certs, &["127.0.0.1"]);
    wait_until(
        "new connections to get the new certificate",
        Duration::from_secs(15),
        || handshake(s.port, "127.0.0.1", &pki.ca_pem).map(|r| r.0) == Ok(fingerprint(&second)),
    );
    assert!(s.log().contains("TLS certificates reloaded"), "{}", s.log());

    // The stream that began under the old certificate completes, byte-exact.
    stdin.write_all(b"go\n").expect("resume");
    let done = lines.next().and_then(Result::ok).unwrap_or_default();
    let status = child.wait().expect("python exit");
    assert!(status.success(), "{done}");
    assert_eq!(
        done,
        format!("DONE {} {}", body.len(), hex::encode(Sha256::digest(&body)))
    );

    // SIGHUP reloads too (the files did not change: the same certificate, logged again).
    let before = s.log().matches("TLS certificates reloaded").count();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    wait_until("a reload on SIGHUP", Duration::from_secs(10), || {
        s.log().matches("TLS certificates reloaded").count() > before
    });
    ok(aws(&s.endpoint, ca).args(["s3", "ls", "s3://rot"]));
}

fn run_server(args: &[String], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(binary());
    c.arg("server")
        .args(args)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("cairn server")
}

#[test]
fn a_four_node_cluster_talks_https_and_refuses_a_node_it_cannot_verify() {
    if !require_tool("aws") {
        return;
    }
    let pki = Pki::new("Cairn Cluster CA");
    let certs = pki.certs_dir("certs", &["127.0.0.1", "localhost"]);
    let certs_s = certs.to_str().expect("utf-8").to_string();
    let mut c = Cluster::start_tls(4, 2, &[("CAIRN_CERTS_DIR", &certs_s)]);
    let ca = Some(pki.ca_pem.as_path());
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("obj");
    let body: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &body).expect("write");
    ok(aws(&c.endpoint(0), ca).args(["s3", "mb", "s3://cluster"]));
    ok(aws(&c.endpoint(0), ca)
        .args(["s3", "cp"])
        .arg(&src)
        .arg("s3://cluster/obj"));
    let back = work.path().join("back");
    ok(aws(&c.endpoint(3), ca)
        .args(["s3", "cp", "s3://cluster/obj"])
        .arg(&back));
    assert!(std::fs::read(&back).expect("read") == body);
    let info = ok(cairn(&["admin", "info", "--endpoint", &c.endpoint(2)])
        .arg("--ca-cert")
        .arg(&pki.ca_pem));
    assert!(info.contains("8/8 drives online"), "{info}");
    assert_eq!(info.matches("online   https://").count(), 8, "{info}");

    // Node 4 comes back with a certificate from another CA (and trusts only that CA).
    let rogue = Pki::new("Some Other CA");
    let rogue_certs = rogue.certs_dir("certs", &["127.0.0.1"]);
    c.stop(3);
    let args = c.args();
    c.spawn_with(
        3,
        args,
        &[("CAIRN_CERTS_DIR", rogue_certs.to_str().expect("utf-8"))],
    );
    wait_until(
        "both sides to log the refused certificate",
        Duration::from_secs(40),
        || {
            let mine = c.log(3);
            let theirs = c.log(0);
            mine.contains("UnknownIssuer")
                && theirs.contains("UnknownIssuer")
                && theirs.contains("UnknownCA")
        },
    );
    // The other three still serve (EC 4+4 over 8 drives: 6 remain).
    ok(aws(&c.endpoint(1), ca)
        .args(["s3", "cp", "s3://cluster/obj"])
        .arg(&back));
    assert!(std::fs::read(&back).expect("read") == body);
    c.kill(3);

    // Mixed schemes, https without a certificate, http with one: refused at start.
    let d = work.path();
    let mixed = vec![
        format!("http://127.0.0.1:1{}/a{{1...2}}", d.display()),
        format!("https://127.0.0.2:1{}/b{{1...2}}", d.display()),
    ];
    let out = run_server(&mixed, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot mix http:// and https://"),
        "{}",
        text(&out)
    );
    let https: Vec<String> = vec![format!(
        "https://127.0.0.1:{{9701...9702}}{}/c{{1...2}}",
        d.display()
    )];
    let empty: PathBuf = d.join("no-certs");
    let out = run_server(&https, &[("CAIRN_CERTS_DIR", &empty)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("has no public.crt"), "{}", text(&out));
    let http: Vec<String> = vec![format!(
        "http://127.0.0.1:{{9701...9702}}{}/c{{1...2}}",
        d.display()
    )];
    let out = run_server(&http, &[("CAIRN_CERTS_DIR", &certs)]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("write the endpoints as https://"),
        "{}",
        text(&out)
    );
}
