//! The runtime's codecs for built-in types against those of `xdr-codec`
//! 0.4.4, the crate they replace (a dev-dependency kept only for this
//! comparison, see docs/xdr.md): the same bytes for every value, and for
//! every input the same decoded value and size, or the same kind of error.
//!
//! Inputs of the container types keep their counts small: `xdr-codec`
//! reserves `count` elements before reading any, so a large count would
//! make the reference, not the code under test, run out of memory.

use std::fmt::Debug;
use std::io::Cursor;

use nfs4d_xdr::codec::{self, Pack, Unpack};
use proptest::collection::vec;
use proptest::prelude::*;

/// Kinds of error both runtimes can report, with the payload that must
/// agree.
#[derive(Debug, PartialEq)]
enum Kind {
    Eof,
    InvalidEnum(i32),
    InvalidCase(i32),
    InvalidLen,
    Other(String),
}

fn ours_kind(e: &codec::Error) -> Kind {
    match e {
        codec::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Kind::Eof,
        codec::Error::InvalidEnum(v) => Kind::InvalidEnum(*v),
        codec::Error::InvalidCase(v) => Kind::InvalidCase(*v),
        // xdr-codec reports the limit where we report the length.
        codec::Error::InvalidLen(_) => Kind::InvalidLen,
        e => Kind::Other(e.to_string()),
    }
}

fn theirs_kind(e: &xdr_codec::Error) -> Kind {
    match e.kind() {
        xdr_codec::ErrorKind::IOError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Kind::Eof
        }
        xdr_codec::ErrorKind::InvalidEnum(v) => Kind::InvalidEnum(*v),
        xdr_codec::ErrorKind::InvalidCase(v) => Kind::InvalidCase(*v),
        xdr_codec::ErrorKind::InvalidLen(_) => Kind::InvalidLen,
        e => Kind::Other(e.to_string()),
    }
}

/// Both encodings of `v` are identical and report their length.
fn same_pack<T>(v: &T) -> Result<Vec<u8>, TestCaseError>
where
    T: Pack<Vec<u8>> + xdr_codec::Pack<Vec<u8>> + Debug,
{
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let na = Pack::pack(v, &mut a).map_err(|e| TestCaseError::fail(format!("ours: {e}")))?;
    let nb = xdr_codec::Pack::pack(v, &mut b)
        .map_err(|e| TestCaseError::fail(format!("xdr-codec: {e}")))?;
    prop_assert_eq!(&a, &b, "encodings of {:?}", v);
    prop_assert_eq!(na, a.len());
    prop_assert_eq!(nb, b.len());
    Ok(a)
}

/// Both decoders give the same value and size, or the same kind of error.
fn same_unpack<T>(input: &[u8]) -> Result<(), TestCaseError>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>>
        + for<'a> xdr_codec::Unpack<Cursor<&'a [u8]>>
        + PartialEq
        + Debug,
{
    let ours = <T as Unpack<_>>::unpack(&mut Cursor::new(input));
    let theirs = <T as xdr_codec::Unpack<_>>::unpack(&mut Cursor::new(input));
    match (ours, theirs) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
        (Err(a), Err(b)) => prop_assert_eq!(ours_kind(&a), theirs_kind(&b)),
        (a, b) => prop_assert!(false, "ours {:?}, xdr-codec {:?}", a, b),
    }
    Ok(())
}

/// Words that are mostly small, so that booleans, option flags and counts
/// are often valid; `max` bounds every word (see the module comment).
fn small_words(max: u32) -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![3 => Just(0u32), 3 => Just(1u32), 2 => 0..=max],
        0..12,
    )
    .prop_flat_map(|ws| {
        let bytes: Vec<u8> = ws.iter().flat_map(|w| w.to_be_bytes()).collect();
        let len = bytes.len();
        // Cut anywhere, so truncation inside a word is tried too.
        (Just(bytes), 0..=len)
    })
    .prop_map(|(bytes, cut)| bytes[..cut].to_vec())
}

#[test]
fn edge_values_encode_alike() {
    for v in [0, 1, -1, i32::MIN, i32::MAX] {
        same_pack(&v).unwrap();
    }
    for v in [0, 1, u32::MAX, 0x0102_0304] {
        same_pack(&v).unwrap();
    }
    for v in [0, -1, i64::MIN, i64::MAX] {
        same_pack(&v).unwrap();
    }
    for v in [0, u64::MAX, 0x0102_0304_0506_0708] {
        same_pack(&v).unwrap();
    }
    assert_eq!(same_pack(&true).unwrap(), [0, 0, 0, 1]);
    assert_eq!(same_pack(&false).unwrap(), [0, 0, 0, 0]);
    assert_eq!(same_pack(&()).unwrap(), Vec::<u8>::new());
    assert_eq!(same_pack(&Vec::<u32>::new()).unwrap(), [0, 0, 0, 0]);
    assert_eq!(same_pack(&None::<u64>).unwrap(), [0, 0, 0, 0]);
    assert_eq!(
        same_pack(&Some(Box::new(7u32))).unwrap(),
        [0, 0, 0, 1, 0, 0, 0, 7]
    );
}

#[test]
fn booleans_other_than_0_and_1_are_refused_alike() {
    for w in [2u32, 0x8000_0000, u32::MAX] {
        same_unpack::<bool>(&w.to_be_bytes()).unwrap();
        same_unpack::<Option<u32>>(&w.to_be_bytes()).unwrap();
    }
    assert!(matches!(
        <bool as Unpack<_>>::unpack(&mut Cursor::new(&[0u8, 0, 0, 2][..])),
        Err(codec::Error::InvalidEnum(2))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn scalars_encode_alike(a in any::<i32>(), b in any::<u32>(), c in any::<i64>(), d in any::<u64>(), e in any::<bool>()) {
        same_pack(&a)?;
        same_pack(&b)?;
        same_pack(&c)?;
        same_pack(&d)?;
        same_pack(&e)?;
    }

    #[test]
    fn scalars_decode_alike(input in vec(any::<u8>(), 0..12)) {
        same_unpack::<i32>(&input)?;
        same_unpack::<u32>(&input)?;
        same_unpack::<i64>(&input)?;
        same_unpack::<u64>(&input)?;
        same_unpack::<bool>(&input)?;
        same_unpack::<()>(&input)?;
    }

    #[test]
    fn containers_encode_alike(
        words in vec(any::<u32>(), 0..8),
        hypers in vec(any::<i64>(), 0..8),
        nested in vec(vec(any::<u32>(), 0..4), 0..4),
        flags in vec(proptest::option::of(any::<bool>()), 0..6),
        opt in proptest::option::of(vec(any::<u32>(), 0..4)),
    ) {
        same_pack(&words)?;
        same_pack(&hypers)?;
        same_pack(&nested)?;
        same_pack(&flags)?;
        same_pack(&opt)?;
        same_pack(&opt.clone().map(Box::new))?;
    }

    #[test]
    fn containers_decode_alike(input in small_words(16)) {
        same_unpack::<Vec<u32>>(&input)?;
        same_unpack::<Vec<i64>>(&input)?;
        same_unpack::<Vec<Vec<u32>>>(&input)?;
        same_unpack::<Vec<Option<bool>>>(&input)?;
        same_unpack::<Option<u64>>(&input)?;
        same_unpack::<Option<Box<Vec<u32>>>>(&input)?;
    }

    /// `xdr-codec` has no impl for arrays (`[T; N].pack()` would pick its
    /// counted slice impl); its fixed-array functions are the reference.
    #[test]
    fn fixed_arrays_match_the_reference_functions(v in any::<[u32; 3]>(), input in vec(any::<u8>(), 0..16)) {
        let mut ours = Vec::new();
        Pack::pack(&v, &mut ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut theirs = Vec::new();
        xdr_codec::pack_array(&v, 3, &mut theirs, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&ours, &theirs);

        let a = <[u32; 3] as Unpack<_>>::unpack(&mut Cursor::new(&input[..]));
        let mut arr = [0u32; 3];
        let b = xdr_codec::unpack_array(&mut Cursor::new(&input[..]), &mut arr, 3, None);
        match (a, b) {
            (Ok((x, n)), Ok(m)) => prop_assert_eq!((x, n), (arr, m)),
            (Err(x), Err(y)) => prop_assert_eq!(ours_kind(&x), theirs_kind(&y)),
            (x, y) => prop_assert!(false, "ours {:?}, xdr-codec {:?}", x, y),
        }
    }

    /// The opaque encoders were always this crate's own; they are checked
    /// against the reference's too (decoding differs on purpose: the
    /// reference does not notice a truncated body).
    #[test]
    fn opaque_encodes_alike(data in vec(any::<u8>(), 0..40)) {
        let mut ours = Vec::new();
        codec::pack_opaque_var(&data, None, &mut ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut theirs = Vec::new();
        xdr_codec::pack_opaque_flex(&data, None, &mut theirs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&ours, &theirs);

        let mut ours = Vec::new();
        codec::pack_opaque_fixed(&data, &mut ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut theirs = Vec::new();
        xdr_codec::pack_opaque_array(&data, data.len(), &mut theirs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&ours, &theirs);
    }
}
