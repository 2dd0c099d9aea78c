//! CLOSE (RFC 8881 §18.2, RFC 7530 §16.2): releases an open owner's share
//! reservation on the current file and its open stateid.

use nfs4d_xdr::nfs4::{stateid4, CLOSE4args};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::{bump, OwnerKind, StateKind};

/// CLOSE: the stateid must be an open stateid of the current file
/// (NFS4ERR_BAD_STATEID otherwise); 4.0 checks the open owner's seqid, 4.1
/// ignores it (§18.2.3). Byte-range locks still held under the open are
/// NFS4ERR_LOCKS_HELD (the RFC lets the server refuse rather than free
/// them); lock stateids without locks go with the open.
///
/// The result: 4.0 returns the stateid with its seqid bumped; 4.1 returns
/// the invalid special stateid (seqid all ones, other zero), as RFC 8881
/// §18.2.4 says the server SHOULD, so a client that keeps using it is
/// caught.
pub fn run(cx: &mut Cx, a: CLOSE4args) -> NfsResult<stateid4> {
    let cur = cx.cfh()?.clone();
    let (sid, e) = match common::find_state(cx, &a.open_stateid) {
        Ok(found) => found,
        Err(NfsError::BadStateid) if cx.minor == 0 => {
            // A retransmitted CLOSE finds its stateid gone: answer from the
            // open owner's reply cache (RFC 7530 §9.1.8).
            return match cx
                .srv
                .state
                .find_close_replay(&a.open_stateid.other, a.seqid)
            {
                Some(bytes) => {
                    cx.replay = Some(bytes);
                    common::replayed(cx, stateid4::default)
                }
                None => Err(NfsError::BadStateid),
            };
        }
        Err(err) => return Err(err),
    };
    let StateKind::Open(o) = &e.kind else {
        return Err(NfsError::BadStateid);
    };
    if common::sequence(cx, OwnerKind::Open, &o.owner, a.seqid)? {
        return common::replayed(cx, stateid4::default);
    }
    common::check_generation(cx, &sid, &e)?;
    common::state_file(cx, &cur, &e)?;
    let closed = cx.srv.state.close(&sid.other)?;
    cx.srv.namespace().reap_after_close(closed.file);
    common::note_closed_file(cx, closed.file);
    let result = if cx.minor == 0 {
        stateid4 {
            seqid: bump(closed.seqid),
            other: sid.other,
        }
    } else {
        stateid4 {
            seqid: u32::MAX,
            other: [0; 12],
        }
    };
    cx.cur_stateid = Some(result.clone());
    Ok(result)
}
