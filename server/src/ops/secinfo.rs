//! SECINFO and SECINFO_NO_NAME (RFC 8881 §18.29, §18.45): the flavors
//! usable for an object. This server offers AUTH_SYS and AUTH_NONE.

use nfs4d_xdr::nfs4::{secinfo4, secinfo_style4, SECINFO4args, SECINFO4resok, SECINFO_NO_NAME4args};

use super::common;
use crate::compound::Cx;
use crate::error::{NfsError, NfsResult};
use crate::vfs::{component, Node};

const AUTH_SYS: u32 = 1;
const AUTH_NONE: u32 = 0;

fn flavors() -> SECINFO4resok {
    vec![secinfo4::default(AUTH_SYS), secinfo4::default(AUTH_NONE)]
}

/// SECINFO: the name must exist in the current directory. In 4.1 the
/// current filehandle is consumed (RFC 8881 §2.6.3.1.1.8).
pub fn secinfo(cx: &mut Cx, a: SECINFO4args) -> NfsResult<SECINFO4resok> {
    let name = component(&a.name)?;
    let cur = cx.cfh()?.clone();
    match &cur.node {
        Node::Pseudo(n) => {
            let found = cx.srv.vfs.pseudo[*n]
                .children
                .iter()
                .any(|c| cx.srv.vfs.pseudo[*c].name.as_bytes() == name.as_bytes());
            if !found {
                return Err(NfsError::NoEnt);
            }
        }
        Node::Obj { .. } => {
            let (e, path, _) = common::obj(cx, &cur, NfsError::NotDir)?;
            let dir = e.backend.stat(path)?;
            if dir.kind != crate::backend::FileKind::Directory {
                return Err(NfsError::NotDir);
            }
            e.backend.lookup(path, &name)?;
        }
    }
    if cx.minor >= 1 {
        cx.cfh = None;
    }
    Ok(flavors())
}

/// SECINFO_NO_NAME: for the current object or its parent.
pub fn secinfo_no_name(cx: &mut Cx, a: SECINFO_NO_NAME4args) -> NfsResult<SECINFO4resok> {
    let cur = cx.cfh()?.clone();
    if a == secinfo_style4::SECINFO_STYLE4_PARENT {
        let is_root = match &cur.node {
            Node::Pseudo(n) => *n == 0,
            Node::Obj { path, export, .. } => {
                path.is_root() && cx.srv.vfs.pseudo.first().is_some_and(|p| p.export == Some(*export))
            }
        };
        if is_root {
            return Err(NfsError::NoEnt);
        }
    }
    cx.cfh = None;
    Ok(flavors())
}
