//! What stores report and take: attributes, identities, ownership, the
//! changes SETATTR asks for, listing positions.

use std::sync::Arc;

/// The type of an object.
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

impl Timespec {
    /// Nanoseconds since the epoch, wrapping (for change counters).
    pub fn as_nanos_wrapping(self) -> u64 {
        (self.sec as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(self.nsec))
    }
}

/// What tells an object from a *different* object that later appears at
/// the same path. The handle map records it when it issues a handle and
/// compares it on every use: a mismatch means the object was replaced
/// behind the server's back, and the handle must never reach the newcomer
/// (RFC 8881 §4.2.2, §4.2.3).
///
/// A local directory fills it from the inode: `space` is the device,
/// `object` the inode number, `incarnation` the birth time or inode
/// generation (delete and recreate often reuses an inode number). A store
/// without inodes derives `object` from what it keeps per object and
/// `incarnation` from what changes when an object is replaced rather than
/// modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Identity {
    /// Which namespace `object` is unique in (a device); 0 when the store
    /// has one.
    pub space: u64,
    /// The object, shared by all its hard links; reported as `fileid`.
    pub object: u64,
    /// Changes when the object at a name is replaced by another that
    /// reuses `object`; 0 when the store cannot tell.
    pub incarnation: u64,
}

/// What a local process did to a file the server holds a lease on
/// ([`crate::Store::leases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseBreak {
    /// Opened it in a conflicting way (or truncated it): the store is
    /// breaking the lease and holds that process back meanwhile.
    Opened,
    /// Removed, renamed, linked it, renamed another file over it, or
    /// changed its mode, owner, times or xattrs.
    Changed,
}

/// What [`Store::create_file`](crate::Store::create_file) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The file's attributes.
    pub attrs: Attrs,
    /// Whether this call made the file; `false` when it found an existing
    /// regular file (a create without `exclusive`).
    pub created: bool,
    /// The directory's attributes once the file was made, where the store
    /// had them at hand for the create (a local directory holds the
    /// directory open for it); `None` where they would cost a call of their
    /// own, and when nothing was created. They are the `after` of the
    /// change_info4 an OPEN that creates answers (RFC 8881 §18.16.4), read
    /// without resolving the directory's path again.
    pub dir_after: Option<Attrs>,
}

/// Attributes of an object.
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
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    /// Birth time, when the store records it.
    pub btime: Option<Timespec>,
    /// Moves on every change of data or metadata and survives restarts,
    /// as RFC 8881 §5.8.1.4 requires of the `change` attribute.
    pub change: u64,
    pub identity: Identity,
}

impl Attrs {
    /// The `fileid` attribute: the object's identity within its store.
    pub fn fileid(&self) -> u64 {
        self.identity.object
    }
}

/// Ownership given to newly created objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// A time SETATTR sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// The server's current time (NFS `SET_TO_SERVER_TIME4`).
    ServerNow,
    /// `(seconds, nanoseconds)` from the client; nanoseconds must be < 10⁹.
    Client(i64, u32),
}

/// Attributes to change; `None` leaves an attribute alone. Applied in the
/// order owner → mode → size → times, because `chown(2)` clears suid/sgid
/// and truncation updates mtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

/// How durable a write must be before it returns (RFC 8881 §18.32
/// `stable_how4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stability {
    /// May stay staged; a later [`crate::Store::commit`] makes it durable.
    Unstable,
    /// Data durable.
    DataSync,
    /// Data and all metadata durable.
    FileSync,
}

/// `setxattr` flags (RFC 8276 `setxattr_option4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XattrSet {
    Either,
    /// Fail with [`crate::StoreError::Exists`] if the attribute exists.
    Create,
    /// Fail with [`crate::StoreError::NoXattr`] if it does not.
    Replace,
}

/// File-system statistics (RFC 8881 `space_*`, `files_*`, `maxname`).
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

/// A place in a directory listing, opaque to the server: where to resume
/// after an entry. A store either hands out compact offsets that stay
/// valid across restarts ([`crate::Positions::Offsets`]: a getdents
/// offset), or the key to list after ([`crate::Positions::Keys`]: the
/// `StartAfter` of an object listing, or a continuation token). The
/// server turns positions into the 64-bit cookies of READDIR.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ListPos {
    /// The beginning of the directory.
    #[default]
    Start,
    /// A store offset; never 0, 1 or 2 (RFC 8881 §18.23.3 reserves those
    /// cookies).
    Offset(u64),
    /// A store key or token.
    Key(Arc<[u8]>),
}

/// One directory entry as [`crate::Store::list`] passes it on.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub name: &'a [u8],
    /// The position after this entry: pass it back to resume.
    pub next: ListPos,
    /// The object's identity number (`Identity::object`), 0 when the store
    /// learns it only by a stat.
    pub object: u64,
    /// Its type (a store whose listing does not say finds out).
    pub kind: FileKind,
}
