//! The namespace: mkdir, symlinks, unlink, rmdir, rename (copy + delete per key, prefixes
//! key by key).

use std::time::{Instant, SystemTime};

use nix::errno::Errno;

use super::{errno, parent_of, Attr, Fs, FsResult, Kind};
use crate::mount::client::ObjectClient;

/// The largest open file whose bytes an unlink (or a rename over it) copies locally so its
/// descriptors keep it; larger ones are not held up for a download.
const KEEP_OPEN_MAX: u64 = 64 << 20;

impl<C: ObjectClient> Fs<C> {
    /// The path of a name about to be made in `parent`: writable mount, free name.
    fn new_name(&self, parent: u64, name: &str) -> FsResult<String> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        match self.probe(&path) {
            Ok(_) => Err(Errno::EEXIST),
            Err(Errno::ENOENT) => Ok(path),
            Err(e) => Err(e),
        }
    }

    pub fn mkdir(&self, parent: u64, name: &str, mode: u32, uid: u32, gid: u32) -> FsResult<Attr> {
        let path = self.new_name(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::Dir,
            size: 0,
            perm: mode & 0o7777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let mut empty: &[u8] = &[];
        self.client
            .put(&format!("{path}/"), &mut empty, 0, &Self::meta_of(&attr))
            .map_err(errno)?;
        Ok(self.remember(&path, attr, true))
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> FsResult<Attr> {
        let path = self.new_name(parent, name)?;
        let attr = Attr {
            ino: 0,
            kind: Kind::Symlink,
            size: target.len() as u64,
            perm: 0o777,
            uid,
            gid,
            mtime: SystemTime::now(),
        };
        let mut body = target.as_bytes();
        self.client
            .put(&path, &mut body, target.len() as u64, &Self::meta_of(&attr))
            .map_err(errno)?;
        Ok(self.remember(&path, attr, true))
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let attr = self.cached(ino)?;
        if attr.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        let path = self.path_of(ino)?;
        self.client
            .get_range(&path, 0, attr.size.max(1), None)
            .map(|(target, _)| target)
            .map_err(errno)
    }

    /// Entries directly below `path` (first page only when `max` is small).
    fn has_children(&self, path: &str) -> FsResult<bool> {
        let dir = format!("{path}/");
        let l = self.client.list(&dir, true, None, 2).map_err(errno)?;
        let remote = l.prefixes.iter().any(|_| true) || l.objects.iter().any(|o| o.key != dir);
        if remote {
            return Ok(true);
        }
        // Files created here but not uploaded yet.
        let t = self.table.lock();
        Ok(t.nodes.values().any(|n| {
            !n.gone
                && n.staged.as_ref().is_some_and(|s| s.lock().dirty)
                && parent_of(&n.path) == path
        }))
    }

    /// Reads of these open files ask for whatever object their name holds next (after the
    /// mount itself rewrote or moved it: a copy, whose ETag may differ).
    pub(super) fn unpin(&self, inos: &[u64]) {
        let handles: Vec<_> = self.handles.lock().values().cloned().collect();
        for h in handles {
            if let super::Handle::File { ino, ra } = &*h {
                if inos.contains(ino) {
                    ra.lock().etag = None;
                }
            }
        }
    }

    fn forget_path(&self, path: &str) {
        let mut t = self.table.lock();
        if let Some(ino) = t.by_path.remove(path) {
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.gone = true;
                // Open descriptors keep the file's bytes until the last close.
                if n.open == 0 {
                    n.staged = None;
                }
            }
        }
    }

    /// Before the object at `path` is deleted or replaced: if its file is open, copy its
    /// bytes into its staging file (when not there already), so the open descriptors go on
    /// reading and writing the file as it was until the last close (POSIX), as a local
    /// filesystem keeps an unlinked inode. A copy that cannot be made is logged; the name
    /// still goes, and those descriptors then fail.
    fn keep_open_copy(&self, path: &str) {
        let open = {
            let t = self.table.lock();
            t.by_path
                .get(path)
                .and_then(|i| t.nodes.get(i).map(|n| (*i, n)))
                .filter(|(_, n)| n.open > 0 && n.attr.kind == Kind::File)
                .map(|(i, _)| i)
        };
        let Some(ino) = open else { return };
        let size = self.table.lock().nodes.get(&ino).map_or(0, |n| n.attr.size);
        if size > KEEP_OPEN_MAX {
            // Not copied (it would hold up the unlink for the whole download): its
            // descriptors fail once the object is gone.
            tracing::warn!("{path}: open file of {size} bytes removed: its descriptors lose it");
            return;
        }
        if let Err(e) = self.stage(ino, false) {
            tracing::warn!("{path}: open file's bytes not kept before it goes: {e}");
        }
    }

    pub fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let local_only = {
            let t = self.table.lock();
            t.by_path
                .get(&path)
                .and_then(|i| t.nodes.get(i))
                .is_some_and(|n| n.staged.as_ref().is_some_and(|s| s.lock().dirty))
        };
        let attr = match self.probe(&path) {
            Ok(a) => Some(a),
            Err(Errno::ENOENT) if local_only => None,
            Err(e) => return Err(e),
        };
        if attr.is_some_and(|a| a.kind == Kind::Dir) {
            return Err(Errno::EISDIR);
        }
        if attr.is_some() {
            self.keep_open_copy(&path);
            self.client.delete(&path).map_err(errno)?;
        }
        self.forget_path(&path);
        self.invalidate_usage();
        Ok(())
    }

    pub fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let path = self.child_path(parent, name)?;
        let attr = self.probe(&path)?;
        if attr.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if self.has_children(&path)? {
            return Err(Errno::ENOTEMPTY);
        }
        self.client.delete(&format!("{path}/")).map_err(errno)?;
        self.forget_path(&path);
        Ok(())
    }

    /// Rename a file (server-side copy + delete) or a directory (every key below it).
    /// Not atomic: a crash midway leaves both names, never neither.
    pub fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        noreplace: bool,
    ) -> FsResult<()> {
        self.check_writable()?;
        let from = self.child_path(parent, name)?;
        let to = self.child_path(new_parent, new_name)?;
        if from == to {
            return Ok(());
        }
        // Unsaved data goes to the store first, under the old name.
        let known = self.table.lock().by_path.get(&from).copied();
        if let Some(ino) = known {
            self.flush(ino)?;
        }
        let src = self.probe(&from)?;
        if src.kind == Kind::Dir && to.starts_with(&format!("{from}/")) {
            return Err(Errno::EINVAL);
        }
        match self.probe(&to) {
            Ok(dst) => {
                if noreplace {
                    return Err(Errno::EEXIST);
                }
                match (src.kind == Kind::Dir, dst.kind == Kind::Dir) {
                    (false, true) => return Err(Errno::EISDIR),
                    (true, false) => return Err(Errno::ENOTDIR),
                    (true, true) => {
                        if self.has_children(&to)? {
                            return Err(Errno::ENOTEMPTY);
                        }
                        self.client.delete(&format!("{to}/")).map_err(errno)?;
                    }
                    (false, false) => self.keep_open_copy(&to),
                }
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        if src.kind == Kind::Dir {
            let prefix = format!("{from}/");
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .client
                    .list(&prefix, false, after.as_deref(), 1000)
                    .map_err(errno)?;
                for o in &page.objects {
                    let rest = &o.key[prefix.len()..];
                    let dest = format!("{to}/{rest}");
                    self.client.copy(&o.key, &dest, None).map_err(errno)?;
                    self.client.delete(&o.key).map_err(errno)?;
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
        } else {
            self.client.copy(&from, &to, None).map_err(errno)?;
            self.client.delete(&from).map_err(errno)?;
        }
        // Move table entries: the node itself and, for a directory, everything below.
        let mut t = self.table.lock();
        if let Some(old) = t.by_path.remove(&to) {
            if let Some(n) = t.nodes.get_mut(&old) {
                n.gone = true;
            }
        }
        let below = format!("{from}/");
        let moved: Vec<(String, u64)> = t
            .by_path
            .iter()
            .filter(|(p, _)| **p == from || p.starts_with(&below))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let moved_inos: Vec<u64> = moved.iter().map(|(_, i)| *i).collect();
        for (p, ino) in moved {
            t.by_path.remove(&p);
            let np = format!("{to}{}", &p[from.len()..]);
            if let Some(n) = t.nodes.get_mut(&ino) {
                n.path = np.clone();
                n.fetched = Instant::now() - self.opts.attr_ttl;
            }
            t.by_path.insert(np, ino);
        }
        drop(t);
        // Reads of open files that moved follow them to their new objects (copies, whose
        // ETags may differ), never taken for replaced ones.
        self.unpin(&moved_inos);
        Ok(())
    }
}
