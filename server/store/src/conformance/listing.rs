//! Directory listings (READDIR, RFC 8881 §18.23): every entry exactly
//! once, resumable from every position, stable under concurrent change.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use super::kit::*;
use super::{position_matches, Factory};
use crate::{Created, FileKind, ListPos, Positions, RelPath, Store, StoreError};

use StoreError::*;

/// Fills directory `dir` with `files` regular files `f00`, `f01`, … and,
/// as the store allows, a subdirectory, a symlink and a fifo; returns the
/// expected kind of every name.
fn populate(s: &dyn Store, dir: &str, files: usize) -> Vec<(Vec<u8>, FileKind)> {
    let caps = s.capabilities();
    let mut want = Vec::new();
    for i in 0..files {
        let name = format!("f{i:02}");
        new_file(s, &format!("{dir}/{name}"), &vec![b'x'; i]);
        want.push((name.into_bytes(), FileKind::Regular));
    }
    new_dir(s, &format!("{dir}/sub"));
    want.push((b"sub".to_vec(), FileKind::Directory));
    let d = p(dir);
    if caps.symlinks {
        must(s.symlink(&d, &n("sl"), b"f00", ROOT), "symlink");
        want.push((b"sl".to_vec(), FileKind::Symlink));
    }
    if caps.special_files {
        must(
            s.mknod(&d, &n("fifo"), FileKind::Fifo, 0o600, (0, 0), ROOT),
            "mkfifo",
        );
        want.push((b"fifo".to_vec(), FileKind::Fifo));
    }
    want
}

/// Every entry once, no `.` or `..`, the right kinds and object numbers,
/// positions of the kind the store announces.
pub fn check_list_basic(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    let positions = s.capabilities().positions;
    let mut visits = 0;
    let end = must(
        s.list(&root(), &ListPos::Start, true, &mut |_, _| {
            visits += 1;
            true
        }),
        "list an empty root",
    );
    assert!(
        end && visits == 0,
        "an empty directory lists nothing and reaches its end"
    );

    new_dir(s, "d");
    let want = populate(s, "d", 40);
    let all = list_all(s, "d");
    assert_eq!(
        all.len(),
        want.len(),
        "one entry per name: {:?}",
        names(s, "d")
    );
    let listed: BTreeSet<_> = all.iter().map(|e| e.name.clone()).collect();
    let expected: BTreeSet<_> = want.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        listed, expected,
        "the listing holds exactly the directory's names"
    );
    let mut seen_pos = HashSet::new();
    for e in &all {
        let (_, kind) = want
            .iter()
            .find(|(n, _)| *n == e.name)
            .expect("listed name");
        assert_eq!(
            e.kind,
            *kind,
            "kind of {:?}",
            String::from_utf8_lossy(&e.name)
        );
        let name = crate::Name::new(&e.name).expect("a listed name is a valid name");
        let a = must(s.lookup(&p("d"), &name), "lookup a listed name");
        assert!(
            e.object == 0 || e.object == a.identity.object,
            "the entry's object number is the object's"
        );
        assert!(
            position_matches(positions, &e.next),
            "a {positions:?} store handed out {:?}",
            e.next
        );
        assert!(seen_pos.insert(e.next.clone()), "positions are distinct");
    }
    assert_err(
        s.list(&p("missing"), &ListPos::Start, false, &mut |_, _| true),
        &[NotFound],
        "list a missing directory",
    );
    assert_err(
        s.list(&p("d/f00"), &ListPos::Start, false, &mut |_, _| true),
        &[NotDir],
        "list a file",
    );
}

/// Resuming from any entry's position continues right after it; the end
/// lists nothing; positions the store cannot have handed out are refused.
pub fn check_list_resume_every_position(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_dir(s, "d");
    populate(s, "d", 25);
    let d = p("d");
    let all = list_all(s, "d");
    let order: Vec<&[u8]> = all.iter().map(|e| &e.name[..]).collect();
    for (i, e) in all.iter().enumerate() {
        let rest = must(list_from(s, &d, &e.next, false), "resume");
        let rest: Vec<&[u8]> = rest.iter().map(|e| &e.name[..]).collect();
        assert_eq!(rest, order[i + 1..], "resumed after entry {i}");
    }
    let Some(last) = all.last() else {
        panic!("the directory is not empty");
    };
    assert!(must(list_from(s, &d, &last.next, true), "after the last").is_empty());

    // Positions of the wrong kind, or reserved ones.
    let mut foreign = vec![ListPos::Offset(0), ListPos::Offset(1), ListPos::Offset(2)];
    match s.capabilities().positions {
        Positions::Offsets => foreign.push(ListPos::Key(Arc::from(&b"f03"[..]))),
        Positions::Keys => foreign.push(ListPos::Offset(7)),
    }
    for pos in foreign {
        assert_err(
            s.list(&d, &pos, false, &mut |_, _| true),
            &[BadPosition],
            &format!("list from {pos:?}"),
        );
    }
}

/// With `stat` every entry comes with the attributes a lookup gives.
pub fn check_list_stat_matches_lookup(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_dir(s, "d");
    populate(s, "d", 12);
    let d = p("d");
    let all = must(
        list_from(s, &d, &ListPos::Start, true),
        "list with attributes",
    );
    assert!(!all.is_empty());
    for e in &all {
        let name = crate::Name::new(&e.name).expect("valid name");
        let looked = must(s.lookup(&d, &name), "lookup");
        match &e.attrs {
            Some(Ok(a)) => {
                assert_eq!(
                    *a, looked,
                    "attributes of {name:?} in a listing and by lookup"
                );
                assert_eq!(a.kind, e.kind);
                assert!(e.object == 0 || e.object == a.identity.object);
            }
            other => panic!("{name:?} listed with attributes {other:?}"),
        }
    }
    let bare = must(
        list_from(s, &d, &ListPos::Start, false),
        "list without attributes",
    );
    assert_eq!(bare.len(), all.len());
    assert!(
        bare.iter().all(|e| e.attrs.is_none()),
        "no attributes when not asked"
    );
}

/// A visitor returning false stops the listing at once (`Ok(false)`), and
/// the listing resumes from the last entry it took.
pub fn check_list_visit_stops(f: Factory<'_>) {
    let fx = f();
    let s = fx.store();
    new_dir(s, "d");
    for i in 0..10 {
        new_file(s, &format!("d/e{i}"), b"");
    }
    let d = p("d");
    let all = list_all(s, "d");
    assert_eq!(all.len(), 10);
    let mut visits = 0;
    let mut third = None;
    let end = must(
        s.list(&d, &ListPos::Start, false, &mut |e, _| {
            visits += 1;
            if visits == 3 {
                third = Some(e.next.clone());
            }
            visits < 3
        }),
        "list until the third entry",
    );
    assert!(!end, "a stopped listing reports Ok(false)");
    assert_eq!(visits, 3, "no entry is visited after the visitor said stop");
    let Some(third) = third else {
        panic!("the third entry was visited");
    };
    let rest = must(list_from(s, &d, &third, false), "resume");
    let rest: Vec<_> = rest.iter().map(|e| e.name.clone()).collect();
    let want: Vec<_> = all[3..].iter().map(|e| e.name.clone()).collect();
    assert_eq!(rest, want, "resumed after the third entry");

    let mut visits = 0;
    let end = must(
        s.list(&d, &all[8].next, false, &mut |_, _| {
            visits += 1;
            false
        }),
        "stop at the last entry",
    );
    assert_eq!(
        (end, visits),
        (false, 1),
        "stopping at the last entry is still a stop"
    );
}

/// Pages resumed while entries are added and removed in between: no entry
/// that existed throughout goes missing, none is listed twice.
pub fn check_list_under_churn(f: Factory<'_>) {
    const ENTRIES: usize = 300;
    const PAGE: usize = 20;
    const MAX_PAGES: usize = 1000;
    let fx = f();
    let s = fx.store();
    new_dir(s, "d");
    for i in 0..ENTRIES {
        let Created { created, .. } = must(
            s.create_file(&p("d"), &n(&format!("e{i}")), 0o644, ROOT, true),
            "create",
        );
        assert!(created);
    }
    let d = p("d");
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut removed: HashSet<Vec<u8>> = HashSet::new();
    let mut pos = ListPos::Start;
    let mut pages = 0;
    loop {
        let (page, end) = page_of(s, &d, &pos, PAGE);
        if let Some((_, next)) = page.last() {
            pos = next.clone();
        }
        seen.extend(page.into_iter().map(|(name, _)| name));
        if end {
            break;
        }
        pages += 1;
        assert!(pages < MAX_PAGES, "the listing does not end");
        // Between pages: remove entries (seen or not) and add new ones.
        for j in 0..6 {
            let victim = format!("e{}", (pages * 37 + j * 71) % ENTRIES);
            if s.remove(&d, &n(&victim)).is_ok() {
                removed.insert(victim.into_bytes());
            }
            must(
                s.create_file(&d, &n(&format!("new{pages}-{j}")), 0o644, ROOT, true),
                "create between pages",
            );
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was listed twice");
    for i in 0..ENTRIES {
        let name = format!("e{i}").into_bytes();
        if !removed.contains(&name) {
            assert!(unique.contains(&name), "surviving entry e{i} was missed");
        }
    }
    eprintln!(
        "check_list_under_churn: {pages} pages, {} removed, {} listed",
        removed.len(),
        seen.len()
    );
}

/// Up to `max` entries after `from`, as a server fills a READDIR reply:
/// the entry that does not fit is refused and listed again next time.
fn page_of(
    s: &dyn Store,
    dir: &RelPath,
    from: &ListPos,
    max: usize,
) -> (Vec<(Vec<u8>, ListPos)>, bool) {
    let mut page = Vec::new();
    let end = must(
        s.list(dir, from, false, &mut |e, _| {
            if page.len() == max {
                return false;
            }
            page.push((e.name.to_vec(), e.next.clone()));
            true
        }),
        "list a page",
    );
    (page, end)
}
