//! The sans-IO core driven in the same process by the test kit's client
//! (`nfs4d_testkit::inproc`): the transport seam holds for single calls
//! and for the pipelined engine.

use nfs4d_store::{RelPath, Store};
use nfs4d_testkit::inproc::Harness;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::pipeline::{self, Pipeline, Request};
use nfs4d_testkit::wire::{Reply, PROC_NULL};
use nfs4d_testkit::SessionOptions;
use nfs4d_xdr::nfs4::*;

#[test]
fn the_client_drives_the_core_without_a_socket() {
    let h = Harness::new();
    let mut c = h.client(1);
    let null = c.call(PROC_NULL, &[]).unwrap();
    assert!(nfs4d_testkit::wire::results(&null).unwrap().is_empty());
    c.establish41(b"inproc").unwrap();
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            open_op(
                c.clientid,
                b"o",
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                create_unchecked(),
                claim_null("f"),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .unwrap();
    check(&r, "OPEN").unwrap();
    let (fh, sid) = (fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone());
    let r = c
        .compound(vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::FILE_SYNC4, b"in process".to_vec()),
            read(&sid, 3, 7),
        ])
        .unwrap();
    assert_eq!(read_ok(&r).map(|d| &d.data[..]), Some(&b"process"[..]));
    let mut on_store = Vec::new();
    let path = RelPath::parse(b"f").unwrap();
    h.store.read(&path, 0, 64, &mut on_store).unwrap();
    assert_eq!(on_store, b"in process");
}

/// GETATTRs on every slot, `left` of them in all.
struct Getattrs {
    fh: Vec<u8>,
    left: usize,
    replies: usize,
}

impl Pipeline for Getattrs {
    fn next(&mut self, _slot: usize, _now: std::time::Instant) -> Option<Request> {
        self.left = self.left.checked_sub(1)?;
        Some(Request::new(
            vec![putfh(&self.fh), getattr(&[FATTR4_SIZE])],
            false,
        ))
    }

    fn reply(&mut self, _: usize, reply: &Reply, _: std::time::Instant, _: std::time::Instant) {
        assert_eq!(reply.res.status, nfsstat4::NFS4_OK);
        self.replies += 1;
    }

    fn retry(&mut self, _: usize, _: std::time::Instant) {}
}

#[test]
fn the_pipelined_engine_runs_in_process_too() {
    let h = Harness::new();
    let mut c = h.client(1);
    let o = SessionOptions {
        slots: 8,
        ..SessionOptions::default()
    };
    c.establish41_with(b"inproc-pipe", &o).unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .unwrap();
    let mut p = Getattrs {
        fh: fh_of(&r).unwrap(),
        left: 200,
        replies: 0,
    };
    let slots = c.seqids.len();
    pipeline::run(&mut c, slots, &mut p).unwrap();
    assert_eq!(p.replies, 200);
}
