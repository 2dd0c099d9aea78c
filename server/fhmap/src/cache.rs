//! Bounded in-memory cache of object records, so that
//! PUTFH validation and `path_of` walks do not hit the store on every step.
//!
//! Consistency: writers invalidate the ids they touched *after* their store
//! writes are all applied and *before* releasing the write lock, bumping a
//! generation counter. A reader that missed the cache snapshots the
//! generation before reading the store and only fills the cache if no
//! invalidation happened meanwhile; otherwise it could install a value read
//! just before a commit after that commit's invalidation already ran.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::{lock, ObjRecord, ObjectId};

/// Records are shared, not copied, between the cache and its readers.
pub(super) type Node = Arc<ObjRecord>;

/// Hasher of the caches' `u64` keys (object ids, and name hints that are
/// hashes already): one multiplication instead of SipHash, which was the
/// larger part of a cache lookup on READDIR's per-entry path. The keys
/// are not chosen by clients (ids are allocated by the map, hints hash
/// names with the parent's id), and a collision costs only a probe.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        // Fibonacci hashing: the high bits, which hashbrown uses for its
        // control bytes, depend on every bit of the key.
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<ObjectId, V, BuildHasherDefault<IdHasher>>;
type HintMap = HashMap<u64, ObjectId, BuildHasherDefault<IdHasher>>;

/// Two-generation ("hot/cold") cache: O(1) operations and a hard bound of
/// `capacity` entries, with approximately-LRU eviction (the cold half is
/// dropped wholesale when the hot half fills; hits in cold are promoted).
pub(super) struct NodeCache {
    inner: Mutex<Inner>,
    half: usize,
}

#[derive(Default)]
struct Inner {
    hot: IdMap<Node>,
    cold: IdMap<Node>,
    generation: u64,
}

impl NodeCache {
    pub(super) fn new(capacity: usize) -> Self {
        NodeCache {
            inner: Mutex::new(Inner::default()),
            half: (capacity / 2).max(1),
        }
    }

    /// Returns the cached node, or the generation to pass to [`Self::fill`].
    pub(super) fn get(&self, id: ObjectId) -> Result<Node, u64> {
        let mut g = lock(&self.inner);
        if let Some(n) = g.hot.get(&id) {
            return Ok(n.clone());
        }
        match g.cold.remove(&id) {
            Some(n) => {
                g.insert_hot(id, n.clone(), self.half);
                Ok(n)
            }
            None => Err(g.generation),
        }
    }

    /// Caches a node read from the store, unless an invalidation happened since
    /// `generation` was obtained from [`Self::get`].
    pub(super) fn fill(&self, id: ObjectId, node: Node, generation: u64) {
        let mut g = lock(&self.inner);
        if g.generation == generation {
            g.insert_hot(id, node, self.half);
        }
    }

    pub(super) fn invalidate(&self, ids: impl IntoIterator<Item = ObjectId>) {
        let mut g = lock(&self.inner);
        for id in ids {
            g.hot.remove(&id);
            g.cold.remove(&id);
        }
        g.generation += 1;
    }

    /// Drops every entry (and, like `invalidate`, any fill in progress).
    pub(super) fn clear(&self) {
        let mut g = lock(&self.inner);
        g.hot.clear();
        g.cold.clear();
        g.generation += 1;
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let g = lock(&self.inner);
        g.hot.len() + g.cold.len()
    }
}

impl Inner {
    fn insert_hot(&mut self, id: ObjectId, node: Node, half: usize) {
        if self.hot.len() >= half && !self.hot.contains_key(&id) {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(id, node);
    }
}

/// Bounded hints from (export, parent, name) to the object id linked
/// there, so that issuing the handle of a known name (READDIR's
/// FILEHANDLE attribute, LOOKUP) does not read the name index. A hint is
/// only a candidate: the caller accepts it only if the object's record
/// (from [`NodeCache`]) still carries that very link, which holds exactly
/// for the object the name index points to. Stale or colliding hints
/// therefore cost a store read, never a wrong answer, and need no
/// invalidation. Keys are 64-bit hashes, so an entry takes 16 bytes.
pub(super) struct NameHints {
    inner: Mutex<(HintMap, HintMap)>,
    half: usize,
}

impl NameHints {
    pub(super) fn new(capacity: usize) -> Self {
        NameHints {
            inner: Mutex::new((HintMap::default(), HintMap::default())),
            half: (capacity / 2).max(1),
        }
    }

    pub(super) fn key(export: u32, parent: ObjectId, name: &[u8]) -> u64 {
        // FNV-1a: only spreads keys; collisions are harmless (see above).
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut mix = |b: u8| h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        export.to_le_bytes().into_iter().for_each(&mut mix);
        parent.0.to_le_bytes().into_iter().for_each(&mut mix);
        name.iter().copied().for_each(&mut mix);
        h
    }

    pub(super) fn get(&self, key: u64) -> Option<ObjectId> {
        let mut g = lock(&self.inner);
        if let Some(id) = g.0.get(&key) {
            return Some(*id);
        }
        let id = g.1.remove(&key)?;
        self.insert_locked(&mut g, key, id);
        Some(id)
    }

    pub(super) fn put(&self, key: u64, id: ObjectId) {
        let mut g = lock(&self.inner);
        self.insert_locked(&mut g, key, id);
    }

    fn insert_locked(&self, g: &mut (HintMap, HintMap), key: u64, id: ObjectId) {
        if g.0.len() >= self.half && !g.0.contains_key(&key) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(key, id);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let g = lock(&self.inner);
        g.0.len() + g.1.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_bounded() {
        let h = NameHints::new(8);
        for i in 0..100u64 {
            h.put(NameHints::key(1, ObjectId(i), b"x"), ObjectId(i));
            assert!(h.len() <= 8);
        }
        assert_eq!(
            h.get(NameHints::key(1, ObjectId(99), b"x")),
            Some(ObjectId(99))
        );
        assert_eq!(h.get(NameHints::key(1, ObjectId(0), b"x")), None);
        assert_ne!(
            NameHints::key(1, ObjectId(2), b"x"),
            NameHints::key(2, ObjectId(2), b"x")
        );
    }

    fn node(parent: u64) -> Node {
        Arc::new(ObjRecord {
            export: 0,
            parent: ObjectId(parent),
            name: b"n".to_vec(),
            key: super::super::ObjKey {
                dev: 0,
                ino: 0,
                gen: 0,
            },
            kind: 0,
            generation: 0,
            extra_links: vec![],
        })
    }

    #[test]
    fn bounded_and_promotes() {
        let c = NodeCache::new(4);
        for i in 0..100 {
            let gen = c.get(ObjectId(i)).unwrap_err();
            c.fill(ObjectId(i), node(i), gen);
            assert!(c.len() <= 4);
        }
        assert!(c.get(ObjectId(99)).is_ok());
        assert!(c.get(ObjectId(0)).is_err());
    }

    #[test]
    fn fill_after_invalidation_is_dropped() {
        let c = NodeCache::new(8);
        let gen = c.get(ObjectId(1)).unwrap_err();
        c.invalidate([ObjectId(1)]); // a writer committed in between
        c.fill(ObjectId(1), node(5), gen);
        assert!(c.get(ObjectId(1)).is_err());
    }
}
