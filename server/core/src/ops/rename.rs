//! RENAME (RFC 8881 §18.26, RFC 7530 §16.27): renames `oldname` in the
//! saved directory to `newname` in the current directory, atomically
//! replacing a compatible target.
//!
//! Protocol rules kept here: both directories in the same export
//! (NFS4ERR_XDEV); the pseudo filesystem is read-only (NFS4ERR_ROFS);
//! no RENAME during the grace period (it may replace a file a client is
//! about to reclaim, and it expires volatile handles a reclaim would name
//! the file by); a non-empty target directory is NFS4ERR_EXIST (§18.26.3:
//! "or if the target is a directory but not empty, the server will return
//! the error NFS4ERR_EXIST"). Permissions, compatibility of the target,
//! delegations, open files and the handle map are the namespace layer's
//! ([`crate::namespace::Namespace::rename`]).

use nfs4d_xdr::nfs4::{RENAME4args, RENAME4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::component;
use crate::namespace::Entry;
use nfs4d_store::StoreError;

/// RENAME.
pub fn run(cx: &mut Cx, a: RENAME4args) -> NfsResult<RENAME4resok> {
    let src_fh = cx.sfh.clone().ok_or(NfsError::NoFileHandle)?;
    let dst_fh = cx.cfh()?.clone();
    let old = component(&a.oldname)?;
    let new = component(&a.newname)?;
    let (Some((se, sid, sp)), Some((de, did, dp))) = (src_fh.obj(), dst_fh.obj()) else {
        // Both in the pseudo filesystem: read-only; one of them: not the
        // same file system.
        let both_pseudo = src_fh.obj().is_none() && dst_fh.obj().is_none();
        return Err(if both_pseudo {
            NfsError::Rofs
        } else {
            NfsError::Xdev
        });
    };
    if se != de {
        return Err(NfsError::Xdev);
    }
    let e = cx.srv.vfs.export(se)?;
    let from = Entry {
        dir_id: sid,
        dir: sp,
        name: &old,
    };
    let to = Entry {
        dir_id: did,
        dir: dp,
        name: &new,
    };
    let caller = common::caller(cx, e);
    let r = cx
        .srv
        .namespace()
        .rename(&caller, e, from, to, || common::refuse_in_grace(cx))
        .map_err(|err| match err {
            NfsError::Store(StoreError::NotEmpty) => NfsError::Exist,
            other => other,
        })?;
    cx.need_durable(r.durable);
    Ok(RENAME4resok {
        source_cinfo: common::change_info(r.from),
        target_cinfo: common::change_info(r.to),
    })
}
