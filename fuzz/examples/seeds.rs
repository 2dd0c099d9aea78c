//! Writes seed inputs for the fuzz targets into `corpus/<target>/`:
//! well-formed COMPOUNDs covering common operations, RPC calls carrying
//! them, and fragmented record streams. Run with
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`.

use std::path::Path;

use nfs4d_xdr::compound::MAX_TAG;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::{self, Credential};

fn sid(n: u8) -> stateid4 {
    stateid4 {
        seqid: u32::from(n),
        other: [n; 12],
    }
}

fn attrs() -> fattr4 {
    fattr4 {
        attrmask: vec![1 << 4, 1 << 1],
        attr_vals: vec![0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 1, 0xa4],
    }
}

fn ops() -> Vec<Vec<nfs_argop4>> {
    let open = nfs_argop4::OP_OPEN(OPEN4args {
        seqid: 1,
        share_access: OPEN4_SHARE_ACCESS_BOTH,
        share_deny: OPEN4_SHARE_DENY_NONE,
        owner: open_owner4 {
            clientid: 0x1234_0000_0001,
            owner: b"owner".to_vec(),
        },
        openhow: openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(attrs())),
        claim: open_claim4::CLAIM_NULL(b"file".to_vec()),
    });
    let seq = nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
        sa_sessionid: [7; 16],
        sa_sequenceid: 3,
        sa_slotid: 0,
        sa_highest_slotid: 0,
        sa_cachethis: true,
    });
    let chan = channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 8192,
        ca_maxoperations: 16,
        ca_maxrequests: 8,
        ca_rdma_ird: vec![],
    };
    vec![
        vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_GETFH,
            nfs_argop4::OP_GETATTR(GETATTR4args {
                attr_request: vec![0x0010_011a, 0x00b0_a23a],
            }),
        ],
        vec![
            nfs_argop4::OP_PUTFH(PUTFH4args {
                object: vec![1; 40],
            }),
            nfs_argop4::OP_LOOKUP(LOOKUP4args {
                objname: b"dir".to_vec(),
            }),
            nfs_argop4::OP_LOOKUPP,
        ],
        vec![
            seq.clone(),
            nfs_argop4::OP_PUTROOTFH,
            open.clone(),
            nfs_argop4::OP_GETFH,
        ],
        vec![
            open,
            nfs_argop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4args {
                open_stateid: sid(1),
                seqid: 2,
            }),
        ],
        vec![
            seq.clone(),
            nfs_argop4::OP_PUTFH(PUTFH4args {
                object: vec![2; 32],
            }),
            nfs_argop4::OP_WRITE(WRITE4args {
                stateid: sid(2),
                offset: 4096,
                stable: stable_how4::FILE_SYNC4,
                data: b"hello world".to_vec(),
            }),
            nfs_argop4::OP_READ(READ4args {
                stateid: sid(2),
                offset: 0,
                count: 4096,
            }),
            nfs_argop4::OP_COMMIT(COMMIT4args {
                offset: 0,
                count: 0,
            }),
        ],
        vec![
            nfs_argop4::OP_LOCK(LOCK4args {
                locktype: nfs_lock_type4::WRITE_LT,
                reclaim: false,
                offset: 0,
                length: u64::MAX,
                locker: locker4::TRUE(open_to_lock_owner4 {
                    open_seqid: 3,
                    open_stateid: sid(3),
                    lock_seqid: 0,
                    lock_owner: lock_owner4 {
                        clientid: 9,
                        owner: b"lo".to_vec(),
                    },
                }),
            }),
            nfs_argop4::OP_LOCKU(LOCKU4args {
                locktype: nfs_lock_type4::READ_LT,
                seqid: 1,
                lock_stateid: sid(4),
                offset: 1,
                length: 2,
            }),
            nfs_argop4::OP_CLOSE(CLOSE4args {
                seqid: 4,
                open_stateid: sid(3),
            }),
        ],
        vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_READDIR(READDIR4args {
                cookie: 0,
                cookieverf: [0; 8],
                dircount: 4096,
                maxcount: 8192,
                attr_request: vec![0x0010_0000, 0x2],
            }),
            nfs_argop4::OP_SETATTR(SETATTR4args {
                stateid: sid(0),
                obj_attributes: attrs(),
            }),
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_RENAME(RENAME4args {
                oldname: b"a".to_vec(),
                newname: b"b".to_vec(),
            }),
            nfs_argop4::OP_LINK(LINK4args {
                newname: b"c".to_vec(),
            }),
            nfs_argop4::OP_RESTOREFH,
            nfs_argop4::OP_REMOVE(REMOVE4args {
                target: b"d".to_vec(),
            }),
            nfs_argop4::OP_CREATE(CREATE4args {
                objtype: createtype4::NF4LNK(b"target".to_vec()),
                objname: b"l".to_vec(),
                createattrs: attrs(),
            }),
            nfs_argop4::OP_ACCESS(ACCESS4args { access: 0x3f }),
            nfs_argop4::OP_SECINFO(SECINFO4args {
                name: b"x".to_vec(),
            }),
        ],
        vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
            eia_clientowner: client_owner4 {
                co_verifier: [1; 8],
                co_ownerid: b"linux client".to_vec(),
            },
            eia_flags: 0x103,
            eia_state_protect: state_protect4_a::SP4_NONE,
            eia_client_impl_id: vec![],
        })],
        vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
            csa_clientid: 77,
            csa_sequence: 1,
            csa_flags: 3,
            csa_fore_chan_attrs: chan.clone(),
            csa_back_chan_attrs: chan,
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: vec![callback_sec_parms4::AUTH_NONE],
        })],
        vec![
            nfs_argop4::OP_SETCLIENTID(SETCLIENTID4args {
                client: nfs_client_id4 {
                    verifier: [3; 8],
                    id: b"c40".to_vec(),
                },
                callback: cb_client4 {
                    cb_program: 1,
                    cb_location: netaddr4 {
                        na_r_netid: b"tcp".to_vec(),
                        na_r_addr: b"127.0.0.1.8.1".to_vec(),
                    },
                },
                callback_ident: 1,
            }),
            nfs_argop4::OP_SETCLIENTID_CONFIRM(SETCLIENTID_CONFIRM4args {
                clientid: 5,
                setclientid_confirm: [4; 8],
            }),
            nfs_argop4::OP_RENEW(RENEW4args { clientid: 5 }),
        ],
        vec![
            seq,
            nfs_argop4::OP_PUTFH(PUTFH4args {
                object: vec![3; 16],
            }),
            nfs_argop4::OP_COPY(COPY4args {
                ca_src_stateid: sid(5),
                ca_dst_stateid: sid(6),
                ca_src_offset: 0,
                ca_dst_offset: 10,
                ca_count: 100,
                ca_consecutive: true,
                ca_synchronous: true,
                ca_source_server: vec![],
            }),
            nfs_argop4::OP_SETXATTR(SETXATTR4args {
                sxa_option: setxattr_option4::SETXATTR4_EITHER,
                sxa_key: b"user.k".to_vec(),
                sxa_value: b"v".to_vec(),
            }),
            nfs_argop4::OP_TEST_STATEID(TEST_STATEID4args {
                ts_stateids: vec![sid(1), sid(2)],
            }),
            nfs_argop4::OP_RECLAIM_COMPLETE(RECLAIM_COMPLETE4args { rca_one_fs: false }),
            nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
                dsa_sessionid: [7; 16],
            }),
        ],
    ]
}

fn results() -> Vec<COMPOUND4res> {
    vec![
        COMPOUND4res {
            status: nfsstat4::NFS4_OK,
            tag: b"t".to_vec(),
            resarray: vec![
                nfs_resop4::OP_PUTROOTFH(PUTROOTFH4res {
                    status: nfsstat4::NFS4_OK,
                }),
                nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(GETFH4resok {
                    object: vec![9; 28],
                })),
                nfs_resop4::OP_READ(READ4res::NFS4_OK(READ4resok {
                    eof: true,
                    data: b"data".to_vec(),
                })),
            ],
        },
        COMPOUND4res {
            status: nfsstat4::NFS4ERR_NOENT,
            tag: vec![],
            resarray: vec![nfs_resop4::OP_LOOKUP(LOOKUP4res {
                status: nfsstat4::NFS4ERR_NOENT,
            })],
        },
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    // `corpus/` (the fuzzers' starting points) unless a directory is given:
    // `fuzz/regressions/` holds the same inputs, replayed by `cargo test`.
    let root = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    for (i, list) in ops().into_iter().enumerate() {
        let args = COMPOUND4args {
            tag: b"seed".to_vec(),
            minorversion: (i % 3) as u32,
            argarray: list.clone(),
        };
        let bytes = nfs4d_xdr::to_bytes(&args);
        for (target, mode) in [
            ("compound_args", 0u8),
            ("compound_args", 2),
            ("roundtrip", 0),
        ] {
            let mut v = vec![mode];
            v.extend_from_slice(&bytes);
            write(&root.join(target), &format!("compound-{i}-{mode}"), &v);
        }
        for (j, op) in list.iter().enumerate() {
            let b = nfs4d_xdr::to_bytes(op);
            let num = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            let sel = if num == 10044 { 255 } else { (num - 3) as u8 };
            for (target, mode) in [("compound_args", 1u8), ("roundtrip", 1)] {
                let mut v = vec![mode, sel];
                v.extend_from_slice(&b[4..]);
                write(&root.join(target), &format!("op-{i}-{j}-{mode}"), &v);
            }
        }
        let cred = if i % 2 == 0 {
            Credential::Sys {
                stamp: 9,
                machine: "seedhost".into(),
                uid: 1000,
                gid: 100,
                gids: vec![4, 24, 27],
            }
        } else {
            Credential::None
        };
        let call = rpc::call_record(i as u32 + 1, 100003, 4, 1, &cred, &bytes);
        write(&root.join("rpc_call"), &format!("call-{i}"), &call[4..]);
        // The same call split in three fragments, then a second record.
        let body = &call[4..];
        let mut stream = vec![0xff, 0x05];
        let cut = [body.len() / 3, 2 * body.len() / 3];
        for (k, part) in [&body[..cut[0]], &body[cut[0]..cut[1]], &body[cut[1]..]]
            .iter()
            .enumerate()
        {
            let last = if k == 2 { 0x8000_0000u32 } else { 0 };
            stream.extend_from_slice(&(part.len() as u32 | last).to_be_bytes());
            stream.extend_from_slice(part);
        }
        stream.extend_from_slice(&call);
        write(&root.join("record"), &format!("stream-{i}"), &stream);
    }
    for (i, r) in results().iter().enumerate() {
        let bytes = nfs4d_xdr::to_bytes(r);
        for (target, mode) in [("compound_args", 3u8), ("roundtrip", 3)] {
            let mut v = vec![mode];
            v.extend_from_slice(&bytes);
            write(&root.join(target), &format!("res-{i}"), &v);
        }
        let mut reply = Vec::new();
        rpc::begin_success_reply(i as u32, &mut reply);
        reply.extend_from_slice(&bytes);
        rpc::finish_record(&mut reply);
        write(&root.join("rpc_call"), &format!("reply-{i}"), &reply[4..]);
    }
    edge_cases(&root);
    gss_seeds(&root.join("gss_wire"));
    println!("seeds written under {}", root.display());
}

/// RPCSEC_GSS inputs for `gss_wire` (mode byte first, see
/// `src/gss_wire.rs`): calls of every kind and service, replies, bare
/// credentials including refused ones, and sequence-number walks.
fn gss_seeds(dir: &Path) {
    use nfs4d_gss::rpc::{
        accepted_record, auth_error_record, call_record, AcceptStat, AuthStat, Verifier,
    };
    use nfs4d_gss::wire::{self, Cred, GssProc, Service, MAXSEQ, RPCSEC_GSS};

    let mic = Verifier {
        flavor: RPCSEC_GSS,
        body: vec![
            0x04, 0x04, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
            13, 14, 15, 16, 17, 18, 19, 20,
        ],
    };
    let with_mode = |mode: u8, bytes: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(bytes);
        v
    };
    let handle = *b"0123456789abcdef";
    let mut n = 0;
    let mut call = |gss_proc: GssProc,
                    service: Service,
                    seq: u32,
                    proc_: u32,
                    verf: &Verifier,
                    args: &[u8]| {
        let cred = wire::encode_cred(&Cred {
            proc_: gss_proc,
            seq,
            service,
            handle: if gss_proc == GssProc::Init {
                b""
            } else {
                &handle
            },
        });
        let rec = call_record::<()>(
            n,
            100003,
            4,
            proc_,
            RPCSEC_GSS,
            &cred,
            |_| Ok(verf.clone()),
            args,
        )
        .unwrap();
        write(dir, &format!("call-{n}"), &with_mode(0, &rec[4..]));
        n += 1;
    };
    let token = [
        0x60u8, 0x82, 0x02, 0x10, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02,
        0x01, 0x00, 0x6e,
    ];
    call(
        GssProc::Init,
        Service::None,
        0,
        0,
        &Verifier::none(),
        &wire::encode_init_arg(&token),
    );
    call(
        GssProc::ContinueInit,
        Service::None,
        0,
        0,
        &Verifier::none(),
        &wire::encode_init_arg(&token),
    );
    call(GssProc::Destroy, Service::None, 9, 0, &mic, b"");
    call(
        GssProc::Data,
        Service::None,
        1,
        1,
        &mic,
        b"\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\x18",
    );
    let mut integ = Vec::new();
    wire::encode_integ_into::<_, ()>(&mut integ, 2, b"\0\0\0\0\0\0\0\x01", |_| {
        Ok(mic.body.clone())
    })
    .unwrap();
    call(GssProc::Data, Service::Integrity, 2, 1, &mic, &integ);
    let mut private = Vec::new();
    wire::encode_priv_into(
        &mut private,
        &[
            0x05, 0x04, 0x06, 0xff, 0, 0x10, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8,
        ],
    );
    call(GssProc::Data, Service::Privacy, 3, 1, &mic, &private);
    call(GssProc::Data, Service::None, MAXSEQ + 1, 1, &mic, b"");
    // A creation argument claiming a token past the limit.
    call(
        GssProc::Init,
        Service::None,
        0,
        0,
        &Verifier::none(),
        &((wire::MAX_TOKEN as u32 + 1).to_be_bytes()),
    );

    let res = wire::encode_init_res(&wire::InitRes {
        handle: &handle,
        major: 0,
        minor: 0,
        seq_window: 128,
        token: &token,
    });
    for (i, rec) in [
        accepted_record(1, &mic, AcceptStat::Success, &res),
        accepted_record(2, &mic, AcceptStat::GarbageArgs, b""),
        auth_error_record(3, AuthStat::CtxProblem),
        auth_error_record(4, AuthStat::CredProblem),
    ]
    .iter()
    .enumerate()
    {
        write(dir, &format!("reply-{i}"), &with_mode(1, &rec[4..]));
    }

    let raw = |name: &str, words: [u32; 4], handle: &[u8]| {
        let mut v = vec![2u8];
        for w in words {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v.extend_from_slice(&(handle.len() as u32).to_be_bytes());
        v.extend_from_slice(handle);
        v.resize(v.len() + (4 - handle.len() % 4) % 4, 0);
        write(dir, name, &v);
    };
    raw("cred-ok", [1, 0, 7, 2], &handle);
    raw("cred-version-2", [2, 0, 7, 1], &handle);
    raw("cred-proc-4", [1, 4, 7, 1], &handle);
    raw("cred-service-0", [1, 0, 7, 0], &handle);
    raw("cred-handle-400", [1, 0, 7, 1], &[1; 400]);
    raw("cred-odd-handle", [1, 3, 7, 3], b"abcde");

    let walk = |name: &str, seqs: &[u32]| {
        let mut v = vec![3u8];
        for s in seqs {
            v.extend_from_slice(&s.to_be_bytes());
        }
        write(dir, name, &v);
    };
    walk("window-in-order", &(1..300).collect::<Vec<_>>());
    walk("window-replays", &[5, 5, 3, 3, 200, 72, 73, 72, 1, 200]);
    walk(
        "window-jumps",
        &[
            10,
            10 + 127,
            10,
            9,
            10 + 128 + 127,
            u32::MAX,
            0,
            u32::MAX - 127,
            u32::MAX - 128,
        ],
    );
    walk(
        "window-maxseq",
        &[MAXSEQ - 1, MAXSEQ, MAXSEQ + 1, MAXSEQ - 129],
    );
}

/// Inputs at the limits the decoders enforce.
fn edge_cases(root: &Path) {
    // A fragment header announcing 2 GiB - 1 bytes; 1025 empty fragments.
    write(
        &root.join("record"),
        "edge-huge-fragment",
        &[0x40, 0x01, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
    );
    let mut many = vec![0xff, 0x01];
    for _ in 0..1025 {
        many.extend_from_slice(&[0, 0, 0, 0]);
    }
    write(&root.join("record"), "edge-many-fragments", &many);
    // A COMPOUND claiming 2^32 - 1 operations, with three PUTROOTFHs.
    let mut c = vec![0u8, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
    for _ in 0..3 {
        c.extend_from_slice(&24u32.to_be_bytes());
    }
    write(&root.join("compound_args"), "edge-count-max", &c);
    // COMPOUND tags of exactly MAX_TAG bytes and of one byte more, each
    // followed by a minor version, a count of 1 and a PUTROOTFH.
    for (name, len) in [("edge-tag-max", MAX_TAG), ("edge-tag-long", MAX_TAG + 1)] {
        let args = COMPOUND4args {
            tag: vec![b't'; len],
            minorversion: 1,
            argarray: vec![nfs_argop4::OP_PUTROOTFH],
        };
        let mut v = vec![0u8];
        v.extend_from_slice(&nfs4d_xdr::to_bytes(&args));
        write(&root.join("compound_args"), name, &v);
    }
    // An array count of 2^32 - 1 in GETATTR's bitmap, and an opaque of
    // 2^32 - 1 bytes in LOOKUP.
    write(
        &root.join("compound_args"),
        "edge-bitmap-count",
        &[1, 6, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1],
    );
    write(
        &root.join("roundtrip"),
        "edge-opaque-len",
        &[1, 12, 0xff, 0xff, 0xff, 0xff, b'a', b'b'],
    );
    // AUTH_SYS with 17 groups and a 300-byte machine name.
    let mut call = Vec::new();
    for w in [7u32, 0, 2, 100003, 4, 1, 1] {
        call.extend_from_slice(&w.to_be_bytes());
    }
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_be_bytes()); // stamp
    body.extend_from_slice(&300u32.to_be_bytes());
    body.extend_from_slice(&[b'm'; 300]);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // uid, gid
    body.extend_from_slice(&17u32.to_be_bytes());
    for g in 0..17u32 {
        body.extend_from_slice(&g.to_be_bytes());
    }
    call.extend_from_slice(&(body.len() as u32).to_be_bytes());
    call.extend_from_slice(&body);
    call.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]); // AUTH_NONE verifier
    write(&root.join("rpc_call"), "edge-authsys-bounds", &call);
}
