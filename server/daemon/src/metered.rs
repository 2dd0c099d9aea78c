//! Store requests by kind, for the metrics (`nfs4d_store_requests_total`):
//! a store that counts the calls it passes on. Exports are wrapped only
//! when metrics are served, so a server without them pays nothing.
//!
//! Kinds are the methods of [`nfs4d_store::Store`]; the object store will
//! answer most of them with one or more HTTP requests, so their rates are
//! what its bill and latency follow.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use nfs4d_store::{
    Attrs, Capabilities, Created, Entry, FileKind, FsStats, LeaseBreak, ListPos, LockFile, Name,
    Owner, RelPath, SetAttrs, Stability, Store, StoreResult, XattrSet,
};

/// The kinds of store request counted, in [`Kind`] order.
pub const KINDS: [&str; 29] = [
    "stat",
    "lookup",
    "open",
    "close",
    "read",
    "write",
    "commit",
    "create_file",
    "mkdir",
    "symlink",
    "mknod",
    "link",
    "rename",
    "remove",
    "rmdir",
    "readlink",
    "list",
    "setattr",
    "statfs",
    "sync_dir",
    "getxattr",
    "setxattr",
    "listxattr",
    "removexattr",
    "allocate",
    "deallocate",
    "seek",
    "clone_range",
    "copy_range",
];

#[derive(Clone, Copy)]
#[repr(usize)]
enum Kind {
    Stat,
    Lookup,
    Open,
    Close,
    Read,
    Write,
    Commit,
    CreateFile,
    Mkdir,
    Symlink,
    Mknod,
    Link,
    Rename,
    Remove,
    Rmdir,
    Readlink,
    List,
    Setattr,
    Statfs,
    SyncDir,
    Getxattr,
    Setxattr,
    Listxattr,
    Removexattr,
    Allocate,
    Deallocate,
    Seek,
    CloneRange,
    CopyRange,
}
const _: () = assert!(Kind::CopyRange as usize == KINDS.len() - 1);

/// Requests and failed requests per kind, over all exports.
#[derive(Debug)]
pub struct StoreCounters {
    calls: [AtomicU64; KINDS.len()],
    errors: [AtomicU64; KINDS.len()],
}

impl Default for StoreCounters {
    fn default() -> Self {
        StoreCounters {
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl StoreCounters {
    /// (kind, requests, failed requests) for kinds used at least once.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        KINDS
            .iter()
            .enumerate()
            .map(|(i, k)| {
                (
                    *k,
                    self.calls[i].load(Relaxed),
                    self.errors[i].load(Relaxed),
                )
            })
            .filter(|(_, n, _)| *n > 0)
            .collect()
    }

    fn count<T>(&self, k: Kind, r: StoreResult<T>) -> StoreResult<T> {
        self.calls[k as usize].fetch_add(1, Relaxed);
        if r.is_err() {
            self.errors[k as usize].fetch_add(1, Relaxed);
        }
        r
    }
}

/// A store that counts the requests it passes to `inner`.
pub struct Metered {
    inner: Arc<dyn Store>,
    counters: Arc<StoreCounters>,
}

impl Metered {
    /// Wraps `inner`, counting into `counters`.
    pub fn wrap(inner: Arc<dyn Store>, counters: Arc<StoreCounters>) -> Arc<dyn Store> {
        Arc::new(Metered { inner, counters })
    }
}

impl Store for Metered {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn stat(&self, path: &RelPath) -> StoreResult<Attrs> {
        self.counters.count(Kind::Stat, self.inner.stat(path))
    }
    fn lookup(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Lookup, self.inner.lookup(dir, name))
    }
    fn open(&self, path: &RelPath, write: bool) -> StoreResult<()> {
        self.counters
            .count(Kind::Open, self.inner.open(path, write))
    }
    fn close(&self, path: &RelPath) -> StoreResult<()> {
        self.counters.count(Kind::Close, self.inner.close(path))
    }
    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)> {
        self.counters
            .count(Kind::Read, self.inner.read(path, offset, len, buf))
    }
    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        self.counters
            .count(Kind::Write, self.inner.write(path, offset, data, stability))
    }
    fn write_piped(
        &self,
        path: &RelPath,
        offset: u64,
        data: &mut dyn nfs4d_store::PipedSource,
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        self.counters.count(
            Kind::Write,
            self.inner.write_piped(path, offset, data, stability),
        )
    }
    fn commit(&self, path: &RelPath) -> StoreResult<()> {
        self.counters.count(Kind::Commit, self.inner.commit(path))
    }
    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> StoreResult<Created> {
        self.counters.count(
            Kind::CreateFile,
            self.inner.create_file(dir, name, mode, owner, exclusive),
        )
    }
    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Mkdir, self.inner.mkdir(dir, name, mode, owner))
    }
    fn symlink(
        &self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
    ) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Symlink, self.inner.symlink(dir, name, target, owner))
    }
    fn mknod(
        &self,
        dir: &RelPath,
        name: &Name,
        kind: FileKind,
        mode: u32,
        rdev: (u32, u32),
        owner: Owner,
    ) -> StoreResult<Attrs> {
        self.counters.count(
            Kind::Mknod,
            self.inner.mknod(dir, name, kind, mode, rdev, owner),
        )
    }
    fn link(&self, src: &RelPath, dst_dir: &RelPath, dst_name: &Name) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Link, self.inner.link(src, dst_dir, dst_name))
    }
    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> StoreResult<()> {
        self.counters.count(
            Kind::Rename,
            self.inner.rename(src_dir, src_name, dst_dir, dst_name),
        )
    }
    fn remove(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Remove, self.inner.remove(dir, name))
    }
    fn rmdir(&self, dir: &RelPath, name: &Name) -> StoreResult<()> {
        self.counters
            .count(Kind::Rmdir, self.inner.rmdir(dir, name))
    }
    fn readlink(&self, path: &RelPath) -> StoreResult<Vec<u8>> {
        self.counters
            .count(Kind::Readlink, self.inner.readlink(path))
    }
    fn list(
        &self,
        dir: &RelPath,
        from: &ListPos,
        stat: bool,
        visit: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool> {
        self.counters
            .count(Kind::List, self.inner.list(dir, from, stat, visit))
    }
    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> StoreResult<Attrs> {
        self.counters
            .count(Kind::Setattr, self.inner.setattr(path, set))
    }
    fn statfs(&self) -> StoreResult<FsStats> {
        self.counters.count(Kind::Statfs, self.inner.statfs())
    }
    fn sync_dir(&self, dir: &RelPath) -> StoreResult<()> {
        self.counters.count(Kind::SyncDir, self.inner.sync_dir(dir))
    }
    fn getxattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<Vec<u8>> {
        self.counters
            .count(Kind::Getxattr, self.inner.getxattr(path, name))
    }
    fn setxattr(
        &self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
    ) -> StoreResult<()> {
        self.counters
            .count(Kind::Setxattr, self.inner.setxattr(path, name, value, mode))
    }
    fn listxattr(&self, path: &RelPath) -> StoreResult<Vec<Vec<u8>>> {
        self.counters
            .count(Kind::Listxattr, self.inner.listxattr(path))
    }
    fn removexattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<()> {
        self.counters
            .count(Kind::Removexattr, self.inner.removexattr(path, name))
    }
    fn allocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        self.counters
            .count(Kind::Allocate, self.inner.allocate(path, offset, len))
    }
    fn deallocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        self.counters
            .count(Kind::Deallocate, self.inner.deallocate(path, offset, len))
    }
    fn seek_data(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        self.counters
            .count(Kind::Seek, self.inner.seek_data(path, offset))
    }
    fn seek_hole(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        self.counters
            .count(Kind::Seek, self.inner.seek_hole(path, offset))
    }
    fn clone_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<()> {
        self.counters.count(
            Kind::CloneRange,
            self.inner.clone_range(src, src_off, dst, dst_off, len),
        )
    }
    fn copy_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<u64> {
        self.counters.count(
            Kind::CopyRange,
            self.inner.copy_range(src, src_off, dst, dst_off, len),
        )
    }
    // Leases and lock files are local-kernel bookkeeping, not requests to
    // the backing store: passed on uncounted.
    fn lease(&self, path: &RelPath, write: bool, tag: u64) -> StoreResult<bool> {
        self.inner.lease(path, write, tag)
    }
    fn unlease(&self, tag: u64) {
        self.inner.unlease(tag)
    }
    fn leases(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        self.inner.leases()
    }
    fn open_lock_file(
        &self,
        path: &RelPath,
        write: bool,
    ) -> StoreResult<Option<Box<dyn LockFile>>> {
        self.inner.open_lock_file(path, write)
    }
}
