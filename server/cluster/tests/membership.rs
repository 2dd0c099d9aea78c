//! Membership, takeover detection and fencing against a real etcd
//! cluster. Head A reaches etcd through `Blackhole` forwarders, so the test
//! can cut A alone off while B keeps its connection.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfs4d_cluster::testing::{Blackhole, EtcdCluster};
use nfs4d_cluster::{ClusterError, ClusterIdentity, Etcd, EtcdKv, FenceState, Membership};
use nfs4d_kv::{Kv, KvError};

/// Lease of these tests: etcd's smallest useful one (see MIN_LEASE_SECS).
const LEASE: u64 = 3;

#[test]
fn registration_is_exclusive_and_listed() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let etcd = Etcd::connect(&c.config("m", "a", LEASE)).expect("connect");
    let a = Membership::join(&etcd, &c.config("m", "a", LEASE), "127.0.0.1:2049").expect("join");
    assert!(a.is_serving());
    assert_eq!(a.state(), FenceState::Serving);
    // A second process with the same head id is refused while A lives.
    let other = Etcd::connect(&c.config("m", "a", LEASE)).expect("connect");
    match Membership::join(&other, &c.config("m", "a", LEASE), "127.0.0.9:2049") {
        Err(ClusterError::HeadInUse { head, lease }) => {
            assert_eq!(head, "a");
            assert_eq!(lease, a.lease());
        }
        other => panic!(
            "second registration of one id: {:?}",
            other.map(|m| m.lease())
        ),
    }
    let b = Membership::join(&other, &c.config("m", "b", LEASE), "127.0.0.2:2049").expect("join b");
    let heads = b.heads().expect("heads");
    let listed: Vec<(&str, &str)> = heads
        .iter()
        .map(|h| (h.head.as_str(), h.addr.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![("a", "127.0.0.1:2049"), ("b", "127.0.0.2:2049")]
    );
    // Renewals keep A serving well past its lease.
    std::thread::sleep(Duration::from_secs(LEASE + 2));
    assert!(a.is_serving() && b.is_serving());
    // Both heads advertise one server identity (RFC 8881 §2.10.4).
    let ia = ClusterIdentity::ensure(&etcd, "m").expect("identity");
    let ib = ClusterIdentity::ensure(&other, "m").expect("identity");
    assert_eq!(ia, ib);
    assert!(!ia.major_id.is_empty() && !ia.scope.is_empty());
    assert_ne!(
        ClusterIdentity::ensure(&etcd, "other").expect("identity"),
        ia
    );
    // Bad input.
    assert!(matches!(
        Membership::join(&etcd, &c.config("m", "c", LEASE), "bad\naddr"),
        Err(ClusterError::Config(_))
    ));
    assert!(matches!(
        a.claim_address("x/y"),
        Err(ClusterError::Config(_))
    ));
    a.leave().expect("leave");
    // Leaving frees the id at once.
    let again =
        Membership::join(&etcd, &c.config("m", "a", LEASE), "127.0.0.1:2049").expect("rejoin");
    assert!(again.is_serving());
}

#[test]
fn a_dead_head_is_reported_after_its_lease_and_a_leaving_one_at_once() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let eb = Etcd::connect(&c.config("d", "b", LEASE)).expect("connect");
    let b = Membership::join(&eb, &c.config("d", "b", LEASE), "127.0.0.2:2049").expect("join b");
    let mut watch = b.watch_heads();
    let first = watch
        .next_change(Duration::from_secs(5))
        .expect("initial view");
    assert_eq!(first.joined.len(), 1);

    let ea = Etcd::connect(&c.config("d", "a", LEASE)).expect("connect");
    let a = Membership::join(&ea, &c.config("d", "a", LEASE), "127.0.0.1:2049").expect("join a");
    let joined = watch.next_change(Duration::from_secs(5)).expect("a joined");
    assert_eq!(
        joined
            .joined
            .iter()
            .map(|h| h.head.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );

    // A dies: no more renewals (its process is gone; here its connection
    // and tasks are dropped without revoking the lease).
    let died = Instant::now();
    drop(a);
    drop(ea);
    let change = watch
        .next_change(Duration::from_secs(LEASE + 10))
        .expect("a vanished");
    let detected = died.elapsed();
    println!("dead head detected after {detected:?} (lease {LEASE} s)");
    assert_eq!(
        change
            .vanished
            .iter()
            .map(|h| h.head.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert!(
        detected >= Duration::from_secs(LEASE) - Duration::from_millis(600),
        "before the lease ran out: {detected:?}"
    );
    assert!(detected < Duration::from_secs(LEASE + 3), "{detected:?}");

    // A clean departure is reported at once.
    let ec = Etcd::connect(&c.config("d", "c", LEASE)).expect("connect");
    let cm = Membership::join(&ec, &c.config("d", "c", LEASE), "127.0.0.3:2049").expect("join c");
    watch.next_change(Duration::from_secs(5)).expect("c joined");
    let left = Instant::now();
    cm.leave().expect("leave");
    let change = watch.next_change(Duration::from_secs(5)).expect("c left");
    assert_eq!(change.vanished.len(), 1);
    println!("clean departure seen after {:?}", left.elapsed());
    assert!(left.elapsed() < Duration::from_secs(2));
    // And B itself is still there.
    let (live, current) = watch.live();
    assert!(current);
    assert_eq!(
        live.iter().map(|h| h.head.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
}

/// A configuration for head `head` that reaches every member through a
/// forwarder the test can cut.
fn behind_blackholes(
    c: &EtcdCluster,
    head: &str,
) -> (nfs4d_cluster::ClusterConfig, Vec<Blackhole>) {
    let holes: Vec<Blackhole> = c.endpoints().iter().map(|e| Blackhole::start(e)).collect();
    let mut cfg = c.config("f", head, LEASE);
    cfg.etcd = holes.iter().map(Blackhole::url).collect();
    (cfg, holes)
}

#[test]
fn two_heads_never_both_own_one_address() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let (cfg_a, holes) = behind_blackholes(&c, "a");
    let ea = Etcd::connect(&cfg_a).expect("connect a");
    let a = Arc::new(Membership::join(&ea, &cfg_a, "127.0.0.1:2049").expect("join a"));
    assert_eq!(a.claim_address("a"), Ok(true));
    let kv_a = EtcdKv::new(&ea, "f").expect("kv").fenced(a.fence());
    kv_a.tree("t")
        .expect("tree")
        .insert(b"k", b"a")
        .expect("fenced write while serving");

    let eb = Etcd::connect(&c.config("f", "b", LEASE)).expect("connect b");
    let b = Arc::new(
        Membership::join(&eb, &c.config("f", "b", LEASE), "127.0.0.2:2049").expect("join b"),
    );
    assert_eq!(b.claim_address("b"), Ok(true));
    // B cannot take A's address while A lives.
    assert_eq!(b.claim_address("a"), Ok(false));
    let mut watch = b.watch_heads();
    watch
        .next_change(Duration::from_secs(5))
        .expect("initial view");

    // A referee samples both beliefs the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let referee = {
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut samples = 0u64;
            let mut a_stopped: Option<Instant> = None;
            let mut b_started: Option<Instant> = None;
            while !stop.load(Ordering::Acquire) {
                let (ab, bb) = (a.owns_address("a"), b.owns_address("a"));
                assert!(!(ab && bb), "both heads believe they own a's address");
                if !ab && a_stopped.is_none() {
                    a_stopped = Some(Instant::now());
                }
                if bb && b_started.is_none() {
                    b_started = Some(Instant::now());
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (samples, a_stopped, b_started)
        })
    };

    // A is cut off from etcd.
    let cut = Instant::now();
    holes.iter().for_each(Blackhole::cut);
    // B takes over as soon as A's registration is gone.
    let vanished = loop {
        let change = watch
            .next_change(Duration::from_secs(LEASE + 10))
            .expect("a vanished");
        if let Some(h) = change.vanished.into_iter().find(|h| h.head == "a") {
            break h;
        }
    };
    let detected = cut.elapsed();
    assert_eq!(vanished.addr, "127.0.0.1:2049");
    assert_eq!(b.claim_address("a"), Ok(true), "b takes over a's address");
    let took_over = cut.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Release);
    let (samples, a_stopped, b_started) = referee.join().expect("referee");
    let a_stopped = a_stopped.expect("a stopped").duration_since(cut);
    let b_started = b_started.expect("b started").duration_since(cut);
    println!(
        "fencing: a stopped serving {a_stopped:?} after the cut, b saw a vanish after {detected:?}, \
         owned its address after {took_over:?} (referee: {samples} samples, never both)"
    );
    assert!(
        a_stopped <= Duration::from_millis(LEASE * 1000 / 2 + 300),
        "a fenced late: {a_stopped:?}"
    );
    assert!(a_stopped < b_started);
    assert_ne!(a.state(), FenceState::Serving);

    // Healed, A learns its lease is gone and stays out; its writes are
    // refused by etcd itself.
    holes.iter().for_each(Blackhole::heal);
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.state() != FenceState::Lost && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(a.state(), FenceState::Lost);
    assert!(!a.owns_address("a"));
    match kv_a.tree("t").expect("tree").insert(b"k", b"stale a") {
        Err(KvError::Unavailable(m)) => assert!(m.contains("fenced"), "{m}"),
        other => panic!("fenced write: {other:?}"),
    }
    assert!(matches!(a.claim_address("a"), Err(ClusterError::Fenced(_))));
    let kv_b = EtcdKv::new(&eb, "f").expect("kv");
    assert_eq!(
        kv_b.tree("t").expect("tree").get(b"k"),
        Ok(Some(b"a".to_vec()))
    );
    // A restarted A registers anew but cannot take its address back until
    // B releases it (failback).
    let a2 = Membership::join(&ea, &cfg_a, "127.0.0.1:2049").expect("rejoin");
    assert_eq!(a2.claim_address("a"), Ok(false));
    b.release_address("a").expect("release");
    assert!(!b.owns_address("a"));
    assert_eq!(a2.claim_address("a"), Ok(true));
}

#[test]
fn lost_quorum_fences_every_head_and_its_return_unfences_them() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    // A longer lease, so quorum can return before the leases expire.
    let lease = 10;
    let e = Etcd::connect(&c.config("q", "a", lease)).expect("connect");
    let a = Membership::join(&e, &c.config("q", "a", lease), "127.0.0.1:2049").expect("join");
    assert_eq!(a.claim_address("a"), Ok(true));
    let killed = c.lose_quorum();
    let lost = Instant::now();
    while a.is_serving() && lost.elapsed() < Duration::from_secs(lease) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let fenced = lost.elapsed();
    println!("quorum lost: head stopped serving after {fenced:?} (lease {lease} s)");
    assert!(!a.is_serving());
    assert!(fenced <= Duration::from_millis(lease * 1000 / 2 + 300));
    assert_eq!(a.state(), FenceState::Suspended);
    c.restore(&killed);
    let back = Instant::now();
    // etcd extends every lease when a new leader takes over, so the
    // renewal gets through and the head serves again without rejoining.
    while !a.is_serving() && back.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "quorum restored: head serving again after {:?}",
        back.elapsed()
    );
    assert!(a.is_serving());
    assert!(a.owns_address("a"));
}
