//! Cache coherence between heads against a real etcd cluster: a change
//! committed by one head is reported by the other head's feed, and the
//! barrier returns only once every other head has applied it (or is gone).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_cluster::{ChangeFeed, Etcd, EtcdKv, FeedEvent, FeedFn, Membership, Peers};
use nfs4d_kv::{Batch, KeyState, Kv};

const LEASE: u64 = 3;

/// Everything a feed reported: `Some(key)` for a change, `None` for a reset.
type Seen = Arc<Mutex<Vec<Option<Vec<u8>>>>>;

fn recorder() -> (FeedFn, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let f: FeedFn = Arc::new(move |ev: FeedEvent<'_>| {
        let item = match ev {
            FeedEvent::Changed(k) => Some(k.to_vec()),
            FeedEvent::Reset => None,
        };
        s.lock().expect("lock").push(item);
    });
    (f, seen)
}

fn put(tree: &str, key: &[u8], value: &[u8]) -> Batch {
    Batch {
        checks: Vec::new(),
        writes: vec![KeyState {
            tree: tree.into(),
            key: key.to_vec(),
            value: Some(value.to_vec()),
        }],
    }
}

#[test]
fn a_change_is_applied_by_every_other_head_before_the_barrier_returns() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let cfg_a = c.config("co", "a", LEASE);
    let cfg_b = c.config("co", "b", LEASE);
    let ea = Etcd::connect(&cfg_a).expect("connect");
    let eb = Etcd::connect(&cfg_b).expect("connect");
    let a = Membership::join(&ea, &cfg_a, "127.0.0.1:1").expect("join a");
    let b = Membership::join(&eb, &cfg_b, "127.0.0.1:2").expect("join b");
    let kv_a = EtcdKv::new(&ea, "co").expect("kv").fenced(a.fence());
    let peers_a = Peers::new(&ea, "co", "a").expect("peers");
    let serving = || true;

    // B is registered but follows nothing yet: the barrier must wait for
    // it, and give up at its limit rather than hang.
    let rev1 = kv_a
        .commit_at(&put("objects", b"k1", b"v1"))
        .expect("commit")
        .expect("applied");
    let t = Instant::now();
    let r = peers_a.wait_applied(rev1 as i64, Duration::from_millis(1500), &serving);
    assert!(r.is_err(), "B never applied anything");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "bounded: {:?}",
        t.elapsed()
    );

    // With B's feed running, the barrier passes once B saw the change.
    let (on, seen) = recorder();
    let feed = ChangeFeed::start(&eb, "co", "b", b.lease(), "objects", on).expect("feed");
    // The feed starts with a reset at the revision it begins to watch
    // from; a change committed before that point is covered by the reset,
    // not reported by key. Wait for it, so that k2 comes after.
    let t = Instant::now();
    while feed.applied() < rev1 as i64 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the feed never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rev = kv_a
        .commit_at(&put("objects", b"k2", b"v2"))
        .expect("commit")
        .expect("applied");
    let t = Instant::now();
    peers_a
        .wait_applied(rev as i64, Duration::from_secs(10), &serving)
        .expect("barrier");
    println!("barrier passed after {:?}", t.elapsed());
    assert!(feed.applied() >= rev as i64);
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.first(), Some(&None), "a feed starts with a reset");
    assert!(got.contains(&Some(b"k2".to_vec())), "{got:?}");
    // Keys of other trees are not reported.
    kv_a.commit_at(&put("names", b"n", b"x"))
        .expect("commit")
        .expect("applied");
    let rev = kv_a
        .commit_at(&put("objects", b"k3", b"v3"))
        .expect("commit")
        .expect("applied");
    peers_a
        .wait_applied(rev as i64, Duration::from_secs(10), &serving)
        .expect("barrier");
    let got = seen.lock().expect("lock").clone();
    assert!(!got.contains(&Some(b"n".to_vec())), "{got:?}");

    // A head that is gone holds no one up: B leaves without applying.
    drop(feed);
    b.leave().expect("leave");
    let rev = kv_a
        .commit_at(&put("objects", b"k4", b"v4"))
        .expect("commit")
        .expect("applied");
    peers_a
        .wait_applied(rev as i64, Duration::from_secs(5), &serving)
        .expect("no other head left");
    // A head that stops serving gives up at once.
    let r = peers_a.wait_applied(rev as i64 + 1000, Duration::from_secs(5), &|| false);
    assert!(r.is_err());
    a.leave().expect("leave");
}
