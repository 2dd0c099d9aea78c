//! Metadata: SETATTR of mode, owner and times, object identities and the
//! `change` attribute.

use super::kit::*;
use super::{Factory, UNSUPPORTED};
use crate::{FileKind, Owner, SetAttrs, SetTime, Stability, Store, StoreError, Timespec, XattrSet};

use StoreError::*;

fn ts(sec: i64, nsec: u32) -> Timespec {
    Timespec { sec, nsec }
}

/// Mode and owner changes, applied in the order owner → mode, and the
/// bad modes. Without [`crate::Capabilities::ownership`] they are
/// `Unsupported` (the server answers NFS4ERR_ATTRNOTSUPP).
pub fn check_setattr_mode_owner(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    new_file(s, "f", b"data");
    let fp = p("f");
    let mode = |m: u32| SetAttrs {
        mode: Some(m),
        ..Default::default()
    };
    if !caps.ownership {
        not_applicable(
            "check_setattr_mode_owner",
            "no owner or mode recorded: checking changes are refused",
        );
        let before = must(s.stat(&fp), "stat");
        assert_err(s.setattr(&fp, &mode(0o600)), UNSUPPORTED, "chmod");
        let chown = SetAttrs {
            uid: Some(1000),
            ..Default::default()
        };
        assert_err(s.setattr(&fp, &chown), UNSUPPORTED, "chown");
        let chgrp = SetAttrs {
            gid: Some(1000),
            ..Default::default()
        };
        assert_err(s.setattr(&fp, &chgrp), UNSUPPORTED, "chgrp");
        let after = must(s.stat(&fp), "stat");
        assert_eq!(
            (after.mode, after.uid, after.gid),
            (before.mode, before.uid, before.gid)
        );
        return;
    }

    let a = must(s.setattr(&fp, &mode(0o1640)), "chmod");
    assert_eq!(a.mode, 0o1640);
    assert_eq!(must(s.stat(&fp), "stat").mode, 0o1640, "the mode sticks");
    let a = must(
        s.setattr(
            &fp,
            &SetAttrs {
                uid: Some(1000),
                gid: Some(1001),
                ..Default::default()
            },
        ),
        "chown",
    );
    assert_eq!((a.uid, a.gid), (1000, 1001));
    // chown(2) may clear set-user-ID; the mode set in the same call comes
    // after it and stays.
    let a = must(
        s.setattr(
            &fp,
            &SetAttrs {
                uid: Some(2000),
                mode: Some(0o6755),
                ..Default::default()
            },
        ),
        "chown and chmod",
    );
    assert_eq!(
        (a.uid, a.gid, a.mode),
        (2000, 1001, 0o6755),
        "owner before mode"
    );
    for bad in [0o10000, 0o100644, 0o170000] {
        assert_err(
            s.setattr(&fp, &mode(bad)),
            &[Invalid],
            "a mode with type bits",
        );
    }
    assert_eq!(
        must(s.stat(&fp), "stat").mode,
        0o6755,
        "refused modes change nothing"
    );
    assert_eq!(
        read_all(s, "f"),
        Ok(b"data".to_vec()),
        "metadata changes keep the data"
    );

    new_dir(s, "d");
    let d = must(
        s.setattr(
            &p("d"),
            &SetAttrs {
                mode: Some(0o2711),
                uid: Some(5),
                gid: Some(6),
                ..Default::default()
            },
        ),
        "chmod and chown a directory",
    );
    assert_eq!(
        (d.mode, d.uid, d.gid, d.kind),
        (0o2711, 5, 6, FileKind::Directory)
    );
    assert_eq!(
        must(s.setattr(&root(), &mode(0o711)), "chmod root").mode,
        0o711
    );
    assert_err(
        s.setattr(&p("missing"), &mode(0o600)),
        &[NotFound],
        "chmod missing",
    );

    // Nothing to change: the attributes as they are.
    let before = must(s.stat(&fp), "stat");
    let same = must(s.setattr(&fp, &SetAttrs::default()), "empty setattr");
    assert_eq!(same, before, "an empty SETATTR changes nothing");

    if caps.symlinks {
        must(s.symlink(&root(), &n("s"), b"d", ROOT), "symlink");
        match s.setattr(&p("s"), &mode(0o700)) {
            Ok(a) => assert_eq!((a.kind, a.mode), (FileKind::Symlink, 0o700)),
            Err(Unsupported) => {} // Linux has no lchmod
            Err(e) => panic!("chmod of a symlink: {e:?}"),
        }
        let l = must(
            s.setattr(
                &p("s"),
                &SetAttrs {
                    uid: Some(4242),
                    ..Default::default()
                },
            ),
            "chown a symlink",
        );
        assert_eq!(
            (l.kind, l.uid),
            (FileKind::Symlink, 4242),
            "the link itself changes"
        );
        assert_eq!(
            must(s.stat(&p("d")), "stat d").uid,
            5,
            "its target does not"
        );
    }
    if caps.special_files {
        let owner = Owner { uid: 1, gid: 2 };
        must(
            s.mknod(&root(), &n("fifo"), FileKind::Fifo, 0o600, (0, 0), owner),
            "mkfifo",
        );
        assert_eq!(
            must(s.setattr(&p("fifo"), &mode(0o640)), "chmod fifo").mode,
            0o640
        );
    }
}

/// Times set by the client are exact, server time is now, bad nanoseconds
/// are refused, and times are applied after the size (RFC 8881 §18.30).
pub fn check_setattr_times(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_file(s, "f", b"0123456789");
    let fp = p("f");
    let a = must(
        s.setattr(
            &fp,
            &SetAttrs {
                atime: Some(SetTime::Client(1_000_000, 5)),
                mtime: Some(SetTime::Client(2_000_000, 999_999_999)),
                ..Default::default()
            },
        ),
        "set both times",
    );
    assert_eq!(
        (a.atime, a.mtime),
        (ts(1_000_000, 5), ts(2_000_000, 999_999_999))
    );
    let st = must(s.stat(&fp), "stat");
    assert_eq!((st.atime, st.mtime), (a.atime, a.mtime), "times stick");

    let b = must(
        s.setattr(
            &fp,
            &SetAttrs {
                mtime: Some(SetTime::ServerNow),
                ..Default::default()
            },
        ),
        "mtime to server time",
    );
    assert!(
        b.mtime > ts(2_000_000, 999_999_999),
        "server time is now: {:?}",
        b.mtime
    );
    assert_eq!(b.atime, ts(1_000_000, 5), "atime untouched");
    let c = must(
        s.setattr(
            &fp,
            &SetAttrs {
                atime: Some(SetTime::ServerNow),
                ..Default::default()
            },
        ),
        "atime to server time",
    );
    assert!(
        c.atime > ts(1_000_000, 5),
        "server time is now: {:?}",
        c.atime
    );
    assert_eq!(c.mtime, b.mtime, "mtime untouched");

    // Times after size: a truncation would set mtime to now otherwise.
    let d = must(
        s.setattr(
            &fp,
            &SetAttrs {
                size: Some(4),
                mtime: Some(SetTime::Client(3_000_000, 0)),
                ..Default::default()
            },
        ),
        "truncate and set mtime",
    );
    assert_eq!(
        (d.size, d.mtime),
        (4, ts(3_000_000, 0)),
        "times are applied last"
    );

    for bad in [
        SetAttrs {
            atime: Some(SetTime::Client(0, 1_000_000_000)),
            ..Default::default()
        },
        SetAttrs {
            mtime: Some(SetTime::Client(5, u32::MAX)),
            ..Default::default()
        },
    ] {
        assert_err(
            s.setattr(&fp, &bad),
            &[Invalid],
            "nanoseconds past a second",
        );
    }
    let e = must(s.stat(&fp), "stat");
    assert_eq!(
        (e.mtime, e.size),
        (ts(3_000_000, 0), 4),
        "refused times change nothing"
    );

    // Writes move mtime.
    put(s, "f", 0, b"w", Stability::FileSync);
    let w = must(s.stat(&fp), "stat");
    assert!(
        w.mtime > ts(3_000_000, 0),
        "a write updates mtime: {:?}",
        w.mtime
    );
    assert!(w.ctime >= e.ctime, "a write does not move ctime back");

    // Directories: times set, and an entry created moves mtime.
    new_dir(s, "d");
    let dm = must(
        s.setattr(
            &p("d"),
            &SetAttrs {
                mtime: Some(SetTime::Client(4_000_000, 7)),
                ..Default::default()
            },
        ),
        "set a directory's mtime",
    );
    assert_eq!(dm.mtime, ts(4_000_000, 7));
    new_file(s, "d/x", b"");
    assert!(
        must(s.stat(&p("d")), "stat d").mtime > ts(4_000_000, 7),
        "a new entry updates the directory's mtime"
    );
}

/// Identities: consistent between calls; with stable identity the same
/// across data changes and renames, different for different objects and
/// for an object deleted and recreated at the same name.
pub fn check_identity(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    let a = new_file(s, "a", b"one");
    assert_eq!(
        must(s.stat(&p("a")), "stat").identity,
        a.identity,
        "stat twice"
    );
    assert_eq!(
        must(s.lookup(&root(), &n("a")), "lookup").identity,
        a.identity
    );
    assert_eq!(a.fileid(), a.identity.object);
    if !caps.stable_identity {
        not_applicable(
            "check_identity",
            "no stable identity: checking only that it is consistent",
        );
        return;
    }
    let b = new_file(s, "b", b"");
    let d = new_dir(s, "d");
    let r = must(s.stat(&root()), "stat root");
    let ids = [a.identity, b.identity, d.identity, r.identity];
    for (i, x) in ids.iter().enumerate() {
        for y in &ids[i + 1..] {
            assert_ne!(x, y, "live objects have distinct identities");
            assert!(
                x.space != y.space || x.object != y.object,
                "live objects have distinct fileids"
            );
        }
    }

    let same = |what: &str, path: &str| {
        let now = must(s.stat(&p(path)), "stat").identity;
        assert_eq!(now, a.identity, "identity changed by {what}");
    };
    put(s, "a", 3, b" two", Stability::Unstable);
    same("a write", "a");
    must(
        s.setattr(
            &p("a"),
            &SetAttrs {
                size: Some(1),
                mtime: Some(SetTime::Client(10, 0)),
                ..Default::default()
            },
        ),
        "setattr",
    );
    same("a setattr", "a");
    if caps.ownership {
        must(
            s.setattr(
                &p("a"),
                &SetAttrs {
                    mode: Some(0o600),
                    uid: Some(9),
                    ..Default::default()
                },
            ),
            "chmod",
        );
        same("chmod and chown", "a");
    }
    if caps.xattrs {
        must(
            s.setxattr(&p("a"), b"k", b"v", XattrSet::Either),
            "setxattr",
        );
        same("an xattr", "a");
    }
    must(s.rename(&root(), &n("a"), &root(), &n("a2")), "rename");
    same("a rename", "a2");
    must(
        s.rename(&root(), &n("a2"), &p("d"), &n("a3")),
        "rename across",
    );
    same("a rename across directories", "d/a3");
    new_file(s, "victim", b"");
    must(
        s.rename(&p("d"), &n("a3"), &root(), &n("victim")),
        "rename over",
    );
    same("a rename over another file", "victim");
    if super::dir_rename_allows(caps.dir_rename, 1) {
        new_file(s, "d/inner", b"");
    }
    must(
        s.rename(&root(), &n("d"), &root(), &n("d2")),
        "rename a directory",
    );
    assert_eq!(
        must(s.stat(&p("d2")), "stat").identity,
        d.identity,
        "directory renamed"
    );

    // Deleted and recreated at one name: another object, even where the
    // store reuses its object numbers.
    for i in 0..20 {
        let old = new_file(s, "r", b"x");
        must(s.remove(&root(), &n("r")), "remove");
        let new = new_file(s, "r", b"y");
        assert_ne!(
            old.identity, new.identity,
            "recreated file {i} looks like the old one"
        );
        must(s.remove(&root(), &n("r")), "remove");
        let old = new_dir(s, "rd");
        must(s.rmdir(&root(), &n("rd")), "rmdir");
        let new = new_dir(s, "rd");
        assert_ne!(old.identity, new.identity, "recreated directory {i}");
        must(s.rmdir(&root(), &n("rd")), "rmdir");
    }
}

/// The `change` attribute moves on every change of data or metadata
/// (RFC 8881 §5.8.1.4), a directory's on every change of its entries
/// (clients validate their caches with it, §10.8), and stays put when
/// nothing changes.
pub fn check_change_attribute(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let caps = s.capabilities();
    new_file(s, "f", b"0123");
    new_dir(s, "d");
    let mut tracker = Tracker::new(s);
    tracker.same("f", "nothing");
    tracker.same("d", "nothing");

    put(s, "f", 0, b"x", Stability::Unstable);
    tracker.moved("f", "a write");
    put(s, "f", 0, b"x", Stability::Unstable);
    tracker.moved("f", "a write of the same bytes");
    let set = |sa: SetAttrs, what: &str| must(s.setattr(&p("f"), &sa), what);
    set(
        SetAttrs {
            size: Some(2),
            ..Default::default()
        },
        "truncate",
    );
    tracker.moved("f", "a truncation");
    set(
        SetAttrs {
            mtime: Some(SetTime::Client(7, 0)),
            ..Default::default()
        },
        "utimes",
    );
    tracker.moved("f", "setting mtime");
    if caps.ownership {
        set(
            SetAttrs {
                mode: Some(0o600),
                ..Default::default()
            },
            "chmod",
        );
        tracker.moved("f", "a chmod");
        set(
            SetAttrs {
                uid: Some(77),
                ..Default::default()
            },
            "chown",
        );
        tracker.moved("f", "a chown");
    }
    if caps.xattrs {
        must(
            s.setxattr(&p("f"), b"k", b"v", XattrSet::Either),
            "setxattr",
        );
        tracker.moved("f", "setting an xattr");
        must(s.removexattr(&p("f"), b"k"), "removexattr");
        tracker.moved("f", "removing an xattr");
    }
    if caps.hard_links {
        must(s.link(&p("f"), &p("d"), &n("hl")), "link");
        tracker.moved("f", "a new hard link");
        tracker.moved("d", "a hard link created in it");
        must(s.remove(&p("d"), &n("hl")), "remove link");
        tracker.moved("f", "a hard link removed");
        tracker.moved("d", "a hard link removed from it");
    }

    // Nothing changes: reads, lookups, listings, commits.
    read_all(s, "f").ok();
    must(s.lookup(&root(), &n("f")), "lookup");
    list_all(s, "d");
    must(s.commit(&p("f")), "commit");
    if caps.xattrs {
        s.getxattr(&p("f"), b"k").ok();
        must(s.listxattr(&p("f")), "listxattr");
    }
    tracker.same("f", "reads, lookups and listings");
    tracker.same("d", "reads, lookups and listings");

    // A directory's entries.
    new_file(s, "d/a", b"");
    tracker.moved("d", "a file created in it");
    new_dir(s, "d/sub");
    tracker.moved("d", "a directory created in it");
    if caps.symlinks {
        must(s.symlink(&p("d"), &n("sl"), b"a", ROOT), "symlink");
        tracker.moved("d", "a symlink created in it");
    }
    must(
        s.rename(&p("d"), &n("a"), &p("d"), &n("b")),
        "rename inside",
    );
    tracker.moved("d", "a rename inside it");
    must(s.rename(&p("d"), &n("b"), &root(), &n("out")), "rename out");
    tracker.moved("d", "an entry renamed out of it");
    must(s.rename(&root(), &n("out"), &p("d"), &n("in")), "rename in");
    tracker.moved("d", "an entry renamed into it");
    must(s.remove(&p("d"), &n("in")), "remove");
    tracker.moved("d", "an entry removed");
    must(s.rmdir(&p("d"), &n("sub")), "rmdir");
    tracker.moved("d", "a subdirectory removed");
    if caps.ownership {
        must(
            s.setattr(
                &p("d"),
                &SetAttrs {
                    mode: Some(0o700),
                    ..Default::default()
                },
            ),
            "chmod d",
        );
        tracker.moved("d", "a chmod");
    }
}

/// Remembers `change` per path and asserts how it moved.
struct Tracker<'a> {
    s: &'a dyn Store,
    seen: std::collections::HashMap<String, u64>,
}

impl<'a> Tracker<'a> {
    fn new(s: &'a dyn Store) -> Tracker<'a> {
        Tracker {
            s,
            seen: Default::default(),
        }
    }

    fn now(&self, path: &str) -> u64 {
        must(self.s.stat(&p(path)), &format!("stat {path}")).change
    }

    #[track_caller]
    fn moved(&mut self, path: &str, what: &str) {
        let now = self.now(path);
        if let Some(before) = self.seen.insert(path.to_string(), now) {
            assert_ne!(now, before, "change of {path:?} did not move after {what}");
        }
    }

    #[track_caller]
    fn same(&mut self, path: &str, what: &str) {
        let now = self.now(path);
        if let Some(before) = self.seen.insert(path.to_string(), now) {
            assert_eq!(now, before, "change of {path:?} moved after {what}");
        }
    }
}
