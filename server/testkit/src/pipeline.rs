//! Pipelined use of a [`Client`]'s session: one COMPOUND in flight on each
//! of its slots at once.
//!
//! The calling thread is the *reader*: it decodes each reply, finds its
//! slot from the xid's low bits (replies may come back in any order),
//! hands the result to the [`Pipeline`], asks it for the slot's next
//! request and passes the encoded call to a *writer* thread through a
//! channel. The writer coalesces whatever calls are queued into one write,
//! so that M small requests cost one system call rather than M, and sends
//! large WRITE payloads straight from a shared buffer. Separate threads
//! matter: a single thread blocked writing a 1 MiB request while the
//! server blocks writing replies nobody reads would deadlock.
//!
//! Each slot issues one COMPOUND at a time, so a pipeline serialises the
//! dependent steps of a slot (OPEN, then CLOSE of the same file) while
//! the slots overlap.

use std::io;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfs4d_xdr::nfs4::*;

use crate::client::{Client, MAX_SLOTS};
use crate::transport::Sender;
use crate::wire::{self, bad, Incoming, Reply, PROC_COMPOUND};

/// One COMPOUND to send (without its SEQUENCE, which the engine adds).
pub struct Request {
    pub ops: Vec<nfs_argop4>,
    /// Data of a trailing WRITE whose `data` field is left empty in `ops`.
    pub payload: Option<Arc<[u8]>>,
    /// `sa_cachethis`: set for non-idempotent operations, as the Linux
    /// client does.
    pub cache: bool,
    /// Skip the data of a READ result rather than decode it (the reply
    /// gives only its length, in [`Reply::read_len`]).
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

/// What a pipelined connection runs.
pub trait Pipeline {
    /// The next request of `slot`, or `None` when the slot has no more
    /// work. `now` is the time it would be sent.
    fn next(&mut self, slot: usize, now: Instant) -> Option<Request>;

    /// The reply to `slot`'s request sent at `sent`, whose SEQUENCE
    /// succeeded, received at `now`.
    fn reply(&mut self, slot: usize, reply: &Reply, sent: Instant, now: Instant);

    /// The server answered `slot`'s request with NFS4ERR_DELAY or
    /// NFS4ERR_GRACE (at `now`); the engine sends it again shortly.
    fn retry(&mut self, slot: usize, now: Instant);
}

/// How long the reader pauses before resending a request the server asked
/// to try later (rare; pausing the reader then is acceptable).
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// Runs `p` on the first `slots` slots of `c`'s session until every slot
/// is out of work. Fails on a transport error, an undecodable reply, a
/// reply nobody waits for, or a failed SEQUENCE other than DELAY/GRACE.
pub fn run<P: Pipeline>(c: &mut Client, slots: usize, p: &mut P) -> io::Result<()> {
    if c.session.is_none() || slots > c.seqids.len() || slots > MAX_SLOTS as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "pipelining {slots} slots needs a session with that many ({} granted)",
                c.seqids.len()
            ),
        ));
    }
    let mut sender = c.transport.sender()?;
    let (tx, rx) = mpsc::channel::<Outgoing>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let r = writer_loop(&mut *sender, rx);
            if r.is_err() {
                // Unblock the reader, which would otherwise wait for
                // replies to calls that were never sent.
                sender.close();
            }
            r
        });
        let result = Reader {
            c,
            tx,
            inflight: (0..slots).map(|_| None).collect(),
        }
        .run(p);
        let wres = writer
            .join()
            .unwrap_or_else(|_| Err(bad("writer thread panicked")));
        match (result, wres) {
            // The reader found the writer gone: the writer says why.
            (Err(r), Err(w)) if r.kind() == io::ErrorKind::BrokenPipe => Err(w),
            (Err(r), _) => Err(r),
            (Ok(()), w) => w,
        }
    })
}

/// What the reader meets when the writer thread has ended.
fn writer_gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "writer thread gone")
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

struct Reader<'c> {
    c: &'c mut Client,
    tx: mpsc::Sender<Outgoing>,
    inflight: Vec<Option<InFlight>>,
}

impl Reader<'_> {
    fn send(&mut self, slot: usize, req: Request) -> io::Result<()> {
        let c = &mut *self.c;
        let xid = c.next_xid(slot);
        let body = wire::compound_body(c.minor, Some(&c.sequence(slot, req.cache)), &req.ops)?;
        let plen = req.payload.as_ref().map_or(0, |p| p.len());
        let head = wire::encode_call(xid, &c.cred, PROC_COMPOUND, &body, plen);
        let sent = Instant::now();
        self.tx
            .send(Outgoing {
                head,
                payload: req.payload.clone(),
            })
            .map_err(|_| writer_gone())?;
        self.inflight[slot] = Some(InFlight { xid, sent, req });
        Ok(())
    }

    /// Sends `slot`'s next request; false when the slot is done.
    fn send_next<P: Pipeline>(&mut self, p: &mut P, slot: usize, now: Instant) -> io::Result<bool> {
        match p.next(slot, now) {
            Some(req) => self.send(slot, req).map(|()| true),
            None => Ok(false),
        }
    }

    fn run<P: Pipeline>(mut self, p: &mut P) -> io::Result<()> {
        let mut active = 0usize;
        for slot in 0..self.inflight.len() {
            if self.send_next(p, slot, Instant::now())? {
                active += 1;
            }
        }
        while active > 0 {
            let record = self.c.recv_record()?;
            // Whether the slot awaiting this reply asked for READ data to
            // be skipped (the xid is read before decoding the rest).
            let skim = record
                .get(4..8)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .and_then(|xid| self.inflight.get((xid & (MAX_SLOTS - 1)) as usize))
                .and_then(|f| f.as_ref())
                .is_some_and(|f| f.req.skim_read);
            let (xid, res) = match wire::decode(&record, skim) {
                Incoming::Reply { xid, res } => (xid, res),
                Incoming::Call { xid, proc_, args } => {
                    let out = self.c.answer_callback(xid, proc_, args);
                    self.tx
                        .send(Outgoing {
                            head: out,
                            payload: None,
                        })
                        .map_err(|_| writer_gone())?;
                    continue;
                }
                Incoming::Other => continue,
            };
            let slot = (xid & (MAX_SLOTS - 1)) as usize;
            let Some(inflight) = self
                .inflight
                .get_mut(slot)
                .and_then(|f| f.take_if(|f| f.xid == xid))
            else {
                return Err(bad(format!("unexpected reply xid {xid:#x}")));
            };
            let reply = res.map_err(bad)?;
            let now = Instant::now();
            let later = matches!(
                reply.res.status,
                nfsstat4::NFS4ERR_DELAY | nfsstat4::NFS4ERR_GRACE
            );
            if !self.c.sequenced(slot, &reply.res) && !later {
                return Err(bad(format!(
                    "SEQUENCE on slot {slot} failed: {:?}",
                    reply.res.status
                )));
            }
            if later {
                p.retry(slot, now);
                std::thread::sleep(RETRY_PAUSE);
                self.send(slot, inflight.req)?;
                continue;
            }
            p.reply(slot, &reply, inflight.sent, now);
            if !self.send_next(p, slot, now)? {
                active -= 1;
            }
        }
        Ok(())
    }
}

/// Sends queued calls, coalescing small ones into one write.
fn writer_loop(w: &mut dyn Sender, rx: Receiver<Outgoing>) -> io::Result<()> {
    /// Bytes gathered before a write.
    const BATCH: usize = 256 << 10;
    /// Payloads larger than this go out from their own buffer.
    const LARGE: usize = 64 << 10;
    const ZEROS: [u8; 4] = [0; 4];
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match &msg.payload {
                Some(p) if p.len() > LARGE => {
                    // Flush the batch, then header and data in one
                    // vectored write.
                    if !batch.is_empty() {
                        w.send(&[&batch])?;
                        batch.clear();
                    }
                    w.send(&[&msg.head, p, &ZEROS[..wire::pad(p.len())]])?;
                }
                Some(p) => {
                    batch.extend_from_slice(&msg.head);
                    batch.extend_from_slice(p);
                    batch.extend_from_slice(&ZEROS[..wire::pad(p.len())]);
                }
                None => batch.extend_from_slice(&msg.head),
            }
            if batch.len() >= BATCH {
                w.send(&[&batch])?;
                batch.clear();
            }
            next = rx.try_recv().ok();
        }
        if !batch.is_empty() {
            w.send(&[&batch])?;
            batch.clear();
        }
    }
    Ok(())
}
