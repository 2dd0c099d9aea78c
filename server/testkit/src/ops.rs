//! Builders of the COMPOUND operations tests and the load generator send,
//! and readers of the results they look at. Builders take the arguments
//! that vary in practice and fill the rest the common way; anything more
//! unusual is built from the generated types directly.

use nfs4d_xdr::nfs4::*;

/// The anonymous stateid (all zeros): I/O without open state
/// (RFC 8881 §8.2.3).
pub const ANON: stateid4 = stateid4 {
    seqid: 0,
    other: [0; 12],
};

/// The attribute bitmap of attribute numbers `attrs`.
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

/// Attributes that set nothing (CREATE, OPEN with UNCHECKED4).
pub fn no_attrs() -> fattr4 {
    fattr4 {
        attrmask: vec![],
        attr_vals: vec![],
    }
}

/// Attributes setting the mode.
pub fn mode_attr(mode: u32) -> fattr4 {
    fattr4 {
        attrmask: bitmap(&[FATTR4_MODE]),
        attr_vals: mode.to_be_bytes().to_vec(),
    }
}

/// Attributes setting the size.
pub fn size_attr(size: u64) -> fattr4 {
    fattr4 {
        attrmask: bitmap(&[FATTR4_SIZE]),
        attr_vals: size.to_be_bytes().to_vec(),
    }
}

pub fn putfh(fh: &[u8]) -> nfs_argop4 {
    nfs_argop4::OP_PUTFH(PUTFH4args {
        object: fh.to_vec(),
    })
}

pub fn lookup(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_LOOKUP(LOOKUP4args {
        objname: name.as_bytes().to_vec(),
    })
}

/// GETATTR of the given attribute numbers.
pub fn getattr(attrs: &[u32]) -> nfs_argop4 {
    getattr_bitmap(&bitmap(attrs))
}

/// GETATTR of a bitmap built beforehand.
pub fn getattr_bitmap(bm: &bitmap4) -> nfs_argop4 {
    nfs_argop4::OP_GETATTR(GETATTR4args {
        attr_request: bm.clone(),
    })
}

/// SETATTR of `attrs` under `stateid`.
pub fn setattr(stateid: &stateid4, attrs: fattr4) -> nfs_argop4 {
    nfs_argop4::OP_SETATTR(SETATTR4args {
        stateid: stateid.clone(),
        obj_attributes: attrs,
    })
}

/// CREATE of a directory in the current directory.
pub fn mkdir(name: &str, attrs: fattr4) -> nfs_argop4 {
    nfs_argop4::OP_CREATE(CREATE4args {
        objtype: createtype4::NF4DIR,
        objname: name.as_bytes().to_vec(),
        createattrs: attrs,
    })
}

pub fn remove(name: &str) -> nfs_argop4 {
    nfs_argop4::OP_REMOVE(REMOVE4args {
        target: name.as_bytes().to_vec(),
    })
}

/// RENAME from the saved directory to the current one.
pub fn rename(old: &str, new: &str) -> nfs_argop4 {
    nfs_argop4::OP_RENAME(RENAME4args {
        oldname: old.as_bytes().to_vec(),
        newname: new.as_bytes().to_vec(),
    })
}

pub fn read(stateid: &stateid4, offset: u64, count: u32) -> nfs_argop4 {
    nfs_argop4::OP_READ(READ4args {
        stateid: stateid.clone(),
        offset,
        count,
    })
}

/// WRITE of `data` (empty for a pipelined request that sends its payload
/// apart, see `pipeline::Request::payload`).
pub fn write(stateid: &stateid4, offset: u64, stable: stable_how4, data: Vec<u8>) -> nfs_argop4 {
    nfs_argop4::OP_WRITE(WRITE4args {
        stateid: stateid.clone(),
        offset,
        stable,
        data,
    })
}

/// COMMIT of the whole file.
pub fn commit() -> nfs_argop4 {
    nfs_argop4::OP_COMMIT(COMMIT4args {
        offset: 0,
        count: 0,
    })
}

/// CLOSE; `seqid` is the open owner's (4.0; 0 in 4.1, RFC 8881 §18.2.3).
pub fn close(seqid: u32, stateid: &stateid4) -> nfs_argop4 {
    nfs_argop4::OP_CLOSE(CLOSE4args {
        seqid,
        open_stateid: stateid.clone(),
    })
}

pub fn delegreturn(stateid: &stateid4) -> nfs_argop4 {
    nfs_argop4::OP_DELEGRETURN(DELEGRETURN4args {
        deleg_stateid: stateid.clone(),
    })
}

/// READDIR from `cookie`, with `bytes` as both dircount and maxcount.
pub fn readdir(cookie: u64, verf: verifier4, bytes: u32, attrs: &bitmap4) -> nfs_argop4 {
    nfs_argop4::OP_READDIR(READDIR4args {
        cookie,
        cookieverf: verf,
        dircount: bytes,
        maxcount: bytes,
        attr_request: attrs.clone(),
    })
}

/// SETCLIENTID (4.0) of client `owner`, boot instance `verifier`; the
/// callback address is a placeholder (the server finds no callback
/// listener there, so 4.0 clients get no delegations).
pub fn setclientid(owner: &[u8], verifier: verifier4) -> nfs_argop4 {
    nfs_argop4::OP_SETCLIENTID(SETCLIENTID4args {
        client: nfs_client_id4 {
            verifier,
            id: owner.to_vec(),
        },
        callback: cb_client4 {
            cb_program: 0x4000_0000,
            cb_location: netaddr4 {
                na_r_netid: b"tcp".to_vec(),
                na_r_addr: b"127.0.0.1.0.0".to_vec(),
            },
        },
        callback_ident: 1,
    })
}

/// OPEN, denying nothing, by open owner `owner` of client `clientid`.
pub fn open_op(
    clientid: clientid4,
    owner: &[u8],
    seqid: u32,
    access: u32,
    openhow: openflag4,
    claim: open_claim4,
) -> nfs_argop4 {
    nfs_argop4::OP_OPEN(OPEN4args {
        seqid,
        share_access: access,
        share_deny: OPEN4_SHARE_DENY_NONE,
        owner: open_owner4 {
            clientid,
            owner: owner.to_vec(),
        },
        openhow,
        claim,
    })
}

/// PUTROOTFH, OPEN of `name` (UNCHECKED4 create, read and write, denying
/// nothing) by open owner `owner` of client `clientid`, GETFH: a file
/// made, or opened if it exists, in the root.
pub fn create_in_root(clientid: clientid4, owner: &[u8], name: &str) -> Vec<nfs_argop4> {
    vec![
        nfs_argop4::OP_PUTROOTFH,
        open_op(
            clientid,
            owner,
            0,
            OPEN4_SHARE_ACCESS_BOTH,
            create_unchecked(),
            claim_null(name),
        ),
        nfs_argop4::OP_GETFH,
    ]
}

/// OPEN's creation mode: UNCHECKED4 (an existing file is opened as is),
/// setting no attributes.
pub fn create_unchecked() -> openflag4 {
    openflag4::OPEN4_CREATE(createhow4::UNCHECKED4(no_attrs()))
}

/// OPEN's mode for a file that must exist.
pub fn no_create() -> openflag4 {
    openflag4::default(opentype4::OPEN4_NOCREATE)
}

/// The claim that reclaims an open (without delegation) after a restart;
/// the current filehandle is the file.
pub fn claim_previous() -> open_claim4 {
    open_claim4::CLAIM_PREVIOUS(open_delegation_type4::OPEN_DELEGATE_NONE)
}

/// The claim of an OPEN by name in the current directory.
pub fn claim_null(name: &str) -> open_claim4 {
    open_claim4::CLAIM_NULL(name.as_bytes().to_vec())
}

pub fn lock_type(write: bool) -> nfs_lock_type4 {
    if write {
        nfs_lock_type4::WRITE_LT
    } else {
        nfs_lock_type4::READ_LT
    }
}

/// LOCK of `length` bytes from `offset`.
pub fn lock_op(
    write: bool,
    reclaim: bool,
    offset: u64,
    length: u64,
    locker: locker4,
) -> nfs_argop4 {
    nfs_argop4::OP_LOCK(LOCK4args {
        locktype: lock_type(write),
        reclaim,
        offset,
        length,
        locker,
    })
}

/// The locker of a lock owner's first LOCK: lock owner `owner` of client
/// `clientid`, starting from open stateid `open` at open owner seqid
/// `open_seqid`.
pub fn new_lock_owner(
    clientid: clientid4,
    owner: &[u8],
    open: &stateid4,
    open_seqid: u32,
    lock_seqid: u32,
) -> locker4 {
    locker4::TRUE(open_to_lock_owner4 {
        open_seqid,
        open_stateid: open.clone(),
        lock_seqid,
        lock_owner: lock_owner4 {
            clientid,
            owner: owner.to_vec(),
        },
    })
}

/// The locker of a later LOCK by the owner of lock stateid `lock`.
pub fn existing_lock_owner(lock: &stateid4, lock_seqid: u32) -> locker4 {
    locker4::FALSE(exist_lock_owner4 {
        lock_stateid: lock.clone(),
        lock_seqid,
    })
}

/// The status of one operation's result. Every result starts with its
/// operation and status: decode them from the encoding rather than
/// matching ~70 variants.
pub fn result_status(r: &nfs_resop4) -> nfsstat4 {
    let b = nfs4d_xdr::to_bytes(r);
    nfsstat4::try_from(i32::from_be_bytes([b[4], b[5], b[6], b[7]])).expect("status")
}

/// The words of an RPC record after the record mark.
pub fn reply_words(rec: &[u8]) -> Vec<u32> {
    rec[4..]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `Ok` when every operation succeeded, else which one failed and how.
pub fn check(res: &COMPOUND4res, what: &str) -> Result<(), String> {
    if res.status == nfsstat4::NFS4_OK {
        return Ok(());
    }
    // The failing operation is the last one answered.
    Err(format!(
        "{what}: operation {} failed with {:?}",
        res.resarray.len().saturating_sub(1),
        res.status
    ))
}

/// The result of a COMPOUND's successful OPEN.
pub fn open_ok(r: &COMPOUND4res) -> Option<&OPEN4resok> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_OPEN(OPEN4res::NFS4_OK(ok)) => Some(ok),
        _ => None,
    })
}

/// The stateid of a delegation an OPEN granted.
pub fn deleg_stateid(d: &open_delegation4) -> Option<&stateid4> {
    match d {
        open_delegation4::OPEN_DELEGATE_READ(r) => Some(&r.stateid),
        open_delegation4::OPEN_DELEGATE_WRITE(w) => Some(&w.stateid),
        _ => None,
    }
}

/// The handle the COMPOUND's last successful GETFH returned.
pub fn fh_of(r: &COMPOUND4res) -> Option<nfs_fh4> {
    r.resarray.iter().rev().find_map(|x| match x {
        nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(ok)) => Some(ok.object.clone()),
        _ => None,
    })
}

/// The result of a COMPOUND's successful READ.
pub fn read_ok(r: &COMPOUND4res) -> Option<&READ4resok> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_READ(READ4res::NFS4_OK(ok)) => Some(ok),
        _ => None,
    })
}

/// The result of a COMPOUND's successful WRITE.
pub fn write_ok(r: &COMPOUND4res) -> Option<&WRITE4resok> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_WRITE(WRITE4res::NFS4_OK(ok)) => Some(ok),
        _ => None,
    })
}

/// The result of a COMPOUND's successful READDIR.
pub fn readdir_ok(r: &COMPOUND4res) -> Option<&READDIR4resok> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_READDIR(READDIR4res::NFS4_OK(ok)) => Some(ok),
        _ => None,
    })
}

/// The attributes a COMPOUND's successful GETATTR returned.
pub fn attrs_of(r: &COMPOUND4res) -> Option<&fattr4> {
    r.resarray.iter().find_map(|x| match x {
        nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok)) => Some(&ok.obj_attributes),
        _ => None,
    })
}

/// Decodes the values of attributes that are all single `uint64_t`s or
/// `uint32_t`s (SIZE, MAXREAD, MAXWRITE, TYPE, MODE…) from `f`. `wide`
/// names the attributes wanted and whether each is 64-bit; the values come
/// in attribute-number order, as they are encoded (RFC 8881 §3.3.7).
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

/// The SIZE a COMPOUND's successful GETATTR returned, when the attributes
/// before it (numbers 0 to 3) were at most TYPE, FH_EXPIRE_TYPE and CHANGE.
pub fn size_of(r: &COMPOUND4res) -> Option<u64> {
    let f = attrs_of(r)?;
    let known = [
        (FATTR4_TYPE, false),
        (FATTR4_FH_EXPIRE_TYPE, false),
        (FATTR4_CHANGE, true),
        (FATTR4_SIZE, true),
    ];
    let vals = scalar_attrs(f, &known).ok()?;
    vals.iter()
        .find(|(a, _)| *a == FATTR4_SIZE)
        .map(|&(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_span_words() {
        assert_eq!(bitmap(&[]), Vec::<u32>::new());
        assert_eq!(bitmap(&[1, 4]), vec![0b10010]);
        assert_eq!(bitmap(&[82, 0]), vec![1, 0, 1 << 18]);
    }

    #[test]
    fn statuses_are_read_from_any_result() {
        let ok = nfs_resop4::OP_PUTROOTFH(PUTROOTFH4res {
            status: nfsstat4::NFS4_OK,
        });
        let bad = nfs_resop4::OP_READ(READ4res::default(nfsstat4::NFS4ERR_OPENMODE));
        assert_eq!(result_status(&ok), nfsstat4::NFS4_OK);
        assert_eq!(result_status(&bad), nfsstat4::NFS4ERR_OPENMODE);
    }

    #[test]
    fn scalar_attributes_in_number_order_and_missing_ones_skipped() {
        let mut vals = 7u32.to_be_bytes().to_vec(); // TYPE
        vals.extend_from_slice(&1234u64.to_be_bytes()); // SIZE
        let f = fattr4 {
            attrmask: bitmap(&[FATTR4_SIZE, FATTR4_TYPE]),
            attr_vals: vals,
        };
        let got = scalar_attrs(
            &f,
            &[
                (FATTR4_SIZE, true),
                (FATTR4_CHANGE, true),
                (FATTR4_TYPE, false),
            ],
        );
        assert_eq!(got, Ok(vec![(FATTR4_TYPE, 7), (FATTR4_SIZE, 1234)]));
        let short = fattr4 {
            attr_vals: f.attr_vals[..8].to_vec(),
            ..f.clone()
        };
        assert!(scalar_attrs(&short, &[(FATTR4_SIZE, true), (FATTR4_TYPE, false)]).is_err());
        let res = COMPOUND4res {
            status: nfsstat4::NFS4_OK,
            tag: vec![],
            resarray: vec![nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(
                GETATTR4resok { obj_attributes: f },
            ))],
        };
        assert_eq!(size_of(&res), Some(1234));
    }

    #[test]
    fn check_names_the_failing_operation() {
        let res = COMPOUND4res {
            status: nfsstat4::NFS4ERR_NOENT,
            tag: vec![],
            resarray: vec![
                nfs_resop4::OP_PUTROOTFH(PUTROOTFH4res {
                    status: nfsstat4::NFS4_OK,
                }),
                nfs_resop4::OP_LOOKUP(LOOKUP4res {
                    status: nfsstat4::NFS4ERR_NOENT,
                }),
            ],
        };
        assert_eq!(
            check(&res, "LOOKUP x"),
            Err("LOOKUP x: operation 1 failed with NFS4ERR_NOENT".to_string())
        );
        assert_eq!(fh_of(&res), None);
        assert!(open_ok(&res).is_none());
    }
}
