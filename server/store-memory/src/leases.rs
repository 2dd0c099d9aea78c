//! Leases standing for delegations, for configurations with `leases`. A
//! memory store has no local processes, so nothing breaks a lease on its
//! own; tests play the local process with
//! [`crate::MemStore::simulate_local_open`] and
//! [`crate::MemStore::simulate_local_change`].

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use nfs4d_store::LeaseBreak;

/// Most leases held at once; past it no delegation is granted.
pub const MAX_LEASES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Lease {
    file: (u64, u64),
    write: bool,
    broken: Option<LeaseBreak>,
}

#[derive(Debug, Default)]
pub struct LeaseTable {
    held: Mutex<BTreeMap<u64, Lease>>,
}

impl LeaseTable {
    fn held(&self) -> MutexGuard<'_, BTreeMap<u64, Lease>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes lease `tag` on `file`; false when the table is full.
    pub fn take(&self, tag: u64, file: (u64, u64), write: bool) -> bool {
        let mut held = self.held();
        if held.contains_key(&tag) {
            return true;
        }
        if held.len() >= MAX_LEASES {
            tracing::debug!(tag, "memory store: lease table full");
            return false;
        }
        held.insert(
            tag,
            Lease {
                file,
                write,
                broken: None,
            },
        );
        true
    }

    pub fn release(&self, tag: u64) {
        self.held().remove(&tag);
    }

    pub fn list(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        self.held().iter().map(|(t, l)| (*t, l.broken)).collect()
    }

    /// A local process opened `file`: a write lease conflicts with any
    /// open, a read lease with an open for writing.
    pub fn opened(&self, file: (u64, u64), write: bool) {
        for l in self.held().values_mut() {
            if l.file == file && (l.write || write) && l.broken.is_none() {
                l.broken = Some(LeaseBreak::Opened);
            }
        }
    }

    /// A local process changed `file`'s name or attributes.
    pub fn changed(&self, file: (u64, u64)) {
        for l in self.held().values_mut() {
            if l.file == file && l.broken.is_none() {
                l.broken = Some(LeaseBreak::Changed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_by_kind_of_access() {
        let t = LeaseTable::default();
        assert!(t.take(1, (9, 1), false));
        assert!(t.take(2, (9, 1), true));
        assert!(t.take(3, (10, 1), false));
        t.opened((9, 1), false);
        assert_eq!(
            t.list(),
            vec![(1, None), (2, Some(LeaseBreak::Opened)), (3, None)]
        );
        t.changed((10, 1));
        t.opened((9, 1), true);
        assert_eq!(
            t.list(),
            vec![
                (1, Some(LeaseBreak::Opened)),
                (2, Some(LeaseBreak::Opened)),
                (3, Some(LeaseBreak::Changed))
            ]
        );
        t.release(2);
        assert_eq!(t.list().len(), 2);
    }

    #[test]
    fn bounded() {
        let t = LeaseTable::default();
        for tag in 0..MAX_LEASES as u64 {
            assert!(t.take(tag, (tag, 1), false));
        }
        assert!(!t.take(u64::MAX, (1, 1), false));
        assert!(t.take(0, (0, 1), false), "a held tag is a no-op");
    }
}
