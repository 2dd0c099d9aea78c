//! The sequence window of a context (RFC 2203 §5.3.3.1).
//!
//! The server remembers the highest sequence number seen and which of the
//! [`SEQ_WINDOW`] numbers below it have been seen. A number above the
//! highest moves the window; one inside it is accepted once; one below it,
//! or seen before, is a replay or too old and the call is dropped without
//! a reply. Only calls whose header MIC verified reach the window, so a
//! forger cannot move it.

/// Sequence numbers a context accepts out of order, advertised as
/// `seq_window` in `rpc_gss_init_res`.
///
/// The window must cover the reordering of the server itself, not only
/// the client's calls outstanding: a connection's calls are checked by
/// several runner threads, and while one runner is descheduled between
/// taking a call and checking it, the others go on serving the client's
/// other slots, whose sequence numbers keep rising. With a window of 128
/// a pipelined client (16 slots, one context per connection) had calls
/// dropped as too old on a loaded two-core machine (a stall of about 130
/// calls, some 40 ms), and without a reply it waits for its timeout.
/// 1024 tolerates eight times that stall for 128 bytes per context.
pub const SEQ_WINDOW: u32 = 1024;

/// Words of the bitmap.
const WORDS: usize = SEQ_WINDOW as usize / 64;

const _: () = assert!(SEQ_WINDOW > 0 && SEQ_WINDOW.is_multiple_of(64));

/// What the window says about a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before and inside or above the window: serve the call.
    Fresh,
    /// Already seen inside the window: drop (a replay or a duplicate).
    Replay,
    /// Below the window: drop (too old to tell).
    TooOld,
}

/// The window: the highest number seen and a bitmap of the numbers below.
#[derive(Debug, Clone, Default)]
pub struct SeqWindow {
    /// Highest sequence number seen, if any.
    top: Option<u32>,
    /// Bit `i` (bit `i % 64` of word `i / 64`) set: `top - i` has been
    /// seen.
    bits: [u64; WORDS],
}

impl SeqWindow {
    /// An empty window.
    pub fn new() -> SeqWindow {
        SeqWindow::default()
    }

    /// The highest sequence number seen, if any (for the log line of a
    /// dropped call).
    pub fn top(&self) -> Option<u32> {
        self.top
    }

    /// Records `seq` if it is fresh.
    pub fn check(&mut self, seq: u32) -> Seen {
        let Some(top) = self.top else {
            self.top = Some(seq);
            self.bits = [0; WORDS];
            self.bits[0] = 1;
            return Seen::Fresh;
        };
        if seq > top {
            let shift = seq - top;
            self.shift(shift);
            self.bits[0] |= 1;
            self.top = Some(seq);
            return Seen::Fresh;
        }
        let behind = top - seq;
        if behind >= SEQ_WINDOW {
            return Seen::TooOld;
        }
        let (word, bit) = ((behind / 64) as usize, 1u64 << (behind % 64));
        if self.bits[word] & bit != 0 {
            return Seen::Replay;
        }
        self.bits[word] |= bit;
        Seen::Fresh
    }

    /// Moves the window up by `n` numbers: bit `i` becomes bit `i + n`.
    fn shift(&mut self, n: u32) {
        if n >= SEQ_WINDOW {
            self.bits = [0; WORDS];
            return;
        }
        let (words, bits) = ((n / 64) as usize, n % 64);
        for i in (0..WORDS).rev() {
            let mut v = if i >= words {
                self.bits[i - words] << bits
            } else {
                0
            };
            if bits > 0 && i > words {
                v |= self.bits[i - words - 1] >> (64 - bits);
            }
            self.bits[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn in_order_out_of_order_replay_and_too_old() {
        let mut w = SeqWindow::new();
        assert_eq!(w.check(10), Seen::Fresh);
        assert_eq!(w.check(10), Seen::Replay);
        assert_eq!(w.check(12), Seen::Fresh);
        assert_eq!(w.check(11), Seen::Fresh);
        assert_eq!(w.check(11), Seen::Replay);
        // The window starts at the first number seen: lower ones within
        // SEQ_WINDOW are accepted once (calls overtaking each other).
        assert_eq!(w.check(5), Seen::Fresh);
        assert_eq!(w.check(12 + SEQ_WINDOW), Seen::Fresh);
        assert_eq!(w.check(12), Seen::TooOld);
        assert_eq!(w.check(13), Seen::Fresh);
        assert_eq!(w.check(13), Seen::Replay);
        assert_eq!(w.check(u32::MAX), Seen::Fresh);
        assert_eq!(w.check(13 + SEQ_WINDOW), Seen::TooOld);
    }

    /// The bitmap agrees with a plain model (all numbers seen, highest
    /// seen) on pseudo-random walks that go forwards and backwards.
    #[test]
    fn agrees_with_a_set_model() {
        let mut state = 0x1234_5678u32;
        for _ in 0..50 {
            let mut w = SeqWindow::new();
            let mut seen = HashSet::new();
            let mut top: Option<u32> = None;
            let mut cur = 1000u32;
            for _ in 0..2000 {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let step = (state >> 16) % (3 * SEQ_WINDOW);
                cur = if state & 1 == 0 {
                    cur + step
                } else {
                    cur.saturating_sub(step)
                };
                let want = match top {
                    Some(t) if cur <= t && t - cur >= SEQ_WINDOW => Seen::TooOld,
                    _ if seen.contains(&cur) => Seen::Replay,
                    _ => Seen::Fresh,
                };
                assert_eq!(w.check(cur), want, "seq {cur}");
                if want == Seen::Fresh {
                    seen.insert(cur);
                    top = Some(top.map_or(cur, |t| t.max(cur)));
                }
            }
        }
    }
}
