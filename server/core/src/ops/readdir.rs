//! READDIR (RFC 8881 §18.23, RFC 7530 §16.24): entries of the current
//! directory after `cookie`, each with the requested attributes.
//!
//! # Cookies and the verifier
//! Cookie 0 starts at the beginning; every other cookie is one this
//! server returned (for exports the backend's position after the entry,
//! never 0, 1 or 2; for pseudo directories 3 + the child's index). 1 and
//! 2 are reserved (§18.23.3): NFS4ERR_BAD_COOKIE, as pynfs RDDR10 expects.
//!
//! The cookie verifier is derived from the directory's identity (device,
//! inode, generation), so it is the same for the directory's whole life,
//! however its entries change and across server restarts (the backend's
//! cookies survive both). A verifier that changed with the contents would
//! fail every listing that overlaps a change (§18.23.4: the server
//! "SHOULD make every effort to avoid" NFS4ERR_NOT_SAME). With a
//! non-zero cookie, a non-zero verifier that is not the directory's is
//! NFS4ERR_NOT_SAME; an all-zero one is accepted, because the Linux
//! client zeroes its saved verifier when it invalidates a directory's
//! cache and then continues from a cached cookie.
//!
//! # Sizes
//! `maxcount` bounds the whole READDIR4resok encoding (§18.23.3): the
//! 8-byte verifier, per entry a 4-byte "value follows", the cookie, the
//! name and the fattr4, then the final 4-byte "no more entries" and the
//! 4-byte eof. If not even the first entry fits: NFS4ERR_TOOSMALL (and
//! an empty directory still needs 16 bytes, pynfs RDDR8). `dircount`
//! (cookie and name bytes; 0 = no limit, §18.23.4) is a hint that stops
//! the reply after at least one entry. In a 4.1 session the reply must
//! also fit the channel's maximum response size; when the first entry
//! fits `maxcount` but not that, the answer is NFS4ERR_REP_TOO_BIG.
//! Every reply also holds at most `limits.max_readdir_entries` entries
//! and [`MAX_IO`] bytes.
//!
//! # Attributes
//! Entries are stat'ed only when attributes are requested; a filehandle is
//! issued (and made durable) only when FATTR4_FILEHANDLE is. An entry
//! removed between listing and stat is skipped. Any other failure to get
//! an entry's attributes — including a caller without search permission
//! on the directory, which lstat would need — is reported in the entry's
//! `rdattr_error` when that was requested, and otherwise fails the whole
//! READDIR (§18.23.3: "the server has no choice").
//!
//! "." and ".." are never returned. Reading needs read permission on the
//! directory (NFS4ERR_ACCESS).

use nfs4d_xdr::nfs4::{fattr4, nfs_opnum4, nfsstat4, verifier4, READDIR4args};

use super::common::{self, MAY_EXEC, MAY_READ};
use crate::attrs::{self, bitmap_has, AttrContext};
use crate::config::MAX_IO;
use crate::context::Cx;
use crate::error::{NfsError, NfsResult};
use crate::namespace::vfs::{obj_attrs, CurFh, Export, Node};
use nfs4d_fhmap::ObjectId;
use nfs4d_store::{Attrs, FileKind, Name, RelPath, StoreError};

// Attribute numbers (RFC 8881 §5.6-5.7).
const FATTR4_RDATTR_ERROR: u32 = 11;
const FATTR4_FILEHANDLE: u32 = 19;
const FATTR4_TIME_ACCESS_SET: u32 = 48;
const FATTR4_TIME_MODIFY_SET: u32 = 54;

/// READDIR4resok without entries: verifier (8), the final "no more
/// entries" discriminant (4), eof (4).
const RESOK_OVERHEAD: u64 = 16;
/// Room left in a 4.1 reply for the RPC header, SEQUENCE and the
/// operations before READDIR (the handler does not see the reply so far).
const SESSION_SLACK: u64 = 1024;
/// Bytes reserved up front for a reply's entries, at most.
const LISTING_RESERVE: u64 = 256 * 1024;
/// Room beyond a reply's budget for the entry that ends it: a name of
/// NAME_MAX bytes, a handle, owner strings and the `ls -l` attributes.
const ENTRY_SLACK: u64 = 1024;
/// First cookie of pseudo-directory entries (0-2 are reserved).
const PSEUDO_COOKIE_BASE: u64 = 3;

/// READDIR's encoder: the entries were encoded as they were listed (see
/// [`Listing`]); an error replaces them with the status alone.
pub fn encoded(cx: &mut Cx, a: READDIR4args, out: &mut Vec<u8>) -> nfsstat4 {
    match run(cx, a) {
        Ok((verf, listing, eof)) => {
            super::put_u32(out, nfs_opnum4::OP_READDIR as i32 as u32);
            super::put_u32(out, nfsstat4::NFS4_OK as i32 as u32);
            out.reserve(listing.buf.len() + 16);
            out.extend_from_slice(&verf);
            out.extend_from_slice(&listing.buf);
            // No more entries, then eof (RFC 8881 §18.23.2).
            super::put_u32(out, 0);
            super::put_u32(out, u32::from(eof));
            nfsstat4::NFS4_OK
        }
        Err(e) => super::finish::<()>(out, nfs_opnum4::OP_READDIR, Err(e)),
    }
}

/// READDIR: the cookie verifier, the encoded entries, eof.
fn run(cx: &mut Cx, a: READDIR4args) -> NfsResult<(verifier4, Listing, bool)> {
    let cur = cx.cfh()?.clone();
    if bitmap_has(&a.attr_request, FATTR4_TIME_ACCESS_SET)
        || bitmap_has(&a.attr_request, FATTR4_TIME_MODIFY_SET)
    {
        // Write-only attributes cannot be read (RFC 8881 §5.5, pynfs RDDR9).
        return Err(NfsError::Inval);
    }
    if a.cookie == 1 || a.cookie == 2 {
        return Err(NfsError::BadCookie);
    }
    let mut budget = Budget::new(cx, &a)?;
    let (cookieverf, entries, eof) = match &cur.node {
        Node::Pseudo(n) => list_pseudo(cx, *n, &a, &mut budget)?,
        Node::Obj { export, id, path } => {
            let srv = cx.srv;
            let e = srv.vfs.export(*export)?;
            let dir = e.store().stat(path)?;
            if dir.kind != FileKind::Directory {
                // READDIR's error list has no NFS4ERR_SYMLINK (§15.2).
                return Err(NfsError::NotDir);
            }
            common::require(cx, &dir, MAY_READ)?;
            let verf = dir_verifier(&dir);
            check_verifier(&a, &verf)?;
            let (entries, eof) = list_export(cx, e, &cur, *id, path, &dir, &a, &mut budget)?;
            (verf, entries, eof)
        }
    };
    Ok((cookieverf, entries, eof))
}

/// The entries of a reply, encoded as they are admitted: the XDR of
/// `entry4` (RFC 8881 §18.23.2) with its "value follows" word in front,
/// the list's end and eof left to [`encoded`]. Encoding each entry at
/// once, rather than building the generated linked list of boxed entries
/// and packing it afterwards, saves per entry the list node, a copy of
/// the name and a second walk (READDIR runs once per ~300 entries of an
/// `ls -l`).
#[derive(Debug, Default)]
struct Listing {
    buf: Vec<u8>,
}

impl Listing {
    fn with_capacity(bytes: u64) -> Self {
        // The budget bounds what is admitted; the capacity only spares
        // regrowth for the usual page sizes (the Linux client asks for up
        // to its rsize), so it is capped rather than taken from maxcount.
        // The entry that ends a reply is written before it is found not to
        // fit, so room for one more entry spares a regrowth copy.
        let cap = usize::try_from(bytes.min(LISTING_RESERVE) + ENTRY_SLACK).unwrap_or(0);
        Listing {
            buf: Vec::with_capacity(cap),
        }
    }

    fn push(&mut self, cookie: u64, name: &[u8], attrs: &fattr4) {
        self.head(cookie, name);
        put_fattr(&mut self.buf, attrs);
    }

    /// An entry up to its attributes: "value follows", cookie, name.
    fn head(&mut self, cookie: u64, name: &[u8]) {
        let b = &mut self.buf;
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&cookie.to_be_bytes());
        put_opaque(b, name);
    }

    /// Writes `cookie` into the entry that starts at `mark` (after its
    /// "value follows" word), for an entry whose cookie is known only
    /// once the entry is admitted.
    fn set_cookie(&mut self, mark: usize, cookie: u64) {
        if let Some(at) = self.buf.get_mut(mark + 4..mark + 12) {
            at.copy_from_slice(&cookie.to_be_bytes());
        }
    }
}

/// XDR `fattr4`: the bitmap, then the values as one opaque.
fn put_fattr(b: &mut Vec<u8>, attrs: &fattr4) {
    b.extend_from_slice(&(attrs.attrmask.len() as u32).to_be_bytes());
    for w in &attrs.attrmask {
        b.extend_from_slice(&w.to_be_bytes());
    }
    put_opaque(b, &attrs.attr_vals);
}

/// XDR variable-length opaque: length, bytes, zero padding to 4.
fn put_opaque(b: &mut Vec<u8>, data: &[u8]) {
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b.resize(b.len() + (4 - data.len() % 4) % 4, 0);
}

/// A stable verifier for a directory (see the module documentation).
fn dir_verifier(dir: &Attrs) -> verifier4 {
    let id = dir.identity;
    let v = id.object ^ id.incarnation.rotate_left(32) ^ id.space.rotate_left(17);
    v.max(1).to_be_bytes()
}

/// The verifier of pseudo directories: they change only with the
/// configuration, and then the cookies (child indexes) may mean other
/// children, so it names the tree's shape.
fn pseudo_verifier(cx: &Cx) -> verifier4 {
    let shape = cx
        .srv
        .vfs
        .pseudo
        .iter()
        .fold(cx.srv.vfs.pseudo.len() as u64, |h, p| {
            p.name
                .bytes()
                .fold(h.rotate_left(5) ^ p.children.len() as u64, |h, b| {
                    h.rotate_left(5) ^ u64::from(b)
                })
        });
    shape.max(1).to_be_bytes()
}

fn check_verifier(a: &READDIR4args, ours: &verifier4) -> NfsResult<()> {
    if a.cookie != 0 && a.cookieverf != [0; 8] && &a.cookieverf != ours {
        return Err(NfsError::NotSame);
    }
    Ok(())
}

/// XDR length of opaque data of `n` bytes with its length word.
fn opaque_len(n: usize) -> u64 {
    4 + (n as u64).div_ceil(4) * 4
}

/// Encoded size of one entry in the list: value-follows, cookie, name,
/// fattr4 (bitmap and values).
fn entry_size(name_len: usize, attrs: &fattr4) -> u64 {
    4 + 8
        + opaque_len(name_len)
        + 4
        + 4 * attrs.attrmask.len() as u64
        + opaque_len(attrs.attr_vals.len())
}

/// What `dircount` counts of an entry: its cookie and name (§18.23.3).
fn dir_size(name_len: usize) -> u64 {
    8 + opaque_len(name_len)
}

/// The size limits of one reply.
#[derive(Debug)]
struct Budget {
    /// The client's `maxcount`.
    maxcount: u64,
    /// The server's own bound (session reply size, MAX_IO).
    cap: u64,
    /// `dircount`, `None` for no limit.
    dircount: Option<u64>,
    max_entries: usize,
    used: u64,
    dir_used: u64,
    count: usize,
}

impl Budget {
    fn new(cx: &Cx, a: &READDIR4args) -> NfsResult<Budget> {
        let session = cx
            .session
            .as_ref()
            .map(|s| u64::from(s.fore.max_response).saturating_sub(SESSION_SLACK));
        let cap = session.unwrap_or(u64::MAX).min(u64::from(MAX_IO));
        Budget::with_limits(
            u64::from(a.maxcount),
            cap,
            u64::from(a.dircount),
            cx.srv.cfg.limits.max_readdir_entries as usize,
        )
    }

    fn with_limits(
        maxcount: u64,
        cap: u64,
        dircount: u64,
        max_entries: usize,
    ) -> NfsResult<Budget> {
        if maxcount < RESOK_OVERHEAD {
            return Err(NfsError::TooSmall);
        }
        if cap < RESOK_OVERHEAD {
            return Err(NfsError::RepTooBig);
        }
        Ok(Budget {
            maxcount,
            cap,
            dircount: (dircount != 0).then_some(dircount),
            max_entries: max_entries.max(1),
            used: RESOK_OVERHEAD,
            dir_used: 0,
            count: 0,
        })
    }

    /// An empty listing sized for what this reply may hold.
    fn listing(&self) -> Listing {
        Listing::with_capacity(self.maxcount.min(self.cap).saturating_sub(RESOK_OVERHEAD))
    }

    fn full(&self) -> bool {
        self.count >= self.max_entries
    }

    /// Takes an entry of encoded `size` whose cookie and name take `dsize`
    /// of dircount: `Ok(false)` when the reply must end before it, an
    /// error when not even the first entry fits.
    fn admit(&mut self, size: u64, dsize: u64) -> NfsResult<bool> {
        let first = self.count == 0;
        if self.full() {
            return Ok(false);
        }
        let total = self.used + size;
        if total > self.maxcount {
            return if first {
                Err(NfsError::TooSmall)
            } else {
                Ok(false)
            };
        }
        if total > self.cap {
            return if first {
                Err(NfsError::RepTooBig)
            } else {
                Ok(false)
            };
        }
        if !first && self.dircount.is_some_and(|d| self.dir_used + dsize > d) {
            return Ok(false);
        }
        self.used = total;
        self.dir_used += dsize;
        self.count += 1;
        Ok(true)
    }
}

/// What the request asks of each entry.
struct Wants<'r> {
    filehandle: bool,
    rdattr_error: bool,
    request: &'r [u32],
    /// The attributes to encode for every entry, worked out once.
    plan: attrs::Plan,
}

impl<'r> Wants<'r> {
    fn new(cx: &Cx, request: &'r [u32]) -> NfsResult<Self> {
        let plan = attrs::Plan::new(request, cx.minor).map_err(NfsError::from_status)?;
        Ok(Wants {
            filehandle: bitmap_has(request, FATTR4_FILEHANDLE),
            rdattr_error: bitmap_has(request, FATTR4_RDATTR_ERROR),
            request,
            plan,
        })
    }

    /// The request restricted to supported attributes is not empty.
    fn any(&self) -> bool {
        !self.plan.mask().is_empty()
    }

    /// [`Wants::failed`] written as XDR at the end of `out`.
    fn failed_into(&self, err: NfsError, out: &mut Vec<u8>) -> NfsResult<()> {
        let f = self.failed(err)?;
        put_fattr(out, &f);
        Ok(())
    }

    /// An entry whose attributes could not be read: only `rdattr_error`
    /// when it was requested (RFC 8881 §5.8.1.12), else the error.
    fn failed(&self, err: NfsError) -> NfsResult<fattr4> {
        if !self.rdattr_error {
            return Err(err);
        }
        let mut mask = Vec::new();
        attrs::bitmap_set(&mut mask, FATTR4_RDATTR_ERROR);
        Ok(fattr4 {
            attrmask: mask,
            attr_vals: (err.status() as i32).to_be_bytes().to_vec(),
        })
    }
}

/// Entries of an export directory. The backend reads the directory
/// (from its listing cache when still valid) and stats each entry relative
/// to the directory it read, one entry at a time, so no entry is stat'ed
/// that does not go into the reply (but the one that ends it).
///
/// Each entry is written at the end of the listing and then admitted by
/// the budget, or cut off again: its size is known only once its
/// attributes are encoded, and encoding them in place spares a copy and
/// the attribute buffers per entry. What is the same for every entry of
/// the export (its file system's attributes, `fs_locations`, the handle
/// policy) is worked out once per READDIR.
#[allow(clippy::too_many_arguments)]
fn list_export(
    cx: &mut Cx,
    e: &Export,
    dir_cur: &CurFh,
    dir_id: ObjectId,
    dir_path: &RelPath,
    dir: &Attrs,
    a: &READDIR4args,
    budget: &mut Budget,
) -> NfsResult<(Listing, bool)> {
    let wants = Wants::new(cx, &a.attr_request)?;
    let can_search = common::allowed(cx, dir, MAY_EXEC) == MAY_EXEC;
    // Without search permission an entry cannot be stat'ed (lstat needs
    // it); each one then carries NFS4ERR_ACCESS or fails the READDIR.
    let stat = wants.any() && can_search;
    let mut out = budget.listing();
    let from = cx.srv.vfs.list_pos(e, dir_id, a.cookie)?;
    let mut durable = 0;
    let (eof, failed, full) = common::with_attr_context(
        cx,
        dir_cur,
        &obj_attrs(dir),
        Some(e),
        None,
        |base| -> NfsResult<(bool, Option<NfsError>, bool)> {
            let vfs = &cx.srv.vfs;
            let mut failed = None;
            let mut full = false;
            let entry = EntryCx {
                vfs,
                export: e,
                dir_id,
                base,
                wants: &wants,
                can_search,
            };
            let eof = e.store().list(dir_path, &from, stat, &mut |de, got| {
                // Names the backend lists are valid components; anything
                // else cannot be looked up or named in a handle.
                if crate::namespace::orphans::is_hidden(dir_path, de.name)
                    || Name::check(de.name).is_err()
                {
                    return true;
                }
                let mark = out.buf.len();
                // The cookie is written once the budget admits the entry:
                // a store listing by key records each cookie in a bounded
                // table, which the entry that ends the reply must not use.
                out.head(0, de.name);
                match entry.attrs(de.name, got, &mut out.buf) {
                    Ok(Some(seq)) => durable = durable.max(seq),
                    Ok(None) => {
                        out.buf.truncate(mark);
                        return true;
                    }
                    Err(err) => {
                        failed = Some(err);
                        return false;
                    }
                }
                let size = (out.buf.len() - mark) as u64;
                match budget.admit(size, dir_size(de.name.len())) {
                    Ok(true) => {}
                    Ok(false) => {
                        out.buf.truncate(mark);
                        full = true;
                        return false;
                    }
                    Err(err) => {
                        failed = Some(err);
                        return false;
                    }
                }
                out.set_cookie(mark, vfs.cookie_of(e, dir_id, &de.next));
                if budget.full() {
                    full = true;
                    return false;
                }
                true
            })?;
            Ok((eof, failed, full))
        },
    )?;
    cx.need_durable(durable);
    if let Some(err) = failed {
        return Err(err);
    }
    // Stopped because the reply is full: more entries may follow, even if
    // the one that did not fit was the last.
    Ok((out, eof && !full))
}

/// What every entry of one READDIR of an export directory shares.
struct EntryCx<'a> {
    vfs: &'a crate::namespace::vfs::Vfs,
    export: &'a Export,
    dir_id: ObjectId,
    /// The attribute context of the directory; an entry's differs in its
    /// handle and mounted-on fileid only.
    base: &'a AttrContext<'a>,
    wants: &'a Wants<'a>,
    can_search: bool,
}

impl EntryCx<'_> {
    /// Appends the `fattr4` of entry `name` to `out`, from the backend's
    /// lstat `got` (`None` when nothing was stat'ed). `Ok(None)` if the
    /// entry vanished; else the handle map's write sequence that must be
    /// durable before the reply leaves (0 for none).
    fn attrs(
        &self,
        name: &[u8],
        got: Option<Result<Attrs, StoreError>>,
        out: &mut Vec<u8>,
    ) -> NfsResult<Option<u64>> {
        let wants = self.wants;
        if !wants.any() {
            // An empty bitmap and no values.
            out.extend_from_slice(&[0; 8]);
            return Ok(Some(0));
        }
        if !self.can_search {
            return wants.failed_into(NfsError::Access, out).map(|()| Some(0));
        }
        let attrs = match got {
            Some(Ok(a)) => a,
            Some(Err(StoreError::NotFound)) => return Ok(None),
            Some(Err(err)) => return wants.failed_into(err.into(), out).map(|()| Some(0)),
            // The backend stats whenever attributes are wanted and
            // searching is allowed; not having them is a server bug, not
            // the client's.
            None => {
                return wants
                    .failed_into(NfsError::ServerFault, out)
                    .map(|()| Some(0))
            }
        };
        let (fh, seq) = if wants.filehandle {
            let (_, fh, seq) = self
                .vfs
                .child_handle(self.export.id, self.dir_id, name, &attrs)?;
            (fh, seq)
        } else {
            (Vec::new(), 0)
        };
        let obj = obj_attrs(&attrs);
        let ctx = AttrContext {
            fh: &fh,
            // An entry of an export directory is never an export root.
            mounted_on_fileid: obj.fileid,
            ..*self.base
        };
        wants
            .plan
            .encode_into(&obj, &ctx, out)
            .map_err(NfsError::from_status)?;
        Ok(Some(seq))
    }
}

/// Entries of a pseudo directory: its children, each a pseudo directory
/// or an export root.
fn list_pseudo(
    cx: &mut Cx,
    node: usize,
    a: &READDIR4args,
    budget: &mut Budget,
) -> NfsResult<(verifier4, Listing, bool)> {
    let verf = pseudo_verifier(cx);
    check_verifier(a, &verf)?;
    let srv = cx.srv;
    let children = &srv.vfs.pseudo.get(node).ok_or(NfsError::Stale)?.children;
    let start = match a.cookie {
        0 => 0,
        c => usize::try_from(c - PSEUDO_COOKIE_BASE + 1).map_err(|_| NfsError::BadCookie)?,
    };
    if start > children.len() {
        return Err(NfsError::BadCookie);
    }
    let wants = Wants::new(cx, &a.attr_request)?;
    let mut out = budget.listing();
    for (i, &child) in children.iter().enumerate().skip(start) {
        let name = srv
            .vfs
            .pseudo
            .get(child)
            .ok_or(NfsError::ServerFault)?
            .name
            .clone()
            .into_bytes();
        let attrs = match wants.any() {
            false => fattr4::default(),
            true => pseudo_entry_attrs(cx, child, &wants)?,
        };
        if !budget.admit(entry_size(name.len(), &attrs), dir_size(name.len()))? {
            return Ok((verf, out, false));
        }
        out.push(PSEUDO_COOKIE_BASE + i as u64, &name, &attrs);
    }
    Ok((verf, out, true))
}

fn pseudo_entry_attrs(cx: &Cx, child: usize, wants: &Wants) -> NfsResult<fattr4> {
    let fh = cx.srv.vfs.pseudo_fh(child)?;
    match &fh.node {
        Node::Pseudo(n) => common::encode_with(
            cx,
            &fh,
            &cx.srv.vfs.pseudo_attrs(*n),
            None,
            wants.request,
            None,
        ),
        Node::Obj { export, path, .. } => {
            let e = cx.srv.vfs.export(*export)?;
            match e.store().stat(path) {
                Ok(a) => common::encode_with(cx, &fh, &obj_attrs(&a), Some(e), wants.request, None),
                Err(err) => wants.failed(err.into()),
            }
        }
    }
}

/// The status an `rdattr_error` carries, for tests.
#[cfg(test)]
fn rdattr_value(f: &fattr4) -> Option<i32> {
    let b: [u8; 4] = f.attr_vals.get(..4)?.try_into().ok()?;
    Some(i32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfs4d_xdr::codec::Pack;
    use nfs4d_xdr::nfs4::{dirlist4, entry4, nfs_resop4, READDIR4res, READDIR4resok};

    /// The smallest encoded entry: value-follows 4, cookie 8, a 1-byte
    /// name (4 + 4), empty bitmap (4), empty values (4).
    const MIN_ENTRY: u64 = 28;

    /// An entry as the generated XDR types hold it, and as the listing
    /// takes it.
    fn entry(name: &str, words: usize, vals: usize, cookie: u64) -> (u64, Vec<u8>, fattr4) {
        let attrs = fattr4 {
            attrmask: (0..words as u32)
                .map(|w| w.wrapping_mul(0x9e37_79b9))
                .collect(),
            attr_vals: (0..vals).map(|i| i as u8 ^ 0x5a).collect(),
        };
        (cookie, name.as_bytes().to_vec(), attrs)
    }

    /// READDIR's result as the encoder writes it (status word included).
    fn ours(verf: verifier4, list: &[(u64, Vec<u8>, fattr4)], eof: bool) -> Vec<u8> {
        let mut l = Listing::default();
        for (cookie, name, attrs) in list {
            l.push(*cookie, name, attrs);
        }
        let mut out = Vec::new();
        super::super::put_u32(&mut out, nfs_opnum4::OP_READDIR as i32 as u32);
        super::super::put_u32(&mut out, 0);
        out.extend_from_slice(&verf);
        out.extend_from_slice(&l.buf);
        super::super::put_u32(&mut out, 0);
        super::super::put_u32(&mut out, u32::from(eof));
        out
    }

    /// The same result through the generated types and encoder.
    fn generated(verf: verifier4, list: &[(u64, Vec<u8>, fattr4)], eof: bool) -> Vec<u8> {
        let entries = list.iter().rev().fold(None, |next, (cookie, name, attrs)| {
            Some(Box::new(entry4 {
                cookie: *cookie,
                name: name.clone(),
                attrs: attrs.clone(),
                nextentry: next,
            }))
        });
        let res = nfs_resop4::OP_READDIR(READDIR4res::NFS4_OK(READDIR4resok {
            cookieverf: verf,
            reply: dirlist4 { entries, eof },
        }));
        let mut out = Vec::new();
        res.pack(&mut out).expect("packs");
        out
    }

    #[test]
    fn the_listing_encodes_as_the_generated_types_do() {
        // Every name and value length modulo 4 (padding), empty masks and
        // values, both eof values, and an empty list.
        let mut list = Vec::new();
        for n in 1..=9 {
            list.push(entry(
                &"x".repeat(n),
                n % 4,
                (n * 7) % 13,
                n as u64 * 1000 + 3,
            ));
        }
        for eof in [false, true] {
            let verf = [1, 2, 3, 4, 5, 6, 7, 8];
            assert_eq!(ours(verf, &list, eof), generated(verf, &list, eof));
            assert_eq!(ours(verf, &[], eof), generated(verf, &[], eof));
        }
    }

    #[test]
    fn size_accounting_matches_the_encoding() {
        // 8 bytes of operation number and status precede READDIR4resok.
        assert_eq!(ours([0; 8], &[], true).len() as u64 - 8, RESOK_OVERHEAD);
        let list = vec![
            entry("a", 0, 0, 7),
            entry("hello", 2, 12, 7),
            entry("abcdefgh", 3, 100, 7),
        ];
        let expected = RESOK_OVERHEAD
            + list
                .iter()
                .map(|(_, name, attrs)| entry_size(name.len(), attrs))
                .sum::<u64>();
        assert_eq!(ours([0; 8], &list, false).len() as u64 - 8, expected);
        assert_eq!(entry_size(1, &fattr4::default()), MIN_ENTRY);
    }

    #[test]
    fn the_listing_capacity_is_capped() {
        let most = (LISTING_RESERVE + ENTRY_SLACK) as usize;
        assert!(Listing::with_capacity(u64::MAX).buf.capacity() <= most);
        let b = Budget::with_limits(4096, 1 << 20, 0, 10).expect("budget");
        assert!(b.listing().buf.capacity() <= 4096 + ENTRY_SLACK as usize);
    }

    #[test]
    fn maxcount_below_the_empty_reply_is_toosmall() {
        assert_eq!(
            Budget::with_limits(15, u64::MAX, 0, 10).err(),
            Some(NfsError::TooSmall)
        );
        assert!(Budget::with_limits(16, u64::MAX, 0, 10).is_ok());
    }

    #[test]
    fn first_entry_must_fit() {
        let mut b = Budget::with_limits(16 + 40, u64::MAX, 0, 10).expect("budget");
        assert_eq!(b.admit(41, 10), Err(NfsError::TooSmall));
        assert_eq!(b.admit(40, 10), Ok(true));
        assert_eq!(b.admit(1, 1), Ok(false));
        // The server's cap: REP_TOO_BIG when maxcount alone would allow it.
        let mut b = Budget::with_limits(1000, 100, 0, 10).expect("budget");
        assert_eq!(b.admit(200, 10), Err(NfsError::RepTooBig));
    }

    #[test]
    fn dircount_ends_the_reply_after_one_entry() {
        let mut b = Budget::with_limits(10_000, u64::MAX, 20, 10).expect("budget");
        assert_eq!(b.admit(50, 30), Ok(true), "the first entry is always taken");
        assert_eq!(b.admit(50, 1), Ok(false));
        // dircount 0: no limit.
        let mut b = Budget::with_limits(10_000, u64::MAX, 0, 10).expect("budget");
        for _ in 0..10 {
            assert_eq!(b.admit(50, 1000), Ok(true));
        }
        assert_eq!(b.admit(50, 1), Ok(false), "entry limit");
    }

    #[test]
    fn verifier_rules() {
        let ours = [1, 2, 3, 4, 5, 6, 7, 8];
        let args = |cookie, cookieverf| READDIR4args {
            cookie,
            cookieverf,
            dircount: 0,
            maxcount: 100,
            attr_request: Vec::new(),
        };
        assert!(
            check_verifier(&args(0, [9; 8]), &ours).is_ok(),
            "cookie 0 ignores the verifier"
        );
        assert!(check_verifier(&args(77, ours), &ours).is_ok());
        assert!(
            check_verifier(&args(77, [0; 8]), &ours).is_ok(),
            "zeroed by the client"
        );
        assert_eq!(
            check_verifier(&args(77, [9; 8]), &ours),
            Err(NfsError::NotSame)
        );
    }

    #[test]
    fn rdattr_error_entry() {
        let request = [1 << FATTR4_RDATTR_ERROR];
        let w = Wants {
            filehandle: false,
            rdattr_error: true,
            request: &request,
            plan: attrs::Plan::new(&request, 1).expect("readable"),
        };
        assert!(w.any());
        let f = w.failed(NfsError::Access).expect("reported in the entry");
        assert_eq!(f.attrmask, vec![1 << FATTR4_RDATTR_ERROR]);
        assert_eq!(rdattr_value(&f), Some(nfsstat4::NFS4ERR_ACCESS as i32));
        let w = Wants {
            rdattr_error: false,
            ..w
        };
        assert_eq!(w.failed(NfsError::Access), Err(NfsError::Access));
    }
}
