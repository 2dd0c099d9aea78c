//! NFSv4.2 operations end to end: ALLOCATE, DEALLOCATE, SEEK, READ_PLUS,
//! COPY, CLONE, IO_ADVISE (RFC 7862) and the extended-attribute operations
//! (RFC 8276), against the real server on a loopback port.

mod common;

use common::*;
use nfs4d_testkit::ops::{self, *};
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::Credential;

const FATTR4_XATTR_SUPPORT: u32 = 82;

fn session(srv: &TestServer, owner: &str) -> Client {
    let mut c = srv.client(2);
    c.establish41(owner.as_bytes()).expect("session");
    c
}

/// OPEN (create, read+write) of `name` in the export root: handle and
/// open stateid.
fn open_create(c: &mut Client, name: &str) -> (Vec<u8>, stateid4) {
    open_with(c, name, OPEN4_SHARE_ACCESS_BOTH)
}

fn open_with(c: &mut Client, name: &str, access: u32) -> (Vec<u8>, stateid4) {
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            open_op(
                c.clientid,
                format!("owner-{name}-{access}").as_bytes(),
                0,
                access,
                create_unchecked(),
                claim_null(name),
            ),
            nfs_argop4::OP_GETFH,
        ])
        .expect("open");
    assert_eq!(r.status, nfsstat4::NFS4_OK, "OPEN {name}: {r:?}");
    let sid = open_ok(&r).expect("OPEN result").stateid.clone();
    (fh_of(&r).expect("GETFH result"), sid)
}

fn root_fh(c: &mut Client) -> Vec<u8> {
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, nfs_argop4::OP_GETFH])
        .expect("rootfh");
    fh_of(&r).unwrap_or_else(|| panic!("{r:?}"))
}

/// Runs PUTFH `fh` + `op` and returns the COMPOUND.
fn on(c: &mut Client, fh: &[u8], op: nfs_argop4) -> COMPOUND4res {
    c.compound(vec![putfh(fh), op]).expect("compound")
}

fn status(c: &mut Client, fh: &[u8], op: nfs_argop4) -> nfsstat4 {
    on(c, fh, op).status
}

fn write(c: &mut Client, fh: &[u8], sid: &stateid4, offset: u64, data: &[u8]) {
    let st = status(
        c,
        fh,
        ops::write(sid, offset, stable_how4::FILE_SYNC4, data.to_vec()),
    );
    assert_eq!(st, nfsstat4::NFS4_OK);
}

fn read(c: &mut Client, fh: &[u8], offset: u64, count: u32) -> Vec<u8> {
    let r = on(c, fh, ops::read(&ANON, offset, count));
    match read_ok(&r) {
        Some(ok) => ok.data.clone(),
        None => panic!("{r:?}"),
    }
}

fn size_of(c: &mut Client, fh: &[u8]) -> u64 {
    let r = on(c, fh, getattr(&[FATTR4_SIZE]));
    ops::size_of(&r).unwrap_or_else(|| panic!("{r:?}"))
}

fn set_size(c: &mut Client, fh: &[u8], sid: &stateid4, size: u64) {
    let st = status(c, fh, setattr(sid, size_attr(size)));
    assert_eq!(st, nfsstat4::NFS4_OK);
}

fn allocate(sid: &stateid4, offset: u64, length: u64) -> nfs_argop4 {
    nfs_argop4::OP_ALLOCATE(ALLOCATE4args {
        aa_stateid: sid.clone(),
        aa_offset: offset,
        aa_length: length,
    })
}

fn deallocate(sid: &stateid4, offset: u64, length: u64) -> nfs_argop4 {
    nfs_argop4::OP_DEALLOCATE(DEALLOCATE4args {
        da_stateid: sid.clone(),
        da_offset: offset,
        da_length: length,
    })
}

fn seek(sid: &stateid4, offset: u64, what: data_content4) -> nfs_argop4 {
    nfs_argop4::OP_SEEK(SEEK4args {
        sa_stateid: sid.clone(),
        sa_offset: offset,
        sa_what: what,
    })
}

fn seek_res(
    c: &mut Client,
    fh: &[u8],
    sid: &stateid4,
    offset: u64,
    what: data_content4,
) -> (bool, u64) {
    let r = on(c, fh, seek(sid, offset, what));
    match r.resarray.last() {
        Some(nfs_resop4::OP_SEEK(SEEK4res::NFS4_OK(ok))) => (ok.sr_eof, ok.sr_offset),
        other => panic!("{other:?}"),
    }
}

fn read_plus(c: &mut Client, fh: &[u8], sid: &stateid4, offset: u64, count: u32) -> read_plus_res4 {
    let r = on(
        c,
        fh,
        nfs_argop4::OP_READ_PLUS(READ_PLUS4args {
            rpa_stateid: sid.clone(),
            rpa_offset: offset,
            rpa_count: count,
        }),
    );
    match r.resarray.last() {
        Some(nfs_resop4::OP_READ_PLUS(READ_PLUS4res::NFS4_OK(ok))) => ok.clone(),
        other => panic!("{other:?}"),
    }
}

fn copy_op(
    src_sid: &stateid4,
    dst_sid: &stateid4,
    src_off: u64,
    dst_off: u64,
    count: u64,
) -> nfs_argop4 {
    nfs_argop4::OP_COPY(COPY4args {
        ca_src_stateid: src_sid.clone(),
        ca_dst_stateid: dst_sid.clone(),
        ca_src_offset: src_off,
        ca_dst_offset: dst_off,
        ca_count: count,
        ca_consecutive: true,
        ca_synchronous: true,
        ca_source_server: vec![],
    })
}

fn clone_op(
    src_sid: &stateid4,
    dst_sid: &stateid4,
    src_off: u64,
    dst_off: u64,
    count: u64,
) -> nfs_argop4 {
    nfs_argop4::OP_CLONE(CLONE4args {
        cl_src_stateid: src_sid.clone(),
        cl_dst_stateid: dst_sid.clone(),
        cl_src_offset: src_off,
        cl_dst_offset: dst_off,
        cl_count: count,
    })
}

/// PUTFH src, SAVEFH, PUTFH dst, `op`.
fn two(c: &mut Client, src: &[u8], dst: &[u8], op: nfs_argop4) -> COMPOUND4res {
    c.compound(vec![putfh(src), nfs_argop4::OP_SAVEFH, putfh(dst), op])
        .expect("compound")
}

fn setxattr(opt: setxattr_option4, key: &str, value: &[u8]) -> nfs_argop4 {
    nfs_argop4::OP_SETXATTR(SETXATTR4args {
        sxa_option: opt,
        sxa_key: key.as_bytes().to_vec(),
        sxa_value: value.to_vec(),
    })
}

fn getxattr(key: &[u8]) -> nfs_argop4 {
    nfs_argop4::OP_GETXATTR(GETXATTR4args {
        gxa_name: key.to_vec(),
    })
}

fn removexattr(key: &str) -> nfs_argop4 {
    nfs_argop4::OP_REMOVEXATTR(REMOVEXATTR4args {
        rxa_name: key.as_bytes().to_vec(),
    })
}

fn listxattrs(cookie: u64, maxcount: u32) -> nfs_argop4 {
    nfs_argop4::OP_LISTXATTRS(LISTXATTRS4args {
        lxa_cookie: cookie,
        lxa_maxcount: maxcount,
    })
}

fn as_user(c: &mut Client, uid: u32) {
    c.cred = Credential::Sys {
        stamp: 1,
        machine: "nfs4d-test".into(),
        uid,
        gid: uid,
        gids: vec![],
    };
}

#[test]
fn allocate_and_deallocate() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "alloc");
    let (fh, sid) = open_create(&mut c, "f");
    write(&mut c, &fh, &sid, 0, &[0x5a; 8192]);

    // ALLOCATE past end of file extends it; the new part reads as zeros.
    assert_eq!(
        status(&mut c, &fh, allocate(&sid, 8192, 8192)),
        nfsstat4::NFS4_OK
    );
    assert_eq!(size_of(&mut c, &fh), 16384);
    assert!(read(&mut c, &fh, 8192, 8192).iter().all(|&b| b == 0));
    // Inside the file: the size stays; anonymous and bypass stateids are
    // valid for WRITE.
    assert_eq!(
        status(&mut c, &fh, allocate(&ANON, 0, 1)),
        nfsstat4::NFS4_OK
    );
    let ones = stateid4 {
        seqid: u32::MAX,
        other: [0xff; 12],
    };
    assert_eq!(
        status(&mut c, &fh, allocate(&ones, 0, 1)),
        nfsstat4::NFS4_OK
    );
    assert_eq!(size_of(&mut c, &fh), 16384);

    // DEALLOCATE: zeros, size unchanged, unaligned edges zeroed.
    assert_eq!(
        status(&mut c, &fh, deallocate(&sid, 100, 5000)),
        nfsstat4::NFS4_OK
    );
    assert_eq!(size_of(&mut c, &fh), 16384);
    let data = read(&mut c, &fh, 0, 8192);
    assert!(data[..100].iter().all(|&b| b == 0x5a));
    assert!(data[100..5100].iter().all(|&b| b == 0));
    assert!(data[5100..].iter().all(|&b| b == 0x5a));
    // Past end of file: no effect.
    assert_eq!(
        status(&mut c, &fh, deallocate(&sid, 1 << 30, 4096)),
        nfsstat4::NFS4_OK
    );
    assert_eq!(size_of(&mut c, &fh), 16384);

    // Bad ranges.
    for op in [
        allocate(&sid, 0, 0),
        deallocate(&sid, 0, 0),
        allocate(&sid, u64::MAX, 2),
        deallocate(&sid, 2, u64::MAX),
    ] {
        assert_eq!(status(&mut c, &fh, op), nfsstat4::NFS4ERR_INVAL);
    }
    assert_eq!(
        status(&mut c, &fh, allocate(&sid, i64::MAX as u64, 1)),
        nfsstat4::NFS4ERR_FBIG
    );
    // Not a regular file.
    let root = root_fh(&mut c);
    assert_eq!(
        status(&mut c, &root, allocate(&ANON, 0, 1)),
        nfsstat4::NFS4ERR_WRONG_TYPE
    );
    assert_eq!(
        status(&mut c, &root, deallocate(&ANON, 0, 1)),
        nfsstat4::NFS4ERR_WRONG_TYPE
    );
    // Stateids: unknown, of another file, read-only open.
    let mut bogus = sid.clone();
    bogus.other[11] ^= 0xff;
    assert_eq!(
        status(&mut c, &fh, allocate(&bogus, 0, 1)),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    let (fh2, sid2) = open_create(&mut c, "g");
    assert_eq!(
        status(&mut c, &fh2, allocate(&sid, 0, 1)),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    let (_, rd) = open_with(&mut c, "g", OPEN4_SHARE_ACCESS_READ);
    assert_eq!(
        status(&mut c, &fh2, allocate(&rd, 0, 1)),
        nfsstat4::NFS4ERR_OPENMODE
    );
    assert_eq!(
        status(&mut c, &fh2, allocate(&sid2, 0, 1)),
        nfsstat4::NFS4_OK
    );
    // Without write permission (anonymous stateid, uid 1000, file 0644 root).
    as_user(&mut c, 1000);
    assert_eq!(
        status(&mut c, &fh2, allocate(&ANON, 0, 1)),
        nfsstat4::NFS4ERR_ACCESS
    );
}

#[test]
fn seek_and_read_plus() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "seek");
    let (fh, sid) = open_create(&mut c, "sparse");
    const M: u64 = 1 << 20;
    // hole [0, 1M), data [1M, 1M + 4K), hole up to 3M (end of file).
    write(&mut c, &fh, &sid, M, &[7; 4096]);
    set_size(&mut c, &fh, &sid, 3 * M);
    let holes = seek_res(&mut c, &fh, &sid, 0, data_content4::NFS4_CONTENT_HOLE) == (false, 0);
    if holes {
        assert_eq!(
            seek_res(&mut c, &fh, &sid, 0, data_content4::NFS4_CONTENT_DATA),
            (false, M)
        );
        assert_eq!(
            seek_res(&mut c, &fh, &sid, M, data_content4::NFS4_CONTENT_HOLE),
            (false, M + 4096)
        );
        // No data after the block: eof.
        assert_eq!(
            seek_res(
                &mut c,
                &fh,
                &sid,
                M + 4096,
                data_content4::NFS4_CONTENT_DATA
            ),
            (true, 3 * M)
        );
    } else {
        eprintln!("export filesystem without holes: hole checks skipped");
    }
    // The virtual hole at end of file.
    let (eof, off) = seek_res(
        &mut c,
        &fh,
        &ANON,
        3 * M - 1,
        data_content4::NFS4_CONTENT_HOLE,
    );
    assert!(off <= 3 * M);
    assert_eq!(eof, off == 3 * M);
    // At or past end of file: NXIO.
    for off in [3 * M, u64::MAX] {
        assert_eq!(
            status(
                &mut c,
                &fh,
                seek(&sid, off, data_content4::NFS4_CONTENT_DATA)
            ),
            nfsstat4::NFS4ERR_NXIO
        );
    }
    let root = root_fh(&mut c);
    assert_eq!(
        status(
            &mut c,
            &root,
            seek(&ANON, 0, data_content4::NFS4_CONTENT_DATA)
        ),
        nfsstat4::NFS4ERR_ISDIR
    );
    let mut bogus = sid.clone();
    bogus.other[11] ^= 0xff;
    assert_eq!(
        status(
            &mut c,
            &fh,
            seek(&bogus, 0, data_content4::NFS4_CONTENT_DATA)
        ),
        nfsstat4::NFS4ERR_BAD_STATEID
    );

    // A large READ_PLUS is clamped as READ is (to 1 MiB here): a hole.
    let r = read_plus(&mut c, &fh, &sid, 0, 2 * M as u32);
    assert!(!r.rpr_eof && !r.rpr_contents.is_empty());
    // READ_PLUS around the data: contiguous segments covering exactly the range.
    let start = M - 8192;
    let r = read_plus(&mut c, &fh, &sid, start, 65536);
    assert!(!r.rpr_eof);
    let mut pos = start;
    let mut data_bytes = Vec::new();
    let mut saw_hole = false;
    for seg in &r.rpr_contents {
        match seg {
            read_plus_content::NFS4_CONTENT_DATA(d) => {
                assert_eq!(d.d_offset, pos);
                pos += d.d_data.len() as u64;
                data_bytes.push((d.d_offset, d.d_data.clone()));
            }
            read_plus_content::NFS4_CONTENT_HOLE(h) => {
                assert_eq!(h.di_offset, pos);
                pos += h.di_length;
                saw_hole = true;
            }
            read_plus_content::default(d) => panic!("{d:?}"),
        }
    }
    assert_eq!(pos, start + 65536);
    assert_eq!(saw_hole, holes);
    // The data block is there, with its contents, and everything else is zero.
    for (off, bytes) in &data_bytes {
        for (i, &b) in bytes.iter().enumerate() {
            let at = off + i as u64;
            let want = if (M..M + 4096).contains(&at) { 7 } else { 0 };
            assert_eq!(b, want, "byte {at}");
        }
    }
    if holes {
        assert_eq!(data_bytes.len(), 1);
        assert_eq!(data_bytes[0].0, M);
    }
    // The tail reaches end of file.
    let r = read_plus(&mut c, &fh, &sid, 3 * M - 10, 100);
    assert!(r.rpr_eof);
    // At end of file: empty and eof; zero count: empty.
    let r = read_plus(&mut c, &fh, &sid, 3 * M, 100);
    assert!(r.rpr_eof && r.rpr_contents.is_empty());
    let r = read_plus(&mut c, &fh, &sid, 0, 0);
    assert!(!r.rpr_eof && r.rpr_contents.is_empty());
    // Errors as READ.
    let st = status(
        &mut c,
        &root,
        nfs_argop4::OP_READ_PLUS(READ_PLUS4args {
            rpa_stateid: ANON,
            rpa_offset: 0,
            rpa_count: 10,
        }),
    );
    assert_eq!(st, nfsstat4::NFS4ERR_ISDIR);
    let st = status(
        &mut c,
        &fh,
        nfs_argop4::OP_READ_PLUS(READ_PLUS4args {
            rpa_stateid: bogus,
            rpa_offset: 0,
            rpa_count: 10,
        }),
    );
    assert_eq!(st, nfsstat4::NFS4ERR_BAD_STATEID);
}

#[test]
fn copy_and_clone() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "copy");
    let (src, ssid) = open_create(&mut c, "src");
    let (dst, dsid) = open_create(&mut c, "dst");
    write(&mut c, &src, &ssid, 0, b"hello, world");

    // Count 0: through end of file.
    let r = two(&mut c, &src, &dst, copy_op(&ssid, &dsid, 0, 0, 0));
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    let ok = match r.resarray.last() {
        Some(nfs_resop4::OP_COPY(COPY4res::NFS4_OK(ok))) => ok.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(ok.cr_response.wr_count, 12);
    assert!(ok.cr_response.wr_callback_id.is_empty());
    assert!(ok.cr_requirements.cr_consecutive && ok.cr_requirements.cr_synchronous);
    assert_eq!(read(&mut c, &dst, 0, 100), b"hello, world");
    // A range to an offset past the destination's end.
    let r = two(&mut c, &src, &dst, copy_op(&ssid, &dsid, 7, 20, 5));
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    assert_eq!(
        read(&mut c, &dst, 0, 100),
        b"hello, world\0\0\0\0\0\0\0\0world"
    );
    // The verifier is the server's write verifier (as WRITE's).
    let w = on(
        &mut c,
        &dst,
        nfs_argop4::OP_WRITE(WRITE4args {
            stateid: dsid.clone(),
            offset: 0,
            stable: stable_how4::UNSTABLE4,
            data: b"H".to_vec(),
        }),
    );
    match w.resarray.last() {
        Some(nfs_resop4::OP_WRITE(WRITE4res::NFS4_OK(w))) => {
            assert_eq!(w.writeverf, ok.cr_response.wr_writeverf)
        }
        other => panic!("{other:?}"),
    }

    // Errors.
    let err = |c: &mut Client, s: &[u8], d: &[u8], op| two(c, s, d, op).status;
    // Source range past end of file.
    assert_eq!(
        err(&mut c, &src, &dst, copy_op(&ssid, &dsid, 13, 0, 0)),
        nfsstat4::NFS4ERR_INVAL
    );
    assert_eq!(
        err(&mut c, &src, &dst, copy_op(&ssid, &dsid, 5, 0, 8)),
        nfsstat4::NFS4ERR_INVAL
    );
    // Same file.
    assert_eq!(
        err(&mut c, &src, &src, copy_op(&ssid, &ssid, 0, 100, 1)),
        nfsstat4::NFS4ERR_INVAL
    );
    // Directory.
    let root = root_fh(&mut c);
    assert_eq!(
        err(&mut c, &root, &dst, copy_op(&ANON, &dsid, 0, 0, 0)),
        nfsstat4::NFS4ERR_WRONG_TYPE
    );
    assert_eq!(
        err(&mut c, &src, &root, copy_op(&ssid, &ANON, 0, 0, 0)),
        nfsstat4::NFS4ERR_WRONG_TYPE
    );
    // Stateids swapped: each belongs to the other file.
    assert_eq!(
        err(&mut c, &src, &dst, copy_op(&dsid, &ssid, 0, 0, 0)),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    // Destination opened for read only.
    let (_, rd) = open_with(&mut c, "dst", OPEN4_SHARE_ACCESS_READ);
    assert_eq!(
        err(&mut c, &src, &dst, copy_op(&ssid, &rd, 0, 0, 0)),
        nfsstat4::NFS4ERR_OPENMODE
    );
    // Inter-server copy is not offered.
    let mut inter = copy_op(&ssid, &dsid, 0, 0, 0);
    if let nfs_argop4::OP_COPY(a) = &mut inter {
        a.ca_source_server = vec![netloc4::NL4_NAME(b"elsewhere".to_vec())];
    }
    assert_eq!(err(&mut c, &src, &dst, inter), nfsstat4::NFS4ERR_NOTSUPP);
    // No saved filehandle.
    let r = c
        .compound(vec![putfh(&dst), copy_op(&ssid, &dsid, 0, 0, 0)])
        .expect("compound");
    assert_eq!(r.status, nfsstat4::NFS4ERR_NOFILEHANDLE);

    // CLONE: validated like COPY; the export's filesystem decides support.
    assert_eq!(
        err(&mut c, &src, &dst, clone_op(&ssid, &dsid, 13, 0, 0)),
        nfsstat4::NFS4ERR_INVAL
    );
    assert_eq!(
        err(&mut c, &root, &dst, clone_op(&ANON, &dsid, 0, 0, 0)),
        nfsstat4::NFS4ERR_WRONG_TYPE
    );
    // Same file, overlapping ranges.
    write(&mut c, &src, &ssid, 0, &[1; 8192]);
    assert_eq!(
        err(
            &mut c,
            &src,
            &src,
            clone_op(&ssid, &ssid, 0, 4096, 8192 - 4096 + 1)
        ),
        nfsstat4::NFS4ERR_INVAL
    );
    let st = err(&mut c, &src, &dst, clone_op(&ssid, &dsid, 0, 0, 0));
    assert!(
        matches!(st, nfsstat4::NFS4_OK | nfsstat4::NFS4ERR_NOTSUPP),
        "{st:?}"
    );
    if st == nfsstat4::NFS4_OK {
        assert_eq!(read(&mut c, &dst, 0, 8192), vec![1; 8192]);
    }
}

#[test]
fn io_advise() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "advise");
    let (fh, sid) = open_create(&mut c, "f");
    let adv = |sid: &stateid4, offset, count| {
        nfs_argop4::OP_IO_ADVISE(IO_ADVISE4args {
            iaa_stateid: sid.clone(),
            iaa_offset: offset,
            iaa_count: count,
            iaa_hints: vec![(1 << 1) | (1 << 3)], // SEQUENTIAL and RANDOM: contradictory, still fine
        })
    };
    let r = on(&mut c, &fh, adv(&sid, 0, 0));
    match r.resarray.last() {
        Some(nfs_resop4::OP_IO_ADVISE(IO_ADVISE4res::NFS4_OK(ok))) => {
            assert!(ok.ior_hints.iter().all(|&w| w == 0))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(status(&mut c, &fh, adv(&ANON, 5, 10)), nfsstat4::NFS4_OK);
    assert_eq!(
        status(&mut c, &fh, adv(&sid, u64::MAX, 2)),
        nfsstat4::NFS4ERR_INVAL
    );
    let mut bogus = sid.clone();
    bogus.other[11] ^= 0xff;
    assert_eq!(
        status(&mut c, &fh, adv(&bogus, 0, 0)),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    let mut old = sid.clone();
    old.seqid += 5;
    assert_eq!(
        status(&mut c, &fh, adv(&old, 0, 0)),
        nfsstat4::NFS4ERR_BAD_STATEID
    );
    let root = root_fh(&mut c);
    assert_eq!(
        status(&mut c, &root, adv(&ANON, 0, 0)),
        nfsstat4::NFS4ERR_ISDIR
    );
}

#[test]
fn extended_attributes() {
    let srv = TestServer::start(&[]);
    let mut c = session(&srv, "xattr");
    let (fh, _) = open_create(&mut c, "f");

    // xattr_support is TRUE in 4.2.
    let r = on(&mut c, &fh, getattr(&[FATTR4_XATTR_SUPPORT]));
    match r.resarray.last() {
        Some(nfs_resop4::OP_GETATTR(GETATTR4res::NFS4_OK(ok))) => {
            assert_eq!(ok.obj_attributes.attr_vals, [0, 0, 0, 1])
        }
        other => panic!("{other:?}"),
    }

    assert_eq!(
        status(&mut c, &fh, getxattr(b"k1")),
        nfsstat4::NFS4ERR_NOXATTR
    );
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_REPLACE, "k1", b"v")
        ),
        nfsstat4::NFS4ERR_NOXATTR
    );
    let r = on(
        &mut c,
        &fh,
        setxattr(setxattr_option4::SETXATTR4_CREATE, "k1", b"value1"),
    );
    match r.resarray.last() {
        Some(nfs_resop4::OP_SETXATTR(SETXATTR4res::NFS4_OK(ci))) => assert!(ci.after >= ci.before),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_CREATE, "k1", b"x")
        ),
        nfsstat4::NFS4ERR_EXIST
    );
    let r = on(&mut c, &fh, getxattr(b"k1"));
    match r.resarray.last() {
        Some(nfs_resop4::OP_GETXATTR(GETXATTR4res::NFS4_OK(v))) => assert_eq!(v, b"value1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_REPLACE, "k1", b"value2")
        ),
        nfsstat4::NFS4_OK
    );
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_EITHER, "k1", b"")
        ),
        nfsstat4::NFS4_OK
    );
    let r = on(&mut c, &fh, getxattr(b"k1"));
    assert!(
        matches!(r.resarray.last(), Some(nfs_resop4::OP_GETXATTR(GETXATTR4res::NFS4_OK(v))) if v.is_empty())
    );
    // A value of the largest size and a binary value round-trip.
    let big: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let st = status(
        &mut c,
        &fh,
        setxattr(setxattr_option4::SETXATTR4_EITHER, "big", &big),
    );
    if st == nfsstat4::NFS4_OK {
        let r = on(&mut c, &fh, getxattr(b"big"));
        assert!(
            matches!(r.resarray.last(), Some(nfs_resop4::OP_GETXATTR(GETXATTR4res::NFS4_OK(v))) if *v == big)
        );
        assert_eq!(status(&mut c, &fh, removexattr("big")), nfsstat4::NFS4_OK);
    } else {
        // ext4 without ea_inode keeps all xattrs of a file in one block.
        assert!(
            matches!(st, nfsstat4::NFS4ERR_NOSPC | nfsstat4::NFS4ERR_XATTR2BIG),
            "{st:?}"
        );
    }
    // Too big, bad keys.
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_EITHER, "k", &vec![0; 65537])
        ),
        nfsstat4::NFS4ERR_XATTR2BIG
    );
    assert_eq!(status(&mut c, &fh, getxattr(b"")), nfsstat4::NFS4ERR_INVAL);
    assert_eq!(
        status(&mut c, &fh, getxattr(b"\xff\xfe")),
        nfsstat4::NFS4ERR_INVAL
    );
    assert_eq!(
        status(&mut c, &fh, getxattr(&[b'n'; 251])),
        nfsstat4::NFS4ERR_NAMETOOLONG
    );

    // LISTXATTRS, paged.
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i:02}")).collect();
    for k in &keys {
        assert_eq!(
            status(
                &mut c,
                &fh,
                setxattr(setxattr_option4::SETXATTR4_CREATE, k, b"v")
            ),
            nfsstat4::NFS4_OK
        );
    }
    let mut all = Vec::new();
    let mut cookie = 0;
    let mut pages = 0;
    loop {
        // 16 fixed bytes and two 12-byte keys per page.
        let r = on(&mut c, &fh, listxattrs(cookie, 16 + 2 * 12));
        let ok = match r.resarray.last() {
            Some(nfs_resop4::OP_LISTXATTRS(LISTXATTRS4res::NFS4_OK(ok))) => ok.clone(),
            other => panic!("{other:?}"),
        };
        assert!(ok.lxr_names.len() <= 2);
        pages += 1;
        all.extend(
            ok.lxr_names
                .into_iter()
                .map(|n| String::from_utf8(n).expect("utf8")),
        );
        cookie = ok.lxr_cookie;
        if ok.lxr_eof {
            break;
        }
        assert!(pages < 100);
    }
    all.sort();
    let mut want = keys.clone();
    want.push("k1".into());
    want.sort();
    assert_eq!(all, want);
    assert_eq!(
        status(&mut c, &fh, listxattrs(0, 20)),
        nfsstat4::NFS4ERR_TOOSMALL
    );

    // REMOVEXATTR.
    assert_eq!(status(&mut c, &fh, removexattr("k1")), nfsstat4::NFS4_OK);
    assert_eq!(
        status(&mut c, &fh, removexattr("k1")),
        nfsstat4::NFS4ERR_NOXATTR
    );
    assert_eq!(
        status(&mut c, &fh, getxattr(b"k1")),
        nfsstat4::NFS4ERR_NOXATTR
    );

    // Directories have xattrs too.
    let root = root_fh(&mut c);
    assert_eq!(
        status(
            &mut c,
            &root,
            setxattr(setxattr_option4::SETXATTR4_EITHER, "d", b"1")
        ),
        nfsstat4::NFS4_OK
    );
    assert_eq!(status(&mut c, &root, removexattr("d")), nfsstat4::NFS4_OK);

    // Another user: the file is 0644 root, so read but not write.
    as_user(&mut c, 1000);
    assert_eq!(status(&mut c, &fh, getxattr(b"key-00")), nfsstat4::NFS4_OK);
    assert_eq!(status(&mut c, &fh, listxattrs(0, 4096)), nfsstat4::NFS4_OK);
    assert_eq!(
        status(
            &mut c,
            &fh,
            setxattr(setxattr_option4::SETXATTR4_EITHER, "k", b"v")
        ),
        nfsstat4::NFS4ERR_ACCESS
    );
    assert_eq!(
        status(&mut c, &fh, removexattr("key-00")),
        nfsstat4::NFS4ERR_ACCESS
    );
    let xa = ACCESS4_XAREAD | ACCESS4_XAWRITE | ACCESS4_XALIST;
    let r = on(
        &mut c,
        &fh,
        nfs_argop4::OP_ACCESS(ACCESS4args {
            access: xa | ACCESS4_READ,
        }),
    );
    match r.resarray.last() {
        Some(nfs_resop4::OP_ACCESS(ACCESS4res::NFS4_OK(ok))) => {
            assert_eq!(ok.supported, xa | ACCESS4_READ);
            assert_eq!(ok.access, ACCESS4_XAREAD | ACCESS4_XALIST | ACCESS4_READ);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_in_minor_versions_before_4_2() {
    let srv = TestServer::start(&[]);
    let mut c = srv.client(1);
    c.establish41(b"minor1").expect("session");
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, getxattr(b"k")])
        .expect("compound");
    assert_ne!(r.status, nfsstat4::NFS4_OK);
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, allocate(&ANON, 0, 1)])
        .expect("compound");
    assert_ne!(r.status, nfsstat4::NFS4_OK);
}

// ---------------------------------------------------------------------------
// A read-only export (configured in a file).
// ---------------------------------------------------------------------------

fn read_only_server() -> TestServer {
    let srv = TestServer::start_with_config(
        "[[export]]\npath = \"/\"\ndir = \"{export}\"\nread_only = true\n",
        &[],
    );
    std::fs::write(srv.export.join("f"), b"data").expect("file");
    std::fs::write(srv.export.join("g"), b"").expect("file");
    srv
}

#[test]
fn read_only_export() {
    let srv = read_only_server();
    let mut c = Client::connect(srv.addr, 2).expect("connect");
    c.establish41(b"ro").expect("session");
    let fh_of = |c: &mut Client, name: &str| {
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(name),
                nfs_argop4::OP_GETFH,
            ])
            .expect("lookup");
        match r.resarray.last() {
            Some(nfs_resop4::OP_GETFH(GETFH4res::NFS4_OK(ok))) => ok.object.clone(),
            other => panic!("{other:?}"),
        }
    };
    let f = fh_of(&mut c, "f");
    let g = fh_of(&mut c, "g");
    assert_eq!(
        status(&mut c, &f, allocate(&ANON, 0, 1)),
        nfsstat4::NFS4ERR_ROFS
    );
    assert_eq!(
        status(&mut c, &f, deallocate(&ANON, 0, 1)),
        nfsstat4::NFS4ERR_ROFS
    );
    assert_eq!(
        two(&mut c, &f, &g, copy_op(&ANON, &ANON, 0, 0, 0)).status,
        nfsstat4::NFS4ERR_ROFS
    );
    assert_eq!(
        two(&mut c, &f, &g, clone_op(&ANON, &ANON, 0, 0, 0)).status,
        nfsstat4::NFS4ERR_ROFS
    );
    assert_eq!(
        status(
            &mut c,
            &f,
            setxattr(setxattr_option4::SETXATTR4_EITHER, "k", b"v")
        ),
        nfsstat4::NFS4ERR_ROFS
    );
    assert_eq!(status(&mut c, &f, removexattr("k")), nfsstat4::NFS4ERR_ROFS);
    // Reading still works.
    assert_eq!(
        seek_res(&mut c, &f, &ANON, 0, data_content4::NFS4_CONTENT_DATA),
        (false, 0)
    );
    assert_eq!(
        status(&mut c, &f, getxattr(b"k")),
        nfsstat4::NFS4ERR_NOXATTR
    );
    assert_eq!(status(&mut c, &f, listxattrs(0, 4096)), nfsstat4::NFS4_OK);
    let r = on(
        &mut c,
        &f,
        nfs_argop4::OP_ACCESS(ACCESS4args {
            access: ACCESS4_XAWRITE | ACCESS4_XAREAD,
        }),
    );
    match r.resarray.last() {
        Some(nfs_resop4::OP_ACCESS(ACCESS4res::NFS4_OK(ok))) => {
            assert_eq!(ok.access, ACCESS4_XAREAD)
        }
        other => panic!("{other:?}"),
    }
}
