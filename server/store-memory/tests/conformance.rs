//! The store conformance suite against the memory store, in three
//! configurations: POSIX-like (the default), what an object store offers,
//! and everything the memory store can do with directory renames limited
//! to empty directories.

use nfs4d_store::conformance::Fixture;
use nfs4d_store::{Capabilities, DirRename};
use nfs4d_store_memory::{MemStore, DEFAULT_CAPABILITIES, OBJECT_STORE_CAPABILITIES};

fn with(caps: Capabilities) -> Fixture {
    match MemStore::with_capabilities(caps) {
        Ok(store) => Fixture::new(store),
        Err(e) => panic!("memory store with {caps:?}: {e}"),
    }
}

nfs4d_store::store_conformance_tests!(posix, || Fixture::new(MemStore::new()));

nfs4d_store::store_conformance_tests!(object_store, || with(OBJECT_STORE_CAPABILITIES));

nfs4d_store::store_conformance_tests!(all_features, || with(Capabilities {
    local_locks: true,
    leases: true,
    clone: true,
    dir_rename: DirRename::EmptyOnly,
    ..DEFAULT_CAPABILITIES
}));
