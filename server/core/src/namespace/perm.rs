//! The POSIX permission rules of namespace changes and file access.
//!
//! The server runs privileged and its stores act with the server's own
//! rights, so nothing below it checks for the client's user: the rules a
//! local `open(2)`, `creat(2)`, `mkdir(2)`, `mknod(2)`, `unlink(2)`,
//! `rename(2)` or `link(2)` would apply for that user are applied here, by
//! mode bits — as knfsd leaves them to the kernel's VFS, which checks them
//! with the caller's fsuid. The statuses are those the RFCs list for each
//! operation (NFS4ERR_ACCESS where an operation has no NFS4ERR_PERM).

use crate::attrs::{self, SetRequest};
use crate::error::{NfsError, NfsResult};
use crate::idmap::IdMap;
use crate::namespace::vfs::Export;
use crate::namespace::Caller;
use nfs4d_store::{Attrs, FileKind, Owner, RelPath};

/// Read permission.
pub const MAY_READ: u32 = 4;
/// Write permission.
pub const MAY_WRITE: u32 = 2;
/// Execute / search permission.
pub const MAY_EXEC: u32 = 1;

/// `S_ISGID`.
pub const MODE_SETGID: u32 = 0o2000;
/// `S_ISVTX` (sticky).
pub const MODE_STICKY: u32 = 0o1000;

/// uid and gid of AUTH_NONE callers (nobody).
pub const NOBODY: u32 = 65534;

/// Who a request acts as, after the export's squashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User<'a> {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: &'a [u32],
}

impl User<'_> {
    /// The user of requests without a Unix credential (AUTH_NONE).
    pub const NOBODY: User<'static> = User {
        uid: NOBODY,
        gid: NOBODY,
        groups: &[],
    };

    /// Whether this user is a member of group `gid` (primary or
    /// supplementary).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    /// Root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// The owner of objects this user creates.
    pub fn owner(&self) -> Owner {
        Owner {
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// The subset of `want` (rwx bits) the user has on an object with
/// attributes `a`, by POSIX mode rules. Root may do everything except
/// execute files with no execute bit (as POSIX).
pub fn allowed(u: &User, a: &Attrs, want: u32) -> u32 {
    if u.is_root() {
        let any_x = a.mode & 0o111 != 0 || a.kind == FileKind::Directory;
        return if any_x { want } else { want & !MAY_EXEC };
    }
    let bits = if u.uid == a.uid {
        (a.mode >> 6) & 7
    } else if u.in_group(a.gid) {
        (a.mode >> 3) & 7
    } else {
        a.mode & 7
    };
    want & bits
}

/// Fails with NFS4ERR_ACCESS unless all of `want` is allowed.
pub fn require(u: &User, a: &Attrs, want: u32) -> NfsResult<()> {
    if allowed(u, a, want) == want {
        Ok(())
    } else {
        Err(NfsError::Access)
    }
}

/// Fails with NFS4ERR_ROFS when the request may only read the export (the
/// export is read-only, for everybody or for the client's address).
pub fn writable(c: &Caller) -> NfsResult<()> {
    if c.read_only {
        Err(NfsError::Rofs)
    } else {
        Ok(())
    }
}

/// Checks that a directory may be modified by the caller: the export is
/// writable for it (NFS4ERR_ROFS), `dir` is a directory (NFS4ERR_NOTDIR)
/// and the caller has write + search permission on it (NFS4ERR_ACCESS).
/// Returns the directory's attributes (change_info4's `before`).
pub fn dir_modifiable(c: &Caller, e: &Export, dir: &RelPath) -> NfsResult<Attrs> {
    dir_modifiable_as(c, e.store().stat(dir)?)
}

/// [`dir_modifiable`] on attributes the caller has just read (OPEN reads
/// the directory's before it looks the name up).
pub fn dir_modifiable_as(c: &Caller, a: Attrs) -> NfsResult<Attrs> {
    writable(c)?;
    if a.kind != FileKind::Directory {
        return Err(NfsError::NotDir);
    }
    require(&c.user, &a, MAY_WRITE | MAY_EXEC)?;
    Ok(a)
}

/// The sticky-directory rule (POSIX `rename`/`unlink`): in a directory
/// with the sticky bit only root, the directory's owner and the entry's
/// owner may remove or replace the entry. REMOVE and RENAME have no
/// NFS4ERR_PERM in their error lists (RFC 8881 §15.2), so this is
/// NFS4ERR_ACCESS.
pub fn sticky_allows(u: &User, dir: &Attrs, victim: &Attrs) -> NfsResult<()> {
    if dir.mode & MODE_STICKY == 0 || u.is_root() || u.uid == dir.uid || u.uid == victim.uid {
        Ok(())
    } else {
        Err(NfsError::Access)
    }
}

/// Linux's `fs.protected_hardlinks` rule (the default on current
/// distributions), which knfsd is subject to and this privileged server
/// must apply itself: a caller other than root or the file's owner may
/// only link a regular file they can read and write that is neither
/// set-user-ID nor executable set-group-ID. LINK has no NFS4ERR_PERM in
/// its error list (RFC 8881 §15.2): NFS4ERR_ACCESS.
pub fn protected_hardlink(u: &User, src: &Attrs) -> NfsResult<()> {
    if u.is_root() || u.uid == src.uid {
        return Ok(());
    }
    let setuid = src.mode & 0o4000 != 0;
    let exec_setgid = src.mode & (MODE_SETGID | 0o010) == MODE_SETGID | 0o010;
    let rw = MAY_READ | MAY_WRITE;
    if src.kind == FileKind::Regular && !setuid && !exec_setgid && allowed(u, src, rw) == rw {
        Ok(())
    } else {
        Err(NfsError::Access)
    }
}

/// Device nodes need CAP_MKNOD (`mknod(2)`), which knfsd drops for every
/// caller but root; this server runs privileged, so it must refuse them
/// itself (NFS4ERR_PERM). Fifos and sockets need no privilege.
pub fn may_mknod(u: &User, kind: FileKind) -> NfsResult<()> {
    if matches!(kind, FileKind::BlockDev | FileKind::CharDev) && !u.is_root() {
        Err(NfsError::Perm)
    } else {
        Ok(())
    }
}

/// The uid (or gid, with `group`) named by an owner / owner_group string
/// (RFC 8881 §5.9): a decimal id, `name@domain` or a bare name looked up
/// in the system's user or group database. An empty string is
/// NFS4ERR_INVAL (a zero-length principal is malformed, not unknown);
/// no translation is NFS4ERR_BADOWNER.
pub fn owner_id(ids: &dyn IdMap, s: &[u8], group: bool) -> NfsResult<u32> {
    if s.is_empty() {
        return Err(NfsError::Inval);
    }
    let lookup = |name: &str| {
        if group {
            ids.gid_by_name(name)
        } else {
            ids.uid_by_name(name)
        }
    };
    attrs::parse_owner(s, &lookup).map_err(NfsError::from_status)
}

/// Owner and permission bits of an object the user creates in directory
/// `dir` (attributes `dir`) with create attributes `req` (CREATE, OPEN).
///
/// As a local `creat`/`mkdir` would (the store chowns explicitly, so
/// the kernel's own rules do not apply): the owner is the caller, the
/// group the caller's, or the directory's when it has the set-group-ID
/// bit, and a new directory inherits that bit. Requested owner/group are
/// honoured when the caller could `chown` to them: root, or the caller's
/// own uid and a group the caller is in (NFS4ERR_PERM otherwise). A
/// set-group-ID bit on a group-executable file whose group the caller is
/// not in is dropped, as Linux does (inode_init_owner). No umask is
/// applied: the client applies its own before sending the mode.
pub fn creation_owner_mode(
    u: &User,
    ids: &dyn IdMap,
    dir: &Attrs,
    req: &SetRequest,
    is_dir: bool,
    default_mode: u32,
) -> NfsResult<(Owner, u32)> {
    let mut owner = u.owner();
    let uid = owner.uid;
    let root = u.is_root();
    let inherit_gid = dir.mode & MODE_SETGID != 0;
    if inherit_gid {
        owner.gid = dir.gid;
    }
    if let Some(s) = &req.owner {
        let want = owner_id(ids, s, false)?;
        if want != uid && !root {
            return Err(NfsError::Perm);
        }
        owner.uid = want;
    }
    if let Some(s) = &req.group {
        let want = owner_id(ids, s, true)?;
        if want != owner.gid && !root && !u.in_group(want) {
            return Err(NfsError::Perm);
        }
        owner.gid = want;
    }
    let mut mode = req.mode.unwrap_or(default_mode);
    if is_dir && inherit_gid {
        mode |= MODE_SETGID;
    } else if !is_dir
        && mode & (MODE_SETGID | 0o010) == MODE_SETGID | 0o010
        && !root
        && !u.in_group(owner.gid)
    {
        mode &= !MODE_SETGID;
    }
    Ok((owner, mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_store::{Identity, Timespec};

    fn attrs(kind: FileKind, mode: u32, uid: u32, gid: u32) -> Attrs {
        let t = Timespec::default();
        Attrs {
            kind,
            mode,
            nlink: 1,
            uid,
            gid,
            size: 0,
            space_used: 0,
            rdev: (0, 0),
            identity: Identity {
                space: 1,
                object: 2,
                incarnation: 0,
            },
            atime: t,
            mtime: t,
            ctime: t,
            btime: None,
            change: 0,
        }
    }

    const ALICE: User<'static> = User {
        uid: 1000,
        gid: 1000,
        groups: &[50],
    };
    const ROOT: User<'static> = User {
        uid: 0,
        gid: 0,
        groups: &[],
    };

    #[test]
    fn mode_classes() {
        let f = attrs(FileKind::Regular, 0o640, 1000, 2000);
        assert_eq!(allowed(&ALICE, &f, MAY_READ | MAY_WRITE | MAY_EXEC), 6);
        // Group class through a supplementary group.
        let g = attrs(FileKind::Regular, 0o050, 7, 50);
        assert_eq!(allowed(&ALICE, &g, MAY_READ | MAY_WRITE | MAY_EXEC), 5);
        // Others.
        let o = attrs(FileKind::Regular, 0o004, 7, 7);
        assert_eq!(allowed(&ALICE, &o, MAY_READ | MAY_WRITE), MAY_READ);
        // The owner class decides even when it grants less than others.
        let less = attrs(FileKind::Regular, 0o007, 1000, 7);
        assert_eq!(allowed(&ALICE, &less, MAY_READ), 0);
        assert_eq!(require(&ALICE, &less, MAY_READ), Err(NfsError::Access));
        // Root: everything but executing a file nobody may execute.
        assert_eq!(allowed(&ROOT, &o, 7), MAY_READ | MAY_WRITE);
        let d = attrs(FileKind::Directory, 0o000, 7, 7);
        assert_eq!(allowed(&ROOT, &d, 7), 7);
    }

    #[test]
    fn sticky_directory() {
        let dir = attrs(FileKind::Directory, 0o1777, 5, 5);
        let mine = attrs(FileKind::Regular, 0o644, 1000, 1000);
        let theirs = attrs(FileKind::Regular, 0o666, 6, 6);
        assert_eq!(sticky_allows(&ALICE, &dir, &mine), Ok(()));
        assert_eq!(sticky_allows(&ALICE, &dir, &theirs), Err(NfsError::Access));
        assert_eq!(sticky_allows(&ROOT, &dir, &theirs), Ok(()));
        let owner = User { uid: 5, ..ALICE };
        assert_eq!(sticky_allows(&owner, &dir, &theirs), Ok(()));
        let plain = attrs(FileKind::Directory, 0o777, 5, 5);
        assert_eq!(sticky_allows(&ALICE, &plain, &theirs), Ok(()));
    }

    #[test]
    fn hard_link_protection() {
        let rw = attrs(FileKind::Regular, 0o666, 6, 6);
        assert_eq!(protected_hardlink(&ALICE, &rw), Ok(()));
        let ro = attrs(FileKind::Regular, 0o644, 6, 6);
        assert_eq!(protected_hardlink(&ALICE, &ro), Err(NfsError::Access));
        let setuid = attrs(FileKind::Regular, 0o4666, 6, 6);
        assert_eq!(protected_hardlink(&ALICE, &setuid), Err(NfsError::Access));
        let exec_setgid = attrs(FileKind::Regular, 0o2676, 6, 6);
        assert_eq!(
            protected_hardlink(&ALICE, &exec_setgid),
            Err(NfsError::Access)
        );
        // Set-group-ID without group execute is mandatory locking, not a
        // privilege: allowed.
        let lock_bit = attrs(FileKind::Regular, 0o2666, 6, 6);
        assert_eq!(protected_hardlink(&ALICE, &lock_bit), Ok(()));
        let fifo = attrs(FileKind::Fifo, 0o666, 6, 6);
        assert_eq!(protected_hardlink(&ALICE, &fifo), Err(NfsError::Access));
        // Owner and root are not restricted.
        let own = attrs(FileKind::Regular, 0o4000, 1000, 6);
        assert_eq!(protected_hardlink(&ALICE, &own), Ok(()));
        assert_eq!(protected_hardlink(&ROOT, &setuid), Ok(()));
    }

    #[test]
    fn devices_need_root() {
        assert_eq!(may_mknod(&ALICE, FileKind::CharDev), Err(NfsError::Perm));
        assert_eq!(may_mknod(&ALICE, FileKind::BlockDev), Err(NfsError::Perm));
        assert_eq!(may_mknod(&ALICE, FileKind::Fifo), Ok(()));
        assert_eq!(may_mknod(&ALICE, FileKind::Socket), Ok(()));
        assert_eq!(may_mknod(&ROOT, FileKind::BlockDev), Ok(()));
    }

    #[test]
    fn owner_and_mode_of_new_objects() {
        let ids = crate::idmap::TableIds {
            users: vec![("alice".into(), 1000)],
            groups: vec![("staff".into(), 50)],
        };
        let plain = attrs(FileKind::Directory, 0o755, 0, 0);
        let setgid = attrs(FileKind::Directory, 0o2775, 0, 77);
        let none = SetRequest::default();
        // Caller's owner and group, the default mode.
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &plain, &none, false, 0o644),
            Ok((
                Owner {
                    uid: 1000,
                    gid: 1000
                },
                0o644
            ))
        );
        // A set-group-ID directory gives its group, and to directories its bit.
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &setgid, &none, true, 0o755),
            Ok((Owner { uid: 1000, gid: 77 }, 0o2755))
        );
        // An executable set-group-ID file in a group the caller is not in
        // loses the bit.
        let sgid = SetRequest {
            mode: Some(0o2775),
            ..SetRequest::default()
        };
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &setgid, &sgid, false, 0o644),
            Ok((Owner { uid: 1000, gid: 77 }, 0o0775))
        );
        // Group the caller is in: granted; by name too.
        let staff = SetRequest {
            group: Some(b"staff".to_vec()),
            ..SetRequest::default()
        };
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &plain, &staff, false, 0o644),
            Ok((Owner { uid: 1000, gid: 50 }, 0o644))
        );
        // Another owner or group: only root.
        let other = SetRequest {
            owner: Some(b"0".to_vec()),
            ..SetRequest::default()
        };
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &plain, &other, false, 0o644),
            Err(NfsError::Perm)
        );
        let group = SetRequest {
            group: Some(b"7".to_vec()),
            ..SetRequest::default()
        };
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &plain, &group, false, 0o644),
            Err(NfsError::Perm)
        );
        assert_eq!(
            creation_owner_mode(&ROOT, &ids, &plain, &group, false, 0o644),
            Ok((Owner { uid: 0, gid: 7 }, 0o644))
        );
        // Unknown names and empty strings.
        let unknown = SetRequest {
            owner: Some(b"mallory".to_vec()),
            ..SetRequest::default()
        };
        assert_eq!(
            creation_owner_mode(&ALICE, &ids, &plain, &unknown, false, 0o644),
            Err(NfsError::BadOwner)
        );
        assert_eq!(owner_id(&ids, b"", false), Err(NfsError::Inval));
        assert_eq!(owner_id(&ids, b"alice", false), Ok(1000));
    }
}
