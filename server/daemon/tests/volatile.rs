//! Volatile and persistent filehandles end to end (docs/filehandles.md):
//! expiry on rename (files, directories with their subtrees), at reboot
//! and on migration; open files keeping their handle until the last close
//! (FH4_NOEXPIRE_WITH_OPEN) or RENAME/REMOVE refused with FILE_OPEN;
//! changes behind the server's back; `expired_error`; the per-export
//! `fh_expire_type`; and persistent handles that never change.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::{Client, SessionOptions};
use nfs4d_xdr::nfs4::*;

const FATTR4_TYPE: u32 = 1;
const FATTR4_FH_EXPIRE_TYPE: u32 = 2;

const FH4_PERSISTENT: u32 = 0;
const FH4_NOEXPIRE_WITH_OPEN: u32 = 1;
const FH4_VOLATILE_ANY: u32 = 2;
const FH4_VOL_MIGRATION: u32 = 4;
const FH4_VOL_RENAME: u32 = 8;

use nfsstat4::{NFS4ERR_BADHANDLE, NFS4ERR_FHEXPIRED, NFS4ERR_FILE_OPEN, NFS4ERR_STALE, NFS4_OK};

// ---- helpers ----

fn session(srv: &TestServer, owner: &str) -> Client {
    session_as(srv, owner, None)
}

fn session_as(srv: &TestServer, owner: &str, implementation: Option<&str>) -> Client {
    let mut c = srv.client(1);
    let o = SessionOptions {
        impl_name: implementation.map(str::to_string),
        ..SessionOptions::default()
    };
    c.establish41_with(owner.as_bytes(), &o).expect("session");
    c
}

/// The handle of `path` (components below the pseudo root).
fn fh_of(c: &mut Client, path: &str) -> Vec<u8> {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    ops.extend(path.split('/').filter(|s| !s.is_empty()).map(lookup));
    ops.push(nfs_argop4::OP_GETFH);
    let r = c.compound(ops).expect("lookup");
    ops::fh_of(&r).unwrap_or_else(|| panic!("LOOKUP {path}: {:?}", r.status))
}

/// PUTFH + GETATTR(type): the status a client sees when it uses `fh`.
fn use_fh(c: &mut Client, fh: &[u8]) -> nfsstat4 {
    c.compound(vec![putfh(fh), getattr(&[FATTR4_TYPE])])
        .expect("compound")
        .status
}

/// Looks `path` up again and uses the handle obtained.
fn use_fresh(c: &mut Client, path: &str) -> nfsstat4 {
    let fh = fh_of(c, path);
    use_fh(c, &fh)
}

fn fh_expire_type(c: &mut Client, fh: &[u8]) -> u32 {
    let r = c
        .compound(vec![putfh(fh), getattr(&[FATTR4_FH_EXPIRE_TYPE])])
        .expect("getattr");
    match r.resarray.last() {
        Some(nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok))) => {
            u32::from_be_bytes(ok.obj_attributes.attr_vals[..4].try_into().expect("u32"))
        }
        other => panic!("GETATTR fh_expire_type: {other:?}"),
    }
}

fn rename(c: &mut Client, src_dir: &[u8], old: &str, dst_dir: &[u8], new: &str) -> nfsstat4 {
    c.compound(vec![
        putfh(src_dir),
        nfs_argop4::OP_SAVEFH,
        putfh(dst_dir),
        ops::rename(old, new),
    ])
    .expect("rename")
    .status
}

fn remove(c: &mut Client, dir: &[u8], name: &str) -> nfsstat4 {
    c.compound(vec![putfh(dir), ops::remove(name)])
        .expect("remove")
        .status
}

/// OPEN (read+write, no create) of `name` in `dir`: the open stateid.
fn open(c: &mut Client, dir: &[u8], name: &str) -> stateid4 {
    let r = c
        .compound(vec![
            putfh(dir),
            open_op(
                c.clientid,
                format!("owner-{name}").as_bytes(),
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                no_create(),
                claim_null(name),
            ),
        ])
        .expect("open");
    match open_ok(&r) {
        Some(ok) => ok.stateid.clone(),
        None => panic!("OPEN {name}: {:?}", r.status),
    }
}

fn close(c: &mut Client, fh: &[u8], sid: &stateid4) -> nfsstat4 {
    c.compound(vec![putfh(fh), ops::close(0, sid)])
        .expect("close")
        .status
}

/// A tree in the backing directory: d/ d/sub/ d/sub/f d/g top
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("d/sub")).unwrap();
    std::fs::write(root.join("d/sub/f"), b"f").unwrap();
    std::fs::write(root.join("d/g"), b"g").unwrap();
    std::fs::write(root.join("top"), b"top").unwrap();
}

fn volatile(extra: &[&str]) -> TestServer {
    let mut args = vec!["--filehandles", "volatile", "--expired-error", "fhexpired"];
    args.extend_from_slice(extra);
    let srv = TestServer::start(&args);
    make_tree(&srv.export);
    srv
}

fn persistent() -> TestServer {
    let srv = TestServer::start(&[]);
    make_tree(&srv.export);
    srv
}

fn ctl_migrate(srv: &TestServer, export: &str, to: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .args(["ctl", "migrate", "--state-dir"])
        .arg(&srv.state)
        .args(["--export", export, "--to"])
        .arg(to)
        .output()
        .expect("run nfs4d ctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `cp -a`: a copy with new inodes, same paths, types and contents.
fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

// ---- rename ----

#[test]
fn rename_of_a_file_expires_its_handle_in_volatile_mode_only() {
    for (srv, want) in [(volatile(&[]), NFS4ERR_FHEXPIRED), (persistent(), NFS4_OK)] {
        let mut c = session(&srv, "rename-file");
        let root = fh_of(&mut c, "");
        let top = fh_of(&mut c, "top");
        assert_eq!(rename(&mut c, &root, "top", &root, "top2"), NFS4_OK);
        assert_eq!(use_fh(&mut c, &top), want, "old handle after rename");
        let fresh = fh_of(&mut c, "top2");
        assert_eq!(use_fh(&mut c, &fresh), NFS4_OK);
        if want == NFS4_OK {
            assert_eq!(fresh, top, "persistent handles never change");
        }
        assert_eq!(use_fh(&mut c, &root), NFS4_OK, "export root never expires");
    }
}

#[test]
fn rename_of_a_directory_expires_the_handles_below_it() {
    let srv = volatile(&[]);
    let mut c = session(&srv, "rename-dir");
    let root = fh_of(&mut c, "");
    let (d, sub, f, g, top) = (
        fh_of(&mut c, "d"),
        fh_of(&mut c, "d/sub"),
        fh_of(&mut c, "d/sub/f"),
        fh_of(&mut c, "d/g"),
        fh_of(&mut c, "top"),
    );
    assert_eq!(rename(&mut c, &root, "d", &root, "e"), NFS4_OK);
    for (what, fh) in [
        ("dir", &d),
        ("subdir", &sub),
        ("grandchild", &f),
        ("child", &g),
    ] {
        assert_eq!(use_fh(&mut c, fh), NFS4ERR_FHEXPIRED, "{what}");
    }
    assert_eq!(
        use_fh(&mut c, &top),
        NFS4_OK,
        "objects outside the renamed tree are untouched"
    );
    // Looking the objects up again gives working handles.
    let f2 = fh_of(&mut c, "e/sub/f");
    assert_ne!(f2, f);
    assert_eq!(use_fh(&mut c, &f2), NFS4_OK);
    // A rename inside the same directory with a child handle held.
    let e = fh_of(&mut c, "e");
    assert_eq!(rename(&mut c, &e, "sub", &e, "sub2"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &f2), NFS4ERR_FHEXPIRED);
    assert_eq!(use_fh(&mut c, &e), NFS4_OK, "the parent was not renamed");
}

#[test]
fn delete_and_recreate_under_the_same_name_is_stale_in_both_modes() {
    for srv in [volatile(&[]), persistent()] {
        let mut c = session(&srv, "recreate");
        let root = fh_of(&mut c, "");
        let top = fh_of(&mut c, "top");
        assert_eq!(remove(&mut c, &root, "top"), NFS4_OK);
        assert_eq!(
            use_fh(&mut c, &top),
            NFS4ERR_STALE,
            "removed through the server: STALE"
        );
        std::fs::write(srv.export.join("top"), b"new").unwrap();
        let new = fh_of(&mut c, "top");
        assert_ne!(new, top, "a new object gets a new handle");
        assert_eq!(
            use_fh(&mut c, &top),
            NFS4ERR_STALE,
            "the old handle never reaches the new object"
        );
        assert_eq!(use_fh(&mut c, &new), NFS4_OK);
    }
}

// ---- open files ----

#[test]
fn open_file_renamed_keeps_its_handle_until_the_last_close() {
    let srv = volatile(&[]);
    let mut c = session(&srv, "open-rename");
    let root = fh_of(&mut c, "");
    let d = fh_of(&mut c, "d");
    let g = fh_of(&mut c, "d/g");
    let sub_f = fh_of(&mut c, "d/sub/f");
    let sid = open(&mut c, &d, "g");
    assert_eq!(rename(&mut c, &d, "g", &d, "g2"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &g), NFS4_OK, "open: FH4_NOEXPIRE_WITH_OPEN");
    // The directory above it is renamed too: the open file still works,
    // a closed sibling below does not.
    assert_eq!(rename(&mut c, &root, "d", &root, "dd"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &g), NFS4_OK);
    assert_eq!(use_fh(&mut c, &sub_f), NFS4ERR_FHEXPIRED);
    assert_eq!(close(&mut c, &g, &sid), NFS4_OK);
    assert_eq!(
        use_fh(&mut c, &g),
        NFS4ERR_FHEXPIRED,
        "expired at the last close"
    );
    assert_eq!(use_fresh(&mut c, "dd/g2"), NFS4_OK);
}

#[test]
fn without_noexpire_with_open_renames_and_removes_of_open_files_are_refused() {
    let srv = volatile(&["--noexpire-with-open", "false"]);
    let mut c = session(&srv, "open-refuse");
    let root = fh_of(&mut c, "");
    assert_eq!(fh_expire_type(&mut c, &root), FH4_VOLATILE_ANY);
    let d = fh_of(&mut c, "d");
    let sub = fh_of(&mut c, "d/sub");
    let f = fh_of(&mut c, "d/sub/f");
    let sid = open(&mut c, &sub, "f");
    assert_eq!(
        rename(&mut c, &sub, "f", &sub, "f2"),
        NFS4ERR_FILE_OPEN,
        "the open file"
    );
    assert_eq!(
        rename(&mut c, &root, "d", &root, "e"),
        NFS4ERR_FILE_OPEN,
        "a directory on its path"
    );
    assert_eq!(rename(&mut c, &d, "sub", &d, "sub2"), NFS4ERR_FILE_OPEN);
    assert_eq!(
        rename(&mut c, &d, "g", &sub, "f"),
        NFS4ERR_FILE_OPEN,
        "over the open file"
    );
    assert_eq!(remove(&mut c, &sub, "f"), NFS4ERR_FILE_OPEN);
    assert!(srv.log().contains("NFS4ERR_FILE_OPEN"));
    // Unrelated objects are not affected.
    assert_eq!(rename(&mut c, &root, "top", &root, "top2"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &f), NFS4_OK);
    assert_eq!(close(&mut c, &f, &sid), NFS4_OK);
    assert_eq!(
        rename(&mut c, &root, "d", &root, "e"),
        NFS4_OK,
        "allowed once closed"
    );
    assert_eq!(use_fh(&mut c, &f), NFS4ERR_FHEXPIRED);
}

// ---- reboot ----

#[test]
fn restart_expires_volatile_handles_but_not_root_handles() {
    let mut srv = volatile(&[]);
    let mut c = session(&srv, "restart");
    let root = fh_of(&mut c, "");
    let f = fh_of(&mut c, "d/sub/f");
    let d = fh_of(&mut c, "d");
    drop(c);
    srv.restart();
    let mut c = session(&srv, "restart-2");
    assert_eq!(use_fh(&mut c, &f), NFS4ERR_FHEXPIRED);
    assert_eq!(use_fh(&mut c, &d), NFS4ERR_FHEXPIRED);
    assert_eq!(use_fh(&mut c, &root), NFS4_OK, "export root never expires");
    assert_eq!(fh_of(&mut c, ""), root, "and does not change");
    assert_eq!(use_fresh(&mut c, "d/sub/f"), NFS4_OK);
}

#[test]
fn persistent_handles_are_byte_identical_across_restarts_next_to_a_volatile_export() {
    let conf = r#"
        [[export]]
        path = "/p"
        dir = "{export}/p"
        [[export]]
        path = "/v"
        dir = "{export}/v"
        filehandles = "volatile"
        expired_error = "fhexpired"
    "#;
    let mut srv = TestServer::start_with_config(conf, &[]);
    for e in ["p", "v"] {
        make_tree(&srv.export.join(e));
    }
    let mut c = session(&srv, "mixed");
    let pf = fh_of(&mut c, "p/d/sub/f");
    let vf = fh_of(&mut c, "v/d/sub/f");
    let proot = fh_of(&mut c, "p");
    let pseudo = fh_of(&mut c, "");
    drop(c);
    srv.restart();
    let mut c = session(&srv, "mixed-2");
    assert_eq!(fh_of(&mut c, "p/d/sub/f"), pf, "byte-identical");
    assert_eq!(use_fh(&mut c, &pf), NFS4_OK);
    assert_eq!(use_fh(&mut c, &vf), NFS4ERR_FHEXPIRED);
    assert_eq!(fh_of(&mut c, "p"), proot);
    assert_eq!(
        fh_of(&mut c, ""),
        pseudo,
        "the pseudo filesystem is persistent"
    );
    assert_eq!(use_fh(&mut c, &pseudo), NFS4_OK);
}

#[test]
fn expire_on_selects_the_events() {
    // Rename only: a restart keeps handles, a rename expires them.
    let mut srv = volatile(&["--expire-on", "rename"]);
    let mut c = session(&srv, "rename-only");
    let root = fh_of(&mut c, "");
    assert_eq!(fh_expire_type(&mut c, &root), FH4_VOL_RENAME);
    let f = fh_of(&mut c, "d/sub/f");
    let top = fh_of(&mut c, "top");
    drop(c);
    srv.restart();
    // The same client again: its RECLAIM_COMPLETE ends grace, which would
    // hold back the RENAME (RFC 8881 §8.4.2.1).
    let mut c = session(&srv, "rename-only");
    assert_eq!(use_fh(&mut c, &f), NFS4_OK, "no reboot expiry");
    assert_eq!(rename(&mut c, &root, "top", &root, "top2"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &top), NFS4ERR_FHEXPIRED);
    drop(c);
    // Reboot only: a rename keeps handles, a restart expires them.
    let mut srv = volatile(&["--expire-on", "reboot"]);
    let mut c = session(&srv, "reboot-only");
    let root = fh_of(&mut c, "");
    assert_eq!(
        fh_expire_type(&mut c, &root),
        FH4_VOLATILE_ANY | FH4_NOEXPIRE_WITH_OPEN
    );
    let top = fh_of(&mut c, "top");
    assert_eq!(rename(&mut c, &root, "top", &root, "top2"), NFS4_OK);
    assert_eq!(use_fh(&mut c, &top), NFS4_OK, "no rename expiry");
    drop(c);
    srv.restart();
    let mut c = session(&srv, "reboot-only-2");
    assert_eq!(use_fh(&mut c, &top), NFS4ERR_FHEXPIRED);
}

// ---- fh_expire_type ----

#[test]
fn fh_expire_type_is_per_export_and_follows_the_policy() {
    let conf = r#"
        [[export]]
        path = "/persistent"
        dir = "{export}/a"
        [[export]]
        path = "/all"
        dir = "{export}/b"
        filehandles = "volatile"
        [[export]]
        path = "/all-noopen"
        dir = "{export}/c"
        filehandles = "volatile"
        noexpire_with_open = false
        [[export]]
        path = "/rename"
        dir = "{export}/d"
        filehandles = "volatile"
        expire_on = ["rename"]
        [[export]]
        path = "/migration"
        dir = "{export}/e"
        filehandles = "volatile"
        expire_on = ["migration"]
        [[export]]
        path = "/rename-migration"
        dir = "{export}/f"
        filehandles = "volatile"
        expire_on = ["rename", "migration"]
        [[export]]
        path = "/reboot"
        dir = "{export}/g"
        filehandles = "volatile"
        expire_on = ["reboot"]
        noexpire_with_open = false
    "#;
    let srv = TestServer::start_with_config(conf, &[]);
    let mut c = session(&srv, "attrs");
    let pseudo = fh_of(&mut c, "");
    assert_eq!(
        fh_expire_type(&mut c, &pseudo),
        FH4_PERSISTENT,
        "pseudo filesystem"
    );
    for (path, want) in [
        ("persistent", FH4_PERSISTENT),
        ("all", FH4_VOLATILE_ANY | FH4_NOEXPIRE_WITH_OPEN),
        ("all-noopen", FH4_VOLATILE_ANY),
        ("rename", FH4_VOL_RENAME),
        ("migration", FH4_VOL_MIGRATION),
        ("rename-migration", FH4_VOL_RENAME | FH4_VOL_MIGRATION),
        ("reboot", FH4_VOLATILE_ANY),
    ] {
        let fh = fh_of(&mut c, path);
        assert_eq!(fh_expire_type(&mut c, &fh), want, "{path}");
    }
}

#[test]
fn volatile_without_events_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nfs4d.toml");
    let toml = format!(
        "state_dir = {:?}\n[[export]]\ndir = {:?}\nfilehandles = \"volatile\"\nexpire_on = []\n",
        dir.path().join("state"),
        dir.path().join("export")
    );
    std::fs::write(&conf, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nfs4d"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&conf)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs at least one"),
        "{out:?}"
    );
}

// ---- out-of-band changes and bad handles ----

#[test]
fn changes_behind_the_servers_back() {
    for (srv, gone) in [
        (volatile(&[]), NFS4ERR_FHEXPIRED),
        (persistent(), NFS4ERR_STALE),
    ] {
        let mut c = session(&srv, "oob");
        let d = fh_of(&mut c, "d");
        let f = fh_of(&mut c, "d/sub/f");
        let top = fh_of(&mut c, "top");
        // A local process renames a directory and replaces a file.
        std::fs::rename(srv.export.join("d"), srv.export.join("moved")).unwrap();
        std::fs::remove_file(srv.export.join("top")).unwrap();
        std::fs::write(srv.export.join("top"), b"other").unwrap();
        assert_eq!(use_fh(&mut c, &top), gone, "replaced file");
        assert_eq!(use_fh(&mut c, &top), gone, "the same answer every time");
        assert_eq!(use_fh(&mut c, &d), gone, "renamed directory");
        assert_eq!(use_fh(&mut c, &f), gone, "below the renamed directory");
        assert_eq!(use_fh(&mut c, &d), gone);
        let new_top = fh_of(&mut c, "top");
        assert_ne!(new_top, top, "the old handle never reaches the newcomer");
        assert_eq!(use_fresh(&mut c, "moved/sub/f"), NFS4_OK);
        assert_eq!(use_fh(&mut c, &f), gone);
    }
}

#[test]
fn garbage_handles_are_badhandle() {
    let srv = volatile(&[]);
    let mut c = session(&srv, "garbage");
    let mut f = fh_of(&mut c, "top");
    for bad in [vec![0u8; 30], vec![1u8; 34], vec![7u8; 5], vec![0xff; 128]] {
        assert_eq!(use_fh(&mut c, &bad), NFS4ERR_BADHANDLE, "{bad:?}");
    }
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(use_fh(&mut c, &f), NFS4ERR_BADHANDLE, "tampered MAC");
}

// ---- expired_error ----

#[test]
fn expired_error_auto_answers_stale_to_linux_and_fhexpired_to_others() {
    let srv = TestServer::start(&["--filehandles", "volatile"]);
    make_tree(&srv.export);
    let mut linux = session_as(
        &srv,
        "linux",
        Some("Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 x86_64"),
    );
    let mut other = session_as(&srv, "other", Some("FreeBSD 14.0"));
    let mut anon = session(&srv, "anon");
    let root = fh_of(&mut other, "");
    let top = fh_of(&mut other, "top");
    assert_eq!(rename(&mut other, &root, "top", &root, "top2"), NFS4_OK);
    assert_eq!(use_fh(&mut linux, &top), NFS4ERR_STALE);
    assert_eq!(use_fh(&mut other, &top), NFS4ERR_FHEXPIRED);
    assert_eq!(
        use_fh(&mut anon, &top),
        NFS4ERR_FHEXPIRED,
        "no implementation id"
    );
    // 4.0: told apart by the client id string of the SETCLIENTID record
    // whose callback address matches the peer.
    let mut v40 = srv.client(0);
    assert_eq!(
        use_fh(&mut v40, &top),
        NFS4ERR_STALE,
        "unknown 4.0 client: STALE"
    );
    v40.establish40(b"pynfs-like client").expect("setclientid");
    assert_eq!(use_fh(&mut v40, &top), NFS4ERR_FHEXPIRED);
    let mut l40 = srv.client(0);
    l40.establish40(b"Linux NFSv4.0 kclient-1/127.0.0.1 tcp")
        .expect("setclientid");
    assert_eq!(use_fh(&mut l40, &top), NFS4ERR_STALE);
    assert!(srv.log().contains("PUTFH: volatile filehandle expired"));
}

#[test]
fn expired_error_stale_and_fhexpired_apply_to_everyone() {
    let linux = Some("Linux 6.1.0");
    for (mode, want_linux, want_other) in [
        ("stale", NFS4ERR_STALE, NFS4ERR_STALE),
        ("fhexpired", NFS4ERR_FHEXPIRED, NFS4ERR_FHEXPIRED),
    ] {
        let srv = TestServer::start(&["--filehandles", "volatile", "--expired-error", mode]);
        make_tree(&srv.export);
        let mut l = session_as(&srv, "l", linux);
        let mut o = session(&srv, "o");
        let root = fh_of(&mut o, "");
        let top = fh_of(&mut o, "top");
        assert_eq!(rename(&mut o, &root, "top", &root, "x"), NFS4_OK);
        assert_eq!(use_fh(&mut l, &top), want_linux, "{mode}");
        assert_eq!(use_fh(&mut o, &top), want_other, "{mode}");
    }
}

// ---- migration ----

#[test]
fn migration_keeps_persistent_handles_of_intact_objects() {
    let srv = persistent();
    let mut c = session(&srv, "migrate-p");
    let root = fh_of(&mut c, "");
    let f = fh_of(&mut c, "d/sub/f");
    let top = fh_of(&mut c, "top");
    let copy = srv.state.parent().unwrap().join("copy");
    copy_tree(&srv.export, &copy);
    // The copy differs in one place: `top` is now a directory.
    std::fs::remove_file(copy.join("top")).unwrap();
    std::fs::create_dir(copy.join("top")).unwrap();
    let (ok, text) = ctl_migrate(&srv, "/", &copy);
    assert!(ok, "{text}");
    assert!(text.contains("now served from"), "{text}");
    assert_eq!(use_fh(&mut c, &f), NFS4_OK, "moved intact: same handle");
    assert_eq!(fh_of(&mut c, "d/sub/f"), f);
    assert_eq!(use_fh(&mut c, &top), NFS4ERR_STALE, "not intact: STALE");
    assert_eq!(use_fh(&mut c, &root), NFS4_OK);
    // The export now serves the new directory.
    std::fs::write(copy.join("only-in-copy"), b"x").unwrap();
    assert_eq!(use_fresh(&mut c, "only-in-copy"), NFS4_OK);
    assert_eq!(
        c.compound(vec![putfh(&root), lookup("only-in-copy")])
            .unwrap()
            .status,
        NFS4_OK
    );
}

#[test]
fn migration_expires_volatile_handles() {
    let srv = volatile(&[]);
    let mut c = session(&srv, "migrate-v");
    let root = fh_of(&mut c, "");
    let f = fh_of(&mut c, "d/sub/f");
    let g = fh_of(&mut c, "d/g");
    let d = fh_of(&mut c, "d");
    let sid = open(&mut c, &d, "g");
    let copy = srv.state.parent().unwrap().join("copy");
    copy_tree(&srv.export, &copy);
    let (ok, text) = ctl_migrate(&srv, "/", &copy);
    assert!(ok, "{text}");
    assert!(text.contains("volatile handles expired"), "{text}");
    assert_eq!(use_fh(&mut c, &f), NFS4ERR_FHEXPIRED);
    assert_eq!(use_fh(&mut c, &root), NFS4_OK, "export root never expires");
    assert_eq!(
        use_fh(&mut c, &g),
        NFS4_OK,
        "open file: until its last close"
    );
    assert_eq!(close(&mut c, &g, &sid), NFS4_OK);
    assert_eq!(use_fh(&mut c, &g), NFS4ERR_FHEXPIRED);
    assert_eq!(use_fresh(&mut c, "d/sub/f"), NFS4_OK);
}

#[test]
fn migration_errors_are_clear_and_change_nothing() {
    let srv = persistent();
    let mut c = session(&srv, "migrate-err");
    let f = fh_of(&mut c, "d/sub/f");
    let base = srv.state.parent().unwrap().to_path_buf();
    std::fs::write(base.join("plain-file"), b"x").unwrap();
    for (export, to, expect) in [
        ("/nope", base.join("export"), "no export"),
        ("/", base.join("missing"), "does not exist"),
        ("/", base.join("plain-file"), "not a directory"),
        ("/", srv.export.clone(), "already served"),
    ] {
        let (ok, text) = ctl_migrate(&srv, export, &to);
        assert!(!ok, "{export} → {}: {text}", to.display());
        assert!(text.contains(expect), "{text}");
    }
    assert_eq!(use_fh(&mut c, &f), NFS4_OK);
    assert!(srv.log().contains("ctl: request refused"));
    // The socket answers only its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.state.join("ctl.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
