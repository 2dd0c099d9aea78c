//! SAVEFH and RESTOREFH (RFC 8881 §18.27, §18.31). The current stateid
//! travels with the filehandle (RFC 8881 §16.2.3.1.2).

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// SAVEFH.
pub fn savefh(cx: &mut Cx) -> NfsResult<()> {
    cx.sfh = Some(cx.cfh()?.clone());
    cx.saved_stateid = cx.cur_stateid.clone();
    Ok(())
}

/// RESTOREFH: NFS4ERR_RESTOREFH when nothing was saved.
pub fn restorefh(cx: &mut Cx) -> NfsResult<()> {
    cx.cfh = Some(cx.sfh.clone().ok_or(NfsError::RestoreFh)?);
    cx.cur_stateid = cx.saved_stateid.clone();
    Ok(())
}
