//! Restart recovery end to end (docs/recovery.md): stable client records,
//! the grace period and reclaims of opens and locks, 4.0 and 4.1, against
//! the real binary restarted with SIGKILL on the same directories.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::{Client, SessionOptions};
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
        (no_create(), claim_previous())
    } else {
        (create_unchecked(), claim_null(name))
    };
    ops.push(open_op(
        c.clientid,
        owner.as_bytes(),
        seqid,
        OPEN4_SHARE_ACCESS_BOTH,
        how,
        claim,
    ));
    let r = c.compound(ops).unwrap();
    let ok = open_ok(&r).map(|ok| (ok.stateid.clone(), ok.rflags));
    (r.status, ok)
}

/// A write LOCK of bytes 0..10 with a new lock owner.
fn lock(c: &mut Client, name: &str, open: &stateid4, open_seqid: u32, reclaim: bool) -> nfsstat4 {
    let locker = new_lock_owner(c.clientid, b"lock-owner", open, open_seqid, 0);
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        lock_op(true, reclaim, 0, 10, locker),
    ])
    .unwrap()
    .status
}

fn session(srv: &TestServer, owner: &str, reclaiming: bool) -> Client {
    let mut c = srv.client(1);
    if reclaiming {
        c.establish41_with(owner.as_bytes(), &SessionOptions::reclaiming())
            .unwrap();
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
        c.open_confirm("f", &sid, 1)
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

const BYPASS: stateid4 = stateid4 {
    seqid: u32::MAX,
    other: [0xff; 12],
};

/// The status of the last operation of `ops` run on file `name`.
fn on_file(c: &mut Client, name: &str, op: nfs_argop4) -> nfsstat4 {
    c.compound(vec![nfs_argop4::OP_PUTROOTFH, lookup(name), op])
        .unwrap()
        .status
}

fn write4(sid: &stateid4) -> nfs_argop4 {
    write(sid, 0, stable_how4::FILE_SYNC4, b"data".to_vec())
}

fn read4(sid: &stateid4) -> nfs_argop4 {
    read(sid, 0, 4)
}

fn setsize(sid: &stateid4) -> nfs_argop4 {
    setattr(sid, size_attr(1))
}

fn in_root(c: &mut Client, ops: Vec<nfs_argop4>) -> nfsstat4 {
    let mut all = vec![nfs_argop4::OP_PUTROOTFH];
    all.extend(ops);
    c.compound(all).unwrap().status
}

fn rename(from: &str, to: &str) -> Vec<nfs_argop4> {
    vec![nfs_argop4::OP_SAVEFH, ops::rename(from, to)]
}

fn link(from: &str, to: &str) -> Vec<nfs_argop4> {
    vec![
        nfs_argop4::OP_SAVEFH,
        lookup(from),
        nfs_argop4::OP_SAVEFH,
        nfs_argop4::OP_PUTROOTFH,
        nfs_argop4::OP_LINK(LINK4args {
            newname: to.as_bytes().to_vec(),
        }),
    ]
}

/// RFC 8881 §8.4.2.1 / RFC 7530 §9.6.2: during grace, what could defeat a
/// reclaim still to come is refused with NFS4ERR_GRACE — REMOVE, RENAME,
/// and a size change, READ or WRITE without open state — while I/O under
/// a reclaimed stateid, READ with the bypass stateid, LINK and lookups go
/// on. Once grace is over they all work.
#[test]
fn grace_holds_back_changes_that_could_conflict_with_reclaims() {
    let mut srv = server();
    let mut c = session(&srv, "holder", false);
    for f in ["f", "victim", "moved", "over"] {
        assert_eq!(open(&mut c, f, "oo", 0, false).0, NFS4_OK);
    }
    // Another client of the previous instance keeps grace open while the
    // first one has finished reclaiming.
    let mut late = session(&srv, "late", false);
    assert_eq!(open(&mut late, "g", "lo", 0, false).0, NFS4_OK);
    drop((c, late));

    srv.restart();
    let mut c = session(&srv, "holder", true);
    let (st, ok) = open(&mut c, "f", "oo", 0, true);
    assert_eq!(st, NFS4_OK);
    let (sid, _) = ok.unwrap();
    c.reclaim_complete().unwrap();
    // A client new to this instance: no state before the restart.
    let mut fresh = session(&srv, "fresh", false);

    for who in [&mut c, &mut fresh] {
        assert_eq!(in_root(who, vec![remove("victim")]), NFS4ERR_GRACE);
        assert_eq!(in_root(who, rename("moved", "moved2")), NFS4ERR_GRACE);
        assert_eq!(in_root(who, rename("f", "over")), NFS4ERR_GRACE);
        assert_eq!(on_file(who, "f", setsize(&ANON)), NFS4ERR_GRACE);
        assert_eq!(on_file(who, "f", write4(&ANON)), NFS4ERR_GRACE);
        assert_eq!(on_file(who, "f", write4(&BYPASS)), NFS4ERR_GRACE);
        assert_eq!(on_file(who, "f", read4(&ANON)), NFS4ERR_GRACE);
        assert_eq!(on_file(who, "f", read4(&BYPASS)), NFS4_OK);
        assert_eq!(on_file(who, "f", getattr_size()), NFS4_OK);
    }
    // Under the reclaimed open's stateid.
    assert_eq!(on_file(&mut c, "f", write4(&sid)), NFS4_OK);
    assert_eq!(on_file(&mut c, "f", read4(&sid)), NFS4_OK);
    assert_eq!(on_file(&mut c, "f", setsize(&sid)), NFS4_OK);
    assert_eq!(in_root(&mut fresh, link("f", "f-link")), NFS4_OK);
    // Bad input keeps its own error during grace.
    assert_eq!(
        in_root(&mut fresh, vec![remove("")]),
        nfsstat4::NFS4ERR_INVAL
    );
    // Nothing was changed by the refused operations.
    for name in ["victim", "moved", "over"] {
        assert!(srv.export.join("root").join(name).exists(), "{name}");
    }

    // The late client reclaims and is done: grace ends.
    let mut late = session(&srv, "late", true);
    assert_eq!(open(&mut late, "g", "lo", 0, true).0, NFS4_OK);
    late.reclaim_complete().unwrap();
    assert_eq!(in_root(&mut fresh, vec![remove("victim")]), NFS4_OK);
    assert_eq!(in_root(&mut fresh, rename("moved", "moved2")), NFS4_OK);
    assert_eq!(on_file(&mut fresh, "over", setsize(&ANON)), NFS4_OK);
    assert_eq!(on_file(&mut fresh, "over", write4(&ANON)), NFS4_OK);
    assert_eq!(on_file(&mut fresh, "over", read4(&ANON)), NFS4_OK);
}

/// 4.0: a REMOVE during grace is refused too, and works once grace (one
/// lease for a 4.0 client) is over.
#[test]
fn v40_remove_waits_for_the_end_of_grace() {
    let mut srv = server();
    let mut c = srv.client(0);
    c.establish40(b"rm40").unwrap();
    let (st, ok) = open(&mut c, "f", "oo", 0, false);
    assert_eq!(st, NFS4_OK);
    let (sid, flags) = ok.unwrap();
    if flags & OPEN4_RESULT_CONFIRM != 0 {
        c.open_confirm("f", &sid, 1);
    }
    drop(c);
    srv.restart();
    let started = Instant::now();
    let mut c = srv.client(0);
    c.establish40(b"rm40").unwrap();
    loop {
        let st = in_root(&mut c, vec![remove("f")]);
        if st == NFS4_OK {
            break;
        }
        assert_eq!(st, NFS4ERR_GRACE);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "grace never ended"
        );
        let r = c
            .compound(vec![nfs_argop4::OP_RENEW(RENEW4args {
                clientid: c.clientid,
            })])
            .unwrap();
        assert_eq!(r.status, NFS4_OK);
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "grace ended early"
    );
    assert!(!srv.export.join("root").join("f").exists());
}

fn getattr_size() -> nfs_argop4 {
    getattr(&[FATTR4_SIZE])
}

fn server_with_handles(mode: &str) -> TestServer {
    TestServer::start_with_config(
        &format!(
            "lease_time = 5\ngrace_time = 60\n\n[[export]]\npath = \"/\"\ndir = \"{{export}}/root\"\nfilehandles = \"{mode}\"\n"
        ),
        &[],
    )
}

/// OPEN (creating `name`) and the file's handle.
fn open_with_fh(c: &mut Client, name: &str) -> (stateid4, Vec<u8>) {
    let (st, ok) = open(c, name, "oo", 0, false);
    assert_eq!(st, NFS4_OK);
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(name),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    let fh = fh_of(&r).unwrap_or_else(|| panic!("GETFH: {r:?}"));
    (ok.unwrap().0, fh)
}

fn reclaim_by_fh(c: &mut Client, fh: &[u8]) -> (nfsstat4, Option<stateid4>) {
    let open = open_op(
        c.clientid,
        b"oo",
        0,
        OPEN4_SHARE_ACCESS_BOTH,
        no_create(),
        claim_previous(),
    );
    let r = c.compound(vec![putfh(fh), open]).unwrap();
    let sid = open_ok(&r).map(|ok| ok.stateid.clone());
    (r.status, sid)
}

fn putfh_status(c: &mut Client, fh: &[u8]) -> nfsstat4 {
    c.compound(vec![putfh(fh), getattr_size()]).unwrap().status
}

/// The handle of a file open at a crash stays usable for its CLAIM_PREVIOUS
/// reclaim, with volatile handles that expire at reboot (the open set is
/// persisted) as with persistent ones — also across a second crash before
/// the reclaim. A file closed before the crash keeps its ordinary fate
/// (volatile: expired), and a reclaimed file's handle lives until its last
/// CLOSE.
#[test]
fn handles_of_files_open_at_a_crash_survive_for_reclaim() {
    for mode in ["volatile", "persistent"] {
        let volatile = mode == "volatile";
        let mut srv = server_with_handles(mode);
        let mut c = session(&srv, "fhrecl", false);
        let (_, open_fh) = open_with_fh(&mut c, "open");
        let (closed_sid, closed_fh) = open_with_fh(&mut c, "closed");
        let r = c
            .compound(vec![
                putfh(&closed_fh),
                nfs_argop4::OP_CLOSE(CLOSE4args {
                    seqid: 0,
                    open_stateid: closed_sid,
                }),
            ])
            .unwrap();
        assert_eq!(r.status, NFS4_OK);
        drop(c);

        // Two crashes in a row: the first grace period never ended, so the
        // open set is still there for the second instance.
        srv.restart();
        srv.restart();
        let mut c = session(&srv, "fhrecl", true);
        let closed_status = if volatile {
            nfsstat4::NFS4ERR_FHEXPIRED
        } else {
            NFS4_OK
        };
        assert_eq!(putfh_status(&mut c, &closed_fh), closed_status, "{mode}");
        let (st, sid) = reclaim_by_fh(&mut c, &open_fh);
        assert_eq!(st, NFS4_OK, "{mode}: CLAIM_PREVIOUS by the old handle");
        c.reclaim_complete().unwrap();
        // Grace is over; the file is open again, so its handle lives on.
        assert_eq!(putfh_status(&mut c, &open_fh), NFS4_OK, "{mode}");
        assert_eq!(putfh_status(&mut c, &closed_fh), closed_status, "{mode}");
        let r = c
            .compound(vec![
                putfh(&open_fh),
                nfs_argop4::OP_CLOSE(CLOSE4args {
                    seqid: 0,
                    open_stateid: sid.unwrap(),
                }),
            ])
            .unwrap();
        assert_eq!(r.status, NFS4_OK);
        assert_eq!(
            putfh_status(&mut c, &open_fh),
            closed_status,
            "{mode}: closed"
        );
    }
}
