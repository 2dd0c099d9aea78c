//! SEQUENCE (RFC 8881 §18.46): places the COMPOUND in a session slot,
//! gives exactly-once semantics through the slot's reply cache and renews
//! the lease.

use nfs4d_xdr::nfs4::{
    SEQUENCE4args, SEQUENCE4resok, SEQ4_STATUS_CB_PATH_DOWN, SEQ4_STATUS_RECALLABLE_STATE_REVOKED,
};

use crate::context::{Cx, SessionCtx};
use crate::error::{NfsError, NfsResult};
use crate::state::session::SeqOutcome;

/// Encoded size of a COMPOUND reply holding only SEQUENCE's result.
const SEQUENCE_REPLY: u32 = 12 + 8 + 16 + 20;

/// SEQUENCE.
pub fn run(cx: &mut Cx, a: SEQUENCE4args) -> NfsResult<SEQUENCE4resok> {
    let fore = cx
        .srv
        .state
        .session_fore(&a.sa_sessionid)
        .ok_or(NfsError::BadSession)?;
    // Checked before the slot is taken, so a refused request leaves the
    // slot as it was (RFC 8881 §18.46.3).
    if cx.op_count as u64 > u64::from(fore.max_ops) {
        return Err(NfsError::TooManyOps);
    }
    if cx.args_len as u64 > u64::from(fore.max_request) {
        return Err(NfsError::ReqTooBig);
    }
    // Even a lone SEQUENCE reply (status, tag, result) must fit a reply
    // the client asked to be cached.
    if a.sa_cachethis && fore.max_response_cached < SEQUENCE_REPLY {
        return Err(NfsError::RepTooBigToCache);
    }
    let out = cx
        .srv
        .state
        .sequence(&a.sa_sessionid, a.sa_slotid, a.sa_sequenceid, cx.req.conn)?;
    let (highest_slot, fore, cb_down, revoked) = match out {
        SeqOutcome::Replay(bytes) => {
            cx.replay_all = Some(bytes);
            return Err(NfsError::RetryUncachedRep);
        }
        SeqOutcome::New {
            highest_slot,
            fore,
            cb_down,
            revoked,
        } => (highest_slot, fore, cb_down, revoked),
    };
    let client = cx
        .srv
        .state
        .lock()
        .session_client(&a.sa_sessionid)
        .unwrap_or(0);
    cx.session = Some(SessionCtx {
        id: a.sa_sessionid,
        slot: a.sa_slotid,
        cachethis: a.sa_cachethis,
        fore,
        client,
    });
    Ok(SEQUENCE4resok {
        sr_sessionid: a.sa_sessionid,
        sr_sequenceid: a.sa_sequenceid,
        sr_slotid: a.sa_slotid,
        sr_highest_slotid: highest_slot,
        sr_target_highest_slotid: highest_slot,
        sr_status_flags: if cb_down { SEQ4_STATUS_CB_PATH_DOWN } else { 0 }
            | if revoked {
                SEQ4_STATUS_RECALLABLE_STATE_REVOKED
            } else {
                0
            },
    })
}
