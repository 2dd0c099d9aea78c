//! The header of a COMPOUND request: the fields of `COMPOUND4args` before
//! its operations (RFC 7530 §15.2, RFC 5661 §16.2).
//!
//! The server decodes a COMPOUND in two passes, as RFC 7530 §15.2.4
//! allows: this header first, then each operation just before it runs. A
//! header that does not decode is an RPC-level GARBAGE_ARGS; an operation
//! that does not decode is NFS4ERR_BADXDR in that operation's result,
//! after the earlier operations have run.

use std::io::Cursor;

use crate::codec::{Error, Result, Unpack};

/// Longest COMPOUND tag accepted, in bytes. The tag (a `utf8str_cs`) is
/// chosen by the client and echoed in the reply, never interpreted
/// (RFC 7530 §15.2.4); the XDR leaves it unbounded, so the server bounds
/// what one request can make it copy.
pub const MAX_TAG: usize = 1024;

// The length travels as an XDR unsigned int.
const _: () = assert!(MAX_TAG <= u32::MAX as usize);

/// The fields of `COMPOUND4args` that precede its operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompoundHeader<'a> {
    /// The tag, borrowed from the request, at most [`MAX_TAG`] bytes. Not
    /// checked for UTF-8: the server answers NFS4ERR_INVAL for that
    /// (RFC 5661 §16.2.3), which is not a decoding error.
    pub tag: &'a [u8],
    /// The minor version asked for; the server checks it
    /// (NFS4ERR_MINOR_VERS_MISMATCH).
    pub minorversion: u32,
    /// The number of operations the client says follow. Not checked: the
    /// server reports too many at the first operation (NFS4ERR_RESOURCE,
    /// NFS4ERR_TOO_MANY_OPS) and too few when the input runs out
    /// (NFS4ERR_BADXDR), and allocates nothing from it.
    pub count: u32,
}

/// Decodes the COMPOUND header at the position of `cur` and leaves `cur`
/// at the first operation (the `argarray` elements).
///
/// Fails with [`Error::InvalidLen`] (the claimed length) when the tag is
/// longer than [`MAX_TAG`], before looking at its bytes, and with an
/// [`Error::Io`] of kind `UnexpectedEof` when the input ends inside the
/// header; `cur`'s position is then unspecified. The tag's padding is
/// skipped without checking that it is zero, as everywhere in the codec.
/// Nothing is allocated.
pub fn decode_header<'a>(cur: &mut Cursor<&'a [u8]>) -> Result<CompoundHeader<'a>> {
    let (len, _) = u32::unpack(cur)?;
    let len = usize::try_from(len).map_err(|_| Error::InvalidLen(usize::MAX))?;
    if len > MAX_TAG {
        return Err(Error::InvalidLen(len));
    }
    let buf: &'a [u8] = cur.get_ref();
    // The tag's body and its padding to a multiple of four bytes.
    let padded = len + (4 - len % 4) % 4;
    let start = usize::try_from(cur.position()).map_err(|_| eof())?;
    let end = start.checked_add(padded).ok_or_else(eof)?;
    if end > buf.len() {
        return Err(eof());
    }
    let tag = &buf[start..start + len];
    cur.set_position(end as u64);
    let (minorversion, _) = u32::unpack(cur)?;
    let (count, _) = u32::unpack(cur)?;
    Ok(CompoundHeader {
        tag,
        minorversion,
        count,
    })
}

fn eof() -> Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::codec::unpack_opaque_var;
    use crate::nfs4::{nfs_argop4, COMPOUND4args, GETATTR4args};

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn is_eof<T: std::fmt::Debug>(r: &Result<T>) -> bool {
        matches!(r, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof)
    }

    fn compound(tag: &[u8], minor: u32, ops: Vec<nfs_argop4>) -> Vec<u8> {
        crate::to_bytes(&COMPOUND4args {
            tag: tag.to_vec(),
            minorversion: minor,
            argarray: ops,
        })
    }

    #[test]
    fn decodes_the_header_and_stops_at_the_first_operation() {
        let ops = vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_GETATTR(GETATTR4args {
                attr_request: vec![1, 2],
            }),
        ];
        let bytes = compound(b"tag", 1, ops.clone());
        let mut cur = Cursor::new(&bytes[..]);
        let h = decode_header(&mut cur).unwrap();
        // 4 (length) + 4 ("tag" and one byte of padding) + 4 + 4.
        assert_eq!(cur.position(), 16);
        // The tag borrows the request, not the cursor, which goes on
        // decoding the operations meanwhile.
        for op in &ops {
            assert_eq!(&nfs_argop4::unpack(&mut cur).unwrap().0, op);
        }
        assert_eq!(cur.position() as usize, bytes.len());
        assert_eq!(
            h,
            CompoundHeader {
                tag: b"tag",
                minorversion: 1,
                count: 2
            }
        );
    }

    #[test]
    fn every_padding_length() {
        for len in 0..=8 {
            let tag = vec![b'x'; len];
            let bytes = compound(&tag, 0, vec![]);
            let mut cur = Cursor::new(&bytes[..]);
            let h = decode_header(&mut cur).unwrap();
            assert_eq!(h.tag, &tag[..]);
            assert_eq!(cur.position() as usize, bytes.len(), "tag of {len} bytes");
        }
        // Padding bytes are not checked.
        let mut bytes = words(&[1]);
        bytes.extend([b'a', 0xff, 0xff, 0xff]);
        bytes.extend(words(&[2, 0]));
        let h = decode_header(&mut Cursor::new(&bytes[..])).unwrap();
        assert_eq!((h.tag, h.minorversion, h.count), (&b"a"[..], 2, 0));
    }

    #[test]
    fn tag_length_is_bounded_before_reading_it() {
        let ok = compound(&[b'a'; MAX_TAG], 0, vec![]);
        assert_eq!(
            decode_header(&mut Cursor::new(&ok[..])).unwrap().tag.len(),
            MAX_TAG
        );
        let long = compound(&[b'a'; MAX_TAG + 1], 0, vec![]);
        assert!(matches!(
            decode_header(&mut Cursor::new(&long[..])),
            Err(Error::InvalidLen(1025))
        ));
        // Only the length word: refused for its value, not for the EOF.
        for claimed in [MAX_TAG as u32 + 1, u32::MAX] {
            let bytes = words(&[claimed]);
            assert!(matches!(
                decode_header(&mut Cursor::new(&bytes[..])),
                Err(Error::InvalidLen(n)) if n == claimed as usize
            ));
        }
    }

    #[test]
    fn every_truncation_is_eof() {
        let bytes = compound(b"seven!!", 2, vec![]);
        for len in 0..bytes.len() {
            let r = decode_header(&mut Cursor::new(&bytes[..len]));
            assert!(is_eof(&r), "{len}-byte prefix: {r:?}");
        }
    }

    #[test]
    fn counts_are_returned_unchecked() {
        let bytes = words(&[0, 0, u32::MAX]);
        let h = decode_header(&mut Cursor::new(&bytes[..])).unwrap();
        assert_eq!(h.count, u32::MAX);
    }

    #[test]
    fn decodes_from_the_cursor_position() {
        let mut bytes = words(&[7]);
        bytes.extend(compound(b"ab", 1, vec![nfs_argop4::OP_GETFH]));
        let mut cur = Cursor::new(&bytes[..]);
        cur.set_position(4);
        let h = decode_header(&mut cur).unwrap();
        assert_eq!((h.tag, h.minorversion, h.count), (&b"ab"[..], 1, 1));
        assert_eq!(cur.position(), 4 + 16);
        // A position past the end is EOF, not a panic.
        let mut cur = Cursor::new(&bytes[..]);
        cur.set_position(u64::MAX);
        assert!(is_eof(&decode_header(&mut cur)));
        let short = words(&[4]);
        let mut cur = Cursor::new(&short[..]);
        assert!(is_eof(&decode_header(&mut cur)));
    }

    /// The decoder the header replaced: the codec's bounded opaque, then
    /// two words.
    fn reference(b: &[u8]) -> (Result<(Vec<u8>, u32, u32)>, u64) {
        let mut cur = Cursor::new(b);
        let r = (|| {
            let (tag, _) = unpack_opaque_var(&mut cur, Some(MAX_TAG as u32))?;
            let (minor, _) = u32::unpack(&mut cur)?;
            let (count, _) = u32::unpack(&mut cur)?;
            Ok((tag, minor, count))
        })();
        (r, cur.position())
    }

    /// Mostly small words, so that tag lengths are often plausible.
    fn header_like() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![4 => 0u32..12, 1 => 1020u32..1030, 1 => any::<u32>()],
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(len, rest)| {
                let mut b = len.to_be_bytes().to_vec();
                b.extend(rest);
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Same answer as the codec on any input: the same fields and
        /// position, or the same kind of error.
        #[test]
        fn agrees_with_the_codec(b in header_like()) {
            let mut cur = Cursor::new(&b[..]);
            let ours = decode_header(&mut cur);
            let (want, at) = reference(&b);
            match (ours, want) {
                (Ok(h), Ok((tag, minor, count))) => {
                    prop_assert_eq!((h.tag, h.minorversion, h.count), (&tag[..], minor, count));
                    prop_assert_eq!(cur.position(), at);
                }
                (Err(Error::InvalidLen(a)), Err(Error::InvalidLen(b))) => prop_assert_eq!(a, b),
                (Err(Error::Io(a)), Err(Error::Io(b))) => prop_assert_eq!(a.kind(), b.kind()),
                (a, b) => prop_assert!(false, "decode_header {:?}, codec {:?}", a, b),
            }
        }
    }
}
