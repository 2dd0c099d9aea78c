//! BIND_CONN_TO_SESSION and BACKCHANNEL_CTL (RFC 8881 §18.34, §18.33).

use nfs4d_xdr::nfs4::*;

use crate::context::{Cx, Followup};
use crate::error::{NfsError, NfsResult};

/// BIND_CONN_TO_SESSION: associates this connection with the session's
/// fore channel, back channel or both.
pub fn run(cx: &mut Cx, a: BIND_CONN_TO_SESSION4args) -> NfsResult<BIND_CONN_TO_SESSION4resok> {
    use channel_dir_from_client4::*;
    if a.bctsa_use_conn_in_rdma_mode {
        // No RDMA transport: the connection stays in TCP mode.
    }
    let (fore, back, dir) = match a.bctsa_dir {
        CDFC4_FORE => (true, false, channel_dir_from_server4::CDFS4_FORE),
        CDFC4_BACK => (false, true, channel_dir_from_server4::CDFS4_BACK),
        CDFC4_FORE_OR_BOTH | CDFC4_BACK_OR_BOTH => {
            (true, true, channel_dir_from_server4::CDFS4_BOTH)
        }
    };
    cx.srv.state.check_mach_cred_session(
        &a.bctsa_sessid,
        nfs_opnum4::OP_BIND_CONN_TO_SESSION as u32,
        cx.req.mach_caller(),
    )?;
    cx.srv
        .state
        .bind_conn(&a.bctsa_sessid, fore, back, cx.req.conn, cx.req.cb.clone())?;
    if back {
        cx.followups
            .push(Followup::ProbeBackChannel(a.bctsa_sessid));
    }
    Ok(BIND_CONN_TO_SESSION4resok {
        bctsr_sessid: a.bctsa_sessid,
        bctsr_dir: dir,
        bctsr_use_conn_in_rdma_mode: false,
    })
}

/// BACKCHANNEL_CTL: a new callback program and security for the back channel.
pub fn backchannel_ctl(cx: &mut Cx, a: BACKCHANNEL_CTL4args) -> NfsResult<()> {
    let s = cx.session.as_ref().ok_or(NfsError::OpNotInSession)?;
    let usable = a.bca_sec_parms.iter().any(|p| {
        matches!(
            p,
            callback_sec_parms4::AUTH_NONE | callback_sec_parms4::AUTH_SYS(_)
        )
    });
    if !usable {
        return Err(NfsError::EncrAlgUnsupp);
    }
    cx.srv.state.set_cb_program(
        &s.id,
        a.bca_cb_program,
        super::create_session::cb_credential(&a.bca_sec_parms),
    );
    Ok(())
}
