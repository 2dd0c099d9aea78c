//! Delegations: the server's promise that no other client will change a
//! file (write delegation) or write it (read delegation) without first
//! recalling the delegation (RFC 8881 §10.2–10.4, RFC 7530 §10.2–10.4).
//!
//! They are SMB oplocks under another name: a read delegation is a Level
//! II oplock, a write delegation an exclusive/batch oplock, and a recall
//! is an oplock break. The conflicting request is answered NFS4ERR_DELAY
//! while CB_RECALL is on its way; the client retries until the holder has
//! sent DELEGRETURN, or until the server revokes the delegation one lease
//! period after the recall (RFC 8881 §10.4.6, RFC 7530 §10.4.6).
//!
//! This module holds the bookkeeping only. It never talks to a client:
//! recalls and CB_GETATTR requests are queued as [`CbWork`] for the
//! callback driver (`crate::cbdriver`), which owns the sockets.

use std::collections::HashMap;

use nfs4d_xdr::nfs4::{
    stateid4, OPEN4_SHARE_ACCESS_WANT_NO_DELEG, OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
    OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG,
};

use super::ACCESS_WRITE;
use super::{ClientId, FileKey, Inner, Other, StateEntry, StateKind, StateManager};
use crate::error::NfsError;

/// Kind of delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegType {
    /// Read delegation (Level II oplock).
    Read,
    /// Write delegation (exclusive/batch oplock).
    Write,
}

/// Where a delegation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Held, nobody wants it back.
    Held,
    /// CB_RECALL is due or was sent at `since_ms`; `queued` once handed
    /// to the callback driver.
    Recalling {
        /// When the recall started (clock ms).
        since_ms: u64,
        /// Handed to the callback driver.
        queued: bool,
    },
    /// Revoked (4.1 only keeps these, so the stateid answers
    /// NFS4ERR_DELEG_REVOKED until FREE_STATEID, RFC 8881 §8.2.4).
    Revoked,
}

/// A delegation stateid's details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegState {
    /// Read or write.
    pub ty: DelegType,
    /// Recall progress.
    pub recall: Recall,
    /// The file's wire filehandle, for CB_RECALL and CB_GETATTR.
    pub fh: Vec<u8>,
    /// Change attribute when granted: a CB_GETATTR answer with another
    /// value means the holder has modified the file (RFC 8881 §10.4.3).
    pub change_at_grant: u64,
}

/// What a request wants to do to a file, for conflict checks against
/// delegations (RFC 8881 §10.4.1 lists the conflicting operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// OPEN for reading only.
    OpenRead,
    /// OPEN with write access.
    OpenWrite,
    /// READ data.
    Read,
    /// WRITE data, SETATTR, or anything else changing the file's data or
    /// attributes.
    Modify,
    /// REMOVE, RENAME or LINK of a name of the file: the holder must give
    /// its cached view of the namespace up.
    Namespace,
}

impl Access {
    /// Whether a delegation of type `ty` held by another client conflicts.
    fn conflicts(self, ty: DelegType) -> bool {
        match self {
            Access::OpenRead | Access::Read => ty == DelegType::Write,
            Access::OpenWrite | Access::Modify | Access::Namespace => true,
        }
    }
}

/// Work for the callback driver.
#[derive(Debug)]
pub enum CbWork {
    /// Send CB_RECALL for a delegation.
    Recall {
        /// Holder.
        client: ClientId,
        /// The delegation stateid.
        stateid: stateid4,
        /// Its file's handle.
        fh: Vec<u8>,
    },
    /// Ask a write-delegation holder for the file's size and change
    /// attribute (CB_GETATTR, RFC 8881 §20.1).
    Getattr {
        /// Holder.
        client: ClientId,
        /// The file's handle.
        fh: Vec<u8>,
        /// Where the answer goes: (size, change) or `None` on failure.
        reply: std::sync::mpsc::SyncSender<Option<(u64, u64)>>,
    },
    /// Ask a 4.1 client to return delegations it can spare, keeping
    /// `keep` (CB_RECALL_ANY, RFC 8881 §20.6): the server is near its
    /// delegation limit.
    RecallAny {
        /// The client.
        client: ClientId,
        /// Delegations it may keep.
        keep: u32,
    },
    /// Check a 4.0 client's callback path with CB_NULL (RFC 7530 §10.2.1)
    /// after SETCLIENTID_CONFIRM.
    Probe40 {
        /// The client.
        client: ClientId,
    },
}

/// The CB_RECALL work for a delegation.
fn recall_work(client: ClientId, seqid: u32, other: Other, fh: &[u8]) -> CbWork {
    CbWork::Recall {
        client,
        stateid: stateid4 { seqid, other },
        fh: fh.to_vec(),
    }
}

/// Bound on callback work waiting for the driver. When full, recalls stay
/// marked unqueued and the lease tick queues them again.
pub const CB_QUEUE: usize = 1024;

/// Where the core's calls to clients go: the daemon's callback driver,
/// which owns the connections (the core has none). Tests record the work
/// or drop it.
pub trait CallbackSink: Send + Sync {
    /// Queues work; false when nothing can take it now (no driver, or its
    /// queue of [`CB_QUEUE`] entries is full).
    fn push(&self, w: CbWork) -> bool;
}

/// Takes no callback work: nothing is ever recalled by a call, so
/// delegations conflicts end by revocation after a lease.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCallbacks;

impl CallbackSink for NoCallbacks {
    fn push(&self, _w: CbWork) -> bool {
        false
    }
}

/// Why OPEN granted no delegation (maps onto `why_no_delegation4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoDeleg {
    /// The client said it wants none.
    NotWanted,
    /// Another client's open or delegation, or a recall in progress.
    Contention,
    /// The delegation limit is reached.
    Resource,
    /// The export's policy, or the file type, rules it out.
    NotSupported,
    /// No working callback path to the client.
    NoCallback,
    /// The client holds a read delegation and wants a write one.
    NoUpgrade,
}

/// What OPEN asks for: its share access and 4.1 want bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// share_access bits (READ 1, WRITE 2).
    pub access: u32,
    /// OPEN4_SHARE_ACCESS_WANT_* value (0: no preference).
    pub want: u32,
    /// Types the export's policy allows.
    pub policy: Policy,
    /// The client's callback path works.
    pub callback_ok: bool,
}

/// Which delegations an export grants (its `delegations` setting).
pub use crate::config::DelegationPolicy as Policy;

impl Inner {
    /// Delegation stateids per file (held or recalling; revoked ones are
    /// dropped from the index).
    pub fn file_delegs(&self, file: FileKey) -> &[Other] {
        self.delegs.get(&file).map_or(&[], Vec::as_slice)
    }

    fn deleg(&self, other: &Other) -> Option<(&StateEntry, &DelegState)> {
        let e = self.states.get(other)?;
        match &e.kind {
            StateKind::Deleg(d) => Some((e, d)),
            _ => None,
        }
    }

    /// Decides whether OPEN of `file` by `client` gets a delegation.
    fn deleg_decision(
        &self,
        client: ClientId,
        file: FileKey,
        r: Request,
        limit: usize,
    ) -> Result<DelegType, NoDeleg> {
        let wants_write = r.access & ACCESS_WRITE != 0;
        let allowed = match r.want {
            OPEN4_SHARE_ACCESS_WANT_NO_DELEG => return Err(NoDeleg::NotWanted),
            OPEN4_SHARE_ACCESS_WANT_READ_DELEG => [true, false],
            OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG => [false, true],
            _ => [true, true],
        };
        let ty = if wants_write {
            DelegType::Write
        } else {
            DelegType::Read
        };
        let ty = match (ty, allowed, r.policy) {
            (_, _, Policy::None) => return Err(NoDeleg::NotSupported),
            (DelegType::Write, [_, true], Policy::Readwrite) => DelegType::Write,
            (DelegType::Write, _, _) => return Err(NoDeleg::NotSupported),
            (DelegType::Read, [true, _], _) => DelegType::Read,
            // A write delegation for a read-only open: the client could
            // not use its write half without another OPEN.
            (DelegType::Read, _, _) => return Err(NoDeleg::NotSupported),
        };
        if !r.callback_ok {
            return Err(NoDeleg::NoCallback);
        }
        for o in self.file_delegs(file) {
            let Some((e, d)) = self.deleg(o) else {
                continue;
            };
            if matches!(d.recall, Recall::Recalling { .. }) {
                return Err(NoDeleg::Contention);
            }
            if e.client == client {
                return Err(if d.ty == DelegType::Read && ty == DelegType::Write {
                    NoDeleg::NoUpgrade
                } else {
                    NoDeleg::Contention
                });
            }
            if ty == DelegType::Write || d.ty == DelegType::Write {
                return Err(NoDeleg::Contention);
            }
        }
        let others_open = self
            .states
            .of_file(file)
            .filter(|(_, e)| e.client != client && matches!(e.kind, StateKind::Open(_)));
        for (_, e) in others_open {
            let StateKind::Open(o) = &e.kind else {
                continue;
            };
            if ty == DelegType::Write || o.share.access & ACCESS_WRITE != 0 {
                return Err(NoDeleg::Contention);
            }
        }
        if self.delegs.values().map(Vec::len).sum::<usize>() >= limit {
            return Err(NoDeleg::Resource);
        }
        Ok(ty)
    }

    fn insert_deleg(
        &mut self,
        boot: u32,
        client: ClientId,
        file: FileKey,
        d: DelegState,
    ) -> stateid4 {
        let other = self.new_other(boot, client);
        self.states.insert(
            other,
            StateEntry {
                client,
                file,
                seqid: 1,
                kind: StateKind::Deleg(d),
                unconfirmed: false,
            },
        );
        self.delegs.entry(file).or_default().push(other);
        self.stats.delegations_granted += 1;
        stateid4 { seqid: 1, other }
    }

    /// Drops a delegation from the per-file index.
    pub(super) fn unindex_deleg(&mut self, file: FileKey, other: &Other) {
        if let Some(v) = self.delegs.get_mut(&file) {
            v.retain(|o| o != other);
            if v.is_empty() {
                self.delegs.remove(&file);
            }
        }
    }
}

/// A granted delegation, for the OPEN reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Its stateid.
    pub stateid: stateid4,
    /// Its type.
    pub ty: DelegType,
    /// Granted already recalled (a reclaim the policy no longer allows,
    /// RFC 8881 §18.16.3 `recall`).
    pub recall: bool,
}

impl StateManager {
    /// Grants a delegation on `file` to `client` when nothing stands
    /// against it (RFC 8881 §10.4: the decision is the server's).
    pub fn grant_delegation(
        &self,
        client: ClientId,
        file: FileKey,
        r: Request,
        fh: Vec<u8>,
        change: u64,
    ) -> Result<Granted, NoDeleg> {
        let mut g = self.lock();
        let ty = g.deleg_decision(client, file, r, self.limits.max_delegations as usize)?;
        let stateid = g.insert_deleg(
            self.boot,
            client,
            file,
            DelegState {
                ty,
                recall: Recall::Held,
                fh,
                change_at_grant: change,
            },
        );
        tracing::debug!(
            client = format_args!("{client:#x}"),
            ?ty,
            ?file,
            "delegation granted"
        );
        Ok(Granted {
            stateid,
            ty,
            recall: false,
        })
    }

    /// Re-grants a delegation the client held before a server restart
    /// (OPEN CLAIM_PREVIOUS with `delegate_type`, RFC 8881 §10.2.1). The
    /// reclaim must succeed whatever the policy says now; a delegation
    /// the policy would not grant is handed back already recalled.
    pub fn reclaim_delegation(
        &self,
        client: ClientId,
        file: FileKey,
        ty: DelegType,
        policy: Policy,
        fh: Vec<u8>,
        change: u64,
    ) -> Granted {
        let recall = matches!(
            (policy, ty),
            (Policy::None, _) | (Policy::Read, DelegType::Write)
        );
        let now = self.now();
        let mut g = self.lock();
        let stateid = g.insert_deleg(
            self.boot,
            client,
            file,
            DelegState {
                ty,
                recall: if recall {
                    // The client returns it at once (`recall` set); the
                    // lease tick revokes it if it does not.
                    Recall::Recalling {
                        since_ms: now,
                        queued: true,
                    }
                } else {
                    Recall::Held
                },
                fh,
                change_at_grant: change,
            },
        );
        Granted {
            stateid,
            ty,
            recall,
        }
    }

    /// Checks a request against other clients' delegations on `file`.
    /// Conflicting ones are recalled and the request gets NFS4ERR_DELAY
    /// (RFC 8881 §10.4.1: the server "MUST NOT" let the conflicting
    /// operation through before the delegation is returned or revoked).
    /// `requester` is the client making the request, `None` when it
    /// cannot be known (4.0 REMOVE, anonymous stateids): then every
    /// delegation conflicts, the requester's own included.
    pub fn break_delegations(
        &self,
        file: FileKey,
        requester: Option<ClientId>,
        access: Access,
    ) -> Result<(), NfsError> {
        let now = self.now();
        self.lock()
            .break_delegations(file, requester, access, now, &*self.callbacks)
    }

    /// Recalls every delegation on `file` whoever holds it (a local
    /// process is about to open or change the backing file). Returns
    /// whether any was outstanding.
    pub fn recall_all(&self, file: FileKey) -> bool {
        self.break_delegations(file, None, Access::Namespace)
            .is_err()
    }

    /// DELEGRETURN: the holder gives the delegation back.
    pub fn return_delegation(&self, other: &Other) -> Result<StateEntry, NfsError> {
        let mut g = self.lock();
        match g.states.get(other).map(|e| &e.kind) {
            Some(StateKind::Deleg(d)) if d.recall == Recall::Revoked => {
                return Err(NfsError::DelegRevoked)
            }
            Some(StateKind::Deleg(_)) => {}
            _ => return Err(NfsError::BadStateid),
        }
        g.remove_state(other).ok_or(NfsError::BadStateid)
    }

    /// The write delegation another client holds on `file`, for CB_GETATTR
    /// (RFC 8881 §10.4.3): its holder and file handle, and the change
    /// attribute at grant.
    pub fn write_delegation_of_other(
        &self,
        file: FileKey,
        requester: Option<ClientId>,
    ) -> Option<(ClientId, Vec<u8>, u64)> {
        let g = self.lock();
        g.file_delegs(file).iter().find_map(|o| {
            let (e, d) = g.deleg(o)?;
            (d.ty == DelegType::Write && Some(e.client) != requester && d.recall == Recall::Held)
                .then(|| (e.client, d.fh.clone(), d.change_at_grant))
        })
    }

    /// Revokes delegations whose recall has been outstanding for a lease
    /// period, and queues recalls the driver could not take earlier.
    /// Returns the files whose last delegation went away.
    pub(super) fn tick_delegations(&self, now: u64) -> Vec<FileKey> {
        let mut g = self.lock();
        let mut due = Vec::new();
        let mut retry = Vec::new();
        for (other, e) in &g.states {
            if let StateKind::Deleg(d) = &e.kind {
                match d.recall {
                    Recall::Recalling { since_ms, .. } if since_ms + self.lease_ms <= now => {
                        due.push(*other)
                    }
                    Recall::Recalling { queued: false, .. } => retry.push(*other),
                    _ => {}
                }
            }
        }
        for other in retry {
            if let Some(e) = g.states.get_mut(&other) {
                let client = e.client;
                let seqid = e.seqid;
                if let StateKind::Deleg(d) = &mut e.kind {
                    let pushed = self
                        .callbacks
                        .push(recall_work(client, seqid, other, &d.fh));
                    if let Recall::Recalling { queued, .. } = &mut d.recall {
                        *queued = pushed;
                    }
                }
            }
        }
        self.pressure(&mut g, now);
        let mut freed = Vec::new();
        for other in due {
            if let Some(file) = g.revoke_delegation(&other) {
                if g.file_delegs(file).is_empty() {
                    freed.push(file);
                }
            }
        }
        freed
    }

    /// Resource pressure (RFC 8881 §20.6): past nine tenths of the
    /// delegation limit, 4.1 holders are asked with CB_RECALL_ANY to give
    /// back half of theirs, each at most once per lease period.
    fn pressure(&self, g: &mut Inner, now: u64) {
        let limit = self.limits.max_delegations as usize;
        let held: usize = g.delegs.values().map(Vec::len).sum();
        if held * 10 < limit * 9 {
            return;
        }
        let mut per_client: HashMap<ClientId, u32> = HashMap::new();
        for o in g.delegs.values().flatten() {
            if let Some(e) = g.states.get(o) {
                *per_client.entry(e.client).or_default() += 1;
            }
        }
        for (client, n) in per_client {
            let Some(c) = g.clients.get_mut(&client) else {
                continue;
            };
            if c.minor == 0 || c.recall_any_ms.is_some_and(|t| t + self.lease_ms > now) {
                continue;
            }
            c.recall_any_ms = Some(now);
            tracing::info!(
                client = format_args!("{client:#x}"),
                held = n,
                limit,
                "delegations near the limit; asking the client to return some"
            );
            self.callbacks.push(CbWork::RecallAny {
                client,
                keep: n / 2,
            });
        }
    }

    /// Callback results from the driver: `delivered` false when the
    /// callback path failed (the client is then told through
    /// SEQ4_STATUS_CB_PATH_DOWN or NFS4ERR_CB_PATH_DOWN on RENEW). A
    /// recall (`recall` names its delegation) that did not get through is
    /// sent again by the lease tick, over whatever path the client has by
    /// then — a new session's back channel, say (pynfs DSESS9003).
    pub fn recall_outcome(&self, client: ClientId, recall: Option<&Other>, delivered: bool) {
        if delivered {
            return;
        }
        let mut g = self.lock();
        g.callback_failed(client);
        if let Some(StateEntry {
            kind: StateKind::Deleg(d),
            ..
        }) = recall.and_then(|o| g.states.get_mut(o))
        {
            if let Recall::Recalling { queued, .. } = &mut d.recall {
                *queued = false;
            }
        }
    }

    /// The outcome of a 4.0 client's CB_NULL probe.
    pub fn set_cb40_up(&self, client: ClientId, up: bool) {
        if let Some(c) = self.lock().clients.get_mut(&client) {
            c.cb40_up = up;
        }
    }
}

impl Inner {
    /// Revokes one delegation (RFC 8881 §10.4.6 / RFC 7530 §10.4.6). A
    /// 4.1 client learns of it through SEQ4_STATUS_RECALLABLE_STATE_REVOKED
    /// and the stateid answers NFS4ERR_DELEG_REVOKED until FREE_STATEID;
    /// a 4.0 stateid simply stops existing. Returns the file.
    pub fn revoke_delegation(&mut self, other: &Other) -> Option<FileKey> {
        let e = self.states.get(other)?;
        let (client, file) = (e.client, e.file);
        let minor = self.clients.get(&client).map_or(0, |c| c.minor);
        tracing::warn!(
            client = format_args!("{client:#x}"),
            ?file,
            "delegation not returned within the lease period; revoked"
        );
        self.stats.delegations_revoked += 1;
        if minor >= 1 {
            self.unindex_deleg(file, other);
            if let Some(StateEntry {
                kind: StateKind::Deleg(d),
                ..
            }) = self.states.get_mut(other)
            {
                d.recall = Recall::Revoked;
            }
            if let Some(c) = self.clients.get_mut(&client) {
                c.revoked += 1;
            }
        } else {
            self.remove_state(other);
        }
        Some(file)
    }

    /// A callback to `client` failed at the transport level.
    pub fn callback_failed(&mut self, client: ClientId) {
        let Some(c) = self.clients.get_mut(&client) else {
            return;
        };
        c.cb40_up = false;
        let sessions = c.sessions.clone();
        for s in sessions {
            if let Some(s) = self.sessions.get_mut(&s) {
                s.cb_up = false;
                s.cb_probed = true;
            }
        }
    }

    /// Whether a client has a working callback path: a 4.1 session whose
    /// back channel answered its probe or is still being probed, or a 4.0
    /// callback address that answered CB_NULL. A freshly bound back
    /// channel counts until its probe says otherwise: the client's first
    /// OPEN often arrives before the probe's answer (knfsd treats an
    /// unprobed 4.1 back channel the same way); a delegation granted on a
    /// channel that then fails is revoked after a lease period.
    pub fn callback_ok(&self, client: ClientId) -> bool {
        let Some(c) = self.clients.get(&client) else {
            return false;
        };
        if c.minor == 0 {
            return c.cb40_up;
        }
        c.sessions
            .iter()
            .filter_map(|s| self.sessions.get(s))
            .any(|s| s.cb.is_some() && (s.cb_up || !s.cb_probed))
    }

    /// Whether a client holds any delegation not yet revoked.
    pub fn holds_delegations(&self, client: ClientId) -> bool {
        self.delegs
            .values()
            .flatten()
            .any(|o| self.states.get(o).is_some_and(|e| e.client == client))
    }
}

impl Inner {
    /// [`StateManager::break_delegations`] with the lock held.
    pub fn break_delegations(
        &mut self,
        file: FileKey,
        requester: Option<ClientId>,
        access: Access,
        now: u64,
        callbacks: &dyn CallbackSink,
    ) -> Result<(), NfsError> {
        if self.file_delegs(file).is_empty() {
            return Ok(());
        }
        let mut blocking = false;
        let list: Vec<Other> = self.file_delegs(file).to_vec();
        // A courtesy client cannot answer a recall: it loses its state
        // instead (courtesy.rs).
        let courtesy: Vec<ClientId> = list
            .iter()
            .filter_map(|o| self.states.get(o))
            .map(|e| e.client)
            .filter(|c| self.is_courtesy(*c))
            .collect();
        let mut expire = Vec::new();
        for other in list {
            let Some(e) = self.states.get_mut(&other) else {
                continue;
            };
            let StateKind::Deleg(d) = &mut e.kind else {
                continue;
            };
            if requester == Some(e.client) || !access.conflicts(d.ty) {
                continue;
            }
            if courtesy.contains(&e.client) {
                expire.push(e.client);
                continue;
            }
            blocking = true;
            if d.recall == Recall::Held {
                d.recall = Recall::Recalling {
                    since_ms: now,
                    queued: false,
                };
                self.stats.delegations_recalled += 1;
                tracing::info!(
                    client = format_args!("{:#x}", e.client),
                    ?access,
                    ?file,
                    "recalling delegation"
                );
            }
            if let Recall::Recalling {
                queued: queued @ false,
                ..
            } = &mut d.recall
            {
                *queued = callbacks.push(recall_work(e.client, e.seqid, other, &d.fh));
            }
        }
        for c in expire {
            tracing::info!(
                client = format_args!("{c:#x}"),
                ?file,
                "courtesy client holds a conflicting delegation; expiring it"
            );
            self.expire_with_record(c);
        }
        if blocking {
            Err(NfsError::Delay)
        } else {
            Ok(())
        }
    }
}

/// Delegations held per file, as kept in [`Inner::delegs`].
pub type DelegIndex = HashMap<FileKey, Vec<Other>>;
