//! The objects in memory: numbered objects, directories as maps of names,
//! path resolution that never follows a symlink, identities, and the
//! accounting of the byte and object budgets.

use std::collections::{BTreeMap, HashMap};

use nfs4d_store::{
    Attrs, Capabilities, FileKind, Identity, Name, Owner, RelPath, StoreError, StoreResult,
    Timespec,
};

use crate::data::FileData;
use crate::Limits;

/// The root directory's object number.
pub const ROOT: u64 = 1;

/// First listing position a directory hands out: RFC 8881 §18.23.3
/// reserves cookies 0, 1 and 2.
pub const FIRST_SEQ: u64 = 3;

/// Most names an object may have (Linux ext4 `EXT4_LINK_MAX`); also caps
/// the subdirectories of one directory, each of which is a link to it.
pub const LINK_MAX: u32 = 65_000;

/// What an object holds besides its attributes.
#[derive(Debug)]
pub enum Body {
    File(FileData),
    Dir(Dir),
    Symlink(Vec<u8>),
    /// Fifos, sockets and devices: metadata only.
    Special,
}

/// A directory: its entries by name and, for offset positions, by the
/// sequence number each got when it was linked here.
#[derive(Debug)]
pub struct Dir {
    pub parent: u64,
    pub entries: BTreeMap<Vec<u8>, Slot>,
    pub order: BTreeMap<u64, Vec<u8>>,
    pub next_seq: u64,
    pub subdirs: u32,
}

/// One directory entry.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub seq: u64,
    pub child: u64,
}

impl Dir {
    pub fn new(parent: u64) -> Dir {
        Dir {
            parent,
            entries: BTreeMap::new(),
            order: BTreeMap::new(),
            next_seq: FIRST_SEQ,
            subdirs: 0,
        }
    }

    pub fn get(&self, name: &[u8]) -> Option<u64> {
        self.entries.get(name).map(|s| s.child)
    }

    /// Links `child` as `name` (which must be free) at the end of the
    /// offset order: positions already handed out stay valid.
    pub fn insert(&mut self, name: &[u8], child: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(name.to_vec(), Slot { seq, child });
        self.order.insert(seq, name.to_vec());
    }

    /// Binds the existing entry `name` to `child` in place: its listing
    /// position stays (as ext4 replaces a directory entry's inode).
    pub fn rebind(&mut self, name: &[u8], child: u64) -> Option<u64> {
        let slot = self.entries.get_mut(name)?;
        Some(std::mem::replace(&mut slot.child, child))
    }

    pub fn remove(&mut self, name: &[u8]) -> Option<u64> {
        let slot = self.entries.remove(name)?;
        self.order.remove(&slot.seq);
        Some(slot.child)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One object and its attributes.
#[derive(Debug)]
pub struct Object {
    pub incarnation: u64,
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub rdev: (u32, u32),
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
    pub btime: Timespec,
    pub change: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub body: Body,
}

impl Object {
    /// Bytes of the budget this object holds.
    fn bytes(&self) -> u64 {
        let body = match &self.body {
            Body::File(d) => d.allocated(),
            Body::Symlink(t) => t.len() as u64,
            Body::Dir(_) | Body::Special => 0,
        };
        let xattrs: u64 = self
            .xattrs
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        body + xattrs
    }

    pub fn file(&self) -> StoreResult<&FileData> {
        match &self.body {
            Body::File(d) => Ok(d),
            _ => Err(not_regular(self.kind)),
        }
    }

    pub fn file_mut(&mut self) -> StoreResult<&mut FileData> {
        match &mut self.body {
            Body::File(d) => Ok(d),
            _ => Err(not_regular(self.kind)),
        }
    }
}

/// The error for "a regular file was required, this is a `kind`".
pub fn not_regular(kind: FileKind) -> StoreError {
    match kind {
        FileKind::Directory => StoreError::IsDir,
        FileKind::Symlink => StoreError::Symlink,
        _ => StoreError::WrongType,
    }
}

/// The error for "a directory was required, this is a `kind`".
fn not_dir(kind: FileKind) -> StoreError {
    match kind {
        FileKind::Symlink => StoreError::Symlink,
        _ => StoreError::NotDir,
    }
}

/// An object's number from its path, for stores without stable identity:
/// what an object store keyed by path can offer (64-bit FNV-1a), never 0.
fn path_number(path: &RelPath) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, name) in path.components().iter().enumerate() {
        if i > 0 {
            h = (h ^ u64::from(b'/')).wrapping_mul(0x0100_0000_01b3);
        }
        for &b in name.as_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h.max(1)
}

/// Rejects modes with more than permission bits.
pub fn check_mode(mode: u32) -> StoreResult<()> {
    if mode & !0o7777 != 0 {
        return Err(crate::refused(
            StoreError::Invalid,
            "mode with file-type bits",
        ));
    }
    Ok(())
}

/// All objects, and what they use of the budgets.
#[derive(Debug)]
pub struct Tree {
    pub caps: Capabilities,
    limits: Limits,
    objects: HashMap<u64, Object>,
    /// Numbers of removed objects, reused last-freed first as inode
    /// numbers are: the incarnation tells the objects apart.
    free_numbers: Vec<u64>,
    next_number: u64,
    next_incarnation: u64,
    next_change: u64,
    bytes: u64,
}

impl Tree {
    pub fn new(caps: Capabilities, limits: Limits, now: Timespec) -> Tree {
        let mut t = Tree {
            caps,
            limits,
            objects: HashMap::new(),
            free_numbers: Vec::new(),
            next_number: ROOT,
            next_incarnation: 1,
            next_change: 1,
            bytes: 0,
        };
        let root = t.make(FileKind::Directory, 0o755, Owner { uid: 0, gid: 0 }, now);
        t.objects.insert(ROOT, root(Body::Dir(Dir::new(ROOT))));
        t.next_number = ROOT + 1;
        t
    }

    // --- objects ---------------------------------------------------------------

    pub fn obj(&self, num: u64) -> StoreResult<&Object> {
        self.objects.get(&num).ok_or_else(dangling)
    }

    pub fn obj_mut(&mut self, num: u64) -> StoreResult<&mut Object> {
        self.objects.get_mut(&num).ok_or_else(dangling)
    }

    pub fn dir(&self, num: u64) -> StoreResult<&Dir> {
        let o = self.obj(num)?;
        match &o.body {
            Body::Dir(d) => Ok(d),
            _ => Err(not_dir(o.kind)),
        }
    }

    pub fn dir_mut(&mut self, num: u64) -> StoreResult<&mut Dir> {
        let o = self.obj_mut(num)?;
        match &mut o.body {
            Body::Dir(d) => Ok(d),
            _ => Err(not_dir(o.kind)),
        }
    }

    /// The next value of the `change` attribute: moves on every change.
    pub fn next_change(&mut self) -> u64 {
        let c = self.next_change;
        self.next_change += 1;
        c
    }

    /// Records a change of `num`'s metadata (and of its data or entries
    /// when `modified`) at `now`.
    pub fn touch(&mut self, num: u64, now: Timespec, modified: bool) -> StoreResult<()> {
        let change = self.next_change();
        let o = self.obj_mut(num)?;
        o.ctime = now;
        if modified {
            o.mtime = now;
        }
        o.change = change;
        Ok(())
    }

    /// A new object's attributes, waiting for its body.
    fn make(
        &mut self,
        kind: FileKind,
        mode: u32,
        owner: Owner,
        now: Timespec,
    ) -> impl FnOnce(Body) -> Object {
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let change = self.next_change();
        let (mode, owner) = if self.caps.ownership {
            (mode, owner)
        } else {
            (default_mode(kind), Owner { uid: 0, gid: 0 })
        };
        move |body| Object {
            incarnation,
            kind,
            mode,
            uid: owner.uid,
            gid: owner.gid,
            nlink: if kind == FileKind::Directory { 2 } else { 1 },
            rdev: (0, 0),
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            change,
            xattrs: BTreeMap::new(),
            body,
        }
    }

    /// Creates an object and links it as `name` in directory `parent`
    /// (which the caller checked, and where `name` is free).
    pub fn create(
        &mut self,
        parent: u64,
        name: &Name,
        kind: FileKind,
        mode: u32,
        owner: Owner,
        body: Body,
        now: Timespec,
    ) -> StoreResult<u64> {
        if self.objects.len() as u64 >= self.limits.max_objects {
            return Err(crate::refused(
                StoreError::NoSpace,
                "object budget exhausted",
            ));
        }
        let bytes = match &body {
            Body::Symlink(t) => t.len() as u64,
            _ => 0,
        };
        self.reserve(bytes)?;
        if kind == FileKind::Directory && self.dir(parent)?.subdirs >= LINK_MAX - 2 {
            self.release(bytes);
            return Err(StoreError::TooManyLinks);
        }
        let num = match self.free_numbers.pop() {
            Some(n) => n,
            None => {
                let n = self.next_number;
                self.next_number += 1;
                n
            }
        };
        let object = self.make(kind, mode, owner, now)(body);
        self.objects.insert(num, object);
        let d = self.dir_mut(parent)?;
        d.insert(name.as_bytes(), num);
        if kind == FileKind::Directory {
            d.subdirs += 1;
            self.obj_mut(parent)?.nlink += 1;
        }
        self.touch(parent, now, true)?;
        Ok(num)
    }

    /// Forgets an object that has no name left, returning its budget.
    pub fn free(&mut self, num: u64) {
        if let Some(o) = self.objects.remove(&num) {
            self.release(o.bytes());
            self.free_numbers.push(num);
        }
    }

    // --- budgets -----------------------------------------------------------

    /// Takes `n` bytes of the budget, or fails with NoSpace.
    pub fn reserve(&mut self, n: u64) -> StoreResult<()> {
        match self.bytes.checked_add(n) {
            Some(total) if total <= self.limits.max_bytes => {
                self.bytes = total;
                Ok(())
            }
            _ => Err(crate::refused(StoreError::NoSpace, "byte budget exhausted")),
        }
    }

    pub fn release(&mut self, n: u64) {
        self.bytes = self.bytes.saturating_sub(n);
    }

    pub fn bytes_used(&self) -> u64 {
        self.bytes
    }

    pub fn objects_used(&self) -> u64 {
        self.objects.len() as u64
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    // --- resolution --------------------------------------------------------

    /// The object at `path`; no symlink is followed (an intermediate one is
    /// [`StoreError::Symlink`]).
    pub fn resolve(&self, path: &RelPath) -> StoreResult<u64> {
        let mut cur = ROOT;
        for name in path.components() {
            cur = self
                .dir(cur)?
                .get(name.as_bytes())
                .ok_or(StoreError::NotFound)?;
        }
        Ok(cur)
    }

    /// The directory at `path`.
    pub fn resolve_dir(&self, path: &RelPath) -> StoreResult<u64> {
        let num = self.resolve(path)?;
        self.dir(num)?;
        Ok(num)
    }

    /// The entry `name` of directory `dir`.
    pub fn child(&self, dir: u64, name: &Name) -> StoreResult<u64> {
        self.dir(dir)?
            .get(name.as_bytes())
            .ok_or(StoreError::NotFound)
    }

    /// The regular file at `path`.
    pub fn regular(&self, path: &RelPath) -> StoreResult<u64> {
        let num = self.resolve(path)?;
        self.obj(num)?.file()?;
        Ok(num)
    }

    // --- attributes --------------------------------------------------------

    /// The attributes of object `num`, reached at `path` (stores without
    /// stable identity derive the identity from it).
    pub fn attrs(&self, num: u64, path: &RelPath) -> StoreResult<Attrs> {
        let o = self.obj(num)?;
        let (size, space_used) = match &o.body {
            Body::File(d) => (d.size(), d.allocated()),
            Body::Dir(d) => (d.entries.len() as u64, 0),
            Body::Symlink(t) => (t.len() as u64, t.len() as u64),
            Body::Special => (0, 0),
        };
        Ok(Attrs {
            kind: o.kind,
            mode: o.mode,
            nlink: o.nlink,
            uid: o.uid,
            gid: o.gid,
            size,
            space_used,
            rdev: o.rdev,
            atime: o.atime,
            mtime: o.mtime,
            ctime: o.ctime,
            btime: Some(o.btime),
            change: o.change,
            identity: self.identity(num, path)?,
        })
    }

    pub fn identity(&self, num: u64, path: &RelPath) -> StoreResult<Identity> {
        let o = self.obj(num)?;
        Ok(if self.caps.stable_identity {
            Identity {
                space: 0,
                object: num,
                incarnation: o.incarnation,
            }
        } else {
            Identity {
                space: 0,
                object: path_number(path),
                incarnation: 0,
            }
        })
    }

    /// Number and incarnation: what names one object for good.
    pub fn key(&self, num: u64) -> StoreResult<(u64, u64)> {
        Ok((num, self.obj(num)?.incarnation))
    }

    /// Whether `num` still names the object `key` named.
    pub fn is(&self, num: u64, key: (u64, u64)) -> bool {
        num == key.0
            && self
                .objects
                .get(&num)
                .is_some_and(|o| o.incarnation == key.1)
    }
}

/// The mode reported for every object of a kind when the store records
/// none.
fn default_mode(kind: FileKind) -> u32 {
    match kind {
        FileKind::Directory => 0o755,
        FileKind::Symlink => 0o777,
        _ => 0o644,
    }
}

/// A number that names no object: a bug in this crate, reported rather
/// than panicked on.
fn dangling() -> StoreError {
    tracing::error!("memory store: an entry names an object that does not exist");
    StoreError::Io("dangling object number".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_numbers_differ_by_path() {
        let a = path_number(&RelPath::parse(b"a/b").expect("path"));
        let b = path_number(&RelPath::parse(b"ab").expect("path"));
        assert_ne!(a, b);
        assert_ne!(path_number(&RelPath::root()), 0);
    }

    #[test]
    fn directory_order_survives_removals() {
        let mut d = Dir::new(ROOT);
        d.insert(b"a", 10);
        d.insert(b"b", 11);
        d.insert(b"c", 12);
        assert_eq!(d.remove(b"b"), Some(11));
        d.insert(b"b", 13);
        assert_eq!(d.rebind(b"a", 14), Some(10));
        assert_eq!(d.rebind(b"zz", 15), None);
        let order: Vec<_> = d.order.iter().map(|(s, n)| (*s, n.clone())).collect();
        assert_eq!(
            order,
            vec![(3, b"a".to_vec()), (5, b"c".to_vec()), (6, b"b".to_vec())]
        );
        assert_eq!((d.get(b"b"), d.get(b"a")), (Some(13), Some(14)));
    }
}
