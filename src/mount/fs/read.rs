//! Open files: handles, ranged reads through the adaptive read-ahead window and its
//! prefetches, release.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use nix::errno::Errno;
use parking_lot::Mutex;

use super::{errno, Attr, Charge, Fs, FsResult, Handle, Kind, Prefetch, ReadAhead, PREFETCH_DEPTH};
use crate::mount::client::ObjectClient;

impl<C: ObjectClient> Fs<C> {
    pub(super) fn new_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().insert(fh, Arc::new(h));
        fh
    }

    pub(super) fn handle(&self, fh: u64) -> FsResult<Arc<Handle>> {
        self.handles.lock().get(&fh).cloned().ok_or(Errno::EBADF)
    }

    pub fn open(&self, ino: u64, write: bool) -> FsResult<u64> {
        if write {
            self.check_writable()?;
        }
        let mut t = self.table.lock();
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        if n.attr.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        n.open += 1;
        drop(t);
        Ok(self.new_handle(Handle::File {
            ino,
            ra: Mutex::new(ReadAhead {
                buf: Vec::new(),
                start: 0,
                window: 128 << 10,
                next: 0,
                prefetch: std::collections::VecDeque::new(),
                etag: None,
            }),
        }))
    }

    /// Create and open an empty file (uploaded on flush).
    pub fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(Attr, u64)> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::File,
            size: 0,
            perm: mode & 0o7777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let attr = {
            let mut t = self.table.lock();
            if let Some(old) = t.by_path.remove(&path) {
                if let Some(n) = t.nodes.get_mut(&old) {
                    n.gone = true;
                }
            }
            drop(t);
            self.remember(&path, attr, true)
        };
        let staged = self.stage(attr.ino, true)?;
        staged.lock().dirty = true;
        let fh = self.open(attr.ino, true)?;
        Ok((attr, fh))
    }

    pub fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.read_with(ino, fh, offset, size, <[u8]>::to_vec)
    }

    /// Read up to `size` bytes at `offset` and hand them to `reply` without copying them
    /// out of the read-ahead window first.
    pub fn read_with<R>(
        &self,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u32,
        reply: impl FnOnce(&[u8]) -> R,
    ) -> FsResult<R> {
        let (path, staged, file_size) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (n.path.clone(), n.staged.clone(), n.attr.size)
        };
        if let Some(staged) = staged {
            let s = staged.lock();
            let len = (size as u64).min(s.size.saturating_sub(offset)) as usize;
            let mut buf = vec![0u8; len];
            s.file
                .read_exact_at(&mut buf, offset)
                .map_err(|_| Errno::EIO)?;
            return Ok(reply(&buf));
        }
        if offset >= file_size {
            return Ok(reply(&[]));
        }
        let h = self.handle(fh)?;
        let Handle::File { ra, ino: of } = &*h else {
            return Err(Errno::EBADF);
        };
        if *of != ino {
            return Err(Errno::EBADF);
        }
        let mut ra = ra.lock();
        let want_end = (offset + size as u64).min(file_size);
        let sequential = offset == ra.next;
        // Move forward through prefetched windows while the read starts past the buffer or
        // straddles its end (a straddling read keeps the tail of the current window).
        loop {
            let buf_end = ra.start + ra.buf.len() as u64;
            if offset >= ra.start && want_end <= buf_end {
                break;
            }
            let usable = ra.prefetch.front().is_some_and(|p| {
                p.start == buf_end && offset >= ra.start && offset < p.start + p.len
            });
            if !usable {
                // A seek (or a cold start): drop what was fetched ahead, fetch here.
                ra.prefetch.clear();
                ra.window = if sequential {
                    (ra.window * 2).min(self.opts.max_readahead)
                } else {
                    128 << 10
                };
                let len = (size as u64).max(ra.window).min(file_size - offset);
                let (buf, etag) = self
                    .client
                    .get_range(&path, offset, len, ra.etag.as_deref())
                    .map_err(errno)?;
                if !etag.is_empty() {
                    ra.etag.get_or_insert(etag);
                }
                ra.buf = buf;
                ra.start = offset;
                break;
            }
            let Some(p) = ra.prefetch.pop_front() else {
                break;
            };
            let (next, _) = p.task.join().map_err(|_| Errno::EIO)?.map_err(errno)?;
            if offset >= buf_end {
                ra.buf = next;
                ra.start = p.start;
            } else {
                let keep = ((offset - ra.start) as usize).min(ra.buf.len());
                let mut joined = ra.buf.split_off(keep);
                joined.extend_from_slice(&next);
                ra.buf = joined;
                ra.start = offset;
            }
        }
        ra.next = want_end;
        // Reading sequentially: keep the next windows coming while this one is served.
        if sequential && ra.window >= 1 << 20 {
            while ra.prefetch.len() < PREFETCH_DEPTH {
                let end = ra
                    .prefetch
                    .back()
                    .map_or(ra.start + ra.buf.len() as u64, |p| p.start + p.len);
                if end >= file_size {
                    break;
                }
                let window = (ra.window * 2).min(self.opts.max_readahead);
                let len = window.min(file_size - end);
                // Many files read at once share the budget; past it, reads fetch on demand.
                let Some(charge) = Charge::take(&self.prefetched, len, self.opts.readahead_budget)
                else {
                    break;
                };
                ra.window = window;
                let client = self.client.clone();
                let key = path.clone();
                let etag = ra.etag.clone();
                ra.prefetch.push_back(Prefetch {
                    start: end,
                    len,
                    task: std::thread::spawn(move || {
                        client.get_range(&key, end, len, etag.as_deref())
                    }),
                    _charge: charge,
                });
            }
        }
        let from = (offset - ra.start) as usize;
        let to = ((want_end - ra.start) as usize).min(ra.buf.len());
        Ok(reply(ra.buf.get(from..to).unwrap_or(&[])))
    }

    /// Bytes of prefetched windows held or being fetched, over all open files.
    pub fn prefetched_bytes(&self) -> u64 {
        self.prefetched.load(Ordering::Acquire)
    }

    /// The last close of a file: upload if dirty, then drop its staging file.
    pub fn release(&self, ino: u64, fh: u64) -> FsResult<()> {
        self.handles.lock().remove(&fh);
        let last = {
            let mut t = self.table.lock();
            match t.nodes.get_mut(&ino) {
                Some(n) => {
                    n.open = n.open.saturating_sub(1);
                    n.open == 0
                }
                None => false,
            }
        };
        let mut result = Ok(());
        if last {
            result = self.flush(ino);
            let mut t = self.table.lock();
            let remove = match t.nodes.get_mut(&ino) {
                Some(n) => {
                    if result.is_ok() || n.gone {
                        n.staged = None;
                    }
                    n.lookups == 0 && n.staged.is_none()
                }
                None => false,
            };
            if remove {
                if let Some(n) = t.nodes.remove(&ino) {
                    if t.by_path.get(&n.path) == Some(&ino) {
                        t.by_path.remove(&n.path);
                    }
                }
            }
        }
        result
    }
}
