//! The store conformance suite (`nfs4d_store::conformance`) against a
//! `LocalStore` on a fresh temporary directory per test.

use std::ops::Deref;

use nfs4d_store::{Capabilities, ListPos, RelPath, Store};
use nfs4d_store_local::LocalStore;

/// A store on a directory of its own, removed when this is dropped.
pub struct TempStore {
    // Fields drop in order: the store's descriptors close before the
    // directory is removed.
    store: LocalStore,
    dir: tempfile::TempDir,
}

impl Deref for TempStore {
    type Target = LocalStore;

    fn deref(&self) -> &LocalStore {
        &self.store
    }
}

/// The factory the suite calls for each test.
pub fn local_store() -> TempStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("open the local store");
    TempStore { store, dir }
}

/// The suite's fixture: the store and the directory it lives in. Lease
/// breaks raise SIGIO, which would end the test process unhandled; the
/// server handles it, the tests ignore it.
fn fixture() -> nfs4d_store::conformance::Fixture {
    ignore_sigio();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("open the local store");
    nfs4d_store::conformance::Fixture::with_guard(store, dir)
}

fn ignore_sigio() {
    // SAFETY: installing SIG_IGN for SIGIO has no preconditions; it only
    // changes what the kernel does with the signal.
    unsafe {
        libc::signal(libc::SIGIO, libc::SIG_IGN);
    }
}

nfs4d_store::store_conformance_tests!(fixture);

/// What the suite starts from: an empty store with the POSIX
/// capabilities, and nothing left behind once it is dropped.
#[test]
fn factory_gives_an_empty_posix_store() {
    let s = local_store();
    let store: &dyn Store = &*s;
    assert_eq!(store.capabilities(), Capabilities::POSIX);
    let mut names = Vec::new();
    let eof = store
        .list(&RelPath::root(), &ListPos::Start, false, &mut |e, _| {
            names.push(e.name.to_vec());
            true
        })
        .expect("list the root");
    assert!(eof && names.is_empty(), "{names:?}");
    let path = s.dir.path().to_path_buf();
    drop(s);
    assert!(!path.exists(), "{} left behind", path.display());
}
