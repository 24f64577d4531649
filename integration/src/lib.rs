//! Harness for end-to-end tests: start the real `cairn` binary on a free loopback port over
//! temporary drive folders, wait until it is ready, and stop it when dropped.
//!
//! The binary comes from `CAIRN_BIN`, falling back to `target/release/cairn` or
//! `target/debug/cairn` of this workspace (Cargo only sets `CARGO_BIN_EXE_*` for tests of the
//! binary's own package).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "cairntest";
pub const SECRET_KEY: &str = "cairntest-secret";
pub const REGION: &str = "us-east-1";

/// An AWS SDK client for `server` with the test credentials.
pub fn client(server: &Server) -> aws_sdk_s3::Client {
    client_for(&server.endpoint, ACCESS_KEY, SECRET_KEY, true)
}

/// An AWS SDK client for any endpoint and keys; `retries: false` shows every failure.
pub fn client_for(endpoint: &str, access: &str, secret: &str, retries: bool) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let mut conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(access, secret, None, None, "test"))
        .http_client(aws_smithy_http_client::Builder::new().build_http());
    if !retries {
        conf = conf.retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled());
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// Turn versioning on for `bucket` (panics on failure).
pub async fn enable_versioning(c: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
}

/// PUT `body` at `bucket/key` (panics on failure).
pub async fn put_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// GET `bucket/key` whole (panics on failure).
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// A multipart upload of `parts` (each but the last at least 5 MiB) to `bucket/key`,
/// completed (panics on failure).
pub async fn multipart_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str, parts: &[Vec<u8>]) {
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("create upload");
    let id = up.upload_id().expect("upload id");
    complete_with_parts(c, bucket, key, id, parts).await;
}

/// Upload `parts` (numbered from 1) to the open upload `id` of `bucket/key` and complete it
/// (panics on failure).
pub async fn complete_with_parts(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: &str,
    parts: &[Vec<u8>],
) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let mut done = Vec::new();
    for (n, p) in parts.iter().enumerate() {
        let number = n as i32 + 1;
        let r = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(aws_sdk_s3::primitives::ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("upload part {number} of {key}: {e:?}"));
        done.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(r.e_tag().expect("part etag"))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("complete {key}: {e:?}"));
}

/// Every key of `bucket`, listed (ListObjectsV2) `page` keys at a time.
pub async fn list_keys(c: &aws_sdk_s3::Client, bucket: &str, page: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = c
            .list_objects_v2()
            .bucket(bucket)
            .max_keys(page)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => return keys,
        }
    }
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub port: u16,
    pub drives: Vec<PathBuf>,
    /// Holds the log, and the drives unless they were given.
    dir: tempfile::TempDir,
}

/// The `cairn` binary under test.
pub fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Some(p) = std::env::var_os("CAIRN_BIN") {
        // Relative paths are taken from the workspace root (tests run in this crate's folder).
        let p = PathBuf::from(p);
        return if p.is_relative() { root.join(p) } else { p };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    for profile in ["release", "debug"] {
        let p = target.join(profile).join("cairn");
        if p.exists() {
            return p;
        }
    }
    panic!("cairn binary not found: build it (cargo build --release) or set CAIRN_BIN");
}

impl Server {
    /// A server over 4 drive folders (EC 2+2).
    pub fn start() -> Server {
        Server::start_with(4, &[])
    }

    /// A server over `drives` temporary drive folders with extra environment variables.
    pub fn start_with(drives: usize, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (1..=drives)
            .map(|i| dir.path().join(format!("drive{i}")))
            .collect();
        Server::spawn(dir, &paths, env)
    }

    /// A server over the given drive folders, which outlive it (restart tests).
    pub fn start_on(paths: &[PathBuf], env: &[(&str, &str)]) -> Server {
        Server::spawn(tempfile::tempdir().expect("tempdir"), paths, env)
    }

    fn spawn(dir: tempfile::TempDir, paths: &[PathBuf], env: &[(&str, &str)]) -> Server {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(binary());
        // Port 0: the server binds a free port itself and prints it, so two servers started at
        // once can never race for the same port.
        cmd.arg("server")
            .arg("--address")
            .arg("127.0.0.1:0")
            .args(paths)
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .env_remove("MINIO_ROOT_USER")
            .env_remove("MINIO_ROOT_PASSWORD")
            // Plain HTTP unless a test gives certificates: never the machine's ~/.cairn/certs.
            .env("CAIRN_CERTS_DIR", dir.path().join("no-certs"))
            // No console unless a test asks (servers would race for its port).
            .env("CAIRN_CONSOLE_ADDRESS", "off")
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start cairn");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut tx = Some(tx);
            // Keep draining so the server never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line
                    .split("(listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split(')').next())
                    .and_then(|addr| addr.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    let scheme = if line.contains("https://") {
                        "https"
                    } else {
                        "http"
                    };
                    if let Some(tx) = tx.take() {
                        let _ = tx.send((scheme, port));
                    }
                }
            }
        });
        let (scheme, port) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("cairn did not start; log:\n{log}");
            }
        };
        let server = Server {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            port,
            drives: paths.to_vec(),
            dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/health/ready", self.endpoint);
        let probe = probe_agent();
        while Instant::now() < deadline {
            if probe.get(&url).call().is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cairn did not become ready; log:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the server process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }

    /// Wait for the server to exit by itself (a crash point it was armed with) and return
    /// how it ended; panics if it is still running after `timeout`.
    pub fn wait_exit(mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("cairn still running; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("cairn did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cairn server` over `paths` until it exits by itself (a crash point during start);
/// its exit status and log. Panics if it is still running after `timeout`.
pub fn run_server_until_exit(
    paths: &[PathBuf],
    env: &[(&str, &str)],
    timeout: Duration,
) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(binary());
    cmd.arg("server")
        .arg("--address")
        .arg("127.0.0.1:0")
        .args(paths)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start cairn");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (
                status,
                std::fs::read_to_string(&log_path).unwrap_or_default(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cairn still running; log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file called `name` under `dir`, recursively.
pub fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_named(&p, name));
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

/// Peak resident memory of a process so far, in KiB (0 when gone).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// An HTTP(S) agent for the harness's readiness probes: it only asks whether a server
/// answers, so it does not check certificates (the TLS tests check them with real clients).
pub fn probe_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(true)
                .build(),
        )
        .build()
        .into()
}

/// Is an external tool available? Under CI a missing tool is a failure, never a skip.
pub fn require_tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is required under CI but was not found on PATH");
        }
        eprintln!("SKIPPED: {name} not found on PATH (run the README test command to install it)");
    }
    found
}

/// Run a Python script that drives boto3 (from the test venv on PATH) with `args`, and
/// return what it printed (stdout, then stderr). `None` when Python or boto3 is missing
/// outside CI (the caller skips); under CI a missing one fails the test.
pub fn boto3(script: &str, args: &[&str]) -> Option<String> {
    if !require_tool("python3") {
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("No module named 'boto3'") {
        assert!(
            std::env::var_os("CI").is_none(),
            "boto3 is required under CI"
        );
        eprintln!("SKIPPED: boto3 not importable");
        return None;
    }
    Some(text)
}

/// A distributed deployment of real `cairn` processes on loopback: `nodes` nodes with
/// `drives` drive folders each, every node on its own port, all given the same endpoint
/// list. Nodes can be killed, stopped and restarted over the same folders.
pub struct Cluster {
    pub ports: Vec<u16>,
    /// `host:port` of each node in the endpoint list.
    pub hosts: Vec<String>,
    /// Where clients reach each node.
    endpoints: Vec<String>,
    /// Network namespaces the nodes run in (partition tests), torn down on drop.
    net: Option<Netns>,
    pub dir: tempfile::TempDir,
    drives: usize,
    env: Vec<(String, String)>,
    children: Vec<Option<Child>>,
    /// `http` or `https` (nodes then need `CAIRN_CERTS_DIR` in `env`).
    scheme: &'static str,
}

/// Free loopback ports, found by binding port 0 (and releasing them for the nodes).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

impl Cluster {
    /// Start every node and wait until each is ready.
    pub fn start(nodes: usize, drives: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_scheme("http", nodes, drives, env)
    }

    /// [`Cluster::start`] with `https://` endpoints: `env` must name a `CAIRN_CERTS_DIR`
    /// whose certificate is valid for 127.0.0.1 and whose `CAs/` holds its CA.
    pub fn start_tls(nodes: usize, drives: usize, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_scheme("https", nodes, drives, env)
    }

    fn start_scheme(
        scheme: &'static str,
        nodes: usize,
        drives: usize,
        env: &[(&str, &str)],
    ) -> Cluster {
        let ports = free_ports(nodes);
        let mut c = Cluster {
            scheme,
            hosts: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            endpoints: ports
                .iter()
                .map(|p| format!("{scheme}://127.0.0.1:{p}"))
                .collect(),
            ports,
            net: None,
            dir: tempfile::tempdir().expect("tempdir"),
            drives,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            children: (0..nodes).map(|_| None).collect(),
        };
        for i in 0..nodes {
            c.spawn(i);
        }
        for i in 0..nodes {
            c.wait_ready(i);
        }
        c
    }

    /// The endpoint list every node gets: every drive of every node, spelled out, so the
    /// whole list is one server pool (an argument with `{a...b}` would be a pool of its own).
    pub fn args(&self) -> Vec<String> {
        self.hosts
            .iter()
            .enumerate()
            .flat_map(|(i, h)| {
                (1..=self.drives).map(move |d| {
                    format!(
                        "{}://{h}{}/n{}/d{d}",
                        self.scheme,
                        self.dir.path().display(),
                        i + 1,
                    )
                })
            })
            .collect()
    }

    pub fn endpoint(&self, node: usize) -> String {
        self.endpoints[node].clone()
    }

    /// Drive folder `d` (0-based) of `node`.
    pub fn drive(&self, node: usize, d: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("n{}", node + 1))
            .join(format!("d{}", d + 1))
    }

    fn log_path(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("node{}.log", node + 1))
    }

    /// Everything `node` logged (all its runs).
    pub fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.log_path(node)).unwrap_or_default()
    }

    /// Start `node` (not waiting for it to be ready).
    pub fn spawn(&mut self, node: usize) {
        self.spawn_with(node, self.args(), &[]);
    }

    /// Start `node` with its own endpoint list and extra environment (misconfiguration tests).
    pub fn spawn_with(&mut self, node: usize, args: Vec<String>, env: &[(&str, &str)]) {
        assert!(self.children[node].is_none(), "node {node} is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))
            .expect("log file");
        let mut cmd = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(node)]).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let address = match &self.net {
            Some(_) => "0.0.0.0:9000".to_string(),
            None => self.hosts[node].clone(),
        };
        cmd.arg("server")
            .arg("--address")
            .arg(address)
            .args(args)
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .env_remove("MINIO_ROOT_USER")
            .env_remove("MINIO_ROOT_PASSWORD")
            .env("CAIRN_CERTS_DIR", self.dir.path().join("no-certs"))
            // No console unless a test asks (nodes would race for its port).
            .env("CAIRN_CONSOLE_ADDRESS", "off")
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.children[node] = Some(cmd.spawn().expect("start cairn"));
    }

    /// Wait until `node` answers ready (its store is open and has write quorum).
    pub fn wait_ready(&mut self, node: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/health/ready", self.endpoint(node));
        let probe = probe_agent();
        while Instant::now() < deadline {
            if probe.get(&url).call().is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.children[node].as_mut().map(Child::try_wait) {
                panic!("node {node} exited with {status}; log:\n{}", self.log(node));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {node} did not become ready; log:\n{}", self.log(node));
    }

    /// Wait until `node` serves S3 (its store is open), whatever the cluster's quorum.
    pub fn wait_serving(&mut self, node: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/health/live", self.endpoint(node));
        let probe = probe_agent();
        while Instant::now() < deadline {
            let open = probe
                .get(&format!("{}/", self.endpoint(node)))
                .call()
                .map_or_else(|e| !matches!(e, ureq::Error::StatusCode(503)), |_| true);
            if probe.get(&url).call().is_ok() && open {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "node {node} did not open its store; log:\n{}",
            self.log(node)
        );
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.children[node].is_some()
    }

    /// SIGKILL `node`.
    pub fn kill(&mut self, node: usize) {
        if let Some(mut c) = self.children[node].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM `node` and wait for it to exit (in-flight requests finish first).
    pub fn stop(&mut self, node: usize) -> std::process::ExitStatus {
        let mut c = self.children[node].take().expect("node is running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {node} did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Has `node` exited on its own? Returns its status.
    pub fn exited(&mut self, node: usize) -> Option<std::process::ExitStatus> {
        let status = self.children[node].as_mut()?.try_wait().ok()??;
        self.children[node] = None;
        Some(status)
    }
}

/// Network namespaces for a partitionable cluster: node `i` runs in its own namespace with
/// two links, one to a "cluster" bridge (the addresses in the endpoint list) and one to a
/// "client" bridge (where tests reach it). Cutting a node's cluster link partitions it from
/// its peers while tests can still talk to it.
pub struct Netns {
    tag: String,
    nodes: usize,
    subnet: u32,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Can this process create namespaces (root, `ip` present)?
    pub fn available() -> bool {
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .is_ok_and(|o| o.status.success())
            && std::fs::metadata("/proc/self/ns/net").is_ok()
            && Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0"))
    }

    fn setup(nodes: usize) -> Netns {
        let id = std::process::id() % 10_000;
        let net = Netns {
            tag: format!("cz{id}"),
            nodes,
            subnet: 10 + id % 200,
        };
        for bridge in [net.bridge('c'), net.bridge('k')] {
            ip(&["link", "add", &bridge, "type", "bridge"]);
            ip(&["link", "set", &bridge, "up"]);
        }
        let host_ip = format!("10.78.{}.254/24", net.subnet);
        ip(&["addr", "add", &host_ip, "dev", &net.bridge('k')]);
        for i in 0..nodes {
            let ns = net.ns(i);
            ip(&["netns", "add", &ns]);
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            for (kind, net_prefix) in [('c', 77), ('k', 78)] {
                let outer = net.link(kind, i);
                let inner = format!("{kind}0");
                ip(&[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &ns,
                ]);
                ip(&["link", "set", &outer, "master", &net.bridge(kind)]);
                ip(&["link", "set", &outer, "up"]);
                let addr = format!("10.{net_prefix}.{}.{}/24", net.subnet, i + 1);
                ip(&[
                    "netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inner,
                ]);
                ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"]);
            }
        }
        net
    }

    fn bridge(&self, kind: char) -> String {
        format!("{}{kind}br", self.tag)
    }

    fn link(&self, kind: char, node: usize) -> String {
        format!("{}{kind}{node}", self.tag)
    }

    pub fn ns(&self, node: usize) -> String {
        format!("{}n{node}", self.tag)
    }

    fn cluster_host(&self, node: usize) -> String {
        format!("10.77.{}.{}:9000", self.subnet, node + 1)
    }

    fn client_endpoint(&self, node: usize) -> String {
        format!("http://10.78.{}.{}:9000", self.subnet, node + 1)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .status();
            for kind in ['c', 'k'] {
                let _ = Command::new("ip")
                    .args(["link", "del", &self.link(kind, i)])
                    .status();
            }
        }
        for kind in ['c', 'k'] {
            let _ = Command::new("ip")
                .args(["link", "del", &self.bridge(kind)])
                .status();
        }
    }
}

impl Cluster {
    /// A cluster whose nodes each run in their own network namespace (needs root).
    pub fn start_partitionable(nodes: usize, drives: usize) -> Cluster {
        let net = Netns::setup(nodes);
        let mut c = Cluster {
            ports: vec![9000; nodes],
            hosts: (0..nodes).map(|i| net.cluster_host(i)).collect(),
            endpoints: (0..nodes).map(|i| net.client_endpoint(i)).collect(),
            net: Some(net),
            dir: tempfile::tempdir().expect("tempdir"),
            drives,
            env: Vec::new(),
            children: (0..nodes).map(|_| None).collect(),
            scheme: "http",
        };
        for i in 0..nodes {
            c.spawn(i);
        }
        for i in 0..nodes {
            c.wait_ready(i);
        }
        c
    }

    /// Cut (`false`) or restore (`true`) `node`'s link to its peers.
    pub fn set_connected(&self, node: usize, up: bool) {
        let net = self.net.as_ref().expect("a partitionable cluster");
        ip(&[
            "link",
            "set",
            &net.link('c', node),
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a path is the root of a mount (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(me), Some(parent)) = (std::fs::metadata(path), path.parent()) else {
        return false;
    };
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev())
}

/// Whether `path` appears in the mount table (also when its FUSE server is dead).
pub fn in_mount_table(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(&*p))
}

/// A `cairn mount --foreground` of `volume` from a server; unmounted (SIGTERM) on drop.
pub struct Mount {
    child: Child,
    pub path: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    pub fn start(server: &Server, volume: &str, extra: &[&str]) -> Mount {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let log = dir.path().join("mount.log");
        let child = Command::new(binary())
            .arg("mount")
            .arg("--endpoint")
            .arg(&server.endpoint)
            .arg("--foreground")
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(extra)
            .arg(volume)
            .arg(&path)
            .env("CAIRN_ROOT_USER", ACCESS_KEY)
            .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start cairn mount");
        let mut m = Mount {
            child,
            path,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mount_point(&m.path) {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("cairn mount exited ({st}); log:\n{}", m.log());
            }
            assert!(
                Instant::now() < deadline,
                "mount did not appear; log:\n{}",
                m.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the mount process so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid())
    }

    /// Kill the mount process (SIGKILL) and wait until every one of its threads is gone:
    /// kill(2) returns while a busy process still runs, and the kernel reports the death
    /// to the parent only once the whole thread group has exited.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Unmount (SIGTERM) and wait for the process to exit.
    pub fn unmount(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if in_mount_table(&self.path) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Takes a drive folder away from a running server in one step, as pulling the disk would:
/// the folder is renamed aside (a recursive delete in place races with the server's own
/// writes, the scanner's and the heal queue's, and can fail with "directory not empty").
/// Returns where the old contents went; they stay beside the drive, in the test's
/// temporary folder.
pub fn unplug(drive: &Path) -> PathBuf {
    let mut aside = drive.as_os_str().to_owned();
    aside.push(format!(
        ".unplugged-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    let aside = PathBuf::from(aside);
    std::fs::rename(drive, &aside).expect("unplug the drive");
    aside
}

/// Run `cairn admin ARGS --endpoint ENDPOINT` with the test credentials; (exit code, stdout
/// followed by stderr).
pub fn admin(endpoint: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(binary())
        .arg("admin")
        .args(args)
        .arg("--endpoint")
        .arg(endpoint)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("cairn admin");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Wait up to `timeout` for `f` to hold; panics naming `what` otherwise.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// A tmpfs mounted on a directory (which must exist); lazily unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    /// Mount a fresh, empty tmpfs of `mib` MiB at `path` (tests run as root).
    pub fn mount(path: &Path, mib: u32) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount tmpfs on {} (tests need root)",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
            mounted: true,
        }
    }

    /// `umount -l`: the mount goes away at once, as a disk pulled while running does.
    pub fn unmount(&mut self) {
        if self.mounted {
            let status = Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status()
                .expect("run umount");
            assert!(status.success(), "umount {}", self.path.display());
            self.mounted = false;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// An ext4 filesystem on a loop device over an image file, mounted at a directory: a real
/// disk whose I/O can be made to hang (`fsfreeze`). Thawed, unmounted and detached on drop.
pub struct LoopDisk {
    pub path: PathBuf,
    device: String,
    _image: tempfile::TempDir,
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl LoopDisk {
    /// A fresh `mib` MiB ext4 disk mounted (noatime) at `path`, which must exist.
    pub fn mount(path: &Path, mib: u32) -> LoopDisk {
        let image = tempfile::tempdir().expect("tmp");
        let file = image.path().join("disk.img");
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(u64::from(mib) << 20))
            .expect("image");
        let device = run_ok(Command::new("losetup").args(["-f", "--show"]).arg(&file));
        run_ok(Command::new("mkfs.ext4").args(["-q", "-F", &device]));
        run_ok(
            Command::new("mount")
                .args(["-o", "noatime", &device])
                .arg(path),
        );
        LoopDisk {
            path: path.to_path_buf(),
            device,
            _image: image,
        }
    }

    /// Every write to the filesystem blocks (in the kernel) until [`LoopDisk::thaw`].
    pub fn freeze(&self) -> Thaw {
        run_ok(Command::new("fsfreeze").arg("-f").arg(&self.path));
        Thaw(self.path.clone())
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.path).status();
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// Thaws a frozen filesystem when dropped: declare it after the server using the disk, so a
/// failing test thaws before the server (whose threads the freeze holds) is killed.
pub struct Thaw(PathBuf);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.0).status();
    }
}

/// A private certificate authority for TLS tests, and certificate folders in MinIO's layout
/// (`public.crt`, `private.key`, `CAs/`) issued by it.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA certificate (PEM): what clients are given with `--ca-cert`/`--ca-bundle`.
    pub ca_pem: PathBuf,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).expect("write CA");
        Pki {
            dir,
            ca_pem,
            cert,
            key,
        }
    }

    /// A certificates folder `name` with a certificate for `names` (DNS names or IPs) and
    /// this CA in `CAs/`.
    pub fn certs_dir(&self, name: &str, names: &[&str]) -> PathBuf {
        let dir = self.dir.path().join(name);
        self.issue_into(&dir, names);
        std::fs::create_dir_all(dir.join("CAs")).expect("CAs");
        std::fs::copy(&self.ca_pem, dir.join("CAs").join("ca.crt")).expect("copy CA");
        dir
    }

    /// Write a new `public.crt` + `private.key` for `names` into `dir` (each file replaced
    /// by a rename, as a certificate manager does); the certificate's DER.
    pub fn issue_into(&self, dir: &Path, names: &[&str]) -> Vec<u8> {
        use rcgen::{CertificateParams, DnType, KeyPair};
        std::fs::create_dir_all(dir).expect("certs dir");
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("cairn"),
        );
        let cert = p.signed_by(&key, &self.cert, &self.key).expect("issue");
        for (file, text) in [
            ("private.key", key.serialize_pem()),
            ("public.crt", cert.pem()),
        ] {
            let tmp = dir.join(format!(".{file}.tmp"));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, dir.join(file)).expect("rename");
        }
        cert.der().to_vec()
    }
}
