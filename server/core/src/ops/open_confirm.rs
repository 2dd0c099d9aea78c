//! OPEN_CONFIRM (4.0 only, RFC 7530 §16.18): confirms the first OPEN of an
//! open owner, after which the owner's seqids are trusted.

use nfs4d_xdr::nfs4::{stateid4, OPEN_CONFIRM4args, OPEN_CONFIRM4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::{OwnerKind, StateKind};

/// OPEN_CONFIRM: the stateid must be an open stateid of the current file
/// that awaits confirmation (NFS4ERR_BAD_STATEID otherwise, as knfsd
/// answers a second confirmation); the seqid is the open owner's. Returns
/// the stateid with its seqid bumped.
pub fn run(cx: &mut Cx, a: OPEN_CONFIRM4args) -> NfsResult<OPEN_CONFIRM4resok> {
    let cur = cx.cfh()?.clone();
    let (sid, e) = common::find_state(cx, &a.open_stateid)?;
    let StateKind::Open(o) = &e.kind else {
        return Err(NfsError::BadStateid);
    };
    if common::sequence(cx, OwnerKind::Open, &o.owner, a.seqid)? {
        return common::replayed(cx, || OPEN_CONFIRM4resok {
            open_stateid: stateid4::default(),
        });
    }
    common::check_generation(cx, &sid, &e)?;
    common::state_file(cx, &cur, &e)?;
    let seqid = cx.srv.state.confirm_open(&sid.other)?;
    Ok(OPEN_CONFIRM4resok {
        open_stateid: stateid4 {
            seqid,
            other: sid.other,
        },
    })
}
