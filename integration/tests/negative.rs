//! Requests real clients would never send, signed by hand: each must get the exact S3
//! error code and status.

use std::time::{Duration, SystemTime};

use base64::Engine;
use cairn_integration::{unplug, Server, ACCESS_KEY, REGION, SECRET_KEY};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

thread_local! {
    /// Host header to sign and send instead of the endpoint's (virtual-hosted requests).
    static HOST: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// A SigV4-signed request for a path and query without characters that need encoding.
fn signed(
    server: &Server,
    method: &str,
    path: &str,
    query: &str,
    payload_hash: &str,
    at: SystemTime,
) -> http::request::Builder {
    let t = time::OffsetDateTime::from(at);
    let stamp = t
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("format");
    let date = &stamp[..8];
    let host = HOST
        .with(|h| h.borrow().clone())
        .unwrap_or_else(|| format!("127.0.0.1:{}", server.port));
    let canonical = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload_hash}"
    );
    let scope = format!("{date}/{REGION}/s3/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date);
    for part in [REGION, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let sig = hex::encode(hmac(&key, &sts));
    let url = if query.is_empty() {
        format!("{}{path}", server.endpoint)
    } else {
        format!("{}{path}?{query}", server.endpoint)
    };
    http::Request::builder()
        .method(method)
        .uri(url)
        .header("host", &host)
        .header("x-amz-date", &stamp)
        .header("x-amz-content-sha256", payload_hash)
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"),
        )
}

fn error_code(body: &str) -> String {
    body.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
        .to_string()
}

fn send(req: http::request::Builder, body: &[u8]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut resp = agent
        .run(req.body(body.to_vec()).expect("request"))
        .expect("response");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn hand_signed_requests() {
    let s = Server::start();
    let now = SystemTime::now();
    // The signer itself is right: a bucket can be made.
    let (status, _) = send(signed(&s, "PUT", "/neg", "", &sha_hex(b""), now), b"");
    assert_eq!(status, 200);
    let (status, body) = send(
        signed(&s, "PUT", "/neg/obj", "", &sha_hex(b"hello"), now),
        b"hello",
    );
    assert_eq!(status, 200, "{body}");

    // Clock skewed by 20 minutes.
    let (status, body) = send(
        signed(
            &s,
            "GET",
            "/neg",
            "",
            &sha_hex(b""),
            now - Duration::from_secs(1200),
        ),
        b"",
    );
    assert_eq!(
        (status, error_code(&body).as_str()),
        (403, "RequestTimeTooSkewed")
    );
    assert!(body.contains("<RequestId>"), "{body}");

    // Body not matching its declared SHA-256: refused, nothing stored.
    let (status, body) = send(
        signed(&s, "PUT", "/neg/liar", "", &sha_hex(b"declared"), now),
        b"actual!!",
    );
    assert_eq!(
        (status, error_code(&body).as_str()),
        (400, "XAmzContentSHA256Mismatch")
    );
    let (status, _) = send(signed(&s, "HEAD", "/neg/liar", "", &sha_hex(b""), now), b"");
    assert_eq!(status, 404);

    // Body not matching Content-MD5.
    let wrong_md5 = base64::engine::general_purpose::STANDARD
        .encode(<md5::Md5 as md5::Digest>::digest(b"other"));
    let (status, body) = send(
        signed(&s, "PUT", "/neg/md5", "", "UNSIGNED-PAYLOAD", now)
            .header("content-md5", &wrong_md5),
        b"payload",
    );
    assert_eq!((status, error_code(&body).as_str()), (400, "BadDigest"));
    let (status, body) = send(
        signed(&s, "PUT", "/neg/md5", "", "UNSIGNED-PAYLOAD", now)
            .header("content-md5", "not base64!"),
        b"payload",
    );
    assert_eq!((status, error_code(&body).as_str()), (400, "InvalidDigest"));

    // Malformed XML.
    let xml = b"<Delete><Object><Key>obj</Key></Object";
    let md5 =
        base64::engine::general_purpose::STANDARD.encode(<md5::Md5 as md5::Digest>::digest(xml));
    let (status, body) = send(
        signed(&s, "POST", "/neg", "delete=", &sha_hex(xml), now).header("content-md5", &md5),
        xml,
    );
    assert_eq!((status, error_code(&body).as_str()), (400, "MalformedXML"));
    let bad_complete = b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>";
    let (status, body) = send(
        signed(
            &s,
            "POST",
            "/neg/obj",
            "uploadId=00000000-0000-0000-0000-000000000000",
            &sha_hex(bad_complete),
            now,
        ),
        bad_complete,
    );
    assert_eq!((status, error_code(&body).as_str()), (400, "MalformedXML"));

    // Unimplemented subresources and methods say so.
    let (status, body) = send(
        signed(&s, "GET", "/neg", "website=", &sha_hex(b""), now),
        b"",
    );
    assert_eq!(
        (status, error_code(&body).as_str()),
        (501, "NotImplemented")
    );
    let (status, body) = send(signed(&s, "PATCH", "/neg/obj", "", &sha_hex(b""), now), b"");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (405, "MethodNotAllowed")
    );

    // A non-empty bucket cannot be deleted.
    let (status, body) = send(signed(&s, "DELETE", "/neg", "", &sha_hex(b""), now), b"");
    assert_eq!(
        (status, error_code(&body).as_str()),
        (409, "BucketNotEmpty")
    );
}

#[test]
fn early_errors_reach_clients_still_sending_a_body() {
    // The server refuses these before reading their bodies; the client only reads the
    // response once its 8 MiB body is sent. Without draining, the unread bytes make the
    // server's kernel reset the connection and the client sees a broken pipe instead.
    let s = Server::start();
    let now = SystemTime::now();
    let big = vec![7u8; 8 << 20];
    for i in 0..12 {
        let (status, body) = send(
            signed(
                &s,
                "PUT",
                &format!("/nobucket/k{i}"),
                "",
                "UNSIGNED-PAYLOAD",
                now,
            ),
            &big,
        );
        assert_eq!(
            (status, error_code(&body).as_str()),
            (404, "NoSuchBucket"),
            "{body}"
        );
        let (status, body) = send(
            http::Request::builder()
                .method("PUT")
                .uri(format!("{}/nobucket/k{i}", s.endpoint)),
            &big,
        );
        assert_eq!(
            (status, error_code(&body).as_str()),
            (403, "AccessDenied"),
            "{body}"
        );
    }
}

/// The head of one HTTP/1.1 response read off `conn` (up to the blank line), lower-cased.
fn response_head(conn: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!("response head cut short ({other:?}): {head:?}"),
        }
    }
    String::from_utf8_lossy(&head).to_ascii_lowercase()
}

/// An unsigned `PUT` of `body` to `path` over a new connection to `addr`, sent whole before
/// anything is read (as clients without `Expect: 100-continue` do): the connection and the
/// answer's head.
fn put_whole_body(addr: &str, path: &str, body: &[u8]) -> (std::net::TcpStream, String) {
    send_whole_body(addr, "PUT", path, body)
}

/// [`put_whole_body`] with another method.
fn send_whole_body(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> (std::net::TcpStream, String) {
    use std::io::Write;
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    conn.set_write_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).expect("head");
    conn.write_all(body)
        .expect("the body, drained by the server");
    let answer = response_head(&mut conn);
    (conn, answer)
}

/// The server closes `conn` after the answer whose head was `answer`: only its body follows.
fn closes_after(mut conn: std::net::TcpStream, answer: &str) {
    use std::io::Read;
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .expect("the server closes after the answer");
    assert_eq!(
        rest.len(),
        content_length(answer),
        "only the error's body follows"
    );
}

/// The `content-length` of a lower-cased response head.
fn content_length(head: &str) -> usize {
    head.split("\r\ncontent-length: ")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .expect("content-length")
}

#[test]
fn an_answer_that_leaves_the_body_unread_closes_its_connection() {
    // Refused before its body is read, a request's rest is drained in the background; the
    // connection must not carry the client's next request (a drain that gives up closes it,
    // and the next request meets a reset), so the answer says `Connection: close` and the
    // server closes once the body is read.
    use std::io::{Read, Write};
    let s = Server::start();
    let addr = s.endpoint.trim_start_matches("http://").to_string();
    let big = vec![7u8; 8 << 20];
    let (conn, answer) = put_whole_body(&addr, "/nobucket/k", &big);
    assert!(answer.starts_with("http/1.1 403"), "{answer}");
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    closes_after(conn, &answer);

    // Answers that read their request's body whole (or had none) keep the connection: a
    // chunked upload of unknown length (whose end only its last chunk tells), then GETs.
    let now = SystemTime::now();
    let (status, _) = send(signed(&s, "PUT", "/unread", "", &sha_hex(b""), now), b"");
    assert_eq!(status, 200);
    let mut conn = std::net::TcpStream::connect(&addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let put = signed(&s, "PUT", "/unread/chunked", "", "UNSIGNED-PAYLOAD", now)
        .body(())
        .expect("request");
    let mut head = String::from("PUT /unread/chunked HTTP/1.1\r\n");
    for (name, value) in put.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().expect("ascii")));
    }
    head.push_str("transfer-encoding: chunked\r\n\r\n");
    conn.write_all(head.as_bytes()).expect("head");
    for chunk in big.chunks(1 << 20) {
        conn.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .expect("chunk size");
        conn.write_all(chunk).expect("chunk");
        conn.write_all(b"\r\n").expect("chunk end");
    }
    conn.write_all(b"0\r\n\r\n").expect("last chunk");
    let answer = response_head(&mut conn);
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("\r\ncontent-length: 0\r\n"), "{answer}");
    for _ in 0..2 {
        let get = format!("GET /nobucket/k HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        conn.write_all(get.as_bytes()).expect("request");
        let answer = response_head(&mut conn);
        assert!(answer.starts_with("http/1.1 403"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
        let mut body = vec![0u8; content_length(&answer)];
        conn.read_exact(&mut body).expect("error body");
    }

    // The same for what S3 does not answer: the admin API and a health probe, each sent a
    // body it does not read.
    for (method, path, status) in [
        ("PUT", "/cairn/admin/v1/config", "403"),
        ("GET", "/minio/health/live", "200"),
    ] {
        let (conn, answer) = send_whole_body(&addr, method, path, &big);
        assert!(
            answer.starts_with(&format!("http/1.1 {status}")),
            "{method} {path}: {answer}"
        );
        assert!(
            answer.contains("\r\nconnection: close\r\n"),
            "{method} {path}: {answer}"
        );
        closes_after(conn, &answer);
    }
}

/// A server process killed and reaped when dropped (a failed assert leaves nothing running).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_upload_refused_while_the_server_starts_reads_its_503() {
    // A server whose second pool (another node) never comes answers 503 while it waits. An
    // upload refused there is drained and told `Connection: close`, like any answer that
    // leaves a body unread, so a client that sends its whole body first still reads the 503.
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect();
    let addr = format!("127.0.0.1:{}", ports[0]);
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut server = Killed(
        std::process::Command::new(cairn_integration::binary())
            .arg("server")
            .arg("--address")
            .arg(&addr)
            .args(ports.iter().enumerate().map(|(i, p)| {
                format!(
                    "http://127.0.0.1:{p}{}/n{i}d{{1...2}}",
                    dir.path().display()
                )
            }))
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .env("CAIRN_CERTS_DIR", dir.path().join("no-certs"))
            .env("CAIRN_CONSOLE_ADDRESS", "off")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cairn"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("cairn exited with {status}; log:\n{}", log());
        }
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no listener; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let big = vec![7u8; 8 << 20];
    let (conn, answer) = put_whole_body(&addr, "/b/k", &big);
    assert!(
        answer.starts_with("http/1.1 503"),
        "{answer}\nlog:\n{}",
        log()
    );
    assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
    assert!(answer.contains("\r\nretry-after: 1\r\n"), "{answer}");
    closes_after(conn, &answer);
}

#[test]
fn virtual_hosted_style_requests() {
    let s = Server::start_with(4, &[("CAIRN_DOMAIN", "s3.test")]);
    let now = SystemTime::now();
    let (status, _) = send(signed(&s, "PUT", "/vhost", "", &sha_hex(b""), now), b"");
    assert_eq!(status, 200);
    HOST.with(|h| *h.borrow_mut() = Some(format!("vhost.s3.test:{}", s.port)));
    let (status, body) = send(
        signed(&s, "PUT", "/greeting.txt", "", &sha_hex(b"hi there"), now),
        b"hi there",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        signed(&s, "GET", "/greeting.txt", "", &sha_hex(b""), now),
        b"",
    );
    assert_eq!((status, body.as_str()), (200, "hi there"));
    let (status, body) = send(
        signed(&s, "GET", "/", "list-type=2", &sha_hex(b""), now),
        b"",
    );
    assert_eq!(status, 200);
    assert!(body.contains("<Key>greeting.txt</Key>"), "{body}");
    HOST.with(|h| *h.borrow_mut() = None);
    // The same object, path-style.
    let (status, body) = send(
        signed(&s, "GET", "/vhost/greeting.txt", "", &sha_hex(b""), now),
        b"",
    );
    assert_eq!((status, body.as_str()), (200, "hi there"));
}

#[test]
fn lost_drives_degrade_then_fail_with_503() {
    let s = Server::start();
    let now = SystemTime::now();
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        send(signed(&s, "PUT", "/quorum", "", &sha_hex(b""), now), b"").0,
        200
    );
    assert_eq!(
        send(
            signed(&s, "PUT", "/quorum/obj", "", &sha_hex(&payload), now),
            &payload
        )
        .0,
        200
    );
    // EC 2+2: two drives gone, the object still reads back byte-exact.
    for d in &s.drives[..2] {
        unplug(d);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = || {
        let req = signed(
            &s,
            "GET",
            "/quorum/obj",
            "",
            &sha_hex(b""),
            SystemTime::now(),
        );
        let mut resp = agent
            .run(req.body(Vec::new()).expect("request"))
            .expect("response");
        (
            resp.status().as_u16(),
            resp.body_mut()
                .with_config()
                .limit(10 << 20)
                .read_to_vec()
                .unwrap_or_default(),
        )
    };
    let (status, body) = get();
    assert_eq!(status, 200);
    assert!(body == payload, "degraded read differs");
    // Writes need 3 of 4 drives: refused with 503, and readiness says so.
    let (status, body) = send(
        signed(
            &s,
            "PUT",
            "/quorum/new",
            "",
            &sha_hex(b"x"),
            SystemTime::now(),
        ),
        b"x",
    );
    assert_eq!(
        (status, error_code(&body).as_str()),
        (503, "ServiceUnavailable")
    );
    let ready = agent
        .get(&format!("{}/health/ready", s.endpoint))
        .call()
        .expect("probe");
    assert_eq!(ready.status().as_u16(), 503);
    // A third drive gone: reads fail cleanly too, never with wrong bytes.
    unplug(&s.drives[2]);
    let (status, body) = get();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
}

/// Inputs an attacker or a confused client sends get S3 errors (or the AWS answer), never a
/// dropped connection or a 5xx: a SigV2 presigned `Expires` past any representable time, a
/// listing prefix with a component longer than a file name.
#[test]
fn hostile_inputs_get_s3_answers() {
    let s = Server::start();
    for expires in ["18446744073709551615", "99999999999"] {
        let (status, body) = send(
            http::Request::builder().method("GET").uri(format!(
                "{}/b/k?AWSAccessKeyId={ACCESS_KEY}&Expires={expires}&Signature=abc",
                s.endpoint
            )),
            b"",
        );
        assert_eq!(
            (status, error_code(&body).as_str()),
            (403, "AccessDenied"),
            "{body}"
        );
    }
    let now = SystemTime::now();
    assert_eq!(
        send(signed(&s, "PUT", "/longp", "", &sha_hex(b""), now), b"").0,
        200
    );
    let long = "a".repeat(300);
    for query in [
        format!("list-type=2&prefix={long}%2F"),
        format!("list-type=2&prefix=x%2F{long}%2Fy"),
        format!("delimiter=%2F&prefix={long}%2F"),
    ] {
        let (status, body) = send(signed(&s, "GET", "/longp", &query, &sha_hex(b""), now), b"");
        assert_eq!(status, 200, "{query}: {body}");
        assert!(!body.contains("<Contents>"), "{body}");
    }
    // The server is still there.
    assert_eq!(
        send(signed(&s, "GET", "/longp", "", &sha_hex(b""), now), b"").0,
        200
    );
}

/// A request addressing `op` (bucket `feat`, object `k`, source `feat/src`): what the server
/// does once it has decided the headers is beside the point.
fn request_for(op: cairn::s3::router::Op) -> (&'static str, &'static str, &'static str, bool) {
    use cairn::s3::router::Op::*;
    // (method, path, canonical query, carries x-amz-copy-source)
    match op {
        ListBuckets => ("GET", "/", "", false),
        CreateBucket => ("PUT", "/feat-new", "", false),
        HeadBucket => ("HEAD", "/feat", "", false),
        DeleteBucket => ("DELETE", "/feat-none", "", false),
        GetBucketLocation => ("GET", "/feat", "location=", false),
        GetBucketVersioning => ("GET", "/feat", "versioning=", false),
        PutBucketVersioning => ("PUT", "/feat", "versioning=", false),
        ListObjectVersions => ("GET", "/feat", "versions=", false),
        GetObjectTagging => ("GET", "/feat/k", "tagging=", false),
        PutObjectTagging => ("PUT", "/feat/k", "tagging=", false),
        DeleteObjectTagging => ("DELETE", "/feat/k", "tagging=", false),
        GetBucketTagging => ("GET", "/feat", "tagging=", false),
        PutBucketTagging => ("PUT", "/feat", "tagging=", false),
        DeleteBucketTagging => ("DELETE", "/feat", "tagging=", false),
        GetObjectLockConfiguration => ("GET", "/feat", "object-lock=", false),
        PutObjectLockConfiguration => ("PUT", "/feat", "object-lock=", false),
        GetObjectRetention => ("GET", "/feat/k", "retention=", false),
        PutObjectRetention => ("PUT", "/feat/k", "retention=", false),
        GetObjectLegalHold => ("GET", "/feat/k", "legal-hold=", false),
        PutObjectLegalHold => ("PUT", "/feat/k", "legal-hold=", false),
        GetObjectAttributes => ("GET", "/feat/k", "attributes=", false),
        PostObject => ("POST", "/feat", "", false),
        GetBucketCors => ("GET", "/feat", "cors=", false),
        PutBucketCors => ("PUT", "/feat", "cors=", false),
        DeleteBucketCors => ("DELETE", "/feat", "cors=", false),
        GetBucketEncryption => ("GET", "/feat", "encryption=", false),
        PutBucketEncryption => ("PUT", "/feat", "encryption=", false),
        DeleteBucketEncryption => ("DELETE", "/feat", "encryption=", false),
        GetBucketNotification => ("GET", "/feat", "notification=", false),
        PutBucketNotification => ("PUT", "/feat", "notification=", false),
        GetBucketLifecycle => ("GET", "/feat", "lifecycle=", false),
        PutBucketLifecycle => ("PUT", "/feat", "lifecycle=", false),
        DeleteBucketLifecycle => ("DELETE", "/feat", "lifecycle=", false),
        GetAcl => ("GET", "/feat/k", "acl=", false),
        PutAcl => ("PUT", "/feat/k", "acl=", false),
        ListObjects { v2: false } => ("GET", "/feat", "", false),
        ListObjects { v2: true } => ("GET", "/feat", "list-type=2", false),
        DeleteObjects => ("POST", "/feat", "delete=", false),
        PutObject => ("PUT", "/feat/k", "", false),
        CopyObject => ("PUT", "/feat/k", "", true),
        GetObject => ("GET", "/feat/k", "", false),
        HeadObject => ("HEAD", "/feat/k", "", false),
        DeleteObject => ("DELETE", "/feat/k", "", false),
        CreateMultipartUpload => ("POST", "/feat/k", "uploads=", false),
        UploadPart => ("PUT", "/feat/k", "partNumber=1&uploadId=u", false),
        UploadPartCopy => ("PUT", "/feat/k", "partNumber=1&uploadId=u", true),
        CompleteMultipartUpload => ("POST", "/feat/k", "uploadId=u", false),
        AbortMultipartUpload => ("DELETE", "/feat/k", "uploadId=u", false),
        ListParts => ("GET", "/feat/k", "uploadId=u", false),
        ListMultipartUploads => ("GET", "/feat", "uploads=", false),
        GetBucketPolicy => ("GET", "/feat", "policy=", false),
        PutBucketPolicy => ("PUT", "/feat", "policy=", false),
        DeleteBucketPolicy => ("DELETE", "/feat", "policy=", false),
        GetBucketPolicyStatus => ("GET", "/feat", "policyStatus=", false),
        GetPublicAccessBlock => ("GET", "/feat", "publicAccessBlock=", false),
        PutPublicAccessBlock => ("PUT", "/feat", "publicAccessBlock=", false),
        DeletePublicAccessBlock => ("DELETE", "/feat", "publicAccessBlock=", false),
        GetOwnershipControls => ("GET", "/feat", "ownershipControls=", false),
        PutOwnershipControls => ("PUT", "/feat", "ownershipControls=", false),
        DeleteOwnershipControls => ("DELETE", "/feat", "ownershipControls=", false),
        AssumeRole => ("POST", "/", "", false),
    }
}

/// Walks the server's own table of feature headers: every header an operation can carry
/// but Cairn does not honour there is refused with the S3 error on that operation, through
/// the real server; the values that ask for nothing extra are not.
#[test]
fn every_unhonoured_feature_header_is_refused_where_it_can_be_carried() {
    use cairn::s3::features::{Refusal, FEATURES};
    let s = Server::start();
    let now = SystemTime::now();
    let (status, _) = send(signed(&s, "PUT", "/feat", "", &sha_hex(b""), now), b"");
    assert_eq!(status, 200);
    let (status, _) = send(
        signed(&s, "PUT", "/feat/src", "", &sha_hex(b"s"), now),
        b"s",
    );
    assert_eq!(status, 200);
    let mut walked = 0;
    for f in FEATURES {
        for op in f.carried_by {
            let (method, path, query, copy) = request_for(*op);
            let req = |value: &str| {
                let mut r = signed(&s, method, path, query, "UNSIGNED-PAYLOAD", now)
                    .header(f.header, value);
                if copy {
                    r = r.header("x-amz-copy-source", "/feat/src");
                }
                send(r, b"")
            };
            let (status, body) = req("surely-not-neutral");
            let refused = match f.refusal {
                Refusal::NotImplemented => (501, "NotImplemented"),
                Refusal::InvalidStorageClass => (400, "InvalidStorageClass"),
                Refusal::NotForThisOperation => (400, "InvalidArgument"),
            };
            let what = format!("{} on {op:?} ({method} {path}?{query})", f.header);
            if f.honoured_by.contains(op) {
                // Honoured headers here are conditions; `*` is a value each can read.
                let (status, body) = req("*");
                assert_ne!(status, refused.0, "{what} is honoured: {body}");
            } else {
                assert_eq!(status, refused.0, "{what}: {body}");
                if method != "HEAD" {
                    assert_eq!(error_code(&body), refused.1, "{what}");
                    assert!(body.contains("<RequestId>"), "{what}: {body}");
                }
                walked += 1;
            }
            for v in f.neutral {
                let (status, body) = req(v);
                assert_ne!(status, refused.0, "{}: {v} on {op:?}: {body}", f.header);
            }
        }
    }
    let expected: usize = FEATURES
        .iter()
        .map(|f| {
            f.carried_by
                .iter()
                .filter(|op| !f.honoured_by.contains(op))
                .count()
        })
        .sum();
    assert_eq!(walked, expected, "every refusal in the table was walked");
    // Not vacuous: the table still refuses a dozen header/operation pairs.
    assert!(walked >= 12, "only {walked} refusals walked");
}

fn etag_of(headers_and_body: &ureq::http::Response<ureq::Body>) -> String {
    headers_and_body
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `If-None-Match: *` and `If-Match` on PutObject, CopyObject and CompleteMultipartUpload;
/// racing creators of one key: exactly one wins.
#[test]
fn conditional_writes_through_the_server() {
    let s = Server::start();
    let now = SystemTime::now();
    let put = |path: &str, body: &[u8], h: &[(&str, &str)]| {
        let mut r = signed(&s, "PUT", path, "", &sha_hex(body), now);
        for (n, v) in h {
            r = r.header(*n, *v);
        }
        send(r, body)
    };
    assert_eq!(put("/cwb", b"", &[]).0, 200);
    let (status, body) = put("/cwb/k", b"one", &[("if-none-match", "*")]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = put("/cwb/k", b"two", &[("if-none-match", "*")]);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (412, "PreconditionFailed")
    );
    let (status, body) = put("/cwb/k", b"two", &[("if-match", "\"0123\"")]);
    assert_eq!(
        (status, error_code(&body).as_str()),
        (412, "PreconditionFailed")
    );
    let (status, body) = put("/cwb/missing", b"two", &[("if-match", "*")]);
    assert_eq!((status, error_code(&body).as_str()), (404, "NoSuchKey"));
    let one = format!("\"{}\"", hex::encode(md5::Md5::digest(b"one")));
    let (status, body) = put("/cwb/k", b"two", &[("if-match", &one)]);
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(signed(&s, "GET", "/cwb/k", "", &sha_hex(b""), now), b"");
    assert_eq!((status, body.as_str()), (200, "two"));
    // CopyObject: the condition is on the destination.
    let (status, body) = put(
        "/cwb/k",
        b"",
        &[
            ("x-amz-copy-source", "/cwb/k"),
            ("x-amz-metadata-directive", "REPLACE"),
            ("if-none-match", "*"),
        ],
    );
    assert_eq!(
        (status, error_code(&body).as_str()),
        (412, "PreconditionFailed")
    );
    let (status, body) = put(
        "/cwb/copy",
        b"",
        &[("x-amz-copy-source", "/cwb/k"), ("if-none-match", "*")],
    );
    assert_eq!(status, 200, "{body}");
    // CompleteMultipartUpload: refused while the key exists, the upload left completable.
    let (status, body) = send(
        signed(&s, "POST", "/cwb/k", "uploads=", &sha_hex(b""), now),
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let id = body
        .split("<UploadId>")
        .nth(1)
        .and_then(|r| r.split("</UploadId>").next())
        .expect("upload id")
        .to_string();
    let query = format!("partNumber=1&uploadId={id}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent
        .run(
            signed(&s, "PUT", "/cwb/k", &query, &sha_hex(b"part"), now)
                .body(b"part".to_vec())
                .expect("request"),
        )
        .expect("upload part");
    let etag = etag_of(&resp);
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    );
    let complete = |h: Option<(&str, &str)>| {
        let mut r = signed(
            &s,
            "POST",
            "/cwb/k",
            &format!("uploadId={id}"),
            &sha_hex(xml.as_bytes()),
            now,
        );
        if let Some((n, v)) = h {
            r = r.header(n, v);
        }
        send(r, xml.as_bytes())
    };
    let (status, body) = complete(Some(("if-none-match", "*")));
    assert_eq!(
        (status, error_code(&body).as_str()),
        (412, "PreconditionFailed")
    );
    let two = format!("\"{}\"", hex::encode(md5::Md5::digest(b"two")));
    let (status, body) = complete(Some(("if-match", &two)));
    assert_eq!(status, 200, "{body}");
    let (_, body) = send(signed(&s, "GET", "/cwb/k", "", &sha_hex(b""), now), b"");
    assert_eq!(body, "part");
    // Eight clients race to create one key, over and over: one wins each time.
    for round in 0..10 {
        let path = format!("/cwb/race{round}");
        let outcomes: Vec<(u16, String, Vec<u8>)> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..8u8)
                .map(|w| {
                    let path = path.clone();
                    let put = &put;
                    scope.spawn(move || {
                        let body = vec![b'a' + w; 20_000];
                        let (status, text) = put(&path, &body, &[("if-none-match", "*")]);
                        (status, error_code(&text), body)
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|r| r.join().expect("racer"))
                .collect()
        });
        let winners: Vec<_> = outcomes.iter().filter(|o| o.0 == 200).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            outcomes.iter().map(|o| (o.0, &o.1)).collect::<Vec<_>>()
        );
        for (status, code, _) in &outcomes {
            assert!(
                *status == 200
                    || (*status, code.as_str()) == (412, "PreconditionFailed")
                    || (*status, code.as_str()) == (409, "ConditionalRequestConflict"),
                "round {round}: {status} {code}"
            );
        }
        let (_, body) = send(signed(&s, "GET", &path, "", &sha_hex(b""), now), b"");
        assert_eq!(body.as_bytes(), &winners[0].2[..], "round {round}");
    }
}
