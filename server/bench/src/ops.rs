//! The operations the workloads send as the Linux client would, and
//! extractors for the results they read back; the plain builders come
//! from the test kit.

use nfs4d_xdr::nfs4::*;

use nfs4d_testkit::ops::{attrs_of, fh_of, open_ok, read_ok, readdir_ok, write_ok};
pub use nfs4d_testkit::ops::{
    bitmap, check, commit, delegreturn, getattr_bitmap as getattr, lookup, mode_attr, putfh, read,
    readdir, readdir_attrs, remove, scalar_attrs, LS_ATTRS,
};

/// CREATE of a directory, mode 0755.
pub fn mkdir(name: &str) -> nfs_argop4 {
    nfs4d_testkit::ops::mkdir(name, mode_attr(0o755))
}

/// OPEN by name in the current directory, creating the file (UNCHECKED:
/// an existing file is opened as is) when `create`. No delegation is
/// wanted: the workloads never hold a file long enough to profit from one.
pub fn open(owner: &open_owner4, name: &str, create: bool) -> nfs_argop4 {
    nfs_argop4::OP_OPEN(OPEN4args {
        seqid: 0,
        share_access: OPEN4_SHARE_ACCESS_BOTH | OPEN4_SHARE_ACCESS_WANT_NO_DELEG,
        share_deny: OPEN4_SHARE_DENY_NONE,
        owner: owner.clone(),
        openhow: if create {
            openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(mode_attr(0o644)))
        } else {
            openflag4::default(opentype4::OPEN4_NOCREATE)
        },
        claim: open_claim4::CLAIM_NULL(name.as_bytes().to_vec()),
    })
}

/// CLOSE (4.1: no open owner seqid).
pub fn close(stateid: &stateid4) -> nfs_argop4 {
    nfs4d_testkit::ops::close(0, stateid)
}

/// A WRITE whose data the engine sends from the request's payload.
pub fn write(stateid: &stateid4, offset: u64, stable: stable_how4) -> nfs_argop4 {
    nfs4d_testkit::ops::write(stateid, offset, stable, Vec::new())
}

/// The result `got` a reply must hold, else an error naming what lacks.
fn needed<T>(got: Option<T>, what: &str) -> Result<T, String> {
    got.ok_or_else(|| format!("reply lacks a {what} result"))
}

pub fn got_fh(res: &COMPOUND4res) -> Result<nfs_fh4, String> {
    needed(fh_of(res), "GETFH")
}

/// The open stateid, and a delegation stateid if the server granted one
/// despite WANT_NO_DELEG (to be returned).
pub fn got_open(res: &COMPOUND4res) -> Result<(stateid4, Option<stateid4>), String> {
    let ok = needed(open_ok(res), "OPEN")?;
    let deleg = nfs4d_testkit::ops::deleg_stateid(&ok.delegation).cloned();
    Ok((ok.stateid.clone(), deleg))
}

pub fn got_read(res: &COMPOUND4res) -> Result<&READ4resok, String> {
    needed(read_ok(res), "READ")
}

pub fn got_write(res: &COMPOUND4res) -> Result<&WRITE4resok, String> {
    needed(write_ok(res), "WRITE")
}

pub fn got_readdir(res: &COMPOUND4res) -> Result<&READDIR4resok, String> {
    needed(readdir_ok(res), "READDIR")
}

pub fn got_attrs(res: &COMPOUND4res) -> Result<&fattr4, String> {
    needed(attrs_of(res), "GETATTR")
}
