//! CREATE_SESSION (RFC 8881 §18.36): creates a session and confirms the
//! client. Its own sequence id gives a one-entry reply cache.

use nfs4d_xdr::nfs4::*;

use super::finish;
use crate::context::{Cx, Followup};
use crate::error::{NfsError, NfsResult};
use crate::state::session::{Channel, CreateOutcome, CreateSession};

fn channel(c: &channel_attrs4) -> Channel {
    Channel {
        max_request: c.ca_maxrequestsize,
        max_response: c.ca_maxresponsesize,
        max_response_cached: c.ca_maxresponsesize_cached,
        max_ops: c.ca_maxoperations,
        max_requests: c.ca_maxrequests,
    }
}

fn attrs(c: &Channel) -> channel_attrs4 {
    channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: c.max_request,
        ca_maxresponsesize: c.max_response,
        ca_maxresponsesize_cached: c.max_response_cached,
        ca_maxoperations: c.max_ops,
        ca_maxrequests: c.max_requests,
        ca_rdma_ird: vec![],
    }
}

fn create(
    cx: &mut Cx,
    a: &CREATE_SESSION4args,
) -> NfsResult<Result<CREATE_SESSION4resok, Vec<u8>>> {
    if a.csa_flags
        & !(CREATE_SESSION4_FLAG_PERSIST
            | CREATE_SESSION4_FLAG_CONN_BACK_CHAN
            | CREATE_SESSION4_FLAG_CONN_RDMA)
        != 0
    {
        return Err(NfsError::Inval);
    }
    // The back channel needs a security flavor the server can use.
    let usable_sec = a.csa_sec_parms.is_empty()
        || a.csa_sec_parms.iter().any(|p| {
            matches!(
                p,
                callback_sec_parms4::AUTH_NONE | callback_sec_parms4::AUTH_SYS(_)
            )
        });
    if !usable_sec {
        return Err(NfsError::EncrAlgUnsupp);
    }
    let args = CreateSession {
        clientid: a.csa_clientid,
        seq: a.csa_sequence,
        flags: a.csa_flags,
        fore: channel(&a.csa_fore_chan_attrs),
        back: channel(&a.csa_back_chan_attrs),
        cb_program: a.csa_cb_program,
        cb_cred: cb_credential(&a.csa_sec_parms),
        minor: cx.minor,
    };
    cx.srv.state.check_mach_cred(
        a.csa_clientid,
        nfs_opnum4::OP_CREATE_SESSION as u32,
        cx.req.mach_caller(),
    )?;
    match cx
        .srv
        .state
        .create_session(&args, &cx.req.principal(), cx.req.conn, cx.req.cb.clone())?
    {
        CreateOutcome::Replay(bytes) => Ok(Err(bytes)),
        CreateOutcome::Created(s) => {
            cx.srv.state.note_client_addr(s.client, cx.req.peer);
            if s.cb.is_some() {
                cx.followups.push(Followup::ProbeBackChannel(s.id));
            }
            Ok(Ok(CREATE_SESSION4resok {
                csr_sessionid: s.id,
                csr_sequence: a.csa_sequence,
                csr_flags: s.flags,
                csr_fore_chan_attrs: attrs(&s.fore),
                csr_back_chan_attrs: attrs(&s.back),
            }))
        }
    }
}

/// CREATE_SESSION: encodes its own result so the bytes can be cached for
/// a retransmission of the same sequence id.
pub fn run(cx: &mut Cx, a: CREATE_SESSION4args, out: &mut Vec<u8>) -> nfsstat4 {
    let start = out.len();
    match create(cx, &a) {
        Ok(Ok(ok)) => {
            let st = finish(out, nfs_opnum4::OP_CREATE_SESSION, Ok(ok));
            cx.srv.state.cache_create_session(
                a.csa_clientid,
                a.csa_sequence,
                out[start..].to_vec(),
            );
            st
        }
        Ok(Err(replay)) => {
            out.extend_from_slice(&replay);
            nfsstat4::NFS4_OK
        }
        Err(e) => finish::<()>(out, nfs_opnum4::OP_CREATE_SESSION, Err(e)),
    }
}

/// The credential back-channel calls carry: the first flavor of the
/// client's list the server can produce (RFC 8881 §18.36.3: the server
/// uses one of those the client offers). AUTH_SYS is sent with exactly
/// the parameters given; an empty list means AUTH_NONE.
pub fn cb_credential(parms: &[callback_sec_parms4]) -> nfs4d_xdr::rpc::Credential {
    use nfs4d_xdr::rpc::Credential;
    for p in parms {
        match p {
            callback_sec_parms4::AUTH_NONE => return Credential::None,
            callback_sec_parms4::AUTH_SYS(sys) => {
                return Credential::Sys {
                    stamp: sys.stamp,
                    machine: String::from_utf8_lossy(&sys.machinename).into_owned(),
                    uid: sys.uid,
                    gid: sys.gid,
                    gids: sys.gids.clone(),
                }
            }
            _ => {}
        }
    }
    Credential::None
}
