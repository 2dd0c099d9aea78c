//! FREE_STATEID (RFC 8881 §18.38).

use nfs4d_xdr::nfs4::FREE_STATEID4args;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::deleg::Recall;
use crate::state::StateKind;

/// FREE_STATEID: frees a lock stateid holding no locks, or a revoked
/// delegation (which clears SEQ4_STATUS_RECALLABLE_STATE_REVOKED once
/// none is left, RFC 8881 §18.46.3). Open stateids are released by CLOSE
/// and held delegations by DELEGRETURN (NFS4ERR_LOCKS_HELD, as for a lock
/// stateid with locks held).
pub fn run(cx: &mut Cx, a: FREE_STATEID4args) -> NfsResult<()> {
    let client = cx.session_client().ok_or(NfsError::OpNotInSession)?;
    let sid = cx.resolve_stateid(&a.fsa_stateid)?;
    let mut g = cx.srv.state.lock();
    let revoked = g.states.get(&sid.other).is_some_and(|e| {
        e.client == client && matches!(&e.kind, StateKind::Deleg(d) if d.recall == Recall::Revoked)
    });
    if revoked {
        g.remove_state(&sid.other);
        return Ok(());
    }
    let e = g.check_stateid(&sid, cx.srv.state.boot, cx.minor)?;
    if e.client != client {
        return Err(NfsError::BadStateid);
    }
    match &e.kind {
        StateKind::Open(_) | StateKind::Deleg(_) => Err(NfsError::LocksHeld),
        StateKind::Lock { owner, .. } => {
            if g.owner_ranges(e.file, owner) > 0 {
                return Err(NfsError::LocksHeld);
            }
            g.remove_state(&sid.other);
            Ok(())
        }
    }
}
