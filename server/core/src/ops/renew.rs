//! RENEW (4.0, RFC 7530 §16.29).

use nfs4d_xdr::nfs4::RENEW4args;

use crate::context::Cx;
use crate::error::NfsResult;

/// RENEW: extends the client's lease. A client holding delegations whose
/// callback path is down is told so with NFS4ERR_CB_PATH_DOWN, the lease
/// still renewed (RFC 7530 §16.29.4).
pub fn run(cx: &mut Cx, a: RENEW4args) -> NfsResult<()> {
    cx.srv.state.renew(a.clientid)?;
    let g = cx.srv.state.lock();
    let down =
        g.clients.get(&a.clientid).is_some_and(|c| !c.cb40_up) && g.holds_delegations(a.clientid);
    if down {
        return Err(crate::error::NfsError::CbPathDown);
    }
    Ok(())
}
