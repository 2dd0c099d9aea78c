//! LINK (RFC 8881 §18.9, RFC 7530 §16.9): creates `newname` in the
//! current directory as a hard link to the saved filehandle's object.
//! The current filehandle stays the directory.
//!
//! Source and target must be in the same export (NFS4ERR_XDEV); a pseudo
//! filesystem node is a directory, which cannot be hard-linked
//! (NFS4ERR_ISDIR). LINK only adds a name, so it is not held back during
//! the grace period. The link itself, with its permission rules, is the
//! namespace layer's ([`crate::namespace::Namespace::link`]).

use nfs4d_xdr::nfs4::{LINK4args, LINK4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, Node};
use crate::namespace::{Entry, ObjRef};

/// LINK.
pub fn run(cx: &mut Cx, a: LINK4args) -> NfsResult<LINK4resok> {
    let src_fh = cx.sfh.clone().ok_or(NfsError::NoFileHandle)?;
    let dir_fh = cx.cfh()?.clone();
    let name = component(&a.newname)?;
    let (src_export, src) = match &src_fh.node {
        // Pseudo nodes are directories.
        Node::Pseudo(_) => return Err(NfsError::IsDir),
        Node::Obj { export, id, path } => (*export, ObjRef { id: *id, path }),
    };
    let (e, dir, dir_id) = common::obj(cx, &dir_fh, NfsError::Xdev)?;
    if e.id != src_export {
        return Err(NfsError::Xdev);
    }
    let at = Entry {
        dir_id,
        dir,
        name: &name,
    };
    let r = cx
        .srv
        .namespace()
        .link(&common::caller(cx, e), e, src, at)?;
    cx.need_durable(r.durable);
    Ok(LINK4resok {
        cinfo: common::change_info(r.dir),
    })
}
