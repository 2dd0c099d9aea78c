//! Typed store errors. Stores translate their own failures (errno values,
//! HTTP statuses) into these kinds; the server maps each kind to an
//! `nfsstat4` in one place (the core's error module).

use crate::names::NameError;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
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
    /// The store refused the server's own credentials or permissions.
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    Perm,
    #[error("no space left")]
    NoSpace,
    #[error("quota exceeded")]
    Quota,
    #[error("read-only store")]
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
    /// required. Symlinks are never followed by a store.
    #[error("symbolic link in the way")]
    Symlink,
    /// A regular file was required but the object is a device, fifo or
    /// socket.
    #[error("wrong object type")]
    WrongType,
    /// The path crosses into another file system, or the store cannot do
    /// this rename in one step (a directory too large to move object by
    /// object): the client copies by itself.
    #[error("cross-device")]
    CrossDevice,
    /// The store cannot do this at all ([`crate::Capabilities`] says so).
    #[error("not supported by this store")]
    Unsupported,
    /// A listing position this store never handed out, or one no longer
    /// valid.
    #[error("bad listing position")]
    BadPosition,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("extended attribute too big")]
    XattrTooBig,
    /// Try again later: the store is unreachable, throttling, or over a
    /// staging bound. Answered with NFS4ERR_DELAY, never EIO.
    #[error("temporarily unavailable: {0}")]
    Transient(String),
    /// The store cannot be set up (e.g. the kernel lacks a system call, a
    /// bucket does not exist).
    #[error("store setup: {0}")]
    Setup(String),
    /// Any other failure, with the store's own description.
    #[error("I/O error: {0}")]
    Io(String),
}

impl From<NameError> for StoreError {
    fn from(e: NameError) -> StoreError {
        match e {
            NameError::TooLong => StoreError::NameTooLong,
            _ => StoreError::Invalid,
        }
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, StoreError>;
