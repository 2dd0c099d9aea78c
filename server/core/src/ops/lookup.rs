//! LOOKUP (RFC 8881 §18.13, RFC 7530 §16.13): the current filehandle
//! becomes the object `objname` in the current directory.
//!
//! "." and ".." have no special meaning in NFSv4 (the client resolves
//! them itself; LOOKUPP goes up); they are invalid component names and
//! get NFS4ERR_BADNAME from [`component`].

use nfs4d_xdr::nfs4::LOOKUP4args;

use super::common::{self, MAY_EXEC};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, Node};

/// LOOKUP.
pub fn run(cx: &mut Cx, a: LOOKUP4args) -> NfsResult<()> {
    // Name errors first (empty → INVAL, bad UTF-8 → INVAL, "/" or "." →
    // BADNAME, too long → NAMETOOLONG), as knfsd checks them at decode.
    let name = component(&a.objname)?;
    let cur = cx.cfh()?.clone();
    let srv = cx.srv;
    let next = match &cur.node {
        // Pseudo directories (RFC 8881 §7.3) hold only the paths to the
        // exports, and everybody may search them (mode 0555).
        Node::Pseudo(n) => {
            let child = common::pseudo_child(cx, *n, name.as_bytes()).ok_or(NfsError::NoEnt)?;
            srv.vfs.pseudo_fh(child)?
        }
        Node::Obj { export, id, path } => {
            let e = srv.vfs.export(*export)?;
            let dir = common::stat_obj(cx, e, *id, path)?;
            common::lookup_dir(&dir)?;
            // Search permission on the directory, as path resolution needs.
            common::require(cx, &dir, MAY_EXEC)?;
            // Another export mounted below this export's root (nested
            // pseudo paths): LOOKUP crosses into it (RFC 8881 §7.7).
            let nested = if id.is_export_root() {
                common::export_node(cx, *export)
                    .and_then(|n| common::pseudo_child(cx, n, name.as_bytes()))
            } else {
                None
            };
            match nested {
                Some(child) => srv.vfs.pseudo_fh(child)?,
                None => {
                    if crate::namespace::orphans::is_hidden(path, name.as_bytes()) {
                        return Err(NfsError::NoEnt);
                    }
                    let attrs = e.store().lookup(path, &name)?;
                    // The handle must be on disk before the client sees it.
                    let (fh, seq) = srv.vfs.child_fh(*export, *id, path, &name, &attrs)?;
                    cx.need_durable(seq);
                    fh
                }
            }
        }
    };
    cx.cfh = Some(next);
    Ok(())
}
