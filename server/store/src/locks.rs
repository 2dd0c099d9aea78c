//! Byte-range locks that local users of a store see (docs/locking.md).
//!
//! A store with [`crate::Capabilities::local_locks`] hands the server one
//! [`LockFile`] per NFS lock owner and file; the owner's ranges are taken
//! on it as the store's own locks, so the store arbitrates between NFS
//! owners and local processes with POSIX rules. Ranges are inclusive and
//! unsigned 64-bit, as NFS has them (RFC 8881 §9.3); a store whose locks
//! cover less (a kernel's signed `off_t`) says which part it holds.

/// The largest offset local locks cover: POSIX locks take a signed 64-bit
/// `off_t`, so the part of an NFS range past it exists in the server's lock
/// table only (no local process can address those bytes).
pub const LOCAL_LOCK_MAX: u64 = i64::MAX as u64;

/// A lock held by something other than this lock file: a local process
/// or another lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalConflict {
    /// First byte.
    pub offset: u64,
    /// Length, all ones for "to the end".
    pub length: u64,
    /// A write (exclusive) lock.
    pub write: bool,
    /// The holder's process id, for process-associated locks.
    pub pid: Option<u32>,
}

/// Why a lock operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockError {
    /// Another holder has a conflicting lock.
    Conflict(LocalConflict),
    /// A write lock on a lock file that could only be opened for reading.
    NotWritable,
    /// The store is out of lock records.
    NoLocks,
    /// Any other failure.
    Store(crate::StoreError),
}

/// One lock owner's locks on one file. Dropping it releases them all.
pub trait LockFile: Send + Sync + std::fmt::Debug {
    /// Whether write locks are possible.
    fn writable(&self) -> bool;

    /// Sets the lock on `[start, end]` to read or write, converting what
    /// this lock file already holds there (POSIX semantics). Never waits.
    fn lock(&self, start: u64, end: u64, write: bool) -> Result<(), LockError>;

    /// Releases `[start, end]`; unlocking bytes not locked is no error.
    fn unlock(&self, start: u64, end: u64) -> Result<(), LockError>;

    /// The first lock of another holder that conflicts with a read or
    /// write lock on `[start, end]`.
    fn test(&self, start: u64, end: u64, write: bool) -> Result<Option<LocalConflict>, LockError>;
}
