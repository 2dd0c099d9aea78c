//! Creating objects: CREATE's directories, symlinks and special files
//! (RFC 8881 §18.4) and OPEN's regular files (§18.16).
//!
//! Owner, group and mode are applied by the store at creation
//! ([`perm::creation_owner_mode`]); the other create attributes (times,
//! OPEN's size) with a SETATTR right after, and the reply's `attrset`
//! reports what was applied. What a store cannot create answers the RFC's
//! status from the export's capabilities, never NFS4ERR_IO.

use nfs4d_xdr::nfs4::{FATTR4_MODE, FATTR4_SIZE, FATTR4_TIME_ACCESS_SET, FATTR4_TIME_MODIFY_SET};

use super::journal::{Intent, Made};
use super::vfs::{CurFh, Export};
use super::{dir_done, perm, Caller, DirChange, Entry, Namespace};
use crate::attrs::{self, SetRequest};
use crate::error::{NfsError, NfsResult};
use nfs4d_store::{Attrs, FileKind, Name, RelPath, SetAttrs, SetTime, StoreError};

/// Default permission bits of a directory when `createattrs` has no mode.
const DEFAULT_DIR_MODE: u32 = 0o755;
/// Default permission bits of CREATE's other objects.
const DEFAULT_NODE_MODE: u32 = 0o644;
/// Default permission bits of a new regular file.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Permission bits of an exclusively created file without a mode: RFC 8881
/// §18.16.4 says the server SHOULD NOT leave its access control to anyone
/// but the owner until the client's SETATTR.
const EXCLUSIVE_FILE_MODE: u32 = 0o600;

/// What CREATE makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewObject {
    /// A directory.
    Dir,
    /// A symlink with this target, stored verbatim.
    Symlink(Vec<u8>),
    /// A block or character device (with its `(major, minor)`), a fifo or
    /// a socket.
    Special(FileKind, (u32, u32)),
}

/// What CREATE did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The new object's filehandle.
    pub fh: CurFh,
    /// The directory's change attribute around the creation.
    pub dir: DirChange,
    /// The create attributes applied (`attrset`).
    pub attrset: Vec<u32>,
    /// Handle-map write that must be durable before the reply.
    pub durable: u64,
}

/// How OPEN creates a regular file (`createhow4`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCreate {
    /// UNCHECKED4: an existing file is opened (truncated with size 0).
    Unchecked(SetRequest),
    /// GUARDED4: an existing name is NFS4ERR_EXIST.
    Guarded(SetRequest),
    /// EXCLUSIVE4 (no attributes) or EXCLUSIVE4_1 (attributes from
    /// suppattr_exclcreat), with the verifier.
    Exclusive([u8; 8], SetRequest),
}

/// The file OPEN's create step produced or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// The file's attributes.
    pub attrs: Attrs,
    /// This OPEN (or the retransmitted exclusive create it repeats)
    /// created the file: no permission check, and `attrset` applies.
    pub created: bool,
    /// The file is new and must be removed if the OPEN fails after all
    /// ([`Namespace::discard_new_file`]).
    pub remove_on_failure: bool,
    /// Attributes set (`attrset`).
    pub attrset: Vec<u32>,
    /// The directory's change attribute around the creation.
    pub dir: DirChange,
    /// Truncate the existing file (UNCHECKED4 with size 0).
    pub truncate: bool,
}

/// A decoded `settime4` as the store takes it.
pub fn set_time(t: attrs::TimeSet) -> SetTime {
    match t {
        attrs::TimeSet::ServerNow => SetTime::ServerNow,
        attrs::TimeSet::Client(sec, nsec) => SetTime::Client(sec, nsec),
    }
}

impl Namespace<'_> {
    /// CREATE: makes `what` at `at` in export `e` with create attributes
    /// `req` (their size must have been refused already: only regular
    /// files have one).
    ///
    /// A symlink on a store without symlinks is NFS4ERR_NOTSUPP (the
    /// export's `symlink_support` is FALSE); a device, fifo or socket on a
    /// store without special files is NFS4ERR_BADTYPE, the status for "a
    /// type not supported by the server" (RFC 8881 §15.1.4.1).
    pub fn create(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        what: &NewObject,
        req: &SetRequest,
    ) -> NfsResult<Created> {
        match what {
            NewObject::Symlink(_) if !e.caps.symlinks => return Err(NfsError::NotSupp),
            NewObject::Special(..) if !e.caps.special_files => return Err(NfsError::BadType),
            _ => {}
        }
        // ROFS, NOTDIR, and write + search permission on the directory.
        let before = perm::dir_modifiable(c, e, at.dir)?;
        if let NewObject::Special(kind, _) = what {
            perm::may_mknod(&c.user, *kind)?;
        }
        let is_dir = matches!(what, NewObject::Dir);
        let default_mode = if is_dir {
            DEFAULT_DIR_MODE
        } else {
            DEFAULT_NODE_MODE
        };
        let (owner, mode) =
            perm::creation_owner_mode(&c.user, self.idmap, &before, req, is_dir, default_mode)?;
        let attrs = match what {
            NewObject::Dir => e.store().mkdir(at.dir, at.name, mode, owner)?,
            NewObject::Symlink(target) => e.store().symlink(at.dir, at.name, target, owner)?,
            NewObject::Special(kind, rdev) => e
                .store()
                .mknod(at.dir, at.name, *kind, mode, *rdev, owner)?,
        };
        let mut attrset = req.mask.clone();
        let attrs = match set_times(e, at, req) {
            Ok(Some(a)) => a,
            Ok(None) => attrs,
            // The object exists now: report the times as not set (attrset is
            // "which attributes were successfully set", RFC 8881 §18.4.3)
            // rather than fail a CREATE that happened.
            Err(err) => {
                tracing::warn!(error = %err, "CREATE: setting times of the new object failed");
                attrs::bitmap_clear(&mut attrset, FATTR4_TIME_ACCESS_SET);
                attrs::bitmap_clear(&mut attrset, FATTR4_TIME_MODIFY_SET);
                attrs
            }
        };
        let after = dir_done(self, e, at.dir_id, at.dir, true)?;

        // The new object's handle must be durable before the reply, and on
        // a sync export the intent that stands for the directory's fsync
        // (journal.rs).
        let (fh, seq) = self
            .vfs
            .child_fh(e.id, at.dir_id, at.dir, at.name, &attrs)?;
        let made = match what {
            NewObject::Dir => Made::Dir,
            NewObject::Symlink(t) => Made::Symlink(t.clone()),
            NewObject::Special(kind, rdev) => Made::Special(super::vfs::ftype(*kind), *rdev),
        };
        let intent = self.vfs.journal(
            e,
            &Intent::Made {
                export: e.id,
                dir: at.dir_id,
                name: at.name.as_bytes().to_vec(),
                what: made,
                mode,
                owner,
            },
        )?;
        let seq = seq.max(intent);

        if matches!(what, NewObject::Symlink(_)) {
            // A symlink's mode is always 0777 on Linux: the mode was not applied.
            attrs::bitmap_clear(&mut attrset, FATTR4_MODE);
        }
        Ok(Created {
            fh,
            dir: DirChange::between(&before, &after),
            attrset,
            durable: seq,
        })
    }

    /// OPEN's create step for the name `at` of export `e`: `dir` is the
    /// directory's attributes, `existing` what the name holds now, if
    /// anything. UNCHECKED4 opens an existing file (a size of zero
    /// truncates it, RFC 8881 §18.16.3); GUARDED4 refuses one
    /// (NFS4ERR_EXIST); EXCLUSIVE4/EXCLUSIVE4_1 accepts it only as the
    /// retransmission of a create that stored the same verifier (§18.16.4).
    /// A new file gets its create attributes, or for an exclusive create
    /// the verifier, stored in its times and committed. The handle is
    /// issued by the caller once the open's own checks passed.
    pub fn open_create(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        dir: &Attrs,
        existing: Option<Attrs>,
        how: &FileCreate,
    ) -> NfsResult<NewFile> {
        match (existing, how) {
            (Some(_), FileCreate::Guarded(_)) => Err(NfsError::Exist),
            (Some(a), FileCreate::Unchecked(req)) => {
                // Only a size of zero is used on an existing file (RFC 8881
                // §18.16.3).
                let truncate = req.size == Some(0) && a.kind == FileKind::Regular;
                Ok(existing_file(dir, a, truncate))
            }
            (Some(a), FileCreate::Exclusive(verf, req)) => exclusive_retry(dir, a, verf, req),
            (None, _) => self
                .create_file(c, e, at, dir, how, false)
                .map(|made| made.expect("only a probe leaves the file uncreated")),
        }
    }

    /// OPEN's create step for a name not looked up yet: creates the file
    /// if the name is free and the caller may create in the directory;
    /// `None` otherwise (the caller then looks the name up and takes
    /// [`Self::open_create`], which gives the error, or opens the file: an
    /// existing file needs no write permission on the directory). A new
    /// name, the common case of a create, costs no lookup of its own.
    pub fn open_create_new(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        dir: &Attrs,
        how: &FileCreate,
    ) -> NfsResult<Option<NewFile>> {
        self.create_file(c, e, at, dir, how, true)
    }

    /// Creates `at`: UNCHECKED4 and GUARDED4 with their createattrs,
    /// EXCLUSIVE4/EXCLUSIVE4_1 with the verifier stored in the file's times.
    /// A `probe` creates only if the name is free and the caller may
    /// modify the directory, and answers `None` otherwise, whatever `how`
    /// would make of the name's holder.
    fn create_file(
        &self,
        c: &Caller,
        e: &Export,
        at: Entry,
        dir: &Attrs,
        how: &FileCreate,
        probe: bool,
    ) -> NfsResult<Option<NewFile>> {
        // `dir` was read by this OPEN a moment ago, before its lookup of
        // the name: reading it again would only cost a statx.
        let before = match perm::dir_modifiable_as(c, dir.clone()) {
            Ok(before) => before,
            Err(_) if probe => return Ok(None),
            Err(err) => return Err(err),
        };
        let (req, exclusive, default_mode) = match how {
            FileCreate::Unchecked(r) => (r, false, DEFAULT_FILE_MODE),
            FileCreate::Guarded(r) => (r, true, DEFAULT_FILE_MODE),
            FileCreate::Exclusive(_, r) => (r, true, EXCLUSIVE_FILE_MODE),
        };
        let (owner, mode) =
            perm::creation_owner_mode(&c.user, self.idmap, &before, req, false, default_mode)?;
        let made = match e
            .store()
            .create_file(at.dir, at.name, mode, owner, exclusive || probe)
        {
            Ok(r) => r,
            Err(StoreError::Exists) if probe => return Ok(None),
            // Created by someone else since the lookup.
            Err(StoreError::Exists) => {
                let a = e.store().lookup(at.dir, at.name)?;
                return match how {
                    FileCreate::Exclusive(verf, req) => {
                        exclusive_retry(dir, a, verf, req).map(Some)
                    }
                    _ => Err(NfsError::Exist),
                };
            }
            Err(err) => return Err(err.into()),
        };
        let attrs = made.attrs;
        if !made.created {
            // UNCHECKED4 found a file created meanwhile: opened as existing.
            return Ok(Some(existing_file(dir, attrs, req.size == Some(0))));
        }
        let path = at.dir.join(at.name);
        let mut set = SetAttrs {
            size: req.size,
            atime: req.atime.map(set_time),
            mtime: req.mtime.map(set_time),
            ..SetAttrs::default()
        };
        let mut attrset = req.mask.clone();
        if let FileCreate::Exclusive(verf, req) = how {
            let (mtime, atime) = verifier_times(verf);
            set.atime = Some(SetTime::Client(atime, 0));
            set.mtime = Some(SetTime::Client(mtime, 0));
            attrset = exclusive_attrset(req);
        }
        let applied = (|| -> NfsResult<Attrs> {
            let a = if set == SetAttrs::default() {
                attrs
            } else {
                e.store().setattr(&path, &set)?
            };
            if matches!(how, FileCreate::Exclusive(..)) {
                // The verifier MUST be on stable storage (RFC 8881 §18.16.4).
                e.store().commit(&path)?;
            }
            Ok(a)
        })();
        let attrs = match applied {
            Ok(a) => a,
            Err(err) => {
                let _ = e.store().remove(at.dir, at.name);
                return Err(err);
            }
        };
        // Setting the new file's attributes and committing it leave the
        // directory as the create left it.
        let after = match made.dir_after {
            Some(after) => {
                self.vfs.dir_changed(e, at.dir_id, at.dir, true)?;
                after
            }
            None => dir_done(self, e, at.dir_id, at.dir, true)?,
        };
        // The reply waits for the handle OPEN issues next, a later write of
        // the map than this intent.
        self.vfs.journal(
            e,
            &Intent::Made {
                export: e.id,
                dir: at.dir_id,
                name: at.name.as_bytes().to_vec(),
                what: Made::File,
                mode,
                owner,
            },
        )?;
        Ok(Some(NewFile {
            attrs,
            created: true,
            remove_on_failure: true,
            attrset,
            dir: DirChange::between(&before, &after),
            truncate: false,
        }))
    }

    /// Removes the file `dir/name` an OPEN created, after a later step of
    /// the OPEN failed ([`NewFile::remove_on_failure`]).
    pub fn discard_new_file(
        &self,
        e: &Export,
        dir: &RelPath,
        name: &Name,
    ) -> Result<(), StoreError> {
        e.store().remove(dir, name).map(|_| ())
    }
}

/// CREATE's time_access_set / time_modify_set, applied to the new object:
/// its new attributes, `None` when there were none to set. The creator
/// owns the object, so no further permission check is needed.
fn set_times(e: &Export, at: Entry, req: &SetRequest) -> NfsResult<Option<Attrs>> {
    if req.atime.is_none() && req.mtime.is_none() {
        return Ok(None);
    }
    let set = SetAttrs {
        atime: req.atime.map(set_time),
        mtime: req.mtime.map(set_time),
        ..SetAttrs::default()
    };
    Ok(Some(e.store().setattr(&at.dir.join(at.name), &set)?))
}

/// An existing file OPEN's create step opens as it is (truncated with
/// `truncate`): nothing created, the directory unchanged.
fn existing_file(dir: &Attrs, a: Attrs, truncate: bool) -> NewFile {
    NewFile {
        attrset: if truncate { size_mask() } else { Vec::new() },
        dir: DirChange::unchanged(dir),
        attrs: a,
        created: false,
        remove_on_failure: false,
        truncate,
    }
}

/// An EXCLUSIVE4/EXCLUSIVE4_1 create that finds the name taken: a
/// retransmission of a create that succeeded if the stored verifier
/// matches, else NFS4ERR_EXIST (RFC 8881 §18.16.4).
fn exclusive_retry(dir: &Attrs, a: Attrs, verf: &[u8; 8], req: &SetRequest) -> NfsResult<NewFile> {
    if a.kind != FileKind::Regular || !verifier_matches(&a, verf) {
        return Err(NfsError::Exist);
    }
    Ok(NewFile {
        attrset: exclusive_attrset(req),
        dir: DirChange::unchanged(dir),
        attrs: a,
        created: true,
        remove_on_failure: false,
        truncate: false,
    })
}

/// The verifier as the two times it is stored in: the first four bytes in
/// mtime's seconds, the last four in atime's (as knfsd and NFSv3 servers
/// store it).
fn verifier_times(v: &[u8; 8]) -> (i64, i64) {
    let mtime = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let atime = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
    (i64::from(mtime), i64::from(atime))
}

/// Whether an existing file carries the verifier of an exclusive create.
fn verifier_matches(a: &Attrs, v: &[u8; 8]) -> bool {
    let (mtime, atime) = verifier_times(v);
    a.mtime.sec == mtime && a.atime.sec == atime
}

/// `attrset` of an exclusive create: the attributes set from cva_attrs
/// plus time_access_set and time_modify_set, which hold the verifier
/// (RFC 8881 §18.16.4: the client then SETATTRs them).
fn exclusive_attrset(req: &SetRequest) -> Vec<u32> {
    let mut bm = req.mask.clone();
    attrs::bitmap_set(&mut bm, FATTR4_TIME_ACCESS_SET);
    attrs::bitmap_set(&mut bm, FATTR4_TIME_MODIFY_SET);
    bm
}

fn size_mask() -> Vec<u32> {
    let mut bm = Vec::new();
    attrs::bitmap_set(&mut bm, FATTR4_SIZE);
    bm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_round_trip() {
        let v = [1, 2, 3, 4, 0xff, 0xfe, 0xfd, 0xfc];
        let (m, a) = verifier_times(&v);
        assert_eq!(m, 0x0102_0304);
        assert_eq!(a, 0xfffe_fdfc);
    }
}
