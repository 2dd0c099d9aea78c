//! DEALLOCATE (RFC 7862 §15.4): releases the space of a byte range of a
//! regular file. The range reads back as zeros and the size is unchanged.

use nfs4d_xdr::nfs4::DEALLOCATE4args;

use crate::context::Cx;
use crate::error::NfsResult;

/// DEALLOCATE: the checks of ALLOCATE ([`super::allocate::space_admit`]:
/// ROFS, WRONG_TYPE, INVAL/FBIG ranges, a stateid valid for WRITE), then
/// `fallocate(PUNCH_HOLE | KEEP_SIZE)` through the backend. Partial blocks
/// at either end are zeroed by the filesystem and a range past end of
/// file has no effect (§15.4.3); the size attribute stays as it was. A
/// filesystem that cannot punch holes is NFS4ERR_NOTSUPP.
pub fn run(cx: &mut Cx, a: DEALLOCATE4args) -> NfsResult<()> {
    let cur = cx.cfh()?.clone();
    let (e, path) =
        super::allocate::space_admit(cx, &cur, &a.da_stateid, a.da_offset, a.da_length)?;
    e.store().deallocate(path, a.da_offset, a.da_length)?;
    Ok(())
}
