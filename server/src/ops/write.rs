//! WRITE — not implemented yet.
#![allow(unused_imports, unused_variables)]

use nfs4d_xdr::nfs4::*;

use crate::compound::Cx;
use crate::error::{NfsError, NfsResult};

/// Placeholder.
pub fn run(_cx: &mut Cx, _a: WRITE4args) -> NfsResult<WRITE4resok> {
    Err(NfsError::NotSupp)
}
