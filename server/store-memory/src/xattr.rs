//! User extended attributes (RFC 8276), on regular files and directories
//! as Linux keeps `user.*` attributes (xattr(7)).

use nfs4d_store::{
    FileKind, RelPath, StoreError, StoreResult, Timespec, XattrSet, XATTR_NAME_MAX, XATTR_SIZE_MAX,
};

use crate::refused;
use crate::tree::Tree;

/// Most xattrs one object carries: the byte budget counts names and
/// values, this bounds the bookkeeping of many tiny ones.
pub const MAX_XATTRS: usize = 1024;

fn check_name(name: &[u8]) -> StoreResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(refused(
            StoreError::Invalid,
            "empty xattr name or NUL in it",
        ));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(refused(StoreError::NameTooLong, "xattr name too long"));
    }
    Ok(())
}

impl Tree {
    /// The object at `path` if it can carry xattrs.
    fn xattr_target(&self, path: &RelPath) -> StoreResult<Option<u64>> {
        if !self.caps.xattrs {
            return Err(StoreError::Unsupported);
        }
        let num = self.resolve(path)?;
        Ok(match self.obj(num)?.kind {
            FileKind::Regular | FileKind::Directory => Some(num),
            _ => None,
        })
    }

    pub fn getxattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<Vec<u8>> {
        if !self.caps.xattrs {
            return Err(StoreError::Unsupported);
        }
        check_name(name)?;
        let Some(num) = self.xattr_target(path)? else {
            return Err(StoreError::NoXattr);
        };
        self.obj(num)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(StoreError::NoXattr)
    }

    pub fn setxattr(
        &mut self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
        now: Timespec,
    ) -> StoreResult<()> {
        if !self.caps.xattrs {
            return Err(StoreError::Unsupported);
        }
        check_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(refused(StoreError::XattrTooBig, "xattr value too long"));
        }
        let Some(num) = self.xattr_target(path)? else {
            return Err(StoreError::Perm);
        };
        let old = self
            .obj(num)?
            .xattrs
            .get(name)
            .map(|v| (name.len() + v.len()) as u64);
        match (mode, old) {
            (XattrSet::Create, Some(_)) => return Err(StoreError::Exists),
            (XattrSet::Replace, None) => return Err(StoreError::NoXattr),
            _ => {}
        }
        if old.is_none() && self.obj(num)?.xattrs.len() >= MAX_XATTRS {
            return Err(refused(
                StoreError::NoSpace,
                "too many xattrs on one object",
            ));
        }
        let new = (name.len() + value.len()) as u64;
        let old = old.unwrap_or(0);
        if new > old {
            self.reserve(new - old)?;
        } else {
            self.release(old - new);
        }
        self.obj_mut(num)?
            .xattrs
            .insert(name.to_vec(), value.to_vec());
        self.touch(num, now, false)
    }

    pub fn listxattr(&self, path: &RelPath) -> StoreResult<Vec<Vec<u8>>> {
        let Some(num) = self.xattr_target(path)? else {
            return Ok(Vec::new());
        };
        Ok(self.obj(num)?.xattrs.keys().cloned().collect())
    }

    pub fn removexattr(&mut self, path: &RelPath, name: &[u8], now: Timespec) -> StoreResult<()> {
        if !self.caps.xattrs {
            return Err(StoreError::Unsupported);
        }
        check_name(name)?;
        let Some(num) = self.xattr_target(path)? else {
            return Err(StoreError::Perm);
        };
        let value = self
            .obj_mut(num)?
            .xattrs
            .remove(name)
            .ok_or(StoreError::NoXattr)?;
        self.release((name.len() + value.len()) as u64);
        self.touch(num, now, false)
    }
}
