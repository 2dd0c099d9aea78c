//! VERIFY — not implemented yet.
#![allow(unused_imports, unused_variables)]

use nfs4d_xdr::nfs4::*;

use crate::compound::Cx;
use crate::error::{NfsError, NfsResult};

/// Placeholder.
pub fn verify(_cx: &mut Cx, _a: VERIFY4args) -> NfsResult<()> {
    Err(NfsError::NotSupp)
}

/// Placeholder.
pub fn nverify(_cx: &mut Cx, _a: NVERIFY4args) -> NfsResult<()> {
    Err(NfsError::NotSupp)
}
