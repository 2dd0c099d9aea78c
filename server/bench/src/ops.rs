//! Builders for the operations the workloads send, and extractors for the
//! results they read back.

use nfs4d_xdr::nfs4::*;

pub fn bitmap(attrs: &[u32]) -> bitmap4 {
    let mut bm: Vec<u32> = Vec::new();
    for &a in attrs {
        let w = (a / 32) as usize;
        if bm.len() <= w {
            bm.resize(w + 1, 0);
        }
        bm[w] |= 1 << (a % 32);
    }
    bm
}

/// What `ls -l` needs of a file, as the Linux client asks for it in GETATTR.
pub const LS_ATTRS: &[u32] = &[
    FATTR4_TYPE,
    FATTR4_CHANGE,
    FATTR4_SIZE,
    FATTR4_FSID,
    FATTR4_FILEID,
    FATTR4_MODE,
    FATTR4_NUMLINKS,
    FATTR4_OWNER,
    FATTR4_OWNER_GROUP,
    FATTR4_RAWDEV,
    FATTR4_SPACE_USED,
    FATTR4_TIME_ACCESS,
    FATTR4_TIME_METADATA,
    FATTR4_TIME_MODIFY,
    FATTR4_MOUNTED_ON_FILEID,
];

/// The same in READDIR, plus the per-entry error and the filehandle (the
/// Linux client's READDIR attribute set for `ls -l`).
pub fn readdir_attrs() -> bitmap4 {
    let mut a = LS_ATTRS.to_vec();
    a.extend([FATTR4_RDATTR_ERROR, FATTR4_FILEHANDLE]);
    bitmap(&a)
}

/// Attributes setting the mode (new files and directories).
pub fn mode_attr(mode: u32) -> fattr4 {
    fattr4 {
        attrmask: bitmap(&[FATTR4_MODE]),
        attr_vals: mode.to_be_bytes().to_vec(),
    }
}

pub fn putfh(fh: &nfs_fh4) -> nfs_argop4 {
    nfs_argop4::OP_PUTFH(PUTFH4args { object: fh.clone() })
}

pub fn lookup(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_LOOKUP(LOOKUP4args {
        objname: name.as_bytes().to_vec(),
    })
}

pub fn getattr(bm: &bitmap4) -> nfs_argop4 {
    nfs_argop4::OP_GETATTR(GETATTR4args {
        attr_request: bm.clone(),
    })
}

pub fn remove(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_REMOVE(REMOVE4args {
        target: name.as_bytes().to_vec(),
    })
}

pub fn mkdir(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_CREATE(CREATE4args {
        objtype: createtype4::NF4DIR,
        objname: name.as_bytes().to_vec(),
        createattrs: mode_attr(0o755),
    })
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

pub fn close(stateid: &stateid4) -> nfs_argop4 {
    nfs_argop4::OP_CLOSE(CLOSE4args {
        seqid: 0,
        open_stateid: stateid.clone(),
    })
}

pub fn delegreturn(stateid: &stateid4) -> nfs_argop4 {
    nfs_argop4::OP_DELEGRETURN(DELEGRETURN4args {
        deleg_stateid: stateid.clone(),
    })
}

pub fn read(stateid: &stateid4, offset: u64, count: u32) -> nfs_argop4 {
    nfs_argop4::OP_READ(READ4args {
        stateid: stateid.clone(),
        offset,
        count,
    })
}

/// A WRITE whose data the engine sends from the request's payload.
pub fn write(stateid: &stateid4, offset: u64, stable: stable_how4) -> nfs_argop4 {
    nfs_argop4::OP_WRITE(WRITE4args {
        stateid: stateid.clone(),
        offset,
        stable,
        data: Vec::new(),
    })
}

pub fn commit() -> nfs_argop4 {
    nfs_argop4::OP_COMMIT(COMMIT4args {
        offset: 0,
        count: 0,
    })
}

pub fn readdir(cookie: u64, verf: verifier4, bytes: u32, attrs: &bitmap4) -> nfs_argop4 {
    nfs_argop4::OP_READDIR(READDIR4args {
        cookie,
        cookieverf: verf,
        dircount: bytes,
        maxcount: bytes,
        attr_request: attrs.clone(),
    })
}

/// `Ok` when every operation succeeded, else which one failed and how.
pub fn check(res: &COMPOUND4res, what: &str) -> Result<(), String> {
    if res.status == nfsstat4::NFS4_OK {
        return Ok(());
    }
    // The SEQUENCE result is first; the failing operation is last.
    Err(format!(
        "{what}: operation {} failed with {:?}",
        res.resarray.len().saturating_sub(1),
        res.status
    ))
}

pub fn got_fh(res: &COMPOUND4res) -> Result<nfs_fh4, String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(ok)) => Some(ok.object.clone()),
            _ => None,
        })
        .ok_or_else(|| "reply lacks a GETFH result".to_string())
}

/// The open stateid, and a delegation stateid if the server granted one
/// despite WANT_NO_DELEG (to be returned).
pub fn got_open(res: &COMPOUND4res) -> Result<(stateid4, Option<stateid4>), String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_OPEN(OPEN4res::NFS4_OK(ok)) => {
                let deleg = match &ok.delegation {
                    open_delegation4::OPEN_DELEGATE_READ(d) => Some(d.stateid.clone()),
                    open_delegation4::OPEN_DELEGATE_WRITE(d) => Some(d.stateid.clone()),
                    _ => None,
                };
                Some((ok.stateid.clone(), deleg))
            }
            _ => None,
        })
        .ok_or_else(|| "reply lacks an OPEN result".to_string())
}

pub fn got_read(res: &COMPOUND4res) -> Result<&READ4resok, String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_READ(READ4res::NFS4_OK(ok)) => Some(ok),
            _ => None,
        })
        .ok_or_else(|| "reply lacks a READ result".to_string())
}

pub fn got_write(res: &COMPOUND4res) -> Result<&WRITE4resok, String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_WRITE(WRITE4res::NFS4_OK(ok)) => Some(ok),
            _ => None,
        })
        .ok_or_else(|| "reply lacks a WRITE result".to_string())
}

pub fn got_readdir(res: &COMPOUND4res) -> Result<&READDIR4resok, String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_READDIR(READDIR4res::NFS4_OK(ok)) => Some(ok),
            _ => None,
        })
        .ok_or_else(|| "reply lacks a READDIR result".to_string())
}

pub fn got_attrs(res: &COMPOUND4res) -> Result<&fattr4, String> {
    res.resarray
        .iter()
        .find_map(|r| match r {
            nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok)) => Some(&ok.obj_attributes),
            _ => None,
        })
        .ok_or_else(|| "reply lacks a GETATTR result".to_string())
}

/// Decodes the values of attributes that are all single `uint64_t`s or
/// `uint32_t`s (SIZE, MAXREAD, MAXWRITE, TYPE, MODE…), in attribute-number
/// order, from a GETATTR result. `wide` says which are 64-bit.
pub fn scalar_attrs(f: &fattr4, wide: &[(u32, bool)]) -> Result<Vec<(u32, u64)>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut sorted = wide.to_vec();
    sorted.sort_unstable();
    for (a, is64) in sorted {
        let present = f
            .attrmask
            .get((a / 32) as usize)
            .is_some_and(|w| w & (1 << (a % 32)) != 0);
        if !present {
            continue;
        }
        let n = if is64 { 8 } else { 4 };
        let b = f
            .attr_vals
            .get(at..at + n)
            .ok_or("attribute values truncated")?;
        let v = if is64 {
            u64::from_be_bytes(b.try_into().map_err(|_| "bad attribute")?)
        } else {
            u64::from(u32::from_be_bytes(
                b.try_into().map_err(|_| "bad attribute")?,
            ))
        };
        out.push((a, v));
        at += n;
    }
    Ok(out)
}
