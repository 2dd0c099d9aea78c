//! Group commit of directory fsyncs.
//!
//! Every namespace change (create, remove, rename, link) makes its
//! directory durable before the reply (the server calls
//! `Store::sync_dir` after each). When
//! many requests change the same directory at once, one `fsync` started
//! after all of their changes were made covers every one of them: a
//! directory fsync persists the directory's state at the time it runs, not
//! only the change of the caller that issued it. So callers take a ticket,
//! and one of them (the leader) syncs for all tickets issued before it
//! started; callers whose ticket is covered by a sync that has finished
//! return without a system call of their own. The guarantee per caller is
//! unchanged: its `sync` returns only after an fsync that began after its
//! change completed successfully.
//!
//! A failed fsync is reported to every caller it covered (after a failed
//! fsync Linux may report success for the same dirty state on a retry, so
//! retrying on their behalf would hide the error).
//!
//! Bounds: one slot per directory with callers waiting right now; it is
//! dropped when the last one leaves. Failures remembered per slot are
//! capped; older ones collapse into a floor under which every ticket counts
//! as failed (erring towards reporting an error).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::error::{OsError, OsResult};

/// Failed batches remembered per directory before they collapse.
const MAX_FAILURES: usize = 16;

#[derive(Default)]
struct Slot {
    /// Last ticket issued.
    issued: u64,
    /// Every ticket up to this one is covered by a finished fsync.
    completed: u64,
    /// A leader's fsync is under way.
    running: bool,
    /// Callers holding a ticket of this slot.
    waiters: usize,
    /// Failed batches: tickets `lo..=hi` and the error.
    failures: VecDeque<(u64, u64, OsError)>,
    /// Tickets up to this one count as failed (collapsed failures).
    failed_floor: u64,
    floor_error: Option<OsError>,
    /// Signalled when a sync of this directory ends: only its own callers
    /// wake, not those of every directory.
    done: Arc<Condvar>,
}

impl Slot {
    fn outcome(&self, ticket: u64) -> OsResult<()> {
        if ticket <= self.failed_floor {
            return Err(self.floor_error.clone().unwrap_or(OsError::Io(libc::EIO)));
        }
        match self
            .failures
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&ticket))
        {
            Some((_, _, e)) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn record_failure(&mut self, lo: u64, hi: u64, err: OsError) {
        if self.failures.len() == MAX_FAILURES {
            if let Some((_, old_hi, old_err)) = self.failures.pop_front() {
                self.failed_floor = self.failed_floor.max(old_hi);
                self.floor_error = Some(old_err);
            }
        }
        self.failures.push_back((lo, hi, err));
    }
}

/// Directory fsyncs shared by concurrent callers, keyed by directory.
#[derive(Default)]
pub struct GroupSync {
    slots: Mutex<HashMap<Vec<u8>, Slot>>,
}

impl GroupSync {
    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Slot>> {
        // The lock is never held across a sync or anything that panics.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns once an fsync of directory `key` that started after this
    /// call did has finished; `fsync` is called by whichever caller leads.
    pub fn sync(&self, key: &[u8], fsync: impl FnOnce() -> OsResult<()>) -> OsResult<()> {
        // An fsync, or a wait for the one that covers this caller.
        nfs4d_blocking::region(|| self.sync_covered(key, fsync))
    }

    fn sync_covered(&self, key: &[u8], fsync: impl FnOnce() -> OsResult<()>) -> OsResult<()> {
        let mut fsync = Some(fsync);
        let mut g = self.lock();
        let (ticket, done) = {
            let s = g.entry(key.to_vec()).or_default();
            s.issued += 1;
            s.waiters += 1;
            (s.issued, Arc::clone(&s.done))
        };
        let result = loop {
            let s = g.get_mut(key).expect("slot lives while it has waiters");
            if s.completed >= ticket {
                break s.outcome(ticket);
            }
            if !s.running {
                if let Some(f) = fsync.take() {
                    // Lead: this fsync starts after every ticket issued so
                    // far had its change made, so it covers all of them.
                    s.running = true;
                    let (lo, hi) = (s.completed + 1, s.issued);
                    drop(g);
                    let r = f();
                    g = self.lock();
                    let s = g.get_mut(key).expect("slot lives while it has waiters");
                    s.running = false;
                    s.completed = hi;
                    if let Err(e) = r {
                        s.record_failure(lo, hi, e);
                    }
                    done.notify_all();
                    continue;
                }
                // Only a caller that already led can get here, and a
                // leader's own ticket is always covered by its sync.
            }
            g = done.wait(g).unwrap_or_else(|p| p.into_inner());
        };
        let s = g.get_mut(key).expect("slot lives while it has waiters");
        s.waiters -= 1;
        if s.waiters == 0 && !s.running {
            g.remove(key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    #[test]
    fn lone_caller_syncs_once() {
        let g = GroupSync::default();
        let n = AtomicUsize::new(0);
        for _ in 0..3 {
            g.sync(b"d", || {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .expect("sync");
        }
        assert_eq!(n.load(Ordering::SeqCst), 3, "sequential callers each sync");
        assert!(g.lock().is_empty(), "slots are dropped when idle");
    }

    #[test]
    fn concurrent_callers_share_syncs() {
        let g = Arc::new(GroupSync::default());
        let n = Arc::new(AtomicUsize::new(0));
        let threads = 16;
        let start = Arc::new(Barrier::new(threads));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (g, n, start) = (g.clone(), n.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    g.sync(b"d", || {
                        n.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Ok(())
                    })
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread").expect("sync");
        }
        let syncs = n.load(Ordering::SeqCst);
        assert!(
            syncs >= 1 && syncs < threads,
            "{syncs} fsyncs for {threads} callers"
        );
        assert!(g.lock().is_empty());
    }

    #[test]
    fn a_failure_reaches_every_covered_caller() {
        let g = Arc::new(GroupSync::default());
        let threads = 8;
        let start = Arc::new(Barrier::new(threads));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let (g, start) = (g.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    g.sync(b"d", || {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        Err(OsError::Io(libc::EIO))
                    })
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().expect("thread"), Err(OsError::Io(libc::EIO)));
        }
        // Later callers start afresh.
        assert_eq!(g.sync(b"d", || Ok(())), Ok(()));
    }

    #[test]
    fn collapsed_failures_still_fail() {
        let mut s = Slot::default();
        for i in 0..(MAX_FAILURES as u64 + 3) {
            s.record_failure(i * 2 + 1, i * 2 + 2, OsError::Io(libc::EIO));
        }
        assert!(s.outcome(1).is_err());
        assert!(s.outcome(2 * MAX_FAILURES as u64 + 6).is_err());
        assert!(s.outcome(1000).is_ok());
    }
}
