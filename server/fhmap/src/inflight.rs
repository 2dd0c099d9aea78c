//! Write sequence numbers, and the commits of a sole writer that have left
//! the write lock but whose writes are still going to the store.
//!
//! Why commits leave the lock early: a new handle costs three store
//! inserts (name, inode and record), which took two thirds of the time the
//! write lock was held, and with the lock held for them, requests creating
//! files in parallel queued behind it (OPEN with create, measured in
//! docs/performance.md). A sole writer therefore plans under the lock,
//! publishes its writes here, releases the lock, and writes them.
//!
//! What keeps the map's rules while writes are in flight:
//! * a plan reads a published write in place of the store's value (and of
//!   the record cache's), so it plans against the state every earlier
//!   commit leads to;
//! * a plan that read a published write returns only once that write is
//!   in the store: its caller may hand out an id the store must resolve;
//! * a commit writing a key that an earlier one still has in flight waits
//!   for it first, so the later value is the one that stays;
//! * "completed" is the highest sequence number at or below which every
//!   commit is fully written, which is what a flush started afterwards
//!   covers (`durability.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, PoisonError};

use super::lock;
use super::txn::{TreeId, Write};

/// A published write: its commit's sequence number and the value
/// (`None`: removed).
type Entry = (u64, Option<Vec<u8>>);

#[derive(Default)]
pub(super) struct InFlight {
    state: Mutex<State>,
    done: Condvar,
    /// Highest sequence number handed out. Bumped before the commit writes
    /// anything, so anyone who can observe a write sees `issued` ≥ its seq.
    issued: AtomicU64,
    /// Every sequence number ≤ this is fully written.
    completed: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Published writes, one map per tree (`TreeId as usize`), so that a
    /// lookup takes the caller's key as it is.
    keys: [BTreeMap<Vec<u8>, Entry>; TreeId::COUNT],
    /// Sequence numbers issued and not finished.
    open: BTreeSet<u64>,
    /// Threads in [`InFlight::wait_completed`]: finishing wakes them only
    /// if there are any (a wake-up is a system call).
    waiters: usize,
}

impl InFlight {
    /// The next sequence number, with `writes` published under it. Callers
    /// hold the map's write lock, so sequence numbers follow plan order.
    pub(super) fn issue(&self, writes: &[Write]) -> u64 {
        let mut st = lock(&self.state);
        let seq = self.issued.fetch_add(1, SeqCst) + 1;
        st.open.insert(seq);
        for w in writes {
            let (t, k, v) = w.parts();
            st.keys[t as usize].insert(k.to_vec(), (seq, v.map(<[u8]>::to_vec)));
        }
        seq
    }

    /// Ends commit `seq` (written, or given up on error): withdraws its
    /// published writes and advances `completed`.
    pub(super) fn finish(&self, seq: u64) {
        let mut st = lock(&self.state);
        for tree in &mut st.keys {
            tree.retain(|_, (s, _)| *s != seq);
        }
        st.open.remove(&seq);
        // Nothing is issued without this lock, so with no commit open
        // every issued number is complete.
        let completed = match st.open.first() {
            Some(first) => first - 1,
            None => self.issued.load(SeqCst),
        };
        self.completed.fetch_max(completed, SeqCst);
        if st.waiters > 0 {
            self.done.notify_all();
        }
    }

    /// The published value of `key` in tree `t`, if a commit in flight
    /// writes it.
    pub(super) fn get(&self, t: TreeId, key: &[u8]) -> Option<Entry> {
        lock(&self.state).keys[t as usize].get(key).cloned()
    }

    /// Published writes of tree `t` whose keys start with `prefix`.
    pub(super) fn scan(&self, t: TreeId, prefix: &[u8]) -> Vec<(Vec<u8>, Entry)> {
        lock(&self.state).keys[t as usize]
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect()
    }

    /// The latest commit in flight that writes one of `writes`' keys.
    pub(super) fn conflict(&self, writes: &[Write]) -> Option<u64> {
        let st = lock(&self.state);
        writes
            .iter()
            .filter_map(|w| {
                let (t, k, _) = w.parts();
                st.keys[t as usize].get(k).map(|(s, _)| *s)
            })
            .max()
    }

    /// Returns once every commit with sequence number ≤ `seq` is written.
    /// Commits in flight hold no lock a waiter could hold, so they finish.
    pub(super) fn wait_completed(&self, seq: u64) {
        if self.completed.load(SeqCst) >= seq {
            return;
        }
        let mut st = lock(&self.state);
        st.waiters += 1;
        while self.completed.load(SeqCst) < seq {
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.waiters -= 1;
    }

    pub(super) fn issued(&self) -> u64 {
        self.issued.load(SeqCst)
    }

    pub(super) fn completed(&self) -> u64 {
        self.completed.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    //! A commit is stopped half-written (at its record insert) while other
    //! threads plan against the same keys.

    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc::{self, RecvTimeoutError};
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    use nfs4d_kv::{Kv, KvResult, Pair, Tree};

    use super::super::record::name_key;
    use super::super::{random_key, FhMap, HandleMode, ObjKey, ObjectId};
    use super::SeqCst;

    const E: u32 = 1;
    const REG: u8 = 1;

    /// Long enough for a thread that should have returned to have done so.
    const SETTLE: Duration = Duration::from_millis(300);

    fn key(ino: u64) -> ObjKey {
        ObjKey {
            dev: 9,
            ino,
            gen: 1,
        }
    }

    /// Stops the first insert into tree `tree` after `armed` is set: the
    /// writer meets the test at `reached`, then waits at `release`.
    struct Gate {
        tree: &'static str,
        armed: AtomicBool,
        reached: Option<Barrier>,
        release: Option<Barrier>,
    }

    impl Gate {
        fn new(tree: &'static str) -> Arc<Gate> {
            Arc::new(Gate {
                tree,
                armed: AtomicBool::new(false),
                reached: Some(Barrier::new(2)),
                release: Some(Barrier::new(2)),
            })
        }

        fn pass(&self) {
            if self.armed.swap(false, SeqCst) {
                self.reached.as_ref().map(Barrier::wait);
                self.release.as_ref().map(Barrier::wait);
            }
        }
    }

    struct GatedKv(nfs4d_kv_sled::SledKv, Arc<Gate>);
    struct GatedTree(Arc<dyn Tree>, Option<Arc<Gate>>);

    impl Kv for GatedKv {
        fn tree(&self, name: &str) -> KvResult<Arc<dyn Tree>> {
            let gate = (name == self.1.tree).then(|| self.1.clone());
            Ok(Arc::new(GatedTree(self.0.tree(name)?, gate)))
        }
        fn flush(&self) -> KvResult<()> {
            self.0.flush()
        }
        fn commit(&self, batch: &nfs4d_kv::Batch) -> KvResult<Result<(), usize>> {
            self.0.commit(batch)
        }
    }

    impl Tree for GatedTree {
        fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
            self.0.get(key)
        }
        fn insert(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
            if let Some(g) = &self.1 {
                g.pass();
            }
            self.0.insert(key, value)
        }
        fn remove(&self, key: &[u8]) -> KvResult<()> {
            self.0.remove(key)
        }
        fn compare_and_swap(
            &self,
            key: &[u8],
            old: Option<&[u8]>,
            new: Option<&[u8]>,
        ) -> KvResult<Result<(), Option<Vec<u8>>>> {
            self.0.compare_and_swap(key, old, new)
        }
        fn scan_prefix<'a>(
            &'a self,
            prefix: &[u8],
        ) -> Box<dyn Iterator<Item = KvResult<Pair>> + 'a> {
            self.0.scan_prefix(prefix)
        }
    }

    /// A map whose commits can be stopped at their first insert into `tree`.
    fn setup_at(tree: &'static str) -> (tempfile::TempDir, Arc<FhMap>, Arc<Gate>, ObjectId) {
        let dir = tempfile::tempdir().expect("tempdir");
        let gate = Gate::new(tree);
        let kv = nfs4d_kv_sled::SledKv::open(dir.path(), 8 << 20).expect("sled");
        let map = FhMap::open(
            Arc::new(GatedKv(kv, gate.clone())),
            HandleMode::Persistent,
            random_key,
        )
        .expect("open");
        let root = map.ensure_export_root(E, key(1)).expect("root");
        (dir, Arc::new(map), gate, root)
    }

    /// Stopped at the record insert, the last of a new file's three.
    fn setup() -> (tempfile::TempDir, Arc<FhMap>, Arc<Gate>, ObjectId) {
        setup_at("objects")
    }

    /// Runs `f` on a thread; the receiver gets its result.
    fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx
    }

    type Inserted = mpsc::Receiver<super::super::Result<ObjectId>>;

    /// Starts `lookup_or_insert` of `name` and returns once its commit has
    /// left the write lock and stopped before writing the record.
    fn insert_held(map: &Arc<FhMap>, gate: &Gate, root: ObjectId, name: &'static [u8]) -> Inserted {
        gate.armed.store(true, SeqCst);
        let m = map.clone();
        let first = spawn(move || m.lookup_or_insert(E, root, name, key(2), REG));
        gate.reached.as_ref().map(Barrier::wait);
        first
    }

    #[test]
    fn a_plan_that_reads_a_commit_in_flight_returns_once_it_is_written() {
        let (_d, map, gate, root) = setup();
        let first = insert_held(&map, &gate, root, b"x");

        // Same name, same file: the plan finds the id being written (not a
        // second id for it) and returns only once its record is stored.
        let m = map.clone();
        let second = spawn(move || m.lookup_or_insert(E, root, b"x", key(2), REG));
        let m = map.clone();
        let upto = map.last_seq();
        let durable = spawn(move || m.make_durable(upto));
        assert_eq!(
            second.recv_timeout(SETTLE).err(),
            Some(RecvTimeoutError::Timeout),
            "returned an id whose record is not stored yet"
        );
        assert_eq!(
            durable.recv_timeout(Duration::ZERO).err(),
            Some(RecvTimeoutError::Timeout),
            "made durable before the write was done"
        );

        gate.release.as_ref().map(Barrier::wait);
        let id = second.recv().expect("thread").expect("lookup");
        assert_eq!(
            first.recv().expect("thread").expect("insert"),
            id,
            "one file, one id"
        );
        durable.recv().expect("thread").expect("durable");
        let rec = map.get(id).expect("get").expect("record stored");
        assert!(rec.has_link(root, b"x"));
        assert_eq!(
            map.lookup_name(E, root, b"x").expect("name").map(|r| r.0),
            Some(id)
        );
    }

    #[test]
    fn a_commit_rewriting_a_key_in_flight_lands_after_it() {
        let (_d, map, gate, root) = setup();
        let first = insert_held(&map, &gate, root, b"x");

        // The remove sees the file through the commit in flight, and its
        // deletions wait for that commit's inserts: otherwise the record
        // insert, still to come, would bring the file back.
        let m = map.clone();
        let removed = spawn(move || m.remove(E, root, b"x"));
        assert_eq!(
            removed.recv_timeout(SETTLE).err(),
            Some(RecvTimeoutError::Timeout),
            "removed before the insert it undoes was written"
        );
        gate.release.as_ref().map(Barrier::wait);
        let id = removed
            .recv()
            .expect("thread")
            .expect("remove")
            .expect("the name was linked");
        assert_eq!(first.recv().expect("thread").expect("insert"), id);
        assert_eq!(
            map.get(id).expect("get"),
            None,
            "record outlived its last link"
        );
        assert_eq!(
            map.trees
                .names
                .get(&name_key(E, root, b"x"))
                .expect("names"),
            None
        );
        assert_eq!(map.lookup_name(E, root, b"x").expect("name"), None);
    }

    #[test]
    fn a_directory_collected_while_a_child_is_in_flight_takes_the_child_along() {
        // Stopped before the child's name is in the store.
        let (_d, map, gate, root) = setup_at("names");
        let dir = map
            .lookup_or_insert(E, root, b"d", key(5), super::super::NF4DIR)
            .expect("dir");
        let first = insert_held(&map, &gate, dir, b"x");
        // The directory's last link goes: everything recorded below it
        // goes too, including the child only a commit in flight has named.
        let m = map.clone();
        let removed = spawn(move || m.remove(E, root, b"d"));
        gate.release.as_ref().map(Barrier::wait);
        assert_eq!(removed.recv().expect("thread").expect("remove"), Some(dir));
        let child = first.recv().expect("thread").expect("insert");
        assert_eq!(map.get(dir).expect("get"), None);
        assert_eq!(
            map.get(child).expect("get"),
            None,
            "child outlived its parent"
        );
        assert_eq!(
            map.trees.names.get(&name_key(E, dir, b"x")).expect("names"),
            None
        );
    }

    #[test]
    fn an_unrelated_commit_does_not_wait_for_one_in_flight() {
        let (_d, map, gate, root) = setup();
        let _first = insert_held(&map, &gate, root, b"x");
        let m = map.clone();
        let other = spawn(move || m.lookup_or_insert(E, root, b"y", key(3), REG));
        let id = other
            .recv_timeout(Duration::from_secs(10))
            .expect("a commit on other keys went ahead")
            .expect("lookup");
        assert!(map.get(id).expect("get").is_some());
        gate.release.as_ref().map(Barrier::wait);
    }
}
