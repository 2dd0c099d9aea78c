//! Time as the protocol core sees it.
//!
//! The COMPOUND core never reads the wall clock itself: leases, grace and
//! handle expiry are computed from a [`Clock`] handed in by whoever runs it.
//! The daemon uses the system's monotonic clock; tests use [`ManualClock`] and move time
//! by hand, so lease expiry is deterministic (no sleeps in unit tests).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock in milliseconds since an arbitrary origin.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since this clock's origin; never goes backwards.
    fn now_ms(&self) -> u64;

    /// Nanoseconds since this clock's origin, for measuring how long an
    /// operation took (metrics). Clocks without a finer source count in
    /// whole milliseconds.
    fn monotonic_ns(&self) -> u64 {
        self.now_ms().saturating_mul(1_000_000)
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
