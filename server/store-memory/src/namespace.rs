//! Creating, linking, renaming and removing names.

use nfs4d_store::{DirRename, FileKind, Name, Owner, RelPath, StoreError, StoreResult, Timespec};

use crate::data::FileData;
use crate::refused;
use crate::tree::{check_mode, not_regular, Body, Dir, Tree, LINK_MAX, ROOT};

/// Longest symlink target (Linux `PATH_MAX` less the terminating NUL).
pub const SYMLINK_MAX: usize = 4095;

/// A rename whose source name is still to be removed (stores without
/// atomic rename move a file in two steps: link, then unlink).
#[derive(Debug)]
pub struct PendingUnlink {
    dir: (u64, u64),
    name: Name,
    object: (u64, u64),
}

impl Tree {
    /// Creates a regular file, or returns the existing one (see
    /// [`nfs4d_store::Store::create_file`]).
    pub fn create_file(
        &mut self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
        now: Timespec,
    ) -> StoreResult<(u64, bool)> {
        check_mode(mode)?;
        let d = self.resolve_dir(dir)?;
        if let Some(existing) = self.dir(d)?.get(name.as_bytes()) {
            if exclusive {
                return Err(StoreError::Exists);
            }
            let kind = self.obj(existing)?.kind;
            return match kind {
                FileKind::Regular => Ok((existing, false)),
                k => Err(not_regular(k)),
            };
        }
        let body = Body::File(FileData::default());
        let num = self.create(d, name, FileKind::Regular, mode, owner, body, now)?;
        Ok((num, true))
    }

    pub fn mkdir(
        &mut self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        now: Timespec,
    ) -> StoreResult<u64> {
        check_mode(mode)?;
        let d = self.free_name(dir, name)?;
        let body = Body::Dir(Dir::new(d));
        self.create(d, name, FileKind::Directory, mode, owner, body, now)
    }

    pub fn symlink(
        &mut self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
        now: Timespec,
    ) -> StoreResult<u64> {
        if !self.caps.symlinks {
            return Err(StoreError::Unsupported);
        }
        if target.is_empty() || target.contains(&0) {
            return Err(refused(
                StoreError::Invalid,
                "empty symlink target or NUL in it",
            ));
        }
        if target.len() > SYMLINK_MAX {
            return Err(refused(StoreError::NameTooLong, "symlink target too long"));
        }
        let d = self.free_name(dir, name)?;
        let body = Body::Symlink(target.to_vec());
        self.create(d, name, FileKind::Symlink, 0o777, owner, body, now)
    }

    pub fn mknod(
        &mut self,
        dir: &RelPath,
        name: &Name,
        kind: FileKind,
        mode: u32,
        rdev: (u32, u32),
        owner: Owner,
        now: Timespec,
    ) -> StoreResult<u64> {
        if !self.caps.special_files {
            return Err(StoreError::Unsupported);
        }
        let rdev = match kind {
            FileKind::Fifo | FileKind::Socket => (0, 0),
            FileKind::BlockDev | FileKind::CharDev => rdev,
            _ => {
                return Err(refused(
                    StoreError::Invalid,
                    "mknod of a kind that is not special",
                ))
            }
        };
        check_mode(mode)?;
        let d = self.free_name(dir, name)?;
        let num = self.create(d, name, kind, mode, owner, Body::Special, now)?;
        self.obj_mut(num)?.rdev = rdev;
        Ok(num)
    }

    /// The directory at `dir`, where `name` must be free.
    fn free_name(&self, dir: &RelPath, name: &Name) -> StoreResult<u64> {
        let d = self.resolve_dir(dir)?;
        if self.dir(d)?.get(name.as_bytes()).is_some() {
            return Err(StoreError::Exists);
        }
        Ok(d)
    }

    pub fn link(
        &mut self,
        src: &RelPath,
        dst_dir: &RelPath,
        dst_name: &Name,
        now: Timespec,
    ) -> StoreResult<u64> {
        if !self.caps.hard_links {
            return Err(StoreError::Unsupported);
        }
        let num = self.resolve(src)?;
        let o = self.obj(num)?;
        if o.kind == FileKind::Directory {
            return Err(StoreError::IsDir);
        }
        if o.nlink >= LINK_MAX {
            return Err(StoreError::TooManyLinks);
        }
        let d = self.free_name(dst_dir, dst_name)?;
        self.dir_mut(d)?.insert(dst_name.as_bytes(), num);
        self.obj_mut(num)?.nlink += 1;
        self.touch(num, now, false)?;
        self.touch(d, now, true)?;
        Ok(num)
    }

    /// Drops one name of non-directory `num`, freeing it with its last.
    fn unlink_object(&mut self, num: u64, now: Timespec) -> StoreResult<()> {
        let o = self.obj_mut(num)?;
        o.nlink = o.nlink.saturating_sub(1);
        if o.nlink == 0 {
            self.free(num);
            Ok(())
        } else {
            self.touch(num, now, false)
        }
    }

    /// Removes a non-directory (the caller took its attributes before).
    pub fn remove(&mut self, dir: &RelPath, name: &Name, now: Timespec) -> StoreResult<()> {
        let d = self.resolve_dir(dir)?;
        let num = self.child(d, name)?;
        if self.obj(num)?.kind == FileKind::Directory {
            return Err(StoreError::IsDir);
        }
        self.dir_mut(d)?.remove(name.as_bytes());
        self.unlink_object(num, now)?;
        self.touch(d, now, true)
    }

    pub fn rmdir(&mut self, dir: &RelPath, name: &Name, now: Timespec) -> StoreResult<()> {
        let d = self.resolve_dir(dir)?;
        let num = self.child(d, name)?;
        if !self.dir(num)?.is_empty() {
            return Err(StoreError::NotEmpty);
        }
        self.drop_dir(d, name, num, now)
    }

    /// Unlinks the empty directory `num`, named `name` in `parent`.
    fn drop_dir(&mut self, parent: u64, name: &Name, num: u64, now: Timespec) -> StoreResult<()> {
        self.dir_mut(parent)?.remove(name.as_bytes());
        self.forget_dir(parent, num)?;
        self.touch(parent, now, true)
    }

    /// Frees the empty directory `num`, no longer named in `parent`.
    fn forget_dir(&mut self, parent: u64, num: u64) -> StoreResult<()> {
        let p = self.dir_mut(parent)?;
        p.subdirs = p.subdirs.saturating_sub(1);
        let po = self.obj_mut(parent)?;
        po.nlink = po.nlink.saturating_sub(1);
        self.free(num);
        Ok(())
    }

    pub fn readlink(&self, path: &RelPath) -> StoreResult<Vec<u8>> {
        if !self.caps.symlinks {
            return Err(StoreError::Unsupported);
        }
        match &self.obj(self.resolve(path)?)?.body {
            Body::Symlink(t) => Ok(t.clone()),
            // readlink(2): EINVAL when the object is not a symlink.
            _ => Err(StoreError::Invalid),
        }
    }

    /// Renames `src_dir/src_name` to `dst_dir/dst_name` (rename(2)
    /// semantics, within the store's [`DirRename`] limit). With `two_step`
    /// a non-directory is linked at the target first and its old name is
    /// left for [`Tree::finish_rename`].
    pub fn rename(
        &mut self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
        two_step: bool,
        now: Timespec,
    ) -> StoreResult<Option<PendingUnlink>> {
        let sd = self.resolve_dir(src_dir)?;
        let dd = self.resolve_dir(dst_dir)?;
        let src = self.child(sd, src_name)?;
        let victim = self.dir(dd)?.get(dst_name.as_bytes());
        if victim == Some(src) {
            // The same name, or two links of one object: rename(2) does
            // nothing.
            return Ok(None);
        }
        let src_is_dir = self.obj(src)?.kind == FileKind::Directory;
        if src_is_dir {
            self.check_dir_move(src, dd)?;
        }
        if let Some(v) = victim {
            let victim_is_dir = self.obj(v)?.kind == FileKind::Directory;
            match (src_is_dir, victim_is_dir) {
                (true, false) => return Err(StoreError::NotDir),
                (false, true) => return Err(StoreError::IsDir),
                (true, true) if !self.dir(v)?.is_empty() => return Err(StoreError::NotEmpty),
                _ => {}
            }
        }
        let two_step = two_step && !src_is_dir;
        if two_step {
            self.obj_mut(src)?.nlink += 1;
        } else {
            self.dir_mut(sd)?.remove(src_name.as_bytes());
        }
        match victim {
            // The target's entry takes the source in place, so its
            // listing position stays.
            Some(v) => {
                self.dir_mut(dd)?.rebind(dst_name.as_bytes(), src);
                if self.obj(v)?.kind == FileKind::Directory {
                    self.forget_dir(dd, v)?;
                } else {
                    self.unlink_object(v, now)?;
                }
            }
            None => self.dir_mut(dd)?.insert(dst_name.as_bytes(), src),
        }
        if src_is_dir && sd != dd {
            let s = self.dir_mut(sd)?;
            s.subdirs = s.subdirs.saturating_sub(1);
            let so = self.obj_mut(sd)?;
            so.nlink = so.nlink.saturating_sub(1);
            self.dir_mut(dd)?.subdirs += 1;
            self.obj_mut(dd)?.nlink += 1;
            self.dir_mut(src)?.parent = dd;
        }
        self.touch(src, now, false)?;
        self.touch(sd, now, true)?;
        self.touch(dd, now, true)?;
        if !two_step {
            return Ok(None);
        }
        Ok(Some(PendingUnlink {
            dir: self.key(sd)?,
            name: src_name.clone(),
            object: self.key(src)?,
        }))
    }

    /// The second step of a two-step rename: drops the old name, if it
    /// still names the object moved.
    pub fn finish_rename(&mut self, pending: PendingUnlink, now: Timespec) -> StoreResult<()> {
        let PendingUnlink { dir, name, object } = pending;
        if !self.is(dir.0, dir) {
            return Ok(());
        }
        let still = self.dir(dir.0)?.get(name.as_bytes());
        if still.is_none_or(|n| !self.is(n, object)) {
            return Ok(());
        }
        self.dir_mut(dir.0)?.remove(name.as_bytes());
        self.unlink_object(object.0, now)?;
        self.touch(dir.0, now, true)
    }

    /// A directory `src` may move into `dst`: not into its own subtree
    /// (rename(2) EINVAL), and within the store's limit.
    fn check_dir_move(&self, src: u64, dst: u64) -> StoreResult<()> {
        let mut cur = dst;
        loop {
            if cur == src {
                return Err(StoreError::Invalid);
            }
            if cur == ROOT {
                break;
            }
            cur = self.dir(cur)?.parent;
        }
        let limit = match self.caps.dir_rename {
            DirRename::Any => return Ok(()),
            DirRename::EmptyOnly => 0,
            DirRename::UpTo(n) => n,
        };
        if self.count_below(src, limit)? > limit {
            return Err(refused(
                StoreError::CrossDevice,
                "directory past the rename limit",
            ));
        }
        Ok(())
    }

    /// Objects below directory `dir`, counted up to `limit + 1`.
    fn count_below(&self, dir: u64, limit: u64) -> StoreResult<u64> {
        let mut count = 0u64;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for slot in self.dir(d)?.entries.values() {
                count += 1;
                if count > limit {
                    return Ok(count);
                }
                if self.obj(slot.child)?.kind == FileKind::Directory {
                    stack.push(slot.child);
                }
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, OBJECT_STORE_CAPABILITIES};

    const OWNER: Owner = Owner { uid: 0, gid: 0 };

    fn name(s: &str) -> Name {
        Name::new(s.as_bytes()).expect("name")
    }

    fn file(t: &mut Tree, s: &str) -> u64 {
        let now = Timespec::default();
        let (num, created) = t
            .create_file(&RelPath::root(), &name(s), 0o644, OWNER, true, now)
            .expect("create");
        assert!(created);
        num
    }

    fn at(t: &Tree, s: &str) -> StoreResult<u64> {
        t.resolve(&RelPath::root().join(&name(s)))
    }

    #[test]
    fn two_step_rename_shows_both_names_between_steps() {
        let now = Timespec::default();
        let root = RelPath::root();
        let mut t = Tree::new(OBJECT_STORE_CAPABILITIES, Limits::DEFAULT, now);
        let a = file(&mut t, "a");
        file(&mut t, "b");
        let pending = t
            .rename(&root, &name("a"), &root, &name("b"), true, now)
            .expect("rename")
            .expect("a second step");
        assert_eq!((at(&t, "a"), at(&t, "b")), (Ok(a), Ok(a)), "both names");
        assert_eq!(t.obj(a).expect("object").nlink, 2);
        t.finish_rename(pending, now).expect("second step");
        assert_eq!(
            (at(&t, "a"), at(&t, "b")),
            (Err(StoreError::NotFound), Ok(a))
        );
        assert_eq!(t.obj(a).expect("object").nlink, 1);

        // The old name taken by another object meanwhile is left alone.
        let c = file(&mut t, "c");
        let pending = t
            .rename(&root, &name("c"), &root, &name("d"), true, now)
            .expect("rename")
            .expect("a second step");
        t.remove(&root, &name("c"), now).expect("remove");
        let c2 = file(&mut t, "c");
        t.finish_rename(pending, now).expect("second step");
        assert_eq!((at(&t, "c"), at(&t, "d")), (Ok(c2), Ok(c)));
        assert_eq!(t.obj(c).expect("object").nlink, 1);

        // Directories move in one step.
        t.mkdir(&root, &name("dir"), 0o755, OWNER, now)
            .expect("mkdir");
        let step = t
            .rename(&root, &name("dir"), &root, &name("dir2"), true, now)
            .expect("rename");
        assert!(step.is_none());
        assert_eq!(at(&t, "dir"), Err(StoreError::NotFound));
    }
}
