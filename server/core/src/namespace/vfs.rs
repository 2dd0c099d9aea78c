//! Glue between handles and backends: exports, the pseudo filesystem, and
//! the resolution of a filehandle to a backend path (and back).
//!
//! A handle names an object id in the sled map; the map turns the id into
//! a path by walking parents; the backend stats that path and the identity
//! it reports must be the one recorded for the id, otherwise the object
//! was replaced behind the server's back and the handle is stale
//! (persistent) or expired (volatile) — it never reaches the newcomer.
//!
//! Each export's handle policy (persistent, or volatile with its
//! `expire_on` events) is handed to the map when the export is first
//! served, so handles are stamped and judged per export
//! (docs/filehandles.md). The set of exports may change while the server
//! runs ([`super::exports`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use nfs4d_fhmap::{FhMap, HandleKind, HandlePolicy, ObjKey, ObjectId};
use nfs4d_store::{
    Attrs, Capabilities, FileKind, ListPos, Name, NameError, Owner, Positions, RelPath, Store,
};

use super::exports::{PseudoView, Shared, Table, TableFull};
use crate::attrs::{Kind, ObjAttrs};
use crate::config::ExportConfig;
use crate::error::{NfsError, NfsResult};

// Handles the map issues fit NFSv4's `nfs_fh4` (RFC 7530 §2.2), and every
// name a store accepts fits the map's records.
const _: () = assert!(nfs4d_fhmap::MAX_HANDLE_LEN <= nfs4d_xdr::nfs4::NFS4_FHSIZE as usize);
const _: () = assert!(nfs4d_store::NAME_MAX <= nfs4d_fhmap::MAX_NAME_LEN);

/// One export. A change of its access rules while the server runs
/// publishes a new `Export` with the same id and store
/// ([`Vfs::change`]); the values here never change under a reader.
#[derive(Clone)]
pub struct Export {
    /// Export id: kept by pseudo path in the state directory, stable
    /// across restarts and configuration changes ([`super::exports::ExportIds`]).
    pub id: u32,
    /// Its configuration.
    pub cfg: ExportConfig,
    /// The store; swappable while the server runs (migration, `ctl`).
    pub store: Arc<SwapStore>,
    /// What the store can do (fixed for the export's life: a migration
    /// replaces the store by one of the same kind).
    pub caps: Capabilities,
    /// Filesystem id reported to clients.
    pub fsid: (u64, u64),
}

impl Export {
    /// The handle policy of this export (from its configuration).
    pub fn policy(&self) -> HandlePolicy {
        self.cfg.handle_policy()
    }

    /// The store, for one call: `e.store().stat(path)`. The guard is a
    /// temporary of that expression, so a migration waits for the call
    /// ([`SwapStore`]); never keep it across another `store()`.
    pub fn store(&self) -> StoreGuard<'_> {
        self.store.current()
    }
}

/// A store that can be replaced atomically while requests run: the
/// migration of an export to another directory (`nfs4d ctl migrate`).
///
/// Every call goes through a read guard on the current store
/// ([`SwapStore::current`]) held for the call's duration, and
/// [`SwapStore::exclusive`] takes the write lock: it waits for the calls in
/// flight to finish and holds new ones back (std's `RwLock` on Linux lets
/// a waiting writer block new readers), so no call ever runs against a
/// half-migrated export and none lands in the old tree after the swap. A
/// request spanning several calls may see the old tree for its first calls
/// and the new one for the rest; see docs/filehandles.md. Because a
/// waiting writer blocks new readers, one thread must never hold two
/// guards at once.
pub struct SwapStore {
    inner: RwLock<Current>,
}

struct Current {
    store: Arc<dyn Store>,
    dir: PathBuf,
}

/// Read access to the current store of a [`SwapStore`] for one call.
pub struct StoreGuard<'a>(RwLockReadGuard<'a, Current>);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.0.store
    }
}

/// Exclusive access to a [`SwapStore`] during a migration.
pub struct SwapGuard<'a>(RwLockWriteGuard<'a, Current>);

impl SwapGuard<'_> {
    /// The store being replaced.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The directory it serves.
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// Installs `store` (serving `dir`); takes effect when the guard is
    /// dropped, for every call after that.
    pub fn replace(&mut self, store: Arc<dyn Store>, dir: PathBuf) {
        self.0.store = store;
        self.0.dir = dir;
    }
}

impl SwapStore {
    /// Wraps `store`, which serves directory `dir`.
    pub fn new(store: Arc<dyn Store>, dir: PathBuf) -> SwapStore {
        SwapStore {
            inner: RwLock::new(Current { store, dir }),
        }
    }

    /// The store installed now, for one call.
    pub fn current(&self) -> StoreGuard<'_> {
        // A panic while holding the lock leaves the old or the new store
        // installed, never a mix: poisoning carries no meaning here.
        StoreGuard(self.inner.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The directory the export is currently served from.
    pub fn dir(&self) -> PathBuf {
        self.current().0.dir.clone()
    }

    /// Waits for the calls in flight and holds back new ones until the
    /// guard is dropped.
    pub fn exclusive(&self) -> SwapGuard<'_> {
        SwapGuard(self.inner.write().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A node of the pseudo filesystem (RFC 7530 §7): the directories leading
/// to export roots.
#[derive(Debug, Clone)]
pub struct PseudoNode {
    /// Component name (empty for the root).
    pub name: String,
    /// Parent node (the root is its own parent).
    pub parent: usize,
    /// Child nodes.
    pub children: Vec<usize>,
    /// The export rooted here, if any.
    pub export: Option<u32>,
    /// On the path of a served export. A node whose exports were all
    /// removed keeps its number, dead (its handle is NFS4ERR_STALE).
    pub live: bool,
}

/// What a filehandle resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A pseudo-filesystem directory (index in the pseudo tree).
    Pseudo(usize),
    /// An object of an export.
    Obj {
        /// The export.
        export: u32,
        /// Its id in the handle map.
        id: ObjectId,
        /// Its path relative to the export root.
        path: RelPath,
    },
}

/// A current or saved filehandle: the bytes the client holds and what they
/// resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurFh {
    /// The handle as issued.
    pub fh: Vec<u8>,
    /// Resolved node.
    pub node: Node,
}

impl CurFh {
    /// The (export, id, path) of an export object, or `err` for pseudo nodes.
    pub fn obj(&self) -> Option<(u32, ObjectId, &RelPath)> {
        match &self.node {
            Node::Obj { export, id, path } => Some((*export, *id, path)),
            Node::Pseudo(_) => None,
        }
    }
}

/// Maps a name validation error to the RFC's status (RFC 8881 §15.1.2:
/// empty or "."/".." names are NFS4ERR_INVAL or BADNAME; a "/" or NUL
/// is NFS4ERR_BADNAME; over-long is NAMETOOLONG).
pub fn name_error(e: NameError) -> NfsError {
    match e {
        NameError::Empty => NfsError::Inval,
        NameError::TooLong => NfsError::NameTooLong,
        _ => NfsError::BadName,
    }
}

/// Validates a component4 from the wire: UTF-8 (RFC 8881 §14.4: invalid
/// UTF-8 is NFS4ERR_INVAL) and a legal single component.
pub fn component(bytes: &[u8]) -> NfsResult<Name> {
    if bytes.is_empty() {
        return Err(NfsError::Inval);
    }
    match std::str::from_utf8(bytes) {
        // Noncharacters are not interchangeable text (Unicode §23.7); the
        // RFC's UTF-8 rules make such names NFS4ERR_INVAL.
        Ok(s) if s.chars().any(is_noncharacter) => return Err(NfsError::Inval),
        Ok(_) => {}
        Err(_) => return Err(NfsError::Inval),
    }
    Name::new(bytes).map_err(name_error)
}

/// U+FDD0..U+FDEF and the last two code points of every plane.
pub(crate) fn is_noncharacter(c: char) -> bool {
    let v = c as u32;
    (0xFDD0..=0xFDEF).contains(&v) || v & 0xFFFE == 0xFFFE
}

/// The handle-map kind byte for a backend kind (`nfs_ftype4` values).
pub fn ftype(k: FileKind) -> u8 {
    match k {
        FileKind::Regular => 1,
        FileKind::Directory => 2,
        FileKind::BlockDev => 3,
        FileKind::CharDev => 4,
        FileKind::Symlink => 5,
        FileKind::Socket => 6,
        FileKind::Fifo => 7,
    }
}

/// The handle-map key of an object.
pub fn key_of(a: &Attrs) -> ObjKey {
    ObjKey {
        dev: a.identity.space,
        ino: a.identity.object,
        gen: a.identity.incarnation,
    }
}

/// Converts backend attributes to the attribute codec's input.
pub fn obj_attrs(a: &Attrs) -> ObjAttrs {
    let kind = match a.kind {
        FileKind::Regular => Kind::Regular,
        FileKind::Directory => Kind::Directory,
        FileKind::Symlink => Kind::Symlink,
        FileKind::BlockDev => Kind::BlockDev,
        FileKind::CharDev => Kind::CharDev,
        FileKind::Fifo => Kind::Fifo,
        FileKind::Socket => Kind::Socket,
    };
    let ts = |t: nfs4d_store::Timespec| (t.sec, t.nsec);
    ObjAttrs {
        kind,
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        space_used: a.space_used,
        rdev: a.rdev,
        fileid: a.fileid(),
        atime: ts(a.atime),
        mtime: ts(a.mtime),
        ctime: ts(a.ctime),
        btime: a.btime.map(ts),
        change: change_of(a),
    }
}

/// The change attribute, as the store keeps it (RFC 8881 §5.8.1.4).
pub fn change_of(a: &Attrs) -> u64 {
    a.change
}

/// Exports, the pseudo filesystem and the handle map, with the
/// operations that need all three.
pub struct Vfs {
    /// The exports in force ([`super::exports`]).
    shared: Arc<Shared>,
    /// Pseudo filesystem in force; node 0 is the root.
    pub pseudo: PseudoView,
    /// The handle map.
    pub fhmap: Arc<FhMap>,
    /// Held while an export migrates (one migration at a time).
    migration: std::sync::Mutex<()>,
    /// Held while the set of exports changes (one change at a time).
    changes: std::sync::Mutex<()>,
    /// Exports served by another server now, with the server names that
    /// `fs_locations` gives (a head of a cluster: `ctl migrate
    /// --to-head`). Requests on them answer NFS4ERR_MOVED.
    moved: std::sync::RwLock<std::collections::HashMap<u32, Vec<String>>>,
    /// READDIR cookies of stores that list by key.
    cookies: crate::cookies::KeyCookies,
    /// Directories waiting for the background flush: changed on an
    /// `async` export, or by a journaled change of a `sync` one.
    pub dirty: super::lazy::DirtyDirs,
    /// Journal entries appended since the last checkpoint.
    pub(crate) journal_pending: std::sync::atomic::AtomicU64,
}

/// Why a migration was refused. Every variant is detected before anything
/// changed, except `Store`.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No export is mounted at that pseudo path.
    #[error("no export at {0:?}")]
    UnknownExport(String),
    /// Another migration is running.
    #[error("another migration is in progress")]
    Busy,
    /// The target directory does not exist.
    #[error("target {0} does not exist")]
    Missing(String),
    /// The target is not a directory.
    #[error("target {0} is not a directory")]
    NotDirectory(String),
    /// The export is already served from there.
    #[error("export {0:?} is already served from {1}")]
    SameDirectory(String, String),
    /// The target cannot be opened as a store.
    #[error("cannot use {0}: {1}")]
    Unusable(String, String),
    /// The handle map failed part-way; the export serves the new directory,
    /// and records not re-keyed yet answer STALE/FHEXPIRED when used.
    #[error("handle map error after the switch began: {0}")]
    Store(String),
}

/// What a migration did.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    /// Export id.
    pub export: u32,
    /// Directory served before.
    pub from: PathBuf,
    /// Directory served now.
    pub to: PathBuf,
    /// Records kept (found intact at the same path) and missing.
    pub stats: nfs4d_fhmap::MigrateStats,
    /// Whether the export's volatile handles were expired.
    pub expired: bool,
}

/// Why a change of the exports was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// An export to add has the id of one in force.
    #[error("export id {0} is in use")]
    Conflict(u32),
    /// An export to add could not be set up.
    #[error("export {0}: {1}")]
    Export(String, NfsError),
    /// Too many changes since start.
    #[error(transparent)]
    Full(#[from] TableFull),
}

/// Hands an export's handle policy to the map and records its root,
/// before the first handle of it is issued.
fn register(fhmap: &FhMap, e: &Export) -> NfsResult<()> {
    fhmap.set_policy(e.id, e.policy());
    let root = e.store().stat(&RelPath::root())?;
    fhmap.ensure_export_root(e.id, key_of(&root))?;
    Ok(())
}

impl Vfs {
    /// Builds the pseudo tree over the exports and registers export roots.
    pub fn new(exports: Vec<Export>, fhmap: Arc<FhMap>) -> NfsResult<Vfs> {
        for e in &exports {
            register(&fhmap, e)?;
        }
        let mut by_id: Vec<Option<Export>> = Vec::new();
        for e in exports {
            let i = e.id as usize;
            if by_id.len() <= i {
                by_id.resize_with(i + 1, || None);
            }
            by_id[i] = Some(e);
        }
        let shared = Arc::new(Shared::new(Table::build(by_id, &[])));
        let vfs = Vfs {
            pseudo: PseudoView(shared.clone()),
            shared,
            fhmap,
            migration: std::sync::Mutex::new(()),
            changes: std::sync::Mutex::new(()),
            moved: Default::default(),
            cookies: Default::default(),
            dirty: Default::default(),
            journal_pending: Default::default(),
        };
        Ok(vfs)
    }

    /// Marks the export at pseudo path `export_path` as served by
    /// `servers` from now on (`None`: served here again). Returns its id.
    pub fn set_moved(&self, export_path: &str, servers: Option<Vec<String>>) -> Option<u32> {
        let want = crate::config::normalize_pseudo(export_path);
        let e = self
            .exports()
            .into_iter()
            .find(|e| crate::config::normalize_pseudo(&e.cfg.path) == want)?;
        let mut m = self.moved.write().unwrap_or_else(|p| p.into_inner());
        match servers {
            Some(s) => m.insert(e.id, s),
            None => m.remove(&e.id),
        };
        Some(e.id)
    }

    /// The servers export `id` moved to, if it did.
    pub fn moved_to(&self, id: u32) -> Option<Vec<String>> {
        self.moved
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// The export with this id; NFS4ERR_STALE when no export has it (any
    /// more: removed while the server runs).
    #[inline]
    pub fn export(&self, id: u32) -> NfsResult<&Export> {
        self.shared.table().export(id).ok_or(NfsError::Stale)
    }

    /// The exports in force, by id.
    pub fn exports(&self) -> Vec<&Export> {
        self.shared.table().exports.iter().flatten().collect()
    }

    /// The export served at pseudo path `path`.
    pub fn export_at(&self, path: &str) -> Option<&Export> {
        let want = crate::config::normalize_pseudo(path);
        self.exports()
            .into_iter()
            .find(|e| crate::config::normalize_pseudo(&e.cfg.path) == want)
    }

    /// Whether some export in force admits a client at `peer` (address
    /// and source port; docs/security.md).
    pub fn any_export_admits(&self, peer: std::net::SocketAddr) -> bool {
        self.shared
            .table()
            .exports
            .iter()
            .flatten()
            .any(|e| crate::export_access::host_access(&e.cfg, peer).is_ok())
    }

    /// Changes the set of exports while the server runs: `add` are served
    /// from now on (their stores opened, ids assigned by the caller), the
    /// exports with ids in `remove` stop being served (their handles
    /// answer NFS4ERR_STALE), and `rules` replace the configuration of
    /// exports that stay, for every request that looks them up after this
    /// returns. Everything else — other exports, their handles, client
    /// state — is untouched. Blocking (stores and the handle map).
    pub fn change(
        &self,
        add: Vec<Export>,
        remove: &[u32],
        rules: Vec<(u32, ExportConfig)>,
    ) -> Result<(), ChangeError> {
        let _one = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        for e in &add {
            if self.export(e.id).is_ok() {
                return Err(ChangeError::Conflict(e.id));
            }
            register(&self.fhmap, e).map_err(|err| ChangeError::Export(e.cfg.path.clone(), err))?;
            crate::namespace::orphans::prepare(self, e)
                .map_err(|err| ChangeError::Export(e.cfg.path.clone(), err))?;
        }
        let old = self.shared.table();
        let mut by_id = old.exports.clone();
        for id in remove {
            if let Some(slot) = by_id.get_mut(*id as usize) {
                *slot = None;
            }
        }
        for (id, cfg) in rules {
            if let Some(Some(e)) = by_id.get_mut(id as usize) {
                e.cfg = cfg;
            }
        }
        for e in add {
            let i = e.id as usize;
            if by_id.len() <= i {
                by_id.resize_with(i + 1, || None);
            }
            by_id[i] = Some(e);
        }
        self.shared.publish(Table::build(by_id, &old.pseudo))?;
        // Removed exports let go of their stores (descriptors, caches): a
        // request that looked one up before the change gets STALE from it.
        for id in remove {
            if let Some(e) = old.export(*id) {
                let mut g = e.store.exclusive();
                let caps = g.store().capabilities();
                let dir = g.dir().to_path_buf();
                g.replace(Arc::new(super::exports::Retired { caps }), dir);
            }
        }
        Ok(())
    }

    /// The handle of an export's root (never stamped: it never expires).
    pub fn export_root(&self, id: u32) -> NfsResult<CurFh> {
        let oid = ObjectId::export_root(id);
        Ok(CurFh {
            fh: self.fhmap.encode(id, oid, 0),
            node: Node::Obj {
                export: id,
                id: oid,
                path: RelPath::root(),
            },
        })
    }

    /// The handle of a pseudo node (an export root if one is mounted there).
    pub fn pseudo_fh(&self, node: usize) -> NfsResult<CurFh> {
        match self.pseudo.get(node).ok_or(NfsError::Stale)?.export {
            Some(e) => self.export_root(e),
            None => Ok(CurFh {
                fh: self.fhmap.encode_pseudo(node as u64),
                node: Node::Pseudo(node),
            }),
        }
    }

    /// PUTROOTFH: the pseudo root (or the export mounted at "/").
    pub fn root(&self) -> NfsResult<CurFh> {
        self.pseudo_fh(0)
    }

    /// Resolves a client's handle (PUTFH), with no file counted as open
    /// (see [`Self::resolve_with`]).
    pub fn resolve(&self, fh: &[u8]) -> NfsResult<CurFh> {
        self.resolve_with(fh, &|_, _| false, &|_, _| false)
            .map(|(cur, _)| cur)
    }

    /// Resolves a client's handle (PUTFH). `is_open(export, id)` tells
    /// whether a file is open, for exports whose volatile handles do not
    /// expire while open (FH4_NOEXPIRE_WITH_OPEN).
    ///
    /// NFS4ERR_STALE when the object is known to be removed; on a volatile
    /// export NFS4ERR_FHEXPIRED when the handle is out of date or its
    /// object vanished behind the server's back (RFC 7530 §4.2.3); the
    /// caller may turn the latter into STALE for clients that cannot take
    /// FHEXPIRED (`expired_error`, ops/common.rs).
    ///
    /// An object that `delegated(export, id)` says has delegations out
    /// stays reachable after its name vanished or was taken by another
    /// object outside the server: the server recalls those delegations
    /// when it sees the change (backend/lease.rs), and the holder must be
    /// able to return them (DELEGRETURN with this handle, RFC 8881
    /// §10.4.4, §18.6). It is then addressed by the path the server would
    /// park it under (orphans.rs), which names nothing else, so operations
    /// that need the object's data or attributes fail rather than touch
    /// whatever holds its old name now.
    pub fn resolve_with(
        &self,
        fh: &[u8],
        is_open: &dyn Fn(u32, ObjectId) -> bool,
        delegated: &dyn Fn(u32, ObjectId) -> bool,
    ) -> NfsResult<(CurFh, Option<Attrs>)> {
        let d = self.fhmap.validate_with(fh, is_open)?;
        if d.kind == HandleKind::Pseudo {
            let n = d.id.0 as usize;
            if !self.pseudo.get(n).is_some_and(|p| p.live) {
                return Err(NfsError::Stale);
            }
            let cur = CurFh {
                fh: fh.to_vec(),
                node: Node::Pseudo(n),
            };
            return Ok((cur, None));
        }
        let export = self.export(d.export)?;
        // A hard-linked object whose primary name vanished outside the
        // server is still reachable through its other links: drop the dead
        // link and try again (bounded by the number of links).
        for _ in 0..64 {
            let comps = self.fhmap.path_of(d.id)?.ok_or(NfsError::Stale)?;
            let names = comps
                .iter()
                .map(|c| Name::new(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| NfsError::ServerFault)?;
            let path = RelPath::from_names(names);
            // The object must still be the one the handle was issued for.
            let rec = self.fhmap.get(d.id)?.ok_or(NfsError::Stale)?;
            match export.store().stat(&path) {
                Ok(a) if key_of(&a) == rec.key => {
                    let cur = CurFh {
                        fh: fh.to_vec(),
                        node: Node::Obj {
                            export: d.export,
                            id: d.id,
                            path,
                        },
                    };
                    return Ok((cur, Some(a)));
                }
                Ok(_) | Err(nfs4d_store::StoreError::NotFound) => {
                    if d.id.is_export_root() {
                        // The export's directory itself is gone or replaced:
                        // the file system is unavailable (RFC 7530 §4.2.2).
                        tracing::warn!(
                            export = d.export,
                            "export root replaced or removed outside the server"
                        );
                        return Err(NfsError::Stale);
                    }
                    if delegated(d.export, d.id) {
                        tracing::info!(export = d.export, path = %path, "delegated object's name vanished outside the server: handle kept for returning the delegation");
                        let cur = CurFh {
                            fh: fh.to_vec(),
                            node: Node::Obj {
                                export: d.export,
                                id: d.id,
                                path: super::reserved::parked_path(d.id),
                            },
                        };
                        return Ok((cur, None));
                    }
                    if self.fhmap.forget_primary_link(d.id)? {
                        // Another hard link survives. With rename expiry the
                        // lost name may have been a rename we did not see, and
                        // the map has just expired the handle: say so, as the
                        // next use of the handle will.
                        if export.policy().rename {
                            tracing::info!(export = d.export, path = %path, "handle's name vanished outside the server: expired");
                            return Err(NfsError::FhExpired);
                        }
                        continue;
                    }
                    tracing::info!(export = d.export, path = %path, "handle's object was replaced or removed outside the server");
                    return Err(self.gone_error(export));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(NfsError::Stale)
    }

    /// The status for a handle whose object is no longer where the map
    /// says: STALE for a persistent export (the object is gone or was
    /// replaced); on a volatile export that expires on rename (or at any
    /// time) FHEXPIRED, since a removal cannot be told from a rename the
    /// server did not see (RFC 7530 §4.2.3). The map keeps a tombstone, so
    /// later uses of the handle say the same.
    fn gone_error(&self, export: &Export) -> NfsError {
        if export.policy().expires_out_of_band() {
            NfsError::FhExpired
        } else {
            NfsError::Stale
        }
    }

    /// Issues the handle for `name` in directory `dir` whose attributes
    /// are `a`, recording it in the map. Returns the handle and the map
    /// write sequence that must be durable before it leaves.
    pub fn child_fh(
        &self,
        export: u32,
        dir: ObjectId,
        dir_path: &RelPath,
        name: &Name,
        a: &Attrs,
    ) -> NfsResult<(CurFh, u64)> {
        let (id, fh, seq) = self.child_handle(export, dir, name.as_bytes(), a)?;
        Ok((
            CurFh {
                fh,
                node: Node::Obj {
                    export,
                    id,
                    path: dir_path.join(name),
                },
            },
            seq,
        ))
    }

    /// [`Vfs::child_fh`] without the child's path, which READDIR does not
    /// need for an entry's `filehandle` attribute: the object, its handle
    /// and the write sequence. `name` must be a valid [`Name`]'s bytes.
    pub fn child_handle(
        &self,
        export: u32,
        dir: ObjectId,
        name: &[u8],
        a: &Attrs,
    ) -> NfsResult<(ObjectId, Vec<u8>, u64)> {
        let id = self
            .fhmap
            .lookup_or_insert(export, dir, name, key_of(a), ftype(a.kind))?;
        // Only exports that expire on rename or migration embed the stamp;
        // skip the ancestor walk for the others.
        let policy = self.fhmap.policy(export);
        let stamp = if policy.stamps_generation() {
            self.fhmap.stamp_of(id)?.ok_or(NfsError::Stale)?
        } else {
            0
        };
        // On an async export the record reaches disk with the next
        // background flush (lazy.rs): nothing for the reply to wait for.
        let seq = match self.export(export) {
            Ok(e) => self.durable_for(e, self.fhmap.last_seq()),
            Err(_) => self.fhmap.last_seq(),
        };
        Ok((id, self.fhmap.encode_with(export, id, stamp, policy), seq))
    }

    /// Moves the export mounted at pseudo path `export_path` to another
    /// store, which should hold a copy of the current tree (`cp -a`, `rsync
    /// -a`), while the server runs (`nfs4d ctl migrate`, RFC 7530 §8 calls
    /// this migration). `open` is given the directory the export is served
    /// from now; it checks the target and opens it, returning the new store
    /// and the directory it serves.
    ///
    /// "Moved intact" is decided per object by path and type: an object
    /// the map knows at path P keeps its id (its persistent handles stay
    /// valid) if the new tree has an object of the same type at P; its
    /// record takes the new identity (a copy has new device/inode/birth
    /// time, so identity cannot be the criterion). Objects not found so
    /// answer STALE (FHEXPIRED on a volatile export) when next used. With
    /// `migration` in the export's `expire_on`, every volatile handle of the
    /// export except the root's is expired.
    ///
    /// Store calls are held back from the start of the re-keying to the
    /// swap ([`SwapStore::exclusive`]). Blocking: run it off the network
    /// threads.
    pub fn migrate(
        &self,
        export_path: &str,
        open: impl FnOnce(&Path) -> Result<(Arc<dyn Store>, PathBuf), MigrateError>,
    ) -> Result<MigrateReport, MigrateError> {
        let e = self
            .export_at(export_path)
            .ok_or_else(|| MigrateError::UnknownExport(export_path.to_string()))?;
        let _one = match self.migration.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => return Err(MigrateError::Busy),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        let from = e.store.dir();
        let (new, to) = open(&from)?;
        let shown = to.display().to_string();
        let root = new
            .stat(&RelPath::root())
            .map_err(|err| MigrateError::Unusable(shown.clone(), err.to_string()))?;
        let expire = e.policy().migration;
        let mut guard = e.store.exclusive();
        let mut probe = |path: &[Vec<u8>], rec: &nfs4d_fhmap::ObjRecord| -> Option<ObjKey> {
            let names = path
                .iter()
                .map(|c| Name::new(c))
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let a = new.stat(&RelPath::from_names(names)).ok()?;
            (ftype(a.kind) == rec.kind).then(|| key_of(&a))
        };
        let result = self
            .fhmap
            .migrate_export(e.id, key_of(&root), expire, &mut probe);
        // Swap even after a map error: the re-keying has begun, so the old
        // tree no longer matches the map either.
        guard.replace(new, to.clone());
        drop(guard);
        let stats = result.map_err(|err| {
            tracing::error!(export = %export_path, error = %err, "migration: handle map update failed part-way");
            MigrateError::Store(err.to_string())
        })?;
        // The hidden directory for files removed while open (orphans.rs); a
        // copy may lack it. Its id is registered when first needed.
        let owner = Owner { uid: 0, gid: 0 };
        if let Ok(dir) = Name::new(super::reserved::ORPHAN_DIR) {
            match e.store().mkdir(&RelPath::root(), &dir, 0o700, owner) {
                Ok(_) | Err(nfs4d_store::StoreError::Exists) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "migration: cannot create the orphan directory")
                }
            }
        }
        // Where a restart finds it: the configuration still names the old
        // directory until the administrator edits it.
        let recorded = self
            .fhmap
            .open_tree(super::exports::MIGRATIONS_TREE)
            .map_err(|err| err.to_string())
            .and_then(|tree| {
                super::exports::MigrationRecords::with_tree(tree)
                    .record(&e.cfg.path, &e.cfg.dir, &to)
                    .map_err(|err| err.to_string())
            });
        if let Err(err) = recorded {
            tracing::error!(error = %err, "migration: cannot record the move for the next start");
            return Err(MigrateError::Store(err));
        }
        if let Err(err) = self.fhmap.make_durable(self.fhmap.last_seq()) {
            tracing::error!(error = %err, "migration: flushing the handle map failed");
            return Err(MigrateError::Store(err.to_string()));
        }
        Ok(MigrateReport {
            export: e.id,
            from,
            to,
            stats,
            expired: expire,
        })
    }

    /// The listing position READDIR cookie `cookie` of directory `dir`
    /// stands for (RFC 8881 §18.23.3: 0 is the start). Stores with offsets
    /// use them as cookies; for stores that list by key the cookie names a
    /// remembered key, and one not remembered is NFS4ERR_BAD_COOKIE.
    pub fn list_pos(&self, e: &Export, dir: ObjectId, cookie: u64) -> NfsResult<ListPos> {
        if cookie == 0 {
            return Ok(ListPos::Start);
        }
        match e.caps.positions {
            Positions::Offsets => Ok(ListPos::Offset(cookie)),
            Positions::Keys => self
                .cookies
                .key(e.id, dir, cookie)
                .map(ListPos::Key)
                .ok_or(NfsError::BadCookie),
        }
    }

    /// The READDIR cookie for listing position `pos` of directory `dir`.
    pub fn cookie_of(&self, e: &Export, dir: ObjectId, pos: &ListPos) -> u64 {
        match pos {
            ListPos::Start => 0,
            ListPos::Offset(c) => *c,
            ListPos::Key(k) => self.cookies.cookie(e.id, dir, k.clone()),
        }
    }

    /// Whether a file of `export` at or below `id` is open (`open_files`
    /// lists the open files of the export, from the state table). Used to
    /// refuse a RENAME or REMOVE that would expire an open file's handle
    /// (RFC 7530 §4.2.3).
    pub fn open_at_or_below(&self, id: ObjectId, open_files: &[ObjectId]) -> NfsResult<bool> {
        for f in open_files {
            if self.fhmap.is_within(*f, id)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Attributes of a pseudo directory: synthesized, read-only.
    pub fn pseudo_attrs(&self, node: usize) -> ObjAttrs {
        ObjAttrs {
            kind: Kind::Directory,
            mode: 0o555,
            nlink: 2 + self.pseudo[node].children.len() as u32,
            uid: 0,
            gid: 0,
            size: 4096,
            space_used: 4096,
            rdev: (0, 0),
            fileid: node as u64 + 1,
            atime: (0, 0),
            mtime: (0, 0),
            ctime: (0, 0),
            btime: None,
            change: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use nfs4d_store_memory::MemStore;

    use super::*;
    use crate::config::Config;
    use crate::server::{Parts, Server};

    fn server() -> Server {
        let cfg = Config::parse("[[export]]\npath = \"/\"\ndir = \"/m\"\n").expect("config");
        Server::new(Parts {
            cfg,
            stores: vec![(Arc::new(MemStore::new()), "/m".into())],
            kv: Arc::new(nfs4d_kv::MemKv::new()),
            mac_key: [1; 16],
            clock: Arc::new(crate::clock::ManualClock::default()),
            idmap: Arc::new(crate::idmap::NumericIds),
            callbacks: Arc::new(crate::state::deleg::NoCallbacks),
            instance: 1,
            host: "t".into(),
            cluster: None,
        })
        .expect("server")
    }

    fn copy() -> Result<(Arc<dyn Store>, PathBuf), MigrateError> {
        Ok((Arc::new(MemStore::new()), "/copy".into()))
    }

    #[test]
    fn one_migration_at_a_time() {
        let srv = server();
        // A second migration asked for while one runs is refused at once.
        let r = srv.vfs.migrate("/", |_| {
            let inner = srv.vfs.migrate("/", |_| copy());
            assert!(matches!(inner, Err(MigrateError::Busy)), "{inner:?}");
            copy()
        });
        let r = r.expect("migrate");
        assert_eq!(r.from, PathBuf::from("/m"));
        assert_eq!(r.to, PathBuf::from("/copy"));
        assert_eq!(srv.vfs.exports()[0].store.dir(), r.to);
        // The export's root is the new store's.
        assert!(srv.vfs.exports()[0].store().stat(&RelPath::root()).is_ok());
        assert!(matches!(
            srv.vfs.migrate("/nowhere", |_| copy()),
            Err(MigrateError::UnknownExport(_))
        ));
    }

    #[test]
    fn exclusive_access_holds_back_store_calls() {
        let srv = Arc::new(server());
        let guard = srv.vfs.exports()[0].store.exclusive();
        let done = Arc::new(AtomicBool::new(false));
        let t = {
            let (srv, done) = (srv.clone(), done.clone());
            std::thread::spawn(move || {
                let r = srv.vfs.exports()[0].store().stat(&RelPath::root());
                done.store(true, Ordering::SeqCst);
                r.is_ok()
            })
        };
        // A negative check: had the call not waited, 100 ms is plenty for
        // it to finish.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            !done.load(Ordering::SeqCst),
            "a call ran during the exclusive section"
        );
        drop(guard);
        assert!(t.join().expect("thread"));
    }
}
