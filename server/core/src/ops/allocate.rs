//! ALLOCATE (RFC 7862 §15.1): reserves backing space for a byte range of a
//! regular file, extending the file when the range ends past its end.
//! Also the admission checks DEALLOCATE shares ([`space_admit`]) and the
//! NFSv4.2 "regular file or NFS4ERR_WRONG_TYPE" rule COPY and CLONE share
//! ([`regular_42`]).

use nfs4d_xdr::nfs4::{stateid4, ALLOCATE4args};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{CurFh, Export};
use nfs4d_store::{Attrs, FileKind, RelPath};

/// ALLOCATE: after [`space_admit`], `fallocate(mode 0)` through the
/// backend. The size grows to `offset + length` when that is past end of
/// file (§15.1.3); a filesystem that cannot reserve space is
/// NFS4ERR_NOTSUPP, one without room NFS4ERR_NOSPC.
pub fn run(cx: &mut Cx, a: ALLOCATE4args) -> NfsResult<()> {
    let cur = cx.cfh()?.clone();
    let (e, path) = space_admit(cx, &cur, &a.aa_stateid, a.aa_offset, a.aa_length)?;
    e.store().allocate(path, a.aa_offset, a.aa_length)?;
    Ok(())
}

/// The checks ALLOCATE and DEALLOCATE share, in this order:
///
/// * a read-only export is NFS4ERR_ROFS (as for WRITE);
/// * the current filehandle must be a regular file: anything else —
///   pseudo-filesystem directories included — is NFS4ERR_WRONG_TYPE
///   (RFC 7862 §15.1.3, §15.4.3: "MUST fail and return
///   NFS4ERR_WRONG_TYPE");
/// * the range: a zero length or one whose end passes 2^64 - 1 is
///   NFS4ERR_INVAL; one ending past the largest file offset (2^63 - 1)
///   NFS4ERR_FBIG;
/// * the stateid must be valid for WRITE (§15.1.3 refers to RFC 8881
///   §8.2.5 and §18.32.3): open for write or a special stateid with write
///   permission, exactly as WRITE admits it ([`super::read::admit`]).
pub(super) fn space_admit<'c>(
    cx: &'c Cx,
    cur: &'c CurFh,
    sid: &stateid4,
    offset: u64,
    length: u64,
) -> NfsResult<(&'c Export, &'c RelPath)> {
    let sid = cx.resolve_stateid(sid)?;
    let (e, path, _) = common::obj(cx, cur, NfsError::WrongType)?;
    common::writable(cx, e)?;
    regular_42(&e.store().stat(path)?)?;
    let last = checked_range(offset, length)?;
    super::read::admit(cx, cur, &sid, true, Some((offset, last)))
}

/// The last byte of `length` bytes at `offset`: NFS4ERR_INVAL for a zero
/// length or a range past 2^64 - 1, NFS4ERR_FBIG past the largest file
/// offset the server can store (`off_t` is signed).
pub(super) fn checked_range(offset: u64, length: u64) -> NfsResult<u64> {
    if length == 0 {
        return Err(NfsError::Inval);
    }
    let end = offset.checked_add(length).ok_or(NfsError::Inval)?;
    if i64::try_from(end).is_err() {
        return Err(NfsError::FBig);
    }
    Ok(end - 1)
}

/// NFSv4.2's rule for ALLOCATE, DEALLOCATE, COPY and CLONE (RFC 7862
/// §15.1.3, §15.4.3, §15.2.3, §15.13.3): an object that is not a regular
/// file MUST fail with NFS4ERR_WRONG_TYPE, directories and symlinks
/// included.
pub(super) fn regular_42(a: &Attrs) -> NfsResult<()> {
    if a.kind == FileKind::Regular {
        Ok(())
    } else {
        Err(NfsError::WrongType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(checked_range(0, 1), Ok(0));
        assert_eq!(checked_range(10, 5), Ok(14));
        assert_eq!(checked_range(0, 0), Err(NfsError::Inval));
        assert_eq!(checked_range(u64::MAX, 1), Err(NfsError::Inval));
        assert_eq!(checked_range(1, u64::MAX), Err(NfsError::Inval));
        assert_eq!(checked_range(i64::MAX as u64, 1), Err(NfsError::FBig));
        assert_eq!(checked_range(0, i64::MAX as u64), Ok(i64::MAX as u64 - 1));
    }
}
