//! Translation of OpenDAL and HTTP failures into store errors. Anything
//! worth retrying (unreachable, throttled, 5xx) is `Transient` once the
//! retries are spent, so the client hears NFS4ERR_DELAY and never EIO on a
//! hiccup; refused credentials are `Access` with one clear log line.

use nfs4d_store::StoreError;
use opendal::ErrorKind;

pub(crate) fn from_dal(e: &opendal::Error, what: &str) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound,
        ErrorKind::AlreadyExists => StoreError::Exists,
        ErrorKind::IsADirectory => StoreError::IsDir,
        ErrorKind::NotADirectory => StoreError::NotDir,
        ErrorKind::Unsupported => StoreError::Unsupported,
        ErrorKind::ConditionNotMatch => StoreError::Stale,
        ErrorKind::PermissionDenied => {
            tracing::error!(
                "s3: the store refused this server's credentials or permissions ({what}): {e}"
            );
            StoreError::Access
        }
        ErrorKind::RateLimited => {
            tracing::warn!("s3: throttled ({what}): {e}");
            StoreError::Transient(format!("throttled: {what}"))
        }
        _ if !e.is_permanent() => {
            tracing::warn!("s3: {what} failed after retries: {e}");
            StoreError::Transient(format!("{what}: store unreachable or failing"))
        }
        _ => {
            tracing::error!("s3: {what}: {e}");
            StoreError::Io(format!("{what}: {}", e.kind()))
        }
    }
}

/// Whether an HTTP status of a raw request is worth retrying.
pub(crate) fn status_is_transient(status: u16) -> bool {
    status == 429 || status == 408 || status >= 500
}

/// The store error for an HTTP failure status of a raw request (after
/// retries for the transient ones).
pub(crate) fn from_status(status: u16, code: &str, what: &str) -> StoreError {
    match status {
        404 if code == "NoSuchBucket" => {
            tracing::error!("s3: bucket does not exist ({what})");
            StoreError::Io(format!("{what}: no such bucket"))
        }
        404 => StoreError::NotFound,
        403 | 401 => {
            tracing::error!(
                "s3: the store refused this server's credentials or permissions ({what}): {status} {code}"
            );
            StoreError::Access
        }
        412 => StoreError::Stale,
        s if status_is_transient(s) => {
            tracing::warn!("s3: {what}: {status} {code} after retries");
            StoreError::Transient(format!("{what}: {status} {code}"))
        }
        _ => {
            tracing::error!("s3: {what}: {status} {code}");
            StoreError::Io(format!("{what}: {status} {code}"))
        }
    }
}
