//! The kernel side of byte-range locks (docs/locking.md): every lock owner
//! that holds locks on a file has one open file description of the backing
//! file (a [`LockFile`] of the store) carrying the same locks as kernel
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
use super::{bump, ClientId, FileKey, Other, OwnerKey, StateEntry, StateKind, StateManager};
use crate::error::NfsError;
use nfs4d_store::{LocalConflict, LockError, LockFile, LOCAL_LOCK_MAX as OFFSET_MAX};
use nfs4d_xdr::nfs4::stateid4;

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
        LockError::Store(err) => {
            tracing::warn!(export = file.0, error = %err, "byte-range lock of the store failed");
            Err(NfsError::Store(err))
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
    Fresh(Box<dyn LockFile>),
    /// A new writable description for a write lock of an owner whose
    /// description is read-only: it takes over the owner's (read) locks.
    Reopen(Box<dyn LockFile>),
    /// No kernel lock: the store has none, or the range lies entirely past
    /// the kernel's largest offset.
    NfsOnly,
}

/// The descriptions that carry locks, by (lock owner, file).
#[derive(Debug, Default)]
pub struct OsLocks {
    files: HashMap<(OwnerKey, FileKey), Box<dyn LockFile>>,
}

impl OsLocks {
    /// The owner's description of `file`.
    pub fn get(&self, owner: &OwnerKey, file: FileKey) -> Option<&dyn LockFile> {
        self.files.get(&(owner.clone(), file)).map(|f| &**f)
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

    /// Whether `owner`'s lock description for `file`, if any, allows write
    /// locks.
    pub fn lock_file_writable(&self, owner: &OwnerKey, file: FileKey) -> Option<bool> {
        self.lock().os_locks.get(owner, file).map(|f| f.writable())
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
        probe: Option<Box<dyn LockFile>>,
    ) -> Result<Option<Denied>, NfsError> {
        let g = self.lock();
        if let Some(d) = g.lock_conflict(file, owner, start, end, ty) {
            return Ok(Some(d));
        }
        let Some(f) = g.os_locks.get(owner, file).or(probe.as_deref()) else {
            return Ok(None);
        };
        match f.test(start, end, ty == LockType::Write) {
            Ok(c) => Ok(c.map(denied)),
            Err(e) => answer(e, file).map(Some),
        }
    }
}

impl StateManager {
    /// Takes a lock in the server's table only (no kernel lock; see
    /// [`StateManager::lock_range_os`]).
    pub fn lock_range(
        &self,
        client: ClientId,
        owner: OwnerKey,
        file: FileKey,
        open: Other,
        start: u64,
        end: u64,
        ty: LockType,
    ) -> Result<stateid4, Result<Denied, NfsError>> {
        self.lock_range_os(client, owner, file, open, start, end, ty, Prepared::NfsOnly)
    }

    /// Takes a lock. The lock stateid is the owner's existing one for the
    /// file, else it is created from `open`. Conflicts are looked for in
    /// the server's table first, so a denial names the NFS owner when
    /// there is one, then by the kernel (`prepared`, docs/locking.md): a
    /// lock of a local process is a denial naming
    /// [`oslock::local_owner`](super::oslock::local_owner).
    pub fn lock_range_os(
        &self,
        client: ClientId,
        owner: OwnerKey,
        file: FileKey,
        open: Other,
        start: u64,
        end: u64,
        ty: LockType,
        prepared: Prepared,
    ) -> Result<stateid4, Result<Denied, NfsError>> {
        let mut g = self.lock();
        if let Some(d) = g.lock_conflict(file, &owner, start, end, ty) {
            // A courtesy client's lock gives way (courtesy.rs).
            if !g.expire_courtesy_on(file) {
                return Err(Ok(d));
            }
            if let Some(d) = g.lock_conflict(file, &owner, start, end, ty) {
                return Err(Ok(d));
            }
        }
        // Count the owner's ranges as they would be after this lock.
        let after = g.ranges_after(file, &owner, start, end, Some(ty));
        if after.iter().filter(|r| r.owner == owner).count()
            > self.limits.max_locks_per_owner as usize
        {
            return Err(Err(NfsError::Resource));
        }
        if !g.locks_by_owner.contains_key(&(owner.clone(), file))
            && g.states.len() >= self.limits.max_open_states as usize
        {
            return Err(Err(NfsError::Resource));
        }
        let fresh = g.os_lock(
            &owner,
            file,
            start,
            end,
            ty,
            prepared,
            self.limits.max_lock_files as usize,
        )?;
        let other = match g.locks_by_owner.get(&(owner.clone(), file)) {
            Some(o) => *o,
            None => {
                // A new lock stateid counts against the state table, and a
                // new lock owner against its client's owners.
                if g.states.len() >= self.limits.max_open_states as usize {
                    return Err(Err(NfsError::Resource));
                }
                g.admit_owner(
                    super::OwnerKind::Lock,
                    &owner,
                    self.limits.max_owners_per_client as usize,
                )
                .map_err(Err)?;
                let o = g.new_other(self.boot, client);
                g.states.insert(
                    o,
                    StateEntry {
                        client,
                        file,
                        seqid: 0,
                        kind: StateKind::Lock {
                            owner: owner.clone(),
                            open,
                        },
                        unconfirmed: false,
                    },
                );
                g.locks_by_owner.insert((owner.clone(), file), o);
                g.lock_owners.entry(owner.clone()).or_default().states += 1;
                o
            }
        };
        if let Some(f) = fresh {
            g.keep_lock_file(&owner, file, f);
        }
        g.set_range(file, &owner, start, end, Some(ty));
        let e = g.states.get_mut(&other).ok_or(Err(NfsError::ServerFault))?;
        e.seqid = bump(e.seqid);
        Ok(stateid4 {
            seqid: e.seqid,
            other,
        })
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
    ) -> Result<Option<Box<dyn LockFile>>, Result<Denied, NfsError>> {
        let write = ty == LockType::Write;
        if let Some(f) = self.os_locks.get(owner, file) {
            match prepared {
                Prepared::Reopen(new) if write && !f.writable() && new.writable() => {
                    self.os_take_over(owner, file, new)?;
                }
                _ => {}
            }
            let f = self
                .os_locks
                .get(owner, file)
                .ok_or(Err(NfsError::ServerFault))?;
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
            Prepared::Fresh(f) | Prepared::Reopen(f) => {
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

    /// Moves the owner's kernel locks on `file` to a new writable
    /// description, replacing its read-only one. A read-only description
    /// only ever holds read locks, and while it holds them no one else can
    /// hold a write lock there, so taking the same read locks on the new
    /// description cannot conflict; the old one is then dropped.
    fn os_take_over(
        &mut self,
        owner: &OwnerKey,
        file: FileKey,
        new: Box<dyn LockFile>,
    ) -> Result<(), Result<Denied, NfsError>> {
        let ranges = self.locks.get(&file).map_or(&[][..], Vec::as_slice);
        for r in ranges.iter().filter(|r| &r.owner == owner) {
            new.lock(r.start, r.end, r.ty == LockType::Write)
                .map_err(|e| answer(e, file))?;
        }
        self.keep_lock_file(owner, file, new);
        Ok(())
    }

    /// Keeps a description that now carries the owner's locks.
    pub(super) fn keep_lock_file(&mut self, owner: &OwnerKey, file: FileKey, f: Box<dyn LockFile>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::client::{Callback40, Principal};
    use crate::state::open::{Share, ACCESS_BOTH};
    use nfs4d_fhmap::ObjectId;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;
    use std::time::Duration;

    const F: FileKey = (0, ObjectId(7));

    struct Setup {
        sm: StateManager,
        clock: Arc<ManualClock>,
        client: ClientId,
        open: super::super::Other,
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    fn setup(limits: crate::config::Limits) -> Setup {
        let clock = Arc::new(ManualClock::default());
        let sm = StateManager::new(
            clock.clone(),
            10,
            9,
            limits,
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        let c = sm
            .setclientid(b"c", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(c.clientid, c.confirm, &Principal::Uid(0))
            .unwrap();
        let share = Share {
            access: ACCESS_BOTH,
            deny: 0,
        };
        let open = sm
            .open(c.clientid, (c.clientid, b"oo".to_vec()), F, share, true)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"data").unwrap();
        Setup {
            sm,
            clock,
            client: c.clientid,
            open: open.stateid.other,
            _dir: dir,
            path,
        }
    }

    impl Setup {
        /// A new description of the backing file, as the backend gives.
        fn file(&self, write: bool) -> Box<dyn LockFile> {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .open(&self.path)
                .unwrap();
            Box::new(nfs4d_store_local::PosixLockFile::new(
                OwnedFd::from(f),
                write,
            ))
        }
        fn owner(&self, n: u8) -> OwnerKey {
            (self.client, vec![n])
        }
        fn lock(
            &self,
            n: u8,
            start: u64,
            end: u64,
            ty: LockType,
            p: Prepared,
        ) -> Result<nfs4d_xdr::nfs4::stateid4, Result<Denied, NfsError>> {
            self.sm
                .lock_range_os(self.client, self.owner(n), F, self.open, start, end, ty, p)
        }
        /// What a local process sees for a write lock on [start, end].
        fn seen(&self, start: u64, end: u64) -> Option<(u64, u64, bool)> {
            self.file(true)
                .test(start, end, true)
                .unwrap()
                .map(|c| (c.offset, c.length, c.write))
        }
    }

    #[test]
    fn lock_convert_unlock_follow_the_kernel() {
        let s = setup(Default::default());
        let sid = s
            .lock(1, 0, 99, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        assert_eq!(s.sm.lock_files(), 1);
        assert_eq!(s.seen(50, 50), Some((0, 100, true)));
        // Downgrade through the owner's description.
        s.lock(1, 0, 99, LockType::Read, Prepared::Held).unwrap();
        assert_eq!(s.seen(50, 50), Some((0, 100, false)));
        assert_eq!(s.file(true).test(0, 99, false), Ok(None));
        // Split, then unlock the rest: the description is given back.
        s.sm.unlock_range(&sid.other, 40, 59).unwrap();
        assert_eq!(s.seen(40, 59), None);
        assert_eq!(s.seen(0, 40), Some((0, 40, false)));
        s.sm.unlock_range(&sid.other, 0, 99).unwrap();
        assert_eq!(s.sm.lock_files(), 0);
        assert_eq!(s.seen(0, u64::MAX), None);
    }

    #[test]
    fn local_lock_denies_with_the_local_owner() {
        let s = setup(Default::default());
        let local = s.file(true);
        local.lock(200, 299, true).unwrap();
        let d = s
            .lock(1, 250, 260, LockType::Read, Prepared::Fresh(s.file(true)))
            .unwrap_err()
            .unwrap();
        assert_eq!((d.offset, d.length, d.ty), (200, 100, LockType::Write));
        assert_eq!(d.owner, local_owner(None));
        assert_eq!(s.sm.lock_files(), 0, "a refused new description is closed");
        assert_eq!(s.sm.lock_state_of(&s.owner(1), F), None);
        // LOCKT sees it too, through a probe description.
        let t =
            s.sm.test_lock_os(F, &s.owner(1), 0, 200, LockType::Read, Some(s.file(false)))
                .unwrap()
                .unwrap();
        assert_eq!((t.offset, t.length), (200, 100));
        // An NFS owner's conflict is reported before the kernel's.
        s.lock(2, 300, 400, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        let t =
            s.sm.test_lock_os(
                F,
                &s.owner(1),
                0,
                1000,
                LockType::Write,
                Some(s.file(false)),
            )
            .unwrap()
            .unwrap();
        assert_eq!(t.owner, s.owner(2));
        drop(local);
        s.lock(1, 250, 260, LockType::Read, Prepared::Fresh(s.file(true)))
            .unwrap();
    }

    #[test]
    fn ranges_past_the_signed_limit() {
        let s = setup(Default::default());
        // Entirely past OFFSET_MAX: the server's table only.
        let sid = s
            .lock(
                1,
                OFFSET_MAX + 1,
                u64::MAX,
                LockType::Write,
                Prepared::NfsOnly,
            )
            .unwrap();
        assert_eq!(s.sm.lock_files(), 0);
        // Reaching past it: to the end of the file for the kernel.
        s.lock(
            1,
            10,
            OFFSET_MAX + 1,
            LockType::Write,
            Prepared::Fresh(s.file(true)),
        )
        .unwrap();
        assert_eq!(s.seen(OFFSET_MAX, OFFSET_MAX), Some((10, u64::MAX, true)));
        // Unlocking only the part past OFFSET_MAX leaves the kernel's lock.
        s.sm.unlock_range(&sid.other, OFFSET_MAX + 1, u64::MAX)
            .unwrap();
        assert_eq!(s.seen(20, 20), Some((10, u64::MAX, true)));
        // Unlocking everything up to OFFSET_MAX leaves ranges the kernel
        // cannot hold: the description is given back, the server's table
        // keeps them.
        s.lock(
            1,
            OFFSET_MAX + 5,
            OFFSET_MAX + 9,
            LockType::Read,
            Prepared::NfsOnly,
        )
        .unwrap();
        s.sm.unlock_range(&sid.other, 0, OFFSET_MAX).unwrap();
        assert_eq!(s.seen(0, u64::MAX), None);
        assert_eq!(s.sm.lock_files(), 0);
        assert!(s
            .sm
            .test_lock_os(F, &s.owner(2), 0, u64::MAX, LockType::Write, None)
            .unwrap()
            .is_some());
    }

    #[test]
    fn every_release_path_unlocks_the_kernel() {
        // No courtesy clients: lease expiry releases at once.
        let s = setup(crate::config::Limits {
            max_courtesy_clients: 0,
            ..Default::default()
        });
        // FREE_STATEID / CLOSE take the stateid away.
        let sid = s
            .lock(1, 0, 9, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        s.sm.lock().remove_state(&sid.other);
        assert_eq!((s.sm.lock_files(), s.seen(0, 9)), (0, None));
        // RELEASE_LOCKOWNER after the last LOCKU.
        let sid = s
            .lock(2, 0, 9, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        s.sm.unlock_range(&sid.other, 0, 9).unwrap();
        s.sm.release_lockowner(&s.owner(2)).unwrap();
        assert_eq!((s.sm.lock_files(), s.seen(0, 9)), (0, None));
        // Lease expiry.
        s.lock(3, 0, 9, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        s.lock(4, 20, 29, LockType::Read, Prepared::Fresh(s.file(true)))
            .unwrap();
        assert_eq!(s.sm.lock_files(), 2);
        s.clock.advance(Duration::from_secs(11));
        assert_eq!(s.sm.expire_leases(), 1);
        assert_eq!((s.sm.lock_files(), s.seen(0, 100)), (0, None));
    }

    #[test]
    fn bounded_descriptions_and_read_only_files() {
        let s = setup(crate::config::Limits {
            max_lock_files: 1,
            ..Default::default()
        });
        s.lock(1, 0, 9, LockType::Write, Prepared::Fresh(s.file(true)))
            .unwrap();
        // The owner's own description serves all its ranges.
        s.lock(1, 50, 59, LockType::Write, Prepared::Held).unwrap();
        assert_eq!(
            s.lock(2, 20, 29, LockType::Write, Prepared::Fresh(s.file(true))),
            Err(Err(NfsError::Resource))
        );
        assert_eq!(s.sm.lock_state_of(&s.owner(2), F), None);
        // A look that saw a description which is gone by now: retry later.
        assert_eq!(
            s.lock(3, 20, 29, LockType::Write, Prepared::Held),
            Err(Err(NfsError::Delay))
        );
        // A description that could only be opened read-only.
        let r = setup(Default::default());
        r.lock(1, 0, 9, LockType::Read, Prepared::Fresh(r.file(false)))
            .unwrap();
        assert_eq!(
            r.lock(1, 0, 9, LockType::Write, Prepared::Held),
            Err(Err(NfsError::OpenMode))
        );
        assert_eq!(r.seen(5, 5), Some((0, 10, false)), "the read lock stays");
    }

    #[test]
    fn write_lock_moves_locks_to_a_writable_description() {
        let s = setup(Default::default());
        // A read-only open's owner: a read-only description.
        s.lock(1, 0, 9, LockType::Read, Prepared::Fresh(s.file(false)))
            .unwrap();
        s.lock(1, 20, 29, LockType::Read, Prepared::Held).unwrap();
        assert_eq!(s.sm.lock_file_writable(&s.owner(1), F), Some(false));
        // The open was upgraded; a write lock brings a writable one.
        let local = s.file(false);
        local.lock(28, 28, false).unwrap();
        let d = s
            .lock(1, 20, 29, LockType::Write, Prepared::Reopen(s.file(true)))
            .unwrap_err()
            .unwrap();
        assert_eq!((d.offset, d.length, d.owner), (28, 1, local_owner(None)));
        // The read locks moved over intact, and the description stays one.
        assert_eq!(s.sm.lock_files(), 1);
        assert_eq!(s.sm.lock_file_writable(&s.owner(1), F), Some(true));
        drop(local);
        assert_eq!(s.seen(0, 9), Some((0, 10, false)));
        assert_eq!(s.seen(20, 29), Some((20, 10, false)));
        s.lock(1, 20, 29, LockType::Write, Prepared::Held).unwrap();
        assert_eq!(s.seen(20, 29), Some((20, 10, true)));
        assert_eq!(s.seen(0, 9), Some((0, 10, false)));
    }
}
