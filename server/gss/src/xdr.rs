//! A minimal XDR (RFC 4506) reader and writer over byte slices for the few
//! fixed structures of RPCSEC_GSS. Opaque fields are borrowed from the
//! input, never copied, and every variable-length field has a maximum
//! checked before it is used: a hostile length can neither allocate nor
//! read out of bounds.

/// Why bytes did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    /// The input ended inside a field.
    #[error("truncated XDR data")]
    Truncated,
    /// A variable-length field is longer than its bound.
    #[error("XDR opaque of {len} bytes exceeds its limit of {max}")]
    TooLong {
        /// The length the data claims.
        len: u32,
        /// The bound for this field.
        max: usize,
    },
    /// Bytes follow the structure.
    #[error("{0} unexpected bytes after the XDR data")]
    Trailing(usize),
}

/// Reads XDR items from the front of a slice.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// An unsigned int.
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        let (w, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(XdrError::Truncated)?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*w))
    }

    /// A variable-length opaque of at most `max` bytes, padding skipped
    /// (its content is not checked: RFC 4506 §3.9 asks senders for zeros,
    /// and being lenient costs nothing here).
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8], XdrError> {
        let len = self.u32()?;
        if len as usize > max {
            return Err(XdrError::TooLong { len, max });
        }
        let len = len as usize;
        let padded = len + pad(len);
        if self.rest.len() < padded {
            return Err(XdrError::Truncated);
        }
        let (field, rest) = self.rest.split_at(padded);
        self.rest = rest;
        Ok(&field[..len])
    }

    /// What has not been read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// Fails unless everything was read.
    pub fn end(&self) -> Result<(), XdrError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(XdrError::Trailing(n)),
        }
    }
}

/// Padding after `len` opaque bytes (to a multiple of four).
pub fn pad(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Appends an unsigned int.
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a variable-length opaque with its padding. The caller bounds
/// `bytes` (lengths past `u32::MAX` cannot be encoded and are a bug).
pub fn put_opaque(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(bytes);
    out.resize(out.len() + pad(bytes.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_round_trip_and_bounds() {
        for len in 0..9usize {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut out = Vec::new();
            put_opaque(&mut out, &data);
            assert_eq!(out.len() % 4, 0);
            let mut r = Reader::new(&out);
            assert_eq!(r.opaque(len).unwrap(), &data[..]);
            r.end().unwrap();
            if len > 0 {
                assert_eq!(
                    Reader::new(&out).opaque(len - 1),
                    Err(XdrError::TooLong {
                        len: len as u32,
                        max: len - 1
                    })
                );
                // Cut anywhere inside: truncated, never a panic.
                for cut in 0..out.len() {
                    assert_eq!(
                        Reader::new(&out[..cut]).opaque(len),
                        Err(XdrError::Truncated)
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_length_neither_allocates_nor_overreads() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4];
        assert!(matches!(
            Reader::new(&bytes).opaque(usize::MAX),
            Err(XdrError::Truncated)
        ));
        assert!(matches!(
            Reader::new(&bytes).opaque(400),
            Err(XdrError::TooLong { .. })
        ));
    }
}
