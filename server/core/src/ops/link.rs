//! LINK (RFC 8881 §18.9, RFC 7530 §16.9): creates `newname` in the
//! current directory as a hard link to the saved filehandle's object.
//! The current filehandle stays the directory.
//!
//! Directories cannot be hard-linked (NFS4ERR_ISDIR); source and target
//! must be in the same export (NFS4ERR_XDEV). The map records the new
//! name as another link of the same object id, so both names share one
//! filehandle (RFC 8881 §4.2.1 recommends it).

use nfs4d_xdr::nfs4::{LINK4args, LINK4resok};

use super::common::{self, MAY_READ, MAY_WRITE, MODE_SETGID};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, Node};
use nfs4d_store::{Attrs, FileKind};

/// LINK.
pub fn run(cx: &mut Cx, a: LINK4args) -> NfsResult<LINK4resok> {
    let src_fh = cx.sfh.clone().ok_or(NfsError::NoFileHandle)?;
    let dir_fh = cx.cfh()?.clone();
    let name = component(&a.newname)?;
    let (src_export, src_path) = match &src_fh.node {
        // Pseudo nodes are directories.
        Node::Pseudo(_) => return Err(NfsError::IsDir),
        Node::Obj { export, path, .. } => (*export, path),
    };
    let (e, dir_path, dir_id) = common::obj(cx, &dir_fh, NfsError::Xdev)?;
    if e.id != src_export {
        return Err(NfsError::Xdev);
    }
    // ROFS, NOTDIR, write + search permission on the target directory.
    let before = common::dir_modifiable(cx, e, dir_path)?;
    let src = e.store().stat(src_path)?;
    if src.kind == FileKind::Directory {
        return Err(NfsError::IsDir);
    }
    protected_hardlink(cx, &src)?;
    if let Some(file) = common::file_key(&src_fh) {
        common::break_delegations_of(cx, file, crate::state::deleg::Access::Namespace)?;
    }
    let attrs = e.store().link(src_path, dir_path, &name)?;
    let after = common::dir_done(e, dir_path)?;
    // Record the new name (same id as the source: same dev/ino/gen).
    let (_, seq) = cx.srv.vfs.child_fh(e.id, dir_id, dir_path, &name, &attrs)?;
    cx.need_durable(seq);
    Ok(LINK4resok {
        cinfo: common::cinfo(&before, &after),
    })
}

/// Linux's `fs.protected_hardlinks` rule (the default on current
/// distributions), which knfsd is subject to and this privileged server
/// must apply itself: a caller other than root or the file's owner may
/// only link a regular file they can read and write that is neither
/// set-user-ID nor executable set-group-ID. LINK has no NFS4ERR_PERM in
/// its error list (RFC 8881 §15.2): NFS4ERR_ACCESS.
fn protected_hardlink(cx: &Cx, src: &Attrs) -> NfsResult<()> {
    let (uid, _, _) = common::caller(cx);
    if uid == 0 || uid == src.uid {
        return Ok(());
    }
    let setuid = src.mode & 0o4000 != 0;
    let exec_setgid = src.mode & (MODE_SETGID | 0o010) == MODE_SETGID | 0o010;
    let rw = MAY_READ | MAY_WRITE;
    if src.kind == FileKind::Regular
        && !setuid
        && !exec_setgid
        && common::allowed(cx, src, rw) == rw
    {
        Ok(())
    } else {
        Err(NfsError::Access)
    }
}
