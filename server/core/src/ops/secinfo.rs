//! SECINFO and SECINFO_NO_NAME (RFC 8881 §18.29, §18.45): the flavors
//! usable for an object. This server offers AUTH_SYS and AUTH_NONE; an
//! export's `sec` option narrows that (docs/security.md). Pseudo
//! directories accept both.

use nfs4d_xdr::nfs4::{
    secinfo4, secinfo_style4, SECINFO4args, SECINFO4resok, SECINFO_NO_NAME4args,
};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, Node};

use crate::export_access::{AUTH_NONE, AUTH_SYS};

/// The flavors of export `export`, or of the pseudo filesystem for `None`.
fn flavors(cx: &Cx, export: Option<u32>) -> SECINFO4resok {
    match export.and_then(|id| cx.srv.vfs.export(id).ok()) {
        Some(e) => crate::export_access::flavors(&e.cfg)
            .into_iter()
            .map(secinfo4::default)
            .collect(),
        None => vec![secinfo4::default(AUTH_SYS), secinfo4::default(AUTH_NONE)],
    }
}

/// SECINFO: the name must exist in the current directory. In 4.1 the
/// current filehandle is consumed (RFC 8881 §2.6.3.1.1.8).
pub fn secinfo(cx: &mut Cx, a: SECINFO4args) -> NfsResult<SECINFO4resok> {
    let name = component(&a.name)?;
    let cur = cx.cfh()?.clone();
    // The export the named object belongs to (an export mounted on a
    // pseudo directory has its own rules).
    let target = match &cur.node {
        Node::Pseudo(n) => {
            let child = cx.srv.vfs.pseudo[*n]
                .children
                .iter()
                .copied()
                .find(|c| cx.srv.vfs.pseudo[*c].name.as_bytes() == name.as_bytes())
                .ok_or(NfsError::NoEnt)?;
            cx.srv.vfs.pseudo[child].export
        }
        Node::Obj { export, .. } => {
            let (e, path, _) = common::obj(cx, &cur, NfsError::NotDir)?;
            let dir = e.store().stat(path)?;
            if dir.kind != nfs4d_store::FileKind::Directory {
                return Err(NfsError::NotDir);
            }
            e.store().lookup(path, &name)?;
            Some(*export)
        }
    };
    if cx.minor >= 1 {
        cx.cfh = None;
    }
    Ok(flavors(cx, target))
}

/// SECINFO_NO_NAME: for the current object or its parent.
pub fn secinfo_no_name(cx: &mut Cx, a: SECINFO_NO_NAME4args) -> NfsResult<SECINFO4resok> {
    let cur = cx.cfh()?.clone();
    let mut target = cur.obj().map(|o| o.0);
    if a == secinfo_style4::SECINFO_STYLE4_PARENT {
        let is_root = match &cur.node {
            Node::Pseudo(n) => *n == 0,
            Node::Obj { path, export, .. } => {
                path.is_root()
                    && cx
                        .srv
                        .vfs
                        .pseudo
                        .first()
                        .is_some_and(|p| p.export == Some(*export))
            }
        };
        if is_root {
            return Err(NfsError::NoEnt);
        }
        // The parent of an export root is a pseudo directory.
        if matches!(&cur.node, Node::Obj { path, .. } if path.is_root()) {
            target = None;
        }
    }
    cx.cfh = None;
    Ok(flavors(cx, target))
}
