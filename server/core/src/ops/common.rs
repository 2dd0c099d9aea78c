//! Helpers several operations share: attributes of the current object,
//! directory change info, the caller's identity and permission checks.

use nfs4d_xdr::nfs4::{change_info4, fattr4};
use nfs4d_xdr::rpc::Credential;

use crate::attrs::{self, AttrContext, FsInfo, ObjAttrs};
use crate::config::MAX_IO;
use crate::context::{Cx, Fresh};
use crate::error::{NfsError, NfsResult};
use crate::namespace::perm;
use crate::namespace::vfs::{obj_attrs, CurFh, Export, Node};
use crate::namespace::{Caller, DirChange, User};
use nfs4d_store::{Attrs, FileKind, RelPath};

pub use crate::attrs::bitmap_clear;
pub use crate::namespace::perm::{MAY_EXEC, MAY_READ, MAY_WRITE, MODE_SETGID, MODE_STICKY};
pub use crate::namespace::set_time;

/// The export and path of the current object, or NFS4ERR_ROFS-free
/// failure for pseudo nodes (which hold no data): callers pick the error.
pub fn obj<'c>(
    cx: &'c Cx,
    cur: &'c CurFh,
    pseudo_err: NfsError,
) -> NfsResult<(&'c Export, &'c RelPath, nfs4d_fhmap::ObjectId)> {
    match &cur.node {
        Node::Pseudo(_) => Err(pseudo_err),
        Node::Obj { export, path, id } => Ok((cx.srv.vfs.export(*export)?, path, *id)),
    }
}

/// The attributes of object `id` at `path` of export `e`: those PUTFH
/// read while checking the current filehandle, when this is the
/// operation right after it and they are of this object (one use);
/// otherwise a stat.
pub fn stat_obj(
    cx: &Cx,
    e: &Export,
    id: nfs4d_fhmap::ObjectId,
    path: &RelPath,
) -> Result<Attrs, nfs4d_store::StoreError> {
    if let Some(f) = cx.fresh.take() {
        if f.op == cx.op_index && f.export == e.id && f.id == id {
            return Ok(f.attrs);
        }
    }
    e.store().stat(path)
}

/// Encodes the requested attributes of `cur`.
pub fn encode_attrs(cx: &Cx, cur: &CurFh, request: &[u32]) -> NfsResult<fattr4> {
    let (a, export) = match &cur.node {
        Node::Pseudo(n) => (cx.srv.vfs.pseudo_attrs(*n), None),
        Node::Obj { export, path, id } => {
            let e = cx.srv.vfs.export(*export)?;
            (obj_attrs(&stat_obj(cx, e, *id, path)?), Some(e))
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
    with_attr_context(cx, cur, a, export, rdattr_error, |ctx| {
        attrs::encode(request, a, ctx)
    })
    .map_err(NfsError::from_status)
}

/// Runs `f` with the attribute context of `cur` (attributes `a`), the one
/// GETATTR, READDIR and VERIFY/NVERIFY share, so a value compared by
/// VERIFY is byte for byte the value GETATTR returns.
pub fn with_attr_context<R>(
    cx: &Cx,
    cur: &CurFh,
    a: &ObjAttrs,
    export: Option<&Export>,
    rdattr_error: Option<nfs4d_xdr::nfs4::nfsstat4>,
    f: impl FnOnce(&AttrContext) -> R,
) -> R {
    let read_only = export.is_none_or(|e| cx.read_only(e));
    let fsid = export.map_or((0, 0), |e| e.fsid);
    // Asked at most once per context: READDIR encodes every entry of a
    // reply within one.
    let statfs = std::cell::OnceCell::new();
    let fs = || -> Option<FsInfo> {
        *statfs.get_or_init(|| {
            let s = export?.store().statfs().ok()?;
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
        })
    };
    let owner = |id: u32, out: &mut Vec<u8>| attrs::push_decimal(out, id);
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
    // Heads of a cluster share the namespace: the file system is at the
    // same path everywhere.
    let fs_root: Vec<String> =
        export.map_or_else(Vec::new, |e| crate::config::normalize_pseudo(&e.cfg.path));
    let locations = export
        .and_then(|e| cx.srv.vfs.moved_to(e.id))
        .unwrap_or_default();
    let ctx = AttrContext {
        fh: &cur.fh,
        fs_root: &fs_root,
        locations: &locations,
        // What the export's store can do; the pseudo filesystem answers
        // as a local directory would.
        link_support: export.is_none_or(|e| e.caps.hard_links),
        symlink_support: export.is_none_or(|e| e.caps.symlinks),
        fs: &fs,
        fsid,
        lease_time: cx.srv.cfg.lease_time,
        // A per-file-system attribute (RFC 8881 §5.8.1.3): the export's
        // own policy; the pseudo filesystem's handles never expire.
        fh_expire_type: export.map_or(nfs4d_fhmap::FH4_PERSISTENT, |e| e.policy().fh_expire_type()),
        maxread: u64::from(MAX_IO),
        maxwrite: u64::from(MAX_IO),
        mounted_on_fileid: mounted_on,
        minorversion: cx.minor,
        rdattr_error,
        // RFC 8276 §8.2: true only where the xattr operations can work,
        // that is where the export's store keeps extended attributes.
        xattr_support: cx.minor >= 2 && export.is_some_and(|e| e.caps.xattrs),
        owner_string: &owner,
        group_string: &owner,
    };
    f(&ctx)
}

// ---------------------------------------------------------------------------
// Volatile filehandles (docs/filehandles.md)
// ---------------------------------------------------------------------------

/// PUTFH's resolution of a client's handle: open files count as open for
/// FH4_NOEXPIRE_WITH_OPEN, and an expired volatile handle answers what
/// the export's `expired_error` says for this client (see
/// [`expired_as_stale`]). Every refusal is logged.
pub fn resolve_fh(cx: &Cx, fh: &[u8]) -> NfsResult<CurFh> {
    let state = &cx.srv.state;
    let is_open = |export: u32, id: nfs4d_fhmap::ObjectId| {
        state.lock().file_share((export, id)).access != 0
            || state
                .recovery
                .open_before_restart((export, id.0), state.now())
    };
    let delegated =
        |export: u32, id: nfs4d_fhmap::ObjectId| !state.lock().file_delegs((export, id)).is_empty();
    let err = match cx.srv.vfs.resolve_with(fh, &is_open, &delegated) {
        Ok((cur, attrs)) => {
            if let (Some(attrs), Some((export, id, _))) = (attrs, cur.obj()) {
                cx.fresh.set(Some(Fresh {
                    export,
                    id,
                    attrs,
                    op: cx.op_index + 1,
                }));
            }
            return Ok(cur);
        }
        Err(err) => err,
    };
    let peer = cx.req.peer;
    if err == NfsError::BadHandle {
        tracing::info!(%peer, len = fh.len(), "PUTFH: not a filehandle this server issued (NFS4ERR_BADHANDLE)");
        return Err(err);
    }
    if err != NfsError::FhExpired {
        tracing::debug!(%peer, status = ?err.status(), "PUTFH refused");
        return Err(err);
    }
    let export = cx
        .srv
        .fhmap
        .decode(fh)
        .ok()
        .and_then(|d| cx.srv.vfs.export(d.export).ok());
    let stale = export.is_some_and(|e| expired_as_stale(cx, e));
    tracing::info!(
        %peer,
        export = export.map(|e| e.cfg.path.as_str()),
        answer = if stale { "NFS4ERR_STALE" } else { "NFS4ERR_FHEXPIRED" },
        "PUTFH: volatile filehandle expired"
    );
    Err(if stale {
        NfsError::Stale
    } else {
        NfsError::FhExpired
    })
}

/// Whether an expired volatile handle of export `e` is reported to this
/// client as NFS4ERR_STALE instead of NFS4ERR_FHEXPIRED.
///
/// RFC 7530/8881 §4.2.3 ask for FHEXPIRED, and clients that can recover
/// from it (illumos re-resolves the handle from the path it cached) need
/// it. The Linux client has no FHEXPIRED case and turns it into EIO,
/// while on ESTALE its VFS walks the path again once (LOOKUP_REVAL) and
/// picks up the new handle. `auto` therefore answers STALE to Linux:
/// * 4.1+: the client's EXCHANGE_ID implementation id name starts with
///   "Linux" (the kernel sends "Linux <release> <version> <machine>");
/// * 4.0 has no implementation id, and a COMPOUND carries no client id,
///   so the request is matched to client records by address: the peer's
///   IP against the callback address of SETCLIENTID records. STALE if a
///   matching record's client id string starts with "Linux NFSv4.0 " (how
///   the kernel names itself), FHEXPIRED if there are matching records and
///   none is Linux, and STALE when nothing matches — the typical case
///   right after a restart, before the client has re-established its
///   client id, when the 4.0 clients in use are overwhelmingly Linux
///   (docs/filehandles.md discusses the trade-off).
pub fn expired_as_stale(cx: &Cx, e: &Export) -> bool {
    use crate::config::ExpiredError;
    match e.cfg.expired_error {
        ExpiredError::Fhexpired => false,
        ExpiredError::Stale => true,
        ExpiredError::Auto => client_is_linux(cx).unwrap_or(cx.minor == 0),
    }
}

/// Whether the client of this request is the Linux kernel client, `None`
/// when it cannot be told (see [`expired_as_stale`]).
pub fn client_is_linux(cx: &Cx) -> Option<bool> {
    let g = cx.srv.state.lock();
    if let Some(id) = cx.session_client() {
        return Some(
            g.clients
                .get(&id)
                .is_some_and(|c| c.impl_name.starts_with("Linux")),
        );
    }
    if cx.minor != 0 {
        return None;
    }
    let peer = cx.req.peer.ip().to_canonical();
    let mut matched = false;
    for c in g.clients.values().filter(|c| c.minor == 0) {
        if callback_ip(&c.callback.addr) != Some(peer) {
            continue;
        }
        if c.owner.starts_with(b"Linux NFSv4.0 ") {
            return Some(true);
        }
        matched = true;
    }
    matched.then_some(false)
}

/// The host part of a universal address ("h1.h2.h3.h4.p1.p2", or an IPv6
/// address followed by ".p1.p2"; RFC 5665 §5.2.3.3).
fn callback_ip(uaddr: &str) -> Option<std::net::IpAddr> {
    let mut parts = uaddr.rsplitn(3, '.');
    let (_p2, _p1, host) = (parts.next()?, parts.next()?, parts.next()?);
    host.parse::<std::net::IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Directory change info around a modification (RFC 8881 §3.3.4): the
/// change attribute before and after; not atomic, since other processes
/// can change the directory in between.
pub fn cinfo(before: &Attrs, after: &Attrs) -> change_info4 {
    change_info(DirChange::between(before, after))
}

/// The change_info4 of a namespace change.
pub fn change_info(c: DirChange) -> change_info4 {
    change_info4 {
        atomic: false,
        before: c.before,
        after: c.after,
    }
}

/// The user the request acts as: the RPC credential squashed by the
/// current export's rules ([`Cx::cred`]); AUTH_NONE maps to nobody.
pub fn user<'c>(cx: &'c Cx) -> User<'c> {
    match &cx.cred {
        Credential::Sys { uid, gid, gids, .. } => User {
            uid: *uid,
            gid: *gid,
            groups: gids.as_slice(),
        },
        _ => User::NOBODY,
    }
}

/// The caller of a namespace change in export `e`, as the namespace layer
/// takes it: the user, the 4.1 session's client, and whether this request
/// may only read the export.
pub fn caller<'c>(cx: &'c Cx, e: &Export) -> Caller<'c> {
    Caller {
        user: user(cx),
        client: cx.session_client(),
        read_only: cx.read_only(e),
    }
}

/// The subset of `want` (rwx bits) the caller has on an object with
/// attributes `a` ([`perm::allowed`]).
pub fn allowed(cx: &Cx, a: &Attrs, want: u32) -> u32 {
    perm::allowed(&user(cx), a, want)
}

/// Fails with NFS4ERR_ACCESS unless all of `want` is allowed.
pub fn require(cx: &Cx, a: &Attrs, want: u32) -> NfsResult<()> {
    perm::require(&user(cx), a, want)
}

/// Fails with NFS4ERR_ROFS when the export is read-only, for everybody or
/// for this client's address ([`Cx::read_only`]).
pub fn writable(cx: &Cx, e: &Export) -> NfsResult<()> {
    if cx.read_only(e) {
        Err(NfsError::Rofs)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Namespace helpers (LOOKUP, LOOKUPP, READDIR, CREATE, REMOVE, RENAME, LINK,
// SETATTR).
// ---------------------------------------------------------------------------

/// Fails unless `a` is a directory, for operations that resolve a name in
/// the current filehandle (LOOKUP, LOOKUPP): a symlink is
/// NFS4ERR_SYMLINK (RFC 7530 §16.13.5; RFC 8881 §15.2 lists it for both
/// operations), anything else NFS4ERR_NOTDIR.
pub fn lookup_dir(a: &Attrs) -> NfsResult<()> {
    match a.kind {
        FileKind::Directory => Ok(()),
        FileKind::Symlink => Err(NfsError::Symlink),
        _ => Err(NfsError::NotDir),
    }
}

/// The pseudo-filesystem node export `export` is mounted at.
pub fn export_node(cx: &Cx, export: u32) -> Option<usize> {
    cx.srv
        .vfs
        .pseudo
        .iter()
        .position(|p| p.export == Some(export))
}

/// The child of pseudo node `node` called `name`.
pub fn pseudo_child(cx: &Cx, node: usize, name: &[u8]) -> Option<usize> {
    let pseudo = &cx.srv.vfs.pseudo;
    pseudo
        .get(node)?
        .children
        .iter()
        .copied()
        .find(|&c| pseudo.get(c).is_some_and(|p| p.name.as_bytes() == name))
}

/// Whether the caller is a member of group `gid` (primary or supplementary).
pub fn in_group(cx: &Cx, gid: u32) -> bool {
    user(cx).in_group(gid)
}

/// The uid (or gid, with `group`) named by an owner / owner_group string
/// ([`perm::owner_id`]).
pub fn owner_id(cx: &Cx, s: &[u8], group: bool) -> NfsResult<u32> {
    perm::owner_id(&*cx.srv.idmap, s, group)
}

// ---------------------------------------------------------------------------
// State helpers (OPEN, OPEN_CONFIRM, OPEN_DOWNGRADE, CLOSE, LOCK, LOCKT,
// LOCKU, READ, WRITE, COMMIT, DELEGRETURN, RELEASE_LOCKOWNER).
// ---------------------------------------------------------------------------

/// The client whose owner a request names. 4.0: the `clientid` inside the
/// open or lock owner, which must be a confirmed client with a live lease
/// (NFS4ERR_STALE_CLIENTID / NFS4ERR_EXPIRED); using it renews the lease
/// (RFC 7530 §9.6). 4.1: the session's client; the clientid in the owner
/// MUST be ignored (RFC 8881 §18.16.3, §18.10.3, §18.11.3).
pub fn state_client(cx: &Cx, clientid: u64) -> NfsResult<crate::state::ClientId> {
    if cx.minor == 0 {
        cx.srv.state.renew(clientid)?;
        Ok(clientid)
    } else {
        cx.session_client().ok_or(NfsError::OpNotInSession)
    }
}

/// The state-table key of the current file: (export, object id).
pub fn file_key(cur: &CurFh) -> Option<crate::state::FileKey> {
    cur.obj().map(|(e, id, _)| (e, id))
}

/// Fails unless an object is a regular file, with the status READ, WRITE,
/// COMMIT, LOCK, LOCKT and LOCKU give: a directory is NFS4ERR_ISDIR; in
/// 4.1 a symlink is NFS4ERR_SYMLINK and anything else NFS4ERR_WRONG_TYPE
/// (RFC 8881 §18.22.3, §18.32.4, §18.10.3); 4.0 has neither for these
/// operations and says NFS4ERR_INVAL (RFC 7530 §16.23.5, §16.36.5).
pub fn regular_file(cx: &Cx, kind: FileKind) -> NfsResult<()> {
    match kind {
        FileKind::Regular => Ok(()),
        FileKind::Directory => Err(NfsError::IsDir),
        _ if cx.minor == 0 => Err(NfsError::Inval),
        FileKind::Symlink => Err(NfsError::Symlink),
        _ => Err(NfsError::WrongType),
    }
}

/// The current filehandle as a regular file of an export: its export,
/// path, state key and attributes. Pseudo-filesystem nodes are
/// directories (NFS4ERR_ISDIR); other types as [`regular_file`].
pub fn cur_regular<'c>(
    cx: &'c Cx,
    cur: &'c CurFh,
) -> NfsResult<(&'c Export, &'c RelPath, crate::state::FileKey, Attrs)> {
    let (e, path, id) = obj(cx, cur, NfsError::IsDir)?;
    let a = stat_obj(cx, e, id, path)?;
    regular_file(cx, a.kind)?;
    Ok((e, path, (e.id, id), a))
}

/// The 4.0 sequencing step of a seqid-bearing operation (RFC 7530
/// §9.1.7): NFS4ERR_BAD_SEQID for an out-of-order seqid; for the next
/// seqid, arranges for the COMPOUND loop to cache this operation's reply
/// in the owner and returns `false`; for a retransmission of the last
/// request, hands the cached reply to the loop and returns `true` — the
/// caller then returns [`replayed`] without doing anything. 4.1 ignores
/// seqids (sessions give exactly-once semantics): always `false`.
pub fn sequence(
    cx: &mut Cx,
    kind: crate::state::OwnerKind,
    owner: &crate::state::OwnerKey,
    seqid: u32,
) -> NfsResult<bool> {
    if cx.minor != 0 {
        return Ok(false);
    }
    match cx.srv.state.check_owner_seqid(kind, owner, seqid)? {
        crate::state::SeqCheck::Replay(bytes) => {
            cx.replay = Some(bytes);
            Ok(true)
        }
        crate::state::SeqCheck::Next => {
            cx.seq_owner = Some((kind, owner.clone(), seqid));
            Ok(false)
        }
    }
}

/// The result a handler returns for a replayed 4.0 request: the loop
/// sends the cached bytes, and this result only decides the COMPOUND's
/// status and whether it goes on, so it carries the cached status.
pub fn replayed<T>(cx: &Cx, ok: impl FnOnce() -> T) -> NfsResult<T> {
    let code = cx
        .replay
        .as_ref()
        .and_then(|r| r.get(4..8))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(
            nfs4d_xdr::nfs4::nfsstat4::NFS4ERR_SERVERFAULT as i32 as u32,
            u32::from_be_bytes,
        );
    if code == 0 {
        Ok(ok())
    } else {
        Err(NfsError::from_code(code))
    }
}

/// The record of a stateid named by a stateid-bearing operation, found by
/// its `other` field only — its seqid is checked later with
/// [`check_generation`], after the 4.0 owner seqid, because BAD_SEQID
/// takes precedence over stateid errors (RFC 7530 §9.1.9). Special
/// stateids are NFS4ERR_BAD_STATEID here (none is valid for these
/// operations, RFC 7530 §9.1.4.4); a stateid of an earlier server
/// instance is NFS4ERR_STALE_STATEID in 4.0 (BAD_STATEID in 4.1, where
/// STALE_STATEID is moot, RFC 8881 §15.1.5.4); an unknown one or, in 4.1, another
/// client's is NFS4ERR_BAD_STATEID. The 4.1 current stateid is resolved
/// first. Using a stateid renews its client's 4.0 lease.
pub fn find_state(
    cx: &Cx,
    sid: &nfs4d_xdr::nfs4::stateid4,
) -> NfsResult<(nfs4d_xdr::nfs4::stateid4, crate::state::StateEntry)> {
    let sid = cx.resolve_stateid(sid)?;
    if sid.other == [0; 12] || sid.other == [0xff; 12] {
        return Err(NfsError::BadStateid);
    }
    if sid.other[..4] != cx.srv.state.boot.to_be_bytes() {
        // STALE_STATEID is moot in 4.1 (see `check_stateid`).
        return Err(if cx.minor >= 1 {
            NfsError::BadStateid
        } else {
            NfsError::StaleStateid
        });
    }
    let e = cx.srv.state.state_entry(&sid.other).ok_or_else(|| {
        // A stateid of a client whose state expired is NFS4ERR_EXPIRED
        // (RFC 7530 §9.1.4), any other unknown one BAD_STATEID.
        if cx.srv.state.lock().is_expired_stateid(&sid.other) {
            NfsError::Expired
        } else {
            NfsError::BadStateid
        }
    })?;
    if cx.session_client().is_some_and(|c| c != e.client) {
        return Err(NfsError::BadStateid);
    }
    if cx.minor == 0 {
        // The client may be gone with its state only moments later; the
        // stateid check that follows then fails.
        let _ = cx.srv.state.renew(e.client);
    }
    Ok((sid, e))
}

/// The stateid's seqid against the state's current one (RFC 8881 §8.2.2):
/// an older one is NFS4ERR_OLD_STATEID, a newer one NFS4ERR_BAD_STATEID;
/// in 4.1 seqid 0 means "the current one".
pub fn check_generation(
    cx: &Cx,
    sid: &nfs4d_xdr::nfs4::stateid4,
    e: &crate::state::StateEntry,
) -> NfsResult<()> {
    if sid.seqid == 0 && cx.minor >= 1 {
        return Ok(());
    }
    match sid.seqid.cmp(&e.seqid) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(NfsError::OldStateid),
        std::cmp::Ordering::Greater => Err(NfsError::BadStateid),
    }
}

/// [`state_file`] without the type check: BAD_STATEID unless the state is
/// about the current file.
pub fn same_file(cur: &CurFh, e: &crate::state::StateEntry) -> NfsResult<()> {
    if file_key(cur) == Some(e.file) {
        Ok(())
    } else {
        Err(NfsError::BadStateid)
    }
}

/// A state must be about the current file (RFC 7530 §9.1.4.4: "If the
/// selected table entry does not match the current filehandle, return
/// NFS4ERR_BAD_STATEID"). A current filehandle that is no regular file at
/// all gets its type error instead ([`regular_file`]), as knfsd checks the
/// type before the stateid.
pub fn state_file(cx: &Cx, cur: &CurFh, e: &crate::state::StateEntry) -> NfsResult<()> {
    if file_key(cur) == Some(e.file) {
        return Ok(());
    }
    let (export, path, _) = obj(cx, cur, NfsError::IsDir)?;
    regular_file(cx, export.store().stat(path)?.kind)?;
    Err(NfsError::BadStateid)
}

/// A validated byte range from offset/length (RFC 8881 §18.10.3: length 0,
/// or a range past 2^64 - 1 that is not "to the end", is NFS4ERR_INVAL).
pub fn lock_range(offset: u64, length: u64) -> NfsResult<(u64, u64)> {
    crate::state::lock::range(offset, length)
}

/// The state layer's lock type of a wire lock type: the W variants only
/// ask the server to queue the request, which this server does not do
/// (a conflict is NFS4ERR_DENIED and the client polls).
pub fn lock_type(t: nfs4d_xdr::nfs4::nfs_lock_type4) -> crate::state::LockType {
    use nfs4d_xdr::nfs4::nfs_lock_type4::*;
    match t {
        READ_LT | READW_LT => crate::state::LockType::Read,
        WRITE_LT | WRITEW_LT => crate::state::LockType::Write,
    }
}

/// The LOCK4denied body of a conflict: the conflicting lock's range, type
/// and owner, with that owner's real client id (RFC 8881 §18.10.3).
pub fn denied(d: crate::state::lock::Denied) -> NfsError {
    use nfs4d_xdr::nfs4::nfs_lock_type4;
    NfsError::LockDenied(Box::new(nfs4d_xdr::nfs4::LOCK4denied {
        offset: d.offset,
        length: d.length,
        locktype: match d.ty {
            crate::state::LockType::Read => nfs_lock_type4::READ_LT,
            crate::state::LockType::Write => nfs_lock_type4::WRITE_LT,
        },
        owner: nfs4d_xdr::nfs4::lock_owner4 {
            clientid: d.owner.0,
            owner: d.owner.1,
        },
    }))
}

/// A variable-length opaque result body (e.g. GETXATTR's `xattrvalue4`).
/// `Vec<u8>` cannot be the body itself: xdr-codec packs a `Vec<T>` element
/// by element, four bytes per `u8`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opaque(pub Vec<u8>);

impl<Out: std::io::Write> nfs4d_xdr::codec::Pack<Out> for Opaque {
    fn pack(&self, out: &mut Out) -> nfs4d_xdr::codec::Result<usize> {
        nfs4d_xdr::codec::pack_opaque_var(&self.0, None, out)
    }
}

/// A non-reclaim OPEN or LOCK: during the grace period after a restart
/// only reclaims are granted (RFC 7530 §9.6.2, RFC 8881 §8.4.2.1), so it
/// is NFS4ERR_GRACE. And a 4.1 client must send RECLAIM_COMPLETE before
/// its first non-reclaim OPEN or LOCK; until then those answer
/// NFS4ERR_GRACE too (RFC 8881 §18.51.3).
pub fn require_reclaim_complete(cx: &Cx, client: crate::state::ClientId) -> NfsResult<()> {
    // Also while another head of a cluster is in grace (or its grace
    // state cannot be read: NFS4ERR_DELAY).
    cx.srv
        .state
        .recovery
        .new_state_allowed(cx.srv.state.now())?;
    if cx.minor == 0 {
        return Ok(());
    }
    let done = cx
        .srv
        .state
        .lock()
        .clients
        .get(&client)
        .is_some_and(|c| c.reclaim_complete);
    if done {
        Ok(())
    } else {
        Err(NfsError::Grace)
    }
}

/// A change that could defeat another client's reclaim: NFS4ERR_GRACE
/// while the grace period lasts (RFC 7530 §9.6.2, RFC 8881 §8.4.2.1: the
/// server must refuse what it cannot show to be free of conflict with a
/// lock still to be reclaimed). Nothing persists which files had opens,
/// deny modes or locks before the restart, so this server cannot show it
/// for:
///
/// * REMOVE, and RENAME (which may replace its target): the removed file
///   may be one a client is about to reclaim an open or lock on (as knfsd);
///   RENAME also expires volatile handles a reclaim would name the file by;
/// * a size change, READ or WRITE without open state (anonymous stateid;
///   WRITE with the READ bypass stateid): an unreclaimed DENY_WRITE /
///   DENY_READ share or mandatory lock would have refused it. Under a
///   stateid of this instance the I/O is fine: during grace such a stateid
///   comes from a reclaim, which settled the conflicts (RFC 8881
///   §8.4.2.1). A READ with the bypass stateid ignores share deny modes
///   and locks anyway (`StateManager::check_io`), so it is not held back.
///
/// LINK only adds a name: the file, its handle and any state on it stay,
/// so it cannot conflict with a reclaim and is not held back.
pub fn refuse_in_grace(cx: &Cx) -> NfsResult<()> {
    let r = cx.srv.state.recovery.new_state_allowed(cx.srv.state.now());
    if let Err(e) = &r {
        tracing::debug!(error = %e, "refused during the grace period: could conflict with a reclaim");
    }
    r
}

/// An OPEN was granted on `fh`: on an export whose handles expire at
/// reboot, the file is recorded in the persisted open set before the reply
/// (see `Recovery::load_open_files`), so its handle can still be used to
/// reclaim the open after a crash.
pub fn note_open_file(cx: &Cx, fh: &CurFh) {
    let Some((export, id, _)) = fh.obj() else {
        return;
    };
    if cx.srv.vfs.export(export).is_ok_and(|e| e.policy().reboot) {
        cx.srv.state.recovery.note_open((export, id.0));
    }
}

/// The last open of `file` was closed (see [`note_open_file`]).
pub fn note_closed_file(cx: &Cx, file: crate::state::FileKey) {
    if cx.srv.state.lock().file_share(file).access == 0 {
        cx.srv.state.recovery.note_closed((file.0, file.1 .0));
    }
}

/// A reclaim (OPEN CLAIM_PREVIOUS, LOCK with reclaim): allowed only during
/// grace, for a client the previous instance had confirmed, and — 4.1 —
/// before the client's RECLAIM_COMPLETE (RFC 8881 §18.51.3, RFC 7530
/// §9.6.2). See `state::recovery` for the errors.
pub fn reclaim_allowed(cx: &Cx, client: crate::state::ClientId) -> NfsResult<()> {
    let (key, done) = {
        let g = cx.srv.state.lock();
        let c = g.clients.get(&client).ok_or(NfsError::StaleClientid)?;
        (
            crate::state::recovery::record_key(c.minor, &c.owner),
            c.reclaim_complete,
        )
    };
    if done {
        return Err(NfsError::NoGrace);
    }
    match cx.srv.state.recovery.may_reclaim(cx.srv.state.now(), &key) {
        crate::state::recovery::ReclaimCheck::Allowed => Ok(()),
        crate::state::recovery::ReclaimCheck::Refused(e) => Err(e),
    }
}
