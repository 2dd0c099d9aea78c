//! What a store can do. The server reads these once per export and answers
//! what a store cannot do with the RFC's error or attribute (NFS4ERR_NOTSUPP,
//! `link_support`, `symlink_support`, `fh_expire_type`, …), never with EIO.

/// How a store moves a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRename {
    /// In one step, whatever it holds (`rename(2)`).
    Any,
    /// Object by object, up to this many objects below it; past that
    /// [`crate::StoreError::CrossDevice`] (NFS4ERR_XDEV), and the client's
    /// `mv` copies by itself.
    UpTo(u64),
    /// Only empty directories.
    EmptyOnly,
}

/// The kind of listing positions a store hands out ([`crate::ListPos`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// Compact offsets, valid across restarts: used as READDIR cookies
    /// as they are.
    Offsets,
    /// Keys or tokens: the server keeps a bounded table of cookies for
    /// them.
    Keys,
}

/// The capabilities of a store (compare OpenDAL's `Capability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// LINK works (`link_support`).
    pub hard_links: bool,
    /// Symbolic links can be created and read (`symlink_support`).
    pub symlinks: bool,
    /// Devices, fifos and sockets can be created.
    pub special_files: bool,
    /// A rename replaces an existing target in one atomic step.
    pub atomic_rename: bool,
    /// How directories are renamed.
    pub dir_rename: DirRename,
    /// Writes change bytes in place; without it the store rewrites the
    /// object (staged) to apply a partial write.
    pub partial_writes: bool,
    /// Holes: ALLOCATE, DEALLOCATE and SEEK know about them.
    pub sparse: bool,
    /// Extended attributes (RFC 8276).
    pub xattrs: bool,
    /// Byte-range locks are taken as locks that local processes see
    /// ([`crate::Store::open_lock_file`]).
    pub local_locks: bool,
    /// Leases that a local process breaks back delegations
    /// ([`crate::Store::lease`]).
    pub leases: bool,
    /// An object keeps its [`crate::Identity`] across renames and data
    /// changes, and the store can tell when another object replaced it:
    /// persistent filehandles are possible. Without it, handles are
    /// volatile (RFC 8881 §4.2.3).
    pub stable_identity: bool,
    /// Server-side copy within the store (COPY).
    pub copy: bool,
    /// Shared extents (CLONE).
    pub clone: bool,
    /// The store records owner, group and mode of each object. Without
    /// it objects report fixed values, and SETATTR of mode, owner or group
    /// is [`crate::StoreError::Unsupported`] (NFS4ERR_ATTRNOTSUPP).
    pub ownership: bool,
    /// What listing positions look like.
    pub positions: Positions,
}

impl Capabilities {
    /// Everything a local POSIX directory offers.
    pub const POSIX: Capabilities = Capabilities {
        hard_links: true,
        symlinks: true,
        special_files: true,
        atomic_rename: true,
        dir_rename: DirRename::Any,
        partial_writes: true,
        sparse: true,
        xattrs: true,
        local_locks: true,
        leases: true,
        stable_identity: true,
        copy: true,
        clone: true,
        ownership: true,
        positions: Positions::Offsets,
    };
}
