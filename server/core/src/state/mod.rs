//! Client state: clients, sessions, stateids, share reservations, locks
//! and leases (RFC 7530 §9, RFC 8881 §2.10 and §8–9).
//!
//! All of it lives behind one mutex in [`StateManager`]. Operations hold
//! the lock only for bookkeeping, never across backend I/O, so one lock is
//! simple and does not serialise file traffic. Time comes from the injected
//! [`Clock`], never from the wall clock.

pub mod client;
pub mod courtesy;
pub mod deleg;
pub mod introspect;
pub mod lock;
pub mod open;
pub mod oslock;
pub mod recovery;
pub mod session;
pub mod table;

#[cfg(test)]
mod limits_tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nfs4d_xdr::nfs4::stateid4;

use crate::clock::Clock;
use crate::error::NfsError;
use nfs4d_fhmap::ObjectId;

pub use client::{Client, ClientId};
pub use introspect::{ClientView, StateCounts, StateStats};
pub use lock::{LockRange, LockType};
pub use open::{OpenState, Share};
pub use session::{Session, Slot};

/// OPEN4_SHARE_ACCESS_READ.
pub const ACCESS_READ: u32 = 1;
/// OPEN4_SHARE_ACCESS_WRITE.
pub const ACCESS_WRITE: u32 = 2;
/// OPEN4_SHARE_ACCESS_BOTH.
pub const ACCESS_BOTH: u32 = 3;
/// Mask of the access bits; the rest of share_access carries 4.1 WANT flags.
pub const ACCESS_MASK: u32 = 3;

/// `sessionid4`.
pub type SessionId = [u8; 16];

/// Who established a client record. State may only be changed by the
/// same principal (RFC 8881 §2.4.3); for AUTH_SYS that is the uid, for
/// RPCSEC_GSS the Kerberos principal (whatever uid it maps to, and
/// whichever service its calls use).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// AUTH_NONE.
    Anonymous,
    /// AUTH_SYS with this uid.
    Uid(u32),
    /// RPCSEC_GSS with this principal (`alice@EXAMPLE.COM`).
    Gss(String),
}

/// Identifies a file for share reservations and locks: export and object.
pub type FileKey = (u32, ObjectId);

/// The 12-byte `other` field of a stateid.
pub type Other = [u8; 12];

/// What a stateid stands for (RFC 8881 §8.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateKind {
    /// An open of a file by an open owner.
    Open(open::OpenState),
    /// Byte-range locks of a lock owner on a file, tied to an open.
    Lock {
        /// The lock owner (client-scoped).
        owner: OwnerKey,
        /// The open stateid's `other` the locks were derived from.
        open: Other,
    },
    /// A delegation (RFC 8881 §10.2).
    Deleg(deleg::DelegState),
}

/// A stateid's record.
#[derive(Debug, Clone)]
pub struct StateEntry {
    /// Owning client.
    pub client: ClientId,
    /// The file.
    pub file: FileKey,
    /// Current seqid of this stateid (bumped on every change).
    pub seqid: u32,
    /// Open or lock.
    pub kind: StateKind,
    /// Set when a 4.0 open still awaits OPEN_CONFIRM.
    pub unconfirmed: bool,
}

/// An open owner or lock owner, scoped to its client.
pub type OwnerKey = (ClientId, Vec<u8>);

/// 4.0 sequencing state of an open or lock owner (RFC 7530 §9.1.7): the
/// last seqid seen and the reply to it, replayed for a retransmission.
#[derive(Debug, Clone, Default)]
pub struct OwnerSeq {
    /// Last seqid processed, `None` before the first request.
    pub last: Option<u32>,
    /// Encoded result of the last seqid-bearing operation.
    pub reply: Option<Vec<u8>>,
    /// Open owners: confirmed (4.0 OPEN_CONFIRM done once).
    pub confirmed: bool,
    /// Number of stateids derived from this owner (freed at zero).
    pub states: u32,
}

/// Which owner table a 4.0 seqid belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    /// Open owner.
    Open,
    /// Lock owner.
    Lock,
}

/// Outcome of checking a 4.0 seqid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqCheck {
    /// The next seqid: process the request.
    Next,
    /// A retransmission of the last request: send this reply again.
    Replay(Vec<u8>),
}

/// Everything behind the lock.
#[derive(Debug, Default)]
pub struct Inner {
    /// Clients by id.
    pub clients: HashMap<ClientId, Client>,
    /// 4.0 callback updates awaiting SETCLIENTID_CONFIRM, by client id.
    pub pending_updates: HashMap<ClientId, Client>,
    /// Sessions by id.
    pub sessions: HashMap<SessionId, Session>,
    /// Stateids by `other`, indexed by file and client.
    pub states: table::StateTable,
    /// Open stateid per (open owner, file).
    pub opens_by_owner: HashMap<(OwnerKey, FileKey), Other>,
    /// Lock stateid per (lock owner, file).
    pub locks_by_owner: HashMap<(OwnerKey, FileKey), Other>,
    /// 4.0 open-owner sequencing.
    pub open_owners: HashMap<OwnerKey, OwnerSeq>,
    /// 4.0 lock-owner sequencing.
    pub lock_owners: HashMap<OwnerKey, OwnerSeq>,
    /// Byte-range locks per file.
    pub locks: HashMap<FileKey, Vec<LockRange>>,
    /// The same locks as kernel locks on the backing files.
    pub os_locks: oslock::OsLocks,
    /// Stateid counter (low 8 bytes of `other`).
    pub next_state: u64,
    /// Client id counter.
    pub next_client: u32,
    /// Clients that lost their state to expiry, oldest first (bounded).
    pub expired: std::collections::VecDeque<u32>,
    /// The same, for lookups.
    pub expired_set: std::collections::HashSet<u32>,
    /// Delegations held or being recalled, per file.
    pub delegs: deleg::DelegIndex,
    /// Stable records of clients expired under the lock, to remove.
    pub record_removals: Vec<Vec<u8>>,
    /// Event counters (metrics, `ctl status`).
    pub stats: StateStats,
}

/// Expired clients remembered for NFS4ERR_EXPIRED answers.
pub const MAX_EXPIRED_CLIENTS: usize = 4096;

/// The server's state table.
pub struct StateManager {
    inner: Mutex<Inner>,
    /// Time source for leases.
    pub clock: Arc<dyn Clock>,
    /// Lease period in milliseconds.
    pub lease_ms: u64,
    /// Identifies this server instance in client ids and stateids, so ids
    /// from before a restart are recognised as stale (RFC 8881 §8.2.2).
    pub boot: u32,
    /// Limits copied from the configuration.
    pub limits: crate::config::Limits,
    /// Byte-range locks also block conflicting READ/WRITE (RFC 7530
    /// §9.1.6 lets a server choose). Off by default, as on Linux.
    pub mandatory_locks: bool,
    /// NFSv4.0 duplicate request cache.
    pub drc: crate::drc::Drc,
    /// Stable client records and the grace period after a restart.
    pub recovery: recovery::Recovery,
    /// Recalls and other callbacks for the callback driver.
    pub callbacks: Arc<dyn deleg::CallbackSink>,
    /// Longest a courtesy client is kept, in milliseconds.
    pub courtesy_ms: u64,
}

impl std::fmt::Debug for StateManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateManager")
            .field("boot", &self.boot)
            .finish()
    }
}

impl StateManager {
    /// An empty state table.
    pub fn new(
        clock: Arc<dyn Clock>,
        lease_secs: u32,
        boot: u32,
        limits: crate::config::Limits,
        callbacks: Arc<dyn deleg::CallbackSink>,
    ) -> Self {
        StateManager {
            inner: Mutex::new(Inner::default()),
            clock,
            lease_ms: u64::from(lease_secs) * 1000,
            boot,
            limits,
            mandatory_locks: open::MANDATORY_LOCKS_DEFAULT,
            drc: crate::drc::Drc::default(),
            recovery: recovery::Recovery::default(),
            callbacks,
            courtesy_ms: u64::from(crate::config::DEFAULT_COURTESY_TIME) * 1000,
        }
    }

    /// Locks the table. A panic while holding the lock would poison it; the
    /// data is still consistent per operation, so recover it.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Milliseconds on the injected clock.
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Records that a 4.0 owner processed `seqid`, with the encoded reply
    /// to replay if the request is retransmitted.
    pub fn record_seqid(&self, kind: OwnerKind, owner: OwnerKey, seqid: u32, reply: Vec<u8>) {
        let mut g = self.lock();
        let table = match kind {
            OwnerKind::Open => &mut g.open_owners,
            OwnerKind::Lock => &mut g.lock_owners,
        };
        let seq = table.entry(owner).or_default();
        seq.last = Some(seqid);
        seq.reply = Some(reply);
    }

    /// Checks a 4.0 owner's seqid without changing anything but, for an
    /// owner not seen before, its admission (`limits.max_owners_per_client`).
    pub fn check_owner_seqid(
        &self,
        kind: OwnerKind,
        owner: &OwnerKey,
        seqid: u32,
    ) -> Result<SeqCheck, NfsError> {
        let mut g = self.lock();
        let table = match kind {
            OwnerKind::Open => &g.open_owners,
            OwnerKind::Lock => &g.lock_owners,
        };
        match table.get(owner) {
            Some(seq) => check_seqid(seq, seqid),
            None => {
                g.admit_owner(kind, owner, self.limits.max_owners_per_client as usize)?;
                Ok(SeqCheck::Next)
            }
        }
    }

    /// Drops clients whose lease has run out, with all their state
    /// (RFC 8881 §8.3). Returns how many were expired.
    pub fn expire_leases(&self) -> usize {
        let now = self.now();
        let mut g = self.lock();
        let dead: Vec<ClientId> = g
            .clients
            .values()
            .filter(|c| c.lease_expires_ms <= now && !c.has_busy_session(&g.sessions))
            .map(|c| c.id)
            .collect();
        let dead = self.courtesy_triage(&mut g, dead, now);
        for id in &dead {
            tracing::info!(
                client = format_args!("{id:#x}"),
                "lease expired; releasing its state"
            );
            // A client whose lease expired has lost its state and may not
            // reclaim after a restart (RFC 8881 §8.4.3).
            g.expire_with_record(*id);
            g.stats.leases_expired += 1;
        }
        drop(g);
        self.tick_delegations(now);
        self.flush_record_removals();
        // Ends the grace period once its time is up (and forgets clients
        // that did not come back) even while no request asks.
        self.recovery.in_grace(now);
        dead.len()
    }
}

impl Inner {
    /// A fresh `other` value: boot id, the owning client's counter, then a
    /// stateid counter. The boot id makes stateids of an earlier server
    /// instance recognisable (NFS4ERR_STALE_STATEID); the client part lets
    /// a stateid of a client whose lease expired answer NFS4ERR_EXPIRED
    /// rather than BAD_STATEID (RFC 7530 §9.1.4).
    pub fn new_other(&mut self, boot: u32, client: ClientId) -> Other {
        self.next_state += 1;
        let mut o = [0u8; 12];
        o[..4].copy_from_slice(&boot.to_be_bytes());
        o[4..8].copy_from_slice(&(client as u32).to_be_bytes());
        o[8..].copy_from_slice(&(self.next_state as u32).to_be_bytes());
        o
    }

    /// Remembers that a client lost its state to lease expiry or to a new
    /// incarnation of itself, so its stateids answer NFS4ERR_EXPIRED.
    fn note_expired(&mut self, id: ClientId) {
        if self.expired.len() >= MAX_EXPIRED_CLIENTS {
            if let Some(old) = self.expired.pop_front() {
                self.expired_set.remove(&old);
            }
        }
        if self.expired_set.insert(id as u32) {
            self.expired.push_back(id as u32);
        }
    }

    /// True when an unknown stateid belonged to a client that lost its
    /// state to lease expiry or a new incarnation.
    pub fn is_expired_stateid(&self, other: &Other) -> bool {
        let client = u32::from_be_bytes([other[4], other[5], other[6], other[7]]);
        self.expired_set.contains(&client)
    }

    /// Purges a client whose lease expired (or that was replaced by a new
    /// incarnation): like [`Inner::purge_client`], remembering the loss.
    pub fn expire_client(&mut self, id: ClientId) {
        self.note_expired(id);
        self.purge_client(id);
    }

    /// Room for a new open or lock owner of client `owner.0`. A 4.0 client
    /// creates an owner record with every new owner id it sends, even in
    /// requests that fail, so without a bound a hostile client grows the
    /// tables without end. Under the limit this is a length check; at it,
    /// an owner of the same client that holds no state is forgotten (only
    /// its replay cache of RFC 7530 §9.1.7 is lost; the server may release
    /// such owners, RFC 7530 §9.1.10), or the new owner is refused with
    /// NFS4ERR_RESOURCE (NFS4ERR_DELAY in 4.1, see compound.rs).
    pub fn admit_owner(
        &mut self,
        kind: OwnerKind,
        owner: &OwnerKey,
        limit: usize,
    ) -> Result<(), NfsError> {
        let known = match kind {
            OwnerKind::Open => self.open_owners.contains_key(owner),
            OwnerKind::Lock => self.lock_owners.contains_key(owner),
        };
        if known || self.open_owners.len() + self.lock_owners.len() < limit {
            return Ok(());
        }
        let client = owner.0;
        let mine = self
            .open_owners
            .keys()
            .chain(self.lock_owners.keys())
            .filter(|k| k.0 == client)
            .count();
        if mine < limit {
            return Ok(());
        }
        let idle = |t: &HashMap<OwnerKey, OwnerSeq>| {
            t.iter()
                .find(|(k, s)| k.0 == client && s.states == 0)
                .map(|(k, _)| k.clone())
        };
        if let Some(k) = idle(&self.open_owners) {
            self.open_owners.remove(&k);
            return Ok(());
        }
        if let Some(k) = idle(&self.lock_owners) {
            self.lock_owners.remove(&k);
            return Ok(());
        }
        tracing::warn!(
            client = format_args!("{client:#x}"),
            limit,
            "client has too many open/lock owners holding state; refusing a new one"
        );
        Err(NfsError::Resource)
    }

    /// Removes a client and everything it owns.
    pub fn purge_client(&mut self, id: ClientId) {
        if let Some(c) = self.clients.remove(&id) {
            for s in c.sessions {
                self.sessions.remove(&s);
            }
        }
        let others: Vec<Other> = self
            .states
            .iter()
            .filter(|(_, e)| e.client == id)
            .map(|(o, _)| *o)
            .collect();
        for o in others {
            self.remove_state(&o);
        }
        self.open_owners.retain(|k, _| k.0 != id);
        self.lock_owners.retain(|k, _| k.0 != id);
        for ranges in self.locks.values_mut() {
            ranges.retain(|r| r.owner.0 != id);
        }
        self.locks.retain(|_, r| !r.is_empty());
        self.os_locks.release_client(id);
    }

    /// Removes one stateid and its index entries (lock ranges of a lock
    /// stateid go with it).
    pub fn remove_state(&mut self, other: &Other) -> Option<StateEntry> {
        let e = self.states.remove(other)?;
        match &e.kind {
            StateKind::Open(o) => {
                self.opens_by_owner.remove(&(o.owner.clone(), e.file));
                if let Some(seq) = self.open_owners.get_mut(&o.owner) {
                    seq.states = seq.states.saturating_sub(1);
                }
                self.forget_idle_41_owner(OwnerKind::Open, &o.owner);
            }
            StateKind::Lock { owner, .. } => {
                self.locks_by_owner.remove(&(owner.clone(), e.file));
                // Unlocks the kernel's copy of the locks, too.
                self.os_locks.release(owner, e.file);
                if let Some(ranges) = self.locks.get_mut(&e.file) {
                    ranges.retain(|r| &r.owner != owner);
                    if ranges.is_empty() {
                        self.locks.remove(&e.file);
                    }
                }
                if let Some(seq) = self.lock_owners.get_mut(owner) {
                    seq.states = seq.states.saturating_sub(1);
                }
                self.forget_idle_41_owner(OwnerKind::Lock, owner);
            }
            StateKind::Deleg(d) => {
                if d.recall == deleg::Recall::Revoked {
                    if let Some(c) = self.clients.get_mut(&e.client) {
                        c.revoked = c.revoked.saturating_sub(1);
                    }
                } else {
                    self.unindex_deleg(e.file, other);
                }
            }
        }
        Some(e)
    }

    /// A 4.1 owner keeps nothing once its last stateid is gone: session
    /// slots, not owner seqids, give replay protection (RFC 8881 §2.10.6),
    /// so the record is dropped rather than left to accumulate.
    fn forget_idle_41_owner(&mut self, kind: OwnerKind, owner: &OwnerKey) {
        if self.clients.get(&owner.0).is_none_or(|c| c.minor < 1) {
            return;
        }
        let table = match kind {
            OwnerKind::Open => &mut self.open_owners,
            OwnerKind::Lock => &mut self.lock_owners,
        };
        if table.get(owner).is_some_and(|s| s.states == 0) {
            table.remove(owner);
        }
    }

    /// Looks up a stateid for use by an operation, checking that it belongs
    /// to this server instance, exists, and that its seqid is current
    /// (RFC 8881 §8.2.2–8.2.4). `minor` 1+ allows seqid 0 meaning "current".
    pub fn check_stateid(
        &self,
        sid: &stateid4,
        boot: u32,
        minor: u32,
    ) -> Result<&StateEntry, NfsError> {
        if sid.other[..4] != boot.to_be_bytes() {
            // In 4.1 a stateid can only arrive on a session of this
            // instance, which SEQUENCE checked: one of another instance
            // (or another head of a cluster, after a planned move) is
            // simply unknown here. STALE_STATEID "is moot in NFSv4.1"
            // (RFC 8881 §15.1.5.4); BAD_STATEID makes the client recover
            // the state (reopen), where STALE_STATEID would make a client
            // that just moved here check its lease and retry for ever.
            return Err(
                if minor >= 1 || (self.states.is_empty() && sid.other[..4] == [0; 4]) {
                    NfsError::BadStateid
                } else {
                    NfsError::StaleStateid
                },
            );
        }
        let Some(e) = self.states.get(&sid.other) else {
            return Err(if self.is_expired_stateid(&sid.other) {
                NfsError::Expired
            } else {
                NfsError::BadStateid
            });
        };
        if let StateKind::Deleg(d) = &e.kind {
            if d.recall == deleg::Recall::Revoked {
                return Err(NfsError::DelegRevoked);
            }
        }
        if sid.seqid == 0 && minor >= 1 {
            return Ok(e);
        }
        if sid.seqid > e.seqid {
            return Err(NfsError::BadStateid);
        }
        if sid.seqid < e.seqid {
            return Err(NfsError::OldStateid);
        }
        Ok(e)
    }
}

/// Special stateids (RFC 8881 §8.2.3).
pub mod special {
    use nfs4d_xdr::nfs4::stateid4;

    /// All zeros: anonymous access, subject to share reservations.
    pub fn is_anonymous(s: &stateid4) -> bool {
        s.seqid == 0 && s.other == [0; 12]
    }
    /// All ones: READ bypassing share reservations.
    pub fn is_bypass(s: &stateid4) -> bool {
        s.seqid == u32::MAX && s.other == [0xff; 12]
    }
    /// seqid 1, other zero: the current stateid of the COMPOUND (4.1).
    pub fn is_current(s: &stateid4) -> bool {
        s.seqid == 1 && s.other == [0; 12]
    }
    /// seqid u32::MAX, other zero: the invalid stateid (4.1).
    pub fn is_invalid(s: &stateid4) -> bool {
        s.seqid == u32::MAX && s.other == [0; 12]
    }
}

/// Checks a 4.0 seqid against an owner's last one (RFC 7530 §9.1.7).
pub fn check_seqid(seq: &OwnerSeq, seqid: u32) -> Result<SeqCheck, NfsError> {
    match seq.last {
        None => Ok(SeqCheck::Next),
        Some(last) if seqid == last.wrapping_add(1) => Ok(SeqCheck::Next),
        Some(last) if seqid == last => match &seq.reply {
            Some(r) => Ok(SeqCheck::Replay(r.clone())),
            None => Err(NfsError::BadSeqid),
        },
        Some(_) => Err(NfsError::BadSeqid),
    }
}

/// Bumps a stateid seqid, skipping 0 (reserved for "current" in 4.1).
pub fn bump(seqid: u32) -> u32 {
    match seqid.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::client::{Callback40, Principal};
    use std::time::Duration;

    #[test]
    fn stateids_of_an_expired_client_answer_expired() {
        let clock = Arc::new(ManualClock::default());
        let sm = StateManager::new(
            clock.clone(),
            10,
            77,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        let c = sm
            .setclientid(b"x", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(c.clientid, c.confirm, &Principal::Uid(0))
            .unwrap();
        let share = Share { access: 1, deny: 0 };
        let o = sm
            .open(
                c.clientid,
                (c.clientid, b"o".to_vec()),
                (0, ObjectId(3)),
                share,
                true,
            )
            .unwrap();
        let closed = stateid4 {
            seqid: 1,
            other: sm.lock().new_other(77, c.clientid),
        };
        assert_eq!(
            sm.lock().check_stateid(&closed, 77, 0).unwrap_err(),
            NfsError::BadStateid
        );
        clock.advance(Duration::from_secs(11));
        // Uncontested state outlives the lease (courtesy.rs)…
        assert_eq!(sm.expire_leases(), 0);
        assert!(sm.lock().check_stateid(&o.stateid, 77, 0).is_ok());
        // …until another client's open conflicts with it.
        let d = sm
            .setclientid(b"y", [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(d.clientid, d.confirm, &Principal::Uid(0))
            .unwrap();
        let deny = Share { access: 1, deny: 1 };
        sm.open(
            d.clientid,
            (d.clientid, b"o".to_vec()),
            (0, ObjectId(3)),
            deny,
            true,
        )
        .unwrap();
        assert_eq!(
            sm.lock().check_stateid(&o.stateid, 77, 0).unwrap_err(),
            NfsError::Expired
        );
        let mut stale = o.stateid.clone();
        stale.other[..4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(
            sm.lock().check_stateid(&stale, 77, 0).unwrap_err(),
            NfsError::StaleStateid
        );
        // 4.1: another instance's stateid on a session of this one.
        assert_eq!(
            sm.lock().check_stateid(&stale, 77, 1).unwrap_err(),
            NfsError::BadStateid
        );
    }

    fn confirmed(sm: &StateManager, owner: &[u8]) -> ClientId {
        let c = sm
            .setclientid(owner, [1; 8], Principal::Uid(0), Callback40::default())
            .unwrap();
        sm.setclientid_confirm(c.clientid, c.confirm, &Principal::Uid(0))
            .unwrap();
        c.clientid
    }

    #[test]
    fn courtesy_clients_are_bounded_in_time_and_number_and_renew() {
        let clock = Arc::new(ManualClock::default());
        let limits = crate::config::Limits {
            max_courtesy_clients: 2,
            ..Default::default()
        };
        let mut sm = StateManager::new(
            clock.clone(),
            10,
            77,
            limits,
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        sm.courtesy_ms = 60_000;
        let share = Share { access: 1, deny: 0 };
        let ids: Vec<ClientId> = (0..3u8)
            .map(|i| {
                let id = confirmed(&sm, &[b'c', i]);
                sm.open(
                    id,
                    (id, b"o".to_vec()),
                    (0, ObjectId(10 + u64::from(i))),
                    share,
                    true,
                )
                .unwrap();
                clock.advance(Duration::from_secs(1));
                id
            })
            .collect();
        let idle = confirmed(&sm, b"idle");
        clock.advance(Duration::from_secs(10));
        // The stateless client goes; of three with state, the bound of two
        // keeps the most recently expired.
        assert_eq!(sm.expire_leases(), 2);
        assert_eq!(sm.renew(idle), Err(NfsError::Expired));
        assert_eq!(sm.renew(ids[0]), Err(NfsError::Expired));
        // Renewing makes a courtesy client an ordinary one again.
        sm.renew(ids[1]).unwrap();
        assert!(!sm.lock().is_courtesy(ids[1]));
        assert!(sm.lock().is_courtesy(ids[2]));
        // The other one is dropped once courtesy_time has passed.
        clock.advance(Duration::from_secs(61));
        sm.expire_leases();
        assert_eq!(sm.renew(ids[2]), Err(NfsError::Expired));
    }

    #[test]
    fn lock_holders_get_no_courtesy() {
        let clock = Arc::new(ManualClock::default());
        let sm = StateManager::new(
            clock.clone(),
            10,
            77,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        let f = (0, ObjectId(3));
        let share = Share { access: 3, deny: 0 };
        let a = confirmed(&sm, b"a");
        let oa = sm.open(a, (a, b"o".to_vec()), f, share, true).unwrap();
        sm.lock_range(
            a,
            (a, b"l".to_vec()),
            f,
            oa.stateid.other,
            0,
            9,
            LockType::Write,
        )
        .unwrap();
        // An open-only client is kept as a courtesy client.
        let c = confirmed(&sm, b"c");
        sm.open(c, (c, b"o".to_vec()), (0, ObjectId(4)), share, true)
            .unwrap();
        clock.advance(Duration::from_secs(11));
        let b = confirmed(&sm, b"b");
        // The lock holder goes at once: local processes its kernel locks
        // block cannot ask for them.
        assert_eq!(sm.expire_leases(), 1);
        assert_eq!(sm.renew(a), Err(NfsError::Expired));
        assert!(sm.lock().is_courtesy(c));
        let ob = sm.open(b, (b, b"o".to_vec()), f, share, true).unwrap();
        assert!(sm
            .lock_range(
                b,
                (b, b"l".to_vec()),
                f,
                ob.stateid.other,
                5,
                5,
                LockType::Write
            )
            .is_ok());
    }
}
