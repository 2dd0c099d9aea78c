//! IO_ADVISE (RFC 7862 §15.5): access-pattern hints, which this server
//! accepts and does not apply.

use nfs4d_xdr::nfs4::{IO_ADVISE4args, IO_ADVISE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::special;

/// IO_ADVISE: the server "MAY ignore the advice" and returns the hints it
/// intends to apply (§15.5.3) — none, an empty bitmap. Unknown or
/// contradictory hints are no error ("MUST NOT"). The request is still
/// checked: the current filehandle must be a regular file (NFS4ERR_ISDIR,
/// NFS4ERR_SYMLINK, NFS4ERR_WRONG_TYPE, as READ), a range past 2^64 - 1 is
/// NFS4ERR_INVAL (a count of 0 means "to end of file"), and the stateid
/// must be a special one or a current open or lock stateid of
/// this file (BAD_STATEID, OLD_STATEID, STALE_STATEID otherwise). A hint
/// needs no access mode, so the open's share access is not checked.
pub fn run(cx: &mut Cx, a: IO_ADVISE4args) -> NfsResult<IO_ADVISE4resok> {
    let cur = cx.cfh()?.clone();
    let (e, path, _) = common::obj(cx, &cur, NfsError::IsDir)?;
    common::regular_file(cx, e.store().stat(path)?.kind)?;
    a.iaa_offset
        .checked_add(a.iaa_count)
        .ok_or(NfsError::Inval)?;
    let sid = cx.resolve_stateid(&a.iaa_stateid)?;
    if !(special::is_anonymous(&sid) || special::is_bypass(&sid)) {
        let (sid, st) = common::find_state(cx, &sid)?;
        common::check_generation(cx, &sid, &st)?;
        common::same_file(&cur, &st)?;
    }
    Ok(IO_ADVISE4resok {
        ior_hints: Vec::new(),
    })
}
