//! VERIFY and NVERIFY (RFC 8881 §18.31 and §18.15, RFC 7530 §16.35 and
//! §16.15): compare client-supplied attribute values with the current
//! object's. The comparison is byte for byte against what GETATTR would
//! return ([`crate::attrs::verify`] with the same attribute context).

use nfs4d_xdr::nfs4::{fattr4, NVERIFY4args, VERIFY4args};

use super::common;
use crate::attrs;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{obj_attrs, Node};

/// VERIFY: NFS4_OK when every attribute matches, else NFS4ERR_NOT_SAME.
pub fn verify(cx: &mut Cx, a: VERIFY4args) -> NfsResult<()> {
    match all_equal(cx, &a.obj_attributes)? {
        true => Ok(()),
        false => Err(NfsError::NotSame),
    }
}

/// NVERIFY: NFS4_OK when any attribute differs, else NFS4ERR_SAME.
pub fn nverify(cx: &mut Cx, a: NVERIFY4args) -> NfsResult<()> {
    match all_equal(cx, &a.obj_attributes)? {
        true => Err(NfsError::Same),
        false => Ok(()),
    }
}

/// Whether all attributes in `f` equal the current object's. Errors
/// (ATTRNOTSUPP, INVAL for rdattr_error or write-only attributes, BADXDR)
/// come from [`attrs::verify`].
fn all_equal(cx: &Cx, f: &fattr4) -> NfsResult<bool> {
    let cur = cx.cfh()?;
    let (a, export) = match &cur.node {
        Node::Pseudo(n) => (cx.srv.vfs.pseudo_attrs(*n), None),
        Node::Obj { export, path, .. } => {
            let e = cx.srv.vfs.export(*export)?;
            (obj_attrs(&e.store().stat(path)?), Some(e))
        }
    };
    common::with_attr_context(cx, cur, &a, export, None, |ctx| attrs::verify(f, &a, ctx))
        .map_err(NfsError::from_status)
}
