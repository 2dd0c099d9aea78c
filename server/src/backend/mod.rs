//! Path-based storage backends.
//!
//! A backend names objects by their path relative to the export root
//! ([`RelPath`]) and has no stable inode numbers the server could put in a
//! filehandle; the filehandle map above this layer turns paths into handles.
//! What a backend *does* provide is an [`ObjIdentity`] per object, so the
//! layers above can tell "the same object, maybe renamed" from "a different
//! object that now lives at the same path".
//!
//! Rules every implementation follows:
//! - Calls are synchronous and may block; the server runs them on a blocking
//!   thread pool, concurrently, so implementations are `Send + Sync`.
//! - No call panics on any input; every failure is a [`BackendError`].
//! - Symlinks are never followed, neither as intermediate components nor as
//!   the final one: the NFS client resolves symlinks itself (LOOKUP of a
//!   symlink is `NFS4ERR_SYMLINK`, RFC 8881 §18.13).
//! - Permission checks happen above this layer; ownership of new objects is
//!   passed explicitly as an [`Owner`].
//!
//! Nothing in the trait assumes inodes: an object store would fill
//! [`ObjIdentity`] from an etag/version and report `ino`/`dev` as it sees fit.

use std::fmt;

pub mod local;
pub mod posix_locks;
mod sys;

mod dircache;
mod fdcache;
mod groupsync;
mod lease;

pub use local::LocalBackend;

/// Longest single path component, in bytes (Linux `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Longest extended-attribute value, in bytes (Linux `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;

/// Longest extended-attribute name *without* the `user.` prefix: Linux caps the
/// full name at `XATTR_NAME_MAX` = 255 bytes.
pub const XATTR_NAME_MAX: usize = 255 - XATTR_USER_PREFIX.len();

/// NFS extended attributes (RFC 8276) map to Linux's `user.` namespace.
pub(crate) const XATTR_USER_PREFIX: &[u8] = b"user.";

// ---------------------------------------------------------------------------
// Names and paths
// ---------------------------------------------------------------------------

/// Why a byte string is not a valid path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("name is \".\"")]
    Dot,
    #[error("name is \"..\"")]
    DotDot,
    #[error("name contains '/'")]
    Slash,
    #[error("name contains NUL")]
    Nul,
    #[error("name longer than {NAME_MAX} bytes")]
    TooLong,
}

/// One validated path component: non-empty, at most [`NAME_MAX`] bytes, no
/// `/`, no NUL, not `.` or `..`.
///
/// Kept as raw bytes: POSIX names are byte strings, and the server decides
/// separately whether it insists on UTF-8 (RFC 7530 §12).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Vec<u8>);

impl Name {
    pub fn new(bytes: &[u8]) -> Result<Name, NameError> {
        match bytes {
            [] => return Err(NameError::Empty),
            b"." => return Err(NameError::Dot),
            b".." => return Err(NameError::DotDot),
            _ => {}
        }
        if bytes.len() > NAME_MAX {
            return Err(NameError::TooLong);
        }
        if bytes.contains(&b'/') {
            return Err(NameError::Slash);
        }
        if bytes.contains(&0) {
            return Err(NameError::Nul);
        }
        Ok(Name(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Name, NameError> {
        Name::new(s.as_bytes())
    }
}

impl AsRef<[u8]> for Name {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// A validated path relative to the export root: a sequence of [`Name`]s.
/// The empty sequence is the root itself.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<Name>);

impl RelPath {
    /// The export root.
    pub fn root() -> RelPath {
        RelPath(Vec::new())
    }

    /// Parses `a/b/c`; the empty string is the root. Leading, trailing or
    /// doubled slashes are rejected (they would be empty components).
    pub fn parse(bytes: &[u8]) -> Result<RelPath, NameError> {
        if bytes.is_empty() {
            return Ok(RelPath::root());
        }
        bytes
            .split(|&b| b == b'/')
            .map(Name::new)
            .collect::<Result<Vec<_>, _>>()
            .map(RelPath)
    }

    pub fn from_names(names: Vec<Name>) -> RelPath {
        RelPath(names)
    }

    pub fn join(&self, name: &Name) -> RelPath {
        let mut v = self.0.clone();
        v.push(name.clone());
        RelPath(v)
    }

    /// The containing directory; `None` for the root.
    pub fn parent(&self) -> Option<RelPath> {
        self.split_last().map(|(parent, _)| parent)
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&Name> {
        self.0.last()
    }

    /// `(parent, last component)`; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &Name)> {
        let (last, rest) = self.0.split_last()?;
        Some((RelPath(rest.to_vec()), last))
    }

    pub fn components(&self) -> &[Name] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of components (0 for the root).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Component-wise prefix test (`a/b` starts with `a`, not with `a/bc`).
    pub fn starts_with(&self, prefix: &RelPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// `a/b/c` as bytes; empty for the root.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .map(Name::as_bytes)
            .collect::<Vec<_>>()
            .join(&b'/')
    }
}

/// `a/b/c` (lossy UTF-8); the root displays as `.`.
impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.to_string())
    }
}

// ---------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    BlockDev,
    CharDev,
    Fifo,
    Socket,
}

/// A point in time: seconds since the Unix epoch plus nanoseconds (< 10⁹).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

/// What distinguishes an object from a *different* object that later appears
/// at the same path. Delete + recreate often reuses the inode number (ext4,
/// tmpfs), so `(dev, ino)` alone is not enough; `gen` disambiguates.
///
/// For [`LocalBackend`], `gen` is, in order of preference:
/// 1. the birth time in nanoseconds (`statx` `STATX_BTIME`) when the
///    filesystem reports it (ext4 with ≥256-byte inodes, xfs v5, btrfs, tmpfs);
/// 2. the inode generation from `ioctl(FS_IOC_GETVERSION)` (ext2/3/4, xfs,
///    btrfs) — costs an `open(2)`, and only works for regular files and
///    directories;
/// 3. `0`. Weak: an object deleted and recreated with the same inode number
///    then looks identical. On filesystems whose timestamps are coarse
///    (jiffies, before Linux 6.6 multigrain timestamps) source 1 can also
///    collide if delete + recreate with inode reuse happens within one tick.
///
/// An object store would put an etag/version here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjIdentity {
    pub dev: u64,
    pub ino: u64,
    pub gen: u64,
}

/// What a local process did to a file the server holds a lease on
/// ([`Backend::leases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseBreak {
    /// Opened it in a conflicting way (or truncated it): the kernel is
    /// breaking the lease and holds that process back meanwhile.
    Opened,
    /// Removed, renamed, linked it, renamed another file over it, or
    /// changed its mode, owner, times or xattrs.
    Changed,
}

/// Where [`ObjIdentity::gen`] comes from on a given export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenSource {
    BirthTime,
    InodeGeneration,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    pub kind: FileKind,
    /// Permission bits including suid/sgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Bytes actually allocated.
    pub space_used: u64,
    /// `(major, minor)` for block/char devices, `(0, 0)` otherwise.
    pub rdev: (u32, u32),
    pub dev: u64,
    pub ino: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Birth time, when the filesystem records it.
    pub btime: Option<Timespec>,
    pub identity: ObjIdentity,
}

/// Ownership given to newly created objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The server's current time (NFS `SET_TO_SERVER_TIME4`).
    ServerNow,
    /// `(seconds, nanoseconds)` from the client; nanoseconds must be < 10⁹.
    Client(i64, u32),
}

/// Attributes to change; `None` leaves an attribute alone. Applied in the
/// order owner → mode → size → times, because `chown(2)` clears suid/sgid and
/// truncation updates mtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// How durable a write must be before it returns (RFC 8881 §18.32 `stable_how4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stability {
    /// May stay in the page cache; a later `fsync` (COMMIT) makes it durable.
    Unstable,
    /// Data durable (`fdatasync(2)`).
    DataSync,
    /// Data and all metadata durable (`fsync(2)`).
    FileSync,
}

/// `setxattr(2)` flags (RFC 8276 `setxattr_option4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrSet {
    Either,
    /// Fail with [`BackendError::Exists`] if the attribute exists.
    Create,
    /// Fail with [`BackendError::NoXattr`] if it does not.
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Free bytes available to unprivileged users.
    pub avail_bytes: u64,
    pub total_files: u64,
    pub free_files: u64,
    pub avail_files: u64,
    pub name_max: u32,
}

/// One directory entry. Attributes are not included (they cost a `statx`
/// each); callers that need them `lookup` the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    /// Position *after* this entry: pass it back to `readdir` to resume.
    /// Never 0, 1 or 2 (RFC 8881 §18.23.3 reserves them).
    pub cookie: u64,
    pub ino: u64,
    pub kind: FileKind,
}

/// A directory entry as [`Backend::readdir_each`] passes it on.
#[derive(Debug, Clone, Copy)]
pub struct DirEntryRef<'a> {
    pub name: &'a [u8],
    /// Position after this entry, as in [`DirEntry::cookie`].
    pub cookie: u64,
    pub ino: u64,
    pub kind: FileKind,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure, carrying the errno-like kind the server maps to an `nfsstat4`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    Perm,
    #[error("no space left on device")]
    NoSpace,
    #[error("disk quota exceeded")]
    Quota,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument")]
    Invalid,
    #[error("file too big")]
    TooBig,
    #[error("too many links")]
    TooManyLinks,
    /// The object vanished or was replaced while the operation ran.
    #[error("stale object")]
    Stale,
    /// A symlink where a directory component or a non-symlink object was
    /// required (`ELOOP` from `RESOLVE_NO_SYMLINKS`/`O_NOFOLLOW`). Symlinks are
    /// never followed by the server.
    #[error("symbolic link in the way")]
    Symlink,
    /// A regular file was required but the object is a device, fifo or
    /// socket (NFSv4.1 `NFS4ERR_WRONG_TYPE`).
    #[error("wrong object type")]
    WrongType,
    /// The path crosses a mount point (`EXDEV`).
    #[error("cross-device")]
    CrossDevice,
    #[error("operation not supported")]
    NotSupported,
    /// `readdir` cookie this backend never handed out.
    #[error("bad readdir cookie")]
    BadCookie,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("extended attribute too big")]
    XattrTooBig,
    /// The backend cannot be set up (e.g. the kernel lacks `openat2`).
    #[error("backend setup: {0}")]
    Setup(String),
    /// Any other errno.
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

impl BackendError {
    /// Maps an errno to the closest kind; unknown values become [`Io`](Self::Io).
    pub fn from_errno(errno: i32) -> BackendError {
        use BackendError::*;
        match errno {
            libc::ENOENT => NotFound,
            libc::EEXIST => Exists,
            libc::ENOTDIR => NotDir,
            libc::EISDIR => IsDir,
            libc::ENOTEMPTY => NotEmpty,
            libc::EACCES => Access,
            libc::EPERM => Perm,
            libc::ENOSPC => NoSpace,
            libc::EDQUOT => Quota,
            libc::EROFS => ReadOnly,
            libc::ENAMETOOLONG => NameTooLong,
            libc::EINVAL => Invalid,
            libc::EFBIG => TooBig,
            libc::EMLINK => TooManyLinks,
            libc::ESTALE => Stale,
            libc::ELOOP => Symlink,
            libc::EXDEV => CrossDevice,
            libc::EOPNOTSUPP => NotSupported, // == ENOTSUP on Linux
            libc::ENODATA => NoXattr,         // getxattr(2): "ENODATA" (a.k.a. ENOATTR)
            libc::E2BIG => XattrTooBig,
            e => Io(e),
        }
    }

    /// The errno this error corresponds to.
    pub fn errno(&self) -> i32 {
        use BackendError::*;
        match self {
            NotFound => libc::ENOENT,
            Exists => libc::EEXIST,
            NotDir => libc::ENOTDIR,
            IsDir => libc::EISDIR,
            NotEmpty => libc::ENOTEMPTY,
            Access => libc::EACCES,
            Perm => libc::EPERM,
            NoSpace => libc::ENOSPC,
            Quota => libc::EDQUOT,
            ReadOnly => libc::EROFS,
            NameTooLong => libc::ENAMETOOLONG,
            Invalid | WrongType | BadCookie => libc::EINVAL,
            TooBig => libc::EFBIG,
            TooManyLinks => libc::EMLINK,
            Stale => libc::ESTALE,
            Symlink => libc::ELOOP,
            CrossDevice => libc::EXDEV,
            NotSupported => libc::EOPNOTSUPP,
            NoXattr => libc::ENODATA,
            XattrTooBig => libc::E2BIG,
            Setup(_) => libc::ENOSYS,
            Io(e) => *e,
        }
    }
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> BackendError {
        match e.raw_os_error() {
            Some(errno) => BackendError::from_errno(errno),
            None => BackendError::Io(libc::EIO),
        }
    }
}

impl From<NameError> for BackendError {
    fn from(e: NameError) -> BackendError {
        match e {
            NameError::TooLong => BackendError::NameTooLong,
            _ => BackendError::Invalid,
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

// ---------------------------------------------------------------------------
// The trait
// ---------------------------------------------------------------------------

/// A path-based store. All paths are relative to the export root; no method
/// follows a symlink. Methods block.
pub trait Backend: Send + Sync + 'static {
    /// Attributes of the object at `path`; a final symlink is reported as a
    /// symlink (lstat semantics).
    fn stat(&self, path: &RelPath) -> BackendResult<Attrs>;

    /// Attributes of `dir/name` (lstat semantics).
    fn lookup(&self, dir: &RelPath, name: &Name) -> BackendResult<Attrs>;

    /// Appends up to `len` bytes read at `offset` to `buf`. Returns the number
    /// of bytes appended and whether the read reached end of file. Reading at
    /// or past EOF yields `(0, true)`.
    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> BackendResult<(usize, bool)>;

    /// Writes `data` at `offset` and returns how many bytes were written (less
    /// than `data.len()` only if an error stopped a partial write).
    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> BackendResult<usize>;

    /// Creates a regular file `dir/name` with permission bits `mode` owned by
    /// `owner`. With `exclusive` an existing object is an error
    /// ([`BackendError::Exists`]); without, an existing regular file is
    /// returned unchanged with `created == false` (and a non-file fails,
    /// e.g. [`BackendError::IsDir`]).
    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> BackendResult<(Attrs, bool)>;

    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> BackendResult<Attrs>;

    /// Creates a symlink whose target is stored verbatim; it may point
    /// anywhere — it is data, never followed by the server.
    fn symlink(
        &self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
    ) -> BackendResult<Attrs>;

    /// Creates a fifo, socket, block or char device (`kind` must be one of
    /// those, else [`BackendError::Invalid`]). `rdev` is `(major, minor)`.
    fn mknod(
        &self,
        dir: &RelPath,
        name: &Name,
        kind: FileKind,
        mode: u32,
        rdev: (u32, u32),
        owner: Owner,
    ) -> BackendResult<Attrs>;

    /// Hard-links the object at `src` (a symlink is linked itself, not its
    /// target) as `dst_dir/dst_name`. Returns the object's new attributes.
    fn link(&self, src: &RelPath, dst_dir: &RelPath, dst_name: &Name) -> BackendResult<Attrs>;

    /// POSIX `rename(2)` within the export, replacing a compatible target.
    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> BackendResult<()>;

    /// Removes a non-directory and returns its attributes from just before
    /// removal. A directory fails with [`BackendError::IsDir`].
    fn remove(&self, dir: &RelPath, name: &Name) -> BackendResult<Attrs>;

    /// Removes an empty directory.
    fn rmdir(&self, dir: &RelPath, name: &Name) -> BackendResult<()>;

    /// The symlink's target bytes, verbatim.
    fn readlink(&self, path: &RelPath) -> BackendResult<Vec<u8>>;

    /// Up to `max_entries` entries of `dir` (without `.` and `..`) after
    /// position `cookie` (0 = start), and whether the end was reached.
    fn readdir(
        &self,
        dir: &RelPath,
        cookie: u64,
        max_entries: usize,
    ) -> BackendResult<(Vec<DirEntry>, bool)>;

    /// Visits the entries of `dir` after `cookie` (0 = start) in order, each
    /// with its lstat attributes when `stat` is set, until `visit` returns
    /// false (`Ok(false)`) or the end is reached (`Ok(true)`). An entry
    /// removed before it could be stat'ed is skipped. Backends that can
    /// should stat relative to the directory they read rather than
    /// resolving each path again.
    fn readdir_each(
        &self,
        dir: &RelPath,
        cookie: u64,
        stat: bool,
        visit: &mut dyn FnMut(DirEntryRef<'_>, Option<BackendResult<Attrs>>) -> bool,
    ) -> BackendResult<bool>;

    /// Applies `set` (see [`SetAttrs`] for the order) and returns the new
    /// attributes. Changing the mode of a symlink is
    /// [`BackendError::NotSupported`] (Linux has no `lchmod`).
    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> BackendResult<Attrs>;

    fn statfs(&self) -> BackendResult<FsStats>;

    /// Makes a regular file's data and metadata durable (NFS COMMIT), or a
    /// directory's entries.
    fn fsync(&self, path: &RelPath) -> BackendResult<()>;

    /// Makes the entries of directory `dir` durable (after create/rename/remove).
    fn sync_dir(&self, dir: &RelPath) -> BackendResult<()>;

    /// Value of extended attribute `user.<name>`.
    fn getxattr(&self, path: &RelPath, name: &[u8]) -> BackendResult<Vec<u8>>;

    fn setxattr(
        &self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
    ) -> BackendResult<()>;

    /// Names of the `user.*` attributes, without the `user.` prefix.
    fn listxattr(&self, path: &RelPath) -> BackendResult<Vec<Vec<u8>>>;

    fn removexattr(&self, path: &RelPath, name: &[u8]) -> BackendResult<()>;

    // --- space management and server-side copy (NFSv4.2, RFC 7862) ---------
    //
    // Optional: the defaults report [`BackendError::NotSupported`], which the
    // server answers with NFS4ERR_NOTSUPP.

    /// Reserves backing space for `len` bytes at `offset` of a regular file,
    /// extending its size when the range ends past end of file (Linux
    /// `fallocate(mode 0)`). `len` must be non-zero and the range must end
    /// at most at `i64::MAX` ([`BackendError::TooBig`] otherwise).
    fn allocate(&self, path: &RelPath, offset: u64, len: u64) -> BackendResult<()> {
        let _ = (path, offset, len);
        Err(BackendError::NotSupported)
    }

    /// Releases the space of `len` bytes at `offset` of a regular file: the
    /// range reads back as zeros and the size is unchanged (Linux
    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`). A range past end of file is a
    /// no-op.
    fn deallocate(&self, path: &RelPath, offset: u64, len: u64) -> BackendResult<()> {
        let _ = (path, offset, len);
        Err(BackendError::NotSupported)
    }

    /// The first offset at or after `offset` that holds data, or `None` when
    /// there is none before end of file (or `offset` is at or past it)
    /// (`lseek(SEEK_DATA)`). Filesystems without hole tracking report the
    /// whole file as data.
    fn seek_data(&self, path: &RelPath, offset: u64) -> BackendResult<Option<u64>> {
        let _ = (path, offset);
        Err(BackendError::NotSupported)
    }

    /// The first offset at or after `offset` inside a hole — end of file
    /// counts as one — or `None` when `offset` is at or past end of file
    /// (`lseek(SEEK_HOLE)`).
    fn seek_hole(&self, path: &RelPath, offset: u64) -> BackendResult<Option<u64>> {
        let _ = (path, offset);
        Err(BackendError::NotSupported)
    }

    /// Makes `len` bytes of `dst` at `dst_off` share the storage of `src` at
    /// `src_off` (reflink, `FICLONERANGE`). Filesystems that cannot share
    /// extents, or not between these two files, give
    /// [`BackendError::NotSupported`]; misaligned ranges
    /// [`BackendError::Invalid`].
    fn clone_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> BackendResult<()> {
        let _ = (src, src_off, dst, dst_off, len);
        Err(BackendError::NotSupported)
    }

    /// Copies up to `len` bytes of `src` at `src_off` to `dst` at `dst_off`
    /// inside the store (`copy_file_range`, falling back to reads and writes
    /// where the kernel cannot). Returns the bytes copied: fewer than `len`
    /// only when the source ends first (or an error stops a partial copy).
    /// Overlapping ranges of one file are [`BackendError::Invalid`]. Not
    /// durable until `fsync(dst)`.
    fn copy_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> BackendResult<u64> {
        let _ = (src, src_off, dst, dst_off, len);
        Err(BackendError::NotSupported)
    }

    /// Makes local users of the store visible to delegations: takes a lease
    /// on the object at `path` (a write lease for a write delegation, a
    /// read lease otherwise), named `tag`, that a local process opening it
    /// in a conflicting way breaks ([`Backend::leases`] reports it). Returns
    /// false when a local user already conflicts, so no delegation may be
    /// granted. Taking a lease already held under `tag` is a no-op. Stores
    /// no local process can reach have nothing to watch and say true.
    fn lease(&self, path: &RelPath, write: bool, tag: u64) -> BackendResult<bool> {
        let _ = (path, write, tag);
        Ok(true)
    }

    /// Releases the lease named `tag`, if held.
    fn unlease(&self, tag: u64) {
        let _ = tag;
    }

    /// The leases held: their tags, and what, if anything, a local process
    /// did that conflicts with each one.
    fn leases(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        Vec::new()
    }

    // --- kernel byte-range locks (docs/locking.md) ---------------------------

    /// A new open file description of the regular file at `path` that will
    /// carry one NFS lock owner's byte-range locks as kernel locks
    /// ([`posix_locks::PosixLockFile`]), so local processes see them. Opened
    /// for writing when `write` and the file allows it, read-only
    /// otherwise; never shared with a descriptor cache, whose eviction
    /// would drop the locks. `Ok(None)` means the store has no kernel
    /// locks and the server's own lock table is the only arbiter (the
    /// default).
    fn open_lock_file(
        &self,
        path: &RelPath,
        write: bool,
    ) -> BackendResult<Option<posix_locks::PosixLockFile>> {
        let _ = (path, write);
        Ok(None)
    }
}

/// Full on-disk xattr name (`user.<name>`), validated.
pub(crate) fn user_xattr_name(name: &[u8]) -> BackendResult<Vec<u8>> {
    if name.is_empty() || name.contains(&0) {
        return Err(BackendError::Invalid);
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(BackendError::NameTooLong);
    }
    let mut full = XATTR_USER_PREFIX.to_vec();
    full.extend_from_slice(name);
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_validation() {
        assert_eq!(Name::new(b""), Err(NameError::Empty));
        assert_eq!(Name::new(b"."), Err(NameError::Dot));
        assert_eq!(Name::new(b".."), Err(NameError::DotDot));
        assert_eq!(Name::new(b"a/b"), Err(NameError::Slash));
        assert_eq!(Name::new(b"/"), Err(NameError::Slash));
        assert_eq!(Name::new(b"a\0b"), Err(NameError::Nul));
        assert_eq!(Name::new(&[b'x'; 256]), Err(NameError::TooLong));
        assert!(Name::new(&[b'x'; 255]).is_ok());
        assert!(Name::new(b"...").is_ok());
        assert!(Name::new(b".hidden").is_ok());
        // Non-UTF-8 bytes are fine at this layer.
        assert!(Name::new(b"\xff\xfe").is_ok());
    }

    #[test]
    fn relpath_ops() {
        let root = RelPath::root();
        assert!(root.is_root());
        assert_eq!(root.parent(), None);
        assert_eq!(root.file_name(), None);
        assert_eq!(root.to_string(), ".");
        assert_eq!(RelPath::parse(b""), Ok(RelPath::root()));

        let p = RelPath::parse(b"a/b/c").expect("valid");
        assert_eq!(p.len(), 3);
        assert_eq!(p.to_string(), "a/b/c");
        assert_eq!(p.file_name().map(Name::as_bytes), Some(&b"c"[..]));
        let parent = p.parent().expect("has parent");
        assert_eq!(parent, RelPath::parse(b"a/b").expect("valid"));
        assert_eq!(parent.join(&Name::new(b"c").expect("valid")), p);
        assert!(p.starts_with(&parent));
        assert!(p.starts_with(&root));
        assert!(!p.starts_with(&RelPath::parse(b"a/bb").expect("valid")));

        for bad in [&b"/a"[..], b"a/", b"a//b", b"a/../b", b"./a", b"a\0"] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errno_round_trip() {
        for e in [
            libc::ENOENT,
            libc::EEXIST,
            libc::ENOTDIR,
            libc::EISDIR,
            libc::ENOTEMPTY,
            libc::EACCES,
            libc::EPERM,
            libc::ENOSPC,
            libc::EDQUOT,
            libc::EROFS,
            libc::ENAMETOOLONG,
            libc::EINVAL,
            libc::EFBIG,
            libc::EMLINK,
            libc::ESTALE,
            libc::ELOOP,
            libc::EXDEV,
            libc::EOPNOTSUPP,
            libc::ENODATA,
            libc::E2BIG,
            libc::EIO,
            libc::EBUSY,
        ] {
            assert_eq!(BackendError::from_errno(e).errno(), e);
        }
        let io = std::io::Error::from_raw_os_error(libc::ELOOP);
        assert_eq!(BackendError::from(io), BackendError::Symlink);
        assert_eq!(
            BackendError::from(std::io::Error::other("x")),
            BackendError::Io(libc::EIO)
        );
    }

    #[test]
    fn xattr_names() {
        assert_eq!(user_xattr_name(b"foo"), Ok(b"user.foo".to_vec()));
        assert_eq!(user_xattr_name(b""), Err(BackendError::Invalid));
        assert_eq!(user_xattr_name(b"a\0"), Err(BackendError::Invalid));
        assert!(user_xattr_name(&[b'x'; XATTR_NAME_MAX]).is_ok());
        assert_eq!(
            user_xattr_name(&[b'x'; XATTR_NAME_MAX + 1]),
            Err(BackendError::NameTooLong)
        );
    }
}
