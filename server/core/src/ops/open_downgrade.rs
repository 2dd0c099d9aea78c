//! OPEN_DOWNGRADE (RFC 8881 §18.18, RFC 7530 §16.19): narrows an open's
//! share modes to those of some of the OPENs it is made of.

use nfs4d_xdr::nfs4::{stateid4, OPEN_DOWNGRADE4args, OPEN_DOWNGRADE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::{OwnerKind, StateKind};

/// OPEN_DOWNGRADE: the stateid must be a confirmed open stateid of the
/// current file (NFS4ERR_BAD_STATEID otherwise); 4.0 checks the open
/// owner's seqid. share_access/share_deny must be valid values (4.1 want
/// flags are ignored) and, as in knfsd, each must be one the owner opened
/// the file with (NFS4ERR_INVAL otherwise, RFC 7530 §16.19.4). Returns the
/// stateid with its seqid bumped.
pub fn run(cx: &mut Cx, a: OPEN_DOWNGRADE4args) -> NfsResult<OPEN_DOWNGRADE4resok> {
    let cur = cx.cfh()?.clone();
    let (sid, e) = common::find_state(cx, &a.open_stateid)?;
    let StateKind::Open(o) = &e.kind else {
        return Err(NfsError::BadStateid);
    };
    if common::sequence(cx, OwnerKind::Open, &o.owner, a.seqid)? {
        return common::replayed(cx, || OPEN_DOWNGRADE4resok {
            open_stateid: stateid4::default(),
        });
    }
    common::check_generation(cx, &sid, &e)?;
    common::state_file(cx, &cur, &e)?;
    if e.unconfirmed {
        return Err(NfsError::BadStateid);
    }
    let (share, _want) = super::open::share_of(cx.minor, a.share_access, a.share_deny)?;
    let seqid = cx.srv.state.downgrade(&sid.other, share)?;
    let open_stateid = stateid4 {
        seqid,
        other: sid.other,
    };
    cx.cur_stateid = Some(open_stateid.clone());
    Ok(OPEN_DOWNGRADE4resok { open_stateid })
}
