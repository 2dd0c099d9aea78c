//! NFS byte-range locks as kernel locks on the backing file, so that local
//! processes see and respect them (docs/locking.md).
//!
//! Each NFS lock owner that holds locks on a file gets its own open file
//! description of that file ([`PosixLockFile`], the local store's
//! [`LockFile`]) and its locks are taken on
//! it with `F_OFD_SETLK`. Open-file-description locks belong to the
//! description, not to the process: two descriptions of the same process
//! conflict with each other like two processes do, and one description's
//! locks merge, split, upgrade and downgrade exactly like one NFS lock
//! owner's ranges under POSIX semantics (RFC 7530 §9.2, RFC 8881 §9.3). So
//! the kernel arbitrates between NFS owners and local processes with the
//! same rules the server applies between NFS owners, and LOCK / LOCKU map
//! one to one onto `F_OFD_SETLK`.
//!
//! NFS ranges are unsigned 64-bit; `off_t` is signed. [`os_range`] defines
//! the part of an NFS range that the kernel holds.

use std::os::fd::{AsFd, OwnedFd};

use nfs4d_store::{LocalConflict, LockError, LockFile};

use crate::error::OsError;
use crate::sys::{self, Flock};

/// The largest offset the kernel can lock (`OFFSET_MAX` = `i64::MAX`).
pub const OFFSET_MAX: u64 = i64::MAX as u64;

// What the store interface tells the server about local locks.
const _: () = assert!(OFFSET_MAX == nfs4d_store::LOCAL_LOCK_MAX);

/// The kernel's part of the inclusive NFS range `[start, end]`, as
/// `(l_start, l_len)`:
///
/// - a range that starts past [`OFFSET_MAX`] has none (`None`): no local
///   process can lock or even address those bytes, so the lock exists in
///   the server's table only;
/// - a range that reaches [`OFFSET_MAX`] or beyond (including NFS's "all
///   ones" length, "to the end of the file and beyond") becomes "to the end
///   of the file" (`l_len == 0`), which the kernel reads as up to
///   [`OFFSET_MAX`];
/// - any other range is kept exactly.
///
/// The rule commutes with merging and splitting: the kernel's ranges of an
/// owner are always the owner's NFS ranges cut at [`OFFSET_MAX`].
pub fn os_range(start: u64, end: u64) -> Option<(i64, i64)> {
    if start > OFFSET_MAX || end < start {
        return None;
    }
    if end >= OFFSET_MAX {
        return Some((start as i64, 0));
    }
    Some((start as i64, (end - start + 1) as i64))
}

/// A kernel lock range back in NFS terms: `(offset, length)` with length
/// all ones for "to the end" (RFC 7530 §16.10.4, RFC 8881 §18.10.3).
pub fn nfs_range(l_start: i64, l_len: i64) -> (u64, u64) {
    // fcntl(2) allows a negative length (the bytes before l_start); the
    // kernel reports locks normalised, but be exact anyway.
    let (start, len) = if l_len < 0 {
        let first = l_start.saturating_add(l_len).max(0);
        (first, l_start - first)
    } else {
        (l_start, l_len)
    };
    let start = start.max(0) as u64;
    if len == 0
        || (len as u64)
            .checked_add(start)
            .is_none_or(|e| e > OFFSET_MAX)
    {
        (start, u64::MAX)
    } else {
        (start, len as u64)
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// The store error for a failed lock system call.
fn store_error(e: std::io::Error) -> LockError {
    LockError::Store(OsError::from(e).into())
}

fn lock_type(write: bool) -> libc::c_short {
    (if write { libc::F_WRLCK } else { libc::F_RDLCK }) as libc::c_short
}

fn conflict_of(l: Flock) -> LocalConflict {
    let (offset, length) = nfs_range(l.start, l.len);
    LocalConflict {
        offset,
        length,
        write: l.ty == libc::F_WRLCK as libc::c_short,
        pid: u32::try_from(l.pid).ok().filter(|p| *p > 0),
    }
}

/// How often [`PosixLockFile::lock`] retries when the lock that refused it
/// is gone before `F_OFD_GETLK` can describe it.
const CONFLICT_RETRIES: usize = 3;

/// An open file description of a backing file that carries one NFS lock
/// owner's locks. It is never shared (not with the store's fd cache
/// either, whose eviction would silently drop the locks): dropping it
/// unlocks everything and closes it.
#[derive(Debug)]
pub struct PosixLockFile {
    fd: OwnedFd,
    writable: bool,
}

impl PosixLockFile {
    /// Wraps a fresh description; `writable` when it was opened for
    /// writing (needed for write locks).
    pub fn new(fd: OwnedFd, writable: bool) -> PosixLockFile {
        PosixLockFile { fd, writable }
    }
}

impl LockFile for PosixLockFile {
    /// Whether write locks are possible on this description.
    fn writable(&self) -> bool {
        self.writable
    }

    /// Sets the lock on the inclusive NFS range `[start, end]` to read or
    /// write, converting what this description already holds there (POSIX
    /// semantics). The part past [`OFFSET_MAX`] is not the kernel's
    /// ([`os_range`]); a range entirely past it is a no-op. Never waits.
    fn lock(&self, start: u64, end: u64, write: bool) -> Result<(), LockError> {
        let Some((l_start, l_len)) = os_range(start, end) else {
            return Ok(());
        };
        if write && !self.writable {
            return Err(LockError::NotWritable);
        }
        let want = Flock {
            ty: lock_type(write),
            start: l_start,
            len: l_len,
            pid: 0,
        };
        for _ in 0..CONFLICT_RETRIES {
            match sys::ofd_setlk(self.fd.as_fd(), &want) {
                Ok(()) => return Ok(()),
                Err(e) if matches!(errno(&e), libc::EAGAIN | libc::EACCES) => {
                    match sys::ofd_getlk(self.fd.as_fd(), &want) {
                        Ok(Some(held)) => return Err(LockError::Conflict(conflict_of(held))),
                        // Released in between: try again.
                        Ok(None) => continue,
                        Err(e) => return Err(store_error(e)),
                    }
                }
                Err(e) if errno(&e) == libc::ENOLCK => return Err(LockError::NoLocks),
                Err(e) if errno(&e) == libc::EBADF && write => return Err(LockError::NotWritable),
                Err(e) => return Err(store_error(e)),
            }
        }
        // Locks keep appearing and vanishing: report the requested range
        // as held, which is what the last attempt saw.
        let (offset, length) = nfs_range(l_start, l_len);
        Err(LockError::Conflict(LocalConflict {
            offset,
            length,
            write: true,
            pid: None,
        }))
    }

    /// Releases the inclusive NFS range `[start, end]` (the kernel's part of
    /// it). Unlocking bytes that are not locked is not an error.
    fn unlock(&self, start: u64, end: u64) -> Result<(), LockError> {
        let Some((l_start, l_len)) = os_range(start, end) else {
            return Ok(());
        };
        let l = Flock {
            ty: libc::F_UNLCK as libc::c_short,
            start: l_start,
            len: l_len,
            pid: 0,
        };
        sys::ofd_setlk(self.fd.as_fd(), &l).map_err(|e| match errno(&e) {
            // Unlocking the middle of a range needs a new kernel record.
            libc::ENOLCK => LockError::NoLocks,
            _ => store_error(e),
        })
    }

    /// The first lock of another description or process that conflicts
    /// with a read or write lock on `[start, end]` (`F_OFD_GETLK`; this
    /// description's own locks never conflict).
    fn test(&self, start: u64, end: u64, write: bool) -> Result<Option<LocalConflict>, LockError> {
        let Some((l_start, l_len)) = os_range(start, end) else {
            return Ok(None);
        };
        let l = Flock {
            ty: lock_type(write),
            start: l_start,
            len: l_len,
            pid: 0,
        };
        sys::ofd_getlk(self.fd.as_fd(), &l)
            .map(|held| held.map(conflict_of))
            .map_err(store_error)
    }
}

impl Drop for PosixLockFile {
    fn drop(&mut self) {
        // Closing the last reference to the description releases its
        // locks. Unlock explicitly first: a fork() elsewhere in the process
        // may briefly hold another reference (until its exec closes it),
        // and the locks must go now, not then.
        let all = Flock {
            ty: libc::F_UNLCK as libc::c_short,
            start: 0,
            len: 0,
            pid: 0,
        };
        if let Err(e) = sys::ofd_setlk(self.fd.as_fd(), &all) {
            tracing::warn!(error = %e, "unlocking a lock file before closing it failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    #[test]
    fn range_mapping() {
        // Exact ranges stay exact.
        assert_eq!(os_range(0, 0), Some((0, 1)));
        assert_eq!(os_range(10, 19), Some((10, 10)));
        assert_eq!(os_range(0, OFFSET_MAX - 1), Some((0, i64::MAX)));
        // Reaching OFFSET_MAX or beyond: to the end.
        assert_eq!(os_range(0, OFFSET_MAX), Some((0, 0)));
        assert_eq!(os_range(5, u64::MAX), Some((5, 0)));
        assert_eq!(os_range(OFFSET_MAX, OFFSET_MAX), Some((i64::MAX, 0)));
        assert_eq!(os_range(100, OFFSET_MAX + 7), Some((100, 0)));
        // Starting beyond OFFSET_MAX: NFS only.
        assert_eq!(os_range(OFFSET_MAX + 1, u64::MAX), None);
        assert_eq!(os_range(u64::MAX, u64::MAX), None);
        // Back to NFS terms.
        assert_eq!(nfs_range(10, 10), (10, 10));
        assert_eq!(nfs_range(7, 0), (7, u64::MAX));
        assert_eq!(nfs_range(0, i64::MAX), (0, i64::MAX as u64));
        assert_eq!(nfs_range(1, i64::MAX), (1, u64::MAX));
        assert_eq!(nfs_range(20, -10), (10, 10));
        assert_eq!(nfs_range(5, -10), (0, 5));
    }

    fn description(path: &std::path::Path, write: bool) -> PosixLockFile {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .unwrap();
        PosixLockFile::new(OwnedFd::from(f), write)
    }

    #[test]
    fn descriptions_conflict_like_owners() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let a = description(&p, true);
        let b = description(&p, true);
        a.lock(0, 99, true).unwrap();
        let c = b.lock(50, 50, false).unwrap_err();
        assert_eq!(
            c,
            LockError::Conflict(LocalConflict {
                offset: 0,
                length: 100,
                write: true,
                pid: None
            })
        );
        assert_eq!(a.test(0, 99, true), Ok(None), "own locks never conflict");
        // Split by unlocking the middle; the hole is free for b.
        a.unlock(40, 59).unwrap();
        b.lock(40, 59, true).unwrap();
        assert!(b.lock(39, 40, true).is_err());
        // Downgrade a's tail to read: b may share it.
        a.lock(60, 99, false).unwrap();
        b.unlock(40, 59).unwrap();
        b.lock(60, 99, false).unwrap();
        // To the end (and past OFFSET_MAX): one kernel lock to EOF.
        a.lock(1000, u64::MAX, true).unwrap();
        let held = b.test(5000, 5000, false).unwrap().unwrap();
        assert_eq!(
            (held.offset, held.length, held.write),
            (1000, u64::MAX, true)
        );
        // Beyond OFFSET_MAX there is nothing to lock or find.
        assert_eq!(b.lock(OFFSET_MAX + 1, u64::MAX, true), Ok(()));
        assert_eq!(b.test(OFFSET_MAX + 1, u64::MAX, true), Ok(None));
        // Dropping a description releases all of its locks.
        drop(a);
        b.lock(0, u64::MAX, true).unwrap();
    }

    #[test]
    fn read_only_description_refuses_write_locks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let r = description(&p, false);
        r.lock(0, 9, false).unwrap();
        assert_eq!(r.lock(0, 9, true), Err(LockError::NotWritable));
        // Testing works on any description.
        let w = description(&p, true);
        let held = w.test(5, 5, true).unwrap().unwrap();
        assert_eq!((held.offset, held.length, held.write), (0, 10, false));
    }

    #[test]
    fn process_locks_report_their_pid() {
        // A classic process-associated lock (F_SETLK) of this process
        // conflicts with an OFD lock, and F_OFD_GETLK names its pid.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        // SAFETY: zeroed flock is valid; fields set below.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = 10;
        fl.l_len = 5;
        use std::os::fd::AsRawFd;
        // SAFETY: valid fd and flock for the duration of the call.
        assert_eq!(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) }, 0);
        let d = description(&p, true);
        match d.lock(0, 11, false) {
            Err(LockError::Conflict(c)) => {
                assert_eq!((c.offset, c.length, c.write), (10, 5, true));
                assert_eq!(c.pid, Some(std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(f);
        d.lock(0, 11, false).unwrap();
    }
}
