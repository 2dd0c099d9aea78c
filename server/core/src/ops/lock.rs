//! LOCK (RFC 8881 §18.10, RFC 7530 §16.10): takes a byte-range lock for a
//! lock owner, creating its lock stateid from an open stateid the first
//! time (`new_lock_owner`).
//!
//! Locks follow POSIX semantics (OPEN4_RESULT_LOCKTYPE_POSIX): a lock
//! owner's ranges merge and split, and a lock over its own lock of the
//! other type up- or downgrades it. The blocking types READW_LT/WRITEW_LT
//! are not queued: a conflict is NFS4ERR_DENIED and the client polls
//! (RFC 8881 §9.6 allows this).

use nfs4d_xdr::nfs4::{locker4, stateid4, LOCK4args, LOCK4resok};

use super::common;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::CurFh;
use crate::state::open::ACCESS_WRITE;
use crate::state::oslock::Prepared;
use crate::state::{ClientId, FileKey, LockType, OwnerKey, OwnerKind, StateKind};
use nfs4d_store::{LockFile, StoreError, LOCAL_LOCK_MAX};

/// What the locker resolves to.
struct Locker {
    client: ClientId,
    file: FileKey,
    owner: OwnerKey,
    /// The open stateid's `other` the lock state hangs off.
    open: [u8; 12],
    /// The open's share access.
    access: u32,
}

/// LOCK.
///
/// With `new_lock_owner` (open_to_lock_owner4) the open stateid must be a
/// confirmed open stateid of the current file; 4.0 checks the open
/// owner's seqid (`open_seqid`) and caches the reply there, like knfsd,
/// and starts or continues the lock owner's sequence at `lock_seqid`
/// (RFC 7530 §16.10.4; a lock owner that already has a lock stateid for
/// the file is NFS4ERR_BAD_SEQID there). Without it (exist_lock_owner4)
/// the lock stateid must be one of the current file and 4.0 checks the
/// lock owner's seqid. 4.1 ignores seqids and the clientid in the owner.
///
/// Then: a reclaim must be allowed (`common::reclaim_allowed`: grace
/// period, known client) and a conflict is NFS4ERR_RECLAIM_CONFLICT; a
/// non-reclaim during grace is NFS4ERR_GRACE. The range must
/// be valid (NFS4ERR_INVAL), a write lock needs an open for write
/// (NFS4ERR_OPENMODE, RFC 8881 §18.10.4 leaves this to POSIX semantics),
/// and a conflicting lock of another owner is NFS4ERR_DENIED with its
/// description.
pub fn run(cx: &mut Cx, a: LOCK4args) -> NfsResult<LOCK4resok> {
    let mut new_owner = None;
    let r = lock(cx, a, &mut new_owner);
    // A new lock owner exists only once a lock was granted: after a
    // refusal the client sends new_lock_owner again with its initial
    // lock_seqid (RFC 7530 §16.10.5), which must not look like a replay.
    if let (Some((owner, seqid)), Ok(_)) = (new_owner, &r) {
        cx.srv.state.advance_lock_seqid(owner, seqid);
    }
    r
}

fn lock(
    cx: &mut Cx,
    a: LOCK4args,
    new_owner: &mut Option<(OwnerKey, u32)>,
) -> NfsResult<LOCK4resok> {
    let cur = cx.cfh()?.clone();
    let replay = || LOCK4resok {
        lock_stateid: stateid4::default(),
    };
    let l = match a.locker {
        locker4::TRUE(otl) => {
            let (sid, e) = common::find_state(cx, &otl.open_stateid)?;
            let StateKind::Open(o) = &e.kind else {
                return Err(NfsError::BadStateid);
            };
            let owner = (e.client, otl.lock_owner.owner);
            if cx.minor == 0 && otl.lock_owner.clientid != e.client {
                // A lock owner of another client than the open's.
                cx.srv.state.renew(otl.lock_owner.clientid)?;
                return Err(NfsError::BadStateid);
            }
            if common::sequence(cx, OwnerKind::Open, &o.owner, otl.open_seqid)? {
                return common::replayed(cx, replay);
            }
            if cx.minor == 0 {
                // The lock_seqid of a new lock owner is its initial value;
                // only a lock owner that already holds lock state on this
                // file cannot be "new" again.
                // An owner that already holds a lock stateid for the file
                // keeps using it (knfsd does the same; pynfs LOCK24).
                *new_owner = Some((owner.clone(), otl.lock_seqid));
            }
            common::check_generation(cx, &sid, &e)?;
            common::state_file(cx, &cur, &e)?;
            if e.unconfirmed {
                return Err(NfsError::BadStateid);
            }
            Locker {
                client: e.client,
                file: e.file,
                owner,
                open: sid.other,
                access: o.share.access,
            }
        }
        locker4::FALSE(el) => {
            let (sid, e) = common::find_state(cx, &el.lock_stateid)?;
            let StateKind::Lock { owner, open } = &e.kind else {
                return Err(NfsError::BadStateid);
            };
            if common::sequence(cx, OwnerKind::Lock, owner, el.lock_seqid)? {
                return common::replayed(cx, replay);
            }
            common::check_generation(cx, &sid, &e)?;
            common::state_file(cx, &cur, &e)?;
            let access = match cx.srv.state.state_entry(open).map(|s| s.kind) {
                Some(StateKind::Open(o)) => o.share.access,
                _ => return Err(NfsError::BadStateid),
            };
            Locker {
                client: e.client,
                file: e.file,
                owner: owner.clone(),
                open: *open,
                access,
            }
        }
    };
    if a.reclaim {
        common::reclaim_allowed(cx, l.client)?;
    } else {
        common::require_reclaim_complete(cx, l.client)?;
    }
    let (start, end) = common::lock_range(a.offset, a.length)?;
    let ty = common::lock_type(a.locktype);
    if ty == LockType::Write && l.access & ACCESS_WRITE == 0 {
        return Err(NfsError::OpenMode);
    }
    let prepared = prepare(cx, &cur, &l, start, ty)?;
    match cx
        .srv
        .state
        .lock_range_os(l.client, l.owner, l.file, l.open, start, end, ty, prepared)
    {
        Ok(lock_stateid) => {
            cx.cur_stateid = Some(lock_stateid.clone());
            Ok(LOCK4resok { lock_stateid })
        }
        // During grace only reclaims are granted: a conflict is with
        // another reclaim (RFC 7530 §16.10.5, RFC 8881 §18.10.4).
        Err(Ok(_)) if a.reclaim => Err(NfsError::ReclaimConflict),
        Err(Ok(d)) => Err(common::denied(d)),
        Err(Err(err)) => Err(err),
    }
}

/// The kernel side of a lock, made ready before the state table is locked
/// (docs/locking.md). An owner without a lock description for the file
/// gets a new one: read-write when its open allows writing, so it can
/// carry write locks, read-only otherwise (a read-only open can only take
/// read locks, and a description open for writing would break a read
/// lease on the file). An owner whose description is read-only and that
/// now asks for a write lock (its open was upgraded) gets a read-write one
/// to move its locks to. Nothing is opened for a range the kernel cannot
/// hold (starting past `LOCAL_LOCK_MAX`). The bound on descriptions
/// (`limits.max_lock_files`) is applied by the state layer, under its
/// lock; a description opened here and then refused is simply closed.
fn prepare(cx: &Cx, cur: &CurFh, l: &Locker, start: u64, ty: LockType) -> NfsResult<Prepared> {
    if start > LOCAL_LOCK_MAX {
        return Ok(Prepared::NfsOnly);
    }
    let reopen = match cx.srv.state.lock_file_writable(&l.owner, l.file) {
        Some(true) => return Ok(Prepared::Held),
        Some(false) if ty == LockType::Read => return Ok(Prepared::Held),
        Some(false) => true,
        None => false,
    };
    let write = l.access & ACCESS_WRITE != 0;
    Ok(match open_lock_file(cx, cur, write)? {
        Some(f) if reopen => Prepared::Reopen(f),
        Some(f) => Prepared::Fresh(f),
        None => Prepared::NfsOnly,
    })
}

/// A new lock file of the current file (`Store::open_lock_file`). An open
/// that conflicts with a lease on the backing file fails at once while the
/// store asks the lease holder to let go: the store says `Transient`, the
/// client gets NFS4ERR_DELAY and retries (RFC 7530 §13.1.1.3, RFC 5661/8881
/// §15.1.1.3).
pub(super) fn open_lock_file(
    cx: &Cx,
    cur: &CurFh,
    write: bool,
) -> NfsResult<Option<Box<dyn LockFile>>> {
    let (e, path, _) = common::obj(cx, cur, NfsError::IsDir)?;
    let opened = e.store().open_lock_file(path, write);
    match opened {
        Err(StoreError::Transient(_)) => {
            tracing::info!(
                export = e.id,
                "lock description waits for a lease on the backing file to be broken"
            );
            Err(NfsError::Delay)
        }
        r => Ok(r?),
    }
}
