//! Errors of the etcd layer.

use nfs4d_kv::KvError;

/// Why a cluster operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// etcd cannot be reached or has no quorum now; the operation did not
    /// happen or its outcome is unknown. Clients are told NFS4ERR_DELAY
    /// and retry.
    #[error("etcd unavailable: {0}")]
    Unavailable(String),
    /// This head lost its membership (its lease expired or its record was
    /// replaced): it must stop serving and may not write shared state.
    #[error("this head is fenced: {0}")]
    Fenced(String),
    /// The `[cluster]` configuration is unusable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// Another live process registered the same head id.
    #[error("head id {head:?} is held by a live registration (lease {lease:x})")]
    HeadInUse {
        /// The contested head id.
        head: String,
        /// The etcd lease of the registration that holds it.
        lease: i64,
    },
    /// A record in etcd does not decode; it was not written by this
    /// version of nfs4d, or was damaged.
    #[error("corrupt cluster record at {key}: {why}")]
    Corrupt {
        /// The etcd key, printable.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// A request etcd refused for a reason that retrying will not fix.
    #[error("etcd refused the request: {0}")]
    Refused(String),
    /// A grace-database transition that the rules do not allow now.
    #[error("grace transition refused: {0}")]
    Grace(String),
}

/// Result of cluster operations.
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

impl From<ClusterError> for KvError {
    fn from(e: ClusterError) -> KvError {
        match e {
            // A fenced head must not write; to its callers that is a store
            // it cannot use, like one without quorum, and they answer
            // NFS4ERR_DELAY while the head stops serving.
            ClusterError::Unavailable(_) | ClusterError::Fenced(_) => {
                KvError::Unavailable(e.to_string())
            }
            other => KvError::Store(other.to_string()),
        }
    }
}

/// Printable form of an etcd key for messages (keys may hold any bytes).
pub(crate) fn show_key(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}
