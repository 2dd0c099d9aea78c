//! A bounded soak test on loopback: many concurrent clients (4.1 sessions
//! and 4.0 client ids) do mixed operations on shared files while
//! connections are dropped mid-request and re-established. Afterwards:
//!
//! * the server is alive and logged no panic;
//! * its descriptor count and resident memory (/proc/PID) stayed within a
//!   bound of where they started;
//! * the 4.1 reply cache gave exactly-once results: a non-idempotent
//!   request (CREATE or REMOVE of a directory) sent, its connection cut,
//!   and retransmitted on the same slot and sequence id from a new
//!   connection answers the original result — twice, identically — and
//!   did not run twice (a second run would answer EXIST or NOENT);
//! * every shared file holds exactly what the clients' model says.
//!
//! Each worker owns one region of every shared file, so the expected
//! content is known while all workers write the same files at once.
//!
//! Duration: `NFS4D_SOAK_SECS` (default 75, at most 300).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfs4d_conformance::Nfs4d;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::wire::{compound_body, encode_call, PROC_COMPOUND};
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;

/// Shared files.
const FILES: usize = 6;
/// Bytes of each file owned by one worker.
const REGION: usize = 8192;
/// Concurrent 4.1 workers (one session each) and 4.0 workers.
const WORKERS41: usize = 10;
const WORKERS40: usize = 4;
const WORKERS: usize = WORKERS41 + WORKERS40;

fn soak_secs() -> u64 {
    std::env::var("NFS4D_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(75)
        .clamp(5, 300)
}

#[derive(Default)]
struct Stats {
    compounds: AtomicU64,
    ops: AtomicU64,
    dropped: AtomicU64,
    retransmits: AtomicU64,
    replays_checked: AtomicU64,
    reconnects: AtomicU64,
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// xorshift64: deterministic per worker, so a failure can be replayed.
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn file_name(i: usize) -> String {
    format!("shared-{i}")
}

/// A file only worker `id` writes, outside the model.
fn scratch_name(id: usize) -> String {
    format!("scratch-{id}")
}

/// Bytes a worker writes: its id, a version and the position, so a stray
/// or stale write is visible.
fn pattern(worker: usize, version: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (worker as u64 * 31 + version * 7 + i as u64) as u8)
        .collect()
}

fn fh(r: &COMPOUND4res) -> Vec<u8> {
    fh_of(r).unwrap_or_else(|| panic!("no GETFH result: {r:?}"))
}

fn read_data(r: &COMPOUND4res) -> &[u8] {
    match read_ok(r) {
        Some(ok) => &ok.data,
        None => panic!("READ failed: {r:?}"),
    }
}

/// What one worker has and knows.
struct Worker {
    id: usize,
    addr: SocketAddr,
    c: Client,
    rng: u64,
    root: Vec<u8>,
    /// Handles of the shared files.
    files: Vec<Vec<u8>>,
    /// 4.1: open stateids of the shared files.
    opens: Vec<stateid4>,
    /// The worker's region of every shared file, as it must be.
    model: Vec<Vec<u8>>,
    version: u64,
    /// 4.0: next open-owner seqid.
    oseq: u32,
    /// 4.1: the exactly-once probe directory exists.
    dir_exists: bool,
    stats: Arc<Stats>,
    export: std::path::PathBuf,
}

impl Worker {
    fn new(id: usize, addr: SocketAddr, stats: Arc<Stats>, export: std::path::PathBuf) -> Worker {
        let minor = if id < WORKERS41 { 1 } else { 0 };
        let mut c = Client::connect(addr, minor).expect("connect");
        let owner = format!("soak-worker-{id}");
        if minor == 1 {
            c.establish41(owner.as_bytes()).expect("session");
        } else {
            c.establish40(owner.as_bytes()).expect("client id");
        }
        let mut w = Worker {
            id,
            addr,
            c,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1),
            root: Vec::new(),
            files: Vec::new(),
            opens: Vec::new(),
            model: vec![vec![0; REGION]; FILES],
            version: 0,
            oseq: 0,
            dir_exists: false,
            stats,
            export,
        };
        let r = w.run(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH]);
        w.root = fh(&r);
        for i in 0..FILES {
            let r = w.run(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(&file_name(i)),
                nfs_argop4::OP_GETFH,
            ]);
            w.files.push(fh(&r));
            if minor == 1 {
                let r = w.run(vec![
                    putfh(&w.files[i].clone()),
                    open_op(
                        w.c.clientid,
                        format!("w{id}-shared").as_bytes(),
                        0,
                        OPEN4_SHARE_ACCESS_BOTH,
                        no_create(),
                        open_claim4::CLAIM_FH,
                    ),
                ]);
                let ok = open_ok(&r).unwrap_or_else(|| panic!("OPEN shared {i}: {r:?}"));
                w.opens.push(ok.stateid.clone());
            }
        }
        w
    }

    fn minor(&self) -> u32 {
        self.c.minor
    }

    /// A new connection for the same client (and session: under SP4_NONE
    /// SEQUENCE binds it, RFC 8881 §2.10.3.1).
    fn reconnect(&mut self) {
        let mut n = Client::connect(self.addr, self.minor()).expect("reconnect");
        n.session = self.c.session;
        n.seqids = self.c.seqids.clone();
        n.clientid = self.c.clientid;
        n.cred = self.c.cred.clone();
        self.c = n;
        bump(&self.stats.reconnects, 1);
    }

    /// Runs a COMPOUND (prefixed with SEQUENCE in 4.1). A connection that
    /// fails is replaced and the request retransmitted with the same
    /// sequence id, which is what a real client does; a busy slot
    /// (NFS4ERR_DELAY from SEQUENCE) is retried.
    fn run(&mut self, ops: Vec<nfs_argop4>) -> COMPOUND4res {
        let seq = self.c.seqids[0];
        for attempt in 0..50 {
            self.c.seqids[0] = seq;
            match self.c.compound(ops.clone()) {
                Ok(r) => {
                    let seq_delay = self.minor() >= 1
                        && r.resarray.len() == 1
                        && r.status == nfsstat4::NFS4ERR_DELAY;
                    if seq_delay {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    bump(&self.stats.compounds, 1);
                    bump(
                        &self.stats.ops,
                        ops.len() as u64 + u64::from(self.minor() >= 1),
                    );
                    return r;
                }
                Err(e) => {
                    assert!(
                        attempt < 10,
                        "worker {}: request keeps failing: {e}",
                        self.id
                    );
                    self.reconnect();
                    bump(&self.stats.retransmits, 1);
                }
            }
        }
        panic!("worker {}: slot stayed busy", self.id);
    }

    fn ok(&mut self, what: &str, ops: Vec<nfs_argop4>) -> COMPOUND4res {
        let r = self.run(ops);
        assert_eq!(
            r.status,
            nfsstat4::NFS4_OK,
            "worker {}: {what}: {r:?}",
            self.id
        );
        r
    }

    fn region_start(&self) -> u64 {
        (self.id * REGION) as u64
    }

    fn io_stateid(&self, file: usize) -> stateid4 {
        if self.minor() >= 1 {
            self.opens[file].clone()
        } else {
            ANON
        }
    }

    fn write_own(&mut self) {
        let f = next(&mut self.rng) as usize % FILES;
        let off = next(&mut self.rng) as usize % REGION;
        let len = 1 + next(&mut self.rng) as usize % (REGION - off);
        self.version += 1;
        let data = pattern(self.id, self.version, len);
        let stable = if next(&mut self.rng).is_multiple_of(3) {
            stable_how4::UNSTABLE4
        } else {
            stable_how4::FILE_SYNC4
        };
        let at = self.region_start() + off as u64;
        let mut ops = vec![
            putfh(&self.files[f]),
            write(&self.io_stateid(f), at, stable, data.clone()),
        ];
        if stable == stable_how4::UNSTABLE4 {
            ops.push(commit());
        }
        self.ok("WRITE", ops);
        self.model[f][off..off + len].copy_from_slice(&data);
    }

    fn read_own(&mut self) {
        let f = next(&mut self.rng) as usize % FILES;
        let r = self.ok(
            "READ own",
            vec![
                putfh(&self.files[f]),
                read(&self.io_stateid(f), self.region_start(), REGION as u32),
            ],
        );
        if let Some(at) = first_difference(read_data(&r), &self.model[f]) {
            panic!(
                "worker {} reads back other bytes than it wrote in file {f} at region offset {at} (version {})",
                self.id, self.version
            );
        }
    }

    fn read_other(&mut self) {
        let f = next(&mut self.rng) as usize % FILES;
        let who = next(&mut self.rng) as usize % WORKERS;
        let r = self.ok(
            "READ other",
            vec![
                putfh(&self.files[f]),
                read(&ANON, (who * REGION) as u64, REGION as u32),
            ],
        );
        assert_eq!(read_data(&r).len(), REGION);
    }

    fn metadata(&mut self) {
        let f = next(&mut self.rng) as usize % FILES;
        self.ok(
            "GETATTR",
            vec![
                putfh(&self.files[f]),
                getattr(&[FATTR4_SIZE, FATTR4_CHANGE]),
            ],
        );
        self.ok(
            "READDIR",
            vec![
                putfh(&self.root),
                nfs_argop4::OP_READDIR(READDIR4args {
                    cookie: 0,
                    cookieverf: [0; 8],
                    dircount: 8192,
                    maxcount: 32768,
                    attr_request: vec![1 << FATTR4_TYPE],
                }),
            ],
        );
        if self.minor() == 0 {
            let id = self.c.clientid;
            self.ok(
                "RENEW",
                vec![nfs_argop4::OP_RENEW(RENEW4args { clientid: id })],
            );
        }
    }

    /// OPEN (create), WRITE, CLOSE, RENAME, REMOVE of a private file.
    fn private_file(&mut self) {
        let (a, b) = (format!("w{}-tmp", self.id), format!("w{}-tmp2", self.id));
        let owner = format!("w{}-private", self.id).into_bytes();
        let seqid = self.oseq;
        let r = self.ok(
            "OPEN private",
            vec![
                putfh(&self.root),
                open_op(
                    self.c.clientid,
                    &owner,
                    seqid,
                    OPEN4_SHARE_ACCESS_BOTH,
                    create_unchecked(),
                    claim_null(&a),
                ),
                nfs_argop4::OP_GETFH,
            ],
        );
        self.oseq += 1;
        let ok = open_ok(&r).expect("open result");
        let fh = fh(&r);
        let mut sid = ok.stateid.clone();
        if self.minor() == 0 && ok.rflags & OPEN4_RESULT_CONFIRM != 0 {
            let seqid = self.oseq;
            let r = self.ok(
                "OPEN_CONFIRM",
                vec![
                    putfh(&fh),
                    nfs_argop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4args {
                        open_stateid: sid.clone(),
                        seqid,
                    }),
                ],
            );
            self.oseq += 1;
            let Some(nfs_resop4::OP_OPEN_CONFIRM(OPEN_CONFIRM4res::NFS4_OK(c))) = r.resarray.last()
            else {
                panic!("{r:?}")
            };
            sid = c.open_stateid.clone();
        }
        self.ok(
            "WRITE private",
            vec![
                putfh(&fh),
                write(&sid, 0, stable_how4::UNSTABLE4, pattern(self.id, 0, 300)),
            ],
        );
        let seqid = self.oseq;
        self.ok("CLOSE private", vec![putfh(&fh), close(seqid, &sid)]);
        self.oseq += 1;
        self.ok(
            "RENAME private",
            vec![putfh(&self.root), nfs_argop4::OP_SAVEFH, rename(&a, &b)],
        );
        self.ok("REMOVE private", vec![putfh(&self.root), remove(&b)]);
    }

    /// 4.1 byte-range lock and unlock of the worker's own region.
    fn lock_unlock(&mut self) {
        let f = next(&mut self.rng) as usize % FILES;
        let r = self.ok(
            "LOCK",
            vec![
                putfh(&self.files[f]),
                lock_op(
                    true,
                    false,
                    self.region_start(),
                    REGION as u64,
                    new_lock_owner(
                        self.c.clientid,
                        format!("w{}-lock-{}", self.id, self.version).as_bytes(),
                        &self.opens[f],
                        0,
                        0,
                    ),
                ),
            ],
        );
        let Some(nfs_resop4::OP_LOCK(LOCK4res::NFS4_OK(ok))) = r.resarray.last() else {
            panic!("{r:?}")
        };
        let lsid = ok.lock_stateid.clone();
        let r = self.ok(
            "LOCKU",
            vec![
                putfh(&self.files[f]),
                nfs_argop4::OP_LOCKU(LOCKU4args {
                    locktype: nfs_lock_type4::WRITE_LT,
                    seqid: 0,
                    lock_stateid: lsid.clone(),
                    offset: self.region_start(),
                    length: REGION as u64,
                }),
            ],
        );
        // LOCKU bumped the stateid's seqid: free the current one.
        let Some(nfs_resop4::OP_LOCKU(LOCKU4res::NFS4_OK(lsid))) = r.resarray.last() else {
            panic!("{r:?}")
        };
        let lsid = lsid.clone();
        self.ok(
            "FREE_STATEID",
            vec![nfs_argop4::OP_FREE_STATEID(FREE_STATEID4args {
                fsa_stateid: lsid,
            })],
        );
        self.version += 1;
    }

    /// The exactly-once probe: a non-idempotent request whose connection
    /// is cut — after all of it was sent, or halfway — is retransmitted on
    /// the same slot and sequence id from a new connection.
    fn drop_and_retransmit(&mut self) {
        let name = format!("w{}-probe", self.id);
        let op = if self.dir_exists {
            remove(&name)
        } else {
            mkdir(&name, no_attrs())
        };
        let seq = self.c.seqids[0];
        let ops = [putfh(&self.root), op.clone()];
        let body =
            compound_body(self.c.minor, Some(&self.c.sequence(0, true)), &ops).expect("encodes");
        let xid = self.c.next_xid(0);
        let rec = encode_call(xid, &self.c.cred, PROC_COMPOUND, &body, 0);
        let half = next(&mut self.rng).is_multiple_of(2);
        let cut = if half { rec.len() / 2 } else { rec.len() };
        let _ = self.c.send_raw(&rec[..cut]);
        bump(&self.stats.dropped, 1);
        self.reconnect();
        // First retransmission: the original's result (or, when the cut
        // came before the server had the whole request, the first run).
        let first = self.run(vec![putfh(&self.root), op.clone()]);
        assert_eq!(
            first.status,
            nfsstat4::NFS4_OK,
            "worker {}: retransmitted {} answered {:?} — it ran twice",
            self.id,
            if self.dir_exists { "REMOVE" } else { "CREATE" },
            first.status
        );
        // Second retransmission, from yet another connection: the cached
        // reply, identical (change_info included).
        self.c.seqids[0] = seq;
        self.reconnect();
        let second = self.run(vec![putfh(&self.root), op]);
        assert_eq!(second, first, "worker {}: replay differs", self.id);
        bump(&self.stats.replays_checked, 1);
        self.c.seqids[0] = seq.wrapping_add(1);
        self.dir_exists = !self.dir_exists;
        assert_eq!(
            self.export.join(&name).is_dir(),
            self.dir_exists,
            "worker {}: probe directory state on disk",
            self.id
        );
        self.version += 1;
    }

    /// 4.0: a request cut halfway or sent whole, then a new connection
    /// for the same client id. 4.0 promises no ordering between a request
    /// on a dead connection and later ones, so nothing here touches the
    /// model.
    fn drop40(&mut self) {
        // Either an OPEN of a missing file (fails, no state) or a WRITE
        // to the worker's scratch file: the outcome never matters.
        let argarray = if next(&mut self.rng).is_multiple_of(2) {
            vec![
                putfh(&self.root),
                open_op(
                    self.c.clientid,
                    b"never-used",
                    0,
                    OPEN4_SHARE_ACCESS_WRITE,
                    no_create(),
                    claim_null("no-such-file"),
                ),
            ]
        } else {
            vec![
                putfh(&self.root),
                lookup(&scratch_name(self.id)),
                write(
                    &ANON,
                    0,
                    stable_how4::FILE_SYNC4,
                    pattern(self.id, self.version, 2048),
                ),
            ]
        };
        let body = compound_body(self.c.minor, None, &argarray).expect("encodes");
        let xid = self.c.next_xid(0);
        let rec = encode_call(xid, &self.c.cred, PROC_COMPOUND, &body, 0);
        let cut = if next(&mut self.rng).is_multiple_of(2) {
            rec.len() / 2
        } else {
            rec.len()
        };
        let _ = self.c.send_raw(&rec[..cut]);
        bump(&self.stats.dropped, 1);
        self.reconnect();
        self.version += 1;
    }

    fn step(&mut self) {
        let roll = next(&mut self.rng) % 100;
        match (self.minor(), roll) {
            (_, 0..=29) => self.write_own(),
            (_, 30..=49) => self.read_own(),
            (_, 50..=59) => self.read_other(),
            (_, 60..=71) => self.metadata(),
            (_, 72..=81) => self.private_file(),
            (1, 82..=89) => self.lock_unlock(),
            (1, _) => self.drop_and_retransmit(),
            (_, _) => self.drop40(),
        }
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

#[test]
fn soak_mixed_clients_with_dropped_connections() {
    let secs = soak_secs();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("soak.toml");
    // Small caches, so the bound checks below mean something.
    std::fs::write(
        &conf,
        "[limits]\nmax_open_files = 64\nsled_cache_bytes = 16777216\n",
    )
    .unwrap();
    let mut srv = Nfs4d::start(&["--config", conf.to_str().unwrap()]);
    let addr = SocketAddr::from(([127, 0, 0, 1], srv.port));
    let pid = srv.pid();
    for i in 0..FILES {
        std::fs::write(srv.export.join(file_name(i)), vec![0u8; REGION * WORKERS]).unwrap();
    }
    for id in 0..WORKERS {
        std::fs::write(srv.export.join(scratch_name(id)), b"").unwrap();
    }

    let stats = Arc::new(Stats::default());
    let workers: Vec<Worker> = (0..WORKERS)
        .map(|id| Worker::new(id, addr, stats.clone(), srv.export.clone()))
        .collect();
    let (fd0, rss0) = (fds(pid), proc_status(pid, "VmRSS:"));

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(Mutex::new((fd0, rss0)));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (f, r) = (fds(pid), proc_status(pid, "VmRSS:"));
                let mut p = peak.lock().unwrap();
                *p = (p.0.max(f), p.1.max(r));
                drop(p);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    w.step();
                }
                // Final read-back of the worker's regions through NFS.
                for f in 0..FILES {
                    let want = w.model[f].clone();
                    let r = w.ok(
                        "final READ",
                        vec![
                            putfh(&w.files[f].clone()),
                            read(&ANON, w.region_start(), REGION as u32),
                        ],
                    );
                    if let Some(at) = first_difference(read_data(&r), &want) {
                        panic!(
                            "worker {} file {f}: final READ differs at region offset {at}",
                            w.id
                        );
                    }
                }
                (w.id, w.model)
            })
        })
        .collect();
    let mut models = vec![Vec::new(); WORKERS];
    let mut failures = Vec::new();
    for h in handles {
        match h.join() {
            Ok((id, m)) => models[id] = m,
            Err(e) => failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
            ),
        }
    }
    // All client connections are closed now; give the server a moment to
    // notice before measuring.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let (fd1, rss1) = (fds(pid), proc_status(pid, "VmRSS:"));
    let (fd_peak, rss_peak) = *peak.lock().unwrap();
    let log = srv.log();
    eprintln!(
        "soak: {secs} s, {WORKERS} clients ({WORKERS41} × 4.1, {WORKERS40} × 4.0): {} COMPOUNDs, {} operations, \
         {} connections cut mid-request, {} reconnects, {} unplanned retransmissions, {} exactly-once probes; \
         server fds {fd0} → {fd1} (peak {fd_peak}), VmRSS {rss0} kB → {rss1} kB (peak {rss_peak} kB)",
        stats.compounds.load(Ordering::Relaxed),
        stats.ops.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.reconnects.load(Ordering::Relaxed),
        stats.retransmits.load(Ordering::Relaxed),
        stats.replays_checked.load(Ordering::Relaxed),
    );
    assert!(
        failures.is_empty(),
        "workers failed: {failures:#?}\nserver log tail:\n{}",
        tail(&log)
    );
    assert!(srv.alive(), "server died:\n{}", tail(&log));
    assert!(
        !log.contains("panicked"),
        "server panicked:\n{}",
        tail(&log)
    );
    assert!(
        stats.replays_checked.load(Ordering::Relaxed) > 0,
        "no exactly-once probe ran"
    );

    // Bounds: descriptors beyond the start are at most the backend's
    // descriptor cache (max_open_files) plus slack for sled; memory grows
    // by at most the sled cache and allocator slack.
    assert!(fd1 <= fd0 + 64 + 16, "fds grew from {fd0} to {fd1}");
    assert!(
        fd_peak <= fd0 + 64 + 16 + WORKERS as u64 * 2,
        "fd peak {fd_peak} from {fd0}"
    );
    assert!(
        rss1 <= rss0 + 160 * 1024,
        "VmRSS grew from {rss0} kB to {rss1} kB"
    );

    // Every shared file holds what the clients' model says, byte for byte.
    for i in 0..FILES {
        let disk = std::fs::read(srv.export.join(file_name(i))).unwrap();
        assert_eq!(disk.len(), REGION * WORKERS, "file {i} size");
        for (w, m) in models.iter().enumerate() {
            if let Some(at) = first_difference(&disk[w * REGION..(w + 1) * REGION], &m[i]) {
                panic!("file {i}, worker {w}'s region differs from the model at offset {at}");
            }
        }
    }
}

/// Where two byte strings first differ (a length difference counts).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    Some(
        a.iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len())),
    )
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
