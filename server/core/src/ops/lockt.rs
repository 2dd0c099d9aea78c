//! LOCKT (RFC 8881 §18.11, RFC 7530 §16.11): tests for a conflicting
//! byte-range lock without creating any state.

use nfs4d_xdr::nfs4::LOCKT4args;

use super::common;
use crate::context::Cx;
use crate::error::NfsResult;
use nfs4d_store;

/// LOCKT: the current file must be a regular file; the owner's client is
/// checked in 4.0 (NFS4ERR_STALE_CLIENTID / NFS4ERR_EXPIRED) and is the
/// session's in 4.1; the range must be valid (NFS4ERR_INVAL). Locks of the
/// owner itself never conflict (§18.11.4). A conflict is NFS4ERR_DENIED
/// with the conflicting lock — another NFS owner's, else a local
/// process's (named by `state::oslock::local_owner`); READW_LT/WRITEW_LT
/// test like READ_LT/WRITE_LT.
pub fn run(cx: &mut Cx, a: LOCKT4args) -> NfsResult<()> {
    let cur = cx.cfh()?.clone();
    let (_, _, file, _) = common::cur_regular(cx, &cur)?;
    let client = common::state_client(cx, a.owner.clientid)?;
    let (start, end) = common::lock_range(a.offset, a.length)?;
    let owner = (client, a.owner.owner);
    // Locks of local processes count too (docs/locking.md): the kernel is
    // asked through the owner's own lock description, or through a
    // read-only one opened for this test when it has none (F_OFD_GETLK
    // needs no write access, and a read-only open disturbs no lease).
    let probe = if start <= nfs4d_store::LOCAL_LOCK_MAX && !cx.srv.state.has_lock_file(&owner, file)
    {
        super::lock::open_lock_file(cx, &cur, false)?
    } else {
        None
    };
    match cx.srv.state.test_lock_os(
        file,
        &owner,
        start,
        end,
        common::lock_type(a.locktype),
        probe,
    )? {
        Some(d) => Err(common::denied(d)),
        None => Ok(()),
    }
}
