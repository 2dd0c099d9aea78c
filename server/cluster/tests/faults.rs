//! Faults of etcd seen through `EtcdKv`: a member killed or hung with the
//! quorum kept changes nothing; a lost quorum gives `Unavailable` within
//! the request deadline, never a hang; the same connection recovers by
//! itself when the quorum returns.

use std::time::{Duration, Instant};

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_cluster::{ClusterConfig, Etcd, EtcdKv};
use nfs4d_kv::{Kv, KvError, Tree};

/// Request deadline of these tests (`EtcdCluster::config` with a 6 s
/// lease): longer than an etcd election (1 to 2 election timeouts of 1 s),
/// so a hung leader is ridden through.
const DEADLINE: Duration = Duration::from_millis(3000);
/// What a failing call may take beyond the deadline (scheduling on a
/// loaded machine).
const SLACK: Duration = Duration::from_millis(1500);

fn connect(c: &EtcdCluster) -> EtcdKv {
    let cfg = c.config("faults", "a", 6);
    assert_eq!(cfg.request_timeout(), DEADLINE);
    let etcd = Etcd::connect(&cfg).expect("connect");
    EtcdKv::new(&etcd, "faults").expect("kv")
}

/// Runs `n` put+get rounds and returns the slowest round.
fn rounds(t: &dyn Tree, tag: &str, n: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for i in 0..n {
        let s = Instant::now();
        let k = format!("{tag}-{i}");
        t.insert(k.as_bytes(), b"v")
            .unwrap_or_else(|e| panic!("{tag}: put {i}: {e}"));
        assert_eq!(
            t.get(k.as_bytes()),
            Ok(Some(b"v".to_vec())),
            "{tag}: get {i}"
        );
        worst = worst.max(s.elapsed());
    }
    worst
}

#[test]
fn a_member_lost_with_quorum_kept_changes_nothing() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    let kv = connect(&c);
    let t = kv.tree("t").expect("tree");
    rounds(t.as_ref(), "before", 10);
    // Member 0 is the one the connection starts pinned to.
    c.kill(0);
    let worst = rounds(t.as_ref(), "killed", 50);
    println!("member killed: slowest put+get {worst:?}");
    assert!(worst < DEADLINE, "one dead member cost {worst:?}");
    // Back, and then another member hangs (SIGSTOP): accepted TCP
    // connections that never answer are the harder case.
    c.restart(0);
    assert!(
        c.wait_healthy(Duration::from_secs(20)),
        "member 0 did not rejoin"
    );
    for m in 0..3 {
        let leader = c.is_leader(m);
        c.pause(m);
        let tag = format!("paused{m}");
        if leader {
            // The others elect a new leader after one to two election
            // timeouts, which on a loaded machine can outlast a request's
            // deadline: a call meanwhile may end Unavailable (the server
            // answers DELAY, and the client retries), never hang.
            let (slowest, failed) = rounds_retrying(t.as_ref(), &tag, 20);
            println!(
                "member {m}, the leader, hung: {failed} calls Unavailable, the slowest failure took {slowest:?}"
            );
            assert!(slowest < DEADLINE + SLACK, "a failure took {slowest:?}");
        } else {
            let worst = rounds(t.as_ref(), &tag, 20);
            println!("member {m} hung: slowest put+get {worst:?}");
            assert!(worst < DEADLINE + SLACK, "hung member {m} cost {worst:?}");
        }
        c.resume(m);
        assert!(
            c.wait_healthy(Duration::from_secs(20)),
            "member {m} did not recover"
        );
    }
    // Nothing written was lost.
    for tag in ["before", "killed", "paused0", "paused1", "paused2"] {
        assert_eq!(
            t.get(format!("{tag}-0").as_bytes()),
            Ok(Some(b"v".to_vec()))
        );
    }
}

/// Like [`rounds`], but a call that fails with `Unavailable` is made
/// again (for up to 20 s); returns the slowest failed call and how many
/// failed.
fn rounds_retrying(t: &dyn Tree, tag: &str, n: usize) -> (Duration, usize) {
    let mut slowest = Duration::ZERO;
    let mut failed = 0;
    let mut again = |what: &str, op: &mut dyn FnMut() -> Result<Option<Vec<u8>>, KvError>| {
        let start = Instant::now();
        loop {
            let s = Instant::now();
            match op() {
                Err(KvError::Unavailable(_)) if start.elapsed() < Duration::from_secs(20) => {
                    failed += 1;
                    slowest = slowest.max(s.elapsed());
                }
                r => return r.unwrap_or_else(|e| panic!("{what}: {e}")),
            }
        }
    };
    for i in 0..n {
        let k = format!("{tag}-{i}");
        again(&format!("{tag}: put {i}"), &mut || {
            t.insert(k.as_bytes(), b"v").map(|()| None)
        });
        let v = again(&format!("{tag}: get {i}"), &mut || t.get(k.as_bytes()));
        assert_eq!(v, Some(b"v".to_vec()), "{tag}: get {i}");
    }
    (slowest, failed)
}

/// Asserts `op` fails with `Unavailable` within the deadline; returns how
/// long it took.
fn unavailable<T: std::fmt::Debug>(
    what: &str,
    op: impl FnOnce() -> Result<T, KvError>,
) -> Duration {
    let s = Instant::now();
    let r = op();
    let took = s.elapsed();
    assert!(matches!(r, Err(KvError::Unavailable(_))), "{what}: {r:?}");
    assert!(took < DEADLINE + SLACK, "{what} took {took:?}");
    took
}

/// Reads `k` until the cluster answers, within `limit`; returns how long
/// that took and the value read. The value is taken from that answer, not
/// from another read after it: members that come back may hold an
/// election right after answering once (their terms moved on while they
/// were away), and reads meanwhile are Unavailable again.
fn wait_available(t: &dyn Tree, limit: Duration) -> (Duration, Option<Vec<u8>>) {
    match retry_unavailable(|| t.get(b"k"), limit) {
        (took, Ok(v)) => (took, v),
        (took, other) => panic!("no recovery after {took:?}: {other:?}"),
    }
}

/// Calls `op` until it answers anything but `Unavailable`, within `limit`;
/// returns how long that took and the answer.
fn retry_unavailable<T>(
    mut op: impl FnMut() -> Result<T, KvError>,
    limit: Duration,
) -> (Duration, Result<T, KvError>) {
    let s = Instant::now();
    loop {
        match op() {
            Err(KvError::Unavailable(_)) if s.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return (s.elapsed(), r),
        }
    }
}

#[test]
fn quorum_lost_is_unavailable_in_bounded_time_and_recovers_by_itself() {
    let Some(mut c) = EtcdCluster::start(3) else {
        return;
    };
    let kv = connect(&c);
    let t = kv.tree("t").expect("tree");
    t.insert(b"k", b"before").expect("put");

    // Dead majority: the survivor loses its leader and refuses at once.
    let killed = c.lose_quorum();
    // The remaining member notices within an election timeout; calls made
    // meanwhile may still fail only by deadline.
    let mut took = Vec::new();
    for _ in 0..3 {
        took.push(unavailable("get", || t.get(b"k")));
        took.push(unavailable("put", || t.insert(b"k", b"during")));
        took.push(unavailable("cas", || {
            t.compare_and_swap(b"k", Some(b"before"), Some(b"cas"))
        }));
        took.push(unavailable("scan", || {
            t.scan_prefix(b"").collect::<Result<Vec<_>, _>>()
        }));
    }
    println!("quorum lost (members killed): failures took {took:?}");
    c.restore(&killed);
    let (back, v) = wait_available(t.as_ref(), Duration::from_secs(30));
    println!("quorum restored: available again after {back:?}");
    // With the majority dead, the surviving member refused every write
    // (no leader) and the dead leader took none into its log: nothing
    // written during the outage landed.
    assert_eq!(v, Some(b"before".to_vec()), "no refused write landed");
    // The same election may come right after that answer: a write then
    // is Unavailable ("outcome unknown"), and writing the same value
    // again is what a caller does.
    let (_, put) = retry_unavailable(|| t.insert(b"k", b"after"), Duration::from_secs(30));
    put.expect("put after recovery");

    // Hung majority (SIGSTOP): connections stay open and silent.
    c.pause(1);
    c.pause(2);
    let mut took = Vec::new();
    for _ in 0..3 {
        took.push(unavailable("get", || t.get(b"k")));
        took.push(unavailable("put", || t.insert(b"k", b"during")));
    }
    println!("quorum lost (members hung): failures took {took:?}");
    c.resume(1);
    c.resume(2);
    let (back, v) = wait_available(t.as_ref(), Duration::from_secs(30));
    println!("quorum back: available again after {back:?}");
    // A hung member had accepted the writes sent to it and applies them
    // when it runs again: for a write, Unavailable means "outcome
    // unknown", not "not done" (callers re-read; docs/cluster.md).
    assert!(
        v.as_deref() == Some(b"after") || v.as_deref() == Some(b"during"),
        "{v:?}"
    );
}

#[test]
fn no_member_reachable_is_unavailable_not_a_hang() {
    // Ports nothing listens on: bound, noted, released.
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        })
        .collect();
    let mut cfg = ClusterConfig::new(
        ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect(),
        "nowhere",
        "a",
    );
    cfg.lease_secs = 4;
    cfg.request_timeout_ms = 1000;
    let etcd = Etcd::connect(&cfg).expect("connecting is lazy");
    let kv = EtcdKv::new(&etcd, "nowhere").expect("kv");
    let t = kv.tree("t").expect("tree");
    for _ in 0..3 {
        let s = Instant::now();
        assert!(matches!(t.get(b"k"), Err(KvError::Unavailable(_))));
        assert!(
            s.elapsed() < Duration::from_millis(1000) + SLACK,
            "took {:?}",
            s.elapsed()
        );
    }
    assert!(matches!(
        etcd.revision(),
        Err(nfs4d_cluster::ClusterError::Unavailable(_))
    ));
}

#[test]
fn usable_from_inside_another_runtime() {
    let Some(c) = EtcdCluster::start(1) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = c.config("rt", "a", 4);
    rt.block_on(async move {
        // Connecting and calling from the blocking pool of the server's
        // own runtime, as request threads do.
        let r = tokio::task::spawn_blocking(move || {
            let etcd = Etcd::connect(&cfg).expect("connect");
            let kv = EtcdKv::new(&etcd, "rt").expect("kv");
            let t = kv.tree("t").expect("tree");
            t.insert(b"k", b"v").expect("put");
            let v = t.get(b"k").expect("get");
            // Dropped here, on a blocking thread of another runtime.
            drop(kv);
            drop(etcd);
            v
        })
        .await
        .expect("blocking task");
        assert_eq!(r, Some(b"v".to_vec()));
    });
}
