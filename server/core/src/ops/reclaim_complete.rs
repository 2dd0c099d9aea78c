//! RECLAIM_COMPLETE (RFC 8881 §18.51).

use nfs4d_xdr::nfs4::RECLAIM_COMPLETE4args;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// RECLAIM_COMPLETE: the client has reclaimed all it will. Per-filesystem
/// completion (`rca_one_fs`) concerns migrated filesystems, which this
/// server has none of, so it only checks the current filehandle.
pub fn run(cx: &mut Cx, a: RECLAIM_COMPLETE4args) -> NfsResult<()> {
    let client = cx.session_client().ok_or(NfsError::OpNotInSession)?;
    if a.rca_one_fs {
        cx.cfh()?;
        return Ok(());
    }
    cx.srv.state.reclaim_complete(client)
}
