//! `EtcdKv` against a real three-member etcd cluster: the `nfs4d_kv`
//! semantics, races between heads, id blocks, and latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfs4d_cluster::testing::EtcdCluster;
use nfs4d_cluster::{Etcd, EtcdKv, MAX_KEY_LEN, MAX_VALUE_LEN, PAGE_KEYS};
use nfs4d_kv::{Batch, IdBlocks, KeyState, Kv, KvError};

fn connect(c: &EtcdCluster, head: &str) -> EtcdKv {
    let etcd = Etcd::connect(&c.config("kvtest", head, 4)).expect("connect");
    EtcdKv::new(&etcd, "kvtest").expect("kv")
}

#[test]
fn kv_semantics_match_the_interface() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let kv = connect(&c, "a");
    let t = kv.tree("objects").expect("tree");
    let other = kv.tree("names").expect("tree");
    assert_eq!(t.get(b"k"), Ok(None));
    t.insert(b"k", b"v1").expect("insert");
    assert_eq!(t.get(b"k"), Ok(Some(b"v1".to_vec())));
    assert_eq!(other.get(b"k"), Ok(None), "trees are separate");
    t.insert(b"k", b"v2").expect("overwrite");
    assert_eq!(t.get(b"k"), Ok(Some(b"v2".to_vec())));
    t.remove(b"k").expect("remove");
    t.remove(b"k").expect("removing an absent key is no error");
    assert_eq!(t.get(b"k"), Ok(None));

    // Compare-and-swap: claim, mismatch reports the current value, delete.
    assert_eq!(t.compare_and_swap(b"c", None, Some(b"x")), Ok(Ok(())));
    assert_eq!(
        t.compare_and_swap(b"c", None, Some(b"y")),
        Ok(Err(Some(b"x".to_vec())))
    );
    assert_eq!(
        t.compare_and_swap(b"c", Some(b"y"), None),
        Ok(Err(Some(b"x".to_vec())))
    );
    assert_eq!(t.compare_and_swap(b"c", Some(b"x"), None), Ok(Ok(())));
    assert_eq!(
        t.compare_and_swap(b"c", Some(b"x"), Some(b"z")),
        Ok(Err(None))
    );
    // An empty value is a value, not an absence.
    assert_eq!(t.compare_and_swap(b"e", None, Some(b"")), Ok(Ok(())));
    assert_eq!(
        t.compare_and_swap(b"e", None, Some(b"q")),
        Ok(Err(Some(Vec::new())))
    );
    assert_eq!(t.compare_and_swap(b"e", Some(b""), None), Ok(Ok(())));

    // Binary keys, including 0xff bytes at the end of a prefix.
    t.insert(b"\xff\xff", b"high").expect("insert");
    t.insert(b"\x00", b"low").expect("insert");
    let all: Vec<Vec<u8>> = t.scan_prefix(b"").map(|r| r.expect("item").0).collect();
    assert_eq!(all, vec![b"\x00".to_vec(), b"\xff\xff".to_vec()]);
    assert_eq!(t.scan_prefix(b"\xff").count(), 1);

    // Scans span pages, stay in order and in their prefix, and are a
    // snapshot: writes during the scan are not seen.
    let n = PAGE_KEYS * 2 + 7;
    for i in 0..n {
        t.insert(format!("p/{i:05}").as_bytes(), &i.to_be_bytes())
            .expect("insert");
    }
    t.insert(b"q/0", b"outside").expect("insert");
    let mut scan = t.scan_prefix(b"p/");
    let first = scan.next().expect("first").expect("item");
    assert_eq!(first.0, b"p/00000".to_vec());
    t.insert(b"p/99999", b"late").expect("insert during scan");
    t.remove(b"p/00100").expect("remove during scan");
    let rest: Vec<Vec<u8>> = scan.map(|r| r.expect("item").0).collect();
    assert_eq!(
        rest.len(),
        n - 1,
        "the snapshot holds exactly the keys at its start"
    );
    assert!(rest.windows(2).all(|w| w[0] < w[1]));
    assert!(rest.iter().all(|k| k.starts_with(b"p/")));
    assert!(!rest.contains(&b"p/99999".to_vec()));
    assert!(rest.contains(&b"p/00100".to_vec()));

    // Bad input: errors, nothing written, no panic.
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    assert!(matches!(t.insert(&long_key, b"v"), Err(KvError::Store(_))));
    assert!(matches!(t.get(&long_key), Err(KvError::Store(_))));
    let big = vec![0u8; MAX_VALUE_LEN + 1];
    assert!(matches!(t.insert(b"big", &big), Err(KvError::Store(_))));
    assert!(matches!(
        t.compare_and_swap(b"big", None, Some(&big)),
        Err(KvError::Store(_))
    ));
    assert_eq!(t.get(b"big"), Ok(None));
    let max = vec![7u8; MAX_VALUE_LEN];
    t.insert(b"max", &max).expect("a value of the largest size");
    assert_eq!(t.get(b"max"), Ok(Some(max)));
    for bad in ["", "a/b", "..", &"x".repeat(65)] {
        assert!(
            matches!(kv.tree(bad), Err(KvError::Store(_))),
            "tree {bad:?}"
        );
    }
    kv.flush().expect("flush");
}

#[test]
fn compare_and_swap_races_between_heads_have_one_winner() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    // Two heads: separate connections (own runtime, own pinned member).
    let heads = [connect(&c, "a"), connect(&c, "b")];
    let wins = [AtomicUsize::new(0), AtomicUsize::new(0)];
    const KEYS: usize = 40;
    std::thread::scope(|s| {
        for (h, kv) in heads.iter().enumerate() {
            for thread in 0..2 {
                let wins = &wins;
                s.spawn(move || {
                    let t = kv.tree("names").expect("tree");
                    for k in 0..KEYS {
                        let mine = format!("{h}-{thread}");
                        match t.compare_and_swap(&k.to_be_bytes(), None, Some(mine.as_bytes())) {
                            Ok(Ok(())) => {
                                wins[h].fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(Err(Some(winner))) => assert_ne!(winner, mine.as_bytes()),
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                });
            }
        }
    });
    let total = wins[0].load(Ordering::SeqCst) + wins[1].load(Ordering::SeqCst);
    assert_eq!(total, KEYS, "every key claimed exactly once");
    // Both heads read the same winners.
    let a = heads[0].tree("names").expect("tree");
    let b = heads[1].tree("names").expect("tree");
    for k in 0..KEYS {
        assert_eq!(a.get(&k.to_be_bytes()), b.get(&k.to_be_bytes()));
    }
    // Counter increments by CAS from both heads lose nothing.
    let per_thread = 25;
    std::thread::scope(|s| {
        for kv in &heads {
            s.spawn(move || {
                let t = kv.tree("meta").expect("tree");
                for _ in 0..per_thread {
                    let mut cur = t.get(b"n").expect("get");
                    loop {
                        let n = cur
                            .as_deref()
                            .map_or(0, |v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
                        match t
                            .compare_and_swap(b"n", cur.as_deref(), Some(&(n + 1).to_be_bytes()))
                            .expect("cas")
                        {
                            Ok(()) => break,
                            Err(now) => cur = now,
                        }
                    }
                }
            });
        }
    });
    let n = heads[0]
        .tree("meta")
        .expect("tree")
        .get(b"n")
        .expect("get")
        .expect("set");
    assert_eq!(
        u64::from_be_bytes(n.try_into().expect("8 bytes")),
        2 * per_thread
    );
}

fn state(tree: &str, key: &[u8], value: Option<&[u8]>) -> KeyState {
    KeyState {
        tree: tree.into(),
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    }
}

#[test]
fn commit_is_atomic_across_trees_and_heads() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let a = connect(&c, "a");
    let b = connect(&c, "b");
    a.tree("objects")
        .expect("tree")
        .insert(b"7", b"rec-v1")
        .expect("insert");
    // A rename planned on both heads from the same record: one commits,
    // the other's check on the record fails and nothing of it is applied.
    let rename = |to: &[u8]| Batch {
        checks: vec![
            state("objects", b"7", Some(b"rec-v1")),
            state("names", to, None),
        ],
        writes: vec![
            state("objects", b"7", Some(to)),
            state("names", to, Some(b"7")),
            state("names", b"old", None),
        ],
    };
    assert_eq!(a.commit(&rename(b"x")), Ok(Ok(())));
    assert_eq!(b.commit(&rename(b"y")), Ok(Err(0)));
    let names = b.tree("names").expect("tree");
    assert_eq!(names.get(b"x"), Ok(Some(b"7".to_vec())));
    assert_eq!(names.get(b"y"), Ok(None), "the losing commit wrote nothing");
    assert_eq!(
        b.tree("objects").expect("tree").get(b"7"),
        Ok(Some(b"x".to_vec()))
    );
    // The second check is reported when it is the one that fails.
    let taken = Batch {
        checks: vec![
            state("objects", b"7", Some(b"x")),
            state("names", b"x", None),
        ],
        writes: vec![state("objects", b"7", None)],
    };
    assert_eq!(b.commit(&taken), Ok(Err(1)));
    // One key written twice: the last write counts.
    let twice = Batch {
        checks: vec![],
        writes: vec![
            state("names", b"d", Some(b"1")),
            state("names", b"d", Some(b"2")),
        ],
    };
    assert_eq!(a.commit(&twice), Ok(Ok(())));
    assert_eq!(names.get(b"d"), Ok(Some(b"2".to_vec())));
    // Oversized batches are refused before reaching etcd.
    let huge = Batch {
        checks: vec![],
        writes: (0..nfs4d_kv::MAX_BATCH_OPS + 1)
            .map(|i| state("names", &i.to_be_bytes(), Some(b"v")))
            .collect(),
    };
    assert!(matches!(a.commit(&huge), Err(KvError::Store(_))));
    let heavy = Batch {
        checks: vec![],
        writes: (0..4)
            .map(|i| state("names", &[i], Some(&vec![0u8; 200 << 10])))
            .collect(),
    };
    assert!(matches!(a.commit(&heavy), Err(KvError::Store(_))));
    assert_eq!(names.get(&[0]), Ok(None));
}

#[test]
fn id_blocks_never_overlap_across_heads() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let heads: Vec<Arc<dyn Kv>> = vec![
        Arc::new(connect(&c, "a")),
        Arc::new(connect(&c, "b")),
        Arc::new(connect(&c, "c")),
    ];
    let all = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for kv in &heads {
            let all = &all;
            s.spawn(move || {
                let ids = IdBlocks::new(kv.tree("meta").expect("tree"), b"next_id", 1 << 32, 16);
                let mine: Vec<u64> = (0..300).map(|_| ids.next().expect("id")).collect();
                all.lock().expect("lock").extend(mine);
            });
        }
    });
    let mut all = all.into_inner().expect("lock");
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "an id was handed out to two heads");
    assert!(all.iter().all(|&id| id >= 1 << 32));
}

/// Median and 99th percentile of `n` runs of `op`.
fn latency(n: usize, mut op: impl FnMut(usize)) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..n)
        .map(|i| {
            let s = Instant::now();
            op(i);
            s.elapsed()
        })
        .collect();
    t.sort_unstable();
    (t[n / 2], t[n * 99 / 100])
}

#[test]
fn latency_of_get_put_and_cas_on_loopback() {
    let Some(c) = EtcdCluster::start(3) else {
        return;
    };
    let kv = connect(&c, "a");
    let t = kv.tree("bench").expect("tree");
    const N: usize = 300;
    let put = latency(N, |i| {
        t.insert(&i.to_be_bytes(), b"value-of-about-32-bytes-........")
            .expect("put")
    });
    let get = latency(N, |i| {
        t.get(&i.to_be_bytes()).expect("get").expect("present");
    });
    let cas = latency(N, |i| {
        t.compare_and_swap(
            &i.to_be_bytes(),
            Some(b"value-of-about-32-bytes-........"),
            Some(b"new"),
        )
        .expect("cas")
        .expect("swapped");
    });
    println!("etcd loopback latency over {N} ops (median / p99): get {:?} / {:?}, put {:?} / {:?}, cas {:?} / {:?}",
        get.0, get.1, put.0, put.1, cas.0, cas.1);
    // Generous bounds: a loaded two-core machine with fsync on every write.
    for (what, (median, _)) in [("get", get), ("put", put), ("cas", cas)] {
        assert!(
            median < Duration::from_millis(100),
            "{what} median {median:?}"
        );
    }
}
