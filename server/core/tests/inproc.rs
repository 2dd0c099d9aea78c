//! The sans-IO core driven in the same process by the test kit's client
//! (`nfs4d_testkit::inproc`): the transport seam holds for single calls
//! and for the pipelined engine.

use nfs4d_store::{RelPath, Store};
use nfs4d_testkit::inproc::Harness;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::pipeline::{self, Pipeline, Request};
use nfs4d_testkit::wire::{Reply, PROC_NULL};
use nfs4d_testkit::SessionOptions;
use nfs4d_xdr::nfs4::*;

#[test]
fn the_client_drives_the_core_without_a_socket() {
    let h = Harness::new();
    let mut c = h.client(1);
    let null = c.call(PROC_NULL, &[]).unwrap();
    assert!(nfs4d_testkit::wire::results(&null).unwrap().is_empty());
    c.establish41(b"inproc").unwrap();
    let r = c.compound(create_in_root(c.clientid, b"o", "f")).unwrap();
    check(&r, "OPEN").unwrap();
    let (fh, sid) = (fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone());
    let r = c
        .compound(vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::FILE_SYNC4, b"in process".to_vec()),
            read(&sid, 3, 7),
        ])
        .unwrap();
    assert_eq!(read_ok(&r).map(|d| &d.data[..]), Some(&b"process"[..]));
    let mut on_store = Vec::new();
    let path = RelPath::parse(b"f").unwrap();
    h.store.read(&path, 0, 64, &mut on_store).unwrap();
    assert_eq!(on_store, b"in process");
}

/// GETATTRs on every slot, `left` of them in all.
struct Getattrs {
    fh: Vec<u8>,
    left: usize,
    replies: usize,
}

impl Pipeline for Getattrs {
    fn next(&mut self, _slot: usize, _now: std::time::Instant) -> Option<Request> {
        self.left = self.left.checked_sub(1)?;
        Some(Request::new(
            vec![putfh(&self.fh), getattr(&[FATTR4_SIZE])],
            false,
        ))
    }

    fn reply(&mut self, _: usize, reply: &Reply, _: std::time::Instant, _: std::time::Instant) {
        assert_eq!(reply.res.status, nfsstat4::NFS4_OK);
        self.replies += 1;
    }

    fn retry(&mut self, _: usize, _: std::time::Instant) {}
}

#[test]
fn the_pipelined_engine_runs_in_process_too() {
    let h = Harness::new();
    let mut c = h.client(1);
    let o = SessionOptions {
        slots: 8,
        ..SessionOptions::default()
    };
    c.establish41_with(b"inproc-pipe", &o).unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .unwrap();
    let mut p = Getattrs {
        fh: fh_of(&r).unwrap(),
        left: 200,
        replies: 0,
    };
    let slots = c.seqids.len();
    pipeline::run(&mut c, slots, &mut p).unwrap();
    assert_eq!(p.replies, 200);
}

/// A store that lists by key (the memory store, like an object store)
/// records each cookie in a bounded table. The entry that ends a reply
/// because it does not fit must not take one: the next reply resumes
/// after the last entry sent and its first cookie follows on from it.
#[test]
fn readdir_takes_cookies_only_for_entries_it_sends() {
    use nfs4d_store::{Name, Owner};
    let h = Harness::with_store(
        nfs4d_testkit::inproc::config(""),
        nfs4d_store_memory::OBJECT_STORE_CAPABILITIES,
    );
    let owner = Owner { uid: 0, gid: 0 };
    for i in 0..60 {
        let name =
            Name::new(format!("a-name-long-enough-to-fill-the-reply-{i:03}").as_bytes()).unwrap();
        h.store
            .create_file(&RelPath::root(), &name, 0o644, owner, true)
            .unwrap();
    }
    let mut c = h.client(1);
    c.establish41(b"cookies").unwrap();
    let attrs = bitmap(&[FATTR4_SIZE]);
    let (mut cookie, mut verf) = (0, [0; 8]);
    let (mut names, mut pages) = (Vec::new(), 0);
    loop {
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                readdir(cookie, verf, 512, &attrs),
            ])
            .unwrap();
        let ok = readdir_ok(&r).unwrap_or_else(|| panic!("READDIR: {:?}", r.status));
        verf = ok.cookieverf;
        pages += 1;
        let mut e = ok.reply.entries.as_deref();
        while let Some(entry) = e {
            if cookie != 0 {
                assert_eq!(entry.cookie, cookie + 1, "cookies follow on across replies");
            }
            cookie = entry.cookie;
            names.push(entry.name.clone());
            e = entry.nextentry.as_deref();
        }
        if ok.reply.eof {
            break;
        }
    }
    assert!(pages > 3, "the listing takes several replies ({pages})");
    assert_eq!(names.len(), 60);
    names.dedup();
    assert_eq!(names.len(), 60, "no entry is listed twice");
}

/// The sizes every GETATTR of `r` reported, in order.
fn sizes(r: &COMPOUND4res) -> Vec<u64> {
    r.resarray
        .iter()
        .filter_map(|res| match res {
            nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok)) => Some(u64::from_be_bytes(
                ok.obj_attributes.attr_vals[..8].try_into().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

/// PUTFH reads the object's attributes to check the handle; the
/// operation right after it uses them instead of asking the store again
/// (nothing ran in between), once. Any later operation asks again, so it
/// sees what the operations before it changed.
#[test]
fn the_operation_after_putfh_uses_the_attributes_putfh_read_once() {
    let h = Harness::new();
    let mut c = h.client(1);
    c.establish41(b"fresh").unwrap();
    let r = c.compound(create_in_root(c.clientid, b"o", "f")).unwrap();
    check(&r, "OPEN").unwrap();
    let (fh, sid) = (fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone());
    let stats = |ops: Vec<nfs_argop4>, c: &mut nfs4d_testkit::Client| {
        let before = h.store.stat_calls();
        let r = c.compound(ops).unwrap();
        check(&r, "COMPOUND").unwrap();
        (h.store.stat_calls() - before, sizes(&r))
    };
    // One stat, PUTFH's, serves the GETATTR right after it.
    assert_eq!(
        stats(vec![putfh(&fh), getattr(&[FATTR4_SIZE])], &mut c),
        (1, vec![0])
    );
    // A second GETATTR asks the store again.
    assert_eq!(
        stats(
            vec![putfh(&fh), getattr(&[FATTR4_SIZE]), getattr(&[FATTR4_SIZE])],
            &mut c
        ),
        (2, vec![0, 0])
    );
    // Not right after PUTFH: a WRITE ran in between, and GETATTR sees it.
    let (_, seen) = stats(
        vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::UNSTABLE4, b"0123456789".to_vec()),
            getattr(&[FATTR4_SIZE]),
        ],
        &mut c,
    );
    assert_eq!(seen, vec![10]);
    // A change made outside between two COMPOUNDs: PUTFH reads anew.
    let path = RelPath::parse(b"f").unwrap();
    h.store
        .write(&path, 10, b"abc", nfs4d_store::Stability::Unstable)
        .unwrap();
    let (_, seen) = stats(
        vec![
            putfh(&fh),
            getattr(&[FATTR4_SIZE]),
            setattr(&sid, size_attr(4)),
            getattr(&[FATTR4_SIZE]),
        ],
        &mut c,
    );
    assert_eq!(seen, vec![13, 4]);
}

/// An OPEN that creates answers change_info's `after` (RFC 8881
/// §18.16.4) with the directory's attributes the store read along with the
/// create, rather than resolving and stating the directory once more; they
/// are what a GETATTR of the directory gives next.
#[test]
fn an_open_that_creates_takes_the_directory_after_from_the_store() {
    let h = Harness::new();
    let mut c = h.client(1);
    c.establish41(b"after").unwrap();
    let before = h.store.stat_calls();
    let r = c.compound(create_in_root(c.clientid, b"o", "f")).unwrap();
    check(&r, "OPEN").unwrap();
    let stats = h.store.stat_calls() - before;
    let cinfo = open_ok(&r).unwrap().cinfo.clone();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, getattr(&[FATTR4_CHANGE])])
        .unwrap();
    check(&r, "GETATTR").unwrap();
    assert_eq!(
        sizes(&r),
        vec![cinfo.after],
        "after is the directory's change"
    );
    assert_ne!(
        cinfo.before, cinfo.after,
        "the create changed the directory"
    );
    // PUTROOTFH's stat of the root serves the OPEN's check of it; nothing
    // else stats the root.
    assert_eq!(stats, 1, "stats of a PUTROOTFH, OPEN(create), GETFH");
}
