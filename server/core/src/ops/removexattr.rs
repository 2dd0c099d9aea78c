//! REMOVEXATTR (RFC 8276 §8.4.4): deletes one extended attribute.

use nfs4d_xdr::nfs4::{change_info4, REMOVEXATTR4args};

use super::common;
use super::getxattr::{may_modify, xattr_key, xattr_obj};
use crate::context::Cx;
use crate::error::NfsResult;

/// REMOVEXATTR: the pseudo filesystem has no xattrs (NFS4ERR_NOTSUPP); the
/// key as [`xattr_key`]; then [`may_modify`] (ROFS, PERM, ACCESS); a
/// missing key is NFS4ERR_NOXATTR ("MUST", §8.4.4.3). The reply is the
/// object's change attribute before and after, not atomic.
pub fn run(cx: &mut Cx, a: REMOVEXATTR4args) -> NfsResult<change_info4> {
    let cur = cx.cfh()?.clone();
    let (e, path, before) = xattr_obj(cx, &cur)?;
    let key = xattr_key(&a.rxa_name)?;
    may_modify(cx, e, &before)?;
    e.store().removexattr(path, key)?;
    let after = e.store().stat(path)?;
    Ok(common::cinfo(&before, &after))
}
