//! Linux file leases standing for delegations (fcntl(2) "Leases").
//!
//! While a client holds a delegation on a file, the local backend holds a
//! lease on the backing file: a read lease for read delegations, a write
//! lease for write delegations. A local process that opens the file in a
//! conflicting way (for writing under a read lease; at all under a write
//! lease) or truncates it is held back by the kernel, and the server gets
//! SIGIO; the server recalls the delegation and releases the lease once
//! the client has returned it, and only then does the local open go on, so
//! the local process sees the client's data (the SMB oplock break).
//!
//! A lease only holds while no other descriptor of the file conflicts
//! with it — including the server's own. So the descriptor carrying the
//! lease is the one the backend does I/O through for that file ([`get`]),
//! and the file's entry in the descriptor cache is dropped before the
//! lease is taken.
//!
//! [`get`]: LeaseTable::get

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use super::sys;
use super::ObjIdentity;

/// Leases held at once per export. Past it no delegation is granted: one
/// without a lease would hide local changes from its holder.
pub const MAX_LEASES: usize = 8192;

struct Lease {
    id: ObjIdentity,
    file: Arc<File>,
    write: bool,
    /// Its description also carries a lock owner's byte-range locks.
    lent: bool,
}

/// The leases of one backend, by tag.
#[derive(Default)]
pub struct LeaseTable {
    inner: Mutex<HashMap<u64, Lease>>,
}

impl LeaseTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Lease>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a lease named `tag` is held.
    pub fn holds(&self, tag: u64) -> bool {
        self.lock().contains_key(&tag)
    }

    /// Room for another lease.
    pub fn has_room(&self) -> bool {
        self.lock().len() < MAX_LEASES
    }

    /// The leased descriptor of `id` and whether it is open for writing.
    pub fn get(&self, id: ObjIdentity) -> Option<(Arc<File>, bool)> {
        self.lock()
            .values()
            .find(|l| l.id == id)
            .map(|l| (Arc::clone(&l.file), l.write))
    }

    /// Takes a lease on `file` (already open: read-only for a read lease)
    /// and records it. Ok(false) when a conflicting descriptor exists.
    pub fn take(
        &self,
        tag: u64,
        id: ObjIdentity,
        file: File,
        write: bool,
    ) -> std::io::Result<bool> {
        let kind = if write { libc::F_WRLCK } else { libc::F_RDLCK };
        match sys::set_lease(&file, kind) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EBUSY)) => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        }
        let old = self.lock().insert(
            tag,
            Lease {
                id,
                file: Arc::new(file),
                write,
                lent: false,
            },
        );
        if let Some(old) = old {
            release(&old);
        }
        Ok(true)
    }

    /// Releases the lease named `tag`.
    pub fn release(&self, tag: u64) {
        let gone = self.lock().remove(&tag);
        if let Some(l) = gone {
            release(&l);
        }
    }

    /// Releases the lease on `id` (the server itself is about to open the
    /// file for writing under a read lease). Returns its tag.
    pub fn release_id(&self, id: ObjIdentity) -> Option<u64> {
        let mut g = self.lock();
        let tag = g.iter().find(|(_, l)| l.id == id).map(|(t, _)| *t)?;
        let l = g.remove(&tag)?;
        drop(g);
        release(&l);
        Some(tag)
    }

    /// A descriptor of the write-leased description of `id`, for the first
    /// lock owner's byte-range locks: opening another description would
    /// break the lease, and releasing the lease first would let a waiting
    /// local opener in before the lock is set. The lease stays until the
    /// delegation is returned; the locks stay with the description after.
    pub fn lend_for_locks(&self, id: ObjIdentity) -> Option<std::io::Result<File>> {
        let mut g = self.lock();
        let l = g.values_mut().find(|l| l.id == id && l.write && !l.lent)?;
        l.lent = true;
        Some(l.file.try_clone())
    }

    /// Tags held and whether each is being broken: during a break,
    /// F_GETLEASE reports the type the lease must go down to.
    pub fn list(&self) -> Vec<(u64, bool)> {
        self.lock()
            .iter()
            .map(|(tag, l)| {
                let held = if l.write {
                    libc::F_WRLCK
                } else {
                    libc::F_RDLCK
                };
                let now = sys::get_lease(&l.file).unwrap_or(libc::F_UNLCK);
                (*tag, now != held)
            })
            .collect()
    }
}

fn release(l: &Lease) {
    if let Err(e) = sys::set_lease(&l.file, libc::F_UNLCK) {
        tracing::debug!(error = %e, "releasing a file lease");
    }
}
