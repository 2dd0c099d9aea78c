//! Byte-range locks kept by the store itself, for configurations with
//! `local_locks`: each lock file is one owner, and lock files of one file
//! arbitrate between each other with POSIX rules (RFC 8881 §9.3), as the
//! kernel does between open file descriptions. They stand for the local
//! processes a real store would have.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nfs4d_store::{LocalConflict, LockError, LockFile, StoreError};

/// Most lock ranges held at once, over all files.
pub const MAX_LOCKS: usize = 16_384;

/// One held range, inclusive.
#[derive(Debug, Clone, Copy)]
struct Held {
    owner: u64,
    start: u64,
    end: u64,
    write: bool,
}

impl Held {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }

    fn conflict(&self) -> LocalConflict {
        LocalConflict {
            offset: self.start,
            // All ones means "to the end" (RFC 8881 §18.10.3).
            length: if self.end == u64::MAX {
                u64::MAX
            } else {
                self.end - self.start + 1
            },
            write: self.write,
            pid: None,
        }
    }
}

#[derive(Debug)]
struct Table {
    /// Ranges per file (object number and incarnation).
    held: HashMap<(u64, u64), Vec<Held>>,
    count: usize,
    max: usize,
    next_owner: u64,
}

impl Table {
    fn first_conflict(
        &self,
        file: (u64, u64),
        owner: u64,
        start: u64,
        end: u64,
        write: bool,
    ) -> Option<LocalConflict> {
        self.held
            .get(&file)?
            .iter()
            .find(|h| h.owner != owner && h.overlaps(start, end) && (write || h.write))
            .map(Held::conflict)
    }

    /// Removes `owner`'s locks on `[start, end]`, splitting ranges that
    /// stick out; fails without change if the split needs more records
    /// than are left.
    fn cut(
        &mut self,
        file: (u64, u64),
        owner: u64,
        start: u64,
        end: u64,
        spare: usize,
    ) -> Result<(), LockError> {
        let Some(list) = self.held.get_mut(&file) else {
            return Ok(());
        };
        let mut kept = Vec::with_capacity(list.len() + 1);
        for h in list.iter() {
            if h.owner != owner || !h.overlaps(start, end) {
                kept.push(*h);
                continue;
            }
            if h.start < start {
                kept.push(Held {
                    end: start - 1,
                    ..*h
                });
            }
            if h.end > end {
                kept.push(Held {
                    start: end + 1,
                    ..*h
                });
            }
        }
        let count = self.count - list.len() + kept.len();
        if count + spare > self.max {
            return Err(LockError::NoLocks);
        }
        self.count = count;
        if kept.is_empty() {
            self.held.remove(&file);
        } else {
            *list = kept;
        }
        Ok(())
    }
}

/// The locks of one store.
#[derive(Debug)]
pub struct LockTable {
    table: Mutex<Table>,
}

impl Default for LockTable {
    fn default() -> LockTable {
        LockTable::with_limit(MAX_LOCKS)
    }
}

impl LockTable {
    /// A table holding at most `max` ranges.
    pub fn with_limit(max: usize) -> LockTable {
        LockTable {
            table: Mutex::new(Table {
                held: HashMap::new(),
                count: 0,
                max,
                next_owner: 0,
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new lock owner on `file`.
    pub fn open(self: &Arc<Self>, file: (u64, u64), writable: bool) -> MemLockFile {
        let mut t = self.table();
        t.next_owner += 1;
        MemLockFile {
            locks: Arc::clone(self),
            file,
            owner: t.next_owner,
            writable,
        }
    }
}

/// One owner's locks on one file; dropping it releases them.
#[derive(Debug)]
pub struct MemLockFile {
    locks: Arc<LockTable>,
    file: (u64, u64),
    owner: u64,
    writable: bool,
}

fn check(start: u64, end: u64) -> Result<(), LockError> {
    if end < start {
        return Err(LockError::Store(StoreError::Invalid));
    }
    Ok(())
}

impl LockFile for MemLockFile {
    fn writable(&self) -> bool {
        self.writable
    }

    fn lock(&self, start: u64, end: u64, write: bool) -> Result<(), LockError> {
        check(start, end)?;
        if write && !self.writable {
            return Err(LockError::NotWritable);
        }
        let mut t = self.locks.table();
        if let Some(c) = t.first_conflict(self.file, self.owner, start, end, write) {
            return Err(LockError::Conflict(c));
        }
        t.cut(self.file, self.owner, start, end, 1)?;
        t.held.entry(self.file).or_default().push(Held {
            owner: self.owner,
            start,
            end,
            write,
        });
        t.count += 1;
        Ok(())
    }

    fn unlock(&self, start: u64, end: u64) -> Result<(), LockError> {
        check(start, end)?;
        self.locks.table().cut(self.file, self.owner, start, end, 0)
    }

    fn test(&self, start: u64, end: u64, write: bool) -> Result<Option<LocalConflict>, LockError> {
        check(start, end)?;
        Ok(self
            .locks
            .table()
            .first_conflict(self.file, self.owner, start, end, write))
    }
}

impl Drop for MemLockFile {
    fn drop(&mut self) {
        let mut t = self.locks.table();
        if let Some(list) = t.held.get_mut(&self.file) {
            let before = list.len();
            list.retain(|h| h.owner != self.owner);
            let dropped = before - list.len();
            if list.is_empty() {
                t.held.remove(&self.file);
            }
            t.count -= dropped;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_merge_and_release() {
        let table = Arc::new(LockTable::default());
        let a = table.open((5, 1), true);
        let b = table.open((5, 1), true);
        let other_file = table.open((6, 1), true);
        a.lock(0, 99, true).expect("lock");
        other_file
            .lock(0, 99, true)
            .expect("another file does not conflict");
        a.unlock(10, 19).expect("split");
        assert_eq!(table.table().count, 3);
        b.lock(10, 19, true).expect("the hole is free");
        assert!(matches!(b.lock(9, 9, false), Err(LockError::Conflict(_))));
        a.lock(0, u64::MAX, false)
            .expect_err("b holds 10..19 for writing");
        drop(a);
        assert_eq!(table.table().count, 2);
        b.lock(0, u64::MAX, true).expect("a is gone");
        assert_eq!(
            b.lock(5, 4, true),
            Err(LockError::Store(StoreError::Invalid))
        );
        drop(b);
        drop(other_file);
        assert_eq!(table.table().count, 0);
        assert!(table.table().held.is_empty());
    }

    #[test]
    fn record_limit() {
        let table = Arc::new(LockTable::with_limit(8));
        let a = table.open((1, 1), true);
        for i in 0..8 {
            a.lock(i * 2, i * 2, false).expect("within the limit");
        }
        assert_eq!(a.lock(1 << 40, 1 << 40, false), Err(LockError::NoLocks));
        // Converting a held range needs no new record.
        a.lock(0, 0, true).expect("convert in place");
        drop(a);
        assert_eq!(table.table().count, 0);
    }
}
