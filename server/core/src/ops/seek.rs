//! SEEK (RFC 7862 §15.11): the next data or hole of a file at or after an
//! offset.

use nfs4d_xdr::nfs4::{data_content4, seek_res4, SEEK4args};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// SEEK: the stateid follows READ_PLUS's rules (§15.11.3), which are
/// READ's ([`super::read::admit`]; the type errors are READ's too:
/// NFS4ERR_ISDIR, NFS4ERR_SYMLINK, NFS4ERR_WRONG_TYPE). An offset at or
/// past end of file is NFS4ERR_NXIO ("MUST"). Otherwise:
///
/// * NFS4_CONTENT_DATA: the start of the next data, `sr_eof` FALSE; when
///   only holes follow, NFS4_OK with `sr_eof` TRUE and `sr_offset` the
///   file size ("cannot find a corresponding sa_what");
/// * NFS4_CONTENT_HOLE: the start of the next hole — every file has a
///   virtual hole at its end, so there always is one — with `sr_eof` TRUE
///   when that hole is the end of file.
///
/// Filesystems without hole tracking report the whole file as data, so a
/// HOLE search then answers the file size, as §15.11.3 asks.
pub fn run(cx: &mut Cx, a: SEEK4args) -> NfsResult<seek_res4> {
    let cur = cx.cfh()?.clone();
    let sid = cx.resolve_stateid(&a.sa_stateid)?;
    let (e, path) = super::read::admit(cx, &cur, &sid, false, None)?;
    let attrs = e.store().stat(path)?;
    common::regular_file(cx, attrs.kind)?;
    let size = attrs.size;
    if a.sa_offset >= size {
        return Err(NfsError::Nxio);
    }
    let found = match a.sa_what {
        data_content4::NFS4_CONTENT_DATA => e.store().seek_data(path, a.sa_offset)?,
        data_content4::NFS4_CONTENT_HOLE => e.store().seek_hole(path, a.sa_offset)?,
    };
    Ok(result(found, size))
}

/// The reply for what the backend found (`None`: nothing before end of
/// file) in a file of `size` bytes.
fn result(found: Option<u64>, size: u64) -> seek_res4 {
    match found {
        Some(pos) => seek_res4 {
            sr_eof: pos >= size,
            sr_offset: pos,
        },
        None => seek_res4 {
            sr_eof: true,
            sr_offset: size,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results() {
        let r = result(Some(4096), 8192);
        assert_eq!((r.sr_eof, r.sr_offset), (false, 4096));
        // The virtual hole at end of file.
        let r = result(Some(8192), 8192);
        assert_eq!((r.sr_eof, r.sr_offset), (true, 8192));
        // No more data.
        let r = result(None, 8192);
        assert_eq!((r.sr_eof, r.sr_offset), (true, 8192));
    }
}
