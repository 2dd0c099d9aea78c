//! A bounded LRU cache of open regular-file descriptors for read/write.
//!
//! Keyed by [`Identity`], never by path: callers always resolve the path
//! afresh (`statx` under the export root) and only then ask the cache for the
//! object they found. So a rename needs no invalidation (the object, and its
//! fd, are unchanged), and a stale entry can never be reached through a path
//! that now names a different object. While an entry is cached its inode is
//! pinned, so its inode number cannot be reused by a new file, even when
//! the incarnation is unavailable (0).
//!
//! Entries are invalidated on remove/overwrite only to release the space of
//! unlinked files promptly. Descriptors are shared as `Arc<File>`: eviction
//! drops the cache's reference, and the fd closes when the last in-flight
//! operation using it finishes, so at most `capacity` + (operations in
//! flight) fds are open.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use nfs4d_store::Identity;

pub struct FdCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Identity, Slot>,
    /// Recency order: tick of last use → key. Oldest first.
    lru: BTreeMap<u64, Identity>,
    tick: u64,
}

struct Slot {
    file: Arc<File>,
    writable: bool,
    tick: u64,
}

impl Inner {
    fn touch(&mut self, id: Identity) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(slot) = self.map.get_mut(&id) {
            self.lru.remove(&slot.tick);
            slot.tick = tick;
            self.lru.insert(tick, id);
        }
    }
}

impl FdCache {
    pub fn new(capacity: usize) -> FdCache {
        FdCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot leave `Inner` inconsistent mid-way in
        // a way that matters (worst case an LRU entry points at nothing), so
        // a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached fd for `id`, if any and (when `need_write`) writable.
    pub fn get(&self, id: Identity, need_write: bool) -> Option<Arc<File>> {
        let mut inner = self.lock();
        let slot = inner.map.get(&id)?;
        if need_write && !slot.writable {
            return None;
        }
        let file = Arc::clone(&slot.file);
        inner.touch(id);
        Some(file)
    }

    /// Caches `file` for `id` (replacing any previous entry) and evicts the
    /// least recently used entries beyond capacity.
    pub fn insert(&self, id: Identity, file: Arc<File>, writable: bool) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(old) = inner.map.insert(
            id,
            Slot {
                file,
                writable,
                tick,
            },
        ) {
            inner.lru.remove(&old.tick);
        }
        inner.lru.insert(tick, id);
        while inner.map.len() > self.capacity {
            let Some((_, victim)) = inner.lru.pop_first() else {
                break;
            };
            inner.map.remove(&victim);
        }
    }

    pub fn remove(&self, id: Identity) {
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(&id) {
            inner.lru.remove(&old.tick);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ino: u64) -> Identity {
        Identity {
            space: 1,
            object: ino,
            incarnation: 0,
        }
    }

    fn file() -> Arc<File> {
        Arc::new(File::open("/dev/null").expect("open /dev/null"))
    }

    #[test]
    fn lru_eviction_and_modes() {
        let c = FdCache::new(2);
        c.insert(id(1), file(), false);
        c.insert(id(2), file(), true);
        assert!(c.get(id(1), false).is_some()); // 1 is now most recent
        assert!(c.get(id(1), true).is_none()); // read-only entry
        c.insert(id(3), file(), true); // evicts 2
        assert_eq!(c.len(), 2);
        assert!(c.get(id(2), false).is_none());
        assert!(c.get(id(1), false).is_some());
        assert!(c.get(id(3), true).is_some());
        c.insert(id(1), file(), true); // upgrade in place
        assert!(c.get(id(1), true).is_some());
        assert_eq!(c.len(), 2);
        c.remove(id(1));
        assert!(c.get(id(1), false).is_none());
        assert_eq!(c.len(), 1);

        let none = FdCache::new(0);
        none.insert(id(1), file(), true);
        assert!(none.get(id(1), false).is_none());
    }
}
