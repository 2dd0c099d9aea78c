//! Counters the core keeps about the requests it runs, for the daemon to
//! export (Prometheus text on the admin listener, docs/operations.md).
//!
//! The core owns plain atomic counters and knows no metrics library: the
//! daemon reads them at scrape time. Recording is off until the daemon
//! turns it on ([`OpMetrics::enable`]); while off, the COMPOUND loop pays
//! one relaxed load per operation. While on, an operation costs two reads
//! of the monotonic clock ([`crate::clock::Clock::monotonic_ns`]) and three
//! or four relaxed atomic additions.
//!
//! What is counted here: every operation the COMPOUND loop ran or refused,
//! by operation, with its latency and, for errors, its `nfsstat4`
//! (recorded in one place, `compound::run_ops`); the bytes READ and WRITE
//! moved; the time requests waited for the handle map to be durable.
//! Delegation counters live with the state they count
//! ([`crate::state::StateStats`]); gauges (clients, sessions, opens …) are
//! read from the state table when asked ([`crate::state::StateManager::snapshot`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use nfs4d_xdr::nfs4::nfsstat4;

/// Operation numbers counted: 0 to the last one any minor version defines
/// (`OP_REMOVEXATTR`, 75); anything else (OP_ILLEGAL, unknown numbers)
/// counts under [`ILLEGAL_SLOT`].
pub const OP_SLOTS: usize = 77;
/// The slot of operation numbers no minor version defines.
pub const ILLEGAL_SLOT: usize = OP_SLOTS - 1;
const _: () =
    assert!(nfs4d_xdr::nfs4::nfs_opnum4::OP_REMOVEXATTR as i32 as usize == ILLEGAL_SLOT - 1);

/// Status slots: `nfsstat4` values below 100 (NFS4_OK and the errors
/// shared with NFSv3) map to themselves, 10001.. to 100..; other values
/// (none are defined) share the last slot.
pub const STATUS_SLOTS: usize = 200;
const HIGH_STATUS_BASE: i32 = 10001;
const _: () = assert!(
    (nfsstat4::NFS4ERR_NOXATTR as i32 - HIGH_STATUS_BASE) < (STATUS_SLOTS - 100 - 1) as i32
);

/// Latency bucket bounds, in microseconds: powers of four from 16 µs to
/// about 17 s, enough to tell a cached GETATTR from a disk-bound COMMIT.
pub const LATENCY_BOUNDS_US: [u64; 11] = [
    16,
    64,
    256,
    1 << 10,
    1 << 12,
    1 << 14,
    1 << 16,
    1 << 18,
    1 << 20,
    1 << 22,
    1 << 24,
];
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// The bucket of `us` microseconds: the first bound at or above it. The
/// bounds are 16 · 4^k, so that is ⌈log₂ us⌉ halved, less two, found from
/// the leading zeros rather than by a search.
#[inline]
fn bucket_of(us: u64) -> usize {
    if us <= LATENCY_BOUNDS_US[0] {
        return 0;
    }
    let ceil_log2 = (u64::BITS - (us - 1).leading_zeros()) as usize;
    // us > 16, so ceil_log2 >= 5.
    (ceil_log2.div_ceil(2) - 2).min(BUCKETS - 1)
}

// bucket_of relies on the bounds being 16 · 4^k.
const _: () = {
    let mut k = 0;
    while k < LATENCY_BOUNDS_US.len() {
        assert!(LATENCY_BOUNDS_US[k] == 16 << (2 * k));
        k += 1;
    }
};

/// A latency histogram: counts per bucket (the last is +Inf), the sum.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, cumulative count) per bucket, without +Inf.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_secs: f64,
}

impl Histogram {
    /// Records one observation of `ns` nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        self.buckets[bucket_of(ns / 1000)].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Cumulative counts, as the Prometheus format wants them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(BUCKETS - 1);
        for (i, b) in LATENCY_BOUNDS_US.iter().enumerate() {
            acc += self.buckets[i].load(Relaxed);
            buckets.push((*b as f64 / 1e6, acc));
        }
        acc += self.buckets[BUCKETS - 1].load(Relaxed);
        HistogramSnapshot {
            buckets,
            count: acc,
            sum_secs: self.sum_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// One operation's counters.
#[derive(Debug, Default)]
struct OpCounters {
    latency: Histogram,
}

/// The core's request counters.
#[derive(Debug)]
pub struct OpMetrics {
    enabled: AtomicBool,
    ops: Box<[OpCounters]>,
    /// Errors by operation and status: `OP_SLOTS × STATUS_SLOTS`.
    errors: Box<[AtomicU64]>,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    compounds: AtomicU64,
    flush_wait: Histogram,
}

impl Default for OpMetrics {
    fn default() -> Self {
        OpMetrics {
            enabled: AtomicBool::new(false),
            ops: (0..OP_SLOTS).map(|_| OpCounters::default()).collect(),
            errors: (0..OP_SLOTS * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            compounds: AtomicU64::new(0),
            flush_wait: Histogram::default(),
        }
    }
}

/// The slot of an operation number.
pub fn op_slot(opnum: u32) -> usize {
    match usize::try_from(opnum) {
        Ok(n) if n < ILLEGAL_SLOT => n,
        _ => ILLEGAL_SLOT,
    }
}

fn status_slot(st: nfsstat4) -> usize {
    let v = st as i32;
    if (0..100).contains(&v) {
        v as usize
    } else if v >= HIGH_STATUS_BASE && v - HIGH_STATUS_BASE < (STATUS_SLOTS - 101) as i32 {
        100 + (v - HIGH_STATUS_BASE) as usize
    } else {
        STATUS_SLOTS - 1
    }
}

fn slot_status(slot: usize) -> Option<nfsstat4> {
    let v = if slot < 100 {
        slot as i32
    } else {
        HIGH_STATUS_BASE + (slot - 100) as i32
    };
    nfsstat4::try_from(v).ok()
}

/// One operation's figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSnapshot {
    /// Operation number (`ILLEGAL_SLOT` for OP_ILLEGAL and unknown ones).
    pub opnum: u32,
    /// Latency of every run (count = how many ran or were refused).
    pub latency: HistogramSnapshot,
    /// Errors by status (only statuses seen).
    pub errors: Vec<(nfsstat4, u64)>,
}

impl OpMetrics {
    /// Starts recording (the daemon does so when metrics are exported).
    pub fn enable(&self) {
        self.enabled.store(true, Relaxed);
    }

    /// Whether recording is on.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    /// Records one operation: `opnum` ended with `st` after `ns` nanoseconds.
    pub fn op_done(&self, opnum: u32, st: nfsstat4, ns: u64) {
        let op = op_slot(opnum);
        self.ops[op].latency.observe_ns(ns);
        if st != nfsstat4::NFS4_OK {
            self.errors[op * STATUS_SLOTS + status_slot(st)].fetch_add(1, Relaxed);
        }
    }

    /// Records one COMPOUND.
    pub fn compound_done(&self) {
        self.compounds.fetch_add(1, Relaxed);
    }

    /// Bytes a READ or READ_PLUS returned.
    pub fn read_bytes(&self, n: u64) {
        if self.enabled() {
            self.bytes_read.fetch_add(n, Relaxed);
        }
    }

    /// Bytes a WRITE stored.
    pub fn written_bytes(&self, n: u64) {
        if self.enabled() {
            self.bytes_written.fetch_add(n, Relaxed);
        }
    }

    /// Time a request waited for the handle map to be durable.
    pub fn flush_waited(&self, ns: u64) {
        self.flush_wait.observe_ns(ns);
    }

    /// Every operation that ran at least once.
    pub fn ops(&self) -> Vec<OpSnapshot> {
        let mut out = Vec::new();
        for (slot, c) in self.ops.iter().enumerate() {
            let latency = c.latency.snapshot();
            if latency.count == 0 {
                continue;
            }
            let errors = (1..STATUS_SLOTS)
                .filter_map(|s| {
                    let n = self.errors[slot * STATUS_SLOTS + s].load(Relaxed);
                    Some((slot_status(s)?, n)).filter(|_| n > 0)
                })
                .collect();
            out.push(OpSnapshot {
                opnum: slot as u32,
                latency,
                errors,
            });
        }
        out
    }

    /// (bytes read, bytes written) by READ, READ_PLUS and WRITE.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.bytes_read.load(Relaxed),
            self.bytes_written.load(Relaxed),
        )
    }

    /// COMPOUNDs processed.
    pub fn compounds(&self) -> u64 {
        self.compounds.load(Relaxed)
    }

    /// Waits for handle-map durability.
    pub fn flush_wait(&self) -> HistogramSnapshot {
        self.flush_wait.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_slots_round_trip_every_status() {
        for v in (0..100).chain(10001..10200) {
            if let Ok(st) = nfsstat4::try_from(v) {
                let s = status_slot(st);
                assert!(s < STATUS_SLOTS - 1, "{st:?}");
                assert_eq!(slot_status(s), Some(st));
            }
        }
    }

    #[test]
    fn buckets_are_the_first_bound_at_or_above() {
        for k in 0..(1u64 << 20) {
            let us = k * 64 + k % 7;
            let want = LATENCY_BOUNDS_US
                .iter()
                .position(|b| us <= *b)
                .unwrap_or(BUCKETS - 1);
            assert_eq!(bucket_of(us), want, "{us}");
        }
        for (i, b) in LATENCY_BOUNDS_US.iter().enumerate() {
            assert_eq!(bucket_of(*b), i);
            assert_eq!(bucket_of(b + 1), i + 1);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_is_cumulative_and_sums() {
        let h = Histogram::default();
        h.observe_ns(10_000); // 10 µs: first bucket
        h.observe_ns(100_000); // 100 µs: third
        h.observe_ns(60_000_000_000); // a minute: +Inf only
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (16e-6, 1));
        assert_eq!(s.buckets[1].1, 1);
        assert_eq!(s.buckets[2].1, 2);
        assert_eq!(s.buckets.last().unwrap().1, 2);
        assert!((s.sum_secs - 60.00011).abs() < 1e-9);
    }

    #[test]
    fn operations_and_errors_are_counted_by_slot() {
        let m = OpMetrics::default();
        m.op_done(25, nfsstat4::NFS4_OK, 1000); // READ
        m.op_done(25, nfsstat4::NFS4ERR_STALE, 1000);
        m.op_done(9999, nfsstat4::NFS4ERR_OP_ILLEGAL, 1000);
        let ops = m.ops();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].opnum, 25);
        assert_eq!(ops[0].latency.count, 2);
        assert_eq!(ops[0].errors, vec![(nfsstat4::NFS4ERR_STALE, 1)]);
        assert_eq!(ops[1].opnum, ILLEGAL_SLOT as u32);
        assert_eq!(ops[1].errors, vec![(nfsstat4::NFS4ERR_OP_ILLEGAL, 1)]);
    }
}
