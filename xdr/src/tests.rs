//! Unit tests of the generated code, on the types generated from
//! `xdr/tests/spec/test.x` (module `test_spec`): encodings, round trips,
//! and the decoder's behaviour on hostile input.

use std::cell::Cell;
use std::fmt::Debug;
use std::io::Cursor;

use crate::codec::{Error, Pack, Unpack};
use proptest::prelude::*;

use crate::test_spec::*;
use crate::{from_bytes, from_bytes_prefix, to_bytes, try_to_bytes};

/// Packs `v`, checks the reported size, decodes it back and checks that
/// the value and size match. Returns the encoding.
fn round_trip<T>(v: &T) -> Vec<u8>
where
    T: Pack<Vec<u8>> + for<'a> Unpack<Cursor<&'a [u8]>> + PartialEq + Debug,
{
    let mut bytes = Vec::new();
    let n = v.pack(&mut bytes).expect("pack");
    assert_eq!(n, bytes.len(), "size reported by pack");
    assert_eq!(bytes.len() % 4, 0, "XDR is a multiple of 4 bytes");
    let (back, m) = from_bytes_prefix::<T>(&bytes).expect("unpack");
    assert_eq!(m, bytes.len());
    assert_eq!(&back, v);
    bytes
}

fn kind<T: Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("expected an error, decoded {v:?}"),
        Err(e) => e,
    }
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn stateid_n(n: u8) -> stateid {
    stateid {
        seqid: n.into(),
        other: [n; 12],
    }
}

/// A kitchen with every field set to something non-default.
fn full_kitchen() -> kitchen {
    kitchen {
        i: -7,
        u: 7,
        un: u32::MAX,
        h: i64::MIN,
        uh: u64::MAX,
        b: true,
        i32: -1,
        u64: 1 << 40,
        c: 3,
        handle: vec![1, 2, 3],
        verf: *b"verifier",
        nm: b"n\xffme".to_vec(), // not UTF-8: fine, strings are bytes
        data: vec![9; 13],
        mask: vec![1, 2, 0xffff_ffff],
        names: vec![b"a".to_vec(), b"bcdefgh".to_vec()],
        tri: [1, -2, 3],
        col: color::BLUE,
        ids: vec![stateid_n(1), stateid_n(2)],
        fixed_ids: [stateid_n(3), stateid_n(4)],
        maybe: Some(Box::new(stateid_n(5))),
        r#type: 42,
        optname: Some(Box::new(b"opt".to_vec())),
        inline_fixed: [1, 2, 3],
        inline_str: b"inline".to_vec(),
    }
}

#[test]
fn constants_are_typed_by_value() {
    let hexbig: u64 = HEXBIG;
    let hex32: u32 = HEX32;
    let neg: i32 = NEG;
    let neg_big: i64 = NEG_BIG;
    assert_eq!(hexbig, u64::MAX);
    assert_eq!(hex32, u32::MAX);
    assert_eq!(neg, -1);
    assert_eq!(neg_big, -5_000_000_000);
    assert_eq!(OCTAL, 8);
    // Enum members are also plain i32 constants.
    let blue: i32 = BLUE;
    assert_eq!(blue, 16);
    assert_eq!(OP_D, 6);
}

#[test]
fn enums() {
    assert_eq!(color::BLUE as i32, 16);
    assert_eq!(i32::from(status::ERR_B), 10002);
    assert_eq!(color::try_from(1).unwrap(), color::GREEN);
    assert_eq!(color::default(), color::RED);
    assert!(matches!(kind(color::try_from(2)), Error::InvalidEnum(2)));
    assert_eq!(round_trip(&status::ERR_A), words(&[10001]));
    assert!(matches!(
        kind(from_bytes::<color>(&words(&[3]))),
        Error::InvalidEnum(3)
    ));
}

#[test]
fn stateid_encoding() {
    let s = stateid {
        seqid: 1,
        other: [0xaa; 12],
    };
    let mut expected = vec![0, 0, 0, 1];
    expected.extend([0xaa; 12]);
    assert_eq!(round_trip(&s), expected);
    assert_eq!(to_bytes(&s), expected);
}

#[test]
fn opaque_is_padded_and_bitmaps_are_words() {
    // fh is opaque<5>: length 5, five bytes, three zero bytes of padding.
    let u = uflag::V1(vec![1, 2, 3, 4, 5]);
    assert_eq!(
        round_trip(&u),
        [0, 0, 0, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]
    );
    // A uint32_t<> is a count and words, not bytes; opaque<> of 0 bytes
    // is just its length.
    let m = masks {
        mask: vec![7, 8],
        data: vec![],
    };
    assert_eq!(round_trip(&m), words(&[2, 7, 8, 0]));
}

#[test]
fn structs_round_trip() {
    round_trip(&full_kitchen());
    round_trip(&kitchen::default());
    round_trip(&with_big { bf: [7; 40], x: 1 });
    round_trip(&holder {
        inner: holder_inner::TRUE(pair { a: 1, b: -1 }),
    });
    round_trip(&holder::default());
}

#[test]
fn unions() {
    // Enum discriminant with a `default: void` arm.
    assert_eq!(round_trip(&result::OK(stateid_n(1))).len(), 4 + 16);
    assert_eq!(round_trip(&result::default(status::ERR_A)), words(&[10001]));
    assert_eq!(result::default(status::ERR_B).discriminant(), status::ERR_B);
    // Shared case labels: one variant each.
    assert_eq!(round_trip(&opres::OP_A(5)), words(&[3, 5]));
    assert_eq!(round_trip(&opres::OP_B(5)), words(&[4, 5]));
    assert_eq!(round_trip(&opres::OP_C), words(&[5]));
    round_trip(&opres::OP_D(full_kitchen()));
    // uint32_t discriminant; labels from consts and another enum.
    assert_eq!(round_trip(&sec::FLAVOR_SYS(1000)), words(&[1, 1000]));
    assert_eq!(round_trip(&sec::BLUE), words(&[16]));
    assert_eq!(round_trip(&sec::default(99)), words(&[99]));
    round_trip(&sec::FLAVOR_GSS(vec![1, 2, 3, 4]));
    // int discriminant: numeric labels, default arm with a value.
    assert_eq!(round_trip(&num::V0), words(&[0]));
    assert_eq!(
        round_trip(&num::Vm1(-3)),
        words(&[u32::MAX, (-3i32) as u32])
    );
    assert_eq!(round_trip(&num::V7(-1)), words(&[7, u32::MAX, u32::MAX]));
    let d = num::default(5, b"hi".to_vec());
    assert_eq!(d.discriminant(), 5);
    assert_eq!(round_trip(&d), [0, 0, 0, 5, 0, 0, 0, 2, b'h', b'i', 0, 0]);
    // bool discriminant.
    assert_eq!(
        round_trip(&flag::TRUE(u64::MAX)),
        words(&[1, u32::MAX, u32::MAX])
    );
    assert_eq!(round_trip(&flag::FALSE), words(&[0]));
    assert_eq!(flag::default(), flag::TRUE(0));
}

#[test]
fn pack_rejects_values_breaking_their_bounds() {
    // fh is opaque<5>.
    assert!(matches!(
        kind(try_to_bytes(&uflag::V1(vec![0; 6]))),
        Error::InvalidLen(6)
    ));
    // namelist is name<2>, name is string<8>.
    let mut k = full_kitchen();
    k.names = vec![vec![], vec![], vec![]];
    assert!(matches!(kind(try_to_bytes(&k)), Error::InvalidLen(3)));
    k.names = vec![vec![b'x'; 9]];
    assert!(matches!(kind(try_to_bytes(&k)), Error::InvalidLen(9)));
    // A default variant carrying an explicit case's value would decode as
    // that case.
    assert!(matches!(
        kind(try_to_bytes(&sec::default(6))),
        Error::InvalidCase(6)
    ));
    assert!(matches!(
        kind(try_to_bytes(&result::default(status::OK))),
        Error::InvalidCase(0)
    ));
}

#[test]
#[should_panic(expected = "does not fit its XDR definition")]
fn to_bytes_panics_on_bound_violation() {
    to_bytes(&uflag::V1(vec![0; 6]));
}

#[test]
fn decode_rejects_invalid_values() {
    // Unknown case without a default arm.
    assert!(matches!(
        kind(from_bytes::<uflag>(&words(&[2]))),
        Error::InvalidCase(2)
    ));
    // Enum discriminant outside the enum.
    assert!(matches!(
        kind(from_bytes::<result>(&words(&[3]))),
        Error::InvalidEnum(3)
    ));
    // Booleans are 0 or 1, also as optional-pointer flags.
    assert!(matches!(
        kind(from_bytes::<flag>(&words(&[2]))),
        Error::InvalidEnum(2)
    ));
    assert!(matches!(
        kind(from_bytes::<dirlist>(&words(&[2]))),
        Error::InvalidEnum(2)
    ));
    // Length above the declared maximum (fh is opaque<5>).
    let bytes = words(&[1, 6, 0, 0]);
    assert!(matches!(
        kind(from_bytes::<uflag>(&bytes)),
        Error::InvalidLen(6)
    ));
    // Trailing bytes: from_bytes refuses, from_bytes_prefix reports.
    let bytes = words(&[0, 9]);
    assert!(matches!(
        kind(from_bytes::<num>(&bytes)),
        Error::TrailingBytes(4)
    ));
    assert_eq!(from_bytes_prefix::<num>(&bytes).unwrap(), (num::V0, 4));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = to_bytes(&opres::OP_D(full_kitchen()));
    for len in 0..bytes.len() {
        let r = from_bytes::<opres>(&bytes[..len]);
        assert!(
            matches!(&r, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{len}-byte prefix of {}: {r:?}",
            bytes.len()
        );
    }
}

thread_local! {
    /// Largest single allocation made by this thread while tracking.
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

/// Records the largest allocation per thread, so that tests can check
/// that a hostile count never turns into a big allocation.
struct TrackingAlloc;

// SAFETY: forwards to the system allocator; the bookkeeping uses a
// const-initialised thread-local, which never allocates.
unsafe impl std::alloc::GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = LARGEST_ALLOC.try_with(|m| m.set(m.get().max(layout.size())));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        let _ = LARGEST_ALLOC.try_with(|m| m.set(m.get().max(size)));
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOC: TrackingAlloc = TrackingAlloc;

/// Decodes `bytes` as `T`, expecting an error, and returns the largest
/// allocation made meanwhile.
fn largest_alloc_decoding<T>(bytes: &[u8]) -> usize
where
    T: for<'a> Unpack<Cursor<&'a [u8]>> + Debug,
{
    LARGEST_ALLOC.with(|m| m.set(0));
    let r = from_bytes::<T>(bytes);
    assert!(r.is_err());
    LARGEST_ALLOC.with(|m| m.get())
}

#[test]
fn huge_counts_do_not_allocate() {
    const LIMIT: usize = 64 * 1024;
    // opaque<> claiming 4 GiB, followed by 8 bytes.
    let bytes = words(&[FLAVOR_GSS, u32::MAX, 1, 2]);
    assert!(largest_alloc_decoding::<sec>(&bytes) < LIMIT);
    // uint32_t<> claiming 4 billion words.
    assert!(largest_alloc_decoding::<masks>(&words(&[u32::MAX, 1, 2])) < LIMIT);
    // tree: val, then kids<> claiming 4 billion trees.
    assert!(largest_alloc_decoding::<tree>(&words(&[1, u32::MAX, 2, 0])) < LIMIT);
    // kitchen.ids (stateid<>, at byte 92) claiming 4 billion stateids.
    let mut bytes = to_bytes(&kitchen::default());
    bytes[92..96].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(largest_alloc_decoding::<kitchen>(&bytes) < LIMIT);
}

/// Opaque data decodes whole around the reservation's steps, and a body
/// that stops after its first 16 KiB while claiming 4 GiB reserves no
/// more than the 2 MiB cap.
#[test]
fn opaque_data_is_reserved_once_it_arrives() {
    for len in [
        0usize,
        5,
        (16 << 10) - 1,
        16 << 10,
        (16 << 10) + 1,
        1 << 20,
        (3 << 20) + 3,
    ] {
        let body: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes.resize(bytes.len() + (4 - len % 4) % 4, 0);
        let mut cur = Cursor::new(&bytes[..]);
        let (got, n) = crate::codec::unpack_opaque_var(&mut cur, None).unwrap();
        assert!(got == body, "{len} bytes");
        assert_eq!(n, bytes.len());
    }
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend_from_slice(&vec![1; (16 << 10) + 8]);
    LARGEST_ALLOC.with(|m| m.set(0));
    let r = crate::codec::unpack_opaque_var(&mut Cursor::new(&bytes[..]), None);
    assert!(r.is_err());
    let largest = LARGEST_ALLOC.with(|m| m.get());
    assert!(largest <= 2 << 20, "reserved {largest} bytes");
}

/// Borrowed opaque data is the same slice the copying decoder returns,
/// consumes the same bytes, and a body or padding cut short is an error.
#[test]
fn borrowed_opaque_matches_the_copy() {
    for len in [0usize, 1, 3, 4, 70_001] {
        let body: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
        let mut bytes = (len as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        bytes.resize(bytes.len() + (4 - len % 4) % 4, 0);
        bytes.extend_from_slice(b"next");
        let mut a = Cursor::new(&bytes[..]);
        let (got, n) = crate::codec::unpack_opaque_borrowed(&mut a, None).unwrap();
        let mut b = Cursor::new(&bytes[..]);
        let (copied, m) = crate::codec::unpack_opaque_var(&mut b, None).unwrap();
        assert!(got == &copied[..] && got == &body[..], "{len} bytes");
        assert_eq!((n, a.position()), (m, b.position()));
        for cut in 1..=(4 - len % 4) % 4 + 1 {
            let short = &bytes[..bytes.len() - 4 - cut];
            let r = crate::codec::unpack_opaque_borrowed(&mut Cursor::new(short), None);
            assert!(r.is_err(), "{len} bytes cut by {cut}");
        }
    }
    let claims_more = [0u8, 0, 1, 0, 1, 2, 3, 4];
    assert!(
        crate::codec::unpack_opaque_borrowed(&mut Cursor::new(&claims_more[..]), None).is_err()
    );
    let too_long = [0u8, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        crate::codec::unpack_opaque_borrowed(&mut Cursor::new(&too_long[..]), Some(8)).is_err()
    );
}

/// Runs `f` on a thread with a `stack`-byte stack (server threads have
/// 2 MiB), so that unbounded recursion overflows and fails the test.
fn on_stack(stack: usize, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .expect("thread failed");
}

fn list(n: u64) -> entry {
    let mut head = None;
    for cookie in (1..n).rev() {
        head = Some(Box::new(entry {
            cookie,
            nm: cookie.to_string().into_bytes(),
            next: head,
        }));
    }
    entry {
        cookie: 0,
        nm: b"0".to_vec(),
        next: head,
    }
}

#[test]
fn long_lists_do_not_recurse() {
    // Far less than the server's 2 MiB: lists must not recurse at all.
    on_stack(256 * 1024, || {
        let l = dirlist {
            entries: Some(Box::new(list(100_000))),
            eof: true,
        };
        let bytes = to_bytes(&l);
        let back: dirlist = from_bytes(&bytes).unwrap();
        assert!(back == l);
        let copy = back.clone();
        assert!(copy == l);
        let mut shorter = list(100_000);
        shorter.next.as_mut().unwrap().next = None;
        assert!(*l.entries.as_ref().unwrap().as_ref() != shorter);
        use std::hash::{BuildHasher, RandomState};
        let h = RandomState::new();
        assert_eq!(h.hash_one(&l), h.hash_one(&copy));
        // Drops of l, back, copy, shorter also run on this stack.
    });
}

#[test]
fn small_list_wire_format_and_debug() {
    let l = list(2);
    // cookie 0, "0", more, cookie 1, "1", end
    let mut expected = words(&[0, 0, 1]);
    expected.extend([b'0', 0, 0, 0]);
    expected.extend(words(&[1, 0, 1, 1]));
    expected.extend([b'1', 0, 0, 0]);
    expected.extend(words(&[0]));
    assert_eq!(round_trip(&l), expected);
    assert_eq!(
        format!("{l:?}"),
        "[entry { cookie: 0, nm: [48], .. }, entry { cookie: 1, nm: [49], .. }]"
    );
}

#[test]
fn deep_recursion_is_refused() {
    // tree { val; kids<> } nested n deep: val, count 1, val, count 1, ...
    fn nested(n: u32) -> Vec<u8> {
        let mut b = Vec::new();
        for _ in 0..n {
            b.extend(words(&[7, 1]));
        }
        b.extend(words(&[7, 0]));
        b
    }
    // MAX_DEPTH levels take ~400 KiB in debug builds: half a server stack
    // leaves room for the callers.
    on_stack(1024 * 1024, || {
        let t: tree = from_bytes(&nested(50)).unwrap();
        assert_eq!(t.kids[0].kids[0].val, 7);
        let e = from_bytes::<tree>(&nested(100_000)).unwrap_err();
        assert!(matches!(e, Error::TooDeep), "{e}");
        assert!(e.to_string().contains("nested deeper than 128"), "{e}");
        // The guard unwinds: decoding works again afterwards.
        from_bytes::<tree>(&nested(50)).unwrap();
    });
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn arb_stateid() -> impl Strategy<Value = stateid> {
    (any::<u32>(), any::<[u8; 12]>()).prop_map(|(seqid, other)| stateid { seqid, other })
}

fn arb_num() -> impl Strategy<Value = num> {
    prop_oneof![
        Just(num::V0),
        any::<i32>().prop_map(num::Vm1),
        any::<i64>().prop_map(num::V7),
        (
            any::<i32>().prop_filter("not a case", |d| ![0, -1, 7].contains(d)),
            arb_bytes(20)
        )
            .prop_map(|(d, s)| num::default(d, s)),
    ]
}

fn arb_entry() -> impl Strategy<Value = entry> {
    proptest::collection::vec((any::<u64>(), arb_bytes(8)), 1..20).prop_map(|nodes| {
        let mut head: Option<Box<entry>> = None;
        for (cookie, nm) in nodes.into_iter().rev() {
            head = Some(Box::new(entry {
                cookie,
                nm,
                next: head,
            }));
        }
        *head.unwrap()
    })
}

proptest! {
    #[test]
    fn prop_round_trip_stateid(s in arb_stateid()) {
        round_trip(&s);
    }

    #[test]
    fn prop_round_trip_num(n in arb_num()) {
        round_trip(&n);
    }

    #[test]
    fn prop_round_trip_sec(d in any::<u32>(), uid in any::<u32>(), h in arb_bytes(40)) {
        round_trip(&sec::FLAVOR_SYS(uid));
        round_trip(&sec::FLAVOR_GSS(h));
        if ![1, 6, 16].contains(&d) {
            round_trip(&sec::default(d));
        }
    }

    #[test]
    fn prop_round_trip_list(l in arb_entry(), eof in any::<bool>()) {
        round_trip(&dirlist { entries: Some(Box::new(l)), eof });
    }

    #[test]
    fn prop_round_trip_masks(mask in proptest::collection::vec(any::<u32>(), 0..10), data in arb_bytes(30)) {
        round_trip(&masks { mask, data });
    }

    /// Arbitrary input never panics the decoder; what decodes re-encodes
    /// to the same bytes.
    #[test]
    fn prop_garbage_never_panics(bytes in arb_bytes(200)) {
        let _ = from_bytes::<opres>(&bytes);
        let _ = from_bytes::<tree>(&bytes);
        let _ = from_bytes::<holder>(&bytes);
        if let Ok((v, n)) = from_bytes_prefix::<dirlist>(&bytes) {
            // Padding bytes are not checked, so compare re-encodings.
            let again = to_bytes(&v);
            prop_assert_eq!(again.len(), n);
            prop_assert_eq!(from_bytes::<dirlist>(&again).unwrap(), v);
        }
    }
}
