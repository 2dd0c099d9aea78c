//! The store conformance suite: the behaviour every store must show,
//! whatever it is built on. Each store crate runs it from its own tests.
//!
//! # Running it against a store
//!
//! A store crate writes one file, `tests/conformance.rs`:
//!
//! ```text
//! use nfs4d_store::conformance::Fixture;
//!
//! fn fixture() -> Fixture {
//!     // A fresh, empty store for every check. Whatever keeps its backing
//!     // alive (a temporary directory, a test server) goes in as the guard
//!     // and is dropped after the store.
//!     let dir = tempfile::tempdir().expect("tempdir");
//!     let store = MyStore::open(dir.path()).expect("store");
//!     Fixture::with_guard(store, dir)
//! }
//!
//! nfs4d_store::store_conformance_tests!(fixture);
//! ```
//!
//! A store on a server program the test starts passes an [`External`]
//! too, `store_conformance_tests!(fixture, external = E)`: whether the
//! program is installed (a loud skip without it, a failure in CI), and
//! the faults of that program, not of the store, that a check can show.
//!
//! The macro expands to one `#[test]` per check, named after it
//! (`check_rename_directories`, …), so a failure names the contract that
//! broke. To run the suite against several configurations of one store,
//! give each a module name: `store_conformance_tests!(reduced, || …);`.
//! [`CHECKS`] lists the same checks for callers that drive them
//! themselves.
//!
//! # What a store must provide
//!
//! - The factory returns a *fresh, empty* export for every call: checks
//!   count directory entries and assume the root starts empty.
//! - [`Store::capabilities`] must tell the truth. Checks are
//!   capability-aware: for a feature the store lacks they assert the
//!   RFC-facing answer instead ([`StoreError::Unsupported`] from the
//!   calls, [`StoreError::CrossDevice`] past a [`DirRename`] limit, the
//!   kind of [`ListPos`] that [`Positions`] announces, …).
//! - The suite runs as the server does: as root where a local file system
//!   is behind the store (device nodes need it). Whatever the store needs
//!   process-wide is the factory's to set up once: a store whose leases
//!   are signalled (file leases raise SIGIO) needs the signal handled, or
//!   the first lease break ends the test process.
//! - Checks run in parallel (one test thread each), each on its own
//!   fixture.
//!
//! Where POSIX allows several answers (a directory renamed over a
//! non-empty one may give `ENOTEMPTY` or `EEXIST`), a check accepts the
//! whole set. Store-specific behaviour (what a local file system does
//! with atime, how an object store pages) stays out of the suite; store
//! crates test it themselves.
//!
//! Every check is bounded in time and size: the concurrency checks run a
//! fixed number of operations, and nothing writes more than a few MiB.

use std::any::Any;
use std::sync::Arc;

use crate::{DirRename, ListPos, Positions, Store, StoreError};

mod concurrency;
mod data;
mod extras;
mod kit;
mod listing;
mod meta;
mod namespace;

pub use concurrency::{
    check_atomic_rename_replace, check_concurrent_io, check_concurrent_namespace,
};
pub use data::{
    check_read_write, check_rename_keeps_unstable_data, check_setattr_size, check_write_lifecycle,
    check_write_piped,
};
pub use extras::{
    check_allocate_deallocate, check_clone_range, check_copy_range, check_hard_links, check_leases,
    check_lock_files, check_seek_data_hole, check_special_files, check_statfs, check_xattrs,
};
pub use listing::{
    check_list_basic, check_list_resume_every_position, check_list_stat_matches_lookup,
    check_list_under_churn, check_list_visit_stops,
};
pub use meta::{
    check_change_attribute, check_identity, check_setattr_mode_owner, check_setattr_times,
};
pub use namespace::{
    check_create_file, check_mkdir_rmdir, check_names_round_trip, check_remove,
    check_rename_directories, check_rename_files, check_root_and_lstat, check_symlink_targets,
    check_symlinks_never_followed,
};

/// A store under test and whatever keeps its backing alive.
pub struct Fixture {
    /// Dropped before `guard` (fields drop in declaration order).
    store: Arc<dyn Store>,
    guard: Box<dyn Any + Send>,
}

impl Fixture {
    /// A store that needs nothing else kept alive.
    pub fn new(store: impl Store) -> Fixture {
        Fixture::from_arc(Arc::new(store), ())
    }

    /// A store whose backing `guard` (a temporary directory, a test server
    /// process) must outlive it.
    pub fn with_guard(store: impl Store, guard: impl Any + Send) -> Fixture {
        Fixture::from_arc(Arc::new(store), guard)
    }

    /// A store already shared.
    pub fn from_arc(store: Arc<dyn Store>, guard: impl Any + Send) -> Fixture {
        Fixture {
            store,
            guard: Box::new(guard),
        }
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// A shared handle on the store, for checks that use threads.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The guard given at construction.
    pub fn guard(&self) -> &(dyn Any + Send) {
        &*self.guard
    }
}

/// What a check is given: a way to make fresh fixtures.
pub type Factory<'a> = &'a dyn Fn() -> Fixture;

/// One check of the suite.
pub type Check = fn(Factory<'_>);

/// Calls `$then!{ $($pre)* ; check_a, check_b, … }` with the names of all
/// checks: the one list the test macro and [`CHECKS`] are built from.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_list {
    ($then:ident { $($pre:tt)* }) => {
        $crate::$then! { $($pre)* ;
            check_root_and_lstat,
            check_symlinks_never_followed,
            check_symlink_targets,
            check_names_round_trip,
            check_create_file,
            check_mkdir_rmdir,
            check_remove,
            check_rename_files,
            check_rename_directories,
            check_read_write,
            check_write_lifecycle,
            check_write_piped,
            check_rename_keeps_unstable_data,
            check_setattr_size,
            check_setattr_mode_owner,
            check_setattr_times,
            check_identity,
            check_change_attribute,
            check_list_basic,
            check_list_resume_every_position,
            check_list_stat_matches_lookup,
            check_list_visit_stops,
            check_list_under_churn,
            check_statfs,
            check_xattrs,
            check_hard_links,
            check_special_files,
            check_allocate_deallocate,
            check_seek_data_hole,
            check_copy_range,
            check_clone_range,
            check_lock_files,
            check_leases,
            check_concurrent_namespace,
            check_concurrent_io,
            check_atomic_rename_replace,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_each {
    ($factory:expr ; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let factory = $factory;
                $crate::conformance::$check(&factory);
            }
        )*
    };
    ($factory:expr, $external:expr ; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let factory = $factory;
                $crate::conformance::run_external(
                    stringify!($check),
                    $crate::conformance::$check,
                    &factory,
                    &$external,
                );
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_table {
    (; $($check:ident),* $(,)?) => {
        /// Every check of the suite, by name.
        pub const CHECKS: &[(&str, Check)] = &[$((stringify!($check), $check as Check)),*];
    };
}

/// Expands to one `#[test]` per conformance check, each calling the check
/// with the given factory (an expression of a type that is
/// `Fn() -> Fixture`). With a leading module name the tests go into a
/// module of that name, so one crate can run the suite against several
/// configurations.
///
/// A store whose backing is a server program the test starts (an S3
/// server) adds `external = E`, an [`External`] that says whether the
/// program is installed and which faults of that program (not of the
/// store) a check may show.
#[macro_export]
macro_rules! store_conformance_tests {
    ($module:ident, $factory:expr, external = $external:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance_tests!($factory, external = $external);
        }
    };
    // Before the arms without `external`: an `external = E` would
    // otherwise parse as an assignment expression in `$factory`.
    ($factory:expr, external = $external:expr) => {
        $crate::__store_conformance_list!(__store_conformance_each {
            $factory,
            $external
        });
    };
    ($module:ident, $factory:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance_tests!($factory);
        }
    };
    ($factory:expr) => {
        $crate::__store_conformance_list!(__store_conformance_each { $factory });
    };
}

/// The server program behind a store under test.
pub struct External {
    /// Whether the program is installed. Without it a check says so
    /// loudly and returns false (a developer machine); where the program
    /// is required (CI) it panics instead.
    pub available: fn() -> bool,
    /// Faults of the program itself that a check can show.
    pub server_faults: &'static [ServerFault],
}

/// A known fault of a test server, not of the store: the check still runs
/// in full, and a failure whose message holds one of `shows_as` is
/// reported (on stderr, with `why`) instead of failing the test. Any other
/// failure of the check fails it.
pub struct ServerFault {
    /// The check's name (`check_…`).
    pub check: &'static str,
    /// Parts of the failure messages the fault gives.
    pub shows_as: &'static [&'static str],
    /// What the server does wrong, and why the store cannot help it.
    pub why: &'static str,
}

/// Runs `check` for a store on an [`External`] server.
pub fn run_external(name: &str, check: Check, factory: Factory<'_>, ext: &External) {
    if !(ext.available)() {
        return;
    }
    let Some(fault) = ext.server_faults.iter().find(|f| f.check == name) else {
        check(factory);
        return;
    };
    let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(factory)))
    else {
        eprintln!("{name}: passed; the server fault it can show did not show this time");
        return;
    };
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    if !fault.shows_as.iter().any(|s| msg.contains(s)) {
        std::panic::resume_unwind(panic);
    }
    eprintln!(
        "{name}: KNOWN FAULT OF THE TEST SERVER, not of the store: {msg:?}: {}",
        fault.why
    );
}

crate::__store_conformance_list!(__store_conformance_table {});

/// How a directory's rename is limited, as the checks need it.
fn dir_rename_allows(limit: DirRename, objects_below: u64) -> bool {
    match limit {
        DirRename::Any => true,
        DirRename::UpTo(n) => objects_below <= n,
        DirRename::EmptyOnly => objects_below == 0,
    }
}

/// Whether `pos` is the kind of position `positions` announces.
fn position_matches(positions: Positions, pos: &ListPos) -> bool {
    match (positions, pos) {
        // RFC 8881 §18.23.3 reserves cookies 0, 1 and 2.
        (Positions::Offsets, ListPos::Offset(o)) => *o > 2,
        (Positions::Keys, ListPos::Key(_)) => true,
        _ => false,
    }
}

/// The errors a check accepts from a call a store cannot do.
const UNSUPPORTED: &[StoreError] = &[StoreError::Unsupported];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_are_unique() {
        let mut names: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
        assert!(names.iter().all(|n| n.starts_with("check_")));
    }

    #[test]
    fn limits_and_positions() {
        assert!(dir_rename_allows(DirRename::Any, u64::MAX));
        assert!(dir_rename_allows(DirRename::UpTo(3), 3));
        assert!(!dir_rename_allows(DirRename::UpTo(3), 4));
        assert!(dir_rename_allows(DirRename::EmptyOnly, 0));
        assert!(!dir_rename_allows(DirRename::EmptyOnly, 1));
        assert!(position_matches(Positions::Offsets, &ListPos::Offset(3)));
        assert!(!position_matches(Positions::Offsets, &ListPos::Offset(2)));
        assert!(!position_matches(Positions::Offsets, &ListPos::Start));
        assert!(position_matches(
            Positions::Keys,
            &ListPos::Key(Arc::from(&b"k"[..]))
        ));
        assert!(!position_matches(Positions::Keys, &ListPos::Offset(7)));
    }
}
