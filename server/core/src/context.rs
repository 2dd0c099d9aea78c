//! What every operation handler sees of its COMPOUND: the server, the
//! request's transport facts, the current and saved filehandles and
//! stateids, the session, and what must happen after the reply is built
//! (durability of handles, 4.0 replay caching, follow-up work).

use std::sync::Arc;

use nfs4d_xdr::nfs4::stateid4;
use nfs4d_xdr::rpc::Credential;

use crate::auth::GssCaller;
use crate::error::NfsError;
use crate::namespace::vfs::CurFh;
use crate::reply::Detached;
use crate::server::Server;
use crate::state::client::{MachCaller, Principal};
use crate::state::session::{Channel, SessionId};
use crate::state::{OwnerKey, OwnerKind};

/// What the transport knows about a request.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    /// The RPC credential (`Credential::Other(6)` for RPCSEC_GSS, whose
    /// caller is in `gss`).
    pub cred: Credential,
    /// The Kerberos caller of a call the transport accepted under
    /// RPCSEC_GSS.
    pub gss: Option<Arc<GssCaller>>,
    /// Connection id.
    pub conn: u64,
    /// Peer address, for logs.
    pub peer: std::net::SocketAddr,
    /// This connection's back-channel endpoint.
    pub cb: Option<crate::state::session::BackChannel>,
}

impl RequestCtx {
    /// The caller as SP4_MACH_CRED looks at it: its Kerberos principal
    /// and whether the call had integrity or privacy.
    pub fn mach_caller(&self) -> MachCaller<'_> {
        self.gss.as_deref().map(|g| {
            (
                g.principal.as_str(),
                g.service >= crate::auth::GssService::Integrity,
            )
        })
    }

    /// The principal that owns state created by this request.
    pub fn principal(&self) -> Principal {
        if let Some(g) = &self.gss {
            return Principal::Gss(g.principal.clone());
        }
        match &self.cred {
            Credential::Sys { uid, .. } => Principal::Uid(*uid),
            _ => Principal::Anonymous,
        }
    }
}

/// The session a 4.1 COMPOUND runs in (set by SEQUENCE).
#[derive(Debug, Clone)]
pub struct SessionCtx {
    /// Session id.
    pub id: SessionId,
    /// Slot used.
    pub slot: u32,
    /// The client asked for the reply to be cached.
    pub cachethis: bool,
    /// Fore-channel limits.
    pub fore: Channel,
    /// Owning client.
    pub client: u64,
}

/// Work the transport does after the reply is sent: the core has no
/// sockets and no runtime, so it only asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followup {
    /// Check a session's back channel with CB_NULL and CB_SEQUENCE.
    ProbeBackChannel(SessionId),
}

/// Per-COMPOUND context handed to every operation.
pub struct Cx<'a> {
    /// The server.
    pub srv: &'a Server,
    /// Transport facts.
    pub req: &'a RequestCtx,
    /// Minor version of this COMPOUND.
    pub minor: u32,
    /// Current filehandle.
    pub cfh: Option<CurFh>,
    /// Saved filehandle.
    pub sfh: Option<CurFh>,
    /// Current stateid (4.1 §16.2.3.1.2).
    pub cur_stateid: Option<stateid4>,
    /// Saved stateid.
    pub saved_stateid: Option<stateid4>,
    /// Session, once SEQUENCE ran.
    pub session: Option<SessionCtx>,
    /// Highest filehandle-map write that must be durable before the reply.
    pub durable_upto: u64,
    /// A 4.0 seqid-bearing op passed its check: cache its reply in this owner.
    pub seq_owner: Option<(OwnerKind, OwnerKey, u32)>,
    /// A 4.0 retransmission: the encoded reply to send again.
    pub replay: Option<Vec<u8>>,
    /// A 4.1 retransmission: the whole cached COMPOUND reply.
    pub replay_all: Option<Arc<Vec<u8>>>,
    /// Index of the operation running.
    pub op_index: usize,
    /// Number of operations in the COMPOUND.
    pub op_count: usize,
    /// Size of the COMPOUND arguments in bytes.
    pub args_len: usize,
    /// Work for the transport after the reply.
    pub followups: Vec<Followup>,
    /// An operation that changes state or data ran (duplicate request cache).
    pub modified: bool,
    /// The credential operations run with: the RPC credential squashed by
    /// the rules of the current filehandle's export (docs/security.md).
    pub cred: Credential,
    /// The export `cred` was computed for (`None`: no export object).
    pub(crate) cred_export: Option<u32>,
    /// A READ's data, kept out of the encoded reply and sent from its own
    /// buffer ([`crate::reply`]); its offset is into the reply bytes.
    pub detached: Option<Detached>,
    /// The attributes PUTFH read of the current object while checking the
    /// handle, for the operation right after it (`ops::common::stat_obj`).
    pub fresh: std::cell::Cell<Option<Fresh>>,
    /// A WRITE's data the transport left in a pipe ([`SplicedWrite`]),
    /// until that WRITE takes it.
    pub spliced: Option<SplicedWrite>,
}

/// The data of one WRITE of a COMPOUND, spliced by the transport from the
/// socket into a pipe instead of read into the record. In the record that
/// WRITE's data is empty (its length rewritten to 0); `at` is where in the
/// COMPOUND's arguments its data would have begun, so that exactly the
/// WRITE decoded there takes it (ops/write.rs).
#[derive(Debug)]
pub struct SplicedWrite {
    /// Offset into the COMPOUND arguments of the WRITE's data.
    pub at: usize,
    /// The data.
    pub data: Box<dyn nfs4d_store::PipedSource>,
}

/// Attributes of an object as PUTFH read them, good for one use by the
/// operation at index `op`: nothing ran in between that could have
/// changed them, so a second stat would only repeat the first.
pub struct Fresh {
    pub export: u32,
    pub id: nfs4d_fhmap::ObjectId,
    pub attrs: nfs4d_store::Attrs,
    pub op: usize,
}

impl<'a> Cx<'a> {
    /// Reply bytes held in [`Cx::detached`] rather than in the encoded reply.
    pub fn detached_len(&self) -> usize {
        self.detached.as_ref().map_or(0, |d| d.data.len())
    }

    /// Drops detached data placed at or after `start` of the reply: the
    /// result it belongs to is being replaced.
    pub(crate) fn drop_detached_from(&mut self, start: usize) {
        if self.detached.as_ref().is_some_and(|d| d.at >= start) {
            self.detached = None;
        }
    }

    /// The current filehandle or NFS4ERR_NOFILEHANDLE.
    pub fn cfh(&self) -> Result<&CurFh, NfsError> {
        self.cfh.as_ref().ok_or(NfsError::NoFileHandle)
    }

    /// Remembers a filehandle-map write that must be durable before the reply.
    pub fn need_durable(&mut self, seq: u64) {
        self.durable_upto = self.durable_upto.max(seq);
    }

    /// The client this COMPOUND acts for, when known from its session.
    pub fn session_client(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.client)
    }

    /// Whether this request may only read export `e`: the export is
    /// read-only, or the client's address matched an `access = "ro"` rule.
    /// Modifications then get NFS4ERR_ROFS, as on a read-only export
    /// (knfsd treats a per-client `ro` the same way).
    pub fn read_only(&self, e: &crate::namespace::vfs::Export) -> bool {
        crate::export_access::host_access(&e.cfg, self.req.peer).unwrap_or(true)
    }

    /// Resolves the special "current stateid" (4.1) to the real one.
    pub fn resolve_stateid(&self, sid: &stateid4) -> Result<stateid4, NfsError> {
        if self.minor >= 1 && crate::state::special::is_current(sid) {
            return self.cur_stateid.clone().ok_or(NfsError::BadStateid);
        }
        Ok(sid.clone())
    }
}
