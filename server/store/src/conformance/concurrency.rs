//! Concurrent calls, as the server makes them from many clients at once:
//! the namespace stays consistent, data in disjoint ranges stays apart,
//! and an atomic rename never shows a missing target.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::kit::*;
use super::Factory;
use crate::{Created, ListPos, Stability, Store, StoreError};

const THREADS: usize = 4;

/// Upper bound on the rounds of a thread that runs until the others end.
const MAX_ROUNDS: usize = 100_000;

/// Threads creating, writing, renaming and removing in one directory, and
/// one listing it meanwhile: every listing holds each entry that stays
/// put exactly once, repeats no name (but one that is bound to another
/// object meanwhile, which POSIX readdir leaves open), and the final
/// listing holds exactly what the threads left behind.
pub fn check_concurrent_namespace(f: Factory<'_>) {
    const OPS: usize = 150;
    const STABLE: usize = 50;
    let fx = f();
    let s = fx.store();
    new_dir(s, "d");
    let stable: BTreeSet<Vec<u8>> = (0..STABLE)
        .map(|i| {
            let name = format!("stable{i}");
            new_file(s, &format!("d/{name}"), name.as_bytes());
            name.into_bytes()
        })
        .collect();
    let done = AtomicBool::new(false);
    let listings = AtomicUsize::new(0);
    let expected = std::thread::scope(|sc| {
        let lister = sc.spawn(|| {
            for _ in 0..MAX_ROUNDS {
                if done.load(Ordering::Acquire) {
                    break;
                }
                let mut seen = BTreeSet::new();
                must(
                    s.list(&p("d"), &ListPos::Start, false, &mut |e, _| {
                        let fresh = seen.insert(e.name.to_vec());
                        assert!(
                            fresh || e.name == b"shared",
                            "a listing repeats {:?}",
                            e.name
                        );
                        true
                    }),
                    "list during changes",
                );
                let missed: Vec<_> = stable.difference(&seen).collect();
                assert!(
                    missed.is_empty(),
                    "a listing missed entries that stayed: {missed:?}"
                );
                listings.fetch_add(1, Ordering::Relaxed);
            }
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| sc.spawn(move || worker(s, t, OPS)))
            .collect();
        let mut expected = BTreeSet::new();
        for w in workers {
            match w.join() {
                Ok(left) => expected.extend(left),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done.store(true, Ordering::Release);
        if let Err(panic) = lister.join() {
            std::panic::resume_unwind(panic);
        }
        expected
    });
    let mut expected: BTreeSet<Vec<u8>> = expected.into_iter().map(String::into_bytes).collect();
    expected.insert(b"shared".to_vec());
    expected.extend(stable.iter().cloned());
    assert_eq!(names(s, "d"), expected, "the final listing");
    for name in &expected {
        let name = String::from_utf8_lossy(name).into_owned();
        let data = must(read_all(s, &format!("d/{name}")), "read a surviving file");
        let data = String::from_utf8_lossy(&data).into_owned();
        if name.starts_with("stable") {
            assert_eq!(data, name, "an untouched file keeps its data");
        } else if name == "shared" {
            let ok = data
                .strip_prefix('t')
                .and_then(|rest| rest.split_once('-'))
                .and_then(|(_, k)| k.parse::<usize>().ok())
                .is_some_and(|k| k % 5 == 2);
            assert!(
                ok,
                "\"shared\" holds one whole file renamed over it: {data:?}"
            );
        } else {
            let own = name.strip_suffix("-r").unwrap_or(&name);
            assert_eq!(data, own, "{name} holds its own data");
        }
    }
    eprintln!(
        "check_concurrent_namespace: {} listings during {} operations",
        listings.load(Ordering::Relaxed),
        THREADS * OPS
    );
}

/// One thread's share: returns the names it left in `d`.
fn worker(s: &dyn Store, t: usize, ops: usize) -> BTreeSet<String> {
    let mut left = BTreeSet::new();
    let d = p("d");
    for k in 0..ops {
        let name = format!("t{t}-{k}");
        let Created { created, .. } = must(
            s.create_file(&d, &n(&name), 0o644, ROOT, true),
            "create a thread's own name",
        );
        assert!(created);
        put(
            s,
            &format!("d/{name}"),
            0,
            name.as_bytes(),
            Stability::Unstable,
        );
        match k % 5 {
            0 => {
                let to = format!("{name}-r");
                must(s.rename(&d, &n(&name), &d, &n(&to)), "rename");
                left.insert(to);
            }
            1 => {
                must(s.remove(&d, &n(&name)), "remove");
            }
            2 => {
                must(
                    s.rename(&d, &n(&name), &d, &n("shared")),
                    "rename over a shared name",
                );
            }
            3 => {
                let dir = format!("{name}-dir");
                must(s.mkdir(&d, &n(&dir), 0o755, ROOT), "mkdir");
                must(s.rmdir(&d, &n(&dir)), "rmdir");
                left.insert(name);
            }
            _ => {
                left.insert(name);
            }
        }
    }
    left
}

/// Threads writing and reading back their own slots of shared files: no
/// write is lost or torn by another.
pub fn check_concurrent_io(f: Factory<'_>) {
    const FILES: usize = 4;
    const ROUNDS: u64 = 200;
    let fx = f();
    let s = fx.store();
    for i in 0..FILES {
        new_file(s, &format!("f{i}"), b"");
        must(s.open(&p(&format!("f{i}")), true), "open");
    }
    std::thread::scope(|sc| {
        for t in 0..THREADS as u64 {
            sc.spawn(move || {
                for i in 0..ROUNDS {
                    let path = p(&format!("f{}", (t as usize * 7 + i as usize) % FILES));
                    let value = (t * 1000 + i).to_le_bytes();
                    let (w, _) = must(s.write(&path, t * 8, &value, Stability::Unstable), "write");
                    assert_eq!(w, 8);
                    let mut buf = Vec::new();
                    must(s.read(&path, t * 8, 8, &mut buf), "read");
                    assert_eq!(buf, value, "a thread reads back its own slot");
                }
            });
        }
    });
    for i in 0..FILES {
        let path = format!("f{i}");
        must(s.commit(&p(&path)), "commit");
        must(s.close(&p(&path)), "close");
        let data = must(read_all(s, &path), "read");
        assert_eq!(data.len(), THREADS * 8, "every slot was written");
        for t in 0..THREADS as u64 {
            let slot = &data[t as usize * 8..t as usize * 8 + 8];
            let v = u64::from_le_bytes(slot.try_into().expect("8 bytes"));
            // The last round of thread t that wrote this file.
            let last = (0..ROUNDS)
                .rev()
                .find(|r| (t as usize * 7 + *r as usize) % FILES == i)
                .expect("every file is written by every thread");
            assert_eq!(
                v,
                t * 1000 + last,
                "slot {t} of {path} holds its last write"
            );
        }
    }
}

/// A file renamed over another again and again while a reader looks at the
/// target: with [`crate::Capabilities::atomic_rename`] the target never goes
/// missing, and every read sees one whole version. Without
/// [`crate::Capabilities::stable_identity`] a read may instead find that
/// the object it looked up was replaced before its data came
/// ([`StoreError::Stale`]): volatile handles are bound to the object they
/// were looked up for, never to its successor (RFC 8881 §4.2.3).
pub fn check_atomic_rename_replace(f: Factory<'_>) {
    const VERSIONS: usize = 100;
    let fx = f();
    let s = fx.store();
    let atomic = s.capabilities().atomic_rename;
    let volatile = !s.capabilities().stable_identity;
    new_file(s, "target", b"v0");
    let done = AtomicBool::new(false);
    let (reads, missing, replaced) = std::thread::scope(|sc| {
        let reader = sc.spawn(|| {
            let (mut reads, mut missing, mut replaced) = (0usize, 0usize, 0usize);
            for _ in 0..MAX_ROUNDS {
                if done.load(Ordering::Acquire) {
                    break;
                }
                match read_all(s, "target") {
                    Ok(data) => {
                        let v = String::from_utf8_lossy(&data).into_owned();
                        let whole = v
                            .strip_prefix('v')
                            .and_then(|k| k.parse::<usize>().ok())
                            .is_some_and(|k| k <= VERSIONS);
                        assert!(whole, "a read of the target saw {v:?}");
                        reads += 1;
                    }
                    Err(StoreError::NotFound) if !atomic => missing += 1,
                    Err(StoreError::Stale) if volatile => replaced += 1,
                    Err(e) => panic!("reading the target during renames: {e:?}"),
                }
            }
            (reads, missing, replaced)
        });
        let writer = sc.spawn(|| {
            for i in 1..=VERSIONS {
                let tmp = format!("tmp{i}");
                new_file(s, &tmp, format!("v{i}").as_bytes());
                must(
                    s.rename(&root(), &n(&tmp), &root(), &n("target")),
                    "rename over",
                );
            }
        });
        let wrote = writer.join();
        done.store(true, Ordering::Release);
        let read = reader.join();
        if let Err(panic) = wrote {
            std::panic::resume_unwind(panic);
        }
        match read {
            Ok(counts) => counts,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    assert_eq!(
        read_all(s, "target"),
        Ok(format!("v{VERSIONS}").into_bytes())
    );
    assert_eq!(
        names(s, ""),
        name_set(&["target"]),
        "no temporary name is left"
    );
    eprintln!(
        "check_atomic_rename_replace: {reads} reads, {missing} saw no target (atomic: {atomic}), \
         {replaced} saw it replaced (volatile: {volatile})"
    );
}
