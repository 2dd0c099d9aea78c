//! The namespace layer: every change to the names of an export — CREATE,
//! the create of OPEN, REMOVE, RENAME, LINK — is one call here that does
//! the store change and all that must go with it:
//!
//! * the POSIX permission rules a local `mkdir(2)`, `creat(2)`,
//!   `unlink(2)`, `rename(2)` or `link(2)` would apply for the caller
//!   ([`perm`]), as knfsd leaves them to the kernel's VFS;
//! * what the store cannot do answers the RFC's status, from the export's
//!   [`nfs4d_store::Capabilities`], never NFS4ERR_IO;
//! * recalling the delegations the change conflicts with (RFC 8881
//!   §10.4.1);
//! * on volatile exports, refusing a change that would expire an open
//!   file's handle, and expiring the handles a rename makes out of date
//!   (RFC 8881 §4.2.3);
//! * keeping a file removed while open alive until its last close
//!   ([`orphans`]);
//! * the handle map following the change, and durability: the changed
//!   directories are synced before the call returns, and the handle-map
//!   write the reply must wait for is returned as `durable` (0: none).
//!
//! Operation handlers keep the protocol rules: decoding and validating
//! arguments, the pseudo filesystem and cross-export cases, the grace
//! period, RFC-specific statuses, attribute masks and building the result.
//! This layer gets what it needs as plain values — the caller ([`Caller`]),
//! and the exports, handle map, client state and owner names
//! ([`Namespace`]) — and imports nothing of the COMPOUND machinery.
//!
//! [`vfs`] holds the exports, the pseudo filesystem and the resolution of
//! filehandles.

pub mod orphans;
pub mod perm;
pub mod reserved;
pub mod vfs;

mod create;
mod deleg;
mod link;
mod remove;
mod rename;
mod volatile;

#[cfg(test)]
mod tests;

pub use create::{set_time, Created, FileCreate, NewFile, NewObject};
pub use link::Linked;
pub use perm::User;
pub use remove::Removed;
pub use rename::Renamed;

use nfs4d_fhmap::ObjectId;
use nfs4d_store::{Attrs, Name, RelPath};

use crate::error::NfsResult;
use crate::idmap::IdMap;
use crate::state::{ClientId, StateManager};
use vfs::{ftype, key_of, Export, Vfs};

/// What namespace changes work with: the exports and the handle map, the
/// client state (opens, delegations) and owner names.
#[derive(Clone, Copy)]
pub struct Namespace<'a> {
    /// Exports, pseudo filesystem and handle map.
    pub vfs: &'a Vfs,
    /// Client state.
    pub state: &'a StateManager,
    /// Owner and group names of create attributes.
    pub idmap: &'a dyn IdMap,
}

/// Who asks for a change, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    /// The user the request acts as, after the export's squashing.
    pub user: User<'a>,
    /// The client the request comes from when known (a 4.1 session): its
    /// own delegations do not conflict with its changes. A 4.0 COMPOUND
    /// carries no client identity, so with `None` every delegation of the
    /// file conflicts, the caller's own too: its client returns the
    /// delegation and retries.
    pub client: Option<ClientId>,
    /// The request may only read the export (a read-only export, or an
    /// `access = "ro"` rule for the client's address): changes are
    /// NFS4ERR_ROFS.
    pub read_only: bool,
}

/// A name in a directory of an export.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The directory's id in the handle map.
    pub dir_id: ObjectId,
    /// The directory's path.
    pub dir: &'a RelPath,
    /// The name.
    pub name: &'a Name,
}

/// An object of an export known by handle: its id and path.
#[derive(Debug, Clone, Copy)]
pub struct ObjRef<'a> {
    /// Its id in the handle map.
    pub id: ObjectId,
    /// Its path.
    pub path: &'a RelPath,
}

/// A directory's change attribute before and after a change (change_info4,
/// RFC 8881 §3.3.4). Not atomic: other processes can change the directory
/// in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirChange {
    /// Before the change.
    pub before: u64,
    /// After it.
    pub after: u64,
}

impl DirChange {
    /// From the directory's attributes before and after.
    pub fn between(before: &Attrs, after: &Attrs) -> DirChange {
        DirChange {
            before: vfs::change_of(before),
            after: vfs::change_of(after),
        }
    }

    /// Nothing changed in a directory with attributes `a`.
    pub fn unchanged(a: &Attrs) -> DirChange {
        DirChange::between(a, a)
    }
}

impl<'a> Namespace<'a> {
    /// The handle-map id of `at`, whose attributes are `a`, recording the
    /// name if the map does not know it yet.
    fn record_id(&self, e: &Export, at: Entry, a: &Attrs) -> NfsResult<ObjectId> {
        Ok(self.vfs.fhmap.lookup_or_insert(
            e.id,
            at.dir_id,
            at.name.as_bytes(),
            key_of(a),
            ftype(a.kind),
        )?)
    }
}

/// Makes a directory's entries durable after a namespace change and
/// returns its attributes for change_info4's `after`. NFS namespace
/// operations are committed before the reply (as knfsd does for `sync`
/// exports): a client that saw the reply must not lose the name in a
/// server crash.
fn dir_done(e: &Export, dir: &RelPath) -> NfsResult<Attrs> {
    e.store().sync_dir(dir)?;
    Ok(e.store().stat(dir)?)
}
