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
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("cairn did not start; log:\n{log}");
            }
        };
        let server = Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
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
        while Instant::now() < deadline {
            if ureq::get(&url).call().is_ok() {
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
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
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
