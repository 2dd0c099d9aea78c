//! CREATE (RFC 8881 §18.4, RFC 7530 §16.4): creates a non-regular object
//! (directory, symlink, device, socket, fifo) named `objname` in the
//! current directory, which then becomes the current filehandle. Regular
//! files are created by OPEN: NF4REG (and the named-attribute types) are
//! NFS4ERR_BADTYPE.
//!
//! Owner, group and mode are applied by the backend at creation (see
//! [`common::creation_owner_mode`]); times in `createattrs` with a
//! SETATTR right after. `attrset` reports what was applied.

use nfs4d_xdr::nfs4::{createtype4, CREATE4args, CREATE4resok};

use super::common;
use crate::attrs::{self, SetRequest};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, Export};
use nfs4d_store::{Attrs, FileKind, Name, RelPath, SetAttrs};

/// Attribute numbers (RFC 8881 §5.6-5.7).
const FATTR4_MODE: u32 = 33;
const FATTR4_TIME_ACCESS_SET: u32 = 48;
const FATTR4_TIME_MODIFY_SET: u32 = 54;

/// Default permission bits when `createattrs` has no mode.
const DEFAULT_DIR_MODE: u32 = 0o755;
const DEFAULT_NODE_MODE: u32 = 0o644;

/// What to create, from `objtype`.
enum What {
    Dir,
    Symlink(Vec<u8>),
    Node(FileKind, (u32, u32)),
}

/// CREATE.
pub fn run(cx: &mut Cx, a: CREATE4args) -> NfsResult<CREATE4resok> {
    let what = what(a.objtype)?;
    let name = component(&a.objname)?;
    let req = attrs::decode_set(&a.createattrs, cx.minor).map_err(NfsError::from_status)?;
    if req.size.is_some() {
        // Only regular files have a settable size.
        return Err(NfsError::Inval);
    }
    let cur = cx.cfh()?.clone();
    // The pseudo filesystem is read-only.
    let (e, dir_path, dir_id) = common::obj(cx, &cur, NfsError::Rofs)?;
    // ROFS, NOTDIR, and write + search permission on the directory.
    let before = common::dir_modifiable(cx, e, dir_path)?;

    if matches!(what, What::Node(FileKind::BlockDev | FileKind::CharDev, _))
        && common::caller(cx).0 != 0
    {
        // Device nodes need CAP_MKNOD (mknod(2)), which knfsd drops for
        // every caller but root; this server runs privileged, so it must
        // refuse them itself.
        return Err(NfsError::Perm);
    }
    let is_dir = matches!(what, What::Dir);
    let default_mode = if is_dir {
        DEFAULT_DIR_MODE
    } else {
        DEFAULT_NODE_MODE
    };
    let (owner, mode) = common::creation_owner_mode(cx, &before, &req, is_dir, default_mode)?;
    let attrs = match &what {
        What::Dir => e.store().mkdir(dir_path, &name, mode, owner)?,
        What::Symlink(target) => e.store().symlink(dir_path, &name, target, owner)?,
        What::Node(kind, rdev) => e
            .store()
            .mknod(dir_path, &name, *kind, mode, *rdev, owner)?,
    };
    let mut attrset = req.mask.clone();
    let attrs = match set_times(e, dir_path, &name, &req) {
        Ok(Some(a)) => a,
        Ok(None) => attrs,
        // The object exists now: report the times as not set (attrset is
        // "which attributes were successfully set", RFC 8881 §18.4.3)
        // rather than fail a CREATE that happened.
        Err(err) => {
            tracing::warn!(error = %err, "CREATE: setting times of the new object failed");
            common::bitmap_clear(&mut attrset, FATTR4_TIME_ACCESS_SET);
            common::bitmap_clear(&mut attrset, FATTR4_TIME_MODIFY_SET);
            attrs
        }
    };
    let after = common::dir_done(e, dir_path)?;

    // The new object becomes the current filehandle; its handle must be
    // durable before the reply.
    let (fh, seq) = cx.srv.vfs.child_fh(e.id, dir_id, dir_path, &name, &attrs)?;
    cx.need_durable(seq);
    cx.cfh = Some(fh);

    if matches!(what, What::Symlink(_)) {
        // A symlink's mode is always 0777 on Linux: the mode was not applied.
        common::bitmap_clear(&mut attrset, FATTR4_MODE);
    }
    Ok(CREATE4resok {
        cinfo: common::cinfo(&before, &after),
        attrset,
    })
}

/// Validates `objtype`.
fn what(t: createtype4) -> NfsResult<What> {
    Ok(match t {
        createtype4::NF4DIR => What::Dir,
        createtype4::NF4LNK(target) => {
            // linktext4 is a utf8str_cs (RFC 8881 §3.2): empty or invalid
            // UTF-8 is NFS4ERR_INVAL, as for names (§14.5); a NUL cannot
            // be stored in a symlink.
            if target.is_empty() || std::str::from_utf8(&target).is_err() || target.contains(&0) {
                return Err(NfsError::Inval);
            }
            What::Symlink(target)
        }
        createtype4::NF4BLK(d) => What::Node(FileKind::BlockDev, (d.specdata1, d.specdata2)),
        createtype4::NF4CHR(d) => What::Node(FileKind::CharDev, (d.specdata1, d.specdata2)),
        createtype4::NF4SOCK => What::Node(FileKind::Socket, (0, 0)),
        createtype4::NF4FIFO => What::Node(FileKind::Fifo, (0, 0)),
        // NF4REG is OPEN's job; NF4ATTRDIR/NF4NAMEDATTR are not creatable
        // (RFC 8881 §18.4.3: NFS4ERR_BADTYPE).
        createtype4::default(_) => return Err(NfsError::BadType),
    })
}

/// Applies time_access_set / time_modify_set from `createattrs` and
/// returns the new attributes (`None` when there were none to set). The
/// creator owns the object, so no further permission check is needed.
fn set_times(e: &Export, dir: &RelPath, name: &Name, req: &SetRequest) -> NfsResult<Option<Attrs>> {
    if req.atime.is_none() && req.mtime.is_none() {
        return Ok(None);
    }
    let set = SetAttrs {
        atime: req.atime.map(common::set_time),
        mtime: req.mtime.map(common::set_time),
        ..SetAttrs::default()
    };
    Ok(Some(e.store().setattr(&dir.join(name), &set)?))
}
