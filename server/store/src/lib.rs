//! The store interface of nfs4d.
//!
//! A store names objects by their path relative to the export root
//! ([`RelPath`]) and has no stable inode numbers the server could put in a
//! filehandle; the handle map above this layer turns paths into handles.
//! What a store does provide is an [`Identity`] per object, so the layers
//! above can tell "the same object, maybe renamed" from "a different object
//! that now lives at the same path".
//!
//! Stores say what they can do ([`Capabilities`]); a call for something a
//! store cannot do returns [`StoreError::Unsupported`] and the server
//! answers with the RFC's error, never EIO.
//!
//! Rules every store follows (checked by [`conformance`]):
//! - Calls are synchronous and may block; the server runs them off its
//!   network threads, concurrently, so stores are `Send + Sync`.
//! - No call panics on any input; every failure is a [`StoreError`].
//! - Symlinks are never followed, neither as intermediate components nor as
//!   the final one: the NFS client resolves symlinks itself (LOOKUP of a
//!   symlink is NFS4ERR_SYMLINK, RFC 8881 §18.13).
//! - Permission checks happen above this layer; ownership of new objects is
//!   passed explicitly as an [`Owner`].
//! - Data has a lifecycle: [`Store::open`] before the first write of an
//!   open, [`Store::write`] (which may only stage the data when unstable),
//!   [`Store::commit`] to make it durable, and [`Store::close`] after the
//!   last close, which may publish staged data. A store that writes in place
//!   keeps the defaults.
//! - A failure worth retrying (unreachable, throttled, staging full) is
//!   [`StoreError::Transient`]: the client is told to retry.

mod caps;
pub mod conformance;
mod error;
mod locks;
mod names;
mod piped;
mod types;

pub use caps::{Capabilities, DirRename, Positions};
pub use error::{StoreError, StoreResult};
pub use locks::{LocalConflict, LockError, LockFile, LOCAL_LOCK_MAX};
pub use names::{Name, NameError, RelPath, NAME_MAX};
pub use piped::{PipedData, PipedSource};
pub use types::{
    Attrs, Created, Entry, FileKind, FsStats, Identity, LeaseBreak, ListPos, Owner, SetAttrs,
    SetTime, Stability, Timespec, XattrSet,
};

/// Longest extended-attribute value, in bytes (Linux `XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;

/// Longest extended-attribute name, in bytes (Linux caps `user.<name>` at
/// 255 bytes).
pub const XATTR_NAME_MAX: usize = 255 - b"user.".len();

/// A path-based store. All paths are relative to the export root; no method
/// follows a symlink. Methods block.
pub trait Store: Send + Sync + 'static {
    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Attributes of the object at `path`; a final symlink is reported as a
    /// symlink (lstat semantics).
    fn stat(&self, path: &RelPath) -> StoreResult<Attrs>;

    /// Attributes of `dir/name` (lstat semantics).
    fn lookup(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs>;

    // --- data ---------------------------------------------------------------

    /// A client opened the regular file at `path` (for writing when
    /// `write`): the first of the opens the server holds on it. Stores
    /// that stage data may prepare; the default does nothing.
    fn open(&self, path: &RelPath, write: bool) -> StoreResult<()> {
        let _ = (path, write);
        Ok(())
    }

    /// The last open of the file at `path` was closed. A store that stages
    /// data publishes what is staged; the default does nothing.
    fn close(&self, path: &RelPath) -> StoreResult<()> {
        let _ = path;
        Ok(())
    }

    /// Appends up to `len` bytes read at `offset` to `buf`. Returns the
    /// number of bytes appended and whether the read reached end of file.
    /// Reading at or past end of file yields `(0, true)`. Data written but
    /// not yet committed is read back.
    fn read(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> StoreResult<(usize, bool)>;

    /// Reads as [`Store::read`] does, but leaves the bytes in a kernel pipe
    /// rather than copying them into a buffer ([`PipedData`]). Returns
    /// `None` when this store cannot, or not now (no pipe to spare, a file
    /// system without `splice`, nothing to read): the caller then reads.
    /// The data may be shorter than `len` (a short read) even before end
    /// of file; the flag says whether the read reached end of file.
    fn read_piped(
        &self,
        path: &RelPath,
        offset: u64,
        len: usize,
    ) -> StoreResult<Option<(Box<dyn PipedData>, bool)>> {
        let _ = (path, offset, len);
        Ok(None)
    }

    /// Writes `data` at `offset`. Returns how many bytes were written (less
    /// than `data.len()` only if an error stopped a partial write) and how
    /// durable they are now: at least `stability`, more if the store made
    /// them so.
    fn write(
        &self,
        path: &RelPath,
        offset: u64,
        data: &[u8],
        stability: Stability,
    ) -> StoreResult<(usize, Stability)>;

    /// Writes the bytes waiting in `data`, all of them, at `offset`, as
    /// [`Store::write`] does. A store that can splice from a pipe into its
    /// file overrides it; this one reads them out into a buffer first.
    fn write_piped(
        &self,
        path: &RelPath,
        offset: u64,
        data: &mut dyn PipedSource,
        stability: Stability,
    ) -> StoreResult<(usize, Stability)> {
        let buf = data
            .read_out()
            .map_err(|e| StoreError::Io(format!("reading a spliced WRITE's pipe: {e}")))?;
        self.write(path, offset, &buf, stability)
    }

    /// Makes a regular file's data and metadata durable (NFS COMMIT).
    fn commit(&self, path: &RelPath) -> StoreResult<()>;

    // --- namespace ----------------------------------------------------------

    /// Creates a regular file `dir/name` with permission bits `mode` owned
    /// by `owner`. With `exclusive` an existing object is an error
    /// ([`StoreError::Exists`]); without, an existing regular file is
    /// returned unchanged with `created == false` (and a non-file fails,
    /// e.g. [`StoreError::IsDir`]).
    fn create_file(
        &self,
        dir: &RelPath,
        name: &Name,
        mode: u32,
        owner: Owner,
        exclusive: bool,
    ) -> StoreResult<Created>;

    /// Creates a directory.
    fn mkdir(&self, dir: &RelPath, name: &Name, mode: u32, owner: Owner) -> StoreResult<Attrs>;

    /// Creates a symlink whose target is stored verbatim; it may point
    /// anywhere — it is data, never followed by the server.
    /// [`StoreError::Unsupported`] without [`Capabilities::symlinks`].
    fn symlink(
        &self,
        dir: &RelPath,
        name: &Name,
        target: &[u8],
        owner: Owner,
    ) -> StoreResult<Attrs> {
        let _ = (dir, name, target, owner);
        Err(StoreError::Unsupported)
    }

    /// Creates a fifo, socket, block or char device (`kind` must be one of
    /// those, else [`StoreError::Invalid`]). `rdev` is `(major, minor)`.
    /// [`StoreError::Unsupported`] without [`Capabilities::special_files`].
    fn mknod(
        &self,
        dir: &RelPath,
        name: &Name,
        kind: FileKind,
        mode: u32,
        rdev: (u32, u32),
        owner: Owner,
    ) -> StoreResult<Attrs> {
        let _ = (dir, name, kind, mode, rdev, owner);
        Err(StoreError::Unsupported)
    }

    /// Hard-links the object at `src` (a symlink is linked itself, not its
    /// target) as `dst_dir/dst_name`. Returns the object's new attributes.
    /// [`StoreError::Unsupported`] without [`Capabilities::hard_links`].
    fn link(&self, src: &RelPath, dst_dir: &RelPath, dst_name: &Name) -> StoreResult<Attrs> {
        let _ = (src, dst_dir, dst_name);
        Err(StoreError::Unsupported)
    }

    /// Renames `src_dir/src_name` to `dst_dir/dst_name`, replacing a
    /// compatible target (both directories, the target empty, or both
    /// not); [`Capabilities::atomic_rename`] says whether the replacement
    /// is one step. A directory's rename follows
    /// [`Capabilities::dir_rename`].
    fn rename(
        &self,
        src_dir: &RelPath,
        src_name: &Name,
        dst_dir: &RelPath,
        dst_name: &Name,
    ) -> StoreResult<()>;

    /// Removes a non-directory and returns its attributes from just before
    /// removal. A directory fails with [`StoreError::IsDir`].
    fn remove(&self, dir: &RelPath, name: &Name) -> StoreResult<Attrs>;

    /// Removes an empty directory.
    fn rmdir(&self, dir: &RelPath, name: &Name) -> StoreResult<()>;

    /// The symlink's target bytes, verbatim.
    fn readlink(&self, path: &RelPath) -> StoreResult<Vec<u8>> {
        let _ = path;
        Err(StoreError::Unsupported)
    }

    /// Visits the entries of `dir` (without `.` and `..`) after `from`, in
    /// order, each with its attributes when `stat` is set, until `visit`
    /// returns false (`Ok(false)`) or the end is reached (`Ok(true)`). An
    /// entry removed before it could be stat'ed is skipped. Resuming from
    /// an entry's [`Entry::next`] continues right after it, even when
    /// other entries were added or removed in between. The entry `visit`
    /// refuses (returns false for) counts as not taken: a server whose
    /// reply is full resumes from the `next` of the entry before it.
    fn list(
        &self,
        dir: &RelPath,
        from: &ListPos,
        stat: bool,
        visit: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool>;

    /// Applies `set` (see [`SetAttrs`] for the order) and returns the new
    /// attributes. Changing the mode of a symlink may be
    /// [`StoreError::Unsupported`] (Linux has no `lchmod`).
    fn setattr(&self, path: &RelPath, set: &SetAttrs) -> StoreResult<Attrs>;

    /// Space and file counts.
    fn statfs(&self) -> StoreResult<FsStats>;

    /// Makes the entries of directory `dir` durable (after a create,
    /// rename or remove in it). Stores whose namespace changes are durable
    /// when they return keep the default.
    fn sync_dir(&self, dir: &RelPath) -> StoreResult<()> {
        let _ = dir;
        Ok(())
    }

    // --- extended attributes (RFC 8276) ---------------------------------------
    //
    // Without [`Capabilities::xattrs`] every call is
    // [`StoreError::Unsupported`] (the defaults).

    /// Value of the user extended attribute `name`.
    fn getxattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<Vec<u8>> {
        let _ = (path, name);
        Err(StoreError::Unsupported)
    }

    /// Sets the user extended attribute `name`.
    fn setxattr(
        &self,
        path: &RelPath,
        name: &[u8],
        value: &[u8],
        mode: XattrSet,
    ) -> StoreResult<()> {
        let _ = (path, name, value, mode);
        Err(StoreError::Unsupported)
    }

    /// Names of the user extended attributes.
    fn listxattr(&self, path: &RelPath) -> StoreResult<Vec<Vec<u8>>> {
        let _ = path;
        Err(StoreError::Unsupported)
    }

    /// Removes the user extended attribute `name`.
    fn removexattr(&self, path: &RelPath, name: &[u8]) -> StoreResult<()> {
        let _ = (path, name);
        Err(StoreError::Unsupported)
    }

    // --- space management and server-side copy (NFSv4.2, RFC 7862) ---------
    //
    // Without [`Capabilities::sparse`], `copy` or `clone` the defaults
    // report [`StoreError::Unsupported`] (NFS4ERR_NOTSUPP).

    /// Reserves backing space for `len` bytes at `offset` of a regular file,
    /// extending its size when the range ends past end of file. `len` must
    /// be non-zero and the range must end at most at `i64::MAX`
    /// ([`StoreError::TooBig`] otherwise).
    fn allocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        let _ = (path, offset, len);
        Err(StoreError::Unsupported)
    }

    /// Releases the space of `len` bytes at `offset` of a regular file: the
    /// range reads back as zeros and the size is unchanged. A range past
    /// end of file is a no-op.
    fn deallocate(&self, path: &RelPath, offset: u64, len: u64) -> StoreResult<()> {
        let _ = (path, offset, len);
        Err(StoreError::Unsupported)
    }

    /// The first offset at or after `offset` that holds data, or `None` when
    /// there is none before end of file (or `offset` is at or past it).
    /// Stores without hole tracking report the whole file as data.
    fn seek_data(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        let _ = (path, offset);
        Err(StoreError::Unsupported)
    }

    /// The first offset at or after `offset` inside a hole — end of file
    /// counts as one — or `None` when `offset` is at or past end of file.
    fn seek_hole(&self, path: &RelPath, offset: u64) -> StoreResult<Option<u64>> {
        let _ = (path, offset);
        Err(StoreError::Unsupported)
    }

    /// Makes `len` bytes of `dst` at `dst_off` share the storage of `src` at
    /// `src_off`. Stores that cannot share extents, or not between these
    /// two files, give [`StoreError::Unsupported`]; misaligned ranges
    /// [`StoreError::Invalid`].
    fn clone_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<()> {
        let _ = (src, src_off, dst, dst_off, len);
        Err(StoreError::Unsupported)
    }

    /// Copies up to `len` bytes of `src` at `src_off` to `dst` at `dst_off`
    /// inside the store. Returns the bytes copied: fewer than `len` only
    /// when the source ends first (or an error stops a partial copy).
    /// Overlapping ranges of one file are [`StoreError::Invalid`]. Not
    /// durable until [`Store::commit`] of `dst`.
    fn copy_range(
        &self,
        src: &RelPath,
        src_off: u64,
        dst: &RelPath,
        dst_off: u64,
        len: u64,
    ) -> StoreResult<u64> {
        let _ = (src, src_off, dst, dst_off, len);
        Err(StoreError::Unsupported)
    }

    // --- delegations and locks seen by local users ------------------------------

    /// Makes local users of the store visible to delegations: takes a lease
    /// on the object at `path` (a write lease for a write delegation, a
    /// read lease otherwise), named `tag`, that a local process opening it
    /// in a conflicting way breaks ([`Store::leases`] reports it). Returns
    /// false when a local user already conflicts, so no delegation may be
    /// granted. Taking a lease already held under `tag` is a no-op. Stores
    /// without [`Capabilities::leases`] have nothing to watch and say true.
    fn lease(&self, path: &RelPath, write: bool, tag: u64) -> StoreResult<bool> {
        let _ = (path, write, tag);
        Ok(true)
    }

    /// Releases the lease named `tag`, if held.
    fn unlease(&self, tag: u64) {
        let _ = tag;
    }

    /// The leases held: their tags, and what, if anything, a local process
    /// did that conflicts with each one.
    fn leases(&self) -> Vec<(u64, Option<LeaseBreak>)> {
        Vec::new()
    }

    /// A new lock file for the regular file at `path` that will carry one
    /// NFS lock owner's byte-range locks as the store's own locks, so local
    /// processes see them ([`LockFile`]). Opened for writing when `write`
    /// and the file allows it. `Ok(None)` means the store has no such locks
    /// and the server's own lock table is the only arbiter (the default).
    fn open_lock_file(
        &self,
        path: &RelPath,
        write: bool,
    ) -> StoreResult<Option<Box<dyn LockFile>>> {
        let _ = (path, write);
        Ok(None)
    }
}
