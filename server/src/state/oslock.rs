//! The kernel side of byte-range locks (docs/locking.md): every lock owner
//! that holds locks on a file has one open file description of the backing
//! file ([`PosixLockFile`]) carrying the same locks as kernel
//! open-file-description locks, so local processes see NFS locks and NFS
//! clients see local ones.
//!
//! The table lives in [`super::Inner`], behind the state mutex, so the
//! server's own conflict check, the kernel's (`F_OFD_SETLK`, which never
//! waits) and the bookkeeping are one step that no other NFS request can
//! interleave with. Every path that drops an owner's lock state — LOCKU of
//! its last range, CLOSE, RELEASE_LOCKOWNER, FREE_STATEID, lease expiry,
//! client purge — goes through [`super::Inner::remove_state`] or
//! [`super::StateManager::unlock_range`], which drop the description; that
//! unlocks and closes it. Opening a description is file-system I/O and
//! happens before the mutex is taken ([`Prepared`]).

use std::collections::HashMap;

use super::lock::{Denied, LockType};
use super::{ClientId, FileKey, OwnerKey, StateManager};
use crate::backend::posix_locks::{LocalConflict, LockError, PosixLockFile, OFFSET_MAX};
use crate::backend::BackendError;
use crate::error::NfsError;

/// The client id LOCK4denied carries for a lock of a local process. The
/// server never issues client id 0: the high half of its client ids is
/// the boot id, which is at least 2 (server.rs).
pub const LOCAL_CLIENTID: ClientId = 0;

/// The owner LOCK4denied names for a lock held outside NFS: client id
/// [`LOCAL_CLIENTID`] and `local-process:<pid>` for a classic
/// process-associated lock (`fcntl(F_SETLK)`, `lockf`), or `local-process`
/// for an open-file-description lock, which has no pid.
pub fn local_owner(pid: Option<u32>) -> OwnerKey {
    let name = match pid {
        Some(p) => format!("local-process:{p}"),
        None => "local-process".to_string(),
    };
    (LOCAL_CLIENTID, name.into_bytes())
}

/// A local lock as LOCK/LOCKT report a conflict.
pub fn denied(c: LocalConflict) -> Denied {
    Denied {
        offset: c.offset,
        length: c.length,
        ty: if c.write {
            LockType::Write
        } else {
            LockType::Read
        },
        owner: local_owner(c.pid),
    }
}

/// The NFS answer to a failed kernel lock operation: a conflict is a
/// denial (its description), the rest are errors with a log line.
fn answer(e: LockError, file: FileKey) -> Result<Denied, NfsError> {
    match e {
        LockError::Conflict(c) => Ok(denied(c)),
        LockError::NotWritable => {
            // RFC 7530 §16.10.5 / RFC 8881 §18.10.4: a write lock on a
            // file the server cannot open for writing.
            tracing::info!(
                export = file.0,
                "write lock refused: the backing file cannot be opened for writing"
            );
            Err(NfsError::OpenMode)
        }
        LockError::NoLocks => {
            tracing::warn!(
                export = file.0,
                "the kernel is out of lock records (ENOLCK)"
            );
            Err(NfsError::Resource)
        }
        LockError::Os(n) => {
            let err = BackendError::from_errno(n);
            tracing::warn!(export = file.0, error = %err, "kernel byte-range lock failed");
            Err(NfsError::Backend(err))
        }
    }
}

/// What LOCK brings for the kernel side, prepared before the state mutex
/// is taken.
#[derive(Debug)]
pub enum Prepared {
    /// The owner already had a description for the file when looked at.
    Held,
    /// A new description, for an owner that had none.
    Fresh(PosixLockFile),
    /// No kernel lock: the store has none, or the range lies entirely past
    /// the kernel's largest offset.
    NfsOnly,
}

/// The descriptions that carry locks, by (lock owner, file).
#[derive(Debug, Default)]
pub struct OsLocks {
    files: HashMap<(OwnerKey, FileKey), PosixLockFile>,
}

impl OsLocks {
    /// The owner's description of `file`.
    pub fn get(&self, owner: &OwnerKey, file: FileKey) -> Option<&PosixLockFile> {
        self.files.get(&(owner.clone(), file))
    }

    /// Descriptions held.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Unlocks and closes the owner's description of `file`, if any.
    pub fn release(&mut self, owner: &OwnerKey, file: FileKey) {
        self.files.remove(&(owner.clone(), file));
    }

    /// Unlocks and closes every description of a client's owners.
    pub fn release_client(&mut self, client: ClientId) {
        self.files.retain(|(owner, _), _| owner.0 != client);
    }
}

impl StateManager {
    /// Whether `owner` has a lock description for `file`.
    pub fn has_lock_file(&self, owner: &OwnerKey, file: FileKey) -> bool {
        self.lock().os_locks.get(owner, file).is_some()
    }

    /// Lock descriptions held, across all clients.
    pub fn lock_files(&self) -> usize {
        self.lock().os_locks.len()
    }

    /// LOCKT: the first conflicting lock, NFS owners' first (so the reply
    /// names a real owner when there is one), then the kernel's: locks of
    /// local processes. `probe` is a description for the kernel check when
    /// the owner has none of its own (its own locks never conflict).
    pub fn test_lock_os(
        &self,
        file: FileKey,
        owner: &OwnerKey,
        start: u64,
        end: u64,
        ty: LockType,
        probe: Option<PosixLockFile>,
    ) -> Result<Option<Denied>, NfsError> {
        let g = self.lock();
        if let Some(d) = g.lock_conflict(file, owner, start, end, ty) {
            return Ok(Some(d));
        }
        let Some(f) = g.os_locks.get(owner, file).or(probe.as_ref()) else {
            return Ok(None);
        };
        match f.test(start, end, ty == LockType::Write) {
            Ok(c) => Ok(c.map(denied)),
            Err(e) => answer(e, file).map(Some),
        }
    }
}

impl super::Inner {
    /// The kernel half of LOCK for `owner` on `file`, after the server's
    /// own checks passed. Returns a new description to keep once the lock
    /// is recorded; a denial or error leaves the kernel's locks as they
    /// were (a failed `F_OFD_SETLK` changes nothing).
    pub(super) fn os_lock(
        &mut self,
        owner: &OwnerKey,
        file: FileKey,
        start: u64,
        end: u64,
        ty: LockType,
        prepared: Prepared,
        max_files: usize,
    ) -> Result<Option<PosixLockFile>, Result<Denied, NfsError>> {
        let write = ty == LockType::Write;
        if let Some(f) = self.os_locks.get(owner, file) {
            f.lock(start, end, write).map_err(|e| answer(e, file))?;
            return Ok(None);
        }
        if start > OFFSET_MAX {
            return Ok(None);
        }
        match prepared {
            Prepared::NfsOnly => Ok(None),
            // Released by a concurrent request of the same owner between
            // the look and now; the client retries.
            Prepared::Held => Err(Err(NfsError::Delay)),
            Prepared::Fresh(f) => {
                if self.os_locks.len() >= max_files {
                    tracing::warn!(
                        limit = max_files,
                        "limits.max_lock_files reached; refusing a lock that needs another"
                    );
                    return Err(Err(NfsError::Resource));
                }
                f.lock(start, end, write).map_err(|e| answer(e, file))?;
                Ok(Some(f))
            }
        }
    }

    /// Keeps a description that now carries the owner's locks.
    pub(super) fn keep_lock_file(&mut self, owner: &OwnerKey, file: FileKey, f: PosixLockFile) {
        self.os_locks.files.insert((owner.clone(), file), f);
    }

    /// The kernel half of LOCKU, before the server's table changes.
    pub(super) fn os_unlock(
        &mut self,
        owner: &OwnerKey,
        file: FileKey,
        start: u64,
        end: u64,
    ) -> Result<(), NfsError> {
        let Some(f) = self.os_locks.get(owner, file) else {
            return Ok(());
        };
        f.unlock(start, end).map_err(|e| match e {
            // The kernel could not split a range: like the per-owner bound
            // on splits, NFS4ERR_LOCK_RANGE (RFC 7530 §16.12.5, RFC 8881
            // §18.12.3).
            LockError::NoLocks => {
                tracing::warn!(export = file.0, "kernel cannot split a lock (ENOLCK)");
                NfsError::LockRange
            }
            e => answer(e, file).err().unwrap_or(NfsError::ServerFault),
        })
    }

    /// After LOCKU: an owner with nothing left for the kernel on `file`
    /// gives its description back, so descriptions are held only while
    /// locks are.
    pub(super) fn os_forget_if_unlocked(&mut self, owner: &OwnerKey, file: FileKey) {
        let held = self.locks.get(&file).is_some_and(|rs| {
            rs.iter()
                .any(|r| &r.owner == owner && r.start <= OFFSET_MAX)
        });
        if !held {
            self.os_locks.release(owner, file);
        }
    }
}
