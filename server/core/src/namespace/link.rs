//! Hard links (LINK; RFC 8881 §18.9): `link(2)` of an object of an export
//! under another name in the same export.
//!
//! A store without hard links answers NFS4ERR_NOTSUPP (RFC 8881 §18.9.4
//! lists it; `link_support` is FALSE for such an export). Directories
//! cannot be hard-linked (NFS4ERR_ISDIR). As `link(2)`: write + search
//! permission on the target directory, and Linux's protected hard links.
//! The map records the new name as another link of the same object id, so
//! both names share one filehandle (RFC 8881 §4.2.1 recommends it).

use nfs4d_store::FileKind;

use super::vfs::Export;
use super::{dir_done, perm, Caller, DirChange, Entry, Namespace, ObjRef};
use crate::error::{NfsError, NfsResult};

/// What a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The target directory's change attribute around the link.
    pub dir: DirChange,
    /// Handle-map write that must be durable before the reply.
    pub durable: u64,
}

impl Namespace<'_> {
    /// Links `src` as `at`, both in export `e`.
    pub fn link(&self, c: &Caller, e: &Export, src: ObjRef, at: Entry) -> NfsResult<Linked> {
        if !e.caps.hard_links {
            return Err(NfsError::NotSupp);
        }
        // ROFS, NOTDIR, write + search permission on the target directory.
        let before = perm::dir_modifiable(c, e, at.dir)?;
        let a = e.store().stat(src.path)?;
        if a.kind == FileKind::Directory {
            return Err(NfsError::IsDir);
        }
        perm::protected_hardlink(&c.user, &a)?;
        self.break_delegations_of(c, (e.id, src.id))?;
        let attrs = e.store().link(src.path, at.dir, at.name)?;
        let after = dir_done(self, e, at.dir_id, at.dir, false)?;
        // Record the new name (same id as the source: same dev/ino/gen).
        let (_, seq) = self
            .vfs
            .child_fh(e.id, at.dir_id, at.dir, at.name, &attrs)?;
        Ok(Linked {
            dir: DirChange::between(&before, &after),
            durable: seq,
        })
    }
}
