//! Streaming writes to the S3 store, against a real S3 server (s3s-fs) on
//! loopback: the WRITEs a client keeps in flight arrive at once and out of
//! order; each part leaves once, without stopping the other WRITEs, and
//! the staged data behind a part is never copied.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use nfs4d_store::{Stability, Store};
use nfs4d_store_s3::{S3Config, S3Store};

const MIB: usize = 1 << 20;

fn open(cfg: S3Config) -> S3Store {
    S3Store::new(cfg).expect("store")
}

fn read_all(s: &S3Store, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let (n, eof) = s
            .read(&p(path), out.len() as u64, MIB, &mut out)
            .expect("read");
        if eof || n == 0 {
            return out;
        }
    }
}

/// An UNSTABLE WRITE of MiB number `i` of `body` to `path`.
fn write_mib(s: &S3Store, path: &str, body: &[u8], i: usize) {
    s.write(
        &p(path),
        (i * MIB) as u64,
        &body[i * MIB..(i + 1) * MIB],
        Stability::Unstable,
    )
    .expect("write");
}

fn new_file(s: &S3Store, name: &str) {
    s.create_file(&p(""), &n(name), 0o644, OWNER, true)
        .expect("create");
    s.open(&p(name), true).expect("open");
}

/// Spool files of staged data: (name, inode).
fn spool_files(srv: &Server) -> Vec<(String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut v: Vec<(String, u64)> = std::fs::read_dir(srv.spool.path().join("data"))
        .expect("spool data dir")
        .flatten()
        .map(|e| {
            let ino = e.metadata().expect("stat").ino();
            (e.file_name().to_string_lossy().into_owned(), ino)
        })
        .collect();
    v.sort();
    v
}

/// Eight threads write 1 MiB chunks of a 40 MiB file, taking offsets from
/// one counter as a client's slots do: the writes arrive concurrently and
/// out of order, within the reorder room. Every part is uploaded once, in
/// exactly the requests a sequential write needs: no object is published
/// early, nothing is read back.
#[test]
fn concurrent_writes_send_each_part_once() {
    let Some(srv) = server() else { return };
    let s = open(S3Config {
        reorder_room: 10 << 20,
        // A gap waits for its WRITE until the writes are half of this
        // past it: far more than eight threads can get out of order.
        spool_max: 256 << 20,
        ..srv.config()
    });
    new_file(&s, "conc");
    let total = 40 * MIB;
    let body = data(total, 3);
    let before = s.requests();
    let sent_before = s.bytes_sent();
    let next = AtomicU64::new(0);
    std::thread::scope(|sc| {
        for _ in 0..8 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i * MIB >= total {
                    break;
                }
                write_mib(&s, "conc", &body, i);
            });
        }
    });
    s.commit(&p("conc")).expect("commit");
    s.close(&p("conc")).expect("close");
    let r = s.requests();
    // 40 MiB in parts of 5 MiB: 8 parts, the last sent by the COMMIT, and
    // an empty last part at close would be a ninth: the COMMIT leaves
    // nothing behind.
    assert_eq!(r.mpu_create - before.mpu_create, 1, "{r:?}");
    assert_eq!(r.mpu_part - before.mpu_part, 8, "{r:?}");
    assert_eq!(r.mpu_complete - before.mpu_complete, 1, "{r:?}");
    assert_eq!(r.put - before.put, 0, "no whole-object PUT: {r:?}");
    assert_eq!(r.get - before.get, 0, "nothing read back: {r:?}");
    assert_eq!(
        s.bytes_sent() - sent_before,
        total as u64,
        "each byte sent once"
    );
    assert_eq!(read_all(&s, "conc"), body);
    assert_eq!(s.staged_bytes(), (0, 0));
    assert!(spool_files(&srv).is_empty(), "{:?}", spool_files(&srv));
}

/// A part's upload does not hold the file: while it waits (held by the
/// test hook), other WRITEs to the same file complete.
#[test]
fn writes_proceed_while_a_part_uploads() {
    let Some(srv) = server() else { return };
    let s = open(srv.config());
    new_file(&s, "w");
    let body = data(20 * MIB, 4);
    // part 5 MiB + room 5 MiB: the write that ends at 10 MiB sends part 1.
    for i in 0..9 {
        write_mib(&s, "w", &body, i);
    }
    s.hold_uploads(true);
    let (tx, rx) = mpsc::channel();
    let created = s.requests().mpu_create;
    std::thread::scope(|sc| {
        let sender = sc.spawn(|| {
            s.write(
                &p("w"),
                (9 * MIB) as u64,
                &body[9 * MIB..10 * MIB],
                Stability::Unstable,
            )
            .expect("write that sends a part");
        });
        // The part is taken (the upload created) before the others start.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while s.requests().mpu_create == created {
            if std::time::Instant::now() > deadline {
                s.hold_uploads(false);
                panic!("no part was taken");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        sc.spawn(|| {
            for i in 10..14 {
                write_mib(&s, "w", &body, i);
                tx.send(i).expect("send");
            }
        });
        for want in 10..14 {
            let got = rx.recv_timeout(Duration::from_secs(30));
            if got != Ok(want) {
                s.hold_uploads(false);
                panic!("WRITE at {want} MiB did not complete while a part uploaded: {got:?}");
            }
        }
        assert!(!sender.is_finished(), "the part upload was not held");
        s.hold_uploads(false);
    });
    for i in 14..20 {
        write_mib(&s, "w", &body, i);
    }
    s.close(&p("w")).expect("close");
    assert_eq!(read_all(&s, "w"), body);
    assert_eq!(s.staged_bytes(), (0, 0));
}

/// Sending a part takes its own spool segment away and leaves the staged
/// data behind it where it is (same files), however wide the reorder
/// room: the cost of a part is the part.
#[test]
fn sending_a_part_moves_no_staged_data() {
    let Some(srv) = server() else { return };
    let s = open(S3Config {
        reorder_room: 20 << 20,
        spool_max: 64 << 20,
        ..srv.config()
    });
    new_file(&s, "seg");
    let body = data(26 * MIB, 6);
    for i in 0..24 {
        write_mib(&s, "seg", &body, i);
    }
    let sent = s.bytes_sent();
    let staged = spool_files(&srv);
    assert_eq!(staged.len(), 5, "five 5 MiB segments: {staged:?}");
    // This write makes 26 MiB staged, past part + room: part 1 leaves.
    s.write(
        &p("seg"),
        (24 * MIB) as u64,
        &body[24 * MIB..],
        Stability::Unstable,
    )
    .expect("write");
    assert_eq!(s.bytes_sent() - sent, 5 << 20, "one part sent");
    let after = spool_files(&srv);
    assert_eq!(
        after,
        staged[1..]
            .iter()
            .cloned()
            .chain(after.last().cloned())
            .collect::<Vec<_>>(),
        "the first segment left with its part, the rest stayed where it was"
    );
    let (_, spool) = s.staged_bytes();
    assert_eq!(spool, 21 << 20, "the spool holds what is not sent");
    s.close(&p("seg")).expect("close");
    assert_eq!(read_all(&s, "seg"), body);
    assert!(spool_files(&srv).is_empty());
}

/// A part whose upload fails stays in the stage and is sent again; the
/// WRITE that took it still succeeds (its data is staged), and the file
/// arrives whole.
#[test]
fn a_failed_part_upload_is_sent_again() {
    let Some(srv) = server() else { return };
    let s = open(srv.config());
    new_file(&s, "f");
    let body = data(23 * MIB, 5);
    s.fail_uploads(1);
    for i in 0..23 {
        write_mib(&s, "f", &body, i);
    }
    s.commit(&p("f")).expect("commit");
    s.close(&p("f")).expect("close");
    // 4 whole parts and the 3 MiB rest, each sent once after the failure.
    assert_eq!(s.bytes_sent(), 23 << 20);
    assert_eq!(read_all(&s, "f"), body);
    assert_eq!(s.staged_bytes(), (0, 0));
    assert!(spool_files(&srv).is_empty());
}

/// After a COMMIT, more WRITEs send more parts; a crash then must still
/// bring back the committed data: the journal record follows the parts
/// that leave, and the spool segments it names keep their meaning.
#[test]
fn parts_sent_after_a_commit_survive_a_crash() {
    let Some(srv) = server() else { return };
    let body = data(30 * MIB, 2);
    {
        let s = open(srv.config());
        new_file(&s, "c");
        s.write(&p("c"), 0, &body[..12 * MIB], Stability::Unstable)
            .expect("write");
        s.commit(&p("c")).expect("commit");
        for i in 12..30 {
            write_mib(&s, "c", &body, i);
        }
        // Crash: the store goes away without COMMIT or close.
    }
    let s = open(srv.config());
    let size = s.stat(&p("c")).expect("stat").size as usize;
    assert!(
        (12 * MIB..=30 * MIB).contains(&size),
        "committed data back, at most what was written: {size}"
    );
    assert_eq!(read_all(&s, "c"), body[..size]);
    assert_eq!(
        std::fs::read_dir(srv.spool.path().join("journal"))
            .expect("dir")
            .count(),
        0
    );
    assert!(spool_files(&srv).is_empty());
}

/// Rewriting an existing object from its start: the object is loaded once
/// into the stage, and its parts leave as the WRITEs pass them, not as soon
/// as the loaded data fills the room (which made every following WRITE land
/// below the parts sent, and the store publish the object and load it
/// again, once per WRITE).
#[test]
fn rewriting_an_object_loads_it_once() {
    let Some(srv) = server() else { return };
    let s = open(srv.config());
    let old = data(30 * MIB, 1);
    rt().block_on(srv.other().write("export/re", old))
        .expect("put");
    s.open(&p("re"), true).expect("open");
    let body = data(30 * MIB, 8);
    let before = s.requests();
    for i in 0..30 {
        write_mib(&s, "re", &body, i);
    }
    s.close(&p("re")).expect("close");
    let r = s.requests();
    // One load (30 MiB in GETs of a part), one upload of six parts.
    assert_eq!(r.get - before.get, 6, "{r:?}");
    assert_eq!(r.mpu_create - before.mpu_create, 1, "{r:?}");
    assert_eq!(r.mpu_part - before.mpu_part, 6, "{r:?}");
    assert_eq!(r.mpu_complete - before.mpu_complete, 1, "{r:?}");
    assert_eq!(r.put - before.put, 0, "{r:?}");
    assert_eq!(read_all(&s, "re"), body);
    assert_eq!(s.staged_bytes(), (0, 0));
}
