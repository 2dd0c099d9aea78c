//! LOOKUPP (RFC 8881 §18.14, RFC 7530 §16.14): the current filehandle
//! becomes the parent of the current directory.
//!
//! Inside an export the parent is the object's primary parent in the
//! handle map (directories have exactly one link, so that is the parent
//! its path names). From an export root the walk continues in the pseudo
//! filesystem; at the top of the tree there is no parent: NFS4ERR_NOENT.

use super::common::{self, MAY_EXEC};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{CurFh, Node};

/// LOOKUPP.
pub fn run(cx: &mut Cx) -> NfsResult<()> {
    let cur = cx.cfh()?.clone();
    let srv = cx.srv;
    let parent = match &cur.node {
        // The pseudo root is its own parent: there is nothing above it.
        Node::Pseudo(0) => return Err(NfsError::NoEnt),
        Node::Pseudo(n) => srv
            .vfs
            .pseudo_fh(srv.vfs.pseudo.get(*n).ok_or(NfsError::Stale)?.parent)?,
        Node::Obj { export, id, path } => {
            let e = srv.vfs.export(*export)?;
            let dir = e.store().stat(path)?;
            // Non-directories are NFS4ERR_NOTDIR (RFC 8881 §18.14.3), a
            // symlink NFS4ERR_SYMLINK (in LOOKUPP's error list, §15.2;
            // pynfs LKPP1a expects it).
            common::lookup_dir(&dir)?;
            // Looking up ".." needs search permission on the directory.
            common::require(cx, &dir, MAY_EXEC)?;
            match path.parent() {
                // An export root: the pseudo directory it is mounted on,
                // unless it is mounted at the pseudo root itself.
                None => match common::export_node(cx, *export) {
                    Some(0) | None => return Err(NfsError::NoEnt),
                    Some(n) => srv.vfs.pseudo_fh(srv.vfs.pseudo[n].parent)?,
                },
                Some(parent_path) => {
                    let rec = srv.fhmap.get(*id)?.ok_or(NfsError::Stale)?;
                    let inc = srv
                        .fhmap
                        .incarnation_of(rec.parent)?
                        .ok_or(NfsError::Stale)?;
                    CurFh {
                        fh: srv.fhmap.encode(*export, rec.parent, inc),
                        node: Node::Obj {
                            export: *export,
                            id: rec.parent,
                            path: parent_path,
                        },
                    }
                }
            }
        }
    };
    cx.cfh = Some(parent);
    Ok(())
}
