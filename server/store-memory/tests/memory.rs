//! What is particular to the memory store: budgets, the injected clock,
//! reused object numbers, identities without stable identity, the lease
//! simulation, batching of listings, configuration checks.

use std::sync::Arc;
use std::time::Duration;

use nfs4d_store::{
    Capabilities, Created, FileKind, LeaseBreak, ListPos, LockError, Name, Owner, RelPath,
    SetAttrs, SetTime, Stability, Store, StoreError, Timespec, XattrSet,
};
use nfs4d_store_memory::{
    Limits, MemConfig, MemStore, TickClock, CHUNK, DEFAULT_CAPABILITIES, LIST_BATCH, MAX_READ,
    MAX_XATTRS, OBJECT_STORE_CAPABILITIES,
};

const ROOT: Owner = Owner { uid: 0, gid: 0 };

fn n(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("valid name")
}

fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).expect("valid path")
}

fn store(caps: Capabilities, limits: Limits) -> MemStore {
    MemStore::with_config(MemConfig {
        capabilities: caps,
        limits,
        ..MemConfig::default()
    })
    .expect("valid configuration")
}

fn create(s: &MemStore, name: &str) {
    let Created { created, .. } = s
        .create_file(&RelPath::root(), &n(name), 0o644, ROOT, true)
        .expect("create");
    assert!(created);
}

#[test]
fn byte_budget() {
    let s = store(
        DEFAULT_CAPABILITIES,
        Limits {
            max_bytes: 4 * CHUNK as u64,
            max_objects: 100,
        },
    );
    create(&s, "f");
    let f = p("f");
    // Three chunks fit, a fifth does not: nothing of a refused write lands.
    assert_eq!(
        s.write(&f, 0, &[1; 3 * CHUNK], Stability::Unstable),
        Ok((3 * CHUNK, Stability::Unstable))
    );
    assert_eq!(
        s.write(&f, 3 * CHUNK as u64, &[2; CHUNK + 1], Stability::Unstable),
        Err(StoreError::NoSpace)
    );
    assert_eq!(s.stat(&f).expect("stat").size, 3 * CHUNK as u64);
    // Overwriting allocated chunks needs no space; a sparse write far
    // away needs one chunk.
    s.write(&f, 0, &[3; 100], Stability::Unstable)
        .expect("overwrite");
    s.write(&f, 1 << 40, b"x", Stability::Unstable)
        .expect("one chunk far away");
    assert_eq!(s.usage().bytes, 4 * CHUNK as u64);
    let st = s.statfs().expect("statfs");
    assert_eq!((st.total_bytes, st.free_bytes), (4 * CHUNK as u64, 0));
    assert_eq!(
        s.setxattr(&f, b"k", b"v", XattrSet::Either),
        Err(StoreError::NoSpace),
        "xattrs count"
    );
    assert_eq!(
        s.symlink(&RelPath::root(), &n("l"), b"target", ROOT),
        Err(StoreError::NoSpace),
        "symlink targets count"
    );
    assert_eq!(
        s.allocate(&f, 1 << 20, 1),
        Err(StoreError::NoSpace),
        "allocation counts"
    );
    // Truncation gives space back.
    s.setattr(
        &f,
        &SetAttrs {
            size: Some(0),
            ..Default::default()
        },
    )
    .expect("truncate");
    assert_eq!(s.usage().bytes, 0);
    s.setxattr(&f, b"k", b"v", XattrSet::Either)
        .expect("room again");
    assert_eq!(s.usage().bytes, 2);
    s.remove(&RelPath::root(), &n("f")).expect("remove");
    assert_eq!(
        s.usage(),
        nfs4d_store_memory::Usage {
            bytes: 0,
            objects: 1
        }
    );
}

#[test]
fn copy_stops_at_the_budget() {
    let s = store(
        DEFAULT_CAPABILITIES,
        Limits {
            max_bytes: 3 * CHUNK as u64,
            max_objects: 100,
        },
    );
    create(&s, "src");
    create(&s, "dst");
    s.write(&p("src"), 0, &[7; 2 * CHUNK], Stability::Unstable)
        .expect("write");
    // One chunk is left: the copy reports the part that fit.
    assert_eq!(
        s.copy_range(&p("src"), 0, &p("dst"), 0, 2 * CHUNK as u64),
        Ok(CHUNK as u64)
    );
    assert_eq!(s.stat(&p("dst")).expect("stat").size, CHUNK as u64);
    assert_eq!(
        s.copy_range(&p("src"), CHUNK as u64, &p("dst"), 8 * CHUNK as u64, 10),
        Err(StoreError::NoSpace),
        "nothing fits: an error, not a copy of zero bytes"
    );
}

#[test]
fn xattrs_per_object_are_bounded() {
    let s = MemStore::new();
    create(&s, "f");
    let f = p("f");
    for i in 0..MAX_XATTRS {
        s.setxattr(&f, format!("k{i}").as_bytes(), b"", XattrSet::Create)
            .expect("within the bound");
    }
    assert_eq!(
        s.setxattr(&f, b"one-more", b"", XattrSet::Create),
        Err(StoreError::NoSpace)
    );
    s.setxattr(&f, b"k0", b"replaced", XattrSet::Replace)
        .expect("replacing needs no new entry");
    assert_eq!(s.listxattr(&f).expect("list").len(), MAX_XATTRS);
}

#[test]
fn object_budget() {
    let s = store(
        DEFAULT_CAPABILITIES,
        Limits {
            max_bytes: 1 << 20,
            max_objects: 4,
        },
    );
    create(&s, "a");
    s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT)
        .expect("mkdir");
    create(&s, "b");
    let full = Err(StoreError::NoSpace);
    assert_eq!(
        s.create_file(&RelPath::root(), &n("c"), 0o644, ROOT, true)
            .map(drop),
        full
    );
    assert_eq!(
        s.mkdir(&RelPath::root(), &n("e"), 0o755, ROOT).map(drop),
        full
    );
    assert_eq!(
        s.mknod(
            &RelPath::root(),
            &n("p"),
            FileKind::Fifo,
            0o600,
            (0, 0),
            ROOT
        )
        .map(drop),
        full
    );
    // A hard link is a name, not an object.
    s.link(&p("a"), &RelPath::root(), &n("a2")).expect("link");
    // An existing file is still returned by a non-exclusive create.
    assert!(s
        .create_file(&RelPath::root(), &n("a"), 0o644, ROOT, false)
        .is_ok());
    let st = s.statfs().expect("statfs");
    assert_eq!((st.total_files, st.free_files), (4, 0));
    s.remove(&RelPath::root(), &n("b")).expect("remove");
    create(&s, "c");
}

#[test]
fn huge_sparse_files_cost_nothing() {
    let s = MemStore::new();
    create(&s, "f");
    let f = p("f");
    let tib = 1u64 << 40;
    s.setattr(
        &f,
        &SetAttrs {
            size: Some(tib),
            ..Default::default()
        },
    )
    .expect("extend");
    assert_eq!(s.usage().bytes, 0);
    let mut buf = Vec::new();
    assert_eq!(s.read(&f, tib - 3, 10, &mut buf), Ok((3, true)));
    assert_eq!(buf, [0, 0, 0]);
    // One read is capped; the client reads on.
    buf.clear();
    assert_eq!(s.read(&f, 0, usize::MAX, &mut buf), Ok((MAX_READ, false)));
    assert_eq!(buf.len(), MAX_READ);
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(s.seek_data(&f, 0), Ok(None));
    assert_eq!(s.seek_hole(&f, 5), Ok(Some(5)));
    // Copying a hole copies nothing but the size.
    create(&s, "g");
    assert_eq!(s.copy_range(&f, 0, &p("g"), 0, tib), Ok(tib));
    assert_eq!(s.stat(&p("g")).expect("stat").size, tib);
    assert_eq!(s.usage().bytes, 0);
}

#[test]
fn the_clock_is_the_only_time() {
    let fixed = Timespec {
        sec: 1_000,
        nsec: 1,
    };
    let s = MemStore::with_config(MemConfig {
        clock: Arc::new(move || fixed),
        ..MemConfig::default()
    })
    .expect("store");
    create(&s, "f");
    let a = s.stat(&p("f")).expect("stat");
    assert_eq!(
        (a.atime, a.mtime, a.ctime, a.btime),
        (fixed, fixed, fixed, Some(fixed))
    );
    s.write(&p("f"), 0, b"x", Stability::FileSync)
        .expect("write");
    let b = s
        .setattr(
            &p("f"),
            &SetAttrs {
                atime: Some(SetTime::ServerNow),
                ..Default::default()
            },
        )
        .expect("touch");
    assert_eq!(
        (b.mtime, b.atime),
        (fixed, fixed),
        "server time is the clock's"
    );
    assert_ne!(
        a.change, b.change,
        "change moves even when time stands still"
    );

    // Two stores on equal clocks see equal times: tests are repeatable.
    let run = || {
        let s = MemStore::with_config(MemConfig {
            clock: Arc::new(TickClock::new(
                Timespec { sec: 50, nsec: 0 },
                Duration::from_millis(1),
            )),
            ..MemConfig::default()
        })
        .expect("store");
        create(&s, "f");
        s.write(&p("f"), 0, b"data", Stability::Unstable)
            .expect("write");
        s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT)
            .expect("mkdir");
        (
            s.stat(&p("f")).expect("stat"),
            s.stat(&p("d")).expect("stat"),
        )
    };
    let (first, second) = (run(), run());
    assert_eq!(first, second);
    assert_eq!(
        first.0.btime,
        Some(Timespec {
            sec: 50,
            nsec: 1_000_000
        })
    );
    assert_eq!(
        first.0.mtime,
        Timespec {
            sec: 50,
            nsec: 2_000_000
        }
    );
}

#[test]
fn object_numbers_are_reused_with_a_new_incarnation() {
    let s = MemStore::new();
    create(&s, "f");
    let a = s.stat(&p("f")).expect("stat").identity;
    s.remove(&RelPath::root(), &n("f")).expect("remove");
    create(&s, "g");
    let b = s.stat(&p("g")).expect("stat").identity;
    assert_eq!(
        a.object, b.object,
        "the number is reused, as inode numbers are"
    );
    assert_ne!(
        a.incarnation, b.incarnation,
        "the incarnation tells them apart"
    );
    assert_eq!(s.stat(&RelPath::root()).expect("stat").fileid(), 1);
}

#[test]
fn identities_from_paths_without_stable_identity() {
    let s = MemStore::with_capabilities(OBJECT_STORE_CAPABILITIES).expect("store");
    create(&s, "f");
    let a = s.stat(&p("f")).expect("stat").identity;
    assert_eq!(a.incarnation, 0, "the store cannot tell incarnations apart");
    s.rename(&RelPath::root(), &n("f"), &RelPath::root(), &n("g"))
        .expect("rename");
    let b = s.stat(&p("g")).expect("stat").identity;
    assert_ne!(a, b, "the identity follows the path");
    s.remove(&RelPath::root(), &n("g")).expect("remove");
    create(&s, "g");
    assert_eq!(
        s.stat(&p("g")).expect("stat").identity,
        b,
        "a new object at the same path looks the same"
    );
    let mut objects = Vec::new();
    s.list(&RelPath::root(), &ListPos::Start, false, &mut |e, _| {
        objects.push(e.object);
        true
    })
    .expect("list");
    assert_eq!(objects, vec![0], "listings leave the identity to a stat");
    // What the store does not record.
    let st = s.stat(&p("g")).expect("stat");
    assert_eq!((st.mode, st.uid, st.gid), (0o644, 0, 0));
}

#[test]
fn configurations_that_cannot_hold() {
    let links_without_identity = Capabilities {
        stable_identity: false,
        ..DEFAULT_CAPABILITIES
    };
    assert!(matches!(
        MemStore::with_capabilities(links_without_identity),
        Err(StoreError::Setup(_))
    ));
    assert!(matches!(
        MemStore::with_config(MemConfig {
            limits: Limits {
                max_bytes: 0,
                max_objects: 0
            },
            ..MemConfig::default()
        }),
        Err(StoreError::Setup(_))
    ));
    // A budget of one object holds the root and nothing else.
    let s = store(
        DEFAULT_CAPABILITIES,
        Limits {
            max_bytes: 0,
            max_objects: 1,
        },
    );
    assert_eq!(
        s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT).map(drop),
        Err(StoreError::NoSpace)
    );
    assert!(format!("{s:?}").contains("MemStore"));
}

#[test]
fn simulated_local_processes_break_leases() {
    let s = MemStore::with_capabilities(Capabilities {
        leases: true,
        ..DEFAULT_CAPABILITIES
    })
    .expect("store");
    create(&s, "f");
    create(&s, "g");
    s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT)
        .expect("mkdir");
    assert_eq!(s.lease(&p("f"), false, 1), Ok(true));
    assert_eq!(s.lease(&p("g"), true, 2), Ok(true));
    assert_eq!(
        s.lease(&p("d"), false, 3),
        Ok(false),
        "directories are not delegated"
    );
    s.simulate_local_open(&p("f"), false).expect("open f");
    s.simulate_local_open(&p("g"), false).expect("open g");
    assert_eq!(
        s.leases(),
        vec![(1, None), (2, Some(LeaseBreak::Opened))],
        "a read open breaks only a write lease"
    );
    s.simulate_local_change(&p("f")).expect("change f");
    assert_eq!(s.leases()[0], (1, Some(LeaseBreak::Changed)));
    assert_eq!(
        s.simulate_local_open(&p("missing"), true),
        Err(StoreError::NotFound)
    );
}

#[test]
fn locks_of_a_replaced_file_are_its_own() {
    let s = MemStore::with_capabilities(Capabilities {
        local_locks: true,
        ..DEFAULT_CAPABILITIES
    })
    .expect("store");
    create(&s, "f");
    let old = s
        .open_lock_file(&p("f"), true)
        .expect("lock file")
        .expect("local locks");
    old.lock(0, u64::MAX, true).expect("lock");
    s.remove(&RelPath::root(), &n("f")).expect("remove");
    create(&s, "f");
    let new = s
        .open_lock_file(&p("f"), true)
        .expect("lock file")
        .expect("local locks");
    // The new file reuses the old one's number, not its locks.
    assert_eq!(new.lock(0, 10, true), Ok(()));
    assert!(matches!(
        new.lock(5, 4, false),
        Err(LockError::Store(StoreError::Invalid))
    ));
}

#[test]
fn listing_in_batches_lets_the_visitor_use_the_store() {
    let s = MemStore::new();
    let total = 3 * LIST_BATCH + 5;
    for i in 0..total {
        create(&s, &format!("e{i:04}"));
    }
    let mut seen = 0;
    let end = s
        .list(&RelPath::root(), &ListPos::Start, true, &mut |e, attrs| {
            // Calls back into the store: no lock is held while visiting.
            let name = Name::new(e.name).expect("name");
            let looked = s.lookup(&RelPath::root(), &name).expect("lookup");
            assert_eq!(attrs, Some(Ok(looked)));
            // Entries removed ahead of the listing are not visited.
            if seen == 0 {
                for i in (total - 10)..total {
                    s.remove(&RelPath::root(), &n(&format!("e{i:04}")))
                        .expect("remove ahead");
                }
            }
            seen += 1;
            true
        })
        .expect("list");
    assert!(end);
    assert_eq!(seen, total - 10);
}

#[test]
fn a_directory_removed_while_listed_ends_its_listing() {
    let s = MemStore::new();
    s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT)
        .expect("mkdir");
    for i in 0..LIST_BATCH + 1 {
        create_in(&s, "d", &format!("e{i:04}"));
    }
    let mut seen = 0;
    let end = s
        .list(&p("d"), &ListPos::Start, false, &mut |_, _| {
            seen += 1;
            if seen == 1 {
                // Empty it and put another directory at its name.
                for i in 0..LIST_BATCH + 1 {
                    s.remove(&p("d"), &n(&format!("e{i:04}"))).expect("remove");
                }
                s.rmdir(&RelPath::root(), &n("d")).expect("rmdir");
                s.mkdir(&RelPath::root(), &n("d"), 0o755, ROOT)
                    .expect("mkdir again");
                create_in(&s, "d", "newcomer");
            }
            true
        })
        .expect("list");
    assert!(end);
    assert_eq!(
        seen, LIST_BATCH,
        "the rest of the first batch, then nothing"
    );
}

fn create_in(s: &MemStore, dir: &str, name: &str) {
    s.create_file(&p(dir), &n(name), 0o644, ROOT, true)
        .expect("create");
}
