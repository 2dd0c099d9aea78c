//! DELEGRETURN (RFC 8881 §18.6, RFC 7530 §16.8): returns a delegation.

use nfs4d_xdr::nfs4::DELEGRETURN4args;

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::StateKind;

/// DELEGRETURN: the current filehandle is the delegated file and the
/// stateid one of this client's delegations. A revoked one answers
/// NFS4ERR_DELEG_REVOKED (4.1 keeps it until FREE_STATEID); an open or
/// lock stateid, or a special one, NFS4ERR_BAD_STATEID (a stateid of the
/// wrong type, RFC 7530 §9.1.4.4); one of an earlier server instance
/// NFS4ERR_STALE_STATEID.
pub fn run(cx: &mut Cx, a: DELEGRETURN4args) -> NfsResult<()> {
    let cur = cx.cfh()?.clone();
    let (sid, e) = common::find_state(cx, &a.deleg_stateid)?;
    {
        let g = cx.srv.state.lock();
        g.check_stateid(&sid, cx.srv.state.boot, cx.minor)?;
    }
    if !matches!(e.kind, StateKind::Deleg(_)) {
        return Err(NfsError::BadStateid);
    }
    common::same_file(&cur, &e)?;
    let gone = cx.srv.state.return_delegation(&sid.other)?;
    tracing::debug!(
        client = format_args!("{:#x}", gone.client),
        file = ?gone.file,
        "delegation returned"
    );
    cx.srv.deleg_released(gone.file);
    Ok(())
}
