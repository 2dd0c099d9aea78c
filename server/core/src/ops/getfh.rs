//! GETFH (RFC 8881 §18.8): returns the current filehandle.

use nfs4d_xdr::nfs4::GETFH4resok;

use crate::context::Cx;
use crate::error::NfsResult;

/// GETFH.
pub fn run(cx: &mut Cx) -> NfsResult<GETFH4resok> {
    Ok(GETFH4resok {
        object: cx.cfh()?.fh.clone(),
    })
}
