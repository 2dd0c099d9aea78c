//! REMOVE (RFC 8881 §18.25, RFC 7530 §16.26): removes the entry `target`
//! of the current directory, a directory (which must be empty:
//! NFS4ERR_NOTEMPTY) or any other object.
//!
//! After the backend removed the name the handle map forgets that link;
//! if it was the object's last one, the object's handles answer
//! NFS4ERR_STALE from then on. A regular file removed while open is
//! parked until its last close (orphans.rs) — except on a volatile export
//! without `noexpire_with_open`, where removing an open file is refused
//! with NFS4ERR_FILE_OPEN (RFC 7530/8881 §4.2.3: servers whose handles
//! may expire while open "should deny a RENAME or REMOVE that would
//! affect an OPEN file").

use nfs4d_xdr::nfs4::{REMOVE4args, REMOVE4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::component;
use nfs4d_store::FileKind;

/// REMOVE.
pub fn run(cx: &mut Cx, a: REMOVE4args) -> NfsResult<REMOVE4resok> {
    let name = component(&a.target)?;
    let cur = cx.cfh()?.clone();
    // The pseudo filesystem is read-only.
    let (e, dir_path, dir_id) = common::obj(cx, &cur, NfsError::Rofs)?;
    // ROFS, NOTDIR, write + search permission on the directory.
    let before = common::dir_modifiable(cx, e, dir_path)?;
    common::refuse_in_grace(cx)?;
    if crate::namespace::orphans::is_hidden(dir_path, name.as_bytes()) {
        return Err(NfsError::NoEnt);
    }
    let victim = e.store().lookup(dir_path, &name)?;
    common::sticky_allows(cx, &before, &victim)?;
    common::break_delegations_at(cx, e, dir_id, &name, &victim)?;
    if victim.kind == FileKind::Regular
        && e.policy().is_volatile()
        && !e.policy().noexpire_with_open
    {
        let id = cx.srv.fhmap.lookup_or_insert(
            e.id,
            dir_id,
            name.as_bytes(),
            crate::namespace::vfs::key_of(&victim),
            crate::namespace::vfs::ftype(victim.kind),
        )?;
        common::refuse_if_open(cx, e, id, "REMOVE")?;
    }
    let parked = match victim.kind {
        FileKind::Directory => None,
        _ => crate::namespace::orphans::park_if_open(cx, e, dir_id, dir_path, &name, &victim)?,
    };
    if let Some(seq) = parked {
        let after = common::dir_done(e, dir_path)?;
        cx.need_durable(seq);
        return Ok(REMOVE4resok {
            cinfo: common::cinfo(&before, &after),
        });
    }
    match victim.kind {
        FileKind::Directory => e.store().rmdir(dir_path, &name)?,
        _ => {
            e.store().remove(dir_path, &name)?;
        }
    }
    let after = common::dir_done(e, dir_path)?;
    // The name is gone from the store; the map follows. This need not be
    // durable before the reply: if the update is lost, PUTFH of an old
    // handle still finds nothing at the recorded path (or another
    // identity) and answers STALE, and LOOKUP replaces the dead link. For
    // the same reason a failure here does not undo a removal that
    // happened; it is only logged.
    if let Err(err) = cx.srv.fhmap.remove(e.id, dir_id, name.as_bytes()) {
        tracing::warn!(error = %err, dir = %dir_path, name = %name, "REMOVE: handle map update failed");
    }
    Ok(REMOVE4resok {
        cinfo: common::cinfo(&before, &after),
    })
}
