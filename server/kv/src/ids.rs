//! Ids handed out from blocks reserved on a shared counter.
//!
//! The handle map never reuses an object id (a handle of a removed object
//! must stay STALE, RFC 8881 §4.2.2). With one writer a persisted counter
//! suffices; with several writers on one store (heads of a cluster) each
//! writer reserves a block of ids by moving the counter forward with
//! [`Tree::compare_and_swap`], then hands out ids from its block without
//! touching the store. Two writers can never hold overlapping blocks: a
//! swap succeeds only from the value the writer read, and the counter
//! only grows. A block reserved and not used up (a restart, a lost swap
//! reply) is skipped for good; the id space is 64 bits, so gaps cost
//! nothing.

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{KvError, KvResult, Tree};

/// Largest block one reservation may take.
pub const MAX_BLOCK: u64 = 1 << 20;
/// Swaps tried against other writers before giving up with
/// [`KvError::Unavailable`] (each lost swap means another writer got a
/// block, so the system as a whole progresses).
const MAX_SWAP_ATTEMPTS: usize = 64;

/// A source of unique ids shared by every writer of one store.
pub struct IdBlocks {
    tree: Arc<dyn Tree>,
    key: Vec<u8>,
    first: u64,
    block: u64,
    current: Mutex<Range<u64>>,
}

impl IdBlocks {
    /// Ids from the counter at `key` of `tree` (8 bytes, big-endian: the
    /// first id not reserved yet; absent means `first`), reserved `block`
    /// at a time (clamped to `1..=MAX_BLOCK`).
    pub fn new(tree: Arc<dyn Tree>, key: &[u8], first: u64, block: u64) -> IdBlocks {
        IdBlocks {
            tree,
            key: key.to_vec(),
            first,
            block: block.clamp(1, MAX_BLOCK),
            current: Mutex::new(0..0),
        }
    }

    /// A fresh id: the next one of this writer's block, reserving a new
    /// block when it is used up.
    pub fn next(&self) -> KvResult<u64> {
        let mut cur = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if cur.is_empty() {
            *cur = self.reserve()?;
        }
        let id = cur.start;
        cur.start += 1;
        Ok(id)
    }

    /// Reserves one block on the shared counter and returns it; no other
    /// writer of the store will ever be given an id in it.
    pub fn reserve(&self) -> KvResult<Range<u64>> {
        let mut seen = self.tree.get(&self.key)?;
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let start = match &seen {
                None => self.first,
                Some(v) => decode_counter(v)?.max(self.first),
            };
            let end = start
                .checked_add(self.block)
                .ok_or_else(|| KvError::Store("id space exhausted".into()))?;
            match self.tree.compare_and_swap(
                &self.key,
                seen.as_deref(),
                Some(&end.to_be_bytes()),
            )? {
                Ok(()) => return Ok(start..end),
                Err(now) => seen = now,
            }
        }
        Err(KvError::Unavailable(format!(
            "id counter contended: {MAX_SWAP_ATTEMPTS} swaps lost in a row"
        )))
    }
}

fn decode_counter(v: &[u8]) -> KvResult<u64> {
    let bytes: [u8; 8] = v
        .try_into()
        .map_err(|_| KvError::Store(format!("id counter of {} bytes, not 8", v.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kv, MemKv};

    #[test]
    fn ids_are_sequential_within_blocks_and_blocks_follow_the_counter() {
        let t = MemKv::new().tree("meta").expect("tree");
        let ids = IdBlocks::new(t.clone(), b"next_id", 100, 3);
        let got: Vec<u64> = (0..7).map(|_| ids.next().expect("id")).collect();
        assert_eq!(got, vec![100, 101, 102, 103, 104, 105, 106]);
        assert_eq!(t.get(b"next_id"), Ok(Some(109u64.to_be_bytes().to_vec())));
        // A restarted writer starts past everything reserved before.
        let again = IdBlocks::new(t, b"next_id", 100, 3);
        assert_eq!(again.next(), Ok(109));
    }

    #[test]
    fn writers_sharing_a_store_never_get_the_same_id() {
        let t = MemKv::new().tree("meta").expect("tree");
        let all = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let (t, all) = (t.clone(), &all);
                s.spawn(move || {
                    let ids = IdBlocks::new(t, b"c", 1 << 32, 5);
                    let mine: Vec<u64> = (0..200).map(|_| ids.next().expect("id")).collect();
                    all.lock().expect("lock").extend(mine);
                });
            }
        });
        let mut all = all.into_inner().expect("lock");
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "an id was handed out twice");
        assert_eq!(n, 800);
    }

    #[test]
    fn a_corrupt_counter_is_an_error_not_a_reuse() {
        let t = MemKv::new().tree("meta").expect("tree");
        t.insert(b"c", b"short").expect("insert");
        let ids = IdBlocks::new(t, b"c", 1, 10);
        assert!(matches!(ids.next(), Err(KvError::Store(_))));
    }

    #[test]
    fn the_end_of_the_id_space_is_an_error() {
        let t = MemKv::new().tree("meta").expect("tree");
        t.insert(b"c", &(u64::MAX - 2).to_be_bytes())
            .expect("insert");
        let ids = IdBlocks::new(t, b"c", 1, 10);
        assert!(matches!(ids.next(), Err(KvError::Store(_))));
    }
}
