//! CREATE (RFC 8881 §18.4, RFC 7530 §16.4): creates a non-regular object
//! (directory, symlink, device, socket, fifo) named `objname` in the
//! current directory, which then becomes the current filehandle. Regular
//! files are created by OPEN: NF4REG (and the named-attribute types) are
//! NFS4ERR_BADTYPE.
//!
//! The object, its owner, mode and times, and `attrset` are the namespace
//! layer's ([`crate::namespace::Namespace::create`]).

use nfs4d_xdr::nfs4::{createtype4, CREATE4args, CREATE4resok};

use super::common;
use crate::attrs;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::component;
use crate::namespace::{Entry, NewObject};
use nfs4d_store::FileKind;

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
    let (e, dir, dir_id) = common::obj(cx, &cur, NfsError::Rofs)?;
    let at = Entry {
        dir_id,
        dir,
        name: &name,
    };
    let r = cx
        .srv
        .namespace()
        .create(&common::caller(cx, e), e, at, &what, &req)?;
    // The new object's handle must be durable before the reply.
    cx.need_durable(r.durable);
    cx.cfh = Some(r.fh);
    Ok(CREATE4resok {
        cinfo: common::change_info(r.dir),
        attrset: r.attrset,
    })
}

/// Validates `objtype`.
fn what(t: createtype4) -> NfsResult<NewObject> {
    Ok(match t {
        createtype4::NF4DIR => NewObject::Dir,
        createtype4::NF4LNK(target) => {
            // linktext4 is a utf8str_cs (RFC 8881 §3.2): empty or invalid
            // UTF-8 is NFS4ERR_INVAL, as for names (§14.5); a NUL cannot
            // be stored in a symlink.
            if target.is_empty() || std::str::from_utf8(&target).is_err() || target.contains(&0) {
                return Err(NfsError::Inval);
            }
            NewObject::Symlink(target)
        }
        createtype4::NF4BLK(d) => {
            NewObject::Special(FileKind::BlockDev, (d.specdata1, d.specdata2))
        }
        createtype4::NF4CHR(d) => NewObject::Special(FileKind::CharDev, (d.specdata1, d.specdata2)),
        createtype4::NF4SOCK => NewObject::Special(FileKind::Socket, (0, 0)),
        createtype4::NF4FIFO => NewObject::Special(FileKind::Fifo, (0, 0)),
        // NF4REG is OPEN's job; NF4ATTRDIR/NF4NAMEDATTR are not creatable
        // (RFC 8881 §18.4.3: NFS4ERR_BADTYPE).
        createtype4::default(_) => return Err(NfsError::BadType),
    })
}
