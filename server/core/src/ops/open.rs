//! OPEN (RFC 8881 §18.16, RFC 7530 §16.16): opens — and with OPEN4_CREATE
//! creates — a regular file, records the open owner's share reservation
//! and makes the file the current filehandle.
//!
//! Order of checks: the owner's client (4.0: STALE_CLIENTID/EXPIRED), the
//! 4.0 owner seqid (a retransmission is answered from the owner's reply
//! cache before anything else happens), the arguments (share modes, claim,
//! create mode and attributes), the directory and the name, the file's
//! type and permissions, and last the share reservation. A file this OPEN
//! created is removed again if a later step fails, so a failed GUARDED4 or
//! EXCLUSIVE4 create leaves nothing behind.
//!
//! CLAIM_PREVIOUS reclaims an open of the current filehandle during the
//! grace period after a restart (`state::recovery`). Not yet supported:
//! delegations (none are granted, so a reclaim asking for one gets none,
//! and CLAIM_DELEGATE_CUR/PREV and the 4.1 CLAIM_DELEG_*_FH claims get
//! NFS4ERR_NOTSUPP).

use nfs4d_xdr::nfs4::*;

use super::common;
use crate::attrs::{self, SetRequest};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{component, CurFh, Export, Node};
use crate::namespace::{Entry, FileCreate, NewFile};
use crate::state::open::{ACCESS_READ, ACCESS_WRITE};
use crate::state::{OwnerKind, Share};
use nfs4d_store::{Attrs, FileKind, Name, RelPath, SetAttrs, StoreError};

/// The share_access bits besides the access mode (RFC 8881 §18.16.3):
/// the delegation want (bits 8–15) and its "when" flags (bits 16–17).
const WANT_MASK: u32 = OPEN4_SHARE_ACCESS_WANT_DELEG_MASK;
const WHEN_MASK: u32 = OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL
    | OPEN4_SHARE_ACCESS_WANT_PUSH_DELEG_WHEN_UNCONTENDED;

/// OPEN4_SHARE_ACCESS_WANT_DELEG_TIMESTAMPS (draft-ietf-nfsv4-delstid,
/// 4.2): a wish for delegated timestamps, which this server does not
/// offer (its open_arguments attribute says so). Like any want it may go
/// unsatisfied, so it is accepted and ignored.
const WANT_DELEG_TIMESTAMPS: u32 = 0x0010_0000;

/// How the file is to be created; `None` for OPEN4_NOCREATE.
type How = Option<FileCreate>;

/// What an OPEN ended up doing to the file.
struct Opened {
    /// The file's attributes.
    attrs: Attrs,
    /// This OPEN (or the retransmitted exclusive create it repeats)
    /// created the file: no permission check, and `attrset` applies.
    created: bool,
    /// The file is new and must be removed if the OPEN fails after all.
    remove_on_failure: bool,
    /// Attributes set (`attrset`).
    attrset: Vec<u32>,
    /// Directory change info.
    cinfo: change_info4,
    /// Truncate the existing file (UNCHECKED4 with size 0).
    truncate: bool,
}

impl From<NewFile> for Opened {
    fn from(f: NewFile) -> Opened {
        Opened {
            attrs: f.attrs,
            created: f.created,
            remove_on_failure: f.remove_on_failure,
            attrset: f.attrset,
            cinfo: common::change_info(f.dir),
            truncate: f.truncate,
        }
    }
}

/// OPEN.
pub fn run(cx: &mut Cx, a: OPEN4args) -> NfsResult<OPEN4resok> {
    let client = common::state_client(cx, a.owner.clientid)?;
    let owner = (client, a.owner.owner.clone());
    if common::sequence(cx, OwnerKind::Open, &owner, a.seqid)? {
        replay_cfh(cx, &a.claim);
        return common::replayed(cx, dummy);
    }
    if cx.minor == 0 {
        // A new OPEN of an owner that never confirmed its first one: the
        // client gave up on it; start the owner afresh (knfsd does too).
        cx.srv.state.reset_unconfirmed_open_owner(&owner);
    }
    let (share, want) = share_of(cx.minor, a.share_access, a.share_deny)?;
    let how = how_of(cx.minor, a.openhow)?;
    let cur = cx.cfh()?.clone();
    let reclaim = matches!(a.claim, open_claim4::CLAIM_PREVIOUS(_));
    if reclaim {
        common::reclaim_allowed(cx, client)?;
    } else if !matches!(a.claim, open_claim4::CLAIM_DELEGATE_PREV(_)) {
        common::require_reclaim_complete(cx, client)?;
    }
    let prev_deleg = match &a.claim {
        open_claim4::CLAIM_PREVIOUS(t) => Some(*t),
        _ => None,
    };
    let (fh, seq, opened) = match a.claim {
        open_claim4::CLAIM_NULL(name) => open_named(cx, &cur, &name, &how, share)?,
        open_claim4::CLAIM_FH if cx.minor >= 1 => {
            // RFC 8881 §18.16.3: creating needs a name.
            if how.is_some() {
                return Err(NfsError::Inval);
            }
            let opened = open_fh(cx, &cur, share)?;
            (cur.clone(), 0, opened)
        }
        // Claims 4.0 does not define are undecodable there.
        open_claim4::CLAIM_FH
        | open_claim4::CLAIM_DELEG_PREV_FH
        | open_claim4::CLAIM_DELEG_CUR_FH(_)
            if cx.minor == 0 =>
        {
            return Err(NfsError::BadXdr)
        }
        // A reclaim of an open of the current file (RFC 7530 §16.16.5,
        // RFC 8881 §18.16.3); it cannot create the file.
        open_claim4::CLAIM_PREVIOUS(_) => {
            if how.is_some() {
                return Err(NfsError::Inval);
            }
            let opened = open_fh(cx, &cur, share)?;
            (cur.clone(), 0, opened)
        }
        // An open the client performed locally under its delegation,
        // reported to the server while the delegation is being returned
        // (RFC 8881 §10.4.4, RFC 7530 §10.4.4).
        open_claim4::CLAIM_DELEGATE_CUR(d) => {
            if how.is_some() {
                return Err(NfsError::Inval);
            }
            let held = delegation_file(cx, client, &d.delegate_stateid)?;
            let (fh, seq, opened) = open_named(cx, &cur, &d.file, &None, share)?;
            if common::file_key(&fh) != Some(held) {
                return Err(NfsError::BadStateid);
            }
            (fh, seq, opened)
        }
        open_claim4::CLAIM_DELEG_CUR_FH(sid) => {
            if how.is_some() {
                return Err(NfsError::Inval);
            }
            let held = delegation_file(cx, client, &sid)?;
            if common::file_key(&cur) != Some(held) {
                return Err(NfsError::BadStateid);
            }
            let opened = open_fh(cx, &cur, share)?;
            (cur.clone(), 0, opened)
        }
        // Delegations of an earlier client instance are not kept for it
        // to claim (RFC 8881 §10.2.1 makes this a MAY; the server then
        // needs no DELEGPURGE either).
        open_claim4::CLAIM_DELEGATE_PREV(_)
        | open_claim4::CLAIM_DELEG_PREV_FH
        | open_claim4::CLAIM_FH => return Err(NfsError::NotSupp),
    };
    match finish_open(cx, &fh, &owner, client, share, &opened, reclaim) {
        Ok((stateid, confirmed)) => {
            if seq > 0 {
                cx.need_durable(seq);
            }
            common::note_open_file(cx, &fh);
            cx.cfh = Some(fh);
            cx.cur_stateid = Some(stateid.clone());
            let mut rflags = OPEN4_RESULT_LOCKTYPE_POSIX;
            if !confirmed {
                rflags |= OPEN4_RESULT_CONFIRM;
            }
            let delegation = delegation(cx, client, share, want, prev_deleg, &opened.attrs);
            Ok(OPEN4resok {
                stateid,
                cinfo: opened.cinfo,
                rflags,
                attrset: opened.attrset,
                delegation,
            })
        }
        // During grace only reclaims are granted, so a share conflict is
        // with another client's reclaim (RFC 7530 §16.16.6).
        Err(NfsError::ShareDenied) if reclaim => Err(NfsError::ReclaimConflict),
        Err(err) => {
            if opened.remove_on_failure {
                remove_new(cx, &fh);
            }
            Err(err)
        }
    }
}

/// Validates share_access and share_deny (RFC 8881 §18.16.4, RFC 7530
/// §16.16.6: anything but READ/WRITE/BOTH and NONE/READ/WRITE/BOTH is
/// NFS4ERR_INVAL). 4.1 clients may add delegation wants, which are
/// accepted and returned separately; 4.0 has none.
pub(super) fn share_of(minor: u32, access: u32, deny: u32) -> NfsResult<(Share, u32)> {
    let access = if minor >= 2 {
        access & !WANT_DELEG_TIMESTAMPS
    } else {
        access
    };
    let mode = access & !(WANT_MASK | WHEN_MASK);
    let want = access & WANT_MASK;
    let extra = access & (WANT_MASK | WHEN_MASK);
    if !(ACCESS_READ..=ACCESS_READ | ACCESS_WRITE).contains(&mode) || deny > OPEN4_SHARE_DENY_BOTH {
        return Err(NfsError::Inval);
    }
    if extra != 0 && (minor == 0 || want > OPEN4_SHARE_ACCESS_WANT_CANCEL) {
        return Err(NfsError::Inval);
    }
    Ok((Share { access: mode, deny }, want))
}

/// Decodes `openhow`. EXCLUSIVE4_1 exists only in 4.1 (undecodable in
/// 4.0); its attributes must be in suppattr_exclcreat (RFC 8881 §18.16.3:
/// NFS4ERR_INVAL otherwise).
fn how_of(minor: u32, h: openflag4) -> NfsResult<How> {
    let attrs_of = |f: &fattr4| attrs::decode_set(f, minor).map_err(NfsError::from_status);
    Ok(Some(match h {
        openflag4::default(_) => return Ok(None),
        openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(f)) => FileCreate::Unchecked(attrs_of(&f)?),
        openflag4::OPEN4_CREATE(createhow4::GUARDED4(f)) => FileCreate::Guarded(attrs_of(&f)?),
        openflag4::OPEN4_CREATE(createhow4::EXCLUSIVE4(v)) => {
            FileCreate::Exclusive(v, SetRequest::default())
        }
        openflag4::OPEN4_CREATE(createhow4::EXCLUSIVE4_1(_)) if minor == 0 => {
            return Err(NfsError::BadXdr)
        }
        openflag4::OPEN4_CREATE(createhow4::EXCLUSIVE4_1(c)) => {
            let req = attrs_of(&c.cva_attrs)?;
            let allowed = attrs::suppattr_exclcreat();
            let outside = c
                .cva_attrs
                .attrmask
                .iter()
                .enumerate()
                .any(|(i, w)| w & !allowed.get(i).copied().unwrap_or(0) != 0);
            if outside {
                return Err(NfsError::Inval);
            }
            FileCreate::Exclusive(c.cva_verf, req)
        }
    }))
}

/// The status of OPEN for an object that is not a regular file: a
/// directory is NFS4ERR_ISDIR; in 4.1 a symlink is NFS4ERR_SYMLINK and
/// anything else NFS4ERR_WRONG_TYPE (RFC 8881 §18.16.4); 4.0 answers
/// NFS4ERR_SYMLINK for symlinks and special files alike (RFC 7530
/// §16.16.6).
fn open_type(minor: u32, kind: FileKind) -> NfsResult<()> {
    match kind {
        FileKind::Regular => Ok(()),
        FileKind::Directory => Err(NfsError::IsDir),
        FileKind::Symlink => Err(NfsError::Symlink),
        _ if minor == 0 => Err(NfsError::Symlink),
        _ => Err(NfsError::WrongType),
    }
}

/// CLAIM_NULL: `name` in the current directory, created as `how` says.
fn open_named(
    cx: &mut Cx,
    cur: &CurFh,
    name: &[u8],
    how: &How,
    share: Share,
) -> NfsResult<(CurFh, u64, Opened)> {
    let name = component(name)?;
    let creating = how.is_some();
    let (e, dir_path, dir_id) = match &cur.node {
        Node::Pseudo(n) => {
            // The pseudo filesystem is read-only and holds only directories.
            if creating || share.access & ACCESS_WRITE != 0 {
                return Err(NfsError::Rofs);
            }
            return Err(match common::pseudo_child(cx, *n, name.as_bytes()) {
                Some(_) => NfsError::IsDir,
                None => NfsError::NoEnt,
            });
        }
        Node::Obj { .. } => common::obj(cx, cur, NfsError::Rofs)?,
    };
    let dir = common::stat_obj(cx, e, dir_id, dir_path)?;
    if dir.kind != FileKind::Directory {
        // RFC 8881 §18.16.4: "If the current filehandle is not a
        // directory, the error NFS4ERR_NOTDIR will be returned."
        return Err(NfsError::NotDir);
    }
    common::require(cx, &dir, common::MAY_EXEC)?;
    if share.access & ACCESS_WRITE != 0 || creating {
        common::writable(cx, e)?;
    }
    let at = Entry {
        dir_id,
        dir: dir_path,
        name: &name,
    };
    // A create is tried before any lookup, so a new name (the usual case)
    // is not looked up first. A name that is taken, or a caller who may
    // only open what exists, takes the lookup.
    let caller = common::caller(cx, e);
    if let Some(how) = how {
        if let Some(made) = cx
            .srv
            .namespace()
            .open_create_new(&caller, e, at, &dir, how)?
        {
            return issue(cx, e, dir_id, dir_path, &name, made.into(), share);
        }
    }
    let existing = match e.store().lookup(dir_path, &name) {
        Ok(a) => Some(a),
        Err(StoreError::NotFound) => None,
        Err(err) => return Err(err.into()),
    };
    let opened = match (existing, how) {
        (None, None) => return Err(NfsError::NoEnt),
        (Some(a), None) => Opened {
            attrset: Vec::new(),
            cinfo: common::cinfo(&dir, &dir),
            attrs: a,
            created: false,
            remove_on_failure: false,
            truncate: false,
        },
        (existing, Some(how)) => cx
            .srv
            .namespace()
            .open_create(&caller, e, at, &dir, existing, how)?
            .into(),
    };
    issue(cx, e, dir_id, dir_path, &name, opened, share)
}

/// The handle of the file OPEN opened or created as `name` in `dir_path`,
/// after the open's own checks; a file this OPEN created is removed again
/// if they fail.
fn issue(
    cx: &Cx,
    e: &Export,
    dir_id: nfs4d_fhmap::ObjectId,
    dir_path: &RelPath,
    name: &Name,
    opened: Opened,
    share: Share,
) -> NfsResult<(CurFh, u64, Opened)> {
    let checked = open_type(cx.minor, opened.attrs.kind)
        .and_then(|()| access_check(cx, &opened, share))
        .and_then(|()| {
            cx.srv
                .vfs
                .child_fh(e.id, dir_id, dir_path, name, &opened.attrs)
        });
    match checked {
        Ok((fh, seq)) => Ok((fh, seq, opened)),
        Err(err) => {
            if opened.remove_on_failure {
                let _ = cx.srv.namespace().discard_new_file(e, dir_path, name);
            }
            Err(err)
        }
    }
}

/// CLAIM_FH (4.1): the current filehandle is the file.
fn open_fh(cx: &Cx, cur: &CurFh, share: Share) -> NfsResult<Opened> {
    let (e, path, _) = common::obj(cx, cur, NfsError::IsDir)?;
    let a = e.store().stat(path)?;
    open_type(cx.minor, a.kind)?;
    if share.access & ACCESS_WRITE != 0 {
        common::writable(cx, e)?;
    }
    let opened = Opened {
        attrs: a,
        created: false,
        remove_on_failure: false,
        attrset: Vec::new(),
        // No directory is involved.
        cinfo: change_info4 {
            atomic: false,
            before: 0,
            after: 0,
        },
        truncate: false,
    };
    access_check(cx, &opened, share)?;
    Ok(opened)
}

/// Permission to open an existing file (RFC 8881 §18.16.4: "If the
/// requester's READ or WRITE operation is not authorized (depending on the
/// share_access value), the server MUST return NFS4ERR_ACCESS"), by POSIX
/// mode bits. Execute permission is enough for read access, as for a
/// local exec: a client runs an execute-only program by reading it.
/// Truncation needs write access to be requested (knfsd returns
/// NFS4ERR_INVAL otherwise) and write permission.
fn access_check(cx: &Cx, opened: &Opened, share: Share) -> NfsResult<()> {
    if opened.truncate && share.access & ACCESS_WRITE == 0 {
        return Err(NfsError::Inval);
    }
    if opened.created {
        return Ok(());
    }
    let a = &opened.attrs;
    if share.access & ACCESS_READ != 0
        && common::allowed(cx, a, common::MAY_READ | common::MAY_EXEC) == 0
    {
        return Err(NfsError::Access);
    }
    if share.access & ACCESS_WRITE != 0 {
        common::require(cx, a, common::MAY_WRITE)?;
    }
    Ok(())
}

/// Records the open (share reservation and stateid) and truncates if
/// asked. Returns the stateid and whether the owner is confirmed.
fn finish_open(
    cx: &Cx,
    fh: &CurFh,
    owner: &crate::state::OwnerKey,
    client: crate::state::ClientId,
    share: Share,
    opened: &Opened,
    reclaim: bool,
) -> NfsResult<(stateid4, bool)> {
    let file = common::file_key(fh).ok_or(NfsError::ServerFault)?;
    // 4.1 has no OPEN_CONFIRM (RFC 8881 §18.16.3: OPEN4_RESULT_CONFIRM
    // MUST NOT be returned); a 4.0 owner confirms its first OPEN, but not
    // a reclaim (RFC 7530 §9.1.11: "MUST NOT require confirmation on a
    // reclaim-type open").
    let confirmed = cx.minor >= 1 || reclaim || cx.srv.state.open_owner_confirmed(owner);
    let o = cx
        .srv
        .state
        .open(client, owner.clone(), file, share, confirmed)?;
    if opened.truncate {
        let (e, path, _) = common::obj(cx, fh, NfsError::IsDir)?;
        let set = SetAttrs {
            size: Some(0),
            ..SetAttrs::default()
        };
        if let Err(err) = e.store().setattr(path, &set) {
            if o.new {
                cx.srv.state.forget_open(&o.stateid.other);
            }
            return Err(err.into());
        }
    }
    Ok((o.stateid, confirmed))
}

/// Removes a file this OPEN created, after a later step failed.
fn remove_new(cx: &Cx, fh: &CurFh) {
    let Some((export, _, path)) = fh.obj() else {
        return;
    };
    let Ok(e) = cx.srv.vfs.export(export) else {
        return;
    };
    if let Some((dir, name)) = path.split_last() {
        if let Err(err) = cx.srv.namespace().discard_new_file(e, &dir, name) {
            tracing::warn!(error = %err, path = %path, "OPEN failed but the file it created could not be removed");
        }
    }
}

/// The delegation stateid a CLAIM_DELEGATE_CUR / CLAIM_DELEG_CUR_FH open
/// names: this client's, held or being recalled; returns its file.
fn delegation_file(
    cx: &Cx,
    client: crate::state::ClientId,
    sid: &stateid4,
) -> NfsResult<crate::state::FileKey> {
    let g = cx.srv.state.lock();
    let e = g.check_stateid(sid, cx.srv.state.boot, cx.minor)?;
    if e.client != client || !matches!(e.kind, crate::state::StateKind::Deleg(_)) {
        return Err(NfsError::BadStateid);
    }
    Ok(e.file)
}

/// The delegation part of the OPEN result (RFC 8881 §10.4, §18.16.3). A
/// reclaim (`prev` set) gets back the delegation it names; any other open
/// gets one when the export's policy, the client's callback path and the
/// file's other users allow. 4.1 clients that expressed a want and get
/// none learn why (OPEN_DELEGATE_NONE_EXT), as the RFC requires of a
/// server supporting the want flags; everyone else plain
/// OPEN_DELEGATE_NONE.
pub(super) fn delegation(
    cx: &Cx,
    client: crate::state::ClientId,
    share: Share,
    want: u32,
    prev: Option<open_delegation_type4>,
    attrs: &Attrs,
) -> open_delegation4 {
    use crate::state::deleg::{DelegType, NoDeleg, Request};
    let Some(cur) = cx.cfh.as_ref() else {
        return open_delegation4::OPEN_DELEGATE_NONE;
    };
    let (Some(file), Some((export, _, _))) = (common::file_key(cur), cur.obj()) else {
        return open_delegation4::OPEN_DELEGATE_NONE;
    };
    let Ok(e) = cx.srv.vfs.export(export) else {
        return open_delegation4::OPEN_DELEGATE_NONE;
    };
    let policy = e.cfg.delegations;
    let change = crate::namespace::vfs::obj_attrs(attrs).change;
    let st = &cx.srv.state;
    let granted = match prev {
        Some(open_delegation_type4::OPEN_DELEGATE_READ) => Ok(st.reclaim_delegation(
            client,
            file,
            DelegType::Read,
            policy,
            cur.fh.clone(),
            change,
        )),
        Some(open_delegation_type4::OPEN_DELEGATE_WRITE) => Ok(st.reclaim_delegation(
            client,
            file,
            DelegType::Write,
            policy,
            cur.fh.clone(),
            change,
        )),
        Some(_) => return no_delegation(cx.minor, want, NoDeleg::NotWanted),
        None => {
            let callback_ok = st.lock().callback_ok(client);
            let r = Request {
                access: share.access,
                want,
                policy,
                callback_ok,
            };
            st.grant_delegation(client, file, r, cur.fh.clone(), change)
        }
    };
    let g = match granted {
        Ok(g) => g,
        Err(why) => return no_delegation(cx.minor, want, why),
    };
    // A local process already using the file in a conflicting way keeps
    // the delegation from being granted after all (a reclaim keeps it).
    let Some((_, _, path)) = cur.obj() else {
        return open_delegation4::OPEN_DELEGATE_NONE;
    };
    if prev.is_none()
        && !cx
            .srv
            .lease_for_delegation(e, path, file, g.ty == DelegType::Write)
    {
        let _ = st.return_delegation(&g.stateid.other);
        return no_delegation(cx.minor, want, NoDeleg::Contention);
    }
    // No access rights are promised: the client checks with ACCESS before
    // opening locally (an empty ACE grants nothing, RFC 8881 §10.4.1).
    let permissions = nfsace4::default();
    match g.ty {
        DelegType::Read => open_delegation4::OPEN_DELEGATE_READ(open_read_delegation4 {
            stateid: g.stateid,
            recall: g.recall,
            permissions,
        }),
        DelegType::Write => open_delegation4::OPEN_DELEGATE_WRITE(open_write_delegation4 {
            stateid: g.stateid,
            recall: g.recall,
            // The client may cache writes up to any size: the server has
            // no quota to protect (RFC 8881 §10.4.1 space_limit).
            space_limit: nfs_space_limit4::NFS_LIMIT_SIZE(u64::MAX),
            permissions,
        }),
    }
}

/// No delegation. 4.1 clients that asked for one (or for none) are told
/// why with OPEN_DELEGATE_NONE_EXT (RFC 8881 §18.16.3); others get plain
/// OPEN_DELEGATE_NONE.
fn no_delegation(minor: u32, want: u32, why: crate::state::deleg::NoDeleg) -> open_delegation4 {
    use crate::state::deleg::NoDeleg;
    if minor == 0 || want == OPEN4_SHARE_ACCESS_WANT_NO_PREFERENCE {
        return open_delegation4::OPEN_DELEGATE_NONE;
    }
    let why = match (want, why) {
        (OPEN4_SHARE_ACCESS_WANT_NO_DELEG, _) | (_, NoDeleg::NotWanted) => {
            open_none_delegation4::default(why_no_delegation4::WND4_NOT_WANTED)
        }
        (OPEN4_SHARE_ACCESS_WANT_CANCEL, _) => {
            open_none_delegation4::default(why_no_delegation4::WND4_CANCELLED)
        }
        (_, NoDeleg::Contention) => open_none_delegation4::WND4_CONTENTION(false),
        (_, NoDeleg::Resource) => open_none_delegation4::WND4_RESOURCE(false),
        (_, NoDeleg::NoUpgrade) => {
            open_none_delegation4::default(why_no_delegation4::WND4_NOT_SUPP_UPGRADE)
        }
        (_, NoDeleg::NoCallback | NoDeleg::NotSupported) => {
            open_none_delegation4::default(why_no_delegation4::WND4_NOT_SUPP_FTYPE)
        }
    };
    open_delegation4::OPEN_DELEGATE_NONE_EXT(why)
}

/// A retransmitted 4.0 OPEN is answered from the owner's reply cache; the
/// operations after it in the COMPOUND (GETFH, GETATTR) need the opened
/// file as the current filehandle, so a CLAIM_NULL name is looked up again
/// (nothing is created or opened). Best effort: on failure the current
/// filehandle stays.
fn replay_cfh(cx: &mut Cx, claim: &open_claim4) {
    let open_claim4::CLAIM_NULL(name) = claim else {
        return;
    };
    let Ok(cur) = cx.cfh().cloned() else { return };
    let Ok(name) = component(name) else { return };
    let Some((export, dir_id, dir_path)) = cur.obj() else {
        return;
    };
    let Ok(e) = cx.srv.vfs.export(export) else {
        return;
    };
    let Ok(a) = e.store().lookup(dir_path, &name) else {
        return;
    };
    if let Ok((fh, seq)) = cx.srv.vfs.child_fh(export, dir_id, dir_path, &name, &a) {
        cx.need_durable(seq);
        cx.cfh = Some(fh);
    }
}

/// A placeholder body for a replayed success (the cached bytes are sent).
fn dummy() -> OPEN4resok {
    OPEN4resok {
        stateid: stateid4::default(),
        cinfo: change_info4 {
            atomic: false,
            before: 0,
            after: 0,
        },
        rflags: 0,
        attrset: Vec::new(),
        delegation: open_delegation4::OPEN_DELEGATE_NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_validation() {
        assert!(share_of(0, 0, 0).is_err());
        assert!(share_of(0, 4, 0).is_err());
        assert!(share_of(0, 1, 4).is_err());
        assert_eq!(
            share_of(0, 3, 3).map(|(s, w)| (s.access, s.deny, w)),
            Ok((3, 3, 0))
        );
        // Want flags: 4.1 only, and only defined values.
        assert!(share_of(0, 1 | OPEN4_SHARE_ACCESS_WANT_NO_DELEG, 0).is_err());
        assert_eq!(
            share_of(1, 1 | OPEN4_SHARE_ACCESS_WANT_NO_DELEG, 0).map(|(s, w)| (s.access, w)),
            Ok((1, OPEN4_SHARE_ACCESS_WANT_NO_DELEG))
        );
        assert!(share_of(1, 1 | 0x0600, 0).is_err());
        assert!(share_of(1, 1 | 0x40000, 0).is_err());
        // The delegated-timestamps want exists from 4.2 on, and is ignored.
        assert!(share_of(1, 1 | WANT_DELEG_TIMESTAMPS, 0).is_err());
        assert_eq!(
            share_of(2, 3 | WANT_DELEG_TIMESTAMPS, 0).map(|(s, w)| (s.access, w)),
            Ok((3, 0))
        );
        assert!(share_of(
            1,
            2 | OPEN4_SHARE_ACCESS_WANT_SIGNAL_DELEG_WHEN_RESRC_AVAIL,
            0
        )
        .is_ok());
    }

    #[test]
    fn delegation_answer() {
        use crate::state::deleg::NoDeleg;
        assert_eq!(
            no_delegation(0, OPEN4_SHARE_ACCESS_WANT_READ_DELEG, NoDeleg::Contention),
            open_delegation4::OPEN_DELEGATE_NONE
        );
        assert_eq!(
            no_delegation(1, 0, NoDeleg::Contention),
            open_delegation4::OPEN_DELEGATE_NONE
        );
        assert_eq!(
            no_delegation(1, OPEN4_SHARE_ACCESS_WANT_NO_DELEG, NoDeleg::NotWanted),
            open_delegation4::OPEN_DELEGATE_NONE_EXT(open_none_delegation4::default(
                why_no_delegation4::WND4_NOT_WANTED
            ))
        );
        assert_eq!(
            no_delegation(1, OPEN4_SHARE_ACCESS_WANT_WRITE_DELEG, NoDeleg::Contention),
            open_delegation4::OPEN_DELEGATE_NONE_EXT(open_none_delegation4::WND4_CONTENTION(false))
        );
        assert_eq!(
            no_delegation(1, OPEN4_SHARE_ACCESS_WANT_ANY_DELEG, NoDeleg::Resource),
            open_delegation4::OPEN_DELEGATE_NONE_EXT(open_none_delegation4::WND4_RESOURCE(false))
        );
        assert_eq!(
            no_delegation(1, OPEN4_SHARE_ACCESS_WANT_CANCEL, NoDeleg::Contention),
            open_delegation4::OPEN_DELEGATE_NONE_EXT(open_none_delegation4::default(
                why_no_delegation4::WND4_CANCELLED
            ))
        );
    }
}
