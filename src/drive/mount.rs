//! Where a drive root sits: whether it is a mount point, and the identity of the filesystem
//! mounted there. A disk whose mount failed, or that was unmounted while running, leaves an
//! empty directory on the OS disk at its mount point; these facts let a drive tell that
//! directory from the disk it stood for, so that nothing is ever healed onto the OS disk.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What `format.json` records of a drive root that was a mount point when it was formatted,
/// and what [`identify`] finds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The root was a mount point.
    pub mount_point: bool,
    /// The filesystem's type (`ext4`, `xfs`, `tmpfs`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// The filesystem's UUID where the OS gives one (block devices listed under
    /// `/dev/disk/by-uuid`); `None` for tmpfs, NFS and the like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_uuid: Option<String>,
}

/// One line of `/proc/self/mountinfo`: mount point, filesystem type, source.
#[derive(Debug, PartialEq, Eq)]
struct MountLine {
    mount_point: String,
    fs_type: String,
    source: String,
}

/// `\040`-style octal escapes of mountinfo fields.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(oct) = b.get(i + 1..i + 4) {
                if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                    let v = oct
                        .iter()
                        .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                    if let Ok(v) = u8::try_from(v) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo: `id parent major:minor root mount_point options [optional...] - type source super`.
fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let mount_point = fields.nth(4)?;
            let mut rest = fields.skip_while(|f| *f != "-");
            rest.next()?;
            let fs_type = rest.next()?;
            let source = rest.next().unwrap_or("");
            Some(MountLine {
                mount_point: unescape(mount_point),
                fs_type: unescape(fs_type),
                source: unescape(source),
            })
        })
        .collect()
}

/// The UUID of the block device `source`, from the `/dev/disk/by-uuid` links.
fn uuid_of(source: &str) -> Option<String> {
    if !source.starts_with("/dev/") {
        return None;
    }
    let dev = std::fs::canonicalize(source).ok()?;
    for e in std::fs::read_dir("/dev/disk/by-uuid").ok()?.flatten() {
        if std::fs::canonicalize(e.path()).ok().as_deref() == Some(dev.as_path()) {
            return Some(e.file_name().to_string_lossy().into_owned());
        }
    }
    None
}

/// Is `root` a mount point now, and of which filesystem? `root` must exist.
pub fn identify(root: &Path) -> std::io::Result<MountRecord> {
    let canon = std::fs::canonicalize(root)?;
    let canon_s = canon.to_string_lossy();
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
        // The last mount on a path is the one visible there.
        let line = parse_mountinfo(&text)
            .into_iter()
            .rev()
            .find(|l| l.mount_point == canon_s);
        return Ok(match line {
            Some(l) => MountRecord {
                mount_point: true,
                fs_uuid: uuid_of(&l.source),
                fs_type: Some(l.fs_type),
            },
            None => MountRecord {
                mount_point: false,
                fs_type: None,
                fs_uuid: None,
            },
        });
    }
    // No /proc: a root on another device than its parent is a mount point.
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(&canon)?.dev();
    let parent_dev = match canon.parent() {
        Some(p) => std::fs::metadata(p)?.dev(),
        None => dev,
    };
    Ok(MountRecord {
        mount_point: dev != parent_dev || canon.parent().is_none(),
        fs_type: None,
        fs_uuid: None,
    })
}

/// Does the directory hold nothing at all (a fresh filesystem's `lost+found` aside)?
pub fn is_empty_dir(root: &Path) -> std::io::Result<bool> {
    for e in std::fs::read_dir(root)? {
        if e?.file_name() != "lost+found" {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_and_escapes() {
        let text = "22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n\
                    36 25 8:1 / /mnt/disk\\0401 rw,relatime shared:1 master:2 - ext4 /dev/sda1 rw\n\
                    garbage\n";
        let lines = parse_mountinfo(text);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].mount_point, "/mnt/disk 1");
        assert_eq!(lines[1].fs_type, "ext4");
        assert_eq!(lines[1].source, "/dev/sda1");
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
        assert_eq!(unescape("\\04"), "\\04");
    }

    #[test]
    fn a_plain_directory_is_not_a_mount_point() {
        let dir = tempfile::tempdir().expect("dir");
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).expect("mkdir");
        assert!(!identify(&sub).expect("identify").mount_point);
        assert!(is_empty_dir(&sub).expect("empty"));
        std::fs::create_dir(sub.join("lost+found")).expect("mkdir");
        assert!(is_empty_dir(&sub).expect("empty"));
        std::fs::write(sub.join("x"), b"x").expect("write");
        assert!(!is_empty_dir(&sub).expect("not empty"));
        assert!(identify(Path::new("/")).expect("root").mount_point);
    }
}
