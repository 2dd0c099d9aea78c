//! The names an export reserves for the server: the hidden directory
//! where files removed while open are parked (`orphans.rs`), invisible to
//! clients, and the names of the parked files.

use nfs4d_fhmap::ObjectId;
use nfs4d_store::{Name, RelPath};

/// The hidden directory at each export root.
pub const ORPHAN_DIR: &[u8] = b".nfs4d-orphans";

pub(super) fn dir_name() -> Name {
    Name::new(ORPHAN_DIR).expect("constant is a valid name")
}

/// True for the orphan directory's own entry at an export root: it is
/// invisible to clients (LOOKUP answers NOENT, READDIR skips it).
pub fn is_hidden(dir: &RelPath, name: &[u8]) -> bool {
    dir.is_root() && name == ORPHAN_DIR
}

/// The name a file parked here has: its object id.
pub(super) fn parked_name(id: ObjectId) -> Name {
    Name::new(format!("{:016x}", id.0).as_bytes()).expect("hex is a valid name")
}

/// Where object `id` is parked if it is: a path naming that object or
/// nothing (no other object is ever given this name).
pub fn parked_path(id: ObjectId) -> RelPath {
    RelPath::root().join(&dir_name()).join(&parked_name(id))
}
