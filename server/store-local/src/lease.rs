//! Linux file leases standing for delegations (fcntl(2) "Leases").
//!
//! While a client holds a delegation on a file, the local store holds a
//! lease on the backing file: a read lease for read delegations, a write
//! lease for write delegations. A local process that opens the file in a
//! conflicting way (for writing under a read lease; at all under a write
//! lease) or truncates it is held back by the kernel, and the server gets
//! SIGIO; the server recalls the delegation and releases the lease once
//! the client has returned it, and only then does the local open go on, so
//! the local process sees the client's data (the SMB oplock break).
//!
//! A lease is broken only by open(2) and truncate(2). A local process
//! that removes, renames, links or chmods the file (or renames another
//! file over it), or renames a directory above it, changes what the holder
//! cached — its attributes, or whether the name it opened still leads to
//! it — without touching the lease. So each leased file is also watched
//! with inotify for attribute changes (link count, mode, owner, times,
//! xattrs) and for being moved, and so is every directory between it and
//! the export root for being moved; such an event recalls the delegation
//! as a lease break does (pynfs 4.0 DELEG16–20). The server's own changes
//! raise the same events: the store brackets them
//! ([`LeaseTable::own_change`]) and events arriving for a watched object
//! inside such a bracket are dropped, so a holder's own SETATTR or RENAME
//! does not recall its delegation.
//!
//! A lease only holds while no other descriptor of the file conflicts
//! with it — including the server's own. So the descriptor carrying the
//! lease is the one the store does I/O through for that file ([`get`]),
//! and the file's entry in the descriptor cache is dropped before the
//! lease is taken.
//!
//! [`get`]: LeaseTable::get

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nfs4d_store::{Identity, LeaseBreak};

use crate::sys;

/// Leases held at once per export. Past it no delegation is granted: one
/// without a lease would hide local changes from its holder.
pub const MAX_LEASES: usize = 8192;

/// The inotify events that mean a local process changed a leased file
/// behind the server's back (inotify(7)): IN_ATTRIB covers the link count
/// (unlink, link, being renamed over), mode, owner, times and xattrs;
/// IN_MOVE_SELF a rename of the file; IN_DELETE_SELF its last name and
/// last open going away (never while the lease's descriptor is open, but
/// it costs nothing to ask).
const FILE_EVENTS: u32 = libc::IN_ATTRIB | libc::IN_MOVE_SELF | libc::IN_DELETE_SELF;

/// For the directories above a leased file: being renamed or removed
/// changes the path the holder reaches the file by.
const DIR_EVENTS: u32 = libc::IN_MOVE_SELF | libc::IN_DELETE_SELF;

struct Lease {
    id: Identity,
    file: Arc<File>,
    write: bool,
    /// Its description also carries a lock owner's byte-range locks.
    lent: bool,
    /// inotify watches: the file's first, then its directories'. Leases
    /// of one inode, or below one directory, share a watch.
    wds: Vec<i32>,
    /// A local process changed its names or attributes.
    changed: bool,
}

#[derive(Default)]
struct Table {
    leases: HashMap<u64, Lease>,
    /// The inotify instance, made with the first lease.
    inotify: Option<OwnedFd>,
    /// What each watch is on (the kernel gives one watch per inode).
    watched: HashMap<i32, Identity>,
    /// The server's own changes in progress, per watched object.
    own: HashMap<Identity, u32>,
}

impl Table {
    /// Whether `id` is a leased file or a directory above one.
    fn watches(&self, id: Identity) -> bool {
        self.watched.values().any(|w| *w == id)
    }

    /// Reads the queued inotify events and marks the leases they concern.
    /// Events on an object the server itself is changing are its own.
    fn drain(&mut self) {
        let Some(ino) = &self.inotify else {
            return;
        };
        let events = match sys::inotify_drain(ino) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "reading inotify events of leased files");
                return;
            }
        };
        for (wd, mask) in events {
            if mask & libc::IN_Q_OVERFLOW != 0 {
                // Events were lost: any leased file may have changed.
                tracing::warn!("inotify queue overflowed; every delegated file counts as changed");
                for l in self.leases.values_mut() {
                    l.changed = true;
                }
                continue;
            }
            // IN_IGNORED follows a removed watch; its object is of no
            // interest any more.
            let Some(id) = self.watched.get(&wd) else {
                continue;
            };
            if mask & FILE_EVENTS == 0 || self.own.contains_key(id) {
                continue;
            }
            for l in self.leases.values_mut() {
                if l.wds.contains(&wd) && !l.changed {
                    tracing::debug!(wd, mask, "leased file changed outside the server");
                    l.changed = true;
                }
            }
        }
    }

    /// Watches `what` for `mask`, making the inotify instance first if
    /// there is none yet.
    fn watch(&mut self, what: BorrowedFd<'_>, id: Identity, mask: u32) -> std::io::Result<i32> {
        let ino = match self.inotify.take() {
            Some(ino) => ino,
            None => sys::inotify_signalled()?,
        };
        let wd = sys::inotify_watch(&ino, what, mask);
        self.inotify = Some(ino);
        let wd = wd?;
        self.watched.insert(wd, id);
        Ok(wd)
    }

    /// Removes those of `wds` no lease uses any more.
    fn unwatch_unused(&mut self, wds: &[i32]) {
        for wd in wds {
            if self.leases.values().any(|l| l.wds.contains(wd)) {
                continue;
            }
            if self.watched.remove(wd).is_none() {
                continue;
            }
            if let Some(ino) = &self.inotify {
                if let Err(e) = sys::inotify_unwatch(ino, *wd) {
                    tracing::debug!(error = %e, "removing an inotify watch of a lease");
                }
            }
        }
    }
}

/// The leases of one store, by tag.
#[derive(Default)]
pub struct LeaseTable {
    inner: Mutex<Table>,
    /// Leases held, readable without the lock: the server's own changes
    /// skip all lease work while it is zero.
    count: AtomicUsize,
}

/// The server changing a leased file ([`LeaseTable::own_change`]); the
/// bracket closes when this is dropped.
pub struct OwnChange<'a> {
    table: &'a LeaseTable,
    id: Identity,
}

impl Drop for OwnChange<'_> {
    fn drop(&mut self) {
        let mut t = self.table.lock();
        // The change's events were queued before its system call returned:
        // drain them while they still count as the server's own.
        t.drain();
        if let Some(n) = t.own.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                t.own.remove(&self.id);
            }
        }
    }
}

impl LeaseTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a lease named `tag` is held.
    pub fn holds(&self, tag: u64) -> bool {
        self.lock().leases.contains_key(&tag)
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// Room for another lease.
    pub fn has_room(&self) -> bool {
        self.count.load(Ordering::Acquire) < MAX_LEASES
    }

    /// The leased descriptor of `id` and whether it is open for writing.
    pub fn get(&self, id: Identity) -> Option<(Arc<File>, bool)> {
        self.lock()
            .leases
            .values()
            .find(|l| l.id == id)
            .map(|l| (Arc::clone(&l.file), l.write))
    }

    /// Marks the server itself changing the names or attributes of `id`
    /// until the guard is dropped, so the inotify events this raises do
    /// not count as a local process's. None when `id` is neither a leased
    /// file nor a directory above one.
    pub fn own_change(&self, id: Identity) -> Option<OwnChange<'_>> {
        if self.is_empty() {
            return None;
        }
        let mut t = self.lock();
        if !t.watches(id) {
            return None;
        }
        *t.own.entry(id).or_insert(0) += 1;
        Some(OwnChange { table: self, id })
    }

    /// Takes a lease on `file` (already open: read-only for a read lease)
    /// and watches its inode and `dirs`, the directories between it and
    /// the export root. Ok(false) when a conflicting descriptor exists.
    pub fn take(
        &self,
        tag: u64,
        id: Identity,
        file: File,
        write: bool,
        dirs: &[(Identity, OwnedFd)],
    ) -> std::io::Result<bool> {
        let kind = if write { libc::F_WRLCK } else { libc::F_RDLCK };
        match sys::set_lease(&file, kind) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
        let mut t = self.lock();
        let mut wds = Vec::with_capacity(dirs.len() + 1);
        let watched = std::iter::once((id, file.as_fd(), FILE_EVENTS))
            .chain(dirs.iter().map(|(d, fd)| (*d, fd.as_fd(), DIR_EVENTS)))
            .try_for_each(|(what, fd, mask)| {
                wds.push(t.watch(fd, what, mask)?);
                Ok::<(), std::io::Error>(())
            });
        if let Err(e) = watched {
            // Unwatched, local renames and chmods would go unseen
            // (e.g. fs.inotify.max_user_watches reached): no lease.
            t.unwatch_unused(&wds);
            drop(t);
            let _ = sys::set_lease(&file, libc::F_UNLCK);
            return Err(e);
        }
        let old = t.leases.insert(
            tag,
            Lease {
                id,
                file: Arc::new(file),
                write,
                lent: false,
                wds,
                changed: false,
            },
        );
        if let Some(old) = &old {
            t.unwatch_unused(&old.wds);
        }
        self.count.store(t.leases.len(), Ordering::Release);
        drop(t);
        if let Some(old) = old {
            release(&old);
        }
        Ok(true)
    }

    fn remove(&self, t: &mut Table, tag: u64) -> Option<Lease> {
        let l = t.leases.remove(&tag)?;
        self.count.store(t.leases.len(), Ordering::Release);
        t.unwatch_unused(&l.wds);
        Some(l)
    }

    /// Releases the lease named `tag`.
    pub fn release(&self, tag: u64) {
        let gone = {
            let mut t = self.lock();
            self.remove(&mut t, tag)
        };
        if let Some(l) = gone {
            release(&l);
        }
    }

    /// Releases the lease on `id` (the server itself is about to open the
    /// file for writing under a read lease). Returns its tag.
    pub fn release_id(&self, id: Identity) -> Option<u64> {
        let mut t = self.lock();
        let tag = t.leases.iter().find(|(_, l)| l.id == id).map(|(t, _)| *t)?;
        let l = self.remove(&mut t, tag)?;
        drop(t);
        release(&l);
        Some(tag)
    }

    /// A descriptor of the write-leased description of `id`, for the first
    /// lock owner's byte-range locks: opening another description would
    /// break the lease, and releasing the lease first would let a waiting
    /// local opener in before the lock is set. The lease stays until the
    /// delegation is returned; the locks stay with the description after.
    pub fn lend_for_locks(&self, id: Identity) -> Option<std::io::Result<File>> {
        let mut t = self.lock();
        let l = t
            .leases
            .values_mut()
            .find(|l| l.id == id && l.write && !l.lent)?;
        l.lent = true;
        Some(l.file.try_clone())
    }

    /// Tags held and what, if anything, is breaking each: during a break
    /// F_GETLEASE reports the type the lease must go down to; a change of
    /// names or attributes comes from the inotify watch.
    pub fn list(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        let mut t = self.lock();
        t.drain();
        t.leases
            .iter()
            .map(|(tag, l)| {
                let held = if l.write {
                    libc::F_WRLCK
                } else {
                    libc::F_RDLCK
                };
                let now = sys::get_lease(&l.file).unwrap_or(libc::F_UNLCK);
                let cause = if now != held {
                    Some(LeaseBreak::Opened)
                } else if l.changed {
                    Some(LeaseBreak::Changed)
                } else {
                    None
                };
                (*tag, cause)
            })
            .collect()
    }
}

fn release(l: &Lease) {
    if let Err(e) = sys::set_lease(&l.file, libc::F_UNLCK) {
        tracing::debug!(error = %e, "releasing a file lease");
    }
}
