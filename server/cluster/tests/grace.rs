//! The grace database and the client records in a real etcd cluster:
//! transitions by concurrent heads, fenced updates, change notification,
//! per-epoch client databases and their pruning.

use std::time::Duration;

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_cluster::{ClientRecords, ClusterError, Etcd, Grace, Membership};

const LEASE: u64 = 3;

#[test]
fn grace_transitions_follow_the_cluster_rules() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let heads = ["a", "b", "c"];
    let conns: Vec<Etcd> = heads
        .iter()
        .map(|h| Etcd::connect(&c.config("g", h, LEASE)).expect("connect"))
        .collect();
    let graces: Vec<Grace> = conns
        .iter()
        .map(|e| Grace::new(e, "g").expect("grace"))
        .collect();
    // All three join at once: concurrent read-modify-writes lose nothing.
    std::thread::scope(|s| {
        for (g, h) in graces.iter().zip(heads) {
            s.spawn(move || g.update(|db| db.add(h)).expect("add"));
        }
    });
    let (db, rev) = graces[0].load().expect("load");
    assert_eq!(db.heads.len(), 3);
    assert!(!db.in_grace());

    // b restarts and needs grace; the others learn it from a watch.
    let waiter = {
        let g = graces[2].clone();
        std::thread::spawn(move || g.wait_change(rev, Duration::from_secs(5)))
    };
    std::thread::sleep(Duration::from_millis(100));
    let ((), db) = graces[1].update(|db| db.start("b")).expect("start");
    assert_eq!((db.current, db.recovery), (2, 1));
    let seen = waiter
        .join()
        .expect("waiter")
        .expect("watch")
        .expect("a change");
    assert!(seen.0.in_grace(), "c saw grace start");
    assert!(!db.all_enforcing(heads), "a and c do not enforce yet");
    // a and c enforce, concurrently.
    std::thread::scope(|s| {
        for i in [0, 2] {
            let g = &graces[i];
            s.spawn(move || g.update(|db| db.enforce(heads[i])).expect("enforce"));
        }
    });
    let (db, _) = graces[0].load().expect("load");
    assert!(db.all_enforcing(heads), "b may now let its clients reclaim");
    assert!(db.may_reclaim("b") && !db.may_reclaim("a"));
    // c restarts during b's grace: it joins, same epoch.
    graces[2].update(|db| db.join("c")).expect("join");
    // Refused transitions change nothing.
    assert!(matches!(
        graces[0].update(|db| db.stop_enforcing("a")),
        Err(ClusterError::Grace(_))
    ));
    assert!(
        !graces[1].update(|db| db.lift("b")).expect("lift").0,
        "c still needs grace"
    );
    let (lifted, db) = graces[2].update(|db| db.lift("c")).expect("lift");
    assert!(lifted && !db.in_grace());
    assert_eq!((db.current, db.recovery), (2, 0));
    for (g, h) in graces.iter().zip(heads) {
        g.update(|db| db.stop_enforcing(h)).expect("stop enforcing");
    }
    let (db, _) = graces[0].load().expect("load");
    assert!(heads.iter().all(|h| db.may_grant(h)));
}

#[test]
fn grace_updates_and_client_records_are_fenced_by_registration() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let e = Etcd::connect(&c.config("gf", "a", LEASE)).expect("connect");
    let m = Membership::join(&e, &c.config("gf", "a", LEASE), "127.0.0.1:2049").expect("join");
    let grace = Grace::new(&e, "gf").expect("grace").fenced(m.fence());
    let records = ClientRecords::new(&e, "gf")
        .expect("records")
        .fenced(m.fence());
    grace
        .update(|db| db.start("a"))
        .expect("fenced update while registered");
    records
        .put("a", 2, b"client-1", b"rec")
        .expect("fenced put while registered");
    m.leave().expect("leave");
    assert!(matches!(
        grace.update(|db| db.lift("a")),
        Err(ClusterError::Fenced(_))
    ));
    assert!(matches!(
        records.put("a", 2, b"client-2", b"rec"),
        Err(ClusterError::Fenced(_))
    ));
    let (db, _) = Grace::new(&e, "gf").expect("grace").load().expect("load");
    assert!(db.in_grace(), "the refused lift changed nothing");
    let plain = ClientRecords::new(&e, "gf").expect("records");
    assert_eq!(plain.get("a", 2, b"client-2"), Ok(None));
}

#[test]
fn client_records_per_head_and_epoch() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let e = Etcd::connect(&c.config("cr", "a", LEASE)).expect("connect");
    let r = ClientRecords::new(&e, "cr").expect("records");
    let grace = Grace::new(&e, "cr").expect("grace");
    // Epoch 1: a has two clients, b one (binary client keys).
    r.put("a", 1, b"\x00owner-1", b"r1").expect("put");
    r.put("a", 1, b"\x01owner-2\xff", b"r2").expect("put");
    r.put("b", 1, b"owner-3", b"r3").expect("put");
    assert_eq!(r.list("a", 1).expect("list").len(), 2);
    r.remove("a", 1, b"\x00owner-1").expect("remove");
    assert_eq!(
        r.list("a", 1).expect("list"),
        vec![(b"\x01owner-2\xff".to_vec(), b"r2".to_vec())]
    );
    // Epoch 0x10 sorts after epoch 2 (fixed-width keys).
    r.put("a", 2, b"x", b"r").expect("put");
    r.put("a", 0x10, b"y", b"r").expect("put");
    assert_eq!(r.epochs("a").expect("epochs"), vec![1, 2, 0x10]);
    r.remove("a", 2, b"x").expect("remove");
    r.remove("a", 0x10, b"y").expect("remove");

    // a dies; b takes over: reclaims of a's clients are checked against
    // a's database of the recovery epoch.
    let ((), db) = grace.update(|db| db.take_over("b", "a")).expect("takeover");
    assert_eq!(db.recovery, 1);
    assert_eq!(r.may_reclaim(&db, "a", b"\x01owner-2\xff"), Ok(true));
    assert_eq!(
        r.may_reclaim(&db, "a", b"\x00owner-1"),
        Ok(false),
        "removed client"
    );
    assert_eq!(
        r.may_reclaim(&db, "a", b"owner-3"),
        Ok(false),
        "b's client, not a's"
    );
    // b carries its own clients into the new epoch and records the
    // reclaimed one there too.
    assert_eq!(r.carry_over("b", 1, db.current), Ok(1));
    r.put("b", db.current, b"\x01owner-2\xff", b"r2")
        .expect("put");
    // During grace only databases older than R go.
    assert_eq!(r.prune("b", &db).expect("prune"), Vec::<u64>::new());
    let ((), db) = grace.update(|db| db.lift("b").map(|_| ())).expect("lift");
    assert!(!db.in_grace());
    assert_eq!(
        r.may_reclaim(&db, "b", b"owner-3"),
        Ok(false),
        "no reclaim outside grace"
    );
    // After grace only the current epoch stays.
    assert_eq!(r.prune("b", &db).expect("prune"), vec![1]);
    assert_eq!(r.epochs("b").expect("epochs"), vec![db.current]);
    assert_eq!(r.list("b", db.current).expect("list").len(), 2);
    // Bad input.
    assert!(matches!(
        r.put("a/b", 1, b"k", b"v"),
        Err(ClusterError::Config(_))
    ));
    assert!(matches!(
        r.put("a", 1, &vec![0; 5000], b"v"),
        Err(ClusterError::Refused(_))
    ));
}
