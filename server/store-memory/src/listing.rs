//! Directory listings in batches. Positions are either the sequence number
//! an entry got when it was linked (offsets: stable while entries come and
//! go, new entries at the end) or the entry's name behind a tag byte (keys,
//! as an object store's "start after": listed in name order).

use std::ops::Bound;
use std::sync::Arc;

use nfs4d_store::{Attrs, FileKind, ListPos, Name, Positions, RelPath, StoreError, StoreResult};

use crate::tree::{Tree, FIRST_SEQ};

/// Entries taken per hold of the store's lock: the visitor runs without
/// it, so it may call the store.
pub const LIST_BATCH: usize = 128;

/// First byte of every key position, so positions of another kind or
/// origin are recognised.
const KEY_TAG: u8 = 1;

/// One entry of a batch.
#[derive(Debug)]
pub struct Listed {
    pub name: Vec<u8>,
    pub next: ListPos,
    pub object: u64,
    pub kind: FileKind,
    pub attrs: Option<StoreResult<Attrs>>,
}

/// Where a batch starts.
enum After {
    Seq(u64),
    Name(Bound<Vec<u8>>),
}

impl Tree {
    /// Up to `max` entries of the directory `dir` (number and incarnation,
    /// reached at `path`) after `from`, and whether they reach the end. A
    /// directory removed since the listing began has no more entries, as
    /// for a process reading a directory it holds open.
    pub fn list_batch(
        &self,
        dir: (u64, u64),
        path: &RelPath,
        from: &ListPos,
        stat: bool,
        max: usize,
    ) -> StoreResult<(Vec<Listed>, bool)> {
        if !self.is(dir.0, dir) {
            return Ok((Vec::new(), true));
        }
        let d = self.dir(dir.0)?;
        let after = match (self.caps.positions, from) {
            (Positions::Offsets, ListPos::Start) => After::Seq(FIRST_SEQ - 1),
            (Positions::Offsets, ListPos::Offset(o)) if (FIRST_SEQ..d.next_seq).contains(o) => {
                After::Seq(*o)
            }
            (Positions::Keys, ListPos::Start) => After::Name(Bound::Unbounded),
            (Positions::Keys, ListPos::Key(k)) if k.first() == Some(&KEY_TAG) => {
                After::Name(Bound::Excluded(k[1..].to_vec()))
            }
            _ => {
                tracing::debug!(position = ?from, "memory store: unknown listing position");
                return Err(StoreError::BadPosition);
            }
        };
        let names: Vec<(&Vec<u8>, u64, ListPos)> = match after {
            After::Seq(seq) => d
                .order
                .range(seq + 1..)
                .take(max + 1)
                .filter_map(|(s, name)| Some((name, d.get(name)?, ListPos::Offset(*s))))
                .collect(),
            After::Name(bound) => d
                .entries
                .range((bound, Bound::Unbounded))
                .take(max + 1)
                .map(|(name, slot)| (name, slot.child, key_of(name)))
                .collect(),
        };
        let end = names.len() <= max;
        let mut out = Vec::with_capacity(names.len().min(max));
        for (name, child, next) in names.into_iter().take(max) {
            let o = self.obj(child)?;
            let attrs = if stat {
                let name = Name::new(name).map_err(|_| StoreError::Io("stored name".into()))?;
                Some(self.attrs(child, &path.join(&name)))
            } else {
                None
            };
            out.push(Listed {
                name: name.clone(),
                next,
                // Stores without stable identity learn it only by a stat.
                object: if self.caps.stable_identity { child } else { 0 },
                kind: o.kind,
                attrs,
            });
        }
        Ok((out, end))
    }
}

fn key_of(name: &[u8]) -> ListPos {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(KEY_TAG);
    k.extend_from_slice(name);
    ListPos::Key(Arc::from(k))
}
