//! WANT_DELEGATION (RFC 8881 §18.49): asks for a delegation on the current
//! file without opening it, or reclaims one after a server restart.

use nfs4d_xdr::nfs4::*;

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::state::open::{ACCESS_BOTH, ACCESS_READ};
use crate::state::Share;

/// WANT_DELEGATION. CLAIM_FH asks for a new delegation, decided as for an
/// OPEN with the corresponding access (a write delegation for
/// WANT_WRITE_DELEG, a read one for WANT_READ_DELEG, the strongest
/// available for WANT_ANY_DELEG or no preference); CLAIM_PREVIOUS
/// reclaims one during grace; the answer says why none was granted.
/// Delegations of earlier client instances are not kept
/// (CLAIM_DELEG_PREV_FH: NFS4ERR_NOTSUPP, as for OPEN).
pub fn run(cx: &mut Cx, a: WANT_DELEGATION4args) -> NfsResult<open_delegation4> {
    let client = cx.session_client().ok_or(NfsError::OpNotInSession)?;
    let want = a.wda_want & OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
    let when = a.wda_want
        & !(OPEN4_SHARE_ACCESS_WANT_DELEG_MASK
            | OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL
            | OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED);
    if want > OPEN4_SHARE_ACCESS_WANT_CANCEL || when != 0 {
        return Err(NfsError::Inval);
    }
    let cur = cx.cfh()?.clone();
    let (_, _, _, attrs) = common::cur_regular(cx, &cur)?;
    // A want stated here is never left pending, so a cancel has nothing
    // to cancel and a "no delegation" want gets none.
    let want = match want {
        OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE => OPEN4_SHARE_ACCESS_WANT_ANY_DELEG,
        w => w,
    };
    match a.wda_claim {
        deleg_claim4::CLAIM_FH => {
            common::require_reclaim_complete(cx, client)?;
            let access = match want {
                OPEN4_SHARE_ACCESS_WANT_READ_DELEG => ACCESS_READ,
                _ => ACCESS_BOTH,
            };
            let share = Share { access, deny: 0 };
            let d = super::open::delegation(cx, client, share, want, None, &attrs);
            let none = matches!(d, open_delegation4::OPEN_DELEGATE_NONE_EXT(_));
            if none && want == OPEN4_SHARE_ACCESS_WANT_ANY_DELEG {
                let share = Share {
                    access: ACCESS_READ,
                    deny: 0,
                };
                return Ok(super::open::delegation(
                    cx, client, share, want, None, &attrs,
                ));
            }
            Ok(d)
        }
        deleg_claim4::CLAIM_PREVIOUS(t) => {
            common::reclaim_allowed(cx, client)?;
            let share = Share {
                access: ACCESS_READ,
                deny: 0,
            };
            Ok(super::open::delegation(
                cx,
                client,
                share,
                want,
                Some(t),
                &attrs,
            ))
        }
        deleg_claim4::CLAIM_DELEG_PREV_FH => Err(NfsError::NotSupp),
    }
}
