//! One handler per operation, a descriptor table, and the exhaustive
//! dispatch from the decoded argument union to the handlers.
//!
//! The table says what the COMPOUND loop must check before an operation
//! runs (current filehandle, position rules of 4.1 sessions, minor-version
//! validity) and how large its reply may be, so those rules live in one
//! place ([`crate::compound`]) instead of in every handler (the idea of
//! knfsd's `nfsd4_ops[]`). Handlers return `NfsResult<Body>`; [`finish`]
//! encodes the status and the body (or the error's body) into the reply.

use nfs4d_xdr::nfs4::*;
use xdr_codec::Pack;

use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

mod access;
mod allocate;
mod bind_conn_to_session;
mod clone;
mod close;
mod commit;
mod common;
mod copy;
mod create;
mod create_session;
mod deallocate;
mod delegreturn;
mod destroy_clientid;
mod destroy_session;
mod exchange_id;
mod free_stateid;
mod getattr;
mod getfh;
mod getxattr;
mod io_advise;
mod link;
mod listxattrs;
mod lock;
mod lockt;
mod locku;
mod lookup;
mod lookupp;
mod open;
mod open_confirm;
mod open_downgrade;
mod putfh;
mod read;
mod read_plus;
mod readdir;
mod readlink;
mod reclaim_complete;
mod release_lockowner;
mod remove;
mod removexattr;
mod rename;
mod renew;
mod savefh;
mod secinfo;
mod seek;
mod sequence;
mod setattr;
mod setclientid;
mod setxattr;
mod test_stateid;
mod verify;
mod want_delegation;
mod write;

/// Descriptor flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Needs a current filehandle (NFS4ERR_NOFILEHANDLE otherwise).
    pub const NEED_FH: Flags = Flags(1);
    /// 4.1: may start a COMPOUND without SEQUENCE.
    pub const SESSIONLESS: Flags = Flags(2);
    /// 4.1: when sent without SEQUENCE it must be the only operation.
    pub const ONLY_OP: Flags = Flags(4);
    /// Changes state or data (what a reply cache must remember).
    pub const MODIFIES: Flags = Flags(8);

    /// All of `other`'s bits are set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// What the COMPOUND loop needs to know about an operation.
#[derive(Debug, Clone, Copy)]
pub struct OpDesc {
    /// The operation.
    pub op: nfs_opnum4,
    /// Its name, for logs.
    pub name: &'static str,
    /// Checks to apply.
    pub flags: Flags,
    /// First minor version that has it.
    pub min_minor: u32,
    /// Last minor version that has it (4.0-only ops end at 0).
    pub max_minor: u32,
    /// Upper bound of its encoded result, excluding READ/READDIR payload,
    /// which those handlers bound themselves from their arguments.
    pub reply_bound: u32,
}

const FH: Flags = Flags::NEED_FH;
const FHM: Flags = Flags(Flags::NEED_FH.0 | Flags::MODIFIES.0);
const M: Flags = Flags::MODIFIES;
const LONE: Flags = Flags(Flags::SESSIONLESS.0 | Flags::ONLY_OP.0 | Flags::MODIFIES.0);

/// Bytes of an encoded filehandle, at most.
const FH_BYTES: u32 = 4 + NFS4_FHSIZE;
/// Bytes of an attribute reply, at most (no ACLs are served).
const ATTR_BYTES: u32 = 2048;

/// The descriptor of an operation number, `None` for numbers no minor
/// version defines (answered with NFS4ERR_OP_ILLEGAL).
pub fn describe(opnum: u32, _minor: u32) -> Option<OpDesc> {
    let op = nfs_opnum4::try_from(opnum as i32).ok()?;
    use nfs_opnum4::*;
    let d = |name, flags, min_minor, max_minor, reply_bound| OpDesc {
        op,
        name,
        flags,
        min_minor,
        max_minor,
        reply_bound,
    };
    let all = 2;
    Some(match op {
        OP_ACCESS => d("ACCESS", FH, 0, all, 16),
        OP_CLOSE => d("CLOSE", FHM, 0, all, 32),
        OP_COMMIT => d("COMMIT", FHM, 0, all, 16),
        OP_CREATE => d("CREATE", FHM, 0, all, 64 + ATTR_BYTES),
        OP_DELEGPURGE => d("DELEGPURGE", M, 0, all, 8),
        OP_DELEGRETURN => d("DELEGRETURN", FHM, 0, all, 8),
        OP_GETATTR => d("GETATTR", FH, 0, all, ATTR_BYTES + FH_BYTES),
        OP_GETFH => d("GETFH", FH, 0, all, 8 + FH_BYTES),
        OP_LINK => d("LINK", FHM, 0, all, 32),
        OP_LOCK => d("LOCK", FHM, 0, all, 64 + NFS4_OPAQUE_LIMIT),
        OP_LOCKT => d("LOCKT", FH, 0, all, 64 + NFS4_OPAQUE_LIMIT),
        OP_LOCKU => d("LOCKU", FHM, 0, all, 32),
        OP_LOOKUP => d("LOOKUP", FH, 0, all, 8),
        OP_LOOKUPP => d("LOOKUPP", FH, 0, all, 8),
        OP_NVERIFY => d("NVERIFY", FH, 0, all, 8),
        OP_OPEN => d("OPEN", FHM, 0, all, 256),
        OP_OPENATTR => d("OPENATTR", FH, 0, all, 8),
        OP_OPEN_CONFIRM => d("OPEN_CONFIRM", FHM, 0, 0, 32),
        OP_OPEN_DOWNGRADE => d("OPEN_DOWNGRADE", FHM, 0, all, 32),
        OP_PUTFH => d("PUTFH", Flags::NONE, 0, all, 8),
        OP_PUTPUBFH => d("PUTPUBFH", Flags::NONE, 0, all, 8),
        OP_PUTROOTFH => d("PUTROOTFH", Flags::NONE, 0, all, 8),
        OP_READ => d("READ", FH, 0, all, 16),
        OP_READDIR => d("READDIR", FH, 0, all, 24),
        OP_READLINK => d("READLINK", FH, 0, all, 12 + 4096),
        OP_REMOVE => d("REMOVE", FHM, 0, all, 32),
        OP_RENAME => d("RENAME", FHM, 0, all, 56),
        OP_RENEW => d("RENEW", M, 0, 0, 8),
        OP_RESTOREFH => d("RESTOREFH", Flags::NONE, 0, all, 8),
        OP_SAVEFH => d("SAVEFH", FH, 0, all, 8),
        OP_SECINFO => d("SECINFO", FH, 0, all, 64),
        OP_SETATTR => d("SETATTR", FHM, 0, all, 32),
        OP_SETCLIENTID => d("SETCLIENTID", M, 0, 0, 32),
        OP_SETCLIENTID_CONFIRM => d("SETCLIENTID_CONFIRM", M, 0, 0, 8),
        OP_VERIFY => d("VERIFY", FH, 0, all, 8),
        OP_WRITE => d("WRITE", FHM, 0, all, 32),
        OP_RELEASE_LOCKOWNER => d("RELEASE_LOCKOWNER", M, 0, 0, 8),
        OP_BACKCHANNEL_CTL => d("BACKCHANNEL_CTL", M, 1, all, 8),
        OP_BIND_CONN_TO_SESSION => d("BIND_CONN_TO_SESSION", LONE, 1, all, 32),
        OP_EXCHANGE_ID => d("EXCHANGE_ID", LONE, 1, all, 2048 + 3 * NFS4_OPAQUE_LIMIT),
        OP_CREATE_SESSION => d("CREATE_SESSION", LONE, 1, all, 128),
        OP_DESTROY_SESSION => d("DESTROY_SESSION", LONE, 1, all, 8),
        OP_FREE_STATEID => d("FREE_STATEID", M, 1, all, 8),
        OP_GET_DIR_DELEGATION => d("GET_DIR_DELEGATION", FH, 1, all, 8),
        OP_GETDEVICEINFO => d("GETDEVICEINFO", Flags::NONE, 1, all, 8),
        OP_GETDEVICELIST => d("GETDEVICELIST", FH, 1, all, 8),
        OP_LAYOUTCOMMIT => d("LAYOUTCOMMIT", FH, 1, all, 8),
        OP_LAYOUTGET => d("LAYOUTGET", FH, 1, all, 8),
        OP_LAYOUTRETURN => d("LAYOUTRETURN", FH, 1, all, 8),
        OP_SECINFO_NO_NAME => d("SECINFO_NO_NAME", FH, 1, all, 64),
        OP_SEQUENCE => d("SEQUENCE", Flags::NONE, 1, all, 48),
        OP_SET_SSV => d("SET_SSV", Flags::NONE, 1, all, 8),
        OP_TEST_STATEID => d("TEST_STATEID", Flags::NONE, 1, all, 8 + 4 * 1024),
        OP_WANT_DELEGATION => d("WANT_DELEGATION", FH, 1, all, 8),
        OP_DESTROY_CLIENTID => d("DESTROY_CLIENTID", LONE, 1, all, 8),
        OP_RECLAIM_COMPLETE => d("RECLAIM_COMPLETE", M, 1, all, 8),
        OP_ALLOCATE => d("ALLOCATE", FHM, 2, all, 8),
        OP_COPY => d("COPY", FHM, 2, all, 64),
        OP_COPY_NOTIFY => d("COPY_NOTIFY", FH, 2, all, 64),
        OP_DEALLOCATE => d("DEALLOCATE", FHM, 2, all, 8),
        OP_IO_ADVISE => d("IO_ADVISE", FH, 2, all, 16),
        OP_LAYOUTERROR => d("LAYOUTERROR", FH, 2, all, 8),
        OP_LAYOUTSTATS => d("LAYOUTSTATS", FH, 2, all, 8),
        OP_OFFLOAD_CANCEL => d("OFFLOAD_CANCEL", FH, 2, all, 8),
        OP_OFFLOAD_STATUS => d("OFFLOAD_STATUS", FH, 2, all, 16),
        OP_READ_PLUS => d("READ_PLUS", FH, 2, all, 32),
        OP_SEEK => d("SEEK", FH, 2, all, 24),
        OP_WRITE_SAME => d("WRITE_SAME", FHM, 2, all, 32),
        OP_CLONE => d("CLONE", FHM, 2, all, 8),
        // The xattr handlers bound their own replies by the session limit.
        OP_GETXATTR => d("GETXATTR", FH, 2, all, 16),
        OP_SETXATTR => d("SETXATTR", FHM, 2, all, 32),
        OP_LISTXATTRS => d("LISTXATTRS", FH, 2, all, 24),
        OP_REMOVEXATTR => d("REMOVEXATTR", FHM, 2, all, 32),
        OP_ILLEGAL => return None,
    })
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Encodes an operation's result: `resop`, status, and the body on
/// success or the body some errors carry (RFC 7530 §16: LOCK4denied for
/// LOCK/LOCKT, `attrsset` for SETATTR, `client_using` for SETCLIENTID).
pub fn finish<T: Pack<Vec<u8>>>(out: &mut Vec<u8>, op: nfs_opnum4, r: NfsResult<T>) -> nfsstat4 {
    put_u32(out, op as i32 as u32);
    match r {
        Ok(body) => {
            put_u32(out, nfsstat4::NFS4_OK as i32 as u32);
            if let Err(e) = body.pack(out) {
                // Packing into a Vec only fails on values no handler builds
                // (e.g. an over-long fixed array); report it, don't panic.
                tracing::error!(op = ?op, error = %e, "result encoding failed");
                out.truncate(out.len() - 4);
                put_u32(out, nfsstat4::NFS4ERR_SERVERFAULT as i32 as u32);
                return nfsstat4::NFS4ERR_SERVERFAULT;
            }
            nfsstat4::NFS4_OK
        }
        Err(e) => {
            let st = e.status();
            put_u32(out, st as i32 as u32);
            match (&e, op) {
                (NfsError::LockDenied(d), _) => {
                    let _ = d.pack(out);
                }
                (_, nfs_opnum4::OP_SETATTR) => put_u32(out, 0),
                (NfsError::ClidInUse, nfs_opnum4::OP_SETCLIENTID) => {
                    // clientaddr4 with empty netid and address: the server
                    // does not disclose the other client's location.
                    put_u32(out, 0);
                    put_u32(out, 0);
                }
                _ => {}
            }
            if matches!(
                st,
                nfsstat4::NFS4ERR_SERVERFAULT | nfsstat4::NFS4ERR_IO | nfsstat4::NFS4ERR_BADXDR
            ) {
                tracing::warn!(op = ?op, error = %e, "operation failed");
            }
            st
        }
    }
}

fn notsupp(out: &mut Vec<u8>, op: nfs_opnum4) -> nfsstat4 {
    finish::<()>(out, op, Err(NfsError::NotSupp))
}

/// Runs one decoded operation and encodes its result into `out`.
pub fn dispatch(cx: &mut Cx, arg: nfs_argop4, out: &mut Vec<u8>) -> nfsstat4 {
    use nfs_opnum4::*;
    let op = arg.discriminant();
    if let Some(d) = describe(op as i32 as u32, cx.minor) {
        if cx.minor < d.min_minor {
            return finish::<()>(out, OP_ILLEGAL, Err(NfsError::OpIllegal));
        }
        if cx.minor > d.max_minor {
            return notsupp(out, op);
        }
    }
    match arg {
        nfs_argop4::OP_ACCESS(a) => finish(out, op, access::run(cx, a)),
        nfs_argop4::OP_CLOSE(a) => finish(out, op, close::run(cx, a)),
        nfs_argop4::OP_COMMIT(a) => finish(out, op, commit::run(cx, a)),
        nfs_argop4::OP_CREATE(a) => finish(out, op, create::run(cx, a)),
        nfs_argop4::OP_DELEGPURGE(_) => notsupp(out, op),
        nfs_argop4::OP_DELEGRETURN(a) => finish(out, op, delegreturn::run(cx, a)),
        nfs_argop4::OP_GETATTR(a) => finish(out, op, getattr::run(cx, a)),
        nfs_argop4::OP_GETFH => finish(out, op, getfh::run(cx)),
        nfs_argop4::OP_LINK(a) => finish(out, op, link::run(cx, a)),
        nfs_argop4::OP_LOCK(a) => finish(out, op, lock::run(cx, a)),
        nfs_argop4::OP_LOCKT(a) => finish(out, op, lockt::run(cx, a)),
        nfs_argop4::OP_LOCKU(a) => finish(out, op, locku::run(cx, a)),
        nfs_argop4::OP_LOOKUP(a) => finish(out, op, lookup::run(cx, a)),
        nfs_argop4::OP_LOOKUPP => finish(out, op, lookupp::run(cx)),
        nfs_argop4::OP_NVERIFY(a) => finish(out, op, verify::nverify(cx, a)),
        nfs_argop4::OP_OPEN(a) => finish(out, op, open::run(cx, a)),
        nfs_argop4::OP_OPENATTR(_) => notsupp(out, op),
        nfs_argop4::OP_OPEN_CONFIRM(a) => finish(out, op, open_confirm::run(cx, a)),
        nfs_argop4::OP_OPEN_DOWNGRADE(a) => finish(out, op, open_downgrade::run(cx, a)),
        nfs_argop4::OP_PUTFH(a) => finish(out, op, putfh::putfh(cx, a)),
        nfs_argop4::OP_PUTPUBFH => finish(out, op, putfh::putrootfh(cx)),
        nfs_argop4::OP_PUTROOTFH => finish(out, op, putfh::putrootfh(cx)),
        nfs_argop4::OP_READ(a) => {
            let r = read::run(cx, a);
            read::finish(cx, out, op, r)
        }
        nfs_argop4::OP_READDIR(a) => finish(out, op, readdir::run(cx, a)),
        nfs_argop4::OP_READLINK => finish(out, op, readlink::run(cx)),
        nfs_argop4::OP_REMOVE(a) => finish(out, op, remove::run(cx, a)),
        nfs_argop4::OP_RENAME(a) => finish(out, op, rename::run(cx, a)),
        nfs_argop4::OP_RENEW(a) => finish(out, op, renew::run(cx, a)),
        nfs_argop4::OP_RESTOREFH => finish(out, op, savefh::restorefh(cx)),
        nfs_argop4::OP_SAVEFH => finish(out, op, savefh::savefh(cx)),
        nfs_argop4::OP_SECINFO(a) => finish(out, op, secinfo::secinfo(cx, a)),
        nfs_argop4::OP_SETATTR(a) => finish(out, op, setattr::run(cx, a)),
        nfs_argop4::OP_SETCLIENTID(a) => finish(out, op, setclientid::setclientid(cx, a)),
        nfs_argop4::OP_SETCLIENTID_CONFIRM(a) => finish(out, op, setclientid::confirm(cx, a)),
        nfs_argop4::OP_VERIFY(a) => finish(out, op, verify::verify(cx, a)),
        nfs_argop4::OP_WRITE(a) => finish(out, op, write::run(cx, a)),
        nfs_argop4::OP_RELEASE_LOCKOWNER(a) => finish(out, op, release_lockowner::run(cx, a)),
        nfs_argop4::OP_BACKCHANNEL_CTL(a) => {
            finish(out, op, bind_conn_to_session::backchannel_ctl(cx, a))
        }
        nfs_argop4::OP_BIND_CONN_TO_SESSION(a) => finish(out, op, bind_conn_to_session::run(cx, a)),
        nfs_argop4::OP_EXCHANGE_ID(a) => finish(out, op, exchange_id::run(cx, a)),
        nfs_argop4::OP_CREATE_SESSION(a) => create_session::run(cx, a, out),
        nfs_argop4::OP_DESTROY_SESSION(a) => finish(out, op, destroy_session::run(cx, a)),
        nfs_argop4::OP_FREE_STATEID(a) => finish(out, op, free_stateid::run(cx, a)),
        nfs_argop4::OP_GET_DIR_DELEGATION(_) => notsupp(out, op),
        nfs_argop4::OP_GETDEVICEINFO(_)
        | nfs_argop4::OP_GETDEVICELIST(_)
        | nfs_argop4::OP_LAYOUTCOMMIT(_)
        | nfs_argop4::OP_LAYOUTGET(_)
        | nfs_argop4::OP_LAYOUTRETURN(_) => notsupp(out, op),
        nfs_argop4::OP_SECINFO_NO_NAME(a) => finish(out, op, secinfo::secinfo_no_name(cx, a)),
        nfs_argop4::OP_SEQUENCE(a) => finish(out, op, sequence::run(cx, a)),
        nfs_argop4::OP_SET_SSV(_) => notsupp(out, op),
        nfs_argop4::OP_TEST_STATEID(a) => finish(out, op, test_stateid::run(cx, a)),
        nfs_argop4::OP_WANT_DELEGATION(a) => finish(out, op, want_delegation::run(cx, a)),
        nfs_argop4::OP_DESTROY_CLIENTID(a) => finish(out, op, destroy_clientid::run(cx, a)),
        nfs_argop4::OP_RECLAIM_COMPLETE(a) => finish(out, op, reclaim_complete::run(cx, a)),
        nfs_argop4::OP_ALLOCATE(a) => finish(out, op, allocate::run(cx, a)),
        nfs_argop4::OP_COPY(a) => finish(out, op, copy::run(cx, a)),
        nfs_argop4::OP_DEALLOCATE(a) => finish(out, op, deallocate::run(cx, a)),
        nfs_argop4::OP_IO_ADVISE(a) => finish(out, op, io_advise::run(cx, a)),
        nfs_argop4::OP_READ_PLUS(a) => finish(out, op, read_plus::run(cx, a)),
        nfs_argop4::OP_SEEK(a) => finish(out, op, seek::run(cx, a)),
        nfs_argop4::OP_CLONE(a) => finish(out, op, clone::run(cx, a)),
        nfs_argop4::OP_GETXATTR(a) => finish(out, op, getxattr::run(cx, a)),
        nfs_argop4::OP_SETXATTR(a) => finish(out, op, setxattr::run(cx, a)),
        nfs_argop4::OP_LISTXATTRS(a) => finish(out, op, listxattrs::run(cx, a)),
        nfs_argop4::OP_REMOVEXATTR(a) => finish(out, op, removexattr::run(cx, a)),
        // Copies are synchronous, so there is no offload to query or
        // cancel; inter-server copy, WRITE_SAME and pNFS statistics are not
        // offered.
        nfs_argop4::OP_COPY_NOTIFY(_)
        | nfs_argop4::OP_LAYOUTERROR(_)
        | nfs_argop4::OP_LAYOUTSTATS(_)
        | nfs_argop4::OP_OFFLOAD_CANCEL(_)
        | nfs_argop4::OP_OFFLOAD_STATUS(_)
        | nfs_argop4::OP_WRITE_SAME(_) => notsupp(out, op),
        nfs_argop4::OP_ILLEGAL => finish::<()>(out, OP_ILLEGAL, Err(NfsError::OpIllegal)),
    }
}
