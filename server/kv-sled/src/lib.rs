//! [`nfs4d_kv::Kv`] on sled: one database per state directory, every tree
//! of the server (handle map, client records, open files) in it, so one
//! flush makes all of them durable together.
//!
//! sled's own transactions and batches are not used: in sled 0.34 they take
//! a process-global lock exclusively, and `flush` holds that lock shared
//! for the whole fsync, so every write would wait for every flush. Single
//! key writes and `compare_and_swap` do not.

use std::path::Path;
use std::sync::Arc;

use nfs4d_kv::{Batch, Kv, KvError, KvResult, Pair, Tree};

/// A sled database.
pub struct SledKv {
    db: sled::Db,
    /// Serialises [`Kv::commit`]s: each checks and writes under it, so no
    /// two batches interleave. One process owns a sled database, and the
    /// server writes any key it commits only through commits or
    /// compare-and-swap, so this is the atomicity the batch promises.
    commits: std::sync::Mutex<()>,
}

fn err(e: sled::Error) -> KvError {
    KvError::Store(e.to_string())
}

impl SledKv {
    /// Opens (or creates) the database in directory `path` with a page
    /// cache of `cache_capacity_bytes`.
    pub fn open(path: &Path, cache_capacity_bytes: u64) -> KvResult<SledKv> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity_bytes)
            .open()
            .map_err(err)?;
        Ok(SledKv {
            db,
            commits: std::sync::Mutex::new(()),
        })
    }

    /// The default tree's name: the map's metadata lived there before the
    /// key-value interface existed, so the name keeps old state readable.
    pub const DEFAULT_TREE: &'static str = "__sled__default";
}

impl Kv for SledKv {
    fn tree(&self, name: &str) -> KvResult<Arc<dyn Tree>> {
        let t = if name == Self::DEFAULT_TREE {
            (*self.db).clone()
        } else {
            self.db.open_tree(name).map_err(err)?
        };
        Ok(Arc::new(SledTree(t)))
    }

    fn flush(&self) -> KvResult<()> {
        self.db.flush().map(drop).map_err(err)
    }

    fn commit(&self, batch: &Batch) -> KvResult<Result<(), usize>> {
        batch.check_size()?;
        let _one = self
            .commits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (i, c) in batch.checks.iter().enumerate() {
            let cur = self.tree(&c.tree)?.get(&c.key)?;
            if cur != c.value {
                return Ok(Err(i));
            }
        }
        // Not crash-atomic (see `Kv::commit`): a crash may keep a prefix
        // of the writes, as with single-key writes.
        for w in &batch.writes {
            let t = self.tree(&w.tree)?;
            match &w.value {
                Some(v) => t.insert(&w.key, v)?,
                None => t.remove(&w.key)?,
            }
        }
        Ok(Ok(()))
    }
}

impl Drop for SledKv {
    fn drop(&mut self) {
        // sled flushes in the background too; a last flush keeps a clean
        // shutdown from losing the final writes.
        let _ = self.db.flush();
    }
}

struct SledTree(sled::Tree);

impl Tree for SledTree {
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        Ok(self.0.get(key).map_err(err)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.0.insert(key, value).map(drop).map_err(err)
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.0.remove(key).map(drop).map_err(err)
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> KvResult<Result<(), Option<Vec<u8>>>> {
        Ok(self
            .0
            .compare_and_swap(key, old, new)
            .map_err(err)?
            .map_err(|e| e.current.map(|v| v.to_vec())))
    }

    fn scan_prefix<'a>(&'a self, prefix: &[u8]) -> Box<dyn Iterator<Item = KvResult<Pair>> + 'a> {
        Box::new(
            self.0
                .scan_prefix(prefix)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(err)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_keeps_trees_apart() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let kv = SledKv::open(d.path(), 1 << 20).expect("open");
            kv.tree("a").expect("a").insert(b"k", b"1").expect("insert");
            kv.tree(SledKv::DEFAULT_TREE)
                .expect("default")
                .insert(b"k", b"0")
                .expect("insert");
            kv.flush().expect("flush");
        }
        let kv = SledKv::open(d.path(), 1 << 20).expect("reopen");
        assert_eq!(kv.tree("a").expect("a").get(b"k"), Ok(Some(b"1".to_vec())));
        assert_eq!(kv.tree("b").expect("b").get(b"k"), Ok(None));
        let def = kv.tree(SledKv::DEFAULT_TREE).expect("default");
        assert_eq!(def.get(b"k"), Ok(Some(b"0".to_vec())));
    }

    #[test]
    fn commit_checks_then_writes_across_trees() {
        let d = tempfile::tempdir().expect("tempdir");
        let kv = SledKv::open(d.path(), 1 << 20).expect("open");
        let state = |tree: &str, key: &[u8], value: Option<&[u8]>| nfs4d_kv::KeyState {
            tree: tree.into(),
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        };
        kv.tree("a")
            .expect("a")
            .insert(b"rec", b"v1")
            .expect("insert");
        let batch = Batch {
            checks: vec![state("a", b"rec", Some(b"v1")), state("b", b"name", None)],
            writes: vec![
                state("a", b"rec", Some(b"v2")),
                state("b", b"name", Some(b"x")),
            ],
        };
        assert_eq!(kv.commit(&batch), Ok(Ok(())));
        assert_eq!(kv.commit(&batch), Ok(Err(0)), "the planned state is gone");
        assert_eq!(
            kv.tree("b").expect("b").get(b"name"),
            Ok(Some(b"x".to_vec()))
        );
    }

    #[test]
    fn compare_and_swap_and_scan() {
        let d = tempfile::tempdir().expect("tempdir");
        let kv = SledKv::open(d.path(), 1 << 20).expect("open");
        let t = kv.tree("t").expect("t");
        assert_eq!(t.compare_and_swap(b"x1", None, Some(b"a")), Ok(Ok(())));
        assert_eq!(
            t.compare_and_swap(b"x1", None, Some(b"b")),
            Ok(Err(Some(b"a".to_vec())))
        );
        t.insert(b"x2", b"c").expect("insert");
        t.insert(b"y", b"d").expect("insert");
        let keys: Vec<_> = t.scan_prefix(b"x").map(|r| r.expect("item").0).collect();
        assert_eq!(keys, vec![b"x1".to_vec(), b"x2".to_vec()]);
    }
}
