//! The namespace intent log of `sync` exports: what makes a create or a
//! remove durable before its reply without an fsync of its directory.
//!
//! A `sync` export promises that a name the client saw created (or
//! removed) survives a crash. The direct way is an fsync of the directory
//! before the reply, one per directory changed, and a flush of the handle
//! map besides. Here, as a journaling file system or ZFS's intent log do,
//! the change is recorded instead as an entry of the handle map's journal
//! ([`nfs4d_fhmap::FhMap::journal_append`]), written after the map's own
//! writes for the change, so the one flush the reply waits for anyway
//! covers the record, the handle and the intent together — for every
//! directory changed by the requests of that flush at once. The
//! directories themselves are fsynced by the periodic checkpoint
//! ([`Vfs::flush_background`]), after which the entries up to that point
//! are dropped.
//!
//! After a crash, [`Vfs::replay_journal`] runs before the server answers
//! anyone. For every name an entry mentions, the handle map (durable up to
//! at least the last acknowledged change) says what the name should hold
//! now, and the file system what it holds:
//!
//! * a removal the file system lost — the name still holds the object it
//!   recorded as removed (same device, inode and birth time), and the map
//!   has nothing (else) there — is done again;
//! * a creation the file system lost — the map links an object there that
//!   the name no longer holds — is done again with the recorded type,
//!   mode and owner, and the object keeps its id (so its handle) with the
//!   new identity. A regular file comes back empty: data acknowledged as
//!   stable was fsynced with its file, which on Linux's journaling file
//!   systems (and ext4 without a journal) also commits the new name, so a
//!   file with such data is not lost in the first place.
//!
//! Names are processed parents first for creations and children first for
//! removals. Anything else found — an object the log does not know — is
//! left alone and logged: it was put there outside the server.
//!
//! Only creations and removals are journaled: renames, links and the
//! parking of open files (a rename) fsync their directories before the
//! reply as before. They are rarer, and a rename of a directory would
//! change the paths earlier entries were made under. Entries name
//! directories by object id, so a directory renamed since still resolves.

use nfs4d_fhmap::{ObjKey, ObjectId};
use nfs4d_store::{Attrs, FileKind, Name, Owner, RelPath, StoreError};

use super::vfs::{ftype, key_of, Export, Vfs};
use crate::error::NfsResult;

/// Entries appended since the last checkpoint before changes fall back to
/// fsyncing their directory at once (bounds the journal when checkpoints
/// fail or lag).
pub const MAX_PENDING: u64 = 1 << 16;

/// What was made at a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symlink with this target.
    Symlink(Vec<u8>),
    /// A device, fifo or socket (`nfs_ftype4` value) with its `(major,
    /// minor)`.
    Special(u8, (u32, u32)),
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// `name` was made in directory `dir` of `export`.
    Made {
        export: u32,
        dir: ObjectId,
        name: Vec<u8>,
        what: Made,
        mode: u32,
        owner: Owner,
    },
    /// `name` was removed from `dir`; it held the object `key`.
    Removed {
        export: u32,
        dir: ObjectId,
        name: Vec<u8>,
        key: ObjKey,
    },
}

/// Longest encoded entry: a symlink target and a name of at most 4 KiB
/// each, plus fixed fields.
const MAX_ENTRY: usize = 2 * 4096 + 64;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

impl Intent {
    /// The entry's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Intent::Made {
                export,
                dir,
                name,
                what,
                mode,
                owner,
            } => {
                out.push(1);
                out.extend_from_slice(&export.to_be_bytes());
                out.extend_from_slice(&dir.0.to_be_bytes());
                put_bytes(&mut out, name);
                out.extend_from_slice(&mode.to_be_bytes());
                out.extend_from_slice(&owner.uid.to_be_bytes());
                out.extend_from_slice(&owner.gid.to_be_bytes());
                match what {
                    Made::File => out.push(1),
                    Made::Dir => out.push(2),
                    Made::Symlink(t) => {
                        out.push(3);
                        put_bytes(&mut out, t);
                    }
                    Made::Special(kind, (major, minor)) => {
                        out.push(4);
                        out.push(*kind);
                        out.extend_from_slice(&major.to_be_bytes());
                        out.extend_from_slice(&minor.to_be_bytes());
                    }
                }
            }
            Intent::Removed {
                export,
                dir,
                name,
                key,
            } => {
                out.push(2);
                out.extend_from_slice(&export.to_be_bytes());
                out.extend_from_slice(&dir.0.to_be_bytes());
                put_bytes(&mut out, name);
                for v in [key.dev, key.ino, key.gen] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes an entry; `None` for bytes no version of [`Self::encode`]
    /// wrote (a damaged entry is skipped with a log line, never guessed).
    pub fn decode(b: &[u8]) -> Option<Intent> {
        if b.len() > MAX_ENTRY {
            return None;
        }
        let mut r = Reader(b);
        let tag = r.u8()?;
        let export = r.u32()?;
        let dir = ObjectId(r.u64()?);
        let name = r.bytes()?;
        let out = match tag {
            1 => {
                let mode = r.u32()?;
                let owner = Owner {
                    uid: r.u32()?,
                    gid: r.u32()?,
                };
                let what = match r.u8()? {
                    1 => Made::File,
                    2 => Made::Dir,
                    3 => Made::Symlink(r.bytes()?),
                    4 => Made::Special(r.u8()?, (r.u32()?, r.u32()?)),
                    _ => return None,
                };
                Intent::Made {
                    export,
                    dir,
                    name,
                    what,
                    mode,
                    owner,
                }
            }
            2 => Intent::Removed {
                export,
                dir,
                name,
                key: ObjKey {
                    dev: r.u64()?,
                    ino: r.u64()?,
                    gen: r.u64()?,
                },
            },
            _ => return None,
        };
        r.0.is_empty().then_some(out)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_be_bytes)
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::from(u16::from_be_bytes(self.take()?));
        if self.0.len() < n {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b.to_vec())
    }
}

/// What [`Vfs::replay_journal`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    /// Entries read.
    pub entries: usize,
    /// Entries that could not be decoded (skipped).
    pub damaged: usize,
    /// Removals done again.
    pub removed: usize,
    /// Objects made again.
    pub made: usize,
    /// Names holding something the log does not explain (left alone).
    pub unknown: usize,
    /// Entries of exports no longer served (removed from the
    /// configuration since, e.g. by a reload): their trees are not
    /// touched.
    pub unserved: usize,
}

/// Everything the log says about one name.
struct NameWork {
    export: u32,
    dir: ObjectId,
    name: Vec<u8>,
    /// Identities of objects removed from the name.
    removed: Vec<ObjKey>,
    /// The last creation at the name: what, mode, owner.
    made: Option<(Made, u32, Owner)>,
    /// Depth of the directory (components below the export root).
    depth: usize,
    path: RelPath,
}

impl Vfs {
    /// Whether changes of export `e` are journaled (`sync` exports).
    pub fn journals(&self, e: &Export) -> bool {
        !self.is_async(e)
    }

    /// Records `intent` (a change of export `e` just made and recorded in
    /// the map); returns the write the reply must wait for (0 on an export
    /// that does not journal).
    pub fn journal(&self, e: &Export, intent: &Intent) -> NfsResult<u64> {
        if !self.journals(e) {
            return Ok(0);
        }
        let seq = self.fhmap.journal_append(&intent.encode())?;
        self.journal_pending
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(seq)
    }

    /// Whether the journal is too long for another change to rely on it
    /// (its directory is then fsynced at once).
    pub(crate) fn journal_full(&self) -> bool {
        self.journal_pending
            .load(std::sync::atomic::Ordering::Relaxed)
            >= MAX_PENDING
    }

    /// Brings the file systems in line with the journal after a crash (see
    /// the module documentation), then syncs what it changed and empties
    /// the journal. Runs before the server answers anyone.
    pub fn replay_journal(&self) -> NfsResult<ReplayReport> {
        let entries = self.fhmap.journal_entries()?;
        let mut report = ReplayReport {
            entries: entries.len(),
            ..ReplayReport::default()
        };
        if entries.is_empty() {
            return Ok(report);
        }
        let mut work: Vec<NameWork> = Vec::new();
        let mut at: std::collections::HashMap<(u32, ObjectId, Vec<u8>), usize> =
            std::collections::HashMap::new();
        for (_, bytes) in &entries {
            let Some(intent) = Intent::decode(bytes) else {
                tracing::error!(len = bytes.len(), "journal: damaged entry skipped");
                report.damaged += 1;
                continue;
            };
            let (export, dir, name) = match &intent {
                Intent::Made {
                    export, dir, name, ..
                }
                | Intent::Removed {
                    export, dir, name, ..
                } => (*export, *dir, name.clone()),
            };
            if self.export(export).is_err() {
                report.unserved += 1;
                continue;
            }
            let i = match at.get(&(export, dir, name.clone())) {
                Some(i) => *i,
                None => {
                    // A directory the map no longer has: nothing below it
                    // can be expected.
                    let Some(path) = self.dir_path(dir)? else {
                        continue;
                    };
                    work.push(NameWork {
                        export,
                        dir,
                        name: name.clone(),
                        removed: Vec::new(),
                        made: None,
                        depth: path.len(),
                        path,
                    });
                    at.insert((export, dir, name), work.len() - 1);
                    work.len() - 1
                }
            };
            match intent {
                Intent::Made {
                    what, mode, owner, ..
                } => work[i].made = Some((what, mode, owner)),
                Intent::Removed { key, .. } => work[i].removed.push(key),
            }
        }
        let mut touched: Vec<(u32, RelPath)> = Vec::new();
        // Removals, children first.
        work.sort_by_key(|w| std::cmp::Reverse(w.depth));
        for w in &work {
            if self.replay_removal(w, &mut report)? {
                touched.push((w.export, w.path.clone()));
            }
        }
        // Creations, parents first.
        work.reverse();
        for w in &work {
            if self.replay_creation(w, &mut report)? {
                touched.push((w.export, w.path.clone()));
            }
        }
        for (export, path) in touched {
            let e = self.export(export)?;
            e.store().sync_dir(&path)?;
        }
        self.fhmap.make_durable(self.fhmap.last_seq())?;
        self.fhmap.journal_trim(self.fhmap.last_seq())?;
        self.fhmap.make_durable(self.fhmap.last_seq())?;
        tracing::info!(?report, "journal replayed");
        Ok(report)
    }

    /// The path of directory `dir`, if the map still has it.
    fn dir_path(&self, dir: ObjectId) -> NfsResult<Option<RelPath>> {
        let Some(comps) = self.fhmap.path_of(dir)? else {
            return Ok(None);
        };
        let names = comps
            .iter()
            .map(|c| Name::new(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| crate::error::NfsError::ServerFault)?;
        Ok(Some(RelPath::from_names(names)))
    }

    /// What the name holds now, `None` if nothing.
    fn occupant(&self, e: &Export, w: &NameWork, name: &Name) -> NfsResult<Option<Attrs>> {
        match e.store().lookup(&w.path, name) {
            Ok(a) => Ok(Some(a)),
            Err(StoreError::NotFound) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Removes again an object the log says was removed from the name, if
    /// the name still holds it and the map expects nothing else there.
    fn replay_removal(&self, w: &NameWork, report: &mut ReplayReport) -> NfsResult<bool> {
        if w.removed.is_empty() {
            return Ok(false);
        }
        let e = self.export(w.export)?;
        let Ok(name) = Name::new(&w.name) else {
            return Ok(false);
        };
        let Some(now) = self.occupant(e, w, &name)? else {
            return Ok(false);
        };
        let key = key_of(&now);
        let expected = self.fhmap.lookup_name(w.export, w.dir, &w.name)?;
        if expected.is_some_and(|(_, r)| r.key == key) || !w.removed.contains(&key) {
            return Ok(false);
        }
        let done = match now.kind {
            FileKind::Directory => e.store().rmdir(&w.path, &name),
            _ => e.store().remove(&w.path, &name).map(drop),
        };
        match done {
            Ok(()) => {
                report.removed += 1;
                Ok(true)
            }
            Err(err) => {
                tracing::error!(dir = %w.path, name = %name, error = %err, "journal: removing again failed");
                Ok(false)
            }
        }
    }

    /// Makes again the object the map links at the name if the file system
    /// lost it.
    fn replay_creation(&self, w: &NameWork, report: &mut ReplayReport) -> NfsResult<bool> {
        let e = self.export(w.export)?;
        let Ok(name) = Name::new(&w.name) else {
            return Ok(false);
        };
        let Some((id, rec)) = self.fhmap.lookup_name(w.export, w.dir, &w.name)? else {
            return Ok(false);
        };
        if let Some(now) = self.occupant(e, w, &name)? {
            if key_of(&now) != rec.key {
                tracing::warn!(dir = %w.path, name = %name, "journal: the name holds an object the log does not know; left alone");
                report.unknown += 1;
            }
            return Ok(false);
        }
        let Some((what, mode, owner)) = &w.made else {
            // Linked here by a rename or link, which are synced at once:
            // nothing the log could make again.
            return Ok(false);
        };
        let store = e.store();
        let made = match what {
            Made::File => store
                .create_file(&w.path, &name, *mode, *owner, true)
                .map(|c| c.attrs),
            Made::Dir => store.mkdir(&w.path, &name, *mode, *owner),
            Made::Symlink(target) => store.symlink(&w.path, &name, target, *owner),
            Made::Special(kind, rdev) => match special_kind(*kind) {
                Some(k) => store.mknod(&w.path, &name, k, *mode, *rdev, *owner),
                None => Err(StoreError::Invalid),
            },
        };
        drop(store);
        let attrs = match made {
            Ok(a) => a,
            Err(err) => {
                tracing::error!(dir = %w.path, name = %name, error = %err, "journal: making again failed");
                return Ok(false);
            }
        };
        if ftype(attrs.kind) != rec.kind {
            tracing::warn!(dir = %w.path, name = %name, "journal: made again with another type than recorded");
        }
        self.fhmap.rekey(id, w.dir, &w.name, key_of(&attrs))?;
        report.made += 1;
        Ok(true)
    }
}

/// The store's kind for a special file's `nfs_ftype4` value.
fn special_kind(t: u8) -> Option<FileKind> {
    match t {
        3 => Some(FileKind::BlockDev),
        4 => Some(FileKind::CharDev),
        6 => Some(FileKind::Socket),
        7 => Some(FileKind::Fifo),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_refused() {
        let owner = Owner { uid: 7, gid: 8 };
        let all = [
            Intent::Made {
                export: 1,
                dir: ObjectId(1 << 33),
                name: b"file".to_vec(),
                what: Made::File,
                mode: 0o640,
                owner,
            },
            Intent::Made {
                export: 0,
                dir: ObjectId(0),
                name: b"d".to_vec(),
                what: Made::Dir,
                mode: 0o755,
                owner,
            },
            Intent::Made {
                export: 0,
                dir: ObjectId(0),
                name: b"l".to_vec(),
                what: Made::Symlink(b"../target".to_vec()),
                mode: 0o777,
                owner,
            },
            Intent::Made {
                export: 0,
                dir: ObjectId(0),
                name: b"n".to_vec(),
                what: Made::Special(4, (1, 3)),
                mode: 0o600,
                owner,
            },
            Intent::Removed {
                export: 2,
                dir: ObjectId(5),
                name: b"gone".to_vec(),
                key: ObjKey {
                    dev: 1,
                    ino: 2,
                    gen: 3,
                },
            },
        ];
        for i in &all {
            let b = i.encode();
            assert_eq!(Intent::decode(&b).as_ref(), Some(i));
            for cut in 0..b.len() {
                assert_eq!(Intent::decode(&b[..cut]), None, "truncated at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(Intent::decode(&longer), None, "trailing byte");
        }
        assert_eq!(Intent::decode(&[9, 0, 0, 0, 0]), None, "unknown tag");
    }
}
