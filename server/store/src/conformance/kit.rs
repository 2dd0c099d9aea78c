//! Small helpers the checks share: names, setup that follows the data
//! lifecycle, listings, and assertions with context.

use std::collections::BTreeSet;
use std::fmt::Debug;

use crate::{
    Attrs, Created, FileKind, ListPos, Name, Owner, RelPath, Stability, Store, StoreError,
    StoreResult,
};

/// The owner of objects the checks create when ownership is not the point.
pub const ROOT: Owner = Owner { uid: 0, gid: 0 };

/// Largest piece read at once by [`read_all`].
const READ_PIECE: usize = 1 << 20;

/// Bound on [`read_all`]'s loop: the checks never read files this large.
const READ_ALL_MAX: u64 = 64 << 20;

pub fn n(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap_or_else(|e| panic!("test name {s:?}: {e}"))
}

pub fn p(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap_or_else(|e| panic!("test path {s:?}: {e}"))
}

pub fn root() -> RelPath {
    RelPath::root()
}

/// The value of `r`, or a panic naming what failed.
#[track_caller]
pub fn must<T>(r: StoreResult<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

/// Asserts that `r` failed with one of `allowed`.
#[track_caller]
pub fn assert_err<T: Debug>(r: StoreResult<T>, allowed: &[StoreError], what: &str) {
    match r {
        Err(e) if allowed.contains(&e) => {}
        other => panic!("{what}: expected one of {allowed:?}, got {other:?}"),
    }
}

/// `(parent, last component)` of a non-root path.
pub fn split(path: &str) -> (RelPath, Name) {
    let full = p(path);
    match full.split_last() {
        Some((parent, name)) => (parent, name.clone()),
        None => panic!("{path:?} is the root"),
    }
}

/// Writes `data` at `offset` inside one open of the file (open, write,
/// close), as the server does for a client's OPEN … WRITE … CLOSE.
#[track_caller]
pub fn put(s: &dyn Store, path: &str, offset: u64, data: &[u8], stability: Stability) {
    let rp = p(path);
    must(s.open(&rp, true), &format!("open {path}"));
    let (written, got) = must(
        s.write(&rp, offset, data, stability),
        &format!("write {path}"),
    );
    assert_eq!(written, data.len(), "short write to {path}");
    assert!(got >= stability, "write to {path}: {got:?} < {stability:?}");
    must(s.close(&rp), &format!("close {path}"));
}

/// Creates the regular file `path` (exclusively, mode 0644, owned by
/// root) holding `data`; returns its attributes after the write.
#[track_caller]
pub fn new_file(s: &dyn Store, path: &str, data: &[u8]) -> Attrs {
    let (dir, name) = split(path);
    let Created { created, .. } = must(
        s.create_file(&dir, &name, 0o644, ROOT, true),
        &format!("create {path}"),
    );
    assert!(created, "create {path}: not reported as created");
    if !data.is_empty() {
        put(s, path, 0, data, Stability::FileSync);
    }
    must(s.stat(&p(path)), &format!("stat {path}"))
}

/// Creates the directory `path` (mode 0755, owned by root).
#[track_caller]
pub fn new_dir(s: &dyn Store, path: &str) -> Attrs {
    let (dir, name) = split(path);
    must(s.mkdir(&dir, &name, 0o755, ROOT), &format!("mkdir {path}"))
}

/// The whole content of a regular file, read piece by piece until end of
/// file.
pub fn read_all(s: &dyn Store, path: &str) -> StoreResult<Vec<u8>> {
    read_all_at(s, &p(path))
}

pub fn read_all_at(s: &dyn Store, path: &RelPath) -> StoreResult<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        let before = buf.len();
        let (got, eof) = s.read(path, before as u64, READ_PIECE, &mut buf)?;
        assert_eq!(
            buf.len(),
            before + got,
            "read of {path}: the count does not match the bytes appended"
        );
        if eof {
            return Ok(buf);
        }
        assert!(
            got > 0,
            "read of {path} made no progress before end of file"
        );
        assert!(
            (buf.len() as u64) < READ_ALL_MAX,
            "read of {path}: larger than any file the checks write"
        );
    }
}

/// Reads `len` bytes at `offset`, asserting how many came back.
#[track_caller]
pub fn read_at(s: &dyn Store, path: &str, offset: u64, len: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let (got, eof) = must(
        s.read(&p(path), offset, len, &mut buf),
        &format!("read {path} at {offset}"),
    );
    assert_eq!(got, buf.len(), "read of {path}: count and bytes differ");
    check_piped(s, path, offset, len, &buf, eof);
    (buf, eof)
}

/// A store that reads into a pipe ([`crate::Store::read_piped`]) gives
/// the bytes a plain read gives, or a prefix of them (a short read, which
/// then cannot claim end of file).
#[track_caller]
fn check_piped(s: &dyn Store, path: &str, offset: u64, len: usize, plain: &[u8], eof: bool) {
    let Some((mut piped, piped_eof)) = must(
        s.read_piped(&p(path), offset, len),
        &format!("piped read {path} at {offset}"),
    ) else {
        return;
    };
    let n = piped.len();
    let bytes = must(
        piped
            .read_out()
            .map_err(|e| crate::StoreError::Io(e.to_string())),
        "read the pipe out",
    );
    assert_eq!(
        bytes.len(),
        n,
        "piped read of {path}: length and bytes differ"
    );
    assert!(
        piped.is_empty(),
        "piped read of {path}: bytes left after read_out"
    );
    assert!(
        n > 0,
        "piped read of {path} at {offset}: an empty pipe instead of None"
    );
    assert_eq!(
        &plain[..n.min(plain.len())],
        &bytes[..],
        "piped read of {path} at {offset}: other bytes than a plain read"
    );
    if n == plain.len() {
        assert_eq!(
            piped_eof, eof,
            "piped read of {path} at {offset}: end of file"
        );
    } else {
        assert!(
            !piped_eof,
            "piped read of {path} at {offset}: short, yet end of file"
        );
    }
}

/// One entry as a listing returned it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: Vec<u8>,
    pub next: ListPos,
    pub object: u64,
    pub kind: FileKind,
    pub attrs: Option<StoreResult<Attrs>>,
}

/// Entries of `dir` after `from` to the end, with whether the end was
/// reported.
pub fn list_from(
    s: &dyn Store,
    dir: &RelPath,
    from: &ListPos,
    stat: bool,
) -> StoreResult<Vec<Listed>> {
    let mut out = Vec::new();
    let end = s.list(dir, from, stat, &mut |e, attrs| {
        out.push(Listed {
            name: e.name.to_vec(),
            next: e.next.clone(),
            object: e.object,
            kind: e.kind,
            attrs,
        });
        true
    })?;
    assert!(
        end,
        "list of {dir}: a visitor that never stops must reach the end"
    );
    Ok(out)
}

/// All entries of `dir`.
#[track_caller]
pub fn list_all(s: &dyn Store, dir: &str) -> Vec<Listed> {
    must(
        list_from(s, &p(dir), &ListPos::Start, false),
        &format!("list {dir}"),
    )
}

/// The names in `dir`, asserting each is listed once.
#[track_caller]
pub fn names(s: &dyn Store, dir: &str) -> BTreeSet<Vec<u8>> {
    let all = list_all(s, dir);
    let set: BTreeSet<Vec<u8>> = all.iter().map(|e| e.name.clone()).collect();
    assert_eq!(set.len(), all.len(), "list of {dir:?} repeats a name");
    set
}

/// A set of names from string literals.
pub fn name_set(names: &[&str]) -> BTreeSet<Vec<u8>> {
    names.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Says (loudly, on stderr) that part of a check does not apply to this
/// store, and what is checked instead.
pub fn not_applicable(check: &str, why: &str) {
    eprintln!("{check}: {why}");
}
