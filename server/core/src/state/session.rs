//! 4.1 sessions: slot tables with a reply cache for exactly-once semantics
//! (RFC 8881 §2.10.6), CREATE_SESSION sequencing (§18.36.4) and
//! connection binding (§2.10.3).

use std::sync::Arc;

use super::client::{Client, ClientId};
use super::Principal;
use super::{Inner, StateManager};
use crate::config::{COMPOUND_OVERHEAD, MAX_IO};
use crate::error::NfsError;

/// A connection's back-channel endpoint as the state table keeps it: the
/// connection id, and the transport's own endpoint object, which the core
/// never uses (it has no sockets) and the daemon's callback driver turns
/// back into its own type.
#[derive(Clone)]
pub struct BackChannel {
    /// The connection.
    pub conn: u64,
    /// The transport's endpoint.
    pub endpoint: Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for BackChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackChannel(conn {})", self.conn)
    }
}

pub use super::SessionId;

/// Largest reply the server keeps per slot for replay. Replies that carry
/// READ data or big directory listings are rarely sent with `sa_cachethis`;
/// a bound keeps the cache at slots × this size per session.
pub const MAX_CACHED_REPLY: u32 = 64 << 10;

/// Smallest request size a client may negotiate: anything smaller could
/// not carry SEQUENCE plus one real operation.
pub const MIN_REQUEST_SIZE: u32 = 64;

const _: () = assert!(MAX_CACHED_REPLY <= MAX_IO + COMPOUND_OVERHEAD);

/// Negotiated channel attributes (`channel_attrs4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// ca_maxrequestsize.
    pub max_request: u32,
    /// ca_maxresponsesize.
    pub max_response: u32,
    /// ca_maxresponsesize_cached.
    pub max_response_cached: u32,
    /// ca_maxoperations.
    pub max_ops: u32,
    /// ca_maxrequests (slots).
    pub max_requests: u32,
}

/// One slot of the fore channel.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    /// Sequence id of the last request on this slot.
    pub seqid: u32,
    /// A request is running on it.
    pub busy: bool,
    /// The reply to the last request, when it was cached.
    pub reply: Option<Arc<Vec<u8>>>,
}

/// A session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The owning client.
    pub client: ClientId,
    /// Fore channel attributes.
    pub fore: Channel,
    /// Back channel attributes.
    pub back: Channel,
    /// Callback program for CB_COMPOUND.
    pub cb_program: u32,
    /// Credential for back-channel calls, from csa_sec_parms or
    /// BACKCHANNEL_CTL (RFC 8881 §18.36.3, §18.33.3).
    pub cb_cred: nfs4d_xdr::rpc::Credential,
    /// Minor version of CREATE_SESSION, used in CB_COMPOUND (clients
    /// check that it matches their own, e.g. pynfs with 4.2).
    pub minor: u32,
    /// The fore-channel slots.
    pub slots: Vec<Slot>,
    /// Connections bound to the fore channel.
    pub conns: Vec<u64>,
    /// The back channel, when a connection was bound for it.
    pub cb: Option<BackChannel>,
    /// The back channel answered its probe.
    pub cb_up: bool,
    /// The probe of the current back channel has finished (`cb_up` is
    /// its outcome); until then the channel counts as working for
    /// delegations (`state::deleg`).
    pub cb_probed: bool,
    /// Sequence id of the next back-channel call on slot 0.
    pub cb_seq: u32,
    /// CREATE_SESSION flags granted.
    pub flags: u32,
}

impl Session {
    /// True while any slot has a request running.
    pub fn busy(&self) -> bool {
        self.slots.iter().any(|s| s.busy)
    }
}

/// What SEQUENCE decided.
#[derive(Debug, Clone)]
pub enum SeqOutcome {
    /// A new request on the slot: run the COMPOUND.
    New {
        /// Highest slot id of the session.
        highest_slot: u32,
        /// Fore channel limits to apply to this request.
        fore: Channel,
        /// Back channel down or missing (SEQ4_STATUS_CB_PATH_DOWN).
        cb_down: bool,
        /// Revoked delegations await FREE_STATEID
        /// (SEQ4_STATUS_RECALLABLE_STATE_REVOKED).
        revoked: bool,
    },
    /// A retransmission whose reply is cached: send it again as-is.
    Replay(Arc<Vec<u8>>),
}

/// Arguments of CREATE_SESSION the state table needs.
#[derive(Debug, Clone)]
pub struct CreateSession {
    /// csa_clientid.
    pub clientid: ClientId,
    /// csa_sequence.
    pub seq: u32,
    /// csa_flags.
    pub flags: u32,
    /// Requested fore channel.
    pub fore: Channel,
    /// Requested back channel.
    pub back: Channel,
    /// csa_cb_program.
    pub cb_program: u32,
    /// Credential chosen from csa_sec_parms.
    pub cb_cred: nfs4d_xdr::rpc::Credential,
    /// Minor version of the COMPOUND carrying CREATE_SESSION.
    pub minor: u32,
}

/// Outcome of CREATE_SESSION at the state level.
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    /// A new session.
    Created(Session),
    /// A retransmission: the encoded result of the original.
    Replay(Vec<u8>),
}

/// CREATE_SESSION4_FLAG_PERSIST.
pub const FLAG_PERSIST: u32 = 0x1;
/// CREATE_SESSION4_FLAG_CONN_BACK_CHAN.
pub const FLAG_CONN_BACK_CHAN: u32 = 0x2;
/// CREATE_SESSION4_FLAG_CONN_RDMA.
pub const FLAG_CONN_RDMA: u32 = 0x4;

impl StateManager {
    fn negotiate(&self, want: Channel) -> Result<Channel, NfsError> {
        if want.max_request < MIN_REQUEST_SIZE
            || want.max_response < MIN_REQUEST_SIZE
            || want.max_requests == 0
        {
            return Err(NfsError::TooSmall);
        }
        let l = &self.limits;
        Ok(Channel {
            max_request: want.max_request.min(l.max_record),
            max_response: want.max_response.min(l.max_record),
            max_response_cached: want.max_response_cached.min(MAX_CACHED_REPLY),
            max_ops: want.max_ops.clamp(1, l.max_ops),
            max_requests: want.max_requests.clamp(1, l.max_slots),
        })
    }

    /// CREATE_SESSION at the state level (RFC 8881 §18.36.4). `conn` is the
    /// connection it arrived on, `cb` its back-channel endpoint.
    pub fn create_session(
        &self,
        args: &CreateSession,
        principal: &Principal,
        conn: u64,
        cb: Option<BackChannel>,
    ) -> Result<CreateOutcome, NfsError> {
        let now = self.now();
        let mut g = self.lock();
        let c = g
            .clients
            .get(&args.clientid)
            .ok_or(NfsError::StaleClientid)?;
        if c.minor == 0 {
            return Err(NfsError::StaleClientid);
        }
        // Under SP4_NONE any principal may create sessions for a confirmed
        // client; the first CREATE_SESSION, which confirms the record, must
        // come from the principal that sent EXCHANGE_ID (RFC 8881 §18.36.4).
        if !c.confirmed && &c.principal != principal {
            return Err(NfsError::ClidInUse);
        }
        let first = !c.confirmed;
        if args.seq == c.cs_seq && c.cs_seq != 0 {
            return match &c.cs_reply {
                Some(r) => Ok(CreateOutcome::Replay(r.clone())),
                None => Err(NfsError::SeqMisordered),
            };
        }
        if args.seq != c.cs_seq.wrapping_add(1) {
            return Err(NfsError::SeqMisordered);
        }
        if c.sessions.len() >= self.limits.max_sessions_per_client as usize {
            return Err(NfsError::NoSpc);
        }
        let fore = self.negotiate(args.fore)?;
        if args.back.max_request < MIN_REQUEST_SIZE || args.back.max_response < MIN_REQUEST_SIZE {
            return Err(NfsError::TooSmall);
        }
        let back = Channel {
            max_request: args.back.max_request.min(self.limits.max_record),
            max_response: args.back.max_response.min(self.limits.max_record),
            max_response_cached: 0,
            max_ops: args.back.max_ops.clamp(1, 16),
            max_requests: 1,
        };
        let mut id = [0u8; 16];
        let n = g.new_other(self.boot, args.clientid);
        id[..12].copy_from_slice(&n);
        id[12..].copy_from_slice(&(args.clientid as u32).to_be_bytes());
        // Persistent reply caches across restarts are not offered, nor RDMA.
        let flags = args.flags & FLAG_CONN_BACK_CHAN;
        let session = Session {
            id,
            client: args.clientid,
            fore,
            back,
            cb_program: args.cb_program,
            cb_cred: args.cb_cred.clone(),
            minor: args.minor,
            slots: vec![Slot::default(); fore.max_requests as usize],
            conns: vec![conn],
            cb: if flags & FLAG_CONN_BACK_CHAN != 0 {
                cb
            } else {
                None
            },
            cb_up: false,
            cb_probed: false,
            cb_seq: 1,
            flags,
        };
        StateManager::confirm41(&mut g, args.clientid);
        let c = g.clients.get_mut(&args.clientid).expect("checked above");
        c.cs_seq = args.seq;
        c.cs_reply = None;
        c.sessions.push(id);
        c.lease_expires_ms = now + self.lease_ms;
        let record = first.then(|| {
            (
                super::recovery::record_key(c.minor, &c.owner),
                c.principal.clone(),
            )
        });
        g.sessions.insert(id, session.clone());
        drop(g);
        // The stable record is written, and flushed, before the reply that
        // confirms the client leaves (RFC 8881 §8.4.3).
        if let Some((key, principal)) = record {
            self.recovery.put(&key, &principal, false);
        }
        Ok(CreateOutcome::Created(session))
    }

    /// Remembers the encoded CREATE_SESSION result for a retransmission.
    pub fn cache_create_session(&self, client: ClientId, seq: u32, reply: Vec<u8>) {
        let mut g = self.lock();
        if let Some(c) = g.clients.get_mut(&client) {
            if c.cs_seq == seq {
                c.cs_reply = Some(reply);
            }
        }
    }

    /// SEQUENCE at the state level (RFC 8881 §18.46.4).
    pub fn sequence(
        &self,
        sid: &SessionId,
        slot: u32,
        seqid: u32,
        conn: u64,
    ) -> Result<SeqOutcome, NfsError> {
        let now = self.now();
        let mut g = self.lock();
        let s = g.sessions.get_mut(sid).ok_or(NfsError::BadSession)?;
        let highest_slot = s.slots.len() as u32 - 1;
        let fore = s.fore;
        let cb_down = s.cb.is_none() || !s.cb_up;
        let client = s.client;
        let sl = s.slots.get_mut(slot as usize).ok_or(NfsError::BadSlot)?;
        if seqid == sl.seqid {
            if sl.busy {
                return Err(NfsError::Delay);
            }
            return match &sl.reply {
                Some(r) => Ok(SeqOutcome::Replay(r.clone())),
                None => Err(NfsError::RetryUncachedRep),
            };
        }
        if seqid != sl.seqid.wrapping_add(1) {
            return Err(NfsError::SeqMisordered);
        }
        sl.seqid = seqid;
        sl.busy = true;
        sl.reply = None;
        // SP4_NONE: a connection using the session is bound to it implicitly.
        if !s.conns.contains(&conn) {
            s.conns.push(conn);
        }
        let mut revoked = false;
        if let Some(c) = g.clients.get_mut(&client) {
            c.lease_expires_ms = now + self.lease_ms;
            c.courtesy_since = None;
            revoked = c.revoked > 0;
        }
        Ok(SeqOutcome::New {
            highest_slot,
            fore,
            cb_down,
            revoked,
        })
    }

    /// Ends a request on a slot, caching its reply when asked and small enough.
    pub fn slot_done(&self, sid: &SessionId, slot: u32, reply: Option<Arc<Vec<u8>>>) {
        let mut g = self.lock();
        if let Some(sl) = g
            .sessions
            .get_mut(sid)
            .and_then(|s| s.slots.get_mut(slot as usize))
        {
            sl.busy = false;
            sl.reply = reply;
        }
    }

    /// DESTROY_SESSION (RFC 8881 §18.37).
    pub fn destroy_session(
        &self,
        sid: &SessionId,
        principal: &Principal,
        conn: u64,
        in_session: bool,
    ) -> Result<(), NfsError> {
        let mut g = self.lock();
        let s = g.sessions.get(sid).ok_or(NfsError::BadSession)?;
        // Outside the session's own SEQUENCE, the connection must be one
        // bound to it (RFC 8881 §18.37.3).
        if !in_session && !s.conns.contains(&conn) {
            return Err(NfsError::ConnNotBoundToSession);
        }
        let client = s.client;
        if g.clients
            .get(&client)
            .is_some_and(|c| &c.principal != principal)
        {
            return Err(NfsError::ClidInUse);
        }
        g.sessions.remove(sid);
        if let Some(c) = g.clients.get_mut(&client) {
            c.sessions.retain(|x| x != sid);
        }
        Ok(())
    }

    /// BIND_CONN_TO_SESSION (RFC 8881 §18.34): binds `conn` to the fore
    /// and/or back channel; returns which were bound.
    pub fn bind_conn(
        &self,
        sid: &SessionId,
        fore: bool,
        back: bool,
        conn: u64,
        cb: Option<BackChannel>,
    ) -> Result<(), NfsError> {
        let mut g = self.lock();
        let s = g.sessions.get_mut(sid).ok_or(NfsError::BadSession)?;
        if fore && !s.conns.contains(&conn) {
            s.conns.push(conn);
        }
        if back {
            s.cb = cb;
            s.cb_up = false;
            s.cb_probed = false;
        }
        Ok(())
    }

    /// A connection closed: it is no longer bound to any session, and a
    /// back channel riding on it is gone (RFC 8881 §2.10.3.1). Without
    /// this, a session would remember every connection a client ever
    /// reconnected on.
    pub fn connection_closed(&self, conn: u64) {
        let mut g = self.lock();
        for s in g.sessions.values_mut() {
            s.conns.retain(|c| *c != conn);
            if s.cb.as_ref().is_some_and(|cb| cb.conn == conn) {
                s.cb = None;
                s.cb_up = false;
            }
        }
    }

    /// Records the outcome of a back-channel probe.
    pub fn set_cb_up(&self, sid: &SessionId, up: bool) {
        if let Some(s) = self.lock().sessions.get_mut(sid) {
            s.cb_up = up;
            s.cb_probed = true;
        }
    }

    /// A session's fore-channel attributes.
    pub fn session_fore(&self, sid: &SessionId) -> Option<Channel> {
        self.lock().sessions.get(sid).map(|s| s.fore)
    }

    /// BACKCHANNEL_CTL: a new callback program and credential.
    pub fn set_cb_program(&self, sid: &SessionId, program: u32, cred: nfs4d_xdr::rpc::Credential) {
        if let Some(s) = self.lock().sessions.get_mut(sid) {
            s.cb_program = program;
            s.cb_cred = cred;
        }
    }

    /// RECLAIM_COMPLETE for the whole client (RFC 8881 §18.51.4: a second
    /// one is NFS4ERR_COMPLETE_ALREADY).
    pub fn reclaim_complete(&self, client: ClientId) -> Result<(), NfsError> {
        let mut g = self.lock();
        let c = g.clients.get_mut(&client).ok_or(NfsError::StaleClientid)?;
        if c.reclaim_complete {
            return Err(NfsError::CompleteAlready);
        }
        c.reclaim_complete = true;
        let key = super::recovery::record_key(c.minor, &c.owner);
        let principal = c.principal.clone();
        drop(g);
        self.recovery
            .reclaim_complete(&key, &principal, self.clock.now_ms());
        Ok(())
    }

    /// Session lookup (cloned).
    pub fn session(&self, sid: &SessionId) -> Option<Session> {
        self.lock().sessions.get(sid).cloned()
    }

    /// The sequence id for the next CB_SEQUENCE of a session (its only
    /// back-channel slot). The caller holds the slot and reports with
    /// [`Self::cb_seq_done`] whether the client took it.
    pub fn next_cb_seq(&self, sid: &SessionId) -> Option<u32> {
        self.lock().sessions.get(sid).map(|s| s.cb_seq)
    }

    /// After a CB_COMPOUND with sequence id `seq`: the slot moves on unless
    /// the client refused the CB_SEQUENCE itself (NFS4ERR_BADSESSION,
    /// _DELAY, _SEQ_MISORDERED...), which leaves its slot unchanged, so the
    /// next call must use the same id again (RFC 8881 §2.10.6.1). A client
    /// asked before it has taken in the CREATE_SESSION reply answers
    /// BADSESSION; consuming the id there would make every later callback
    /// misordered.
    pub fn cb_seq_done(&self, sid: &SessionId, seq: u32, taken: bool) {
        if let Some(s) = self.lock().sessions.get_mut(sid) {
            if taken && s.cb_seq == seq {
                s.cb_seq = seq.wrapping_add(1);
            }
        }
    }
}

impl Inner {
    /// The client a session belongs to.
    pub fn session_client(&self, sid: &SessionId) -> Option<ClientId> {
        self.sessions.get(sid).map(|s| s.client)
    }
}

impl Client {
    /// True while a request runs on one of its sessions: a client busy with
    /// a request is not expired under it.
    pub fn has_busy_session(
        &self,
        sessions: &std::collections::HashMap<SessionId, Session>,
    ) -> bool {
        self.sessions
            .iter()
            .filter_map(|s| sessions.get(s))
            .any(Session::busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn chan() -> Channel {
        Channel {
            max_request: 1 << 20,
            max_response: 1 << 20,
            max_response_cached: 8192,
            max_ops: 16,
            max_requests: 4,
        }
    }

    fn setup() -> (StateManager, SessionId) {
        let sm = StateManager::new(
            Arc::new(ManualClock::default()),
            10,
            3,
            Default::default(),
            Arc::new(crate::state::deleg::NoCallbacks),
        );
        let x = sm
            .exchange_id(b"o", [1; 8], Principal::Uid(0), false, String::new())
            .unwrap();
        let args = CreateSession {
            clientid: x.clientid,
            seq: x.seq,
            flags: 0,
            fore: chan(),
            back: chan(),
            cb_program: 0x4000_0000,
            cb_cred: nfs4d_xdr::rpc::Credential::None,
            minor: 1,
        };
        let CreateOutcome::Created(s) = sm
            .create_session(&args, &Principal::Uid(0), 1, None)
            .unwrap()
        else {
            panic!("expected a new session")
        };
        sm.cache_create_session(x.clientid, x.seq, vec![1, 2, 3]);
        match sm
            .create_session(&args, &Principal::Uid(0), 1, None)
            .unwrap()
        {
            CreateOutcome::Replay(r) => assert_eq!(r, vec![1, 2, 3]),
            CreateOutcome::Created(_) => panic!("retransmission made a second session"),
        }
        (sm, s.id)
    }

    #[test]
    fn slot_sequencing_and_replay() {
        let (sm, sid) = setup();
        assert!(matches!(
            sm.sequence(&sid, 0, 1, 1),
            Ok(SeqOutcome::New {
                highest_slot: 3,
                ..
            })
        ));
        assert_eq!(
            sm.sequence(&sid, 0, 1, 1).unwrap_err(),
            NfsError::Delay,
            "still running"
        );
        sm.slot_done(&sid, 0, Some(Arc::new(vec![7])));
        match sm.sequence(&sid, 0, 1, 1).unwrap() {
            SeqOutcome::Replay(r) => assert_eq!(*r, vec![7]),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            sm.sequence(&sid, 0, 3, 1).unwrap_err(),
            NfsError::SeqMisordered
        );
        assert_eq!(sm.sequence(&sid, 9, 1, 1).unwrap_err(), NfsError::BadSlot);
        assert_eq!(
            sm.sequence(&[0; 16], 0, 1, 1).unwrap_err(),
            NfsError::BadSession
        );
        assert!(matches!(
            sm.sequence(&sid, 0, 2, 1),
            Ok(SeqOutcome::New { .. })
        ));
        sm.slot_done(&sid, 0, None);
        assert_eq!(
            sm.sequence(&sid, 0, 2, 1).unwrap_err(),
            NfsError::RetryUncachedRep
        );
    }

    #[test]
    fn back_channel_sequence_moves_only_when_taken() {
        let (sm, sid) = setup();
        assert_eq!(sm.next_cb_seq(&sid), Some(1));
        // refused (e.g. BADSESSION from a client that has not yet taken in
        // the CREATE_SESSION reply): the same id again
        sm.cb_seq_done(&sid, 1, false);
        assert_eq!(sm.next_cb_seq(&sid), Some(1));
        sm.cb_seq_done(&sid, 1, true);
        assert_eq!(sm.next_cb_seq(&sid), Some(2));
        // a late report for an old id changes nothing
        sm.cb_seq_done(&sid, 1, true);
        assert_eq!(sm.next_cb_seq(&sid), Some(2));
        assert_eq!(sm.next_cb_seq(&[0; 16]), None);
    }
}
