//! Bounded cache of `O_PATH` descriptors of directories, by path, kept
//! valid by inotify(7).
//!
//! Every operation finds its directory by resolving the path from the
//! export root with openat2(2) (local.rs, Confinement). Under a load of
//! OPENs that walk and the close of the descriptor it returns were a fifth
//! of the server's CPU (docs/performance.md, History, 2026-12-07): each
//! OPEN resolves its directory twice, once for PUTFH's attributes and once
//! to create the file. A directory used again is taken from here instead.
//!
//! # Validity
//! A path maps to a descriptor only while inotify vouches that the path
//! still names that directory. Each cached directory carries a watch, and
//! an entry is added only below a cached parent or the root (whose watch
//! is set with the first entry), so every ancestor of a cached directory
//! is watched too. A path stops naming its directory only through a change
//! that one of those watches reports, and the kernel queues the event
//! before the changing call returns:
//! * the directory or an ancestor is renamed, or removed: its parent's
//!   watch reports `IN_MOVED_FROM` or `IN_DELETE` naming it. (The removed
//!   directory's own `IN_DELETE_SELF` would come only once the inode is
//!   freed, which a cached descriptor delays.)
//! * a directory is renamed over it: `IN_MOVED_TO` naming it;
//! * a watch ends (`IN_IGNORED`, e.g. the file system goes away);
//! * the event queue overflows (`IN_Q_OVERFLOW`): every entry is dropped.
//!
//! Dropping an entry drops its descendants. Every lookup first reads the
//! queued events, so a change that completed before an operation began is
//! never hidden from it; an operation racing with a rename sees one side
//! of it, as a fresh openat2 would. A directory resolved while an event
//! that might concern it was read (one naming a directory) is used but not
//! kept ([`Ticket`]).
//!
//! inotify does not report a mount made over a cached directory. A fresh
//! resolution refuses to cross it (`RESOLVE_NO_XDEV`); a cached descriptor
//! still reaches the directory underneath, inside the export's own file
//! system. [`MAX_AGE`] bounds how long: an entry is used until that long
//! after its top-level ancestor was resolved from the root (an entry ages
//! with the parent it was resolved through), then resolved afresh.
//!
//! # Bounds
//! At most [`MAX_DIRS`] descriptors and as many watches, plus the root's
//! watch; the least recently used entry is dropped first, with its
//! descendants. Without an inotify instance or a watch (the kernel's
//! per-user limits), directories are resolved from the root every time.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// Directories whose descriptors are kept at once.
pub const MAX_DIRS: usize = 256;
/// How long an entry is used before its path is resolved afresh, for the
/// mounts inotify does not report (see the module documentation).
pub const MAX_AGE: Duration = Duration::from_secs(1);
/// Bytes read from the event queue at once.
const EVENT_BUF: usize = 16 << 10;

/// What voids a path: a child removed or moved in or out, the directory
/// itself moved or removed, and the watch's end (`IN_IGNORED` is always
/// reported).
fn watch_mask() -> WatchMask {
    WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

/// The result of a lookup.
pub enum Lookup {
    /// The directory's descriptor.
    Hit(Arc<OwnedFd>),
    /// Not cached, but its parent is: resolve the last name from `parent`
    /// (`None`: the root) and hand the result to [`DirFds::insert`].
    Miss {
        parent: Option<Arc<OwnedFd>>,
        ticket: Ticket,
    },
    /// Neither it nor its parent is cached: cache the parent first.
    NoParent,
    /// The cache is off (no inotify instance, or no watch on the root).
    Off,
}

/// What an insertion must still find: no event read since the lookup that
/// might concern the directory being added.
pub struct Ticket {
    generation: u64,
}

struct Entry {
    fd: Arc<OwnedFd>,
    wd: WatchDescriptor,
    at: Instant,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    /// `None` until the first lookup; `Some(None)` once the kernel refused
    /// an instance or the root's watch (the cache then stays off).
    notify: Option<Option<Inotify>>,
    root_wd: Option<i32>,
    /// By path: the names joined with `/`.
    entries: HashMap<Vec<u8>, Entry>,
    /// Watch → path (the root's is the empty path).
    by_wd: HashMap<i32, Vec<u8>>,
    /// Bumped by every event read that may void a path not cached yet.
    generation: u64,
    tick: u64,
}

#[derive(Default)]
pub struct DirFds {
    inner: Mutex<Inner>,
}

/// The path of `name` in the directory at `dir` ("" is the root).
fn child_of(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        p.extend_from_slice(dir);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The parent of a path that is not the root ("" for a top-level name).
fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b"",
    }
}

/// `path` is `dir` or below it.
fn within(path: &[u8], dir: &[u8]) -> bool {
    path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/')
}

impl DirFds {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `path` up (a directory below the root, its names joined with
    /// `/`), after reading the queued events. `root` is the export root's
    /// descriptor, watched on first use.
    pub fn get(&self, root: BorrowedFd<'_>, path: &[u8], now: Instant) -> Lookup {
        let mut g = self.lock();
        let inner = &mut *g;
        if inner.notify.is_none() {
            inner.start(root);
        }
        if inner.root_wd.is_none() {
            return Lookup::Off;
        }
        inner.drain();
        inner.tick += 1;
        let tick = inner.tick;
        let stale = match inner.entries.get_mut(path) {
            Some(e) if now.saturating_duration_since(e.at) < MAX_AGE => {
                e.last_used = tick;
                let fd = Arc::clone(&e.fd);
                // Its ancestors are in use too: the least recently used
                // entry goes first, with everything below it.
                let mut up = path;
                while !up.is_empty() {
                    up = parent_of(up);
                    if let Some(a) = inner.entries.get_mut(up) {
                        a.last_used = tick;
                    }
                }
                return Lookup::Hit(fd);
            }
            Some(_) => true,
            None => false,
        };
        if stale {
            inner.drop_tree(path);
        }
        let parent = parent_of(path);
        let parent = if parent.is_empty() {
            None
        } else {
            match inner.entries.get(parent) {
                Some(e) if now.saturating_duration_since(e.at) < MAX_AGE => Some(Arc::clone(&e.fd)),
                Some(_) => {
                    inner.drop_tree(parent);
                    return Lookup::NoParent;
                }
                None => return Lookup::NoParent,
            }
        };
        Lookup::Miss {
            parent,
            ticket: Ticket {
                generation: inner.generation,
            },
        }
    }

    /// Keeps `fd`, the directory at `path` resolved from the parent a
    /// [`Lookup::Miss`] gave, unless an event read since might concern it,
    /// its parent is no longer cached, or the kernel refuses a watch.
    pub fn insert(&self, path: &[u8], fd: &Arc<OwnedFd>, ticket: Ticket, now: Instant) {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.drain();
        if inner.generation != ticket.generation || inner.entries.contains_key(path) {
            return;
        }
        if inner.entries.len() >= MAX_DIRS {
            inner.evict_lru();
        }
        // An entry ages with its parent: it was resolved through it, so
        // it cannot be fresher (see MAX_AGE).
        let parent = parent_of(path);
        let at = if parent.is_empty() {
            now
        } else {
            match inner.entries.get(parent) {
                Some(p) => p.at.min(now),
                None => return,
            }
        };
        let Some(Some(notify)) = inner.notify.as_ref() else {
            return;
        };
        // inotify watches a path; the descriptor's /proc link names this
        // very directory, whatever was renamed since it was opened.
        let wd = match notify
            .watches()
            .add(format!("/proc/self/fd/{}", fd.as_raw_fd()), watch_mask())
        {
            Ok(wd) => wd,
            Err(e) => {
                tracing::debug!(error = %e, "no inotify watch: this directory is resolved each time");
                return;
            }
        };
        let id = wd.get_watch_descriptor_id();
        if let Some(old) = inner.by_wd.get(&id).cloned() {
            // The same directory under another path: that path is stale
            // (a directory has one name), and the watch is now this one's.
            inner.by_wd.remove(&id);
            if old.is_empty() {
                // The root itself, reached through a path below it: a
                // loop a bind mount could make. Keep the root's watch.
                inner.by_wd.insert(id, old);
                return;
            }
            if let Some(e) = inner.entries.remove(&old) {
                inner.generation += 1;
                drop(e);
            }
            inner.drop_tree(&old);
        }
        inner.tick += 1;
        inner.by_wd.insert(id, path.to_vec());
        inner.entries.insert(
            path.to_vec(),
            Entry {
                fd: Arc::clone(fd),
                wd,
                at,
                last_used: inner.tick,
            },
        );
    }

    /// Directories cached (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether `path` is cached (for tests).
    #[cfg(test)]
    pub fn holds(&self, path: &[u8]) -> bool {
        self.lock().entries.contains_key(path)
    }

    /// Applies an event as if read from the queue (for tests: an overflow
    /// cannot be provoked reliably).
    #[cfg(test)]
    pub fn apply_for_test(&self, mask: EventMask) {
        let mut g = self.lock();
        let wd = g.root_wd.unwrap_or(-1);
        g.apply(wd, mask, None);
    }
}

impl Inner {
    /// Creates the inotify instance and the root's watch.
    fn start(&mut self, root: BorrowedFd<'_>) {
        let notify = match Inotify::init() {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(error = %e, "no inotify instance: directories are resolved from the root each time");
                self.notify = Some(None);
                return;
            }
        };
        match notify
            .watches()
            .add(format!("/proc/self/fd/{}", root.as_raw_fd()), watch_mask())
        {
            Ok(wd) => {
                let id = wd.get_watch_descriptor_id();
                self.root_wd = Some(id);
                self.by_wd.insert(id, Vec::new());
                self.notify = Some(Some(notify));
            }
            Err(e) => {
                tracing::info!(error = %e, "no inotify watch on the export root: directories are resolved from the root each time");
                self.notify = Some(None);
            }
        }
    }

    /// Reads every queued event and drops what each one voids.
    fn drain(&mut self) {
        let mut buf = [0u8; EVENT_BUF];
        loop {
            let Some(Some(notify)) = self.notify.as_mut() else {
                return;
            };
            let mut read = Vec::new();
            match notify.read_events(&mut buf) {
                Ok(events) => {
                    for e in events {
                        use std::os::unix::ffi::OsStrExt;
                        let name = e.name.map(|n| n.as_bytes().to_vec());
                        read.push((e.wd.get_watch_descriptor_id(), e.mask, name));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Events may have been lost: trust nothing cached.
                    tracing::warn!(error = %e, "reading inotify events failed; dropping cached directory descriptors");
                    self.drop_all();
                    return;
                }
            }
            for (wd, mask, name) in read {
                self.apply(wd, mask, name.as_deref());
            }
        }
    }

    /// Applies one event: what it voids is dropped.
    fn apply(&mut self, wd: i32, mask: EventMask, name: Option<&[u8]>) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.drop_all();
            return;
        }
        let Some(path) = self.by_wd.get(&wd).cloned() else {
            return;
        };
        if mask.contains(EventMask::IGNORED) {
            // The kernel ended the watch: the directory is gone.
            self.by_wd.remove(&wd);
            self.generation += 1;
            if path.is_empty() {
                // The root's: without it nothing can be vouched for.
                self.root_wd = None;
                self.drop_all();
            } else {
                self.entries.remove(&path);
                self.drop_tree(&path);
            }
            return;
        }
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
            // The root's descriptor stays valid wherever it moves.
            if !path.is_empty() {
                self.generation += 1;
                self.drop_tree(&path);
            }
            return;
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return;
        };
        let child = child_of(&path, name);
        if mask.contains(EventMask::ISDIR) || self.entries.contains_key(&child) {
            self.generation += 1;
            self.drop_tree(&child);
        }
    }

    /// Drops the entry at `dir` and every entry below it, with their watches.
    fn drop_tree(&mut self, dir: &[u8]) {
        let gone: Vec<Vec<u8>> = self
            .entries
            .keys()
            .filter(|p| within(p, dir))
            .cloned()
            .collect();
        for p in gone {
            if let Some(e) = self.entries.remove(&p) {
                self.forget_watch(e.wd);
            }
        }
    }

    /// Drops every entry (the root's watch stays).
    fn drop_all(&mut self) {
        self.generation += 1;
        for (_, e) in std::mem::take(&mut self.entries) {
            self.forget_watch(e.wd);
        }
    }

    fn forget_watch(&mut self, wd: WatchDescriptor) {
        // Only a watch still registered to a path of ours is removed: one
        // the kernel ended, or one handed over to another entry (the same
        // inode under a new path), is not.
        let id = wd.get_watch_descriptor_id();
        if self.by_wd.get(&id).is_some_and(|p| !p.is_empty()) {
            self.by_wd.remove(&id);
            if let Some(Some(n)) = self.notify.as_ref() {
                // Fails only if the kernel already dropped the watch.
                let _ = n.watches().remove(wd);
            }
        }
    }

    fn evict_lru(&mut self) {
        let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(p, _)| p.clone())
        else {
            return;
        };
        self.drop_tree(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn open_path(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> Arc<OwnedFd> {
        Arc::new(
            crate::sys::openat2(dir, name, libc::O_PATH | libc::O_DIRECTORY, 0).expect("openat2"),
        )
    }

    /// Resolves `path`'s last name from the parent a miss gives, and keeps it.
    fn fill(c: &DirFds, root: BorrowedFd<'_>, path: &[u8], name: &std::ffi::CStr, now: Instant) {
        match c.get(root, path, now) {
            Lookup::Miss { parent, ticket } => {
                let from = parent.as_deref().map_or(root, |p| p.as_fd());
                c.insert(path, &open_path(from, name), ticket, now);
            }
            _ => panic!("expected a miss for {}", String::from_utf8_lossy(path)),
        }
    }

    /// An entry is used for MAX_AGE at most, counted from when its
    /// top-level ancestor was resolved from the root: the bound on how
    /// long a mount made over a cached directory goes unseen.
    #[test]
    fn entries_age_with_the_ancestor_they_were_resolved_through() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let root = open_path(std::fs::File::open(dir.path()).unwrap().as_fd(), c".");
        let c = DirFds::default();
        let t0 = Instant::now();
        assert!(matches!(c.get(root.as_fd(), b"a/b", t0), Lookup::NoParent));
        fill(&c, root.as_fd(), b"a", c"a", t0);
        let half = t0 + MAX_AGE / 2;
        fill(&c, root.as_fd(), b"a/b", c"b", half);
        assert!(matches!(c.get(root.as_fd(), b"a/b", half), Lookup::Hit(_)));
        let late = t0 + MAX_AGE;
        assert!(matches!(
            c.get(root.as_fd(), b"a/b", late),
            Lookup::NoParent
        ));
        assert!(matches!(
            c.get(root.as_fd(), b"a", late),
            Lookup::Miss { .. }
        ));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn paths_and_their_parents() {
        assert_eq!(parent_of(b"a"), b"");
        assert_eq!(parent_of(b"a/b/c"), b"a/b");
        assert_eq!(child_of(b"", b"a"), b"a");
        assert_eq!(child_of(b"a/b", b"c"), b"a/b/c");
        assert!(within(b"a/b", b"a"));
        assert!(within(b"a", b"a"));
        assert!(!within(b"ab", b"a"));
        assert!(!within(b"a", b"a/b"));
    }
}
