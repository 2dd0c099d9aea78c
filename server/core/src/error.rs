//! The request path's error type and its one mapping to `nfsstat4`.
//!
//! Handlers return [`NfsError`]; [`NfsError::status`] is the only place that
//! decides which `nfsstat4` a client sees, so the RFC's error rules live in
//! one function rather than scattered across operations.

use nfs4d_xdr::nfs4::nfsstat4;

use nfs4d_fhmap::FhError;
use nfs4d_store::StoreError;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NfsError {
    #[error("permission denied")]
    Perm,
    #[error("no such file or directory")]
    NoEnt,
    #[error("I/O error")]
    Io,
    #[error("no such device")]
    Nxio,
    #[error("access denied")]
    Access,
    #[error("file exists")]
    Exist,
    #[error("cross-device link")]
    Xdev,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Inval,
    #[error("file too large")]
    FBig,
    #[error("no space left")]
    NoSpc,
    #[error("read-only filesystem")]
    Rofs,
    #[error("too many links")]
    MLink,
    #[error("name too long")]
    NameTooLong,
    #[error("directory not empty")]
    NotEmpty,
    #[error("quota exceeded")]
    DQuot,
    #[error("stale filehandle")]
    Stale,
    #[error("malformed filehandle")]
    BadHandle,
    #[error("bad directory cookie")]
    BadCookie,
    #[error("operation not supported")]
    NotSupp,
    #[error("operation too small")]
    TooSmall,
    #[error("server fault")]
    ServerFault,
    #[error("wrong object type")]
    BadType,
    #[error("try again later")]
    Delay,
    #[error("attributes differ")]
    Same,
    #[error("byte-range lock denied")]
    LockDenied(Box<nfs4d_xdr::nfs4::LOCK4denied>),
    #[error("lease expired")]
    Expired,
    #[error("locked by another owner")]
    Locked,
    #[error("in grace period")]
    Grace,
    #[error("filehandle expired")]
    FhExpired,
    #[error("share reservation conflict")]
    ShareDenied,
    #[error("wrong security flavor")]
    WrongSec,
    #[error("client id in use")]
    ClidInUse,
    #[error("out of resources")]
    Resource,
    #[error("no current filehandle")]
    NoFileHandle,
    #[error("minor version not supported")]
    MinorVersMismatch,
    #[error("stale client id")]
    StaleClientid,
    #[error("stale stateid")]
    StaleStateid,
    #[error("old stateid")]
    OldStateid,
    #[error("bad stateid")]
    BadStateid,
    #[error("bad seqid")]
    BadSeqid,
    #[error("attributes not different")]
    NotSame,
    #[error("lock range not supported")]
    LockRange,
    #[error("symbolic link")]
    Symlink,
    #[error("no saved filehandle")]
    RestoreFh,
    #[error("lease moved")]
    LeaseMoved,
    /// The file system moved to another server (RFC 7530 §8.4.2, RFC 8881
    /// §11.3): the client asks `fs_locations` where to.
    #[error("file system moved")]
    Moved,
    #[error("attribute not supported")]
    AttrNotSupp,
    #[error("no grace period")]
    NoGrace,
    #[error("reclaim bad")]
    ReclaimBad,
    #[error("reclaim conflict")]
    ReclaimConflict,
    #[error("malformed XDR")]
    BadXdr,
    #[error("locks held")]
    LocksHeld,
    #[error("open mode does not allow this")]
    OpenMode,
    #[error("bad owner")]
    BadOwner,
    #[error("bad character in name")]
    BadChar,
    #[error("bad name")]
    BadName,
    #[error("bad byte range")]
    BadRange,
    #[error("lock not supported")]
    LockNotSupp,
    #[error("illegal operation")]
    OpIllegal,
    #[error("deadlock")]
    Deadlock,
    #[error("file open")]
    FileOpen,
    #[error("admin revoked")]
    AdminRevoked,
    #[error("callback path down")]
    CbPathDown,
    #[error("delegation revoked")]
    DelegRevoked,
    #[error("bad session")]
    BadSession,
    #[error("bad slot")]
    BadSlot,
    #[error("connection not bound to session")]
    ConnNotBoundToSession,
    #[error("sequence out of position")]
    SequencePos,
    #[error("sequence misordered")]
    SeqMisordered,
    #[error("request too big")]
    ReqTooBig,
    #[error("reply too big")]
    RepTooBig,
    #[error("reply too big to cache")]
    RepTooBigToCache,
    #[error("retry with uncached reply")]
    RetryUncachedRep,
    #[error("too many operations")]
    TooManyOps,
    #[error("operation not in session")]
    OpNotInSession,
    #[error("client id busy")]
    ClientidBusy,
    #[error("not the only operation")]
    NotOnlyOp,
    #[error("wrong credential")]
    WrongCred,
    #[error("wrong type")]
    WrongType,
    #[error("encoding not supported")]
    EncrAlgUnsupp,
    #[error("reclaim complete already done")]
    CompleteAlready,
    #[error("delegation already wanted")]
    DelegAlreadyWanted,
    #[error("directory delegation unavailable")]
    DirDelegUnavail,
    #[error("no such extended attribute")]
    NoXattr,
    #[error("extended attribute too big")]
    Xattr2Big,
    #[error("unknown layout type")]
    UnknownLayoutType,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The handle map's store failed (NFS4ERR_SERVERFAULT).
    #[error("filehandle map: {0}")]
    Fh(FhError),
}

impl NfsError {
    /// The status a client sees (RFC 7530 §13, RFC 8881 §15, RFC 8276 §8.4).
    pub fn status(&self) -> nfsstat4 {
        use nfsstat4::*;
        match self {
            NfsError::Perm => NFS4ERR_PERM,
            NfsError::NoEnt => NFS4ERR_NOENT,
            NfsError::Io => NFS4ERR_IO,
            NfsError::Nxio => NFS4ERR_NXIO,
            NfsError::Access => NFS4ERR_ACCESS,
            NfsError::Exist => NFS4ERR_EXIST,
            NfsError::Xdev => NFS4ERR_XDEV,
            NfsError::NotDir => NFS4ERR_NOTDIR,
            NfsError::IsDir => NFS4ERR_ISDIR,
            NfsError::Inval => NFS4ERR_INVAL,
            NfsError::FBig => NFS4ERR_FBIG,
            NfsError::NoSpc => NFS4ERR_NOSPC,
            NfsError::Rofs => NFS4ERR_ROFS,
            NfsError::MLink => NFS4ERR_MLINK,
            NfsError::NameTooLong => NFS4ERR_NAMETOOLONG,
            NfsError::NotEmpty => NFS4ERR_NOTEMPTY,
            NfsError::DQuot => NFS4ERR_DQUOT,
            NfsError::Stale => NFS4ERR_STALE,
            NfsError::BadHandle => NFS4ERR_BADHANDLE,
            NfsError::BadCookie => NFS4ERR_BAD_COOKIE,
            NfsError::NotSupp => NFS4ERR_NOTSUPP,
            NfsError::TooSmall => NFS4ERR_TOOSMALL,
            NfsError::ServerFault => NFS4ERR_SERVERFAULT,
            NfsError::BadType => NFS4ERR_BADTYPE,
            NfsError::Delay => NFS4ERR_DELAY,
            NfsError::Same => NFS4ERR_SAME,
            NfsError::LockDenied(_) => NFS4ERR_DENIED,
            NfsError::Expired => NFS4ERR_EXPIRED,
            NfsError::Locked => NFS4ERR_LOCKED,
            NfsError::Grace => NFS4ERR_GRACE,
            NfsError::FhExpired => NFS4ERR_FHEXPIRED,
            NfsError::ShareDenied => NFS4ERR_SHARE_DENIED,
            NfsError::WrongSec => NFS4ERR_WRONGSEC,
            NfsError::ClidInUse => NFS4ERR_CLID_INUSE,
            NfsError::Resource => NFS4ERR_RESOURCE,
            NfsError::NoFileHandle => NFS4ERR_NOFILEHANDLE,
            NfsError::MinorVersMismatch => NFS4ERR_MINOR_VERS_MISMATCH,
            NfsError::StaleClientid => NFS4ERR_STALE_CLIENTID,
            NfsError::StaleStateid => NFS4ERR_STALE_STATEID,
            NfsError::OldStateid => NFS4ERR_OLD_STATEID,
            NfsError::BadStateid => NFS4ERR_BAD_STATEID,
            NfsError::BadSeqid => NFS4ERR_BAD_SEQID,
            NfsError::NotSame => NFS4ERR_NOT_SAME,
            NfsError::LockRange => NFS4ERR_LOCK_RANGE,
            NfsError::Symlink => NFS4ERR_SYMLINK,
            NfsError::RestoreFh => NFS4ERR_RESTOREFH,
            NfsError::LeaseMoved => NFS4ERR_LEASE_MOVED,
            NfsError::Moved => NFS4ERR_MOVED,
            NfsError::AttrNotSupp => NFS4ERR_ATTRNOTSUPP,
            NfsError::NoGrace => NFS4ERR_NO_GRACE,
            NfsError::ReclaimBad => NFS4ERR_RECLAIM_BAD,
            NfsError::ReclaimConflict => NFS4ERR_RECLAIM_CONFLICT,
            NfsError::BadXdr => NFS4ERR_BADXDR,
            NfsError::LocksHeld => NFS4ERR_LOCKS_HELD,
            NfsError::OpenMode => NFS4ERR_OPENMODE,
            NfsError::BadOwner => NFS4ERR_BADOWNER,
            NfsError::BadChar => NFS4ERR_BADCHAR,
            NfsError::BadName => NFS4ERR_BADNAME,
            NfsError::BadRange => NFS4ERR_BAD_RANGE,
            NfsError::LockNotSupp => NFS4ERR_LOCK_NOTSUPP,
            NfsError::OpIllegal => NFS4ERR_OP_ILLEGAL,
            NfsError::Deadlock => NFS4ERR_DEADLOCK,
            NfsError::FileOpen => NFS4ERR_FILE_OPEN,
            NfsError::AdminRevoked => NFS4ERR_ADMIN_REVOKED,
            NfsError::CbPathDown => NFS4ERR_CB_PATH_DOWN,
            NfsError::DelegRevoked => NFS4ERR_DELEG_REVOKED,
            NfsError::BadSession => NFS4ERR_BADSESSION,
            NfsError::BadSlot => NFS4ERR_BADSLOT,
            NfsError::ConnNotBoundToSession => NFS4ERR_CONN_NOT_BOUND_TO_SESSION,
            NfsError::SequencePos => NFS4ERR_SEQUENCE_POS,
            NfsError::SeqMisordered => NFS4ERR_SEQ_MISORDERED,
            NfsError::ReqTooBig => NFS4ERR_REQ_TOO_BIG,
            NfsError::RepTooBig => NFS4ERR_REP_TOO_BIG,
            NfsError::RepTooBigToCache => NFS4ERR_REP_TOO_BIG_TO_CACHE,
            NfsError::RetryUncachedRep => NFS4ERR_RETRY_UNCACHED_REP,
            NfsError::TooManyOps => NFS4ERR_TOO_MANY_OPS,
            NfsError::OpNotInSession => NFS4ERR_OP_NOT_IN_SESSION,
            NfsError::ClientidBusy => NFS4ERR_CLIENTID_BUSY,
            NfsError::NotOnlyOp => NFS4ERR_NOT_ONLY_OP,
            NfsError::WrongCred => NFS4ERR_WRONG_CRED,
            NfsError::WrongType => NFS4ERR_WRONG_TYPE,
            NfsError::EncrAlgUnsupp => NFS4ERR_ENCR_ALG_UNSUPP,
            NfsError::CompleteAlready => NFS4ERR_COMPLETE_ALREADY,
            NfsError::DelegAlreadyWanted => NFS4ERR_DELEG_ALREADY_WANTED,
            NfsError::DirDelegUnavail => NFS4ERR_DIRDELEG_UNAVAIL,
            NfsError::NoXattr => NFS4ERR_NOXATTR,
            NfsError::Xattr2Big => NFS4ERR_XATTR2BIG,
            NfsError::UnknownLayoutType => NFS4ERR_UNKNOWN_LAYOUTTYPE,
            NfsError::Store(e) => store_status(e),
            NfsError::Fh(_) => NFS4ERR_SERVERFAULT,
        }
    }

    /// Encodes the body this error carries after its status: a byte-range
    /// conflict's LOCK4denied (RFC 8881 §18.10.2, §18.11.2); nothing for
    /// the others.
    pub fn pack_body(&self, out: &mut Vec<u8>) {
        if let NfsError::LockDenied(d) = self {
            // Packing into a Vec cannot fail for a LOCK4denied (its owner
            // is bounded when decoded or built).
            let _ = nfs4d_xdr::codec::Pack::pack(&**d, out);
        }
    }

    /// The error for a status the wire, an attribute codec or a cached
    /// reply carries: the variant whose [`NfsError::status`] it is, or
    /// SERVERFAULT for statuses the server never produces. (A denial's
    /// LOCK4denied is not known here; the variant carries an empty one.)
    pub fn from_status(s: nfsstat4) -> NfsError {
        NfsError::from_code(s as i32 as u32)
    }

    /// [`NfsError::from_status`] for a status word as it is on the wire.
    pub fn from_code(code: u32) -> NfsError {
        use NfsError::*;
        let denied = || {
            LockDenied(Box::new(nfs4d_xdr::nfs4::LOCK4denied {
                offset: 0,
                length: 0,
                locktype: nfs4d_xdr::nfs4::nfs_lock_type4::READ_LT,
                owner: nfs4d_xdr::nfs4::lock_owner4 {
                    clientid: 0,
                    owner: Vec::new(),
                },
            }))
        };
        let candidates = [
            Perm,
            NoEnt,
            Io,
            Nxio,
            Access,
            Exist,
            Xdev,
            NotDir,
            IsDir,
            Inval,
            FBig,
            NoSpc,
            Rofs,
            MLink,
            NameTooLong,
            NotEmpty,
            DQuot,
            Stale,
            BadHandle,
            BadCookie,
            NotSupp,
            TooSmall,
            ServerFault,
            BadType,
            Delay,
            Same,
            Expired,
            Locked,
            Grace,
            FhExpired,
            ShareDenied,
            WrongSec,
            ClidInUse,
            Resource,
            NoFileHandle,
            MinorVersMismatch,
            StaleClientid,
            StaleStateid,
            OldStateid,
            BadStateid,
            BadSeqid,
            NotSame,
            LockRange,
            Symlink,
            RestoreFh,
            LeaseMoved,
            AttrNotSupp,
            NoGrace,
            ReclaimBad,
            ReclaimConflict,
            BadXdr,
            LocksHeld,
            OpenMode,
            BadOwner,
            BadChar,
            BadName,
            BadRange,
            LockNotSupp,
            OpIllegal,
            Deadlock,
            FileOpen,
            AdminRevoked,
            CbPathDown,
            DelegRevoked,
            BadSession,
            BadSlot,
            ConnNotBoundToSession,
            SequencePos,
            SeqMisordered,
            ReqTooBig,
            RepTooBig,
            RepTooBigToCache,
            RetryUncachedRep,
            TooManyOps,
            OpNotInSession,
            ClientidBusy,
            NotOnlyOp,
            WrongCred,
            WrongType,
            EncrAlgUnsupp,
            CompleteAlready,
            DelegAlreadyWanted,
            DirDelegUnavail,
            NoXattr,
            Xattr2Big,
            UnknownLayoutType,
            denied(),
        ];
        candidates
            .into_iter()
            .find(|e| e.status() as i32 as u32 == code)
            .unwrap_or(ServerFault)
    }
}

fn store_status(e: &StoreError) -> nfsstat4 {
    use nfsstat4::*;
    match e {
        StoreError::NotFound => NFS4ERR_NOENT,
        StoreError::Exists => NFS4ERR_EXIST,
        StoreError::NotDir => NFS4ERR_NOTDIR,
        StoreError::IsDir => NFS4ERR_ISDIR,
        StoreError::NotEmpty => NFS4ERR_NOTEMPTY,
        StoreError::Access => NFS4ERR_ACCESS,
        StoreError::Perm => NFS4ERR_PERM,
        StoreError::NoSpace => NFS4ERR_NOSPC,
        StoreError::Quota => NFS4ERR_DQUOT,
        StoreError::ReadOnly => NFS4ERR_ROFS,
        StoreError::NameTooLong => NFS4ERR_NAMETOOLONG,
        StoreError::Invalid => NFS4ERR_INVAL,
        StoreError::TooBig => NFS4ERR_FBIG,
        StoreError::TooManyLinks => NFS4ERR_MLINK,
        StoreError::Stale => NFS4ERR_STALE,
        // A symlink where a directory was expected: the client resolves
        // symlinks itself, so for it this is "not a directory".
        StoreError::Symlink => NFS4ERR_NOTDIR,
        StoreError::WrongType => NFS4ERR_WRONG_TYPE,
        StoreError::CrossDevice => NFS4ERR_XDEV,
        StoreError::Unsupported => NFS4ERR_NOTSUPP,
        StoreError::BadPosition => NFS4ERR_BAD_COOKIE,
        StoreError::NoXattr => NFS4ERR_NOXATTR,
        StoreError::XattrTooBig => NFS4ERR_XATTR2BIG,
        // A store that cannot answer now (unreachable, throttled, staging
        // full): the client retries (RFC 8881 §15.1.1.3).
        StoreError::Transient(_) => NFS4ERR_DELAY,
        StoreError::Setup(_) | StoreError::Io(_) => NFS4ERR_IO,
    }
}

/// The handle map's errors: each kind has its own status, so BADHANDLE,
/// STALE and FHEXPIRED stay distinct (RFC 8881 §4.2.3); only a failure of
/// the map's store is a server fault.
impl From<FhError> for NfsError {
    fn from(e: FhError) -> NfsError {
        match e {
            FhError::BadHandle => NfsError::BadHandle,
            FhError::Stale => NfsError::Stale,
            FhError::Expired => NfsError::FhExpired,
            FhError::NameTooLong | FhError::TooDeep => NfsError::NameTooLong,
            FhError::BadName => NfsError::BadName,
            FhError::CrossExport => NfsError::Xdev,
            FhError::Invalid(_) => NfsError::Inval,
            // The map's store cannot be reached now (a cluster's etcd
            // without quorum, or this head fenced): the client retries
            // (RFC 8881 §15.1.1.3), never sees another error for it.
            FhError::Store(nfs4d_kv::KvError::Unavailable(_)) => NfsError::Delay,
            FhError::Store(_) | FhError::Corrupt(_) => NfsError::Fh(e),
        }
    }
}

/// Result type of handlers.
pub type NfsResult<T> = Result<T, NfsError>;

/// The status a client of minor version `minor` is given for `st`.
/// NFSv4.1 has no NFS4ERR_RESOURCE (RFC 8881 §15.1 skips 10018; §15.1.1.3:
/// NFS4ERR_DELAY for a request that cannot be served now), so a full state
/// table answers DELAY there.
pub fn status_in_minor(st: nfsstat4, minor: u32) -> nfsstat4 {
    match st {
        nfsstat4::NFS4ERR_RESOURCE if minor >= 1 => nfsstat4::NFS4ERR_DELAY,
        st => st,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_back_to_its_error() {
        for code in 0..20_000u32 {
            let e = NfsError::from_code(code);
            if e != NfsError::ServerFault || code == NFS4ERR_SERVERFAULT_CODE {
                assert_eq!(e.status() as i32 as u32, code, "{e:?}");
            }
        }
        assert_eq!(NfsError::from_code(123_456), NfsError::ServerFault);
        assert!(matches!(
            NfsError::from_status(nfsstat4::NFS4ERR_DENIED),
            NfsError::LockDenied(_)
        ));
    }

    const NFS4ERR_SERVERFAULT_CODE: u32 = nfsstat4::NFS4ERR_SERVERFAULT as i32 as u32;

    #[test]
    fn resource_is_delay_from_41_on() {
        let r = nfsstat4::NFS4ERR_RESOURCE;
        assert_eq!(status_in_minor(r, 0), r);
        assert_eq!(status_in_minor(r, 1), nfsstat4::NFS4ERR_DELAY);
        assert_eq!(status_in_minor(nfsstat4::NFS4_OK, 2), nfsstat4::NFS4_OK);
    }
}
