//! Where COMPOUNDs run: a per-connection queue drained by a few threads of
//! tokio's blocking pool ("runners").
//!
//! File system and sled calls block, so a COMPOUND must never run on a
//! tokio worker. Handing every request to the blocking pool on its own
//! (one `spawn_blocking`, one task to await it, one wake-up of the
//! connection's writer per reply) cost about three context switches per
//! request and most of the server's CPU on small I/O. Here a runner takes
//! requests from its connection's queue one after another for as long as
//! there are any, so a busy connection needs no thread hand-off per
//! request. Each reply is queued as soon as it is encoded (a reply is never
//! held back while the runner works on the next request, which may block);
//! the connection's writer sends whatever replies are waiting in one write.
//!
//! A runner that blocks (a directory fsync, a disk read, a wait for another
//! request) must not hold up the requests behind it: when a request is
//! queued and no runner is idle, another runner is started. Runners are
//! bounded by the connection's in-flight limit, so every queued request
//! has a runner of its own if all others block, and no request waits for
//! one that is blocked. An idle runner waits [`LINGER`] for more work
//! before returning its thread to the pool, so a client that waits for
//! each reply before sending on does not pay for a new hand-off each time;
//! under a steady stream, lingering runners take the queued requests
//! without a new hand-off.
//!
//! RPCSEC_GSS calls take the same path: their checksums and decryption
//! cost CPU in proportion to the data (milliseconds for 1 MiB under
//! krb5p), so the runner, not the network thread, hands them to the
//! engine (`crate::gss::run_call`). A call the engine drops (a replayed
//! sequence number) frees its in-flight slot without a reply.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nfs4d_xdr::rpc::{self, Refusal};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::gss::Outcome;
use nfs4d_core::compound::{self, Followup, RequestCtx};
use nfs4d_core::reply::Record;
use nfs4d_core::server::Server;

/// How long an idle runner waits for the next request.
const LINGER: Duration = Duration::from_millis(2);

/// One COMPOUND call waiting to run.
pub struct Job {
    pub req: RequestCtx,
    pub xid: u32,
    /// The whole record; the COMPOUND arguments start at `args_at`.
    pub rec: Vec<u8>,
    pub args_at: usize,
    /// The connection's in-flight slot, released once the reply is queued.
    pub permit: OwnedSemaphorePermit,
    /// An RPCSEC_GSS call (NULL or COMPOUND): the engine authenticates and
    /// unwraps it here, off the network threads, before anything runs
    /// (`crate::gss`); `args_at` is then unused.
    pub gss: Option<Arc<nfs4d_gss::GssServer>>,
}

/// Starts, on the runtime, work that needs the network after a reply.
pub type FollowupFn = fn(Arc<Server>, Vec<Followup>);

/// A connection's request queue.
pub struct ConnQueue {
    inner: Mutex<Inner>,
    more: Condvar,
    srv: Arc<Server>,
    tx: mpsc::Sender<Record>,
    peer: SocketAddr,
    max_runners: usize,
    followup: FollowupFn,
    rt: tokio::runtime::Handle,
}

#[derive(Default)]
struct Inner {
    jobs: VecDeque<Job>,
    /// Runners started and not yet returned (busy or idle).
    runners: usize,
    /// Runners waiting for work.
    idle: usize,
}

impl ConnQueue {
    /// A queue whose replies go to `tx`. Must be created on the runtime.
    pub fn new(
        srv: Arc<Server>,
        tx: mpsc::Sender<Record>,
        peer: SocketAddr,
        max_runners: usize,
        followup: FollowupFn,
    ) -> Arc<Self> {
        Arc::new(ConnQueue {
            inner: Mutex::default(),
            more: Condvar::new(),
            srv,
            tx,
            peer,
            max_runners: max_runners.max(1),
            followup,
            rt: tokio::runtime::Handle::current(),
        })
    }

    /// The connection's writer.
    pub fn tx(&self) -> &mpsc::Sender<Record> {
        &self.tx
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A runner never panics while holding the lock (COMPOUNDs run
        // outside it, under catch_unwind); recover the data regardless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a request; wakes an idle runner or starts one if needed.
    pub fn submit(self: &Arc<Self>, job: Job) {
        let start = {
            let mut g = self.lock();
            g.jobs.push_back(job);
            if g.idle > 0 {
                self.more.notify_one();
                false
            } else {
                // Every runner is busy with a request of its own.
                let start = g.runners < self.max_runners;
                if start {
                    g.runners += 1;
                }
                start
            }
        };
        if start {
            let q = Arc::clone(self);
            // The JoinHandle is not needed: a runner reports through the
            // connection's writer and ends by itself.
            drop(self.rt.spawn_blocking(move || q.run()));
        }
    }

    /// The next job, waiting up to [`LINGER`] for one; `None` retires the
    /// runner.
    fn next(&self) -> Option<Job> {
        let mut g = self.lock();
        if let Some(j) = g.jobs.pop_front() {
            return Some(j);
        }
        g.idle += 1;
        let (mut g, _) = self
            .more
            .wait_timeout_while(g, LINGER, |g| g.jobs.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        g.idle -= 1;
        let j = g.jobs.pop_front();
        if j.is_none() {
            g.runners -= 1;
        }
        j
    }

    fn run(self: Arc<Self>) {
        while let Some(job) = self.next() {
            let Job {
                req,
                xid,
                rec,
                args_at,
                permit,
                gss,
            } = job;
            let run = catch_unwind(AssertUnwindSafe(|| match &gss {
                Some(engine) => crate::gss::run_call(&self.srv, engine, req, xid, &rec),
                None => match compound::process(&self.srv, &req, xid, &rec[args_at..]) {
                    Ok((r, f)) => Outcome::Reply(r, f),
                    Err(why) => {
                        tracing::warn!(peer = %self.peer, xid, ?why, "COMPOUND refused at the RPC level");
                        Outcome::Reply(rpc::refusal_reply(xid, why).into(), Vec::new())
                    }
                },
            }));
            let (reply, followups) = match run {
                Ok(Outcome::Reply(r, f)) => (Some(r), f),
                // A silently dropped RPCSEC_GSS call: no reply, the slot is free.
                Ok(Outcome::Drop) => (None, Vec::new()),
                Err(_) => {
                    tracing::error!(peer = %self.peer, xid, "COMPOUND processing panicked");
                    (
                        Some(rpc::refusal_reply(xid, Refusal::SystemErr).into()),
                        Vec::new(),
                    )
                }
            };
            drop(rec);
            if let Some(reply) = reply {
                // Fails only when the writer is gone (connection closed).
                let _ = self.tx.blocking_send(reply);
            }
            // The in-flight slot is free once the reply is queued.
            drop(permit);
            if !followups.is_empty() {
                // Followups use the network (back-channel probes): on the
                // runtime, after the reply has been queued.
                let _rt = self.rt.enter();
                (self.followup)(Arc::clone(&self.srv), followups);
            }
        }
    }
}
