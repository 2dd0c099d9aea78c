//! NFS byte-range locks and the locks of local processes on the backing
//! files see each other (docs/locking.md): a loopback server, the
//! project's client, and a separate local process (python3's `fcntl`
//! module: classic process-associated `fcntl(F_SETLK)` locks and
//! `F_GETLK`) on the same file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;

/// The local process. Arguments: FILE then operations, run in order on
/// one descriptor opened read-write:
///   try:r|w:START:LEN   F_SETLK; prints GRANTED (then unlocks) or DENIED
///   get:r|w:START:LEN   F_GETLK; prints FREE or HELD r|w START LEN PID
///   hold:r|w:START:LEN  F_SETLK, prints HELD, keeps the lock until stdin
///                       closes (exit 1 with DENIED if refused)
/// LEN 0 is "to the end of the file", as in fcntl(2).
const LOCAL: &str = r#"
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
FMT = "hhqqixxxx"  # struct flock on x86_64 and aarch64 Linux
for op in sys.argv[2:]:
    verb, kind, start, length = op.split(":")
    start, length = int(start), int(length)
    ty = fcntl.F_WRLCK if kind == "w" else fcntl.F_RDLCK
    if verb == "get":
        fl = struct.pack(FMT, ty, os.SEEK_SET, start, length, 0)
        t, _, s, l, pid = struct.unpack(FMT, fcntl.fcntl(fd, fcntl.F_GETLK, fl))
        if t == fcntl.F_UNLCK:
            print("FREE", flush=True)
        else:
            print("HELD", "w" if t == fcntl.F_WRLCK else "r", s, l, pid, flush=True)
        continue
    fl = struct.pack(FMT, ty, os.SEEK_SET, start, length, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLK, fl)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        print("DENIED", flush=True)
        if verb == "hold":
            sys.exit(1)
        continue
    if verb == "try":
        print("GRANTED", flush=True)
        fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack(FMT, fcntl.F_UNLCK, os.SEEK_SET, start, length, 0))
    else:
        print("HELD", flush=True)
        sys.stdin.read()
"#;

fn python() -> Command {
    // python3 is part of the CI image; without it these tests cannot show
    // anything, so fail loudly rather than pass.
    let mut c = Command::new("python3");
    c.arg("-c").arg(LOCAL);
    c
}

/// Runs the local process to completion; its output lines.
fn local(file: &Path, ops: &[&str]) -> Vec<String> {
    let out = python()
        .arg(file)
        .args(ops)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "local process failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A local process holding a lock until dropped.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    fn start(file: &Path, op: &str) -> Holder {
        let mut child = python()
            .arg(file)
            .arg(op)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "HELD", "local holder did not get {op}");
        let stdin = child.stdin.take();
        Holder { child, stdin }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets the lock go (closing stdin ends the process) and waits.
    fn release(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One NFS client with an open file, for 4.0 or 4.1.
struct Nfs {
    c: Client,
    name: String,
    open: stateid4,
    open_seqid: u32,
    lock: Option<stateid4>,
    lock_seqid: u32,
}

fn status_of(r: &COMPOUND4res) -> nfsstat4 {
    r.status
}

/// The open owner of every OPEN here.
const OPEN_OWNER: &[u8] = b"open-owner";

/// OPEN of `name` in the root, creating it, by [`OPEN_OWNER`].
fn create(c: &mut Client, name: &str, access: u32) -> OPEN4resok {
    let open = open_op(
        c.clientid,
        OPEN_OWNER,
        0,
        access,
        create_unchecked(),
        claim_null(name),
    );
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH, open]).unwrap();
    open_ok(&r).unwrap_or_else(|| panic!("OPEN {r:?}")).clone()
}

fn open41(c: &mut Client, name: &str, access: u32) -> stateid4 {
    create(c, name, access).stateid
}

impl Nfs {
    fn new(srv: &TestServer, minor: u32, owner: &str, name: &str) -> Nfs {
        Nfs::with_access(srv, minor, owner, name, OPEN4_SHARE_ACCESS_BOTH)
    }

    fn with_access(srv: &TestServer, minor: u32, owner: &str, name: &str, access: u32) -> Nfs {
        let mut c = srv.client(minor);
        if minor == 0 {
            c.establish40(owner.as_bytes()).unwrap();
        } else {
            c.establish41(owner.as_bytes()).unwrap();
        }
        let ok = create(&mut c, name, access);
        let mut open = ok.stateid;
        let mut open_seqid = 1;
        if ok.rflags & OPEN4_RESULT_CONFIRM != 0 {
            open = c.open_confirm(name, &open, 1);
            open_seqid = 2;
        }
        Nfs {
            c,
            name: name.to_string(),
            open,
            open_seqid,
            lock: None,
            lock_seqid: 0,
        }
    }

    /// LOCK; on success the lock stateid is kept. The status and, for
    /// NFS4ERR_DENIED, the conflict.
    fn lock(&mut self, write: bool, offset: u64, length: u64) -> (nfsstat4, Option<LOCK4denied>) {
        let locker = match &self.lock {
            None => new_lock_owner(
                self.c.clientid,
                b"lock-owner",
                &self.open,
                self.open_seqid,
                self.lock_seqid,
            ),
            Some(sid) => existing_lock_owner(sid, self.lock_seqid),
        };
        let r = self
            .c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(&self.name),
                lock_op(write, false, offset, length, locker),
            ])
            .unwrap();
        match r.resarray.last() {
            Some(nfs_resop4::OP_LOCK(LOCK4res::NFS4_OK(ok))) => {
                if self.lock.is_none() {
                    // 4.0: the open owner's seqid advanced, the lock
                    // owner's sequence starts.
                    self.open_seqid += 1;
                }
                self.lock = Some(ok.lock_stateid.clone());
                self.lock_seqid += 1;
                (nfsstat4::NFS4_OK, None)
            }
            Some(nfs_resop4::OP_LOCK(LOCK4res::NFS4ERR_DENIED(d))) => {
                if self.lock.is_none() {
                    // A refused open_to_lock_owner4 still used the open
                    // owner's seqid (RFC 7530 §9.1.7: DENIED is not one of
                    // the errors that leave it).
                    self.open_seqid += 1;
                } else {
                    self.lock_seqid += 1;
                }
                (nfsstat4::NFS4ERR_DENIED, Some(d.clone()))
            }
            _ => (status_of(&r), None),
        }
    }

    fn lockt(&mut self, write: bool, offset: u64, length: u64) -> Option<LOCK4denied> {
        let r = self
            .c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(&self.name),
                nfs_argop4::OP_LOCKT(LOCKT4args {
                    locktype: lock_type(write),
                    offset,
                    length,
                    owner: lock_owner4 {
                        clientid: self.c.clientid,
                        owner: b"tester".to_vec(),
                    },
                }),
            ])
            .unwrap();
        match r.resarray.last() {
            Some(nfs_resop4::OP_LOCKT(LOCKT4res::NFS4ERR_DENIED(d))) => Some(d.clone()),
            _ => {
                assert_eq!(r.status, nfsstat4::NFS4_OK, "LOCKT {r:?}");
                None
            }
        }
    }

    fn locku(&mut self, offset: u64, length: u64) {
        let r = self
            .c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(&self.name),
                nfs_argop4::OP_LOCKU(LOCKU4args {
                    locktype: nfs_lock_type4::WRITE_LT,
                    seqid: self.lock_seqid,
                    lock_stateid: self.lock.clone().expect("a lock stateid"),
                    offset,
                    length,
                }),
            ])
            .unwrap();
        assert_eq!(r.status, nfsstat4::NFS4_OK, "LOCKU {r:?}");
        let Some(nfs_resop4::OP_LOCKU(LOCKU4res::NFS4_OK(sid))) = r.resarray.last() else {
            panic!("LOCKU {r:?}")
        };
        self.lock = Some(sid.clone());
        self.lock_seqid += 1;
    }
}

const ALL: u64 = u64::MAX;
const OFFSET_MAX: u64 = i64::MAX as u64;

#[test]
fn nfs_locks_bind_local_processes() {
    let srv = TestServer::start(&[]);
    for minor in [0u32, 1] {
        let name = format!("nfs-holds-{minor}");
        let mut n = Nfs::new(&srv, minor, &format!("c{minor}"), &name);
        let file = srv.export.join(&name);
        assert_eq!(n.lock(true, 0, 100).0, nfsstat4::NFS4_OK);
        // A local process cannot lock any byte of it, read or write; it
        // can lock next to it; F_GETLK describes the NFS lock (an
        // open-file-description lock: pid -1).
        assert_eq!(
            local(
                &file,
                &[
                    "try:w:0:1",
                    "try:r:99:10",
                    "try:w:100:50",
                    "get:w:50:0",
                    "get:r:100:0"
                ]
            ),
            ["DENIED", "DENIED", "GRANTED", "HELD w 0 100 -1", "FREE"],
            "minor {minor}"
        );
        // Downgrade to read: local readers share it, writers do not.
        assert_eq!(n.lock(false, 0, 100).0, nfsstat4::NFS4_OK);
        assert_eq!(
            local(&file, &["try:r:0:100", "try:w:50:1"]),
            ["GRANTED", "DENIED"]
        );
        // Unlocking the middle splits it, for the kernel too.
        n.locku(40, 20);
        assert_eq!(
            local(&file, &["try:w:40:20", "try:w:39:1", "try:w:60:1"]),
            ["GRANTED", "DENIED", "DENIED"]
        );
        n.locku(0, ALL);
        assert_eq!(local(&file, &["try:w:0:0"]), ["GRANTED"]);
    }
}

#[test]
fn local_locks_deny_nfs_locks() {
    let srv = TestServer::start(&[]);
    for minor in [0u32, 1] {
        let name = format!("local-holds-{minor}");
        let mut n = Nfs::new(&srv, minor, &format!("c{minor}"), &name);
        let file = srv.export.join(&name);
        let h = Holder::start(&file, "hold:w:10:20");
        let want_owner = lock_owner4 {
            clientid: 0,
            owner: format!("local-process:{}", h.pid()).into_bytes(),
        };
        // LOCKT and LOCK both report the local lock and its process.
        let d = n.lockt(false, 0, 11).expect("LOCKT sees the local lock");
        assert_eq!(
            (d.offset, d.length, d.locktype, &d.owner),
            (10, 20, nfs_lock_type4::WRITE_LT, &want_owner)
        );
        let (st, d) = n.lock(true, 25, ALL);
        assert_eq!(st, nfsstat4::NFS4ERR_DENIED, "minor {minor}");
        let d = d.unwrap();
        assert_eq!((d.offset, d.length, &d.owner), (10, 20, &want_owner));
        // Bytes next to it are free.
        assert_eq!(n.lock(true, 30, 10).0, nfsstat4::NFS4_OK);
        assert_eq!(n.lockt(true, 0, 10), None);
        // Upgrading the NFS owner's range over the local lock is refused
        // and leaves its lock as it was.
        assert_eq!(n.lock(true, 5, 40).0, nfsstat4::NFS4ERR_DENIED);
        assert_eq!(local(&file, &["get:w:30:0"]), ["HELD w 30 10 -1"]);
        // The local process lets go: now the NFS lock is granted.
        h.release();
        assert_eq!(n.lockt(true, 0, 30), None);
        let d = n.lockt(true, 0, ALL).expect("the NFS owner's own lock");
        assert_eq!((d.offset, d.length), (30, 10));
        assert_eq!(d.owner.owner, b"lock-owner");
        assert_eq!(n.lock(true, 0, ALL).0, nfsstat4::NFS4_OK);
        assert_eq!(local(&file, &["try:r:1000000:1"]), ["DENIED"]);
        n.locku(0, ALL);
    }
}

#[test]
fn ranges_past_the_signed_limit() {
    let srv = TestServer::start(&[]);
    let mut n = Nfs::new(&srv, 1, "big", "big");
    let file = srv.export.join("big");
    // Entirely past i64::MAX: the server's table only; no local process
    // can address those bytes, so all of the file stays lockable.
    assert_eq!(n.lock(true, OFFSET_MAX + 1, ALL).0, nfsstat4::NFS4_OK);
    assert_eq!(local(&file, &["try:w:0:0"]), ["GRANTED"]);
    // Other NFS owners still conflict there.
    let mut other = Nfs::new(&srv, 1, "big2", "big");
    assert_eq!(
        other.lock(false, u64::MAX - 10, 5).0,
        nfsstat4::NFS4ERR_DENIED
    );
    // Reaching past it: to the end of the file for the kernel.
    assert_eq!(n.lock(true, 1 << 40, OFFSET_MAX).0, nfsstat4::NFS4_OK);
    assert_eq!(
        local(
            &file,
            &["try:r:1099511627775:1", "get:r:9000000000000000000:0"]
        ),
        ["GRANTED", "HELD w 1099511627776 0 -1"]
    );
    // A local lock to the end of the file conflicts with an NFS lock that
    // starts below i64::MAX, and LOCKT reports "to the end" as all ones.
    n.locku(0, ALL);
    let h = Holder::start(&file, "hold:r:4096:0");
    let d = n.lockt(true, OFFSET_MAX - 1, 2).expect("conflict");
    assert_eq!((d.offset, d.length), (4096, ALL));
    assert_eq!(n.lockt(true, OFFSET_MAX + 1, ALL), None);
    h.release();
}

#[test]
fn expired_clients_release_local_locks() {
    let srv = TestServer::start_with_config(
        "lease_time = 5\n[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n",
        &[],
    );
    let root = srv.export.join("root");
    let mut n = Nfs::new(&srv, 1, "goes-away", "f");
    let file = root.join("f");
    assert_eq!(n.lock(true, 0, ALL).0, nfsstat4::NFS4_OK);
    assert_eq!(local(&file, &["try:w:0:1"]), ["DENIED"]);
    // The client stops renewing; after the lease the server drops its
    // state and the kernel lock with it.
    drop(n);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if local(&file, &["try:w:0:1"]) == ["GRANTED"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lock still held long after the lease expired:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(srv.log().contains("lease expired"), "{}", srv.log());
}

#[test]
fn lock_descriptions_are_bounded() {
    let srv = TestServer::start_with_config(
        "[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n\n[limits]\nmax_lock_files = 1\n",
        &[],
    );
    let mut a = Nfs::new(&srv, 1, "a", "f");
    let mut b = Nfs::new(&srv, 0, "b", "g");
    let mut c = Nfs::new(&srv, 1, "c", "h");
    assert_eq!(a.lock(true, 0, 10).0, nfsstat4::NFS4_OK);
    // The owner's description serves all its ranges.
    assert_eq!(a.lock(true, 100, 10).0, nfsstat4::NFS4_OK);
    // Another owner would need a second one: 4.0 NFS4ERR_RESOURCE, 4.1
    // NFS4ERR_DELAY. Ranges the kernel cannot hold need none.
    assert_eq!(b.lock(true, 0, 10).0, nfsstat4::NFS4ERR_RESOURCE);
    assert_eq!(c.lock(true, 0, 10).0, nfsstat4::NFS4ERR_DELAY);
    assert_eq!(c.lock(true, OFFSET_MAX + 1, 10).0, nfsstat4::NFS4_OK);
    // Once a's locks are gone its description is, too.
    a.locku(0, ALL);
    assert_eq!(c.lock(true, 0, 10).0, nfsstat4::NFS4_OK);
    assert!(
        srv.log().contains("max_lock_files reached"),
        "{}",
        srv.log()
    );
}

/// OPEN (CLAIM_PREVIOUS) and LOCK (reclaim) of `name` by a 4.1 client
/// that is reclaiming after a restart; the LOCK's status.
fn reclaim_lock(c: &mut Client, name: &str, offset: u64) -> nfsstat4 {
    let access = OPEN4_SHARE_ACCESS_BOTH;
    let open = open_op(
        c.clientid,
        OPEN_OWNER,
        0,
        access,
        no_create(),
        claim_previous(),
    );
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup(name), open])
        .unwrap();
    let ok = open_ok(&r).unwrap_or_else(|| panic!("OPEN CLAIM_PREVIOUS {r:?}"));
    let locker = new_lock_owner(c.clientid, b"lock-owner", &ok.stateid, 0, 0);
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        lock_op(true, true, offset, 10, locker),
    ])
    .unwrap()
    .status
}

#[test]
fn reclaims_after_a_restart_lock_the_backing_file_again() {
    let mut srv = TestServer::start_with_config(
        "lease_time = 5\ngrace_time = 60\n\n[[export]]\npath = \"/\"\ndir = \"{export}/root\"\n",
        &[],
    );
    let root = srv.export.join("root");
    let mut n = Nfs::new(&srv, 1, "survivor", "f");
    assert_eq!(n.lock(true, 0, 10).0, nfsstat4::NFS4_OK);
    assert_eq!(n.lock(true, 100, 10).0, nfsstat4::NFS4_OK);
    let file = root.join("f");
    assert_eq!(
        local(&file, &["try:w:0:1", "try:w:100:1"]),
        ["DENIED", "DENIED"]
    );
    drop(n);
    // The kernel's locks went with the process.
    srv.restart();
    assert_eq!(local(&file, &["try:w:0:1"]), ["GRANTED"]);
    // A local process is not bound by the grace period: what it takes
    // before the client reclaims makes that reclaim conflict.
    let h = Holder::start(&file, "hold:r:105:1");
    let mut c = srv.client(1);
    c.establish41_with(b"survivor", &SessionOptions::reclaiming())
        .unwrap();
    assert_eq!(reclaim_lock(&mut c, "f", 0), nfsstat4::NFS4_OK);
    assert_eq!(local(&file, &["try:w:0:1"]), ["DENIED"]);
    assert_eq!(
        reclaim_lock(&mut c, "f", 100),
        nfsstat4::NFS4ERR_RECLAIM_CONFLICT
    );
    h.release();
}

#[test]
fn read_only_opens_lock_through_read_only_descriptions() {
    let srv = TestServer::start(&[]);
    let file = srv.export.join("ro");
    std::fs::write(&file, b"0123456789").unwrap();
    let mut n = Nfs::with_access(&srv, 1, "reader", "ro", OPEN4_SHARE_ACCESS_READ);
    assert_eq!(n.lock(false, 0, 10).0, nfsstat4::NFS4_OK);
    // A write lock needs an open for writing.
    assert_eq!(n.lock(true, 0, 10).0, nfsstat4::NFS4ERR_OPENMODE);
    // The read lock binds local writers, not local readers, and no
    // description of the file is open for writing in the server.
    assert_eq!(
        local(&file, &["try:w:5:1", "try:r:5:1"]),
        ["DENIED", "GRANTED"]
    );
    assert_eq!(writers(srv.pid(), &file), 0);
    // The open is upgraded: now a write lock moves the owner's locks to a
    // description open for writing.
    open41(&mut n.c, "ro", OPEN4_SHARE_ACCESS_BOTH);
    assert_eq!(n.lock(true, 5, 10).0, nfsstat4::NFS4_OK);
    assert_eq!(writers(srv.pid(), &file), 1, "the lock description");
    assert_eq!(
        local(&file, &["get:r:0:0", "get:r:5:0", "try:r:0:5"]),
        ["HELD w 5 10 -1", "HELD w 5 10 -1", "GRANTED"]
    );
    assert_eq!(local(&file, &["try:w:0:1"]), ["DENIED"]);
    n.locku(0, ALL);
    assert_eq!(local(&file, &["try:w:0:0"]), ["GRANTED"]);
}

/// Descriptions of `file` that process `pid` has open for writing.
fn writers(pid: u32, file: &Path) -> usize {
    let want = std::fs::canonicalize(file).unwrap();
    let mut n = 0;
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if std::fs::read_link(fd.path()).ok() != Some(want.clone()) {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        if flags & 3 != 0 {
            n += 1;
        }
    }
    n
}

/// A local process holding a read lease on `file`: prints LEASED, then
/// BROKEN when the kernel asks it to let go (SIGIO), gives the lease up and
/// waits for stdin to close.
const LEASE: &str = r#"
import fcntl, os, signal, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
broken = []
signal.signal(signal.SIGIO, lambda *_: broken.append(1))
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
print("LEASED", flush=True)
for _ in range(400):
    if broken:
        break
    time.sleep(0.05)
print("BROKEN" if broken else "NOT BROKEN", flush=True)
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
sys.stdin.read()
"#;

#[test]
fn a_lease_on_the_backing_file_delays_the_lock() {
    let srv = TestServer::start(&[]);
    let file = srv.export.join("leased");
    // Created here: a file the server creates stays open for writing in
    // its descriptor cache, and no read lease can be taken on it.
    std::fs::write(&file, b"x").unwrap();
    let mut n = Nfs::new(&srv, 1, "leased", "leased");
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(LEASE)
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "LEASED");
    // Opening the lock description for writing breaks the lease: the
    // client is told to retry rather than wait in the server.
    assert_eq!(n.lock(true, 0, 10).0, nfsstat4::NFS4ERR_DELAY);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "BROKEN");
    let deadline = Instant::now() + Duration::from_secs(10);
    while n.lock(true, 0, 10).0 != nfsstat4::NFS4_OK {
        assert!(
            Instant::now() < deadline,
            "lock never granted after the lease went"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(local(&file, &["try:r:5:1"]), ["DENIED"]);
    drop(child.stdin.take());
    let _ = child.wait();
}
