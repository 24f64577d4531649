//! The thin FUSE adapter: kernel requests (via `fuser`) to [`Fs`] calls and back.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::client::ObjectClient;
use super::fs::{Attr, Fs, FsResult, Kind, SetAttr, BLOCK};

pub struct FuseFs<C: ObjectClient> {
    fs: Arc<Fs<C>>,
    ttl: Duration,
    /// Files opened read-only bypass the kernel's page cache (see `init`).
    direct_reads: bool,
}

impl<C: ObjectClient> FuseFs<C> {
    pub fn new(fs: Arc<Fs<C>>) -> FuseFs<C> {
        let ttl = fs.options().attr_ttl;
        FuseFs {
            fs,
            ttl,
            direct_reads: false,
        }
    }
}

fn err(e: nix::errno::Errno) -> Errno {
    Errno::from_i32(e as i32)
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.mtime,
        mtime: a.mtime,
        ctime: a.mtime,
        crtime: a.mtime,
        kind: kind(a.kind),
        perm: a.perm as u16,
        nlink: if a.kind == Kind::Dir { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        // The preferred I/O size: stdio and cp size their buffers by it, and large reads
        // matter with direct I/O (see `init`).
        blksize: 1 << 20,
        flags: 0,
    }
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
    }
}

fn name(n: &OsStr) -> FsResult<&str> {
    n.to_str().ok_or(nix::errno::Errno::EINVAL)
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl<C: ObjectClient> fuser::Filesystem for FuseFs<C> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        // Reads already go through this process's own read-ahead windows; through the page
        // cache they would be copied once more (reply → page cache → reader). Files opened
        // read-only therefore use direct I/O (the reply is copied straight into the reader's
        // buffer) — but only where the kernel still allows shared mmaps of such files
        // (Linux ≥ 6.6), so programs that mmap files keep working.
        self.direct_reads = config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        match name(n).and_then(|n| self.fs.lookup(parent.0, n)) {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            size,
            mode,
            uid,
            gid,
            mtime: mtime.map(time),
        };
        match self.fs.setattr(ino.0, set) {
            Ok(a) => reply.attr(&self.ttl, &file_attr(&a)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = name(n).and_then(|n| {
            self.fs
                .mkdir(parent.0, n, mode & !umask, req.uid(), req.gid())
        });
        match r {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        match name(n).and_then(|n| self.fs.unlink(parent.0, n)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        match name(n).and_then(|n| self.fs.rmdir(parent.0, n)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let r = name(link_name).and_then(|n| {
            let t = target.to_str().ok_or(nix::errno::Errno::EINVAL)?;
            self.fs.symlink(parent.0, n, t, req.uid(), req.gid())
        });
        match r {
            Ok(a) => reply.entry(&self.ttl, &file_attr(&a), Generation(0)),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            return reply.error(Errno::EINVAL);
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let r = name(n).and_then(|a| {
            let b = name(newname)?;
            self.fs.rename(parent.0, a, newparent.0, b, noreplace)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY;
        match self.fs.open(ino.0, write) {
            Ok(fh) => reply.opened(
                FileHandle(fh),
                if !write && self.direct_reads {
                    FopenFlags::FOPEN_DIRECT_IO
                } else {
                    FopenFlags::empty()
                },
            ),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // Reply straight from the read-ahead window (no intermediate copy).
        let mut slot = Some(reply);
        let r = self.fs.read_with(ino.0, fh.0, offset, size, |d| {
            if let Some(reply) = slot.take() {
                reply.data(d);
            }
        });
        if let (Err(e), Some(reply)) = (r, slot.take()) {
            reply.error(err(e));
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.fs.flush(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.release(ino.0, fh.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.fs.readdir(ino.0, fh.0, offset, 256) {
            Ok(entries) => {
                for e in entries {
                    if reply.add(INodeNo(e.ino), e.offset, kind(e.kind), &e.name) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh.0);
        reply.ok();
    }

    // Extended attributes are not stored: ENOSYS tells the kernel once, and it stops asking.
    fn getxattr(&self, _req: &Request, _ino: INodeNo, _n: &OsStr, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, bfree, files, ffree) = self.fs.statfs();
        reply.statfs(
            blocks,
            bfree,
            bfree,
            files,
            ffree,
            BLOCK as u32,
            255,
            BLOCK as u32,
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let r = name(n).and_then(|n| {
            self.fs
                .create(parent.0, n, mode & !umask, req.uid(), req.gid())
        });
        match r {
            Ok((a, fh)) => reply.created(
                &self.ttl,
                &file_attr(&a),
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(err(e)),
        }
    }
}
