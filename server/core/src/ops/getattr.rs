//! GETATTR (RFC 8881 §18.7).

use nfs4d_xdr::nfs4::{
    GETATTR4args, GETATTR4resok, FATTR4_CHANGE, FATTR4_FSID, FATTR4_FS_LOCATIONS,
    FATTR4_MOUNTED_ON_FILEID, FATTR4_SIZE,
};

use super::common;
use crate::context::Cx;
use crate::error::NfsResult;
use crate::namespace::vfs::{obj_attrs, Node};
use crate::state::deleg::CbWork;

/// GETATTR: the requested attributes that are supported.
///
/// Size and change of a file another client holds a write delegation on
/// are the holder's to tell: its cached writes may not have reached the
/// server. The server asks with CB_GETATTR and answers with the holder's
/// size and, if the holder modified the file, a change attribute above the
/// server's own (RFC 8881 §10.4.3). If the holder does not answer, the
/// server's values are returned.
pub fn run(cx: &mut Cx, a: GETATTR4args) -> NfsResult<GETATTR4resok> {
    let cur = cx.cfh()?.clone();
    // A file system that moved to another server answers only what lets
    // the client follow it (RFC 7530 §8.4.2, §8.8; RFC 8881 §11.3):
    // fs_locations, fsid, mounted_on_fileid. Anything else is MOVED.
    if let Node::Obj { export, .. } = &cur.node {
        if cx.srv.vfs.moved_to(*export).is_some() {
            let mut absent = Vec::new();
            for attr in [FATTR4_FS_LOCATIONS, FATTR4_FSID, FATTR4_MOUNTED_ON_FILEID] {
                crate::attrs::bitmap_set(&mut absent, attr);
            }
            let only_absent = a
                .attr_request
                .iter()
                .enumerate()
                .all(|(i, w)| w & !absent.get(i).copied().unwrap_or(0) == 0);
            if !only_absent {
                return Err(crate::error::NfsError::Moved);
            }
        }
    }
    let wants = |bit: u32| a.attr_request.first().is_some_and(|w| w & (1 << bit) != 0);
    if let (Node::Obj { export, path, .. }, Some(file)) = (&cur.node, common::file_key(&cur)) {
        if wants(FATTR4_SIZE) || wants(FATTR4_CHANGE) {
            let holder = cx
                .srv
                .state
                .write_delegation_of_other(file, cx.session_client());
            if let Some((client, fh, change_at_grant)) = holder {
                let e = cx.srv.vfs.export(*export)?;
                let mut attrs = obj_attrs(&e.store().stat(path)?);
                if let Some((size, change)) = ask_holder(cx, client, fh) {
                    if change != change_at_grant {
                        attrs.size = size;
                        attrs.change = attrs.change.max(change_at_grant) + 1;
                    }
                }
                return Ok(GETATTR4resok {
                    obj_attributes: common::encode_with(
                        cx,
                        &cur,
                        &attrs,
                        Some(e),
                        &a.attr_request,
                        None,
                    )?,
                });
            }
        }
    }
    Ok(GETATTR4resok {
        obj_attributes: common::encode_attrs(cx, &cur, &a.attr_request)?,
    })
}

/// CB_GETATTR through the callback driver, waiting for its answer (the
/// driver bounds every callback by its timeout, so the wait is bounded).
/// COMPOUNDs run on blocking threads, where waiting is allowed.
fn ask_holder(cx: &Cx, client: crate::state::ClientId, fh: Vec<u8>) -> Option<(u64, u64)> {
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    if !cx
        .srv
        .state
        .callbacks
        .push(CbWork::Getattr { client, fh, reply })
    {
        return None;
    }
    // A round trip to the client (nfs4d_blocking).
    nfs4d_blocking::region(|| answer.recv().ok().flatten())
}
