//! [`LocalStore`]: exports a local directory tree.
//!
//! # Confinement
//! Every path is resolved relative to an `O_PATH` fd of the export root with
//! `openat2(2)` and `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV`. The kernel enforces, atomically
//! with the lookup, that resolution never leaves the root, never follows a
//! symlink (→ [`StoreError::Symlink`]) and never crosses a mount
//! (→ [`StoreError::CrossDevice`]). A local process swapping a directory
//! for a symlink therefore cannot redirect us outside, whatever the timing.
//!
//! Operations on the final component use the `*at` syscalls on the parent fd
//! with "don't follow" semantics (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`,
//! `unlinkat`, `renameat`, `linkat` without `AT_SYMLINK_FOLLOW`, …): a final
//! symlink is operated on itself or refused, never followed. Names never
//! contain `/`, so a final-component call cannot walk anywhere.
//!
//! Residual, documented races (none leaves the export): an object swapped at
//! the same name between two syscalls of one operation may be the one the
//! second syscall acts on (e.g. `remove` returns the attributes of the object
//! it saw, and the chown after a create applies to whatever is at the name).
//! A regular file swapped for a device node between `statx` and `open` may
//! cause one `open(O_NONBLOCK|O_NOCTTY)`/`close` of that node (only root can
//! create device nodes); its kind is then checked and nothing is read or written.
//!
//! # Limitations
//! - Relative paths longer than `PATH_MAX` (4096 bytes) fail with
//!   [`StoreError::NameTooLong`] (a single `openat2` resolves them).
//! - Mount points inside the export are not crossed.
//! - Readdir cookies are only as stable as the filesystem's `d_off`: ext4
//!   (64-bit htree hashes; collisions possible but vanishingly rare), xfs and
//!   tmpfs ≥ 6.6 keep them valid across creates/deletes; tmpfs before 6.6
//!   uses positional offsets, so resuming after a delete may skip or repeat.
//! - On filesystems without birth times, every `stat` of a regular file or
//!   directory costs an extra `open` for `FS_IOC_GETVERSION`.
//! - A cached fd keeps the space of a file unlinked by *another* local
//!   process allocated until the entry is evicted (our own `remove`/`rename`
//!   drop it at once).
//! - Hard links made locally to files outside the export make those files
//!   reachable; that is the administrator's doing, as with any NFS server.

use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions, Permissions};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nfs4d_store::{
    Attrs, Capabilities, Created, Entry, FileKind, FsStats, Identity, LeaseBreak, ListPos,
    LockFile, Name, Owner, PipedData, PipedSource, RelPath, SetAttrs, SetTime, Stability, Store,
    StoreError, StoreResult, Timespec, XattrSet, XATTR_SIZE_MAX,
};

use crate::attrcache::{AttrCache, Session};
use crate::dircache::{self, DirCache, DirStamp, Listing};
use crate::error::{OsError, OsResult};
use crate::fdcache::FdCache;
use crate::groupsync::GroupSync;
use crate::lease::{LeaseTable, OwnChange};
use crate::pipes::Pipes;
use crate::posix_locks::PosixLockFile;
use crate::sys;
use crate::{user_xattr_name, GenSource, XATTR_USER_PREFIX};

/// Default number of cached open regular-file descriptors.
pub const DEFAULT_FD_CACHE: usize = 1024;

/// Largest read served in one call; the server's `maxread` is far below. A
/// capped read simply returns fewer bytes with `eof == false`.
const MAX_READ: usize = 16 << 20;

/// Largest READ served from a pipe: the size of each pipe, and the largest
/// READ a client is offered (1 MiB). A pipe this size is what an
/// unprivileged process may have by default (`/proc/sys/fs/pipe-max-size`).
const MAX_PIPED_READ: usize = 1 << 20;
const _: () = assert!(MAX_PIPED_READ <= MAX_READ);

/// Bytes of `getdents64(2)` output fetched per syscall.
const DIRENT_BUF: usize = 32 << 10;

/// How often an operation re-resolves when the object changed under it.
const RACE_RETRIES: usize = 3;

/// A [`Store`] exporting a directory tree of the local file system (see
/// the module documentation for confinement and limits).
pub struct LocalStore {
    /// `O_PATH | O_DIRECTORY` fd of the export root; all resolution starts here.
    root: OwnedFd,
    cache: FdCache,
    /// File leases standing for delegations (`lease.rs`).
    leases: LeaseTable,
    gen_source: GenSource,
    /// Cleared once `FS_IOC_GETVERSION` proves unsupported (only consulted
    /// when the filesystem does not report birth times).
    getversion_ok: AtomicBool,
    /// Directory fsyncs shared by concurrent namespace changes.
    dir_syncs: GroupSync,
    /// Listings of recently read directories.
    dir_cache: DirCache,
    /// READDIR attributes of their entries, while inotify vouches for them.
    attr_cache: AttrCache,
    /// Pipes for READs served with splice (`Store::read_piped`).
    pipes: Pipes,
    /// Large writes to one file take turns here (see [`LARGE_WRITE`]).
    writers: WriteTurns,
}

/// Writes of at least this many bytes to one file wait for each other in
/// user space. The kernel serializes writes to a file on its inode lock,
/// and a writer that finds it taken spins while the holder runs: with a
/// 1 MiB copy under the lock, that spinning took 12 % of the machine's
/// samples in a streaming write (`rwsem_spin_on_owner`,
/// `rwsem_down_write_slowpath`; docs/performance.md). A mutex here sleeps
/// instead, leaving the core to the copy and the network. Smaller writes
/// hold the inode lock too briefly for that to matter and go straight on.
const LARGE_WRITE: usize = 64 * 1024;

/// Stripes of [`WriteTurns`]: files whose identities share a stripe take
/// turns too, which is rare at this many and costs only that overlap.
const WRITE_STRIPES: usize = 64;

struct WriteTurns([std::sync::Mutex<()>; WRITE_STRIPES]);

impl Default for WriteTurns {
    fn default() -> Self {
        WriteTurns(std::array::from_fn(|_| std::sync::Mutex::new(())))
    }
}

impl WriteTurns {
    fn take(&self, id: Identity) -> std::sync::MutexGuard<'_, ()> {
        let h = (id.space ^ id.object.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let stripe = (h >> 58) as usize % WRITE_STRIPES;
        // Guards no data: a panic under it leaves nothing inconsistent.
        self.0[stripe]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Marks directory listings read through a path as stale when dropped,
/// i.e. once the namespace change it guards has been made (or failed).
struct Changing<'a> {
    cache: &'a DirCache,
    path_hash: u64,
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.cache.epochs.bump(self.path_hash);
    }
}

/// A directory fd: the root (borrowed) or one opened for this operation.
enum Dir<'a> {
    Root(BorrowedFd<'a>),
    Sub(OwnedFd),
}

impl Dir<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Sub(fd) => fd.as_fd(),
        }
    }
}

/// Where to get the inode generation from, if needed.
enum GenFrom<'a> {
    /// An fd open on the object itself (not `O_PATH`).
    Fd(BorrowedFd<'a>),
    /// The object `name` in directory `dir` (opened on demand).
    At(BorrowedFd<'a>, &'a CStr),
}

/// Runs `read`, a read of the `len` bytes at `offset` of `file`, as a wait
/// that may last (nfs4d_blocking) unless the page cache holds them all:
/// a request served from memory keeps counting as one using the CPU.
fn reading<R>(file: BorrowedFd<'_>, offset: u64, len: usize, read: impl FnOnce() -> R) -> R {
    if sys::cached(file, offset, len) {
        read()
    } else {
        nfs4d_blocking::region(read)
    }
}

fn cstring(bytes: &[u8]) -> OsResult<CString> {
    CString::new(bytes).map_err(|_| OsError::Invalid)
}

/// The path as given to `openat2`; the root is `.`.
fn path_cstring(path: &RelPath) -> OsResult<CString> {
    if path.is_root() {
        Ok(CString::from(c"."))
    } else {
        cstring(&path.to_bytes())
    }
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn check_mode(mode: u32) -> OsResult<()> {
    if mode & !0o7777 != 0 {
        return Err(OsError::Invalid);
    }
    Ok(())
}

fn kind_of(mode: u32) -> OsResult<FileKind> {
    Ok(match mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::Regular,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        libc::S_IFBLK => FileKind::BlockDev,
        libc::S_IFCHR => FileKind::CharDev,
        libc::S_IFIFO => FileKind::Fifo,
        libc::S_IFSOCK => FileKind::Socket,
        _ => return Err(OsError::Io(libc::EIO)),
    })
}

/// The error for "a regular file was required, this is a `kind`".
fn not_regular(kind: FileKind) -> OsError {
    match kind {
        FileKind::Directory => OsError::IsDir,
        FileKind::Symlink => OsError::Symlink,
        _ => OsError::WrongType,
    }
}

/// Whether a read of `n` bytes at `offset` of `file` reached its end, by
/// the file's size after the read.
fn reached_eof(file: &File, offset: u64, n: usize) -> OsResult<bool> {
    Ok(offset.saturating_add(n as u64) >= file.metadata()?.len())
}

fn ts(t: &libc::statx_timestamp) -> Timespec {
    Timespec {
        sec: t.tv_sec,
        nsec: t.tv_nsec,
    }
}

// --- readdir cookies --------------------------------------------------------
//
// Cookies are the `d_off` values getdents64(2) reports (the position after an
// entry, accepted by lseek(2) to resume there). ext4 (htree hash positions),
// xfs and tmpfs (≥ 6.6, stable per-directory offsets) keep these valid across
// calls and across unrelated creates/deletes, which is what NFS readdir
// resumption needs (POSIX seekdir(3) only promises this for the same open).
//
// RFC 8881 §18.23.3 reserves cookies 0 (start), 1 and 2, but `d_off` may in
// principle be any non-negative `off_t`. We therefore swap the three
// positions {0, 1, 2} with {2⁶³, 2⁶³+1, 2⁶³+2} and leave every other value
// alone. The swap is an involution, so it is its own inverse and bijective on
// all of u64; realistic positions (non-negative `off_t`, including ext4's
// end-of-directory marker 2⁶³−1) stay unchanged and below 2⁶³, so clients
// that treat cookies as signed see nothing odd. Only the (invalid) negative
// positions −2⁶³…−2⁶³+2 would map onto the reserved values; they are rejected.

const COOKIE_SWAP: u64 = 1 << 63;

fn swap_reserved(x: u64) -> u64 {
    if x & !COOKIE_SWAP < 3 {
        x ^ COOKIE_SWAP
    } else {
        x
    }
}

fn offset_to_cookie(d_off: i64) -> Option<u64> {
    let c = swap_reserved(d_off as u64);
    (c >= 3).then_some(c)
}

/// The cookie a listing resumes from: 0 for the start, else an offset this
/// store handed out (never 0, 1 or 2). Keys are another kind of store's.
fn position_cookie(from: &ListPos) -> OsResult<u64> {
    match from {
        ListPos::Start => Ok(0),
        ListPos::Offset(c) if *c > 2 => Ok(*c),
        ListPos::Offset(_) | ListPos::Key(_) => Err(OsError::BadCookie),
    }
}

/// `None` means "start of directory".
fn cookie_to_offset(cookie: u64) -> OsResult<Option<i64>> {
    match cookie {
        0 => Ok(None),
        1 | 2 => Err(OsError::BadCookie),
        c => Ok(Some(swap_reserved(c) as i64)),
    }
}

/// One record of getdents64(2) output (`struct linux_dirent64`).
struct RawDirent<'a> {
    ino: u64,
    off: i64,
    dtype: u8,
    name: &'a [u8],
}

/// Parses the record at the start of `buf`; returns it and its length.
fn parse_dirent(buf: &[u8]) -> Option<(RawDirent<'_>, usize)> {
    // u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[];
    const NAME_AT: usize = 19;
    let ino = u64::from_ne_bytes(buf.get(0..8)?.try_into().ok()?);
    let off = i64::from_ne_bytes(buf.get(8..16)?.try_into().ok()?);
    let reclen = usize::from(u16::from_ne_bytes(buf.get(16..18)?.try_into().ok()?));
    let dtype = *buf.get(18)?;
    let name_field = buf.get(NAME_AT..reclen)?;
    let len = name_field.iter().position(|&b| b == 0)?;
    let name = &name_field[..len];
    Some((
        RawDirent {
            ino,
            off,
            dtype,
            name,
        },
        reclen,
    ))
}

/// A directory entry as read from the kernel or a cached listing.
#[derive(Debug, Clone, Copy)]
struct Dirent<'a> {
    name: &'a [u8],
    /// The cookie after this entry.
    cookie: u64,
    ino: u64,
    kind: FileKind,
}

impl<'a> Dirent<'a> {
    /// The entry as [`Store::list`] passes it on.
    fn entry(self) -> Entry<'a> {
        Entry {
            name: self.name,
            next: ListPos::Offset(self.cookie),
            object: self.ino,
            kind: self.kind,
        }
    }
}

fn dtype_kind(dtype: u8) -> Option<FileKind> {
    Some(match dtype {
        libc::DT_REG => FileKind::Regular,
        libc::DT_DIR => FileKind::Directory,
        libc::DT_LNK => FileKind::Symlink,
        libc::DT_BLK => FileKind::BlockDev,
        libc::DT_CHR => FileKind::CharDev,
        libc::DT_FIFO => FileKind::Fifo,
        libc::DT_SOCK => FileKind::Socket,
        _ => return None, // DT_UNKNOWN: the filesystem doesn't fill d_type
    })
}

/// What a cached listing is validated against (see dircache.rs).
fn dir_stamp(st: &libc::statx) -> DirStamp {
    DirStamp {
        mtime: ts(&st.stx_mtime),
        ctime: ts(&st.stx_ctime),
        size: st.stx_size,
        nlink: st.stx_nlink,
    }
}

impl LocalStore {
    /// Pipes of piped READs not yet released (for tests).
    #[cfg(test)]
    pub(crate) fn pipes_in_use(&self) -> usize {
        self.pipes.in_use()
    }

    /// Exports the directory `root` with the default fd cache size.
    pub fn open(root: &Path) -> StoreResult<LocalStore> {
        LocalStore::with_fd_cache(root, DEFAULT_FD_CACHE)
    }

    /// Exports `root`, caching up to `capacity` open file descriptors
    /// (0 disables the cache). Fails with [`StoreError::Setup`] when the
    /// root cannot be opened or the kernel cannot confine paths to it.
    pub fn with_fd_cache(root: &Path, capacity: usize) -> StoreResult<LocalStore> {
        // The root path itself is trusted configuration and may contain
        // symlinks; everything below it is confined.
        let root_file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(root)
            .map_err(|e| {
                StoreError::Setup(format!("cannot open export root {}: {e}", root.display()))
            })?;
        let root_fd = OwnedFd::from(root_file);

        // Confinement depends on openat2(2) (Linux ≥ 5.6); refuse to run
        // without it rather than fall back to racy userspace resolution.
        if let Err(e) = sys::openat2(root_fd.as_fd(), c".", libc::O_PATH | libc::O_DIRECTORY, 0) {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let why = match errno_of(&e) {
                libc::ENOSYS => "the kernel lacks openat2(2) (Linux >= 5.6 required)",
                libc::EINVAL | libc::E2BIG => "the kernel rejects openat2 RESOLVE_* flags",
                libc::EPERM => "openat2(2) is blocked (seccomp policy?)",
                _ => "openat2(2) failed on the export root",
            };
            return Err(StoreError::Setup(format!(
                "{why}; kernel {}: {e}",
                release.trim()
            )));
        }

        let mut store = LocalStore {
            root: root_fd,
            cache: FdCache::new(capacity),
            leases: Default::default(),
            gen_source: GenSource::None,
            getversion_ok: AtomicBool::new(true),
            dir_syncs: GroupSync::default(),
            dir_cache: DirCache::default(),
            attr_cache: AttrCache::default(),
            pipes: Pipes::new(MAX_PIPED_READ),
            writers: WriteTurns::default(),
        };
        store.gen_source = store.probe_gen_source()?;
        if store.gen_source == GenSource::None {
            tracing::warn!(
                root = %root.display(),
                "filesystem reports neither birth time nor inode generation: \
                 a file deleted and recreated under the same inode number \
                 will look like the same object"
            );
        }
        Ok(store)
    }

    /// Where [`Identity::incarnation`] comes from on this export.
    pub fn gen_source(&self) -> GenSource {
        self.gen_source
    }

    fn probe_gen_source(&self) -> OsResult<GenSource> {
        let st = sys::fstatx(self.root.as_fd())?;
        if st.stx_mask & libc::STATX_BTIME != 0 {
            return Ok(GenSource::BirthTime);
        }
        let dir = sys::openat2(
            self.root.as_fd(),
            c".",
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        Ok(match sys::fs_ioc_getversion(dir.as_fd()) {
            Ok(_) => GenSource::InodeGeneration,
            Err(_) => {
                self.getversion_ok.store(false, Ordering::Relaxed);
                GenSource::None
            }
        })
    }

    // --- resolution ---------------------------------------------------------

    /// `O_PATH` fd of directory `path` (the root fd itself for the root).
    fn dir(&self, path: &RelPath) -> OsResult<Dir<'_>> {
        if path.is_root() {
            return Ok(Dir::Root(self.root.as_fd()));
        }
        let fd = sys::openat2(
            self.root.as_fd(),
            &path_cstring(path)?,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )?;
        Ok(Dir::Sub(fd))
    }

    /// A readable fd of directory `path` (for getdents64 and fsync).
    fn open_dir_readable(&self, path: &RelPath) -> OsResult<File> {
        let fd = sys::openat2(
            self.root.as_fd(),
            &path_cstring(path)?,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )?;
        Ok(File::from(fd))
    }

    /// `(parent dir fd, final name)`; the root is `(root, ".")`, which every
    /// `*at` call resolves to the root directory itself.
    fn locate(&self, path: &RelPath) -> OsResult<(Dir<'_>, CString)> {
        match path.split_last() {
            None => Ok((Dir::Root(self.root.as_fd()), CString::from(c"."))),
            Some((parent, name)) => Ok((self.dir(&parent)?, cstring(name.as_bytes())?)),
        }
    }

    // --- attributes ---------------------------------------------------------

    /// lstat of `dir/name`.
    fn attrs_at(&self, dir: BorrowedFd<'_>, name: &CStr) -> OsResult<Attrs> {
        let st = sys::statx(dir, name, libc::AT_SYMLINK_NOFOLLOW)?;
        self.to_attrs(&st, GenFrom::At(dir, name))
    }

    fn to_attrs(&self, st: &libc::statx, gen_from: GenFrom<'_>) -> OsResult<Attrs> {
        let kind = kind_of(u32::from(st.stx_mode))?;
        let dev = libc::makedev(st.stx_dev_major, st.stx_dev_minor);
        let btime = (st.stx_mask & libc::STATX_BTIME != 0).then(|| ts(&st.stx_btime));
        let incarnation = match btime {
            Some(b) => b.as_nanos_wrapping(),
            None => self.inode_generation(kind, st.stx_ino, gen_from)?,
        };
        let ctime = ts(&st.stx_ctime);
        Ok(Attrs {
            kind,
            mode: u32::from(st.stx_mode) & 0o7777,
            nlink: st.stx_nlink,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            // statx(2): stx_blocks counts 512-byte units.
            space_used: st.stx_blocks.saturating_mul(512),
            rdev: (st.stx_rdev_major, st.stx_rdev_minor),
            atime: ts(&st.stx_atime),
            mtime: ts(&st.stx_mtime),
            ctime,
            btime,
            // ctime moves on every change of data or metadata and survives
            // restarts. RFC 8881 §5.8.1.4 allows time_metadata as `change`
            // where updates cannot outpace its resolution: with
            // fine-grained timestamps a change that follows a query gets a
            // distinct ctime (see dircache.rs); on coarse ones two changes
            // within one tick share a value.
            change: ctime.as_nanos_wrapping(),
            identity: Identity {
                space: dev,
                object: st.stx_ino,
                incarnation,
            },
        })
    }

    /// Fallback incarnation when there is no birth time:
    /// `FS_IOC_GETVERSION`, which needs a real fd, so only regular files and
    /// directories (opening anything else could block or have side
    /// effects); otherwise 0.
    fn inode_generation(&self, kind: FileKind, ino: u64, from: GenFrom<'_>) -> OsResult<u64> {
        if !self.getversion_ok.load(Ordering::Relaxed)
            || !matches!(kind, FileKind::Regular | FileKind::Directory)
        {
            return Ok(0);
        }
        let opened;
        let fd = match from {
            GenFrom::Fd(fd) => fd,
            GenFrom::At(dir, name) => {
                let flags = match kind {
                    FileKind::Directory => libc::O_RDONLY | libc::O_DIRECTORY,
                    _ => libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
                };
                opened = sys::openat2(dir, name, flags | libc::O_NOFOLLOW, 0)?;
                // The name may have been re-pointed since the statx.
                if sys::fstatx(opened.as_fd())?.stx_ino != ino {
                    return Err(OsError::Stale);
                }
                opened.as_fd()
            }
        };
        match sys::fs_ioc_getversion(fd) {
            Ok(g) => Ok(u64::from(g)),
            Err(e) => {
                if matches!(errno_of(&e), libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL) {
                    self.getversion_ok.store(false, Ordering::Relaxed);
                }
                Ok(0)
            }
        }
    }

    // --- regular files ------------------------------------------------------

    /// Opens `dir/name` with `access` (`O_RDWR`/`O_RDONLY`) without following
    /// symlinks or blocking on a fifo.
    fn open_at(dir: BorrowedFd<'_>, name: &CStr, access: i32) -> OsResult<File> {
        let flags = access | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        Ok(File::from(sys::openat2(dir, name, flags, 0)?))
    }

    /// The regular file a READ of `len` bytes at `offset` reads, and how
    /// many bytes to read: at most `cap`, and at most what the file holds,
    /// so a huge `len` on a small file allocates nothing (growth since the
    /// statx shows up as eof=false); nothing at an offset beyond any
    /// possible file size.
    fn read_extent(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        cap: usize,
    ) -> OsResult<(Arc<File>, usize)> {
        let (file, attrs) = self.open_regular(path, false)?;
        if i64::try_from(offset).is_err() {
            return Ok((file, 0));
        }
        let remaining = usize::try_from(attrs.size.saturating_sub(offset)).unwrap_or(usize::MAX);
        Ok((file, len.min(remaining).min(cap)))
    }

    /// An open fd for the regular file at `path` (from the cache when
    /// possible) and its current attributes.
    /// The file a WRITE of `len` bytes at `offset` goes to. pwrite(2)
    /// offsets are signed: EFBIG rather than EINVAL past i64::MAX.
    fn open_for_write(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
    ) -> OsResult<(Arc<File>, Attrs)> {
        let end = offset.checked_add(len as u64);
        if end.and_then(|end| i64::try_from(end).ok()).is_none() {
            return Err(OsError::TooBig);
        }
        self.open_regular(path, true)
    }

    fn open_regular(&self, path: &RelPath, need_write: bool) -> OsResult<(Arc<File>, Attrs)> {
        if path.is_root() {
            return Err(OsError::IsDir);
        }
        for _ in 0..RACE_RETRIES {
            let (dir, name) = self.locate(path)?;
            let seen = self.attrs_at(dir.fd(), &name)?;
            if seen.kind != FileKind::Regular {
                return Err(not_regular(seen.kind));
            }
            // A leased file is read and written through the leased
            // descriptor: another descriptor of the server's own would
            // break the lease (lease.rs).
            if let Some((file, writable)) = self.leases.get(seen.identity) {
                if writable || !need_write {
                    return Ok((file, seen));
                }
                // The read-delegation holder itself writes (its own opens
                // do not conflict with its delegation, RFC 8881 §10.4):
                // the lease cannot stay, the delegation does.
                if let Some(tag) = self.leases.release_id(seen.identity) {
                    tracing::debug!(tag, "read lease released for a write by the server");
                }
            }
            if let Some(file) = self.cache.get(seen.identity, need_write) {
                return Ok((file, seen));
            }
            // The server runs as root, so O_RDWR normally works even on 0444
            // files; read-only mounts, immutable files or running executables
            // (ETXTBSY) still need the O_RDONLY fallback for reads.
            let (file, writable) = match Self::open_at(dir.fd(), &name, libc::O_RDWR) {
                Ok(f) => (f, true),
                Err(
                    OsError::Access
                    | OsError::Perm
                    | OsError::ReadOnly
                    | OsError::Io(libc::ETXTBSY),
                ) if !need_write => (Self::open_at(dir.fd(), &name, libc::O_RDONLY)?, false),
                Err(e) => return Err(e),
            };
            let now = self.to_attrs(&sys::fstatx(file.as_fd())?, GenFrom::Fd(file.as_fd()))?;
            if now.kind != FileKind::Regular || now.identity != seen.identity {
                continue; // swapped between statx and open: look again
            }
            sys::clear_nonblock(&file)?;
            let file = Arc::new(file);
            self.cache.insert(now.identity, Arc::clone(&file), writable);
            return Ok((file, now));
        }
        Err(OsError::Stale)
    }

    // --- directory listings -------------------------------------------------

    /// Guard for a namespace change in `dir` (see [`Changing`]).
    fn changing(&self, dir: &RelPath) -> Changing<'_> {
        Changing {
            cache: &self.dir_cache,
            path_hash: dircache::path_hash(&dir.to_bytes()),
        }
    }

    /// Reads the whole directory open at `file` (from its start) into a
    /// listing, caching it if the directory did not change meanwhile.
    /// `None` if it is too large to cache.
    fn read_listing(
        &self,
        file: &File,
        id: Identity,
        before: DirStamp,
        path_hash: u64,
        epoch: u64,
    ) -> OsResult<Option<Arc<Listing>>> {
        let mut b = dircache::Builder::new(before, path_hash, epoch);
        let complete =
            self.each_dirent(file, &mut |e| Ok(b.push(e.name, e.cookie, e.ino, e.kind)))?;
        if !complete {
            return Ok(None); // past the cache's bounds
        }
        let after = dir_stamp(&sys::fstatx(file.as_fd())?);
        Ok(Some(self.dir_cache.put(id, b.finish(), &after)))
    }

    /// Visits the entries of the directory open at `file` from its current
    /// position, in the file system's order: `.` and `..` left out, each
    /// with its type and cookie, an entry that vanished before its type
    /// could be learnt skipped. Returns false as soon as `visit` returns
    /// false (or fails), true at the end of the directory.
    fn each_dirent(
        &self,
        file: &File,
        visit: &mut dyn FnMut(Dirent<'_>) -> OsResult<bool>,
    ) -> OsResult<bool> {
        let mut buf = vec![0u8; DIRENT_BUF];
        loop {
            let filled = sys::getdents64(file, &mut buf)?;
            if filled == 0 {
                return Ok(true);
            }
            let mut rest = &buf[..filled];
            while !rest.is_empty() {
                let (ent, reclen) = parse_dirent(rest).ok_or(OsError::Io(libc::EIO))?;
                rest = &rest[reclen..];
                if ent.name == b"." || ent.name == b".." {
                    continue;
                }
                let Some(kind) = self.entry_kind(file, &ent)? else {
                    continue;
                };
                let cookie = offset_to_cookie(ent.off).ok_or(OsError::Io(libc::EOVERFLOW))?;
                let e = Dirent {
                    name: ent.name,
                    cookie,
                    ino: ent.ino,
                    kind,
                };
                if !visit(e)? {
                    return Ok(false);
                }
            }
        }
    }

    /// Moves a directory's read position to `off`, a cookie's offset.
    fn seek_dir(file: &File, off: i64) -> OsResult<()> {
        sys::lseek_set(file, off).map_err(|e| match errno_of(&e) {
            libc::EINVAL => OsError::BadCookie,
            _ => e.into(),
        })
    }

    /// An entry's type from `d_type`, or from an lstat where the file
    /// system leaves it unknown; `None` if the entry has just vanished.
    fn entry_kind(&self, dir: &File, ent: &RawDirent<'_>) -> OsResult<Option<FileKind>> {
        if let Some(k) = dtype_kind(ent.dtype) {
            return Ok(Some(k));
        }
        match sys::statx(dir.as_fd(), &cstring(ent.name)?, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(kind_of(u32::from(st.stx_mode))?)),
            Err(e) if errno_of(&e) == libc::ENOENT => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The lstat attributes of `name` (inode `ino`) in the directory open
    /// at `dir`, for a READDIR reply: from the attribute cache when it
    /// vouches for them, else read relative to the fd, so no path is
    /// resolved again. `None` if the entry has vanished since it was
    /// listed.
    fn entry_attrs(
        &self,
        dir: &File,
        name: &[u8],
        ino: u64,
        cached: Option<&(Session, Instant)>,
    ) -> Option<StoreResult<Attrs>> {
        if let Some((s, now)) = cached {
            if let Some(a) = self.attr_cache.get(s, name, ino, *now) {
                return Some(Ok(a));
            }
        }
        let cname = match cstring(name) {
            Ok(c) => c,
            Err(e) => return Some(Err(e.into())),
        };
        match self.attrs_at(dir.as_fd(), &cname) {
            Err(OsError::NotFound) => None,
            Ok(a) => {
                if let Some((s, now)) = cached {
                    // `now` was taken before this statx: the age errs long.
                    self.attr_cache.put(s, name, &a, *now);
                }
                Some(Ok(a))
            }
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Uncached listing from `start`, for directories too large to cache
    /// and cookies a cached listing does not hold.
    fn stream_each(
        &self,
        file: &File,
        start: Option<i64>,
        stat: Option<Option<(Session, Instant)>>,
        visit: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> OsResult<bool> {
        Self::seek_dir(file, start.unwrap_or(0))?;
        self.each_dirent(file, &mut |e| {
            let attrs = match &stat {
                None => None,
                Some(cached) => match self.entry_attrs(file, e.name, e.ino, cached.as_ref()) {
                    None => return Ok(true), // vanished since listed
                    a => a,
                },
            };
            Ok(visit(e.entry(), attrs))
        })
    }

    // --- creation helpers ---------------------------------------------------

    /// Gives a freshly created `dir/name` its owner and exact mode (the
    /// process umask trimmed the mode passed to the create call), removing
    /// it again if that fails so no half-initialised object is left behind.
    fn finish_create(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        owner: Owner,
        mode: Option<u32>,
        is_dir: bool,
    ) -> OsResult<Attrs> {
        let res = (|| {
            // chown before chmod: chown(2) may clear suid/sgid.
            sys::fchownat(
                dir,
                name,
                Some(owner.uid),
                Some(owner.gid),
                libc::AT_SYMLINK_NOFOLLOW,
            )?;
            if let Some(mode) = mode {
                sys::fchmodat_nofollow(dir, name, mode)?;
            }
            self.attrs_at(dir, name)
        })();
        if res.is_err() {
            let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
            let _ = sys::unlinkat(dir, name, flags);
        }
        res
    }

    /// A real fd for xattr calls: regular files and directories only, since
    /// Linux allows `user.*` xattrs on nothing else (xattr(7)).
    fn xattr_target(&self, path: &RelPath) -> OsResult<Option<Arc<File>>> {
        let (dir, name) = self.locate(path)?;
        let attrs = self.attrs_at(dir.fd(), &name)?;
        match attrs.kind {
            FileKind::Regular => Ok(Some(self.open_regular(path, false)?.0)),
            FileKind::Directory => {
                let fd = sys::openat2(
                    dir.fd(),
                    &name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                Ok(Some(Arc::new(File::from(fd))))
            }
            _ => Ok(None),
        }
    }

    /// Brackets the server's own change of `name` in `dir` when that
    /// object is leased, so the inotify events the change raises are not
    /// taken for a local process's (lease.rs). Costs a `statx` only while
    /// some lease is held.
    fn own_change_at(&self, dir: BorrowedFd<'_>, name: &CStr) -> Option<OwnChange<'_>> {
        if self.leases.is_empty() {
            return None;
        }
        let a = self.attrs_at(dir, name).ok()?;
        self.leases.own_change(a.identity)
    }

    /// The directories strictly between the export root and `path`, with
    /// their identities, opened `O_PATH`: a lease watches them for being
    /// renamed behind the server's back (lease.rs).
    fn ancestors(&self, path: &RelPath) -> OsResult<Vec<(Identity, OwnedFd)>> {
        let names = path.components();
        let mut out = Vec::with_capacity(names.len().saturating_sub(1));
        for depth in 1..names.len() {
            let parent = RelPath::from_names(names[..depth - 1].to_vec());
            let here = RelPath::from_names(names[..depth].to_vec());
            let id = self
                .attrs_at(
                    self.dir(&parent)?.fd(),
                    &cstring(names[depth - 1].as_bytes())?,
                )?
                .identity;
            match self.dir(&here)? {
                Dir::Sub(fd) => out.push((id, fd)),
                Dir::Root(_) => {} // not below the root: cannot happen
            }
        }
        Ok(out)
    }

    /// [`Self::own_change_at`] by path.
    fn own_change(&self, path: &RelPath) -> Option<OwnChange<'_>> {
        if self.leases.is_empty() {
            return None;
        }
        let (dir, name) = self.locate(path).ok()?;
        self.own_change_at(dir.fd(), &name)
    }
}

/// Runs a store operation written in system-call terms and converts its
/// failure at the [`Store`] boundary (the one mapping, error.rs).
fn os<T>(op: impl FnOnce() -> OsResult<T>) -> StoreResult<T> {
    op().map_err(StoreError::from)
}

/// Writes all of `data` at `offset`; a partial write that then fails is
/// reported as written so far (the client retries the rest and then sees
/// the error, e.g. ENOSPC).
fn write_all_at(file: &File, data: &[u8], offset: u64) -> Result<usize, OsError> {
    let mut written = 0;
    while written < data.len() {
        match file.write_at(&data[written..], offset + written as u64) {
            Ok(0) => return Err(OsError::Io(libc::EIO)),
            Ok(k) => written += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if written > 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(written)
}

/// Exactly what was asked: an unstable write stays in the page cache until
/// COMMIT. Each sync waits for the disk (nfs4d_blocking).
fn sync_as_asked(file: &File, stability: Stability) -> Result<(), OsError> {
    match stability {
        Stability::Unstable => {}
        Stability::DataSync => nfs4d_blocking::region(|| file.sync_data())?,
        Stability::FileSync => nfs4d_blocking::region(|| file.sync_all())?,
    }
    Ok(())
}

impl Store for LocalStore {
    /// Everything a POSIX directory offers. Reflinks (CLONE) and user
    /// extended attributes still depend on the file system under the
    /// export: where it lacks them the call is [`StoreError::Unsupported`].
    fn capabilities(&self) -> Capabilities {
        Capabilities::POSIX
    }

    fn stat(&self, path: &RelPath) -> StoreResult<Attrs> {
        os(|| {
            let (dir, name) = self.locate(path)?;
            self.attrs_at(dir.fd(), &name)
        })
    }

    fn lookup(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        os(|| {
            let dir = self.dir(dir)?;
            self.attrs_at(dir.fd(), &cstring(name.as_bytes())?)
        })
    }

    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)> {
        os(|| {
            let (file, want) = self.read_extent(path, offset, len, MAX_READ)?;
            // Read into the buffer's spare capacity rather than zero-filling
            // `want` bytes first: the kernel overwrites them anyway, and only
            // the bytes it wrote become part of `buf`.
            let start = buf.len();
            buf.reserve(want);
            let n = reading(file.as_fd(), offset, want, || {
                let mut n = 0;
                while n < want {
                    match sys::pread_append(&file, buf, want - n, offset + n as u64) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            buf.truncate(start);
                            return Err(e);
                        }
                    }
                }
                Ok(n)
            })?;
            Ok((n, reached_eof(&file, offset, n)?))
        })
    }

    fn read_piped(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
    ) -> StoreResult<Option<(Box<dyn PipedData>, bool)>> {
        os(|| {
            let (file, want) = self.read_extent(path, offset, len, self.pipes.capacity())?;
            if want == 0 {
                return Ok(None);
            }
            let Some(mut pipe) = self.pipes.take() else {
                return Ok(None);
            };
            // splice(2) waits for the disk even with SPLICE_F_NONBLOCK.
            let n = match reading(file.as_fd(), offset, want, || {
                pipe.fill(file.as_fd(), offset, want)
            }) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Unsupported => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                // Truncated since the statx, or nothing could be spliced
                // without waiting: a plain read answers.
                return Ok(None);
            }
            let eof = reached_eof(&file, offset, n)?;
            Ok(Some((Box::new(pipe) as Box<dyn PipedData>, eof)))
        })
    }

    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        os(|| {
            let (file, attrs) = self.open_for_write(path, offset, data.len())?;
            let turn = (data.len() >= LARGE_WRITE).then(|| self.writers.take(attrs.identity));
            let written = write_all_at(&file, data, offset)?;
            // The sync below needs no turn: the kernel merges concurrent ones.
            drop(turn);
            sync_as_asked(&file, stability)?;
            Ok((written, stability))
        })
    }

    /// The data goes from the transport's pipe into the file with
    /// `splice(2)`: the page cache's copy is the only one.
    fn write_piped(
        &self,
        path: &RelPath,
        offset: u64,
        data: &mut dyn PipedSource,
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        os(|| {
            let len = data.len();
            let (file, attrs) = self.open_for_write(path, offset, len)?;
            let turn = (len >= LARGE_WRITE).then(|| self.writers.take(attrs.identity));
            let mut written = 0;
            while !data.is_empty() {
                match data.splice_into(file.as_fd(), offset + written as u64) {
                    Ok(0) => return Err(OsError::Io(libc::EIO)),
                    Ok(k) => written += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A file system without splice into files (EINVAL), or
                    // a source that cannot splice: the bytes are read out
                    // and written as a buffer.
                    Err(e)
                        if written == 0
                            && (e.raw_os_error() == Some(libc::EINVAL)
                                || e.kind() == std::io::ErrorKind::Unsupported) =>
                    {
                        let buf = data.read_out()?;
                        written = write_all_at(&file, &buf, offset)?;
                        break;
                    }
                    // A partial write is reported, as by `write`.
                    Err(_) if written > 0 => break,
                    Err(e) => return Err(e.into()),
                }
            }
            drop(turn);
            sync_as_asked(&file, stability)?;
            Ok((written, stability))
        })
    }

    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> StoreResult<Created> {
        os(|| {
            let _changed = self.changing(dir);
            check_mode(mode)?;
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            // Always try O_EXCL first so we know whether *we* created the file
            // (and so must set its owner); without `exclusive`, EEXIST falls back
            // to returning the existing regular file.
            for _ in 0..RACE_RETRIES {
                // O_CREAT | O_EXCL always makes a new regular file (never opens
                // a fifo or device), so no O_NONBLOCK is needed, and none has to
                // be cleared afterwards.
                let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_NOFOLLOW;
                match sys::openat2(dir.fd(), &cname, flags, mode) {
                    Ok(fd) => {
                        let file = File::from(fd);
                        let res = (|| {
                            // The owner and mode are set only where the create
                            // did not already give them (the server's own
                            // credentials, the umask, a set-group-ID directory
                            // or a default ACL may): each change is an inode
                            // update, and the common case needs none.
                            let st = sys::fstatx(file.as_fd())?;
                            let chown = st.stx_uid != owner.uid || st.stx_gid != owner.gid;
                            if chown {
                                std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))?;
                            }
                            // After a chown always: chown(2) may clear suid/sgid.
                            let chmod = chown || u32::from(st.stx_mode) & 0o7777 != mode;
                            if chmod {
                                file.set_permissions(Permissions::from_mode(mode))?;
                            }
                            let st = if chmod {
                                sys::fstatx(file.as_fd())?
                            } else {
                                st
                            };
                            self.to_attrs(&st, GenFrom::Fd(file.as_fd()))
                        })();
                        let attrs = match res {
                            Ok(a) => a,
                            Err(e) => {
                                let _ = sys::unlinkat(dir.fd(), &cname, 0);
                                return Err(e);
                            }
                        };
                        self.cache.insert(attrs.identity, Arc::new(file), true);
                        // The directory is open here: its attributes after
                        // the create cost one statx on the fd, not a second
                        // resolution of its path. Not having them is no
                        // failure of the create (the caller stats instead).
                        let dir_after = (|| {
                            let st = sys::fstatx(dir.fd())?;
                            self.to_attrs(&st, GenFrom::At(dir.fd(), c"."))
                        })()
                        .ok();
                        return Ok(Created {
                            attrs,
                            created: true,
                            dir_after,
                        });
                    }
                    Err(e) if errno_of(&e) == libc::EEXIST && !exclusive => {
                        match self.attrs_at(dir.fd(), &cname) {
                            Ok(a) if a.kind == FileKind::Regular => {
                                return Ok(Created {
                                    attrs: a,
                                    created: false,
                                    dir_after: None,
                                })
                            }
                            Ok(a) => return Err(not_regular(a.kind)),
                            Err(OsError::NotFound) => continue, // removed meanwhile
                            Err(e) => return Err(e),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(OsError::Stale)
        })
    }

    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> StoreResult<Attrs> {
        os(|| {
            let _changed = self.changing(dir);
            check_mode(mode)?;
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            sys::mkdirat(dir.fd(), &cname, mode)?;
            self.finish_create(dir.fd(), &cname, owner, Some(mode), true)
        })
    }

    fn symlink(
        &self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
    ) -> StoreResult<Attrs> {
        os(|| {
            let _changed = self.changing(dir);
            // symlink(2) rejects an empty target with ENOENT; it is a bad argument.
            if target.is_empty() {
                return Err(OsError::Invalid);
            }
            let target = cstring(target)?;
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            sys::symlinkat(&target, dir.fd(), &cname)?;
            // Symlink permissions are always 0777 on Linux; only the owner matters.
            self.finish_create(dir.fd(), &cname, owner, None, false)
        })
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
        os(|| {
            let _changed = self.changing(dir);
            check_mode(mode)?;
            let (fmt, dev) = match kind {
                FileKind::Fifo => (libc::S_IFIFO, 0),
                FileKind::Socket => (libc::S_IFSOCK, 0),
                FileKind::BlockDev => (libc::S_IFBLK, libc::makedev(rdev.0, rdev.1)),
                FileKind::CharDev => (libc::S_IFCHR, libc::makedev(rdev.0, rdev.1)),
                _ => return Err(OsError::Invalid),
            };
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            // Device nodes need CAP_MKNOD (mknod(2)): EPERM → OsError::Perm.
            sys::mknodat(dir.fd(), &cname, fmt | mode, dev)?;
            self.finish_create(dir.fd(), &cname, owner, Some(mode), false)
        })
    }

    fn link(&self, src: &RelPath, dst_dir: &RelPath, dst_name: &Name) -> StoreResult<Attrs> {
        os(|| {
            let _changed = self.changing(dst_dir);
            let (sdir, sname) = self.locate(src)?;
            // link(2) gives EPERM for directories; NFS wants NFS4ERR_ISDIR.
            let src_attrs = self.attrs_at(sdir.fd(), &sname)?;
            if src_attrs.kind == FileKind::Directory {
                return Err(OsError::IsDir);
            }
            let _own = self.leases.own_change(src_attrs.identity);
            let ddir = self.dir(dst_dir)?;
            let dname = cstring(dst_name.as_bytes())?;
            sys::linkat(sdir.fd(), &sname, ddir.fd(), &dname)?;
            // The source's link count changed with no event on its
            // directory's watch (attrcache.rs).
            self.attr_cache.clear();
            self.attrs_at(ddir.fd(), &dname)
        })
    }

    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> StoreResult<()> {
        os(|| {
            let _changed = (self.changing(src_dir), self.changing(dst_dir));
            let sdir = self.dir(src_dir)?;
            let ddir = self.dir(dst_dir)?;
            let sname = cstring(src_name.as_bytes())?;
            let dname = cstring(dst_name.as_bytes())?;
            // The object a rename may replace; its cached fd would otherwise pin
            // the unlinked inode's space until evicted.
            let victim = self.attrs_at(ddir.fd(), &dname).ok();
            let _own = (
                self.own_change_at(sdir.fd(), &sname),
                victim
                    .as_ref()
                    .and_then(|v| self.leases.own_change(v.identity)),
            );
            sys::renameat(sdir.fd(), &sname, ddir.fd(), &dname).map_err(|e| {
                // rename(2): a non-empty target directory may give EEXIST.
                match errno_of(&e) {
                    libc::EEXIST => OsError::NotEmpty,
                    _ => e.into(),
                }
            })?;
            if let Some(v) = victim {
                self.cache.remove(v.identity);
            }
            Ok(())
        })
    }

    fn remove(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        os(|| {
            let _changed = self.changing(dir);
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            let attrs = self.attrs_at(dir.fd(), &cname)?;
            if attrs.kind == FileKind::Directory {
                return Err(OsError::IsDir);
            }
            let _own = self.leases.own_change(attrs.identity);
            sys::unlinkat(dir.fd(), &cname, 0)?;
            self.cache.remove(attrs.identity);
            Ok(attrs)
        })
    }

    fn rmdir(&self, dir: &RelPath, name: &Name) -> StoreResult<()> {
        os(|| {
            let _changed = self.changing(dir);
            let dir = self.dir(dir)?;
            let cname = cstring(name.as_bytes())?;
            // rmdir(2): a non-empty directory may give EEXIST as well as ENOTEMPTY.
            sys::unlinkat(dir.fd(), &cname, libc::AT_REMOVEDIR).map_err(|e| match errno_of(&e) {
                libc::EEXIST => OsError::NotEmpty,
                _ => e.into(),
            })
        })
    }

    fn readlink(&self, path: &RelPath) -> StoreResult<Vec<u8>> {
        os(|| {
            if path.is_root() {
                return Err(OsError::Invalid);
            }
            let (dir, name) = self.locate(path)?;
            // readlink(2): EINVAL when the object is not a symlink.
            Ok(sys::readlinkat(dir.fd(), &name)?)
        })
    }

    fn list(
        &self,
        dir: &RelPath,
        from: &ListPos,
        stat: bool,
        visit: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool> {
        os(|| {
            let cookie = position_cookie(from)?;
            let start = cookie_to_offset(cookie)?;
            let file = self.open_dir_readable(dir)?;
            let st = sys::fstatx(file.as_fd())?;
            let id = self.to_attrs(&st, GenFrom::Fd(file.as_fd()))?.identity;
            let stamp = dir_stamp(&st);
            let path_hash = dircache::path_hash(&dir.to_bytes());
            // The epoch is taken before the directory is read, so a change
            // made through this store during the read voids the listing.
            let epoch = self.dir_cache.epochs.get(path_hash);
            // Outer `None`: no attributes wanted; inner: none cached.
            let stat = stat.then(|| {
                self.attr_cache
                    .begin(id, file.as_fd())
                    .map(|s| (s, Instant::now()))
            });
            let listing = match self.dir_cache.get(id, &stamp, path_hash) {
                Some(l) => Some(l),
                None if self.dir_cache.known_too_large(id, stamp.size) => None,
                None => match self.dir_cache.begin_fill(id) {
                    // Another request is reading it whole (dircache.rs).
                    None => None,
                    Some(_filling) => {
                        let l = self.read_listing(&file, id, stamp, path_hash, epoch)?;
                        if l.is_none() {
                            self.dir_cache.too_large(id, stamp.size);
                        }
                        l
                    }
                },
            };
            if let Some(pos) = listing
                .as_ref()
                .and_then(|l| l.position(cookie).map(|p| (l, p)))
            {
                let (l, mut i) = pos;
                while let Some((name, e)) = l.entry(i) {
                    i += 1;
                    let attrs = match &stat {
                        None => None,
                        Some(cached) => match self.entry_attrs(&file, name, e.ino, cached.as_ref())
                        {
                            None => continue,
                            a => a,
                        },
                    };
                    let e = Dirent {
                        name,
                        cookie: e.cookie,
                        ino: e.ino,
                        kind: e.kind,
                    };
                    if !visit(e.entry(), attrs) {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            // Too large to cache, or a cookie the listing does not hold (its
            // entry was removed since): the file system's own position.
            self.stream_each(&file, start, stat, visit)
        })
    }

    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> StoreResult<Attrs> {
        os(|| {
            if let Some(mode) = set.mode {
                check_mode(mode)?;
            }
            let time = |t: Option<SetTime>| -> OsResult<Option<Option<(i64, u32)>>> {
                match t {
                    None => Ok(None),
                    Some(SetTime::ServerNow) => Ok(Some(None)),
                    Some(SetTime::Client(_, nsec)) if nsec >= 1_000_000_000 => {
                        Err(OsError::Invalid)
                    }
                    Some(SetTime::Client(sec, nsec)) => Ok(Some(Some((sec, nsec)))),
                }
            };
            let (atime, mtime) = (time(set.atime)?, time(set.mtime)?);
            if set.size.is_some_and(|s| i64::try_from(s).is_err()) {
                return Err(OsError::TooBig);
            }

            let (dir, name) = self.locate(path)?;
            let _own = self.own_change_at(dir.fd(), &name);
            if set.uid.is_some() || set.gid.is_some() {
                sys::fchownat(dir.fd(), &name, set.uid, set.gid, libc::AT_SYMLINK_NOFOLLOW)?;
            }
            if let Some(mode) = set.mode {
                // EOPNOTSUPP for a symlink: Linux has no lchmod.
                sys::fchmodat_nofollow(dir.fd(), &name, mode)?;
            }
            if let Some(size) = set.size {
                let (file, _) = self.open_regular(path, true)?;
                file.set_len(size)?;
            }
            if atime.is_some() || mtime.is_some() {
                sys::utimensat_nofollow(dir.fd(), &name, atime, mtime)?;
            }
            self.attrs_at(dir.fd(), &name)
        })
    }

    fn statfs(&self) -> StoreResult<FsStats> {
        os(|| {
            let st = sys::fstatvfs(self.root.as_fd())?;
            let frsize = st.f_frsize as u64;
            Ok(FsStats {
                total_bytes: (st.f_blocks as u64).saturating_mul(frsize),
                free_bytes: (st.f_bfree as u64).saturating_mul(frsize),
                avail_bytes: (st.f_bavail as u64).saturating_mul(frsize),
                total_files: st.f_files as u64,
                free_files: st.f_ffree as u64,
                avail_files: st.f_favail as u64,
                name_max: u32::try_from(st.f_namemax).unwrap_or(u32::MAX),
            })
        })
    }

    /// Also takes a directory, whose entries it makes durable as
    /// [`Store::sync_dir`] does.
    fn commit(&self, path: &RelPath) -> StoreResult<()> {
        match self.stat(path)?.kind {
            FileKind::Regular => os(|| {
                let file = self.open_regular(path, false)?.0;
                Ok(nfs4d_blocking::region(|| file.sync_all())?)
            }),
            // Directories are made durable by `sync_dir`, after the change
            // that needs it.
            k => Err(not_regular(k).into()),
        }
    }

    fn sync_dir(&self, dir: &RelPath) -> StoreResult<()> {
        os(|| {
            // Concurrent changes to one directory share an fsync that began
            // after all of them (groupsync.rs); each caller still returns only
            // once its change is durable.
            self.dir_syncs.sync(&dir.to_bytes(), || {
                Ok(self.open_dir_readable(dir)?.sync_all()?)
            })
        })
    }

    fn getxattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<Vec<u8>> {
        os(|| {
            let full = cstring(&user_xattr_name(name)?)?;
            // Kernel behaviour for user.* on other kinds: reads give ENODATA.
            let Some(file) = self.xattr_target(path)? else {
                return Err(OsError::NoXattr);
            };
            for _ in 0..RACE_RETRIES {
                let size = sys::fgetxattr(&file, &full, &mut [])?;
                let mut buf = vec![0u8; size];
                match sys::fgetxattr(&file, &full, &mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        return Ok(buf);
                    }
                    // getxattr(2): ERANGE if the value grew since the size query.
                    Err(e) if errno_of(&e) == libc::ERANGE => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(OsError::Io(libc::ERANGE))
        })
    }

    fn setxattr(
        &self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
    ) -> StoreResult<()> {
        os(|| {
            let full = cstring(&user_xattr_name(name)?)?;
            if value.len() > XATTR_SIZE_MAX {
                return Err(OsError::XattrTooBig);
            }
            // Kernel behaviour for user.* on other kinds: writes give EPERM.
            let Some(file) = self.xattr_target(path)? else {
                return Err(OsError::Perm);
            };
            let _own = self.own_change(path);
            let flags = match mode {
                XattrSet::Either => 0,
                XattrSet::Create => libc::XATTR_CREATE,
                XattrSet::Replace => libc::XATTR_REPLACE,
            };
            Ok(sys::fsetxattr(&file, &full, value, flags)?)
        })
    }

    fn listxattr(&self, path: &RelPath) -> StoreResult<Vec<Vec<u8>>> {
        os(|| {
            let Some(file) = self.xattr_target(path)? else {
                return Ok(Vec::new());
            };
            for _ in 0..RACE_RETRIES {
                let size = sys::flistxattr(&file, &mut [])?;
                let mut buf = vec![0u8; size];
                match sys::flistxattr(&file, &mut buf) {
                    Ok(n) => {
                        // listxattr(2): a sequence of NUL-terminated names.
                        return Ok(buf[..n]
                            .split(|&b| b == 0)
                            .filter_map(|n| n.strip_prefix(XATTR_USER_PREFIX))
                            .filter(|n| !n.is_empty())
                            .map(<[u8]>::to_vec)
                            .collect());
                    }
                    Err(e) if errno_of(&e) == libc::ERANGE => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(OsError::Io(libc::ERANGE))
        })
    }

    fn removexattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<()> {
        os(|| {
            let full = cstring(&user_xattr_name(name)?)?;
            let Some(file) = self.xattr_target(path)? else {
                return Err(OsError::Perm);
            };
            let _own = self.own_change(path);
            Ok(sys::fremovexattr(&file, &full)?)
        })
    }

    // --- space management and server-side copy (NFSv4.2) --------------------

    fn allocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        os(|| {
            let (off, len) = falloc_range(offset, len)?;
            let (file, _) = self.open_regular(path, true)?;
            Ok(sys::fallocate(&file, 0, off, len)?)
        })
    }

    fn deallocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        os(|| {
            let (off, len) = falloc_range(offset, len)?;
            let (file, _) = self.open_regular(path, true)?;
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            Ok(sys::fallocate(&file, mode, off, len)?)
        })
    }

    fn seek_data(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        os(|| self.seek(path, offset, libc::SEEK_DATA))
    }

    fn seek_hole(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        os(|| self.seek(path, offset, libc::SEEK_HOLE))
    }

    fn clone_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<()> {
        os(|| {
            check_io_range(src_off, len)?;
            check_io_range(dst_off, len)?;
            let (from, _) = self.open_regular(src, false)?;
            let (to, _) = self.open_regular(dst, true)?;
            sys::ficlonerange(&from, src_off, &to, dst_off, len).map_err(|e| match errno_of(&e) {
                // No reflink support on this filesystem (ENOTTY from ioctls it
                // does not know), or not between these two files.
                libc::EOPNOTSUPP | libc::ENOTTY | libc::EXDEV => OsError::NotSupported,
                _ => e.into(),
            })
        })
    }

    fn lease(&self, path: &RelPath, write: bool, tag: u64) -> StoreResult<bool> {
        os(|| {
            if self.leases.holds(tag) {
                return Ok(true);
            }
            if !self.leases.has_room() {
                return Ok(false);
            }
            let (dir, name) = self.locate(path)?;
            // A read lease needs a descriptor not open for writing; a write
            // lease is taken on one open for both, since all of the holder's
            // I/O goes through it.
            let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
            let file = Self::open_at(dir.fd(), &name, access)?;
            let a = self.to_attrs(&sys::fstatx(file.as_fd())?, GenFrom::Fd(file.as_fd()))?;
            if a.kind != FileKind::Regular {
                return Ok(false);
            }
            sys::clear_nonblock(&file)?;
            let dirs = self.ancestors(path)?;
            // The server's cached descriptor would count as a conflicting open.
            self.cache.remove(a.identity);
            Ok(self.leases.take(tag, a.identity, file, write, &dirs)?)
        })
    }

    fn unlease(&self, tag: u64) {
        self.leases.release(tag);
    }

    fn leases(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        self.leases.list()
    }

    fn copy_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<u64> {
        os(|| {
            check_io_range(src_off, len)?;
            check_io_range(dst_off, len)?;
            let (from, sa) = self.open_regular(src, false)?;
            let (to, da) = self.open_regular(dst, true)?;
            // Overlapping ranges of one file (copy_file_range(2): EINVAL) would
            // be corrupted by the buffered fallback's forward copy.
            if sa.identity == da.identity && src_off.abs_diff(dst_off) < len {
                return Err(OsError::Invalid);
            }
            let mut done = 0u64;
            let mut kernel_copy = true;
            let mut buf = Vec::new();
            while done < len {
                // Offsets fit in i64: checked above.
                let (s, d) = ((src_off + done) as i64, (dst_off + done) as i64);
                let chunk = usize::try_from(len - done)
                    .unwrap_or(usize::MAX)
                    .min(COPY_CHUNK);
                let step = if kernel_copy {
                    match sys::copy_file_range(&from, s, &to, d, chunk) {
                        Ok(n) => Ok(n),
                        // copy_file_range(2): EXDEV across filesystems (before
                        // Linux 5.19 also across types), EOPNOTSUPP/EINVAL where
                        // the filesystem cannot, ENOSYS on old kernels: copy
                        // through a buffer instead.
                        Err(e)
                            if matches!(
                                errno_of(&e),
                                libc::EXDEV | libc::EOPNOTSUPP | libc::EINVAL | libc::ENOSYS
                            ) =>
                        {
                            kernel_copy = false;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    copy_through(&from, s as u64, &to, d as u64, chunk, &mut buf)
                };
                match step {
                    Ok(0) => break, // end of the source
                    Ok(n) => done += n as u64,
                    // Report the partial copy; the client copies the rest and
                    // then sees the error.
                    Err(_) if done > 0 => break,
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(done)
        })
    }

    /// A fresh open file description ([`PosixLockFile`]), never shared
    /// with the descriptor cache, whose eviction would drop the locks.
    /// Descriptions are opened non-blocking: one that conflicts with a
    /// local process's lease on the file fails at once while the kernel
    /// breaks that lease, as [`StoreError::Transient`] (the client retries).
    fn open_lock_file(
        &self,
        path: &RelPath,
        write: bool,
    ) -> StoreResult<Option<Box<dyn LockFile>>> {
        os(|| {
            if path.is_root() {
                return Err(OsError::IsDir);
            }
            // A description of its own, never the fd cache's (docs/locking.md).
            let (dir, name) = self.locate(path)?;
            // The server's own lease on the file (standing for a delegation,
            // lease.rs) would be broken by this open. A client locks through
            // the server while it returns its delegation (its first lock owner
            // then locks through the write-leased description itself, so a
            // local opener held by the lease finds the lock in place), or
            // alongside a read delegation it holds: then the lease gives way,
            // the delegation stays (docs/delegations.md).
            if let Ok(seen) = self.attrs_at(dir.fd(), &name) {
                if let Some(lent) = self.leases.lend_for_locks(seen.identity) {
                    let lent = PosixLockFile::new(OwnedFd::from(lent?), true);
                    return Ok(Some(Box::new(lent) as Box<dyn LockFile>));
                }
                if let Some((_, lease_write)) = self.leases.get(seen.identity) {
                    if lease_write || write {
                        if let Some(tag) = self.leases.release_id(seen.identity) {
                            tracing::debug!(
                                tag,
                                "file lease released for a byte-range lock description"
                            );
                        }
                    }
                }
            }
            let ro = |e| match e {
                // As in open_regular: read-only mounts, immutable files and
                // running executables cannot be opened for writing; such a
                // description carries read locks only.
                OsError::Access
                | OsError::Perm
                | OsError::ReadOnly
                | OsError::Io(libc::ETXTBSY) => Self::open_at(dir.fd(), &name, libc::O_RDONLY),
                e => Err(e),
            };
            let (file, writable) = if write {
                match Self::open_at(dir.fd(), &name, libc::O_RDWR) {
                    Ok(f) => (f, true),
                    Err(e) => (ro(e)?, false),
                }
            } else {
                (Self::open_at(dir.fd(), &name, libc::O_RDONLY)?, false)
            };
            let st = sys::fstatx(file.as_fd())?;
            let kind = kind_of(u32::from(st.stx_mode))?;
            if kind != FileKind::Regular {
                return Err(not_regular(kind));
            }
            Ok(Some(Box::new(PosixLockFile::new(
                OwnedFd::from(file),
                writable,
            ))))
        })
    }
}

/// Bytes copied per `copy_file_range` call (bounds each syscall's latency).
const COPY_CHUNK: usize = 64 << 20;

/// Buffer of the read/write copy fallback.
const COPY_BUF: usize = 1 << 20;

/// `fallocate` arguments for `len` bytes at `offset`: a zero length is
/// [`OsError::Invalid`] (fallocate(2) EINVAL), a range past the
/// largest file size [`OsError::TooBig`].
fn falloc_range(offset: u64, len: u64) -> OsResult<(i64, i64)> {
    if len == 0 {
        return Err(OsError::Invalid);
    }
    check_io_range(offset, len)?;
    // Both fit: offset + len <= i64::MAX.
    Ok((offset as i64, len as i64))
}

/// Fails with [`OsError::TooBig`] unless `offset + len` fits a file
/// offset (`off_t` is signed).
fn check_io_range(offset: u64, len: u64) -> OsResult<()> {
    match offset.checked_add(len) {
        Some(end) if i64::try_from(end).is_ok() => Ok(()),
        _ => Err(OsError::TooBig),
    }
}

/// One step of the buffered copy: reads up to `len` bytes at `src_off` and
/// writes them all at `dst_off`; returns the bytes copied (0 at the
/// source's end).
fn copy_through(
    from: &File,
    src_off: u64,
    to: &File,
    dst_off: u64,
    len: usize,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    buf.resize(len.min(COPY_BUF), 0);
    let n = loop {
        match from.read_at(buf, src_off) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    to.write_all_at(&buf[..n], dst_off)?;
    Ok(n)
}

impl LocalStore {
    /// `lseek(SEEK_DATA / SEEK_HOLE)` on the regular file at `path`; `None`
    /// for ENXIO (nothing found before end of file, or `offset` at or past
    /// it). The cached fd's position moves, which nothing else uses: all
    /// I/O on it is positional.
    fn seek(&self, path: &RelPath, offset: u64, whence: i32) -> OsResult<Option<u64>> {
        let (file, _) = self.open_regular(path, false)?;
        let Ok(off) = i64::try_from(offset) else {
            return Ok(None); // beyond any possible file size
        };
        match sys::lseek(&file, off, whence) {
            Ok(pos) => Ok(Some(pos)),
            Err(e) if errno_of(&e) == libc::ENXIO => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;

#[cfg(test)]
mod space_tests {
    //! ALLOCATE/DEALLOCATE/SEEK/COPY/CLONE support (NFSv4.2).

    use super::*;

    fn setup(data: &[u8]) -> (tempfile::TempDir, LocalStore, RelPath) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalStore::open(dir.path()).expect("store");
        let path = new(&b, "f", data);
        (dir, b, path)
    }

    fn new(b: &LocalStore, name: &str, data: &[u8]) -> RelPath {
        let n = Name::new(name.as_bytes()).expect("name");
        let owner = Owner { uid: 0, gid: 0 };
        b.create_file(&RelPath::root(), &n, 0o644, owner, true)
            .expect("create");
        let p = RelPath::root().join(&n);
        if !data.is_empty() {
            b.write(&p, 0, data, Stability::Unstable).expect("write");
        }
        p
    }

    fn read_all(b: &LocalStore, p: &RelPath) -> Vec<u8> {
        let mut buf = Vec::new();
        b.read(p, 0, 1 << 24, &mut buf).expect("read");
        buf
    }

    #[test]
    fn allocate_extends_and_reads_zeros() {
        let (_d, b, p) = setup(b"abc");
        b.allocate(&p, 0, 1).expect("allocate inside");
        assert_eq!(b.stat(&p).expect("stat").size, 3);
        b.allocate(&p, 10, 100).expect("allocate past eof");
        let a = b.stat(&p).expect("stat");
        assert_eq!(a.size, 110);
        let data = read_all(&b, &p);
        assert_eq!(&data[..3], b"abc");
        assert!(data[3..].iter().all(|&x| x == 0));
        assert_eq!(b.allocate(&p, 0, 0), Err(StoreError::Invalid));
        assert_eq!(b.allocate(&p, i64::MAX as u64, 1), Err(StoreError::TooBig));
        assert_eq!(b.allocate(&p, u64::MAX, 2), Err(StoreError::TooBig));
        assert_eq!(b.allocate(&RelPath::root(), 0, 1), Err(StoreError::IsDir));
    }

    #[test]
    fn deallocate_zeroes_and_keeps_size() {
        let data = vec![0x5a; 3 * 4096 + 100];
        let (_d, b, p) = setup(&data);
        // Unaligned: partial blocks are zeroed, whole ones released.
        b.deallocate(&p, 100, 2 * 4096).expect("punch");
        let now = read_all(&b, &p);
        assert_eq!(now.len(), data.len());
        assert!(now[..100].iter().all(|&x| x == 0x5a));
        assert!(now[100..100 + 2 * 4096].iter().all(|&x| x == 0));
        assert!(now[100 + 2 * 4096..].iter().all(|&x| x == 0x5a));
        // Past end of file: no effect.
        b.deallocate(&p, 1 << 20, 4096).expect("punch past eof");
        assert_eq!(b.stat(&p).expect("stat").size, data.len() as u64);
        assert_eq!(b.deallocate(&p, 0, 0), Err(StoreError::Invalid));
    }

    #[test]
    fn seek_data_and_holes() {
        let (_d, b, p) = setup(&[]);
        let blk = 1 << 20;
        b.write(&p, blk, &vec![1; blk as usize], Stability::Unstable)
            .expect("write");
        b.setattr(
            &p,
            &SetAttrs {
                size: Some(3 * blk),
                ..Default::default()
            },
        )
        .expect("truncate");
        // The end of file is always a hole; nothing is found at or past it.
        assert_eq!(b.seek_hole(&p, 3 * blk), Ok(None));
        assert_eq!(b.seek_data(&p, 3 * blk), Ok(None));
        assert_eq!(b.seek_data(&p, u64::MAX), Ok(None));
        if b.seek_hole(&p, 0) == Ok(Some(0)) {
            assert_eq!(b.seek_data(&p, 0), Ok(Some(blk)));
            assert_eq!(b.seek_hole(&p, blk), Ok(Some(2 * blk)));
            assert_eq!(b.seek_data(&p, 2 * blk), Ok(None));
        } else {
            // No hole tracking: all data, with the virtual hole at the end.
            assert_eq!(b.seek_data(&p, 0), Ok(Some(0)));
            assert_eq!(b.seek_hole(&p, 0), Ok(Some(3 * blk)));
        }
    }

    #[test]
    fn copy_ranges() {
        let (_d, b, src) = setup(b"0123456789");
        let dst = new(&b, "g", b"abcdefghij");
        assert_eq!(b.copy_range(&src, 2, &dst, 5, 3), Ok(3));
        assert_eq!(read_all(&b, &dst), b"abcde234ij");
        // Past the destination's end: it grows; the source's end stops it.
        assert_eq!(b.copy_range(&src, 8, &dst, 12, 100), Ok(2));
        assert_eq!(read_all(&b, &dst), b"abcde234ij\0\089");
        assert_eq!(
            b.copy_range(&src, 0, &dst, i64::MAX as u64, 1),
            Err(StoreError::TooBig)
        );
        // Within one file: disjoint ranges copy, overlapping ones are refused.
        assert_eq!(b.copy_range(&src, 0, &src, 10, 5), Ok(5));
        assert_eq!(read_all(&b, &src), b"012345678901234");
        assert_eq!(b.copy_range(&src, 0, &src, 2, 5), Err(StoreError::Invalid));
    }

    #[test]
    fn clone_ranges() {
        let (_d, b, src) = setup(&vec![7; 8192]);
        let dst = new(&b, "g", &[]);
        match b.clone_range(&src, 0, &dst, 0, 8192) {
            Ok(()) => assert_eq!(read_all(&b, &dst), vec![7; 8192]),
            // ext4, tmpfs: no reflinks.
            Err(e) => assert_eq!(e, StoreError::Unsupported),
        }
    }
}
