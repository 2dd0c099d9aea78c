//! The duplicate request cache for NFSv4.0 (RFC 7530 §3.1.1, §9.1.7).
//!
//! A 4.0 client retransmits a request with the same xid when it saw no
//! reply, often on a new connection. Operations guarded by an owner seqid
//! are replayed from the owner's cache, but others — CREATE, REMOVE,
//! RENAME, SETATTR … — are not idempotent: executing a retransmitted
//! CREATE again answers NFS4ERR_EXIST for a directory the client's first
//! attempt made. The cache keeps the replies of recent modifying 4.0
//! COMPOUNDs, keyed by client address and port, xid and a hash of the arguments,
//! and sends them again for a retransmission. 4.1 has exactly-once
//! semantics through session slots instead.
//!
//! Under RPCSEC_GSS the key also covers the caller's principal (a reply is
//! never sent again to someone else), and the cache holds the reply as
//! the core built it, before the transport protects it: a retransmission
//! carries a new GSS sequence number (RFC 2203 §5.3.3.1), so the stored
//! reply is given a fresh verifier and protection each time it is sent.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Entries kept; older ones are forgotten first.
pub const DRC_ENTRIES: usize = 4096;
/// Largest reply kept (READ-sized replies are idempotent anyway).
pub const DRC_MAX_REPLY: usize = 64 << 10;

type Key = (SocketAddr, u32, u64);

/// Replies by key, and keys oldest first for eviction.
type Table = (HashMap<Key, Arc<Vec<u8>>>, VecDeque<Key>);

/// The cache.
#[derive(Default)]
pub struct Drc {
    inner: Mutex<Table>,
}

impl std::fmt::Debug for Drc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drc")
    }
}

/// The cache key of a request: the client's address *and port* (as
/// knfsd's cache), so two clients behind one address with colliding xids
/// are not confused; Linux reconnects from the same port, so a
/// retransmission on a new connection still finds its entry. `principal`
/// is the Kerberos principal of an RPCSEC_GSS call.
pub fn key(addr: SocketAddr, xid: u32, principal: Option<&str>, args: &[u8]) -> Key {
    let mut h = DefaultHasher::new();
    args.hash(&mut h);
    if let Some(p) = principal {
        p.hash(&mut h);
    }
    (addr, xid, h.finish())
}

impl Drc {
    /// The reply sent for an identical earlier request, if any.
    pub fn get(&self, k: &Key) -> Option<Arc<Vec<u8>>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(k)
            .cloned()
    }

    /// Remembers a reply.
    pub fn put(&self, k: Key, reply: &[u8]) {
        if reply.len() > DRC_MAX_REPLY {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *g;
        if map.insert(k, Arc::new(reply.to_vec())).is_none() {
            order.push_back(k);
            if order.len() > DRC_ENTRIES {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_evicts() {
        let d = Drc::default();
        let a = SocketAddr::from(([127, 0, 0, 1], 700));
        let k = key(a, 1, None, b"args");
        assert!(d.get(&k).is_none());
        d.put(k, b"reply");
        assert_eq!(d.get(&k).unwrap().as_slice(), b"reply");
        assert!(
            d.get(&key(a, 1, None, b"other args")).is_none(),
            "same xid, other call"
        );
        let alice = key(a, 1, Some("alice@R"), b"args");
        d.put(alice, b"alice's reply");
        assert_eq!(d.get(&alice).unwrap().as_slice(), b"alice's reply");
        assert!(
            d.get(&key(a, 1, Some("bob@R"), b"args")).is_none(),
            "same xid and call, another principal"
        );
        assert_eq!(d.get(&k).unwrap().as_slice(), b"reply");
        for x in 2..(DRC_ENTRIES as u32 + 2) {
            d.put(key(a, x, None, b"args"), b"r");
        }
        assert!(d.get(&k).is_none(), "oldest entry evicted");
    }
}
