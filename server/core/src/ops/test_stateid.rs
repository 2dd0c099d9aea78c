//! TEST_STATEID (RFC 8881 §18.48).

use nfs4d_xdr::nfs4::{nfsstat4, TEST_STATEID4args, TEST_STATEID4resok};

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::special;

/// Most stateids one TEST_STATEID may carry (bounds the reply).
const MAX_STATEIDS: usize = 1024;

/// TEST_STATEID: the validity of each stateid for this client.
pub fn run(cx: &mut Cx, a: TEST_STATEID4args) -> NfsResult<TEST_STATEID4resok> {
    let client = cx.session_client().ok_or(NfsError::OpNotInSession)?;
    if a.ts_stateids.len() > MAX_STATEIDS {
        return Err(NfsError::RepTooBig);
    }
    let g = cx.srv.state.lock();
    let codes = a
        .ts_stateids
        .iter()
        .map(|sid| {
            if special::is_anonymous(sid)
                || special::is_bypass(sid)
                || special::is_current(sid)
                || special::is_invalid(sid)
            {
                return nfsstat4::NFS4ERR_BAD_STATEID;
            }
            match g.check_stateid(sid, cx.srv.state.boot, cx.minor) {
                Ok(e) if e.client == client => nfsstat4::NFS4_OK,
                Ok(_) => nfsstat4::NFS4ERR_BAD_STATEID,
                Err(e) => e.status(),
            }
        })
        .collect();
    Ok(TEST_STATEID4resok {
        tsr_status_codes: codes,
    })
}
