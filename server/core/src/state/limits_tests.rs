//! The state table's bounds against a hostile client: client records,
//! open/lock owners, byte-range splits and per-connection bookkeeping stay
//! within their limits however many requests arrive.

use std::sync::Arc;

use super::client::{Callback40, Principal};
use super::open::{Share, ACCESS_BOTH};
use super::session::{Channel, CreateOutcome, CreateSession};
use super::*;
use crate::clock::ManualClock;
use crate::config::Limits;
use nfs4d_fhmap::ObjectId;

fn sm(limits: Limits) -> StateManager {
    StateManager::new(
        Arc::new(ManualClock::default()),
        10,
        7,
        limits,
        Arc::new(crate::state::deleg::NoCallbacks),
    )
}

fn client40(sm: &StateManager, owner: &[u8]) -> ClientId {
    let ok = sm
        .setclientid(owner, [1; 8], Principal::Uid(0), Callback40::default())
        .unwrap();
    sm.setclientid_confirm(ok.clientid, ok.confirm, &Principal::Uid(0))
        .unwrap();
    ok.clientid
}

fn both() -> Share {
    Share {
        access: ACCESS_BOTH,
        deny: 0,
    }
}

#[test]
fn unconfirmed_client_flood_stays_within_max_clients() {
    let sm = sm(Limits {
        max_clients: 8,
        ..Limits::default()
    });
    let keep = client40(&sm, b"real");
    for i in 0..10_000u32 {
        let owner = format!("flood-{i}");
        if i % 2 == 0 {
            sm.setclientid(
                owner.as_bytes(),
                [2; 8],
                Principal::Uid(1),
                Callback40::default(),
            )
            .unwrap();
        } else {
            sm.exchange_id(
                owner.as_bytes(),
                [2; 8],
                Principal::Uid(1),
                false,
                String::new(),
            )
            .unwrap();
        }
        assert!(sm.lock().clients.len() <= 8);
    }
    sm.renew(keep).unwrap();
    // Only confirmed clients left: refused.
    for i in 0..7 {
        client40(&sm, format!("c{i}").as_bytes());
    }
    assert_eq!(
        sm.setclientid(b"late", [1; 8], Principal::Uid(0), Callback40::default()),
        Err(NfsError::Resource)
    );
}

#[test]
fn owners_of_failed_requests_stay_within_the_limit() {
    let sm = sm(Limits {
        max_owners_per_client: 16,
        ..Limits::default()
    });
    let c = client40(&sm, b"c");
    // Every new 4.0 owner id the client sends is checked, then recorded
    // with the reply of its (failed) request.
    for i in 0..5_000u32 {
        let owner = (c, i.to_be_bytes().to_vec());
        assert_eq!(
            sm.check_owner_seqid(OwnerKind::Open, &owner, 0),
            Ok(SeqCheck::Next)
        );
        sm.record_seqid(OwnerKind::Open, owner, 0, vec![0; 8]);
        assert!(sm.lock().open_owners.len() <= 16);
    }
    // Owners holding state are never forgotten: at the limit a new owner
    // is refused instead.
    let sm = sm_with_owners(4);
    let c = client40(&sm, b"d");
    for i in 0..4u8 {
        sm.open(
            c,
            (c, vec![i]),
            (0, ObjectId(u64::from(i) + 10)),
            both(),
            true,
        )
        .unwrap();
    }
    assert_eq!(
        sm.check_owner_seqid(OwnerKind::Open, &(c, vec![99]), 0),
        Err(NfsError::Resource)
    );
    assert!(sm
        .open(c, (c, vec![98]), (0, ObjectId(50)), both(), true)
        .is_err());
}

fn sm_with_owners(n: u32) -> StateManager {
    sm(Limits {
        max_owners_per_client: n,
        ..Limits::default()
    })
}

#[test]
fn owners_of_41_clients_go_with_their_last_state() {
    let sm = sm(Limits::default());
    let x = sm
        .exchange_id(b"o41", [1; 8], Principal::Uid(0), false, String::new())
        .unwrap();
    StateManager::confirm41(&mut sm.lock(), x.clientid);
    for i in 0..1000u32 {
        let owner = (x.clientid, i.to_be_bytes().to_vec());
        let o = sm
            .open(x.clientid, owner, (0, ObjectId(3)), both(), true)
            .unwrap();
        sm.close(&o.stateid.other).unwrap();
    }
    let g = sm.lock();
    assert!(
        g.open_owners.is_empty(),
        "{} owners left",
        g.open_owners.len()
    );
    assert!(g.states.is_empty());
}

#[test]
fn unlock_splits_are_bounded() {
    let sm = sm(Limits {
        max_locks_per_owner: 3,
        ..Limits::default()
    });
    let c = client40(&sm, b"l");
    let file = (0, ObjectId(9));
    let open = sm.open(c, (c, b"oo".to_vec()), file, both(), true).unwrap();
    let lo = (c, b"lo".to_vec());
    let sid = sm
        .lock_range(
            c,
            lo.clone(),
            file,
            open.stateid.other,
            0,
            u64::MAX,
            LockType::Write,
        )
        .unwrap();
    // Punching holes: 1 → 2 → 3 ranges, then the split is refused.
    sm.unlock_range(&sid.other, 10, 19).unwrap();
    sm.unlock_range(&sid.other, 30, 39).unwrap();
    assert_eq!(
        sm.unlock_range(&sid.other, 50, 59),
        Err(NfsError::LockRange)
    );
    assert_eq!(sm.lock().owner_ranges(file, &lo), 3);
    // Unlocking a whole range never needs room.
    sm.unlock_range(&sid.other, 0, 9).unwrap();
    assert_eq!(sm.lock().owner_ranges(file, &lo), 2);
}

#[test]
fn closed_connections_leave_no_trace_in_sessions() {
    let sm = sm(Limits::default());
    let x = sm
        .exchange_id(b"s", [1; 8], Principal::Uid(0), false, String::new())
        .unwrap();
    let chan = Channel {
        max_request: 1 << 20,
        max_response: 1 << 20,
        max_response_cached: 8192,
        max_ops: 16,
        max_requests: 4,
    };
    let args = CreateSession {
        clientid: x.clientid,
        seq: x.seq,
        flags: 0,
        fore: chan,
        back: chan,
        cb_program: 1,
        cb_cred: nfs4d_xdr::rpc::Credential::None,
        minor: 1,
    };
    let CreateOutcome::Created(s) = sm
        .create_session(&args, &Principal::Uid(0), 1, None)
        .unwrap()
    else {
        panic!("no session")
    };
    // A client reconnecting over and over: each connection joins the
    // session through SEQUENCE and leaves when it closes.
    for conn in 2..2000u64 {
        let seqid = conn as u32 - 1;
        assert!(matches!(
            sm.sequence(&s.id, 0, seqid, conn),
            Ok(session::SeqOutcome::New { .. })
        ));
        sm.slot_done(&s.id, 0, None);
        sm.connection_closed(conn);
    }
    assert_eq!(sm.session(&s.id).unwrap().conns, vec![1]);
}
