//! DESTROY_CLIENTID (RFC 8881 §18.50).

use nfs4d_xdr::nfs4::{nfs_opnum4, DESTROY_CLIENTID4args};

use crate::context::Cx;
use crate::error::NfsResult;

/// DESTROY_CLIENTID: refused with CLIENTID_BUSY while sessions or state
/// exist — except state on exports that moved to another head of a
/// cluster, which the client left behind when it followed the move.
pub fn run(cx: &mut Cx, a: DESTROY_CLIENTID4args) -> NfsResult<()> {
    cx.srv.state.check_mach_cred(
        a.dca_clientid,
        nfs_opnum4::OP_DESTROY_CLIENTID as u32,
        cx.req.mach_caller(),
    )?;
    let vfs = &cx.srv.vfs;
    cx.srv
        .state
        .destroy_clientid_with(a.dca_clientid, &cx.req.principal(), &|file| {
            vfs.moved_to(file.0).is_some()
        })
}
