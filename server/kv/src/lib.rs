//! The durable key-value interface under the handle map and the stable
//! client records.
//!
//! The server keeps its durable state as named trees of byte keys and
//! values. Each single-key write is atomic on its own; [`Kv::flush`] makes
//! every write that returned before it durable. Multi-key changes are
//! ordered by their users so that any prefix of them that survives a crash
//! is consistent (see the handle map's commit order), so no implementation
//! needs transactions. [`Tree::compare_and_swap`] lets several writers
//! that share one store (heads of a cluster) claim a key exactly once.
//!
//! Implementations: [`MemKv`] here (tests; nothing survives the process),
//! sled for one head (`nfs4d-kv-sled`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

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
}

/// One tree of a [`MemKv`].
#[derive(Default)]
pub struct MemTree {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemTree {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
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
