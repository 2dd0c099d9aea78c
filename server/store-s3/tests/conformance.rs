//! The store conformance suite (`nfs4d_store::conformance`) against the S3
//! store on a real S3 server: every fixture starts its own s3s-fs on
//! loopback over a fresh temporary directory, so checks never see each
//! other's objects.

mod common;

use nfs4d_store::conformance::{External, Fixture, ServerFault};
use nfs4d_store_s3::{S3Config, S3Store};

/// The store's configuration for s3s-fs, the test server.
fn config(srv: &common::Server) -> S3Config {
    S3Config {
        // s3s-fs names an object's metadata file after the whole key in
        // base64, so keys past about 150 bytes fail there with 500
        // (docs/objectstore.md); the suite's longest-name check then
        // expects NameTooLong from the store's own bound.
        name_max: 120,
        // s3s-fs answers a listing with 500 when an entry vanishes while
        // it walks the directory, which the suite's concurrency checks
        // make happen: the store retries (50 ms doubling to 2 s, about 7 s
        // in all) before it tells the client to retry.
        retries: 8,
        ..srv.config()
    }
}

/// A store on an empty bucket of a new s3s-fs, which the fixture keeps
/// running until the store is dropped.
fn fixture() -> Fixture {
    let Some(srv) = common::server() else {
        panic!("s3s-fs vanished after the availability check");
    };
    match S3Store::new(config(&srv)) {
        Ok(store) => Fixture::with_guard(store, srv),
        Err(e) => panic!("S3 store on s3s-fs at {}: {e}", srv.endpoint()),
    }
}

/// s3s-fs, and what it does unlike S3.
const S3S_FS: External = External {
    available: common::available,
    server_faults: &[ServerFault {
        check: "check_atomic_rename_replace",
        shows_as: &["a read of the target saw"],
        why: "s3s-fs copies an object over an existing key in place (truncate, then \
              write) and does not check If-Match, so a reader meanwhile gets a short or \
              empty object; S3's CopyObject replaces the object whole, and the store \
              renames by CopyObject",
    }],
};

nfs4d_store::store_conformance_tests!(s3, fixture, external = S3S_FS);

/// Every known fault names a check of the suite.
#[test]
fn server_faults_name_checks() {
    for f in S3S_FS.server_faults {
        assert!(
            nfs4d_store::conformance::CHECKS
                .iter()
                .any(|(name, _)| *name == f.check),
            "{} is not a check",
            f.check
        );
        assert!(!f.shows_as.is_empty() && !f.why.is_empty());
    }
}
