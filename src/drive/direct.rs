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
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Alignment of buffers, lengths and offsets for direct I/O.
const ALIGN: usize = 4096;
/// Bytes gathered for one direct write: the most an open shard file holds in memory.
/// Direct writes of this size ran as fast here as 1 MiB ones (64 MiB x32 PUT, within
/// run-to-run noise), and 32 uploads x 4 drives keep 96 MiB less than with a 1 MiB buffer.
pub const STEADY: usize = 256 << 10;
/// Idle aligned buffers kept for the next write (16 MiB); more are freed.
const POOL_MAX: usize = 64;

/// Aligned buffers no file is using.
static POOL: Mutex<Vec<Aligned>> = Mutex::new(Vec::new());

/// A buffer of [`STEADY`] bytes aligned for direct I/O.
struct Aligned {
    backing: Vec<u8>,
    /// Offset of the aligned region in `backing` (the allocation does not move with the
    /// `Vec`).
    start: usize,
}

impl Aligned {
    /// One from the pool, else a new one.
    fn take() -> Aligned {
        let pooled = POOL.lock().ok().and_then(|mut p| p.pop());
        pooled.unwrap_or_else(|| {
            let backing = vec![0u8; STEADY + ALIGN];
            let start = backing.as_ptr().align_offset(ALIGN);
            Aligned { backing, start }
        })
    }

    /// Back to the pool (or freed when it is full).
    fn give(self) {
        if let Ok(mut p) = POOL.lock() {
            if p.len() < POOL_MAX {
                p.push(self);
            }
        }
    }

    fn region(&self) -> &[u8] {
        &self.backing[self.start..self.start + STEADY]
    }

    fn region_mut(&mut self) -> &mut [u8] {
        &mut self.backing[self.start..self.start + STEADY]
    }
}

/// A shard file being written. It holds an aligned buffer only while one of its writes is
/// gathering or flushing: each write ends by writing what it gathered up to the last
/// [`ALIGN`] boundary, the less than [`ALIGN`] bytes left over wait in a small buffer and
/// the aligned one goes back to a shared pool, so an upload waiting for its client's next
/// bytes holds a few KiB per drive, not [`STEADY`].
pub struct DirectFile {
    file: File,
    /// `O_DIRECT` is on for the open file.
    direct: bool,
    /// The aligned buffer, while a write is in progress.
    buf: Option<Aligned>,
    /// The gathered bytes while `buf` is away (fewer than [`ALIGN`]).
    spare: Vec<u8>,
    /// Bytes gathered (in `buf`'s region, or in `spare` while `buf` is away).
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
        Ok(DirectFile {
            file,
            direct,
            buf: None,
            spare: Vec::new(),
            len: 0,
            pos: 0,
        })
    }

    /// The aligned buffer, taken from the pool with the spare bytes moved in when away.
    fn buffer(&mut self) -> &mut Aligned {
        let (spare, len) = (&mut self.spare, self.len);
        self.buf.get_or_insert_with(|| {
            let mut b = Aligned::take();
            debug_assert_eq!(spare.len(), len);
            b.region_mut()[..spare.len()].copy_from_slice(spare);
            spare.clear();
            b
        })
    }

    /// Give the aligned buffer back, what it still holds (less than [`ALIGN`] once a write
    /// wrote up to its last boundary) moved to the spare one.
    fn release(&mut self) {
        debug_assert!(self.len < ALIGN);
        if let Some(b) = self.buf.take() {
            self.spare.clear();
            self.spare.extend_from_slice(&b.region()[..self.len]);
            b.give();
        }
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if !self.direct {
                self.file.write_all_at(data, self.pos)?;
                self.pos += data.len() as u64;
                break;
            }
            let n = (STEADY - self.len).min(data.len());
            let at = self.len;
            self.buffer().region_mut()[at..at + n].copy_from_slice(&data[..n]);
            self.len += n;
            data = &data[n..];
            if self.len == STEADY {
                self.flush(STEADY)?;
            }
        }
        // What lies before the last alignment boundary goes now (a shorter direct write),
        // so that less than ALIGN waits for the next write and the buffer can go back.
        let aligned = self.len / ALIGN * ALIGN;
        if self.direct && aligned > 0 {
            self.flush(aligned)?;
        }
        self.release();
        Ok(())
    }

    /// Write the first `n` gathered bytes (a multiple of [`ALIGN`], at most what the
    /// aligned buffer holds) and keep the rest. A filesystem that refuses the direct write
    /// gets it buffered, and the file stays buffered.
    fn flush(&mut self, n: usize) -> io::Result<()> {
        let Some(buf) = self.buf.as_mut() else {
            return Err(io::Error::other("direct write without its buffer"));
        };
        match self.file.write_all_at(&buf.region()[..n], self.pos) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                set_buffered(&self.file, &mut self.direct)?;
                self.file.write_all_at(&buf.region()[..n], self.pos)?;
            }
            Err(e) => return Err(e),
        }
        self.pos += n as u64;
        buf.region_mut().copy_within(n..self.len, 0);
        self.len -= n;
        if !self.direct && self.len > 0 {
            self.file
                .write_all_at(&buf.region()[..self.len], self.pos)?;
            self.pos += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// Write what is gathered (the unaligned tail, buffered: every write already wrote up
    /// to its last [`ALIGN`] boundary), and make the file durable when `sync` (group commit
    /// leaves that to the barrier of whatever publishes it).
    pub fn finish(mut self, sync: bool) -> io::Result<()> {
        debug_assert!(self.len < ALIGN || !self.direct);
        if self.len > 0 {
            set_buffered(&self.file, &mut self.direct)?;
            let tail = match &self.buf {
                Some(b) => &b.region()[..self.len],
                None => &self.spare[..self.len],
            };
            self.file.write_all_at(tail, self.pos)?;
        }
        if sync {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            b.give();
        }
    }
}

/// Turn `O_DIRECT` off for an open file (`direct` says whether it is on).
fn set_buffered(file: &File, direct: &mut bool) -> io::Result<()> {
    if !*direct {
        return Ok(());
    }
    let fd = file.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_DIRECT)).map_err(io::Error::from)?;
    *direct = false;
    Ok(())
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

    /// Files written in turn share the pooled buffers without mixing their bytes, and a
    /// file holds no aligned buffer between writes, whatever the sizes of its chunks.
    #[test]
    fn files_written_in_turn_share_buffers_and_hold_none_between_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Framed chunks of 1 MiB blocks over 2, 3 and 8 data shards, one of a small block
        // (its 32 bytes of hash pile up past a boundary), and odd sizes.
        let pieces = [
            524_288 + 32,
            349_526 + 32,
            131_072 + 32,
            4096 + 32,
            100_003,
            7,
        ];
        let datas: Vec<Vec<u8>> = pieces
            .iter()
            .enumerate()
            .map(|(f, &piece)| {
                let writes = if piece < 8192 { 140 } else { 9 };
                (0..piece * writes + f)
                    .map(|j| (j * 7 + f * 13) as u8)
                    .collect()
            })
            .collect();
        let mut files: Vec<DirectFile> = (0..datas.len())
            .map(|f| DirectFile::create(&dir.path().join(format!("f{f}"))).expect("create"))
            .collect();
        let direct = files[0].direct;
        let mut at = vec![0; files.len()];
        while at.iter().zip(&datas).any(|(a, d)| a < &d.len()) {
            for (i, (f, data)) in files.iter_mut().zip(&datas).enumerate() {
                let end = (at[i] + pieces[i]).min(data.len());
                if at[i] < end {
                    f.write(&data[at[i]..end]).expect("write");
                    at[i] = end;
                    if direct {
                        assert!(f.len < ALIGN, "{} bytes left over", f.len);
                        assert!(f.buf.is_none(), "an aligned buffer held between writes");
                    }
                }
            }
        }
        for (i, (f, data)) in files.into_iter().zip(&datas).enumerate() {
            f.finish(false).expect("finish");
            let back = std::fs::read(dir.path().join(format!("f{i}"))).expect("read");
            assert!(back == *data, "file {i} differs");
        }
    }
}
