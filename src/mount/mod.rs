//! `cairn mount`: a bucket (or a prefix of one) as a directory, through Cairn's own FUSE
//! filesystem (the pure-Rust `fuser` crate; no libfuse needed).
//!
//! [`fs`] holds the filesystem logic, generic over the [`client::ObjectClient`] trait;
//! [`fuse`] is the thin adapter to kernel requests; [`client::S3Client`] the real store.
//! Semantics and limits are in docs/mount.md.

pub mod client;
pub mod fs;
pub mod fuse;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use client::{S3Client, S3Config};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid volume {0:?}: expected BUCKET or BUCKET/PREFIX")]
    Volume(String),
    #[error("mount point {0}: {1}")]
    MountPoint(PathBuf, String),
    #[error("{0}")]
    Client(#[from] client::ClientError),
    #[error("cannot mount {0}: {1}")]
    Mount(PathBuf, std::io::Error),
    #[error("the mount process exited before the mount appeared ({0})")]
    Daemon(String),
    /// The first call to the store failed: what, where, and the likely fix.
    #[error("{0}")]
    Probe(String),
}

/// Why the first listing of `bucket` at `endpoint` failed, in words that name the fix.
fn explain_probe(
    e: client::ClientError,
    bucket: &str,
    endpoint: &str,
    access_key: &str,
) -> MountError {
    use client::ClientError as E;
    MountError::Probe(match e {
        E::NotFound => format!(
            "bucket {bucket:?} does not exist at {endpoint}: create it first \
             (aws --endpoint-url {endpoint} s3 mb s3://{bucket}) or check the volume name"
        ),
        E::BadCredentials(code) => format!(
            "{endpoint} refused access key {access_key:?} ({code}): check the secret key \
             (--secret-key, CAIRN_ROOT_PASSWORD or the alias's) and that the key exists and is enabled"
        ),
        E::AccessDenied => format!(
            "{endpoint} denied access key {access_key:?} listing bucket {bucket:?}: its policy \
             needs s3:ListBucket on arn:aws:s3:::{bucket} (cairn admin policy attach ...)"
        ),
        e => format!("cannot list bucket {bucket:?} at {endpoint}: {e}"),
    })
}

/// Everything `cairn mount` takes.
#[derive(Debug, Clone)]
pub struct MountArgs {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// `BUCKET` or `BUCKET/PREFIX`.
    pub volume: String,
    pub mountpoint: PathBuf,
    pub options: fs::Options,
    pub allow_other: bool,
    pub trust: crate::tls::Trust,
    /// See [`client::S3Config::io_timeout`].
    pub io_timeout: std::time::Duration,
}

/// Split `BUCKET[/PREFIX]` into the bucket and a prefix ending with `/` (or empty).
pub fn parse_volume(v: &str) -> Result<(String, String), MountError> {
    let (bucket, prefix) = v.split_once('/').unwrap_or((v, ""));
    if !crate::api::valid_bucket_name(bucket) {
        return Err(MountError::Volume(v.to_string()));
    }
    let prefix = prefix.trim_matches('/');
    let prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    Ok((bucket.to_string(), prefix))
}

/// Whether `path` is the root of a mount (its device differs from its parent's).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata(path) else {
        return false;
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::metadata(parent).is_ok_and(|p| p.dev() != me.dev())
}

/// Mount and serve until unmounted or signalled (SIGTERM/SIGINT unmount cleanly).
pub fn run_foreground(args: MountArgs) -> Result<(), MountError> {
    let (bucket, prefix) = parse_volume(&args.volume)?;
    let meta = std::fs::metadata(&args.mountpoint)
        .map_err(|e| MountError::MountPoint(args.mountpoint.clone(), e.to_string()))?;
    if !meta.is_dir() {
        return Err(MountError::MountPoint(
            args.mountpoint.clone(),
            "not a directory".into(),
        ));
    }
    std::fs::create_dir_all(&args.options.cache_dir)
        .map_err(|e| MountError::MountPoint(args.options.cache_dir.clone(), e.to_string()))?;
    let client = S3Client::new(S3Config {
        endpoint: args.endpoint.clone(),
        access_key: args.access_key.clone(),
        secret_key: args.secret_key.clone(),
        region: args.region.clone(),
        bucket: bucket.clone(),
        prefix: prefix.clone(),
        trust: args.trust.clone(),
        io_timeout: args.io_timeout,
    })?;
    // The bucket must exist (a prefix need not): fail now rather than with EIO later.
    use client::ObjectClient;
    client
        .list("", true, None, 1)
        .map_err(|e| explain_probe(e, &bucket, &args.endpoint, &args.access_key))?;
    let mut options = args.options.clone();
    // Credentials that may not write make a read-only mount: writes fail at open with
    // EROFS instead of at close, where a refused upload would be lost.
    if !options.read_only && !client.may_write()? {
        tracing::info!("these credentials cannot write here: mounting read-only");
        options.read_only = true;
    }
    let fs = Arc::new(fs::Fs::new(client, options.clone()));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(format!("cairn:{bucket}/{prefix}")),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    if options.read_only {
        config.mount_options.push(fuser::MountOption::RO);
    }
    if args.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(4);
    let mut session = fuser::Session::new(fuse::FuseFs::new(fs), &args.mountpoint, &config)
        .map_err(|e| MountError::Mount(args.mountpoint.clone(), e))?;
    tracing::info!(
        "mounted {bucket}/{prefix} from {} at {}",
        args.endpoint,
        args.mountpoint.display()
    );
    let mut unmounter = session.unmount_callable();
    let mountpoint = args.mountpoint.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            // Every signal tries again: an unmount refused while the mount is busy (a
            // shell inside it) succeeds at a later signal once it is not.
            let mut first = true;
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::info!("signalled: unmounting {}", mountpoint.display());
                // The session's unmounter is spent by its first try (it gives its mount
                // up even when refused): later tries unmount the path itself.
                let tried = if first {
                    first = false;
                    unmounter.unmount()
                } else {
                    unmount_path(&mountpoint)
                };
                match tried {
                    Ok(()) => return,
                    Err(e) => tracing::warn!(
                        "unmount {}: {e} (signal again to retry, or umount it)",
                        mountpoint.display()
                    ),
                }
            }
        });
    });
    session
        .run()
        .map_err(|e| MountError::Mount(args.mountpoint.clone(), e))?;
    tracing::info!("unmounted {}", args.mountpoint.display());
    Ok(())
}

/// Unmount the filesystem at `path` (as root directly, else through `fusermount3 -u` or
/// `fusermount -u`, which let a user unmount their own FUSE mounts).
fn unmount_path(path: &std::path::Path) -> std::io::Result<()> {
    match nix::mount::umount2(path, nix::mount::MntFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    let mut last = std::io::Error::other("no fusermount found");
    for tool in ["fusermount3", "fusermount"] {
        match std::process::Command::new(tool)
            .arg("-u")
            .arg(path)
            .status()
        {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => last = std::io::Error::other(format!("{tool} -u: {s}")),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Start `cairn mount ... --foreground` as a background process (its own process group)
/// and return once the mount is up.
pub fn spawn_background(argv: &[String], mountpoint: &Path) -> Result<(), MountError> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| MountError::Daemon(e.to_string()))?;
    let mut child = std::process::Command::new(exe)
        .args(argv)
        .arg("--foreground")
        .stdin(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| MountError::Daemon(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(MountError::Daemon(status.to_string()));
        }
        if is_mount_point(mountpoint) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    Err(MountError::Daemon("timed out waiting for the mount".into()))
}
