//! An in-process server: the sans-IO core (`nfs4d_core`) over the
//! in-memory store, an in-memory key-value store and a manual clock, driven
//! by the test kit's client through a transport that hands each call record
//! straight to `compound::process`. No socket, no runtime, no sleeps: a test
//! moves time with [`Harness::advance`] and runs the server's periodic work
//! with [`Harness::tick`], so lease, grace and replay behaviour is
//! deterministic.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use nfs4d_core::clock::{Clock, ManualClock};
use nfs4d_core::compound;
use nfs4d_core::config::Config;
use nfs4d_core::context::RequestCtx;
use nfs4d_core::idmap::NumericIds;
use nfs4d_core::server::{Parts, Server, StartError};
use nfs4d_core::state::deleg::{CallbackSink, CbWork};
use nfs4d_kv::MemKv;
use nfs4d_store::{Store, Timespec};
use nfs4d_store_memory::{MemConfig, MemStore};
use nfs4d_xdr::record::Reassembler;
use nfs4d_xdr::rpc::{self, Message, Refusal};

use crate::transport::{Sender, Transport, MAX_RECORD};
use crate::wire::{NFS_PROGRAM, NFS_V4, PROC_COMPOUND, PROC_NULL};
use crate::Client;

/// Most callback work items a harness keeps for a test to look at.
pub const MAX_RECORDED_CALLBACKS: usize = 1024;

/// Callback work the core queued (recalls, probes), kept for the test.
#[derive(Default)]
pub struct Callbacks {
    work: Mutex<VecDeque<CbWork>>,
}

impl Callbacks {
    /// Takes what was queued so far.
    pub fn take(&self) -> Vec<CbWork> {
        self.work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }
}

impl CallbackSink for Callbacks {
    fn push(&self, w: CbWork) -> bool {
        let mut q = self.work.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= MAX_RECORDED_CALLBACKS {
            return false;
        }
        q.push_back(w);
        true
    }
}

/// A server in the test's process, and what survives its restarts.
pub struct Harness {
    /// The running server.
    pub srv: Arc<Server>,
    /// The clock every part of it reads.
    pub clock: Arc<ManualClock>,
    /// The durable state (handle map, client records): kept by [`restart`].
    ///
    /// [`restart`]: Harness::restart
    pub kv: MemKv,
    /// The export's store: kept by [`restart`](Harness::restart).
    pub store: Arc<MemStore>,
    /// Callback work the core queued.
    pub callbacks: Arc<Callbacks>,
    cfg: Config,
    boots: u32,
    conns: Arc<AtomicU64>,
}

/// The configuration of a harness: one export at `/`, a short lease (the
/// clock is manual, so its length costs nothing) and whatever `extra` TOML
/// adds at the top level.
pub fn config(extra: &str) -> Config {
    Config::parse(&format!(
        "lease_time = 10\ngrace_time = 30\n{extra}\n[[export]]\npath = \"/\"\ndir = \"/memory\"\n"
    ))
    .unwrap_or_else(|e| panic!("harness configuration: {e}"))
}

/// Reads the manual clock as store time: milliseconds after 2026-01-01.
struct StoreTime(Arc<ManualClock>);

impl StoreTime {
    const EPOCH: i64 = 1_767_225_600;

    fn now(&self) -> Timespec {
        let ms = self.0.now_ms();
        Timespec {
            sec: Self::EPOCH + (ms / 1000) as i64,
            nsec: ((ms % 1000) * 1_000_000) as u32,
        }
    }
}

impl Harness {
    /// A fresh server with [`config`]`("")`.
    pub fn new() -> Harness {
        Harness::with_config(config(""))
    }

    /// A fresh server with `cfg` (one export, served from a memory store).
    pub fn with_config(cfg: Config) -> Harness {
        Harness::with_store(cfg, MemConfig::default().capabilities)
    }

    /// A fresh server with `cfg` whose memory store offers `caps` (e.g.
    /// [`nfs4d_store_memory::OBJECT_STORE_CAPABILITIES`]).
    pub fn with_store(cfg: Config, caps: nfs4d_store::Capabilities) -> Harness {
        let clock = Arc::new(ManualClock::default());
        let time = StoreTime(clock.clone());
        let store = MemStore::with_config(MemConfig {
            capabilities: caps,
            clock: Arc::new(move || time.now()),
            ..MemConfig::default()
        })
        .unwrap_or_else(|e| panic!("memory store: {e}"));
        let kv = MemKv::new();
        Harness::start(cfg, clock, kv, Arc::new(store), 1).unwrap_or_else(|e| panic!("server: {e}"))
    }

    fn start(
        cfg: Config,
        clock: Arc<ManualClock>,
        kv: MemKv,
        store: Arc<MemStore>,
        boots: u32,
    ) -> Result<Harness, StartError> {
        let callbacks = Arc::new(Callbacks::default());
        let srv = Server::new(Parts {
            cfg: cfg.clone(),
            stores: vec![(store.clone() as Arc<dyn Store>, "/memory".into())],
            kv: Arc::new(kv.clone()),
            mac_key: [7; 16],
            clock: clock.clone(),
            idmap: Arc::new(NumericIds),
            callbacks: callbacks.clone(),
            instance: boots,
            host: "harness".into(),
            cluster: None,
        })?;
        Ok(Harness {
            srv: Arc::new(srv),
            clock,
            kv,
            store,
            callbacks,
            cfg,
            boots,
            conns: Arc::new(AtomicU64::new(1)),
        })
    }

    /// A client of minor version `minor` on a new connection.
    pub fn client(&self, minor: u32) -> Client {
        let conn = self.conns.fetch_add(1, Ordering::Relaxed);
        client_of(&self.srv, conn, minor)
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// What the daemon does once a second: expires leases (and the state
    /// of clients whose lease ran out).
    pub fn tick(&self) {
        self.srv.state.expire_leases();
    }

    /// The server stops (as in a crash: nothing is flushed that was not
    /// already) and a new instance starts on the same store and durable
    /// state, at the same time.
    pub fn restart(self) -> Harness {
        Harness::start(self.cfg, self.clock, self.kv, self.store, self.boots + 1)
            .unwrap_or_else(|e| panic!("restart: {e}"))
    }
}

/// A client of minor version `minor` of any server built in this
/// process, on in-process connection number `conn`.
pub fn client_of(srv: &Arc<Server>, conn: u64, minor: u32) -> Client {
    let c = Conn {
        srv: srv.clone(),
        conn,
        req: Mutex::new(Reassembler::new(MAX_RECORD)),
        replies: Mutex::default(),
        ready: Condvar::new(),
    };
    Client::over(Box::new(InProc(Arc::new(c))), minor)
}

impl Default for Harness {
    fn default() -> Self {
        Harness::new()
    }
}

/// Both ends of an in-process connection.
struct Conn {
    srv: Arc<Server>,
    conn: u64,
    req: Mutex<Reassembler>,
    replies: Mutex<(VecDeque<Vec<u8>>, bool)>,
    ready: Condvar,
}

impl Conn {
    /// Feeds call bytes to the server and queues what it answers. The
    /// sending thread runs the COMPOUND, as a runner thread does in the
    /// daemon.
    fn send(&self, parts: &[&[u8]]) -> io::Result<()> {
        let mut ra = self.req.lock().unwrap_or_else(PoisonError::into_inner);
        for part in parts {
            let mut input = *part;
            // Whole records are served; a partial one waits in the
            // reassembler for the rest.
            while let Some(rec) = ra
                .feed(&mut input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
            {
                if let Some(reply) = self.serve(&rec) {
                    let mut q = self.replies.lock().unwrap_or_else(PoisonError::into_inner);
                    q.0.push_back(reply);
                    self.ready.notify_all();
                }
            }
        }
        Ok(())
    }

    /// The reply to one record; `None` for anything but a call (the
    /// harness has no back channel, so no replies of the client's arrive
    /// that it would need).
    fn serve(&self, rec: &[u8]) -> Option<Vec<u8>> {
        let Message::Call(call) = rpc::parse(rec) else {
            return None;
        };
        let xid = call.xid;
        if (call.prog, call.vers) != (NFS_PROGRAM, NFS_V4) {
            return Some(rpc::refusal_reply(xid, Refusal::ProgUnavail));
        }
        Some(match call.proc_ {
            PROC_NULL => {
                let mut out = Vec::new();
                rpc::begin_success_reply(xid, &mut out);
                rpc::finish_record(&mut out);
                out
            }
            PROC_COMPOUND => {
                let req = RequestCtx {
                    cred: call.cred,
                    gss: None,
                    conn: self.conn,
                    peer: std::net::SocketAddr::from(([127, 0, 0, 1], 700)),
                    cb: None,
                };
                match compound::process(&self.srv, &req, xid, call.args, None) {
                    // Follow-ups probe back channels; this connection has none.
                    Ok((reply, _followups)) => match reply.flatten() {
                        Ok(bytes) => bytes,
                        Err(_) => rpc::refusal_reply(xid, Refusal::SystemErr),
                    },
                    Err(why) => rpc::refusal_reply(xid, why),
                }
            }
            _ => rpc::refusal_reply(xid, Refusal::ProcUnavail),
        })
    }

    fn close(&self) {
        self.replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1 = true;
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
        let q = self
            .0
            .replies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (mut q, _) = self
            .0
            .ready
            .wait_timeout_while(q, wait, |q| q.0.is_empty() && !q.1)
            .unwrap_or_else(PoisonError::into_inner);
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
