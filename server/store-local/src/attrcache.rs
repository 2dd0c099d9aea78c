//! Bounded cache of the attributes READDIR returns for the entries of
//! recently listed directories, validated by inotify(7).
//!
//! Without it every entry of every READDIR with attributes costs one
//! `statx`, the bulk of the server's CPU while a client runs `ls -l`
//! (measured: 62 % of the samples of a listing of 10,000 files).
//!
//! # Validity
//! A directory's attributes are cached only while an inotify watch on it
//! is held. The kernel queues an event on that watch, before the changing
//! call returns, for every change of a child's data or metadata made
//! through a name in it (write, truncate, chmod, chown, utimes, xattrs,
//! fallocate, a read that may move atime) and for every name created,
//! removed or moved; changes made through this server are seen exactly
//! like those of local processes. Every listing first drains the queue
//! ([`AttrCache::begin`]) and drops the attributes of each name an event
//! names, so a change that completed before a READDIR began is never
//! hidden from it.
//!
//! inotify does not see everything, so only what it does see is cached:
//! * regular files and symlinks with one link. A child directory's
//!   attributes change with its own entries, which no event on this
//!   directory reports; a file with several names can change through a
//!   name in another directory.
//! * a link added to a cached file, its change through that new name, a
//!   write through a shared mapping and a change made by another host to
//!   a network file system raise no event here. [`MAX_AGE`] bounds how
//!   long such a change can go unseen by READDIR; GETATTR, LOOKUP and
//!   OPEN never use this cache. A link made through this server clears
//!   the cache at once ([`AttrCache::clear`]).
//! * an overflowing event queue drops every cached attribute.
//!
//! A statx raced by a change is not cached: an attribute read is kept only
//! if no event for its directory was drained since the listing began.
//!
//! # Bounds
//! At most [`MAX_DIRS`] watched directories and [`MAX_ENTRIES`] cached
//! attributes in all; the least recently listed directory is dropped
//! first, with its watch. The inotify instance is created on the first
//! listing with attributes; if the kernel refuses it or a watch (its
//! per-user limits), listings read attributes with statx as before.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nfs4d_store::{Attrs, FileKind, Identity};

/// Directories watched at once.
pub const MAX_DIRS: usize = 64;
/// Attributes cached in all: a directory of 100,000 entries fits. About
/// 250 bytes each with the name and the table's spare room, some 32 MiB
/// when full, more for a moment while a table grows (measured: the peak
/// RSS of a listing of 100,000 files rose by 32-50 MiB).
pub const MAX_ENTRIES: usize = 131_072;
/// How long a cached attribute is used at most, for the changes inotify
/// does not report (see the module documentation). Shorter than the
/// Linux client's own shortest attribute cache time (`acregmin`, 3 s).
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Bytes read from the event queue at once.
const EVENT_BUF: usize = 16 << 10;

/// Changes of a child, or of the directory's names, that void a cached
/// attribute; plus the watch's own end (`IN_IGNORED` is always reported).
fn watch_mask() -> WatchMask {
    WatchMask::ACCESS
        | WatchMask::ATTRIB
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

struct Cached {
    attrs: Attrs,
    at: Instant,
}

struct DirAttrs {
    wd: WatchDescriptor,
    entries: HashMap<Box<[u8]>, Cached>,
    /// Bumped whenever an event for this directory is drained.
    generation: u64,
    last_used: u64,
}

/// The watched directories and their attributes, apart from the inotify
/// instance so that events read from it can be applied as they are read.
#[derive(Default)]
struct Table {
    dirs: HashMap<Identity, DirAttrs>,
    by_wd: HashMap<i32, Identity>,
    entries: usize,
}

#[derive(Default)]
struct Inner {
    /// `None` until the first listing; `Some(None)` once the kernel
    /// refused an instance (the cache then stays off).
    notify: Option<Option<Inotify>>,
    table: Table,
    tick: u64,
}

/// A listing's use of the cache: the directory and the generation its
/// statx results must still match to be kept.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    dir: Identity,
    generation: u64,
}

#[derive(Default)]
pub struct AttrCache {
    inner: Mutex<Inner>,
}

/// Whether inotify reports every change of an object with these
/// attributes to the watch on the directory it was listed in.
fn cacheable(a: &Attrs) -> bool {
    matches!(a.kind, FileKind::Regular | FileKind::Symlink) && a.nlink == 1
}

impl AttrCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a listing of the directory `dir` open at `fd`: applies the
    /// queued events, then makes sure the directory is watched. `None`
    /// when the cache is off (the kernel refused the instance or watch).
    pub fn begin(&self, dir: Identity, fd: BorrowedFd<'_>) -> Option<Session> {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.notify.is_none() {
            inner.notify = Some(match Inotify::init() {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::info!(error = %e, "no inotify instance: READDIR attributes are not cached");
                    None
                }
            });
        }
        inner.drain();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(d) = inner.table.dirs.get_mut(&dir) {
            d.last_used = tick;
            return Some(Session {
                dir,
                generation: d.generation,
            });
        }
        if inner.table.dirs.len() >= MAX_DIRS {
            inner.evict_lru();
        }
        let notify = inner.notify.as_ref()?.as_ref()?;
        // inotify watches a path; the fd's /proc link names this very
        // directory whatever has been renamed since it was opened.
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let wd = match notify.watches().add(&path, watch_mask()) {
            Ok(wd) => wd,
            Err(e) => {
                tracing::debug!(error = %e, "no inotify watch: this listing's attributes are not cached");
                return None;
            }
        };
        let id = wd.get_watch_descriptor_id();
        // A directory reached again under another identity (a new
        // incarnation at the same inode) shares the kernel's watch.
        let t = &mut inner.table;
        if let Some(old) = t.by_wd.insert(id, dir) {
            if let Some(d) = t.dirs.remove(&old) {
                t.entries -= d.entries.len();
            }
        }
        t.dirs.insert(
            dir,
            DirAttrs {
                wd,
                entries: HashMap::new(),
                generation: 0,
                last_used: tick,
            },
        );
        Some(Session { dir, generation: 0 })
    }

    /// The cached attributes of `name` in the session's directory if they
    /// are still for the inode `ino` the listing shows and younger than
    /// [`MAX_AGE`] at `now`.
    pub fn get(&self, s: &Session, name: &[u8], ino: u64, now: Instant) -> Option<Attrs> {
        let g = self.lock();
        let c = g.table.dirs.get(&s.dir)?.entries.get(name)?;
        (c.attrs.identity.object == ino && now.saturating_duration_since(c.at) < MAX_AGE)
            .then(|| c.attrs.clone())
    }

    /// Keeps `attrs` of `name`, read by statx at `at` during the session,
    /// unless an event for the directory was drained since it began (the
    /// statx may have raced a change) or the attributes are not ones
    /// inotify fully reports.
    pub fn put(&self, s: &Session, name: &[u8], attrs: &Attrs, at: Instant) {
        if !cacheable(attrs) {
            return;
        }
        let mut g = self.lock();
        let t = &mut g.table;
        let Some(d) = t.dirs.get_mut(&s.dir) else {
            return;
        };
        if d.generation != s.generation {
            return;
        }
        let c = Cached {
            attrs: attrs.clone(),
            at,
        };
        match d.entries.get_mut(name) {
            Some(old) => *old = c,
            None if t.entries < MAX_ENTRIES => {
                d.entries.insert(name.into(), c);
                t.entries += 1;
            }
            None => {}
        }
    }

    /// Drops every cached attribute (the watches stay).
    pub fn clear(&self) {
        self.lock().table.forget_all();
    }

    /// Cached attributes in all (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().table.entries
    }

    /// Directories watched (for tests).
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.lock().table.dirs.len()
    }
}

impl Inner {
    /// Reads every queued event and drops what each one voids.
    fn drain(&mut self) {
        let Inner {
            notify: Some(Some(notify)),
            table,
            ..
        } = self
        else {
            return;
        };
        let mut buf = [0u8; EVENT_BUF];
        loop {
            match notify.read_events(&mut buf) {
                Ok(events) => {
                    for e in events {
                        use std::os::unix::ffi::OsStrExt;
                        let name = e.name.map(|n| n.as_bytes());
                        table.apply(e.wd.get_watch_descriptor_id(), e.mask, name);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Nothing read can be trusted to be complete: forget all.
                    tracing::warn!(error = %e, "reading inotify events failed; dropping cached READDIR attributes");
                    table.forget_all();
                    break;
                }
            }
        }
    }

    fn evict_lru(&mut self) {
        let t = &mut self.table;
        let Some((&id, _)) = t.dirs.iter().min_by_key(|(_, d)| d.last_used) else {
            return;
        };
        let Some(d) = t.dirs.remove(&id) else {
            return;
        };
        t.entries -= d.entries.len();
        t.by_wd.remove(&d.wd.get_watch_descriptor_id());
        if let Some(Some(n)) = self.notify.as_ref() {
            // Fails only if the kernel already dropped the watch.
            let _ = n.watches().remove(d.wd);
        }
    }
}

impl Table {
    /// Drops every cached attribute (the watches stay) and voids the
    /// statx results of the listings under way.
    fn forget_all(&mut self) {
        for d in self.dirs.values_mut() {
            d.entries = HashMap::new();
            d.generation += 1;
        }
        self.entries = 0;
    }

    /// Applies one event: what it voids is dropped.
    fn apply(&mut self, wd: i32, mask: EventMask, name: Option<&[u8]>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.forget_all();
            return;
        }
        let Some(&id) = self.by_wd.get(&wd) else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            // The directory is gone or no longer watched.
            self.by_wd.remove(&wd);
            if let Some(d) = self.dirs.remove(&id) {
                self.entries -= d.entries.len();
            }
            return;
        }
        let Some(d) = self.dirs.get_mut(&id) else {
            return;
        };
        match name {
            Some(n) if !n.is_empty() => {
                d.generation += 1;
                if d.entries.remove(n).is_some() {
                    self.entries -= 1;
                }
            }
            // Events of the directory itself (a read of its entries, its
            // own attributes) do not touch its children's attributes.
            _ => {}
        }
    }
}
