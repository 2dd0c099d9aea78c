//! COMMIT (RFC 8881 §18.3, RFC 7530 §16.3): makes earlier UNSTABLE4 writes
//! durable.

use nfs4d_xdr::nfs4::{COMMIT4args, COMMIT4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// COMMIT: the current file must be a regular file (directory:
/// NFS4ERR_ISDIR; others as [`common::regular_file`]); an offset + count
/// past 2^64 - 1 is NFS4ERR_INVAL. The whole file is fsynced whatever the
/// range (data and metadata, as §18.3.4 asks), and the write verifier
/// returned: it changes only when the server restarts, which is when
/// unstable data may have been lost. A read-only export has nothing
/// unstable to commit.
pub fn run(cx: &mut Cx, a: COMMIT4args) -> NfsResult<COMMIT4resok> {
    let cur = cx.cfh()?.clone();
    let (e, path, (_, id), _) = common::cur_regular(cx, &cur)?;
    a.offset
        .checked_add(u64::from(a.count))
        .ok_or(NfsError::Inval)?;
    if !e.cfg.read_only {
        e.store().commit(path)?;
        // On an async export the file's name and handle too (lazy.rs).
        cx.srv.vfs.make_object_durable(e, id)?;
    }
    Ok(COMMIT4resok {
        writeverf: cx.srv.write_verifier,
    })
}
