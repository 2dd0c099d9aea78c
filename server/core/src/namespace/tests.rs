//! The namespace layer against a real local store on a temporary
//! directory, an in-memory handle map and a manual clock: the order of its
//! checks, durability points, orphans, volatile handles, delegation
//! breaks and what a store without some capabilities answers.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nfs4d_store::{
    Attrs, Capabilities, DirRename, Entry as StoreEntry, FileKind, FsStats, ListPos, Name, Owner,
    RelPath, SetAttrs, Stability, Store, StoreError, StoreResult,
};
use nfs4d_store_local::LocalStore;

use super::vfs::{CurFh, Export, Node};
use super::*;
use crate::attrs::SetRequest;
use crate::clock::ManualClock;
use crate::config::Config;
use crate::error::NfsError;
use crate::server::{Parts, Server};
use crate::state::deleg::{NoCallbacks, Policy, Request};
use crate::state::open::{ACCESS_READ, ACCESS_WRITE};
use crate::state::Share;

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    srv: Server,
}

/// A server with one export at "/" over a local store; `extra` adds lines
/// to the export's configuration.
fn fixture(extra: &str) -> Fixture {
    fixture_with(extra, local_store)
}

fn fixture_with(extra: &str, store: impl FnOnce(&Path) -> Arc<dyn Store>) -> Fixture {
    fixture_in(extra, store, nfs4d_kv::MemKv::new())
}

/// A fixture whose map lives in `kv` (see [`restart`]).
fn fixture_on(kv: &nfs4d_kv::MemKv) -> Fixture {
    fixture_in("", local_store, kv.clone())
}

fn fixture_in(
    extra: &str,
    store: impl FnOnce(&Path) -> Arc<dyn Store>,
    kv: nfs4d_kv::MemKv,
) -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let srv = server_on(&data, extra, store(&data), kv, 1);
    Fixture {
        _tmp: tmp,
        data,
        srv,
    }
}

/// The server of a fixture: one export at "/" backed by `store` over
/// `data`, its map in `kv` (clones share it, so a later server with the
/// same `kv` is a restart), `instance` telling the starts apart.
fn server_on(
    data: &Path,
    extra: &str,
    store: Arc<dyn Store>,
    kv: nfs4d_kv::MemKv,
    instance: u32,
) -> Server {
    let cfg = Config::parse(&format!(
        "[[export]]\npath = \"/\"\ndir = \"{}\"\n{extra}\n",
        data.display()
    ))
    .expect("config");
    Server::new(Parts {
        cfg,
        stores: vec![(store, data.to_path_buf())],
        kv: Arc::new(kv),
        mac_key: [7; 16],
        clock: Arc::new(ManualClock::default()),
        idmap: Arc::new(crate::idmap::NumericIds),
        callbacks: Arc::new(NoCallbacks),
        instance,
        host: "test".into(),
        cluster: None,
    })
    .expect("server")
}

fn local_store(data: &Path) -> Arc<dyn Store> {
    Arc::new(LocalStore::open(data).expect("local store"))
}

impl Fixture {
    fn ns(&self) -> Namespace<'_> {
        self.srv.namespace()
    }

    fn export(&self) -> &Export {
        self.srv.vfs.export(0).expect("export 0")
    }

    /// The uid owning the test's files: the test process's.
    fn me(&self) -> u32 {
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&self.data).expect("stat"))
    }

    fn exists(&self, rel: &str) -> bool {
        self.data.join(rel).symlink_metadata().is_ok()
    }
}

const NO_GROUPS: &[u32] = &[];

fn caller(uid: u32) -> Caller<'static> {
    Caller {
        user: User {
            uid,
            gid: uid,
            groups: NO_GROUPS,
        },
        client: None,
        read_only: false,
    }
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).expect("name")
}

fn at<'a>(dir: &'a CurFh, name: &'a Name) -> Entry<'a> {
    match &dir.node {
        Node::Obj { id, path, .. } => Entry {
            dir_id: *id,
            dir: path,
            name,
        },
        Node::Pseudo(_) => panic!("not an export object"),
    }
}

fn root(f: &Fixture) -> CurFh {
    f.srv.vfs.export_root(0).expect("root handle")
}

fn no_gate() -> NfsResult<()> {
    Ok(())
}

/// A directory `n` under `parent` with `mode`, made through the namespace.
fn mkdir(f: &Fixture, parent: &CurFh, n: &str, mode: u32) -> CurFh {
    let req = SetRequest {
        mode: Some(mode),
        ..SetRequest::default()
    };
    let n = name(n);
    f.ns()
        .create(
            &caller(f.me()),
            f.export(),
            at(parent, &n),
            &NewObject::Dir,
            &req,
        )
        .expect("mkdir")
        .fh
}

/// A regular file `n` under `parent` with `mode`, made as OPEN makes it,
/// and its handle.
fn mkfile(f: &Fixture, parent: &CurFh, n: &str, mode: u32) -> CurFh {
    let n = name(n);
    let entry = at(parent, &n);
    let dir = f.export().store().stat(entry.dir).expect("dir");
    let how = FileCreate::Unchecked(SetRequest {
        mode: Some(mode),
        ..SetRequest::default()
    });
    let new = f
        .ns()
        .open_create(&caller(f.me()), f.export(), entry, &dir, None, &how)
        .expect("create file");
    assert!(new.created && new.remove_on_failure);
    f.srv
        .vfs
        .child_fh(0, entry.dir_id, entry.dir, entry.name, &new.attrs)
        .expect("handle")
        .0
}

fn open_for(f: &Fixture, fh: &CurFh, client: u64) -> crate::state::open::Opened {
    let (export, id, _) = fh.obj().expect("object");
    f.srv
        .state
        .open(
            client,
            (client, b"owner".to_vec()),
            (export, id),
            Share {
                access: ACCESS_READ | ACCESS_WRITE,
                deny: 0,
            },
            true,
        )
        .expect("open")
}

#[test]
fn remove_checks_in_order_and_the_gate_comes_after_the_directory() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let sticky = mkdir(&f, &r, "tmp", 0o1777);
    mkfile(&f, &sticky, "mine", 0o644);
    let file = mkfile(&f, &r, "plain", 0o644);
    let ran = Cell::new(false);
    let gate = || {
        ran.set(true);
        Err(NfsError::Grace)
    };

    // A read-only caller: ROFS before the gate or any lookup.
    let ro = Caller {
        read_only: true,
        ..caller(me)
    };
    let missing = name("missing");
    let got = f.ns().remove(&ro, f.export(), at(&sticky, &missing), gate);
    assert_eq!(got, Err(NfsError::Rofs));
    assert!(!ran.get());
    // Not a directory.
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&file, &missing), gate);
    assert_eq!(got, Err(NfsError::NotDir));
    assert!(!ran.get());
    // No write permission on the directory (0755 owned by me).
    let other = caller(me + 1);
    let got = f.ns().remove(&other, f.export(), at(&r, &missing), gate);
    assert_eq!(got, Err(NfsError::Access));
    assert!(!ran.get());
    // The gate's refusal comes before the name is looked up.
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&r, &missing), gate);
    assert_eq!(got, Err(NfsError::Grace));
    assert!(ran.get());
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&r, &missing), no_gate);
    assert!(matches!(got, Err(NfsError::Store(StoreError::NotFound))));
    // The orphan directory is invisible.
    let hidden = Name::new(orphans::ORPHAN_DIR).expect("name");
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&r, &hidden), no_gate);
    assert_eq!(got, Err(NfsError::NoEnt));
    // Sticky directory: another user's file stays.
    let mine = name("mine");
    let got = f
        .ns()
        .remove(&other, f.export(), at(&sticky, &mine), no_gate);
    assert_eq!(got, Err(NfsError::Access));
    assert!(f.exists("tmp/mine"));

    // Success: the name is gone, the directory changed, and the removal's
    // intent must be durable before the reply (journal.rs).
    let done = f
        .ns()
        .remove(&caller(me), f.export(), at(&sticky, &mine), no_gate)
        .expect("remove");
    assert!(!f.exists("tmp/mine"));
    assert_ne!(done.dir.before, done.dir.after);
    assert!(done.durable > 0);
    // A non-empty directory is the store's NOTEMPTY; an empty one goes.
    mkfile(&f, &sticky, "again", 0o644);
    let tmp = name("tmp");
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&r, &tmp), no_gate);
    assert!(matches!(got, Err(NfsError::Store(StoreError::NotEmpty))));
    let again = name("again");
    f.ns()
        .remove(&caller(me), f.export(), at(&sticky, &again), no_gate)
        .expect("remove file");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &tmp), no_gate)
        .expect("rmdir");
    assert!(!f.exists("tmp"));
    // A removed file's handle is stale from then on.
    assert!(f.srv.vfs.resolve(&file.fh).is_ok());
    let plain = name("plain");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &plain), no_gate)
        .expect("remove plain");
    assert_eq!(f.srv.vfs.resolve(&file.fh), Err(NfsError::Stale));
}

#[test]
fn removing_an_open_file_parks_it_until_the_last_close() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let fh = mkfile(&f, &r, "busy", 0o644);
    let opened = open_for(&f, &fh, 1);
    let busy = name("busy");
    let done = f
        .ns()
        .remove(&caller(me), f.export(), at(&r, &busy), no_gate)
        .expect("remove");
    // The move to the orphan directory must be durable before the reply.
    assert!(done.durable > 0);
    assert!(!f.exists("busy"));
    // The opener still reaches the file through its handle.
    let (_, id, _) = fh.obj().expect("object");
    let now = f.srv.vfs.resolve(&fh.fh).expect("still reachable");
    assert_eq!(
        now.obj().map(|o| o.2.clone()),
        Some(orphans::parked_path(id))
    );
    // While open, closing nothing leaves it; after the last close it goes.
    f.ns().reap_after_close((0, id));
    assert!(f.srv.vfs.resolve(&fh.fh).is_ok());
    f.srv.state.close(&opened.stateid.other).expect("close");
    f.ns().reap_after_close((0, id));
    assert_eq!(f.srv.vfs.resolve(&fh.fh), Err(NfsError::Stale));
    let left = std::fs::read_dir(f.data.join(".nfs4d-orphans"))
        .expect("orphan dir")
        .count();
    assert_eq!(left, 0);
}

#[test]
fn rename_rules() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let other = caller(me + 1);
    let a = mkdir(&f, &r, "a", 0o777);
    let b = mkdir(&f, &r, "b", 0o777);
    let sub = mkdir(&f, &a, "sub", 0o755);
    let inner = mkfile(&f, &sub, "inner", 0o644);
    let file = mkfile(&f, &a, "f", 0o644);
    let (sub_n, f_n, g_n) = (name("sub"), name("f"), name("g"));

    // A directory moved to another parent needs write permission on it
    // (its ".." changes); within the same parent it does not.
    let got = f
        .ns()
        .rename(&other, f.export(), at(&a, &sub_n), at(&b, &sub_n), no_gate);
    assert_eq!(got, Err(NfsError::Access));
    let moved = name("moved");
    f.ns()
        .rename(&other, f.export(), at(&a, &sub_n), at(&a, &moved), no_gate)
        .expect("rename within the parent");
    f.ns()
        .rename(
            &caller(me),
            f.export(),
            at(&a, &moved),
            at(&a, &sub_n),
            no_gate,
        )
        .expect("rename back");

    // Two names of one object: nothing happens, nothing changes.
    let same = f
        .ns()
        .rename(&caller(me), f.export(), at(&a, &f_n), at(&a, &f_n), no_gate)
        .expect("same name");
    assert_eq!(same.from.before, same.from.after);
    assert_eq!(same.durable, 0);
    // File over directory and directory over file: EXIST (RFC 8881
    // §18.26.3), whatever rename(2) would say.
    let got = f.ns().rename(
        &caller(me),
        f.export(),
        at(&a, &f_n),
        at(&a, &sub_n),
        no_gate,
    );
    assert_eq!(got, Err(NfsError::Exist));
    let got = f.ns().rename(
        &caller(me),
        f.export(),
        at(&a, &sub_n),
        at(&a, &f_n),
        no_gate,
    );
    assert_eq!(got, Err(NfsError::Exist));
    // A non-empty target directory is the store's NOTEMPTY, left to the
    // handler to report as the RFC says.
    let empty = mkdir(&f, &b, "empty", 0o755);
    let (empty_n, b_n) = (name("empty"), name("b"));
    let got = f.ns().rename(
        &caller(me),
        f.export(),
        at(&b, &empty_n),
        at(&a, &sub_n),
        no_gate,
    );
    assert!(matches!(got, Err(NfsError::Store(StoreError::NotEmpty))));
    // A directory into its own subtree: the store refuses.
    let got = f.ns().rename(
        &caller(me),
        f.export(),
        at(&r, &b_n),
        at(&empty, &b_n),
        no_gate,
    );
    assert!(matches!(got, Err(NfsError::Store(StoreError::Invalid))));

    // A move across directories: the handle follows, durably.
    let done = f
        .ns()
        .rename(&caller(me), f.export(), at(&a, &f_n), at(&b, &g_n), no_gate)
        .expect("rename");
    assert!(done.durable > 0);
    assert_ne!(done.from.before, done.from.after);
    assert_ne!(done.to.before, done.to.after);
    let now = f.srv.vfs.resolve(&file.fh).expect("handle follows");
    assert_eq!(now.obj().map(|o| o.2.to_string()), Some("b/g".to_string()));
    // So do the handles below a moved directory.
    f.ns()
        .rename(
            &caller(me),
            f.export(),
            at(&a, &sub_n),
            at(&b, &sub_n),
            no_gate,
        )
        .expect("move directory");
    let inner_now = f.srv.vfs.resolve(&inner.fh).expect("inner follows");
    assert_eq!(
        inner_now.obj().map(|o| o.2.to_string()),
        Some("b/sub/inner".to_string())
    );
}

#[test]
fn rename_over_an_open_file_parks_the_target() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    mkfile(&f, &r, "new", 0o644);
    let target = mkfile(&f, &r, "target", 0o644);
    open_for(&f, &target, 1);
    let (new_n, target_n) = (name("new"), name("target"));
    let done = f
        .ns()
        .rename(
            &caller(me),
            f.export(),
            at(&r, &new_n),
            at(&r, &target_n),
            no_gate,
        )
        .expect("rename");
    assert!(done.durable > 0);
    let (_, id, _) = target.obj().expect("object");
    let parked = f
        .srv
        .vfs
        .resolve(&target.fh)
        .expect("opener keeps the file");
    assert_eq!(
        parked.obj().map(|o| o.2.clone()),
        Some(orphans::parked_path(id))
    );
}

#[test]
fn volatile_exports_refuse_to_expire_open_files_handles() {
    let f =
        fixture("filehandles = \"volatile\"\nexpire_on = [\"rename\"]\nnoexpire_with_open = false");
    let r = root(&f);
    let me = f.me();
    let d = mkdir(&f, &r, "d", 0o755);
    let file = mkfile(&f, &d, "open", 0o644);
    let opened = open_for(&f, &file, 1);
    let (d_n, e_n, open_n) = (name("d"), name("e"), name("open"));
    // The open file itself, and a directory above it.
    let got = f
        .ns()
        .remove(&caller(me), f.export(), at(&d, &open_n), no_gate);
    assert_eq!(got, Err(NfsError::FileOpen));
    let got = f
        .ns()
        .rename(&caller(me), f.export(), at(&r, &d_n), at(&r, &e_n), no_gate);
    assert_eq!(got, Err(NfsError::FileOpen));
    assert!(f.exists("d/open"));
    // Once closed, the rename goes ahead and expires the handles below.
    f.srv.state.close(&opened.stateid.other).expect("close");
    let done = f
        .ns()
        .rename(&caller(me), f.export(), at(&r, &d_n), at(&r, &e_n), no_gate)
        .expect("rename");
    assert!(done.durable > 0);
    assert_eq!(f.srv.vfs.resolve(&file.fh), Err(NfsError::FhExpired));
    assert_eq!(f.srv.vfs.resolve(&d.fh), Err(NfsError::FhExpired));
}

#[test]
fn namespace_changes_recall_delegations() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let fh = mkfile(&f, &r, "deleg", 0o644);
    let (_, id, _) = fh.obj().expect("object");
    let req = Request {
        access: ACCESS_READ,
        want: 0,
        policy: Policy::Readwrite,
        callback_ok: true,
    };
    f.srv
        .state
        .grant_delegation(9, (0, id), req, fh.fh.clone(), 0)
        .expect("delegation");
    let (n, other_n, link_n) = (name("deleg"), name("other"), name("link"));
    // 4.0 (no client known) and another client: recalled, NFS4ERR_DELAY.
    let got = f.ns().remove(&caller(me), f.export(), at(&r, &n), no_gate);
    assert_eq!(got, Err(NfsError::Delay));
    let someone = Caller {
        client: Some(3),
        ..caller(me)
    };
    let got = f
        .ns()
        .rename(&someone, f.export(), at(&r, &n), at(&r, &other_n), no_gate);
    assert_eq!(got, Err(NfsError::Delay));
    let got = f.ns().link(
        &someone,
        f.export(),
        ObjRef {
            id,
            path: &RelPath::root().join(&n),
        },
        at(&r, &link_n),
    );
    assert_eq!(got, Err(NfsError::Delay));
    assert!(f.exists("deleg") && !f.exists("other") && !f.exists("link"));
    // The holder's own change does not wait for itself.
    let holder = Caller {
        client: Some(9),
        ..caller(me)
    };
    f.ns()
        .remove(&holder, f.export(), at(&r, &n), no_gate)
        .expect("holder removes");
}

#[test]
fn link_rules_and_one_handle_for_both_names() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let d = mkdir(&f, &r, "d", 0o777);
    let fh = mkfile(&f, &r, "src", 0o644);
    let (_, id, path) = fh.obj().expect("object");
    let src = ObjRef { id, path };
    let (l1, l2, dn) = (name("l1"), name("l2"), name("dn"));
    // Protected hard links: another user may not link a file it cannot
    // read and write.
    let got = f.ns().link(&caller(me + 1), f.export(), src, at(&d, &l1));
    assert_eq!(got, Err(NfsError::Access));
    // Directories cannot be linked.
    let (_, did, dpath) = d.obj().expect("object");
    let got = f.ns().link(
        &caller(me),
        f.export(),
        ObjRef {
            id: did,
            path: dpath,
        },
        at(&r, &dn),
    );
    assert_eq!(got, Err(NfsError::IsDir));
    let done = f
        .ns()
        .link(&caller(me), f.export(), src, at(&d, &l2))
        .expect("link");
    assert!(done.durable > 0);
    assert_ne!(done.dir.before, done.dir.after);
    let a = f
        .export()
        .store()
        .lookup(&RelPath::root().join(&name("d")), &l2)
        .expect("new name");
    assert_eq!(a.nlink, 2);
    let (fh2, _) = f.srv.vfs.child_fh(0, did, dpath, &l2, &a).expect("handle");
    assert_eq!(fh2.fh, fh.fh, "both names share one handle");
}

#[test]
fn create_rules() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let none = SetRequest::default();
    let (n, dev) = (name("n"), name("dev"));
    // Devices need root; fifos do not.
    let chr = NewObject::Special(FileKind::CharDev, (1, 3));
    let got = f
        .ns()
        .create(&caller(me + 1), f.export(), at(&r, &dev), &chr, &none);
    // 0755 root directory owned by me: the other user fails on permission
    // first; in a shared directory on the device rule.
    assert_eq!(got.map(|c| c.durable), Err(NfsError::Access));
    let shared = mkdir(&f, &r, "shared", 0o777);
    let got = f
        .ns()
        .create(&caller(me + 1), f.export(), at(&shared, &dev), &chr, &none);
    assert_eq!(got.map(|c| c.durable), Err(NfsError::Perm));
    let fifo = NewObject::Special(FileKind::Fifo, (0, 0));
    let made = f
        .ns()
        .create(&caller(me), f.export(), at(&shared, &n), &fifo, &none)
        .expect("fifo");
    assert!(made.durable > 0);
    assert_eq!(
        f.export()
            .store()
            .stat(made.fh.obj().expect("obj").2)
            .expect("stat")
            .kind,
        FileKind::Fifo
    );
    // A symlink's mode is never applied: attrset says so.
    let mut with_mode = SetRequest {
        mode: Some(0o600),
        ..SetRequest::default()
    };
    crate::attrs::bitmap_set(&mut with_mode.mask, 33);
    let link = NewObject::Symlink(b"target".to_vec());
    let s = name("s");
    let made = f
        .ns()
        .create(&caller(me), f.export(), at(&shared, &s), &link, &with_mode)
        .expect("symlink");
    assert!(!crate::attrs::bitmap_has(&made.attrset, 33));
    let d = name("d");
    let made = f
        .ns()
        .create(
            &caller(me),
            f.export(),
            at(&shared, &d),
            &NewObject::Dir,
            &with_mode,
        )
        .expect("dir");
    assert!(crate::attrs::bitmap_has(&made.attrset, 33));
    assert_eq!(
        f.export()
            .store()
            .stat(made.fh.obj().expect("obj").2)
            .expect("stat")
            .mode
            & 0o7777,
        0o600
    );
    // An existing name.
    let got = f.ns().create(
        &caller(me),
        f.export(),
        at(&shared, &d),
        &NewObject::Dir,
        &none,
    );
    assert!(matches!(got, Err(NfsError::Store(StoreError::Exists))));
}

#[test]
fn open_create_modes() {
    let f = fixture("");
    let r = root(&f);
    let me = f.me();
    let n = name("x");
    let entry = at(&r, &n);
    let dir = f.export().store().stat(&RelPath::root()).expect("root");
    let verf = [1, 2, 3, 4, 5, 6, 7, 8];
    let excl = FileCreate::Exclusive(verf, SetRequest::default());
    let new = f
        .ns()
        .open_create(&caller(me), f.export(), entry, &dir, None, &excl)
        .expect("exclusive create");
    assert!(new.created && new.remove_on_failure && !new.truncate);
    // No mode given: only the owner may use the file until the client's
    // SETATTR (RFC 8881 §18.16.4); the verifier is in the times.
    assert_eq!(new.attrs.mode & 0o7777, 0o600);
    assert!(crate::attrs::bitmap_has(&new.attrset, 48));
    assert!(crate::attrs::bitmap_has(&new.attrset, 54));
    let existing = f.export().store().lookup(&RelPath::root(), &n).expect("x");
    // The retransmission finds its own verifier: created, nothing to undo.
    let again = f
        .ns()
        .open_create(
            &caller(me),
            f.export(),
            entry,
            &dir,
            Some(existing.clone()),
            &excl,
        )
        .expect("retransmission");
    assert!(again.created && !again.remove_on_failure);
    let other = FileCreate::Exclusive([9; 8], SetRequest::default());
    let got = f.ns().open_create(
        &caller(me),
        f.export(),
        entry,
        &dir,
        Some(existing.clone()),
        &other,
    );
    assert_eq!(got.map(|x| x.created), Err(NfsError::Exist));
    let guarded = FileCreate::Guarded(SetRequest::default());
    let got = f.ns().open_create(
        &caller(me),
        f.export(),
        entry,
        &dir,
        Some(existing.clone()),
        &guarded,
    );
    assert_eq!(got.map(|x| x.created), Err(NfsError::Exist));
    // UNCHECKED4 with size 0 on an existing file truncates it.
    let trunc = FileCreate::Unchecked(SetRequest {
        size: Some(0),
        ..SetRequest::default()
    });
    let got = f
        .ns()
        .open_create(&caller(me), f.export(), entry, &dir, Some(existing), &trunc)
        .expect("unchecked");
    assert!(!got.created && got.truncate);
    assert!(crate::attrs::bitmap_has(&got.attrset, 4));
    assert_eq!(got.dir.before, got.dir.after);
    // A race: the name was free at lookup but is taken at create.
    let got = f
        .ns()
        .open_create(&caller(me), f.export(), entry, &dir, None, &guarded);
    assert_eq!(got.map(|x| x.created), Err(NfsError::Exist));
    let got = f
        .ns()
        .open_create(&caller(me), f.export(), entry, &dir, None, &excl)
        .expect("raced retransmission");
    assert!(got.created && !got.remove_on_failure);
    // A later failure of the OPEN removes the new file again.
    f.ns()
        .discard_new_file(f.export(), &RelPath::root(), &n)
        .expect("discard");
    assert!(!f.exists("x"));
}

/// A store that can do less than a local directory: no hard links, no
/// symlinks, no special files, and directories move only while empty
/// (the rest of a POSIX directory, from a real local store).
struct Restricted(LocalStore);

impl Store for Restricted {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            hard_links: false,
            symlinks: false,
            special_files: false,
            dir_rename: DirRename::EmptyOnly,
            ..Capabilities::POSIX
        }
    }
    fn stat(&self, path: &RelPath) -> StoreResult<Attrs> {
        self.0.stat(path)
    }
    fn lookup(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        self.0.lookup(dir, name)
    }
    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)> {
        self.0.read(path, offset, len, buf)
    }
    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        self.0.write(path, offset, data, stability)
    }
    fn commit(&self, path: &RelPath) -> StoreResult<()> {
        self.0.commit(path)
    }
    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> StoreResult<nfs4d_store::Created> {
        self.0.create_file(dir, name, mode, owner, exclusive)
    }
    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> StoreResult<Attrs> {
        self.0.mkdir(dir, name, mode, owner)
    }
    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> StoreResult<()> {
        let src = self.0.lookup(src_dir, src_name)?;
        if src.kind == FileKind::Directory {
            let mut any = false;
            self.0.list(
                &src_dir.join(src_name),
                &ListPos::Start,
                false,
                &mut |_, _| {
                    any = true;
                    false
                },
            )?;
            if any {
                return Err(StoreError::CrossDevice);
            }
        }
        self.0.rename(src_dir, src_name, dst_dir, dst_name)
    }
    fn remove(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs> {
        self.0.remove(dir, name)
    }
    fn rmdir(&self, dir: &RelPath, name: &Name) -> StoreResult<()> {
        self.0.rmdir(dir, name)
    }
    fn list(
        &self,
        dir: &RelPath,
        from: &ListPos,
        stat: bool,
        visit: &mut dyn FnMut(StoreEntry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool> {
        self.0.list(dir, from, stat, visit)
    }
    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> StoreResult<Attrs> {
        self.0.setattr(path, set)
    }
    fn statfs(&self) -> StoreResult<FsStats> {
        self.0.statfs()
    }
    fn sync_dir(&self, dir: &RelPath) -> StoreResult<()> {
        self.0.sync_dir(dir)
    }
}

#[test]
fn what_a_store_cannot_do_answers_the_rfc_status() {
    let f = fixture_with("", |dir| {
        Arc::new(Restricted(LocalStore::open(dir).expect("local store"))) as Arc<dyn Store>
    });
    let r = root(&f);
    let me = f.me();
    let none = SetRequest::default();
    let fh = mkfile(&f, &r, "file", 0o644);
    let (_, id, path) = fh.obj().expect("object");
    let (l, s, p) = (name("l"), name("s"), name("p"));
    // LINK: NOTSUPP (RFC 8881 §18.9 lists it), before any other check.
    let ro = Caller {
        read_only: true,
        ..caller(me)
    };
    let got = f
        .ns()
        .link(&ro, f.export(), ObjRef { id, path }, at(&r, &l));
    assert_eq!(got.map(|x| x.durable), Err(NfsError::NotSupp));
    // CREATE of a symlink: NOTSUPP; of a special file: BADTYPE.
    let link = NewObject::Symlink(b"t".to_vec());
    let got = f
        .ns()
        .create(&caller(me), f.export(), at(&r, &s), &link, &none);
    assert_eq!(got.map(|x| x.durable), Err(NfsError::NotSupp));
    let fifo = NewObject::Special(FileKind::Fifo, (0, 0));
    let got = f
        .ns()
        .create(&caller(me), f.export(), at(&r, &p), &fifo, &none);
    assert_eq!(got.map(|x| x.durable), Err(NfsError::BadType));
    assert!(!f.exists("l") && !f.exists("s") && !f.exists("p"));
    // RENAME of a directory the store cannot move: the store's
    // CrossDevice, which clients see as NFS4ERR_XDEV; an empty one moves.
    let full = mkdir(&f, &r, "full", 0o755);
    mkfile(&f, &full, "x", 0o644);
    mkdir(&f, &r, "empty", 0o755);
    let (full_n, empty_n, to) = (name("full"), name("empty"), name("to"));
    let got = f.ns().rename(
        &caller(me),
        f.export(),
        at(&r, &full_n),
        at(&r, &to),
        no_gate,
    );
    let err = got.expect_err("full directory moved");
    assert_eq!(err.status(), nfs4d_xdr::nfs4::nfsstat4::NFS4ERR_XDEV);
    f.ns()
        .rename(
            &caller(me),
            f.export(),
            at(&r, &empty_n),
            at(&r, &to),
            no_gate,
        )
        .expect("empty directory moves");
    assert!(f.exists("to") && f.exists("full/x"));
}

#[test]
fn async_exports_sync_in_the_background() {
    // sync (the default): directories are synced at once, the reply waits
    // for the map.
    let f = fixture("");
    let r = root(&f);
    let req = SetRequest {
        mode: Some(0o755),
        ..SetRequest::default()
    };
    let d_n = name("d");
    let made = f
        .ns()
        .create(
            &caller(f.me()),
            f.export(),
            at(&r, &d_n),
            &NewObject::Dir,
            &req,
        )
        .expect("mkdir");
    assert!(made.durable > 0, "sync: the reply waits for the map");
    // sync: the directory is left to the checkpoint; the journal entry
    // that stands for it goes with the checkpoint.
    assert_eq!(f.srv.vfs.dirty.len(), 1);
    assert_eq!(f.srv.fhmap.journal_entries().expect("journal").len(), 1);
    let report = f.srv.vfs.flush_background();
    assert_eq!((report.synced, report.trimmed), (1, 1));
    assert!(f.srv.fhmap.journal_entries().expect("journal").is_empty());

    // async: nothing is waited for; the changed directories are remembered
    // by id and synced by the flush, also after a rename moved them.
    let f = fixture("durability = \"async\"");
    let r = root(&f);
    let me = f.me();
    let made = f
        .ns()
        .create(&caller(me), f.export(), at(&r, &d_n), &NewObject::Dir, &req)
        .expect("mkdir");
    assert_eq!(
        made.durable, 0,
        "async: the reply does not wait for the map"
    );
    let d = made.fh;
    let file = mkfile(&f, &d, "f", 0o644);
    let d2_n = name("d2");
    assert_eq!(f.srv.vfs.dirty.len(), 2, "the root and d");
    let moved = f
        .ns()
        .rename(
            &caller(me),
            f.export(),
            at(&r, &d_n),
            at(&r, &d2_n),
            no_gate,
        )
        .expect("rename");
    assert_eq!(moved.durable, 0);
    let gone = mkdir(&f, &r, "gone", 0o755);
    mkfile(&f, &gone, "g", 0o644);
    let g_n = name("g");
    f.ns()
        .remove(&caller(me), f.export(), at(&gone, &g_n), no_gate)
        .expect("remove g");
    let gone_n = name("gone");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &gone_n), no_gate)
        .expect("rmdir gone");
    assert_eq!(f.srv.vfs.dirty.len(), 3, "the root, d (now d2) and gone");
    let report = f.srv.vfs.flush_background();
    assert_eq!(
        report,
        lazy::FlushReport {
            synced: 2,
            gone: 1,
            failed: 0,
            trimmed: 0
        }
    );
    assert!(f.srv.vfs.dirty.is_empty());
    assert!(f.exists("d2/f"));
    let resolved = f.srv.vfs.resolve(&file.fh).expect("the handle follows");
    assert_eq!(resolved.obj().map(|o| o.2.to_string()), Some("d2/f".into()));

    // A stable write's file is made reachable: its dirty ancestors are
    // synced and the map flushed before the reply.
    let sub = mkdir(&f, &r, "sub", 0o755);
    let inner = mkfile(&f, &sub, "inner", 0o644);
    assert_eq!(f.srv.vfs.dirty.len(), 2);
    let flushes = f.srv.fhmap.flush_count();
    let (_, id, _) = inner.obj().expect("object");
    f.srv
        .vfs
        .make_object_durable(f.export(), id)
        .expect("durable");
    assert!(f.srv.fhmap.flush_count() > flushes, "the map was flushed");
}

/// A server restarted on the same data directory and map, as after a crash
/// of the process: the map (MemKv, shared by clones) keeps everything
/// flushed, and the backing directory holds what the test left there.
fn restart(f: Fixture, kv: &nfs4d_kv::MemKv) -> Fixture {
    let Fixture { _tmp, data, srv } = f;
    drop(srv);
    let srv = server_on(&data, "", local_store(&data), kv.clone(), 2);
    Fixture { _tmp, data, srv }
}

#[test]
fn the_journal_redoes_what_the_file_system_lost() {
    let kv = nfs4d_kv::MemKv::new();
    let f = fixture_on(&kv);
    let r = root(&f);
    let me = f.me();
    // Acknowledged on a sync export, not yet checkpointed: a directory, a
    // file in it, a symlink, a file removed, a name removed and made again.
    let d = mkdir(&f, &r, "d", 0o750);
    let inner = mkfile(&f, &d, "inner", 0o640);
    let link = f
        .ns()
        .create(
            &caller(me),
            f.export(),
            at(&r, &name("l")),
            &NewObject::Symlink(b"d/inner".to_vec()),
            &SetRequest::default(),
        )
        .expect("symlink")
        .fh;
    mkfile(&f, &r, "gone", 0o644);
    let gone_n = name("gone");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &gone_n), no_gate)
        .expect("remove");
    mkfile(&f, &r, "again", 0o644);
    let again_n = name("again");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &again_n), no_gate)
        .expect("remove again");
    let again = mkfile(&f, &r, "again", 0o600);
    assert!(!f.srv.fhmap.journal_entries().expect("journal").is_empty());

    // The crash: the file system lost the directory, the file and the
    // symlink; "gone" and "again" hold files the log does not know (other
    // inodes than the ones it recorded), as a local process may leave.
    let data = f.data.clone();
    std::fs::remove_dir_all(data.join("d")).expect("lose d");
    std::fs::remove_file(data.join("l")).expect("lose l");
    std::fs::remove_file(data.join("again")).expect("lose again");
    std::fs::write(data.join("gone"), b"").expect("gone is back");
    std::fs::write(data.join("again.tmp"), b"old").expect("old again");
    std::fs::rename(data.join("again.tmp"), data.join("again")).expect("old again");
    std::fs::write(data.join("stranger"), b"x").expect("a local file");

    let f = restart(f, &kv);
    // Replayed at start-up: every handle the client holds resolves to an
    // object of the recorded type; the removal is done again.
    for (fh, path) in [(&d, "d"), (&inner, "d/inner"), (&link, "l")] {
        let got = f
            .srv
            .vfs
            .resolve(&fh.fh)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(got.obj().map(|o| o.2.to_string()), Some(path.to_string()));
    }
    assert!(f.exists("d/inner") && f.exists("l"));
    assert!(
        f.exists("gone"),
        "another object under a removed name is not removed"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::symlink_metadata(f.data.join(p))
            .expect(p)
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(
        (mode("d"), mode("d/inner")),
        (0o750, 0o640),
        "recorded modes"
    );
    assert_eq!(
        std::fs::read_link(f.data.join("l")).expect("link"),
        std::path::Path::new("d/inner")
    );
    // "again" held an object the log recorded as removed whose identity
    // the file system does not know any more (the old file was replaced by
    // one the log does not know): left alone, never removed blindly.
    assert!(f.exists("again"));
    assert!(matches!(f.srv.vfs.resolve(&again.fh), Err(NfsError::Stale)));
    assert!(
        f.exists("stranger"),
        "a name the log does not mention is not touched"
    );
    assert!(
        f.srv.fhmap.journal_entries().expect("journal").is_empty(),
        "emptied"
    );
}

#[test]
fn the_journal_redoes_a_lost_removal_of_the_same_object() {
    let kv = nfs4d_kv::MemKv::new();
    let f = fixture_on(&kv);
    let r = root(&f);
    let me = f.me();
    mkfile(&f, &r, "victim", 0o644);
    // Keep the inode alive under another name so that it can "come back"
    // with the same identity, as after a lost unlink.
    std::fs::hard_link(f.data.join("victim"), f.data.join(".keep")).expect("link");
    let v_n = name("victim");
    f.ns()
        .remove(&caller(me), f.export(), at(&r, &v_n), no_gate)
        .expect("remove");
    std::fs::hard_link(f.data.join(".keep"), f.data.join("victim")).expect("back");
    std::fs::remove_file(f.data.join(".keep")).expect("drop keep");
    let f = restart(f, &kv);
    assert!(!f.exists("victim"), "the lost removal is done again");
}
