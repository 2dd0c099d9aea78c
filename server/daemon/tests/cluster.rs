//! Two heads of a cluster on a real three-member etcd (docs/cluster.md),
//! driven through the project's client: a handle issued by one head
//! resolves on the other and a rename or remove on one is seen by the
//! other at once; a head killed with SIGKILL is taken over (address,
//! clients, grace) by the survivor, whose clients reclaim; an etcd member
//! lost changes nothing; quorum lost answers NFS4ERR_DELAY and recovers by
//! itself. Without `etcd` the tests skip loudly (they fail with CI=true).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;

use nfsstat4::{
    NFS4ERR_DELAY, NFS4ERR_DENIED, NFS4ERR_GRACE, NFS4ERR_NOENT, NFS4ERR_STALE, NFS4_OK,
};

/// etcd lease of the heads (seconds): a dead head is detected after it.
const HEAD_LEASE: u64 = 3;
/// NFS lease of the heads (seconds): the longest a takeover grace lasts.
const NFS_LEASE: u64 = 5;

/// One head: the real binary with a `[cluster]` section.
struct Head {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    conf: PathBuf,
}

impl Head {
    fn start(c: &EtcdCluster, root: &Path, export: &Path, name: &str) -> Head {
        let exports = format!("[[export]]\npath = \"/\"\ndir = \"{}\"\n", export.display());
        Head::start_with(c, root, &exports, name)
    }

    /// A head with the given `[[export]]` sections.
    fn start_with(c: &EtcdCluster, root: &Path, exports: &str, name: &str) -> Head {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("head dir");
        let etcd: Vec<String> = c.endpoints().iter().map(|e| format!("{e:?}")).collect();
        let conf = dir.join("nfs4d.toml");
        std::fs::write(
            &conf,
            format!(
                "listen = \"{addr}\"\nstate_dir = \"{}\"\nlease_time = {NFS_LEASE}\ngrace_time = 60\n\n\
                 {exports}\n\
                 [cluster]\netcd = [{}]\nname = \"t\"\nhead = \"{name}\"\nlease_secs = {HEAD_LEASE}\nrequest_timeout_ms = 1000\n",
                dir.join("state").display(),
                etcd.join(", "),
            ),
        )
        .expect("config");
        let mut h = Head {
            child: None,
            addr,
            dir,
            conf,
        };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nfs4d.log"))
            .expect("log");
        let out = std::fs::File::create(self.dir.join("nfs4d.out")).expect("out");
        let child = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
            .env("RUST_LOG", "info")
            .arg("serve")
            .arg("--config")
            .arg(&self.conf)
            .stdout(out)
            .stderr(log)
            .spawn()
            .expect("spawn nfs4d");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(self.dir.join("nfs4d.out")).unwrap_or_default();
            if text.contains("nfs4d listening on") {
                return;
            }
            assert!(self.alive(), "head exited at start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("head did not start:\n{}", self.log());
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nfs4d.log")).unwrap_or_default()
    }

    fn client41(&self, owner: &str, reclaiming: bool) -> Client {
        client41_at(self.addr, owner, reclaiming)
    }
}

impl Drop for Head {
    fn drop(&mut self) {
        self.kill();
    }
}

fn client41_at(addr: SocketAddr, owner: &str, reclaiming: bool) -> Client {
    let mut c = Client::connect(addr, 1).expect("connect");
    let o = if reclaiming {
        SessionOptions::reclaiming()
    } else {
        SessionOptions::default()
    };
    c.establish41_with(owner.as_bytes(), &o).expect("session");
    c
}

/// A 3-member etcd, an export shared by the heads, and their directories.
fn setup() -> Option<(EtcdCluster, tempfile::TempDir, PathBuf)> {
    let c = EtcdCluster::start(3)?;
    let root = tempfile::tempdir().expect("tempdir");
    let export = root.path().join("export");
    std::fs::create_dir_all(&export).expect("export");
    Some((c, root, export))
}

/// OPEN (creating) or reclaim of `name` in the root; status and stateid.
fn open(c: &mut Client, name: &str, owner: &str, reclaim: bool) -> (nfsstat4, Option<stateid4>) {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    let (how, claim) = if reclaim {
        ops.push(lookup(name));
        (no_create(), claim_previous())
    } else {
        (create_unchecked(), claim_null(name))
    };
    ops.push(open_op(
        c.clientid,
        owner.as_bytes(),
        0,
        OPEN4_SHARE_ACCESS_BOTH,
        how,
        claim,
    ));
    ops.push(nfs_argop4::OP_GETFH);
    let r = c.compound(ops).expect("open");
    (r.status, open_ok(&r).map(|ok| ok.stateid.clone()))
}

/// `call` until its status is not NFS4ERR_DELAY, as a client retries it
/// (RFC 8881 §15.1.1.3): a head answers DELAY while etcd is slower than a
/// request's deadline, which a loaded machine may make it. Bounded: the
/// last answer after about 10 s is returned as it is.
fn past_delay<T>(mut call: impl FnMut() -> (nfsstat4, T)) -> (nfsstat4, T) {
    let t = Instant::now();
    loop {
        let r = call();
        if r.0 != NFS4ERR_DELAY || t.elapsed() > Duration::from_secs(10) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A write LOCK of bytes 0..10 with a new lock owner.
fn lock(c: &mut Client, name: &str, open: &stateid4, owner: &[u8], reclaim: bool) -> nfsstat4 {
    let locker = new_lock_owner(c.clientid, owner, open, 0, 0);
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        lock_op(true, reclaim, 0, 10, locker),
    ])
    .expect("lock")
    .status
}

fn fh_of_name(c: &mut Client, name: &str) -> (nfsstat4, Option<nfs_fh4>) {
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(name),
            nfs_argop4::OP_GETFH,
        ])
        .expect("lookup");
    (r.status, fh_of(&r))
}

fn putfh_status(c: &mut Client, fh: &nfs_fh4) -> nfsstat4 {
    c.compound(vec![putfh(fh), getattr(&[FATTR4_SIZE])])
        .expect("putfh")
        .status
}

/// `so_major_id` and `server_scope` a head advertises.
fn identity(addr: SocketAddr) -> (Vec<u8>, Vec<u8>) {
    let mut c = Client::connect(addr, 1).expect("connect");
    let r = c
        .compound_raw(vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
            eia_clientowner: client_owner4 {
                co_verifier: [7; 8],
                co_ownerid: b"identity-probe".to_vec(),
            },
            eia_flags: 0,
            eia_state_protect: state_protect4_a::SP4_NONE,
            eia_client_impl_id: Vec::new(),
        })])
        .expect("exchange_id");
    match r.resarray.first() {
        Some(nfs_resop4::OP_EXCHANGE_ID(EXCHANGE_ID4res::NFS4_OK(ok))) => (
            ok.eir_server_owner.so_major_id.clone(),
            ok.eir_server_scope.clone(),
        ),
        other => panic!("EXCHANGE_ID: {other:?}"),
    }
}

#[test]
fn a_handle_of_one_head_resolves_on_the_other_and_changes_are_seen_at_once() {
    let Some((c, root, export)) = setup() else {
        return;
    };
    let a = Head::start(&c, root.path(), &export, "a");
    let b = Head::start(&c, root.path(), &export, "b");
    assert_eq!(identity(a.addr), identity(b.addr), "one server identity");

    let mut ca = a.client41("coh-a", false);
    let mut cb = b.client41("coh-b", false);
    let (st, sid) = open(&mut ca, "f", "oa", false);
    assert_eq!(st, NFS4_OK);
    let sid = sid.expect("stateid");
    let r = ca
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("f"),
            write(&sid, 0, stable_how4::FILE_SYNC4, b"written on a".to_vec()),
            nfs_argop4::OP_GETFH,
        ])
        .expect("write");
    assert_eq!(r.status, NFS4_OK);
    let fh = fh_of(&r).expect("handle issued by a");

    // b resolves a's handle (it caches the record on the way) and reads.
    let r = cb
        .compound(vec![putfh(&fh), read(&stateid4::default(), 0, 100)])
        .expect("read on b");
    assert_eq!(r.status, NFS4_OK, "a's handle on b");
    assert_eq!(read_ok(&r).expect("read").data, b"written on a");

    // A rename on a: before a's reply, b has dropped its stale view.
    let r = ca
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SAVEFH,
            nfs_argop4::OP_PUTROOTFH,
            rename("f", "g"),
        ])
        .expect("rename");
    assert_eq!(r.status, NFS4_OK);
    assert_eq!(fh_of_name(&mut cb, "f").0, NFS4ERR_NOENT);
    let (st, fh_g) = fh_of_name(&mut cb, "g");
    assert_eq!(st, NFS4_OK);
    assert_eq!(
        fh_g.expect("fh"),
        fh,
        "persistent handle kept across the rename"
    );

    // A remove on a: the very next PUTFH on b is STALE. (A file still
    // open is parked, not removed, so this one is closed first.)
    let (st, ksid) = open(&mut ca, "k", "ok", false);
    assert_eq!(st, NFS4_OK);
    let r = ca
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("k"),
            close(0, &ksid.expect("stateid")),
        ])
        .expect("close");
    assert_eq!(r.status, NFS4_OK);
    let fk = fh_of_name(&mut cb, "k").1.expect("k on b");
    assert_eq!(putfh_status(&mut cb, &fk), NFS4_OK, "b caches k");
    let r = ca
        .compound(vec![nfs_argop4::OP_PUTROOTFH, remove("k")])
        .expect("remove");
    assert_eq!(r.status, NFS4_OK);
    assert_eq!(putfh_status(&mut cb, &fk), NFS4ERR_STALE);
    // Objects made on both heads get distinct handles.
    assert_eq!(open(&mut ca, "x", "oa2", false).0, NFS4_OK);
    assert_eq!(open(&mut cb, "y", "ob", false).0, NFS4_OK);
    let hx = fh_of_name(&mut cb, "x").1.expect("x");
    let hy = fh_of_name(&mut ca, "y").1.expect("y");
    assert_ne!(hx, hy);
}

#[test]
fn a_killed_head_is_taken_over_and_its_clients_reclaim() {
    let Some((c, root, export)) = setup() else {
        return;
    };
    let mut a = Head::start(&c, root.path(), &export, "a");
    let b = Head::start(&c, root.path(), &export, "b");
    let mut ca = a.client41("victim", false);
    let (st, sid) = past_delay(|| open(&mut ca, "f", "oo", false));
    assert_eq!(st, NFS4_OK);
    let sid = sid.expect("stateid");
    assert_eq!(
        past_delay(|| (lock(&mut ca, "f", &sid, b"lo", false), ())).0,
        NFS4_OK
    );
    drop(ca);

    a.kill();
    let killed = Instant::now();
    // The survivor binds a's address once a's lease expired.
    let mut back = None;
    while killed.elapsed() < Duration::from_secs(HEAD_LEASE * 6) {
        if let Ok(mut probe) = Client::connect(a.addr, 1) {
            if probe.compound_raw(vec![]).is_ok() {
                back = Some(killed.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let back = back.unwrap_or_else(|| panic!("a's address never came back:\n{}", b.log()));
    println!("a's address served by b {back:?} after the kill");
    assert!(
        back >= Duration::from_secs(HEAD_LEASE) / 2,
        "not before a's lease could expire"
    );

    // a's client reclaims on a's address, now b.
    let mut ca = client41_at(a.addr, "victim", true);
    let (st, sid) = past_delay(|| open(&mut ca, "f", "oo", true));
    assert_eq!(st, NFS4_OK, "CLAIM_PREVIOUS on the survivor:\n{}", b.log());
    let sid = sid.expect("stateid");
    assert_eq!(
        past_delay(|| (lock(&mut ca, "f", &sid, b"lo", true), ())).0,
        NFS4_OK,
        "lock reclaim"
    );
    // Meanwhile nobody gets new state: b's own clients see GRACE.
    let mut other = b.client41("bystander", false);
    assert_eq!(
        past_delay(|| open(&mut other, "h", "ob", false)).0,
        NFS4ERR_GRACE
    );
    // A client a never had cannot reclaim.
    let mut stranger = client41_at(a.addr, "stranger", true);
    assert_ne!(
        past_delay(|| open(&mut stranger, "f", "os", true)).0,
        NFS4_OK
    );
    ca.reclaim_complete().expect("reclaim_complete");
    let done = Instant::now();
    loop {
        let st = past_delay(|| open(&mut other, "h", "ob", false)).0;
        if st == NFS4_OK {
            break;
        }
        assert_eq!(st, NFS4ERR_GRACE);
        assert!(
            done.elapsed() < Duration::from_secs(NFS_LEASE),
            "grace did not end after the last RECLAIM_COMPLETE"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "grace ended {:?} after RECLAIM_COMPLETE, {:?} after the kill",
        done.elapsed(),
        killed.elapsed()
    );
    // The reclaimed lock holds against other clients.
    let (st, osid) = past_delay(|| open(&mut other, "f", "ob2", false));
    assert_eq!(st, NFS4_OK);
    assert_eq!(
        past_delay(|| (
            lock(
                &mut other,
                "f",
                &osid.clone().expect("stateid"),
                b"lo2",
                false
            ),
            ()
        ))
        .0,
        NFS4ERR_DENIED
    );
}

/// A few operations a workload does: create-open, write, read back.
fn workload_step(c: &mut Client, i: u32) -> Result<(), nfsstat4> {
    let name = format!("w{}", i % 8);
    let (st, sid) = open(c, &name, "wo", false);
    if st != NFS4_OK {
        return Err(st);
    }
    let sid = sid.unwrap_or_default();
    let data = format!("step {i}").into_bytes();
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(&name),
            write(&sid, 0, stable_how4::FILE_SYNC4, data.clone()),
            read(&sid, 0, 64),
        ])
        .map_err(|_| nfsstat4::NFS4ERR_IO)?;
    if r.status != NFS4_OK {
        return Err(r.status);
    }
    if read_ok(&r).map(|ok| &ok.data[..data.len().min(ok.data.len())]) != Some(&data[..]) {
        return Err(nfsstat4::NFS4ERR_IO);
    }
    Ok(())
}

#[test]
fn etcd_faults_change_nothing_or_answer_delay_and_recover() {
    let Some((mut c, root, export)) = setup() else {
        return;
    };
    let a = Head::start(&c, root.path(), &export, "a");
    let mut ca = a.client41("worker", false);
    // One member lost, quorum kept: no error. If it was the leader, the
    // election may outlast a request's deadline (1 s here): DELAY, which
    // a client retries, is all it may cause.
    c.kill(0);
    let t = Instant::now();
    let mut i = 0;
    let mut slowest = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(3) {
        let step = Instant::now();
        loop {
            match workload_step(&mut ca, i) {
                Ok(()) => break,
                Err(NFS4ERR_DELAY) if step.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(st) => panic!("step {i} with a member down: {st:?}"),
            }
        }
        slowest = slowest.max(step.elapsed());
        i += 1;
    }
    println!("a member down: {i} steps, slowest {slowest:?}");
    c.restart(0);
    assert!(c.wait_healthy(Duration::from_secs(20)));
    // Quorum lost: every answer is OK or DELAY, and within half a lease
    // only DELAY; nothing else ever.
    let lost = c.lose_quorum();
    let t = Instant::now();
    let mut delays = 0;
    while t.elapsed() < Duration::from_secs(HEAD_LEASE * 2) {
        match workload_step(&mut ca, i) {
            Ok(()) => {}
            Err(NFS4ERR_DELAY) => delays += 1,
            Err(st) => panic!("quorum lost: step {i} answered {st:?}, not DELAY"),
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(delays > 0, "no DELAY while quorum was lost");
    c.restore(&lost);
    // Back by itself, on the same connection and session.
    let t = Instant::now();
    loop {
        match workload_step(&mut ca, i) {
            Ok(()) => break,
            Err(NFS4ERR_DELAY) if t.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(st) => panic!("after quorum returned: {st:?}\n{}", a.log()),
        }
        i += 1;
    }
    println!("serving again {:?} after quorum was restored", t.elapsed());
    workload_step(&mut ca, i + 1).expect("steady again");
}

/// `nfs4d ctl migrate --export EXPORT --to-head HEAD` against `via`.
fn migrate(via: &Head, export: &str, head: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .args(["ctl", "migrate", "--state-dir"])
        .arg(via.dir.join("state"))
        .args(["--export", export, "--to-head", head])
        .output()
        .expect("nfs4d ctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ctl migrate: {text}");
    text
}

/// Status of PUTFH + GETATTR(`attrs`), and the attribute values.
fn getattr_of(c: &mut Client, fh: &[u8], attrs: &[u32]) -> (nfsstat4, Vec<u8>) {
    let r = c
        .compound(vec![putfh(fh), getattr(attrs)])
        .expect("getattr");
    let vals = attrs_of(&r)
        .map(|f| f.attr_vals.clone())
        .unwrap_or_default();
    (r.status, vals)
}

/// Reads an XDR `pathname4` or string array at `at`.
fn xdr_strings(v: &[u8], at: &mut usize) -> Vec<String> {
    let word = |at: &mut usize| {
        let w = u32::from_be_bytes(v[*at..*at + 4].try_into().expect("word"));
        *at += 4;
        w as usize
    };
    let n = word(at);
    (0..n)
        .map(|_| {
            let len = word(at);
            let s = String::from_utf8(v[*at..*at + len].to_vec()).expect("utf8");
            *at += len.div_ceil(4) * 4;
            s
        })
        .collect()
}

#[test]
fn an_export_migrated_to_another_head_answers_moved_with_its_location() {
    let Some((c, root, export)) = setup() else {
        return;
    };
    let vol = root.path().join("vol");
    std::fs::create_dir_all(&vol).expect("vol");
    let exports = format!(
        "[[export]]\npath = \"/a\"\ndir = \"{}\"\n\n\
         [[export]]\npath = \"/v\"\ndir = \"{}\"\nfilehandles = \"volatile\"\nexpire_on = [\"migration\"]\n",
        export.display(),
        vol.display()
    );
    let a = Head::start_with(&c, root.path(), &exports, "a");
    let b = Head::start_with(&c, root.path(), &exports, "b");
    let mut ca = a.client41("mig-a", false);
    let mut cb = b.client41("mig-b", false);
    let mut make = |dir: &str, name: &str| -> Vec<u8> {
        let r = ca
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(dir),
                open_op(
                    ca.clientid,
                    b"mo",
                    0,
                    OPEN4_SHARE_ACCESS_BOTH,
                    create_unchecked(),
                    claim_null(name),
                ),
                nfs_argop4::OP_GETFH,
            ])
            .expect("create");
        assert_eq!(r.status, NFS4_OK);
        let sid = open_ok(&r).expect("open").stateid.clone();
        let fh = fh_of(&r).expect("fh");
        let r = ca
            .compound(vec![
                putfh(&fh),
                write(&sid, 0, stable_how4::FILE_SYNC4, b"moved data".to_vec()),
                close(0, &sid),
            ])
            .expect("write");
        assert_eq!(r.status, NFS4_OK);
        fh
    };
    let fh = make("a", "f");
    let fh_v = make("v", "g");
    // A client that holds an open and a lock on /a/f at head A.
    let mut holder = a.client41("mig-holder", false);
    let r = holder
        .compound(vec![
            putfh(&fh),
            open_op(
                holder.clientid,
                b"ho",
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                no_create(),
                open_claim4::CLAIM_FH,
            ),
        ])
        .expect("open");
    assert_eq!(r.status, NFS4_OK);
    let hsid = open_ok(&r).expect("open").stateid.clone();
    let locker = new_lock_owner(holder.clientid, b"hl", &hsid, 0, 0);
    let r = holder
        .compound(vec![putfh(&fh), lock_op(true, false, 0, 10, locker)])
        .expect("lock");
    assert_eq!(r.status, NFS4_OK);

    // Move /a to head b: head a answers MOVED, and tells where it went.
    println!("{}", migrate(&a, "/a", "b"));
    assert_eq!(
        getattr_of(&mut ca, &fh, &[FATTR4_SIZE]).0,
        nfsstat4::NFS4ERR_MOVED
    );
    let r = ca
        .compound(vec![putfh(&fh), read(&stateid4::default(), 0, 10)])
        .expect("read");
    assert_eq!(r.status, nfsstat4::NFS4ERR_MOVED);
    let (st, vals) = getattr_of(&mut ca, &fh, &[FATTR4_FS_LOCATIONS, FATTR4_FSID]);
    assert_eq!(st, NFS4_OK, "fs_locations of a moved file system");
    // Values in attribute order: fsid (two uint64), then fs_locations.
    let mut at = 16;
    assert_eq!(
        xdr_strings(&vals, &mut at),
        vec!["a".to_string()],
        "fs_root"
    );
    let n = u32::from_be_bytes(vals[at..at + 4].try_into().expect("count"));
    at += 4;
    assert_eq!(n, 1, "one location");
    assert_eq!(xdr_strings(&vals, &mut at), vec![b.addr.ip().to_string()]);
    assert_eq!(
        xdr_strings(&vals, &mut at),
        vec!["a".to_string()],
        "rootpath"
    );
    // Head b serves it, with the same (persistent) handle.
    let r = cb
        .compound(vec![putfh(&fh), read(&stateid4::default(), 0, 100)])
        .expect("read on b");
    assert_eq!(r.status, NFS4_OK);
    assert_eq!(read_ok(&r).expect("read").data, b"moved data");
    // The other export stays where it was.
    assert_eq!(getattr_of(&mut ca, &fh_v, &[FATTR4_SIZE]).0, NFS4_OK);
    // The holder follows the move and tears its client down at head A:
    // its state there is on a moved export, so it is no reason for
    // CLIENTID_BUSY, and the store's lock it held is released, so the
    // lock can be taken at head B.
    holder.destroy().expect("DESTROY_CLIENTID at the old head");
    let mut relock = b.client41("mig-relock", false);
    let r = relock
        .compound(vec![
            putfh(&fh),
            open_op(
                relock.clientid,
                b"ro",
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                no_create(),
                open_claim4::CLAIM_FH,
            ),
        ])
        .expect("open on b");
    assert_eq!(r.status, NFS4_OK);
    let rsid = open_ok(&r).expect("open").stateid.clone();
    let locker = new_lock_owner(relock.clientid, b"rl", &rsid, 0, 0);
    let r = relock
        .compound(vec![putfh(&fh), lock_op(true, false, 0, 10, locker)])
        .expect("lock on b");
    assert_eq!(r.status, NFS4_OK, "the old head released the lock");

    // A volatile export that expires on migration: old handles expire,
    // as FH4_VOL_MIGRATION advertises; a new lookup gives a working one.
    println!("{}", migrate(&a, "/v", "b"));
    assert_eq!(
        getattr_of(&mut cb, &fh_v, &[FATTR4_SIZE]).0,
        nfsstat4::NFS4ERR_FHEXPIRED
    );
    let r = cb
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("v"),
            lookup("g"),
            getattr(&[FATTR4_SIZE]),
        ])
        .expect("lookup on b");
    assert_eq!(r.status, NFS4_OK);
    assert_eq!(size_of(&r), Some(10));

    // Back to head a: a serves it again at once, b answers MOVED within
    // its next look at the placements.
    println!("{}", migrate(&a, "/a", "a"));
    assert_eq!(getattr_of(&mut ca, &fh, &[FATTR4_SIZE]).0, NFS4_OK);
    let t = Instant::now();
    while getattr_of(&mut cb, &fh, &[FATTR4_SIZE]).0 != nfsstat4::NFS4ERR_MOVED {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "b never answered MOVED"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Bad input: unknown head, unknown export.
    for (export, head) in [("/a", "nobody"), ("/nothing", "b")] {
        let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
            .args(["ctl", "migrate", "--state-dir"])
            .arg(a.dir.join("state"))
            .args(["--export", export, "--to-head", head])
            .output()
            .expect("nfs4d ctl");
        assert_eq!(out.status.code(), Some(1), "{export} to {head}");
    }
}
