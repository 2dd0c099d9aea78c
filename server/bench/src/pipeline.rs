//! Phases of a workload: one [`SlotJob`] per slot of every connection,
//! driven by the test kit's pipelined engine (`nfs4d_testkit::pipeline`),
//! and what a phase measured ([`Tally`]).
//!
//! A slot's job is a small state machine that issues one COMPOUND at a
//! time (e.g. OPEN, then CLOSE, then REMOVE of the same file), so dependent
//! steps are serialised per slot while the slots of a connection overlap.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use nfs4d_testkit::pipeline::Request;
use nfs4d_testkit::pipeline::{self, Pipeline};
use nfs4d_testkit::wire::bad;
pub use nfs4d_testkit::wire::Reply;
use nfs4d_testkit::Client;

use crate::hist::Histogram;

/// The work of one slot: a sequence of COMPOUNDs, each sent after the
/// previous one's reply.
pub trait SlotJob: Send {
    /// The next COMPOUND, or `None` when this slot has nothing more to do.
    /// Once `stopping` is true the job should finish what it started (close
    /// what it opened, remove what it created) and then return `None`.
    fn next(&mut self, stopping: bool) -> Option<Request>;
    /// The reply to the request last returned by `next` (its SEQUENCE
    /// succeeded). An `Err` counts as an error; the job must then be ready
    /// to start a fresh cycle.
    fn reply(&mut self, reply: &Reply, tally: &mut Tally) -> Result<(), String>;
}

/// What a phase measured on one or more connections.
#[derive(Default, Clone)]
pub struct Tally {
    /// COMPOUNDs completed (SEQUENCE not counted as a separate operation).
    pub ops: u64,
    /// COMPOUNDs whose result was wrong (a failing operation, bad data).
    pub errors: u64,
    /// COMPOUNDs resent after NFS4ERR_DELAY or NFS4ERR_GRACE.
    pub retries: u64,
    /// File data moved (READ and WRITE payloads).
    pub bytes: u64,
    /// Workload-defined units: files, directory entries, listings.
    pub items: u64,
    pub listings: u64,
    pub latency: Histogram,
    /// The first few error messages, for the report.
    pub messages: Vec<String>,
}

impl Tally {
    pub fn error(&mut self, msg: String) {
        self.errors += 1;
        if self.messages.len() < 5 {
            self.messages.push(msg);
        }
    }

    pub fn merge(&mut self, o: &Tally) {
        self.ops += o.ops;
        self.errors += o.errors;
        self.retries += o.retries;
        self.bytes += o.bytes;
        self.items += o.items;
        self.listings += o.listings;
        self.latency.merge(&o.latency);
        for m in &o.messages {
            if self.messages.len() < 5 {
                self.messages.push(m.clone());
            }
        }
    }
}

/// When a phase stops, shared by all its connections.
pub struct PhaseCtl {
    /// Replies completed before this instant are warm-up: not counted.
    pub measure_from: Instant,
    /// Stop starting work at this instant.
    pub deadline: Option<Instant>,
    /// Stop starting work after this many COMPOUNDs in the measured window.
    pub max_ops: Option<u64>,
    issued: AtomicU64,
    /// Set when any connection fails, so the others stop too.
    abort: AtomicBool,
}

impl PhaseCtl {
    /// A phase that runs until its jobs run out of work.
    pub fn unbounded() -> PhaseCtl {
        PhaseCtl::new(Duration::ZERO, None, None)
    }

    pub fn new(warmup: Duration, duration: Option<Duration>, max_ops: Option<u64>) -> PhaseCtl {
        let measure_from = Instant::now() + warmup;
        PhaseCtl {
            measure_from,
            deadline: duration.map(|d| measure_from + d),
            max_ops,
            issued: AtomicU64::new(0),
            abort: AtomicBool::new(false),
        }
    }

    fn stopping(&self, now: Instant) -> bool {
        self.abort.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| now >= d)
            || self
                .max_ops
                .is_some_and(|m| self.issued.load(Ordering::Relaxed) >= m)
    }

    fn issued(&self, now: Instant) {
        if now >= self.measure_from {
            self.issued.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The jobs of one connection and what they measured, as the engine's
/// [`Pipeline`].
struct Conn<'a, 'c> {
    jobs: Vec<Box<dyn SlotJob + 'a>>,
    ctl: &'c PhaseCtl,
    tally: Tally,
    /// Replies completed during warm-up are tallied here and dropped.
    warm: Tally,
}

/// The tally a reply completed at `now` counts in.
fn window<'t>(
    ctl: &PhaseCtl,
    now: Instant,
    tally: &'t mut Tally,
    warm: &'t mut Tally,
) -> &'t mut Tally {
    if now >= ctl.measure_from {
        tally
    } else {
        warm
    }
}

impl Pipeline for Conn<'_, '_> {
    fn next(&mut self, slot: usize, now: Instant) -> Option<Request> {
        let req = self.jobs[slot].next(self.ctl.stopping(now))?;
        self.ctl.issued(now);
        Some(req)
    }

    fn reply(&mut self, slot: usize, reply: &Reply, sent: Instant, now: Instant) {
        let t = window(self.ctl, now, &mut self.tally, &mut self.warm);
        t.ops += 1;
        t.latency.record(now.duration_since(sent).as_nanos() as u64);
        if let Err(e) = self.jobs[slot].reply(reply, t) {
            t.error(e);
        }
    }

    fn retry(&mut self, _slot: usize, now: Instant) {
        self.ctl.issued(now);
        window(self.ctl, now, &mut self.tally, &mut self.warm).retries += 1;
    }
}

/// Runs one job per slot on `client` until every job is done. Returns what
/// was measured (replies completed from `ctl.measure_from` on).
fn run_connection<'a>(
    client: &mut Client,
    jobs: Vec<Box<dyn SlotJob + 'a>>,
    ctl: &PhaseCtl,
) -> io::Result<Tally> {
    let slots = jobs.len();
    let mut conn = Conn {
        jobs,
        ctl,
        tally: Tally::default(),
        warm: Tally::default(),
    };
    if let Err(e) = pipeline::run(client, slots, &mut conn) {
        // The other connections of the phase stop too.
        ctl.abort.store(true, Ordering::Relaxed);
        return Err(e);
    }
    Ok(conn.tally)
}

/// A job factory: the job of slot `slot` on connection `conn`.
pub type JobFactory<'a> = dyn Fn(usize, usize) -> Box<dyn SlotJob + 'a> + Sync + 'a;

/// Runs a phase on every session at once (one thread per connection) and
/// returns the merged tally. `monitor` is called about every 50 ms on the
/// calling thread while the phase runs (server resource sampling).
pub fn run_phase(
    sessions: &mut [Client],
    slots: usize,
    make_job: &JobFactory<'_>,
    ctl: &PhaseCtl,
    monitor: &mut dyn FnMut(),
) -> io::Result<Tally> {
    std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter_mut()
            .enumerate()
            .map(|(c, sess)| {
                let n = slots.min(sess.seqids.len());
                let jobs: Vec<Box<dyn SlotJob>> = (0..n).map(|i| make_job(c, i)).collect();
                s.spawn(move || run_connection(sess, jobs, ctl))
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            monitor();
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut total = Tally::default();
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(t)) => total.merge(&t),
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(bad("connection thread panicked"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    })
}
