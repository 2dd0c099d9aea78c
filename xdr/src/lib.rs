//! NFSv4 wire format for nfs4d: the XDR types of the protocol (generated
//! from `xdr/spec/*.x`, see [`nfs4`]), the COMPOUND request header
//! ([`compound`]), ONC RPC messages ([`rpc`]) and record marking
//! ([`record`]).
//!
//! All generated types implement [`codec::Pack`] and [`codec::Unpack`],
//! the crate's own XDR runtime; [`to_bytes`] and [`from_bytes`] are
//! shortcuts for whole buffers.

use std::io::Cursor;

use codec::{Pack, Unpack};

pub mod codec;
pub mod compound;
pub mod nfs4;
pub mod record;
pub mod rpc;

pub use nfs4::*;

/// Encodes `v`, or fails if it breaks an XDR bound (a `<N>` maximum, or a
/// union `default` variant carrying an explicit case's discriminant).
pub fn try_to_bytes<T: Pack<Vec<u8>>>(v: &T) -> codec::Result<Vec<u8>> {
    let mut out = Vec::new();
    v.pack(&mut out)?;
    Ok(out)
}

/// Encodes `v`.
///
/// # Panics
///
/// If `v` breaks an XDR bound, which is a bug of the caller; use
/// [`try_to_bytes`] for values built from untrusted data.
pub fn to_bytes<T: Pack<Vec<u8>>>(v: &T) -> Vec<u8> {
    match try_to_bytes(v) {
        Ok(b) => b,
        Err(e) => panic!("value does not fit its XDR definition: {e}"),
    }
}

/// Decodes a `T` from the start of `b`; returns it with the number of
/// bytes it took.
pub fn from_bytes_prefix<T>(b: &[u8]) -> codec::Result<(T, usize)>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>>,
{
    let mut input = Cursor::new(b);
    let (v, _) = T::unpack(&mut input)?;
    // The cursor, not the reported size, says what was really consumed.
    Ok((v, input.position() as usize))
}

/// Decodes a `T` that must span all of `b`: trailing bytes are an error.
pub fn from_bytes<T>(b: &[u8]) -> codec::Result<T>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>>,
{
    let (v, n) = from_bytes_prefix(b)?;
    if n != b.len() {
        return Err(codec::Error::TrailingBytes(b.len() - n));
    }
    Ok(v)
}

/// Types generated from `xdr/tests/spec/*.x`, exercising every construct
/// of the generator.
#[cfg(test)]
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all
)]
mod test_spec {
    include!(concat!(env!("OUT_DIR"), "/test_generated.rs"));
}

#[cfg(test)]
mod tests;
