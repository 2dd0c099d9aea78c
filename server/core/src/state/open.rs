//! Open state and share reservations (RFC 7530 §9.9, RFC 8881 §9.7).
//!
//! SMB share modes are OPEN's share_access/share_deny: an open conflicts
//! with another open owner's open when one denies what the other accesses.

use nfs4d_xdr::nfs4::stateid4;

use super::{
    bump, special, ClientId, FileKey, Inner, Other, OwnerKey, StateEntry, StateKind, StateManager,
};
use crate::error::NfsError;
use crate::state::lock::LockType;

pub use super::{ACCESS_BOTH, ACCESS_MASK, ACCESS_READ, ACCESS_WRITE};

/// A share_access/share_deny pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Share {
    /// Access bits (READ 1, WRITE 2).
    pub access: u32,
    /// Deny bits (READ 1, WRITE 2).
    pub deny: u32,
}

impl Share {
    /// Whether two opens of different owners conflict.
    pub fn conflicts(&self, other: &Share) -> bool {
        self.access & other.deny != 0 || self.deny & other.access != 0
    }
}

/// An open stateid's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenState {
    /// The open owner.
    pub owner: OwnerKey,
    /// Union of all share modes opened by this owner on this file.
    pub share: Share,
    /// Access values (1..=3) ever opened, as bits 1<<access: OPEN_DOWNGRADE
    /// may only go back to one of them (RFC 7530 §16.19.4).
    pub accesses: u8,
    /// Deny values (0..=3) ever opened, as bits 1<<deny.
    pub denies: u8,
}

/// Result of recording an OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The open stateid to return.
    pub stateid: stateid4,
    /// The owner had no open of this file before.
    pub new: bool,
}

impl Inner {
    /// Share conflict of a prospective open against the file's opens —
    /// the same owner's included: an owner that denied READ cannot then
    /// open for READ (RFC 7530 §16.16.5, pynfs OPEN21).
    pub fn share_conflict(&self, file: FileKey, _owner: &OwnerKey, want: Share) -> bool {
        self.states
            .of_file(file)
            .any(|(_, e)| matches!(&e.kind, StateKind::Open(o) if o.share.conflicts(&want)))
    }

    /// Union of the share modes held by all opens of a file.
    pub fn file_share(&self, file: FileKey) -> Share {
        self.states
            .of_file(file)
            .fold(Share::default(), |acc, (_, e)| match &e.kind {
                StateKind::Open(o) => Share {
                    access: acc.access | o.share.access,
                    deny: acc.deny | o.share.deny,
                },
                StateKind::Lock { .. } | StateKind::Deleg(_) => acc,
            })
    }

    /// Removes an open stateid with the lock stateids derived from it,
    /// which are on the same file; the open's entry if it existed.
    fn remove_open(&mut self, other: &Other) -> Option<StateEntry> {
        let file = self.states.get(other)?.file;
        let locks: Vec<Other> = self
            .states
            .of_file(file)
            .filter(|(_, e)| matches!(&e.kind, StateKind::Lock { open, .. } if open == other))
            .map(|(o, _)| *o)
            .collect();
        for l in locks {
            self.remove_state(&l);
        }
        self.remove_state(other)
    }
}

impl StateManager {
    /// Records an OPEN of `file` by `owner`: checks share reservations and
    /// creates or upgrades the owner's open stateid.
    pub fn open(
        &self,
        client: ClientId,
        owner: OwnerKey,
        file: FileKey,
        want: Share,
        confirmed: bool,
    ) -> Result<Opened, NfsError> {
        let now = self.now();
        let mut g = self.lock();
        // A courtesy client's opens give way (courtesy.rs).
        let conflict = g.share_conflict(file, &owner, want);
        if conflict && (!g.expire_courtesy_on(file) || g.share_conflict(file, &owner, want)) {
            return Err(NfsError::ShareDenied);
        }
        // Share reservations first: an OPEN the share modes refuse gets
        // NFS4ERR_SHARE_DENIED, not a recall (pynfs DELEG8 of 4.0).
        let access = if want.access & ACCESS_WRITE != 0 {
            super::deleg::Access::OpenWrite
        } else {
            super::deleg::Access::OpenRead
        };
        g.break_delegations(file, Some(client), access, now, &*self.callbacks)?;
        if let Some(other) = g.opens_by_owner.get(&(owner.clone(), file)).copied() {
            let e = g.states.get_mut(&other).ok_or(NfsError::ServerFault)?;
            if let StateKind::Open(o) = &mut e.kind {
                o.share.access |= want.access;
                o.share.deny |= want.deny;
                o.accesses |= 1 << want.access;
                o.denies |= 1 << want.deny;
            }
            e.seqid = bump(e.seqid);
            return Ok(Opened {
                stateid: stateid4 {
                    seqid: e.seqid,
                    other,
                },
                new: false,
            });
        }
        if g.states.len() >= self.limits.max_open_states as usize {
            return Err(NfsError::Resource);
        }
        g.admit_owner(
            super::OwnerKind::Open,
            &owner,
            self.limits.max_owners_per_client as usize,
        )?;
        let other = g.new_other(self.boot, client);
        g.states.insert(
            other,
            StateEntry {
                client,
                file,
                seqid: 1,
                kind: StateKind::Open(OpenState {
                    owner: owner.clone(),
                    share: want,
                    accesses: 1 << want.access,
                    denies: 1 << want.deny,
                }),
                unconfirmed: !confirmed,
            },
        );
        g.opens_by_owner.insert((owner.clone(), file), other);
        g.open_owners.entry(owner).or_default().states += 1;
        Ok(Opened {
            stateid: stateid4 { seqid: 1, other },
            new: true,
        })
    }

    /// Undoes a just-recorded OPEN whose file operation then failed.
    pub fn forget_open(&self, other: &Other) {
        self.lock().remove_state(other);
    }

    /// CLOSE: drops an open stateid unless locks derived from it are held
    /// (NFS4ERR_LOCKS_HELD, RFC 7530 §16.2.4).
    pub fn close(&self, other: &Other) -> Result<StateEntry, NfsError> {
        let mut g = self.lock();
        let file = g
            .states
            .get(other)
            .map(|e| e.file)
            .ok_or(NfsError::BadStateid)?;
        // Lock stateids derived from this open are on the same file.
        let held = g.states.of_file(file).any(|(_, e)| {
            matches!(&e.kind, StateKind::Lock { open, owner } if open == other
                && g.locks.get(&file).is_some_and(|rs| rs.iter().any(|r| &r.owner == owner)))
        });
        if held {
            return Err(NfsError::LocksHeld);
        }
        g.remove_open(other).ok_or(NfsError::BadStateid)
    }

    /// OPEN_DOWNGRADE: narrows the share modes to ones opened before.
    pub fn downgrade(&self, other: &Other, want: Share) -> Result<u32, NfsError> {
        let mut g = self.lock();
        let e = g.states.get_mut(other).ok_or(NfsError::BadStateid)?;
        let StateKind::Open(o) = &mut e.kind else {
            return Err(NfsError::BadStateid);
        };
        let subset = want.access & !o.share.access == 0 && want.deny & !o.share.deny == 0;
        if !subset
            || want.access == 0
            || o.accesses & (1 << want.access) == 0
            || o.denies & (1 << want.deny) == 0
        {
            return Err(NfsError::Inval);
        }
        o.share = want;
        o.accesses = 1 << want.access;
        o.denies = 1 << want.deny;
        e.seqid = bump(e.seqid);
        Ok(e.seqid)
    }

    /// OPEN_CONFIRM (4.0): marks the open confirmed and bumps its seqid.
    pub fn confirm_open(&self, other: &Other) -> Result<u32, NfsError> {
        let mut g = self.lock();
        let e = g.states.get_mut(other).ok_or(NfsError::BadStateid)?;
        if !e.unconfirmed {
            return Err(NfsError::BadStateid);
        }
        e.unconfirmed = false;
        e.seqid = bump(e.seqid);
        let owner = match &e.kind {
            StateKind::Open(o) => o.owner.clone(),
            StateKind::Lock { .. } | StateKind::Deleg(_) => return Err(NfsError::BadStateid),
        };
        let seqid = e.seqid;
        g.open_owners.entry(owner).or_default().confirmed = true;
        Ok(seqid)
    }
}

/// Byte-range locks are mandatory for READ and WRITE: I/O overlapping a
/// conflicting lock of another lock owner fails with NFS4ERR_LOCKED (RFC
/// 7530 §9.1.6 lets the server choose; knfsd chooses advisory). With
/// `false` locks only conflict with other locks, as for a local POSIX
/// filesystem. Note that a client holding a lock in one process and
/// reading the range through another process's open (no lock stateid)
/// gets NFS4ERR_LOCKED under mandatory locking.
pub const MANDATORY_LOCKS_DEFAULT: bool = false;

/// The lock owner that anonymous I/O and I/O under an open stateid run as
/// when checking mandatory byte-range locks: no real owner can equal it
/// (client ids carry the boot id in their high half and count up from 1
/// in the low half, so `u64::MAX` is never issued), so every lock that
/// conflicts with the I/O counts.
pub fn io_owner() -> OwnerKey {
    (u64::MAX, Vec::new())
}

/// What READ/WRITE/SETATTR(size) want to do, for [`StateManager::check_io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoIntent {
    /// Writing (WRITE, SETATTR of size) rather than reading.
    pub write: bool,
    /// Inclusive byte range touched, `None` for none (a zero-length I/O).
    pub range: Option<(u64, u64)>,
}

/// Who an admitted I/O runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoGrant {
    /// A special stateid (anonymous or READ bypass): the caller must check
    /// permissions by mode bits, since no OPEN did.
    Special,
    /// An open or lock stateid of this client: its OPEN checked access.
    State {
        /// The owning client (4.0 leases are renewed by its use).
        client: ClientId,
    },
}

impl StateManager {
    /// A copy of a stateid's record, by its `other` field.
    pub fn state_entry(&self, other: &Other) -> Option<StateEntry> {
        self.lock().states.get(other).cloned()
    }

    /// Whether a 4.0 open owner has been confirmed (OPEN_CONFIRM done once).
    pub fn open_owner_confirmed(&self, owner: &OwnerKey) -> bool {
        self.lock()
            .open_owners
            .get(owner)
            .is_some_and(|s| s.confirmed)
    }

    /// A new OPEN by a 4.0 open owner that never confirmed: the client
    /// gave up on the earlier OPEN (RFC 7530 §16.18.4: an owner that does
    /// not confirm loses the state of its unconfirmed OPEN), so its
    /// unconfirmed opens and sequencing history are dropped and the owner
    /// starts afresh, as knfsd does. Returns whether anything was dropped.
    pub fn reset_unconfirmed_open_owner(&self, owner: &OwnerKey) -> bool {
        let mut g = self.lock();
        if g.open_owners.get(owner).is_none_or(|s| s.confirmed) {
            return false;
        }
        let others: Vec<Other> = g
            .states
            .iter()
            .filter(|(_, e)| matches!(&e.kind, StateKind::Open(o) if &o.owner == owner))
            .map(|(o, _)| *o)
            .collect();
        for other in &others {
            g.remove_open(other);
        }
        g.open_owners.remove(owner);
        true
    }

    /// The cached reply of a 4.0 CLOSE of `other` with seqid `seqid`, for
    /// a retransmitted CLOSE whose stateid is gone (RFC 7530 §9.1.8): the
    /// open owner that last processed `seqid` with a successful CLOSE of
    /// this stateid still holds the reply. The reply body of CLOSE is the
    /// stateid, so the owner is found without keeping closed stateids.
    pub fn find_close_replay(&self, other: &Other, seqid: u32) -> Option<Vec<u8>> {
        // resop (4) + status (4) + stateid.seqid (4) + stateid.other (12).
        const OP_CLOSE: u32 = 4;
        let g = self.lock();
        g.open_owners
            .values()
            .filter(|s| s.last == Some(seqid))
            .filter_map(|s| s.reply.as_ref())
            .find(|r| {
                r.len() == 24
                    && r[..4] == OP_CLOSE.to_be_bytes()
                    && r[4..8] == [0; 4]
                    && r[12..24] == other[..]
            })
            .cloned()
    }

    /// Admission of a READ or WRITE on `file` under stateid `sid` (RFC 7530
    /// §9.1.4.3–9.1.6, RFC 8881 §8.2.3, §18.22.3–18.22.4 and §18.32.3–18.32.4):
    ///
    /// * anonymous stateid: refused with NFS4ERR_LOCKED when an open denies
    ///   the access or a byte-range lock conflicts;
    /// * READ bypass stateid: READ skips those checks; WRITE treats it as
    ///   anonymous;
    /// * other special-looking stateids: NFS4ERR_BAD_STATEID;
    /// * open or lock stateids: STALE/BAD/OLD as [`Inner::check_stateid`];
    ///   BAD_STATEID for another client's (4.1), another file's or a not
    ///   yet confirmed one's (4.0); a WRITE needs an open for write
    ///   (NFS4ERR_OPENMODE); a READ is allowed through a write-only open
    ///   but still honours other opens' DENY_READ (§9.1.6); a lock of
    ///   another owner conflicting with the range is NFS4ERR_LOCKED
    ///   (with mandatory locking on).
    ///
    /// Last, other clients' delegations the I/O conflicts with are
    /// recalled and the I/O gets NFS4ERR_DELAY (RFC 8881 §10.4.1).
    pub fn check_io(
        &self,
        sid: &stateid4,
        file: FileKey,
        io: IoIntent,
        minor: u32,
        session_client: Option<ClientId>,
    ) -> Result<IoGrant, NfsError> {
        let grant = self.admit_io(sid, file, io, minor, session_client)?;
        let requester = match &grant {
            IoGrant::Special => None,
            IoGrant::State { client } => Some(*client),
        };
        let access = if io.write {
            super::deleg::Access::Modify
        } else {
            super::deleg::Access::Read
        };
        self.break_delegations(file, requester, access)?;
        Ok(grant)
    }

    fn admit_io(
        &self,
        sid: &stateid4,
        file: FileKey,
        io: IoIntent,
        minor: u32,
        session_client: Option<ClientId>,
    ) -> Result<IoGrant, NfsError> {
        let bypass = special::is_bypass(sid);
        let anonymous = special::is_anonymous(sid) || bypass;
        let reserved = sid.other == [0; 12] || sid.other == [0xff; 12];
        if reserved && !anonymous {
            return Err(NfsError::BadStateid);
        }
        let (want, lock_ty) = if io.write {
            (ACCESS_WRITE, LockType::Write)
        } else {
            (ACCESS_READ, LockType::Read)
        };
        let g = self.lock();
        if anonymous {
            if bypass && !io.write {
                return Ok(IoGrant::Special);
            }
            if g.file_share(file).deny & want != 0 {
                return Err(NfsError::Locked);
            }
            if let Some((start, end)) = io.range.filter(|_| self.mandatory_locks) {
                if g.lock_conflict(file, &io_owner(), start, end, lock_ty)
                    .is_some()
                {
                    return Err(NfsError::Locked);
                }
            }
            return Ok(IoGrant::Special);
        }
        let e = g.check_stateid(sid, self.boot, minor)?;
        if session_client.is_some_and(|c| c != e.client) || e.file != file || e.unconfirmed {
            return Err(NfsError::BadStateid);
        }
        let (open, lock_owner) = match &e.kind {
            StateKind::Open(o) => (o, None),
            StateKind::Lock { owner, open } => match g.states.get(open).map(|s| &s.kind) {
                Some(StateKind::Open(o)) => (o, Some(owner)),
                _ => return Err(NfsError::BadStateid),
            },
            // I/O under a delegation stateid (RFC 8881 §9.1.2 / §10.2):
            // a read delegation admits reads only.
            StateKind::Deleg(d) => {
                if io.write && d.ty == super::deleg::DelegType::Read {
                    return Err(NfsError::OpenMode);
                }
                return Ok(IoGrant::State { client: e.client });
            }
        };
        if open.share.access & want == 0 {
            if io.write {
                return Err(NfsError::OpenMode);
            }
            let read = Share {
                access: ACCESS_READ,
                deny: 0,
            };
            if g.share_conflict(file, &open.owner, read) {
                return Err(NfsError::Locked);
            }
        }
        if let Some((start, end)) = io.range.filter(|_| self.mandatory_locks) {
            let anon = io_owner();
            let owner = lock_owner.unwrap_or(&anon);
            if g.lock_conflict(file, owner, start, end, lock_ty).is_some() {
                return Err(NfsError::Locked);
            }
        }
        Ok(IoGrant::State { client: e.client })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::OwnerKind;
    use nfs4d_fhmap::ObjectId;
    use std::sync::Arc;

    fn sm() -> StateManager {
        StateManager::new(
            Arc::new(ManualClock::default()),
            10,
            1,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        )
    }

    #[test]
    fn share_deny_blocks_every_owner() {
        let sm = sm();
        let f = (0, ObjectId(5));
        let a = (1u64, b"a".to_vec());
        let b = (1u64, b"b".to_vec());
        sm.open(
            1,
            a.clone(),
            f,
            Share {
                access: ACCESS_READ,
                deny: ACCESS_WRITE,
            },
            true,
        )
        .unwrap();
        assert_eq!(
            sm.open(
                1,
                b.clone(),
                f,
                Share {
                    access: ACCESS_WRITE,
                    deny: 0
                },
                true
            ),
            Err(NfsError::ShareDenied)
        );
        sm.open(
            1,
            b,
            f,
            Share {
                access: ACCESS_READ,
                deny: 0,
            },
            true,
        )
        .unwrap();
        // The owner's own deny applies to it too (RFC 7530 §16.16.5).
        assert_eq!(
            sm.open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_WRITE,
                    deny: 0,
                },
                true,
            ),
            Err(NfsError::ShareDenied)
        );
        let up = sm
            .open(
                1,
                a,
                f,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                true,
            )
            .unwrap();
        assert!(!up.new);
        assert_eq!(up.stateid.seqid, 2);
    }

    #[test]
    fn downgrade_only_to_previous_modes() {
        let sm = sm();
        let f = (0, ObjectId(5));
        let a = (1u64, b"a".to_vec());
        sm.open(
            1,
            a.clone(),
            f,
            Share {
                access: ACCESS_READ,
                deny: 0,
            },
            true,
        )
        .unwrap();
        let o = sm
            .open(
                1,
                a,
                f,
                Share {
                    access: ACCESS_WRITE,
                    deny: 0,
                },
                true,
            )
            .unwrap();
        assert_eq!(
            sm.downgrade(
                &o.stateid.other,
                Share {
                    access: ACCESS_BOTH,
                    deny: 0
                }
            ),
            Err(NfsError::Inval)
        );
        assert_eq!(
            sm.downgrade(
                &o.stateid.other,
                Share {
                    access: ACCESS_READ,
                    deny: 0
                }
            ),
            Ok(3)
        );
        sm.close(&o.stateid.other).unwrap();
        assert_eq!(
            sm.close(&o.stateid.other).unwrap_err(),
            NfsError::BadStateid
        );
    }

    fn read(range: Option<(u64, u64)>) -> IoIntent {
        IoIntent {
            write: false,
            range,
        }
    }

    fn write(range: Option<(u64, u64)>) -> IoIntent {
        IoIntent { write: true, range }
    }

    #[test]
    fn io_with_special_stateids() {
        let mut sm = sm();
        sm.mandatory_locks = true;
        let f = (0, ObjectId(5));
        let anon = stateid4 {
            seqid: 0,
            other: [0; 12],
        };
        let bypass = stateid4 {
            seqid: u32::MAX,
            other: [0xff; 12],
        };
        assert_eq!(
            sm.check_io(&anon, f, write(Some((0, 9))), 0, None),
            Ok(IoGrant::Special)
        );
        // A deny-write open blocks anonymous writes (bypass counts as
        // anonymous for WRITE) but not reads.
        let a = (1u64, b"a".to_vec());
        sm.open(
            1,
            a.clone(),
            f,
            Share {
                access: ACCESS_READ,
                deny: ACCESS_WRITE,
            },
            true,
        )
        .unwrap();
        assert_eq!(
            sm.check_io(&anon, f, write(Some((0, 9))), 0, None),
            Err(NfsError::Locked)
        );
        assert_eq!(
            sm.check_io(&bypass, f, write(None), 0, None),
            Err(NfsError::Locked)
        );
        assert_eq!(
            sm.check_io(&anon, f, read(Some((0, 9))), 0, None),
            Ok(IoGrant::Special)
        );
        // A write lock blocks anonymous reads of its range; bypass reads pass.
        let o = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                true,
            )
            .unwrap();
        let lo = (1u64, b"lock".to_vec());
        sm.lock_range(1, lo, f, o.stateid.other, 100, 199, LockType::Write)
            .unwrap();
        assert_eq!(
            sm.check_io(&anon, f, read(Some((150, 150))), 0, None),
            Err(NfsError::Locked)
        );
        assert_eq!(
            sm.check_io(&anon, f, read(Some((0, 99))), 0, None),
            Ok(IoGrant::Special)
        );
        assert_eq!(
            sm.check_io(&bypass, f, read(Some((150, 150))), 0, None),
            Ok(IoGrant::Special)
        );
        // Other reserved values are bad.
        let odd = stateid4 {
            seqid: 7,
            other: [0; 12],
        };
        assert_eq!(
            sm.check_io(&odd, f, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
        let odd = stateid4 {
            seqid: 0,
            other: [0xff; 12],
        };
        assert_eq!(
            sm.check_io(&odd, f, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
    }

    #[test]
    fn io_with_open_and_lock_stateids() {
        let mut sm = sm();
        sm.mandatory_locks = true;
        let f = (0, ObjectId(5));
        let g = (0, ObjectId(6));
        let a = (1u64, b"a".to_vec());
        let b = (1u64, b"b".to_vec());
        let ro = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                true,
            )
            .unwrap()
            .stateid;
        assert_eq!(
            sm.check_io(&ro, f, read(Some((0, 9))), 0, None),
            Ok(IoGrant::State { client: 1 })
        );
        assert_eq!(
            sm.check_io(&ro, f, write(Some((0, 9))), 0, None),
            Err(NfsError::OpenMode)
        );
        // Another file, another client (4.1), an unknown or stale stateid.
        assert_eq!(
            sm.check_io(&ro, g, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
        assert_eq!(
            sm.check_io(&ro, f, read(None), 1, Some(2)),
            Err(NfsError::BadStateid)
        );
        let mut unknown = ro.clone();
        unknown.other[11] ^= 0x55;
        assert_eq!(
            sm.check_io(&unknown, f, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
        let mut stale = ro.clone();
        stale.other[3] ^= 1;
        assert_eq!(
            sm.check_io(&stale, f, read(None), 0, None),
            Err(NfsError::StaleStateid)
        );
        // Seqids: old, future, and 4.1's "current" zero.
        let up = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_WRITE,
                    deny: 0,
                },
                true,
            )
            .unwrap()
            .stateid;
        assert_eq!(
            sm.check_io(&ro, f, read(None), 0, None),
            Err(NfsError::OldStateid)
        );
        let future = stateid4 {
            seqid: up.seqid + 1,
            ..up.clone()
        };
        assert_eq!(
            sm.check_io(&future, f, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
        let zero = stateid4 {
            seqid: 0,
            ..up.clone()
        };
        assert!(sm.check_io(&zero, f, write(None), 1, Some(1)).is_ok());
        assert_eq!(
            sm.check_io(&zero, f, write(None), 0, None),
            Err(NfsError::OldStateid)
        );
        // A write-only open may read, unless another open denies reading.
        let wo = sm
            .open(
                1,
                b.clone(),
                g,
                Share {
                    access: ACCESS_WRITE,
                    deny: 0,
                },
                true,
            )
            .unwrap()
            .stateid;
        assert!(sm.check_io(&wo, g, read(Some((0, 0))), 0, None).is_ok());
        sm.open(
            1,
            a.clone(),
            g,
            Share {
                access: ACCESS_READ,
                deny: ACCESS_READ,
            },
            true,
        )
        .unwrap();
        assert_eq!(
            sm.check_io(&wo, g, read(Some((0, 0))), 0, None),
            Err(NfsError::Locked)
        );
        // Mandatory locks: the lock owner's own lock does not block it,
        // another owner's does, and an open stateid runs as no lock owner.
        let l1 = sm
            .lock_range(1, (1, b"l1".to_vec()), f, up.other, 0, 9, LockType::Write)
            .unwrap();
        assert!(sm.check_io(&l1, f, write(Some((0, 9))), 0, None).is_ok());
        assert_eq!(
            sm.check_io(&up, f, write(Some((5, 5))), 0, None),
            Err(NfsError::Locked)
        );
        assert!(sm.check_io(&up, f, write(Some((10, 19))), 0, None).is_ok());
        let l2 = sm
            .lock_range(1, (1, b"l2".to_vec()), f, up.other, 20, 29, LockType::Read)
            .unwrap();
        assert_eq!(
            sm.check_io(&l2, f, read(Some((0, 0))), 0, None),
            Err(NfsError::Locked)
        );
        assert!(sm.check_io(&l1, f, read(Some((20, 29))), 0, None).is_ok());
        assert_eq!(
            sm.check_io(&l1, f, write(Some((20, 29))), 0, None),
            Err(NfsError::Locked)
        );
        // Unconfirmed (4.0) opens cannot do I/O yet.
        let c = (1u64, b"c".to_vec());
        let h = (0, ObjectId(7));
        let un = sm
            .open(
                1,
                c,
                h,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                false,
            )
            .unwrap()
            .stateid;
        assert_eq!(
            sm.check_io(&un, h, read(None), 0, None),
            Err(NfsError::BadStateid)
        );
        sm.confirm_open(&un.other).unwrap();
        let un = stateid4 {
            seqid: un.seqid + 1,
            ..un
        };
        assert!(sm.check_io(&un, h, read(None), 0, None).is_ok());
    }

    #[test]
    fn unconfirmed_owner_is_reset() {
        let sm = sm();
        let f = (0, ObjectId(5));
        let a = (1u64, b"a".to_vec());
        assert!(!sm.reset_unconfirmed_open_owner(&a), "unknown owner");
        let o = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_READ,
                    deny: ACCESS_WRITE,
                },
                false,
            )
            .unwrap();
        sm.record_seqid(OwnerKind::Open, a.clone(), 7, vec![1]);
        assert!(!sm.open_owner_confirmed(&a));
        assert!(sm.reset_unconfirmed_open_owner(&a));
        assert!(sm.state_entry(&o.stateid.other).is_none());
        assert_eq!(
            sm.check_owner_seqid(OwnerKind::Open, &a, 3),
            Ok(super::super::SeqCheck::Next)
        );
        // Its deny is gone with it.
        let b = (1u64, b"b".to_vec());
        sm.open(
            1,
            b,
            f,
            Share {
                access: ACCESS_WRITE,
                deny: 0,
            },
            true,
        )
        .unwrap();
        // A confirmed owner is left alone.
        let o = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                false,
            )
            .unwrap();
        sm.confirm_open(&o.stateid.other).unwrap();
        assert!(sm.open_owner_confirmed(&a));
        assert!(!sm.reset_unconfirmed_open_owner(&a));
        assert!(sm.state_entry(&o.stateid.other).is_some());
    }

    #[test]
    fn close_replay_found_by_stateid() {
        let sm = sm();
        let f = (0, ObjectId(5));
        let a = (1u64, b"a".to_vec());
        let o = sm
            .open(
                1,
                a.clone(),
                f,
                Share {
                    access: ACCESS_READ,
                    deny: 0,
                },
                true,
            )
            .unwrap();
        let closed = sm.close(&o.stateid.other).unwrap();
        let mut reply = Vec::new();
        reply.extend_from_slice(&4u32.to_be_bytes());
        reply.extend_from_slice(&0u32.to_be_bytes());
        reply.extend_from_slice(&(closed.seqid + 1).to_be_bytes());
        reply.extend_from_slice(&o.stateid.other);
        sm.record_seqid(OwnerKind::Open, a, 9, reply.clone());
        assert_eq!(sm.find_close_replay(&o.stateid.other, 9), Some(reply));
        assert_eq!(sm.find_close_replay(&o.stateid.other, 8), None);
        let mut other = o.stateid.other;
        other[11] ^= 1;
        assert_eq!(sm.find_close_replay(&other, 9), None);
    }
}
