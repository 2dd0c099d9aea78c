//! Leases on the injected clock (RFC 8881 §8.3, RFC 7530 §9.5): time moves
//! only when a test moves it, so expiry, renewal and the courtesy period are
//! checked exactly, with no sleeps.

use std::time::Duration;

use nfs4d_testkit::inproc::{config, Harness};
use nfs4d_testkit::ops::*;
use nfs4d_testkit::Client;
use nfs4d_xdr::nfs4::*;

const LEASE: Duration = Duration::from_secs(10);

/// OPEN of `name` in the root with the given share access and deny, by a
/// 4.1 client.
fn open_shared(c: &mut Client, owner: &[u8], name: &str, deny: u32) -> COMPOUND4res {
    let mut op = open_op(
        c.clientid,
        owner,
        0,
        OPEN4_SHARE_ACCESS_BOTH,
        create_unchecked(),
        claim_null(name),
    );
    if let nfs_argop4::OP_OPEN(a) = &mut op {
        a.share_deny = deny;
    }
    c.compound(vec![nfs_argop4::OP_PUTROOTFH, op, nfs_argop4::OP_GETFH])
        .unwrap()
}

#[test]
fn a_renewed_lease_holds_and_an_expired_one_yields_to_a_conflict() {
    let h = Harness::new();
    let mut a = h.client(1);
    a.establish41(b"holder").unwrap();
    check(
        &open_shared(&mut a, b"oa", "f", OPEN4_SHARE_DENY_BOTH),
        "OPEN",
    )
    .unwrap();
    let mut b = h.client(1);
    b.establish41(b"contender").unwrap();
    let denied = open_shared(&mut b, b"ob", "f", OPEN4_SHARE_DENY_NONE);
    assert_eq!(denied.status, nfsstat4::NFS4ERR_SHARE_DENIED);

    // Renewed halfway, the holder's lease outlasts the first lease period
    // (the contender renews too: each OPEN attempt does).
    h.advance(LEASE / 2);
    a.renew().unwrap();
    b.renew().unwrap();
    h.advance(LEASE / 2 + Duration::from_secs(1));
    h.tick();
    let still = open_shared(&mut b, b"ob", "f", OPEN4_SHARE_DENY_NONE);
    assert_eq!(
        still.status,
        nfsstat4::NFS4ERR_SHARE_DENIED,
        "lease renewed"
    );

    // Not renewed: past its lease the holder is a courtesy client, and
    // the conflicting OPEN expires it on the spot (RFC 8881 §8.3).
    h.advance(LEASE / 2);
    b.renew().unwrap();
    h.advance(LEASE / 2);
    h.tick();
    check(
        &open_shared(&mut b, b"ob", "f", OPEN4_SHARE_DENY_NONE),
        "OPEN after expiry",
    )
    .unwrap();
    let gone = a.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(
        gone.status,
        nfsstat4::NFS4ERR_BADSESSION,
        "its session went with its state"
    );
}

#[test]
fn an_uncontested_courtesy_client_keeps_its_state_until_the_courtesy_time() {
    let h = Harness::with_config(config("courtesy_time = 60"));
    let mut a = h.client(1);
    a.establish41(b"sleeper").unwrap();
    let r = open_shared(&mut a, b"oa", "f", OPEN4_SHARE_DENY_NONE);
    check(&r, "OPEN").unwrap();
    let (fh, sid) = (fh_of(&r).unwrap(), open_ok(&r).unwrap().stateid.clone());

    // Asleep through several leases: nobody wants the file, the client
    // comes back and finds its open (a renewal makes it ordinary again).
    h.advance(LEASE * 3);
    h.tick();
    let r = a
        .compound(vec![
            putfh(&fh),
            write(&sid, 0, stable_how4::UNSTABLE4, b"x".to_vec()),
        ])
        .unwrap();
    check(&r, "WRITE by a courtesy client that came back").unwrap();

    // Past the courtesy time its state goes even without a conflict.
    h.advance(LEASE);
    h.tick();
    h.advance(Duration::from_secs(61));
    h.tick();
    let r = a.compound(vec![putfh(&fh)]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BADSESSION);
}

#[test]
fn a_40_client_that_stops_renewing_loses_its_state() {
    let h = Harness::with_config(config("courtesy_time = 60"));
    let mut c = h.client(0);
    c.establish40(b"forty").unwrap();
    h.advance(LEASE / 2);
    c.renew().unwrap();
    h.advance(LEASE / 2 + Duration::from_secs(1));
    h.tick();
    c.renew().unwrap();
    // A client without state is not kept as a courtesy client: at the
    // tick after its lease it is gone, and RENEW says so (RFC 7530
    // §16.30.5).
    h.advance(LEASE + Duration::from_secs(1));
    h.tick();
    let r = c
        .compound_raw(vec![nfs_argop4::OP_RENEW(RENEW4args {
            clientid: c.clientid,
        })])
        .unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_EXPIRED);
}
