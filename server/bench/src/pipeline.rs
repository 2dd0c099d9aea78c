//! The pipelined request engine.
//!
//! Each connection has one session with M slots and keeps up to M COMPOUNDs
//! in flight. The connection's own thread is the *reader*: it decodes each
//! reply, finds its slot from the xid's low bits (replies may come back in
//! any order), hands the result to that slot's job, asks the job for its
//! next request and passes the encoded call to a *writer* thread through a
//! channel. The writer coalesces whatever calls are queued into one socket
//! write, so that M small requests cost one system call rather than M, and
//! sends large WRITE payloads straight from a shared buffer. Separate
//! threads matter: a single thread blocked writing a 1 MiB request while
//! the server blocks writing replies nobody reads would deadlock.
//!
//! A slot runs one [`SlotJob`], a small state machine that issues one
//! COMPOUND at a time (e.g. OPEN, then CLOSE, then REMOVE of the same file),
//! so dependent steps are serialised per slot while the M slots overlap.

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfs4d_xdr::nfs4::*;

use crate::hist::Histogram;
pub use crate::session::Reply;
use crate::session::{
    bad, compound_body, decode, empty_reply, encode_call, pad, Incoming, Session, MAX_SLOTS,
};

/// One COMPOUND to send (without its SEQUENCE, which the engine adds).
pub struct Request {
    pub ops: Vec<nfs_argop4>,
    /// Data of a trailing WRITE whose `data` field is left empty in `ops`.
    pub payload: Option<Arc<[u8]>>,
    /// `sa_cachethis`: set for non-idempotent operations, as the Linux client does.
    pub cache: bool,
    /// Skip the data of a READ result rather than decode it (the job gets
    /// only its length, in [`Reply::read_len`]).
    pub skim_read: bool,
}

impl Request {
    pub fn new(ops: Vec<nfs_argop4>, cache: bool) -> Request {
        Request {
            ops,
            payload: None,
            cache,
            skim_read: false,
        }
    }
}

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

/// A call on its way to the writer thread.
struct Outgoing {
    head: Vec<u8>,
    payload: Option<Arc<[u8]>>,
}

/// A request awaiting its reply.
struct InFlight {
    xid: u32,
    sent: Instant,
    req: Request,
}

struct Slot<'a> {
    job: Box<dyn SlotJob + 'a>,
    inflight: Option<InFlight>,
}

/// Runs one job per slot on `sess` until every job is done. Returns what
/// was measured (replies completed from `ctl.measure_from` on).
pub fn run_connection<'a>(
    sess: &mut Session,
    jobs: Vec<Box<dyn SlotJob + 'a>>,
    ctl: &PhaseCtl,
) -> io::Result<Tally> {
    assert!(jobs.len() <= sess.seqids.len() && jobs.len() <= MAX_SLOTS as usize);
    let wstream = sess.stream.try_clone()?;
    let (tx, rx) = mpsc::channel::<Outgoing>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let r = writer_loop(&wstream, rx);
            if r.is_err() {
                // Unblock the reader, which would otherwise wait for
                // replies to calls that were never sent.
                let _ = wstream.shutdown(Shutdown::Both);
            }
            r
        });
        let result = reader_loop(sess, jobs, ctl, tx);
        if result.is_err() {
            ctl.abort.store(true, Ordering::Relaxed);
        }
        let wres = writer
            .join()
            .unwrap_or_else(|_| Err(bad("writer thread panicked")));
        let tally = result?;
        wres?;
        Ok(tally)
    })
}

fn reader_loop(
    sess: &mut Session,
    jobs: Vec<Box<dyn SlotJob + '_>>,
    ctl: &PhaseCtl,
    tx: mpsc::Sender<Outgoing>,
) -> io::Result<Tally> {
    let mut slots: Vec<Slot> = jobs
        .into_iter()
        .map(|job| Slot {
            job,
            inflight: None,
        })
        .collect();
    let mut tally = Tally::default();
    // Replies completed during warm-up are tallied here and dropped.
    let mut warm = Tally::default();
    let mut active = 0usize;

    let send = |sess: &mut Session, i: usize, req: Request, slot: &mut Slot| -> io::Result<()> {
        let xid = sess.xid(i);
        let body = compound_body(Some(&sess.sequence(i, req.cache)), &req.ops)?;
        let plen = req.payload.as_ref().map_or(0, |p| p.len());
        let head = encode_call(xid, &sess.cred, &body, plen);
        let now = Instant::now();
        ctl.issued(now);
        tx.send(Outgoing {
            head,
            payload: req.payload.clone(),
        })
        .map_err(|_| bad("writer thread gone"))?;
        slot.inflight = Some(InFlight {
            xid,
            sent: now,
            req,
        });
        Ok(())
    };

    for (i, slot) in slots.iter_mut().enumerate() {
        if let Some(req) = slot.job.next(ctl.stopping(Instant::now())) {
            send(sess, i, req, slot)?;
            active += 1;
        }
    }
    while active > 0 {
        let record = sess.reader.next_record()?;
        // Whether the slot awaiting this reply asked for READ data to be
        // skipped (the xid is read before decoding the rest).
        let skim = record
            .get(4..8)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .and_then(|xid| slots.get((xid & (MAX_SLOTS - 1)) as usize))
            .and_then(|s| s.inflight.as_ref())
            .is_some_and(|f| f.req.skim_read);
        let (xid, res) = match decode(&record, skim) {
            Incoming::Reply { xid, res } => (xid, res),
            Incoming::Call { xid } => {
                // No back channel was requested; answer anyway rather than
                // leave the server waiting.
                let _ = tx.send(Outgoing {
                    head: empty_reply(xid),
                    payload: None,
                });
                continue;
            }
            Incoming::Other => continue,
        };
        let i = (xid & (MAX_SLOTS - 1)) as usize;
        let Some(slot) = slots.get_mut(i) else {
            return Err(bad(format!("reply xid {xid:#x} names no slot")));
        };
        let Some(inflight) = slot.inflight.take_if(|f| f.xid == xid) else {
            return Err(bad(format!("unexpected reply xid {xid:#x}")));
        };
        let reply = res.map_err(bad)?;
        let res = &reply.res;
        let now = Instant::now();
        match res.resarray.first() {
            Some(nfs_resop4::OP_SEQUENCE(SEQUENCE4res::NFS4_OK(_))) => {
                sess.seqids[i] = sess.seqids[i].wrapping_add(1);
            }
            _ if matches!(
                res.status,
                nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_GRACE
            ) => {}
            _ => {
                return Err(bad(format!(
                    "SEQUENCE on slot {i} failed: {:?}",
                    res.status
                )))
            }
        }
        let t = if now >= ctl.measure_from {
            &mut tally
        } else {
            &mut warm
        };
        if matches!(
            res.status,
            nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_GRACE
        ) {
            // The server asks to try later: resend the same request after
            // a short pause (rare; pausing the reader is acceptable).
            t.retries += 1;
            std::thread::sleep(Duration::from_millis(2));
            send(sess, i, inflight.req, slot)?;
            continue;
        }
        t.ops += 1;
        t.latency
            .record(now.duration_since(inflight.sent).as_nanos() as u64);
        if let Err(e) = slot.job.reply(&reply, t) {
            t.error(e);
        }
        match slot.job.next(ctl.stopping(now)) {
            Some(req) => send(sess, i, req, slot)?,
            None => active -= 1,
        }
    }
    Ok(tally)
}

/// Sends queued calls, coalescing small ones into one write.
fn writer_loop(mut w: &TcpStream, rx: Receiver<Outgoing>) -> io::Result<()> {
    const BATCH: usize = 256 << 10;
    const ZEROS: [u8; 4] = [0; 4];
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match &msg.payload {
                Some(p) if p.len() > 64 << 10 => {
                    // Large payloads go out from the shared buffer: flush the
                    // batch, then header and data in one vectored write.
                    if !batch.is_empty() {
                        w.write_all(&batch)?;
                        batch.clear();
                    }
                    write_all_vectored(&mut w, &[&msg.head, p, &ZEROS[..pad(p.len())]])?;
                }
                Some(p) => {
                    batch.extend_from_slice(&msg.head);
                    batch.extend_from_slice(p);
                    batch.extend_from_slice(&ZEROS[..pad(p.len())]);
                }
                None => batch.extend_from_slice(&msg.head),
            }
            if batch.len() >= BATCH {
                w.write_all(&batch)?;
                batch.clear();
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            w.write_all(&batch)?;
            batch.clear();
        }
    }
    Ok(())
}

/// `write_all` over several buffers (std's `write_all_vectored` is unstable).
fn write_all_vectored(w: &mut impl Write, bufs: &[&[u8]]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    while !parts.is_empty() {
        let slices: Vec<IoSlice> = parts.iter().map(|b| IoSlice::new(b)).collect();
        let mut n = w.write_vectored(&slices)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "socket accepted no bytes",
            ));
        }
        while n > 0 {
            if n >= parts[0].len() {
                n -= parts[0].len();
                parts.remove(0);
            } else {
                parts[0] = &parts[0][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// A job factory: the job of slot `slot` on connection `conn`.
pub type JobFactory<'a> = dyn Fn(usize, usize) -> Box<dyn SlotJob + 'a> + Sync + 'a;

/// Runs a phase on every session at once (one thread per connection) and
/// returns the merged tally. `monitor` is called about every 50 ms on the
/// calling thread while the phase runs (server resource sampling).
pub fn run_phase(
    sessions: &mut [Session],
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
