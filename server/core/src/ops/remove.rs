//! REMOVE (RFC 8881 §18.25, RFC 7530 §16.26): removes the entry `target`
//! of the current directory, a directory (which must be empty:
//! NFS4ERR_NOTEMPTY) or any other object.
//!
//! The pseudo filesystem is read-only; during the grace period REMOVE is
//! refused (the file may be one a client is about to reclaim). The rest —
//! permissions, delegations, open files, the handle map — is the
//! namespace layer's ([`crate::namespace::Namespace::remove`]).

use nfs4d_xdr::nfs4::{REMOVE4args, REMOVE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::component;
use crate::namespace::Entry;

/// REMOVE.
pub fn run(cx: &mut Cx, a: REMOVE4args) -> NfsResult<REMOVE4resok> {
    let name = component(&a.target)?;
    let cur = cx.cfh()?.clone();
    // The pseudo filesystem is read-only.
    let (e, dir, dir_id) = common::obj(cx, &cur, NfsError::Rofs)?;
    let at = Entry {
        dir_id,
        dir,
        name: &name,
    };
    let caller = common::caller(cx, e);
    let dir_attrs = common::stat_obj(cx, e, dir_id, dir)?;
    let r = cx
        .srv
        .namespace()
        .remove_in(&caller, e, at, dir_attrs, || common::refuse_in_grace(cx))?;
    cx.need_durable(r.durable);
    Ok(REMOVE4resok {
        cinfo: common::change_info(r.dir),
    })
}
