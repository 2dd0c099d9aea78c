//! Open state and share reservations (RFC 7530 §9.9, RFC 8881 §9.7).
//!
//! SMB share modes are OPEN's share_access/share_deny: an open conflicts
//! with another open owner's open when one denies what the other accesses.

use nfs4d_xdr::nfs4::stateid4;

use super::{bump, ClientId, FileKey, Inner, Other, OwnerKey, StateEntry, StateKind, StateManager};
use crate::error::NfsError;

/// OPEN4_SHARE_ACCESS_READ.
pub const ACCESS_READ: u32 = 1;
/// OPEN4_SHARE_ACCESS_WRITE.
pub const ACCESS_WRITE: u32 = 2;
/// OPEN4_SHARE_ACCESS_BOTH.
pub const ACCESS_BOTH: u32 = 3;
/// Mask of the access bits; the rest of share_access carries 4.1 WANT flags.
pub const ACCESS_MASK: u32 = 3;

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
    /// Share conflict of a prospective open against other owners' opens.
    pub fn share_conflict(&self, file: FileKey, owner: &OwnerKey, want: Share) -> bool {
        self.states.values().any(|e| {
            e.file == file
                && matches!(&e.kind, StateKind::Open(o) if &o.owner != owner && o.share.conflicts(&want))
        })
    }

    /// Union of the share modes held by all opens of a file.
    pub fn file_share(&self, file: FileKey) -> Share {
        self.states
            .values()
            .filter(|e| e.file == file)
            .fold(Share::default(), |acc, e| match &e.kind {
                StateKind::Open(o) => Share {
                    access: acc.access | o.share.access,
                    deny: acc.deny | o.share.deny,
                },
                StateKind::Lock { .. } => acc,
            })
    }
}

impl StateManager {
    /// Records an OPEN of `file` by `owner`: checks share reservations and
    /// creates or upgrades the owner's open stateid.
    pub fn open(&self, client: ClientId, owner: OwnerKey, file: FileKey, want: Share, confirmed: bool) -> Result<Opened, NfsError> {
        let mut g = self.lock();
        if g.share_conflict(file, &owner, want) {
            return Err(NfsError::ShareDenied);
        }
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
                stateid: stateid4 { seqid: e.seqid, other },
                new: false,
            });
        }
        if g.states.len() >= self.limits.max_open_states as usize {
            return Err(NfsError::Resource);
        }
        let other = g.new_other(self.boot);
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
        let file = g.states.get(other).map(|e| e.file).ok_or(NfsError::BadStateid)?;
        let held = g.states.values().any(|e| {
            matches!(&e.kind, StateKind::Lock { open, owner } if open == other
                && g.locks.get(&file).is_some_and(|rs| rs.iter().any(|r| &r.owner == owner)))
        });
        if held {
            return Err(NfsError::LocksHeld);
        }
        let locks: Vec<Other> = g
            .states
            .iter()
            .filter(|(_, e)| matches!(&e.kind, StateKind::Lock { open, .. } if open == other))
            .map(|(o, _)| *o)
            .collect();
        for l in locks {
            g.remove_state(&l);
        }
        g.remove_state(other).ok_or(NfsError::BadStateid)
    }

    /// OPEN_DOWNGRADE: narrows the share modes to ones opened before.
    pub fn downgrade(&self, other: &Other, want: Share) -> Result<u32, NfsError> {
        let mut g = self.lock();
        let e = g.states.get_mut(other).ok_or(NfsError::BadStateid)?;
        let StateKind::Open(o) = &mut e.kind else {
            return Err(NfsError::BadStateid);
        };
        let subset = want.access & !o.share.access == 0 && want.deny & !o.share.deny == 0;
        if !subset || want.access == 0 || o.accesses & (1 << want.access) == 0 || o.denies & (1 << want.deny) == 0 {
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
            StateKind::Lock { .. } => return Err(NfsError::BadStateid),
        };
        let seqid = e.seqid;
        g.open_owners.entry(owner).or_default().confirmed = true;
        Ok(seqid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    fn sm() -> StateManager {
        StateManager::new(Arc::new(ManualClock::default()), 10, 1, Default::default())
    }

    #[test]
    fn share_deny_blocks_other_owner_only() {
        let sm = sm();
        let f = (0, 5);
        let a = (1u64, b"a".to_vec());
        let b = (1u64, b"b".to_vec());
        sm.open(1, a.clone(), f, Share { access: ACCESS_READ, deny: ACCESS_WRITE }, true).unwrap();
        assert_eq!(
            sm.open(1, b.clone(), f, Share { access: ACCESS_WRITE, deny: 0 }, true),
            Err(NfsError::ShareDenied)
        );
        sm.open(1, b, f, Share { access: ACCESS_READ, deny: 0 }, true).unwrap();
        let up = sm.open(1, a, f, Share { access: ACCESS_WRITE, deny: 0 }, true).unwrap();
        assert!(!up.new);
        assert_eq!(up.stateid.seqid, 2);
    }

    #[test]
    fn downgrade_only_to_previous_modes() {
        let sm = sm();
        let f = (0, 5);
        let a = (1u64, b"a".to_vec());
        sm.open(1, a.clone(), f, Share { access: ACCESS_READ, deny: 0 }, true).unwrap();
        let o = sm.open(1, a, f, Share { access: ACCESS_WRITE, deny: 0 }, true).unwrap();
        assert_eq!(sm.downgrade(&o.stateid.other, Share { access: ACCESS_BOTH, deny: 0 }), Err(NfsError::Inval));
        assert_eq!(sm.downgrade(&o.stateid.other, Share { access: ACCESS_READ, deny: 0 }), Ok(3));
        sm.close(&o.stateid.other).unwrap();
        assert_eq!(sm.close(&o.stateid.other).unwrap_err(), NfsError::BadStateid);
    }
}
