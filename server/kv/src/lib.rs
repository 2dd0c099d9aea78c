//! The durable key-value interface under the handle map and the stable
//! client records.
//!
//! The server keeps its durable state as named trees of byte keys and
//! values. Each single-key write is atomic on its own; [`Kv::flush`] makes
//! every write that returned before it durable. Multi-key changes are
//! ordered by their users so that any prefix of them that survives a crash
//! is consistent (see the handle map's commit order), so no implementation
//! needs transactions for crash safety. Several writers that share one
//! store (heads of a cluster) need more: [`Tree::compare_and_swap`] claims
//! a key exactly once, [`Kv::commit`] applies a multi-key change only if
//! the keys it was planned from are unchanged (optimistic concurrency:
//! plan from reads, commit with those reads as checks, re-plan on a
//! conflict), and [`IdBlocks`] hands out ids from blocks reserved on a
//! shared counter so no two writers ever use the same id.
//!
//! Implementations: [`MemKv`] here (tests; nothing survives the process),
//! sled for one head (`nfs4d-kv-sled`), etcd for a cluster of heads
//! (`nfs4d-cluster`).

mod ids;

pub use ids::IdBlocks;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Why a key-value call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The store cannot be reached now (a cluster without quorum): retry.
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
    /// Any other failure of the store, with its own description.
    #[error("key-value store: {0}")]
    Store(String),
}

/// Result of key-value calls.
pub type KvResult<T> = Result<T, KvError>;

/// One key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Most checks, and most writes, one [`Batch`] may hold. etcd refuses a
/// transaction with more than 128 comparisons or operations per branch by
/// default (`--max-txn-ops`); a batch stays well below.
pub const MAX_BATCH_OPS: usize = 64;

/// A key of a named tree and a value for it (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The tree's name, as given to [`Kv::tree`].
    pub tree: String,
    /// The key inside that tree.
    pub key: Vec<u8>,
    /// The value; `None` means the key is absent.
    pub value: Option<Vec<u8>>,
}

/// A multi-key change for [`Kv::commit`]: the writes are applied, in
/// order, only if every check holds (the key has exactly that value, or
/// is absent for `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// States the change was planned from.
    pub checks: Vec<KeyState>,
    /// States to set: a value is written, `None` removes the key.
    pub writes: Vec<KeyState>,
}

impl Batch {
    /// Refuses batches larger than [`MAX_BATCH_OPS`] (both lists), so
    /// every store can apply one in a single step.
    pub fn check_size(&self) -> KvResult<()> {
        if self.checks.len() > MAX_BATCH_OPS || self.writes.len() > MAX_BATCH_OPS {
            return Err(KvError::Store(format!(
                "batch of {} checks and {} writes exceeds {MAX_BATCH_OPS} of either",
                self.checks.len(),
                self.writes.len()
            )));
        }
        Ok(())
    }
}

/// A named set of keys.
pub trait Tree: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>>;

    /// Sets `key` to `value`.
    fn insert(&self, key: &[u8], value: &[u8]) -> KvResult<()>;

    /// Removes `key`; removing an absent key is no error.
    fn remove(&self, key: &[u8]) -> KvResult<()>;

    /// Sets `key` to `new` (`None`: removes it) if its value is `old`
    /// (`None`: absent). On a mismatch returns the current value and
    /// changes nothing.
    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> KvResult<Result<(), Option<Vec<u8>>>>;

    /// The keys starting with `prefix`, in key order, with their values.
    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Box<dyn Iterator<Item = KvResult<Pair>> + 'a>;
}

/// A store of named trees.
pub trait Kv: Send + Sync {
    /// The tree called `name`, created empty if it does not exist.
    fn tree(&self, name: &str) -> KvResult<Arc<dyn Tree>>;

    /// Makes every write that returned before this call durable.
    fn flush(&self) -> KvResult<()>;

    /// Applies `batch.writes` if every one of `batch.checks` holds, as one
    /// step no other writer of the store can interleave with; otherwise
    /// changes nothing and returns the index of the first check that
    /// failed. Batches over [`MAX_BATCH_OPS`] are refused.
    ///
    /// After [`KvError::Unavailable`] the batch may or may not have been
    /// applied: read again before deciding. Never infer success from the
    /// keys holding the written values — another writer may have written
    /// the same ones.
    ///
    /// Durability is that of single writes: a store that needs
    /// [`Kv::flush`] needs it here too, and one that is not crash-atomic
    /// (sled without transactions) may keep a prefix of the writes after a
    /// crash, which callers handle as they do for single-key writes.
    fn commit(&self, batch: &Batch) -> KvResult<Result<(), usize>>;

    /// [`Kv::commit`], returning on success the store's revision of the
    /// change: a number that grows with every change of the store, which
    /// other writers' change feeds report (etcd's revision). Stores
    /// without revisions return 0.
    fn commit_at(&self, batch: &Batch) -> KvResult<Result<u64, usize>> {
        Ok(self.commit(batch)?.map(|()| 0))
    }
}

/// Keys and values in memory. Cloning shares the trees, so a test can
/// "restart" a server on the same state.
#[derive(Clone, Default)]
pub struct MemKv {
    trees: Arc<Mutex<BTreeMap<String, Arc<MemTree>>>>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> MemKv {
        MemKv::default()
    }
}

impl Kv for MemKv {
    fn tree(&self, name: &str) -> KvResult<Arc<dyn Tree>> {
        let mut trees = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
        let t = trees.entry(name.to_string()).or_default().clone();
        Ok(t)
    }

    fn flush(&self) -> KvResult<()> {
        Ok(())
    }

    fn commit(&self, batch: &Batch) -> KvResult<Result<(), usize>> {
        batch.check_size()?;
        // Lock every tree involved, in name order (so two commits cannot
        // deadlock), for the whole check-and-apply: single-key calls on
        // those trees wait, as they would behind one etcd transaction.
        let names: std::collections::BTreeSet<&str> = batch
            .checks
            .iter()
            .chain(&batch.writes)
            .map(|s| s.tree.as_str())
            .collect();
        let trees: Vec<Arc<MemTree>> = {
            let mut all = self.trees.lock().unwrap_or_else(PoisonError::into_inner);
            names
                .iter()
                .map(|n| all.entry((*n).to_string()).or_default().clone())
                .collect()
        };
        let mut maps: BTreeMap<&str, MutexGuard<'_, Map>> = names
            .iter()
            .zip(&trees)
            .map(|(n, t)| (*n, t.map()))
            .collect();
        for (i, c) in batch.checks.iter().enumerate() {
            let cur = maps.get(c.tree.as_str()).and_then(|m| m.get(&c.key));
            if cur != c.value.as_ref() {
                return Ok(Err(i));
            }
        }
        for w in &batch.writes {
            if let Some(m) = maps.get_mut(w.tree.as_str()) {
                match &w.value {
                    Some(v) => m.insert(w.key.clone(), v.clone()),
                    None => m.remove(&w.key),
                };
            }
        }
        Ok(Ok(()))
    }
}

/// The keys and values of one [`MemTree`].
type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// One tree of a [`MemKv`].
#[derive(Default)]
pub struct MemTree {
    map: Mutex<Map>,
}

impl MemTree {
    fn map(&self) -> MutexGuard<'_, Map> {
        // Every operation leaves the map consistent between statements.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tree for MemTree {
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        Ok(self.map().get(key).cloned())
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.map().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.map().remove(key);
        Ok(())
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> KvResult<Result<(), Option<Vec<u8>>>> {
        let mut m = self.map();
        let cur = m.get(key).map(Vec::as_slice);
        if cur != old {
            return Ok(Err(cur.map(<[u8]>::to_vec)));
        }
        match new {
            Some(v) => m.insert(key.to_vec(), v.to_vec()),
            None => m.remove(key),
        };
        Ok(Ok(()))
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Box<dyn Iterator<Item = KvResult<Pair>> + 'a> {
        // A snapshot: callers may write to the tree while iterating.
        let items: Vec<Pair> = self
            .map()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Box::new(items.into_iter().map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_separate_and_shared_by_clones() {
        let kv = MemKv::new();
        let a = kv.tree("a").expect("tree");
        let b = kv.tree("b").expect("tree");
        a.insert(b"k", b"1").expect("insert");
        assert_eq!(b.get(b"k").expect("get"), None);
        let again = kv.clone().tree("a").expect("tree");
        assert_eq!(again.get(b"k").expect("get"), Some(b"1".to_vec()));
    }

    #[test]
    fn compare_and_swap_claims_once() {
        let t = MemKv::new().tree("t").expect("tree");
        assert_eq!(t.compare_and_swap(b"k", None, Some(b"x")), Ok(Ok(())));
        assert_eq!(
            t.compare_and_swap(b"k", None, Some(b"y")),
            Ok(Err(Some(b"x".to_vec())))
        );
        assert_eq!(t.compare_and_swap(b"k", Some(b"x"), None), Ok(Ok(())));
        assert_eq!(t.get(b"k"), Ok(None));
    }

    fn state(tree: &str, key: &[u8], value: Option<&[u8]>) -> KeyState {
        KeyState {
            tree: tree.into(),
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    #[test]
    fn commit_applies_all_or_nothing_across_trees() {
        let kv = MemKv::new();
        let a = kv.tree("a").expect("tree");
        let b = kv.tree("b").expect("tree");
        a.insert(b"rec", b"v1").expect("insert");
        let batch = Batch {
            checks: vec![state("a", b"rec", Some(b"v1")), state("b", b"name", None)],
            writes: vec![
                state("a", b"rec", Some(b"v2")),
                state("b", b"name", Some(b"rec")),
            ],
        };
        assert_eq!(kv.commit(&batch), Ok(Ok(())));
        assert_eq!(a.get(b"rec"), Ok(Some(b"v2".to_vec())));
        assert_eq!(b.get(b"name"), Ok(Some(b"rec".to_vec())));
        // The same batch again was planned from a state that is gone: its
        // first check (rec = v1) is the one reported.
        assert_eq!(kv.commit(&batch), Ok(Err(0)));
        let only_second = Batch {
            checks: vec![state("a", b"rec", Some(b"v2")), state("b", b"name", None)],
            writes: vec![state("a", b"rec", None)],
        };
        assert_eq!(kv.commit(&only_second), Ok(Err(1)));
        assert_eq!(a.get(b"rec"), Ok(Some(b"v2".to_vec())), "nothing applied");
    }

    #[test]
    fn commit_refuses_oversized_batches() {
        let kv = MemKv::new();
        let batch = Batch {
            checks: Vec::new(),
            writes: (0..=MAX_BATCH_OPS)
                .map(|i| state("t", &i.to_be_bytes(), Some(b"x")))
                .collect(),
        };
        assert!(matches!(kv.commit(&batch), Err(KvError::Store(_))));
        assert_eq!(kv.tree("t").expect("tree").scan_prefix(b"").count(), 0);
    }

    #[test]
    fn concurrent_commits_claim_a_key_once() {
        let kv = MemKv::new();
        let winners = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let (kv, winners) = (&kv, &winners);
                s.spawn(move || {
                    let batch = Batch {
                        checks: vec![state("names", b"n", None)],
                        writes: vec![
                            state("names", b"n", Some(&[i])),
                            state("objects", &[i], Some(b"rec")),
                        ],
                    };
                    if kv.commit(&batch) == Ok(Ok(())) {
                        winners.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(winners.into_inner(), 1);
        let objects = kv.tree("objects").expect("tree").scan_prefix(b"").count();
        assert_eq!(objects, 1, "only the winner's record was written");
    }

    #[test]
    fn scan_prefix_is_ordered_and_bounded() {
        let t = MemKv::new().tree("t").expect("tree");
        for k in [&b"ab2"[..], b"ab1", b"ac", b"a", b"b"] {
            t.insert(k, k).expect("insert");
        }
        let keys: Vec<Vec<u8>> = t.scan_prefix(b"ab").map(|r| r.expect("item").0).collect();
        assert_eq!(keys, vec![b"ab1".to_vec(), b"ab2".to_vec()]);
    }
}
