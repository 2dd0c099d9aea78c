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
//! How many runners: as many per connection as the machine has cores (at
//! least [`MIN_ACTIVE`]) run requests at once, so one client's connection
//! can use every core. More only add context switches and hand-offs of
//! the locks they share (the handle map's write lock, a directory's inode
//! lock): with a runner per request in flight, 64 requests creating files
//! on two cores took 1.5 times the CPU per request they take with two
//! runners per connection (docs/performance.md, History). A runner that waits (a directory fsync,
//! a flush of the handle map, an S3 or etcd round trip, a callback) must
//! not hold up the requests behind it, though: the code that waits marks
//! the wait (`nfs4d_blocking::region`), and a waiting runner does not
//! count, so another starts if requests are queued. The local store marks
//! its syncs, and its reads of file data the page cache does not hold
//! (cachestat(2)), which wait for the disk. A wait nobody marked (the page of a
//! directory read from disk, a lock held by a waiting runner) only
//! delays the requests behind it: no request waits for one queued behind
//! it (NFSv4 answers NFS4ERR_DELAY to conflicts instead of waiting), so
//! the runner always comes back. Runners are bounded by the connection's
//! in-flight limit. An idle runner waits [`LINGER`] for more work before
//! returning its thread to the pool, so a client that waits for each
//! reply before sending on does not pay for a new hand-off each time.
//!
//! A runner that retires hands the free memory its thread's allocator
//! keeps cached back to the shared heap ([`set_release`]; at most every
//! [`RELEASE_EVERY`] per thread): the thread may sit in the pool for
//! seconds, and with hundreds of them (32 clients × 64 slots on a sync
//! export) those caches were most of the server's peak RSS. A runner
//! entering a marked wait keeps its cache: flushing there too saved
//! another fifth of that RSS but cost small-file writes 11 % more CPU on
//! an async export, where a FILE_SYNC write's wait is short
//! (docs/performance.md, History, 2026-12-07).
//!
//! RPCSEC_GSS calls take the same path: their checksums and decryption
//! cost CPU in proportion to the data (milliseconds for 1 MiB under
//! krb5p), so the runner, not the network thread, hands them to the
//! engine (`crate::gss::run_call`). A call the engine drops (a replayed
//! sequence number) frees its in-flight slot without a reply.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nfs4d_xdr::rpc::{self, Refusal};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::gss::Outcome;
use nfs4d_core::compound::{self, Followup, RequestCtx};
use nfs4d_core::reply::Record;
use nfs4d_core::server::Server;

/// How long an idle runner waits for the next request.
const LINGER: Duration = Duration::from_millis(2);

/// Runners of one connection running requests at once, not counting
/// those in a marked wait, on a machine of one core. Two, not one: while
/// one holds a lock or waits in a way nobody marked, the other goes on.
pub const MIN_ACTIVE: usize = 2;
const _: () = assert!(MIN_ACTIVE >= 1);

/// Runners of one connection running requests at once: one per core the
/// process may use (read once: it looks at the cgroup's CPU quota).
fn active() -> usize {
    static ACTIVE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(MIN_ACTIVE, |n| n.get())
            .max(MIN_ACTIVE)
    })
}

/// What hands this thread's cached free memory back to the allocator.
static RELEASE: OnceLock<fn()> = OnceLock::new();

/// Sets, once, the function a runner calls on its thread when it retires:
/// the binary's allocator keeps a cache of freed blocks per thread, which
/// a thread idle in the pool holds for nothing.
/// Only the binary knows its allocator; without this call nothing is done.
pub fn set_release(f: fn()) {
    // A second call keeps the first function: there is one allocator.
    let _ = RELEASE.set(f);
}

/// A thread releases its cache at most once per this long. Where runners
/// come and go (a FILE_SYNC write's short wait starts another runner,
/// which retires 2 ms later) a flush at every retirement, and refilling
/// the cache after it, took the allocator from 6.1 to 10.0 % of the
/// server's samples under smallfile; with this bound, 7.8 %. The peak RSS
/// at 32 clients × 64 slots is 189 MiB with it, 167-175 without
/// (docs/performance.md, History, 2026-12-07).
const RELEASE_EVERY: Duration = Duration::from_millis(100);

fn release() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> =
            const { std::cell::Cell::new(None) };
    }
    let Some(f) = RELEASE.get() else {
        return;
    };
    let now = std::time::Instant::now();
    let due = LAST.with(|l| {
        let due = l
            .get()
            .is_none_or(|t| now.duration_since(t) >= RELEASE_EVERY);
        if due {
            l.set(Some(now));
        }
        due
    });
    if due {
        f();
    }
}

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
    /// A WRITE's data the connection spliced into a pipe (`crate::wsplice`);
    /// `at` is an offset into `rec`, moved to one into the arguments here.
    pub spliced: Option<compound::SplicedWrite>,
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
    /// Runners that may run requests at once ([`active`]).
    active: usize,
    followup: FollowupFn,
    rt: tokio::runtime::Handle,
}

struct Inner {
    jobs: VecDeque<Job>,
    /// Runners started and not yet returned (busy, waiting or idle).
    runners: usize,
    /// Runners waiting for work.
    idle: usize,
    /// Runners in a marked wait (`nfs4d_blocking::region`).
    waiting: usize,
}

impl Inner {
    /// Runners running a request (or between two), neither idle nor in a
    /// marked wait.
    fn busy(&self) -> usize {
        self.runners.saturating_sub(self.idle + self.waiting)
    }
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
            inner: Mutex::new(Inner {
                jobs: VecDeque::new(),
                runners: 0,
                idle: 0,
                waiting: 0,
            }),
            more: Condvar::new(),
            srv,
            tx,
            peer,
            max_runners: max_runners.max(1),
            active: active(),
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

    /// Queues a request; wakes an idle runner or starts one if fewer than
    /// allowed are running.
    pub fn submit(self: &Arc<Self>, job: Job) {
        let start = {
            let mut g = self.lock();
            g.jobs.push_back(job);
            self.add_runner(&mut g)
        };
        if start {
            self.start_runner();
        }
    }

    /// If another runner may run: wakes an idle one, or reserves a new
    /// one (true: the caller starts it, outside the lock).
    fn add_runner(&self, g: &mut Inner) -> bool {
        if g.jobs.is_empty() || g.busy() >= self.active {
            return false;
        }
        if g.idle > 0 {
            self.more.notify_one();
            return false;
        }
        let start = g.runners < self.max_runners;
        if start {
            g.runners += 1;
        }
        start
    }

    fn start_runner(self: &Arc<Self>) {
        let q = Arc::clone(self);
        // The JoinHandle is not needed: a runner reports through the
        // connection's writer and ends by itself.
        drop(self.rt.spawn_blocking(move || q.run()));
    }

    /// The next job, waiting up to [`LINGER`] for one this runner may take;
    /// `None` retires the runner.
    fn next(&self) -> Option<Job> {
        let mut g = self.lock();
        loop {
            // `busy` counts this runner.
            if !g.jobs.is_empty() && g.busy() <= self.active {
                return g.jobs.pop_front();
            }
            g.idle += 1;
            let (woken, timeout) = self
                .more
                .wait_timeout(g, LINGER)
                .unwrap_or_else(|p| p.into_inner());
            g = woken;
            g.idle -= 1;
            if timeout.timed_out() && (g.jobs.is_empty() || g.busy() > self.active) {
                g.runners -= 1;
                return None;
            }
        }
    }

    fn run(self: Arc<Self>) {
        // This runner's marked waits let another run (see the module doc).
        let _watching = nfs4d_blocking::watch(Arc::new(Waits(Arc::clone(&self))));
        while let Some(job) = self.next() {
            let Job {
                req,
                xid,
                rec,
                args_at,
                permit,
                gss,
                spliced,
            } = job;
            let spliced = spliced.map(|w| compound::SplicedWrite {
                at: w.at.saturating_sub(args_at),
                data: w.data,
            });
            let run = catch_unwind(AssertUnwindSafe(|| match &gss {
                Some(engine) => crate::gss::run_call(&self.srv, engine, req, xid, &rec),
                None => match compound::process(&self.srv, &req, xid, &rec[args_at..], spliced) {
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
        // The thread goes back to the pool, where it may sit for seconds.
        release();
    }
}

/// Counts a runner's marked waits for its queue.
struct Waits(Arc<ConnQueue>);

impl nfs4d_blocking::Watcher for Waits {
    fn enter(&self) {
        let q = &self.0;
        let start = {
            let mut g = q.lock();
            g.waiting += 1;
            q.add_runner(&mut g)
        };
        if start {
            q.start_runner();
        }
    }

    fn leave(&self) {
        let mut g = self.0.lock();
        g.waiting = g.waiting.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::ThreadId;
    use std::time::Instant;

    /// The threads `note` ran on.
    static RELEASED: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

    fn note() {
        let me = std::thread::current().id();
        RELEASED.lock().unwrap_or_else(|p| p.into_inner()).push(me);
    }

    fn no_followups(_: Arc<Server>, _: Vec<Followup>) {}

    /// A runner with nothing left to do gives its thread's cached memory
    /// back (through the function the binary set), once, on its own
    /// thread, before that thread goes back to the pool.
    #[test]
    fn a_runner_that_retires_releases_its_threads_cache() {
        set_release(note);
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("export");
        std::fs::create_dir_all(&export).unwrap();
        let cfg = nfs4d_core::config::Config::parse(&format!(
            "state_dir = \"{}\"\n[[export]]\ndir = \"{}\"\n",
            dir.path().join("state").display(),
            export.display()
        ))
        .unwrap();
        cfg.validate().unwrap();
        let srv = Arc::new(crate::startup::open(cfg, None).unwrap().srv);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let test_thread = std::thread::current().id();
        rt.block_on(async move {
            let (tx, mut rx) = mpsc::channel(4);
            let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
            let q = ConnQueue::new(Arc::clone(&srv), tx, peer, 4, no_followups);
            let permit = Arc::new(tokio::sync::Semaphore::new(1))
                .acquire_owned()
                .await
                .unwrap();
            let req = RequestCtx {
                cred: nfs4d_xdr::rpc::Credential::None,
                gss: None,
                conn: 1,
                peer,
                cb: None,
            };
            // Arguments that do not decode: the runner answers with a
            // refusal, which is all this test needs of it.
            q.submit(Job {
                req,
                xid: 7,
                rec: vec![0xff; 8],
                args_at: 0,
                permit,
                gss: None,
                spliced: None,
            });
            let reply = rx.recv().await.expect("a reply");
            assert!(!reply.bytes.is_empty());
            // The runner lingers, then retires.
            let until = Instant::now() + Duration::from_secs(10);
            while RELEASED.lock().unwrap().is_empty() && Instant::now() < until {
                tokio::time::sleep(LINGER).await;
            }
        });
        let released = RELEASED.lock().unwrap().clone();
        assert_eq!(released.len(), 1, "one runner, one release: {released:?}");
        assert_ne!(released[0], test_thread, "released on the runner's thread");
    }
}
