//! The stateid table, indexed by file and by client.
//!
//! OPEN checks share reservations against every open of the file (RFC 8881
//! §9.7), CLOSE looks for the lock stateids derived from the open (they
//! are on the same file), and lease renewal asks whether a client holds
//! any state. Answering those by scanning every stateid made each of them
//! cost in proportion to all the files open on the server: with 10,000
//! files held open, an OPEN+CLOSE pair walked the table five times. The
//! indexes make them cost in proportion to one file's states instead,
//! like knfsd's per-file list of stateids.
//!
//! A stateid's `client` and `file` never change after insertion, so the
//! indexes only follow [`StateTable::insert`] and [`StateTable::remove`].

use std::collections::hash_map::{Entry, Iter, Values};
use std::collections::{BTreeSet, HashMap};

use super::{ClientId, FileKey, Other, StateEntry};

/// Stateids by `other`, with the file and client indexes.
#[derive(Debug, Default)]
pub struct StateTable {
    map: HashMap<Other, StateEntry>,
    /// (file, stateid) for every stateid: a file's are one range. An
    /// ordered set costs no allocation per file, where a map of lists
    /// would allocate one for each of the files held open.
    by_file: BTreeSet<(FileKey, Other)>,
    /// How many stateids each client holds.
    by_client: HashMap<ClientId, usize>,
}

impl StateTable {
    pub fn get(&self, other: &Other) -> Option<&StateEntry> {
        self.map.get(other)
    }

    /// The entry to change. Its `client` and `file` must stay as they are:
    /// the indexes are keyed on them.
    pub fn get_mut(&mut self, other: &Other) -> Option<&mut StateEntry> {
        self.map.get_mut(other)
    }

    /// Adds a stateid; one already under `other` is replaced and returned.
    pub fn insert(&mut self, other: Other, e: StateEntry) -> Option<StateEntry> {
        let (client, file) = (e.client, e.file);
        let old = self.map.insert(other, e);
        if let Some(old) = &old {
            self.unindex(&other, old.client, old.file);
        }
        self.by_file.insert((file, other));
        *self.by_client.entry(client).or_default() += 1;
        old
    }

    pub fn remove(&mut self, other: &Other) -> Option<StateEntry> {
        let e = self.map.remove(other)?;
        self.unindex(other, e.client, e.file);
        Some(e)
    }

    fn unindex(&mut self, other: &Other, client: ClientId, file: FileKey) {
        self.by_file.remove(&(file, *other));
        if let Entry::Occupied(mut o) = self.by_client.entry(client) {
            *o.get_mut() -= 1;
            if *o.get() == 0 {
                o.remove();
            }
        }
    }

    /// The stateids of `file`, with their entries.
    pub fn of_file(&self, file: FileKey) -> impl Iterator<Item = (&Other, &StateEntry)> {
        self.by_file
            .range((file, [0; 12])..=(file, [u8::MAX; 12]))
            .filter_map(|(_, o)| self.map.get_key_value(o))
    }

    /// Whether `client` holds any stateid.
    pub fn client_holds(&self, client: ClientId) -> bool {
        self.by_client.contains_key(&client)
    }

    pub fn values(&self) -> Values<'_, Other, StateEntry> {
        self.map.values()
    }

    pub fn iter(&self) -> Iter<'_, Other, StateEntry> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<'a> IntoIterator for &'a StateTable {
    type Item = (&'a Other, &'a StateEntry);
    type IntoIter = Iter<'a, Other, StateEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{OpenState, Share, StateKind};
    use nfs4d_fhmap::ObjectId;

    fn open(client: ClientId, file: u64) -> StateEntry {
        StateEntry {
            client,
            file: (1, ObjectId(file)),
            seqid: 1,
            kind: StateKind::Open(OpenState {
                owner: (client, b"o".to_vec()),
                share: Share { access: 1, deny: 0 },
                accesses: 2,
                denies: 1,
            }),
            unconfirmed: false,
        }
    }

    fn other(n: u8) -> Other {
        [n; 12]
    }

    #[test]
    fn indexes_follow_inserts_replacements_and_removals() {
        let mut t = StateTable::default();
        t.insert(other(1), open(7, 10));
        t.insert(other(2), open(7, 10));
        t.insert(other(3), open(8, 11));
        let of10: Vec<_> = t.of_file((1, ObjectId(10))).map(|(o, _)| *o).collect();
        assert_eq!(of10.len(), 2);
        assert!(of10.contains(&other(1)) && of10.contains(&other(2)));
        assert!(t.client_holds(7) && t.client_holds(8) && !t.client_holds(9));

        // Replacing an entry moves it in both indexes.
        let old = t.insert(other(2), open(8, 11));
        assert_eq!(old.map(|e| e.client), Some(7));
        assert_eq!(t.of_file((1, ObjectId(10))).count(), 1);
        assert_eq!(t.of_file((1, ObjectId(11))).count(), 2);

        assert!(t.remove(&other(1)).is_some());
        assert!(t.remove(&other(1)).is_none());
        assert!(!t.client_holds(7));
        assert_eq!(t.of_file((1, ObjectId(10))).count(), 0);
        t.remove(&other(2));
        t.remove(&other(3));
        assert!(t.is_empty() && t.by_file.is_empty() && t.by_client.is_empty());
    }
}
