//! GETATTR (RFC 8881 §18.7).

use nfs4d_xdr::nfs4::{GETATTR4args, GETATTR4resok};

use super::common;
use crate::compound::Cx;
use crate::error::NfsResult;

/// GETATTR: the requested attributes that are supported.
pub fn run(cx: &mut Cx, a: GETATTR4args) -> NfsResult<GETATTR4resok> {
    let cur = cx.cfh()?.clone();
    Ok(GETATTR4resok {
        obj_attributes: common::encode_attrs(cx, &cur, &a.attr_request)?,
    })
}
