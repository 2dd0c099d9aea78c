//! The context table: contexts by handle, bounded per client and in all,
//! with expiry. Generic over what a context holds, so its policy is tested
//! without Kerberos.
//!
//! Bounds (RFC 2203 leaves them to the server):
//!
//! * a client (an IP address: NFS clients reconnect from new ports) holds
//!   at most `max_per_client` contexts; a new one beyond that evicts the
//!   client's least recently used context, so a client can only crowd out
//!   itself;
//! * the table holds at most `max_contexts`; when it is full, expired
//!   contexts go first, then the least recently used context of the client
//!   holding the most, so one client cannot evict everybody else's;
//! * a context expires when its GSS lifetime (the Kerberos ticket's) ends,
//!   after `max_lifetime_ms` in any case, after `idle_ms` without a verified
//!   call, and, while its establishment is unfinished, after `init_ms`.
//!
//! An evicted or expired context answers RPCSEC_GSS_CTXPROBLEM to its next
//! call, and its client establishes a new one (RFC 2203 §5.3.3.3).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Length of the handles the table issues.
pub const HANDLE_LEN: usize = 16;

/// A context handle: 8 random bytes chosen when the table is made (so a
/// handle of an earlier server run never matches) and a counter.
pub type Handle = [u8; HANDLE_LEN];

/// Table limits and lifetimes (milliseconds of the injected clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Contexts in all.
    pub max_contexts: usize,
    /// Contexts of one client address.
    pub max_per_client: usize,
    /// Unused established contexts are dropped after this long.
    pub idle_ms: u64,
    /// Established contexts are dropped after this long whatever their
    /// Kerberos lifetime.
    pub max_lifetime_ms: u64,
    /// Unfinished establishments are dropped after this long.
    pub init_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_contexts: DEFAULT_MAX_CONTEXTS,
            max_per_client: DEFAULT_MAX_PER_CLIENT,
            idle_ms: 60 * 60 * 1000,
            max_lifetime_ms: 24 * 60 * 60 * 1000,
            init_ms: 60 * 1000,
        }
    }
}

/// Default bound on contexts in all (an MIT krb5 context and its entry
/// take a few KiB: some tens of MiB at most).
pub const DEFAULT_MAX_CONTEXTS: usize = 4096;
/// Default bound per client address: a Linux client holds one context per
/// user and service plus its machine credential; a busy multi-user host
/// past this only re-establishes its least used ones.
pub const DEFAULT_MAX_PER_CLIENT: usize = 128;

const _: () = assert!(DEFAULT_MAX_PER_CLIENT <= DEFAULT_MAX_CONTEXTS);

/// Limits that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RPCSEC_GSS context limits: {0}")]
pub struct LimitsError(pub &'static str);

impl Limits {
    /// Checks the relations between the limits.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.max_contexts == 0 || self.max_per_client == 0 {
            return Err(LimitsError(
                "max_contexts and max_contexts_per_client must be at least 1",
            ));
        }
        if self.max_per_client > self.max_contexts {
            return Err(LimitsError("max_contexts_per_client exceeds max_contexts"));
        }
        if self.idle_ms == 0 || self.max_lifetime_ms == 0 || self.init_ms == 0 {
            return Err(LimitsError("context lifetimes must be positive"));
        }
        Ok(())
    }
}

/// A table entry: the context and its bookkeeping.
#[derive(Debug)]
pub struct Entry<C> {
    /// What the context holds.
    pub value: C,
    client: IpAddr,
    /// Absolute expiry (ms); `u64::MAX` before establishment is complete.
    hard_expiry: AtomicU64,
    /// Last verified use (ms).
    last_used: AtomicU64,
    created: u64,
}

impl<C> Entry<C> {
    /// Records a verified use at `now`.
    pub fn touch(&self, now: u64) {
        self.last_used.fetch_max(now, Ordering::Relaxed);
    }

    /// The client address that created the context.
    pub fn client(&self) -> IpAddr {
        self.client
    }

    fn established(&self) -> bool {
        self.hard_expiry.load(Ordering::Relaxed) != u64::MAX
    }

    fn expired(&self, now: u64, limits: &Limits) -> bool {
        if self.established() {
            now >= self.hard_expiry.load(Ordering::Relaxed)
                || now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= limits.idle_ms
        } else {
            now.saturating_sub(self.created) >= limits.init_ms
        }
    }
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<C> {
    /// A live context.
    Found(Arc<Entry<C>>),
    /// No such handle (never issued, destroyed, evicted or expired).
    Unknown,
}

/// Why a context left the table (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Its lifetime or idle time ran out.
    Expired,
    /// Its client was at `max_per_client`.
    ClientLimit,
    /// The table was at `max_contexts`.
    TableLimit,
}

/// The table.
#[derive(Debug)]
pub struct Table<C> {
    limits: Limits,
    prefix: [u8; 8],
    next: u64,
    map: HashMap<Handle, Arc<Entry<C>>>,
    per_client: HashMap<IpAddr, usize>,
}

impl<C> Table<C> {
    /// An empty table; `prefix` should be random.
    pub fn new(limits: Limits, prefix: [u8; 8]) -> Table<C> {
        Table {
            limits,
            prefix,
            next: 1,
            map: HashMap::new(),
            per_client: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Contexts held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no context is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Contexts held for `client`.
    pub fn client_len(&self, client: IpAddr) -> usize {
        self.per_client.get(&client).copied().unwrap_or(0)
    }

    /// Adds a context for `client` (not yet established), making room
    /// first; returns its handle and the contexts removed to make room.
    pub fn insert(&mut self, client: IpAddr, value: C, now: u64) -> (Handle, Vec<(Handle, Gone)>) {
        let mut gone = Vec::new();
        if self.client_len(client) >= self.limits.max_per_client
            || self.map.len() >= self.limits.max_contexts
        {
            for h in self.sweep(now) {
                gone.push((h, Gone::Expired));
            }
        }
        while self.client_len(client) >= self.limits.max_per_client {
            match self.lru_of(client) {
                Some(h) => {
                    self.remove(&h);
                    gone.push((h, Gone::ClientLimit));
                }
                None => break,
            }
        }
        while self.map.len() >= self.limits.max_contexts {
            let Some(biggest) = self
                .per_client
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(c, _)| *c)
            else {
                break;
            };
            match self.lru_of(biggest) {
                Some(h) => {
                    self.remove(&h);
                    gone.push((h, Gone::TableLimit));
                }
                None => break,
            }
        }
        let mut handle = [0u8; HANDLE_LEN];
        handle[..8].copy_from_slice(&self.prefix);
        handle[8..].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        let entry = Arc::new(Entry {
            value,
            client,
            hard_expiry: AtomicU64::new(u64::MAX),
            last_used: AtomicU64::new(now),
            created: now,
        });
        self.map.insert(handle, entry);
        *self.per_client.entry(client).or_insert(0) += 1;
        (handle, gone)
    }

    /// Marks a context established, to expire at `expiry` (ms) at the
    /// latest (capped at `max_lifetime_ms` from `now`).
    pub fn established(&mut self, handle: &Handle, expiry: u64, now: u64) {
        if let Some(e) = self.map.get(handle) {
            let cap = now.saturating_add(self.limits.max_lifetime_ms);
            // u64::MAX means "not established": never store it.
            e.hard_expiry
                .store(expiry.min(cap).min(u64::MAX - 1), Ordering::Relaxed);
            e.touch(now);
        }
    }

    /// The context of `handle`, if it is live (an expired one is removed).
    pub fn get(&mut self, handle: &[u8], now: u64) -> Lookup<C> {
        let Ok(h) = Handle::try_from(handle) else {
            return Lookup::Unknown;
        };
        let Some(e) = self.map.get(&h) else {
            return Lookup::Unknown;
        };
        if e.expired(now, &self.limits) {
            self.remove(&h);
            return Lookup::Unknown;
        }
        Lookup::Found(e.clone())
    }

    /// True when `handle` names an established context (vs. one still
    /// being created).
    pub fn is_established(&self, handle: &[u8]) -> bool {
        Handle::try_from(handle)
            .ok()
            .and_then(|h| self.map.get(&h))
            .is_some_and(|e| e.established())
    }

    /// Removes a context.
    pub fn remove(&mut self, handle: &Handle) -> Option<Arc<Entry<C>>> {
        let e = self.map.remove(handle)?;
        if let Some(n) = self.per_client.get_mut(&e.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&e.client);
            }
        }
        Some(e)
    }

    /// Removes every expired context; returns their handles.
    pub fn sweep(&mut self, now: u64) -> Vec<Handle> {
        let dead: Vec<Handle> = self
            .map
            .iter()
            .filter(|(_, e)| e.expired(now, &self.limits))
            .map(|(h, _)| *h)
            .collect();
        for h in &dead {
            self.remove(h);
        }
        dead
    }

    fn lru_of(&self, client: IpAddr) -> Option<Handle> {
        self.map
            .iter()
            .filter(|(_, e)| e.client == client)
            .min_by_key(|(h, e)| (e.last_used.load(Ordering::Relaxed), **h))
            .map(|(h, _)| *h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per: usize) -> Limits {
        Limits {
            max_contexts: total,
            max_per_client: per,
            idle_ms: 1000,
            max_lifetime_ms: 10_000,
            init_ms: 100,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn per_client_limit_evicts_that_clients_least_recently_used() {
        let mut t: Table<u32> = Table::new(limits(100, 3), [1; 8]);
        let mut hs = Vec::new();
        for i in 0..3 {
            let (h, gone) = t.insert(ip(1), i, i as u64);
            assert!(gone.is_empty());
            t.established(&h, u64::MAX - 5, i as u64);
            hs.push(h);
        }
        let (other, _) = t.insert(ip(2), 99, 3);
        t.established(&other, 10_000, 3);
        // Using the oldest makes the second one least recently used.
        let Lookup::Found(e) = t.get(&hs[0], 4) else {
            panic!("lost")
        };
        e.touch(4);
        let (_, gone) = t.insert(ip(1), 3, 5);
        assert_eq!(gone, vec![(hs[1], Gone::ClientLimit)]);
        assert!(matches!(t.get(&hs[1], 5), Lookup::Unknown));
        assert!(matches!(t.get(&hs[0], 5), Lookup::Found(_)));
        assert!(matches!(t.get(&other, 5), Lookup::Found(_)));
        assert_eq!(
            (t.client_len(ip(1)), t.client_len(ip(2)), t.len()),
            (3, 1, 4)
        );
    }

    #[test]
    fn full_table_evicts_from_the_biggest_client() {
        let mut t: Table<u32> = Table::new(limits(4, 4), [2; 8]);
        let (a, _) = t.insert(ip(1), 0, 0);
        let (b1, _) = t.insert(ip(2), 0, 1);
        let (b2, _) = t.insert(ip(2), 0, 2);
        let (b3, _) = t.insert(ip(2), 0, 3);
        for h in [a, b1, b2, b3] {
            t.established(&h, 10_000, 3);
        }
        let (_, gone) = t.insert(ip(3), 0, 4);
        // Every entry was touched at 3 by `established`; ties go by handle,
        // and the client with three contexts gives one up, not client 1.
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1, Gone::TableLimit);
        assert!([b1, b2, b3].contains(&gone[0].0));
        assert!(matches!(t.get(&a, 4), Lookup::Found(_)));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn expiry_idle_lifetime_and_unfinished_establishment() {
        let mut t: Table<u32> = Table::new(limits(10, 10), [3; 8]);
        let (pending, _) = t.insert(ip(1), 0, 0);
        let (short, _) = t.insert(ip(1), 0, 0);
        t.established(&short, 500, 0);
        let (idle, _) = t.insert(ip(1), 0, 0);
        t.established(&idle, u64::MAX, 0);
        let (busy, _) = t.insert(ip(1), 0, 0);
        t.established(&busy, u64::MAX, 0);
        assert!(!t.is_established(&pending) && t.is_established(&short));
        assert!(matches!(t.get(&pending, 99), Lookup::Found(_)));
        assert!(matches!(t.get(&pending, 100), Lookup::Unknown));
        assert!(matches!(t.get(&short, 499), Lookup::Found(_)));
        assert!(matches!(t.get(&short, 500), Lookup::Unknown));
        for now in (0..=2000).step_by(400) {
            if let Lookup::Found(e) = t.get(&busy, now) {
                e.touch(now);
            }
        }
        assert!(matches!(t.get(&idle, 2000), Lookup::Unknown));
        assert!(matches!(t.get(&busy, 2000), Lookup::Found(_)));
        // The lifetime cap holds however busy the context is.
        for now in (2000..=10_000).step_by(400) {
            if let Lookup::Found(e) = t.get(&busy, now) {
                e.touch(now);
            }
        }
        assert!(matches!(t.get(&busy, 10_000), Lookup::Unknown));
        assert!(t.is_empty());
        assert_eq!(t.client_len(ip(1)), 0);
    }

    #[test]
    fn a_flood_stays_within_the_limits() {
        let mut t: Table<u32> = Table::new(limits(64, 8), [4; 8]);
        for i in 0..10_000u64 {
            let (h, _) = t.insert(ip((i % 20) as u8), 0, i);
            if i % 3 == 0 {
                t.established(&h, u64::MAX, i);
            }
            assert!(t.len() <= 64);
            assert!(t.client_len(ip((i % 20) as u8)) <= 8);
        }
        let sum: usize = (0..20).map(|c| t.client_len(ip(c))).sum();
        assert_eq!(sum, t.len());
    }

    #[test]
    fn handles_are_unique_and_carry_the_prefix() {
        let mut t: Table<()> = Table::new(limits(10, 10), *b"prefix!!");
        let (a, _) = t.insert(ip(1), (), 0);
        let (b, _) = t.insert(ip(1), (), 0);
        assert_ne!(a, b);
        assert_eq!(&a[..8], b"prefix!!");
        assert!(matches!(t.get(b"short", 0), Lookup::Unknown));
        assert!(Limits::default().validate().is_ok());
        assert!(limits(2, 3).validate().is_err());
    }
}
