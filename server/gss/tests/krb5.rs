//! The engine and the client against a real Kerberos realm (MIT's KDC on
//! loopback, see `common/`): context creation, DATA under the three
//! services with byte-exact payloads, every RFC 2203 error answer pynfs's
//! GSS1–GSS8 check and more, the context limits and expiry on the
//! injected clock, and a missing library.

mod common;

use std::net::IpAddr;
use std::time::Instant;

use common::{engine, Kdc, SERVICE};
use nfs4d_gss::rpc::{self, parse_call, AuthStat, RawReply, Verifier};
use nfs4d_gss::server::Decision;
use nfs4d_gss::window::SEQ_WINDOW;
use nfs4d_gss::wire::{self, Cred, GssProc, Service, MAXSEQ, RPCSEC_GSS};
use nfs4d_gss::{ClientError, GssCall, GssClient, GssServer, Kind, Limits, ServerConfig};

const PROG: u32 = 100003;
const VERS: u32 = 4;
const COMPOUND: u32 = 1;

fn ip(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// What the engine decided, without borrowing the record.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// A reply record to send (control reply, error, or the echo
    /// procedure's results).
    Reply(Vec<u8>),
    /// Nothing sent.
    Drop,
}

/// The test procedure's results: the arguments reversed, then "!".
fn echo(args: &[u8]) -> Vec<u8> {
    let mut r: Vec<u8> = args.iter().rev().copied().collect();
    r.push(b'!');
    r
}

fn decide<'a>(e: &GssServer, rec: &'a [u8], from: IpAddr, now: u64) -> Decision<'a> {
    let raw = parse_call(rec).expect("a call record");
    assert_eq!(raw.cred_flavor, RPCSEC_GSS);
    e.accept(&GssCall::from_raw(&raw, from), now)
}

fn serve(e: &GssServer, rec: &[u8], from: IpAddr, now: u64) -> Outcome {
    let xid = rpc::record_xid(rec).expect("xid");
    match decide(e, rec, from, now) {
        Decision::Drop => Outcome::Drop,
        Decision::Data(acc) => Outcome::Reply(acc.reply_record(xid, &echo(&acc.args))),
        d => Outcome::Reply(d.reply_record(xid).expect("a reply")),
    }
}

fn auth_error(d: &Decision<'_>) -> Option<AuthStat> {
    match d {
        Decision::AuthError(s) => Some(*s),
        _ => None,
    }
}

/// Runs context creation between `c` and `e`; returns the number of
/// round trips.
fn establish(e: &GssServer, c: &mut GssClient, from: IpAddr, now: u64) -> usize {
    let mut trips = 0;
    while !c.established() {
        trips += 1;
        assert!(trips <= 4, "context creation does not converge");
        let call = c.init_call(trips as u32, PROG, VERS).expect("init call");
        let Outcome::Reply(reply) = serve(e, &call, from, now) else {
            panic!("creation call dropped")
        };
        c.init_reply(&reply).expect("creation reply accepted");
    }
    trips
}

struct Realm {
    kdc: Kdc,
    alice: String,
}

fn realm() -> Option<Realm> {
    let kdc = Kdc::start()?;
    eprintln!("test realm started in {:?}", kdc.startup);
    let alice = kdc.ccache_for("alice", SERVICE);
    Some(Realm { kdc, alice })
}

fn client(r: &Realm, e: &GssServer) -> GssClient {
    GssClient::new(e.gss(), Some(&r.alice), SERVICE).expect("client context")
}

fn ready(r: &Realm, e: &GssServer, from: IpAddr) -> GssClient {
    let mut c = client(r, e);
    establish(e, &mut c, from, 0);
    c
}

#[test]
fn establishes_and_carries_data_under_every_service() {
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = client(&r, &e);
    assert!(!c.established());
    // Kerberos with mutual authentication: one round trip.
    assert_eq!(establish(&e, &mut c, ip(1), 0), 1);
    assert_eq!(c.seq_window(), SEQ_WINDOW);
    assert_eq!(c.handle().len(), 16);
    assert_eq!((e.contexts(), e.client_contexts(ip(1))), (1, 1));

    let marker = b"PLAINTEXT-MARKER-PLAINTEXT-MARKER";
    let mut xid = 100;
    for service in Service::ALL {
        for len in [0usize, 1, 3, 4, 5, 1000, 65537] {
            let mut payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            if len >= 1000 {
                payload[100..100 + marker.len()].copy_from_slice(marker);
            }
            xid += 1;
            let (call, sent) = c
                .call(xid, PROG, VERS, COMPOUND, service, &payload)
                .unwrap();
            let reply = match decide(&e, &call, ip(1), 10) {
                Decision::Data(acc) => {
                    assert_eq!(&*acc.args, &payload[..], "{service:?} {len}");
                    assert_eq!((acc.service, acc.seq), (service, sent.seq));
                    let id = &acc.identity;
                    assert_eq!(id.principal, "alice@NFS4D.TEST");
                    assert_eq!(
                        (id.kind, id.uid, id.gid, id.groups.clone()),
                        (Kind::User, 1000, 100, vec![100, 27])
                    );
                    acc.reply_record(xid, &echo(&acc.args))
                }
                other => panic!("{service:?} {len}: {other:?}"),
            };
            let results = c.reply(&sent, &reply).expect("reply verifies");
            assert_eq!(results, echo(&payload), "{service:?} {len}");
            let on_wire = |rec: &[u8]| rec.windows(marker.len()).any(|w| w == marker);
            if len >= 1000 {
                // krb5p hides the data; krb5 and krb5i send it in the clear.
                assert_eq!(on_wire(&call), service != Service::Privacy, "{service:?}");
            }
        }
    }
}

#[test]
fn bad_header_mic_is_credproblem_and_leaves_the_window_alone() {
    // pynfs GSS3.
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let (call, sent) = c
        .call(7, PROG, VERS, COMPOUND, Service::None, b"args")
        .unwrap();
    let raw = parse_call(&call).unwrap();
    let at = raw.verf.as_ptr() as usize - call.as_ptr() as usize;
    for i in [0, raw.verf.len() / 2, raw.verf.len() - 1] {
        let mut bad = call.clone();
        bad[at + i] ^= 0x40;
        assert_eq!(
            auth_error(&decide(&e, &bad, ip(1), 1)),
            Some(AuthStat::CredProblem)
        );
    }
    // A modified header (another procedure) under the original MIC.
    let mut other_proc = call.clone();
    other_proc[4 + 20..4 + 24].copy_from_slice(&2u32.to_be_bytes());
    assert_eq!(
        auth_error(&decide(&e, &other_proc, ip(1), 1)),
        Some(AuthStat::CredProblem)
    );
    // A verifier of another flavor.
    let mut flavor = call.clone();
    flavor[at - 8..at - 4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        auth_error(&decide(&e, &flavor, ip(1), 1)),
        Some(AuthStat::BadVerf)
    );
    // The forgeries did not consume the sequence number.
    let Outcome::Reply(reply) = serve(&e, &call, ip(1), 2) else {
        panic!("dropped")
    };
    assert_eq!(c.reply(&sent, &reply).unwrap(), echo(b"args"));
}

#[test]
fn replayed_and_out_of_window_sequence_numbers_are_dropped() {
    // pynfs GSS1, RFC 2203 §5.3.3.1.
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let (first, _) = c
        .call_with_seq(1, PROG, VERS, COMPOUND, Service::Integrity, 10, b"a")
        .unwrap();
    assert!(matches!(serve(&e, &first, ip(1), 1), Outcome::Reply(_)));
    // The same record again, and a new call reusing the number.
    assert_eq!(serve(&e, &first, ip(1), 1), Outcome::Drop);
    let (again, _) = c
        .call_with_seq(2, PROG, VERS, COMPOUND, Service::None, 10, b"b")
        .unwrap();
    assert_eq!(serve(&e, &again, ip(1), 1), Outcome::Drop);
    // Out of order inside the window is fine, once.
    let (lower, sent) = c
        .call_with_seq(3, PROG, VERS, COMPOUND, Service::None, 4, b"c")
        .unwrap();
    let Outcome::Reply(reply) = serve(&e, &lower, ip(1), 1) else {
        panic!("in-window call dropped")
    };
    assert_eq!(c.reply(&sent, &reply).unwrap(), echo(b"c"));
    assert_eq!(serve(&e, &lower, ip(1), 1), Outcome::Drop);
    // Moving the window past them makes them too old.
    let top = 10 + SEQ_WINDOW + 5;
    let (high, _) = c
        .call_with_seq(4, PROG, VERS, COMPOUND, Service::None, top, b"d")
        .unwrap();
    assert!(matches!(serve(&e, &high, ip(1), 1), Outcome::Reply(_)));
    for seq in [11, top - SEQ_WINDOW] {
        let (old, _) = c
            .call_with_seq(5, PROG, VERS, COMPOUND, Service::None, seq, b"e")
            .unwrap();
        assert_eq!(serve(&e, &old, ip(1), 1), Outcome::Drop, "seq {seq}");
    }
    let (edge, _) = c
        .call_with_seq(
            6,
            PROG,
            VERS,
            COMPOUND,
            Service::None,
            top - SEQ_WINDOW + 1,
            b"f",
        )
        .unwrap();
    assert!(matches!(serve(&e, &edge, ip(1), 1), Outcome::Reply(_)));
}

#[test]
fn sequence_numbers_above_maxseq_are_ctxproblem() {
    // pynfs GSS6.
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    for seq in [MAXSEQ + 1, u32::MAX] {
        let (call, _) = c
            .call_with_seq(1, PROG, VERS, COMPOUND, Service::None, seq, b"x")
            .unwrap();
        assert_eq!(
            auth_error(&decide(&e, &call, ip(1), 1)),
            Some(AuthStat::CtxProblem)
        );
    }
    let (ok, _) = c
        .call_with_seq(2, PROG, VERS, COMPOUND, Service::None, MAXSEQ, b"x")
        .unwrap();
    assert!(matches!(decide(&e, &ok, ip(1), 1), Decision::Data(_)));
}

#[test]
fn unknown_and_destroyed_contexts_are_ctxproblem() {
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    // A handle the server never issued, with a valid MIC.
    for handle in [&b"0123456789abcdef"[..], b"", b"short", &[0xff; 300][..]] {
        let cred = Cred {
            proc_: GssProc::Data,
            seq: 1,
            service: Service::None,
            handle,
        };
        let call = c.build_call(1, PROG, VERS, COMPOUND, &cred, b"x").unwrap();
        assert_eq!(
            auth_error(&decide(&e, &call, ip(1), 1)),
            Some(AuthStat::CtxProblem),
            "{handle:?}"
        );
    }
    // DESTROY: SUCCESS with the sequence number's MIC, and the context is gone.
    let (destroy, sent) = c.destroy_call(2, PROG, VERS).unwrap();
    let Outcome::Reply(reply) = serve(&e, &destroy, ip(1), 1) else {
        panic!("destroy dropped")
    };
    assert_eq!(c.reply(&sent, &reply).unwrap(), Vec::<u8>::new());
    assert_eq!(e.contexts(), 0);
    let (after, sent) = c
        .call(3, PROG, VERS, COMPOUND, Service::None, b"x")
        .unwrap();
    let Outcome::Reply(reply) = serve(&e, &after, ip(1), 1) else {
        panic!("dropped")
    };
    assert!(matches!(
        c.reply(&sent, &reply),
        Err(ClientError::Denied(14))
    ));
    // DESTROY of an unknown context, and on a procedure other than NULL.
    assert_eq!(
        auth_error(&decide(&e, &destroy, ip(1), 1)),
        Some(AuthStat::CtxProblem)
    );
    let mut c2 = ready(&r, &e, ip(1));
    let handle = c2.handle().to_vec();
    let cred = Cred {
        proc_: GssProc::Destroy,
        seq: 1,
        service: Service::None,
        handle: &handle,
    };
    let bad = c2.build_call(4, PROG, VERS, COMPOUND, &cred, b"").unwrap();
    assert_eq!(
        auth_error(&decide(&e, &bad, ip(1), 1)),
        Some(AuthStat::BadCred)
    );
    assert_eq!(e.contexts(), 1);
}

/// A call record with a hand-made credential body and a valid header MIC.
fn raw_cred_call(c: &mut GssClient, proc_: u32, cred: &[u8]) -> Vec<u8> {
    rpc::call_record(
        9,
        PROG,
        VERS,
        proc_,
        RPCSEC_GSS,
        cred,
        |h| {
            Ok::<_, ClientError>(Verifier {
                flavor: RPCSEC_GSS,
                body: c.mic(h)?,
            })
        },
        b"args",
    )
    .unwrap()
}

fn cred_words(vers: u32, gss_proc: u32, seq: u32, service: u32, handle: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for w in [vers, gss_proc, seq, service] {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.extend_from_slice(&(handle.len() as u32).to_be_bytes());
    out.extend_from_slice(handle);
    out.resize(out.len() + (4 - handle.len() % 4) % 4, 0);
    out
}

#[test]
fn bad_versions_procedures_and_services_are_badcred() {
    // pynfs GSS5, GSS7, GSS8 (RFC 2203 §5.3.3.3).
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let h = c.handle().to_vec();
    let mut cases = Vec::new();
    for v in [0, 2, 3, 1024] {
        cases.push(cred_words(v, 0, 1, 1, &h));
    }
    for p in [4, 5, 1024] {
        cases.push(cred_words(1, p, 2, 1, &h));
    }
    for s in [0, 4, 5, 1024] {
        cases.push(cred_words(1, 0, 3, s, &h));
    }
    let mut trailing = cred_words(1, 0, 4, 1, &h);
    trailing.extend_from_slice(&[0; 4]);
    cases.push(trailing);
    cases.push(cred_words(1, 0, 5, 1, &h)[..10].to_vec());
    for cred in &cases {
        let call = raw_cred_call(&mut c, COMPOUND, cred);
        assert_eq!(
            auth_error(&decide(&e, &call, ip(1), 1)),
            Some(AuthStat::BadCred),
            "{cred:?}"
        );
    }
    // Context creation on a procedure other than NULL.
    let init = cred_words(1, 1, 0, 1, b"");
    let call = raw_cred_call(&mut c, COMPOUND, &init);
    assert_eq!(
        auth_error(&decide(&e, &call, ip(1), 1)),
        Some(AuthStat::BadCred)
    );
    // None of it touched the context.
    let (ok, sent) = c
        .call(2, PROG, VERS, COMPOUND, Service::Privacy, b"fine")
        .unwrap();
    let Outcome::Reply(reply) = serve(&e, &ok, ip(1), 1) else {
        panic!("dropped")
    };
    assert_eq!(c.reply(&sent, &reply).unwrap(), echo(b"fine"));
}

#[test]
fn bad_bodies_are_garbage_args_with_a_verified_verifier() {
    // pynfs GSS2 (sequence numbers of header and body differ) and GSS4
    // (bad integrity checksum); RFC 2203 §5.3.3.4.2-3.
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let handle = c.handle().to_vec();
    let check_garbage =
        |c: &mut GssClient, seq: u32, service: Service, body: Vec<u8>, what: &str| {
            let cred = Cred {
                proc_: GssProc::Data,
                seq,
                service,
                handle: &handle,
            };
            let call = c
                .build_call(seq, PROG, VERS, COMPOUND, &cred, &body)
                .unwrap();
            let d = decide(&e, &call, ip(1), 1);
            let Decision::GarbageArgs(v) = &d else {
                panic!("{what}: {d:?}")
            };
            // The reply still carries the MIC of the sequence number.
            let rec = d.reply_record(seq).unwrap();
            let RawReply::Accepted {
                verf_flavor, stat, ..
            } = rpc::parse_reply(&rec).unwrap()
            else {
                panic!("{what}")
            };
            assert_eq!((verf_flavor, stat), (RPCSEC_GSS, 4), "{what}");
            assert_eq!(v.flavor, RPCSEC_GSS);
            assert!(!v.body.is_empty(), "{what}");
        };

    // Integrity: body for another sequence number.
    let body = c.protect(102, Service::Integrity, b"args").unwrap();
    check_garbage(&mut c, 101, Service::Integrity, body, "integrity body seq");
    // Integrity: checksum byte flipped, data byte flipped.
    let mut body = c.protect(102, Service::Integrity, b"args").unwrap();
    let n = body.len();
    body[n - 4] ^= 1;
    check_garbage(&mut c, 102, Service::Integrity, body, "integrity checksum");
    let mut body = c.protect(103, Service::Integrity, b"args").unwrap();
    body[9] ^= 1;
    check_garbage(&mut c, 103, Service::Integrity, body, "integrity data");
    // Integrity: not rpc_gss_integ_data at all.
    check_garbage(
        &mut c,
        104,
        Service::Integrity,
        b"\x00\x00\x10\x00abc".to_vec(),
        "integrity framing",
    );
    // Privacy: body for another sequence number.
    let body = c.protect(106, Service::Privacy, b"args").unwrap();
    check_garbage(&mut c, 105, Service::Privacy, body, "privacy body seq");
    // Privacy: ciphertext byte flipped, token cut short.
    let mut body = c.protect(106, Service::Privacy, b"args").unwrap();
    let n = body.len();
    body[n - 10] ^= 1;
    check_garbage(&mut c, 106, Service::Privacy, body, "privacy ciphertext");
    let body = c.protect(107, Service::Privacy, b"args").unwrap();
    let mut cut = body[..body.len() - 8].to_vec();
    cut[..4].copy_from_slice(&((body.len() - 12) as u32).to_be_bytes());
    check_garbage(&mut c, 107, Service::Privacy, cut, "privacy truncated");
    // Privacy: wrapped without confidentiality (a downgrade).
    let plain = c.wrap(&wire::data_body(108, b"args"), false).unwrap();
    let mut body = Vec::new();
    wire::encode_priv_into(&mut body, &plain);
    check_garbage(&mut c, 108, Service::Privacy, body, "privacy not encrypted");
    // The context still works.
    let (ok, sent) = c
        .call(1, PROG, VERS, COMPOUND, Service::Integrity, b"fine")
        .unwrap();
    let Outcome::Reply(reply) = serve(&e, &ok, ip(1), 1) else {
        panic!("dropped")
    };
    assert_eq!(c.reply(&sent, &reply).unwrap(), echo(b"fine"));
}

#[test]
fn corrupt_forged_replayed_and_oversized_creation_tokens() {
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let init = |token: &[u8], handle: &[u8], gss_proc: GssProc| {
        let cred = wire::encode_cred(&Cred {
            proc_: gss_proc,
            seq: 0,
            service: Service::None,
            handle,
        });
        rpc::call_record::<()>(
            1,
            PROG,
            VERS,
            0,
            RPCSEC_GSS,
            &cred,
            |_| Ok(Verifier::none()),
            &wire::encode_init_arg(token),
        )
        .unwrap()
    };
    let refused = |rec: &[u8]| -> (u32, Vec<u8>) {
        let d = decide(&e, rec, ip(1), 0);
        let Decision::Control(ctl) = d else {
            panic!("{d:?}")
        };
        assert_eq!(ctl.verifier, Verifier::none());
        let res = wire::decode_init_res(&ctl.results).unwrap();
        assert!(res.handle.is_empty());
        assert_eq!(res.seq_window, 0);
        (res.major, res.token.to_vec())
    };

    // A genuine first token, kept to corrupt and to replay.
    let c = client(&r, &e);
    let genuine = c.init_call(1, PROG, VERS).unwrap();
    let raw = parse_call(&genuine).unwrap();
    let token = wire::decode_init_arg(raw.args).unwrap().to_vec();

    let (major, _) = refused(&init(b"not a kerberos token at all", b"", GssProc::Init));
    assert_ne!(major & 0xffff_0000, 0);
    let (major, _) = refused(&init(&token[..token.len() / 2], b"", GssProc::Init));
    assert_ne!(major & 0xffff_0000, 0);
    let mut flipped = token.clone();
    let n = flipped.len();
    flipped[n - 20] ^= 0x55;
    let (major, _) = refused(&init(&flipped, b"", GssProc::Init));
    assert_ne!(major & 0xffff_0000, 0);
    let (major, _) = refused(&init(b"", b"", GssProc::Init));
    assert_ne!(major & 0xffff_0000, 0);
    assert_eq!(e.contexts(), 0, "refused tokens leave no context behind");

    // A ticket for another service of the realm.
    let host = r.kdc.keytab_for("host/localhost");
    assert!(host.exists());
    r.kdc.fetch_ticket(&r.alice, "host/localhost@NFS4D.TEST");
    let other = GssClient::new(e.gss(), Some(&r.alice), "host/localhost@NFS4D.TEST").unwrap();
    let (major, _) = refused(&other.init_call(1, PROG, VERS).unwrap());
    assert_ne!(major & 0xffff_0000, 0);

    // The genuine token works once; its replay is refused by Kerberos.
    assert!(matches!(
        decide(&e, &genuine, ip(1), 0),
        Decision::Control(_)
    ));
    assert_eq!(e.contexts(), 1);
    let (major, _) = refused(&genuine);
    assert_ne!(major & 0xffff_0000, 0);
    assert_eq!(e.contexts(), 1);

    // Oversized token; INIT naming a handle; creation without AUTH_NONE;
    // CONTINUE_INIT for nothing.
    let big = init(&vec![0x60; wire::MAX_TOKEN + 1], b"", GssProc::Init);
    assert!(
        matches!(decide(&e, &big, ip(1), 0), Decision::GarbageArgs(v) if v == Verifier::none())
    );
    let mut junk_args = init(&token, b"", GssProc::Init);
    junk_args.extend_from_slice(&[0, 0, 0, 0]);
    rpc::finish_record(&mut junk_args);
    assert!(matches!(
        decide(&e, &junk_args, ip(1), 0),
        Decision::GarbageArgs(_)
    ));
    assert_eq!(
        auth_error(&decide(&e, &init(&token, b"h", GssProc::Init), ip(1), 0)),
        Some(AuthStat::BadCred)
    );
    let cred = wire::encode_cred(&Cred {
        proc_: GssProc::Init,
        seq: 0,
        service: Service::None,
        handle: b"",
    });
    let with_verf = rpc::call_record::<()>(
        1,
        PROG,
        VERS,
        0,
        RPCSEC_GSS,
        &cred,
        |_| {
            Ok(Verifier {
                flavor: RPCSEC_GSS,
                body: b"junk".to_vec(),
            })
        },
        &wire::encode_init_arg(&token),
    )
    .unwrap();
    assert_eq!(
        auth_error(&decide(&e, &with_verf, ip(1), 0)),
        Some(AuthStat::BadVerf)
    );
    let cont = init(&token, b"0123456789abcdef", GssProc::ContinueInit);
    assert_eq!(
        auth_error(&decide(&e, &cont, ip(1), 0)),
        Some(AuthStat::CtxProblem)
    );
    assert_eq!(e.contexts(), 1);
}

#[test]
fn contexts_are_bounded_per_client_and_in_all() {
    let Some(r) = realm() else { return };
    let limits = Limits {
        max_contexts: 6,
        max_per_client: 4,
        ..Limits::default()
    };
    let e = engine(&r.kdc, limits);
    let mut now = 0;
    let use_ok = |c: &mut GssClient, from: IpAddr, now: u64| -> bool {
        let (call, sent) = c
            .call(1, PROG, VERS, COMPOUND, Service::None, b"x")
            .unwrap();
        match serve(&e, &call, from, now) {
            Outcome::Reply(rep) => match c.reply(&sent, &rep) {
                Ok(_) => true,
                Err(ClientError::Denied(14)) => false,
                Err(other) => panic!("{other}"),
            },
            Outcome::Drop => panic!("dropped"),
        }
    };
    let mut a: Vec<GssClient> = Vec::new();
    for _ in 0..4 {
        now += 10;
        let mut c = client(&r, &e);
        establish(&e, &mut c, ip(1), now);
        a.push(c);
    }
    // Touch all but the second, so it is the least recently used.
    for i in [0, 2, 3] {
        now += 10;
        assert!(use_ok(&mut a[i], ip(1), now));
    }
    now += 10;
    let mut fifth = client(&r, &e);
    establish(&e, &mut fifth, ip(1), now);
    assert_eq!(e.client_contexts(ip(1)), 4);
    assert!(
        !use_ok(&mut a[1], ip(1), now),
        "the least recently used context was evicted"
    );
    for i in [0, 2, 3] {
        assert!(use_ok(&mut a[i], ip(1), now));
    }
    assert!(use_ok(&mut fifth, ip(1), now));

    // Two more clients fill the table; a third evicts from the biggest
    // client (127.0.0.1, four contexts), not from the small ones.
    let mut b = client(&r, &e);
    establish(&e, &mut b, ip(2), now);
    let mut d = client(&r, &e);
    establish(&e, &mut d, ip(3), now);
    assert_eq!(e.contexts(), 6);
    now += 10;
    let mut f = client(&r, &e);
    establish(&e, &mut f, ip(4), now);
    assert_eq!(e.contexts(), 6);
    assert_eq!(e.client_contexts(ip(1)), 3);
    assert!(use_ok(&mut b, ip(2), now) && use_ok(&mut d, ip(3), now) && use_ok(&mut f, ip(4), now));

    // A flood of creations from one address stays within its bound.
    for _ in 0..20 {
        let mut c = client(&r, &e);
        establish(&e, &mut c, ip(9), now);
        assert!(e.client_contexts(ip(9)) <= 4 && e.contexts() <= 6);
    }
    eprintln!(
        "limits: a client holds at most {} contexts (default {}), the server {} (default {}); \
         creating one more evicts the client's least recently used context",
        limits.max_per_client,
        nfs4d_gss::table::DEFAULT_MAX_PER_CLIENT,
        limits.max_contexts,
        nfs4d_gss::table::DEFAULT_MAX_CONTEXTS
    );
}

#[test]
fn contexts_expire_on_the_injected_clock() {
    let Some(r) = realm() else { return };
    let limits = Limits {
        idle_ms: 1_000,
        max_lifetime_ms: 5_000,
        ..Limits::default()
    };
    let e = engine(&r.kdc, limits);
    let call_at = |c: &mut GssClient, now: u64| -> Option<AuthStat> {
        let (call, _) = c
            .call(1, PROG, VERS, COMPOUND, Service::Integrity, b"x")
            .unwrap();
        auth_error(&decide(&e, &call, ip(1), now))
    };
    // Idle: used at 999 ms, then silent for a full second.
    let mut idle = ready(&r, &e, ip(1));
    assert_eq!(call_at(&mut idle, 999), None);
    assert_eq!(call_at(&mut idle, 1_998), None);
    assert_eq!(call_at(&mut idle, 2_998), Some(AuthStat::CtxProblem));
    // Busy: used every half second, still gone at the lifetime cap.
    let mut busy = ready(&r, &e, ip(1));
    let mut now = 0;
    while now < 5_000 {
        assert_eq!(call_at(&mut busy, now), None, "at {now} ms");
        now += 500;
    }
    assert_eq!(call_at(&mut busy, 5_000), Some(AuthStat::CtxProblem));
    assert_eq!(e.contexts(), 0);

    // Without the cap, the Kerberos ticket's end ends it: max_life 10 h,
    // plus the 5 minutes of clock skew MIT's acceptor allows.
    let long = Limits {
        idle_ms: 48 * 3_600_000,
        max_lifetime_ms: 48 * 3_600_000,
        ..Limits::default()
    };
    let e2 = engine(&r.kdc, long);
    let mut c = GssClient::new(e2.gss(), Some(&r.alice), SERVICE).unwrap();
    establish(&e2, &mut c, ip(1), 0);
    let at = |c: &mut GssClient, now: u64| {
        let (call, _) = c
            .call(1, PROG, VERS, COMPOUND, Service::None, b"x")
            .unwrap();
        auth_error(&decide(&e2, &call, ip(1), now))
    };
    assert_eq!(at(&mut c, 9 * 3_600_000), None);
    // (The lifetime counts from when kinit got the ticket, a moment before
    // the context was made at 0 ms: leave a margin.)
    assert_eq!(at(&mut c, 10 * 3_600_000 + 200_000), None);
    assert_eq!(
        at(&mut c, 10 * 3_600_000 + 301_000),
        Some(AuthStat::CtxProblem)
    );
    // A sweep also frees expired contexts nobody asks about.
    let mut d = GssClient::new(e2.gss(), Some(&r.alice), SERVICE).unwrap();
    establish(&e2, &mut d, ip(1), 0);
    assert_eq!(e2.contexts(), 1);
    assert_eq!(e2.sweep(11 * 3_600_000), 1);
    assert_eq!(e2.contexts(), 0);
}

#[test]
fn principals_map_to_ids_and_kinds() {
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let identity = |ccache: &str| {
        let mut c = GssClient::new(e.gss(), Some(ccache), SERVICE).unwrap();
        establish(&e, &mut c, ip(1), 0);
        let (call, _) = c.call(1, PROG, VERS, COMPOUND, Service::None, b"").unwrap();
        match decide(&e, &call, ip(1), 0) {
            Decision::Data(acc) => (*acc.identity).clone(),
            other => panic!("{other:?}"),
        }
    };
    let alice = identity(&r.alice);
    assert_eq!((alice.kind, alice.uid, alice.gid), (Kind::User, 1000, 100));
    let bob = identity(&r.kdc.ccache_for("bob", SERVICE));
    assert_eq!(
        (bob.principal.as_str(), bob.kind, bob.uid, bob.gid),
        ("bob@NFS4D.TEST", Kind::Anonymous, 65534, 65534)
    );
    let root = identity(&r.kdc.ccache_for("root/localhost", SERVICE));
    assert_eq!((root.kind, root.uid, root.gid), (Kind::Root, 0, 0));
    // The machine credential: the service's own key as an initiator.
    let machine = identity(&r.kdc.ccache_for("nfs/client", SERVICE));
    assert_eq!(
        (machine.principal.as_str(), machine.kind, machine.uid),
        ("nfs/client@NFS4D.TEST", Kind::Machine, 0)
    );
}

#[test]
fn concurrent_calls_on_one_context() {
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let n = SEQ_WINDOW as usize - 8;
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let service = Service::ALL[i % 3];
            let payload = vec![i as u8; 100 + i];
            let (rec, sent) = c
                .call(i as u32, PROG, VERS, COMPOUND, service, &payload)
                .unwrap();
            (rec, sent, payload)
        })
        .collect();
    // Served from four threads in whatever order they run.
    let replies: Vec<Vec<u8>> = std::thread::scope(|s| {
        let chunks: Vec<_> = calls
            .chunks(n / 4 + 1)
            .map(|chunk| {
                let e = &e;
                s.spawn(move || {
                    chunk
                        .iter()
                        .rev()
                        .map(|(rec, _, _)| match serve(e, rec, ip(1), 1) {
                            Outcome::Reply(r) => r,
                            Outcome::Drop => panic!("dropped"),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks
            .into_iter()
            .flat_map(|h| h.join().unwrap().into_iter().rev())
            .collect()
    });
    for ((_, sent, payload), reply) in calls.iter().zip(&replies) {
        assert_eq!(c.reply(sent, reply).unwrap(), echo(payload));
    }
}

#[test]
fn missing_library_keytab_or_principal_is_a_clear_error() {
    let users = std::sync::Arc::new(common::users());
    let cfg = |library: Option<&str>, keytab: Option<&str>, principal: Option<&str>| ServerConfig {
        library: library.map(Into::into),
        keytab: keytab.map(Into::into),
        principal: principal.map(Into::into),
        ..ServerConfig::default()
    };
    let err = GssServer::new(
        &cfg(Some("/nonexistent/libgssapi_krb5.so.2"), None, None),
        users.clone(),
    )
    .expect_err("no library");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("Kerberos unavailable")
            && msg.contains("krb5/krb5i/krb5p exports cannot be served"),
        "{msg}"
    );
    assert!(msg.contains("libgssapi-krb5-2"), "{msg}");
    // A library that is not GSS-API.
    let err = GssServer::new(&cfg(Some("libc.so.6"), None, None), users.clone())
        .expect_err("not GSS-API");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("Kerberos unavailable") && msg.contains("gss_"),
        "{msg}"
    );
    // The library is there but the keytab is not, or lacks the principal.
    if common::gss().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.keytab");
    let err = GssServer::new(&cfg(None, missing.to_str(), Some(SERVICE)), users.clone())
        .expect_err("no keytab");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("cannot be served") && msg.contains("none.keytab"),
        "{msg}"
    );
    let Some(r) = realm() else { return };
    let err = GssServer::new(
        &cfg(
            None,
            r.kdc.service_keytab.to_str(),
            Some("nfs/elsewhere@NFS4D.TEST"),
        ),
        users.clone(),
    )
    .expect_err("principal not in keytab");
    eprintln!("{err}");
    let err = GssServer::new(
        &cfg(
            None,
            r.kdc.service_keytab.to_str(),
            Some("not a principal@"),
        ),
        users,
    )
    .expect_err("bad principal");
    eprintln!("{err}");
}

#[test]
fn wrap_cost_for_one_mebibyte() {
    // Figures only (the machine is shared): no timing assertions.
    let Some(r) = realm() else { return };
    let e = engine(&r.kdc, Limits::default());
    let mut c = ready(&r, &e, ip(1));
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31) as u8).collect();
    const N: u32 = 8;
    for service in Service::ALL {
        let (mut client_wrap, mut server_unwrap, mut server_wrap, mut client_unwrap) =
            (0f64, 0f64, 0f64, 0f64);
        for i in 0..N {
            let t = Instant::now();
            let (call, sent) = c.call(i, PROG, VERS, COMPOUND, service, &payload).unwrap();
            client_wrap += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let d = decide(&e, &call, ip(1), 1);
            server_unwrap += t.elapsed().as_secs_f64();
            let Decision::Data(acc) = d else {
                panic!("{d:?}")
            };
            assert_eq!(acc.args.len(), payload.len());
            let t = Instant::now();
            let reply = acc.reply_record(i, &payload);
            server_wrap += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let back = c.reply(&sent, &reply).unwrap();
            client_unwrap += t.elapsed().as_secs_f64();
            assert!(back == payload);
        }
        let ms = |s: f64| s * 1000.0 / f64::from(N);
        eprintln!(
            "1 MiB {:<6} per call: client protect {:.2} ms, server accept+unprotect {:.2} ms, server reply {:.2} ms, client check {:.2} ms",
            service.name(),
            ms(client_wrap),
            ms(server_unwrap),
            ms(server_wrap),
            ms(client_unwrap)
        );
    }
}
