//! SETATTR (RFC 8881 §18.30, RFC 7530 §16.32): changes mode, owner,
//! group, size and times of the current object.
//!
//! Permission rules are POSIX's (the server runs privileged and so must
//! apply them itself):
//! * mode: root or the owner (NFS4ERR_PERM); a non-root owner setting
//!   set-group-ID on an object of a group they are not in loses that bit;
//! * owner: root only, except "setting" the current owner, which RFC 8881
//!   §18.30.4 says SHOULD succeed; group: root, or the owner changing to
//!   a group they are a member of (NFS4ERR_PERM);
//! * size: write permission, the owner (as knfsd: the client checked
//!   access when it opened the file), or an open stateid with write access;
//! * times: client-supplied times need ownership (NFS4ERR_PERM);
//!   SET_TO_SERVER_TIME4 also write permission (NFS4ERR_ACCESS), as
//!   `utimensat(2)`.
//!
//! A size change is data modification and takes WRITE's stateid rules
//! (§18.30.3): an open stateid must be for this file (BAD_STATEID) and
//! open for writing (OPENMODE); an anonymous one conflicts with another
//! open's DENY_WRITE (NFS4ERR_LOCKED). Other attributes ignore the stateid.
//!
//! The backend applies everything in one call (owner → mode → size →
//! times), so `attrsset` is all requested attributes on success and
//! empty on failure; mode on a symlink is ignored (Linux has no
//! `lchmod`; symlinks are always 0777, as knfsd) and left out.

use nfs4d_xdr::nfs4::{bitmap4, stateid4, SETATTR4args};

use super::common::{self, MAY_WRITE, MODE_SETGID};
use crate::attrs::{self, SetRequest, TimeSet};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::CurFh;
use crate::state::open::ACCESS_WRITE;
use crate::state::{special, FileKey, StateKind};
use nfs4d_store::{Attrs, FileKind, SetAttrs};

/// `mode` attribute number (RFC 8881 §5.6).
const FATTR4_MODE: u32 = 33;
/// Largest size a POSIX `off_t` can express (the `maxfilesize` attribute).
const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// SETATTR.
pub fn run(cx: &mut Cx, a: SETATTR4args) -> NfsResult<bitmap4> {
    let req = attrs::decode_set(&a.obj_attributes, cx.minor).map_err(NfsError::from_status)?;
    let cur = cx.cfh()?.clone();
    // The pseudo filesystem is read-only.
    let (e, path, id) = common::obj(cx, &cur, NfsError::Rofs)?;
    common::writable(cx, e)?;
    if req.mask.iter().all(|w| *w == 0) {
        return Ok(Vec::new());
    }
    let now = e.store().stat(path)?;
    let uid = req
        .owner
        .as_deref()
        .map(|s| common::owner_id(cx, s, false))
        .transpose()?;
    let gid = req
        .group
        .as_deref()
        .map(|s| common::owner_id(cx, s, true))
        .transpose()?;
    let mut open_for_write = false;
    if let Some(size) = req.size {
        match now.kind {
            FileKind::Regular => {}
            FileKind::Directory => return Err(NfsError::IsDir),
            _ => return Err(NfsError::Inval),
        }
        if size > MAX_FILE_SIZE {
            return Err(NfsError::FBig);
        }
        open_for_write = check_size_stateid(cx, &cur, &a.stateid, (e.id, id))?;
    }
    check_permissions(cx, &now, &req, uid, gid, open_for_write)?;
    if now.kind == FileKind::Regular {
        // Any attribute change conflicts with other clients' delegations
        // (their cached attributes); the size with read ones too. The
        // requester of a 4.0 SETATTR is known from its stateid only.
        let requester = match cx.session_client() {
            Some(c) => Some(c),
            None => common::find_state(cx, &a.stateid)
                .ok()
                .map(|(_, s)| s.client),
        };
        cx.srv.state.break_delegations(
            (e.id, id),
            requester,
            crate::state::deleg::Access::Modify,
        )?;
    }

    let symlink = now.kind == FileKind::Symlink;
    let mode = match req.mode {
        Some(_) if symlink => None,
        Some(m) => Some(effective_mode(cx, &now, m, gid)),
        None => None,
    };
    let set = SetAttrs {
        mode,
        uid,
        gid,
        size: req.size,
        atime: req.atime.map(common::set_time),
        mtime: req.mtime.map(common::set_time),
    };
    e.store().setattr(path, &set)?;
    let mut done = req.mask;
    if symlink {
        common::bitmap_clear(&mut done, FATTR4_MODE);
    }
    Ok(done)
}

/// The POSIX rules (see the module documentation).
fn check_permissions(
    cx: &Cx,
    now: &Attrs,
    req: &SetRequest,
    uid: Option<u32>,
    gid: Option<u32>,
    open_for_write: bool,
) -> NfsResult<()> {
    let caller = common::user(cx).uid;
    if caller == 0 {
        return Ok(());
    }
    let owner = caller == now.uid;
    if req.mode.is_some() && !owner {
        return Err(NfsError::Perm);
    }
    if uid.is_some_and(|u| u != now.uid) {
        return Err(NfsError::Perm);
    }
    if let Some(g) = gid {
        if g != now.gid && !(owner && common::in_group(cx, g)) {
            return Err(NfsError::Perm);
        }
    }
    if req.size.is_some() && !owner && !open_for_write {
        common::require(cx, now, MAY_WRITE)?;
    }
    let times = [req.atime, req.mtime];
    if times.iter().any(|t| matches!(t, Some(TimeSet::Client(..)))) && !owner {
        return Err(NfsError::Perm);
    }
    if times.iter().any(|t| matches!(t, Some(TimeSet::ServerNow))) && !owner {
        common::require(cx, now, MAY_WRITE)?;
    }
    Ok(())
}

/// `mode` as applied: a non-root caller not in the object's (new) group
/// cannot set set-group-ID (Linux `setattr_copy`).
fn effective_mode(cx: &Cx, now: &Attrs, mode: u32, new_gid: Option<u32>) -> u32 {
    let caller = common::user(cx).uid;
    let group = new_gid.unwrap_or(now.gid);
    if caller != 0 && !common::in_group(cx, group) {
        mode & !MODE_SETGID
    } else {
        mode
    }
}

/// Stateid rules of a size change (as for WRITE); returns whether it is
/// an open stateid (or a lock stateid from one) with write access. The
/// stateid lookup, generation and file checks are the ones the I/O
/// operations use ([`common::find_state`] and friends).
fn check_size_stateid(cx: &Cx, cur: &CurFh, sid: &stateid4, file: FileKey) -> NfsResult<bool> {
    let sid = cx.resolve_stateid(sid)?;
    if special::is_anonymous(&sid) || special::is_bypass(&sid) {
        common::refuse_in_grace(cx)?;
        // Any open denying writes blocks an I/O without open state
        // (RFC 8881 §18.30.3, RFC 7530 §13.1.8.5).
        if cx.srv.state.lock().file_share(file).deny & ACCESS_WRITE != 0 {
            return Err(NfsError::Locked);
        }
        return Ok(false);
    }
    let (sid, entry) = common::find_state(cx, &sid)?;
    common::check_generation(cx, &sid, &entry)?;
    common::same_file(cur, &entry)?;
    if entry.unconfirmed {
        return Err(NfsError::BadStateid);
    }
    let open = match &entry.kind {
        StateKind::Open(o) => o.clone(),
        StateKind::Lock { open, .. } => match cx.srv.state.state_entry(open).map(|e| e.kind) {
            Some(StateKind::Open(o)) => o,
            _ => return Err(NfsError::BadStateid),
        },
        // Only a write delegation lets its holder change the size
        // without an open for write (RFC 8881 §10.4).
        StateKind::Deleg(d) if d.ty == crate::state::deleg::DelegType::Write => return Ok(true),
        StateKind::Deleg(_) => return Err(NfsError::OpenMode),
    };
    if open.share.access & ACCESS_WRITE == 0 {
        return Err(NfsError::OpenMode);
    }
    Ok(true)
}
