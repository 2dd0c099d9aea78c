//! The real server on a loopback port, driven by the project's own client:
//! RPC-level answers, COMPOUND rules, sessions, and bad input.

mod common;

use std::time::Duration;

use common::*;
use nfs4d_testkit::ops::*;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::{self, Credential};

fn status_of(r: &COMPOUND4res) -> nfsstat4 {
    r.status
}

#[test]
fn null_procedure_and_rpc_level_errors() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(1);
    // NULL.
    let r = c.call(0, &[]).unwrap();
    assert_eq!(nfs4d_testkit::wire::results(&r).unwrap(), &[] as &[u8]);
    // Wrong program → PROG_UNAVAIL (accept_stat 1).
    c.send_raw(&rpc::call_record(77, 100005, 3, 0, &Credential::None, &[]))
        .unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!((w[0], w[1], w[2], w[5]), (77, 1, 0, 1), "reply {w:?}");
    // Wrong version → PROG_MISMATCH 4..4.
    c.send_raw(&rpc::call_record(78, 100003, 3, 0, &Credential::None, &[]))
        .unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!((w[0], w[5], w[6], w[7]), (78, 2, 4, 4), "reply {w:?}");
    // Unknown procedure → PROC_UNAVAIL.
    c.send_raw(&rpc::call_record(79, 100003, 4, 9, &Credential::None, &[]))
        .unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!((w[0], w[5]), (79, 3));
    // COMPOUND with garbage arguments → GARBAGE_ARGS.
    c.send_raw(&rpc::call_record(
        80,
        100003,
        4,
        1,
        &Credential::None,
        &[0, 0],
    ))
    .unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!((w[0], w[5]), (80, 4));
    // RPCSEC_GSS (flavor 6) → MSG_DENIED / AUTH_ERROR / AUTH_BADCRED.
    let mut rec = rpc::call_record(81, 100003, 4, 0, &Credential::None, &[]);
    rec[4 + 24..4 + 28].copy_from_slice(&6u32.to_be_bytes());
    c.send_raw(&rec).unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!(
        (w[0], w[1], w[2], w[3], w[4]),
        (81, 1, 1, 1, 1),
        "reply {w:?}"
    );
    // RPC version 3 → RPC_MISMATCH 2..2.
    let mut rec = rpc::call_record(82, 100003, 4, 0, &Credential::None, &[]);
    rec[4 + 8..4 + 12].copy_from_slice(&3u32.to_be_bytes());
    c.send_raw(&rec).unwrap();
    let w = reply_words(&c.recv_record().unwrap());
    assert_eq!(
        (w[0], w[2], w[3], w[4], w[5]),
        (82, 1, 0, 2, 2),
        "reply {w:?}"
    );
    // The connection still serves.
    c.call(0, &[]).unwrap();
}

#[test]
fn oversized_record_closes_only_that_connection() {
    let srv = TestServer::start(&[]);
    let mut bad = srv.client(1);
    let mut other = srv.client(1);
    // Announce a 2 GiB - 1 fragment.
    bad.send_raw(&0xffff_ffffu32.to_be_bytes()).unwrap();
    let err = bad.recv_record().unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{err:?}"
    );
    other.call(0, &[]).unwrap();
    assert!(
        srv.log().contains("bad record marking"),
        "no log line:\n{}",
        srv.log()
    );
}

#[test]
fn minor_version_mismatch_and_illegal_ops() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(3);
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_MINOR_VERS_MISMATCH);
    assert!(r.resarray.is_empty());

    let mut c = srv.client(0);
    let r = c.compound_raw(vec![nfs_argop4::OP_ILLEGAL]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_OP_ILLEGAL);
    // A 4.1 operation in a 4.0 COMPOUND is illegal there.
    let r = c
        .compound_raw(vec![nfs_argop4::OP_RECLAIM_COMPLETE(
            RECLAIM_COMPLETE4args { rca_one_fs: false },
        )])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_OP_ILLEGAL);
    // An operation needing a filehandle without one.
    let r = c.compound_raw(vec![getattr(&[FATTR4_SIZE])]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_NOFILEHANDLE);
}

#[test]
fn unknown_opcode_and_truncated_args_are_reported_at_their_position() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(0);
    // PUTROOTFH, then opcode 9999, hand-encoded.
    let mut args = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    args.extend_from_slice(&24u32.to_be_bytes());
    args.extend_from_slice(&9999u32.to_be_bytes());
    let res = c.call(1, &args).unwrap();
    let w: Vec<u32> = nfs4d_testkit::wire::results(&res)
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    // status, tag len 0, 2 results: PUTROOTFH OK, ILLEGAL OP_ILLEGAL.
    assert_eq!(w, vec![10044, 0, 2, 24, 0, 10044, 10044]);

    // PUTROOTFH, then LOOKUP whose name length runs past the end.
    let mut args = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    args.extend_from_slice(&24u32.to_be_bytes());
    args.extend_from_slice(&15u32.to_be_bytes());
    args.extend_from_slice(&100u32.to_be_bytes());
    args.extend_from_slice(b"ab");
    let res = c.call(1, &args).unwrap();
    let w: Vec<u32> = nfs4d_testkit::wire::results(&res)
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        w,
        vec![10036, 0, 2, 24, 0, 15, 10036],
        "BADXDR at the LOOKUP"
    );
}

#[test]
fn too_many_operations() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(0);
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH; 65]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_RESOURCE);
    assert_eq!(r.resarray.len(), 1);
    let mut c = srv.client(1);
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH; 65]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_TOO_MANY_OPS);
    // Within a session the negotiated limit (16 here) applies.
    c.establish41(b"toomany").unwrap();
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH; 20]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_TOO_MANY_OPS);
    // The refused request did not use the slot: its sequence id is reused.
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH; 3]).unwrap();
    assert_eq!(
        r.status,
        nfsstat4::NFS4_OK,
        "slot still usable after the refusal"
    );
}

#[test]
fn sessions_sequence_and_reply_cache() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(1);
    // Without SEQUENCE first.
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_OP_NOT_IN_SESSION);
    c.establish41(b"sess").unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .unwrap();
    assert_eq!(status_of(&r), nfsstat4::NFS4_OK);
    // Replay the same sequence id: the cached reply comes back unchanged.
    c.seqids[0] -= 1;
    let again = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .unwrap();
    assert_eq!(again, r);
    // A sequence id from the future is misordered.
    c.seqids[0] += 5;
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_SEQ_MISORDERED);
    c.seqids[0] -= 5;
    // SEQUENCE in second position.
    let sid = c.session.unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: sid,
            sa_sequenceid: 1,
            sa_slotid: 0,
            sa_highest_slotid: 0,
            sa_cachethis: false,
        })])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_SEQUENCE_POS);
    // Unknown session.
    c.session = Some([9; 16]);
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADSESSION);
}

#[test]
fn bad_handles_and_names() {
    let srv = TestServer::start(&[]);
    std::fs::write(srv.export.join("f"), b"x").unwrap();
    let mut c = srv.client(1);
    c.establish41(b"names").unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTFH(PUTFH4args {
            object: vec![1; 30],
        })])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADHANDLE);
    for (name, want) in [
        ("", nfsstat4::NFS4ERR_INVAL),
        (".", nfsstat4::NFS4ERR_BADNAME),
        ("..", nfsstat4::NFS4ERR_BADNAME),
        ("a/b", nfsstat4::NFS4ERR_BADNAME),
        ("nope", nfsstat4::NFS4ERR_NOENT),
    ] {
        let r = c
            .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup(name)])
            .unwrap();
        assert_eq!(r.status, want, "LOOKUP {name:?}");
    }
    let long = "x".repeat(256);
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup(&long)])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_NAMETOOLONG);
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_LOOKUP(LOOKUP4args {
                objname: vec![b'a', 0, b'b'],
            }),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADNAME);
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_LOOKUP(LOOKUP4args {
                objname: vec![0xff, 0xfe],
            }),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_INVAL, "invalid UTF-8");
    // A handle issued for a file that was then replaced behind the server's
    // back answers STALE and never reaches the newcomer.
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("f"),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    let Some(nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(fh))) = r.resarray.last() else {
        panic!("no handle: {r:?}")
    };
    let fh = fh.object.clone();
    std::fs::remove_file(srv.export.join("f")).unwrap();
    std::fs::write(srv.export.join("f"), b"newcomer").unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTFH(PUTFH4args { object: fh })])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_STALE);
}

#[test]
fn disconnect_mid_request_does_not_hurt_the_server() {
    let mut srv = TestServer::start(&[]);
    for _ in 0..20 {
        let mut c = srv.client(0);
        // Half a record, then hang up.
        c.send_raw(&[0x80, 0, 1, 0, 1, 2, 3]).unwrap();
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(srv.alive());
    srv.client(0).call(0, &[]).unwrap();
}
