//! WRITE data spliced from the socket into a pipe and from the pipe into
//! the file (net.rs, wsplice.rs), against the real binary: every byte
//! lands where it was written, with operations after the WRITE or none,
//! one record after another on a connection, beside WRITEs the server
//! reads as before; and the metrics say which way each went.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::{wire, Client};
use nfs4d_xdr::nfs4::*;

fn metrics(srv: &TestServer) -> String {
    let url = srv.ctl_json(&["status"])["metrics"]
        .as_str()
        .expect("metrics URL")
        .to_string();
    let rest = url.strip_prefix("http://").expect("http URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(addr).expect("metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).expect("metrics answer");
    all
}

fn count(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}")) as u64
}

/// A session on `srv` and a file `name` opened for writing in the root.
fn opened(srv: &TestServer, minor: u32, name: &str) -> (Client, Vec<u8>, stateid4) {
    let mut c = srv.client(minor);
    c.establish41(format!("splice-{name}").as_bytes())
        .expect("session");
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            open_op(
                c.clientid,
                b"owner",
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                create_unchecked(),
                claim_null(name),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .expect("open");
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    (c, fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone())
}

/// Bytes distinct from one WRITE to the next.
fn data(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) % 251) as u8)
        .collect()
}

fn written(r: &COMPOUND4res) -> u32 {
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    write_ok(r).expect("WRITE result").count
}

#[test]
fn spliced_writes_land_exactly_beside_writes_read_as_before() {
    let srv = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    fn put(expect: &mut Vec<u8>, off: usize, bytes: &[u8]) {
        if expect.len() < off + bytes.len() {
            expect.resize(off + bytes.len(), 0);
        }
        expect[off..off + bytes.len()].copy_from_slice(bytes);
    }
    let mut expect = Vec::new();
    for minor in [1, 2] {
        let name = format!("f{minor}");
        let (mut c, fh, sid) = opened(&srv, minor, &name);
        // (offset, length, an operation after the WRITE?, spliced?). A
        // WRITE is spliced when at least 64 KiB of its data is still to
        // come once its header is read: always for those of 512 KiB and
        // more (a read takes at most 256 KiB), perhaps for one of 64 KiB.
        let writes = [
            (0, 1 << 20, true, Some(true)),
            (1 << 20, 512 << 10, false, Some(true)),
            ((3 << 20) + 12, 64 << 10, true, None),
            // Padded (not a multiple of 4), below the splice minimum, small.
            (5 << 20, (1 << 20) - 2, true, Some(false)),
            (7 << 20, (64 << 10) - 4, false, Some(false)),
            (8 << 20, 4096, true, Some(false)),
        ];
        let before = metrics(&srv);
        let spliced0 = count(&before, "nfs4d_writes_spliced_total")
            + count(&before, "nfs4d_write_splice_fallbacks_total");
        expect.clear();
        for (i, &(off, len, tail, _)) in writes.iter().enumerate() {
            let bytes = data(i + minor as usize, len);
            let mut ops = vec![
                putfh(&fh),
                write(&sid, off as u64, stable_how4::UNSTABLE4, bytes.clone()),
            ];
            if tail {
                ops.push(getattr(&[FATTR4_SIZE]));
            }
            let r = c.compound(ops).expect("write");
            assert_eq!(written(&r) as usize, len, "WRITE {i}");
            put(&mut expect, off, &bytes);
        }
        let on_disk = std::fs::read(srv.export.join(&name)).unwrap();
        assert!(
            on_disk == expect,
            "file content differs from what was written (minor {minor})"
        );
        let after = metrics(&srv);
        let spliced = count(&after, "nfs4d_writes_spliced_total")
            + count(&after, "nfs4d_write_splice_fallbacks_total");
        let must = writes.iter().filter(|w| w.3 == Some(true)).count() as u64;
        let may = writes.iter().filter(|w| w.3.is_none()).count() as u64;
        let took = spliced - spliced0;
        assert!(
            (must..=must + may).contains(&took),
            "{took} WRITEs took the splice path, expected {must} to {}",
            must + may
        );
    }
    let m = metrics(&srv);
    assert!(
        count(&m, "nfs4d_writes_spliced_total") >= 1,
        "no WRITE was spliced to the end:\n{m}"
    );
}

#[test]
fn pipelined_spliced_writes_on_one_connection_all_land() {
    let srv = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    let (mut c, fh, sid) = opened(&srv, 1, "p");
    let slots = c.seqids.len().min(8);
    assert!(slots >= 4, "the session has {slots} slots");
    let len = 1 << 20;
    // All records go out in one write, so the end of one and the start
    // of the next arrive together; every other one has a GETATTR after
    // its WRITE.
    let mut out = Vec::new();
    let mut xids = Vec::new();
    for i in 0..slots {
        let seq = c.sequence(i, false);
        let mut ops = vec![
            putfh(&fh),
            write(&sid, (i * len) as u64, stable_how4::UNSTABLE4, data(i, len)),
        ];
        if i % 2 == 0 {
            ops.push(getattr(&[FATTR4_SIZE]));
        }
        let body = wire::compound_body(1, Some(&seq), &ops).unwrap();
        let xid = c.next_xid(i);
        out.extend_from_slice(&wire::encode_call(xid, &c.cred, 1, &body, 0));
        xids.push(xid);
    }
    c.send_raw(&out).unwrap();
    let mut answered = 0;
    while answered < slots {
        let rec = c.recv_record().expect("a reply");
        let res = wire::compound_result(&rec).expect("a COMPOUND reply");
        assert_eq!(written(&res) as usize, len);
        answered += 1;
    }
    let on_disk = std::fs::read(srv.export.join("p")).unwrap();
    assert_eq!(on_disk.len(), slots * len);
    for i in 0..slots {
        assert!(
            on_disk[i * len..(i + 1) * len] == data(i, len)[..],
            "WRITE {i} did not land where it was written"
        );
    }
    // Each was spliced whole: the loopback's pieces fit a pipe.
    let m = metrics(&srv);
    assert_eq!(
        (
            count(&m, "nfs4d_writes_spliced_total"),
            count(&m, "nfs4d_write_splice_fallbacks_total")
        ),
        (slots as u64, 0),
        "{m}"
    );
}

#[test]
fn a_client_gone_in_the_middle_of_a_spliced_write_hurts_nothing() {
    let srv = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    let (mut c, fh, sid) = opened(&srv, 1, "g");
    let seq = c.sequence(0, false);
    let ops = vec![
        putfh(&fh),
        write(&sid, 0, stable_how4::UNSTABLE4, data(1, 1 << 20)),
    ];
    let body = wire::compound_body(1, Some(&seq), &ops).unwrap();
    let xid = c.next_xid(0);
    let rec = wire::encode_call(xid, &c.cred, 1, &body, 0);
    // Half the record, then the connection is gone.
    c.send_raw(&rec[..rec.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    drop(c);
    // The server goes on: a new client writes and reads back.
    let (mut c, fh, sid) = opened(&srv, 1, "g2");
    let r = c
        .compound(vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::FILE_SYNC4, data(2, 1 << 20)),
        ])
        .expect("write");
    assert_eq!(written(&r) as usize, 1 << 20);
    assert!(std::fs::read(srv.export.join("g2")).unwrap() == data(2, 1 << 20));
    // Nothing of the half-sent WRITE reached the file.
    assert_eq!(std::fs::metadata(srv.export.join("g")).unwrap().len(), 0);
}

#[test]
fn a_write_arriving_in_small_pieces_is_read_as_before_and_lands_exactly() {
    let srv = TestServer::start(&["--metrics-listen", "127.0.0.1:0"]);
    let (mut c, fh, sid) = opened(&srv, 1, "s");
    let len = 1 << 20;
    // A second stream from this thread, written between the pieces: the
    // kernel fills a thread's sends from one page fragment, so the pieces
    // of the WRITE are not next to each other in memory, and the receiver
    // cannot merge them.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut other = TcpStream::connect(sink.local_addr().unwrap()).unwrap();
    other.set_nodelay(true).unwrap();
    let (mut drain, _) = sink.accept().unwrap();
    std::thread::spawn(move || std::io::copy(&mut drain, &mut std::io::sink()));
    let mut send_in_pieces = |c: &mut Client, slot: usize, off: usize, seed: usize| {
        let seq = c.sequence(slot, false);
        let ops = vec![
            putfh(&fh),
            write(&sid, off as u64, stable_how4::UNSTABLE4, data(seed, len)),
            getattr(&[FATTR4_SIZE]),
        ];
        let body = wire::compound_body(1, Some(&seq), &ops).unwrap();
        let xid = c.next_xid(slot);
        let rec = wire::encode_call(xid, &c.cred, 1, &body, 0);
        // The header at once, then the data in 512-byte sends (each its own
        // segment: the socket has TCP_NODELAY), so that the socket's
        // buffers come in more pieces than a pipe has slots.
        let head = rec.len() - len - 12;
        c.send_raw(&rec[..head]).unwrap();
        for piece in rec[head..].chunks(512) {
            c.send_raw(piece).unwrap();
            other.write_all(&[0u8; 512]).unwrap();
        }
        let reply = c.recv_record().expect("a reply");
        let res = wire::compound_result(&reply).expect("a COMPOUND reply");
        assert_eq!(written(&res) as usize, len);
        c.seqids[slot] += 1;
    };
    let before = metrics(&srv);
    send_in_pieces(&mut c, 0, 0, 1);
    // The next large WRITE on this connection is read as before at once
    // (the connection backs off), also in pieces.
    send_in_pieces(&mut c, 1, len, 2);
    let after = metrics(&srv);
    let mut want = data(1, len);
    want.extend_from_slice(&data(2, len));
    assert!(
        std::fs::read(srv.export.join("s")).unwrap() == want,
        "file content differs from what was written"
    );
    let given_up = count(&after, "nfs4d_write_splice_fallbacks_total")
        - count(&before, "nfs4d_write_splice_fallbacks_total");
    let spliced =
        count(&after, "nfs4d_writes_spliced_total") - count(&before, "nfs4d_writes_spliced_total");
    // The first WRITE's splice filled its pipe and was given up; the
    // second was not tried.
    assert_eq!((given_up, spliced), (1, 0), "{after}");
}
