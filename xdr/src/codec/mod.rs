//! The XDR runtime (RFC 4506): the [`Pack`]/[`Unpack`] traits every
//! generated type implements, their [`Error`], the impls for the built-in
//! types, and the bounded helpers the generated code calls for opaque
//! data, arrays and optional values.
//!
//! The traits have the shape of the `xdr-codec` crate's, which the
//! project used before (docs/xdr.md explains why it was set aside):
//! `pack` appends to any `Write` and returns the bytes written, `unpack`
//! reads from any `Read` and returns the value with the bytes read. The
//! module does no I/O of its own and needs nothing outside `std` but
//! `thiserror`.

use std::io::{Read, Write};

mod bounded;
mod depth;
mod error;
mod impls;

pub use bounded::*;
pub use depth::{DepthGuard, MAX_DEPTH};
pub use error::{Error, Result};

/// A value with an XDR encoding.
pub trait Pack<Out: Write> {
    /// Appends the encoding of `self` to `out` and returns its length in
    /// bytes. Fails with [`Error::InvalidLen`] or [`Error::InvalidCase`]
    /// when the value breaks its XDR definition, or on an I/O error of
    /// `out`; `out` may then hold part of the encoding.
    fn pack(&self, out: &mut Out) -> Result<usize>;
}

/// A value that can be decoded from its XDR encoding.
pub trait Unpack<In: Read>: Sized {
    /// Decodes a value from the front of `input` and returns it with the
    /// number of bytes it took. Truncated input is an [`Error::Io`] of
    /// kind `UnexpectedEof`; no input makes it panic or allocate more
    /// than the input can fill (see [`unpack_array_var`]).
    fn unpack(input: &mut In) -> Result<(Self, usize)>;
}
