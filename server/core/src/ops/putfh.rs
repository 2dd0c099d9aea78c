//! PUTFH, PUTROOTFH, PUTPUBFH (RFC 8881 §18.19–18.21): set the current
//! filehandle. The public filehandle is the root here (RFC 8881 §18.20
//! lets them coincide).

use nfs4d_xdr::nfs4::PUTFH4args;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// PUTFH: a handle longer than NFS4_FHSIZE or not issued by this server is
/// NFS4ERR_BADHANDLE; one whose object is gone is STALE (or FHEXPIRED for
/// volatile handles).
pub fn putfh(cx: &mut Cx, a: PUTFH4args) -> NfsResult<()> {
    if a.object.is_empty() || a.object.len() > nfs4d_xdr::nfs4::NFS4_FHSIZE as usize {
        return Err(NfsError::BadHandle);
    }
    // Volatile handles: open files and the export's `expired_error`.
    cx.cfh = Some(super::common::resolve_fh(cx, &a.object)?);
    Ok(())
}

/// PUTROOTFH / PUTPUBFH: root handles never expire.
pub fn putrootfh(cx: &mut Cx) -> NfsResult<()> {
    cx.cfh = Some(cx.srv.vfs.root()?);
    Ok(())
}
