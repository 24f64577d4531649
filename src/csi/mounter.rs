//! The mounter: a small long-lived process (`cairn csi --mode mounter`) that starts
//! `cairn mount` processes on the node plugin's request, so that FUSE servers are its
//! children, not the plugin's. In Kubernetes it runs as its own container of the node pod
//! (shared process namespace): restarting the plugin container (crash, upgrade, liveness
//! failure) kills the plugin's processes only, and every mount keeps serving.
//!
//! Protocol: one JSON request per connection on a unix socket (mode 0600), one JSON answer.
//! It only ever runs this executable with `mount` as the first argument.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct StartRequest {
    /// Arguments after the executable; must start with `mount`.
    pub args: Vec<String>,
    /// The mount process's environment: its credentials among them.
    pub env: Vec<(String, String)>,
    /// Where the mount process's output goes.
    pub log: PathBuf,
}

/// The environment's values (credentials) never reach `Debug` output.
impl std::fmt::Debug for StartRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StartRequest")
            .field("args", &self.args)
            .field("env", &names)
            .field("log", &self.log)
            .finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartReply {
    Pid(u32),
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MounterError {
    #[error("mounter socket {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("mounter: {0}")]
    Refused(String),
}

/// Ask the mounter at `socket` to start a mount process; returns its pid.
pub fn request_start(socket: &Path, req: &StartRequest) -> Result<u32, MounterError> {
    let io = |e| MounterError::Io(socket.to_path_buf(), e);
    let mut s = UnixStream::connect(socket).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let mut line = serde_json::to_string(req).map_err(|e| MounterError::Refused(e.to_string()))?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).map_err(io)?;
    match serde_json::from_str::<StartReply>(&answer) {
        Ok(StartReply::Pid(p)) => Ok(p),
        Ok(StartReply::Error(e)) => Err(MounterError::Refused(e)),
        Err(e) => Err(MounterError::Refused(format!("bad answer {answer:?}: {e}"))),
    }
}

/// Start `exe` with the request's arguments (the first must be `mount`), output to its log,
/// in its own process group.
pub fn spawn(exe: &Path, req: StartRequest) -> std::io::Result<Child> {
    if req.args.first().map(String::as_str) != Some("mount") {
        return Err(std::io::Error::other("only `mount` processes are started"));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&req.log)?;
    let err = log.try_clone()?;
    use std::os::unix::process::CommandExt;
    Command::new(exe)
        .args(&req.args)
        .envs(req.env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
}

fn start(exe: &Path, req: StartRequest, children: &Mutex<Vec<Child>>) -> StartReply {
    match spawn(exe, req) {
        Ok(child) => {
            let pid = child.id();
            children.lock().push(child);
            tracing::info!("started mount process {pid}");
            StartReply::Pid(pid)
        }
        Err(e) => StartReply::Error(format!("starting {}: {e}", exe.display())),
    }
}

/// Serve start requests on `socket` until the process is killed; reaps its children.
pub fn serve(socket: &Path) -> Result<(), MounterError> {
    let io = |e| MounterError::Io(socket.to_path_buf(), e);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(io)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let exe = std::env::current_exe().map_err(io)?;
    let children: Arc<Mutex<Vec<Child>>> = Arc::default();
    let reaper = children.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        reaper.lock().retain_mut(|c| match c.try_wait() {
            Ok(Some(status)) => {
                tracing::info!("mount process {} exited: {status}", c.id());
                false
            }
            _ => true,
        });
    });
    tracing::info!("mounter listening on {}", socket.display());
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let mut line = String::new();
        let read = BufReader::new(&conn).read_line(&mut line);
        let reply = match read.ok().and_then(|_| serde_json::from_str(&line).ok()) {
            Some(req) => start(&exe, req, &children),
            None => StartReply::Error("malformed request".into()),
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_default();
        out.push('\n');
        let _ = conn.write_all(out.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn the_mount_environment_never_reaches_debug_output() {
        let r = StartRequest {
            args: vec!["mount".into()],
            env: vec![("CAIRN_ROOT_PASSWORD".into(), "hunter2-secret".into())],
            log: PathBuf::from("/tmp/log"),
        };
        let shown = format!("{r:?}");
        assert!(shown.contains("CAIRN_ROOT_PASSWORD"));
        assert!(!shown.contains("hunter2"), "{shown}");
        let c = crate::mount::client::S3Config {
            endpoint: "http://x".into(),
            access_key: "a".into(),
            secret_key: "hunter2-secret".into(),
            region: "r".into(),
            bucket: "b".into(),
            prefix: String::new(),
            trust: crate::tls::Trust::system(),
            io_timeout: crate::mount::client::IO_TIMEOUT,
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
