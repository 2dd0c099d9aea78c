//! The test kit's pipelined engine against the real server: every slot of
//! a session busy at once, WRITE payloads sent apart from their call,
//! skimmed READs, back-channel calls answered mid-pipeline, NFS4ERR_GRACE
//! resent, and a server killed under a running pipeline.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::pipeline::{self, Pipeline, Request};
use nfs4d_testkit::wire::Reply;
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;

/// Bytes of the test file each slot owns.
const REGION: u64 = 128 << 10;

fn session(srv: &TestServer, owner: &str, o: &SessionOptions) -> Client {
    let mut c = srv.client(1);
    c.establish41_with(owner.as_bytes(), o).expect("session");
    c
}

fn slots(n: u32) -> SessionOptions {
    SessionOptions {
        slots: n,
        ..SessionOptions::default()
    }
}

/// What slot `slot` writes: its own bytes, so a payload sent to the wrong
/// place or cut short shows.
fn pattern(slot: usize, len: usize) -> Arc<[u8]> {
    (0..len)
        .map(|i| ((slot * 37 + i * 11) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// OPEN (create) of `name` in the root; handle and stateid.
fn create(c: &mut Client, name: &str) -> (Vec<u8>, stateid4) {
    let r = c
        .compound(create_in_root(c.clientid, name.as_bytes(), name))
        .unwrap();
    let sid = open_ok(&r).unwrap_or_else(|| panic!("OPEN {name}: {r:?}"));
    (fh_of(&r).expect("GETFH"), sid.stateid.clone())
}

/// Per slot: WRITE its region (small slots send a 4 KiB payload, which the
/// writer batches; large ones 100 KiB, sent from the shared buffer), READ
/// it back whole, READ it again skimmed.
struct ReadBack {
    fh: Vec<u8>,
    sid: stateid4,
    data: Vec<Arc<[u8]>>,
    /// Next step of each slot; replies seen per slot, in order.
    step: Vec<usize>,
    seen: Vec<Vec<&'static str>>,
    errors: Vec<String>,
}

impl Pipeline for ReadBack {
    fn next(&mut self, slot: usize, _now: Instant) -> Option<Request> {
        let at = slot as u64 * REGION;
        let len = self.data[slot].len() as u32;
        let (op, skim) = match self.step[slot] {
            0 => (write(&self.sid, at, stable_how4::FILE_SYNC4, vec![]), false),
            1 => (read(&self.sid, at, len), false),
            2 => (read(&self.sid, at, len), true),
            _ => return None,
        };
        let mut req = Request::new(vec![putfh(&self.fh), op], self.step[slot] == 0);
        if self.step[slot] == 0 {
            req.payload = Some(self.data[slot].clone());
        }
        req.skim_read = skim;
        Some(req)
    }

    fn reply(&mut self, slot: usize, reply: &Reply, sent: Instant, now: Instant) {
        assert!(now >= sent);
        let want = &self.data[slot];
        let step = self.step[slot];
        let r = &reply.res;
        let ok = match step {
            0 => write_ok(r).is_some_and(|w| w.count as usize == want.len()),
            1 => read_ok(r).is_some_and(|d| d.data[..] == want[..]) && reply.read_len.is_none(),
            _ => {
                read_ok(r).is_some_and(|d| d.data.is_empty()) && reply.read_len == Some(want.len())
            }
        };
        if !ok {
            self.errors.push(format!("slot {slot} step {step}: {r:?}"));
        }
        self.seen[slot].push(["WRITE", "READ", "READ skimmed"][step]);
        self.step[slot] += 1;
    }

    fn retry(&mut self, slot: usize, _now: Instant) {
        self.errors
            .push(format!("slot {slot}: unexpected DELAY/GRACE"));
    }
}

#[test]
fn every_slot_pipelines_and_payloads_round_trip() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "pipe", &slots(16));
    assert_eq!(c.seqids.len(), 16, "the server grants 16 slots");
    let (fh, sid) = create(&mut c, "f");
    let before = c.seqids.clone();
    let n = c.seqids.len();
    let mut p = ReadBack {
        fh,
        sid,
        data: (0..n)
            .map(|s| pattern(s, if s % 2 == 0 { 4096 + s } else { 100 << 10 }))
            .collect(),
        step: vec![0; n],
        seen: vec![Vec::new(); n],
        errors: Vec::new(),
    };
    pipeline::run(&mut c, n, &mut p).expect("pipeline runs");
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    for (s, seen) in p.seen.iter().enumerate() {
        assert_eq!(seen, &["WRITE", "READ", "READ skimmed"], "slot {s}");
        assert_eq!(c.seqids[s], before[s] + 3, "slot {s} sequence id");
    }
    // On disk, each region holds its slot's bytes.
    let disk = std::fs::read(srv.export.join("f")).unwrap();
    for (s, want) in p.data.iter().enumerate() {
        let at = s * REGION as usize;
        assert_eq!(&disk[at..at + want.len()], &want[..], "slot {s} on disk");
    }
    // The client is back to one call at a time on slot 0.
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
}

/// GETATTRs on every slot until `stop`; counts replies.
struct Getattrs<F: FnMut(u64)> {
    fh: Vec<u8>,
    replies: u64,
    stop: Option<Instant>,
    /// Called with the reply count after each reply.
    on_reply: F,
}

impl<F: FnMut(u64)> Pipeline for Getattrs<F> {
    fn next(&mut self, _slot: usize, now: Instant) -> Option<Request> {
        if self.stop.is_some_and(|s| now >= s) {
            return None;
        }
        Some(Request::new(
            vec![putfh(&self.fh), getattr(&[FATTR4_SIZE])],
            false,
        ))
    }

    fn reply(&mut self, _slot: usize, reply: &Reply, _sent: Instant, _now: Instant) {
        assert_eq!(reply.res.status, nfsstat4::NFS4_OK);
        self.replies += 1;
        (self.on_reply)(self.replies);
    }

    fn retry(&mut self, _slot: usize, _now: Instant) {}
}

#[test]
fn pipelining_needs_a_session_with_the_slots() {
    let srv = TestServer::start(&[]);
    let mut p = Getattrs {
        fh: vec![],
        replies: 0,
        stop: None,
        on_reply: |_| {},
    };
    let mut bare = srv.client(1);
    let err = pipeline::run(&mut bare, 1, &mut p).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let mut c = session(&srv, "few", &slots(4));
    let err = pipeline::run(&mut c, 5, &mut p).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert_eq!(p.replies, 0);
    // Nothing was sent: slot 0 is still in step with the server.
    assert_eq!(
        c.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap().status,
        nfsstat4::NFS4_OK
    );
}

#[test]
fn a_server_killed_mid_pipeline_fails_the_run_promptly() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "doomed", &slots(8));
    let (fh, _) = create(&mut c, "f");
    let pid = srv.pid().to_string();
    let mut p = Getattrs {
        fh,
        replies: 0,
        stop: Some(Instant::now() + Duration::from_secs(60)),
        on_reply: |n| {
            if n == 100 {
                let killed = Command::new("kill").args(["-KILL", &pid]).status();
                assert!(killed.is_ok_and(|s| s.success()), "kill -KILL {pid}");
            }
        },
    };
    let started = Instant::now();
    let err = pipeline::run(&mut c, 8, &mut p).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    assert!(p.replies >= 100);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the run hung for {:?}",
        started.elapsed()
    );
}

#[test]
fn recalls_are_answered_while_pipelining() {
    let srv = TestServer::start_with_config(
        "lease_time = 5\n\n[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n",
        &[],
    );
    let mut a = session(
        &srv,
        "holder",
        &SessionOptions {
            slots: 4,
            back_channel: true,
            ..SessionOptions::default()
        },
    );
    // The server's probe of the back channel.
    a.serve_callbacks(Duration::from_millis(300)).unwrap();
    let r = a
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            open_op(
                a.clientid,
                b"oa",
                0,
                OPEN4_SHARE_ACCESS_READ | OPEN4_SHARE_ACCESS_WANT_READ_DELEG,
                create_unchecked(),
                claim_null("f"),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    let ok = open_ok(&r).unwrap_or_else(|| panic!("OPEN: {r:?}"));
    let deleg = deleg_stateid(&ok.delegation)
        .unwrap_or_else(|| panic!("no delegation: {r:?}"))
        .clone();
    let fh = fh_of(&r).unwrap();

    // While `a` pipelines GETATTRs, `b` opens the file for writing: the
    // server recalls the delegation over `a`'s connection, and the
    // pipeline's reader must answer.
    let mut b = session(&srv, "writer", &SessionOptions::default());
    let mut b_status = None;
    let mut p = Getattrs {
        fh: fh.clone(),
        replies: 0,
        stop: None,
        on_reply: |n| {
            if n == 50 {
                let r = b
                    .compound(vec![
                        nfs_argop4::OP_PUTROOTFH,
                        open_op(
                            b.clientid,
                            b"ob",
                            0,
                            OPEN4_SHARE_ACCESS_WRITE,
                            no_create(),
                            claim_null("f"),
                        ),
                    ])
                    .unwrap();
                b_status = Some(r.status);
            }
        },
    };
    p.stop = Some(Instant::now() + Duration::from_secs(2));
    pipeline::run(&mut a, 4, &mut p).expect("pipeline runs");
    assert!(p.replies > 50, "{} replies", p.replies);
    assert_eq!(b_status, Some(nfsstat4::NFS4ERR_DELAY), "the writer waits");
    let recalled: Vec<&stateid4> = a
        .callbacks
        .iter()
        .filter_map(|op| match op {
            nfs_cb_argop4::OP_CB_RECALL(r) => Some(&r.stateid),
            _ => None,
        })
        .collect();
    assert_eq!(recalled, vec![&deleg], "one CB_RECALL, answered");
    let r = a.compound(vec![putfh(&fh), delegreturn(&deleg)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
}

/// OPEN (create) of one new file per slot, resent by the engine while the
/// server is in grace.
struct Creates<F: FnMut()> {
    clientid: clientid4,
    retries: HashMap<usize, u32>,
    done: Vec<bool>,
    statuses: Vec<nfsstat4>,
    /// Called at the first retry.
    on_first_retry: Option<F>,
}

impl<F: FnMut()> Pipeline for Creates<F> {
    fn next(&mut self, slot: usize, _now: Instant) -> Option<Request> {
        if self.done[slot] {
            return None;
        }
        let name = format!("new-{slot}");
        let open = open_op(
            self.clientid,
            name.as_bytes(),
            0,
            OPEN4_SHARE_ACCESS_BOTH,
            create_unchecked(),
            claim_null(&name),
        );
        Some(Request::new(vec![nfs_argop4::OP_PUTROOTFH, open], true))
    }

    fn reply(&mut self, slot: usize, reply: &Reply, _sent: Instant, _now: Instant) {
        self.statuses.push(reply.res.status);
        self.done[slot] = true;
    }

    fn retry(&mut self, slot: usize, _now: Instant) {
        *self.retries.entry(slot).or_default() += 1;
        if let Some(mut f) = self.on_first_retry.take() {
            f();
        }
    }
}

#[test]
fn grace_is_waited_out_by_resending() {
    let mut srv = TestServer::start_with_config(
        "lease_time = 5\ngrace_time = 60\n\n[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n",
        &[],
    );
    // A client with state, so the restarted server has someone to wait for.
    let mut old = session(&srv, "old", &SessionOptions::default());
    create(&mut old, "kept");
    drop(old);
    srv.restart();
    let mut old = session(&srv, "old", &SessionOptions::reclaiming());

    let mut c = session(&srv, "newcomer", &slots(4));
    let n = c.seqids.len();
    let mut p = Creates {
        clientid: c.clientid,
        retries: HashMap::new(),
        done: vec![false; n],
        statuses: Vec::new(),
        // The only previous client is done: grace ends at once.
        on_first_retry: Some(|| old.reclaim_complete().expect("RECLAIM_COMPLETE")),
    };
    let started = Instant::now();
    pipeline::run(&mut c, n, &mut p).expect("pipeline runs");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "grace_time was waited out"
    );
    assert!(!p.retries.is_empty(), "no request met the grace period");
    assert_eq!(p.statuses, vec![nfsstat4::NFS4_OK; n]);
    for s in 0..n {
        assert!(srv.export.join("root").join(format!("new-{s}")).exists());
    }
}
