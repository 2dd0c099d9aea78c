//! Regular-file data and attributes: READ, WRITE, SETATTR, and the
//! NFSv4.2 space and copy operations (RFC 7862).

use nfs4d_store::{FileKind, RelPath, SetAttrs, SetTime, StoreError, StoreResult, Timespec};

use crate::data::{CHUNK, MAX_FILE_SIZE};
use crate::refused;
use crate::tree::{check_mode, Tree};

/// Largest read served in one call; a capped read returns fewer bytes
/// without end of file, and the client reads on.
pub const MAX_READ: usize = 16 << 20;

/// Fails with TooBig unless `[offset, offset + len)` fits in a file.
fn check_range(offset: u64, len: u64) -> StoreResult<()> {
    match offset.checked_add(len) {
        Some(end) if end <= MAX_FILE_SIZE => Ok(()),
        _ => Err(refused(
            StoreError::TooBig,
            "range past the largest file size",
        )),
    }
}

/// Whether `[a, a + len)` and `[b, b + len)` overlap.
fn overlaps(a: u64, b: u64, len: u64) -> bool {
    a.abs_diff(b) < len
}

impl Tree {
    pub fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)> {
        let d = self.obj(self.regular(path)?)?.file()?;
        if offset >= d.size() {
            return Ok((0, true));
        }
        let n = d.read(offset, len.min(MAX_READ), buf);
        Ok((n, offset + n as u64 >= d.size()))
    }

    pub fn write(
        &mut self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        now: Timespec,
    ) -> StoreResult<usize> {
        check_range(offset, data.len() as u64)?;
        let num = self.regular(path)?;
        if data.is_empty() {
            return Ok(0);
        }
        let need = self.obj(num)?.file()?.missing(offset, data.len() as u64);
        self.reserve(need)?;
        self.obj_mut(num)?.file_mut()?.write(offset, data);
        self.touch(num, now, true)?;
        Ok(data.len())
    }

    /// Checks that `path` is a regular file (COMMIT's only target).
    pub fn commit(&self, path: &RelPath) -> StoreResult<()> {
        self.regular(path).map(drop)
    }

    /// Applies `set` in the order owner → mode → size → times; everything
    /// is checked before anything changes.
    pub fn setattr(&mut self, path: &RelPath, set: &SetAttrs, now: Timespec) -> StoreResult<u64> {
        if let Some(mode) = set.mode {
            check_mode(mode)?;
        }
        for t in [set.atime, set.mtime].into_iter().flatten() {
            if matches!(t, SetTime::Client(_, nsec) if nsec >= 1_000_000_000) {
                return Err(refused(StoreError::Invalid, "nanoseconds past a second"));
            }
        }
        if set.size.is_some_and(|s| s > MAX_FILE_SIZE) {
            return Err(refused(
                StoreError::TooBig,
                "size past the largest file size",
            ));
        }
        let owns = set.mode.is_some() || set.uid.is_some() || set.gid.is_some();
        if owns && !self.caps.ownership {
            return Err(StoreError::Unsupported);
        }
        let num = self.resolve(path)?;
        let o = self.obj(num)?;
        if set.size.is_some() {
            o.file()?;
        }
        if set.mode.is_some() && o.kind == FileKind::Symlink {
            // As on Linux, which has no lchmod.
            return Err(StoreError::Unsupported);
        }
        if *set == SetAttrs::default() {
            return Ok(num);
        }

        let o = self.obj_mut(num)?;
        if set.uid.is_some() || set.gid.is_some() {
            o.uid = set.uid.unwrap_or(o.uid);
            o.gid = set.gid.unwrap_or(o.gid);
            // chown(2) clears set-user-ID, and set-group-ID where group
            // execution is on, of anything but a directory.
            if o.kind != FileKind::Directory {
                o.mode &= !0o4000;
                if o.mode & 0o010 != 0 {
                    o.mode &= !0o2000;
                }
            }
        }
        if let Some(mode) = set.mode {
            o.mode = mode;
        }
        let mut freed = 0;
        if let Some(size) = set.size {
            freed = o.file_mut()?.truncate(size);
        }
        self.release(freed);
        self.touch(num, now, set.size.is_some())?;
        let o = self.obj_mut(num)?;
        let time = |t: SetTime| match t {
            SetTime::ServerNow => now,
            SetTime::Client(sec, nsec) => Timespec { sec, nsec },
        };
        if let Some(t) = set.atime {
            o.atime = time(t);
        }
        if let Some(t) = set.mtime {
            o.mtime = time(t);
        }
        Ok(num)
    }

    pub fn allocate(
        &mut self,
        path: &RelPath,
        offset: u64,
        len: u64,
        now: Timespec,
    ) -> StoreResult<()> {
        if !self.caps.sparse {
            return Err(StoreError::Unsupported);
        }
        if len == 0 {
            return Err(refused(StoreError::Invalid, "allocate of nothing"));
        }
        check_range(offset, len)?;
        let num = self.regular(path)?;
        let need = self.obj(num)?.file()?.missing(offset, len);
        self.reserve(need)?;
        self.obj_mut(num)?.file_mut()?.allocate(offset, len);
        self.touch(num, now, true)
    }

    pub fn deallocate(
        &mut self,
        path: &RelPath,
        offset: u64,
        len: u64,
        now: Timespec,
    ) -> StoreResult<()> {
        if !self.caps.sparse {
            return Err(StoreError::Unsupported);
        }
        if len == 0 {
            return Err(refused(StoreError::Invalid, "deallocate of nothing"));
        }
        check_range(offset, len)?;
        let num = self.regular(path)?;
        let freed = self.obj_mut(num)?.file_mut()?.zero_range(offset, len);
        self.release(freed);
        self.touch(num, now, true)
    }

    pub fn seek(&self, path: &RelPath, offset: u64, data: bool) -> StoreResult<Option<u64>> {
        if !self.caps.sparse {
            return Err(StoreError::Unsupported);
        }
        let d = self.obj(self.regular(path)?)?.file()?;
        Ok(if data {
            d.seek_data(offset)
        } else {
            d.seek_hole(offset)
        })
    }

    pub fn copy_range(
        &mut self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
        now: Timespec,
    ) -> StoreResult<u64> {
        if !self.caps.copy {
            return Err(StoreError::Unsupported);
        }
        check_range(src_off, len)?;
        check_range(dst_off, len)?;
        let (s, d) = (self.regular(src)?, self.regular(dst)?);
        if s == d && overlaps(src_off, dst_off, len) {
            return Err(refused(
                StoreError::Invalid,
                "copy between overlapping ranges",
            ));
        }
        self.copy_data(s, src_off, d, dst_off, len, now)
    }

    /// CLONE as a copy: the memory store shares nothing, but a clone must
    /// look like one (aligned ranges inside the source).
    pub fn clone_range(
        &mut self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
        now: Timespec,
    ) -> StoreResult<()> {
        if !self.caps.clone {
            return Err(StoreError::Unsupported);
        }
        check_range(src_off, len)?;
        check_range(dst_off, len)?;
        let (s, d) = (self.regular(src)?, self.regular(dst)?);
        let size = self.obj(s)?.file()?.size();
        let chunk = CHUNK as u64;
        let aligned = src_off.is_multiple_of(chunk)
            && dst_off.is_multiple_of(chunk)
            && (len.is_multiple_of(chunk) || src_off + len == size);
        if !aligned || src_off + len > size || (s == d && overlaps(src_off, dst_off, len)) {
            return Err(refused(StoreError::Invalid, "clone of a misaligned range"));
        }
        match self.copy_data(s, src_off, d, dst_off, len, now)? {
            done if done == len => Ok(()),
            _ => Err(StoreError::NoSpace),
        }
    }

    /// Copies up to `len` bytes piece by piece, holes as holes; stops early
    /// (reporting what was copied) when the budget runs out midway.
    fn copy_data(
        &mut self,
        s: u64,
        src_off: u64,
        d: u64,
        dst_off: u64,
        len: u64,
        now: Timespec,
    ) -> StoreResult<u64> {
        let end = src_off + len;
        let mut done = 0u64;
        while let Some((n, bytes)) = self.obj(s)?.file()?.piece(src_off + done, end) {
            let at = dst_off + done;
            match bytes {
                Some(b) => {
                    let need = self.obj(d)?.file()?.missing(at, n);
                    if let Err(e) = self.reserve(need) {
                        if done == 0 {
                            return Err(e);
                        }
                        break;
                    }
                    self.obj_mut(d)?.file_mut()?.write(at, &b);
                }
                None => {
                    let f = self.obj_mut(d)?.file_mut()?;
                    let freed = f.zero_range(at, n);
                    if at + n > f.size() {
                        f.truncate(at + n);
                    }
                    self.release(freed);
                }
            }
            done += n;
        }
        if done > 0 {
            self.touch(d, now, true)?;
        }
        Ok(done)
    }
}
