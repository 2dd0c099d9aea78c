//! Glue between handles and backends: exports, the pseudo filesystem, and
//! the resolution of a filehandle to a backend path (and back).
//!
//! A handle names an object id in the sled map; the map turns the id into
//! a path by walking parents; the backend stats that path and the identity
//! it reports must be the one recorded for the id, otherwise the object
//! was replaced behind the server's back and the handle is stale
//! (persistent) or expired (volatile) — it never reaches the newcomer.

use std::sync::Arc;

use crate::attrs::{Kind, ObjAttrs};
use crate::backend::{Attrs, Backend, FileKind, Name, NameError, RelPath};
use crate::config::{ExportConfig, HandleMode};
use crate::error::{NfsError, NfsResult};
use crate::fhmap::{FhError, FhMap, HandleKind, ObjKey, ObjectId};

/// One export.
pub struct Export {
    /// Export id (index in the configuration, stable across restarts as
    /// long as the configuration keeps its order).
    pub id: u32,
    /// Its configuration.
    pub cfg: ExportConfig,
    /// The store.
    pub backend: Arc<dyn Backend>,
    /// Filesystem id reported to clients.
    pub fsid: (u64, u64),
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
fn is_noncharacter(c: char) -> bool {
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
        dev: a.identity.dev,
        ino: a.identity.ino,
        gen: a.identity.gen,
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
    let ts = |t: crate::backend::Timespec| (t.sec, t.nsec);
    ObjAttrs {
        kind,
        mode: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        space_used: a.space_used,
        rdev: a.rdev,
        fileid: a.ino,
        atime: ts(a.atime),
        mtime: ts(a.mtime),
        ctime: ts(a.ctime),
        btime: a.btime.map(ts),
        change: change_of(a),
    }
}

/// The change attribute: ctime in nanoseconds. Every data or metadata
/// change moves ctime on Linux filesystems, and it survives restarts, as
/// RFC 8881 §5.8.1.4 requires of `change`.
pub fn change_of(a: &Attrs) -> u64 {
    (a.ctime.sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(u64::from(a.ctime.nsec))
}

/// Exports, the pseudo filesystem and the handle map, with the
/// operations that need all three.
pub struct Vfs {
    /// Exports by id.
    pub exports: Vec<Export>,
    /// Pseudo filesystem; node 0 is the root.
    pub pseudo: Vec<PseudoNode>,
    /// The handle map.
    pub fhmap: Arc<FhMap>,
}

impl Vfs {
    /// Builds the pseudo tree over the exports and registers export roots.
    pub fn new(exports: Vec<Export>, fhmap: Arc<FhMap>) -> NfsResult<Vfs> {
        let mut pseudo = vec![PseudoNode {
            name: String::new(),
            parent: 0,
            children: vec![],
            export: None,
        }];
        for e in &exports {
            let mut at = 0;
            for comp in crate::config::normalize_pseudo(&e.cfg.path) {
                let found = pseudo[at].children.iter().copied().find(|c| pseudo[*c].name == comp);
                at = match found {
                    Some(c) => c,
                    None => {
                        pseudo.push(PseudoNode {
                            name: comp,
                            parent: at,
                            children: vec![],
                            export: None,
                        });
                        let n = pseudo.len() - 1;
                        pseudo[at].children.push(n);
                        n
                    }
                };
            }
            pseudo[at].export = Some(e.id);
            let root = e.backend.stat(&RelPath::root())?;
            fhmap.ensure_export_root(e.id, key_of(&root))?;
        }
        let vfs = Vfs { exports, pseudo, fhmap };
        for e in &vfs.exports {
            crate::orphans::prepare(&vfs, e)?;
        }
        Ok(vfs)
    }

    /// The export with this id.
    pub fn export(&self, id: u32) -> NfsResult<&Export> {
        self.exports.get(id as usize).ok_or(NfsError::Stale)
    }

    /// The handle of an export's root.
    pub fn export_root(&self, id: u32) -> NfsResult<CurFh> {
        let oid = ObjectId::export_root(id);
        let inc = self.fhmap.incarnation_of(oid)?.unwrap_or(0);
        Ok(CurFh {
            fh: self.fhmap.encode(id, oid, inc),
            node: Node::Obj {
                export: id,
                id: oid,
                path: RelPath::root(),
            },
        })
    }

    /// The handle of a pseudo node (an export root if one is mounted there).
    pub fn pseudo_fh(&self, node: usize) -> NfsResult<CurFh> {
        match self.pseudo[node].export {
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

    /// Resolves a client's handle (PUTFH).
    pub fn resolve(&self, fh: &[u8]) -> NfsResult<CurFh> {
        let d = self.fhmap.validate(fh).map_err(fh_error)?;
        if d.kind == HandleKind::Pseudo {
            let n = d.id.0 as usize;
            if n >= self.pseudo.len() {
                return Err(NfsError::Stale);
            }
            return Ok(CurFh {
                fh: fh.to_vec(),
                node: Node::Pseudo(n),
            });
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
            match export.backend.stat(&path) {
                Ok(a) if key_of(&a) == rec.key => {
                    return Ok(CurFh {
                        fh: fh.to_vec(),
                        node: Node::Obj {
                            export: d.export,
                            id: d.id,
                            path,
                        },
                    })
                }
                Ok(_) | Err(crate::backend::BackendError::NotFound) => {
                    if !d.id.is_export_root() && self.fhmap.forget_primary_link(d.id)? {
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

    /// The status for a handle whose object is no longer where the map says.
    fn gone_error(&self, export: &Export) -> NfsError {
        match export.cfg.filehandles {
            HandleMode::Persistent => NfsError::Stale,
            HandleMode::Volatile => NfsError::FhExpired,
        }
    }

    /// Issues the handle for `name` in directory `dir` whose attributes
    /// are `a`, recording it in the map. Returns the handle and the map
    /// write sequence that must be durable before it leaves.
    pub fn child_fh(&self, export: u32, dir: ObjectId, dir_path: &RelPath, name: &Name, a: &Attrs) -> NfsResult<(CurFh, u64)> {
        let id = self
            .fhmap
            .lookup_or_insert(export, dir, name.as_bytes(), key_of(a), ftype(a.kind))?;
        let inc = self.fhmap.incarnation_of(id)?.unwrap_or(0);
        Ok((
            CurFh {
                fh: self.fhmap.encode(export, id, inc),
                node: Node::Obj {
                    export,
                    id,
                    path: dir_path.join(name),
                },
            },
            self.fhmap.last_seq(),
        ))
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

/// Maps handle-map errors, keeping STALE/FHEXPIRED/BADHANDLE distinct.
pub fn fh_error(e: FhError) -> NfsError {
    match e {
        FhError::BadHandle => NfsError::BadHandle,
        FhError::Stale => NfsError::Stale,
        FhError::Expired => NfsError::FhExpired,
        other => NfsError::Fh(other),
    }
}
