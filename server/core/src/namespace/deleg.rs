//! Delegations recalled before a namespace change: the holder's cached
//! view of the names would go stale (RFC 8881 §10.4.1).

use nfs4d_store::{Attrs, FileKind};

use super::vfs::Export;
use super::{Caller, Entry, Namespace};
use crate::error::NfsResult;
use crate::state::deleg::Access;
use crate::state::FileKey;

impl Namespace<'_> {
    /// Recalls other clients' delegations on the regular file at `at`
    /// (attributes `a`) before REMOVE or RENAME touches that name.
    /// NFS4ERR_DELAY while recalls are out; the caller's own delegations
    /// count unless its client is known ([`Caller::client`]).
    pub(super) fn break_delegations_at(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        a: &Attrs,
    ) -> NfsResult<()> {
        if a.kind != FileKind::Regular || !self.export_has_delegations(e.id) {
            return Ok(());
        }
        let id = self.record_id(e, at, a)?;
        self.break_delegations_of(c, (e.id, id))
    }

    /// [`Self::break_delegations_at`] for a file known by its key (LINK).
    pub(super) fn break_delegations_of(&self, c: &Caller, file: FileKey) -> NfsResult<()> {
        self.state
            .break_delegations(file, c.client, Access::Namespace)
    }

    /// Cheap pre-check: whether any file of export `id` is delegated.
    fn export_has_delegations(&self, id: u32) -> bool {
        self.state.lock().delegs.keys().any(|f| f.0 == id)
    }
}
