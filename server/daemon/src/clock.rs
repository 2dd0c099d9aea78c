//! The daemon's clock: the system's monotonic clock, for the core's
//! [`nfs4d_core::clock::Clock`].

use std::time::Instant;

use nfs4d_core::clock::Clock;

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

    fn monotonic_ns(&self) -> u64 {
        // u64 nanoseconds last 584 years.
        self.origin.elapsed().as_nanos() as u64
    }
}
