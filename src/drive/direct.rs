//! Shard files written with `O_DIRECT`: data goes from an aligned buffer straight to the
//! device, skipping the page-cache copy and the writeback that buffered writes + fsync pay.
//! A file's first [`BUFFER`] bytes are written buffered (small files stay whole in the page
//! cache, for the reads that usually follow); past that the file switches to direct writes
//! of [`STEADY`] bytes from one aligned buffer, the unaligned tail is written buffered again,
//! and `finish` syncs. Filesystems that refuse `O_DIRECT` (tmpfs) get buffered writes only.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Alignment of buffers, lengths and offsets for direct I/O.
const ALIGN: usize = 4096;
/// Bytes written buffered before a file goes direct (the shards of objects up to about
/// 1 MiB per data shard never do).
pub const BUFFER: usize = 1 << 20;
/// Bytes gathered for one direct write: the memory a large open shard file holds. Direct
/// writes of this size ran as fast here as 1 MiB ones (64 MiB x32 PUT, within run-to-run
/// noise), and 32 uploads x 4 drives keep 96 MiB less than with a 1 MiB buffer.
const STEADY: usize = 256 << 10;

pub struct DirectFile {
    file: File,
    /// The filesystem takes `O_DIRECT` (tested at open).
    can_direct: bool,
    /// `O_DIRECT` is on for the open file.
    direct: bool,
    /// The aligned buffer, allocated when the file goes direct.
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
        let (file, can_direct) = match direct {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => (File::create(path)?, false),
            Err(e) => return Err(e),
        };
        let mut f = DirectFile {
            file,
            can_direct,
            direct: can_direct,
            backing: Vec::new(),
            start: 0,
            len: 0,
            pos: 0,
        };
        // The first bytes go through the page cache.
        f.set_direct(false)?;
        Ok(f)
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        if !self.direct {
            let room = if self.can_direct && self.pos < BUFFER as u64 {
                BUFFER - self.pos as usize
            } else if self.can_direct {
                0
            } else {
                data.len()
            };
            let n = room.min(data.len());
            self.file.write_all_at(&data[..n], self.pos)?;
            self.pos += n as u64;
            data = &data[n..];
            if data.is_empty() {
                return Ok(());
            }
            // Past the first MiB, with more to come: go direct.
            self.set_direct(true)?;
            if !self.direct {
                self.file.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                return Ok(());
            }
            if self.backing.is_empty() {
                let backing = vec![0u8; STEADY + ALIGN];
                self.start = backing.as_ptr().align_offset(ALIGN);
                self.backing = backing;
            }
        }
        while !data.is_empty() {
            let n = (STEADY - self.len).min(data.len());
            let at = self.start + self.len;
            self.backing[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == STEADY {
                self.flush(STEADY)?;
                if !self.direct {
                    // The filesystem refused a direct write after all: the rest is buffered.
                    self.file.write_all_at(data, self.pos)?;
                    self.pos += data.len() as u64;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Write the first `n` buffered bytes (a multiple of [`ALIGN`]) and keep the rest.
    fn flush(&mut self, n: usize) -> io::Result<()> {
        let region = self.start..self.start + n;
        match self
            .file
            .write_all_at(&self.backing[region.clone()], self.pos)
        {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                self.can_direct = false;
                self.set_direct(false)?;
                self.file.write_all_at(&self.backing[region], self.pos)?;
            }
            Err(e) => return Err(e),
        }
        self.pos += n as u64;
        self.backing
            .copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
        Ok(())
    }

    /// Turn `O_DIRECT` on or off for the open file (on only where the filesystem takes it).
    fn set_direct(&mut self, on: bool) -> io::Result<()> {
        let on = on && self.can_direct;
        if on == self.direct {
            return Ok(());
        }
        let fd = self.file.as_raw_fd();
        let flags =
            OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
        let flags = if on {
            flags | OFlag::O_DIRECT
        } else {
            flags - OFlag::O_DIRECT
        };
        match fcntl(fd, FcntlArg::F_SETFL(flags)) {
            Ok(_) => self.direct = on,
            Err(_) if on => self.can_direct = false,
            Err(e) => return Err(io::Error::from(e)),
        }
        Ok(())
    }

    /// Write what is buffered and make the file durable.
    pub fn finish(mut self) -> io::Result<()> {
        if self.direct {
            let aligned = self.len / ALIGN * ALIGN;
            if aligned > 0 {
                self.flush(aligned)?;
            }
            if self.len > 0 {
                self.set_direct(false)?;
                let tail = self.start..self.start + self.len;
                self.file.write_all_at(&self.backing[tail], self.pos)?;
            }
        }
        self.file.sync_all()
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
            (BUFFER, 7777),
            (BUFFER + 1, BUFFER + 1),
            (3 * BUFFER + 12345, 524_320),
            (BUFFER + STEADY, 1 << 20),
            (BUFFER + 3 * STEADY + 4096, 524_288 + 32),
            (5 * BUFFER + 1, 100_003),
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
            f.finish().expect("finish");
            assert_eq!(std::fs::read(&path).expect("read"), data, "case {i}");
        }
    }
}
