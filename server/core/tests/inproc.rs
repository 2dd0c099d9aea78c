//! The test kit's client driving the sans-IO core in the same process: a
//! transport that hands each call record to `compound::process` and queues
//! the reply record, over a local store, an in-memory key-value store and a
//! manual clock. No socket, no runtime: what the core answers is all there
//! is between the client and the server state.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use nfs4d_core::clock::ManualClock;
use nfs4d_core::compound;
use nfs4d_core::config::Config;
use nfs4d_core::context::RequestCtx;
use nfs4d_core::idmap::NumericIds;
use nfs4d_core::server::{Parts, Server};
use nfs4d_core::state::deleg::NoCallbacks;
use nfs4d_kv::MemKv;
use nfs4d_store_local::LocalStore;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::pipeline::{self, Pipeline, Request};
use nfs4d_testkit::transport::{Sender, Transport, MAX_RECORD};
use nfs4d_testkit::wire::{Reply, NFS_PROGRAM, NFS_V4, PROC_COMPOUND, PROC_NULL};
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::record::Reassembler;
use nfs4d_xdr::rpc::{self, Message, Refusal};

/// Both ends of an in-process connection.
struct Conn {
    srv: Arc<Server>,
    req: Mutex<Reassembler>,
    replies: Mutex<(VecDeque<Vec<u8>>, bool)>,
    ready: Condvar,
}

impl Conn {
    /// Feeds call bytes to the server and queues what it answers. The
    /// caller's thread runs the COMPOUND, as a runner thread does in the
    /// daemon.
    fn send(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut ra = self.req.lock().unwrap();
        for part in parts {
            let mut input = *part;
            // Whole records are served; a partial one waits in the
            // reassembler for the rest.
            while let Some(rec) = ra
                .feed(&mut input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                let reply = self.serve(&rec);
                let mut q = self.replies.lock().unwrap();
                q.0.push_back(reply);
                self.ready.notify_all();
            }
        }
        Ok(())
    }

    fn serve(&self, rec: &[u8]) -> Vec<u8> {
        let Message::Call(call) = rpc::parse(rec) else {
            panic!("not a call");
        };
        let xid = call.xid;
        if (call.prog, call.vers) != (NFS_PROGRAM, NFS_V4) {
            return rpc::refusal_reply(xid, Refusal::ProgUnavail);
        }
        match call.proc_ {
            PROC_NULL => {
                let mut out = Vec::new();
                rpc::begin_success_reply(xid, &mut out);
                rpc::finish_record(&mut out);
                out
            }
            PROC_COMPOUND => {
                let req = RequestCtx {
                    cred: call.cred,
                    conn: 1,
                    peer: "127.0.0.1:1".parse().unwrap(),
                    cb: None,
                };
                match compound::process(&self.srv, &req, xid, call.args) {
                    // Follow-ups probe back channels; this connection has none.
                    Ok((reply, _followups)) => reply.flatten(),
                    Err(why) => rpc::refusal_reply(xid, why),
                }
            }
            _ => rpc::refusal_reply(xid, Refusal::ProcUnavail),
        }
    }

    fn close(&self) {
        self.replies.lock().unwrap().1 = true;
        self.ready.notify_all();
    }
}

struct InProc(Arc<Conn>);

impl Sender for InProc {
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.0.send(parts)
    }

    fn close(&mut self) {
        self.0.close();
    }
}

impl Transport for InProc {
    fn recv(&mut self, wait: Duration) -> io::Result<Vec<u8>> {
        let q = self.0.replies.lock().unwrap();
        let (mut q, _) = self
            .0
            .ready
            .wait_timeout_while(q, wait, |q| q.0.is_empty() && !q.1)
            .unwrap();
        match q.0.pop_front() {
            Some(r) => Ok(r),
            None if q.1 => Err(io::ErrorKind::UnexpectedEof.into()),
            None => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    fn sender(&self) -> io::Result<Box<dyn Sender>> {
        Ok(Box::new(InProc(self.0.clone())))
    }
}

/// A server over `dir` with a manual clock (for tests that move time; the
/// ones here do not); a client connected to it.
fn start(dir: &std::path::Path) -> (Arc<ManualClock>, Client) {
    let export = dir.join("export");
    std::fs::create_dir_all(&export).unwrap();
    let cfg = Config::parse(&format!(
        "[[export]]\npath = \"/\"\ndir = \"{}\"\n",
        export.display()
    ))
    .unwrap();
    let clock = Arc::new(ManualClock::default());
    let store = LocalStore::with_fd_cache(&export, 16).unwrap();
    let srv = Server::new(Parts {
        cfg,
        stores: vec![(Arc::new(store), export)],
        kv: Arc::new(MemKv::new()),
        mac_key: [5; 16],
        clock: clock.clone(),
        idmap: Arc::new(NumericIds),
        callbacks: Arc::new(NoCallbacks),
        instance: 1,
        host: "inproc".into(),
        cluster: None,
    })
    .unwrap();
    let conn = Arc::new(Conn {
        srv: Arc::new(srv),
        req: Mutex::new(Reassembler::new(MAX_RECORD)),
        replies: Mutex::default(),
        ready: Condvar::new(),
    });
    (clock, Client::over(Box::new(InProc(conn)), 1))
}

#[test]
fn the_client_drives_the_core_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (_clock, mut c) = start(dir.path());
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
    assert_eq!(
        std::fs::read(dir.path().join("export/f")).unwrap(),
        b"in process"
    );
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
    let dir = tempfile::tempdir().unwrap();
    let (_clock, mut c) = start(dir.path());
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
