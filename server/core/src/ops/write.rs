//! WRITE (RFC 8881 §18.32, RFC 7530 §16.36): writes file data under a
//! stateid, as durably as asked.

use nfs4d_xdr::nfs4::{stable_how4, WRITE4args, WRITE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use nfs4d_store::Stability;

/// WRITE: NFS4ERR_ROFS on a read-only export; an offset + length past
/// 2^64 - 1 is NFS4ERR_INVAL, past the largest file size NFS4ERR_FBIG (the
/// backend's check). The stateid is admitted as for READ
/// ([`super::read::admit`]); the READ bypass stateid counts as anonymous
/// (RFC 8881 §18.32.3). The data is committed exactly as `stable` asks
/// (UNSTABLE4: page cache, to be COMMITted; DATA_SYNC4: fdatasync;
/// FILE_SYNC4: fsync), and `committed` says so. A zero-length write
/// touches nothing (§18.32.4: it SHOULD NOT change the modify time).
pub fn run(cx: &mut Cx, a: WRITE4args) -> NfsResult<WRITE4resok> {
    let cur = cx.cfh()?.clone();
    let sid = cx.resolve_stateid(&a.stateid)?;
    let (e, _, _) = common::obj(cx, &cur, NfsError::IsDir)?;
    common::writable(cx, e)?;
    let len = a.data.len() as u64;
    let end = a.offset.checked_add(len).ok_or(NfsError::Inval)?;
    let range = (len > 0).then(|| (a.offset, end - 1));
    let (e, path) = super::read::admit(cx, &cur, &sid, true, range)?;
    let stability = match a.stable {
        stable_how4::UNSTABLE4 => Stability::Unstable,
        stable_how4::DATA_SYNC4 => Stability::DataSync,
        stable_how4::FILE_SYNC4 => Stability::FileSync,
    };
    let (written, done) = if a.data.is_empty() {
        (0, stability)
    } else {
        e.store().write(path, a.offset, &a.data, stability)?
    };
    cx.srv.metrics.written_bytes(written as u64);
    if done.max(stability) != Stability::Unstable {
        // Stable data must stay reachable through the client's handle,
        // also on an async export (namespace/lazy.rs).
        if let crate::namespace::vfs::Node::Obj { id, .. } = &cur.node {
            cx.srv.vfs.make_object_durable(e, *id)?;
        }
    }
    Ok(WRITE4resok {
        // At most the request's length, which the record size bounds.
        count: u32::try_from(written).map_err(|_| NfsError::ServerFault)?,
        // What the store guaranteed: at least what was asked (RFC 8881
        // §18.32.3 lets a server commit more than asked, never less).
        committed: match done.max(stability) {
            Stability::Unstable => stable_how4::UNSTABLE4,
            Stability::DataSync => stable_how4::DATA_SYNC4,
            Stability::FileSync => stable_how4::FILE_SYNC4,
        },
        writeverf: cx.srv.write_verifier,
    })
}
