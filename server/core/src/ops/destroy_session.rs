//! DESTROY_SESSION (RFC 8881 §18.37).

use nfs4d_xdr::nfs4::{nfs_opnum4, DESTROY_SESSION4args};

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// DESTROY_SESSION: the session and its reply cache go; the client stays.
pub fn run(cx: &mut Cx, a: DESTROY_SESSION4args) -> NfsResult<()> {
    let own = cx.session.as_ref().is_some_and(|s| s.id == a.dsa_sessionid);
    // Destroying the session the COMPOUND runs in must be its last
    // operation (RFC 8881 §18.37.3).
    if own && cx.op_index + 1 != cx.op_count {
        return Err(NfsError::NotOnlyOp);
    }
    cx.srv.state.check_mach_cred_session(
        &a.dsa_sessionid,
        nfs_opnum4::OP_DESTROY_SESSION as u32,
        cx.req.mach_caller(),
    )?;
    cx.srv
        .state
        .destroy_session(&a.dsa_sessionid, &cx.req.principal(), cx.req.conn, own)?;
    if own {
        // The running COMPOUND's own session is gone: nothing to cache into.
        cx.session = None;
    }
    Ok(())
}
