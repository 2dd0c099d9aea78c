//! The filehandle map: opaque NFSv4 filehandles ↔ objects of path-based
//! stores, kept in a durable key-value store ([`nfs4d_kv::Kv`]; sled on a
//! single head).
//!
//! Path-based backends name objects by path and have no inode number we
//! could put in a handle, so every object the server hands out gets an
//! [`ObjectId`] recorded in the key-value store together with its parent id and name. The
//! path of an object is derived by walking parent ids up to the export root,
//! which is why a rename rewrites exactly one record however large the
//! moved subtree is.
//!
//! # Handle layout (format 1, 30 bytes; NFS4_FHSIZE is 128)
//!
//! | bytes  | field        | meaning                                          |
//! |--------|--------------|--------------------------------------------------|
//! | 0      | format       | `1` (`2`: see below)                              |
//! | 1      | kind         | 1 = pseudo-fs node, 2 = export root, 3 = object   |
//! | 2..6   | export id    | u32 big-endian (0 for pseudo-fs nodes)            |
//! | 6..14  | object id    | u64 big-endian ([`ObjectId`]; pseudo: node number)|
//! | 14..18 | boot epoch   | u32 BE; 0 = not bound to a boot                   |
//! | 18..22 | generation   | u32 BE path stamp; 0 in persistent handles        |
//! | 22..30 | MAC          | SipHash-2-4 of bytes 0..22, u64 BE                |
//!
//! Format 2 (34 bytes) is the same with a u64 generation at 18..26 and the
//! MAC at 26..34; it is used only when the stamp does not fit in 32 bits
//! (volatile handles of objects that have been expired). Persistent handles
//! are always format 1 with epoch and generation 0, byte for byte what
//! earlier versions issued.
//!
//! The MAC key is 16 random bytes created at first open and kept in the store, so
//! handles survive restarts but any byte string we did not issue decodes to
//! [`FhError::BadHandle`] (RFC 7530 §13.1.2.1) instead of naming some other
//! object. Ids are never reused, so a handle of a removed object can only
//! answer [`FhError::Stale`] (RFC 7530 §4.2.2).
//!
//! # Persistent vs volatile, per export ([`HandlePolicy`], `fh_expire_type`)
//!
//! Every export has its own policy ([`FhMap::set_policy`]; exports without
//! one get the map's default), and a handle is stamped by its export's
//! policy, so a persistent export's handles never change because another
//! export of the same map is volatile.
//!
//! * Persistent (FH4_PERSISTENT, RFC 7530 §4.2.2 / RFC 8881 §4.2.2):
//!   epoch and generation are written as 0, so an object's handle is
//!   byte-identical for its whole life, across restarts; it is only ever
//!   refused as STALE once the object is gone.
//! * Volatile (RFC 7530 §4.2.3, built along the lines of §4.2.4): with
//!   `reboot` the handle carries the boot epoch (bumped at every
//!   [`FhMap::open`]) and is [`FhError::Expired`] in any other boot; with
//!   `rename` or `migration` it carries a *path stamp* (below) and is
//!   expired once the stamp is out of date. A removed object still answers
//!   STALE, as §4.2.3 asks when removal can be determined; an object that
//!   vanished behind the server's back answers FHEXPIRED (tombstones).
//!   With `noexpire_with_open` the caller may exempt open files
//!   ([`FhMap::validate_with`]).
//! * Export-root and pseudo-fs handles are never stamped and never expire:
//!   a client needs one handle it can always start a lookup from.
//!
//! ## Expiring a renamed directory's whole subtree in O(1)
//!
//! The map keeps one global, persisted, monotonic *expiry generation*
//! counter. Expiring an object ([`FhMap::expire`]: after a RENAME, or for a
//! migration on the export root) stores the next counter value in its
//! record's `generation`. A handle's stamp is the maximum generation over
//! the object and all its ancestors at issue time, and the handle is
//! expired once that maximum exceeds its stamp. Why that is exact:
//!
//! * expiring X gives X a generation above every stamp ever issued, so
//!   every handle of X or of anything below X is expired at once, with one
//!   record write — the same one-record rename the map already does;
//! * an object's chain of ancestors only changes through a rename (or a
//!   move seen out of band) of a chain member, and that member is expired
//!   in the same step, so the maximum can only grow while the handle
//!   should stay valid — except when a hard link's primary name goes and
//!   another link takes over, where the maximum may drop, which is why the
//!   rule is "greater than", not "different";
//! * generations are never reused (the counter is written before the
//!   record, like the id counter), so no crash makes an old stamp current.
//!
//! Validation already walks the ancestor chain to build the path, through
//! the node cache, so the rule costs no extra store reads.
//!
//! # Storage (trees of one key-value store)
//!
//! * meta tree: format version, MAC key, boot epoch, id counter, expiry
//!   generation counter;
//! * `objects`: id → [`ObjRecord`] (compact encoding in `record.rs`);
//! * `names`: (export, parent id, name) → id, for every link of every object;
//! * `inodes`: (export, dev, ino) → id, so hard links share one handle
//!   (RFC 7530 §4.2.1 says they SHOULD);
//! * `expired`: tombstones, id → export, of volatile objects that vanished
//!   behind the server's back (their handles stay FHEXPIRED, not STALE).
//!
//! Export roots have the well-known ids `0..2^32` ([`ObjectId::export_root`]),
//! are their own parent and have no name; other ids are allocated from
//! `2^32` upwards by a counter persisted before any record that uses it.
//!
//! # Invariants
//!
//! Records are the source of truth; the two indexes are hints, each
//! checked against the record it points to before it is believed
//! (`names[(e, p, n)] = id` counts only if record `id` has export `e` and
//! link `(p, n)`; `inodes[(e, dev, ino)] = id` only if it has that dev/ino).
//! After every mutation that completed:
//!
//! 1. every link of every record has its `names` entry and every record its
//!    `inodes` entry, and no other entries exist;
//! 2. at most one record per (export, dev, ino);
//! 3. every non-root record has at least one link, and its primary parent
//!    exists; when its last link goes, the record, its index entries and
//!    everything recorded below it go too;
//! 4. ids are never reused (the counter is written before any record).
//!
//! Mutations are planned under one write lock and written as single-key
//! writes in an order that keeps every crash state usable (see
//! `txn.rs` for why multi-key transactions are avoided and for the order);
//! the store's sole writer writes them after releasing the lock
//! (`inflight.rs`). Reads take no write lock.
//!
//! # Durability (group commit)
//!
//! A handle handed to a client must be durable before the reply leaves
//! (§4.2.2). Mutations return immediately; callers then call
//! `make_durable(last_seq())`, which shares one `fsync` among all callers
//! waiting at the same time (see `durability.rs`).
//!
//! # Journal
//!
//! The `journal` tree holds opaque entries of the server's namespace
//! intent log ([`FhMap::journal_append`]), written in the same sequence as
//! the map's own writes, so the flush that makes a handle durable makes
//! the entries written before it durable too: one flush covers a change's
//! record and its intent, for every directory at once. Keys are the boot
//! epoch and the sequence number (big-endian), so entries of earlier boots
//! sort first and never collide with new ones; the caller replays them at
//! start-up and trims what its checkpoints made redundant.

mod cache;
mod durability;
mod handle;
mod inflight;
mod record;
mod siphash;
#[cfg(test)]
mod tests;
mod txn;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use nfs4d_kv::{Kv, Tree};

use serde::{Deserialize, Serialize};

use cache::{Hint, NameHints, Node, NodeCache};
use durability::GroupCommit;
use inflight::InFlight;
use record::{decode_id, decode_record, id_key, name_key};
use siphash::SipKey;
use txn::{Committed, Counters, OobRules, Trees, WriteSet};

/// Longest handle the map issues (format 2). NFSv4 allows 128 bytes
/// (`NFS4_FHSIZE`, RFC 7530 §2.2); the server asserts the relation where it
/// knows both.
pub const MAX_HANDLE_LEN: usize = handle::FH_LEN_V2;
/// Longest name component the map stores (NAME_MAX of common filesystems).
pub const MAX_NAME_LEN: usize = 255;
/// Longest parent chain `path_of` follows before declaring corruption.
pub const MAX_PATH_DEPTH: usize = 4096;
/// `nfs_ftype4` value of a directory (RFC 7530 §3.2); record kinds are
/// `nfs_ftype4` values, and directories get special treatment (they cannot
/// be hard-linked, so a second name means they were moved).
pub const NF4DIR: u8 = 2;
/// `fh_expire_type` bits (RFC 7530 §4.2.3, RFC 8881 §4.2.3).
pub const FH4_PERSISTENT: u32 = 0x0;
pub const FH4_NOEXPIRE_WITH_OPEN: u32 = 0x1;
pub const FH4_VOLATILE_ANY: u32 = 0x2;
pub const FH4_VOL_MIGRATION: u32 = 0x4;
pub const FH4_VOL_RENAME: u32 = 0x8;

/// First id handed out by the allocator; ids below are export roots.
const FIRST_DYNAMIC_ID: u64 = 1 << 32;
/// Where the expiry generation counter starts: above every per-object
/// incarnation a version-1 record can hold, so those read as generations
/// (see `record.rs`) that every new expiry exceeds.
const FIRST_GENERATION: u64 = 1 << 32;
/// Entries in the id → (parent, name, …) cache (roughly 100 bytes each).
const NODE_CACHE_ENTRIES: usize = 1 << 16;
/// Times a mutation is planned again after another writer of a shared
/// store changed what it was planned from, before it gives up with
/// [`nfs4d_kv::KvError::Unavailable`] (NFS4ERR_DELAY: the client retries).
const MAX_REPLANS: usize = 16;
/// Compare-and-swap attempts on the boot epoch at open.
const MAX_EPOCH_SWAPS: usize = 64;

/// The tree of the map's own metadata. Its name is the one sled gives its
/// default tree, where maps made before the key-value interface keep it.
const META_TREE: &str = "__sled__default";
const META_FORMAT: &[u8] = b"format";
const META_MAC_KEY: &[u8] = b"mac_key";
const META_BOOT_EPOCH: &[u8] = b"boot_epoch";
const META_NEXT_ID: &[u8] = b"next_id";
const META_EXPIRE_GEN: &[u8] = b"expire_gen";
/// Version of the on-disk schema (trees and record encoding).
const STORE_FORMAT: u8 = 1;

pub type Result<T, E = FhError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FhError {
    /// Not a handle this server issued (NFS4ERR_BADHANDLE).
    #[error("malformed or forged filehandle")]
    BadHandle,
    /// The object behind the handle (or the parent given) no longer exists
    /// (NFS4ERR_STALE).
    #[error("filehandle refers to a removed object")]
    Stale,
    /// A volatile handle from an earlier boot, or older than a rename or
    /// migration that expired it (NFS4ERR_FHEXPIRED).
    #[error("volatile filehandle has expired")]
    Expired,
    #[error("name longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
    /// Empty, ".", "..", or containing '/' or NUL.
    #[error("invalid name component")]
    BadName,
    /// Parent and export (or source and target) are in different exports.
    #[error("objects belong to different exports")]
    CrossExport,
    #[error("path deeper than {MAX_PATH_DEPTH} components (or a cycle)")]
    TooDeep,
    /// A request the map refuses to apply (e.g. a directory into itself).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    #[error("corrupt fhmap state: {0}")]
    Corrupt(String),
    #[error("fhmap store error: {0}")]
    Store(#[from] nfs4d_kv::KvError),
}

/// Server-side identity of an object, allocated by the map, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(pub u64);

impl ObjectId {
    /// The well-known id of an export's root directory.
    pub fn export_root(export: u32) -> ObjectId {
        ObjectId(u64::from(export))
    }

    pub fn is_export_root(self) -> bool {
        self.0 < FIRST_DYNAMIC_ID
    }
}

/// Backend identity of an object (converted from the backend's
/// `ObjIdentity`): an object deleted and recreated under the same name has
/// a different key, which is how the map notices replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjKey {
    pub dev: u64,
    pub ino: u64,
    /// Birth time or inode generation.
    pub gen: u64,
}

/// What the map stores per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjRecord {
    pub export: u32,
    /// Primary parent; an export root is its own parent.
    pub parent: ObjectId,
    /// Primary name (empty for export roots).
    pub name: Vec<u8>,
    pub key: ObjKey,
    /// `nfs_ftype4` value as given by the caller (see [`NF4DIR`]).
    pub kind: u8,
    /// Expiry generation: the counter value of the last [`FhMap::expire`]
    /// of this object (0: never). Volatile handles of this object and of
    /// everything below it issued before that are expired.
    pub generation: u64,
    /// Further hard links, as (parent, name).
    pub extra_links: Vec<(ObjectId, Vec<u8>)>,
}

impl ObjRecord {
    /// Whether `(parent, name)` is one of this object's links.
    pub fn has_link(&self, parent: ObjectId, name: &[u8]) -> bool {
        (self.parent == parent && self.name == name)
            || self
                .extra_links
                .iter()
                .any(|(p, n)| *p == parent && n == name)
    }
}

/// The `kind` byte of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HandleKind {
    /// A node of the pseudo filesystem (RFC 7530 §7), numbered by the caller.
    Pseudo = 1,
    ExportRoot = 2,
    Object = 3,
}

impl HandleKind {
    fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(HandleKind::Pseudo),
            2 => Some(HandleKind::ExportRoot),
            3 => Some(HandleKind::Object),
            _ => None,
        }
    }
}

/// An authenticated handle (MAC verified, nothing looked up yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFh {
    pub kind: HandleKind,
    pub export: u32,
    /// For [`HandleKind::Pseudo`], the caller's pseudo-fs node number.
    pub id: ObjectId,
    /// Boot epoch of issue; 0 unless the export's handles expire at reboot.
    pub epoch: u32,
    /// Path stamp of issue (maximum expiry generation of the object and its
    /// ancestors); 0 unless the export's handles expire on rename/migration.
    pub generation: u64,
}

/// Shorthand for the two common policies (the map's default policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HandleMode {
    /// Valid until the object is removed, across restarts.
    #[default]
    Persistent,
    /// Expire on reboot, rename and migration; open files exempt.
    Volatile,
}

impl HandleMode {
    /// The policy this mode stands for.
    pub fn policy(self) -> HandlePolicy {
        match self {
            HandleMode::Persistent => HandlePolicy::PERSISTENT,
            HandleMode::Volatile => HandlePolicy {
                reboot: true,
                rename: true,
                migration: true,
                noexpire_with_open: true,
            },
        }
    }

    /// Value of the `fh_expire_type` attribute (RFC 7530 §4.2.3).
    pub fn fh_expire_type(self) -> u32 {
        self.policy().fh_expire_type()
    }
}

/// When the handles of one export expire. All false: persistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HandlePolicy {
    /// Handles of earlier boots are expired (handles carry the boot epoch).
    pub reboot: bool,
    /// Handles of a renamed object and everything below it are expired.
    pub rename: bool,
    /// Handles are expired when the export moves to another directory.
    pub migration: bool,
    /// The handle of an open file does not expire until its last close.
    pub noexpire_with_open: bool,
}

impl HandlePolicy {
    pub const PERSISTENT: HandlePolicy = HandlePolicy {
        reboot: false,
        rename: false,
        migration: false,
        noexpire_with_open: false,
    };

    /// Whether any event expires handles.
    pub fn is_volatile(&self) -> bool {
        self.reboot || self.rename || self.migration
    }

    /// Whether handles carry a path stamp (rename and migration expire by
    /// generation; see the module documentation).
    pub fn stamps_generation(&self) -> bool {
        self.rename || self.migration
    }

    /// Whether a handle whose object vanished or changed behind the
    /// server's back is reported expired (FHEXPIRED) rather than stale:
    /// the server cannot tell a removal from a rename it did not see, and
    /// only a policy that expires on rename (or at any time, which reboot
    /// expiry announces) may say FHEXPIRED for that.
    pub fn expires_out_of_band(&self) -> bool {
        self.reboot || self.rename
    }

    /// The `fh_expire_type` attribute that describes exactly this policy
    /// (RFC 7530 §4.2.3):
    /// * reboot expiry means any handle may expire at any time from the
    ///   client's point of view: FH4_VOLATILE_ANY, plus
    ///   FH4_NOEXPIRE_WITH_OPEN when open files are exempt (that bit "may
    ///   only be set when FH4_VOLATILE_ANY is set"). VOL_RENAME and
    ///   VOL_MIGRATION are then redundant and left out: §4.2.3 reads them as
    ///   "may expire while open", which would contradict NOEXPIRE_WITH_OPEN;
    /// * otherwise FH4_VOL_RENAME and/or FH4_VOL_MIGRATION for the events
    ///   that expire handles;
    /// * nothing: FH4_PERSISTENT.
    pub fn fh_expire_type(&self) -> u32 {
        if self.reboot {
            let mut bits = FH4_VOLATILE_ANY;
            if self.noexpire_with_open {
                bits |= FH4_NOEXPIRE_WITH_OPEN;
            }
            return bits;
        }
        let mut bits = FH4_PERSISTENT;
        if self.rename {
            bits |= FH4_VOL_RENAME;
        }
        if self.migration {
            bits |= FH4_VOL_MIGRATION;
        }
        bits
    }

    fn oob_rules(&self) -> OobRules {
        OobRules {
            tombstones: self.expires_out_of_band(),
            expire_moves: self.rename,
        }
    }
}

/// The "moved intact" test of [`FhMap::migrate_export`]: given a record's
/// path components and the record, the new identity of the same object
/// in the new tree, or `None`.
pub type MigrateProbe<'a> = dyn FnMut(&[Vec<u8>], &ObjRecord) -> Option<ObjKey> + 'a;

/// What [`FhMap::migrate_export`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateStats {
    /// Records found at the same path with the same type in the new tree.
    pub rekeyed: u64,
    /// Records (and the subtrees below them) not found intact there: their
    /// handles answer STALE, or FHEXPIRED when volatile, once used.
    pub missing: u64,
}

/// What a map whose store other writers share (heads of a cluster) needs
/// from them: their cached records must not outlive a change.
pub trait Coherence: Send + Sync {
    /// This writer changed or removed existing records in a commit at the
    /// store's `revision` ([`nfs4d_kv::Kv::commit_at`]). Returns once every
    /// other writer has dropped its cached copies of them (or can no longer
    /// serve), so the reply that follows never meets a stale view
    /// elsewhere.
    fn changed(&self, revision: u64) -> std::result::Result<(), nfs4d_kv::KvError>;
}

/// How [`FhMap::open_with`] opens a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Object ids reserved on the counter at a time: the counter is
    /// written once per block, not once per new object. The ids of a
    /// block not used up when the process stops are skipped for good
    /// (ids are 64-bit and never reused).
    pub id_block: u64,
    /// No other process writes the store (a local sled database, which
    /// one process at a time can open). Mutations then read records
    /// through the cache and commit without checks (`txn.rs`). False for
    /// a store that heads of a cluster share.
    pub sole_writer: bool,
}

/// Ids a sole writer reserves at a time: the counter's write and read
/// are paid once per this many new objects.
pub const SOLE_WRITER_ID_BLOCK: u64 = 64;

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            id_block: SOLE_WRITER_ID_BLOCK,
            sole_writer: true,
        }
    }
}

/// The handle ↔ object map. See the module documentation.
pub struct FhMap {
    kv: Arc<dyn Kv>,
    trees: Trees,
    mac: SipKey,
    boot_epoch: u32,
    /// Policy of exports without one of their own.
    mode: HandleMode,
    /// Per-export policies (see [`Self::set_policy`]).
    policies: RwLock<HashMap<u32, HandlePolicy>>,
    /// Serializes this process's mutations.
    writer: Mutex<()>,
    /// No other process writes the store ([`OpenOptions::sole_writer`]).
    sole_writer: bool,
    /// The shared id and expiry-generation counters.
    counters: Counters,
    /// Set when other writers share the store.
    coherence: RwLock<Option<Arc<dyn Coherence>>>,
    /// Write sequence numbers, and the commits being written.
    inflight: InFlight,
    group: GroupCommit,
    cache: NodeCache,
    names: NameHints,
}

/// Ends a commit, on success, error or unwind alike: invalidates the cache
/// entries it touched (writes may be half done; this runs after the last
/// write, so no reader can cache a pre-commit value after it, and before
/// the writes are withdrawn from `inflight`, so a plan reads either them
/// or the store) and marks its sequence number finished, which
/// `make_durable` waits for.
struct Completion<'a> {
    map: &'a FhMap,
    seq: u64,
    touched: Vec<ObjectId>,
}

impl Drop for Completion<'_> {
    fn drop(&mut self) {
        self.map.cache.invalidate(self.touched.drain(..));
        self.map.inflight.finish(self.seq);
    }
}

/// Locks ignoring poisoning: every mutex here guards data that is consistent
/// between statements (an id counter that only grows, a cache, flush
/// bookkeeping), and a half-applied commit is a state the crash-tolerant
/// write order already copes with.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Key of a journal entry: boot epoch, then sequence number, big-endian.
fn journal_key(epoch: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&epoch.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn corrupt(what: &str) -> FhError {
    FhError::Corrupt(what.to_string())
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(FhError::NameTooLong);
    }
    // Paths are rebuilt by joining names, so these would change their meaning.
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FhError::BadName);
    }
    Ok(())
}

/// 16 bytes from the operating system's random source, for the MAC key of
/// a new map.
pub fn random_key() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut key = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| FhError::Store(nfs4d_kv::KvError::Store(format!("/dev/urandom: {e}"))))?;
    Ok(key)
}

fn meta_array<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(v).map_err(|_| corrupt(what))
}

/// Moves the boot epoch forward by one and returns the new value; 0 marks
/// persistent handles, so a (theoretical) wrap skips it.
fn next_boot_epoch(meta: &dyn Tree) -> Result<u32> {
    let mut seen = meta.get(META_BOOT_EPOCH)?;
    for _ in 0..MAX_EPOCH_SWAPS {
        let previous = match &seen {
            Some(v) => u32::from_be_bytes(meta_array(v, "bad boot epoch")?),
            None => 0,
        };
        let epoch = previous.wrapping_add(1).max(1);
        match meta.compare_and_swap(META_BOOT_EPOCH, seen.as_deref(), Some(&epoch.to_be_bytes()))? {
            Ok(()) => return Ok(epoch),
            Err(now) => seen = now,
        }
    }
    Err(FhError::Store(nfs4d_kv::KvError::Unavailable(
        "boot epoch contended".into(),
    )))
}

impl FhMap {
    /// Opens (or creates) the map in the key-value store `kv`, and starts a
    /// new boot epoch. `mac_key` gives the key of a new map (16 random
    /// bytes); an existing map keeps its own.
    pub fn open(
        kv: Arc<dyn Kv>,
        mode: HandleMode,
        mac_key: impl FnOnce() -> Result<[u8; 16]>,
    ) -> Result<FhMap> {
        FhMap::open_with(kv, mode, mac_key, OpenOptions::default())
    }

    /// [`FhMap::open`] with options. Every step is safe with other
    /// writers opening or using the same store at the same time: the
    /// format and MAC key are created only if absent (the first writer's
    /// win), and the boot epoch moves forward by compare-and-swap, so no
    /// two opens get the same epoch.
    pub fn open_with(
        kv: Arc<dyn Kv>,
        mode: HandleMode,
        mac_key: impl FnOnce() -> Result<[u8; 16]>,
        opts: OpenOptions,
    ) -> Result<FhMap> {
        let meta = kv.tree(META_TREE)?;
        match meta.compare_and_swap(META_FORMAT, None, Some(&[STORE_FORMAT]))? {
            Ok(()) => {}
            Err(Some(v)) if v.as_slice() == [STORE_FORMAT] => {}
            Err(_) => return Err(corrupt("unsupported fhmap store format")),
        }
        let mac_key = match meta.get(META_MAC_KEY)? {
            Some(v) => meta_array::<16>(&v, "bad MAC key")?,
            None => {
                let key = mac_key()?;
                match meta.compare_and_swap(META_MAC_KEY, None, Some(&key[..]))? {
                    Ok(()) => key,
                    // Another writer created it first: everyone uses that one.
                    Err(Some(v)) => meta_array::<16>(&v, "bad MAC key")?,
                    Err(None) => return Err(corrupt("MAC key vanished")),
                }
            }
        };
        let boot_epoch = next_boot_epoch(&*meta)?;
        let trees = Trees {
            objects: kv.tree("objects")?,
            names: kv.tree("names")?,
            inodes: kv.tree("inodes")?,
            expired: kv.tree("expired")?,
            journal: kv.tree("journal")?,
        };
        // The MAC key and the new epoch end up in handles: make them durable
        // before anyone can be given one.
        kv.flush()?;
        Ok(FhMap {
            kv,
            trees,
            mac: SipKey::from_bytes(&mac_key),
            boot_epoch,
            mode,
            policies: RwLock::new(HashMap::new()),
            writer: Mutex::new(()),
            sole_writer: opts.sole_writer,
            counters: Counters {
                ids: nfs4d_kv::IdBlocks::new(
                    meta.clone(),
                    META_NEXT_ID,
                    FIRST_DYNAMIC_ID,
                    opts.id_block,
                ),
                meta,
                free_until: AtomicU64::new(0),
            },
            coherence: RwLock::new(None),
            inflight: InFlight::default(),
            group: GroupCommit::default(),
            cache: NodeCache::new(NODE_CACHE_ENTRIES),
            names: NameHints::new(NODE_CACHE_ENTRIES),
        })
    }

    /// Declares that other writers share the store: every commit that
    /// changes or removes existing records waits for `c` before returning.
    pub fn set_coherence(&self, c: Arc<dyn Coherence>) {
        *self
            .coherence
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(c);
    }

    /// Drops cached copies of `ids` (another writer changed them).
    pub fn invalidate(&self, ids: impl IntoIterator<Item = ObjectId>) {
        self.cache.invalidate(ids);
    }

    /// Drops every cached record (another writer's changes may have been
    /// missed, e.g. while its change feed was broken).
    pub fn invalidate_all(&self) {
        self.cache.clear();
    }

    /// Opens (creating if needed) another tree of the map's store, for
    /// other durable server state (client records): flushed together with
    /// the map.
    pub fn open_tree(&self, name: &str) -> Result<Arc<dyn Tree>> {
        Ok(self.kv.tree(name)?)
    }

    /// Number of times the map was opened on this store, this one
    /// included (starts at 1).
    pub fn boot_epoch(&self) -> u32 {
        self.boot_epoch
    }

    /// The default mode (the policy of exports without one of their own).
    pub fn mode(&self) -> HandleMode {
        self.mode
    }

    /// Value of the `fh_expire_type` attribute under the default policy.
    pub fn fh_expire_type(&self) -> u32 {
        self.mode.fh_expire_type()
    }

    /// Sets the handle policy of `export`. Call before issuing handles of
    /// that export (the server does so at start-up, from the export's
    /// configuration); handles already issued are judged by the new policy.
    pub fn set_policy(&self, export: u32, policy: HandlePolicy) {
        self.policies
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(export, policy);
    }

    /// The handle policy of `export`.
    pub fn policy(&self, export: u32) -> HandlePolicy {
        self.policies
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&export)
            .copied()
            .unwrap_or_else(|| self.mode.policy())
    }

    /// Value of the `fh_expire_type` attribute of `export`'s file system.
    pub fn fh_expire_type_of(&self, export: u32) -> u32 {
        self.policy(export).fh_expire_type()
    }

    // ---- handles ----

    /// The handle of object `id` of `export` whose path stamp is `stamp`
    /// (from [`Self::stamp_of`]; [`Self::handle_of`] looks it up). What is
    /// embedded follows the export's policy: nothing (zeros) for persistent
    /// exports, so their handles never change (RFC 7530 §4.2.2), and never
    /// for an export root, whose handle does not expire. No store access.
    pub fn encode(&self, export: u32, id: ObjectId, stamp: u64) -> Vec<u8> {
        self.encode_with(export, id, stamp, self.policy(export))
    }

    /// [`Self::encode`] with the export's policy already at hand (READDIR
    /// issues hundreds of handles of one export per reply).
    pub fn encode_with(&self, export: u32, id: ObjectId, stamp: u64, p: HandlePolicy) -> Vec<u8> {
        let (kind, epoch, generation) = if id == ObjectId::export_root(export) {
            (HandleKind::ExportRoot, 0, 0)
        } else {
            let epoch = if p.reboot { self.boot_epoch } else { 0 };
            let generation = if p.stamps_generation() { stamp } else { 0 };
            (HandleKind::Object, epoch, generation)
        };
        handle::encode(
            &self.mac,
            &DecodedFh {
                kind,
                export,
                id,
                epoch,
                generation,
            },
        )
    }

    /// The handle of pseudo-filesystem node `node` (numbered by the caller;
    /// the map stores nothing for it). The pseudo filesystem is persistent:
    /// no stamps.
    pub fn encode_pseudo(&self, node: u64) -> Vec<u8> {
        handle::encode(
            &self.mac,
            &DecodedFh {
                kind: HandleKind::Pseudo,
                export: 0,
                id: ObjectId(node),
                epoch: 0,
                generation: 0,
            },
        )
    }

    /// The current handle of `id`, or `None` if it does not exist.
    pub fn handle_of(&self, id: ObjectId) -> Result<Option<Vec<u8>>> {
        let Some(n) = self.node(id)? else {
            return Ok(None);
        };
        let Some(stamp) = self.stamp_of(id)? else {
            return Ok(None);
        };
        Ok(Some(self.encode(n.export, id, stamp)))
    }

    /// Authenticates and parses a handle without consulting the store: only
    /// `BadHandle` can come out of here.
    pub fn decode(&self, fh: &[u8]) -> Result<DecodedFh> {
        handle::decode(&self.mac, fh)
    }

    /// [`Self::validate_with`] with no file open.
    pub fn validate(&self, fh: &[u8]) -> Result<DecodedFh> {
        self.validate_with(fh, &|_, _| false)
    }

    /// [`Self::decode`] plus the liveness checks a PUTFH needs, by the
    /// policy of the handle's export:
    /// * the object must exist: `Stale`, or `Expired` if it has a tombstone
    ///   (it vanished behind our back on a volatile export);
    /// * with reboot expiry, the handle must be from this boot (`Expired`);
    /// * with rename/migration expiry, its path stamp must not be older than
    ///   the object's and its ancestors' generations (`Expired`);
    /// * with `noexpire_with_open`, an object for which `is_open(export,
    ///   id)` holds is not expired (FH4_NOEXPIRE_WITH_OPEN): its handles
    ///   keep working until its last close, and are expired from then on
    ///   without anything to do at CLOSE, since validity is computed here.
    ///
    /// Export-root and pseudo-fs handles never expire.
    pub fn validate_with(
        &self,
        fh: &[u8],
        is_open: &dyn Fn(u32, ObjectId) -> bool,
    ) -> Result<DecodedFh> {
        let d = self.decode(fh)?;
        if d.kind == HandleKind::Pseudo {
            return Ok(d);
        }
        // STALE before FHEXPIRED: RFC 7530 §4.2.3 wants STALE whenever the
        // server can tell the object was removed.
        let Some(node) = self.node(d.id)? else {
            if d.kind == HandleKind::Object && self.trees.expired.get(&id_key(d.id))?.is_some() {
                return Err(FhError::Expired);
            }
            return Err(FhError::Stale);
        };
        if node.export != d.export {
            return Err(FhError::BadHandle);
        }
        if d.kind == HandleKind::ExportRoot {
            return Ok(d);
        }
        let p = self.policy(d.export);
        let mut expired = p.reboot && d.epoch != self.boot_epoch;
        if !expired && p.stamps_generation() {
            let stamp = self.stamp_of(d.id)?.ok_or(FhError::Stale)?;
            expired = stamp > d.generation;
        }
        if expired && !(p.noexpire_with_open && is_open(d.export, d.id)) {
            return Err(FhError::Expired);
        }
        Ok(d)
    }

    // ---- reads ----

    /// Cached view of a record (see `cache.rs` for the consistency rule).
    fn node(&self, id: ObjectId) -> Result<Option<Node>> {
        let generation = match self.cache.get(id) {
            Ok(node) => return Ok(Some(node)),
            Err(generation) => generation,
        };
        let Some(v) = self.trees.objects.get(&id_key(id))? else {
            return Ok(None);
        };
        let node = Node::new(decode_record(&v)?);
        self.cache.fill(id, node.clone(), generation);
        Ok(Some(node))
    }

    pub fn get(&self, id: ObjectId) -> Result<Option<ObjRecord>> {
        Ok(self.node(id)?.map(|rec| ObjRecord::clone(&rec)))
    }

    /// Components of `id`'s primary path below its export root (empty for
    /// the root), or `None` if `id` (or an ancestor) no longer exists.
    pub fn path_of(&self, id: ObjectId) -> Result<Option<Vec<Vec<u8>>>> {
        let mut components = Vec::new();
        let mut cur = id;
        for _ in 0..=MAX_PATH_DEPTH {
            let Some(node) = self.node(cur)? else {
                if cur != id {
                    tracing::warn!(?id, missing = ?cur, "fhmap: object has a dead ancestor");
                }
                return Ok(None);
            };
            if node.parent == cur {
                if !cur.is_export_root() {
                    return Err(corrupt("non-root object is its own parent"));
                }
                components.reverse();
                return Ok(Some(components));
            }
            components.push(node.name.to_vec());
            cur = node.parent;
        }
        Err(FhError::TooDeep)
    }

    /// The path stamp of `id`: the highest expiry generation of `id` and
    /// its ancestors (see the module documentation), or `None` if `id` or
    /// an ancestor no longer exists. Walks the chain through the cache.
    pub fn stamp_of(&self, id: ObjectId) -> Result<Option<u64>> {
        let mut stamp = 0;
        let mut cur = id;
        for _ in 0..=MAX_PATH_DEPTH {
            let Some(node) = self.node(cur)? else {
                return Ok(None);
            };
            stamp = stamp.max(node.generation);
            if node.parent == cur {
                return Ok(Some(stamp));
            }
            cur = node.parent;
        }
        Err(FhError::TooDeep)
    }

    /// The stamp to pass to [`Self::encode`] for `id` (an older name of
    /// [`Self::stamp_of`], kept for callers that encode handles themselves).
    pub fn incarnation_of(&self, id: ObjectId) -> Result<Option<u64>> {
        self.stamp_of(id)
    }

    /// Whether `ancestor` is `id` itself or one of its ancestors (by
    /// primary parents).
    pub fn is_within(&self, id: ObjectId, ancestor: ObjectId) -> Result<bool> {
        let mut cur = id;
        for _ in 0..=MAX_PATH_DEPTH {
            if cur == ancestor {
                return Ok(true);
            }
            match self.node(cur)? {
                Some(node) if node.parent != cur => cur = node.parent,
                _ => return Ok(false),
            }
        }
        Err(FhError::TooDeep)
    }

    /// The objects recorded under directory `dir` by their primary link:
    /// (name, id, record). Read-only; index hints are checked against the
    /// records, as everywhere.
    pub fn children_of(
        &self,
        export: u32,
        dir: ObjectId,
    ) -> Result<Vec<(Vec<u8>, ObjectId, ObjRecord)>> {
        let prefix = record::name_prefix(export, dir);
        let mut out = Vec::new();
        for item in self.trees.names.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = decode_id(&v)?;
            let name = k[prefix.len()..].to_vec();
            if let Some(rec) = self.get(id)? {
                if rec.export == export && rec.parent == dir && rec.name == name && id != dir {
                    out.push((name, id, rec));
                }
            }
        }
        Ok(out)
    }

    // ---- mutations ----

    /// An empty plan on this map's trees; a sole writer's reads go
    /// through its commits in flight and the record cache.
    fn write_set(&self, oob: OobRules) -> WriteSet<'_> {
        let sole = self.sole_writer.then_some((&self.cache, &self.inflight));
        WriteSet::new(&self.trees, &self.counters, oob, sole)
    }

    /// Plans one mutation under the write lock and writes it to the store
    /// (after releasing the lock, for a sole writer), assigning it the next
    /// write sequence number. `export` selects the out-of-band rules of the
    /// export's policy.
    fn mutate<T>(
        &self,
        export: Option<u32>,
        mut plan: impl FnMut(&mut WriteSet<'_>) -> Result<T>,
    ) -> Result<T> {
        let oob = export
            .map(|e| self.policy(e).oob_rules())
            .unwrap_or_default();
        let writer = lock(&self.writer);
        for _ in 0..MAX_REPLANS {
            let mut ws = self.write_set(oob);
            let out = plan(&mut ws)?;
            let after = ws.depends_on();
            if ws.is_empty() {
                drop(writer);
                self.inflight.wait_completed(after);
                return Ok(out);
            }
            if self.sole_writer {
                return self.commit_outside_lock(writer, &ws, after).map(|()| out);
            }
            let seq = self.inflight.issue(&[]);
            let done = Completion {
                map: self,
                seq,
                touched: ws.touched(),
            };
            let committed = ws.commit(&*self.kv)?;
            drop(done);
            match committed {
                Committed::Applied {
                    revision,
                    changed_records,
                } => {
                    drop(writer);
                    if changed_records {
                        let c = self
                            .coherence
                            .read()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clone();
                        if let Some(c) = c {
                            c.changed(revision)?;
                        }
                    }
                    return Ok(out);
                }
                Committed::Conflict => {
                    // Another writer changed what this plan read; what this
                    // process cached of it may be old too.
                    tracing::debug!("fhmap: commit conflicted with another writer; planning again");
                }
            }
        }
        Err(FhError::Store(nfs4d_kv::KvError::Unavailable(format!(
            "fhmap: {MAX_REPLANS} commits in a row conflicted with other writers"
        ))))
    }

    /// A sole writer's commit (see `inflight.rs`): its writes are published
    /// under the write lock, which is then released, and written key by key
    /// in the plan's crash-tolerant order. Returns once they and every
    /// write the plan read in flight (`after`) are in the store.
    fn commit_outside_lock(
        &self,
        writer: MutexGuard<'_, ()>,
        ws: &WriteSet<'_>,
        after: u64,
    ) -> Result<()> {
        let writes = ws.writes();
        if let Some(earlier) = self.inflight.conflict(&writes) {
            // Written after that commit's value, or the store could end
            // with the older one. It holds no lock, so waiting under ours
            // cannot deadlock.
            self.inflight.wait_completed(earlier);
        }
        let seq = self.inflight.issue(&writes);
        let done = Completion {
            map: self,
            seq,
            touched: ws.touched(),
        };
        drop(writer);
        for w in writes {
            w.apply(&self.trees)?;
        }
        drop(done);
        self.inflight.wait_completed(after);
        Ok(())
    }

    /// Creates the root record of `export` (well-known id) if needed. If
    /// the export directory's identity changed, the root keeps its id, takes
    /// the new key, and its generation is bumped (so volatile handles below it
    /// expire).
    pub fn ensure_export_root(&self, export: u32, key: ObjKey) -> Result<ObjectId> {
        self.mutate(Some(export), |ws| ws.ensure_export_root(export, key))
    }

    /// The id of the object `name` in directory `parent`, whose backend
    /// identity is `key` and type `kind` (`nfs_ftype4`):
    /// * the existing id if the map has this name with this key;
    /// * if the name is recorded with another key (replaced behind our
    ///   back), that link is dropped (the old id is retired if it was its
    ///   last link, so its handles answer STALE) and we continue;
    /// * if an object with this (dev, ino) is known under another name: same
    ///   generation → the same id, with this name added as a hard link (for a
    ///   directory, moved there instead); other generation → the old object
    ///   is retired;
    /// * otherwise a fresh id.
    ///
    /// The common case (known name, same key) takes no lock and writes
    /// nothing. Call `make_durable(last_seq())` before handing out a handle.
    pub fn lookup_or_insert(
        &self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
        key: ObjKey,
        kind: u8,
    ) -> Result<ObjectId> {
        check_name(name)?;
        let hint = NameHints::key(export, parent, name);
        let fingerprint = NameHints::fingerprint(export, parent, name, &key);
        let found = self.names.get(hint);
        if let Some(h) = found {
            if h.still_valid(self.cache.generation(), fingerprint) {
                return Ok(h.id);
            }
        }
        // Taken before the record is read, so that a change made while it
        // is read leaves the hint to be checked again (cache.rs).
        let generation = self.cache.generation();
        let known = |id: ObjectId| -> Result<bool> {
            Ok(self.node(id)?.is_some_and(|rec| {
                rec.key == key && rec.export == export && rec.has_link(parent, name)
            }))
        };
        let checked = |id| Hint::checked(id, generation, fingerprint);
        if let Some(h) = found {
            if known(h.id)? {
                self.names.put(hint, checked(h.id));
                return Ok(h.id);
            }
        }
        if let Some(v) = self.trees.names.get(&name_key(export, parent, name))? {
            let id = decode_id(&v)?;
            if known(id)? {
                self.names.put(hint, checked(id));
                return Ok(id);
            }
        }
        let id = self.mutate(Some(export), |ws| {
            ws.lookup_or_insert(export, parent, name, key, kind)
        })?;
        // The insert changed records itself: checked on its next use.
        self.names.put(hint, Hint::unchecked(id));
        Ok(id)
    }

    /// Records a successful backend rename. Rewrites the moved object's one
    /// record (its descendants follow implicitly) and the name index; an
    /// object previously at the target is unlinked first and collected if
    /// that was its last link. Renaming a name the map never saw only
    /// unlinks the target.
    pub fn rename(
        &self,
        export: u32,
        src_parent: ObjectId,
        src_name: &[u8],
        dst_parent: ObjectId,
        dst_name: &[u8],
    ) -> Result<()> {
        check_name(src_name)?;
        check_name(dst_name)?;
        self.mutate(Some(export), |ws| {
            ws.rename(export, src_parent, src_name, dst_parent, dst_name)
        })
    }

    /// Records a successful backend remove of `name` in `parent`; returns
    /// the id that was linked there. If that was the object's last link, its
    /// record is deleted and its handles answer STALE from now on. Also the
    /// way to forget a link found dead in the backend (ENOENT): the object
    /// survives if it has other links, which then become its primary path.
    pub fn remove(&self, export: u32, parent: ObjectId, name: &[u8]) -> Result<Option<ObjectId>> {
        check_name(name)?;
        self.mutate(Some(export), |ws| ws.remove(export, parent, name))
    }

    /// Forgets `id`'s primary link after the backend showed it dead (ENOENT
    /// at `path_of(id)`, or another identity there). Returns whether the
    /// object survives through another (hard) link, which then becomes its
    /// primary path; if not, the object is retired (its handles are STALE).
    /// Unlike `remove(parent, name)`, this never touches another object that
    /// now owns that name.
    ///
    /// On a volatile export the retired objects get tombstones (their
    /// handles answer FHEXPIRED: maybe it was a rename we did not see), and
    /// with rename expiry a survivor has its handles expired.
    pub fn forget_primary_link(&self, id: ObjectId) -> Result<bool> {
        let export = self.node(id)?.map(|n| n.export);
        self.mutate(export, |ws| ws.forget_primary_link(id))
    }

    /// Expires `id`: gives it the next expiry generation, so every
    /// rename/migration-stamped handle of `id` and of everything below it
    /// issued so far answers FHEXPIRED. One record write, whatever the
    /// size of the subtree. No effect on persistent exports' handles.
    pub fn expire(&self, id: ObjectId) -> Result<()> {
        self.mutate(None, |ws| ws.expire(id))
    }

    /// Re-keys `export` after its backing directory was replaced by a copy
    /// (migration). Walks the records from the export root breadth-first;
    /// for each one `probe(path, record)` returns the identity of what the
    /// new tree has at that path if it is the same object "moved intact"
    /// (the caller's rule), or `None`. Found records take the new identity
    /// and keep their ids, so their handles stay valid; records not found
    /// (and their subtrees, which are not visited) keep the old identity and
    /// are retired lazily when next resolved (STALE, or FHEXPIRED on a
    /// volatile export). With `expire`, every volatile handle of the export
    /// below the root is expired (one generation bump on the root).
    ///
    /// Mutations happen one directory at a time; the caller must keep the
    /// export's backend from being used meanwhile.
    pub fn migrate_export(
        &self,
        export: u32,
        root_key: ObjKey,
        expire: bool,
        probe: &mut MigrateProbe<'_>,
    ) -> Result<MigrateStats> {
        let root = ObjectId::export_root(export);
        self.mutate(Some(export), |ws| ws.rekey_root(export, root_key, expire))?;
        let mut stats = MigrateStats::default();
        let mut queue = std::collections::VecDeque::from([(root, Vec::<Vec<u8>>::new())]);
        while let Some((dir, path)) = queue.pop_front() {
            let mut found = Vec::new();
            for (name, id, rec) in self.children_of(export, dir)? {
                let mut child_path = path.clone();
                child_path.push(name.clone());
                match probe(&child_path, &rec) {
                    Some(key) => {
                        found.push((id, name, key));
                        if rec.kind == NF4DIR {
                            queue.push_back((id, child_path));
                        }
                    }
                    None => stats.missing += 1,
                }
            }
            let rekeyed = self.mutate(Some(export), |ws| {
                let mut n = 0;
                for (id, name, key) in &found {
                    n += u64::from(ws.rekey(*id, dir, name, *key)?);
                }
                Ok(n)
            })?;
            stats.rekeyed += rekeyed;
        }
        Ok(stats)
    }

    // ---- durability ----

    /// Sequence number of the latest write, covering every write that any
    /// call returning before this one made or observed.
    pub fn last_seq(&self) -> u64 {
        self.inflight.issued()
    }

    /// Returns once every write with sequence number ≤ `upto` is on disk,
    /// sharing flushes with concurrent callers (group commit). Values above
    /// [`Self::last_seq`] are clamped.
    pub fn make_durable(&self, upto: u64) -> Result<()> {
        let upto = upto.min(self.inflight.issued());
        // A write still being committed: once it is written, the flush we
        // ride will cover it.
        self.inflight.wait_completed(upto);
        self.group.wait_durable(
            upto,
            || self.inflight.completed(),
            || self.kv.flush().map_err(FhError::from),
        )
    }

    /// Appends an entry to the journal as the next write: a later
    /// `make_durable` of the returned sequence number (or beyond) makes it
    /// durable together with every map write before it.
    pub fn journal_append(&self, entry: &[u8]) -> Result<u64> {
        let _writer = lock(&self.writer);
        let seq = self.inflight.issue(&[]);
        let result = self
            .trees
            .journal
            .insert(&journal_key(self.boot_epoch, seq), entry);
        // Whether or not the insert worked, later writes may go on.
        self.inflight.finish(seq);
        result?;
        Ok(seq)
    }

    /// Every journal entry, oldest first: (key, entry).
    pub fn journal_entries(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.trees.journal.scan_prefix(b"") {
            out.push(item?);
        }
        Ok(out)
    }

    /// Removes the journal entries of earlier boots and those of this boot
    /// up to sequence number `upto`; returns how many went. The removals
    /// reach the disk with the next flush (until then a crash only replays
    /// entries whose effect is already durable).
    pub fn journal_trim(&self, upto: u64) -> Result<usize> {
        let last = journal_key(self.boot_epoch, upto);
        let mut gone = 0;
        for item in self.trees.journal.scan_prefix(b"") {
            let (k, _) = item?;
            if k.as_slice() > last.as_slice() {
                break;
            }
            self.trees.journal.remove(&k)?;
            gone += 1;
        }
        Ok(gone)
    }

    /// The object recorded under `name` in directory `parent` of `export`
    /// (the name index, checked against the record as everywhere).
    pub fn lookup_name(
        &self,
        export: u32,
        parent: ObjectId,
        name: &[u8],
    ) -> Result<Option<(ObjectId, ObjRecord)>> {
        check_name(name)?;
        let Some(v) = self.trees.names.get(&name_key(export, parent, name))? else {
            return Ok(None);
        };
        let id = decode_id(&v)?;
        Ok(self
            .get(id)?
            .filter(|r| r.export == export && r.has_link(parent, name))
            .map(|r| (id, r)))
    }

    /// Gives object `id`, whose primary link is `(parent, name)`, a new
    /// backend identity: the file system lost it and it was made again
    /// (journal replay). Returns false if the record is gone or linked
    /// elsewhere.
    pub fn rekey(&self, id: ObjectId, parent: ObjectId, name: &[u8], key: ObjKey) -> Result<bool> {
        check_name(name)?;
        let export = self.node(id)?.map(|n| n.export);
        self.mutate(export, |ws| ws.rekey(id, parent, name, key))
    }

    /// Number of flushes `make_durable` performed (for metrics and tests).
    pub fn flush_count(&self) -> u64 {
        self.group.flushes()
    }

    /// Flushes everything; the map stays usable. Also done on drop.
    pub fn shutdown(&self) -> Result<()> {
        self.make_durable(self.last_seq())
    }
}

impl Drop for FhMap {
    fn drop(&mut self) {
        if let Err(e) = self.kv.flush() {
            tracing::error!(error = %e, "fhmap: final flush failed");
        }
    }
}
