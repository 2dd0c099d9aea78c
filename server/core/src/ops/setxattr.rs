//! SETXATTR (RFC 8276 §8.4.2): creates or replaces one extended attribute.

use nfs4d_xdr::nfs4::{change_info4, setxattr_option4, SETXATTR4args};

use super::common;
use super::getxattr::{may_modify, xattr_key, xattr_obj};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::Export;
use nfs4d_store::{StoreError, XattrSet, XATTR_SIZE_MAX};

/// SETXATTR: the pseudo filesystem has no xattrs (NFS4ERR_NOTSUPP); the
/// key as [`xattr_key`]; a value larger than the backend stores
/// (64 KiB, Linux `XATTR_SIZE_MAX`) is NFS4ERR_XATTR2BIG (§8.4.2.3); then
/// [`may_modify`] (ROFS, PERM, ACCESS). SETXATTR4_CREATE of an existing
/// key is NFS4ERR_EXIST and SETXATTR4_REPLACE of a missing one
/// NFS4ERR_NOXATTR ("MUST"); SETXATTR4_EITHER creates or replaces. A value
/// the filesystem cannot hold is NFS4ERR_XATTR2BIG (E2BIG, or ENOSPC while
/// the filesystem still has free space: the per-file xattr space is
/// full), else NFS4ERR_NOSPC. The reply is the object's change attribute
/// before and after (`atomic` FALSE: other processes may change the object
/// in between).
pub fn run(cx: &mut Cx, a: SETXATTR4args) -> NfsResult<change_info4> {
    let cur = cx.cfh()?.clone();
    let (e, path, before) = xattr_obj(cx, &cur)?;
    let key = xattr_key(&a.sxa_key)?;
    if a.sxa_value.len() > XATTR_SIZE_MAX {
        return Err(NfsError::Xattr2Big);
    }
    may_modify(cx, e, &before)?;
    let mode = match a.sxa_option {
        setxattr_option4::SETXATTR4_EITHER => XattrSet::Either,
        setxattr_option4::SETXATTR4_CREATE => XattrSet::Create,
        setxattr_option4::SETXATTR4_REPLACE => XattrSet::Replace,
    };
    match e.store().setxattr(path, key, &a.sxa_value, mode) {
        // ENOSPC while the filesystem has room: the file's xattrs would
        // outgrow what the filesystem keeps per file (ext4 without
        // `ea_inode`: one block), which is XATTR2BIG (§8.3.2).
        Err(StoreError::NoSpace) if has_room(e) => return Err(NfsError::Xattr2Big),
        r => r?,
    }
    let after = e.store().stat(path)?;
    Ok(common::cinfo(&before, &after))
}

/// Whether the export's filesystem still has free space (1 MiB or more),
/// so that an ENOSPC from setxattr is about the file's xattr space.
fn has_room(e: &Export) -> bool {
    e.store().statfs().is_ok_and(|s| s.free_bytes >= 1 << 20)
}
