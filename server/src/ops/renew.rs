//! RENEW (4.0, RFC 7530 §16.29).

use nfs4d_xdr::nfs4::RENEW4args;

use crate::compound::Cx;
use crate::error::NfsResult;

/// RENEW: extends the client's lease.
pub fn run(cx: &mut Cx, a: RENEW4args) -> NfsResult<()> {
    cx.srv.state.renew(a.clientid)
}
