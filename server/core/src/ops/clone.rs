//! CLONE (RFC 7862 §15.13): makes a byte range of the file of the current
//! filehandle share the storage of a range of the file of the saved
//! filehandle (reflink).

use nfs4d_xdr::nfs4::CLONE4args;

use super::copy::{admit_pair, copy_count, two_files};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// CLONE: no saved filehandle is NFS4ERR_NOFILEHANDLE; the files are
/// checked as COPY's ([`two_files`]: WRONG_TYPE, XDEV, ROFS); the stateids
/// as for READ of the source and WRITE of the destination (§15.13.3); the
/// range as COPY's ([`copy_count`]: count 0 is "through end of file",
/// a source range past end of file NFS4ERR_INVAL). Source and destination
/// may be the same file, but then overlapping ranges are NFS4ERR_INVAL
/// ("MUST"). The backend uses `FICLONERANGE`; filesystems that cannot
/// share extents (ext4, tmpfs) give NFS4ERR_NOTSUPP, and misaligned
/// ranges (the clone block size is the filesystem's block size)
/// NFS4ERR_INVAL. An empty range clones nothing and succeeds.
pub fn run(cx: &mut Cx, a: CLONE4args) -> NfsResult<()> {
    let dst = cx.cfh()?.clone();
    let src = cx.sfh.clone().ok_or(NfsError::NoFileHandle)?;
    let src_sid = cx.resolve_stateid(&a.cl_src_stateid)?;
    let dst_sid = cx.resolve_stateid(&a.cl_dst_stateid)?;
    let pair = two_files(cx, &src, &dst)?;
    admit_pair(
        cx,
        &pair,
        &src,
        &dst,
        &src_sid,
        &dst_sid,
        a.cl_src_offset,
        a.cl_dst_offset,
        a.cl_count,
    )?;
    let count = copy_count(a.cl_src_offset, a.cl_dst_offset, a.cl_count, pair.src_size)?;
    if pair.same && overlap(a.cl_src_offset, a.cl_dst_offset, count) {
        return Err(NfsError::Inval);
    }
    if count > 0 {
        pair.export.store().clone_range(
            pair.src,
            a.cl_src_offset,
            pair.dst,
            a.cl_dst_offset,
            count,
        )?;
    }
    Ok(())
}

/// Whether `[a, a + count)` and `[b, b + count)` overlap (both ranges were
/// checked to end below 2^64).
fn overlap(a: u64, b: u64, count: u64) -> bool {
    count > 0 && a.abs_diff(b) < count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps() {
        assert!(overlap(0, 0, 1));
        assert!(overlap(0, 4095, 4096));
        assert!(overlap(4095, 0, 4096));
        assert!(!overlap(0, 4096, 4096));
        assert!(!overlap(8192, 4096, 4096));
        assert!(!overlap(5, 5, 0));
    }
}
