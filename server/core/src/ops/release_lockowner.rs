//! RELEASE_LOCKOWNER (4.0 only, RFC 7530 §16.37): forgets a lock owner.

use nfs4d_xdr::nfs4::RELEASE_LOCKOWNER4args;

use super::common;
use crate::context::Cx;
use crate::error::NfsResult;

/// RELEASE_LOCKOWNER: the owner's client must be confirmed and unexpired
/// (NFS4ERR_STALE_CLIENTID / NFS4ERR_EXPIRED; its lease is renewed). While
/// the owner holds locks the answer is NFS4ERR_LOCKS_HELD and nothing
/// changes; otherwise its lock stateids and sequencing state are released.
/// An owner the server does not know is released trivially.
pub fn run(cx: &mut Cx, a: RELEASE_LOCKOWNER4args) -> NfsResult<()> {
    let client = common::state_client(cx, a.lock_owner.clientid)?;
    cx.srv
        .state
        .release_lockowner(&(client, a.lock_owner.owner))
}
