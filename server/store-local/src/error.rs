//! Failures in system-call terms, and their one translation into the
//! store's typed errors.
//!
//! Inside this crate every operation works with [`OsError`], which keeps
//! the errno where no kind names it, so code can still tell e.g. `ETXTBSY`
//! apart. At the [`nfs4d_store::Store`] boundary `?` turns it into a
//! [`StoreError`] through `From<OsError>`; no errno crosses that line.

use nfs4d_store::{NameError, StoreError};

/// A failure, with the errno-like kind it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    Perm,
    #[error("no space left on device")]
    NoSpace,
    #[error("disk quota exceeded")]
    Quota,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument")]
    Invalid,
    #[error("file too big")]
    TooBig,
    #[error("too many links")]
    TooManyLinks,
    /// The object vanished or was replaced while the operation ran.
    #[error("stale object")]
    Stale,
    /// A symlink where a directory component or a non-symlink object was
    /// required (`ELOOP` from `RESOLVE_NO_SYMLINKS`/`O_NOFOLLOW`).
    #[error("symbolic link in the way")]
    Symlink,
    /// A regular file was required but the object is a device, fifo or
    /// socket.
    #[error("wrong object type")]
    WrongType,
    /// The path crosses a mount point (`EXDEV`).
    #[error("cross-device")]
    CrossDevice,
    #[error("operation not supported")]
    NotSupported,
    /// A listing position this store never handed out.
    #[error("bad readdir cookie")]
    BadCookie,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("extended attribute too big")]
    XattrTooBig,
    /// `EAGAIN`: an open with `O_NONBLOCK` met a file lease that the
    /// kernel is now breaking, or `openat2` kept seeing a concurrent
    /// rename. Retrying later succeeds.
    #[error("resource temporarily unavailable")]
    WouldBlock,
    /// Any other errno.
    #[error("{}", std::io::Error::from_raw_os_error(*.0))]
    Io(i32),
}

impl OsError {
    /// Maps an errno to the closest kind; unknown values become
    /// [`Io`](Self::Io).
    pub(crate) fn from_errno(errno: i32) -> OsError {
        use OsError::*;
        match errno {
            libc::ENOENT => NotFound,
            libc::EEXIST => Exists,
            libc::ENOTDIR => NotDir,
            libc::EISDIR => IsDir,
            libc::ENOTEMPTY => NotEmpty,
            libc::EACCES => Access,
            libc::EPERM => Perm,
            libc::ENOSPC => NoSpace,
            libc::EDQUOT => Quota,
            libc::EROFS => ReadOnly,
            libc::ENAMETOOLONG => NameTooLong,
            libc::EINVAL => Invalid,
            libc::EFBIG => TooBig,
            libc::EMLINK => TooManyLinks,
            libc::ESTALE => Stale,
            libc::ELOOP => Symlink,
            libc::EXDEV => CrossDevice,
            libc::EOPNOTSUPP => NotSupported, // == ENOTSUP on Linux
            libc::ENODATA => NoXattr,         // getxattr(2): "ENODATA" (a.k.a. ENOATTR)
            libc::E2BIG => XattrTooBig,
            libc::EAGAIN => WouldBlock, // == EWOULDBLOCK on Linux
            e => Io(e),
        }
    }
}

impl From<std::io::Error> for OsError {
    fn from(e: std::io::Error) -> OsError {
        match e.raw_os_error() {
            Some(errno) => OsError::from_errno(errno),
            None => OsError::Io(libc::EIO),
        }
    }
}

impl From<NameError> for OsError {
    fn from(e: NameError) -> OsError {
        match e {
            NameError::TooLong => OsError::NameTooLong,
            _ => OsError::Invalid,
        }
    }
}

/// The one translation of system failures into store errors.
impl From<OsError> for StoreError {
    fn from(e: OsError) -> StoreError {
        match e {
            OsError::NotFound => StoreError::NotFound,
            OsError::Exists => StoreError::Exists,
            OsError::NotDir => StoreError::NotDir,
            OsError::IsDir => StoreError::IsDir,
            OsError::NotEmpty => StoreError::NotEmpty,
            OsError::Access => StoreError::Access,
            OsError::Perm => StoreError::Perm,
            OsError::NoSpace => StoreError::NoSpace,
            OsError::Quota => StoreError::Quota,
            OsError::ReadOnly => StoreError::ReadOnly,
            OsError::NameTooLong => StoreError::NameTooLong,
            OsError::Invalid => StoreError::Invalid,
            OsError::TooBig => StoreError::TooBig,
            OsError::TooManyLinks => StoreError::TooManyLinks,
            OsError::Stale => StoreError::Stale,
            OsError::Symlink => StoreError::Symlink,
            OsError::WrongType => StoreError::WrongType,
            OsError::CrossDevice => StoreError::CrossDevice,
            OsError::NotSupported => StoreError::Unsupported,
            OsError::BadCookie => StoreError::BadPosition,
            OsError::NoXattr => StoreError::NoXattr,
            OsError::XattrTooBig => StoreError::XattrTooBig,
            // The client is told to retry (NFS4ERR_DELAY): a lease break
            // completes within the kernel's lease-break time.
            e @ OsError::WouldBlock => StoreError::Transient(e.to_string()),
            e @ OsError::Io(_) => StoreError::Io(e.to_string()),
        }
    }
}

pub(crate) type OsResult<T> = Result<T, OsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        for (errno, kind, store) in [
            (libc::ENOENT, OsError::NotFound, StoreError::NotFound),
            (libc::EEXIST, OsError::Exists, StoreError::Exists),
            (libc::ENOTDIR, OsError::NotDir, StoreError::NotDir),
            (libc::EISDIR, OsError::IsDir, StoreError::IsDir),
            (libc::ENOTEMPTY, OsError::NotEmpty, StoreError::NotEmpty),
            (libc::EACCES, OsError::Access, StoreError::Access),
            (libc::EPERM, OsError::Perm, StoreError::Perm),
            (libc::ENOSPC, OsError::NoSpace, StoreError::NoSpace),
            (libc::EDQUOT, OsError::Quota, StoreError::Quota),
            (libc::EROFS, OsError::ReadOnly, StoreError::ReadOnly),
            (
                libc::ENAMETOOLONG,
                OsError::NameTooLong,
                StoreError::NameTooLong,
            ),
            (libc::EINVAL, OsError::Invalid, StoreError::Invalid),
            (libc::EFBIG, OsError::TooBig, StoreError::TooBig),
            (
                libc::EMLINK,
                OsError::TooManyLinks,
                StoreError::TooManyLinks,
            ),
            (libc::ESTALE, OsError::Stale, StoreError::Stale),
            (libc::ELOOP, OsError::Symlink, StoreError::Symlink),
            (libc::EXDEV, OsError::CrossDevice, StoreError::CrossDevice),
            (
                libc::EOPNOTSUPP,
                OsError::NotSupported,
                StoreError::Unsupported,
            ),
            (libc::ENODATA, OsError::NoXattr, StoreError::NoXattr),
            (libc::E2BIG, OsError::XattrTooBig, StoreError::XattrTooBig),
        ] {
            assert_eq!(OsError::from_errno(errno), kind, "errno {errno}");
            assert_eq!(StoreError::from(kind), store, "errno {errno}");
        }
        // ENOTSUP and EWOULDBLOCK are the same numbers on Linux.
        assert_eq!(OsError::from_errno(libc::ENOTSUP), OsError::NotSupported);
        assert_eq!(OsError::from_errno(libc::EWOULDBLOCK), OsError::WouldBlock);
        // A lease being broken: retry later, never EIO.
        assert!(matches!(
            StoreError::from(OsError::from_errno(libc::EWOULDBLOCK)),
            StoreError::Transient(_)
        ));
        // Errnos without a kind keep their description.
        for errno in [libc::EIO, libc::EBUSY, libc::ETXTBSY] {
            let kind = OsError::from_errno(errno);
            assert_eq!(kind, OsError::Io(errno));
            let described = std::io::Error::from_raw_os_error(errno).to_string();
            assert_eq!(StoreError::from(kind), StoreError::Io(described));
        }
        assert_eq!(
            StoreError::from(OsError::BadCookie),
            StoreError::BadPosition
        );
        let io = std::io::Error::from_raw_os_error(libc::ELOOP);
        assert_eq!(OsError::from(io), OsError::Symlink);
        assert_eq!(
            OsError::from(std::io::Error::other("x")),
            OsError::Io(libc::EIO)
        );
        assert_eq!(OsError::from(NameError::TooLong), OsError::NameTooLong);
        assert_eq!(OsError::from(NameError::Slash), OsError::Invalid);
    }
}
