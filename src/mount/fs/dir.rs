//! Directories: paged listings (a ListObjectsV2 page per readdir page, `/`-delimited) and
//! statfs from the volume quota.

use nix::errno::Errno;
use parking_lot::Mutex;

use super::{errno, parent_of, DirEntry, DirPage, Fs, FsResult, Handle, Kind, BLOCK, ROOT};
use crate::mount::client::ObjectClient;

impl<C: ObjectClient> Fs<C> {
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let attr = self.cached(ino)?;
        if attr.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        Ok(self.new_handle(Handle::Dir {
            ino,
            page: Mutex::new(DirPage::default()),
        }))
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }

    /// Entries from `offset` on (0 = start), at most `max` of them. Offsets 1 and 2 are `.`
    /// and `..`; the listing is fetched a page at a time, so huge directories stream.
    pub fn readdir(&self, ino: u64, fh: u64, offset: u64, max: usize) -> FsResult<Vec<DirEntry>> {
        const PAGE: usize = 1000;
        let h = self.handle(fh)?;
        let Handle::Dir { ino: dino, page } = &*h else {
            return Err(Errno::EBADF);
        };
        if *dino != ino {
            return Err(Errno::EBADF);
        }
        let path = self.path_of(ino)?;
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut out = Vec::new();
        let mut off = offset;
        if off == 0 {
            out.push(DirEntry {
                ino,
                offset: 1,
                kind: Kind::Dir,
                name: ".".into(),
            });
            off = 1;
        }
        if off == 1 {
            let parent = {
                let t = self.table.lock();
                t.by_path.get(parent_of(&path)).copied().unwrap_or(ROOT)
            };
            out.push(DirEntry {
                ino: parent,
                offset: 2,
                kind: Kind::Dir,
                name: "..".into(),
            });
            off = 2;
        }
        let mut p = page.lock();
        // `off` - 2 is the index (in the whole listing) of the next entry to return.
        if !p.started || off - 2 < p.base {
            // (Re)start the listing: first call, or a rewind.
            *p = DirPage::default();
            self.fill_page(&prefix, &mut p, None, PAGE)?;
            p.started = true;
        }
        while out.len() < max {
            let idx = off - 2;
            if idx < p.base + p.entries.len() as u64 {
                let (name, kind) = p.entries[(idx - p.base) as usize].clone();
                let ino = self.entry_ino(&prefix, &name);
                out.push(DirEntry {
                    ino,
                    offset: off + 1,
                    kind,
                    name,
                });
                off += 1;
                continue;
            }
            let Some(after) = p.next.clone() else { break };
            p.base += p.entries.len() as u64;
            self.fill_page(&prefix, &mut p, Some(after), PAGE)?;
            if p.entries.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    /// The inode of a listed entry if the kernel knows it, else a fresh one.
    fn entry_ino(&self, prefix: &str, name: &str) -> u64 {
        let path = format!("{prefix}{name}");
        let t = self.table.lock();
        if let Some(&ino) = t.by_path.get(&path) {
            return ino;
        }
        drop(t);
        // Not in the table: readdir inode numbers are hints; lookup assigns the real one.
        // Use a stable hash-based number well above the table's range.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&path, &mut h);
        std::hash::Hasher::finish(&h) | (1 << 63)
    }

    fn fill_page(
        &self,
        prefix: &str,
        p: &mut DirPage,
        after: Option<String>,
        max: usize,
    ) -> FsResult<()> {
        let l = self
            .client
            .list(prefix, true, after.as_deref(), max)
            .map_err(errno)?;
        let mut entries: Vec<(String, Kind)> = Vec::new();
        for o in &l.objects {
            let name = &o.key[prefix.len().min(o.key.len())..];
            // Empty: this directory's own marker. `.` and `..`: keys no file can be named
            // (`dir/.` put by an S3 client), never listed as a second `.` or `..`.
            if matches!(name, "" | "." | "..") {
                continue;
            }
            entries.push((name.to_string(), Kind::File));
        }
        for d in &l.prefixes {
            let name = d[prefix.len().min(d.len())..].trim_end_matches('/');
            if matches!(name, "" | "." | "..") {
                continue;
            }
            // A file and a directory of the same name: the file wins (as lookup does).
            if !entries.iter().any(|(n, _)| n == name) {
                entries.push((name.to_string(), Kind::Dir));
            }
        }
        if after.is_none() {
            // Files created here and not uploaded yet.
            let t = self.table.lock();
            let dir = prefix.trim_end_matches('/');
            for n in t.nodes.values() {
                if !n.gone
                    && parent_of(&n.path) == dir
                    && !n.path.is_empty()
                    && n.staged.as_ref().is_some_and(|s| s.lock().dirty)
                {
                    let name = &n.path[prefix.len()..];
                    if !entries.iter().any(|(e, _)| e == name) {
                        entries.push((name.to_string(), n.attr.kind));
                    }
                }
            }
        }
        entries.sort();
        // Symlinks show as files in listings; lookup tells the truth.
        p.entries = entries;
        p.next = l.next;
        Ok(())
    }

    /// (blocks, free blocks, files, free files) in [`BLOCK`] units, from the volume quota.
    pub fn statfs(&self) -> (u64, u64, u64, u64) {
        const NO_QUOTA: u64 = 1 << 50; // 1 PiB
        match self.usage() {
            Some(u) if u.quota > 0 => {
                let total = u.quota / BLOCK;
                let used = self.projected_use(&u).div_ceil(BLOCK);
                (
                    total,
                    total.saturating_sub(used),
                    u.objects + 1_000_000,
                    1_000_000,
                )
            }
            Some(u) => {
                let total = NO_QUOTA / BLOCK;
                (
                    total,
                    total - u.used.div_ceil(BLOCK).min(total),
                    u.objects + 1_000_000,
                    1_000_000,
                )
            }
            None => (NO_QUOTA / BLOCK, NO_QUOTA / BLOCK, 1_000_000, 1_000_000),
        }
    }
}
