//! The exports in force and the pseudo filesystem over them, changeable
//! while the server runs (`nfs4d ctl reload`, SIGHUP; docs/operations.md).
//!
//! # Reading without a lock
//!
//! Every request looks its export up, several times per COMPOUND, on every
//! core at once; exports change a few times in the life of a server. The
//! set in force is therefore an immutable [`Table`] (exports by id and the
//! pseudo tree), and a change publishes a new table: it is appended to an
//! append-only list ([`Versions`]) and an atomic index switches to it. A
//! table is never freed while the server runs, so a reader's `&Export` or
//! `&[PseudoNode]` stays valid for as long as it likes with no reference
//! count, lock or epoch on the request path: a lookup is one atomic load
//! and one `OnceLock` read. The price is memory: each change keeps a copy
//! of the export list (a few hundred bytes per export), so changes are
//! bounded ([`MAX_VERSIONS`]; past it a change is refused until the
//! server restarts).
//!
//! A request that looked an export up before a change finishes with what
//! it saw; its next lookup sees the new table. A removed export answers
//! NFS4ERR_STALE to every handle of it from then on (RFC 7530 §4.2.2: the
//! file system is no longer available).
//!
//! # Stable numbers
//!
//! Export ids are in every handle and every handle-map record, so they
//! must not change while an export is served, nor across restarts: they
//! are kept by pseudo path in the key-value store ([`ExportIds`]). A
//! state directory from before the registry starts it with each export's
//! place in the configuration, the ids it always had. Pseudo-filesystem
//! nodes are numbered by path the same way within a run: a node keeps its
//! number while exports come and go, and a node with no live export below
//! it answers NFS4ERR_STALE.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use nfs4d_kv::{Kv, KvError, Tree};
use nfs4d_store::{
    Attrs, Capabilities, Created, Entry, FsStats, ListPos, Name, Owner, RelPath, SetAttrs,
    Stability, Store, StoreError, StoreResult,
};

use super::vfs::{Export, PseudoNode};
use crate::config::ExportConfig;

/// Tables published over the life of a server (the first included).
pub const MAX_VERSIONS: usize = 4096;
/// Distinct export paths over the life of a state directory; export ids
/// stay below (handle-map export roots use ids below 2^32).
pub const MAX_EXPORT_IDS: u32 = 1 << 16;

/// An append-only list whose entries never move nor go away, so a
/// reference to one lives as long as the list. Its slots are allocated up
/// front (an empty slot is a few dozen bytes; [`MAX_VERSIONS`] of them
/// about a quarter of a megabyte), so reading an entry is an index and
/// one `OnceLock` check: the request path reads the table in force
/// several times per COMPOUND.
struct Versions<T> {
    slots: Box<[OnceLock<T>]>,
    len: Mutex<usize>,
}

impl<T> Versions<T> {
    fn new() -> Self {
        Versions {
            slots: (0..MAX_VERSIONS).map(|_| OnceLock::new()).collect(),
            len: Mutex::new(0),
        }
    }

    /// Appends `v`; returns its index, or gives it back when full.
    fn push(&self, v: T) -> Result<usize, T> {
        let mut len = self.len.lock().unwrap_or_else(PoisonError::into_inner);
        let i = *len;
        let Some(slot) = self.slots.get(i) else {
            return Err(v);
        };
        if slot.set(v).is_err() {
            unreachable!("entry {i} filled twice under the lock");
        }
        *len = i + 1;
        Ok(i)
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.get()
    }
}

/// One published set of exports.
pub struct Table {
    /// Exports by id (`None`: no export has that id now).
    pub exports: Vec<Option<Export>>,
    /// The pseudo filesystem; node 0 is the root.
    pub pseudo: Vec<PseudoNode>,
}

impl Table {
    /// The pseudo tree over `exports`, numbering nodes as `old` did (a
    /// path keeps its node number; new paths get new numbers). Nodes on
    /// no live export's path stay, dead, so their numbers are never
    /// reused for another path.
    pub fn build(exports: Vec<Option<Export>>, old: &[PseudoNode]) -> Table {
        let mut pseudo: Vec<PseudoNode> = old
            .iter()
            .map(|n| PseudoNode {
                name: n.name.clone(),
                parent: n.parent,
                children: Vec::new(),
                export: None,
                live: false,
            })
            .collect();
        if pseudo.is_empty() {
            pseudo.push(PseudoNode {
                name: String::new(),
                parent: 0,
                children: Vec::new(),
                export: None,
                live: true,
            });
        }
        pseudo[0].live = true;
        for e in exports.iter().flatten() {
            let mut at = 0;
            for comp in crate::config::normalize_pseudo(&e.cfg.path) {
                let found =
                    (1..pseudo.len()).find(|&c| pseudo[c].parent == at && pseudo[c].name == comp);
                at = match found {
                    Some(c) => c,
                    None => {
                        pseudo.push(PseudoNode {
                            name: comp,
                            parent: at,
                            children: Vec::new(),
                            export: None,
                            live: false,
                        });
                        pseudo.len() - 1
                    }
                };
                if !pseudo[at].live {
                    pseudo[at].live = true;
                    let parent = pseudo[at].parent;
                    pseudo[parent].children.push(at);
                }
            }
            pseudo[at].export = Some(e.id);
        }
        for n in &mut pseudo {
            n.children.sort_unstable();
        }
        Table { exports, pseudo }
    }

    /// The export with this id, if it is served.
    pub fn export(&self, id: u32) -> Option<&Export> {
        self.exports.get(id as usize)?.as_ref()
    }
}

/// The published tables and which one is in force; shared by the
/// [`super::vfs::Vfs`] and its pseudo-tree view.
pub struct Shared {
    versions: Versions<Table>,
    current: AtomicUsize,
}

impl Shared {
    /// Starts with `first` in force.
    pub fn new(first: Table) -> Shared {
        let versions = Versions::new();
        if versions.push(first).is_err() {
            unreachable!("an empty list has room");
        }
        Shared {
            versions,
            current: AtomicUsize::new(0),
        }
    }

    /// The table in force.
    #[inline]
    pub fn table(&self) -> &Table {
        let i = self.current.load(Ordering::Acquire);
        match self.versions.get(i) {
            Some(t) => t,
            None => unreachable!("the index only ever names a published table"),
        }
    }

    /// Puts `t` in force. Callers serialise changes (the vfs's change
    /// lock), so a table is always built from the one it replaces.
    pub fn publish(&self, t: Table) -> Result<(), TableFull> {
        let i = self.versions.push(t).map_err(|_| TableFull)?;
        self.current.store(i, Ordering::Release);
        Ok(())
    }
}

/// [`MAX_VERSIONS`] tables have been published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the exports changed {MAX_VERSIONS} times since the server started; restart it to change them again")]
pub struct TableFull;

/// The pseudo filesystem in force, as a slice: `vfs.pseudo[n]`,
/// `vfs.pseudo.len()`. Node numbers only ever grow, so an index read from
/// one table is valid in every later one.
pub struct PseudoView(pub(super) Arc<Shared>);

impl std::ops::Deref for PseudoView {
    type Target = [PseudoNode];
    fn deref(&self) -> &[PseudoNode] {
        &self.0.table().pseudo
    }
}

/// Export ids by pseudo path, kept in the key-value store (tree
/// `exports`: normalised path → u32 big-endian).
pub struct ExportIds {
    tree: Arc<dyn Tree>,
}

/// The tree of [`ExportIds`].
pub const IDS_TREE: &str = "exports";

impl ExportIds {
    /// Opens the registry.
    pub fn open(kv: &dyn Kv) -> Result<ExportIds, KvError> {
        Ok(Self::with_tree(kv.tree(IDS_TREE)?))
    }

    /// The registry in `tree` (opened as [`IDS_TREE`]).
    pub fn with_tree(tree: Arc<dyn Tree>) -> ExportIds {
        ExportIds { tree }
    }

    fn key(path: &str) -> Vec<u8> {
        format!("/{}", crate::config::normalize_pseudo(path).join("/")).into_bytes()
    }

    fn all(&self) -> Result<Vec<(Vec<u8>, u32)>, KvError> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(b"") {
            let (k, v) = kv?;
            let id = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    KvError::Store(format!(
                        "export id of {:?} is not 4 bytes",
                        String::from_utf8_lossy(&k)
                    ))
                })?;
            out.push((k, id));
        }
        Ok(out)
    }

    /// The ids of `paths` (in order), registering paths not seen before.
    /// On an empty registry, path `i` gets id `i`: the numbering of
    /// servers that kept no registry. New paths get the next unused id.
    pub fn assign(&self, paths: &[&str]) -> Result<Vec<u32>, KvError> {
        let known = self.all()?;
        let fresh = known.is_empty();
        let mut next = known.iter().map(|(_, id)| id + 1).max().unwrap_or(0);
        let mut out = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            let key = Self::key(p);
            if let Some((_, id)) = known.iter().find(|(k, _)| *k == key) {
                out.push(*id);
                continue;
            }
            let id = if fresh { i as u32 } else { next };
            if id >= MAX_EXPORT_IDS {
                return Err(KvError::Store(format!(
                    "more than {MAX_EXPORT_IDS} distinct export paths in this state directory"
                )));
            }
            next = next.max(id + 1);
            // Claimed once: a racing writer (a cluster head) keeps its id.
            match self
                .tree
                .compare_and_swap(&key, None, Some(&id.to_be_bytes()))?
            {
                Ok(()) => out.push(id),
                Err(Some(v)) if v.len() == 4 => {
                    out.push(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
                }
                Err(_) => return Err(KvError::Store(format!("export id of {p:?} is unreadable"))),
            }
        }
        Ok(out)
    }
}

/// What a removed export's [`super::vfs::SwapStore`] holds from then on, so
/// that its store (open descriptors, caches) is released although old
/// tables still name the export: every call answers
/// [`StoreError::Stale`], as the export's handles do.
pub struct Retired {
    /// The capabilities of the store it replaced (an export's never change).
    pub caps: Capabilities,
}

impl Store for Retired {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }
    fn stat(&self, _: &RelPath) -> StoreResult<Attrs> {
        Err(StoreError::Stale)
    }
    fn lookup(&self, _: &RelPath, _: &Name) -> StoreResult<Attrs> {
        Err(StoreError::Stale)
    }
    fn read(&self, _: &RelPath, _: u64, _: usize, _: &mut Vec<u8>) -> StoreResult<(usize, bool)> {
        Err(StoreError::Stale)
    }
    fn write(
        &self,
        _: &RelPath,
        _: u64,
        _: &[u8],
        _: Stability,
    ) -> StoreResult<(usize, Stability)> {
        Err(StoreError::Stale)
    }
    fn commit(&self, _: &RelPath) -> StoreResult<()> {
        Err(StoreError::Stale)
    }
    fn create_file(
        &self,
        _: &RelPath,
        _: &Name,
        _: u32,
        _: Owner,
        _: bool,
    ) -> StoreResult<Created> {
        Err(StoreError::Stale)
    }
    fn mkdir(&self, _: &RelPath, _: &Name, _: u32, _: Owner) -> StoreResult<Attrs> {
        Err(StoreError::Stale)
    }
    fn rename(&self, _: &RelPath, _: &Name, _: &RelPath, _: &Name) -> StoreResult<()> {
        Err(StoreError::Stale)
    }
    fn remove(&self, _: &RelPath, _: &Name) -> StoreResult<Attrs> {
        Err(StoreError::Stale)
    }
    fn rmdir(&self, _: &RelPath, _: &Name) -> StoreResult<()> {
        Err(StoreError::Stale)
    }
    fn list(
        &self,
        _: &RelPath,
        _: &ListPos,
        _: bool,
        _: &mut dyn FnMut(Entry<'_>, Option<StoreResult<Attrs>>) -> bool,
    ) -> StoreResult<bool> {
        Err(StoreError::Stale)
    }
    fn setattr(&self, _: &RelPath, _: &SetAttrs) -> StoreResult<Attrs> {
        Err(StoreError::Stale)
    }
    fn statfs(&self) -> StoreResult<FsStats> {
        Err(StoreError::Stale)
    }
}

/// How a new configuration's exports differ from those in force
/// ([`plan`]).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Exports to serve from now on.
    pub add: Vec<ExportConfig>,
    /// Ids and paths of exports to stop serving.
    pub remove: Vec<(u32, String)>,
    /// Exports whose access rules (or other settings that apply to the
    /// next request) change.
    pub rules: Vec<(u32, ExportConfig)>,
    /// Exports left exactly as they are.
    pub unchanged: usize,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.rules.is_empty()
    }
}

/// Compares the exports in force (`current`) with a new configuration's
/// (`new`), matching them by pseudo path. What a running export cannot
/// change is refused with the reason, and nothing is applied: its backing
/// directory (moving it is `nfs4d ctl migrate`; the directory it was
/// migrated to is accepted) and its handle policy (`filehandles`,
/// `expire_on`, `noexpire_with_open`: handles already issued were stamped
/// by the old one).
pub fn plan(current: &[&Export], new: &[ExportConfig]) -> Result<Plan, String> {
    let key = |p: &str| crate::config::normalize_pseudo(p);
    let mut out = Plan::default();
    for e in current {
        if !new.iter().any(|n| key(&n.path) == key(&e.cfg.path)) {
            out.remove.push((e.id, e.cfg.path.clone()));
        }
    }
    for n in new {
        let Some(e) = current.iter().find(|e| key(&e.cfg.path) == key(&n.path)) else {
            out.add.push(n.clone());
            continue;
        };
        if n.dir != e.cfg.dir && n.dir != e.store.dir() {
            return Err(format!(
                "export {}: dir changed from {} to {}; a served export moves with `nfs4d ctl migrate` (or remove it, reload, and add it back)",
                n.path,
                e.cfg.dir.display(),
                n.dir.display()
            ));
        }
        if n.handle_policy() != e.cfg.handle_policy() {
            return Err(format!(
                "export {}: filehandles, expire_on or noexpire_with_open changed; the handles of a served export keep their policy until the server restarts",
                n.path
            ));
        }
        if *n == e.cfg {
            out.unchanged += 1;
        } else {
            out.rules.push((e.id, n.clone()));
        }
    }
    Ok(out)
}

/// Where `nfs4d ctl migrate` moved exports, kept in the key-value store
/// (tree `migrations`: normalised pseudo path → the configured directory
/// and the one served since), so a restart serves what the running
/// server served (docs/filehandles.md#migration).
///
/// A record counts only while the configuration still names the
/// directory the export was moved away from: once the administrator
/// writes the new directory into the configuration (or any other), the
/// configuration wins and the record is dropped.
pub struct MigrationRecords {
    tree: Arc<dyn Tree>,
}

/// The tree of [`MigrationRecords`].
pub const MIGRATIONS_TREE: &str = "migrations";

/// What the records say about one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// No migration applies: serve the configured directory.
    Configured,
    /// Serve this directory, moved to from the configured one.
    Migrated(std::path::PathBuf),
}

impl MigrationRecords {
    /// Opens the records.
    pub fn open(kv: &dyn Kv) -> Result<MigrationRecords, KvError> {
        Ok(Self::with_tree(kv.tree(MIGRATIONS_TREE)?))
    }

    /// The records in `tree` (opened as [`MIGRATIONS_TREE`]).
    pub fn with_tree(tree: Arc<dyn Tree>) -> MigrationRecords {
        MigrationRecords { tree }
    }

    fn encode(from: &std::path::Path, to: &std::path::Path) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let mut v = from.as_os_str().as_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(to.as_os_str().as_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        use std::os::unix::ffi::OsStrExt;
        let at = v.iter().position(|b| *b == 0)?;
        let p = |b: &[u8]| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(b));
        Some((p(&v[..at]), p(&v[at + 1..])))
    }

    /// Records that the export at `path`, configured with directory
    /// `configured`, is served from `to` from now on. Durable once the
    /// key-value store is flushed.
    pub fn record(
        &self,
        path: &str,
        configured: &std::path::Path,
        to: &std::path::Path,
    ) -> Result<(), KvError> {
        let key = ExportIds::key(path);
        if configured == to {
            // Moved back where the configuration points.
            return self.tree.remove(&key);
        }
        self.tree.insert(&key, &Self::encode(configured, to))
    }

    /// What to serve for the export at `path` whose configuration names
    /// `configured`; drops a record the configuration has overtaken.
    pub fn served(&self, path: &str, configured: &std::path::Path) -> Result<Served, KvError> {
        let key = ExportIds::key(path);
        let Some(v) = self.tree.get(&key)? else {
            return Ok(Served::Configured);
        };
        match Self::decode(&v) {
            Some((from, to)) if from == configured => Ok(Served::Migrated(to)),
            Some((_, to)) => {
                if to != configured {
                    tracing::warn!(
                        export = path,
                        migrated_to = %to.display(),
                        configured = %configured.display(),
                        "the configuration names another directory than the one the export was migrated to; serving the configured one"
                    );
                }
                self.tree.remove(&key)?;
                Ok(Served::Configured)
            }
            None => {
                tracing::warn!(export = path, "unreadable migration record dropped");
                self.tree.remove(&key)?;
                Ok(Served::Configured)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_keep_every_entry_in_place() {
        let v = Versions::new();
        let mut refs = Vec::new();
        for i in 0..100usize {
            assert_eq!(v.push(i), Ok(i));
            refs.push(v.get(i).unwrap() as *const usize);
        }
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(v.get(i), Some(&i));
            assert_eq!(v.get(i).unwrap() as *const usize, *r);
        }
        assert_eq!(v.get(100), None);
    }

    #[test]
    fn versions_are_bounded() {
        let v = Versions::new();
        for i in 0..MAX_VERSIONS {
            v.push(i as u16).unwrap();
        }
        assert_eq!(v.push(7), Err(7));
        assert_eq!(v.get(MAX_VERSIONS - 1), Some(&((MAX_VERSIONS - 1) as u16)));
    }

    #[test]
    fn publishing_switches_the_table_and_stops_at_the_bound() {
        let shared = Shared::new(Table::build(Vec::new(), &[]));
        let first: *const Table = shared.table();
        for _ in 1..MAX_VERSIONS {
            let old = shared.table();
            let pseudo = old.pseudo.clone();
            shared.publish(Table::build(Vec::new(), &pseudo)).unwrap();
            assert!(!std::ptr::eq(old, shared.table()));
        }
        // Full: refused, the table in force stays, the first one still
        // readable through references taken long ago.
        let last: *const Table = shared.table();
        assert_eq!(
            shared.publish(Table::build(Vec::new(), &[])),
            Err(TableFull)
        );
        assert!(std::ptr::eq(last, shared.table()));
        assert!(std::ptr::eq(first, shared.versions.get(0).unwrap()));
    }

    #[test]
    fn ids_are_stable_by_path_and_start_at_configuration_order() {
        let kv = nfs4d_kv::MemKv::new();
        let ids = ExportIds::open(&kv).unwrap();
        assert_eq!(ids.assign(&["/", "/a", "/b"]).unwrap(), vec![0, 1, 2]);
        // Order and spelling do not matter; a new path gets a new id; a
        // path that comes back gets its old one.
        assert_eq!(ids.assign(&["/b/", "//a", "/c"]).unwrap(), vec![2, 1, 3]);
        assert_eq!(ids.assign(&["/c", "/"]).unwrap(), vec![3, 0]);
        let again = ExportIds::open(&kv).unwrap();
        assert_eq!(again.assign(&["/d", "/a"]).unwrap(), vec![4, 1]);
    }

    #[test]
    fn a_migration_holds_until_the_configuration_moves_on() {
        use std::path::Path;
        let kv = nfs4d_kv::MemKv::new();
        let m = MigrationRecords::open(&kv).unwrap();
        let (a, b, c) = (
            Path::new("/srv/a"),
            Path::new("/srv/b"),
            Path::new("/srv/c"),
        );
        assert_eq!(m.served("/", a).unwrap(), Served::Configured);
        m.record("/", a, b).unwrap();
        // A restart with the old configuration serves the new directory…
        assert_eq!(m.served("//", a).unwrap(), Served::Migrated(b.into()));
        m.record("/", a, c).unwrap();
        assert_eq!(m.served("/", a).unwrap(), Served::Migrated(c.into()));
        // …until the configuration names the new one (or any other).
        assert_eq!(m.served("/", c).unwrap(), Served::Configured);
        assert_eq!(m.served("/", a).unwrap(), Served::Configured);
        m.record("/x", a, b).unwrap();
        m.record("/x", a, a).unwrap();
        assert_eq!(m.served("/x", a).unwrap(), Served::Configured);
    }
}
