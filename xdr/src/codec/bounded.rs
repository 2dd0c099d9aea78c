//! Bounded encoders and decoders for opaque data, arrays and optional
//! values, called by the generated code.
//!
//! The generator resolves each field's wire shape (through typedef
//! chains) and calls the matching function here, passing closures for the
//! element codec, instead of relying on trait dispatch: an `opaque<N>` and
//! a `uint32_t<N>` are both `Vec`s in Rust but differ on the wire, and the
//! `<N>` maximum must be checked. Decoding never trusts a length or count
//! from the wire for allocation, and a short input is an error, never a
//! hang. Every function returns the number of bytes written or read, as
//! [`Pack`] and [`Unpack`] do.

use std::io::{Read, Write};

use super::{Error, Pack, Result, Unpack};

/// Upper bound, in bytes, of what a variable-length array decoder
/// reserves before it has seen the elements. The wire count only says how
/// many elements the peer *claims* to send; trusting it would let 4 bytes
/// of input allocate gigabytes. Beyond this, the `Vec` grows as elements
/// actually arrive.
const PREALLOC_BYTES: usize = 16 * 1024;

/// Upper bound, in elements, of the same reservation (for elements of
/// 16 bytes or less, which PREALLOC_BYTES alone would let reach 16 Ki).
const PREALLOC_ELEMS: usize = 1024;

/// Opaque data whose first [`PREALLOC_BYTES`] did arrive has the rest of
/// its claimed length reserved at once, up to this many bytes in all: a
/// 1 MiB WRITE is then copied out of the input once, instead of through a
/// series of doubling reallocations (two more copies of every byte; a
/// quarter of the server's CPU on sequential writes). A peer that sends
/// 16 KiB and claims more makes the decoder reserve at most this much.
const PREALLOC_OPAQUE_MAX: usize = 2 << 20;

const _: () = assert!(PREALLOC_BYTES <= PREALLOC_OPAQUE_MAX);

/// Zero bytes used to pad opaque data to a multiple of 4.
const ZEROS: [u8; 4] = [0; 4];

/// Bytes of padding after `len` bytes of opaque data.
fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Adds the size of a decoded item to `sz` and returns the item; keeps
/// the generated `Unpack` impls to one expression per field.
#[inline]
pub fn tally<T>(sz: &mut usize, r: Result<(T, usize)>) -> Result<T> {
    let (v, n) = r?;
    *sz += n;
    Ok(v)
}

/// Checks a length against an optional XDR maximum (`<N>`).
fn check_max(len: usize, max: Option<u32>) -> Result<()> {
    let limit = max.map_or(u32::MAX as usize, |m| m as usize);
    if len > limit {
        return Err(Error::InvalidLen(len));
    }
    Ok(())
}

/// Reads and discards the padding after `len` bytes of opaque data.
/// The pad bytes' values are not checked (as in most NFS servers).
fn skip_padding<In: Read>(input: &mut In, len: usize) -> Result<usize> {
    let mut pad = [0u8; 4];
    let p = pad_len(len);
    input.read_exact(&mut pad[..p])?;
    Ok(p)
}

/// Packs the 4-byte length prefix of a variable-length item.
fn pack_len<Out: Write>(len: usize, max: Option<u32>, out: &mut Out) -> Result<usize> {
    check_max(len, max)?;
    // check_max bounded `len` by u32::MAX.
    (len as u32).pack(out)
}

/// Unpacks the 4-byte length prefix of a variable-length item and checks
/// it against the declared maximum before anything is allocated.
fn unpack_len<In: Read>(input: &mut In, max: Option<u32>) -> Result<(usize, usize)> {
    let (len, n) = u32::unpack(input)?;
    let len = usize::try_from(len).map_err(|_| Error::InvalidLen(usize::MAX))?;
    check_max(len, max)?;
    Ok((len, n))
}

/// `opaque x[N]`: the bytes, then padding.
pub fn pack_opaque_fixed<Out: Write>(v: &[u8], out: &mut Out) -> Result<usize> {
    out.write_all(v)?;
    let p = pad_len(v.len());
    out.write_all(&ZEROS[..p])?;
    Ok(v.len() + p)
}

/// `opaque x[N]`: exactly `N` bytes, then padding; EOF is an error.
pub fn unpack_opaque_fixed<In: Read, const N: usize>(input: &mut In) -> Result<([u8; N], usize)> {
    let mut v = [0u8; N];
    input.read_exact(&mut v)?;
    let p = skip_padding(input, N)?;
    Ok((v, N + p))
}

/// `opaque x<max>` and `string x<max>`: length, bytes, padding.
/// Fails with `InvalidLen` if `v` is longer than `max`.
pub fn pack_opaque_var<Out: Write>(v: &[u8], max: Option<u32>, out: &mut Out) -> Result<usize> {
    let n = pack_len(v.len(), max, out)?;
    Ok(n + pack_opaque_fixed(v, out)?)
}

/// `opaque x<max>` and `string x<max>`. The length is checked against
/// `max` first; the body is read through `Read::take`, so memory grows
/// with the bytes actually received (the first 16 KiB, then the rest of
/// the claimed length up to [`PREALLOC_OPAQUE_MAX`]), and a short body is
/// an error. Strings are not checked for UTF-8: NFS leaves that to the
/// server.
pub fn unpack_opaque_var<In: Read>(input: &mut In, max: Option<u32>) -> Result<(Vec<u8>, usize)> {
    let (len, n) = unpack_len(input, max)?;
    let first = len.min(PREALLOC_BYTES);
    let mut v = Vec::with_capacity(first);
    input.by_ref().take(first as u64).read_to_end(&mut v)?;
    if v.len() == first && len > first {
        v.reserve_exact(len.min(PREALLOC_OPAQUE_MAX) - first);
        input.take((len - first) as u64).read_to_end(&mut v)?;
    }
    if v.len() != len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    let p = skip_padding(input, len)?;
    Ok((v, n + len + p))
}

/// `opaque x<max>` read from memory without a copy: the body as a slice
/// of the input, which must hold all of it (and its padding), else
/// `UnexpectedEof`. For bulk data such as WRITE's, which would otherwise
/// be copied out of the request only to be handed on as a slice.
pub fn unpack_opaque_borrowed<'a>(
    input: &mut std::io::Cursor<&'a [u8]>,
    max: Option<u32>,
) -> Result<(&'a [u8], usize)> {
    let (len, n) = unpack_len(input, max)?;
    let buf: &'a [u8] = input.get_ref();
    let at = usize::try_from(input.position()).unwrap_or(usize::MAX);
    let end = at.checked_add(len).filter(|&end| end <= buf.len());
    let Some(end) = end else {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    };
    input.set_position(end as u64);
    let p = skip_padding(input, len)?;
    Ok((&buf[at..end], n + len + p))
}

/// `T x[N]`: the `N` elements, no count.
pub fn pack_array_fixed<Out: Write, T>(
    v: &[T],
    out: &mut Out,
    f: impl Fn(&T, &mut Out) -> Result<usize>,
) -> Result<usize> {
    v.iter().try_fold(0, |sz, e| Ok(sz + f(e, out)?))
}

/// `T x[N]`: exactly `N` elements (`N` comes from the spec, not the wire).
pub fn unpack_array_fixed<In: Read, T, const N: usize>(
    input: &mut In,
    mut f: impl FnMut(&mut In) -> Result<(T, usize)>,
) -> Result<([T; N], usize)> {
    let mut sz = 0;
    let mut v = Vec::with_capacity(N);
    for _ in 0..N {
        v.push(tally(&mut sz, f(input))?);
    }
    // Cannot fail: exactly N elements were pushed.
    let arr = <[T; N]>::try_from(v).map_err(|v| Error::InvalidLen(v.len()))?;
    Ok((arr, sz))
}

/// `T x<max>`: count, then the elements.
/// Fails with `InvalidLen` if `v` is longer than `max`.
pub fn pack_array_var<Out: Write, T>(
    v: &[T],
    max: Option<u32>,
    out: &mut Out,
    f: impl Fn(&T, &mut Out) -> Result<usize>,
) -> Result<usize> {
    let n = pack_len(v.len(), max, out)?;
    Ok(n + pack_array_fixed(v, out, f)?)
}

/// `T x<max>`: the count is checked against `max` before decoding, and
/// at most `PREALLOC_BYTES` (and `PREALLOC_ELEMS` elements) are reserved
/// up front whatever the count claims; a truncated array fails at the
/// first missing element.
pub fn unpack_array_var<In: Read, T>(
    input: &mut In,
    max: Option<u32>,
    mut f: impl FnMut(&mut In) -> Result<(T, usize)>,
) -> Result<(Vec<T>, usize)> {
    let (count, mut sz) = unpack_len(input, max)?;
    let prealloc = PREALLOC_BYTES / std::mem::size_of::<T>().max(1);
    let mut v = Vec::with_capacity(count.min(prealloc).min(PREALLOC_ELEMS));
    for _ in 0..count {
        v.push(tally(&mut sz, f(input))?);
    }
    Ok((v, sz))
}

/// `T *x`: a boolean, then the value if present.
pub fn pack_optional<Out: Write, T>(
    v: &Option<Box<T>>,
    out: &mut Out,
    f: impl Fn(&T, &mut Out) -> Result<usize>,
) -> Result<usize> {
    match v.as_deref() {
        None => false.pack(out),
        Some(v) => Ok(true.pack(out)? + f(v, out)?),
    }
}

/// `T *x`: a boolean (0 or 1, anything else is `InvalidEnum`), then the
/// value if present.
pub fn unpack_optional<In: Read, T>(
    input: &mut In,
    f: impl FnOnce(&mut In) -> Result<(T, usize)>,
) -> Result<(Option<Box<T>>, usize)> {
    let mut sz = 0;
    if tally(&mut sz, bool::unpack(input))? {
        let v = tally(&mut sz, f(input))?;
        Ok((Some(Box::new(v)), sz))
    } else {
        Ok((None, sz))
    }
}
