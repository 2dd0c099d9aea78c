//! Time as the protocol core sees it.
//!
//! The COMPOUND core never reads the wall clock itself: leases, grace and
//! handle expiry are computed from a [`Clock`] handed in by whoever runs it.
//! The daemon uses [`SystemClock`]; tests use [`ManualClock`] and move time
//! by hand, so lease expiry is deterministic (no sleeps in unit tests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic clock in milliseconds since an arbitrary origin.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since this clock's origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

/// The real monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}
