//! Bounded cache of directory listings, so that a listing paged over many
//! READDIR calls reads the directory from the kernel once instead of once
//! per call (each `getdents64` after an `lseek` makes ext4 rebuild its
//! hash-order cursor, and a 64 KiB reply returns a few hundred of the
//! thousands of entries read).
//!
//! A listing holds names, cookies (the file system's `d_off`, exactly what
//! an uncached read returns, so cached and uncached replies can be mixed
//! in one listing), inode numbers and types; never attributes, which are
//! read fresh for every reply.
//!
//! # Validity
//! A listing is used only while both of these hold:
//! * the directory's (mtime, ctime, size, nlink) equal those seen before
//!   *and* after the listing was read (a listing read while the directory
//!   changed is not kept). Every entry change updates mtime and ctime; on
//!   Linux ≥ 6.13 ext4, xfs, btrfs and tmpfs give a change that follows a
//!   timestamp query a distinct (fine-grained) timestamp, so a change in
//!   the same clock tick as the read is still seen;
//! * no namespace change made through this store touched a directory
//!   with the same path since the read began ([`Epochs`]): the server's
//!   own changes invalidate at once, whatever the timestamp granularity.
//!
//! # Bounds
//! At most [`MAX_DIRS`] listings and [`MAX_TOTAL_BYTES`] in all; a
//! directory whose listing would exceed [`MAX_LISTING_BYTES`] is not
//! cached (it is read page by page as before). Least recently used
//! listings are evicted first.
//!
//! A directory is read whole by one request at a time, and at most
//! [`MAX_FILLS`] directories at once: a request that finds the listing
//! missing while another request reads it (the usual case when a client
//! starts an `ls -l` with many READDIRs in flight, or right after the
//! directory changed) reads its own page from the cookie instead. Without
//! this, every request in flight built its own copy of the listing: 64
//! slots listing a directory of 100,000 entries each read up to
//! [`MAX_LISTING_BYTES`] of it, a few hundred MiB of RSS at once.
//!
//! A directory found too large is remembered ([`MAX_TOO_LARGE`] of them,
//! with the size it showed), and not read whole again while its size is
//! at least that: otherwise every READDIR page of a directory of a
//! million entries would first read [`MAX_LISTING_BYTES`] worth of it
//! only to give up (measured: ~26 `getdents64` per page, ~7,000 entries
//! listed per second). Directory sizes grow with their entries on ext4,
//! xfs, btrfs and tmpfs, so one that shrinks below the size remembered is
//! tried again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nfs4d_store::{FileKind, Identity, Timespec};

/// Listings kept at once.
pub const MAX_DIRS: usize = 32;
/// Largest listing kept (names plus per-entry overhead): a directory of
/// 100,000 entries with names of up to about 30 bytes fits. One that
/// does not is read page by page from the cookie, each READDIR making
/// the file system seek to the cookie and read on (measured on ext4:
/// 6-8 us of server CPU per entry listed against 4.5 from the cache).
pub const MAX_LISTING_BYTES: usize = 8 << 20;
/// All listings together.
pub const MAX_TOTAL_BYTES: usize = 32 << 20;
/// Directories remembered as too large to cache.
pub const MAX_TOO_LARGE: usize = 64;
/// Listings being read whole at once (each up to [`MAX_LISTING_BYTES`]).
pub const MAX_FILLS: usize = 4;
const _: () = assert!(MAX_FILLS * MAX_LISTING_BYTES <= MAX_TOTAL_BYTES);
/// Bookkeeping bytes per entry counted against the bounds (the entry
/// record and its cookie index slot).
const ENTRY_OVERHEAD: usize = 48;
/// Buckets of namespace-change counters (by hash of the directory path).
const EPOCH_BUCKETS: usize = 256;

/// What must not have changed for a listing to be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub size: u64,
    pub nlink: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct Ent {
    name_at: u32,
    name_len: u32,
    pub cookie: u64,
    pub ino: u64,
    pub kind: FileKind,
}

/// A whole directory's entries in `getdents64` order.
#[derive(Debug)]
pub struct Listing {
    names: Vec<u8>,
    ents: Vec<Ent>,
    by_cookie: HashMap<u64, u32>,
    stamp: DirStamp,
    path_hash: u64,
    epoch: u64,
}

impl Listing {
    pub fn entry(&self, i: usize) -> Option<(&[u8], &Ent)> {
        let e = self.ents.get(i)?;
        let at = e.name_at as usize;
        Some((&self.names[at..at + e.name_len as usize], e))
    }

    /// Index of the first entry after `cookie` (0 = start); `None` for a
    /// cookie this listing did not hand out.
    pub fn position(&self, cookie: u64) -> Option<usize> {
        match cookie {
            0 => Some(0),
            c => self.by_cookie.get(&c).map(|&i| i as usize + 1),
        }
    }

    fn bytes(&self) -> usize {
        self.names.len() + self.ents.len() * ENTRY_OVERHEAD
    }
}

/// Collects a listing while the directory is read.
pub struct Builder {
    l: Listing,
}

impl Builder {
    pub fn new(stamp: DirStamp, path_hash: u64, epoch: u64) -> Builder {
        Builder {
            l: Listing {
                names: Vec::new(),
                ents: Vec::new(),
                by_cookie: HashMap::new(),
                stamp,
                path_hash,
                epoch,
            },
        }
    }

    /// Adds an entry; `false` once the listing is too large to cache.
    pub fn push(&mut self, name: &[u8], cookie: u64, ino: u64, kind: FileKind) -> bool {
        if self.l.bytes() + name.len() + ENTRY_OVERHEAD > MAX_LISTING_BYTES {
            return false;
        }
        let Ok(name_at) = u32::try_from(self.l.names.len()) else {
            return false;
        };
        self.l.names.extend_from_slice(name);
        self.l.by_cookie.insert(cookie, self.l.ents.len() as u32);
        self.l.ents.push(Ent {
            name_at,
            name_len: name.len() as u32,
            cookie,
            ino,
            kind,
        });
        true
    }

    pub fn finish(self) -> Listing {
        self.l
    }
}

/// Namespace-change counters by directory path hash.
pub struct Epochs {
    buckets: Vec<AtomicU64>,
}

impl Default for Epochs {
    fn default() -> Self {
        Epochs {
            buckets: (0..EPOCH_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Epochs {
    pub fn get(&self, path_hash: u64) -> u64 {
        self.buckets[(path_hash % EPOCH_BUCKETS as u64) as usize].load(Ordering::Acquire)
    }

    /// Called after every namespace change in the directory with this path.
    pub fn bump(&self, path_hash: u64) {
        self.buckets[(path_hash % EPOCH_BUCKETS as u64) as usize].fetch_add(1, Ordering::AcqRel);
    }
}

/// FNV-1a of a directory path's bytes (only spreads paths over buckets).
pub fn path_hash(path: &[u8]) -> u64 {
    path.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Slot {
    dir: Identity,
    listing: Arc<Listing>,
    used: u64,
}

#[derive(Default)]
struct Inner {
    slots: Vec<Slot>,
    bytes: usize,
    tick: u64,
    /// Directories too large to cache, with the size they showed then
    /// and when that was learnt (for eviction).
    too_large: Vec<(Identity, u64, u64)>,
    /// Directories being read whole now (at most [`MAX_FILLS`]).
    filling: Vec<Identity>,
}

/// The cache; see the module documentation.
#[derive(Default)]
pub struct DirCache {
    inner: Mutex<Inner>,
    pub epochs: Epochs,
}

impl DirCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The listing of `dir` if it is still valid for a directory now
    /// showing `stamp`, reached by a path hashing to `path_hash`.
    pub fn get(&self, dir: Identity, stamp: &DirStamp, path_hash: u64) -> Option<Arc<Listing>> {
        let epoch = self.epochs.get(path_hash);
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        let i = g.slots.iter().position(|s| s.dir == dir)?;
        let l = &g.slots[i].listing;
        if l.stamp == *stamp && l.path_hash == path_hash && l.epoch == epoch {
            g.slots[i].used = tick;
            return Some(Arc::clone(&g.slots[i].listing));
        }
        let old = g.slots.swap_remove(i);
        g.bytes -= old.listing.bytes();
        None
    }

    /// The right to read `dir` whole into a listing, unless another
    /// request is reading it or [`MAX_FILLS`] directories are being read;
    /// the caller then reads its page from the cookie. Held until dropped.
    pub fn begin_fill(&self, dir: Identity) -> Option<Filling<'_>> {
        let mut g = self.lock();
        if g.filling.len() >= MAX_FILLS || g.filling.contains(&dir) {
            return None;
        }
        g.filling.push(dir);
        Some(Filling { cache: self, dir })
    }

    /// Whether `dir`, now of `size` bytes, was found too large to cache
    /// at a size no larger.
    pub fn known_too_large(&self, dir: Identity, size: u64) -> bool {
        let g = self.lock();
        g.too_large.iter().any(|&(d, at, _)| d == dir && size >= at)
    }

    /// Remembers that `dir`, of `size` bytes, is too large to cache.
    pub fn too_large(&self, dir: Identity, size: u64) {
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        g.too_large.retain(|&(d, _, _)| d != dir);
        if g.too_large.len() >= MAX_TOO_LARGE {
            if let Some(oldest) = (0..g.too_large.len()).min_by_key(|&i| g.too_large[i].2) {
                g.too_large.swap_remove(oldest);
            }
        }
        g.too_large.push((dir, size, tick));
    }

    /// Keeps a listing read while the directory showed `after` (the
    /// listing's own stamp is what it showed before the read).
    pub fn put(&self, dir: Identity, listing: Listing, after: &DirStamp) -> Arc<Listing> {
        let listing = Arc::new(listing);
        if listing.stamp != *after
            || listing.epoch != self.epochs.get(listing.path_hash)
            || listing.bytes() > MAX_LISTING_BYTES
        {
            return listing; // changed while being read: use once, keep not
        }
        let mut g = self.lock();
        if let Some(i) = g.slots.iter().position(|s| s.dir == dir) {
            let old = g.slots.swap_remove(i);
            g.bytes -= old.listing.bytes();
        }
        while !g.slots.is_empty()
            && (g.slots.len() >= MAX_DIRS || g.bytes + listing.bytes() > MAX_TOTAL_BYTES)
        {
            let lru = g
                .slots
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let old = g.slots.swap_remove(lru);
            g.bytes -= old.listing.bytes();
        }
        g.tick += 1;
        let used = g.tick;
        g.bytes += listing.bytes();
        g.slots.push(Slot {
            dir,
            listing: Arc::clone(&listing),
            used,
        });
        listing
    }
}

/// A directory being read whole (see [`DirCache::begin_fill`]).
pub struct Filling<'a> {
    cache: &'a DirCache,
    dir: Identity,
}

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        let mut g = self.cache.lock();
        if let Some(i) = g.filling.iter().position(|d| *d == self.dir) {
            g.filling.swap_remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: i64) -> DirStamp {
        let t = Timespec { sec: n, nsec: 0 };
        DirStamp {
            mtime: t,
            ctime: t,
            size: 4096,
            nlink: 2,
        }
    }

    fn id(ino: u64) -> Identity {
        Identity {
            space: 1,
            object: ino,
            incarnation: 1,
        }
    }

    fn listing(c: &DirCache, n: usize, st: DirStamp, ph: u64) -> Listing {
        let mut b = Builder::new(st, ph, c.epochs.get(ph));
        for i in 0..n {
            assert!(b.push(
                format!("f{i}").as_bytes(),
                100 + i as u64,
                i as u64,
                FileKind::Regular
            ));
        }
        b.finish()
    }

    #[test]
    fn positions_follow_cookies() {
        let c = DirCache::default();
        let l = listing(&c, 3, stamp(1), 7);
        assert_eq!(l.position(0), Some(0));
        assert_eq!(l.position(100), Some(1));
        assert_eq!(l.position(102), Some(3));
        assert_eq!(l.position(55), None);
        assert_eq!(
            l.entry(1).map(|(n, e)| (n.to_vec(), e.cookie)),
            Some((b"f1".to_vec(), 101))
        );
    }

    #[test]
    fn valid_only_while_unchanged() {
        let c = DirCache::default();
        c.put(id(1), listing(&c, 3, stamp(1), 7), &stamp(1));
        assert!(c.get(id(1), &stamp(1), 7).is_some());
        assert!(c.get(id(1), &stamp(2), 7).is_none(), "timestamps moved");
        c.put(id(1), listing(&c, 3, stamp(1), 7), &stamp(1));
        c.epochs.bump(7);
        assert!(
            c.get(id(1), &stamp(1), 7).is_none(),
            "changed through the server"
        );
        c.put(id(1), listing(&c, 3, stamp(1), 7), &stamp(1));
        assert!(
            c.get(id(1), &stamp(1), 8).is_none(),
            "reached by another path"
        );
        // Changed while being read: not kept.
        c.put(id(2), listing(&c, 3, stamp(1), 9), &stamp(2));
        assert!(c.get(id(2), &stamp(1), 9).is_none());
        assert!(c.get(id(2), &stamp(2), 9).is_none());
    }

    #[test]
    fn too_large_directories_are_remembered_while_they_do_not_shrink() {
        let c = DirCache::default();
        assert!(!c.known_too_large(id(1), 1 << 20));
        c.too_large(id(1), 1 << 20);
        assert!(c.known_too_large(id(1), 1 << 20));
        assert!(c.known_too_large(id(1), 2 << 20), "grown further");
        assert!(
            !c.known_too_large(id(1), (1 << 20) - 4096),
            "shrunk: try again"
        );
        assert!(!c.known_too_large(id(2), 4 << 20), "another directory");
        // Bounded: the oldest marks go first.
        for i in 0..(MAX_TOO_LARGE as u64 + 10) {
            c.too_large(id(100 + i), 1);
        }
        assert_eq!(c.lock().too_large.len(), MAX_TOO_LARGE);
        assert!(!c.known_too_large(id(1), 1 << 20));
        assert!(c.known_too_large(id(100 + MAX_TOO_LARGE as u64 + 9), 1));
    }

    #[test]
    fn one_whole_read_per_directory_and_few_at_once() {
        let c = DirCache::default();
        let first = c.begin_fill(id(1)).expect("nobody reads it");
        assert!(c.begin_fill(id(1)).is_none(), "already being read");
        let others: Vec<_> = (2..=MAX_FILLS as u64)
            .map(|d| c.begin_fill(id(d)).expect("under the bound"))
            .collect();
        assert!(
            c.begin_fill(id(100)).is_none(),
            "MAX_FILLS reads in progress"
        );
        drop(first);
        assert!(c.begin_fill(id(100)).is_some(), "a read ended");
        drop(others);
        let again = c.begin_fill(id(1));
        assert!(again.is_some(), "the first read ended");
        drop(again);
        assert!(c.lock().filling.is_empty());
    }

    #[test]
    fn bounded() {
        let c = DirCache::default();
        for d in 0..(MAX_DIRS as u64 + 10) {
            c.put(id(d), listing(&c, 10, stamp(1), d), &stamp(1));
        }
        let g = c.lock();
        assert_eq!(g.slots.len(), MAX_DIRS);
        assert!(g.bytes <= MAX_TOTAL_BYTES);
        drop(g);
        assert!(c.get(id(0), &stamp(1), 0).is_none(), "oldest evicted");
        let mut b = Builder::new(stamp(1), 1, 0);
        let big = vec![b'x'; 255];
        let mut n = 0;
        while b.push(&big, n + 3, n, FileKind::Regular) {
            n += 1;
        }
        assert!(b.finish().bytes() <= MAX_LISTING_BYTES);
    }
}
