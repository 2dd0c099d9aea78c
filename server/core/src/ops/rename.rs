//! RENAME (RFC 8881 §18.26, RFC 7530 §16.27): renames `oldname` in the
//! saved directory to `newname` in the current directory, atomically
//! replacing a compatible target (the backend's `rename(2)`).
//!
//! Rules checked here, in RFC or POSIX terms:
//! * both directories in the same export (NFS4ERR_XDEV); the pseudo
//!   filesystem is read-only (NFS4ERR_ROFS);
//! * write + search permission on both directories, the sticky-bit rule
//!   on both entries, and write permission on a directory moved to
//!   another parent (its ".." changes), as `rename(2)` requires;
//! * an existing target must be compatible, both directories or both
//!   not, else NFS4ERR_EXIST; a non-empty target directory is
//!   NFS4ERR_EXIST too (§18.26.3: "or if the target is a directory but
//!   not empty, the server will return the error NFS4ERR_EXIST");
//! * two names of the same object (hard links, or the same name): no
//!   action, NFS4_OK (§18.26.3);
//! * a directory into its own subtree: the backend refuses (EINVAL →
//!   NFS4ERR_INVAL).
//!
//! The handle map then moves the object's one record, so every handle
//! below a renamed directory keeps working; that must be durable before
//! the reply. With volatile handles that expire on rename, the renamed
//! object's handles — and, through the map's ancestor rule, those of
//! everything below a renamed directory — are expired (RFC 8881 §4.2.3,
//! FH4_VOL_RENAME); an open file's handle keeps working until its last
//! close when the export has `noexpire_with_open`. Without it, a rename
//! that would expire an open file's handle (the file itself, a directory
//! above it, or an open target) is refused with NFS4ERR_FILE_OPEN
//! (§4.2.3: such servers "should deny a RENAME or REMOVE that would
//! affect an OPEN file").

use nfs4d_xdr::nfs4::{RENAME4args, RENAME4resok};

use super::common::{self, MAY_WRITE};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, ftype, key_of, Export};
use nfs4d_fhmap::ObjectId;
use nfs4d_store::{Attrs, FileKind, Name, RelPath, StoreError};

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
    let src_before = common::dir_modifiable(cx, e, sp)?;
    let dst_before = if sid == did {
        src_before.clone()
    } else {
        common::dir_modifiable(cx, e, dp)?
    };
    common::refuse_in_grace(cx)?;

    if crate::namespace::orphans::is_hidden(sp, old.as_bytes())
        || crate::namespace::orphans::is_hidden(dp, new.as_bytes())
    {
        return Err(NfsError::NoEnt);
    }
    let src = e.store().lookup(sp, &old)?;
    common::sticky_allows(cx, &src_before, &src)?;
    common::break_delegations_at(cx, e, sid, &old, &src)?;
    if src.kind == FileKind::Directory && sid != did {
        common::require(cx, &src, MAY_WRITE)?;
    }
    let volatile_open_guard = e.policy().is_volatile() && !e.policy().noexpire_with_open;
    if volatile_open_guard {
        let id = record_id(cx, e, sid, &old, &src)?;
        common::refuse_if_open(cx, e, id, "RENAME")?;
    }
    let mut parked = 0;
    match e.store().lookup(dp, &new) {
        Ok(dst) if key_of(&dst) == key_of(&src) => {
            // The same object under both names: nothing to do.
            return Ok(RENAME4resok {
                source_cinfo: common::cinfo(&src_before, &src_before),
                target_cinfo: common::cinfo(&dst_before, &dst_before),
            });
        }
        Ok(dst) => {
            let src_dir = src.kind == FileKind::Directory;
            if src_dir != (dst.kind == FileKind::Directory) {
                return Err(NfsError::Exist);
            }
            common::sticky_allows(cx, &dst_before, &dst)?;
            common::break_delegations_at(cx, e, did, &new, &dst)?;
            if volatile_open_guard {
                let id = record_id(cx, e, did, &new, &dst)?;
                common::refuse_if_open(cx, e, id, "RENAME over an open file")?;
            }
            // An open file about to be replaced keeps living for its opener.
            if let Some(seq) = crate::namespace::orphans::park_if_open(cx, e, did, dp, &new, &dst)?
            {
                parked = seq;
            }
        }
        Err(StoreError::NotFound) => {}
        Err(err) => return Err(err.into()),
    }

    e.store()
        .rename(sp, &old, dp, &new)
        .map_err(|err| match err {
            StoreError::NotEmpty => NfsError::Exist,
            other => other.into(),
        })?;
    let src_after = common::dir_done(e, sp)?;
    let dst_after = if sid == did {
        src_after.clone()
    } else {
        common::dir_done(e, dp)?
    };

    // Handles of the moved object (and everything below it) must follow
    // it before the client learns of the rename.
    match cx
        .srv
        .fhmap
        .rename(se, sid, old.as_bytes(), did, new.as_bytes())
    {
        Ok(()) => cx.need_durable(cx.srv.fhmap.last_seq().max(parked)),
        // The rename happened; failing now would mislead the client.
        // Handles of the moved object answer STALE until looked up again.
        Err(err) => {
            tracing::error!(error = %err, from = %sp, to = %dp, "RENAME: handle map update failed")
        }
    }
    expire_renamed(cx, e, did, dp, &new);

    Ok(RENAME4resok {
        source_cinfo: common::cinfo(&src_before, &src_after),
        target_cinfo: common::cinfo(&dst_before, &dst_after),
    })
}

/// Volatile handles configured to expire on rename: expire the renamed
/// object's handles, and with them every handle below it (one record
/// write; see fhmap's ancestor rule). Open files are not special-cased
/// here: with `noexpire_with_open` the map's validation exempts a file
/// while it is open, so its handle works until the last CLOSE and is
/// expired from then on (FH4_NOEXPIRE_WITH_OPEN), with nothing to do at
/// CLOSE. Best effort: a failure is logged, the rename stands.
fn expire_renamed(cx: &mut Cx, e: &Export, dir: ObjectId, dir_path: &RelPath, name: &Name) {
    if !e.policy().rename {
        return;
    }
    let Ok(attrs) = e.store().lookup(dir_path, name) else {
        return;
    };
    let id = match record_id(cx, e, dir, name, &attrs) {
        Ok(id) => id,
        Err(err) => {
            tracing::warn!(error = %err, "RENAME: cannot find the renamed object to expire its handles");
            return;
        }
    };
    match cx.srv.fhmap.expire(id) {
        Ok(()) => cx.need_durable(cx.srv.fhmap.last_seq()),
        Err(err) => tracing::warn!(error = %err, "RENAME: expiring volatile handles failed"),
    }
}

fn record_id(
    cx: &Cx,
    e: &Export,
    dir: ObjectId,
    name: &Name,
    attrs: &Attrs,
) -> NfsResult<ObjectId> {
    Ok(cx.srv.fhmap.lookup_or_insert(
        e.id,
        dir,
        name.as_bytes(),
        key_of(attrs),
        ftype(attrs.kind),
    )?)
}
