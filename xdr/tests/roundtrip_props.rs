//! Property tests of the NFSv4 XDR round trip (the `cargo test` companion
//! of the `roundtrip` fuzz target in fuzz/):
//!
//! * value → bytes → value: random COMPOUND arguments and results built
//!   from common operations encode, take exactly their encoded size to
//!   decode, and decode to an equal value;
//! * bytes → value → bytes → value: mutations of valid encodings either
//!   fail to decode or survive a second round trip unchanged;
//! * no input makes a decoder panic.

use std::fmt::Debug;
use std::io::Cursor;

use nfs4d_xdr::codec::{Pack, Unpack};
use nfs4d_xdr::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn arb_stateid() -> impl Strategy<Value = stateid4> {
    (any::<u32>(), any::<[u8; 12]>()).prop_map(|(seqid, other)| stateid4 { seqid, other })
}

fn arb_fattr() -> impl Strategy<Value = fattr4> {
    (vec(any::<u32>(), 0..4), bytes(40)).prop_map(|(attrmask, attr_vals)| fattr4 {
        attrmask,
        attr_vals,
    })
}

fn arb_createhow() -> impl Strategy<Value = createhow4> {
    prop_oneof![
        arb_fattr().prop_map(createhow4::UNCHECKED4),
        arb_fattr().prop_map(createhow4::GUARDED4),
        any::<[u8; 8]>().prop_map(createhow4::EXCLUSIVE4),
    ]
}

fn arb_claim() -> impl Strategy<Value = open_claim4> {
    prop_oneof![
        bytes(32).prop_map(open_claim4::CLAIM_NULL),
        Just(open_claim4::CLAIM_FH),
        bytes(32).prop_map(open_claim4::CLAIM_DELEGATE_PREV),
        arb_stateid().prop_map(open_claim4::CLAIM_DELEG_CUR_FH),
    ]
}

fn arb_lock_type() -> impl Strategy<Value = nfs_lock_type4> {
    prop_oneof![
        Just(nfs_lock_type4::READ_LT),
        Just(nfs_lock_type4::WRITE_LT),
        Just(nfs_lock_type4::READW_LT),
        Just(nfs_lock_type4::WRITEW_LT),
    ]
}

fn arb_stable() -> impl Strategy<Value = stable_how4> {
    prop_oneof![
        Just(stable_how4::UNSTABLE4),
        Just(stable_how4::DATA_SYNC4),
        Just(stable_how4::FILE_SYNC4),
    ]
}

fn arb_locker() -> impl Strategy<Value = locker4> {
    prop_oneof![
        (
            any::<u32>(),
            arb_stateid(),
            any::<u32>(),
            any::<u64>(),
            bytes(24)
        )
            .prop_map(|(open_seqid, open_stateid, lock_seqid, clientid, owner)| {
                locker4::TRUE(open_to_lock_owner4 {
                    open_seqid,
                    open_stateid,
                    lock_seqid,
                    lock_owner: lock_owner4 { clientid, owner },
                })
            }),
        (arb_stateid(), any::<u32>()).prop_map(|(lock_stateid, lock_seqid)| {
            locker4::FALSE(exist_lock_owner4 {
                lock_stateid,
                lock_seqid,
            })
        }),
    ]
}

fn arb_argop() -> impl Strategy<Value = nfs_argop4> {
    prop_oneof![
        Just(nfs_argop4::OP_PUTROOTFH),
        Just(nfs_argop4::OP_GETFH),
        Just(nfs_argop4::OP_SAVEFH),
        Just(nfs_argop4::OP_RESTOREFH),
        Just(nfs_argop4::OP_LOOKUPP),
        bytes(128).prop_map(|object| nfs_argop4::OP_PUTFH(PUTFH4args { object })),
        bytes(64).prop_map(|objname| nfs_argop4::OP_LOOKUP(LOOKUP4args { objname })),
        vec(any::<u32>(), 0..4)
            .prop_map(|attr_request| nfs_argop4::OP_GETATTR(GETATTR4args { attr_request })),
        any::<u32>().prop_map(|access| nfs_argop4::OP_ACCESS(ACCESS4args { access })),
        (arb_stateid(), any::<u64>(), any::<u32>()).prop_map(|(stateid, offset, count)| {
            nfs_argop4::OP_READ(READ4args {
                stateid,
                offset,
                count,
            })
        }),
        (arb_stateid(), any::<u64>(), arb_stable(), bytes(300)).prop_map(
            |(stateid, offset, stable, data)| nfs_argop4::OP_WRITE(WRITE4args {
                stateid,
                offset,
                stable,
                data,
            })
        ),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            bytes(32),
            proptest::option::of(arb_createhow()),
            arb_claim()
        )
            .prop_map(|(seqid, share_access, clientid, owner, how, claim)| {
                nfs_argop4::OP_OPEN(OPEN4args {
                    seqid,
                    share_access,
                    share_deny: share_access >> 16,
                    owner: open_owner4 { clientid, owner },
                    openhow: match how {
                        Some(h) => openflag4::OPEN4_CREATE(h),
                        None => openflag4::default(opentype4::OPEN4_NOCREATE),
                    },
                    claim,
                })
            }),
        (any::<u32>(), arb_stateid()).prop_map(|(seqid, open_stateid)| {
            nfs_argop4::OP_CLOSE(CLOSE4args {
                seqid,
                open_stateid,
            })
        }),
        (
            arb_lock_type(),
            any::<bool>(),
            any::<u64>(),
            any::<u64>(),
            arb_locker()
        )
            .prop_map(|(locktype, reclaim, offset, length, locker)| {
                nfs_argop4::OP_LOCK(LOCK4args {
                    locktype,
                    reclaim,
                    offset,
                    length,
                    locker,
                })
            }),
        (arb_stateid(), arb_fattr()).prop_map(|(stateid, obj_attributes)| {
            nfs_argop4::OP_SETATTR(SETATTR4args {
                stateid,
                obj_attributes,
            })
        }),
        (
            any::<u64>(),
            any::<[u8; 8]>(),
            any::<u32>(),
            any::<u32>(),
            vec(any::<u32>(), 0..3)
        )
            .prop_map(|(cookie, cookieverf, dircount, maxcount, attr_request)| {
                nfs_argop4::OP_READDIR(READDIR4args {
                    cookie,
                    cookieverf,
                    dircount,
                    maxcount,
                    attr_request,
                })
            }),
        (bytes(32), bytes(32)).prop_map(|(oldname, newname)| {
            nfs_argop4::OP_RENAME(RENAME4args { oldname, newname })
        }),
        (
            any::<[u8; 16]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>()
        )
            .prop_map(
                |(sa_sessionid, sa_sequenceid, sa_slotid, hi, sa_cachethis)| {
                    nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
                        sa_sessionid,
                        sa_sequenceid,
                        sa_slotid,
                        sa_highest_slotid: hi,
                        sa_cachethis,
                    })
                }
            ),
        (any::<[u8; 8]>(), bytes(64), any::<u32>()).prop_map(|(v, id, flags)| {
            nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
                eia_clientowner: client_owner4 {
                    co_verifier: v,
                    co_ownerid: id,
                },
                eia_flags: flags,
                eia_state_protect: state_protect4_a::SP4_NONE,
                eia_client_impl_id: vec![],
            })
        }),
        vec(arb_stateid(), 0..4)
            .prop_map(|ts_stateids| nfs_argop4::OP_TEST_STATEID(TEST_STATEID4args { ts_stateids })),
    ]
}

fn arb_error() -> impl Strategy<Value = nfsstat4> {
    prop_oneof![
        Just(nfsstat4::NFS4ERR_NOENT),
        Just(nfsstat4::NFS4ERR_ACCESS),
        Just(nfsstat4::NFS4ERR_STALE),
        Just(nfsstat4::NFS4ERR_DELAY),
        Just(nfsstat4::NFS4ERR_BADXDR),
        Just(nfsstat4::NFS4ERR_WRONGSEC),
    ]
}

fn arb_resop() -> impl Strategy<Value = nfs_resop4> {
    prop_oneof![
        Just(nfs_resop4::OP_PUTROOTFH(PUTROOTFH4res {
            status: nfsstat4::NFS4_OK
        })),
        arb_error().prop_map(|status| nfs_resop4::OP_LOOKUP(LOOKUP4res { status })),
        bytes(128)
            .prop_map(|object| nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(GETFH4resok { object }))),
        arb_error().prop_map(|e| nfs_resop4::OP_GETFH(GETFH4res::default(e))),
        arb_fattr().prop_map(|obj_attributes| {
            nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(GETATTR4resok { obj_attributes }))
        }),
        (any::<bool>(), bytes(300)).prop_map(|(eof, data)| nfs_resop4::OP_READ(READ4res::NFS4_OK(
            READ4resok { eof, data }
        ))),
        (any::<u32>(), arb_stable(), any::<[u8; 8]>()).prop_map(|(count, committed, writeverf)| {
            nfs_resop4::OP_WRITE(WRITE4res::NFS4_OK(WRITE4resok {
                count,
                committed,
                writeverf,
            }))
        }),
        (
            any::<[u8; 8]>(),
            vec((any::<u64>(), bytes(16), arb_fattr()), 0..6),
            any::<bool>()
        )
            .prop_map(|(cookieverf, list, eof)| {
                let mut entries = None;
                for (cookie, name, attrs) in list.into_iter().rev() {
                    entries = Some(Box::new(entry4 {
                        cookie,
                        name,
                        attrs,
                        nextentry: entries,
                    }));
                }
                nfs_resop4::OP_READDIR(READDIR4res::NFS4_OK(READDIR4resok {
                    cookieverf,
                    reply: dirlist4 { entries, eof },
                }))
            }),
        (arb_error(), vec(any::<u32>(), 0..3)).prop_map(|(status, attrsset)| {
            nfs_resop4::OP_SETATTR(SETATTR4res { status, attrsset })
        }),
    ]
}

/// Encodes, checks the decoder takes exactly the encoding, and decodes
/// back to an equal value.
fn value_round_trip<T>(v: &T) -> Result<(), TestCaseError>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>> + Pack<Vec<u8>> + PartialEq + Debug,
{
    let enc = try_to_bytes(v).map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    let (back, used) =
        from_bytes_prefix::<T>(&enc).map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(used, enc.len());
    prop_assert_eq!(&back, v);
    Ok(())
}

/// Decodes; when that works, the value must survive a second round trip
/// byte for byte.
fn bytes_round_trip<T>(b: &[u8]) -> Result<(), TestCaseError>
where
    T: for<'a> Unpack<Cursor<&'a [u8]>> + Pack<Vec<u8>> + PartialEq + Debug,
{
    if let Ok((v, used)) = from_bytes_prefix::<T>(b) {
        let enc = try_to_bytes(&v)
            .map_err(|e| TestCaseError::fail(format!("decoded value does not encode: {e}")))?;
        prop_assert_eq!(enc.len(), used);
        let w =
            from_bytes::<T>(&enc).map_err(|e| TestCaseError::fail(format!("re-decode: {e}")))?;
        prop_assert_eq!(&w, &v);
        prop_assert_eq!(try_to_bytes(&w).unwrap(), enc);
    }
    Ok(())
}

/// A valid encoding with a few bytes overwritten, inserted or cut.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len().max(1);
    vec((0..len, any::<u8>(), 0u8..3), 1..6).prop_map(move |edits| {
        let mut b = seed.clone();
        for (at, byte, kind) in edits {
            let at = at.min(b.len());
            match kind {
                0 if at < b.len() => b[at] = byte,
                1 => b.insert(at, byte),
                _ => b.truncate(at),
            }
        }
        b
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compound_args_round_trip(tag in bytes(16), minor in 0u32..3, ops in vec(arb_argop(), 0..8)) {
        value_round_trip(&COMPOUND4args { tag, minorversion: minor, argarray: ops })?;
    }

    #[test]
    fn compound_results_round_trip(tag in bytes(16), res in vec(arb_resop(), 0..8)) {
        let status = nfsstat4::NFS4_OK;
        value_round_trip(&COMPOUND4res { status, tag, resarray: res })?;
    }

    #[test]
    fn each_operation_round_trips(op in arb_argop()) {
        value_round_trip(&op)?;
    }

    #[test]
    fn mutated_compounds_decode_or_fail_cleanly(
        b in vec(arb_argop(), 1..5)
            .prop_map(|ops| to_bytes(&COMPOUND4args { tag: vec![], minorversion: 1, argarray: ops }))
            .prop_flat_map(mutated)
    ) {
        bytes_round_trip::<COMPOUND4args>(&b)?;
    }

    #[test]
    fn mutated_results_decode_or_fail_cleanly(
        b in vec(arb_resop(), 1..5)
            .prop_map(|r| to_bytes(&COMPOUND4res { status: nfsstat4::NFS4_OK, tag: vec![], resarray: r }))
            .prop_flat_map(mutated)
    ) {
        bytes_round_trip::<COMPOUND4res>(&b)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(op in 0u32..80, b in bytes(256)) {
        let mut v = op.to_be_bytes().to_vec();
        v.extend_from_slice(&b);
        bytes_round_trip::<nfs_argop4>(&v)?;
        bytes_round_trip::<nfs_resop4>(&v)?;
        bytes_round_trip::<nfs_cb_argop4>(&v)?;
        bytes_round_trip::<nfs_cb_resop4>(&v)?;
        bytes_round_trip::<COMPOUND4args>(&b)?;
        bytes_round_trip::<CB_COMPOUND4res>(&b)?;
    }
}
