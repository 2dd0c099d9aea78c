//! Removing a name (REMOVE; RFC 8881 §18.25).
//!
//! As `unlink(2)`/`rmdir(2)`: write + search permission on the directory
//! and the sticky-bit rule; a directory must be empty (the store answers
//! NFS4ERR_NOTEMPTY). After the store removed the name the handle map
//! forgets that link; if it was the object's last one, the object's
//! handles answer NFS4ERR_STALE from then on. A regular file removed while
//! open is parked until its last close ([`super::orphans`]) — except on a
//! volatile export without `noexpire_with_open`, where removing an open
//! file is refused with NFS4ERR_FILE_OPEN (RFC 7530/8881 §4.2.3: servers
//! whose handles may expire while open "should deny a RENAME or REMOVE
//! that would affect an OPEN file").

use nfs4d_store::{Attrs, FileKind};

use super::journal::Intent;
use super::vfs::Export;
use super::{dir_done, orphans, perm, Caller, DirChange, Entry, Namespace};
use crate::error::{NfsError, NfsResult};

/// What a removal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The directory's change attribute around the removal.
    pub dir: DirChange,
    /// Handle-map write that must be durable before the reply (0: none).
    pub durable: u64,
}

impl Namespace<'_> {
    /// [`Self::remove_in`] reading the directory's attributes itself.
    #[cfg(test)]
    pub fn remove(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        gate: impl FnOnce() -> NfsResult<()>,
    ) -> NfsResult<Removed> {
        let dir = e.store().stat(at.dir)?;
        self.remove_in(c, e, at, dir, gate)
    }

    /// Removes the name `at` of export `e`, a directory or any other
    /// object; `dir` is the directory's attributes as the caller has just
    /// read them (REMOVE right after PUTFH: `ops::common::stat_obj`).
    /// `gate` runs once the directory checks passed and before anything
    /// else is looked at or changed: the protocol's refusals that rank
    /// below the directory's own errors (the grace period).
    pub fn remove_in(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        dir: Attrs,
        gate: impl FnOnce() -> NfsResult<()>,
    ) -> NfsResult<Removed> {
        // ROFS, NOTDIR, write + search permission on the directory.
        let before = perm::dir_modifiable_as(c, dir)?;
        gate()?;
        if orphans::is_hidden(at.dir, at.name.as_bytes()) {
            return Err(NfsError::NoEnt);
        }
        let victim = e.store().lookup(at.dir, at.name)?;
        perm::sticky_allows(&c.user, &before, &victim)?;
        self.break_delegations_at(c, e, at, &victim)?;
        if victim.kind == FileKind::Regular
            && e.policy().is_volatile()
            && !e.policy().noexpire_with_open
        {
            let id = self.record_id(e, at, &victim)?;
            self.refuse_if_open(e, id, "REMOVE")?;
        }
        let parked = match victim.kind {
            FileKind::Directory => None,
            _ => orphans::park_if_open(self, e, at, &victim)?,
        };
        if let Some(seq) = parked {
            // Parking is a rename: not journaled.
            let after = dir_done(self, e, at.dir_id, at.dir, false)?;
            return Ok(Removed {
                dir: DirChange::between(&before, &after),
                durable: self.vfs.durable_for(e, seq),
            });
        }
        match victim.kind {
            FileKind::Directory => e.store().rmdir(at.dir, at.name)?,
            _ => {
                e.store().remove(at.dir, at.name)?;
            }
        }
        let after = dir_done(self, e, at.dir_id, at.dir, true)?;
        // The name is gone from the store; the map follows. This need not be
        // durable before the reply: if the update is lost, PUTFH of an old
        // handle still finds nothing at the recorded path (or another
        // identity) and answers STALE, and LOOKUP replaces the dead link. For
        // the same reason a failure here does not undo a removal that
        // happened; it is only logged.
        if let Err(err) = self.vfs.fhmap.remove(e.id, at.dir_id, at.name.as_bytes()) {
            tracing::warn!(error = %err, dir = %at.dir, name = %at.name, "REMOVE: handle map update failed");
        }
        // On a sync export the removal itself must survive a crash: its
        // intent, written after the map's update, stands for the
        // directory's fsync (journal.rs).
        let durable = self.vfs.journal(
            e,
            &Intent::Removed {
                export: e.id,
                dir: at.dir_id,
                name: at.name.as_bytes().to_vec(),
                key: super::vfs::key_of(&victim),
            },
        )?;
        Ok(Removed {
            dir: DirChange::between(&before, &after),
            durable,
        })
    }
}
