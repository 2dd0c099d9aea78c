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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::siphash::{siphash24, SipKey};
use super::{lock, ObjKey, ObjRecord, ObjectId, MAX_NAME_LEN};

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
type HintMap = HashMap<u64, Hint, BuildHasherDefault<IdHasher>>;

/// Two-generation ("hot/cold") cache: O(1) operations and a hard bound of
/// `capacity` entries, with approximately-LRU eviction (the cold half is
/// dropped wholesale when the hot half fills; hits in cold are promoted).
pub(super) struct NodeCache {
    inner: Mutex<Inner>,
    /// Bumped, under `inner`'s lock, by every invalidation: while it holds
    /// still, no record has changed. Read without the lock by
    /// [`Self::generation`].
    generation: AtomicU64,
    half: usize,
}

#[derive(Default)]
struct Inner {
    hot: IdMap<Node>,
    cold: IdMap<Node>,
}

impl NodeCache {
    pub(super) fn new(capacity: usize) -> Self {
        NodeCache {
            inner: Mutex::new(Inner::default()),
            generation: AtomicU64::new(0),
            half: (capacity / 2).max(1),
        }
    }

    /// How many invalidations there have been. A caller that read a record
    /// after taking this value may rely on what it read for as long as the
    /// value is unchanged: writers apply their changes before they
    /// invalidate.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
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
            None => Err(self.generation.load(Ordering::Relaxed)),
        }
    }

    /// Caches a node read from the store, unless an invalidation happened since
    /// `generation` was obtained from [`Self::get`].
    pub(super) fn fill(&self, id: ObjectId, node: Node, generation: u64) {
        let mut g = lock(&self.inner);
        if self.generation.load(Ordering::Relaxed) == generation {
            g.insert_hot(id, node, self.half);
        }
    }

    pub(super) fn invalidate(&self, ids: impl IntoIterator<Item = ObjectId>) {
        let mut g = lock(&self.inner);
        for id in ids {
            g.hot.remove(&id);
            g.cold.remove(&id);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Drops every entry (and, like `invalidate`, any fill in progress).
    pub(super) fn clear(&self) {
        let mut g = lock(&self.inner);
        g.hot.clear();
        g.cold.clear();
        self.generation.fetch_add(1, Ordering::Release);
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

/// What [`NameHints`] remembers of a name: the object id linked there
/// and, once that was checked against the object's record, the cache
/// generation of the check and a fingerprint of what was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hint {
    pub(super) id: ObjectId,
    checked_at: u64,
    fingerprint: u64,
}

/// `checked_at` of a hint that was never checked.
const UNCHECKED: u64 = u64::MAX;

/// Key of the fingerprint's SipHash: fixed, since it only has to be
/// independent of the hint key's FNV, not secret.
const FINGERPRINT_KEY: [u8; 16] = *b"nfs4d name hints";

impl Hint {
    /// A hint to be checked against the record before it is used.
    pub(super) fn unchecked(id: ObjectId) -> Hint {
        Hint {
            id,
            checked_at: UNCHECKED,
            fingerprint: 0,
        }
    }

    /// A hint whose link and object key were found in the record after
    /// the cache was at `generation`.
    pub(super) fn checked(id: ObjectId, generation: u64, fingerprint: u64) -> Hint {
        Hint {
            id,
            checked_at: generation,
            fingerprint,
        }
    }

    /// Whether the hint may be used without reading the record again: it
    /// was checked for the very same export, parent, name and object key
    /// (`fingerprint`), and no record has changed since (`generation`).
    /// Issuing the handles of a directory listed again then costs one
    /// lookup here per entry instead of a record lookup and a comparison
    /// of its links.
    pub(super) fn still_valid(&self, generation: u64, fingerprint: u64) -> bool {
        self.checked_at != UNCHECKED
            && self.checked_at == generation
            && self.fingerprint == fingerprint
    }
}

/// Bounded hints from (export, parent, name) to the object id linked
/// there, so that issuing the handle of a known name (READDIR's
/// FILEHANDLE attribute, LOOKUP) does not read the name index. A hint is
/// only a candidate: the caller accepts it only if the object's record
/// (from [`NodeCache`]) still carries that very link, which holds exactly
/// for the object the name index points to. Stale or colliding hints
/// therefore cost a store read, never a wrong answer, and need no
/// invalidation. A hint checked once is used without the record until
/// any record changes ([`Hint::still_valid`]). Keys are 64-bit hashes and
/// a hint 24 bytes, so an entry takes 32 bytes.
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

    /// SipHash of everything a hint is checked for, independent of
    /// [`Self::key`]: a hint found under a colliding key does not match
    /// it.
    pub(super) fn fingerprint(export: u32, parent: ObjectId, name: &[u8], obj: &ObjKey) -> u64 {
        let mut msg = [0u8; 36 + MAX_NAME_LEN];
        msg[..4].copy_from_slice(&export.to_le_bytes());
        msg[4..12].copy_from_slice(&parent.0.to_le_bytes());
        msg[12..20].copy_from_slice(&obj.dev.to_le_bytes());
        msg[20..28].copy_from_slice(&obj.ino.to_le_bytes());
        msg[28..36].copy_from_slice(&obj.gen.to_le_bytes());
        // Names are checked to be at most MAX_NAME_LEN bytes before this.
        let n = name.len().min(MAX_NAME_LEN);
        msg[36..36 + n].copy_from_slice(&name[..n]);
        siphash24(&SipKey::from_bytes(&FINGERPRINT_KEY), &msg[..36 + n])
    }

    pub(super) fn get(&self, key: u64) -> Option<Hint> {
        let mut g = lock(&self.inner);
        if let Some(h) = g.0.get(&key) {
            return Some(*h);
        }
        let h = g.1.remove(&key)?;
        self.insert_locked(&mut g, key, h);
        Some(h)
    }

    pub(super) fn put(&self, key: u64, hint: Hint) {
        let mut g = lock(&self.inner);
        self.insert_locked(&mut g, key, hint);
    }

    fn insert_locked(&self, g: &mut (HintMap, HintMap), key: u64, hint: Hint) {
        if g.0.len() >= self.half && !g.0.contains_key(&key) {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(key, hint);
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
            h.put(
                NameHints::key(1, ObjectId(i), b"x"),
                Hint::unchecked(ObjectId(i)),
            );
            assert!(h.len() <= 8);
        }
        assert_eq!(
            h.get(NameHints::key(1, ObjectId(99), b"x")).map(|h| h.id),
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
    fn a_hint_holds_only_for_what_was_checked_and_until_a_change() {
        let k = ObjKey {
            dev: 1,
            ino: 2,
            gen: 3,
        };
        let fp = NameHints::fingerprint(1, ObjectId(7), b"a", &k);
        let c = NodeCache::new(8);
        let h = Hint::checked(ObjectId(9), c.generation(), fp);
        assert!(h.still_valid(c.generation(), fp));
        assert!(!Hint::unchecked(ObjectId(9)).still_valid(c.generation(), 0));
        // Anything else checked: another export, parent, name or object.
        let other = ObjKey { ino: 4, ..k };
        for f in [
            NameHints::fingerprint(2, ObjectId(7), b"a", &k),
            NameHints::fingerprint(1, ObjectId(8), b"a", &k),
            NameHints::fingerprint(1, ObjectId(7), b"b", &k),
            NameHints::fingerprint(1, ObjectId(7), b"a", &other),
        ] {
            assert!(!h.still_valid(c.generation(), f));
        }
        // Any record changed since.
        c.invalidate([ObjectId(100)]);
        assert!(!h.still_valid(c.generation(), fp));
        c.clear();
        assert!(!h.still_valid(c.generation(), fp));
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
