//! GETXATTR (RFC 8276 §8.4.1): the value of one extended attribute. Also
//! what the four xattr operations share: key validation ([`xattr_key`]),
//! the object ([`xattr_obj`]) and the permission to modify
//! ([`may_modify`]).
//!
//! NFS xattr keys live in the backend's `user.` namespace (the key `foo`
//! is `user.foo` on a Linux filesystem); other namespaces are never
//! reachable. Permissions follow Linux's rules for `user.` attributes
//! (xattr(7)), checked here because the server itself runs as root: read
//! permission on the object to get or list, write permission to set or
//! remove, and in a sticky directory only its owner or root may modify.

use nfs4d_xdr::nfs4::GETXATTR4args;

use super::common::{self, Opaque, MAY_READ, MAY_WRITE};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{CurFh, Export};
use nfs4d_store::{Attrs, FileKind, RelPath, XATTR_NAME_MAX};

/// Reply bytes kept free around an xattr result in a COMPOUND (RPC
/// header, status, tag, SEQUENCE and PUTFH results), as READ keeps.
pub(super) const OVERHEAD: u32 = 512;

/// GETXATTR: the pseudo filesystem has no xattrs (NFS4ERR_NOTSUPP, §8.4.1.3
/// for a file system without xattr support); the key as [`xattr_key`];
/// read permission (NFS4ERR_ACCESS); a missing key is NFS4ERR_NOXATTR
/// ("MUST"); a value the session's reply cannot hold NFS4ERR_REP_TOO_BIG
/// ("MUST"). The value is returned as opaque data.
pub fn run(cx: &mut Cx, a: GETXATTR4args) -> NfsResult<Opaque> {
    let cur = cx.cfh()?.clone();
    let (e, path, attrs) = xattr_obj(cx, &cur)?;
    let key = xattr_key(&a.gxa_name)?;
    common::require(cx, &attrs, MAY_READ)?;
    let value = e.store().getxattr(path, key)?;
    if let Some(s) = &cx.session {
        let room = u64::from(s.fore.max_response.saturating_sub(OVERHEAD));
        if 4 + (value.len() as u64).next_multiple_of(4) > room {
            return Err(NfsError::RepTooBig);
        }
    }
    Ok(Opaque(value))
}

/// Validates an `xattrkey4` (a `component4`, RFC 8276 §8.1): empty,
/// invalid UTF-8 (as names, RFC 8881 §14.4) or containing a NUL (which no
/// Linux xattr name can) is NFS4ERR_INVAL; longer than the backend allows
/// once prefixed with `user.` is NFS4ERR_NAMETOOLONG.
pub(super) fn xattr_key(key: &[u8]) -> NfsResult<&[u8]> {
    if key.is_empty() || key.contains(&0) || std::str::from_utf8(key).is_err() {
        return Err(NfsError::Inval);
    }
    if key.len() > XATTR_NAME_MAX {
        return Err(NfsError::NameTooLong);
    }
    Ok(key)
}

/// The export, path and attributes of the current object for an xattr
/// operation; pseudo-filesystem directories support no xattrs
/// (NFS4ERR_NOTSUPP, and `xattr_support` is FALSE there).
pub(super) fn xattr_obj<'c>(
    cx: &'c Cx,
    cur: &'c CurFh,
) -> NfsResult<(&'c Export, &'c RelPath, Attrs)> {
    let (e, path, _) = common::obj(cx, cur, NfsError::NotSupp)?;
    let attrs = e.store().stat(path)?;
    Ok((e, path, attrs))
}

/// Whether the caller may set or remove xattrs of an object with
/// attributes `a` in export `e`: NFS4ERR_ROFS on a read-only export; in a
/// sticky directory only its owner or root, else NFS4ERR_PERM (Linux
/// `xattr_permission`); otherwise write permission, else NFS4ERR_ACCESS.
pub(super) fn may_modify(cx: &Cx, e: &Export, a: &Attrs) -> NfsResult<()> {
    common::writable(cx, e)?;
    let uid = common::user(cx).uid;
    if a.kind == FileKind::Directory
        && a.mode & common::MODE_STICKY != 0
        && uid != 0
        && uid != a.uid
    {
        return Err(NfsError::Perm);
    }
    common::require(cx, a, MAY_WRITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(xattr_key(b"attr1"), Ok(&b"attr1"[..]));
        assert_eq!(xattr_key(b"user.attr1"), Ok(&b"user.attr1"[..]));
        assert_eq!(xattr_key("é/ü".as_bytes()), Ok("é/ü".as_bytes()));
        assert_eq!(xattr_key(b""), Err(NfsError::Inval));
        assert_eq!(xattr_key(b"a\0b"), Err(NfsError::Inval));
        assert_eq!(xattr_key(b"\xff"), Err(NfsError::Inval));
        assert!(xattr_key(&[b'x'; XATTR_NAME_MAX]).is_ok());
        assert_eq!(
            xattr_key(&[b'x'; XATTR_NAME_MAX + 1]),
            Err(NfsError::NameTooLong)
        );
    }
}
