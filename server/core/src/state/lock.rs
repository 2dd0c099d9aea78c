//! Byte-range locks (RFC 7530 §9.2–9.5, RFC 8881 §9.3–9.4).
//!
//! Ranges are unsigned 64-bit and inclusive; a length of all ones means
//! "to the end of the file and beyond", stored as `end = u64::MAX`. Locks
//! of one owner merge and split (POSIX semantics); locks of different
//! owners conflict when they overlap and either is a write lock.

use nfs4d_xdr::nfs4::stateid4;

use super::{bump, FileKey, Inner, Other, OwnerKey, StateKind, StateManager};
use crate::error::NfsError;

/// Read (shared) or write (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockType {
    /// READ_LT / READW_LT.
    Read,
    /// WRITE_LT / WRITEW_LT.
    Write,
}

/// One held range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRange {
    /// The lock owner.
    pub owner: OwnerKey,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// Shared or exclusive.
    pub ty: LockType,
}

/// A conflicting lock, as LOCK4denied reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// Offset of the conflicting lock.
    pub offset: u64,
    /// Length (all ones for "to end").
    pub length: u64,
    /// Its type.
    pub ty: LockType,
    /// Its owner.
    pub owner: OwnerKey,
}

/// Converts offset/length to an inclusive range (RFC 7530 §16.10.4:
/// length 0 is NFS4ERR_INVAL; a range past 2^64 is NFS4ERR_INVAL unless the
/// length is all ones).
pub fn range(offset: u64, length: u64) -> Result<(u64, u64), NfsError> {
    if length == 0 {
        return Err(NfsError::Inval);
    }
    if length == u64::MAX {
        return Ok((offset, u64::MAX));
    }
    offset
        .checked_add(length - 1)
        .map(|end| (offset, end))
        .ok_or(NfsError::Inval)
}

fn length_of(start: u64, end: u64) -> u64 {
    if end == u64::MAX {
        u64::MAX
    } else {
        end - start + 1
    }
}

impl Inner {
    /// The first lock of another owner that conflicts with the request.
    pub fn lock_conflict(
        &self,
        file: FileKey,
        owner: &OwnerKey,
        start: u64,
        end: u64,
        ty: LockType,
    ) -> Option<Denied> {
        self.locks.get(&file)?.iter().find_map(|r| {
            let overlap = r.start <= end && start <= r.end;
            let exclusive = ty == LockType::Write || r.ty == LockType::Write;
            (overlap && exclusive && &r.owner != owner).then(|| Denied {
                offset: r.start,
                length: length_of(r.start, r.end),
                ty: r.ty,
                owner: r.owner.clone(),
            })
        })
    }

    /// Sets `owner`'s lock on [start, end] to `ty` (None = unlock), merging
    /// and splitting the owner's existing ranges.
    pub fn set_range(
        &mut self,
        file: FileKey,
        owner: &OwnerKey,
        start: u64,
        end: u64,
        ty: Option<LockType>,
    ) {
        let out = self.ranges_after(file, owner, start, end, ty);
        if out.is_empty() {
            self.locks.remove(&file);
        } else {
            self.locks.insert(file, out);
        }
    }

    /// The ranges of `file` that [`Inner::set_range`] would leave, without
    /// changing anything, so the owner's range count can be checked first
    /// (`limits.max_locks_per_owner`): a lock may merge ranges and an
    /// unlock in the middle of a range splits it in two.
    pub fn ranges_after(
        &self,
        file: FileKey,
        owner: &OwnerKey,
        start: u64,
        end: u64,
        ty: Option<LockType>,
    ) -> Vec<LockRange> {
        let ranges = self.locks.get(&file).map_or(&[][..], Vec::as_slice);
        let mut out = Vec::with_capacity(ranges.len() + 2);
        for r in ranges.iter().cloned() {
            if &r.owner != owner || r.end < start || r.start > end {
                out.push(r);
                continue;
            }
            if r.start < start {
                out.push(LockRange {
                    end: start - 1,
                    ..r.clone()
                });
            }
            if r.end > end {
                out.push(LockRange {
                    start: end + 1,
                    ..r
                });
            }
        }
        if let Some(ty) = ty {
            let mut new = LockRange {
                owner: owner.clone(),
                start,
                end,
                ty,
            };
            // Coalesce with adjacent ranges of the same owner and type.
            out.retain(|r| {
                let adjacent = &r.owner == owner
                    && r.ty == ty
                    && (r.end.checked_add(1) == Some(new.start)
                        || new.end.checked_add(1) == Some(r.start));
                if adjacent {
                    new.start = new.start.min(r.start);
                    new.end = new.end.max(r.end);
                }
                !adjacent
            });
            out.push(new);
        }
        out
    }

    /// Ranges held by an owner on a file.
    pub fn owner_ranges(&self, file: FileKey, owner: &OwnerKey) -> usize {
        self.locks
            .get(&file)
            .map_or(0, |rs| rs.iter().filter(|r| &r.owner == owner).count())
    }
}

impl StateManager {
    /// Releases a range held under a lock stateid (LOCKU).
    pub fn unlock_range(&self, other: &Other, start: u64, end: u64) -> Result<stateid4, NfsError> {
        let mut g = self.lock();
        let e = g.states.get(other).ok_or(NfsError::BadStateid)?;
        let StateKind::Lock { owner, .. } = &e.kind else {
            return Err(NfsError::BadStateid);
        };
        let (owner, file) = (owner.clone(), e.file);
        // Unlocking inside a range splits it: without this bound a client
        // could lock everything and unlock every other byte. A split the
        // limit does not allow is NFS4ERR_LOCK_RANGE, the error for
        // sub-range requests the server does not support (LOCKU in RFC
        // 7530 §16.12 and RFC 8881 §18.12.3), valid in every minor version.
        let after = g.ranges_after(file, &owner, start, end, None);
        if after.iter().filter(|r| r.owner == owner).count()
            > self.limits.max_locks_per_owner as usize
        {
            return Err(NfsError::LockRange);
        }
        g.os_unlock(&owner, file, start, end)?;
        g.set_range(file, &owner, start, end, None);
        g.os_forget_if_unlocked(&owner, file);
        let e = g.states.get_mut(other).ok_or(NfsError::BadStateid)?;
        e.seqid = bump(e.seqid);
        Ok(stateid4 {
            seqid: e.seqid,
            other: *other,
        })
    }

    /// LOCKT: the conflicting lock, if any.
    pub fn test_lock(
        &self,
        file: FileKey,
        owner: &OwnerKey,
        start: u64,
        end: u64,
        ty: LockType,
    ) -> Option<Denied> {
        self.lock().lock_conflict(file, owner, start, end, ty)
    }

    /// RELEASE_LOCKOWNER (4.0, RFC 7530 §16.37): fails with LOCKS_HELD
    /// while the owner holds any lock; otherwise forgets the owner.
    pub fn release_lockowner(&self, owner: &OwnerKey) -> Result<(), NfsError> {
        let mut g = self.lock();
        let holds = g
            .locks
            .values()
            .any(|rs| rs.iter().any(|r| &r.owner == owner));
        if holds {
            return Err(NfsError::LocksHeld);
        }
        let others: Vec<Other> = g
            .states
            .iter()
            .filter(|(_, e)| matches!(&e.kind, StateKind::Lock { owner: o, .. } if o == owner))
            .map(|(o, _)| *o)
            .collect();
        for o in others {
            g.remove_state(&o);
        }
        g.lock_owners.remove(owner);
        Ok(())
    }
}

impl StateManager {
    /// 4.0: a LOCK with a new lock owner advanced that owner's sequence to
    /// `seqid` (RFC 7530 §16.10.4: it "establishes an initial sequence
    /// value for the new lock-owner"). The reply is cached under the open
    /// owner, whose seqid the request also carried, so a retransmission is
    /// answered from there; the lock owner keeps no reply (knfsd does the
    /// same).
    pub fn advance_lock_seqid(&self, owner: OwnerKey, seqid: u32) {
        let mut g = self.lock();
        let seq = g.lock_owners.entry(owner).or_default();
        seq.last = Some(seqid);
        seq.reply = None;
    }

    /// The lock stateid `owner` already has for `file`, if any.
    pub fn lock_state_of(&self, owner: &OwnerKey, file: FileKey) -> Option<Other> {
        self.lock()
            .locks_by_owner
            .get(&(owner.clone(), file))
            .copied()
    }

    /// Whether a 4.0 lock owner is known (has sequencing history).
    pub fn lock_owner_known(&self, owner: &OwnerKey) -> bool {
        self.lock()
            .lock_owners
            .get(owner)
            .is_some_and(|s| s.last.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_fhmap::ObjectId;

    fn own(n: u8) -> OwnerKey {
        (1, vec![n])
    }

    #[test]
    fn ranges() {
        assert_eq!(range(0, 0), Err(NfsError::Inval));
        assert_eq!(range(5, u64::MAX), Ok((5, u64::MAX)));
        assert_eq!(range(u64::MAX, 2), Err(NfsError::Inval));
        assert_eq!(range(10, 10), Ok((10, 19)));
    }

    #[test]
    fn split_merge_and_conflicts() {
        let mut g = Inner::default();
        let f = (0, ObjectId(1));
        g.set_range(f, &own(1), 0, 99, Some(LockType::Write));
        g.set_range(f, &own(1), 40, 59, None);
        assert_eq!(g.owner_ranges(f, &own(1)), 2);
        assert!(g
            .lock_conflict(f, &own(2), 45, 50, LockType::Write)
            .is_none());
        let d = g.lock_conflict(f, &own(2), 50, 70, LockType::Read).unwrap();
        assert_eq!((d.offset, d.length), (60, 40));
        g.set_range(f, &own(1), 40, 59, Some(LockType::Write));
        assert_eq!(g.owner_ranges(f, &own(1)), 1, "coalesced back");
        // Downgrade a middle part to read: other readers may share it.
        g.set_range(f, &own(1), 10, 19, Some(LockType::Read));
        assert_eq!(g.owner_ranges(f, &own(1)), 3);
        assert!(g
            .lock_conflict(f, &own(2), 10, 19, LockType::Read)
            .is_none());
        assert!(g
            .lock_conflict(f, &own(2), 10, 20, LockType::Read)
            .is_some());
        // To-EOF ranges.
        g.set_range(f, &own(3), 1000, u64::MAX, Some(LockType::Read));
        assert!(g
            .lock_conflict(f, &own(2), u64::MAX, u64::MAX, LockType::Write)
            .is_some());
        g.set_range(f, &own(1), 0, u64::MAX, None);
        g.set_range(f, &own(3), 0, u64::MAX, None);
        assert!(g.locks.is_empty());
    }

    #[test]
    fn lock_owner_sequencing_and_state() {
        use crate::clock::ManualClock;
        use crate::state::open::{Share, ACCESS_BOTH};
        use crate::state::{OwnerKind, SeqCheck};
        use std::sync::Arc;

        let sm = StateManager::new(
            Arc::new(ManualClock::default()),
            10,
            1,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        let f = (0, ObjectId(1));
        let lo = own(1);
        assert!(!sm.lock_owner_known(&lo));
        assert_eq!(sm.lock_state_of(&lo, f), None);
        sm.advance_lock_seqid(lo.clone(), 4);
        assert!(sm.lock_owner_known(&lo));
        assert_eq!(
            sm.check_owner_seqid(OwnerKind::Lock, &lo, 5),
            Ok(SeqCheck::Next)
        );
        // No reply is cached under the lock owner for that request.
        assert_eq!(
            sm.check_owner_seqid(OwnerKind::Lock, &lo, 4),
            Err(NfsError::BadSeqid)
        );

        let open = sm
            .open(
                1,
                (1, b"oo".to_vec()),
                f,
                Share {
                    access: ACCESS_BOTH,
                    deny: 0,
                },
                true,
            )
            .unwrap();
        let sid = sm
            .lock_range(1, lo.clone(), f, open.stateid.other, 0, 9, LockType::Write)
            .unwrap();
        assert_eq!(sid.seqid, 1);
        assert_eq!(sm.lock_state_of(&lo, f), Some(sid.other));
        // Upgrading/downgrading and extending reuse the stateid.
        let sid2 = sm
            .lock_range(1, lo.clone(), f, open.stateid.other, 5, 20, LockType::Read)
            .unwrap();
        assert_eq!((sid2.other, sid2.seqid), (sid.other, 2));
        let d = sm.test_lock(f, &own(2), 0, 0, LockType::Write).unwrap();
        assert_eq!((d.offset, d.length, d.ty), (0, 5, LockType::Write));
        let d = sm
            .test_lock(f, &own(2), 0, u64::MAX, LockType::Read)
            .unwrap();
        assert_eq!((d.offset, d.length), (0, 5));
        assert!(sm.test_lock(f, &own(2), 5, 20, LockType::Read).is_none());
        assert!(
            sm.test_lock(f, &lo, 0, 20, LockType::Write).is_none(),
            "own locks never conflict"
        );
        // Denied for another owner.
        match sm.lock_range(1, own(2), f, open.stateid.other, 20, 20, LockType::Write) {
            Err(Ok(d)) => assert_eq!(
                (d.offset, d.length, d.ty, d.owner),
                (5, 16, LockType::Read, lo.clone())
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sm.lock_state_of(&own(2), f),
            None,
            "a denied first lock creates no stateid"
        );
        // CLOSE refuses while locks are held; RELEASE_LOCKOWNER too.
        assert_eq!(
            sm.close(&open.stateid.other).unwrap_err(),
            NfsError::LocksHeld
        );
        assert_eq!(sm.release_lockowner(&lo), Err(NfsError::LocksHeld));
        let u = sm.unlock_range(&sid.other, 0, u64::MAX).unwrap();
        assert_eq!(u.seqid, 3);
        // The lock stateid outlives its last lock (RFC 7530 §9.1.4.4).
        assert_eq!(sm.lock_state_of(&lo, f), Some(sid.other));
        sm.release_lockowner(&lo).unwrap();
        assert_eq!(sm.lock_state_of(&lo, f), None);
        assert!(!sm.lock_owner_known(&lo));
        sm.close(&open.stateid.other).unwrap();
    }
}
