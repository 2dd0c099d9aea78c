//! ACCESS (RFC 8881 §18.1, RFC 7530 §16.1): which of the requested
//! rights the caller has, from the POSIX mode bits (the server has no
//! ACLs).
//!
//! `supported` holds the requested bits that are meaningful for the
//! object's type: LOOKUP and DELETE only for directories, EXECUTE only
//! for non-directories (RFC 8881 §18.1.3: LOOKUP has "no meaning for
//! non-directory objects", EXECUTE "no meaning for a directory"; DELETE
//! is the removal of a directory entry, as knfsd and pynfs ACC2 treat
//! it). The RFC 8276 xattr bits (XAREAD/XAWRITE/XALIST) are supported in
//! 4.2 on export objects ([`decide_xattr`]); bits no version defines are
//! ignored rather than refused, which RFC 8881 allows (`supported` is
//! only ever a subset of the request).
//!
//! Mapping to mode bits, as knfsd does: READ → r; LOOKUP → x; MODIFY,
//! EXTEND → w (on a directory w and x, since changing entries needs
//! both); DELETE → w and x on the directory; EXECUTE → x. Write rights
//! are never granted on a read-only export or a pseudo directory.

use nfs4d_xdr::nfs4::{
    ACCESS4args, ACCESS4resok, ACCESS4_DELETE, ACCESS4_EXECUTE, ACCESS4_EXTEND, ACCESS4_LOOKUP,
    ACCESS4_MODIFY, ACCESS4_READ, ACCESS4_XALIST, ACCESS4_XAREAD, ACCESS4_XAWRITE,
};

use super::common::{self, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::context::Cx;
use crate::error::NfsResult;
use crate::namespace::vfs::Node;
use nfs4d_store::FileKind;

/// ACCESS.
pub fn run(cx: &mut Cx, a: ACCESS4args) -> NfsResult<ACCESS4resok> {
    let cur = cx.cfh()?.clone();
    // (is a directory, rwx bits the caller has, modifications allowed)
    let (is_dir, rwx, writable) = match &cur.node {
        // Pseudo directories are mode 0555 and read-only for everybody.
        Node::Pseudo(_) => (true, MAY_READ | MAY_EXEC, false),
        Node::Obj { export, path, id } => {
            let e = cx.srv.vfs.export(*export)?;
            let attrs = common::stat_obj(cx, e, *id, path)?;
            let rwx = common::allowed(cx, &attrs, MAY_READ | MAY_WRITE | MAY_EXEC);
            (attrs.kind == FileKind::Directory, rwx, !cx.read_only(e))
        }
    };
    let (mut supported, mut granted) = decide(a.access, is_dir, rwx, writable);
    // RFC 8276 §8.5 xattr rights (4.2; export objects only — the pseudo
    // filesystem has no xattrs).
    if cx.minor >= 2 && matches!(cur.node, Node::Obj { .. }) {
        let (s, g) = decide_xattr(a.access, rwx, writable);
        supported |= s;
        granted |= g;
    }
    Ok(ACCESS4resok {
        supported,
        access: granted,
    })
}

/// `(supported, access)` for a request on an object of the given type
/// whose caller has `rwx` (MAY_* bits).
fn decide(request: u32, is_dir: bool, rwx: u32, writable: bool) -> (u32, u32) {
    let r = rwx & MAY_READ != 0;
    let w = rwx & MAY_WRITE != 0 && writable;
    let x = rwx & MAY_EXEC != 0;
    let common = ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXTEND;
    let meaningful = if is_dir {
        common | ACCESS4_LOOKUP | ACCESS4_DELETE
    } else {
        common | ACCESS4_EXECUTE
    };
    let mut granted = 0;
    if r {
        granted |= ACCESS4_READ;
    }
    if is_dir {
        if x {
            granted |= ACCESS4_LOOKUP;
        }
        if w && x {
            granted |= ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE;
        }
    } else {
        if w {
            granted |= ACCESS4_MODIFY | ACCESS4_EXTEND;
        }
        if x {
            granted |= ACCESS4_EXECUTE;
        }
    }
    let supported = request & meaningful;
    (supported, granted & supported)
}

// ---------------------------------------------------------------------------
// RFC 8276 xattr access bits (NFSv4.2).
// ---------------------------------------------------------------------------

/// `(supported, access)` of the RFC 8276 §8.5 bits in `request`, mapped to
/// the rights the xattr operations check (as Linux does for `user.`
/// attributes): XAREAD (GETXATTR) and XALIST (LISTXATTRS) need read
/// permission, XAWRITE (SETXATTR, REMOVEXATTR) write permission on a
/// writable export.
fn decide_xattr(request: u32, rwx: u32, writable: bool) -> (u32, u32) {
    let supported = request & (ACCESS4_XAREAD | ACCESS4_XAWRITE | ACCESS4_XALIST);
    let mut granted = 0;
    if rwx & MAY_READ != 0 {
        granted |= ACCESS4_XAREAD | ACCESS4_XALIST;
    }
    if rwx & MAY_WRITE != 0 && writable {
        granted |= ACCESS4_XAWRITE;
    }
    (supported, granted & supported)
}

#[cfg(test)]
mod xattr_tests {
    use super::*;

    const XA: u32 = ACCESS4_XAREAD | ACCESS4_XAWRITE | ACCESS4_XALIST;

    #[test]
    fn xattr_bits() {
        assert_eq!(decide_xattr(XA, 6, true), (XA, XA));
        assert_eq!(
            decide_xattr(XA, 4, true),
            (XA, ACCESS4_XAREAD | ACCESS4_XALIST)
        );
        assert_eq!(decide_xattr(XA, 2, true), (XA, ACCESS4_XAWRITE));
        // Read-only export: no XAWRITE even with w.
        assert_eq!(
            decide_xattr(XA, 6, false),
            (XA, ACCESS4_XAREAD | ACCESS4_XALIST)
        );
        // Only requested bits, and none of the older ones.
        assert_eq!(
            decide_xattr(ACCESS4_XALIST | ACCESS4_READ, 7, true),
            (ACCESS4_XALIST, ACCESS4_XALIST)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = 0x3f;

    #[test]
    fn results_are_subsets_of_the_request() {
        for req in 0..=0x1ff {
            for rwx in 0..8 {
                for (dir, wr) in [(true, true), (true, false), (false, true), (false, false)] {
                    let (s, a) = decide(req, dir, rwx, wr);
                    assert_eq!(s & !req, 0);
                    assert_eq!(a & !s, 0);
                }
            }
        }
    }

    #[test]
    fn type_specific_bits() {
        let (s, _) = decide(ALL, false, 7, true);
        assert_eq!(s & (ACCESS4_LOOKUP | ACCESS4_DELETE), 0);
        let (s, _) = decide(ALL, true, 7, true);
        assert_eq!(s & ACCESS4_EXECUTE, 0);
        // The RFC 8276 xattr bits are decided separately (decide_xattr).
        let (s, _) = decide(0x1ff, true, 7, true);
        assert_eq!(s & !ALL, 0);
    }

    #[test]
    fn mode_mapping() {
        // r-x directory: read and lookup only.
        assert_eq!(decide(ALL, true, 5, true).1, ACCESS4_READ | ACCESS4_LOOKUP);
        // -w- directory: without search nothing can be changed.
        assert_eq!(decide(ALL, true, 2, true).1, 0);
        // rw- file.
        assert_eq!(
            decide(ALL, false, 6, true).1,
            ACCESS4_READ | ACCESS4_MODIFY | ACCESS4_EXTEND
        );
        // Read-only export: no write rights even with w.
        assert_eq!(
            decide(ALL, false, 7, false).1,
            ACCESS4_READ | ACCESS4_EXECUTE
        );
    }
}
