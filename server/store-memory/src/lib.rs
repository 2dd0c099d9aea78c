//! An in-memory [`Store`], for fast deterministic tests of the server.
//!
//! By default it behaves like a POSIX directory ([`DEFAULT_CAPABILITIES`]):
//! hard links, symlinks, special files (as metadata), atomic renames of
//! anything, user xattrs, sparse files, server-side copy, stable identities
//! with object numbers reused as inode numbers are (the incarnation tells
//! the objects apart), offset listing positions. It can also be built with
//! fewer capabilities, so the server's "the store cannot do X" paths can
//! be tested: a disabled feature then answers as the conformance suite
//! requires (`Unsupported`, `CrossDevice` past a directory-rename limit,
//! key positions, identities derived from paths, …).
//!
//! Time comes from an injected [`Clock`]; the store never reads the wall
//! clock. Memory is bounded by [`Limits`]: past the byte or object budget
//! calls fail with [`StoreError::NoSpace`].
//!
//! Writes are in place, so every write is as durable as a memory store
//! gets: a write reports the stability it was asked for, COMMIT checks its
//! target and does nothing more. Reads do not update atime (as with
//! `noatime`).

#![forbid(unsafe_code)]

mod clock;
mod data;
mod fileops;
mod leases;
mod listing;
mod locks;
mod namespace;
mod tree;
mod xattr;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nfs4d_store::{
    Attrs, Capabilities, Created, DirRename, Entry, FileKind, FsStats, LeaseBreak, ListPos,
    LockFile, Name, Owner, Positions, RelPath, SetAttrs, Stability, Store, StoreError, StoreResult,
    Timespec, XattrSet, NAME_MAX,
};

pub use clock::{Clock, TickClock};
pub use data::{CHUNK, MAX_FILE_SIZE};
pub use fileops::MAX_READ;
pub use leases::MAX_LEASES;
pub use listing::LIST_BATCH;
pub use locks::MAX_LOCKS;
pub use namespace::SYMLINK_MAX;
pub use xattr::MAX_XATTRS;

use leases::LeaseTable;
use locks::LockTable;
use tree::Tree;

/// What the memory store does by default: what a local POSIX directory
/// offers, less what needs local processes (locks they see, leases they
/// break) and shared extents.
pub const DEFAULT_CAPABILITIES: Capabilities = Capabilities {
    hard_links: true,
    symlinks: true,
    special_files: true,
    atomic_rename: true,
    dir_rename: DirRename::Any,
    partial_writes: true,
    sparse: true,
    xattrs: true,
    local_locks: false,
    leases: false,
    stable_identity: true,
    copy: true,
    clone: false,
    ownership: true,
    positions: Positions::Offsets,
};

/// What an object store keyed by path can offer: no links or special
/// files, renames in two steps and of small directories only, whole-object
/// writes, no xattrs, identities from paths, key positions.
pub const OBJECT_STORE_CAPABILITIES: Capabilities = Capabilities {
    hard_links: false,
    symlinks: false,
    special_files: false,
    atomic_rename: false,
    dir_rename: DirRename::UpTo(8),
    partial_writes: false,
    sparse: false,
    xattrs: false,
    local_locks: false,
    leases: false,
    stable_identity: false,
    copy: false,
    clone: false,
    ownership: false,
    positions: Positions::Keys,
};

/// The budgets of one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file data (in [`CHUNK`]s), symlink targets and xattrs.
    pub max_bytes: u64,
    /// Objects, the root included.
    pub max_objects: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_bytes: 256 << 20,
        max_objects: 100_000,
    };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// How to build a [`MemStore`].
#[derive(Clone)]
pub struct MemConfig {
    pub capabilities: Capabilities,
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
}

impl Default for MemConfig {
    fn default() -> MemConfig {
        MemConfig {
            capabilities: DEFAULT_CAPABILITIES,
            limits: Limits::DEFAULT,
            clock: Arc::new(TickClock::default()),
        }
    }
}

/// What a store holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub objects: u64,
}

/// The in-memory store.
pub struct MemStore {
    caps: Capabilities,
    tree: Mutex<Tree>,
    clock: Arc<dyn Clock>,
    locks: Arc<LockTable>,
    leases: LeaseTable,
    /// Calls of [`Store::stat`], for tests of what the server asks.
    stats: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("capabilities", &self.capabilities())
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

impl Default for MemStore {
    fn default() -> MemStore {
        MemStore::new()
    }
}

impl MemStore {
    /// An empty store with [`DEFAULT_CAPABILITIES`], [`Limits::DEFAULT`]
    /// and a [`TickClock`].
    pub fn new() -> MemStore {
        MemStore::build(MemConfig::default())
    }

    /// An empty store with `capabilities`, default limits and clock.
    pub fn with_capabilities(capabilities: Capabilities) -> StoreResult<MemStore> {
        MemStore::with_config(MemConfig {
            capabilities,
            ..MemConfig::default()
        })
    }

    /// An empty store as configured. Refuses configurations that could
    /// not keep the store's promises: hard links need stable identities
    /// (every name of an object reports one `fileid`), and the root is an
    /// object of the budget.
    pub fn with_config(config: MemConfig) -> StoreResult<MemStore> {
        let caps = config.capabilities;
        if caps.hard_links && !caps.stable_identity {
            return Err(StoreError::Setup(
                "hard links need stable identities: all names of an object share its fileid".into(),
            ));
        }
        if config.limits.max_objects == 0 {
            return Err(StoreError::Setup(
                "the object budget must hold the root".into(),
            ));
        }
        Ok(MemStore::build(config))
    }

    fn build(config: MemConfig) -> MemStore {
        let now = config.clock.now();
        MemStore {
            caps: config.capabilities,
            tree: Mutex::new(Tree::new(config.capabilities, config.limits, now)),
            clock: config.clock,
            locks: Arc::new(LockTable::default()),
            leases: LeaseTable::default(),
            stats: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times [`Store::stat`] was called.
    pub fn stat_calls(&self) -> u64 {
        self.stats.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The bytes and objects the store holds.
    pub fn usage(&self) -> Usage {
        let t = self.tree();
        Usage {
            bytes: t.bytes_used(),
            objects: t.objects_used(),
        }
    }

    /// Plays a local process opening the file at `path` (for writing when
    /// `write`): conflicting leases are broken ([`LeaseBreak::Opened`]).
    pub fn simulate_local_open(&self, path: &RelPath, write: bool) -> StoreResult<()> {
        let key = self.file_key(path)?;
        self.leases.opened(key, write);
        Ok(())
    }

    /// Plays a local process renaming, linking or changing the attributes
    /// of the object at `path`: leases on it are broken
    /// ([`LeaseBreak::Changed`]).
    pub fn simulate_local_change(&self, path: &RelPath) -> StoreResult<()> {
        let t = self.tree();
        let key = t.key(t.resolve(path)?)?;
        drop(t);
        self.leases.changed(key);
        Ok(())
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The tree for a change, and the time of the change: read under the
    /// lock, so changes are stamped in the order they are made.
    fn change(&self) -> (MutexGuard<'_, Tree>, Timespec) {
        let t = self.tree();
        let now = self.clock.now();
        (t, now)
    }

    /// Number and incarnation of the regular file at `path`.
    fn file_key(&self, path: &RelPath) -> StoreResult<(u64, u64)> {
        let t = self.tree();
        t.key(t.regular(path)?)
    }
}

/// Logs a refused request; returns its error.
pub(crate) fn refused(e: StoreError, why: &'static str) -> StoreError {
    tracing::debug!(error = %e, "memory store: {why}");
    e
}

impl Store for MemStore {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn stat(&self, path: &RelPath) -> StoreResult<Attrs> {
        self.stats
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = self.tree();
        t.attrs(t.resolve(path)?, path)
    }

    fn lookup(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        let t = self.tree();
        let num = t.child(t.resolve_dir(dir)?, name)?;
        t.attrs(num, &dir.join(name))
    }

    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)> {
        self.tree().read(path, offset, len, buf)
    }

    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        let (mut t, now) = self.change();
        let n = t.write(path, offset, data, now)?;
        Ok((n, stability))
    }

    fn commit(&self, path: &RelPath) -> StoreResult<()> {
        self.tree().commit(path)
    }

    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> StoreResult<Created> {
        let (mut t, now) = self.change();
        let (num, created) = t.create_file(dir, name, mode, owner, exclusive, now)?;
        Ok(Created {
            attrs: t.attrs(num, &dir.join(name))?,
            created,
            // The tree is in hand: the directory's attributes cost nothing.
            dir_after: if created {
                Some(t.attrs(t.resolve(dir)?, dir)?)
            } else {
                None
            },
        })
    }

    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> StoreResult<Attrs> {
        let (mut t, now) = self.change();
        let num = t.mkdir(dir, name, mode, owner, now)?;
        t.attrs(num, &dir.join(name))
    }

    fn symlink(
        &self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
    ) -> StoreResult<Attrs> {
        let (mut t, now) = self.change();
        let num = t.symlink(dir, name, target, owner, now)?;
        t.attrs(num, &dir.join(name))
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
        let (mut t, now) = self.change();
        let num = t.mknod(dir, name, kind, mode, rdev, owner, now)?;
        t.attrs(num, &dir.join(name))
    }

    fn link(&self, src: &RelPath, dst_dir: &RelPath, dst_name: &Name) -> StoreResult<Attrs> {
        let (mut t, now) = self.change();
        let num = t.link(src, dst_dir, dst_name, now)?;
        t.attrs(num, &dst_dir.join(dst_name))
    }

    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> StoreResult<()> {
        let two_step = !self.caps.atomic_rename;
        let (mut t, now) = self.change();
        let pending = t.rename(src_dir, src_name, dst_dir, dst_name, two_step, now)?;
        drop(t);
        // Between the two steps both names are visible, as between an
        // object store's copy and delete.
        match pending {
            Some(p) => {
                let (mut t, now) = self.change();
                t.finish_rename(p, now)
            }
            None => Ok(()),
        }
    }

    fn remove(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        let (mut t, now) = self.change();
        let before = t.attrs(t.child(t.resolve_dir(dir)?, name)?, &dir.join(name))?;
        t.remove(dir, name, now)?;
        Ok(before)
    }

    fn rmdir(&self, dir: &RelPath, name: &Name) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.rmdir(dir, name, now)
    }

    fn readlink(&self, path: &RelPath) -> StoreResult<Vec<u8>> {
        self.tree().readlink(path)
    }

    fn list(
        &self,
        dir: &RelPath,
        from: &ListPos,
        stat: bool,
        visit: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool> {
        let key = {
            let t = self.tree();
            t.key(t.resolve_dir(dir)?)?
        };
        let mut pos = from.clone();
        loop {
            let (batch, end) = self.tree().list_batch(key, dir, &pos, stat, LIST_BATCH)?;
            for e in batch {
                let entry = Entry {
                    name: &e.name,
                    next: e.next.clone(),
                    object: e.object,
                    kind: e.kind,
                };
                if !visit(entry, e.attrs) {
                    return Ok(false);
                }
                pos = e.next;
            }
            if end {
                return Ok(true);
            }
        }
    }

    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> StoreResult<Attrs> {
        let (mut t, now) = self.change();
        let num = t.setattr(path, set, now)?;
        t.attrs(num, path)
    }

    fn statfs(&self) -> StoreResult<FsStats> {
        let t = self.tree();
        let limits = t.limits();
        let free_bytes = limits.max_bytes.saturating_sub(t.bytes_used());
        let free_files = limits.max_objects.saturating_sub(t.objects_used());
        Ok(FsStats {
            total_bytes: limits.max_bytes,
            free_bytes,
            avail_bytes: free_bytes,
            total_files: limits.max_objects,
            free_files,
            avail_files: free_files,
            name_max: NAME_MAX as u32,
        })
    }

    fn getxattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<Vec<u8>> {
        self.tree().getxattr(path, name)
    }

    fn setxattr(
        &self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
    ) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.setxattr(path, name, value, mode, now)
    }

    fn listxattr(&self, path: &RelPath) -> StoreResult<Vec<Vec<u8>>> {
        self.tree().listxattr(path)
    }

    fn removexattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.removexattr(path, name, now)
    }

    fn allocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.allocate(path, offset, len, now)
    }

    fn deallocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.deallocate(path, offset, len, now)
    }

    fn seek_data(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        self.tree().seek(path, offset, true)
    }

    fn seek_hole(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        self.tree().seek(path, offset, false)
    }

    fn clone_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<()> {
        let (mut t, now) = self.change();
        t.clone_range(src, src_off, dst, dst_off, len, now)
    }

    fn copy_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<u64> {
        let (mut t, now) = self.change();
        t.copy_range(src, src_off, dst, dst_off, len, now)
    }

    fn lease(&self, path: &RelPath, write: bool, tag: u64) -> StoreResult<bool> {
        if !self.caps.leases {
            return Ok(true);
        }
        let key = match self.file_key(path) {
            Ok(k) => k,
            // Only regular files are delegated.
            Err(StoreError::IsDir | StoreError::Symlink | StoreError::WrongType) => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        Ok(self.leases.take(tag, key, write))
    }

    fn unlease(&self, tag: u64) {
        self.leases.release(tag);
    }

    fn leases(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        self.leases.list()
    }

    fn open_lock_file(
        &self,
        path: &RelPath,
        write: bool,
    ) -> StoreResult<Option<Box<dyn LockFile>>> {
        if !self.caps.local_locks {
            return Ok(None);
        }
        let key = self.file_key(path)?;
        Ok(Some(Box::new(self.locks.open(key, write))))
    }
}
