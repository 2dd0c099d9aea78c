//! Kerberos end to end: the real server with a keytab from a throwaway MIT
//! realm (`server/gss/tests/common`, the KDC on loopback), and the test
//! kit's client over its RPCSEC_GSS transport. Context creation, COMPOUNDs
//! under krb5, krb5i and krb5p with byte-exact data, flavors per export
//! (NFS4ERR_WRONGSEC, SECINFO), identities and squashing, state owned by
//! the principal, replies sent again from the 4.1 slot cache and the 4.0
//! duplicate request cache under a new sequence number, the RFC 2203
//! answers to a bad checksum, a replayed sequence number and a destroyed
//! context, and the context limit. A server without Kerberos keeps
//! serving AUTH_SYS and says so.

mod common;
#[path = "../../gss/tests/common/mod.rs"]
mod realm;

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::TestServer;
use nfs4d_gss::rpc::{parse_call, parse_reply, RawReply};
use nfs4d_gss::wire::{Cred, GssProc};
use nfs4d_gss::{GssClient, Service};
use nfs4d_testkit::gss::GssHandle;
use nfs4d_testkit::ops::*;
use nfs4d_testkit::transport::{Sender, Transport};
use nfs4d_testkit::wire::{self, NFS_PROGRAM, NFS_V4, PROC_COMPOUND};
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;
use realm::{Kdc, REALM, SERVICE};

/// Exports: one per flavor, one for all, one squashing root.
const CONFIG: &str = r#"
lease_time = 10

[gss]
keytab = "{keytab}"
principal = "nfs/localhost@NFS4D.TEST"
max_contexts_per_client = {per_client}

[[gss.map]]
principal = "alice@NFS4D.TEST"
uid = 1000
gid = 100
groups = [100, 27]

[[gss.map]]
principal = "bob@NFS4D.TEST"
uid = 1001
gid = 100

[[export]]
path = "/all"
dir = "{export}/all"
sec = ["krb5p", "krb5i", "krb5", "sys"]

[[export]]
path = "/p"
dir = "{export}/p"
sec = ["krb5p"]

[[export]]
path = "/i"
dir = "{export}/i"
sec = ["krb5i"]

[[export]]
path = "/sys"
dir = "{export}/sys"
sec = ["sys"]

[[export]]
path = "/rootsq"
dir = "{export}/rootsq"
sec = ["krb5", "krb5i", "krb5p"]
squash = "root"
anonuid = 4321
anongid = 4322
"#;

const EXPORTS: [&str; 5] = ["all", "p", "i", "sys", "rootsq"];

struct Setup {
    kdc: Kdc,
    srv: TestServer,
    gss: nfs4d_gss::Gss,
}

/// The realm, and a server serving it; `None` after a loud skip when the
/// Kerberos tools are missing (a failure in CI).
fn setup(per_client: usize) -> Option<Setup> {
    let kdc = Kdc::start()?;
    let gss = realm::gss()?;
    let toml = CONFIG
        .replace("{keytab}", &kdc.service_keytab.display().to_string())
        .replace("{per_client}", &per_client.to_string());
    let srv = TestServer::start_with_config(&toml, &[]);
    for d in EXPORTS {
        std::fs::set_permissions(srv.export.join(d), std::fs::Permissions::from_mode(0o777))
            .unwrap();
    }
    Some(Setup { kdc, srv, gss })
}

impl Setup {
    /// A credential cache for `user@REALM` holding a ticket for the server.
    fn ccache(&self, user: &str) -> String {
        self.kdc.ccache_for(user, SERVICE)
    }

    /// A client of `user` under `service`.
    fn client(&self, user: &str, minor: u32, service: Service) -> (Client, GssHandle) {
        let cc = self.ccache(user);
        Client::connect_gss(self.srv.addr, minor, &self.gss, Some(&cc), SERVICE, service)
            .unwrap_or_else(|e| panic!("{user}: {e}"))
    }
}

fn statuses(r: &COMPOUND4res) -> Vec<nfsstat4> {
    r.resarray.iter().map(result_status).collect()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

/// Creates `dir/name` with `content` (4.1 session), reads it back whole
/// and returns what came back.
fn write_read(c: &mut Client, dir: &str, name: &str, content: &[u8]) -> Vec<u8> {
    let r = c
        .compound_ok(
            "open for writing",
            vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(dir),
                open_op(
                    c.clientid,
                    b"owner",
                    0,
                    OPEN4_SHARE_ACCESS_BOTH,
                    create_unchecked(),
                    claim_null(name),
                ),
                nfs_argop4::OP_GETFH,
            ],
        )
        .unwrap();
    let sid = open_ok(&r).unwrap().stateid.clone();
    let fh = fh_of(&r).unwrap();
    let mut off = 0usize;
    for chunk in content.chunks(1 << 20) {
        let r = c
            .compound_ok(
                "write",
                vec![
                    putfh(&fh),
                    write(&sid, off as u64, stable_how4::FILE_SYNC4, chunk.to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(write_ok(&r).unwrap().count as usize, chunk.len());
        off += chunk.len();
    }
    let mut back = Vec::new();
    loop {
        let r = c
            .compound_ok(
                "read",
                vec![putfh(&fh), read(&sid, back.len() as u64, 1 << 20)],
            )
            .unwrap();
        let ok = read_ok(&r).unwrap();
        back.extend_from_slice(&ok.data);
        if ok.eof || ok.data.is_empty() {
            break;
        }
    }
    c.compound_ok("close", vec![putfh(&fh), close(0, &sid)])
        .unwrap();
    back
}

#[test]
fn compounds_under_every_service_with_byte_exact_data() {
    let Some(s) = setup(128) else { return };
    let (mut c, h) = s.client("alice", 1, Service::Privacy);
    c.establish41(b"gss-alice").unwrap();
    for (service, sizes) in [
        (Service::None, vec![0usize, 5, 70_000]),
        (Service::Integrity, vec![1, 4096, 1 << 20]),
        // krb5p: odd sizes, a full 1 MiB WRITE/READ, and more than one.
        (
            Service::Privacy,
            vec![3, 65_537, 1 << 20, (1 << 20) + 12_345],
        ),
    ] {
        h.set_service(service);
        for (i, len) in sizes.into_iter().enumerate() {
            let content = data(len, i as u8 + service.number() as u8);
            let name = format!("{}-{len}", service.name());
            let back = write_read(&mut c, "all", &name, &content);
            assert!(back == content, "{name}: {} bytes back", back.len());
            let on_disk = std::fs::read(s.srv.export.join("all").join(&name)).unwrap();
            assert!(on_disk == content, "{name} on disk");
            let meta = std::fs::metadata(s.srv.export.join("all").join(&name)).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (1000, 100),
                "{name}: owned by alice's mapped identity"
            );
        }
    }
    // NULL under the context: a ping with a verifier the transport checks.
    let reply = c.call(0, &[]).unwrap();
    assert_eq!(wire::results(&reply).unwrap(), b"");
    c.destroy().unwrap();
}

/// Sends a hand-built RPCSEC_GSS call and returns the raw reply, or
/// `None` when none came within a second.
fn raw_exchange(c: &mut Client, rec: &[u8]) -> Option<Vec<u8>> {
    c.send_raw(rec).unwrap();
    let saved = c.timeout;
    c.timeout = Duration::from_secs(1);
    let got = match c.recv_record() {
        Ok(r) => Some(r),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => None,
        Err(e) => panic!("receive: {e}"),
    };
    c.timeout = saved;
    got
}

/// A COMPOUND call built by hand with the transport's context.
fn gss_call(h: &GssHandle, c: &Client, xid: u32, seq: Option<u32>, ops: &[nfs_argop4]) -> Vec<u8> {
    let body = wire::compound_body(c.minor, None, ops).unwrap();
    let service = h.service();
    h.with_context(|ctx: &mut GssClient| {
        let (rec, _) = match seq {
            // The next number: the transport's own calls continue after it.
            None => ctx.call(xid, NFS_PROGRAM, NFS_V4, PROC_COMPOUND, service, &body),
            Some(seq) => {
                ctx.call_with_seq(xid, NFS_PROGRAM, NFS_V4, PROC_COMPOUND, service, seq, &body)
            }
        }
        .unwrap();
        rec
    })
}

fn auth_error(reply: &[u8]) -> Option<u32> {
    match parse_reply(reply).unwrap() {
        RawReply::AuthError { stat, .. } => Some(stat),
        _ => None,
    }
}

#[test]
fn bad_checksum_replay_and_destroyed_context_get_the_rfc_answers() {
    let Some(s) = setup(128) else { return };
    let (mut c, h) = s.client("alice", 0, Service::Integrity);
    let ops = [nfs_argop4::OP_PUTROOTFH, getattr(&[FATTR4_TYPE])];

    // A correct hand-built call is answered (the reply is read raw).
    let good = gss_call(&h, &c, 0x7100_0001, None, &ops);
    let used_seq = match parse_call(&good) {
        Ok(raw) => nfs4d_gss::wire::decode_cred(raw.cred).unwrap().seq,
        Err(e) => panic!("{e}"),
    };
    let reply = raw_exchange(&mut c, &good).expect("a reply");
    assert!(matches!(
        parse_reply(&reply).unwrap(),
        RawReply::Accepted { stat: 0, .. }
    ));

    // Header checksum (the verifier) corrupted: RPCSEC_GSS_CREDPROBLEM.
    let mut forged = gss_call(&h, &c, 0x7100_0002, None, &ops);
    let at = {
        let raw = parse_call(&forged).unwrap();
        raw.verf.as_ptr() as usize - forged.as_ptr() as usize + raw.verf.len() - 1
    };
    forged[at] ^= 0x55;
    let reply = raw_exchange(&mut c, &forged).expect("an answer to a bad checksum");
    assert_eq!(auth_error(&reply), Some(13), "RPCSEC_GSS_CREDPROBLEM");

    // Arguments changed after the checksum was computed (krb5i): GARBAGE_ARGS.
    let mut tampered = gss_call(&h, &c, 0x7100_0003, None, &ops);
    let n = tampered.len();
    tampered[n - 40] ^= 1;
    let reply = raw_exchange(&mut c, &tampered).expect("an answer to tampered arguments");
    assert!(
        matches!(
            parse_reply(&reply).unwrap(),
            RawReply::Accepted { stat: 4, .. }
        ),
        "GARBAGE_ARGS"
    );

    // A sequence number seen before: dropped, no reply at all.
    let replay = gss_call(&h, &c, 0x7100_0004, Some(used_seq), &ops);
    assert_eq!(raw_exchange(&mut c, &replay), None, "a replay is dropped");
    // The connection and the context still work.
    let r = c.compound(ops.to_vec()).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);

    // An unknown context handle: RPCSEC_GSS_CTXPROBLEM.
    let unknown = h.with_context(|ctx| {
        let cred = Cred {
            proc_: GssProc::Data,
            seq: 1,
            service: Service::None,
            handle: &[9; 16],
        };
        let body = wire::compound_body(0, None, &ops).unwrap();
        ctx.build_call(
            0x7100_0005,
            NFS_PROGRAM,
            NFS_V4,
            PROC_COMPOUND,
            &cred,
            &body,
        )
        .unwrap()
    });
    let reply = raw_exchange(&mut c, &unknown).expect("an answer to an unknown handle");
    assert_eq!(auth_error(&reply), Some(14), "RPCSEC_GSS_CTXPROBLEM");

    // DESTROY, then the context is gone.
    let (destroy, sent) =
        h.with_context(|ctx| ctx.destroy_call(0x7100_0006, NFS_PROGRAM, NFS_V4).unwrap());
    let reply = raw_exchange(&mut c, &destroy).expect("DESTROY answered");
    h.with_context(|ctx| ctx.reply(&sent, &reply))
        .expect("DESTROY reply verifies");
    let after = gss_call(&h, &c, 0x7100_0007, None, &ops);
    let reply = raw_exchange(&mut c, &after).expect("an answer after DESTROY");
    assert_eq!(auth_error(&reply), Some(14), "context destroyed");

    let log = s.srv.log();
    for line in [
        "header checksum does not verify",
        "sequence number replayed or outside the window",
        "RPCSEC_GSS arguments refused",
        "RPCSEC_GSS context destroyed",
    ] {
        assert!(log.contains(line), "no log line {line:?}:\n{log}");
    }
}

fn secinfo_of(c: &mut Client, name: &str) -> Vec<secinfo4> {
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SECINFO(SECINFO4args {
                name: name.as_bytes().to_vec(),
            }),
        ])
        .unwrap();
    match r.resarray.last() {
        Some(nfs_resop4::OP_SECINFO(SECINFO4res::NFS4_OK(list))) => list.clone(),
        other => panic!("SECINFO {name}: {other:?}"),
    }
}

fn krb5(service: rpc_gss_svc_t) -> secinfo4 {
    secinfo4::RPCSEC_GSS(rpcsec_gss_info {
        oid: nfs4d_gss::KRB5_MECH_OID.to_vec(),
        qop: 0,
        service,
    })
}

#[test]
fn flavors_per_export_wrongsec_and_secinfo() {
    let Some(s) = setup(128) else { return };
    use rpc_gss_svc_t::*;
    // SECINFO (under AUTH_SYS: it never answers WRONGSEC) lists each
    // export's flavors in order, Kerberos ones as RPCSEC_GSS with the
    // mechanism's OID and service.
    let mut sys = s.srv.client(0);
    assert_eq!(
        secinfo_of(&mut sys, "all"),
        vec![
            krb5(RPC_GSS_SVC_PRIVACY),
            krb5(RPC_GSS_SVC_INTEGRITY),
            krb5(RPC_GSS_SVC_NONE),
            secinfo4::default(1)
        ]
    );
    assert_eq!(secinfo_of(&mut sys, "p"), vec![krb5(RPC_GSS_SVC_PRIVACY)]);
    assert_eq!(secinfo_of(&mut sys, "sys"), vec![secinfo4::default(1)]);
    // The pseudo root: the Kerberos flavors in use, strongest first, then
    // AUTH_SYS and AUTH_NONE.
    let r = sys
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SECINFO_NO_NAME(secinfo_style4::SECINFO_STYLE4_CURRENT_FH),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    // SECINFO_NO_NAME is 4.1; a 4.0 COMPOUND calls it illegal.
    assert_eq!(r.status, nfsstat4::NFS4ERR_OP_ILLEGAL);
    let mut sys41 = s.srv.client(1);
    sys41.establish41(b"gss-secinfo").unwrap();
    let r = sys41
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            nfs_argop4::OP_SECINFO_NO_NAME(secinfo_style4::SECINFO_STYLE4_CURRENT_FH),
        ])
        .unwrap();
    match r.resarray.last() {
        Some(nfs_resop4::OP_SECINFO_NO_NAME(SECINFO4res::NFS4_OK(list))) => assert_eq!(
            list,
            &vec![
                krb5(RPC_GSS_SVC_PRIVACY),
                krb5(RPC_GSS_SVC_INTEGRITY),
                krb5(RPC_GSS_SVC_NONE),
                secinfo4::default(1),
                secinfo4::default(0)
            ]
        ),
        other => panic!("SECINFO_NO_NAME: {other:?}"),
    }

    // AUTH_SYS into a Kerberos-only export: WRONGSEC at the LOOKUP.
    let r = sys
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("p"),
            getattr(&[FATTR4_TYPE]),
        ])
        .unwrap();
    assert_eq!(
        statuses(&r),
        vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_WRONGSEC]
    );

    // krb5i: fine on /i and /all, WRONGSEC on /p and /sys, where PUTFH
    // answers it only when an operation would use the handle.
    let (mut c, h) = s.client("alice", 0, Service::Integrity);
    for ok in ["i", "all"] {
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup(ok),
                getattr(&[FATTR4_TYPE]),
            ])
            .unwrap();
        assert_eq!(r.status, nfsstat4::NFS4_OK, "krb5i on /{ok}");
    }
    let p_fh = {
        h.set_service(Service::Privacy);
        let r = c
            .compound(vec![
                nfs_argop4::OP_PUTROOTFH,
                lookup("p"),
                nfs_argop4::OP_GETFH,
            ])
            .unwrap();
        assert_eq!(r.status, nfsstat4::NFS4_OK, "krb5p on /p");
        h.set_service(Service::Integrity);
        fh_of(&r).unwrap()
    };
    for wrong in ["p", "sys"] {
        let r = c
            .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup(wrong)])
            .unwrap();
        assert_eq!(
            statuses(&r),
            vec![nfsstat4::NFS4_OK, nfsstat4::NFS4ERR_WRONGSEC],
            "krb5i on /{wrong}"
        );
    }
    let r = c.compound(vec![putfh(&p_fh)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK, "PUTFH alone defers");
    let r = c
        .compound(vec![putfh(&p_fh), getattr(&[FATTR4_TYPE])])
        .unwrap();
    assert_eq!(statuses(&r), vec![nfsstat4::NFS4ERR_WRONGSEC]);
    // krb5 (no integrity) is refused where only krb5i is listed.
    h.set_service(Service::None);
    let r = c
        .compound(vec![nfs_argop4::OP_PUTROOTFH, lookup("i")])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_WRONGSEC);
    let log = s.srv.log();
    assert!(
        log.lines().any(|l| l.contains("export access refused")
            && l.contains("390003")
            && l.contains("/i")),
        "no log line naming the flavor:\n{log}"
    );
}

#[test]
fn identities_squashing_and_state_owned_by_the_principal() {
    let Some(s) = setup(128) else { return };
    let owner = |p: &str| {
        let m = std::fs::metadata(s.srv.export.join(p)).unwrap();
        (m.uid(), m.gid())
    };
    let mkdir_in = |c: &mut Client, dir: &str, name: &str| {
        c.compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup(dir),
            mkdir(name, no_attrs()),
        ])
        .unwrap()
        .status
    };
    // root/admin maps to uid 0: root on /all, squashed on /rootsq.
    let (mut root, _) = s.client("root/admin", 0, Service::Integrity);
    assert_eq!(mkdir_in(&mut root, "all", "by-root"), nfsstat4::NFS4_OK);
    assert_eq!(owner("all/by-root"), (0, 0));
    assert_eq!(mkdir_in(&mut root, "rootsq", "by-root"), nfsstat4::NFS4_OK);
    assert_eq!(owner("rootsq/by-root"), (4321, 4322));
    // A machine credential (nfs/host) is squashed the same way.
    let (mut machine, _) = s.client("nfs/client.nfs4d.test", 0, Service::Integrity);
    assert_eq!(
        mkdir_in(&mut machine, "rootsq", "by-machine"),
        nfsstat4::NFS4_OK
    );
    assert_eq!(owner("rootsq/by-machine"), (4321, 4322));
    // A principal without a rule is looked up by short name through NSS:
    // `daemon` is uid/gid 1 on Debian and most Linux systems.
    let (mut daemon, _) = s.client("daemon", 0, Service::Integrity);
    assert_eq!(mkdir_in(&mut daemon, "all", "by-daemon"), nfsstat4::NFS4_OK);
    assert_eq!(owner("all/by-daemon"), (1, 1), "through NSS");
    // No account at all: the export's anonymous ids.
    let (mut stranger, _) = s.client("stranger", 0, Service::Integrity);
    assert_eq!(
        mkdir_in(&mut stranger, "all", "by-stranger"),
        nfsstat4::NFS4_OK
    );
    assert_eq!(owner("all/by-stranger"), (65534, 65534));

    // State belongs to the principal, not the uid: a SETCLIENTID by alice
    // cannot be confirmed by bob (RFC 7530 §16.34.5: CLID_INUSE).
    let (mut alice, _) = s.client("alice", 0, Service::Integrity);
    let (mut bob, _) = s.client("bob", 0, Service::Integrity);
    let r = alice
        .compound(vec![setclientid(b"gss-shared-owner", [1; 8])])
        .unwrap();
    let Some(nfs_resop4::OP_SETCLIENTID(SETCLIENTID4res::NFS4_OK(ok))) = r.resarray.first() else {
        panic!("SETCLIENTID: {r:?}")
    };
    let confirm = |c: &mut Client| {
        c.compound(vec![nfs_argop4::OP_SETCLIENTID_CONFIRM(
            SETCLIENTID_CONFIRM4args {
                clientid: ok.clientid,
                setclientid_confirm: ok.setclientid_confirm,
            },
        )])
        .unwrap()
        .status
    };
    assert_eq!(confirm(&mut bob), nfsstat4::NFS4ERR_CLID_INUSE);
    assert_eq!(confirm(&mut alice), nfsstat4::NFS4_OK);
}

#[test]
fn replies_sent_again_are_protected_with_the_new_sequence_number() {
    let Some(s) = setup(128) else { return };
    // 4.1: a retransmission on the same slot and sequence id is answered
    // from the slot cache; under krb5p the transport checks the new
    // verifier and decrypts the reply.
    let (mut c, h) = s.client("alice", 1, Service::Privacy);
    c.establish41(b"gss-replay41").unwrap();
    let ops = vec![
        nfs_argop4::OP_PUTROOTFH,
        lookup("all"),
        mkdir("once41", no_attrs()),
    ];
    let first = c.compound(ops.clone()).unwrap();
    assert_eq!(first.status, nfsstat4::NFS4_OK);
    c.seqids[0] -= 1;
    let again = c.compound(ops).unwrap();
    assert_eq!(again, first, "the slot's reply, byte for byte");

    // 4.0: the same xid and arguments again (a new GSS sequence number):
    // the duplicate request cache answers, the directory is not created
    // twice (which would be NFS4ERR_EXIST).
    let (mut c, h0) = s.client("alice", 0, Service::Integrity);
    let body = wire::compound_body(
        0,
        None,
        &[
            nfs_argop4::OP_PUTROOTFH,
            lookup("all"),
            mkdir("once40", no_attrs()),
        ],
    )
    .unwrap();
    let xid = 0x5a5a_0001;
    let plain = wire::encode_call(xid, &c.cred, PROC_COMPOUND, &body, 0);
    let mut replies = Vec::new();
    for _ in 0..2 {
        c.send_raw(&plain).unwrap();
        let rec = c.recv_record().unwrap();
        replies.push(wire::compound_result(&rec).unwrap());
    }
    assert_eq!(replies[0].status, nfsstat4::NFS4_OK);
    assert_eq!(replies[1], replies[0]);
    // Another principal sending the same xid and arguments from another
    // connection is not answered from alice's entry.
    let (mut b, _) = s.client("bob", 0, Service::Integrity);
    let plain = wire::encode_call(xid, &b.cred, PROC_COMPOUND, &body, 0);
    b.send_raw(&plain).unwrap();
    let rec = b.recv_record().unwrap();
    assert_eq!(
        wire::compound_result(&rec).unwrap().status,
        nfsstat4::NFS4ERR_EXIST,
        "executed for bob, not replayed"
    );
    drop((h, h0));
}

#[test]
fn context_limit_per_client_address() {
    const PER_CLIENT: usize = 3;
    let Some(s) = setup(PER_CLIENT) else { return };
    let cc = s.ccache("alice");
    let ops = vec![nfs_argop4::OP_PUTROOTFH, getattr(&[FATTR4_TYPE])];
    let mut clients: Vec<(Client, GssHandle)> = Vec::new();
    for _ in 0..PER_CLIENT {
        let (mut c, h) = Client::connect_gss(
            s.srv.addr,
            0,
            &s.gss,
            Some(&cc),
            SERVICE,
            Service::Integrity,
        )
        .unwrap();
        assert_eq!(c.compound(ops.clone()).unwrap().status, nfsstat4::NFS4_OK);
        clients.push((c, h));
    }
    // Every context is still usable: the limit has not answered yet.
    for (c, _) in &mut clients {
        assert_eq!(c.compound(ops.clone()).unwrap().status, nfsstat4::NFS4_OK);
    }
    // One more from the same address: the least recently used context
    // (the first) is dropped and answers RPCSEC_GSS_CTXPROBLEM.
    let (mut extra, _) = Client::connect_gss(
        s.srv.addr,
        0,
        &s.gss,
        Some(&cc),
        SERVICE,
        Service::Integrity,
    )
    .unwrap();
    assert_eq!(
        extra.compound(ops.clone()).unwrap().status,
        nfsstat4::NFS4_OK
    );
    let (first, h) = &mut clients[0];
    let rec = gss_call(h, first, 0x4400_0001, None, &ops);
    let reply = raw_exchange(first, &rec).expect("an answer");
    assert_eq!(
        auth_error(&reply),
        Some(14),
        "evicted: RPCSEC_GSS_CTXPROBLEM"
    );
    for (c, _) in clients.iter_mut().skip(1) {
        assert_eq!(c.compound(ops.clone()).unwrap().status, nfsstat4::NFS4_OK);
    }
    assert!(s.srv.log().contains("context limit of this client reached"));
}

/// A TCP connection from source address `from` (127.0.0.x).
fn tcp_from(srv: &TestServer, from: &str) -> nfs4d_testkit::transport::Tcp {
    use socket2::{Domain, Socket, Type};
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&srv.addr.into()).unwrap();
    nfs4d_testkit::transport::Tcp::new(sock.into()).unwrap()
}

/// A new context over `t` (one INIT round trip with Kerberos).
fn new_context(t: &mut dyn Transport, gss: &nfs4d_gss::Gss, cc: &str) -> GssClient {
    let mut ctx = GssClient::new(gss, Some(cc), SERVICE).unwrap();
    let call = ctx.init_call(1, NFS_PROGRAM, NFS_V4).unwrap();
    t.send(&[&call]).unwrap();
    let reply = t.recv(Duration::from_secs(30)).unwrap();
    assert!(ctx.init_reply(&reply).unwrap(), "one round trip");
    ctx
}

/// A NULL call under `ctx`: `None` when answered and verified, else the
/// `auth_stat` of the refusal.
fn probe(t: &mut dyn Transport, ctx: &mut GssClient, xid: u32) -> Option<u32> {
    let (call, sent) = ctx
        .call(xid, NFS_PROGRAM, NFS_V4, 0, Service::Integrity, &[])
        .unwrap();
    t.send(&[&call]).unwrap();
    let reply = t.recv(Duration::from_secs(30)).unwrap();
    match ctx.reply(&sent, &reply) {
        Ok(_) => None,
        Err(nfs4d_gss::ClientError::Denied(stat)) => Some(stat),
        Err(e) => panic!("probe: {e}"),
    }
}

/// The realm, and a server with one krb5i export at `/`: `gss_extra` goes
/// into the `[gss]` table and `export_extra` into the export (TOML lines).
/// `None` after a loud skip, as `setup`.
fn one_krb5i_export(
    gss_extra: &str,
    export_extra: &str,
) -> Option<(Kdc, nfs4d_gss::Gss, TestServer)> {
    let kdc = Kdc::start()?;
    let gss = realm::gss()?;
    let toml = format!(
        "[gss]\nkeytab = \"{}\"\nprincipal = \"{SERVICE}\"\n{gss_extra}[[export]]\npath = \"/\"\ndir = \"{{export}}\"\nsec = [\"krb5i\"]\n{export_extra}",
        kdc.service_keytab.display()
    );
    let srv = TestServer::start_with_config(&toml, &[]);
    Some((kdc, gss, srv))
}

#[test]
fn context_table_limit_evicts_from_the_busiest_address() {
    // 6 contexts in all, 4 per address: .1 holds 4 and .2 holds 2, which
    // fills the table; a third address then takes the least recently used
    // context of the busiest address (.1), and only that one.
    let Some((kdc, gss, srv)) =
        one_krb5i_export("max_contexts = 6\nmax_contexts_per_client = 4\n", "")
    else {
        return;
    };
    let cc = kdc.ccache_for("alice", SERVICE);
    let mut t1 = tcp_from(&srv, "127.0.0.1");
    let mut t2 = tcp_from(&srv, "127.0.0.2");
    let mut t3 = tcp_from(&srv, "127.0.0.3");
    let mut c2: Vec<GssClient> = (0..2).map(|_| new_context(&mut t2, &gss, &cc)).collect();
    let mut c1: Vec<GssClient> = (0..4).map(|_| new_context(&mut t1, &gss, &cc)).collect();
    let mut c3 = new_context(&mut t3, &gss, &cc);
    assert_eq!(probe(&mut t3, &mut c3, 20), None);
    let answers: Vec<Option<u32>> = c1
        .iter_mut()
        .enumerate()
        .map(|(i, c)| probe(&mut t1, c, 30 + i as u32))
        .collect();
    assert_eq!(
        answers,
        vec![Some(14), None, None, None],
        "only the oldest of .1 went"
    );
    for (i, c) in c2.iter_mut().enumerate() {
        assert_eq!(
            probe(&mut t2, c, 40 + i as u32),
            None,
            ".2's context {i} kept"
        );
    }
    assert!(srv.log().contains("context table full"));
}

#[test]
fn idle_contexts_expire_and_clients_start_new_ones() {
    // idle_time = 1 s: a context unused for longer answers CTXPROBLEM (the
    // sweep of the lease reaper's tick, or the lookup itself, removed it);
    // the client then establishes a new one and goes on.
    let Some((kdc, gss, srv)) = one_krb5i_export("idle_time = 1\n", "") else {
        return;
    };
    let cc = kdc.ccache_for("alice", SERVICE);
    let mut t = tcp_from(&srv, "127.0.0.1");
    let mut c = new_context(&mut t, &gss, &cc);
    assert_eq!(probe(&mut t, &mut c, 1), None);
    // Used within the idle time: kept.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(probe(&mut t, &mut c, 2), None);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        probe(&mut t, &mut c, 3),
        Some(14),
        "expired: RPCSEC_GSS_CTXPROBLEM"
    );
    let mut again = new_context(&mut t, &gss, &cc);
    assert_eq!(probe(&mut t, &mut again, 4), None);
}

#[test]
fn hosts_no_export_admits_create_no_context() {
    let Some((kdc, gss, srv)) = one_krb5i_export("", "clients = [{ addr = \"127.0.0.1\" }]\n")
    else {
        return;
    };
    let cc = kdc.ccache_for("alice", SERVICE);
    let mut t = tcp_from(&srv, "127.0.0.2");
    let ctx = GssClient::new(&gss, Some(&cc), SERVICE).unwrap();
    let call = ctx.init_call(1, NFS_PROGRAM, NFS_V4).unwrap();
    t.send(&[&call]).unwrap();
    let reply = t.recv(Duration::from_secs(30)).unwrap();
    assert_eq!(auth_error(&reply), Some(5), "AUTH_TOOWEAK");
    // The admitted host creates one.
    let mut t1 = tcp_from(&srv, "127.0.0.1");
    let mut c1 = new_context(&mut t1, &gss, &cc);
    assert_eq!(probe(&mut t1, &mut c1, 2), None);
}

/// By hand (`--ignored --nocapture`): how many contexts one client
/// address holds before the limit answers, and how many all addresses
/// hold, with the default limits; the server's memory per context.
#[test]
#[ignore]
fn measure_default_context_limits() {
    let Some((kdc, gss, srv)) = one_krb5i_export("", "") else {
        return;
    };
    let rss = || {
        let s = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let cc = kdc.ccache_for("alice", SERVICE);
    let per_default = nfs4d_gss::table::DEFAULT_MAX_PER_CLIENT;
    let all_default = nfs4d_gss::table::DEFAULT_MAX_CONTEXTS;
    // One address creates twice the default, then uses each context.
    let mut t = tcp_from(&srv, "127.0.0.1");
    let started = std::time::Instant::now();
    let mut mine: Vec<GssClient> = (0..2 * per_default)
        .map(|_| new_context(&mut t, &gss, &cc))
        .collect();
    let created = started.elapsed();
    let alive: Vec<bool> = mine
        .iter_mut()
        .enumerate()
        .map(|(i, c)| probe(&mut t, c, i as u32) != Some(14))
        .collect();
    let held = alive.iter().filter(|a| **a).count();
    println!(
        "one address: {} contexts created in {created:?}; {held} still usable, the {} oldest answer RPCSEC_GSS_CTXPROBLEM",
        2 * per_default,
        alive.len() - held
    );
    assert_eq!(held, per_default);
    assert!(alive[..per_default].iter().all(|a| !a) && alive[per_default..].iter().all(|a| *a));
    drop(mine);
    // Addresses .2 … .40 create the default per-address count each: more
    // than the table holds in all.
    let before = rss();
    let started = std::time::Instant::now();
    let mut all: Vec<(usize, GssClient)> = Vec::new();
    let mut conns = Vec::new();
    for a in 2..=40u32 {
        let mut t = tcp_from(&srv, &format!("127.0.0.{a}"));
        for _ in 0..per_default {
            all.push((conns.len(), new_context(&mut t, &gss, &cc)));
        }
        conns.push(t);
    }
    let created = started.elapsed();
    let after = rss();
    let mut usable = 0;
    for (i, (conn, c)) in all.iter_mut().enumerate() {
        if probe(&mut conns[*conn], c, i as u32) != Some(14) {
            usable += 1;
        }
    }
    println!(
        "39 addresses: {} contexts created in {created:?}; {usable} usable; server RSS {before} -> {after} KiB, {:.1} KiB per context held",
        all.len(),
        (after.saturating_sub(before)) as f64 / usable as f64
    );
    // The contexts of .1 were in the table too: at most the default in all.
    assert!(usable <= all_default && usable > all_default - per_default);
}

#[test]
fn without_kerberos_the_server_serves_auth_sys_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no.keytab");
    let toml = format!(
        "[gss]\nkeytab = \"{}\"\n[[export]]\npath = \"/k\"\ndir = \"{{export}}/k\"\nsec = [\"krb5p\", \"sys\"]\n",
        missing.display()
    );
    let srv = TestServer::start_with_config(&toml, &[]);
    let log = srv.log();
    assert!(
        log.contains("Kerberos (RPCSEC_GSS) not available")
            && log.contains("cannot be served with krb5"),
        "start-up does not say so:\n{log}"
    );
    // AUTH_SYS works.
    let mut c = srv.client(0);
    let r = c
        .compound(vec![
            nfs_argop4::OP_PUTROOTFH,
            lookup("k"),
            getattr(&[FATTR4_TYPE]),
        ])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4_OK);
    // An RPCSEC_GSS context creation is refused with AUTH_BADCRED.
    let cred = nfs4d_gss::wire::encode_cred(&Cred {
        proc_: GssProc::Init,
        seq: 0,
        service: Service::None,
        handle: &[],
    });
    let init = nfs4d_gss::rpc::call_record::<()>(
        77,
        NFS_PROGRAM,
        NFS_V4,
        0,
        nfs4d_gss::RPCSEC_GSS,
        &cred,
        |_| Ok(nfs4d_gss::Verifier::none()),
        &nfs4d_gss::wire::encode_init_arg(b"token"),
    )
    .unwrap();
    let reply = raw_exchange(&mut c, &init).expect("an answer");
    assert_eq!(auth_error(&reply), Some(1), "AUTH_BADCRED");
    assert!(srv.log().contains("Kerberos is not served"));
    let _ = REALM;
}

fn exchange_id_mach(c: &mut Client, owner: &[u8]) -> COMPOUND4res {
    let bits = |ops: &[nfs_opnum4]| {
        let mut bm = vec![0u32; 2];
        for op in ops {
            let n = *op as u32;
            bm[(n / 32) as usize] |= 1 << (n % 32);
        }
        bm
    };
    use nfs_opnum4::*;
    c.compound_raw(vec![nfs_argop4::OP_EXCHANGE_ID(EXCHANGE_ID4args {
        eia_clientowner: client_owner4 {
            co_verifier: [4; 8],
            co_ownerid: owner.to_vec(),
        },
        eia_flags: 0,
        // What the Linux client asks for, plus READ, which is not an
        // upkeep operation and is not enforced.
        eia_state_protect: state_protect4_a::SP4_MACH_CRED(state_protect_ops4 {
            spo_must_enforce: bits(&[
                OP_BIND_CONN_TO_SESSION,
                OP_EXCHANGE_ID,
                OP_CREATE_SESSION,
                OP_DESTROY_SESSION,
                OP_DESTROY_CLIENTID,
                OP_READ,
            ]),
            spo_must_allow: bits(&[OP_CLOSE, OP_LOCKU, OP_WRITE, OP_TEST_STATEID]),
        }),
        eia_client_impl_id: vec![],
    })])
    .unwrap()
}

fn create_session(c: &mut Client, clientid: clientid4, seq: u32) -> COMPOUND4res {
    let attrs = channel_attrs4 {
        ca_headerpadsize: 0,
        ca_maxrequestsize: 1 << 20,
        ca_maxresponsesize: 1 << 20,
        ca_maxresponsesize_cached: 4096,
        ca_maxoperations: 16,
        ca_maxrequests: 4,
        ca_rdma_ird: vec![],
    };
    c.compound_raw(vec![nfs_argop4::OP_CREATE_SESSION(CREATE_SESSION4args {
        csa_clientid: clientid,
        csa_sequence: seq,
        csa_flags: 0,
        csa_fore_chan_attrs: attrs.clone(),
        csa_back_chan_attrs: attrs,
        csa_cb_program: 0x4000_0000,
        csa_sec_parms: vec![callback_sec_parms4::AUTH_NONE],
    })])
    .unwrap()
}

#[test]
fn sp4_mach_cred_binds_client_upkeep_to_the_machine_credential() {
    let Some(s) = setup(128) else { return };
    use nfs_opnum4::*;
    // Without RPCSEC_GSS integrity or privacy: NFS4ERR_INVAL.
    let mut sys = s.srv.client(1);
    assert_eq!(
        exchange_id_mach(&mut sys, b"m").status,
        nfsstat4::NFS4ERR_INVAL
    );
    let (mut weak, _) = s.client("nfs/client.nfs4d.test", 1, Service::None);
    assert_eq!(
        exchange_id_mach(&mut weak, b"m").status,
        nfsstat4::NFS4ERR_INVAL
    );

    let (mut machine, mh) = s.client("nfs/client.nfs4d.test", 1, Service::Integrity);
    let r = exchange_id_mach(&mut machine, b"m");
    let Some(nfs_resop4::OP_EXCHANGE_ID(EXCHANGE_ID4res::NFS4_OK(ok))) = r.resarray.first() else {
        panic!("EXCHANGE_ID: {r:?}")
    };
    let enforce = |op: nfs_opnum4| 1u32 << (op as u32 % 32);
    match &ok.eir_state_protect {
        state_protect4_r::SP4_MACH_CRED(ops) => {
            assert_eq!(
                ops.spo_must_enforce,
                vec![
                    // READ (25) would be in the first word.
                    0,
                    enforce(OP_BIND_CONN_TO_SESSION)
                        | enforce(OP_EXCHANGE_ID)
                        | enforce(OP_CREATE_SESSION)
                        | enforce(OP_DESTROY_SESSION)
                        | enforce(OP_DESTROY_CLIENTID)
                ],
                "the upkeep operations asked for, not READ"
            );
            assert_eq!(
                ops.spo_must_allow,
                vec![
                    enforce(OP_CLOSE) | enforce(OP_LOCKU),
                    enforce(OP_TEST_STATEID)
                ],
                "release operations, not WRITE"
            );
        }
        other => panic!("protection {other:?}"),
    }
    let (clientid, seq) = (ok.eir_clientid, ok.eir_sequenceid);

    // Another principal, or the machine's without integrity: WRONG_CRED.
    let (mut alice, _) = s.client("alice", 1, Service::Privacy);
    assert_eq!(
        create_session(&mut alice, clientid, seq).status,
        nfsstat4::NFS4ERR_WRONG_CRED
    );
    mh.set_service(Service::None);
    assert_eq!(
        create_session(&mut machine, clientid, seq).status,
        nfsstat4::NFS4ERR_WRONG_CRED
    );
    mh.set_service(Service::Privacy);
    let r = create_session(&mut machine, clientid, seq);
    let Some(nfs_resop4::OP_CREATE_SESSION(CREATE_SESSION4res::NFS4_OK(cs))) = r.resarray.first()
    else {
        panic!("CREATE_SESSION by the machine: {r:?}")
    };
    let sid = cs.csr_sessionid;
    // Renewing the client ID from another principal is refused too.
    assert_eq!(
        exchange_id_mach(&mut alice, b"m").status,
        nfsstat4::NFS4ERR_WRONG_CRED
    );
    let bind = |c: &mut Client| {
        c.compound_raw(vec![nfs_argop4::OP_BIND_CONN_TO_SESSION(
            BIND_CONN_TO_SESSION4args {
                bctsa_sessid: sid,
                bctsa_dir: channel_dir_from_client4::CDFC4_FORE,
                bctsa_use_conn_in_rdma_mode: false,
            },
        )])
        .unwrap()
        .status
    };
    assert_eq!(bind(&mut alice), nfsstat4::NFS4ERR_WRONG_CRED);
    let (mut machine2, _) = s.client("nfs/client.nfs4d.test", 1, Service::Integrity);
    assert_eq!(bind(&mut machine2), nfsstat4::NFS4_OK);
    let destroy_session = |c: &mut Client| {
        c.compound_raw(vec![nfs_argop4::OP_DESTROY_SESSION(DESTROY_SESSION4args {
            dsa_sessionid: sid,
        })])
        .unwrap()
        .status
    };
    assert_eq!(destroy_session(&mut alice), nfsstat4::NFS4ERR_WRONG_CRED);
    assert_eq!(destroy_session(&mut machine2), nfsstat4::NFS4_OK);
    let destroy_client = |c: &mut Client| {
        c.compound_raw(vec![nfs_argop4::OP_DESTROY_CLIENTID(
            DESTROY_CLIENTID4args {
                dca_clientid: clientid,
            },
        )])
        .unwrap()
        .status
    };
    assert_eq!(destroy_client(&mut alice), nfsstat4::NFS4ERR_WRONG_CRED);
    assert_eq!(destroy_client(&mut machine), nfsstat4::NFS4_OK);
    assert!(s.srv.log().contains("SP4_MACH_CRED"));
}
