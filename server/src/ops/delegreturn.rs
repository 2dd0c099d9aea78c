//! DELEGRETURN (RFC 8881 §18.6, RFC 7530 §16.8): returns a delegation.

use nfs4d_xdr::nfs4::DELEGRETURN4args;

use super::common;
use crate::compound::Cx;
use crate::error::{NfsError, NfsResult};

/// DELEGRETURN: this server grants no delegations yet, so no stateid can
/// name one. The stateid is still validated for the precise error: a
/// special stateid or an open or lock stateid is NFS4ERR_BAD_STATEID (a
/// stateid of the wrong type, RFC 7530 §9.1.4.4), one of an earlier
/// server instance NFS4ERR_STALE_STATEID.
pub fn run(cx: &mut Cx, a: DELEGRETURN4args) -> NfsResult<()> {
    cx.cfh()?;
    common::find_state(cx, &a.deleg_stateid)?;
    Err(NfsError::BadStateid)
}
