//! One handler per operation, and one table that says everything the
//! COMPOUND loop needs to know about each operation (the idea of knfsd's
//! `nfsd4_ops[]`).
//!
//! A row of [`OPS`] holds the operation's flags (current filehandle
//! required, position rules of 4.1 sessions, whether it changes state,
//! how it takes part in security negotiation), the minor versions that
//! have it, the bound of its reply, and its runner: decoding of its
//! arguments, the handler, and the encoder of its result. The COMPOUND loop
//! ([`crate::compound`]) applies the rows in one place instead of every
//! handler checking for itself. Handlers return `NfsResult<Body>`;
//! [`finish`] encodes the status and the body (or the error's body).

use std::io::Cursor;

use nfs4d_xdr::codec::{Pack, Unpack};
use nfs4d_xdr::nfs4::*;

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
pub struct Flags(u16);

impl Flags {
    /// No flags.
    pub const NONE: Flags = Flags(0);
    /// Needs a current filehandle (NFS4ERR_NOFILEHANDLE otherwise).
    pub const NEED_FH: Flags = Flags(1);
    /// 4.1: may start a COMPOUND without SEQUENCE.
    pub const SESSIONLESS: Flags = Flags(1 << 1);
    /// 4.1: when sent without SEQUENCE it must be the only operation.
    pub const ONLY_OP: Flags = Flags(1 << 2);
    /// Changes state or data (what a reply cache must remember).
    pub const MODIFIES: Flags = Flags(1 << 3);
    /// SEQUENCE itself: first in every 4.1 COMPOUND, nowhere else.
    pub const SEQUENCE: Flags = Flags(1 << 4);
    /// Judges the security of what it reaches itself, so the export of the
    /// current filehandle is not checked before it runs: SECINFO and
    /// SECINFO_NO_NAME never answer NFS4ERR_WRONGSEC, LOOKUP and LOOKUPP
    /// are judged by the object they reach (RFC 8881 §2.6.3.1.1).
    pub const OWN_SECURITY: Flags = Flags(1 << 5);
    /// Puts a filehandle in place without using it (PUTFH, PUTROOTFH,
    /// PUTPUBFH, RESTOREFH): NFS4ERR_WRONGSEC waits for the next operation.
    pub const PUTS_FH: Flags = Flags(1 << 6);
    /// Reaches a new object by name (LOOKUP, LOOKUPP): NFS4ERR_WRONGSEC for
    /// that object at once.
    pub const LOOKS_UP: Flags = Flags(1 << 7);
    /// Settles the flavor question for a filehandle put just before it
    /// (SECINFO, SECINFO_NO_NAME, LOOKUP, LOOKUPP, OPEN).
    pub const PICKS_FLAVOR: Flags = Flags(1 << 8);
    /// Sets the current stateid together with the current filehandle
    /// (OPEN, RESTOREFH; RFC 8881 §16.2.3.1.2).
    pub const SETS_STATEID: Flags = Flags(1 << 9);
    /// Runs on a filehandle of a file system that moved to another server
    /// (everything else answers NFS4ERR_MOVED there, RFC 7530 §8.4.2):
    /// keeping or saving the handle, and GETATTR, which answers the
    /// attributes of an absent file system (`fs_locations`, `fsid`).
    pub const ABSENT_OK: Flags = Flags(1 << 10);

    /// All of `other`'s bits are set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of bits.
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        self.with(rhs)
    }
}

/// What the COMPOUND loop checks between decoding an operation's arguments
/// and running it (export access and the effective credential).
pub type Gate = fn(&mut Cx, &OpDesc) -> Result<(), NfsError>;

/// How running an operation ended.
#[derive(Debug)]
pub enum Step {
    /// Its arguments could not be decoded (NFS4ERR_BADXDR).
    BadXdr(nfs4d_xdr::codec::Error),
    /// The gate refused it before it ran.
    Refused(NfsError),
    /// It ran and its result, with this status, is encoded.
    Done(nfsstat4),
}

/// Decodes an operation's arguments from the COMPOUND, runs it and
/// encodes its result.
pub type Runner = fn(&mut Cx, &OpDesc, &mut Cursor<&[u8]>, &mut Vec<u8>, Gate) -> Step;

/// A row of the operation table.
#[derive(Clone, Copy)]
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
    /// Arguments, handler, result.
    pub run: Runner,
}

impl std::fmt::Debug for OpDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpDesc")
            .field("name", &self.name)
            .field("flags", &self.flags)
            .finish()
    }
}

/// The part every runner shares: decode, gate, minor version, run. The
/// minor-version check follows the decoding: an operation of another
/// minor version with undecodable arguments is NFS4ERR_BADXDR.
fn step<A>(
    cx: &mut Cx,
    d: &OpDesc,
    cur: &mut Cursor<&[u8]>,
    out: &mut Vec<u8>,
    gate: Gate,
    body: impl FnOnce(&mut Cx, A, &mut Vec<u8>) -> nfsstat4,
) -> Step
where
    A: for<'b> Unpack<Cursor<&'b [u8]>>,
{
    match A::unpack(cur) {
        Ok((a, _)) => step_decoded(cx, d, a, out, gate, body),
        Err(e) => Step::BadXdr(e),
    }
}

/// [`step`] after the decoding, for arguments decoded otherwise (WRITE's
/// borrow their data from the request).
fn step_decoded<A>(
    cx: &mut Cx,
    d: &OpDesc,
    a: A,
    out: &mut Vec<u8>,
    gate: Gate,
    body: impl FnOnce(&mut Cx, A, &mut Vec<u8>) -> nfsstat4,
) -> Step {
    if let Err(e) = gate(cx, d) {
        return Step::Refused(e);
    }
    if cx.minor < d.min_minor {
        let st = finish::<()>(out, nfs_opnum4::OP_ILLEGAL, Err(NfsError::OpIllegal));
        return Step::Done(st);
    }
    if cx.minor > d.max_minor {
        return Step::Done(finish::<()>(out, d.op, Err(NfsError::NotSupp)));
    }
    let start = out.len();
    let st = body(cx, a, out);
    let seen = crate::error::status_in_minor(st, cx.minor);
    if seen != st {
        // The status word follows the operation number; an error result
        // whose status changes carries no body.
        out[start + 4..start + 8].copy_from_slice(&(seen as i32).to_be_bytes());
    }
    Step::Done(seen)
}

/// No arguments on the wire.
#[derive(Debug, Clone, Copy)]
struct Void;

impl<In: std::io::Read> Unpack<In> for Void {
    fn unpack(_: &mut In) -> nfs4d_xdr::codec::Result<(Void, usize)> {
        Ok((Void, 0))
    }
}

/// One row of [`OPS`]. The last part says how the operation runs:
/// `Args => handler` (a handler whose result [`finish`] encodes),
/// `() => handler` (no arguments), `Args => encode f` (a handler that
/// encodes its own result), `Args => notsupp` (not offered:
/// NFS4ERR_NOTSUPP once the arguments decoded).
macro_rules! op {
    (@row $op:ident, $name:literal, $flags:expr, $min:expr, $max:expr, $bound:expr, $run:expr) => {
        OpDesc {
            op: nfs_opnum4::$op,
            name: $name,
            flags: $flags,
            min_minor: $min,
            max_minor: $max,
            reply_bound: $bound,
            run: $run,
        }
    };
    ($op:ident, $name:literal, $flags:expr, $min:expr, $max:expr, $bound:expr, () => $handler:path) => {
        op!(@row $op, $name, $flags, $min, $max, $bound, |cx, d, cur, out, gate| {
            let op = d.op;
            step(cx, d, cur, out, gate, |cx, _: Void, out| finish(out, op, $handler(cx)))
        })
    };
    ($op:ident, $name:literal, $flags:expr, $min:expr, $max:expr, $bound:expr, $args:ty => notsupp) => {
        op!(@row $op, $name, $flags, $min, $max, $bound, |cx, d, cur, out, gate| {
            let op = d.op;
            step(cx, d, cur, out, gate, |_, _: $args, out| {
                finish::<()>(out, op, Err(NfsError::NotSupp))
            })
        })
    };
    ($op:ident, $name:literal, $flags:expr, $min:expr, $max:expr, $bound:expr, $args:ty => encode $encoder:path) => {
        op!(@row $op, $name, $flags, $min, $max, $bound, |cx, d, cur, out, gate| {
            step(cx, d, cur, out, gate, |cx, a: $args, out| $encoder(cx, a, out))
        })
    };
    ($op:ident, $name:literal, $flags:expr, $min:expr, $max:expr, $bound:expr, $args:ty => $handler:path) => {
        op!(@row $op, $name, $flags, $min, $max, $bound, |cx, d, cur, out, gate| {
            let op = d.op;
            step(cx, d, cur, out, gate, |cx, a: $args, out| finish(out, op, $handler(cx, a)))
        })
    };
}

const FH: Flags = Flags::NEED_FH;
const FHM: Flags = Flags::NEED_FH.with(Flags::MODIFIES);
const M: Flags = Flags::MODIFIES;
const NONE: Flags = Flags::NONE;
const LONE: Flags = Flags::SESSIONLESS
    .with(Flags::ONLY_OP)
    .with(Flags::MODIFIES);
/// PUTFH and its kin.
const PUT: Flags = Flags::PUTS_FH;
/// LOOKUP, LOOKUPP.
const LOOK: Flags = Flags::NEED_FH
    .with(Flags::OWN_SECURITY)
    .with(Flags::LOOKS_UP)
    .with(Flags::PICKS_FLAVOR);
/// SECINFO, SECINFO_NO_NAME.
const SEC: Flags = Flags::NEED_FH
    .with(Flags::OWN_SECURITY)
    .with(Flags::PICKS_FLAVOR);
/// OPEN.
const OPEN: Flags = FHM.with(Flags::PICKS_FLAVOR).with(Flags::SETS_STATEID);

/// Bytes of an encoded filehandle, at most.
const FH_BYTES: u32 = 4 + NFS4_FHSIZE;
/// Bytes of an attribute reply, at most (no ACLs are served).
const ATTR_BYTES: u32 = 2048;
/// The last minor version this server speaks.
const ALL: u32 = 2;

/// The operation table, in operation-number order (RFC 7530 §16, RFC 8881
/// §18, RFC 7862 §15, RFC 8276 §8). Numbers without a row are
/// NFS4ERR_OP_ILLEGAL.
#[rustfmt::skip]
pub static OPS: [OpDesc; 73] = [
    op!(OP_ACCESS, "ACCESS", FH, 0, ALL, 16, ACCESS4args => access::run),
    op!(OP_CLOSE, "CLOSE", FHM, 0, ALL, 32, CLOSE4args => close::run),
    op!(OP_COMMIT, "COMMIT", FHM, 0, ALL, 16, COMMIT4args => commit::run),
    op!(OP_CREATE, "CREATE", FHM, 0, ALL, 64 + ATTR_BYTES, CREATE4args => create::run),
    op!(OP_DELEGPURGE, "DELEGPURGE", M, 0, ALL, 8, DELEGPURGE4args => notsupp),
    op!(OP_DELEGRETURN, "DELEGRETURN", FHM, 0, ALL, 8, DELEGRETURN4args => delegreturn::run),
    op!(OP_GETATTR, "GETATTR", FH.with(Flags::ABSENT_OK), 0, ALL, ATTR_BYTES + FH_BYTES, GETATTR4args => getattr::run),
    op!(OP_GETFH, "GETFH", FH.with(Flags::ABSENT_OK), 0, ALL, 8 + FH_BYTES, () => getfh::run),
    op!(OP_LINK, "LINK", FHM, 0, ALL, 32, LINK4args => link::run),
    op!(OP_LOCK, "LOCK", FHM, 0, ALL, 64 + NFS4_OPAQUE_LIMIT, LOCK4args => lock::run),
    op!(OP_LOCKT, "LOCKT", FH, 0, ALL, 64 + NFS4_OPAQUE_LIMIT, LOCKT4args => lockt::run),
    op!(OP_LOCKU, "LOCKU", FHM, 0, ALL, 32, LOCKU4args => locku::run),
    op!(OP_LOOKUP, "LOOKUP", LOOK, 0, ALL, 8, LOOKUP4args => lookup::run),
    op!(OP_LOOKUPP, "LOOKUPP", LOOK, 0, ALL, 8, () => lookupp::run),
    op!(OP_NVERIFY, "NVERIFY", FH, 0, ALL, 8, NVERIFY4args => verify::nverify),
    op!(OP_OPEN, "OPEN", OPEN, 0, ALL, 256, OPEN4args => open::run),
    op!(OP_OPENATTR, "OPENATTR", FH, 0, ALL, 8, OPENATTR4args => notsupp),
    op!(OP_OPEN_CONFIRM, "OPEN_CONFIRM", FHM, 0, 0, 32, OPEN_CONFIRM4args => open_confirm::run),
    op!(OP_OPEN_DOWNGRADE, "OPEN_DOWNGRADE", FHM, 0, ALL, 32, OPEN_DOWNGRADE4args => open_downgrade::run),
    op!(OP_PUTFH, "PUTFH", PUT, 0, ALL, 8, PUTFH4args => putfh::putfh),
    op!(OP_PUTPUBFH, "PUTPUBFH", PUT, 0, ALL, 8, () => putfh::putrootfh),
    op!(OP_PUTROOTFH, "PUTROOTFH", PUT, 0, ALL, 8, () => putfh::putrootfh),
    op!(OP_READ, "READ", FH, 0, ALL, 16, READ4args => encode read_encoded),
    op!(OP_READDIR, "READDIR", FH, 0, ALL, 24, READDIR4args => encode readdir::encoded),
    op!(OP_READLINK, "READLINK", FH, 0, ALL, 12 + 4096, () => readlink::run),
    op!(OP_REMOVE, "REMOVE", FHM, 0, ALL, 32, REMOVE4args => remove::run),
    op!(OP_RENAME, "RENAME", FHM, 0, ALL, 56, RENAME4args => rename::run),
    op!(OP_RENEW, "RENEW", M, 0, 0, 8, RENEW4args => renew::run),
    op!(OP_RESTOREFH, "RESTOREFH", PUT.with(Flags::SETS_STATEID), 0, ALL, 8, () => savefh::restorefh),
    op!(OP_SAVEFH, "SAVEFH", FH.with(Flags::ABSENT_OK), 0, ALL, 8, () => savefh::savefh),
    op!(OP_SECINFO, "SECINFO", SEC, 0, ALL, 64, SECINFO4args => secinfo::secinfo),
    op!(OP_SETATTR, "SETATTR", FHM, 0, ALL, 32, SETATTR4args => encode setattr_encoded),
    op!(OP_SETCLIENTID, "SETCLIENTID", M, 0, 0, 32, SETCLIENTID4args => encode setclientid_encoded),
    op!(OP_SETCLIENTID_CONFIRM, "SETCLIENTID_CONFIRM", M, 0, 0, 8, SETCLIENTID_CONFIRM4args => setclientid::confirm),
    op!(OP_VERIFY, "VERIFY", FH, 0, ALL, 8, VERIFY4args => verify::verify),
    // WRITE's data is borrowed from the request, not copied out of it.
    op!(@row OP_WRITE, "WRITE", FHM, 0, ALL, 32, |cx, d, cur, out, gate| {
        let op = d.op;
        match write::WriteArgs::decode(cur) {
            Ok(a) => step_decoded(cx, d, a, out, gate, |cx, a, out| finish(out, op, write::run(cx, a))),
            Err(e) => Step::BadXdr(e),
        }
    }),
    op!(OP_RELEASE_LOCKOWNER, "RELEASE_LOCKOWNER", M, 0, 0, 8, RELEASE_LOCKOWNER4args => release_lockowner::run),
    op!(OP_BACKCHANNEL_CTL, "BACKCHANNEL_CTL", M, 1, ALL, 8, BACKCHANNEL_CTL4args => bind_conn_to_session::backchannel_ctl),
    op!(OP_BIND_CONN_TO_SESSION, "BIND_CONN_TO_SESSION", LONE, 1, ALL, 32, BIND_CONN_TO_SESSION4args => bind_conn_to_session::run),
    op!(OP_EXCHANGE_ID, "EXCHANGE_ID", LONE, 1, ALL, 2048 + 3 * NFS4_OPAQUE_LIMIT, EXCHANGE_ID4args => exchange_id::run),
    op!(OP_CREATE_SESSION, "CREATE_SESSION", LONE, 1, ALL, 128, CREATE_SESSION4args => encode create_session::run),
    op!(OP_DESTROY_SESSION, "DESTROY_SESSION", LONE, 1, ALL, 8, DESTROY_SESSION4args => destroy_session::run),
    op!(OP_FREE_STATEID, "FREE_STATEID", M, 1, ALL, 8, FREE_STATEID4args => free_stateid::run),
    op!(OP_GET_DIR_DELEGATION, "GET_DIR_DELEGATION", FH, 1, ALL, 8, GET_DIR_DELEGATION4args => notsupp),
    op!(OP_GETDEVICEINFO, "GETDEVICEINFO", NONE, 1, ALL, 8, GETDEVICEINFO4args => notsupp),
    op!(OP_GETDEVICELIST, "GETDEVICELIST", FH, 1, ALL, 8, GETDEVICELIST4args => notsupp),
    op!(OP_LAYOUTCOMMIT, "LAYOUTCOMMIT", FH, 1, ALL, 8, LAYOUTCOMMIT4args => notsupp),
    op!(OP_LAYOUTGET, "LAYOUTGET", FH, 1, ALL, 8, LAYOUTGET4args => notsupp),
    op!(OP_LAYOUTRETURN, "LAYOUTRETURN", FH, 1, ALL, 8, LAYOUTRETURN4args => notsupp),
    op!(OP_SECINFO_NO_NAME, "SECINFO_NO_NAME", SEC, 1, ALL, 64, SECINFO_NO_NAME4args => secinfo::secinfo_no_name),
    op!(OP_SEQUENCE, "SEQUENCE", Flags::SEQUENCE, 1, ALL, 48, SEQUENCE4args => sequence::run),
    op!(OP_SET_SSV, "SET_SSV", NONE, 1, ALL, 8, SET_SSV4args => notsupp),
    op!(OP_TEST_STATEID, "TEST_STATEID", NONE, 1, ALL, 8 + 4 * 1024, TEST_STATEID4args => test_stateid::run),
    op!(OP_WANT_DELEGATION, "WANT_DELEGATION", FH, 1, ALL, 8, WANT_DELEGATION4args => want_delegation::run),
    op!(OP_DESTROY_CLIENTID, "DESTROY_CLIENTID", LONE, 1, ALL, 8, DESTROY_CLIENTID4args => destroy_clientid::run),
    op!(OP_RECLAIM_COMPLETE, "RECLAIM_COMPLETE", M, 1, ALL, 8, RECLAIM_COMPLETE4args => reclaim_complete::run),
    op!(OP_ALLOCATE, "ALLOCATE", FHM, 2, ALL, 8, ALLOCATE4args => allocate::run),
    op!(OP_COPY, "COPY", FHM, 2, ALL, 64, COPY4args => copy::run),
    // Copies are synchronous, so there is no offload to query or cancel;
    // inter-server copy, WRITE_SAME and pNFS statistics are not offered.
    op!(OP_COPY_NOTIFY, "COPY_NOTIFY", FH, 2, ALL, 64, COPY_NOTIFY4args => notsupp),
    op!(OP_DEALLOCATE, "DEALLOCATE", FHM, 2, ALL, 8, DEALLOCATE4args => deallocate::run),
    op!(OP_IO_ADVISE, "IO_ADVISE", FH, 2, ALL, 16, IO_ADVISE4args => io_advise::run),
    op!(OP_LAYOUTERROR, "LAYOUTERROR", FH, 2, ALL, 8, LAYOUTERROR4args => notsupp),
    op!(OP_LAYOUTSTATS, "LAYOUTSTATS", FH, 2, ALL, 8, LAYOUTSTATS4args => notsupp),
    op!(OP_OFFLOAD_CANCEL, "OFFLOAD_CANCEL", FH, 2, ALL, 8, OFFLOAD_CANCEL4args => notsupp),
    op!(OP_OFFLOAD_STATUS, "OFFLOAD_STATUS", FH, 2, ALL, 16, OFFLOAD_STATUS4args => notsupp),
    op!(OP_READ_PLUS, "READ_PLUS", FH, 2, ALL, 32, READ_PLUS4args => read_plus::run),
    op!(OP_SEEK, "SEEK", FH, 2, ALL, 24, SEEK4args => seek::run),
    op!(OP_WRITE_SAME, "WRITE_SAME", FHM, 2, ALL, 32, WRITE_SAME4args => notsupp),
    op!(OP_CLONE, "CLONE", FHM, 2, ALL, 8, CLONE4args => clone::run),
    // The xattr handlers bound their own replies by the session limit.
    op!(OP_GETXATTR, "GETXATTR", FH, 2, ALL, 16, GETXATTR4args => getxattr::run),
    op!(OP_SETXATTR, "SETXATTR", FHM, 2, ALL, 32, SETXATTR4args => setxattr::run),
    op!(OP_LISTXATTRS, "LISTXATTRS", FH, 2, ALL, 24, LISTXATTRS4args => listxattrs::run),
    op!(OP_REMOVEXATTR, "REMOVEXATTR", FHM, 2, ALL, 32, REMOVEXATTR4args => removexattr::run),
];

/// The first operation number (RFC 7530 §16: ACCESS is 3; 0-2 are unused).
const FIRST_OP: u32 = 3;

// Row `i` is operation `FIRST_OP + i`: the table has no gaps and ends with
// the last operation any minor version defines.
const _: () = assert!(OPS.len() as u32 == nfs_opnum4::OP_REMOVEXATTR as i32 as u32 - FIRST_OP + 1);

/// The row of operation number `opnum`, `None` for numbers no minor
/// version defines (answered with NFS4ERR_OP_ILLEGAL).
pub fn describe(opnum: u32) -> Option<&'static OpDesc> {
    OPS.get(usize::try_from(opnum.checked_sub(FIRST_OP)?).ok()?)
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Encodes an operation's result: `resop`, status, and the body on
/// success or the body the error carries (LOCK4denied of LOCK and LOCKT,
/// RFC 8881 §18.10.2).
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
            e.pack_body(out);
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

/// READ's encoder: the data of a large READ stays out of the encoded reply
/// (`read::finish`).
fn read_encoded(cx: &mut Cx, a: READ4args, out: &mut Vec<u8>) -> nfsstat4 {
    let r = read::run(cx, a);
    read::finish(cx, out, nfs_opnum4::OP_READ, r)
}

/// SETATTR's encoder: its result carries `attrsset` on errors too (RFC
/// 8881 §18.30.2); an error sets nothing.
fn setattr_encoded(cx: &mut Cx, a: SETATTR4args, out: &mut Vec<u8>) -> nfsstat4 {
    let st = finish(out, nfs_opnum4::OP_SETATTR, setattr::run(cx, a));
    if st != nfsstat4::NFS4_OK {
        put_u32(out, 0);
    }
    st
}

/// SETCLIENTID's encoder: NFS4ERR_CLID_INUSE carries `client_using` (RFC
/// 7530 §16.33.2), given with empty netid and address: the server does not
/// disclose where the other client is.
fn setclientid_encoded(cx: &mut Cx, a: SETCLIENTID4args, out: &mut Vec<u8>) -> nfsstat4 {
    let st = finish(
        out,
        nfs_opnum4::OP_SETCLIENTID,
        setclientid::setclientid(cx, a),
    );
    if st == nfsstat4::NFS4ERR_CLID_INUSE {
        put_u32(out, 0);
        put_u32(out, 0);
    }
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_at_its_operation_number() {
        for (i, d) in OPS.iter().enumerate() {
            assert_eq!(d.op as i32 as u32, FIRST_OP + i as u32, "{}", d.name);
            assert!(describe(d.op as i32 as u32).is_some_and(|r| r.name == d.name));
        }
        assert!(describe(0).is_none() && describe(2).is_none());
        assert!(describe(nfs_opnum4::OP_ILLEGAL as i32 as u32).is_none());
    }
}
