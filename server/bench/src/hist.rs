//! A log-linear latency histogram (the HdrHistogram idea, fixed precision).
//!
//! A run can complete millions of requests; keeping every latency to sort
//! at the end would cost memory proportional to the run. Instead each value
//! lands in one of a fixed set of buckets: exact below 64 ns, then 32
//! buckets per power of two, so any reported percentile is within ~3 % of
//! the true value whatever the magnitude. A histogram is 15 KiB, merging
//! two is an element-wise add.

/// Sub-buckets per power of two, as a power of two (32 → ~3 % precision).
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64`: exponents 5..=63 each get `SUB` buckets,
/// on top of the `2 * SUB` exact ones below 64.
const BUCKETS: usize = (64 - SUB_BITS as usize) * SUB + SUB;

/// Latencies in nanoseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

/// Bucket of a value.
fn index(v: u64) -> usize {
    if v < (2 * SUB) as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // floor(log2 v) >= SUB_BITS + 1
    let mantissa = (v >> (e - SUB_BITS)) as usize; // in [SUB, 2 SUB)
    (e - SUB_BITS) as usize * SUB + mantissa
}

/// Smallest and one-past-largest value of a bucket.
fn bounds(i: usize) -> (u64, u64) {
    if i < 2 * SUB {
        return (i as u64, i as u64 + 1);
    }
    let e = (i / SUB) as u32 + SUB_BITS - 1;
    let mantissa = (i % SUB + SUB) as u64;
    let shift = e - SUB_BITS;
    let hi = u128::from(mantissa + 1) << shift; // 2^64 for the last bucket
    (mantissa << shift, hi.min(u128::from(u64::MAX)) as u64)
}

impl Histogram {
    /// Records one latency.
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.total += 1;
        self.sum += u128::from(nanos);
        self.max = self.max.max(nanos);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean in nanoseconds (0 when empty).
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// Largest value recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0..=1) of the values fall:
    /// the midpoint of the bucket holding the rank-`ceil(q·n)` value,
    /// capped by the true maximum (which is the answer for `q = 1`).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return self.max;
        }
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut prev_hi = 0;
        for i in 0..BUCKETS {
            let (lo, hi) = bounds(i);
            assert_eq!(lo, prev_hi, "bucket {i}");
            assert_eq!(index(lo), i);
            if hi != u64::MAX {
                assert_eq!(index(hi - 1), i);
            }
            prev_hi = hi;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.quantile(1.0), 100_000_000);
    }
}
