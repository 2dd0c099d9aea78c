//! Every configurable limit, end to end on a loopback server: going past
//! it gives the RFC's answer (NFS4ERR_RESOURCE in 4.0, NFS4ERR_DELAY or
//! the operation's own error in 4.1, a closed connection at the
//! transport) and the server keeps serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::{self, Credential};

/// A server whose single export is "/" with these `[limits]` lines.
fn server(limits: &str) -> TestServer {
    TestServer::start_with_config(
        &format!("[[export]]\npath = \"/\"\ndir = \"{{export}}/root\"\n\n[limits]\n{limits}\n"),
        &[],
    )
}

fn root_dir(srv: &TestServer) -> std::path::PathBuf {
    srv.export.join("root")
}

/// OPEN `name` in the root (created if `create`) for `owner`; the status,
/// and the stateid on success.
fn open(
    c: &mut Client,
    name: &str,
    owner: &str,
    seqid: u32,
    create: bool,
) -> (nfsstat4, Option<stateid4>) {
    let how = if create {
        create_unchecked()
    } else {
        no_create()
    };
    let open = open_op(
        c.clientid,
        owner.as_bytes(),
        seqid,
        OPEN4_SHARE_ACCESS_BOTH,
        how,
        claim_null(name),
    );
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH, open]).unwrap();
    let opened = open_ok(&r);
    let sid = opened.map(|ok| ok.stateid.clone());
    if let (Some(s), 0) = (&sid, c.minor) {
        // 4.0: a new owner confirms its first open.
        if opened.is_some_and(|ok| ok.rflags & OPEN4_RESULT_CONFIRM != 0) {
            return (r.status, Some(c.open_confirm(name, s, seqid + 1)));
        }
    }
    (r.status, sid)
}

fn close(c: &mut Client, name: &str, seqid: u32, sid: &stateid4) -> nfsstat4 {
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        ops::close(seqid, sid),
    ])
    .unwrap()
    .status
}

fn session(srv: &TestServer, owner: &str) -> Client {
    let mut c = srv.client(1);
    c.establish41(owner.as_bytes()).unwrap();
    c
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A served connection: retried while earlier connections (the readiness
/// probe, a just-closed client) still hold their slot.
fn served(srv: &TestServer) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = srv.client(0);
        if c.call(0, &[]).is_ok() {
            return c;
        }
        assert!(Instant::now() < deadline, "no connection slot became free");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_past_the_limit_are_closed_at_once() {
    let srv = server("max_connections = 3");
    let mut held: Vec<Client> = (0..3).map(|_| served(&srv)).collect();
    let mut extra = srv.client(0);
    assert!(extra.call(0, &[]).is_err(), "a fourth connection is served");
    assert!(
        srv.log().contains("connection limit reached"),
        "log:\n{}",
        srv.log()
    );
    // The held ones still work; closing one makes room again.
    for c in &mut held {
        c.call(0, &[]).unwrap();
    }
    held.pop();
    served(&srv);
}

#[test]
fn one_request_in_flight_serialises_a_connection() {
    let srv = server("max_in_flight = 1");
    std::fs::write(root_dir(&srv).join("f"), b"").unwrap();
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Pipeline slow (FILE_SYNC WRITE of 256 KiB) and fast (NULL) calls;
    // with one request at a time the replies leave in call order, whatever
    // their cost. (With more in flight a NULL overtakes a WRITE.)
    let cred = Credential::Sys {
        stamp: 1,
        machine: "limits".into(),
        uid: 0,
        gid: 0,
        gids: vec![],
    };
    let write = nfs4d_xdr::to_bytes(&COMPOUND4args {
        tag: vec![],
        minorversion: 0,
        argarray: vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("f"),
            nfs_argop4::OP_WRITE(WRITE4args {
                stateid: stateid4 {
                    seqid: 0,
                    other: [0; 12],
                },
                offset: 0,
                stable: stable_how4::FILE_SYNC4,
                data: vec![7; 256 << 10],
            }),
        ],
    });
    let mut stream = Vec::new();
    for xid in 1..=40u32 {
        let rec = if xid % 2 == 1 {
            rpc::call_record(xid, 100003, 4, 1, &cred, &write)
        } else {
            rpc::call_record(xid, 100003, 4, 0, &cred, &[])
        };
        stream.extend_from_slice(&rec);
    }
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&stream))
    };
    let mut ra = nfs4d_xdr::record::Reassembler::new(1 << 20);
    let mut xids = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while xids.len() < 40 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {} replies", xids.len());
        let mut input = &buf[..n];
        while !input.is_empty() {
            if let Some(rec) = ra.feed(&mut input).unwrap() {
                xids.push(u32::from_be_bytes([rec[4], rec[5], rec[6], rec[7]]));
            }
        }
    }
    writer.join().unwrap().unwrap();
    assert_eq!(xids, (1..=40).collect::<Vec<u32>>());
}

#[test]
fn records_past_the_configured_size_close_the_connection() {
    let srv = server("max_record = 2097152");
    let mut c = srv.client(0);
    // 1.5 MiB of (ignored) NULL arguments: accepted and answered.
    let rec = rpc::call_record(5, 100003, 4, 0, &Credential::None, &vec![0u8; 3 << 19]);
    c.send_raw(&rec).unwrap();
    let reply = c.recv_record().unwrap();
    assert_eq!(&reply[4..8], &5u32.to_be_bytes());
    // One byte past 2 MiB: the connection is closed before any of it is
    // buffered, other connections are unaffected.
    let mut bad = srv.client(0);
    bad.send_raw(&(((2u32 << 20) + 1) | 0x8000_0000).to_be_bytes())
        .unwrap();
    assert!(bad.recv_record().is_err());
    assert!(
        srv.log().contains("exceeds the limit of 2097152"),
        "log:\n{}",
        srv.log()
    );
    c.call(0, &[]).unwrap();
}

#[test]
fn operations_per_compound() {
    let srv = server("max_ops = 4");
    let mut c = srv.client(0);
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH; 4]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    let r = c.compound_raw(vec![nfs_argop4::OP_PUTROOTFH; 5]).unwrap();
    assert_eq!(
        (r.status, r.resarray.len()),
        (nfsstat4::NFS4ERR_RESOURCE, 1),
        "4.0: RESOURCE"
    );
    // 4.1: the session's ca_maxoperations is clamped to the limit.
    let mut s = session(&srv, "ops");
    let r = s.compound(vec![nfs_argop4::OP_PUTROOTFH; 3]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    let r = s.compound(vec![nfs_argop4::OP_PUTROOTFH; 4]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_TOO_MANY_OPS, "SEQUENCE + 4 > 4");
}

fn create_session(c: &mut Client, seq: u32, slots: u32) -> CREATE_SESSION4res {
    let chan = channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 8192,
        ca_maxoperations: 16,
        ca_maxrequests: slots,
        ca_rdma_ird: vec![],
    };
    let r = c
        .compound_raw(vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
            csa_clientid: c.clientid,
            csa_sequence: seq,
            csa_flags: 0,
            csa_fore_chan_attrs: chan.clone(),
            csa_back_chan_attrs: chan,
            csa_cb_program: 0x4000_0000,
            csa_sec_parms: vec![callback_sec_parms4::AUTH_NONE],
        })])
        .unwrap();
    match r.resarray.into_iter().next() {
        Some(nfs_resop4::OP_CREATE_SESSION(x)) => x,
        other => panic!("{other:?}"),
    }
}

#[test]
fn sessions_per_client_and_slots_per_session() {
    let srv = server("max_sessions_per_client = 2\nmax_slots = 4");
    let mut c = session(&srv, "sess-limit"); // first session, sequence 1
    let CREATE_SESSION4res::NFS4_OK(second) = create_session(&mut c, 2, 64) else {
        panic!("second session refused")
    };
    // Slots are clamped to max_slots.
    assert_eq!(second.csr_fore_chan_attrs.ca_maxrequests, 4);
    let r = create_session(&mut c, 3, 4);
    assert!(
        matches!(r, CREATE_SESSION4res::default(nfsstat4::NFS4ERR_NOSPC)),
        "{r:?}"
    );
    // A slot past the table is NFS4ERR_BADSLOT; the last one works.
    let seq = |slot: u32| {
        nfs_argop4::OP_SEQUENCE(SEQUENCE4args {
            sa_sessionid: second.csr_sessionid,
            sa_sequenceid: 1,
            sa_slotid: slot,
            sa_highest_slotid: slot,
            sa_cachethis: false,
        })
    };
    let r = c.compound_raw(vec![seq(4)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADSLOT);
    let r = c.compound_raw(vec![seq(3)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    // Destroying one makes room.
    let r = c
        .compound_raw(vec![nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
            dsa_sessionid: second.csr_sessionid,
        })])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    // (Whether the refused CREATE_SESSION consumed its sequence id is the
    // state table's business; try both.)
    let r = match create_session(&mut c, 3, 4) {
        CREATE_SESSION4res::default(nfsstat4::NFS4ERR_SEQ_MISORDERED) => {
            create_session(&mut c, 4, 4)
        }
        r => r,
    };
    assert!(matches!(r, CREATE_SESSION4res::NFS4_OK(_)), "{r:?}");
}

#[test]
fn open_files_are_bounded_by_the_descriptor_cache() {
    let srv = server("max_open_files = 8");
    let mut c = session(&srv, "fds");
    let base = fd_count(srv.pid());
    let mut opened = Vec::new();
    for i in 0..40 {
        let name = format!("f{i}");
        let (st, sid) = open(&mut c, &name, "fd-owner", 0, true);
        assert_eq!(st, nfsstat4::NFS4_OK);
        let sid = sid.unwrap();
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(&name),
                nfs_argop4::OP_WRITE(WRITE4args {
                    stateid: sid.clone(),
                    offset: 0,
                    stable: stable_how4::FILE_SYNC4,
                    data: name.clone().into_bytes(),
                }),
            ])
            .unwrap();
        assert_eq!(r.status, nfsstat4::NFS4_OK);
        opened.push((name, sid));
    }
    let during = fd_count(srv.pid());
    assert!(
        during <= base + 8 + 4,
        "fds grew from {base} to {during} with 40 files open"
    );
    // Every file still reads back (descriptors are reopened on demand).
    for (name, sid) in &opened {
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(name),
                nfs_argop4::OP_READ(READ4args {
                    stateid: sid.clone(),
                    offset: 0,
                    count: 100,
                }),
            ])
            .unwrap();
        let Some(nfs_resop4::OP_READ(READ4res::NFS4_OK(ok))) = r.resarray.last() else {
            panic!("{r:?}")
        };
        assert_eq!(ok.data, name.as_bytes());
    }
}

/// READs served through a pipe (a local export, 16 KiB or more) return
/// the file's bytes: one small enough for the session's reply cache (read
/// back out of its pipe for the cache, and replayed from it unchanged),
/// one at an unaligned offset, one cut short at end of file. Many of them
/// leave no more descriptors open than the kept pipes account for.
#[test]
fn piped_reads_are_exact_and_their_pipes_bounded() {
    let srv = server("");
    let mut c = session(&srv, "piped");
    let (st, sid) = open(&mut c, "p", "pipe-owner", 0, true);
    assert_eq!(st, nfsstat4::NFS4_OK);
    let sid = sid.unwrap();
    let data: Vec<u8> = (0..1_300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(root_dir(&srv).join("p"), &data).unwrap();
    let read = |c: &mut Client, offset: u64, count: u32| {
        c.compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("p"),
            nfs_argop4::OP_READ(READ4args {
                stateid: sid.clone(),
                offset,
                count,
            }),
        ])
        .unwrap()
    };
    let ok = |r: &COMPOUND4res| match r.resarray.last() {
        Some(nfs_resop4::OP_READ(READ4res::NFS4_OK(ok))) => (ok.data.clone(), ok.eof),
        _ => panic!("{r:?}"),
    };
    // Fits the 64 KiB the test client's slot caches.
    let r = read(&mut c, 4096, 40_000);
    assert!(ok(&r) == (data[4096..44_096].to_vec(), false));
    c.seqids[0] -= 1;
    let again = read(&mut c, 4096, 40_000);
    assert!(
        again == r,
        "the replayed READ is the cached reply, data included"
    );
    let (got, eof) = ok(&read(&mut c, 1, 150_000));
    assert!(!eof && got[..] == data[1..150_001]);
    let (got, eof) = ok(&read(&mut c, 1_000_000, 1 << 20));
    assert!(eof && got[..] == data[1_000_000..]);
    let base = fd_count(srv.pid());
    for i in 0..300u64 {
        let (got, _) = ok(&read(&mut c, i * 3000, 64 << 10));
        let at = (i * 3000) as usize;
        assert!(got[..] == data[at..at + (64 << 10)], "READ {i}");
    }
    let after = fd_count(srv.pid());
    assert!(
        after <= base + 2 * 64,
        "descriptors grew from {base} to {after} over 300 piped READs"
    );
}

#[test]
fn open_states_past_the_limit() {
    let srv = server("max_open_states = 3");
    // 4.0: NFS4ERR_RESOURCE.
    let mut c = srv.client(0);
    c.establish40(b"states40").unwrap();
    let mut sids = Vec::new();
    // Owner seqids: OPEN 0 and its OPEN_CONFIRM 1, then 2 and 3.
    for (i, seqid) in [0, 2, 3].into_iter().enumerate() {
        let (st, sid) = open(&mut c, &format!("a{i}"), "o40", seqid, true);
        assert_eq!(st, nfsstat4::NFS4_OK);
        sids.push(sid.unwrap());
    }
    let (st, _) = open(&mut c, "a3", "o40", 4, true);
    assert_eq!(st, nfsstat4::NFS4ERR_RESOURCE);
    // 4.1 has no RESOURCE: NFS4ERR_DELAY.
    let mut s = session(&srv, "states41");
    let (st, _) = open(&mut s, "b0", "o41", 0, true);
    assert_eq!(st, nfsstat4::NFS4ERR_DELAY);
    // A CLOSE makes room.
    // (RESOURCE does not advance the owner's seqid, RFC 7530 §9.1.7.)
    assert_eq!(close(&mut c, "a0", 4, &sids[0]), nfsstat4::NFS4_OK);
    let (st, _) = open(&mut s, "b0", "o41", 0, true);
    assert_eq!(st, nfsstat4::NFS4_OK);
}

fn lock(
    c: &mut Client,
    name: &str,
    first: Option<(&stateid4, u32)>,
    existing: Option<&stateid4>,
    lseq: u32,
    off: u64,
) -> COMPOUND4res {
    let locker = match (first, existing) {
        (Some((open_sid, oseq)), _) => new_lock_owner(c.clientid, b"locker", open_sid, oseq, 0),
        (None, Some(sid)) => existing_lock_owner(sid, lseq),
        _ => unreachable!(),
    };
    c.compound(vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup(name),
        lock_op(true, false, off, 10, locker),
    ])
    .unwrap()
}

fn lock_sid(r: &COMPOUND4res) -> stateid4 {
    match r.resarray.last() {
        Some(nfs_resop4::OP_LOCK(LOCK4res::NFS4_OK(ok))) => ok.lock_stateid.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn locks_per_owner() {
    let srv = server("max_locks_per_owner = 3");
    for minor in [0u32, 1] {
        let mut c = if minor == 0 {
            let mut c = srv.client(0);
            c.establish40(b"locks40").unwrap();
            c
        } else {
            session(&srv, "locks41")
        };
        let name = format!("l{minor}");
        let (st, open_sid) = open(&mut c, &name, "lo-open", 0, true);
        assert_eq!(st, nfsstat4::NFS4_OK);
        let open_sid = open_sid.unwrap();
        // Disjoint ranges: 0, 20, 40 granted; 60 is one too many.
        let r = lock(&mut c, &name, Some((&open_sid, 2)), None, 0, 0);
        assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
        let mut sid = lock_sid(&r);
        for (i, off) in [20u64, 40].into_iter().enumerate() {
            let r = lock(&mut c, &name, None, Some(&sid), 1 + i as u32, off);
            assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
            sid = lock_sid(&r);
        }
        let r = lock(&mut c, &name, None, Some(&sid), 3, 60);
        let want = if minor == 0 {
            nfsstat4::NFS4ERR_RESOURCE
        } else {
            nfsstat4::NFS4ERR_DELAY
        };
        assert_eq!(r.status, want, "minor {minor}");
        // Extending an existing range does not add one. (The refusal did
        // not advance the 4.0 lock owner's seqid.)
        let r = lock(&mut c, &name, None, Some(&sid), 3, 5);
        assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    }
}

#[test]
fn directory_entries_per_readdir_reply() {
    let srv = server("max_readdir_entries = 5");
    for i in 0..23 {
        std::fs::write(root_dir(&srv).join(format!("e{i:02}")), b"").unwrap();
    }
    let mut c = srv.client(0);
    let (mut cookie, mut verf) = (0u64, [0u8; 8]);
    let mut names = Vec::new();
    for round in 0.. {
        assert!(round < 20, "READDIR does not end");
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                nfs_argop4::OP_READDIR(READDIR4args {
                    cookie,
                    cookieverf: verf,
                    dircount: 1 << 16,
                    maxcount: 1 << 20,
                    attr_request: vec![],
                }),
            ])
            .unwrap();
        let Some(nfs_resop4::OP_READDIR(READDIR4res::NFS4_OK(ok))) = r.resarray.last() else {
            panic!("{r:?}")
        };
        verf = ok.cookieverf;
        let mut n = 0;
        let mut e = ok.reply.entries.as_deref();
        while let Some(x) = e {
            names.push(String::from_utf8(x.name.clone()).unwrap());
            cookie = x.cookie;
            n += 1;
            e = x.nextentry.as_deref();
        }
        assert!(n <= 5, "{n} entries in one reply");
        if ok.reply.eof {
            break;
        }
        assert!(n > 0, "no progress without eof");
    }
    names.sort();
    let want: Vec<String> = (0..23).map(|i| format!("e{i:02}")).collect();
    assert_eq!(names, want);
}

#[test]
fn sled_cache_size_is_validated_and_used() {
    // Out of range: the server refuses to start.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("c.toml");
    std::fs::write(
        &conf,
        format!(
            "[[export]]\ndir = \"{}\"\n[limits]\nsled_cache_bytes = 4096\n",
            dir.path().join("x").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.path().join("s"))
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sled_cache_bytes"));
    // The smallest accepted cache serves a few thousand handles.
    let srv = server("sled_cache_bytes = 1048576");
    for i in 0..2000 {
        std::fs::write(root_dir(&srv).join(format!("h{i}")), b"").unwrap();
    }
    let mut c = srv.client(0);
    for chunk in (0..2000).collect::<Vec<_>>().chunks(15) {
        let mut ops = Vec::new();
        for i in chunk {
            ops.extend([
                nfs_argop4::OP_PUTROOTFH,
                lookup(&format!("h{i}")),
                nfs_argop4::OP_GETFH,
            ]);
        }
        let r = c.compound(ops).unwrap();
        assert_eq!(r.status, nfsstat4::NFS4_OK);
    }
}

#[test]
fn client_records() {
    let srv = server("max_clients = 3");
    let setclientid = |c: &mut Client, owner: &str| {
        let r = c
            .compound_raw(vec![setclientid(owner.as_bytes(), [1; 8])])
            .unwrap();
        match r.resarray.into_iter().next() {
            Some(nfs_resop4::OP_SETCLIENTID(SETCLIENTID4res::NFS4_OK(ok))) => Ok(ok),
            Some(other) => Err(result_status(&other)),
            None => Err(r.status),
        }
    };
    let mut c = srv.client(0);
    // Two confirmed clients.
    let mut confirmed = Vec::new();
    for owner in ["conf-a", "conf-b"] {
        let mut k = srv.client(0);
        k.establish40(owner.as_bytes()).unwrap();
        confirmed.push(k);
    }
    // A flood of unconfirmed records only displaces unconfirmed records.
    let first = setclientid(&mut c, "flood-0").unwrap();
    for i in 1..50 {
        setclientid(&mut c, &format!("flood-{i}")).unwrap();
    }
    let r = c
        .compound_raw(vec![nfs_argop4::OP_SETCLIENTID_CONFIRM(
            SETCLIENTID_CONFIRM4args {
                clientid: first.clientid,
                setclientid_confirm: first.setclientid_confirm,
            },
        )])
        .unwrap();
    assert_eq!(
        r.status,
        nfsstat4::NFS4ERR_STALE_CLIENTID,
        "the oldest unconfirmed record made room"
    );
    for k in &mut confirmed {
        let id = k.clientid;
        let r = k
            .compound_raw(vec![nfs_argop4::OP_RENEW(RENEW4args { clientid: id })])
            .unwrap();
        assert_eq!(
            r.status,
            nfsstat4::NFS4_OK,
            "confirmed clients survive the flood"
        );
    }
    // Full of confirmed clients: 4.0 RESOURCE, 4.1 DELAY.
    let mut third = srv.client(0);
    third.establish40(b"conf-c").unwrap();
    assert_eq!(
        setclientid(&mut c, "one-more").unwrap_err(),
        nfsstat4::NFS4ERR_RESOURCE
    );
    let mut s = srv.client(1);
    let err = s.establish41(b"late41").unwrap_err();
    assert!(err.to_string().contains("NFS4ERR_DELAY"), "{err}");
    assert!(
        srv.log().contains("client table full"),
        "log:\n{}",
        srv.log()
    );
}

#[test]
fn owners_per_client() {
    let srv = server("max_owners_per_client = 4");
    let mut c = srv.client(0);
    c.establish40(b"owners").unwrap();
    // Four owners holding opens.
    let mut held = Vec::new();
    for i in 0..4 {
        let (st, sid) = open(&mut c, &format!("o{i}"), &format!("owner-{i}"), 0, true);
        assert_eq!(st, nfsstat4::NFS4_OK, "owner {i}");
        held.push(sid.unwrap());
    }
    // A fifth owner: refused while all four hold state.
    let (st, _) = open(&mut c, "o4", "owner-4", 0, true);
    assert_eq!(st, nfsstat4::NFS4ERR_RESOURCE);
    // Owners sent with failing requests are not kept beyond the limit:
    // a flood of new owners each opening a missing file is refused or
    // fails, and the server keeps working.
    for i in 0..200 {
        let (st, _) = open(&mut c, "missing", &format!("ghost-{i}"), 0, false);
        assert!(
            matches!(st, nfsstat4::NFS4ERR_RESOURCE | nfsstat4::NFS4ERR_NOENT),
            "{st:?}"
        );
    }
    // Once an owner's last open is closed it may be forgotten to admit a
    // new one.
    assert_eq!(close(&mut c, "o0", 2, &held[0]), nfsstat4::NFS4_OK);
    let (st, _) = open(&mut c, "o4", "owner-4", 0, true);
    assert_eq!(st, nfsstat4::NFS4_OK);
    // The other owners are intact.
    for (i, sid) in held.iter().enumerate().skip(1) {
        assert_eq!(
            close(&mut c, &format!("o{i}"), 2, sid),
            nfsstat4::NFS4_OK,
            "owner {i}"
        );
    }
}
