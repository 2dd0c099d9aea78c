//! Namespace mutations, planned against an in-memory overlay of the trees
//! and then written to the key-value store in a crash-tolerant order.
//!
//! Why no sled transaction: in sled 0.34 every multi-key atomic operation
//! (transaction or batch) takes a process-global lock exclusively, and
//! `flush()` holds that lock shared for the whole fsync. With transactions,
//! every mutation (and, behind it, every read) stalls for each flush and
//! group commit degenerates to about one flush per write (measured: 1199
//! flushes for 1600 concurrent durable inserts vs 418 without). So records
//! are the single source of truth, written one key at a time, and the two
//! indexes are hints verified against the record they point to:
//!
//! * `names[(e, p, n)] = id` counts only if record `id` is in export `e`
//!   and has link `(p, n)`; `inodes[(e, dev, ino)] = id` only if record
//!   `id` is in export `e` with that dev/ino. Stale hints are ignored and
//!   deleted when met.
//! * Commit order: id counter, new index entries, record writes, record
//!   deletions (children before parents), index removals. Whatever prefix
//!   of that survives a crash, no id is reused and no parent dies before
//!   its children; the worst outcomes are a leaked record and a stale
//!   primary link, which the glue's identity check heals through
//!   `FhMap::forget_primary_link` (exercised for every crash point by
//!   `tests::every_crash_point_converges_after_restart`).
//!
//! Several writers on one store (heads of a cluster sharing etcd): every
//! key a plan read from the store is remembered with the value it had,
//! and the plan's writes are handed to [`nfs4d_kv::Kv::commit`] with those
//! reads as checks, so they apply only if no other writer changed any of
//! them in between; otherwise the mutation is planned again (`FhMap::
//! mutate`). Ids and expiry generations come from shared counters
//! ([`Counters`]), advanced by compare-and-swap before any record uses
//! them, so the crash order above still holds. A plan too large for one
//! batch (collecting a big subtree that vanished behind the server's back)
//! falls back to the ordered single-key writes, unchecked.
//!
//! Callers hold `FhMap`'s write lock while planning, so the overlay reads
//! (store + pending writes) see a state no other thread of this process
//! changes. Several writers keep it through the commit too. A process that
//! is the store's only writer (a local sled database) needs no checks at
//! all: its plans read records through the map's cache, and its commits
//! publish their writes, leave the lock, and write them key by key, while
//! later plans read the published writes first (`inflight.rs`).
//! Lock-free readers may see a commit half-applied; the verification rule
//! makes each name resolve to its before- or after-state (a hint without its
//! record is ignored, sending the reader to the locked slow path).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nfs4d_kv::{Batch, IdBlocks, KeyState, Kv, KvError, Tree, MAX_BATCH_OPS};

use super::cache::NodeCache;
use super::inflight::InFlight;
use super::record::{
    decode_id, decode_record, encode_record, id_key, inode_key, name_key, name_prefix,
};
use super::{FhError, ObjKey, ObjRecord, ObjectId, MAX_PATH_DEPTH, META_EXPIRE_GEN, NF4DIR};

/// Ids a sole writer checks for records with one scan: those sharing all
/// but the last byte of their big-endian key.
const ID_WINDOW: u64 = 256;
// `WriteSet::unused` scans the window as the key minus its last byte.
const _: () = assert!(ID_WINDOW == 1 << u8::BITS);

/// Attempts to swap the expiry generation counter forward before giving
/// up (each lost swap means another writer got a generation).
const MAX_GENERATION_SWAPS: usize = 64;

/// The trees of the map, by name, for batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TreeId {
    Objects,
    Names,
    Inodes,
    Expired,
}

impl TreeId {
    /// How many there are (`TreeId as usize` is below it).
    pub(super) const COUNT: usize = TreeId::Expired as usize + 1;

    pub(super) fn name(self) -> &'static str {
        match self {
            TreeId::Objects => "objects",
            TreeId::Names => "names",
            TreeId::Inodes => "inodes",
            TreeId::Expired => "expired",
        }
    }
}

/// The counters shared by every writer of the store: object ids (from
/// blocks, [`IdBlocks`]) and expiry generations (one compare-and-swap per
/// generation, so every generation is above every one handed out before
/// it by any writer — the subtree expiry rule needs that global order).
pub(super) struct Counters {
    pub ids: IdBlocks,
    pub meta: Arc<dyn Tree>,
    /// A sole writer's ids below this are known to have no record
    /// ([`WriteSet::unused`]).
    pub free_until: AtomicU64,
}

impl Counters {
    fn next_id(&self) -> Result<u64, FhError> {
        Ok(self.ids.next()?)
    }

    /// The next expiry generation; the counter holds the last one handed
    /// out and is written before any record holds the new one.
    fn next_generation(&self) -> Result<u64, FhError> {
        let mut seen = self.meta.get(META_EXPIRE_GEN)?;
        for _ in 0..MAX_GENERATION_SWAPS {
            let last = match &seen {
                None => super::FIRST_GENERATION,
                Some(v) => u64::from_be_bytes(
                    <[u8; 8]>::try_from(v.as_slice())
                        .map_err(|_| FhError::Corrupt("bad expiry generation".into()))?,
                )
                .max(super::FIRST_GENERATION),
            };
            let next = last
                .checked_add(1)
                .ok_or_else(|| FhError::Corrupt("expiry generation space exhausted".into()))?;
            match self.meta.compare_and_swap(
                META_EXPIRE_GEN,
                seen.as_deref(),
                Some(&next.to_be_bytes()),
            )? {
                Ok(()) => return Ok(next),
                Err(now) => seen = now,
            }
        }
        Err(FhError::Store(KvError::Unavailable(
            "expiry generation counter contended".into(),
        )))
    }
}

pub(super) struct Trees {
    /// object id → `ObjRecord`.
    pub objects: Arc<dyn Tree>,
    /// (export, parent id, name) → object id, for every link of every object.
    pub names: Arc<dyn Tree>,
    /// (export, dev, ino) → object id, so hard links share one handle.
    pub inodes: Arc<dyn Tree>,
    /// Tombstones: object id → export, for objects of volatile exports
    /// that vanished behind the server's back. Their handles keep answering
    /// FHEXPIRED rather than STALE: the server cannot tell a removal from a
    /// rename it did not see (RFC 7530 §4.2.3 keeps STALE for objects known
    /// to be removed).
    pub expired: Arc<dyn Tree>,
    /// The server's namespace intent log (opaque entries, see
    /// `FhMap::journal_append`); never written through a `WriteSet`.
    pub journal: Arc<dyn Tree>,
}

impl Trees {
    pub(super) fn get(&self, t: TreeId) -> &dyn Tree {
        match t {
            TreeId::Objects => &*self.objects,
            TreeId::Names => &*self.names,
            TreeId::Inodes => &*self.inodes,
            TreeId::Expired => &*self.expired,
        }
    }
}

/// One single-key write (each is atomic on its own).
pub(super) enum Write {
    Insert(TreeId, Vec<u8>, Vec<u8>),
    Remove(TreeId, Vec<u8>),
}

impl Write {
    pub(super) fn apply(self, trees: &Trees) -> Result<(), FhError> {
        match self {
            Write::Insert(t, k, v) => trees.get(t).insert(&k, &v)?,
            Write::Remove(t, k) => trees.get(t).remove(&k)?,
        };
        Ok(())
    }

    /// Tree, key and value (`None`: removed).
    pub(super) fn parts(&self) -> (TreeId, &[u8], Option<&[u8]>) {
        match self {
            Write::Insert(t, k, v) => (*t, k, Some(v)),
            Write::Remove(t, k) => (*t, k, None),
        }
    }

    fn key_state(self) -> KeyState {
        let (t, key, value) = match self {
            Write::Insert(t, k, v) => (t, k, Some(v)),
            Write::Remove(t, k) => (t, k, None),
        };
        KeyState {
            tree: t.name().to_string(),
            key,
            value,
        }
    }
}

/// How a commit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Committed {
    /// Applied; the store's revision of the change (0 when it has none)
    /// and whether an existing record was changed or removed (other
    /// writers' caches of it are stale).
    Applied {
        revision: u64,
        changed_records: bool,
    },
    /// Another writer changed something the plan read: plan again.
    Conflict,
}

/// How the export a mutation works on treats changes made behind the
/// server's back (derived from its `HandlePolicy` by `FhMap`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct OobRules {
    /// Objects that vanish behind our back get a tombstone, so their
    /// handles answer FHEXPIRED instead of STALE.
    pub tombstones: bool,
    /// A directory found moved behind our back (or a file that lost the
    /// name its handle was resolved by) has its handles expired, as a
    /// rename through the server would (FH4_VOL_RENAME).
    pub expire_moves: bool,
}

/// Store keys read by a plan and the value each had (`None`: absent).
type Reads = BTreeMap<(TreeId, Vec<u8>), Option<Vec<u8>>>;

pub(super) struct WriteSet<'a> {
    trees: &'a Trees,
    counters: &'a Counters,
    /// Set when this process is the store's only writer (see
    /// [`Self::new`]): records are read through this cache, and the plan
    /// is committed without checks.
    sole: Option<&'a NodeCache>,
    /// A sole writer's commits still being written (`inflight.rs`): read
    /// before the cache and the store.
    inflight: Option<&'a InFlight>,
    /// Highest sequence number of a commit in flight whose write the plan
    /// read: the mutation returns only once it is written.
    depends: Cell<u64>,
    /// Every key read from the store, with the value first seen: the
    /// checks of the commit (not kept for a sole writer).
    reads: RefCell<Reads>,
    objects: BTreeMap<ObjectId, Option<ObjRecord>>,
    /// Ids deleted, in the order `gc` reached them (parents first).
    deleted: Vec<ObjectId>,
    names: BTreeMap<Vec<u8>, Option<ObjectId>>,
    inodes: BTreeMap<[u8; 20], Option<ObjectId>>,
    /// Tombstones to write (see `Trees::expired`).
    tombstones: BTreeMap<ObjectId, u32>,
    oob: OobRules,
}

impl<'a> WriteSet<'a> {
    /// A plan against `trees`. `sole` is the map's record cache when no
    /// other process writes the store (a local sled database, which one
    /// process at a time can open): the caller's write lock then keeps
    /// everything the plan reads unchanged until its commit, so the
    /// commit's checks could never fail and are left out, and a cached
    /// record is as good as the store's (every commit drops the records
    /// it touched from the cache before the lock is released).
    pub(super) fn new(
        trees: &'a Trees,
        counters: &'a Counters,
        oob: OobRules,
        sole: Option<(&'a NodeCache, &'a InFlight)>,
    ) -> Self {
        WriteSet {
            trees,
            counters,
            sole: sole.map(|(c, _)| c),
            inflight: sole.map(|(_, f)| f),
            depends: Cell::new(0),
            reads: RefCell::new(BTreeMap::new()),
            objects: BTreeMap::new(),
            deleted: Vec::new(),
            names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            oob,
        }
    }

    /// A generation above every generation any record holds, hence above
    /// every stamp any handle carries: whatever gets it has its handles
    /// (and, through the ancestor rule, its descendants' handles) expired.
    fn next_generation(&mut self) -> Result<u64, FhError> {
        self.counters.next_generation()
    }

    /// A store read, remembered as a check of the commit.
    fn read(&self, t: TreeId, key: &[u8]) -> Result<Option<Vec<u8>>, FhError> {
        if let Some(v) = self.in_flight(t, key) {
            return Ok(v);
        }
        let v = self.trees.get(t).get(key)?;
        if self.sole.is_some() {
            return Ok(v);
        }
        self.reads
            .borrow_mut()
            .entry((t, key.to_vec()))
            .or_insert_with(|| v.clone());
        Ok(v)
    }

    /// The value a commit still in flight writes to `key`, if any; noted
    /// as a dependency of this plan.
    fn in_flight(&self, t: TreeId, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let (seq, v) = self.inflight?.get(t, key)?;
        self.depend_on(seq);
        Some(v)
    }

    /// Notes that the plan read a write of commit `seq`, still in flight.
    fn depend_on(&self, seq: u64) {
        self.depends.set(self.depends.get().max(seq));
    }

    /// See [`Self::depends`].
    pub(super) fn depends_on(&self) -> u64 {
        self.depends.get()
    }

    // ---- overlay-aware primitive reads and writes ----

    pub(super) fn obj(&self, id: ObjectId) -> Result<Option<ObjRecord>, FhError> {
        if let Some(pending) = self.objects.get(&id) {
            return Ok(pending.clone());
        }
        // Before the cache: a commit in flight drops what it changes from
        // the cache only once it is written.
        if let Some(v) = self.in_flight(TreeId::Objects, &id_key(id)) {
            return v.map(|v| decode_record(&v)).transpose();
        }
        if let Some(Ok(node)) = self.sole.map(|c| c.get(id)) {
            return Ok(Some(ObjRecord::clone(&node)));
        }
        match self.read(TreeId::Objects, &id_key(id))? {
            Some(v) => decode_record(&v).map(Some),
            None => Ok(None),
        }
    }

    fn put_obj(&mut self, id: ObjectId, rec: ObjRecord) {
        self.objects.insert(id, Some(rec));
    }

    fn raw_name(&self, key: &[u8]) -> Result<Option<ObjectId>, FhError> {
        if let Some(pending) = self.names.get(key) {
            return Ok(*pending);
        }
        self.read(TreeId::Names, key)?
            .map(|v| decode_id(&v))
            .transpose()
    }

    /// The object linked as `name` in `parent`, if the hint is confirmed by
    /// its record (a stale hint is scheduled for deletion).
    fn name(
        &mut self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
    ) -> Result<Option<ObjectId>, FhError> {
        let k = name_key(export, parent, name);
        let Some(id) = self.raw_name(&k)? else {
            return Ok(None);
        };
        if let Some(rec) = self.obj(id)? {
            if rec.export == export && rec.has_link(parent, name) {
                return Ok(Some(id));
            }
        }
        self.names.insert(k, None);
        Ok(None)
    }

    fn set_name(&mut self, export: u32, parent: ObjectId, name: &[u8], id: ObjectId) {
        self.names.insert(name_key(export, parent, name), Some(id));
    }

    /// Removes the index entry only if it still designates `id`, so that
    /// cleaning up one object can never unlink another.
    fn unlink_name(
        &mut self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
        id: ObjectId,
    ) -> Result<(), FhError> {
        let k = name_key(export, parent, name);
        if self.raw_name(&k)? == Some(id) {
            self.names.insert(k, None);
        }
        Ok(())
    }

    fn raw_inode(&self, key: &[u8; 20]) -> Result<Option<ObjectId>, FhError> {
        if let Some(pending) = self.inodes.get(key) {
            return Ok(*pending);
        }
        self.read(TreeId::Inodes, key)?
            .map(|v| decode_id(&v))
            .transpose()
    }

    /// The object known by this (dev, ino), if confirmed by its record.
    fn inode(&mut self, export: u32, key: &ObjKey) -> Result<Option<ObjectId>, FhError> {
        let k = inode_key(export, key);
        let Some(id) = self.raw_inode(&k)? else {
            return Ok(None);
        };
        if let Some(rec) = self.obj(id)? {
            if rec.export == export && rec.key.dev == key.dev && rec.key.ino == key.ino {
                return Ok(Some(id));
            }
        }
        self.inodes.insert(k, None);
        Ok(None)
    }

    fn set_inode(&mut self, export: u32, key: &ObjKey, id: ObjectId) {
        self.inodes.insert(inode_key(export, key), Some(id));
    }

    fn unlink_inode(&mut self, export: u32, key: &ObjKey, id: ObjectId) -> Result<(), FhError> {
        let k = inode_key(export, key);
        if self.raw_inode(&k)? == Some(id) {
            self.inodes.insert(k, None);
        }
        Ok(())
    }

    /// The confirmed (name, id) links the map holds under directory `dir`.
    fn children(
        &mut self,
        export: u32,
        dir: ObjectId,
    ) -> Result<Vec<(Vec<u8>, ObjectId)>, FhError> {
        let prefix = name_prefix(export, dir);
        let mut found = BTreeMap::new();
        for item in self.trees.names.scan_prefix(&prefix) {
            let (k, v) = item?;
            found.insert(k, decode_id(&v)?);
        }
        if let Some(f) = self.inflight {
            for (k, (seq, v)) in f.scan(TreeId::Names, &prefix) {
                self.depend_on(seq);
                match v {
                    Some(v) => found.insert(k, decode_id(&v)?),
                    None => found.remove(&k),
                };
            }
        }
        for (k, v) in self.names.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            match v {
                Some(id) => found.insert(k.clone(), *id),
                None => found.remove(k),
            };
        }
        let mut children = Vec::with_capacity(found.len());
        for (k, id) in found {
            let name = k[prefix.len()..].to_vec();
            let confirmed = self
                .obj(id)?
                .is_some_and(|rec| rec.export == export && rec.has_link(dir, &name));
            if confirmed {
                children.push((name, id));
            } else {
                self.names.insert(k, None);
            }
        }
        Ok(children)
    }

    fn allocate(&mut self) -> Result<ObjectId, FhError> {
        loop {
            let id = ObjectId(self.counters.next_id()?);
            // Ids are never reused (a reused id would make an old handle name
            // a new object); skip any id a restored/rolled-back counter
            // would hand out again.
            if self.unused(id)? {
                return Ok(id);
            }
        }
    }

    /// Whether no record holds `id`, a fresh id from the counter. A sole
    /// writer looks at the whole window of [`ID_WINDOW`] ids around it
    /// with one scan, the first time it is given an id of that window,
    /// instead of one store read per id: the counter gives ids in
    /// increasing order and only this process writes records, so what was
    /// free above `id` then stays free until the counter gets there.
    fn unused(&self, id: ObjectId) -> Result<bool, FhError> {
        if self.sole.is_none() {
            return Ok(self.obj(id)?.is_none());
        }
        if id.0 < self.counters.free_until.load(Ordering::Acquire) {
            return Ok(true);
        }
        let key = id_key(id);
        let window = &key[..key.len() - 1];
        for item in self.trees.objects.scan_prefix(window) {
            let (k, _) = item?;
            if k.as_slice() >= key.as_slice() {
                // Taken ids in this window: check each id on its own.
                return Ok(self.obj(id)?.is_none());
            }
        }
        let end = (id.0 | (ID_WINDOW - 1)).saturating_add(1);
        self.counters.free_until.fetch_max(end, Ordering::AcqRel);
        Ok(true)
    }

    // ---- results ----

    pub(super) fn is_empty(&self) -> bool {
        self.objects.is_empty()
            && self.names.is_empty()
            && self.inodes.is_empty()
            && self.tombstones.is_empty()
    }

    /// Ids whose records this write set changes (for cache invalidation).
    pub(super) fn touched(&self) -> Vec<ObjectId> {
        self.objects.keys().copied().collect()
    }

    /// The planned changes as single-key writes, in the crash-tolerant
    /// order described in the module documentation.
    /// (The id and generation counters are not among them: they move
    /// forward by compare-and-swap when an id or generation is taken, so
    /// before any record that holds one.)
    pub(super) fn writes(&self) -> Vec<Write> {
        use TreeId::{Expired, Inodes, Names, Objects};
        let mut out = Vec::new();
        for (k, id) in &self.names {
            if let Some(id) = id {
                out.push(Write::Insert(Names, k.clone(), id_key(*id).to_vec()));
            }
        }
        for (k, id) in &self.inodes {
            if let Some(id) = id {
                out.push(Write::Insert(Inodes, k.to_vec(), id_key(*id).to_vec()));
            }
        }
        for (id, rec) in &self.objects {
            if let Some(rec) = rec {
                out.push(Write::Insert(
                    Objects,
                    id_key(*id).to_vec(),
                    encode_record(rec),
                ));
            }
        }
        // Tombstones before the records they replace go, so no crash point
        // makes an expired handle look removed.
        for (id, export) in &self.tombstones {
            out.push(Write::Insert(
                Expired,
                id_key(*id).to_vec(),
                export.to_be_bytes().to_vec(),
            ));
        }
        for id in self.deleted.iter().rev() {
            if let Some(None) = self.objects.get(id) {
                out.push(Write::Remove(Objects, id_key(*id).to_vec()));
            }
        }
        for (k, id) in &self.names {
            if id.is_none() {
                out.push(Write::Remove(Names, k.clone()));
            }
        }
        for (k, id) in &self.inodes {
            if id.is_none() {
                out.push(Write::Remove(Inodes, k.to_vec()));
            }
        }
        out
    }

    /// Writes the plan. With the checks and writes within one batch, as
    /// one [`Kv::commit`] checked against every store read the plan made:
    /// [`Committed::Conflict`] if another writer changed one of them.
    /// Larger plans are written key by key in the crash-tolerant order,
    /// unchecked (see the module documentation).
    pub(super) fn commit(&self, kv: &dyn Kv) -> Result<Committed, FhError> {
        let reads = self.reads.borrow();
        // Only other writers care (`Coherence`), and a sole writer has none.
        let changed_records = self.sole.is_none()
            && self.objects.keys().any(|id| {
                reads
                    .get(&(TreeId::Objects, id_key(*id).to_vec()))
                    .is_some_and(Option::is_some)
            });
        let writes = self.writes();
        if writes.len() > MAX_BATCH_OPS {
            tracing::debug!(
                writes = writes.len(),
                "fhmap: plan larger than one batch; writing it key by key"
            );
            for w in writes {
                w.apply(self.trees)?;
            }
            return Ok(Committed::Applied {
                revision: 0,
                changed_records,
            });
        }
        let written: std::collections::BTreeSet<(TreeId, &[u8])> = writes
            .iter()
            .map(|w| match w {
                Write::Insert(t, k, _) | Write::Remove(t, k) => (*t, k.as_slice()),
            })
            .collect();
        // Keys the plan changes are checked first; reads it only walked
        // (ancestor chains) fill the rest of the batch's checks.
        let (mut checks, others): (Vec<_>, Vec<_>) = reads
            .iter()
            .partition(|((t, k), _)| written.contains(&(*t, k.as_slice())));
        checks.extend(others);
        checks.truncate(MAX_BATCH_OPS);
        let batch = Batch {
            checks: checks
                .into_iter()
                .map(|((t, k), v)| KeyState {
                    tree: t.name().to_string(),
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            writes: writes.into_iter().map(Write::key_state).collect(),
        };
        Ok(match kv.commit_at(&batch)? {
            Ok(revision) => Committed::Applied {
                revision,
                changed_records,
            },
            Err(_) => Committed::Conflict,
        })
    }

    // ---- namespace operations ----

    /// The record of directory `dir`, which must exist in `export`.
    fn parent_dir(&self, export: u32, dir: ObjectId) -> Result<ObjRecord, FhError> {
        let rec = self.obj(dir)?.ok_or(FhError::Stale)?;
        if rec.export != export {
            return Err(FhError::CrossExport);
        }
        Ok(rec)
    }

    /// Creates or re-keys the root record of `export` (fixed id, its own parent).
    pub(super) fn ensure_export_root(
        &mut self,
        export: u32,
        key: ObjKey,
    ) -> Result<ObjectId, FhError> {
        let id = ObjectId::export_root(export);
        let existing = self.obj(id)?;
        if let Some(rec) = &existing {
            if rec.key == key {
                // (Re-adds the inode hint if a crash lost it.)
                if self.inode(export, &key)? != Some(id) {
                    self.set_inode(export, &key, id);
                }
                return Ok(id);
            }
        }
        // Another record claiming this inode can only be a stale view of the
        // same directory from before the export was re-rooted.
        if let Some(other) = self.inode(export, &key)? {
            if other != id {
                self.gc(other, false)?;
            }
        }
        let rec = match existing {
            // The export's directory was replaced or re-mounted: the root id
            // is well known and must stay valid, so re-key it in place and
            // expire its volatile handles. Records below it are re-validated
            // lazily by lookup_or_insert (their keys no longer match).
            Some(mut rec) => {
                self.unlink_inode(export, &rec.key, id)?;
                rec.key = key;
                rec.generation = self.next_generation()?;
                rec
            }
            None => ObjRecord {
                export,
                parent: id,
                name: Vec::new(),
                key,
                kind: NF4DIR,
                generation: 0,
                extra_links: Vec::new(),
            },
        };
        self.put_obj(id, rec);
        self.set_inode(export, &key, id);
        Ok(id)
    }

    pub(super) fn lookup_or_insert(
        &mut self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
        key: ObjKey,
        kind: u8,
    ) -> Result<ObjectId, FhError> {
        self.parent_dir(export, parent)?;
        if let Some(id) = self.name(export, parent, name)? {
            if self.obj(id)?.is_some_and(|rec| rec.key == key) {
                return Ok(id);
            }
            // The name now designates another object (replaced behind our
            // back): this link of the old object is gone.
            self.drop_link_and_gc(export, id, parent, name, true)?;
        }
        if let Some(id) = self.inode(export, &key)? {
            if let Some(mut rec) = self.obj(id)? {
                if rec.key == key {
                    // The same object under a second name. Directories cannot
                    // be hard-linked, so for them this is a rename done behind
                    // our back: move the primary name instead of adding a link
                    // (unless that would make the directory its own ancestor
                    // in our possibly stale view).
                    let moved = rec.kind == NF4DIR
                        && !id.is_export_root()
                        && !self.is_ancestor_or_self(id, parent)?;
                    if moved {
                        self.unlink_name(export, rec.parent, &rec.name, id)?;
                        rec.parent = parent;
                        rec.name = name.to_vec();
                        if self.oob.expire_moves {
                            rec.generation = self.next_generation()?;
                        }
                    } else {
                        rec.extra_links.push((parent, name.to_vec()));
                    }
                    self.put_obj(id, rec);
                    self.set_name(export, parent, name, id);
                    return Ok(id);
                }
                // Same (dev, ino), other generation: the inode number was
                // reused, so the object we knew is dead everywhere (a
                // definite removal: no tombstone, its handles are STALE).
                self.gc(id, false)?;
            }
        }
        let id = self.allocate()?;
        self.put_obj(
            id,
            ObjRecord {
                export,
                parent,
                name: name.to_vec(),
                key,
                kind,
                generation: 0,
                extra_links: Vec::new(),
            },
        );
        self.set_name(export, parent, name, id);
        self.set_inode(export, &key, id);
        Ok(id)
    }

    pub(super) fn rename(
        &mut self,
        export: u32,
        src_parent: ObjectId,
        src_name: &[u8],
        dst_parent: ObjectId,
        dst_name: &[u8],
    ) -> Result<(), FhError> {
        self.parent_dir(export, src_parent)?;
        self.parent_dir(export, dst_parent)?;
        if src_parent == dst_parent && src_name == dst_name {
            return Ok(());
        }
        let src = self.name(export, src_parent, src_name)?;
        let dst = self.name(export, dst_parent, dst_name)?;
        // POSIX rename(2): two links to the same object → nothing happens.
        if src.is_some() && src == dst {
            return Ok(());
        }
        let moving = match src {
            Some(s) => self.obj(s)?.map(|rec| (s, rec)),
            None => None,
        };
        if let Some((s, rec)) = &moving {
            // The backend refuses this too (EINVAL); refuse before changing
            // anything rather than create a cycle in our parent pointers.
            if rec.kind == NF4DIR && self.is_ancestor_or_self(*s, dst_parent)? {
                return Err(FhError::Invalid("rename of a directory into itself"));
            }
        }
        if let Some(d) = dst {
            self.drop_link_and_gc(export, d, dst_parent, dst_name, false)?;
        }
        let Some(s) = src else {
            // Never looked up through us: nothing to move.
            return Ok(());
        };
        self.unlink_name(export, src_parent, src_name, s)?;
        // Re-read: collecting `dst` may have cleaned up entries under it.
        let Some(mut rec) = self.obj(s)? else {
            return Ok(());
        };
        if rec.parent == src_parent && rec.name == src_name {
            // The one record rewrite: descendants store only their parent's
            // id, so their paths follow without being touched.
            rec.parent = dst_parent;
            rec.name = dst_name.to_vec();
        } else if let Some(link) = rec
            .extra_links
            .iter_mut()
            .find(|(p, n)| *p == src_parent && n == src_name)
        {
            *link = (dst_parent, dst_name.to_vec());
        } else {
            rec.extra_links.push((dst_parent, dst_name.to_vec()));
        }
        self.put_obj(s, rec);
        self.set_name(export, dst_parent, dst_name, s);
        Ok(())
    }

    pub(super) fn remove(
        &mut self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
    ) -> Result<Option<ObjectId>, FhError> {
        self.parent_dir(export, parent)?;
        let Some(id) = self.name(export, parent, name)? else {
            return Ok(None);
        };
        self.drop_link_and_gc(export, id, parent, name, false)?;
        Ok(Some(id))
    }

    pub(super) fn expire(&mut self, id: ObjectId) -> Result<(), FhError> {
        let mut rec = self.obj(id)?.ok_or(FhError::Stale)?;
        rec.generation = self.next_generation()?;
        self.put_obj(id, rec);
        Ok(())
    }

    /// Gives record `id` a new backend identity (migration to a copied
    /// tree), moving its inode hint. Refuses, changing nothing, if the
    /// record no longer has the (parent, name) the caller probed.
    pub(super) fn rekey(
        &mut self,
        id: ObjectId,
        parent: ObjectId,
        name: &[u8],
        key: ObjKey,
    ) -> Result<bool, FhError> {
        let Some(mut rec) = self.obj(id)? else {
            return Ok(false);
        };
        if rec.parent != parent || rec.name != name {
            return Ok(false);
        }
        if rec.key != key {
            self.unlink_inode(rec.export, &rec.key, id)?;
            self.set_inode(rec.export, &key, id);
            rec.key = key;
            self.put_obj(id, rec);
        }
        Ok(true)
    }

    /// Re-keys an export's root for a migration; with `expire`, bumps its
    /// generation, which expires every volatile handle below it (the root's
    /// own handle carries no stamp and stays valid).
    pub(super) fn rekey_root(
        &mut self,
        export: u32,
        key: ObjKey,
        expire: bool,
    ) -> Result<(), FhError> {
        let id = ObjectId::export_root(export);
        let mut rec = self.obj(id)?.ok_or(FhError::Stale)?;
        if rec.key != key {
            self.unlink_inode(export, &rec.key, id)?;
            self.set_inode(export, &key, id);
            rec.key = key;
        }
        if expire {
            rec.generation = self.next_generation()?;
        }
        self.put_obj(id, rec);
        Ok(())
    }

    /// Drops `id`'s primary link (found dead in the backend); returns
    /// whether the object survives through another link.
    pub(super) fn forget_primary_link(&mut self, id: ObjectId) -> Result<bool, FhError> {
        let rec = self.obj(id)?.ok_or(FhError::Stale)?;
        if id.is_export_root() {
            return Err(FhError::Invalid("an export root has no link to forget"));
        }
        self.drop_link_and_gc(rec.export, id, rec.parent, &rec.name, true)?;
        let Some(mut rec) = self.obj(id)? else {
            return Ok(false);
        };
        // The name its handles were resolved by is gone: maybe a rename we
        // did not see, so volatile handles that expire on rename expire.
        if self.oob.expire_moves {
            rec.generation = self.next_generation()?;
            self.put_obj(id, rec);
        }
        Ok(true)
    }

    // ---- link bookkeeping ----

    /// `out_of_band`: the link was found dead in the backend rather than
    /// removed through the server (see `gc`).
    fn drop_link_and_gc(
        &mut self,
        export: u32,
        id: ObjectId,
        parent: ObjectId,
        name: &[u8],
        out_of_band: bool,
    ) -> Result<(), FhError> {
        if self.drop_link(export, id, parent, name)? {
            self.gc(id, out_of_band)?;
        }
        Ok(())
    }

    /// Removes link (parent, name) of `id`, promoting an extra link to
    /// primary if needed. Returns true if `id` has no link left (the
    /// caller must then collect it).
    fn drop_link(
        &mut self,
        export: u32,
        id: ObjectId,
        parent: ObjectId,
        name: &[u8],
    ) -> Result<bool, FhError> {
        self.unlink_name(export, parent, name, id)?;
        let Some(mut rec) = self.obj(id)? else {
            return Ok(false);
        };
        if rec.parent == parent && rec.name == name && !id.is_export_root() {
            if rec.extra_links.is_empty() {
                return Ok(true);
            }
            let (p, n) = rec.extra_links.remove(0);
            rec.parent = p;
            rec.name = n;
        } else {
            rec.extra_links
                .retain(|(p, n)| !(*p == parent && n == name));
        }
        self.put_obj(id, rec);
        Ok(false)
    }

    /// Deletes `id`'s record and index entries, and everything the map
    /// still holds below it. In NFS a directory must be empty to be removed
    /// (RFC 7530 §16.25), so entries left under a dead directory describe
    /// objects deleted behind the server's back and would otherwise leak.
    /// Iterative, and each record is deleted before its children are
    /// visited, so even a corrupted cycle terminates.
    ///
    /// With `out_of_band` (the object vanished behind our back, so it may
    /// just have been renamed) and an export whose volatile handles expire
    /// on such changes, every collected id gets a tombstone.
    fn gc(&mut self, id: ObjectId, out_of_band: bool) -> Result<(), FhError> {
        let tombstones = out_of_band && self.oob.tombstones;
        let mut work = vec![id];
        while let Some(id) = work.pop() {
            if id.is_export_root() {
                continue;
            }
            let Some(rec) = self.obj(id)? else {
                continue;
            };
            self.objects.insert(id, None);
            self.deleted.push(id);
            if tombstones {
                self.tombstones.insert(id, rec.export);
            }
            self.unlink_name(rec.export, rec.parent, &rec.name, id)?;
            for (p, n) in &rec.extra_links {
                self.unlink_name(rec.export, *p, n, id)?;
            }
            self.unlink_inode(rec.export, &rec.key, id)?;
            for (name, child) in self.children(rec.export, id)? {
                if self.drop_link(rec.export, child, id, &name)? {
                    work.push(child);
                }
            }
        }
        Ok(())
    }

    /// Whether `ancestor` is `id` or one of its ancestors (bounded walk).
    fn is_ancestor_or_self(&self, ancestor: ObjectId, mut id: ObjectId) -> Result<bool, FhError> {
        for _ in 0..=MAX_PATH_DEPTH {
            if id == ancestor {
                return Ok(true);
            }
            match self.obj(id)? {
                Some(rec) if rec.parent != id => id = rec.parent,
                _ => return Ok(false),
            }
        }
        Err(FhError::TooDeep)
    }
}
