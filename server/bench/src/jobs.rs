//! The per-slot state machines of the workloads (see [`SlotJob`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nfs4d_xdr::nfs4::*;

use crate::ops::*;
use crate::pipeline::{Reply, Request, SlotJob, Tally};

/// An open owner private to one slot (or connection), so that no two
/// in-flight OPENs serialise on the same owner at the server.
pub fn owner(clientid: clientid4, conn: usize, slot: usize) -> open_owner4 {
    open_owner4 {
        clientid,
        owner: format!("bench-{conn}-{slot}").into_bytes(),
    }
}

/// Files a connection holds open: (filehandle, open stateid).
pub type Held = Mutex<Vec<(nfs_fh4, stateid4)>>;

/// Name of the `i`-th file of a populated directory.
pub fn populated_name(i: u64) -> String {
    format!("f{i:06}")
}

/// `metadata`: the life of an empty file, one COMPOUND per step:
/// OPEN(create)+GETFH, CLOSE, GETATTR, LOOKUP+GETFH, REMOVE.
pub struct MetaJob {
    pub dir: nfs_fh4,
    pub owner: open_owner4,
    pub prefix: String,
    pub attrs: bitmap4,
    pub n: u64,
    pub step: MetaStep,
    pub name: String,
    pub fh: nfs_fh4,
    pub stateid: stateid4,
    pub deleg: Option<stateid4>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum MetaStep {
    Open,
    Close,
    Getattr,
    Lookup,
    Remove,
}

/// The five COMPOUNDs of one file's life in [`MetaJob`].
pub const META_STEPS: u64 = 5;

impl MetaJob {
    pub fn new(dir: nfs_fh4, owner: open_owner4, prefix: String) -> MetaJob {
        MetaJob {
            dir,
            owner,
            prefix,
            attrs: bitmap(LS_ATTRS),
            n: 0,
            step: MetaStep::Open,
            name: String::new(),
            fh: Vec::new(),
            stateid: stateid4::default(),
            deleg: None,
        }
    }

    fn advance(&mut self, res: &COMPOUND4res, t: &mut Tally) -> Result<(), String> {
        self.step = match self.step {
            MetaStep::Open => {
                check(res, "OPEN")?;
                self.fh = got_fh(res)?;
                (self.stateid, self.deleg) = got_open(res)?;
                MetaStep::Close
            }
            MetaStep::Close => {
                check(res, "CLOSE")?;
                MetaStep::Getattr
            }
            MetaStep::Getattr => {
                check(res, "GETATTR")?;
                MetaStep::Lookup
            }
            MetaStep::Lookup => {
                check(res, "LOOKUP")?;
                MetaStep::Remove
            }
            MetaStep::Remove => {
                check(res, "REMOVE")?;
                t.items += 1;
                self.n += 1;
                MetaStep::Open
            }
        };
        Ok(())
    }
}

impl SlotJob for MetaJob {
    fn next(&mut self, stopping: bool) -> Option<Request> {
        let dir = &self.dir;
        Some(match self.step {
            MetaStep::Open => {
                if stopping {
                    return None;
                }
                self.name = format!("{}{}", self.prefix, self.n);
                Request::new(
                    vec![
                        putfh(dir),
                        open(&self.owner, &self.name, true),
                        nfs_argop4::OP_GETFH,
                    ],
                    true,
                )
            }
            MetaStep::Close => {
                let mut ops = vec![putfh(&self.fh)];
                if let Some(d) = self.deleg.take() {
                    ops.push(delegreturn(&d));
                }
                ops.push(close(&self.stateid));
                Request::new(ops, true)
            }
            MetaStep::Getattr => Request::new(vec![putfh(&self.fh), getattr(&self.attrs)], false),
            MetaStep::Lookup => Request::new(
                vec![putfh(dir), lookup(&self.name), nfs_argop4::OP_GETFH],
                false,
            ),
            MetaStep::Remove => Request::new(vec![putfh(dir), remove(&self.name)], true),
        })
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        let r = self.advance(res, t);
        if r.is_err() {
            // Start over with a new name; whatever was left half-done is
            // reported as an error and left in the run directory.
            self.step = MetaStep::Open;
            self.n += 1;
        }
        r
    }
}

/// Creates files `f000000…` (shared counter, so slots and connections split
/// the work) with OPEN(create)+GETFH, then either CLOSE or keep the file
/// open, recording its handle and stateid in `keep`.
pub struct PopulateJob<'a> {
    pub dir: nfs_fh4,
    pub owner: open_owner4,
    pub next_index: &'a AtomicU64,
    pub total: u64,
    pub keep: Option<&'a Held>,
    /// The open file awaiting CLOSE, if any.
    pub open: Option<(nfs_fh4, stateid4, Option<stateid4>)>,
}

impl SlotJob for PopulateJob<'_> {
    fn next(&mut self, _stopping: bool) -> Option<Request> {
        if let Some((fh, st, deleg)) = &self.open {
            let mut ops = vec![putfh(fh)];
            if let Some(d) = deleg {
                ops.push(delegreturn(d));
            }
            ops.push(close(st));
            return Some(Request::new(ops, true));
        }
        let i = self.next_index.fetch_add(1, Ordering::Relaxed);
        if i >= self.total {
            return None;
        }
        Some(Request::new(
            vec![
                putfh(&self.dir),
                open(&self.owner, &populated_name(i), true),
                nfs_argop4::OP_GETFH,
            ],
            true,
        ))
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        if self.open.take().is_some() {
            return check(res, "CLOSE");
        }
        check(res, "OPEN")?;
        let fh = got_fh(res)?;
        let (st, deleg) = got_open(res)?;
        t.items += 1;
        match self.keep {
            Some(keep) => keep
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((fh, st)),
            None => self.open = Some((fh, st, deleg)),
        }
        Ok(())
    }
}

/// `readdir`: whole listings of one directory, page by page with cookies.
pub struct ReaddirJob {
    pub dir: nfs_fh4,
    pub attrs: bitmap4,
    pub bytes: u32,
    pub expected: u64,
    pub cookie: u64,
    pub verf: verifier4,
    pub seen: u64,
}

impl ReaddirJob {
    pub fn new(dir: nfs_fh4, bytes: u32, expected: u64) -> ReaddirJob {
        ReaddirJob {
            dir,
            attrs: readdir_attrs(),
            bytes,
            expected,
            cookie: 0,
            verf: [0; 8],
            seen: 0,
        }
    }

    fn reset(&mut self) {
        (self.cookie, self.verf, self.seen) = (0, [0; 8], 0);
    }

    fn page(&mut self, res: &COMPOUND4res, t: &mut Tally) -> Result<(), String> {
        check(res, "READDIR")?;
        let rd = got_readdir(res)?;
        let (mut n, mut last) = (0u64, self.cookie);
        let mut e = rd.reply.entries.as_deref();
        while let Some(entry) = e {
            n += 1;
            last = entry.cookie;
            e = entry.nextentry.as_deref();
        }
        t.items += n;
        self.seen += n;
        if rd.reply.eof {
            t.listings += 1;
            let seen = self.seen;
            self.reset();
            if seen != self.expected {
                return Err(format!(
                    "a listing returned {seen} entries, expected {}",
                    self.expected
                ));
            }
        } else if n == 0 {
            return Err("READDIR returned neither entries nor eof".into());
        } else {
            self.cookie = last;
            self.verf = rd.cookieverf;
        }
        Ok(())
    }
}

impl SlotJob for ReaddirJob {
    fn next(&mut self, stopping: bool) -> Option<Request> {
        // A listing holds no server state: abandon it at once when the run
        // ends. Finishing it would stretch the run by a whole listing at
        // falling concurrency (seconds, for a slow server), which would
        // understate that server's steady rate.
        if stopping {
            return None;
        }
        Some(Request::new(
            vec![
                putfh(&self.dir),
                readdir(self.cookie, self.verf, self.bytes, &self.attrs),
            ],
            false,
        ))
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        let r = self.page(res, t);
        if r.is_err() {
            self.reset();
        }
        r
    }
}

/// `bigdir`'s listing phase: one whole listing, then the slot stops (a
/// listing of a million entries is the unit measured, not a rate over a
/// fixed time).
pub struct OneListing {
    inner: ReaddirJob,
    done: bool,
}

impl OneListing {
    pub fn new(inner: ReaddirJob) -> OneListing {
        OneListing { inner, done: false }
    }
}

impl SlotJob for OneListing {
    fn next(&mut self, stopping: bool) -> Option<Request> {
        if self.done {
            return None;
        }
        self.inner.next(stopping)
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let before = t.listings;
        let r = self.inner.reply(reply, t);
        if r.is_err() || t.listings > before {
            self.done = true;
        }
        r
    }
}

/// `smallfile`: OPEN(create)+GETFH, WRITE 4 KiB, CLOSE, then READ it back
/// (anonymous stateid, as after close) and compare.
pub struct SmallJob<'a> {
    pub dir: nfs_fh4,
    pub owner: open_owner4,
    pub prefix: String,
    pub data: Arc<[u8]>,
    pub stable: stable_how4,
    pub created: &'a Mutex<Vec<String>>,
    pub n: u64,
    pub step: SmallStep,
    pub fh: nfs_fh4,
    pub stateid: stateid4,
    pub deleg: Option<stateid4>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SmallStep {
    Open,
    Write,
    Close,
    Read,
}

/// The four COMPOUNDs of one file in [`SmallJob`].
pub const SMALL_STEPS: u64 = 4;

impl<'a> SmallJob<'a> {
    pub fn new(
        dir: nfs_fh4,
        owner: open_owner4,
        prefix: String,
        data: Arc<[u8]>,
        stable: stable_how4,
        created: &'a Mutex<Vec<String>>,
    ) -> SmallJob<'a> {
        SmallJob {
            dir,
            owner,
            prefix,
            data,
            stable,
            created,
            n: 0,
            step: SmallStep::Open,
            fh: Vec::new(),
            stateid: stateid4::default(),
            deleg: None,
        }
    }

    fn name(&self) -> String {
        format!("{}{}", self.prefix, self.n)
    }

    fn advance(&mut self, res: &COMPOUND4res, t: &mut Tally) -> Result<(), String> {
        self.step = match self.step {
            SmallStep::Open => {
                check(res, "OPEN")?;
                self.fh = got_fh(res)?;
                (self.stateid, self.deleg) = got_open(res)?;
                self.created
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(self.name());
                SmallStep::Write
            }
            SmallStep::Write => {
                check(res, "WRITE")?;
                let w = got_write(res)?;
                if w.count as usize != self.data.len() {
                    return Err(format!(
                        "short WRITE: {} of {} bytes",
                        w.count,
                        self.data.len()
                    ));
                }
                t.bytes += u64::from(w.count);
                SmallStep::Close
            }
            SmallStep::Close => {
                check(res, "CLOSE")?;
                SmallStep::Read
            }
            SmallStep::Read => {
                check(res, "READ")?;
                let r = got_read(res)?;
                if r.data[..] != self.data[..] {
                    return Err(format!(
                        "READ returned {} bytes that differ from what was written",
                        r.data.len()
                    ));
                }
                t.bytes += r.data.len() as u64;
                t.items += 1;
                self.n += 1;
                SmallStep::Open
            }
        };
        Ok(())
    }
}

impl SlotJob for SmallJob<'_> {
    fn next(&mut self, stopping: bool) -> Option<Request> {
        Some(match self.step {
            SmallStep::Open => {
                if stopping {
                    return None;
                }
                Request::new(
                    vec![
                        putfh(&self.dir),
                        open(&self.owner, &self.name(), true),
                        nfs_argop4::OP_GETFH,
                    ],
                    true,
                )
            }
            SmallStep::Write => Request {
                payload: Some(self.data.clone()),
                ..Request::new(
                    vec![putfh(&self.fh), write(&self.stateid, 0, self.stable)],
                    false,
                )
            },
            SmallStep::Close => {
                let mut ops = vec![putfh(&self.fh)];
                if let Some(d) = self.deleg.take() {
                    ops.push(delegreturn(&d));
                }
                ops.push(close(&self.stateid));
                Request::new(ops, true)
            }
            SmallStep::Read => Request::new(
                vec![
                    putfh(&self.fh),
                    read(&stateid4::default(), 0, self.data.len() as u32),
                ],
                false,
            ),
        })
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        let r = self.advance(res, t);
        if r.is_err() {
            self.step = SmallStep::Open;
            self.n += 1;
        }
        r
    }
}

/// A small fast PRNG (xorshift64*): random offsets need no crypto and no
/// dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Where the next I/O goes.
pub enum Offsets<'a> {
    /// Consecutive chunks from a counter shared by every slot and
    /// connection, wrapping at the end of the file; with `limit`, stop after
    /// that many chunks (filling a file once).
    Sequential {
        next: &'a AtomicU64,
        limit: Option<u64>,
    },
    /// Uniformly random aligned chunks.
    Random(Rng),
}

/// `seqread`, `seqwrite`, `randread`, `randwrite` (and filling the data
/// file): one READ or WRITE per COMPOUND.
pub struct IoJob<'a> {
    pub fh: nfs_fh4,
    pub stateid: stateid4,
    pub size: u64,
    pub io: u32,
    pub offsets: Offsets<'a>,
    /// For writes: the data (of length `io`); reads when `None`.
    pub payload: Option<Arc<[u8]>>,
}

impl SlotJob for IoJob<'_> {
    fn next(&mut self, stopping: bool) -> Option<Request> {
        if stopping {
            return None;
        }
        let chunks = (self.size / u64::from(self.io)).max(1);
        let chunk = match &mut self.offsets {
            Offsets::Sequential { next, limit } => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| i >= l) {
                    return None;
                }
                i % chunks
            }
            Offsets::Random(rng) => rng.next() % chunks,
        };
        let offset = chunk * u64::from(self.io);
        Some(match &self.payload {
            // The data read is only counted, not checked: skip it.
            None => Request {
                skim_read: true,
                ..Request::new(
                    vec![putfh(&self.fh), read(&self.stateid, offset, self.io)],
                    false,
                )
            },
            Some(p) => Request {
                payload: Some(p.clone()),
                ..Request::new(
                    vec![
                        putfh(&self.fh),
                        write(&self.stateid, offset, stable_how4::UNSTABLE4),
                    ],
                    false,
                )
            },
        })
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        if self.payload.is_some() {
            check(res, "WRITE")?;
            let w = got_write(res)?;
            t.bytes += u64::from(w.count);
            if w.count != self.io {
                return Err(format!("short WRITE: {} of {} bytes", w.count, self.io));
            }
        } else {
            check(res, "READ")?;
            let r = got_read(res)?;
            let len = reply.read_len.unwrap_or(r.data.len());
            t.bytes += len as u64;
            if len != self.io as usize {
                return Err(format!(
                    "short READ: {len} of {} bytes (eof {})",
                    self.io, r.eof
                ));
            }
        }
        Ok(())
    }
}

/// Sends prepared requests from a shared queue until it is empty (closing
/// held files, removing created ones); any failure is an error.
pub struct QueueJob<'a> {
    pub queue: &'a Mutex<Vec<Request>>,
    pub what: &'static str,
}

impl SlotJob for QueueJob<'_> {
    fn next(&mut self, _stopping: bool) -> Option<Request> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn reply(&mut self, reply: &Reply, t: &mut Tally) -> Result<(), String> {
        let res = &reply.res;
        check(res, self.what)?;
        t.items += 1;
        Ok(())
    }
}
