//! Restart recovery end to end (docs/recovery.md): stable client records,
//! the grace period and reclaims of opens and locks, 4.0 and 4.1, against
//! the real binary restarted with SIGKILL on the same directories.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use nfs4d::client::{lookup, Client};
use nfs4d_xdr::nfs4::*;

use nfsstat4::{NFS4ERR_GRACE, NFS4ERR_NO_GRACE, NFS4ERR_RECLAIM_BAD, NFS4_OK};

/// A server with a short lease and a grace bound far above it, so an early
/// end of grace is distinguishable from its upper bound.
fn server() -> TestServer {
    TestServer::start_with_config(
        "lease_time = 5\ngrace_time = 60\n\n[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n",
        &[],
    )
}

fn no_attrs() -> fattr4 {
    fattr4 {
        attrmask: vec![],
        attr_vals: vec![],
    }
}

/// OPEN of `name` in the root: CLAIM_NULL (creating it) or, with
/// `reclaim`, CLAIM_PREVIOUS of the looked-up file. Returns the status,
/// the stateid and the result flags.
fn open(
    c: &mut Client,
    name: &str,
    owner: &str,
    seqid: u32,
    reclaim: bool,
) -> (nfsstat4, Option<(stateid4, u32)>) {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    let (how, claim) = if reclaim {
        ops.push(lookup(name));
        (
            openflag4::default(opentype4::OPEN4_NOCREATE),
            open_claim4::CLAIM_PREVIOUS(open_delegation_type4::OPEN_DELEGATE_NONE),
        )
    } else {
        (
            openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(no_attrs())),
            open_claim4::CLAIM_NULL(name.as_bytes().to_vec()),
        )
    };
    ops.push(nfs_argop4::OP_OPEN(OPEN4args {
        seqid,
        share_access: OPEN4_SHARE_ACCESS_BOTH,
        share_deny: OPEN4_SHARE_DENY_NONE,
        owner: open_owner4 {
            clientid: c.clientid,
            owner: owner.as_bytes().to_vec(),
        },
        openhow: how,
        claim,
    }));
    let r = c.compound(ops).unwrap();
    let ok = r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_OPEN(OPEN4res::NFS4_OK(ok)) => Some((ok.stateid.clone(), ok.rflags)),
        _ => None,
    });
    (r.status, ok)
}

/// 4.0: confirms a new owner's first open.
fn confirm(c: &mut Client, name: &str, sid: &stateid4, seqid: u32) -> stateid4 {
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(name),
            nfs_argop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4args {
                open_stateid: sid.clone(),
                seqid,
            }),
        ])
        .unwrap();
    match r.resarray.last() {
        Some(nfs_resop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4res::NFS4_OK(ok))) => ok.open_stateid.clone(),
        other => panic!("OPEN_CONFIRM: {other:?}"),
    }
}

/// A write LOCK of bytes 0..10 with a new lock owner.
fn lock(c: &mut Client, name: &str, open: &stateid4, open_seqid: u32, reclaim: bool) -> nfsstat4 {
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        nfs_argop4::OP_LOCK(LOCK4args {
            locktype: nfs_lock_type4::WRITE_LT,
            reclaim,
            offset: 0,
            length: 10,
            locker: locker4::TRUE(open_to_lock_owner4 {
                open_seqid,
                open_stateid: open.clone(),
                lock_seqid: 0,
                lock_owner: lock_owner4 {
                    clientid: c.clientid,
                    owner: b"lock-owner".to_vec(),
                },
            }),
        }),
    ])
    .unwrap()
    .status
}

fn session(srv: &TestServer, owner: &str, reclaiming: bool) -> Client {
    let mut c = srv.client(1);
    if reclaiming {
        c.establish41_reclaiming(owner.as_bytes()).unwrap();
    } else {
        c.establish41(owner.as_bytes()).unwrap();
    }
    c
}

#[test]
fn v41_open_and_lock_are_reclaimed_and_reclaim_complete_ends_grace() {
    let mut srv = server();
    let mut c = session(&srv, "recl41", false);
    let (st, ok) = open(&mut c, "f", "oo", 0, false);
    assert_eq!(st, NFS4_OK);
    let (sid, _) = ok.unwrap();
    assert_eq!(lock(&mut c, "f", &sid, 0, false), NFS4_OK);
    drop(c);

    srv.restart();
    let mut c = session(&srv, "recl41", true);
    // Only reclaims during grace.
    assert_eq!(open(&mut c, "g", "oo", 0, false).0, NFS4ERR_GRACE);
    let (st, ok) = open(&mut c, "f", "oo", 0, true);
    assert_eq!(st, NFS4_OK, "CLAIM_PREVIOUS");
    let (sid, _) = ok.unwrap();
    assert_eq!(lock(&mut c, "f", &sid, 0, true), NFS4_OK, "LOCK reclaim");
    // A client the previous instance never confirmed cannot reclaim.
    let mut stranger = session(&srv, "stranger41", true);
    assert_eq!(open(&mut stranger, "f", "so", 0, true).0, NFS4ERR_NO_GRACE);

    c.reclaim_complete().unwrap();
    let done = Instant::now();
    // The only previous client is done: grace ends at once, not after
    // grace_time (60 s).
    let mut other = session(&srv, "other41", false);
    loop {
        let st = open(&mut other, "g", "oo2", 0, false).0;
        if st == NFS4_OK {
            break;
        }
        assert_eq!(st, NFS4ERR_GRACE);
        assert!(done.elapsed() < Duration::from_secs(1), "grace did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    // After grace (and after RECLAIM_COMPLETE) reclaims are NO_GRACE.
    assert_eq!(open(&mut c, "f", "oo", 0, true).0, NFS4ERR_NO_GRACE);
    assert_eq!(open(&mut stranger, "f", "so", 0, true).0, NFS4ERR_NO_GRACE);
}

#[test]
fn v40_open_and_lock_are_reclaimed_within_a_lease() {
    let mut srv = server();
    let mut c = srv.client(0);
    c.establish40(b"recl40").unwrap();
    let (st, ok) = open(&mut c, "f", "oo", 0, false);
    assert_eq!(st, NFS4_OK);
    let (sid, flags) = ok.unwrap();
    let sid = if flags & OPEN4_RESULT_CONFIRM != 0 {
        confirm(&mut c, "f", &sid, 1)
    } else {
        sid
    };
    assert_eq!(lock(&mut c, "f", &sid, 2, false), NFS4_OK);
    drop(c);

    srv.restart();
    let started = Instant::now();
    let mut c = srv.client(0);
    c.establish40(b"recl40").unwrap();
    assert_eq!(open(&mut c, "g", "oo", 0, false).0, NFS4ERR_GRACE);
    let (st, ok) = open(&mut c, "f", "oo", 1, true);
    assert_eq!(st, NFS4_OK, "CLAIM_PREVIOUS");
    let (sid, flags) = ok.unwrap();
    assert_eq!(
        flags & OPEN4_RESULT_CONFIRM,
        0,
        "RFC 7530 §9.1.11: no confirmation of a reclaim"
    );
    assert_eq!(lock(&mut c, "f", &sid, 2, true), NFS4_OK, "LOCK reclaim");
    let mut stranger = srv.client(0);
    stranger.establish40(b"stranger40").unwrap();
    assert_eq!(
        open(&mut stranger, "f", "so", 0, true).0,
        NFS4ERR_RECLAIM_BAD
    );

    // A 4.0 client cannot say it is done: grace lasts one lease (5 s),
    // well short of grace_time (60 s).
    let mut seq = 3;
    loop {
        let r = c
            .compound(vec![nfs_argop4::OP_RENEW(RENEW4args {
                clientid: c.clientid,
            })])
            .unwrap();
        assert_eq!(r.status, NFS4_OK);
        let st = open(&mut c, "g", "oo", seq, false).0;
        seq += 1;
        if st == NFS4_OK {
            break;
        }
        assert_eq!(st, NFS4ERR_GRACE);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "grace did not end"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_eq!(open(&mut c, "f", "oo", seq, true).0, NFS4ERR_NO_GRACE);
}

#[test]
fn no_grace_when_there_were_no_clients() {
    let mut srv = server();
    srv.restart();
    let mut c = session(&srv, "fresh", false);
    assert_eq!(open(&mut c, "f", "oo", 0, false).0, NFS4_OK);
    let mut r = session(&srv, "fresh2", true);
    assert_eq!(open(&mut r, "f", "ro", 0, true).0, NFS4ERR_NO_GRACE);
}

#[test]
fn destroyed_client_has_nothing_to_reclaim() {
    let mut srv = server();
    let mut c = session(&srv, "gone", false);
    let r = c
        .compound(vec![nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
            dsa_sessionid: c.session.unwrap(),
        })])
        .unwrap();
    assert_eq!(r.status, NFS4_OK);
    c.session = None;
    let r = c
        .compound(vec![nfs_argop4::OP_DESTROY_CLIENTID(
            DESTROY_CLIENTID4args {
                dca_clientid: c.clientid,
            },
        )])
        .unwrap();
    assert_eq!(r.status, NFS4_OK);
    srv.restart();
    // No client left in the records: no grace at all.
    let mut c = session(&srv, "new", false);
    assert_eq!(open(&mut c, "f", "oo", 0, false).0, NFS4_OK);
}
