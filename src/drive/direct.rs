//! Shard files written with `O_DIRECT`: data goes from an aligned buffer straight to the
//! device, skipping the page-cache copy and the writeback that buffered writes + fsync pay.
//! Every shard file is larger than the inline limit (128 KiB), so a file is direct from its
//! first byte: it gathers [`STEADY`] bytes in one aligned buffer per write, the unaligned
//! tail is written buffered, and `finish` syncs unless group commit leaves that to a
//! barrier ([`super::sync`]). Filesystems that refuse `O_DIRECT` (tmpfs) get buffered
//! writes only.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Alignment of buffers, lengths and offsets for direct I/O.
const ALIGN: usize = 4096;
/// Bytes gathered for one direct write: the memory an open shard file holds. Direct
/// writes of this size ran as fast here as 1 MiB ones (64 MiB x32 PUT, within run-to-run
/// noise), and 32 uploads x 4 drives keep 96 MiB less than with a 1 MiB buffer.
pub const STEADY: usize = 256 << 10;

pub struct DirectFile {
    file: File,
    /// `O_DIRECT` is on for the open file.
    direct: bool,
    /// The aligned buffer (empty while the file is buffered).
    backing: Vec<u8>,
    /// Offset of the aligned region in `backing`.
    start: usize,
    /// Bytes buffered in the aligned region.
    len: usize,
    /// File offset of the next write.
    pos: u64,
}

impl DirectFile {
    pub fn create(path: &Path) -> io::Result<DirectFile> {
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(OFlag::O_DIRECT.bits())
            .open(path);
        let (file, direct) = match direct {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => (File::create(path)?, false),
            Err(e) => return Err(e),
        };
        let mut f = DirectFile {
            file,
            direct,
            backing: Vec::new(),
            start: 0,
            len: 0,
            pos: 0,
        };
        if direct {
            let backing = vec![0u8; STEADY + ALIGN];
            f.start = backing.as_ptr().align_offset(ALIGN);
            f.backing = backing;
        }
        Ok(f)
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if !self.direct {
                self.file.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                return Ok(());
            }
            let n = (STEADY - self.len).min(data.len());
            let at = self.start + self.len;
            self.backing[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == STEADY {
                self.flush(STEADY)?;
            }
        }
        Ok(())
    }

    /// Write the first `n` gathered bytes (a multiple of [`ALIGN`]) and keep the rest. A
    /// filesystem that refuses the direct write gets it buffered, and the file stays
    /// buffered.
    fn flush(&mut self, n: usize) -> io::Result<()> {
        let region = self.start..self.start + n;
        match self
            .file
            .write_all_at(&self.backing[region.clone()], self.pos)
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                self.set_buffered()?;
                self.file.write_all_at(&self.backing[region], self.pos)?;
            }
            Err(e) => return Err(e),
        }
        self.pos += n as u64;
        self.backing
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        if !self.direct && self.len > 0 {
            let rest = self.start..self.start + self.len;
            self.file.write_all_at(&self.backing[rest], self.pos)?;
            self.pos += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// Turn `O_DIRECT` off for the open file.
    fn set_buffered(&mut self) -> io::Result<()> {
        if !self.direct {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        let flags =
            OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
        fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT)).map_err(io::Error::from)?;
        self.direct = false;
        Ok(())
    }

    /// Write what is gathered (the unaligned tail buffered), and make the file durable
    /// when `sync` (group commit leaves that to the barrier of whatever publishes it).
    pub fn finish(mut self, sync: bool) -> io::Result<()> {
        let aligned = self.len / ALIGN * ALIGN;
        if self.direct && aligned > 0 {
            self.flush(aligned)?;
        }
        if self.len > 0 {
            self.set_buffered()?;
            let tail = self.start..self.start + self.len;
            self.file.write_all_at(&self.backing[tail], self.pos)?;
        }
        if sync {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_sizes_and_write_patterns_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, (total, piece)) in [
            (0usize, 1usize),
            (1, 1),
            (4095, 1000),
            (4096, 4096),
            (STEADY, 7777),
            (STEADY + 1, STEADY + 1),
            (524_288 + 32, 524_288 + 32),
            (3 * (1 << 20) + 12345, 524_320),
            (4 * STEADY, 1 << 20),
            (3 * STEADY + 4096, 524_288 + 32),
            (5 * (1 << 20) + 1, 100_003),
        ]
        .into_iter()
        .enumerate()
        {
            let data: Vec<u8> = (0..total).map(|j| (j * 31 + i) as u8).collect();
            let path = dir.path().join(format!("f{i}"));
            let mut f = DirectFile::create(&path).expect("create");
            for chunk in data.chunks(piece) {
                f.write(chunk).expect("write");
            }
            f.finish(true).expect("finish");
            assert_eq!(std::fs::read(&path).expect("read"), data, "case {i}");
        }
    }
}
