//! Export access control end to end: client address rules (ro/rw and
//! refusal), squashing, security flavors (NFS4ERR_WRONGSEC placement of
//! RFC 8881 §2.6.3.1.1) and the privileged-port requirement, each from
//! its own loopback source address or port.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;
use nfs4d_xdr::rpc::Credential;

const CONFIG: &str = r#"
lease_time = 10

[[export]]
path = "/rw"
dir = "{export}/rw"
clients = [{ addr = "127.0.0.1", access = "rw" }, { addr = "127.0.0.2", access = "ro" }]

[[export]]
path = "/only1"
dir = "{export}/only1"
clients = [{ addr = "127.0.0.1/32" }]

[[export]]
path = "/rootsq"
dir = "{export}/rootsq"
squash = "root"
anonuid = 4321
anongid = 4322

[[export]]
path = "/allsq"
dir = "{export}/allsq"
squash = "all"
anonuid = 5555
anongid = 5556

[[export]]
path = "/secure"
dir = "{export}/secure"
sec = ["sys"]

[[export]]
path = "/priv"
dir = "{export}/priv"
privileged_port = true
"#;

fn start() -> TestServer {
    let srv = TestServer::start_with_config(CONFIG, &[]);
    // Export roots are created by the server as 0755 root; let squashed
    // identities create entries in them.
    for d in ["rw", "only1", "rootsq", "allsq", "secure", "priv"] {
        std::fs::set_permissions(srv.export.join(d), std::fs::Permissions::from_mode(0o777))
            .unwrap();
    }
    srv
}

fn sys(uid: u32, gid: u32) -> Credential {
    Credential::Sys {
        stamp: 1,
        machine: "access-test".into(),
        uid,
        gid,
        gids: vec![],
    }
}

fn access_op(bits: u32) -> nfs_argop4 {
    nfs_argop4::OP_ACCESS(ACCESS4args { access: bits })
}

/// Status of each result of a COMPOUND.
fn statuses(r: &COMPOUND4res) -> Vec<nfsstat4> {
    r.resarray.iter().map(result_status).collect()
}

fn getfh(c: &mut Client, path: &[&str]) -> Vec<u8> {
    let mut ops = vec![nfs_argop4::OP_PUTROOTFH];
    ops.extend(path.iter().map(|p| lookup(p)));
    ops.push(nfs_argop4::OP_GETFH);
    let r = c.compound(ops).unwrap();
    fh_of(&r).unwrap_or_else(|| panic!("GETFH of {path:?}: {r:?}"))
}

fn granted(r: &COMPOUND4res) -> u32 {
    match r.resarray.last() {
        Some(nfs_resop4::OP_ACCESS(ACCESS4res::NFS4_OK(ok))) => ok.access,
        other => panic!("ACCESS: {other:?}"),
    }
}

#[test]
fn client_address_rules_read_write_read_only_and_refused() {
    let srv = start();
    let mut c1 = srv.client_from("127.0.0.1:0", 0).unwrap();
    let mut c2 = srv.client_from("127.0.0.2:0", 0).unwrap();

    // 127.0.0.1 has rw on /rw.
    let r = c1
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rw"),
            mkdir("by1", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    let only1 = getfh(&mut c1, &["only1"]);
    let rw = getfh(&mut c1, &["rw"]);

    // 127.0.0.2 reads /rw but every modification is NFS4ERR_ROFS.
    let r = c2
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rw"),
            lookup("by1"),
            getattr(&[4]),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "read allowed: {r:?}");
    let r = c2
        .compound(vec![putfh(&rw), mkdir("by2", no_attrs())])
        .unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_ROFS]
    );
    let r = c2
        .compound(vec![
            putfh(&rw),
            nfs_argop4::OP_REMOVE(REMOVE4args {
                target: b"by1".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_ROFS);
    let all = ACCESS4_READ | ACCESS4_LOOKUP | ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE;
    let r = c2.compound(vec![putfh(&rw), access_op(all)]).unwrap();
    assert_eq!(
        granted(&r) & (ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE),
        0,
        "ro host gets no write rights"
    );
    let r = c1.compound(vec![putfh(&rw), access_op(all)]).unwrap();
    assert_ne!(granted(&r) & ACCESS4_MODIFY, 0, "rw host does");
    // OPEN with create: ROFS too.
    c2.establish40(b"access-ro-host").unwrap();
    let r = c2
        .compound(vec![
            putfh(&rw),
            open_op(
                c2.clientid,
                b"o",
                0,
                OPEN4_SHARE_ACCESS_BOTH,
                create_unchecked(),
                claim_null("newfile"),
            ),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_ROFS, "{r:?}");
    assert!(!srv.export.join("rw/newfile").exists());

    // 127.0.0.2 is not in /only1's list: LOOKUP into it and PUTFH of its
    // handle are NFS4ERR_ACCESS.
    let r = c2
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("only1")])
        .unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_ACCESS]
    );
    let r = c2.compound(vec![putfh(&only1), getattr(&[4])]).unwrap();
    assert_eq!(statuses(&r), vec![nfsstat4::NFS4ERR_ACCESS]);
    let r = c2.compound(vec![putfh(&only1)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_ACCESS, "even alone");
    // The pseudo root is still readable, and the other host is unaffected.
    let r = c1.compound(vec![putfh(&only1), getattr(&[4])]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);

    let log = srv.log();
    assert!(
        log.lines().any(|l| l.contains("export access refused")
            && l.contains("127.0.0.2")
            && l.contains("/only1")),
        "no log line naming the client:\n{log}"
    );
}

#[test]
fn host_no_export_admits_gets_auth_error() {
    let srv = start();
    // 127.0.0.3 matches only the exports without `clients`, so it is
    // admitted; a configuration where every export lists hosts refuses it.
    let strict = TestServer::start_with_config(
        "[[export]]\npath = \"/\"\ndir = \"{export}/a\"\nclients = [{ addr = \"127.0.0.1\" }]\n",
        &[],
    );
    let mut c3 = strict.client_from("127.0.0.3:0", 0).unwrap();
    // NULL still answers (no state, no data).
    c3.call(0, &[]).unwrap();
    let args = nfs4d_xdr::to_bytes(&COMPOUND4args {
        tag: vec![],
        minorversion: 0,
        argarray: vec![nfs_argop4::OP_PUTROOTFH],
    });
    let rec = c3.call(1, &args).unwrap();
    let w = reply_words(&rec);
    // xid, REPLY, MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK (RFC 5531 §9).
    assert_eq!(&w[1..5], &[1, 1, 1, 5], "reply {w:?}");
    // No client state can be created either.
    let mut c3b = strict.client_from("127.0.0.3:0", 0).unwrap();
    assert!(c3b.establish40(b"intruder").is_err());
    let log = strict.log();
    assert!(
        log.lines()
            .any(|l| l.contains("127.0.0.3") && l.contains("no export admits")),
        "no log line naming the client:\n{log}"
    );
    // The admitted host works.
    let mut c1 = strict.client_from("127.0.0.1:0", 0).unwrap();
    let r = c1
        .compound(vec![nfs_argop4::OP_PUTROOTFH, getattr(&[4])])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    drop(srv);
}

#[test]
fn squash_root_all_and_anonymous() {
    let srv = start();
    let mut root = srv.client_from("127.0.0.1:0", 0).unwrap();
    let owner = |p: &str| {
        let m = std::fs::metadata(srv.export.join(p)).unwrap();
        (m.uid(), m.gid())
    };

    // No squashing: root stays root.
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rw"),
            mkdir("asroot", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("rw/asroot"), (0, 0));

    // root_squash: uid 0 / gid 0 become anonuid / anongid ...
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rootsq"),
            mkdir("squashed", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("rootsq/squashed"), (4321, 4322));
    // ... other users keep their identity ...
    root.cred = sys(1000, 100);
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rootsq"),
            mkdir("user", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("rootsq/user"), (1000, 100));
    // ... and root loses root's rights: a 0600 root file is unreadable.
    for d in ["rw", "rootsq"] {
        let p = srv.export.join(d).join("secret");
        std::fs::write(&p, b"x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    root.cred = sys(0, 0);
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rw"),
            lookup("secret"),
            access_op(ACCESS4_READ),
        ])
        .unwrap();
    assert_eq!(granted(&r), ACCESS4_READ, "unsquashed root reads");
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rootsq"),
            lookup("secret"),
            access_op(ACCESS4_READ),
        ])
        .unwrap();
    assert_eq!(granted(&r), 0, "squashed root does not");

    // all_squash: everybody is anonuid.
    root.cred = sys(1000, 100);
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("allsq"),
            mkdir("anyone", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("allsq/anyone"), (5555, 5556));

    // AUTH_NONE is the export's anonymous identity.
    root.cred = Credential::None;
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rootsq"),
            mkdir("anon", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("rootsq/anon"), (4321, 4322));
    let r = root
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("rw"),
            mkdir("anon", no_attrs()),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(owner("rw/anon"), (65534, 65534));
}

fn secinfo_flavors(r: &COMPOUND4res) -> Vec<u32> {
    match r.resarray.last() {
        Some(
            nfs_resop4::OP_SECINFO(SECINFO4res::NFS4_OK(v))
            | nfs_resop4::OP_SECINFO_NO_NAME(SECINFO4res::NFS4_OK(v)),
        ) => v
            .iter()
            .map(|s| match s {
                secinfo4::default(f) => *f,
                secinfo4::RPCSEC_GSS(_) => 6,
            })
            .collect(),
        other => panic!("SECINFO: {:?} {other:?}", r.status),
    }
}

#[test]
fn security_flavors_and_wrongsec_placement() {
    let srv = start();
    let mut c = srv.client_from("127.0.0.1:0", 0).unwrap();
    let secure = getfh(&mut c, &["secure"]);
    let r = c
        .compound(vec![putfh(&secure), mkdir("sysdir", no_attrs())])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "AUTH_SYS is accepted: {r:?}");

    c.cred = Credential::None;
    // A put-filehandle operation followed by one that uses the handle:
    // the put answers NFS4ERR_WRONGSEC (RFC 8881 §2.6.3.1.1).
    let r = c.compound(vec![putfh(&secure), getattr(&[4])]).unwrap();
    assert_eq!(statuses(&r), vec![nfsstat4::NFS4ERR_WRONGSEC]);
    let r = c
        .compound(vec![putfh(&secure), mkdir("nonedir", no_attrs())])
        .unwrap();
    assert_eq!(statuses(&r), vec![nfsstat4::NFS4ERR_WRONGSEC]);
    // ... alone, or followed by SECINFO, it succeeds.
    let r = c.compound(vec![putfh(&secure)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    let r = c
        .compound(vec![
            putfh(&secure),
            nfs_argop4::OP_SECINFO(SECINFO4args {
                name: b"sysdir".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(secinfo_flavors(&r), vec![1], "only AUTH_SYS");
    // LOOKUP into the export answers NFS4ERR_WRONGSEC itself.
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("secure")])
        .unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_WRONGSEC]
    );
    // PUTFH followed by LOOKUP defers to the LOOKUP.
    let r = c.compound(vec![putfh(&secure), lookup("sysdir")]).unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_WRONGSEC]
    );
    // SECINFO from the pseudo root names each export's flavors.
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SECINFO(SECINFO4args {
                name: b"secure".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(secinfo_flavors(&r), vec![1]);
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SECINFO(SECINFO4args {
                name: b"rw".to_vec(),
            }),
        ])
        .unwrap();
    assert_eq!(secinfo_flavors(&r), vec![1, 0]);
    // Other exports accept AUTH_NONE.
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("rw"), getattr(&[4])])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);

    // 4.1: a session established with AUTH_NONE; SECINFO_NO_NAME after
    // PUTFH is allowed and reports the export's flavors.
    let mut s = srv.client_from("127.0.0.1:0", 1).unwrap();
    s.cred = Credential::None;
    s.establish41(b"access-none-41").unwrap();
    let r = s
        .compound(vec![
            putfh(&secure),
            nfs_argop4::OP_SECINFO_NO_NAME(secinfo_style4::SECINFO_STYLE4_CURRENT_FH),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");
    assert_eq!(secinfo_flavors(&r), vec![1]);
    let r = s
        .compound(vec![putfh(&secure), nfs_argop4::OP_GETFH])
        .unwrap();
    assert_eq!(statuses(&r)[1..], [nfsstat4::NFS4ERR_WRONGSEC]);
    assert!(
        srv.log().contains("security flavor not allowed"),
        "log:\n{}",
        srv.log()
    );
}

/// Binds a source port below 1024; `None` when not permitted (not root).
fn privileged_client(srv: &TestServer) -> Option<Client> {
    for port in (600..1000).step_by(7) {
        match srv.client_from(&format!("127.0.0.1:{port}"), 0) {
            Ok(c) => return Some(c),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
            Err(_) => continue,
        }
    }
    None
}

#[test]
fn privileged_port_requirement() {
    let srv = start();
    let mut c = srv.client_from("127.0.0.1:0", 0).unwrap();
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("priv")])
        .unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_ACCESS]
    );
    assert!(
        srv.log().contains("privileged source port"),
        "log:\n{}",
        srv.log()
    );
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("rw"), getattr(&[4])])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "other exports unaffected");
    let Some(mut p) = privileged_client(&srv) else {
        eprintln!("*** SKIPPED the privileged half: cannot bind a port below 1024 (not root) ***");
        return;
    };
    let r = p
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("priv"),
            getattr(&[4]),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "{r:?}");

    // When every export requires a privileged port, an unprivileged one is
    // refused at the RPC level.
    let strict = TestServer::start_with_config(
        "[[export]]\npath = \"/\"\ndir = \"{export}/a\"\nprivileged_port = true\n",
        &[],
    );
    let mut u = strict.client_from("127.0.0.1:0", 0).unwrap();
    assert!(
        u.compound(vec![nfs_argop4::OP_PUTROOTFH]).is_err(),
        "AUTH_ERROR is not a COMPOUND reply"
    );
    let mut p = privileged_client(&strict).unwrap();
    let r = p
        .compound(vec![nfs_argop4::OP_PUTROOTFH, getattr(&[4])])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
}

/// OPEN with create in a directory the caller may not write: an existing
/// file is opened (UNCHECKED4 needs no write permission on the
/// directory), GUARDED4 says it exists, a new name is NFS4ERR_ACCESS and
/// nothing is created. The server tries the create before any lookup
/// only where the caller may create.
#[test]
fn open_create_in_a_directory_the_caller_may_not_write() {
    let srv = start();
    let dir = srv.export.join("rw/locked");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("f"), b"x").unwrap();
    std::fs::set_permissions(dir.join("f"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = srv.client_from("127.0.0.1:0", 1).unwrap();
    c.establish41(b"access-locked-dir").unwrap();
    c.cred = sys(1000, 100);
    let locked = getfh(&mut c, &["rw", "locked"]);
    let open = |c: &mut Client, name: &str, how: openflag4| {
        let op = open_op(
            c.clientid,
            b"o",
            0,
            OPEN4_SHARE_ACCESS_BOTH,
            how,
            claim_null(name),
        );
        c.compound(vec![putfh(&locked), op]).unwrap().status
    };
    assert_eq!(open(&mut c, "f", create_unchecked()), nfsstat4::NFS4_OK);
    let guarded = openflag4::OPEN4_CREATE(createhow4::GUARDED4(no_attrs()));
    assert_eq!(open(&mut c, "f", guarded.clone()), nfsstat4::NFS4ERR_EXIST);
    assert_eq!(
        open(&mut c, "new", create_unchecked()),
        nfsstat4::NFS4ERR_ACCESS
    );
    assert_eq!(open(&mut c, "new", guarded), nfsstat4::NFS4ERR_ACCESS);
    assert!(!dir.join("new").exists());
    // The owner may create there; the existing name is still opened.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(open(&mut c, "new", create_unchecked()), nfsstat4::NFS4_OK);
    assert!(dir.join("new").exists());
    assert_eq!(open(&mut c, "f", create_unchecked()), nfsstat4::NFS4_OK);
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"x");
}
