//! Helpers several operations share: attributes of the current object,
//! directory change info, the caller's identity and permission checks.

use nfs4d_xdr::nfs4::{change_info4, fattr4};
use nfs4d_xdr::rpc::Credential;

use crate::attrs::{self, AttrContext, FsInfo, ObjAttrs};
use crate::backend::{Attrs, Backend, FileKind, Owner, RelPath};
use crate::compound::Cx;
use crate::config::MAX_IO;
use crate::error::{NfsError, NfsResult};
use crate::vfs::{obj_attrs, CurFh, Export, Node};

/// Backend attributes of an export object; `None` for pseudo nodes.
pub fn stat(cx: &Cx, cur: &CurFh) -> NfsResult<Option<Attrs>> {
    match &cur.node {
        Node::Pseudo(_) => Ok(None),
        Node::Obj { export, path, .. } => Ok(Some(cx.srv.vfs.export(*export)?.backend.stat(path)?)),
    }
}

/// The export and path of the current object, or NFS4ERR_ROFS-free
/// failure for pseudo nodes (which hold no data): callers pick the error.
pub fn obj<'c>(cx: &'c Cx, cur: &'c CurFh, pseudo_err: NfsError) -> NfsResult<(&'c Export, &'c RelPath, crate::fhmap::ObjectId)> {
    match &cur.node {
        Node::Pseudo(_) => Err(pseudo_err),
        Node::Obj { export, path, id } => Ok((cx.srv.vfs.export(*export)?, path, *id)),
    }
}

/// Encodes the requested attributes of `cur`.
pub fn encode_attrs(cx: &Cx, cur: &CurFh, request: &[u32]) -> NfsResult<fattr4> {
    let (a, export) = match &cur.node {
        Node::Pseudo(n) => (cx.srv.vfs.pseudo_attrs(*n), None),
        Node::Obj { export, path, .. } => {
            let e = cx.srv.vfs.export(*export)?;
            (obj_attrs(&e.backend.stat(path)?), Some(e))
        }
    };
    encode_with(cx, cur, &a, export, request, None)
}

/// Encodes attributes already fetched (READDIR, after SETATTR …).
pub fn encode_with(
    cx: &Cx,
    cur: &CurFh,
    a: &ObjAttrs,
    export: Option<&Export>,
    request: &[u32],
    rdattr_error: Option<nfs4d_xdr::nfs4::nfsstat4>,
) -> NfsResult<fattr4> {
    let backend: Option<&dyn Backend> = export.map(|e| &*e.backend);
    let read_only = export.is_none_or(|e| e.cfg.read_only);
    let fsid = export.map_or((0, 0), |e| e.fsid);
    let fs = || -> Option<FsInfo> {
        let s = backend?.statfs().ok()?;
        Some(FsInfo {
            fsid,
            total_bytes: s.total_bytes,
            free_bytes: s.free_bytes,
            avail_bytes: s.avail_bytes,
            total_files: s.total_files,
            free_files: s.free_files,
            avail_files: s.avail_files,
            name_max: s.name_max,
            read_only,
        })
    };
    let owner = |id: u32| id.to_string().into_bytes();
    let mounted_on = match &cur.node {
        // An export root's mounted-on fileid is the pseudo directory's.
        Node::Obj { id, .. } if id.is_export_root() => cx
            .srv
            .vfs
            .pseudo
            .iter()
            .position(|p| export.is_some_and(|e| p.export == Some(e.id)))
            .map_or(a.fileid, |n| n as u64 + 1),
        _ => a.fileid,
    };
    let ctx = AttrContext {
        fh: &cur.fh,
        fs: &fs,
        fsid,
        lease_time: cx.srv.cfg.lease_time,
        fh_expire_type: cx.srv.fhmap.fh_expire_type(),
        maxread: u64::from(MAX_IO),
        maxwrite: u64::from(MAX_IO),
        mounted_on_fileid: mounted_on,
        minorversion: cx.minor,
        rdattr_error,
        xattr_support: false,
        owner_string: &owner,
        group_string: &owner,
    };
    attrs::encode(request, a, &ctx).map_err(NfsError::from_status)
}

/// Directory change info around a modification (RFC 8881 §3.3.4): the
/// change attribute before and after; not atomic, since other processes
/// can change the directory in between.
pub fn cinfo(before: &Attrs, after: &Attrs) -> change_info4 {
    change_info4 {
        atomic: false,
        before: crate::vfs::change_of(before),
        after: crate::vfs::change_of(after),
    }
}

/// The caller's uid/gid/groups; AUTH_NONE maps to nobody (65534).
pub fn caller<'c>(cx: &'c Cx) -> (u32, u32, &'c [u32]) {
    match &cx.req.cred {
        Credential::Sys { uid, gid, gids, .. } => (*uid, *gid, gids.as_slice()),
        _ => (65534, 65534, &[]),
    }
}

/// Owner for objects the caller creates.
pub fn new_owner(cx: &Cx) -> Owner {
    let (uid, gid, _) = caller(cx);
    Owner { uid, gid }
}

/// Permission bits.
pub const MAY_READ: u32 = 4;
/// Write permission.
pub const MAY_WRITE: u32 = 2;
/// Execute / search permission.
pub const MAY_EXEC: u32 = 1;

/// The subset of `want` (rwx bits) the caller has on an object with
/// attributes `a`, by POSIX mode rules. Root may do everything except
/// execute files with no execute bit (as POSIX).
pub fn allowed(cx: &Cx, a: &Attrs, want: u32) -> u32 {
    let (uid, gid, gids) = caller(cx);
    if uid == 0 {
        let any_x = a.mode & 0o111 != 0 || a.kind == FileKind::Directory;
        return if any_x { want } else { want & !MAY_EXEC };
    }
    let bits = if uid == a.uid {
        (a.mode >> 6) & 7
    } else if gid == a.gid || gids.contains(&a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    want & bits
}

/// Fails with NFS4ERR_ACCESS unless all of `want` is allowed.
pub fn require(cx: &Cx, a: &Attrs, want: u32) -> NfsResult<()> {
    if allowed(cx, a, want) == want {
        Ok(())
    } else {
        Err(NfsError::Access)
    }
}

/// Fails with NFS4ERR_ROFS when the export is read-only.
pub fn writable(e: &Export) -> NfsResult<()> {
    if e.cfg.read_only {
        Err(NfsError::Rofs)
    } else {
        Ok(())
    }
}

/// Checks that a directory may be modified by the caller (write + search).
pub fn dir_modifiable(cx: &Cx, e: &Export, dir: &RelPath) -> NfsResult<Attrs> {
    writable(e)?;
    let a = e.backend.stat(dir)?;
    if a.kind != FileKind::Directory {
        return Err(NfsError::NotDir);
    }
    require(cx, &a, MAY_WRITE | MAY_EXEC)?;
    Ok(a)
}
