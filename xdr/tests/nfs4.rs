//! Checks of the types generated from the real NFSv4 spec (`xdr/spec`):
//! the encodings other crates rely on, byte for byte.

use nfs4d_xdr::codec::Error;
use nfs4d_xdr::*;

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

#[test]
fn constants() {
    let max: u64 = NFS4_UINT64_MAX;
    let fhsize: u32 = NFS4_FHSIZE;
    let ok: i32 = NFS4_OK;
    assert_eq!((max, fhsize, ok), (u64::MAX, 128, 0));
    assert_eq!(nfsstat4::NFS4ERR_BADXDR as i32, 10036);
    assert_eq!(OP_PUTROOTFH, 24);
}

#[test]
fn stateid4_encoding() {
    let s = stateid4 {
        seqid: 0x0102_0304,
        other: *b"abcdefghijkl",
    };
    let bytes = to_bytes(&s);
    assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
    assert_eq!(&bytes[4..], b"abcdefghijkl");
    assert_eq!(from_bytes::<stateid4>(&bytes).unwrap(), s);
}

#[test]
fn compound_round_trip() {
    let args = COMPOUND4args {
        tag: b"t".to_vec(),
        minorversion: 1,
        argarray: vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_GETATTR(GETATTR4args {
                attr_request: vec![0x0010_011a, 0x0030_a23a],
            }),
            nfs_argop4::OP_GETFH,
        ],
    };
    let bytes = to_bytes(&args);
    let mut expected = words(&[1]);
    expected.extend(b"t\0\0\0");
    expected.extend(words(&[1, 3, 24, 9, 2, 0x0010_011a, 0x0030_a23a, 10]));
    assert_eq!(bytes, expected);
    assert_eq!(from_bytes::<COMPOUND4args>(&bytes).unwrap(), args);
}

#[test]
fn results_and_bounds() {
    let ok = GETFH4res::NFS4_OK(GETFH4resok { object: vec![7; 5] });
    assert_eq!(
        to_bytes(&ok),
        [0, 0, 0, 0, 0, 0, 0, 5, 7, 7, 7, 7, 7, 0, 0, 0]
    );
    let err = GETFH4res::default(nfsstat4::NFS4ERR_NOFILEHANDLE);
    assert_eq!(from_bytes::<GETFH4res>(&to_bytes(&err)).unwrap(), err);
    // nfs_fh4 is opaque<NFS4_FHSIZE>.
    let too_long = words(&[0, 129]);
    let e = from_bytes::<GETFH4res>(&too_long).unwrap_err();
    assert!(matches!(e, Error::InvalidLen(129)), "{e}");
    // An unknown operation number fails as an invalid enum value.
    let e = from_bytes::<nfs_argop4>(&words(&[99_999])).unwrap_err();
    assert!(matches!(e, Error::InvalidEnum(99_999)), "{e}");
}

#[test]
fn readdir_list_of_100k_entries_on_a_small_stack() {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut entries = None;
            for cookie in (3..100_003u64).rev() {
                entries = Some(Box::new(entry4 {
                    cookie,
                    name: format!("file{cookie}").into_bytes(),
                    attrs: fattr4::default(),
                    nextentry: entries,
                }));
            }
            let list = dirlist4 { entries, eof: true };
            let back: dirlist4 = from_bytes(&to_bytes(&list)).unwrap();
            assert!(back == list);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn union_default_is_the_first_case() {
    // `GETFH4res::default` names the `default` variant; the trait method
    // is reached through `Default::default()`.
    let r: GETFH4res = Default::default();
    assert_eq!(r, GETFH4res::NFS4_OK(GETFH4resok::default()));
    assert_eq!(r.discriminant(), nfsstat4::NFS4_OK);
}
