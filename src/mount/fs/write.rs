//! Writes and staging: the first write (or truncate) copies a file into a staging file,
//! streamed uploads of files written in order, flush/fsync uploads, setattr, the space check
//! against the volume quota.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use parking_lot::Mutex;

use super::{errno, Attr, Fs, FsResult, Job, Kind, RangeReader, SetAttr, Staged, Stream, ROOT};
use crate::mount::client::{ClientError, ObjectClient, Usage};

impl<C: ObjectClient> Fs<C> {
    /// The node's staging file, created (with the object's current bytes unless `empty`).
    pub(super) fn stage(&self, ino: u64, empty: bool) -> FsResult<Arc<Mutex<Staged>>> {
        let (path, existing, known_size) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            if n.attr.kind != Kind::File {
                return Err(Errno::EISDIR);
            }
            (n.path.clone(), n.staged.clone(), n.attr.size)
        };
        if let Some(s) = existing {
            return Ok(s);
        }
        let mut file = tempfile::tempfile_in(&self.opts.cache_dir).map_err(|e| {
            tracing::error!(
                "cannot create a staging file in {:?}: {e}",
                self.opts.cache_dir
            );
            Errno::EIO
        })?;
        // What the store holds for the file: replaced when the staged copy is saved (a file
        // staged empty to be rewritten still counts its old bytes until then).
        let (size, stored) = if empty {
            (0, known_size)
        } else {
            match self.client.get_into(&path, &mut file) {
                Ok(n) => (n, n),
                Err(ClientError::NotFound) => (0, 0),
                Err(e) => return Err(errno(e)),
            }
        };
        let staged = Arc::new(Mutex::new(Staged {
            file,
            size,
            stored,
            dirty: false,
            appending: size == 0,
            stream: None,
        }));
        let mut t = self.table.lock();
        let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
        // Another thread may have staged it meanwhile: keep the first.
        Ok(n.staged.get_or_insert(staged).clone())
    }

    /// Quota and usage, refreshed at most once a second.
    pub(super) fn usage(&self) -> Option<Usage> {
        let mut u = self.usage.lock();
        if let Some((at, v)) = *u {
            if at.elapsed() < Duration::from_secs(1) {
                return v;
            }
        }
        let v = self.client.usage().ok();
        *u = Some((Instant::now(), v));
        v
    }

    /// Forget the cached quota and usage (they are re-read on next use).
    pub fn invalidate_usage(&self) {
        *self.usage.lock() = None;
    }

    /// What this mount's unsaved files change of the store's usage once saved: bytes
    /// staged beyond what the store holds for those files, and bytes the store holds beyond
    /// what they now are (a file truncated to be rewritten frees its old bytes when saved).
    pub(super) fn pending(&self) -> (u64, u64) {
        let t = self.table.lock();
        let (mut grows, mut frees) = (0u64, 0u64);
        for s in t
            .nodes
            .values()
            .filter(|n| !n.gone)
            .filter_map(|n| n.staged.as_ref())
        {
            let s = s.lock();
            if s.dirty {
                grows = grows.saturating_add(s.size.saturating_sub(s.stored));
                frees = frees.saturating_add(s.stored.saturating_sub(s.size));
            }
        }
        (grows, frees)
    }

    /// The store's usage as it will be once this mount's unsaved files are saved.
    pub(super) fn projected_use(&self, u: &Usage) -> u64 {
        // Parts of uploads still being streamed are in `pending` (this mount's own staged
        // bytes) and in the store's `parts`: count them once.
        let (grows, frees) = self.pending();
        u.used
            .saturating_sub(u.parts)
            .saturating_add(grows)
            .saturating_sub(frees)
    }

    /// Refuse growth that would pass the volume's quota (ENOSPC at write time, not close).
    fn check_space(&self, growth: u64) -> FsResult<()> {
        if growth == 0 {
            return Ok(());
        }
        if let Some(u) = self.usage() {
            if u.quota > 0 && self.projected_use(&u).saturating_add(growth) > u.quota {
                return Err(Errno::ENOSPC);
            }
        }
        Ok(())
    }

    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.check_writable()?;
        let staged = self.stage(ino, false)?;
        let (attr, path) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (n.attr, n.path.clone())
        };
        let mut s = staged.lock();
        let end = offset + data.len() as u64;
        let growth = end.saturating_sub(s.size);
        drop(s);
        self.check_space(growth)?;
        s = staged.lock();
        s.file.write_all_at(data, offset).map_err(|e| {
            tracing::error!("staging write: {e}");
            Errno::EIO
        })?;
        if offset != s.size && s.appending {
            s.appending = false;
            if let Some(st) = s.stream.take() {
                self.abort_stream(&path, st);
            }
        }
        s.size = s.size.max(end);
        s.dirty = true;
        if s.appending {
            self.feed_stream(&path, &attr, &mut s);
        }
        let size = s.size;
        drop(s);
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.attr.size = size;
            n.attr.mtime = SystemTime::now();
        }
        Ok(data.len() as u32)
    }

    /// Hand every full part written so far to the stream's uploader (starting it).
    fn feed_stream(&self, path: &str, attr: &Attr, s: &mut Staged) {
        let part = self.opts.part_size;
        loop {
            let queued = s.stream.as_ref().map_or(0, |st| st.queued);
            if s.size - queued < part {
                return;
            }
            if s.stream.is_none() {
                let Ok(upload_id) = self.client.create_multipart(path, &Self::meta_of(attr)) else {
                    // Not streamed after all: close uploads the file whole.
                    s.appending = false;
                    return;
                };
                let Ok(file) = s.file.try_clone() else {
                    let _ = self.client.abort_multipart(path, &upload_id);
                    s.appending = false;
                    return;
                };
                let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(1);
                let client = self.client.clone();
                let (key, id) = (path.to_string(), upload_id.clone());
                let worker = std::thread::spawn(move || {
                    let mut parts = Vec::new();
                    for job in rx {
                        match job {
                            Job::Part(n, offset, len) => {
                                let mut body = RangeReader {
                                    file: &file,
                                    pos: offset,
                                    end: offset + len,
                                };
                                match client.upload_part(&key, &id, n, &mut body, len) {
                                    Ok(etag) => parts.push((n, etag)),
                                    Err(e) => {
                                        let _ = client.abort_multipart(&key, &id);
                                        return Err(e);
                                    }
                                }
                            }
                            Job::Finish => return Ok(parts),
                        }
                    }
                    // The writer went away without finishing: abandon the upload.
                    let _ = client.abort_multipart(&key, &id);
                    Err(ClientError::Other("stream cancelled".into()))
                });
                s.stream = Some(Stream {
                    upload_id,
                    queued: 0,
                    next_part: 1,
                    jobs,
                    worker,
                });
            }
            let Some(st) = s.stream.as_mut() else { return };
            if st
                .jobs
                .send(Job::Part(st.next_part, st.queued, part))
                .is_err()
            {
                // The uploader failed; close falls back to a whole upload.
                s.appending = false;
                return;
            }
            st.queued += part;
            st.next_part += 1;
        }
    }

    /// Stop a stream and abort its upload (the file will be uploaded whole).
    fn abort_stream(&self, path: &str, st: Stream) {
        drop(st.jobs);
        let _ = st.worker.join();
        let _ = self.client.abort_multipart(path, &st.upload_id);
    }

    /// Finish a stream: wait for its parts, upload the tail, complete.
    fn finish_stream(&self, path: &str, st: Stream, s: &Staged) -> Result<(), ClientError> {
        let _ = st.jobs.send(Job::Finish);
        drop(st.jobs);
        let joined = st
            .worker
            .join()
            .map_err(|_| ClientError::Other("uploader panicked".into()))
            .and_then(|r| r);
        let result = joined.and_then(|mut parts| {
            if s.size > st.queued || parts.is_empty() {
                let len = s.size - st.queued;
                let mut body = RangeReader {
                    file: &s.file,
                    pos: st.queued,
                    end: s.size,
                };
                let etag =
                    self.client
                        .upload_part(path, &st.upload_id, st.next_part, &mut body, len)?;
                parts.push((st.next_part, etag));
            }
            self.client.complete_multipart(path, &st.upload_id, &parts)
        });
        if result.is_err() {
            let _ = self.client.abort_multipart(path, &st.upload_id);
        }
        result
    }

    /// Upload a node's staged data (and pending metadata) if dirty.
    pub fn flush(&self, ino: u64) -> FsResult<()> {
        let (path, attr, staged, meta_dirty, gone) = {
            let t = self.table.lock();
            let n = t.nodes.get(&ino).ok_or(Errno::ENOENT)?;
            (
                n.path.clone(),
                n.attr,
                n.staged.clone(),
                n.meta_dirty,
                n.gone,
            )
        };
        if gone {
            return Ok(());
        }
        let meta = Self::meta_of(&attr);
        match staged {
            Some(staged) => {
                let mut s = staged.lock();
                if !s.dirty && !meta_dirty {
                    return Ok(());
                }
                let streamed = match s.stream.take() {
                    // Metadata changed since the upload began: upload whole instead.
                    Some(st) if meta_dirty => {
                        self.abort_stream(&path, st);
                        false
                    }
                    Some(st) => match self.finish_stream(&path, st, &s) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::warn!(
                                "streamed upload of {path} failed ({e}): uploading whole"
                            );
                            false
                        }
                    },
                    None => false,
                };
                if !streamed {
                    self.upload(&path, &mut s, &meta)?;
                }
                // Later appends change an uploaded object: they upload it whole.
                s.appending = false;
                s.dirty = false;
                s.stored = s.size;
            }
            None if meta_dirty => {
                // Metadata only: rewrite it in place with a server-side copy.
                let r = match attr.kind {
                    Kind::Dir => {
                        let mut empty: &[u8] = &[];
                        self.client.put(&format!("{path}/"), &mut empty, 0, &meta)
                    }
                    _ => self.client.copy(&path, &path, Some(&meta)),
                };
                r.map_err(errno)?;
                // The copy is a new object (a multipart object's ETag changes): this
                // mount's own readers follow it.
                self.unpin(&[ino]);
            }
            None => return Ok(()),
        }
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            n.meta_dirty = false;
            n.fetched = Instant::now();
        }
        drop(t);
        self.invalidate_usage();
        Ok(())
    }

    fn upload(&self, path: &str, s: &mut Staged, meta: &BTreeMap<String, String>) -> FsResult<()> {
        let size = s.size;
        let io = |e: std::io::Error| {
            tracing::error!("staging read: {e}");
            Errno::EIO
        };
        if size <= self.opts.part_size {
            s.file.seek(SeekFrom::Start(0)).map_err(io)?;
            let mut body = std::io::Read::take(&mut s.file, size);
            return self.client.put(path, &mut body, size, meta).map_err(errno);
        }
        // At most 10,000 parts (S3's limit).
        let part = self.opts.part_size.max(size.div_ceil(10_000));
        let id = self.client.create_multipart(path, meta).map_err(errno)?;
        let mut parts = Vec::new();
        let mut off = 0;
        let mut number = 1;
        let result = (|| {
            while off < size {
                let len = part.min(size - off);
                s.file.seek(SeekFrom::Start(off)).map_err(io)?;
                let mut body = std::io::Read::take(&mut s.file, len);
                let etag = self
                    .client
                    .upload_part(path, &id, number, &mut body, len)
                    .map_err(errno)?;
                parts.push((number, etag));
                off += len;
                number += 1;
            }
            self.client
                .complete_multipart(path, &id, &parts)
                .map_err(errno)
        })();
        if result.is_err() {
            let _ = self.client.abort_multipart(path, &id);
        }
        result
    }

    pub fn fsync(&self, ino: u64) -> FsResult<()> {
        self.flush(ino)
    }

    pub fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        let changes_meta =
            set.mode.is_some() || set.uid.is_some() || set.gid.is_some() || set.mtime.is_some();
        if set.size.is_some() || changes_meta {
            self.check_writable()?;
        }
        if ino == ROOT {
            // The root has no object of its own: keep changes in memory.
            let mut t = self.table.lock();
            let n = t.nodes.get_mut(&ROOT).ok_or(Errno::ENOENT)?;
            Self::apply_meta(&mut n.attr, &set);
            return Ok(n.attr);
        }
        let attr = self.getattr(ino)?;
        if let Some(size) = set.size {
            if attr.kind == Kind::Dir {
                return Err(Errno::EISDIR);
            }
            let staged = self.stage(ino, size == 0)?;
            let path = self.path_of(ino)?;
            let mut s = staged.lock();
            if s.appending && size != s.size {
                s.appending = false;
                if let Some(st) = s.stream.take() {
                    self.abort_stream(&path, st);
                }
            }
            if size > s.size {
                let growth = size - s.size;
                drop(s);
                self.check_space(growth)?;
                s = staged.lock();
            }
            s.file.set_len(size).map_err(|_| Errno::EIO)?;
            s.size = size;
            s.dirty = true;
        }
        let (open, staged) = {
            let mut t = self.table.lock();
            let n = t.nodes.get_mut(&ino).ok_or(Errno::ENOENT)?;
            Self::apply_meta(&mut n.attr, &set);
            if let Some(size) = set.size {
                n.attr.size = size;
                if set.mtime.is_none() {
                    n.attr.mtime = SystemTime::now();
                }
            }
            if changes_meta {
                n.meta_dirty = true;
            }
            (n.open, n.staged.is_some())
        };
        // Not open (truncate(2), chmod(2) on a path): write through now. Open files upload
        // on flush/close.
        if open == 0 {
            self.flush(ino)?;
            if staged {
                self.drop_staging(ino);
            }
        }
        self.cached(ino)
    }

    fn apply_meta(a: &mut Attr, set: &SetAttr) {
        if let Some(m) = set.mode {
            a.perm = m & 0o7777;
        }
        if let Some(u) = set.uid {
            a.uid = u;
        }
        if let Some(g) = set.gid {
            a.gid = g;
        }
        if let Some(t) = set.mtime {
            a.mtime = t;
        }
    }

    fn drop_staging(&self, ino: u64) {
        let mut t = self.table.lock();
        if let Some(n) = t.nodes.get_mut(&ino) {
            let clean = n.staged.as_ref().is_some_and(|s| !s.lock().dirty);
            if clean && n.open == 0 {
                n.staged = None;
            }
        }
    }
}
