//! Optional features, each checked against its capability: extended
//! attributes, hard links, special files, space management, server-side
//! copy and clone, lock files, leases; and file-system statistics.

use super::kit::*;
use super::{Factory, UNSUPPORTED};
use crate::{
    FileKind, LockError, Owner, SetAttrs, Stability, StoreError, XattrSet, XATTR_NAME_MAX,
    XATTR_SIZE_MAX,
};

use StoreError::*;

/// `statfs` numbers are consistent with each other.
pub fn check_statfs(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    for round in 0..2 {
        let st = must(s.statfs(), "statfs");
        assert!(st.total_bytes > 0, "a store has some space: {st:?}");
        assert!(st.free_bytes <= st.total_bytes, "free <= total: {st:?}");
        assert!(st.avail_bytes <= st.free_bytes, "available <= free: {st:?}");
        assert!(
            st.free_files <= st.total_files,
            "free files <= total: {st:?}"
        );
        assert!(
            st.avail_files <= st.free_files,
            "available files <= free: {st:?}"
        );
        assert!(
            (1..=crate::NAME_MAX as u32).contains(&st.name_max),
            "name_max within 1..=NAME_MAX: {st:?}"
        );
        if round == 0 {
            new_file(s, "f", &[7; 8192]);
            new_dir(s, "d");
        }
    }
}

/// Extended attributes (RFC 8276): the set modes, the errors, the limits;
/// on files and directories.
pub fn check_xattrs(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"");
    new_dir(s, "d");
    if !s.capabilities().xattrs {
        not_applicable(
            "check_xattrs",
            "no extended attributes: checking they are refused",
        );
        let fp = p("f");
        assert_err(s.getxattr(&fp, b"k"), UNSUPPORTED, "getxattr");
        assert_err(
            s.setxattr(&fp, b"k", b"v", XattrSet::Either),
            UNSUPPORTED,
            "setxattr",
        );
        assert_err(s.listxattr(&fp), UNSUPPORTED, "listxattr");
        assert_err(s.removexattr(&fp, b"k"), UNSUPPORTED, "removexattr");
        return;
    }
    for path in ["f", "d"] {
        let xp = p(path);
        assert_eq!(
            s.listxattr(&xp),
            Ok(Vec::new()),
            "a new object has no xattrs"
        );
        assert_err(s.getxattr(&xp, b"k1"), &[NoXattr], "get a missing xattr");
        must(s.setxattr(&xp, b"k1", b"v1", XattrSet::Either), "set");
        assert_eq!(s.getxattr(&xp, b"k1"), Ok(b"v1".to_vec()));
        assert_err(
            s.setxattr(&xp, b"k1", b"x", XattrSet::Create),
            &[Exists],
            "create an existing xattr",
        );
        assert_err(
            s.setxattr(&xp, b"k2", b"x", XattrSet::Replace),
            &[NoXattr],
            "replace a missing xattr",
        );
        assert_eq!(
            s.getxattr(&xp, b"k1"),
            Ok(b"v1".to_vec()),
            "refused sets change nothing"
        );
        must(
            s.setxattr(&xp, b"k1", b"", XattrSet::Replace),
            "replace with empty",
        );
        assert_eq!(s.getxattr(&xp, b"k1"), Ok(Vec::new()), "an empty value");
        let big = vec![7u8; 3000];
        must(s.setxattr(&xp, b"k2", &big, XattrSet::Create), "create");
        assert_eq!(s.getxattr(&xp, b"k2"), Ok(big));
        let mut all = must(s.listxattr(&xp), "list");
        all.sort();
        assert_eq!(all, vec![b"k1".to_vec(), b"k2".to_vec()]);
        must(
            s.setxattr(&xp, b"k2", b"short", XattrSet::Either),
            "overwrite",
        );
        assert_eq!(s.getxattr(&xp, b"k2"), Ok(b"short".to_vec()));
        must(s.removexattr(&xp, b"k1"), "remove");
        assert_err(s.getxattr(&xp, b"k1"), &[NoXattr], "get a removed xattr");
        assert_err(s.removexattr(&xp, b"k1"), &[NoXattr], "remove twice");
        assert_eq!(s.listxattr(&xp), Ok(vec![b"k2".to_vec()]));
    }

    let fp = p("f");
    let longest = vec![b'n'; XATTR_NAME_MAX];
    must(
        s.setxattr(&fp, &longest, b"v", XattrSet::Create),
        "the longest name",
    );
    assert_eq!(s.getxattr(&fp, &longest), Ok(b"v".to_vec()));
    let too_long = vec![b'n'; XATTR_NAME_MAX + 1];
    assert_err(
        s.getxattr(&fp, &too_long),
        &[NameTooLong],
        "get a too long name",
    );
    assert_err(
        s.setxattr(&fp, &too_long, b"v", XattrSet::Either),
        &[NameTooLong],
        "set a too long name",
    );
    assert_err(s.getxattr(&fp, b""), &[Invalid], "an empty name");
    assert_err(
        s.setxattr(&fp, b"", b"v", XattrSet::Either),
        &[Invalid],
        "set empty name",
    );
    assert_err(
        s.setxattr(&fp, b"a\0b", b"v", XattrSet::Either),
        &[Invalid],
        "NUL in name",
    );
    assert_err(
        s.setxattr(&fp, b"huge", &vec![0; XATTR_SIZE_MAX + 1], XattrSet::Either),
        &[XattrTooBig],
        "a value past XATTR_SIZE_MAX",
    );
    assert_err(
        s.getxattr(&fp, b"huge"),
        &[NoXattr],
        "a refused value is not stored",
    );
    assert_err(
        s.getxattr(&p("missing"), b"k"),
        &[NotFound],
        "xattr of missing",
    );
    assert_err(
        s.setxattr(&p("missing"), b"k", b"v", XattrSet::Either),
        &[NotFound],
        "set xattr of missing",
    );
    assert_eq!(read_all(s, "f"), Ok(Vec::new()), "xattrs are not data");
}

/// Hard links share one object; `nlink` counts them.
pub fn check_hard_links(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let a = new_file(s, "a", b"data");
    assert_eq!(a.nlink, 1);
    if !caps.hard_links {
        not_applicable(
            "check_hard_links",
            "no hard links: checking they are refused",
        );
        assert_err(s.link(&p("a"), &root(), &n("b")), UNSUPPORTED, "link");
        assert_err(s.stat(&p("b")), &[NotFound], "no link was made");
        return;
    }
    let l = must(s.link(&p("a"), &root(), &n("b")), "link a b");
    assert_eq!(l.nlink, 2, "the link's attributes count both names");
    assert_eq!(
        l.identity.object, a.identity.object,
        "one object, one fileid"
    );
    assert_eq!(must(s.stat(&p("a")), "stat a").nlink, 2);
    let b = must(s.stat(&p("b")), "stat b");
    assert_eq!(
        (b.identity, b.kind),
        (must(s.stat(&p("a")), "stat a").identity, FileKind::Regular)
    );
    put(s, "b", 0, b"DATA", Stability::FileSync);
    assert_eq!(read_all(s, "a"), Ok(b"DATA".to_vec()), "one object's data");

    new_dir(s, "d");
    assert_eq!(
        must(s.link(&p("a"), &p("d"), &n("c")), "link into d").nlink,
        3
    );
    assert_err(
        s.link(&p("a"), &root(), &n("b")),
        &[Exists],
        "link over a name",
    );
    assert_err(
        s.link(&p("a"), &root(), &n("d")),
        &[Exists],
        "link over a directory",
    );
    assert_err(
        s.link(&p("d"), &root(), &n("dl")),
        &[IsDir],
        "link a directory",
    );
    assert_err(
        s.link(&p("missing"), &root(), &n("x")),
        &[NotFound],
        "link missing",
    );
    assert_err(
        s.link(&p("a"), &p("nodir"), &n("x")),
        &[NotFound],
        "link into missing",
    );
    assert_err(s.stat(&p("x")), &[NotFound], "refused links leave nothing");

    must(s.remove(&root(), &n("b")), "remove b");
    assert_eq!(must(s.stat(&p("a")), "stat a").nlink, 2);
    must(s.remove(&p("d"), &n("c")), "remove d/c");
    let a2 = must(s.stat(&p("a")), "stat a");
    assert_eq!(a2.nlink, 1);
    assert_eq!(
        read_all(s, "a"),
        Ok(b"DATA".to_vec()),
        "the last name keeps the data"
    );

    if caps.symlinks {
        must(s.symlink(&root(), &n("s"), b"a", ROOT), "symlink");
        let sl = must(s.link(&p("s"), &root(), &n("s2")), "link a symlink");
        assert_eq!(
            (sl.kind, sl.nlink),
            (FileKind::Symlink, 2),
            "the link itself is linked"
        );
        assert_eq!(s.readlink(&p("s2")), Ok(b"a".to_vec()));
        assert_eq!(
            must(s.stat(&p("a")), "stat a").nlink,
            1,
            "its target is not"
        );
    }
    if caps.special_files {
        must(
            s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        let fl = must(s.link(&p("fifo"), &root(), &n("fifo2")), "link a fifo");
        assert_eq!((fl.kind, fl.nlink), (FileKind::Fifo, 2));
    }
}

/// Fifos, sockets and devices are metadata: created with their kind, mode,
/// owner and device numbers, never read or written.
pub fn check_special_files(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    if !caps.special_files {
        not_applicable(
            "check_special_files",
            "no special files: checking they are refused",
        );
        for kind in [
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::CharDev,
            FileKind::BlockDev,
        ] {
            assert_err(
                s.mknod(&root(), &n("x"), kind, 0o600, (1, 3), ROOT),
                UNSUPPORTED,
                "mknod",
            );
        }
        assert_err(s.stat(&p("x")), &[NotFound], "nothing was created");
        return;
    }
    let owner = Owner { uid: 5, gid: 6 };
    let made = [
        ("fifo", FileKind::Fifo, 0o600, (0, 0)),
        ("sock", FileKind::Socket, 0o640, (0, 0)),
        ("null", FileKind::CharDev, 0o666, (1, 3)),
        ("loop", FileKind::BlockDev, 0o660, (7, 0)),
    ];
    for (name, kind, mode, rdev) in made {
        let a = must(s.mknod(&root(), &n(name), kind, mode, rdev, owner), name);
        assert_eq!((a.kind, a.rdev, a.nlink), (kind, rdev, 1), "{name}");
        if caps.ownership {
            assert_eq!(
                (a.mode, a.uid, a.gid),
                (mode, 5, 6),
                "{name}: mode and owner"
            );
        }
        assert_eq!(
            must(s.lookup(&root(), &n(name)), "lookup"),
            a,
            "{name}: lookup"
        );
        assert_err(read_all(s, name), &[WrongType], "read a special file");
        assert_err(
            s.write(&p(name), 0, b"x", Stability::Unstable),
            &[WrongType],
            "write a special file",
        );
        assert_err(s.commit(&p(name)), &[WrongType], "commit a special file");
    }
    for kind in [FileKind::Regular, FileKind::Directory, FileKind::Symlink] {
        assert_err(
            s.mknod(&root(), &n("bad"), kind, 0o600, (0, 0), ROOT),
            &[Invalid],
            "mknod of a kind that is not special",
        );
    }
    assert_err(
        s.mknod(&root(), &n("bad"), FileKind::Fifo, 0o10600, (0, 0), ROOT),
        &[Invalid],
        "mknod with type bits in the mode",
    );
    assert_err(
        s.stat(&p("bad")),
        &[NotFound],
        "refused mknods leave nothing",
    );
    assert_err(
        s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
        &[Exists],
        "mknod over an existing name",
    );
    let listed: Vec<_> = list_all(s, "")
        .into_iter()
        .map(|e| (e.name, e.kind))
        .collect();
    for (name, kind, _, _) in made {
        assert!(
            listed.contains(&(name.as_bytes().to_vec(), kind)),
            "{name} listed as {kind:?}"
        );
    }
    for (name, kind, _, _) in made {
        assert_eq!(must(s.remove(&root(), &n(name)), "remove").kind, kind);
    }
    assert_eq!(names(s, ""), name_set(&[]));
}

/// ALLOCATE and DEALLOCATE (RFC 7862 §15.1, §15.4).
pub fn check_allocate_deallocate(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"abc");
    let fp = p("f");
    if !s.capabilities().sparse {
        not_applicable(
            "check_allocate_deallocate",
            "no sparse files: checking the calls are refused",
        );
        assert_err(s.allocate(&fp, 0, 1), UNSUPPORTED, "allocate");
        assert_err(s.deallocate(&fp, 0, 1), UNSUPPORTED, "deallocate");
        return;
    }
    must(s.allocate(&fp, 0, 1), "allocate inside");
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        3,
        "allocating inside keeps the size"
    );
    must(s.allocate(&fp, 10, 100), "allocate past EOF");
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        110,
        "allocating past EOF extends"
    );
    let data = must(read_all(s, "f"), "read");
    assert_eq!(&data[..3], b"abc");
    assert!(
        data[3..].iter().all(|&b| b == 0),
        "allocated space reads as zeros"
    );
    assert_err(s.allocate(&fp, 0, 0), &[Invalid], "allocate nothing");
    assert_err(
        s.allocate(&fp, i64::MAX as u64, 1),
        &[TooBig],
        "allocate past i64",
    );
    assert_err(
        s.allocate(&fp, u64::MAX, 2),
        &[TooBig],
        "allocate overflowing u64",
    );
    assert_err(s.allocate(&root(), 0, 1), &[IsDir], "allocate the root");
    assert_err(
        s.allocate(&p("missing"), 0, 1),
        &[NotFound],
        "allocate missing",
    );
    assert_eq!(
        must(s.stat(&fp), "stat").size,
        110,
        "refused calls change nothing"
    );

    let pattern = vec![0x5a; 3 * 4096 + 100];
    new_file(s, "g", &pattern);
    let gp = p("g");
    // Unaligned: partial blocks are zeroed, whole ones released.
    must(s.deallocate(&gp, 100, 2 * 4096), "punch a hole");
    let now = must(read_all(s, "g"), "read");
    assert_eq!(now.len(), pattern.len(), "deallocating keeps the size");
    assert!(now[..100].iter().all(|&b| b == 0x5a));
    assert!(
        now[100..100 + 2 * 4096].iter().all(|&b| b == 0),
        "the hole reads as zeros"
    );
    assert!(now[100 + 2 * 4096..].iter().all(|&b| b == 0x5a));
    must(s.deallocate(&gp, 1 << 20, 4096), "deallocate past EOF");
    assert_eq!(
        must(s.stat(&gp), "stat").size,
        pattern.len() as u64,
        "past EOF: no-op"
    );
    assert_err(s.deallocate(&gp, 0, 0), &[Invalid], "deallocate nothing");
    assert_err(
        s.deallocate(&p("missing"), 0, 1),
        &[NotFound],
        "deallocate missing",
    );
    new_dir(s, "d");
    assert_err(
        s.deallocate(&p("d"), 0, 1),
        &[IsDir],
        "deallocate a directory",
    );
}

/// SEEK for data and holes (RFC 7862 §15.11): end of file is a hole,
/// nothing is found at or past it.
pub fn check_seek_data_hole(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"");
    let fp = p("f");
    if !s.capabilities().sparse {
        not_applicable(
            "check_seek_data_hole",
            "no sparse files: checking the calls are refused",
        );
        assert_err(s.seek_data(&fp, 0), UNSUPPORTED, "seek_data");
        assert_err(s.seek_hole(&fp, 0), UNSUPPORTED, "seek_hole");
        return;
    }
    let blk: u64 = 1 << 20;
    put(s, "f", blk, &vec![1; blk as usize], Stability::FileSync);
    let size = SetAttrs {
        size: Some(3 * blk),
        ..Default::default()
    };
    must(s.setattr(&fp, &size), "extend");
    assert_eq!(s.seek_hole(&fp, 3 * blk), Ok(None), "nothing at EOF");
    assert_eq!(s.seek_data(&fp, 3 * blk), Ok(None), "nothing at EOF");
    assert_eq!(s.seek_data(&fp, u64::MAX), Ok(None), "nothing past EOF");
    assert_eq!(s.seek_hole(&fp, u64::MAX), Ok(None), "nothing past EOF");
    if s.seek_hole(&fp, 0) == Ok(Some(0)) {
        assert_eq!(
            s.seek_data(&fp, 0),
            Ok(Some(blk)),
            "the data after a leading hole"
        );
        assert_eq!(s.seek_data(&fp, blk + 5), Ok(Some(blk + 5)), "inside data");
        assert_eq!(
            s.seek_hole(&fp, blk),
            Ok(Some(2 * blk)),
            "the hole after the data"
        );
        assert_eq!(
            s.seek_hole(&fp, 2 * blk + 7),
            Ok(Some(2 * blk + 7)),
            "inside a hole"
        );
        assert_eq!(
            s.seek_data(&fp, 2 * blk),
            Ok(None),
            "no data in the trailing hole"
        );
    } else {
        eprintln!("check_seek_data_hole: the store reports the whole file as data");
        assert_eq!(s.seek_data(&fp, 0), Ok(Some(0)));
        assert_eq!(s.seek_hole(&fp, 0), Ok(Some(3 * blk)), "the hole at EOF");
    }
    // A file that is all data, ending inside a block: the hole at EOF.
    new_file(s, "g", b"0123456789");
    let gp = p("g");
    assert_eq!(s.seek_data(&gp, 0), Ok(Some(0)), "data at the start");
    assert_eq!(s.seek_data(&gp, 9), Ok(Some(9)), "data at the last byte");
    assert_eq!(s.seek_hole(&gp, 0), Ok(Some(10)), "the only hole is at EOF");
    assert_eq!(s.seek_hole(&gp, 5), Ok(Some(10)));
    assert_eq!(s.seek_data(&gp, 10), Ok(None));
    new_dir(s, "d");
    assert_err(s.seek_data(&p("d"), 0), &[IsDir], "seek in a directory");
    assert_err(
        s.seek_hole(&p("missing"), 0),
        &[NotFound],
        "seek in missing",
    );
}

/// Server-side COPY (RFC 7862 §15.2): short at the source's end, growing
/// the destination, refusing overlapping ranges of one file.
pub fn check_copy_range(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "src", b"0123456789");
    new_file(s, "dst", b"abcdefghij");
    let (src, dst) = (p("src"), p("dst"));
    if !s.capabilities().copy {
        not_applicable(
            "check_copy_range",
            "no server-side copy: checking it is refused",
        );
        assert_err(s.copy_range(&src, 0, &dst, 0, 1), UNSUPPORTED, "copy");
        return;
    }
    must(s.open(&dst, true), "open dst");
    assert_eq!(s.copy_range(&src, 2, &dst, 5, 3), Ok(3));
    assert_eq!(read_all(s, "dst"), Ok(b"abcde234ij".to_vec()));
    assert_eq!(
        s.copy_range(&src, 8, &dst, 12, 100),
        Ok(2),
        "short at the source's end"
    );
    assert_eq!(
        read_all(s, "dst"),
        Ok(b"abcde234ij\0\089".to_vec()),
        "a gap of zeros"
    );
    assert_eq!(
        s.copy_range(&src, 10, &dst, 0, 5),
        Ok(0),
        "nothing past the source's end"
    );
    assert_err(
        s.copy_range(&src, 0, &dst, i64::MAX as u64, 1),
        &[TooBig],
        "past i64",
    );
    assert_err(
        s.copy_range(&src, u64::MAX, &dst, 0, 2),
        &[TooBig],
        "overflowing u64",
    );
    must(s.commit(&dst), "commit");
    must(s.close(&dst), "close dst");
    assert_eq!(
        read_all(s, "dst"),
        Ok(b"abcde234ij\0\089".to_vec()),
        "refusals changed nothing"
    );

    // Within one file.
    must(s.open(&src, true), "open src");
    assert_eq!(
        s.copy_range(&src, 0, &src, 10, 5),
        Ok(5),
        "disjoint ranges of one file"
    );
    assert_eq!(read_all(s, "src"), Ok(b"012345678901234".to_vec()));
    assert_err(
        s.copy_range(&src, 0, &src, 2, 5),
        &[Invalid],
        "overlapping ranges",
    );
    assert_err(
        s.copy_range(&src, 4, &src, 0, 5),
        &[Invalid],
        "overlapping backwards",
    );
    must(s.close(&src), "close src");
    assert_eq!(read_all(s, "src"), Ok(b"012345678901234".to_vec()));

    new_dir(s, "d");
    assert_err(
        s.copy_range(&p("d"), 0, &dst, 0, 1),
        &[IsDir],
        "copy from a directory",
    );
    assert_err(
        s.copy_range(&src, 0, &p("d"), 0, 1),
        &[IsDir],
        "copy to a directory",
    );
    assert_err(
        s.copy_range(&p("missing"), 0, &dst, 0, 1),
        &[NotFound],
        "copy from missing",
    );
}

/// CLONE (RFC 7862 §15.13): shares data, or is not supported between
/// these files.
pub fn check_clone_range(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "src", &[7; 8192]);
    new_file(s, "dst", b"");
    let (src, dst) = (p("src"), p("dst"));
    if !s.capabilities().clone {
        not_applicable(
            "check_clone_range",
            "no shared extents: checking clones are refused",
        );
        assert_err(s.clone_range(&src, 0, &dst, 0, 8192), UNSUPPORTED, "clone");
        return;
    }
    must(s.open(&dst, true), "open dst");
    match s.clone_range(&src, 0, &dst, 0, 8192) {
        Ok(()) => {
            assert_eq!(read_all(s, "dst"), Ok(vec![7; 8192]), "cloned data");
            put(s, "src", 0, b"changed", Stability::FileSync);
            assert_eq!(
                read_all(s, "dst"),
                Ok(vec![7; 8192]),
                "a clone is not a link"
            );
        }
        Err(Unsupported) => eprintln!("check_clone_range: no reflinks between these files"),
        Err(e) => panic!("clone: {e:?}"),
    }
    must(s.close(&dst), "close dst");
    new_dir(s, "d");
    assert_err(
        s.clone_range(&p("d"), 0, &dst, 0, 4096),
        &[IsDir, Unsupported],
        "clone a dir",
    );
}

/// Lock files of one file behave like POSIX lock owners towards each
/// other: conflicts, splits, up- and downgrades, unlocks, tests, and
/// dropping one releases its locks.
pub fn check_lock_files(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"x");
    let fp = p("f");
    if !s.capabilities().local_locks {
        not_applicable(
            "check_lock_files",
            "no locks local processes see: checking there is no lock file",
        );
        assert!(
            matches!(s.open_lock_file(&fp, true), Ok(None)),
            "without local locks there is no lock file"
        );
        return;
    }
    let open = |write: bool| match s.open_lock_file(&fp, write) {
        Ok(Some(l)) => l,
        other => panic!("open_lock_file: {other:?}"),
    };
    let a = open(true);
    let b = open(true);
    assert!(
        a.writable() && b.writable(),
        "lock files opened for writing are writable"
    );
    let conflict = |r: Result<(), LockError>, write: bool, start: u64, end: u64| match r {
        Err(LockError::Conflict(c)) => {
            assert_eq!(c.write, write, "the conflicting lock's type: {c:?}");
            let last = c.offset.saturating_add(c.length.saturating_sub(1));
            assert!(
                c.offset <= end && start <= last,
                "the conflict overlaps: {c:?}"
            );
        }
        other => panic!("expected a conflict with [{start}, {end}], got {other:?}"),
    };

    assert_eq!(a.lock(0, 99, true), Ok(()));
    conflict(b.lock(50, 50, false), true, 50, 50);
    assert_eq!(
        a.test(0, 99, true),
        Ok(None),
        "one's own locks never conflict"
    );
    match b.test(0, 9, false) {
        Ok(Some(c)) => assert_eq!((c.offset, c.length, c.write), (0, 100, true)),
        other => panic!("test against a write lock: {other:?}"),
    }
    // Split by unlocking the middle; the hole is free for the other.
    assert_eq!(a.unlock(40, 59), Ok(()));
    assert_eq!(b.lock(40, 59, true), Ok(()));
    conflict(b.lock(39, 40, true), true, 39, 40);
    // Downgrade the tail to read: it can be shared, not taken for writing.
    assert_eq!(a.lock(60, 99, false), Ok(()));
    assert_eq!(b.unlock(40, 59), Ok(()));
    assert_eq!(b.lock(60, 99, false), Ok(()), "read locks are shared");
    conflict(b.lock(60, 99, true), false, 60, 99);
    assert_eq!(b.unlock(500, 600), Ok(()), "unlocking what is not locked");
    // To the end of the file and beyond.
    assert_eq!(a.lock(1000, u64::MAX, true), Ok(()));
    match b.test(5000, 5000, false) {
        Ok(Some(c)) => assert_eq!((c.offset, c.length, c.write), (1000, u64::MAX, true)),
        other => panic!("test against a lock to the end: {other:?}"),
    }
    drop(a);
    assert_eq!(
        b.lock(0, u64::MAX, true),
        Ok(()),
        "dropping a lock file releases its locks"
    );

    let r = open(false);
    assert!(
        !r.writable(),
        "a lock file opened for reading is not writable"
    );
    conflict(r.lock(0, 9, false), true, 0, 9);
    drop(b);
    assert_eq!(r.lock(0, 9, false), Ok(()));
    assert_eq!(r.lock(0, 9, true), Err(LockError::NotWritable));
    drop(r);

    new_dir(s, "d");
    assert!(
        matches!(s.open_lock_file(&p("d"), true), Err(IsDir)),
        "a directory"
    );
    assert!(
        matches!(s.open_lock_file(&p("missing"), true), Err(NotFound)),
        "missing"
    );
}

/// Leases standing for delegations: granted when no local user
/// conflicts, listed, released. Without the capability every lease is
/// granted and none is listed.
pub fn check_leases(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"x");
    new_file(s, "g", b"y");
    if !s.capabilities().leases {
        not_applicable(
            "check_leases",
            "nothing local to watch: checking every lease is granted, none listed",
        );
        assert_eq!(s.lease(&p("f"), true, 7), Ok(true));
        assert!(s.leases().is_empty());
        s.unlease(7);
        return;
    }
    assert_eq!(
        s.lease(&p("f"), false, 7),
        Ok(true),
        "a read lease on an idle file"
    );
    assert_eq!(s.leases(), vec![(7, None)]);
    assert_eq!(
        s.lease(&p("f"), false, 7),
        Ok(true),
        "taking a held lease again"
    );
    assert_eq!(s.leases(), vec![(7, None)], "is a no-op");
    assert_eq!(
        s.lease(&p("g"), true, 8),
        Ok(true),
        "a write lease on an idle file"
    );
    let mut held = s.leases();
    held.sort_by_key(|(tag, _)| *tag);
    assert_eq!(held, vec![(7, None), (8, None)]);
    s.unlease(7);
    assert_eq!(s.leases(), vec![(8, None)]);
    s.unlease(8);
    s.unlease(8);
    assert!(s.leases().is_empty(), "released leases are gone");
    assert!(
        s.lease(&p("missing"), false, 9).is_err(),
        "no lease on a missing file"
    );
    assert!(s.leases().is_empty());
}
