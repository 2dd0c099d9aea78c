//! The local-directory store of nfs4d: exports a directory tree of the
//! server's own file system through the [`nfs4d_store::Store`] interface.
//!
//! [`LocalStore`] resolves every path with `openat2(2)` confined to the
//! export root (no symlink is ever followed, no mount crossed), keeps a
//! bounded cache of open descriptors and directory listings, groups
//! directory fsyncs, and makes NFS state visible to local processes: file
//! leases stand for delegations ([`nfs4d_store::Store::lease`]) and byte-range
//! locks are open-file-description locks ([`PosixLockFile`]).
//!
//! Object identities come from the inode: [`nfs4d_store::Identity`] is
//! `(device, inode number, incarnation)`, the incarnation taken from the
//! birth time or the inode generation ([`GenSource`]).
//!
//! Every `unsafe` block outside tests lives in `sys.rs`, each with the
//! reason it is sound.

mod attrcache;
mod dircache;
mod error;
mod fdcache;
mod groupsync;
mod lease;
mod local;
mod pipes;
mod posix_locks;
mod sys;

pub use local::{LocalStore, DEFAULT_FD_CACHE};
pub use pipes::{socket_pending, Loaded, Pipes};
pub use posix_locks::{nfs_range, os_range, PosixLockFile, OFFSET_MAX};

use error::{OsError, OsResult};
use nfs4d_store::XATTR_NAME_MAX;

/// Where [`nfs4d_store::Identity::incarnation`] comes from on a given
/// export. Delete and recreate often reuses an inode number (ext4, tmpfs),
/// so `(device, inode)` alone cannot tell a new file from the old one; the
/// incarnation does. In order of preference:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenSource {
    /// The birth time in nanoseconds (`statx` `STATX_BTIME`), where the
    /// file system reports it (ext4 with ≥256-byte inodes, xfs v5, btrfs,
    /// tmpfs). On file systems whose timestamps are coarse (jiffies, before
    /// Linux 6.6 multigrain timestamps) a delete and recreate with inode
    /// reuse within one tick can still collide.
    BirthTime,
    /// The inode generation from `ioctl(FS_IOC_GETVERSION)` (ext2/3/4, xfs,
    /// btrfs): costs an `open(2)` per stat, and only works for regular
    /// files and directories (others get 0).
    InodeGeneration,
    /// Neither: the incarnation is 0, and an object deleted and recreated
    /// with the same inode number looks identical.
    None,
}

/// NFS extended attributes (RFC 8276) map to Linux's `user.` namespace.
pub(crate) const XATTR_USER_PREFIX: &[u8] = b"user.";

// The prefixed name must fit Linux's XATTR_NAME_MAX (255 bytes).
const _: () = assert!(XATTR_USER_PREFIX.len() + XATTR_NAME_MAX <= 255);

/// Full on-disk xattr name (`user.<name>`), validated.
pub(crate) fn user_xattr_name(name: &[u8]) -> OsResult<Vec<u8>> {
    if name.is_empty() || name.contains(&0) {
        return Err(OsError::Invalid);
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(OsError::NameTooLong);
    }
    let mut full = XATTR_USER_PREFIX.to_vec();
    full.extend_from_slice(name);
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_store::{Name, NameError, RelPath};

    /// The name rules confinement relies on: no component the store is
    /// given can walk (`..`, `/`) or be truncated by the kernel (NUL).
    #[test]
    fn name_validation() {
        assert_eq!(Name::new(b""), Err(NameError::Empty));
        assert_eq!(Name::new(b"."), Err(NameError::Dot));
        assert_eq!(Name::new(b".."), Err(NameError::DotDot));
        assert_eq!(Name::new(b"a/b"), Err(NameError::Slash));
        assert_eq!(Name::new(b"/"), Err(NameError::Slash));
        assert_eq!(Name::new(b"a\0b"), Err(NameError::Nul));
        assert_eq!(Name::new(&[b'x'; 256]), Err(NameError::TooLong));
        assert!(Name::new(&[b'x'; 255]).is_ok());
        assert!(Name::new(b"...").is_ok());
        assert!(Name::new(b".hidden").is_ok());
        // Non-UTF-8 bytes are fine at this layer.
        assert!(Name::new(b"\xff\xfe").is_ok());
    }

    /// The path operations the store resolves with (`split_last`,
    /// `components`, `to_bytes` for `openat2`).
    #[test]
    fn relpath_ops() {
        let root = RelPath::root();
        assert!(root.is_root());
        assert_eq!(root.parent(), None);
        assert_eq!(root.file_name(), None);
        assert_eq!(root.to_string(), ".");
        assert_eq!(RelPath::parse(b""), Ok(RelPath::root()));

        let p = RelPath::parse(b"a/b/c").expect("valid");
        assert_eq!(p.len(), 3);
        assert_eq!(p.to_string(), "a/b/c");
        assert_eq!(p.file_name().map(Name::as_bytes), Some(&b"c"[..]));
        let parent = p.parent().expect("has parent");
        assert_eq!(parent, RelPath::parse(b"a/b").expect("valid"));
        assert_eq!(parent.join(&Name::new(b"c").expect("valid")), p);
        assert!(p.starts_with(&parent));
        assert!(p.starts_with(&root));
        assert!(!p.starts_with(&RelPath::parse(b"a/bb").expect("valid")));

        for bad in [&b"/a"[..], b"a/", b"a//b", b"a/../b", b"./a", b"a\0"] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn xattr_names() {
        assert_eq!(user_xattr_name(b"foo"), Ok(b"user.foo".to_vec()));
        assert_eq!(user_xattr_name(b""), Err(OsError::Invalid));
        assert_eq!(user_xattr_name(b"a\0"), Err(OsError::Invalid));
        assert!(user_xattr_name(&[b'x'; XATTR_NAME_MAX]).is_ok());
        assert_eq!(
            user_xattr_name(&[b'x'; XATTR_NAME_MAX + 1]),
            Err(OsError::NameTooLong)
        );
    }
}
