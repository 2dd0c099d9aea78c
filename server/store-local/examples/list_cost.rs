//! Time per entry of listing one directory through the local store, with
//! and without each entry's attributes (`Store::list`'s `stat`, which
//! READDIR asks for whenever the client wants attributes), on one thread.
//! The difference is what the `statx` of each entry costs on this machine:
//! the floor of a server that stats every entry it lists
//! (docs/performance.md, Targets, readdir).
//!
//! ```sh
//! cargo run --release -p nfs4d-store-local --example list_cost [ENTRIES] [ROUNDS]
//! ```
//!
//! The directory (ENTRIES empty files, 10,000 by default) is made under
//! the system's temporary directory and removed afterwards. Run it on an
//! idle machine: the times are wall-clock times of a single thread.

use std::time::Instant;

use nfs4d_store::{ListPos, RelPath, Store};
use nfs4d_store_local::LocalStore;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let entries: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let dir = tempfile::tempdir().expect("temporary directory");
    let listed = dir.path().join("d");
    std::fs::create_dir(&listed).expect("directory");
    for i in 0..entries {
        std::fs::File::create(listed.join(format!("f{i:07}"))).expect("file");
    }
    let store = LocalStore::open(dir.path()).expect("open the local store");
    let path = RelPath::parse(b"d").expect("path");

    // One untimed listing of each kind fills the listing cache and warms
    // the kernel's dentry and inode caches, as a repeated `ls -l` finds them.
    let list = |stat: bool| -> usize {
        let mut n = 0;
        let eof = store
            .list(&path, &ListPos::Start, stat, &mut |_, got| {
                if stat {
                    assert!(matches!(got, Some(Ok(_))), "every entry stat'ed");
                }
                n += 1;
                true
            })
            .expect("list");
        assert!(eof, "one call lists the whole directory");
        n
    };
    assert_eq!(list(false), entries);
    assert_eq!(list(true), entries);

    let per_entry = |stat: bool| -> f64 {
        let t = Instant::now();
        for _ in 0..rounds {
            list(stat);
        }
        t.elapsed().as_nanos() as f64 / (entries * rounds) as f64
    };
    let names = per_entry(false);
    let stats = per_entry(true);
    println!("{entries} entries x {rounds} listings, one thread:");
    println!("  names only:            {names:7.0} ns per entry");
    println!("  names and attributes:  {stats:7.0} ns per entry");
    println!("  the stat of an entry:  {:7.0} ns", stats - names);
}
