//! The workloads: untimed preparation, the measured phase, cleanup.
//!
//! Everything lives under `<export>/nfs4d-bench/`. Inputs that are costly
//! to make and never modified by a run in a way that matters are kept
//! between runs and checked before reuse: `readdir-<N>` (N files) and
//! `data-<size>` (the file of seqread/randread/randwrite). Each run's other
//! files go to a directory of its own that is removed at the end.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfs4d_xdr::nfs4::*;

use crate::jobs::*;
use crate::ops::*;
use crate::pipeline::{run_phase, JobFactory, PhaseCtl, Request, SlotJob, Tally};
use crate::procstat::{self, Meter, Usage};
use nfs4d_testkit::wire::bad;
use nfs4d_testkit::{Client, SessionOptions};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Workload {
    Metadata,
    Readdir,
    Smallfile,
    Seqread,
    Seqwrite,
    Randread,
    Randwrite,
    Openhold,
    Bigdir,
    TcpCeiling,
}

impl Workload {
    pub const ALL: [Workload; 10] = [
        Workload::TcpCeiling,
        Workload::Metadata,
        Workload::Readdir,
        Workload::Smallfile,
        Workload::Seqread,
        Workload::Seqwrite,
        Workload::Randread,
        Workload::Randwrite,
        Workload::Openhold,
        Workload::Bigdir,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Metadata => "metadata",
            Workload::Readdir => "readdir",
            Workload::Smallfile => "smallfile",
            Workload::Seqread => "seqread",
            Workload::Seqwrite => "seqwrite",
            Workload::Randread => "randread",
            Workload::Randwrite => "randwrite",
            Workload::Openhold => "openhold",
            Workload::Bigdir => "bigdir",
            Workload::TcpCeiling => "tcp-ceiling",
        }
    }
}

/// Everything a run needs to know (from the command line).
#[derive(Clone, Debug)]
pub struct Params {
    pub server: SocketAddr,
    pub export: String,
    pub connections: usize,
    pub slots: u32,
    pub warmup: Duration,
    pub duration: Option<Duration>,
    pub ops: Option<u64>,
    pub dirs: usize,
    pub dir_entries: u64,
    pub readdir_bytes: u32,
    pub file_size: u64,
    pub seq_size: u32,
    pub rand_size: u32,
    pub small_size: u32,
    pub small_stable: stable_how4,
    pub open_files: u64,
    pub hold: Duration,
    pub bigdir_entries: u64,
    pub server_pid: Option<u32>,
    /// RPCSEC_GSS (Kerberos) instead of AUTH_SYS.
    pub krb5: Option<Krb5>,
    /// Serve in this process instead of connecting to `server`.
    pub inproc: Option<InProc>,
    /// tcp-ceiling: the directory of the file-ended streams (`Ends`).
    pub ceiling_dir: Option<std::path::PathBuf>,
}

/// How the connections speak RPCSEC_GSS: each has a context of its own,
/// created from the tickets of `ccache` towards `target`.
#[derive(Clone, Debug)]
pub struct Krb5 {
    pub gss: nfs4d_gss::Gss,
    pub ccache: Option<String>,
    pub target: String,
    pub service: nfs4d_gss::Service,
}

/// The sans-IO core in the generator's own process (the test kit's
/// harness: memory store, in-memory key-value store, manual clock), driven
/// without a socket or a runtime. Not a figure to compare with a server:
/// a way to count the core's own instructions per COMPOUND under a
/// workload (`valgrind --tool=callgrind`), which is repeatable where
/// timings on a shared machine are not.
#[derive(Clone)]
pub struct InProc(pub std::sync::Arc<nfs4d_testkit::inproc::Harness>);

impl std::fmt::Debug for InProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InProc")
    }
}

/// The outcome of one workload run.
pub struct Report {
    pub workload: Workload,
    pub elapsed: Duration,
    pub tally: Tally,
    /// What `tally.items` counts.
    pub items: &'static str,
    /// Size of each READ/WRITE, when the workload does I/O.
    pub io_size: u32,
    pub server: Option<Usage>,
    pub client_cpu_s: f64,
    /// Workload-specific figures (name, value).
    pub extra: Vec<(&'static str, f64)>,
    pub notes: Vec<String>,
}

impl Report {
    fn new(workload: Workload, items: &'static str) -> Report {
        Report {
            workload,
            elapsed: Duration::ZERO,
            tally: Tally::default(),
            items,
            io_size: 0,
            server: None,
            client_cpu_s: 0.0,
            extra: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub fn run(w: Workload, p: &Params) -> io::Result<Report> {
    if w == Workload::TcpCeiling {
        return tcp_ceiling(p);
    }
    let mut b = Bench::open(p)?;
    let report = match w {
        Workload::Metadata => metadata(&mut b),
        Workload::Readdir => readdir(&mut b),
        Workload::Smallfile => smallfile(&mut b),
        Workload::Seqread | Workload::Seqwrite | Workload::Randread | Workload::Randwrite => {
            io_workload(&mut b, w)
        }
        Workload::Openhold => openhold(&mut b),
        Workload::Bigdir => bigdir(&mut b),
        Workload::TcpCeiling => unreachable!("handled above"),
    }?;
    // The run is measured by now: a failed teardown is worth a note, not
    // the loss of the figures.
    let mut report = report;
    if let Err(e) = b.close() {
        report.notes.push(format!("session teardown: {e}"));
    }
    Ok(report)
}

/// The sessions of one workload run and the bench's top directory.
struct Bench<'p> {
    p: &'p Params,
    sessions: Vec<Client>,
    top: nfs_fh4,
}

impl<'p> Bench<'p> {
    fn open(p: &'p Params) -> io::Result<Bench<'p>> {
        let tag = unique_tag();
        let mut sessions = Vec::with_capacity(p.connections);
        for c in 0..p.connections {
            let s = connect(p, format!("nfs4d-bench-{tag}-{c}").as_bytes()).map_err(|e| {
                io::Error::new(e.kind(), format!("connection {c} to {}: {e}", p.server))
            })?;
            sessions.push(s);
        }
        let root = resolve(&mut sessions[0], &p.export)?;
        let top = ensure_dir(&mut sessions[0], &root, "nfs4d-bench")?;
        Ok(Bench { p, sessions, top })
    }

    fn s0(&mut self) -> &mut Client {
        &mut self.sessions[0]
    }

    fn clientids(&self) -> Vec<clientid4> {
        self.sessions.iter().map(|s| s.clientid).collect()
    }

    /// Slots used per connection (the server may have granted fewer).
    fn slots(&self) -> usize {
        self.sessions
            .iter()
            .map(|s| s.seqids.len())
            .min()
            .unwrap_or(1)
            .min(self.p.slots as usize)
    }

    /// An untimed phase that must succeed (preparation, cleanup).
    fn untimed(&mut self, what: &str, make_job: &JobFactory<'_>) -> io::Result<Tally> {
        let slots = self.slots();
        let t = run_phase(
            &mut self.sessions,
            slots,
            make_job,
            &PhaseCtl::unbounded(),
            &mut || {},
        )?;
        if t.errors > 0 {
            return Err(bad(format!(
                "{what}: {} errors, first: {}",
                t.errors,
                t.messages.join("; ")
            )));
        }
        Ok(t)
    }

    /// The measured phase: bounded by `ctl`, with server and client
    /// resource use taken over the same window. `finish` runs inside the
    /// window after the last reply (e.g. the COMMIT that ends a write test).
    fn measure(
        &mut self,
        w: Workload,
        items: &'static str,
        ctl: PhaseCtl,
        make_job: &JobFactory<'_>,
        finish: &mut dyn FnMut(&mut Client) -> io::Result<()>,
    ) -> io::Result<Report> {
        let slots = self.slots();
        let pid = self.p.server_pid;
        let mut window: Option<(Option<Meter>, f64)> = None;
        let start_window = || {
            (
                pid.map(Meter::start),
                procstat::cpu_seconds("self").unwrap_or(0.0),
            )
        };
        let mut monitor = || match &mut window {
            None if Instant::now() >= ctl.measure_from => window = Some(start_window()),
            Some((Some(m), _)) => m.sample(),
            _ => {}
        };
        let tally = run_phase(&mut self.sessions, slots, make_job, &ctl, &mut monitor)?;
        let (meter, client0) = window.unwrap_or_else(start_window);
        finish(&mut self.sessions[0])?;
        let elapsed = Instant::now().saturating_duration_since(ctl.measure_from);
        let mut r = Report::new(w, items);
        r.elapsed = elapsed;
        r.tally = tally;
        r.server = meter.map(Meter::finish);
        r.client_cpu_s = procstat::cpu_seconds("self").unwrap_or(0.0) - client0;
        Ok(r)
    }

    /// The standard bound of measured phases: duration or op count.
    fn bounded(&self) -> PhaseCtl {
        PhaseCtl::new(self.p.warmup, self.p.duration, self.p.ops)
    }

    fn close(self) -> io::Result<()> {
        for mut s in self.sessions {
            s.destroy()?;
        }
        Ok(())
    }
}

/// A connection with its own client and a session of `p.slots` slots.
/// `owner` must be unique per connection: each connection is its own
/// client, so no client-wide state (open owners, sequence ids) is shared
/// between connections.
fn connect(p: &Params, owner: &[u8]) -> io::Result<Client> {
    let mut c = match (&p.inproc, &p.krb5) {
        (Some(h), _) => h.0.client(1),
        (None, None) => Client::connect(p.server, 1)?,
        (None, Some(k)) => {
            let (c, _) = Client::connect_gss(
                p.server,
                1,
                &k.gss,
                k.ccache.as_deref(),
                &k.target,
                k.service,
            )?;
            c
        }
    };
    c.cred = nfs4d_xdr::rpc::Credential::Sys {
        stamp: 1,
        machine: "nfs4d-bench".into(),
        uid: 0,
        gid: 0,
        gids: vec![],
    };
    // A server that stops answering must not hang a bounded run forever.
    c.timeout = Duration::from_secs(60);
    let o = SessionOptions {
        slots: p.slots,
        exchange_flags: EXCHGID4_FLAG_USE_NON_PNFS,
        verifier: boot_verifier(),
        ..SessionOptions::default()
    };
    c.establish41_with(owner, &o)?;
    Ok(c)
}

/// A verifier that differs between runs of the generator, so that a server
/// still holding a previous run's client treats this one as a new instance.
fn boot_verifier() -> verifier4 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id()) << 32).to_be_bytes()
}

/// Distinguishes this run's names from other runs' (same or other host).
fn unique_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{}-{t}", std::process::id())
}

/// The filehandle of an export path ("/" or "/export").
fn resolve(s: &mut Client, export: &str) -> io::Result<nfs_fh4> {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    ops.extend(export.split('/').filter(|c| !c.is_empty()).map(lookup));
    ops.push(nfs_argop4::OP_GETFH);
    let r = s.compound_ok(&format!("looking up export {export}"), ops)?;
    got_fh(&r).map_err(bad)
}

/// Looks up directory `name` in `parent`, creating it if absent.
fn ensure_dir(s: &mut Client, parent: &nfs_fh4, name: &str) -> io::Result<nfs_fh4> {
    for _ in 0..2 {
        let r = s.compound_retrying(vec![putfh(parent), lookup(name), nfs_argop4::OP_GETFH])?;
        match r.status {
            nfsstat4::NFS4_OK => return got_fh(&r).map_err(bad),
            nfsstat4::NFS4ERR_NOENT => {}
            st => return Err(bad(format!("LOOKUP {name}: {st:?}"))),
        }
        let r = s.compound_retrying(vec![putfh(parent), mkdir(name), nfs_argop4::OP_GETFH])?;
        match r.status {
            nfsstat4::NFS4_OK => return got_fh(&r).map_err(bad),
            // Created meanwhile by someone else: look it up again.
            nfsstat4::NFS4ERR_EXIST => {}
            st => return Err(bad(format!("CREATE directory {name}: {st:?}"))),
        }
    }
    Err(bad(format!(
        "directory {name} keeps appearing and vanishing"
    )))
}

fn remove_name(s: &mut Client, dir: &nfs_fh4, name: &str) -> io::Result<()> {
    s.compound_ok(&format!("REMOVE {name}"), vec![putfh(dir), remove(name)])
        .map(|_| ())
}

/// Removes a run directory; a failure (left-over files after errors) is
/// noted in the report rather than failing a run that has been measured.
fn remove_run_dir(b: &mut Bench, name: &str, r: &mut Report) {
    let top = b.top.clone();
    if let Err(e) = remove_name(b.s0(), &top, name) {
        r.notes
            .push(format!("could not remove run directory {name}: {e}"));
    }
}

/// Number of entries of a directory (one untimed listing, names only).
fn count_entries(s: &mut Client, dir: &nfs_fh4) -> io::Result<u64> {
    let (mut cookie, mut verf, mut n) = (0u64, [0u8; 8], 0u64);
    let attrs = bitmap(&[FATTR4_TYPE]);
    loop {
        let r = s.compound_ok(
            "READDIR",
            vec![
                putfh(dir),
                crate::ops::readdir(cookie, verf, 64 << 10, &attrs),
            ],
        )?;
        let rd = got_readdir(&r).map_err(bad)?;
        let mut e = rd.reply.entries.as_deref();
        while let Some(entry) = e {
            n += 1;
            cookie = entry.cookie;
            e = entry.nextentry.as_deref();
        }
        if rd.reply.eof {
            return Ok(n);
        }
        verf = rd.cookieverf;
    }
}

/// Creates `f000000…f<total-1>` in `dir` (existing ones are opened and
/// closed unchanged), pipelined over every session. With `keep`, files are
/// left open and their (handle, stateid) stored per connection.
fn populate(
    b: &mut Bench,
    what: &str,
    dir: &nfs_fh4,
    total: u64,
    keep: Option<&[Held]>,
    measured: Option<Workload>,
) -> io::Result<Option<Report>> {
    let next_index = AtomicU64::new(0);
    let ids = b.clientids();
    let make = |c: usize, s: usize| -> Box<dyn SlotJob + '_> {
        Box::new(PopulateJob {
            dir: dir.clone(),
            owner: owner(ids[c], c, s),
            next_index: &next_index,
            total,
            keep: keep.map(|k| &k[c]),
            open: None,
        })
    };
    match measured {
        None => b.untimed(what, &make).map(|_| None),
        Some(w) => b
            .measure(w, "files", PhaseCtl::unbounded(), &make, &mut |_| Ok(()))
            .map(Some),
    }
}

/// Runs queued requests over the sessions (`queues[c]` on connection `c`).
fn drain(b: &mut Bench, what: &'static str, queues: &[Mutex<Vec<Request>>]) -> io::Result<Tally> {
    let make = |c: usize, _s: usize| -> Box<dyn SlotJob + '_> {
        Box::new(QueueJob {
            queue: &queues[c % queues.len()],
            what,
        })
    };
    b.untimed(what, &make)
}

fn metadata(b: &mut Bench) -> io::Result<Report> {
    let run = format!("metadata-{}", unique_tag());
    let top = b.top.clone();
    let rundir = ensure_dir(b.s0(), &top, &run)?;
    let dirs = (0..b.p.dirs.max(1))
        .map(|i| ensure_dir(b.s0(), &rundir, &format!("d{i}")))
        .collect::<io::Result<Vec<_>>>()?;
    let ids = b.clientids();
    let slots = b.slots();
    let make = |c: usize, s: usize| -> Box<dyn SlotJob> {
        let dir = dirs[(c * slots + s) % dirs.len()].clone();
        Box::new(MetaJob::new(dir, owner(ids[c], c, s), format!("c{c}s{s}-")))
    };
    let ctl = b.bounded();
    let mut r = b.measure(Workload::Metadata, "files", ctl, &make, &mut |_| Ok(()))?;
    r.notes.push(format!(
        "ops are COMPOUNDs: {META_STEPS} per file (OPEN create+GETFH, CLOSE, GETATTR, LOOKUP+GETFH, REMOVE) over {} directories",
        dirs.len()
    ));
    for i in 0..dirs.len() {
        if let Err(e) = remove_name(b.s0(), &rundir, &format!("d{i}")) {
            r.notes.push(format!("cleanup: {e}"));
        }
    }
    remove_run_dir(b, &run, &mut r);
    Ok(r)
}

fn readdir(b: &mut Bench) -> io::Result<Report> {
    let n = b.p.dir_entries;
    let name = format!("readdir-{n}");
    let top = b.top.clone();
    let dir = ensure_dir(b.s0(), &top, &name)?;
    let mut have = count_entries(b.s0(), &dir)?;
    if have != n {
        populate(b, "populating the readdir directory", &dir, n, None, None)?;
        have = count_entries(b.s0(), &dir)?;
        if have != n {
            return Err(bad(format!(
                "{name} holds {have} entries, not {n}: remove it and rerun"
            )));
        }
    }
    let bytes = b.p.readdir_bytes;
    let make = |_c: usize, _s: usize| -> Box<dyn SlotJob> {
        Box::new(ReaddirJob::new(dir.clone(), bytes, n))
    };
    let ctl = b.bounded();
    let mut r = b.measure(Workload::Readdir, "entries", ctl, &make, &mut |_| Ok(()))?;
    // In the steady state a listing completes per `n` entries; counting
    // completed listings instead would quantise badly when a run is only a
    // few listings long (as it is for each of N x M concurrent listings).
    let listings = r.tally.items as f64 / n as f64 / r.secs();
    r.extra.push(("listings_per_s", listings));
    r.extra
        .push(("listings_completed", r.tally.listings as f64));
    r.notes.push(format!(
        "ops are READDIR COMPOUNDs of {bytes} bytes (dircount = maxcount) with the ls -l attributes; \
         listings/s = entries/s / {n}"
    ));
    Ok(r)
}

/// A buffer of pseudo-random bytes (so no layer can shortcut zeros).
fn pattern(len: usize) -> Arc<[u8]> {
    let mut rng = Rng::new(0xbe7c4);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v.into()
}

fn smallfile(b: &mut Bench) -> io::Result<Report> {
    let run = format!("smallfile-{}", unique_tag());
    let top = b.top.clone();
    let rundir = ensure_dir(b.s0(), &top, &run)?;
    let ids = b.clientids();
    let data = pattern(b.p.small_size as usize);
    let stable = b.p.small_stable;
    let created = Mutex::new(Vec::new());
    let make = |c: usize, s: usize| -> Box<dyn SlotJob + '_> {
        Box::new(SmallJob::new(
            rundir.clone(),
            owner(ids[c], c, s),
            format!("c{c}s{s}-"),
            data.clone(),
            stable,
            &created,
        ))
    };
    let ctl = b.bounded();
    let mut r = b.measure(Workload::Smallfile, "files", ctl, &make, &mut |_| Ok(()))?;
    r.io_size = b.p.small_size;
    r.notes.push(format!(
        "ops are COMPOUNDs: {SMALL_STEPS} per file (OPEN create+GETFH, WRITE {} B {stable:?}, CLOSE, READ back with the anonymous stateid)",
        b.p.small_size
    ));
    let names = created.into_inner().unwrap_or_else(|e| e.into_inner());
    let queue = Mutex::new(
        names
            .iter()
            .map(|n| Request::new(vec![putfh(&rundir), remove(n)], true))
            .collect(),
    );
    if let Err(e) = drain(b, "REMOVE", std::slice::from_ref(&queue)) {
        r.notes.push(format!("cleanup: {e}"));
    }
    remove_run_dir(b, &run, &mut r);
    Ok(r)
}

/// Largest READ/WRITE the server takes on these sessions, at most `want`.
fn io_limit(b: &mut Bench, fh: &nfs_fh4, want: u32, write: bool) -> io::Result<u32> {
    let r = b.s0().compound_ok(
        "GETATTR maxread/maxwrite",
        vec![
            putfh(fh),
            getattr(&bitmap(&[FATTR4_MAXREAD, FATTR4_MAXWRITE])),
        ],
    )?;
    let attrs = scalar_attrs(
        got_attrs(&r).map_err(bad)?,
        &[(FATTR4_MAXREAD, true), (FATTR4_MAXWRITE, true)],
    )
    .map_err(bad)?;
    let attr = if write {
        FATTR4_MAXWRITE
    } else {
        FATTR4_MAXREAD
    };
    let server_max = attrs
        .iter()
        .find(|(a, _)| *a == attr)
        .map_or(u64::from(want), |(_, v)| *v);
    // Room for the RPC and COMPOUND headers around the data.
    let session_max = b
        .sessions
        .iter()
        .map(|s| if write { s.max_request } else { s.max_response })
        .min()
        .unwrap_or(0)
        .saturating_sub(1024);
    let io = u64::from(want).min(server_max).min(u64::from(session_max));
    // Whole 4 KiB blocks, as clients send.
    Ok(((io as u32) & !4095).max(4096))
}

fn file_size(s: &mut Client, fh: &nfs_fh4) -> io::Result<u64> {
    let r = s.compound_ok(
        "GETATTR size",
        vec![putfh(fh), getattr(&bitmap(&[FATTR4_SIZE]))],
    )?;
    let attrs = scalar_attrs(got_attrs(&r).map_err(bad)?, &[(FATTR4_SIZE, true)]).map_err(bad)?;
    Ok(attrs.first().map_or(0, |(_, v)| *v))
}

fn io_workload(b: &mut Bench, w: Workload) -> io::Result<Report> {
    let size = b.p.file_size;
    let name = match w {
        Workload::Seqwrite => format!("seqwrite-{size}"),
        _ => format!("data-{size}"),
    };
    // Every connection is its own client, so each opens the file itself.
    let top = b.top.clone();
    let ids = b.clientids();
    let mut opens = Vec::new();
    for (c, s) in b.sessions.iter_mut().enumerate() {
        let r = s.compound_ok(
            &format!("OPEN {name}"),
            vec![
                putfh(&top),
                open(&owner(ids[c], c, 0), &name, true),
                nfs_argop4::OP_GETFH,
            ],
        )?;
        let fh = got_fh(&r).map_err(bad)?;
        let (st, deleg) = got_open(&r).map_err(bad)?;
        if let Some(d) = deleg {
            s.compound_ok("DELEGRETURN", vec![putfh(&fh), delegreturn(&d)])?;
        }
        opens.push((fh, st));
    }
    let fh = opens[0].0.clone();

    // The data file is written once and reused while its size is right.
    let mut notes = Vec::new();
    if w != Workload::Seqwrite && file_size(b.s0(), &fh)? != size {
        let io = io_limit(b, &fh, b.p.seq_size, true)?;
        let payload = pattern(io as usize);
        let next = AtomicU64::new(0);
        let chunks = size.div_ceil(u64::from(io));
        let opens = &opens;
        let make = |c: usize, _s: usize| -> Box<dyn SlotJob + '_> {
            Box::new(IoJob {
                fh: opens[c].0.clone(),
                stateid: opens[c].1.clone(),
                size,
                io,
                offsets: Offsets::Sequential {
                    next: &next,
                    limit: Some(chunks),
                },
                payload: Some(payload.clone()),
            })
        };
        let started = Instant::now();
        b.untimed(&format!("writing {name}"), &make)?;
        b.s0().compound_ok("COMMIT", vec![putfh(&fh), commit()])?;
        notes.push(format!(
            "prepared {name} in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }

    let writing = matches!(w, Workload::Seqwrite | Workload::Randwrite);
    let want = match w {
        Workload::Seqread | Workload::Seqwrite => b.p.seq_size,
        _ => b.p.rand_size,
    };
    let io = io_limit(b, &fh, want, writing)?;
    if io != want {
        notes.push(format!("I/O size limited to {io} bytes by the server"));
    }
    let payload = writing.then(|| pattern(io as usize));
    let next = AtomicU64::new(0);
    let opens_ref = &opens;
    let make = |c: usize, s: usize| -> Box<dyn SlotJob + '_> {
        let offsets = match w {
            Workload::Seqread | Workload::Seqwrite => Offsets::Sequential {
                next: &next,
                limit: None,
            },
            _ => Offsets::Random(Rng::new((c as u64) << 32 | s as u64)),
        };
        Box::new(IoJob {
            fh: opens_ref[c].0.clone(),
            stateid: opens_ref[c].1.clone(),
            size,
            io,
            offsets,
            payload: payload.clone(),
        })
    };
    let ctl = b.bounded();
    let commit_fh = fh.clone();
    let mut finish = |s: &mut Client| -> io::Result<()> {
        if writing {
            s.compound_ok("COMMIT", vec![putfh(&commit_fh), commit()])?;
        }
        Ok(())
    };
    let mut r = b.measure(w, "bytes", ctl, &make, &mut finish)?;
    r.io_size = io;
    r.notes = notes;
    if writing {
        r.notes
            .push("UNSTABLE writes; the closing COMMIT is inside the timed window".into());
    }
    for (s, (fh, st)) in b.sessions.iter_mut().zip(&opens) {
        s.compound_ok("CLOSE", vec![putfh(fh), close(st)])?;
    }
    Ok(r)
}

fn openhold(b: &mut Bench) -> io::Result<Report> {
    let n = b.p.open_files;
    let run = format!("openhold-{}", unique_tag());
    let top = b.top.clone();
    let rundir = ensure_dir(b.s0(), &top, &run)?;
    let rss = |p: &Params| {
        p.server_pid
            .and_then(|pid| procstat::status_kb(&pid.to_string(), "VmRSS"))
    };
    let base = rss(b.p);

    let held: Vec<Held> = (0..b.sessions.len())
        .map(|_| Mutex::new(Vec::new()))
        .collect();
    let mut r = populate(
        b,
        "opening",
        &rundir,
        n,
        Some(&held),
        Some(Workload::Openhold),
    )?
    .ok_or_else(|| bad("no report from the open phase"))?;
    let opened: usize = held.iter().map(|h| h.lock().map_or(0, |v| v.len())).sum();

    // Hold them, renewing the leases and sampling the server's RSS.
    let mut samples = Vec::new();
    let until = Instant::now() + b.p.hold;
    loop {
        for s in &mut b.sessions {
            s.renew()?;
        }
        samples.extend(rss(b.p));
        if Instant::now() >= until {
            break;
        }
        std::thread::sleep(
            Duration::from_millis(500).min(until.saturating_duration_since(Instant::now())),
        );
    }
    let held_rss = samples.last().copied();

    let closes: Vec<Mutex<Vec<Request>>> = held
        .into_iter()
        .map(|h| {
            let v = h.into_inner().unwrap_or_else(|e| e.into_inner());
            Mutex::new(
                v.iter()
                    .map(|(fh, st)| Request::new(vec![putfh(fh), close(st)], true))
                    .collect(),
            )
        })
        .collect();
    drain(b, "CLOSE", &closes)?;
    let after_close = rss(b.p);
    let removes = Mutex::new(
        (0..n)
            .map(|i| Request::new(vec![putfh(&rundir), remove(&populated_name(i))], true))
            .collect(),
    );
    drain(b, "REMOVE", std::slice::from_ref(&removes))?;
    remove_run_dir(b, &run, &mut r);

    r.extra.push(("files_held_open", opened as f64));
    if let (Some(base), Some(held_rss)) = (base, held_rss) {
        // Growth over the whole hold includes the server settling right
        // after the burst of OPENs (deferred frees, background flushes);
        // growth over its second half is what would continue with time.
        let first = samples.first().copied().unwrap_or(held_rss);
        let mid = samples[samples.len() / 2..].iter().copied();
        let drift = mid.clone().max().unwrap_or(held_rss) as f64
            - mid.clone().next().unwrap_or(held_rss) as f64;
        r.extra.push(("rss_before_kb", base as f64));
        r.extra.push(("rss_held_kb", held_rss as f64));
        r.extra
            .push(("rss_hold_growth_kb", held_rss as f64 - first as f64));
        r.extra.push(("rss_hold_drift_kb", drift));
        r.extra.push((
            "bytes_per_open_file",
            (held_rss as f64 - base as f64) * 1024.0 / opened.max(1) as f64,
        ));
        if let Some(a) = after_close {
            r.extra.push(("rss_after_close_kb", a as f64));
        }
    }
    r.notes.push(format!(
        "ops are OPEN(create)+GETFH COMPOUNDs; {opened} files then held {:.0} s with lease renewals",
        b.p.hold.as_secs_f64()
    ));
    Ok(r)
}

/// One directory of `bigdir_entries` files (a million by default): their
/// creation (OPEN create + CLOSE per file, pipelined over every slot) is
/// the measured phase of the report; a full `ls -l` listing of the
/// directory by every slot follows, measured on its own (its rate, latency
/// percentiles, server CPU and peak RSS are the `list_*` figures). The
/// server's RSS growth over the creation, per million files created, shows
/// whether its memory stays bounded as the handle map grows. The files are
/// removed afterwards (untimed).
fn bigdir(b: &mut Bench) -> io::Result<Report> {
    let n = b.p.bigdir_entries.max(1);
    let run = format!("bigdir-{}", unique_tag());
    let top = b.top.clone();
    let dir = ensure_dir(b.s0(), &top, &run)?;
    let rss = |p: &Params| {
        p.server_pid
            .and_then(|pid| procstat::status_kb(&pid.to_string(), "VmRSS"))
    };
    let base = rss(b.p);
    let mut r = populate(b, "creating", &dir, n, None, Some(Workload::Bigdir))?
        .ok_or_else(|| bad("no report from the create phase"))?;
    let after_create = rss(b.p);
    if let (Some(a), Some(c)) = (base, after_create) {
        r.extra.push(("rss_before_kb", a as f64));
        r.extra.push(("rss_after_create_kb", c as f64));
        r.extra.push((
            "rss_growth_kb_per_million",
            (c as f64 - a as f64) * 1e6 / n as f64,
        ));
    }
    // Every slot lists the whole directory once.
    let bytes = b.p.readdir_bytes;
    let make = |_c: usize, _s: usize| -> Box<dyn SlotJob + '_> {
        Box::new(OneListing::new(ReaddirJob::new(dir.clone(), bytes, n)))
    };
    let list = b.measure(
        Workload::Bigdir,
        "entries",
        PhaseCtl::unbounded(),
        &make,
        &mut |_| Ok(()),
    )?;
    let lt = &list.tally;
    r.tally.errors += lt.errors;
    r.tally.messages.extend(lt.messages.iter().cloned());
    r.extra
        .push(("list_entries_per_s", lt.items as f64 / list.secs()));
    r.extra.push(("list_listings", lt.listings as f64));
    r.extra
        .push(("list_p50_ms", lt.latency.quantile(0.5) as f64 / 1e6));
    r.extra
        .push(("list_p99_ms", lt.latency.quantile(0.99) as f64 / 1e6));
    if let Some(u) = &list.server {
        r.extra
            .push(("list_server_peak_rss_kb", u.peak_rss_kb as f64));
        r.extra.push((
            "list_server_cpu_s_per_kop",
            u.cpu_s * 1000.0 / lt.ops.max(1) as f64,
        ));
    }
    r.notes.push(format!(
        "ops are OPEN(create)+CLOSE of {n} files in one directory, then READDIR COMPOUNDs of {bytes} bytes with the ls -l attributes, one full listing per slot (the list_* figures)"
    ));
    let removes = Mutex::new(
        (0..n)
            .map(|i| Request::new(vec![putfh(&dir), remove(&populated_name(i))], true))
            .collect(),
    );
    drain(b, "REMOVE", std::slice::from_ref(&removes))?;
    remove_run_dir(b, &run, &mut r);
    Ok(r)
}

/// Threads of the memory-copy measurement: one per core, at most 8.
fn copy_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(8))
}

/// The ceiling is the better of one stream (what the brief of a "plain TCP
/// stream" means) and as many streams as NFS connections (what the
/// streaming workloads use), each for half the time. With a directory
/// (`--ceiling-dir`, on the exports' file system) the same streams with a
/// file at one end follow, each for half the time too: the ceilings of
/// seqwrite and seqread with nothing of NFS in them.
fn tcp_ceiling(p: &Params) -> io::Result<Report> {
    use crate::ceiling::Ends;
    const CHUNK: usize = 1 << 20;
    let cpu0 = procstat::cpu_seconds("self").unwrap_or(0.0);
    let half = |d: Duration| d / 2;
    let duration = match p.ops {
        Some(_) => None,
        None => Some(half(p.duration.unwrap_or(Duration::from_secs(4)))),
    };
    let writes = p.ops.map(|o| o.div_ceil(2));
    let one = crate::ceiling::run(1, CHUNK, duration, writes, Ends::Memory)?;
    let many = crate::ceiling::run(p.connections, CHUNK, duration, writes, Ends::Memory)?;
    let rate = |(t, e): &(Tally, Duration)| {
        t.bytes as f64 / e.as_secs_f64().max(1e-9) / (1u64 << 20) as f64
    };
    let (r1, rn) = (rate(&one), rate(&many));
    let file_rates = match &p.ceiling_dir {
        Some(dir) => {
            let streams = |ends| crate::ceiling::run(p.connections, CHUNK, duration, writes, ends);
            let into = streams(Ends::IntoFile(dir, p.file_size))?;
            let spliced = streams(Ends::IntoFileSpliced(dir, p.file_size))?;
            let from = streams(Ends::FromFile(dir, p.file_size))?;
            // Regions of 128 MiB, well past a last-level cache (32 MiB
            // here), one thread per core up to 8 (2 GiB in all).
            let copy = crate::ceiling::cold_copy(copy_threads(), 128 << 20, Duration::from_secs(1));
            Some((rate(&into), rate(&spliced), rate(&from), copy))
        }
        None => None,
    };
    let (tally, elapsed) = if r1 >= rn { one } else { many };
    let mut r = Report::new(Workload::TcpCeiling, "bytes");
    r.elapsed = elapsed;
    r.tally = tally;
    r.io_size = CHUNK as u32;
    r.client_cpu_s = procstat::cpu_seconds("self").unwrap_or(0.0) - cpu0;
    r.extra.push(("one_stream_mib_per_s", r1));
    r.extra.push(("n_streams_mib_per_s", rn));
    r.notes.push(format!(
        "best of 1 and {} TCP stream(s) over 127.0.0.1 with 1 MiB writes, reader and writer threads in this process",
        p.connections
    ));
    if let Some((into, spliced, from, copy)) = file_rates {
        r.extra.push(("into_file_mib_per_s", into));
        r.extra.push(("into_file_spliced_mib_per_s", spliced));
        r.extra.push(("from_file_mib_per_s", from));
        r.extra.push(("cold_copy_mib_per_s", copy));
        r.notes.push(format!(
            "{} streams into files (each MiB gathered, then pwrite at sequential offsets, a file per stream; again received with splice through a pipe) and from a file (sendfile), {} bytes of file in all; memory copied by {} threads, 1 MiB blocks over 128 MiB regions each",
            p.connections, p.file_size, copy_threads()
        ));
    }
    Ok(r)
}
