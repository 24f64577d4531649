//! Shard files written with `O_DIRECT`: data goes from an aligned buffer straight to the
//! device, skipping the page-cache copy and the writeback that buffered writes + fsync pay.
//! The aligned part of a large file is written direct; small files, the unaligned tail, and
//! everything on a filesystem that refuses `O_DIRECT` (tmpfs) are written buffered; `finish`
//! syncs.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Alignment of buffers, lengths and offsets for direct I/O.
const ALIGN: usize = 4096;
/// Bytes gathered before one direct write (bounded memory per open file). Files that end
/// before the first full buffer (the shards of objects up to about 1 MiB per data shard)
/// are written buffered: they stay in the page cache for the reads that usually follow.
pub const BUFFER: usize = 1 << 20;
/// The buffer once the file is known to be large (after its first direct write): direct
/// writes of this size run as fast here, and 32 uploads x 4 drives keep 64 MiB less.
const STEADY: usize = 512 << 10;

pub struct DirectFile {
    file: File,
    direct: bool,
    backing: Vec<u8>,
    /// Offset of the aligned region in `backing`.
    start: usize,
    /// Bytes buffered in the aligned region.
    len: usize,
    /// Size of the aligned region: [`BUFFER`], then [`STEADY`].
    cap: usize,
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
        let (backing, start) = if direct {
            let backing = vec![0u8; BUFFER + ALIGN];
            let start = backing.as_ptr().align_offset(ALIGN);
            (backing, start)
        } else {
            (Vec::new(), 0)
        };
        Ok(DirectFile {
            file,
            direct,
            backing,
            start,
            len: 0,
            cap: BUFFER,
            pos: 0,
        })
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if !self.direct {
                self.file.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                return Ok(());
            }
            let n = (self.cap - self.len).min(data.len());
            let at = self.start + self.len;
            self.backing[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == self.cap {
                self.flush(self.cap)?;
                if self.cap != STEADY && self.direct {
                    // Empty now: trade the large first buffer for the steady one.
                    let backing = vec![0u8; STEADY + ALIGN];
                    self.start = backing.as_ptr().align_offset(ALIGN);
                    self.backing = backing;
                    self.cap = STEADY;
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
                self.buffered()?;
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

    /// Switch the open file to buffered writes.
    fn buffered(&mut self) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
        let flags = OFlag::from_bits_truncate(flags) - OFlag::O_DIRECT;
        fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
        self.direct = false;
        Ok(())
    }

    /// Write what is buffered and make the file durable.
    pub fn finish(mut self) -> io::Result<()> {
        if self.direct && self.pos == 0 {
            self.buffered()?;
            let all = self.start..self.start + self.len;
            self.file.write_all_at(&self.backing[all], 0)?;
        } else if self.direct {
            let aligned = self.len / ALIGN * ALIGN;
            if aligned > 0 {
                self.flush(aligned)?;
            }
            if self.len > 0 {
                self.buffered()?;
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
