//! Group commit: many callers wait for durability, few `fsync`s happen.
//!
//! RFC 7530 §4.2.2 requires that a persistent handle keep working after a
//! server restart, so the mapping behind a handle must be on disk before the
//! reply carrying it leaves. A flush per request would cap the server at
//! one request per fsync; instead a caller whose write is not yet durable
//! either starts a flush (if none is running) or waits for the running one
//! and then re-checks: a flush covers every write completed before it
//! started, so callers queued behind one flush are all served by the next.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use super::{lock, FhError};

#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<State>,
    cv: Condvar,
    flushes: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Every write with a sequence number ≤ this is durable.
    durable: u64,
    /// A flusher is running; others wait on `cv` instead of flushing.
    flushing: bool,
}

/// Clears `flushing` and wakes waiters even if the flush panics, so a
/// panicking flusher cannot leave everyone else waiting forever.
struct Flushing<'a>(&'a GroupCommit);

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).flushing = false;
        self.0.cv.notify_all();
    }
}

impl GroupCommit {
    /// Returns once all writes with sequence number ≤ `upto` are durable.
    ///
    /// `written()` must return a sequence number whose writes (and all
    /// earlier ones) are already applied, so that a `flush()` started
    /// afterwards covers them; `upto` must eventually be ≤ `written()`.
    pub(super) fn wait_durable(
        &self,
        upto: u64,
        written: impl Fn() -> u64,
        flush: impl Fn() -> Result<(), FhError>,
    ) -> Result<(), FhError> {
        if lock(&self.state).durable >= upto {
            return Ok(());
        }
        // A flush, or a wait for someone else's: lasts a disk write.
        nfs4d_blocking::region(|| self.wait_flushed(upto, written, flush))
    }

    fn wait_flushed(
        &self,
        upto: u64,
        written: impl Fn() -> u64,
        flush: impl Fn() -> Result<(), FhError>,
    ) -> Result<(), FhError> {
        let mut st = lock(&self.state);
        loop {
            if st.durable >= upto {
                return Ok(());
            }
            if st.flushing {
                st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.flushing = true;
            drop(st);
            let guard = Flushing(self);
            // Sampled before flushing starts: exactly these writes are covered.
            let target = written();
            let result = flush();
            self.flushes.fetch_add(1, Ordering::Relaxed);
            if result.is_ok() {
                let mut s = lock(&self.state);
                s.durable = s.durable.max(target);
            }
            drop(guard);
            // On error, report it to this caller; waiters retry on their own.
            result?;
            st = lock(&self.state);
        }
    }

    /// Number of flushes performed through [`Self::wait_durable`].
    pub(super) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn concurrent_waiters_share_flushes() {
        let gc = Arc::new(GroupCommit::default());
        let written = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, written) = (gc.clone(), written.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seq = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.wait_durable(
                            seq,
                            || written.load(Ordering::SeqCst),
                            || {
                                std::thread::sleep(Duration::from_millis(2));
                                Ok(())
                            },
                        )
                        .expect("fake flush cannot fail");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread panicked");
        }
        assert!(gc.flushes() < 400 / 2, "flushes = {}", gc.flushes());
    }

    #[test]
    fn flush_error_is_reported_and_retried_later() {
        let gc = GroupCommit::default();
        let err = || Err(FhError::Corrupt("disk on fire".into()));
        assert!(gc.wait_durable(1, || 1, err).is_err());
        assert!(gc.wait_durable(1, || 1, || Ok(())).is_ok());
        assert_eq!(gc.flushes(), 2);
        // Already durable: no further flush.
        assert!(gc.wait_durable(1, || 1, err).is_ok());
        assert_eq!(gc.flushes(), 2);
    }
}
