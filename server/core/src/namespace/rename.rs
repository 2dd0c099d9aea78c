//! Renaming (RENAME; RFC 8881 §18.26): `rename(2)` of one name of an
//! export to another, atomically replacing a compatible target.
//!
//! As `rename(2)`: write + search permission on both directories, the
//! sticky-bit rule on both entries, and write permission on a directory
//! moved to another parent (its ".." changes). A directory into its own
//! subtree is refused by the store (NFS4ERR_INVAL); a directory the store
//! cannot move ([`nfs4d_store::Capabilities::dir_rename`]) is
//! NFS4ERR_XDEV from the store, and the client copies by itself.
//!
//! The handle map then moves the object's one record, so every handle
//! below a renamed directory keeps working; that must be durable before
//! the reply. With volatile handles that expire on rename, the renamed
//! object's handles — and, through the map's ancestor rule, those of
//! everything below a renamed directory — are expired (RFC 8881 §4.2.3,
//! FH4_VOL_RENAME); an open file's handle keeps working until its last
//! close when the export has `noexpire_with_open`. Without it, a rename
//! that would expire an open file's handle (the file itself, a directory
//! above it, or an open target) is refused with NFS4ERR_FILE_OPEN
//! (§4.2.3: such servers "should deny a RENAME or REMOVE that would
//! affect an OPEN file"). An open file the rename replaces keeps living
//! for its opener ([`super::orphans`]).

use nfs4d_store::{FileKind, StoreError};

use super::vfs::{key_of, Export};
use super::{dir_done, orphans, perm, Caller, DirChange, Entry, Namespace};
use crate::error::{NfsError, NfsResult};

/// What a rename did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// The source directory's change attribute around the rename.
    pub from: DirChange,
    /// The target directory's.
    pub to: DirChange,
    /// Handle-map write that must be durable before the reply (0: none).
    pub durable: u64,
}

impl Namespace<'_> {
    /// Renames `from` to `to`, both in export `e`. `gate` runs once both
    /// directories passed their checks and before anything else is looked
    /// at or changed: the protocol's refusals that rank below the
    /// directories' own errors (the grace period).
    ///
    /// Statuses the RFC chooses where `rename(2)` has its own errno: an
    /// existing target that is a directory while the source is not, or the
    /// other way round, is NFS4ERR_EXIST (RFC 8881 §18.26.3). Two names of
    /// the same object (hard links, or the same name) are left alone and
    /// answer success (§18.26.3). A non-empty target directory is the
    /// store's [`StoreError::NotEmpty`], which the RENAME handler turns
    /// into the RFC's status.
    pub fn rename(
        &self,
        c: &Caller,
        e: &Export,
        from: Entry,
        to: Entry,
        gate: impl FnOnce() -> NfsResult<()>,
    ) -> NfsResult<Renamed> {
        let same_dir = from.dir_id == to.dir_id;
        let src_before = perm::dir_modifiable(c, e, from.dir)?;
        let dst_before = if same_dir {
            src_before.clone()
        } else {
            perm::dir_modifiable(c, e, to.dir)?
        };
        gate()?;

        if orphans::is_hidden(from.dir, from.name.as_bytes())
            || orphans::is_hidden(to.dir, to.name.as_bytes())
        {
            return Err(NfsError::NoEnt);
        }
        let src = e.store().lookup(from.dir, from.name)?;
        perm::sticky_allows(&c.user, &src_before, &src)?;
        self.break_delegations_at(c, e, from, &src)?;
        if src.kind == FileKind::Directory && !same_dir {
            perm::require(&c.user, &src, perm::MAY_WRITE)?;
        }
        let volatile_open_guard = e.policy().is_volatile() && !e.policy().noexpire_with_open;
        if volatile_open_guard {
            let id = self.record_id(e, from, &src)?;
            self.refuse_if_open(e, id, "RENAME")?;
        }
        let mut parked = 0;
        match e.store().lookup(to.dir, to.name) {
            Ok(dst) if key_of(&dst) == key_of(&src) => {
                // The same object under both names: nothing to do.
                return Ok(Renamed {
                    from: DirChange::unchanged(&src_before),
                    to: DirChange::unchanged(&dst_before),
                    durable: 0,
                });
            }
            Ok(dst) => {
                let src_dir = src.kind == FileKind::Directory;
                if src_dir != (dst.kind == FileKind::Directory) {
                    return Err(NfsError::Exist);
                }
                perm::sticky_allows(&c.user, &dst_before, &dst)?;
                self.break_delegations_at(c, e, to, &dst)?;
                if volatile_open_guard {
                    let id = self.record_id(e, to, &dst)?;
                    self.refuse_if_open(e, id, "RENAME over an open file")?;
                }
                // An open file about to be replaced keeps living for its opener.
                if let Some(seq) = orphans::park_if_open(self, e, to, &dst)? {
                    parked = seq;
                }
            }
            Err(StoreError::NotFound) => {}
            Err(err) => return Err(err.into()),
        }

        e.store().rename(from.dir, from.name, to.dir, to.name)?;
        // Renames are not journaled (journal.rs): both directories are
        // fsynced now on a sync export.
        let src_after = dir_done(self, e, from.dir_id, from.dir, false)?;
        let dst_after = if same_dir {
            src_after.clone()
        } else {
            dir_done(self, e, to.dir_id, to.dir, false)?
        };

        // Handles of the moved object (and everything below it) must follow
        // it before the client learns of the rename.
        let fhmap = &self.vfs.fhmap;
        let mut durable = match fhmap.rename(
            e.id,
            from.dir_id,
            from.name.as_bytes(),
            to.dir_id,
            to.name.as_bytes(),
        ) {
            Ok(()) => fhmap.last_seq().max(parked),
            // The rename happened; failing now would mislead the client.
            // Handles of the moved object answer STALE until looked up again.
            Err(err) => {
                tracing::error!(error = %err, from = %from.dir, to = %to.dir, "RENAME: handle map update failed");
                0
            }
        };
        durable = durable.max(self.expire_renamed(e, to));
        let durable = self.vfs.durable_for(e, durable);

        Ok(Renamed {
            from: DirChange::between(&src_before, &src_after),
            to: DirChange::between(&dst_before, &dst_after),
            durable,
        })
    }
}
