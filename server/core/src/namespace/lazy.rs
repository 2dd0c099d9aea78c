//! Background durability of `async` exports ([`Durability::Async`]).
//!
//! On a `sync` export every namespace change fsyncs its directories and
//! waits for the handle map's flush before the reply. On an `async` export
//! the change only marks its directories dirty here; the daemon calls
//! [`Vfs::flush_background`] every `async_flush_ms`, which fsyncs the dirty
//! directories and then flushes the handle map. What a crash can lose is
//! therefore bounded by that interval (plus the flush's own duration), and
//! what survives is consistent: the map's writes are ordered so that any
//! prefix of them is usable, a record whose name the file system lost
//! answers STALE when used (vfs.rs checks every resolution against the
//! store), and a name the map lost gets a new id when next looked up.
//!
//! Stable data writes are the exception, as on knfsd's async exports: a
//! FILE_SYNC4 WRITE or a COMMIT makes the file's name (its dirty ancestors)
//! and the handle map durable before the reply
//! ([`Vfs::make_object_durable`]), so acknowledged data is reachable through
//! the handle the client holds after a crash.
//!
//! Directories are remembered by object id, not path: a directory renamed
//! after a change is still found, by the path the map has for it at flush
//! time.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use nfs4d_fhmap::ObjectId;
use nfs4d_store::{Name, RelPath, StoreError};

use super::vfs::{Export, Vfs};
use crate::config::Durability;
use crate::error::{NfsError, NfsResult};

/// Dirty directories remembered at once. Past it a change syncs its
/// directory at once, as on a `sync` export, so memory stays bounded
/// whatever the rate of changes.
pub const MAX_DIRTY_DIRS: usize = 1 << 16;

/// The directories of `async` exports changed since the last flush.
pub struct DirtyDirs {
    set: Mutex<HashSet<(u32, ObjectId)>>,
    capacity: usize,
}

impl Default for DirtyDirs {
    fn default() -> Self {
        DirtyDirs::with_capacity(MAX_DIRTY_DIRS)
    }
}

impl DirtyDirs {
    /// A set remembering at most `capacity` directories.
    pub fn with_capacity(capacity: usize) -> DirtyDirs {
        DirtyDirs {
            set: Mutex::default(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(u32, ObjectId)>> {
        // A set of ids is consistent between statements.
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `dir` of `export`; `false` when the set is full (the
    /// caller must sync the directory itself).
    fn mark(&self, export: u32, dir: ObjectId) -> bool {
        let mut s = self.lock();
        if s.len() >= self.capacity && !s.contains(&(export, dir)) {
            return false;
        }
        s.insert((export, dir));
        true
    }

    fn contains(&self, export: u32, dir: ObjectId) -> bool {
        self.lock().contains(&(export, dir))
    }

    fn take(&self) -> Vec<(u32, ObjectId)> {
        self.lock().drain().collect()
    }

    /// Number of directories waiting for the next flush.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no directory waits for a flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one [`Vfs::flush_background`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// Directories fsynced.
    pub synced: usize,
    /// Dirty directories that no longer exist (removed since): nothing to
    /// sync.
    pub gone: usize,
    /// Directories whose fsync failed (logged).
    pub failed: usize,
    /// Journal entries dropped (the checkpoint of `sync` exports).
    pub trimmed: usize,
}

impl Vfs {
    /// Whether export `e` makes namespace changes durable in the
    /// background.
    pub fn is_async(&self, e: &Export) -> bool {
        e.cfg.durability == Durability::Async
    }

    /// After a change of the entries of directory `dir` (id `dir_id`) of
    /// export `e`: remember it for the next background flush (`async`, or
    /// a `journaled` change of a `sync` export whose journal has room), or
    /// fsync it now.
    pub fn dir_changed(
        &self,
        e: &Export,
        dir_id: ObjectId,
        dir: &RelPath,
        journaled: bool,
    ) -> NfsResult<()> {
        let defer = self.is_async(e) || (journaled && !self.journal_full());
        if defer && self.dirty.mark(e.id, dir_id) {
            return Ok(());
        }
        Ok(e.store().sync_dir(dir)?)
    }

    /// The handle-map write a reply must wait for, given the last one the
    /// change made: none on an `async` export.
    pub fn durable_for(&self, e: &Export, seq: u64) -> u64 {
        if self.is_async(e) {
            0
        } else {
            seq
        }
    }

    /// Makes object `id` of `e` reachable after a crash: its dirty
    /// ancestors are fsynced and the handle map flushed. Called after the
    /// data of a FILE_SYNC4 WRITE or a COMMIT is durable; nothing to do on
    /// a `sync` export, where that happened before earlier replies.
    pub fn make_object_durable(&self, e: &Export, id: ObjectId) -> NfsResult<()> {
        if !self.is_async(e) {
            return Ok(());
        }
        let mut cur = id;
        for _ in 0..=nfs4d_fhmap::MAX_PATH_DEPTH {
            let Some(rec) = self.fhmap.get(cur)? else {
                // Removed meanwhile: nothing of it to make durable.
                return Ok(());
            };
            if rec.parent == cur {
                break;
            }
            if self.dirty.contains(e.id, rec.parent) {
                if let Some(path) = self.path_by_id(rec.parent)? {
                    e.store().sync_dir(&path)?;
                }
            }
            cur = rec.parent;
        }
        self.fhmap.make_durable(self.fhmap.last_seq())?;
        Ok(())
    }

    /// The background flush: fsyncs every directory changed since the
    /// last flush (on `async` exports, and by journaled changes of `sync`
    /// ones), then flushes the handle map and drops the journal entries
    /// written before the directories were taken (the checkpoint of
    /// journal.rs). An entry is dropped only if every fsync succeeded;
    /// otherwise the failed directories wait for the next flush and the
    /// journal keeps what they need. Blocking.
    pub fn flush_background(&self) -> FlushReport {
        let mut report = FlushReport::default();
        // Every entry up to here was written after its directory was
        // marked, so the directories taken next cover all of them.
        let checkpoint = self.fhmap.last_seq();
        let mut failed = Vec::new();
        for (export, dir) in self.dirty.take() {
            let Ok(e) = self.export(export) else {
                continue;
            };
            let path = match self.path_by_id(dir) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    report.gone += 1;
                    continue;
                }
                Err(err) => {
                    tracing::error!(export, error = %err, "background flush: cannot find a changed directory");
                    report.failed += 1;
                    failed.push((export, dir));
                    continue;
                }
            };
            match e.store().sync_dir(&path) {
                Ok(()) => report.synced += 1,
                Err(StoreError::NotFound) => report.gone += 1,
                Err(err) => {
                    // Not retried: after a failed fsync Linux may report
                    // success for the same dirty state on a second try.
                    tracing::error!(export, dir = %path, error = %err, "background flush: directory fsync failed");
                    report.failed += 1;
                    failed.push((export, dir));
                }
            }
        }
        if let Err(err) = self.fhmap.make_durable(self.fhmap.last_seq()) {
            tracing::error!(error = %err, "background flush: handle map flush failed");
        }
        if failed.is_empty() {
            match self.fhmap.journal_trim(checkpoint) {
                Ok(n) => {
                    let _ = self.journal_pending.fetch_update(
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                        |p| Some(p.saturating_sub(n as u64)),
                    );
                    report.trimmed = n;
                }
                Err(err) => tracing::error!(error = %err, "background flush: journal trim failed"),
            }
        } else {
            for (export, dir) in failed {
                self.dirty.mark(export, dir);
            }
        }
        report
    }

    /// The path the map has for `id` (`None`: it no longer exists).
    fn path_by_id(&self, id: ObjectId) -> NfsResult<Option<RelPath>> {
        let Some(comps) = self.fhmap.path_of(id)? else {
            return Ok(None);
        };
        let names = comps
            .iter()
            .map(|c| Name::new(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| NfsError::ServerFault)?;
        Ok(Some(RelPath::from_names(names)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_set_refuses_new_directories_but_keeps_known_ones() {
        let d = DirtyDirs::with_capacity(2);
        assert!(d.mark(0, ObjectId(1)));
        assert!(d.mark(0, ObjectId(2)));
        assert!(d.mark(0, ObjectId(2)), "already remembered");
        assert!(!d.mark(1, ObjectId(2)), "full: the caller syncs itself");
        assert_eq!(d.len(), 2);
        let mut taken = d.take();
        taken.sort();
        assert_eq!(taken, vec![(0, ObjectId(1)), (0, ObjectId(2))]);
        assert!(d.is_empty());
        assert!(d.mark(1, ObjectId(2)), "room again after a flush");
    }
}
