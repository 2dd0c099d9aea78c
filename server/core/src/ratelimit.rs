//! Rate limiting of log lines about refused requests, so a hostile or
//! broken client cannot flood the log (docs/operations.md).
//!
//! Each client address has a token bucket ([`PER_PEER_BURST`] lines, then
//! [`PER_PEER_PER_SEC`] a second), and all addresses share one
//! ([`TOTAL_PER_SEC`]), so many addresses cannot flood it either. A line
//! that is let through after others were held back says how many.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Lines a single address may log in a burst.
pub const PER_PEER_BURST: u64 = 10;
/// Lines a single address may log per second after its burst.
pub const PER_PEER_PER_SEC: u64 = 1;
/// Lines all addresses together may log per second (and in a burst).
pub const TOTAL_PER_SEC: u64 = 50;
/// Addresses tracked; past it the table starts over (a flood from many
/// addresses is then held by the shared bucket).
pub const MAX_PEERS: usize = 4096;
const _: () = assert!(PER_PEER_BURST <= TOTAL_PER_SEC);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli: u64,
    at_ms: u64,
    held: u64,
}

impl Bucket {
    fn full(burst: u64, now: u64) -> Bucket {
        Bucket {
            milli: burst * 1000,
            at_ms: now,
            held: 0,
        }
    }

    fn take(&mut self, burst: u64, per_sec: u64, now: u64) -> bool {
        let refill = now.saturating_sub(self.at_ms).saturating_mul(per_sec);
        self.milli = (self.milli + refill).min(burst * 1000);
        self.at_ms = now;
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    peers: HashMap<IpAddr, Bucket>,
    total: Option<Bucket>,
}

/// Decides which refusal lines are logged.
#[derive(Debug, Default)]
pub struct LogLimiter {
    inner: Mutex<Inner>,
}

impl LogLimiter {
    /// Whether a line about `peer` may be logged at `now_ms`: `Some(n)`
    /// with the number of its lines held back since its last one, or
    /// `None` to stay quiet.
    pub fn admit(&self, peer: IpAddr, now_ms: u64) -> Option<u64> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.peers.len() >= MAX_PEERS && !g.peers.contains_key(&peer) {
            g.peers.clear();
        }
        let total = *g
            .total
            .get_or_insert_with(|| Bucket::full(TOTAL_PER_SEC, now_ms));
        let mut total = total;
        let b = g
            .peers
            .entry(peer)
            .or_insert_with(|| Bucket::full(PER_PEER_BURST, now_ms));
        let ok = b.take(PER_PEER_BURST, PER_PEER_PER_SEC, now_ms)
            && total.take(TOTAL_PER_SEC, TOTAL_PER_SEC, now_ms);
        let out = if ok {
            Some(std::mem::take(&mut b.held))
        } else {
            b.held += 1;
            None
        };
        g.total = Some(total);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flooding_address_is_held_to_its_rate_and_told_what_was_held() {
        let l = LogLimiter::default();
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let logged = (0..1000).filter(|_| l.admit(a, 0).is_some()).count();
        assert_eq!(logged as u64, PER_PEER_BURST);
        // Another address still gets its lines.
        assert_eq!(l.admit(b, 0), Some(0));
        // A second later one more line, which says how many were held.
        assert_eq!(l.admit(a, 1000), Some(1000 - PER_PEER_BURST));
        assert_eq!(l.admit(a, 1000), None);
    }

    #[test]
    fn many_addresses_share_one_bound() {
        let l = LogLimiter::default();
        let logged = (0..10_000u32)
            .filter(|i| l.admit(IpAddr::from(i.to_be_bytes()), 5).is_some())
            .count();
        assert_eq!(logged as u64, TOTAL_PER_SEC);
    }
}
