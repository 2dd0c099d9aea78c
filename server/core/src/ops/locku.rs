//! LOCKU (RFC 8881 §18.12, RFC 7530 §16.12): releases a byte range held
//! under a lock stateid.

use nfs4d_xdr::nfs4::{stateid4, LOCKU4args};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::{OwnerKind, StateKind};

/// LOCKU: the stateid must be a lock stateid of the current file
/// (NFS4ERR_BAD_STATEID otherwise); 4.0 checks the lock owner's seqid. The
/// lock type is ignored (§18.12.3); the range must be valid
/// (NFS4ERR_INVAL). Unlocking bytes that are not locked is not an error
/// (POSIX semantics: the owner's ranges are split as needed). Returns the
/// lock stateid with its seqid bumped; the stateid stays valid while its
/// open does (RFC 7530 §9.1.4.4).
pub fn run(cx: &mut Cx, a: LOCKU4args) -> NfsResult<stateid4> {
    let cur = cx.cfh()?.clone();
    let (sid, e) = common::find_state(cx, &a.lock_stateid)?;
    let StateKind::Lock { owner, .. } = &e.kind else {
        return Err(NfsError::BadStateid);
    };
    if common::sequence(cx, OwnerKind::Lock, owner, a.seqid)? {
        return common::replayed(cx, stateid4::default);
    }
    common::check_generation(cx, &sid, &e)?;
    common::state_file(cx, &cur, &e)?;
    let (start, end) = common::lock_range(a.offset, a.length)?;
    let lock_stateid = cx.srv.state.unlock_range(&sid.other, start, end)?;
    cx.cur_stateid = Some(lock_stateid.clone());
    Ok(lock_stateid)
}
