//! The nesting limit for recursive types.

use std::cell::Cell;

use super::{Error, Result};

/// Deepest nesting of recursive types accepted by the decoder (see
/// [`DepthGuard`]).
pub const MAX_DEPTH: u32 = 128;

thread_local! {
    /// Current nesting of recursive types being decoded on this thread.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Bounds the decoding recursion of types that can contain themselves
/// other than through a linked-list tail (those are decoded iteratively):
/// without it, a few bytes of hostile input per level could overflow the
/// stack of a server thread. The generated `Unpack` of such types holds a
/// guard while decoding; more than [`MAX_DEPTH`] nested guards is
/// [`Error::TooDeep`].
pub struct DepthGuard(());

impl DepthGuard {
    /// Enters one level of nesting, or fails if too deep.
    pub fn enter() -> Result<DepthGuard> {
        DEPTH.with(|d| {
            if d.get() >= MAX_DEPTH {
                return Err(Error::TooDeep);
            }
            d.set(d.get() + 1);
            Ok(DepthGuard(()))
        })
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}
