//! Exactly-once semantics without a network: a 4.1 retransmission on the
//! same slot and sequence id is answered from the slot's cache (RFC 8881
//! §2.10.6.1.3), a 4.0 retransmission of an open owner's last request from
//! the owner's replay cache (RFC 7530 §9.1.9) — byte for byte, without
//! running the operation again.

use nfs4d_testkit::inproc::Harness;
use nfs4d_testkit::ops::*;
use nfs4d_xdr::nfs4::*;

fn create(c: &nfs4d_testkit::Client, seqid: u32, name: &str) -> Vec<nfs_argop4> {
    vec![
        nfs_argop4::OP_PUTROOTFH,
        open_op(
            c.clientid,
            b"owner",
            seqid,
            OPEN4_SHARE_ACCESS_BOTH,
            create_unchecked(),
            claim_null(name),
        ),
        nfs_argop4::OP_GETFH,
    ]
}

#[test]
fn a_41_retransmission_gets_the_cached_reply() {
    let h = Harness::new();
    let mut c = h.client(1);
    c.establish41(b"replayer").unwrap();
    let first = c.compound(create(&c, 0, "f")).unwrap();
    check(&first, "OPEN").unwrap();
    // Same slot, same sequence id: a retransmission.
    c.seqids[0] = c.seqids[0].wrapping_sub(1);
    let again = c.compound(create(&c, 0, "f")).unwrap();
    assert_eq!(again, first, "the cached reply, stateid and all");
    // Had the OPEN run again, the open owner's stateid would have moved on.
    let next = c.compound(create(&c, 0, "f")).unwrap();
    let (s1, s2) = (open_ok(&first).unwrap(), open_ok(&next).unwrap());
    assert_eq!(s1.stateid.other, s2.stateid.other);
    assert_eq!(s2.stateid.seqid, s1.stateid.seqid + 1);
    // A sequence id that skips ahead is misordered.
    c.seqids[0] = c.seqids[0].wrapping_add(5);
    let r = c.compound(vec![nfs_argop4::OP_PUTROOTFH]).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_SEQ_MISORDERED);
}

#[test]
fn a_40_retransmission_of_an_owners_last_request_is_replayed() {
    let h = Harness::new();
    let mut c = h.client(0);
    c.establish40(b"replayer40").unwrap();
    let first = c.compound(create(&c, 1, "g")).unwrap();
    check(&first, "OPEN").unwrap();
    let again = c.compound(create(&c, 1, "g")).unwrap();
    assert_eq!(again, first, "replayed from the open owner");
    // An older seqid is out of order.
    let r = c.compound(create(&c, 0, "g")).unwrap();
    assert_eq!(r.status, nfsstat4::NFS4ERR_BAD_SEQID);
}
