//! `Pack`/`Unpack` for the built-in types (RFC 4506 §4).
//!
//! There is deliberately no impl for `u8`: XDR has no one-byte type, a
//! byte string is `opaque` (one length, the bytes, padding), and with an
//! impl a `Vec<u8>` would silently encode as one 4-byte word per byte.
//! Byte strings go through [`pack_opaque_var`] and friends instead, and
//! `Vec<u8>::pack` does not compile. `usize`, floating point and `String`
//! have no impl either: the NFSv4 types use none of them.

use std::io::{Read, Write};

use super::{
    pack_array_fixed, pack_array_var, tally, unpack_array_fixed, unpack_array_var, Error, Pack,
    Result, Unpack,
};

/// `int`, `unsigned int` (§4.1, §4.2: four bytes, big-endian) and
/// `hyper`, `unsigned hyper` (§4.5: eight bytes, big-endian).
macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl<Out: Write> Pack<Out> for $t {
            #[inline]
            fn pack(&self, out: &mut Out) -> Result<usize> {
                let b = self.to_be_bytes();
                out.write_all(&b)?;
                Ok(b.len())
            }
        }

        impl<In: Read> Unpack<In> for $t {
            #[inline]
            fn unpack(input: &mut In) -> Result<(Self, usize)> {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                input.read_exact(&mut b)?;
                Ok((<$t>::from_be_bytes(b), b.len()))
            }
        }
    )*};
}

big_endian!(i32, u32, i64, u64);

/// `bool` (§4.4): an enum with FALSE = 0 and TRUE = 1.
impl<Out: Write> Pack<Out> for bool {
    #[inline]
    fn pack(&self, out: &mut Out) -> Result<usize> {
        u32::from(*self).pack(out)
    }
}

/// Any other value is [`Error::InvalidEnum`].
impl<In: Read> Unpack<In> for bool {
    #[inline]
    fn unpack(input: &mut In) -> Result<(Self, usize)> {
        let (v, n) = i32::unpack(input)?;
        match v {
            0 => Ok((false, n)),
            1 => Ok((true, n)),
            v => Err(Error::InvalidEnum(v)),
        }
    }
}

/// `void` (§4.16): no bytes. Lets "no result body" be a `Pack` type.
impl<Out: Write> Pack<Out> for () {
    #[inline]
    fn pack(&self, _out: &mut Out) -> Result<usize> {
        Ok(0)
    }
}

impl<In: Read> Unpack<In> for () {
    #[inline]
    fn unpack(_input: &mut In) -> Result<(Self, usize)> {
        Ok(((), 0))
    }
}

/// `T x[N]` (§4.12): the `N` elements, no count.
impl<Out: Write, T: Pack<Out>, const N: usize> Pack<Out> for [T; N] {
    fn pack(&self, out: &mut Out) -> Result<usize> {
        pack_array_fixed(self, out, T::pack)
    }
}

impl<In: Read, T: Unpack<In>, const N: usize> Unpack<In> for [T; N] {
    fn unpack(input: &mut In) -> Result<(Self, usize)> {
        unpack_array_fixed::<In, T, N>(input, T::unpack)
    }
}

/// `T x<>` (§4.13): the count, then the elements. Decoding reserves
/// memory only as elements arrive ([`unpack_array_var`]).
impl<Out: Write, T: Pack<Out>> Pack<Out> for Vec<T> {
    fn pack(&self, out: &mut Out) -> Result<usize> {
        pack_array_var(self, None, out, T::pack)
    }
}

impl<In: Read, T: Unpack<In>> Unpack<In> for Vec<T> {
    fn unpack(input: &mut In) -> Result<(Self, usize)> {
        unpack_array_var(input, None, T::unpack)
    }
}

/// `T *x` (§4.19): a boolean, then the value if present.
impl<Out: Write, T: Pack<Out>> Pack<Out> for Option<T> {
    fn pack(&self, out: &mut Out) -> Result<usize> {
        match self {
            None => false.pack(out),
            Some(v) => Ok(true.pack(out)? + v.pack(out)?),
        }
    }
}

impl<In: Read, T: Unpack<In>> Unpack<In> for Option<T> {
    fn unpack(input: &mut In) -> Result<(Self, usize)> {
        let mut sz = 0;
        if !tally(&mut sz, bool::unpack(input))? {
            return Ok((None, sz));
        }
        let v = tally(&mut sz, T::unpack(input))?;
        Ok((Some(v), sz))
    }
}

/// Encoded as the boxed value (optional data is `Option<Box<T>>`).
impl<Out: Write, T: Pack<Out>> Pack<Out> for Box<T> {
    #[inline]
    fn pack(&self, out: &mut Out) -> Result<usize> {
        T::pack(self, out)
    }
}

impl<In: Read, T: Unpack<In>> Unpack<In> for Box<T> {
    #[inline]
    fn unpack(input: &mut In) -> Result<(Self, usize)> {
        let (v, n) = T::unpack(input)?;
        Ok((Box::new(v), n))
    }
}
