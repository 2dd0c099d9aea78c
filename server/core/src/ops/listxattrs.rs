//! LISTXATTRS (RFC 8276 §8.4.3): the keys of an object's extended
//! attributes, a page at a time.
//!
//! Cookies: each key's cookie is a 64-bit hash of the key (never 0, which
//! starts the listing), and keys are returned in cookie order, so a
//! cookie stays meaningful when other keys are added or removed between
//! calls — a listing resumes after the last key returned, whatever the
//! filesystem's own order (as ext4's hashed directory cookies do). Keys
//! with equal hashes are never split across pages, so a collision can
//! neither skip nor repeat a key.

use nfs4d_xdr::nfs4::{LISTXATTRS4args, LISTXATTRS4resok};

use super::common::{self, MAY_READ};
use super::getxattr::{xattr_obj, OVERHEAD};
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};

/// Encoded size of `lxr_cookie`, the array length and `lxr_eof`.
const RES_FIXED: u64 = 8 + 4 + 4;

/// LISTXATTRS: the pseudo filesystem has no xattrs (NFS4ERR_NOTSUPP); read
/// permission (NFS4ERR_ACCESS). `lxa_maxcount` bounds the whole encoded
/// LISTXATTRS4resok (§8.4.3.3); if not even one remaining key fits it,
/// NFS4ERR_TOOSMALL. A `maxcount` larger than the session's reply can
/// hold is reduced to it (the server "may return less data"), and when
/// that is what leaves no room for a key the answer is
/// NFS4ERR_REP_TOO_BIG. `lxr_eof` is TRUE when no keys follow;
/// `lxr_cookie` resumes after the last key returned.
pub fn run(cx: &mut Cx, a: LISTXATTRS4args) -> NfsResult<LISTXATTRS4resok> {
    let cur = cx.cfh()?.clone();
    let (e, path, attrs) = xattr_obj(cx, &cur)?;
    common::require(cx, &attrs, MAY_READ)?;
    let names = e.store().listxattr(path)?;
    let asked = u64::from(a.lxa_maxcount);
    let room = cx.session.as_ref().map_or(u64::MAX, |s| {
        u64::from(s.fore.max_response.saturating_sub(OVERHEAD))
    });
    match page(names, a.lxa_cookie, asked.min(room)) {
        Err(NfsError::TooSmall) if room < asked => Err(NfsError::RepTooBig),
        r => r,
    }
}

/// The cookie of a key: 64-bit FNV-1a, with 0 (the start) mapped to 1.
fn key_cookie(key: &[u8]) -> u64 {
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    h.max(1)
}

/// Encoded size of one key in the array.
fn key_bytes(key: &[u8]) -> u64 {
    4 + (key.len() as u64).next_multiple_of(4)
}

/// The page of `names` after `cookie` that fits `maxcount` encoded bytes.
fn page(names: Vec<Vec<u8>>, cookie: u64, maxcount: u64) -> NfsResult<LISTXATTRS4resok> {
    if maxcount < RES_FIXED {
        return Err(NfsError::TooSmall);
    }
    let mut rest: Vec<(u64, Vec<u8>)> = names
        .into_iter()
        .map(|n| (key_cookie(&n), n))
        .filter(|(c, _)| *c > cookie)
        .collect();
    rest.sort_unstable();
    let mut used = RES_FIXED;
    let mut taken = 0;
    let mut last = cookie;
    while taken < rest.len() {
        // The keys sharing this cookie go together or not at all.
        let c = rest[taken].0;
        let group = rest[taken..].iter().take_while(|(k, _)| *k == c).count();
        let cost: u64 = rest[taken..taken + group]
            .iter()
            .map(|(_, n)| key_bytes(n))
            .sum();
        if used + cost > maxcount {
            break;
        }
        used += cost;
        taken += group;
        last = c;
    }
    if taken == 0 && !rest.is_empty() {
        return Err(NfsError::TooSmall);
    }
    let eof = taken == rest.len();
    rest.truncate(taken);
    Ok(LISTXATTRS4resok {
        lxr_cookie: last,
        lxr_names: rest.into_iter().map(|(_, n)| n).collect(),
        lxr_eof: eof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("attr{i}").into_bytes()).collect()
    }

    #[test]
    fn empty_list() {
        let r = page(Vec::new(), 0, 16).expect("page");
        assert!(r.lxr_eof && r.lxr_names.is_empty());
        assert_eq!(page(Vec::new(), 0, 15), Err(NfsError::TooSmall));
    }

    #[test]
    fn pages_cover_every_key_once() {
        let all = names(50);
        // Each "attrNN" key costs 4 + 8 bytes; three per page.
        let maxcount = RES_FIXED + 3 * 12;
        let mut cookie = 0;
        let mut seen = Vec::new();
        loop {
            let r = page(all.clone(), cookie, maxcount).expect("page");
            assert!(r.lxr_names.len() <= 3);
            seen.extend(r.lxr_names);
            cookie = r.lxr_cookie;
            if r.lxr_eof {
                break;
            }
        }
        seen.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn resumes_after_changes() {
        let all = names(10);
        let first = page(all.clone(), 0, RES_FIXED + 4 * 12).expect("page");
        assert_eq!(first.lxr_names.len(), 4);
        // Remove a key already returned and add a new one: the rest is
        // still listed exactly once.
        let mut changed: Vec<Vec<u8>> = all
            .iter()
            .filter(|n| **n != first.lxr_names[0])
            .cloned()
            .collect();
        changed.push(b"zzz-new".to_vec());
        let rest = page(changed.clone(), first.lxr_cookie, 4096).expect("page");
        assert!(rest.lxr_eof);
        for n in &all {
            let in_first = first.lxr_names.contains(n);
            let in_rest = rest.lxr_names.contains(n);
            assert!(
                in_first != in_rest || (!in_first && !changed.contains(n)),
                "{n:?}"
            );
        }
    }

    #[test]
    fn too_small_for_one_key() {
        assert_eq!(page(names(3), 0, RES_FIXED + 11), Err(NfsError::TooSmall));
        let r = page(names(3), 0, RES_FIXED + 12).expect("page");
        assert_eq!(r.lxr_names.len(), 1);
        assert!(!r.lxr_eof);
    }

    #[test]
    fn cookies_are_never_zero() {
        assert_ne!(key_cookie(b""), 0);
        assert_ne!(key_cookie(b"a"), key_cookie(b"b"));
    }
}
