//! Volatile filehandles and namespace changes (RFC 8881 §4.2.3,
//! docs/filehandles.md): refusing a change that would expire an open
//! file's handle, and expiring the handles a rename makes out of date.

use nfs4d_fhmap::ObjectId;

use super::vfs::Export;
use super::{Entry, Namespace};
use crate::error::{NfsError, NfsResult};
use crate::state::StateKind;

impl Namespace<'_> {
    /// Refuses (NFS4ERR_FILE_OPEN) a RENAME or REMOVE that would make the
    /// handle of an open file expire: object `id` of export `e` is open, or
    /// is a directory with an open file below it. Only for volatile exports
    /// whose handles may expire while open (`noexpire_with_open = false`):
    /// RFC 7530 and 8881 §4.2.3 say such servers "should deny a RENAME or
    /// REMOVE that would affect an OPEN file of any of the components
    /// leading to the OPEN file", and NFS4ERR_FILE_OPEN (§13.1.4.5 /
    /// §15.1.4.5) is the status for "a file system object involved in the
    /// operation is currently open", listed for RENAME and REMOVE. With
    /// `noexpire_with_open` the handle of an open file outlives the rename
    /// instead, so nothing is refused. `what` names the change in the log.
    pub(super) fn refuse_if_open(&self, e: &Export, id: ObjectId, what: &str) -> NfsResult<()> {
        let p = e.policy();
        if !p.is_volatile() || p.noexpire_with_open {
            return Ok(());
        }
        let open: Vec<ObjectId> = {
            let g = self.state.lock();
            let mut v: Vec<_> = g
                .states
                .values()
                .filter(|s| s.file.0 == e.id && matches!(s.kind, StateKind::Open(_)))
                .map(|s| s.file.1)
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if self.vfs.open_at_or_below(id, &open)? {
            tracing::info!(export = %e.cfg.path, "{what} refused: an open file's volatile handle would expire (NFS4ERR_FILE_OPEN)");
            return Err(NfsError::FileOpen);
        }
        Ok(())
    }

    /// Volatile handles configured to expire on rename: expires the handles
    /// of the object now at `at`, and with them every handle below it (one
    /// record write; see fhmap's ancestor rule). Open files are not
    /// special-cased here: with `noexpire_with_open` the map's validation
    /// exempts a file while it is open, so its handle works until the last
    /// CLOSE and is expired from then on (FH4_NOEXPIRE_WITH_OPEN), with
    /// nothing to do at CLOSE. Best effort: a failure is logged, the rename
    /// stands. Returns the map write to make durable (0: none).
    pub(super) fn expire_renamed(&self, e: &Export, at: Entry) -> u64 {
        if !e.policy().rename {
            return 0;
        }
        let Ok(attrs) = e.store().lookup(at.dir, at.name) else {
            return 0;
        };
        let id = match self.record_id(e, at, &attrs) {
            Ok(id) => id,
            Err(err) => {
                tracing::warn!(error = %err, "RENAME: cannot find the renamed object to expire its handles");
                return 0;
            }
        };
        match self.vfs.fhmap.expire(id) {
            Ok(()) => self.vfs.fhmap.last_seq(),
            Err(err) => {
                tracing::warn!(error = %err, "RENAME: expiring volatile handles failed");
                0
            }
        }
    }
}
