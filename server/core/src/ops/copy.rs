//! COPY (RFC 7862 §15.2): server-side copy of a byte range from the file
//! of the saved filehandle to the file of the current filehandle. Only
//! intra-server copies are offered, always synchronously. Also the
//! source/destination checks CLONE shares ([`two_files`]).

use nfs4d_xdr::nfs4::{copy_requirements4, stable_how4, write_response4, COPY4args, COPY4resok};

use super::allocate::regular_42;
use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{CurFh, Export};
use nfs4d_store::RelPath;

/// Most bytes one synchronous COPY copies. A larger request copies this
/// much and says so in `wr_count` (the client goes on from there, as with
/// a short WRITE), so one COPY cannot hold a server thread and the
/// client's session slot for minutes; knfsd caps synchronous copies the
/// same way (at 4 MiB).
pub(super) const MAX_SYNC_COPY: u64 = 64 << 20;

/// The source (saved filehandle) and destination (current filehandle) of
/// a COPY or CLONE.
pub(super) struct Pair<'c> {
    /// The export both live in.
    pub export: &'c Export,
    /// Source path.
    pub src: &'c RelPath,
    /// Destination path.
    pub dst: &'c RelPath,
    /// Both name the same file.
    pub same: bool,
    /// Size of the source when checked.
    pub src_size: u64,
}

/// Checks the two files of a COPY or CLONE, in this order: both must be
/// regular files, else NFS4ERR_WRONG_TYPE (§15.2.3, §15.13.3; pseudo
/// directories included); both must be in the same export, else
/// NFS4ERR_XDEV (the backend copies within one store); the destination's
/// export must be writable, else NFS4ERR_ROFS.
pub(super) fn two_files<'c>(cx: &'c Cx, src: &'c CurFh, dst: &'c CurFh) -> NfsResult<Pair<'c>> {
    let (se, spath, sid) = common::obj(cx, src, NfsError::WrongType)?;
    let (de, dpath, did) = common::obj(cx, dst, NfsError::WrongType)?;
    let sa = se.store().stat(spath)?;
    regular_42(&sa)?;
    regular_42(&de.store().stat(dpath)?)?;
    if se.id != de.id {
        return Err(NfsError::Xdev);
    }
    common::writable(cx, de)?;
    Ok(Pair {
        export: de,
        src: spath,
        dst: dpath,
        same: sid == did,
        src_size: sa.size,
    })
}

/// The byte count of a COPY or CLONE of `count` bytes at `src_off` of a
/// source of `size` bytes to `dst_off`: a count of 0 means "through end
/// of file" (§15.2.3, §15.13.3); a source range that starts or ends past
/// end of file is NFS4ERR_INVAL ("MUST"); a destination range past
/// 2^64 - 1 is NFS4ERR_INVAL, past the largest file offset NFS4ERR_FBIG.
pub(super) fn copy_count(src_off: u64, dst_off: u64, count: u64, size: u64) -> NfsResult<u64> {
    if src_off > size {
        return Err(NfsError::Inval);
    }
    let count = if count == 0 { size - src_off } else { count };
    match src_off.checked_add(count) {
        Some(end) if end <= size => {}
        _ => return Err(NfsError::Inval),
    }
    let dst_end = dst_off.checked_add(count).ok_or(NfsError::Inval)?;
    if i64::try_from(dst_end).is_err() {
        return Err(NfsError::FBig);
    }
    Ok(count)
}

/// The inclusive byte range of `count` bytes at `off`, for the lock checks
/// of [`super::read::admit`]; `None` for an empty range.
/// Admits the source for reading and the destination for writing over the
/// ranges a COPY or CLONE of `count` bytes (0: to the source's end) touches.
#[allow(clippy::too_many_arguments)]
pub(super) fn admit_pair(
    cx: &Cx,
    pair: &Pair,
    src: &CurFh,
    dst: &CurFh,
    src_sid: &nfs4d_xdr::nfs4::stateid4,
    dst_sid: &nfs4d_xdr::nfs4::stateid4,
    src_off: u64,
    dst_off: u64,
    count: u64,
) -> NfsResult<()> {
    // For the lock checks: what "through end of file" means now.
    let wanted = match count {
        0 => pair.src_size.saturating_sub(src_off),
        n => n,
    };
    super::read::admit(cx, src, src_sid, false, lock_range(src_off, wanted))?;
    super::read::admit(cx, dst, dst_sid, true, lock_range(dst_off, wanted))?;
    Ok(())
}

pub(super) fn lock_range(off: u64, count: u64) -> Option<(u64, u64)> {
    (count > 0).then(|| (off, off.saturating_add(count - 1)))
}

/// COPY, intra-server and synchronous:
///
/// * a non-empty `ca_source_server` asks for an inter-server copy, which
///   this server does not offer: NFS4ERR_NOTSUPP (as knfsd without
///   inter-server copy support);
/// * no saved filehandle is NFS4ERR_NOFILEHANDLE; the files are checked by
///   [`two_files`]; the same file as source and destination is
///   NFS4ERR_INVAL ("MUST", §15.2.3);
/// * `ca_src_stateid` must be valid for READ of the source and
///   `ca_dst_stateid` for WRITE of the destination (§15.2.3), as READ and
///   WRITE admit them ([`super::read::admit`]);
/// * the range as [`copy_count`];
/// * the data is copied with `copy_file_range` (the backend falls back to
///   reads and writes), at most [`MAX_SYNC_COPY`] bytes; `wr_count` says
///   how many. Copies are always synchronous and in order, which satisfies
///   both `ca_consecutive` and `ca_synchronous`: `wr_callback_id` is
///   empty and `cr_requirements` TRUE/TRUE. The data is not yet durable:
///   `wr_committed` is UNSTABLE4 with the server's write verifier, and the
///   client COMMITs as after an unstable WRITE.
pub fn run(cx: &mut Cx, a: COPY4args) -> NfsResult<COPY4resok> {
    if !a.ca_source_server.is_empty() {
        return Err(NfsError::NotSupp);
    }
    let dst = cx.cfh()?.clone();
    let src = cx.sfh.clone().ok_or(NfsError::NoFileHandle)?;
    let src_sid = cx.resolve_stateid(&a.ca_src_stateid)?;
    let dst_sid = cx.resolve_stateid(&a.ca_dst_stateid)?;
    let pair = two_files(cx, &src, &dst)?;
    if pair.same {
        return Err(NfsError::Inval);
    }
    admit_pair(
        cx,
        &pair,
        &src,
        &dst,
        &src_sid,
        &dst_sid,
        a.ca_src_offset,
        a.ca_dst_offset,
        a.ca_count,
    )?;
    let count =
        copy_count(a.ca_src_offset, a.ca_dst_offset, a.ca_count, pair.src_size)?.min(MAX_SYNC_COPY);
    let copied = if count == 0 {
        0
    } else {
        pair.export.store().copy_range(
            pair.src,
            a.ca_src_offset,
            pair.dst,
            a.ca_dst_offset,
            count,
        )?
    };
    Ok(COPY4resok {
        cr_response: write_response4 {
            wr_callback_id: Vec::new(),
            wr_count: copied,
            wr_committed: stable_how4::UNSTABLE4,
            wr_writeverf: cx.srv.write_verifier,
        },
        cr_requirements: copy_requirements4 {
            cr_consecutive: true,
            cr_synchronous: true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        // Zero: through end of file.
        assert_eq!(copy_count(0, 0, 0, 100), Ok(100));
        assert_eq!(copy_count(40, 0, 0, 100), Ok(60));
        assert_eq!(copy_count(100, 0, 0, 100), Ok(0));
        assert_eq!(copy_count(10, 500, 90, 100), Ok(90));
        // Source past end of file.
        assert_eq!(copy_count(101, 0, 0, 100), Err(NfsError::Inval));
        assert_eq!(copy_count(10, 0, 91, 100), Err(NfsError::Inval));
        assert_eq!(copy_count(10, 0, u64::MAX, 100), Err(NfsError::Inval));
        // Destination past the largest offset.
        assert_eq!(copy_count(0, u64::MAX, 10, 100), Err(NfsError::Inval));
        assert_eq!(copy_count(0, i64::MAX as u64, 10, 100), Err(NfsError::FBig));
    }

    #[test]
    fn lock_ranges() {
        assert_eq!(lock_range(5, 0), None);
        assert_eq!(lock_range(5, 10), Some((5, 14)));
        assert_eq!(lock_range(u64::MAX, 10), Some((u64::MAX, u64::MAX)));
    }
}
