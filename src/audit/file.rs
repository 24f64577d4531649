//! The audit file: JSON lines appended by one writer thread, rotated when it passes its
//! size (`audit.log` → `audit.log.1` → … → `audit.log.<keep>`, the oldest removed).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use bytes::Bytes;

use super::{AuditStats, SINK_BUFFER};
use crate::deliver::DeliverError;

pub(super) struct AuditFile {
    tx: SyncSender<Bytes>,
    stats: Arc<AuditStats>,
}

fn io_error(path: &Path, source: std::io::Error) -> DeliverError {
    DeliverError::Io {
        dir: path.display().to_string(),
        source,
    }
}

impl AuditFile {
    pub(super) fn open(
        path: &Path,
        max_size: u64,
        keep: usize,
        stats: Arc<AuditStats>,
    ) -> Result<AuditFile, DeliverError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        }
        let file = append(path).map_err(|e| io_error(path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = std::sync::mpsc::sync_channel(SINK_BUFFER);
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            keep,
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("audit-file".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| io_error(path, e))?;
        Ok(AuditFile { tx, stats })
    }

    pub(super) fn write(&self, line: Bytes) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let n = self.stats.file_dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::warn!(
                        dropped = n + 1,
                        "audit file cannot keep up: entries dropped"
                    );
                }
            }
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    keep: usize,
    stats: Arc<AuditStats>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Bytes>) {
        let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
        while let Ok(line) = rx.recv() {
            let mut next = Some(line);
            // Gather what is waiting, then write it in one call.
            while let Some(line) = next.take() {
                let pending = buf.len() as u64;
                if self.size + pending > 0
                    && self.size + pending + line.len() as u64 > self.max_size
                {
                    self.flush(&mut buf);
                    self.rotate();
                }
                buf.extend_from_slice(&line);
                next = match rx.try_recv() {
                    Ok(l) if buf.len() < (1 << 20) => Some(l),
                    Ok(l) => {
                        self.flush(&mut buf);
                        Some(l)
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
                };
            }
            self.flush(&mut buf);
        }
    }

    fn flush(&mut self, buf: &mut Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
        match self.file.write_all(buf) {
            Ok(()) => {
                self.size += buf.len() as u64;
                self.stats.file_written.fetch_add(lines, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.file_dropped.fetch_add(lines, Ordering::Relaxed);
                tracing::warn!(file = %self.path.display(), error = %e, "audit entries not written");
            }
        }
        buf.clear();
    }

    fn rotated(&self, n: usize) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) {
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        if let Err(e) = std::fs::rename(&self.path, self.rotated(1)) {
            tracing::warn!(file = %self.path.display(), error = %e, "audit file not rotated");
        }
        match append(&self.path) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
            }
            Err(e) => {
                tracing::warn!(file = %self.path.display(), error = %e, "audit file not reopened")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("test");
        let path = dir.path().join("audit.log");
        let stats = Arc::new(AuditStats::default());
        let f = AuditFile::open(&path, 100, 2, stats.clone()).expect("test");
        for i in 0..10 {
            f.write(Bytes::from(format!("{{\"n\":{i:040}}}\n")));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while stats.file_written.load(Ordering::Relaxed) < 10
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(f);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // 49-byte lines, 100 bytes a file: two per file; the live file and two rotated.
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(path.clone());
        assert_eq!(current.lines().count(), 2, "{current}");
        assert!(current.contains(&format!("{:040}", 9)));
        assert!(read(dir.path().join("audit.log.1")).contains(&format!("{:040}", 7)));
        assert!(read(dir.path().join("audit.log.2")).contains(&format!("{:040}", 5)));
        assert!(!dir.path().join("audit.log.3").exists());
    }
}
