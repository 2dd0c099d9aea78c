//! Lookups and the namespace: lstat semantics, names, create, mkdir,
//! remove, rmdir, rename.

use super::kit::*;
use super::{dir_rename_allows, Factory, UNSUPPORTED};
use crate::{Created, DirRename, FileKind, ListPos, Name, Owner, Stability, StoreError};

use StoreError::*;

/// Both answers POSIX allows when a directory is in the way.
const NOT_A_DIR: &[StoreError] = &[Symlink, NotDir];

/// `stat` and `lookup` report objects as they are (lstat); a missing name
/// is `NotFound`; a regular file used as a directory is `NotDir`.
pub fn check_root_and_lstat(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let r = must(s.stat(&root()), "stat root");
    assert_eq!(r.kind, FileKind::Directory, "the root is a directory");
    assert_eq!(names(s, ""), name_set(&[]), "a fresh store is empty");

    assert_err(
        s.lookup(&root(), &n("missing")),
        &[NotFound],
        "lookup missing",
    );
    assert_err(s.stat(&p("missing")), &[NotFound], "stat missing");
    assert_err(
        s.stat(&p("missing/deeper")),
        &[NotFound],
        "stat below missing",
    );
    assert_err(
        s.lookup(&p("missing"), &n("x")),
        &[NotFound],
        "lookup in missing",
    );

    let fa = new_file(s, "f", b"data");
    assert_eq!((fa.kind, fa.size, fa.nlink), (FileKind::Regular, 4, 1));
    assert_eq!(
        must(s.lookup(&root(), &n("f")), "lookup f"),
        must(s.stat(&p("f")), "stat f"),
        "lookup and stat of one object agree"
    );

    // A regular file used as a directory.
    assert_err(s.stat(&p("f/x")), &[NotDir], "stat f/x");
    assert_err(s.lookup(&p("f"), &n("x")), &[NotDir], "lookup in a file");
    assert_err(
        s.create_file(&p("f"), &n("x"), 0o644, ROOT, true),
        &[NotDir],
        "create in a file",
    );
    assert_err(
        s.mkdir(&p("f"), &n("x"), 0o755, ROOT),
        &[NotDir],
        "mkdir in a file",
    );
    assert_err(
        s.list(&p("f"), &ListPos::Start, false, &mut |_, _| true),
        &[NotDir],
        "list a file",
    );
    assert_err(read_all(s, "f/x"), &[NotDir], "read below a file");
    assert_err(
        s.create_file(&p("nodir"), &n("x"), 0o644, ROOT, true),
        &[NotFound],
        "create in a missing directory",
    );

    let d = new_dir(s, "d");
    assert_eq!(d.kind, FileKind::Directory);
    new_file(s, "d/g", b"");
    let g = must(s.lookup(&p("d"), &n("g")), "lookup d/g");
    assert_eq!(g, must(s.stat(&p("d/g")), "stat d/g"));
    assert_eq!(g.kind, FileKind::Regular);
    assert_eq!(must(s.stat(&p("d")), "stat d").kind, FileKind::Directory);
}

/// Symlinks are never followed: not as the last component (they are
/// reported, read and removed as themselves), not as an intermediate one.
pub fn check_symlinks_never_followed(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    if !s.capabilities().symlinks {
        not_applicable(
            "check_symlinks_never_followed",
            "no symlinks: checking they are refused",
        );
        assert_err(
            s.symlink(&root(), &n("s"), b"d", ROOT),
            UNSUPPORTED,
            "symlink",
        );
        assert_err(s.stat(&p("s")), &[NotFound], "no symlink was created");
        return;
    }
    new_dir(s, "d");
    new_file(s, "d/x", b"inside");
    must(s.symlink(&root(), &n("s"), b"d", ROOT), "symlink s -> d");
    must(s.symlink(&root(), &n("abs"), b"/etc", ROOT), "symlink abs");
    must(s.symlink(&root(), &n("up"), b"..", ROOT), "symlink up");
    must(
        s.symlink(&root(), &n("dangling"), b"no/where", ROOT),
        "dangling symlink",
    );

    for (link, target) in [
        ("s", &b"d"[..]),
        ("abs", b"/etc"),
        ("up", b".."),
        ("dangling", b"no/where"),
    ] {
        let a = must(s.stat(&p(link)), "stat a symlink");
        assert_eq!(a.kind, FileKind::Symlink, "{link} is reported as a symlink");
        assert_eq!(a.size, target.len() as u64, "size of symlink {link}");
        assert_eq!(must(s.lookup(&root(), &n(link)), "lookup symlink"), a);
        assert_eq!(must(s.readlink(&p(link)), "readlink"), target);
    }

    // As an intermediate component.
    assert_err(s.stat(&p("s/x")), NOT_A_DIR, "stat through a symlink");
    assert_err(s.stat(&p("up/s")), NOT_A_DIR, "stat through ..");
    assert_err(
        s.lookup(&p("s"), &n("x")),
        NOT_A_DIR,
        "lookup through a symlink",
    );
    assert_err(read_all(s, "s/x"), NOT_A_DIR, "read through a symlink");
    assert_err(
        s.write(&p("s/x"), 0, b"no", Stability::Unstable),
        NOT_A_DIR,
        "write through a symlink",
    );
    assert_err(
        s.list(&p("s"), &ListPos::Start, false, &mut |_, _| true),
        NOT_A_DIR,
        "list through a symlink",
    );
    assert_err(
        s.create_file(&p("s"), &n("new"), 0o644, ROOT, true),
        NOT_A_DIR,
        "create through a symlink",
    );
    assert_err(
        s.mkdir(&p("s"), &n("new"), 0o755, ROOT),
        NOT_A_DIR,
        "mkdir through a symlink",
    );
    assert_err(
        s.remove(&p("s"), &n("x")),
        NOT_A_DIR,
        "remove through a symlink",
    );
    assert_err(
        s.rename(&p("s"), &n("x"), &root(), &n("y")),
        NOT_A_DIR,
        "rename from through a symlink",
    );
    new_file(s, "f", b"");
    assert_err(
        s.rename(&root(), &n("f"), &p("s"), &n("f")),
        NOT_A_DIR,
        "rename into through a symlink",
    );
    assert_eq!(
        names(s, "d"),
        name_set(&["x"]),
        "nothing happened behind the symlink"
    );
    assert_eq!(read_all(s, "d/x"), Ok(b"inside".to_vec()));

    // As the last component, where a regular file is needed.
    assert_err(read_all(s, "s"), &[Symlink], "read a symlink");
    assert_err(
        s.write(&p("s"), 0, b"no", Stability::Unstable),
        &[Symlink],
        "write a symlink",
    );
    assert_err(
        s.setattr(
            &p("s"),
            &crate::SetAttrs {
                size: Some(0),
                ..Default::default()
            },
        ),
        &[Symlink],
        "truncate a symlink",
    );
    assert_err(s.commit(&p("s")), &[Symlink], "commit a symlink");
    assert_err(
        s.create_file(&root(), &n("s"), 0o644, ROOT, false),
        &[Symlink],
        "open-create over a symlink",
    );
    assert_err(
        s.create_file(&root(), &n("s"), 0o644, ROOT, true),
        &[Exists],
        "exclusive create over a symlink",
    );
    if s.capabilities().local_locks {
        assert_err(
            s.open_lock_file(&p("s"), true),
            &[Symlink],
            "lock file of a symlink",
        );
    }

    // Removing and renaming act on the link.
    must(
        s.rename(&root(), &n("s"), &root(), &n("s2")),
        "rename a symlink",
    );
    assert_eq!(
        must(s.stat(&p("s2")), "stat moved link").kind,
        FileKind::Symlink
    );
    let gone = must(s.remove(&root(), &n("s2")), "remove a symlink");
    assert_eq!(gone.kind, FileKind::Symlink);
    assert_eq!(must(s.stat(&p("d")), "stat d").kind, FileKind::Directory);
    assert_eq!(read_all(s, "d/x"), Ok(b"inside".to_vec()));
}

/// Symlink targets are data: stored and returned verbatim, whatever bytes
/// they hold.
pub fn check_symlink_targets(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    if !s.capabilities().symlinks {
        not_applicable(
            "check_symlink_targets",
            "no symlinks: checking they are refused",
        );
        assert_err(
            s.symlink(&root(), &n("s"), b"t", ROOT),
            UNSUPPORTED,
            "symlink",
        );
        new_file(s, "f", b"");
        assert_err(
            s.readlink(&p("f")),
            &[Unsupported, Invalid],
            "readlink of a file",
        );
        return;
    }
    let long: Vec<u8> = b"a/".iter().copied().cycle().take(1000).collect();
    let targets: [&[u8]; 6] = [
        b"../../anywhere/\xff\xfe",
        b"/absolute/path",
        b"plain",
        b"with space and\nnewline",
        b"trailing/",
        &long,
    ];
    let owner = Owner { uid: 3, gid: 4 };
    for (i, t) in targets.iter().enumerate() {
        let name = format!("s{i}");
        let a = must(s.symlink(&root(), &n(&name), t, owner), "symlink");
        assert_eq!(a.kind, FileKind::Symlink);
        assert_eq!(
            a.size,
            t.len() as u64,
            "size of a symlink is its target's length"
        );
        if s.capabilities().ownership {
            assert_eq!((a.uid, a.gid), (3, 4), "symlink owner");
        }
        assert_eq!(
            must(s.readlink(&p(&name)), "readlink"),
            *t,
            "target kept verbatim"
        );
        assert_eq!(must(s.stat(&p(&name)), "stat").identity, a.identity);
    }
    assert_err(
        s.symlink(&root(), &n("e"), b"", ROOT),
        &[Invalid],
        "empty target",
    );
    assert_err(
        s.symlink(&root(), &n("e"), b"a\0b", ROOT),
        &[Invalid],
        "NUL in target",
    );
    assert_err(
        s.stat(&p("e")),
        &[NotFound],
        "refused symlinks leave nothing",
    );

    new_file(s, "f", b"");
    new_dir(s, "d");
    for existing in ["s0", "f", "d"] {
        assert_err(
            s.symlink(&root(), &n(existing), b"x", ROOT),
            &[Exists],
            "symlink over an existing name",
        );
    }
    assert_eq!(must(s.readlink(&p("s0")), "readlink"), targets[0]);
    assert_err(s.readlink(&root()), &[Invalid], "readlink of the root");
    assert_err(s.readlink(&p("f")), &[Invalid], "readlink of a file");
    assert_err(s.readlink(&p("d")), &[Invalid], "readlink of a directory");
    assert_err(
        s.readlink(&p("missing")),
        &[NotFound],
        "readlink of a missing name",
    );
}

/// Names are byte strings: any valid [`Name`] round-trips through create,
/// lookup and list, distinct names stay distinct (case, prefixes, dots).
pub fn check_names_round_trip(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let name_max = must(s.statfs(), "statfs").name_max as usize;
    let long = vec![b'x'; crate::NAME_MAX];
    let plain: [&[u8]; 13] = [
        b"a",
        b"A",
        b"a.b",
        b"a b",
        b"ab",
        b"-dash",
        b"...",
        b".hidden",
        b"trailing ",
        b"tab\tname",
        b"new\nline",
        "emoji-\u{1F600}".as_bytes(),
        b"percent%2Fslash",
    ];
    let mut made = std::collections::BTreeSet::new();
    for raw in plain {
        let name = Name::new(raw).expect("valid name");
        must(
            s.create_file(&root(), &name, 0o644, ROOT, true),
            &format!("create {name:?}"),
        );
        made.insert(raw.to_vec());
    }
    // A store that keeps names as UTF-8 may refuse other bytes, as a
    // server insisting on UTF-8 does (RFC 8881 §14.4: NFS4ERR_INVAL).
    let latin1 = Name::new(b"caf\xe9").expect("valid name");
    match s.create_file(&root(), &latin1, 0o644, ROOT, true) {
        Ok(_) => {
            made.insert(latin1.as_bytes().to_vec());
        }
        Err(Invalid) => eprintln!("check_names_round_trip: the store refuses non-UTF-8 names"),
        Err(e) => panic!("create non-UTF-8 name: {e:?}"),
    }
    let long_name = Name::new(&long).expect("valid name");
    match s.create_file(&root(), &long_name, 0o644, ROOT, true) {
        Ok(_) => {
            made.insert(long.clone());
        }
        Err(NameTooLong) if name_max < long.len() => {}
        Err(e) => panic!(
            "create a {}-byte name (name_max {name_max}): {e:?}",
            long.len()
        ),
    }
    assert_eq!(
        names(s, ""),
        made,
        "the listing returns every name verbatim"
    );
    for raw in &made {
        let name = Name::new(raw).expect("valid name");
        let a = must(s.lookup(&root(), &name), &format!("lookup {name:?}"));
        assert_eq!(a.kind, FileKind::Regular);
        let path = root().join(&name);
        assert_eq!(must(s.stat(&path), "stat").identity, a.identity);
    }
    if s.capabilities().stable_identity {
        let a = must(s.lookup(&root(), &n("a")), "lookup a").identity;
        let upper = must(s.lookup(&root(), &n("A")), "lookup A").identity;
        assert_ne!(a, upper, "names differing in case are different objects");
    }

    // Names that are prefixes of each other, as key-value stores see them.
    new_dir(s, "pre");
    new_dir(s, "pre-fix");
    new_dir(s, "pre.d");
    new_file(s, "pre/in", b"1");
    new_file(s, "pre-fix/out", b"2");
    new_file(s, "pre.d/deep", b"3");
    assert_eq!(names(s, "pre"), name_set(&["in"]));
    assert_eq!(names(s, "pre-fix"), name_set(&["out"]));
    assert_err(
        s.lookup(&p("pre"), &n("out")),
        &[NotFound],
        "lookup of a sibling's entry",
    );
    must(s.remove(&p("pre"), &n("in")), "remove pre/in");
    must(s.rmdir(&root(), &n("pre")), "rmdir pre");
    assert_eq!(read_all(s, "pre-fix/out"), Ok(b"2".to_vec()));
    assert_eq!(read_all(s, "pre.d/deep"), Ok(b"3".to_vec()));
    assert_err(s.stat(&p("pre")), &[NotFound], "stat removed pre");
}

/// `create_file`: exclusive and not, exact mode and owner, the kinds that
/// are in the way, bad modes.
pub fn check_create_file(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let owner = Owner {
        uid: 1234,
        gid: 5678,
    };
    let Created {
        attrs: a,
        created,
        dir_after,
    } = must(
        s.create_file(&root(), &n("f"), 0o4750, owner, true),
        "create f",
    );
    assert!(created, "a new file is reported as created");
    assert_eq!((a.kind, a.size, a.nlink), (FileKind::Regular, 0, 1));
    // The directory's attributes a store reports with the create are the
    // ones a stat gives once it is done (an OPEN's change_info after).
    if let Some(d) = dir_after {
        let st = must(s.stat(&root()), "stat the root");
        assert_eq!(
            (d.kind, d.identity, d.change, d.mtime, d.size, d.nlink),
            (st.kind, st.identity, st.change, st.mtime, st.size, st.nlink),
            "the directory after the create"
        );
    }

    if caps.ownership {
        assert_eq!(
            (a.mode, a.uid, a.gid),
            (0o4750, 1234, 5678),
            "exact mode and owner"
        );
    }
    let st = must(s.stat(&p("f")), "stat f");
    assert_eq!(
        (st.identity, st.mode, st.uid, st.gid),
        (a.identity, a.mode, a.uid, a.gid)
    );

    assert_err(
        s.create_file(&root(), &n("f"), 0o644, ROOT, true),
        &[Exists],
        "exclusive create of an existing file",
    );
    put(s, "f", 0, b"abc", Stability::FileSync);
    let Created {
        attrs: b,
        created,
        dir_after,
    } = must(
        s.create_file(&root(), &n("f"), 0o600, ROOT, false),
        "non-exclusive create of an existing file",
    );
    assert!(!created, "an existing file is not reported as created");
    assert_eq!(dir_after, None, "nothing was created");
    assert_eq!(b.identity, a.identity, "the existing file is returned");
    assert_eq!(
        b.size, 3,
        "an existing file is returned unchanged (not truncated)"
    );
    if caps.ownership {
        assert_eq!(
            (b.mode, b.uid, b.gid),
            (0o4750, 1234, 5678),
            "mode and owner unchanged"
        );
    }
    assert_eq!(read_all(s, "f"), Ok(b"abc".to_vec()));

    new_dir(s, "d");
    assert_err(
        s.create_file(&root(), &n("d"), 0o644, ROOT, false),
        &[IsDir],
        "non-exclusive create over a directory",
    );
    assert_err(
        s.create_file(&root(), &n("d"), 0o644, ROOT, true),
        &[Exists],
        "exclusive create over a directory",
    );
    if caps.special_files {
        must(
            s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        assert_err(
            s.create_file(&root(), &n("fifo"), 0o644, ROOT, false),
            &[WrongType],
            "non-exclusive create over a fifo",
        );
        assert_err(
            s.create_file(&root(), &n("fifo"), 0o644, ROOT, true),
            &[Exists],
            "exclusive create over a fifo",
        );
    }
    for bad in [0o100644, 0o10644, 0o170000] {
        assert_err(
            s.create_file(&root(), &n("bad"), bad, ROOT, true),
            &[Invalid],
            "a mode with file-type bits",
        );
    }
    assert_err(
        s.stat(&p("bad")),
        &[NotFound],
        "a refused create leaves nothing",
    );

    // In a subdirectory, with another owner.
    let Created {
        attrs: c,
        created,
        dir_after,
    } = must(
        s.create_file(&p("d"), &n("g"), 0o600, Owner { uid: 7, gid: 8 }, false),
        "non-exclusive create of a new file",
    );
    assert!(created, "a non-exclusive create of a new name creates it");
    if let Some(d) = dir_after {
        let st = must(s.stat(&p("d")), "stat d");
        assert_eq!(
            (d.kind, d.identity, d.change, d.mtime, d.size, d.nlink),
            (st.kind, st.identity, st.change, st.mtime, st.size, st.nlink),
            "d after the create of d/g"
        );
    }
    if caps.ownership {
        assert_eq!((c.mode, c.uid, c.gid), (0o600, 7, 8));
    }
    assert_eq!(names(s, "d"), name_set(&["g"]));
}

/// `mkdir` and `rmdir`: modes, owners, the errors of both.
pub fn check_mkdir_rmdir(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let d = must(
        s.mkdir(&root(), &n("d"), 0o2775, Owner { uid: 7, gid: 8 }),
        "mkdir d",
    );
    assert_eq!(d.kind, FileKind::Directory);
    if caps.ownership {
        assert_eq!(
            (d.mode, d.uid, d.gid),
            (0o2775, 7, 8),
            "exact mode and owner"
        );
    }
    assert_err(
        s.mkdir(&root(), &n("d"), 0o755, ROOT),
        &[Exists],
        "mkdir existing",
    );
    new_file(s, "f", b"");
    assert_err(
        s.mkdir(&root(), &n("f"), 0o755, ROOT),
        &[Exists],
        "mkdir over a file",
    );
    assert_err(
        s.mkdir(&root(), &n("bad"), 0o40755, ROOT),
        &[Invalid],
        "mkdir type bits",
    );
    assert_err(
        s.stat(&p("bad")),
        &[NotFound],
        "a refused mkdir leaves nothing",
    );
    assert_err(
        s.mkdir(&p("missing"), &n("x"), 0o755, ROOT),
        &[NotFound],
        "mkdir in missing",
    );

    // REMOVE of a non-empty directory is NFS4ERR_NOTEMPTY (RFC 8881
    // §15.1.4.10), whichever of ENOTEMPTY and EEXIST rmdir(2) gave.
    new_file(s, "d/f", b"1");
    assert_err(s.rmdir(&root(), &n("d")), &[NotEmpty], "rmdir non-empty");
    assert_err(s.remove(&root(), &n("d")), &[IsDir], "remove a directory");
    assert_err(s.rmdir(&p("d"), &n("f")), &[NotDir], "rmdir a file");
    assert_err(
        s.rmdir(&root(), &n("missing")),
        &[NotFound],
        "rmdir missing",
    );
    assert_eq!(
        names(s, "d"),
        name_set(&["f"]),
        "refused calls changed nothing"
    );

    new_dir(s, "e");
    new_dir(s, "e/e1");
    new_dir(s, "e/e1/e2");
    assert_err(
        s.rmdir(&root(), &n("e")),
        &[NotEmpty],
        "rmdir with subdirectories",
    );
    must(s.rmdir(&p("e/e1"), &n("e2")), "rmdir e2");
    must(s.rmdir(&p("e"), &n("e1")), "rmdir e1");
    must(s.rmdir(&root(), &n("e")), "rmdir e");
    assert_err(s.stat(&p("e")), &[NotFound], "stat removed directory");

    if caps.symlinks {
        must(s.symlink(&root(), &n("sl"), b"d", ROOT), "symlink");
        assert_err(
            s.rmdir(&root(), &n("sl")),
            &[NotDir, Symlink],
            "rmdir a symlink",
        );
        assert_eq!(must(s.stat(&p("sl")), "stat sl").kind, FileKind::Symlink);
    }

    must(s.remove(&p("d"), &n("f")), "remove d/f");
    must(s.rmdir(&root(), &n("d")), "rmdir d");
    assert_err(s.stat(&p("d")), &[NotFound], "stat removed d");
    assert!(
        !names(s, "").contains(&b"d"[..]),
        "a removed directory is not listed"
    );
}

/// `remove` of every non-directory kind, returning the attributes from
/// just before removal.
pub fn check_remove(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let a = new_file(s, "f", b"hello");
    let gone = must(s.remove(&root(), &n("f")), "remove f");
    assert_eq!(gone.kind, FileKind::Regular);
    assert_eq!(
        (gone.size, gone.nlink),
        (5, 1),
        "attributes from before the removal"
    );
    assert_eq!(gone.identity, a.identity, "the removed object's identity");
    assert_err(s.stat(&p("f")), &[NotFound], "stat removed");
    assert_err(read_all(s, "f"), &[NotFound], "read removed");
    assert_err(s.remove(&root(), &n("f")), &[NotFound], "remove twice");
    assert_eq!(names(s, ""), name_set(&[]));

    new_dir(s, "d");
    assert_err(s.remove(&root(), &n("d")), &[IsDir], "remove a directory");
    assert_eq!(must(s.stat(&p("d")), "stat d").kind, FileKind::Directory);
    assert_err(
        s.remove(&p("missing"), &n("x")),
        &[NotFound],
        "remove in missing dir",
    );
    new_file(s, "g", b"");
    assert_err(s.remove(&p("g"), &n("x")), &[NotDir], "remove below a file");

    if caps.symlinks {
        must(s.symlink(&root(), &n("s"), b"d", ROOT), "symlink");
        assert_eq!(
            must(s.remove(&root(), &n("s")), "remove link").kind,
            FileKind::Symlink
        );
        assert_eq!(must(s.stat(&p("d")), "stat d").kind, FileKind::Directory);
    }
    if caps.special_files {
        must(
            s.mknod(&root(), &n("p"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        assert_eq!(
            must(s.remove(&root(), &n("p")), "remove fifo").kind,
            FileKind::Fifo
        );
    }
    if caps.hard_links {
        must(s.link(&p("g"), &root(), &n("h")), "link");
        let h = must(s.remove(&root(), &n("h")), "remove one link");
        assert_eq!(h.nlink, 2, "the link count from before the removal");
        assert_eq!(must(s.stat(&p("g")), "stat g").nlink, 1);
    }
    assert_eq!(names(s, ""), name_set(&["d", "g"]));
}

/// Renames of non-directories: replacing a file, across directories, onto
/// itself, and the errors.
pub fn check_rename_files(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let a = new_file(s, "a", b"AAAA");
    new_file(s, "b", b"BB");
    must(
        s.rename(&root(), &n("a"), &root(), &n("b")),
        "rename a over b",
    );
    assert_eq!(
        read_all(s, "b"),
        Ok(b"AAAA".to_vec()),
        "the target holds the source's data"
    );
    assert_err(s.stat(&p("a")), &[NotFound], "the source name is gone");
    assert_eq!(names(s, ""), name_set(&["b"]));
    if caps.stable_identity {
        assert_eq!(
            must(s.stat(&p("b")), "stat b").identity,
            a.identity,
            "identity kept"
        );
    }

    // Onto its own name: nothing happens.
    must(
        s.rename(&root(), &n("b"), &root(), &n("b")),
        "rename onto itself",
    );
    assert_eq!(read_all(s, "b"), Ok(b"AAAA".to_vec()));

    new_dir(s, "d");
    must(
        s.rename(&root(), &n("b"), &p("d"), &n("c")),
        "rename across directories",
    );
    assert_eq!(read_all(s, "d/c"), Ok(b"AAAA".to_vec()));
    assert_err(s.stat(&p("b")), &[NotFound], "moved away");
    if caps.stable_identity {
        assert_eq!(must(s.stat(&p("d/c")), "stat d/c").identity, a.identity);
    }

    new_dir(s, "e");
    assert_err(
        s.rename(&p("d"), &n("c"), &root(), &n("e")),
        &[IsDir],
        "a file over a directory",
    );
    assert_err(
        s.rename(&root(), &n("missing"), &root(), &n("x")),
        &[NotFound],
        "rename a missing name",
    );
    assert_err(
        s.rename(&p("d"), &n("c"), &p("missing"), &n("c")),
        &[NotFound],
        "rename into a missing directory",
    );
    new_file(s, "plain", b"");
    assert_err(
        s.rename(&p("d"), &n("c"), &p("plain"), &n("c")),
        &[NotDir],
        "rename into a file",
    );
    assert_eq!(
        read_all(s, "d/c"),
        Ok(b"AAAA".to_vec()),
        "refused renames changed nothing"
    );
    assert_eq!(names(s, "e"), name_set(&[]));

    if caps.hard_links {
        // Two names of one object: rename(2) does nothing.
        must(s.link(&p("d/c"), &root(), &n("h")), "link");
        must(
            s.rename(&root(), &n("h"), &p("d"), &n("c")),
            "rename onto another link",
        );
        assert_eq!(
            must(s.stat(&p("h")), "stat h").nlink,
            2,
            "both names remain"
        );
        assert_eq!(must(s.stat(&p("d/c")), "stat d/c").nlink, 2);

        // Replacing one name of a linked file leaves the other.
        new_file(s, "v", b"victim");
        must(s.link(&p("v"), &root(), &n("v2")), "link v2");
        new_file(s, "w", b"W");
        must(
            s.rename(&root(), &n("w"), &root(), &n("v")),
            "rename over a linked file",
        );
        assert_eq!(read_all(s, "v"), Ok(b"W".to_vec()));
        assert_eq!(read_all(s, "v2"), Ok(b"victim".to_vec()));
        assert_eq!(must(s.stat(&p("v2")), "stat v2").nlink, 1);
    }
}

/// Renames of directories: over empty and non-empty directories and files,
/// into their own subtree, and the store's [`DirRename`] limit.
pub fn check_rename_directories(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let limit = caps.dir_rename;

    // Three objects below `src`.
    let src = new_dir(s, "src");
    let file = new_file(s, "src/f", b"x");
    new_dir(s, "src/sub");
    new_file(s, "src/sub/g", b"y");
    let moved = s.rename(&root(), &n("src"), &root(), &n("moved"));
    if dir_rename_allows(limit, 3) {
        must(moved, "rename a directory with three objects below");
        assert_err(s.stat(&p("src")), &[NotFound], "the old name is gone");
        assert_eq!(read_all(s, "moved/f"), Ok(b"x".to_vec()));
        assert_eq!(read_all(s, "moved/sub/g"), Ok(b"y".to_vec()));
        assert_eq!(names(s, "moved"), name_set(&["f", "sub"]));
        if caps.stable_identity {
            assert_eq!(must(s.stat(&p("moved")), "stat").identity, src.identity);
            assert_eq!(must(s.stat(&p("moved/f")), "stat").identity, file.identity);
        }
    } else {
        assert_err(moved, &[CrossDevice], "a directory past the rename limit");
        assert_eq!(
            names(s, "src"),
            name_set(&["f", "sub"]),
            "the source is intact"
        );
        assert_eq!(read_all(s, "src/sub/g"), Ok(b"y".to_vec()));
        assert_err(
            s.stat(&p("moved")),
            &[NotFound],
            "nothing appeared at the target",
        );
    }

    // Empty directories move under every limit.
    new_dir(s, "e1");
    must(
        s.rename(&root(), &n("e1"), &root(), &n("e2")),
        "rename an empty directory",
    );
    new_dir(s, "e3");
    must(
        s.rename(&root(), &n("e2"), &root(), &n("e3")),
        "an empty dir over an empty dir",
    );
    assert_err(s.stat(&p("e2")), &[NotFound], "the source name is gone");
    assert_eq!(must(s.stat(&p("e3")), "stat e3").kind, FileKind::Directory);

    new_dir(s, "ne");
    new_file(s, "ne/x", b"");
    new_dir(s, "e4");
    // rename(2) gives ENOTEMPTY or EEXIST; RENAME answers NFS4ERR_EXIST
    // for both (RFC 8881 §18.26.3).
    assert_err(
        s.rename(&root(), &n("e4"), &root(), &n("ne")),
        &[NotEmpty, Exists],
        "a directory over a non-empty directory",
    );
    assert_eq!(names(s, "ne"), name_set(&["x"]));
    new_file(s, "file", b"F");
    assert_err(
        s.rename(&root(), &n("e4"), &root(), &n("file")),
        &[NotDir],
        "a directory over a file",
    );
    assert_err(
        s.rename(&root(), &n("file"), &root(), &n("e4")),
        &[IsDir],
        "a file over a directory",
    );
    assert_eq!(read_all(s, "file"), Ok(b"F".to_vec()));
    assert_eq!(must(s.stat(&p("e4")), "stat e4").kind, FileKind::Directory);

    // Into its own subtree: never (rename(2) EINVAL). `t` has one object
    // below, so a store whose limit refuses that may say so first.
    new_dir(s, "t");
    new_dir(s, "t/u");
    let subtree: &[StoreError] = if dir_rename_allows(limit, 1) {
        &[Invalid]
    } else {
        &[Invalid, CrossDevice]
    };
    assert_err(
        s.rename(&root(), &n("t"), &p("t/u"), &n("t")),
        subtree,
        "a directory into its own subtree",
    );
    assert_err(
        s.rename(&root(), &n("t"), &p("t"), &n("x")),
        subtree,
        "a directory into itself",
    );
    // Onto its own ancestor: the ancestor is not empty.
    assert_err(
        s.rename(&p("t"), &n("u"), &root(), &n("t")),
        &[NotEmpty, Exists, Invalid],
        "a directory onto its parent",
    );
    assert_eq!(
        names(s, "t"),
        name_set(&["u"]),
        "the refused renames changed nothing"
    );

    // Across directories, with a subtree.
    new_dir(s, "m");
    new_dir(s, "m/n");
    new_file(s, "m/n/z", b"z");
    let r = s.rename(&root(), &n("m"), &p("e3"), &n("m2"));
    if dir_rename_allows(limit, 2) {
        must(r, "move a directory into another");
        assert_eq!(read_all(s, "e3/m2/n/z"), Ok(b"z".to_vec()));
        assert_err(s.stat(&p("m")), &[NotFound], "moved away");
    } else {
        assert_err(r, &[CrossDevice], "a directory past the rename limit");
        assert_eq!(read_all(s, "m/n/z"), Ok(b"z".to_vec()));
    }

    match limit {
        DirRename::Any => {}
        DirRename::EmptyOnly => {
            new_dir(s, "one");
            new_file(s, "one/f", b"");
            assert_err(
                s.rename(&root(), &n("one"), &root(), &n("one2")),
                &[CrossDevice],
                "a non-empty directory under EmptyOnly",
            );
            assert_eq!(names(s, "one"), name_set(&["f"]));
        }
        DirRename::UpTo(max) if max <= 200 => {
            new_dir(s, "lim");
            for i in 0..max {
                new_file(s, &format!("lim/f{i}"), b"");
            }
            must(
                s.rename(&root(), &n("lim"), &root(), &n("lim2")),
                "a directory exactly at the limit",
            );
            assert_eq!(names(s, "lim2").len() as u64, max);
            new_file(s, "lim2/extra", b"");
            assert_err(
                s.rename(&root(), &n("lim2"), &root(), &n("lim3")),
                &[CrossDevice],
                "a directory one object past the limit",
            );
            assert_eq!(
                names(s, "lim2").len() as u64,
                max + 1,
                "the source is intact"
            );
            assert_err(
                s.stat(&p("lim3")),
                &[NotFound],
                "nothing appeared at the target",
            );
        }
        DirRename::UpTo(max) => eprintln!(
            "check_rename_directories: the limit ({max} objects) is too large to \
             build here; only renames below it were checked"
        ),
    }
}
