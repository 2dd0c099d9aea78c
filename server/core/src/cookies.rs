//! READDIR cookies for stores whose listing positions are keys
//! ([`nfs4d_store::Positions::Keys`], e.g. an object store's `StartAfter`).
//!
//! A cookie is a 64-bit number (RFC 8881 §18.23); a key may be a kilobyte.
//! Keys handed out as cookies are kept in a bounded table, per export and
//! directory, oldest first out. A cookie that fell out of the table (or
//! one from before a restart) is NFS4ERR_BAD_COOKIE, and the client starts
//! the listing again; the table is large enough that a listing in progress
//! keeps its cookies valid. Stores with offsets use them as cookies and
//! need no table.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use nfs4d_fhmap::ObjectId;

/// Keys remembered at most. One listing of `n` entries uses `n` cookies, so
/// this is the largest directory a client can list while another listing
/// of the same size runs, without restarting.
pub const MAX_KEY_COOKIES: usize = 1 << 18;

/// Bytes of keys remembered at most (names are at most 255 bytes, object
/// keys at most 1 KiB).
pub const MAX_KEY_COOKIE_BYTES: usize = 64 << 20;

/// Cookies 0, 1 and 2 are reserved (RFC 8881 §18.23.3).
const FIRST_COOKIE: u64 = 3;

type Place = (u32, ObjectId, Arc<[u8]>);

/// The table.
#[derive(Debug, Default)]
pub struct KeyCookies {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_cookie: HashMap<u64, Place>,
    order: VecDeque<u64>,
    bytes: usize,
    next: u64,
}

impl KeyCookies {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The table is consistent between statements.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A cookie for resuming the listing of directory `dir` of `export`
    /// after `key`.
    pub fn cookie(&self, export: u32, dir: ObjectId, key: Arc<[u8]>) -> u64 {
        let mut g = self.inner();
        g.next = g.next.max(FIRST_COOKIE);
        let c = g.next;
        g.next += 1;
        g.bytes += key.len();
        g.by_cookie.insert(c, (export, dir, key));
        g.order.push_back(c);
        while g.order.len() > MAX_KEY_COOKIES || g.bytes > MAX_KEY_COOKIE_BYTES {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some((_, _, k)) = g.by_cookie.remove(&old) {
                g.bytes -= k.len();
            }
        }
        c
    }

    /// The key `cookie` stands for in directory `dir` of `export`.
    pub fn key(&self, export: u32, dir: ObjectId, cookie: u64) -> Option<Arc<[u8]>> {
        let g = self.inner();
        match g.by_cookie.get(&cookie) {
            Some((e, d, k)) if *e == export && *d == dir => Some(k.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_name_their_directory_and_are_bounded() {
        let t = KeyCookies::default();
        let k: Arc<[u8]> = Arc::from(&b"a/b"[..]);
        let c = t.cookie(1, ObjectId(9), k.clone());
        assert!(c >= FIRST_COOKIE);
        assert_eq!(t.key(1, ObjectId(9), c), Some(k));
        assert_eq!(t.key(1, ObjectId(8), c), None, "another directory");
        assert_eq!(t.key(2, ObjectId(9), c), None, "another export");
        for _ in 0..MAX_KEY_COOKIES {
            t.cookie(1, ObjectId(9), Arc::from(&b"x"[..]));
        }
        assert_eq!(t.key(1, ObjectId(9), c), None, "the oldest went first");
        assert!(t.inner().order.len() <= MAX_KEY_COOKIES);
    }
}
