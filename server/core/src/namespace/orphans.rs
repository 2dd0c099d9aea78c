//! Files removed while open.
//!
//! NFSv4 lets a client keep using an open file after another client (or a
//! RENAME over it) removed its last name: its CLOSE, READ and WRITE must
//! still work (pynfs RNM21; RFC 8881 §18.25.4 leaves the data alive until
//! the last close). A path-based store cannot reach an object that has no
//! path, so instead of unlinking such a file the server parks it under a
//! hidden directory at the export root, named by its object id, and
//! deletes it when the last open goes away. The directory is emptied at
//! start-up: no open survives a restart.

use super::vfs::{key_of, Export, Vfs};
use super::{Entry, Namespace};
use crate::error::NfsResult;
use crate::state::FileKey;
use nfs4d_fhmap::{ObjectId, NF4DIR};
use nfs4d_store::{Attrs, FileKind, ListPos, Name, RelPath};

use super::reserved::{dir_name, parked_name};
pub use super::reserved::{is_hidden, parked_path, ORPHAN_DIR};

/// Creates the orphan directory of an export, deleting what an earlier
/// run left in it.
pub fn prepare(vfs: &Vfs, e: &Export) -> NfsResult<()> {
    let root = RelPath::root();
    let dir = dir_name();
    let owner = nfs4d_store::Owner { uid: 0, gid: 0 };
    match e.store().mkdir(&root, &dir, 0o700, owner) {
        Ok(_) | Err(nfs4d_store::StoreError::Exists) => {}
        Err(err) => return Err(err.into()),
    }
    let path = root.join(&dir);
    // Names first, removals after: a store's listing need not survive
    // removals made while it runs.
    let mut names = Vec::new();
    e.store()
        .list(&path, &ListPos::Start, false, &mut |ent, _| {
            if let Ok(n) = Name::new(ent.name) {
                names.push(n);
            }
            // Bounded: parked files are files open at the last stop.
            names.len() < MAX_LEFTOVERS
        })?;
    let dir_id = orphan_dir_id(vfs, e)?;
    for n in names {
        let _ = e.store().remove(&path, &n);
        let _ = vfs.fhmap.remove(e.id, dir_id, n.as_bytes());
    }
    Ok(())
}

/// Parked files removed at start-up in one go; more wait for the next
/// start (each was a file open when the server stopped).
const MAX_LEFTOVERS: usize = 1 << 16;

fn orphan_dir_id(vfs: &Vfs, e: &Export) -> NfsResult<ObjectId> {
    let a = e.store().lookup(&RelPath::root(), &dir_name())?;
    Ok(vfs.fhmap.lookup_or_insert(
        e.id,
        ObjectId::export_root(e.id),
        ORPHAN_DIR,
        key_of(&a),
        NF4DIR,
    )?)
}

/// Called instead of unlinking the name `at` (attributes `a`): when this
/// is the last name of a regular file that is open, moves it to the orphan
/// directory and returns the handle-map write to make durable; otherwise
/// returns `None` and the caller unlinks as usual.
pub(super) fn park_if_open(
    ns: &Namespace,
    e: &Export,
    at: Entry,
    a: &Attrs,
) -> NfsResult<Option<u64>> {
    if a.kind != FileKind::Regular || a.nlink > 1 {
        return Ok(None);
    }
    let vfs = ns.vfs;
    let id = ns.record_id(e, at, a)?;
    if ns.state.lock().file_share((e.id, id)).access == 0 {
        return Ok(None);
    }
    let orphans = orphan_dir_id(vfs, e)?;
    let parked = parked_name(id);
    e.store()
        .rename(at.dir, at.name, &RelPath::root().join(&dir_name()), &parked)?;
    vfs.fhmap.rename(
        e.id,
        at.dir_id,
        at.name.as_bytes(),
        orphans,
        parked.as_bytes(),
    )?;
    tracing::debug!(dir = %at.dir, name = %at.name, "open file removed: parked until its last close");
    Ok(Some(vfs.fhmap.last_seq()))
}

impl Namespace<'_> {
    /// After a CLOSE: deletes a parked file once nothing has it open.
    pub fn reap_after_close(&self, file: FileKey) {
        let (export, id) = file;
        if self.state.lock().file_share(file).access != 0 {
            return;
        }
        let vfs = self.vfs;
        let Ok(Some(path)) = vfs.fhmap.path_of(id) else {
            return;
        };
        if path.len() != 2 || path[0] != ORPHAN_DIR {
            return;
        }
        let Ok(e) = vfs.export(export) else {
            return;
        };
        let Ok(name) = Name::new(&path[1]) else {
            return;
        };
        let dir = RelPath::root().join(&dir_name());
        if let Err(err) = e.store().remove(&dir, &name) {
            tracing::warn!(error = %err, "cannot delete a parked file after its last close");
            return;
        }
        if let Ok(dir_id) = orphan_dir_id(vfs, e) {
            let _ = vfs.fhmap.remove(export, dir_id, name.as_bytes());
        }
    }
}
