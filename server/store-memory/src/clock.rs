//! Time as the store sees it: injected, so tests are deterministic. The
//! store never reads the wall clock itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nfs4d_store::Timespec;

/// Where the store takes "now" from (timestamps of changes,
/// `SET_TO_SERVER_TIME4`).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timespec;
}

/// Any closure returning a time is a clock, e.g. one reading the system
/// time for a store used outside tests.
impl<F: Fn() -> Timespec + Send + Sync + 'static> Clock for F {
    fn now(&self) -> Timespec {
        self()
    }
}

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A clock that starts at a fixed time and advances by a fixed step every
/// time it is read: every change gets a later timestamp than the one
/// before, and two runs of a test see the same times.
#[derive(Debug)]
pub struct TickClock {
    start: Timespec,
    step_ns: u64,
    ticks: AtomicU64,
}

impl TickClock {
    /// 2024-01-01T00:00:00Z.
    pub const DEFAULT_START: Timespec = Timespec {
        sec: 1_704_067_200,
        nsec: 0,
    };

    /// Starts at `start` and moves on by `step` per reading (at least 1 ns,
    /// so that consecutive readings always differ).
    pub fn new(start: Timespec, step: Duration) -> TickClock {
        let step_ns = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX).max(1);
        TickClock {
            start,
            step_ns,
            ticks: AtomicU64::new(0),
        }
    }

    /// How many times the clock was read.
    pub fn readings(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

impl Default for TickClock {
    /// [`TickClock::DEFAULT_START`], one microsecond per reading.
    fn default() -> TickClock {
        TickClock::new(TickClock::DEFAULT_START, Duration::from_micros(1))
    }
}

impl Clock for TickClock {
    fn now(&self) -> Timespec {
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed);
        let elapsed = u128::from(tick) * u128::from(self.step_ns);
        let nanos = u128::from(self.start.nsec) + elapsed;
        let secs = i64::try_from(nanos / u128::from(NANOS_PER_SEC)).unwrap_or(i64::MAX);
        Timespec {
            sec: self.start.sec.saturating_add(secs),
            nsec: (nanos % u128::from(NANOS_PER_SEC)) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_deterministic_and_increasing() {
        let c = TickClock::new(
            Timespec {
                sec: 10,
                nsec: 999_999_999,
            },
            Duration::from_nanos(1),
        );
        assert_eq!(
            c.now(),
            Timespec {
                sec: 10,
                nsec: 999_999_999
            }
        );
        assert_eq!(c.now(), Timespec { sec: 11, nsec: 0 });
        assert_eq!(c.readings(), 2);
        let d = TickClock::default();
        let (a, b) = (d.now(), d.now());
        assert!(b > a);
        assert_eq!(a, TickClock::DEFAULT_START);
    }

    #[test]
    fn huge_steps_saturate() {
        let c = TickClock::new(
            Timespec {
                sec: i64::MAX - 1,
                nsec: 0,
            },
            Duration::MAX,
        );
        c.now();
        let later = c.now();
        assert_eq!(later.sec, i64::MAX);
        assert!(later.nsec < 1_000_000_000);
    }

    #[test]
    fn closures_are_clocks() {
        let fixed = || Timespec { sec: 5, nsec: 6 };
        assert_eq!(Clock::now(&fixed), Timespec { sec: 5, nsec: 6 });
    }
}
