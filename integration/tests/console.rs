//! The web console with a real browser: headless Chromium driven through Selenium's
//! WebDriver (`integration/console/test_console.py`) against the real server — log in, create
//! a bucket, upload 20 MiB, list, download and compare, share a link and fetch it with curl,
//! decommission a server pool, see a drive go offline, log out, and a read-only user refused a delete — plus the
//! console's HTTP contract checked directly (security headers, no API without a session,
//! cookie flags, CSRF).

use std::path::Path;
use std::process::Command;

use cairn_integration::{admin, require_tool, Server, Tmpfs, ACCESS_KEY, SECRET_KEY};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Selenium and Chromium are installed by the README's test command; elsewhere the browser
/// part is skipped (never under CI).
fn browser_ready() -> bool {
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    let ok = selenium && require_tool("chromium") && require_tool("chromedriver");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium, chromedriver and selenium are required under CI"
        );
        eprintln!("SKIPPED: chromium, chromedriver or selenium missing");
    }
    ok
}

#[test]
fn console_in_a_real_browser() {
    let port = free_port();
    let console_addr = format!("127.0.0.1:{port}");
    // Two server pools: the first on a small tmpfs, so new objects land in the second (by
    // free space), which the browser then decommissions.
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).expect("dir");
    let _small = Tmpfs::mount(&small, 256);
    let server = Server::start_on(
        &[small.join("d{1...4}"), dir.path().join("e{1...4}")],
        &[
            ("CAIRN_CONSOLE_ADDRESS", console_addr.as_str()),
            ("CAIRN_DRIVE_CHECK_INTERVAL", "1s"),
        ],
    );
    let url = format!("http://{console_addr}/");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    // The page, with headers that keep it from being framed or fed foreign scripts.
    let page = agent.get(&url).call().expect("console page");
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        page.headers().get("x-frame-options").map(|v| v.as_bytes()),
        Some(&b"DENY"[..])
    );
    // No API without a session; a wrong secret gets no session.
    let anon = agent.get(format!("{url}api/s3/")).call().expect("api");
    assert_eq!(anon.status(), 401);
    let bad = agent
        .post(format!("{url}api/login"))
        .content_type("application/json")
        .send(format!(
            r#"{{"accessKey":"{ACCESS_KEY}","secretKey":"nope"}}"#
        ))
        .expect("login");
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    let good = agent
        .post(format!("{url}api/login"))
        .content_type("application/json")
        .send(format!(
            r#"{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}"#
        ))
        .expect("login");
    assert_eq!(good.status(), 200);
    let cookie = good
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Max-Age="] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "no Secure flag over plain HTTP: {cookie}"
    );
    let session = cookie.split(';').next().unwrap_or("").to_string();
    // Guessing is throttled per address: past five failures in a row even the right secret
    // waits (429, Retry-After), then works.
    let login = |secret: &str| {
        agent
            .post(format!("{url}api/login"))
            .content_type("application/json")
            .send(format!(
                r#"{{"accessKey":"{ACCESS_KEY}","secretKey":"{secret}"}}"#
            ))
            .expect("login")
    };
    for _ in 0..5 {
        assert_eq!(login("guess").status(), 401);
    }
    let held = login(SECRET_KEY);
    assert_eq!(held.status(), 429);
    assert_eq!(
        held.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(login(SECRET_KEY).status(), 200);
    // With the cookie but without the CSRF token, nothing changes.
    let forged = agent
        .put(format!("{url}api/s3/forged-bucket"))
        .header("cookie", &session)
        .send_empty()
        .expect("put");
    assert_eq!(forged.status(), 403);
    let listed = agent
        .get(format!("{url}api/s3/"))
        .header("cookie", &session)
        .call()
        .expect("list");
    assert_eq!(listed.status(), 200);

    let (code, out) = admin(
        &server.endpoint,
        &["user", "add", "viewer", "viewer-secret-1"],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(
        &server.endpoint,
        &["policy", "attach", "readonly", "--user", "viewer"],
    );
    assert_eq!(code, 0, "{out}");
    untrusted_pages_and_forged_sessions(&server, &agent, &url, &session);

    if !browser_ready() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("console/test_console.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env("CONSOLE_URL", &url)
        .env("ACCESS_KEY", ACCESS_KEY)
        .env("SECRET_KEY", SECRET_KEY)
        .env("RO_ACCESS_KEY", "viewer")
        .env("RO_SECRET_KEY", "viewer-secret-1")
        .env("UNPLUG_DRIVE", small.join("d4"))
        .env("WORK", work.path());
    if let Some(dir) = std::env::var_os("CAIRN_CONSOLE_SCREENSHOTS") {
        cmd.env("SCREENSHOTS", dir);
    }
    let out = cmd.output().expect("python3");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
}

/// What a page anyone may write (an object, a page of the S3 port) could use against a
/// logged-in user: objects served by the console API never render in its origin; logins
/// and changes from other origins, planted session cookies, changed secrets and temporary
/// credentials are refused.
fn untrusted_pages_and_forged_sessions(
    server: &Server,
    agent: &ureq::Agent,
    url: &str,
    session: &str,
) {
    let csrf = {
        let mut r = agent
            .get(format!("{url}api/session"))
            .header("cookie", session)
            .call()
            .expect("session");
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().expect("body")).expect("json");
        v["csrf"].as_str().expect("csrf").to_string()
    };
    let send = |method: &str, path: &str, body: &str, headers: &[(&str, &str)]| {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{url}{path}"))
            .header("cookie", session)
            .header("x-csrf-token", &csrf);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        agent
            .run(req.body(body.to_string()).expect("request"))
            .expect("call")
    };
    assert_eq!(send("PUT", "api/s3/pages", "", &[]).status(), 200);
    let page = "<html><script src=\"/api/s3/pages/p.js\"></script></html>";
    let put = send(
        "PUT",
        "api/s3/pages/page.html",
        page,
        &[("content-type", "text/html")],
    );
    assert_eq!(put.status(), 200);
    for q in [
        "",
        "?response-content-type=text/html&response-content-disposition=inline",
    ] {
        let r = send("GET", &format!("api/s3/pages/page.html{q}"), "", &[]);
        assert_eq!(r.status(), 200);
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert!(
            h("content-security-policy").starts_with("sandbox"),
            "{q}: {}",
            h("content-security-policy")
        );
        assert!(
            h("content-disposition").starts_with("attachment"),
            "{q}: {}",
            h("content-disposition")
        );
    }
    // Changes and logins only from the console's own origin, logins only as JSON.
    let s3_origin = server.endpoint.trim_end_matches('/').to_string();
    let foreign = send(
        "PUT",
        "api/s3/from-elsewhere",
        "",
        &[("origin", s3_origin.as_str())],
    );
    assert_eq!(foreign.status(), 403);
    let same_site = send(
        "PUT",
        "api/s3/from-elsewhere",
        "",
        &[("sec-fetch-site", "same-site")],
    );
    assert_eq!(same_site.status(), 403);
    let own = url.trim_end_matches('/');
    let from_own = send(
        "PUT",
        "api/s3/from-here",
        "",
        &[("origin", own), ("sec-fetch-site", "same-origin")],
    );
    assert_eq!(from_own.status(), 200);
    // Without Sec-Fetch-Site the Origin's host and port decide (not its scheme: a proxy
    // may end TLS in front of the console).
    let behind_proxy = own.replacen("http://", "https://", 1);
    for (n, origin) in [own, behind_proxy.as_str()].into_iter().enumerate() {
        let r = send(
            "PUT",
            &format!("api/s3/from-here-{n}"),
            "",
            &[("origin", origin)],
        );
        assert_eq!(r.status(), 200, "{origin}");
    }
    let login_body = r#"{"accessKey":"viewer","secretKey":"viewer-secret-1"}"#.to_string();
    let login = |ct: &str, extra: &[(&str, &str)]| {
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("{url}api/login"))
            .header("content-type", ct);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        agent
            .run(req.body(login_body.clone()).expect("request"))
            .expect("login")
    };
    assert_eq!(login("text/plain", &[]).status(), 415);
    assert_eq!(
        login("application/json", &[("origin", s3_origin.as_str())]).status(),
        403
    );
    let viewer = login("application/json", &[]);
    assert_eq!(viewer.status(), 200);
    let viewer_cookie = viewer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .unwrap_or("")
        .to_string();
    // A second session cookie (planted with a longer path) makes neither count.
    let both = agent
        .get(format!("{url}api/session"))
        .header("cookie", format!("{viewer_cookie}; {session}"))
        .call()
        .expect("session");
    assert_eq!(both.status(), 401);
    let alone = |cookie: &str| {
        agent
            .get(format!("{url}api/s3/"))
            .header("cookie", cookie)
            .call()
            .expect("list")
            .status()
    };
    assert_eq!(alone(&viewer_cookie), 200);
    // A new secret ends the sessions opened with the old one.
    let (code, out) = admin(
        &server.endpoint,
        &["user", "add", "viewer", "viewer-secret-2"],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(alone(&viewer_cookie), 401);
    let (code, out) = admin(
        &server.endpoint,
        &["user", "add", "viewer", "viewer-secret-1"],
    );
    assert_eq!(code, 0, "{out}");
    // Temporary credentials do not log in (their session token could not go along).
    let script = r#"
import sys, boto3
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id="viewer", aws_secret_access_key="viewer-secret-1")
c = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="console")["Credentials"]
print("KEYS", c["AccessKeyId"], c["SecretAccessKey"])
"#;
    if let Some(out) = cairn_integration::boto3(script, &[&server.endpoint]) {
        let keys: Vec<&str> = out
            .lines()
            .find_map(|l| l.strip_prefix("KEYS "))
            .unwrap_or_else(|| panic!("{out}"))
            .split(' ')
            .collect();
        let r = agent
            .post(format!("{url}api/login"))
            .content_type("application/json")
            .send(format!(
                r#"{{"accessKey":"{}","secretKey":"{}"}}"#,
                keys[0], keys[1]
            ))
            .expect("login");
        assert_eq!(r.status(), 400);
        assert!(r.headers().get("set-cookie").is_none());
    }
    // The console's own files answer HEAD as GET.
    for p in ["", "app.js", "style.css"] {
        let r = agent.head(format!("{url}{p}")).call().expect("head");
        assert_eq!(r.status(), 200, "HEAD /{p}");
    }
}

/// Start `cairn server` with `console` as `--console-address` and return the banner's
/// `Console:` value (the process is killed after).
fn banner_console(console: &str) -> String {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(cairn_integration::binary())
        .args([
            "server",
            "--address",
            "127.0.0.1:0",
            "--console-address",
            console,
        ])
        .arg(dir.path().join("d{1...4}"))
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .env_remove("CAIRN_CONSOLE_ADDRESS")
        .env("CAIRN_CERTS_DIR", dir.path().join("no-certs"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cairn server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(v) = line.trim().strip_prefix("Console:") {
                let _ = tx.send(v.trim().to_string());
            }
        }
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    got.expect("a Console: line in the banner")
}

#[test]
fn console_address_flag_and_banner() {
    let line = banner_console("127.0.0.1:0");
    let url = line.split_whitespace().next().unwrap_or("").to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    assert_eq!(banner_console("off"), "off");
    // The URL the banner printed served the page while the server ran (checked on a second
    // server, which stays up while asked).
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _server = Server::start_with(4, &[("CAIRN_CONSOLE_ADDRESS", addr.as_str())]);
    let page = ureq::get(format!("http://{addr}/"))
        .call()
        .expect("console page")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert!(page.contains("Cairn Console"), "{page}");
}
