//! READLINK (RFC 8881 §18.24, RFC 7530 §16.25): the target of the
//! symlink at the current filehandle, verbatim (the server never
//! interprets it).
//!
//! On a non-symlink NFSv4.0 answers NFS4ERR_INVAL (RFC 7530 §16.25.5,
//! pynfs RDLK2 and knfsd agree); NFSv4.1 replaced that with
//! NFS4ERR_WRONG_TYPE (RFC 8881 §18.24.4: "The server should return the
//! error NFS4ERR_WRONG_TYPE if the object is not of type NF4LNK", and
//! INVAL is no longer in READLINK's error list, §15.2), so the answer
//! depends on the minor version.

use nfs4d_xdr::nfs4::READLINK4resok;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::Node;
use nfs4d_store::FileKind;

/// READLINK.
pub fn run(cx: &mut Cx) -> NfsResult<READLINK4resok> {
    let not_link = if cx.minor == 0 {
        NfsError::Inval
    } else {
        NfsError::WrongType
    };
    let cur = cx.cfh()?;
    let Node::Obj { export, path, .. } = &cur.node else {
        // Pseudo nodes are directories.
        return Err(not_link);
    };
    let e = cx.srv.vfs.export(*export)?;
    if e.store().stat(path)?.kind != FileKind::Symlink {
        return Err(not_link);
    }
    // No permission check: reading a link needs none (POSIX readlink).
    Ok(READLINK4resok {
        link: e.store().readlink(path)?,
    })
}
