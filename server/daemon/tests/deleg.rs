//! Delegations end to end against the real binary (docs/delegations.md):
//! grants, recalls over the 4.1 back channel, DELEGRETURN, revocation
//! after a lease period, CB_GETATTR, claims, the export policy, bad
//! stateids, and a local process breaking a delegation through the file
//! lease the server holds on the backing file.

mod common;

use std::fs::OpenOptions;
use std::io::Read;
use std::time::{Duration, Instant};

use common::TestServer;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;

use nfsstat4::{NFS4ERR_BAD_STATEID, NFS4ERR_DELAY, NFS4ERR_DELEG_REVOKED, NFS4_OK};

const LEASE: &str = "lease_time = 5\n";
const EXPORT: &str = "[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n";

fn server() -> TestServer {
    TestServer::start_with_config(&format!("{LEASE}\n{EXPORT}"), &[])
}

/// A 4.1 client whose connection is also its back channel, after the
/// server's CB_NULL/CB_SEQUENCE probe has been answered.
fn holder(srv: &TestServer, owner: &str) -> Client {
    let mut c = srv.client(1);
    c.establish41_with(
        owner.as_bytes(),
        &SessionOptions {
            back_channel: true,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    c.serve_callbacks(Duration::from_millis(300)).unwrap();
    c
}

/// A 4.1 client without a back channel (never gets delegations).
fn plain(srv: &TestServer, owner: &str) -> Client {
    let mut c = srv.client(1);
    c.establish41(owner.as_bytes()).unwrap();
    c
}

struct Opened {
    status: nfsstat4,
    stateid: Option<stateid4>,
    deleg: Option<open_delegation4>,
    fh: Option<Vec<u8>>,
}

/// OPEN of `name` in the root with `access` (want bits included),
/// creating it with `create`.
fn open(c: &mut Client, name: &str, owner: &str, access: u32, create: bool) -> Opened {
    let how = if create {
        create_unchecked()
    } else {
        no_create()
    };
    open_claim(
        c,
        vec![nfs_argop4::OP_PUTROOTFH],
        owner,
        access,
        how,
        claim_null(name),
    )
}

fn open_claim(
    c: &mut Client,
    mut ops: Vec<nfs_argop4>,
    owner: &str,
    access: u32,
    how: openflag4,
    claim: open_claim4,
) -> Opened {
    ops.push(open_op(c.clientid, owner.as_bytes(), 0, access, how, claim));
    ops.push(nfs_argop4::OP_GETFH);
    let r = c.compound(ops).unwrap();
    Opened {
        status: r.status,
        stateid: open_ok(&r).map(|ok| ok.stateid.clone()),
        deleg: open_ok(&r).map(|ok| ok.delegation.clone()),
        fh: fh_of(&r),
    }
}

/// The stateid of the delegation an OPEN granted, if any.
fn deleg_sid(d: &Option<open_delegation4>) -> Option<stateid4> {
    d.as_ref().and_then(deleg_stateid).cloned()
}

fn delegreturn(c: &mut Client, fh: &[u8], sid: &stateid4) -> nfsstat4 {
    c.compound(vec![putfh(fh), ops::delegreturn(sid)])
        .unwrap()
        .status
}

fn recalls(c: &Client) -> Vec<stateid4> {
    c.callbacks
        .iter()
        .filter_map(|op| match op {
            nfs_cb_argop4::OP_CB_RECALL(r) => Some(r.stateid.clone()),
            _ => None,
        })
        .collect()
}

fn write(c: &mut Client, fh: &[u8], sid: &stateid4, data: &[u8]) -> nfsstat4 {
    c.compound(vec![
        putfh(fh),
        ops::write(sid, 0, stable_how4::FILE_SYNC4, data.to_vec()),
    ])
    .unwrap()
    .status
}

#[test]
fn read_delegation_is_recalled_by_a_conflicting_open_and_returned() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(
        &mut a,
        "f",
        "oa",
        OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
        true,
    );
    assert_eq!(o.status, NFS4_OK);
    let Some(open_delegation4::OPEN_DELEGATE_READ(d)) = &o.deleg else {
        panic!("no read delegation: {:?}\n{}", o.deleg, srv.log());
    };
    assert!(!d.recall);
    let fh = o.fh.unwrap();

    // Another reader does not conflict; a writer does.
    let mut b = plain(&srv, "b");
    assert_eq!(
        open(&mut b, "f", "ob", OPEN4_SHARE_ACCESS_READ, false).status,
        NFS4_OK
    );
    assert_eq!(
        open(&mut b, "f", "ob2", OPEN4_SHARE_ACCESS_WRITE, false).status,
        NFS4ERR_DELAY
    );
    a.serve_callbacks(Duration::from_millis(500)).unwrap();
    assert_eq!(recalls(&a), vec![d.stateid.clone()], "one CB_RECALL");
    // Still recalling: the writer waits.
    assert_eq!(
        open(&mut b, "f", "ob2", OPEN4_SHARE_ACCESS_WRITE, false).status,
        NFS4ERR_DELAY
    );
    assert_eq!(delegreturn(&mut a, &fh, &d.stateid), NFS4_OK);
    assert_eq!(
        open(&mut b, "f", "ob2", OPEN4_SHARE_ACCESS_WRITE, false).status,
        NFS4_OK
    );
    // Returned twice: the stateid is gone.
    assert_eq!(delegreturn(&mut a, &fh, &d.stateid), NFS4ERR_BAD_STATEID);
}

#[test]
fn own_opens_do_not_conflict_and_write_delegation_needs_no_other_opener() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "w", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    let Some(open_delegation4::OPEN_DELEGATE_WRITE(w)) = &o.deleg else {
        panic!("no write delegation: {:?}", o.deleg);
    };
    // The holder's other owners open and write freely.
    let o2 = open(&mut a, "w", "oa2", OPEN4_SHARE_ACCESS_WRITE, false);
    assert_eq!(o2.status, NFS4_OK);
    let fh = o.fh.clone().unwrap();
    assert_eq!(
        write(&mut a, &fh, &w.stateid, b"through the delegation"),
        NFS4_OK
    );
    assert!(recalls(&a).is_empty());

    // A file another client has open gets no write delegation.
    let mut b = plain(&srv, "b");
    assert_eq!(
        open(&mut b, "x", "ob", OPEN4_SHARE_ACCESS_READ, true).status,
        NFS4_OK
    );
    let o = open(
        &mut a,
        "x",
        "oa",
        OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG,
        false,
    );
    assert_eq!(o.status, NFS4_OK);
    assert_eq!(
        o.deleg,
        Some(open_delegation4::OPEN_DELEGATE_NONE_EXT(
            open_none_delegation4::WND4_CONTENTION(false)
        ))
    );
    // Asked for none: told why none came.
    let o = open(
        &mut a,
        "y",
        "oa",
        OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
        true,
    );
    assert_eq!(
        o.deleg,
        Some(open_delegation4::OPEN_DELEGATE_NONE_EXT(
            open_none_delegation4::default(why_no_delegation4::WND4_NOT_WANTED)
        ))
    );
}

#[test]
fn a_client_without_back_channel_gets_no_delegation() {
    let srv = server();
    let mut b = plain(&srv, "b");
    let o = open(
        &mut b,
        "f",
        "ob",
        OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_ANY_DELEG,
        true,
    );
    assert_eq!(o.status, NFS4_OK);
    assert!(deleg_sid(&o.deleg).is_none(), "{:?}", o.deleg);
}

#[test]
fn unreturned_delegation_is_revoked_after_a_lease_and_freed() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_READ, true);
    let sid = deleg_sid(&o.deleg).expect("delegation");
    let fh = o.fh.unwrap();
    let mut b = plain(&srv, "b");
    let started = Instant::now();
    let mut status = NFS4ERR_DELAY;
    while status == NFS4ERR_DELAY && started.elapsed() < Duration::from_secs(20) {
        status = open(&mut b, "f", "ob", OPEN4_SHARE_ACCESS_WRITE, false).status;
        // The holder renews its lease (and accepts the recall) but never
        // returns the delegation.
        a.serve_callbacks(Duration::from_millis(200)).unwrap();
        a.compound(vec![]).unwrap();
    }
    assert_eq!(status, NFS4_OK, "the writer got through after revocation");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "revoked only after about a lease: {waited:?}"
    );
    assert_eq!(recalls(&a).len(), 1);

    let seq = |a: &mut Client| match a.compound(vec![]).unwrap().resarray.first() {
        Some(nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(ok))) => ok.sr_status_flags,
        other => panic!("SEQUENCE: {other:?}"),
    };
    assert_ne!(seq(&mut a) & SEQ4_STATUS_RECALLABLE_STATE_REVOKED, 0);
    let r = a
        .compound(vec![
            putfh(&fh),
            nfs_argop4::OP_READ(READ4args {
                stateid: sid.clone(),
                offset: 0,
                count: 10,
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4ERR_DELEG_REVOKED);
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4ERR_DELEG_REVOKED);
    let r = a
        .compound(vec![nfs_argop4::OP_TEST_STATEID(TEST_STATEID4args {
            ts_stateids: vec![sid.clone()],
        })])
        .unwrap();
    match r.resarray.last() {
        Some(nfs_resop4::OP_TEST_STATEID(TEST_STATEID4res::NFS4_OK(ok))) => {
            assert_eq!(ok.tsr_status_codes, vec![NFS4ERR_DELEG_REVOKED])
        }
        other => panic!("TEST_STATEID: {other:?}"),
    }
    let r = a
        .compound(vec![nfs_argop4::OP_FREE_STATEID(FREE_STATEID4args {
            fsa_stateid: sid,
        })])
        .unwrap();
    assert_eq!(r.status, NFS4_OK);
    assert_eq!(seq(&mut a) & SEQ4_STATUS_RECALLABLE_STATE_REVOKED, 0);
}

/// A holder "a" with a write delegation on the new file "f" (its handle),
/// which answers CB_GETATTR with cached writes: 5000 bytes, a new change.
fn write_delegated(srv: &TestServer) -> (Client, Vec<u8>) {
    let mut a = holder(srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    let Some(open_delegation4::OPEN_DELEGATE_WRITE(_)) = &o.deleg else {
        panic!("no write delegation: {:?}", o.deleg);
    };
    a.cb_attrs = Some((5000, u64::MAX / 2));
    (a, o.fh.unwrap())
}

#[test]
fn getattr_asks_the_write_delegation_holder() {
    let srv = server();
    let (mut a, fh) = write_delegated(&srv);
    let server_size = |b: &mut Client| {
        let r = b
            .compound(vec![putfh(&fh), getattr(&[FATTR4_CHANGE, FATTR4_SIZE])])
            .unwrap();
        match r.resarray.last() {
            Some(nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok))) => {
                let v = &ok.obj_attributes.attr_vals;
                (
                    u64::from_be_bytes(v[0..8].try_into().unwrap()),
                    u64::from_be_bytes(v[8..16].try_into().unwrap()),
                )
            }
            other => panic!("GETATTR: {other:?}"),
        }
    };
    let own_change = {
        let r = a
            .compound(vec![putfh(&fh), getattr(&[FATTR4_CHANGE])])
            .unwrap();
        match r.resarray.last() {
            Some(nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok))) => {
                u64::from_be_bytes(ok.obj_attributes.attr_vals[0..8].try_into().unwrap())
            }
            other => panic!("GETATTR: {other:?}"),
        }
    };
    let serving = std::thread::spawn(move || {
        a.serve_callbacks(Duration::from_secs(2)).unwrap();
        a
    });
    let mut b = plain(&srv, "b");
    let (change, size) = server_size(&mut b);
    let a = serving.join().unwrap();
    assert!(
        a.callbacks
            .iter()
            .any(|c| matches!(c, nfs_cb_argop4::OP_CB_GETATTR(_))),
        "CB_GETATTR sent"
    );
    assert!(recalls(&a).is_empty(), "no recall for a GETATTR");
    assert_eq!(size, 5000, "the holder's size");
    assert!(change > own_change, "a change above the server's own");
}

/// The replies of a pipelined connection, in the order they came.
struct Order {
    reqs: Vec<Vec<nfs_argop4>>,
    sent: Vec<bool>,
    came: Vec<usize>,
    /// Told when the reply of request `last` came.
    last_came: Option<std::sync::mpsc::Sender<()>>,
}

impl nfs4d_testkit::pipeline::Pipeline for Order {
    fn next(&mut self, slot: usize, _now: Instant) -> Option<nfs4d_testkit::pipeline::Request> {
        if std::mem::replace(&mut self.sent[slot], true) {
            return None;
        }
        Some(nfs4d_testkit::pipeline::Request::new(
            self.reqs[slot].clone(),
            false,
        ))
    }

    fn reply(
        &mut self,
        slot: usize,
        r: &nfs4d_testkit::wire::Reply,
        _sent: Instant,
        _now: Instant,
    ) {
        assert!(
            matches!(
                r.res.resarray.last(),
                Some(nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(_)))
            ),
            "slot {slot}: {:?}",
            r.res
        );
        self.came.push(slot);
        if slot == self.reqs.len() - 1 {
            if let Some(tx) = self.last_came.take() {
                let _ = tx.send(());
            }
        }
    }

    fn retry(&mut self, slot: usize, _now: Instant) {
        panic!("slot {slot}: DELAY");
    }
}

/// The server runs only a few requests of a connection at once (more
/// would only contend for the cores), but a request waiting for a client,
/// here GETATTRs waiting for the write delegation holder's CB_GETATTR
/// answer, does not count: the request behind them runs and is answered
/// while the holder has not answered yet.
#[test]
fn requests_waiting_for_a_callback_do_not_hold_up_their_connection() {
    let srv = server();
    let (mut a, fh) = write_delegated(&srv);
    // The holder answers its callbacks only once the last request's reply
    // has come.
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let _ = rx.recv_timeout(Duration::from_secs(30));
        a.serve_callbacks(Duration::from_secs(2)).unwrap();
        a
    });
    let mut b = plain(&srv, "b");
    let asks = 4;
    let mut reqs = vec![vec![putfh(&fh), getattr(&[FATTR4_CHANGE, FATTR4_SIZE])]; asks];
    reqs.push(vec![nfs_argop4::OP_PUTROOTFH, getattr(&[FATTR4_TYPE])]);
    let mut p = Order {
        sent: vec![false; reqs.len()],
        reqs,
        came: Vec::new(),
        last_came: Some(tx),
    };
    nfs4d_testkit::pipeline::run(&mut b, asks + 1, &mut p).expect("pipeline runs");
    let a = holder.join().unwrap();
    assert_eq!(
        p.came.first(),
        Some(&asks),
        "the root's GETATTR answered first: {:?}",
        p.came
    );
    assert_eq!(p.came.len(), asks + 1);
    let asked = a
        .callbacks
        .iter()
        .filter(|c| matches!(c, nfs_cb_argop4::OP_CB_GETATTR(_)))
        .count();
    assert!(asked >= 1, "CB_GETATTR sent");
}

#[test]
fn delegation_claims_and_bad_stateids() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_READ, true);
    let sid = deleg_sid(&o.deleg).expect("delegation");
    let open_sid = o.stateid.unwrap();
    let fh = o.fh.unwrap();
    // An open stateid is not a delegation.
    assert_eq!(delegreturn(&mut a, &fh, &open_sid), NFS4ERR_BAD_STATEID);
    // The delegation belongs to another file than the current one.
    let other = open(&mut a, "g", "oa", OPEN4_SHARE_ACCESS_READ, true);
    assert_eq!(
        delegreturn(&mut a, other.fh.as_ref().unwrap(), &sid),
        NFS4ERR_BAD_STATEID
    );
    // CLAIM_DELEG_CUR_FH with the delegation opens; with an open stateid
    // it is refused.
    let r = open_claim(
        &mut a,
        vec![putfh(&fh)],
        "oc",
        OPEN4_SHARE_ACCESS_READ,
        no_create(),
        open_claim4::CLAIM_DELEG_CUR_FH(sid.clone()),
    );
    assert_eq!(r.status, NFS4_OK);
    let r = open_claim(
        &mut a,
        vec![putfh(&fh)],
        "od",
        OPEN4_SHARE_ACCESS_READ,
        no_create(),
        open_claim4::CLAIM_DELEG_CUR_FH(open_sid),
    );
    assert_eq!(r.status, NFS4ERR_BAD_STATEID);
    // CLAIM_DELEGATE_CUR by name.
    let r = open_claim(
        &mut a,
        vec![nfs_argop4::OP_PUTROOTFH],
        "oe",
        OPEN4_SHARE_ACCESS_READ,
        no_create(),
        open_claim4::CLAIM_DELEGATE_CUR(open_claim_delegate_cur4 {
            delegate_stateid: sid.clone(),
            file: b"f".to_vec(),
        }),
    );
    assert_eq!(r.status, NFS4_OK);
    // The delegation for another name than its file's.
    let r = open_claim(
        &mut a,
        vec![nfs_argop4::OP_PUTROOTFH],
        "of",
        OPEN4_SHARE_ACCESS_READ,
        no_create(),
        open_claim4::CLAIM_DELEGATE_CUR(open_claim_delegate_cur4 {
            delegate_stateid: sid.clone(),
            file: b"g".to_vec(),
        }),
    );
    assert_eq!(r.status, NFS4ERR_BAD_STATEID);
    // Delegations of earlier client instances are not kept to claim.
    let r = open_claim(
        &mut a,
        vec![putfh(&fh)],
        "og",
        OPEN4_SHARE_ACCESS_READ,
        no_create(),
        open_claim4::CLAIM_DELEG_PREV_FH,
    );
    assert_eq!(r.status, nfsstat4::NFS4ERR_NOTSUPP);
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK);
}

#[test]
fn remove_and_rename_recall_delegations() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_READ, true);
    let sid = deleg_sid(&o.deleg).expect("delegation");
    let fh = o.fh.unwrap();
    let mut b = plain(&srv, "b");
    let remove = |b: &mut Client| {
        b.compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_REMOVE(REMOVE4args {
                target: b"f".to_vec(),
            }),
        ])
        .unwrap()
        .status
    };
    assert_eq!(remove(&mut b), NFS4ERR_DELAY);
    a.serve_callbacks(Duration::from_millis(500)).unwrap();
    assert_eq!(recalls(&a), vec![sid.clone()]);
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK);
    assert_eq!(remove(&mut b), NFS4_OK);

    // The holder's own REMOVE (4.1: known by its session) needs no recall.
    let o = open(&mut a, "g", "oa", OPEN4_SHARE_ACCESS_READ, true);
    assert!(deleg_sid(&o.deleg).is_some());
    let r = a
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_RENAME(RENAME4args {
                oldname: b"g".to_vec(),
                newname: b"h".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK);
}

#[test]
fn export_policy_none_grants_nothing() {
    let srv =
        TestServer::start_with_config(&format!("{LEASE}\n{EXPORT}delegations = \"none\"\n"), &[]);
    let mut a = holder(&srv, "a");
    let o = open(
        &mut a,
        "f",
        "oa",
        OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_ANY_DELEG,
        true,
    );
    assert_eq!(o.status, NFS4_OK);
    assert!(deleg_sid(&o.deleg).is_none(), "{:?}", o.deleg);
    let srv =
        TestServer::start_with_config(&format!("{LEASE}\n{EXPORT}delegations = \"read\"\n"), &[]);
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    assert!(deleg_sid(&o.deleg).is_none(), "no write delegation");
    let o = open(&mut a, "g", "oa", OPEN4_SHARE_ACCESS_READ, true);
    assert!(matches!(
        o.deleg,
        Some(open_delegation4::OPEN_DELEGATE_READ(_))
    ));
}

/// The SMB oplock break: a local process opening the backing file of a
/// write-delegated file waits in open() until the server has recalled the
/// delegation and the holder has returned it, then sees the holder's data.
#[test]
fn local_open_breaks_the_delegation_and_sees_the_data() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    let Some(open_delegation4::OPEN_DELEGATE_WRITE(w)) = &o.deleg else {
        panic!("no write delegation: {:?}\n{}", o.deleg, srv.log());
    };
    let fh = o.fh.unwrap();
    let sid = w.stateid.clone();
    let path = srv.export.join("root").join("f");
    // A local reader, in its own thread: its open blocks on the lease.
    let local = std::thread::spawn(move || {
        let started = Instant::now();
        let mut f = OpenOptions::new().read(true).open(&path).unwrap();
        let opened = started.elapsed();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        (opened, s)
    });
    // The holder, seeing the recall, flushes what it had cached and
    // returns the delegation.
    let deadline = Instant::now() + Duration::from_secs(10);
    while recalls(&a).is_empty() && Instant::now() < deadline {
        a.serve_callbacks(Duration::from_millis(100)).unwrap();
    }
    assert_eq!(recalls(&a), vec![sid.clone()], "{}", srv.log());
    assert_eq!(write(&mut a, &fh, &sid, b"cached by the client"), NFS4_OK);
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK);
    let (opened, data) = local.join().unwrap();
    assert_eq!(data, "cached by the client");
    assert!(
        opened < Duration::from_secs(10),
        "the local open waited for the return, not the kernel's break timeout: {opened:?}"
    );
    assert!(srv.log().contains("local process opened a delegated file"));
}

fn want(c: &mut Client, fh: Option<&[u8]>, want: u32) -> (nfsstat4, Option<open_delegation4>) {
    let put = match fh {
        Some(fh) => putfh(fh),
        None => nfs_argop4::OP_PUTROOTFH,
    };
    let r = c
        .compound(vec![
            put,
            nfs_argop4::OP_WANT_DELEGATION(WANT_DELEGATION4args {
                wda_want: want,
                wda_claim: deleg_claim4::CLAIM_FH,
            }),
        ])
        .unwrap();
    let d = r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_WANT_DELEGATION(WANT_DELEGATION4res::NFS4_OK(d)) => Some(d.clone()),
        _ => None,
    });
    (r.status, d)
}

#[test]
fn want_delegation_without_open() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let mut b = plain(&srv, "b");
    let o = open(&mut b, "f", "ob", OPEN4_SHARE_ACCESS_WRITE, true);
    let fh_f = o.fh.unwrap();
    let g = open(&mut b, "g", "ob", OPEN4_SHARE_ACCESS_READ, true);
    let fh_g = g.fh.unwrap();
    // Another client writes f: no read delegation.
    let (st, d) = want(&mut a, Some(&fh_f), OPEN4_SHARE_ACCESS_WANT_READ_DELEG);
    assert_eq!(st, NFS4_OK);
    assert_eq!(
        d,
        Some(open_delegation4::OPEN_DELEGATE_NONE_EXT(
            open_none_delegation4::WND4_CONTENTION(false)
        ))
    );
    // g is only read: "any" gets a read delegation (a write one would
    // conflict with the reader).
    let (st, d) = want(&mut a, Some(&fh_g), OPEN4_SHARE_ACCESS_WANT_ANY_DELEG);
    assert_eq!(st, NFS4_OK);
    assert!(
        matches!(d, Some(open_delegation4::OPEN_DELEGATE_READ(_))),
        "{d:?}"
    );
    let (_, d) = want(&mut a, Some(&fh_g), OPEN4_SHARE_ACCESS_WANT_CANCEL);
    assert_eq!(
        d,
        Some(open_delegation4::OPEN_DELEGATE_NONE_EXT(
            open_none_delegation4::default(why_no_delegation4::WND4_CANCELLED)
        ))
    );
    // Bad wants and objects.
    assert_eq!(want(&mut a, Some(&fh_g), 0x0700).0, nfsstat4::NFS4ERR_INVAL);
    assert_eq!(
        want(&mut a, None, OPEN4_SHARE_ACCESS_WANT_READ_DELEG).0,
        nfsstat4::NFS4ERR_ISDIR
    );
}

#[test]
fn near_the_limit_clients_are_asked_to_return_delegations() {
    let srv = TestServer::start_with_config(
        &format!("{LEASE}\n[limits]\nmax_delegations = 2\n\n{EXPORT}"),
        &[],
    );
    let mut a = holder(&srv, "a");
    for name in ["f", "g"] {
        let o = open(&mut a, name, "oa", OPEN4_SHARE_ACCESS_READ, true);
        assert!(deleg_sid(&o.deleg).is_some(), "{name}: {:?}", o.deleg);
    }
    // The limit: no third delegation, and the reason says so.
    let o = open(
        &mut a,
        "h",
        "oa",
        OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
        true,
    );
    assert_eq!(
        o.deleg,
        Some(open_delegation4::OPEN_DELEGATE_NONE_EXT(
            open_none_delegation4::WND4_RESOURCE(false)
        ))
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let asked = |a: &Client| {
        a.callbacks.iter().find_map(|c| match c {
            nfs_cb_argop4::OP_CB_RECALL_ANY(r) => Some(r.craa_objects_to_keep),
            _ => None,
        })
    };
    while asked(&a).is_none() && Instant::now() < deadline {
        a.serve_callbacks(Duration::from_millis(200)).unwrap();
    }
    assert_eq!(asked(&a), Some(1), "CB_RECALL_ANY keeping half");
}

/// After a restart the client gets its delegation back with its open
/// (CLAIM_PREVIOUS with delegate_type, RFC 8881 §10.2.1).
#[test]
fn delegations_are_reclaimed_after_a_restart() {
    let mut srv =
        TestServer::start_with_config(&format!("{LEASE}grace_time = 60\n\n{EXPORT}"), &[]);
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    assert!(matches!(
        o.deleg,
        Some(open_delegation4::OPEN_DELEGATE_WRITE(_))
    ));
    drop(a);
    srv.restart();
    let mut a = srv.client(1);
    a.establish41_with(
        b"a",
        &SessionOptions {
            back_channel: true,
            reclaim_complete: false,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let r = open_claim(
        &mut a,
        vec![nfs_argop4::OP_PUTROOTFH, lookup("f")],
        "oa",
        OPEN4_SHARE_ACCESS_BOTH,
        openflag4::default(opentype4::OPEN4_NOCREATE),
        open_claim4::CLAIM_PREVIOUS(open_delegation_type4::OPEN_DELEGATE_WRITE),
    );
    assert_eq!(r.status, NFS4_OK);
    match &r.deleg {
        Some(open_delegation4::OPEN_DELEGATE_WRITE(w)) => assert!(!w.recall),
        other => panic!("write delegation not reclaimed: {other:?}"),
    }
    a.reclaim_complete().unwrap();
    // It is a delegation like any other: another client's open recalls it.
    let mut b = plain(&srv, "b");
    assert_eq!(
        open(&mut b, "f", "ob", OPEN4_SHARE_ACCESS_READ, false).status,
        NFS4ERR_DELAY
    );
}

/// Waits up to 10 s for the holder to see a CB_RECALL.
fn await_recall(c: &mut Client) -> Vec<stateid4> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while recalls(c).is_empty() && Instant::now() < deadline {
        c.serve_callbacks(Duration::from_millis(100)).unwrap();
    }
    recalls(c)
}

/// A local process changing the names or attributes of a delegated file
/// (which does not break a Linux file lease) recalls the delegation all
/// the same, and the holder can return it even when the file's name is
/// gone or now belongs to another file (pynfs 4.0 DELEG16–20).
#[test]
fn local_namespace_and_attribute_changes_recall_the_delegation() {
    type Change = fn(&std::path::Path);
    let changes: [(&str, Change); 5] = [
        ("unlink", |f| std::fs::remove_file(f).unwrap()),
        ("rename", |f| {
            std::fs::rename(f, f.with_extension("moved")).unwrap();
        }),
        ("rename over", |f| {
            let other = f.with_extension("other");
            std::fs::write(&other, b"other").unwrap();
            std::fs::rename(&other, f).unwrap();
        }),
        ("link", |f| {
            std::fs::hard_link(f, f.with_extension("link")).unwrap();
        }),
        ("chmod", |f| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }),
    ];
    let srv = server();
    for (i, (what, change)) in changes.into_iter().enumerate() {
        let mut a = holder(&srv, &format!("a{i}"));
        let name = format!("f{i}");
        let o = open(&mut a, &name, "oa", OPEN4_SHARE_ACCESS_READ, true);
        let sid = deleg_sid(&o.deleg)
            .unwrap_or_else(|| panic!("{what}: no delegation: {:?}\n{}", o.deleg, srv.log()));
        let fh = o.fh.unwrap();
        change(&srv.export.join("root").join(&name));
        assert_eq!(
            await_recall(&mut a),
            vec![sid.clone()],
            "{what}: no recall\n{}",
            srv.log()
        );
        assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK, "{what}");
    }
    assert!(srv
        .log()
        .contains("local process renamed, removed, linked or changed the attributes"));
}

/// The holder's own changes through the server raise the same inotify
/// events as a local process's; they must not recall its delegation.
#[test]
fn the_holders_own_setattr_rename_and_link_keep_its_delegation() {
    let srv = server();
    let mut a = holder(&srv, "a");
    let o = open(&mut a, "f", "oa", OPEN4_SHARE_ACCESS_BOTH, true);
    let Some(open_delegation4::OPEN_DELEGATE_WRITE(w)) = &o.deleg else {
        panic!("no write delegation: {:?}\n{}", o.deleg, srv.log());
    };
    let sid = w.stateid.clone();
    let open_sid = o.stateid.unwrap();
    let fh = o.fh.unwrap();
    let mode = fattr4 {
        attrmask: vec![0, 1 << (FATTR4_MODE - 32)],
        attr_vals: 0o640u32.to_be_bytes().to_vec(),
    };
    let r = a
        .compound(vec![
            putfh(&fh),
            nfs_argop4::OP_SETATTR(SETATTR4args {
                stateid: open_sid,
                obj_attributes: mode,
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK, "SETATTR mode");
    let r = a
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_RENAME(RENAME4args {
                oldname: b"f".to_vec(),
                newname: b"g".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK, "RENAME");
    let r = a
        .compound(vec![
            putfh(&fh),
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_LINK(LINK4args {
                newname: b"h".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK, "LINK");
    // The lease watcher runs on every SIGIO and once a second.
    a.serve_callbacks(Duration::from_millis(2500)).unwrap();
    assert!(recalls(&a).is_empty(), "{:?}\n{}", recalls(&a), srv.log());
    // A local chmod after all that is still seen.
    use std::os::unix::fs::PermissionsExt;
    let local = srv.export.join("root").join("g");
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(await_recall(&mut a), vec![sid.clone()], "{}", srv.log());
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK);
}

/// A directory above a delegated file renamed behind the server's back
/// recalls the delegation (the holder reaches the file by its path); the
/// holder renaming that directory through the server does not.
#[test]
fn renaming_a_directory_above_the_file_recalls_unless_the_server_does_it() {
    let srv = server();
    let root = srv.export.join("root");
    std::fs::create_dir_all(root.join("top/mid")).unwrap();
    let open_below = |c: &mut Client, top: &str| {
        open_claim(
            c,
            vec![nfs_argop4::OP_PUTROOTFH, lookup(top), lookup("mid")],
            "oa",
            OPEN4_SHARE_ACCESS_READ,
            create_unchecked(),
            claim_null("f"),
        )
    };
    let mut a = holder(&srv, "a");
    let o = open_below(&mut a, "top");
    let sid = deleg_sid(&o.deleg).expect("delegation");
    let fh = o.fh.unwrap();
    // Through the server, by the holder: no recall.
    let r = a
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_RENAME(RENAME4args {
                oldname: b"top".to_vec(),
                newname: b"top2".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, NFS4_OK);
    a.serve_callbacks(Duration::from_millis(2500)).unwrap();
    assert!(recalls(&a).is_empty(), "{}", srv.log());
    // Behind the server's back, two levels up: recalled.
    std::fs::rename(root.join("top2"), root.join("top3")).unwrap();
    assert_eq!(await_recall(&mut a), vec![sid.clone()], "{}", srv.log());
    assert_eq!(delegreturn(&mut a, &fh, &sid), NFS4_OK);
}
