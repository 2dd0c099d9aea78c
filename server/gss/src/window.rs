//! The sequence window of a context (RFC 2203 §5.3.3.1).
//!
//! The server remembers the highest sequence number seen and which of the
//! [`SEQ_WINDOW`] numbers below it have been seen. A number above the
//! highest moves the window; one inside it is accepted once; one below it,
//! or seen before, is a replay or too old and the call is dropped without
//! a reply. Only calls whose header MIC verified reach the window, so a
//! forger cannot move it.

/// Sequence numbers a context accepts out of order, advertised as
/// `seq_window` in `rpc_gss_init_res`. A client keeps at most this many
/// calls outstanding per context; it is the transport's per-connection
/// limit of requests in flight by default (128).
pub const SEQ_WINDOW: u32 = 128;

const _: () = assert!(SEQ_WINDOW as usize <= u128::BITS as usize && SEQ_WINDOW > 0);

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
    /// Bit `i` set: `top - i` has been seen.
    bits: u128,
}

impl SeqWindow {
    /// An empty window.
    pub fn new() -> SeqWindow {
        SeqWindow::default()
    }

    /// Records `seq` if it is fresh.
    pub fn check(&mut self, seq: u32) -> Seen {
        let Some(top) = self.top else {
            self.top = Some(seq);
            self.bits = 1;
            return Seen::Fresh;
        };
        if seq > top {
            let shift = seq - top;
            self.bits = if shift >= u128::BITS {
                0
            } else {
                self.bits << shift
            };
            self.bits |= 1;
            self.top = Some(seq);
            return Seen::Fresh;
        }
        let behind = top - seq;
        if behind >= SEQ_WINDOW {
            return Seen::TooOld;
        }
        let bit = 1u128 << behind;
        if self.bits & bit != 0 {
            return Seen::Replay;
        }
        self.bits |= bit;
        Seen::Fresh
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
                let step = (state >> 16) % 300;
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
